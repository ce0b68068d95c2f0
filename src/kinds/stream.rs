//! Kinesis data streams.
//!
//! - Read: `DescribeStreamSummary`, tags from the stack's Tagging API listing, else
//!   `ListTagsForStream` (moto's tagging API skips Kinesis, and moto lacks the ARN-based tag APIs).
//! - In place: mode, shard count, retention, encryption, tags. Kinesis takes them one at a time,
//!   each putting the stream in UPDATING, so every step waits for ACTIVE (aws-domain.md §4.2).
//! - Retention cannot be given to CreateStream: it is raised after the stream is ACTIVE, with
//!   Increase or Decrease depending on direction.
//! - Replace: only a name change (a new address, handled by the planner).

use std::collections::BTreeMap;

use aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryOutput;
use aws_sdk_kinesis::types::{
    EncryptionType, ScalingType, StreamMode as ApiMode, StreamModeDetails, StreamStatus,
};

use serde::Serialize;

pub use super::STREAM as KIND;
use std::time::Instant;

use aws_sdk_kinesis::types::ShardIteratorType;

use super::check_memo::{parents_first, ShardCursor};
use super::{
    address_for, adopt, arn_output, converge_tags, delete_when_free, found, missing_hop, owned_by,
    props, put_in_batches, read_candidates, retry, wait_for, CheckRun, Cx, Hop, Live, MaybeCreated,
    ResourceKind,
};
use crate::aws::{all_pages, send_once, Ctx};
use crate::model::{Address, Model, Props, Resource};
use crate::spec::types::StreamMode;
use crate::{Error, Result};

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
    lifecycle_from_module_fns!(kinds: &[KIND]; outputs, check, put_test_records, cloudformation);
    fn cost(&self, r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
        cost_lines(r, usage)
    }
    fn correct_listing<'a>(
        &'a self,
        clients: &'a crate::aws::Clients,
        listed: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<super::ListingFix>> {
        Box::pin(emulator_listing(clients, listed))
    }
    fn listed_cost<'a>(
        &'a self,
        clients: &'a crate::aws::Clients,
        arns: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<crate::cost::Priced>> {
        Box::pin(listed_cost(clients, arns))
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("stream", false))
    }
    fn lifecycle_limit(&self) -> Option<usize> {
        Some(LIFECYCLE_LIMIT)
    }
    fn hop_order(&self) -> u8 {
        2
    }
}

