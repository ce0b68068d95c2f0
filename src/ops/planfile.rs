//! Saved plans (`plan --out FILE`, `apply FILE`): the file's format, and how `apply` tells a
//! saved plan from a spec. Everything here is decided from the file alone, before any AWS call.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Session;
use crate::plan::{self, Plan};
use crate::{Error, Result};

/// A plan saved by `plan --out`: the plan plus what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub streamstack_plan: String,
    pub spec_path: PathBuf,
    pub spec_sha256: String,
    pub vars: Vec<(String, String)>,
    pub plan: Plan,
}

/// What a file given to `apply` is, judged from its content alone.
#[derive(Debug, PartialEq)]
enum Content {
    /// A JSON object with a `streamstack_plan` key.
    Plan(serde_json::Map<String, Value>),
    /// Something the spec loader should read (and report on, with positions, if it is wrong).
    Spec,
    /// Neither: why not.
    Neither(String),
}

/// Classifies `bytes`. A saved plan is a JSON object with a `streamstack_plan` key; a spec is a
/// YAML mapping with at least one of the spec's top-level keys. Text the YAML parser cannot
/// read goes to the spec loader, which reports where it is wrong (a spec's templating may be
/// what makes it unreadable before rendering).
fn classify(bytes: &[u8]) -> Content {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Content::Neither("it is not UTF-8 text".into());
    };
    if text.contains('\0') {
        return Content::Neither("it holds NUL bytes: it is binary, not text".into());
    }
    if let Ok(json) = serde_json::from_str::<Value>(text) {
        return match json {
            Value::Object(fields) if fields.contains_key("streamstack_plan") => {
                Content::Plan(fields)
            }
            Value::Object(fields)
                if fields.contains_key("format_version") && fields.contains_key("changes") =>
            {
                Content::Neither(
                    "it is a plan as `plan --json` prints it, not a saved plan; save one with \
                     `streamstack plan --out FILE SPEC`"
                        .into(),
                )
            }
            Value::Object(fields) => spec_keys(fields.keys().map(String::as_str)),
            other => Content::Neither(format!("it is a JSON {}, not an object", json_type(&other))),
        };
    }
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Mapping(m)) => spec_keys(m.keys().filter_map(|k| k.as_str())),
        Ok(serde_yaml::Value::Null) => Content::Neither("it is empty".into()),
        Ok(_) => Content::Neither("it is not a mapping of keys to values".into()),
        Err(_) => Content::Spec,
    }
}

