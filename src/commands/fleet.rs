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
        let all = resolve_targets(&file, &opts.aws, base_region).await?;
        let mut chosen = targets::select(all, &r.fleet.only)?;
        if r.fleet.retry_failed {
            let failed = board::failed_targets(&report_path)?;
            chosen.retain(|t| failed.contains(&t.id()));
            if chosen.is_empty() {
                eprintln!("Nothing to retry: every target of {} succeeded.", report_path.display());
                return Ok(0);
            }
        }
        let mode = board_mode(r.json);
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
/// The fleet's targets, its organizational units expanded to their accounts with clients in
/// `region` (made only when the file names an OU).
async fn resolve_targets(
    file: &streamstack::fleet::FleetFile,
    aws: &streamstack::aws::AwsOptions,
    region: Option<String>,
) -> streamstack::Result<Vec<streamstack::fleet::Target>> {
    let needs_org = file
        .targets
        .iter()
        .any(|t| matches!(t.who, streamstack::fleet::Who::OrganizationalUnit(_)));
    let org_clients = if needs_org {
        let aws = streamstack::aws::AwsOptions {
            region,
            ..aws.clone()
        };
        Some(streamstack::aws::Clients::new(&aws).await?)
    } else {
        None
    };
    targets::resolve(file, org_clients.as_ref()).await
}

/// How the board prints: NDJSON, lines redrawn on a terminal, or plain lines.
fn board_mode(json: bool) -> Mode {
    if json {
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Plain
    }
}

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

/// `plan|apply|destroy SPEC --fleet FLEET --engine stacksets` as the command line gave it.
pub struct StackSetsRequest<'a> {
    pub fleet: &'a FleetArgs,
    pub spec: &'a Path,
    /// `plan`, `apply` or `destroy`.
    pub verb: &'static str,
    pub json: bool,
    /// The command changes things and was not given --auto-approve.
    pub ask: bool,
    /// plan: exit 2 when there are changes.
    pub detailed_exitcode: bool,
    pub permission_model: Option<streamstack::cli::PermissionModelArg>,
}

