//! CloudFormation template primitives: what a kind needs to describe its resource as a
//! CloudFormation resource (`ResourceKind::cloudformation`): the resource's shape, logical ids,
//! tags as CloudFormation lists them, and `Fn::Sub` over the pseudo parameters. A leaf below
//! the kinds; the `cloudformation` module assembles the template and runs the engine above them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::model::{Address, Model};

/// One resource of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct CfnResource {
    pub type_: &'static str,
    pub properties: Value,
    /// Template parameters this resource needs (name → definition), e.g. an AMI from SSM.
    pub parameters: BTreeMap<String, Value>,
    /// Outputs (name → (value, description)), as `streamstack output` shows them.
    pub outputs: BTreeMap<String, (Value, String)>,
    /// checkov checks that do not fit a lab, each with the reason (Metadata).
    pub checkov_skips: Vec<(&'static str, &'static str)>,
    /// More resources that belong to this one (logical-id suffix → full resource).
    pub extra: BTreeMap<String, Value>,
}

impl CfnResource {
    pub fn new(type_: &'static str, properties: Value) -> Self {
        CfnResource {
            type_,
            properties,
            parameters: BTreeMap::new(),
            outputs: BTreeMap::new(),
            checkov_skips: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
    pub fn output(mut self, name: &str, value: Value, description: &str) -> Self {
        self.outputs
            .insert(name.to_string(), (value, description.to_string()));
        self
    }
}

/// What a kind needs to describe its resource: logical ids of the others.
pub struct Cfn<'m> {
    model: &'m Model,
}

impl<'m> Cfn<'m> {
    pub fn new(model: &'m Model) -> Self {
        Cfn { model }
    }
    /// The logical id of the resource at `address` (`stream.weather` → `StreamWeather`).
    pub fn logical_id(&self, address: &Address) -> String {
        logical_id(address)
    }
    /// `{"Ref": id}` of a resource this one depends on, of the given kind.
    pub fn dependency(
        &self,
        r: &crate::model::Resource,
        kind: crate::model::Kind,
    ) -> Option<Address> {
        r.depends_on.iter().find(|a| a.kind == kind).cloned()
    }
    pub fn model(&self) -> &Model {
        self.model
    }
    /// A string with the account, region and partition as pseudo parameters (`Fn::Sub`).
    pub fn sub(&self, s: &str) -> Value {
        substitute(
            Value::String(s.to_string()),
            &self.model.env.account_id,
            &self.model.env.region,
        )
    }
}

pub fn logical_id(address: &Address) -> String {
    format!("{}.{}", address.kind, address.key)
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Tags as CloudFormation lists them.
pub fn tags(t: &BTreeMap<String, String>) -> Value {
    Value::Array(
        t.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// The template parameter that carries `streamstack:created-at`, and its stand-in in the model.
pub const CREATED_AT_PARAMETER: &str = "StreamstackCreatedAt";
/// The template parameter that carries `streamstack:expires-at`, and its stand-in in the model.
pub const EXPIRES_AT_PARAMETER: &str = "StreamstackExpiresAt";
pub const CREATED_AT_STAND_IN: &str = "\u{1}streamstack-created-at";
pub const EXPIRES_AT_STAND_IN: &str = "\u{1}streamstack-expires-at";

/// Strings with the account, region or partition become `Fn::Sub` over the pseudo parameters
/// (and a `${` a script holds is escaped as `${!`).
pub fn substitute(v: Value, account: &str, region: &str) -> Value {
    match v {
        Value::String(s) if s == CREATED_AT_STAND_IN => json!({"Ref": CREATED_AT_PARAMETER}),
        Value::String(s) if s == EXPIRES_AT_STAND_IN => json!({"Ref": EXPIRES_AT_PARAMETER}),
        Value::String(s) => {
            let needs = s.contains(account) || s.contains(region) || s.contains("arn:aws:");
            if !needs {
                return Value::String(s);
            }
            let t = s
                .replace("${", "${!")
                .replace(account, "${AWS::AccountId}")
                .replace(region, "${AWS::Region}")
                .replace("arn:aws:", "arn:${AWS::Partition}:");
            json!({"Fn::Sub": t})
        }
        Value::Array(a) => Value::Array(
            a.into_iter()
                .map(|x| substitute(x, account, region))
                .collect(),
        ),
        Value::Object(o) => {
            // Intrinsic functions are left as the kind wrote them.
            if o.keys().any(|k| k == "Ref" || k.starts_with("Fn::")) {
                return Value::Object(o);
            }
            Value::Object(
                o.into_iter()
                    .map(|(k, x)| (k, substitute(x, account, region)))
                    .collect(),
            )
        }
        other => other,
    }
}
