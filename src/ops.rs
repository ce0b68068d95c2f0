//! The operations behind the commands, as a library: open a session (spec + AWS), read live
//! state, plan, apply (a saved plan checked first), destroy (and prove nothing remains),
//! outputs, render. Commands are thin wrappers that print and ask; nothing here names a kind.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::aws::{tagged_resources, AwsOptions, Clients};
use crate::events::Events;
use crate::executor::{self, Report};
use crate::kinds::{self, Cx, Live, Reads, Render, Timeouts};
use crate::model::Env;
use std::collections::BTreeMap;

use crate::derive::{self, Validated};
use crate::model::{Model, TAG_CREATED_AT, TAG_EXPIRES_AT, TAG_STACK};
use crate::plan::{self, Plan};
use crate::spec::LoadOptions;
use crate::time::parse_rfc3339;
use crate::{Error, Result};

mod keys;
mod planfile;
pub use planfile::PlanFile;

/// A spec bound to an AWS account and region.
pub struct Session {
    pub spec_path: PathBuf,
    pub spec_sha256: String,
    pub validated: Validated,
    pub cx: Cx,
}

/// What `open` needs besides the spec path.
#[derive(Clone)]
pub struct OpenOptions {
    pub load: LoadOptions,
    pub aws: AwsOptions,
    pub events: Events,
    pub timeouts: Timeouts,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Validates the spec offline first (an invalid spec never reaches AWS), then connects, learns
/// the account id and derives the model with the real account and region.
pub async fn open(spec_path: &Path, opts: &OpenOptions) -> Result<Session> {
    let text = std::fs::read(spec_path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", spec_path.display())))?;
    let offline = derive::load_file(spec_path, &opts.load).map_err(Error::Spec)?;
    // The spec's region wins over the ambient one (AWS_REGION, the profile); --region is used
    // when the spec has none (a differing one was refused offline).
    let mut aws = opts.aws.clone();
    if let Some(r) = offline
        .spec
        .region
        .clone()
        .or_else(|| opts.load.region.clone())
    {
        aws.region = Some(r);
    }
    let clients = Clients::new(&aws).await?;
    open_in(spec_path, &text, opts, clients).await
}

/// [`open`] with clients already made (a fleet target's: assumed credentials, the target's
/// region, which `opts.load.fleet_region` names too).
pub async fn open_with(spec_path: &Path, opts: &OpenOptions, clients: Clients) -> Result<Session> {
    let text = std::fs::read(spec_path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", spec_path.display())))?;
    open_in(spec_path, &text, opts, clients).await
}

/// The spec (its bytes `text`) derived with the account and region of `clients`.
async fn open_in(
    spec_path: &Path,
    text: &[u8],
    opts: &OpenOptions,
    clients: Clients,
) -> Result<Session> {
    let account_id = clients.account_id().await?;
    let load = LoadOptions {
        ambient_region: Some(clients.region.clone()),
        account_id: Some(account_id.clone()),
        ..opts.load.clone()
    };
    let validated = derive::load_file(spec_path, &load).map_err(Error::Spec)?;
    Ok(session(
        spec_path.to_path_buf(),
        sha256_hex(text),
        validated,
        clients,
        &account_id,
        opts,
    ))
}

/// [`open_stack`] with clients already made (a fleet target's).
pub async fn open_stack_with(stack: &str, opts: &OpenOptions, clients: Clients) -> Result<Session> {
    stack_session(stack, opts, clients).await
}

fn session(
    spec_path: PathBuf,
    spec_sha256: String,
    validated: Validated,
    clients: Clients,
    account_id: &str,
    opts: &OpenOptions,
) -> Session {
    let stack = validated.spec.stack.clone();
    let mut env = Env::new(account_id, &clients.region, &stack);
    if validated.model.env.iam_per_region {
        env = env.with_iam_per_region(&stack);
    }
    let journal = std::sync::Arc::new(crate::journal::Journal::open(
        account_id,
        &env.region,
        &stack,
    ));
    Session {
        spec_path,
        spec_sha256,
        cx: Cx {
            clients,
            env,
            stack,
            events: opts.events.clone(),
            timeouts: opts.timeouts,
            journal,
            tagged: Default::default(),
            reads: Default::default(),
            lookups: Default::default(),
        },
        validated,
    }
}

/// A session for a stack known only by name (`destroy --stack`, `gc`): no spec, nothing
/// desired; discovery finds what the stack owns by its names, its IAM path and its tag.
pub async fn open_stack(stack: &str, opts: &OpenOptions) -> Result<Session> {
    if let Err(v) = crate::spec::rules::stack_name(stack) {
        return Err(Error::Config(format!(
            "{stack:?} is not a stack name: {}",
            v.message
        )));
    }
    let clients = Clients::new(&opts.aws).await?;
    stack_session(stack, opts, clients).await
}

async fn stack_session(stack: &str, opts: &OpenOptions, clients: Clients) -> Result<Session> {
    let account_id = clients.account_id().await?;
    let mut env = Env::new(&account_id, &clients.region, stack);
    if opts.load.fleet_region.is_some() {
        env = env.with_iam_per_region(stack);
    }
    let validated = Validated {
        spec: crate::spec::types::Spec {
            stack: stack.to_string(),
            version: 1,
            ..Default::default()
        },
        model: Model {
            stack: stack.to_string(),
            env,
            resources: Default::default(),
        },
        warnings: Default::default(),
        region_is_placeholder: false,
    };
    Ok(session(
        PathBuf::new(),
        String::new(),
        validated,
        clients,
        &account_id,
        opts,
    ))
}

/// One stack found in the region by its tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackInfo {
    pub name: String,
    /// Resources tagged as the stack's: those the Resource Groups Tagging API lists, less
    /// terminated instances, plus its IAM roles and instance profiles (which it does not list).
    pub resources: usize,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub expired: bool,
}

/// Every stack in the region, found by the `streamstack:stack` tag, by name: the Resource
/// Groups Tagging API's listing as each kind corrects it (`ResourceKind::correct_listing`).
pub async fn list_stacks(aws: &AwsOptions) -> Result<Vec<StackInfo>> {
    let clients = Clients::new(aws).await?;
    list_stacks_with(&clients).await
}

/// [`list_stacks`] with clients already made (a fleet target's).
pub async fn list_stacks_with(clients: &Clients) -> Result<Vec<StackInfo>> {
    let listed = stack_resources(clients).await?;
    Ok(stacks_of(listed, std::time::SystemTime::now()))
}

/// Every resource of any stack in the region (ARN and tags): the tagging API's answer as each
/// kind corrects it (what it leaves out, what is only a leftover).
pub async fn stack_resources(clients: &Clients) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    let mut listed = tagged_resources(clients, TAG_STACK, None).await?;
    let arns: Vec<String> = listed.iter().map(|(arn, _)| arn.clone()).collect();
    let fixes = futures::future::try_join_all(
        kinds::REGISTRY
            .handlers()
            .map(|h| h.correct_listing(clients, &arns)),
    )
    .await?;
    for fix in fixes {
        listed.retain(|(arn, _)| !fix.not_leftovers.contains(arn));
        listed.extend(fix.unlisted);
    }
    Ok(listed)
}

/// The stacks `resources` (ARN and tags) belong to, by name, as of `now`.
pub fn stacks_of(
    resources: Vec<(String, BTreeMap<String, String>)>,
    now: std::time::SystemTime,
) -> Vec<StackInfo> {
    let mut found: BTreeMap<String, StackInfo> = BTreeMap::new();
    for (_, tags) in resources {
        let Some(name) = tags.get(TAG_STACK) else {
            continue;
        };
        let info = found.entry(name.clone()).or_insert_with(|| StackInfo {
            name: name.clone(),
            resources: 0,
            created_at: None,
            expires_at: None,
            expired: false,
        });
        info.resources += 1;
        let earliest = |a: &Option<String>, b: Option<&String>| match (a, b) {
            (Some(x), Some(y)) if parse_rfc3339(y) < parse_rfc3339(x) => Some(y.clone()),
            (None, Some(y)) => Some(y.clone()),
            (x, _) => x.clone(),
        };
        info.created_at = earliest(&info.created_at, tags.get(TAG_CREATED_AT));
        info.expires_at = earliest(&info.expires_at, tags.get(TAG_EXPIRES_AT));
        info.expired = info
            .expires_at
            .as_deref()
            .and_then(parse_rfc3339)
            .is_some_and(|at| at <= now);
    }
    found.into_values().collect()
}

impl Session {
    /// Everything live that belongs to the stack or has one of its names; kinds are read
    /// concurrently.
    pub async fn live(&self) -> Result<Vec<Live>> {
        Ok(self.discover(Reads::Full).await?.0)
    }

