//! `--fleet FLEET --engine stacksets`: the fleet's targets deployed by the StackSets engine
//! ([`crate::cloudformation::stacksets`]) from the caller's (administrator) account, then
//! confirmed target by target with streamstack's own plan through the direct fan-out.
//!
//! - the stack set lives in the administrator account, in `--region` or the fleet's first
//!   region; the spec's session is opened there ([`admin_session`]);
//! - every target must render the same template ([`check_one_template`]): a stack set has one;
//! - `--targets-in-flight` is the operations' max concurrency, `--failure-tolerance` their
//!   failure tolerance ([`options`]);
//! - per-instance events reach the board under their target (`ACCOUNT/REGION`); the stack
//!   set's own events under the administrator's account and region;
//! - the result is a [`FleetReport`] like the direct engine's: one row per target, `ok` when its
//!   instance is `CURRENT` and its own plan shows no changes (apply), or when it was deleted
//!   (destroy).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::aws::{AwsOptions, Clients};
use crate::cloudformation::stacksets::{
    self, PermissionModel, StackSetOptions, StackSetPlan, StackSetReport,
};
use crate::events::{Event, Events};
use crate::ops::{self, OpenOptions, Session};
use crate::plan::Plan;
use crate::spec::LoadOptions;
use crate::{Error, Result};

use super::preflight::Row;
use super::run::{self, Board, Command, FleetReport, RunOptions, TargetResult};
use super::Target;

/// The fleet's targets as the engine names them.
pub fn engine_targets(targets: &[Target]) -> Vec<stacksets::Target> {
    targets
        .iter()
        .map(|t| stacksets::Target::new(&t.account, &t.region))
        .collect()
}

/// The engine's options from the fleet flags: `--targets-in-flight` accounts at once per
/// region, `--failure-tolerance` failed accounts per region.
pub fn options(
    model: PermissionModel,
    organizational_units: Vec<String>,
    in_flight: usize,
    failure_tolerance: Option<usize>,
) -> StackSetOptions {
    StackSetOptions {
        permission_model: model,
        organizational_units,
        max_concurrent: Some(u32::try_from(in_flight.max(1)).unwrap_or(u32::MAX)),
        failure_tolerance: failure_tolerance.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        ..StackSetOptions::default()
    }
}

/// Refuses a fleet whose targets render different templates (per-target variables that change
/// resources), offline: each target's spec loaded with its variables, account and region.
pub fn check_one_template(spec: &Path, load: &LoadOptions, targets: &[Target]) -> Result<()> {
    let stamps = crate::model::Stamps {
        created_at: "2000-01-01T00:00:00Z".into(),
        expires_at: None,
    };
    let mut rendered = Vec::new();
    // Targets with the same variables render the same template: one per distinct set.
    let mut seen: BTreeMap<Vec<(String, String)>, ()> = BTreeMap::new();
    for t in targets {
        if seen.insert(t.vars.clone(), ()).is_some() {
            continue;
        }
        let mut o = load.clone();
        o.vars.extend(t.vars.iter().cloned());
        o.region = None;
        o.fleet_region = Some(t.region.clone());
        o.account_id = Some(t.account.clone());
        let v = crate::derive::load_file(spec, &o).map_err(Error::Spec)?;
        let template = crate::cloudformation::template(&v.model, "", &stamps)?;
        rendered.push((stacksets::Target::new(&t.account, &t.region), template));
    }
    stacksets::one_template(&rendered)
}

/// The spec's session in the administrator account, in `region` (where the stack set lives).
pub async fn admin_session(
    spec: &Path,
    open: &OpenOptions,
    region: &str,
    events: Events,
) -> Result<Session> {
    let aws = AwsOptions {
        region: Some(region.to_string()),
        ..open.aws.clone()
    };
    let clients = Clients::new(&aws).await?;
    let mut o = open.clone();
    o.load.region = None;
    o.load.fleet_region = Some(region.to_string());
    o.aws = aws;
    o.events = events;
    ops::open_with(spec, &o, clients).await
}

/// Events to the board: an instance's (`stackset.ACCOUNT/REGION`) under its target, the stack
/// set's own under `admin`.
pub fn board_events(targets: &[Target], admin: Target, board: Arc<dyn Board>) -> Events {
    let by_id: BTreeMap<String, Target> = targets.iter().map(|t| (t.id(), t.clone())).collect();
    Events::call(move |e| {
        let key = address(e).to_string();
        let t = key
            .strip_prefix("stackset.")
            .and_then(|id| by_id.get(id))
            .unwrap_or(&admin);
        board.event(t, e);
    })
}

