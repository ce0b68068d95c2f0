//! Walks a plan as one graph of operations. Every change becomes one operation (a replace
//! becomes two: delete the old resource, then create the new one), and each starts the moment
//! everything it waits for has succeeded, with no phases or batches:
//!
//! - a creation or update waits for the creations and updates of what its desired resource
//!   depends on;
//! - a deletion waits for the deletions, and the updates that release it, of every live
//!   resource that uses it (`ResourceKind::uses`): hosts go before their instance profile, a
//!   delivery before its stream, and removing `ssh:` moves the instance off its group first;
//! - the creation half of a replace waits for its deletion half.
//!
//! When an operation fails, those under way finish, everything waiting on it is skipped, and
//! the report lists what failed and what was left. Concurrency is bounded overall and per kind
//! (`ResourceKind::lifecycle_limit`). The executor knows no AWS service and no kind: it reaches
//! them through the [`Registry`] it is given.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;
use tokio::sync::{watch, Semaphore, SemaphorePermit};

use crate::events::Event;
use crate::kinds::{Cx, Live, Registry};
use crate::model::{Address, Kind, Model, Resource};
use crate::plan::{Action, Change, Plan};
use crate::Error;

/// Default bound on concurrent operations. Terraform uses 10, but streamstack keeps to AWS's
/// request quotas itself (`budget`), so the bound only guards the process: with 10, a 30-lab
/// classroom under the quotas took 25.1 s against a 10.0 s critical path (operations queued for
/// a slot while others waited for their budget); with 64, 24.0 s against 22.9 s.
pub const DEFAULT_PARALLELISM: usize = 64;

/// An error as the report shows it: the message, and what AWS said when it was AWS.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorReport {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> Self {
        let aws = e.aws();
        ErrorReport {
            message: e.to_string(),
            operation: aws.map(|a| a.operation.clone()),
            code: aws.and_then(|a| a.code()).map(str::to_string),
            status: aws.and_then(|a| a.status()),
            request_id: aws.and_then(|a| a.request_id()).map(str::to_string),
        }
    }
}

/// One operation that succeeded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Done {
    pub address: String,
    /// `create`, `update` or `delete`.
    pub operation: &'static str,
    /// The plan's action this operation is part of.
    pub action: Action,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failed {
    pub address: String,
    pub operation: &'static str,
    pub action: Action,
    pub error: ErrorReport,
}

/// Not attempted because something it waits for did not succeed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    pub address: String,
    pub operation: &'static str,
    pub because: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    pub done: Vec<Done>,
    pub failed: Vec<Failed>,
    pub skipped: Vec<Skipped>,
    /// Wall time from the first operation's start to the last one's end.
    pub makespan_s: f64,
    /// The longest chain of operations (by their actual durations) through what waits for
    /// what: no schedule can finish sooner than this.
    pub critical_path_s: f64,
    /// That chain, first to last (`address (operation)`).
    pub critical_path: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Ok,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Update,
    Delete,
}

impl Step {
    fn verb(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Update => "update",
            Step::Delete => "delete",
        }
    }
}

struct Node<'a> {
    address: Address,
    action: Action,
    step: Step,
    desired: Option<&'a Resource>,
    live: Option<&'a Live>,
    /// Indexes of the nodes this one waits for.
    waits_for: Vec<usize>,
}

/// What a live resource uses, as (kind, name) pairs.
fn uses(kinds: &Registry, kind: Kind, r: &Resource) -> Vec<(Kind, String)> {
    kinds.handler(kind).map_or(Vec::new(), |h| h.uses(r))
}

fn refers_to(kinds: &Registry, refs: &[(Kind, String)], target: &Live) -> bool {
    refs.iter()
        .any(|(k, n)| *n == target.resource.name && kinds.same_namespace(*k, target.address().kind))
}

