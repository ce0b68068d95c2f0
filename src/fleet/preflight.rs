//! The pre-flight: before any write, what the plan would create in each target against the
//! account's quotas less what is already used, so that a class of thirty fails in the first
//! second with the quota to raise rather than at the twentieth host with `VcpuLimitExceeded`.
//!
//! Only resources the plan creates count: an existing stack's resources are already in usage.
//! Quotas come from Service Quotas (`GetServiceQuota`, then `GetAWSDefaultServiceQuota`, then
//! the documented default, see docs/aws-facts.md#fleet-quotas) or from the service's own answer
//! where it gives one (Kinesis `DescribeLimits`, IAM `GetAccountSummary`); each row says which.

use serde::Serialize;

use crate::aws::{Clients, Ctx};
use crate::model::Model;
use crate::plan::{Action, Plan};
use crate::Result;

/// A quota the pre-flight checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// EC2 "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", in vCPUs.
    StandardVcpus,
    /// Kinesis data streams in on-demand mode.
    OnDemandStreams,
    /// Kinesis open shards (on-demand streams start with 4).
    Shards,
    /// Firehose delivery streams per region.
    DeliveryStreams,
    /// IAM roles per account.
    Roles,
    /// S3 general purpose buckets per account.
    Buckets,
}

/// Shards an on-demand stream is created with.
pub const ON_DEMAND_INITIAL_SHARDS: u64 = 4;

impl Quota {
    pub fn name(self) -> &'static str {
        match self {
            Quota::StandardVcpus => "Running On-Demand Standard instances (vCPUs)",
            Quota::OnDemandStreams => "Kinesis on-demand data streams",
            Quota::Shards => "Kinesis shards per region",
            Quota::DeliveryStreams => "Firehose delivery streams per region",
            Quota::Roles => "IAM roles per account",
            Quota::Buckets => "S3 general purpose buckets",
        }
    }

    /// Service Quotas' service and quota codes, where it has them.
    pub fn codes(self) -> Option<(&'static str, &'static str)> {
        match self {
            Quota::StandardVcpus => Some(("ec2", "L-1216C47A")),
            Quota::Buckets => Some(("s3", "L-DC2B2D3D")),
            _ => None,
        }
    }

    /// The documented default (docs/aws-facts.md#fleet-quotas).
    pub fn documented_default(self) -> u64 {
        match self {
            Quota::StandardVcpus => 5,
            Quota::OnDemandStreams => 50,
            Quota::Shards => 1000,
            Quota::DeliveryStreams => 5000,
            Quota::Roles => 1000,
            Quota::Buckets => 10000,
        }
    }
}

/// What the plan creates, per quota (only quotas with a need).
pub fn needs(plan: &Plan, model: &Model) -> Vec<(Quota, u64)> {
    let mut out: std::collections::BTreeMap<Quota, u64> = Default::default();
    let mut add = |q: Quota, n: u64| *out.entry(q).or_default() += n;
    for c in &plan.changes {
        if !matches!(c.action, Action::Create | Action::Replace) {
            continue;
        }
        let Some(r) = model
            .resources
            .values()
            .find(|r| r.address.to_string() == c.address)
        else {
            continue;
        };
        let attrs = r.props.attributes();
        let text = |k: &str| {
            attrs
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        match r.address.kind.to_string().as_str() {
            "host" => add(Quota::StandardVcpus, standard_vcpus(&text("instance_type"))),
            "stream" => {
                if text("mode") == "on_demand" {
                    add(Quota::OnDemandStreams, 1);
                    add(Quota::Shards, ON_DEMAND_INITIAL_SHARDS);
                } else {
                    add(
                        Quota::Shards,
                        attrs.get("shards").and_then(|v| v.as_u64()).unwrap_or(1),
                    );
                }
            }
            "delivery" => add(Quota::DeliveryStreams, 1),
            "delivery_role" | "host_role" => add(Quota::Roles, 1),
            "bucket" => add(Quota::Buckets, 1),
            _ => {}
        }
    }
    out.into_iter().filter(|(_, n)| *n > 0).collect()
}

/// The vCPUs an instance type counts against the standard on-demand quota: 0 for families the
/// quota does not cover (F, G, P, X, Inf, ...). Sizes follow EC2's rule (`large` = 2, `Nxlarge` =
/// 4N; `nano` to `medium` are 2 for burstable types and 1 for Graviton's `medium`).
pub fn standard_vcpus(instance_type: &str) -> u64 {
    let Some((family, size)) = instance_type.split_once('.') else {
        return 0;
    };
    let standard = family
        .chars()
        .next()
        .is_some_and(|c| "acdhimrtz".contains(c))
        && !family.starts_with("inf")
        && !family.starts_with("im4")
        && !family.starts_with("is4");
    if !standard {
        return 0;
    }
    let graviton = family.contains('g') && !family.starts_with('t');
    match size {
        "nano" | "micro" | "small" => 2,
        "medium" if graviton || family.starts_with('a') => 1,
        "medium" => 2,
        "large" => 2,
        "xlarge" | "metal" => 4,
        s => s
            .strip_suffix("xlarge")
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(4, |n| 4 * n),
    }
}

/// One row of the pre-flight's table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub target: String,
    pub account: String,
    pub region: String,
    pub quota: Quota,
    pub name: String,
    pub service_code: Option<String>,
    pub quota_code: Option<String>,
    pub needed: u64,
    pub limit: u64,
    pub usage: u64,
    pub available: u64,
    /// Where the limit came from: `applied` (GetServiceQuota), `aws-default`
    /// (GetAWSDefaultServiceQuota), `documented-default`, or the service's own answer.
    pub source: String,
    pub ok: bool,
}

