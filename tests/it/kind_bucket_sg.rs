//! Buckets and security groups against moto: create → read equals desired, in-place updates
//! converge, same-named foreign resources are found and marked not ours, and bucket deletion
//! respects `force_destroy`.

use std::time::Duration;

use crate::support::moto::REGION;
use crate::support::Sandbox;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, Tag, Tagging};
use streamstack::events::{Event, Events};
use streamstack::kinds::bucket::BucketProps;
use streamstack::kinds::{bucket, security_group, Cx, Live, Timeouts};
use streamstack::model::{Address, Kind, Model, Props, Resource};

const STACK: &str = "t1";

fn cx(sb: &Sandbox) -> Cx {
    sb.cx(STACK)
}

fn model(sb: &Sandbox, text: &str) -> Model {
    sb.model(text)
}

fn res<'m>(m: &'m Model, kind: Kind, key: &str) -> &'m Resource {
    m.get(&Address::new(kind, key))
        .unwrap_or_else(|| panic!("{}.{key} not in the model", kind.as_str()))
}

/// Props and tags as the planner compares them.
fn assert_in_sync(live: &Live, want: &Resource) {
    assert_eq!(live.resource.address, want.address);
    assert_eq!(live.resource.name, want.name);
    assert_eq!(live.resource.props, want.props, "props of {}", want.address);
    assert_eq!(live.resource.tags, want.tags, "tags of {}", want.address);
    assert!(live.ours, "{} should be ours", want.address);
}

const BUCKETS_V1: &str = r#"
version: 1
stack: t1
buckets:
  logs:
    expire_after_days: 3
  vers:
    force_destroy: true
    versioning: true
"#;

const BUCKETS_V2: &str = r#"
version: 1
stack: t1
tags:
  team: data
buckets:
  logs:
    versioning: true
    expire_after_days: 10
  vers:
    force_destroy: true
    versioning: false
"#;

