//! The operations behind the commands, as a library: open a session (spec + AWS), read live
//! state, plan, apply (a saved plan checked first), destroy (and prove nothing remains),
//! outputs, render. Commands are thin wrappers that print and ask; nothing here names a kind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aws::{AwsOptions, Clients};
use crate::events::Events;
use crate::executor::{self, Report};
use crate::kinds::{self, Cx, Live, Render, Timeouts};
use crate::model::Env;
use crate::model::Model;
use crate::plan::{self, Plan};
use crate::spec::{self, LoadOptions, Validated};
use crate::{Error, Result};

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

fn sha256_hex(bytes: &[u8]) -> String {
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
    let offline = spec::load_file(spec_path, &opts.load).map_err(Error::Spec)?;
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
    let account_id = clients.account_id().await?;
    let load = LoadOptions {
        ambient_region: Some(clients.region.clone()),
        account_id: Some(account_id.clone()),
        ..opts.load.clone()
    };
    let validated = spec::load_file(spec_path, &load).map_err(Error::Spec)?;
    let stack = validated.spec.stack.clone();
    let env = Env::new(&account_id, &clients.region, &stack);
    let journal = std::sync::Arc::new(crate::journal::Journal::open(
        &account_id,
        &env.region,
        &stack,
    ));
    Ok(Session {
        spec_path: spec_path.to_path_buf(),
        spec_sha256: sha256_hex(&text),
        cx: Cx {
            clients,
            env,
            stack,
            events: opts.events.clone(),
            timeouts: opts.timeouts,
            journal,
            tagged: Default::default(),
        },
        validated,
    })
}

impl Session {
    /// Everything live that belongs to the stack or has one of its names; kinds are read
    /// concurrently.
    pub async fn live(&self) -> Result<Vec<Live>> {
        let desired = &self.validated.model;
        // A fresh view of what is tagged as the stack's on every read.
        let cx = Cx {
            tagged: Default::default(),
            ..self.cx.clone()
        };
        let found =
            futures::future::try_join_all(kinds::REGISTRY.iter().map(|h| h.discover(&cx, desired)))
                .await?;
        let mut all: Vec<Live> = found.into_iter().flatten().collect();
        // An untagged resource this stack began creating (a run that died before tagging it,
        // or an endpoint that ignores creation tags) is the stack's own: the plan tags it.
        for l in all.iter_mut().filter(|l| !l.ours) {
            if self
                .cx
                .journal
                .created_it(l.address().kind, &l.resource.name, l.created)
            {
                tracing::info!(
                    "{} ({}) is untagged but this stack began creating it: adopting it",
                    l.address(),
                    l.resource.name
                );
                l.ours = true;
            }
        }
        all.sort_by(|a, b| (a.address(), &a.id).cmp(&(b.address(), &b.id)));
        Ok(all)
    }

    pub fn plan(&self, live: &[Live]) -> Result<Plan> {
        Ok(plan::plan(&self.validated.model, live)?)
    }

    /// The plan to apply and the live state it was computed from. With a saved plan, the spec
    /// must be unchanged and a fresh plan must equal the saved one.
    pub async fn plan_for_apply(&self, saved: Option<&PlanFile>) -> Result<(Plan, Vec<Live>)> {
        let live = self.live().await?;
        let plan = self.plan(&live)?;
        if let Some(f) = saved {
            f.check(self, &plan)?;
        }
        Ok((plan, live))
    }

    pub async fn apply(&self, plan: &Plan, live: &[Live], parallelism: usize) -> Report {
        executor::apply(&self.cx, plan, &self.validated.model, live, parallelism).await
    }

    /// What `destroy` would delete: every live resource of the stack. Same-named resources that
    /// are not the stack's are returned apart; they are left alone.
    pub async fn plan_destroy(&self) -> Result<DestroyPlan> {
        let live = self.live().await?;
        let plan = plan::destroy_plan(&self.validated.model, &live);
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
        let left: Vec<Live> = self.live().await?.into_iter().filter(|l| l.ours).collect();
        let mut remaining: Vec<String> = left
            .iter()
            .map(|l| format!("{} ({})", l.address(), l.id))
            .collect();
        remaining.extend(self.sweep(&left).await?);
        Ok((report, remaining))
    }

    /// ARNs tagged as the stack's that no live resource in `known` accounts for. Instances and
    /// their volumes are left to host discovery: terminated instances keep their tags a while.
    pub async fn sweep(&self, known: &[Live]) -> Result<Vec<String>> {
        let cx = Cx {
            tagged: Default::default(),
            ..self.cx.clone()
        };
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

/// A plan saved by `plan --out`: the plan plus what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub streamstack_plan: String,
    pub spec_path: PathBuf,
    pub spec_sha256: String,
    pub vars: Vec<(String, String)>,
    pub plan: Plan,
}

impl PlanFile {
    pub fn new(session: &Session, vars: &[(String, String)], plan: &Plan) -> Self {
        PlanFile {
            streamstack_plan: plan::FORMAT_VERSION.into(),
            spec_path: session.spec_path.clone(),
            spec_sha256: session.spec_sha256.clone(),
            vars: vars.to_vec(),
            plan: plan.clone(),
        }
    }

    /// Reads a plan file; `None` if the file is not one (then it is a spec).
    pub fn read(path: &Path) -> Option<PlanFile> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Checks that the spec is unchanged and that a fresh plan equals the saved one.
    pub fn check(&self, session: &Session, fresh: &Plan) -> Result<()> {
        if session.spec_sha256 != self.spec_sha256 {
            return Err(Error::StalePlan(format!(
                "{} changed since the plan was saved; run plan again",
                self.spec_path.display()
            )));
        }
        if fresh != &self.plan {
            return Err(Error::StalePlan(
                "the live state changed since the plan was saved; run plan again".into(),
            ));
        }
        Ok(())
    }
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
