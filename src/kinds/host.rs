//! EC2 instances running the Kinesis Agent.
//!
//! - Adopted instances (the spec's `instance_id`, tag [`TAG_ADOPTED`]): read by id while still
//!   untagged, so `adopt` can take them; their user-data and key pair are not streamstack's and
//!   never compared (never a replacement); the plan notes the profile swap ([`adopted_note`]).
//! - Read: `DescribeInstances` filtered on the stack tag and the live states, plus
//!   `DescribeInstanceAttribute(userData)` per instance. The image comes back from the
//!   `streamstack:image` tag (the spec's name for it, so a new AMI release is not a change); the
//!   `Name` tag is the resource name and never part of the tags.
//! - Create: resolve the AMI (SSM for `al2023`/`ssm:`), `RunInstances` with a client token that is
//!   stable across the retries that ride out instance-profile propagation (aws-domain.md §4.1,
//!   §4.5), then wait for `running`.
//! - In place: tags, IMDSv2, security group, instance profile.
//! - Replace: instance type, image, subnet, key pair and user-data. User-data carries agent.json
//!   and cloud-init runs it only at first boot, so a new instance is the only way it takes effect.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileAssociation, IamInstanceProfileAssociationState,
    IamInstanceProfileSpecification, Instance, InstanceAttributeName,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceStateName, InstanceType,
    ResourceType, Tag, TagSpecification,
};
use base64::Engine;
use futures::future::try_join_all;
use sha2::{Digest, Sha256};

use futures::future::BoxFuture;
use serde::Serialize;

use super::ec2_api::{self, filter};
pub use super::HOST as KIND;
use super::{
    found, missing_hop, owned_by, props, retry, tagged_address, wait_for, CheckRun, Cx, Hop,
    ListingFix, Live, Render, Rendered, ResourceKind, INSTANCE_PROFILE, SECURITY_GROUP,
};
use crate::aws::{next_token, pages, Ctx};
use crate::model::{Address, Kind, Model, Props, Resource, TAG_BOOTSTRAP, TAG_IMAGE};
use crate::spec::types::Image;
use crate::{Error, Result};

/// Where the agent logs on the instance.
const AGENT_LOG: &str = "/var/log/aws-kinesis-agent/aws-kinesis-agent.log";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostProps {
    pub instance_type: String,
    pub image: Image,
    pub subnet: Option<String>,
    pub key_name: Option<String>,
    pub instance_profile: String,
    pub security_group: Option<String>,
    /// The exact user-data script (before base64) that carries agent.json.
    pub user_data: String,
    /// IMDSv2 only.
    pub http_tokens_required: bool,
    /// The existing instance this host adopts (the spec's `instance_id`): discovery reads it
    /// while it is untagged, so `adopt` can take it over. Never a difference (the live side
    /// carries the desired value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

pub struct Hosts;

impl ResourceKind for Hosts {
    lifecycle_from_module_fns!(kinds: &[KIND]; outputs, check, cloudformation);
    fn cost(&self, r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
        cost_lines(r, usage)
    }
    fn listed_cost<'a>(
        &'a self,
        clients: &'a crate::aws::Clients,
        arns: &'a [String],
    ) -> BoxFuture<'a, Result<crate::cost::Priced>> {
        Box::pin(listed_cost(clients, arns))
    }
    fn replace_on(&self) -> &'static [&'static str] {
        REPLACE_ON
    }
    fn name_is_identity(&self) -> bool {
        // The name is the `Name` tag, set in place.
        false
    }
    fn uses(&self, live: &Resource) -> Vec<(Kind, String)> {
        let Some(p) = live.props.get::<HostProps>() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if !p.instance_profile.is_empty() {
            out.push((INSTANCE_PROFILE, p.instance_profile.clone()));
        }
        if let Some(g) = &p.security_group {
            out.push((SECURITY_GROUP, g.clone()));
        }
        out
    }
    fn prepare<'a>(&'a self, cx: &'a Cx, r: &'a Resource) -> BoxFuture<'a, ()> {
        Box::pin(prepare(cx, r))
    }
    fn hop_order(&self) -> u8 {
        1
    }
    fn correct_listing<'a>(
        &'a self,
        clients: &'a crate::aws::Clients,
        listed: &'a [String],
    ) -> BoxFuture<'a, Result<super::ListingFix>> {
        Box::pin(not_leftovers(clients, listed))
    }
    fn wait_reported<'a>(
        &'a self,
        cx: &'a Cx,
        live: &'a Live,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(wait_bootstrapped(cx, live, timeout))
    }
    fn render(&self, r: &Resource, what: Render) -> Option<Rendered> {
        let p = r.props.get::<HostProps>()?;
        let body = match what {
            Render::UserData => serde_json::Value::String(p.user_data.clone()),
            Render::AgentConfig => serde_json::Value::String(
                crate::bootstrap::extract_agent_json(&p.user_data)?.to_string(),
            ),
            Render::Policies | Render::AgentBundle => return None,
        };
        Some(Rendered {
            host: Some(r.address.key.clone()),
            body,
        })
    }
}

/// The image and the subnet depend on nothing the stack creates: asked while the host waits for
/// its role, stream and deliveries. A failed lookup is not kept: the create asks again and
/// reports the error.
async fn prepare(cx: &Cx, r: &Resource) {
    let Ok(p) = props::<HostProps>(r) else {
        return;
    };
    let (image, subnet) = futures::join!(image_id(cx, r, p), subnet_id(cx, p));
    for e in [image.err(), subnet.err()].into_iter().flatten() {
        tracing::debug!("{}: a lookup failed, the create asks again: {e}", r.address);
    }
}

