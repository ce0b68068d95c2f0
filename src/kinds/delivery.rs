//! Firehose delivery streams, always to an extended S3 destination.
//!
//! - Read: `DescribeDeliveryStream`, tags from the stack's Tagging API listing (else
//!   `ListTagsForDeliveryStream`). moto describes the destination
//!   twice (`ExtendedS3DestinationDescription` and `S3DestinationDescription`); the extended one
//!   wins. An empty prefix reads as `None`.
//! - Create: Firehose cannot assume a role created a moment ago ("is unable to assume role",
//!   aws-domain.md §4.1), so CreateDeliveryStream is retried for the IAM propagation time; then
//!   CREATING until ACTIVE, or CREATING_FAILED, which is terminal (§4.3).
//! - In place: the destination (role, bucket, prefixes, buffering, compression) through
//!   `UpdateDestination` with the current version id (optimistic concurrency), and tags.
//! - Replace: the source. No API changes it.
//! - `DescribeDeliveryStream` is limited to 5 TPS: waits poll at `timeouts.poll`.

use std::collections::BTreeMap;

use aws_sdk_firehose::types::{
    BufferingHints, CloudWatchLoggingOptions, CompressionFormat, DeliveryStreamDescription,
    DeliveryStreamStatus, DeliveryStreamType, ExtendedS3DestinationConfiguration,
    ExtendedS3DestinationUpdate, KinesisStreamSourceConfiguration, Tag,
};

use serde::Serialize;

use super::check_memo::ObjectCount;
use super::objects::{self, MAX_OBJECT_BYTES};
pub use super::DELIVERY as KIND;
use super::{
    address_for, adopt, converge_tags, delete_when_free, found, missing_hop, owned_by, props,
    put_in_batches, read_candidates, retry, wait_for, CheckRun, Cx, Hop, Live, ResourceKind,
    BUCKET, DELIVERY_ROLE, LOG_GROUP, STREAM,
};
use crate::aws::{first_pages, next_token, pages, Ctx};
use crate::model::{Address, Kind, Model, Props, Resource};
use crate::spec::types::{Buffering, Compression};
use crate::{Error, Result};

/// No API changes a delivery's source (aws-domain.md §4.3).
pub const REPLACE_ON: &[&str] = &["source"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliverySourceProps {
    pub stream_name: String,
    pub stream_arn: String,
}

/// Where Firehose logs delivery errors (CloudWatchLoggingOptions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLoggingProps {
    pub log_group: String,
    pub log_stream: String,
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
    /// `None` = error logging off.
    pub error_logging: Option<ErrorLoggingProps>,
}

pub struct Deliveries;

impl ResourceKind for Deliveries {
    lifecycle_from_module_fns!(kinds: &[KIND]; outputs, check, put_test_records, cloudformation);
    fn cost(&self, r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
        cost_lines(r, usage)
    }
    fn replace_on(&self) -> &'static [&'static str] {
        REPLACE_ON
    }
    fn replaced_with(&self) -> &'static [Kind] {
        &[STREAM]
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("delivery", false))
    }
    fn uses(&self, live: &Resource) -> Vec<(Kind, String)> {
        let Some(p) = live.props.get::<DeliveryProps>() else {
            return Vec::new();
        };
        let mut out = vec![
            (BUCKET, p.bucket_name.clone()),
            (DELIVERY_ROLE, p.role_name.clone()),
        ];
        if let Some(s) = &p.source {
            out.push((STREAM, s.stream_name.clone()));
        }
        if let Some(l) = &p.error_logging {
            out.push((LOG_GROUP, l.log_group.clone()));
        }
        out
    }
    fn hop_order(&self) -> u8 {
        3
    }
}

