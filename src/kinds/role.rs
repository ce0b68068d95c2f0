//! IAM roles: the delivery roles (assumed by Firehose) and the host roles (assumed by EC2).
//!
//! - Every role of a stack lives under the stack's IAM path (`/streamstack/{stack}/`), so one
//!   paginated `ListRoles(PathPrefix)` finds them all, including roles no longer in the spec.
//! - Read: `GetRole` + `ListRoleTags` + `ListRolePolicies`/`GetRolePolicy`. IAM returns policy
//!   documents URL-encoded; they are decoded and compared as JSON values (key order and
//!   whitespace do not matter).
//! - In place: trust policy, inline policies, tags. Managed policies are not part of the model;
//!   any attached out of band are detached on delete (DeleteRole requires it, aws-domain.md §4.6).
//! - GetAccountAuthorizationDetails reads many roles at once (a classroom), never required.
//! - A difference from the desired role is confirmed by targeted re-reads before it is
//!   reported: IAM's reads are eventually consistent (docs/aws-facts.md#iam-propagation).
//! - No waiting: IAM propagation is absorbed by the consumers' retries (Firehose, EC2).

use std::borrow::Cow;
use std::collections::BTreeMap;

use aws_sdk_iam::types::{EntityType, RoleDetail};
use futures::future::try_join_all;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{json, Value};

use super::iam_api;
use super::{
    arn_output, converge_tags, found, gone_ok, owned_by, props, tagged_address, Cx, Live, Render,
    Rendered, ResourceKind,
};
pub use super::{DELIVERY_ROLE, HOST_ROLE};
use crate::aws::Ctx;
use crate::model::{Address, Kind, Model, Props, Resource};
use crate::Result;

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
    lifecycle_from_module_fns!(kinds: &KINDS; outputs, cloudformation);
    fn correct_listing<'a>(
        &'a self,
        clients: &'a crate::aws::Clients,
        _listed: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<super::ListingFix>> {
        iam_api::unlisted(clients, false)
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        // Role names are unique per account, compared case-insensitively.
        Some(("IAM role", true))
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

fn cloudformation(r: &Resource, cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
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
    inline_policies_cfn(&mut res, &id, &p.inline_policies, "Roles");
    Some(res)
}

/// Each inline policy of an IAM principal (`principals`: "Roles" or "Users") as an
/// AWS::IAM::Policy beside it, named `Policy{Name}`.
pub(super) fn inline_policies_cfn(
    res: &mut crate::cfn::CfnResource,
    id: &str,
    policies: &BTreeMap<String, Value>,
    principals: &str,
) {
    for (name, doc) in policies {
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
                    principals: [{"Ref": id}],
                },
            }),
        );
    }
}

/// The role's ARN.
async fn outputs(_cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    Ok(arn_output(live))
}

/// Every role this stack has or wants: those under the stack's IAM path, plus any role with the
/// name of a desired one (a same-named role elsewhere comes back with `ours: false`).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let wanted: Vec<&str> = KINDS
        .iter()
        .flat_map(|k| desired.of_kind(*k))
        .map(|r| r.name.as_str())
        .collect();
    let names = iam_api::names(cx, &wanted, |path| list_names(cx, path)).await?;
    // GetAccountAuthorizationDetails answers with each role's tags, trust policy and inline
    // policies (of every role in the account), where reading a role alone takes three calls
    // (GetRole, ListRolePolicies, GetRolePolicy; one when only deleting), made concurrently.
    // Only many roles (a classroom) are read with it; it is never required (without the
    // permission, each role is read alone).
    let mut details = if names.len() >= BULK_READ_FROM && cx.reads_settings() {
        account_role_details(cx, usize::MAX).await?
    } else {
        BTreeMap::new()
    };
    let found = try_join_all(names.iter().map(|n| {
        let detail = details.remove(n);
        async move {
            let found = match detail {
                Some(d) => live_from_detail(cx, d, desired),
                None => read(cx, n, desired).await?,
            };
            match found {
                Some(live) => confirmed(cx, live, desired).await.map(Some),
                None => Ok(None),
            }
        }
    }))
    .await?;
    Ok(iam_api::keep(found, &wanted))
}

/// Pauses before each targeted re-read that confirms a difference (see [`confirmed`]).
const CONFIRM_PAUSES_MS: [u64; 4] = [250, 500, 1000, 2000];

