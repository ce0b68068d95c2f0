//! EC2 security groups, one per host with `ssh`: TCP 22 from the given CIDR blocks, default
//! egress kept (hosts install packages and reach Kinesis/Firehose).
//!
//! - Read: `DescribeSecurityGroups`, by the stack tag (ours, including groups of hosts removed
//!   from the spec) and by the desired group names (same-named groups that are not ours).
//!   `ssh_from` is every IPv4 and IPv6 range of the ingress rules on exactly TCP 22.
//! - In place: `ssh_from` (authorize/revoke one CIDR at a time) and tags.
//! - Replace: `description` (EC2 cannot change it) and `subnet` when the new one is in another VPC
//!   (a group belongs to one VPC); a name change is a new address.
//! - Delete: `DependencyViolation` while a terminated instance still holds the group is retried.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, TagSpecification,
};

use serde::Serialize;

use super::ec2_api::{self, filter};
pub use super::SECURITY_GROUP as KIND;
use super::{
    address_for, already_done, delete_when_free, owned_by, props, retry, wait_for, Cx, Live,
    ResourceKind,
};
use crate::aws::Ctx;
use crate::model::{Model, Props, Resource};
use crate::{Error, Result};

/// Attributes whose change forces a new group: EC2 cannot change a group's description, nor
/// move it to another VPC.
pub const REPLACE_ON: &[&str] = &["description", "subnet"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroupProps {
    pub description: String,
    /// CIDR blocks allowed to TCP port 22; nothing else is allowed in.
    pub ssh_from: Vec<String>,
    /// Where the group is made: in the VPC of its host's subnet (`hosts.KEY.subnet`), or in
    /// the default VPC (`None`). A value the create reads from another resource (the subnet),
    /// so it is an attribute the plan compares, and a change replaces the group. EC2 reports
    /// a group's VPC, not a subnet: a live group in the VPC of the desired subnet reads as that
    /// subnet; one in another VPC reads as its VPC id (`vpc-…`), which differs.
    pub subnet: Option<String>,
}

pub struct SecurityGroups;

impl ResourceKind for SecurityGroups {
    lifecycle_from_module_fns!(kinds: &[KIND]; cloudformation);
    fn replace_on(&self) -> &'static [&'static str] {
        REPLACE_ON
    }
    fn name_namespace(&self) -> Option<(&'static str, bool)> {
        Some(("security group", false))
    }
}

fn cloudformation(r: &Resource, _cfn: &crate::cfn::Cfn) -> Option<crate::cfn::CfnResource> {
    let p = r.props.get::<SecurityGroupProps>()?;
    let ingress: Vec<serde_json::Value> = p
        .ssh_from
        .iter()
        .map(|cidr| {
            let range = if is_ipv6(cidr) { "CidrIpv6" } else { "CidrIp" };
            serde_json::json!({"IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT,
                range: cidr, "Description": RULE_DESCRIPTION})
        })
        .collect();
    let props = serde_json::json!({
        "GroupName": r.name,
        "GroupDescription": p.description,
        "SecurityGroupIngress": ingress,
        "Tags": crate::cfn::tags(&r.tags),
    });
    Some(crate::cfn::CfnResource::new(
        "AWS::EC2::SecurityGroup",
        props,
    ))
}

/// The description of every ingress rule streamstack adds.
const RULE_DESCRIPTION: &str = "streamstack ssh";
const SSH_PORT: i32 = 22;

/// Every group this stack has or wants: those tagged as ours, plus any group named like a
/// desired one (which the planner refuses to touch unless it is ours).
pub async fn discover(cx: &Cx, desired: &Model) -> Result<Vec<Live>> {
    let groups = described(cx, desired).await?;
    // Where the desired groups belong, when there is a live group to compare.
    let vpcs = if cx.reads_settings() && !groups.is_empty() {
        desired_vpcs(cx, desired).await?
    } else {
        BTreeMap::new()
    };
    Ok(groups
        .into_values()
        .filter_map(|g| live(cx, g, desired, &vpcs))
        .collect())
}

