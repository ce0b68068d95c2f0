//! One module per resource kind, each holding the kind's whole live lifecycle: how it is read
//! from AWS into the plain model, which attribute changes force a replacement, how it is
//! created, updated and deleted, what "ready" means, what it depends on when deleting, and what
//! `output` shows. Each implements [`ResourceKind`]; [`REGISTRY`] is the one list of them, and the
//! generic layers (plan, executor, ops, commands, ui) reach every kind only through it.
//!
//! Shared plumbing lives here too: the context, the live-resource type, waiting and retrying
//! with progress events, and each mechanic several kinds share written once (tag changes from
//! a delta, "already gone" and "already done" answers, a create that finds its name taken, a
//! delete retried while the resource is busy, the `check` hop of a missing resource). What the
//! kinds of one service share lives in `iam_api` and `ec2_api`; paging through a listing is
//! `crate::aws::all_pages`.

/// The methods of [`ResourceKind`] every kind implements the same way: `kinds` (`kinds:`, the
/// kinds it serves), and those that delegate to the kind module's own functions of the same
/// names (which tests may call directly), taking the method's arguments without `self`:
/// always `discover`, `create`, `update` and `delete`, and any of `outputs`, `check`,
/// `put_test_records` and `cloudformation` named after them
/// (`lifecycle_from_module_fns!(kinds: &[KIND]; outputs)`). The module functions of the AWS
/// operations are `async fn`s returning `Result`. Without `kinds:`, the four operations only.
macro_rules! lifecycle_from_module_fns {
    (kinds: $kinds:expr; $($method:ident),* $(,)?) => {
        fn kinds(&self) -> &'static [$crate::model::Kind] {
            $kinds
        }
        lifecycle_from_module_fns!($($method),*);
    };
    ($($method:ident),* $(,)?) => {
        module_fn!(discover);
        module_fn!(create);
        module_fn!(update);
        module_fn!(delete);
        $(module_fn!($method);)*
    };
}

/// One method of [`ResourceKind`] delegating to the module function of its name (see
/// [`lifecycle_from_module_fns`]): by name, or spelt out as `async name(args) -> T` (a boxed
/// future of `Result<T>`) or `fn name(args) -> T`.
macro_rules! module_fn {
    (discover) => {
        module_fn!(async discover(cx: &'a $crate::kinds::Cx, desired: &'a $crate::model::Model)
            -> Vec<$crate::kinds::Live>);
    };
    (create) => {
        module_fn!(async create(cx: &'a $crate::kinds::Cx, r: &'a $crate::model::Resource,
            desired: &'a $crate::model::Model) -> ());
    };
    (update) => {
        module_fn!(async update(cx: &'a $crate::kinds::Cx, r: &'a $crate::model::Resource,
            live: &'a $crate::kinds::Live) -> ());
    };
    (delete) => {
        module_fn!(async delete(cx: &'a $crate::kinds::Cx, live: &'a $crate::kinds::Live) -> ());
    };
    (outputs) => {
        module_fn!(async outputs(cx: &'a $crate::kinds::Cx, live: &'a $crate::kinds::Live)
            -> std::collections::BTreeMap<String, String>);
    };
    (check) => {
        module_fn!(async check(cx: &'a $crate::kinds::Cx, r: &'a $crate::model::Resource,
            live: Option<&'a $crate::kinds::Live>, run: &'a $crate::kinds::CheckRun)
            -> Option<$crate::kinds::Hop>);
    };
    (put_test_records) => {
        module_fn!(async put_test_records(cx: &'a $crate::kinds::Cx,
            r: &'a $crate::model::Resource, records: &'a [String]) -> bool);
    };
    (cloudformation) => {
        module_fn!(fn cloudformation(r: &$crate::model::Resource, cfn: &$crate::cfn::Cfn)
            -> Option<$crate::cfn::CfnResource>);
    };
    (async $name:ident($($arg:ident: $ty:ty),*) -> $out:ty) => {
        fn $name<'a>(&'a self, $($arg: $ty),*)
            -> futures::future::BoxFuture<'a, $crate::Result<$out>> {
            Box::pin($name($($arg),*))
        }
    };
    (fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty) => {
        fn $name(&self, $($arg: $ty),*) -> $out {
            $name($($arg),*)
        }
    };
}

/// Every tag of a resource whose service pages its tags by key (`ExclusiveStartTagKey`,
/// `HasMoreTags`: Kinesis streams, Firehose deliveries), asking with `$request` (see
/// [`crate::aws::pages!`]): a future of the tags as a map.
macro_rules! tags_by_key {
    ($op:expr, $request:expr) => {
        async {
            let tags = $crate::aws::pages!($op, $request, set_exclusive_start_tag_key, |out| {
                let next = out.tags.last().filter(|_| out.has_more_tags);
                let next = next.map(|t| t.key.clone());
                (out.tags, next)
            })
            .await?;
            let tags = tags
                .into_iter()
                .map(|t| (t.key, t.value.unwrap_or_default()));
            Ok::<_, $crate::Error>(tags.collect::<std::collections::BTreeMap<_, _>>())
        }
    };
}

/// The `remove` of [`converge_tags`] for a service whose untag call takes the keys as
/// `TagKeys` (IAM, Kinesis, CloudWatch Logs): `$request`, a fluent builder that names the
/// resource, is sent with the keys as operation `$op`. (The SDK's builders share no trait.)
macro_rules! untag {
    ($op:expr, $request:expr) => {
        |keys: Vec<String>| async move {
            let call = $request.set_tag_keys(Some(keys));
            $crate::aws::Ctx::done(call.send().await, $op)
        }
    };
}

pub mod bucket;
pub mod check_memo;
/// The shared-credentials file an external host's access key is written to.
pub mod credentials_file;
pub mod delivery;
#[cfg(test)]
pub mod fake;
pub mod host;
pub mod instance_profile;
pub mod log_group;
pub mod objects;
pub mod role;
pub mod security_group;
pub mod stream;
pub mod user;

// What several kinds of one service share: the calls both make, and their conventions.
mod ec2_api;
mod iam_api;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::aws::{backoff, tagged_resources, Clients};
use crate::events::{Event, Events};
use crate::model::{Address, Env, Kind, Model, Props, Resource, TAG_ADDRESS, TAG_STACK};
use crate::{Error, Result};

/// Every kind's name (its address prefix). The kind's file calls its own `KIND`; they are here so
/// that a kind can name the kinds it uses (a delivery its bucket) without reading their files.
pub const BUCKET: Kind = Kind::new("bucket");
pub const STREAM: Kind = Kind::new("stream");
pub const LOG_GROUP: Kind = Kind::new("log_group");
/// The role a host's instance profile carries (assumed by EC2).
pub const HOST_ROLE: Kind = Kind::new("host_role");
/// The role Firehose assumes for a delivery.
pub const DELIVERY_ROLE: Kind = Kind::new("delivery_role");
pub const DELIVERY: Kind = Kind::new("delivery");
pub const INSTANCE_PROFILE: Kind = Kind::new("instance_profile");
pub const SECURITY_GROUP: Kind = Kind::new("security_group");
pub const HOST: Kind = Kind::new("host");
/// The IAM user an external host's agent authenticates as (`platform: external`).
pub const HOST_USER: Kind = Kind::new("host_user");

/// Every resource kind streamstack manages, in the order a reader meets them in a pipeline.
/// Adding a kind: CONTRIBUTING.md ("Adding a resource kind") lists every place, per case.
pub static REGISTRY: Registry<'static> = Registry(&[
    &bucket::Buckets,
    &stream::Streams,
    &log_group::LogGroups,
    &role::Roles,
    &delivery::Deliveries,
    &instance_profile::InstanceProfiles,
    &security_group::SecurityGroups,
    &host::Hosts,
    &user::Users,
]);

