//! The least-privilege IAM policy of the principal that runs streamstack (a person, or the CI
//! role of a GitOps pipeline) for one spec: `streamstack render SPEC --what operator-policy
//! [--for plan|apply]`.
//!
//! Derived from the spec's model: for each kind the spec uses, the AWS actions streamstack calls
//! for it (what its file in `src/kinds/` calls, the lock's and `check`'s calls), on the stack's
//! own resources:
//!
//! - Kinesis streams, Firehose deliveries, S3 buckets and CloudWatch Logs groups by name: each
//!   name of the spec, and `{stack}-*`, the default names, which also covers a resource that has
//!   left the spec (destroyed as an orphan) under a default name.
//! - IAM roles and instance profiles by the stack's path `/streamstack/{stack}/`, which every
//!   role and profile streamstack makes carries. `iam:PassRole` only on those roles, only to the
//!   service that uses them (`iam:PassedToService`).
//! - EC2 by tag: creations must carry `streamstack:stack` (`aws:RequestTag`), tags on creation
//!   only from `RunInstances`/`CreateSecurityGroup` (`ec2:CreateAction`), every other write only
//!   on resources tagged with the stack (`aws:ResourceTag`).
//! - `*` only for what has no resource-level permissions (the `Describe*`/`List*` calls that
//!   list, `tag:GetResources`).
//!
//! The `plan` variant is read-only: what discovery reads. The `apply` variant adds what apply,
//! `check` (with `--put`) and destroy do. `sts:GetCallerIdentity` needs no permission. Actions of
//! the CloudFormation engine are not included: this is the default engine's policy.
//!
//! The render is offline, so the account id is not known: `*` stands in the account position of
//! every ARN (and in names that contain the account id).
//!
//! Not granted on purpose: `iam:GetAccountAuthorizationDetails` (it reads every IAM entity of the
//! account; discovery falls back to reading the stack's roles one by one when it is refused).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::kinds::host::HostProps;
use crate::kinds::stream::StreamProps;
use crate::kinds::{
    BUCKET, DELIVERY, DELIVERY_ROLE, HOST, HOST_ROLE, INSTANCE_PROFILE, LOG_GROUP, SECURITY_GROUP,
    STREAM,
};
use crate::model::{Env, Kind, Model, TAG_STACK};

/// Which commands the policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `plan` (and `output`, `stacks`): reads only.
    Plan,
    /// `apply`, `check` and `destroy` (and what `plan` needs).
    Apply,
}

/// One IAM policy document for `model`'s stack. `account`: the account id for ARNs, or `None`
/// for `*` (the model's own account id, from an offline load, is then replaced everywhere).
pub fn operator_policy(model: &Model, purpose: Purpose, account: Option<&str>) -> Value {
    let s = Scope::new(model, purpose);
    let mut statements = discovery(&s);
    statements.extend(services(&s));
    statements.extend(iam(&s));
    statements.extend(users(&s));
    statements.extend(ec2(&s));
    statements.extend(lock_statements(&model.env, &model.stack, purpose));
    let statements = statements.into_iter().flatten().collect::<Vec<_>>();
    let mut doc = json!({"Version": "2012-10-17", "Statement": statements});
    let account = account.unwrap_or("*");
    if account != model.env.account_id {
        replace_in_strings(&mut doc, &model.env.account_id, account);
    }
    doc
}

/// The stack's names and ARN patterns, per kind.
struct Scope<'a> {
    model: &'a Model,
    env: &'a Env,
    stack: &'a str,
    purpose: Purpose,
}

