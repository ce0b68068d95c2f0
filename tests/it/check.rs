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

/// `check --put 20 --timeout TIMEOUT --json`: the exit code and the report.
fn check_put(
    sb: &Sandbox,
    spec: &crate::support::cli::SpecFile,
    timeout: &str,
) -> (i32, serde_json::Value) {
    let args = ["check", "--put", "20", "--timeout", timeout, "--json"];
    let path = p(&spec.path);
    check_json(sb, &[&args[..], &[path]].concat())
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
    let (code, report) = check_put(&sb, &spec, "60s");
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

/// `n` records as the agent writes them, one JSON object a line.
fn lines(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{{\"city\":\"Seoul\",\"i\":{i}}}\n"))
        .collect::<String>()
        .into_bytes()
}

/// `data` as Firehose writes it with `compression`: a gzip file, a zip archive of one entry,
/// the Snappy framing format, or Hadoop's blocks of raw Snappy chunks.
fn compressed(compression: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match compression {
        "GZIP" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "ZIP" => {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            w.start_file("records", zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
            w.finish().unwrap().into_inner()
        }
        "Snappy" => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.into_inner().unwrap()
        }
        "HADOOP_SNAPPY" => {
            let z = snap::raw::Encoder::new().compress_vec(data).unwrap();
            let mut out = (data.len() as u32).to_be_bytes().to_vec();
            out.extend((z.len() as u32).to_be_bytes());
            out.extend(z);
            out
        }
        other => panic!("{other}"),
    }
}

/// The stack's bucket, by its name's prefix.
fn bucket_of(sb: &Sandbox, stack: &str) -> String {
    rt().block_on(async {
        let out = sb.s3().list_buckets().send().await.expect("list buckets");
        out.buckets()
            .iter()
            .filter_map(|b| b.name())
            .find(|n| n.starts_with(stack))
            .expect("the stack's bucket")
            .to_string()
    })
}

fn put_object(sb: &Sandbox, bucket: &str, key: &str, body: Vec<u8>) {
    rt().block_on(async {
        sb.s3()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("put object");
    });
}

/// A sandbox with `spec` (a stack in eu-west-1) applied.
fn applied(spec: &str) -> (Sandbox, crate::support::cli::SpecFile) {
    let sb = Sandbox::passthrough();
    let spec = spec_file(spec);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    (sb, spec)
}

/// Destroys the stack, and proves nothing of it remains.
fn destroyed(sb: &Sandbox, spec: &crate::support::cli::SpecFile, stack: &str) {
    ok(sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(sb, "eu-west-1", stack);
}

const COMPRESSIONS: [&str; 4] = ["GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"];

/// Objects in each compression Firehose writes are counted, record by record (a ZIP of 20
/// records was 1 before), and each is downloaded once however many times check looks.
#[test]
fn check_counts_the_records_in_every_compression_and_downloads_each_object_once() {
    let mut spec = "version: 1\nstack: packed\nregion: eu-west-1\nbuckets:\n  logs: { force_destroy: true }\ndeliveries:\n".to_string();
    for c in COMPRESSIONS {
        let key = c.to_lowercase().replace('_', "-");
        spec += &format!(
            "  {key}: {{ from: direct, to: logs, prefix: \"{key}/\", compression: {c} }}\n"
        );
    }
    // A delivery with nothing yet: check keeps looking until the test writes its object.
    spec += "  late: { from: direct, to: logs, prefix: \"late/\", compression: GZIP }\n";
    let (sb, spec) = applied(&spec);
    let bucket = bucket_of(&sb, "packed");
    for (i, c) in COMPRESSIONS.iter().enumerate() {
        let key = c.to_lowercase().replace('_', "-");
        let object = format!("{key}/2026/12/03/21/packed-{key}-1-2026-12-03-21-00-00-{i}");
        put_object(&sb, &bucket, &object, compressed(c, &lines(20)));
    }
    sb.proxy.reset_calls();
    let mut check = Background::start(
        &sb,
        &["check", "--json", "--timeout", "300s", p(&spec.path)],
    );
    // Two looks at least (each lists the five prefixes), then the last hop's object.
    until("two looks of check", crate::support::wait::PATIENCE, || {
        let listings = sb.proxy.calls_of("s3:GET").len();
        if check.exited() {
            return Ok(());
        }
        (listings >= 10).then_some(()).ok_or(listings)
    });
    put_object(&sb, &bucket, "late/0", compressed("GZIP", &lines(3)));
    let out = check.finish();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a report");
    assert_eq!(out.status.code(), Some(0), "{report}");
    for c in COMPRESSIONS {
        let address = format!("delivery.{}", c.to_lowercase().replace('_', "-"));
        let hop = report["hops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["address"] == address.as_str())
            .unwrap_or_else(|| panic!("{address} in {report}"));
        assert_eq!(hop["evidence"]["records"], 20, "{c}: {hop}");
        assert_eq!(hop["evidence"]["objects"], 1, "{c}: {hop}");
        assert_eq!(hop["ok"], true, "{c}: {hop}");
    }
    let looks = sb.proxy.calls_of("s3:GET").len() / 5;
    assert!(looks >= 3, "{looks} looks");
    // Five objects, each downloaded once in all those looks.
    assert_eq!(
        sb.proxy.calls_of("s3:GET key").len(),
        5,
        "{:?}",
        sb.proxy.call_names()
    );
    destroyed(&sb, &spec, "packed");
}

/// An object that cannot be decoded fails the hop, naming the object and the compression.
#[test]
fn check_fails_on_an_object_it_cannot_read_and_names_it() {
    let (sb, spec) = applied(
        "version: 1\nstack: broken\nregion: eu-west-1\nbuckets:\n  logs: { force_destroy: true }\n\
         deliveries:\n  raw: { from: direct, to: logs, prefix: \"raw/\", compression: ZIP }\n",
    );
    let bucket = bucket_of(&sb, "broken");
    let mut zip = compressed("ZIP", &lines(20));
    zip.truncate(zip.len() - 30);
    put_object(&sb, &bucket, "raw/cut-short", zip);
    let (code, report) = check_json(&sb, &["check", "--json", p(&spec.path)]);
    assert_eq!(code, 1, "{report}");
    let hop = &report["hops"][0];
    assert_eq!(hop["ok"], false, "{report}");
    assert_eq!(
        hop["evidence"]["unreadable_objects"][0]["key"],
        "raw/cut-short"
    );
    let hint = hop["hint"].as_str().unwrap_or_default();
    assert!(
        hint.contains("raw/cut-short") && hint.contains("ZIP"),
        "{hint}"
    );
    destroyed(&sb, &spec, "broken");
}

/// The stream hop reads each shard once per check, going on from where the last look stopped:
/// one GetShardIterator per shard whatever the number of looks, one GetRecords per shard per
/// look (its pace, a second apart on a shard, is the pacer's unit test), no record counted
/// twice. A partly refused PutRecords sends only the refused records again.
#[test]
fn check_reads_each_shard_on_across_looks_and_retries_only_refused_records() {
    let (sb, spec) = applied(
        "version: 1\nstack: paced\nregion: eu-west-1\nbuckets:\n  logs: { force_destroy: true }\n\
         streams:\n  events: { mode: provisioned, shards: 2, encryption: none }\n\
         deliveries:\n  out: { from: events, to: logs, prefix: \"out/\" }\n",
    );
    sb.proxy.reset_calls();
    sb.proxy.refuse_every_second_record("kinesis:PutRecords", 1);
    // moto's Firehose never reads its stream: the delivery hop stays broken, check looks again
    // until its timeout.
    let (code, report) = check_put(&sb, &spec, "3s");
    assert_eq!(code, 1, "{report}");
    let stream = report["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["address"] == "stream.events")
        .unwrap_or_else(|| panic!("{report}"));
    // 20 records, each once: the 10 refused were sent again, alone.
    assert_eq!(stream["evidence"]["test_records"], 20, "{stream}");
    assert_eq!(stream["evidence"]["records"], 20, "{stream}");
    assert_eq!(sb.proxy.emulated("partial"), 1);
    assert_eq!(sb.proxy.calls_of("kinesis:PutRecords").len(), 2);
    let looks = sb.proxy.calls_of("kinesis:ListShards").len();
    assert!(looks >= 1);
    assert_eq!(sb.proxy.calls_of("kinesis:GetShardIterator").len(), 2);
    assert_eq!(sb.proxy.calls_of("kinesis:GetRecords").len(), 2 * looks);
    destroyed(&sb, &spec, "paced");
}

/// A partly refused PutRecordBatch into a direct delivery: only the refused records go again.
#[test]
fn check_put_into_a_direct_delivery_retries_only_the_refused_records() {
    let (sb, spec) = applied(
        "version: 1\nstack: halfput\nregion: eu-west-1\nbuckets:\n  logs: { force_destroy: true }\n\
         deliveries:\n  raw: { from: direct, to: logs, prefix: \"raw/\" }\n",
    );
    sb.proxy
        .refuse_every_second_record("firehose:PutRecordBatch", 1);
    let (code, report) = check_put(&sb, &spec, "60s");
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["hops"][0]["evidence"]["test_records"], 20,
        "{report}"
    );
    assert_eq!(sb.proxy.emulated("partial"), 1);
    assert_eq!(sb.proxy.calls_of("firehose:PutRecordBatch").len(), 2);
    destroyed(&sb, &spec, "halfput");
}

/// Records put into the stream by the test.
fn put_stream_records(sb: &Sandbox, stream: &str, from: usize, n: usize) {
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(sb, "eu-west-1"));
        for i in from..from + n {
            k.put_record()
                .stream_name(stream)
                .partition_key(format!("p{i}"))
                .data(aws_smithy_types::Blob::new(lines(1)))
                .send()
                .await
                .expect("put record");
        }
    });
}

