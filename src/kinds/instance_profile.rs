//! IAM instance profiles: the one-role wrapper EC2 needs to hand a host role to an instance.
//!
//! - Every profile of a stack lives under the stack's IAM path, like its roles.
//! - Read: `GetInstanceProfile` (role and tags). moto does not implement
//!   `ListInstanceProfileTags`, and AWS returns the tags with the profile anyway.
//! - `ListInstanceProfiles` ignores `PathPrefix` on moto: the path is filtered here too.
//! - In place: the role (remove the old one, add the new one: a profile holds at most one) and
//!   tags. Only a role that is attached is removed: moto answers removing another with HTTP 500.
//! - `AddRoleToInstanceProfile` right after `CreateRole` can meet IAM's eventual consistency
//!   ("role cannot be found"); it is retried for the IAM propagation time.

use std::collections::BTreeMap;

use aws_sdk_iam::operation::get_instance_profile::GetInstanceProfileOutput;
use aws_sdk_iam::types::InstanceProfile;
use futures::future::try_join_all;

use serde::Serialize;

use super::iam_api;
pub use super::INSTANCE_PROFILE as KIND;
use super::{
    address_for, arn_output, converge_tags, found, gone_ok, owned_by, props, retry, Cx, Live,
    ResourceKind, HOST_ROLE,
};
use crate::aws::Ctx;
use crate::model::{Kind, Model, Props, Resource, TAG_ADDRESS};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceProfileProps {
    pub arn: String,
    pub role_name: String,
}

/// The role and tags change in place; only a name change replaces (a new address).
pub struct InstanceProfiles;

impl ResourceKind for InstanceProfiles {
    lifecycle_from_module_fns!(kinds: &[KIND]; outputs, cloudformation);
    fn correct_listing<'a>(
        &'a self,
        clients: &'a crate::aws::Clients,
        _listed: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<super::ListingFix>> {
        iam_api::unlisted(clients, true)
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("instance profile", true))
    }
    fn uses(&self, live: &Resource) -> Vec<(Kind, String)> {
        live.props
            .get::<InstanceProfileProps>()
            .filter(|p| !p.role_name.is_empty())
            .map(|p| vec![(HOST_ROLE, p.role_name.clone())])
            .unwrap_or_default()
    }
}

fn cloudformation(r: &Resource, cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
    let p = r.props.get::<InstanceProfileProps>()?;
    let role = cfn
        .dependency(r, HOST_ROLE)
        .map(|a| serde_json::json!({"Ref": cfn.logical_id(&a)}))
        .unwrap_or_else(|| serde_json::Value::String(p.role_name.clone()));
    let props = serde_json::json!({
        "InstanceProfileName": r.name,
        "Path": cfn.model().env.iam_path,
        "Roles": [role],
    });
    Some(crate::cfn::CfnResource::new(
        "AWS::IAM::InstanceProfile",
        props,
    ))
}

/// The profile's ARN.
async fn outputs(_cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    Ok(arn_output(live))
}

/// Every profile this stack has or wants: those under the stack's IAM path, plus any profile
/// with the name of a desired one (elsewhere and untagged: `ours: false`).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let wanted: Vec<&str> = desired.of_kind(KIND).map(|r| r.name.as_str()).collect();
    let names = iam_api::names(cx, &wanted, |path| list_names(cx, path)).await?;
    let found = try_join_all(names.iter().map(|n| read(cx, n, desired))).await?;
    Ok(iam_api::keep(found, &wanted))
}

/// Profile names under `path` (every profile of the account without one).
async fn list_names(cx: &Cx, path: Option<String>) -> Result<Vec<String>> {
    let request = cx
        .clients
        .iam
        .list_instance_profiles()
        .set_path_prefix(path.clone());
    let op = "iam:ListInstanceProfiles";
    let profiles = iam_api::pages!(op, request.clone(), |out| out.instance_profiles).await?;
    let path_and_name = |p: InstanceProfile| (p.path, p.instance_profile_name);
    Ok(iam_api::names_under(
        path.as_deref(),
        profiles,
        path_and_name,
    ))
}

/// GetInstanceProfile; `None` if there is no such profile.
async fn get(cx: &Cx, name: &str) -> Result<Option<GetInstanceProfileOutput>> {
    let iam = &cx.clients.iam;
    let call = iam.get_instance_profile().instance_profile_name(name);
    found(call.send().await.op("iam:GetInstanceProfile"))
}

