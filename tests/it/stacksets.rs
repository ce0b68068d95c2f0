//! `--engine stacksets` (src/cloudformation/stacksets.rs) on moto: the spec's template as a stack
//! set in an administrator account, one instance in each of 3 target accounts.
//!
//! moto's StackSets run every operation at once (SUCCEEDED when the call returns) and create a
//! self-managed instance's stack in its target account (named `StackSet:<name>`, not AWS's
//! `StackSet-<name>-<uuid>`), so the target accounts' resources are read there, through a proxy
//! that names the account (`x-moto-account-id`). moto's CloudFormation skips Firehose deliveries,
//! so the spec has none.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use streamstack::cloudformation::stacksets::{self, StackSetOptions, Target};
use streamstack::events::{Event, Events};
use streamstack::ops::Session;

use crate::support::cli::{p, rt, spec_file, ss, text};
use crate::support::moto::{unique_account_id, MotoServer, REGION};
use crate::support::proxy::ProxyConfig;
use crate::support::Sandbox;

const STACK: &str = "fleet-lab";

const SPEC: &str = r#"
version: 1
stack: fleet-lab
region: eu-west-1
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
"#;

/// The spec's session in `sb`'s account (the administrator, or a target to read it).
fn session(sb: &Sandbox, events: Events) -> Session {
    let opts = streamstack::spec::LoadOptions {
        region: Some(REGION.into()),
        account_id: Some(sb.account_id.clone()),
        vars: vec![],
        ambient_region: None,
        fleet_region: None,
    };
    let validated = match streamstack::derive::load_str("fleet-lab.yaml", SPEC, &opts) {
        Ok(v) => v,
        Err(d) => panic!("spec does not load: {d:?}"),
    };
    let mut cx = sb.cx(STACK);
    cx.events = events;
    Session {
        spec_path: "fleet-lab.yaml".into(),
        spec_sha256: streamstack::ops::sha256_hex(SPEC.as_bytes()),
        validated,
        cx,
    }
}

/// A sandbox for `account` on the administrator's moto server (where the instances' stacks are).
fn in_account(admin: &Sandbox, account: &str) -> Sandbox {
    let moto = MotoServer::shared().endpoint_for(&admin.account_id);
    let proxy = crate::support::proxy::Proxy::start(moto, ProxyConfig::account(account))
        .expect("start a proxy");
    let config = crate::support::moto::sdk_config(&proxy.endpoint(), REGION);
    Sandbox {
        proxy,
        account_id: account.to_string(),
        config,
    }
}

/// The addresses of the stack's resources found in `sb`'s account, owned (tagged) or not.
async fn found(sb: &Sandbox) -> BTreeSet<String> {
    let live = session(sb, Events::none()).live().await.expect("discover");
    live.iter()
        .map(|l| format!("{}{}", l.address(), if l.ours { "" } else { " (not ours)" }))
        .collect()
}

