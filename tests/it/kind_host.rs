//! The host kind (src/kinds/host.rs) against moto behind the realism proxy: create rides out
//! instance-profile propagation with one instance only, waits through `pending`, reads back
//! exactly the desired resource, repairs drift in place, and delete waits for `terminated`.

use crate::support::moto::REGION;
use crate::support::proxy::ProxyConfig;
use crate::support::Sandbox;
use aws_sdk_ec2::types::{Filter, HttpTokensState, InstanceStateName, Tag};
use streamstack::kinds::host::HostProps;
use streamstack::kinds::{host, Cx, Live};
use streamstack::model::{Address, Model, Resource, TAG_STACK};
use streamstack::spec::types::Image;

const STACK: &str = "t1";
const TRUST_EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

const SPEC: &str = r#"
version: 1
stack: t1
tags:
  team: data
  cost-center: "42"
streams:
  events: {}
hosts:
  collector:
    instance_type: t3.micro
    ssh: { from: 10.0.0.0/8 }
    flows:
      - files: /var/log/app/*.log
        to: events
        format: json
"#;

fn cx(sb: &Sandbox) -> Cx {
    sb.cx(STACK)
}

fn model(sb: &Sandbox, text: &str) -> Model {
    sb.model(text)
}

fn host_address() -> Address {
    Address::new(host::KIND, "collector")
}

fn host_props(r: &Resource) -> &HostProps {
    r.props.get::<HostProps>().expect("a host")
}

fn host_props_mut(r: &mut Resource) -> &mut HostProps {
    r.props.get_mut::<HostProps>().expect("a host")
}

/// The role and instance profile the host needs, made directly with IAM (as role.rs and
/// instance_profile.rs would), under the stack's IAM path.
async fn make_profile(cx: &Cx, name: &str) {
    let iam = &cx.clients.iam;
    iam.create_role()
        .role_name(name)
        .path(&cx.env.iam_path)
        .assume_role_policy_document(TRUST_EC2)
        .send()
        .await
        .expect("CreateRole");
    iam.create_instance_profile()
        .instance_profile_name(name)
        .path(&cx.env.iam_path)
        .send()
        .await
        .expect("CreateInstanceProfile");
    iam.add_role_to_instance_profile()
        .instance_profile_name(name)
        .role_name(name)
        .send()
        .await
        .expect("AddRoleToInstanceProfile");
}

/// A security group tagged as the stack's, as security_group.rs would make it.
async fn make_group(cx: &Cx, name: &str) -> String {
    let out = cx
        .clients
        .ec2
        .create_security_group()
        .group_name(name)
        .description("test")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(Tag::builder().key(TAG_STACK).value(STACK).build())
                .build(),
        )
        .send()
        .await
        .expect("CreateSecurityGroup");
    out.group_id.expect("group id")
}

/// Every instance of the account, whatever its state.
async fn all_instances(cx: &Cx) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = cx
        .clients
        .ec2
        .describe_instances()
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.instances.unwrap_or_default())
        .collect()
}

async fn discover_one(cx: &Cx, desired: &Model) -> Live {
    let mut found = host::discover(cx, desired).await.expect("discover");
    assert_eq!(found.len(), 1, "one live host expected: {found:#?}");
    found.remove(0)
}

/// Create → read back equal → drift repaired → delete, with every AWS delay emulated.
#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_with_propagation_and_pending() {
    const K: usize = 3;
    let sb = Sandbox::new(ProxyConfig {
        profile_propagation: K as u32,
        instance_pending: K as u32,
        instance_shutting_down: K as u32,
        ..Default::default()
    });
    let cx = cx(&sb);
    let desired = model(&sb, SPEC);
    let r = desired.get(&host_address()).expect("desired host").clone();
    let p = host_props(&r).clone();
    assert_eq!(p.instance_profile, "t1-collector-host");
    assert_eq!(p.security_group.as_deref(), Some("t1-collector-ssh"));
    assert_eq!(p.image, Image::Al2023);
    assert!(p.http_tokens_required);

    make_profile(&cx, &p.instance_profile).await;
    make_group(&cx, "t1-collector-ssh").await;
    sb.proxy.reset_calls();

    host::create(&cx, &r, &desired).await.expect("create");

    // Rode out the profile propagation: exactly K refused RunInstances, then the one that
    // started the (one) instance.
    let runs: Vec<_> = sb
        .proxy
        .calls_of("ec2:RunInstances")
        .into_iter()
        .map(|c| (c.status, c.emulated))
        .collect();
    let mut expected = vec![(400, Some("profile-propagation")); K];
    expected.push((200, None));
    assert_eq!(runs, expected);
    let instances = all_instances(&cx).await;
    assert_eq!(instances.len(), 1, "exactly one instance: {instances:#?}");
    let inst = &instances[0];
    // Waited through `pending`: when create returns, the instance is running.
    assert_eq!(
        inst.state().and_then(|s| s.name()),
        Some(&InstanceStateName::Running)
    );
    // It polled through exactly K answers saying pending, and stopped at the first running.
    let polls: Vec<Option<&str>> = sb
        .proxy
        .calls()
        .into_iter()
        .skip_while(|c| c.to_string() != "ec2:RunInstances" || c.status != 200)
        .filter(|c| c.to_string() == "ec2:DescribeInstances")
        .map(|c| c.emulated)
        .collect();
    let mut expected = vec![Some("pending"); K];
    expected.extend([None, None]); // the running one, and all_instances above
    assert_eq!(polls, expected, "{:?}", sb.proxy.call_names());
    // Launched from the AL2023 AMI of the region, with IMDSv2 only and the Name tag.
    assert_eq!(inst.image_id(), Some("ami-087fc0fcee2c7570a"));
    let md = inst.metadata_options().expect("metadata options");
    assert_eq!(md.http_tokens(), Some(&HttpTokensState::Required));
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    assert!(inst
        .tags()
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("t1-collector")));

    // Read back exactly as desired: the planner sees no change.
    let live = discover_one(&cx, &desired).await;
    assert_eq!(live.resource.address, r.address);
    assert_eq!(live.resource.name, r.name);
    assert_eq!(live.resource.tags, r.tags);
    assert_eq!(live.resource.props, r.props);
    assert_eq!(host_props(&live.resource).user_data, p.user_data);
    assert!(host_props(&live.resource).http_tokens_required);
    assert!(live.ours);
    assert_eq!(Some(live.id.as_str()), inst.instance_id());

    // Drift out of band: a tag removed, one added, IMDSv1 allowed again.
    let ec2 = &cx.clients.ec2;
    ec2.delete_tags()
        .resources(&live.id)
        .tags(Tag::builder().key("team").build())
        .send()
        .await
        .expect("DeleteTags");
    ec2.create_tags()
        .resources(&live.id)
        .tags(Tag::builder().key("rogue").value("1").build())
        .send()
        .await
        .expect("CreateTags");
    ec2.modify_instance_metadata_options()
        .instance_id(&live.id)
        .http_tokens(HttpTokensState::Optional)
        .send()
        .await
        .expect("ModifyInstanceMetadataOptions");
    let drifted = discover_one(&cx, &desired).await;
    assert!(!drifted.resource.tags.contains_key("team"));
    assert_eq!(
        drifted.resource.tags.get("rogue").map(String::as_str),
        Some("1")
    );
    assert!(!host_props(&drifted.resource).http_tokens_required);

    host::update(&cx, &r, &drifted).await.expect("update");
    let repaired = discover_one(&cx, &desired).await;
    assert_eq!(repaired.resource.tags, r.tags);
    assert_eq!(repaired.resource.props, r.props);
    assert_eq!(repaired.resource.name, r.name);
    assert_eq!(repaired.id, live.id);

    // Delete terminates and waits for the end: exactly K answers saying shutting-down, then
    // the one saying terminated.
    sb.proxy.reset_calls();
    host::delete(&cx, &repaired).await.expect("delete");
    let polls: Vec<Option<&str>> = sb
        .proxy
        .calls_of("ec2:DescribeInstances")
        .into_iter()
        .map(|c| c.emulated)
        .collect();
    let mut expected = vec![Some("shutting-down"); K];
    expected.push(None);
    assert_eq!(polls, expected, "{:?}", sb.proxy.call_names());
    let instances = all_instances(&cx).await;
    assert_eq!(
        instances[0].state().and_then(|s| s.name()),
        Some(&InstanceStateName::Terminated)
    );
    assert!(host::discover(&cx, &desired)
        .await
        .expect("discover")
        .is_empty());
    let left = crate::support::inventory::take(&sb, REGION, STACK).await;
    assert_eq!(left.names("instance"), Vec::<&str>::new(), "{left}");
    // Deleting again is fine.
    host::delete(&cx, &repaired).await.expect("delete again");
}

/// In-place changes of the security group and the instance profile; an explicit subnet reads
/// back; instances without an address tag are not ours to plan, duplicates all are.
#[tokio::test(flavor = "multi_thread")]
async fn in_place_group_and_profile_subnet_and_duplicates() {
    let sb = Sandbox::passthrough();
    let cx = cx(&sb);
    let text = SPEC.replace("    ssh: { from: 10.0.0.0/8 }\n", "");
    let mut desired = model(&sb, &text);
    let subnets = cx
        .clients
        .ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("default-for-az")
                .values("true")
                .build(),
        )
        .send()
        .await
        .expect("DescribeSubnets");
    let subnet = subnets.subnets.unwrap_or_default()[1]
        .subnet_id
        .clone()
        .expect("subnet id");
    let mut r = desired.get(&host_address()).expect("desired host").clone();
    assert_eq!(host_props(&r).security_group, None);
    host_props_mut(&mut r).subnet = Some(subnet.clone());
    desired.resources.insert(r.address.clone(), r.clone());

    make_profile(&cx, "t1-collector-host").await;
    host::create(&cx, &r, &desired).await.expect("create");
    let live = discover_one(&cx, &desired).await;
    assert_eq!(live.resource.props, r.props, "no group, explicit subnet");
    assert_eq!(live.resource.tags, r.tags);
    assert_eq!(
        host_props(&live.resource).subnet.as_deref(),
        Some(subnet.as_str())
    );

    // Security group added, instance profile swapped.
    make_group(&cx, "t1-collector-ssh").await;
    make_profile(&cx, "t1-other-host").await;
    let mut changed = r.clone();
    host_props_mut(&mut changed).security_group = Some("t1-collector-ssh".into());
    host_props_mut(&mut changed).instance_profile = "t1-other-host".into();
    desired
        .resources
        .insert(changed.address.clone(), changed.clone());
    host::update(&cx, &changed, &live)
        .await
        .expect("update group and profile");
    let live = discover_one(&cx, &desired).await;
    assert_eq!(live.resource.props, changed.props);

    // Back to no group: the VPC's default group.
    desired.resources.insert(r.address.clone(), r.clone());
    let mut back = r.clone();
    host_props_mut(&mut back).instance_profile = "t1-other-host".into();
    host::update(&cx, &back, &live)
        .await
        .expect("update back to default group");
    let live = discover_one(&cx, &desired).await;
    assert_eq!(host_props(&live.resource).security_group, None);

    // A second instance of the same address (half-finished apply) and an untagged one.
    let ec2 = &cx.clients.ec2;
    let tagged = |key: &str, value: &str| Tag::builder().key(key).value(value).build();
    for tags in [
        vec![
            tagged(TAG_STACK, STACK),
            tagged("streamstack:address", "host.collector"),
        ],
        vec![tagged(TAG_STACK, STACK)],
        vec![
            tagged(TAG_STACK, "other"),
            tagged("streamstack:address", "host.collector"),
        ],
    ] {
        ec2.run_instances()
            .image_id("ami-087fc0fcee2c7570a")
            .min_count(1)
            .max_count(1)
            // Every instance streamstack launches has user-data (base64 of a script).
            .user_data("IyEvYmluL2Jhc2gK")
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .set_tags(Some(tags))
                    .build(),
            )
            .send()
            .await
            .expect("RunInstances");
    }
    let found = host::discover(&cx, &desired).await.expect("discover");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found
        .iter()
        .all(|l| l.resource.address == host_address() && l.ours));
    // The stray one has no image tag: a missing tag shows as a tag change, never as a new image
    // (which would replace it); no Name: its id.
    let stray = found
        .iter()
        .find(|l| l.id != live.id)
        .expect("the duplicate");
    assert_eq!(host_props(&stray.resource).image, Image::Al2023);
    assert!(!stray.resource.tags.contains_key("streamstack:image"));
    assert_eq!(stray.resource.name, stray.id);
    assert_eq!(host_props(&stray.resource).user_data, "#!/bin/bash\n");

    // A host removed from the spec is still found (it is ours), with no subnet.
    let mut empty = desired.clone();
    empty.resources.retain(|a, _| a.kind != host::KIND);
    let found = host::discover(&cx, &empty).await.expect("discover");
    assert_eq!(found.len(), 2);
    assert!(found
        .iter()
        .all(|l| host_props(&l.resource).subnet.is_none()));

    for l in &found {
        host::delete(&cx, l).await.expect("delete");
    }
    assert!(host::discover(&cx, &desired)
        .await
        .expect("discover")
        .is_empty());
}

/// An image parameter that does not exist fails with a message naming it and the region, before
/// anything is started.
#[tokio::test(flavor = "multi_thread")]
async fn missing_image_parameter_is_a_clear_error() {
    let sb = Sandbox::passthrough();
    let cx = cx(&sb);
    let desired = model(&sb, &SPEC.replace("    ssh: { from: 10.0.0.0/8 }\n", ""));
    let mut r = desired.get(&host_address()).expect("desired host").clone();
    host_props_mut(&mut r).image = Image::Ssm("/nope/ami".into());
    let err = host::create(&cx, &r, &desired)
        .await
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("/nope/ami") && msg.contains(REGION), "{msg}");
    assert!(all_instances(&cx).await.is_empty());
    assert_eq!(
        host::REPLACE_ON,
        &["instance_type", "image", "subnet", "key_name", "user_data"]
    );
}