impl<'a> Scope<'a> {
    fn new(model: &'a Model, purpose: Purpose) -> Self {
        Scope {
            model,
            env: &model.env,
            stack: &model.stack,
            purpose,
        }
    }
    fn has(&self, kind: Kind) -> bool {
        self.model.of_kind(kind).next().is_some()
    }
    fn roles(&self) -> bool {
        self.has(HOST_ROLE) || self.has(DELIVERY_ROLE)
    }
    fn instances(&self) -> bool {
        self.has(HOST) || self.has(SECURITY_GROUP)
    }
    /// `reads`, plus `writes` for apply.
    fn actions(&self, reads: &[&'static str], writes: &[&'static str]) -> Vec<&'static str> {
        let mut out = reads.to_vec();
        if self.purpose == Purpose::Apply {
            out.extend(writes);
        }
        out
    }
    /// The physical names of `kind`: a name containing `{stack}-` is covered by the pattern
    /// that ends there (`{stack}-*`, `/aws/kinesisfirehose/{stack}-*`), which also covers the
    /// resources of the stack that have left the spec; other names as they are.
    fn names(&self, kind: Kind) -> Vec<String> {
        let marker = format!("{}-", self.stack);
        let mut out = BTreeSet::new();
        for r in self.model.of_kind(kind) {
            match r.name.split_once(&marker) {
                Some((before, _)) => out.insert(format!("{before}{marker}*")),
                None => out.insert(r.name.clone()),
            };
        }
        out.into_iter().collect()
    }
    fn arns(&self, kind: Kind, arn: impl Fn(&Env, &str) -> String) -> Vec<String> {
        self.names(kind).iter().map(|n| arn(self.env, n)).collect()
    }
    fn ec2(&self, resource: &str) -> String {
        let e = self.env;
        format!(
            "arn:{}:ec2:{}:{}:{resource}",
            e.partition, e.region, e.account_id
        )
    }
    fn iam(&self, type_: &str) -> String {
        let e = self.env;
        format!(
            "arn:{}:iam::{}:{type_}{}*",
            e.partition, e.account_id, e.iam_path
        )
    }
    /// `Condition`: the stack's tag on the resource (`Resource`) or in the request (`Request`).
    fn tagged(&self, context: &str) -> Value {
        json!({"StringEquals": {format!("aws:{context}Tag/{TAG_STACK}"): self.stack}})
    }
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Option<Value> {
    if actions.is_empty() {
        return None;
    }
    Some(json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}))
}

fn conditional(sid: &str, actions: &[&str], resources: Vec<String>, when: Value) -> Option<Value> {
    let mut st = statement(sid, actions, resources)?;
    st["Condition"] = when;
    Some(st)
}

/// What has no resource-level permissions: listings by tag, name prefix or path, and EC2's
/// `Describe*` calls. `kinesis:UpdateShardCount` is here too: the IAM definitions parliament
/// checks against (its `iam_definition.json`) give it no resource type.
fn discovery(s: &Scope) -> Vec<Option<Value>> {
    let mut actions = vec!["tag:GetResources"];
    let ec2: &[&str] = &[
        "ec2:DescribeInstances",
        "ec2:DescribeIamInstanceProfileAssociations",
        "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
    ];
    let by_kind: [(bool, &[&str]); 6] = [
        (s.has(STREAM), &["kinesis:ListStreams"]),
        (s.has(DELIVERY), &["firehose:ListDeliveryStreams"]),
        (s.has(BUCKET), &["s3:ListAllMyBuckets"]),
        (s.has(LOG_GROUP), &["logs:DescribeLogGroups"]),
        (s.roles(), &["iam:ListRoles", "iam:ListInstanceProfiles"]),
        (s.instances(), ec2),
    ];
    for (used, list) in by_kind {
        if used {
            actions.extend(list.iter().copied());
        }
    }
    if s.has(STREAM) {
        actions.extend(s.actions(&[], &["kinesis:UpdateShardCount"]));
    }
    vec![statement("Discover", &actions, vec!["*".into()])]
}

/// Kinesis, Firehose, S3 and CloudWatch Logs: the stack's resources by name.
fn services(s: &Scope) -> Vec<Option<Value>> {
    let mut out = Vec::new();
    if s.has(STREAM) {
        out.push(statement(
            "Streams",
            &s.actions(STREAM_READS, STREAM_WRITES),
            s.arns(STREAM, Env::stream_arn),
        ));
        out.push(stream_encryption(s));
    }
    if s.has(DELIVERY) {
        out.push(statement(
            "Deliveries",
            &s.actions(DELIVERY_READS, DELIVERY_WRITES),
            s.arns(DELIVERY, Env::delivery_arn),
        ));
    }
    if s.has(BUCKET) {
        let buckets = s.arns(BUCKET, Env::bucket_arn);
        let objects = buckets.iter().map(|b| format!("{b}/*")).collect();
        out.push(statement(
            "Buckets",
            &s.actions(BUCKET_READS, BUCKET_WRITES),
            buckets,
        ));
        out.push(statement(
            "BucketObjects",
            &s.actions(&[], OBJECT_WRITES),
            objects,
        ));
    }
    if s.has(LOG_GROUP) {
        let groups: Vec<String> = s
            .arns(LOG_GROUP, Env::log_group_arn)
            .into_iter()
            .flat_map(|g| [g.clone(), format!("{g}:log-stream:*")])
            .collect();
        out.push(statement(
            "LogGroups",
            &s.actions(LOG_READS, LOG_WRITES),
            groups,
        ));
    }
    out
}