fn cloudformation(r: &Resource, cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
    let p = r.props.get::<HostProps>()?;
    let id = crate::cfn::logical_id(&r.address);
    let mut parameters = std::collections::BTreeMap::new();
    let image = match p.image.ssm_parameter() {
        Some(param) => {
            parameters.insert(
                format!("{id}ImageId"),
                serde_json::json!({
                    "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                    "Default": param,
                    "Description": format!("The image of {}", r.address),
                }),
            );
            serde_json::json!({"Ref": format!("{id}ImageId")})
        }
        None => serde_json::Value::String(p.image.to_string()),
    };
    let profile = cfn
        .dependency(r, INSTANCE_PROFILE)
        .map(|a| serde_json::json!({"Ref": cfn.logical_id(&a)}))
        .unwrap_or_else(|| serde_json::Value::String(p.instance_profile.clone()));
    let mut props = serde_json::json!({
        "ImageId": image,
        "InstanceType": p.instance_type,
        "IamInstanceProfile": profile,
        "UserData": {"Fn::Base64": cfn.sub(&p.user_data)},
        "MetadataOptions": {"HttpTokens": if p.http_tokens_required { "required" } else { "optional" }, "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "Monitoring": false,
        "Tags": crate::cfn::tags(&with_name(&r.tags, &r.name)),
    });
    if let Some(g) = cfn.dependency(r, SECURITY_GROUP) {
        props["SecurityGroupIds"] =
            serde_json::json!([{"Fn::GetAtt": [cfn.logical_id(&g), "GroupId"]}]);
    }
    if let Some(s) = &p.subnet {
        props["SubnetId"] = serde_json::json!(s);
    }
    if let Some(k) = &p.key_name {
        props["KeyName"] = serde_json::json!(k);
    }
    let mut res = crate::cfn::CfnResource::new("AWS::EC2::Instance", props).output(
        "InstanceId",
        serde_json::json!({"Ref": id}),
        "The host's instance id",
    );
    res.parameters = parameters;
    res.checkov_skips = vec![
        (
            "CKV_AWS_126",
            "a lab host: detailed monitoring costs extra and is not needed",
        ),
        (
            "CKV_AWS_135",
            "the instance type decides EBS optimisation; t3 types are already",
        ),
    ];
    Some(res)
}

/// How far an instance's bootstrap got, from the tag its user-data sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `streamstack:bootstrap=ok`: the agent runs.
    Done,
    /// `failed:<step>`.
    Failed(String),
    /// No report yet; the instance's state.
    Pending(String),
    /// The instance is gone.
    Gone,
}

/// Reads an instance's bootstrap report and its age.
pub async fn bootstrap_state(cx: &Cx, id: &str) -> Result<(Bootstrap, Option<Duration>)> {
    let Some(i) = describe(cx, id).await? else {
        return Ok((Bootstrap::Gone, None));
    };
    let age = i
        .launch_time()
        .and_then(|t| std::time::SystemTime::try_from(*t).ok())
        .and_then(|t| t.elapsed().ok());
    let state = i
        .state()
        .and_then(|s| s.name())
        .map_or("unknown", |n| n.as_str())
        .to_string();
    let tags = ec2_api::tag_map(i.tags());
    let b = match tags.get(TAG_BOOTSTRAP).map(String::as_str) {
        _ if matches!(state.as_str(), "terminated" | "shutting-down") => Bootstrap::Gone,
        Some("ok") => Bootstrap::Done,
        Some(other) => {
            Bootstrap::Failed(other.strip_prefix("failed:").unwrap_or(other).to_string())
        }
        None => Bootstrap::Pending(state),
    };
    Ok((b, age))
}

/// The last lines of an instance's console output (what a student would look at first).
pub async fn console_tail(cx: &Cx, id: &str, lines: usize) -> Result<String> {
    let ec2 = &cx.clients.ec2;
    let latest = ec2.get_console_output().instance_id(id).latest(true).send();
    let out = match latest.await.op("ec2:GetConsoleOutput") {
        Ok(o) => o,
        // Some partitions and endpoints refuse `latest`: ask again without it.
        Err(e) => {
            tracing::debug!("{id}: console output with latest=true refused, asking without: {e}");
            let call = ec2.get_console_output().instance_id(id);
            call.send().await.op("ec2:GetConsoleOutput")?
        }
    };
    // EC2 sends the output base64-encoded; anything else is shown as it came.
    let text = out
        .output
        .map(
            |o| match base64::engine::general_purpose::STANDARD.decode(o.trim()) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => o,
            },
        )
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

fn minutes(d: Option<Duration>) -> String {
    match d {
        Some(d) if d.as_secs() >= 120 => format!("{} m", d.as_secs() / 60),
        Some(d) => format!("{} s", d.as_secs()),
        None => "?".into(),
    }
}

/// Waits until the instance reports its bootstrap; a failure or the timeout is an error that
/// quotes the end of the console output.
async fn wait_bootstrapped(cx: &Cx, live: &Live, timeout: Duration) -> Result<()> {
    let address = live.address();
    let outcome = wait_for(
        cx,
        address,
        "the host to report its bootstrap",
        timeout,
        || async {
            Ok(match bootstrap_state(cx, &live.id).await?.0 {
                Bootstrap::Pending(_) => None,
                other => Some(other),
            })
        },
    )
    .await;
    let tail = || async {
        console_tail(cx, &live.id, 10)
            .await
            .unwrap_or_else(|e| format!("(no console output: {e})"))
    };
    match outcome {
        Ok(Bootstrap::Done) => Ok(()),
        Ok(Bootstrap::Failed(step)) => Err(Error::resource(
            address,
            format!(
                "bootstrap failed at step {step}; console output ends with:\n{}",
                tail().await
            ),
        )),
        Ok(_) => Err(Error::resource(
            address,
            format!("instance {} went away before it reported", live.id),
        )),
        Err(Error::Timeout { elapsed, .. }) => Err(Error::resource(
            address,
            format!(
                "not bootstrapped after {}; console output ends with:\n{}",
                minutes(Some(elapsed)),
                tail().await
            ),
        )),
        Err(e) => Err(e),
    }
}

