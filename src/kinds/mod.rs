//! One module per resource kind, each holding the kind's whole lifecycle: how it is read from
//! AWS into the plain model, which attribute changes force a replacement, how it is created,
//! updated and deleted, and what "ready" means. Shared plumbing lives here: the context, the
//! live-resource type, waiting and retrying with progress events.

pub mod bucket;
pub mod delivery;
mod dispatch;
pub mod host;
pub mod instance_profile;
pub mod role;
pub mod security_group;
pub mod stream;

pub use dispatch::{create, delete, discover_all, replace_on, update};

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::aws::{backoff, AwsError, Clients};
use crate::events::{Event, Events};
use crate::model::{Address, Env, Kind, Model, Resource, TAG_ADDRESS, TAG_STACK};

/// What every kind's operations get.
#[derive(Clone)]
pub struct Cx {
    pub clients: Clients,
    pub env: Env,
    pub stack: String,
    pub events: Events,
    /// Scales every wait and retry timeout (tests use short ones).
    pub timeouts: Timeouts,
}

/// Upper bounds for waits (aws-domain.md §4.7).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub iam_propagation: Duration,
    pub stream: Duration,
    pub delivery: Duration,
    pub instance: Duration,
    pub poll: Duration,
    pub progress_every: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            iam_propagation: Duration::from_secs(120),
            stream: Duration::from_secs(300),
            delivery: Duration::from_secs(1800),
            instance: Duration::from_secs(600),
            poll: Duration::from_secs(5),
            progress_every: Duration::from_secs(10),
        }
    }
}

/// A resource as it is live in AWS, in the same plain shape as the desired model.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// Address, physical name, tags and properties as read (`depends_on` is empty).
    pub resource: Resource,
    /// The id AWS knows it by (instance id, group id, ARN...).
    pub id: String,
    /// Tagged `streamstack:stack=<this stack>`.
    pub ours: bool,
}

impl Live {
    pub fn address(&self) -> &Address {
        &self.resource.address
    }
}

/// Is a resource with these tags owned by `stack`?
pub fn owned_by(tags: &BTreeMap<String, String>, stack: &str) -> bool {
    tags.get(TAG_STACK).is_some_and(|s| s == stack)
}

/// The address a live resource carries in its tags, if it is one of this stack's.
pub fn tagged_address(tags: &BTreeMap<String, String>, kind: Kind) -> Option<Address> {
    let a: Address = tags.get(TAG_ADDRESS)?.parse().ok()?;
    (a.kind == kind).then_some(a)
}

/// Which address a found resource answers to: the desired one it was looked up for, else its tag.
pub fn address_for(
    kind: Kind,
    name: &str,
    tags: &BTreeMap<String, String>,
    desired: &Model,
) -> Address {
    desired
        .of_kind(kind)
        .find(|r| r.name == name)
        .map(|r| r.address.clone())
        .or_else(|| tagged_address(tags, kind))
        .unwrap_or_else(|| Address::new(kind, name))
}

/// The usual discovery of a kind named in a flat per-account list (streams, deliveries,
/// buckets): from every `listed` name, read the desired names and the `{stack}-*` ones
/// concurrently, and keep what is ours or carries a desired name (a foreign same-named resource
/// is kept, with `ours: false`, so the planner can refuse it).
pub async fn read_candidates<F, Fut>(
    cx: &Cx,
    desired: &Model,
    kind: Kind,
    listed: impl IntoIterator<Item = String>,
    read: F,
) -> Result<Vec<Live>, AwsError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<Live>, AwsError>>,
{
    let prefix = format!("{}-", cx.stack);
    let wanted: Vec<&str> = desired.of_kind(kind).map(|r| r.name.as_str()).collect();
    let candidates = listed
        .into_iter()
        .filter(|n| wanted.contains(&n.as_str()) || n.starts_with(&prefix));
    let found = futures::future::try_join_all(candidates.map(read)).await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter(|l| l.ours || wanted.contains(&l.resource.name.as_str()))
        .collect())
}

/// Polls `check` until it returns `Some`, reporting progress at least every
/// `timeouts.progress_every`; fails after `timeout`.
pub async fn wait_for<T, F, Fut>(
    cx: &Cx,
    address: &Address,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, AwsError>>,
{
    let start = Instant::now();
    let mut last_report = start;
    let mut poll = cx.timeouts.poll.min(Duration::from_millis(500));
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(AwsError::other(
                "wait",
                "Timeout",
                format!(
                    "{address}: gave up waiting for {what} after {}s",
                    elapsed.as_secs()
                ),
            ));
        }
        if last_report.elapsed() >= cx.timeouts.progress_every {
            cx.events.send(Event::Progress {
                address: address.clone(),
                waiting_for: what.to_string(),
                elapsed,
            });
            last_report = Instant::now();
        }
        tokio::time::sleep(poll).await;
        // Start fast (moto and quick transitions), settle at the configured interval.
        poll = (poll * 2).min(cx.timeouts.poll);
    }
}

/// Runs `op` until it succeeds or fails with an error `retryable` does not accept, for at most
/// `timeout`; each retry is reported.
pub async fn retry<T, F, Fut>(
    cx: &Cx,
    address: &Address,
    timeout: Duration,
    retryable: impl Fn(&AwsError) -> bool,
    mut op: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && start.elapsed() < timeout => {
                cx.events.send(Event::Retry {
                    address: address.clone(),
                    error: e.to_string(),
                    elapsed: start.elapsed(),
                });
                tokio::time::sleep(
                    backoff(attempt).min(cx.timeouts.poll.max(Duration::from_millis(200))),
                )
                .await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Keys present live but not desired, and pairs desired but missing or different live.
pub fn tag_delta(
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let remove = live
        .keys()
        .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
        .cloned()
        .collect();
    let set = desired
        .iter()
        .filter(|(k, v)| live.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (remove, set)
}
