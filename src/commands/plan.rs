//! `streamstack plan SPEC [--format human|json|markdown] [--json] [--out FILE] [--detailed-exitcode]
//! [--engine ENGINE] [--prices live|cached|offline]`

use std::path::Path;

use streamstack::cost::Cost;
use streamstack::deploy::{self, Engine};
use streamstack::events::Events;
use streamstack::ops::{self, PlanFile, Session};
use streamstack::plan::Plan;

use super::{open_options, runtime, stdout_style, Failure, Outcome};
use streamstack::cli::{Global, PlanArgs, PlanFormat};

pub fn run(g: &Global, a: &PlanArgs) -> Outcome {
    if a.fleet.fleet.is_some() && a.engine.engine == streamstack::cli::Engine::Stacksets {
        return super::fleet::stacksets(
            g,
            super::fleet::StackSetsRequest {
                fleet: &a.fleet,
                spec: &a.spec,
                verb: "plan",
                json: a.output() == streamstack::cli::PlanFormat::Json,
                ask: false,
                detailed_exitcode: a.detailed_exitcode,
                permission_model: a.engine.permission_model,
            },
        );
    }
    if a.fleet.fleet.is_some() {
        return super::fleet::run(
            g,
            super::fleet::Request {
                fleet: &a.fleet,
                spec: Some(&a.spec),
                command: streamstack::fleet::run::Command::Plan,
                json: a.output() == streamstack::cli::PlanFormat::Json,
                ask: false,
                lock_timeout: std::time::Duration::ZERO,
                engine: a.engine.engine,
            },
        );
    }
    if a.engine.engine == streamstack::cli::Engine::Stacksets {
        return Err(Failure::Message(deploy::STACKSETS_NEED_A_FLEET.into()));
    }
    let format = a.output();
    let engine = Engine::from(a.engine.engine);
    if a.out.is_some() && engine == Engine::Cloudformation {
        return Err(Failure::Message(
            "--out saves streamstack's own plans; with --engine cloudformation the change set is \
             made again at apply"
                .into(),
        ));
    }
    runtime()?.block_on(async {
        let s = match ops::open(&a.spec, &open_options(g, Events::none())).await {
            // With JSON output, an invalid spec is JSON too: the diagnostics object.
            Err(streamstack::Error::Spec(d)) if format == PlanFormat::Json => {
                println!("{}", streamstack::diagnostics::to_json(&d));
                return Err(Failure::Spec(d));
            }
            other => other?,
        };
        let (planned, held) = deploy::plan(engine, &s).await?;
        if let Some(held) = held {
            eprintln!("note: an apply or destroy of this stack is under way: {held}");
        }
        // Prices never fail a plan: without them the cost says "unknown" and why.
        let cost = streamstack::bill::plan_cost(&s, &planned, a.prices.unwrap_or_default()).await;
        // A change set made only to be shown goes, whatever printing does.
        let printed = print_plan(planned.plan(), format, g, &cost);
        let discarded = planned.discard(&s).await;
        printed?;
        discarded?;
        if let Some(out) = &a.out {
            save(&s, g, planned.plan(), out, format)?;
        }
        Ok(if a.detailed_exitcode && planned.plan().has_changes() {
            2
        } else {
            0
        })
    })
}

fn print_plan(plan: &Plan, format: PlanFormat, g: &Global, cost: &Cost) -> Result<(), Failure> {
    match format {
        PlanFormat::Json => {
            // The plan's JSON with its "cost" object (SPEC.md, "Added in the third release").
            let mut value =
                serde_json::to_value(plan).map_err(|e| Failure::Message(e.to_string()))?;
            if let Some(object) = value.as_object_mut() {
                let cost =
                    serde_json::to_value(cost).map_err(|e| Failure::Message(e.to_string()))?;
                object.insert("cost".into(), cost);
            }
            super::print_json(&value)?;
        }
        PlanFormat::Markdown => {
            print!("{}", streamstack::ui::render_plan_markdown(plan));
            print!("{}", streamstack::cost::render(cost, true));
        }
        PlanFormat::Human => {
            print!("{}", streamstack::ui::render_plan(plan, stdout_style(g)));
            print!("{}", streamstack::cost::render(cost, false));
        }
    }
    Ok(())
}

/// `--out FILE`: the plan and what it was computed from, for `apply FILE`.
fn save(s: &Session, g: &Global, plan: &Plan, out: &Path, format: PlanFormat) -> Outcome {
    let file = PlanFile::new(s, &g.spec.vars, plan);
    let text = serde_json::to_string_pretty(&file).map_err(|e| Failure::Message(e.to_string()))?;
    std::fs::write(out, text)
        .map_err(|e| Failure::Message(format!("cannot write {}: {e}", out.display())))?;
    if format == PlanFormat::Human {
        println!(
            "\nSaved the plan to {}; apply it with: streamstack apply {}",
            out.display(),
            out.display()
        );
    }
    Ok(0)
}