/// The host hop: running and bootstrapped.
async fn check(cx: &Cx, r: &Resource, live: Option<&Live>, _run: &CheckRun) -> Result<Option<Hop>> {
    let Some(l) = live else {
        return Ok(Some(missing_hop(r, "no instance")));
    };
    let address = r.address.to_string();
    let (b, age) = bootstrap_state(cx, &l.id).await?;
    let evidence = serde_json::json!({
        "instance_id": l.id,
        "bootstrap": match &b {
            Bootstrap::Done => "ok".to_string(),
            Bootstrap::Failed(step) => format!("failed:{step}"),
            Bootstrap::Pending(_) | Bootstrap::Gone => String::new(),
        },
        "age_s": age.map(|a| a.as_secs()),
    });
    let tail = || async {
        console_tail(cx, &l.id, 5)
            .await
            .unwrap_or_else(|e| format!("(no console output: {e})"))
    };
    // An adopted instance was not bootstrapped by streamstack: running is all it can report (its
    // records are checked on the stream's hops).
    let adopted = l
        .resource
        .tags
        .get(TAG_ADOPTED)
        .is_some_and(|v| v == "true");
    if let (true, Bootstrap::Pending(state)) = (adopted, &b) {
        if state == "running" {
            return Ok(Some(Hop {
                address,
                ok: true,
                summary: format!(
                    "instance {} running (adopted: its agent is not managed by streamstack)",
                    l.id
                ),
                hint: None,
                evidence,
            }));
        }
    }
    Ok(Some(match b {
        Bootstrap::Done => Hop {
            address,
            ok: true,
            summary: format!(
                "instance {} running, bootstrapped ({TAG_BOOTSTRAP}=ok)",
                l.id
            ),
            hint: None,
            evidence,
        },
        Bootstrap::Failed(step) => Hop {
            address,
            ok: false,
            summary: format!("instance {}: bootstrap failed at step {step}", l.id),
            hint: Some(format!(
                "see /var/log/streamstack-bootstrap.log on the host; console output ends with: {}",
                tail().await
            )),
            evidence,
        },
        Bootstrap::Pending(state) => Hop {
            address,
            ok: false,
            summary: format!(
                "instance {} is {state}, not bootstrapped after {}",
                l.id,
                minutes(age)
            ),
            hint: Some(format!(
                "a bootstrap takes a few minutes (installing the agent); if it stays so, \
                 console output ends with: {}",
                tail().await
            )),
            evidence,
        },
        Bootstrap::Gone => Hop {
            address,
            ok: false,
            summary: format!("instance {} is gone", l.id),
            hint: Some("run streamstack apply to launch it again".into()),
            evidence,
        },
    }))
}

/// State, public IP and how to reach the instance.
async fn outputs(cx: &Cx, live: &Live) -> Result<BTreeMap<String, String>> {
    let p = props::<HostProps>(&live.resource)?;
    let inst = describe(cx, &live.id).await?;
    let public_ip = inst
        .as_ref()
        .and_then(|i| i.public_ip_address())
        .map(str::to_string);
    let state = inst
        .as_ref()
        .and_then(|i| i.state())
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| "gone".into());
    let mut details = BTreeMap::new();
    details.insert("state".into(), state);
    if let Some(ip) = &public_ip {
        details.insert("public_ip".into(), ip.clone());
    }
    let reach = match (&p.key_name, &public_ip) {
        (Some(key), Some(ip)) => format!("ssh -i {key}.pem ec2-user@{ip}"),
        (Some(_), None) => "ssh is configured but the instance has no public IP".into(),
        (None, _) => format!(
            "no inbound access (add ssh: to the host); EC2 console → Connect, or: aws ec2-instance-connect ssh --instance-id {}",
            live.id
        ),
    };
    details.insert("reach".into(), reach);
    details.insert("agent_log".into(), AGENT_LOG.into());
    Ok(details)
}

/// Attributes whose change forces a new instance.
pub const REPLACE_ON: &[&str] = &["instance_type", "image", "subnet", "key_name", "user_data"];

/// Marks an instance the stack adopted (`streamstack adopt`, the spec's `instance_id`) rather
/// than launched: it was started with someone else's user-data (or none), so the user-data and
/// the agent configuration it carries are not streamstack's. Such a host is never compared on
/// its user-data (which would replace it); its type, image, subnet and key pair still are.
pub const TAG_ADOPTED: &str = "streamstack:adopted";

/// Whether a live instance is one the stack adopts or adopted: tagged so, or the instance the
/// desired host names in `instance_id`.
pub fn is_adopted(id: &str, tags: &BTreeMap<String, String>, wanted: Option<&HostProps>) -> bool {
    tags.get(TAG_ADOPTED).is_some_and(|v| v == "true")
        || wanted.is_some_and(|w| w.instance_id.as_deref() == Some(id))
}

/// What the plan says of an update to an adopted instance (`None` for any other host): the
/// instance profile and the security group are swapped in place onto the running instance (a
/// tightening: the derived least-privilege ones replace the console's, which are not the stack's
/// and are left as they are), and the agent configuration is not streamstack's.
pub fn adopted_note(desired: &Resource, live: &Live) -> Option<String> {
    let want = desired.props.get::<HostProps>()?;
    let have = live.resource.props.get::<HostProps>()?;
    if !is_adopted(&live.id, &live.resource.tags, Some(want)) {
        return None;
    }
    let mut parts = Vec::new();
    if want.instance_profile != have.instance_profile {
        let before = if have.instance_profile.is_empty() {
            "no instance profile".to_string()
        } else {
            format!(
                "instance profile {} (not the stack's: its role and managed policies are left as they are)",
                have.instance_profile
            )
        };
        parts.push(format!(
            "a tightening: {before} → derived least-privilege profile {}, swapped in place on the running instance",
            want.instance_profile
        ));
    }
    if want.security_group != have.security_group {
        parts.push(format!(
            "security group {} → derived group {} (only the spec's rules), in place",
            have.security_group.as_deref().unwrap_or("default"),
            want.security_group.as_deref().unwrap_or("default")
        ));
    }
    parts.push(format!(
        "instance {} is adopted: its user-data and agent configuration are not managed by streamstack (check and tail still read the records of its flows)",
        live.id
    ));
    Some(parts.join("; "))
}

/// The tag EC2 consoles show as the instance name; it carries [`Resource::name`].
const NAME_TAG: &str = "Name";
/// States of an instance that still exists (not shutting down or terminated).
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

/// A host's tags as EC2 has them: with the name as the `Name` tag.
fn with_name(tags: &BTreeMap<String, String>, name: &str) -> BTreeMap<String, String> {
    let mut tags = tags.clone();
    tags.insert(NAME_TAG.to_string(), name.to_string());
    tags
}

