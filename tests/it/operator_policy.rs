//! `render --what operator-policy`, the hard way: a moto server of its own enforcing IAM
//! (`INITIAL_NO_AUTH_ACTION_COUNT`: its first calls, the test's set-up, go unchecked, every
//! later one is checked against the caller's policies), the weather lab planned, applied,
//! checked and destroyed as IAM users holding only the rendered policy, and an apply refused,
//! naming the action, when one action is missing from it.
//!
//! moto 5.2.5 checks actions, not conditions, and resources only where it knows the request's
//! resource: an S3 request is checked against its bucket (and object) ARN, an IAM role request
//! against the role's ARN once the role exists, every other request against the resource `*`
//! (which no ARN pattern matches). So the users hold the rendered policy with `*` added to the
//! resources of each statement that is not about S3: S3's scoping, the lock bucket's name and
//! key included, is tested as rendered; the other services' resources and conditions are checked
//! by parliament and the unit tests of `src/operator_policy.rs`.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::moto::{sdk_config, unique_account_id, MotoServer, REGION};
use crate::support::proxy::{Proxy, ProxyConfig};
use crate::support::Sandbox;

/// The set-up's calls (three users: CreateUser, CreatePolicy, AttachUserPolicy,
/// CreateAccessKey each): moto checks every call after these.
const SETUP_CALLS: usize = 12;

fn render(spec: &str, commands: &str) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .args([
            "render",
            spec,
            "--what",
            "operator-policy",
            "--for",
            commands,
        ])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .expect("render");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("the policy is JSON")
}

/// moto's names for actions whose IAM name differs (IAM's, moto's): the tagging API's prefix is
/// its endpoint's name; S3's HeadBucket and public-access-block calls have names of their own.
const MOTO_NAMES: &[(&str, &str)] = &[
    ("tag:GetResources", "tagging:GetResources"),
    ("s3:ListBucket", "s3:HeadBucket"),
    ("s3:GetBucketPublicAccessBlock", "s3:GetPublicAccessBlock"),
    ("s3:PutBucketPublicAccessBlock", "s3:PutPublicAccessBlock"),
    (
        "s3:PutBucketPublicAccessBlock",
        "s3:DeletePublicAccessBlock",
    ),
];

/// The policy as moto can check it (see the module docs): `*` added to the resources of every
/// Allow statement that is not about S3, and moto's names of actions beside IAM's.
fn as_moto_checks_it(policy: &Value) -> Value {
    let mut p = policy.clone();
    for st in p["Statement"].as_array_mut().expect("statements") {
        let actions = st["Action"].as_array_mut().expect("actions");
        let s3 = actions
            .iter()
            .all(|a| a.as_str().is_some_and(|a| a.starts_with("s3:")));
        let aliases: Vec<Value> = MOTO_NAMES
            .iter()
            .filter(|(iam, _)| actions.iter().any(|a| a == iam))
            .map(|(_, moto)| json!(moto))
            .collect();
        actions.extend(aliases);
        if st["Effect"] == "Allow" && !s3 {
            st["Resource"]
                .as_array_mut()
                .expect("resources")
                .push(json!("*"));
        }
    }
    p
}

fn without_action(policy: &Value, action: &str) -> Value {
    let mut p = policy.clone();
    for st in p["Statement"].as_array_mut().expect("statements") {
        if let Some(list) = st["Action"].as_array_mut() {
            list.retain(|a| a != action);
        }
    }
    assert_ne!(&p, policy, "{action} is in the policy");
    p
}

struct User {
    key: String,
    secret: String,
}

/// An IAM user holding `policy` (a managed policy) and an access key: four calls.
async fn user(iam: &aws_sdk_iam::Client, name: &str, policy: &Value) -> User {
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .expect("user");
    let arn = iam
        .create_policy()
        .policy_name(name)
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("policy")
        .policy
        .and_then(|p| p.arn)
        .expect("policy arn");
    iam.attach_user_policy()
        .user_name(name)
        .policy_arn(arn)
        .send()
        .await
        .expect("attach");
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .expect("key")
        .access_key
        .expect("access key");
    User {
        key: key.access_key_id,
        secret: key.secret_access_key,
    }
}

fn run_as(sb: &Sandbox, u: &User, args: &[&str]) -> std::process::Output {
    ss_env(
        sb,
        args,
        &[
            ("AWS_ACCESS_KEY_ID", &u.key),
            ("AWS_SECRET_ACCESS_KEY", &u.secret),
        ],
    )
}

