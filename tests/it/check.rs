//! `check` and `apply --wait-bootstrap` against moto, with the test playing the host (as the
//! real instance would: tagging itself bootstrapped, the agent putting records).

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::wait::{until, PATIENCE};
use crate::support::Sandbox;

fn instance_id(sb: &Sandbox, stack: &str, region: &str) -> String {
    instance_ids(sb, stack, region)
        .into_iter()
        .next()
        .expect("an instance")
}

/// The stack's pending or running instances.
fn instance_ids(sb: &Sandbox, stack: &str, region: &str) -> Vec<String> {
    crate::support::cli::instance_ids(sb, stack, region, &["pending", "running"])
}

/// What the host's user-data does at its end: tag its own instance.
fn report_bootstrap(sb: &Sandbox, region: &str, id: &str, value: &str) {
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(sb, region));
        ec2.create_tags()
            .resources(id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("streamstack:bootstrap")
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("tag");
    });
}

fn check_json(sb: &Sandbox, args: &[&str]) -> (i32, serde_json::Value) {
    let o = ss(sb, args);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().to_string();
    let v = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn check_names_the_host_hop_then_the_delivery_hop_with_the_stream_count() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    // Not applied: a clear list of what is missing.
    let o = ss(&sb, &["check", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("is not applied") && out.contains("stream.weather"),
        "{out}"
    );

    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    // The host has not reported: it is the first broken hop.
    let (code, report) = check_json(&sb, &["check", "--json", p(&spec.path)]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["first_broken"], "host.collector", "{report}");
    let human = ok_or_fail(&sb, &["check", p(&spec.path)]);
    assert!(human.contains("not bootstrapped after"), "{human}");
    assert!(human.contains("console output ends with"), "{human}");

    // The host bootstraps and its agent sends the lab's 20 records; nothing delivers them
    // (moto's Firehose never reads its stream): the delivery hop is named, with the count.
    let id = instance_id(&sb, "weather-lab", LAB_REGION);
    report_bootstrap(&sb, LAB_REGION, &id, "ok");
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(&sb, LAB_REGION));
        for i in 0..20 {
            k.put_record()
                .stream_name("weather-lab-weather")
                .partition_key(format!("p{i}"))
                .data(aws_smithy_types::Blob::new(
                    format!("{{\"city\":\"Seoul\",\"i\":{i}}}\n").into_bytes(),
                ))
                .send()
                .await
                .expect("put record");
        }
    });
    let (code, report) = check_json(&sb, &["check", "--json", p(&spec.path)]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["first_broken"], "delivery.weather-to-s3", "{report}");
    let hops = report["hops"].as_array().expect("hops");
    let hop = |a: &str| {
        hops.iter()
            .find(|h| h["address"] == a)
            .unwrap_or_else(|| panic!("{a} in {report}"))
    };
    assert_eq!(hop("host.collector")["ok"], true);
    assert_eq!(hop("stream.weather")["ok"], true);
    assert_eq!(hop("stream.weather")["evidence"]["records"], 20);
    let delivery = hop("delivery.weather-to-s3");
    assert_eq!(delivery["evidence"]["records"], 0);
    assert!(
        delivery["summary"]
            .as_str()
            .is_some_and(|s| s.contains("20 records in stream.weather")),
        "{delivery}"
    );
    assert!(
        delivery["hint"]
            .as_str()
            .is_some_and(|s| s.contains("interval_seconds=60")),
        "{delivery}"
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

/// `ss` that expects exit 1 and returns stdout.
fn ok_or_fail(sb: &Sandbox, args: &[&str]) -> String {
    let o = ss(sb, args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_put_passes_for_a_direct_delivery_and_reports_the_counts() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(
        "version: 1\nstack: direct\nregion: eu-west-1\nbuckets:\n  logs: { force_destroy: true }\n\
         deliveries:\n  raw: { from: direct, to: logs, prefix: \"raw/\", compression: GZIP }\n",
    );
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let (code, report) = check_json(
        &sb,
        &[
            "check",
            "--put",
            "20",
            "--timeout",
            "60s",
            "--json",
            p(&spec.path),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    let run = report["run_id"].as_str().expect("run id");
    assert!(!run.is_empty());
    let hop = &report["hops"][0];
    assert_eq!(hop["address"], "delivery.raw");
    assert_eq!(hop["evidence"]["test_records"], 20, "{report}");
    assert!(
        hop["evidence"]["objects"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, "eu-west-1", "direct");
}

#[test]
fn apply_wait_bootstrap_waits_for_the_host_report_and_fails_on_a_failed_one() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    let wait_bootstrap = [
        "apply",
        "--auto-approve",
        "--wait-bootstrap",
        "60s",
        p(&spec.path),
    ];
    // Play the host: it reports only once the apply says it is waiting for the report (which
    // it says after waiting a while), so the apply is seen waiting whatever the machine's pace.
    let mut apply = Background::start(&sb, &wait_bootstrap);
    apply.wait_for_line("waiting for the host to report its bootstrap");
    let id = instance_id(&sb, "weather-lab", LAB_REGION);
    report_bootstrap(&sb, LAB_REGION, &id, "ok");
    let applied = apply.finish();
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    let out = String::from_utf8_lossy(&applied.stdout);
    assert!(
        out.contains("waiting for the host to report its bootstrap"),
        "{out}"
    );
    // The report is the host's, not drift: the next plan has no changes.
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A replaced host that reports a failure: apply fails, naming the step and the console.
    rewrite(&spec, &WEATHER_LAB.replace("records: 20", "records: 21"));
    let mut apply = Background::start(&sb, &wait_bootstrap);
    let id = until("the replacement instance", PATIENCE, || {
        if apply.exited() {
            return Ok(None);
        }
        let ids = instance_ids(&sb, "weather-lab", LAB_REGION);
        let new = ids.iter().find(|id| !untagged_old(&sb, id)).cloned();
        new.map(Some).ok_or(ids)
    });
    let Some(id) = id else {
        let out = apply.finish();
        panic!(
            "the apply ended before a new instance appeared:\n{}",
            text(&out)
        );
    };
    report_bootstrap(&sb, LAB_REGION, &id, "failed:install-agent");
    let applied = apply.finish();
    assert_eq!(applied.status.code(), Some(1), "{}", text(&applied));
    let err = String::from_utf8_lossy(&applied.stderr);
    assert!(
        err.contains("bootstrap failed at step install-agent"),
        "{err}"
    );
    assert!(err.contains("console output ends with"), "{err}");
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

/// Is `id` the instance that already reported (the one being replaced)?
fn untagged_old(sb: &Sandbox, id: &str) -> bool {
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(sb, LAB_REGION));
        let out = ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("describe");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .flat_map(|i| i.tags())
            .any(|t| t.key() == Some("streamstack:bootstrap"))
    })
}
