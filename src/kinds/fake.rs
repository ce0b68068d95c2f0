//! In-memory resource kinds for testing the engine without AWS or moto, the way Terraform tests
//! its core with a fake provider.
//!
//! A [`Cloud`] is the shared "AWS": the objects that exist (kind, name, id, tags, props, creation
//! time), a [`Cloud::log`] of every operation in order ([`Mark::Start`], one [`Mark::Attempt`]
//! per try, [`Mark::End`]) and, per address, a [`Behaviour`]: fail a create, update or delete
//! some times with a retryable error or for good ([`Fail`]), take a while, never become ready,
//! stop at a [`Gate`] until the test lets it through. A [`FakeKind`] is a
//! [`ResourceKind`] over it, with the static facts a test chooses (`lifecycle_limit`,
//! `replace_on`, `name_is_identity`, `replaced_with`); what a resource uses is its `uses`
//! attribute, a list of `kind.name` strings.
//!
//! The operations behave like the real kinds': a create records itself in the creation journal
//! (`crate::journal`) before the call and ends the record once the tags are on, retries
//! retryable errors with [`retry`] and waits for readiness with [`wait_for`] (both bounded by
//! [`Timeouts::stream`]), and a create whose name is taken adopts the object if it is tagged as
//! the stack's or the journal vouches for it, and fails otherwise. Every operation yields at
//! least once, so operations that may run at once do overlap.
//!
//! ```ignore
//! let cloud = Cloud::new();
//! let things = FakeKind::new(&cloud, &[THING]).lifecycle_limit(2);
//! let kinds = Registry(&[&things]);
//! let (events, seen) = fake::recorder();
//! let cx = fake::cx(events, fake::timeouts(), Default::default());
//! let a = fake::resource(THING, "a", json!({}));
//! cloud.behave(&a.address, Behaviour { create: Fail::Retryable(2), ..Default::default() });
//! let b = fake::depending(fake::resource(THING, "b", json!({})), &[&a]);
//! let desired = fake::model([a, b]);
//! let live = fake::discover(&cx, &kinds, &desired).await;
//! let plan = plan::plan(&kinds, &desired, &live)?;
//! let report = executor::apply(&cx, &kinds, &plan, &desired, &live, 4).await;
//! ```
//!
//! Recipes, each in `executor/tests.rs`:
//!
//! - live state: [`Cloud::seed`] a resource as an earlier apply left it, then [`discover`];
//! - overlap that must happen: give the resources one [`Gate`], wait for
//!   [`Gate::reached`]`(n)` while the apply runs, then [`Gate::open`]; measure with
//!   [`Cloud::max_concurrency`];
//! - order: compare [`Cloud::position`]s of one operation's [`Mark::End`] and another's
//!   [`Mark::Start`];
//! - a kill: drop the apply's future while operations stop at a gate (their objects exist,
//!   untagged with [`Behaviour::tags_later`]); the cloud keeps what was done, the log has no
//!   end for them. Reading the journal an earlier "process" left takes `Journal::open`, which
//!   reads `STREAMSTACK_STATE_DIR`: run such a test in a process of its own.
//!
//! Nothing here sends a request: [`cx`]'s AWS clients point at a closed local port.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::aws::Clients;
use crate::error::AwsError;
use crate::events::{Event, Events};
use crate::journal::Journal;
use crate::kinds::{address_for, owned_by, retry, wait_for, Cx, Live, ResourceKind, Timeouts};
use crate::model::{Address, Env, Kind, Model, Props, Resource, TAG_ADDRESS, TAG_STACK};
use crate::{Error, Result};

/// Kinds for tests to use (any `Kind` works; [`FakeKind::uses`] resolves these).
pub const THING: Kind = Kind::new("thing");
pub const GADGET: Kind = Kind::new("gadget");
pub const WIDGET: Kind = Kind::new("widget");
const KNOWN: &[Kind] = &[THING, GADGET, WIDGET];

/// The stack, account and region of [`cx`] and [`resource`].
pub const STACK: &str = "fake";
pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "eu-west-1";

/// How an operation fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fail {
    #[default]
    Never,
    /// This many attempts fail with a retryable (throttling) error, then it works.
    Retryable(usize),
    /// Every attempt fails with an error that is not retried.
    Always,
}

