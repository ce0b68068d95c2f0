//! The direct fan-out: assume each target's role, then run the command per target through the
//! library (ops, deploy, check), many targets at once. Each target gets clients of its own
//! (its account's credentials, its region, its own request budget: AWS's quotas are per account
//! and region). One target's failure never stops the others; past `--failure-tolerance`
//! failures, targets not yet started are skipped.
//!
//! `plan` and `apply` first look at every target (assume, plan, pre-flight) without writing;
//! a quota shortfall anywhere stops an apply before any target writes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::aws::{AwsOptions, Clients, Ctx};
use crate::check::CheckOptions;
use crate::deploy::{self, Engine, Planned};
use crate::events::{Event, Events};
use crate::ops::{self, OpenOptions, Session};
use crate::{Error, Result};

use super::preflight::{self, Row};
use super::Target;

/// What runs in every target.
#[derive(Debug, Clone)]
pub enum Command {
    Plan,
    Apply { parallelism: usize },
    Check(CheckOptions),
    Output,
    Destroy { parallelism: usize },
    Stacks,
    Gc { dry_run: bool },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Plan => "plan",
            Command::Apply { .. } => "apply",
            Command::Check(_) => "check",
            Command::Output => "output",
            Command::Destroy { .. } => "destroy",
            Command::Stacks => "stacks",
            Command::Gc { .. } => "gc",
        }
    }

    fn needs_spec(&self) -> bool {
        !matches!(self, Command::Stacks | Command::Gc { .. })
    }

    fn preflight(&self) -> bool {
        matches!(self, Command::Plan | Command::Apply { .. })
    }
}

/// How a fleet run goes.
#[derive(Clone)]
pub struct RunOptions {
    /// The spec (None for `stacks` and `gc`).
    pub spec: Option<PathBuf>,
    /// Names the run in AssumeRole's session name.
    pub stack: String,
    /// Loading options and the connection; `events` is replaced per target.
    pub open: OpenOptions,
    pub in_flight: usize,
    /// Skip targets not yet started once more than this many failed (None: go on).
    pub failure_tolerance: Option<usize>,
    pub lock_timeout: Duration,
}

/// Where a run reports what happens in each target.
pub trait Board: Send + Sync {
    fn phase(&self, target: &Target, phase: &str);
    /// The number of resource operations the target's change will make.
    fn total(&self, target: &Target, total: usize);
    fn event(&self, target: &Target, event: &Event);
    fn finished(&self, result: &TargetResult);
    fn preflight(&self, rows: &[Row]);
}

/// How one target ended.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub target: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
    /// Not attempted: the failure tolerance was exceeded, or the pre-flight stopped the run.
    pub skipped: bool,
    /// The phase it was in when it ended.
    pub phase: String,
    pub elapsed_s: f64,
    /// What the command found (the plan summary, the check report, outputs, stacks).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub command: String,
    pub ok: bool,
    pub targets: Vec<TargetResult>,
    pub preflight: Vec<Row>,
    /// A quota shortfall stopped the run before any write.
    pub stopped_by_preflight: bool,
}

/// A target after its first, read-only look.
struct Prepared {
    target: Target,
    started: Instant,
    clients: Clients,
    session: Option<Session>,
    plan_detail: Value,
}

/// A short id naming the run (in session names).
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}",
        (nanos as u64 ^ u64::from(std::process::id())) & 0xff_ffff_ffff
    )
}

/// Runs `command` in every target.
pub async fn run(
    targets: Vec<Target>,
    command: Command,
    opts: RunOptions,
    board: Arc<dyn Board>,
) -> Result<FleetReport> {
    let Some(first) = targets.first() else {
        return Err(Error::Config("the fleet has no targets to run".into()));
    };
    // STS is called from the operator's own account, in the first target's region unless the
    // connection names one.
    let base_aws = AwsOptions {
        region: opts
            .open
            .aws
            .region
            .clone()
            .or_else(|| Some(first.region.clone())),
        ..opts.open.aws.clone()
    };
    let base = Clients::new(&base_aws).await?;
    let session_name = super::targets::session_name(&opts.stack, &run_id());
    let failed = Arc::new(AtomicUsize::new(0));
    let (prepared, rows, mut results) =
        first_looks(targets, &base, &session_name, &opts, &board, &command).await;
    failed.fetch_add(results.len(), Ordering::SeqCst);
    if command.preflight() {
        board.preflight(&rows);
    }
    let short = rows.iter().any(|r| !r.ok);
    if short || matches!(command, Command::Plan) {
        let stopped = short && !matches!(command, Command::Plan);
        results.extend(after_preflight(prepared, &rows, &board, &command));
        return Ok(report(&command, results, rows, stopped));
    }
    let done: Vec<TargetResult> = futures::stream::iter(prepared.into_iter().map(|p| {
        let (opts, board, command, failed) =
            (&opts, Arc::clone(&board), &command, Arc::clone(&failed));
        async move { one_target(p, opts, board, command, &failed).await }
    }))
    .buffer_unordered(opts.in_flight.max(1))
    .collect()
    .await;
    results.extend(done);
    Ok(report(&command, results, rows, false))
}

