//! The fleet file (`fleet.yaml`): which accounts (or organizational units) and regions one spec
//! is applied to, and each target's template variables. Read with positions and checked offline
//! like a spec: every error names FILE:LINE:COL and the field path.

use std::path::Path as FsPath;

use serde_yaml::{Mapping, Value};

use crate::diagnostics::{Diagnostic, Diagnostics, Pos, Severity};
use crate::spec::positions::{Path, Positions};
use crate::spec::rules;

/// The role assumed in every target account unless the file names another.
pub const DEFAULT_ROLE: &str = "OrganizationAccountAccessRole";

/// The keys of the file's top level.
pub const TOP_KEYS: &[&str] = &[
    "version",
    "assume_role",
    "external_id",
    "regions",
    "targets",
];
/// The keys of one target.
pub const TARGET_KEYS: &[&str] = &[
    "account",
    "organizational_unit",
    "name",
    "vars",
    "regions",
    "assume_role",
    "external_id",
];

/// A fleet file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetFile {
    pub assume_role: String,
    pub external_id: Option<String>,
    pub regions: Vec<String>,
    pub targets: Vec<TargetSpec>,
}

/// Who one entry of `targets:` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    Account(String),
    OrganizationalUnit(String),
}

/// One entry of `targets:` as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    pub who: Who,
    pub name: Option<String>,
    pub vars: Vec<(String, String)>,
    /// Replaces the file's default regions when given.
    pub regions: Option<Vec<String>>,
    pub assume_role: Option<String>,
    pub external_id: Option<String>,
}

/// Reads and checks a fleet file.
pub fn load_file(path: &FsPath) -> Result<FleetFile, Diagnostics> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![diag(
            &file,
            Pos { line: 1, col: 1 },
            "",
            format!("cannot read the fleet file: {e}"),
            None,
        )])
    })?;
    load_str(&file, &text)
}

/// Reads and checks fleet text; `file` is the name diagnostics use.
pub fn load_str(file: &str, text: &str) -> Result<FleetFile, Diagnostics> {
    let mut c = Checker {
        file,
        positions: Positions::parse(text),
        diags: Vec::new(),
    };
    let value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    col: l.column(),
                })
                .unwrap_or(Pos { line: 1, col: 1 });
            return Err(Diagnostics(vec![diag(
                file,
                pos,
                "",
                format!("not valid YAML: {e}"),
                None,
            )]));
        }
    };
    let fleet = c.top(&value);
    match fleet {
        Some(f) if c.diags.is_empty() => Ok(f),
        _ => Err(Diagnostics(c.diags)),
    }
}

fn diag(file: &str, pos: Pos, path: &str, message: String, expected: Option<String>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_string(),
        pos,
        path: path.to_string(),
        message,
        expected,
        help: None,
        notes: Vec::new(),
    }
}

