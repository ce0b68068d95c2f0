//! End-to-end lifecycle tests: the real CLI binary and the real AWS SDK against moto server,
//! through the realism proxy (tests/it/support/proxy.rs), one moto account per test.
//!
//! Each test runs `streamstack` as a process, as a user or a CI job would, and checks the result
//! with the SDK directly. The proxy counts every AWS call, so "no write calls" is asserted.

use std::process::Command;
use std::time::Instant;

use crate::support::cli::*;
use crate::support::inventory::{self, assert_nothing_remains};
use crate::support::proxy::ProxyConfig;
use crate::support::wait::PATIENCE;
use crate::support::Sandbox;

/// `(status, emulated)` of each call of `service:Action`, in order.
fn answers(sb: &Sandbox, call: &str) -> Vec<(u16, Option<&'static str>)> {
    sb.proxy
        .calls_of(call)
        .into_iter()
        .map(|c| (c.status, c.emulated))
        .collect()
}

/// What an apply of the weather lab makes, kind by kind, as the inventory counts it.
fn weather_lab_kinds() -> Vec<(String, usize)> {
    [
        ("bucket", 1),
        ("delivery", 1),
        ("instance", 1),
        ("instance_profile", 1),
        ("log_group", 1),
        ("role", 2),
        ("stream", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect()
}

#[test]
fn weather_lab_full_lifecycle_with_properties_and_no_op_reapply() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    ok(&sb, &["validate", p(&spec.path)]);
    let before = ok(&sb, &["plan", p(&spec.path)]);
    assert!(
        before.contains("Plan: 8 to add, 0 to change, 0 to destroy."),
        "{before}"
    );
    assert!(
        sb.proxy.write_calls().is_empty(),
        "plan wrote: {:?}",
        sb.proxy.write_calls()
    );

    let started = Instant::now();
    let applied = ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    eprintln!(
        "weather-lab apply: {:.2?}, {} calls",
        started.elapsed(),
        sb.proxy.calls().len()
    );
    assert!(
        applied.contains("Apply complete! Resources: 8 added"),
        "{applied}"
    );
    // Seen without streamstack: exactly the lab's resources, and the lock released.
    let made = inventory::of(&sb, LAB_REGION, "weather-lab");
    assert_eq!(made.counts(), weather_lab_kinds(), "{made}");

    // Every resource is there with the spec's properties.
    let conf = sdk(&sb, LAB_REGION);
    rt().block_on(async {
        let kinesis = aws_sdk_kinesis::Client::new(&conf);
        let s = kinesis
            .describe_stream_summary()
            .stream_name("weather-lab-weather")
            .send()
            .await
            .expect("stream")
            .stream_description_summary
            .expect("summary");
        assert_eq!(s.retention_period_hours, 24);
        assert_eq!(
            s.stream_mode_details.map(|m| m.stream_mode),
            Some(aws_sdk_kinesis::types::StreamMode::OnDemand)
        );
        assert_eq!(
            s.encryption_type,
            Some(aws_sdk_kinesis::types::EncryptionType::Kms)
        );

        let firehose = aws_sdk_firehose::Client::new(&conf);
        let d = firehose
            .describe_delivery_stream()
            .delivery_stream_name("weather-lab-weather-to-s3")
            .send()
            .await
            .expect("delivery")
            .delivery_stream_description
            .expect("description");
        assert_eq!(
            d.delivery_stream_type,
            aws_sdk_firehose::types::DeliveryStreamType::KinesisStreamAsSource
        );
        let src = d
            .source
            .and_then(|s| s.kinesis_stream_source_description)
            .expect("kinesis source");
        assert!(src
            .kinesis_stream_arn
            .unwrap_or_default()
            .ends_with(":stream/weather-lab-weather"));
        let dest = d.destinations[0]
            .extended_s3_destination_description
            .clone()
            .expect("extended s3");
        assert_eq!(dest.prefix.as_deref(), Some("weather/"));
        assert_eq!(dest.error_output_prefix.as_deref(), Some("errors/"));
        assert_eq!(
            dest.compression_format,
            aws_sdk_firehose::types::CompressionFormat::Gzip
        );
        let hints = dest.buffering_hints.expect("buffering");
        assert_eq!(
            (hints.size_in_mbs, hints.interval_in_seconds),
            (Some(5), Some(60))
        );
        assert!(dest
            .bucket_arn
            .starts_with("arn:aws:s3:::weather-lab-archive-"));
        // Delivery errors are logged to the delivery's own log group, kept 14 days, tagged.
        let logging = dest.cloud_watch_logging_options.expect("logging options");
        assert_eq!(logging.enabled, Some(true));
        let group = "/aws/kinesisfirehose/weather-lab-weather-to-s3";
        assert_eq!(logging.log_group_name.as_deref(), Some(group));
        assert_eq!(
            logging.log_stream_name.as_deref(),
            Some("DestinationDelivery")
        );
        let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(group)
            .send()
            .await
            .expect("log groups")
            .log_groups
            .unwrap_or_default();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].retention_in_days, Some(14));
        let arn = format!(
            "arn:aws:logs:{LAB_REGION}:{}:log-group:{group}",
            sb.account_id
        );
        let tags = logs
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .expect("log group tags")
            .tags
            .unwrap_or_default();
        assert_eq!(
            tags.get("streamstack:stack").map(String::as_str),
            Some("weather-lab")
        );
        assert_eq!(
            tags.get("streamstack:address").map(String::as_str),
            Some("log_group.weather-to-s3")
        );
        assert_eq!(tags.get("project").map(String::as_str), Some("weather-lab"));
        let streams = logs
            .describe_log_streams()
            .log_group_name(group)
            .send()
            .await
            .expect("log streams")
            .log_streams
            .unwrap_or_default();
        assert!(
            streams
                .iter()
                .any(|s| s.log_stream_name.as_deref() == Some("DestinationDelivery")),
            "{streams:?}"
        );

        let iam = aws_sdk_iam::Client::new(&conf);
        let role = iam
            .get_role()
            .role_name("weather-lab-collector-host")
            .send()
            .await
            .expect("host role");
        let trust = role
            .role
            .expect("role")
            .assume_role_policy_document
            .unwrap_or_default();
        assert!(trust.contains("ec2.amazonaws.com"), "{trust}");
        let pol = iam
            .get_role_policy()
            .role_name("weather-lab-collector-host")
            .policy_name("streamstack")
            .send()
            .await
            .expect("inline policy");
        let doc = percent_encoding::percent_decode_str(&pol.policy_document)
            .decode_utf8_lossy()
            .to_string();
        assert!(
            doc.contains("kinesis:PutRecords") && doc.contains("stream/weather-lab-weather"),
            "{doc}"
        );
        assert!(
            !doc.contains("\"*\"") || doc.contains("cloudwatch:namespace"),
            "{doc}"
        );
        let frole = iam
            .get_role()
            .role_name("weather-lab-weather-to-s3-firehose")
            .send()
            .await
            .expect("delivery role");
        let ftrust = frole
            .role
            .expect("role")
            .assume_role_policy_document
            .unwrap_or_default();
        assert!(
            ftrust.contains("firehose.amazonaws.com") && ftrust.contains("ExternalId"),
            "{ftrust}"
        );

        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let res = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:streamstack:stack")
                    .values("weather-lab")
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-state-name")
                    .values("running")
                    .build(),
            )
            .send()
            .await
            .expect("instances");
        let instances: Vec<_> = res
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .collect();
        assert_eq!(instances.len(), 1, "exactly one host");
        let i = instances[0];
        assert!(i
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .unwrap_or_default()
            .ends_with("/weather-lab-collector-host"));
        assert_eq!(
            i.metadata_options().and_then(|m| m.http_tokens()),
            Some(&aws_sdk_ec2::types::HttpTokensState::Required)
        );
        let ud = ec2
            .describe_instance_attribute()
            .instance_id(i.instance_id().unwrap_or_default())
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .expect("user data");
        let b64 = ud.user_data.and_then(|u| u.value).unwrap_or_default();
        use base64::Engine;
        let script = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64"),
        )
        .expect("utf-8");
        assert!(
            script.contains("\"kinesisStream\": \"weather-lab-weather\""),
            "{script}"
        );
        assert!(script.contains("dnf install -y aws-kinesis-agent"));
        assert!(!script.contains("awsAccessKeyId") && !script.contains("AKID"));

        let s3 = crate::support::moto::s3_client(&conf);
        let buckets = s3.list_buckets().send().await.expect("buckets");
        let bucket = buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .find(|n| n.starts_with("weather-lab-archive-"))
            .expect("bucket")
            .to_string();
        let enc = s3
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await
            .expect("encryption");
        let rule = enc.server_side_encryption_configuration.expect("sse").rules[0].clone();
        assert_eq!(
            rule.apply_server_side_encryption_by_default
                .map(|d| d.sse_algorithm),
            Some(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        );
        let pab = s3
            .get_public_access_block()
            .bucket(&bucket)
            .send()
            .await
            .expect("pab");
        let c = pab.public_access_block_configuration.expect("config");
        assert_eq!(
            (
                c.block_public_acls,
                c.ignore_public_acls,
                c.block_public_policy,
                c.restrict_public_buckets
            ),
            (Some(true), Some(true), Some(true), Some(true))
        );
    });

    // After apply: no changes, exit 0 under --detailed-exitcode, and a re-apply writes nothing
    // but its lock (taken and released).
    sb.proxy.reset_calls();
    let started = Instant::now();
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    eprintln!(
        "weather-lab plan: {:.2?}, {} calls",
        started.elapsed(),
        sb.proxy.calls().len()
    );
    assert_eq!(o.status.code(), Some(0), "plan after apply:\n{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("No changes."));
    sb.proxy.reset_calls();
    let started = Instant::now();
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let calls = sb.proxy.calls();
    eprintln!(
        "weather-lab no-op apply: {:.2?}, {} calls",
        started.elapsed(),
        calls.len()
    );
    let writes = sb.proxy.write_call_names();
    assert_eq!(
        writes,
        ["s3:PUT key", "s3:DELETE key"],
        "a no-op apply writes only its lock"
    );
    assert!(sb.proxy.resource_writes().is_empty());
    assert!(!calls.is_empty(), "the proxy saw the reads");

    let out = ok(&sb, &["output", p(&spec.path)]);
    assert!(
        out.contains("host.collector") && out.contains("i-"),
        "{out}"
    );
    assert!(
        out.contains("data_lands_in") && out.contains("/weather/"),
        "{out}"
    );

    // Put objects in the bucket as Firehose would; destroy must empty it (force_destroy: true).
    rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&conf);
        let buckets = s3.list_buckets().send().await.expect("buckets");
        let bucket = stack_buckets(&buckets)[0].clone();
        for i in 0..5 {
            s3.put_object()
                .bucket(&bucket)
                .key(format!("weather/2026/11/28/obj-{i}"))
                .body(aws_sdk_s3::primitives::ByteStream::from_static(
                    b"{\"city\":\"Seoul\"}\n",
                ))
                .send()
                .await
                .expect("put");
        }
    });
    let destroyed = ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert!(
        destroyed.contains("Nothing of stack weather-lab remains"),
        "{destroyed}"
    );
    assert!(remaining(&sb, &spec.path).is_empty());
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
    rt().block_on(async {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix("/aws/kinesisfirehose/")
            .send()
            .await
            .expect("log groups")
            .log_groups
            .unwrap_or_default();
        assert!(groups.is_empty(), "destroy left {groups:?}");
        let s3 = crate::support::moto::s3_client(&conf);
        let buckets = s3.list_buckets().send().await.expect("buckets");
        assert!(
            stack_buckets(&buckets).is_empty(),
            "only the lock bucket stays"
        );
        let iam = aws_sdk_iam::Client::new(&conf);
        let roles = iam
            .list_roles()
            .path_prefix("/streamstack/")
            .send()
            .await
            .expect("roles");
        assert!(roles.roles().is_empty());
    });
}

