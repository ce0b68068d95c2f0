//! IAM roles: the delivery roles (assumed by Firehose) and the host roles (assumed by EC2).
//!
//! - Every role of a stack lives under the stack's IAM path (`/streamstack/{stack}/`), so one
//!   paginated `ListRoles(PathPrefix)` finds them all, including roles no longer in the spec.
//! - Read: `GetRole` + `ListRoleTags` + `ListRolePolicies`/`GetRolePolicy`. IAM returns policy
//!   documents URL-encoded; they are decoded and compared as JSON values (key order and
//!   whitespace do not matter).
//! - In place: trust policy, inline policies, tags. Managed policies are not part of the model;
//!   any attached out of band are detached on delete (DeleteRole requires it, aws-domain.md §4.6).
//! - No waiting: IAM propagation is absorbed by the consumers' retries (Firehose, EC2).

use std::borrow::Cow;
use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use futures::future::try_join_all;
use futures::future::BoxFuture;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    complete_iam_names, owned_by, tag_delta, tagged_address, Cx, Live, Render, Rendered,
    ResourceKind,
};
use crate::aws::Ctx;
use crate::model::{Address, Kind, Model, Props, Resource};
use crate::{Error, Result};

/// The role a host's instance profile carries (assumed by EC2).
pub const HOST_ROLE: Kind = Kind::new("host_role");
/// The role Firehose assumes for a delivery.
pub const DELIVERY_ROLE: Kind = Kind::new("delivery_role");

/// The two kinds a role can serve.
const KINDS: [Kind; 2] = [DELIVERY_ROLE, HOST_ROLE];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleProps {
    pub arn: String,
    pub trust_policy: Value,
    /// Inline policies by name (streamstack puts exactly one, `model::INLINE_POLICY_NAME`).
    pub inline_policies: BTreeMap<String, Value>,
}

/// Trust and inline policies change in place; only a name change replaces (a new address).
pub struct Roles;

