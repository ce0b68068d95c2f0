//! `init --from-live`: what is live, read into plain data ([`read`]), and the spec that describes
//! it, written with comments ([`write_spec`], pure, unit-tested).
//!
//! From each delivery stream named it follows the source stream, the bucket, the delivery's
//! role and its error logging; from each instance id its type, image, subnet, security-group
//! rules, instance profile and role, and the agent's flows when its user-data holds an
//! `agent.json`. Every physical name is kept in a `name:` field, so that `adopt` finds the
//! resources and nothing needs to be re-created; what the spec cannot say is a comment.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::Value;

use crate::aws::{Clients, Ctx};
use crate::kinds::found;
use crate::{Error, Result};

/// What to read: the delivery streams and instances named on the command line.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The spec's `stack:` (default: from the first delivery's name).
    pub stack: Option<String>,
    pub deliveries: Vec<String>,
    pub instances: Vec<String>,
}

/// Everything read, as plain data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSetup {
    pub stack: String,
    pub region: String,
    pub streams: Vec<LiveStream>,
    pub buckets: Vec<LiveBucket>,
    pub deliveries: Vec<LiveDelivery>,
    pub hosts: Vec<LiveHost>,
    /// Roles the pipeline uses, with their managed policies.
    pub roles: Vec<LiveRole>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStream {
    pub name: String,
    pub on_demand: bool,
    pub shards: u32,
    pub retention_hours: u32,
    /// The KMS key when encrypted.
    pub kms_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveBucket {
    pub name: String,
    pub versioning: bool,
    /// The first enabled lifecycle rule's expiration, in days.
    pub expire_after_days: Option<u32>,
    /// Lifecycle rules beyond that one (the spec holds one).
    pub other_rules: usize,
    /// The default encryption algorithm ("" when none).
    pub sse_algorithm: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveDelivery {
    pub name: String,
    /// The source stream's name; `None` for direct put.
    pub source_stream: Option<String>,
    pub bucket: String,
    pub role: String,
    pub prefix: Option<String>,
    pub error_prefix: Option<String>,
    pub size_mb: u32,
    pub interval_seconds: u32,
    pub compression: String,
    /// Error logging's group and stream, when enabled.
    pub logging: Option<(String, String)>,
    /// That group's retention (`None`: forever, or no such group).
    pub log_retention_days: Option<u32>,
    /// A record transformation (Lambda) is configured.
    pub processing: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveHost {
    pub id: String,
    /// The `Name` tag.
    pub name: Option<String>,
    pub instance_type: String,
    pub image_id: String,
    pub subnet: Option<String>,
    pub key_name: Option<String>,
    /// CIDRs allowed to port 22.
    pub ssh_from: Vec<String>,
    /// Other inbound rules (not SSH), as one line each.
    pub other_ingress: Vec<String>,
    pub instance_profile: Option<String>,
    pub role: Option<String>,
    /// The agent's flows, when the user-data holds an agent.json.
    pub flows: Option<Vec<LiveFlow>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveFlow {
    pub files: String,
    pub stream: Option<String>,
    pub delivery: Option<String>,
    /// The spec's format name, when the processing options map to one.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveRole {
    pub name: String,
    /// Who uses it ("delivery X", "instance i-...").
    pub used_by: String,
    /// ARNs of the attached managed policies.
    pub managed: Vec<String>,
    /// Names of its inline policies.
    pub inline: Vec<String>,
}

/// The last `/`-separated segment of an ARN.
fn last_segment(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// Reads what `req` names, and what it uses, in the clients' region.
pub async fn read(clients: &Clients, req: &Request) -> Result<LiveSetup> {
    if req.deliveries.is_empty() && req.instances.is_empty() {
        return Err(Error::Config(
            "init --from-live needs something to read: --delivery NAME and/or --instance ID".into(),
        ));
    }
    let mut setup = LiveSetup {
        region: clients.region.clone(),
        ..LiveSetup::default()
    };
    for name in &req.deliveries {
        let d = read_delivery(clients, name).await?;
        if let Some(s) = &d.source_stream {
            if !setup.streams.iter().any(|x| &x.name == s) {
                setup.streams.push(read_stream(clients, s).await?);
            }
        }
        if !d.bucket.is_empty() && !setup.buckets.iter().any(|b| b.name == d.bucket) {
            setup.buckets.push(read_bucket(clients, &d.bucket).await?);
        }
        if !d.role.is_empty() {
            setup
                .roles
                .push(read_role(clients, &d.role, format!("delivery {}", d.name)).await?);
        }
        setup.deliveries.push(d);
    }
    for id in &req.instances {
        let h = read_instance(clients, id).await?;
        if let Some(role) = &h.role {
            setup
                .roles
                .push(read_role(clients, role, format!("instance {}", h.id)).await?);
        }
        setup.hosts.push(h);
    }
    setup.stack = match &req.stack {
        Some(s) => s.clone(),
        None => default_stack(&setup),
    };
    if let Err(v) = crate::spec::rules::stack_name(&setup.stack) {
        return Err(Error::Config(format!(
            "{:?} is not a stack name: {} (pass --stack NAME)",
            setup.stack, v.message
        )));
    }
    Ok(setup)
}

/// A stack name made from the first delivery's (or instance's) name.
fn default_stack(setup: &LiveSetup) -> String {
    let from = setup
        .deliveries
        .first()
        .map(|d| d.name.clone())
        .or_else(|| setup.hosts.first().and_then(|h| h.name.clone()))
        .unwrap_or_default();
    let mut key = key_of(&from);
    key.truncate(32);
    let key = key.trim_end_matches('-').to_string();
    if key.len() < 2 {
        "adopted".into()
    } else {
        key
    }
}

async fn read_delivery(clients: &Clients, name: &str) -> Result<LiveDelivery> {
    let call = clients.firehose.describe_delivery_stream();
    let out = call
        .delivery_stream_name(name)
        .send()
        .await
        .op("firehose:DescribeDeliveryStream")?;
    let Some(d) = out.delivery_stream_description else {
        return Err(Error::Incomplete {
            operation: "firehose:DescribeDeliveryStream",
            field: "DeliveryStreamDescription",
        });
    };
    let source_stream = d
        .source
        .as_ref()
        .and_then(|s| s.kinesis_stream_source_description.as_ref())
        .and_then(|k| k.kinesis_stream_arn.as_deref())
        .map(last_segment);
    let dest = d.destinations.first();
    let ext = dest.and_then(|x| x.extended_s3_destination_description.as_ref());
    let s3 = dest.and_then(|x| x.s3_destination_description.as_ref());
    let mut out = LiveDelivery {
        name: name.to_string(),
        source_stream,
        ..LiveDelivery::default()
    };
    macro_rules! fill {
        ($e:expr) => {{
            out.bucket = $e
                .bucket_arn
                .split_once(":::")
                .map_or($e.bucket_arn.as_str(), |(_, b)| b)
                .to_string();
            out.role = last_segment(&$e.role_arn);
            out.prefix = non_empty($e.prefix.as_deref());
            out.error_prefix = non_empty($e.error_output_prefix.as_deref());
            let hints = $e.buffering_hints.as_ref();
            out.size_mb = hints.and_then(|h| h.size_in_mbs).unwrap_or(5).max(0) as u32;
            out.interval_seconds = hints
                .and_then(|h| h.interval_in_seconds)
                .unwrap_or(300)
                .max(0) as u32;
            out.compression = $e.compression_format.as_str().to_string();
            out.logging = $e
                .cloud_watch_logging_options
                .as_ref()
                .filter(|l| l.enabled == Some(true))
                .map(|l| {
                    (
                        l.log_group_name.clone().unwrap_or_default(),
                        l.log_stream_name.clone().unwrap_or_default(),
                    )
                });
        }};
    }
    match (ext, s3) {
        (Some(e), _) => {
            fill!(e);
            out.processing = e
                .processing_configuration
                .as_ref()
                .is_some_and(|p| p.enabled == Some(true));
        }
        (None, Some(s)) => fill!(s),
        (None, None) => {
            return Err(Error::Config(format!(
                "delivery stream {name} does not deliver to S3; streamstack describes only S3 deliveries"
            )))
        }
    }
    if let Some((group, _)) = &out.logging {
        let call = clients
            .logs
            .describe_log_groups()
            .log_group_name_prefix(group);
        let groups = call.send().await.op("logs:DescribeLogGroups")?;
        out.log_retention_days = groups
            .log_groups
            .unwrap_or_default()
            .into_iter()
            .find(|g| g.log_group_name.as_deref() == Some(group.as_str()))
            .and_then(|g| g.retention_in_days)
            .map(|d| d.max(0) as u32);
    }
    Ok(out)
}

async fn read_stream(clients: &Clients, name: &str) -> Result<LiveStream> {
    let call = clients.kinesis.describe_stream_summary().stream_name(name);
    let out = call.send().await.op("kinesis:DescribeStreamSummary")?;
    let Some(s) = out.stream_description_summary else {
        return Err(Error::Incomplete {
            operation: "kinesis:DescribeStreamSummary",
            field: "StreamDescriptionSummary",
        });
    };
    use aws_sdk_kinesis::types::{EncryptionType, StreamMode};
    Ok(LiveStream {
        name: name.to_string(),
        on_demand: !matches!(
            s.stream_mode_details.as_ref().map(|m| &m.stream_mode),
            Some(StreamMode::Provisioned)
        ),
        shards: s.open_shard_count.max(0) as u32,
        retention_hours: s.retention_period_hours.max(0) as u32,
        kms_key: match s.encryption_type {
            Some(EncryptionType::Kms) => s.key_id.clone(),
            _ => None,
        },
    })
}

async fn read_bucket(clients: &Clients, name: &str) -> Result<LiveBucket> {
    let s3 = &clients.s3;
    // moto answers GetBucketVersioning with a root element the SDK refuses: read as "off".
    let versioning = match s3.get_bucket_versioning().bucket(name).send().await {
        Ok(o) => o.status == Some(aws_sdk_s3::types::BucketVersioningStatus::Enabled),
        Err(e) => {
            tracing::info!("versioning of bucket {name} unread ({e}); taken as off");
            false
        }
    };
    let lifecycle = s3.get_bucket_lifecycle_configuration().bucket(name);
    let lifecycle = unset(
        lifecycle
            .send()
            .await
            .op("s3:GetBucketLifecycleConfiguration"),
    )?;
    let rules: Vec<_> = lifecycle
        .and_then(|l| l.rules)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.status == aws_sdk_s3::types::ExpirationStatus::Enabled)
        .collect();
    let expire_after_days = rules
        .iter()
        .find_map(|r| r.expiration.as_ref().and_then(|e| e.days))
        .map(|d| d.max(1) as u32);
    let encryption = s3.get_bucket_encryption().bucket(name);
    let sse_algorithm = unset(encryption.send().await.op("s3:GetBucketEncryption"))?
        .and_then(|e| e.server_side_encryption_configuration)
        .and_then(|c| c.rules.into_iter().next())
        .and_then(|r| r.apply_server_side_encryption_by_default)
        .map(|d| d.sse_algorithm.as_str().to_string())
        .unwrap_or_default();
    Ok(LiveBucket {
        name: name.to_string(),
        versioning,
        other_rules: rules
            .len()
            .saturating_sub(usize::from(expire_after_days.is_some())),
        expire_after_days,
        sse_algorithm,
    })
}

/// S3's "this bucket has no such configuration" answers as `None`.
fn unset<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.is_not_found()
                || e.code().is_some_and(|c| {
                    c.starts_with("NoSuch") || c == "ServerSideEncryptionConfigurationNotFoundError"
                }) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn read_role(clients: &Clients, name: &str, used_by: String) -> Result<LiveRole> {
    let iam = &clients.iam;
    let attached = iam.list_attached_role_policies().role_name(name);
    let attached = found(attached.send().await.op("iam:ListAttachedRolePolicies"))?;
    let inline = iam.list_role_policies().role_name(name);
    let inline = found(inline.send().await.op("iam:ListRolePolicies"))?;
    Ok(LiveRole {
        name: name.to_string(),
        used_by,
        managed: attached
            .and_then(|a| a.attached_policies)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.policy_arn)
            .collect(),
        inline: inline.map(|i| i.policy_names).unwrap_or_default(),
    })
}

async fn read_instance(clients: &Clients, id: &str) -> Result<LiveHost> {
    let ec2 = &clients.ec2;
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .op("ec2:DescribeInstances")?;
    let Some(i) = out
        .reservations
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.instances.unwrap_or_default())
        .find(|i| i.instance_id.as_deref() == Some(id))
    else {
        return Err(Error::Config(format!("no instance {id} in this region")));
    };
    let mut h = LiveHost {
        id: id.to_string(),
        name: i
            .tags()
            .iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value().map(str::to_string)),
        instance_type: i
            .instance_type
            .as_ref()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        image_id: i.image_id.clone().unwrap_or_default(),
        subnet: i.subnet_id.clone(),
        key_name: i.key_name.clone(),
        instance_profile: i
            .iam_instance_profile
            .as_ref()
            .and_then(|p| p.arn.as_deref())
            .map(last_segment),
        ..LiveHost::default()
    };
    let groups: Vec<String> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id.clone())
        .collect();
    if !groups.is_empty() {
        let out = ec2
            .describe_security_groups()
            .set_group_ids(Some(groups))
            .send()
            .await
            .op("ec2:DescribeSecurityGroups")?;
        for g in out.security_groups.unwrap_or_default() {
            for p in g.ip_permissions.unwrap_or_default() {
                let cidrs: Vec<String> = p
                    .ip_ranges
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.cidr_ip)
                    .collect();
                let ssh = p.ip_protocol.as_deref() == Some("tcp")
                    && p.from_port == Some(22)
                    && p.to_port == Some(22);
                if ssh {
                    h.ssh_from.extend(cidrs);
                } else {
                    h.other_ingress.push(format!(
                        "{} {}-{} from {}",
                        p.ip_protocol.unwrap_or_default(),
                        p.from_port.unwrap_or(-1),
                        p.to_port.unwrap_or(-1),
                        cidrs.join(", ")
                    ));
                }
            }
        }
    }
    if let Some(profile) = &h.instance_profile {
        let call = clients
            .iam
            .get_instance_profile()
            .instance_profile_name(profile);
        if let Some(p) = found(call.send().await.op("iam:GetInstanceProfile"))? {
            h.role = p
                .instance_profile
                .and_then(|p| p.roles.into_iter().next())
                .map(|r| r.role_name);
        }
    }
    let attr = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .op("ec2:DescribeInstanceAttribute")?;
    if let Some(encoded) = attr.user_data.and_then(|v| v.value) {
        let text = match base64::engine::general_purpose::STANDARD.decode(encoded.trim()) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => encoded,
        };
        h.flows = agent_flows(&text);
    }
    Ok(h)
}

