//! `hosts:`: per host an EC2 instance running the Kinesis Agent, the IAM role its agent uses
//! (with a least-privilege policy built from its flows), the instance profile that carries the
//! role, and with `ssh` a security group; the user-data and agent.json rendered from the flows.

use std::collections::{BTreeMap, BTreeSet};

use super::deriver::{customer_key, expected_keys, p, Deriver, Origin};
use super::names::{host_role_name, instance_profile_name, security_group_name};
use crate::bootstrap::{self, AgentFlow, UserDataInput};
use crate::iam;
use crate::kinds::credentials_file;
use crate::kinds::delivery;
use crate::kinds::host::{self, HostProps};
use crate::kinds::instance_profile::{self, InstanceProfileProps};
use crate::kinds::role;
use crate::kinds::security_group::{self, SecurityGroupProps};
use crate::kinds::stream;
use crate::kinds::user::{self, AgentSetup, UserProps};
use crate::model::{Address, Props, INLINE_POLICY_NAME, TAG_IMAGE};
use crate::spec::rules;
use crate::spec::types::{DeliverySource, Flow, HostSpec, Platform};

/// What a host's flows resolve to: the agent's flows, what the instance waits for, and what its
/// role may write to.
#[derive(Default)]
struct Flows {
    agent: Vec<AgentFlow>,
    deps: BTreeSet<Address>,
    access: iam::HostAccess,
}

pub(super) fn hosts(d: &mut Deriver) {
    for (key, h) in &d.spec.hosts {
        if h.platform == Platform::External {
            let flows = flows(d, key, h);
            external_user(d, key, flows);
            continue;
        }
        let mut flows = flows(d, key, h);
        if !d.spec.is_undecoded("hosts", key) {
            check_sample(d, key, h);
        }
        let profile = iam_resources(d, key, flows.access.clone());
        flows.deps.insert(Address::new(instance_profile::KIND, key));
        let group = h.ssh.as_ref().map(|ssh| {
            let name = security_group(d, key, &ssh.from, h.subnet.clone());
            flows.deps.insert(Address::new(security_group::KIND, key));
            name
        });
        instance(d, key, h, flows, profile, group);
    }
}

/// Resolves every flow's `to` (a stream, or a `direct` delivery), reporting the ones that name
/// nothing usable and the duplicates.
fn flows(d: &mut Deriver, key: &str, h: &HostSpec) -> Flows {
    let mut out = Flows {
        access: iam::HostAccess {
            stack: d.spec.stack.clone(),
            address: Address::new(host::KIND, key).to_string(),
            ..Default::default()
        },
        ..Flows::default()
    };
    let mut seen = BTreeSet::new();
    for (i, f) in h.flows.iter().enumerate() {
        let Some(flow) = flow(d, key, i, f, &mut out) else {
            continue;
        };
        let target = flow
            .kinesis_stream
            .clone()
            .or_else(|| flow.delivery_stream.clone())
            .unwrap_or_default();
        if !seen.insert((target.clone(), flow.files.clone())) {
            let message = format!(
                "duplicate flow: {} → {target} is already configured",
                flow.files
            );
            let at = p(&["hosts", key, "flows"]).index(i);
            d.err(
                at,
                false,
                message,
                Some("each (files, to) pair once".into()),
            );
        }
        out.agent.push(flow);
    }
    for list in [
        &mut out.access.streams,
        &mut out.access.deliveries,
        &mut out.access.kms_keys,
    ] {
        list.sort();
        list.dedup();
    }
    out
}