/// The groups tagged as the stack's and those with a desired name, by id.
async fn described(cx: &Cx, desired: &Model) -> Result<BTreeMap<String, SecurityGroup>> {
    let mut groups: BTreeMap<String, SecurityGroup> = BTreeMap::new();
    for g in ec2_api::security_groups(cx, vec![ec2_api::stack_filter(cx)]).await? {
        if let Some(id) = g.group_id.clone() {
            groups.insert(id, g);
        }
    }
    let names: Vec<String> = desired.of_kind(KIND).map(|r| r.name.clone()).collect();
    if !names.is_empty() {
        let named = Filter::builder()
            .name("group-name")
            .set_values(Some(names))
            .build();
        for g in ec2_api::security_groups(cx, vec![named]).await? {
            if let Some(id) = g.group_id.clone() {
                groups.entry(id).or_insert(g);
            }
        }
    }
    Ok(groups)
}

/// The VPC each desired group's `subnet` stands for (`None`: not found).
async fn desired_vpcs(cx: &Cx, desired: &Model) -> Result<Vpcs> {
    let subnets: BTreeSet<Option<String>> = desired
        .of_kind(KIND)
        .filter_map(|r| r.props.get::<SecurityGroupProps>())
        .map(|p| p.subnet.clone())
        .collect();
    let mut out = BTreeMap::new();
    for subnet in subnets {
        let vpc = vpc_of(cx, subnet.as_deref()).await?;
        out.insert(subnet, vpc);
    }
    Ok(out)
}

/// The VPC of each subnet (`None`: the default VPC) a desired group names, if it was found.
type Vpcs = BTreeMap<Option<String>, Option<String>>;

/// Reads the group with this name; `None` if there is none. When several VPCs hold a group of
/// this name, this stack's one wins.
pub async fn read(cx: &Cx, name: &str, desired: &Model) -> Result<Option<Live>> {
    let named = vec![filter("group-name", name)];
    let mut found: Vec<Live> = ec2_api::security_groups(cx, named)
        .await?
        .into_iter()
        .filter_map(|g| live(cx, g, desired, &Vpcs::new()))
        .collect();
    found.sort_by_key(|l| !l.ours);
    Ok(found.into_iter().next())
}

/// A CIDR block in a comparable form: the address as Rust prints it (lowercase, compressed
/// IPv6), the prefix length as a number. Unparseable text is kept as it is.
fn cidr_key(cidr: &str) -> String {
    let Some((addr, len)) = cidr.split_once('/') else {
        return cidr.to_string();
    };
    match (addr.parse::<IpAddr>(), len.parse::<u8>()) {
        (Ok(a), Ok(n)) => format!("{a}/{n}"),
        _ => cidr.to_string(),
    }
}

fn cidr_set(cidrs: &[String]) -> BTreeSet<String> {
    cidrs.iter().map(|c| cidr_key(c)).collect()
}

/// The blocks of `cidrs` that `other` does not have (compared as [`cidr_key`]s).
fn not_in(cidrs: &[String], other: &[String]) -> Vec<String> {
    let other = cidr_set(other);
    cidrs
        .iter()
        .filter(|c| !other.contains(&cidr_key(c)))
        .cloned()
        .collect()
}

fn is_ipv6(cidr: &str) -> bool {
    cidr.contains(':')
}

