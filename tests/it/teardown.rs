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

/// The tags streamstack puts on a resource of `stack` at `address`, created and expired an
/// hour ago.
fn expired_tags(stack: &str, address: &str) -> Vec<(String, String)> {
    let t = |k: &str, v: &str| (k.to_string(), v.to_string());
    vec![
        t("streamstack:stack", stack),
        t("streamstack:address", address),
        t("streamstack:created-at", "2020-01-01T00:00:00Z"),
        t("streamstack:expires-at", "2020-01-01T01:00:00Z"),
    ]
}

/// A stack whose only leftover is its host role (which the Resource Groups Tagging API does not
/// list), and one whose only leftover is a running instance: both are in `stacks`, and `gc`
/// removes both; a terminated instance is no leftover.
#[test]
fn a_role_only_leftover_and_a_running_instance_are_stacks_that_gc_removes() {
    let sb = Sandbox::passthrough();
    rt().block_on(async {
        let conf = sdk(&sb, "eu-west-1");
        let iam = aws_sdk_iam::Client::new(&conf);
        let tags = expired_tags("solo", "host_role.collector").into_iter();
        let tags = tags.map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build());
        iam.create_role()
            .role_name("solo-collector-host")
            .path("/streamstack/solo/")
            .assume_role_policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            )
            .set_tags(Some(tags.collect::<Result<_, _>>().expect("tags")))
            .send()
            .await
            .expect("CreateRole");
        iam.put_role_policy()
            .role_name("solo-collector-host")
            .policy_name("streamstack")
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesis:PutRecords","Resource":"*"}]}"#,
            )
            .send()
            .await
            .expect("PutRolePolicy");
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let mut tags = expired_tags("box", "host.collector");
        tags.push(("Name".into(), "box-collector".into()));
        let tags = tags
            .into_iter()
            .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
        ec2.run_instances()
            .image_id("ami-087fc0fcee2c7570a")
            .min_count(1)
            .max_count(1)
            .user_data("IyEvYmluL2Jhc2gK")
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .set_tags(Some(tags.collect()))
                    .build(),
            )
            .send()
            .await
            .expect("RunInstances");
    });
    let listed: Vec<(String, u64, bool)> = stacks(&sb)
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["resources"].as_u64().unwrap_or(0),
                s["expired"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("box".into(), 1, true), ("solo".into(), 1, true)],
        "{listed:?}"
    );
    let out = ok(&sb, &["--region", "eu-west-1", "gc", "--auto-approve"]);
    for stack in ["box", "solo"] {
        assert!(
            out.contains(&format!("Nothing of stack {stack} remains")),
            "{out}"
        );
        assert_nothing_remains(&sb, "eu-west-1", stack);
    }
    assert_eq!(
        instance_ids(&sb, "box", "eu-west-1", &["terminated"]).len(),
        1
    );
    // The terminated instance keeps its tags (moto lists it still): no stack is left.
    assert!(stacks(&sb).is_empty(), "{:?}", stacks(&sb));
}