struct Checker<'a> {
    file: &'a str,
    positions: Positions,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, path: &Path, message: impl Into<String>, expected: Option<&str>) {
        let pos = self.positions.value(path);
        let d = diag(
            self.file,
            pos,
            &path.to_string(),
            message.into(),
            expected.map(String::from),
        );
        self.diags.push(d);
    }

    fn check(&mut self, path: &Path, r: rules::Check) -> bool {
        match r {
            Ok(()) => true,
            Err(v) => {
                let pos = self.positions.value(path);
                self.diags.push(diag(
                    self.file,
                    pos,
                    &path.to_string(),
                    v.message,
                    v.expected,
                ));
                false
            }
        }
    }

    fn mapping<'v>(&mut self, v: &'v Value, path: &Path) -> Option<&'v Mapping> {
        match v {
            Value::Mapping(m) => Some(m),
            _ => {
                self.error(path, "not a mapping", Some("a mapping"));
                None
            }
        }
    }

    fn known_keys(&mut self, m: &Mapping, path: &Path, allowed: &[&str]) {
        for k in m.keys() {
            let Some(k) = k.as_str() else {
                self.error(path, "a key that is not a string", Some("string keys"));
                continue;
            };
            if !allowed.contains(&k) {
                let p = path.key(k);
                let pos = self.positions.key(&p);
                let expected = format!("one of {}", allowed.join(", "));
                self.diags.push(diag(
                    self.file,
                    pos,
                    &p.to_string(),
                    format!("unknown key {k:?}"),
                    Some(expected),
                ));
            }
        }
    }

    /// A string scalar; `quoted_digits` refuses a number written without quotes.
    fn string(&mut self, v: &Value, path: &Path) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) => {
                self.error(path, "a number, not a string", Some("a quoted string"));
                None
            }
            _ => {
                self.error(path, "not a string", Some("a string"));
                None
            }
        }
    }

    fn top(&mut self, v: &Value) -> Option<FleetFile> {
        let root = Path::root();
        let m = self.mapping(v, &root)?;
        self.known_keys(m, &root, TOP_KEYS);
        match m.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            Some(_) => self.error(&root.key("version"), "unsupported version", Some("1")),
            None => self.error(&root, "missing key \"version\"", Some("version: 1")),
        }
        let assume_role = match m.get("assume_role") {
            Some(v) => self.role(v, &root.key("assume_role")),
            None => Some(DEFAULT_ROLE.to_string()),
        };
        let external_id = m
            .get("external_id")
            .and_then(|v| self.external_id(v, &root.key("external_id")));
        let regions = match m.get("regions") {
            Some(v) => self.regions(v, &root.key("regions")).unwrap_or_default(),
            None => Vec::new(),
        };
        let targets = self.targets(m.get("targets"), &root, regions.is_empty());
        Some(FleetFile {
            assume_role: assume_role.unwrap_or_default(),
            external_id,
            regions,
            targets,
        })
    }

    fn role(&mut self, v: &Value, p: &Path) -> Option<String> {
        let s = self.string(v, p)?;
        self.check(p, rules::role_name(&s)).then_some(s)
    }

    fn external_id(&mut self, v: &Value, p: &Path) -> Option<String> {
        let s = self.string(v, p)?;
        self.check(p, external_id_rule(&s)).then_some(s)
    }

    fn regions(&mut self, v: &Value, p: &Path) -> Option<Vec<String>> {
        let Value::Sequence(items) = v else {
            self.error(p, "not a list", Some("a list of region codes"));
            return None;
        };
        if items.is_empty() {
            self.error(p, "an empty list", Some("at least one region"));
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ip = p.index(i);
            let Some(r) = self.string(item, &ip) else {
                continue;
            };
            if self.check(&ip, rules::region(&r)) {
                if out.contains(&r) {
                    self.error(&ip, format!("region {r:?} is listed twice"), None);
                } else {
                    out.push(r);
                }
            }
        }
        Some(out)
    }

    fn targets(
        &mut self,
        v: Option<&Value>,
        root: &Path,
        no_default_regions: bool,
    ) -> Vec<TargetSpec> {
        let p = root.key("targets");
        let Some(v) = v else {
            self.error(
                root,
                "missing key \"targets\"",
                Some("a list of accounts or organizational units"),
            );
            return Vec::new();
        };
        let Value::Sequence(items) = v else {
            self.error(&p, "not a list", Some("a list of targets"));
            return Vec::new();
        };
        if items.is_empty() {
            self.error(&p, "no targets", Some("at least one target"));
        }
        let mut out = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ip = p.index(i);
            let Some(t) = self.target(item, &ip, no_default_regions) else {
                continue;
            };
            let label = t.name.clone().or(match &t.who {
                Who::Account(a) => Some(a.clone()),
                Who::OrganizationalUnit(_) => None,
            });
            if let Some(label) = label {
                if labels.contains(&label) {
                    let at = if t.name.is_some() {
                        ip.key("name")
                    } else {
                        ip.key("account")
                    };
                    self.error(
                        &at,
                        format!("target name {label:?} is used twice"),
                        Some("unique target names (and accounts)"),
                    );
                } else {
                    labels.push(label);
                }
            }
            out.push(t);
        }
        out
    }

    fn target(&mut self, v: &Value, p: &Path, no_default_regions: bool) -> Option<TargetSpec> {
        let m = self.mapping(v, p)?;
        self.known_keys(m, p, TARGET_KEYS);
        let who = match (m.get("account"), m.get("organizational_unit")) {
            (Some(a), None) => {
                let ap = p.key("account");
                let a = self.string(a, &ap)?;
                self.check(&ap, account_id_rule(&a))
                    .then_some(Who::Account(a))?
            }
            (None, Some(o)) => {
                let op = p.key("organizational_unit");
                let o = self.string(o, &op)?;
                self.check(&op, ou_id_rule(&o))
                    .then_some(Who::OrganizationalUnit(o))?
            }
            (Some(_), Some(_)) => {
                self.error(
                    p,
                    "both account and organizational_unit",
                    Some("one of them"),
                );
                return None;
            }
            (None, None) => {
                self.error(
                    p,
                    "neither account nor organizational_unit",
                    Some("account: \"123456789012\" or organizational_unit: ou-..."),
                );
                return None;
            }
        };
        let name = m.get("name").and_then(|v| {
            let np = p.key("name");
            let s = self.string(v, &np)?;
            self.check(&np, target_name_rule(&s)).then_some(s)
        });
        let vars = m
            .get("vars")
            .map(|v| self.vars(v, &p.key("vars")))
            .unwrap_or_default();
        let regions = m
            .get("regions")
            .and_then(|v| self.regions(v, &p.key("regions")));
        if regions.is_none() && no_default_regions && !m.contains_key("regions") {
            self.error(
                p,
                "no regions: neither the target nor the file names any",
                Some("regions: [...] here or at the top"),
            );
        }
        let assume_role = m
            .get("assume_role")
            .and_then(|v| self.role(v, &p.key("assume_role")));
        let external_id = m
            .get("external_id")
            .and_then(|v| self.external_id(v, &p.key("external_id")));
        Some(TargetSpec {
            who,
            name,
            vars,
            regions,
            assume_role,
            external_id,
        })
    }

    fn vars(&mut self, v: &Value, p: &Path) -> Vec<(String, String)> {
        let Some(m) = self.mapping(v, p) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, val) in m {
            let Some(k) = k.as_str() else {
                self.error(
                    p,
                    "a variable name that is not a string",
                    Some("string names"),
                );
                continue;
            };
            let vp = p.key(k);
            if !k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.error(
                    &vp,
                    format!("invalid variable name {k:?}"),
                    Some("letters, digits and _, not starting with a digit"),
                );
                continue;
            }
            match val {
                Value::String(s) => out.push((k.to_string(), s.clone())),
                _ => self.error(
                    &vp,
                    "not a string",
                    Some("a string (quote numbers and booleans)"),
                ),
            }
        }
        out
    }
}

