//! `plan|apply|destroy ... --engine cloudformation`: the same commands, deployed as one
//! CloudFormation stack through change sets (`streamstack::cloudformation::engine`).

use std::path::Path;

use streamstack::cloudformation::engine::{self, StackReport};
use streamstack::events::Events;
use streamstack::ops::{self, PlanFile, Session};

use super::{
    approval_possible, confirm, event_printer, locked, open_options, open_spec_or_stack, runtime,
    stdout_style, Failure, Outcome,
};
use streamstack::cli::{Global, PlanFormat};

fn print_plan(plan: &streamstack::plan::Plan, format: PlanFormat, g: &Global) -> Outcome {
    match format {
        PlanFormat::Json => {
            let text =
                serde_json::to_string_pretty(plan).map_err(|e| Failure::Message(e.to_string()))?;
            println!("{text}");
        }
        PlanFormat::Markdown => print!("{}", streamstack::ui::render_plan_markdown(plan)),
        PlanFormat::Human => print!("{}", streamstack::ui::render_plan(plan, stdout_style(g))),
    }
    Ok(0)
}

pub fn plan(
    g: &Global,
    spec: &Path,
    format: PlanFormat,
    out: Option<&Path>,
    detailed: bool,
) -> Outcome {
    if out.is_some() {
        return Err(Failure::Message(
            "--out saves streamstack's own plans; with --engine cloudformation the change set is \
             made again at apply"
                .into(),
        ));
    }
    runtime()?.block_on(async {
        let s = match ops::open(spec, &open_options(g, Events::none())).await {
            Err(streamstack::Error::Spec(d)) if format == PlanFormat::Json => {
                println!("{}", streamstack::diagnostics::to_json(&d));
                return Err(Failure::Spec(d));
            }
            other => other?,
        };
        let cs = engine::change_set(&s).await?;
        // The change set was only for showing: it goes, whatever printing does.
        let discarded = engine::discard(&s, &cs).await;
        print_plan(&cs.plan, format, g)?;
        discarded?;
        Ok(if detailed && cs.plan.has_changes() {
            2
        } else {
            0
        })
    })
}

fn print_report(report: &StackReport, json: bool, done_line: &str) -> Outcome {
    if json {
        println!(
            "{}",
            serde_json::json!({"type": "report", "report": report})
        );
    }
    if report.ok {
        if json {
            eprintln!("{done_line}");
        } else {
            println!("{done_line}");
        }
        return Ok(0);
    }
    let mut msg = format!(
        "CloudFormation stack {} ended {}",
        report.stack, report.status
    );
    if let Some(f) = &report.first_failure {
        msg.push_str(&format!(
            "\n  first failure: {} ({} {}) {}: {}",
            f.address, f.resource_type, f.logical_id, f.status, f.reason
        ));
    }
    if let Some(r) = &report.rollback {
        msg.push_str(&format!("\n  {r}"));
    }
    Err(Failure::Message(msg))
}

pub fn apply(
    g: &Global,
    target: &Path,
    auto_approve: bool,
    json: bool,
    parallelism: usize,
    lock_timeout: std::time::Duration,
    wait_bootstrap: Option<std::time::Duration>,
) -> Outcome {
    approval_possible(auto_approve)?;
    if PlanFile::read(target).is_some() {
        return Err(Failure::Message(
            "a saved plan is streamstack's own; with --engine cloudformation, apply the spec"
                .into(),
        ));
    }
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let s = ops::open(target, &open_options(g, event_printer(style, json))).await?;
        let work = apply_locked(&s, auto_approve, json, parallelism, wait_bootstrap, g);
        locked(&s, "apply", lock_timeout, work).await
    })
}

async fn apply_locked(
    s: &Session,
    auto_approve: bool,
    json: bool,
    parallelism: usize,
    wait_bootstrap: Option<std::time::Duration>,
    g: &Global,
) -> Outcome {
    let cs = engine::change_set(s).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"type": "planned", "plan": cs.plan})
        );
    } else {
        print!(
            "{}",
            streamstack::ui::render_plan(&cs.plan, stdout_style(g))
        );
    }
    if cs.plan.has_changes() && !auto_approve {
        if let Err(e) = confirm("\nDo you want CloudFormation to perform these actions?") {
            engine::discard(s, &cs).await?;
            return Err(e);
        }
    }
    let report = engine::execute(s, &cs, parallelism).await?;
    let waited = match wait_bootstrap {
        Some(t) if report.ok && cs.plan.has_changes() => s.wait_reported(&cs.plan, t).await,
        _ => Ok(()),
    };
    let code = print_report(
        &report,
        json,
        &format!(
            "\nApply complete! CloudFormation stack {} is {}: {} added, {} changed, {} destroyed{}.",
            report.stack,
            report.status,
            cs.plan.summary.add,
            cs.plan.summary.change,
            cs.plan.summary.destroy,
            if report.completed_by_streamstack.is_empty() {
                String::new()
            } else {
                format!(
                    "; streamstack set what CloudFormation left short: {}",
                    report.completed_by_streamstack.join("; ")
                )
            }
        ),
    )?;
    waited?;
    Ok(code)
}

pub fn destroy(
    g: &Global,
    spec: Option<&Path>,
    stack: Option<&str>,
    auto_approve: bool,
    json: bool,
    lock_timeout: std::time::Duration,
) -> Outcome {
    approval_possible(auto_approve)?;
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let opts = open_options(g, event_printer(style, json));
        let s = open_spec_or_stack(spec, stack, &opts).await?;
        let work = async {
            let name = engine::stack_name(&s)?;
            let deployed = engine::owned(&s).await?;
            let what = match &deployed {
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
            if !auto_approve {
                confirm(&format!("\nDestroy {what}?"))?;
            }
            let report = engine::destroy(
                &s,
                deployed.as_ref(),
                streamstack::executor::DEFAULT_PARALLELISM,
            )
            .await?;
            print_report(
                &report,
                json,
                &format!(
                    "\nDestroy complete! Nothing of stack {} remains.",
                    s.cx.stack
                ),
            )
        };
        locked(&s, "destroy", lock_timeout, work).await
    })
}