/// The flows of the first agent.json (a JSON object with a `flows` array) found in `text`.
pub fn agent_flows(text: &str) -> Option<Vec<LiveFlow>> {
    for (start, _) in text.match_indices('{') {
        let mut depth = 0usize;
        let mut end = None;
        let mut in_string = false;
        let mut escaped = false;
        for (i, c) in text[start..].char_indices() {
            match (in_string, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (true, false, '"') => in_string = false,
                (true, false, _) => {}
                (false, _, '"') => in_string = true,
                (false, _, '{') => depth += 1,
                (false, _, '}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = Some(start + i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { continue };
        let Ok(json) = serde_json::from_str::<Value>(&text[start..end]) else {
            continue;
        };
        let Some(flows) = json.get("flows").and_then(Value::as_array) else {
            continue;
        };
        let str_of = |f: &Value, k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
        return Some(
            flows
                .iter()
                .map(|f| LiveFlow {
                    files: str_of(f, "filePattern").unwrap_or_default(),
                    stream: str_of(f, "kinesisStream"),
                    delivery: str_of(f, "deliveryStream"),
                    format: format_of(f.get("dataProcessingOptions")),
                })
                .collect(),
        );
    }
    None
}

/// The spec's format for an agent's `dataProcessingOptions` (`None`: lines, or unknown).
fn format_of(options: Option<&Value>) -> Option<String> {
    let first = options?.as_array()?.first()?;
    let name = first.get("optionName")?.as_str()?;
    let log = first.get("logFormat").and_then(Value::as_str);
    let spec = match (name, log) {
        ("CSVTOJSON", _) => "csv",
        ("LOGTOJSON", Some("COMMONAPACHELOG")) => "apache_log",
        ("LOGTOJSON", Some("COMBINEDAPACHELOG")) => "apache_combined",
        ("LOGTOJSON", Some("APACHEERRORLOG")) => "apache_error",
        ("LOGTOJSON", Some("SYSLOG")) => "syslog",
        ("LOGTOJSON", Some("RFC3339SYSLOG")) => "rfc3339_syslog",
        _ => return None,
    };
    Some(spec.into())
}

/// A spec key (`[a-z][a-z0-9-]*`) made from a physical name.
pub fn key_of(name: &str) -> String {
    let mut key = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            key.push(c);
        } else if !key.ends_with('-') && !key.is_empty() {
            key.push('-');
        }
    }
    let key = key.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let key = key.trim_end_matches('-');
    if key.is_empty() {
        "x".into()
    } else {
        key.to_string()
    }
}

/// Unique keys for `names` (a suffix `-2`, `-3`... on a repeat), each at most `max` long
/// before the suffix (derived names such as a delivery role's `{stack}-{key}-firehose` have
/// IAM's limits).
fn keys_for<'a>(names: impl Iterator<Item = &'a str>, max: usize) -> BTreeMap<String, String> {
    let mut used = BTreeSet::new();
    let mut out = BTreeMap::new();
    for n in names {
        let mut base = key_of(n);
        base.truncate(max.max(1));
        let base = base.trim_end_matches('-').to_string();
        let mut key = base.clone();
        let mut i = 2;
        while !used.insert(key.clone()) {
            key = format!("{base}-{i}");
            i += 1;
        }
        out.insert(n.to_string(), key);
    }
    out
}