/// The image a host was launched from, as the spec names it.
fn parse_image(tag: Option<&String>, image_id: Option<&str>) -> Image {
    match tag.map(String::as_str) {
        Some("al2023") => Image::Al2023,
        Some("al2023-arm64") => Image::Al2023Arm64,
        Some(s) if s.starts_with("ami-") => Image::Ami(s.to_string()),
        Some(s) if s.starts_with("ssm:") => Image::Ssm(s[4..].to_string()),
        _ => Image::Ami(image_id.unwrap_or_default().to_string()),
    }
}

/// Every instance of this stack that is not shutting down or terminated, including several per
/// address (an earlier apply that stopped half-way) and hosts removed from the spec.
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let states = LIVE_STATES.iter().map(|s| s.to_string()).collect();
    let states = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(states))
        .build();
    let reservations = pages!(
        "ec2:DescribeInstances",
        cx.clients
            .ec2
            .describe_instances()
            .filters(ec2_api::stack_filter(cx))
            .filters(states.clone()),
        set_next_token,
        |out| (
            out.reservations.unwrap_or_default(),
            next_token(out.next_token)
        )
    )
    .await?;
    let mut instances: Vec<Instance> = reservations
        .into_iter()
        .flat_map(|r| r.instances.unwrap_or_default())
        .collect();
    // The instances desired hosts adopt (`instance_id`), when not found by the stack's tag: read
    // as candidates that are not ours (adopt takes them; a plan refuses them until then).
    let adopting: Vec<String> = desired
        .of_kind(KIND)
        .filter_map(|r| r.props.get::<HostProps>()?.instance_id.clone())
        .filter(|id| {
            !instances
                .iter()
                .any(|i| i.instance_id() == Some(id.as_str()))
        })
        .collect();
    if cx.reads_settings() && !adopting.is_empty() {
        let reservations = pages!(
            "ec2:DescribeInstances",
            cx.clients
                .ec2
                .describe_instances()
                .filters(filter_of("instance-id", adopting.clone()))
                .filters(states.clone()),
            set_next_token,
            |out| (
                out.reservations.unwrap_or_default(),
                next_token(out.next_token)
            )
        )
        .await?;
        instances.extend(
            reservations
                .into_iter()
                .flat_map(|r| r.instances.unwrap_or_default()),
        );
    }
    let ids: Vec<String> = instances
        .iter()
        .filter_map(|i| i.instance_id.clone())
        .collect();
    // The associations and user-data are settings a plan compares; deleting needs neither
    // (DescribeInstances names the profile, for the order).
    let profiles = if cx.reads_settings() {
        profile_associations(cx, &ids).await?
    } else {
        BTreeMap::new()
    };
    let found = try_join_all(instances.iter().map(|i| read(cx, i, &profiles, desired))).await?;
    Ok(found.into_iter().flatten().collect())
}

/// The instances of `ids` that are in one of [`LIVE_STATES`] (DescribeInstances takes at most
/// 200 values per filter, so the ids go in chunks).
async fn live_instances(
    clients: &crate::aws::Clients,
    ids: &[String],
) -> Result<Vec<aws_sdk_ec2::types::Instance>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(200) {
        let states = LIVE_STATES.iter().map(|s| s.to_string()).collect();
        let request = clients
            .ec2
            .describe_instances()
            .filters(filter_of("instance-id", chunk.to_vec()))
            .filters(filter_of("instance-state-name", states));
        let reservations = pages!(
            "ec2:DescribeInstances",
            request.clone(),
            set_next_token,
            |out| (
                out.reservations.unwrap_or_default(),
                next_token(out.next_token)
            )
        )
        .await?;
        out.extend(
            reservations
                .into_iter()
                .flat_map(|r| r.instances.unwrap_or_default()),
        );
    }
    Ok(out)
}

/// For `stacks`: the instances and volumes the Resource Groups Tagging API lists that are no
/// leftovers. A terminated instance keeps its tags for a while (and stays listed); one pending,
/// running, stopping or stopped is the costliest leftover of all. Volumes go with their
/// instance (launched with `DeleteOnTermination`), so they are never counted on their own.
async fn not_leftovers(clients: &crate::aws::Clients, listed: &[String]) -> Result<ListingFix> {
    let instance_id = |arn: &String| arn.split_once(":instance/").map(|(_, id)| id.to_string());
    let ids: Vec<String> = listed.iter().filter_map(instance_id).collect();
    let existing: Vec<String> = live_instances(clients, &ids)
        .await?
        .into_iter()
        .filter_map(|i| i.instance_id)
        .collect();
    let not_leftovers = listed
        .iter()
        .filter(|arn| {
            arn.contains(":volume/") || instance_id(arn).is_some_and(|id| !existing.contains(&id))
        })
        .cloned()
        .collect();
    Ok(ListingFix {
        unlisted: Vec::new(),
        not_leftovers,
    })
}

/// An EC2 filter on `name` with several values.
fn filter_of(name: &str, values: Vec<String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values))
        .build()
}

/// Is an instance-profile association in effect (or becoming so)?
fn association_current(a: &IamInstanceProfileAssociation) -> bool {
    a.state().is_some_and(|s| {
        matches!(
            s,
            IamInstanceProfileAssociationState::Associated
                | IamInstanceProfileAssociationState::Associating
        )
    })
}

/// The instance profile each instance is associated with, by instance id.
///
/// Read from the associations rather than from DescribeInstances: this is where a replaced
/// profile shows first (and moto never updates the instance after
/// ReplaceIamInstanceProfileAssociation).
async fn profile_associations(cx: &Cx, ids: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(200) {
        for a in associations(cx, chunk).await? {
            let profile = a
                .iam_instance_profile()
                .and_then(|p| p.arn())
                .map(profile_name);
            if let (true, Some(id), Some(profile)) =
                (association_current(&a), a.instance_id(), profile)
            {
                out.insert(id.to_string(), profile.to_string());
            }
        }
    }
    Ok(out)
}

/// The instance-profile associations of the instances `ids` (at most 200), every page.
async fn associations(cx: &Cx, ids: &[String]) -> Result<Vec<IamInstanceProfileAssociation>> {
    let instances = Filter::builder()
        .name("instance-id")
        .set_values(Some(ids.to_vec()))
        .build();
    let ec2 = &cx.clients.ec2;
    pages!(
        "ec2:DescribeIamInstanceProfileAssociations",
        ec2.describe_iam_instance_profile_associations()
            .filters(instances.clone()),
        set_next_token,
        |out| (
            out.iam_instance_profile_associations.unwrap_or_default(),
            next_token(out.next_token)
        )
    )
    .await
}