const STREAM_READS: &[&str] = &[
    "kinesis:DescribeStreamSummary",
    "kinesis:ListTagsForStream",
    "kinesis:ListShards",
];
/// Apply and destroy, and `check`: reading the records, `--put` writing test records.
const STREAM_WRITES: &[&str] = &[
    "kinesis:CreateStream",
    "kinesis:DeleteStream",
    "kinesis:AddTagsToStream",
    "kinesis:RemoveTagsFromStream",
    "kinesis:IncreaseStreamRetentionPeriod",
    "kinesis:DecreaseStreamRetentionPeriod",
    "kinesis:PutRecords",
    "kinesis:GetShardIterator",
    "kinesis:GetRecords",
];
const DELIVERY_READS: &[&str] = &[
    "firehose:DescribeDeliveryStream",
    "firehose:ListTagsForDeliveryStream",
];
const DELIVERY_WRITES: &[&str] = &[
    "firehose:CreateDeliveryStream",
    "firehose:DeleteDeliveryStream",
    "firehose:UpdateDestination",
    "firehose:TagDeliveryStream",
    "firehose:UntagDeliveryStream",
    "firehose:PutRecordBatch",
];
/// `s3:ListBucket` is HeadBucket's permission, and ListObjectsV2's (`check`).
const BUCKET_READS: &[&str] = &[
    "s3:ListBucket",
    "s3:GetBucketTagging",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetBucketVersioning",
    "s3:GetBucketPublicAccessBlock",
];
const BUCKET_WRITES: &[&str] = &[
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutBucketPublicAccessBlock",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
];
/// `check` reads the delivered objects; destroy empties a `force_destroy` bucket.
const OBJECT_WRITES: &[&str] = &[
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
];
const LOG_READS: &[&str] = &["logs:ListTagsForResource", "logs:DescribeLogStreams"];
/// `logs:GetLogEvents`: `check` reads the delivery's error log.
const LOG_WRITES: &[&str] = &[
    "logs:CreateLogGroup",
    "logs:DeleteLogGroup",
    "logs:PutRetentionPolicy",
    "logs:DeleteRetentionPolicy",
    "logs:TagResource",
    "logs:UntagResource",
    "logs:CreateLogStream",
    "logs:GetLogEvents",
];

/// Encrypting a stream with a customer key: only when a stream of the spec has one.
fn stream_encryption(s: &Scope) -> Option<Value> {
    let keyed = s.model.of_kind(STREAM).any(|r| {
        r.props
            .get::<StreamProps>()
            .is_some_and(|p| p.kms_key.is_some())
    });
    if !keyed || s.purpose == Purpose::Plan {
        return None;
    }
    let e = s.env;
    let mut resources = s.arns(STREAM, Env::stream_arn);
    resources.push(format!(
        "arn:{}:kms:{}:{}:key/*",
        e.partition, e.region, e.account_id
    ));
    statement(
        "StreamEncryption",
        &[
            "kinesis:StartStreamEncryption",
            "kinesis:StopStreamEncryption",
        ],
        resources,
    )
}

/// Roles and instance profiles under the stack's path; roles passed only to their service.
fn iam(s: &Scope) -> Vec<Option<Value>> {
    let mut out = Vec::new();
    if s.roles() {
        let reads = [
            "iam:GetRole",
            "iam:ListRoleTags",
            "iam:ListRolePolicies",
            "iam:GetRolePolicy",
            "iam:ListAttachedRolePolicies",
            "iam:ListInstanceProfilesForRole",
        ];
        let writes = [
            "iam:CreateRole",
            "iam:DeleteRole",
            "iam:PutRolePolicy",
            "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy",
            "iam:TagRole",
            "iam:UntagRole",
            "iam:UpdateAssumeRolePolicy",
        ];
        out.push(statement(
            "Roles",
            &s.actions(&reads, &writes),
            vec![s.iam("role")],
        ));
    }
    if s.has(INSTANCE_PROFILE) {
        let writes = [
            "iam:CreateInstanceProfile",
            "iam:DeleteInstanceProfile",
            "iam:AddRoleToInstanceProfile",
            "iam:RemoveRoleFromInstanceProfile",
            "iam:TagInstanceProfile",
            "iam:UntagInstanceProfile",
        ];
        let actions = s.actions(&["iam:GetInstanceProfile"], &writes);
        out.push(statement(
            "InstanceProfiles",
            &actions,
            vec![s.iam("instance-profile")],
        ));
    }
    let services: Vec<&str> = [
        (HOST_ROLE, "ec2.amazonaws.com"),
        (DELIVERY_ROLE, "firehose.amazonaws.com"),
    ]
    .into_iter()
    .filter(|(kind, _)| s.has(*kind))
    .map(|(_, service)| service)
    .collect();
    if !services.is_empty() && s.purpose == Purpose::Apply {
        out.push(conditional(
            "PassRoles",
            &["iam:PassRole"],
            vec![s.iam("role")],
            json!({"StringEquals": {"iam:PassedToService": services}}),
        ));
    }
    out
}