/// One flow's target, with its dependencies and access added to `out`.
fn flow(d: &mut Deriver, key: &str, i: usize, f: &Flow, out: &mut Flows) -> Option<AgentFlow> {
    let at = p(&["hosts", key, "flows"]).index(i).key("to");
    let agent = |kinesis_stream, delivery_stream| AgentFlow {
        files: f.files.clone(),
        kinesis_stream,
        delivery_stream,
        format: f.format.clone(),
    };
    if let Some(stream_name) = d.stream_name(&f.to) {
        out.deps.insert(Address::new(stream::KIND, &f.to));
        // Launch after every delivery reading this stream is ACTIVE: Firehose starts reading
        // at LATEST, so earlier records would never reach S3.
        for (dk, del) in &d.spec.deliveries {
            if del.from == DeliverySource::Stream(f.to.clone()) {
                out.deps.insert(Address::new(delivery::KIND, dk));
            }
        }
        let stream = d.spec.streams.get(&f.to);
        if let Some(k) = stream.and_then(|s| customer_key(&s.encryption)) {
            out.access.kms_keys.push(k);
        }
        out.access.streams.push(stream_name.clone());
        return Some(agent(Some(stream_name), None));
    }
    if let Some(del) = d.spec.deliveries.get(&f.to) {
        if let DeliverySource::Stream(s) = &del.from {
            let message = format!(
                "delivery `{}` reads stream `{s}`, and Firehose refuses direct writes to such a delivery",
                f.to
            );
            let expected = if d.spec.streams.contains_key(s) {
                format!("to: {s} (the stream), or a delivery with from: direct")
            } else {
                "a stream key, or a delivery with from: direct".into()
            };
            d.err(at, false, message, Some(expected));
            return None;
        }
        let delivery_name = d.delivery_name(&f.to)?;
        out.deps.insert(Address::new(delivery::KIND, &f.to));
        out.access.deliveries.push(delivery_name.clone());
        return Some(agent(None, Some(delivery_name)));
    }
    if d.spec.is_undecoded("streams", &f.to) || d.spec.is_undecoded("deliveries", &f.to) {
        return None;
    }
    let direct = d
        .spec
        .deliveries
        .iter()
        .filter(|(_, del)| del.from == DeliverySource::Direct)
        .map(|(k, _)| k);
    let expected = expected_keys(d.spec.streams.keys().chain(direct), None);
    let message = format!("no stream or direct delivery named `{}`", f.to);
    d.err(at, false, message, Some(expected));
    None
}

/// `sample_data.file` must be a file one of the host's flows watches.
fn check_sample(d: &mut Deriver, key: &str, h: &HostSpec) {
    let Some(sample) = &h.sample_data else {
        return;
    };
    let (dir, file) = sample.file.rsplit_once('/').unwrap_or(("", &sample.file));
    let covered = h.flows.iter().any(|f| {
        f.files
            .rsplit_once('/')
            .is_some_and(|(fd, fp)| fd == dir && rules::glob_matches(fp, file))
    });
    if !covered {
        d.err(
            p(&["hosts", key, "sample_data", "file"]),
            false,
            format!("no flow of this host watches {}", sample.file),
            Some("a file matching one of the host's flows".into()),
        );
    }
}

/// The host's role (its policy from `access`) and the instance profile carrying it; returns
/// the profile's name.
fn iam_resources(d: &mut Deriver, key: &str, access: iam::HostAccess) -> String {
    let role_name = d.env.iam_name(host_role_name(&d.spec.stack, key));
    let profile_name = d.env.iam_name(instance_profile_name(&d.spec.stack, key));
    let at = Origin::entry("hosts", false);
    d.check_name(at, key, rules::role_name(&role_name));
    d.check_name(at, key, rules::instance_profile_name(&profile_name));
    let role_address = Address::new(role::HOST_ROLE, key);
    let policy = iam::host_policy(&d.env, &access);
    d.add_role(
        at,
        role_address.clone(),
        role_name.clone(),
        iam::ec2_trust_policy(),
        policy,
    );
    let profile = InstanceProfileProps {
        arn: d.env.instance_profile_arn(&profile_name),
        role_name,
    };
    d.add(
        at,
        Address::new(instance_profile::KIND, key),
        profile_name.clone(),
        BTreeSet::from([role_address]),
        Props::new(profile),
    );
    profile_name
}

/// The host's SSH security group; returns its name.
fn security_group(d: &mut Deriver, key: &str, from: &[String], subnet: Option<String>) -> String {
    let stack = &d.spec.stack;
    let name = security_group_name(stack, key);
    let props = SecurityGroupProps {
        description: format!("streamstack {stack}: SSH to host {key}"),
        ssh_from: from.to_vec(),
        subnet,
    };
    let at = Origin::entry("hosts", false);
    d.check_name(at, key, rules::security_group_name(&name));
    let address = Address::new(security_group::KIND, key);
    d.add(
        at,
        address,
        name.clone(),
        BTreeSet::new(),
        Props::new(props),
    );
    name
}