#[test]
fn apply_rides_out_creating_states_and_iam_propagation() {
    // Windows in calls, not seconds: however slow the machine, Firehose refuses the new role
    // exactly twice and EC2 the new profile exactly twice.
    let sb = Sandbox::new(ProxyConfig {
        // Ten describes saying CREATING, polled every 200 ms: the stream's wait lasts at least
        // 1.8 s (the sleeps between them), beyond the 1 s after which progress is reported.
        stream_creating: 10,
        stream_updating: 2,
        delivery_creating: 3,
        role_propagation: 2,
        profile_propagation: 2,
        instance_pending: 3,
        ..ProxyConfig::default()
    });
    let spec = spec_file(&WEATHER_LAB.replace("retention_hours: 24", "retention_hours: 48"));
    let out = ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert!(out.contains("Apply complete!"), "{out}");
    let calls = sb.proxy.call_names();
    let count = |n: &str| calls.iter().filter(|c| c.as_str() == n).count();
    assert_eq!(
        answers(&sb, "firehose:CreateDeliveryStream"),
        [
            (400, Some("role-propagation")),
            (400, Some("role-propagation")),
            (200, None)
        ],
        "Firehose create was retried through the role's propagation: {calls:?}"
    );
    assert_eq!(
        answers(&sb, "ec2:RunInstances"),
        [
            (400, Some("profile-propagation")),
            (400, Some("profile-propagation")),
            (200, None)
        ],
        "RunInstances was retried through the profile's propagation: {calls:?}"
    );
    // Every transition was waited out to its end.
    assert_eq!(sb.proxy.emulated("CREATING"), 10 + 3, "{calls:?}");
    assert_eq!(sb.proxy.emulated("pending"), 3, "{calls:?}");
    assert!(out.contains("retrying"), "retries are reported:\n{out}");
    assert!(out.contains("Still working"), "waits are reported:\n{out}");
    // Retention was raised after the stream became ACTIVE, and only once.
    assert_eq!(
        answers(&sb, "kinesis:IncreaseStreamRetentionPeriod"),
        [(200, None)],
        "{calls:?}"
    );
    assert_eq!(
        count("kinesis:IncreaseStreamRetentionPeriod"),
        1,
        "{calls:?}"
    );
    // One instance, however many RunInstances retries.
    let conf = sdk(&sb, LAB_REGION);
    let n = rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let res = ec2.describe_instances().send().await.expect("instances");
        res.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .count()
    });
    assert_eq!(n, 1, "exactly one instance");
    let made = inventory::of(&sb, LAB_REGION, "weather-lab");
    assert_eq!(made.counts(), weather_lab_kinds(), "{made}");
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

