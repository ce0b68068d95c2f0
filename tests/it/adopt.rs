//! From the console to code: the lab built as the console builds it (its own names, managed
//! `*FullAccess` policies, an instance with a profile, an on-demand stream, a delivery with its
//! own role and error logging, a bucket), then `init --from-live`, `adopt`, `apply`, `plan`
//! and `destroy` through the CLI.

use aws_sdk_firehose::types::{
    BufferingHints, CloudWatchLoggingOptions, CompressionFormat, DeliveryStreamType,
    ExtendedS3DestinationConfiguration, KinesisStreamSourceConfiguration,
};

use crate::support::cli::*;
use crate::support::moto::REGION;
use crate::support::proxy::Call;
use crate::support::Sandbox;

const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const FIREHOSE_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"firehose.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// What the console made.
struct Lab {
    stream: String,
    bucket: String,
    delivery: String,
    instance: String,
    /// An instance nobody names: never touched.
    other_instance: String,
    other_stream: String,
    other_bucket: String,
}

/// The lab as the console makes it, plus a stream and a bucket nobody will name.
fn console_lab(sb: &Sandbox) -> Lab {
    let lab = Lab {
        stream: "KDS-weather".into(),
        bucket: format!("console-lab-{}", sb.account_id),
        delivery: "KDS-S3-weather".into(),
        instance: String::new(),
        other_instance: String::new(),
        other_stream: "someone-elses-stream".into(),
        other_bucket: format!("someone-elses-{}", sb.account_id),
    };
    let (instance, other_instance) = rt().block_on(async {
        let cfg = sdk(sb, REGION);
        let iam = aws_sdk_iam::Client::new(&cfg);
        let kinesis = aws_sdk_kinesis::Client::new(&cfg);
        let firehose = aws_sdk_firehose::Client::new(&cfg);
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        let logs = aws_sdk_cloudwatchlogs::Client::new(&cfg);
        let s3 = sb.s3();
        // 1. The EC2 role, with the two FullAccess managed policies, and its profile.
        iam.create_role()
            .role_name("ec2-kinesis-role")
            .assume_role_policy_document(EC2_TRUST)
            .send()
            .await
            .unwrap();
        for (p, service) in [
            ("AmazonS3FullAccess", "s3"),
            ("AmazonKinesisFullAccess", "kinesis"),
        ] {
            // scripts/test starts moto without AWS's managed policies (MOTO_IAM_LOAD_MANAGED_
            // POLICIES=false, for speed): then the account gets a policy of that name and
            // document, which reads the same to `init --from-live` (attached, by name).
            let aws_arn = format!("arn:aws:iam::aws:policy/{p}");
            let attached = iam
                .attach_role_policy()
                .role_name("ec2-kinesis-role")
                .policy_arn(&aws_arn)
                .send()
                .await;
            if attached.is_err() {
                let doc = format!(
                    r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{service}:*","Resource":"*"}}]}}"#
                );
                let made = iam
                    .create_policy()
                    .policy_name(p)
                    .policy_document(doc)
                    .send()
                    .await
                    .unwrap();
                let arn = made.policy().and_then(|x| x.arn()).unwrap().to_string();
                iam.attach_role_policy()
                    .role_name("ec2-kinesis-role")
                    .policy_arn(arn)
                    .send()
                    .await
                    .unwrap();
            }
        }
        iam.create_instance_profile()
            .instance_profile_name("ec2-kinesis-role")
            .send()
            .await
            .unwrap();
        iam.add_role_to_instance_profile()
            .instance_profile_name("ec2-kinesis-role")
            .role_name("ec2-kinesis-role")
            .send()
            .await
            .unwrap();
        // 3. The instance, with the role as its profile; the agent was set up by hand.
        let run = ec2
            .run_instances()
            .image_id("ami-087fc0fcee2c7570a")
            .instance_type(aws_sdk_ec2::types::InstanceType::T2Micro)
            .min_count(1)
            .max_count(1)
            .iam_instance_profile(
                aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                    .name("ec2-kinesis-role")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let instance = run.instances()[0].instance_id().unwrap().to_string();
        let other = ec2
            .run_instances()
            .image_id("ami-087fc0fcee2c7570a")
            .instance_type(aws_sdk_ec2::types::InstanceType::T2Micro)
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
        let other = other.instances()[0].instance_id().unwrap().to_string();
        // 4. The on-demand stream (and another one nobody names).
        for name in [&lab.stream, &lab.other_stream] {
            kinesis
                .create_stream()
                .stream_name(name)
                .stream_mode_details(
                    aws_sdk_kinesis::types::StreamModeDetails::builder()
                        .stream_mode(aws_sdk_kinesis::types::StreamMode::OnDemand)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
        for b in [&lab.bucket, &lab.other_bucket] {
            s3.create_bucket()
                .bucket(b)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        // 5. The delivery, with the role the console creates silently, and error logging.
        let role = iam
            .create_role()
            .role_name("KinesisFirehoseServiceRole-KDS-S3-wea-eu-west-1-1")
            .path("/service-role/")
            .assume_role_policy_document(FIREHOSE_TRUST)
            .send()
            .await
            .unwrap();
        let role_arn = role.role().unwrap().arn().to_string();
        let group = format!("/aws/kinesisfirehose/{}", lab.delivery);
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .unwrap();
        let account = &sb.account_id;
        firehose
            .create_delivery_stream()
            .delivery_stream_name(&lab.delivery)
            .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
            .kinesis_stream_source_configuration(
                KinesisStreamSourceConfiguration::builder()
                    .kinesis_stream_arn(format!(
                        "arn:aws:kinesis:{REGION}:{account}:stream/{}",
                        lab.stream
                    ))
                    .role_arn(&role_arn)
                    .build()
                    .unwrap(),
            )
            .extended_s3_destination_configuration(
                ExtendedS3DestinationConfiguration::builder()
                    .role_arn(&role_arn)
                    .bucket_arn(format!("arn:aws:s3:::{}", lab.bucket))
                    .buffering_hints(
                        BufferingHints::builder()
                            .size_in_mbs(5)
                            .interval_in_seconds(300)
                            .build(),
                    )
                    .compression_format(CompressionFormat::Uncompressed)
                    .cloud_watch_logging_options(
                        CloudWatchLoggingOptions::builder()
                            .enabled(true)
                            .log_group_name(&group)
                            .log_stream_name("DestinationDelivery")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        (instance, other)
    });
    Lab {
        instance,
        other_instance,
        ..lab
    }
}

/// Whether a call creates, deletes or replaces something.
fn is_lifecycle(c: &Call) -> bool {
    let a = c.action.as_str();
    (a.contains("Create") && a != "CreateTags")
        || a.contains("Delete")
        || a == "RunInstances"
        || a == "TerminateInstances"
        || (c.service == "s3" && (a == "PUT" || a.starts_with("DELETE")))
}

fn instance_state(sb: &Sandbox, id: &str) -> String {
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(sb, REGION));
        let out = ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        let i = &out.reservations()[0].instances()[0];
        i.state().unwrap().name().unwrap().as_str().to_string()
    })
}

fn stream_names(sb: &Sandbox) -> Vec<String> {
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(sb, REGION));
        k.list_streams()
            .send()
            .await
            .unwrap()
            .stream_names()
            .to_vec()
    })
}