/// `check --put`: the records, in PutRecordBatch batches (refused ones sent again), into a
/// direct delivery.
async fn put_test_records(cx: &Cx, r: &Resource, records: &[String]) -> Result<bool> {
    // Only a direct delivery takes records from producers; one reading a stream gets them
    // through its stream.
    if props::<DeliveryProps>(r)?.source.is_some() {
        return Ok(false);
    }
    put_in_batches(r, records, |batch| async move {
        let batch = batch
            .iter()
            .map(|(_, data)| {
                aws_sdk_firehose::types::Record::builder()
                    .data(aws_smithy_types::Blob::new(data.as_bytes()))
                    .build()
                    .map_err(|e| Error::Internal(format!("firehose:PutRecordBatch: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let call = cx.clients.firehose.put_record_batch();
        let call = call.delivery_stream_name(&r.name).set_records(Some(batch));
        let out = call.send().await.op("firehose:PutRecordBatch")?;
        Ok(out
            .request_responses
            .into_iter()
            .map(|e| e.error_code)
            .collect())
    })
    .await
}

fn cloudformation(r: &Resource, _cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
    let p = r.props.get::<DeliveryProps>()?;
    let mut dest = serde_json::json!({
        "BucketARN": p.bucket_arn,
        "RoleARN": p.role_arn,
        "BufferingHints": {"IntervalInSeconds": p.buffering.interval_seconds, "SizeInMBs": p.buffering.size_mb},
        "CompressionFormat": p.compression.api_name(),
        "CloudWatchLoggingOptions": match &p.error_logging {
            Some(l) => serde_json::json!({"Enabled": true, "LogGroupName": l.log_group, "LogStreamName": l.log_stream}),
            None => serde_json::json!({"Enabled": false}),
        },
    });
    if let Some(x) = &p.prefix {
        dest["Prefix"] = serde_json::json!(x);
    }
    if let Some(x) = &p.error_prefix {
        dest["ErrorOutputPrefix"] = serde_json::json!(x);
    }
    let mut props = serde_json::json!({
        "DeliveryStreamName": r.name,
        "DeliveryStreamType": if p.source.is_some() { "KinesisStreamAsSource" } else { "DirectPut" },
        "ExtendedS3DestinationConfiguration": dest,
        "Tags": crate::cfn::tags(&r.tags),
    });
    if let Some(s) = &p.source {
        props["KinesisStreamSourceConfiguration"] =
            serde_json::json!({"KinesisStreamARN": s.stream_arn, "RoleARN": p.role_arn});
    }
    let mut res = crate::cfn::CfnResource::new("AWS::KinesisFirehose::DeliveryStream", props)
        .output(
            "Arn",
            serde_json::Value::String(p.arn.clone()),
            "The delivery's ARN",
        );
    if p.source.is_some() {
        res.checkov_skips.push((
            "CKV_AWS_240",
            "Firehose refuses server-side encryption on a stream-sourced delivery; the stream is encrypted instead",
        ));
        res.checkov_skips.push((
            "CKV_AWS_241",
            "Firehose refuses server-side encryption on a stream-sourced delivery; the stream is encrypted instead",
        ));
    }
    Some(res)
}

/// The ARN, where data lands and where errors are logged.
async fn outputs(_cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    let p = props::<DeliveryProps>(&live.resource)?;
    let mut out = BTreeMap::from([
        ("arn".to_string(), p.arn.clone()),
        (
            "data_lands_in".to_string(),
            format!(
                "s3://{}/{}",
                p.bucket_name,
                p.prefix.clone().unwrap_or_default()
            ),
        ),
    ]);
    if let Some(l) = &p.error_logging {
        out.insert(
            "error_log".to_string(),
            format!("{} / {}", l.log_group, l.log_stream),
        );
    }
    Ok(out)
}

/// Tags per TagDeliveryStream/UntagDeliveryStream call.
const TAGS_PER_CALL: usize = 50;

/// The most names one ListDeliveryStreams answers (its default is 10: an account of 500
/// deliveries would take 50 calls at 5 per second)
/// (https://docs.aws.amazon.com/firehose/latest/APIReference/API_ListDeliveryStreams.html).
const LIST_LIMIT: i32 = 10_000;

/// Every delivery this stack has or wants: the desired names, plus any `{stack}-*` delivery
/// tagged as ours (a delivery removed from the spec).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let names = pages!(
        "firehose:ListDeliveryStreams",
        cx.clients
            .firehose
            .list_delivery_streams()
            .limit(LIST_LIMIT),
        set_exclusive_start_delivery_stream_name,
        |out| {
            let last = out.delivery_stream_names.last();
            let next = last.filter(|_| out.has_more_delivery_streams).cloned();
            (out.delivery_stream_names, next)
        }
    )
    .await?;
    let tagged = cx.tagged_names(&cx.env.delivery_arn("")).await?;
    read_candidates(
        desired,
        KIND,
        &format!("{}-", cx.stack),
        &tagged,
        names,
        |n| async move {
            let known = cx.tagged_tags(&cx.env.delivery_arn(&n)).await?;
            read_with_tags(cx, &n, desired, known).await
        },
    )
    .await
}

async fn tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    let fh = &cx.clients.firehose;
    let request = || {
        fh.list_tags_for_delivery_stream()
            .delivery_stream_name(name)
    };
    tags_by_key!("firehose:ListTagsForDeliveryStream", request()).await
}

/// `DescribeDeliveryStream`; `None` if there is no such delivery.
async fn describe(cx: &Cx, name: &str) -> Result<Option<DeliveryStreamDescription>> {
    let call = cx.clients.firehose.describe_delivery_stream();
    let call = call.delivery_stream_name(name);
    let out = found(call.send().await.op("firehose:DescribeDeliveryStream"))?;
    Ok(out.and_then(|o| o.delivery_stream_description))
}

/// The last `/`-separated segment of an ARN (a stream or role name).
fn last_segment(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// The plain properties of a described delivery.
fn props_of(d: &DeliveryStreamDescription) -> Result<DeliveryProps> {
    let source = d
        .source
        .as_ref()
        .and_then(|s| s.kinesis_stream_source_description.as_ref())
        .and_then(|k| k.kinesis_stream_arn.clone())
        .map(|stream_arn| DeliverySourceProps {
            stream_name: last_segment(&stream_arn),
            stream_arn,
        });
    // The source forces a replacement: an answer that does not say it must not look like "no
    // source" (that would replace a healthy delivery).
    if source.is_none() && d.delivery_stream_type == DeliveryStreamType::KinesisStreamAsSource {
        return Err(Error::Incomplete {
            operation: "firehose:DescribeDeliveryStream",
            field: "Source.KinesisStreamSourceDescription.KinesisStreamARN",
        });
    }
    let dest = d.destinations.first();
    let ext = dest.and_then(|x| x.extended_s3_destination_description.as_ref());
    let s3 = dest.and_then(|x| x.s3_destination_description.as_ref());
    // The two descriptions are different types with the same fields.
    macro_rules! fields {
        ($d:expr) => {
            (
                $d.role_arn.clone(),
                $d.bucket_arn.clone(),
                non_empty($d.prefix.as_deref()),
                non_empty($d.error_output_prefix.as_deref()),
                $d.buffering_hints.as_ref(),
                Some(&$d.compression_format),
                $d.cloud_watch_logging_options.as_ref(),
            )
        };
    }
    let (role_arn, bucket_arn, prefix, error_prefix, hints, compression, logging) = match (ext, s3)
    {
        (Some(e), _) => fields!(e),
        (None, Some(s)) => fields!(s),
        // Not an S3 delivery: nothing matches, the plan shows the difference.
        (None, None) => (String::new(), String::new(), None, None, None, None, None),
    };
    let error_logging = logging
        .filter(|l| l.enabled == Some(true))
        .map(|l| ErrorLoggingProps {
            log_group: l.log_group_name.clone().unwrap_or_default(),
            log_stream: l.log_stream_name.clone().unwrap_or_default(),
        });
    let defaults = Buffering::default();
    let buffering = Buffering {
        size_mb: hints
            .and_then(|h| h.size_in_mbs)
            .map_or(defaults.size_mb, |n| n.max(0) as u32),
        interval_seconds: hints
            .and_then(|h| h.interval_in_seconds)
            .map_or(defaults.interval_seconds, |n| n.max(0) as u32),
    };
    // Firehose's default; a format streamstack does not know reads as the default too.
    let compression = compression
        .and_then(|c| Compression::ALL.iter().find(|(n, _)| *n == c.as_str()))
        .map_or(Compression::Uncompressed, |(_, c)| *c);
    let bucket_name = bucket_arn
        .split_once(":::")
        .map_or(bucket_arn.as_str(), |(_, b)| b)
        .to_string();
    Ok(DeliveryProps {
        arn: d.delivery_stream_arn.clone(),
        source,
        role_name: last_segment(&role_arn),
        role_arn,
        bucket_name,
        bucket_arn,
        prefix,
        error_prefix,
        buffering,
        compression,
        error_logging,
    })
}

/// Reads one delivery by name; `None` if it does not exist or is being deleted.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    read_with_tags(cx, name, desired, None).await
}

/// [`read`], with the tags when the tagging API already gave them (one call fewer).
async fn read_with_tags(
    cx: &Cx,
    name: &str,
    desired: &Model,
    known_tags: Option<BTreeMap<String, String>>,
) -> Result<Option<Live>> {
    let Some(d) = describe(cx, name).await? else {
        return Ok(None);
    };
    if d.delivery_stream_status == DeliveryStreamStatus::Deleting {
        return Ok(None);
    }
    let tags = match known_tags {
        Some(t) => t,
        // None: deleted since the describe.
        None => match found(tags(cx, name).await)? {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    let broken = match d.delivery_stream_status {
        DeliveryStreamStatus::CreatingFailed | DeliveryStreamStatus::DeletingFailed => {
            Some(format!(
                "it is {}: {}",
                d.delivery_stream_status.as_str(),
                failure_reason(&d)
            ))
        }
        _ => None,
    };
    let props = props_of(&d)?;
    let address = address_for(KIND, name, &tags, desired);
    let (id, name) = (props.arn.clone(), d.delivery_stream_name);
    let props = Props::new(props);
    Ok(Some(Live {
        broken,
        ..Live::new(id, owned_by(&tags, &cx.stack), address, name, tags, props)
    }))
}

fn hints(b: &Buffering) -> BufferingHints {
    BufferingHints::builder()
        .size_in_mbs(b.size_mb as i32)
        .interval_in_seconds(b.interval_seconds as i32)
        .build()
}

fn firehose_tags(op: &str, tags: &[(String, String)]) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Internal(format!("{}: {e}", op)))
}

/// Waits until the delivery is ACTIVE. CREATING_FAILED is terminal: the inner `Err` carries
/// Firehose's reason.
async fn wait_active(cx: &Cx, address: &Address, name: &str) -> Result<Result<(), String>> {
    wait_for(
        cx,
        address,
        "delivery ACTIVE",
        cx.timeouts.delivery,
        || async {
            let Some(d) = describe(cx, name).await? else {
                return Ok(None);
            };
            match d.delivery_stream_status {
                DeliveryStreamStatus::Active => Ok(Some(Ok(()))),
                DeliveryStreamStatus::CreatingFailed => Ok(Some(Err(failure_reason(&d)))),
                _ => Ok(None),
            }
        },
    )
    .await
}

fn failure_reason(d: &DeliveryStreamDescription) -> String {
    d.failure_description
        .as_ref()
        .map(|f| format!("{}: {}", f.r#type.as_str(), f.details))
        .unwrap_or_else(|| "Firehose gave no failure description".into())
}

/// What CreateDeliveryStream is sent, but for the name and tags: the destination, the source
/// (none for DirectPut) and the delivery's type.
struct Configuration {
    dest: ExtendedS3DestinationConfiguration,
    source: Option<KinesisStreamSourceConfiguration>,
    kind: DeliveryStreamType,
}

fn configuration(p: &DeliveryProps) -> Result<Configuration> {
    let build = |e: aws_smithy_types::error::operation::BuildError| {
        Error::Internal(format!("{}: {e}", "firehose:CreateDeliveryStream"))
    };
    let dest = ExtendedS3DestinationConfiguration::builder()
        .role_arn(&p.role_arn)
        .bucket_arn(&p.bucket_arn)
        .set_prefix(p.prefix.clone())
        .set_error_output_prefix(p.error_prefix.clone())
        .buffering_hints(hints(&p.buffering))
        .compression_format(CompressionFormat::from(p.compression.api_name()))
        .cloud_watch_logging_options(logging_options(p))
        .build()
        .map_err(build)?;
    let source = match &p.source {
        Some(s) => Some(
            KinesisStreamSourceConfiguration::builder()
                .kinesis_stream_arn(&s.stream_arn)
                .role_arn(&p.role_arn)
                .build()
                .map_err(build)?,
        ),
        None => None,
    };
    let kind = if source.is_some() {
        DeliveryStreamType::KinesisStreamAsSource
    } else {
        DeliveryStreamType::DirectPut
    };
    Ok(Configuration { dest, source, kind })
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props::<DeliveryProps>(r)?;
    let conf = configuration(p)?;
    let tags: Vec<(String, String)> = r.tags.clone().into_iter().collect();
    let tags = firehose_tags("firehose:CreateDeliveryStream", &tags)?;
    let attempt = || create_once(cx, r, desired, &conf, &tags);
    retry(
        cx,
        &r.address,
        cx.timeouts.delivery,
        |e| e.code() == Some("ResourceInUseException"),
        || {
            retry(
                cx,
                &r.address,
                cx.timeouts.iam_propagation,
                Error::is_iam_propagation,
                attempt,
            )
        },
    )
    .await?;
    match wait_active(cx, &r.address, &r.name).await? {
        Ok(()) => Ok(()),
        Err(reason) => Err(delete_failed(cx, r, &reason).await),
    }
}

/// One CreateDeliveryStream. A delivery of that name that is the stack's counts as created (by
/// an earlier attempt whose answer was lost, or a previous apply).
async fn create_once(
    cx: &Cx,
    r: &Resource,
    desired: &Model,
    conf: &Configuration,
    tags: &[Tag],
) -> Result<()> {
    let created = cx
        .clients
        .firehose
        .create_delivery_stream()
        .delivery_stream_name(&r.name)
        .delivery_stream_type(conf.kind.clone())
        .set_kinesis_stream_source_configuration(conf.source.clone())
        .extended_s3_destination_configuration(conf.dest.clone())
        .set_tags(Some(tags.to_vec()))
        .send()
        .await
        .op("firehose:CreateDeliveryStream");
    match created {
        Ok(_) => Ok(()),
        // None found: still DELETING (a replacement), retried until the name is free.
        Err(e) if e.code() == Some("ResourceInUseException") => {
            let found = read(cx, &r.name, desired).await?;
            adopt(r, "a delivery", e, found, |live| live.ours).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// The error for a delivery that went CREATING_FAILED (Firehose's `reason`), which is terminal:
/// only deleting it helps. It is deleted, so that the next apply creates it again; if that
/// fails too, the error says so and why.
async fn delete_failed(cx: &Cx, r: &Resource, reason: &str) -> Error {
    let call = cx.clients.firehose.delete_delivery_stream();
    let call = call.delivery_stream_name(&r.name).allow_force_delete(false);
    let note = match call.send().await.op("firehose:DeleteDeliveryStream") {
        Ok(_) => "streamstack deleted it, so the next apply creates it again".to_string(),
        Err(e) => format!("delete it before applying again (deleting it failed: {e})"),
    };
    Error::resource(
        &r.address,
        format!("{} is CREATING_FAILED: {reason}; {note}", r.name),
    )
}

/// Do the destination fields differ (everything `UpdateDestination` can change)?
fn destination_differs(p: &DeliveryProps, live: &DeliveryProps) -> bool {
    p.role_arn != live.role_arn
        || p.bucket_arn != live.bucket_arn
        || p.prefix != live.prefix
        || p.error_prefix != live.error_prefix
        || p.buffering != live.buffering
        || p.compression != live.compression
        || p.error_logging != live.error_logging
}

/// CloudWatchLoggingOptions for the desired error logging (explicitly off when there is none).
fn logging_options(p: &DeliveryProps) -> CloudWatchLoggingOptions {
    match &p.error_logging {
        Some(l) => CloudWatchLoggingOptions::builder()
            .enabled(true)
            .log_group_name(&l.log_group)
            .log_stream_name(&l.log_stream)
            .build(),
        None => CloudWatchLoggingOptions::builder().enabled(false).build(),
    }
}

async fn update_destination(cx: &Cx, r: &Resource) -> Result<()> {
    let p = props::<DeliveryProps>(r)?;
    // UpdateDestination merges: an absent prefix keeps the old one, so "none" is sent as "".
    let update = ExtendedS3DestinationUpdate::builder()
        .role_arn(&p.role_arn)
        .bucket_arn(&p.bucket_arn)
        .prefix(p.prefix.clone().unwrap_or_default())
        .error_output_prefix(p.error_prefix.clone().unwrap_or_default())
        .buffering_hints(hints(&p.buffering))
        .compression_format(CompressionFormat::from(p.compression.api_name()))
        .cloud_watch_logging_options(logging_options(p))
        .build();
    // Not while CREATING (or after CREATING_FAILED).
    if let Err(reason) = wait_active(cx, &r.address, &r.name).await? {
        return Err(Error::resource(
            &r.address,
            format!("{} is CREATING_FAILED: {reason}", r.name),
        ));
    }
    let retryable = |e: &Error| {
        e.is_iam_propagation()
            || matches!(
                e.code(),
                Some("ConcurrentModificationException" | "ResourceInUseException")
            )
    };
    retry(
        cx,
        &r.address,
        cx.timeouts.iam_propagation,
        retryable,
        || async {
            // A fresh version id on every attempt: a stale one is a ConcurrentModificationException.
            let d = describe(cx, &r.name).await?.ok_or_else(|| {
                Error::resource(&r.address, format!("{} no longer exists", r.name))
            })?;
            let destination_id = d
                .destinations
                .first()
                .map(|x| x.destination_id.clone())
                .ok_or(Error::Incomplete {
                    operation: "firehose:DescribeDeliveryStream",
                    field: "Destinations",
                })?;
            cx.clients
                .firehose
                .update_destination()
                .delivery_stream_name(&r.name)
                .current_delivery_stream_version_id(d.version_id)
                .destination_id(destination_id)
                .extended_s3_destination_update(update.clone())
                .send()
                .await
                .done("firehose:UpdateDestination")
        },
    )
    .await
}

async fn set_tags(cx: &Cx, r: &Resource, live: &BTreeMap<String, String>) -> Result<()> {
    let fh = &cx.clients.firehose;
    let untag = |remove: Vec<String>| async move {
        for chunk in remove.chunks(TAGS_PER_CALL) {
            let call = fh.untag_delivery_stream().delivery_stream_name(&r.name);
            let call = call.set_tag_keys(Some(chunk.to_vec()));
            call.send().await.op("firehose:UntagDeliveryStream")?;
        }
        Ok(())
    };
    let tag = |set: BTreeMap<String, String>| async move {
        let set: Vec<(String, String)> = set.into_iter().collect();
        for chunk in set.chunks(TAGS_PER_CALL) {
            let tags = firehose_tags("firehose:TagDeliveryStream", chunk)?;
            let call = fh.tag_delivery_stream().delivery_stream_name(&r.name);
            call.set_tags(Some(tags))
                .send()
                .await
                .op("firehose:TagDeliveryStream")?;
        }
        Ok(())
    };
    converge_tags(&r.tags, live, untag, tag).await
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props::<DeliveryProps>(desired)?;
    let lp = props::<DeliveryProps>(&live.resource)?;
    if destination_differs(p, lp) {
        update_destination(cx, desired).await?;
    }
    set_tags(cx, desired, &live.resource.tags).await
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    let address = live.address();
    // A delivery still CREATING cannot be deleted yet (ResourceInUseException).
    let timeout = cx.timeouts.delivery;
    let deleted = delete_when_free(cx, address, timeout, "ResourceInUseException", || async {
        let call = cx.clients.firehose.delete_delivery_stream();
        let call = call.delivery_stream_name(name).allow_force_delete(false);
        call.send().await.done("firehose:DeleteDeliveryStream")
    });
    if !deleted.await? {
        return Ok(());
    }
    wait_for(
        cx,
        address,
        "delivery deleted",
        cx.timeouts.delivery,
        || async { Ok(describe(cx, name).await?.is_none().then_some(())) },
    )
    .await
}

/// The part of an S3 prefix before its first `!{...}` expression: where to list.
fn static_prefix(prefix: Option<&str>) -> String {
    let p = prefix.unwrap_or_default();
    p.split("!{").next().unwrap_or_default().to_string()
}

/// What `check` found under a prefix.
#[derive(Debug, Default)]
struct Found {
    objects: u64,
    records: u64,
    /// Records carrying the run id.
    ours: u64,
    /// Objects read only to the cap (there may be more records in them).
    capped: Vec<String>,
    /// Objects that could not be read: key and why (naming the compression).
    unreadable: Vec<(String, String)>,
}

/// Objects under `prefix` and, when `read`, the records inside them (see [`super::objects`]:
/// every compression Firehose writes, told by magic bytes, else by the delivery's
/// `compression`). Each object is downloaded once per check (`run.memo`).
async fn count_objects(
    cx: &Cx,
    bucket: &str,
    prefix: &str,
    compression: Compression,
    run: &CheckRun,
    read: bool,
) -> Result<Found> {
    let s3 = &cx.clients.s3;
    let op = "s3:ListObjectsV2";
    // Each page's objects are read before the next page is listed. Enough pages for a lab;
    // bounded so a full bucket cannot keep check reading forever.
    let objects = first_pages(op, 10, |token| async move {
        let call = s3.list_objects_v2().bucket(bucket).prefix(prefix);
        let page = call.set_continuation_token(token).send().await.op(op)?;
        let mut counted = Vec::new();
        for o in page.contents.unwrap_or_default() {
            let Some(key) = o.key else { continue };
            let count = match read {
                true => {
                    Some(object_count(cx, bucket, &key, o.e_tag, o.size, compression, run).await?)
                }
                false => None,
            };
            counted.push((key, count));
        }
        Ok((counted, next_token(page.next_continuation_token)))
    })
    .await?;
    let mut found = Found {
        objects: objects.len() as u64,
        ..Found::default()
    };
    for (key, count) in objects {
        match count {
            Some(Ok(c)) => {
                found.records += c.records;
                found.ours += c.ours;
                if c.capped {
                    found.capped.push(key);
                }
            }
            Some(Err(why)) => found.unreadable.push((key, why)),
            None => {}
        }
    }
    Ok(found)
}

/// The records in one object, downloaded unless this check already counted it.
async fn object_count(
    cx: &Cx,
    bucket: &str,
    key: &str,
    etag: Option<String>,
    size: Option<i64>,
    compression: Compression,
    run: &CheckRun,
) -> Result<ObjectCount> {
    let etag = etag.unwrap_or_default();
    if let Some(known) = run.memo.object(bucket, key, &etag) {
        return Ok(known);
    }
    // The first MAX_OBJECT_BYTES of a larger object only: memory stays bounded.
    let truncated = size.is_some_and(|n| n as u64 > MAX_OBJECT_BYTES);
    let range = truncated.then(|| format!("bytes=0-{}", MAX_OBJECT_BYTES - 1));
    let call = cx.clients.s3.get_object().bucket(bucket).key(key);
    let body = call
        .set_range(range)
        .send()
        .await
        .op("s3:GetObject")?
        .body
        .collect()
        .await
        .map_err(|e| Error::resource_read(bucket, key, e))?
        .into_bytes();
    let run_id = run.run_id.as_deref();
    let count = objects::count(&body, compression, run_id, MAX_OBJECT_BYTES, truncated)
        .map(|(_, counted)| counted);
    run.memo.remember_object(bucket, key, &etag, count.clone());
    Ok(count)
}

/// The first events of the delivery's error log group, if any.
async fn first_errors(cx: &Cx, group: &str, stream: &str) -> Result<Vec<String>> {
    let out = cx
        .clients
        .logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .limit(3)
        .send()
        .await
        .op("logs:GetLogEvents");
    let events = found(out)?.and_then(|o| o.events).unwrap_or_default();
    Ok(events.into_iter().filter_map(|e| e.message).collect())
}

/// The delivery hop: records reached s3://bucket/prefix, every object could be read, and
/// nothing failed.
async fn check(cx: &Cx, r: &Resource, live: Option<&Live>, run: &CheckRun) -> Result<Option<Hop>> {
    let p = props::<DeliveryProps>(r)?;
    if live.is_none() {
        return Ok(Some(missing_hop(r, "no delivery")));
    }
    let prefix = static_prefix(p.prefix.as_deref());
    let found = count_objects(cx, &p.bucket_name, &prefix, p.compression, run, true).await?;
    // Objects under the error prefix are counted, not read.
    let error_objects = match &p.error_prefix {
        Some(e) => {
            let e = static_prefix(Some(e));
            count_objects(cx, &p.bucket_name, &e, p.compression, run, false)
                .await?
                .objects
        }
        None => 0,
    };
    let log_errors = match &p.error_logging {
        Some(l) => first_errors(cx, &l.log_group, &l.log_stream).await?,
        None => Vec::new(),
    };
    let delivered = match &run.run_id {
        Some(_) => found.ours >= u64::from(run.expect),
        None => found.records > 0,
    };
    let ok =
        delivered && found.unreadable.is_empty() && error_objects == 0 && log_errors.is_empty();
    let place = format!("s3://{}/{prefix}", p.bucket_name);
    let (objects, records, ours) = (found.objects, found.records, found.ours);
    let mut summary = match &run.run_id {
        Some(_) => format!(
            "{ours} of {} test records in {objects} objects under {place} ({records} records in all)",
            run.expect
        ),
        None => format!("{records} records in {objects} objects under {place}"),
    };
    if !found.unreadable.is_empty() {
        summary.push_str(&format!(
            "; {} objects cannot be read",
            found.unreadable.len()
        ));
    }
    if !found.capped.is_empty() {
        summary.push_str(&format!(
            "; {} objects read only to their first {} MiB",
            found.capped.len(),
            MAX_OBJECT_BYTES / (1024 * 1024)
        ));
    }
    let hint = (!ok).then(|| delivery_hint(p, run, &found, delivered, error_objects, &log_errors));
    Ok(Some(Hop {
        address: r.address.to_string(),
        ok,
        summary,
        hint,
        evidence: serde_json::json!({
            "bucket": p.bucket_name,
            "prefix": prefix,
            "objects": objects,
            "records": records,
            "test_records": run.run_id.as_ref().map(|_| ours),
            "unreadable_objects": found.unreadable.iter()
                .map(|(key, error)| serde_json::json!({"key": key, "error": error}))
                .collect::<Vec<_>>(),
            "capped_objects": found.capped,
            "error_objects": error_objects,
            "log_errors": log_errors,
        }),
    }))
}

/// What to look at when the delivery hop is broken.
fn delivery_hint(
    p: &DeliveryProps,
    run: &CheckRun,
    found: &Found,
    delivered: bool,
    error_objects: u64,
    log_errors: &[String],
) -> String {
    let mut parts = Vec::new();
    if let Some((key, why)) = found.unreadable.first() {
        parts.push(format!(
            "s3://{}/{key} cannot be read (the delivery's compression is {}): {why}",
            p.bucket_name,
            p.compression.api_name()
        ));
    }
    if !delivered {
        parts.push(format!(
            "none delivered after {} s: Firehose buffers up to interval_seconds={} (or \
             size_mb={})",
            run.started.elapsed().as_secs(),
            p.buffering.interval_seconds,
            p.buffering.size_mb
        ));
    }
    if error_objects > 0 {
        parts.push(format!(
            "{error_objects} objects under the error prefix s3://{}/{}",
            p.bucket_name,
            static_prefix(p.error_prefix.as_deref())
        ));
    }
    parts.extend(
        log_errors
            .first()
            .map(|e| format!("first delivery error: {e}")),
    );
    parts.join("; ")
}

/// What a delivery bills per hour (`crate::cost`): ingestion, each record rounded up to 5 KB,
/// and the S3 PUT requests of its objects (at most one per buffer interval).
fn cost_lines(r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
    use crate::cost::{Line, Price};
    let interval = props::<DeliveryProps>(r)
        .map(|p| p.buffering.interval_seconds)
        .unwrap_or(300)
        .max(1);
    let puts = if usage.records_per_second > 0.0 {
        (3600.0 / f64::from(interval)).min(usage.records_per_hour())
    } else {
        0.0
    };
    vec![
        Line::new(
            "ingestion (5 KB per record)",
            Price::FirehoseIngestGb,
            usage.rounded_gb_per_hour(5 * 1024),
        ),
        Line::new(
            "S3 PUT requests (an object per buffer)",
            Price::S3PutRequest,
            puts,
        ),
    ]
}
