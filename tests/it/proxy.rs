//! The realism proxy (tests/it/support/proxy.rs) against a real moto, driven by the real SDK clients:
//! every emulated AWS window, the refusals during them, the call accounting and the holds.
//!
//! Each test runs in its own moto account (a `Sandbox`), so they run in parallel. Windows are
//! counted in calls, so every step below is exact whatever the load of the machine: "the first
//! K describes say CREATING, the next says ACTIVE".

use std::time::Duration;

use crate::support::moto::REGION;
use crate::support::proxy::{Call, ProxyConfig};
use crate::support::wait::PATIENCE;
use crate::support::Sandbox;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{IamInstanceProfileSpecification, InstanceStateName, InstanceType};
use aws_sdk_firehose::types::{
    DeliveryStreamStatus, DeliveryStreamType, ExtendedS3DestinationConfiguration,
    KinesisStreamSourceConfiguration,
};
use aws_sdk_kinesis::types::StreamStatus;
use base64::Engine as _;

const TRUST_FIREHOSE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"firehose.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const TRUST_EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesis:DescribeStream","kinesis:GetRecords","kinesis:GetShardIterator","s3:PutObject"],"Resource":"*"}]}"#;
const AMI_PARAMETER: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

async fn stream_status(kinesis: &aws_sdk_kinesis::Client, name: &str) -> StreamStatus {
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .expect("DescribeStreamSummary");
    summary
        .stream_description_summary()
        .expect("summary")
        .stream_status()
        .clone()
}

async fn full_stream_status(kinesis: &aws_sdk_kinesis::Client, name: &str) -> StreamStatus {
    let out = kinesis
        .describe_stream()
        .stream_name(name)
        .send()
        .await
        .expect("DescribeStream");
    out.stream_description()
        .expect("description")
        .stream_status()
        .clone()
}

async fn delivery_status(firehose: &aws_sdk_firehose::Client, name: &str) -> DeliveryStreamStatus {
    let out = firehose
        .describe_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
        .expect("DescribeDeliveryStream");
    out.delivery_stream_description()
        .expect("description")
        .delivery_stream_status()
        .clone()
}

async fn instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> (InstanceStateName, i32) {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("DescribeInstances");
    let instance = &out.reservations()[0].instances()[0];
    let state = instance.state().expect("state");
    (
        state.name().expect("state name").clone(),
        state.code().expect("state code"),
    )
}

#[tokio::test]
async fn kinesis_stream_is_creating_then_updating_then_active() {
    let sb = Sandbox::new(ProxyConfig {
        stream_creating: 3,
        stream_updating: 3,
        ..Default::default()
    });
    let kinesis = aws_sdk_kinesis::Client::new(&sb.config);

    kinesis
        .create_stream()
        .stream_name("logs")
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream");
    // The window's three answers: a refusal, then two describes.
    let err = kinesis
        .increase_stream_retention_period()
        .stream_name("logs")
        .retention_period_hours(48)
        .send()
        .await
        .expect_err("no updates while CREATING");
    let err = err.into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "Stream logs under account {} not ACTIVE, instead in state CREATING",
            sb.account_id
        )),
        "{message}"
    );
    assert_eq!(
        stream_status(&kinesis, "logs").await,
        StreamStatus::Creating
    );
    assert_eq!(
        full_stream_status(&kinesis, "logs").await,
        StreamStatus::Creating,
        "DescribeStream counts as well"
    );
    assert_eq!(stream_status(&kinesis, "logs").await, StreamStatus::Active);
    kinesis
        .increase_stream_retention_period()
        .stream_name("logs")
        .retention_period_hours(48)
        .send()
        .await
        .expect("IncreaseStreamRetentionPeriod once ACTIVE");
    let err = kinesis
        .update_shard_count()
        .stream_name("logs")
        .target_shard_count(2)
        .scaling_type("UNIFORM_SCALING".into())
        .send()
        .await;
    let err = err
        .expect_err("no updates while UPDATING")
        .into_service_error();
    assert!(
        err.is_resource_in_use_exception() && err.to_string().contains("instead in state UPDATING"),
        "{err:?}"
    );
    assert_eq!(
        full_stream_status(&kinesis, "logs").await,
        StreamStatus::Updating
    );
    assert_eq!(
        stream_status(&kinesis, "logs").await,
        StreamStatus::Updating
    );
    let summary = kinesis
        .describe_stream_summary()
        .stream_name("logs")
        .send()
        .await
        .expect("summary");
    let summary = summary.stream_description_summary().expect("summary");
    assert_eq!(summary.stream_status(), &StreamStatus::Active);
    assert_eq!(
        summary.retention_period_hours(),
        48,
        "the update itself reached moto"
    );
    // Every emulated answer is accounted for.
    assert_eq!(sb.proxy.emulated("CREATING"), 2);
    assert_eq!(sb.proxy.emulated("UPDATING"), 2);
    assert_eq!(sb.proxy.emulated("in-use"), 2);
}