fn bucket_names(sb: &Sandbox) -> Vec<String> {
    rt().block_on(async {
        let out = sb.s3().list_buckets().send().await.unwrap();
        out.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect()
    })
}

/// The whole path: a spec written from the console's lab validates and names every resource;
/// adopt only tags and changes in place; apply then plan shows nothing; the instance keeps its
/// id; destroy removes what was adopted and nothing that was not named.
#[test]
fn the_console_lab_is_written_adopted_applied_and_destroyed() {
    let sb = Sandbox::passthrough();
    let lab = console_lab(&sb);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("lab.yaml");
    let spec = p(&spec).to_string();
    ok(
        &sb,
        &[
            "init",
            "--from-live",
            "--region",
            REGION,
            "--delivery",
            &lab.delivery,
            "--instance",
            &lab.instance,
            "--stack",
            "console-lab",
            &spec,
        ],
    );
    let text = std::fs::read_to_string(&spec).unwrap();
    for name in [&lab.stream, &lab.bucket, &lab.delivery, &lab.instance] {
        assert!(text.contains(name.as_str()), "{name} missing:\n{text}");
    }
    // The host adopts the instance, uncommented: no user-data, so the flows are a placeholder.
    assert!(
        text.contains(&format!("    instance_id: {}\n", lab.instance))
            && text.contains("    instance_type: \"t2.micro\"")
            && text.contains("    image: \"ami-087fc0fcee2c7570a\"")
            && text.contains("FILL IN"),
        "{text}"
    );
    assert!(!text.contains(&lab.other_instance), "{text}");
    assert!(
        text.contains("managed policy AmazonKinesisFullAccess on role ec2-kinesis-role"),
        "{text}"
    );
    ok(&sb, &["validate", &spec]);
    // An existing file is not overwritten.
    let again = ss(
        &sb,
        &[
            "init",
            "--from-live",
            "--region",
            REGION,
            "--delivery",
            &lab.delivery,
            &spec,
        ],
    );
    assert_eq!(again.status.code(), Some(1), "{}", text_of(&again));

    // Adopt: tags and in-place updates only.
    sb.proxy.reset_calls();
    let out = ok(&sb, &["adopt", "--auto-approve", "--json", &spec]);
    let writes = sb.proxy.write_calls();
    let lifecycle: Vec<String> = writes
        .iter()
        .filter(|c| is_lifecycle(c))
        .map(Call::to_string)
        .collect();
    assert!(lifecycle.is_empty(), "{lifecycle:?}\n{out}");
    let names = sb.proxy.write_call_names();
    // The instance: tagged, and nothing else (its profile is swapped at apply).
    let ec2_writes: Vec<&String> = names.iter().filter(|n| n.starts_with("ec2:")).collect();
    assert_eq!(ec2_writes, vec!["ec2:CreateTags"], "{out}");
    assert_eq!(instance_state(&sb, &lab.instance), "running");
    for tagging in [
        "kinesis:AddTagsToStream",
        "firehose:TagDeliveryStream",
        "s3:PUT ?tagging",
        "logs:TagResource",
    ] {
        assert!(
            names.iter().any(|n| n == tagging),
            "{tagging} not in {names:?}"
        );
    }
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["adopted"].as_array().unwrap().len(), 5, "{out}");
    assert!(
        out.contains("a tightening: instance profile ec2-kinesis-role")
            && out.contains("not managed by streamstack"),
        "{out}"
    );

    // The ordinary plan and apply manage them now: a new least-privilege delivery role, the
    // delivery pointed at it in place; nothing replaced.
    let plan = plan_json(&sb, std::path::Path::new(&spec));
    let acts = actions(&plan);
    assert!(
        acts.iter().all(|(_, a)| a == "create" || a == "update"),
        "{acts:?}"
    );
    let host = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "host.kinesis-agent" || c["live_id"] == lab.instance.as_str())
        .unwrap_or_else(|| panic!("no change to the instance: {plan}"));
    assert_eq!(host["action"], "update", "{host}");
    assert!(
        host["reason"]
            .as_str()
            .is_some_and(|r| r.contains("derived least-privilege profile")),
        "{host}"
    );
    sb.proxy.reset_calls();
    ok(&sb, &["apply", "--auto-approve", &spec]);
    let names = sb.proxy.write_call_names();
    assert!(
        !names
            .iter()
            .any(|n| n == "ec2:RunInstances" || n == "ec2:TerminateInstances"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n == "ec2:ReplaceIamInstanceProfileAssociation"),
        "{names:?}"
    );
    let o = ss(&sb, &["plan", "--detailed-exitcode", &spec]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    assert_eq!(instance_state(&sb, &lab.instance), "running");

    // Destroy removes what was adopted, not what nobody named.
    ok(&sb, &["destroy", "--auto-approve", &spec]);
    let streams = stream_names(&sb);
    assert!(!streams.contains(&lab.stream), "{streams:?}");
    assert!(streams.contains(&lab.other_stream), "{streams:?}");
    let buckets = bucket_names(&sb);
    assert!(!buckets.contains(&lab.bucket), "{buckets:?}");
    assert!(buckets.contains(&lab.other_bucket), "{buckets:?}");
    assert_eq!(instance_state(&sb, &lab.instance), "terminated");
    assert_eq!(instance_state(&sb, &lab.other_instance), "running");
    // The console's role and profile are not the stack's: left as they are.
    rt().block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk(&sb, REGION));
        iam.get_instance_profile()
            .instance_profile_name("ec2-kinesis-role")
            .send()
            .await
            .unwrap();
        iam.get_role()
            .role_name("ec2-kinesis-role")
            .send()
            .await
            .unwrap();
    });
}