/// What the cloud does with one address's operations.
#[derive(Clone, Default)]
pub struct Behaviour {
    pub create: Fail,
    pub update: Fail,
    pub delete: Fail,
    /// Each operation takes this long after its call (it only makes overlap likelier; assert on
    /// orders and counts, never on time).
    pub takes: Duration,
    /// A created object never becomes ready: the create ends in `Error::Timeout`.
    pub never_ready: bool,
    /// The endpoint ignores creation tags (as moto's CreateStream does): the object exists
    /// untagged until the create tags it after it is ready.
    pub tags_later: bool,
    /// Every operation stops here after its call (the object exists) until the gate lets it on.
    pub gate: Option<Arc<Gate>>,
}

/// A synchronisation point for operations: a test waits until some have reached it, then lets
/// them on. Made with [`Gate::new`]; shared by [`Behaviour::gate`].
pub struct Gate {
    arrived: Semaphore,
    pass: Semaphore,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate {
            arrived: Semaphore::new(0),
            pass: Semaphore::new(0),
        })
    }

    /// Waits until `n` more operations have reached the gate.
    pub async fn reached(&self, n: u32) {
        if let Ok(p) = self.arrived.acquire_many(n).await {
            p.forget();
        }
    }

    /// Lets `n` operations (waiting or still to come) through.
    pub fn let_through(&self, n: usize) {
        self.pass.add_permits(n);
    }

    /// Lets every operation through, now and later.
    pub fn open(&self) {
        self.pass.close();
    }

    async fn wait(&self) {
        self.arrived.add_permits(1);
        // A closed semaphore (an open gate) refuses the permit: the operation goes on.
        if let Ok(p) = self.pass.acquire().await {
            p.forget();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

impl Behaviour {
    fn fail(&self, op: Op) -> Fail {
        match op {
            Op::Create => self.create,
            Op::Update => self.update,
            Op::Delete => self.delete,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Start,
    /// One try of the call (the first, or a retry).
    Attempt,
    /// The operation returned: `true` when it succeeded. An operation whose future was dropped
    /// (the process killed) has no end.
    End(bool),
}

/// One line of the cloud's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub op: Op,
    pub address: Address,
    pub mark: Mark,
}

/// One object that exists in the fake cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: String,
    pub kind: Kind,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub props: Value,
    pub created: SystemTime,
}

#[derive(Default)]
struct State {
    objects: Vec<Object>,
    next_id: u64,
    log: Vec<Entry>,
    behaviour: BTreeMap<Address, Behaviour>,
    /// Failures still to come, per (address, operation).
    failures: BTreeMap<(Address, &'static str), usize>,
}

impl State {
    fn insert(
        &mut self,
        kind: Kind,
        name: &str,
        tags: BTreeMap<String, String>,
        props: Value,
    ) -> String {
        self.next_id += 1;
        let id = format!("{kind}-{}", self.next_id);
        self.objects.push(Object {
            id: id.clone(),
            kind,
            name: name.to_string(),
            tags,
            props,
            created: SystemTime::now(),
        });
        id
    }
}

/// The in-memory "AWS" the fake kinds share.
#[derive(Default)]
pub struct Cloud(Mutex<State>);

impl Cloud {
    pub fn new() -> Arc<Cloud> {
        Arc::new(Cloud::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets how the operations on `address` behave (from their next attempt).
    pub fn behave(&self, address: &Address, b: Behaviour) {
        let mut s = self.state();
        for op in [Op::Create, Op::Update, Op::Delete] {
            let key = (address.clone(), op.verb());
            match b.fail(op) {
                Fail::Retryable(n) => s.failures.insert(key, n),
                _ => s.failures.remove(&key),
            };
        }
        s.behaviour.insert(address.clone(), b);
    }

    fn behaviour(&self, address: &Address) -> Behaviour {
        self.state()
            .behaviour
            .get(address)
            .cloned()
            .unwrap_or_default()
    }

    /// Puts `r` in the cloud as if an earlier apply had created it (tags and props as given);
    /// returns its id.
    pub fn seed(&self, r: &Resource) -> String {
        self.insert(r.address.kind, &r.name, r.tags.clone(), attributes(r))
    }

    fn insert(
        &self,
        kind: Kind,
        name: &str,
        tags: BTreeMap<String, String>,
        props: Value,
    ) -> String {
        self.state().insert(kind, name, tags, props)
    }

    /// Everything that exists, in creation order.
    pub fn objects(&self) -> Vec<Object> {
        self.state().objects.clone()
    }

    /// The object of `kind` called `name`, if it exists.
    pub fn object(&self, kind: Kind, name: &str) -> Option<Object> {
        self.state()
            .objects
            .iter()
            .find(|o| o.kind == kind && o.name == name)
            .cloned()
    }

    /// Every operation's marks, in the order they happened.
    pub fn log(&self) -> Vec<Entry> {
        self.state().log.clone()
    }

    fn record(&self, op: Op, address: &Address, mark: Mark) {
        self.state().log.push(Entry {
            op,
            address: address.clone(),
            mark,
        });
    }

    /// Where in the log `op` on `address` first has `mark`.
    pub fn position(&self, op: Op, address: &Address, mark: Mark) -> Option<usize> {
        self.state()
            .log
            .iter()
            .position(|e| e.op == op && &e.address == address && e.mark == mark)
    }

    /// How many log lines match.
    pub fn count(&self, op: Op, address: &Address, mark: Mark) -> usize {
        self.state()
            .log
            .iter()
            .filter(|e| e.op == op && &e.address == address && e.mark == mark)
            .count()
    }

    /// The most operations matching `which` that were under way at once (between their start
    /// and their end).
    pub fn max_concurrency(&self, which: impl Fn(&Entry) -> bool) -> usize {
        let (mut now, mut max) = (0usize, 0usize);
        for e in self.state().log.iter().filter(|e| which(e)) {
            match e.mark {
                Mark::Start => {
                    now += 1;
                    max = max.max(now);
                }
                Mark::End(_) => now = now.saturating_sub(1),
                Mark::Attempt => {}
            }
        }
        max
    }

    /// One try of `op` on `address`: the configured failure, if one is due, else `act`.
    fn attempt<T>(
        &self,
        op: Op,
        address: &Address,
        act: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        self.record(op, address, Mark::Attempt);
        let (verb, fail) = (op.verb(), self.behaviour(address).fail(op));
        let operation = format!("fake:{verb}");
        let mut s = self.state();
        if fail == Fail::Always {
            let e = AwsError::service_error(&operation, Some("ValidationException"), 400);
            return Err(e.into());
        }
        if let Some(left) = s.failures.get_mut(&(address.clone(), verb)) {
            if *left > 0 {
                *left -= 1;
                let e = AwsError::service_error(&operation, Some("ThrottlingException"), 400);
                return Err(e.into());
            }
        }
        act(&mut s)
    }

    /// Runs one operation between its start and end marks.
    async fn tracked(
        &self,
        op: Op,
        address: &Address,
        body: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        self.record(op, address, Mark::Start);
        let result = body.await;
        self.record(op, address, Mark::End(result.is_ok()));
        result
    }

    /// What an operation does after its call: yield, take its time, stop at its gate.
    async fn after_call(&self, address: &Address) {
        let b = self.behaviour(address);
        tokio::task::yield_now().await;
        if !b.takes.is_zero() {
            tokio::time::sleep(b.takes).await;
        }
        if let Some(gate) = b.gate {
            gate.wait().await;
        }
    }
}

/// The flat attribute object of a resource's props.
fn attributes(r: &Resource) -> Value {
    Value::Object(r.props.attributes())
}

/// A resource kind backed by a [`Cloud`].
pub struct FakeKind {
    cloud: Arc<Cloud>,
    kinds: &'static [Kind],
    limit: Option<usize>,
    replace_on: &'static [&'static str],
    name_is_identity: bool,
    replaced_with: &'static [Kind],
}

impl FakeKind {
    /// The implementation of `kinds` (usually one) in `cloud`, with the trait's default facts.
    pub fn new(cloud: &Arc<Cloud>, kinds: &'static [Kind]) -> FakeKind {
        FakeKind {
            cloud: Arc::clone(cloud),
            kinds,
            limit: None,
            replace_on: &[],
            name_is_identity: true,
            replaced_with: &[],
        }
    }

    pub fn lifecycle_limit(mut self, n: usize) -> FakeKind {
        self.limit = Some(n);
        self
    }

    pub fn replace_on(mut self, attributes: &'static [&'static str]) -> FakeKind {
        self.replace_on = attributes;
        self
    }

    /// Names are only a label: a new name renames in place.
    pub fn renames_in_place(mut self) -> FakeKind {
        self.name_is_identity = false;
        self
    }

    pub fn replaced_with(mut self, kinds: &'static [Kind]) -> FakeKind {
        self.replaced_with = kinds;
        self
    }

    async fn discover_now(&self, cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
        let objects = self.cloud.objects();
        Ok(objects
            .into_iter()
            .filter(|o| self.kinds.contains(&o.kind))
            .map(|o| Live {
                resource: Resource {
                    address: address_for(o.kind, &o.name, &o.tags, desired),
                    name: o.name,
                    depends_on: Default::default(),
                    props: Props::new(o.props),
                    tags: o.tags.clone(),
                },
                id: o.id,
                ours: owned_by(&o.tags, &cx.stack),
                broken: None,
                created: Some(o.created),
            })
            .collect())
    }

    async fn create_now(&self, cx: &Cx, r: &Resource) -> Result<()> {
        let (cloud, kind) = (&self.cloud, r.address.kind);
        let b = cloud.behaviour(&r.address);
        cx.journal.begin(kind, &r.name);
        let tags = if b.tags_later {
            BTreeMap::new()
        } else {
            r.tags.clone()
        };
        let created = retry(
            cx,
            &r.address,
            cx.timeouts.stream,
            Error::is_transient,
            || async {
                cloud.attempt(Op::Create, &r.address, |s| match claim(s, cx, r)? {
                    Some(id) => Ok(id),
                    None => Ok(s.insert(kind, &r.name, tags.clone(), attributes(r))),
                })
            },
        )
        .await;
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                cx.journal.end(kind, &r.name);
                return Err(e);
            }
        };
        cloud.after_call(&r.address).await;
        wait_for(cx, &r.address, "ready", cx.timeouts.stream, || async {
            Ok((!b.never_ready).then_some(()))
        })
        .await?;
        set(cloud, &id, |o| o.tags = r.tags.clone())?;
        cx.journal.end(kind, &r.name);
        Ok(())
    }

    async fn update_now(&self, cx: &Cx, r: &Resource, live: &Live) -> Result<()> {
        let cloud = &self.cloud;
        retry(
            cx,
            &r.address,
            cx.timeouts.stream,
            Error::is_transient,
            || async { cloud.attempt(Op::Update, &r.address, |_| Ok(())) },
        )
        .await?;
        set(cloud, &live.id, |o| {
            o.name = r.name.clone();
            o.tags = r.tags.clone();
            o.props = attributes(r);
        })?;
        // The tags are on: a creation the journal recorded is complete.
        cx.journal.end(r.address.kind, &r.name);
        cloud.after_call(&r.address).await;
        Ok(())
    }

    async fn delete_now(&self, cx: &Cx, live: &Live) -> Result<()> {
        let (cloud, address) = (&self.cloud, live.address());
        retry(
            cx,
            address,
            cx.timeouts.stream,
            Error::is_transient,
            || async {
                cloud.attempt(Op::Delete, address, |s| {
                    s.objects.retain(|o| o.id != live.id);
                    Ok(())
                })
            },
        )
        .await?;
        cloud.after_call(address).await;
        Ok(())
    }
}

/// When an object with `r`'s name exists: its id if it is the stack's (or the journal says an
/// earlier run created it), an error if it is someone else's. `Ok(None)` when the name is free.
fn claim(s: &State, cx: &Cx, r: &Resource) -> Result<Option<String>> {
    let Some(o) = s
        .objects
        .iter()
        .find(|o| o.kind == r.address.kind && o.name == r.name)
    else {
        return Ok(None);
    };
    if owned_by(&o.tags, &cx.stack) || cx.journal.created_it(o.kind, &o.name, Some(o.created)) {
        return Ok(Some(o.id.clone()));
    }
    let message = format!("{} already exists and is not this stack's", r.name);
    Err(Error::resource(&r.address, message))
}

/// Changes the object with `id`; an error if it is gone.
fn set(cloud: &Cloud, id: &str, f: impl FnOnce(&mut Object)) -> Result<()> {
    let mut s = cloud.state();
    let o = s.objects.iter_mut().find(|o| o.id == id);
    let o = o.ok_or_else(|| Error::Internal(format!("fake object {id} does not exist")))?;
    f(o);
    Ok(())
}

impl ResourceKind for FakeKind {
    fn kinds(&self) -> &'static [Kind] {
        self.kinds
    }
    fn replace_on(&self) -> &'static [&'static str] {
        self.replace_on
    }
    fn name_is_identity(&self) -> bool {
        self.name_is_identity
    }
    fn replaced_with(&self) -> &'static [Kind] {
        self.replaced_with
    }
    fn lifecycle_limit(&self) -> Option<usize> {
        self.limit
    }
    /// The `uses` attribute: `kind.name` strings.
    fn uses(&self, live: &Resource) -> Vec<(Kind, String)> {
        let attrs = live.props.attributes();
        let Some(Value::Array(list)) = attrs.get("uses") else {
            return Vec::new();
        };
        list.iter()
            .filter_map(Value::as_str)
            .filter_map(|s| s.split_once('.'))
            .filter_map(|(k, n)| {
                let kind = KNOWN.iter().find(|known| known.as_str() == k)?;
                Some((*kind, n.to_string()))
            })
            .collect()
    }
    fn discover<'a>(&'a self, cx: &'a Cx, desired: &'a Model) -> BoxFuture<'a, Result<Vec<Live>>> {
        Box::pin(self.discover_now(cx, desired))
    }
    fn create<'a>(
        &'a self,
        cx: &'a Cx,
        r: &'a Resource,
        _desired: &'a Model,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            self.cloud
                .tracked(Op::Create, &r.address, self.create_now(cx, r)),
        )
    }
    fn update<'a>(
        &'a self,
        cx: &'a Cx,
        r: &'a Resource,
        live: &'a Live,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            self.cloud
                .tracked(Op::Update, &r.address, self.update_now(cx, r, live)),
        )
    }
    fn delete<'a>(&'a self, cx: &'a Cx, live: &'a Live) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            self.cloud
                .tracked(Op::Delete, live.address(), self.delete_now(cx, live)),
        )
    }
}

