//! External hosts (`platform: external`): an IAM user per host whose access key is written only
//! to `apply --credentials-dir DIR`, a re-apply that makes no second key, `--rotate-keys`, the
//! destroy that leaves no user and no key, and the agent bundle.

use std::path::Path;

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::Sandbox;

const STACK: &str = "ext-lab";

fn spec_text() -> String {
    format!(
        "version: 1\n\
         stack: {STACK}\n\
         region: {LAB_REGION}\n\
         streams:\n  weather:\n    mode: on_demand\n\
         hosts:\n\
         \x20 box:\n    instance_type: t3.micro\n    flows:\n      - files: /var/log/weather/*.log\n        to: weather\n\
         \x20 edge:\n    platform: external\n    credentials: access_key\n    flows:\n      - files: /var/log/edge/*.log\n        to: weather\n"
    )
}

/// The stack's users (name, inline policy names, attached policy ARNs, access key ids).
type UserView = (String, Vec<String>, Vec<String>, Vec<String>);

fn users(sb: &Sandbox) -> Vec<UserView> {
    rt().block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk(sb, LAB_REGION));
        let listed = iam
            .list_users()
            .path_prefix(format!("/streamstack/{STACK}/"))
            .send()
            .await
            .expect("list users");
        let mut out = Vec::new();
        for u in listed.users() {
            let name = u.user_name().to_string();
            let inline = iam.list_user_policies().user_name(&name).send().await;
            let attached = iam
                .list_attached_user_policies()
                .user_name(&name)
                .send()
                .await;
            let keys = iam.list_access_keys().user_name(&name).send().await;
            out.push((
                name,
                inline.expect("inline").policy_names().to_vec(),
                attached
                    .expect("attached")
                    .attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string))
                    .collect(),
                keys.expect("keys")
                    .access_key_metadata()
                    .iter()
                    .filter_map(|k| k.access_key_id().map(str::to_string))
                    .collect(),
            ));
        }
        out
    })
}

/// The (key id, secret) of the edge host's profile in DIR/credentials.
fn key_in_file(dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(dir.join("credentials")).expect("credentials file");
    let section = text
        .split(&format!("[streamstack-{STACK}-edge]"))
        .nth(1)
        .expect("the edge profile")
        .split("\n[")
        .next()
        .unwrap_or_default()
        .to_string();
    let value = |k: &str| {
        section
            .lines()
            .find_map(|l| l.split_once('=').filter(|(a, _)| a.trim() == k))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {k} in {section}"))
    };
    (value("aws_access_key_id"), value("aws_secret_access_key"))
}

#[track_caller]
fn assert_secret_absent(secret: &str, what: &str, text: &str) {
    assert!(
        !text.contains(secret),
        "the secret access key leaked into {what}"
    );
}

fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn an_external_host_gets_a_user_whose_key_is_only_in_the_credentials_file() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(&spec_text());
    let creds = tempfile::tempdir().expect("tempdir");
    let dir = creds.path().join("keys");
    let dir_arg = p(&dir);

    // A key is due and there is nowhere to write it: refused before any write.
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        output_text(&o).contains("--credentials-dir"),
        "{}",
        text(&o)
    );
    assert!(
        sb.proxy.resource_writes().is_empty(),
        "{:?}",
        sb.proxy.resource_writes()
    );

    // Apply, with every AWS call logged (-v) and JSON events: the secret is in none of it.
    let o = ss(
        &sb,
        &[
            "-v",
            "apply",
            "--auto-approve",
            "--json",
            "--credentials-dir",
            dir_arg,
            p(&spec.path),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (first_id, secret) = key_in_file(&dir);
    assert_secret_absent(&secret, "apply's stdout/stderr", &output_text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let issued: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "credentials")
        .collect();
    assert_eq!(issued.len(), 1, "{stdout}");
    assert_eq!(issued[0]["access_key_id"], first_id.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("credentials"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // One instance (the EC2 host) and one user (the external one), holding only its derived
    // inline policy and the one key that is in the file.
    let instances = instance_ids(&sb, STACK, LAB_REGION, &["pending", "running"]);
    assert_eq!(instances.len(), 1, "{instances:?}");
    let u = users(&sb);
    assert_eq!(u.len(), 1, "{u:?}");
    let (name, inline, attached, keys) = &u[0];
    assert_eq!(name, &format!("{STACK}-edge-host"));
    assert_eq!(inline, &["streamstack"]);
    assert!(attached.is_empty(), "{attached:?}");
    assert_eq!(keys, std::slice::from_ref(&first_id));

    // check: the external host's hop is its key (age, last use); never used yet.
    let o = ss(&sb, &["check", "--json", "--timeout", "1s", p(&spec.path)]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("check --json");
    let hop = report["hops"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["address"] == "host.edge"))
        .unwrap_or_else(|| panic!("no host.edge hop in {report}"));
    assert_eq!(hop["ok"], false, "{hop}");
    assert_eq!(hop["evidence"]["access_key_id"], first_id.as_str(), "{hop}");
    assert_eq!(hop["evidence"]["age_days"], 0, "{hop}");
    assert_secret_absent(&secret, "check", &output_text(&o));

    // Not in a plan (shown, JSON, saved), nor in the CloudFormation template.
    let o = ss(&sb, &["plan", p(&spec.path)]);
    assert_secret_absent(&secret, "plan", &output_text(&o));
    let o = ss(&sb, &["plan", "--json", p(&spec.path)]);
    assert_secret_absent(&secret, "plan --json", &output_text(&o));
    let planfile = creds.path().join("plan.json");
    let o = ss(&sb, &["plan", "--out", p(&planfile), p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let saved = std::fs::read_to_string(&planfile).expect("plan file");
    assert_secret_absent(&secret, "the saved plan", &saved);
    let template = ok(&sb, &["render", p(&spec.path), "--what", "cloudformation"]);
    assert_secret_absent(&secret, "the CloudFormation template", &template);
    assert!(template.contains("AWS::IAM::User"), "{template}");
    assert!(!template.contains("AWS::IAM::AccessKey"), "{template}");

    // A second apply makes no second key.
    let o = ss(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--credentials-dir",
            dir_arg,
            p(&spec.path),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(sb.proxy.calls_of("iam:CreateAccessKey").len(), 1);
    assert_eq!(users(&sb)[0].3, std::slice::from_ref(&first_id));

    // --rotate-keys: exactly one key, a new one, in the file; the old one is gone.
    let o = ss(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--rotate-keys",
            "--credentials-dir",
            dir_arg,
            p(&spec.path),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (new_id, new_secret) = key_in_file(&dir);
    assert_ne!(new_id, first_id);
    assert_ne!(new_secret, secret);
    assert_secret_absent(&new_secret, "rotate's output", &output_text(&o));
    assert_eq!(users(&sb)[0].3, [new_id]);
    assert_eq!(sb.proxy.calls_of("iam:CreateAccessKey").len(), 2);

    // Destroy: no user, no key, nothing else.
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert!(users(&sb).is_empty(), "{:?}", users(&sb));
    assert_nothing_remains(&sb, LAB_REGION, STACK);
}

#[test]
fn the_agent_bundle_names_the_profile_and_holds_no_key() {
    let spec = spec_file(&spec_text());
    let out = tempfile::tempdir().expect("tempdir");
    let bundle = out.path().join("bundle");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .args([
            "render",
            p(&spec.path),
            "--what",
            "agent-bundle",
            "--host",
            "edge",
        ])
        .args(["--out", p(&bundle)])
        .output()
        .expect("run streamstack");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let agent = std::fs::read_to_string(bundle.join("agent.json")).expect("agent.json");
    let v: serde_json::Value = serde_json::from_str(&agent).expect("agent.json is JSON");
    assert_eq!(
        v["streamstack.credentialsProfile"],
        format!("streamstack-{STACK}-edge")
    );
    assert_eq!(
        v["kinesis.endpoint"],
        format!("kinesis.{LAB_REGION}.amazonaws.com")
    );
    assert_eq!(v["flows"][0]["kinesisStream"], format!("{STACK}-weather"));
    assert!(
        !agent.contains("awsAccessKeyId") && !agent.contains("awsSecretAccessKey"),
        "{agent}"
    );
    let install = std::fs::read_to_string(bundle.join("install.sh")).expect("install.sh");
    assert!(
        install.contains(&format!("profile='streamstack-{STACK}-edge'")),
        "{install}"
    );
    assert!(
        install.contains("agent_can_read '/var/log/edge'"),
        "{install}"
    );
    assert!(bundle.join("README.md").exists());
    // shellcheck is in CI; where it is missing, the script's lint is not asserted here.
    match std::process::Command::new("shellcheck")
        .arg(bundle.join("install.sh"))
        .output()
    {
        Ok(sc) => assert!(sc.status.success(), "shellcheck:\n{}", text(&sc)),
        Err(e) => eprintln!("shellcheck not run ({e}): install.sh not linted"),
    }
    // An EC2 host has no bundle.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .args([
            "render",
            p(&spec.path),
            "--what",
            "agent-bundle",
            "--host",
            "box",
        ])
        .args(["--out", p(&bundle)])
        .output()
        .expect("run streamstack");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
