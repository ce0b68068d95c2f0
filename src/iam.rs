//! Least-privilege IAM documents, derived from the flows and deliveries.
//!
//! - Host role: the agent only calls `PutRecords` (Kinesis flows), `PutRecordBatch` (direct
//!   Firehose flows) and `PutMetricData` (docs/aws-facts.md#what-the-agent-calls). `PutRecord`
//!   is granted beside `PutRecords` as AWS's own producer example does
//!   (docs/aws-facts.md#host-role).
//! - Delivery role: what Firehose needs to read its one stream and write its one bucket
//!   (docs/aws-facts.md#delivery-role).
//! - No `*` action anywhere. The only `*` resource is `cloudwatch:PutMetricData`, which has no
//!   resource-level permissions; it is pinned to the agent's namespace by a condition instead.

use serde_json::{json, Value};

use crate::model::{Env, AGENT_METRICS_NAMESPACE, TAG_ADDRESS, TAG_BOOTSTRAP, TAG_STACK};

/// Trust policy for a role assumed by EC2 instances.
pub fn ec2_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

/// Trust policy for a role assumed by Firehose, with confused-deputy protection.
pub fn firehose_trust_policy(env: &Env) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "firehose.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": env.account_id}}
        }]
    })
}

/// What a host's agent writes to, with physical names already resolved.
#[derive(Debug, Clone, Default)]
pub struct HostAccess {
    /// The stack the host belongs to (its instance carries `streamstack:stack=<stack>`).
    pub stack: String,
    /// The host's address (`host.KEY`): its instance carries `streamstack:address=<address>`.
    pub address: String,
    /// Kinesis stream names the flows write to.
    pub streams: Vec<String>,
    /// Direct-put Firehose delivery names the flows write to.
    pub deliveries: Vec<String>,
    /// Customer KMS keys of those streams (not the AWS-managed one).
    pub kms_keys: Vec<String>,
}

/// A KMS key reference as a policy resource plus an optional alias condition.
fn kms_statement(env: &Env, sid: &str, actions: &[&str], keys: &[String], via: &str) -> Value {
    let mut arns = Vec::new();
    let mut aliases = Vec::new();
    for k in keys {
        if k.starts_with("arn:") && k.contains(":key/") {
            arns.push(k.clone());
        } else if let Some(alias) = k.strip_prefix("arn:").and_then(|_| k.split_once(":alias/")) {
            aliases.push(format!("alias/{}", alias.1));
        } else if k.starts_with("alias/") {
            aliases.push(k.clone());
        } else {
            arns.push(format!(
                "arn:{}:kms:{}:{}:key/{k}",
                env.partition, env.region, env.account_id
            ));
        }
    }
    let mut cond = json!({"StringEquals": {"kms:ViaService": format!("{via}.{}.{}", env.region, env.dns_suffix())}});
    let resource = if aliases.is_empty() {
        json!(arns)
    } else {
        // Keys named by alias: allow keys of this account that carry one of the aliases.
        cond["ForAnyValue:StringEquals"] = json!({"kms:ResourceAliases": aliases});
        let mut r = arns;
        r.push(format!(
            "arn:{}:kms:{}:{}:key/*",
            env.partition, env.region, env.account_id
        ));
        json!(r)
    };
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource, "Condition": cond})
}