/// A list of kind implementations: [`REGISTRY`], or another in tests (the executor's tests run
/// on in-memory kinds). The planner and the executor reach every kind through one.
#[derive(Clone, Copy)]
pub struct Registry<'a>(pub &'a [&'a dyn ResourceKind]);

impl<'a> Registry<'a> {
    /// The implementation that handles `kind`.
    pub fn handler(&self, kind: Kind) -> Result<&'a dyn ResourceKind> {
        self.0
            .iter()
            .copied()
            .find(|h| h.kinds().contains(&kind))
            .ok_or_else(|| Error::Internal(format!("no implementation registered for kind {kind}")))
    }

    /// Every implementation, in registry order.
    pub fn handlers(&self) -> impl Iterator<Item = &'a dyn ResourceKind> + 'a {
        self.0.iter().copied()
    }

    /// The registered kind with this name (`stream`).
    pub fn kind_named(&self, name: &str) -> Option<Kind> {
        self.0
            .iter()
            .flat_map(|h| h.kinds().iter().copied())
            .find(|k| k.as_str() == name)
    }

    /// Parses an address (`stream.weather`) of a registered kind.
    pub fn parse_address(&self, s: &str) -> std::result::Result<Address, String> {
        Address::parse(s, |name| self.kind_named(name))
    }

    /// Do resources of kinds `a` and `b` share a name namespace (one implementation: the two
    /// role kinds are both IAM roles)?
    pub fn same_namespace(&self, a: Kind, b: Kind) -> bool {
        a == b
            || match (self.handler(a), self.handler(b)) {
                (Ok(x), Ok(y)) => std::ptr::addr_eq(x, y),
                _ => false,
            }
    }

    /// Whether physical names of `kind` compare case-insensitively (IAM).
    pub fn case_insensitive(&self, kind: Kind) -> bool {
        self.handler(kind)
            .ok()
            .and_then(|h| h.name_namespace())
            .is_some_and(|(_, ci)| ci)
    }
}

/// The implementation that handles `kind`, in [`REGISTRY`].
pub fn handler(kind: Kind) -> Result<&'static dyn ResourceKind> {
    REGISTRY.handler(kind)
}

/// What `render` can print for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// A host's user-data script (before base64).
    UserData,
    /// A host's /etc/aws-kinesis/agent.json.
    AgentConfig,
    /// A role's trust and inline policies.
    Policies,
    /// Everything to install the agent on an external host: a JSON object of file name →
    /// contents (`agent.json`, `install.sh`, `README.md`).
    AgentBundle,
}

/// What `apply --credentials-dir DIR [--rotate-keys]` asks of kinds that hand out a secret
/// (an external host's access key): where it may be written, and whether to replace it.
#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    pub dir: Option<std::path::PathBuf>,
    pub rotate: bool,
}

/// A secret a kind handed out, as reported: where it went, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IssuedKey {
    pub address: String,
    pub access_key_id: String,
    pub file: String,
    pub profile: String,
    /// The ids of the keys deleted after the new one was written (`--rotate-keys`).
    pub deleted: Vec<String>,
}

