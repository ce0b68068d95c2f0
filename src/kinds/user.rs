//! IAM users: the identity of an external host's agent (`platform: external`,
//! `credentials: access_key`), which has no instance profile.
//!
//! - Every user of a stack lives under the stack's IAM path (`/streamstack/{stack}/`, as its
//!   roles), tagged as the stack's at creation; one `ListUsers(PathPrefix)` finds them all.
//! - The user holds exactly the host's derived inline policy (`model::INLINE_POLICY_NAME`) and
//!   no managed policy: one attached out of band shows in the plan and is detached.
//! - Its access key is no attribute of the model (a plan never holds it): after a successful
//!   apply, `issue_key` creates one when the user has none, or with `--rotate-keys` a new one,
//!   writes it to the credentials file (`credentials_file`) and only then deletes the old one.
//!   A re-apply never creates a second key. The secret exists only in CreateAccessKey's answer
//!   (whose Debug form the SDK redacts) and in the file.
//! - Deleting: access keys, login profile, inline and managed policies, then the user (the
//!   order IAM requires: DeleteUser fails with DeleteConflict while any is attached).
//! - `check`: the key's age and when and for which service it was last used
//!   (GetAccessKeyLastUsed): the host runs if its agent has used the key.

use std::collections::BTreeMap;

use futures::future::{try_join_all, BoxFuture};
use serde::Serialize;
use serde_json::{json, Value};

use super::credentials_file;
use super::iam_api;
use super::role::decode_policy;
pub use super::HOST_USER as KIND;
use super::{
    converge_tags, found, gone_ok, owned_by, props, tagged_address, CheckRun, Cx, Hop, IssuedKey,
    KeyOptions, Live, Render, Rendered, ResourceKind,
};
use crate::aws::Ctx;
use crate::model::{Address, Model, Props, Resource, IAM_PATH_ROOT, TAG_STACK};
use crate::{Error, Result};

/// What an external host's agent needs on the host: rendered into the agent bundle. Not an
/// attribute of the user (never compared, never read back).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentSetup {
    pub stack: String,
    pub host: String,
    pub region: String,
    /// The credentials profile the agent reads its key from.
    pub profile: String,
    pub agent_json: String,
    /// Directories the agent watches.
    pub directories: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserProps {
    pub arn: String,
    /// Inline policies by name (streamstack puts exactly one).
    pub inline_policies: BTreeMap<String, Value>,
    /// ARNs of attached managed policies (desired: none).
    pub managed_policies: Vec<String>,
    #[serde(skip)]
    pub setup: AgentSetup,
}

impl PartialEq for UserProps {
    fn eq(&self, o: &Self) -> bool {
        self.arn == o.arn
            && self.inline_policies == o.inline_policies
            && self.managed_policies == o.managed_policies
    }
}

pub struct Users;

impl ResourceKind for Users {
    lifecycle_from_module_fns!(kinds: &[KIND]; outputs, check, cloudformation);
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("IAM user", true))
    }
    fn hop_order(&self) -> u8 {
        // Where hosts are: they produce.
        1
    }
    fn correct_listing<'a>(
        &'a self,
        clients: &'a crate::aws::Clients,
        _listed: &'a [String],
    ) -> BoxFuture<'a, Result<super::ListingFix>> {
        Box::pin(async move {
            Ok(super::ListingFix {
                unlisted: of_every_stack(&clients.iam).await?,
                not_leftovers: Vec::new(),
            })
        })
    }
    fn render(&self, r: &Resource, what: Render) -> Option<Rendered> {
        let p = r.props.get::<UserProps>()?;
        let host = Some(r.address.key.clone());
        let body = match what {
            Render::Policies => json!({
                "address": r.address.to_string(),
                "name": r.name,
                "arn": p.arn,
                "inline_policies": p.inline_policies,
            }),
            Render::AgentConfig => Value::String(p.setup.agent_json.clone()),
            Render::AgentBundle => crate::bootstrap::bundle::files(&bundle_input(p)).ok()?,
            Render::UserData => return None,
        };
        Some(Rendered { host, body })
    }
    fn key_due<'a>(
        &'a self,
        cx: &'a Cx,
        r: &'a Resource,
        opts: &'a KeyOptions,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(key_due(cx, r, opts))
    }
    fn issue_key<'a>(
        &'a self,
        cx: &'a Cx,
        r: &'a Resource,
        opts: &'a KeyOptions,
    ) -> BoxFuture<'a, Result<Option<IssuedKey>>> {
        Box::pin(issue_key(cx, r, opts))
    }
}