/// The host role's one inline policy.
pub fn host_policy(env: &Env, access: &HostAccess) -> Value {
    let mut statements = Vec::new();
    if !access.streams.is_empty() {
        let arns: Vec<String> = access.streams.iter().map(|s| env.stream_arn(s)).collect();
        statements.push(json!({
            "Sid": "PutToStreams",
            "Effect": "Allow",
            "Action": ["kinesis:PutRecords", "kinesis:PutRecord"],
            "Resource": arns
        }));
    }
    if !access.deliveries.is_empty() {
        let arns: Vec<String> = access
            .deliveries
            .iter()
            .map(|d| env.delivery_arn(d))
            .collect();
        statements.push(json!({
            "Sid": "PutToDeliveries",
            "Effect": "Allow",
            "Action": ["firehose:PutRecordBatch"],
            "Resource": arns
        }));
    }
    if !access.kms_keys.is_empty() {
        statements.push(kms_statement(
            env,
            "EncryptForStreams",
            &["kms:GenerateDataKey"],
            &access.kms_keys,
            "kinesis",
        ));
    }
    statements.push(report_bootstrap(env, access));
    statements.push(json!({
        "Sid": "AgentMetrics",
        "Effect": "Allow",
        "Action": ["cloudwatch:PutMetricData"],
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": AGENT_METRICS_NAMESPACE}}
    }));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// An external host's user's one inline policy: the host policy without the bootstrap report
/// (there is no instance to tag): put to its streams and deliveries, and the agent's metrics.
pub fn external_host_policy(env: &Env, access: &HostAccess) -> Value {
    let mut policy = host_policy(env, access);
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.retain(|s| s["Sid"] != "ReportBootstrap");
    }
    policy
}

/// The bootstrap reports by tagging its own instance: only that tag key, only on the instance
/// that carries this host's `streamstack:address` and the stack's `streamstack:stack` (every
/// host has a role of its own, so that is the instance making the call). Only condition keys
/// documented for `ec2:CreateTags` on an instance: `aws:ResourceTag/${TagKey}` and
/// `aws:TagKeys` (docs/aws-facts.md#host-role); `aws:ARN` is not one of them.
fn report_bootstrap(env: &Env, access: &HostAccess) -> Value {
    let tag = |key: &str| format!("aws:ResourceTag/{key}");
    json!({
        "Sid": "ReportBootstrap",
        "Effect": "Allow",
        "Action": ["ec2:CreateTags"],
        "Resource": format!("arn:{}:ec2:{}:{}:instance/*", env.partition, env.region, env.account_id),
        "Condition": {
            "StringEquals": {
                tag(TAG_ADDRESS): access.address,
                tag(TAG_STACK): access.stack
            },
            "ForAllValues:StringEquals": {"aws:TagKeys": [TAG_BOOTSTRAP]}
        }
    })
}

/// What a delivery reads and writes, with physical names resolved.
#[derive(Debug, Clone)]
pub struct DeliveryAccess {
    pub delivery_name: String,
    /// The CloudWatch Logs group Firehose logs delivery errors to, when error logging is on.
    pub log_group: Option<String>,
    /// The source stream, when Firehose reads one.
    pub stream: Option<String>,
    /// The source stream's customer KMS key, if any.
    pub stream_kms_key: Option<String>,
    pub bucket: String,
}

