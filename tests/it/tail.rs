//! `tail` against moto, with the test as the producer: a stream's records across every shard
//! and a reshard (each once, decoded, no shard read twice within a second), a closed pipe, and
//! the records of an object written under a delivery's prefix.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::support::cli::*;
use crate::support::Sandbox;

const REGION: &str = "eu-west-1";

/// Bounds a hang only: every test here ends long before.
const HANG: Duration = Duration::from_secs(90);

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Record `i` as a producer would send it: JSON (spaced, to be compacted), gzip JSON, or text.
fn record(i: usize) -> Vec<u8> {
    match i % 3 {
        0 => format!("{{ \"i\": {i}, \"city\": \"Seoul\" }}\n").into_bytes(),
        1 => gzip(format!("{{\"i\": {i}, \"packed\": true}}").as_bytes()),
        _ => format!("plain line i={i}\n").into_bytes(),
    }
}

/// What `tail` shows for record `i`.
fn shown(i: usize) -> String {
    match i % 3 {
        0 => format!("{{\"i\":{i},\"city\":\"Seoul\"}}"),
        1 => format!("{{\"i\":{i},\"packed\":true}}"),
        _ => format!("plain line i={i}"),
    }
}

fn put_records(sb: &Sandbox, stream: &str, range: std::ops::Range<usize>) {
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(sb, REGION));
        for i in range {
            k.put_record()
                .stream_name(stream)
                .partition_key(format!("key-{i}"))
                .data(aws_smithy_types::Blob::new(record(i)))
                .send()
                .await
                .expect("put record");
        }
    });
}

fn applied(spec: &str) -> (Sandbox, SpecFile) {
    let sb = Sandbox::passthrough();
    let spec = spec_file(spec);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    (sb, spec)
}

/// The child's stdout, line by line, as it comes.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the child to exit; its code and stderr.
fn exited(mut child: Child) -> (Option<i32>, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
            }
            return (status.code(), err);
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("tail still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 60 records over a 4-shard stream, a reshard to 8 after the tail has printed some: each
/// record is printed once (decoded: JSON compacted, gzip inflated), and no shard gets two
/// GetRecords within a second. (Reading children after their parents end is a unit test of
/// `tail::stream`: moto never ends a shard.)
#[test]
fn tail_prints_every_record_once_across_a_reshard_decoded_and_paced() {
    let spec = "version: 1\nstack: tailer\nregion: eu-west-1\nstreams:\n  events: { mode: provisioned, shards: 4, encryption: none }\n";
    let (sb, spec) = applied(spec);
    sb.proxy.reset_calls();
    let mut child = spawn_ss(
        &sb,
        &[
            "tail",
            p(&spec.path),
            "stream.events",
            "--from-start",
            "--json",
            "--max",
            "60",
            "--timeout",
            "80s",
        ],
    );
    let rx = lines_of(&mut child);
    put_records(&sb, "tailer-events", 0..30);
    // Some records printed: the tail is reading the four parents.
    let mut got: Vec<String> = Vec::new();
    while got.len() < 10 {
        got.push(rx.recv_timeout(HANG).expect("the first records"));
    }
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(&sb, REGION));
        k.update_shard_count()
            .stream_name("tailer-events")
            .target_shard_count(8)
            .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
            .send()
            .await
            .expect("reshard");
    });
    put_records(&sb, "tailer-events", 30..60);
    let (code, stderr) = exited(child);
    got.extend(rx.try_iter());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");

    let mut seen = vec![0usize; 60];
    let mut shards = std::collections::BTreeSet::new();
    for line in &got {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let shard = v["shard"].as_str().expect("shard");
        assert!(!v["sequence"].as_str().expect("sequence").is_empty());
        assert!(v["arrival"].as_str().is_some_and(|a| a.ends_with('Z')));
        let key = v["partition_key"].as_str().expect("partition key");
        let i: usize = key.trim_start_matches("key-").parse().expect("key-N");
        assert_eq!(v["data"], shown(i), "{line}");
        assert_eq!(v["gzip"].as_bool().unwrap_or(false), i % 3 == 1, "{line}");
        seen[i] += 1;
        shards.insert(shard.to_string());
    }
    let wrong: Vec<(usize, usize)> = seen
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(wrong.is_empty(), "(record, times printed): {wrong:?}");
    // No shard ended (moto never ends one: after the split it keeps putting records into the
    // closed parents, which the tail kept reading): the shards were listed once, at the start.
    assert_eq!(sb.proxy.calls_of("kinesis:ListShards").len(), 1);
    assert!(shards.len() >= 4, "{shards:?}");

    let calls = sb.proxy.timed_calls_of("kinesis:GetRecords");
    assert!(calls.len() >= 8, "{}", calls.len());
    let mut last: std::collections::HashMap<String, Instant> = Default::default();
    for c in &calls {
        let shard = c.shard.clone().expect("a GetRecords names its shard");
        if let Some(before) = last.insert(shard.clone(), c.at) {
            let gap = c.at - before;
            assert!(
                gap >= Duration::from_secs(1),
                "{shard}: two GetRecords {gap:?} apart"
            );
        }
    }
}

