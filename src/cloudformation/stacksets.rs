//! `--engine stacksets`: one spec deployed to a fleet of accounts and regions as a
//! CloudFormation StackSet, named after the stack, run by AWS from the administrator account.
//!
//! This module is the engine only; it knows nothing of the fleet file. The fleet runner opens a
//! [`Session`] of the spec in the administrator account and region (the stack set lives there),
//! resolves its targets to [`Target`]s (OUs expanded to accounts) and calls:
//!
//! - [`plan`]`(admin, targets, opts)` → [`StackSetPlan`]: the difference of template (the
//!   deployed `TemplateBody` against ours, both parsed and normalized: the `Description` and the
//!   Metadata's version and spec hash are not compared), parameters (the expiry stamps), and
//!   instances: to add (targeted, none yet), to remove (an instance no longer targeted) and
//!   outdated (targeted, not `CURRENT`). A second plan after an apply has no changes.
//! - [`apply`]`(admin, &plan, opts)` → [`StackSetReport`]: creates the stack set, or updates it
//!   when its template or parameters differ, creates the missing instances, updates the
//!   outdated ones and deletes the ones no longer targeted. Every operation is followed to its
//!   end (`DescribeStackSetOperation` until SUCCEEDED, FAILED or STOPPED, with backoff), its
//!   per-instance results printed as events; an `OperationInProgressException` is waited out.
//! - [`destroy`]`(admin, opts)` → [`StackSetReport`]: deletes every instance (RetainStacks
//!   false), followed to its end, then the stack set.
//!
//! The report's `instances` list every instance with its status and reason: the fleet runner
//! confirms what was made by running streamstack's own plan in each target of
//! [`StackSetReport::current_targets`] (the CloudFormation engine does the same in one account).
//!
//! **One template for every target.** The template is [`super::template`] of the spec's model,
//! with the account, region and partition as pseudo parameters, so it serves every account and
//! region. A stack set has one template: per-target differences (a fleet's per-target
//! variables that change the model) cannot be expressed and are refused by [`one_template`]
//! with the two targets that differ; they are not mapped to `ParameterOverrides`.
//!
//! **Operation preferences** ([`preferences`]) never crawl: regions in PARALLEL, at most
//! `max_concurrent` accounts at once (default: every targeted account) and `failure_tolerance`
//! failures per region before a region stops (default: accounts − 1, i.e. go on). StackSets'
//! own default (tolerance 0, one account at a time) deploys one account after the other.
//! With `STRICT_FAILURE_TOLERANCE` the concurrency is at most tolerance + 1, so a caller's
//! larger `max_concurrent` uses `SOFT_FAILURE_TOLERANCE`.
//!
//! **Permission models.** Self-managed: the administration role
//! (`arn:<partition>:iam::<admin account>:role/AWSCloudFormationStackSetAdministrationRole` by
//! default) assumes the execution role (`AWSCloudFormationStackSetExecutionRole`) in each
//! target account. Service-managed: targets are the organizational units in
//! [`StackSetOptions::organizational_units`], with automatic deployment to accounts that join
//! them, `CallAs SELF` (the management account; needs trusted access for StackSets).
//!
//! **Ownership.** A stack set of that name is touched only when it carries the tag
//! `streamstack:stack=<stack>` and its template's `Metadata.streamstack.stack` names the stack.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{
    AutoDeployment, Capability, ConcurrencyMode, DeploymentTargets, Parameter, PermissionModels,
    RegionConcurrencyType, StackSetOperationPreferences, Tag,
};
use serde::Serialize;
use serde_json::Value;

use super::staging::{self, Placement, Staged};
use crate::aws::Ctx;
use crate::cfn::{CREATED_AT_PARAMETER, EXPIRES_AT_PARAMETER};
use crate::events::Event;
use crate::model::{Address, Kind, Stamps, TAG_STACK};
use crate::ops::{stamps_from, Session};
use crate::{Error, Result};

/// Addresses of stack-set events: `stackset.<account>/<region>`, or the stack set's name.
const STACKSET: Kind = Kind::new("stackset");

/// The standard administration role of the self-managed model (AWS's template
/// `AWSCloudFormationStackSetAdministrationRole.yml`).
pub const ADMINISTRATION_ROLE: &str = "AWSCloudFormationStackSetAdministrationRole";
/// The standard execution role in each target account (`AWSCloudFormationStackSetExecutionRole.yml`).
pub const EXECUTION_ROLE: &str = "AWSCloudFormationStackSetExecutionRole";

/// How long one operation may run before streamstack stops waiting (it keeps running).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// One stack instance's place: an account and a region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub account: String,
    pub region: String,
}

