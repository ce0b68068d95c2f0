//! `--engine cloudformation`: the stack deployed as one CloudFormation stack, named after the
//! streamstack stack, through change sets.
//!
//! - **plan** creates a change set of the rendered template, shows it as a streamstack plan,
//!   then deletes it (and the empty stack a first change set makes).
//! - **apply** executes it and turns the stack's events into progress lines. On failure it
//!   names the first failed resource and its reason, and what the rollback did. CloudFormation
//!   may leave a property short of the template where an implementation skips it (moto ignores
//!   several); streamstack then sets those in place on the stack's own resources, and says so.
//! - **destroy** empties the `force_destroy` buckets first (CloudFormation refuses to delete a
//!   bucket that holds objects), deletes the stack and waits, then proves nothing of the stack
//!   remains, deleting what CloudFormation left behind.
//! - A CloudFormation stack of that name that streamstack did not make (no `streamstack:stack`
//!   stack tag) is refused: never changed, never deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, Replacement,
    RequiresRecreation, StackStatus, Tag,
};
use serde::Serialize;
use serde_json::Value;

use super::staging::{self, Placement, Staged};
use crate::aws::Ctx;
use crate::cfn::{logical_id, CREATED_AT_PARAMETER, EXPIRES_AT_PARAMETER};
use crate::events::Event;
use crate::kinds::{self, bucket};
use crate::model::{Address, Kind, Stamps, TAG_STACK};
use crate::ops::{stamps_from, Session};
use crate::plan::{Action, AttrChange, Change, Plan, Summary};
use crate::{Error, Result};

/// Addresses for stack-level events and resources the model does not name.
const STACK: Kind = Kind::new("cloudformation");

/// How long a stack operation may take before streamstack stops waiting (it keeps running).
const STACK_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// The CloudFormation stack as `DescribeStacks` gives it.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub id: String,
    pub status: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// A change set, made and described; `plan` is its content in streamstack's plan format.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub stack_name: String,
    /// The stack's id (its ARN), as CreateChangeSet answered.
    pub stack_id: String,
    /// `None` when CloudFormation found nothing to change (the change set is already gone).
    pub id: Option<String>,
    /// The change set created the (empty, REVIEW_IN_PROGRESS) stack: discarding it deletes it.
    pub made_stack: bool,
    pub plan: Plan,
}

/// What an apply or destroy through CloudFormation ended with (`--json`: the `report` object).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StackReport {
    pub engine: &'static str,
    pub stack: String,
    /// The stack's final status (`CREATE_COMPLETE`, `ROLLBACK_COMPLETE`, `DELETE_COMPLETE`...).
    pub status: String,
    pub ok: bool,
    /// The first resource that failed, and why (CloudFormation's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<Failure>,
    /// What the rollback did, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// Properties CloudFormation left short of the template that streamstack then set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub completed_by_streamstack: Vec<String>,
    /// Resources of the stack that CloudFormation's delete left and streamstack deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<String>,
    pub makespan_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub logical_id: String,
    pub address: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// The CloudFormation stack's name: the streamstack stack's, which must fit CloudFormation's
/// rule (a letter, then letters, digits and hyphens, at most 128).
pub fn stack_name(s: &Session) -> Result<String> {
    let name = s.cx.stack.clone();
    let ok = name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(name)
    } else {
        Err(Error::Config(format!(
            "stack name {name:?} is not a valid CloudFormation stack name (a letter, then letters, \
             digits and hyphens, at most 128); use the default engine or rename the stack"
        )))
    }
}

fn gone(e: &Error) -> bool {
    e.code() == Some("ValidationError") && e.message().contains("does not exist")
}

/// The stack, if there is one by that name (deleted stacks are not).
pub async fn describe(s: &Session, name: &str) -> Result<Option<Deployed>> {
    let out = match s
        .cx
        .clients
        .cloudformation
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .op("cloudformation:DescribeStacks")
    {
        Ok(o) => o,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(st) = out.stacks.unwrap_or_default().into_iter().next() else {
        return Ok(None);
    };
    let status = st
        .stack_status
        .as_ref()
        .map(|x| x.as_str().to_string())
        .ok_or(Error::Incomplete {
            operation: "cloudformation:DescribeStacks",
            field: "StackStatus",
        })?;
    if status == StackStatus::DeleteComplete.as_str() {
        return Ok(None);
    }
    Ok(Some(Deployed {
        id: st.stack_id.unwrap_or_else(|| name.to_string()),
        status,
        parameters: st
            .parameters
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.parameter_key?, p.parameter_value?)))
            .collect(),
        tags: st
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value?)))
            .collect(),
    }))
}

/// The stack of this session, refused when streamstack did not make it.
pub async fn owned(s: &Session) -> Result<Option<Deployed>> {
    let name = stack_name(s)?;
    let d = describe(s, &name).await?;
    if let Some(d) = &d {
        check_owned(s, &name, d)?;
    }
    Ok(d)
}

