//! S3 buckets.
//!
//! - Read: `HeadBucket`, then `GetBucketTagging`; only for a bucket tagged as ours also
//!   versioning, lifecycle, default encryption and the public access block (concurrently).
//!   A bucket that is not ours (untagged, another stack's, another account's, or in another
//!   region) is returned with unknown (default) properties: the planner refuses to touch it.
//! - "Not configured" answers are values, not errors: `NoSuchTagSet` → no tags,
//!   `NoSuchLifecycleConfiguration` → no expiry, `ServerSideEncryptionConfigurationNotFoundError`
//!   → `""`, `NoSuchPublicAccessBlockConfiguration` → not blocked.
//! - `force_destroy` is the `streamstack:force-destroy` tag, so a bucket removed from the spec is
//!   still destroyed the way it was declared.
//! - In place: everything (tags, versioning, lifecycle, encryption, public access block).
//! - Delete: refuses a bucket holding objects unless `force_destroy`; with it, empties every
//!   version, delete marker and multipart upload first (aws-domain.md §4.4).
//! - Replace: only a name change (a new address, handled by the planner).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use futures::future::try_join_all;

use futures::future::BoxFuture;
use serde::Serialize;

use super::{address_for, owned_by, read_candidates, retry, wait_for, Cx, Live, ResourceKind};
use crate::aws::Ctx;
use crate::events::Event;
use crate::model::{Address, Kind, Model, Props, Resource, TAG_FORCE_DESTROY};
use crate::{Error, Result};

pub const KIND: Kind = Kind::new("bucket");

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

/// Everything changes in place; only a name change replaces (a new address).
pub struct Buckets;

impl ResourceKind for Buckets {
    fn kinds(&self) -> &'static [Kind] {
        &[KIND]
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("bucket", false))
    }
    lifecycle_from_module_fns!();
    fn cloudformation(
        &self,
        r: &Resource,
        _cfn: &crate::cfn::Cfn,
    ) -> Option<crate::cfn::CfnResource> {
        let p = r.props.get::<BucketProps>()?;
        let mut props = serde_json::json!({
            "BucketName": r.name,
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": p.sse_algorithm}}
            ]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": p.block_public_access,
                "IgnorePublicAcls": p.block_public_access,
                "BlockPublicPolicy": p.block_public_access,
                "RestrictPublicBuckets": p.block_public_access,
            },
            "VersioningConfiguration": {"Status": if p.versioning { "Enabled" } else { "Suspended" }},
            "Tags": crate::cfn::tags(&r.tags),
        });
        if let Some(days) = p.expire_after_days {
            props["LifecycleConfiguration"] = serde_json::json!({"Rules": [
                {"Id": LIFECYCLE_RULE_ID, "Status": "Enabled", "ExpirationInDays": days}
            ]});
        }
        let mut res = crate::cfn::CfnResource::new("AWS::S3::Bucket", props).output(
            "Url",
            serde_json::Value::String(format!("s3://{}/", r.name)),
            "Where the data lands",
        );
        res.checkov_skips = vec![
            (
                "CKV_AWS_18",
                "a lab's bucket: access logging would need a second bucket",
            ),
            ("CKV_AWS_144", "a lab's bucket: no cross-region replication"),
            (
                "CKV_AWS_145",
                "SSE-S3 is the lab's encryption; no customer KMS key to manage",
            ),
        ];
        if !p.versioning {
            res.checkov_skips.push((
                "CKV_AWS_21",
                "versioning is off in this spec (versioning: false)",
            ));
        }
        Some(res)
    }
    fn outputs<'a>(
        &'a self,
        _cx: &'a Cx,
        live: &'a Live,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        Box::pin(async move {
            Ok(BTreeMap::from([(
                "url".to_string(),
                format!("s3://{}/", live.resource.name),
            )]))
        })
    }
}

/// The id of the one lifecycle rule streamstack manages.
pub const LIFECYCLE_RULE_ID: &str = "streamstack-expire";

/// How long a new bucket may take to become visible (aws-domain.md §4.7).
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(120);

/// DeleteObjects takes at most this many keys per call.
const DELETE_BATCH: usize = 1000;