fn bundle_input(p: &UserProps) -> crate::bootstrap::bundle::BundleInput<'_> {
    let s = &p.setup;
    crate::bootstrap::bundle::BundleInput {
        stack: &s.stack,
        host: &s.host,
        region: &s.region,
        profile: &s.profile,
        agent_json: &s.agent_json,
        directories: &s.directories,
    }
}

/// A user's ARN, as IAM makes it.
pub fn user_arn(env: &crate::model::Env, name: &str) -> String {
    format!(
        "arn:{}:iam::{}:user{}{name}",
        env.partition, env.account_id, env.iam_path
    )
}

fn cloudformation(r: &Resource, cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
    let p = r.props.get::<UserProps>()?;
    let id = cfn.logical_id(&r.address);
    let props = json!({
        "UserName": r.name,
        "Path": cfn.model().env.iam_path,
        "Tags": crate::cfn::tags(&r.tags),
    });
    // No AWS::IAM::AccessKey: its secret would be in the stack (GetAtt SecretAccessKey).
    // docs/cloudformation.md says how to create the key into the credentials file.
    let mut res = crate::cfn::CfnResource::new("AWS::IAM::User", props).output(
        "Arn",
        Value::String(p.arn.clone()),
        "The external host's IAM user (create its access key with aws iam create-access-key)",
    );
    super::role::inline_policies_cfn(&mut res, &id, &p.inline_policies, "Users");
    Some(res)
}

/// The user's ARN and its access key ids (never a secret).
async fn outputs(cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    let mut out = super::arn_output(live);
    let keys = access_keys(cx, &live.resource.name).await?;
    let ids: Vec<String> = keys.into_iter().map(|k| k.0).collect();
    out.insert("access_key_ids".into(), ids.join(", "));
    out.insert(
        "credentials_profile".into(),
        credentials_file::profile_name(&cx.stack, &live.resource.address.key),
    );
    Ok(out)
}

/// For `stacks` and `gc`: the users of every stack (under [`IAM_PATH_ROOT`], tagged
/// `streamstack:stack`), which the Resource Groups Tagging API does not list, as (ARN, tags).
async fn of_every_stack(
    iam: &aws_sdk_iam::Client,
) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    let request = iam.list_users().path_prefix(IAM_PATH_ROOT);
    let users = match iam_api::pages!("iam:ListUsers", request.clone(), |out| out.users).await {
        Err(e) if e.is_access_denied() => {
            tracing::warn!("external hosts' users are not listed: {e}");
            return Ok(Vec::new());
        }
        other => other?,
    };
    let under = users
        .into_iter()
        .filter(|u| u.path.starts_with(IAM_PATH_ROOT));
    let tagged = try_join_all(under.map(|u| async move {
        let request = iam.list_user_tags().user_name(&u.user_name);
        let tags = iam_api::pages!("iam:ListUserTags", request.clone(), |out| out.tags).await;
        Ok::<_, Error>(found(tags)?.map(|t| (u.arn, iam_api::tag_map(t))))
    }))
    .await?;
    Ok(tagged
        .into_iter()
        .flatten()
        .filter(|(_, t)| t.contains_key(TAG_STACK))
        .collect())
}

/// Every user of the stack (under its IAM path), plus any with a desired name elsewhere.
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let wanted: Vec<&str> = desired.of_kind(KIND).map(|r| r.name.as_str()).collect();
    let names = match iam_api::names(cx, &wanted, |path| list_names(cx, path)).await {
        // A stack without external hosts, run by a principal whose policy was rendered for
        // it (no iam:ListUsers): it has no users to find.
        Err(e) if e.is_access_denied() && wanted.is_empty() => {
            tracing::info!("not looking for external hosts' users: {e}");
            return Ok(Vec::new());
        }
        other => other?,
    };
    let found = try_join_all(names.iter().map(|n| read(cx, n, desired))).await?;
    Ok(iam_api::keep(found, &wanted))
}

async fn list_names(cx: &Cx, path: Option<String>) -> Result<Vec<String>> {
    let request = cx.clients.iam.list_users().set_path_prefix(path.clone());
    let users = iam_api::pages!("iam:ListUsers", request.clone(), |out| out.users).await?;
    Ok(iam_api::names_under(path.as_deref(), users, |u| {
        (u.path, u.user_name)
    }))
}

