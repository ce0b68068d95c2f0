//! What a stack costs: the line items each kind bills (`kinds::ResourceKind::cost`), the usage a
//! spec cannot know (with the lab's figures as defaults), and the sum priced from a
//! [`PriceBook`] (prices.rs: the offline snapshot, the on-disk cache, the Price List Query API).
//!
//! Every quantity is per hour, so a resource's hourly cost is the sum of `unit_usd × quantity`
//! over its items; a day is 24 hours, a forgotten stack 30 days (720 hours). A figure without a
//! price makes the whole estimate unknown (null) with the reason, never a partial guess.

pub mod prices;

use serde::Serialize;

pub use prices::{PriceBook, PricesMode};

/// Hours in the month AWS prices GB-months over (AWS bills a GB-month as 730 hours).
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Hours a forgotten stack runs in the "if forgotten for 30 days" figure.
pub const FORGOTTEN_HOURS: f64 = 30.0 * 24.0;
/// Bytes in a GB as AWS bills data (2^30).
pub const GB: f64 = 1_073_741_824.0;

/// Usage a spec cannot know. The defaults are the lab's: its 20 sample weather records (about 95
/// bytes each, one JSON object per city), written once; as a rate, 20 records an hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Records written to the stream (and through the delivery) per second.
    pub records_per_second: f64,
    /// Bytes per record.
    pub record_bytes: u64,
    /// How many times each record is read (the delivery reads the stream once).
    pub reads_per_record: f64,
    /// GB the bucket holds on average.
    pub stored_gb: f64,
    /// The root EBS volume of a host, GB (gp3).
    pub volume_gb: f64,
    /// Bytes logged to a log group per hour (Firehose logs only its errors).
    pub log_bytes_per_hour: f64,
    /// Which of the fields above the spec set (the others are assumptions).
    #[serde(skip)]
    pub set: Vec<&'static str>,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            records_per_second: 20.0 / 3600.0,
            record_bytes: 95,
            reads_per_record: 1.0,
            stored_gb: 20.0 * 95.0 / GB,
            volume_gb: 8.0,
            log_bytes_per_hour: 0.0,
            set: Vec::new(),
        }
    }
}

impl Usage {
    /// Records per hour.
    pub fn records_per_hour(&self) -> f64 {
        self.records_per_second * 3600.0
    }
    /// GB per hour after rounding each record up to `unit` bytes (Kinesis on-demand: 1 KB;
    /// Firehose: 5 KB).
    pub fn rounded_gb_per_hour(&self, unit: u64) -> f64 {
        let units = self.record_bytes.max(1).div_ceil(unit.max(1));
        self.records_per_hour() * (units * unit) as f64 / GB
    }
    /// Kinesis PUT payload units (25 KB each, every record at least one) per hour.
    pub fn put_payload_units_per_hour(&self) -> f64 {
        self.records_per_hour() * self.record_bytes.max(1).div_ceil(25 * 1024) as f64
    }
}

/// The usage of each resource: per key (a spec's `usage:` of a stream or host, keyed by its
/// key; a delivery uses its stream's when the keys match), and the lab's defaults otherwise.
#[derive(Debug, Clone, Default)]
pub struct UsageBook {
    pub by_key: std::collections::BTreeMap<String, Usage>,
}

impl UsageBook {
    pub fn for_key(&self, key: &str) -> Usage {
        self.by_key.get(key).cloned().unwrap_or_default()
    }
    /// The usage of a resource: its key's, else that of a resource it depends on (a delivery
    /// uses its stream's), else the defaults.
    pub fn for_resource(&self, r: &crate::model::Resource) -> Usage {
        std::iter::once(&r.address.key)
            .chain(r.depends_on.iter().map(|a| &a.key))
            .find_map(|k| self.by_key.get(k))
            .cloned()
            .unwrap_or_default()
    }
}