impl Target {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Target {
            account: account.into(),
            region: region.into(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// Who deploys the instances (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PermissionModel {
    #[default]
    SelfManaged,
    ServiceManaged,
}

/// How the stack set is made and run; `Default` is self-managed with the standard roles and
/// operation preferences that do not crawl.
#[derive(Debug, Clone, Default)]
pub struct StackSetOptions {
    pub permission_model: PermissionModel,
    /// Default: `arn:<partition>:iam::<admin account>:role/AWSCloudFormationStackSetAdministrationRole`.
    pub administration_role_arn: Option<String>,
    /// Default: `AWSCloudFormationStackSetExecutionRole`.
    pub execution_role_name: Option<String>,
    /// Service-managed targets (`ou-...` or a root `r-...`).
    pub organizational_units: Vec<String>,
    /// Accounts at once, per region (default: every targeted account).
    pub max_concurrent: Option<u32>,
    /// Failed accounts per region before the operation stops there (default: accounts − 1).
    pub failure_tolerance: Option<u32>,
}

/// The operation preferences [`preferences`] chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Preferences {
    pub max_concurrent: u32,
    pub failure_tolerance: u32,
    /// `SOFT_FAILURE_TOLERANCE` when the concurrency exceeds tolerance + 1.
    pub soft: bool,
}

/// Preferences for an operation over `accounts` accounts: the caller's, else all at once and
/// go on whatever fails. Never 0 concurrency; regions are always PARALLEL.
pub fn preferences(accounts: usize, opts: &StackSetOptions) -> Preferences {
    let n = u32::try_from(accounts.max(1)).unwrap_or(u32::MAX);
    let max_concurrent = opts.max_concurrent.unwrap_or(n).max(1);
    let failure_tolerance = opts.failure_tolerance.unwrap_or(n - 1);
    Preferences {
        max_concurrent,
        failure_tolerance,
        soft: max_concurrent > failure_tolerance.saturating_add(1),
    }
}

fn operation_preferences(p: Preferences) -> StackSetOperationPreferences {
    StackSetOperationPreferences::builder()
        .region_concurrency_type(RegionConcurrencyType::Parallel)
        .max_concurrent_count(i32::try_from(p.max_concurrent).unwrap_or(i32::MAX))
        .failure_tolerance_count(i32::try_from(p.failure_tolerance).unwrap_or(i32::MAX))
        .concurrency_mode(if p.soft {
            ConcurrencyMode::SoftFailureTolerance
        } else {
            ConcurrencyMode::StrictFailureTolerance
        })
        .build()
}

/// An instance as `ListStackInstances` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub account: String,
    pub region: String,
    /// `CURRENT`, `OUTDATED` or `INOPERABLE`.
    pub status: String,
    /// `SUCCEEDED`, `FAILED`, `CANCELLED`, `PENDING`, `RUNNING`... when AWS gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detailed_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<String>,
}

impl Instance {
    pub fn target(&self) -> Target {
        Target::new(&self.account, &self.region)
    }
}

/// The deployed stack set: what the plan compares with.
#[derive(Debug, Clone, Default)]
pub struct Deployed {
    pub id: String,
    pub template: Option<Value>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub instances: Vec<Instance>,
}

/// One parameter that differs: deployed and desired values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParameterChange {
    pub key: String,
    pub deployed: Option<String>,
    pub desired: Option<String>,
}

/// What an apply would do (`--json`: this object).
#[derive(Debug, Clone, Serialize)]
pub struct StackSetPlan {
    pub stack_set: String,
    /// The stack set exists (and is streamstack's).
    pub exists: bool,
    pub template_changed: bool,
    pub parameters: Vec<ParameterChange>,
    pub add: Vec<Target>,
    pub remove: Vec<Target>,
    pub outdated: Vec<Target>,
    pub unchanged: Vec<Target>,
    #[serde(skip)]
    body: String,
    #[serde(skip)]
    desired_parameters: BTreeMap<String, String>,
}

impl StackSetPlan {
    pub fn has_changes(&self) -> bool {
        !self.exists
            || self.template_changed
            || !self.parameters.is_empty()
            || !self.add.is_empty()
            || !self.remove.is_empty()
            || !self.outdated.is_empty()
    }

    /// Human lines: the stack set, then one line per instance change.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name = &self.stack_set;
        if !self.exists {
            out.push(format!("+ stack set {name} (created)"));
        } else if self.template_changed {
            out.push(format!(
                "~ stack set {name}: template changed (every instance is updated)"
            ));
        }
        for p in &self.parameters {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
            out.push(format!(
                "~ stack set {name}: parameter {}: {} -> {}",
                p.key,
                show(&p.deployed),
                show(&p.desired)
            ));
        }
        out.extend(self.add.iter().map(|t| format!("+ instance {t}")));
        out.extend(
            self.outdated
                .iter()
                .map(|t| format!("~ instance {t} (outdated)")),
        );
        out.extend(self.remove.iter().map(|t| format!("- instance {t}")));
        if out.is_empty() {
            out.push(format!(
                "No changes. Stack set {name} and its {} instance(s) match the spec.",
                self.unchanged.len()
            ));
        }
        out
    }
}

/// One operation, followed to its end.
#[derive(Debug, Clone, Serialize)]
pub struct OperationReport {
    pub id: String,
    /// CREATE, UPDATE or DELETE (of the instances), as this module named it.
    pub action: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per-instance results (`ListStackSetOperationResults`).
    pub results: Vec<Instance>,
}

/// What an apply or destroy ended with (`--json`: the `report` object).
#[derive(Debug, Clone, Serialize)]
pub struct StackSetReport {
    pub engine: &'static str,
    pub stack_set: String,
    pub ok: bool,
    pub operations: Vec<OperationReport>,
    /// The instances after the last operation (none after a destroy).
    pub instances: Vec<Instance>,
    /// The stack set was deleted (destroy).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub makespan_s: f64,
}

impl StackSetReport {
    /// Targets whose instance is `CURRENT`: those to confirm with streamstack's own plan.
    pub fn current_targets(&self) -> Vec<Target> {
        self.instances
            .iter()
            .filter(|i| i.status == "CURRENT")
            .map(Instance::target)
            .collect()
    }

    /// Targets whose instance did not end `CURRENT`, with the reason.
    pub fn failed_targets(&self) -> Vec<(Target, String)> {
        self.instances
            .iter()
            .filter(|i| i.status != "CURRENT")
            .map(|i| {
                let why = i
                    .reason
                    .clone()
                    .or_else(|| i.detailed_status.clone())
                    .unwrap_or_else(|| i.status.clone());
                (i.target(), why)
            })
            .collect()
    }
}

/// The stack set's name: the stack's (a letter, then letters, digits and hyphens, at most 128).
pub fn stack_set_name(s: &Session) -> Result<String> {
    let name = s.cx.stack.clone();
    let ok = name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(name)
    } else {
        Err(Error::Config(format!(
            "stack name {name:?} is not a valid stack set name (a letter, then letters, digits \
             and hyphens, at most 128); rename the stack or use the direct engine"
        )))
    }
}

