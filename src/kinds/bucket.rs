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
use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, ObjectIdentifier, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};
use futures::future::try_join_all;

use serde::Serialize;

pub use super::BUCKET as KIND;
use super::{
    address_for, already_done, owned_by, props, read_candidates, retry, wait_for, Cx, Live,
    MaybeCreated, Progress, ResourceKind,
};
use crate::aws::{send_once, Ctx};
use crate::model::{Address, Model, Props, Resource, TAG_FORCE_DESTROY};
use crate::{Error, Result};

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
    lifecycle_from_module_fns!(kinds: &[KIND]; outputs, cloudformation);
    fn cost(&self, r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
        cost_lines(r, usage)
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("bucket", false))
    }
}

fn cloudformation(r: &Resource, _cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
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
        "Tags": crate::cfn::tags(&r.tags),
    });
    // Only a versioned bucket says so: `Suspended` is not "never versioned" (a bucket once
    // suspended can never return to unversioned, and keeps null-version semantics), see
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html
    if p.versioning {
        props["VersioningConfiguration"] = serde_json::json!({"Status": "Enabled"});
    }
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

/// Where the data lands.
async fn outputs(_cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    Ok(BTreeMap::from([(
        "url".to_string(),
        format!("s3://{}/", live.resource.name),
    )]))
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
    let buckets = list_buckets(cx).await?;
    // A stack's bucket lives in the stack's region; others would only answer with a redirect
    // to their region (desired names are read wherever they are, to catch foreign ones).
    let wanted: Vec<&str> = desired.of_kind(KIND).map(|r| r.name.as_str()).collect();
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

/// Every bucket of the account (ListBuckets).
async fn list_buckets(cx: &Cx) -> Result<Vec<aws_sdk_s3::types::Bucket>> {
    let out = cx.clients.s3.list_buckets().send().await;
    Ok(out.op("s3:ListBuckets")?.buckets.unwrap_or_default())
}

/// When S3 says the bucket `name` was created (from ListBuckets).
async fn creation_date(cx: &Cx, name: &str) -> Result<Option<std::time::SystemTime>> {
    Ok(list_buckets(cx)
        .await?
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

/// `Ok(None)` when the error says the bucket does not exist.
fn bucket_found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if bucket_missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    let call = cx.clients.s3.get_bucket_tagging().bucket(name);
    let out = unset(call.send().await.op("s3:GetBucketTagging"))?;
    Ok(out
        .map(|o| o.tag_set.into_iter().map(|t| (t.key, t.value)).collect())
        .unwrap_or_default())
}

/// Where HeadBucket finds a bucket.
enum Found {
    /// In this account and region.
    Here,
    /// In another account (403) or region (301, or a region header from endpoints that answer
    /// anyway): it exists, and is not something this stack may touch.
    Elsewhere,
}

/// HeadBucket; `None` if there is no such bucket. HEAD answers have no body, so only the status
/// tells the answers apart.
async fn head(cx: &Cx, name: &str) -> Result<Option<Found>> {
    match cx.clients.s3.head_bucket().bucket(name).send().await {
        Ok(out)
            if out
                .bucket_region
                .as_deref()
                .is_some_and(|r| r != cx.env.region) =>
        {
            Ok(Some(Found::Elsewhere))
        }
        Ok(_) => Ok(Some(Found::Here)),
        Err(SdkError::ServiceError(e)) if matches!(e.raw().status().as_u16(), 301 | 403) => {
            Ok(Some(Found::Elsewhere))
        }
        Err(e) => {
            let e = Error::Aws(crate::aws::AwsError::from_sdk("s3:HeadBucket", e));
            bucket_found(Err(e))
        }
    }
}

/// Reads one bucket by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    match head(cx, name).await? {
        None => return Ok(None),
        Some(Found::Elsewhere) => return Ok(Some(foreign(name, BTreeMap::new(), desired))),
        Some(Found::Here) => {}
    }
    // The tagging API's listing has the tags of the stack's buckets; others are read one by one.
    let listed = cx
        .tagged_tags(&format!("arn:{}:s3:::{name}", cx.env.partition))
        .await?;
    let tags = match listed {
        Some(tags) => tags,
        None => match bucket_found(tags(cx, name).await)? {
            Some(tags) => tags,
            None => return Ok(None),
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
    let props = settings(cx, name, force_destroy(&tags)).await?;
    Ok(Some(live(name, tags, props, true, desired)))
}

/// Versioning, lifecycle, default encryption and the public access block of bucket `name`, read
/// concurrently.
async fn settings(cx: &Cx, name: &str, force_destroy: bool) -> Result<BucketProps> {
    let s3 = &cx.clients.s3;
    let (versioning, lifecycle, encryption, public_access) = futures::try_join!(
        versioning(cx, name),
        async {
            let call = s3.get_bucket_lifecycle_configuration().bucket(name);
            unset(call.send().await.op("s3:GetBucketLifecycleConfiguration"))
        },
        async {
            let call = s3.get_bucket_encryption().bucket(name);
            unset(call.send().await.op("s3:GetBucketEncryption"))
        },
        async {
            let call = s3.get_public_access_block().bucket(name);
            unset(call.send().await.op("s3:GetPublicAccessBlock"))
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
    Ok(BucketProps {
        versioning,
        force_destroy,
        expire_after_days,
        sse_algorithm,
        block_public_access,
    })
}

/// Whether versioning is enabled on bucket `name`.
async fn versioning(cx: &Cx, name: &str) -> Result<bool> {
    let call = cx.clients.s3.get_bucket_versioning().bucket(name);
    let e = match call.send().await {
        Ok(o) => return Ok(o.status == Some(BucketVersioningStatus::Enabled)),
        Err(e) => e,
    };
    // moto names the root element `GetBucketVersioningResponse` instead of
    // `VersioningConfiguration`, which the SDK refuses; a success status means the call worked,
    // so read the status from the body itself (when the SDK kept it).
    let body = match &e {
        SdkError::ServiceError(s) if s.raw().status().is_success() => s.raw().body().bytes(),
        _ => None,
    };
    match body {
        Some(body) => Ok(String::from_utf8_lossy(body).contains("<Status>Enabled</Status>")),
        None => Err(Error::Aws(crate::aws::AwsError::from_sdk(
            "s3:GetBucketVersioning",
            e,
        ))),
    }
}

fn force_destroy(tags: &BTreeMap<String, String>) -> bool {
    tags.get(TAG_FORCE_DESTROY).is_some_and(|v| v == "true")
}

/// A bucket as found; `ours` when it is tagged as this stack's.
fn live(
    name: &str,
    tags: BTreeMap<String, String>,
    props: BucketProps,
    ours: bool,
    desired: &Model,
) -> Live {
    let address = address_for(KIND, name, &tags, desired);
    let props = Props::new(props);
    Live::new(
        name.to_string(),
        ours,
        address,
        name.to_string(),
        tags,
        props,
    )
}

/// A bucket that is not this stack's: only its name and tags are known.
fn foreign(name: &str, tags: BTreeMap<String, String>, desired: &Model) -> Live {
    let props = BucketProps {
        force_destroy: force_destroy(&tags),
        ..unconfigured()
    };
    live(name, tags, props, false, desired)
}

/// A bucket with nothing configured (not even what AWS sets by default: streamstack
/// configures it all explicitly).
fn unconfigured() -> BucketProps {
    BucketProps {
        versioning: false,
        force_destroy: false,
        expire_after_days: None,
        sse_algorithm: String::new(),
        block_public_access: false,
    }
}

fn build_err(op: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{}: {e}", op))
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    props::<BucketProps>(r)?;
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
    let baseline = create_bucket(cx, r, desired, &configuration).await?;
    let (live_props, live_tags) = match &baseline {
        Some(l) => (
            props::<BucketProps>(&l.resource)?.clone(),
            l.resource.tags.clone(),
        ),
        // Configure explicitly even where AWS has defaults (new buckets get SSE-S3 and a
        // public access block; moto gives neither).
        None => (unconfigured(), BTreeMap::new()),
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

/// CreateBucket, retried while the answers are transient (without the SDK's own retries: see
/// [`send_once`]): `None` when it created the bucket, or
/// the bucket of that name that this create may take over (ours from an earlier attempt whose
/// answer was lost, or from an interrupted run); anything else with the name is refused. When
/// it fails knowing that it created nothing, it ends the journal entry.
async fn create_bucket(
    cx: &Cx,
    r: &Resource,
    desired: &Model,
    configuration: &CreateBucketConfiguration,
) -> Result<Option<Live>> {
    let maybe_created = MaybeCreated::default();
    let created = retry(
        cx,
        &r.address,
        cx.timeouts.iam_propagation,
        Error::is_transient,
        || async {
            let request = cx.clients.s3.create_bucket().bucket(&r.name);
            let request = request.create_bucket_configuration(configuration.clone());
            let sent = send_once!(aws_sdk_s3, request).await.op("s3:CreateBucket");
            maybe_created.note(&sent);
            sent
        },
    )
    .await;
    match created {
        Ok(_) => Ok(None),
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {
            match read(cx, &r.name, desired).await? {
                Some(live)
                    if live.ours
                        || maybe_created.get()
                        || cx.journal.created_it(
                            KIND,
                            &r.name,
                            creation_date(cx, &r.name).await?,
                        ) =>
                {
                    Ok(Some(live))
                }
                _ => {
                    cx.journal.end(KIND, &r.name);
                    Err(Error::resource(
                        &r.address,
                        format!(
                            "bucket {} already exists in this account and is not tagged {}={}; \
                             rename it in the spec (name:) or delete the other one",
                            r.name,
                            crate::model::TAG_STACK,
                            cx.stack
                        ),
                    ))
                }
            }
        }
        Err(e) => {
            cx.journal.end(KIND, &r.name);
            Err(e)
        }
    }
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
    let p = props::<BucketProps>(r)?;
    if &r.tags != live_tags {
        put_tags(cx, &r.name, &r.tags).await?;
    }
    if p.block_public_access != live.block_public_access {
        put_public_access_block(cx, &r.name, p.block_public_access).await?;
    }
    if p.sse_algorithm != live.sse_algorithm {
        put_encryption(cx, &r.name, &p.sse_algorithm).await?;
    }
    if p.versioning != live.versioning {
        put_versioning(cx, &r.name, p.versioning).await?;
    }
    if p.expire_after_days != live.expire_after_days {
        put_lifecycle(cx, &r.name, p.expire_after_days).await?;
    }
    Ok(())
}

/// The bucket's whole tag set (S3 has no call to add or remove single tags).
async fn put_tags(cx: &Cx, name: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    let s3 = &cx.clients.s3;
    if tags.is_empty() {
        let call = s3.delete_bucket_tagging().bucket(name);
        call.send().await.op("s3:DeleteBucketTagging")?;
    } else {
        let op = "s3:PutBucketTagging";
        let tagging = Tagging::builder()
            .set_tag_set(Some(bucket_tags(tags)?))
            .build()
            .map_err(|e| build_err(op, e))?;
        let call = s3.put_bucket_tagging().bucket(name).tagging(tagging);
        call.send().await.op(op)?;
    }
    Ok(())
}

/// All four public-access-block flags on (`block`), or no public access block.
async fn put_public_access_block(cx: &Cx, name: &str, block: bool) -> Result<()> {
    let s3 = &cx.clients.s3;
    if block {
        let block = crate::aws::all_public_access_blocked();
        let call = s3.put_public_access_block().bucket(name);
        let call = call.public_access_block_configuration(block);
        call.send().await.op("s3:PutPublicAccessBlock")?;
    } else {
        let call = s3.delete_public_access_block().bucket(name);
        call.send().await.op("s3:DeletePublicAccessBlock")?;
    }
    Ok(())
}

/// Default encryption with `algorithm`, or none (`""`).
async fn put_encryption(cx: &Cx, name: &str, algorithm: &str) -> Result<()> {
    let s3 = &cx.clients.s3;
    if algorithm.is_empty() {
        let call = s3.delete_bucket_encryption().bucket(name);
        call.send().await.op("s3:DeleteBucketEncryption")?;
        return Ok(());
    }
    let op = "s3:PutBucketEncryption";
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::from(algorithm))
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
    let call = s3.put_bucket_encryption().bucket(name);
    let call = call.server_side_encryption_configuration(conf);
    call.send().await.op(op)?;
    Ok(())
}

/// Versioning on, or suspended (it can never be switched off again).
async fn put_versioning(cx: &Cx, name: &str, on: bool) -> Result<()> {
    let status = if on {
        BucketVersioningStatus::Enabled
    } else {
        BucketVersioningStatus::Suspended
    };
    let conf = VersioningConfiguration::builder().status(status).build();
    let call = cx.clients.s3.put_bucket_versioning().bucket(name);
    let call = call.versioning_configuration(conf);
    call.send().await.op("s3:PutBucketVersioning")?;
    Ok(())
}

/// streamstack's lifecycle rule expiring objects after `days`, or no lifecycle.
async fn put_lifecycle(cx: &Cx, name: &str, days: Option<u32>) -> Result<()> {
    let s3 = &cx.clients.s3;
    let Some(days) = days else {
        let call = s3.delete_bucket_lifecycle().bucket(name);
        call.send().await.op("s3:DeleteBucketLifecycle")?;
        return Ok(());
    };
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
    let call = s3.put_bucket_lifecycle_configuration().bucket(name);
    call.lifecycle_configuration(conf).send().await.op(op)?;
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let lp = props::<BucketProps>(&live.resource)?;
    converge(cx, desired, lp, &live.resource.tags).await
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    let force = force_destroy(&live.resource.tags);
    if !force {
        match bucket_found(holds_objects(cx, name).await)? {
            None => return Ok(()),
            Some(false) => {}
            Some(true) => return Err(not_empty(live.address(), name)),
        }
    }
    // Objects can still arrive while emptying (a delivery being deleted); a few rounds cover it.
    let mut attempts = 0;
    loop {
        if force && bucket_found(empty(cx, live.address(), name).await)?.is_none() {
            return Ok(());
        }
        let deleted = cx.clients.s3.delete_bucket().bucket(name).send().await;
        match deleted.op("s3:DeleteBucket") {
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
            let call = cx.clients.s3.head_bucket().bucket(name);
            let found = bucket_found(call.send().await.op("s3:HeadBucket"))?;
            Ok(found.is_none().then_some(()))
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
    let emptied = empty(cx, live.address(), &live.resource.name).await;
    Ok(bucket_found(emptied)?.is_some())
}

fn not_empty(address: &Address, name: &str) -> Error {
    Error::resource(
        address,
        format!("bucket {name} holds objects and force_destroy is not set; set force_destroy: true or empty it yourself"),
    )
}

/// Does the bucket hold any object, version or delete marker?
async fn holds_objects(cx: &Cx, name: &str) -> Result<bool> {
    let call = cx.clients.s3.list_object_versions().bucket(name);
    let out = call.max_keys(1).send().await.op("s3:ListObjectVersions")?;
    Ok(!out.versions.unwrap_or_default().is_empty()
        || !out.delete_markers.unwrap_or_default().is_empty())
}

/// Deletes every object version, delete marker, current object and multipart upload, until a
/// whole round finds nothing; reports progress while it works.
async fn empty(cx: &Cx, address: &Address, name: &str) -> Result<()> {
    let mut progress = Progress::new(cx, address);
    let delete = |ids| delete_objects(cx, address, name, ids);
    let abort = |uploads| abort_uploads(cx, name, uploads);
    let mut deleted = 0usize;
    loop {
        let mut round = 0usize;
        round += drain(
            &mut progress,
            deleted + round,
            || versions(cx, name),
            delete,
        )
        .await?;
        round += drain(&mut progress, deleted + round, || objects(cx, name), delete).await?;
        round += drain(&mut progress, deleted + round, || uploads(cx, name), abort).await?;
        if round == 0 {
            return Ok(());
        }
        deleted += round;
    }
}

/// Lists a batch and deletes it, until a listing finds nothing (every batch is deleted before
/// the next listing, so each listing starts from the top), reporting the count so far (after
/// `before` deleted earlier). Returns how many it deleted.
async fn drain<T, L, LFut, D, DFut>(
    progress: &mut Progress<'_>,
    before: usize,
    mut list: L,
    mut delete: D,
) -> Result<usize>
where
    L: FnMut() -> LFut,
    LFut: Future<Output = Result<Vec<T>>>,
    D: FnMut(Vec<T>) -> DFut,
    DFut: Future<Output = Result<usize>>,
{
    let mut deleted = 0;
    loop {
        let batch = list().await?;
        if batch.is_empty() {
            return Ok(deleted);
        }
        deleted += delete(batch).await?;
        let so_far = before + deleted;
        progress.report(|| format!("bucket emptied ({so_far} objects deleted so far)"));
    }
}

/// The first [`DELETE_BATCH`] object versions and delete markers: (key, version id).
async fn versions(cx: &Cx, name: &str) -> Result<Vec<(String, Option<String>)>> {
    let call = cx.clients.s3.list_object_versions().bucket(name);
    let call = call.max_keys(DELETE_BATCH as i32);
    let out = call.send().await.op("s3:ListObjectVersions")?;
    let versions = out.versions.unwrap_or_default().into_iter();
    let markers = out.delete_markers.unwrap_or_default().into_iter();
    Ok(versions
        .filter_map(|v| Some((v.key?, v.version_id)))
        .chain(markers.filter_map(|m| Some((m.key?, m.version_id))))
        .collect())
}

/// The first [`DELETE_BATCH`] current objects: (key, no version id).
async fn objects(cx: &Cx, name: &str) -> Result<Vec<(String, Option<String>)>> {
    let call = cx.clients.s3.list_objects_v2().bucket(name);
    let out = call.max_keys(DELETE_BATCH as i32).send().await;
    let contents = out.op("s3:ListObjectsV2")?.contents.unwrap_or_default();
    Ok(contents
        .into_iter()
        .filter_map(|o| Some((o.key?, None)))
        .collect())
}

/// The first page of multipart uploads in progress: (key, upload id).
async fn uploads(cx: &Cx, name: &str) -> Result<Vec<(String, String)>> {
    let call = cx.clients.s3.list_multipart_uploads().bucket(name);
    let out = call.send().await.op("s3:ListMultipartUploads")?;
    let uploads = out.uploads.unwrap_or_default().into_iter();
    Ok(uploads
        .filter_map(|u| Some((u.key?, u.upload_id?)))
        .collect())
}

/// Aborts `uploads` (at once); returns how many.
async fn abort_uploads(cx: &Cx, name: &str, uploads: Vec<(String, String)>) -> Result<usize> {
    let s3 = &cx.clients.s3;
    try_join_all(uploads.iter().map(|(key, id)| async move {
        let call = s3
            .abort_multipart_upload()
            .bucket(name)
            .key(key)
            .upload_id(id);
        already_done(
            call.send().await.op("s3:AbortMultipartUpload"),
            "NoSuchUpload",
        )
    }))
    .await?;
    Ok(uploads.len())
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
        let call = cx.clients.s3.delete_objects().bucket(name).delete(delete);
        let out = call.send().await.op(op)?;
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

/// What a bucket bills per hour (`crate::cost`): S3 Standard storage by GB-month (the PUT
/// requests are its deliveries').
fn cost_lines(_r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
    use crate::cost::{Line, Price, HOURS_PER_MONTH};
    vec![Line::new(
        "storage",
        Price::S3StorageGbMonth,
        usage.stored_gb / HOURS_PER_MONTH,
    )]
}
