//! `streamstack apply SPEC|PLANFILE [--auto-approve] [--json] [--wait-bootstrap [DUR]]
//! [--engine ENGINE]`

use std::time::Duration;

use streamstack::deploy::{self, Engine, Planned};
use streamstack::kinds::{IssuedKey, KeyOptions};
use streamstack::ops::{self, PlanFile, Session};

use super::{
    approval_possible, confirm, event_printer, finish, locked, open_options, runtime, stdout_style,
    Failure, Outcome,
};
use streamstack::cli::{ApplyArgs, Global};

pub fn run(g: &Global, a: &ApplyArgs) -> Outcome {
    if a.fleet.fleet.is_some() && a.engine.engine == streamstack::cli::Engine::Stacksets {
        return super::fleet::stacksets(
            g,
            super::fleet::StackSetsRequest {
                fleet: &a.fleet,
                spec: &a.target,
                verb: "apply",
                json: a.change.json,
                ask: !a.change.auto_approve,
                detailed_exitcode: false,
                permission_model: a.engine.permission_model,
            },
        );
    }
    if a.fleet.fleet.is_some() {
        let command = streamstack::fleet::run::Command::Apply {
            parallelism: a.parallelism,
        };
        return super::fleet::run(
            g,
            super::fleet::Request {
                fleet: &a.fleet,
                spec: Some(&a.target),
                command,
                json: a.change.json,
                ask: !a.change.auto_approve,
                lock_timeout: a.change.lock_timeout.unwrap_or_default(),
                engine: a.engine.engine,
            },
        );
    }
    if a.engine.engine == streamstack::cli::Engine::Stacksets {
        return Err(Failure::Message(deploy::STACKSETS_NEED_A_FLEET.into()));
    }
    approval_possible(a.change.auto_approve)?;
    // All of the file's checks come before any AWS call: a file that is neither a plan nor a
    // spec, a plan of another format version, or --var beside a saved plan make none.
    let saved = PlanFile::read(&a.target)?;
    if let (Some(f), false) = (&saved, g.spec.vars.is_empty()) {
        return Err(Failure::Message(format!(
            "--var is not taken with a saved plan: {} applies the variables it was planned with \
             (recorded: {}); to change them, run plan --out again with the --var",
            a.target.display(),
            recorded(&f.vars)
        )));
    }
    let (spec, vars) = match &saved {
        Some(f) => (f.spec_path.clone(), f.vars.clone()),
        None => (a.target.clone(), g.spec.vars.clone()),
    };
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let mut opts = open_options(g, event_printer(style, a.change.json));
        opts.load.vars = vars;
        let s = ops::open(&spec, &opts).await?;
        // One apply or destroy at a time: the lock comes first and the plan is made under it, so
        // it is read once (as Terraform locks its state before refreshing). An apply with nothing
        // to do, or a refused saved plan, releases the lock having changed nothing else.
        let work = apply_locked(&s, a, saved.as_ref(), style);
        let timeout = a.change.lock_timeout.unwrap_or_default();
        locked(&s, "apply", timeout, work).await
    })
}

async fn apply_locked(
    s: &Session,
    a: &ApplyArgs,
    saved: Option<&PlanFile>,
    style: streamstack::ui::Style,
) -> Outcome {
    let json = a.change.json;
    let planned = deploy::plan_apply(Engine::from(a.engine.engine), s, saved).await?;
    let plan = planned.plan();
    // External hosts' access keys: an apply that must write one and has nowhere to write it
    // is refused here, before any write.
    let keys = KeyOptions {
        dir: a.credentials_dir.clone(),
        rotate: a.rotate_keys,
    };
    let keys_due = match planned {
        Planned::Own { .. } => s.check_keys_writable(&keys).await?,
        Planned::Stack(_) => Vec::new(),
    };
    if json {
        println!("{}", serde_json::json!({"type": "planned", "plan": plan}));
    } else {
        print!("{}", streamstack::ui::render_plan(plan, style));
        for why in &keys_due {
            println!("access key: {why}");
        }
    }
    if let Planned::Own { .. } = planned {
        if !plan.has_changes() {
            if !keys_due.is_empty() {
                if !a.change.auto_approve {
                    confirm("\nDo you want to write the access keys?")?;
                }
                print_keys(&s.issue_keys(&keys).await?, json);
            }
            if json {
                let empty = streamstack::executor::Report::default();
                println!("{}", serde_json::json!({"type": "report", "report": empty}));
            }
            return Ok(0);
        }
    }
    if let Some(cfn) = planned.cloudformation_owner() {
        eprintln!(
            "warning: this stack's resources belong to CloudFormation stack {cfn}; changes made \
             here drift from it (apply with --engine cloudformation to change it through \
             CloudFormation)"
        );
    }
    // A saved plan too: without a terminal or --auto-approve, nothing is changed.
    if plan.has_changes() && !a.change.auto_approve {
        if let Err(e) = confirm("\nDo you want to perform these actions?") {
            planned.discard(s).await?;
            return Err(e);
        }
    }
    let applied = planned.apply(s, a.parallelism).await?;
    let issued = match planned {
        Planned::Own { .. } if applied.ok() => s.issue_keys(&keys).await,
        _ => Ok(Vec::new()),
    };
    if let Ok(issued) = &issued {
        print_keys(issued, json);
    }
    let waited = wait_bootstrap(s, &planned, applied.ok(), a.wait_bootstrap).await;
    if json {
        let report = applied.to_json();
        println!(
            "{}",
            serde_json::json!({"type": "report", "report": report})
        );
    }
    issued?;
    waited?;
    finish(&applied, applied.applied_line(plan), json)
}

/// Where each access key went (its id, file and profile; never the secret).
fn print_keys(issued: &[IssuedKey], json: bool) {
    for k in issued {
        if json {
            let mut line = serde_json::json!({"type": "credentials"});
            if let (Some(m), Ok(serde_json::Value::Object(k))) =
                (line.as_object_mut(), serde_json::to_value(k))
            {
                m.extend(k);
            }
            println!("{line}");
        } else {
            println!(
                "{}: access key {} written to {} (profile [{}])",
                k.address, k.access_key_id, k.file, k.profile
            );
            if !k.deleted.is_empty() {
                println!(
                    "{}: deleted the old key(s) {}",
                    k.address,
                    k.deleted.join(", ")
                );
            }
        }
    }
}

/// `--wait-bootstrap`: after a successful apply that changed something, waits until what it
/// created says it works.
async fn wait_bootstrap(
    s: &Session,
    planned: &Planned,
    applied_ok: bool,
    timeout: Option<Duration>,
) -> streamstack::Result<()> {
    match timeout {
        Some(t) if applied_ok && planned.plan().has_changes() => {
            s.wait_reported(planned.plan(), t).await
        }
        _ => Ok(()),
    }
}

/// The names of the variables a saved plan records (or "none"); values are not repeated.
fn recorded(vars: &[(String, String)]) -> String {
    if vars.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    names.join(", ")
}
