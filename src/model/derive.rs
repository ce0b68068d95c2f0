//! From a validated spec to the desired model: physical names, derived resources (roles,
//! instance profiles, security groups), tags, least-privilege policies, rendered user-data and
//! dependency edges. Everything that can only be checked on final values (derived name lengths,
//! references, user-data size) is checked here and reported against the spec field it comes
//! from.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::bootstrap::{self, AgentFlow, UserDataInput};
use crate::iam;
use crate::kinds::bucket::{self, BucketProps};
use crate::kinds::delivery::{self, DeliveryProps, DeliverySourceProps, ErrorLoggingProps};
use crate::kinds::host::{self, HostProps};
use crate::kinds::instance_profile::{self, InstanceProfileProps};
use crate::kinds::log_group::{self, LogGroupProps};
use crate::kinds::role::{self, RoleProps};
use crate::kinds::security_group::{self, SecurityGroupProps};
use crate::kinds::stream::{self, StreamProps};
use crate::spec::positions::Path;
use crate::spec::rules::{self, Violation};
use crate::spec::types::{DeliverySource, Spec, StreamEncryption};

/// A problem found while deriving, tied to the spec field it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeriveError {
    pub path: Path,
    /// Point at the key (e.g. `hosts.collector`) rather than its value.
    pub at_key: bool,
    pub violation: Violation,
}

struct Deriver<'s> {
    spec: &'s Spec,
    env: Env,
    errors: Vec<DeriveError>,
    resources: BTreeMap<Address, Resource>,
}

fn p(parts: &[&str]) -> Path {
    let mut path = Path::root();
    for part in parts {
        path = path.key(part);
    }
    path
}

impl<'s> Deriver<'s> {
    fn err(&mut self, path: Path, at_key: bool, message: String, expected: Option<String>) {
        self.errors.push(DeriveError {
            path,
            at_key,
            violation: Violation { message, expected },
        });
    }

    /// Reports a rule violation on a physical name; derived names say so and how to fix them.
    fn check(&mut self, path: Path, at_key: bool, derived: bool, r: rules::Check) {
        if let Err(v) = r {
            let (message, expected) = if derived {
                let hint = "shorten the stack name or this key, or set an explicit name where the spec allows one";
                (
                    format!("derived {}", v.message),
                    Some(match v.expected {
                        Some(e) => format!("{e}; {hint}"),
                        None => hint.to_string(),
                    }),
                )
            } else {
                (v.message, v.expected)
            };
            self.err(path, at_key, message, expected);
        }
    }

    fn tags(&self, address: &Address) -> BTreeMap<String, String> {
        let mut t = self.spec.tags.clone();
        t.insert(TAG_STACK.into(), self.spec.stack.clone());
        t.insert(TAG_ADDRESS.into(), address.to_string());
        // created-at and expires-at depend on what is live: ops stamps them after discovery.
        t
    }

    fn add(&mut self, address: Address, name: String, depends_on: BTreeSet<Address>, props: Props) {
        let tags = self.tags(&address);
        self.resources.insert(
            address.clone(),
            Resource {
                address,
                name,
                tags,
                depends_on,
                props,
            },
        );
    }

    fn stream_name(&self, key: &str) -> Option<String> {
        let s = self.spec.streams.get(key)?;
        Some(
            s.name
                .clone()
                .unwrap_or_else(|| format!("{}-{key}", self.spec.stack)),
        )
    }
    fn delivery_name(&self, key: &str) -> Option<String> {
        let d = self.spec.deliveries.get(key)?;
        Some(
            d.name
                .clone()
                .unwrap_or_else(|| format!("{}-{key}", self.spec.stack)),
        )
    }
    fn bucket_name(&self, key: &str) -> Option<String> {
        let b = self.spec.buckets.get(key)?;
        Some(b.name.clone().unwrap_or_else(|| {
            format!(
                "{}-{key}-{}-{}",
                self.spec.stack, self.env.account_id, self.env.region
            )
        }))
    }
}

