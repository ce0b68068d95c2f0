//! What `render` prints is what would be sent to AWS: user-data that shellcheck accepts,
//! agent.json with only keys the agent knows and no credentials, policies with no `*` action and
//! only the stack's own ARNs. Plus `schema` and `validate` as whole processes.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::cli::venv_tool;

const STACKS: [&str; 2] = ["stacks/weather-lab.yaml", "stacks/classroom.yaml"];

fn ss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("NO_COLOR", "1")
        .output()
        .expect("run streamstack")
}

fn stdout_ok(args: &[&str]) -> String {
    let o = ss(args);
    assert!(
        o.status.success(),
        "streamstack {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8")
}

fn hosts(spec: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(spec)).expect("spec");
    let v: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    v["hosts"]
        .as_mapping()
        .expect("hosts")
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect()
}

/// Keys the Kinesis Agent reads (docs/aws-facts.md#agent-configuration-keys,
/// docs/aws-facts.md#flow-keys, docs/aws-facts.md#data-processing-options); it silently ignores
/// anything else, so a typo would be a silent failure on the host.
const TOP_KEYS: &[&str] = &[
    "flows",
    "cloudwatch.emitMetrics",
    "cloudwatch.endpoint",
    "cloudwatch.namespace",
    "cloudwatch.tagInstance",
    "cloudwatch.metricsBufferTimeMillis",
    "cloudwatch.metricsQueueSize",
    "kinesis.endpoint",
    "kinesis.region",
    "firehose.endpoint",
    "sts.endpoint",
    "assumeRoleARN",
    "assumeRoleExternalId",
    "checkpointFile",
    "checkpointTimeToLiveDays",
    "log.emitMetrics",
    "log.emitInternalMetrics",
    "log.statusReportingPeriodSeconds",
    "maxSendingThreadsPerCore",
    "maxSendingThreads",
    "sendingThreadsKeepAliveMillis",
    "sendingThreadsMaxQueueSize",
    "maxConnections",
    "connectionTimeoutMillis",
    "socketTimeoutMillis",
    "connectionTTLMillis",
    "useTcpKeepAlive",
    "useHttpGzip",
    "shutdownTimeoutMillis",
    "userAgent",
    "userAgentOverride",
];
const FLOW_KEYS: &[&str] = &[
    "filePattern",
    "kinesisStream",
    "deliveryStream",
    "partitionKeyOption",
    "initialPosition",
    "maxBufferAgeMillis",
    "maxBufferSizeRecords",
    "maxBufferSizeBytes",
    "waitOnFullPublishQueueMillis",
    "waitOnEmptyPublishQueueMillis",
    "minTimeBetweenFilePollsMillis",
    "maxTimeBetweenFileTrackerRefreshMillis",
    "retryInitialBackoffMillis",
    "retryMaxBackoffMillis",
    "publishQueueCapacity",
    "skipHeaderLines",
    "multiLineStartPattern",
    "fileFooterPattern",
    "truncatedRecordTerminator",
    "aggregatedRecordSizeBytes",
    "dataProcessingOptions",
    "log.emitInternalMetrics",
];
const PROCESSING_OPTIONS: &[&str] = &[
    "ADDMETADATA",
    "ADDEC2METADATA",
    "SINGLELINE",
    "CSVTOJSON",
    "LOGTOJSON",
    "ADDBRACKETS",
    "USINGPLUGGIN",
];

#[test]
fn rendered_user_data_passes_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "shellcheck is not installed (scripts/test installs it: apt-get install shellcheck)"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for spec in STACKS.iter().copied().chain([
        "tests/specs/valid/provisioned-kms-csv-ssh.yaml",
        "tests/specs/valid/direct-delivery-explicit-names.yaml",
    ]) {
        for host in hosts(spec).into_iter().take(3) {
            let script = stdout_ok(&["render", spec, "--host", &host, "--what", "user-data"]);
            assert!(script.starts_with("#!/bin/bash\n"), "{spec}/{host}");
            assert!(
                script.len() <= 16 * 1024,
                "{spec}/{host}: {} bytes",
                script.len()
            );
            assert!(script.contains("dnf install -y aws-kinesis-agent"));
            assert!(
                !script.contains('\u{2013}'),
                "an en dash would break yum/dnf -y"
            );
            assert!(script.contains("groupadd -r aws-kinesis-agent-user"));
            assert!(script.contains("systemctl enable aws-kinesis-agent"));
            let path = dir.path().join(format!("{host}.sh"));
            std::fs::write(&path, &script).expect("write");
            let out = Command::new("shellcheck")
                .arg(&path)
                .output()
                .expect("shellcheck");
            assert!(
                out.status.success(),
                "{spec}/{host}: shellcheck:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            checked += 1;
        }
    }
    assert!(checked >= 6);
}

