//! GitOps: one apply at a time per stack (the lock), taken over when its holder died, removed
//! by force-unlock; plan takes no lock.
//!
//! The first apply is caught *inside* its run by the proxy: its CreateStream (which comes only
//! once it holds the lock) is held until the test lets it go, so the second run always meets a
//! live holder, whatever the speed of the machine.

use std::time::{Duration, Instant};

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::proxy::{Hold, ProxyConfig};
use crate::support::wait::PATIENCE;
use crate::support::Sandbox;

fn slow() -> ProxyConfig {
    ProxyConfig {
        stream_creating: 3,
        delivery_creating: 2,
        instance_pending: 2,
        ..ProxyConfig::default()
    }
}

fn lock_value(sb: &Sandbox) -> Option<serde_json::Value> {
    serde_json::from_str(&lock_object(sb, "weather-lab")?.0).ok()
}

/// Starts an apply of `spec` and returns once it is inside its run, holding the lock: its
/// CreateStream is held at the proxy until the returned [`Hold`] is released.
fn apply_held_at_its_first_write(sb: &Sandbox, spec: &SpecFile) -> (Background, Hold) {
    let hold = sb.proxy.hold("kinesis:CreateStream");
    let mut run = Background::start(sb, &["apply", "--auto-approve", p(&spec.path)]);
    let held = hold.wait_held(PATIENCE, || run.exited());
    if held.is_none() {
        drop(hold);
        let out = run.finish();
        panic!("the apply never reached its CreateStream:\n{}", text(&out));
    }
    (run, hold)
}

/// The refused lock attempts (a conditional `PutObject` of the lock answered 412) so far.
fn refused_lock_writes(sb: &Sandbox) -> usize {
    sb.proxy
        .lock_writes()
        .iter()
        .filter(|c| c.action == "PUT key" && c.status == 412)
        .count()
}

#[test]
fn of_two_concurrent_applies_one_proceeds_and_the_other_fails_at_once_naming_the_holder() {
    let sb = Sandbox::new(slow());
    let spec = spec_file(WEATHER_LAB);
    let (first, hold) = apply_held_at_its_first_write(&sb, &spec);
    assert!(lock_value(&sb).is_some(), "the first apply holds the lock");
    let refused_before = refused_lock_writes(&sb);
    let second_started = Instant::now();
    let second = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let second_took = second_started.elapsed();
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("is locked") && err.contains("pid"), "{err}");
    // At once: one attempt at the lock, refused, and no waiting for the holder, which is still
    // inside its run (held at the proxy) when the second has already failed.
    assert_eq!(
        refused_lock_writes(&sb) - refused_before,
        1,
        "failed in {second_took:?} after {:?}",
        sb.proxy.call_names()
    );
    assert!(hold.is_held(), "the first apply is still in its run");
    // And in little time (about 0.25 s on an idle machine).
    assert!(
        second_took < Duration::from_secs(10),
        "failed in {second_took:?}"
    );
    // plan takes no lock, but mentions it.
    let o = ss(&sb, &["plan", p(&spec.path)]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("under way"),
        "{}",
        text(&o)
    );
    hold.release();
    let first = first.finish();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(lock_value(&sb).is_none(), "the lock is released");
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "one apply did everything:\n{}",
        text(&o)
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