/// One rendered artefact.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The host (spec key) it belongs to, if any: `--host` selects by it.
    pub host: Option<String>,
    pub body: serde_json::Value,
}

/// What one `check` pass knows: the test run (with `--put`), and how long it has been going.
#[derive(Debug, Clone)]
pub struct CheckRun {
    /// The id carried by `--put` records; only records carrying it count then.
    pub run_id: Option<String>,
    /// With `--put N`: N, the records each hop must show.
    pub expect: u32,
    pub started: Instant,
    /// What the check's looks share: objects already counted, where each shard's reading
    /// stands, the pace of `GetRecords`.
    pub memo: std::sync::Arc<check_memo::CheckMemo>,
}

/// One hop of the pipeline as `check` sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hop {
    pub address: String,
    pub ok: bool,
    /// One line: what was found.
    pub summary: String,
    /// What a student can do about a broken hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The counts and ids behind the summary.
    pub evidence: serde_json::Value,
}

/// The interface every kind implements. Static facts have defaults that fit most kinds; the
/// AWS operations are boxed futures so the registry can hold the kinds as trait objects.
pub trait ResourceKind: Send + Sync {
    /// The kinds (address prefixes) this implementation handles: one, or several that share an
    /// AWS resource type (IAM roles serve hosts and deliveries).
    fn kinds(&self) -> &'static [Kind];

    /// Attributes whose change forces a replacement (AWS cannot change them in place).
    fn replace_on(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the physical name is the resource's identity (a new name is a new resource).
    /// Hosts answer false: their name is only a tag.
    fn name_is_identity(&self) -> bool {
        true
    }

    /// Kinds whose replacement forces the replacement of a resource of this kind that depends
    /// on them (no API can point a Firehose delivery at a new stream).
    fn replaced_with(&self) -> &'static [Kind] {
        &[]
    }

    /// The namespace physical names are unique in, and whether AWS compares them
    /// case-insensitively; `None` when names need not be unique.
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        None
    }

    /// At most this many creations or deletions of this kind at once (account quotas).
    fn lifecycle_limit(&self) -> Option<usize> {
        None
    }

    /// The other resources a live resource uses, by kind and physical name: they are deleted
    /// only after it has been deleted or updated to stop using them.
    fn uses(&self, _live: &Resource) -> Vec<(Kind, String)> {
        Vec::new()
    }

    /// Everything live of these kinds that belongs to the stack or has one of its names.
    fn discover<'a>(&'a self, cx: &'a Cx, desired: &'a Model) -> BoxFuture<'a, Result<Vec<Live>>>;

    /// Creates the resource and waits until it is usable.
    fn create<'a>(
        &'a self,
        cx: &'a Cx,
        r: &'a Resource,
        desired: &'a Model,
    ) -> BoxFuture<'a, Result<()>>;

    /// Starts, as the apply begins, the lookups a create of `r` will need that depend on no
    /// other resource (see [`Lookups`]); errors are left to the create.
    fn prepare<'a>(&'a self, _cx: &'a Cx, _r: &'a Resource) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Brings `live` to `r` in place.
    fn update<'a>(
        &'a self,
        cx: &'a Cx,
        r: &'a Resource,
        live: &'a Live,
    ) -> BoxFuture<'a, Result<()>>;

    /// Deletes the resource and waits until it is gone.
    fn delete<'a>(&'a self, cx: &'a Cx, live: &'a Live) -> BoxFuture<'a, Result<()>>;

    /// What `output` shows beside the name and id: ARNs, where data lands, how to reach a host.
    fn outputs<'a>(
        &'a self,
        _cx: &'a Cx,
        _live: &'a Live,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        Box::pin(async { Ok(BTreeMap::new()) })
    }

    /// Where this kind's hop sits in the pipeline for `check` (hosts produce, streams carry,
    /// deliveries land): hops are reported, and the first broken one named, in this order.
    fn hop_order(&self) -> u8 {
        u8::MAX
    }

    /// One hop of `check`: whether this resource does its part of the pipeline, with evidence.
    /// `None` for kinds that are not a hop (roles, profiles, groups, buckets, log groups).
    fn check<'a>(
        &'a self,
        _cx: &'a Cx,
        _r: &'a Resource,
        _live: Option<&'a Live>,
        _run: &'a CheckRun,
    ) -> BoxFuture<'a, Result<Option<Hop>>> {
        Box::pin(async { Ok(None) })
    }

    /// `check --put`: writes `records` (one JSON object each) into this resource if it takes
    /// records from producers (a stream, a direct delivery). `false` when it does not.
    fn put_test_records<'a>(
        &'a self,
        _cx: &'a Cx,
        _r: &'a Resource,
        _records: &'a [String],
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(false) })
    }

    /// `apply --wait-bootstrap`: waits (at most `timeout`) until a newly created resource says
    /// it is working (a host's bootstrap report). Most kinds are ready once created.
    fn wait_reported<'a>(
        &'a self,
        _cx: &'a Cx,
        _live: &'a Live,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// The resource as a CloudFormation resource (`render --what cloudformation`), if the kind
    /// has one. Names and ARNs are the model's; the `cloudformation` module turns the account,
    /// region and partition into pseudo parameters.
    fn cloudformation(
        &self,
        _r: &Resource,
        _cfn: &crate::cfn::Cfn,
    ) -> Option<crate::cfn::CfnResource> {
        None
    }

    /// Before an apply writes anything: why it will have to hand out a new secret for `r` (a
    /// user without an access key, or `--rotate-keys`), if it will. Most kinds never do.
    fn key_due<'a>(
        &'a self,
        _cx: &'a Cx,
        _r: &'a Resource,
        _opts: &'a KeyOptions,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// After a successful apply: hands out the secret `key_due` announced (writes it only to
    /// `opts.dir`), deleting a replaced one only once the new one is written.
    fn issue_key<'a>(
        &'a self,
        _cx: &'a Cx,
        _r: &'a Resource,
        _opts: &'a KeyOptions,
    ) -> BoxFuture<'a, Result<Option<IssuedKey>>> {
        Box::pin(async { Ok(None) })
    }

    /// What `render` prints for a desired resource, if this kind has that artefact.
    fn render(&self, _r: &Resource, _what: Render) -> Option<Rendered> {
        None
    }

    /// For `stacks` and `gc`, which list every stack's resources in the region with the
    /// Resource Groups Tagging API (`listed`, the ARNs it answered): this kind's resources of
    /// any stack that the API does not list (IAM's), and the listed ARNs of this kind that are
    /// no leftovers although still tagged (terminated instances).
    fn correct_listing<'a>(
        &'a self,
        _clients: &'a Clients,
        _listed: &'a [String],
    ) -> BoxFuture<'a, Result<ListingFix>> {
        Box::pin(async { Ok(ListingFix::default()) })
    }

    /// What a resource of this kind bills per hour at `usage` (`crate::cost`): nothing by
    /// default (roles, instance profiles and security groups are free).
    fn cost(&self, _r: &Resource, _usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
        Vec::new()
    }

    /// For `stacks`: what this kind's resources among `arns` (one stack's, as listed) bill per
    /// hour, read from AWS (an instance's type and state), by ARN.
    fn listed_cost<'a>(
        &'a self,
        _clients: &'a Clients,
        _arns: &'a [String],
    ) -> BoxFuture<'a, Result<crate::cost::Priced>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// What one kind corrects in the Resource Groups Tagging API's listing of every stack's