/// The name in an instance profile ARN (`arn:aws:iam::1:instance-profile/path/NAME`).
fn profile_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The decoded user-data of an instance (`""` when it has none).
async fn user_data(cx: &Cx, id: &str) -> Result<String> {
    let out = cx
        .clients
        .ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .op("ec2:DescribeInstanceAttribute")?;
    // Every instance streamstack launches has user-data: an answer without it is partial, and
    // reading it as "none" would replace a healthy instance.
    let Some(encoded) = out.user_data.and_then(|v| v.value) else {
        return Err(Error::Incomplete {
            operation: "ec2:DescribeInstanceAttribute",
            field: "UserData",
        });
    };
    // EC2 sends it base64-encoded; text that is not base64 is taken as it came.
    match base64::engine::general_purpose::STANDARD.decode(encoded.trim()) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => Ok(encoded),
    }
}

/// One described instance as a live host; `None` without a valid address tag.
async fn read(
    cx: &Cx,
    i: &Instance,
    profiles: &BTreeMap<String, String>,
    desired: &Model,
) -> Result<Option<Live>> {
    let Some(id) = i.instance_id() else {
        return Ok(None);
    };
    let mut tags = ec2_api::tag_map(i.tags());
    // The desired host that adopts this instance (`instance_id`), if any: the address of an
    // instance that is not ours yet (even one tagged by another stack, which adopt refuses).
    let adopter = desired
        .of_kind(KIND)
        .find(|r| {
            r.props
                .get::<HostProps>()
                .is_some_and(|p| p.instance_id.as_deref() == Some(id))
        })
        .map(|r| r.address.clone());
    let tagged = tagged_address(&tags, KIND);
    let address = if owned_by(&tags, &cx.stack) {
        tagged.or(adopter)
    } else {
        adopter.or(tagged)
    };
    let Some(address) = address else {
        return Ok(None);
    };
    let name = tags.remove(NAME_TAG).unwrap_or_else(|| id.to_string());
    // The host's own bootstrap report is not drift (see TAG_BOOTSTRAP).
    tags.remove(TAG_BOOTSTRAP);
    tags.retain(|k, _| !k.starts_with("aws:"));
    let wanted = desired
        .get(&address)
        .and_then(|r| r.props.get::<HostProps>());
    let groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_name())
        .collect();
    let security_group = wanted
        .and_then(|w| w.security_group.as_deref())
        .filter(|n| groups.contains(n))
        .or_else(|| groups.iter().copied().find(|g| *g != "default"))
        .map(str::to_string);
    let instance_profile = profiles
        .get(id)
        .map(String::as_str)
        .or_else(|| {
            i.iam_instance_profile()
                .and_then(|p| p.arn())
                .map(profile_name)
        })
        .unwrap_or_default()
        .to_string();
    // Fields that force a replacement must be read, never guessed: a partial answer is an
    // error naming the field, not a reason to terminate a healthy instance.
    let instance_type =
        i.instance_type()
            .map(|t| t.as_str().to_string())
            .ok_or(Error::Incomplete {
                operation: "ec2:DescribeInstances",
                field: "InstanceType",
            })?;
    let adopted = is_adopted(id, &tags, wanted);
    let image = match (tags.get(TAG_IMAGE), wanted) {
        (Some(tag), _) => parse_image(Some(tag), i.image_id()),
        // An instance being adopted has no image tag yet: its AMI is what the spec must name.
        (None, Some(_)) if adopted => parse_image(None, i.image_id()),
        // The tag was removed out of band: it shows as a tag change (and is put back); the
        // image itself cannot be told from the AMI id, so it is taken as unchanged.
        (None, Some(w)) => w.image.clone(),
        (None, None) => parse_image(None, i.image_id()),
    };
    let subnet = match wanted {
        Some(w) if w.subnet.is_some() => {
            Some(i.subnet_id().map(str::to_string).ok_or(Error::Incomplete {
                operation: "ec2:DescribeInstances",
                field: "SubnetId",
            })?)
        }
        _ => None,
    };
    let props = HostProps {
        instance_type,
        image,
        subnet,
        key_name: match wanted {
            // Set at launch only, by whoever launched it: not compared on an adopted instance.
            Some(w) if adopted => w.key_name.clone(),
            _ => i.key_name().map(str::to_string),
        },
        instance_profile,
        security_group,
        user_data: match wanted {
            // Not streamstack's (TAG_ADOPTED): never compared, so never a replacement.
            Some(w) if adopted => w.user_data.clone(),
            _ if cx.reads_settings() => user_data(cx, id).await?,
            _ => String::new(),
        },
        http_tokens_required: i
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .is_some_and(|t| *t == HttpTokensState::Required),
        instance_id: wanted.and_then(|w| w.instance_id.clone()),
    };
    let props = Props::new(props);
    Ok(Some(Live::new(
        id.to_string(),
        owned_by(&tags, &cx.stack),
        address,
        name,
        tags,
        props,
    )))
}

/// The AMI id the image stands for in this region.
/// The AMI id of `p.image`, asked once per session.
async fn image_id(cx: &Cx, r: &Resource, p: &HostProps) -> Result<String> {
    cx.lookups
        .get(format!("host.image:{}", p.image), || {
            resolve_image(cx, &r.address, &p.image)
        })
        .await
}

/// The subnet to launch in: the spec's, else a default one offering the instance type (asked
/// once per session).
async fn subnet_id(cx: &Cx, p: &HostProps) -> Result<Option<String>> {
    match &p.subnet {
        Some(s) => Ok(Some(s.clone())),
        None => {
            cx.lookups
                .get(format!("host.subnet:{}", p.instance_type), || {
                    default_subnet(cx, &p.instance_type)
                })
                .await
        }
    }
}

