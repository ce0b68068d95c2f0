//! `--fleet`: one spec across accounts and regions on moto. The proxy runs without an account
//! header (`x-moto-account-id` would override the assumed credentials): each target's calls land
//! in its own account because moto maps AssumeRole's keys to the role's account. Target accounts
//! are fresh ids on the same moto server as the proxy, so tests sharing a server never collide.

use crate::support::cli::{p, spec_file, ss, text, SpecFile};
use crate::support::inventory;
use crate::support::moto::{sdk_config, unique_account_id, MotoServer, REGION};
use crate::support::proxy::{Proxy, ProxyConfig};
use crate::support::Sandbox;

const STACK: &str = "fleetlab";

/// A direct delivery into a bucket: quick to make, and `check --put` passes on moto.
fn direct_spec() -> SpecFile {
    spec_file(&format!(
        "version: 1\nstack: {STACK}\nregion: ap-northeast-2\nvars:\n  student: nobody\n\
         buckets:\n  logs: {{ force_destroy: true }}\n\
         deliveries:\n  raw: {{ from: direct, to: logs, prefix: \"{{{{ vars.student }}}}/\" }}\n"
    ))
}

/// A sandbox whose proxy adds no account header, and `n` fresh accounts on its moto server.
fn fleet_sandbox(n: usize) -> (Sandbox, Vec<String>) {
    let anchor = unique_account_id();
    let server = MotoServer::shared().endpoint_for(&anchor).to_string();
    let mut accounts = Vec::new();
    while accounts.len() < n {
        let a = unique_account_id();
        if MotoServer::shared().endpoint_for(&a) == server {
            accounts.push(a);
        }
    }
    let proxy = Proxy::start(&server, ProxyConfig::default()).expect("start the proxy");
    let config = sdk_config(&proxy.endpoint(), REGION);
    let sb = Sandbox {
        proxy,
        account_id: anchor,
        config,
    };
    (sb, accounts)
}

/// The inventory of the stack in `account`/`region`, listed straight from moto in that account.
fn inventory_in(account: &str, region: &str, stack: &str) -> inventory::Inventory {
    inventory::of(&account_sandbox(account), region, stack)
}

fn write_fleet(spec: &SpecFile, text: &str) -> std::path::PathBuf {
    let path = spec.path.with_file_name("class.yaml");
    std::fs::write(&path, text).expect("write the fleet file");
    path
}