/// The instance, with its user-data rendered from the flows.
fn instance(
    d: &mut Deriver,
    key: &str,
    h: &HostSpec,
    flows: Flows,
    profile_name: String,
    security_group: Option<String>,
) {
    let at = p(&["hosts", key]);
    let agent_json = match bootstrap::agent_json(&d.env, &flows.agent) {
        Ok(j) => j,
        Err(e) => {
            d.err(at, true, format!("could not render agent.json: {e}"), None);
            return;
        }
    };
    let user_data = match bootstrap::user_data(&UserDataInput {
        stack: &d.spec.stack,
        host: key,
        region: &d.env.region,
        instance_profile: &profile_name,
        agent_json: &agent_json,
        flows: &flows.agent,
        sample: h.sample_data.as_ref(),
    }) {
        Ok(u) => u,
        Err(e) => {
            d.err(at, true, format!("could not render user-data: {e}"), None);
            return;
        }
    };
    if user_data.len() > bootstrap::USER_DATA_MAX_BYTES {
        d.err(
            p(&["hosts", key, "flows"]),
            false,
            format!("the rendered user-data is {} bytes", user_data.len()),
            Some(format!(
                "at most {} bytes (EC2's limit)",
                bootstrap::USER_DATA_MAX_BYTES
            )),
        );
    }
    let props = HostProps {
        instance_type: h.instance_type.clone(),
        image: h.image.clone(),
        subnet: h.subnet.clone(),
        key_name: h.ssh.as_ref().and_then(|s| s.key_name.clone()),
        instance_profile: profile_name,
        security_group,
        user_data,
        http_tokens_required: true,
        instance_id: h.instance_id.clone(),
    };
    let name = format!("{}-{key}", d.spec.stack);
    let address = Address::new(host::KIND, key);
    let at = Origin::entry("hosts", false);
    let instance = d.add(at, address, name, flows.deps, Props::new(props));
    instance.tags.insert(TAG_IMAGE.into(), h.image.to_string());
    if h.instance_id.is_some() {
        // An adopted instance: its user-data is not streamstack's (see kinds::host).
        instance
            .tags
            .insert(host::TAG_ADOPTED.into(), "true".into());
    }
}

/// An external host: no instance, group, role or profile; an IAM user (its policy from the
/// flows, without the bootstrap report) whose access key the apply writes to the credentials
/// file, and the agent's configuration naming that file's profile.
fn external_user(d: &mut Deriver, key: &str, flows: Flows) {
    let name = d.env.iam_name(host_role_name(&d.spec.stack, key));
    let at = Origin::entry("hosts", false);
    d.check_name(at, key, rules::user_name(&name));
    let profile = credentials_file::profile_name(&d.spec.stack, key);
    let agent_json = match bootstrap::agent_json(&d.env, &flows.agent) {
        Ok(j) => bootstrap::bundle::external_agent_json(&j, &profile),
        Err(e) => {
            let at = p(&["hosts", key]);
            d.err(at, true, format!("could not render agent.json: {e}"), None);
            return;
        }
    };
    let mut directories: Vec<String> = flows
        .agent
        .iter()
        .filter_map(|f| f.files.rsplit_once('/').map(|(dir, _)| dir.to_string()))
        .collect();
    directories.sort();
    directories.dedup();
    let props = UserProps {
        arn: user::user_arn(&d.env, &name),
        inline_policies: BTreeMap::from([(
            INLINE_POLICY_NAME.to_string(),
            iam::external_host_policy(&d.env, &flows.access),
        )]),
        managed_policies: Vec::new(),
        setup: AgentSetup {
            stack: d.spec.stack.clone(),
            host: key.to_string(),
            region: d.env.region.clone(),
            profile,
            agent_json,
            directories,
        },
    };
    let address = Address::new(user::KIND, key);
    // Created once the streams and deliveries it writes to exist (as an instance would be).
    d.add(at.derived(), address, name, flows.deps, Props::new(props));
}

#[cfg(test)]
mod tests {
    use crate::kinds::user::UserProps;
    use crate::kinds::{HOST, HOST_ROLE, HOST_USER, INSTANCE_PROFILE};
    use crate::spec::LoadOptions;

    const BASE: &str = "version: 1\nstack: lab\nregion: eu-west-1\n\
        streams:\n  weather:\n    mode: on_demand\nhosts:\n";

    fn load(hosts: &str) -> Result<super::super::Validated, String> {
        super::super::load_str("s.yaml", &format!("{BASE}{hosts}"), &LoadOptions::default())
            .map_err(|d| d.to_string())
    }