/// Physical names of derived resources.
pub fn host_role_name(stack: &str, host: &str) -> String {
    format!("{stack}-{host}-host")
}
pub fn instance_profile_name(stack: &str, host: &str) -> String {
    format!("{stack}-{host}-host")
}
pub fn security_group_name(stack: &str, host: &str) -> String {
    format!("{stack}-{host}-ssh")
}
pub fn delivery_role_name(stack: &str, delivery: &str) -> String {
    format!("{stack}-{delivery}-firehose")
}

/// Derives the desired model, or every problem that prevents it.
pub fn derive(spec: &Spec, env: Env) -> Result<Model, Vec<DeriveError>> {
    let mut d = Deriver {
        spec,
        env,
        errors: Vec::new(),
        resources: BTreeMap::new(),
    };
    buckets(&mut d);
    streams(&mut d);
    deliveries(&mut d);
    hosts(&mut d);
    unique_names(&mut d);
    if d.errors.is_empty() {
        Ok(Model {
            stack: spec.stack.clone(),
            env: d.env,
            resources: d.resources,
        })
    } else {
        Err(d.errors)
    }
}

fn name_path(section: &str, key: &str, explicit: bool) -> (Path, bool) {
    if explicit {
        (p(&[section, key, "name"]), false)
    } else {
        (p(&[section, key]), true)
    }
}

fn buckets(d: &mut Deriver) {
    for (key, b) in &d.spec.buckets {
        let Some(name) = d.bucket_name(key) else {
            continue;
        };
        let (path, at_key) = name_path("buckets", key, b.name.is_some());
        d.check(path, at_key, b.name.is_none(), rules::bucket_name(&name));
        d.add(
            Address::new(bucket::KIND, key),
            name,
            BTreeSet::new(),
            Props::new(BucketProps {
                versioning: b.versioning,
                force_destroy: b.force_destroy,
                expire_after_days: b.expire_after_days,
                sse_algorithm: "AES256".into(),
                block_public_access: true,
            }),
        );
        if b.force_destroy {
            if let Some(r) = d.resources.get_mut(&Address::new(bucket::KIND, key)) {
                r.tags.insert(TAG_FORCE_DESTROY.into(), "true".into());
            }
        }
    }
}

fn streams(d: &mut Deriver) {
    for (key, s) in &d.spec.streams {
        let Some(name) = d.stream_name(key) else {
            continue;
        };
        let (path, at_key) = name_path("streams", key, s.name.is_some());
        d.check(path, at_key, s.name.is_none(), rules::stream_name(&name));
        let arn = d.env.stream_arn(&name);
        d.add(
            Address::new(stream::KIND, key),
            name,
            BTreeSet::new(),
            Props::new(StreamProps {
                arn,
                mode: s.mode,
                shards: s.shards,
                retention_hours: s.retention_hours,
                kms_key: s.encryption.key_id().map(str::to_string),
            }),
        );
    }
}

fn customer_key(enc: &StreamEncryption) -> Option<String> {
    match enc {
        StreamEncryption::Kms(k) => Some(k.clone()),
        _ => None,
    }
}