fn address(e: &Event) -> &crate::model::Address {
    match e {
        Event::Start { address, .. }
        | Event::Progress { address, .. }
        | Event::Retry { address, .. }
        | Event::Done { address, .. }
        | Event::Failed { address, .. }
        | Event::Skipped { address, .. } => address,
    }
}

/// The administrator's own row on the board (events of the stack set itself).
pub fn admin_target(account: &str, region: &str, stack_set: &str) -> Target {
    Target {
        account: account.to_string(),
        region: region.to_string(),
        name: format!("stack set {stack_set}"),
        vars: Vec::new(),
        role_arn: String::new(),
        external_id: None,
    }
}

/// A plan as a fleet report: every target ok (the plan reads only), its instance change as
/// the detail.
pub fn plan_report(plan: &StackSetPlan, targets: &[Target]) -> FleetReport {
    let change = |t: &stacksets::Target| {
        if plan.add.contains(t) {
            "add"
        } else if plan.outdated.contains(t) {
            "update"
        } else if plan.template_changed || !plan.parameters.is_empty() {
            "update"
        } else {
            "none"
        }
    };
    let results = targets
        .iter()
        .map(|t| {
            let et = stacksets::Target::new(&t.account, &t.region);
            row(t, true, None, "plan", json!({"instance": change(&et)}))
        })
        .collect();
    report("plan", results)
}

/// After the engine's apply: each target's instance status, then streamstack's own plan in
/// each target whose instance is `CURRENT` (assuming its role): a target whose plan still
/// shows changes failed, with the difference.
pub async fn confirm(
    applied: &StackSetReport,
    targets: &[Target],
    opts: RunOptions,
    board: Arc<dyn Board>,
) -> Result<FleetReport> {
    let current: Vec<stacksets::Target> = applied.current_targets();
    let failed: BTreeMap<String, String> = applied
        .failed_targets()
        .into_iter()
        .map(|(t, why)| (t.to_string(), why))
        .collect();
    let (to_confirm, others): (Vec<Target>, Vec<Target>) = targets
        .iter()
        .cloned()
        .partition(|t| current.contains(&stacksets::Target::new(&t.account, &t.region)));
    let mut results: Vec<TargetResult> = others
        .iter()
        .map(|t| {
            let why = failed
                .get(&t.id())
                .cloned()
                .unwrap_or_else(|| "the stack set has no instance in this target".into());
            let r = row(t, false, Some(format!("stack instance: {why}")), "apply", Value::Null);
            board.finished(&r);
            r
        })
        .collect();
    if !to_confirm.is_empty() {
        let quiet: Arc<dyn Board> = Arc::new(Confirming(Arc::clone(&board)));
        let own = run::run(to_confirm, Command::Plan, opts, quiet).await?;
        for mut r in own.targets {
            let plan: Option<Plan> = r
                .detail
                .get("plan")
                .cloned()
                .and_then(|p| serde_json::from_value(p).ok());
            r.phase = "confirm".into();
            match (&plan, r.ok) {
                (Some(p), true) if p.has_changes() => {
                    let diff: Vec<String> = p
                        .changes
                        .iter()
                        .map(|c| format!("{:?} {}", c.action, c.address))
                        .collect();
                    r.ok = false;
                    r.error = Some(format!(
                        "the instance is CURRENT but streamstack's own plan still shows changes: {}",
                        diff.join(", ")
                    ));
                }
                (None, true) => {
                    r.ok = false;
                    r.error = Some("streamstack's own plan gave no result".into());
                }
                _ => {}
            }
            board.finished(&r);
            results.push(r);
        }
    }
    Ok(report("apply", results))
}

/// After the engine's destroy: a target is ok when the destroy succeeded and left no instance
/// there; a failed instance gives its reason.
pub fn destroy_report(destroyed: &StackSetReport, targets: &[Target], board: &dyn Board) -> FleetReport {
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    for o in &destroyed.operations {
        for i in &o.results {
            if i.detailed_status.as_deref() == Some("FAILED") {
                let why = i.reason.clone().unwrap_or_else(|| "FAILED".into());
                reasons.insert(i.target().to_string(), why);
            }
        }
    }
    let left: Vec<String> = destroyed
        .instances
        .iter()
        .map(|i| i.target().to_string())
        .collect();
    let results = targets
        .iter()
        .map(|t| {
            let id = t.id();
            let error = reasons
                .get(&id)
                .map(|w| format!("stack instance not deleted: {w}"))
                .or_else(|| {
                    left.contains(&id)
                        .then(|| "the stack instance is still there".to_string())
                })
                .or_else(|| {
                    (!destroyed.ok).then(|| {
                        "the stack set's delete did not succeed (see the report's operations)"
                            .to_string()
                    })
                });
            let r = row(t, error.is_none(), error, "destroy", Value::Null);
            board.finished(&r);
            r
        })
        .collect();
    report("destroy", results)
}