    #[test]
    fn an_external_host_is_a_user_with_the_policy_and_no_instance() {
        let v = load(
            "  edge:\n    platform: external\n    flows:\n      - files: /var/log/e/*.log\n        to: weather\n",
        )
        .unwrap();
        let m = &v.model;
        for kind in [HOST, HOST_ROLE, INSTANCE_PROFILE] {
            assert_eq!(m.of_kind(kind).count(), 0, "{kind}");
        }
        let users: Vec<_> = m.of_kind(HOST_USER).collect();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].name, "lab-edge-host");
        assert_eq!(users[0].tags["streamstack:stack"], "lab");
        let p = users[0].props.get::<UserProps>().unwrap();
        assert_eq!(
            p.arn,
            "arn:aws:iam::000000000000:user/streamstack/lab/lab-edge-host"
        );
        assert!(p.managed_policies.is_empty());
        let doc = p.inline_policies["streamstack"].to_string();
        assert!(
            doc.contains("kinesis:PutRecords") && doc.contains("stream/lab-weather"),
            "{doc}"
        );
        assert!(
            !doc.contains("ReportBootstrap") && !doc.contains("FullAccess"),
            "{doc}"
        );
        // credentials defaults to access_key; the agent config names the profile, no key.
        assert_eq!(p.setup.profile, "streamstack-lab-edge");
        assert!(p.setup.agent_json.contains("streamstack-lab-edge"));
        assert!(!p.setup.agent_json.contains("awsSecretAccessKey"));
        assert_eq!(p.setup.directories, ["/var/log/e"]);
        // The user waits for the stream it writes to.
        assert!(users[0]
            .depends_on
            .iter()
            .any(|a| a.to_string() == "stream.weather"));
    }

    #[test]
    fn instance_fields_on_an_external_host_and_credentials_on_ec2_are_errors_at_their_keys() {
        let err = load(
            "  edge:\n    platform: external\n    instance_type: t3.micro\n    image: al2023\n\
             \x20   subnet: subnet-12345678\n    ssh: { from: 10.0.0.0/8 }\n\
             \x20   sample_data: { file: /var/log/e/a.log }\n    credentials: password\n\
             \x20   flows:\n      - files: /var/log/e/*.log\n        to: weather\n\
             \x20 box:\n    instance_type: t3.micro\n    credentials: access_key\n\
             \x20   flows:\n      - files: /var/log/b/*.log\n        to: weather\n",
        )
        .unwrap_err();
        for (line, col, what) in [
            (
                10,
                5,
                "hosts.edge.instance_type: `instance_type` is meaningless on an external host",
            ),
            (11, 5, "hosts.edge.image:"),
            (12, 5, "hosts.edge.subnet:"),
            (13, 5, "hosts.edge.ssh:"),
            (14, 5, "hosts.edge.sample_data:"),
            (15, 18, "hosts.edge.credentials: unknown value \"password\""),
            (
                21,
                5,
                "hosts.box.credentials: `credentials` is for external hosts",
            ),
        ] {
            let want = format!("s.yaml:{line}:{col}: {what}");
            assert!(err.contains(&want), "missing {want:?} in\n{err}");
        }
        let bad_platform = load(
            "  edge:\n    platform: onprem\n    flows:\n      - files: /var/log/e/*.log\n        to: weather\n",
        )
        .unwrap_err();
        assert!(
            bad_platform.contains("hosts.edge.platform"),
            "{bad_platform}"
        );
    }

    /// A fleet deploys one spec to several regions of an account: its IAM names and path carry
    /// the region, so no two regions share (and overwrite, and delete) a role.
    #[test]
    fn in_a_fleet_iam_names_and_path_carry_the_region() {
        let hosts = "  web:\n    instance_type: t3.micro\n    flows:\n      - files: /var/log/w/*.log\n        to: weather\n";
        let text = format!(
            "{BASE}{hosts}deliveries:\n  d:\n    from: weather\n    to: b\nbuckets:\n  b: {{}}\n"
        );
        let one = |fleet_region: Option<&str>| {
            let opts = LoadOptions {
                fleet_region: fleet_region.map(str::to_string),
                ..LoadOptions::default()
            };
            let v = super::super::load_str("s.yaml", &text, &opts).unwrap();
            let mut names: Vec<String> = [HOST_ROLE, INSTANCE_PROFILE, crate::kinds::DELIVERY_ROLE]
                .into_iter()
                .flat_map(|k| {
                    v.model
                        .of_kind(k)
                        .map(|r| r.name.clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            names.sort();
            (names, v.model.env.iam_path.clone())
        };
        let (plain, path) = one(None);
        assert_eq!(plain, ["lab-d-firehose", "lab-web-host", "lab-web-host"]);
        assert_eq!(path, "/streamstack/lab/");
        let (fleet, path) = one(Some("us-east-1"));
        assert_eq!(
            fleet,
            [
                "lab-d-firehose-us-east-1",
                "lab-web-host-us-east-1",
                "lab-web-host-us-east-1"
            ]
        );
        assert_eq!(path, "/streamstack/lab/us-east-1/");
    }
}