/// A stack in the middle of an operation (other than waiting for review) is not touched.
fn ensure_idle(name: &str, d: &Deployed) -> Result<()> {
    if d.status.ends_with("_IN_PROGRESS") && d.status != "REVIEW_IN_PROGRESS" {
        return Err(Error::Config(format!(
            "CloudFormation stack {name} is busy ({}); try again when it has finished",
            d.status
        )));
    }
    Ok(())
}

/// A stack of this name that streamstack did not make is refused.
fn check_owned(s: &Session, name: &str, d: &Deployed) -> Result<()> {
    match d.tags.get(TAG_STACK) {
        Some(v) if *v == s.cx.stack => Ok(()),
        _ => Err(Error::Config(format!(
            "CloudFormation stack {name} ({}) exists but streamstack did not make it: it has no \
             stack tag {TAG_STACK}={}. streamstack will not change or delete it; rename the \
             stack in the spec (stack:) or remove that CloudFormation stack yourself",
            d.id, s.cx.stack
        ))),
    }
}

/// The expiry stamps: the deployed stack's parameters (so a no-op stays a no-op), else now.
fn stamps(s: &Session, deployed: Option<&Deployed>) -> Stamps {
    let created = deployed
        .and_then(|d| d.parameters.get(CREATED_AT_PARAMETER))
        .filter(|c| crate::time::parse_rfc3339(c).is_some())
        .cloned()
        .unwrap_or_else(|| crate::time::rfc3339(std::time::SystemTime::now()));
    stamps_from(&s.validated, created)
}

fn parameters(stamps: &Stamps) -> Vec<Parameter> {
    let mut p = vec![Parameter::builder()
        .parameter_key(CREATED_AT_PARAMETER)
        .parameter_value(&stamps.created_at)
        .build()];
    if let Some(e) = &stamps.expires_at {
        p.push(
            Parameter::builder()
                .parameter_key(EXPIRES_AT_PARAMETER)
                .parameter_value(e)
                .build(),
        );
    }
    p
}

/// The rendered template (its size is checked where it is sent: [`super::staging`]).
fn template_body(s: &Session, stamps: &Stamps) -> Result<String> {
    let t = super::template(&s.validated.model, &s.spec_sha256, stamps)?;
    Ok(super::yaml::to_string(&t))
}

/// Logical id → address, for every resource of the model.
fn addresses(s: &Session) -> BTreeMap<String, Address> {
    s.validated
        .model
        .resources
        .keys()
        .map(|a| (logical_id(a), a.clone()))
        .collect()
}

/// The address of a logical id: the model's resource, the one it belongs to (an extra
/// resource's id extends its owner's), or the id itself.
fn address_of(map: &BTreeMap<String, Address>, id: &str) -> Address {
    if let Some(a) = map.get(id) {
        return a.clone();
    }
    map.iter()
        .filter(|(k, _)| id.starts_with(k.as_str()))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, a)| a.clone())
        .unwrap_or_else(|| Address::new(STACK, id))
}

/// Makes a change set of the spec's template against the stack and describes it.
pub async fn change_set(s: &Session) -> Result<ChangeSet> {
    let name = stack_name(s)?;
    let deployed = owned(s).await?;
    let creating = check_deployable(s, &name, deployed.as_ref()).await?;
    let stamps = stamps(s, deployed.as_ref());
    let (id, stack_id, staged) = create_change_set(s, &name, creating, &stamps).await?;
    let made_stack = creating && deployed.is_none();
    let computed = computed(s, &name, &id).await;
    // The change set holds its own copy of the template once computed.
    if let Some(staged) = &staged {
        staging::unstage(&s.cx, staged).await;
    }
    let (status, reason) = computed?;
    if status == Some(ChangeSetStatus::Failed) {
        let nothing = reason.contains("didn't contain changes")
            || reason.contains("No updates are to be performed");
        // Either way the change set is of no further use; one left behind is only clutter, and
        // the user hears of it.
        if let Err(e) =
            s.cx.clients
                .cloudformation
                .delete_change_set()
                .change_set_name(&id)
                .stack_name(&name)
                .send()
                .await
                .op("cloudformation:DeleteChangeSet")
        {
            tracing::warn!("could not delete the failed change set {id} of stack {name}: {e}");
        }
        if !nothing {
            return Err(Error::Config(format!(
                "CloudFormation could not make a change set for stack {name}: {reason}"
            )));
        }
        let plan = to_plan(s, Vec::new())?;
        return Ok(ChangeSet {
            stack_name: name,
            stack_id,
            id: None,
            made_stack,
            plan,
        });
    }
    let changes = changes_of(s, &name, &id, &stamps).await?;
    Ok(ChangeSet {
        stack_name: name,
        stack_id,
        id: Some(id),
        made_stack,
        plan: to_plan(s, changes)?,
    })
}