/// resources (see [`ResourceKind::correct_listing`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ListingFix {
    /// Resources the API does not list, with their tags (every one tagged `streamstack:stack`).
    pub unlisted: Vec<(String, BTreeMap<String, String>)>,
    /// Listed ARNs that are not leftovers.
    pub not_leftovers: Vec<String>,
}

/// What every kind's operations get.
#[derive(Clone)]
pub struct Cx {
    pub clients: Clients,
    pub env: Env,
    pub stack: String,
    pub events: Events,
    /// Scales every wait and retry timeout (tests use short ones).
    pub timeouts: Timeouts,
    /// Creations in flight (see `crate::journal`).
    pub journal: std::sync::Arc<crate::journal::Journal>,
    /// ARNs tagged `streamstack:stack=<stack>` and their tags, fetched once per discovery (see
    /// [`Cx::tagged_arns`]).
    pub tagged: std::sync::Arc<tokio::sync::OnceCell<Tagged>>,
    /// How much of each resource a discovery reads.
    pub reads: Reads,
    /// Lookups shared by the operations of one session (see [`Lookups`]).
    pub lookups: std::sync::Arc<Lookups>,
}

/// Answers to lookups that depend on no resource of the stack (an image's AMI id, a default
/// subnet), asked once per session: a kind may start them in [`ResourceKind::prepare`], before
/// its resource's turn, and its create finds them done. A failed lookup is not kept: the next
/// asker tries again (and reports the error).
#[derive(Default)]
pub struct Lookups(std::sync::Mutex<std::collections::HashMap<String, LookupCell>>);

/// One lookup's answer, of whichever type it has.
type Answer = std::sync::Arc<dyn std::any::Any + Send + Sync>;
type LookupCell = std::sync::Arc<tokio::sync::OnceCell<Answer>>;

impl Lookups {
    /// The answer to lookup `key`, from `ask` the first time.
    pub async fn get<T, F, Fut>(&self, key: String, ask: F) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let cell = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let any = cell
            .get_or_try_init(|| async { ask().await.map(|t| std::sync::Arc::new(t) as Answer) })
            .await?;
        any.downcast_ref::<T>()
            .cloned()
            .ok_or_else(|| Error::Internal(format!("lookup {key} answered with another type")))
    }
}

/// How much of each resource a discovery reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reads {
    /// Everything the plan compares (`plan`, `apply`).
    #[default]
    Full,
    /// What deleting needs: identity, ownership (tags) and what a resource uses (for the
    /// order), not the settings a plan would compare (`destroy` reads a bucket's tags, not its
    /// lifecycle; a role's, not its policies), nor same names in another spelling (IAM), which
    /// only a plan refuses. A kind may read more, never less.
    ForDeletion,
}

/// What the Resource Groups Tagging API knows as the stack's: ARNs, in its order, and each one's
/// tags (up to 100 resources' tags per call, where per-resource tag reads cost one call each).
#[derive(Debug, Default)]
pub struct Tagged {
    pub arns: Vec<String>,
    /// Each resource's tags, handed out once (see [`Cx::tagged_tags`]).
    tags: std::sync::Mutex<std::collections::HashMap<String, BTreeMap<String, String>>>,
    /// The clients' count of writes when the listing was asked for: after any later write the
    /// tags may be stale, and are read from the service again.
    writes: u64,
}