/// `check --put`: the records, in PutRecords batches (refused ones sent again).
async fn put_test_records(cx: &Cx, r: &Resource, records: &[String]) -> Result<bool> {
    put_in_batches(r, records, |batch| async move {
        let entries = batch
            .iter()
            .map(|(i, data)| {
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .data(aws_smithy_types::Blob::new(data.as_bytes()))
                    .partition_key(format!("check-{i}"))
                    .build()
                    .map_err(|e| Error::Internal(format!("kinesis:PutRecords: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let call = cx.clients.kinesis.put_records().stream_name(&r.name);
        let out = call.set_records(Some(entries)).send().await;
        let out = out.op("kinesis:PutRecords")?;
        Ok(out.records.into_iter().map(|e| e.error_code).collect())
    })
    .await
}

fn cloudformation(r: &Resource, _cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
    let p = r.props.get::<StreamProps>()?;
    let mut props = serde_json::json!({
        "Name": r.name,
        "RetentionPeriodHours": p.retention_hours,
        "StreamModeDetails": {"StreamMode": p.mode.api_name()},
        "Tags": crate::cfn::tags(&r.tags),
    });
    if let (StreamMode::Provisioned, Some(n)) = (p.mode, p.shards) {
        props["ShardCount"] = serde_json::json!(n);
    }
    if let Some(key) = &p.kms_key {
        props["StreamEncryption"] = serde_json::json!({"EncryptionType": "KMS", "KeyId": key});
    }
    Some(
        crate::cfn::CfnResource::new("AWS::Kinesis::Stream", props).output(
            "Arn",
            serde_json::Value::String(p.arn.clone()),
            "The stream's ARN",
        ),
    )
}

/// The stream's ARN.
async fn outputs(_cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    Ok(arn_output(live))
}

/// Every stream this stack has or wants, found by name: the desired names and `{stack}-*`
/// streams of the account's listing, plus those the stack's Resource Groups Tagging listing
/// names (an explicitly named stream that left the spec). Only those are read: a first plan in
/// an account of many streams reads none of theirs.
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let names = list_names(cx).await?;
    let prefix = format!("{}-", cx.stack);
    let mut tagged = cx.tagged_names(&cx.env.stream_arn("")).await?;
    if tagged.is_empty() && tagging_may_miss_streams(cx).await? {
        tagged.extend(tagged_by_scan(cx, desired, &names, &prefix).await?);
    }
    read_candidates(desired, KIND, &prefix, &tagged, names, |n| async move {
        let known = cx.tagged_tags(&cx.env.stream_arn(&n)).await?;
        read_with_tags(cx, &n, desired, known).await
    })
    .await
}

/// Whether the stack's streams may be missing from its Resource Groups Tagging listing although
/// they exist: AWS's tagging API lists Kinesis streams
/// (https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/supported-services.html),
/// moto's does not (docs/aws-facts.md, "moto emulator quirks"). Only on an endpoint other than
/// AWS's, and only for a stack that exists there (something of it is tagged): before a first
/// apply nothing of the stack can be found by its tags.
async fn tagging_may_miss_streams(cx: &Cx) -> Result<bool> {
    Ok(cx.clients.custom_endpoint && !cx.tagged_arns().await?.is_empty())
}

/// The names of streams no name rule finds whose own tags say they are the stack's: one
/// ListTagsForStream per stream (see [`tagging_may_miss_streams`] for where this is needed).
/// A stream whose tags may not be read is not the stack's.
async fn tagged_by_scan(
    cx: &Cx,
    desired: &Model,
    names: &[String],
    prefix: &str,
) -> Result<Vec<String>> {
    let wanted: Vec<&str> = desired.of_kind(KIND).map(|r| r.name.as_str()).collect();
    let others = names
        .iter()
        .filter(|n| !wanted.contains(&n.as_str()) && !n.starts_with(prefix));
    let found = futures::future::try_join_all(others.map(|n| async move {
        let tags = match found(tags(cx, n).await) {
            Err(e) if e.is_access_denied() => None,
            other => other?,
        };
        Ok::<_, Error>(tags.filter(|t| owned_by(t, &cx.stack)).map(|_| n.clone()))
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Where ListStreams goes on: after a NextToken (the current API), or after the last name
/// listed (HasMoreStreams and ExclusiveStartStreamName: the older API, and what moto implements).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum After {
    Token(String),
    Name(String),
}

/// Every stream's name in the account and region.
async fn list_names(cx: &Cx) -> Result<Vec<String>> {
    all_pages("kinesis:ListStreams", |after| {
        let request = cx.clients.kinesis.list_streams();
        let request = match after {
            Some(After::Token(t)) => request.next_token(t),
            Some(After::Name(n)) => request.exclusive_start_stream_name(n),
            None => request,
        };
        async move {
            let out = request.send().await.op("kinesis:ListStreams")?;
            let next = match (out.next_token, out.stream_names.last()) {
                (Some(t), _) => Some(After::Token(t)),
                (None, Some(last)) if out.has_more_streams => Some(After::Name(last.clone())),
                (None, _) => None,
            };
            Ok((out.stream_names, next))
        }
    })
    .await
}

async fn tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    let k = &cx.clients.kinesis;
    tags_by_key!(
        "kinesis:ListTagsForStream",
        k.list_tags_for_stream().stream_name(name)
    )
    .await
}

/// Reads one stream by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    read_with_tags(cx, name, desired, None).await
}

/// DescribeStreamSummary; `None` if there is no such stream.
async fn describe(cx: &Cx, name: &str) -> Result<Option<DescribeStreamSummaryOutput>> {
    let k = &cx.clients.kinesis;
    let call = k.describe_stream_summary().stream_name(name);
    found(call.send().await.op("kinesis:DescribeStreamSummary"))
}

/// [`read`], with the tags when the tagging API already gave them (one call fewer).
async fn read_with_tags(
    cx: &Cx,
    name: &str,
    desired: &Model,
    known_tags: Option<BTreeMap<String, String>>,
) -> Result<Option<Live>> {
    let Some(s) = describe(cx, name)
        .await?
        .and_then(|o| o.stream_description_summary)
    else {
        return Ok(None);
    };
    if s.stream_status == StreamStatus::Deleting {
        return Ok(None);
    }
    let tags = match known_tags {
        Some(t) => t,
        None => tags(cx, name).await?,
    };
    let mode = match s.stream_mode_details.as_ref().map(|m| &m.stream_mode) {
        Some(ApiMode::Provisioned) => StreamMode::Provisioned,
        _ => StreamMode::OnDemand,
    };
    let kms_key = match s.encryption_type {
        Some(EncryptionType::Kms) => s.key_id.clone(),
        _ => None,
    };
    let address = address_for(KIND, name, &tags, desired);
    let props = Props::new(StreamProps {
        arn: s.stream_arn.clone(),
        mode,
        shards: match mode {
            StreamMode::Provisioned => Some(s.open_shard_count.max(0) as u32),
            StreamMode::OnDemand => None,
        },
        retention_hours: s.retention_period_hours.max(0) as u32,
        kms_key,
    });
    Ok(Some(Live {
        created: std::time::SystemTime::try_from(s.stream_creation_timestamp).ok(),
        ..Live::new(
            s.stream_arn,
            owned_by(&tags, &cx.stack),
            address,
            name.to_string(),
            tags,
            props,
        )
    }))
}

/// Waits until the stream is ACTIVE (for at most `timeout`); returns its open shard count.
async fn wait_active(
    cx: &Cx,
    address: &Address,
    name: &str,
    timeout: std::time::Duration,
) -> Result<u32> {
    wait_for(cx, address, "stream ACTIVE", timeout, || async {
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
            .map(|s| s.open_shard_count.max(0) as u32))
    })
    .await
}

/// One change: Kinesis refuses changes while the stream is not ACTIVE, so those are retried;
/// then waits (long: resharding takes minutes) until ACTIVE again, and returns the open shard
/// count.
async fn step<F, Fut>(cx: &Cx, r: &Resource, f: F) -> Result<u32>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    retry(
        cx,
        &r.address,
        cx.timeouts.stream_update,
        |e| e.code() == Some("ResourceInUseException"),
        f,
    )
    .await?;
    wait_active(cx, &r.address, &r.name, cx.timeouts.stream_update).await
}

/// Kinesis allows this many UpdateShardCount calls per stream in a rolling 24 hours.
pub const SCALINGS_PER_DAY: usize = 10;

/// The shard counts to pass through from `from` to `to`: each UpdateShardCount may at most
/// double or halve the open shard count, so larger changes go in steps.
pub fn scaling_steps(from: u32, to: u32) -> Vec<u32> {
    let mut steps = Vec::new();
    let mut cur = from.max(1);
    while cur != to && to > 0 {
        cur = if to > cur {
            to.min(cur.saturating_mul(2))
        } else {
            to.max(cur.div_ceil(2))
        };
        steps.push(cur);
    }
    steps
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props::<StreamProps>(r)?;
    let details = mode_details(p.mode, "kinesis:CreateStream")?;
    // Some endpoints ignore CreateStream's tags: until they are on, the journal says this
    // stream is ours (crate::journal).
    cx.journal.begin(KIND, &r.name);
    let retryable = |e: &Error| {
        e.is_transient()
            || matches!(
                e.code(),
                Some("LimitExceededException" | "ResourceInUseException")
            )
    };
    let maybe_created = MaybeCreated::default();
    let attempt = || create_once(cx, r, desired, &details, &maybe_created);
    let baseline = match retry(cx, &r.address, cx.timeouts.stream, retryable, attempt).await {
        Ok(b) => b,
        Err(e) => {
            cx.journal.end(KIND, &r.name);
            return Err(e);
        }
    };
    let open_shards = wait_active(cx, &r.address, &r.name, cx.timeouts.stream).await?;
    let (live_props, live_tags) = match &baseline {
        Some(l) => (
            props::<StreamProps>(&l.resource)?.clone(),
            l.resource.tags.clone(),
        ),
        None => (
            StreamProps {
                retention_hours: 24,
                kms_key: None,
                shards: (p.mode == StreamMode::Provisioned).then_some(open_shards),
                ..p.clone()
            },
            BTreeMap::new(),
        ),
    };
    // Setting tags again is idempotent; it ends the journal entry.
    set_tags(cx, r, &live_tags).await?;
    cx.journal.end(KIND, &r.name);
    converge(cx, r, &live_props).await
}

/// One CreateStream, without the SDK's retries (see [`send_once`]): `None` when it created the
/// stream, else the stream of that name that this create may take over (see below);
/// `maybe_created` notes an attempt that may have acted.
async fn create_once(
    cx: &Cx,
    r: &Resource,
    desired: &Model,
    details: &StreamModeDetails,
    maybe_created: &MaybeCreated,
) -> Result<Option<Live>> {
    let p = props::<StreamProps>(r)?;
    let request = cx
        .clients
        .kinesis
        .create_stream()
        .stream_name(&r.name)
        .stream_mode_details(details.clone())
        .set_shard_count(p.shards.map(|n| n as i32))
        .set_tags(Some(r.tags.clone().into_iter().collect()));
    let sent = send_once!(aws_sdk_kinesis, request)
        .await
        .op("kinesis:CreateStream");
    maybe_created.note(&sent);
    match sent {
        Ok(_) => Ok(None),
        // The name is taken: by an earlier attempt whose answer was lost, by a run that
        // died, by a stream still DELETING (retried), or by someone else.
        Err(e) if e.code() == Some("ResourceInUseException") => {
            let found = read(cx, &r.name, desired).await?;
            let own = |live: &Live| {
                live.ours
                    || maybe_created.get()
                    || cx.journal.created_it(KIND, &r.name, live.created)
            };
            adopt(r, "a stream", e, found, own).map(Some)
        }
        Err(e) => Err(e),
    }
}

/// Pages of one shard read in one look at most: a busy stream cannot keep check reading forever
/// (the next look goes on from there).
const PAGES_PER_LOOK: usize = 50;

/// Records in the stream, read from TRIM_HORIZON on every shard, closed parents before their
/// children, each look of the check going on from where the last stopped: (all, carrying the
/// run id).
async fn count_records(cx: &Cx, name: &str, run: &CheckRun) -> Result<(u64, u64)> {
    let shards = all_pages("kinesis:ListShards", |token: Option<String>| {
        let call = cx.clients.kinesis.list_shards();
        // The stream's name and a NextToken cannot go together.
        let call = match token {
            Some(t) => call.next_token(t),
            None => call.stream_name(name),
        };
        async move {
            let out = call.send().await.op("kinesis:ListShards")?;
            Ok((out.shards.unwrap_or_default(), out.next_token))
        }
    })
    .await?;
    let parents = |s: &aws_sdk_kinesis::types::Shard| {
        [&s.parent_shard_id, &s.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    };
    let (mut all, mut ours) = (0u64, 0u64);
    for shard in parents_first(shards, |s| s.shard_id.as_str(), parents) {
        let closed = shard
            .sequence_number_range
            .as_ref()
            .is_some_and(|r| r.ending_sequence_number.is_some());
        let cursor = read_shard(cx, name, &shard.shard_id, closed, run).await?;
        all += cursor.records;
        ours += cursor.ours;
    }
    Ok((all, ours))
}

/// Reads one shard on from where the check's last look stopped: a closed shard to its end (no
/// next iterator), an open one until it is caught up with its tip. Every GetRecords waits for
/// its turn on the shard (see [`super::check_memo::GET_RECORDS_GAP`]) and is sent without the SDK's retries, whose
/// backoff would not keep that pace: a throttled page is asked for again at the next turn.
async fn read_shard(
    cx: &Cx,
    stream: &str,
    shard_id: &str,
    closed: bool,
    run: &CheckRun,
) -> Result<ShardCursor> {
    let k = &cx.clients.kinesis;
    let pacer = &run.memo.get_records;
    let turn = format!("{stream}/{shard_id}");
    let mut cursor = run.memo.shard(stream, shard_id);
    for _ in 0..PAGES_PER_LOOK {
        if cursor.ended {
            break;
        }
        let iterator = match cursor.iterator.take() {
            Some(it) => it,
            None => {
                let call = k
                    .get_shard_iterator()
                    .stream_name(stream)
                    .shard_id(shard_id);
                let call = call.shard_iterator_type(ShardIteratorType::TrimHorizon);
                let out = call.send().await.op("kinesis:GetShardIterator")?;
                let Some(it) = out.shard_iterator else { break };
                it
            }
        };
        tokio::time::sleep(pacer.wait(&turn, Instant::now())).await;
        let request = k.get_records().shard_iterator(&iterator).limit(10_000);
        let sent = send_once!(aws_sdk_kinesis, request)
            .await
            .op("kinesis:GetRecords");
        pacer.done(&turn, Instant::now());
        let page = match sent {
            Ok(page) => page,
            Err(e) if e.code() == Some("ProvisionedThroughputExceededException") => {
                cursor.iterator = Some(iterator);
                continue;
            }
            // An iterator lives 5 minutes: read the shard again from its start.
            Err(e) if e.code() == Some("ExpiredIteratorException") => {
                cursor = ShardCursor::default();
                continue;
            }
            Err(e) => return Err(e),
        };
        cursor.records += page.records.len() as u64;
        if let Some(id) = run.run_id.as_deref() {
            cursor.ours += page
                .records
                .iter()
                .filter(|r| String::from_utf8_lossy(r.data.as_ref()).contains(id))
                .count() as u64;
        }
        let caught_up = page.millis_behind_latest.unwrap_or(0) == 0;
        cursor.iterator = page.next_shard_iterator;
        // AWS ends a closed shard with no next iterator. An empty page at the stream's tip
        // ends it too: a closed shard gets no more records (moto never drops the iterator, and
        // each further page would cost a paced second).
        cursor.ended =
            cursor.iterator.is_none() || (closed && caught_up && page.records.is_empty());
        if caught_up && (!closed || cursor.ended) {
            break;
        }
    }
    run.memo.remember_shard(stream, shard_id, cursor.clone());
    Ok(cursor)
}

/// The stream hop: records are in the stream.
async fn check(cx: &Cx, r: &Resource, live: Option<&Live>, run: &CheckRun) -> Result<Option<Hop>> {
    if live.is_none() {
        return Ok(Some(missing_hop(r, "no stream")));
    }
    let (all, ours) = count_records(cx, &r.name, run).await?;
    let (ok, summary) = match &run.run_id {
        Some(_) => (
            ours >= u64::from(run.expect),
            format!(
                "{ours} of {} test records in the stream ({all} in all)",
                run.expect
            ),
        ),
        None => (all > 0, format!("{all} records in the stream")),
    };
    Ok(Some(Hop {
        address: r.address.to_string(),
        ok,
        summary,
        hint: (!ok).then(|| {
            "nothing reached the stream: see the agent's log on the host \
             (/var/log/aws-kinesis-agent/aws-kinesis-agent.log), and that its flows watch the \
             files the application writes"
                .to_string()
        }),
        evidence: serde_json::json!({"records": all, "test_records": run.run_id.as_ref().map(|_| ours)}),
    }))
}

fn mode_details(mode: StreamMode, op: &str) -> Result<StreamModeDetails> {
    let mode = match mode {
        StreamMode::OnDemand => ApiMode::OnDemand,
        StreamMode::Provisioned => ApiMode::Provisioned,
    };
    StreamModeDetails::builder()
        .stream_mode(mode)
        .build()
        .map_err(|e| Error::Internal(format!("{op}: {e}")))
}

async fn set_tags(cx: &Cx, r: &Resource, live: &BTreeMap<String, String>) -> Result<()> {
    let k = &cx.clients.kinesis;
    let request = k.remove_tags_from_stream().stream_name(&r.name);
    let untag = untag!("kinesis:RemoveTagsFromStream", request);
    let tag = |set: BTreeMap<String, String>| async move {
        // AddTagsToStream takes at most 10 tags per call.
        let set: Vec<(String, String)> = set.into_iter().collect();
        for chunk in set.chunks(10) {
            let call = k.add_tags_to_stream().stream_name(&r.name);
            let call = call.set_tags(Some(chunk.iter().cloned().collect()));
            call.send().await.op("kinesis:AddTagsToStream")?;
        }
        Ok(())
    };
    converge_tags(&r.tags, live, untag, tag).await
}

/// Brings mode, shards, retention and encryption from `live` to the desired values, one change
/// at a time.
async fn converge(cx: &Cx, r: &Resource, live: &StreamProps) -> Result<()> {
    let p = props::<StreamProps>(r)?;
    let mut open_shards = live.shards;
    if p.mode != live.mode {
        // On-demand → provisioned keeps the current shard count: scale from what is open now.
        open_shards = Some(change_mode(cx, r, p).await?);
    }
    if let (Some(target), StreamMode::Provisioned) = (p.shards, p.mode) {
        reshard(cx, r, open_shards.unwrap_or(target), target).await?;
    }
    if p.retention_hours != live.retention_hours {
        let raise = p.retention_hours > live.retention_hours;
        change_retention(cx, r, raise, p.retention_hours).await?;
    }
    if p.kms_key != live.kms_key {
        change_encryption(cx, r, live.kms_key.as_deref(), p.kms_key.as_deref()).await?;
    }
    Ok(())
}

/// UpdateStreamMode to the desired mode; returns the open shard count after it.
async fn change_mode(cx: &Cx, r: &Resource, p: &StreamProps) -> Result<u32> {
    let details = mode_details(p.mode, "kinesis:UpdateStreamMode")?;
    step(cx, r, || async {
        let call = cx.clients.kinesis.update_stream_mode().stream_arn(&p.arn);
        let call = call.stream_mode_details(details.clone());
        call.send().await.done("kinesis:UpdateStreamMode")
    })
    .await
}

/// From `from` to `target` open shards, in as many UpdateShardCount steps as it takes (each at
/// most doubles or halves the count); refused when that is more than a day's allowance.
async fn reshard(cx: &Cx, r: &Resource, from: u32, target: u32) -> Result<()> {
    let steps = scaling_steps(from, target);
    if steps.len() > SCALINGS_PER_DAY {
        return Err(Error::resource(
            &r.address,
            format!(
                "going from {from} to {target} shards takes {} UpdateShardCount calls (each at \
                 most doubles or halves the count), and Kinesis allows {SCALINGS_PER_DAY} per \
                 stream in 24 hours; change shards in smaller steps over several days, or \
                 replace the stream",
                steps.len()
            ),
        ));
    }
    for (i, n) in steps.iter().enumerate() {
        if steps.len() > 1 {
            cx.events.send(crate::events::Event::Progress {
                address: r.address.clone(),
                waiting_for: format!(
                    "resharding step {} of {}: to {n} shards",
                    i + 1,
                    steps.len()
                ),
                elapsed: std::time::Duration::ZERO,
            });
        }
        step(cx, r, || async {
            let call = cx.clients.kinesis.update_shard_count().stream_name(&r.name);
            let call = call.target_shard_count(*n as i32);
            let call = call.scaling_type(ScalingType::UniformScaling);
            call.send().await.done("kinesis:UpdateShardCount")
        })
        .await?;
    }
    Ok(())
}

/// The retention period to `hours`: Kinesis has one call to raise it and one to lower it.
async fn change_retention(cx: &Cx, r: &Resource, raise: bool, hours: u32) -> Result<()> {
    let k = &cx.clients.kinesis;
    step(cx, r, || async {
        if raise {
            let call = k.increase_stream_retention_period().stream_name(&r.name);
            let call = call.retention_period_hours(hours as i32);
            call.send()
                .await
                .op("kinesis:IncreaseStreamRetentionPeriod")?;
        } else {
            let call = k.decrease_stream_retention_period().stream_name(&r.name);
            let call = call.retention_period_hours(hours as i32);
            call.send()
                .await
                .op("kinesis:DecreaseStreamRetentionPeriod")?;
        }
        Ok(())
    })
    .await
    .map(|_| ())
}

/// KMS encryption from key `old` to key `new` (either may be none): the old key's encryption
/// stops before the new one's starts.
async fn change_encryption(
    cx: &Cx,
    r: &Resource,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<()> {
    if let Some(old) = old {
        encryption(cx, r, false, old).await?;
    }
    if let Some(new) = new {
        encryption(cx, r, true, new).await?;
    }
    Ok(())
}

/// Starts (`start`) or stops KMS encryption with `key`: one step.
async fn encryption(cx: &Cx, r: &Resource, start: bool, key: &str) -> Result<()> {
    let k = &cx.clients.kinesis;
    step(cx, r, || async {
        if start {
            let call = k.start_stream_encryption().stream_name(&r.name);
            let call = call.encryption_type(EncryptionType::Kms).key_id(key);
            call.send().await.done("kinesis:StartStreamEncryption")
        } else {
            let call = k.stop_stream_encryption().stream_name(&r.name);
            let call = call.encryption_type(EncryptionType::Kms).key_id(key);
            call.send().await.done("kinesis:StopStreamEncryption")
        }
    })
    .await
    .map(|_| ())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let lp = props::<StreamProps>(&live.resource)?;
    converge(cx, desired, lp).await?;
    set_tags(cx, desired, &live.resource.tags).await
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    // Not while CREATING or UPDATING (ResourceInUseException): retried until it is ACTIVE.
    let timeout = cx.timeouts.stream_update;
    let deleted = delete_when_free(
        cx,
        live.address(),
        timeout,
        "ResourceInUseException",
        || async {
            let call = cx.clients.kinesis.delete_stream().stream_name(name);
            call.enforce_consumer_deletion(true)
                .send()
                .await
                .done("kinesis:DeleteStream")
        },
    );
    if !deleted.await? {
        return Ok(());
    }
    wait_for(
        cx,
        live.address(),
        "stream deleted",
        cx.timeouts.stream,
        || async { Ok(describe(cx, name).await?.is_none().then_some(())) },
    )
    .await
}

/// What a stream bills per hour (`crate::cost`): provisioned, its shard-hours and PUT payload
/// units (25 KB each, every record at least one); on-demand, its stream-hour and the data in and
/// out (each record rounded up to 1 KB).
fn cost_lines(r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
    let Ok(p) = props::<StreamProps>(r) else {
        return Vec::new();
    };
    mode_lines(p.mode, p.shards.unwrap_or(1), usage)
}

fn mode_lines(mode: StreamMode, shards: u32, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
    use crate::cost::{Line, Price};
    match mode {
        StreamMode::Provisioned => vec![
            Line::new("shard-hours", Price::KinesisShardHour, f64::from(shards)),
            Line::new(
                "PUT payload units",
                Price::KinesisPutPayloadUnit,
                usage.put_payload_units_per_hour(),
            ),
        ],
        StreamMode::OnDemand => vec![
            Line::new("stream-hours", Price::KinesisOnDemandStreamHour, 1.0),
            Line::new(
                "data in (1 KB per record)",
                Price::KinesisOnDemandInGb,
                usage.rounded_gb_per_hour(1024),
            ),
            Line::new(
                "data out (1 KB per record)",
                Price::KinesisOnDemandOutGb,
                usage.rounded_gb_per_hour(1024) * usage.reads_per_record,
            ),
        ],
    }
}

/// For `stacks`: each listed stream's mode and open shards (DescribeStreamSummary), priced at the
/// lab's usage. A stream gone meanwhile is left out.
async fn listed_cost(
    clients: &crate::aws::Clients,
    arns: &[String],
) -> Result<crate::cost::Priced> {
    let mut out = Vec::new();
    for arn in arns.iter().filter(|a| a.contains(":kinesis:")) {
        let Some((_, name)) = arn.split_once(":stream/") else {
            continue;
        };
        let call = clients.kinesis.describe_stream_summary().stream_name(name);
        let Some(d) = found(call.send().await.op("kinesis:DescribeStreamSummary"))? else {
            continue;
        };
        let Some(s) = d.stream_description_summary else {
            continue;
        };
        let mode = match s.stream_mode_details.map(|m| m.stream_mode) {
            Some(ApiMode::Provisioned) => StreamMode::Provisioned,
            _ => StreamMode::OnDemand,
        };
        let shards = s.open_shard_count.max(0) as u32;
        out.push((arn.clone(), mode_lines(mode, shards, &Default::default())));
    }
    Ok(out)
}

/// For `stacks` against an emulator whose Tagging API skips Kinesis (moto; see
/// [`tagging_may_miss_streams`]): the tagged streams, found with ListStreams and
/// ListTagsForStream. Against AWS (or when the listing has streams) nothing changes.
async fn emulator_listing(
    clients: &crate::aws::Clients,
    listed: &[String],
) -> Result<super::ListingFix> {
    let mut fix = super::ListingFix::default();
    if !clients.custom_endpoint || listed.iter().any(|a| a.contains(":kinesis:")) {
        return Ok(fix);
    }
    let mut after: Option<String> = None;
    let mut names = Vec::new();
    // Bounded: an emulator's account holds a handful of streams.
    for _ in 0..100 {
        let mut request = clients.kinesis.list_streams();
        if let Some(a) = &after {
            request = request.exclusive_start_stream_name(a);
        }
        let page = request.send().await.op("kinesis:ListStreams")?;
        after = page
            .stream_names
            .last()
            .cloned()
            .filter(|_| page.has_more_streams);
        names.extend(page.stream_names);
        if after.is_none() {
            break;
        }
    }
    for name in names {
        let k = &clients.kinesis;
        let Ok(tags) = tags_by_key!(
            "kinesis:ListTagsForStream",
            k.list_tags_for_stream().stream_name(&name)
        )
        .await
        else {
            continue;
        };
        if !tags.contains_key(crate::model::TAG_STACK) {
            continue;
        }
        let call = k.describe_stream_summary().stream_name(&name);
        if let Ok(Some(d)) = found(call.send().await.op("kinesis:DescribeStreamSummary")) {
            if let Some(s) = d.stream_description_summary {
                fix.unlisted.push((s.stream_arn, tags));
            }
        }
    }
    Ok(fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_goes_by_doubling_or_halving() {
        assert_eq!(scaling_steps(1, 8), [2, 4, 8]);
        assert_eq!(scaling_steps(3, 8), [6, 8]);
        assert_eq!(scaling_steps(8, 1), [4, 2, 1]);
        assert_eq!(scaling_steps(5, 2), [3, 2]);
        assert_eq!(scaling_steps(4, 4), Vec::<u32>::new());
        assert_eq!(scaling_steps(4, 7), [7]);
        for (from, to) in [(1u32, 1000u32), (1000, 1), (7, 100), (100, 7), (3, 5)] {
            let mut cur = from;
            for n in scaling_steps(from, to) {
                assert!(n <= cur * 2 && n >= cur.div_ceil(2), "{cur} → {n}");
                cur = n;
            }
            assert_eq!(cur, to);
        }
        assert_eq!(scaling_steps(1, 1000).len(), 10);
        assert!(scaling_steps(1, 2000).len() > SCALINGS_PER_DAY);
    }
}