/// After a reshard, the closed parent shard still holds the records put before it: they are
/// read (to the parent's end) as well as the children's.
#[test]
fn check_reads_a_closed_parent_shard_after_a_reshard() {
    let one = "version: 1\nstack: split\nregion: eu-west-1\nstreams:\n  events: { mode: provisioned, shards: 1, encryption: none }\n";
    let (sb, spec) = applied(one);
    put_stream_records(&sb, "split-events", 0, 10);
    rewrite(&spec, &one.replace("shards: 1", "shards: 2"));
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    put_stream_records(&sb, "split-events", 10, 10);
    sb.proxy.reset_calls();
    let (code, report) = check_json(&sb, &["check", "--json", p(&spec.path)]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["hops"][0]["evidence"]["records"], 20, "{report}");
    // Every shard listed was read, the closed parent included.
    let shards = rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(&sb, "eu-west-1"));
        let out = k.list_shards().stream_name("split-events").send().await;
        out.expect("list shards").shards.unwrap_or_default()
    });
    let closed = shards.iter().filter(|s| {
        s.sequence_number_range
            .as_ref()
            .is_some_and(|r| r.ending_sequence_number.is_some())
    });
    assert!(closed.count() >= 1, "{shards:?}");
    assert_eq!(
        sb.proxy.calls_of("kinesis:GetShardIterator").len(),
        shards.len()
    );
    destroyed(&sb, &spec, "split");
}
