//! Kinesis data streams.
//!
//! - Read: `DescribeStreamSummary` + `ListTagsForStream` (moto lacks the ARN-based tag APIs).
//! - In place: mode, shard count, retention, encryption, tags. Kinesis takes them one at a time,
//!   each putting the stream in UPDATING, so every step waits for ACTIVE (aws-domain.md §4.2).
//! - Retention cannot be given to CreateStream: it is raised after the stream is ACTIVE, with
//!   Increase or Decrease depending on direction.
//! - Replace: only a name change (a new address, handled by the planner).

use std::collections::BTreeMap;

use aws_sdk_kinesis::types::{
    EncryptionType, ScalingType, StreamMode as ApiMode, StreamModeDetails, StreamStatus,
};

use futures::future::BoxFuture;
use serde::Serialize;

use super::{
    address_for, owned_by, read_candidates, retry, tag_delta, wait_for, Cx, Live, ResourceKind,
};
use crate::aws::Ctx;
use crate::model::{Address, Kind, Model, Props, Resource};
use crate::spec::types::StreamMode;
use crate::{Error, Result};

pub const KIND: Kind = Kind::new("stream");

/// Kinesis allows at most 5 streams in CREATING or DELETING at once per account.
const LIFECYCLE_LIMIT: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamProps {
    pub arn: String,
    pub mode: StreamMode,
    pub shards: Option<u32>,
    pub retention_hours: u32,
    /// KMS key id when encrypted; `None` means no encryption.
    pub kms_key: Option<String>,
}

pub struct Streams;

impl ResourceKind for Streams {
    fn kinds(&self) -> &'static [Kind] {
        &[KIND]
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("stream", false))
    }
    fn lifecycle_limit(&self) -> Option<usize> {
        Some(LIFECYCLE_LIMIT)
    }
    lifecycle_from_module_fns!();
    fn outputs<'a>(
        &'a self,
        _cx: &'a Cx,
        live: &'a Live,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        Box::pin(async move { Ok(BTreeMap::from([("arn".to_string(), live.id.clone())])) })
    }
}

/// Every stream this stack has or wants: the desired names, plus any `{stack}-*` stream
/// tagged as ours (a stream removed from the spec).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let mut names: Vec<String> = Vec::new();
    let mut token = None;
    loop {
        // Both pagination styles: NextToken (current API) and HasMoreStreams with
        // ExclusiveStartStreamName (older API, and what moto implements).
        let mut req = cx
            .clients
            .kinesis
            .list_streams()
            .set_next_token(token.clone());
        if token.is_none() {
            req = req.set_exclusive_start_stream_name(names.last().cloned());
        }
        let out = req.send().await.op("kinesis:ListStreams")?;
        let got = out.stream_names.len();
        names.extend(out.stream_names);
        token = out.next_token;
        if token.is_none() && !(out.has_more_streams && got > 0) {
            break;
        }
    }
    read_candidates(
        desired,
        KIND,
        &format!("{}-", cx.stack),
        names,
        |n| async move { read(cx, &n, desired).await },
    )
    .await
}

async fn tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = cx
            .clients
            .kinesis
            .list_tags_for_stream()
            .stream_name(name)
            .set_exclusive_start_tag_key(start.clone())
            .send()
            .await
            .op("kinesis:ListTagsForStream")?;
        for t in &page.tags {
            out.insert(t.key.clone(), t.value.clone().unwrap_or_default());
        }
        if !page.has_more_tags || page.tags.is_empty() {
            break;
        }
        start = page.tags.last().map(|t| t.key.clone());
    }
    Ok(out)
}