/// The live resource of a described group; `None` without an id or name. `vpcs` tells where
/// the desired groups belong (empty: not compared).
fn live(cx: &Cx, g: SecurityGroup, desired: &Model, vpcs: &Vpcs) -> Option<Live> {
    let id = g.group_id?;
    let name = g.group_name?;
    let tags = ec2_api::tag_map(g.tags.as_deref().unwrap_or_default());
    let mut ssh_from: Vec<String> = g
        .ip_permissions
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.ip_protocol.as_deref() == Some("tcp")
                && p.from_port == Some(SSH_PORT)
                && p.to_port == Some(SSH_PORT)
        })
        .flat_map(|p| {
            let v4 = p
                .ip_ranges
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.cidr_ip);
            let v6 = p
                .ipv6_ranges
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.cidr_ipv6);
            v4.chain(v6).collect::<Vec<_>>()
        })
        .collect();
    ssh_from.sort();
    ssh_from.dedup();
    let address = address_for(KIND, &name, &tags, desired);
    // The spec's order is not AWS's: when the sets agree, answer in the spec's order so that
    // an unchanged group compares equal.
    let want = desired
        .get(&address)
        .and_then(|r| r.props.get::<SecurityGroupProps>());
    if let Some(want) = want {
        if cidr_set(&want.ssh_from) == cidr_set(&ssh_from) {
            ssh_from = want.ssh_from.clone();
        }
    }
    // EC2 reports a group's VPC, not a subnet: the desired one stands for it when the group
    // is in that subnet's VPC (or when that cannot be told), else the group's VPC id does.
    let subnet = match want {
        Some(w) => match (vpcs.get(&w.subnet), &g.vpc_id) {
            (Some(Some(vpc)), Some(here)) if vpc != here => Some(here.clone()),
            _ => w.subnet.clone(),
        },
        None => g.vpc_id.clone(),
    };
    let props = Props::new(SecurityGroupProps {
        description: g.description.unwrap_or_default(),
        ssh_from,
        subnet,
    });
    Some(Live::new(
        id,
        owned_by(&tags, &cx.stack),
        address,
        name,
        tags,
        props,
    ))
}

/// The VPC of the group's subnet when it names one, else the default VPC.
async fn vpc_for(cx: &Cx, r: &Resource) -> Result<String> {
    let subnet = props::<SecurityGroupProps>(r)?.subnet.as_deref();
    vpc_of(cx, subnet).await?.ok_or_else(|| {
        let message = match subnet {
            Some(subnet) => format!(
                "subnet {subnet} (hosts.{}.subnet) was not found",
                r.address.key
            ),
            None => format!(
                "no default VPC in {}; set hosts.{}.subnet",
                cx.env.region, r.address.key
            ),
        };
        Error::resource(&r.address, message)
    })
}

/// The VPC of `subnet`, or the default VPC without one; `None` when there is no such subnet
/// or no default VPC. Asked once per session.
async fn vpc_of(cx: &Cx, subnet: Option<&str>) -> Result<Option<String>> {
    let key = format!("security_group.vpc:{}", subnet.unwrap_or("default"));
    cx.lookups
        .get(key, || async {
            let ec2 = &cx.clients.ec2;
            if let Some(subnet) = subnet {
                let call = ec2.describe_subnets().subnet_ids(subnet).send().await;
                let out = super::found(call.op("ec2:DescribeSubnets"))?;
                let subnets = out.and_then(|o| o.subnets).unwrap_or_default();
                return Ok(subnets.into_iter().find_map(|s| s.vpc_id));
            }
            let call = ec2.describe_vpcs().filters(filter("isDefault", "true"));
            let out = call.send().await.op("ec2:DescribeVpcs")?;
            Ok(out
                .vpcs
                .unwrap_or_default()
                .into_iter()
                .find_map(|v| v.vpc_id))
        })
        .await
}

