//! Correct on real AWS and safe under faults: the CLI against moto behind the realism proxy,
//! which makes moto refuse and fail the way AWS does (throttling and 5xx in each service's wire
//! format, answers lost after AWS acted, ClientToken idempotency, the reshard rule, a group in
//! use, security groups not visible at once).

use std::time::Instant;

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::proxy::ProxyConfig;
use crate::support::wait::PATIENCE;
use crate::support::Sandbox;

/// The weather lab with SSH, so a security group is part of it.
fn lab_with_ssh() -> String {
    WEATHER_LAB.replace(
        "    image: al2023\n",
        "    image: al2023\n    ssh: { from: 203.0.113.4/32 }\n",
    )
}

/// Instances of the stack that are not terminated.
fn live_instances(sb: &Sandbox, stack: &str, region: &str) -> Vec<String> {
    let states = ["pending", "running", "shutting-down", "stopping", "stopped"];
    instance_ids(sb, stack, region, &states)
}

#[track_caller]
fn assert_converged(sb: &Sandbox, spec: &SpecFile) {
    let o = ss(sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "not converged:\n{}", text(&o));
}

#[test]
fn apply_and_destroy_converge_through_throttling_5xx_and_lost_answers() {
    let sb = Sandbox::new(ProxyConfig {
        group_invisible: 2,
        ..ProxyConfig::default()
    });
    let spec = spec_file(&lab_with_ssh());
    let px = &sb.proxy;
    // The account's lock bucket exists already: the `s3:PUT` faults are for the stack's bucket.
    make_lock_bucket(&sb);
    // Throttling and 5xx, each in its service's own wire format.
    px.fail_times("kinesis:CreateStream", "ThrottlingException", 2);
    px.fail_times_with_status(
        "firehose:CreateDeliveryStream",
        "ServiceUnavailableException",
        503,
        1,
    );
    px.fail_times("iam:CreateRole", "Throttling", 1);
    px.fail_times_with_status("s3:PUT", "SlowDown", 503, 1);
    px.fail_times("ec2:RunInstances", "RequestLimitExceeded", 1);
    px.fail_times_with_status("logs:CreateLogGroup", "ServiceUnavailableException", 503, 1);
    px.fail_times("kinesis:DescribeStreamSummary", "LimitExceededException", 2);
    // Answers lost after AWS acted: the SDK retries, and the retry meets "already exists".
    for call in [
        "kinesis:CreateStream",
        "s3:PUT",
        "iam:CreateRole",
        "iam:CreateInstanceProfile",
        "firehose:CreateDeliveryStream",
        "logs:CreateLogGroup",
        "ec2:CreateSecurityGroup",
        "ec2:RunInstances",
    ] {
        px.drop_responses(call, 1);
    }
    let started = Instant::now();
    let o = ss(&sb, &["apply", "-v", "--auto-approve", p(&spec.path)]);
    eprintln!("apply through faults: {:.1?}", started.elapsed());
    if std::env::var_os("SHOW_FAULT_LOG").is_some() {
        eprintln!("{}", text(&o));
    }
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_converged(&sb, &spec);
    assert_eq!(
        live_instances(&sb, "weather-lab", LAB_REGION).len(),
        1,
        "exactly one instance"
    );
    let calls = px.call_names();
    let runs = calls.iter().filter(|c| *c == "ec2:RunInstances").count();
    assert!(
        runs >= 2,
        "the lost RunInstances answer was retried: {runs}"
    );

    px.fail_times("kinesis:DeleteStream", "LimitExceededException", 1);
    px.fail_times_with_status(
        "firehose:DeleteDeliveryStream",
        "ServiceUnavailableException",
        503,
        1,
    );
    px.drop_responses("ec2:TerminateInstances", 1);
    px.drop_responses("iam:DeleteRole", 1);
    px.drop_responses("kinesis:DeleteStream", 1);
    let o = ss(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Nothing of stack weather-lab remains"),
        "{}",
        text(&o)
    );
    assert!(remaining(&sb, &spec.path).is_empty());
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

/// A tiny deterministic generator, so a failing run can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn kill_9_windows() -> ProxyConfig {
    ProxyConfig {
        stream_creating: 3,
        delivery_creating: 3,
        role_propagation: 2,
        profile_propagation: 2,
        instance_pending: 3,
        group_invisible: 2,
        ..ProxyConfig::default()
    }
}

