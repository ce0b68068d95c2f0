//! `streamstack render SPEC [--host NAME] [--what ...]`

use streamstack::kinds::Render;
use streamstack::ops;

use super::{load_options, print_diagnostics, stderr_color, Failure, Outcome};
use streamstack::cli::{Global, PolicyFor, RenderArgs, What};

pub fn run(g: &Global, a: &RenderArgs) -> Outcome {
    let (path, host, what) = (a.spec.as_path(), a.host.as_deref(), a.what);
    let v = streamstack::derive::load_file(path, &load_options(g)).map_err(Failure::Spec)?;
    print_diagnostics(&v.warnings, stderr_color(g), super::stderr_snippets());
    let what = match what {
        What::UserData => Render::UserData,
        What::AgentConfig => Render::AgentConfig,
        What::Policies => Render::Policies,
        What::Cloudformation => {
            print!("{}", streamstack::cloudformation::render(path, &v)?);
            return Ok(0);
        }
        What::OperatorPolicy => return operator_policy(&v.model, a.for_commands),
        What::AgentBundle => return agent_bundle(path, &v.model, host, a.out.as_deref()),
    };
    // Hosts are the resources that have an agent.json (EC2 and external hosts).
    let hosts: Vec<String> = ops::render(&v.model, Render::AgentConfig, None)?
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    if let Some(h) = host {
        if !hosts.iter().any(|x| x == h) {
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
    if what == Render::Policies {
        let mut out = serde_json::Map::new();
        for r in ops::render(&v.model, what, host)? {
            let name = r.body["name"].as_str().unwrap_or_default().to_string();
            let mut body = r.body;
            if let Some(m) = body.as_object_mut() {
                m.remove("name");
            }
            out.insert(name, body);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| Failure::Message(e.to_string()))?
        );
        return Ok(0);
    }
    let key = match (host, hosts.as_slice()) {
        (Some(h), _) => h.to_string(),
        (None, [only]) => only.clone(),
        (None, []) => return Err(Failure::Message(format!("{} has no hosts", path.display()))),
        (None, many) => {
            return Err(Failure::Message(format!(
                "{} has {} hosts; pick one with --host ({})",
                path.display(),
                many.len(),
                many.join(", ")
            )))
        }
    };
    let rendered = ops::render(&v.model, what, Some(&key))?;
    let Some(text) = rendered.first().and_then(|r| r.body.as_str()) else {
        return Err(Failure::Message(format!(
            "host {key:?} has nothing to render"
        )));
    };
    if what == Render::UserData {
        print!("{text}");
    } else {
        println!("{text}");
    }
    Ok(0)
}

/// `--what operator-policy`: the policy on stdout; on stderr, what it assumes.
fn operator_policy(model: &streamstack::model::Model, commands: PolicyFor) -> Outcome {
    use streamstack::operator_policy::{operator_policy, Purpose};
    let purpose = match commands {
        PolicyFor::Plan => Purpose::Plan,
        PolicyFor::Apply => Purpose::Apply,
    };
    let policy = operator_policy(model, purpose, None);
    eprintln!(
        "note: the account id is not known offline: `*` stands in the account position of every \
         ARN; the policy is for the default engine (not --engine cloudformation)"
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&policy).map_err(|e| Failure::Message(e.to_string()))?
    );
    Ok(0)
}

/// `--what agent-bundle --host KEY --out DIR`: an external host's bundle, one file each.
fn agent_bundle(
    path: &std::path::Path,
    model: &streamstack::model::Model,
    host: Option<&str>,
    out: Option<&std::path::Path>,
) -> Outcome {
    let (Some(host), Some(out)) = (host, out) else {
        return Err(Failure::Message(
            "--what agent-bundle needs --host KEY (an external host) and --out DIR".into(),
        ));
    };
    let rendered = ops::render(model, Render::AgentBundle, Some(host))?;
    let Some(files) = rendered.first().and_then(|r| r.body.as_object()) else {
        let external: Vec<String> = ops::render(model, Render::AgentBundle, None)?
            .into_iter()
            .filter_map(|r| r.host)
            .collect();
        return Err(Failure::Message(format!(
            "{host:?} is not an external host of {} (external hosts: {})",
            path.display(),
            if external.is_empty() {
                "none".to_string()
            } else {
                external.join(", ")
            }
        )));
    };
    let fail =
        |e: std::io::Error| Failure::Message(format!("cannot write to {}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(fail)?;
    for (name, body) in files {
        let file = out.join(name);
        std::fs::write(&file, body.as_str().unwrap_or_default()).map_err(fail)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if name.ends_with(".sh") { 0o755 } else { 0o644 };
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
        }
        println!("{}", file.display());
    }
    Ok(0)
}