/// Refuses a stack CloudFormation cannot deploy now (busy, or a failed first create), and a
/// first deploy over resources streamstack made without CloudFormation or that are not the
/// stack's. Returns whether the change set creates the stack.
async fn check_deployable(s: &Session, name: &str, deployed: Option<&Deployed>) -> Result<bool> {
    if let Some(d) = deployed {
        ensure_idle(name, d)?;
        if d.status == StackStatus::RollbackComplete.as_str()
            || d.status == StackStatus::RollbackFailed.as_str()
        {
            return Err(Error::Config(format!(
                "CloudFormation stack {name} is {} (its first create failed and nothing of it \
                 is left to update): run `streamstack destroy SPEC --engine cloudformation`, \
                 then apply again",
                d.status
            )));
        }
    }
    let creating = deployed.is_none_or(|d| d.status == "REVIEW_IN_PROGRESS");
    if !creating {
        return Ok(false);
    }
    // Resources of this stack that the default engine made would collide by name.
    let live = s.live().await?;
    // A resource with one of the stack's names that is not the stack's: refused here, not
    // half-way through a CloudFormation create.
    s.plan(&live)?;
    let ours: Vec<String> = live
        .iter()
        .filter(|l| l.ours)
        .map(|l| format!("{} ({})", l.address(), l.resource.name))
        .collect();
    if !ours.is_empty() {
        return Err(Error::Config(format!(
            "stack {} already exists as resources streamstack made without CloudFormation: \
             {}. Keep using the default engine, or destroy it first (streamstack destroy \
             SPEC) and apply with --engine cloudformation",
            s.cx.stack,
            ours.join(", ")
        )));
    }
    Ok(true)
}

/// `CreateChangeSet` of the spec's template: its id, the stack's, and the template object
/// staged in S3 when it was too large to pass inline (to delete once the change set is
/// computed).
async fn create_change_set(
    s: &Session,
    name: &str,
    creating: bool,
    stamps: &Stamps,
) -> Result<(String, String, Option<Staged>)> {
    let body = template_body(s, stamps)?;
    let staged = match staging::placement(&s.cx.stack, body.len())? {
        Placement::Inline => None,
        Placement::S3 => Some(staging::stage(&s.cx, &body).await?),
    };
    let created = send_change_set(s, name, creating, stamps, body, staged.as_ref()).await;
    match created {
        Ok((id, stack_id)) => Ok((id, stack_id, staged)),
        Err(e) => {
            if let Some(staged) = &staged {
                staging::unstage(&s.cx, staged).await;
            }
            Err(e)
        }
    }
}