/// moto's IAM checks on (`0`: from the next call) or off (`inf`).
fn enforce(endpoint: &str, count: &str) {
    let url = format!("{endpoint}/moto-api/reset-auth");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], \
             data=sys.argv[2].encode(), method='POST', \
             headers={'Content-Type': 'text/plain'}), timeout=30)",
            &url,
            count,
        ])
        .status()
        .expect("python3");
    assert!(status.success(), "POST {url}");
}

/// What the host does when it has bootstrapped (tag itself) and its agent runs (20 records).
fn play_the_host(sb: &Sandbox) {
    let id = instance_ids(sb, "weather-lab", LAB_REGION, &["pending", "running"])
        .into_iter()
        .next()
        .expect("an instance");
    rt().block_on(async {
        let config = sdk(sb, LAB_REGION);
        aws_sdk_ec2::Client::new(&config)
            .create_tags()
            .resources(id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("streamstack:bootstrap")
                    .value("ok")
                    .build(),
            )
            .send()
            .await
            .expect("tag");
        let k = aws_sdk_kinesis::Client::new(&config);
        for i in 0..20 {
            k.put_record()
                .stream_name("weather-lab-weather")
                .partition_key(format!("p{i}"))
                .data(aws_smithy_types::Blob::new(format!("{{\"i\":{i}}}\n")))
                .send()
                .await
                .expect("put record");
        }
    });
}

#[test]
fn the_weather_lab_runs_as_a_user_holding_only_the_rendered_operator_policy() {
    let spec_path = "stacks/weather-lab.yaml";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = root.join(spec_path);
    let plan_policy = render(p(&spec), "plan");
    let apply_policy = render(p(&spec), "apply");
    let setup = SETUP_CALLS.to_string();
    let moto = MotoServer::spawn_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", &setup)])
        .expect("a moto of this test's own");
    let account_id = unique_account_id();
    let setup =
        Proxy::start(moto.endpoint(), ProxyConfig::account(account_id.clone())).expect("proxy");
    let iam = aws_sdk_iam::Client::new(&sdk_config(&setup.endpoint(), REGION));
    let (planner, operator, short) = rt().block_on(async {
        (
            user(&iam, "planner", &as_moto_checks_it(&plan_policy)).await,
            user(&iam, "operator", &as_moto_checks_it(&apply_policy)).await,
            user(
                &iam,
                "short",
                &as_moto_checks_it(&without_action(&apply_policy, "kinesis:CreateStream")),
            )
            .await,
        )
    });
    let config = ProxyConfig {
        resign: [&planner, &operator, &short]
            .iter()
            .map(|u| (u.key.clone(), u.secret.clone()))
            .collect(),
        ..ProxyConfig::account(account_id.clone())
    };
    let proxy = Proxy::start(moto.endpoint(), config).expect("proxy");
    let sb = Sandbox {
        config: sdk_config(&proxy.endpoint(), REGION),
        proxy,
        account_id,
    };
    let spec = spec_file(&std::fs::read_to_string(&spec).expect("spec"));
    let file = p(&spec.path);

    // Checks are on: the test's own (unknown) key is refused from here on.
    let o = ss(&sb, &["plan", file]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let o = run_as(&sb, &planner, &["plan", "--detailed-exitcode", file]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "plan as the planner: {}",
        text(&o)
    );

    // One action missing: apply fails and says which, and that AWS refused it.
    let o = run_as(&sb, &short, &["apply", "--auto-approve", file]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains("kinesis:CreateStream") && err.contains("AccessDenied"),
        "the refusal names the action: {}",
        text(&o)
    );

    let o = run_as(&sb, &operator, &["-v", "apply", "--auto-approve", file]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "apply as the operator: {}",
        text(&o)
    );
    let o = run_as(&sb, &planner, &["plan", "--detailed-exitcode", file]);
    assert_eq!(o.status.code(), Some(0), "nothing left to do: {}", text(&o));

    enforce(moto.endpoint(), "inf");
    play_the_host(&sb);
    enforce(moto.endpoint(), "0");
    // Every hop is read; moto's Firehose never reads its stream, so the delivery is the first
    // broken hop (tests/it/check.rs), and nothing was refused on the way.
    let o = run_as(&sb, &operator, &["check", "--json", file]);
    let out = String::from_utf8_lossy(&o.stdout);
    let report: Value = serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(
        report["first_broken"],
        "delivery.weather-to-s3",
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("AccessDenied"), "{}", text(&o));

    let o = run_as(&sb, &operator, &["destroy", "--auto-approve", file]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "destroy as the operator: {}",
        text(&o)
    );
    enforce(moto.endpoint(), "inf");
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}
