//! The operations behind the commands, as a library: open a session (spec + AWS), read live
//! state, plan, apply, destroy. Commands are thin wrappers that print.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aws::{AwsError, AwsOptions, Clients};
use crate::diagnostics::Diagnostics;
use crate::events::Events;
use crate::executor::{self, Report};
use crate::kinds::{self, Cx, Live, Timeouts};
use crate::model::Env;
use crate::plan::{self, NotOursError, Plan};
use crate::spec::{self, LoadOptions, Validated};

#[derive(Debug)]
pub enum Error {
    /// The spec is invalid; nothing was sent to AWS.
    Spec(Diagnostics),
    Aws(AwsError),
    NotOurs(NotOursError),
    /// A saved plan no longer matches the spec or the live state.
    StalePlan(String),
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Spec(d) => write!(f, "{d}"),
            Error::Aws(e) => write!(f, "{e}"),
            Error::NotOurs(e) => write!(f, "{e}"),
            Error::StalePlan(m) | Error::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        Error::Aws(e)
    }
}

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
pub async fn open(spec_path: &Path, opts: &OpenOptions) -> Result<Session, Error> {
    let text = std::fs::read(spec_path)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", spec_path.display())))?;
    let offline = spec::load_file(spec_path, &opts.load).map_err(Error::Spec)?;
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
        region: Some(clients.region.clone()).filter(|_| offline.spec.region.is_none()),
        account_id: Some(account_id.clone()),
        ..opts.load.clone()
    };
    let validated = spec::load_file(spec_path, &load).map_err(Error::Spec)?;
    let stack = validated.spec.stack.clone();
    let env = Env::new(&account_id, &clients.region, &stack);
    Ok(Session {
        spec_path: spec_path.to_path_buf(),
        spec_sha256: sha256_hex(&text),
        cx: Cx {
            clients,
            env,
            stack,
            events: opts.events.clone(),
            timeouts: opts.timeouts,
        },
        validated,
    })
}

impl Session {
    pub async fn live(&self) -> Result<Vec<Live>, Error> {
        Ok(kinds::discover_all(&self.cx, &self.validated.model).await?)
    }

    pub fn plan(&self, live: &[Live]) -> Result<Plan, Error> {
        plan::plan(&self.validated.model, live, kinds::replace_on).map_err(Error::NotOurs)
    }

    pub async fn apply(&self, plan: &Plan, live: &[Live], parallelism: usize) -> Report {
        executor::apply(&self.cx, plan, &self.validated.model, live, parallelism).await
    }
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
    pub fn check(&self, session: &Session, fresh: &Plan) -> Result<(), Error> {
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

/// Ids, ARNs and how-to-reach facts of the stack's live resources.
pub async fn outputs(session: &Session, live: &[Live]) -> Result<Vec<Output>, Error> {
    use crate::model::Props;
    let mut out = Vec::new();
    for l in live.iter().filter(|l| l.ours) {
        let mut details = std::collections::BTreeMap::new();
        match &l.resource.props {
            Props::Bucket(_) => {
                details.insert("url".into(), format!("s3://{}/", l.resource.name));
            }
            Props::Stream(s) => {
                details.insert("arn".into(), s.arn.clone());
            }
            Props::Delivery(d) => {
                details.insert("arn".into(), d.arn.clone());
                details.insert(
                    "data_lands_in".into(),
                    format!(
                        "s3://{}/{}",
                        d.bucket_name,
                        d.prefix.clone().unwrap_or_default()
                    ),
                );
            }
            Props::Role(r) => {
                details.insert("arn".into(), r.arn.clone());
            }
            Props::InstanceProfile(p) => {
                details.insert("arn".into(), p.arn.clone());
            }
            Props::SecurityGroup(_) => {}
            Props::Host(h) => {
                let desc = session
                    .cx
                    .clients
                    .ec2
                    .describe_instances()
                    .instance_ids(&l.id)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", e))?;
                let inst = desc
                    .reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .next();
                let public_ip = inst.and_then(|i| i.public_ip_address()).map(str::to_string);
                let state = inst
                    .and_then(|i| i.state())
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default();
                details.insert("state".into(), state);
                if let Some(ip) = &public_ip {
                    details.insert("public_ip".into(), ip.clone());
                }
                let reach = match (&h.key_name, &public_ip) {
                    (Some(key), Some(ip)) => format!("ssh -i {key}.pem ec2-user@{ip}"),
                    (Some(_), None) => "ssh is configured but the instance has no public IP".into(),
                    (None, _) => format!(
                        "no inbound access (add ssh: to the host); EC2 console → Connect, or: aws ec2-instance-connect ssh --instance-id {}",
                        l.id
                    ),
                };
                details.insert("reach".into(), reach);
                details.insert(
                    "agent_log".into(),
                    "/var/log/aws-kinesis-agent/aws-kinesis-agent.log".into(),
                );
            }
        }
        out.push(Output {
            address: l.address().to_string(),
            name: l.resource.name.clone(),
            id: l.id.clone(),
            details,
        });
    }
    Ok(out)
}
