//! The price book: unit prices of one region, where they come from and as of when.
//!
//! Three sources, chosen with `--prices` (docs/cli.md):
//! - `offline`: the snapshot compiled into the binary ([`SNAPSHOT`], dated [`SNAPSHOT_DATE`],
//!   a source per figure; it covers [`SNAPSHOT_REGIONS`] only: another region is "unknown").
//! - `cached` (the default): the on-disk cache a `live` run wrote for the region
//!   (`$XDG_CACHE_HOME/streamstack/prices/REGION.json`, else `~/.cache/...`), with its date;
//!   the snapshot when there is none. No network call, so a plan needs no extra permission.
//! - `live`: the Price List Query API (`pricing:GetProducts`, served from us-east-1), written
//!   to the cache; when it cannot answer, the cache or the snapshot, saying why.
//!
//! No source ever fails a plan: the worst is a book whose `unknown` says why.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Price;

/// How a command gets its prices (`--prices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PricesMode {
    /// Ask the Price List Query API now (and cache the answer).
    Live,
    /// The on-disk cache of an earlier live run, else the offline snapshot (the default).
    #[default]
    Cached,
    /// The snapshot compiled into the binary.
    Offline,
}

/// The day the snapshot's figures were read.
pub const SNAPSHOT_DATE: &str = "2026-12-03";
/// The regions the snapshot has prices for.
pub const SNAPSHOT_REGIONS: &[&str] = &["us-east-1"];

const INFRACOST_KINESIS: &str = "infracost testdata/kinesis_stream_test.golden (us-east-1 list prices; 730 h = $10.95 provisioned, $29.20 on-demand)";

/// The offline snapshot (us-east-1, on-demand list prices, USD): key, price per unit, source.
pub const SNAPSHOT: &[(&str, f64, &str)] = &[
    ("kinesis.shard_hour", 0.015, INFRACOST_KINESIS),
    ("kinesis.put_payload_unit", 0.014 / 1_000_000.0, INFRACOST_KINESIS),
    ("kinesis.on_demand_stream_hour", 0.04, INFRACOST_KINESIS),
    ("kinesis.on_demand_in_gb", 0.08, INFRACOST_KINESIS),
    ("kinesis.on_demand_out_gb", 0.04, INFRACOST_KINESIS),
    (
        "firehose.ingest_gb",
        0.029,
        "aws.amazon.com/firehose/pricing (Direct PUT and KDS source, first 500 TB/month; records rounded up to 5 KB)",
    ),
    (
        "s3.storage_gb_month",
        0.023,
        "infracost testdata/s3_bucket_test.golden (S3 Standard, first 50 TB)",
    ),
    (
        "s3.put_request",
        0.005 / 1000.0,
        "aws.amazon.com/s3/pricing (S3 Standard PUT, COPY, POST, LIST: $0.005 per 1,000)",
    ),
    (
        "ec2.t3.micro",
        0.0104,
        "aws/karpenter-provider-aws generated price table, us-east-1 (2026-07-20)",
    ),
    (
        "ec2.t2.micro",
        0.0116,
        "aws/karpenter-provider-aws generated price table, us-east-1 (2026-07-20)",
    ),
    (
        "ebs.gp3_gb_month",
        0.08,
        "aws.amazon.com/ebs/pricing (gp3 storage)",
    ),
    (
        "logs.ingest_gb",
        0.50,
        "infracost testdata/cloudwatch_log_group_test.golden (Standard ingestion)",
    ),
    (
        "logs.storage_gb_month",
        0.03,
        "infracost testdata/cloudwatch_log_group_test.golden (archived storage)",
    ),
];

/// Unit prices of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceBook {
    pub region: String,
    /// "offline snapshot", "cache" or "Price List API".
    pub source: String,
    /// When the prices were read (a day, or an RFC 3339 time for live and cached prices).
    pub date: String,
    pub prices: BTreeMap<String, f64>,
    /// Where each figure was read.
    pub sources: BTreeMap<String, String>,
    /// Why there are no prices at all ("unknown: ..."), when so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
    /// Why this source and not the one asked for (a live fetch that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PriceBook {
    pub fn get(&self, p: &Price) -> Option<f64> {
        self.prices.get(&p.key()).copied()
    }
    pub fn source_of(&self, p: &Price) -> Option<String> {
        self.sources.get(&p.key()).cloned()
    }
}