#[tokio::test]
async fn kinesis_stream_is_deleting_after_delete_then_gone() {
    let sb = Sandbox::new(ProxyConfig {
        stream_deleting: 3,
        ..Default::default()
    });
    let kinesis = aws_sdk_kinesis::Client::new(&sb.config);
    kinesis
        .create_stream()
        .stream_name("doomed")
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream");
    assert_eq!(
        stream_status(&kinesis, "doomed").await,
        StreamStatus::Active,
        "no creating window configured"
    );

    kinesis
        .delete_stream()
        .stream_name("doomed")
        .send()
        .await
        .expect("DeleteStream");
    let summary = kinesis
        .describe_stream_summary()
        .stream_name("doomed")
        .send()
        .await
        .expect("synthesised summary");
    let summary = summary.stream_description_summary().expect("summary");
    assert_eq!(summary.stream_status(), &StreamStatus::Deleting);
    assert_eq!(
        summary.stream_arn(),
        format!("arn:aws:kinesis:{REGION}:{}:stream/doomed", sb.account_id)
    );
    let create = kinesis
        .create_stream()
        .stream_name("doomed")
        .shard_count(1)
        .send()
        .await;
    let err = create
        .expect_err("the name is in use while DELETING")
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    assert_eq!(
        full_stream_status(&kinesis, "doomed").await,
        StreamStatus::Deleting
    );

    let err = kinesis
        .describe_stream_summary()
        .stream_name("doomed")
        .send()
        .await
        .expect_err("gone");
    assert!(err.into_service_error().is_resource_not_found_exception());
    kinesis
        .create_stream()
        .stream_name("doomed")
        .shard_count(1)
        .send()
        .await
        .expect("name free again");
    assert_eq!(sb.proxy.emulated("DELETING"), 2);
    assert_eq!(sb.proxy.emulated("in-use"), 1);
}

/// Creates a Kinesis stream, a bucket and the Firehose role (with its policy); returns the ARNs.
async fn firehose_prerequisites(sb: &Sandbox, name: &str) -> (String, String, String) {
    let kinesis = aws_sdk_kinesis::Client::new(&sb.config);
    let iam = aws_sdk_iam::Client::new(&sb.config);
    kinesis
        .create_stream()
        .stream_name(name)
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream");
    let stream_arn = format!("arn:aws:kinesis:{REGION}:{}:stream/{name}", sb.account_id);
    let bucket = format!("{name}-{}", sb.account_id);
    sb.s3()
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .expect("CreateBucket");
    let role = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(TRUST_FIREHOSE)
        .send()
        .await;
    let role_arn = role
        .expect("CreateRole")
        .role()
        .expect("role")
        .arn()
        .to_owned();
    iam.put_role_policy()
        .role_name(name)
        .policy_name("delivery")
        .policy_document(POLICY)
        .send()
        .await
        .expect("PutRolePolicy");
    (stream_arn, format!("arn:aws:s3:::{bucket}"), role_arn)
}

async fn create_delivery_stream(
    firehose: &aws_sdk_firehose::Client,
    name: &str,
    (stream_arn, bucket_arn, role_arn): &(String, String, String),
) -> Result<(), aws_sdk_firehose::operation::create_delivery_stream::CreateDeliveryStreamError> {
    let source = KinesisStreamSourceConfiguration::builder()
        .kinesis_stream_arn(stream_arn)
        .role_arn(role_arn)
        .build();
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn(role_arn)
        .bucket_arn(bucket_arn)
        .build();
    firehose
        .create_delivery_stream()
        .delivery_stream_name(name)
        .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
        .kinesis_stream_source_configuration(source.expect("source"))
        .extended_s3_destination_configuration(destination.expect("destination"))
        .send()
        .await
        .map(drop)
        .map_err(|e| e.into_service_error())
}