/// The direct fan-out's board during the confirmation: phases and events go through, each
/// target's end is reported once the confirmation has judged it.
struct Confirming(Arc<dyn Board>);

impl Board for Confirming {
    fn phase(&self, target: &Target, _phase: &str) {
        self.0.phase(target, "confirm");
    }
    fn total(&self, _target: &Target, _total: usize) {}
    fn event(&self, target: &Target, event: &Event) {
        self.0.event(target, event);
    }
    fn finished(&self, _result: &TargetResult) {}
    fn preflight(&self, _rows: &[Row]) {}
}

fn row(t: &Target, ok: bool, error: Option<String>, phase: &str, detail: Value) -> TargetResult {
    TargetResult {
        target: t.id(),
        account: t.account.clone(),
        region: t.region.clone(),
        name: t.name.clone(),
        ok,
        error,
        skipped: false,
        phase: phase.into(),
        elapsed_s: 0.0,
        detail,
    }
}

fn report(command: &str, mut results: Vec<TargetResult>) -> FleetReport {
    results.sort_by(|a, b| a.target.cmp(&b.target));
    FleetReport {
        command: command.into(),
        ok: results.iter().all(|r| r.ok),
        targets: results,
        preflight: Vec::new(),
        stopped_by_preflight: false,
    }
}

/// Seconds since `start`, to a tenth.
pub fn elapsed(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(account: &str, vars: &[(&str, &str)]) -> Target {
        Target {
            account: account.into(),
            region: "eu-west-1".into(),
            name: account.into(),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            role_arn: String::new(),
            external_id: None,
        }
    }

    #[test]
    fn the_fleet_flags_become_operation_preferences() {
        let o = options(PermissionModel::SelfManaged, vec![], 8, Some(2));
        assert_eq!(o.max_concurrent, Some(8));
        assert_eq!(o.failure_tolerance, Some(2));
        let p = stacksets::preferences(30, &o);
        assert_eq!((p.max_concurrent, p.failure_tolerance, p.soft), (8, 2, true));
        // Zero in flight still moves; no tolerance given: go on whatever fails.
        let o = options(PermissionModel::ServiceManaged, vec!["ou-a".into()], 0, None);
        assert_eq!(o.max_concurrent, Some(1));
        assert_eq!(stacksets::preferences(3, &o).failure_tolerance, 2);
        assert_eq!(o.organizational_units, ["ou-a"]);
    }

    #[test]
    fn a_destroy_names_each_target_that_kept_its_instance() {
        let targets = [t("111111111111", &[]), t("222222222222", &[])];
        let failed = stacksets::Instance {
            account: "222222222222".into(),
            region: "eu-west-1".into(),
            status: "INOPERABLE".into(),
            detailed_status: Some("FAILED".into()),
            reason: Some("bucket not empty".into()),
            organizational_unit: None,
        };
        let destroyed = StackSetReport {
            engine: "stacksets",
            stack_set: "lab".into(),
            ok: false,
            operations: vec![stacksets::OperationReport {
                id: "op".into(),
                action: "DELETE".into(),
                status: "FAILED".into(),
                reason: None,
                results: vec![failed.clone()],
            }],
            instances: vec![failed],
            deleted: false,
            makespan_s: 0.0,
        };
        let board = super::super::board::Printer::new(super::super::board::Mode::Json);
        let r = destroy_report(&destroyed, &targets, &board);
        assert!(!r.ok);
        assert_eq!(r.targets.len(), 2);
        assert!(!r.targets[0].ok, "the operation failed as a whole");
        assert!(
            r.targets[1]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("bucket not empty")),
            "{:?}",
            r.targets[1]
        );
    }

    #[test]
    fn targets_with_the_same_variables_share_a_template() {
        let dir = std::env::temp_dir().join(format!("ss-onetpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = dir.join("s.yaml");
        std::fs::write(
            &spec,
            "version: 1\nstack: lab\nregion: eu-west-1\nvars:\n  hours: \"24\"\n\
             streams:\n  s:\n    mode: provisioned\n    shards: 1\n    encryption: none\n\
             \x20   retention_hours: \"{{ vars.hours }}\"\n",
        )
        .unwrap();
        let load = LoadOptions::default();
        let same = [t("111111111111", &[]), t("222222222222", &[])];
        check_one_template(&spec, &load, &same).expect("one template");
        let differ = [t("111111111111", &[]), t("222222222222", &[("hours", "48")])];
        let e = check_one_template(&spec, &load, &differ).expect_err("two templates");
        assert!(e.to_string().contains("222222222222"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