async fn resolve_image(cx: &Cx, address: &Address, image: &Image) -> Result<String> {
    let Some(param) = image.ssm_parameter() else {
        return Ok(image.to_string());
    };
    let out = match cx
        .clients
        .ssm
        .get_parameter()
        .name(&param)
        .send()
        .await
        .op("ssm:GetParameter")
    {
        Ok(o) => o,
        Err(e) if e.code() == Some("ParameterNotFound") => {
            return Err(Error::resource(
                address,
                format!(
                    "image {image}: SSM parameter {param} does not exist in region {} ({e})",
                    cx.clients.region
                ),
            ))
        }
        Err(e) => return Err(e),
    };
    out.parameter
        .and_then(|p| p.value)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::resource(
                address,
                format!("image {image}: SSM parameter {param} has no value"),
            )
        })
}

/// The id of this stack's security group called `name`.
async fn security_group_id(cx: &Cx, address: &Address, name: &str) -> Result<String> {
    // A group created a moment ago may not be listed yet (EC2 is eventually consistent): an
    // empty answer is waited out before it counts as "missing".
    let found = wait_for(
        cx,
        address,
        &format!("security group {name} to be visible"),
        cx.timeouts.iam_propagation,
        || async {
            let ours = vec![filter("group-name", name), ec2_api::stack_filter(cx)];
            let groups = ec2_api::security_groups(cx, ours).await?;
            Ok(groups.into_iter().find_map(|g| g.group_id))
        },
    )
    .await;
    match found {
        Err(Error::Timeout { .. }) => Err(Error::resource(
            address,
            format!(
                "security group {name} of stack {} does not exist; run apply again to create it",
                cx.stack
            ),
        )),
        other => other,
    }
}

/// The default security group of the VPC the instance is in.
async fn default_group_id(cx: &Cx, address: &Address, instance_id: &str) -> Result<String> {
    let vpc = describe(cx, instance_id)
        .await?
        .and_then(|i| i.vpc_id)
        .ok_or_else(|| Error::resource(address, format!("instance {instance_id} has no VPC")))?;
    let default = vec![filter("group-name", "default"), filter("vpc-id", &vpc)];
    ec2_api::security_groups(cx, default)
        .await?
        .into_iter()
        .find_map(|g| g.group_id)
        .ok_or_else(|| Error::resource(address, format!("VPC {vpc} has no default security group")))
}

/// One instance by id; `None` if EC2 does not know it (yet, or any more).
async fn describe(cx: &Cx, id: &str) -> Result<Option<Instance>> {
    let call = cx.clients.ec2.describe_instances().instance_ids(id);
    let Some(out) = found(call.send().await.op("ec2:DescribeInstances"))? else {
        return Ok(None);
    };
    Ok(out
        .reservations
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.instances.unwrap_or_default())
        .find(|i| i.instance_id() == Some(id)))
}

/// A RunInstances idempotency token (64 hex characters, EC2's maximum), the same for every run
/// that launches this desired host: a retry, or a rerun after kill -9 whose launch reached AWS,
/// gets the instance already launched instead of a second one (aws-domain.md §4.5). `salt`
/// makes a new generation when a token's instance is gone (terminated out of band).
fn client_token(cx: &Cx, r: &Resource, salt: &str) -> Result<String> {
    let desired = serde_json::to_string(&r.props)
        .map_err(|e| Error::Internal(format!("{}: properties as JSON: {e}", r.address)))?;
    let digest = Sha256::digest(format!(
        "{}/{}/{}/{}/{desired}/{salt}",
        cx.env.account_id, cx.env.region, cx.stack, r.address
    ));
    Ok(format!("{digest:x}"))
}

fn tag_spec(kind: ResourceType, tags: &[Tag]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.to_vec()))
        .build()
}

/// Without a subnet in the spec: a default subnet in an Availability Zone that offers the
/// instance type (EC2 would otherwise pick any AZ, and not every AZ has every type). `None`
/// leaves the choice to EC2 when the offerings cannot be told.
async fn default_subnet(cx: &Cx, instance_type: &str) -> Result<Option<String>> {
    let offered = cx
        .clients
        .ec2
        .describe_instance_type_offerings()
        .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
        .filters(filter("instance-type", instance_type))
        .send()
        .await
        .op("ec2:DescribeInstanceTypeOfferings")?;
    let zones: Vec<String> = offered
        .instance_type_offerings
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| o.location)
        .collect();
    if zones.is_empty() {
        return Ok(None);
    }
    let subnets = cx
        .clients
        .ec2
        .describe_subnets()
        .filters(filter("default-for-az", "true"))
        .send()
        .await
        .op("ec2:DescribeSubnets")?;
    let mut fitting: Vec<(String, String)> = subnets
        .subnets
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| Some((s.availability_zone?, s.subnet_id?)))
        .filter(|(az, _)| zones.contains(az))
        .collect();
    fitting.sort();
    Ok(fitting.into_iter().next().map(|(_, id)| id))
}

/// What RunInstances is sent for a host, but for the client token.
struct Launch {
    ami: String,
    subnet: Option<String>,
    group: Option<String>,
    tags: Vec<Tag>,
    metadata: InstanceMetadataOptionsRequest,
    profile: IamInstanceProfileSpecification,
    user_data: String,
}

/// Resolves what a launch needs: three independent lookups, at once (the first two usually
/// done by `prepare`).
async fn launch(cx: &Cx, r: &Resource, p: &HostProps) -> Result<Launch> {
    let (ami, subnet, group) = futures::try_join!(image_id(cx, r, p), subnet_id(cx, p), async {
        match &p.security_group {
            Some(name) => security_group_id(cx, &r.address, name).await.map(Some),
            None => Ok(None),
        }
    },)?;
    let metadata = InstanceMetadataOptionsRequest::builder()
        .http_tokens(if p.http_tokens_required {
            HttpTokensState::Required
        } else {
            HttpTokensState::Optional
        })
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .http_put_response_hop_limit(1)
        .build();
    Ok(Launch {
        ami,
        subnet,
        group,
        tags: ec2_api::tags(&with_name(&r.tags, &r.name)),
        metadata,
        profile: IamInstanceProfileSpecification::builder()
            .name(&p.instance_profile)
            .build(),
        user_data: base64::engine::general_purpose::STANDARD.encode(&p.user_data),
    })
}