#[test]
fn out_of_band_changes_are_planned_and_repaired() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let conf = sdk(&sb, LAB_REGION);
    rt().block_on(async {
        let kinesis = aws_sdk_kinesis::Client::new(&conf);
        kinesis
            .increase_stream_retention_period()
            .stream_name("weather-lab-weather")
            .retention_period_hours(72)
            .send()
            .await
            .expect("retention");
        kinesis
            .remove_tags_from_stream()
            .stream_name("weather-lab-weather")
            .tag_keys("project")
            .send()
            .await
            .expect("untag");
        let iam = aws_sdk_iam::Client::new(&conf);
        iam.put_role_policy()
            .role_name("weather-lab-collector-host")
            .policy_name("streamstack")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::someone-elses/*"}]}"#)
            .send()
            .await
            .expect("policy");
        let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
        logs.put_retention_policy()
            .log_group_name("/aws/kinesisfirehose/weather-lab-weather-to-s3")
            .retention_in_days(30)
            .send()
            .await
            .expect("log retention");
    });
    let plan = plan_json(&sb, &spec.path);
    let got = actions(&plan);
    assert!(
        got.contains(&("stream.weather".into(), "update".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("host_role.collector".into(), "update".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("log_group.weather-to-s3".into(), "update".into())),
        "{got:?}"
    );
    assert_eq!(got.len(), 3, "{got:?}");
    let stream = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["address"] == "stream.weather")
        .expect("stream change");
    let names: Vec<&str> = stream["attributes"]
        .as_array()
        .expect("attrs")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["retention_hours", "tags"]);
    let human = ok(&sb, &["plan", p(&spec.path)]);
    assert!(
        human.contains("retention_hours") && human.contains("72 → 24"),
        "{human}"
    );
    assert!(
        human.contains("retention_days") && human.contains("30 → 14"),
        "{human}"
    );
    assert!(
        human.contains("Plan: 0 to add, 3 to change, 0 to destroy."),
        "{human}"
    );

    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "repaired:\n{}", text(&o));
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}

#[test]
fn spec_changes_apply_in_place_or_by_replacement_and_removed_hosts_are_deleted() {
    let sb = Sandbox::passthrough();
    let two_hosts = format!(
        "{WEATHER_LAB}  spare:\n    instance_type: t3.micro\n    flows:\n      - files: /var/log/spare/*.log\n        to: weather\n"
    );
    let spec = spec_file(&two_hosts);
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);

    // In place: buffering; by replacement: the agent config (user-data) of the collector.
    let changed = two_hosts
        .replace("size_mb: 5", "size_mb: 16")
        .replace("records: 20", "records: 40");
    rewrite(&spec, &changed);
    let got = actions(&plan_json(&sb, &spec.path));
    assert_eq!(
        got,
        vec![
            ("delivery.weather-to-s3".to_string(), "update".to_string()),
            ("host.collector".to_string(), "replace".to_string()),
        ]
    );
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Remove the spare host from the spec: its instance, role and profile go.
    rewrite(&spec, &changed[..changed.find("  spare:").expect("spare")]);
    let mut got = actions(&plan_json(&sb, &spec.path));
    got.sort();
    assert_eq!(
        got,
        vec![
            ("host.spare".to_string(), "delete".to_string()),
            ("host_role.spare".to_string(), "delete".to_string()),
            ("instance_profile.spare".to_string(), "delete".to_string()),
        ]
    );
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert!(remaining(&sb, &spec.path).is_empty());
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

#[test]
fn a_same_named_foreign_resource_is_refused_and_left_untouched() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    let conf = sdk(&sb, LAB_REGION);
    rt().block_on(async {
        aws_sdk_kinesis::Client::new(&conf)
            .create_stream()
            .stream_name("weather-lab-weather")
            .shard_count(1)
            .send()
            .await
            .expect("foreign stream");
    });
    sb.proxy.reset_calls();
    for args in [
        vec!["plan", p(&spec.path)],
        vec!["apply", "--auto-approve", p(&spec.path)],
    ] {
        let o = ss(&sb, &args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?} must refuse:\n{}",
            text(&o)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("stream.weather") && err.contains("weather-lab-weather"),
            "{err}"
        );
        assert!(err.contains("not tagged"), "{err}");
    }
    assert!(
        sb.proxy.resource_writes().is_empty(),
        "refused, yet wrote: {:?}",
        sb.proxy.resource_writes()
    );
    // destroy leaves the foreign stream alone.
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    rt().block_on(async {
        let s = aws_sdk_kinesis::Client::new(&conf)
            .describe_stream_summary()
            .stream_name("weather-lab-weather")
            .send()
            .await
            .expect("still there");
        assert_eq!(
            s.stream_description_summary.map(|s| s.open_shard_count),
            Some(1)
        );
    });
}

#[test]
fn destroy_refuses_a_non_empty_bucket_without_force_destroy() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(&WEATHER_LAB.replace("force_destroy: true", "force_destroy: false"));
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let conf = sdk(&sb, LAB_REGION);
    let bucket = rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&conf);
        let name = stack_buckets(&s3.list_buckets().send().await.expect("list"))[0].clone();
        s3.put_object()
            .bucket(&name)
            .key("weather/keep-me")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put");
        name
    });
    let o = ss(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("force_destroy"), "{all}");
    assert_eq!(
        remaining(&sb, &spec.path),
        vec!["bucket.archive".to_string()]
    );
    rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&conf);
        let objs = s3
            .list_objects_v2()
            .bucket(&bucket)
            .send()
            .await
            .expect("list");
        assert_eq!(objs.key_count, Some(1), "the object is untouched");
    });
}

#[test]
fn destroy_after_an_interrupted_apply_leaves_nothing() {
    // The apply is killed while it waits for its delivery to become ACTIVE: the proxy holds its
    // first DescribeDeliveryStream after the create, so the kill lands exactly there.
    let sb = Sandbox::new(ProxyConfig {
        delivery_creating: 3,
        ..ProxyConfig::default()
    });
    let spec = spec_file(WEATHER_LAB);
    let hold = sb.proxy.hold_after(
        "firehose:CreateDeliveryStream",
        "firehose:DescribeDeliveryStream",
    );
    let mut child = spawn_ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let held = hold.wait_held(PATIENCE, || child.try_wait().ok().flatten().is_some());
    child.kill().expect("kill apply");
    let out = child.wait_with_output().expect("wait for the apply");
    assert!(
        held.is_some(),
        "the apply never waited for its delivery:\n{}",
        text(&out)
    );
    drop(hold);
    let mut half = remaining(&sb, &spec.path);
    half.sort();
    assert!(
        half.contains(&"stream.weather".to_string())
            && half.contains(&"delivery.weather-to-s3".to_string()),
        "half-applied: {half:?}"
    );
    assert!(
        !half.contains(&"host.collector".to_string()),
        "half-applied: {half:?}"
    );
    let left = inventory::of(&sb, LAB_REGION, "weather-lab");
    assert!(
        left.names("instance").is_empty() && left.names("delivery").len() == 1,
        "{left}"
    );
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert!(remaining(&sb, &spec.path).is_empty());
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

#[test]
fn a_failed_operation_skips_its_dependents_and_the_next_apply_continues() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    sb.proxy
        .fail("firehose:CreateDeliveryStream", "InvalidArgumentException");
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("failed  delivery.weather-to-s3"), "{err}");
    assert!(
        err.contains("injected failure"),
        "the AWS error is shown: {err}"
    );
    assert!(
        err.contains("skipped host.collector (create; waits for delivery.weather-to-s3)"),
        "{err}"
    );
    assert!(err.contains("Run apply again"), "{err}");
    // Independent operations finished; the host was never launched.
    let mut half = remaining(&sb, &spec.path);
    half.sort();
    assert_eq!(
        half,
        [
            "bucket.archive",
            "delivery_role.weather-to-s3",
            "host_role.collector",
            "instance_profile.collector",
            "log_group.weather-to-s3",
            "stream.weather"
        ]
    );
    assert!(!sb
        .proxy
        .call_names()
        .contains(&"ec2:RunInstances".to_string()));

    // The next apply picks up from the live state: only the two missing resources.
    sb.proxy.clear_failures();
    let out = ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert!(
        out.contains("Apply complete! Resources: 2 added, 0 changed, 0 destroyed."),
        "{out}"
    );
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, "weather-lab");
}

#[test]
fn apply_without_a_terminal_or_approval_refuses() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    let o = ss(&sb, &["apply", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--auto-approve"));
    assert!(
        sb.proxy.write_calls().is_empty(),
        "{:?}",
        sb.proxy.write_calls()
    );
}

#[test]
fn saved_plan_applies_and_goes_stale_when_the_spec_changes() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    let dir = tempfile::tempdir().expect("tempdir");
    let planfile = dir.path().join("plan.json");
    let o = ss(
        &sb,
        &[
            "plan",
            "--detailed-exitcode",
            "--out",
            p(&planfile),
            p(&spec.path),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    rewrite(
        &spec,
        &WEATHER_LAB.replace("retention_hours: 24", "retention_hours: 36"),
    );
    let o = ss(&sb, &["apply", "--auto-approve", p(&planfile)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("run plan again"));
    // Nothing written but the stack's lock (its S3 object), taken and released around the check.
    let writes = sb.proxy.resource_writes();
    assert!(writes.is_empty(), "{writes:?}");
    rewrite(&spec, WEATHER_LAB);
    // A saved plan, like a spec, is applied only with approval: no terminal, no apply.
    let o = ss(&sb, &["apply", p(&planfile)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--auto-approve"));
    ok(&sb, &["apply", "--auto-approve", p(&planfile)]);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}

#[test]
fn classroom_lifecycle_at_scale() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(CLASSROOM);
    let started = Instant::now();
    let out = ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    eprintln!(
        "classroom apply: {:.2?}, {} calls",
        started.elapsed(),
        sb.proxy.calls().len()
    );
    assert!(
        out.contains("Apply complete! Resources: 211 added"),
        "{out}"
    );
    sb.proxy.reset_calls();
    let started = Instant::now();
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    eprintln!(
        "classroom plan: {:.2?}, {} calls",
        started.elapsed(),
        sb.proxy.calls().len()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    sb.proxy.reset_calls();
    let started = Instant::now();
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    eprintln!(
        "classroom no-op apply: {:.2?}, {} calls",
        started.elapsed(),
        sb.proxy.calls().len()
    );
    assert!(
        sb.proxy.resource_writes().is_empty(),
        "{:?}",
        sb.proxy.resource_writes()
    );
    let started = Instant::now();
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    eprintln!("classroom destroy: {:.2?}", started.elapsed());
    assert!(remaining(&sb, &spec.path).is_empty());
    assert_nothing_remains(&sb, "eu-west-1", "classroom");
}

#[test]
fn verbose_apply_logs_every_aws_call_and_the_retries_through_throttling() {
    let sb = Sandbox::passthrough();
    let spec = spec_file("version: 1\nstack: loud\nregion: eu-west-1\nstreams:\n  events: {}\n");
    sb.proxy
        .fail_times("kinesis:CreateStream", "ThrottlingException", 2);
    sb.proxy
        .fail_times("kinesis:DescribeStreamSummary", "ThrottlingException", 1);
    let o = ss(
        &sb,
        &["apply", "-v", "--auto-approve", "--json", p(&spec.path)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    // Each attempt: service, operation, status, milliseconds; the throttled ones with the reason.
    assert!(
        err.contains("kinesis:CreateStream -> 400 in ") && err.contains("ThrottlingException"),
        "{err}"
    );
    // Each retry, with its reason and the backoff: streamstack's own (CreateStream retries
    // itself, to know whether an earlier attempt may have created the stream)...
    let retries = err
        .lines()
        .filter(|l| l.contains("retry stream.events in ") && l.contains("ThrottlingException"))
        .count();
    assert_eq!(retries, 2, "{err}");
    // ...and the SDK's (attempt numbers).
    assert!(
        err.contains("retry kinesis:DescribeStreamSummary (attempt 2)"),
        "{err}"
    );
    assert!(err.contains("kinesis:CreateStream -> 200 in "), "{err}");
    assert!(err.contains("sts:GetCallerIdentity -> 200 in "), "{err}");
    // Logs never reach --json stdout: every line there is JSON.
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line}"));
    }
    let creates = sb
        .proxy
        .calls()
        .into_iter()
        .filter(|c| c.to_string() == "kinesis:CreateStream")
        .count();
    assert_eq!(
        creates, 3,
        "two throttled attempts and one that went through"
    );
    // Without -v: no call log.
    let o = ss(&sb, &["plan", p(&spec.path)]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("DescribeStreamSummary"));
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}

#[test]
fn piping_render_into_a_closed_pipe_ends_quietly() {
    // The classroom's policies are far more than a pipe buffer holds, so the writer meets the
    // closed pipe whatever the timing.
    let spec = spec_file(CLASSROOM);
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .args(["render", "--what", "policies", p(&spec.path)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run streamstack");
    {
        // Read one line, then close the pipe, as `| head -1` does.
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        std::io::BufReader::with_capacity(16, stdout)
            .read_line(&mut first)
            .expect("first line");
        assert_eq!(first.trim(), "{");
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    // Ended by SIGPIPE, like any well-behaved filter, or finished: never exit 101 (a panic).
    assert_ne!(out.status.code(), Some(101), "{err}");
}

#[test]
fn the_specs_region_wins_over_the_ambient_one_and_a_differing_flag_is_refused() {
    let sb = Sandbox::passthrough();
    let spec = spec_file("version: 1\nstack: where\nregion: eu-west-1\nstreams:\n  events: {}\n");
    // CI runners and CloudShell set AWS_REGION: the spec's region is used anyway.
    let ambient = [
        ("AWS_REGION", "us-west-2"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
    ];
    let o = ss_env(&sb, &["apply", "--auto-approve", p(&spec.path)], &ambient);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    rt().block_on(async {
        let here = aws_sdk_kinesis::Client::new(&sdk(&sb, "eu-west-1"));
        let names = here.list_streams().send().await.expect("list").stream_names;
        assert_eq!(names, ["where-events"]);
        let there = aws_sdk_kinesis::Client::new(&sdk(&sb, "us-west-2"));
        let names = there
            .list_streams()
            .send()
            .await
            .expect("list")
            .stream_names;
        assert!(names.is_empty(), "created in the ambient region: {names:?}");
    });
    // An explicit --region that differs from the spec's is a mistake worth stopping.
    sb.proxy.reset_calls();
    let o = ss(&sb, &["plan", "--region", "us-west-2", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("differs from --region"), "{err}");
    assert!(
        sb.proxy.calls().is_empty(),
        "an invalid spec reaches no AWS"
    );
    let o = ss_env(&sb, &["destroy", "--auto-approve", p(&spec.path)], &ambient);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_foreign_role_differing_only_in_case_is_refused_with_no_writes() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(WEATHER_LAB);
    rt().block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk(&sb, LAB_REGION));
        iam.create_role()
            .role_name("Weather-Lab-Collector-Host")
            .assume_role_policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            )
            .send()
            .await
            .expect("foreign role");
    });
    sb.proxy.reset_calls();
    let o = ss(&sb, &["plan", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("host_role.collector") && err.contains("Weather-Lab-Collector-Host"),
        "{err}"
    );
    let o = ss(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        sb.proxy.resource_writes().is_empty(),
        "wrote: {:?}",
        sb.proxy.resource_writes()
    );
}