/// Reads one user by name; `None` if there is no such user.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let got = cx.clients.iam.get_user().user_name(name).send().await;
    let Some(user) = found(got.op("iam:GetUser"))?.and_then(|o| o.user) else {
        return Ok(None);
    };
    let name = user.user_name;
    let tags = match user.tags {
        Some(t) if !t.is_empty() => iam_api::tag_map(t),
        _ => user_tags(cx, &name).await?,
    };
    let (inline_policies, managed_policies) = if cx.reads_settings() {
        futures::try_join!(inline_policies(cx, &name), attached_policies(cx, &name))?
    } else {
        (BTreeMap::new(), Vec::new())
    };
    let props = UserProps {
        arn: user.arn.clone(),
        inline_policies,
        managed_policies,
        setup: AgentSetup::default(),
    };
    let address = desired
        .of_kind(KIND)
        .find(|r| r.name.eq_ignore_ascii_case(&name))
        .map(|r| r.address.clone())
        .or_else(|| tagged_address(&tags, KIND))
        .unwrap_or_else(|| Address::new(KIND, &name));
    Ok(Some(Live::new(
        user.arn,
        owned_by(&tags, &cx.stack),
        address,
        name,
        tags,
        Props::new(props),
    )))
}

async fn user_tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    let request = cx.clients.iam.list_user_tags().user_name(name);
    let tags = iam_api::pages!("iam:ListUserTags", request.clone(), |out| out.tags).await?;
    Ok(iam_api::tag_map(tags))
}

async fn inline_policy_names(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let request = cx.clients.iam.list_user_policies().user_name(name);
    iam_api::pages!("iam:ListUserPolicies", request.clone(), |out| out
        .policy_names)
    .await
}

async fn inline_policies(cx: &Cx, name: &str) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for policy in inline_policy_names(cx, name).await? {
        let call = cx.clients.iam.get_user_policy().user_name(name);
        let got = call.policy_name(&policy).send().await;
        if let Some(o) = found(got.op("iam:GetUserPolicy"))? {
            out.insert(policy, decode_policy(&o.policy_document));
        }
    }
    Ok(out)
}

async fn attached_policies(cx: &Cx, name: &str) -> Result<Vec<String>> {
    let request = cx.clients.iam.list_attached_user_policies().user_name(name);
    let attached = iam_api::pages!("iam:ListAttachedUserPolicies", request.clone(), |out| {
        out.attached_policies.unwrap_or_default()
    })
    .await?;
    let mut arns: Vec<String> = attached.into_iter().filter_map(|p| p.policy_arn).collect();
    arns.sort();
    Ok(arns)
}

/// The user's access keys: (id, status, created), oldest first.
async fn access_keys(
    cx: &Cx,
    name: &str,
) -> Result<Vec<(String, String, Option<aws_smithy_types::DateTime>)>> {
    let request = cx.clients.iam.list_access_keys().user_name(name);
    let keys = iam_api::pages!("iam:ListAccessKeys", request.clone(), |out| out
        .access_key_metadata)
    .await?;
    let mut keys: Vec<_> = keys
        .into_iter()
        .filter_map(|k| {
            let status = k.status.map(|s| s.as_str().to_string()).unwrap_or_default();
            Some((k.access_key_id?, status, k.create_date))
        })
        .collect();
    keys.sort_by_key(|k| k.2.map(|d| d.secs()));
    Ok(keys)
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props::<UserProps>(r)?;
    let tags = iam_api::tags("iam:CreateUser", &r.tags)?;
    let call = cx.clients.iam.create_user().user_name(&r.name);
    let call = call.path(&cx.env.iam_path).set_tags(Some(tags));
    let created = call.send().await.op("iam:CreateUser");
    let read = || read(cx, &r.name, desired);
    let update = |live: Live| async move { update(cx, r, &live).await };
    if iam_api::created(created, read, update).await? {
        for (name, doc) in &p.inline_policies {
            put_policy(cx, &r.name, name, doc).await?;
        }
    }
    Ok(())
}

async fn put_policy(cx: &Cx, user: &str, name: &str, doc: &Value) -> Result<()> {
    let call = cx.clients.iam.put_user_policy().user_name(user);
    let call = call.policy_name(name).policy_document(doc.to_string());
    call.send().await.done("iam:PutUserPolicy")
}

async fn delete_policy(cx: &Cx, user: &str, name: &str) -> Result<()> {
    let call = cx.clients.iam.delete_user_policy().user_name(user);
    gone_ok(
        call.policy_name(name)
            .send()
            .await
            .op("iam:DeleteUserPolicy"),
    )
}