/// The statuses of the calls of `service:Action`, with what the proxy emulated in each.
fn answers(sb: &Sandbox, call: &str) -> Vec<(u16, Option<&'static str>)> {
    sb.proxy
        .calls_of(call)
        .into_iter()
        .map(|c| (c.status, c.emulated))
        .collect()
}

#[tokio::test]
async fn firehose_cannot_assume_a_fresh_role_until_it_propagates() {
    let sb = Sandbox::new(ProxyConfig {
        role_propagation: 2,
        ..Default::default()
    });
    let firehose = aws_sdk_firehose::Client::new(&sb.config);
    let iam = aws_sdk_iam::Client::new(&sb.config);
    let prerequisites = firehose_prerequisites(&sb, "to-s3").await;

    // The first two creates naming the role (after its policy was put) are refused.
    for _ in 0..2 {
        let err = create_delivery_stream(&firehose, "to-s3", &prerequisites)
            .await
            .expect_err("role not yet usable");
        assert!(err.is_invalid_argument_exception(), "{err:?}");
        let expected = format!(
            "Firehose is unable to assume role {}. Please check the role provided.",
            prerequisites.2
        );
        assert!(err.to_string().contains(&expected), "{err}");
    }
    // A policy change restarts the propagation window.
    iam.put_role_policy()
        .role_name("to-s3")
        .policy_name("extra")
        .policy_document(POLICY)
        .send()
        .await
        .expect("PutRolePolicy");
    for _ in 0..2 {
        let err = create_delivery_stream(&firehose, "to-s3", &prerequisites)
            .await
            .expect_err("policy not yet visible");
        assert!(err.to_string().contains("unable to assume role"), "{err}");
    }

    create_delivery_stream(&firehose, "to-s3", &prerequisites)
        .await
        .expect("CreateDeliveryStream once propagated");
    assert_eq!(
        delivery_status(&firehose, "to-s3").await,
        DeliveryStreamStatus::Active
    );
    let refused = (400, Some("role-propagation"));
    assert_eq!(
        answers(&sb, "firehose:CreateDeliveryStream"),
        [refused, refused, refused, refused, (200, None)]
    );
}

#[tokio::test]
async fn firehose_delivery_stream_is_creating_then_active_then_deleting() {
    let sb = Sandbox::new(ProxyConfig {
        delivery_creating: 3,
        delivery_deleting: 1,
        ..Default::default()
    });
    let firehose = aws_sdk_firehose::Client::new(&sb.config);
    let prerequisites = firehose_prerequisites(&sb, "lifecycle").await;

    create_delivery_stream(&firehose, "lifecycle", &prerequisites)
        .await
        .expect("CreateDeliveryStream");
    let err = firehose
        .delete_delivery_stream()
        .delivery_stream_name("lifecycle")
        .send()
        .await;
    let err = err
        .expect_err("no delete while CREATING")
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    // The refusal was the first of the window's three answers.
    for _ in 0..2 {
        assert_eq!(
            delivery_status(&firehose, "lifecycle").await,
            DeliveryStreamStatus::Creating
        );
    }
    assert_eq!(
        delivery_status(&firehose, "lifecycle").await,
        DeliveryStreamStatus::Active
    );
    firehose
        .delete_delivery_stream()
        .delivery_stream_name("lifecycle")
        .send()
        .await
        .expect("DeleteDeliveryStream");
    let out = firehose
        .describe_delivery_stream()
        .delivery_stream_name("lifecycle")
        .send()
        .await
        .expect("synthesised");
    let description = out.delivery_stream_description().expect("description");
    assert_eq!(
        description.delivery_stream_status(),
        &DeliveryStreamStatus::Deleting
    );
    assert_eq!(
        description.delivery_stream_type(),
        &DeliveryStreamType::KinesisStreamAsSource
    );

    let err = firehose
        .describe_delivery_stream()
        .delivery_stream_name("lifecycle")
        .send()
        .await;
    assert!(err
        .expect_err("gone")
        .into_service_error()
        .is_resource_not_found_exception());
    assert_eq!(
        answers(&sb, "firehose:DescribeDeliveryStream"),
        [
            (200, Some("CREATING")),
            (200, Some("CREATING")),
            (200, None),
            (200, Some("DELETING")),
            (400, None)
        ]
    );
    assert_eq!(
        answers(&sb, "firehose:DeleteDeliveryStream"),
        [(400, Some("in-use")), (200, None)]
    );
}

