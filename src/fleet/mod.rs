//! Fleets: one spec across many accounts and regions (`--fleet FILE`).
//!
//! - [`file`]: the fleet file, read with positions and checked offline like a spec;
//! - [`targets`]: the file's targets resolved (organizational units expanded with AWS
//!   Organizations) into [`Target`]s, one per account and region, and `--only`/`--retry-failed`;
//! - [`preflight`]: what the spec needs against each target's quotas and usage, before any write;
//! - [`run`]: the direct fan-out: assume each target's role, then plan/apply/check/output/destroy
//!   per target through the library, many at once, each target with its own request budget;
//! - [`board`]: what a run shows (a live board on a terminal, plain lines, NDJSON) and the report
//!   a later `--retry-failed` reads.

pub mod board;
pub mod file;
pub mod preflight;
pub mod run;
pub mod schema;
pub mod stacksets;
pub mod targets;

use serde::{Deserialize, Serialize};

pub use file::{load_file, FleetFile, TargetSpec, Who};

/// One account and region of a fleet, resolved: what the StackSets engine and the direct
/// fan-out both work from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub account: String,
    pub region: String,
    /// The label given in the fleet file, else the account id.
    pub name: String,
    /// Template variables of this target (they override `--var` and the spec's defaults).
    pub vars: Vec<(String, String)>,
    /// The role assumed in the account.
    pub role_arn: String,
    pub external_id: Option<String>,
}

impl Target {
    /// `ACCOUNT/REGION`, how reports and events name a target.
    pub fn id(&self) -> String {
        format!("{}/{}", self.account, self.region)
    }

    /// Whether `selector` (`ACCOUNT/REGION`, an account id or the target's name) names it.
    pub fn matches(&self, selector: &str) -> bool {
        selector == self.id() || selector == self.account || selector == self.name
    }
}

/// The partition of a region (`aws`, `aws-cn`, `aws-us-gov`), for ARNs.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The role ARN of `role` in `account`.
pub fn role_arn(account: &str, region: &str, role: &str) -> String {
    format!("arn:{}:iam::{account}:role/{role}", partition(region))
}
