//! CloudWatch Logs groups that Firehose writes delivery errors to (`deliveries.KEY.error_logging`).
//!
//! - One group per delivery, `/aws/kinesisfirehose/{delivery name}` (the name the console uses),
//!   holding the log stream [`ERROR_LOG_STREAM`] that the delivery's
//!   `CloudWatchLoggingOptions` names. Firehose does not create either: without them, delivery
//!   errors go nowhere.
//! - Read: `DescribeLogGroups` by the prefix `/aws/kinesisfirehose/` (desired names, plus
//!   `{stack}-*` deliveries' groups tagged as ours, i.e. groups removed from the spec), then
//!   `DescribeLogStreams` per candidate, with tags from the stack's Tagging API listing (else
//!   `ListTagsForResource`).
//! - Create: `CreateLogGroup` with the tags (tagged at creation, so an interrupted apply never
//!   leaves an untagged group), `PutRetentionPolicy`, `CreateLogStream`.
//! - In place: retention, the log stream, tags. Replace: only a name change (a new address).

use std::collections::BTreeMap;

use serde::Serialize;

pub use super::LOG_GROUP as KIND;
use super::{
    address_for, already_done, converge_tags, found, gone_ok, owned_by, props, read_candidates, Cx,
    Live, ResourceKind,
};
use crate::aws::{next_token, pages, Ctx};
use crate::model::{Model, Props, Resource};
use crate::{Error, Result};

/// The log stream, inside the delivery's log group, that Firehose writes S3 delivery errors to
/// (the name the console uses).
pub const ERROR_LOG_STREAM: &str = "DestinationDelivery";

/// Where Firehose's own log groups live.
pub const PREFIX: &str = "/aws/kinesisfirehose/";

/// The log group of a delivery.
pub fn name_for(delivery_name: &str) -> String {
    format!("{PREFIX}{delivery_name}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogGroupProps {
    pub arn: String,
    /// How long events are kept; `None` = forever (no retention policy).
    pub retention_days: Option<u32>,
    /// The log stream the delivery writes to ("" when it is missing).
    pub log_stream: String,
}

pub struct LogGroups;

impl ResourceKind for LogGroups {
    lifecycle_from_module_fns!(kinds: &[KIND]; outputs, cloudformation);
    fn cost(&self, r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
        cost_lines(r, usage)
    }
    // Names are derived one to one from delivery names, which are already checked for
    // uniqueness: a second check would only repeat that error.
}

fn cloudformation(r: &Resource, _cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
    let p = r.props.get::<LogGroupProps>()?;
    let mut props = serde_json::json!({
        "LogGroupName": r.name,
        "Tags": crate::cfn::tags(&r.tags),
    });
    if let Some(days) = p.retention_days {
        props["RetentionInDays"] = serde_json::json!(days);
    }
    let id = crate::cfn::logical_id(&r.address);
    let mut res = crate::cfn::CfnResource::new("AWS::Logs::LogGroup", props);
    res.checkov_skips = vec![(
        "CKV_AWS_158",
        "delivery error messages only: CloudWatch Logs' default encryption suffices",
    )];
    if !p.log_stream.is_empty() {
        res.extra.insert(
            "Stream".into(),
            serde_json::json!({
                "Type": "AWS::Logs::LogStream",
                "Properties": {"LogGroupName": {"Ref": id}, "LogStreamName": p.log_stream},
            }),
        );
    }
    Some(res)
}

/// The ARN and how long events are kept.
async fn outputs(_cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    let p = props::<LogGroupProps>(&live.resource)?;
    Ok(BTreeMap::from([
        ("arn".to_string(), p.arn.clone()),
        (
            "retention".to_string(),
            p.retention_days
                .map_or("forever".to_string(), |d| format!("{d} days")),
        ),
    ]))
}

/// The ARN tagging calls take: the group's ARN without the `:*` DescribeLogGroups appends.
fn tagging_arn(arn: &str) -> &str {
    arn.strip_suffix(":*").unwrap_or(arn)
}

/// Every Firehose log group this stack has or wants.
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let listed = pages!(
        "logs:DescribeLogGroups",
        cx.clients
            .logs
            .describe_log_groups()
            .log_group_name_prefix(PREFIX),
        set_next_token,
        |out| (
            out.log_groups.unwrap_or_default(),
            next_token(out.next_token)
        )
    )
    .await?;
    let mut groups: BTreeMap<String, (String, Option<u32>)> = BTreeMap::new();
    for g in listed {
        if let Some(name) = g.log_group_name {
            let arn = g.arn.unwrap_or_else(|| cx.env.log_group_arn(&name));
            let retention = g.retention_in_days.map(|d| d.max(0) as u32);
            groups.insert(name, (arn, retention));
        }
    }
    // Candidates: desired names, and the groups of `{stack}-*` deliveries.
    let stack_prefix = format!("{PREFIX}{}-", cx.stack);
    let listed: Vec<String> = groups.keys().cloned().collect();
    let groups = &groups;
    let tagged: Vec<String> = cx
        .tagged_names(&cx.env.log_group_arn(""))
        .await?
        .into_iter()
        .map(|n| n.strip_suffix(":*").map(str::to_string).unwrap_or(n))
        .collect();
    read_candidates(
        desired,
        KIND,
        &stack_prefix,
        &tagged,
        listed,
        |name| async move {
            let Some((arn, retention)) = groups.get(&name) else {
                return Ok(None);
            };
            read(cx, &name, arn, *retention, desired).await
        },
    )
    .await
}

