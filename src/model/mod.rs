//! The desired world as plain data: every resource a spec implies, with its address, physical
//! name, tags, properties and dependencies. This is what `plan` compares with live state, field
//! by field, so everything here is comparable and serialisable, and nothing here talks to AWS.
//!
//! Nothing here knows a resource kind either: a [`Kind`] is a name, each `kinds/*.rs` file
//! declares its own and the `kinds` module registers them; [`Props`] holds each kind's own property
//! struct behind one type-erased interface, and generic layers see properties only as
//! attributes (a JSON object). Nothing here depends on another module of the crate: `derive`
//! builds a model from a spec, `kinds` read live resources into the same shape.

mod graph;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

pub use graph::{CycleError, Graph};

/// The Kinesis-owned KMS key used by `encryption: aws_managed`.
pub const AWS_MANAGED_KINESIS_KEY: &str = "alias/aws/kinesis";
/// Tag keys streamstack owns.
pub const TAG_STACK: &str = "streamstack:stack";
pub const TAG_ADDRESS: &str = "streamstack:address";
/// When the stack was first created (RFC 3339 UTC); set once, never moved.
pub const TAG_CREATED_AT: &str = "streamstack:created-at";
/// When the stack expires: created-at plus the spec's `expires_after` (RFC 3339 UTC).
pub const TAG_EXPIRES_AT: &str = "streamstack:expires-at";
/// On hosts: written by the host itself (`ok` or `failed:<step>`) when its bootstrap ends. The
/// host's report, not drift: plans ignore it and applies never remove it.
pub const TAG_BOOTSTRAP: &str = "streamstack:bootstrap";
/// On hosts: the image as the spec names it (`al2023`), so a new AMI release is not a change.
pub const TAG_IMAGE: &str = "streamstack:image";
/// On buckets: `true` when destroy may empty the bucket (kept on the bucket so that a bucket
/// removed from the spec is still destroyed the way it was declared).
pub const TAG_FORCE_DESTROY: &str = "streamstack:force-destroy";
/// The name of the one inline policy streamstack puts on each role it derives.
pub const INLINE_POLICY_NAME: &str = "streamstack";
/// The CloudWatch namespace the agent publishes to (its default).
pub const AGENT_METRICS_NAMESPACE: &str = "AWSKinesisAgent";

/// A resource kind, by the name addresses use (`stream`, `host_role`). Each `kinds/*.rs` file
/// declares its own constant, and the kind registry is the one list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(&'static str);

impl Kind {
    pub const fn new(name: &'static str) -> Kind {
        Kind(name)
    }
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// How plan, events and errors name a resource: `stream.weather`, `host_role.collector`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub kind: Kind,
    pub key: String,
}

impl Address {
    pub fn new(kind: Kind, key: &str) -> Self {
        Address {
            kind,
            key: key.to_string(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.key)
    }
}

impl Address {
    /// Parses `kind.key`, where `kind` must be one `known` names (a kind registry knows them:
    /// the model itself names none).
    pub fn parse(s: &str, known: impl Fn(&str) -> Option<Kind>) -> Result<Address, String> {
        let (kind, key) = s
            .split_once('.')
            .ok_or_else(|| format!("{s:?} is not an address (kind.key)"))?;
        let kind = known(kind).ok_or_else(|| format!("{kind:?} is not a resource kind"))?;
        if key.is_empty() {
            return Err(format!("{s:?} has no key"));
        }
        Ok(Address::new(kind, key))
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A kind's property struct, seen generically.
trait PropsData: Any + Send + Sync + fmt::Debug {
    fn attributes(&self) -> Map<String, Value>;
    fn clone_box(&self) -> Box<dyn PropsData>;
    fn eq_dyn(&self, other: &dyn PropsData) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T> PropsData for T
where
    T: Serialize + Clone + PartialEq + fmt::Debug + Send + Sync + 'static,
{
    fn attributes(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            Ok(other) => Map::from_iter([("value".to_string(), other)]),
            Err(e) => Map::from_iter([("error".to_string(), Value::String(e.to_string()))]),
        }
    }
    fn clone_box(&self) -> Box<dyn PropsData> {
        Box::new(self.clone())
    }
    fn eq_dyn(&self, other: &dyn PropsData) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A resource's kind-specific properties: the kind's own struct, type-erased. Kinds read their
/// struct back with [`Props::get`]; everything else sees [`Props::attributes`], the struct
/// serialised as one JSON object (what plans diff and show).
pub struct Props(Box<dyn PropsData>);

impl Props {
    pub fn new<T>(props: T) -> Props
    where
        T: Serialize + Clone + PartialEq + fmt::Debug + Send + Sync + 'static,
    {
        Props(Box::new(props))
    }
    /// The kind's struct, if these props are one.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.0.as_any_mut().downcast_mut()
    }
    /// The properties as one JSON object, field by field.
    pub fn attributes(&self) -> Map<String, Value> {
        self.0.attributes()
    }
}

impl Clone for Props {
    fn clone(&self) -> Self {
        Props(self.0.clone_box())
    }
}

impl PartialEq for Props {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(other.0.as_ref())
    }
}

impl Eq for Props {}

impl fmt::Debug for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Props {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.attributes().serialize(s)
    }
}

/// The IAM path under which every stack's roles and instance profiles are.
pub const IAM_PATH_ROOT: &str = "/streamstack/";

/// The IAM path of a stack's roles and instance profiles.
pub fn iam_path(stack: &str) -> String {
    format!("{IAM_PATH_ROOT}{stack}/")
}

/// The IAM path of a stack deployed by a fleet in one of several regions of an account:
/// `/streamstack/{stack}/{region}/` (see [`Env::iam_per_region`]).
pub fn iam_path_in_region(stack: &str, region: &str) -> String {
    format!("{IAM_PATH_ROOT}{stack}/{region}/")
}

/// Where the stack lives: names and ARNs depend on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Env {
    pub account_id: String,
    pub region: String,
    pub partition: String,
    /// IAM path of every role and instance profile of the stack: `/streamstack/{stack}/`, so one
    /// `ListRoles(PathPrefix)` finds them all, including ones no longer in the spec.
    pub iam_path: String,
    /// IAM is global to an account while everything else is regional: a fleet that deploys a
    /// stack to several regions of one account would otherwise give every region the same role
    /// names, each region's apply overwriting the others' region-scoped policies and each
    /// region's destroy deleting roles the others use. With `--fleet`, the stack's IAM names end
    /// with the region and its IAM path is `/streamstack/{stack}/{region}/`.
    pub iam_per_region: bool,
}