/// A failure of `operation` on `address`, as the report lists it.
fn failure(address: String, operation: &'static str, action: Action, e: &Error) -> Failed {
    Failed {
        address,
        operation,
        action,
        error: ErrorReport::from(e),
    }
}

/// The operations of a plan and what each waits for; changes that cannot become an operation
/// (an address the registry does not know, a live id missing from the live set) are failures.
fn build<'a>(
    kinds: &Registry,
    plan: &Plan,
    desired: &'a Model,
    live: &'a [Live],
    report: &mut Report,
) -> Vec<Node<'a>> {
    let by_id: BTreeMap<&str, &Live> = live.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for c in &plan.changes {
        match target(kinds, c, desired, &by_id) {
            Ok(t) => push_operations(&mut nodes, c.action, t),
            Err(message) => report.failed.push(failure(
                c.address.clone(),
                "apply",
                c.action,
                &Error::Internal(message),
            )),
        }
    }
    wait_for_dependencies(&mut nodes);
    wait_for_users(kinds, &mut nodes);
    for node in &mut nodes {
        node.waits_for.sort_unstable();
        node.waits_for.dedup();
    }
    nodes
}

/// What one change acts on: its address, and the desired and live resources its action needs.
struct Target<'a> {
    address: Address,
    desired: Option<&'a Resource>,
    live: Option<&'a Live>,
}

/// The target of `c`, or why it has none.
fn target<'a>(
    kinds: &Registry,
    c: &Change,
    desired: &'a Model,
    by_id: &BTreeMap<&str, &'a Live>,
) -> Result<Target<'a>, String> {
    let address = kinds.parse_address(&c.address)?;
    let live = match c.live_id.as_deref() {
        None => None,
        Some(id) => Some(*by_id.get(id).ok_or_else(|| {
            format!("{address}: live id {id} is not in the live state; plan again")
        })?),
    };
    let desired = desired.get(&address);
    let needs_desired = matches!(c.action, Action::Create | Action::Update | Action::Replace);
    if needs_desired && desired.is_none() {
        return Err(format!("{address} is not in the desired model"));
    }
    let needs_live = matches!(c.action, Action::Update | Action::Replace | Action::Delete);
    if needs_live && live.is_none() {
        return Err(format!("{address}: the plan names no live id to change"));
    }
    Ok(Target {
        address,
        desired,
        live,
    })
}

/// The operations of one change: none for a no-op, two for a replace (the creation waits for
/// the deletion), else one.
fn push_operations<'a>(nodes: &mut Vec<Node<'a>>, action: Action, t: Target<'a>) {
    let node = |step, desired, live| Node {
        address: t.address.clone(),
        action,
        step,
        desired,
        live,
        waits_for: Vec::new(),
    };
    match action {
        Action::NoOp => {}
        Action::Delete => nodes.push(node(Step::Delete, None, t.live)),
        Action::Create => nodes.push(node(Step::Create, t.desired, None)),
        Action::Update => nodes.push(node(Step::Update, t.desired, t.live)),
        Action::Replace => {
            nodes.push(node(Step::Delete, None, t.live));
            let mut create = node(Step::Create, t.desired, None);
            create.waits_for.push(nodes.len() - 1);
            nodes.push(create);
        }
    }
}

/// Creations and updates wait for the creations and updates of their dependencies.
fn wait_for_dependencies(nodes: &mut [Node]) {
    let builds: BTreeMap<Address, usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.step != Step::Delete)
        .map(|(i, n)| (n.address.clone(), i))
        .collect();
    for node in nodes.iter_mut().filter(|n| n.step != Step::Delete) {
        if let Some(r) = node.desired {
            let waits = r.depends_on.iter().filter_map(|d| builds.get(d).copied());
            node.waits_for.extend(waits);
        }
    }
}

/// An operation on a live resource that may use others: what the resource uses now and, for
/// an update, what it will use after.
struct User {
    node: usize,
    before: Vec<(Kind, String)>,
    after: Option<Vec<(Kind, String)>>,
}