/// A target's first look, or why it failed.
type Look = (Target, Instant, Result<(Prepared, Vec<Row>)>);

/// The first, read-only look at every target (assume, open; plan and pre-flight for plan and
/// apply): the targets ready to go on, the pre-flight rows, and the targets that failed.
async fn first_looks(
    targets: Vec<Target>,
    base: &Clients,
    session_name: &str,
    opts: &RunOptions,
    board: &Arc<dyn Board>,
    command: &Command,
) -> (Vec<Prepared>, Vec<Row>, Vec<TargetResult>) {
    let looks: Vec<Look> = futures::stream::iter(targets.into_iter().map(|t| async move {
        let started = Instant::now();
        let r = prepare(base, session_name, opts, board, command, &t, started).await;
        (t, started, r)
    }))
    .buffered(opts.in_flight.max(1))
    .collect()
    .await;
    let (mut prepared, mut rows, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (t, started, r) in looks {
        match r {
            Ok((p, r)) => {
                rows.extend(r);
                prepared.push(p);
            }
            Err(e) => {
                let r = result(
                    &t,
                    started,
                    false,
                    Some(e.to_string()),
                    false,
                    "assume",
                    Value::Null,
                );
                board.finished(&r);
                failed.push(r);
            }
        }
    }
    (prepared, rows, failed)
}

/// `plan` ends after the pre-flight; a shortfall ends `apply` there, before any write: the
/// short targets fail, the others are skipped.
fn after_preflight(
    prepared: Vec<Prepared>,
    rows: &[Row],
    board: &Arc<dyn Board>,
    command: &Command,
) -> Vec<TargetResult> {
    let is_plan = matches!(command, Command::Plan);
    prepared
        .into_iter()
        .map(|p| {
            let mine: Vec<&Row> = rows
                .iter()
                .filter(|r| r.target == p.target.id() && !r.ok)
                .collect();
            let short = (!mine.is_empty()).then(|| shortfall(&mine));
            let skipped = short.is_none() && !is_plan;
            let error = short.or_else(|| {
                skipped.then(|| {
                    "not started: the pre-flight found a quota shortfall in another target".into()
                })
            });
            let ok = error.is_none();
            let r = result(
                &p.target,
                p.started,
                ok,
                error,
                skipped,
                "plan",
                p.plan_detail,
            );
            board.finished(&r);
            r
        })
        .collect()
}

/// The command in one target, unless more targets failed than the tolerance allows.
async fn one_target(
    p: Prepared,
    opts: &RunOptions,
    board: Arc<dyn Board>,
    command: &Command,
    failed: &AtomicUsize,
) -> TargetResult {
    if opts
        .failure_tolerance
        .is_some_and(|n| failed.load(Ordering::SeqCst) > n)
    {
        let e = "skipped: more targets failed than --failure-tolerance allows".to_string();
        let r = result(
            &p.target,
            p.started,
            false,
            Some(e),
            true,
            "skipped",
            Value::Null,
        );
        board.finished(&r);
        return r;
    }
    let phase = command.name();
    let r = match execute(&p, opts, &board, command).await {
        Ok((true, detail)) => result(&p.target, p.started, true, None, false, phase, detail),
        Ok((false, detail)) => {
            let e = detail
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_string();
            result(&p.target, p.started, false, Some(e), false, phase, detail)
        }
        Err(e) => {
            let e = Some(e.to_string());
            result(&p.target, p.started, false, e, false, phase, Value::Null)
        }
    };
    if !r.ok {
        failed.fetch_add(1, Ordering::SeqCst);
    }
    board.finished(&r);
    r
}

fn shortfall(rows: &[&Row]) -> String {
    let parts: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} ({}) needs {}, {} available",
                r.name,
                r.quota_code.as_deref().unwrap_or("no code"),
                r.needed,
                r.available
            )
        })
        .collect();
    format!("quota shortfall: {}", parts.join("; "))
}