/// A template parsed from JSON or YAML (CloudFormation hands back what it was given).
pub fn parse_template(body: &str) -> Option<Value> {
    serde_json::from_str(body)
        .ok()
        .or_else(|| serde_yaml::from_str::<Value>(body).ok())
}

/// The template as compared: without its `Description` and the Metadata's streamstack version
/// and spec hash (they change with no effect on any resource).
pub fn normalized(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("Description");
    }
    if let Some(m) = t
        .pointer_mut("/Metadata/streamstack")
        .and_then(Value::as_object_mut)
    {
        m.remove("version");
        m.remove("spec_sha256");
    }
    t
}

/// Refuses per-target templates that differ: a stack set has one template. `rendered` is each
/// target's template (as [`super::template`] made it).
pub fn one_template(rendered: &[(Target, Value)]) -> Result<()> {
    let Some((first, t0)) = rendered.first() else {
        return Ok(());
    };
    let n0 = normalized(t0);
    match rendered.iter().find(|(_, t)| normalized(t) != n0) {
        None => Ok(()),
        Some((other, _)) => Err(Error::Config(format!(
            "--engine stacksets deploys one template to every target, but the spec renders \
             differently for {first} and {other} (per-target variables that change resources); \
             use the direct engine for this fleet, or make the variables the same"
        ))),
    }
}

/// The plan's difference, pure: `deployed` against the desired template, parameters and targets.
pub fn diff(
    name: &str,
    deployed: Option<&Deployed>,
    desired: &Value,
    desired_parameters: &BTreeMap<String, String>,
    targets: &[Target],
) -> StackSetPlan {
    let wanted: BTreeSet<Target> = targets.iter().cloned().collect();
    let mut plan = StackSetPlan {
        stack_set: name.to_string(),
        exists: deployed.is_some(),
        template_changed: false,
        parameters: Vec::new(),
        add: Vec::new(),
        remove: Vec::new(),
        outdated: Vec::new(),
        unchanged: Vec::new(),
        body: String::new(),
        desired_parameters: desired_parameters.clone(),
    };
    let Some(d) = deployed else {
        plan.add = wanted.into_iter().collect();
        return plan;
    };
    plan.template_changed = d.template.as_ref().map(normalized) != Some(normalized(desired));
    let keys: BTreeSet<&String> = d
        .parameters
        .keys()
        .chain(desired_parameters.keys())
        .collect();
    for k in keys {
        let (a, b) = (d.parameters.get(k), desired_parameters.get(k));
        if a != b {
            plan.parameters.push(ParameterChange {
                key: k.clone(),
                deployed: a.cloned(),
                desired: b.cloned(),
            });
        }
    }
    let have: BTreeMap<Target, &Instance> = d.instances.iter().map(|i| (i.target(), i)).collect();
    for t in &wanted {
        match have.get(t) {
            None => plan.add.push(t.clone()),
            Some(i) if i.status != "CURRENT" => plan.outdated.push(t.clone()),
            Some(_) => plan.unchanged.push(t.clone()),
        }
    }
    plan.remove = have
        .keys()
        .filter(|t| !wanted.contains(t))
        .cloned()
        .collect();
    plan
}

/// Targets grouped so that each group is a full product accounts × regions (one call each):
/// accounts with the same set of regions go together.
pub fn groups(targets: &[Target]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut by_account: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for t in targets {
        by_account
            .entry(t.account.as_str())
            .or_default()
            .insert(t.region.as_str());
    }
    let mut by_regions: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (account, regions) in by_account {
        let regions: Vec<String> = regions.into_iter().map(str::to_string).collect();
        by_regions
            .entry(regions)
            .or_default()
            .push(account.to_string());
    }
    by_regions
        .into_iter()
        .map(|(regions, accounts)| (accounts, regions))
        .collect()
}

fn not_found(e: &Error) -> bool {
    e.code() == Some("StackSetNotFoundException")
}

fn in_progress(e: &Error) -> bool {
    matches!(
        e.code(),
        Some("OperationInProgressException") | Some("StaleRequestException")
    )
}

fn call_as(opts: &StackSetOptions) -> Option<aws_sdk_cloudformation::types::CallAs> {
    (opts.permission_model == PermissionModel::ServiceManaged)
        .then_some(aws_sdk_cloudformation::types::CallAs::SelfValue)
}

/// The stack set and its instances, if there is one by that name.
pub async fn describe(s: &Session, name: &str, opts: &StackSetOptions) -> Result<Option<Deployed>> {
    let cf = &s.cx.clients.cloudformation;
    let out = match cf
        .describe_stack_set()
        .stack_set_name(name)
        .set_call_as(call_as(opts))
        .send()
        .await
        .op("cloudformation:DescribeStackSet")
    {
        Ok(o) => o,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(set) = out.stack_set else {
        return Ok(None);
    };
    if set.status.as_ref().map(|x| x.as_str()) == Some("DELETED") {
        return Ok(None);
    }
    let mut d = Deployed {
        id: set.stack_set_id.clone().unwrap_or_else(|| name.to_string()),
        template: set.template_body.as_deref().and_then(parse_template),
        parameters: set
            .parameters
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.parameter_key?, p.parameter_value?)))
            .collect(),
        tags: set
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value?)))
            .collect(),
        instances: Vec::new(),
    };
    d.instances = instances(s, name, opts).await?;
    Ok(Some(d))
}

