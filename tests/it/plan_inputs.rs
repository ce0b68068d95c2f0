//! Values a create reads from another resource are attributes the plan compares: a host moved
//! to a subnet of another VPC replaces its security group (made in the subnet's VPC) too.

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::Sandbox;

fn moved(subnet: Option<&str>) -> String {
    let subnet = subnet
        .map(|s| format!("    subnet: {s}\n"))
        .unwrap_or_default();
    format!(
        "version: 1\nstack: moved\nregion: eu-west-1\nstreams:\n  events: {{}}\n\
         hosts:\n  collector:\n    instance_type: t3.micro\n{subnet}\
         \x20   ssh: {{ from: [203.0.113.4/32] }}\n\
         \x20   flows: [{{ files: /var/log/e/*.log, to: events }}]\n"
    )
}

#[test]
fn a_host_moved_to_another_vpc_replaces_its_security_group() {
    let sb = Sandbox::passthrough();
    let spec = spec_file(&moved(None));
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    // A subnet of the default VPC keeps the group (only the host is replaced); one of another
    // VPC replaces the group as well.
    let (same_vpc, other_vpc) = rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&sb, "eu-west-1"));
        let default = ec2
            .describe_subnets()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("default-for-az")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .expect("subnets");
        // Another default subnet than the host's.
        let host_subnet = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:streamstack:stack")
                    .values("moved")
                    .build(),
            )
            .send()
            .await
            .expect("instances")
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.subnet_id().map(str::to_string));
        let same = default
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id())
            .find(|s| Some(s.to_string()) != host_subnet)
            .expect("a second default subnet")
            .to_string();
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.20.0.0/16")
            .send()
            .await
            .expect("CreateVpc");
        let vpc = vpc.vpc().and_then(|v| v.vpc_id()).expect("vpc id");
        let subnet = ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block("10.20.1.0/24")
            .send()
            .await
            .expect("CreateSubnet");
        let other = subnet.subnet().and_then(|s| s.subnet_id()).expect("id");
        (same, other.to_string())
    });
    let action_of = |plan: &serde_json::Value, address: &str| {
        actions(plan)
            .into_iter()
            .find(|(a, _)| a == address)
            .map(|(_, action)| action)
    };
    rewrite(&spec, &moved(Some(&same_vpc)));
    let plan = plan_json(&sb, &spec.path);
    assert_eq!(
        action_of(&plan, "host.collector").as_deref(),
        Some("replace")
    );
    assert_eq!(action_of(&plan, "security_group.collector"), None, "{plan}");

    rewrite(&spec, &moved(Some(&other_vpc)));
    let plan = plan_json(&sb, &spec.path);
    assert_eq!(
        action_of(&plan, "host.collector").as_deref(),
        Some("replace")
    );
    assert_eq!(
        action_of(&plan, "security_group.collector").as_deref(),
        Some("replace"),
        "{plan}"
    );
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "not converged:\n{}", text(&o));
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, "eu-west-1", "moved");
}