/// The offline snapshot's book for `region`: unknown, saying so, when it does not cover it.
pub fn snapshot(region: &str) -> PriceBook {
    let covered = SNAPSHOT_REGIONS.contains(&region);
    let mut book = PriceBook {
        region: region.to_string(),
        source: "offline snapshot".into(),
        date: SNAPSHOT_DATE.into(),
        prices: BTreeMap::new(),
        sources: BTreeMap::new(),
        unknown: None,
        note: None,
    };
    if covered {
        for (key, usd, source) in SNAPSHOT {
            book.prices.insert((*key).into(), *usd);
            book.sources.insert((*key).into(), (*source).into());
        }
    } else {
        book.unknown = Some(format!(
            "unknown: the offline price snapshot ({SNAPSHOT_DATE}) has no prices for {region} \
             (it covers {}) and no prices for it are cached; `plan --prices live` asks the AWS \
             Price List API",
            SNAPSHOT_REGIONS.join(", ")
        ));
    }
    book
}

/// The directory of the price cache: `$STREAMSTACK_PRICES_DIR`, else
/// `$XDG_CACHE_HOME/streamstack/prices`, else `~/.cache/streamstack/prices`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |n: &str| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("STREAMSTACK_PRICES_DIR") {
        return Some(d);
    }
    let base = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("streamstack").join("prices"))
}

/// The cached book of `region` in `dir`, if one was written and reads back.
pub fn read_cache(dir: &std::path::Path, region: &str) -> Option<PriceBook> {
    let text = std::fs::read_to_string(dir.join(format!("{region}.json"))).ok()?;
    let mut book: PriceBook = serde_json::from_str(&text).ok()?;
    (book.region == region && book.unknown.is_none()).then(|| {
        book.source = "cache".into();
        book.note = None;
        book
    })
}

/// Writes `book` (prices of the live API) to the cache of its region in `dir`.
pub fn write_cache(dir: &std::path::Path, book: &PriceBook) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(book).map_err(std::io::Error::other)?;
    let path = dir.join(format!("{}.json", book.region));
    let tmp = dir.join(format!(".{}.json.tmp", book.region));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// The book for `region` in `mode`; `live` asks `client` (the pricing client) for the region's
/// prices of Kinesis, Firehose, S3, CloudWatch Logs, EBS gp3 and `instance_types`.
pub async fn book(
    mode: PricesMode,
    region: &str,
    client: Option<&aws_sdk_pricing::Client>,
    instance_types: &[String],
) -> PriceBook {
    let dir = cache_dir();
    let cached = || dir.as_deref().and_then(|d| read_cache(d, region));
    match mode {
        PricesMode::Offline => snapshot(region),
        PricesMode::Cached => cached().unwrap_or_else(|| snapshot(region)),
        PricesMode::Live => {
            let fetched = match client {
                Some(c) => fetch(c, region, instance_types).await,
                None => Err("no pricing client".into()),
            };
            match fetched {
                Ok(book) => {
                    if let Some(d) = &dir {
                        if let Err(e) = write_cache(d, &book) {
                            tracing::warn!("could not cache prices in {}: {e}", d.display());
                        }
                    }
                    book
                }
                Err(why) => {
                    let mut book = cached().unwrap_or_else(|| snapshot(region));
                    let why = format!("the Price List API did not answer ({why})");
                    if let Some(u) = &book.unknown {
                        book.unknown = Some(format!("{u}; {why}"));
                    }
                    book.note = Some(why);
                    book
                }
            }
        }
    }
}