#[tokio::test]
async fn ec2_refuses_a_fresh_profile_and_instances_pass_through_pending_and_shutting_down() {
    let sb = Sandbox::new(ProxyConfig {
        profile_propagation: 2,
        instance_pending: 2,
        instance_shutting_down: 1,
        ..Default::default()
    });
    let iam = aws_sdk_iam::Client::new(&sb.config);
    let ec2 = aws_sdk_ec2::Client::new(&sb.config);
    let ssm = aws_sdk_ssm::Client::new(&sb.config);
    let ami = ssm
        .get_parameter()
        .name(AMI_PARAMETER)
        .send()
        .await
        .expect("GetParameter");
    let ami = ami
        .parameter()
        .and_then(|p| p.value())
        .expect("AMI id")
        .to_owned();
    iam.create_role()
        .role_name("agent")
        .assume_role_policy_document(TRUST_EC2)
        .send()
        .await
        .expect("CreateRole");
    let profile = iam
        .create_instance_profile()
        .instance_profile_name("agent")
        .send()
        .await
        .expect("CreateInstanceProfile");
    let profile_arn = profile
        .instance_profile()
        .expect("profile")
        .arn()
        .to_owned();
    iam.add_role_to_instance_profile()
        .instance_profile_name("agent")
        .role_name("agent")
        .send()
        .await
        .expect("AddRole");

    let run = |profile: IamInstanceProfileSpecification| {
        ec2.run_instances()
            .image_id(&ami)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .iam_instance_profile(profile)
            .user_data(base64::engine::general_purpose::STANDARD.encode("#!/bin/bash\necho hi\n"))
            .send()
    };
    let by_name = IamInstanceProfileSpecification::builder()
        .name("agent")
        .build();
    let err = run(by_name.clone())
        .await
        .expect_err("profile not yet usable")
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert_eq!(
        err.message(),
        Some("Value (agent) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name")
    );
    let by_arn = IamInstanceProfileSpecification::builder()
        .arn(&profile_arn)
        .build();
    let err = run(by_arn)
        .await
        .expect_err("profile not yet usable")
        .into_service_error();
    assert!(
        err.message()
            .is_some_and(|m| m.contains("Invalid IAM Instance Profile ARN")),
        "{err:?}"
    );

    let out = run(by_name).await.expect("RunInstances once propagated");
    let id = out.instances()[0]
        .instance_id()
        .expect("instance id")
        .to_owned();
    for _ in 0..2 {
        assert_eq!(
            instance_state(&ec2, &id).await,
            (InstanceStateName::Pending, 0)
        );
    }
    assert_eq!(
        instance_state(&ec2, &id).await,
        (InstanceStateName::Running, 16)
    );
    ec2.terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("TerminateInstances");
    let status = ec2
        .describe_instance_status()
        .instance_ids(&id)
        .include_all_instances(true)
        .send()
        .await;
    let status = status.expect("DescribeInstanceStatus");
    let state = status.instance_statuses()[0].instance_state();
    let state = state.map(|s| (s.name().cloned(), s.code()));
    assert_eq!(
        state,
        Some((Some(InstanceStateName::ShuttingDown), Some(32))),
        "DescribeInstanceStatus is rewritten too"
    );
    assert_eq!(
        instance_state(&ec2, &id).await,
        (InstanceStateName::Terminated, 48)
    );
    let refused = (400, Some("profile-propagation"));
    assert_eq!(
        answers(&sb, "ec2:RunInstances"),
        [refused, refused, (200, None)]
    );
    assert_eq!(
        answers(&sb, "ec2:DescribeInstances"),
        [
            (200, Some("pending")),
            (200, Some("pending")),
            (200, None),
            (200, None)
        ]
    );
}