/// A YAML scalar: a double-quoted string (JSON's quoting is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Validates a written spec as `validate` would (offline), so that a spec `init --from-live`
/// writes is known to load.
pub fn check(file: &str, text: &str, region: &str) -> Result<()> {
    let opts = crate::spec::LoadOptions {
        region: Some(region.to_string()),
        ..crate::spec::LoadOptions::default()
    };
    crate::derive::load_str(file, text, &opts)
        .map(|_| ())
        .map_err(Error::Spec)
}

/// The spec, as YAML with comments, describing `live`.
pub fn write_spec(live: &LiveSetup) -> String {
    let mut y = String::new();
    let mut assumptions: Vec<String> = Vec::new();
    // `{stack}-{key}-firehose` and `{stack}-{key}-host` are IAM role names: 64 at most.
    let iam_room = 64usize.saturating_sub(live.stack.len() + 12);
    let stream_keys = keys_for(live.streams.iter().map(|s| s.name.as_str()), 63);
    let bucket_keys = keys_for(live.buckets.iter().map(|b| b.name.as_str()), 63);
    let delivery_keys = keys_for(live.deliveries.iter().map(|d| d.name.as_str()), iam_room);
    let host_keys = keys_for(
        live.hosts
            .iter()
            .map(|h| h.name.as_deref().unwrap_or(h.id.as_str())),
        iam_room,
    );
    y.push_str(&format!(
        "# Written by `streamstack init --from-live` from what is live in {}.\n",
        live.region
    ));
    y.push_str("# Every physical name is kept (`name:`), so `streamstack adopt` takes these resources over\n");
    y.push_str("# without re-creating any. Review the ASSUMPTIONS below, then:\n");
    y.push_str("#   streamstack adopt THIS_FILE      # tags them as this stack's (asks first)\n");
    y.push_str("#   streamstack plan THIS_FILE       # what apply will still change\n");
    y.push_str("#\n# Live resources read (physical names):\n");
    for b in &live.buckets {
        y.push_str(&format!("#   bucket      {}\n", b.name));
    }
    for s in &live.streams {
        y.push_str(&format!("#   stream      {}\n", s.name));
    }
    for d in &live.deliveries {
        y.push_str(&format!("#   delivery    {}\n", d.name));
        if let Some((group, _)) = &d.logging {
            y.push_str(&format!("#   log group   {group}\n"));
        }
    }
    for r in &live.roles {
        y.push_str(&format!(
            "#   IAM role    {} (used by {})\n",
            r.name, r.used_by
        ));
    }
    for h in &live.hosts {
        y.push_str(&format!("#   instance    {}\n", h.id));
        if let Some(p) = &h.instance_profile {
            y.push_str(&format!("#   profile     {p} (of instance {})\n", h.id));
        }
    }
    y.push_str("version: 1\n");
    y.push_str(&format!("stack: {}\n", live.stack));
    y.push_str(&format!("region: {}\n", live.region));

    if !live.buckets.is_empty() {
        y.push_str("\nbuckets:\n");
    }
    for b in &live.buckets {
        let key = &bucket_keys[&b.name];
        y.push_str(&format!("  {key}:\n    name: {}\n", q(&b.name)));
        y.push_str(
            "    # destroy empties this bucket (every object and version) before deleting it;\n",
        );
        y.push_str("    # set false to keep a bucket that holds data you need.\n");
        y.push_str("    force_destroy: true\n");
        y.push_str(&format!("    versioning: {}\n", b.versioning));
        if let Some(d) = b.expire_after_days {
            y.push_str(&format!("    expire_after_days: {d}\n"));
        }
        if b.other_rules > 0 || b.expire_after_days.is_some() {
            assumptions.push(format!(
                "bucket {}: its lifecycle configuration is replaced by streamstack's one rule at adopt",
                b.name
            ));
        }
        if b.sse_algorithm != "AES256" {
            assumptions.push(format!(
                "bucket {}: default encryption {} becomes SSE-S3 (AES256), and all four public-access blocks are turned on",
                b.name,
                if b.sse_algorithm.is_empty() { "none" } else { &b.sse_algorithm }
            ));
        }
    }

    if !live.streams.is_empty() {
        y.push_str("\nstreams:\n");
    }
    for s in &live.streams {
        let key = &stream_keys[&s.name];
        y.push_str(&format!("  {key}:\n    name: {}\n", q(&s.name)));
        if s.on_demand {
            y.push_str("    mode: on_demand\n");
        } else {
            y.push_str(&format!(
                "    mode: provisioned\n    shards: {}\n",
                s.shards.max(1)
            ));
        }
        let retention = s.retention_hours.clamp(24, 8760);
        y.push_str(&format!("    retention_hours: {retention}\n"));
        let encryption = match s.kms_key.as_deref() {
            None => "none".to_string(),
            Some(crate::model::AWS_MANAGED_KINESIS_KEY) => "aws_managed".to_string(),
            Some(k) => q(k),
        };
        y.push_str(&format!("    encryption: {encryption}\n"));
        if s.kms_key.is_none() {
            y.push_str(
                "    # live without encryption at rest; `aws_managed` would encrypt it in place\n",
            );
        }
    }

    if !live.deliveries.is_empty() {
        y.push_str("\ndeliveries:\n");
    }
    for d in &live.deliveries {
        let key = &delivery_keys[&d.name];
        y.push_str(&format!("  {key}:\n    name: {}\n", q(&d.name)));
        match &d.source_stream {
            Some(s) => match stream_keys.get(s) {
                Some(k) => y.push_str(&format!("    from: {k}\n")),
                None => y.push_str(&format!("    from: {}\n", key_of(s))),
            },
            None => y.push_str("    from: direct\n"),
        }
        let to = bucket_keys
            .get(&d.bucket)
            .cloned()
            .unwrap_or_else(|| key_of(&d.bucket));
        y.push_str(&format!("    to: {to}\n"));
        if let Some(p) = &d.prefix {
            y.push_str(&format!("    prefix: {}\n", q(p)));
        }
        if let Some(p) = &d.error_prefix {
            y.push_str(&format!("    error_prefix: {}\n", q(p)));
        }
        y.push_str(&format!(
            "    buffering: {{ size_mb: {}, interval_seconds: {} }}\n",
            d.size_mb.clamp(1, 128),
            d.interval_seconds.min(900)
        ));
        let compression = crate::spec::types::Compression::ALL
            .iter()
            .find(|(n, _)| *n == d.compression)
            .map_or("UNCOMPRESSED", |(n, _)| *n);
        y.push_str(&format!("    compression: {compression}\n"));
        let console_group = format!("{}{}", crate::kinds::log_group::PREFIX, d.name);
        match &d.logging {
            None => y.push_str("    error_logging: false\n"),
            Some((group, stream)) => {
                let days = d
                    .log_retention_days
                    .filter(|r| crate::spec::types::LOG_RETENTION_DAYS.contains(r));
                match days {
                    Some(r) => {
                        y.push_str(&format!("    error_logging: {{ retention_days: {r} }}\n"))
                    }
                    None => {
                        y.push_str("    error_logging: { retention_days: 14 }\n");
                        assumptions.push(format!(
                            "log group {group}: it keeps error events forever; the spec keeps them 14 days (set in place)"
                        ));
                    }
                }
                if group != &console_group || stream != crate::kinds::log_group::ERROR_LOG_STREAM {
                    assumptions.push(format!(
                        "delivery {}: logs errors to {group}/{stream}; streamstack's group is {console_group}/{} (apply switches to it)",
                        d.name,
                        crate::kinds::log_group::ERROR_LOG_STREAM
                    ));
                }
            }
        }
        if d.processing {
            assumptions.push(format!(
                "delivery {}: its record transformation (Lambda) is not in the spec; apply leaves it as is only if Firehose keeps it",
                d.name
            ));
        }
        y.push_str(&format!(
            "    # delivery role now: {} (the console's); apply creates streamstack's derived one\n",
            d.role
        ));
        y.push_str(&format!(
            "    # ({}-{key}-firehose, least privilege) and points this delivery at it in place\n",
            live.stack
        ));
    }

    write_hosts(
        &mut y,
        live,
        &host_keys,
        &stream_keys,
        &delivery_keys,
        &mut assumptions,
    );

    for r in &live.roles {
        let fate = if r.used_by.starts_with("delivery") {
            "apply creates the delivery's derived least-privilege role and points the delivery at it in place; this role is then unused, left as it is for you to delete"
        } else {
            "apply creates the host's derived least-privilege role and profile and swaps the profile onto the running instance in place; this role is never deleted by streamstack (not the stack's), left for you to delete once unused"
        };
        for m in &r.managed {
            assumptions.push(format!(
                "managed policy {} on role {} ({}) is not adopted: {fate}",
                last_segment(m),
                r.name,
                r.used_by
            ));
        }
        if r.managed.is_empty() {
            assumptions.push(format!(
                "role {} ({}) is not adopted: {fate}",
                r.name, r.used_by
            ));
        }
    }
    y.push_str("\n# ASSUMPTIONS (what the spec cannot say as live is, and what will change):\n");
    if assumptions.is_empty() {
        y.push_str("# - none: the spec describes the live resources exactly\n");
    }
    for a in &assumptions {
        y.push_str(&format!("# - {a}\n"));
    }
    y
}