/// Reads one profile by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let Some(p) = get(cx, name).await?.and_then(|o| o.instance_profile) else {
        return Ok(None);
    };
    let mut tags = iam_api::tag_map(p.tags.unwrap_or_default());
    let name = p.instance_profile_name;
    let role_name = p
        .roles
        .into_iter()
        .next()
        .map(|r| r.role_name)
        .unwrap_or_default();
    let mut ours = owned_by(&tags, &cx.stack);
    if !ours && tags.is_empty() && p.path == cx.env.iam_path && !role_name.is_empty() {
        // CloudFormation cannot tag an instance profile (AWS::IAM::InstanceProfile has no
        // Tags): one under this stack's own IAM path that holds this stack's role is ours, and
        // carries the role's stack tags.
        if let Some(role_tags) = found(iam_api::role_tags(cx, &role_name).await)? {
            if owned_by(&role_tags, &cx.stack) {
                ours = true;
                tags = role_tags;
                tags.remove(TAG_ADDRESS);
                let address = address_for(KIND, &name, &tags, desired);
                tags.insert(TAG_ADDRESS.to_string(), address.to_string());
            }
        }
    }
    let address = address_for(KIND, &name, &tags, desired);
    let props = Props::new(InstanceProfileProps {
        arn: p.arn.clone(),
        role_name,
    });
    Ok(Some(Live::new(p.arn, ours, address, name, tags, props)))
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props::<InstanceProfileProps>(r)?;
    let tags = iam_api::tags("iam:CreateInstanceProfile", &r.tags)?;
    let call = cx.clients.iam.create_instance_profile();
    let call = call.instance_profile_name(&r.name).path(&cx.env.iam_path);
    let created = call.set_tags(Some(tags)).send().await;
    let created = created.op("iam:CreateInstanceProfile");
    let read = || read(cx, &r.name, desired);
    let update = |live: Live| async move { update(cx, r, &live).await };
    if iam_api::created(created, read, update).await? && !p.role_name.is_empty() {
        add_role(cx, r, &p.role_name).await?;
    }
    Ok(())
}

/// A role IAM does not know yet ("The role with name ... cannot be found", moto: "Role ... not
/// found") is usually one created a moment ago.
fn role_not_visible_yet(e: &Error) -> bool {
    e.is_not_found() && e.message().to_ascii_lowercase().contains("role")
}

async fn add_role(cx: &Cx, r: &Resource, role: &str) -> Result<()> {
    retry(
        cx,
        &r.address,
        cx.timeouts.iam_propagation,
        role_not_visible_yet,
        || async {
            cx.clients
                .iam
                .add_role_to_instance_profile()
                .instance_profile_name(&r.name)
                .role_name(role)
                .send()
                .await
                .done("iam:AddRoleToInstanceProfile")
        },
    )
    .await
}

async fn remove_role(cx: &Cx, profile: &str, role: &str) -> Result<()> {
    let call = cx.clients.iam.remove_role_from_instance_profile();
    let call = call.instance_profile_name(profile).role_name(role);
    gone_ok(call.send().await.op("iam:RemoveRoleFromInstanceProfile"))
}

async fn set_tags(cx: &Cx, r: &Resource, live: &BTreeMap<String, String>) -> Result<()> {
    let iam = &cx.clients.iam;
    let request = iam.untag_instance_profile().instance_profile_name(&r.name);
    let untag = untag!("iam:UntagInstanceProfile", request);
    let tag = |set| async move {
        let tags = iam_api::tags("iam:TagInstanceProfile", &set)?;
        let call = iam.tag_instance_profile().instance_profile_name(&r.name);
        let call = call.set_tags(Some(tags));
        call.send().await.done("iam:TagInstanceProfile")
    };
    converge_tags(&r.tags, live, untag, tag).await
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props::<InstanceProfileProps>(desired)?;
    let lp = props::<InstanceProfileProps>(&live.resource)?;
    if p.role_name != lp.role_name {
        if !lp.role_name.is_empty() {
            remove_role(cx, &desired.name, &lp.role_name).await?;
        }
        if !p.role_name.is_empty() {
            add_role(cx, desired, &p.role_name).await?;
        }
    }
    set_tags(cx, desired, &live.resource.tags).await
}

/// Takes out the role it holds (as IAM finds it now), then deletes the profile.
pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    let Some(out) = get(cx, name).await? else {
        return Ok(());
    };
    for role in out.instance_profile.map(|p| p.roles).unwrap_or_default() {
        remove_role(cx, name, &role.role_name).await?;
    }
    let iam = &cx.clients.iam;
    let call = iam.delete_instance_profile().instance_profile_name(name);
    gone_ok(call.send().await.op("iam:DeleteInstanceProfile"))
}
