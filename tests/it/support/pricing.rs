//! The Price List Query API (`AWSPriceListService.GetProducts`, JSON 1.1), which moto lacks,
//! answered by the proxy from recorded responses in AWS's format: one product per usage type
//! the cost model prices, us-east-1 only (as `aws pricing get-products --service-code ...
//! --filters Type=TERM_MATCH,Field=regionCode,Value=us-east-1` prints them, trimmed to the
//! attributes streamstack reads). A region or service without recordings answers an empty
//! `PriceList`, as AWS does for a filter that matches nothing.

use serde_json::{json, Value};

/// Every answered request is counted here by the proxy (label "pricing").
pub const LABEL: &str = "pricing";

/// One recording: service code, usage type, extra attributes, unit, USD per unit.
type Recording = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

const RECORDED: &[Recording] = &[
    (
        "AmazonKinesis",
        "Storage-ShardHour",
        &[],
        "ShardHour",
        "0.0150000000",
    ),
    (
        "AmazonKinesis",
        "PutRequestPayloadUnits",
        &[],
        "PutRequest",
        "0.0000000140",
    ),
    (
        "AmazonKinesis",
        "OnDemand-StreamHour",
        &[],
        "StreamHour",
        "0.0400000000",
    ),
    (
        "AmazonKinesis",
        "OnDemand-BilledIncomingBytes",
        &[],
        "GB",
        "0.0800000000",
    ),
    (
        "AmazonKinesis",
        "OnDemand-BilledOutgoingBytes",
        &[],
        "GB",
        "0.0400000000",
    ),
    (
        "AmazonKinesisFirehose",
        "BilledBytes",
        &[],
        "GB",
        "0.0290000000",
    ),
    (
        "AmazonS3",
        "TimedStorage-ByteHrs",
        &[("volumeType", "Standard")],
        "GB-Mo",
        "0.0230000000",
    ),
    (
        "AmazonS3",
        "Requests-Tier1",
        &[],
        "Requests",
        "0.0000050000",
    ),
    (
        "AmazonEC2",
        "EBS:VolumeUsage.gp3",
        &[("volumeApiName", "gp3"), ("productFamily", "Storage")],
        "GB-Mo",
        "0.0800000000",
    ),
    (
        "AmazonEC2",
        "BoxUsage:t3.micro",
        &[
            ("instanceType", "t3.micro"),
            ("operatingSystem", "Linux"),
            ("tenancy", "Shared"),
            ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
        ],
        "Hrs",
        "0.0104000000",
    ),
    (
        "AmazonCloudWatch",
        "DataProcessing-Bytes",
        &[],
        "GB",
        "0.5000000000",
    ),
    (
        "AmazonCloudWatch",
        "TimedStorage-ByteHrs",
        &[],
        "GB-Mo",
        "0.0300000000",
    ),
];

/// One product of a `PriceList`, as the JSON string AWS sends.
fn product(
    service: &str,
    usagetype: &str,
    attrs: &[(&str, &str)],
    unit: &str,
    usd: &str,
) -> String {
    let sku = format!("{:X}", usagetype.len() * 7919 + service.len());
    let mut attributes = json!({
        "usagetype": usagetype,
        "regionCode": "us-east-1",
        "location": "US East (N. Virginia)",
        "servicecode": service,
    });
    for (k, v) in attrs {
        attributes[*k] = json!(v);
    }
    json!({
        "product": {"productFamily": "", "attributes": attributes, "sku": sku},
        "serviceCode": service,
        "terms": {"OnDemand": {format!("{sku}.JRTCKXETXF"): {
            "priceDimensions": {format!("{sku}.JRTCKXETXF.6YS6EN2CT7"): {
                "unit": unit, "endRange": "Inf", "description": format!("${usd} per {unit}"),
                "appliesTo": [], "rateCode": format!("{sku}.JRTCKXETXF.6YS6EN2CT7"),
                "beginRange": "0", "pricePerUnit": {"USD": usd}
            }},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
            "termAttributes": {}
        }}},
        "version": "20261120000000",
        "publicationDate": "2026-11-20T00:00:00Z"
    })
    .to_string()
}

/// The answer to a `GetProducts` request body: the recorded products its filters match.
pub fn get_products(request: &Value) -> Value {
    let service = request["ServiceCode"].as_str().unwrap_or_default();
    let filters: Vec<(String, String, String)> = request["Filters"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                    (s("Type"), s("Field"), s("Value"))
                })
                .collect()
        })
        .unwrap_or_default();
    let list: Vec<String> = RECORDED
        .iter()
        .filter(|(s, ..)| *s == service)
        .filter(|(_, usagetype, attrs, ..)| {
            filters.iter().all(|(kind, field, value)| {
                let actual = match field.as_str() {
                    "regionCode" => Some("us-east-1"),
                    "usagetype" => Some(*usagetype),
                    other => attrs.iter().find(|(k, _)| *k == other).map(|(_, v)| *v),
                };
                match (kind.as_str(), actual) {
                    ("CONTAINS", Some(a)) => a.contains(value.as_str()),
                    (_, Some(a)) => a == value,
                    (_, None) => false,
                }
            })
        })
        .map(|(s, u, a, unit, usd)| product(s, u, a, unit, usd))
        .collect();
    json!({"FormatVersion": "aws_v1", "PriceList": list})
}
