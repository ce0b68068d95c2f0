//! What of a stack exists, read straight from the services with the AWS SDK: the independent
//! proof that a destroy or a gc left nothing (and of what an apply made).
//!
//! It uses none of streamstack's code (not `output`, not `ops`, not a kind's `discover`, which
//! are what the tests test), and looks for the stack in every way AWS lets one look:
//!
//! - the Resource Groups Tagging API: every ARN tagged `streamstack:stack=<stack>` (moto covers
//!   S3, Firehose, Logs and EC2 there; terminated instances, which moto keeps listing for a
//!   while, are left out);
//! - each service's own listing, by the stack's name prefix `<stack>-` or its tag: Kinesis
//!   `ListStreams` (and each stream's tags: moto's tagging API does not cover Kinesis), Firehose
//!   `ListDeliveryStreams`, S3 `ListBuckets`, CloudWatch Logs `DescribeLogGroups` under
//!   `/aws/kinesisfirehose/<stack>-`;
//! - IAM roles and instance profiles under the path `/streamstack/<stack>/`;
//! - EC2 instances tagged with the stack that are not `terminated`, and security groups tagged
//!   with it or named `<stack>-*`;
//! - the stack's lock object, `<stack>/lock` in the account's lock bucket
//!   `streamstack-locks-<account>-<region>` (the bucket is no stack's: it stays).
//!
//! It talks to moto through a passthrough proxy of its own in the sandbox's account, so it
//! neither sees the test proxy's emulated windows nor shows in the test proxy's call counts.

use std::collections::BTreeSet;
use std::fmt;

use aws_sdk_ec2::types::{Filter, InstanceStateName};

use super::moto::{sdk_config, MotoServer};
use super::proxy::{Proxy, ProxyConfig};
use super::Sandbox;

const TAG_STACK: &str = "streamstack:stack";

/// What was found, as `(kind, name)`: kinds `tagged` (an ARN from the tagging API), `stream`,
/// `delivery`, `bucket`, `log_group`, `role`, `instance_profile`, `instance`,
/// `security_group`, `lock`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub stack: String,
    pub region: String,
    pub found: BTreeSet<(String, String)>,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The names found of one kind, sorted.
    pub fn names(&self, kind: &str) -> Vec<&str> {
        self.found
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// How many of each kind (the tagged ARNs left out), e.g. `[("bucket", 1), ...]`.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for (kind, _) in self.found.iter().filter(|(k, _)| k != "tagged") {
            *counts.entry(kind.clone()).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    fn add(&mut self, kind: &str, name: impl Into<String>) {
        self.found.insert((kind.to_owned(), name.into()));
    }
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stack {} in {}:", self.stack, self.region)?;
        if self.found.is_empty() {
            return write!(f, " nothing");
        }
        for (kind, name) in &self.found {
            write!(f, "\n  {kind} {name}")?;
        }
        Ok(())
    }
}