fn text_of(o: &std::process::Output) -> String {
    text(o)
}

/// A stream tagged by another stack is refused, naming that stack, before any write.
#[test]
fn a_resource_tagged_by_another_stack_is_refused_with_no_write() {
    let sb = Sandbox::passthrough();
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(&sb, REGION));
        k.create_stream()
            .stream_name("shared-weather")
            .shard_count(1)
            .send()
            .await
            .unwrap();
        k.add_tags_to_stream()
            .stream_name("shared-weather")
            .tags("streamstack:stack", "other-lab")
            .send()
            .await
            .unwrap();
        k.create_stream()
            .stream_name("untagged-weather")
            .shard_count(1)
            .send()
            .await
            .unwrap();
    });
    let spec = spec_file(&format!(
        "version: 1\nstack: mine\nregion: {REGION}\nstreams:\n  \
         a: {{ name: shared-weather, mode: provisioned, shards: 1, encryption: none }}\n  \
         b: {{ name: untagged-weather, mode: provisioned, shards: 1, encryption: none }}\n"
    ));
    sb.proxy.reset_calls();
    let o = ss(&sb, &["adopt", "--auto-approve", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stream.a (shared-weather) is owned by stack other-lab"),
        "{}",
        text(&o)
    );
    let writes = sb.proxy.write_call_names();
    assert!(writes.is_empty(), "{writes:?}");
}
