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
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::events::Event;
use crate::kinds::{Cx, Live, Registry};
use crate::model::{Address, Kind, Model, Resource};
use crate::plan::{Action, Plan};
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
    refs.iter().any(|(k, n)| {
        *n == target.resource.name && kinds.same_namespace(*k, target.address().kind)
    })
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
        let fail = |report: &mut Report, operation: &'static str, message: String| {
            report.failed.push(Failed {
                address: c.address.clone(),
                operation,
                action: c.action,
                error: ErrorReport::from(&Error::Internal(message)),
            });
        };
        let address = match kinds.parse_address(&c.address) {
            Ok(a) => a,
            Err(e) => {
                fail(report, "apply", e);
                continue;
            }
        };
        let live_one = match c.live_id.as_deref() {
            None => None,
            Some(id) => match by_id.get(id) {
                Some(l) => Some(*l),
                None => {
                    fail(
                        report,
                        "apply",
                        format!("{address}: live id {id} is not in the live state; plan again"),
                    );
                    continue;
                }
            },
        };
        let desired_one = desired.get(&address);
        let needs_desired = matches!(c.action, Action::Create | Action::Update | Action::Replace);
        if needs_desired && desired_one.is_none() {
            fail(
                report,
                "apply",
                format!("{address} is not in the desired model"),
            );
            continue;
        }
        let needs_live = matches!(c.action, Action::Update | Action::Replace | Action::Delete);
        if needs_live && live_one.is_none() {
            fail(
                report,
                "apply",
                format!("{address}: the plan names no live id to change"),
            );
            continue;
        }
        let node = |step, desired, live| Node {
            address: address.clone(),
            action: c.action,
            step,
            desired,
            live,
            waits_for: Vec::new(),
        };
        match c.action {
            Action::NoOp => {}
            Action::Delete => nodes.push(node(Step::Delete, None, live_one)),
            Action::Create => nodes.push(node(Step::Create, desired_one, None)),
            Action::Update => nodes.push(node(Step::Update, desired_one, live_one)),
            Action::Replace => {
                nodes.push(node(Step::Delete, None, live_one));
                let delete = nodes.len() - 1;
                let mut create = node(Step::Create, desired_one, None);
                create.waits_for.push(delete);
                nodes.push(create);
            }
        }
    }
    // Creations and updates wait for the creations and updates of their dependencies.
    let builds: BTreeMap<Address, usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.step != Step::Delete)
        .map(|(i, n)| (n.address.clone(), i))
        .collect();
    // Deletions wait for the deletion of each user, and for updates that release them: per
    // operation on a live resource, what it uses now and (for updates) after.
    type Refs = Vec<(Kind, String)>;
    let users: Vec<(usize, Refs, Option<Refs>)> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let l = n.live?;
            let after = match n.step {
                Step::Update => Some(n.desired.map_or(Vec::new(), |d| uses(kinds, n.address.kind, d))),
                _ => None,
            };
            (n.step != Step::Create).then(|| (i, uses(kinds, l.address().kind, &l.resource), after))
        })
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let mut waits = Vec::new();
        if let Some(r) = node.desired.filter(|_| node.step != Step::Delete) {
            waits.extend(r.depends_on.iter().filter_map(|d| builds.get(d).copied()));
        }
        if let (Step::Delete, Some(target)) = (node.step, node.live) {
            for (u, before, after) in &users {
                let releases = match after {
                    None => true,
                    Some(after) => !refers_to(kinds, after, target),
                };
                if *u != i && releases && refers_to(kinds, before, target) {
                    waits.push(*u);
                }
            }
        }
        node.waits_for.extend(waits);
        node.waits_for.sort_unstable();
        node.waits_for.dedup();
    }
    nodes
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
    if !cycle.is_empty() {
        for &i in &cycle {
            let n = &nodes[i];
            report.failed.push(Failed {
                address: n.address.to_string(),
                operation: n.step.verb(),
                action: n.action,
                error: ErrorReport::from(&Error::Internal(format!(
                    "{}: its operations wait for each other",
                    n.address
                ))),
            });
        }
    }

    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut kind_limits: BTreeMap<Kind, Arc<Semaphore>> = BTreeMap::new();
    for n in &nodes {
        if let Some(limit) = kinds
            .handler(n.address.kind)
            .ok()
            .and_then(|h| h.lifecycle_limit())
        {
            kind_limits
                .entry(n.address.kind)
                .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))));
        }
    }
    let channels: Vec<(watch::Sender<Status>, watch::Receiver<Status>)> = nodes
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let initial = if cycle.contains(&i) {
                Status::Failed
            } else {
                Status::Pending
            };
            watch::channel(initial)
        })
        .collect();
    // Lookups the creates will need that depend on nothing the stack creates start now.
    let prepared = join_all(
        nodes
            .iter()
            .filter(|n| n.step == Step::Create)
            .filter_map(|n| Some((kinds.handler(n.address.kind).ok()?, n.desired?)))
            .map(|(h, r)| h.prepare(cx, r)),
    );
    let operations = join_all(nodes.iter().enumerate().map(|(i, node)| {
        let sem = sem.clone();
        let limit = kind_limits.get(&node.address.kind).cloned();
        let tx = channels[i].0.clone();
        let waits: Vec<(usize, watch::Receiver<Status>)> = node
            .waits_for
            .iter()
            .map(|&w| (w, channels[w].1.clone()))
            .collect();
        let in_cycle = cycle.contains(&i);
        let nodes = &nodes;
        async move {
            if in_cycle {
                return None;
            }
            for (w, mut rx) in waits {
                let status = loop {
                    let s = *rx.borrow();
                    if s != Status::Pending {
                        break s;
                    }
                    if rx.changed().await.is_err() {
                        break Status::Failed;
                    }
                };
                if status != Status::Ok {
                    let because = nodes[w].address.clone();
                    cx.events.send(Event::Skipped {
                        address: node.address.clone(),
                        because: because.clone(),
                    });
                    let _ = tx.send(Status::Failed);
                    return Some(Outcome::Skipped(because.to_string()));
                }
            }
            // The kind's turn first: an operation queued behind its kind's limit holds none of
            // the overall slots, which others can use meanwhile.
            let _k = match (&limit, node.step) {
                (Some(l), Step::Create | Step::Delete) => Some(l.acquire().await),
                _ => None,
            };
            let _p = sem.acquire().await;
            let outcome = run(cx, kinds, node, desired).await;
            let _ = tx.send(match outcome {
                Outcome::Done(_) => Status::Ok,
                _ => Status::Failed,
            });
            Some(outcome)
        }
    }));
    let (_, results) = futures::join!(prepared, operations);
    report.makespan_s = started.elapsed().as_secs_f64();
    let durations: Vec<Option<f64>> = results
        .iter()
        .map(|o| match o {
            Some(Outcome::Done(d)) => Some(d.as_secs_f64()),
            _ => None,
        })
        .collect();
    let (length, path) = critical_path(&nodes, &durations);
    report.critical_path_s = length;
    report.critical_path = path
        .into_iter()
        .map(|i| format!("{} ({})", nodes[i].address, nodes[i].step.verb()))
        .collect();
    for (node, outcome) in nodes.iter().zip(results) {
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
            Some(Outcome::Failed(e)) => report.failed.push(Failed {
                address,
                operation,
                action: node.action,
                error: ErrorReport::from(&e),
            }),
            Some(Outcome::Skipped(because)) => report.skipped.push(Skipped {
                address,
                operation,
                because,
            }),
        }
    }
    report
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