#[tokio::test]
async fn ec2_leaves_a_new_security_group_out_of_its_first_describes() {
    let sb = Sandbox::new(ProxyConfig {
        group_invisible: 2,
        ..Default::default()
    });
    let ec2 = aws_sdk_ec2::Client::new(&sb.config);
    let names = || async {
        let out = ec2
            .describe_security_groups()
            .send()
            .await
            .expect("DescribeSecurityGroups");
        let mut names: Vec<String> = out
            .security_groups()
            .iter()
            .filter_map(|g| g.group_name().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    assert_eq!(names().await, ["default"]);
    ec2.create_security_group()
        .group_name("fresh")
        .description("new")
        .send()
        .await
        .expect("CreateSecurityGroup");
    // Only the new group is left out, and only from answers that would list it.
    assert_eq!(names().await, ["default"]);
    let by_name = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("fresh")
                .build(),
        )
        .send()
        .await
        .expect("DescribeSecurityGroups by name");
    assert!(by_name.security_groups().is_empty(), "{by_name:?}");
    assert_eq!(names().await, ["default", "fresh"]);
    assert_eq!(
        answers(&sb, "ec2:DescribeSecurityGroups"),
        [
            (200, None),
            (200, Some("group-invisible")),
            (200, Some("group-invisible")),
            (200, None)
        ]
    );
}

/// A held call waits at the proxy, not yet forwarded, until its hold is released; other calls
/// go on meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_call_reaches_moto_only_when_released() {
    let sb = Sandbox::passthrough();
    let kinesis = aws_sdk_kinesis::Client::new(&sb.config);
    let hold = sb.proxy.hold("kinesis:CreateStream");
    let create = {
        let kinesis = kinesis.clone();
        tokio::spawn(async move {
            kinesis
                .create_stream()
                .stream_name("held")
                .shard_count(1)
                .send()
                .await
        })
    };
    let held = tokio::task::spawn_blocking(move || {
        let call = hold.wait_held(PATIENCE, || false);
        (hold, call)
    });
    let (hold, call) = held.await.expect("waiting thread");
    assert_eq!(call.as_deref(), Some("kinesis:CreateStream"));
    let listed = kinesis.list_streams().send().await.expect("ListStreams");
    assert!(
        listed.stream_names().is_empty(),
        "held, not yet forwarded: {listed:?}"
    );
    assert!(!create.is_finished());
    hold.release();
    create
        .await
        .expect("task")
        .expect("CreateStream once released");
    let listed = kinesis.list_streams().send().await.expect("ListStreams");
    assert_eq!(listed.stream_names(), ["held"]);

    // hold_nth counts every request from now on: the 2nd is the DescribeStreamSummary.
    let hold = sb.proxy.hold_nth(2);
    kinesis
        .list_streams()
        .send()
        .await
        .expect("1st: ListStreams");
    let describe = {
        let kinesis = kinesis.clone();
        tokio::spawn(async move {
            kinesis
                .describe_stream_summary()
                .stream_name("held")
                .send()
                .await
        })
    };
    let held = tokio::task::spawn_blocking(move || {
        let call = hold.wait_held(PATIENCE, || false);
        (hold, call)
    });
    let (hold, call) = held.await.expect("waiting thread");
    assert_eq!(call.as_deref(), Some("kinesis:DescribeStreamSummary"));
    drop(hold);
    describe
        .await
        .expect("task")
        .expect("answered once the hold is dropped");
}

fn call(service: &str, action: &str, is_write: bool) -> Call {
    Call {
        service: service.into(),
        action: action.into(),
        is_write,
        status: 200,
        emulated: None,
        lock: false,
    }
}

