//! What both EC2 kinds (hosts and security groups) do with EC2 the same way: tags as EC2 takes
//! and answers them, the filters they find things by, tag changes on an EC2 id, and listing
//! security groups.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, SecurityGroup, Tag};

use super::{converge_tags, Cx};
use crate::aws::{next_token, pages, Ctx};
use crate::model::TAG_STACK;
use crate::Result;

/// Tags as EC2 takes them.
pub fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Tags as EC2 answers them, as a map (a tag without a key is no tag).
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key.clone()?, t.value.clone().unwrap_or_default())))
        .collect()
}

/// A filter on `name` with one value.
pub fn filter(name: impl Into<String>, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Things tagged as the stack's.
pub fn stack_filter(cx: &Cx) -> Filter {
    filter(format!("tag:{TAG_STACK}"), &cx.stack)
}

/// Brings the tags of the EC2 resource `id` from `live` to `desired` (DeleteTags, CreateTags).
pub async fn set_tags(
    cx: &Cx,
    id: &str,
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
) -> Result<()> {
    let ec2 = &cx.clients.ec2;
    let untag = |keys: Vec<String>| async move {
        let keys = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        let call = ec2.delete_tags().resources(id).set_tags(Some(keys));
        call.send().await.done("ec2:DeleteTags")
    };
    let tag = |set: BTreeMap<String, String>| async move {
        let call = ec2.create_tags().resources(id).set_tags(Some(tags(&set)));
        call.send().await.done("ec2:CreateTags")
    };
    converge_tags(desired, live, untag, tag).await
}

/// Every security group matching all of `filters`, every page.
pub async fn security_groups(cx: &Cx, filters: Vec<Filter>) -> Result<Vec<SecurityGroup>> {
    pages!(
        "ec2:DescribeSecurityGroups",
        cx.clients
            .ec2
            .describe_security_groups()
            .set_filters(Some(filters.clone())),
        set_next_token,
        |out| (
            out.security_groups.unwrap_or_default(),
            next_token(out.next_token)
        )
    )
    .await
}