#[test]
fn sample_data_is_written_after_the_agent_starts() {
    let script = stdout_ok(&["render", "stacks/weather-lab.yaml", "--what", "user-data"]);
    let start = script
        .find("systemctl restart aws-kinesis-agent")
        .expect("start");
    let write = script.find(">>\"$sample_file\"").expect("sample write");
    assert!(start < write);
    assert!(script.contains("sample_file='/var/log/weather/first.log'"));
    assert!(script.contains("$(seq 0 19)"), "20 records");
    for field in ["city", "temperature_c", "humidity_pct", "observed_at"] {
        assert!(script.contains(field), "{field}");
    }
}

#[test]
fn agent_config_uses_only_known_keys_and_no_credentials() {
    for spec in STACKS.iter().copied().chain([
        "tests/specs/valid/provisioned-kms-csv-ssh.yaml",
        "tests/specs/valid/direct-delivery-explicit-names.yaml",
    ]) {
        for host in hosts(spec).into_iter().take(2) {
            let text = stdout_ok(&["render", spec, "--host", &host, "--what", "agent-config"]);
            let v: Value = serde_json::from_str(&text).expect("agent.json is JSON");
            let top = v.as_object().expect("object");
            for k in top.keys() {
                assert!(
                    TOP_KEYS.contains(&k.as_str()),
                    "{spec}/{host}: unknown agent key {k}"
                );
            }
            let flows = v["flows"].as_array().expect("flows");
            assert!(!flows.is_empty());
            for f in flows {
                for k in f.as_object().expect("flow").keys() {
                    assert!(
                        FLOW_KEYS.contains(&k.as_str()),
                        "{spec}/{host}: unknown flow key {k}"
                    );
                }
                assert!(
                    f.get("kinesisStream").is_some() != f.get("deliveryStream").is_some(),
                    "exactly one target"
                );
                for o in f["dataProcessingOptions"].as_array().into_iter().flatten() {
                    let name = o["optionName"].as_str().expect("optionName");
                    assert!(PROCESSING_OPTIONS.contains(&name), "{name}");
                }
            }
            let region = v["kinesis.endpoint"].as_str().expect("kinesis endpoint");
            assert!(region.starts_with("kinesis.") && region.ends_with(".amazonaws.com"));
            assert!(v["firehose.endpoint"]
                .as_str()
                .is_some_and(|e| !e.contains("us-east-1") || region.contains("us-east-1")));
            for secret in ["awsAccessKeyId", "awsSecretAccessKey", "AKIA", "aws_secret"] {
                assert!(!text.contains(secret), "{spec}/{host}: {secret}");
            }
        }
    }
}