async fn detach(cx: &Cx, user: &str, arn: &str) -> Result<()> {
    let call = cx.clients.iam.detach_user_policy().user_name(user);
    gone_ok(call.policy_arn(arn).send().await.op("iam:DetachUserPolicy"))
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props::<UserProps>(desired)?;
    let lp = props::<UserProps>(&live.resource)?;
    let name = &desired.name;
    for (policy, doc) in &p.inline_policies {
        if lp.inline_policies.get(policy) != Some(doc) {
            put_policy(cx, name, policy, doc).await?;
        }
    }
    for policy in lp.inline_policies.keys() {
        if !p.inline_policies.contains_key(policy) {
            delete_policy(cx, name, policy).await?;
        }
    }
    for arn in &lp.managed_policies {
        if !p.managed_policies.contains(arn) {
            detach(cx, name, arn).await?;
        }
    }
    let iam = &cx.clients.iam;
    let untag = untag!("iam:UntagUser", iam.untag_user().user_name(name));
    let tag = |set| async move {
        let call = iam.tag_user().user_name(name);
        let call = call.set_tags(Some(iam_api::tags("iam:TagUser", &set)?));
        call.send().await.done("iam:TagUser")
    };
    converge_tags(&desired.tags, &live.resource.tags, untag, tag).await
}

/// Deletes the user's access keys, login profile, inline and managed policies (one at a
/// time: IAM answers concurrent changes to one user with ConcurrentModification), then the
/// user. Only ever called for a user tagged as the stack's.
pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let name = &live.resource.name;
    let iam = &cx.clients.iam;
    let Some(keys) = found(access_keys(cx, name).await)? else {
        return Ok(());
    };
    for (id, _, _) in keys {
        let call = iam.delete_access_key().user_name(name).access_key_id(&id);
        gone_ok(call.send().await.op("iam:DeleteAccessKey"))?;
    }
    let call = iam.delete_login_profile().user_name(name);
    gone_ok(call.send().await.op("iam:DeleteLoginProfile"))?;
    for policy in found(inline_policy_names(cx, name).await)?.unwrap_or_default() {
        delete_policy(cx, name, &policy).await?;
    }
    for arn in found(attached_policies(cx, name).await)?.unwrap_or_default() {
        detach(cx, name, &arn).await?;
    }
    gone_ok(
        iam.delete_user()
            .user_name(name)
            .send()
            .await
            .op("iam:DeleteUser"),
    )
}

/// Why the apply must hand out a key for `r`: a new user, a user without an active key, or
/// `--rotate-keys`.
pub async fn key_due(cx: &Cx, r: &Resource, opts: &KeyOptions) -> Result<Option<String>> {
    let got = cx.clients.iam.get_user().user_name(&r.name).send().await;
    if found(got.op("iam:GetUser"))?.is_none() {
        return Ok(Some(format!("{} is created with an access key", r.address)));
    }
    if opts.rotate {
        return Ok(Some(format!(
            "--rotate-keys replaces {}'s access key",
            r.address
        )));
    }
    let keys = access_keys(cx, &r.name).await?;
    Ok(keys
        .is_empty()
        .then(|| format!("{} has no access key", r.address)))
}

