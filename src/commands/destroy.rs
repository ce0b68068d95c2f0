//! `streamstack destroy (SPEC | --stack NAME) [--auto-approve] [--json]`

use std::path::Path;

use streamstack::executor::DEFAULT_PARALLELISM;
use streamstack::ops::Session;

use super::{
    confirm, event_printer, finish, locked, open_options, open_spec_or_stack, runtime,
    stdout_style, Failure, Outcome,
};
use streamstack::cli::Global;

pub fn run(
    g: &Global,
    spec: Option<&Path>,
    stack: Option<&str>,
    auto_approve: bool,
    json: bool,
    lock_timeout: std::time::Duration,
) -> Outcome {
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let opts = open_options(g, event_printer(style, json));
        let s = open_spec_or_stack(spec, stack, &opts).await?;
        destroy(&s, g, auto_approve, json, lock_timeout).await
    })
}

/// Destroys the session's stack under its lock: plan, confirm, delete, prove nothing remains.
pub async fn destroy(
    s: &Session,
    g: &Global,
    auto_approve: bool,
    json: bool,
    lock_timeout: std::time::Duration,
) -> Outcome {
    // The lock first, then one look at what is live (a look before the lock would only be
    // repeated under it: one discovery less, which at AWS's quotas is seconds for a classroom).
    locked(
        s,
        "destroy",
        lock_timeout,
        destroy_locked(s, g, auto_approve, json),
    )
    .await
}

async fn destroy_locked(s: &Session, g: &Global, auto_approve: bool, json: bool) -> Outcome {
    let style = stdout_style(g);
    let stack = s.cx.stack.clone();
    let d = s.plan_destroy().await?;
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
            print!("{}", streamstack::ui::render_plan(&d.plan, style));
        } else {
            println!(
                "No resources tagged streamstack:stack={stack} in {}.",
                s.cx.env.region
            );
        }
    }
    if d.plan.has_changes() && !auto_approve {
        confirm(&format!("\nDestroy every resource of stack {stack}?"))?;
    }
    let (report, left) = s.destroy(&d, DEFAULT_PARALLELISM).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"type": "report", "report": report, "remaining": left})
        );
    }
    if !report.ok() {
        return finish(&report, String::new(), json);
    }
    if left.is_empty() {
        let line = format!("\nDestroy complete! Nothing of stack {stack} remains.");
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        Ok(0)
    } else {
        Err(Failure::Message(format!(
            "still present after destroy: {}",
            left.join(", ")
        )))
    }
}
