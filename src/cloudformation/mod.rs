//! `render --what cloudformation`: the desired model as one CloudFormation template, with the
//! same physical names, tags, policies and user-data as `apply` uses. Each kind describes its
//! own resource (`ResourceKind::cloudformation`); this module names no kind: it assigns logical
//! ids, turns the account, region and partition into pseudo parameters, mirrors the dependency
//! graph with `DependsOn` (where no `Ref`/`GetAtt` already implies it), and adds the Metadata.

pub mod engine;
pub mod stacksets;
pub mod staging;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::cfn::{
    logical_id, substitute, Cfn, CfnResource, CREATED_AT_PARAMETER, CREATED_AT_STAND_IN,
    EXPIRES_AT_PARAMETER, EXPIRES_AT_STAND_IN,
};
use crate::kinds;
use crate::model::{Address, Model, Stamps, TAG_CREATED_AT, TAG_EXPIRES_AT};

const RFC3339_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$";
use crate::derive::Validated;
use crate::{Error, Result};

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

/// `render --what cloudformation`: the spec's model as one CloudFormation template (YAML), its
/// expiry stamps defaulting to now.
pub fn render(spec_path: &Path, validated: &Validated) -> Result<String> {
    let text = std::fs::read(spec_path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", spec_path.display())))?;
    let stamps = crate::ops::stamps_from(
        validated,
        crate::time::rfc3339(std::time::SystemTime::now()),
    );
    let t = template(&validated.model, &crate::ops::sha256_hex(&text), &stamps)?;
    Ok(yaml::to_string(&t))
}

/// The template of `model`, as a JSON value (printed as YAML by the command).
pub fn template(model: &Model, spec_sha256: &str, stamps: &Stamps) -> Result<Value> {
    let model = &stamped(model, stamps);
    let cfn = Cfn::new(model);
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
            let extras = res.extra.keys().map(|suffix| format!("{id}{suffix}"));
            Some((r.address.clone(), extras.collect()))
        })
        .collect();
    let mut t = Sections {
        resources: Map::new(),
        parameters: stamp_parameters(stamps),
        outputs: Map::new(),
    };
    for address in order {
        let Some(r) = model.get(&address) else {
            continue;
        };
        if let Some(res) = kinds::handler(r.address.kind)?.cloudformation(r, &cfn) {
            t.add(model, r, res, &in_template);
        }
    }
    let mut out = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("streamstack stack {}: a Kinesis log pipeline (rendered by streamstack {})", model.stack, env!("CARGO_PKG_VERSION")),
        "Metadata": {
            "streamstack": {
                "stack": model.stack,
                "version": env!("CARGO_PKG_VERSION"),
                "spec_sha256": spec_sha256,
            }
        },
        "Resources": t.resources,
    });
    out["Parameters"] = Value::Object(t.parameters);
    if !t.outputs.is_empty() {
        out["Outputs"] = Value::Object(t.outputs);
    }
    Ok(out)
}

/// The model with the expiry tags standing in for the template parameters that carry them.
fn stamped(model: &Model, stamps: &Stamps) -> Model {
    let mut stamped = model.clone();
    for r in stamped.resources.values_mut() {
        r.tags
            .insert(TAG_CREATED_AT.into(), CREATED_AT_STAND_IN.into());
        if stamps.expires_at.is_some() {
            r.tags
                .insert(TAG_EXPIRES_AT.into(), EXPIRES_AT_STAND_IN.into());
        }
    }
    stamped
}

/// The template parameters of the expiry stamps, defaulting to `stamps`.
fn stamp_parameters(stamps: &Stamps) -> Map<String, Value> {
    let mut parameters = Map::new();
    let created = "streamstack:created-at of every resource: when the stack was first created (UTC, RFC 3339)";
    let expires = "streamstack:expires-at of every resource: after this, `streamstack gc` destroys the stack (UTC, RFC 3339)";
    let stamp = |default: &str, description: &str| {
        json!({
            "Type": "String",
            "Default": default,
            "AllowedPattern": RFC3339_PATTERN,
            "Description": description,
        })
    };
    parameters.insert(
        CREATED_AT_PARAMETER.into(),
        stamp(&stamps.created_at, created),
    );
    if let Some(e) = &stamps.expires_at {
        parameters.insert(EXPIRES_AT_PARAMETER.into(), stamp(e, expires));
    }
    parameters
}

/// The template's sections, filled resource by resource.
struct Sections {
    resources: Map<String, Value>,
    parameters: Map<String, Value>,
    outputs: Map<String, Value>,
}

impl Sections {
    /// Adds `r` as the kind described it: its body (with `DependsOn` for what no `Ref` already
    /// implies, and its checkov skips as Metadata), its extra resources, parameters and outputs.
    fn add(
        &mut self,
        model: &Model,
        r: &crate::model::Resource,
        res: CfnResource,
        in_template: &BTreeMap<Address, Vec<String>>,
    ) {
        let (account, region) = (model.env.account_id.as_str(), model.env.region.as_str());
        let id = logical_id(&r.address);
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
            let skips: Vec<Value> = res
                .checkov_skips
                .iter()
                .map(|(id, why)| json!({"id": id, "comment": why}))
                .collect();
            body["Metadata"] = json!({"checkov": {"skip": skips}});
        }
        self.resources.insert(id.clone(), body);
        for (suffix, extra) in res.extra {
            let extra = substitute(extra, account, region);
            self.resources.insert(format!("{id}{suffix}"), extra);
        }
        self.parameters.extend(res.parameters);
        for (name, (value, description)) in res.outputs {
            let value = substitute(value, account, region);
            let output = json!({"Description": description, "Value": value});
            self.outputs.insert(format!("{id}{name}"), output);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::load_str;
    use crate::spec::LoadOptions;

    fn template_of(spec: &str) -> Value {
        let opts = LoadOptions {
            region: Some("eu-west-1".into()),
            account_id: Some("123456789012".into()),
            fleet_region: None,
            vars: vec![],
            ambient_region: None,
        };
        let v = load_str("t.yaml", spec, &opts).expect("a valid spec");
        let stamps = crate::ops::stamps_from(&v, "2026-01-01T00:00:00Z".into());
        template(&v.model, "ab", &stamps).expect("a template")
    }

    #[test]
    fn only_a_versioned_bucket_has_a_versioning_configuration() {
        let t = template_of(
            "version: 1\nstack: lab\nbuckets:\n  plain: {}\n  kept: { versioning: true }\n",
        );
        let props = |id: &str| t["Resources"][id]["Properties"].clone();
        assert!(props("BucketPlain").is_object(), "{t:#}");
        assert_eq!(props("BucketPlain").get("VersioningConfiguration"), None);
        assert_eq!(
            props("BucketKept")["VersioningConfiguration"],
            json!({"Status": "Enabled"})
        );
    }
}
