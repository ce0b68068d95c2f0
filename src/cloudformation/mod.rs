//! `render --what cloudformation`: the desired model as one CloudFormation template, with the
//! same physical names, tags, policies and user-data as `apply` uses. Each kind describes its
//! own resource (`ResourceKind::cloudformation`); this module names no kind: it assigns logical
//! ids, turns the account, region and partition into pseudo parameters, mirrors the dependency
//! graph with `DependsOn` (where no `Ref`/`GetAtt` already implies it), and adds the Metadata.

pub mod engine;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::kinds;
use crate::model::{Address, Model, TAG_CREATED_AT, TAG_EXPIRES_AT};

const RFC3339_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$";
use crate::{Error, Result};

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

impl Cfn<'_> {
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
const CREATED_AT_STAND_IN: &str = "\u{1}streamstack-created-at";
const EXPIRES_AT_STAND_IN: &str = "\u{1}streamstack-expires-at";

/// The expiry stamps of a template: `streamstack:created-at` and, with `expires_after`,
/// `streamstack:expires-at`. They are template parameters whose defaults are these values, so
/// `aws cloudformation deploy` of a newer render keeps the first deploy's (it reuses a
/// parameter's previous value) and `--engine cloudformation` passes the live ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// Strings with the account, region or partition become `Fn::Sub` over the pseudo parameters
/// (and a `${` a script holds is escaped as `${!`).
fn substitute(v: Value, account: &str, region: &str) -> Value {
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

/// Logical ids a value refers to through `Ref` or `Fn::GetAtt`.
fn referenced(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(id)) = o.get("Ref") {
                out.insert(id.clone());
            }
            if let Some(Value::Array(a)) = o.get("Fn::GetAtt") {
                if let Some(Value::String(id)) = a.first() {
                    out.insert(id.clone());
                }
            }
            o.values().for_each(|x| referenced(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| referenced(x, out)),
        _ => {}
    }
}

/// The template of `model`, as a JSON value (printed as YAML by the command).
pub fn template(model: &Model, spec_sha256: &str, stamps: &Stamps) -> Result<Value> {
    let mut stamped = model.clone();
    for r in stamped.resources.values_mut() {
        r.tags
            .insert(TAG_CREATED_AT.into(), CREATED_AT_STAND_IN.into());
        if stamps.expires_at.is_some() {
            r.tags
                .insert(TAG_EXPIRES_AT.into(), EXPIRES_AT_STAND_IN.into());
        }
    }
    let model = &stamped;
    let cfn = Cfn { model };
    let (account, region) = (model.env.account_id.as_str(), model.env.region.as_str());
    let mut resources = Map::new();
    let mut parameters = Map::new();
    parameters.insert(
        CREATED_AT_PARAMETER.into(),
        json!({
            "Type": "String",
            "Default": stamps.created_at,
            "AllowedPattern": RFC3339_PATTERN,
            "Description": "streamstack:created-at of every resource: when the stack was first created (UTC, RFC 3339)",
        }),
    );
    if let Some(e) = &stamps.expires_at {
        parameters.insert(
            EXPIRES_AT_PARAMETER.into(),
            json!({
                "Type": "String",
                "Default": e,
                "AllowedPattern": RFC3339_PATTERN,
                "Description": "streamstack:expires-at of every resource: after this, `streamstack gc` destroys the stack (UTC, RFC 3339)",
            }),
        );
    }
    let mut outputs = Map::new();
    let mut skips: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let order = model
        .graph()
        .map_err(|e| Error::Internal(e.to_string()))?
        .creation_order()
        .to_vec();
    // Every resource in the template, with the logical ids of the extra resources that
    // complete it (a role's policies): what depends on it waits for those too.
    let in_template: BTreeMap<Address, Vec<String>> = model
        .resources
        .values()
        .filter_map(|r| {
            let res = kinds::handler(r.address.kind)
                .ok()?
                .cloudformation(r, &cfn)?;
            let id = logical_id(&r.address);
            let extras = res
                .extra
                .keys()
                .map(|suffix| format!("{id}{suffix}"))
                .collect();
            Some((r.address.clone(), extras))
        })
        .collect();
    for address in order {
        let Some(r) = model.get(&address) else {
            continue;
        };
        let Some(res) = kinds::handler(r.address.kind)?.cloudformation(r, &cfn) else {
            continue;
        };
        let id = logical_id(&address);
        let properties = substitute(res.properties, account, region);
        let mut refs = BTreeSet::new();
        referenced(&properties, &mut refs);
        let depends: Vec<String> = r
            .depends_on
            .iter()
            .filter_map(|d| in_template.get(d).map(|extras| (d, extras)))
            .flat_map(|(d, extras)| std::iter::once(logical_id(d)).chain(extras.iter().cloned()))
            .filter(|d| !refs.contains(d))
            .collect();
        let mut body = json!({"Type": res.type_, "Properties": properties});
        if !depends.is_empty() {
            body["DependsOn"] = json!(depends);
        }
        if !res.checkov_skips.is_empty() {
            body["Metadata"] = json!({"checkov": {"skip": res.checkov_skips.iter().map(|(id, why)| json!({"id": id, "comment": why})).collect::<Vec<_>>()}});
            skips.entry(id.clone()).or_default();
        }
        resources.insert(id.clone(), body);
        for (suffix, extra) in res.extra {
            let extra = substitute(extra, account, region);
            resources.insert(format!("{id}{suffix}"), extra);
        }
        for (name, def) in res.parameters {
            parameters.insert(name, def);
        }
        for (name, (value, description)) in res.outputs {
            outputs.insert(
                format!("{id}{name}"),
                json!({"Description": description, "Value": substitute(value, account, region)}),
            );
        }
    }
    let mut t = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("streamstack stack {}: a Kinesis log pipeline (rendered by streamstack {})", model.stack, env!("CARGO_PKG_VERSION")),
        "Metadata": {
            "streamstack": {
                "stack": model.stack,
                "version": env!("CARGO_PKG_VERSION"),
                "spec_sha256": spec_sha256,
            }
        },
        "Resources": resources,
    });
    t["Parameters"] = Value::Object(parameters);
    if !outputs.is_empty() {
        t["Outputs"] = Value::Object(outputs);
    }
    Ok(t)
}
