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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::aws::{AwsOptions, Clients};
use crate::cloudformation::stacksets::{
    self, PermissionModel, StackSetOptions, StackSetPlan, StackSetReport,
};
use crate::events::{Event, Events};
use crate::ops::{self, OpenOptions, Session};
use crate::plan::{Action, Summary};
use crate::spec::LoadOptions;
use crate::{Error, Result};

use super::run::{self, Board, FleetReport, TargetResult};
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

/// The spec's session in the administrator account, in `region` (where the stack set lives),
/// its events on `board`: an instance's under its target, the stack set's own under the
/// administrator's account and region.
pub async fn admin_session(
    spec: &Path,
    open: &OpenOptions,
    region: &str,
    targets: &[Target],
    board: Arc<dyn Board>,
) -> Result<Session> {
    let aws = AwsOptions {
        region: Some(region.to_string()),
        ..open.aws.clone()
    };
    let clients = Clients::new(&aws).await?;
    let account = clients.account_id().await?;
    let stack = spec
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let admin = admin_target(&account, region, &stack);
    let mut o = open.clone();
    o.load.region = None;
    o.load.fleet_region = Some(region.to_string());
    o.aws = aws;
    o.events = board_events(targets, admin, board);
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
pub fn admin_target(account: &str, region: &str, spec: &str) -> Target {
    Target {
        account: account.to_string(),
        region: region.to_string(),
        name: format!("stack set of {spec}"),
        vars: Vec::new(),
        role_arn: String::new(),
        external_id: None,
    }
}

/// The plan's NDJSON lines per instance: `{"type":"instance_plan","target":"ACCOUNT/REGION",
/// "change":"add|update|none|remove"}`, the fleet's targets first, then the instances no
/// longer targeted.
pub fn plan_events(plan: &StackSetPlan, targets: &[Target]) -> Vec<Value> {
    let report = plan_report(plan, targets);
    let mut out: Vec<Value> = report
        .targets
        .iter()
        .map(|t| json!({"type": "instance_plan", "target": t.target, "change": t.detail["instance"]}))
        .collect();
    out.extend(
        plan.remove
            .iter()
            .map(|t| json!({"type": "instance_plan", "target": t.to_string(), "change": "remove"})),
    );
    out
}

/// A plan as a fleet report: every target ok (the plan reads only), its instance change as
/// the detail.
pub fn plan_report(plan: &StackSetPlan, targets: &[Target]) -> FleetReport {
    let change = |t: &stacksets::Target| {
        if plan.add.contains(t) {
            "add"
        } else if plan.outdated.contains(t) || plan.template_changed || !plan.parameters.is_empty()
        {
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

/// How the confirmation reaches the targets.
#[derive(Clone)]
pub struct ConfirmOptions {
    pub spec: PathBuf,
    /// Names the run in AssumeRole's session name.
    pub stack: String,
    pub open: OpenOptions,
    pub in_flight: usize,
    pub parallelism: usize,
}

/// After the engine's apply: each target's instance status, then streamstack's own plan in
/// each target whose instance is `CURRENT` (assuming its role), as the CloudFormation engine
/// does in one account: what CloudFormation left short in place (an attribute an
/// implementation skipped) is set by streamstack's executor and named in the detail
/// (`completed_by_streamstack`); anything else the plan still shows (a create, replace or
/// delete) fails the target with the difference.
pub async fn confirm(
    applied: &StackSetReport,
    targets: &[Target],
    opts: &ConfirmOptions,
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
            let r = row(
                t,
                false,
                Some(format!("stack instance: {why}")),
                "apply",
                Value::Null,
            );
            board.finished(&r);
            r
        })
        .collect();
    if !to_confirm.is_empty() {
        let (base, session_name) = base(opts, &to_confirm).await?;
        let done: Vec<TargetResult> = futures::stream::iter(to_confirm.into_iter().map(|t| {
            let (base, session_name, board) = (&base, &session_name, Arc::clone(&board));
            async move {
                let started = Instant::now();
                board.phase(&t, "confirm");
                let (ok, error, detail) =
                    match confirm_one(base, session_name, opts, &board, &t).await {
                        Ok(Ok(detail)) => (true, None, detail),
                        Ok(Err((why, detail))) => (false, Some(why), detail),
                        Err(e) => (false, Some(e.to_string()), Value::Null),
                    };
                let mut r = row(&t, ok, error, "confirm", detail);
                r.elapsed_s = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
                board.finished(&r);
                r
            }
        }))
        .buffer_unordered(opts.in_flight.max(1))
        .collect()
        .await;
        results.extend(done);
    }
    Ok(report("apply", results))
}

/// What one target's confirmation found: the detail, or why it failed and the detail.
type Confirmed = std::result::Result<Value, (String, Value)>;

async fn confirm_one(
    base: &Clients,
    session_name: &str,
    opts: &ConfirmOptions,
    board: &Arc<dyn Board>,
    t: &Target,
) -> Result<Confirmed> {
    let s = target_session(base, session_name, opts, board, t).await?;
    let live = s.live().await?;
    let plan = s.plan(&live)?;
    let (fix, rest): (Vec<_>, Vec<_>) = plan
        .changes
        .iter()
        .cloned()
        // Attributes CloudFormation left short are set in place; a resource the stack instance
        // lacks although it is CURRENT (an emulator that skips a resource type: moto's
        // CloudFormation has no AWS::KinesisFirehose::DeliveryStream) is created by
        // streamstack, tagged as the stack's, so the target ends whole and `destroy` sweeps it.
        // A replace or a delete still fails the target: the stack set made something else.
        .partition(|c| matches!(c.action, Action::Update | Action::Create));
    let mut detail = json!({"summary": plan.summary, "plan": plan});
    if !rest.is_empty() {
        let diff: Vec<String> = rest
            .iter()
            .map(|c| format!("{} {}", c.action.symbol(), c.address))
            .collect();
        return Ok(Err((
            format!(
                "the stack instance is CURRENT, but streamstack's own plan still shows: {}",
                diff.join(", ")
            ),
            detail,
        )));
    }
    if fix.is_empty() {
        return Ok(Ok(detail));
    }
    let done: Vec<String> = fix
        .iter()
        .map(|c| {
            if c.action == Action::Create {
                return format!("{}: created (the stack instance lacks it)", c.address);
            }
            let names: Vec<&str> = c.attributes.iter().map(|a| a.name.as_str()).collect();
            format!("{}: {}", c.address, names.join(", "))
        })
        .collect();
    board.total(t, fix.len());
    let mut fixing = plan.clone();
    fixing.summary = Summary::of(&fix);
    fixing.changes = fix;
    let r = s.apply(&fixing, &live, opts.parallelism).await;
    detail["completed_by_streamstack"] = json!(done);
    if !r.ok() {
        let why: Vec<String> = r
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.address, f.error.message))
            .collect();
        return Ok(Err((
            format!(
                "CloudFormation left {} short, and setting it failed: {}",
                done.join("; "),
                why.join("; ")
            ),
            detail,
        )));
    }
    Ok(Ok(detail))
}

