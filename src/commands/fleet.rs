//! `--fleet FLEET` on plan, apply, check, output, destroy, stacks and gc: the command in every
//! target of a fleet file (the library is `streamstack::fleet`); prints the board, the
//! pre-flight table and the summary, saves the report for `--retry-failed`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use streamstack::cli::{Engine, FleetArgs, Global};
use streamstack::fleet::board::{self, Mode, Printer};
use streamstack::fleet::run::{self, Command, FleetReport, RunOptions};
use streamstack::fleet::{preflight, targets};

use super::{confirm, load_options, open_options, runtime, stdout_style, Failure, Outcome};

/// One fleet command as the command line gave it.
pub struct Request<'a> {
    pub fleet: &'a FleetArgs,
    pub spec: Option<&'a Path>,
    pub command: Command,
    pub json: bool,
    /// The command changes things and was not given --auto-approve.
    pub ask: bool,
    pub lock_timeout: std::time::Duration,
    pub engine: Engine,
}

pub fn run(g: &Global, r: Request) -> Outcome {
    let Some(fleet_path) = r.fleet.fleet.as_deref() else {
        return Err(Failure::Message("--fleet FILE is needed".into()));
    };
    if !matches!(r.engine, Engine::Streamstack) {
        return Err(Failure::Message(
            "--fleet runs with streamstack's own engine (--engine streamstack)".into(),
        ));
    }
    let file = streamstack::fleet::load_file(fleet_path).map_err(Failure::Spec)?;
    let stack = match r.spec {
        Some(spec) => offline_stack(g, spec, &file)?,
        None => "fleet".to_string(),
    };
    let dir = r
        .spec
        .unwrap_or(fleet_path)
        .parent()
        .unwrap_or(Path::new("."));
    let report_path = board::report_path(dir, &stack, fleet_path);
    if r.ask {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Message(
                "refusing to make changes without confirmation: no terminal to ask on; pass --auto-approve".into(),
            ));
        }
        confirm(&format!(
            "\n{} stack {stack} in every target of {}?",
            r.command.name(),
            fleet_path.display()
        ))?;
    }
    runtime()?.block_on(async {
        let opts = open_options(g, streamstack::events::Events::none());
        let base_region = opts.aws.region.clone().or_else(|| file.regions.first().cloned());
        let needs_org = file
            .targets
            .iter()
            .any(|t| matches!(t.who, streamstack::fleet::Who::OrganizationalUnit(_)));
        let org_clients = if needs_org {
            let aws = streamstack::aws::AwsOptions { region: base_region, ..opts.aws.clone() };
            Some(streamstack::aws::Clients::new(&aws).await?)
        } else {
            None
        };
        let all = targets::resolve(&file, org_clients.as_ref()).await?;
        let mut chosen = targets::select(all, &r.fleet.only)?;
        if r.fleet.retry_failed {
            let failed = board::failed_targets(&report_path)?;
            chosen.retain(|t| failed.contains(&t.id()));
            if chosen.is_empty() {
                eprintln!("Nothing to retry: every target of {} succeeded.", report_path.display());
                return Ok(0);
            }
        }
        let mode = if r.json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Live
        } else {
            Mode::Plain
        };
        let printer = Arc::new(Printer::new(mode));
        let run_opts = RunOptions {
            spec: r.spec.map(Path::to_path_buf),
            stack,
            open: opts,
            in_flight: r.fleet.targets_in_flight,
            failure_tolerance: r.fleet.failure_tolerance,
            lock_timeout: r.lock_timeout,
        };
        let is_plan = matches!(r.command, Command::Plan);
        let saves = matches!(
            r.command,
            Command::Apply { .. } | Command::Destroy { .. } | Command::Check(_) | Command::Gc { .. }
        );
        let report = run::run(chosen, r.command, run_opts, printer).await?;
        if saves {
            if let Err(e) = board::save(&report_path, &report) {
                tracing::warn!("the fleet report was not saved: {e}");
            }
        }
        print_end(g, &report, r.json, is_plan);
        if report.ok {
            Ok(0)
        } else if report.stopped_by_preflight {
            Err(Failure::Message(
                "the pre-flight found quotas too small for the spec; nothing was changed in any target".into(),
            ))
        } else {
            let failed: Vec<&str> = report.targets.iter().filter(|t| !t.ok).map(|t| t.target.as_str()).collect();
            Err(Failure::Message(format!(
                "{} of {} targets did not succeed: {}",
                failed.len(),
                report.targets.len(),
                failed.join(", ")
            )))
        }
    })
}

/// The spec checked offline once (with the first target's variables and region), before any
/// AWS call; its stack name.
fn offline_stack(
    g: &Global,
    spec: &Path,
    file: &streamstack::fleet::FleetFile,
) -> Result<String, Failure> {
    let mut load = load_options(g);
    load.region = None;
    if let Some(t) = file.targets.first() {
        load.vars.extend(t.vars.iter().cloned());
        load.fleet_region = t
            .regions
            .as_ref()
            .and_then(|r| r.first())
            .or(file.regions.first())
            .cloned();
    }
    let v = streamstack::derive::load_file(spec, &load).map_err(Failure::Spec)?;
    Ok(v.spec.stack)
}

fn print_end(g: &Global, report: &FleetReport, json: bool, is_plan: bool) {
    if json {
        println!("{}", board::report_json(report));
        return;
    }
    if is_plan {
        let style = stdout_style(g);
        for t in &report.targets {
            let plan = t
                .detail
                .get("plan")
                .cloned()
                .and_then(|p| serde_json::from_value(p).ok());
            if let Some(plan) = plan {
                println!("\n== {} ({}) ==", t.target, t.name);
                print!("{}", streamstack::ui::render_plan(&plan, style));
            }
        }
    }
    let table = preflight::table(&report.preflight, is_plan);
    if !table.is_empty() {
        println!("\nPre-flight (quotas against what the plan creates):\n{table}");
    }
    print!("{}", board::summary(report));
}