/// Every instance of the stack set (`ListStackInstances`, all pages).
pub async fn instances(s: &Session, name: &str, opts: &StackSetOptions) -> Result<Vec<Instance>> {
    let cf = &s.cx.clients.cloudformation;
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = cf
            .list_stack_instances()
            .stack_set_name(name)
            .set_call_as(call_as(opts))
            .set_next_token(token)
            .send()
            .await
            .op("cloudformation:ListStackInstances")?;
        for i in page.summaries.unwrap_or_default() {
            let (Some(account), Some(region)) = (i.account, i.region) else {
                return Err(Error::Incomplete {
                    operation: "cloudformation:ListStackInstances",
                    field: "Account/Region",
                });
            };
            out.push(Instance {
                account,
                region,
                status: i
                    .status
                    .map_or_else(|| "UNKNOWN".into(), |x| x.as_str().to_string()),
                detailed_status: i
                    .stack_instance_status
                    .and_then(|x| x.detailed_status)
                    .map(|x| x.as_str().to_string()),
                reason: i.status_reason.filter(|r| !r.is_empty()),
                organizational_unit: i.organizational_unit_id,
            });
        }
        token = page.next_token;
        if token.is_none() {
            out.sort_by_key(Instance::target);
            return Ok(out);
        }
    }
}

/// Refuses a stack set streamstack did not make for this stack.
fn check_owned(s: &Session, name: &str, d: &Deployed) -> Result<()> {
    let tagged = d.tags.get(TAG_STACK) == Some(&s.cx.stack);
    let meta = d
        .template
        .as_ref()
        .and_then(|t| t.pointer("/Metadata/streamstack/stack"))
        .and_then(Value::as_str);
    if tagged && meta == Some(s.cx.stack.as_str()) {
        return Ok(());
    }
    Err(Error::Config(format!(
        "stack set {name} ({}) exists but streamstack did not make it for stack {}: it needs the \
         tag {TAG_STACK}={} and template Metadata streamstack.stack. streamstack will not \
         change or delete it; rename the stack in the spec or remove that stack set yourself",
        d.id, s.cx.stack, s.cx.stack
    )))
}

/// The stamps: the deployed stack set's (so a no-op stays a no-op), else now.
fn stamps(s: &Session, deployed: Option<&Deployed>) -> Stamps {
    let created = deployed
        .and_then(|d| d.parameters.get(CREATED_AT_PARAMETER))
        .filter(|c| crate::time::parse_rfc3339(c).is_some())
        .cloned()
        .unwrap_or_else(|| crate::time::rfc3339(std::time::SystemTime::now()));
    stamps_from(&s.validated, created)
}

fn parameter_map(stamps: &Stamps) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert(CREATED_AT_PARAMETER.to_string(), stamps.created_at.clone());
    if let Some(e) = &stamps.expires_at {
        p.insert(EXPIRES_AT_PARAMETER.to_string(), e.clone());
    }
    p
}

/// The plan: the stack set against the spec's template and `targets`. A stack set of that
/// name that streamstack did not make is refused.
pub async fn plan(s: &Session, targets: &[Target], opts: &StackSetOptions) -> Result<StackSetPlan> {
    let name = stack_set_name(s)?;
    if opts.permission_model == PermissionModel::ServiceManaged
        && opts.organizational_units.is_empty()
    {
        return Err(Error::Config(
            "--permission-model service-managed deploys to organizational units: the fleet \
             must name at least one OU"
                .into(),
        ));
    }
    let deployed = describe(s, &name, opts).await?;
    if let Some(d) = &deployed {
        check_owned(s, &name, d)?;
    }
    let stamps = stamps(s, deployed.as_ref());
    let template = super::template(&s.validated.model, &s.spec_sha256, &stamps)?;
    let mut plan = diff(
        &name,
        deployed.as_ref(),
        &template,
        &parameter_map(&stamps),
        targets,
    );
    plan.body = super::yaml::to_string(&template);
    Ok(plan)
}

fn parameters(p: &BTreeMap<String, String>) -> Vec<Parameter> {
    p.iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect()
}

fn instance_address(account: &str, region: &str) -> Address {
    Address::new(STACKSET, &format!("{account}/{region}"))
}

/// Carries `plan` out: the stack set, then its instances; each operation followed to its end.
pub async fn apply(
    s: &Session,
    plan: &StackSetPlan,
    opts: &StackSetOptions,
) -> Result<StackSetReport> {
    let start = Instant::now();
    let name = plan.stack_set.clone();
    let mut report = StackSetReport {
        engine: "stacksets",
        stack_set: name.clone(),
        ok: true,
        operations: Vec::new(),
        instances: Vec::new(),
        deleted: false,
        makespan_s: 0.0,
    };
    let accounts: BTreeSet<&str> = plan
        .add
        .iter()
        .chain(&plan.unchanged)
        .chain(&plan.outdated)
        .map(|t| t.account.as_str())
        .collect();
    let prefs = operation_preferences(preferences(accounts.len(), opts));
    // The template is sent only to create or update the stack set.
    let sends_template = !plan.exists || plan.template_changed || !plan.parameters.is_empty();
    let staged = match staging::placement(&s.cx.stack, plan.body.len())? {
        Placement::S3 if sends_template => Some(staging::stage(&s.cx, &plan.body).await?),
        _ => None,
    };
    let result = apply_steps(s, plan, opts, &prefs, staged.as_ref(), &mut report).await;
    if let Some(st) = &staged {
        staging::unstage(&s.cx, st).await;
    }
    result?;
    report.instances = instances(s, &name, opts).await?;
    let wanted: BTreeSet<Target> = plan
        .add
        .iter()
        .chain(&plan.unchanged)
        .chain(&plan.outdated)
        .cloned()
        .collect();
    let current: BTreeSet<Target> = report.current_targets().into_iter().collect();
    report.ok = report.ok && wanted.is_subset(&current);
    report.makespan_s = start.elapsed().as_secs_f64();
    Ok(report)
}