/// External hosts' IAM users and their access keys, under the stack's path only.
fn users(s: &Scope) -> Vec<Option<Value>> {
    if !s.has(crate::kinds::HOST_USER) {
        return Vec::new();
    }
    let reads = [
        "iam:GetUser",
        "iam:ListUserTags",
        "iam:ListUserPolicies",
        "iam:GetUserPolicy",
        "iam:ListAttachedUserPolicies",
        "iam:ListAccessKeys",
        "iam:GetAccessKeyLastUsed",
    ];
    let writes = [
        "iam:CreateUser",
        "iam:DeleteUser",
        "iam:TagUser",
        "iam:UntagUser",
        "iam:PutUserPolicy",
        "iam:DeleteUserPolicy",
        "iam:DetachUserPolicy",
        "iam:DeleteLoginProfile",
        "iam:CreateAccessKey",
        "iam:DeleteAccessKey",
    ];
    vec![
        statement("DiscoverUsers", &["iam:ListUsers"], vec!["*".into()]),
        statement("Users", &s.actions(&reads, &writes), vec![s.iam("user")]),
    ]
}

/// EC2: instances, volumes and security groups are created only with the stack's tag (a Deny
/// for any other), tagged at creation only by the call that creates them, and changed only when
/// they carry the stack's tag.
fn ec2(s: &Scope) -> Vec<Option<Value>> {
    if !s.instances() {
        return Vec::new();
    }
    let reads = ["ec2:DescribeInstanceAttribute", "ec2:GetConsoleOutput"];
    if s.purpose == Purpose::Plan {
        return vec![conditional(
            "ReadInstances",
            &reads,
            vec![s.ec2("instance/*")],
            s.tagged("Resource"),
        )];
    }
    let stacks = vec![
        s.ec2("instance/*"),
        s.ec2("volume/*"),
        s.ec2("security-group/*"),
    ];
    let mut launch = stacks.clone();
    launch.extend(
        [
            "image/*",
            "subnet/*",
            "network-interface/*",
            "key-pair/*",
            "vpc/*",
        ]
        .iter()
        .map(|r| s.ec2(r)),
    );
    launch.push(format!(
        "arn:{}:ec2:{}::image/*",
        s.env.partition, s.env.region
    ));
    let create = ["ec2:RunInstances", "ec2:CreateSecurityGroup"];
    let mut out = vec![
        statement("Launch", &create, launch),
        Some(json!({
            "Sid": "OnlyTaggedCreations",
            "Effect": "Deny",
            "Action": create,
            "Resource": stacks,
            "Condition": {"StringNotEquals": {format!("aws:RequestTag/{TAG_STACK}"): s.stack}}
        })),
        conditional(
            "TagOnCreate",
            &["ec2:CreateTags"],
            stacks.clone(),
            json!({"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateSecurityGroup"]}}),
        ),
        conditional(
            "ChangeTagged",
            &s.actions(&reads, EC2_CHANGES),
            stacks,
            s.tagged("Resource"),
        ),
    ];
    let parameters = image_parameters(s);
    if !parameters.is_empty() {
        out.push(statement("ResolveImage", &["ssm:GetParameter"], parameters));
    }
    out
}

const EC2_CHANGES: &[&str] = &[
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "ec2:TerminateInstances",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyInstanceMetadataOptions",
    "ec2:AssociateIamInstanceProfile",
    "ec2:ReplaceIamInstanceProfileAssociation",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:DeleteSecurityGroup",
];

/// The SSM parameters the hosts' images are resolved through.
fn image_parameters(s: &Scope) -> Vec<String> {
    let e = s.env;
    let mut out = BTreeSet::new();
    for r in s.model.of_kind(HOST) {
        let Some(param) = r
            .props
            .get::<HostProps>()
            .and_then(|p| p.image.ssm_parameter())
        else {
            continue;
        };
        let name = param.trim_start_matches('/');
        // AWS's public parameters belong to no account (an empty account field, which `*`
        // matches too).
        let account = if name.starts_with("aws/service/") {
            "*"
        } else {
            e.account_id.as_str()
        };
        out.insert(format!(
            "arn:{}:ssm:{}:{account}:parameter/{name}",
            e.partition, e.region
        ));
    }
    out.into_iter().collect()
}