/// A tail into `| head -1` ends quietly (exit 0, nothing on stderr) as soon as head is gone, and
/// `tail delivery.KEY` prints the records of an object written under the prefix, decompressed,
/// and the error prefix's object marked as an error.
#[test]
fn tail_ends_quietly_on_a_closed_pipe_and_shows_a_deliverys_objects() {
    let spec = "version: 1\nstack: landing\nregion: eu-west-1\nbuckets:\n  logs: { force_destroy: true }\nstreams:\n  events: { mode: provisioned, shards: 1, encryption: none }\ndeliveries:\n  land: { from: direct, to: logs, prefix: \"land/\", error_prefix: \"failed/\", compression: GZIP }\n";
    let (sb, spec) = applied(spec);
    put_records(&sb, "landing-events", 0..5);

    // `| head -1`.
    let mut tail = spawn_ss(
        &sb,
        &[
            "tail",
            p(&spec.path),
            "stream.events",
            "--from-start",
            "--timeout",
            "80s",
        ],
    );
    let head = std::process::Command::new("head")
        .arg("-1")
        .stdin(Stdio::from(tail.stdout.take().expect("stdout")))
        .stdout(Stdio::piped())
        .output()
        .expect("head");
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).split(' ').nth(3),
        Some(format!("{}\n", shown(0)).as_str())
    );
    let (code, stderr) = exited(tail);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));

    // A delivery: what lands under the prefix, and under the error prefix.
    let bucket = rt().block_on(async {
        let out = sb.s3().list_buckets().send().await.expect("list buckets");
        out.buckets()
            .iter()
            .filter_map(|b| b.name())
            .find(|n| n.starts_with("landing"))
            .expect("the stack's bucket")
            .to_string()
    });
    let mut child = spawn_ss(
        &sb,
        &[
            "tail",
            p(&spec.path),
            "delivery.land",
            "--max",
            "4",
            "--timeout",
            "80s",
            "--json",
        ],
    );
    let rx = lines_of(&mut child);
    let put = |key: &str, body: Vec<u8>| {
        rt().block_on(async {
            sb.s3()
                .put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .expect("put object");
        })
    };
    put(
        "land/2026/12/03/21/landing-land-1-2026-12-03-21-00-00-x",
        gzip(b"{\"n\": 1}\n{\"n\": 2}\nthird\n"),
    );
    put(
        "failed/processing-failed/2026/12/03/21/landing-land-1-x",
        gzip(b"{\"errorCode\":\"Lambda.Failed\"}\n"),
    );
    let (code, stderr) = exited(child);
    assert_eq!(code, Some(0), "{stderr}");
    let got: Vec<serde_json::Value> = rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // (data, error, source): the two objects may be seen in either order, each in its order.
    let mut shown: Vec<(String, String, String)> = got
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("data"), s("error"), s("source"))
        })
        .collect();
    shown.sort();
    let land = format!("s3://{bucket}/land/2026/12/03/21/landing-land-1-2026-12-03-21-00-00-x");
    let failed = format!("s3://{bucket}/failed/processing-failed/2026/12/03/21/landing-land-1-x");
    let want = [
        (
            "{\"errorCode\":\"Lambda.Failed\"}",
            "error output",
            failed.as_str(),
        ),
        ("{\"n\":1}", "", land.as_str()),
        ("{\"n\":2}", "", land.as_str()),
        ("third", "", land.as_str()),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(shown, want, "{got:?}");
}

/// `tail host.KEY` shows the console output and the bootstrap progress, and ends (exit 0) when
/// the host reports its bootstrap.
#[test]
fn tail_follows_a_hosts_console_and_ends_at_its_bootstrap_report() {
    let spec = "version: 1\nstack: booting\nregion: eu-west-1\nstreams:\n  events: {}\nhosts:\n  collector:\n    instance_type: t3.micro\n    flows:\n      - files: /var/log/app/*.log\n        to: events\n";
    let (sb, spec) = applied(spec);
    let id = instance_ids(&sb, "booting", REGION, &["pending", "running"])
        .into_iter()
        .next()
        .expect("an instance");
    let mut child = spawn_ss(
        &sb,
        &[
            "tail",
            p(&spec.path),
            "host.collector",
            "--timeout",
            "80s",
            "--json",
        ],
    );
    let rx = lines_of(&mut child);
    // Not bootstrapped yet: said so.
    let first = rx.recv_timeout(HANG).expect("a first line");
    let waiting = std::iter::once(first)
        .chain(rx.iter())
        .find(|l| l.contains("no bootstrap report yet"))
        .expect("the pending bootstrap");
    assert!(waiting.contains(&format!("bootstrap:{id}")), "{waiting}");
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&sb, REGION));
        ec2.create_tags()
            .resources(&id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("streamstack:bootstrap")
                    .value("ok")
                    .build(),
            )
            .send()
            .await
            .expect("tag");
    });
    let (code, stderr) = exited(child);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    let rest: Vec<serde_json::Value> = rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = rest.last().expect("the bootstrap report");
    assert_eq!(last["source"], format!("bootstrap:{id}"), "{rest:?}");
    assert!(
        last["data"]
            .as_str()
            .is_some_and(|d| d.contains("streamstack:bootstrap=ok")),
        "{rest:?}"
    );
    assert!(last["error"].is_null(), "{rest:?}");
}