#[test]
fn policies_have_no_wildcard_actions_and_only_the_stacks_arns() {
    for spec in STACKS {
        let text = stdout_ok(&["render", spec, "--what", "policies"]);
        let v: Value = serde_json::from_str(&text).expect("JSON");
        let stack = if spec.contains("classroom") {
            "classroom"
        } else {
            "weather-lab"
        };
        let roles = v.as_object().expect("object");
        assert!(roles.len() >= 2);
        for (name, role) in roles {
            assert!(name.starts_with(stack), "{name}");
            let trust = &role["trust_policy"]["Statement"][0];
            assert_eq!(trust["Action"], "sts:AssumeRole");
            for (_, policy) in role["inline_policies"].as_object().expect("policies") {
                for st in policy["Statement"].as_array().expect("statements") {
                    let actions: Vec<String> = match &st["Action"] {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect(),
                        other => panic!("Action {other}"),
                    };
                    for a in &actions {
                        assert!(!a.contains('*'), "{name}: wildcard action {a}");
                        assert!(!a.ends_with("FullAccess"));
                    }
                    let resources: Vec<String> = match &st["Resource"] {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect(),
                        other => panic!("Resource {other}"),
                    };
                    for r in &resources {
                        if r.ends_with(":instance/*") {
                            // The bootstrap report: only the bootstrap tag, only on the host's
                            // own instance (its address tag), only on the stack's instances
                            // (conditions, since an instance cannot be named before it exists;
                            // only keys documented for ec2:CreateTags).
                            assert_eq!(actions, ["ec2:CreateTags"], "{name}");
                            let c = &st["Condition"];
                            let address = c["StringEquals"]["aws:ResourceTag/streamstack:address"]
                                .as_str()
                                .unwrap_or_default();
                            assert!(address.starts_with("host."), "{name}: {c}");
                            assert!(c["StringEquals"].get("aws:ARN").is_none(), "{name}: {c}");
                            assert_eq!(
                                c["StringEquals"]["aws:ResourceTag/streamstack:stack"],
                                stack
                            );
                            assert_eq!(
                                c["ForAllValues:StringEquals"]["aws:TagKeys"],
                                serde_json::json!(["streamstack:bootstrap"])
                            );
                        } else if r == "*" {
                            // Only PutMetricData, which has no resource-level permissions, pinned
                            // to the agent's namespace by a condition.
                            assert_eq!(actions, ["cloudwatch:PutMetricData"], "{name}");
                            assert_eq!(
                                st["Condition"]["StringEquals"]["cloudwatch:namespace"],
                                "AWSKinesisAgent"
                            );
                        } else {
                            let own = r.contains(&format!(":stream/{stack}-"))
                                || r.contains(&format!(":deliverystream/{stack}-"))
                                || r.contains(&format!(":::{stack}-"))
                                || r.contains(&format!("log-group:/aws/kinesisfirehose/{stack}-"));
                            assert!(own, "{name}: {r} is not one of the stack's ARNs");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn host_role_grants_only_the_streams_its_flows_write_to() {
    let text = stdout_ok(&[
        "render",
        "stacks/classroom.yaml",
        "--host",
        "student07",
        "--what",
        "policies",
    ]);
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let roles = v.as_object().expect("object");
    assert_eq!(roles.len(), 1, "--host picks that host's role only");
    let policy = &roles["classroom-student07-host"]["inline_policies"]["streamstack"];
    let doc = policy.to_string();
    assert!(doc.contains("stream/classroom-student07\""), "{doc}");
    assert!(!doc.contains("stream/classroom-student08"), "{doc}");
}

#[test]
fn schema_command_matches_the_checked_in_copy_and_the_loader() {
    let printed = stdout_ok(&["schema"]);
    let checked_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/streamstack.schema.json"),
    )
    .expect("schema file");
    assert_eq!(
        printed, checked_in,
        "run `streamstack schema > schema/streamstack.schema.json`"
    );
    let v: Value = serde_json::from_str(&printed).expect("JSON");
    let keys = |x: &Value| -> Vec<String> {
        let mut k: Vec<String> = x["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let sorted = |k: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    use streamstack::spec::*;
    assert_eq!(keys(&v), sorted(TOP_KEYS));
    let p = &v["properties"];
    assert_eq!(
        keys(&p["buckets"]["additionalProperties"]),
        sorted(BUCKET_KEYS)
    );
    assert_eq!(
        keys(&p["streams"]["additionalProperties"]),
        sorted(STREAM_KEYS)
    );
    let delivery = &p["deliveries"]["additionalProperties"];
    assert_eq!(keys(delivery), sorted(DELIVERY_KEYS));
    assert_eq!(
        keys(&delivery["properties"]["buffering"]),
        sorted(BUFFERING_KEYS)
    );
    assert_eq!(
        keys(&delivery["properties"]["error_logging"]["oneOf"][1]),
        sorted(ERROR_LOGGING_KEYS)
    );
    let host = &p["hosts"]["additionalProperties"];
    assert_eq!(keys(host), sorted(HOST_KEYS));
    assert_eq!(keys(&host["properties"]["ssh"]), sorted(SSH_KEYS));
    assert_eq!(
        keys(&host["properties"]["flows"]["items"]),
        sorted(FLOW_KEYS)
    );
    assert_eq!(
        keys(&host["properties"]["sample_data"]),
        sorted(SAMPLE_KEYS)
    );
    for stack in STACKS {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(stack))
            .expect("stack");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/streamstack.schema.json\n"),
            "{stack}"
        );
    }
}

#[test]
fn validate_reports_all_errors_with_positions_and_exit_1_without_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "version: 1\nstack: lab\nregion: eu-west-1\nstreams:\n  s:\n    retention_hours: 9000\n    mod: on_demand\nhosts:\n  h:\n    instance_type: t3.micro\n    flows:\n      - { files: /var/log/x/*.log, to: nope }\n",
    )
    .expect("write");
    let file = path.to_str().expect("utf-8");
    // An endpoint that refuses connections: validate must not try it.
    let o = Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .args(["validate", file])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{file}:6:22: streams.s.retention_hours: 9000 is out of range"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:7:5: streams.s.mod: unknown key `mod`; did you mean `mode`?"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:12:40: hosts.h.flows[0].to: no stream or direct delivery named `nope`"
        )),
        "{err}"
    );
    assert!(err.contains("3 errors"), "{err}");
    let o = ss(&[
        "validate",
        "stacks/weather-lab.yaml",
        "stacks/classroom.yaml",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A piece of the rendered user-data, from the line starting with `from` up to and including
/// the first line starting with `to` after it.
fn script_piece(script: &str, from: &str, to: &str) -> String {
    let lines: Vec<&str> = script.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(from))
        .unwrap_or_else(|| panic!("no line starting {from:?}"));
    let end = lines[start..]
        .iter()
        .position(|l| l.starts_with(to))
        .unwrap_or_else(|| panic!("no line starting {to:?}"))
        + start;
    lines[start..=end].join("\n")
}

#[test]
fn bootstrap_opens_the_path_to_the_agent_and_starts_it_even_if_enable_fails() {
    let script = stdout_ok(&["render", "stacks/weather-lab.yaml", "--what", "user-data"]);
    assert!(
        script.contains("command -v java") && script.contains("java-17-amazon-corretto-headless"),
        "a Java runtime is ensured"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // A locked parent (like /home/ec2-user, 0700) and a root-only log file.
    std::fs::create_dir_all(root.join("locked/app")).expect("dirs");
    std::fs::write(root.join("locked/app/old.log"), "x\n").expect("file");
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    };
    let set_mode = |p: &Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    };
    set_mode(&root.join("locked"), 0o700);
    set_mode(&root.join("locked/app/old.log"), 0o600);
    let function = script_piece(&script, "agent_can_read() {", "}");
    let watched = root.join("locked/app/weather");
    let stubs = root.join("bin");
    std::fs::create_dir_all(&stubs).expect("stubs");
    // No setfacl here, so the function's ACL step is skipped the way a host without acl would.
    let run = format!(
        "set -euo pipefail\n{function}\nagent_can_read '{}'\nagent_can_read '{}'\n",
        watched.display(),
        root.join("locked/app").display()
    );
    let o = Command::new("bash")
        .args(["-c", &run])
        .env("PATH", format!("{}:/usr/bin:/bin", stubs.display()))
        .output()
        .expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        mode(&root.join("locked")) & 0o001,
        0o001,
        "x on the locked parent"
    );
    assert_eq!(mode(&watched), 0o755);
    assert_eq!(
        mode(&root.join("locked/app/old.log")) & 0o004,
        0o004,
        "existing file readable"
    );

    // systemctl enable and chkconfig both fail: the agent is still started.
    let start = script_piece(&script, "systemctl enable", "systemctl restart");
    let marker = root.join("restarted");
    for (tool, body) in [
        (
            "systemctl",
            format!(
                "#!/bin/sh\n[ \"$1\" = restart ] && touch '{}'\n[ \"$1\" = restart ]\n",
                marker.display()
            ),
        ),
        ("chkconfig", "#!/bin/sh\nexit 1\n".to_string()),
    ] {
        let path = stubs.join(tool);
        std::fs::write(&path, body).expect("stub");
        set_mode(&path, 0o755);
    }
    let o = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{start}\n")])
        .env("PATH", format!("{}:/usr/bin:/bin", stubs.display()))
        .output()
        .expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(marker.exists(), "the agent was started");
}

/// cfn-lint comes with moto[server], in the venv the test scripts create.
fn cfn_lint() -> std::path::PathBuf {
    venv_tool(None, "STREAMSTACK_VENV", ".venv-moto", "cfn-lint")
}

#[test]
fn the_cloudformation_template_is_lint_clean_and_mirrors_the_model() {
    for spec in STACKS {
        let yaml = stdout_ok(&["render", spec, "--what", "cloudformation"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("template.yaml");
        std::fs::write(&file, &yaml).expect("write");
        let o = Command::new(cfn_lint())
            .arg(&file)
            .output()
            .expect("cfn-lint");
        assert!(
            o.status.success() && o.stdout.is_empty(),
            "{spec}: cfn-lint:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let t: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("YAML");
        let resources = t["Resources"].as_mapping().expect("Resources");
        let types = |ty: &str| {
            resources
                .values()
                .filter(|r| r["Type"].as_str() == Some(ty))
                .count()
        };
        let validated = streamstack::derive::load_file(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join(spec),
            &Default::default(),
        )
        .expect("valid spec");
        let kinds = |k: &str| {
            validated
                .model
                .resources
                .keys()
                .filter(|a| a.kind.as_str() == k)
                .count()
        };
        assert_eq!(types("AWS::Kinesis::Stream"), kinds("stream"), "{spec}");
        assert_eq!(
            types("AWS::KinesisFirehose::DeliveryStream"),
            kinds("delivery"),
            "{spec}"
        );
        assert_eq!(types("AWS::EC2::Instance"), kinds("host"), "{spec}");
        assert_eq!(types("AWS::Logs::LogGroup"), kinds("log_group"), "{spec}");
        assert_eq!(
            types("AWS::IAM::Role"),
            kinds("host_role") + kinds("delivery_role"),
            "{spec}"
        );
        // Names and ARNs carry the account and region as pseudo parameters, never literally.
        assert!(
            !yaml.contains("000000000000"),
            "{spec}: a literal account id"
        );
        assert!(yaml.contains("${AWS::AccountId}") && yaml.contains("${AWS::Region}"));
        // Hosts start after the deliveries that read their streams (Firehose reads LATEST).
        if spec.contains("weather-lab") {
            let host = &resources[&serde_yaml::Value::from("HostCollector")];
            let depends: Vec<&str> = host["DependsOn"]
                .as_sequence()
                .expect("DependsOn")
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            assert!(depends.contains(&"DeliveryWeatherToS3"), "{depends:?}");
            assert_eq!(
                t["Parameters"]["HostCollectorImageId"]["Type"].as_str(),
                Some("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>")
            );
            assert!(t["Metadata"]["streamstack"]["spec_sha256"]
                .as_str()
                .is_some());
        }
    }
}

/// checkov, from the venv scripts/test makes (`ensure_checkov`).
fn checkov() -> std::path::PathBuf {
    venv_tool(
        Some("STREAMSTACK_CHECKOV"),
        "STREAMSTACK_CHECKOV_VENV",
        ".venv-checkov",
        "checkov",
    )
}

#[test]
fn the_cloudformation_template_passes_checkov_and_reads_the_same_in_yaml_1_1() {
    let specs = ["stacks/weather-lab.yaml", "stacks/direct.yaml"];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut templates = Vec::new();
    for spec in specs {
        let yaml = stdout_ok(&["render", spec, "--what", "cloudformation"]);
        let file = dir.path().join(format!(
            "{}.yaml",
            Path::new(spec)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("t")
        ));
        std::fs::write(&file, &yaml).expect("write");
        templates.push((spec, file, yaml));
    }
    // One checkov run over both (it takes seconds to start).
    let o = Command::new(checkov())
        .args(["--framework", "cloudformation", "--skip-download"])
        .args(["--output", "json", "--directory"])
        .arg(dir.path())
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("checkov");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON ({e}):\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| format!("{} {} {}", c["file_path"], c["check_id"], c["resource"]))
                .collect()
        })
        .unwrap_or_default();
    assert!(failed.is_empty(), "checkov failed: {failed:#?}");
    assert_eq!(report["summary"]["parsing_errors"], 0);
    assert!(
        report["summary"]["passed"].as_u64().unwrap_or(0) > 40,
        "checkov ran its checks: {}",
        report["summary"]
    );
    // Every skipped check says why, next to it in the template's Metadata.
    let skipped = report["results"]["skipped_checks"]
        .as_array()
        .expect("skipped");
    assert!(!skipped.is_empty());
    for c in skipped {
        let why = c["check_result"]["suppress_comment"].as_str().unwrap_or("");
        assert!(why.len() > 10, "a skip without its reason: {c}");
    }

    // PyYAML (YAML 1.1, as the AWS CLI, cfn-lint and moto read it) sees the same template as
    // a YAML 1.2 reader: no timestamp, date or boolean in disguise.
    for (spec, file, yaml) in templates {
        let python = cfn_lint().with_file_name("python");
        let o = Command::new(python)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(&file)
            .output()
            .expect("python");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pyyaml: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let ours: serde_json::Value = serde_yaml::from_str(&yaml).expect("YAML");
        assert_eq!(pyyaml, ours, "{spec}: YAML 1.1 and 1.2 readers differ");
    }
}

/// The bootstrap report rides out the new role's propagation: `aws ec2 create-tags` is refused
/// at first and retried (12 attempts, 5 s apart: about a minute), then the script gives up with
/// a warning rather than failing. The script's output also goes to the console, and an error
/// inside a function still reaches the ERR trap (`set -E`).
#[test]
fn bootstrap_report_retries_while_the_role_propagates() {
    let script = stdout_ok(&["render", "stacks/weather-lab.yaml", "--what", "user-data"]);
    assert!(
        script.contains("set -Eeuo pipefail\n"),
        "set -E for the trap"
    );
    assert!(
        script.contains("2>/dev/console) 2>&1\n"),
        "the script's output goes to the console too"
    );
    let report = script_piece(&script, "report() {", "}");
    let dir = tempfile::tempdir().expect("tempdir");
    let stubs = dir.path().join("bin");
    std::fs::create_dir_all(&stubs).expect("stubs");
    let calls = dir.path().join("calls");
    let stub = |tool: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = stubs.join(tool);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("stub");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    stub("curl", "echo i-0123456789abcdef0");
    stub(
        "sleep",
        &format!("echo sleep \"$1\" >>'{}'", calls.display()),
    );
    // Refused REFUSE times (the role is not usable yet), then accepted.
    stub(
        "aws",
        &format!(
            "echo \"aws $*\" >>'{0}'\nn=$(grep -c '^aws ' '{0}')\n[ \"$n\" -gt \"$REFUSE\" ] || \
             {{ echo 'An error occurred (UnauthorizedOperation)' >&2; exit 254; }}",
            calls.display()
        ),
    );
    let run = |refuse: u32| {
        let _ = std::fs::remove_file(&calls);
        let o = Command::new("bash")
            .args(["-c", &format!("set -Eeuo pipefail\n{report}\nreport ok\n")])
            .env("PATH", format!("{}:/usr/bin:/bin", stubs.display()))
            .env("REFUSE", refuse.to_string())
            .output()
            .expect("bash");
        let log = std::fs::read_to_string(&calls).unwrap_or_default();
        let count = |p: &str| log.lines().filter(|l| l.starts_with(p)).count();
        (o, count("aws "), count("sleep "), log)
    };
    let (o, tags, sleeps, log) = run(3);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!((tags, sleeps), (4, 3), "{log}");
    assert!(out.contains("reported ok"), "{out}");
    assert!(
        log.contains("--tags Key=streamstack:bootstrap,Value=ok"),
        "{log}"
    );
    // Never accepted: 12 attempts, a warning, and the script goes on (exit 0).
    let (o, tags, sleeps, log) = run(100);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!((tags, sleeps), (12, 11), "{log}");
    assert!(
        log.lines()
            .filter(|l| l.starts_with("sleep "))
            .all(|l| l == "sleep 5"),
        "{log}"
    );
    assert!(out.contains("could not report bootstrap ok"), "{out}");
}

/// parliament, from the venv scripts/test makes (`ensure_parliament`).
fn parliament() -> std::path::PathBuf {
    venv_tool(
        Some("STREAMSTACK_PARLIAMENT"),
        "STREAMSTACK_PARLIAMENT_VENV",
        ".venv-parliament",
        "parliament",
    )
}

/// parliament's findings (community auditors on, every severity from INFO) over the `.json`
/// files of `dir`, with `config` (its narrow ignores) if given.
fn parliament_findings(dir: &Path, config: Option<&Path>) -> Vec<Value> {
    let mut c = Command::new(parliament());
    c.args([
        "--include-community-auditors",
        "--minimum_severity",
        "INFO",
        "--json",
    ])
    .args(["--include_policy_extension", "json", "--directory"])
    .arg(dir)
    .stdin(std::process::Stdio::null());
    if let Some(config) = config {
        c.arg("--config").arg(config);
    }
    let o = c.output().expect("parliament");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("Traceback") && !stderr.contains("error:"),
        "parliament failed: {stderr}"
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every policy streamstack derives (each role's inline policy for every example spec, and the
/// operator's policy for plan and for apply) passes parliament with the community auditors at
/// INFO and above. The operator's apply policies are linted with tests/parliament.yaml, which
/// mutes the two findings that are what that policy is for (creating the stack's roles and
/// launching instances with them); the test shows that without it exactly those two appear, so
/// the mute is neither stale nor wider than that.
#[test]
fn every_derived_policy_passes_parliament() {
    let (plain, apply) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let write = |dir: &Path, name: String, policy: &Value| {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(path, serde_json::to_string_pretty(policy).expect("json")).expect("write");
    };
    let specs = [
        "stacks/weather-lab.yaml",
        "stacks/classroom.yaml",
        "stacks/direct.yaml",
    ];
    let mut roles_seen = 0;
    for spec in specs {
        let stem = Path::new(spec)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("spec");
        let roles: Value =
            serde_json::from_str(&stdout_ok(&["render", spec, "--what", "policies"]))
                .expect("json");
        // Permission policies only: parliament lints identity policies, and takes a trust
        // policy (a Principal and no Resource) for a malformed one.
        for (role, r) in roles.as_object().expect("roles") {
            for (policy, doc) in r["inline_policies"].as_object().expect("inline") {
                write(plain.path(), format!("{stem}-{role}-{policy}"), doc);
                roles_seen += 1;
            }
        }
        for (commands, dir) in [("plan", plain.path()), ("apply", apply.path())] {
            let args = [
                "render",
                spec,
                "--what",
                "operator-policy",
                "--for",
                commands,
            ];
            let policy: Value = serde_json::from_str(&stdout_ok(&args)).expect("json");
            write(dir, format!("operator-{commands}-{stem}"), &policy);
        }
    }
    assert!(roles_seen > 60, "{roles_seen} role policies");
    let findings = parliament_findings(plain.path(), None);
    assert!(findings.is_empty(), "parliament: {findings:#?}");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parliament.yaml");
    let findings = parliament_findings(apply.path(), Some(&config));
    assert!(findings.is_empty(), "parliament: {findings:#?}");

    // Without the mutes: exactly those two findings on each apply policy.
    let raw = parliament_findings(apply.path(), None);
    let mut seen: Vec<(String, String, String)> = raw
        .iter()
        .map(|f| {
            let file = f["location"]["filepath"].as_str().unwrap_or_default();
            let file = Path::new(file)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            (
                f["issue"].as_str().unwrap_or_default().to_string(),
                f["location"]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                file.to_string(),
            )
        })
        .collect();
    seen.sort();
    let mut expected: Vec<(String, String, String)> = specs
        .iter()
        .filter_map(|s| Path::new(s).file_stem().and_then(|s| s.to_str()))
        .flat_map(|stem| {
            let file = format!("operator-apply-{stem}.json");
            [
                (
                    "PERMISSIONS_MANAGEMENT_ACTIONS".to_string(),
                    String::new(),
                    file.clone(),
                ),
                (
                    "PRIVILEGE_ESCALATION".to_string(),
                    "CreateEC2WithExistingIP".to_string(),
                    file,
                ),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "{raw:#?}");
}