/// Every bucket this stack has or wants: the desired names, plus any `{stack}-*` bucket tagged
/// as ours (a bucket removed from the spec).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let out = cx
        .clients
        .s3
        .list_buckets()
        .send()
        .await
        .op("s3:ListBuckets")?;
    // A stack's bucket lives in the stack's region; others would only answer with a redirect
    // to their region (desired names are read wherever they are, to catch foreign ones).
    let wanted: Vec<&str> = desired.of_kind(KIND).map(|r| r.name.as_str()).collect();
    let buckets = out.buckets.unwrap_or_default();
    let created: BTreeMap<&str, std::time::SystemTime> = buckets
        .iter()
        .filter_map(|b| {
            let date = std::time::SystemTime::try_from(b.creation_date?).ok()?;
            Some((b.name.as_deref()?, date))
        })
        .collect();
    let listed: Vec<String> = buckets
        .iter()
        .filter_map(|b| {
            let name = b.name.clone()?;
            let here = b
                .bucket_region
                .as_deref()
                .is_none_or(|r| r == cx.env.region);
            (here || wanted.contains(&name.as_str())).then_some(name)
        })
        .collect();
    let tagged = cx
        .tagged_names(&format!("arn:{}:s3:::", cx.env.partition))
        .await?;
    read_candidates(
        desired,
        KIND,
        &format!("{}-", cx.stack),
        &tagged,
        listed,
        |n| async move { read(cx, &n, desired).await },
    )
    .await
    .map(|found| {
        found
            .into_iter()
            .map(|mut l| {
                l.created = created.get(l.resource.name.as_str()).copied();
                l
            })
            .collect()
    })
}

/// When S3 says the bucket `name` was created (from ListBuckets).
async fn creation_date(cx: &Cx, name: &str) -> Result<Option<std::time::SystemTime>> {
    let out = cx
        .clients
        .s3
        .list_buckets()
        .send()
        .await
        .op("s3:ListBuckets")?;
    Ok(out
        .buckets
        .unwrap_or_default()
        .into_iter()
        .find(|b| b.name.as_deref() == Some(name))
        .and_then(|b| b.creation_date)
        .and_then(|d| std::time::SystemTime::try_from(d).ok()))
}

/// Maps a "not configured" answer (`is_not_found` codes other than a missing bucket) to `None`.
fn unset<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() && !bucket_missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn bucket_missing(e: &Error) -> bool {
    matches!(e.code(), Some("NoSuchBucket" | "NotFound"))
}

async fn tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    let out = unset(
        cx.clients
            .s3
            .get_bucket_tagging()
            .bucket(name)
            .send()
            .await
            .op("s3:GetBucketTagging"),
    )?;
    Ok(out
        .map(|o| o.tag_set.into_iter().map(|t| (t.key, t.value)).collect())
        .unwrap_or_default())
}