/// What is billed, as a key of the price book.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Price {
    KinesisShardHour,
    KinesisPutPayloadUnit,
    KinesisOnDemandStreamHour,
    KinesisOnDemandInGb,
    KinesisOnDemandOutGb,
    FirehoseIngestGb,
    S3StorageGbMonth,
    S3PutRequest,
    /// An EC2 instance-hour (Linux, shared tenancy) of this type.
    Ec2Hour(String),
    EbsGp3GbMonth,
    LogsIngestGb,
    LogsStorageGbMonth,
}

impl Price {
    /// The key in the price book and the cache.
    pub fn key(&self) -> String {
        match self {
            Price::KinesisShardHour => "kinesis.shard_hour".into(),
            Price::KinesisPutPayloadUnit => "kinesis.put_payload_unit".into(),
            Price::KinesisOnDemandStreamHour => "kinesis.on_demand_stream_hour".into(),
            Price::KinesisOnDemandInGb => "kinesis.on_demand_in_gb".into(),
            Price::KinesisOnDemandOutGb => "kinesis.on_demand_out_gb".into(),
            Price::FirehoseIngestGb => "firehose.ingest_gb".into(),
            Price::S3StorageGbMonth => "s3.storage_gb_month".into(),
            Price::S3PutRequest => "s3.put_request".into(),
            Price::Ec2Hour(t) => format!("ec2.{t}"),
            Price::EbsGp3GbMonth => "ebs.gp3_gb_month".into(),
            Price::LogsIngestGb => "logs.ingest_gb".into(),
            Price::LogsStorageGbMonth => "logs.storage_gb_month".into(),
        }
    }
    /// The unit the price is per.
    pub fn unit(&self) -> &'static str {
        match self {
            Price::KinesisShardHour => "shard-hour",
            Price::KinesisPutPayloadUnit => "PUT payload unit (25 KB)",
            Price::KinesisOnDemandStreamHour => "stream-hour",
            Price::KinesisOnDemandInGb
            | Price::KinesisOnDemandOutGb
            | Price::FirehoseIngestGb
            | Price::LogsIngestGb => "GB",
            Price::S3StorageGbMonth | Price::EbsGp3GbMonth | Price::LogsStorageGbMonth => {
                "GB-month"
            }
            Price::S3PutRequest => "request",
            Price::Ec2Hour(_) => "instance-hour",
        }
    }
}

/// One billed figure of a resource, per hour, before pricing (what a kind answers).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub what: String,
    pub price: Price,
    /// Units per hour.
    pub quantity: f64,
}

impl Line {
    pub fn new(what: impl Into<String>, price: Price, quantity: f64) -> Line {
        Line {
            what: what.into(),
            price,
            quantity,
        }
    }
}

/// Resources (addresses or ARNs) with their lines.
pub type Priced = Vec<(String, Vec<Line>)>;

/// A priced line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub what: String,
    pub unit: String,
    /// USD per unit; null when the price book has no price for it.
    pub unit_usd: Option<f64>,
    /// Units per hour.
    pub quantity: f64,
    pub hourly_usd: Option<f64>,
    /// Where the unit price comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One resource's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceCost {
    pub address: String,
    pub hourly_usd: Option<f64>,
    pub items: Vec<Item>,
}

/// The resources priced with one price book.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub hourly_usd: Option<f64>,
    pub resources: Vec<ResourceCost>,
    /// Why `hourly_usd` is null ("unknown: ...").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Prices each resource's lines (`(address, lines)`) from `prices`.