/// Reads one stream by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let out = match cx
        .clients
        .kinesis
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .op("kinesis:DescribeStreamSummary")
    {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(s) = out.stream_description_summary else {
        return Ok(None);
    };
    if s.stream_status == StreamStatus::Deleting {
        return Ok(None);
    }
    let tags = tags(cx, name).await?;
    let mode = match s.stream_mode_details.as_ref().map(|m| &m.stream_mode) {
        Some(ApiMode::Provisioned) => StreamMode::Provisioned,
        _ => StreamMode::OnDemand,
    };
    let kms_key = match s.encryption_type {
        Some(EncryptionType::Kms) => s.key_id.clone(),
        _ => None,
    };
    let address = address_for(KIND, name, &tags, desired);
    Ok(Some(Live {
        ours: owned_by(&tags, &cx.stack),
        id: s.stream_arn.clone(),
        resource: Resource {
            address,
            name: name.to_string(),
            tags,
            depends_on: Default::default(),
            props: Props::new(StreamProps {
                arn: s.stream_arn,
                mode,
                shards: match mode {
                    StreamMode::Provisioned => Some(s.open_shard_count.max(0) as u32),
                    StreamMode::OnDemand => None,
                },
                retention_hours: s.retention_period_hours.max(0) as u32,
                kms_key,
            }),
        },
    }))
}

fn props(r: &Resource) -> Result<&StreamProps> {
    r.props
        .get::<StreamProps>()
        .ok_or_else(|| Error::Internal(format!("{} has no StreamProps", r.address)))
}

/// Waits until the stream is ACTIVE.
async fn wait_active(cx: &Cx, address: &Address, name: &str) -> Result<()> {
    wait_for(cx, address, "stream ACTIVE", cx.timeouts.stream, || async {
        let out = cx
            .clients
            .kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .op("kinesis:DescribeStreamSummary")?;
        Ok(out
            .stream_description_summary
            .filter(|s| s.stream_status == StreamStatus::Active)
            .map(|_| ()))
    })
    .await
}

/// Kinesis refuses changes while the stream is not ACTIVE; wait and retry those.
async fn step<F, Fut>(cx: &Cx, r: &Resource, f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    retry(
        cx,
        &r.address,
        cx.timeouts.stream,
        |e| e.code() == Some("ResourceInUseException"),
        f,
    )
    .await?;
    wait_active(cx, &r.address, &r.name).await
}

pub async fn create(cx: &Cx, r: &Resource, _desired: &Model) -> Result<()> {
    let p = props(r)?;
    let mode = match p.mode {
        StreamMode::OnDemand => ApiMode::OnDemand,
        StreamMode::Provisioned => ApiMode::Provisioned,
    };
    let details = StreamModeDetails::builder()
        .stream_mode(mode)
        .build()
        .map_err(|e| Error::Internal(format!("kinesis:CreateStream: {e}")))?;
    let k = &cx.clients.kinesis;
    retry(
        cx,
        &r.address,
        cx.timeouts.stream,
        |e| e.code() == Some("LimitExceededException"),
        || async {
            k.create_stream()
                .stream_name(&r.name)
                .stream_mode_details(details.clone())
                .set_shard_count(p.shards.map(|n| n as i32))
                .set_tags(Some(r.tags.clone().into_iter().collect()))
                .send()
                .await
                .op("kinesis:CreateStream")
                .map(|_| ())
        },
    )
    .await?;
    wait_active(cx, &r.address, &r.name).await?;
    // Some endpoints (moto) ignore CreateStream's Tags; setting them again is idempotent.
    set_tags(cx, r, &BTreeMap::new()).await?;
    let created = StreamProps {
        retention_hours: 24,
        kms_key: None,
        ..p.clone()
    };
    converge(cx, r, &created).await
}

async fn set_tags(cx: &Cx, r: &Resource, live: &BTreeMap<String, String>) -> Result<()> {
    let (remove, set) = tag_delta(&r.tags, live);
    let k = &cx.clients.kinesis;
    if !remove.is_empty() {
        k.remove_tags_from_stream()
            .stream_name(&r.name)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .op("kinesis:RemoveTagsFromStream")?;
    }
    // AddTagsToStream takes at most 10 tags per call.
    let set: Vec<(String, String)> = set.into_iter().collect();
    for chunk in set.chunks(10) {
        k.add_tags_to_stream()
            .stream_name(&r.name)
            .set_tags(Some(chunk.iter().cloned().collect()))
            .send()
            .await
            .op("kinesis:AddTagsToStream")?;
    }
    Ok(())
}