impl ResourceKind for Roles {
    fn kinds(&self) -> &'static [Kind] {
        &KINDS
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        // Role names are unique per account, compared case-insensitively.
        Some(("IAM role", true))
    }
    lifecycle_from_module_fns!();
    fn cloudformation(
        &self,
        r: &Resource,
        cfn: &crate::cfn::Cfn,
    ) -> Option<crate::cfn::CfnResource> {
        let p = r.props.get::<RoleProps>()?;
        let id = cfn.logical_id(&r.address);
        let props = json!({
            "RoleName": r.name,
            "Path": cfn.model().env.iam_path,
            "Description": format!("streamstack {}: {}", cfn.model().stack, r.address),
            "AssumeRolePolicyDocument": p.trust_policy,
            "Tags": crate::cfn::tags(&r.tags),
        });
        let mut res = crate::cfn::CfnResource::new("AWS::IAM::Role", props).output(
            "Arn",
            Value::String(p.arn.clone()),
            "The role's ARN",
        );
        // Each inline policy as an AWS::IAM::Policy on the role (the same inline policy to
        // IAM). Not the role's Policies property: moto's CloudFormation stores those as Python
        // text, which no reader can parse; AWS::IAM::Policy it stores as JSON.
        for (name, doc) in &p.inline_policies {
            let suffix: String = name
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
                .collect();
            res.extra.insert(
                format!("Policy{suffix}"),
                json!({
                    "Type": "AWS::IAM::Policy",
                    "Properties": {
                        "PolicyName": name,
                        "PolicyDocument": doc,
                        "Roles": [{"Ref": id}],
                    },
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
        Box::pin(async move { Ok(BTreeMap::from([("arn".to_string(), live.id.clone())])) })
    }
    fn render(&self, r: &Resource, what: Render) -> Option<Rendered> {
        let p = r.props.get::<RoleProps>()?;
        (what == Render::Policies).then(|| Rendered {
            host: (r.address.kind == HOST_ROLE).then(|| r.address.key.clone()),
            body: json!({
                "address": r.address.to_string(),
                "name": r.name,
                "arn": p.arn,
                "trust_policy": p.trust_policy,
                "inline_policies": p.inline_policies,
            }),
        })
    }
}

/// Every role this stack has or wants: those under the stack's IAM path, plus any role with the
/// name of a desired one (a same-named role elsewhere comes back with `ours: false`).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let mut names = list_names(cx, Some(&cx.env.iam_path)).await?;
    let wanted: Vec<&str> = KINDS
        .iter()
        .flat_map(|k| desired.of_kind(*k))
        .map(|r| r.name.as_str())
        .collect();
    complete_iam_names(cx, &mut names, &wanted, || list_names(cx, None)).await?;
    // GetAccountAuthorizationDetails answers with each role's tags, trust policy and inline
    // policies, where reading a role alone takes three calls (GetRole, ListRolePolicies,
    // GetRolePolicy; one when only deleting). Many roles (a classroom): every page of it. Two
    // or more roles read in full (a lab): its first page, 1,000 roles of the account, and
    // whatever of the stack's is not on it alone.
    let pages = if names.len() >= BULK_READ_FROM {
        Some(usize::MAX)
    } else if names.len() >= 2 && cx.reads_settings() {
        Some(1)
    } else {
        None
    };
    let mut details = match pages {
        Some(pages) => account_role_details(cx, pages).await?,
        None => BTreeMap::new(),
    };
    let found = try_join_all(names.iter().map(|n| {
        let detail = details.remove(n);
        async move {
            match detail {
                Some(d) => Ok(live_from_detail(cx, d, desired)),
                None => read(cx, n, desired).await,
            }
        }
    }))
    .await?;
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

/// From how many roles discovery reads them all with one GetAccountAuthorizationDetails.
const BULK_READ_FROM: usize = 8;

/// The roles of the account on the first `pages` pages of GetAccountAuthorizationDetails, with
/// their tags, trust policy and inline policies, by name; empty when the caller may not call it
/// (then each role is read alone).
async fn account_role_details(
    cx: &Cx,
    pages: usize,
) -> Result<BTreeMap<String, aws_sdk_iam::types::RoleDetail>> {
    let mut out = BTreeMap::new();
    let mut marker = None;
    for _ in 0..pages {
        let page = match cx
            .clients
            .iam
            .get_account_authorization_details()
            .filter(aws_sdk_iam::types::EntityType::Role)
            .max_items(1000)
            .set_marker(marker.clone())
            .send()
            .await
            .op("iam:GetAccountAuthorizationDetails")
        {
            Ok(p) => p,
            Err(e) if e.code() == Some("AccessDenied") => {
                tracing::info!("reading roles one by one: {}", e.message());
                return Ok(BTreeMap::new());
            }
            Err(e) => return Err(e),
        };
        for r in page.role_detail_list.unwrap_or_default() {
            if let Some(name) = r.role_name.clone() {
                out.insert(name, r);
            }
        }
        marker = page.marker.filter(|_| page.is_truncated);
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

/// A role as GetAccountAuthorizationDetails describes it; `None` without a name or ARN.
fn live_from_detail(cx: &Cx, d: aws_sdk_iam::types::RoleDetail, desired: &Model) -> Option<Live> {
    let name = d.role_name?;
    let arn = d.arn?;
    let tags: BTreeMap<String, String> = d
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    let trust_policy = d
        .assume_role_policy_document
        .as_deref()
        .map(decode_policy)
        .unwrap_or(Value::Null);
    let inline_policies = d
        .role_policy_list
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| Some((p.policy_name?, decode_policy(&p.policy_document?))))
        .collect();
    Some(live(
        cx,
        name,
        arn,
        tags,
        trust_policy,
        inline_policies,
        desired,
    ))
}

/// A role as found, from whichever reads found it.
fn live(
    cx: &Cx,
    name: String,
    arn: String,
    tags: BTreeMap<String, String>,
    trust_policy: Value,
    inline_policies: BTreeMap<String, Value>,
    desired: &Model,
) -> Live {
    let address = role_address(&name, &tags, desired);
    Live {
        broken: None,
        created: None,
        ours: owned_by(&tags, &cx.stack),
        id: arn.clone(),
        resource: Resource {
            address,
            name,
            tags,
            depends_on: Default::default(),
            props: Props::new(RoleProps {
                arn,
                trust_policy,
                inline_policies,
            }),
        },
    }
}

/// Role names under `path` (every role of the account without one).
async fn list_names(cx: &Cx, path: Option<&str>) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut marker = None;
    loop {
        let out = cx
            .clients
            .iam
            .list_roles()
            .set_path_prefix(path.map(str::to_string))
            .set_marker(marker.clone())
            .send()
            .await
            .op("iam:ListRoles")?;
        names.extend(
            out.roles
                .into_iter()
                .filter(|r| path.is_none_or(|p| r.path.starts_with(p)))
                .map(|r| r.role_name),
        );
        marker = out.marker.filter(|_| out.is_truncated);
        if marker.is_none() {
            break;
        }
    }
    Ok(names)
}

/// Decodes a policy document as IAM returns it (URL-encoded JSON). A document that is not JSON
/// is kept as a string, so that it differs from any desired document.
pub fn decode_policy(raw: &str) -> Value {
    let text: Cow<str> = if raw.trim_start().starts_with('{') {
        Cow::Borrowed(raw)
    } else {
        percent_decode_str(raw).decode_utf8_lossy()
    };
    serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
}

/// Which address a found role answers to: the desired role of that name (of either role kind),
/// else its `streamstack:address` tag, else a guess from the derived-name suffix.
fn role_address(name: &str, tags: &BTreeMap<String, String>, desired: &Model) -> Address {
    KINDS
        .iter()
        .flat_map(|k| desired.of_kind(*k))
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .map(|r| r.address.clone())
        .or_else(|| KINDS.iter().find_map(|k| tagged_address(tags, *k)))
        .unwrap_or_else(|| {
            let kind = if name.ends_with("-firehose") {
                DELIVERY_ROLE
            } else {
                HOST_ROLE
            };
            Address::new(kind, name)
        })
}

/// Every tag of role `name` (ListRoleTags, all pages).
pub(crate) async fn tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = cx
            .clients
            .iam
            .list_role_tags()
            .role_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .op("iam:ListRoleTags")?;
        for t in page.tags {
            out.insert(t.key, t.value);
        }
        marker = page.marker.filter(|_| page.is_truncated);
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

async fn inline_policy_names(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let page = cx
            .clients
            .iam
            .list_role_policies()
            .role_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .op("iam:ListRolePolicies")?;
        names.extend(page.policy_names);
        marker = page.marker.filter(|_| page.is_truncated);
        if marker.is_none() {
            break;
        }
    }
    Ok(names)
}

async fn inline_policies(cx: &Cx, name: &str) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for policy in inline_policy_names(cx, name).await? {
        match cx
            .clients
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(&policy)
            .send()
            .await
            .op("iam:GetRolePolicy")
        {
            Ok(o) => {
                out.insert(policy, decode_policy(&o.policy_document));
            }
            // Deleted between the list and the get.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reads one role by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let out = match cx
        .clients
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .op("iam:GetRole")
    {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(role) = out.role else {
        return Ok(None);
    };
    let name = role.role_name;
    // GetRole answers with the role's tags (all of them: a role has at most 50); ListRoleTags
    // only when an endpoint leaves them out.
    let tags = match role.tags {
        Some(t) if !t.is_empty() => t.into_iter().map(|t| (t.key, t.value)).collect(),
        _ => tags(cx, &name).await?,
    };
    let trust_policy = role
        .assume_role_policy_document
        .as_deref()
        .map(decode_policy)
        .unwrap_or(Value::Null);
    // Deleting lists the policies itself, at the time it deletes them.
    let inline_policies = if cx.reads_settings() {
        inline_policies(cx, &name).await?
    } else {
        BTreeMap::new()
    };
    Ok(Some(live(
        cx,
        name,
        role.arn,
        tags,
        trust_policy,
        inline_policies,
        desired,
    )))
}

fn props(r: &Resource) -> Result<&RoleProps> {
    r.props
        .get::<RoleProps>()
        .ok_or_else(|| Error::Internal(format!("{} has no RoleProps", r.address)))
}

fn iam_tags(op: &str, tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Internal(format!("{}: {e}", op)))
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props(r)?;
    let created = cx
        .clients
        .iam
        .create_role()
        .role_name(&r.name)
        .path(&cx.env.iam_path)
        .assume_role_policy_document(p.trust_policy.to_string())
        .description(format!("streamstack {}: {}", cx.stack, r.address))
        .set_tags(Some(iam_tags("iam:CreateRole", &r.tags)?))
        .send()
        .await
        .op("iam:CreateRole");
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
    for (name, doc) in &p.inline_policies {
        put_policy(cx, &r.name, name, doc).await?;
    }
    Ok(())
}

async fn put_policy(cx: &Cx, role: &str, name: &str, doc: &Value) -> Result<()> {
    cx.clients
        .iam
        .put_role_policy()
        .role_name(role)
        .policy_name(name)
        .policy_document(doc.to_string())
        .send()
        .await
        .op("iam:PutRolePolicy")
        .map(|_| ())
}

async fn set_tags(cx: &Cx, r: &Resource, live: &BTreeMap<String, String>) -> Result<()> {
    let (remove, set) = tag_delta(&r.tags, live);
    let iam = &cx.clients.iam;
    if !remove.is_empty() {
        iam.untag_role()
            .role_name(&r.name)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .op("iam:UntagRole")?;
    }
    if !set.is_empty() {
        iam.tag_role()
            .role_name(&r.name)
            .set_tags(Some(iam_tags("iam:TagRole", &set)?))
            .send()
            .await
            .op("iam:TagRole")?;
    }
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props(desired)?;
    let lp = props(&live.resource)?;
    let iam = &cx.clients.iam;
    if p.trust_policy != lp.trust_policy {
        iam.update_assume_role_policy()
            .role_name(&desired.name)
            .policy_document(p.trust_policy.to_string())
            .send()
            .await
            .op("iam:UpdateAssumeRolePolicy")?;
    }
    for (name, doc) in &p.inline_policies {
        if lp.inline_policies.get(name) != Some(doc) {
            put_policy(cx, &desired.name, name, doc).await?;
        }
    }
    for name in lp.inline_policies.keys() {
        if !p.inline_policies.contains_key(name) {
            delete_policy(cx, &desired.name, name).await?;
        }
    }
    set_tags(cx, desired, &live.resource.tags).await
}

async fn delete_policy(cx: &Cx, role: &str, name: &str) -> Result<()> {
    gone_ok(
        cx.clients
            .iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .op("iam:DeleteRolePolicy"),
    )
}

/// Ignores "does not exist": the thing to undo is already gone.
fn gone_ok<T>(r: Result<T>) -> Result<()> {
    match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// Deletes the role's inline policies, then the role; if IAM refuses (DeleteConflict), takes it
/// out of its instance profiles and detaches managed policies too, then deletes it again (the
/// order IAM requires, aws-domain.md §4.6).
pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    let iam = &cx.clients.iam;
    // Inline policies are this stack's own; instance profiles and managed policies would be
    // someone else's doing (the stack's profile is deleted before its role): looked for only
    // when DeleteRole says something still hangs on the role.
    let policies = match inline_policy_names(cx, name).await {
        Ok(p) => p,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for policy in policies {
        delete_policy(cx, name, &policy).await?;
    }
    let delete_role = || async {
        gone_ok(
            iam.delete_role()
                .role_name(name)
                .send()
                .await
                .op("iam:DeleteRole"),
        )
    };
    match delete_role().await {
        Err(e) if e.code() == Some("DeleteConflict") => {}
        other => return other,
    }
    // One write at a time: IAM answers concurrent changes to one role with
    // ConcurrentModification.
    let listed = futures::try_join!(
        profiles_of(cx, name),
        inline_policy_names(cx, name),
        attached_policies(cx, name),
    );
    let (profiles, policies, attached) = match listed {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for profile in profiles {
        gone_ok(
            iam.remove_role_from_instance_profile()
                .instance_profile_name(&profile)
                .role_name(name)
                .send()
                .await
                .op("iam:RemoveRoleFromInstanceProfile"),
        )?;
    }
    for policy in policies {
        delete_policy(cx, name, &policy).await?;
    }
    for arn in attached {
        gone_ok(
            iam.detach_role_policy()
                .role_name(name)
                .policy_arn(&arn)
                .send()
                .await
                .op("iam:DetachRolePolicy"),
        )?;
    }
    delete_role().await
}

/// The instance profiles holding role `name`.
async fn profiles_of(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let mut profiles = Vec::new();
    let mut marker = None;
    loop {
        let page = cx
            .clients
            .iam
            .list_instance_profiles_for_role()
            .role_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .op("iam:ListInstanceProfilesForRole")?;
        profiles.extend(
            page.instance_profiles
                .into_iter()
                .map(|p| p.instance_profile_name),
        );
        marker = page.marker.filter(|_| page.is_truncated);
        if marker.is_none() {
            break;
        }
    }
    Ok(profiles)
}

/// The ARNs of the managed policies attached to role `name`.
async fn attached_policies(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let mut attached = Vec::new();
    let mut marker = None;
    loop {
        let page = cx
            .clients
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .op("iam:ListAttachedRolePolicies")?;
        attached.extend(
            page.attached_policies
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.policy_arn),
        );
        marker = page.marker.filter(|_| page.is_truncated);
        if marker.is_none() {
            break;
        }
    }
    Ok(attached)
}
