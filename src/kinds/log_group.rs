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

use futures::future::BoxFuture;
use serde::Serialize;

use super::{address_for, owned_by, read_candidates, tag_delta, Cx, Live, ResourceKind};
use crate::aws::Ctx;
use crate::model::{Kind, Model, Props, Resource};
use crate::{Error, Result};

pub const KIND: Kind = Kind::new("log_group");

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
    fn kinds(&self) -> &'static [Kind] {
        &[KIND]
    }
    // Names are derived one to one from delivery names, which are already checked for
    // uniqueness: a second check would only repeat that error.
    lifecycle_from_module_fns!();
    fn cloudformation(
        &self,
        r: &Resource,
        _cfn: &crate::cfn::Cfn,
    ) -> Option<crate::cfn::CfnResource> {
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
    fn outputs<'a>(
        &'a self,
        _cx: &'a Cx,
        live: &'a Live,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        Box::pin(async move {
            let p = props(&live.resource)?;
            Ok(BTreeMap::from([
                ("arn".to_string(), p.arn.clone()),
                (
                    "retention".to_string(),
                    p.retention_days
                        .map_or("forever".to_string(), |d| format!("{d} days")),
                ),
            ]))
        })
    }
}

fn props(r: &Resource) -> Result<&LogGroupProps> {
    r.props
        .get::<LogGroupProps>()
        .ok_or_else(|| Error::Internal(format!("{} has no LogGroupProps", r.address)))
}

/// The ARN tagging calls take: the group's ARN without the `:*` DescribeLogGroups appends.
fn tagging_arn(arn: &str) -> &str {
    arn.strip_suffix(":*").unwrap_or(arn)
}

/// Every Firehose log group this stack has or wants.
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let mut groups: BTreeMap<String, (String, Option<u32>)> = BTreeMap::new();
    let mut token = None;
    loop {
        let out = cx
            .clients
            .logs
            .describe_log_groups()
            .log_group_name_prefix(PREFIX)
            .set_next_token(token.clone())
            .send()
            .await
            .op("logs:DescribeLogGroups")?;
        for g in out.log_groups.unwrap_or_default() {
            if let Some(name) = g.log_group_name {
                let arn = g.arn.unwrap_or_else(|| cx.env.log_group_arn(&name));
                let retention = g.retention_in_days.map(|d| d.max(0) as u32);
                groups.insert(name, (arn, retention));
            }
        }
        token = out.next_token.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
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
    // The tagging API's listing has the tags of the stack's groups; others are read one by one.
    let tags = match cx.tagged_tags(tagging_arn(arn)).await? {
        Some(tags) => tags,
        None => match cx
            .clients
            .logs
            .list_tags_for_resource()
            .resource_arn(tagging_arn(arn))
            .send()
            .await
            .op("logs:ListTagsForResource")
        {
            Ok(o) => o.tags.unwrap_or_default().into_iter().collect(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        },
    };
    let streams = if !cx.reads_settings() {
        Vec::new() // deleting the group deletes its streams
    } else {
        match cx
            .clients
            .logs
            .describe_log_streams()
            .log_group_name(name)
            .log_stream_name_prefix(ERROR_LOG_STREAM)
            .send()
            .await
            .op("logs:DescribeLogStreams")
        {
            Ok(o) => o.log_streams.unwrap_or_default(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    let log_stream = streams
        .into_iter()
        .filter_map(|s| s.log_stream_name)
        .find(|s| s == ERROR_LOG_STREAM)
        .unwrap_or_default();
    let address = address_for(KIND, name, &tags, desired);
    Ok(Some(Live {
        broken: None,
        created: None,
        ours: owned_by(&tags, &cx.stack),
        id: tagging_arn(arn).to_string(),
        resource: Resource {
            address,
            name: name.to_string(),
            tags,
            depends_on: Default::default(),
            props: Props::new(LogGroupProps {
                arn: tagging_arn(arn).to_string(),
                retention_days,
                log_stream,
            }),
        },
    }))
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    props(r)?;
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
    let p = props(r)?;
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
        match logs
            .create_log_stream()
            .log_group_name(&r.name)
            .log_stream_name(&p.log_stream)
            .send()
            .await
            .op("logs:CreateLogStream")
        {
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    converge(cx, desired, props(&live.resource)?).await?;
    let (remove, set) = tag_delta(&desired.tags, &live.resource.tags);
    let logs = &cx.clients.logs;
    if !remove.is_empty() {
        logs.untag_resource()
            .resource_arn(&live.id)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .op("logs:UntagResource")?;
    }
    if !set.is_empty() {
        logs.tag_resource()
            .resource_arn(&live.id)
            .set_tags(Some(set.into_iter().collect()))
            .send()
            .await
            .op("logs:TagResource")?;
    }
    Ok(())
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    match cx
        .clients
        .logs
        .delete_log_group()
        .log_group_name(&live.resource.name)
        .send()
        .await
        .op("logs:DeleteLogGroup")
    {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}