/// The `CreateChangeSet` call itself: the template inline, or its staged object's URL.
async fn send_change_set(
    s: &Session,
    name: &str,
    creating: bool,
    stamps: &Stamps,
    body: String,
    staged: Option<&Staged>,
) -> Result<(String, String)> {
    let (template_body, template_url) = match staged {
        Some(st) => (None, Some(st.url.clone())),
        None => (Some(body), None),
    };
    let cs_name = format!(
        "streamstack-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let created =
        s.cx.clients
            .cloudformation
            .create_change_set()
            .stack_name(name)
            .change_set_name(&cs_name)
            .change_set_type(if creating {
                ChangeSetType::Create
            } else {
                ChangeSetType::Update
            })
            .set_template_body(template_body)
            .set_template_url(template_url)
            .set_parameters(Some(parameters(stamps)))
            .capabilities(Capability::CapabilityNamedIam)
            .tags(Tag::builder().key(TAG_STACK).value(&s.cx.stack).build())
            .description(format!(
                "streamstack {}: spec sha256 {}",
                env!("CARGO_PKG_VERSION"),
                s.spec_sha256
            ))
            .include_nested_stacks(false)
            .send()
            .await
            .op("cloudformation:CreateChangeSet")?;
    let id = created.id.unwrap_or(cs_name);
    let stack_id = created.stack_id.unwrap_or_else(|| name.to_string());
    Ok((id, stack_id))
}

/// One page of `DescribeChangeSet`.
async fn describe_change_set(
    s: &Session,
    name: &str,
    id: &str,
    token: Option<String>,
) -> Result<aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput> {
    s.cx.clients
        .cloudformation
        .describe_change_set()
        .change_set_name(id)
        .stack_name(name)
        .set_next_token(token)
        .send()
        .await
        .op("cloudformation:DescribeChangeSet")
}

/// Waits until the change set is computed: its final status and CloudFormation's reason.
async fn computed(s: &Session, name: &str, id: &str) -> Result<(Option<ChangeSetStatus>, String)> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let out = describe_change_set(s, name, id, None).await?;
        let status = out.status.clone();
        match status {
            Some(ChangeSetStatus::CreateComplete) | Some(ChangeSetStatus::Failed) => {
                return Ok((status, out.status_reason.unwrap_or_default()))
            }
            _ if start.elapsed() > Duration::from_secs(600) => {
                return Err(Error::Timeout {
                    address: Address::new(STACK, name),
                    what: "the change set to be computed".into(),
                    elapsed: start.elapsed(),
                })
            }
            _ => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The computed change set's changes, in streamstack's plan format: a resource to create shows
/// the attributes streamstack's own plan would show for it.
async fn changes_of(s: &Session, name: &str, id: &str, stamps: &Stamps) -> Result<Vec<Change>> {
    let map = addresses(s);
    let (desired, _) = s.desired(&[], Some(&stamps.created_at));
    let creates: BTreeMap<String, Vec<AttrChange>> =
        crate::plan::plan(&kinds::REGISTRY, &desired, &[])?
            .changes
            .into_iter()
            .map(|c| (c.address, c.attributes))
            .collect();
    let mut changes = Vec::new();
    let mut token = None;
    loop {
        let out = describe_change_set(s, name, id, token).await?;
        for rc in out
            .changes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.resource_change)
        {
            let mut c = change_of(&map, s, rc);
            if c.action == Action::Create && c.reason.is_none() {
                if let Some(a) = creates.get(&c.address) {
                    c.attributes.extend(a.iter().cloned());
                }
            }
            changes.push(c);
        }
        token = out.next_token;
        if token.is_none() {
            return Ok(changes);
        }
    }
}

/// The changes as a plan: creations in the model's creation order, deletions last.
fn to_plan(s: &Session, mut changes: Vec<Change>) -> Result<Plan> {
    let model = &s.validated.model;
    let graph = model
        .graph()
        .map_err(|e| Error::Internal(format!("the desired resources depend on each other: {e}")))?;
    let order: BTreeMap<String, usize> = graph
        .creation_order()
        .iter()
        .enumerate()
        .map(|(i, a)| (a.to_string(), i))
        .collect();
    changes.sort_by_key(|c| {
        (
            c.action == Action::Delete,
            order.get(&c.address).copied().unwrap_or(usize::MAX),
            c.address.clone(),
        )
    });
    Ok(Plan::new(model, changes))
}

fn json_or_string(s: Option<String>) -> Value {
    match s {
        None => Value::Null,
        Some(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
    }
}

fn change_of(
    map: &BTreeMap<String, Address>,
    s: &Session,
    rc: aws_sdk_cloudformation::types::ResourceChange,
) -> Change {
    let id = rc.logical_resource_id.clone().unwrap_or_default();
    let address = address_of(map, &id);
    let replace = rc.replacement == Some(Replacement::True);
    let action = match rc.action {
        Some(ChangeAction::Add) => Action::Create,
        Some(ChangeAction::Remove) => Action::Delete,
        _ if replace => Action::Replace,
        _ => Action::Update,
    };
    let name = s
        .validated
        .model
        .get(&address)
        .filter(|_| map.get(&id).is_some())
        .map(|r| r.name.clone())
        .or_else(|| rc.physical_resource_id.clone())
        .unwrap_or_else(|| id.clone());
    let mut attributes: Vec<AttrChange> = Vec::new();
    let mut seen = BTreeSet::new();
    for d in rc.details.unwrap_or_default() {
        let Some(t) = d.target else { continue };
        let attr = t
            .name
            .clone()
            .or_else(|| t.attribute.as_ref().map(|a| a.as_str().to_string()))
            .unwrap_or_default();
        if !seen.insert(attr.clone()) {
            continue;
        }
        attributes.push(AttrChange {
            name: attr,
            before: json_or_string(t.before_value),
            after: json_or_string(t.after_value),
            forces_replacement: t.requires_recreation == Some(RequiresRecreation::Always),
        });
    }
    let type_ = rc.resource_type.unwrap_or_default();
    if action == Action::Create || attributes.is_empty() {
        attributes.insert(
            0,
            AttrChange {
                name: "cloudformation_type".into(),
                before: Value::Null,
                after: Value::String(type_.clone()),
                forces_replacement: false,
            },
        );
    }
    Change {
        address: address.to_string(),
        action,
        name,
        reason: (id != logical_id(&address) || action == Action::Replace).then(|| {
            if action == Action::Replace {
                format!("CloudFormation replaces {id} ({type_})")
            } else {
                format!("CloudFormation resource {id} ({type_})")
            }
        }),
        live_id: rc.physical_resource_id,
        attributes,
    }
}

/// Deletes a change set `plan` made, and the empty stack a first change set creates.
pub async fn discard(s: &Session, cs: &ChangeSet) -> Result<()> {
    let cfn = &s.cx.clients.cloudformation;
    if let Some(id) = &cs.id {
        match cfn
            .delete_change_set()
            .change_set_name(id)
            .stack_name(&cs.stack_name)
            .send()
            .await
            .op("cloudformation:DeleteChangeSet")
        {
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if cs.made_stack {
        // Only a stack still waiting for review (nothing in it) is removed.
        if let Some(d) = describe(s, &cs.stack_name).await? {
            if d.status == "REVIEW_IN_PROGRESS" {
                cfn.delete_stack()
                    .stack_name(&d.id)
                    .send()
                    .await
                    .op("cloudformation:DeleteStack")?;
            }
        }
    }
    Ok(())
}

/// The id of the stack's newest event now (so that only later ones are shown): events come
/// newest first, so one page says it.
async fn event_ids(s: &Session, stack_id: &str) -> Result<BTreeSet<String>> {
    let page = events_page(s, stack_id, None).await?;
    Ok(page
        .and_then(|(events, _)| events.into_iter().next())
        .and_then(|e| e.event_id)
        .into_iter()
        .collect())
}

type StackEvent = aws_sdk_cloudformation::types::StackEvent;

/// One page of `DescribeStackEvents` (newest first) and the next token; `None` when the stack
/// is gone.
async fn events_page(
    s: &Session,
    stack_id: &str,
    token: Option<String>,
) -> Result<Option<(Vec<StackEvent>, Option<String>)>> {
    match s
        .cx
        .clients
        .cloudformation
        .describe_stack_events()
        .stack_name(stack_id)
        .set_next_token(token)
        .send()
        .await
        .op("cloudformation:DescribeStackEvents")
    {
        Ok(o) => Ok(Some((o.stack_events.unwrap_or_default(), o.next_token))),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The events of a page (newest first) before the first one already `seen`, and whether the
/// page reached a seen one (then every later page is older still: paging stops there).
fn unseen(page: Vec<StackEvent>, seen: &BTreeSet<String>) -> (Vec<StackEvent>, bool) {
    let mut out = Vec::new();
    for e in page {
        if e.event_id.as_ref().is_some_and(|id| seen.contains(id)) {
            return (out, true);
        }
        out.push(e);
    }
    (out, false)
}

/// The stack's events newer than every `seen` one, oldest first: pages are read only until
/// one reaches an event already seen, not the whole history.
async fn new_events(
    s: &Session,
    stack_id: &str,
    seen: &BTreeSet<String>,
) -> Result<Vec<StackEvent>> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let Some((page, next)) = events_page(s, stack_id, token).await? else {
            break;
        };
        let (fresh, reached) = unseen(page, seen);
        all.extend(fresh);
        token = next;
        if reached || token.is_none() {
            break;
        }
    }
    all.reverse();
    Ok(all)
}

/// Follows the stack until it reaches a final status, sending its new events as progress
/// events; returns the final status and the new events.
async fn follow(
    s: &Session,
    stack_id: &str,
    mut seen: BTreeSet<String>,
    deleting: bool,
) -> Result<(String, Vec<aws_sdk_cloudformation::types::StackEvent>)> {
    let map = addresses(s);
    let start = Instant::now();
    let mut started: BTreeMap<String, Instant> = BTreeMap::new();
    let mut followed = Vec::new();
    let mut pause = Duration::from_millis(200);
    loop {
        for e in new_events(s, stack_id, &seen).await? {
            let Some(eid) = e.event_id.clone() else {
                continue;
            };
            if !seen.insert(eid) {
                continue;
            }
            send_event(s, &map, &e, &mut started);
            followed.push(e);
        }
        let status = match describe(s, stack_id).await? {
            None if deleting => StackStatus::DeleteComplete.as_str().to_string(),
            None => {
                return Err(Error::Config(format!(
                    "CloudFormation stack {stack_id} disappeared while streamstack followed it"
                )))
            }
            Some(d) => d.status,
        };
        if !status.ends_with("_IN_PROGRESS") {
            return Ok((status, followed));
        }
        if start.elapsed() > STACK_TIMEOUT {
            return Err(Error::Timeout {
                address: Address::new(STACK, &s.cx.stack),
                what: format!("the CloudFormation stack to finish ({status})"),
                elapsed: start.elapsed(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

fn send_event(
    s: &Session,
    map: &BTreeMap<String, Address>,
    e: &aws_sdk_cloudformation::types::StackEvent,
    started: &mut BTreeMap<String, Instant>,
) {
    let id = e.logical_resource_id.clone().unwrap_or_default();
    let status = e
        .resource_status
        .as_ref()
        .map(|x| x.as_str().to_string())
        .unwrap_or_default();
    let address = address_of(map, &id);
    let (verb, state) = ["_IN_PROGRESS", "_COMPLETE", "_FAILED"]
        .iter()
        .find_map(|suffix| status.strip_suffix(suffix).map(|v| (v, *suffix)))
        .unwrap_or((status.as_str(), ""));
    let action = format!(
        "cloudformation {}",
        verb.to_ascii_lowercase().replace('_', " ")
    );
    let ev = match state {
        "_IN_PROGRESS" => {
            started.insert(id.clone(), Instant::now());
            Event::Start { address, action }
        }
        "_COMPLETE" => Event::Done {
            address,
            action,
            elapsed: started.get(&id).map(|t| t.elapsed()).unwrap_or_default(),
        },
        "_FAILED" => Event::Failed {
            address,
            action,
            error: e.resource_status_reason.clone().unwrap_or_default(),
        },
        _ => return,
    };
    s.cx.events.send(ev);
}

/// The first failure among `events`, skipping the cancellations it caused.
fn first_failure(
    stack: &str,
    map: &BTreeMap<String, Address>,
    events: &[aws_sdk_cloudformation::types::StackEvent],
) -> Option<Failure> {
    events
        .iter()
        .filter(|e| {
            e.resource_status
                .as_ref()
                .is_some_and(|x| x.as_str().ends_with("_FAILED"))
        })
        .filter(|e| {
            let r = e.resource_status_reason.as_deref().unwrap_or_default();
            !r.contains("Resource creation cancelled") && !r.contains("Resource update cancelled")
        })
        .find(|e| e.logical_resource_id.as_deref() != Some(stack))
        .or_else(|| {
            events.iter().find(|e| {
                e.resource_status
                    .as_ref()
                    .is_some_and(|x| x.as_str().ends_with("_FAILED"))
            })
        })
        .map(|e| {
            let id = e.logical_resource_id.clone().unwrap_or_default();
            Failure {
                address: address_of(map, &id).to_string(),
                logical_id: id,
                resource_type: e.resource_type.clone().unwrap_or_default(),
                status: e
                    .resource_status
                    .as_ref()
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_default(),
                reason: e.resource_status_reason.clone().unwrap_or_default(),
            }
        })
}

fn rollback_of(status: &str) -> Option<String> {
    Some(
        match status {
            "ROLLBACK_COMPLETE" => "rolled back: CloudFormation deleted what it had created; the empty stack is left in ROLLBACK_COMPLETE (streamstack destroy SPEC --engine cloudformation removes it)",
            "ROLLBACK_FAILED" => "the rollback failed too: some resources may remain; see the stack's events, then destroy with --engine cloudformation",
            "UPDATE_ROLLBACK_COMPLETE" => "rolled back: the stack is as it was before this apply",
            "UPDATE_ROLLBACK_FAILED" => "the rollback failed: the stack is in UPDATE_ROLLBACK_FAILED; continue it with `aws cloudformation continue-update-rollback`, then apply again",
            _ => return None,
        }
        .to_string(),
    )
}

/// Executes the change set and follows the stack to its end. Then, if CloudFormation left a
/// property of one of the stack's resources short of the template, sets it in place.
pub async fn execute(s: &Session, cs: &ChangeSet, parallelism: usize) -> Result<StackReport> {
    let start = Instant::now();
    let mut report = StackReport {
        engine: "cloudformation",
        stack: cs.stack_name.clone(),
        ..Default::default()
    };
    let Some(id) = &cs.id else {
        report.ok = true;
        report.status = describe(s, &cs.stack_name)
            .await?
            .map(|d| d.status)
            .unwrap_or_default();
        return Ok(report);
    };
    let stack_id = &cs.stack_id;
    let seen = event_ids(s, stack_id).await?;
    s.cx.clients
        .cloudformation
        .execute_change_set()
        .change_set_name(id)
        .stack_name(&cs.stack_name)
        .client_request_token(format!(
            "streamstack-{}",
            id.rsplit('/').next().unwrap_or(id)
        ))
        .send()
        .await
        .op("cloudformation:ExecuteChangeSet")?;
    let (status, events) = follow(s, stack_id, seen, false).await?;
    report.ok = status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE";
    report.rollback = rollback_of(&status);
    report.status = status;
    if !report.ok {
        report.first_failure = first_failure(&cs.stack_name, &addresses(s), &events);
    } else {
        report.completed_by_streamstack = complete(s, parallelism).await?;
    }
    report.makespan_s = start.elapsed().as_secs_f64();
    Ok(report)
}

/// After a successful stack operation: the stack's own resources that differ from the spec in
/// place (never a create, replace or delete) are set by streamstack's executor.
async fn complete(s: &Session, parallelism: usize) -> Result<Vec<String>> {
    let live = s.live().await?;
    let plan = s.plan(&live)?;
    let mut fix = plan.clone();
    fix.changes.retain(|c| c.action == Action::Update);
    let rest: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Update)
        .map(|c| format!("{} {}", c.action.symbol(), c.address))
        .collect();
    if !rest.is_empty() {
        tracing::warn!(
            "CloudFormation finished, but these resources of the spec are not as the template \
             says (an implementation that skips them?): {}",
            rest.join(", ")
        );
    }
    if fix.changes.is_empty() {
        return Ok(Vec::new());
    }
    let done: Vec<String> = fix
        .changes
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c.address,
                c.attributes
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    tracing::warn!(
        "CloudFormation left {} resource(s) short of the template; streamstack sets them in place: {}",
        done.len(),
        done.join("; ")
    );
    fix.summary = Summary::of(&fix.changes);
    let r = s.apply(&fix, &live, parallelism).await;
    if !r.ok() {
        return Err(Error::Config(format!(
            "CloudFormation finished, but setting what it left short failed: {}",
            r.failed
                .iter()
                .map(|f| format!("{}: {}", f.address, f.error.message))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(done)
}

/// `destroy --engine cloudformation`: empties the stack's `force_destroy` buckets, deletes the
/// stack, waits, then deletes anything of the stack that is left. `deployed` is what [`owned`]
/// found.
pub async fn destroy(
    s: &Session,
    deployed: Option<&Deployed>,
    parallelism: usize,
) -> Result<StackReport> {
    let start = Instant::now();
    let name = stack_name(s)?;
    let mut report = StackReport {
        engine: "cloudformation",
        stack: name.clone(),
        ..Default::default()
    };
    if let Some(d) = deployed {
        ensure_idle(&name, d)?;
        let (status, events) = delete_emptying(s, &name, &d.id).await?;
        report.ok = status == "DELETE_COMPLETE";
        report.status = status;
        if !report.ok {
            report.first_failure = first_failure(&name, &addresses(s), &events);
            report.makespan_s = start.elapsed().as_secs_f64();
            return Ok(report);
        }
    } else {
        report.ok = true;
        report.status = "NONE".into();
    }
    // Whatever of the stack is still there (left by the delete, or made outside it) goes too.
    let d = s.plan_destroy().await?;
    if d.plan.has_changes() {
        report.swept = d.plan.changes.iter().map(|c| c.address.clone()).collect();
        tracing::warn!(
            "CloudFormation's delete left {} resource(s) of stack {}; streamstack deletes them: {}",
            report.swept.len(),
            s.cx.stack,
            report.swept.join(", ")
        );
        let (r, left) = s.destroy(&d, parallelism).await?;
        if !r.ok() || !left.is_empty() {
            report.ok = false;
            return Err(Error::Config(format!(
                "still present after destroy: {}",
                left.join(", ")
            )));
        }
    }
    report.makespan_s = start.elapsed().as_secs_f64();
    Ok(report)
}

/// How many times a stack delete is tried when it fails only because objects arrived in a
/// `force_destroy` bucket after it was emptied (a delivery flushing its buffer as it goes).
const DELETE_ROUNDS: usize = 5;

/// Deletes the stack as the default engine deletes a `force_destroy` bucket: empty, delete, and
/// when the delete fails because new objects arrived in such a bucket, empty again and retry,
/// at most [`DELETE_ROUNDS`] times. Returns the final status and the last round's events.
async fn delete_emptying(
    s: &Session,
    name: &str,
    stack_id: &str,
) -> Result<(String, Vec<StackEvent>)> {
    let mut round = 1;
    loop {
        let emptied = empty_buckets(s, stack_id).await?;
        let seen = event_ids(s, stack_id).await?;
        s.cx.clients
            .cloudformation
            .delete_stack()
            .stack_name(stack_id)
            .client_request_token(format!(
                "streamstack-delete-{round}-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |x| x.as_millis())
            ))
            .send()
            .await
            .op("cloudformation:DeleteStack")?;
        let (status, events) = follow(s, stack_id, seen, true).await?;
        let refilled = refilled_buckets(&events);
        if status == "DELETE_COMPLETE" || emptied == 0 || refilled.is_empty() {
            return Ok((status, events));
        }
        if round >= DELETE_ROUNDS {
            tracing::warn!(
                "CloudFormation stack {name}: bucket(s) {} kept receiving objects through                  {DELETE_ROUNDS} deletes; giving up",
                refilled.join(", ")
            );
            return Ok((status, events));
        }
        tracing::warn!(
            "CloudFormation stack {name} is {status}: bucket(s) {} received objects after they              were emptied (a delivery flushing?); emptying them again and deleting again",
            refilled.join(", ")
        );
        round += 1;
    }
}

/// The logical ids of buckets whose delete failed because they were not empty (S3's
/// `BucketNotEmpty`, "The bucket you tried to delete is not empty").
fn refilled_buckets(events: &[StackEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.resource_type.as_deref() == Some("AWS::S3::Bucket"))
        .filter(|e| {
            e.resource_status
                .as_ref()
                .is_some_and(|x| x.as_str() == "DELETE_FAILED")
        })
        .filter(|e| {
            let r = e.resource_status_reason.as_deref().unwrap_or_default();
            r.contains("BucketNotEmpty") || r.contains("not empty")
        })
        .filter_map(|e| e.logical_resource_id.clone())
        .collect()
}

/// Empties every bucket of the stack that is the stack's own and tagged force-destroy; returns
/// how many it emptied.
async fn empty_buckets(s: &Session, stack_id: &str) -> Result<usize> {
    let mut buckets = Vec::new();
    let mut token = None;
    loop {
        let out =
            s.cx.clients
                .cloudformation
                .list_stack_resources()
                .stack_name(stack_id)
                .set_next_token(token)
                .send()
                .await
                .op("cloudformation:ListStackResources")?;
        for r in out.stack_resource_summaries.unwrap_or_default() {
            if r.resource_type.as_deref() == Some("AWS::S3::Bucket") {
                if let Some(p) = r.physical_resource_id {
                    buckets.push(p);
                }
            }
        }
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    let mut emptied = 0;
    for b in buckets {
        if let Some(live) = bucket::read(&s.cx, &b, &s.validated.model).await? {
            if bucket::empty_if_force_destroy(&s.cx, &live).await? {
                emptied += 1;
            }
        }
    }
    Ok(emptied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_map_back_to_addresses() {
        let a = Address::new(crate::kinds::stream::KIND, "weather");
        let map = BTreeMap::from([(logical_id(&a), a.clone())]);
        assert_eq!(address_of(&map, "StreamWeather"), a);
        assert_eq!(address_of(&map, "StreamWeatherPolicy"), a);
        assert_eq!(
            address_of(&map, "Other").to_string(),
            "cloudformation.Other"
        );
    }

    #[test]
    fn the_first_failure_is_the_cause_not_the_cancellations_or_the_stack() {
        use aws_sdk_cloudformation::types::{ResourceStatus, StackEvent};
        let ev = |id: &str, status: ResourceStatus, reason: &str| {
            StackEvent::builder()
                .logical_resource_id(id)
                .resource_type("AWS::X")
                .resource_status(status)
                .resource_status_reason(reason)
                .build()
        };
        let a = Address::new(crate::kinds::stream::KIND, "weather");
        let map = BTreeMap::from([(logical_id(&a), a.clone())]);
        let events = vec![
            ev("lab", ResourceStatus::CreateInProgress, "User Initiated"),
            ev(
                "BucketArchive",
                ResourceStatus::CreateFailed,
                "Resource creation cancelled",
            ),
            ev(
                "StreamWeather",
                ResourceStatus::CreateFailed,
                "Rate exceeded",
            ),
            ev(
                "lab",
                ResourceStatus::RollbackInProgress,
                "The following resource(s) failed to create: [StreamWeather]",
            ),
            ev("BucketArchive", ResourceStatus::DeleteComplete, ""),
        ];
        let f = first_failure("lab", &map, &events).expect("a failure");
        assert_eq!(f.logical_id, "StreamWeather");
        assert_eq!(f.address, "stream.weather");
        assert_eq!(f.reason, "Rate exceeded");
        assert!(first_failure("lab", &map, &events[..1]).is_none());
    }

    #[test]
    fn following_stops_at_the_first_event_already_seen() {
        let ev = |id: &str| StackEvent::builder().event_id(id).build();
        let ids = |v: &[StackEvent]| -> Vec<String> {
            v.iter().filter_map(|e| e.event_id.clone()).collect()
        };
        let seen = BTreeSet::from(["e3".to_string()]);
        // Newest first: e5 and e4 are new; e3 was seen, so e2 (older) is not even looked at.
        let (fresh, reached) = unseen(vec![ev("e5"), ev("e4"), ev("e3"), ev("e2")], &seen);
        assert_eq!(ids(&fresh), ["e5", "e4"]);
        assert!(reached);
        // A page of only new events: the next page must be read.
        let (fresh, reached) = unseen(vec![ev("e9"), ev("e8")], &seen);
        assert_eq!(ids(&fresh), ["e9", "e8"]);
        assert!(!reached);
        // The newest event seen: nothing new, and no further page.
        let (fresh, reached) = unseen(vec![ev("e3"), ev("e2")], &seen);
        assert!(fresh.is_empty() && reached);
    }

    #[test]
    fn a_delete_that_failed_on_a_refilled_bucket_is_retried_and_no_other() {
        use aws_sdk_cloudformation::types::{ResourceStatus, StackEvent};
        let ev = |id: &str, type_: &str, status: ResourceStatus, reason: &str| {
            StackEvent::builder()
                .logical_resource_id(id)
                .resource_type(type_)
                .resource_status(status)
                .resource_status_reason(reason)
                .build()
        };
        let not_empty = "The bucket you tried to delete is not empty (Service: S3, Status Code: \
                         409, Error Code: BucketNotEmpty)";
        let events = vec![
            ev(
                "lab",
                "AWS::CloudFormation::Stack",
                ResourceStatus::DeleteInProgress,
                "",
            ),
            ev(
                "DeliveryToS3",
                "AWS::KinesisFirehose::DeliveryStream",
                ResourceStatus::DeleteComplete,
                "",
            ),
            ev(
                "BucketArchive",
                "AWS::S3::Bucket",
                ResourceStatus::DeleteFailed,
                not_empty,
            ),
            ev(
                "lab",
                "AWS::CloudFormation::Stack",
                ResourceStatus::DeleteFailed,
                "The following resource(s) failed to delete: [BucketArchive]",
            ),
        ];
        assert_eq!(refilled_buckets(&events), ["BucketArchive"]);
        // Any other failure is not a reason to empty and retry.
        let denied = vec![ev(
            "BucketArchive",
            "AWS::S3::Bucket",
            ResourceStatus::DeleteFailed,
            "Access Denied",
        )];
        assert!(refilled_buckets(&denied).is_empty());
        let role = vec![ev(
            "RoleX",
            "AWS::IAM::Role",
            ResourceStatus::DeleteFailed,
            not_empty,
        )];
        assert!(refilled_buckets(&role).is_empty());
    }

    #[test]
    fn rollbacks_are_described() {
        assert!(rollback_of("ROLLBACK_COMPLETE")
            .is_some_and(|r| r.contains("deleted what it had created")));
        assert!(rollback_of("UPDATE_ROLLBACK_COMPLETE").is_some());
        assert!(rollback_of("CREATE_COMPLETE").is_none());
    }
}
