//! The two engines behind one flow. `plan`, `apply` and `destroy` do the same steps whichever
//! engine deploys (plan, show, confirm, carry out, report); only the steps themselves differ:
//! streamstack's own engine (`ops` and the executor: AWS API calls, in parallel) or
//! CloudFormation (`cloudformation::engine`: one stack, through change sets). The commands run
//! the flow once, over these types.

use serde_json::Value;

use crate::cloudformation::engine::{self, ChangeSet, Deployed, StackReport};
use crate::executor::Report;
use crate::kinds::Live;
use crate::lock::Holder;
use crate::ops::{DestroyPlan, PlanFile, Session};
use crate::plan::Plan;
use crate::{Error, Result};

/// Which engine deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// streamstack's own: AWS API calls, in parallel, with its own waits.
    Streamstack,
    /// A CloudFormation stack named after the stack, deployed through change sets.
    Cloudformation,
    /// A StackSet over a fleet (`cloudformation::stacksets`): run by the fleet runner, never
    /// on one account; the flow here refuses it.
    Stacksets,
}

/// Why `--engine stacksets` is refused without a fleet.
pub const STACKSETS_NEED_A_FLEET: &str = "--engine stacksets deploys a fleet: give --fleet FILE";

fn stacksets_need_a_fleet() -> Error {
    Error::Config(STACKSETS_NEED_A_FLEET.into())
}

/// What `plan` shows, and the lock another run holds, if any: plan takes no lock, but says when
/// an apply or destroy is under way (streamstack's own engine asks alongside its discovery). A
/// CloudFormation change set made only to be shown is to be [`Planned::discard`]ed.
pub async fn plan(engine: Engine, s: &Session) -> Result<(Planned, Option<Holder>)> {
    match engine {
        Engine::Streamstack => {
            // The lock is only mentioned: a plan whose credentials cannot read it still plans.
            let held = async {
                s.lock_held().await.or_else(|e| {
                    tracing::warn!("could not read the stack's lock: {e}");
                    Ok::<_, Error>(None)
                })
            };
            let (live, held) = futures::try_join!(s.live(), held)?;
            let plan = s.plan(&live)?;
            Ok((Planned::Own { plan, live }, held))
        }
        Engine::Cloudformation => Ok((Planned::Stack(engine::change_set(s).await?), None)),
        Engine::Stacksets => Err(stacksets_need_a_fleet()),
    }
}

/// What an apply is about to do, and what it was computed from.
pub enum Planned {
    Own { plan: Plan, live: Vec<Live> },
    Stack(ChangeSet),
}

/// The plan to apply. A saved plan (`plan --out`) is streamstack's own: it is checked against a
/// fresh one (see [`Session::plan_for_apply`]) and refused with CloudFormation.
pub async fn plan_apply(engine: Engine, s: &Session, saved: Option<&PlanFile>) -> Result<Planned> {
    match (engine, saved) {
        (Engine::Streamstack, saved) => {
            let (plan, live) = s.plan_for_apply(saved).await?;
            Ok(Planned::Own { plan, live })
        }
        (Engine::Cloudformation, Some(_)) => Err(Error::Config(
            "a saved plan is streamstack's own; with --engine cloudformation, apply the spec"
                .into(),
        )),
        (Engine::Cloudformation, None) => Ok(Planned::Stack(engine::change_set(s).await?)),
        (Engine::Stacksets, _) => Err(stacksets_need_a_fleet()),
    }
}

impl Planned {
    pub fn plan(&self) -> &Plan {
        match self {
            Planned::Own { plan, .. } => plan,
            Planned::Stack(cs) => &cs.plan,
        }
    }

    /// The CloudFormation stack the live resources belong to, when streamstack's own engine is
    /// about to change a stack CloudFormation deployed (they would drift from it).
    pub fn cloudformation_owner(&self) -> Option<&str> {
        let Planned::Own { live, .. } = self else {
            return None;
        };
        live.iter()
            .filter(|l| l.ours)
            .find_map(|l| l.resource.tags.get("aws:cloudformation:stack-name"))
            .map(String::as_str)
    }

    /// Gives up the plan without applying it (a change set is deleted).
    pub async fn discard(&self, s: &Session) -> Result<()> {
        match self {
            Planned::Own { .. } => Ok(()),
            Planned::Stack(cs) => engine::discard(s, cs).await,
        }
    }

    /// Carries the plan out.
    pub async fn apply(&self, s: &Session, parallelism: usize) -> Result<Applied> {
        Ok(match self {
            Planned::Own { plan, live } => Applied::Own(s.apply(plan, live, parallelism).await),
            Planned::Stack(cs) => Applied::Stack(engine::execute(s, cs, parallelism).await?),
        })
    }
}

