//! `streamstack render SPEC [--host NAME] [--what ...]`

use std::path::Path;

use serde_json::json;
use streamstack::model::{Kind, Props};
use streamstack::spec;

use super::{load_options, print_diagnostics, stderr_color, Failure, Outcome};
use crate::cli::{Global, What};

pub fn run(g: &Global, path: &Path, host: Option<&str>, what: What) -> Outcome {
    let v = spec::load_file(path, &load_options(g)).map_err(Failure::Spec)?;
    print_diagnostics(&v.warnings, stderr_color(g));
    let model = &v.model;
    let hosts: Vec<&str> = model
        .of_kind(Kind::Host)
        .map(|r| r.address.key.as_str())
        .collect();
    if let Some(h) = host {
        if !hosts.contains(&h) {
            return Err(Failure::Message(format!(
                "no host named {h:?} in {} (hosts: {})",
                path.display(),
                if hosts.is_empty() {
                    "none".to_string()
                } else {
                    hosts.join(", ")
                }
            )));
        }
    }
    match what {
        What::Policies => {
            let mut out = serde_json::Map::new();
            for r in model.resources.values() {
                let Props::Role(role) = &r.props else {
                    continue;
                };
                if let Some(h) = host {
                    if r.address.kind != Kind::HostRole || r.address.key != h {
                        continue;
                    }
                }
                out.insert(
                    r.name.clone(),
                    json!({
                        "address": r.address.to_string(),
                        "arn": role.arn,
                        "trust_policy": role.trust_policy,
                        "inline_policies": role.inline_policies,
                    }),
                );
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(|e| Failure::Message(e.to_string()))?
            );
        }
        What::UserData | What::AgentConfig => {
            let key = match (host, hosts.as_slice()) {
                (Some(h), _) => h,
                (None, [only]) => only,
                (None, []) => {
                    return Err(Failure::Message(format!("{} has no hosts", path.display())))
                }
                (None, many) => {
                    return Err(Failure::Message(format!(
                        "{} has {} hosts; pick one with --host ({})",
                        path.display(),
                        many.len(),
                        many.join(", ")
                    )))
                }
            };
            let Some(Props::Host(h)) = model
                .resources
                .values()
                .find(|r| r.address.kind == Kind::Host && r.address.key == key)
                .map(|r| &r.props)
            else {
                return Err(Failure::Message(format!("no host named {key:?}")));
            };
            match what {
                What::UserData => print!("{}", h.user_data),
                _ => {
                    let json = streamstack::bootstrap::extract_agent_json(&h.user_data)
                        .ok_or_else(|| Failure::Message("user-data holds no agent.json".into()))?;
                    println!("{json}");
                }
            }
        }
    }
    Ok(0)
}