#[tokio::test]
async fn calls_are_counted_and_classified() {
    let sb = Sandbox::passthrough();
    let sts = aws_sdk_sts::Client::new(&sb.config);
    let kinesis = aws_sdk_kinesis::Client::new(&sb.config);
    let iam = aws_sdk_iam::Client::new(&sb.config);
    let s3 = sb.s3();
    let bucket = format!("accounting-{}", sb.account_id);

    let identity = sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(
        identity.account(),
        Some(sb.account_id.as_str()),
        "x-moto-account-id selects the account"
    );
    kinesis
        .create_stream()
        .stream_name("counted")
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream");
    kinesis
        .describe_stream_summary()
        .stream_name("counted")
        .send()
        .await
        .expect("DescribeStreamSummary");
    kinesis.list_streams().send().await.expect("ListStreams");
    iam.create_role()
        .role_name("counted")
        .assume_role_policy_document(TRUST_EC2)
        .send()
        .await
        .expect("CreateRole");
    iam.get_role()
        .role_name("counted")
        .send()
        .await
        .expect("GetRole");
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    s3.create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(location)
        .send()
        .await
        .expect("CreateBucket");
    s3.head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("HeadBucket");
    let tag = aws_sdk_s3::types::Tag::builder()
        .key("k")
        .value("v")
        .build()
        .expect("tag");
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(tag)
        .build()
        .expect("tagging");
    s3.put_bucket_tagging()
        .bucket(&bucket)
        .tagging(tagging)
        .send()
        .await
        .expect("PutBucketTagging");
    s3.get_bucket_tagging()
        .bucket(&bucket)
        .send()
        .await
        .expect("GetBucketTagging");
    s3.put_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .body("hello".as_bytes().to_vec().into())
        .send()
        .await
        .expect("PutObject");
    s3.list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    let id = aws_sdk_s3::types::ObjectIdentifier::builder()
        .key("a/b.txt")
        .build()
        .expect("id");
    let delete = aws_sdk_s3::types::Delete::builder()
        .objects(id)
        .build()
        .expect("delete");
    s3.delete_objects()
        .bucket(&bucket)
        .delete(delete)
        .send()
        .await
        .expect("DeleteObjects");
    s3.delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("DeleteBucket");

    let expected = vec![
        call("sts", "GetCallerIdentity", false),
        call("kinesis", "CreateStream", true),
        call("kinesis", "DescribeStreamSummary", false),
        call("kinesis", "ListStreams", false),
        call("iam", "CreateRole", true),
        call("iam", "GetRole", false),
        call("s3", "PUT", true),
        call("s3", "HEAD", false),
        Call {
            status: 204,
            ..call("s3", "PUT ?tagging", true)
        },
        call("s3", "GET ?tagging", false),
        call("s3", "PUT key", true),
        call("s3", "GET", false),
        call("s3", "POST ?delete", true),
        Call {
            status: 204,
            ..call("s3", "DELETE", true)
        },
    ];
    assert_eq!(sb.proxy.calls(), expected);
    assert_eq!(sb.proxy.write_calls().len(), 7);
    assert_eq!(sb.proxy.call_names()[1], "kinesis:CreateStream");

    sb.proxy.reset_calls();
    assert!(sb.proxy.calls().is_empty());
    kinesis
        .describe_stream_summary()
        .stream_name("counted")
        .send()
        .await
        .expect("DescribeStreamSummary");
    assert_eq!(sb.proxy.call_names(), ["kinesis:DescribeStreamSummary"]);
}

#[tokio::test]
async fn sandboxes_are_isolated_accounts() {
    let (a, b) = (Sandbox::passthrough(), Sandbox::passthrough());
    assert_ne!(a.account_id, b.account_id);
    let kinesis_a = aws_sdk_kinesis::Client::new(&a.config);
    let kinesis_b = aws_sdk_kinesis::Client::new(&b.config);
    kinesis_a
        .create_stream()
        .stream_name("same-name")
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream in A");
    kinesis_b
        .create_stream()
        .stream_name("same-name")
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream in B");
    let err = kinesis_b
        .delete_stream()
        .stream_name("same-name")
        .send()
        .await;
    err.expect("DeleteStream in B");
    assert_eq!(
        stream_status(&kinesis_a, "same-name").await,
        StreamStatus::Active,
        "A is untouched"
    );
}

#[tokio::test]
async fn s3_streaming_uploads_and_checksums_pass_through_byte_for_byte() {
    let sb = Sandbox::passthrough();
    let s3 = sb.s3();
    let bucket = format!("bodies-{}", sb.account_id);
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    s3.create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(location)
        .send()
        .await
        .expect("CreateBucket");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &data).expect("write temp file");
    let body = aws_sdk_s3::primitives::ByteStream::from_path(file.path())
        .await
        .expect("ByteStream");
    s3.put_object()
        .bucket(&bucket)
        .key("big.bin")
        .body(body)
        .send()
        .await
        .expect("aws-chunked PutObject");
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("big.bin")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("GetObject");
    assert_eq!(got.content_length(), Some(data.len() as i64));
    let bytes = got.body.collect().await.expect("read body").into_bytes();
    assert!(bytes == data, "object differs after the round trip");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(
        head.content_length(),
        Some(data.len() as i64),
        "HEAD keeps moto's content-length"
    );
}