fn report(
    command: &Command,
    mut results: Vec<TargetResult>,
    preflight: Vec<Row>,
    stopped: bool,
) -> FleetReport {
    results.sort_by(|a, b| a.target.cmp(&b.target));
    FleetReport {
        command: command.name().into(),
        ok: !stopped && results.iter().all(|r| r.ok),
        targets: results,
        preflight,
        stopped_by_preflight: stopped,
    }
}

fn result(
    t: &Target,
    started: Instant,
    ok: bool,
    error: Option<String>,
    skipped: bool,
    phase: &str,
    detail: Value,
) -> TargetResult {
    TargetResult {
        target: t.id(),
        account: t.account.clone(),
        region: t.region.clone(),
        name: t.name.clone(),
        ok,
        error,
        skipped,
        phase: phase.into(),
        elapsed_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        detail,
    }
}

/// AssumeRole into the target's account; clients in its region with those credentials.
pub async fn assume(
    base: &Clients,
    aws: &AwsOptions,
    session_name: &str,
    t: &Target,
) -> Result<Clients> {
    let out = base
        .sts
        .assume_role()
        .role_arn(&t.role_arn)
        .role_session_name(session_name)
        .set_external_id(t.external_id.clone())
        .duration_seconds(3600)
        .send()
        .await
        .op("AssumeRole")?;
    let c = out.credentials().ok_or_else(|| {
        Error::Config(format!(
            "AssumeRole of {} returned no credentials",
            t.role_arn
        ))
    })?;
    let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
    let creds = aws_sdk_sts::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expiry,
        "streamstack-fleet",
    );
    Clients::assumed(aws, &t.region, creds).await
}

async fn prepare(
    base: &Clients,
    session_name: &str,
    opts: &RunOptions,
    board: &Arc<dyn Board>,
    command: &Command,
    t: &Target,
    started: Instant,
) -> Result<(Prepared, Vec<Row>)> {
    board.phase(t, "assume");
    let clients = assume(base, &opts.open.aws, session_name, t).await?;
    let mut p = Prepared {
        target: t.clone(),
        started,
        clients: clients.clone(),
        session: None,
        plan_detail: Value::Null,
    };
    let Some(spec) = opts.spec.as_ref().filter(|_| command.needs_spec()) else {
        return Ok((p, Vec::new()));
    };
    let s = ops::open_with(spec, &target_options(opts, board, t), clients.clone()).await?;
    let mut rows = Vec::new();
    if command.preflight() {
        board.phase(t, "plan");
        let live = s.live().await?;
        let plan = s.plan(&live)?;
        board.total(t, plan.changes.len());
        rows = preflight::check(&clients, t, &plan, &s.validated.model).await?;
        p.plan_detail = json!({"summary": plan.summary, "plan": plan});
        if matches!(command, Command::Plan) {
            // What the target costs after the plan (prices never fail a plan); the summary adds
            // the targets up.
            let planned = Planned::Own {
                plan: plan.clone(),
                live,
            };
            let cost = crate::bill::plan_cost(&s, &planned, Default::default()).await;
            p.plan_detail["cost"] = json!(cost);
        }
    }
    p.session = Some(s);
    Ok((p, rows))
}

/// The target's opening options: its vars after --var, its region, its events to the board.
fn target_options(opts: &RunOptions, board: &Arc<dyn Board>, t: &Target) -> OpenOptions {
    let mut o = opts.open.clone();
    o.load.vars.extend(t.vars.iter().cloned());
    o.load.fleet_region = Some(t.region.clone());
    o.load.region = None;
    o.aws.region = Some(t.region.clone());
    let (board, target) = (Arc::clone(board), t.clone());
    o.events = Events::call(move |e| board.event(&target, e));
    o
}