/// The NDJSON lines of stdout; the last one is the report.
fn ndjson(o: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn report(o: &std::process::Output) -> serde_json::Value {
    let lines = ndjson(o);
    let last = lines.last().cloned().expect("a report line");
    assert_eq!(last["type"], "report", "{}", text(o));
    for l in &lines[..lines.len() - 1] {
        assert!(l["target"].is_string(), "an event without its target: {l}");
    }
    last
}

#[test]
fn a_fleet_of_two_accounts_in_two_regions_applies_checks_and_destroys_each_in_its_own_place() {
    let (sb, accounts) = fleet_sandbox(2);
    let spec = direct_spec();
    let fleet = write_fleet(
        &spec,
        &format!(
            "version: 1\nregions: [eu-west-1, us-east-1]\ntargets:\n\
             \x20 - account: \"{}\"\n    name: alice\n    vars: {{ student: alice }}\n\
             \x20 - account: \"{}\"\n    name: bob\n    vars: {{ student: bob }}\n",
            accounts[0], accounts[1]
        ),
    );
    let (f, s) = (p(&fleet), p(&spec.path));
    let o = ss(&sb, &["apply", "--auto-approve", "--fleet", f, s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !o.stdout.contains(&0x1b),
        "escape sequences without a terminal: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("4 of 4 targets succeeded"),
        "{}",
        text(&o)
    );
    for a in &accounts {
        for r in ["eu-west-1", "us-east-1"] {
            let inv = inventory_in(a, r, STACK);
            // S3 lists an account's buckets of every region: this region's is among them.
            let bucket = format!("{STACK}-logs-{a}-{r}");
            assert!(inv.names("bucket").contains(&bucket.as_str()), "{inv}");
            assert_eq!(inv.names("delivery").len(), 1, "{inv}");
        }
    }
    // Each target assumed its own account's role, with a session name naming the run.
    let assumed = sb.proxy.calls_of("sts:AssumeRole");
    assert_eq!(assumed.len(), 4, "{:?}", sb.proxy.call_names());
    let o = ss(
        &sb,
        &[
            "check",
            "--put",
            "5",
            "--timeout",
            "60s",
            "--json",
            "--fleet",
            f,
            s,
        ],
    );
    let rep = report(&o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let targets = rep["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 4, "{rep}");
    for t in targets {
        assert_eq!(t["ok"], true, "{t}");
        let id = format!(
            "{}/{}",
            t["account"].as_str().unwrap(),
            t["region"].as_str().unwrap()
        );
        assert_eq!(t["target"], id.as_str());
        assert_eq!(t["detail"]["hops"][0]["evidence"]["test_records"], 5, "{t}");
    }
    let o = ss(&sb, &["destroy", "--auto-approve", "--fleet", f, s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for a in &accounts {
        for r in ["eu-west-1", "us-east-1"] {
            let inv = inventory_in(a, r, STACK);
            assert!(inv.is_empty(), "expected nothing to remain of {inv}");
        }
    }
}

#[test]
fn a_denied_assume_role_fails_only_its_target_and_retry_failed_redoes_just_it() {
    let (sb, accounts) = fleet_sandbox(2);
    let spec = direct_spec();
    let fleet = write_fleet(
        &spec,
        &format!(
            "version: 1\nregions: [eu-west-1]\ntargets:\n  - account: \"{}\"\n  - account: \"{}\"\n    name: locked-out\n",
            accounts[0], accounts[1]
        ),
    );
    let (f, s) = (p(&fleet), p(&spec.path));
    sb.proxy.config_fleet().deny_assume_role(&accounts[1]);
    let o = ss(&sb, &["apply", "--auto-approve", "--json", "--fleet", f, s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let rep = report(&o);
    let by_id = |rep: &serde_json::Value, id: &str| {
        rep["targets"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["target"] == id).cloned())
    };
    let good = format!("{}/eu-west-1", accounts[0]);
    let denied = format!("{}/eu-west-1", accounts[1]);
    assert_eq!(
        by_id(&rep, &good).expect("good target")["ok"],
        true,
        "{rep}"
    );
    let d = by_id(&rep, &denied).expect("denied target");
    assert_eq!(d["ok"], false, "{rep}");
    assert_eq!(d["name"], "locked-out");
    assert!(
        d["error"]
            .as_str()
            .is_some_and(|e| e.contains("AccessDenied")),
        "{d}"
    );
    assert!(!inventory_in(&accounts[0], "eu-west-1", STACK).is_empty());
    assert!(inventory_in(&accounts[1], "eu-west-1", STACK).is_empty());

    sb.proxy.config_fleet().allow_assume_role(&accounts[1]);
    let before = sb.proxy.calls_of("sts:AssumeRole").len();
    let o = ss(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--json",
            "--retry-failed",
            "--fleet",
            f,
            s,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rep = report(&o);
    assert_eq!(rep["targets"].as_array().map(Vec::len), Some(1), "{rep}");
    assert_eq!(rep["targets"][0]["target"], denied.as_str());
    assert_eq!(sb.proxy.calls_of("sts:AssumeRole").len(), before + 1);
    assert!(!inventory_in(&accounts[1], "eu-west-1", STACK).is_empty());

    let o = ss(&sb, &["destroy", "--auto-approve", "--fleet", f, s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for a in &accounts {
        inventory::assert_nothing_remains(&account_sandbox(a), "eu-west-1", STACK);
    }
}

fn account_sandbox(account: &str) -> Sandbox {
    let server = MotoServer::shared().endpoint_for(account);
    let proxy = Proxy::start(server, ProxyConfig::account(account)).expect("start a proxy");
    let config = sdk_config(&proxy.endpoint(), REGION);
    Sandbox {
        proxy,
        account_id: account.to_string(),
        config,
    }
}

#[test]
fn a_vcpu_quota_below_the_need_in_one_account_stops_the_run_before_any_write() {
    let (sb, accounts) = fleet_sandbox(2);
    let spec = spec_file(&format!(
        "version: 1\nstack: {STACK}\nregion: eu-west-1\nbuckets:\n  logs: {{ force_destroy: true }}\n\
         streams:\n  s: {{ mode: on_demand }}\n\
         deliveries:\n  d: {{ from: s, to: logs, prefix: \"x/\" }}\n\
         hosts:\n  h:\n    instance_type: t3.micro\n    image: al2023\n    flows:\n      - {{ files: /var/log/x.log, to: s }}\n"
    ));
    let fleet = write_fleet(
        &spec,
        &format!(
            "version: 1\nregions: [eu-west-1]\ntargets:\n  - account: \"{}\"\n  - account: \"{}\"\n",
            accounts[0], accounts[1]
        ),
    );
    let (f, s) = (p(&fleet), p(&spec.path));
    sb.proxy
        .config_fleet()
        .set_quota(&accounts[1], "L-1216C47A", 1.0);
    for command in ["plan", "apply"] {
        let args: Vec<&str> = if command == "apply" {
            vec!["apply", "--auto-approve", "--fleet", f, s]
        } else {
            vec!["plan", "--fleet", f, s]
        };
        let o = ss(&sb, &args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let short: Vec<&str> = out.lines().filter(|l| l.contains("SHORT")).collect();
        assert_eq!(short.len(), 1, "{out}");
        let row: Vec<&str> = short[0].split_whitespace().collect();
        assert_eq!(row[0], format!("{}/eu-west-1", accounts[1]), "{out}");
        assert!(row.contains(&"L-1216C47A"), "{out}");
        // needed 2 (one t3.micro), available 1.
        let code = row.iter().position(|c| *c == "L-1216C47A").unwrap();
        assert_eq!((row[code + 1], row[code + 2]), ("2", "1"), "{out}");
        assert!(
            out.contains(
                "--service-code ec2 --quota-code L-1216C47A --desired-value 2 --region eu-west-1"
            ),
            "{out}"
        );
    }
    let writes: Vec<String> = sb
        .proxy
        .write_call_names()
        .into_iter()
        .filter(|c| c != "sts:AssumeRole")
        .collect();
    assert!(
        writes.is_empty(),
        "writes before the pre-flight passed: {writes:?}"
    );
    let answered = sb.proxy.config_fleet().answered();
    assert!(
        answered.contains(&format!("{}:GetServiceQuota:L-1216C47A", accounts[1])),
        "{answered:?}"
    );
    assert!(
        answered.contains(&format!(
            "{}:GetAWSDefaultServiceQuota:L-1216C47A",
            accounts[0]
        )),
        "{answered:?}"
    );
}