pub async fn create(cx: &Cx, r: &Resource, _desired: &Model) -> Result<()> {
    let p = props::<HostProps>(r)?;
    let launch = launch(cx, r, p).await?;
    let mut salt = String::new();
    loop {
        // One token for every attempt: a retry after an ambiguous failure can never start a
        // second instance.
        let token = client_token(cx, r, &salt)?;
        let out = retry(
            cx,
            &r.address,
            cx.timeouts.iam_propagation,
            Error::is_iam_propagation,
            || run_instance(cx, p, &launch, &token),
        )
        .await?;
        let instance =
            out.instances
                .unwrap_or_default()
                .into_iter()
                .next()
                .ok_or(Error::Incomplete {
                    operation: "ec2:RunInstances",
                    field: "Instances",
                })?;
        let id = instance.instance_id.clone().ok_or(Error::Incomplete {
            operation: "ec2:RunInstances",
            field: "Instances[0].InstanceId",
        })?;
        // EC2 answers a reused token with the instance it launched then, even one terminated
        // since: launch a new generation instead of waiting for a dead one.
        let gone = instance.state().and_then(|s| s.name()).is_some_and(|n| {
            matches!(
                n,
                InstanceStateName::ShuttingDown | InstanceStateName::Terminated
            )
        });
        if gone && salt.is_empty() {
            tracing::info!(
                "{}: token's instance {id} is gone; launching anew",
                r.address
            );
            salt = id;
            continue;
        }
        return wait_running(cx, &r.address, &id).await;
    }
}

/// One RunInstances of the host, with idempotency token `token`.
async fn run_instance(
    cx: &Cx,
    p: &HostProps,
    launch: &Launch,
    token: &str,
) -> Result<aws_sdk_ec2::operation::run_instances::RunInstancesOutput> {
    cx.clients
        .ec2
        .run_instances()
        .image_id(&launch.ami)
        .instance_type(InstanceType::from(p.instance_type.as_str()))
        .min_count(1)
        .max_count(1)
        .set_subnet_id(launch.subnet.clone())
        .set_key_name(p.key_name.clone())
        .set_security_group_ids(launch.group.clone().map(|g| vec![g]))
        .iam_instance_profile(launch.profile.clone())
        .user_data(&launch.user_data)
        .metadata_options(launch.metadata.clone())
        .tag_specifications(tag_spec(ResourceType::Instance, &launch.tags))
        .tag_specifications(tag_spec(ResourceType::Volume, &launch.tags))
        .client_token(token)
        .send()
        .await
        .op("ec2:RunInstances")
}

/// Waits until the instance is `running`; fails at once if it goes away instead.
async fn wait_running(cx: &Cx, address: &Address, id: &str) -> Result<()> {
    let timeout = cx.timeouts.instance;
    wait_for(cx, address, "instance running", timeout, || {
        running(cx, address, id)
    })
    .await
}

/// Whether instance `id` is running (`Some`), not yet (`None`), or went away instead (an
/// error). A just-started instance may not be visible yet (eventual consistency): not yet.
async fn running(cx: &Cx, address: &Address, id: &str) -> Result<Option<()>> {
    let Some(i) = describe(cx, id).await? else {
        return Ok(None);
    };
    let state = i.state().and_then(|s| s.name());
    match state {
        Some(InstanceStateName::Running) => Ok(Some(())),
        Some(
            s @ (InstanceStateName::ShuttingDown
            | InstanceStateName::Terminated
            | InstanceStateName::Stopping
            | InstanceStateName::Stopped),
        ) => {
            let reason = i
                .state_reason()
                .and_then(|r| r.message())
                .or(i.state_transition_reason())
                .unwrap_or("no reason given");
            Err(Error::resource(
                address,
                format!(
                    "instance {id} went {} instead of running: {reason}",
                    s.as_str()
                ),
            ))
        }
        _ => Ok(None),
    }
}

/// The tags, and the name as the `Name` tag.
async fn set_tags(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let want = with_name(&desired.tags, &desired.name);
    let have = with_name(&live.resource.tags, &live.resource.name);
    ec2_api::set_tags(cx, &live.id, &want, &have).await
}

/// Puts the desired instance profile on the instance, replacing the associated one if any.
async fn set_profile(cx: &Cx, desired: &Resource, live: &Live, profile: &str) -> Result<()> {
    let ec2 = &cx.clients.ec2;
    let current = associations(cx, std::slice::from_ref(&live.id))
        .await?
        .into_iter()
        .filter(association_current)
        .find_map(|a| a.association_id);
    let spec = IamInstanceProfileSpecification::builder()
        .name(profile)
        .build();
    // The profile may have been created moments ago (aws-domain.md §4.1).
    retry(
        cx,
        &desired.address,
        cx.timeouts.iam_propagation,
        Error::is_iam_propagation,
        || async {
            match &current {
                Some(association) => ec2
                    .replace_iam_instance_profile_association()
                    .association_id(association)
                    .iam_instance_profile(spec.clone())
                    .send()
                    .await
                    .done("ec2:ReplaceIamInstanceProfileAssociation"),
                None => ec2
                    .associate_iam_instance_profile()
                    .instance_id(&live.id)
                    .iam_instance_profile(spec.clone())
                    .send()
                    .await
                    .done("ec2:AssociateIamInstanceProfile"),
            }
        },
    )
    .await
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props::<HostProps>(desired)?;
    let lp = props::<HostProps>(&live.resource)?;
    if p.http_tokens_required != lp.http_tokens_required {
        set_http_tokens(cx, &live.id, p.http_tokens_required).await?;
    }
    if p.security_group != lp.security_group {
        set_group(cx, desired, live, p.security_group.as_deref()).await?;
    }
    if p.instance_profile != lp.instance_profile {
        set_profile(cx, desired, live, &p.instance_profile).await?;
    }
    set_tags(cx, desired, live).await
}

/// IMDSv2 only (`required`), or IMDSv1 allowed too.
async fn set_http_tokens(cx: &Cx, id: &str, required: bool) -> Result<()> {
    let tokens = if required {
        HttpTokensState::Required
    } else {
        HttpTokensState::Optional
    };
    let call = cx.clients.ec2.modify_instance_metadata_options();
    let call = call.instance_id(id).http_tokens(tokens);
    let call = call.http_endpoint(InstanceMetadataEndpointState::Enabled);
    call.send().await.done("ec2:ModifyInstanceMetadataOptions")
}