impl User {
    /// Must deleting `target` wait for this operation? When the resource uses it now and the
    /// operation ends that: a deletion, or an update after which it no longer uses it.
    fn releases(&self, kinds: &Registry, target: &Live) -> bool {
        let stops = match &self.after {
            None => true,
            Some(after) => !refers_to(kinds, after, target),
        };
        stops && refers_to(kinds, &self.before, target)
    }
}

/// Deletions wait for the deletion of each user, and for updates that release them.
fn wait_for_users(kinds: &Registry, nodes: &mut [Node]) {
    let users: Vec<User> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.step != Step::Create)
        .filter_map(|(i, n)| {
            let l = n.live?;
            let after = match n.step {
                Step::Update => Some(
                    n.desired
                        .map_or(Vec::new(), |d| uses(kinds, n.address.kind, d)),
                ),
                _ => None,
            };
            let before = uses(kinds, l.address().kind, &l.resource);
            Some(User {
                node: i,
                before,
                after,
            })
        })
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let (Step::Delete, Some(target)) = (node.step, node.live) else {
            continue;
        };
        let waits = users
            .iter()
            .filter(|u| u.node != i && u.releases(kinds, target))
            .map(|u| u.node);
        node.waits_for.extend(waits);
    }
}

/// Indexes of nodes on or behind a cycle (none should exist; if one does, its members fail
/// instead of waiting forever).
fn cyclic(nodes: &[Node]) -> Vec<usize> {
    let mut remaining: Vec<usize> = nodes.iter().map(|n| n.waits_for.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &w in &n.waits_for {
            dependents[w].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| remaining[i] == 0).collect();
    let mut seen = vec![false; nodes.len()];
    while let Some(i) = ready.pop() {
        seen[i] = true;
        for &d in &dependents[i] {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                ready.push(d);
            }
        }
    }
    (0..nodes.len()).filter(|&i| !seen[i]).collect()
}

enum Outcome {
    Done(Duration),
    Failed(Error),
    Skipped(String),
}

/// Applies `plan` (computed from `desired` and `live`).
pub async fn apply(
    cx: &Cx,
    kinds: &Registry<'_>,
    plan: &Plan,
    desired: &Model,
    live: &[Live],
    parallelism: usize,
) -> Report {
    let mut report = Report::default();
    let nodes = build(kinds, plan, desired, live, &mut report);
    let cycle = cyclic(&nodes);
    for &i in &cycle {
        let n = &nodes[i];
        let e = Error::Internal(format!("{}: its operations wait for each other", n.address));
        let f = failure(n.address.to_string(), n.step.verb(), n.action, &e);
        report.failed.push(f);
    }
    let started = Instant::now();
    let schedule = Schedule::new(kinds, &nodes, &cycle, parallelism);
    let (_, outcomes) = futures::join!(
        prepare(cx, kinds, &nodes),
        join_all((0..nodes.len()).map(|i| schedule.operate(cx, kinds, i, desired)))
    );
    report.makespan_s = started.elapsed().as_secs_f64();
    critical_path_of(&mut report, &nodes, &outcomes);
    tally(&mut report, &nodes, outcomes);
    report
}

/// Starts the lookups the creations will need that depend on nothing the stack creates.
async fn prepare(cx: &Cx, kinds: &Registry<'_>, nodes: &[Node<'_>]) {
    let creations = nodes
        .iter()
        .filter(|n| n.step == Step::Create)
        .filter_map(|n| Some((kinds.handler(n.address.kind).ok()?, n.desired?)));
    join_all(creations.map(|(h, r)| h.prepare(cx, r))).await;
}

/// When operations may run: each node's status, which those waiting for it watch, and the
/// bounds on concurrency, overall and per kind.
struct Schedule<'n, 'a> {
    nodes: &'n [Node<'a>],
    status: Vec<watch::Sender<Status>>,
    slots: Semaphore,
    kind_slots: BTreeMap<Kind, Semaphore>,
}