    /// [`Session::live`], reading `reads` of each resource; also the context it read with, whose
    /// listing of what is tagged as the stack's a sweep can reuse.
    async fn discover(&self, reads: Reads) -> Result<(Vec<Live>, Cx)> {
        let desired = &self.validated.model;
        // A fresh view of what is tagged as the stack's on every read.
        let cx = Cx {
            tagged: Default::default(),
            reads,
            ..self.cx.clone()
        };
        let found = futures::future::try_join_all(
            kinds::REGISTRY.handlers().map(|h| h.discover(&cx, desired)),
        )
        .await?;
        let mut all: Vec<Live> = found.into_iter().flatten().collect();
        kinds::settle_journal(&self.cx.journal, &mut all);
        all.sort_by(|a, b| (a.address(), &a.id).cmp(&(b.address(), &b.id)));
        Ok((all, cx))
    }

    /// The desired model with the expiry tags stamped: `streamstack:created-at` is the
    /// earliest one live (set at the stack's first creation, never moved), else `created_at`
    /// (a saved plan's), else now; `streamstack:expires-at` is that plus `expires_after`.
    pub fn desired(&self, live: &[Live], created_at: Option<&str>) -> (Model, String) {
        let created = live
            .iter()
            .filter(|l| l.ours)
            .filter_map(|l| l.resource.tags.get(TAG_CREATED_AT))
            .filter_map(|t| crate::time::parse_rfc3339(t).map(|at| (at, t)))
            .min()
            .map(|(_, t)| t.clone())
            .or_else(|| created_at.map(str::to_string))
            .unwrap_or_else(|| crate::time::rfc3339(std::time::SystemTime::now()));
        let expires = stamps_from(&self.validated, created.clone()).expires_at;
        let mut model = self.validated.model.clone();
        for r in model.resources.values_mut() {
            r.tags.insert(TAG_CREATED_AT.into(), created.clone());
            if let Some(e) = &expires {
                r.tags.insert(TAG_EXPIRES_AT.into(), e.clone());
            }
        }
        (model, created)
    }
}

/// The expiry stamps for a stack created at `created`.
pub fn stamps_from(validated: &Validated, created: String) -> crate::model::Stamps {
    let expires_at = validated.spec.expires_after.and_then(|e| {
        crate::time::parse_rfc3339(&created)
            .map(|at| crate::time::rfc3339(at + std::time::Duration::from_secs(e.seconds)))
    });
    crate::model::Stamps {
        created_at: created,
        expires_at,
    }
}

impl Session {
    pub fn plan(&self, live: &[Live]) -> Result<Plan> {
        self.plan_stamped(live, None)
    }