pub fn estimate(resources: Vec<(String, Vec<Line>)>, prices: &PriceBook) -> Estimate {
    let mut missing: Vec<String> = Vec::new();
    let resources: Vec<ResourceCost> = resources
        .into_iter()
        .map(|(address, lines)| {
            let items: Vec<Item> = lines
                .into_iter()
                .map(|l| {
                    let unit_usd = prices.get(&l.price);
                    if unit_usd.is_none() && !missing.contains(&l.price.key()) {
                        missing.push(l.price.key());
                    }
                    Item {
                        what: l.what,
                        unit: l.price.unit().to_string(),
                        unit_usd,
                        quantity: l.quantity,
                        hourly_usd: unit_usd.map(|u| u * l.quantity),
                        source: prices.source_of(&l.price),
                    }
                })
                .collect();
            let hourly_usd = items.iter().map(|i| i.hourly_usd).sum::<Option<f64>>();
            ResourceCost {
                address,
                hourly_usd,
                items,
            }
        })
        .collect();
    let hourly_usd = resources.iter().map(|r| r.hourly_usd).sum::<Option<f64>>();
    let reason = match (&prices.unknown, hourly_usd) {
        (Some(why), _) => Some(why.clone()),
        (None, None) => Some(format!(
            "unknown: no {} price for {} in the {} ({})",
            missing.join(", "),
            prices.region,
            prices.source,
            prices.date
        )),
        (None, Some(_)) => None,
    };
    Estimate {
        hourly_usd: if prices.unknown.is_some() {
            None
        } else {
            hourly_usd
        },
        resources,
        reason,
    }
}

/// The `cost` object of a plan (SPEC.md, "Added in the third release").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// The stack after the plan, per hour.
    pub hourly_usd: Option<f64>,
    pub daily_usd: Option<f64>,
    /// The stack if forgotten for 30 days.
    pub forgotten_30d_usd: Option<f64>,
    /// The stack until its `expires_after`, when the spec has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_after_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_after_hours: Option<f64>,
    /// What the plan's creations and replacements add, and its deletions and replacements
    /// remove, per hour.
    pub added_hourly_usd: Option<f64>,
    pub removed_hourly_usd: Option<f64>,
    pub price_source: String,
    pub price_date: String,
    pub price_region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub resources: Vec<ResourceCost>,
    pub assumptions: Vec<String>,
}

impl Cost {
    /// The stack's cost from its estimate (after the plan), what the plan adds and removes, and
    /// the spec's expiry.
    pub fn new(
        after: Estimate,
        added: Option<f64>,
        removed: Option<f64>,
        expires_after: Option<std::time::Duration>,
        prices: &PriceBook,
        assumptions: Vec<String>,
    ) -> Cost {
        let h = after.hourly_usd;
        let hours = expires_after.map(|d| d.as_secs_f64() / 3600.0);
        Cost {
            hourly_usd: h.map(round6),
            daily_usd: h.map(|h| round6(h * 24.0)),
            forgotten_30d_usd: h.map(|h| round6(h * FORGOTTEN_HOURS)),
            expires_after_usd: hours.and_then(|x| h.map(|h| round6(h * x))),
            expires_after_hours: hours,
            added_hourly_usd: added.map(round6),
            removed_hourly_usd: removed.map(round6),
            price_source: prices.source.clone(),
            price_date: prices.date.clone(),
            price_region: prices.region.clone(),
            reason: after.reason,
            resources: after.resources,
            assumptions,
        }
    }

    /// The same stack `n` times (a classroom or fleet of `n` targets).
    pub fn times(&self, n: usize) -> Option<f64> {
        self.hourly_usd.map(|h| round6(h * n as f64))
    }
}

/// What the estimate assumed, as sentences for the output: the usage of each resource (`usages`,
/// by address) that no `usage:` in the spec set, and the fixed assumptions of the models.
pub fn assumptions(usages: &[(String, Usage)]) -> Vec<String> {
    let d = Usage::default();
    let defaulted: Vec<&str> = usages
        .iter()
        .filter(|(_, u)| u.set.is_empty())
        .map(|(a, _)| a.as_str())
        .collect();
    let mut out = Vec::new();
    if !defaulted.is_empty() {
        out.push(format!(
            "the lab's usage for {}: {:.0} records/hour of {} bytes (its 20 sample weather records, \
             written once), each read once; {} GB root volume per host",
            defaulted.join(", "),
            d.records_per_hour(),
            d.record_bytes,
            d.volume_gb
        ));
    }
    for (a, u) in usages.iter().filter(|(_, u)| !u.set.is_empty()) {
        out.push(format!("{a}: usage from the spec ({})", u.set.join(", ")));
    }
    out.push("S3: one object per delivery buffer interval; storage of the lab's data".into());
    out.push("CloudWatch Logs: nothing ingested (Firehose logs only its errors)".into());
    out.push("EC2: Linux on-demand, shared tenancy; no data transfer out of AWS".into());
    out
}