#[tokio::test]
async fn bucket_create_read_update_and_guarded_delete() {
    let sb = Sandbox::passthrough();
    let cx = cx(&sb);
    let m1 = model(&sb, BUCKETS_V1);
    let logs = res(&m1, bucket::KIND, "logs");
    let vers = res(&m1, bucket::KIND, "vers");

    assert_eq!(bucket::read(&cx, &logs.name, &m1).await.unwrap(), None);
    assert!(bucket::discover(&cx, &m1).await.unwrap().is_empty());

    bucket::create(&cx, logs, &m1).await.unwrap();
    bucket::create(&cx, vers, &m1).await.unwrap();
    let live = bucket::read(&cx, &logs.name, &m1)
        .await
        .unwrap()
        .expect("logs exists");
    assert_in_sync(&live, logs);
    assert_eq!(live.id, logs.name);
    let live_vers = bucket::read(&cx, &vers.name, &m1)
        .await
        .unwrap()
        .expect("vers exists");
    assert_in_sync(&live_vers, vers);

    let mut found = bucket::discover(&cx, &m1).await.unwrap();
    found.sort_by(|a, b| a.address().cmp(b.address()));
    assert_eq!(found.len(), 2);
    assert_in_sync(&found[0], logs);
    assert_in_sync(&found[1], vers);

    // Creating again (an interrupted earlier run) finishes instead of failing.
    bucket::create(&cx, logs, &m1).await.unwrap();

    // Versioning on, lifecycle changed, tags added; versioning off (= suspended) on the other.
    let m2 = model(&sb, BUCKETS_V2);
    for key in ["logs", "vers"] {
        let want = res(&m2, bucket::KIND, key);
        let before = bucket::read(&cx, &want.name, &m2).await.unwrap().unwrap();
        assert_ne!(before.resource, *want);
        bucket::update(&cx, want, &before).await.unwrap();
        let after = bucket::read(&cx, &want.name, &m2).await.unwrap().unwrap();
        assert_in_sync(&after, want);
    }
    // And back: lifecycle removed.
    let m3 = model(&sb, &BUCKETS_V2.replace("    expire_after_days: 10\n", ""));
    let logs3 = res(&m3, bucket::KIND, "logs");
    assert_eq!(logs3.props, {
        let mut p = res(&m2, bucket::KIND, "logs")
            .props
            .get::<BucketProps>()
            .cloned()
            .expect("bucket props");
        p.expire_after_days = None;
        Props::new(p)
    });
    let before = bucket::read(&cx, &logs3.name, &m3).await.unwrap().unwrap();
    bucket::update(&cx, logs3, &before).await.unwrap();
    assert_in_sync(
        &bucket::read(&cx, &logs3.name, &m3).await.unwrap().unwrap(),
        logs3,
    );

    // Without force_destroy a bucket holding objects is refused, and nothing is deleted.
    let s3 = sb.s3();
    s3.put_object()
        .bucket(&logs3.name)
        .key("a/b.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let live = bucket::read(&cx, &logs3.name, &m3).await.unwrap().unwrap();
    let err = bucket::delete(&cx, &live).await.unwrap_err();
    assert!(
        matches!(err, streamstack::Error::Resource { .. }),
        "a refusal of streamstack's own, not an AWS error: {err:?}"
    );
    assert!(err.to_string().contains("holds objects"), "{err}");
    assert!(err.to_string().contains("force_destroy"), "{err}");
    s3.head_object()
        .bucket(&logs3.name)
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    assert!(bucket::read(&cx, &logs3.name, &m3).await.unwrap().is_some());

    // Emptied by hand, it goes.
    s3.delete_object()
        .bucket(&logs3.name)
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    let versions = s3
        .list_object_versions()
        .bucket(&logs3.name)
        .send()
        .await
        .unwrap();
    for v in versions.versions() {
        s3.delete_object()
            .bucket(&logs3.name)
            .key(v.key().unwrap())
            .version_id(v.version_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    for d in versions.delete_markers() {
        s3.delete_object()
            .bucket(&logs3.name)
            .key(d.key().unwrap())
            .version_id(d.version_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    bucket::delete(&cx, &live).await.unwrap();
    assert_eq!(bucket::read(&cx, &logs3.name, &m3).await.unwrap(), None);
    // Deleting what is gone is fine.
    bucket::delete(&cx, &live).await.unwrap();
}

#[tokio::test]
async fn bucket_force_destroy_empties_versions_markers_and_uploads() {
    let sb = Sandbox::passthrough();
    let cx = cx(&sb);
    let m = model(&sb, BUCKETS_V1);
    let vers = res(&m, bucket::KIND, "vers");
    bucket::create(&cx, vers, &m).await.unwrap();
    let s3 = sb.s3();
    for i in 0..5 {
        for key in ["x/one.log", "x/two.log", "three.log"] {
            s3.put_object()
                .bucket(&vers.name)
                .key(key)
                .body(ByteStream::from(format!("{key} v{i}").into_bytes()))
                .send()
                .await
                .unwrap();
        }
    }
    // Delete markers on top of the versions.
    s3.delete_object()
        .bucket(&vers.name)
        .key("x/one.log")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket(&vers.name)
        .key("three.log")
        .send()
        .await
        .unwrap();
    s3.create_multipart_upload()
        .bucket(&vers.name)
        .key("big.bin")
        .send()
        .await
        .unwrap();
    let listed = s3
        .list_object_versions()
        .bucket(&vers.name)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.versions().len(), 15);
    assert_eq!(listed.delete_markers().len(), 2);

    let live = bucket::read(&cx, &vers.name, &m).await.unwrap().unwrap();
    assert!(live
        .resource
        .props
        .get::<BucketProps>()
        .is_some_and(|p| p.force_destroy));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reporting = Cx {
        events: Events::new(tx),
        timeouts: Timeouts {
            progress_every: Duration::ZERO,
            ..cx.timeouts
        },
        ..cx.clone()
    };
    bucket::delete(&reporting, &live).await.unwrap();
    drop(reporting);
    // Every event was sent before delete returned: take them without waiting for more.
    let mut progress = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let Event::Progress {
            address,
            waiting_for,
            ..
        } = e
        {
            assert_eq!(address, vers.address);
            progress.push(waiting_for);
        }
    }
    assert!(
        progress.iter().any(|p| p.starts_with("bucket emptied")),
        "{progress:?}"
    );
    assert_eq!(bucket::read(&cx, &vers.name, &m).await.unwrap(), None);
    let err = s3
        .head_bucket()
        .bucket(&vers.name)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test]
async fn bucket_discover_marks_foreign_and_finds_removed() {
    let sb = Sandbox::passthrough();
    let cx = cx(&sb);
    let m = model(&sb, BUCKETS_V1);
    let logs = res(&m, bucket::KIND, "logs");
    let s3 = sb.s3();
    let make = |name: String| {
        let s3 = s3.clone();
        async move {
            s3.create_bucket()
                .bucket(&name)
                .create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(REGION))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    };
    // Same name as a desired bucket, made by someone else (no tags).
    make(logs.name.clone()).await;
    // Stack-prefixed but untagged: not ours, not desired → not reported.
    let stranger = format!("t1-stranger-{}", sb.account_id);
    make(stranger.clone()).await;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    let tag_bucket = |name: String, stack: &'static str, address: &'static str| {
        let s3 = s3.clone();
        async move {
            s3.put_bucket_tagging()
                .bucket(&name)
                .tagging(
                    Tagging::builder()
                        .tag_set(tag("streamstack:stack", stack))
                        .tag_set(tag("streamstack:address", address))
                        .tag_set(tag("streamstack:force-destroy", "true"))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
    };
    // Another stack's bucket whose name happens to start with `t1-`: not reported.
    let other_stack = format!("t1-other-{}", sb.account_id);
    make(other_stack.clone()).await;
    tag_bucket(other_stack, "t1x", "bucket.other").await;
    // Ours, but no longer in the spec: found by its tag, addressed by its address tag.
    let removed = format!("t1-old-{}", sb.account_id);
    make(removed.clone()).await;
    tag_bucket(removed.clone(), "t1", "bucket.old").await;
    // Tagged as ours but in another region (another deployment of the same stack name): not
    // this stack's.
    let far = format!("t1-far-{}", sb.account_id);
    let far_s3 = crate::support::moto::s3_client(&crate::support::moto::sdk_config(
        &sb.endpoint(),
        "us-west-2",
    ));
    far_s3
        .create_bucket()
        .bucket(&far)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from("us-west-2"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    far_s3
        .put_bucket_tagging()
        .bucket(&far)
        .tagging(
            Tagging::builder()
                .tag_set(tag("streamstack:stack", "t1"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let mut found = bucket::discover(&cx, &m).await.unwrap();
    found.sort_by(|a, b| a.address().cmp(b.address()));
    let names: Vec<&str> = found.iter().map(|l| l.resource.name.as_str()).collect();
    assert_eq!(names, [logs.name.as_str(), removed.as_str()]);
    assert_eq!(found[0].address(), &logs.address);
    assert!(!found[0].ours);
    assert!(found[0].resource.tags.is_empty());
    assert_eq!(found[1].address(), &Address::new(bucket::KIND, "old"));
    assert!(found[1].ours);
    assert!(found[1]
        .resource
        .props
        .get::<BucketProps>()
        .is_some_and(|p| p.force_destroy));

    // Creating the desired bucket over the foreign one is refused.
    let err = bucket::create(&cx, logs, &m).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is not tagged streamstack:stack=t1"),
        "{err}"
    );
    assert!(s3
        .get_bucket_tagging()
        .bucket(&logs.name)
        .send()
        .await
        .is_err());
}

const HOSTS: &str = r#"
version: 1
stack: t1
streams:
  events: {}
hosts:
  collector:
    instance_type: t3.micro
    image: al2023
    ssh:
      from: [203.0.113.4/32, "2001:DB8::/32", 10.0.0.0/8]
    flows:
      - files: /var/log/app/*.log
        to: events
        format: lines
"#;

async fn rules_on_22(sb: &Sandbox, id: &str) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&sb.config);
    let out = ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .unwrap();
    let g = &out.security_groups()[0];
    let mut cidrs: Vec<String> = g
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            assert_eq!(
                (p.ip_protocol(), p.from_port(), p.to_port()),
                (Some("tcp"), Some(22), Some(22))
            );
            p.ip_ranges()
                .iter()
                .map(|r| r.cidr_ip().unwrap().to_string())
                .chain(
                    p.ipv6_ranges()
                        .iter()
                        .map(|r| r.cidr_ipv6().unwrap().to_string()),
                )
                .collect::<Vec<_>>()
        })
        .collect();
    cidrs.sort();
    cidrs
}

#[tokio::test]
async fn security_group_create_read_update_delete() {
    let sb = Sandbox::passthrough();
    let cx = cx(&sb);
    let m = model(&sb, HOSTS);
    let sg = res(&m, security_group::KIND, "collector");
    assert_eq!(sg.name, "t1-collector-ssh");
    assert!(security_group::discover(&cx, &m).await.unwrap().is_empty());

    security_group::create(&cx, sg, &m).await.unwrap();
    let found = security_group::discover(&cx, &m).await.unwrap();
    assert_eq!(found.len(), 1);
    // Spec order (not sorted, IPv6 in capitals) is kept when the sets agree.
    assert_in_sync(&found[0], sg);
    assert!(found[0].id.starts_with("sg-"));
    assert_eq!(
        security_group::read(&cx, &sg.name, &m)
            .await
            .unwrap()
            .as_ref(),
        Some(&found[0])
    );

    // In the default VPC, with the default egress rule kept.
    let ec2 = aws_sdk_ec2::Client::new(&sb.config);
    let g = ec2
        .describe_security_groups()
        .group_ids(&found[0].id)
        .send()
        .await
        .unwrap();
    let g = &g.security_groups()[0];
    let default_vpc = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("isDefault")
                .values("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(g.vpc_id(), default_vpc.vpcs()[0].vpc_id());
    assert!(!g.ip_permissions_egress().is_empty());

    // One CIDR removed, one added, a tag added.
    let text2 = HOSTS
        .replace(
            "[203.0.113.4/32, \"2001:DB8::/32\", 10.0.0.0/8]",
            "[10.0.0.0/8, 198.51.100.0/24, \"2001:db8::/32\"]",
        )
        .replace("stack: t1\n", "stack: t1\ntags: { team: data }\n");
    let m2 = model(&sb, &text2);
    let sg2 = res(&m2, security_group::KIND, "collector");
    let before = security_group::discover(&cx, &m2).await.unwrap().remove(0);
    assert_ne!(before.resource, *sg2);
    security_group::update(&cx, sg2, &before).await.unwrap();
    let after = security_group::discover(&cx, &m2).await.unwrap().remove(0);
    assert_in_sync(&after, sg2);
    assert_eq!(after.id, before.id);
    let rules = rules_on_22(&sb, &after.id).await;
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert!(rules.contains(&"198.51.100.0/24".to_string()));
    assert!(!rules.contains(&"203.0.113.4/32".to_string()));

    // Tag removed again.
    let before = after;
    security_group::update(&cx, sg, &before).await.unwrap();
    let after = security_group::discover(&cx, &m).await.unwrap().remove(0);
    assert_in_sync(&after, sg);

    security_group::delete(&cx, &after).await.unwrap();
    assert!(security_group::discover(&cx, &m).await.unwrap().is_empty());
    security_group::delete(&cx, &after).await.unwrap();
}

#[tokio::test]
async fn security_group_foreign_same_name_and_subnet_vpc() {
    let sb = Sandbox::passthrough();
    let cx = cx(&sb);
    let ec2 = aws_sdk_ec2::Client::new(&sb.config);
    let m = model(&sb, HOSTS);
    let sg = res(&m, security_group::KIND, "collector");

    // Someone else's group with our name, in the default VPC.
    let foreign = ec2
        .create_security_group()
        .group_name(&sg.name)
        .description("not streamstack")
        .send()
        .await
        .unwrap();
    let found = security_group::discover(&cx, &m).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(!found[0].ours);
    assert_eq!(found[0].address(), &sg.address);
    assert_eq!(Some(found[0].id.as_str()), foreign.group_id());

    // A host in its own subnet gets its group in that subnet's VPC (no clash with the foreign
    // group, whose name is only unique per VPC).
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.9.1.0/24")
        .send()
        .await
        .unwrap();
    let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap();
    let text = HOSTS.replace(
        "    image: al2023\n",
        &format!("    image: al2023\n    subnet: {subnet_id}\n"),
    );
    let m2 = model(&sb, &text);
    let sg2 = res(&m2, security_group::KIND, "collector");
    security_group::create(&cx, sg2, &m2).await.unwrap();
    let mut found = security_group::discover(&cx, &m2).await.unwrap();
    assert_eq!(found.len(), 2);
    found.sort_by_key(|l| !l.ours);
    assert_in_sync(&found[0], sg2);
    assert!(!found[1].ours);
    let g = ec2
        .describe_security_groups()
        .group_ids(&found[0].id)
        .send()
        .await
        .unwrap();
    assert_eq!(g.security_groups()[0].vpc_id(), Some(vpc_id.as_str()));
    // read prefers ours among same-named groups.
    let read = security_group::read(&cx, &sg2.name, &m2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.id, found[0].id);
}