impl Row {
    /// The command that asks for enough of the quota (None where Service Quotas has no code).
    pub fn increase_command(&self) -> Option<String> {
        let (s, q) = (self.service_code.as_ref()?, self.quota_code.as_ref()?);
        let desired = self.usage + self.needed;
        Some(format!(
            "aws service-quotas request-service-quota-increase --service-code {s} --quota-code {q} --desired-value {desired} --region {}",
            self.region
        ))
    }
}

/// The pre-flight of one target: a row per quota the plan needs.
pub async fn check(
    c: &Clients,
    target: &super::Target,
    plan: &Plan,
    model: &Model,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (quota, needed) in needs(plan, model) {
        let (limit, usage, source) = limit_and_usage(c, quota).await?;
        let available = limit.saturating_sub(usage);
        rows.push(Row {
            target: target.id(),
            account: target.account.clone(),
            region: target.region.clone(),
            quota,
            name: quota.name().into(),
            service_code: quota.codes().map(|(s, _)| s.to_string()),
            quota_code: quota.codes().map(|(_, q)| q.to_string()),
            needed,
            limit,
            usage,
            available,
            source,
            ok: needed <= available,
        });
    }
    Ok(rows)
}

async fn limit_and_usage(c: &Clients, quota: Quota) -> Result<(u64, u64, String)> {
    match quota {
        Quota::StandardVcpus => {
            let (limit, source) = service_quota(c, quota).await?;
            Ok((limit, running_standard_vcpus(c).await?, source))
        }
        Quota::Buckets => {
            let (limit, source) = service_quota(c, quota).await?;
            let used =
                c.s3.list_buckets()
                    .send()
                    .await
                    .op("ListBuckets")?
                    .buckets()
                    .len() as u64;
            Ok((limit, used, source))
        }
        Quota::OnDemandStreams | Quota::Shards => {
            let l = c
                .kinesis
                .describe_limits()
                .send()
                .await
                .op("DescribeLimits")?;
            let source = "kinesis DescribeLimits".to_string();
            Ok(if quota == Quota::Shards {
                (l.shard_limit() as u64, l.open_shard_count() as u64, source)
            } else {
                let limit = l.on_demand_stream_count_limit() as u64;
                (limit, l.on_demand_stream_count() as u64, source)
            })
        }
        Quota::DeliveryStreams => {
            let mut used = 0u64;
            let mut start: Option<String> = None;
            loop {
                let page = c
                    .firehose
                    .list_delivery_streams()
                    .set_exclusive_start_delivery_stream_name(start.clone())
                    .limit(10000)
                    .send()
                    .await
                    .op("ListDeliveryStreams")?;
                used += page.delivery_stream_names().len() as u64;
                start = page.delivery_stream_names().last().cloned();
                if !page.has_more_delivery_streams() || start.is_none() {
                    break;
                }
            }
            let limit = quota.documented_default();
            Ok((limit, used, "documented-default".into()))
        }
        Quota::Roles => {
            let s = c
                .iam
                .get_account_summary()
                .send()
                .await
                .op("GetAccountSummary")?;
            let m = s.summary_map();
            let get = |k: &str| {
                m.and_then(|m| {
                    m.iter()
                        .find(|(key, _)| key.as_str() == k)
                        .map(|(_, v)| *v as u64)
                })
            };
            let limit = get("RolesQuota").unwrap_or(quota.documented_default());
            Ok((
                limit,
                get("Roles").unwrap_or(0),
                "iam GetAccountSummary".into(),
            ))
        }
    }
}

