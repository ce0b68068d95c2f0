//! Walks a plan: deletions first (what uses a resource before the resource), then creations and
//! updates in dependency order, independent ones in parallel up to a bound. Each operation
//! starts only when everything it depends on succeeded; when one fails, operations already under
//! way finish, its dependents are skipped, and the report lists what failed and what was left.
//! The executor knows nothing of AWS services: the kinds do the work and the waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::events::Event;
use crate::kinds::{self, Cx, Live};
use crate::model::{Address, Kind, Model};
use crate::plan::{delete_rank, Action, Plan};

/// Default bound on concurrent operations (Terraform uses 10).
pub const DEFAULT_PARALLELISM: usize = 10;
/// Kinesis allows at most 5 streams in CREATING or DELETING at once per account.
const STREAM_CREATIONS: usize = 5;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Addresses and what was done to them.
    pub done: Vec<(String, Action)>,
    /// Address, the action tried, and the error.
    pub failed: Vec<(String, Action, String)>,
    /// Address and the failed (or skipped) address it depends on.
    pub skipped: Vec<(String, String)>,
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

struct Op<'a> {
    address: Address,
    action: Action,
    desired: Option<&'a crate::model::Resource>,
    live: Option<&'a Live>,
}

fn verb(action: Action, deleting: bool) -> &'static str {
    match (action, deleting) {
        (_, true) => "delete",
        (Action::Create, _) | (Action::Replace, _) => "create",
        (Action::Update, _) => "update",
        _ => "no-op",
    }
}

