//! `streamstack destroy SPEC [--auto-approve] [--json]`

use std::path::Path;

use streamstack::ops;
use streamstack::plan::destroy_plan;

use super::{confirm, event_printer, finish, open_options, runtime, stdout_style, Outcome};
use crate::cli::Global;

pub fn run(g: &Global, spec: &Path, auto_approve: bool, json: bool) -> Outcome {
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let (events, printer) = event_printer(style, json);
        let s = ops::open(spec, &open_options(g, events)).await?;
        let live = s.live().await?;
        let foreign: Vec<_> = live.iter().filter(|l| !l.ours).collect();
        let plan = destroy_plan(&s.validated.model, &live);
        if json {
            println!("{}", serde_json::json!({"type": "planned", "plan": plan}));
        } else {
            for f in &foreign {
                println!(
                    "note: {} ({}) has one of this stack's names but is not the stack's; leaving it alone",
                    f.address(),
                    f.resource.name
                );
            }
            print!("{}", streamstack::ui::render_plan(&plan, style));
        }
        if plan.has_changes() {
            if !auto_approve {
                confirm(&format!("\nDestroy every resource of stack {}?", s.cx.stack))?;
            }
            let report = s.apply(&plan, &live, streamstack::executor::DEFAULT_PARALLELISM).await;
            if !report.ok() {
                drop(s);
                let _ = printer.await;
                return finish(&report, String::new());
            }
        }
        // Prove it: read again and list what is left.
        let left: Vec<_> = s.live().await?.into_iter().filter(|l| l.ours).collect();
        drop(s);
        let _ = printer.await;
        if json {
            let addresses: Vec<String> = left.iter().map(|l| l.address().to_string()).collect();
            println!("{}", serde_json::json!({"type": "remaining", "resources": addresses}));
        }
        if left.is_empty() {
            if !json {
                println!("\nDestroy complete! Nothing of the stack remains.");
            }
            Ok(0)
        } else {
            let names: Vec<String> = left.iter().map(|l| format!("{} ({})", l.address(), l.id)).collect();
            Err(super::Failure::Message(format!("still present after destroy: {}", names.join(", "))))
        }
    })
}