/// The quota's value: applied, else AWS's default, else the documented default.
async fn service_quota(c: &Clients, quota: Quota) -> Result<(u64, String)> {
    let Some((service, code)) = quota.codes() else {
        return Ok((quota.documented_default(), "documented-default".into()));
    };
    // One quick try each: an answer missing here has two fallbacks, and an endpoint without
    // Service Quotas (an emulator) must not cost the SDK's eight backed-off attempts.
    let once = || {
        aws_sdk_servicequotas::config::Builder::default()
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
    };
    let applied = c
        .servicequotas
        .get_service_quota()
        .service_code(service)
        .quota_code(code)
        .customize()
        .config_override(once())
        .send()
        .await;
    if let Some(v) = applied.ok().and_then(|o| o.quota().and_then(|q| q.value())) {
        return Ok((v as u64, "applied".into()));
    }
    let default = c
        .servicequotas
        .get_aws_default_service_quota()
        .service_code(service)
        .quota_code(code)
        .customize()
        .config_override(once())
        .send()
        .await;
    if let Some(v) = default.ok().and_then(|o| o.quota().and_then(|q| q.value())) {
        return Ok((v as u64, "aws-default".into()));
    }
    Ok((quota.documented_default(), "documented-default".into()))
}

/// vCPUs of the pending and running instances of standard families.
async fn running_standard_vcpus(c: &Clients) -> Result<u64> {
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .build();
    let mut total = 0;
    let mut token: Option<String> = None;
    loop {
        let page = c
            .ec2
            .describe_instances()
            .filters(filter.clone())
            .set_next_token(token.clone())
            .send()
            .await
            .op("DescribeInstances")?;
        for r in page.reservations() {
            for i in r.instances() {
                total += i.instance_type().map_or(0, |t| standard_vcpus(t.as_str()));
            }
        }
        token = crate::aws::next_token(page.next_token().map(String::from));
        if token.is_none() {
            return Ok(total);
        }
    }
}

/// The table of rows short of their quota (or of every row with `all`), as text.
pub fn table(rows: &[Row], all: bool) -> String {
    let shown: Vec<&Row> = rows.iter().filter(|r| all || !r.ok).collect();
    if shown.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "{:<28} {:<46} {:<12} {:>7} {:>9}  {:<20} {}\n",
        "TARGET", "QUOTA", "CODE", "NEEDED", "AVAILABLE", "SOURCE", "RESULT"
    );
    for r in &shown {
        out.push_str(&format!(
            "{:<28} {:<46} {:<12} {:>7} {:>9}  {:<20} {}\n",
            r.target,
            r.name,
            r.quota_code.as_deref().unwrap_or("-"),
            r.needed,
            r.available,
            r.source,
            if r.ok { "ok" } else { "SHORT" }
        ));
    }
    for r in shown.iter().filter(|r| !r.ok) {
        match r.increase_command() {
            Some(cmd) => out.push_str(&format!("  {}: {cmd}\n", r.target)),
            None => out.push_str(&format!(
                "  {}: {} has no Service Quotas code; ask AWS Support for at least {}\n",
                r.target,
                r.name,
                r.usage + r.needed
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_of_instance_types() {
        assert_eq!(standard_vcpus("t3.micro"), 2);
        assert_eq!(standard_vcpus("t4g.nano"), 2);
        assert_eq!(standard_vcpus("m6g.medium"), 1);
        assert_eq!(standard_vcpus("m5.large"), 2);
        assert_eq!(standard_vcpus("c5.xlarge"), 4);
        assert_eq!(standard_vcpus("r6i.4xlarge"), 16);
        assert_eq!(standard_vcpus("g5.xlarge"), 0);
        assert_eq!(standard_vcpus("inf1.xlarge"), 0);
        assert_eq!(standard_vcpus("p4d.24xlarge"), 0);
        assert_eq!(standard_vcpus("nonsense"), 0);
    }

    fn row(needed: u64, available: u64, code: bool) -> Row {
        Row {
            target: "111122223333/eu-west-1".into(),
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            quota: Quota::StandardVcpus,
            name: Quota::StandardVcpus.name().into(),
            service_code: code.then(|| "ec2".into()),
            quota_code: code.then(|| "L-1216C47A".into()),
            needed,
            limit: available + 3,
            usage: 3,
            available,
            source: "applied".into(),
            ok: needed <= available,
        }
    }

    #[test]
    fn the_table_names_the_quota_and_the_increase() {
        let t = table(&[row(4, 2, true), row(1, 2, true)], false);
        assert!(t.contains("111122223333/eu-west-1"), "{t}");
        assert!(t.contains("L-1216C47A"), "{t}");
        assert_eq!(t.matches("SHORT").count(), 1, "{t}");
        assert!(t.contains(
            "aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-1216C47A --desired-value 7 --region eu-west-1"
        ), "{t}");
        assert!(table(&[row(1, 2, true)], false).is_empty());
        assert!(table(&[row(4, 2, false)], false).contains("no Service Quotas code"));
    }
}