/// Reads one bucket by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let s3 = &cx.clients.s3;
    // A bucket of another account (403) or in another region (301, or a region header from
    // endpoints that answer anyway) exists, and is not something this stack may touch. HEAD
    // answers have no body, so only the status tells these apart.
    match s3.head_bucket().bucket(name).send().await {
        Ok(out)
            if out
                .bucket_region
                .as_deref()
                .is_some_and(|r| r != cx.env.region) =>
        {
            return Ok(Some(foreign(name, BTreeMap::new(), desired)));
        }
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if matches!(e.raw().status().as_u16(), 301 | 403) => {
            return Ok(Some(foreign(name, BTreeMap::new(), desired)));
        }
        Err(e) => {
            let e = Error::Aws(crate::aws::AwsError::from_sdk("s3:HeadBucket", e));
            return if bucket_missing(&e) { Ok(None) } else { Err(e) };
        }
    }
    // The tagging API's listing has the tags of the stack's buckets; others are read one by one.
    let listed = cx
        .tagged_tags(&format!("arn:{}:s3:::{name}", cx.env.partition))
        .await?;
    let tags = match listed {
        Some(tags) => tags,
        None => match tags(cx, name).await {
            Err(e) if bucket_missing(&e) => return Ok(None),
            r => r?,
        },
    };
    if !owned_by(&tags, &cx.stack) {
        return Ok(Some(foreign(name, tags, desired)));
    }
    if !cx.reads_settings() {
        // Deleting needs the tags (force_destroy is one), not the settings.
        return Ok(Some(Live {
            ours: true,
            ..foreign(name, tags, desired)
        }));
    }
    let (versioning, lifecycle, encryption, public_access) = futures::try_join!(
        async {
            match s3.get_bucket_versioning().bucket(name).send().await {
                Ok(o) => Ok(o.status == Some(BucketVersioningStatus::Enabled)),
                // moto names the root element `GetBucketVersioningResponse` instead of
                // `VersioningConfiguration`, which the SDK refuses; a success status means the
                // call worked, so read the status from the body itself.
                Err(SdkError::ServiceError(e)) if e.raw().status().is_success() => {
                    let body = e.raw().body().bytes().unwrap_or_default();
                    Ok(String::from_utf8_lossy(body).contains("<Status>Enabled</Status>"))
                }
                Err(e) => Err(Error::Aws(crate::aws::AwsError::from_sdk(
                    "s3:GetBucketVersioning",
                    e,
                ))),
            }
        },
        async {
            unset(
                s3.get_bucket_lifecycle_configuration()
                    .bucket(name)
                    .send()
                    .await
                    .op("s3:GetBucketLifecycleConfiguration"),
            )
        },
        async {
            unset(
                s3.get_bucket_encryption()
                    .bucket(name)
                    .send()
                    .await
                    .op("s3:GetBucketEncryption"),
            )
        },
        async {
            unset(
                s3.get_public_access_block()
                    .bucket(name)
                    .send()
                    .await
                    .op("s3:GetPublicAccessBlock"),
            )
        },
    )?;
    let expire_after_days = lifecycle
        .and_then(|l| l.rules)
        .unwrap_or_default()
        .into_iter()
        .find(|r| {
            r.id.as_deref() == Some(LIFECYCLE_RULE_ID) && r.status == ExpirationStatus::Enabled
        })
        .and_then(|r| r.expiration)
        .and_then(|e| e.days)
        .map(|d| d.max(0) as u32);
    let sse_algorithm = encryption
        .and_then(|e| e.server_side_encryption_configuration)
        .and_then(|c| c.rules.into_iter().next())
        .and_then(|r| r.apply_server_side_encryption_by_default)
        .map(|d| d.sse_algorithm.as_str().to_string())
        .unwrap_or_default();
    let block_public_access = public_access
        .and_then(|p| p.public_access_block_configuration)
        .is_some_and(|c| {
            [
                c.block_public_acls,
                c.ignore_public_acls,
                c.block_public_policy,
                c.restrict_public_buckets,
            ]
            .iter()
            .all(|f| *f == Some(true))
        });
    let address = address_for(KIND, name, &tags, desired);
    Ok(Some(Live {
        broken: None,
        created: None,
        ours: true,
        id: name.to_string(),
        resource: Resource {
            address,
            name: name.to_string(),
            depends_on: Default::default(),
            props: Props::new(BucketProps {
                versioning,
                force_destroy: force_destroy(&tags),
                expire_after_days,
                sse_algorithm,
                block_public_access,
            }),
            tags,
        },
    }))
}

fn force_destroy(tags: &BTreeMap<String, String>) -> bool {
    tags.get(TAG_FORCE_DESTROY).is_some_and(|v| v == "true")
}

/// A bucket that is not this stack's: only its name and tags are known.
fn foreign(name: &str, tags: BTreeMap<String, String>, desired: &Model) -> Live {
    Live {
        broken: None,
        created: None,
        ours: false,
        id: name.to_string(),
        resource: Resource {
            address: address_for(KIND, name, &tags, desired),
            name: name.to_string(),
            depends_on: Default::default(),
            props: Props::new(BucketProps {
                versioning: false,
                force_destroy: force_destroy(&tags),
                expire_after_days: None,
                sse_algorithm: String::new(),
                block_public_access: false,
            }),
            tags,
        },
    }
}

fn props(r: &Resource) -> Result<&BucketProps> {
    r.props
        .get::<BucketProps>()
        .ok_or_else(|| Error::Internal(format!("{} has no BucketProps", r.address)))
}