/// A desired resource of the stack: named `{STACK}-{key}`, tagged with the stack and its
/// address, with these props (a JSON object) and depending on nothing.
pub fn resource(kind: Kind, key: &str, props: Value) -> Resource {
    let address = Address::new(kind, key);
    Resource {
        name: format!("{STACK}-{key}"),
        tags: BTreeMap::from([
            (TAG_STACK.to_string(), STACK.to_string()),
            (TAG_ADDRESS.to_string(), address.to_string()),
        ]),
        depends_on: Default::default(),
        props: Props::new(props),
        address,
    }
}

/// `r`, depending on `on` as well.
pub fn depending(mut r: Resource, on: &[&Resource]) -> Resource {
    r.depends_on.extend(on.iter().map(|d| d.address.clone()));
    r
}

/// The desired model of these resources.
pub fn model(resources: impl IntoIterator<Item = Resource>) -> Model {
    Model {
        stack: STACK.to_string(),
        env: Env::new(ACCOUNT, REGION, STACK),
        resources: resources
            .into_iter()
            .map(|r| (r.address.clone(), r))
            .collect(),
    }
}

/// Every live resource of `kinds` (each one's `discover`), by address.
pub async fn discover(cx: &Cx, kinds: &crate::kinds::Registry<'_>, desired: &Model) -> Vec<Live> {
    let found = futures::future::join_all(kinds.handlers().map(|h| h.discover(cx, desired))).await;
    let mut all: Vec<Live> = found
        .into_iter()
        .flat_map(|f| f.unwrap_or_default())
        .collect();
    all.sort_by(|a, b| (a.address(), &a.id).cmp(&(b.address(), &b.id)));
    all
}