#[test]
fn a_stack_set_deploys_the_spec_to_three_accounts_and_destroy_leaves_nothing() {
    let admin = Sandbox::passthrough();
    let targets: Vec<Target> = (0..3)
        .map(|_| Target::new(unique_account_id(), REGION))
        .collect();
    let accounts: Vec<Sandbox> = targets
        .iter()
        .map(|t| in_account(&admin, &t.account))
        .collect();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = seen.clone();
    let s = session(
        &admin,
        Events::call(move |e| sink.lock().unwrap().push(e.clone())),
    );
    let opts = StackSetOptions::default();
    let want: BTreeSet<String> = ["bucket.archive", "stream.weather"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    rt().block_on(async {
        // A first plan creates the stack set and an instance per target.
        let plan = stacksets::plan(&s, &targets, &opts).await.expect("plan");
        assert!(!plan.exists && plan.has_changes(), "{plan:?}");
        assert_eq!(plan.add.len(), 3, "{plan:?}");

        let report = stacksets::apply(&s, &plan, &opts).await.expect("apply");
        assert!(report.ok, "{report:#?}");
        assert_eq!(report.operations.len(), 1, "{report:#?}");
        assert_eq!(report.operations[0].results.len(), 3, "{report:#?}");
        let mut current = report.current_targets();
        current.sort();
        let mut sorted = targets.clone();
        sorted.sort();
        assert_eq!(current, sorted, "{report:#?}");
        // Each instance's outcome was an event naming its account and region.
        let done: BTreeSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Done { address, .. } if address.to_string().contains(REGION) => {
                    Some(address.to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(done.len(), 3, "{done:?}");

        // Each target account holds the stack's resources, tagged as the stack's; the
        // administrator account holds none.
        for sb in &accounts {
            assert_eq!(found(sb).await, want, "account {}", sb.account_id);
        }
        assert!(found(&admin).await.is_empty(), "administrator account");

        // A second plan has nothing to do.
        let again = stacksets::plan(&s, &targets, &opts)
            .await
            .expect("plan again");
        assert!(!again.has_changes(), "{again:#?}");
        assert_eq!(again.unchanged.len(), 3);

        // The fleet changes: the first account leaves, a fourth joins. Its instance is made and
        // the leaver's deleted (its resources with it); the others are not touched.
        let joiner = Target::new(unique_account_id(), REGION);
        let joined = in_account(&admin, &joiner.account);
        let mut moved: Vec<Target> = targets[1..].to_vec();
        moved.push(joiner.clone());
        let plan = stacksets::plan(&s, &moved, &opts)
            .await
            .expect("plan the move");
        assert_eq!(plan.add, vec![joiner.clone()], "{plan:#?}");
        assert_eq!(plan.remove, vec![targets[0].clone()], "{plan:#?}");
        assert!(
            !plan.template_changed && plan.parameters.is_empty(),
            "{plan:#?}"
        );
        let report = stacksets::apply(&s, &plan, &opts)
            .await
            .expect("apply the move");
        assert!(report.ok, "{report:#?}");
        let actions: Vec<&str> = report
            .operations
            .iter()
            .map(|o| o.action.as_str())
            .collect();
        assert_eq!(actions, ["CREATE", "DELETE"], "{report:#?}");
        assert!(
            found(&accounts[0]).await.is_empty(),
            "the account that left"
        );
        assert_eq!(found(&joined).await, want, "the account that joined");
        assert_eq!(found(&accounts[1]).await, want, "an account that stayed");
        let again = stacksets::plan(&s, &moved, &opts)
            .await
            .expect("plan after the move");
        assert!(!again.has_changes(), "{again:#?}");

        // Destroy: no instance, no stack set, nothing in any account.
        let report = stacksets::destroy(&s, &opts).await.expect("destroy");
        assert!(report.ok && report.deleted, "{report:#?}");
        assert_eq!(report.operations[0].action, "DELETE", "{report:#?}");
        let cf = aws_sdk_cloudformation::Client::new(&admin.config);
        let gone = cf
            .describe_stack_set()
            .stack_set_name(STACK)
            .send()
            .await
            .expect_err("the stack set is gone");
        assert!(format!("{gone:?}").contains("StackSetNotFound"), "{gone:?}");
        for sb in accounts.iter().chain([&joined]) {
            assert!(found(sb).await.is_empty(), "account {}", sb.account_id);
        }
        // A second destroy finds nothing to do.
        let report = stacksets::destroy(&s, &opts).await.expect("destroy again");
        assert!(report.ok && !report.deleted && report.operations.is_empty());
    });
}

#[test]
fn a_stack_set_streamstack_did_not_make_is_never_touched() {
    let admin = Sandbox::passthrough();
    let target = Target::new(unique_account_id(), REGION);
    let cf = aws_sdk_cloudformation::Client::new(&admin.config);
    let s = session(&admin, Events::none());
    let opts = StackSetOptions::default();
    // Without a fleet, the engine is refused before any AWS call, with every command.
    let spec = spec_file(SPEC);
    for verb in ["plan", "apply", "destroy"] {
        let o = ss(&admin, &[verb, p(&spec.path), "--engine", "stacksets"]);
        assert_eq!(o.status.code(), Some(1), "{verb}: {}", text(&o));
        assert!(
            text(&o).contains("--engine stacksets deploys a fleet: give --fleet FILE"),
            "{verb}: {}",
            text(&o)
        );
    }
    assert_eq!(admin.proxy.calls().len(), 0, "no AWS call");
    rt().block_on(async {
        // Someone else's stack set of the same name: no streamstack tag, another template.
        cf.create_stack_set()
            .stack_set_name(STACK)
            .template_body(r#"{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}"#)
            .send()
            .await
            .expect("create a foreign stack set");
        let refused = stacksets::plan(&s, &[target], &opts)
            .await
            .expect_err("plan refuses it");
        assert!(
            refused.to_string().contains("streamstack did not make it"),
            "{refused}"
        );
        let refused = stacksets::destroy(&s, &opts)
            .await
            .expect_err("destroy refuses it");
        assert!(
            refused.to_string().contains("streamstack did not make it"),
            "{refused}"
        );
        let still = cf
            .describe_stack_set()
            .stack_set_name(STACK)
            .send()
            .await
            .expect("still there");
        let status = still.stack_set.and_then(|x| x.status);
        assert_eq!(
            status.map(|x| x.as_str().to_string()).as_deref(),
            Some("ACTIVE")
        );
    });
}

/// The command line: `apply|plan|destroy SPEC --fleet F --engine stacksets` on 3 accounts × 1
/// region. The proxy adds no account header, so the administrator is moto's default account
/// and the confirmation's AssumeRole calls land in each target's own account.
#[test]
fn the_cli_deploys_a_fleet_as_a_stack_set_confirms_each_target_and_destroys_it() {
    let anchor = unique_account_id();
    let server = MotoServer::shared().endpoint_for(&anchor).to_string();
    let mut accounts = Vec::new();
    while accounts.len() < 3 {
        let a = unique_account_id();
        if MotoServer::shared().endpoint_for(&a) == server {
            accounts.push(a);
        }
    }
    let proxy = crate::support::proxy::Proxy::start(&server, ProxyConfig::default())
        .expect("start the proxy");
    let config = crate::support::moto::sdk_config(&proxy.endpoint(), REGION);
    let sb = Sandbox {
        proxy,
        account_id: anchor,
        config,
    };
    // A stack (and stack set) name of this run alone: the administrator account is shared.
    let stack = format!("ss{}", accounts[0]);
    // With a delivery: its role's name carries the region (IAM is per account), and moto's
    // CloudFormation skips the delivery itself, which the confirmation creates.
    let with_delivery =
        format!("{SPEC}deliveries:\n  to-archive:\n    from: weather\n    to: archive\n");
    let spec = spec_file(&with_delivery.replace("stack: fleet-lab", &format!("stack: {stack}")));
    let fleet = spec.path.with_file_name("class.yaml");
    let targets: String = accounts
        .iter()
        .map(|a| format!("  - account: \"{a}\"\n"))
        .collect();
    std::fs::write(
        &fleet,
        format!("version: 1\nregions: [{REGION}]\ntargets:\n{targets}"),
    )
    .expect("write the fleet file");
    let (f, s) = (p(&fleet), p(&spec.path));
    let engine = ["--fleet", f, "--engine", "stacksets"];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(engine);
        all.push(s);
        ss(&sb, &all)
    };

    let o = run(&["apply", "--auto-approve", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let (report, events) = lines.split_last().expect("a report line");
    assert_eq!(report["type"], "report", "{report}");
    assert_eq!(report["engine"], "stacksets", "{report}");
    let rows = report["targets"].as_array().expect("targets");
    let mut ids: Vec<String> = rows
        .iter()
        .map(|t| {
            assert_eq!(t["ok"], true, "{t}");
            // The confirmation: streamstack's own plan in the target, and what moto's
            // CloudFormation skipped (a bucket's public access block) set in place, named.
            assert_eq!(t["phase"], "confirm", "{t}");
            let completed = t["detail"]["completed_by_streamstack"].to_string();
            assert!(
                completed.contains("bucket.archive: block_public_access")
                    && completed.contains("delivery.to-archive: created"),
                "{t}"
            );
            t["target"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    ids.sort();
    let mut want: Vec<String> = accounts.iter().map(|a| format!("{a}/{REGION}")).collect();
    want.sort();
    assert_eq!(ids, want, "{report}");
    // The plan line first, then events that each carry a target; every instance's outcome
    // (a Done of `stackset.ACCOUNT/REGION`) under that very target.
    assert_eq!(events[0]["type"], "stackset_plan", "{}", events[0]);
    for e in events {
        assert!(e["target"].is_string(), "an event without its target: {e}");
    }
    let adds = events
        .iter()
        .filter(|e| e["type"] == "instance_plan" && e["change"] == "add")
        .count();
    assert_eq!(adds, 3, "{}", text(&o));
    for id in &want {
        let address = format!("stackset.{id}");
        assert!(
            events.iter().any(|e| e["type"] == "done"
                && e["address"] == address.as_str()
                && e["target"] == id.as_str()),
            "no event of {address} under its target: {}",
            text(&o)
        );
    }
    // Each account holds the stack's resources, in its own account.
    for a in &accounts {
        let inv = crate::support::inventory::of(&target_sandbox(&server, a), REGION, &stack);
        let stream = format!("{stack}-weather");
        assert!(inv.names("stream").contains(&stream.as_str()), "{a}: {inv}");
        assert_eq!(inv.names("bucket").len(), 1, "{a}: {inv}");
        let role = format!("{stack}-to-archive-firehose-{REGION}");
        assert!(inv.to_string().contains(&role), "{a}: {inv}");
    }

    // A second plan: no changes (exit 0 with --detailed-exitcode).
    let o = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("No changes."), "{}", text(&o));

    // A student's data in a force_destroy bucket: the destroy empties it first (CloudFormation
    // deletes no bucket that holds objects).
    let bucket = format!("{stack}-archive-{}-{REGION}", accounts[0]);
    let student = target_sandbox(&server, &accounts[0]);
    rt().block_on(async {
        let s3 = aws_sdk_s3::Client::new(&student.config);
        s3.put_object()
            .bucket(&bucket)
            .key("alice/1.json")
            .body(b"{}".to_vec().into())
            .send()
            .await
            .expect("put an object");
    });
    let deletes_before = sb.proxy.calls_of("s3:POST ?delete").len();
    let o = run(&["destroy", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        sb.proxy.calls_of("s3:POST ?delete").len() > deletes_before,
        "the bucket was not emptied: {:?}",
        sb.proxy.call_names()
    );
    rt().block_on(async {
        let cf = aws_sdk_cloudformation::Client::new(&sb.config);
        let active = cf
            .list_stack_sets()
            .status(aws_sdk_cloudformation::types::StackSetStatus::Active)
            .send()
            .await
            .expect("list stack sets");
        // moto lists deleted stack sets too, whatever the filter: their status says.
        let names: Vec<&str> = active
            .summaries()
            .iter()
            .filter(|x| {
                x.status()
                    .is_some_and(|s| *s == aws_sdk_cloudformation::types::StackSetStatus::Active)
            })
            .filter_map(|x| x.stack_set_name())
            .collect();
        assert!(!names.contains(&stack.as_str()), "{names:?}");
    });
    for a in &accounts {
        crate::support::inventory::assert_nothing_remains(
            &target_sandbox(&server, a),
            REGION,
            &stack,
        );
    }
}

/// A sandbox in `account` on `server`, to read what the account holds.
fn target_sandbox(server: &str, account: &str) -> Sandbox {
    let proxy = crate::support::proxy::Proxy::start(server, ProxyConfig::account(account))
        .expect("start a proxy");
    let config = crate::support::moto::sdk_config(&proxy.endpoint(), REGION);
    Sandbox {
        proxy,
        account_id: account.to_string(),
        config,
    }
}