fn build_err(op: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{}: {e}", op))
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    props(r)?;
    let s3 = &cx.clients.s3;
    // Tagged at creation; us-east-1 is the default and is not a valid LocationConstraint
    // (aws-domain.md §2.4).
    let tags = bucket_tags(&r.tags)?;
    let configuration = CreateBucketConfiguration::builder()
        .set_location_constraint(
            (cx.env.region != "us-east-1")
                .then(|| BucketLocationConstraint::from(cx.env.region.as_str())),
        )
        .set_tags(Some(tags))
        .build();
    // Endpoints that ignore creation tags (moto) leave a window until PutBucketTagging: the
    // journal covers it (crate::journal).
    cx.journal.begin(KIND, &r.name);
    // The SDK's own retries are off for this call: when the name turns out taken, only this
    // loop knows whether an earlier attempt of its own may have created the bucket.
    let maybe_created = std::sync::atomic::AtomicBool::new(false);
    let created = retry(
        cx,
        &r.address,
        cx.timeouts.iam_propagation,
        Error::is_transient,
        || async {
            let sent = s3
                .create_bucket()
                .bucket(&r.name)
                .create_bucket_configuration(configuration.clone())
                .customize()
                .config_override(
                    aws_sdk_s3::config::Builder::default()
                        .retry_config(aws_config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
                .op("s3:CreateBucket");
            if let Err(e) = &sent {
                if e.may_have_acted() {
                    maybe_created.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            sent
        },
    )
    .await;
    let baseline = match created {
        Ok(_) => None,
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {
            // Ours from an earlier attempt whose answer was lost, or from an interrupted run:
            // finish configuring it. Anything else with this name is not ours to take over.
            match read(cx, &r.name, desired).await? {
                Some(live)
                    if live.ours
                        || maybe_created.load(std::sync::atomic::Ordering::SeqCst)
                        || cx.journal.created_it(
                            KIND,
                            &r.name,
                            creation_date(cx, &r.name).await?,
                        ) =>
                {
                    Some(live)
                }
                _ => {
                    cx.journal.end(KIND, &r.name);
                    return Err(Error::resource(
                        &r.address,
                        format!(
                            "bucket {} already exists in this account and is not tagged {}={}; \
                             rename it in the spec (name:) or delete the other one",
                            r.name,
                            crate::model::TAG_STACK,
                            cx.stack
                        ),
                    ));
                }
            }
        }
        Err(e) => {
            cx.journal.end(KIND, &r.name);
            return Err(e);
        }
    };
    let (live_props, live_tags) = match &baseline {
        Some(l) => (props(&l.resource)?.clone(), l.resource.tags.clone()),
        None => (
            BucketProps {
                versioning: false,
                force_destroy: false,
                expire_after_days: None,
                // Configure explicitly even where AWS has defaults (new buckets get SSE-S3 and a
                // public access block; moto gives neither).
                sse_algorithm: String::new(),
                block_public_access: false,
            },
            BTreeMap::new(),
        ),
    };
    // A new bucket can be briefly unknown to the calls that configure it (S3 is eventually
    // consistent for bucket operations): those are retried while S3 says NoSuchBucket, which
    // is cheaper than asking HeadBucket first every time.
    retry(cx, &r.address, VISIBLE_TIMEOUT, bucket_missing, || {
        converge(cx, r, &live_props, &live_tags)
    })
    .await?;
    cx.journal.end(KIND, &r.name);
    Ok(())
}

fn bucket_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| build_err("s3:Tag", e))
        })
        .collect()
}

