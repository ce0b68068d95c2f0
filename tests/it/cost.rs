//! Cost (issue 20): `plan` prices the stack live from the Price List API (answered by the proxy
//! from recorded responses, support/pricing.rs), caches the prices with their date and reads
//! them back; a region without prices plans and says "unknown"; `stacks` shows a live stack's
//! rate and what it has cost since its `created-at` tag.

use crate::support::cli::*;
use crate::support::Sandbox;

const LAB: &str = include_str!("../../stacks/weather-lab.yaml");

fn lab_in(region: &str) -> String {
    LAB.replace("region: ap-northeast-2", &format!("region: {region}"))
}

fn cost_of(sb: &Sandbox, spec: &std::path::Path, prices: &str, dir: &str) -> serde_json::Value {
    let o = ss_env(
        sb,
        &["plan", p(spec), "--json", "--prices", prices],
        &[("STREAMSTACK_PRICES_DIR", dir)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan --json");
    v["cost"].clone()
}

#[test]
fn plan_prices_live_caches_them_with_the_date_and_an_unpriced_region_is_unknown() {
    let sb = Sandbox::passthrough();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_s = p(dir.path());
    let spec = spec_file(&lab_in("us-east-1"));

    // Live: every figure from GetProducts, the sum the list prices' (reference/pricing.md).
    let live = cost_of(&sb, &spec.path, "live", dir_s);
    assert_eq!(live["price_source"], "Price List API", "{live}");
    let date = live["price_date"].as_str().expect("date").to_string();
    assert!(date.ends_with('Z'), "{date}");
    let hourly = live["hourly_usd"].as_f64().expect("hourly");
    assert!((hourly - 0.0514).abs() < 0.001, "{live}");
    assert!(
        sb.proxy.emulated("pricing") >= 8,
        "{:?}",
        sb.proxy.call_names()
    );
    let stream = &live["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["address"] == "stream.weather")
        .expect("stream")["items"][0];
    assert_eq!(stream["unit_usd"], 0.04, "{stream}");
    assert_eq!(stream["quantity"], 1.0, "{stream}");
    assert!(live["assumptions"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert!(dir.path().join("us-east-1.json").is_file());

    // Cached (the default source): the same prices and date, no call to the Price List API.
    sb.proxy.reset_calls();
    let cached = cost_of(&sb, &spec.path, "cached", dir_s);
    assert_eq!(cached["price_source"], "cache");
    assert_eq!(cached["price_date"], date.as_str());
    assert_eq!(cached["hourly_usd"], live["hourly_usd"]);
    assert_eq!(sb.proxy.emulated("pricing"), 0);

    // A region the snapshot lacks and the Price List API has nothing for: plans, unknown.
    let elsewhere = spec_file(&lab_in("eu-west-1"));
    for prices in ["live", "offline"] {
        let c = cost_of(&sb, &elsewhere.path, prices, dir_s);
        assert!(c["hourly_usd"].is_null(), "{c}");
        let why = c["reason"].as_str().unwrap_or_default();
        assert!(
            why.starts_with("unknown") && why.contains("eu-west-1"),
            "{c}"
        );
    }
    let human = ok(&sb, &["plan", p(&elsewhere.path), "--prices", "offline"]);
    assert!(human.contains("cost unknown: unknown"), "{human}");
}

#[test]
fn stacks_shows_the_rate_and_the_cost_since_created_at() {
    let sb = Sandbox::passthrough();
    let ten_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(36_000);
    let created = streamstack::time::rfc3339(ten_hours_ago);
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&sb, "us-east-1"));
        let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
        ec2.run_instances()
            .image_id("ami-087fc0fcee2c7570a")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(tag("streamstack:stack", "priced"))
                    .tags(tag("streamstack:address", "host.collector"))
                    .tags(tag("streamstack:created-at", &created))
                    .build(),
            )
            .send()
            .await
            .expect("RunInstances");
        // moto's Tagging API skips Kinesis: `stacks` finds the stream by its own tags.
        let kinesis = aws_sdk_kinesis::Client::new(&sdk(&sb, "us-east-1"));
        kinesis
            .create_stream()
            .stream_name("priced-weather")
            .stream_mode_details(
                aws_sdk_kinesis::types::StreamModeDetails::builder()
                    .stream_mode(aws_sdk_kinesis::types::StreamMode::OnDemand)
                    .build()
                    .expect("mode"),
            )
            .send()
            .await
            .expect("CreateStream");
        kinesis
            .add_tags_to_stream()
            .stream_name("priced-weather")
            .tags("streamstack:stack", "priced")
            .tags("streamstack:address", "stream.weather")
            .tags("streamstack:created-at", &created)
            .send()
            .await
            .expect("AddTagsToStream");
    });
    let out = ok(
        &sb,
        &[
            "--region",
            "us-east-1",
            "stacks",
            "--json",
            "--prices",
            "offline",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("stacks --json");
    let s = v
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "priced"))
        .expect("the stack");
    // An on-demand stream-hour, t3.micro and its 8 GB gp3 volume at us-east-1 list prices
    // (and the lab's 20 KB in and out an hour).
    let data = 20.0 * 1024.0 / 1024f64.powi(3) * (0.08 + 0.04);
    let rate = 0.04 + 0.0104 + 8.0 * 0.08 / 730.0 + data;
    let hourly = s["hourly_usd"].as_f64().expect("hourly");
    assert!((hourly - rate).abs() < 1e-5, "{s}");
    let accrued = s["accrued_usd"].as_f64().expect("accrued");
    // Ten hours, give or take the seconds the test took.
    assert!((accrued - 10.0 * rate).abs() < 0.001, "{s}");
    let human = ok(
        &sb,
        &["--region", "us-east-1", "stacks", "--prices", "offline"],
    );
    assert!(
        human.contains("$0.0513") && human.contains("$0.5128"),
        "{human}"
    );
}
