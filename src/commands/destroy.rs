//! `streamstack destroy (SPEC | --stack NAME) [--auto-approve] [--json] [--engine ENGINE]`

use streamstack::deploy::{self, DestroyPlanned, Engine};
use streamstack::executor::DEFAULT_PARALLELISM;
use streamstack::ops::Session;

use super::{
    approval_possible, confirm, event_printer, finish, locked, open_options, open_spec_or_stack,
    runtime, stdout_style, Failure, Outcome,
};
use streamstack::cli::{DestroyArgs, Global};

pub fn run(g: &Global, a: &DestroyArgs) -> Outcome {
    if a.fleet.fleet.is_some() {
        let Some(spec) = a.spec.as_deref() else {
            return Err(Failure::Message(
                "destroy --fleet needs the spec file".into(),
            ));
        };
        if a.engine.engine == streamstack::cli::Engine::Stacksets {
            return super::fleet::stacksets(
                g,
                super::fleet::StackSetsRequest {
                    fleet: &a.fleet,
                    spec,
                    verb: "destroy",
                    json: a.change.json,
                    ask: !a.change.auto_approve,
                    detailed_exitcode: false,
                    permission_model: a.engine.permission_model,
                },
            );
        }
        let command = streamstack::fleet::run::Command::Destroy {
            parallelism: DEFAULT_PARALLELISM,
        };
        return super::fleet::run(
            g,
            super::fleet::Request {
                fleet: &a.fleet,
                spec: Some(spec),
                command,
                json: a.change.json,
                ask: !a.change.auto_approve,
                lock_timeout: a.change.lock_timeout.unwrap_or_default(),
                engine: a.engine.engine,
            },
        );
    }
    let c = &a.change;
    if a.engine.engine == streamstack::cli::Engine::Stacksets {
        return Err(Failure::Message(deploy::STACKSETS_NEED_A_FLEET.into()));
    }
    approval_possible(c.auto_approve)?;
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let opts = open_options(g, event_printer(style, c.json));
        let s = open_spec_or_stack(a.spec.as_deref(), a.stack.as_deref(), &opts).await?;
        let engine = Engine::from(a.engine.engine);
        let timeout = c.lock_timeout.unwrap_or_default();
        destroy(&s, engine, g, c.auto_approve, c.json, timeout).await
    })
}

/// Destroys the session's stack under its lock: plan, confirm, delete, prove nothing remains.
pub async fn destroy(
    s: &Session,
    engine: Engine,
    g: &Global,
    auto_approve: bool,
    json: bool,
    lock_timeout: std::time::Duration,
) -> Outcome {
    // The lock first, then one look at what is live (a look before the lock would only be
    // repeated under it: one discovery less, which at AWS's quotas is seconds for a classroom).
    let work = destroy_locked(s, engine, g, auto_approve, json);
    locked(s, "destroy", lock_timeout, work).await
}

async fn destroy_locked(
    s: &Session,
    engine: Engine,
    g: &Global,
    auto_approve: bool,
    json: bool,
) -> Outcome {
    let stack = s.cx.stack.clone();
    let d = deploy::plan_destroy(engine, s).await?;
    let question = show(s, &d, g, json);
    if d.has_changes() && !auto_approve {
        confirm(&question)?;
    }
    let (applied, left) = d.destroy(s, DEFAULT_PARALLELISM).await?;
    if json {
        let report = applied.to_json();
        let line = serde_json::json!({"type": "report", "report": report, "remaining": left});
        println!("{line}");
    }
    if !applied.ok() {
        return finish(&applied, String::new(), json);
    }
    if left.is_empty() {
        let line = format!("\nDestroy complete! Nothing of stack {stack} remains.");
        finish(&applied, line, json)
    } else {
        Err(Failure::Message(format!(
            "still present after destroy: {}",
            left.join(", ")
        )))
    }
}

/// Prints what will be destroyed; returns the question to confirm it with.
fn show(s: &Session, d: &DestroyPlanned, g: &Global, json: bool) -> String {
    let stack = &s.cx.stack;
    match d {
        DestroyPlanned::Own(d) => {
            if json {
                println!("{}", serde_json::json!({"type": "planned", "plan": d.plan}));
            } else {
                for f in &d.foreign {
                    println!(
                        "note: {} ({}) has one of this stack's names but is not the stack's; leaving it alone",
                        f.address(),
                        f.resource.name
                    );
                }
                if d.plan.has_changes() {
                    print!("{}", streamstack::ui::render_plan(&d.plan, stdout_style(g)));
                } else {
                    let region = &s.cx.env.region;
                    println!("No resources tagged streamstack:stack={stack} in {region}.");
                }
            }
            format!("\nDestroy every resource of stack {stack}?")
        }
        DestroyPlanned::Stack { name, deployed } => {
            let what = match deployed {
                Some(d) => format!(
                    "CloudFormation stack {name} ({}) and everything in it",
                    d.status
                ),
                None => format!("what is left of stack {name} (there is no CloudFormation stack)"),
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"type": "planned", "destroy": what})
                );
            } else {
                println!("streamstack will destroy {what}.");
            }
            format!("\nDestroy {what}?")
        }
    }
}
