//! Pricing with the kinds' cost models (`kinds::ResourceKind::cost`): a plan's `cost` object
//! (the stack after the plan, what the plan adds and removes, its expiry, 30 days forgotten)
//! and the rate and accrued cost of the live stacks `stacks` and `gc` list.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::{AwsOptions, Clients};
use crate::cost::{self, Cost, Estimate, Line, PriceBook, PricesMode, UsageBook};
use crate::deploy::Planned;
use crate::kinds::{self, Live};
use crate::model::{Model, Resource, TAG_CREATED_AT, TAG_STACK};
use crate::ops::{Session, StackInfo};
use crate::plan::{Action, Plan};
use crate::Result;

/// A resource's hourly lines, by its kind's cost model.
pub fn lines_of(r: &Resource, usage: &UsageBook) -> Vec<Line> {
    kinds::REGISTRY
        .handler(r.address.kind)
        .map(|h| h.cost(r, &usage.for_resource(r)))
        .unwrap_or_default()
}

/// Every resource of `model` with its lines (resources that bill nothing are left out).
pub fn model_lines(model: &Model, usage: &UsageBook) -> Vec<(String, Vec<Line>)> {
    model
        .resources
        .values()
        .map(|r| (r.address.to_string(), lines_of(r, usage)))
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

/// The instance types a model runs (what a live price fetch asks for).
fn instance_types(lines: &[(String, Vec<Line>)]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .flat_map(|(_, l)| l.iter())
        .filter_map(|l| match &l.price {
            cost::Price::Ec2Hour(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The price book for the session's region in `mode`.
pub async fn prices(
    clients: &Clients,
    mode: PricesMode,
    lines: &[(String, Vec<Line>)],
) -> PriceBook {
    cost::prices::book(
        mode,
        &clients.region,
        Some(&clients.pricing),
        &instance_types(lines),
    )
    .await
}

/// The usage of a session's spec (the lab's defaults; `usage:` in the spec overrides them).
pub fn usage_of(s: &Session) -> UsageBook {
    usage_of_spec(&s.validated.spec)
}

/// The `usage:` mappings of a spec's streams and hosts, by key.
pub fn usage_of_spec(spec: &crate::spec::types::Spec) -> UsageBook {
    let mut book = UsageBook::default();
    let specs = spec
        .streams
        .iter()
        .filter_map(|(k, s)| Some((k, s.usage.as_ref()?)))
        .chain(
            spec.hosts
                .iter()
                .filter_map(|(k, h)| Some((k, h.usage.as_ref()?))),
        );
    for (key, u) in specs {
        let e = book.by_key.entry(key.clone()).or_default();
        if let Some(n) = u.records_per_hour {
            e.records_per_second = n as f64 / 3600.0;
            e.set.push("records_per_hour");
        }
        if let Some(n) = u.record_bytes {
            e.record_bytes = n;
            e.set.push("record_bytes");
        }
        if let Some(n) = u.reads_per_record {
            e.reads_per_record = n as f64;
            e.set.push("reads_per_record");
        }
        if let Some(n) = u.volume_gb {
            e.volume_gb = n as f64;
            e.set.push("volume_gb");
        }
    }
    book
}

/// The cost of the stack a plan leaves, and of its changes. Never fails: without prices, the
/// figures are null and `reason` says why.
pub async fn plan_cost(s: &Session, planned: &Planned, mode: PricesMode) -> Cost {
    let model = &s.validated.model;
    let usage = usage_of(s);
    let after_lines = model_lines(model, &usage);
    let book = prices(&s.cx.clients, mode, &after_lines).await;
    let (added, removed) = match planned {
        Planned::Own { plan, live } => changes_cost(plan, model, live, &usage, &book),
        Planned::Stack(_) => (None, None),
    };
    cost_of(
        cost::estimate(after_lines, &book),
        added,
        removed,
        s.validated
            .spec
            .expires_after
            .map(|d| std::time::Duration::from_secs(d.seconds)),
        &book,
        &usage,
        model,
    )
}

/// [`Cost::new`] with the assumptions of `model`'s billed resources.
pub fn cost_of(
    after: Estimate,
    added: Option<f64>,
    removed: Option<f64>,
    expires_after: Option<std::time::Duration>,
    book: &PriceBook,
    usage: &UsageBook,
    model: &Model,
) -> Cost {
    let usages: Vec<(String, cost::Usage)> = after
        .resources
        .iter()
        .filter_map(|rc| {
            let r = model
                .resources
                .values()
                .find(|r| r.address.to_string() == rc.address)?;
            Some((rc.address.clone(), usage.for_resource(r)))
        })
        .collect();
    let mut assumptions = cost::assumptions(&usages);
    if let Some(note) = &book.note {
        assumptions.push(format!("prices: {note}; used the {}", book.source));
    }
    Cost::new(after, added, removed, expires_after, book, assumptions)
}

/// What the plan's changes add and remove per hour: creations and replacements add the desired
/// resource's cost, deletions and replacements remove the live one's, an update both.
pub fn changes_cost(
    plan: &Plan,
    model: &Model,
    live: &[Live],
    usage: &UsageBook,
    book: &PriceBook,
) -> (Option<f64>, Option<f64>) {
    let hourly = |r: &Resource| {
        cost::estimate(vec![(r.address.to_string(), lines_of(r, usage))], book).hourly_usd
    };
    let desired = |a: &str| {
        model
            .resources
            .values()
            .find(|r| r.address.to_string() == a)
    };
    let was = |a: &str| {
        live.iter()
            .map(|l| &l.resource)
            .find(|r| r.address.to_string() == a)
    };
    let (mut added, mut removed) = (Some(0.0), Some(0.0));
    let add = |sum: &mut Option<f64>, x: Option<f64>| {
        *sum = sum.zip(x).map(|(a, b)| a + b);
    };
    for c in &plan.changes {
        let (new, old) = match c.action {
            Action::Create => (desired(&c.address).map(hourly), None),
            Action::Delete => (None, was(&c.address).map(hourly)),
            Action::Replace | Action::Update => {
                (desired(&c.address).map(hourly), was(&c.address).map(hourly))
            }
            Action::NoOp => (None, None),
        };
        if let Some(n) = new {
            add(&mut added, n);
        }
        if let Some(o) = old {
            add(&mut removed, o);
        }
    }
    (added, removed)
}

/// A stack `stacks` lists, with what it costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackCost {
    #[serde(flatten)]
    pub info: StackInfo,
    /// What its live resources bill per hour (null, with `cost_reason`, when unknown).
    pub hourly_usd: Option<f64>,
    /// `hourly_usd` times the hours since its `created-at` tag.
    pub accrued_usd: Option<f64>,
    /// What collecting it would save per day.
    pub daily_usd: Option<f64>,
    pub price_source: String,
    pub price_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_reason: Option<String>,
}

/// Every stack in the region (as `ops::list_stacks` finds them) with its rate and its cost since
/// `created-at`. Listing errors fail; prices never do.
pub async fn list_stacks_with_cost(aws: &AwsOptions, mode: PricesMode) -> Result<Vec<StackCost>> {
    let clients = Clients::new(aws).await?;
    let listed = crate::ops::stack_resources(&clients).await?;
    let arns: Vec<String> = listed.iter().map(|(arn, _)| arn.clone()).collect();
    let lines: Vec<(String, Vec<Line>)> = futures::future::try_join_all(
        kinds::REGISTRY
            .handlers()
            .map(|h| h.listed_cost(&clients, &arns)),
    )
    .await?
    .into_iter()
    .flatten()
    .collect();
    let book = prices(&clients, mode, &lines).await;
    let stack_of: BTreeMap<&str, &str> = listed
        .iter()
        .filter_map(|(arn, tags)| Some((arn.as_str(), tags.get(TAG_STACK)?.as_str())))
        .collect();
    let now = std::time::SystemTime::now();
    let infos = crate::ops::stacks_of(listed.clone(), now);
    Ok(infos
        .into_iter()
        .map(|info| {
            let mine: Vec<(String, Vec<Line>)> = lines
                .iter()
                .filter(|(arn, _)| stack_of.get(arn.as_str()) == Some(&info.name.as_str()))
                .cloned()
                .collect();
            let e = cost::estimate(mine, &book);
            let created = info
                .created_at
                .as_deref()
                .and_then(crate::time::parse_rfc3339);
            StackCost {
                hourly_usd: e.hourly_usd.map(cost::round6),
                accrued_usd: cost::accrued(e.hourly_usd, created, now),
                daily_usd: e.hourly_usd.map(|h| cost::round6(h * 24.0)),
                price_source: book.source.clone(),
                price_date: book.date.clone(),
                cost_reason: e.reason,
                info,
            }
        })
        .collect())
}

/// The created-at tag key, for callers that stamp it (re-exported for tests).
pub const CREATED_AT_TAG: &str = TAG_CREATED_AT;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::prices::snapshot;

    const LAB: &str = include_str!("../stacks/weather-lab.yaml");
    const CLASSROOM: &str = include_str!("../stacks/classroom.yaml");

    fn model(text: &str, region: &str) -> Model {
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("region:") {
                    format!("region: {region}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let opts = crate::spec::LoadOptions {
            account_id: Some("123456789012".into()),
            ..Default::default()
        };
        match crate::derive::load_str("s.yaml", &text, &opts) {
            Ok(v) => v.model,
            Err(d) => panic!("{d:?}"),
        }
    }

    fn hourly(text: &str, region: &str) -> Estimate {
        let m = model(text, region);
        cost::estimate(model_lines(&m, &UsageBook::default()), &snapshot(region))
    }

    /// AWS's published us-east-1 list prices (reference/pricing.md), summed by hand: the lab's
    /// 20 records of 95 bytes an hour are 20 KB in, 20 KB out (1 KB rounding), 100 KB through
    /// Firehose (5 KB rounding) and 20 S3 PUTs (at most one per 60 s buffer).
    fn lab_by_hand(stream: f64) -> f64 {
        let gb = 1024.0 * 1024.0 * 1024.0;
        let ebs = 8.0 * 0.08 / 730.0;
        stream + 0.0104 + ebs + 20.0 * 5120.0 / gb * 0.029 + 20.0 * 0.005 / 1000.0
    }

    #[test]
    fn the_lab_in_us_east_1_costs_the_sum_of_the_list_prices() {
        let e = hourly(LAB, "us-east-1");
        let h = e.hourly_usd.unwrap_or(f64::NAN);
        let gb = 1024.0 * 1024.0 * 1024.0;
        let data = 20.0 * 1024.0 / gb * (0.08 + 0.04);
        assert!((h - lab_by_hand(0.04 + data)).abs() < 1e-9, "{h}");
        assert!((h - 0.0513).abs() < 0.001, "{h}");
        let stream = e.resources.iter().find(|r| r.address == "stream.weather");
        let items: Vec<(&str, Option<f64>)> = stream
            .map(|r| {
                r.items
                    .iter()
                    .map(|i| (i.unit.as_str(), i.unit_usd))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(items[0], ("stream-hour", Some(0.04)));
    }

    #[test]
    fn a_provisioned_one_shard_lab_bills_shard_hours_and_put_units() {
        let text = LAB.replace("mode: on_demand", "mode: provisioned\n    shards: 1");
        let h = hourly(&text, "us-east-1").hourly_usd.unwrap_or(f64::NAN);
        let put_units = 20.0 * 0.014 / 1e6;
        assert!((h - lab_by_hand(0.015 + put_units)).abs() < 1e-9, "{h}");
    }

    #[test]
    fn a_classroom_costs_thirty_labs() {
        let lab = hourly(LAB, "us-east-1").hourly_usd.unwrap_or(f64::NAN);
        let class = hourly(CLASSROOM, "us-east-1")
            .hourly_usd
            .unwrap_or(f64::NAN);
        // One shared bucket instead of 30, and each delivery's own buffer: within a cent.
        assert!((class - 30.0 * lab).abs() < 0.01, "{class} vs 30 × {lab}");
    }

    #[test]
    fn a_region_without_prices_is_unknown_not_an_error() {
        let e = hourly(LAB, "ap-southeast-7");
        assert_eq!(e.hourly_usd, None);
        let why = e.reason.unwrap_or_default();
        assert!(
            why.starts_with("unknown:") && why.contains("ap-southeast-7"),
            "{why}"
        );
        let c = Cost::new(
            hourly(LAB, "ap-southeast-7"),
            None,
            None,
            Some(std::time::Duration::from_secs(8 * 3600)),
            &snapshot("ap-southeast-7"),
            Vec::new(),
        );
        assert_eq!((c.daily_usd, c.forgotten_30d_usd), (None, None));
        assert!(cost::render(&c, false).contains("cost unknown: unknown:"));
    }

    #[test]
    fn a_day_a_month_and_an_expiry_scale_the_hour() {
        let book = snapshot("us-east-1");
        let e = hourly(LAB, "us-east-1");
        let h = e.hourly_usd.unwrap_or(f64::NAN);
        let c = Cost::new(
            e,
            Some(h),
            Some(0.0),
            Some(std::time::Duration::from_secs(8 * 3600)),
            &book,
            Vec::new(),
        );
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-5);
        assert!(close(c.daily_usd, h * 24.0));
        assert!(close(c.forgotten_30d_usd, h * 720.0));
        assert!(close(c.expires_after_usd, h * 8.0));
        assert!(close(c.times(30), h * 30.0));
        let md = cost::render(&c, true);
        assert!(md.contains("| `stream.weather` | $0.0400 |"), "{md}");
        assert!(md.contains("if forgotten for 30 days: $36.9"), "{md}");
        let text = cost::render(&c, false);
        assert!(
            text.contains("the stack after it: $0.0514/hour, $1.23/day"),
            "{text}"
        );
        assert!(text.contains("until it expires (8 h): $0.41"), "{text}");
        assert_eq!(c.price_date, crate::cost::prices::SNAPSHOT_DATE);
        let now = std::time::SystemTime::now();
        let ten_hours_ago = now - std::time::Duration::from_secs(36_000);
        assert!(close(
            cost::accrued(Some(h), Some(ten_hours_ago), now),
            h * 10.0
        ));
    }

    #[test]
    fn usage_in_the_spec_replaces_the_lab_defaults_and_is_validated() {
        let text = LAB
            .replace(
                "    encryption: aws_managed\n",
                "    encryption: aws_managed\n    usage: { records_per_hour: 3600000, record_bytes: 2000 }\n",
            )
            .replace(
                "    image: al2023\n",
                "    image: al2023\n    usage: { volume_gb: 30 }\n",
            );
        let opts = crate::spec::LoadOptions {
            account_id: Some("123456789012".into()),
            ..Default::default()
        };
        let v = match crate::derive::load_str(
            "s.yaml",
            &text.replace("ap-northeast-2", "us-east-1"),
            &opts,
        ) {
            Ok(v) => v,
            Err(d) => panic!("{d:?}"),
        };
        let usage = usage_of_spec(&v.spec);
        let e = cost::estimate(model_lines(&v.model, &usage), &snapshot("us-east-1"));
        let item = |address: &str, what: &str| {
            e.resources
                .iter()
                .find(|r| r.address == address)
                .and_then(|r| r.items.iter().find(|i| i.what.starts_with(what)))
                .map(|i| i.quantity)
        };
        let gb = 1024.0 * 1024.0 * 1024.0;
        // 1,000 records a second of 2,000 bytes: 2 KB each on-demand, 5 KB each in Firehose.
        assert_eq!(
            item("stream.weather", "data in"),
            Some(3_600_000.0 * 2048.0 / gb)
        );
        assert_eq!(
            item("delivery.weather-to-s3", "ingestion"),
            Some(3_600_000.0 * 5120.0 / gb)
        );
        assert_eq!(item("host.collector", "EBS"), Some(30.0 / 730.0));
        let said = cost::assumptions(&[("stream.weather".into(), usage.for_key("weather"))]);
        assert!(said[0].contains("usage from the spec"), "{said:?}");

        let bad = LAB.replace(
            "    encryption: aws_managed\n",
            "    encryption: aws_managed\n    usage: { record_bytes: 0, volume_gb: 3 }\n",
        );
        let d = match crate::derive::load_str("s.yaml", &bad, &opts) {
            Ok(_) => panic!("a bad usage is refused"),
            Err(d) => format!("{d:?}"),
        };
        assert!(d.contains("streams.weather.usage.record_bytes"), "{d}");
        assert!(d.contains("streams.weather.usage.volume_gb"), "{d}");
    }
}