async fn apply_steps(
    s: &Session,
    plan: &StackSetPlan,
    opts: &StackSetOptions,
    prefs: &StackSetOperationPreferences,
    staged: Option<&Staged>,
    report: &mut StackSetReport,
) -> Result<()> {
    let name = &plan.stack_set;
    let cf = &s.cx.clients.cloudformation;
    let (body, url) = match staged {
        Some(st) => (None, Some(st.url.clone())),
        None => (Some(plan.body.clone()), None),
    };
    let params = parameters(&plan.desired_parameters);
    let address = Address::new(STACKSET, name);
    if !plan.exists {
        let began = Instant::now();
        s.cx.events.send(Event::Start {
            address: address.clone(),
            action: "create stack set".into(),
        });
        let service = opts.permission_model == PermissionModel::ServiceManaged;
        let admin_role = (!service).then(|| {
            opts.administration_role_arn.clone().unwrap_or_else(|| {
                format!(
                    "arn:{}:iam::{}:role/{ADMINISTRATION_ROLE}",
                    s.cx.env.partition, s.cx.env.account_id
                )
            })
        });
        let exec_role = (!service).then(|| {
            opts.execution_role_name
                .clone()
                .unwrap_or_else(|| EXECUTION_ROLE.to_string())
        });
        cf.create_stack_set()
            .stack_set_name(name)
            .description(format!(
                "streamstack stack {}: a Kinesis log pipeline per account and region",
                s.cx.stack
            ))
            .set_template_body(body.clone())
            .set_template_url(url.clone())
            .set_parameters(Some(params.clone()))
            .capabilities(Capability::CapabilityNamedIam)
            .tags(Tag::builder().key(TAG_STACK).value(&s.cx.stack).build())
            .permission_model(if service {
                PermissionModels::ServiceManaged
            } else {
                PermissionModels::SelfManaged
            })
            .set_administration_role_arn(admin_role)
            .set_execution_role_name(exec_role)
            .set_auto_deployment(service.then(|| {
                AutoDeployment::builder()
                    .enabled(true)
                    .retain_stacks_on_account_removal(false)
                    .build()
            }))
            .set_call_as(call_as(opts))
            .send()
            .await
            .op("cloudformation:CreateStackSet")?;
        s.cx.events.send(Event::Done {
            address: address.clone(),
            action: "create stack set".into(),
            elapsed: began.elapsed(),
        });
    } else if plan.template_changed || !plan.parameters.is_empty() {
        let id = retry_busy(s, name, || async {
            cf.update_stack_set()
                .stack_set_name(name)
                .set_template_body(body.clone())
                .set_template_url(url.clone())
                .set_parameters(Some(params.clone()))
                .capabilities(Capability::CapabilityNamedIam)
                .tags(Tag::builder().key(TAG_STACK).value(&s.cx.stack).build())
                .operation_preferences(prefs.clone())
                .set_call_as(call_as(opts))
                .send()
                .await
                .op("cloudformation:UpdateStackSet")
                .map(|o| o.operation_id)
        })
        .await?;
        follow(s, name, id, "UPDATE", opts, report).await?;
    }
    for (accounts, regions) in groups(&plan.add) {
        let id = retry_busy(s, name, || async {
            cf.create_stack_instances()
                .stack_set_name(name)
                .set_accounts(
                    (opts.permission_model == PermissionModel::SelfManaged)
                        .then(|| accounts.clone()),
                )
                .set_deployment_targets(ou_targets(opts, Some(&accounts)))
                .set_regions(Some(regions.clone()))
                .operation_preferences(prefs.clone())
                .set_call_as(call_as(opts))
                .send()
                .await
                .op("cloudformation:CreateStackInstances")
                .map(|o| o.operation_id)
        })
        .await?;
        follow(s, name, id, "CREATE", opts, report).await?;
    }
    // Outdated instances are redeployed, unless an update of the stack set just did.
    if !plan.template_changed && plan.parameters.is_empty() {
        for (accounts, regions) in groups(&plan.outdated) {
            let id = retry_busy(s, name, || async {
                cf.update_stack_instances()
                    .stack_set_name(name)
                    .set_accounts(
                        (opts.permission_model == PermissionModel::SelfManaged)
                            .then(|| accounts.clone()),
                    )
                    .set_deployment_targets(ou_targets(opts, Some(&accounts)))
                    .set_regions(Some(regions.clone()))
                    .operation_preferences(prefs.clone())
                    .set_call_as(call_as(opts))
                    .send()
                    .await
                    .op("cloudformation:UpdateStackInstances")
                    .map(|o| o.operation_id)
            })
            .await?;
            follow(s, name, id, "UPDATE", opts, report).await?;
        }
    }
    for (accounts, regions) in groups(&plan.remove) {
        delete_instances(s, name, &accounts, &regions, opts, prefs, report).await?;
    }
    Ok(())
}

/// Service-managed deployment targets: the OUs, narrowed to `accounts` when given.
fn ou_targets(opts: &StackSetOptions, accounts: Option<&Vec<String>>) -> Option<DeploymentTargets> {
    if opts.permission_model != PermissionModel::ServiceManaged {
        return None;
    }
    let mut t = DeploymentTargets::builder()
        .set_organizational_unit_ids(Some(opts.organizational_units.clone()));
    if let Some(accounts) = accounts {
        t = t
            .set_accounts(Some(accounts.clone()))
            .account_filter_type(aws_sdk_cloudformation::types::AccountFilterType::Intersection);
    }
    Some(t.build())
}