/// Brings mode, shards, retention and encryption from `live` to the desired values, one change
/// at a time.
async fn converge(cx: &Cx, r: &Resource, live: &StreamProps) -> Result<()> {
    let p = props(r)?;
    let k = &cx.clients.kinesis;
    if p.mode != live.mode {
        let mode = match p.mode {
            StreamMode::OnDemand => ApiMode::OnDemand,
            StreamMode::Provisioned => ApiMode::Provisioned,
        };
        let details = StreamModeDetails::builder()
            .stream_mode(mode)
            .build()
            .map_err(|e| Error::Internal(format!("{}: {e}", "kinesis:UpdateStreamMode")))?;
        step(cx, r, || async {
            k.update_stream_mode()
                .stream_arn(&p.arn)
                .stream_mode_details(details.clone())
                .send()
                .await
                .op("kinesis:UpdateStreamMode")
                .map(|_| ())
        })
        .await?;
    }
    if let Some(n) = p.shards {
        if live.shards != Some(n)
            && p.mode == StreamMode::Provisioned
            && live.mode == StreamMode::Provisioned
        {
            step(cx, r, || async {
                k.update_shard_count()
                    .stream_name(&r.name)
                    .target_shard_count(n as i32)
                    .scaling_type(ScalingType::UniformScaling)
                    .send()
                    .await
                    .op("kinesis:UpdateShardCount")
                    .map(|_| ())
            })
            .await?;
        }
    }
    if p.retention_hours > live.retention_hours {
        step(cx, r, || async {
            k.increase_stream_retention_period()
                .stream_name(&r.name)
                .retention_period_hours(p.retention_hours as i32)
                .send()
                .await
                .op("kinesis:IncreaseStreamRetentionPeriod")
                .map(|_| ())
        })
        .await?;
    } else if p.retention_hours < live.retention_hours {
        step(cx, r, || async {
            k.decrease_stream_retention_period()
                .stream_name(&r.name)
                .retention_period_hours(p.retention_hours as i32)
                .send()
                .await
                .op("kinesis:DecreaseStreamRetentionPeriod")
                .map(|_| ())
        })
        .await?;
    }
    if p.kms_key != live.kms_key {
        if let Some(old) = &live.kms_key {
            step(cx, r, || async {
                k.stop_stream_encryption()
                    .stream_name(&r.name)
                    .encryption_type(EncryptionType::Kms)
                    .key_id(old)
                    .send()
                    .await
                    .op("kinesis:StopStreamEncryption")
                    .map(|_| ())
            })
            .await?;
        }
        if let Some(new) = &p.kms_key {
            step(cx, r, || async {
                k.start_stream_encryption()
                    .stream_name(&r.name)
                    .encryption_type(EncryptionType::Kms)
                    .key_id(new)
                    .send()
                    .await
                    .op("kinesis:StartStreamEncryption")
                    .map(|_| ())
            })
            .await?;
        }
    }
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let lp = props(&live.resource)?;
    converge(cx, desired, lp).await?;
    set_tags(cx, desired, &live.resource.tags).await
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    match cx
        .clients
        .kinesis
        .delete_stream()
        .stream_name(name)
        .enforce_consumer_deletion(true)
        .send()
        .await
        .op("kinesis:DeleteStream")
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    }
    wait_for(
        cx,
        live.address(),
        "stream deleted",
        cx.timeouts.stream,
        || async {
            match cx
                .clients
                .kinesis
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .op("kinesis:DescribeStreamSummary")
            {
                Err(e) if e.is_not_found() => Ok(Some(())),
                Err(e) => Err(e),
                Ok(_) => Ok(None),
            }
        },
    )
    .await
}