/// The spec's session in target `t`, its role assumed, its events on the board.
async fn target_session(
    base: &Clients,
    session_name: &str,
    opts: &ConfirmOptions,
    board: &Arc<dyn Board>,
    t: &Target,
) -> Result<Session> {
    let clients = run::assume(base, &opts.open.aws, session_name, t).await?;
    let mut o = opts.open.clone();
    o.load.vars.extend(t.vars.iter().cloned());
    o.load.fleet_region = Some(t.region.clone());
    o.load.region = None;
    o.aws.region = Some(t.region.clone());
    let (b, target) = (Arc::clone(board), t.clone());
    o.events = Events::call(move |e| b.event(&target, e));
    ops::open_with(&opts.spec, &o, clients).await
}

/// Clients in the caller's account (to assume the targets' roles) and the run's session name.
async fn base(opts: &ConfirmOptions, targets: &[Target]) -> Result<(Clients, String)> {
    let aws = AwsOptions {
        region: opts
            .open
            .aws
            .region
            .clone()
            .or_else(|| targets.first().map(|t| t.region.clone())),
        ..opts.open.aws.clone()
    };
    let session_name = super::targets::session_name(&opts.stack, &run::run_id());
    Ok((Clients::new(&aws).await?, session_name))
}

/// Which step of a destroy runs in each target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestroyStep {
    /// Before the stack set's delete: empty the stack's `force_destroy` buckets (CloudFormation
    /// deletes no bucket that holds objects), as `--engine cloudformation` does.
    Empty,
    /// After it: delete whatever of the stack is left in the target (made outside the
    /// instance, or left by its delete) and say what remains.
    Sweep,
}

/// `step` in every target, `in_flight` at once: per target id, what it did or why it failed.
pub async fn destroy_step(
    step: DestroyStep,
    targets: &[Target],
    opts: &ConfirmOptions,
    board: Arc<dyn Board>,
) -> Result<BTreeMap<String, std::result::Result<Vec<String>, String>>> {
    let (base, session_name) = base(opts, targets).await?;
    let done: Vec<(String, std::result::Result<Vec<String>, String>)> =
        futures::stream::iter(targets.iter().map(|t| {
            let (base, session_name, board) = (&base, &session_name, Arc::clone(&board));
            async move {
                let r = destroy_one(step, base, session_name, opts, &board, t).await;
                (t.id(), r)
            }
        }))
        .buffer_unordered(opts.in_flight.max(1))
        .collect()
        .await;
    Ok(done.into_iter().collect())
}

