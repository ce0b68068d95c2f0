//! Walks the YAML value tree into typed spec data, collecting every problem instead of stopping
//! at the first (serde's derive stops at the first error, so we decode by hand). Each field
//! accessor knows its path, so diagnostics point at the right line and column.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::positions::{Path, Positions};
use super::rules::{self, Violation};
use super::template::{is_template, Templater};
use crate::diagnostics::{Diagnostic, Diagnostics, Pos, Severity};

pub(crate) struct Decoder<'a> {
    pub file: &'a str,
    /// The spec's text, to point inside a value.
    pub source: &'a str,
    pub positions: &'a Positions,
    pub diags: Diagnostics,
    pub templater: Option<Templater>,
}

/// The closest candidate to `word`, if one is close enough to suggest.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let cl = c.to_lowercase();
            let d = if cl == lower {
                0
            } else if lower.len() >= 3 && cl.starts_with(&lower) {
                1
            } else {
                strsim::levenshtein(&lower, &cl)
            };
            (d <= limit).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean `X`?` when a candidate is close to `word`, else nothing: the end of a message.
pub fn suggestion(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates.iter().copied()) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

/// Human name of a YAML value's type, for "expected X, found Y".
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// `{{ vars.x }}` written without quotes: YAML reads a flow mapping whose only key is the flow
/// mapping `{vars.x: null}`, with no value. Gives back the template text as written.
fn unquoted_template(v: &Value) -> Option<String> {
    let Value::Mapping(outer) = v else {
        return None;
    };
    let (Some((Value::Mapping(inner), Value::Null)), 1) = (outer.iter().next(), outer.len()) else {
        return None;
    };
    let (Some((Value::String(expr), Value::Null)), 1) = (inner.iter().next(), inner.len()) else {
        return None;
    };
    Some(format!("{{{{ {} }}}}", expr.trim()))
}

impl<'a> Decoder<'a> {
    pub fn error_at(&mut self, pos: Pos, path: &Path, message: String, expected: Option<String>) {
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            file: self.file.to_string(),
            pos,
            path: path.to_string(),
            message,
            expected,
            help: None,
            notes: self.positions.merge_notes(path),
        });
    }

    /// Where `needle` is written inside the value at `path`, when the value's line holds it at
    /// or after the value's start; else the value's position.
    pub fn position_of(&self, path: &Path, needle: &str) -> Pos {
        let at = self.positions.value(path);
        let Some(line) = self.source.lines().nth(at.line.saturating_sub(1)) else {
            return at;
        };
        let Some(start) = line
            .char_indices()
            .nth(at.col.saturating_sub(1))
            .map(|(i, _)| i)
        else {
            return at;
        };
        match line[start..].find(needle) {
            Some(i) => Pos {
                line: at.line,
                col: at.col + line[start..start + i].chars().count(),
            },
            None => at,
        }
    }

    /// Attaches a help line to the diagnostic reported last.
    pub fn help(&mut self, help: impl Into<String>) {
        if let Some(last) = self.diags.0.last_mut() {
            last.help = Some(help.into());
        }
    }

    pub fn warn(&mut self, path: &Path, message: String) {
        self.diags.push(Diagnostic {
            severity: Severity::Warning,
            file: self.file.to_string(),
            pos: self.positions.value(path),
            path: path.to_string(),
            message,
            expected: None,
            help: None,
            notes: self.positions.merge_notes(path),
        });
    }

    /// An error about a value, located at the value.
    pub fn error(&mut self, path: &Path, message: impl Into<String>, expected: Option<&str>) {
        let pos = self.positions.value(path);
        self.error_at(pos, path, message.into(), expected.map(str::to_string));
    }

    /// An error about a key (unknown key, bad key name), located at the key.
    pub fn error_key(&mut self, path: &Path, message: impl Into<String>, expected: Option<String>) {
        let pos = self.positions.key(path);
        self.error_at(pos, path, message.into(), expected);
    }

    pub fn violation(&mut self, path: &Path, v: Violation) {
        let pos = self.positions.value(path);
        self.error_at(pos, path, v.message, v.expected);
    }

    pub fn check(&mut self, path: &Path, r: rules::Check) -> bool {
        match r {
            Ok(()) => true,
            Err(v) => {
                self.violation(path, v);
                false
            }
        }
    }

    fn type_error(&mut self, path: &Path, v: &Value, expected: &str) {
        self.error(
            path,
            format!("expected {expected}, found {}", type_name(v)),
            None,
        );
        if let Some(template) = unquoted_template(v) {
            self.help(format!(
                "a template must be quoted, or YAML reads its braces as a mapping: quote the value: \"{template}\""
            ));
        }
    }

    /// The value as a mapping, or an error.
    pub fn mapping<'v>(&mut self, v: &'v Value, path: &Path) -> Option<&'v Mapping> {
        match v {
            Value::Mapping(m) => Some(m),
            other => {
                self.type_error(path, other, "a mapping");
                None
            }
        }
    }

    /// A mapping's key as a string, or an error at the mapping.
    fn string_key<'k>(&mut self, k: &'k Value, path: &Path) -> Option<&'k String> {
        if let Value::String(s) = k {
            return Some(s);
        }
        let found = type_name(k);
        self.error(path, format!("keys must be strings, found {found}"), None);
        None
    }

    /// Reports keys that are not in `allowed` (with a suggestion) and keys that are not strings.
    pub fn known_keys(&mut self, m: &Mapping, path: &Path, allowed: &[&str]) {
        for k in m.keys() {
            let Some(s) = self.string_key(k, path) else {
                continue;
            };
            if allowed.contains(&s.as_str()) {
                continue;
            }
            let (message, expected) = match did_you_mean(s, allowed.iter().copied()) {
                Some(c) => (format!("unknown key `{s}`; did you mean `{c}`?"), None),
                None => (
                    format!("unknown key `{s}`"),
                    Some(format!("one of: {}", allowed.join(", "))),
                ),
            };
            self.error_key(&path.key(s), message, expected);
        }
    }

    /// An optional field: absent and `null` are both "not given".
    pub fn field<'v>(m: &'v Mapping, k: &str) -> Option<&'v Value> {
        match m.get(k) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A required field, or an error at the mapping that lacks it.
    pub fn required<'v>(
        &mut self,
        m: &'v Mapping,
        path: &Path,
        k: &str,
        expected: &str,
    ) -> Option<&'v Value> {
        let v = Self::field(m, k);
        if v.is_none() {
            let p = path.key(k);
            // Written without a value: at the key; not written: at the mapping.
            let (pos, msg) = if m.contains_key(k) {
                (self.positions.key(&p), format!("`{k}` has no value"))
            } else {
                (
                    self.positions.key(path),
                    format!("missing required field `{k}`"),
                )
            };
            self.error_at(pos, &p, msg, Some(expected.to_string()));
        }
        v
    }

    /// A string value, rendered through the templater.
    pub fn string(&mut self, v: &Value, path: &Path) -> Option<String> {
        let raw = self.raw_string(v, path)?;
        match &self.templater {
            Some(t) => match t.render(&raw) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.error(path, e, None);
                    None
                }
            },
            None => Some(raw),
        }
    }

    /// A string value that must not be templated (`stack`, `region`, vars' names).
    pub fn literal_string(&mut self, v: &Value, path: &Path) -> Option<String> {
        let s = self.raw_string(v, path)?;
        if is_template(&s) {
            self.error(
                path,
                "templates are not allowed in this field",
                Some("a plain string"),
            );
            return None;
        }
        Some(s)
    }

    /// A string scalar without templating; numbers and booleans are refused so that `version: 1.0`
    /// style surprises are caught.
    pub fn raw_string(&mut self, v: &Value, path: &Path) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.type_error(path, other, "a string");
                None
            }
        }
    }

    /// A whole number in `min..=max`; a templated string that renders to one is accepted.
    pub fn int(&mut self, v: &Value, path: &Path, min: u64, max: u64) -> Option<u64> {
        let expected = format!("an integer from {min} to {max}");
        let n = match v {
            Value::Number(n) => match n.as_u64() {
                Some(n) => n,
                None => {
                    self.error(
                        path,
                        format!("{n} is not a whole non-negative number"),
                        Some(&expected),
                    );
                    return None;
                }
            },
            Value::String(s) if is_template(s) => {
                let rendered = self.string(v, path)?;
                match rendered.trim().parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => {
                        self.error(
                            path,
                            format!("template rendered to {rendered:?}, not an integer"),
                            Some(&expected),
                        );
                        return None;
                    }
                }
            }
            other => {
                self.type_error(path, other, &expected);
                return None;
            }
        };
        if n < min || n > max {
            self.error(path, format!("{n} is out of range"), Some(&expected));
            return None;
        }
        Some(n)
    }

    /// A boolean; a templated string that renders to true/false is accepted.
    pub fn boolean(&mut self, v: &Value, path: &Path) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if is_template(s) => {
                let rendered = self.string(v, path)?;
                match rendered.trim() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => {
                        self.error(
                            path,
                            format!("template rendered to {rendered:?}"),
                            Some("true or false"),
                        );
                        None
                    }
                }
            }
            other => {
                self.type_error(path, other, "true or false");
                None
            }
        }
    }

    /// A string that must be one of `allowed` (exact case), with a suggestion otherwise.
    pub fn one_of(&mut self, v: &Value, path: &Path, allowed: &[&str]) -> Option<String> {
        let s = self.string(v, path)?;
        if allowed.contains(&s.as_str()) {
            return Some(s);
        }
        let hint = suggestion(&s, allowed);
        let pos = self.positions.value(path);
        self.error_at(
            pos,
            path,
            format!("unknown value {s:?}{hint}"),
            Some(format!("one of: {}", allowed.join(", "))),
        );
        None
    }

    /// A mapping of string → string (tags, vars), values templated when `templated`.
    pub fn string_map(
        &mut self,
        v: &Value,
        path: &Path,
        templated: bool,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(m) = self.mapping(v, path) else {
            return out;
        };
        for (k, val) in m {
            let Some(k) = self.string_key(k, path) else {
                continue;
            };
            let p = path.key(k);
            // Scalars other than strings are accepted and written as YAML would print them.
            let s = match val {
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ if templated => self.string(val, &p),
                _ => self.raw_string(val, &p),
            };
            if let Some(s) = s {
                out.insert(k.clone(), s);
            }
        }
        out
    }

    /// Iterates a keyed section (`buckets:` etc.), checking each key's syntax.
    pub fn keyed<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &Path,
    ) -> Vec<(String, &'v Value, Path)> {
        let Some(v) = v else { return Vec::new() };
        let Some(m) = self.mapping(v, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, val) in m {
            let Some(k) = self.string_key(k, path) else {
                continue;
            };
            let p = path.key(k);
            if let Err(v) = rules::resource_key(k) {
                self.error_key(&p, v.message, v.expected);
                continue;
            }
            out.push((k.clone(), val, p));
        }
        out
    }
}
