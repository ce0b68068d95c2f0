//! `streamstack apply SPEC|PLANFILE [--auto-approve] [--json]`

use std::path::Path;

use streamstack::ops::{self, PlanFile};

use super::{confirm, event_printer, finish, locked, open_options, runtime, stdout_style, Outcome};
use streamstack::cli::Global;

pub fn run(
    g: &Global,
    target: &Path,
    auto_approve: bool,
    json: bool,
    parallelism: usize,
    lock_timeout: std::time::Duration,
    wait_bootstrap: Option<std::time::Duration>,
) -> Outcome {
    super::approval_possible(auto_approve)?;
    let saved = PlanFile::read(target);
    let (spec, vars) = match &saved {
        Some(f) => (f.spec_path.clone(), f.vars.clone()),
        None => (target.to_path_buf(), g.vars.clone()),
    };
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let mut opts = open_options(g, event_printer(style, json));
        opts.load.vars = vars;
        let s = ops::open(&spec, &opts).await?;
        // One apply or destroy at a time: the lock comes first and the plan is made under it, so
        // it is read once (as Terraform locks its state before refreshing). An apply with nothing
        // to do, or a refused saved plan, releases the lock having changed nothing else.
        let work = run_locked(
            &s,
            saved.as_ref(),
            auto_approve,
            json,
            parallelism,
            wait_bootstrap,
            style,
        );
        locked(&s, "apply", lock_timeout, work).await
    })
}

async fn run_locked(
    s: &ops::Session,
    saved: Option<&PlanFile>,
    auto_approve: bool,
    json: bool,
    parallelism: usize,
    wait_bootstrap: Option<std::time::Duration>,
    style: streamstack::ui::Style,
) -> Outcome {
    {
        let (plan, live) = s.plan_for_apply(saved).await?;
        if json {
            println!("{}", serde_json::json!({"type": "planned", "plan": plan}));
        } else {
            print!("{}", streamstack::ui::render_plan(&plan, style));
        }
        if !plan.has_changes() {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"type": "report", "report": streamstack::executor::Report::default()})
                );
            }
            return Ok(0);
        }
        if let Some(cfn) = live
            .iter()
            .filter(|l| l.ours)
            .find_map(|l| l.resource.tags.get("aws:cloudformation:stack-name"))
        {
            eprintln!(
                "warning: this stack's resources belong to CloudFormation stack {cfn}; changes made \
                 here drift from it (apply with --engine cloudformation to change it through \
                 CloudFormation)"
            );
        }
        // A saved plan too: without a terminal or --auto-approve, nothing is changed.
        if !auto_approve {
            confirm("\nDo you want to perform these actions?")?;
        }
        let report = s.apply(&plan, &live, parallelism).await;
        let waited = match wait_bootstrap {
            Some(t) if report.ok() => s.wait_reported(&plan, t).await,
            _ => Ok(()),
        };
        if json {
            println!(
                "{}",
                serde_json::json!({"type": "report", "report": report})
            );
        }
        waited?;
        finish(
            &report,
            format!(
                "\nApply complete! Resources: {} added, {} changed, {} destroyed.\n\
                 Took {:.1} s; the critical path (the longest chain of operations that wait for \
                 each other) took {:.1} s: {}",
                plan.summary.add,
                plan.summary.change,
                plan.summary.destroy,
                report.makespan_s,
                report.critical_path_s,
                report.critical_path.join(" → ")
            ),
            json,
        )
    }
}