/// One TCP 22 permission for one CIDR block.
fn ssh_permission(cidr: &str, with_description: bool) -> IpPermission {
    let description = with_description.then(|| RULE_DESCRIPTION.to_string());
    let p = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(SSH_PORT)
        .to_port(SSH_PORT);
    if is_ipv6(cidr) {
        p.ipv6_ranges(
            Ipv6Range::builder()
                .cidr_ipv6(cidr)
                .set_description(description)
                .build(),
        )
        .build()
    } else {
        p.ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .set_description(description)
                .build(),
        )
        .build()
    }
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<()> {
    let p = props::<SecurityGroupProps>(r)?;
    let vpc = vpc_for(cx, r).await?;
    let created = cx
        .clients
        .ec2
        .create_security_group()
        .group_name(&r.name)
        .description(&p.description)
        .vpc_id(vpc)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .set_tags(Some(ec2_api::tags(&r.tags)))
                .build(),
        )
        .send()
        .await
        .op("ec2:CreateSecurityGroup");
    let out = match created {
        Ok(out) => out,
        // Created by an earlier attempt whose answer was lost, or by an interrupted run (the
        // group is tagged at creation): converge it if it is ours. EC2 may not list a new
        // group at once, so it is waited for.
        Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
            let live = wait_for(
                cx,
                &r.address,
                &format!("security group {} to be visible", r.name),
                cx.timeouts.iam_propagation,
                || async { read(cx, &r.name, desired).await },
            )
            .await?;
            if !live.ours {
                return Err(Error::resource(
                    &r.address,
                    format!(
                        "a security group named {} already exists and is not tagged as this \
                         stack's; delete it, or rename the host",
                        r.name
                    ),
                ));
            }
            return update(cx, r, &live).await;
        }
        Err(e) => return Err(e),
    };
    let id = out.group_id.ok_or(Error::Incomplete {
        operation: "ec2:CreateSecurityGroup",
        field: "GroupId",
    })?;
    authorize(cx, r, &id, &p.ssh_from).await
}

/// Opens TCP 22 for each CIDR (one call each, so one already present does not hide the rest).
/// A new group may not be visible yet (EC2 eventual consistency): that is retried.
async fn authorize(cx: &Cx, r: &Resource, id: &str, cidrs: &[String]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for cidr in cidrs.iter().filter(|c| seen.insert(cidr_key(c))) {
        let authorized = retry(
            cx,
            &r.address,
            cx.timeouts.iam_propagation,
            |e| e.code() == Some("InvalidGroup.NotFound"),
            || async {
                let call = cx.clients.ec2.authorize_security_group_ingress();
                let call = call.group_id(id).ip_permissions(ssh_permission(cidr, true));
                call.send().await.done("ec2:AuthorizeSecurityGroupIngress")
            },
        )
        .await;
        already_done(authorized, "InvalidPermission.Duplicate")?;
    }
    Ok(())
}

async fn revoke(cx: &Cx, id: &str, cidrs: &[String]) -> Result<()> {
    for cidr in cidrs {
        let call = cx.clients.ec2.revoke_security_group_ingress();
        let call = call
            .group_id(id)
            .ip_permissions(ssh_permission(cidr, false));
        let revoked = call.send().await.op("ec2:RevokeSecurityGroupIngress");
        already_done(revoked, "InvalidPermission.NotFound")?;
    }
    Ok(())
}

pub async fn update(cx: &Cx, desired: &Resource, live: &Live) -> Result<()> {
    let p = props::<SecurityGroupProps>(desired)?;
    let lp = props::<SecurityGroupProps>(&live.resource)?;
    // Open the new ones before closing the old ones, so a move never locks everyone out.
    authorize(cx, desired, &live.id, &not_in(&p.ssh_from, &lp.ssh_from)).await?;
    revoke(cx, &live.id, &not_in(&lp.ssh_from, &p.ssh_from)).await?;
    ec2_api::set_tags(cx, &live.id, &desired.tags, &live.resource.tags).await
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<()> {
    // A terminated instance keeps its network interface (and so the group) for a while.
    let timeout = cx.timeouts.instance;
    delete_when_free(
        cx,
        live.address(),
        timeout,
        "DependencyViolation",
        || async {
            let call = cx.clients.ec2.delete_security_group().group_id(&live.id);
            call.send().await.done("ec2:DeleteSecurityGroup")
        },
    )
    .await
    .map(|_| ())
}
