//! The role, instance-profile and delivery kinds against moto behind the realism proxy: what is
//! created reads back exactly as desired (so a plan after apply is empty), out-of-band edits
//! show up and are repaired, IAM propagation and CREATING are waited out, in-place updates only
//! touch what changed, deletion works in either IAM order, and a same-named foreign role is
//! found but not ours.

use crate::support::proxy::ProxyConfig;
use crate::support::Sandbox;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use streamstack::kinds::delivery::DeliveryProps;
use streamstack::kinds::instance_profile::InstanceProfileProps;
use streamstack::kinds::role::RoleProps;
use streamstack::kinds::{bucket, delivery, instance_profile, role, stream, Cx, Live};
use streamstack::model::{Address, Kind, Model, Resource};

const STACK: &str = "t1";

const SPEC: &str = r#"
version: 1
stack: t1
tags:
  owner: tests
buckets:
  logs: {}
streams:
  events: {}
deliveries:
  archive:
    from: events
    to: logs
    buffering: { size_mb: 8, interval_seconds: 120 }
    compression: GZIP
  direct:
    from: direct
    to: logs
    prefix: "raw/"
    error_prefix: "errors/!{firehose:error-output-type}/"
hosts:
  collector:
    instance_type: t3.nano
    flows:
      - files: /var/log/app/*.log
        to: events
"#;

fn setup(config: ProxyConfig) -> (Sandbox, Cx, Model) {
    let sb = Sandbox::new(config);
    let cx = sb.cx(STACK);
    let model = sb.model(SPEC);
    (sb, cx, model)
}

fn res<'m>(model: &'m Model, kind: Kind, key: &str) -> &'m Resource {
    model
        .get(&Address::new(kind, key))
        .unwrap_or_else(|| panic!("{}.{key} in the model", kind.as_str()))
}

fn find<'l>(lives: &'l [Live], r: &Resource) -> &'l Live {
    lives
        .iter()
        .find(|l| l.resource.name == r.name)
        .unwrap_or_else(|| panic!("{} ({}) discovered", r.address, r.name))
}

/// What the planner compares: the live resource equals the desired one, field by field.
fn assert_in_sync(live: &Live, desired: &Resource) {
    assert!(live.ours, "{} is ours", desired.address);
    assert_eq!(live.resource.address, desired.address);
    assert_eq!(live.resource.name, desired.name);
    assert_eq!(
        live.resource.props, desired.props,
        "{} props",
        desired.address
    );
    assert_eq!(live.resource.tags, desired.tags, "{} tags", desired.address);
}

fn count(sb: &Sandbox, service: &str, action: &str) -> usize {
    sb.proxy
        .calls()
        .iter()
        .filter(|c| c.service == service && c.action == action)
        .count()
}

async fn create_bucket(sb: &Sandbox, model: &Model) {
    let name = &res(model, bucket::KIND, "logs").name;
    sb.s3()
        .create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .expect("CreateBucket");
}

fn delivery_props(r: &mut Resource) -> &mut DeliveryProps {
    r.props.get_mut::<DeliveryProps>().expect("a delivery")
}

#[tokio::test]
async fn roles_and_profile_read_back_as_desired_and_drift_is_repaired() {
    let (sb, cx, model) = setup(ProxyConfig::default());
    let host_role = res(&model, role::HOST_ROLE, "collector");
    let delivery_role = res(&model, role::DELIVERY_ROLE, "archive");
    let profile = res(&model, instance_profile::KIND, "collector");

    role::create(&cx, host_role, &model)
        .await
        .expect("create host role");
    role::create(&cx, delivery_role, &model)
        .await
        .expect("create delivery role");
    instance_profile::create(&cx, profile, &model)
        .await
        .expect("create profile");

    let roles = role::discover(&cx, &model).await.expect("discover roles");
    assert_eq!(
        roles.len(),
        2,
        "only what exists (delivery_role.direct is not created): {roles:#?}"
    );
    assert_in_sync(find(&roles, host_role), host_role);
    assert_in_sync(find(&roles, delivery_role), delivery_role);
    let profiles = instance_profile::discover(&cx, &model)
        .await
        .expect("discover profiles");
    assert_eq!(profiles.len(), 1);
    assert_in_sync(find(&profiles, profile), profile);
    // Roles live under the stack's path.
    let got = cx
        .clients
        .iam
        .get_role()
        .role_name(&host_role.name)
        .send()
        .await
        .unwrap();
    assert_eq!(got.role().unwrap().path(), "/streamstack/t1/");

    // Out of band: a different inline policy, a different trust policy, an extra tag.
    let iam = aws_sdk_iam::Client::new(&sb.config);
    iam.put_role_policy()
        .role_name(&host_role.name)
        .policy_name("streamstack")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("PutRolePolicy");
    iam.put_role_policy()
        .role_name(&host_role.name)
        .policy_name("extra")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("PutRolePolicy extra");
    iam.update_assume_role_policy()
        .role_name(&host_role.name)
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("UpdateAssumeRolePolicy");
    iam.tag_role()
        .role_name(&host_role.name)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("drift")
                .value("yes")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("TagRole");

    let roles = role::discover(&cx, &model).await.unwrap();
    let drifted = find(&roles, host_role);
    assert!(drifted.ours);
    assert_ne!(
        drifted.resource.props, host_role.props,
        "the edit shows as a difference"
    );
    assert_ne!(drifted.resource.tags, host_role.tags);
    let p = drifted.resource.props.get::<RoleProps>().expect("a role");
    assert_eq!(p.inline_policies.len(), 2);
    assert_eq!(
        p.inline_policies["streamstack"]["Statement"][0]["Action"],
        "s3:GetObject"
    );

    sb.proxy.reset_calls();
    role::update(&cx, host_role, drifted)
        .await
        .expect("update repairs");
    let writes = sb.proxy.write_call_names();
    assert!(
        writes.contains(&"iam:UpdateAssumeRolePolicy".to_string()),
        "{writes:?}"
    );
    assert!(
        writes.contains(&"iam:PutRolePolicy".to_string()),
        "{writes:?}"
    );
    assert!(
        writes.contains(&"iam:DeleteRolePolicy".to_string()),
        "{writes:?}"
    );
    assert!(writes.contains(&"iam:UntagRole".to_string()), "{writes:?}");
    let roles = role::discover(&cx, &model).await.unwrap();
    assert_in_sync(find(&roles, host_role), host_role);

    // In sync: update does nothing.
    sb.proxy.reset_calls();
    role::update(&cx, host_role, find(&roles, host_role))
        .await
        .unwrap();
    assert!(
        sb.proxy.write_calls().is_empty(),
        "{:?}",
        sb.proxy.write_calls()
    );

    // The profile's role changed out of band: update puts the desired one back.
    let other = res(&model, role::DELIVERY_ROLE, "archive");
    iam.remove_role_from_instance_profile()
        .instance_profile_name(&profile.name)
        .role_name(&host_role.name)
        .send()
        .await
        .unwrap();
    iam.add_role_to_instance_profile()
        .instance_profile_name(&profile.name)
        .role_name(&other.name)
        .send()
        .await
        .unwrap();
    let profiles = instance_profile::discover(&cx, &model).await.unwrap();
    let drifted = find(&profiles, profile);
    assert_ne!(drifted.resource.props, profile.props);
    instance_profile::update(&cx, profile, drifted)
        .await
        .expect("profile update");
    let profiles = instance_profile::discover(&cx, &model).await.unwrap();
    assert_in_sync(find(&profiles, profile), profile);
}

#[tokio::test]
async fn deleting_a_role_still_in_its_profile_works_in_either_order() {
    let (sb, cx, model) = setup(ProxyConfig::default());
    let host_role = res(&model, role::HOST_ROLE, "collector");
    let profile = res(&model, instance_profile::KIND, "collector");
    let iam = aws_sdk_iam::Client::new(&sb.config);

    // Role first, while it is in the profile and has a managed policy attached.
    role::create(&cx, host_role, &model).await.unwrap();
    instance_profile::create(&cx, profile, &model)
        .await
        .unwrap();
    let policy = iam
        .create_policy()
        .policy_name("managed-extra")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let policy_arn = policy.policy().unwrap().arn().unwrap().to_string();
    iam.attach_role_policy()
        .role_name(&host_role.name)
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    let roles = role::discover(&cx, &model).await.unwrap();
    role::delete(&cx, find(&roles, host_role))
        .await
        .expect("delete role in profile");
    assert!(role::discover(&cx, &model).await.unwrap().is_empty());
    let profiles = instance_profile::discover(&cx, &model).await.unwrap();
    let p = find(&profiles, profile)
        .resource
        .props
        .get::<InstanceProfileProps>()
        .expect("a profile");
    assert_eq!(p.role_name, "", "the profile lost its role");
    instance_profile::delete(&cx, find(&profiles, profile))
        .await
        .expect("delete empty profile");
    assert!(instance_profile::discover(&cx, &model)
        .await
        .unwrap()
        .is_empty());

    // Profile first, with the role in it; then the role.
    role::create(&cx, host_role, &model).await.unwrap();
    instance_profile::create(&cx, profile, &model)
        .await
        .unwrap();
    let profiles = instance_profile::discover(&cx, &model).await.unwrap();
    instance_profile::delete(&cx, find(&profiles, profile))
        .await
        .expect("delete profile with role");
    let roles = role::discover(&cx, &model).await.unwrap();
    role::delete(&cx, find(&roles, host_role))
        .await
        .expect("delete role");
    assert!(role::discover(&cx, &model).await.unwrap().is_empty());
    assert!(instance_profile::discover(&cx, &model)
        .await
        .unwrap()
        .is_empty());

    // Deleting what is already gone is fine.
    role::delete(&cx, find(&roles, host_role))
        .await
        .expect("role already gone");
    instance_profile::delete(&cx, find(&profiles, profile))
        .await
        .expect("profile already gone");
}

#[tokio::test]
async fn a_same_named_foreign_role_and_profile_are_found_but_not_ours() {
    let (sb, cx, model) = setup(ProxyConfig::default());
    let host_role = res(&model, role::HOST_ROLE, "collector");
    let profile = res(&model, instance_profile::KIND, "collector");
    let iam = aws_sdk_iam::Client::new(&sb.config);
    iam.create_role()
        .role_name(&host_role.name)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    iam.create_instance_profile()
        .instance_profile_name(&profile.name)
        .send()
        .await
        .unwrap();
    // An unrelated role elsewhere is not reported at all.
    iam.create_role()
        .role_name("someone-else")
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap();

    let roles = role::discover(&cx, &model).await.unwrap();
    assert_eq!(roles.len(), 1, "{roles:#?}");
    let foreign = &roles[0];
    assert!(!foreign.ours);
    assert_eq!(foreign.resource.address, host_role.address);
    assert_eq!(foreign.resource.name, host_role.name);
    let p = foreign.resource.props.get::<RoleProps>().expect("a role");
    assert!(!p.arn.contains("/streamstack/"), "default path: {}", p.arn);
    assert_eq!(
        p.trust_policy["Statement"][0]["Principal"]["Service"],
        "ec2.amazonaws.com"
    );
    assert!(foreign.resource.tags.is_empty());

    let profiles = instance_profile::discover(&cx, &model).await.unwrap();
    assert_eq!(profiles.len(), 1);
    assert!(!profiles[0].ours);
    assert_eq!(profiles[0].resource.address, profile.address);

    // Creating over it refuses rather than adopting it.
    let err = role::create(&cx, host_role, &model).await.unwrap_err();
    assert_eq!(err.code(), Some("EntityAlreadyExists"), "{err}");
}

/// `(status, emulated)` of each call of `service:Action`, in order.
fn answers(sb: &Sandbox, call: &str) -> Vec<(u16, Option<&'static str>)> {
    sb.proxy
        .calls_of(call)
        .into_iter()
        .map(|c| (c.status, c.emulated))
        .collect()
}

#[tokio::test]
async fn delivery_create_rides_out_role_propagation_and_creating_then_deletes() {
    const K: usize = 3;
    let (sb, cx, model) = setup(ProxyConfig {
        role_propagation: K as u32,
        delivery_creating: K as u32,
        delivery_deleting: 2,
        ..Default::default()
    });
    create_bucket(&sb, &model).await;
    stream::create(&cx, res(&model, stream::KIND, "events"), &model)
        .await
        .expect("stream");
    let archive = res(&model, delivery::KIND, "archive");
    let direct = res(&model, delivery::KIND, "direct");
    role::create(&cx, res(&model, role::DELIVERY_ROLE, "archive"), &model)
        .await
        .unwrap();
    role::create(&cx, res(&model, role::DELIVERY_ROLE, "direct"), &model)
        .await
        .unwrap();

    sb.proxy.reset_calls();
    delivery::create(&cx, archive, &model)
        .await
        .expect("create archive");
    // Exactly K refusals while the role propagates, then the create; exactly K describes
    // saying CREATING, then the one saying ACTIVE that ended the wait.
    let refused = (400, Some("role-propagation"));
    let mut expected = vec![refused; K];
    expected.push((200, None));
    assert_eq!(
        answers(&sb, "firehose:CreateDeliveryStream"),
        expected,
        "{:?}",
        sb.proxy.call_names()
    );
    let mut expected = vec![(200, Some("CREATING")); K];
    expected.push((200, None));
    assert_eq!(
        answers(&sb, "firehose:DescribeDeliveryStream"),
        expected,
        "waited through CREATING: {:?}",
        sb.proxy.call_names()
    );
    let status = cx
        .clients
        .firehose
        .describe_delivery_stream()
        .delivery_stream_name(&archive.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status
            .delivery_stream_description()
            .unwrap()
            .delivery_stream_status(),
        &aws_sdk_firehose::types::DeliveryStreamStatus::Active
    );
    sb.proxy.reset_calls();
    delivery::create(&cx, direct, &model)
        .await
        .expect("create direct");
    assert_eq!(sb.proxy.emulated("role-propagation"), K);
    assert_eq!(sb.proxy.emulated("CREATING"), K);

    let lives = delivery::discover(&cx, &model).await.expect("discover");
    assert_eq!(lives.len(), 2);
    assert_in_sync(find(&lives, archive), archive);
    assert_in_sync(find(&lives, direct), direct);

    // Creating again (an interrupted apply) finds it as ours and is done.
    delivery::create(&cx, archive, &model)
        .await
        .expect("create is idempotent for ours");

    sb.proxy.reset_calls();
    for live in &lives {
        delivery::delete(&cx, live).await.expect("delete");
    }
    // Each delete waited through DELETING (two describes each) until the delivery was gone.
    assert_eq!(sb.proxy.emulated("DELETING"), 4);
    assert!(delivery::discover(&cx, &model).await.unwrap().is_empty());
    delivery::delete(&cx, &lives[0])
        .await
        .expect("already gone");
    let left = crate::support::inventory::take(&sb, crate::support::moto::REGION, STACK).await;
    assert_eq!(left.names("delivery"), Vec::<&str>::new(), "{left}");
}

#[tokio::test]
async fn delivery_updates_in_place_only_what_changed() {
    let (sb, cx, model) = setup(ProxyConfig::default());
    create_bucket(&sb, &model).await;
    stream::create(&cx, res(&model, stream::KIND, "events"), &model)
        .await
        .expect("stream");
    let archive = res(&model, delivery::KIND, "archive");
    let direct = res(&model, delivery::KIND, "direct");
    delivery::create(&cx, archive, &model).await.unwrap();
    delivery::create(&cx, direct, &model).await.unwrap();
    let lives = delivery::discover(&cx, &model).await.unwrap();
    let arn_before = find(&lives, archive).id.clone();

    // Buffering and compression: one UpdateDestination, same delivery.
    let mut wanted = archive.clone();
    delivery_props(&mut wanted).buffering.size_mb = 64;
    delivery_props(&mut wanted).buffering.interval_seconds = 60;
    delivery_props(&mut wanted).compression = streamstack::spec::types::Compression::Snappy;
    sb.proxy.reset_calls();
    delivery::update(&cx, &wanted, find(&lives, archive))
        .await
        .expect("update buffering");
    assert_eq!(
        count(&sb, "firehose", "UpdateDestination"),
        1,
        "{:?}",
        sb.proxy.call_names()
    );
    assert_eq!(count(&sb, "firehose", "CreateDeliveryStream"), 0);
    let lives = delivery::discover(&cx, &model).await.unwrap();
    assert_in_sync(find(&lives, archive), &wanted);
    assert_eq!(find(&lives, archive).id, arn_before);

    // Tags only: no UpdateDestination.
    let mut tagged = wanted.clone();
    tagged.tags.insert("team".into(), "data".into());
    tagged.tags.remove("owner");
    sb.proxy.reset_calls();
    delivery::update(&cx, &tagged, find(&lives, archive))
        .await
        .expect("update tags");
    assert_eq!(
        count(&sb, "firehose", "UpdateDestination"),
        0,
        "{:?}",
        sb.proxy.call_names()
    );
    assert_eq!(count(&sb, "firehose", "TagDeliveryStream"), 1);
    assert_eq!(count(&sb, "firehose", "UntagDeliveryStream"), 1);
    let lives = delivery::discover(&cx, &model).await.unwrap();
    assert_in_sync(find(&lives, archive), &tagged);

    // Prefixes removed: they read back as None (sent as "" since UpdateDestination merges).
    let mut bare = direct.clone();
    delivery_props(&mut bare).prefix = None;
    delivery_props(&mut bare).error_prefix = None;
    delivery::update(&cx, &bare, find(&lives, direct))
        .await
        .expect("update prefixes");
    let lives = delivery::discover(&cx, &model).await.unwrap();
    assert_in_sync(find(&lives, direct), &bare);

    // And back to the spec.
    delivery::update(&cx, direct, find(&lives, direct))
        .await
        .unwrap();
    let lives = delivery::discover(&cx, &model).await.unwrap();
    assert_in_sync(find(&lives, direct), direct);

    // Removed from the spec: still discovered (tagged ours, `{stack}-*`).
    let mut smaller = model.clone();
    smaller.resources.remove(&direct.address);
    let lives = delivery::discover(&cx, &smaller).await.unwrap();
    assert_eq!(lives.len(), 2);
    assert_eq!(find(&lives, direct).resource.address, direct.address);
    assert_eq!(delivery::REPLACE_ON, ["source"]);
}