/// One `GetProducts` query: the service, filters beyond the region, and the usage-type
/// suffixes it prices (`None`: any product it returns).
struct Query {
    service: &'static str,
    filters: Vec<(&'static str, aws_sdk_pricing::types::FilterType, String)>,
    wants: Vec<(Option<&'static str>, String)>,
}

fn queries(instance_types: &[String]) -> Vec<Query> {
    use aws_sdk_pricing::types::FilterType::{Contains, TermMatch};
    let mut out = vec![
        Query {
            service: "AmazonKinesis",
            filters: vec![],
            wants: vec![
                (Some("Storage-ShardHour"), "kinesis.shard_hour".into()),
                (
                    Some("PutRequestPayloadUnits"),
                    "kinesis.put_payload_unit".into(),
                ),
                (
                    Some("OnDemand-StreamHour"),
                    "kinesis.on_demand_stream_hour".into(),
                ),
                (
                    Some("OnDemand-BilledIncomingBytes"),
                    "kinesis.on_demand_in_gb".into(),
                ),
                (
                    Some("OnDemand-BilledOutgoingBytes"),
                    "kinesis.on_demand_out_gb".into(),
                ),
            ],
        },
        Query {
            service: "AmazonKinesisFirehose",
            filters: vec![("usagetype", Contains, "BilledBytes".into())],
            wants: vec![(Some("BilledBytes"), "firehose.ingest_gb".into())],
        },
        Query {
            service: "AmazonS3",
            filters: vec![
                ("usagetype", Contains, "TimedStorage-ByteHrs".into()),
                ("volumeType", TermMatch, "Standard".into()),
            ],
            wants: vec![(Some("TimedStorage-ByteHrs"), "s3.storage_gb_month".into())],
        },
        Query {
            service: "AmazonS3",
            filters: vec![("usagetype", Contains, "Requests-Tier1".into())],
            wants: vec![(Some("Requests-Tier1"), "s3.put_request".into())],
        },
        Query {
            service: "AmazonEC2",
            filters: vec![
                ("volumeApiName", TermMatch, "gp3".into()),
                ("productFamily", TermMatch, "Storage".into()),
            ],
            wants: vec![(None, "ebs.gp3_gb_month".into())],
        },
        Query {
            service: "AmazonCloudWatch",
            filters: vec![("usagetype", Contains, "DataProcessing-Bytes".into())],
            wants: vec![(Some("DataProcessing-Bytes"), "logs.ingest_gb".into())],
        },
        Query {
            service: "AmazonCloudWatch",
            filters: vec![("usagetype", Contains, "TimedStorage-ByteHrs".into())],
            wants: vec![(Some("TimedStorage-ByteHrs"), "logs.storage_gb_month".into())],
        },
    ];
    for t in instance_types {
        out.push(Query {
            service: "AmazonEC2",
            filters: vec![
                ("instanceType", TermMatch, t.clone()),
                ("operatingSystem", TermMatch, "Linux".into()),
                ("tenancy", TermMatch, "Shared".into()),
                ("preInstalledSw", TermMatch, "NA".into()),
                ("capacitystatus", TermMatch, "Used".into()),
            ],
            wants: vec![(None, format!("ec2.{t}"))],
        });
    }
    out
}

/// The region's prices from the Price List Query API.
async fn fetch(
    client: &aws_sdk_pricing::Client,
    region: &str,
    instance_types: &[String],
) -> Result<PriceBook, String> {
    use aws_sdk_pricing::types::{Filter, FilterType};
    let now = crate::time::rfc3339(std::time::SystemTime::now());
    let mut book = PriceBook {
        region: region.to_string(),
        source: "Price List API".into(),
        date: now.clone(),
        prices: BTreeMap::new(),
        sources: BTreeMap::new(),
        unknown: None,
        note: None,
    };
    for q in queries(instance_types) {
        let mut filters = vec![("regionCode", FilterType::TermMatch, region.to_string())];
        filters.extend(q.filters.iter().cloned());
        let filters: Vec<Filter> = filters
            .into_iter()
            .map(|(f, t, v)| Filter::builder().r#type(t).field(f).value(v).build())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let mut token: Option<String> = None;
        // A bounded number of pages: the filters above match a handful of products.
        for _ in 0..10 {
            let out = client
                .get_products()
                .service_code(q.service)
                .set_filters(Some(filters.clone()))
                .format_version("aws_v1")
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| short_error(&e))?;
            for doc in out.price_list() {
                if let Some((usagetype, usd)) = parse_product(doc) {
                    for (suffix, key) in &q.wants {
                        let hit = match suffix {
                            None => true,
                            Some(s) => usage_type_is(&usagetype, s),
                        };
                        if hit && !book.prices.contains_key(key) {
                            book.prices.insert(key.clone(), usd);
                            book.sources.insert(
                                key.clone(),
                                format!(
                                    "AWS Price List API GetProducts {} {usagetype} ({now})",
                                    q.service
                                ),
                            );
                        }
                    }
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    if book.prices.is_empty() {
        return Err(format!("no products for {region}"));
    }
    Ok(book)
}

/// An SDK error in one line: the HTTP status and AWS's code, or why nothing answered.
fn short_error<E: aws_sdk_pricing::error::ProvideErrorMetadata>(
    e: &aws_sdk_pricing::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> String {
    use aws_sdk_pricing::error::SdkError;
    match e {
        SdkError::ServiceError(se) => format!(
            "GetProducts answered HTTP {}{}",
            se.raw().status().as_u16(),
            se.err().code().map(|c| format!(" {c}")).unwrap_or_default()
        ),
        SdkError::TimeoutError(_) => "GetProducts timed out".into(),
        SdkError::DispatchFailure(_) => "the pricing endpoint could not be reached".into(),
        _ => "GetProducts returned no usable answer".into(),
    }
}

/// Whether a usage type (`USE1-BilledBytes`, `Storage-ShardHour`) is `suffix` with at most a
/// region prefix.
fn usage_type_is(usagetype: &str, suffix: &str) -> bool {
    usagetype == suffix
        || usagetype
            .strip_suffix(suffix)
            .is_some_and(|p| p.ends_with('-') && !p[..p.len() - 1].contains('-'))
}

/// One product of a `PriceList` (a JSON string): its usage type and its first on-demand price
/// (the first tier) in USD.
pub fn parse_product(doc: &str) -> Option<(String, f64)> {
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    let usagetype = v
        .pointer("/product/attributes/usagetype")?
        .as_str()?
        .to_string();
    let terms = v.pointer("/terms/OnDemand")?.as_object()?;
    let mut best: Option<f64> = None;
    for term in terms.values() {
        for dim in term.get("priceDimensions")?.as_object()?.values() {
            let begin = dim
                .get("beginRange")
                .and_then(|b| b.as_str())
                .unwrap_or("0");
            let usd = dim
                .pointer("/pricePerUnit/USD")?
                .as_str()?
                .parse::<f64>()
                .ok()?;
            if begin == "0" {
                best = Some(usd);
            }
        }
    }
    Some((usagetype, best?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_has_every_lab_figure_with_a_source() {
        let b = snapshot("us-east-1");
        assert!(b.unknown.is_none());
        assert_eq!(b.date, SNAPSHOT_DATE);
        assert_eq!(b.get(&Price::KinesisOnDemandStreamHour), Some(0.04));
        assert_eq!(b.get(&Price::KinesisShardHour), Some(0.015));
        assert_eq!(b.get(&Price::Ec2Hour("t3.micro".into())), Some(0.0104));
        assert_eq!(b.get(&Price::EbsGp3GbMonth), Some(0.08));
        assert_eq!(b.get(&Price::FirehoseIngestGb), Some(0.029));
        for (key, _, _) in SNAPSHOT {
            assert!(b.sources.get(*key).is_some_and(|s| !s.is_empty()), "{key}");
        }
    }

    #[test]
    fn a_region_outside_the_snapshot_is_unknown_and_says_why() {
        let b = snapshot("ap-southeast-7");
        assert!(b.prices.is_empty());
        let why = b.unknown.unwrap_or_default();
        assert!(
            why.starts_with("unknown:") && why.contains("ap-southeast-7"),
            "{why}"
        );
    }

    #[test]
    fn the_cache_reads_back_what_was_written_with_its_date() {
        let dir = std::env::temp_dir().join(format!("streamstack-prices-{}", std::process::id()));
        let mut b = snapshot("us-east-1");
        b.source = "Price List API".into();
        b.date = "2026-12-01T10:00:00Z".into();
        b.prices.insert("kinesis.shard_hour".into(), 0.5);
        write_cache(&dir, &b).unwrap();
        let read = read_cache(&dir, "us-east-1").unwrap();
        assert_eq!(read.source, "cache");
        assert_eq!(read.date, "2026-12-01T10:00:00Z");
        assert_eq!(read.get(&Price::KinesisShardHour), Some(0.5));
        assert!(read_cache(&dir, "eu-west-1").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_price_list_product_parses_to_its_usage_type_and_first_tier() {
        let doc = r#"{"product":{"productFamily":"Kinesis Streams","attributes":{"usagetype":"APN2-Storage-ShardHour","regionCode":"ap-northeast-2"},"sku":"X"},"serviceCode":"AmazonKinesis","terms":{"OnDemand":{"X.JRTCKXETXF":{"priceDimensions":{"X.JRTCKXETXF.6YS6EN2CT7":{"unit":"ShardHour","endRange":"Inf","description":"$0.0179 per shard hour","beginRange":"0","pricePerUnit":{"USD":"0.0179000000"}}},"sku":"X","effectiveDate":"2026-11-01T00:00:00Z"}}},"version":"20261101","publicationDate":"2026-11-01T00:00:00Z"}"#;
        assert_eq!(
            parse_product(doc),
            Some(("APN2-Storage-ShardHour".into(), 0.0179))
        );
        assert!(usage_type_is("APN2-Storage-ShardHour", "Storage-ShardHour"));
        assert!(usage_type_is("Storage-ShardHour", "Storage-ShardHour"));
        assert!(!usage_type_is("USE1-KDS-BilledBytes", "BilledBytes"));
        assert!(usage_type_is("USE1-BilledBytes", "BilledBytes"));
    }
}