    fn plan_stamped(&self, live: &[Live], created_at: Option<&str>) -> Result<Plan> {
        let (model, created) = self.desired(live, created_at);
        let mut plan = plan::plan(&kinds::REGISTRY, &model, live)?;
        plan.created_at = Some(created);
        // An update to an adopted instance says what it tightens and what stays unmanaged.
        for c in plan.changes.iter_mut() {
            let found = live.iter().find(|l| {
                l.ours && l.address().to_string() == c.address && Some(&l.id) == c.live_id.as_ref()
            });
            let note = match (c.action, found) {
                (plan::Action::Update, Some(l)) if l.address().kind == kinds::host::KIND => model
                    .get(l.address())
                    .and_then(|want| kinds::host::adopted_note(want, l)),
                _ => None,
            };
            if note.is_some() && c.reason.is_none() {
                c.reason = note;
            }
        }
        Ok(plan)
    }

    /// The plan to apply and the live state it was computed from. With a saved plan, the spec
    /// must be unchanged and a fresh plan must equal the saved one.
    pub async fn plan_for_apply(&self, saved: Option<&PlanFile>) -> Result<(Plan, Vec<Live>)> {
        let live = self.live().await?;
        let saved_created = saved.and_then(|f| f.plan.created_at.as_deref());
        let plan = self.plan_stamped(&live, saved_created)?;
        if let Some(f) = saved {
            f.check(self, &plan)?;
        }
        Ok((plan, live))
    }

    pub async fn apply(&self, plan: &Plan, live: &[Live], parallelism: usize) -> Report {
        let (model, _) = self.desired(live, plan.created_at.as_deref());
        executor::apply(&self.cx, &kinds::REGISTRY, plan, &model, live, parallelism).await
    }

    /// Takes the stack's lock for `command` (see `crate::lock`).
    pub async fn lock(
        &self,
        command: &str,
        timeout: std::time::Duration,
    ) -> Result<crate::lock::Lock> {
        crate::lock::acquire(&self.cx.clients, &self.cx.stack, command, timeout).await
    }

    /// The stack's lock, if another run holds it.
    pub async fn lock_held(&self) -> Result<Option<crate::lock::Holder>> {
        crate::lock::held(&self.cx.clients, &self.cx.stack).await
    }