/// The inventory of `stack` in `region` of the sandbox's account (async tests).
pub async fn take(sb: &Sandbox, region: &str, stack: &str) -> Inventory {
    let proxy = Proxy::start(
        MotoServer::shared().endpoint_for(&sb.account_id),
        ProxyConfig::account(sb.account_id.clone()),
    )
    .expect("start the inventory's proxy");
    let config = sdk_config(&proxy.endpoint(), region);
    let mut inv = Inventory {
        stack: stack.to_owned(),
        region: region.to_owned(),
        ..Inventory::default()
    };
    let prefix = format!("{stack}-");
    let what = |call: &str| format!("inventory of {stack}: {call}");

    // EC2 first: the tagging API's instance ARNs are checked against the live instances.
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let mut live_instances = BTreeSet::new();
    let mut token = None;
    loop {
        let out = ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{TAG_STACK}"))
                    .values(stack)
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("ec2:DescribeInstances")));
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let state = i.state().and_then(|s| s.name());
            if state != Some(&InstanceStateName::Terminated) {
                let id = i.instance_id().unwrap_or_default().to_owned();
                let state = state.map_or("?", |s| s.as_str());
                inv.add("instance", format!("{id} ({state})"));
                live_instances.insert(id);
            }
        }
        token = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut groups = Vec::new();
    let mut token = None;
    loop {
        let out = ec2
            .describe_security_groups()
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("ec2:DescribeSecurityGroups")));
        groups.extend(out.security_groups().iter().cloned());
        token = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    for g in groups {
        let name = g.group_name().unwrap_or_default();
        let tagged = g
            .tags()
            .iter()
            .any(|t| t.key() == Some(TAG_STACK) && t.value() == Some(stack));
        if tagged || name.starts_with(&prefix) {
            let id = g.group_id().unwrap_or_default();
            inv.add("security_group", format!("{id} ({name})"));
        }
    }

    let tagging = aws_sdk_resourcegroupstagging::Client::new(&config);
    let mut token: Option<String> = None;
    loop {
        let out = tagging
            .get_resources()
            .tag_filters(
                aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                    .key(TAG_STACK)
                    .values(stack)
                    .build(),
            )
            .set_pagination_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("tagging:GetResources")));
        for m in out.resource_tag_mapping_list() {
            let arn = m.resource_arn().unwrap_or_default();
            let terminated = arn
                .split_once(":instance/")
                .is_some_and(|(_, id)| !live_instances.contains(id));
            if !terminated {
                inv.add("tagged", arn);
            }
        }
        token = out
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }

    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let mut names: Vec<String> = Vec::new();
    loop {
        let out = kinesis
            .list_streams()
            .set_exclusive_start_stream_name(names.last().cloned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("kinesis:ListStreams")));
        let more = out.has_more_streams() && !out.stream_names().is_empty();
        names.extend(out.stream_names().iter().cloned());
        if !more {
            break;
        }
    }
    for name in names {
        let tagged = name.starts_with(&prefix) || {
            let tags = kinesis
                .list_tags_for_stream()
                .stream_name(&name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}", what("kinesis:ListTagsForStream")));
            tags.tags()
                .iter()
                .any(|t| t.key() == TAG_STACK && t.value() == Some(stack))
        };
        if tagged {
            inv.add("stream", name);
        }
    }

    let firehose = aws_sdk_firehose::Client::new(&config);
    let mut names: Vec<String> = Vec::new();
    loop {
        let out = firehose
            .list_delivery_streams()
            .set_exclusive_start_delivery_stream_name(names.last().cloned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("firehose:ListDeliveryStreams")));
        let more = out.has_more_delivery_streams() && !out.delivery_stream_names().is_empty();
        names.extend(out.delivery_stream_names().iter().cloned());
        if !more {
            break;
        }
    }
    for name in names.into_iter().filter(|n| n.starts_with(&prefix)) {
        inv.add("delivery", name);
    }

    let s3 = super::moto::s3_client(&config);
    let buckets = s3
        .list_buckets()
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e:?}", what("s3:ListBuckets")));
    for b in buckets.buckets() {
        let name = b.name().unwrap_or_default();
        if name.starts_with(&prefix) {
            inv.add("bucket", name);
        }
    }

    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let mut token = None;
    loop {
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(format!("/aws/kinesisfirehose/{prefix}"))
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("logs:DescribeLogGroups")));
        for g in out.log_groups() {
            inv.add("log_group", g.log_group_name().unwrap_or_default());
        }
        token = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }

    let iam = aws_sdk_iam::Client::new(&config);
    let path = format!("/streamstack/{stack}/");
    let mut marker = None;
    loop {
        let out = iam
            .list_roles()
            .path_prefix(&path)
            .set_marker(marker)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("iam:ListRoles")));
        for r in out.roles() {
            inv.add("role", r.role_name());
        }
        marker = out
            .marker()
            .filter(|_| out.is_truncated())
            .map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let mut marker = None;
    loop {
        let out = iam
            .list_instance_profiles()
            .path_prefix(&path)
            .set_marker(marker)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", what("iam:ListInstanceProfiles")));
        for p in out.instance_profiles() {
            inv.add("instance_profile", p.instance_profile_name());
        }
        marker = out
            .marker()
            .filter(|_| out.is_truncated())
            .map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }

    // The stack's lock: its object in the account's lock bucket (the bucket itself is no
    // stack's, and stays).
    let s3 = super::moto::s3_client(&config);
    let bucket = format!("streamstack-locks-{}-{region}", sb.account_id);
    let key = format!("{stack}/lock");
    match s3.head_object().bucket(&bucket).key(&key).send().await {
        Ok(_) => inv.add("lock", format!("s3://{bucket}/{key}")),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
        Err(e) => panic!("{}: {e:?}", what("s3:HeadObject")),
    }
    inv
}

/// [`take`] for blocking tests (the CLI ones), on a runtime of its own.
pub fn of(sb: &Sandbox, region: &str, stack: &str) -> Inventory {
    super::cli::rt().block_on(take(sb, region, stack))
}

/// Fails the test, listing what remains, unless nothing of `stack` is left (blocking tests).
#[track_caller]
pub fn assert_nothing_remains(sb: &Sandbox, region: &str, stack: &str) {
    let inv = of(sb, region, stack);
    assert!(inv.is_empty(), "expected nothing to remain of {inv}");
}
