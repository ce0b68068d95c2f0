//! `streamstack plan SPEC [--format human|json|markdown] [--json] [--out FILE] [--detailed-exitcode]`

use std::path::Path;

use streamstack::events::Events;
use streamstack::ops::{self, PlanFile};

use super::{open_options, runtime, stdout_style, Failure, Outcome};
use streamstack::cli::{Global, PlanFormat};

pub fn run(
    g: &Global,
    spec: &Path,
    format: PlanFormat,
    out: Option<&Path>,
    detailed: bool,
) -> Outcome {
    runtime()?.block_on(async {
        let s = match ops::open(spec, &open_options(g, Events::none())).await {
            // With JSON output, an invalid spec is JSON too: the diagnostics object.
            Err(streamstack::Error::Spec(d)) if format == PlanFormat::Json => {
                println!("{}", streamstack::diagnostics::to_json(&d));
                return Err(Failure::Spec(d));
            }
            other => other?,
        };
        // plan takes no lock, but says when an apply or destroy is under way (asked alongside
        // the discovery).
        let (live, held) = futures::try_join!(s.live(), s.lock_held())?;
        let plan = s.plan(&live)?;
        if let Some(held) = held {
            eprintln!("note: an apply or destroy of this stack is under way: {held}");
        }
        match format {
            PlanFormat::Json => {
                let text = serde_json::to_string_pretty(&plan)
                    .map_err(|e| Failure::Message(e.to_string()))?;
                println!("{text}");
            }
            PlanFormat::Markdown => print!("{}", streamstack::ui::render_plan_markdown(&plan)),
            PlanFormat::Human => print!("{}", streamstack::ui::render_plan(&plan, stdout_style(g))),
        }
        if let Some(out) = out {
            let file = PlanFile::new(&s, &g.vars, &plan);
            let text =
                serde_json::to_string_pretty(&file).map_err(|e| Failure::Message(e.to_string()))?;
            std::fs::write(out, text)
                .map_err(|e| Failure::Message(format!("cannot write {}: {e}", out.display())))?;
            if format == PlanFormat::Human {
                println!(
                    "\nSaved the plan to {}; apply it with: streamstack apply {}",
                    out.display(),
                    out.display()
                );
            }
        }
        Ok(if detailed && plan.has_changes() { 2 } else { 0 })
    })
}