/// The fleet as one stack set, run by AWS from the caller's (administrator) account: see
/// `streamstack::fleet::stacksets`.
pub fn stacksets(g: &Global, r: StackSetsRequest) -> Outcome {
    use streamstack::cloudformation::stacksets::{self as engine, PermissionModel};
    use streamstack::fleet::stacksets as glue;

    let Some(fleet_path) = r.fleet.fleet.as_deref() else {
        return Err(Failure::Message("--fleet FILE is needed".into()));
    };
    if !r.fleet.only.is_empty() || r.fleet.retry_failed {
        return Err(Failure::Message(
            "--only and --retry-failed work with the direct engine: a stack set is applied to \
             the whole fleet at once (AWS retries its own failed instances on the next apply)"
                .into(),
        ));
    }
    let file = streamstack::fleet::load_file(fleet_path).map_err(Failure::Spec)?;
    let stack = offline_stack(g, r.spec, &file)?;
    let model: PermissionModel = r.permission_model.map(Into::into).unwrap_or_default();
    let ous: Vec<String> = file
        .targets
        .iter()
        .filter_map(|t| match &t.who {
            streamstack::fleet::Who::OrganizationalUnit(ou) => Some(ou.clone()),
            _ => None,
        })
        .collect();
    if model == PermissionModel::ServiceManaged && ous.len() != file.targets.len() {
        return Err(Failure::Message(
            "--permission-model service-managed deploys to organizational units: every target \
             of the fleet must be an organizational_unit (use self-managed for accounts)"
                .into(),
        ));
    }
    let dir = r.spec.parent().unwrap_or(Path::new("."));
    let report_path = board::report_path(dir, &stack, fleet_path);
    if r.ask && !std::io::stdin().is_terminal() {
        return Err(Failure::Message(
            "refusing to make changes without confirmation: no terminal to ask on; pass --auto-approve".into(),
        ));
    }
    runtime()?.block_on(async {
        let open = open_options(g, streamstack::events::Events::none());
        let region = open
            .aws
            .region
            .clone()
            .or_else(|| file.regions.first().cloned())
            .or_else(|| {
                file.targets
                    .iter()
                    .find_map(|t| t.regions.as_ref().and_then(|r| r.first().cloned()))
            })
            .ok_or_else(|| {
                Failure::Message(
                    "--engine stacksets needs a region for the stack set: give --region or the \
                     fleet's regions"
                        .into(),
                )
            })?;
        let all = resolve_targets(&file, &open.aws, Some(region.clone())).await?;
        if all.is_empty() {
            return Err(Failure::Message("the fleet has no targets".into()));
        }
        glue::check_one_template(r.spec, &open.load, &all)?;
        let mode = board_mode(r.json);
        let printer = Arc::new(Printer::new(mode));
        let board: Arc<dyn run::Board> = printer.clone();
        let s = glue::admin_session(r.spec, &open, &region, &all, Arc::clone(&board)).await?;
        let opts = glue::options(
            model,
            ous,
            r.fleet.targets_in_flight,
            r.fleet.failure_tolerance,
        );
        if r.verb == "destroy" {
            if r.ask {
                confirm(&format!(
                    "\ndestroy stack set {stack} and its instances in every target of {}?",
                    fleet_path.display()
                ))?;
            }
            for t in &all {
                board.phase(t, "destroy");
            }
            let confirm_opts = confirm_options(r.spec, &stack, &open, r.fleet);
            // CloudFormation deletes no bucket that holds objects: the force_destroy ones are
            // emptied first; after the delete, whatever is left of the stack goes too.
            let emptied = glue::destroy_step(
                glue::DestroyStep::Empty,
                &all,
                &confirm_opts,
                Arc::clone(&board),
            )
            .await?;
            for (target, e) in &emptied {
                if let Err(e) = e {
                    tracing::warn!("{target}: {e}");
                }
            }
            let destroyed = engine::destroy(&s, &opts).await?;
            let swept = glue::destroy_step(
                glue::DestroyStep::Sweep,
                &all,
                &confirm_opts,
                Arc::clone(&board),
            )
            .await?;
            let report = glue::destroy_report(&destroyed, &all, &swept, board.as_ref());
            save(&report_path, &report);
            return finish(&report, &destroyed, r.json);
        }
        let planned = engine::plan(&s, &glue::engine_targets(&all), &opts).await?;
        if r.json {
            let mut v = serde_json::to_value(&planned).unwrap_or_default();
            v["type"] = serde_json::json!("stackset_plan");
            v["target"] = serde_json::json!(format!("{}/{region}", s.cx.env.account_id));
            v["has_changes"] = serde_json::json!(planned.has_changes());
            println!("{v}");
            for line in glue::plan_events(&planned, &all) {
                println!("{line}");
            }
        } else {
            println!(
                "Stack set {} in {} ({}):",
                planned.stack_set, s.cx.env.account_id, region
            );
            for line in planned.lines() {
                println!("  {line}");
            }
        }
        if r.verb == "plan" {
            let report = glue::plan_report(&planned, &all);
            if r.json {
                println!("{}", board::report_json(&report));
            }
            return Ok(if r.detailed_exitcode && planned.has_changes() {
                2
            } else {
                0
            });
        }
        if r.ask {
            confirm(&format!(
                "\napply stack set {stack} to every target of {}?",
                fleet_path.display()
            ))?;
        }
        for t in &all {
            board.phase(t, "apply");
        }
        let applied = engine::apply(&s, &planned, &opts).await?;
        let confirm_opts = confirm_options(r.spec, &stack, &open, r.fleet);
        let report = glue::confirm(&applied, &all, &confirm_opts, Arc::clone(&board)).await?;
        save(&report_path, &report);
        finish(&report, &applied, r.json)
    })
}

fn confirm_options(
    spec: &Path,
    stack: &str,
    open: &streamstack::ops::OpenOptions,
    fleet: &FleetArgs,
) -> streamstack::fleet::stacksets::ConfirmOptions {
    streamstack::fleet::stacksets::ConfirmOptions {
        spec: spec.to_path_buf(),
        stack: stack.to_string(),
        open: open.clone(),
        in_flight: fleet.targets_in_flight,
        parallelism: streamstack::executor::DEFAULT_PARALLELISM,
    }
}

fn save(path: &Path, report: &FleetReport) {
    if let Err(e) = board::save(path, report) {
        tracing::warn!("the fleet report was not saved: {e}");
    }
}

/// The end of a stack-set run: the report (with the engine's own as `stack_set`), the exit.
fn finish(
    report: &FleetReport,
    engine: &streamstack::cloudformation::stacksets::StackSetReport,
    json: bool,
) -> Outcome {
    if json {
        let mut v = board::report_json(report);
        v["engine"] = serde_json::json!("stacksets");
        v["stack_set"] = serde_json::to_value(engine).unwrap_or_default();
        println!("{v}");
    } else {
        for o in &engine.operations {
            println!(
                "stack set operation {} {}: {}{}",
                o.action,
                o.id,
                o.status,
                o.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        print!("{}", board::summary(report));
    }
    if report.ok && engine.ok {
        Ok(0)
    } else {
        let failed: Vec<&str> = report
            .targets
            .iter()
            .filter(|t| !t.ok)
            .map(|t| t.target.as_str())
            .collect();
        Err(Failure::Message(format!(
            "{} of {} targets did not succeed with stack set {}: {}",
            failed.len(),
            report.targets.len(),
            engine.stack_set,
            failed.join(", ")
        )))
    }
}