/// IAM is eventually consistent: a read soon after a change may still answer the document
/// before it (docs/aws-facts.md#iam-propagation), and GetAccountAuthorizationDetails answers from a snapshot. So a trust or inline policy of
/// the stack's role that differs from the desired one is read again alone (GetRole,
/// GetRolePolicy), a few times over about four seconds, before the difference is reported: an
/// apply's own write seen late costs these reads, never an update.
async fn confirmed(cx: &Cx, mut live: Live, desired: &Model) -> Result<Live> {
    let want = match desired.get(live.address()) {
        Some(r) if live.ours && cx.reads_settings() => props::<RoleProps>(r)?,
        _ => return Ok(live),
    };
    let name = live.resource.name.clone();
    for pause in CONFIRM_PAUSES_MS {
        let mut have = props::<RoleProps>(&live.resource)?.clone();
        let trust_differs = have.trust_policy != want.trust_policy;
        // A policy the apply wrote, changed or deleted may each still read as before.
        let differing: Vec<String> = want
            .inline_policies
            .keys()
            .chain(have.inline_policies.keys())
            .filter(|n| have.inline_policies.get(*n) != want.inline_policies.get(*n))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !trust_differs && differing.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        if trust_differs {
            if let Some(role) = get_role(cx, &name).await? {
                have.trust_policy = trust_policy(&role);
            }
        }
        for policy in differing {
            match get_policy(cx, &name, &policy).await? {
                Some(doc) => have.inline_policies.insert(policy, doc),
                None => have.inline_policies.remove(&policy),
            };
        }
        live.resource.props = Props::new(have);
    }
    Ok(live)
}

/// From how many roles discovery reads them all with one GetAccountAuthorizationDetails.
const BULK_READ_FROM: usize = 8;

/// The roles of the account on the first `most` pages of GetAccountAuthorizationDetails, with
/// their tags, trust policy and inline policies, by name; empty when the caller may not call it
/// (then each role is read alone).
async fn account_role_details(cx: &Cx, most: usize) -> Result<BTreeMap<String, RoleDetail>> {
    let iam = &cx.clients.iam;
    let request = iam
        .get_account_authorization_details()
        .filter(EntityType::Role);
    let op = "iam:GetAccountAuthorizationDetails";
    let listed = iam_api::pages!(op, most: most, request.clone().max_items(1000), |out| {
        out.role_detail_list.unwrap_or_default()
    })
    .await;
    let details = match listed {
        Ok(d) => d,
        Err(e) if e.code() == Some("AccessDenied") => {
            tracing::info!("reading roles one by one: {}", e.message());
            return Ok(BTreeMap::new());
        }
        Err(e) => return Err(e),
    };
    Ok(details
        .into_iter()
        .filter_map(|r| Some((r.role_name.clone()?, r)))
        .collect())
}

/// A role as GetAccountAuthorizationDetails describes it; `None` without a name or ARN.
fn live_from_detail(cx: &Cx, d: RoleDetail, desired: &Model) -> Option<Live> {
    let name = d.role_name?;
    let arn = d.arn?;
    let tags = iam_api::tag_map(d.tags.unwrap_or_default());
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
    let props = RoleProps {
        arn,
        trust_policy,
        inline_policies,
    };
    Some(live(cx, name, tags, props, desired))
}

/// A role as found, from whichever reads found it.
fn live(
    cx: &Cx,
    name: String,
    tags: BTreeMap<String, String>,
    props: RoleProps,
    desired: &Model,
) -> Live {
    let address = role_address(&name, &tags, desired);
    let id = props.arn.clone();
    Live::new(
        id,
        owned_by(&tags, &cx.stack),
        address,
        name,
        tags,
        Props::new(props),
    )
}

/// Role names under `path` (every role of the account without one).
async fn list_names(cx: &Cx, path: Option<String>) -> Result<Vec<String>> {
    let request = cx.clients.iam.list_roles().set_path_prefix(path.clone());
    let roles = iam_api::pages!("iam:ListRoles", request.clone(), |out| out.roles).await?;
    Ok(iam_api::names_under(path.as_deref(), roles, |r| {
        (r.path, r.role_name)
    }))
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

/// The names of role `name`'s inline policies.
async fn inline_policy_names(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let request = cx.clients.iam.list_role_policies().role_name(name);
    iam_api::pages!("iam:ListRolePolicies", request.clone(), |out| out
        .policy_names)
    .await
}

async fn inline_policies(cx: &Cx, name: &str) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for policy in inline_policy_names(cx, name).await? {
        // None: deleted between the list and the get.
        if let Some(doc) = get_policy(cx, name, &policy).await? {
            out.insert(policy, doc);
        }
    }
    Ok(out)
}

/// One inline policy's document (GetRolePolicy); `None` if the role has no such policy.
async fn get_policy(cx: &Cx, role: &str, policy: &str) -> Result<Option<Value>> {
    let call = cx.clients.iam.get_role_policy().role_name(role);
    let got = call.policy_name(policy).send().await;
    let out = found(got.op("iam:GetRolePolicy"))?;
    Ok(out.map(|o| decode_policy(&o.policy_document)))
}

/// GetRole; `None` if there is no such role.
async fn get_role(cx: &Cx, name: &str) -> Result<Option<aws_sdk_iam::types::Role>> {
    let got = cx.clients.iam.get_role().role_name(name).send().await;
    Ok(found(got.op("iam:GetRole"))?.and_then(|o| o.role))
}

/// A role's trust policy, decoded (`null` when the answer has none).
fn trust_policy(role: &aws_sdk_iam::types::Role) -> Value {
    role.assume_role_policy_document
        .as_deref()
        .map(decode_policy)
        .unwrap_or(Value::Null)
}