fn deliveries(d: &mut Deriver) {
    let stack = d.spec.stack.clone();
    for (key, del) in &d.spec.deliveries {
        let Some(name) = d.delivery_name(key) else {
            continue;
        };
        let (path, at_key) = name_path("deliveries", key, del.name.is_some());
        d.check(
            path,
            at_key,
            del.name.is_none(),
            rules::delivery_name(&name),
        );
        let address = Address::new(delivery::KIND, key);
        let role_address = Address::new(role::DELIVERY_ROLE, key);
        let mut deps = BTreeSet::from([role_address.clone()]);

        let source = match &del.from {
            DeliverySource::Direct => None,
            DeliverySource::Stream(s) => match d.stream_name(s) {
                Some(stream_name) => {
                    deps.insert(Address::new(stream::KIND, s));
                    Some((s.clone(), stream_name))
                }
                None if d.spec.is_undecoded("streams", s) => continue,
                None => {
                    let expected = expected_keys(d.spec.streams.keys(), Some("direct"));
                    d.err(
                        p(&["deliveries", key, "from"]),
                        false,
                        format!("no stream named `{s}`"),
                        Some(expected),
                    );
                    continue;
                }
            },
        };
        let Some(bucket_name) = d.bucket_name(&del.to) else {
            if d.spec.is_undecoded("buckets", &del.to) {
                continue;
            }
            let expected = expected_keys(d.spec.buckets.keys(), None);
            d.err(
                p(&["deliveries", key, "to"]),
                false,
                format!("no bucket named `{}`", del.to),
                Some(expected),
            );
            continue;
        };
        deps.insert(Address::new(bucket::KIND, &del.to));

        let role_name = delivery_role_name(&stack, key);
        d.check(
            p(&["deliveries", key]),
            true,
            true,
            rules::role_name(&role_name),
        );
        let stream_kms_key = source
            .as_ref()
            .and_then(|(k, _)| d.spec.streams.get(k))
            .and_then(|s| customer_key(&s.encryption));
        let log_group_name = log_group::name_for(&name);
        if let Some(logging) = &del.error_logging {
            let address = Address::new(log_group::KIND, key);
            d.add(
                address.clone(),
                log_group_name.clone(),
                BTreeSet::new(),
                Props::new(LogGroupProps {
                    arn: d.env.log_group_arn(&log_group_name),
                    retention_days: Some(logging.retention_days),
                    log_stream: delivery::ERROR_LOG_STREAM.into(),
                }),
            );
            deps.insert(address);
        }
        let access = iam::DeliveryAccess {
            delivery_name: name.clone(),
            log_group: del.error_logging.map(|_| log_group_name.clone()),
            stream: source.as_ref().map(|(_, n)| n.clone()),
            stream_kms_key,
            bucket: bucket_name.clone(),
        };
        let policy = iam::delivery_policy(&d.env, &access);
        let role_arn = d.env.role_arn(&role_name);
        d.add(
            role_address,
            role_name.clone(),
            BTreeSet::new(),
            Props::new(RoleProps {
                arn: role_arn.clone(),
                trust_policy: iam::firehose_trust_policy(&d.env),
                inline_policies: BTreeMap::from([(INLINE_POLICY_NAME.to_string(), policy)]),
            }),
        );
        let arn = d.env.delivery_arn(&name);
        let bucket_arn = d.env.bucket_arn(&bucket_name);
        let source = source.map(|(_, stream_name)| DeliverySourceProps {
            stream_arn: d.env.stream_arn(&stream_name),
            stream_name,
        });
        d.add(
            address,
            name,
            deps,
            Props::new(DeliveryProps {
                arn,
                source,
                role_name,
                role_arn,
                bucket_name,
                bucket_arn,
                prefix: del.prefix.clone(),
                error_prefix: del.error_prefix.clone(),
                buffering: del.buffering,
                compression: del.compression,
                error_logging: del.error_logging.map(|_| ErrorLoggingProps {
                    log_group: log_group_name,
                    log_stream: delivery::ERROR_LOG_STREAM.into(),
                }),
            }),
        );
    }
}

fn expected_keys<'a>(keys: impl Iterator<Item = &'a String>, extra: Option<&str>) -> String {
    let mut all: Vec<String> = keys.map(|k| k.to_string()).collect();
    if let Some(e) = extra {
        all.push(e.to_string());
    }
    if all.is_empty() {
        "a key defined in the spec (there are none)".into()
    } else {
        format!("one of: {}", all.join(", "))
    }
}