/// Applies `plan` (computed from `desired` and `live`).
pub async fn apply(
    cx: &Cx,
    plan: &Plan,
    desired: &Model,
    live: &[Live],
    parallelism: usize,
) -> Report {
    let by_id: BTreeMap<&str, &Live> = live.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut deletes: Vec<Op> = Vec::new();
    let mut builds: Vec<Op> = Vec::new();
    let mut report = Report::default();
    for c in &plan.changes {
        let Ok(address) = c.address.parse::<Address>() else {
            report
                .failed
                .push((c.address.clone(), c.action, "not an address".into()));
            continue;
        };
        let live_one = c.live_id.as_deref().and_then(|id| by_id.get(id).copied());
        let desired_one = desired.get(&address);
        match c.action {
            Action::NoOp => {}
            Action::Delete => deletes.push(Op {
                address,
                action: c.action,
                desired: None,
                live: live_one,
            }),
            Action::Replace => {
                deletes.push(Op {
                    address: address.clone(),
                    action: c.action,
                    desired: None,
                    live: live_one,
                });
                builds.push(Op {
                    address,
                    action: c.action,
                    desired: desired_one,
                    live: None,
                });
            }
            Action::Create | Action::Update => builds.push(Op {
                address,
                action: c.action,
                desired: desired_one,
                live: live_one,
            }),
        }
    }

    let sem = Arc::new(Semaphore::new(parallelism.max(1)));
    let stream_sem = Arc::new(Semaphore::new(STREAM_CREATIONS));

    // Phase 1: deletions, rank by rank (hosts, then deliveries/profiles/groups, then the rest).
    let mut failed_deletes: BTreeSet<Address> = BTreeSet::new();
    for rank in 0..=2u8 {
        let ops: Vec<&Op> = deletes
            .iter()
            .filter(|o| delete_rank(o.address.kind) == rank)
            .collect();
        let results = join_all(ops.into_iter().map(|op| {
            let sem = sem.clone();
            let stream_sem = stream_sem.clone();
            async move {
                let _p = sem.acquire().await;
                let _s = if op.address.kind == Kind::Stream {
                    Some(stream_sem.acquire().await)
                } else {
                    None
                };
                let r = run(cx, op, true, desired).await;
                (op, r)
            }
        }))
        .await;
        for (op, r) in results {
            match r {
                Ok(()) => {
                    if op.action == Action::Delete {
                        report.done.push((op.address.to_string(), Action::Delete));
                    }
                }
                Err(e) => {
                    failed_deletes.insert(op.address.clone());
                    report
                        .failed
                        .push((op.address.to_string(), Action::Delete, e));
                }
            }
        }
    }

    // Phase 2: creations and updates over the dependency graph.
    let in_phase: BTreeSet<Address> = builds.iter().map(|o| o.address.clone()).collect();
    let mut senders: BTreeMap<Address, watch::Sender<Status>> = BTreeMap::new();
    let mut receivers: BTreeMap<Address, watch::Receiver<Status>> = BTreeMap::new();
    for a in &in_phase {
        let (tx, rx) = watch::channel(Status::Pending);
        senders.insert(a.clone(), tx);
        receivers.insert(a.clone(), rx);
    }
    let results = join_all(builds.iter().map(|op| {
        let sem = sem.clone();
        let stream_sem = stream_sem.clone();
        let tx = senders.get(&op.address).cloned();
        let deps: Vec<(Address, watch::Receiver<Status>)> = op
            .desired
            .map(|r| {
                r.depends_on
                    .iter()
                    .filter_map(|d| receivers.get(d).map(|rx| (d.clone(), rx.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let failed_deletes = &failed_deletes;
        async move {
            let finish = |s: Status| {
                if let Some(tx) = &tx {
                    let _ = tx.send(s);
                }
            };
            if failed_deletes.contains(&op.address) {
                finish(Status::Failed);
                return Outcome::Skipped(op.address.clone());
            }
            for (dep, mut rx) in deps {
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
                    cx.events.send(Event::Skipped {
                        address: op.address.clone(),
                        because: dep.clone(),
                    });
                    finish(Status::Failed);
                    return Outcome::Skipped(dep);
                }
            }
            let _p = sem.acquire().await;
            let _s = if op.address.kind == Kind::Stream && op.action != Action::Update {
                Some(stream_sem.acquire().await)
            } else {
                None
            };
            match run(cx, op, false, desired).await {
                Ok(()) => {
                    finish(Status::Ok);
                    Outcome::Done
                }
                Err(e) => {
                    finish(Status::Failed);
                    Outcome::Failed(e)
                }
            }
        }
    }))
    .await;
    for (op, outcome) in builds.iter().zip(results) {
        match outcome {
            Outcome::Done => report.done.push((op.address.to_string(), op.action)),
            Outcome::Failed(e) => report.failed.push((op.address.to_string(), op.action, e)),
            Outcome::Skipped(because) => report
                .skipped
                .push((op.address.to_string(), because.to_string())),
        }
    }
    report
}

enum Outcome {
    Done,
    Failed(String),
    Skipped(Address),
}

async fn run(cx: &Cx, op: &Op<'_>, deleting: bool, desired: &Model) -> Result<(), String> {
    let action = verb(op.action, deleting).to_string();
    let start = Instant::now();
    cx.events.send(Event::Start {
        address: op.address.clone(),
        action: action.clone(),
    });
    let result = if deleting {
        match op.live {
            Some(l) => kinds::delete(cx, l).await,
            None => Ok(()),
        }
    } else {
        match (op.desired, op.live) {
            (Some(r), Some(l)) if op.action == Action::Update => kinds::update(cx, r, l).await,
            (Some(r), _) => kinds::create(cx, r, desired).await,
            (None, _) => Err(crate::aws::AwsError::other(
                "apply",
                "Internal",
                format!("{} is not in the desired model", op.address),
            )),
        }
    };
    match result {
        Ok(()) => {
            cx.events.send(Event::Done {
                address: op.address.clone(),
                action,
                elapsed: start.elapsed(),
            });
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            cx.events.send(Event::Failed {
                address: op.address.clone(),
                action,
                error: msg.clone(),
            });
            Err(msg)
        }
    }
}