/// Reads one role by name; `None` if it does not exist.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let Some(role) = get_role(cx, name).await? else {
        return Ok(None);
    };
    let trust_policy = trust_policy(&role);
    let name = role.role_name;
    // GetRole answers with the role's tags (all of them: a role has at most 50); ListRoleTags
    // only when an endpoint leaves them out.
    let tags = match role.tags {
        Some(t) if !t.is_empty() => iam_api::tag_map(t),
        _ => iam_api::role_tags(cx, &name).await?,
    };
    // Deleting lists the policies itself, at the time it deletes them.
    let inline_policies = if cx.reads_settings() {
        inline_policies(cx, &name).await?
    } else {
        BTreeMap::new()
    };
    let props = RoleProps {
        arn: role.arn,
        trust_policy,
        inline_policies,
    };
    Ok(Some(live(cx, name, tags, props, desired)))
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props::<RoleProps>(r)?;
    let tags = iam_api::tags("iam:CreateRole", &r.tags)?;
    let call = cx.clients.iam.create_role().role_name(&r.name);
    let call = call
        .path(&cx.env.iam_path)
        .assume_role_policy_document(p.trust_policy.to_string())
        .description(format!("streamstack {}: {}", cx.stack, r.address));
    let created = call.set_tags(Some(tags)).send().await.op("iam:CreateRole");
    let read = || read(cx, &r.name, desired);
    let update = |live: Live| async move { update(cx, r, &live).await };
    if iam_api::created(created, read, update).await? {
        for (name, doc) in &p.inline_policies {
            put_policy(cx, &r.name, name, doc).await?;
        }
    }
    Ok(())
}

async fn put_policy(cx: &Cx, role: &str, name: &str, doc: &Value) -> Result<()> {
    let call = cx
        .clients
        .iam
        .put_role_policy()
        .role_name(role)
        .policy_name(name);
    let call = call.policy_document(doc.to_string());
    call.send().await.done("iam:PutRolePolicy")
}

async fn set_tags(cx: &Cx, r: &Resource, live: &BTreeMap<String, String>) -> Result<()> {
    let iam = &cx.clients.iam;
    let untag = untag!("iam:UntagRole", iam.untag_role().role_name(&r.name));
    let tag = |set| async move {
        let call = iam.tag_role().role_name(&r.name);
        let call = call.set_tags(Some(iam_api::tags("iam:TagRole", &set)?));
        call.send().await.done("iam:TagRole")
    };
    converge_tags(&r.tags, live, untag, tag).await
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props::<RoleProps>(desired)?;
    let lp = props::<RoleProps>(&live.resource)?;
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

/// Deletes the role's inline policies, then the role; if IAM refuses (DeleteConflict), takes it
/// out of its instance profiles and detaches managed policies too, then deletes it again (the
/// order IAM requires, aws-domain.md §4.6).
pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    // Inline policies are this stack's own; instance profiles and managed policies would be
    // someone else's doing (the stack's profile is deleted before its role): looked for only
    // when DeleteRole says something still hangs on the role.
    let Some(policies) = found(inline_policy_names(cx, name).await)? else {
        return Ok(());
    };
    for policy in policies {
        delete_policy(cx, name, &policy).await?;
    }
    let delete_role = || async {
        let call = cx.clients.iam.delete_role().role_name(name);
        gone_ok(call.send().await.op("iam:DeleteRole"))
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
    let Some((profiles, policies, attached)) = found(listed)? else {
        return Ok(());
    };
    detach_all(cx, name, &profiles, &policies, &attached).await?;
    delete_role().await
}

/// Takes role `name` out of `profiles`, deletes its inline `policies` and detaches the managed
/// policies `attached`, one at a time; what is already gone is skipped.
async fn detach_all(
    cx: &Cx,
    name: &str,
    profiles: &[String],
    policies: &[String],
    attached: &[String],
) -> Result<()> {
    let iam = &cx.clients.iam;
    for profile in profiles {
        let call = iam.remove_role_from_instance_profile();
        let call = call.instance_profile_name(profile).role_name(name);
        gone_ok(call.send().await.op("iam:RemoveRoleFromInstanceProfile"))?;
    }
    for policy in policies {
        delete_policy(cx, name, policy).await?;
    }
    for arn in attached {
        let call = iam.detach_role_policy().role_name(name).policy_arn(arn);
        gone_ok(call.send().await.op("iam:DetachRolePolicy"))?;
    }
    Ok(())
}

/// The instance profiles holding role `name`.
async fn profiles_of(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let request = cx.clients.iam.list_instance_profiles_for_role();
    let request = request.role_name(name);
    let op = "iam:ListInstanceProfilesForRole";
    let profiles = iam_api::pages!(op, request.clone(), |out| out.instance_profiles).await?;
    Ok(profiles
        .into_iter()
        .map(|p| p.instance_profile_name)
        .collect())
}

/// The ARNs of the managed policies attached to role `name`.
async fn attached_policies(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let request = cx.clients.iam.list_attached_role_policies().role_name(name);
    let attached = iam_api::pages!("iam:ListAttachedRolePolicies", request.clone(), |out| {
        out.attached_policies.unwrap_or_default()
    })
    .await?;
    Ok(attached.into_iter().filter_map(|p| p.policy_arn).collect())
}