#[test]
fn reruns_after_kill_9_at_random_calls_converge_with_one_instance() {
    // Each apply is killed while the proxy holds one of its calls, drawn at random (not at a
    // random instant: where a kill lands then does not depend on the machine's pace). The held
    // call goes on to moto after the kill, as a request already sent does.
    let spec = spec_file(&lab_with_ssh());
    // How many calls an uninterrupted apply makes (in a sandbox of its own): kills are drawn
    // among them.
    let calls = {
        let reference = Sandbox::new(kill_9_windows());
        ok(&reference, &["apply", "--auto-approve", p(&spec.path)]);
        reference.proxy.calls().len()
    };
    let sb = Sandbox::new(kill_9_windows());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    eprintln!("kill -9 seed: {seed}; an uninterrupted apply makes {calls} calls");
    let mut rng = Lcg(seed);
    for round in 0..5 {
        let n = 1 + (calls as f64 * rng.next_f64()) as usize;
        let hold = sb.proxy.hold_nth(n);
        let mut child = spawn_ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
        let held = hold.wait_held(PATIENCE, || child.try_wait().ok().flatten().is_some());
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        drop(hold);
        eprintln!("round {round}: killed at call {n}: {held:?}");
    }
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "seed {seed}:\n{}", text(&o));
    assert_converged(&sb, &spec);
    assert_eq!(
        live_instances(&sb, "weather-lab", LAB_REGION).len(),
        1,
        "seed {seed}: exactly one instance"
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert!(remaining(&sb, &spec.path).is_empty());
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

fn shards(sb: &Sandbox, name: &str) -> (String, i32) {
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(sb, "eu-west-1"));
        let s = k
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("describe")
            .stream_description_summary
            .expect("summary");
        let mode = s
            .stream_mode_details
            .map(|m| m.stream_mode.as_str().to_string())
            .unwrap_or_default();
        (mode, s.open_shard_count)
    })
}

#[test]
fn resharding_goes_in_legal_steps_and_mode_switches_end_at_the_specs_count() {
    // The proxy refuses UpdateShardCount beyond 2× or below ½× the open count, as AWS does.
    let sb = Sandbox::new(ProxyConfig {
        stream_updating: 2,
        ..ProxyConfig::default()
    });
    let one = "version: 1\nstack: rs\nregion: eu-west-1\nstreams:\n  events: { mode: provisioned, shards: 1 }\n";
    let spec = spec_file(one);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(shards(&sb, "rs-events"), ("PROVISIONED".into(), 1));

    sb.proxy.reset_calls();
    rewrite(&spec, &one.replace("shards: 1", "shards: 8"));
    let out = ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let steps = sb
        .proxy
        .calls()
        .into_iter()
        .filter(|c| c.to_string() == "kinesis:UpdateShardCount")
        .collect::<Vec<_>>();
    assert_eq!(steps.len(), 3, "1 → 2 → 4 → 8: {steps:?}\n{out}");
    assert!(steps.iter().all(|c| c.status == 200), "{steps:?}");
    assert!(out.contains("resharding step 3 of 3"), "{out}");
    assert_eq!(shards(&sb, "rs-events"), ("PROVISIONED".into(), 8));
    assert_converged(&sb, &spec);

    // More steps than Kinesis allows in a day: refused before the first call.
    sb.proxy.reset_calls();
    rewrite(&spec, &one.replace("shards: 1", "shards: 9000"));
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("allows 10 per stream in 24 hours"),
        "{}",
        text(&o)
    );
    assert!(!sb
        .proxy
        .call_names()
        .contains(&"kinesis:UpdateShardCount".to_string()));

    // On-demand → provisioned keeps the open shard count; the apply then scales to the spec's.
    let od = spec_file(
        "version: 1\nstack: od\nregion: eu-west-1\nstreams:\n  events: { mode: on_demand }\n",
    );
    ok(&sb, &["apply", "--auto-approve", p(&od.path)]);
    let (mode, before) = shards(&sb, "od-events");
    assert_eq!(mode, "ON_DEMAND");
    rewrite(
        &od,
        "version: 1\nstack: od\nregion: eu-west-1\nstreams:\n  events: { mode: provisioned, shards: 1 }\n",
    );
    ok(&sb, &["apply", "--auto-approve", p(&od.path)]);
    assert_eq!(
        shards(&sb, "od-events"),
        ("PROVISIONED".into(), 1),
        "from {before} open shards"
    );
    assert_converged(&sb, &od);
    ok(&sb, &["destroy", "--auto-approve", p(&od.path)]);
    rewrite(&spec, one);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, "eu-west-1", "od");
    assert_nothing_remains(&sb, "eu-west-1", "rs");
}