/// An AWS account id: exactly 12 digits.
pub fn account_id_rule(v: &str) -> rules::Check {
    if v.len() == 12 && v.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(rules::Violation {
            message: format!("invalid account id {}", rules::shown(v)),
            expected: Some("12 digits, quoted".into()),
        })
    }
}

/// An Organizations OU id: `ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}`.
pub fn ou_id_rule(v: &str) -> rules::Check {
    let ok = v
        .strip_prefix("ou-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(a, b)| {
            let lower = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
            };
            (4..=32).contains(&a.len()) && (8..=32).contains(&b.len()) && lower(a) && lower(b)
        });
    if ok {
        Ok(())
    } else {
        Err(rules::Violation {
            message: format!("invalid organizational unit id {}", rules::shown(v)),
            expected: Some("ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}".into()),
        })
    }
}

/// STS `ExternalId`: 2–1224 characters of `[\w+=,.@:/-]`.
pub fn external_id_rule(v: &str) -> rules::Check {
    let n = v.chars().count();
    let ok = (2..=1224).contains(&n)
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(rules::Violation {
            message: "invalid external id".into(),
            expected: Some("2 to 1224 characters of letters, digits and _+=,.@:/-".into()),
        })
    }
}

/// A target's label: 1–64 of letters, digits, `_.-` (it appears in session names and reports).
pub fn target_name_rule(v: &str) -> rules::Check {
    let n = v.chars().count();
    if (1..=64).contains(&n)
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        Ok(())
    } else {
        Err(rules::Violation {
            message: format!("invalid target name {}", rules::shown(v)),
            expected: Some("1 to 64 letters, digits and _.-".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match load_str("fleet.yaml", text) {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn reads_the_spec_example() {
        let f = load_str(
            "fleet.yaml",
            "version: 1\nassume_role: OrganizationAccountAccessRole\nexternal_id: \"abc-123\"\nregions: [ap-northeast-2]\ntargets:\n  - account: \"111122223333\"\n    name: alice\n    vars: { student: alice }\n    regions: [us-east-1]\n  - organizational_unit: ou-ab12-cd34ef56\n",
        )
        .unwrap();
        assert_eq!(f.assume_role, DEFAULT_ROLE);
        assert_eq!(f.external_id.as_deref(), Some("abc-123"));
        assert_eq!(f.targets.len(), 2);
        assert_eq!(f.targets[0].who, Who::Account("111122223333".into()));
        assert_eq!(
            f.targets[0].vars,
            vec![("student".to_string(), "alice".to_string())]
        );
        assert_eq!(f.targets[0].regions, Some(vec!["us-east-1".to_string()]));
        assert_eq!(
            f.targets[1].who,
            Who::OrganizationalUnit("ou-ab12-cd34ef56".into())
        );
    }

    #[test]
    fn every_error_has_its_position_and_path() {
        let e = errors(
            "version: 1\nregions: [mars-1]\nassume_role: \"bad role\"\ntargets:\n  - account: 111122223333\n  - account: \"12345\"\n  - organizational_unit: ou-AB-x\n  - account: \"111122223333\"\n    name: a\n    vars: { n: 3 }\n    colour: red\n  - account: \"222233334444\"\n    name: a\n",
        );
        let want = [
            "fleet.yaml:2:11: regions[0]: invalid region",
            "fleet.yaml:3:14: assume_role: ",
            "fleet.yaml:5:14: targets[0].account: a number, not a string",
            "fleet.yaml:6:14: targets[1].account: invalid account id",
            "fleet.yaml:7:26: targets[2].organizational_unit: invalid organizational unit id",
            "fleet.yaml:10:16: targets[3].vars.n: not a string",
            "fleet.yaml:11:5: targets[3].colour: unknown key",
            "fleet.yaml:13:11: targets[4].name: target name \"a\" is used twice",
        ];
        for w in want {
            assert!(
                e.iter().any(|l| l.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
    }

    #[test]
    fn a_target_needs_regions_somewhere() {
        let e = errors("version: 1\ntargets:\n  - account: \"111122223333\"\n");
        assert!(e.iter().any(|l| l.contains("no regions")), "{e:?}");
        assert!(errors(
            "version: 1\ntargets:\n  - account: \"111122223333\"\n    regions: [eu-west-1]\n"
        )
        .is_empty());
    }

    #[test]
    fn rules() {
        assert!(ou_id_rule("ou-ab12-cd34ef56").is_ok());
        assert!(ou_id_rule("ou-ab1-cd34ef56").is_err());
        assert!(ou_id_rule("r-ab12").is_err());
        assert!(account_id_rule("012345678901").is_ok());
        assert!(account_id_rule("01234567890a").is_err());
        assert!(external_id_rule("a").is_err());
        assert!(external_id_rule("a b").is_err());
        assert!(external_id_rule("tenant:42/x").is_ok());
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_classroom_fleet_example_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/fleet-classroom.yaml");
        let f = super::load_file(&path).unwrap();
        assert_eq!(f.targets.len(), 4);
        assert_eq!(
            f.targets[3].regions,
            Some(vec!["ap-northeast-1".to_string()])
        );
    }
}