impl Tagged {
    /// Log groups' ARNs come with and without the `:*` suffix.
    fn key(arn: &str) -> &str {
        arn.strip_suffix(":*").unwrap_or(arn)
    }

    fn insert(&mut self, arn: String, tags: BTreeMap<String, String>) {
        self.tags
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(Self::key(&arn).to_string(), tags);
        self.arns.push(arn);
    }

    /// The tags of `arn`, if the tagging API listed it and they were not taken before.
    fn take(&self, arn: &str) -> Option<BTreeMap<String, String>> {
        self.tags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(Self::key(arn))
    }
}

impl Cx {
    /// Does this discovery read the settings a plan compares (not only what deleting needs)?
    pub fn reads_settings(&self) -> bool {
        self.reads == Reads::Full
    }

    /// Every resource ARN the Resource Groups Tagging API knows as tagged
    /// `streamstack:stack=<stack>` in this region, fetched once and shared by the kinds: it is how
    /// resources with explicit names that left the spec are still found. (moto's tagging API
    /// covers S3, Firehose, Logs and EC2 but not Kinesis; the stream kind also reads tags.)
    pub async fn tagged_arns(&self) -> Result<&[String]> {
        let arns = self
            .tagged
            .get_or_try_init(|| async {
                let mut tagged = Tagged {
                    writes: self.clients.budget.writes(),
                    ..Tagged::default()
                };
                let listed = tagged_resources(&self.clients, TAG_STACK, Some(&self.stack)).await?;
                for (arn, tags) in listed {
                    tagged.insert(arn, tags);
                }
                Ok::<_, Error>(tagged)
            })
            .await?;
        Ok(&arns.arns)
    }

    /// The tags of a resource tagged as the stack's, as the Resource Groups Tagging API listed
    /// them in this discovery; `None` when it did not list the resource (not the stack's, not
    /// covered by the endpoint's tagging API, or too new for its index): read them from the
    /// service then. A resource's tags are handed out once (a discovery reads each resource
    /// once; a later one with the same context reads them from the service), and not at all
    /// once these clients have written anything since the listing was asked for: a tag change,
    /// a deletion or a re-creation may not be in it.
    pub async fn tagged_tags(&self, arn: &str) -> Result<Option<BTreeMap<String, String>>> {
        self.tagged_arns().await?;
        Ok(self
            .tagged
            .get()
            .filter(|t| t.writes == self.clients.budget.writes())
            .and_then(|t| t.take(arn)))
    }

    /// The names of tagged resources whose ARN starts with `arn_prefix` (the rest of the ARN).
    pub async fn tagged_names(&self, arn_prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .tagged_arns()
            .await?
            .iter()
            .filter_map(|a| a.strip_prefix(arn_prefix))
            .map(str::to_string)
            .collect())
    }
}

/// Upper bounds for waits (aws-domain.md §4.7).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub iam_propagation: Duration,
    pub stream: Duration,
    /// A stream update (resharding in steps, mode, encryption) can take many minutes.
    pub stream_update: Duration,
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
            stream_update: Duration::from_secs(2 * 3600),
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
    /// Why the resource is unusable, when AWS reports it in a terminal failed state
    /// (a delivery CREATING_FAILED): the plan replaces it, giving this reason.
    pub broken: Option<String>,
    /// When AWS says the resource was created, where the kind reads it (buckets, streams): the
    /// creation journal adopts an untagged resource only if it is not older than the creation
    /// the journal recorded.
    pub created: Option<std::time::SystemTime>,
}

impl Live {
    /// A resource as a read found it: `id` is what AWS knows it by, `ours` whether it is this
    /// stack's. Neither broken nor dated: a kind that knows either sets it.
    pub fn new(
        id: String,
        ours: bool,
        address: Address,
        name: String,
        tags: BTreeMap<String, String>,
        props: Props,
    ) -> Live {
        Live {
            broken: None,
            created: None,
            ours,
            id,
            resource: Resource {
                address,
                name,
                tags,
                depends_on: Default::default(),
                props,
            },
        }
    }

    pub fn address(&self) -> &Address {
        &self.resource.address
    }
}

/// Settles what the creation journal knows of live resources: an untagged resource this stack
/// began creating (a run that died before tagging it, or an endpoint that ignores creation tags)
/// is the stack's own (the plan then tags it), and the record of a resource found tagged as the
/// stack's is done with (a run killed between tagging and ending the record left it; kept, it
/// would vouch for an unrelated same-named resource made later).
pub fn settle_journal(journal: &crate::journal::Journal, lives: &mut [Live]) {
    for l in lives.iter_mut() {
        let (kind, name) = (l.address().kind, l.resource.name.clone());
        if l.ours {
            if journal.has(kind, &name) {
                journal.end(kind, &name);
            }
        } else if journal.created_it(kind, &name, l.created) {
            tracing::info!(
                "{} ({name}) is untagged but this stack began creating it: adopting it",
                l.address()
            );
            l.ours = true;
        }
    }
}

/// Is a resource with these tags owned by `stack`?
pub fn owned_by(tags: &BTreeMap<String, String>, stack: &str) -> bool {
    tags.get(TAG_STACK).is_some_and(|s| s == stack)
}