/// The delivery role's one inline policy.
pub fn delivery_policy(env: &Env, access: &DeliveryAccess) -> Value {
    let bucket_arn = env.bucket_arn(&access.bucket);
    let mut statements = vec![json!({
        "Sid": "WriteToBucket",
        "Effect": "Allow",
        "Action": [
            "s3:AbortMultipartUpload",
            "s3:GetBucketLocation",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:ListBucketMultipartUploads",
            "s3:PutObject"
        ],
        "Resource": [bucket_arn.clone(), format!("{bucket_arn}/*")]
    })];
    if let Some(stream) = &access.stream {
        statements.push(json!({
            "Sid": "ReadFromStream",
            "Effect": "Allow",
            "Action": [
                "kinesis:DescribeStream",
                "kinesis:GetShardIterator",
                "kinesis:GetRecords",
                "kinesis:ListShards"
            ],
            "Resource": env.stream_arn(stream)
        }));
        if let Some(key) = &access.stream_kms_key {
            statements.push(kms_statement(
                env,
                "DecryptStream",
                &["kms:Decrypt"],
                std::slice::from_ref(key),
                "kinesis",
            ));
        }
    }
    if let Some(group) = &access.log_group {
        statements.push(json!({
            "Sid": "DeliveryErrorLogs",
            "Effect": "Allow",
            "Action": ["logs:PutLogEvents"],
            "Resource": format!("{}:log-stream:*", env.log_group_arn(group))
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Every `Action` string in a policy document.
pub fn actions(policy: &Value) -> Vec<String> {
    statement_field(policy, "Action")
}

/// Every `Resource` string in a policy document.
pub fn resources(policy: &Value) -> Vec<String> {
    statement_field(policy, "Resource")
}

fn statement_field(policy: &Value, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    for st in policy["Statement"].as_array().into_iter().flatten() {
        match &st[field] {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => {
                out.extend(items.iter().filter_map(|v| v.as_str().map(String::from)))
            }
            _ => {}
        }
    }
    out
}

/// Size IAM counts against its quotas: characters excluding whitespace.
pub fn policy_size(policy: &Value) -> usize {
    policy
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

/// IAM quotas on document sizes.
pub const TRUST_POLICY_MAX: usize = 2048;
pub const INLINE_POLICIES_MAX: usize = 10_240;

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new("123456789012", "eu-west-1", "lab")
    }

    #[test]
    fn host_policy_grants_exactly_the_flows_targets() {
        let p = host_policy(
            &env(),
            &HostAccess {
                stack: "lab".into(),
                address: "host.web".into(),
                streams: vec!["lab-weather".into()],
                deliveries: vec!["lab-direct".into()],
                kms_keys: vec![],
            },
        );
        assert_eq!(
            actions(&p),
            [
                "kinesis:PutRecords",
                "kinesis:PutRecord",
                "firehose:PutRecordBatch",
                "ec2:CreateTags",
                "cloudwatch:PutMetricData"
            ]
        );
        assert_eq!(
            resources(&p),
            [
                "arn:aws:kinesis:eu-west-1:123456789012:stream/lab-weather",
                "arn:aws:firehose:eu-west-1:123456789012:deliverystream/lab-direct",
                "arn:aws:ec2:eu-west-1:123456789012:instance/*",
                "*"
            ]
        );
        // The host may set only its bootstrap tag, only on itself, only on the stack's hosts,
        // with condition keys documented for ec2:CreateTags (no aws:ARN).
        let tag = &p["Statement"][2]["Condition"];
        assert_eq!(
            tag["StringEquals"],
            serde_json::json!({
                "aws:ResourceTag/streamstack:address": "host.web",
                "aws:ResourceTag/streamstack:stack": "lab"
            })
        );
        assert!(!p.to_string().contains("aws:ARN"));
        assert_eq!(
            tag["ForAllValues:StringEquals"]["aws:TagKeys"],
            serde_json::json!(["streamstack:bootstrap"])
        );
        assert_eq!(
            p["Statement"][3]["Condition"]["StringEquals"]["cloudwatch:namespace"],
            "AWSKinesisAgent"
        );
    }

    /// A delivery `lab-d` (logging errors) reading `stream` into `bucket`.
    fn reading(stream: &str, kms_key: Option<&str>, bucket: &str) -> DeliveryAccess {
        DeliveryAccess {
            delivery_name: "lab-d".into(),
            log_group: Some("/aws/kinesisfirehose/lab-d".into()),
            stream: Some(stream.into()),
            stream_kms_key: kms_key.map(str::to_string),
            bucket: bucket.into(),
        }
    }

    #[test]
    fn delivery_policy_reads_one_stream_writes_one_bucket() {
        let p = delivery_policy(&env(), &reading("lab-s", None, "lab-b"));
        assert!(actions(&p).iter().all(|a| !a.contains('*')));
        let res = resources(&p);
        assert!(res.contains(&"arn:aws:s3:::lab-b".to_string()));
        assert!(res.contains(&"arn:aws:s3:::lab-b/*".to_string()));
        assert!(res.contains(&"arn:aws:kinesis:eu-west-1:123456789012:stream/lab-s".to_string()));
        assert!(!actions(&p).iter().any(|a| a.starts_with("kms:")));
        let t = firehose_trust_policy(&env());
        assert_eq!(
            t["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "123456789012"
        );
    }

    #[test]
    fn kms_only_with_customer_keys() {
        let p = delivery_policy(
            &env(),
            &DeliveryAccess {
                log_group: None,
                ..reading("s", Some("alias/mine"), "b")
            },
        );
        assert!(actions(&p).contains(&"kms:Decrypt".to_string()));
    }
}