fn hosts(d: &mut Deriver) {
    let stack = d.spec.stack.clone();
    for (key, h) in &d.spec.hosts {
        let address = Address::new(host::KIND, key);
        let mut deps = BTreeSet::new();
        let mut access = iam::HostAccess {
            stack: stack.clone(),
            ..Default::default()
        };
        let mut flows = Vec::new();
        let mut seen_flows = BTreeSet::new();
        for (i, f) in h.flows.iter().enumerate() {
            let fpath = p(&["hosts", key, "flows"]).index(i).key("to");
            let flow = if let Some(stream_name) = d.stream_name(&f.to) {
                deps.insert(Address::new(stream::KIND, &f.to));
                // Launch after every delivery reading this stream is ACTIVE: Firehose starts
                // reading at LATEST, so earlier records would never reach S3.
                for (dk, del) in &d.spec.deliveries {
                    if del.from == DeliverySource::Stream(f.to.clone()) {
                        deps.insert(Address::new(delivery::KIND, dk));
                    }
                }
                if let Some(k) = customer_key(&d.spec.streams[&f.to].encryption) {
                    access.kms_keys.push(k);
                }
                access.streams.push(stream_name.clone());
                AgentFlow {
                    files: f.files.clone(),
                    kinesis_stream: Some(stream_name),
                    delivery_stream: None,
                    format: f.format.clone(),
                }
            } else if let Some(del) = d.spec.deliveries.get(&f.to) {
                if let DeliverySource::Stream(s) = &del.from {
                    d.err(
                        fpath,
                        false,
                        format!(
                            "delivery `{}` reads stream `{s}`, and Firehose refuses direct writes to such a delivery",
                            f.to
                        ),
                        Some(if d.spec.streams.contains_key(s) {
                            format!("to: {s} (the stream), or a delivery with from: direct")
                        } else {
                            "a stream key, or a delivery with from: direct".into()
                        }),
                    );
                    continue;
                }
                let Some(delivery_name) = d.delivery_name(&f.to) else {
                    continue;
                };
                deps.insert(Address::new(delivery::KIND, &f.to));
                access.deliveries.push(delivery_name.clone());
                AgentFlow {
                    files: f.files.clone(),
                    kinesis_stream: None,
                    delivery_stream: Some(delivery_name),
                    format: f.format.clone(),
                }
            } else if d.spec.is_undecoded("streams", &f.to)
                || d.spec.is_undecoded("deliveries", &f.to)
            {
                continue;
            } else {
                let direct: Vec<&String> = d
                    .spec
                    .deliveries
                    .iter()
                    .filter(|(_, del)| del.from == DeliverySource::Direct)
                    .map(|(k, _)| k)
                    .collect();
                let expected = expected_keys(d.spec.streams.keys().chain(direct), None);
                d.err(
                    fpath,
                    false,
                    format!("no stream or direct delivery named `{}`", f.to),
                    Some(expected),
                );
                continue;
            };
            let target = flow
                .kinesis_stream
                .clone()
                .or_else(|| flow.delivery_stream.clone())
                .unwrap_or_default();
            if !seen_flows.insert((target.clone(), flow.files.clone())) {
                d.err(
                    p(&["hosts", key, "flows"]).index(i),
                    false,
                    format!(
                        "duplicate flow: {} → {target} is already configured",
                        flow.files
                    ),
                    Some("each (files, to) pair once".into()),
                );
            }
            flows.push(flow);
        }
        access.streams.sort();
        access.streams.dedup();
        access.deliveries.sort();
        access.deliveries.dedup();
        access.kms_keys.sort();
        access.kms_keys.dedup();

        let host_had_errors = d.spec.is_undecoded("hosts", key);
        if let Some(sample) = h.sample_data.as_ref().filter(|_| !host_had_errors) {
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

        let role_name = host_role_name(&stack, key);
        let profile_name = instance_profile_name(&stack, key);
        d.check(p(&["hosts", key]), true, true, rules::role_name(&role_name));
        d.check(
            p(&["hosts", key]),
            true,
            true,
            rules::instance_profile_name(&profile_name),
        );
        let role_address = Address::new(role::HOST_ROLE, key);
        let profile_address = Address::new(instance_profile::KIND, key);
        let policy = iam::host_policy(&d.env, &access);
        let role_arn = d.env.role_arn(&role_name);
        d.add(
            role_address.clone(),
            role_name.clone(),
            BTreeSet::new(),
            Props::new(RoleProps {
                arn: role_arn,
                trust_policy: iam::ec2_trust_policy(),
                inline_policies: BTreeMap::from([(INLINE_POLICY_NAME.to_string(), policy)]),
            }),
        );
        let profile_arn = d.env.instance_profile_arn(&profile_name);
        d.add(
            profile_address.clone(),
            profile_name.clone(),
            BTreeSet::from([role_address]),
            Props::new(InstanceProfileProps {
                arn: profile_arn,
                role_name,
            }),
        );
        deps.insert(profile_address);

        let security_group = h.ssh.as_ref().map(|ssh| {
            let name = security_group_name(&stack, key);
            let sg_address = Address::new(security_group::KIND, key);
            deps.insert(sg_address.clone());
            (sg_address, name, ssh.from.clone())
        });
        if let Some((sg_address, name, from)) = &security_group {
            d.check(
                p(&["hosts", key]),
                true,
                true,
                rules::security_group_name(name),
            );
            d.add(
                sg_address.clone(),
                name.clone(),
                BTreeSet::new(),
                Props::new(SecurityGroupProps {
                    description: format!("streamstack {stack}: SSH to host {key}"),
                    ssh_from: from.clone(),
                }),
            );
        }

        let agent_json = match bootstrap::agent_json(&d.env, &flows) {
            Ok(j) => j,
            Err(e) => {
                d.err(
                    p(&["hosts", key]),
                    true,
                    format!("could not render agent.json: {e}"),
                    None,
                );
                continue;
            }
        };
        let user_data = match bootstrap::user_data(&UserDataInput {
            stack: &stack,
            host: key,
            region: &d.env.region,
            instance_profile: &profile_name,
            agent_json: &agent_json,
            flows: &flows,
            sample: h.sample_data.as_ref(),
        }) {
            Ok(u) => u,
            Err(e) => {
                d.err(
                    p(&["hosts", key]),
                    true,
                    format!("could not render user-data: {e}"),
                    None,
                );
                continue;
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
        let name = format!("{stack}-{key}");
        d.add(
            address.clone(),
            name,
            deps,
            Props::new(HostProps {
                instance_type: h.instance_type.clone(),
                image: h.image.clone(),
                subnet: h.subnet.clone(),
                key_name: h.ssh.as_ref().and_then(|s| s.key_name.clone()),
                instance_profile: profile_name,
                security_group: security_group.map(|(_, n, _)| n),
                user_data,
                http_tokens_required: true,
            }),
        );
        if let Some(r) = d.resources.get_mut(&address) {
            r.tags.insert(TAG_IMAGE.into(), h.image.to_string());
        }
    }
}

/// Physical names must be unique per namespace (IAM names case-insensitively).
fn unique_names(d: &mut Deriver) {
    let mut seen: BTreeMap<(&'static str, String), Address> = BTreeMap::new();
    let mut dups = Vec::new();
    for r in d.resources.values() {
        let Some((ns, case_insensitive)) = crate::kinds::handler(r.address.kind)
            .ok()
            .and_then(|h| h.name_namespace())
        else {
            continue;
        };
        let name = if case_insensitive {
            r.name.to_lowercase()
        } else {
            r.name.clone()
        };
        if let Some(first) = seen.get(&(ns, name.clone())) {
            dups.push((r.address.clone(), first.clone(), ns, r.name.clone()));
        } else {
            seen.insert((ns, name), r.address.clone());
        }
    }
    for (addr, first, ns, name) in dups {
        // Point at whichever of the two has an explicit `name:`; else at this one's key.
        let explicit_name = |a: &Address| {
            if a.kind == bucket::KIND {
                d.spec.buckets.get(&a.key).is_some_and(|b| b.name.is_some())
            } else if a.kind == stream::KIND {
                d.spec.streams.get(&a.key).is_some_and(|s| s.name.is_some())
            } else if a.kind == delivery::KIND || a.kind == log_group::KIND {
                d.spec
                    .deliveries
                    .get(&a.key)
                    .is_some_and(|s| s.name.is_some())
            } else {
                false
            }
        };
        let (blame, other) = if !explicit_name(&addr) && explicit_name(&first) {
            (first, addr)
        } else {
            (addr, first)
        };
        let section = if blame.kind == bucket::KIND {
            "buckets"
        } else if blame.kind == stream::KIND {
            "streams"
        } else if [delivery::KIND, role::DELIVERY_ROLE, log_group::KIND].contains(&blame.kind) {
            "deliveries"
        } else {
            "hosts"
        };
        let (path, at_key) = if explicit_name(&blame) {
            (p(&[section, &blame.key, "name"]), false)
        } else {
            (p(&[section, &blame.key]), true)
        };
        d.err(
            path,
            at_key,
            format!("{ns} name {name:?} is also used by {other}"),
            Some("unique physical names".into()),
        );
    }
}