async fn destroy_one(
    step: DestroyStep,
    base: &Clients,
    session_name: &str,
    opts: &ConfirmOptions,
    board: &Arc<dyn Board>,
    t: &Target,
) -> std::result::Result<Vec<String>, String> {
    let s = target_session(base, session_name, opts, board, t)
        .await
        .map_err(|e| e.to_string())?;
    match step {
        DestroyStep::Empty => {
            let live = s.live().await.map_err(|e| e.to_string())?;
            let mut emptied = Vec::new();
            for l in live
                .iter()
                .filter(|l| l.address().to_string().starts_with("bucket."))
            {
                match crate::kinds::bucket::empty_if_force_destroy(&s.cx, l).await {
                    Ok(true) => emptied.push(l.address().to_string()),
                    Ok(false) => {}
                    Err(e) => return Err(format!("emptying {}: {e}", l.address())),
                }
            }
            Ok(emptied)
        }
        DestroyStep::Sweep => {
            board.phase(t, "sweep");
            let d = s.plan_destroy().await.map_err(|e| e.to_string())?;
            let swept: Vec<String> = d.plan.changes.iter().map(|c| c.address.clone()).collect();
            let (r, left) = s
                .destroy(&d, opts.parallelism)
                .await
                .map_err(|e| e.to_string())?;
            if !r.ok() || !left.is_empty() {
                let failed: Vec<String> = r
                    .failed
                    .iter()
                    .map(|f| format!("{}: {}", f.address, f.error.message))
                    .chain(left.iter().map(|l| format!("{l} still present")))
                    .collect();
                return Err(failed.join("; "));
            }
            Ok(swept)
        }
    }
}

/// After the engine's destroy: a target is ok when the destroy succeeded and left no instance
/// there; a failed instance gives its reason.
pub fn destroy_report(
    destroyed: &StackSetReport,
    targets: &[Target],
    steps: &BTreeMap<String, std::result::Result<Vec<String>, String>>,
    board: &dyn Board,
) -> FleetReport {
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
            let (error, detail) = match (error, steps.get(&id)) {
                (Some(e), _) => (Some(e), Value::Null),
                (None, Some(Err(e))) => (Some(e.clone()), Value::Null),
                (None, Some(Ok(swept))) if !swept.is_empty() => (None, json!({"swept": swept})),
                (None, _) => (None, Value::Null),
            };
            let r = row(t, error.is_none(), error, "destroy", detail);
            board.finished(&r);
            r
        })
        .collect();
    report("destroy", results)
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
        assert_eq!(
            (p.max_concurrent, p.failure_tolerance, p.soft),
            (8, 2, true)
        );
        // Zero in flight still moves; no tolerance given: go on whatever fails.
        let o = options(
            PermissionModel::ServiceManaged,
            vec!["ou-a".into()],
            0,
            None,
        );
        assert_eq!(o.max_concurrent, Some(1));
        assert_eq!(stacksets::preferences(3, &o).failure_tolerance, 2);
        assert_eq!(o.organizational_units, ["ou-a"]);
    }

    #[test]
    fn every_instance_of_a_plan_is_a_line_carrying_its_target() {
        let targets = [t("111111111111", &[]), t("222222222222", &[])];
        let deployed = stacksets::Deployed {
            instances: vec![
                stacksets::Instance {
                    account: "222222222222".into(),
                    region: "eu-west-1".into(),
                    status: "CURRENT".into(),
                    detailed_status: None,
                    reason: None,
                    organizational_unit: None,
                },
                stacksets::Instance {
                    account: "333333333333".into(),
                    region: "eu-west-1".into(),
                    status: "CURRENT".into(),
                    detailed_status: None,
                    reason: None,
                    organizational_unit: None,
                },
            ],
            template: Some(json!({})),
            ..Default::default()
        };
        let plan = stacksets::diff(
            "lab",
            Some(&deployed),
            &json!({}),
            &BTreeMap::new(),
            &engine_targets(&targets),
        );
        let lines = plan_events(&plan, &targets);
        let got: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                assert_eq!(l["type"], "instance_plan");
                (
                    l["target"].as_str().unwrap().into(),
                    l["change"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("111111111111/eu-west-1", "add"),
            ("222222222222/eu-west-1", "none"),
            ("333333333333/eu-west-1", "remove"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
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
        let r = destroy_report(&destroyed, &targets, &BTreeMap::new(), &board);
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
        let differ = [
            t("111111111111", &[]),
            t("222222222222", &[("hours", "48")]),
        ];
        let e = check_one_template(&spec, &load, &differ).expect_err("two templates");
        assert!(e.to_string().contains("222222222222"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