/// Puts the instance in this stack's security group `name`, or, without one, in its VPC's
/// default group.
async fn set_group(cx: &Cx, desired: &Resource, live: &Live, name: Option<&str>) -> Result<()> {
    let group = match name {
        Some(name) => security_group_id(cx, &desired.address, name).await?,
        None => default_group_id(cx, &desired.address, &live.id).await?,
    };
    let call = cx.clients.ec2.modify_instance_attribute();
    let call = call.instance_id(&live.id).groups(group);
    call.send().await.done("ec2:ModifyInstanceAttribute")
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    let call = cx.clients.ec2.terminate_instances().instance_ids(&live.id);
    if found(call.send().await.op("ec2:TerminateInstances"))?.is_none() {
        return Ok(());
    }
    // Wait for the end, so the security group and instance profile can go after it.
    wait_for(
        cx,
        live.address(),
        "instance terminated",
        cx.timeouts.instance,
        || async {
            Ok(match describe(cx, &live.id).await? {
                None => Some(()),
                Some(i) => i
                    .state()
                    .and_then(|s| s.name())
                    .filter(|s| **s == InstanceStateName::Terminated)
                    .map(|_| ()),
            })
        },
    )
    .await
}

/// What a host bills per hour (`crate::cost`): its instance-hour by type and its root EBS gp3
/// volume (GB-months, by the hour).
fn cost_lines(r: &Resource, usage: &crate::cost::Usage) -> Vec<crate::cost::Line> {
    let Ok(p) = props::<HostProps>(r) else {
        return Vec::new();
    };
    instance_lines(&p.instance_type, true, usage.volume_gb)
}

fn instance_lines(instance_type: &str, running: bool, volume_gb: f64) -> Vec<crate::cost::Line> {
    use crate::cost::{Line, Price, HOURS_PER_MONTH};
    let mut lines = Vec::new();
    if running {
        lines.push(Line::new(
            format!("{instance_type} instance-hours"),
            Price::Ec2Hour(instance_type.to_string()),
            1.0,
        ));
    }
    lines.push(Line::new(
        format!("EBS gp3 root volume, {volume_gb} GB"),
        Price::EbsGp3GbMonth,
        volume_gb / HOURS_PER_MONTH,
    ));
    lines
}

/// For `stacks`: the listed instances that are pending, running, stopping or stopped, each
/// with its type (a stopped one bills only its volume).
async fn listed_cost(
    clients: &crate::aws::Clients,
    arns: &[String],
) -> Result<crate::cost::Priced> {
    let by_id: BTreeMap<&str, &String> = arns
        .iter()
        .filter_map(|arn| arn.split_once(":instance/").map(|(_, id)| (id, arn)))
        .collect();
    let ids: Vec<String> = by_id.keys().map(|id| id.to_string()).collect();
    let mut out = Vec::new();
    for i in live_instances(clients, &ids).await? {
        let Some(arn) = i.instance_id.as_deref().and_then(|id| by_id.get(id)) else {
            continue;
        };
        let arn = arn.to_string();
        let running = !matches!(
            i.state.as_ref().and_then(|s| s.name.as_ref()),
            Some(aws_sdk_ec2::types::InstanceStateName::Stopped)
        );
        let instance_type = i
            .instance_type
            .as_ref()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        out.push((
            arn,
            instance_lines(
                &instance_type,
                running,
                crate::cost::Usage::default().volume_gb,
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Props;

    fn props(profile: &str, group: Option<&str>, instance_id: Option<&str>) -> HostProps {
        HostProps {
            instance_type: "t2.micro".into(),
            image: Image::Ami("ami-0abc1234".into()),
            subnet: None,
            key_name: None,
            instance_profile: profile.into(),
            security_group: group.map(str::to_string),
            user_data: "#!/bin/bash\n".into(),
            http_tokens_required: true,
            instance_id: instance_id.map(str::to_string),
        }
    }

    fn live(id: &str, tags: &[(&str, &str)], p: HostProps) -> Live {
        Live::new(
            id.into(),
            true,
            Address::new(KIND, "agent"),
            "lab-agent".into(),
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Props::new(p),
        )
    }

    #[test]
    fn an_instance_is_adopted_by_its_tag_or_the_spec_s_instance_id() {
        let want = props("p", None, Some("i-0123456789abcdef0"));
        let none = BTreeMap::new();
        assert!(is_adopted("i-0123456789abcdef0", &none, Some(&want)));
        assert!(!is_adopted("i-0fedcba987654321f", &none, Some(&want)));
        assert!(!is_adopted("i-0123456789abcdef0", &none, None));
        let tagged: BTreeMap<String, String> =
            [(TAG_ADOPTED.to_string(), "true".to_string())].into();
        assert!(is_adopted("i-0fedcba987654321f", &tagged, None));
    }

    /// The plan names the swap of the console's profile and group as a tightening, and says the
    /// agent configuration is not managed; a host streamstack launched gets no note.
    #[test]
    fn an_update_to_an_adopted_instance_is_noted_as_a_tightening() {
        let id = "i-0123456789abcdef0";
        let mut desired = crate::kinds::fake::resource(KIND, "agent", serde_json::json!({}));
        desired.props = Props::new(props("lab-agent-host", Some("lab-agent-ssh"), Some(id)));
        let before = live(
            id,
            &[],
            props("ec2-kinesis-role", Some("launch-wizard-1"), Some(id)),
        );
        let note = adopted_note(&desired, &before).unwrap();
        for part in [
            "a tightening: instance profile ec2-kinesis-role (not the stack's",
            "→ derived least-privilege profile lab-agent-host, swapped in place",
            "security group launch-wizard-1 → derived group lab-agent-ssh",
            "not managed by streamstack",
        ] {
            assert!(note.contains(part), "{part}: {note}");
        }
        // In sync but for its tags: only the agent note.
        let synced = live(
            id,
            &[],
            props("lab-agent-host", Some("lab-agent-ssh"), Some(id)),
        );
        let note = adopted_note(&desired, &synced).unwrap();
        assert!(!note.contains("tightening"), "{note}");
        // A host streamstack launched: no note.
        desired.props = Props::new(props("lab-agent-host", None, None));
        let launched = live(id, &[], props("other", None, None));
        assert_eq!(adopted_note(&desired, &launched), None);
    }
}