/// What a destroy is about to delete.
pub enum DestroyPlanned {
    Own(DestroyPlan),
    /// The CloudFormation stack (if there is one) and whatever of the stack is left outside it.
    Stack {
        name: String,
        deployed: Option<Deployed>,
    },
}

/// What `destroy` would delete.
pub async fn plan_destroy(engine: Engine, s: &Session) -> Result<DestroyPlanned> {
    Ok(match engine {
        Engine::Streamstack => DestroyPlanned::Own(s.plan_destroy().await?),
        Engine::Cloudformation => DestroyPlanned::Stack {
            name: engine::stack_name(s)?,
            deployed: engine::owned(s).await?,
        },
        Engine::Stacksets => return Err(stacksets_need_a_fleet()),
    })
}

impl DestroyPlanned {
    /// Whether anything would be deleted (CloudFormation's destroy always looks).
    pub fn has_changes(&self) -> bool {
        match self {
            DestroyPlanned::Own(d) => d.plan.has_changes(),
            DestroyPlanned::Stack { .. } => true,
        }
    }

    /// Deletes, then reads again: the report and what of the stack is still there.
    pub async fn destroy(&self, s: &Session, parallelism: usize) -> Result<(Applied, Vec<String>)> {
        match self {
            DestroyPlanned::Own(d) => {
                let (report, left) = s.destroy(d, parallelism).await?;
                Ok((Applied::Own(report), left))
            }
            DestroyPlanned::Stack { deployed, .. } => {
                let report = engine::destroy(s, deployed.as_ref(), parallelism).await?;
                Ok((Applied::Stack(report), Vec::new()))
            }
        }
    }
}

/// What an apply or destroy ended with, by either engine.
pub enum Applied {
    Own(Report),
    Stack(StackReport),
}

impl Applied {
    pub fn ok(&self) -> bool {
        match self {
            Applied::Own(r) => r.ok(),
            Applied::Stack(r) => r.ok,
        }
    }

    /// The report as `--json` prints it (the `report` object).
    pub fn to_json(&self) -> Value {
        let value = match self {
            Applied::Own(r) => serde_json::to_value(r),
            Applied::Stack(r) => serde_json::to_value(r),
        };
        value.unwrap_or(Value::Null)
    }

    /// Why it did not succeed: every failed and skipped operation, or the stack's end.
    pub fn failure(&self) -> String {
        match self {
            Applied::Own(report) => {
                let mut msg = format!(
                    "{} operation(s) failed, {} skipped, {} done:",
                    report.failed.len(),
                    report.skipped.len(),
                    report.done.len()
                );
                for f in &report.failed {
                    let (a, op, m) = (&f.address, f.operation, &f.error.message);
                    msg.push_str(&format!("\n  failed  {a} ({op}): {m}"));
                }
                for s in &report.skipped {
                    let (a, op, b) = (&s.address, s.operation, &s.because);
                    msg.push_str(&format!("\n  skipped {a} ({op}; waits for {b})"));
                }
                msg.push_str("\nRun apply again to continue from the live state.");
                msg
            }
            Applied::Stack(report) => {
                let mut msg = format!(
                    "CloudFormation stack {} ended {}",
                    report.stack, report.status
                );
                if let Some(f) = &report.first_failure {
                    msg.push_str(&format!(
                        "\n  first failure: {} ({} {}) {}: {}",
                        f.address, f.resource_type, f.logical_id, f.status, f.reason
                    ));
                }
                if let Some(r) = &report.rollback {
                    msg.push_str(&format!("\n  {r}"));
                }
                msg
            }
        }
    }

    /// The line an apply of `plan` ends with when it succeeded.
    pub fn applied_line(&self, plan: &Plan) -> String {
        let (add, change, destroy) = (plan.summary.add, plan.summary.change, plan.summary.destroy);
        match self {
            Applied::Own(report) => format!(
                "\nApply complete! Resources: {add} added, {change} changed, {destroy} destroyed.\n\
                 Took {:.1} s; the critical path (the longest chain of operations that wait for \
                 each other) took {:.1} s: {}",
                report.makespan_s,
                report.critical_path_s,
                report.critical_path.join(" → ")
            ),
            Applied::Stack(report) => {
                let completed = if report.completed_by_streamstack.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; streamstack set what CloudFormation left short: {}",
                        report.completed_by_streamstack.join("; ")
                    )
                };
                format!(
                    "\nApply complete! CloudFormation stack {} is {}: {add} added, {change} \
                     changed, {destroy} destroyed{completed}.",
                    report.stack, report.status
                )
            }
        }
    }
}
