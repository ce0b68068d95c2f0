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

use aws_sdk_iam::types::Tag;
use futures::future::try_join_all;

use futures::future::BoxFuture;
use serde::Serialize;

use super::{address_for, complete_iam_names, owned_by, retry, tag_delta, Cx, Live, ResourceKind};
use crate::aws::Ctx;
use crate::kinds::role::HOST_ROLE;
use crate::model::{Kind, Model, Props, Resource, TAG_ADDRESS};
use crate::{Error, Result};

pub const KIND: Kind = Kind::new("instance_profile");

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceProfileProps {
    pub arn: String,
    pub role_name: String,
}

/// The role and tags change in place; only a name change replaces (a new address).
pub struct InstanceProfiles;

impl ResourceKind for InstanceProfiles {
    fn kinds(&self) -> &'static [Kind] {
        &[KIND]
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
    lifecycle_from_module_fns!();
    fn cloudformation(
        &self,
        r: &Resource,
        cfn: &crate::cfn::Cfn,
    ) -> Option<crate::cfn::CfnResource> {
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
    fn outputs<'a>(
        &'a self,
        _cx: &'a Cx,
        live: &'a Live,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        Box::pin(async move { Ok(BTreeMap::from([("arn".to_string(), live.id.clone())])) })
    }
}

/// Every profile this stack has or wants: those under the stack's IAM path, plus any profile
/// with the name of a desired one (elsewhere and untagged: `ours: false`).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let mut names = list_names(cx, Some(&cx.env.iam_path)).await?;
    let wanted: Vec<&str> = desired.of_kind(KIND).map(|r| r.name.as_str()).collect();
    complete_iam_names(cx, &mut names, &wanted, || list_names(cx, None)).await?;
    let found = try_join_all(names.iter().map(|n| read(cx, n, desired))).await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter(|l| {
            l.ours
                || wanted
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(&l.resource.name))
        })
        .collect())
}

/// Profile names under `path` (every profile of the account without one). moto ignores
/// PathPrefix, so the path is checked here too.
async fn list_names(cx: &Cx, path: Option<&str>) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut marker = None;
    loop {
        let out = cx
            .clients
            .iam
            .list_instance_profiles()
            .set_path_prefix(path.map(str::to_string))
            .set_marker(marker.clone())
            .send()
            .await
            .op("iam:ListInstanceProfiles")?;
        names.extend(
            out.instance_profiles
                .into_iter()
                .filter(|p| path.is_none_or(|x| p.path.starts_with(x)))
                .map(|p| p.instance_profile_name),
        );
        marker = out.marker.filter(|_| out.is_truncated);
        if marker.is_none() {
            break;
        }
    }
    Ok(names)
}

/// Reads one profile by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let out = match cx
        .clients
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .op("iam:GetInstanceProfile")
    {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(p) = out.instance_profile else {
        return Ok(None);
    };
    let tags: BTreeMap<String, String> = p
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    let name = p.instance_profile_name;
    let role_name = p
        .roles
        .into_iter()
        .next()
        .map(|r| r.role_name)
        .unwrap_or_default();
    let mut tags = tags;
    let mut ours = owned_by(&tags, &cx.stack);
    if !ours && tags.is_empty() && p.path == cx.env.iam_path && !role_name.is_empty() {
        // CloudFormation cannot tag an instance profile (AWS::IAM::InstanceProfile has no
        // Tags): one under this stack's own IAM path that holds this stack's role is ours, and
        // carries the role's stack tags.
        let role_tags = match crate::kinds::role::tags(cx, &role_name).await {
            Ok(t) => Some(t),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if let Some(role_tags) = role_tags {
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
    Ok(Some(Live {
        broken: None,
        created: None,
        ours,
        id: p.arn.clone(),
        resource: Resource {
            address,
            name,
            tags,
            depends_on: Default::default(),
            props: Props::new(InstanceProfileProps {
                arn: p.arn,
                role_name,
            }),
        },
    }))
}

fn props(r: &Resource) -> Result<&InstanceProfileProps> {
    r.props
        .get::<InstanceProfileProps>()
        .ok_or_else(|| Error::Internal(format!("{} has no InstanceProfileProps", r.address)))
}

fn iam_tags(op: &str, tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Internal(format!("{}: {e}", op)))
}

/// Ignores "does not exist": the thing to undo is already gone.
fn gone_ok<T>(r: Result<T>) -> Result<()> {
    match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props(r)?;
    let created = cx
        .clients
        .iam
        .create_instance_profile()
        .instance_profile_name(&r.name)
        .path(&cx.env.iam_path)
        .set_tags(Some(iam_tags("iam:CreateInstanceProfile", &r.tags)?))
        .send()
        .await
        .op("iam:CreateInstanceProfile");
    match created {
        Ok(_) => {}
        // Left over from an interrupted apply: converge it if it is ours.
        Err(e) if e.code() == Some("EntityAlreadyExists") => {
            return match read(cx, &r.name, desired).await? {
                Some(live) if live.ours => update(cx, r, &live).await,
                _ => Err(e),
            };
        }
        Err(e) => return Err(e),
    }
    if !p.role_name.is_empty() {
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
                .op("iam:AddRoleToInstanceProfile")
                .map(|_| ())
        },
    )
    .await
}

async fn remove_role(cx: &Cx, profile: &str, role: &str) -> Result<()> {
    gone_ok(
        cx.clients
            .iam
            .remove_role_from_instance_profile()
            .instance_profile_name(profile)
            .role_name(role)
            .send()
            .await
            .op("iam:RemoveRoleFromInstanceProfile"),
    )
}

async fn set_tags(cx: &Cx, r: &Resource, live: &BTreeMap<String, String>) -> Result<()> {
    let (remove, set) = tag_delta(&r.tags, live);
    let iam = &cx.clients.iam;
    if !remove.is_empty() {
        iam.untag_instance_profile()
            .instance_profile_name(&r.name)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .op("iam:UntagInstanceProfile")?;
    }
    if !set.is_empty() {
        iam.tag_instance_profile()
            .instance_profile_name(&r.name)
            .set_tags(Some(iam_tags("iam:TagInstanceProfile", &set)?))
            .send()
            .await
            .op("iam:TagInstanceProfile")?;
    }
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props(desired)?;
    let lp = props(&live.resource)?;
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
    let iam = &cx.clients.iam;
    let out = match iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .op("iam:GetInstanceProfile")
    {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for role in out.instance_profile.map(|p| p.roles).unwrap_or_default() {
        remove_role(cx, name, &role.role_name).await?;
    }
    gone_ok(
        iam.delete_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .op("iam:DeleteInstanceProfile"),
    )
}