/// The address of `kind` a live resource carries in its tags, if it is one of this stack's.
pub fn tagged_address(tags: &BTreeMap<String, String>, kind: Kind) -> Option<Address> {
    let (k, key) = tags.get(TAG_ADDRESS)?.split_once('.')?;
    (k == kind.as_str() && !key.is_empty()).then(|| Address::new(kind, key))
}

/// Which address a found resource answers to: the desired one it was looked up for, else its tag.
pub fn address_for(
    kind: Kind,
    name: &str,
    tags: &BTreeMap<String, String>,
    desired: &Model,
) -> Address {
    let case_insensitive = REGISTRY.case_insensitive(kind);
    desired
        .of_kind(kind)
        .find(|r| r.name == name || (case_insensitive && r.name.eq_ignore_ascii_case(name)))
        .map(|r| r.address.clone())
        .or_else(|| tagged_address(tags, kind))
        .unwrap_or_else(|| Address::new(kind, name))
}

/// The usual discovery of a kind named in a flat per-account list (streams, deliveries,
/// buckets, log groups): from every `listed` name, read the desired names, those starting
/// with `prefix` (names the stack derives: `{stack}-`) and those `tagged` as the stack's (explicit
/// names that left the spec) concurrently, and keep what is ours or
/// carries a desired name (a foreign same-named resource is kept, with `ours: false`, so the
/// planner can refuse it). A candidate that is not a desired one and may not be read
/// (`AccessDenied`: another team's `{stack}-…` resource) is not the stack's: it is left out.
pub async fn read_candidates<F, Fut>(
    desired: &Model,
    kind: Kind,
    prefix: &str,
    tagged: &[String],
    listed: impl IntoIterator<Item = String>,
    read: F,
) -> Result<Vec<Live>, Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<Live>, Error>>,
{
    let wanted: Vec<&str> = desired.of_kind(kind).map(|r| r.name.as_str()).collect();
    let candidates = listed
        .into_iter()
        .filter(|n| wanted.contains(&n.as_str()) || n.starts_with(prefix) || tagged.contains(n));
    let read = &read;
    let wanted = &wanted;
    let found = futures::future::try_join_all(candidates.map(|n| async move {
        let desired_name = wanted.contains(&n.as_str());
        match read(n.clone()).await {
            Err(e) if e.is_access_denied() && !desired_name => {
                tracing::info!("{kind} {n} may not be read, so it is not this stack's: {e}");
                Ok(None)
            }
            other => other,
        }
    }))
    .await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter(|l| l.ours || wanted.contains(&l.resource.name.as_str()))
        .collect())
}