/// A mapping is a spec when it has one of the spec's top-level keys.
fn spec_keys<'a>(mut keys: impl Iterator<Item = &'a str>) -> Content {
    if keys.any(|k| crate::spec::TOP_KEYS.contains(&k)) {
        Content::Spec
    } else {
        Content::Neither("it has none of a spec's top-level keys (version, stack, ...)".into())
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl PlanFile {
    pub fn new(session: &Session, vars: &[(String, String)], plan: &Plan) -> Self {
        PlanFile {
            streamstack_plan: plan::FORMAT_VERSION.into(),
            spec_path: session.spec_path.clone(),
            spec_sha256: session.spec_sha256.clone(),
            vars: vars.to_vec(),
            plan: plan.clone(),
        }
    }

    /// Reads the file `apply` was given: `Some` saved plan, or `None` when it is a spec. A file
    /// that cannot be read, that is neither a plan nor a spec, a plan that does not parse, and
    /// one of another format version (the file's or its plan's) are errors naming the file.
    pub fn read(path: &Path) -> Result<Option<PlanFile>> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        match classify(&bytes) {
            Content::Spec => Ok(None),
            Content::Neither(why) => Err(Error::Config(format!(
                "{} is neither a saved plan (a JSON object with a \"streamstack_plan\" key, as \
                 `plan --out` writes) nor a spec (a YAML mapping with version:, stack:, ...): {why}",
                path.display()
            ))),
            Content::Plan(fields) => Self::parse(path, fields).map(Some),
        }
    }

    /// A saved plan of this format version, with a plan of this format version.
    fn parse(path: &Path, fields: serde_json::Map<String, Value>) -> Result<PlanFile> {
        let stale = |what: &str, version: Option<&Value>| {
            let version = version.map_or("none".to_string(), Value::to_string);
            Error::StalePlan(format!(
                "{} is a saved plan of {what} format version {version}; this streamstack reads \
                 version \"{}\": run plan again",
                path.display(),
                plan::FORMAT_VERSION
            ))
        };
        let version = fields.get("streamstack_plan");
        if version.and_then(Value::as_str) != Some(plan::FORMAT_VERSION) {
            return Err(stale("file", version));
        }
        let inner = fields.get("plan").and_then(|p| p.get("format_version"));
        if inner.is_some_and(|v| v.as_str() != Some(plan::FORMAT_VERSION)) {
            return Err(stale("plan", inner));
        }
        serde_json::from_value(Value::Object(fields)).map_err(|e| {
            Error::Config(format!(
                "{} is not a valid saved plan: {e}; run plan --out again",
                path.display()
            ))
        })
    }

    /// Checks that the spec is unchanged and that a fresh plan equals the saved one.
    pub fn check(&self, session: &Session, fresh: &Plan) -> Result<()> {
        if session.spec_sha256 != self.spec_sha256 {
            return Err(Error::StalePlan(format!(
                "{} changed since the plan was saved; run plan again",
                self.spec_path.display()
            )));
        }
        if fresh != &self.plan {
            return Err(Error::StalePlan(format!(
                "the live state changed since the plan was saved: {}; run plan again",
                plan_differences(&self.plan, fresh).join("; ")
            )));
        }
        Ok(())
    }
}
/// Which resources a saved plan and a fresh one disagree on, and how.
fn plan_differences(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let show = |c: Option<&plan::Change>| match c {
        None => "no change".to_string(),
        Some(c) => {
            let attrs: Vec<&str> = c.attributes.iter().map(|a| a.name.as_str()).collect();
            let action = c.action.name().to_string();
            if attrs.is_empty() {
                action
            } else {
                format!("{action} of {}", attrs.join(", "))
            }
        }
    };
    let mut addresses: Vec<&str> = saved
        .changes
        .iter()
        .chain(&fresh.changes)
        .map(|c| c.address.as_str())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut out: Vec<String> = addresses
        .into_iter()
        .filter_map(|a| {
            let was = saved.changes.iter().find(|c| c.address == a);
            let now = fresh.changes.iter().find(|c| c.address == a);
            (was != now).then(|| format!("{a}: planned {}, now {}", show(was), show(now)))
        })
        .collect();
    if out.is_empty() {
        out.push("the plan's metadata differs".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neither(bytes: &[u8]) -> String {
        match classify(bytes) {
            Content::Neither(why) => why,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn a_file_is_a_plan_a_spec_or_neither() {
        assert!(matches!(
            classify(br#"{"streamstack_plan": "1", "x": 1}"#),
            Content::Plan(_)
        ));
        // Specs, in YAML or JSON, and text only the spec loader can explain.
        for spec in [
            "version: 1\nstack: lab\n",
            r#"{"version": 1, "stack": "lab"}"#,
            "stack: lab\nstreams: {a: {}\n",
            "version: 1\nstak: lab\n",
        ] {
            assert_eq!(classify(spec.as_bytes()), Content::Spec, "{spec}");
        }
        assert!(neither(&[0xff, 0xfe, 0x00, 0x81]).contains("not UTF-8"));
        assert!(neither(b"ab\0cd").contains("binary"));
        assert!(neither(b"").contains("empty"));
        assert!(neither(b"[1, 2]").contains("JSON array"));
        assert!(neither(b"\"x\"").contains("JSON string"));
        assert!(neither(br#"{"foo": 1}"#).contains("top-level keys"));
        assert!(neither(b"just some words").contains("not a mapping"));
        assert!(neither(b"foo: 1\nbar: 2\n").contains("top-level keys"));
        assert!(
            neither(br#"{"format_version": "1", "changes": [], "stack": "x"}"#)
                .contains("plan --out")
        );
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn saved_plans_of_another_format_version_or_shape_are_refused_naming_the_file() {
        let plan = r#"{"format_version": "1", "stack": "lab", "region": "eu-west-1",
            "account_id": "123456789012", "changes": [],
            "summary": {"add": 0, "change": 0, "destroy": 0}}"#;
        let file = |version: &str, plan: &str| {
            format!(
                r#"{{"streamstack_plan": {version}, "spec_path": "s.yaml", "spec_sha256": "ab",
                "vars": [], "plan": {plan}}}"#
            )
        };
        let ok = write(&file("\"1\"", plan));
        let read = PlanFile::read(ok.path()).expect("a plan");
        assert_eq!(read.map(|p| p.plan.stack), Some("lab".to_string()));
        for (text, says) in [
            (file("\"2\"", plan), "file format version \"2\""),
            (file("1", plan), "file format version 1"),
            (
                file(
                    "\"1\"",
                    &plan.replace(r#""format_version": "1""#, r#""format_version": "9""#),
                ),
                "plan format version \"9\"",
            ),
            (file("\"1\"", "{}"), "not a valid saved plan"),
            (
                r#"{"streamstack_plan": "1"}"#.to_string(),
                "not a valid saved plan",
            ),
            ("[]".to_string(), "neither a saved plan"),
        ] {
            let f = write(&text);
            let e = PlanFile::read(f.path()).expect_err(&text).to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.contains(&f.path().display().to_string()), "{e}");
        }
        let spec = write("version: 1\nstack: lab\n");
        assert!(PlanFile::read(spec.path()).expect("a spec").is_none());
    }
}