impl Env {
    pub fn new(account_id: &str, region: &str, stack: &str) -> Self {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Env {
            account_id: account_id.to_string(),
            region: region.to_string(),
            partition: partition.to_string(),
            iam_path: iam_path(stack),
            iam_per_region: false,
        }
    }
    /// This environment with region-scoped IAM names and path (see [`Env::iam_per_region`]).
    pub fn with_iam_per_region(mut self, stack: &str) -> Self {
        self.iam_path = iam_path_in_region(stack, &self.region);
        self.iam_per_region = true;
        self
    }
    /// A derived IAM name `base` (`{stack}-{key}-host`), with `-{region}` appended when the IAM
    /// names are region-scoped.
    pub fn iam_name(&self, base: String) -> String {
        if self.iam_per_region {
            format!("{base}-{}", self.region)
        } else {
            base
        }
    }
    /// DNS suffix of regional service endpoints.
    pub fn dns_suffix(&self) -> &'static str {
        if self.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        }
    }
    /// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
    fn regional_arn(&self, service: &str, resource: &str) -> String {
        let (p, r, a) = (&self.partition, &self.region, &self.account_id);
        format!("arn:{p}:{service}:{r}:{a}:{resource}")
    }
    /// `arn:PARTITION:iam::ACCOUNT:TYPE/streamstack/STACK/NAME`.
    fn iam_arn(&self, type_: &str, name: &str) -> String {
        let (p, a, path) = (&self.partition, &self.account_id, &self.iam_path);
        format!("arn:{p}:iam::{a}:{type_}{path}{name}")
    }
    pub fn stream_arn(&self, name: &str) -> String {
        self.regional_arn("kinesis", &format!("stream/{name}"))
    }
    pub fn delivery_arn(&self, name: &str) -> String {
        self.regional_arn("firehose", &format!("deliverystream/{name}"))
    }
    pub fn bucket_arn(&self, name: &str) -> String {
        format!("arn:{}:s3:::{name}", self.partition)
    }
    pub fn role_arn(&self, name: &str) -> String {
        self.iam_arn("role", name)
    }
    pub fn instance_profile_arn(&self, name: &str) -> String {
        self.iam_arn("instance-profile", name)
    }
    pub fn log_group_arn(&self, group: &str) -> String {
        self.regional_arn("logs", &format!("log-group:{group}"))
    }
}

/// A stack's expiry stamps: `streamstack:created-at` (set at its first creation, never moved)
/// and, with `expires_after`, `streamstack:expires-at`. A CloudFormation template carries them
/// as parameters whose defaults are these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// One desired resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub address: Address,
    /// The physical name in AWS (for hosts, the `Name` tag).
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub depends_on: BTreeSet<Address>,
    pub props: Props,
}

/// Everything a spec asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    pub stack: String,
    pub env: Env,
    pub resources: BTreeMap<Address, Resource>,
}

impl Model {
    pub fn get(&self, a: &Address) -> Option<&Resource> {
        self.resources.get(a)
    }
    /// The dependency graph of the resources.
    pub fn graph(&self) -> Result<Graph, CycleError> {
        Graph::new(
            self.resources
                .values()
                .map(|r| (r.address.clone(), r.depends_on.iter().cloned().collect())),
        )
    }
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.resources
            .values()
            .filter(move |r| r.address.kind == kind)
    }
}