/// After the apply: creates the user's key when it has none (or with `--rotate-keys`), writes
/// it to the credentials file, then deletes the keys it replaces.
pub async fn issue_key(cx: &Cx, r: &Resource, opts: &KeyOptions) -> Result<Option<IssuedKey>> {
    let keys = access_keys(cx, &r.name).await?;
    let profile = credentials_file::profile_name(&cx.stack, &r.address.key);
    if !keys.is_empty() && !opts.rotate {
        if let Some(dir) = &opts.dir {
            let in_file = credentials_file::key_id_in(dir, &profile);
            if !keys.iter().any(|k| Some(&k.0) == in_file.as_ref()) {
                tracing::warn!(
                    "{}: its access key is not in {} (profile {profile}); a secret cannot be \
                     read back from IAM: apply --rotate-keys writes a new one",
                    r.address,
                    credentials_file::path_in(dir).display()
                );
            }
        }
        return Ok(None);
    }
    let Some(dir) = &opts.dir else {
        return Err(no_dir(&r.address));
    };
    // IAM allows two keys per user: a rotation that finds two deletes the older first (the
    // one not in the file, else the oldest), so that a new one can be made.
    let mut old: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
    if old.len() >= 2 {
        let in_file = credentials_file::key_id_in(dir, &profile);
        let drop = old
            .iter()
            .position(|k| Some(k) != in_file.as_ref())
            .unwrap_or(0);
        let id = old.remove(drop);
        delete_key(cx, &r.name, &id).await?;
    }
    let call = cx.clients.iam.create_access_key().user_name(&r.name);
    let out = call.send().await.op("iam:CreateAccessKey")?;
    let key = out
        .access_key
        .ok_or_else(|| Error::Internal("iam:CreateAccessKey answered no key".into()))?;
    let written =
        credentials_file::write_key(dir, &profile, &key.access_key_id, &key.secret_access_key);
    let file = match written {
        Ok(f) => f,
        Err(e) => {
            // The secret is lost with this process: the new key is useless, the old one stays.
            let id = key.access_key_id.clone();
            if let Err(d) = delete_key(cx, &r.name, &id).await {
                tracing::warn!(
                    "{}: could not delete the unwritten key {id}: {d}",
                    r.address
                );
            }
            return Err(e);
        }
    };
    for id in &old {
        delete_key(cx, &r.name, id).await?;
    }
    Ok(Some(IssuedKey {
        address: r.address.to_string(),
        access_key_id: key.access_key_id,
        file: file.display().to_string(),
        profile,
        deleted: old,
    }))
}

async fn delete_key(cx: &Cx, user: &str, id: &str) -> Result<()> {
    let call = cx.clients.iam.delete_access_key().user_name(user);
    gone_ok(
        call.access_key_id(id)
            .send()
            .await
            .op("iam:DeleteAccessKey"),
    )
}

/// The refusal of an apply that must write a key and was given nowhere to write it.
pub fn no_dir(address: &Address) -> Error {
    Error::Config(format!(
        "{address} needs an access key, and keys are written only to a credentials file: \
         pass --credentials-dir DIR (the key goes to DIR/{}, mode 0600)",
        credentials_file::FILE_NAME
    ))
}

/// The external host's hop: its user, its key's age, and whether (and for what) the agent has
/// used the key (GetAccessKeyLastUsed). The stream's hop shows whether records arrived.
async fn check(cx: &Cx, r: &Resource, live: Option<&Live>, _run: &CheckRun) -> Result<Option<Hop>> {
    let address = format!("host.{}", r.address.key);
    let Some(l) = live else {
        let mut hop = super::missing_hop(r, "no IAM user for the external host");
        hop.address = address;
        return Ok(Some(hop));
    };
    let keys = access_keys(cx, &l.resource.name).await?;
    let Some((id, status, created)) = keys.last().cloned() else {
        return Ok(Some(Hop {
            address,
            ok: false,
            summary: format!("user {} has no access key", l.resource.name),
            hint: Some("run streamstack apply --credentials-dir DIR".into()),
            evidence: json!({"user": l.resource.name}),
        }));
    };
    let call = cx.clients.iam.get_access_key_last_used().access_key_id(&id);
    let used = call.send().await.op("iam:GetAccessKeyLastUsed")?;
    let last = used.access_key_last_used;
    let last_date = last
        .as_ref()
        .and_then(|u| u.last_used_date)
        .map(|d| d.secs());
    let service = last
        .as_ref()
        .map(|u| u.service_name.clone())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let age_days = created.map(|c| (now - c.secs()).max(0) / 86_400);
    let evidence = json!({
        "user": l.resource.name,
        "access_key_id": id,
        "status": status,
        "age_days": age_days,
        "last_used_s_ago": last_date.map(|d| (now - d).max(0)),
        "last_used_service": service,
    });
    let age = age_days.map_or("of unknown age".to_string(), |d| format!("{d} day(s) old"));
    Ok(Some(match last_date {
        Some(d) if status == "Active" => Hop {
            address,
            ok: true,
            summary: format!(
                "access key {id} ({age}) last used {} s ago by {service}",
                (now - d).max(0)
            ),
            hint: None,
            evidence,
        },
        _ => Hop {
            address,
            ok: false,
            summary: format!("access key {id} ({age}, {status}) has never been used"),
            hint: Some(format!(
                "install the agent with `streamstack render SPEC --what agent-bundle --host {} \
                 --out DIR` and the credentials file, then look at \
                 /var/log/aws-kinesis-agent/aws-kinesis-agent.log on the host",
                r.address.key
            )),
            evidence,
        },
    }))
}