#[test]
fn a_lock_whose_holder_was_killed_is_taken_over_and_force_unlock_removes_one() {
    let sb = Sandbox::new(slow());
    let spec = spec_file(WEATHER_LAB);
    let (mut holder, hold) = apply_held_at_its_first_write(&sb, &spec);
    assert!(lock_value(&sb).is_some(), "the apply holds the lock");
    holder.kill(); // SIGKILL, inside its run
    let killed = holder.finish();
    assert_eq!(killed.status.code(), None, "killed: {}", text(&killed));
    drop(hold);
    assert!(lock_value(&sb).is_some(), "a killed holder leaves its lock");
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("taking over the lock"),
        "{}",
        text(&o)
    );

    // A lock held elsewhere, alive: refused; force-unlock with its id removes it.
    hold_lock(&sb, "weather-lab");
    // A change to apply (a no-op apply needs no lock).
    rewrite(
        &spec,
        &WEATHER_LAB.replace("retention_hours: 24", "retention_hours: 48"),
    );
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("runner-7") && err.contains("abc123"), "{err}");
    let o = ss(&sb, &["force-unlock", p(&spec.path), "wrong-id"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    ok(&sb, &["force-unlock", p(&spec.path), "abc123"]);
    assert!(lock_value(&sb).is_none());
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

#[test]
fn markdown_and_human_plans_show_iam_changes_in_full_and_call_out_replacements() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let md = ok(&sb, &["plan", "--format", "markdown", p(&spec.path)]);
    assert!(md.contains("No changes"), "{md}");

    // A new stream the host also writes to: the host role's policy gains the stream's ARN, and
    // the agent's config (user-data) changes, which replaces the instance.
    let changed = WEATHER_LAB
        .replace("streams:\n", "streams:\n  alerts: { mode: on_demand }\n")
        .replace(
            "        format: json\n",
            "        format: json\n      - { files: /var/log/alerts/*.log, to: alerts }\n",
        );
    assert_ne!(changed, WEATHER_LAB, "the spec edit applied");
    rewrite(&spec, &changed);
    let arn = format!(
        "arn:aws:kinesis:{LAB_REGION}:{}:stream/weather-lab-alerts",
        sb.account_id
    );
    let md = ok(&sb, &["plan", "--format", "markdown", p(&spec.path)]);
    assert!(md.contains("**Plan: "), "{md}");
    assert!(
        md.contains("| | Address | Action | Name | Reason |"),
        "{md}"
    );
    assert!(
        md.contains("<details>") && md.contains("</details>"),
        "{md}"
    );
    assert!(md.contains("Deletes and replacements"), "{md}");
    assert!(md.contains("**host.collector**"), "{md}");
    let diff_has_arn = md.split("```diff").skip(1).any(|block| {
        block
            .split("```")
            .next()
            .is_some_and(|b| b.lines().any(|l| l.starts_with('+') && l.contains(&arn)))
    });
    assert!(
        diff_has_arn,
        "the IAM diff shows the new stream's ARN:\n{md}"
    );
    assert!(md.len() < 65_536);

    let human = ok(&sb, &["plan", p(&spec.path)]);
    assert!(
        human
            .lines()
            .any(|l| l.trim_start().starts_with('+') && l.contains(&arn)),
        "the human plan shows the new statement's resource:\n{human}"
    );
    // --json is --format json.
    let json = ok(&sb, &["plan", "--json", p(&spec.path)]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(v["changes"].as_array().is_some_and(|c| !c.is_empty()));
    rewrite(&spec, WEATHER_LAB);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}

#[test]
fn validate_annotates_the_bad_field_for_github_and_prints_json() {
    let sb = Sandbox::passthrough();
    let bad = spec_file(
        "version: 1\nstack: lab\nregion: eu-west-1\nstreams:\n  weather:\n    retention_hours: 5\n",
    );
    let o = ss(&sb, &["validate", "--format", "github", p(&bad.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no annotation:\n{}", text(&o)));
    assert!(line.contains(&format!("file={}", p(&bad.path))), "{line}");
    assert!(line.contains(",line=6,col=22"), "{line}");
    assert!(line.contains("streams.weather.retention_hours"), "{line}");
    let o = ss(&sb, &["validate", "--format", "json", p(&bad.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["files"][0]["diagnostics"][0]["line"], 6);
    assert!(sb.proxy.calls().is_empty(), "validate is offline");
}

#[test]
fn the_example_workflow_covers_pr_plan_apply_on_merge_drift_and_oidc() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/github-actions/streamstack.yml");
    let text = std::fs::read_to_string(&path).expect("workflow");
    let wf: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let on = &wf["on"];
    assert!(on.get("pull_request").is_some() && on.get("push").is_some());
    assert!(
        on["schedule"][0]["cron"].as_str().is_some(),
        "a drift schedule"
    );
    assert_eq!(
        wf["permissions"]["id-token"].as_str(),
        Some("write"),
        "OIDC"
    );
    assert!(wf["concurrency"]["group"].as_str().is_some());
    let jobs = &wf["jobs"];
    let steps =
        |job: &str| -> String { serde_yaml::to_string(&jobs[job]["steps"]).unwrap_or_default() };
    assert!(steps("plan").contains("validate --format github"));
    assert!(
        steps("plan").contains("--format markdown") && steps("plan").contains("upload-artifact")
    );
    assert!(
        steps("plan").contains("updateComment"),
        "one sticky comment"
    );
    assert!(
        steps("apply").contains("apply --auto-approve") && steps("apply").contains("plan.json")
    );
    assert!(steps("drift").contains("--detailed-exitcode") && steps("drift").contains("issues"));
    for job in ["plan", "apply", "drift"] {
        assert!(
            steps(job).contains("aws-actions/configure-aws-credentials@v"),
            "{job}: OIDC"
        );
    }
    // Every action is pinned to a version.
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with("- uses:") || l.trim_start().starts_with("uses:"))
    {
        let action = line.split("uses:").nth(1).unwrap_or_default().trim();
        assert!(action.contains('@'), "unpinned: {action}");
    }
}

#[test]
fn a_stale_saved_plan_names_the_resources_that_changed_and_how() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let kinesis = || aws_sdk_kinesis::Client::new(&sdk(&sb, LAB_REGION));
    rt().block_on(async {
        kinesis()
            .increase_stream_retention_period()
            .stream_name("weather-lab-weather")
            .retention_period_hours(72)
            .send()
            .await
            .expect("retention");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let planfile = dir.path().join("plan.json");
    ok(&sb, &["plan", "--out", p(&planfile), p(&spec.path)]);
    // The live state moves again before the saved plan is applied.
    rt().block_on(async {
        kinesis()
            .remove_tags_from_stream()
            .stream_name("weather-lab-weather")
            .tag_keys("project")
            .send()
            .await
            .expect("untag");
    });
    let o = ss(&sb, &["apply", "--auto-approve", p(&planfile)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stream.weather: planned update of retention_hours, now update of retention_hours, tags"),
        "{err}"
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}
