//! Saved plans fail loudly, and a refusal that needs no AWS makes no AWS call: a file given to
//! `apply` that is not a plan (nor a spec), a plan of another format version, `--var` beside a
//! saved plan, and `apply`/`destroy` without a terminal or `--auto-approve` are refused before
//! the session is opened (no STS, no lock, no read). The proxy counts every call.

use std::path::Path;

use crate::support::cli::{ok, p, spec_file, ss, text, WEATHER_LAB};
use crate::support::Sandbox;

/// Runs `args`, expects exit 1 with `says` on stderr, and not one AWS call.
fn refused_without_a_call(sb: &Sandbox, args: &[&str], says: &[&str]) {
    sb.proxy.reset_calls();
    let o = ss(sb, args);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for s in says {
        assert!(err.contains(s), "{args:?}: wanted {s:?} in:\n{err}");
    }
    assert_eq!(sb.proxy.call_names(), Vec::<String>::new(), "{args:?}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path.display().to_string()
}

#[test]
fn files_that_are_not_plans_and_plans_of_another_version_are_refused_with_no_aws_call() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("plan.json");
    ok(&sb, &["plan", "--out", p(&saved), p(&spec.path)]);
    let plan_json = ok(&sb, &["plan", "--json", p(&spec.path)]);
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).expect("read")).expect("a JSON plan file");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_vec(&v).expect("JSON")
    };
    let neither = "is neither a saved plan";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "random.bin",
            vec![0x8f, 0x00, 0xff, 0x13, 0x37, 0xc3, 0x28],
            neither,
        ),
        (
            "other.json",
            br#"{"hello": "world", "n": [1, 2]}"#.to_vec(),
            neither,
        ),
        ("array.json", b"[1, 2, 3]".to_vec(), neither),
        ("printed.json", plan_json.into_bytes(), "plan --out"),
        (
            "future.json",
            with(&|v| v["streamstack_plan"] = "2".into()),
            "format version \"2\"",
        ),
        (
            "future-plan.json",
            with(&|v| v["plan"]["format_version"] = "2".into()),
            "format version \"2\"",
        ),
        (
            "no-plan.json",
            with(&|v| {
                v.as_object_mut().expect("object").remove("plan");
            }),
            "not a valid saved plan",
        ),
    ];
    for (name, bytes, says) in &cases {
        let file = write(dir.path(), name, bytes);
        refused_without_a_call(&sb, &["apply", "--auto-approve", &file], &[says, &file]);
    }
    // The good plan with --var: the plan's own variables are what it was planned with.
    refused_without_a_call(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--var",
            "instance_type=t3.small",
            p(&saved),
        ],
        &["--var is not taken with a saved plan", "(recorded: none)"],
    );
    // And the good plan still applies.
    ok(&sb, &["apply", "--auto-approve", p(&saved)]);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}

#[test]
fn apply_and_destroy_without_a_terminal_refuse_before_any_aws_call() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("plan.json");
    ok(&sb, &["plan", "--out", p(&saved), p(&spec.path)]);
    let no_tty = "--auto-approve";
    for args in [
        vec!["apply", p(&spec.path)],
        vec!["apply", p(&saved)],
        vec!["apply", "--engine", "cloudformation", p(&spec.path)],
        vec!["destroy", p(&spec.path)],
        vec!["destroy", "--stack", "weather-lab"],
        vec!["destroy", "--engine", "cloudformation", p(&spec.path)],
        vec!["destroy", "--json", "--lock-timeout", "90s", p(&spec.path)],
    ] {
        refused_without_a_call(&sb, &args, &[no_tty]);
    }
}