async fn delete_instances(
    s: &Session,
    name: &str,
    accounts: &[String],
    regions: &[String],
    opts: &StackSetOptions,
    prefs: &StackSetOperationPreferences,
    report: &mut StackSetReport,
) -> Result<()> {
    let cf = &s.cx.clients.cloudformation;
    let accounts = accounts.to_vec();
    let id = retry_busy(s, name, || async {
        cf.delete_stack_instances()
            .stack_set_name(name)
            .set_accounts(
                (opts.permission_model == PermissionModel::SelfManaged).then(|| accounts.clone()),
            )
            .set_deployment_targets(ou_targets(opts, Some(&accounts)))
            .set_regions(Some(regions.to_vec()))
            .retain_stacks(false)
            .operation_preferences(prefs.clone())
            .set_call_as(call_as(opts))
            .send()
            .await
            .op("cloudformation:DeleteStackInstances")
            .map(|o| o.operation_id)
    })
    .await?;
    follow(s, name, id, "DELETE", opts, report).await
}

/// Runs `call` until it is not refused for another operation in progress (StackSets runs one
/// operation at a time per stack set), waiting with backoff; returns the operation id.
async fn retry_busy<F, Fut>(s: &Session, name: &str, mut call: F) -> Result<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        match call().await {
            Ok(Some(id)) => return Ok(id),
            Ok(None) => {
                return Err(Error::Incomplete {
                    operation: "cloudformation stack set operation",
                    field: "OperationId",
                })
            }
            Err(e) if in_progress(&e) && start.elapsed() < OPERATION_TIMEOUT => {
                s.cx.events.send(Event::Retry {
                    address: Address::new(STACKSET, name),
                    error: e.message(),
                    elapsed: start.elapsed(),
                });
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Follows operation `id` to its end, printing its per-instance results as events; adds it to
/// the report (which is not ok unless it SUCCEEDED with every instance SUCCEEDED).
async fn follow(
    s: &Session,
    name: &str,
    id: String,
    action: &str,
    opts: &StackSetOptions,
    report: &mut StackSetReport,
) -> Result<()> {
    let cf = &s.cx.clients.cloudformation;
    let address = Address::new(STACKSET, name);
    let what = format!("{} instances (operation {id})", action.to_ascii_lowercase());
    let start = Instant::now();
    s.cx.events.send(Event::Start {
        address: address.clone(),
        action: what.clone(),
    });
    let mut pause = Duration::from_millis(500);
    let (status, reason) = loop {
        let out = cf
            .describe_stack_set_operation()
            .stack_set_name(name)
            .operation_id(&id)
            .set_call_as(call_as(opts))
            .send()
            .await
            .op("cloudformation:DescribeStackSetOperation")?;
        let op = out.stack_set_operation.ok_or(Error::Incomplete {
            operation: "cloudformation:DescribeStackSetOperation",
            field: "StackSetOperation",
        })?;
        let status = op
            .status
            .as_ref()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default();
        if matches!(status.as_str(), "SUCCEEDED" | "FAILED" | "STOPPED") {
            break (status, op.status_reason.filter(|r| !r.is_empty()));
        }
        if start.elapsed() > OPERATION_TIMEOUT {
            return Err(Error::Timeout {
                address,
                what: format!("stack set operation {id} ({status})"),
                elapsed: start.elapsed(),
            });
        }
        s.cx.events.send(Event::Progress {
            address: address.clone(),
            waiting_for: format!("operation {id} ({status})"),
            elapsed: start.elapsed(),
        });
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(15));
    };
    let results = operation_results(s, name, &id, opts).await?;
    for r in &results {
        let a = instance_address(&r.account, &r.region);
        let act = format!("stack set {}", action.to_ascii_lowercase());
        s.cx.events.send(if r.status == "SUCCEEDED" {
            Event::Done {
                address: a,
                action: act,
                elapsed: start.elapsed(),
            }
        } else {
            Event::Failed {
                address: a,
                action: act,
                error: format!(
                    "{}{}",
                    r.status,
                    r.reason
                        .as_ref()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                ),
            }
        });
    }
    let ok = status == "SUCCEEDED" && results.iter().all(|r| r.status == "SUCCEEDED");
    s.cx.events.send(if ok {
        Event::Done {
            address,
            action: what,
            elapsed: start.elapsed(),
        }
    } else {
        Event::Failed {
            address,
            action: what,
            error: format!(
                "{status}{}",
                reason
                    .as_ref()
                    .map(|x| format!(": {x}"))
                    .unwrap_or_default()
            ),
        }
    });
    report.ok &= ok;
    report.operations.push(OperationReport {
        id,
        action: action.to_string(),
        status,
        reason,
        results,
    });
    Ok(())
}

/// `ListStackSetOperationResults`, all pages: each instance's result and reason.
async fn operation_results(
    s: &Session,
    name: &str,
    id: &str,
    opts: &StackSetOptions,
) -> Result<Vec<Instance>> {
    let cf = &s.cx.clients.cloudformation;
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = cf
            .list_stack_set_operation_results()
            .stack_set_name(name)
            .operation_id(id)
            .set_call_as(call_as(opts))
            .set_next_token(token)
            .send()
            .await
            .op("cloudformation:ListStackSetOperationResults")?;
        for r in page.summaries.unwrap_or_default() {
            out.push(Instance {
                account: r.account.unwrap_or_default(),
                region: r.region.unwrap_or_default(),
                status: r
                    .status
                    .map_or_else(|| "UNKNOWN".into(), |x| x.as_str().to_string()),
                detailed_status: None,
                reason: r.status_reason.filter(|x| !x.is_empty()),
                organizational_unit: r.organizational_unit_id,
            });
        }
        token = page.next_token;
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Deletes every instance (their stacks too: RetainStacks false), followed to the end, then
/// the stack set. Nothing to delete is a success; a stack set streamstack did not make is
/// refused.
pub async fn destroy(s: &Session, opts: &StackSetOptions) -> Result<StackSetReport> {
    let start = Instant::now();
    let name = stack_set_name(s)?;
    let mut report = StackSetReport {
        engine: "stacksets",
        stack_set: name.clone(),
        ok: true,
        operations: Vec::new(),
        instances: Vec::new(),
        deleted: false,
        makespan_s: 0.0,
    };
    let Some(d) = describe(s, &name, opts).await? else {
        return Ok(report);
    };
    check_owned(s, &name, &d)?;
    let targets: Vec<Target> = d.instances.iter().map(Instance::target).collect();
    let accounts: BTreeSet<&str> = targets.iter().map(|t| t.account.as_str()).collect();
    let prefs = operation_preferences(preferences(accounts.len(), opts));
    let mut opts = opts.clone();
    if opts.permission_model == PermissionModel::ServiceManaged {
        // The instances' own OUs, whatever the fleet names now.
        let ous: BTreeSet<String> = d
            .instances
            .iter()
            .filter_map(|i| i.organizational_unit.clone())
            .chain(opts.organizational_units.iter().cloned())
            .collect();
        opts.organizational_units = ous.into_iter().collect();
    }
    for (accounts, regions) in groups(&targets) {
        delete_instances(s, &name, &accounts, &regions, &opts, &prefs, &mut report).await?;
    }
    report.instances = instances(s, &name, &opts).await?;
    if !report.instances.is_empty() {
        report.ok = false;
        report.makespan_s = start.elapsed().as_secs_f64();
        return Ok(report);
    }
    let address = Address::new(STACKSET, &name);
    let began = Instant::now();
    s.cx.events.send(Event::Start {
        address: address.clone(),
        action: "delete stack set".into(),
    });
    let cf = &s.cx.clients.cloudformation;
    let mut pause = Duration::from_secs(1);
    loop {
        match cf
            .delete_stack_set()
            .stack_set_name(&name)
            .set_call_as(call_as(&opts))
            .send()
            .await
            .op("cloudformation:DeleteStackSet")
        {
            Ok(_) => break,
            Err(e) if not_found(&e) => break,
            Err(e) if in_progress(&e) && began.elapsed() < OPERATION_TIMEOUT => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
    s.cx.events.send(Event::Done {
        address,
        action: "delete stack set".into(),
        elapsed: began.elapsed(),
    });
    report.deleted = true;
    report.makespan_s = start.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(a: &str, r: &str) -> Target {
        Target::new(a, r)
    }

    fn instance(a: &str, r: &str, status: &str) -> Instance {
        Instance {
            account: a.into(),
            region: r.into(),
            status: status.into(),
            detailed_status: None,
            reason: None,
            organizational_unit: None,
        }
    }

    fn template(stack: &str, bucket: &str) -> Value {
        json!({
            "Description": "streamstack stack lab (rendered by streamstack 9.9.9)",
            "Metadata": {"streamstack": {"stack": stack, "version": "9.9.9", "spec_sha256": "ab"}},
            "Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket}}},
        })
    }

    fn params(created: &str) -> BTreeMap<String, String> {
        [(CREATED_AT_PARAMETER.to_string(), created.to_string())]
            .into_iter()
            .collect()
    }

    #[test]
    fn a_new_stack_set_adds_every_target_once() {
        let targets = [
            t("111", "eu-west-1"),
            t("222", "eu-west-1"),
            t("111", "eu-west-1"),
        ];
        let p = diff("lab", None, &template("lab", "b"), &params("x"), &targets);
        assert!(!p.exists && p.has_changes());
        assert_eq!(p.add, vec![t("111", "eu-west-1"), t("222", "eu-west-1")]);
        assert!(p.remove.is_empty() && p.outdated.is_empty());
    }

    #[test]
    fn the_same_template_parameters_and_instances_are_no_changes() {
        // Only the Description and the Metadata's version and hash differ: no change.
        let mut deployed_template = template("lab", "b");
        deployed_template["Description"] = json!("other");
        deployed_template["Metadata"]["streamstack"]["version"] = json!("0.1.0");
        deployed_template["Metadata"]["streamstack"]["spec_sha256"] = json!("cd");
        let d = Deployed {
            template: Some(deployed_template),
            parameters: params("2026-01-01T00:00:00Z"),
            instances: vec![
                instance("111", "eu-west-1", "CURRENT"),
                instance("222", "eu-west-1", "CURRENT"),
            ],
            ..Default::default()
        };
        let targets = [t("222", "eu-west-1"), t("111", "eu-west-1")];
        let p = diff(
            "lab",
            Some(&d),
            &template("lab", "b"),
            &params("2026-01-01T00:00:00Z"),
            &targets,
        );
        assert!(!p.has_changes(), "{p:?}");
        assert_eq!(p.unchanged.len(), 2);
        assert!(p.lines()[0].starts_with("No changes."), "{:?}", p.lines());
    }

    #[test]
    fn a_plan_names_template_parameter_and_instance_differences() {
        let d = Deployed {
            template: Some(template("lab", "old")),
            parameters: params("2026-01-01T00:00:00Z"),
            instances: vec![
                instance("111", "eu-west-1", "CURRENT"),
                instance("222", "eu-west-1", "OUTDATED"),
                instance("333", "eu-west-1", "CURRENT"),
            ],
            ..Default::default()
        };
        let targets = [
            t("111", "eu-west-1"),
            t("222", "eu-west-1"),
            t("444", "eu-west-1"),
        ];
        let p = diff(
            "lab",
            Some(&d),
            &template("lab", "new"),
            &params("2026-02-01T00:00:00Z"),
            &targets,
        );
        assert!(p.template_changed);
        assert_eq!(p.parameters.len(), 1);
        assert_eq!(
            p.parameters[0].deployed.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(p.add, vec![t("444", "eu-west-1")]);
        assert_eq!(p.outdated, vec![t("222", "eu-west-1")]);
        assert_eq!(p.remove, vec![t("333", "eu-west-1")]);
        assert_eq!(p.unchanged, vec![t("111", "eu-west-1")]);
        let lines = p.lines().join("\n");
        assert!(lines.contains("- instance 333/eu-west-1"), "{lines}");
        assert!(lines.contains("+ instance 444/eu-west-1"), "{lines}");
    }

    #[test]
    fn an_unreadable_deployed_template_is_a_change() {
        let d = Deployed::default();
        let p = diff(
            "lab",
            Some(&d),
            &template("lab", "b"),
            &BTreeMap::new(),
            &[],
        );
        assert!(p.template_changed);
    }

    #[test]
    fn templates_parse_from_json_and_yaml_alike() {
        let j = parse_template(r#"{"Resources": {"A": {"Type": "X"}}}"#);
        let y = parse_template("Resources:\n  A:\n    Type: X\n");
        assert!(j.is_some());
        assert_eq!(j, y);
    }

    #[test]
    fn preferences_do_not_crawl_by_default() {
        let p = preferences(30, &StackSetOptions::default());
        assert_eq!(
            p,
            Preferences {
                max_concurrent: 30,
                failure_tolerance: 29,
                soft: false
            }
        );
        // No accounts yet (a destroy of nothing) still sends a valid concurrency.
        assert_eq!(
            preferences(0, &StackSetOptions::default()).max_concurrent,
            1
        );
        assert_eq!(
            preferences(0, &StackSetOptions::default()).failure_tolerance,
            0
        );
    }

    #[test]
    fn caller_preferences_are_kept_and_soft_when_strict_would_refuse_them() {
        let opts = StackSetOptions {
            max_concurrent: Some(10),
            failure_tolerance: Some(0),
            ..Default::default()
        };
        let p = preferences(30, &opts);
        assert_eq!(
            (p.max_concurrent, p.failure_tolerance, p.soft),
            (10, 0, true)
        );
        let opts = StackSetOptions {
            max_concurrent: Some(0),
            failure_tolerance: Some(3),
            ..Default::default()
        };
        let p = preferences(30, &opts);
        assert_eq!(
            (p.max_concurrent, p.failure_tolerance, p.soft),
            (1, 3, false)
        );
        let built = operation_preferences(p);
        assert_eq!(
            built.region_concurrency_type(),
            Some(&RegionConcurrencyType::Parallel)
        );
    }

    #[test]
    fn groups_are_full_products_of_accounts_and_regions() {
        let targets = [
            t("111", "eu-west-1"),
            t("111", "us-east-1"),
            t("222", "eu-west-1"),
            t("222", "us-east-1"),
            t("333", "eu-west-1"),
        ];
        let g = groups(&targets);
        assert_eq!(
            g,
            vec![
                (vec!["333".to_string()], vec!["eu-west-1".to_string()]),
                (
                    vec!["111".to_string(), "222".to_string()],
                    vec!["eu-west-1".to_string(), "us-east-1".to_string()]
                ),
            ]
        );
        let covered: usize = g.iter().map(|(a, r)| a.len() * r.len()).sum();
        assert_eq!(covered, targets.len());
    }

    #[test]
    fn differing_per_target_templates_are_refused() {
        let a = (t("111", "eu-west-1"), template("lab", "b"));
        let mut same = template("lab", "b");
        same["Description"] = json!("another version");
        let b = (t("222", "eu-west-1"), same);
        assert!(one_template(&[a.clone(), b]).is_ok());
        let c = (t("333", "eu-west-1"), template("lab", "other"));
        let err = one_template(&[a, c]).expect_err("differing templates");
        assert!(err.to_string().contains("333/eu-west-1"), "{err}");
    }

    #[test]
    fn the_operator_plans_with_reads_and_applies_with_writes_on_its_stack_set_only() {
        use crate::operator_policy::{stacksets_statements, Purpose};
        let env = crate::model::Env::new("123456789012", "eu-west-1", "lab");
        let actions = |p: Purpose| -> Vec<String> {
            stacksets_statements(&env, "lab", ADMINISTRATION_ROLE, p)
                .into_iter()
                .flatten()
                .flat_map(|st| {
                    st["Action"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|a| a.as_str().map(str::to_string))
                })
                .collect()
        };
        let plan = actions(Purpose::Plan);
        assert!(
            plan.iter()
                .all(|a| a.contains(":Describe") || a.contains(":List")),
            "{plan:?}"
        );
        let apply = actions(Purpose::Apply);
        for a in [
            "cloudformation:CreateStackSet",
            "cloudformation:DeleteStackInstances",
            "iam:PassRole",
        ] {
            assert!(apply.iter().any(|x| x == a), "{a} in {apply:?}");
        }
        let docs = stacksets_statements(&env, "lab", ADMINISTRATION_ROLE, Purpose::Apply);
        let text = serde_json::to_string(&docs).unwrap_or_default();
        assert!(text.contains("stackset/lab:*"), "{text}");
        assert!(!text.contains("stackset/*"), "{text}");
    }

    #[test]
    fn service_managed_targets_are_the_ous_narrowed_to_the_fleet_accounts() {
        let accounts = vec!["111".to_string()];
        assert!(ou_targets(&StackSetOptions::default(), Some(&accounts)).is_none());
        let opts = StackSetOptions {
            permission_model: PermissionModel::ServiceManaged,
            organizational_units: vec!["ou-ab12-cd34ef56".into()],
            ..Default::default()
        };
        let t = ou_targets(&opts, Some(&accounts)).expect("deployment targets");
        assert_eq!(
            t.organizational_unit_ids(),
            ["ou-ab12-cd34ef56".to_string()]
        );
        assert_eq!(t.accounts(), ["111".to_string()]);
        assert_eq!(
            t.account_filter_type(),
            Some(&aws_sdk_cloudformation::types::AccountFilterType::Intersection)
        );
        assert!(call_as(&opts).is_some() && call_as(&StackSetOptions::default()).is_none());
    }
}
