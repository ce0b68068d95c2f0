//! The desired world as plain data: every resource a spec implies, with its address, physical
//! name, tags, properties and dependencies. This is what `plan` compares with live state, field
//! by field, so everything here is `PartialEq` and serialisable, and nothing here talks to AWS.

mod derive;
mod graph;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

pub use derive::{derive, DeriveError};
pub use graph::{CycleError, Graph};

use crate::spec::types::{Buffering, Compression, Image, StreamMode};

/// The Kinesis-owned KMS key used by `encryption: aws_managed`.
pub const AWS_MANAGED_KINESIS_KEY: &str = "alias/aws/kinesis";
/// Tag keys streamstack owns.
pub const TAG_STACK: &str = "streamstack:stack";
pub const TAG_ADDRESS: &str = "streamstack:address";
pub const TAG_EXPIRES_AFTER: &str = "streamstack:expires-after";
/// On hosts: the image as the spec names it (`al2023`), so a new AMI release is not a change.
pub const TAG_IMAGE: &str = "streamstack:image";
/// On buckets: `true` when destroy may empty the bucket (kept on the bucket so that a bucket
/// removed from the spec is still destroyed the way it was declared).
pub const TAG_FORCE_DESTROY: &str = "streamstack:force-destroy";
/// The name of the one inline policy streamstack puts on each role it derives.
pub const INLINE_POLICY_NAME: &str = "streamstack";
/// The CloudWatch namespace the agent publishes to (its default).
pub const AGENT_METRICS_NAMESPACE: &str = "AWSKinesisAgent";

/// Resource kinds, in the order a reader meets them in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bucket,
    Stream,
    DeliveryRole,
    Delivery,
    HostRole,
    InstanceProfile,
    SecurityGroup,
    Host,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Bucket,
        Kind::Stream,
        Kind::DeliveryRole,
        Kind::Delivery,
        Kind::HostRole,
        Kind::InstanceProfile,
        Kind::SecurityGroup,
        Kind::Host,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bucket => "bucket",
            Kind::Stream => "stream",
            Kind::DeliveryRole => "delivery_role",
            Kind::Delivery => "delivery",
            Kind::HostRole => "host_role",
            Kind::InstanceProfile => "instance_profile",
            Kind::SecurityGroup => "security_group",
            Kind::Host => "host",
        }
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
        write!(f, "{}.{}", self.kind.as_str(), self.key)
    }
}

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, key) = s
            .split_once('.')
            .ok_or_else(|| format!("{s:?} is not an address (kind.key)"))?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| format!("{kind:?} is not a resource kind"))?;
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

/// The IAM path of a stack's roles and instance profiles.
pub fn iam_path(stack: &str) -> String {
    format!("/streamstack/{stack}/")
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
    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:{}:kinesis:{}:{}:stream/{name}",
            self.partition, self.region, self.account_id
        )
    }
    pub fn delivery_arn(&self, name: &str) -> String {
        format!(
            "arn:{}:firehose:{}:{}:deliverystream/{name}",
            self.partition, self.region, self.account_id
        )
    }
    pub fn bucket_arn(&self, name: &str) -> String {
        format!("arn:{}:s3:::{name}", self.partition)
    }
    pub fn role_arn(&self, name: &str) -> String {
        format!(
            "arn:{}:iam::{}:role{}{name}",
            self.partition, self.account_id, self.iam_path
        )
    }
    pub fn instance_profile_arn(&self, name: &str) -> String {
        format!(
            "arn:{}:iam::{}:instance-profile{}{name}",
            self.partition, self.account_id, self.iam_path
        )
    }
    pub fn log_group_arn(&self, group: &str) -> String {
        format!(
            "arn:{}:logs:{}:{}:log-group:{group}",
            self.partition, self.region, self.account_id
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketProps {
    pub versioning: bool,
    pub force_destroy: bool,
    pub expire_after_days: Option<u32>,
    /// Default encryption; always SSE-S3.
    pub sse_algorithm: String,
    /// All four public-access-block flags on.
    pub block_public_access: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamProps {
    pub arn: String,
    pub mode: StreamMode,
    pub shards: Option<u32>,
    pub retention_hours: u32,
    /// KMS key id when encrypted; `None` means no encryption.
    pub kms_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliverySourceProps {
    pub stream_name: String,
    pub stream_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryProps {
    pub arn: String,
    /// `None` = DirectPut.
    pub source: Option<DeliverySourceProps>,
    pub role_name: String,
    pub role_arn: String,
    pub bucket_name: String,
    pub bucket_arn: String,
    pub prefix: Option<String>,
    pub error_prefix: Option<String>,
    pub buffering: Buffering,
    pub compression: Compression,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleProps {
    pub arn: String,
    pub trust_policy: serde_json::Value,
    /// Inline policies by name (streamstack puts exactly one, [`INLINE_POLICY_NAME`]).
    pub inline_policies: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceProfileProps {
    pub arn: String,
    pub role_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroupProps {
    pub description: String,
    /// CIDR blocks allowed to TCP port 22; nothing else is allowed in.
    pub ssh_from: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostProps {
    pub instance_type: String,
    pub image: Image,
    pub subnet: Option<String>,
    pub key_name: Option<String>,
    pub instance_profile: String,
    pub security_group: Option<String>,
    /// The exact user-data script (before base64) that carries agent.json.
    pub user_data: String,
    /// IMDSv2 only.
    pub http_tokens_required: bool,
}

/// A resource's kind-specific properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Props {
    Bucket(BucketProps),
    Stream(StreamProps),
    Delivery(DeliveryProps),
    Role(RoleProps),
    InstanceProfile(InstanceProfileProps),
    SecurityGroup(SecurityGroupProps),
    Host(HostProps),
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
