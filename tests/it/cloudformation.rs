//! CloudFormation: the rendered template deployed by the AWS CLI is the same stack for
//! streamstack, and `--engine cloudformation` plans, applies and destroys through change sets.
//!
//! moto's CloudFormation skips `AWS::KinesisFirehose::DeliveryStream`, so these specs have no
//! deliveries (the template's deliveries are checked by the linters and by comparing its
//! resources with the model, in `render`). moto's CloudFormation also ignores a few properties
//! that AWS applies: a bucket's PublicAccessBlockConfiguration, an instance's MetadataOptions
//! and a stream's StreamModeDetails and StreamEncryption. The tests name exactly those gaps.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::cli::{
    hold_lock, ok, p, remaining, rt, sdk, spec_file, ss, text, venv_tool, LAB_REGION,
};
use crate::support::Sandbox;

/// A lab without a delivery: a bucket, a provisioned unencrypted stream and a host.
const CFN_LAB: &str = r#"
version: 1
stack: cfn-lab
region: ap-northeast-2
expires_after: 2h
buckets:
  archive:
    force_destroy: true
streams:
  weather:
    mode: provisioned
    shards: 1
    retention_hours: 24
    encryption: none
hosts:
  collector:
    instance_type: t3.micro
    image: al2023
    flows:
      - files: /var/log/weather/*.log
        to: weather
        format: json
"#;

/// What moto's CloudFormation leaves short of the template for [`CFN_LAB`]: (address,
/// attribute). AWS applies both.
fn moto_gaps() -> BTreeSet<(String, String)> {
    [
        ("bucket.archive", "block_public_access"),
        ("host.collector", "http_tokens_required"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// The AWS CLI, from the venv scripts/test makes (`ensure_awscli`).
fn aws_cli() -> PathBuf {
    venv_tool(
        Some("STREAMSTACK_AWS_CLI"),
        "STREAMSTACK_AWSCLI_VENV",
        ".venv-awscli",
        "aws",
    )
}

fn aws(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    Command::new(aws_cli())
        .args(["--endpoint-url", &sb.endpoint(), "--region", LAB_REGION])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDSTREAMSTACKTEST")
        .env("AWS_SECRET_ACCESS_KEY", "streamstack-test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run the AWS CLI")
}

/// `aws cloudformation deploy` of the spec's rendered template, as a user would.
fn cli_deploy(sb: &Sandbox, spec: &Path, stack: &str) {
    let template = ok(sb, &["render", p(spec), "--what", "cloudformation"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("template.yaml");
    std::fs::write(&file, template).expect("write template");
    let o = aws(
        sb,
        &[
            "cloudformation",
            "deploy",
            "--stack-name",
            stack,
            "--template-file",
            p(&file),
            "--capabilities",
            "CAPABILITY_NAMED_IAM",
        ],
    );
    assert!(
        o.status.success(),
        "aws cloudformation deploy:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// (address, attribute) of every change in a plan; panics on anything but an update.
fn updated_attributes(plan: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for c in plan["changes"].as_array().expect("changes") {
        assert_eq!(c["action"], "update", "only in-place updates: {c:#}");
        for a in c["attributes"].as_array().expect("attributes") {
            out.insert((
                c["address"].as_str().unwrap_or_default().to_string(),
                a["name"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn plan_of(sb: &Sandbox, spec: &Path, engine: &str) -> (i32, serde_json::Value) {
    let o = ss(
        sb,
        &[
            "plan",
            "--json",
            "--detailed-exitcode",
            "--engine",
            engine,
            p(spec),
        ],
    );
    let code = o.status.code().unwrap_or(-1);
    assert!(
        matches!(code, 0 | 2),
        "plan --engine {engine}:\n{}",
        text(&o)
    );
    (
        code,
        serde_json::from_slice(&o.stdout).expect("plan --json is JSON"),
    )
}

fn stack_status(sb: &Sandbox, stack: &str) -> Option<String> {
    rt().block_on(async {
        let cfn = aws_sdk_cloudformation::Client::new(&sdk(sb, LAB_REGION));
        match cfn.describe_stacks().stack_name(stack).send().await {
            Ok(o) => o
                .stacks
                .unwrap_or_default()
                .into_iter()
                .next()
                .and_then(|s| s.stack_status)
                .map(|s| s.as_str().to_string())
                .filter(|s| s != "DELETE_COMPLETE"),
            Err(_) => None,
        }
    })
}

/// Every stdout line of a `--json` run is one JSON object; the last is the report.
fn ndjson_report(stdout: &[u8]) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.last().cloned().expect("some output");
    assert_eq!(last["type"], "report", "ends with the report: {last}");
    last["report"].clone()
}

/// `VERB --auto-approve --json --engine cloudformation SPEC` (apply or destroy): exit 0, and
/// the report it ends with.
fn cfn_json(sb: &Sandbox, verb: &str, spec: &Path) -> serde_json::Value {
    let args = [
        verb,
        "--auto-approve",
        "--json",
        "--engine",
        "cloudformation",
        p(spec),
    ];
    let o = ss(sb, &args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    ndjson_report(&o.stdout)
}

#[test]
fn a_template_the_aws_cli_deployed_is_the_same_stack() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(CFN_LAB);
    cli_deploy(&sb, &spec.path, "cfn-lab");
    // Every resource is found and owned (the instance profile, which CloudFormation cannot tag,
    // through its path and role); tags (aws:cloudformation:* ignored), policies, user-data and
    // the stream match. What differs is what moto's CloudFormation skipped, and nothing else.
    let (_, plan) = plan_of(&sb, &spec.path, "streamstack");
    assert_eq!(updated_attributes(&plan), moto_gaps(), "{plan:#}");

    // Where moto applies every property, the plan has no change at all.
    let streams_only = spec_file(
        r#"
version: 1
stack: cfn-streams
region: ap-northeast-2
streams:
  clicks: { mode: provisioned, shards: 2, retention_hours: 48, encryption: none }
  views: { mode: provisioned, shards: 1, encryption: none }
"#,
    );
    cli_deploy(&sb, &streams_only.path, "cfn-streams");
    let (code, plan) = plan_of(&sb, &streams_only.path, "streamstack");
    assert_eq!(code, 0, "no changes: {plan:#}");
}

#[test]
fn the_cloudformation_engine_applies_plans_and_destroys_through_change_sets() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(CFN_LAB);

    // plan makes a change set, shows it, and leaves nothing behind.
    let (code, plan) = plan_of(&sb, &spec.path, "cloudformation");
    assert_eq!(code, 2);
    let creates: BTreeSet<&str> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "create")
        .filter_map(|c| c["address"].as_str())
        .collect();
    assert_eq!(
        creates,
        BTreeSet::from([
            "bucket.archive",
            "stream.weather",
            "host_role.collector",
            "instance_profile.collector",
            "host.collector",
        ]),
        "{plan:#}"
    );
    assert_eq!(stack_status(&sb, "cfn-lab"), None, "plan made no stack");

    // apply: NDJSON on stdout, ending with the report.
    let report = cfn_json(&sb, "apply", &spec.path);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["status"], "CREATE_COMPLETE");
    assert_eq!(
        stack_status(&sb, "cfn-lab").as_deref(),
        Some("CREATE_COMPLETE")
    );
    // What moto's CloudFormation skipped, streamstack set, and said so.
    let completed = report["completed_by_streamstack"].to_string();
    for (address, attribute) in moto_gaps() {
        assert!(
            completed.contains(&address) && completed.contains(&attribute),
            "{report:#}"
        );
    }
    // Both engines now see no change.
    assert_eq!(plan_of(&sb, &spec.path, "streamstack").0, 0);
    assert_eq!(plan_of(&sb, &spec.path, "cloudformation").0, 0);

    // A change goes through an UPDATE change set.
    let longer = spec_file(&CFN_LAB.replace("retention_hours: 24", "retention_hours: 48"));
    let (code, plan) = plan_of(&sb, &longer.path, "cloudformation");
    assert_eq!(code, 2);
    assert_eq!(
        crate::support::cli::actions(&plan),
        vec![("stream.weather".to_string(), "update".to_string())],
        "{plan:#}"
    );
    ok(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--engine",
            "cloudformation",
            p(&longer.path),
        ],
    );
    assert_eq!(
        stack_status(&sb, "cfn-lab").as_deref(),
        Some("UPDATE_COMPLETE")
    );
    assert_eq!(plan_of(&sb, &longer.path, "streamstack").0, 0);

    // destroy empties the force_destroy bucket first, deletes the stack, leaves nothing.
    rt().block_on(async {
        let s3 = sb.s3();
        let bucket = format!("cfn-lab-archive-{}-{LAB_REGION}", sb.account_id);
        s3.put_object()
            .bucket(&bucket)
            .key("weather/2026/11/29/x.gz")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"data"))
            .send()
            .await
            .expect("put an object");
    });
    let report = cfn_json(&sb, "destroy", &longer.path);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(stack_status(&sb, "cfn-lab"), None, "the stack is gone");
    assert_eq!(remaining(&sb, &longer.path), Vec::<String>::new());
    crate::support::inventory::assert_nothing_remains(&sb, LAB_REGION, "cfn-lab");
}

#[test]
fn the_cloudformation_engine_refuses_a_stack_it_did_not_make_and_a_held_lock() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(CFN_LAB);
    // Deployed by hand without the streamstack:stack stack tag: not streamstack's.
    cli_deploy(&sb, &spec.path, "cfn-lab");
    for args in [
        vec!["plan", "--engine", "cloudformation"],
        vec!["apply", "--auto-approve", "--engine", "cloudformation"],
        vec!["destroy", "--auto-approve", "--engine", "cloudformation"],
    ] {
        let mut args = args.clone();
        args.push(p(&spec.path));
        let o = ss(&sb, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("streamstack did not make it"),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert_eq!(
        stack_status(&sb, "cfn-lab").as_deref(),
        Some("CREATE_COMPLETE"),
        "left alone"
    );

    // The stack's lock holds for this engine too.
    let other = spec_file(&CFN_LAB.replace("stack: cfn-lab", "stack: cfn-locked"));
    hold_lock(&sb, "cfn-locked");
    let o = ss(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--engine",
            "cloudformation",
            p(&other.path),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is locked"),
        "{}",
        text(&o)
    );
    assert_eq!(stack_status(&sb, "cfn-locked"), None, "nothing was made");
}

/// [`CFN_LAB`]'s bucket and stream with `hosts` hosts: each adds about 8 KB of template (its
/// role, profile, group and user-data).
fn big_spec(hosts: usize) -> String {
    let mut spec = String::from(
        "version: 1\nstack: cfn-big\nregion: ap-northeast-2\nbuckets:\n  archive:\n    \
         force_destroy: true\nstreams:\n  weather:\n    mode: provisioned\n    shards: 1\n    \
         encryption: none\nhosts:\n",
    );
    for i in 0..hosts {
        spec.push_str(&format!(
            "  h{i}:\n    instance_type: t3.micro\n    image: al2023\n    flows:\n      - files: \
             /var/log/weather/*.log\n        to: weather\n        format: json\n"
        ));
    }
    spec
}

#[test]
fn a_template_over_the_inline_limit_deploys_through_s3() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(&big_spec(7));
    let template = ok(&sb, &["render", p(&spec.path), "--what", "cloudformation"]);
    assert!(
        template.len() > 51_200,
        "the template is {} bytes: not over CloudFormation's inline limit",
        template.len()
    );
    sb.proxy.record_bodies("cloudformation:CreateChangeSet");
    let report = cfn_json(&sb, "apply", &spec.path);
    assert_eq!(report["status"], "CREATE_COMPLETE", "{report:#}");
    // The change set was made from the staged object, not from an inline body.
    let bodies = sb.proxy.bodies_of("cloudformation:CreateChangeSet");
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0].contains("TemplateURL=") && !bodies[0].contains("TemplateBody="),
        "{}",
        &bodies[0][..bodies[0].len().min(600)]
    );
    let bucket = format!("streamstack-locks-{}-{LAB_REGION}", sb.account_id);
    let staged = || {
        rt().block_on(async {
            let out = sb
                .s3()
                .list_objects_v2()
                .bucket(&bucket)
                .prefix("cfn-big/cfn/")
                .send()
                .await
                .expect("list the staging bucket");
            out.contents.unwrap_or_default().len()
        })
    };
    assert_eq!(staged(), 0, "the staged template is deleted once used");
    // Both engines see the stack as the spec says (an unchanged template is no change set).
    assert_eq!(plan_of(&sb, &spec.path, "cloudformation").0, 0);
    assert_eq!(plan_of(&sb, &spec.path, "streamstack").0, 0);
    assert_eq!(staged(), 0);
    ok(
        &sb,
        &[
            "destroy",
            "--auto-approve",
            "--engine",
            "cloudformation",
            p(&spec.path),
        ],
    );
    assert_eq!(stack_status(&sb, "cfn-big"), None, "the stack is gone");
    crate::support::inventory::assert_nothing_remains(&sb, LAB_REGION, "cfn-big");
}

#[test]
fn objects_that_arrive_while_the_stack_is_deleted_do_not_leave_the_bucket_behind() {
    use crate::support::cli::Background;
    let sb = Sandbox::passthrough();
    let spec = spec_file(CFN_LAB);
    ok(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--engine",
            "cloudformation",
            p(&spec.path),
        ],
    );
    // The bucket is emptied, then an object lands (a delivery flushing) before CloudFormation
    // deletes it: the DeleteStack is held at the proxy while the object is written.
    let hold = sb.proxy.hold("cloudformation:DeleteStack");
    let mut run = Background::start(
        &sb,
        &[
            "destroy",
            "--auto-approve",
            "--json",
            "--engine",
            "cloudformation",
            p(&spec.path),
        ],
    );
    if hold
        .wait_held(crate::support::wait::PATIENCE, || run.exited())
        .is_none()
    {
        drop(hold);
        panic!(
            "destroy never reached DeleteStack:\n{}",
            text(&run.finish())
        );
    }
    rt().block_on(async {
        let bucket = format!("cfn-lab-archive-{}-{LAB_REGION}", sb.account_id);
        sb.s3()
            .put_object()
            .bucket(&bucket)
            .key("weather/late.gz")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"late"))
            .send()
            .await
            .expect("put an object");
    });
    hold.release();
    let o = run.finish();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = ndjson_report(&o.stdout);
    assert_eq!(report["ok"], true, "{report:#}");
    // moto's CloudFormation leaves a bucket that holds objects and says DELETE_COMPLETE (AWS
    // says DELETE_FAILED, and streamstack empties and deletes again): either way the bucket
    // does not outlive the destroy.
    assert_eq!(stack_status(&sb, "cfn-lab"), None, "the stack is gone");
    crate::support::inventory::assert_nothing_remains(&sb, LAB_REGION, "cfn-lab");
}
