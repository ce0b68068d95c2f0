//! GitOps: one apply at a time per stack (the lock), taken over when its holder died, removed
//! by force-unlock; plan takes no lock.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::*;
use crate::support::proxy::ProxyConfig;
use crate::support::{secs, Sandbox};

fn slow() -> ProxyConfig {
    ProxyConfig {
        stream_creating: secs(2.0),
        delivery_creating: secs(1.0),
        instance_pending: secs(1.0),
        ..ProxyConfig::default()
    }
}

fn lock_value(sb: &Sandbox) -> Option<serde_json::Value> {
    rt().block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&sdk(sb, LAB_REGION));
        let out = ssm
            .get_parameter()
            .name("/streamstack/weather-lab/lock")
            .send()
            .await
            .ok()?;
        serde_json::from_str(&out.parameter?.value?).ok()
    })
}

fn spawn_apply(sb: &Sandbox, spec: &SpecFile) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .args(["--endpoint-url", &sb.endpoint(), "--no-color"])
        .args(["apply", "--auto-approve", p(&spec.path)])
        .env("AWS_ACCESS_KEY_ID", "AKIDSTREAMSTACKTEST")
        .env("AWS_SECRET_ACCESS_KEY", "streamstack-test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("STREAMSTACK_POLL_MS", "100")
        .env(
            "STREAMSTACK_STATE_DIR",
            std::env::temp_dir().join("streamstack-test-state"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start apply")
}

#[test]
fn of_two_concurrent_applies_one_proceeds_and_the_other_fails_at_once_naming_the_holder() {
    let sb = Sandbox::new(slow());
    let spec = spec_file(WEATHER_LAB);
    let first = spawn_apply(&sb, &spec);
    // Once the first holds the lock, start the second.
    let started = Instant::now();
    while lock_value(&sb).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no lock appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second_started = Instant::now();
    let second = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let second_took = second_started.elapsed();
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("is locked") && err.contains("pid"), "{err}");
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
    let first = first.wait_with_output().expect("first apply");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(lock_value(&sb).is_none(), "the lock is released");
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "one apply did everything:\n{}",
        text(&o)
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}

#[test]
fn a_lock_whose_holder_was_killed_is_taken_over_and_force_unlock_removes_one() {
    let sb = Sandbox::new(slow());
    let spec = spec_file(WEATHER_LAB);
    let mut holder = spawn_apply(&sb, &spec);
    let started = Instant::now();
    while lock_value(&sb).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no lock appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    holder.kill().expect("SIGKILL");
    let _ = holder.wait();
    assert!(lock_value(&sb).is_some(), "a killed holder leaves its lock");
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("taking over the lock"),
        "{}",
        text(&o)
    );

    // A lock held elsewhere, alive: refused; force-unlock with its id removes it.
    rt().block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&sdk(&sb, LAB_REGION));
        let value = serde_json::json!({
            "id": "abc123", "holder": "arn:aws:iam::1:user/ci", "host": "runner-7",
            "pid": 4242, "command": "apply", "started": "2026-11-29T00:00:00Z",
            "lease_until": "2999-01-01T00:00:00Z"
        });
        ssm.put_parameter()
            .name("/streamstack/weather-lab/lock")
            .value(value.to_string())
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .expect("put lock");
    });
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("runner-7") && err.contains("abc123"), "{err}");
    let o = ss(&sb, &["force-unlock", p(&spec.path), "wrong-id"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    ok(&sb, &["force-unlock", p(&spec.path), "abc123"]);
    assert!(lock_value(&sb).is_none());
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}