/// The command in one target: whether it succeeded, and what it found.
async fn execute(
    p: &Prepared,
    opts: &RunOptions,
    board: &Arc<dyn Board>,
    command: &Command,
) -> Result<(bool, Value)> {
    let t = &p.target;
    let session = || {
        p.session
            .as_ref()
            .ok_or_else(|| Error::Config("no spec session for this target".into()))
    };
    match command {
        Command::Plan => Ok((true, p.plan_detail.clone())),
        Command::Apply { parallelism } => {
            board.phase(t, "apply");
            let s = session()?;
            locked(
                s,
                "apply",
                opts.lock_timeout,
                apply(s, t, board, *parallelism),
            )
            .await
        }
        Command::Destroy { parallelism } => {
            board.phase(t, "destroy");
            let s = session()?;
            locked(
                s,
                "destroy",
                opts.lock_timeout,
                destroy(s, t, board, *parallelism),
            )
            .await
        }
        Command::Check(c) => {
            board.phase(t, "check");
            let report = crate::check::check(session()?, c).await?;
            let ok = report.ok;
            let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
            if let (false, Some(b)) = (ok, report.first_broken.clone()) {
                v["error"] = json!(format!("first broken hop: {b}"));
            }
            Ok((ok, v))
        }
        Command::Output => {
            board.phase(t, "output");
            let s = session()?;
            let live = s.live().await?;
            let outputs = s.outputs(&live).await?;
            Ok((true, json!({"outputs": outputs})))
        }
        Command::Stacks => {
            board.phase(t, "stacks");
            let stacks = ops::list_stacks_with(&p.clients).await?;
            Ok((true, json!({"stacks": stacks})))
        }
        Command::Gc { dry_run } => gc(p, opts, board, *dry_run).await,
    }
}

/// Runs `work` under the stack's lock in the target, releasing it whatever happens.
async fn locked(
    s: &Session,
    command: &str,
    timeout: Duration,
    work: impl std::future::Future<Output = Result<(bool, Value)>>,
) -> Result<(bool, Value)> {
    let lock = s.lock(command, timeout).await?;
    let outcome = work.await;
    let released = lock.release().await;
    let v = outcome?;
    released?;
    Ok(v)
}

async fn apply(
    s: &Session,
    t: &Target,
    board: &Arc<dyn Board>,
    parallelism: usize,
) -> Result<(bool, Value)> {
    let planned = deploy::plan_apply(Engine::Streamstack, s, None).await?;
    let plan = planned.plan();
    board.total(t, plan.changes.len());
    if let Planned::Own { .. } = planned {
        if !plan.has_changes() {
            return Ok((true, json!({"summary": plan.summary})));
        }
    }
    let applied = planned.apply(s, parallelism).await?;
    let mut v = json!({"summary": plan.summary, "report": applied.to_json()});
    if !applied.ok() {
        v["error"] = json!(applied.failure());
    }
    Ok((applied.ok(), v))
}

async fn destroy(
    s: &Session,
    t: &Target,
    board: &Arc<dyn Board>,
    parallelism: usize,
) -> Result<(bool, Value)> {
    let d = deploy::plan_destroy(Engine::Streamstack, s).await?;
    if let deploy::DestroyPlanned::Own(o) = &d {
        board.total(t, o.plan.changes.len());
    }
    let (applied, left) = d.destroy(s, parallelism).await?;
    let mut v = json!({"report": applied.to_json(), "remaining": left});
    if !applied.ok() {
        v["error"] = json!(applied.failure());
    } else if !left.is_empty() {
        v["error"] = json!(format!("still present after destroy: {}", left.join(", ")));
    }
    Ok((applied.ok() && left.is_empty(), v))
}

/// `gc --fleet`: the expired stacks of the target, destroyed one after the other.
async fn gc(
    p: &Prepared,
    opts: &RunOptions,
    board: &Arc<dyn Board>,
    dry_run: bool,
) -> Result<(bool, Value)> {
    let t = &p.target;
    board.phase(t, "gc");
    let expired: Vec<String> = ops::list_stacks_with(&p.clients)
        .await?
        .into_iter()
        .filter(|s| s.expired)
        .map(|s| s.name)
        .collect();
    if dry_run || expired.is_empty() {
        return Ok((true, json!({"expired": expired, "destroyed": []})));
    }
    board.phase(t, "destroy");
    let mut destroyed = Vec::new();
    let mut failures = Vec::new();
    for name in &expired {
        let o = target_options(opts, board, t);
        let s = ops::open_stack_with(name, &o, p.clients.clone()).await?;
        match locked(&s, "destroy", opts.lock_timeout, destroy(&s, t, board, 10)).await {
            Ok((true, _)) => destroyed.push(name.clone()),
            Ok((false, v)) => failures.push(format!("{name}: {}", v["error"])),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    let mut v = json!({"expired": expired, "destroyed": destroyed});
    if !failures.is_empty() {
        v["error"] = json!(failures.join("; "));
    }
    Ok((failures.is_empty(), v))
}