/// Timeouts for tests: polls of a millisecond, progress reported at every poll, and a minute
/// for waits and retries (a test that needs a wait to run out sets a shorter `stream`).
pub fn timeouts() -> Timeouts {
    let minute = Duration::from_secs(60);
    Timeouts {
        iam_propagation: minute,
        stream: minute,
        stream_update: minute,
        delivery: minute,
        instance: minute,
        poll: Duration::from_millis(1),
        progress_every: Duration::ZERO,
    }
}

/// Events captured as they happen: the sink, and what it has seen.
pub fn recorder() -> (Events, Arc<Mutex<Vec<Event>>>) {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let events = Events::call(move |e| {
        sink.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(e.clone())
    });
    (events, seen)
}

/// A context for [`STACK`] whose AWS clients are built offline (dummy credentials, an endpoint
/// on a closed local port): the fake kinds never use them.
pub fn cx(events: Events, timeouts: Timeouts, journal: Arc<Journal>) -> Cx {
    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
    let credentials = Credentials::new("AKIDFAKE", "fake-secret", None, None, "fake");
    let conf = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let clients = Clients::from_sdk_config(&conf, true).expect("offline clients");
    Cx {
        clients,
        env: Env::new(ACCOUNT, REGION, STACK),
        stack: STACK.to_string(),
        events,
        timeouts,
        journal,
        tagged: Default::default(),
        reads: Default::default(),
        lookups: Default::default(),
    }
}