async fn read(
    cx: &Cx,
    name: &str,
    arn: &str,
    retention_days: Option<u32>,
    desired: &Model,
) -> Result<Option<Live>> {
    let logs = &cx.clients.logs;
    // The tagging API's listing has the tags of the stack's groups; others are read one by one.
    let tags = match cx.tagged_tags(tagging_arn(arn)).await? {
        Some(tags) => tags,
        None => {
            let call = logs.list_tags_for_resource().resource_arn(tagging_arn(arn));
            match found(call.send().await.op("logs:ListTagsForResource"))? {
                Some(o) => o.tags.unwrap_or_default().into_iter().collect(),
                None => return Ok(None),
            }
        }
    };
    let streams = if !cx.reads_settings() {
        Vec::new() // deleting the group deletes its streams
    } else {
        let call = logs.describe_log_streams().log_group_name(name);
        let call = call.log_stream_name_prefix(ERROR_LOG_STREAM);
        match found(call.send().await.op("logs:DescribeLogStreams"))? {
            Some(o) => o.log_streams.unwrap_or_default(),
            None => return Ok(None),
        }
    };
    let log_stream = streams
        .into_iter()
        .filter_map(|s| s.log_stream_name)
        .find(|s| s == ERROR_LOG_STREAM)
        .unwrap_or_default();
    let address = address_for(KIND, name, &tags, desired);
    let props = Props::new(LogGroupProps {
        arn: tagging_arn(arn).to_string(),
        retention_days,
        log_stream,
    });
    let id = tagging_arn(arn).to_string();
    Ok(Some(Live::new(
        id,
        owned_by(&tags, &cx.stack),
        address,
        name.to_string(),
        tags,
        props,
    )))
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    props::<LogGroupProps>(r)?;
    let created = cx
        .clients
        .logs
        .create_log_group()
        .log_group_name(&r.name)
        .set_tags(Some(r.tags.clone().into_iter().collect()))
        .send()
        .await
        .op("logs:CreateLogGroup");
    let live_props = match created {
        Ok(_) => LogGroupProps {
            arn: String::new(),
            retention_days: None,
            log_stream: String::new(),
        },
        // Ours from an earlier run whose answer was lost: converge it. Anything else is not ours.
        Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {
            let live = discover(cx, desired)
                .await?
                .into_iter()
                .find(|l| l.resource.name == r.name);
            match live {
                Some(l) if l.ours => return update(cx, r, &l).await,
                _ => {
                    return Err(Error::resource(
                        &r.address,
                        format!(
                            "log group {} already exists and is not tagged as this stack's; \
                             delete it, or turn error_logging off for this delivery",
                            r.name
                        ),
                    ))
                }
            }
        }
        Err(e) => return Err(e),
    };
    converge(cx, r, &live_props).await
}

/// Brings retention and the log stream from `live` to the desired values.
async fn converge(cx: &Cx, r: &Resource, live: &LogGroupProps) -> Result<()> {
    let p = props::<LogGroupProps>(r)?;
    let logs = &cx.clients.logs;
    if p.retention_days != live.retention_days {
        match p.retention_days {
            Some(days) => {
                logs.put_retention_policy()
                    .log_group_name(&r.name)
                    .retention_in_days(days as i32)
                    .send()
                    .await
                    .op("logs:PutRetentionPolicy")?;
            }
            None => {
                logs.delete_retention_policy()
                    .log_group_name(&r.name)
                    .send()
                    .await
                    .op("logs:DeleteRetentionPolicy")?;
            }
        }
    }
    if !p.log_stream.is_empty() && p.log_stream != live.log_stream {
        let call = logs.create_log_stream().log_group_name(&r.name);
        let created = call.log_stream_name(&p.log_stream).send().await;
        already_done(
            created.op("logs:CreateLogStream"),
            "ResourceAlreadyExistsException",
        )?;
    }
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    converge(cx, desired, props::<LogGroupProps>(&live.resource)?).await?;
    let logs = &cx.clients.logs;
    let request = logs.untag_resource().resource_arn(&live.id);
    let untag = untag!("logs:UntagResource", request);
    let tag = |set: BTreeMap<String, String>| async move {
        let call = logs.tag_resource().resource_arn(&live.id);
        let call = call.set_tags(Some(set.into_iter().collect()));
        call.send().await.done("logs:TagResource")
    };
    converge_tags(&desired.tags, &live.resource.tags, untag, tag).await
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let call = cx.clients.logs.delete_log_group();
    let call = call.log_group_name(&live.resource.name);
    gone_ok(call.send().await.op("logs:DeleteLogGroup"))
}

/// What a log group bills per hour (`crate::cost`): ingestion, and storage of what its
/// retention keeps (30 days when it keeps everything).
fn cost_lines(r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
    use crate::cost::{Line, Price, GB, HOURS_PER_MONTH};
    let days = props::<LogGroupProps>(r)
        .ok()
        .and_then(|p| p.retention_days)
        .unwrap_or(30);
    let gb_per_hour = usage.log_bytes_per_hour / GB;
    vec![
        Line::new("ingestion", Price::LogsIngestGb, gb_per_hour),
        Line::new(
            "storage",
            Price::LogsStorageGbMonth,
            gb_per_hour * 24.0 * f64::from(days) / HOURS_PER_MONTH,
        ),
    ]
}