/// IAM names are unique case-insensitively: a desired name that the listing under the stack's
/// path lacks may exist elsewhere in another spelling (`Weather-Lab-Collector-Host`). Adds to
/// `names` the account's spelling of each such name, from `list_all` (every name in the
/// account), which is called only when something is missing. Only a plan looks: it refuses
/// such a name, and deleting ([`Reads::ForDeletion`]) never touches it.
pub async fn complete_iam_names<F, Fut>(
    cx: &Cx,
    names: &mut Vec<String>,
    wanted: &[&str],
    list_all: F,
) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<String>>>,
{
    if !cx.reads_settings() {
        return Ok(());
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !names.iter().any(|n| n.eq_ignore_ascii_case(w)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all = list_all().await?;
    for w in missing {
        if let Some(n) = all.iter().find(|n| n.eq_ignore_ascii_case(w)) {
            names.push(n.clone());
        }
    }
    Ok(())
}

/// Progress events of one long wait or task, at most one every `timeouts.progress_every`.
pub struct Progress<'a> {
    cx: &'a Cx,
    address: &'a Address,
    start: Instant,
    last_report: Instant,
}

impl<'a> Progress<'a> {
    pub fn new(cx: &'a Cx, address: &'a Address) -> Self {
        let start = Instant::now();
        Progress {
            cx,
            address,
            start,
            last_report: start,
        }
    }

    /// Since when the task runs.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Reports that the task is still waiting for `what` (asked only when it is time to).
    pub fn report(&mut self, what: impl FnOnce() -> String) {
        if self.last_report.elapsed() >= self.cx.timeouts.progress_every {
            self.cx.events.send(Event::Progress {
                address: self.address.clone(),
                waiting_for: what(),
                elapsed: self.elapsed(),
            });
            self.last_report = Instant::now();
        }
    }
}

/// Polls `check` until it returns `Some`, reporting progress at least every
/// `timeouts.progress_every`; fails after `timeout`.
pub async fn wait_for<T, F, Fut>(
    cx: &Cx,
    address: &Address,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let mut progress = Progress::new(cx, address);
    let mut poll = cx.timeouts.poll.min(Duration::from_millis(500));
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        let elapsed = progress.elapsed();
        if elapsed >= timeout {
            return Err(Error::Timeout {
                address: address.clone(),
                what: what.to_string(),
                elapsed,
            });
        }
        progress.report(|| what.to_string());
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
    retryable: impl Fn(&Error) -> bool,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && start.elapsed() < timeout => {
                let pause = backoff(attempt).min(cx.timeouts.poll.max(Duration::from_millis(200)));
                tracing::info!(
                    target: "streamstack::retry",
                    "retry {address} in {} ms after: {e}",
                    pause.as_millis()
                );
                cx.events.send(Event::Retry {
                    address: address.clone(),
                    error: e.to_string(),
                    elapsed: start.elapsed(),
                });
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The hop of a resource that does not exist: `what` says what is missing ("no stream").
pub fn missing_hop(r: &Resource, what: &str) -> Hop {
    Hop {
        address: r.address.to_string(),
        ok: false,
        summary: what.into(),
        hint: Some("run streamstack apply".into()),
        evidence: serde_json::Value::Null,
    }
}

/// Times a refused record of `check --put` is sent again before it is an error.
const PUT_RETRIES: u32 = 4;

/// `check --put` into a resource that takes records in batches of at most 500 (Kinesis
/// PutRecords, Firehose PutRecordBatch). `put` sends one batch, given as each record's index in
/// `records` and the record, and answers, in the same order, the error code of each record the
/// service refused (`None`: taken): both APIs can take part of a batch and refuse the rest
/// (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html,
/// https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html). Only the
/// refused records are sent again, after a backoff, so none is written twice; a record still
/// refused after [`PUT_RETRIES`] retries is an error.
pub async fn put_in_batches<'r, F, Fut>(
    r: &Resource,
    records: &'r [String],
    mut put: F,
) -> Result<bool>
where
    F: FnMut(Vec<(usize, &'r String)>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<String>>>>,
{
    let mut next = 0;
    for batch in records.chunks(500) {
        let mut pending: Vec<(usize, &'r String)> = (next..).zip(batch).collect();
        next += batch.len();
        let mut attempt = 0;
        while !pending.is_empty() {
            let answers = put(pending.clone()).await?;
            let refused: Vec<((usize, &'r String), String)> = pending
                .iter()
                .zip(answers)
                .filter_map(|(record, code)| code.map(|c| (*record, c)))
                .collect();
            let Some((_, first_code)) = refused.first() else {
                break;
            };
            if attempt == PUT_RETRIES {
                return Err(Error::resource(
                    &r.address,
                    format!(
                        "{} of the test records were refused {} times (last: {first_code})",
                        refused.len(),
                        attempt + 1,
                    ),
                ));
            }
            tracing::info!(
                target: "streamstack::retry",
                "{}: {} of {} test records refused ({first_code}); sending those again",
                r.address,
                refused.len(),
                pending.len(),
            );
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            pending = refused.into_iter().map(|(record, _)| record).collect();
        }
    }
    Ok(true)
}

/// Whether an attempt of a create may have created the resource although it failed (no answer
/// came, or a 5xx): when the name then turns out taken, the resource may be this create's own.
#[derive(Default)]
pub struct MaybeCreated(std::sync::atomic::AtomicBool);

impl MaybeCreated {
    /// Notes the outcome of one attempt.
    pub fn note<T>(&self, attempt: &Result<T>) {
        if attempt.as_ref().is_err_and(Error::may_have_acted) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What a create does when AWS says its name is taken (`taken`, AWS's answer), with the resource
/// of that name as a read `found` it: one that `own` says is this create's (the stack's, or
/// made by an earlier attempt whose answer was lost) is taken over; another is refused, its
/// kind named by `what` ("a stream"); with none (still being deleted), AWS's answer stands, for
/// the caller to retry.
pub fn adopt(
    r: &Resource,
    what: &str,
    taken: Error,
    found: Option<Live>,
    own: impl FnOnce(&Live) -> bool,
) -> Result<Live> {
    match found {
        Some(live) if own(&live) => Ok(live),
        Some(_) => Err(Error::resource(
            &r.address,
            format!(
                "{what} named {} already exists and is not tagged as this stack's; rename it \
                 in the spec (name:) or delete the other one",
                r.name
            ),
        )),
        None => Err(taken),
    }
}

/// Sends a delete with `delete`, retried for at most `timeout` while AWS answers `busy` (the
/// resource is still being created, or still in use). `false` when it was already gone.
pub async fn delete_when_free<F, Fut>(
    cx: &Cx,
    address: &Address,
    timeout: Duration,
    busy: &str,
    delete: F,
) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let deleted = retry(cx, address, timeout, |e| e.code() == Some(busy), delete).await;
    Ok(found(deleted)?.is_some())
}

/// What `output` shows of a resource whose id is its ARN.
pub fn arn_output(live: &Live) -> BTreeMap<String, String> {
    BTreeMap::from([("arn".to_string(), live.id.clone())])
}

/// A resource's properties as kind `T` holds them; an internal error when they are not a `T`.
pub fn props<T: 'static>(r: &Resource) -> Result<&T> {
    r.props.get::<T>().ok_or_else(|| {
        let name = std::any::type_name::<T>();
        let name = name.rsplit("::").next().unwrap_or(name);
        Error::Internal(format!("{} has no {name}", r.address))
    })
}

/// What a call answered, or `None` when the service said the resource does not exist.
pub fn found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ignores "does not exist": the thing to undo is already gone.
pub fn gone_ok<T>(r: Result<T>) -> Result<()> {
    found(r).map(|_| ())
}

/// Ignores the error `code` with which a service answers a change that is already done (a rule
/// that is already there, a log stream that already exists, an upload already aborted).
pub fn already_done<T>(r: Result<T>, code: &str) -> Result<()> {
    match r {
        Err(e) if e.code() == Some(code) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Brings a resource's tags from `live` to `desired` (see [`tag_delta`]): `remove` takes off
/// the keys that must go, then `set` puts on the pairs that are missing or different. A call
/// with nothing to send is not made.
pub async fn converge_tags<R, RFut, S, SFut>(
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
    remove: R,
    set: S,
) -> Result<()>
where
    R: FnOnce(Vec<String>) -> RFut,
    RFut: Future<Output = Result<()>>,
    S: FnOnce(BTreeMap<String, String>) -> SFut,
    SFut: Future<Output = Result<()>>,
{
    let (gone, changed) = tag_delta(desired, live);
    if !gone.is_empty() {
        remove(gone).await?;
    }
    if !changed.is_empty() {
        set(changed).await?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn tags_converge_untag_first_and_skip_empty_calls() {
        let desired = tags(&[("a", "1"), ("b", "2")]);
        let drifted = tags(&[("a", "1"), ("b", "old"), ("c", "3"), ("aws:x", "y")]);
        let cases = [
            (drifted, vec![r#"untag ["c"]"#, r#"tag {"b": "2"}"#]),
            (desired.clone(), vec![]),
        ];
        for (live, expected) in cases {
            let calls = Mutex::new(Vec::new());
            let log = |call: String| calls.lock().unwrap().push(call);
            let remove = |keys: Vec<String>| async move {
                log(format!("untag {keys:?}"));
                Ok(())
            };
            let set = |s: BTreeMap<String, String>| async move {
                log(format!("tag {s:?}"));
                Ok(())
            };
            converge_tags(&desired, &live, remove, set).await.unwrap();
            assert_eq!(calls.into_inner().unwrap(), expected);
        }
    }

    fn test_stream() -> Resource {
        Resource {
            address: Address::new(STREAM, "weather"),
            name: "lab-weather".into(),
            tags: BTreeMap::new(),
            depends_on: Default::default(),
            props: Props::new(()),
        }
    }

    /// A batch partly refused: only the refused records go again, so each is written once.
    #[tokio::test]
    async fn a_partly_refused_batch_sends_only_the_refused_records_again() {
        let r = test_stream();
        let records: Vec<String> = (0..600).map(|i| format!("r{i}")).collect();
        let sent = Mutex::new(Vec::<Vec<usize>>::new());
        let written = Mutex::new(Vec::<String>::new());
        put_in_batches(&r, &records, |batch| {
            let first_try = !sent
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .any(|i| *i == batch[0].0);
            sent.lock()
                .unwrap()
                .push(batch.iter().map(|(i, _)| *i).collect());
            // The first time a record is sent, every third is refused.
            let answers: Vec<Option<String>> = batch
                .iter()
                .map(|(i, data)| {
                    if first_try && i % 3 == 0 {
                        Some("ProvisionedThroughputExceededException".to_string())
                    } else {
                        written.lock().unwrap().push(data.to_string());
                        None
                    }
                })
                .collect();
            async move { Ok(answers) }
        })
        .await
        .unwrap();
        let sent = sent.into_inner().unwrap();
        // Two batches (500 + 100), each followed by one call of its refused records only.
        let sizes: Vec<usize> = sent.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![500, 167, 100, 33], "{sent:?}");
        assert!(sent[1].iter().all(|i| i % 3 == 0) && sent[3].iter().all(|i| i % 3 == 0));
        let mut written = written.into_inner().unwrap();
        written.sort();
        let mut expected = records.clone();
        expected.sort();
        assert_eq!(written, expected);
    }

    #[tokio::test]
    async fn a_record_refused_every_time_is_an_error_after_the_retries() {
        let r = test_stream();
        let records = vec!["a".to_string(), "b".to_string()];
        let calls = Mutex::new(0);
        let e = put_in_batches(&r, &records, |batch| {
            *calls.lock().unwrap() += 1;
            let answers = batch
                .iter()
                .map(|(_, d)| (d.as_str() == "b").then(|| "InternalFailure".to_string()))
                .collect();
            async move { Ok(answers) }
        })
        .await
        .unwrap_err();
        assert_eq!(*calls.lock().unwrap(), PUT_RETRIES as usize + 1);
        assert!(e.to_string().contains("InternalFailure"), "{e}");
    }

    #[test]
    fn a_taken_name_is_adopted_refused_or_retried() {
        let r = Resource {
            address: Address::new(STREAM, "weather"),
            name: "lab-weather".into(),
            tags: BTreeMap::new(),
            depends_on: Default::default(),
            props: Props::new(()),
        };
        let taken = || {
            Error::Aws(crate::error::AwsError::service_error(
                "kinesis:CreateStream",
                Some("ResourceInUseException"),
                400,
            ))
        };
        let live = |ours| {
            Live::new(
                "arn".into(),
                ours,
                r.address.clone(),
                r.name.clone(),
                BTreeMap::new(),
                Props::new(()),
            )
        };
        assert!(adopt(&r, "a stream", taken(), Some(live(true)), |l| l.ours).is_ok());
        let refused = adopt(&r, "a stream", taken(), Some(live(false)), |l| l.ours).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("a stream named lab-weather already exists"),
            "{refused}"
        );
        let retried = adopt(&r, "a stream", taken(), None, |_| true).unwrap_err();
        assert_eq!(retried.code(), Some("ResourceInUseException"));
    }

    #[test]
    fn props_of_another_kind_are_an_internal_error_naming_the_type() {
        let r = Resource {
            address: Address::new(BUCKET, "data"),
            name: "data".into(),
            tags: BTreeMap::new(),
            depends_on: Default::default(),
            props: Props::new(1u8),
        };
        assert_eq!(props::<u8>(&r).unwrap(), &1);
        let e = props::<String>(&r).unwrap_err();
        assert_eq!(e.to_string(), "internal error: bucket.data has no String");
    }
}
