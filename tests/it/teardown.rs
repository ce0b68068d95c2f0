//! Teardown without a spec: `stacks` lists the region's stacks by tag, `destroy --stack` removes
//! one by name, and `gc` destroys only the stacks whose `streamstack:expires-at` has passed.

use crate::support::cli::*;
use crate::support::inventory::{self, assert_nothing_remains};
use crate::support::Sandbox;

fn lab(stack: &str, expires_after: &str) -> String {
    format!(
        "version: 1\nstack: {stack}\nregion: eu-west-1\nexpires_after: {expires_after}\n\
         buckets:\n  logs: {{ force_destroy: true }}\n\
         deliveries:\n  raw: {{ from: direct, to: logs }}\n"
    )
}

fn stacks(sb: &Sandbox) -> Vec<serde_json::Value> {
    let out = ok(sb, &["--region", "eu-west-1", "stacks", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .expect("stacks --json is JSON")
        .as_array()
        .expect("array")
        .clone()
}

#[test]
fn stacks_lists_by_tag_gc_destroys_only_the_expired_and_destroy_by_name_needs_no_spec() {
    let sb = Sandbox::passthrough();
    let short = spec_file(&lab("short", "1s"));
    let long = spec_file(&lab("long", "8h"));
    ok(&sb, &["apply", "--auto-approve", p(&short.path)]);
    ok(&sb, &["apply", "--auto-approve", p(&long.path)]);
    // created-at is set at the first creation and never moved: a second apply keeps it.
    let stamps = |v: Vec<serde_json::Value>| -> Vec<(serde_json::Value, serde_json::Value)> {
        v.into_iter()
            .map(|s| (s["created_at"].clone(), s["expires_at"].clone()))
            .collect()
    };
    let before = stamps(stacks(&sb));
    ok(&sb, &["apply", "--auto-approve", p(&long.path)]);
    assert_eq!(stamps(stacks(&sb)), before);
    std::thread::sleep(std::time::Duration::from_secs(2));

    let listed = stacks(&sb);
    let names: Vec<&str> = listed.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["long", "short"], "{listed:?}");
    for s in &listed {
        assert!(s["resources"].as_u64().unwrap_or(0) >= 3, "{s}");
        let created = s["created_at"].as_str().expect("created-at");
        let expires = s["expires_at"].as_str().expect("expires-at");
        assert!(created.ends_with('Z') && expires > created, "{s}");
        assert_eq!(s["expired"], s["name"] == "short", "{s}");
    }
    let human = ok(&sb, &["--region", "eu-west-1", "stacks"]);
    assert!(human.contains("short") && human.contains("long"), "{human}");

    // gc --dry-run lists only the expired stack and changes nothing.
    sb.proxy.reset_calls();
    let dry = ok(&sb, &["--region", "eu-west-1", "gc", "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_str(dry.trim()).expect("gc --json");
    let expired: Vec<&str> = v["expired"]
        .as_array()
        .expect("expired")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(expired, ["short"]);
    assert!(
        sb.proxy.write_calls().is_empty(),
        "{:?}",
        sb.proxy.write_calls()
    );

    // gc destroys it, and only it.
    let out = ok(&sb, &["--region", "eu-west-1", "gc", "--auto-approve"]);
    assert!(out.contains("Nothing of stack short remains"), "{out}");
    let names: Vec<String> = stacks(&sb)
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["long"]);
    assert_nothing_remains(&sb, "eu-west-1", "short");
    let long_left = inventory::of(&sb, "eu-west-1", "long");
    assert_eq!(
        (
            long_left.names("bucket").len(),
            long_left.names("delivery").len()
        ),
        (1, 1),
        "gc left the other stack alone: {long_left}"
    );
    let again = ok(&sb, &["--region", "eu-west-1", "gc", "--auto-approve"]);
    assert!(
        again.contains("no stack in this region has expired"),
        "{again}"
    );

    // destroy by name: no spec needed; force_destroy is honoured from the bucket's tag.
    rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&sdk(&sb, "eu-west-1"));
        let bucket = format!("long-logs-{}-eu-west-1", sb.account_id);
        s3.put_object()
            .bucket(&bucket)
            .key("raw/one.json")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}\n"))
            .send()
            .await
            .expect("put");
    });
    let out = ok(
        &sb,
        &[
            "--region",
            "eu-west-1",
            "destroy",
            "--stack",
            "long",
            "--auto-approve",
        ],
    );
    assert!(out.contains("Nothing of stack long remains"), "{out}");
    assert!(stacks(&sb).is_empty());
    assert_nothing_remains(&sb, "eu-west-1", "long");

    // An unknown name: nothing to do, exit 0, said plainly.
    let out = ok(
        &sb,
        &[
            "--region",
            "eu-west-1",
            "destroy",
            "--stack",
            "nobody",
            "--auto-approve",
        ],
    );
    assert!(
        out.contains("No resources tagged streamstack:stack=nobody"),
        "{out}"
    );
}