/// Brings tags, public access block, encryption, versioning and lifecycle from the live values
/// to the desired ones; only what differs is sent.
async fn converge(
    cx: &Cx,
    r: &Resource,
    live: &BucketProps,
    live_tags: &BTreeMap<String, String>,
) -> Result<()> {
    let p = props(r)?;
    let s3 = &cx.clients.s3;
    let name = &r.name;
    if &r.tags != live_tags {
        if r.tags.is_empty() {
            s3.delete_bucket_tagging()
                .bucket(name)
                .send()
                .await
                .op("s3:DeleteBucketTagging")?;
        } else {
            let op = "s3:PutBucketTagging";
            let tag_set = bucket_tags(&r.tags)?;
            let tagging = Tagging::builder()
                .set_tag_set(Some(tag_set))
                .build()
                .map_err(|e| build_err(op, e))?;
            s3.put_bucket_tagging()
                .bucket(name)
                .tagging(tagging)
                .send()
                .await
                .op(op)?;
        }
    }
    if p.block_public_access != live.block_public_access {
        if p.block_public_access {
            let block = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            s3.put_public_access_block()
                .bucket(name)
                .public_access_block_configuration(block)
                .send()
                .await
                .op("s3:PutPublicAccessBlock")?;
        } else {
            s3.delete_public_access_block()
                .bucket(name)
                .send()
                .await
                .op("s3:DeletePublicAccessBlock")?;
        }
    }
    if p.sse_algorithm != live.sse_algorithm {
        if p.sse_algorithm.is_empty() {
            s3.delete_bucket_encryption()
                .bucket(name)
                .send()
                .await
                .op("s3:DeleteBucketEncryption")?;
        } else {
            let op = "s3:PutBucketEncryption";
            let default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::from(p.sse_algorithm.as_str()))
                .build()
                .map_err(|e| build_err(op, e))?;
            let conf = ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(default)
                        .build(),
                )
                .build()
                .map_err(|e| build_err(op, e))?;
            s3.put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(conf)
                .send()
                .await
                .op(op)?;
        }
    }
    if p.versioning != live.versioning {
        // Versioning can never be switched off again, only suspended.
        let status = if p.versioning {
            BucketVersioningStatus::Enabled
        } else {
            BucketVersioningStatus::Suspended
        };
        s3.put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .op("s3:PutBucketVersioning")?;
    }
    if p.expire_after_days != live.expire_after_days {
        match p.expire_after_days {
            Some(days) => {
                let op = "s3:PutBucketLifecycleConfiguration";
                let rule = LifecycleRule::builder()
                    .id(LIFECYCLE_RULE_ID)
                    .filter(LifecycleRuleFilter::builder().prefix("").build())
                    .status(ExpirationStatus::Enabled)
                    .expiration(LifecycleExpiration::builder().days(days as i32).build())
                    .build()
                    .map_err(|e| build_err(op, e))?;
                let conf = BucketLifecycleConfiguration::builder()
                    .rules(rule)
                    .build()
                    .map_err(|e| build_err(op, e))?;
                s3.put_bucket_lifecycle_configuration()
                    .bucket(name)
                    .lifecycle_configuration(conf)
                    .send()
                    .await
                    .op(op)?;
            }
            None => {
                s3.delete_bucket_lifecycle()
                    .bucket(name)
                    .send()
                    .await
                    .op("s3:DeleteBucketLifecycle")?;
            }
        }
    }
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let lp = props(&live.resource)?;
    converge(cx, desired, lp, &live.resource.tags).await
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    let force = force_destroy(&live.resource.tags);
    if !force {
        match holds_objects(cx, name).await {
            Ok(false) => {}
            Ok(true) => return Err(not_empty(live.address(), name)),
            Err(e) if bucket_missing(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    // Objects can still arrive while emptying (a delivery being deleted); a few rounds cover it.
    let mut attempts = 0;
    loop {
        if force {
            match empty(cx, live.address(), name).await {
                Ok(()) => {}
                Err(e) if bucket_missing(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        match cx
            .clients
            .s3
            .delete_bucket()
            .bucket(name)
            .send()
            .await
            .op("s3:DeleteBucket")
        {
            Ok(_) => break,
            Err(e) if bucket_missing(&e) => return Ok(()),
            Err(e) if e.code() == Some("BucketNotEmpty") && force && attempts < 5 => attempts += 1,
            Err(e) if e.code() == Some("BucketNotEmpty") && !force => {
                return Err(not_empty(live.address(), name))
            }
            Err(e) => return Err(e),
        }
    }
    wait_for(
        cx,
        live.address(),
        "bucket deleted",
        VISIBLE_TIMEOUT,
        || async {
            match cx
                .clients
                .s3
                .head_bucket()
                .bucket(name)
                .send()
                .await
                .op("s3:HeadBucket")
            {
                Ok(_) => Ok(None),
                Err(e) if bucket_missing(&e) => Ok(Some(())),
                Err(e) => Err(e),
            }
        },
    )
    .await
}

/// Empties `live` when it is this stack's and tagged force-destroy (a teardown that another
/// engine deletes, such as CloudFormation, which refuses a bucket holding objects). Returns
/// whether it emptied it.
pub async fn empty_if_force_destroy(cx: &Cx, live: &Live) -> Result<bool> {
    if !live.ours || !force_destroy(&live.resource.tags) {
        return Ok(false);
    }
    match empty(cx, live.address(), &live.resource.name).await {
        Ok(()) => Ok(true),
        Err(e) if bucket_missing(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

fn not_empty(address: &Address, name: &str) -> Error {
    Error::resource(
        address,
        format!("bucket {name} holds objects and force_destroy is not set; set force_destroy: true or empty it yourself"),
    )
}

/// Does the bucket hold any object, version or delete marker?
async fn holds_objects(cx: &Cx, name: &str) -> Result<bool> {
    let out = cx
        .clients
        .s3
        .list_object_versions()
        .bucket(name)
        .max_keys(1)
        .send()
        .await
        .op("s3:ListObjectVersions")?;
    Ok(!out.versions.unwrap_or_default().is_empty()
        || !out.delete_markers.unwrap_or_default().is_empty())
}

/// Deletes every object version, delete marker, current object and multipart upload, until a
/// whole round finds nothing; reports progress while it works.
async fn empty(cx: &Cx, address: &Address, name: &str) -> Result<()> {
    let s3 = &cx.clients.s3;
    let start = Instant::now();
    let mut last_report = start;
    let mut deleted = 0usize;
    let mut report = |deleted: usize| {
        if last_report.elapsed() >= cx.timeouts.progress_every {
            cx.events.send(Event::Progress {
                address: address.clone(),
                waiting_for: format!("bucket emptied ({deleted} objects deleted so far)"),
                elapsed: start.elapsed(),
            });
            last_report = Instant::now();
        }
    };
    loop {
        let mut round = 0usize;
        // Every page is deleted before the next listing, so each listing starts from the top.
        loop {
            let out = s3
                .list_object_versions()
                .bucket(name)
                .max_keys(DELETE_BATCH as i32)
                .send()
                .await
                .op("s3:ListObjectVersions")?;
            let ids: Vec<(String, Option<String>)> = out
                .versions
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| Some((v.key?, v.version_id)))
                .chain(
                    out.delete_markers
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|m| Some((m.key?, m.version_id))),
                )
                .collect();
            if ids.is_empty() {
                break;
            }
            round += delete_objects(cx, address, name, ids).await?;
            report(deleted + round);
        }
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(name)
                .max_keys(DELETE_BATCH as i32)
                .send()
                .await
                .op("s3:ListObjectsV2")?;
            let ids: Vec<(String, Option<String>)> = out
                .contents
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| Some((o.key?, None)))
                .collect();
            if ids.is_empty() {
                break;
            }
            round += delete_objects(cx, address, name, ids).await?;
            report(deleted + round);
        }
        loop {
            let out = s3
                .list_multipart_uploads()
                .bucket(name)
                .send()
                .await
                .op("s3:ListMultipartUploads")?;
            let uploads: Vec<(String, String)> = out
                .uploads
                .unwrap_or_default()
                .into_iter()
                .filter_map(|u| Some((u.key?, u.upload_id?)))
                .collect();
            if uploads.is_empty() {
                break;
            }
            try_join_all(uploads.iter().map(|(key, id)| async move {
                match s3
                    .abort_multipart_upload()
                    .bucket(name)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .op("s3:AbortMultipartUpload")
                {
                    Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
                    r => r.map(|_| ()),
                }
            }))
            .await?;
            round += uploads.len();
            report(deleted + round);
        }
        if round == 0 {
            return Ok(());
        }
        deleted += round;
    }
}

/// One DeleteObjects call (at most [`DELETE_BATCH`] keys, quiet); fails on any per-key error.
async fn delete_objects(
    cx: &Cx,
    address: &Address,
    name: &str,
    ids: Vec<(String, Option<String>)>,
) -> Result<usize> {
    let op = "s3:DeleteObjects";
    let mut done = 0;
    for chunk in ids.chunks(DELETE_BATCH) {
        let objects = chunk
            .iter()
            .map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(version.clone())
                    .build()
                    .map_err(|e| build_err(op, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| build_err(op, e))?;
        let out = cx
            .clients
            .s3
            .delete_objects()
            .bucket(name)
            .delete(delete)
            .send()
            .await
            .op(op)?;
        if let Some(e) = out.errors.unwrap_or_default().into_iter().next() {
            return Err(Error::resource(
                address,
                format!(
                    "{op}: could not delete s3://{name}/{}: {}: {}",
                    e.key.as_deref().unwrap_or("?"),
                    e.code.as_deref().unwrap_or("(no code)"),
                    e.message.as_deref().unwrap_or("")
                ),
            ));
        }
        done += chunk.len();
    }
    Ok(done)
}