impl<'n, 'a> Schedule<'n, 'a> {
    /// Nodes in `cycle` start failed; `parallelism` operations at once, and per kind its
    /// `lifecycle_limit` creations and deletions.
    fn new(kinds: &Registry, nodes: &'n [Node<'a>], cycle: &[usize], parallelism: usize) -> Self {
        let mut kind_slots = BTreeMap::new();
        for n in nodes {
            let limit = kinds
                .handler(n.address.kind)
                .ok()
                .and_then(|h| h.lifecycle_limit());
            if let Some(limit) = limit {
                kind_slots
                    .entry(n.address.kind)
                    .or_insert_with(|| Semaphore::new(limit.max(1)));
            }
        }
        let status = (0..nodes.len())
            .map(|i| {
                let on_cycle = cycle.contains(&i);
                watch::Sender::new(if on_cycle {
                    Status::Failed
                } else {
                    Status::Pending
                })
            })
            .collect();
        Schedule {
            nodes,
            status,
            slots: Semaphore::new(parallelism.max(1)),
            kind_slots,
        }
    }

    /// Node `i`'s operation, once what it waits for has succeeded and it has its turn; skipped
    /// when something it waits for did not succeed, `None` on a cycle.
    async fn operate(
        &self,
        cx: &Cx,
        kinds: &Registry<'_>,
        i: usize,
        desired: &Model,
    ) -> Option<Outcome> {
        let node = &self.nodes[i];
        // Failed before it started: on a cycle (only its own operation changes it otherwise).
        if *self.status[i].borrow() == Status::Failed {
            return None;
        }
        if let Err(because) = self.prerequisites(i).await {
            cx.events.send(Event::Skipped {
                address: node.address.clone(),
                because: because.clone(),
            });
            self.status[i].send_replace(Status::Failed);
            return Some(Outcome::Skipped(because.to_string()));
        }
        let _turn = self.turn(node).await;
        let outcome = run(cx, kinds, node, desired).await;
        let status = match outcome {
            Outcome::Done(_) => Status::Ok,
            _ => Status::Failed,
        };
        self.status[i].send_replace(status);
        Some(outcome)
    }

    /// Waits for what node `i` waits for, in order; the first that did not succeed is the error.
    async fn prerequisites(&self, i: usize) -> Result<(), &'n Address> {
        for &w in &self.nodes[i].waits_for {
            let mut rx = self.status[w].subscribe();
            let status = match rx.wait_for(|s| *s != Status::Pending).await {
                Ok(s) => *s,
                Err(_) => Status::Failed,
            };
            if status != Status::Ok {
                return Err(&self.nodes[w].address);
            }
        }
        Ok(())
    }

    /// Waits for the operation's turn: its kind's first (creations and deletions of a kind with
    /// a lifecycle limit), then an overall slot, so that an operation queued behind its kind's
    /// limit holds no slot others could use meanwhile.
    async fn turn(
        &self,
        node: &Node<'_>,
    ) -> (Option<SemaphorePermit<'_>>, Option<SemaphorePermit<'_>>) {
        let limited = match node.step {
            Step::Create | Step::Delete => self.kind_slots.get(&node.address.kind),
            Step::Update => None,
        };
        let kind = match limited {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        (kind, self.slots.acquire().await.ok())
    }
}

/// The report's critical path, from the durations of the operations that succeeded.
fn critical_path_of(report: &mut Report, nodes: &[Node], outcomes: &[Option<Outcome>]) {
    let durations: Vec<Option<f64>> = outcomes
        .iter()
        .map(|o| match o {
            Some(Outcome::Done(d)) => Some(d.as_secs_f64()),
            _ => None,
        })
        .collect();
    let (length, path) = critical_path(nodes, &durations);
    report.critical_path_s = length;
    report.critical_path = path
        .into_iter()
        .map(|i| format!("{} ({})", nodes[i].address, nodes[i].step.verb()))
        .collect();
}