    /// `apply --wait-bootstrap`: after an apply, waits until every resource the plan created
    /// (or replaced) says it is working, all at once, at most `timeout` each.
    pub async fn wait_reported(&self, plan: &Plan, timeout: std::time::Duration) -> Result<()> {
        let created: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| matches!(c.action, plan::Action::Create | plan::Action::Replace))
            .map(|c| c.address.as_str())
            .collect();
        if created.is_empty() {
            return Ok(());
        }
        let live = self.live().await?;
        let waits = live
            .iter()
            .filter(|l| l.ours && created.contains(&l.address().to_string().as_str()))
            .map(|l| async move {
                kinds::handler(l.address().kind)?
                    .wait_reported(&self.cx, l, timeout)
                    .await
            });
        futures::future::try_join_all(waits).await?;
        Ok(())
    }

    /// What `destroy` would delete: every live resource of the stack. Same-named resources that
    /// are not the stack's are returned apart; they are left alone.
    pub async fn plan_destroy(&self) -> Result<DestroyPlan> {
        // Deleting needs identity, ownership and the order, not the settings a plan compares.
        let (live, _) = self.discover(Reads::ForDeletion).await?;
        let plan = plan::destroy_plan(&kinds::REGISTRY, &self.validated.model, &live);
        let (_, foreign): (Vec<&Live>, Vec<&Live>) = live.iter().partition(|l| l.ours);
        let foreign = foreign.into_iter().cloned().collect();
        Ok(DestroyPlan {
            plan,
            live,
            foreign,
        })
    }

    /// Deletes what `plan_destroy` found, then reads again: the report and what of the stack is
    /// still there (empty when the destroy is complete): every kind's discovery, plus a sweep of
    /// everything tagged `streamstack:stack=<stack>` (the Resource Groups Tagging API), so that
    /// "nothing remains" is never said of a resource discovery missed.
    pub async fn destroy(
        &self,
        d: &DestroyPlan,
        parallelism: usize,
    ) -> Result<(Report, Vec<String>)> {
        let report = if d.plan.has_changes() {
            self.apply(&d.plan, &d.live, parallelism).await
        } else {
            Report::default()
        };
        // The sweep reuses the discovery's own listing of what is tagged as the stack's: it was
        // asked for after every delete above had finished.
        let (left, cx) = self.discover(Reads::ForDeletion).await?;
        let left: Vec<Live> = left.into_iter().filter(|l| l.ours).collect();
        let mut remaining: Vec<String> = left
            .iter()
            .map(|l| format!("{} ({})", l.address(), l.id))
            .collect();
        remaining.extend(sweep(&cx, &left).await?);
        Ok((report, remaining))
    }

    /// Ids, ARNs and how-to-reach facts of the stack's live resources.
    pub async fn outputs(&self, live: &[Live]) -> Result<Vec<Output>> {
        let ours: Vec<&Live> = live.iter().filter(|l| l.ours).collect();
        let details =
            futures::future::try_join_all(ours.iter().map(|l| async move {
                kinds::handler(l.address().kind)?.outputs(&self.cx, l).await
            }))
            .await?;
        Ok(ours
            .into_iter()
            .zip(details)
            .map(|(l, details)| Output {
                address: l.address().to_string(),
                name: l.resource.name.clone(),
                id: l.id.clone(),
                details,
            })
            .collect())
    }
}

/// ARNs tagged as the stack's (in `cx`'s listing) that no live resource in `known` accounts for.
/// Instances and their volumes are left to host discovery: terminated instances keep their tags
/// a while.
async fn sweep(cx: &Cx, known: &[Live]) -> Result<Vec<String>> {
    let explained = |arn: &str| {
        known.iter().any(|l| {
            arn == l.id
                || arn.ends_with(&format!("/{}", l.id))
                || arn.ends_with(&format!(":{}", l.id))
        })
    };
    Ok(cx
        .tagged_arns()
        .await?
        .iter()
        .filter(|a| !a.contains(":instance/") && !a.contains(":volume/"))
        .filter(|a| !explained(a))
        .map(|a| format!("{a} (tagged as the stack's)"))
        .collect())
}

/// `destroy`'s plan and what it was computed from.
pub struct DestroyPlan {
    pub plan: Plan,
    pub live: Vec<Live>,
    /// Resources with one of the stack's names that are not the stack's: never touched.
    pub foreign: Vec<Live>,
}

/// What `render` prints: every artefact of that sort in the model, or only `host`'s.
pub fn render(model: &Model, what: Render, host: Option<&str>) -> Result<Vec<kinds::Rendered>> {
    let mut out = Vec::new();
    for r in model.resources.values() {
        if let Some(x) = kinds::handler(r.address.kind)?.render(r, what) {
            if host.is_none() || x.host.as_deref() == host {
                out.push(x);
            }
        }
    }
    Ok(out)
}

/// What `output` shows for one live resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    pub address: String,
    pub name: String,
    pub id: String,
    /// Kind-specific facts: ARN, where data lands, how to reach a host.
    pub details: std::collections::BTreeMap<String, String>,
}