/// The stack's lock: the object `{stack}/lock` in the account's lock bucket
/// `streamstack-locks-{account}-{region}`, which the first apply creates (private, encrypted);
/// `plan` reads it to say who holds it.
pub fn lock_statements(env: &Env, stack: &str, purpose: Purpose) -> Vec<Option<Value>> {
    let bucket = env.bucket_arn(&format!(
        "streamstack-locks-{}-{}",
        env.account_id, env.region
    ));
    let apply = purpose == Purpose::Apply;
    // s3:ListBucket is HeadBucket's permission, and makes a missing object a 404, not a 403.
    let bucket_actions: &[&str] = if apply {
        &[
            "s3:ListBucket",
            "s3:CreateBucket",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutEncryptionConfiguration",
        ]
    } else {
        &["s3:ListBucket"]
    };
    let object_actions: &[&str] = if apply {
        &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    } else {
        &["s3:GetObject"]
    };
    vec![
        statement("LockBucket", bucket_actions, vec![bucket.clone()]),
        statement(
            "LockObject",
            object_actions,
            vec![format!("{bucket}/{stack}/lock")],
        ),
    ]
}

/// `--engine stacksets`: what the principal in the administrator account calls on the stack
/// set named after the stack (src/cloudformation/stacksets.rs), and passing the self-managed
/// administration role (`administration_role`, by name) to CloudFormation. Not part of
/// [`operator_policy`] (the default engine's); the fleet wiring adds it for this engine.
pub fn stacksets_statements(
    env: &Env,
    stack: &str,
    administration_role: &str,
    purpose: Purpose,
) -> Vec<Option<Value>> {
    let (p, region, account) = (&env.partition, &env.region, &env.account_id);
    let set = format!("arn:{p}:cloudformation:{region}:{account}:stackset/{stack}:*");
    let reads: &[&str] = &[
        "cloudformation:DescribeStackSet",
        "cloudformation:DescribeStackSetOperation",
        "cloudformation:ListStackInstances",
        "cloudformation:ListStackSetOperationResults",
    ];
    let mut out = vec![statement("StackSetRead", reads, vec![set.clone()])];
    if purpose == Purpose::Apply {
        out.push(statement(
            "StackSetWrite",
            &[
                "cloudformation:CreateStackSet",
                "cloudformation:UpdateStackSet",
                "cloudformation:DeleteStackSet",
                "cloudformation:CreateStackInstances",
                "cloudformation:UpdateStackInstances",
                "cloudformation:DeleteStackInstances",
                "cloudformation:TagResource",
            ],
            vec![
                set,
                format!("arn:{p}:cloudformation:*:{account}:stackset-target/*"),
                format!("arn:{p}:cloudformation:{region}::type/resource/*"),
            ],
        ));
        out.push(conditional(
            "StackSetPassAdministrationRole",
            &["iam:PassRole"],
            vec![format!("arn:{p}:iam::{account}:role/{administration_role}")],
            json!({"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}),
        ));
    }
    out
}

fn replace_in_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = include_str!("../stacks/weather-lab.yaml");
    const DIRECT: &str = include_str!("../stacks/direct.yaml");

    fn model(text: &str) -> Model {
        let opts = crate::spec::LoadOptions {
            account_id: Some("123456789012".into()),
            ..Default::default()
        };
        match crate::derive::load_str("s.yaml", text, &opts) {
            Ok(v) => v.model,
            Err(d) => panic!("{d:?}"),
        }
    }

    fn statements(p: &Value) -> Vec<&Value> {
        p["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .collect()
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .expect("array")
            .iter()
            .filter_map(Value::as_str)
            .collect()
    }

    fn actions(p: &Value) -> BTreeSet<&str> {
        statements(p)
            .into_iter()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| strings(&s["Action"]))
            .collect()
    }

    #[test]
    fn plan_only_reads_and_apply_adds_the_writes() {
        let m = model(LAB);
        let plan = operator_policy(&m, Purpose::Plan, None);
        let apply = operator_policy(&m, Purpose::Apply, None);
        let read = |a: &&str| {
            let op = a.split(':').nth(1).unwrap_or_default();
            ["Describe", "List", "Get", "ListBucket"]
                .iter()
                .any(|p| op.starts_with(p))
        };
        assert!(actions(&plan).iter().all(read), "{:?}", actions(&plan));
        assert!(actions(&plan).is_subset(&actions(&apply)));
        for a in [
            "kinesis:CreateStream",
            "firehose:CreateDeliveryStream",
            "ec2:RunInstances",
            "iam:PassRole",
            "s3:PutObject",
        ] {
            assert!(actions(&apply).contains(a), "{a}");
            assert!(!actions(&plan).contains(a), "{a}");
        }
        // No wildcard action; no account-wide grant of a writing action.
        for st in statements(&apply) {
            for a in strings(&st["Action"]) {
                assert!(!a.contains('*'), "{a}");
            }
            if strings(&st["Resource"]).contains(&"*") {
                assert_eq!(st["Sid"], "Discover", "{st}");
            }
        }
    }

    #[test]
    fn resources_are_the_stacks_names_path_and_tags() {
        let p = operator_policy(&model(LAB), Purpose::Apply, None);
        let by_sid = |sid: &str| {
            statements(&p)
                .into_iter()
                .find(|s| s["Sid"] == sid)
                .unwrap_or_else(|| panic!("{sid} in {p}"))
        };
        assert_eq!(
            strings(&by_sid("Streams")["Resource"]),
            ["arn:aws:kinesis:ap-northeast-2:*:stream/weather-lab-*"]
        );
        assert_eq!(
            strings(&by_sid("Roles")["Resource"]),
            ["arn:aws:iam::*:role/streamstack/weather-lab/*"]
        );
        // The offline account id is nowhere, not even inside a bucket's name.
        assert!(!p.to_string().contains("123456789012"), "{p}");
        let pass = by_sid("PassRoles");
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"],
            json!(["ec2.amazonaws.com", "firehose.amazonaws.com"])
        );
        // EC2: created only with the stack's tag, changed only when tagged with it.
        let deny = by_sid("OnlyTaggedCreations");
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(
            deny["Condition"]["StringNotEquals"]["aws:RequestTag/streamstack:stack"],
            "weather-lab"
        );
        assert_eq!(
            by_sid("ChangeTagged")["Condition"]["StringEquals"]
                ["aws:ResourceTag/streamstack:stack"],
            "weather-lab"
        );
        assert_eq!(
            by_sid("TagOnCreate")["Condition"]["StringEquals"]["ec2:CreateAction"],
            json!(["RunInstances", "CreateSecurityGroup"])
        );
        // A given account is kept.
        let own = operator_policy(&model(LAB), Purpose::Apply, Some("123456789012"));
        assert!(own
            .to_string()
            .contains(":123456789012:stream/weather-lab-*"));
    }

    #[test]
    fn the_lock_is_the_s3_object_of_the_stack() {
        let env = Env::new("*", "eu-west-1", "lab");
        let lock: Vec<Value> = lock_statements(&env, "lab", Purpose::Apply)
            .into_iter()
            .flatten()
            .collect();
        let object = &lock[1];
        assert_eq!(
            strings(&object["Resource"]),
            ["arn:aws:s3:::streamstack-locks-*-eu-west-1/lab/lock"]
        );
        assert_eq!(
            strings(&object["Action"]),
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        );
        assert!(strings(&lock[0]["Action"]).contains(&"s3:CreateBucket"));
        let plan: Vec<Value> = lock_statements(&env, "lab", Purpose::Plan)
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(strings(&plan[1]["Action"]), ["s3:GetObject"]);
        // The lock lives in S3 only: no SSM parameter is granted.
        assert!(!lock
            .iter()
            .any(|s| strings(&s["Action"]).iter().any(|a| a.starts_with("ssm:"))));
    }

    #[test]
    fn only_what_the_spec_uses_and_small_enough_for_a_managed_policy() {
        let p = operator_policy(&model(DIRECT), Purpose::Apply, None);
        // direct.yaml has no Kinesis stream.
        assert!(
            !actions(&p).iter().any(|a| a.starts_with("kinesis:")),
            "{p}"
        );
        for text in [LAB, DIRECT, include_str!("../stacks/classroom.yaml")] {
            let p = operator_policy(&model(text), Purpose::Apply, None);
            // A customer-managed policy holds at most 6,144 characters without whitespace.
            assert!(
                crate::iam::policy_size(&p) <= 6144,
                "{}",
                crate::iam::policy_size(&p)
            );
        }
    }
}
