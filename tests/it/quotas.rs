//! AWS's request quotas: the 30-lab classroom through a proxy that throttles like AWS (Kinesis
//! and Firehose control calls at 5 per second, EC2's token buckets) is applied, planned and
//! destroyed without a single throttled answer, because streamstack keeps to its request budget.
//! The times are printed (figures, not pass/fail; `scripts/bench` has the release-build ones).

use std::time::Instant;

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::proxy::{Call, ProxyConfig};
use crate::support::Sandbox;

/// Reads (describe, get, list, head) per classroom resource in a no-op plan.
const MAX_READS_PER_RESOURCE: f64 = 2.0;

/// The CLI with its default request budget (`aws`), which the test harness otherwise turns off.
/// It runs at a high priority (as the proxy with quotas does), so that a saturated machine does
/// not hold its requests back and then send them in a burst its budget never allowed.
fn budgeted(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    ss_env_urgent(sb, args, &[("STREAMSTACK_API_BUDGET", "aws")])
}

#[track_caller]
fn budgeted_ok(sb: &Sandbox, args: &[&str]) -> String {
    let o = budgeted(sb, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn summary(calls: &[Call]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for c in calls {
        *counts.entry(c.to_string()).or_default() += 1;
    }
    format!("{counts:?}")
}

#[test]
fn the_classroom_keeps_to_aws_quotas_with_no_throttled_answer() {
    let sb = Sandbox::new(ProxyConfig {
        quotas: true,
        ..Default::default()
    });
    let spec = spec_file(CLASSROOM);
    let started = Instant::now();
    let out = budgeted_ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let apply = started.elapsed();
    assert!(
        out.contains("Apply complete! Resources: 211 added"),
        "{out}"
    );
    assert_eq!(sb.proxy.throttled(), [], "throttled during apply");

    sb.proxy.reset_calls();
    let started = Instant::now();
    let o = budgeted(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    let plan = started.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(sb.proxy.throttled(), [], "throttled during plan");
    let calls = sb.proxy.calls();
    let reads = calls.iter().filter(|c| !c.is_write).count();
    assert!(
        calls.iter().all(|c| !c.is_write),
        "a plan writes nothing: {}",
        summary(&calls)
    );
    let per_resource = reads as f64 / 211.0;
    assert!(
        per_resource <= MAX_READS_PER_RESOURCE,
        "{reads} reads for 211 resources: {}",
        summary(&calls)
    );

    let started = Instant::now();
    budgeted_ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    let destroy = started.elapsed();
    assert_eq!(sb.proxy.throttled(), [], "throttled during destroy");
    assert!(remaining(&sb, &spec.path).is_empty());
    assert_nothing_remains(&sb, "eu-west-1", "classroom");
    eprintln!(
        "classroom through AWS quotas (debug build): apply {:.1} s, no-op plan {:.1} s \
         ({reads} reads, {per_resource:.2} per resource), destroy {:.1} s, 0 throttled",
        apply.as_secs_f64(),
        plan.as_secs_f64(),
        destroy.as_secs_f64()
    );
}
