//! The state of one derivation: the spec, where it lives, the resources derived so far and the
//! problems found, with the helpers every section uses.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::kinds::role::RoleProps;
use crate::model::{Address, Env, Props, Resource, INLINE_POLICY_NAME, TAG_ADDRESS, TAG_STACK};
use crate::spec::positions::Path;
use crate::spec::rules::{self, Violation};
use crate::spec::types::{Spec, StreamEncryption};

/// A problem found while deriving, tied to the spec field it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeriveError {
    pub path: Path,
    /// Point at the key (e.g. `hosts.collector`) rather than its value.
    pub at_key: bool,
    pub violation: Violation,
}

pub(super) struct Deriver<'s> {
    pub spec: &'s Spec,
    pub env: Env,
    pub errors: Vec<DeriveError>,
    pub resources: BTreeMap<Address, Resource>,
    /// Where in the spec each resource comes from (for errors that span resources).
    pub origins: BTreeMap<Address, Origin>,
}

/// The spec entry a resource is derived from: its section, and whether the resource's physical
/// name is written there (`name:`) rather than derived from the key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin {
    pub section: &'static str,
    pub named: bool,
}

impl Origin {
    /// The entry's own resource, named by `name:` when `named`.
    pub fn entry(section: &'static str, named: bool) -> Origin {
        Origin { section, named }
    }
    /// A resource derived from the same entry, whose name is always derived.
    pub fn derived(self) -> Origin {
        Origin {
            named: false,
            ..self
        }
    }
}

/// The spec path `a.b.c`.
pub(super) fn p(parts: &[&str]) -> Path {
    let mut path = Path::root();
    for part in parts {
        path = path.key(part);
    }
    path
}

/// Where a name problem is reported: at `section.key.name` when the name is explicit, else at
/// the key (the name is derived from it); and whether it points at the key.
pub(super) fn name_path(section: &str, key: &str, explicit: bool) -> (Path, bool) {
    if explicit {
        (p(&[section, key, "name"]), false)
    } else {
        (p(&[section, key]), true)
    }
}

/// "one of: a, b" for a reference to a key that does not exist.
pub(super) fn expected_keys<'a>(
    keys: impl Iterator<Item = &'a String>,
    extra: Option<&str>,
) -> String {
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

/// The customer-managed KMS key of a stream, if it has one.
pub(super) fn customer_key(enc: &StreamEncryption) -> Option<String> {
    match enc {
        StreamEncryption::Kms(k) => Some(k.clone()),
        _ => None,
    }
}

impl Deriver<'_> {
    pub fn err(&mut self, path: Path, at_key: bool, message: String, expected: Option<String>) {
        self.errors.push(DeriveError {
            path,
            at_key,
            violation: Violation { message, expected },
        });
    }

    /// Reports a rule violation on a physical name; derived names say so and how to fix them.
    pub fn check(&mut self, path: Path, at_key: bool, derived: bool, r: rules::Check) {
        let Err(v) = r else {
            return;
        };
        let (message, expected) = if derived {
            let hint = "shorten the stack name or this key, or set an explicit name where the spec allows one";
            let expected = match v.expected {
                Some(e) => format!("{e}; {hint}"),
                None => hint.to_string(),
            };
            (format!("derived {}", v.message), Some(expected))
        } else {
            (v.message, v.expected)
        };
        self.err(path, at_key, message, expected);
    }

    /// The physical name of `key`'s own resource (`None` when the entry is not there), checked
    /// against `rule`.
    pub fn entry_name(
        &mut self,
        at: Origin,
        key: &str,
        name: Option<String>,
        rule: fn(&str) -> rules::Check,
    ) -> Option<String> {
        let name = name?;
        self.check_name(at, key, rule(&name));
        Some(name)
    }

    /// Checks the physical name of `key`'s resource from `at`: written there or derived.
    pub fn check_name(&mut self, at: Origin, key: &str, r: rules::Check) {
        let (path, at_key) = name_path(at.section, key, at.named);
        self.check(path, at_key, !at.named, r);
    }

    /// Adds an IAM role under the stack's path with its trust policy and its one inline policy.
    pub fn add_role(
        &mut self,
        at: Origin,
        address: Address,
        name: String,
        trust: Value,
        policy: Value,
    ) {
        let props = RoleProps {
            arn: self.env.role_arn(&name),
            trust_policy: trust,
            inline_policies: BTreeMap::from([(INLINE_POLICY_NAME.to_string(), policy)]),
        };
        self.add(
            at.derived(),
            address,
            name,
            BTreeSet::new(),
            Props::new(props),
        );
    }

    /// Adds a resource with the stack's tags (the user's, `streamstack:stack` and
    /// `streamstack:address`); created-at and expires-at depend on what is live: `ops` stamps
    /// them after discovery.
    pub fn add(
        &mut self,
        at: Origin,
        address: Address,
        name: String,
        depends_on: BTreeSet<Address>,
        props: Props,
    ) -> &mut Resource {
        let mut tags = self.spec.tags.clone();
        tags.insert(TAG_STACK.into(), self.spec.stack.clone());
        tags.insert(TAG_ADDRESS.into(), address.to_string());
        self.origins.insert(address.clone(), at);
        let r = Resource {
            address: address.clone(),
            name,
            tags,
            depends_on,
            props,
        };
        match self.resources.entry(address) {
            Entry::Occupied(mut o) => {
                o.insert(r);
                o.into_mut()
            }
            Entry::Vacant(v) => v.insert(r),
        }
    }

    /// The physical name of stream `key` (explicit, else `{stack}-{key}`).
    pub fn stream_name(&self, key: &str) -> Option<String> {
        let s = self.spec.streams.get(key)?;
        Some(self.default_name(s.name.as_ref(), key))
    }

    /// The physical name of delivery `key` (explicit, else `{stack}-{key}`).
    pub fn delivery_name(&self, key: &str) -> Option<String> {
        let d = self.spec.deliveries.get(key)?;
        Some(self.default_name(d.name.as_ref(), key))
    }

    /// The physical name of bucket `key` (explicit, else `{stack}-{key}-{account}-{region}`:
    /// bucket names are global).
    pub fn bucket_name(&self, key: &str) -> Option<String> {
        let b = self.spec.buckets.get(key)?;
        Some(b.name.clone().unwrap_or_else(|| {
            format!(
                "{}-{key}-{}-{}",
                self.spec.stack, self.env.account_id, self.env.region
            )
        }))
    }

    fn default_name(&self, explicit: Option<&String>, key: &str) -> String {
        explicit
            .cloned()
            .unwrap_or_else(|| format!("{}-{key}", self.spec.stack))
    }
}