/// Requests the proxy cannot make sense of are forwarded unchanged and never crash it.
#[tokio::test]
async fn odd_requests_are_forwarded() {
    use std::io::{Read, Write};
    let sb = Sandbox::passthrough();
    let address = sb.endpoint().trim_start_matches("http://").to_owned();
    let requests = [
        "GET /nonexistent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.DescribeStreamSummary\r\nAuthorization: garbage\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{oops".to_owned(),
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=a/b/eu-west-1/ec2/aws4_request\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 43\r\nConnection: close\r\n\r\nAction=RunInstances&IamInstanceProfile.Name".to_owned(),
    ];
    for request in requests {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect to proxy");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 "),
            "no HTTP answer to {request:?}: {answer:?}"
        );
        assert!(!answer.starts_with("HTTP/1.1 502"), "{answer}");
    }
    let names = sb.proxy.call_names();
    assert_eq!(
        names,
        [
            "unknown:GET /nonexistent",
            "unknown:DescribeStreamSummary",
            "ec2:RunInstances"
        ]
    );
}

#[tokio::test]
async fn quotas_throttle_like_aws_beyond_the_documented_rate() {
    let sb = Sandbox::new(ProxyConfig {
        quotas: true,
        ..Default::default()
    });
    // The buckets refill only when the test says time passed: exact counts on any machine.
    sb.proxy.freeze_clock();
    // No SDK retries: every answer is seen as the proxy gave it.
    let conf = aws_sdk_firehose::config::Builder::from(&sb.config)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let firehose = aws_sdk_firehose::Client::from_conf(conf);
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&sb.config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    // Firehose: a burst of 5, then 5 per second. Eight at once: three are refused.
    let answers =
        futures::future::join_all((0..8).map(|_| firehose.list_delivery_streams().send())).await;
    let refused: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err())
        .map(|e| {
            format!(
                "{:?} {}",
                e.code(),
                e.raw_response().map_or(0, |r| r.status().as_u16())
            )
        })
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r == "Some(\"ThrottlingException\") 400"),
        "{refused:?}"
    );
    // Kinesis counts each operation on its own: DescribeStreamSummary (20 per second) is not
    // charged for ListStreams (5), which says LimitExceededException beyond its quota.
    let answers = futures::future::join_all((0..8).map(|_| kinesis.list_streams().send())).await;
    let codes: Vec<Option<&str>> = answers
        .iter()
        .filter_map(|a| a.as_ref().err())
        .map(|e| e.code())
        .collect();
    assert_eq!(codes.len(), 3, "{codes:?}");
    assert!(
        codes.iter().all(|c| *c == Some("LimitExceededException")),
        "{codes:?}"
    );
    let throttled = sb.proxy.throttled();
    assert_eq!(
        throttled.len(),
        refused.len() + codes.len(),
        "{throttled:?}"
    );
    assert_eq!(sb.proxy.emulated("throttled"), 6);
    // Nothing refills while no time passes.
    let err = firehose
        .list_delivery_streams()
        .send()
        .await
        .expect_err("no token left");
    assert_eq!(err.code(), Some("ThrottlingException"));
    // After a second, the bucket has refilled to its burst of 5: five calls go through, the
    // sixth does not.
    sb.proxy.advance_clock(Duration::from_secs(1));
    for i in 0..5 {
        firehose
            .list_delivery_streams()
            .send()
            .await
            .unwrap_or_else(|e| panic!("call {i} within the quota: {e:?}"));
    }
    let err = firehose
        .list_delivery_streams()
        .send()
        .await
        .expect_err("beyond the refilled burst");
    assert_eq!(err.code(), Some("ThrottlingException"));
    // Without `quotas`, nothing is throttled.
    let free = Sandbox::passthrough();
    let firehose = aws_sdk_firehose::Client::from_conf(
        aws_sdk_firehose::config::Builder::from(&free.config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    for a in
        futures::future::join_all((0..8).map(|_| firehose.list_delivery_streams().send())).await
    {
        a.expect("no quota without ProxyConfig::quotas");
    }
    assert!(free.proxy.throttled().is_empty());
}