/// Rounds a dollar figure to a millionth (what the output shows).
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Dollars as the text output shows them: cents, or fractions of a cent below one.
pub fn usd(x: Option<f64>) -> String {
    match x {
        None => "unknown".into(),
        Some(v) if v != 0.0 && v.abs() < 1.0 => format!("${v:.4}"),
        Some(v) => format!("${v:.2}"),
    }
}

/// The cost accrued since `created_at` at `hourly` dollars an hour, as of `now`.
pub fn accrued(
    hourly: Option<f64>,
    created_at: Option<std::time::SystemTime>,
    now: std::time::SystemTime,
) -> Option<f64> {
    let hours = now.duration_since(created_at?).ok()?.as_secs_f64() / 3600.0;
    hourly.map(|h| round6(h * hours))
}

/// The cost of a plan as text lines (the human plan; `markdown` for `--format markdown`).
pub fn render(c: &Cost, markdown: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (h, b) = if markdown { ("### ", "- ") } else { ("", "  ") };
    let _ = writeln!(
        out,
        "\n{h}Cost (prices: {}, {}, {})",
        c.price_source, c.price_date, c.price_region
    );
    if markdown {
        out.push('\n');
    }
    if let Some(why) = &c.reason {
        let _ = writeln!(out, "{b}cost unknown: {why}");
    }
    let _ = writeln!(
        out,
        "{b}this plan: +{}/hour added, -{}/hour removed",
        usd(c.added_hourly_usd),
        usd(c.removed_hourly_usd)
    );
    let _ = writeln!(
        out,
        "{b}the stack after it: {}/hour, {}/day",
        usd(c.hourly_usd),
        usd(c.daily_usd)
    );
    if let (Some(hours), cost) = (c.expires_after_hours, c.expires_after_usd) {
        let _ = writeln!(out, "{b}until it expires ({hours} h): {}", usd(cost));
    }
    let _ = writeln!(
        out,
        "{b}if forgotten for 30 days: {}",
        usd(c.forgotten_30d_usd)
    );
    if markdown {
        // One row per resource, folded: a classroom's plan must stay a pull-request comment.
        let _ = writeln!(out, "\n<details><summary>Cost by resource</summary>\n");
        let _ = writeln!(out, "| resource | $/hour | items |");
        let _ = writeln!(out, "|---|---|---|");
        for r in &c.resources {
            let items: Vec<String> = r
                .items
                .iter()
                .filter(|i| i.hourly_usd != Some(0.0))
                .map(|i| match i.unit_usd {
                    Some(u) => format!("{} {:.6} × ${u}/{}", i.what, i.quantity, i.unit),
                    None => format!("{} (no price)", i.what),
                })
                .collect();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                r.address,
                usd(r.hourly_usd),
                items.join("; ")
            );
        }
        let _ = writeln!(out, "\n</details>\n");
    } else {
        for r in &c.resources {
            for i in &r.items {
                let unit = i
                    .unit_usd
                    .map_or("unknown".to_string(), |u| format!("${u} per {}", i.unit));
                let _ = writeln!(
                    out,
                    "{b}{:<28} {:<40} {:>12.6} × {unit} = {}/h",
                    r.address,
                    i.what,
                    i.quantity,
                    usd(i.hourly_usd)
                );
            }
        }
    }
    for a in &c.assumptions {
        let _ = writeln!(out, "{b}assumed: {a}");
    }
    out
}