#[test]
fn removing_ssh_moves_the_instance_off_its_group_before_deleting_it() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(&lab_with_ssh());
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    rewrite(&spec, WEATHER_LAB);
    let out = ok(&sb, &["apply", "--auto-approve", "--json", p(&spec.path)]);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let at = |kind: &str, address: &str| {
        events
            .iter()
            .position(|e| e["type"] == kind && e["address"] == address)
            .unwrap_or_else(|| panic!("no {kind} event for {address}:\n{out}"))
    };
    // The proxy refuses to delete a group an instance still uses (DependencyViolation), so
    // the order is also what makes the delete succeed.
    assert!(at("done", "host.collector") < at("start", "security_group.collector"));
    assert_converged(&sb, &spec);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

#[test]
fn explicitly_named_resources_that_leave_the_spec_are_found_and_destroyed() {
    let sb = Sandbox::passthrough();
    let named = format!(
        r#"version: 1
stack: named
region: eu-west-1
buckets:
  keep: {{ force_destroy: true }}
  old: {{ name: "custom-bucket-{acct}", force_destroy: true }}
streams:
  old: {{ name: custom-events }}
deliveries:
  old: {{ name: custom-delivery, from: old, to: old }}
"#,
        acct = sb.account_id
    );
    let spec = spec_file(&named);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    // They leave the spec: found by their tags (no name rule matches them), shown as deletes.
    rewrite(
        &spec,
        "version: 1\nstack: named\nregion: eu-west-1\nbuckets:\n  keep: { force_destroy: true }\n",
    );
    let plan = plan_json(&sb, &spec.path);
    let got = actions(&plan);
    for a in [
        "bucket.old",
        "stream.old",
        "delivery.old",
        "log_group.old",
        "delivery_role.old",
    ] {
        assert!(got.contains(&(a.into(), "delete".into())), "{a}: {got:?}");
    }
    // Destroy finds them too, and says nothing remains only once the tag sweep agrees.
    let out = ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert!(out.contains("Nothing of stack named remains"), "{out}");
    rt().block_on(async {
        let conf = sdk(&sb, "eu-west-1");
        let k = aws_sdk_kinesis::Client::new(&conf);
        assert!(k
            .list_streams()
            .send()
            .await
            .expect("list")
            .stream_names
            .is_empty());
        let f = aws_sdk_firehose::Client::new(&conf);
        let d = f.list_delivery_streams().send().await.expect("list");
        assert!(d.delivery_stream_names.is_empty());
        let s3 = crate::support::moto::s3_client(&conf);
        let buckets = s3.list_buckets().send().await.expect("list");
        assert!(
            stack_buckets(&buckets).is_empty(),
            "only the lock bucket stays"
        );
    });
    assert_nothing_remains(&sb, "eu-west-1", "named");
}

#[test]
fn the_apply_report_gives_makespan_and_the_critical_path() {
    // Six describes saying CREATING each, polled every 200 ms: the stream's and the delivery's
    // waits last at least 1.2 s each (the sleeps between polls), whatever the machine's pace.
    let sb = Sandbox::new(ProxyConfig {
        stream_creating: 6,
        delivery_creating: 6,
        instance_pending: 3,
        ..ProxyConfig::default()
    });
    let spec = spec_file(WEATHER_LAB);
    let out = ok(&sb, &["apply", "--auto-approve", "--json", p(&spec.path)]);
    let report = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "report")
        .expect("a report line");
    let r = &report["report"];
    let makespan = r["makespan_s"].as_f64().expect("makespan");
    let critical = r["critical_path_s"].as_f64().expect("critical path");
    let path: Vec<&str> = r["critical_path"]
        .as_array()
        .expect("path")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    eprintln!("makespan {makespan:.2} s, critical path {critical:.2} s: {path:?}");
    // The chain that gates everything: the stream (CREATING), the delivery reading it
    // (CREATING), then the host launched after it.
    assert_eq!(
        path.last().copied(),
        Some("host.collector (create)"),
        "{path:?}"
    );
    assert!(
        path.contains(&"delivery.weather-to-s3 (create)"),
        "{path:?}"
    );
    assert!(critical >= 2.0, "{critical}");
    assert!(makespan + 0.05 >= critical, "{makespan} < {critical}");
    // Every operation starts the moment what it waits for is done: no batching barriers.
    assert!(
        makespan <= critical * 1.25 + 0.5,
        "{makespan} vs {critical}"
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}
