//! `streamstack destroy SPEC [--auto-approve] [--json]`

use std::path::Path;

use streamstack::executor::DEFAULT_PARALLELISM;
use streamstack::ops;

use super::{
    confirm, event_printer, finish, open_options, runtime, stdout_style, Failure, Outcome,
};
use crate::cli::Global;

pub fn run(g: &Global, spec: &Path, auto_approve: bool, json: bool) -> Outcome {
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let (events, printer) = event_printer(style, json);
        let s = ops::open(spec, &open_options(g, events)).await?;
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
            print!("{}", streamstack::ui::render_plan(&d.plan, style));
        }
        if d.plan.has_changes() && !auto_approve {
            confirm(&format!("\nDestroy every resource of stack {}?", s.cx.stack))?;
        }
        let (report, left) = s.destroy(&d, DEFAULT_PARALLELISM).await?;
        let stack = s.cx.stack.clone();
        drop(s);
        let _ = printer.await;
        if json {
            println!(
                "{}",
                serde_json::json!({"type": "remaining", "resources": left})
            );
        }
        if !report.ok() {
            return finish(&report, String::new(), json);
        }
        if left.is_empty() {
            if !json {
                println!("\nDestroy complete! Nothing of stack {stack} remains.");
            }
            Ok(0)
        } else {
            Err(Failure::Message(format!(
                "still present after destroy: {}",
                left.join(", ")
            )))
        }
    })
}