/// The hosts, one per instance read, each adopting its instance (`instance_id`): type, image
/// (the AMI id), subnet and SSH rules as live, the flows from the agent.json in its user-data
/// (else a placeholder that validates, marked FILL IN). Adopting never replaces the instance:
/// its user-data is not streamstack's and is never compared (`kinds::host::TAG_ADOPTED`).
fn write_hosts(
    y: &mut String,
    live: &LiveSetup,
    host_keys: &BTreeMap<String, String>,
    stream_keys: &BTreeMap<String, String>,
    delivery_keys: &BTreeMap<String, String>,
    assumptions: &mut Vec<String>,
) {
    if live.hosts.is_empty() {
        return;
    }
    // What a flow may send to: a stream of the spec, or a delivery of it that takes direct puts.
    let direct: Vec<&String> = live
        .deliveries
        .iter()
        .filter(|d| d.source_stream.is_none())
        .filter_map(|d| delivery_keys.get(&d.name))
        .collect();
    let fallback = stream_keys
        .values()
        .next()
        .or_else(|| direct.first().copied())
        .cloned();
    let Some(fallback) = fallback else {
        // Nothing in the spec a flow could send to: a host would not validate.
        y.push_str(
            "\n# HOSTS: not written, as the spec has no stream for their flows (add --delivery).\n",
        );
        for h in &live.hosts {
            y.push_str(&format!(
                "#   instance {}: {}, image {}\n",
                h.id, h.instance_type, h.image_id
            ));
        }
        assumptions.push(
            "the instances read are not in the spec: it has no stream their flows could send to"
                .into(),
        );
        return;
    };
    y.push_str("\n# HOSTS: each adopts its running instance (instance_id): adopt tags it, apply swaps the\n");
    y.push_str("# derived least-privilege instance profile (and security group, with ssh) onto it in place.\n");
    y.push_str(
        "# Its user-data and agent configuration are not managed by streamstack; the flows tell\n",
    );
    y.push_str(
        "# check and tail what it sends. A new image, type or subnet would replace the instance.\n",
    );
    y.push_str("hosts:\n");
    for h in &live.hosts {
        let key = &host_keys[h.name.as_deref().unwrap_or(h.id.as_str())];
        y.push_str(&format!(
            "  {key}:   # instance {}{}\n",
            h.id,
            h.name
                .as_ref()
                .map(|n| format!(" (Name {n}; renamed {}-{key})", live.stack))
                .unwrap_or_default()
        ));
        y.push_str(&format!("    instance_id: {}\n", h.id));
        y.push_str(&format!("    instance_type: {}\n", q(&h.instance_type)));
        y.push_str(&format!("    image: {}\n", q(&h.image_id)));
        if let Some(s) = &h.subnet {
            y.push_str(&format!("    subnet: {s}\n"));
        }
        if !h.ssh_from.is_empty() {
            let key_name = h
                .key_name
                .as_ref()
                .map(|k| format!("key_name: {}, ", q(k)))
                .unwrap_or_default();
            y.push_str(&format!(
                "    ssh: {{ {key_name}from: [{}] }}\n",
                h.ssh_from.join(", ")
            ));
        } else if let Some(k) = &h.key_name {
            y.push_str(&format!(
                "    # key pair {k}: no inbound SSH rule, so the spec names none (set at launch; kept)\n"
            ));
        }
        for r in &h.other_ingress {
            y.push_str(&format!("    # inbound rule not kept: {r}\n"));
            assumptions.push(format!(
                "instance {}: inbound rule {r} is not in the spec; the derived security group allows only SSH",
                h.id
            ));
        }
        if let Some(p) = &h.instance_profile {
            y.push_str(&format!(
                "    # instance profile now: {p}{} (the console's); apply swaps in the derived\n",
                h.role
                    .as_ref()
                    .map(|r| format!(" (role {r})"))
                    .unwrap_or_default()
            ));
            y.push_str(&format!(
                "    # least-privilege {}-{key}-host in place; the console's profile and role are left as they are\n",
                live.stack
            ));
        }
        match &h.flows {
            Some(flows) if !flows.is_empty() => {
                y.push_str("    flows:   # read from the agent.json in the instance's user-data\n");
                for f in flows {
                    let known = match (&f.stream, &f.delivery) {
                        (Some(s), _) => stream_keys.get(s),
                        (None, Some(d)) => delivery_keys.get(d).filter(|k| direct.contains(k)),
                        _ => None,
                    };
                    let to = known.cloned().unwrap_or_else(|| fallback.clone());
                    y.push_str(&format!("      - files: {}\n        to: {to}", q(&f.files)));
                    if known.is_none() {
                        let target = f.stream.as_ref().or(f.delivery.as_ref());
                        let target = target.map_or("nothing", String::as_str);
                        y.push_str(&format!(
                            "   # FILL IN: the agent sends to {target}, which this spec lacks"
                        ));
                        assumptions.push(format!(
                            "instance {}: its agent sends {} to {target}, not in the spec; the flow says {to} (FILL IN)",
                            h.id, f.files
                        ));
                    }
                    y.push('\n');
                    if let Some(fmt) = &f.format {
                        y.push_str(&format!("        format: {fmt}\n"));
                    }
                }
            }
            _ => {
                y.push_str("    flows:   # FILL IN: no agent.json in the user-data (the console's agent was\n");
                y.push_str("             # configured by hand on the instance): a placeholder, fix files/to\n");
                y.push_str("      - files: /var/log/weather/*.log\n");
                y.push_str(&format!("        to: {fallback}\n"));
                assumptions.push(format!(
                    "instance {}: its user-data holds no agent.json; the host's flows are a placeholder (FILL IN)",
                    h.id
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LoadOptions;

    fn lab() -> LiveSetup {
        LiveSetup {
            stack: "console-lab".into(),
            region: "ap-northeast-2".into(),
            streams: vec![LiveStream {
                name: "KDS-weather".into(),
                on_demand: true,
                shards: 4,
                retention_hours: 24,
                kms_key: None,
            }],
            buckets: vec![LiveBucket {
                name: "my-lab-bucket-0412".into(),
                ..LiveBucket::default()
            }],
            deliveries: vec![LiveDelivery {
                name: "KDS-S3-weather".into(),
                source_stream: Some("KDS-weather".into()),
                bucket: "my-lab-bucket-0412".into(),
                role: "KinesisFirehoseServiceRole-KDS-S3-wea-ap-northeast-2-1".into(),
                size_mb: 5,
                interval_seconds: 300,
                compression: "UNCOMPRESSED".into(),
                logging: Some((
                    "/aws/kinesisfirehose/KDS-S3-weather".into(),
                    "DestinationDelivery".into(),
                )),
                ..LiveDelivery::default()
            }],
            hosts: vec![LiveHost {
                id: "i-0123456789abcdef0".into(),
                name: Some("kinesis-agent".into()),
                instance_type: "t2.micro".into(),
                image_id: "ami-0abc1234".into(),
                subnet: Some("subnet-0123abcd".into()),
                ssh_from: vec!["203.0.113.0/24".into()],
                other_ingress: vec!["tcp 80-80 from 0.0.0.0/0".into()],
                role: Some("ec2-kinesis".into()),
                instance_profile: Some("ec2-kinesis".into()),
                flows: None,
                ..LiveHost::default()
            }],
            roles: vec![LiveRole {
                name: "ec2-kinesis".into(),
                used_by: "instance i-0123456789abcdef0".into(),
                managed: vec!["arn:aws:iam::aws:policy/AmazonKinesisFullAccess".into()],
                inline: vec![],
            }],
        }
    }

    #[test]
    fn the_written_spec_validates_and_keeps_every_name() {
        let text = write_spec(&lab());
        let opts = LoadOptions {
            account_id: Some("123456789012".into()),
            ..LoadOptions::default()
        };
        let v = crate::derive::load_str("live.yaml", &text, &opts)
            .unwrap_or_else(|d| panic!("{d}\n{text}"));
        let names: Vec<&str> = v
            .model
            .resources
            .values()
            .map(|r| r.name.as_str())
            .collect();
        for n in [
            "KDS-weather",
            "my-lab-bucket-0412",
            "KDS-S3-weather",
            "/aws/kinesisfirehose/KDS-S3-weather",
        ] {
            assert!(names.contains(&n), "{n} not in {names:?}\n{text}");
        }
        let s = &v.spec.streams["kds-weather"];
        assert_eq!(s.encryption, crate::spec::types::StreamEncryption::None);
        assert!(text.contains("managed policy AmazonKinesisFullAccess on role ec2-kinesis"));
        for line in [
            "#   instance    i-0123456789abcdef0",
            "#   IAM role    ec2-kinesis (used by instance i-0123456789abcdef0)",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(text.contains("log group /aws/kinesisfirehose/KDS-S3-weather: it keeps"));
        assert!(
            text.contains("  kinesis-agent:   # instance i-0123456789abcdef0"),
            "{text}"
        );
        assert!(text.contains("FILL IN"), "{text}");
        // The host adopts the instance, as live: no launch, no replacement.
        let h = &v.spec.hosts["kinesis-agent"];
        assert_eq!(h.instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(h.instance_type, "t2.micro");
        assert_eq!(
            h.image,
            crate::spec::types::Image::Ami("ami-0abc1234".into())
        );
        assert_eq!(h.subnet.as_deref(), Some("subnet-0123abcd"));
        assert_eq!(
            h.ssh.as_ref().map(|s| s.from.clone()),
            Some(vec!["203.0.113.0/24".to_string()])
        );
        assert_eq!(h.flows[0].to, "kds-weather");
        assert!(text.contains("its user-data holds no agent.json"), "{text}");
        assert!(text.contains("inbound rule tcp 80-80"), "{text}");
    }

    #[test]
    fn provisioned_streams_kms_and_agent_flows_are_written() {
        let mut live = lab();
        live.streams[0].on_demand = false;
        live.streams[0].shards = 2;
        live.streams[0].kms_key = Some("alias/aws/kinesis".into());
        live.deliveries[0].logging = None;
        live.hosts[0].flows = agent_flows(
            "#!/bin/bash\ncat > /etc/aws-kinesis/agent.json <<'EOF'\n{\"cloudwatch.emitMetrics\": true, \"flows\": [{\"filePattern\": \"/var/log/weather/*.log\", \"kinesisStream\": \"KDS-weather\", \"dataProcessingOptions\": [{\"optionName\": \"LOGTOJSON\", \"logFormat\": \"SYSLOG\"}]}]}\nEOF\n",
        );
        let text = write_spec(&live);
        let v = crate::derive::load_str("live.yaml", &text, &LoadOptions::default())
            .unwrap_or_else(|d| panic!("{d}\n{text}"));
        let s = &v.spec.streams["kds-weather"];
        assert_eq!(s.shards, Some(2));
        assert_eq!(
            s.encryption,
            crate::spec::types::StreamEncryption::AwsManaged
        );
        assert!(v.spec.deliveries["kds-s3-weather"].error_logging.is_none());
        assert!(
            text.contains("      - files: \"/var/log/weather/*.log\"\n        to: kds-weather\n        format: syslog"),
            "{text}"
        );
    }

    /// A flow to a stream the spec lacks falls back to one it has, marked FILL IN; with no
    /// stream at all the hosts are left out, and the spec still validates.
    #[test]
    fn hosts_always_validate() {
        let mut live = lab();
        live.hosts[0].flows = Some(vec![LiveFlow {
            files: "/var/log/app.log".into(),
            stream: Some("elsewhere".into()),
            ..LiveFlow::default()
        }]);
        let text = write_spec(&live);
        check("a.yaml", &text, "ap-northeast-2").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(
            text.contains("to: kds-weather   # FILL IN: the agent sends to elsewhere"),
            "{text}"
        );
        live.streams.clear();
        live.deliveries.clear();
        let text = write_spec(&live);
        check("b.yaml", &text, "ap-northeast-2").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains("HOSTS: not written"), "{text}");
    }

    #[test]
    fn long_names_still_make_a_valid_spec() {
        let mut live = lab();
        live.stack = "a-stack-name-of-thirty-two-chars".into();
        live.deliveries[0].name = "KDS-S3-weather-delivery-stream-for-production-use".into();
        let text = write_spec(&live);
        check("long.yaml", &text, "ap-northeast-2").unwrap_or_else(|e| panic!("{e}\n{text}"));
    }

    #[test]
    fn keys_are_spec_keys_and_unique() {
        assert_eq!(key_of("KDS_S3 weather"), "kds-s3-weather");
        assert_eq!(key_of("9lives"), "lives");
        assert_eq!(key_of("---"), "x");
        let keys = keys_for(["a.b", "a-b"].into_iter(), 63);
        assert_eq!(keys["a.b"], "a-b");
        assert_eq!(keys["a-b"], "a-b-2");
        let keys = keys_for(["delivery-to-s3"].into_iter(), 9);
        assert_eq!(keys["delivery-to-s3"], "delivery");
    }
}