/// Lists each operation's outcome in the report (those on a cycle already are).
fn tally(report: &mut Report, nodes: &[Node], outcomes: Vec<Option<Outcome>>) {
    for (node, outcome) in nodes.iter().zip(outcomes) {
        let address = node.address.to_string();
        let operation = node.step.verb();
        match outcome {
            None => {}
            Some(Outcome::Done(elapsed)) => report.done.push(Done {
                address,
                operation,
                action: node.action,
                elapsed_s: elapsed.as_secs_f64(),
            }),
            Some(Outcome::Failed(e)) => {
                report
                    .failed
                    .push(failure(address, operation, node.action, &e))
            }
            Some(Outcome::Skipped(because)) => report.skipped.push(Skipped {
                address,
                operation,
                because,
            }),
        }
    }
}

/// The longest chain of completed operations through `waits_for`, weighted by each one's
/// duration: its length in seconds and its nodes, first to last.
fn critical_path(nodes: &[Node], durations: &[Option<f64>]) -> (f64, Vec<usize>) {
    // best[i]: the longest chain ending at i (its length, and the node before i on it).
    let mut best: Vec<Option<(f64, Option<usize>)>> = vec![None; nodes.len()];
    fn visit(
        i: usize,
        nodes: &[Node],
        durations: &[Option<f64>],
        best: &mut Vec<Option<(f64, Option<usize>)>>,
        depth: usize,
    ) -> f64 {
        if let Some((len, _)) = best[i] {
            return len;
        }
        let own = durations[i].unwrap_or(0.0);
        let mut before = (0.0, None);
        // The graph is acyclic (checked before running); the depth bound only guards that.
        if depth < nodes.len() {
            for &w in &nodes[i].waits_for {
                let len = visit(w, nodes, durations, best, depth + 1);
                if len > before.0 {
                    before = (len, Some(w));
                }
            }
        }
        best[i] = Some((before.0 + own, before.1));
        before.0 + own
    }
    let mut end = None;
    let mut longest = 0.0;
    for i in 0..nodes.len() {
        if durations[i].is_none() {
            continue;
        }
        let len = visit(i, nodes, durations, &mut best, 0);
        if len > longest {
            longest = len;
            end = Some(i);
        }
    }
    let mut path = Vec::new();
    let mut cur = end;
    while let Some(i) = cur {
        if durations[i].is_some() {
            path.push(i);
        }
        cur = best[i].and_then(|(_, prev)| prev);
    }
    path.reverse();
    (longest, path)
}

async fn run(cx: &Cx, kinds: &Registry<'_>, node: &Node<'_>, desired: &Model) -> Outcome {
    let action = node.step.verb().to_string();
    let start = Instant::now();
    cx.events.send(Event::Start {
        address: node.address.clone(),
        action: action.clone(),
    });
    let result = match kinds.handler(node.address.kind) {
        Err(e) => Err(e),
        Ok(h) => match (node.step, node.desired, node.live) {
            (Step::Delete, _, Some(l)) => h.delete(cx, l).await,
            (Step::Update, Some(r), Some(l)) => h.update(cx, r, l).await,
            (Step::Create, Some(r), _) => h.create(cx, r, desired).await,
            _ => Err(Error::Internal(format!(
                "{}: {action} without the resource it needs",
                node.address
            ))),
        },
    };
    match result {
        Ok(()) => {
            let elapsed = start.elapsed();
            cx.events.send(Event::Done {
                address: node.address.clone(),
                action,
                elapsed,
            });
            tracing::debug!(address = %node.address, ?elapsed, "done");
            Outcome::Done(elapsed)
        }
        Err(e) => {
            cx.events.send(Event::Failed {
                address: node.address.clone(),
                action,
                error: e.to_string(),
            });
            Outcome::Failed(e)
        }
    }
}

#[cfg(test)]
mod tests;
