//! Physical names of derived resources, and the check that names are unique per namespace.

use std::collections::BTreeMap;

use super::deriver::{name_path, Deriver};
use crate::kinds::{self, bucket, delivery, log_group, role, stream};
use crate::model::Address;
use crate::spec::types::Spec;

pub(super) fn host_role_name(stack: &str, host: &str) -> String {
    format!("{stack}-{host}-host")
}
pub(super) fn instance_profile_name(stack: &str, host: &str) -> String {
    format!("{stack}-{host}-host")
}
pub(super) fn security_group_name(stack: &str, host: &str) -> String {
    format!("{stack}-{host}-ssh")
}
pub(super) fn delivery_role_name(stack: &str, delivery: &str) -> String {
    format!("{stack}-{delivery}-firehose")
}

/// The spec section a derived resource comes from, and whether its name is written there
/// (`name:`) rather than derived from the key.
fn origin(spec: &Spec, a: &Address) -> (&'static str, bool) {
    let k = a.kind;
    if k == bucket::KIND {
        let explicit = spec.buckets.get(&a.key).is_some_and(|b| b.name.is_some());
        ("buckets", explicit)
    } else if k == stream::KIND {
        let explicit = spec.streams.get(&a.key).is_some_and(|s| s.name.is_some());
        ("streams", explicit)
    } else if k == delivery::KIND || k == log_group::KIND {
        let explicit = spec
            .deliveries
            .get(&a.key)
            .is_some_and(|s| s.name.is_some());
        ("deliveries", explicit)
    } else if k == role::DELIVERY_ROLE {
        ("deliveries", false)
    } else {
        ("hosts", false)
    }
}

/// Physical names must be unique per namespace (IAM names case-insensitively).
pub(super) fn unique_names(d: &mut Deriver) {
    let mut seen: BTreeMap<(&'static str, String), Address> = BTreeMap::new();
    let mut dups = Vec::new();
    for r in d.resources.values() {
        let Some((ns, case_insensitive)) = kinds::REGISTRY
            .handler(r.address.kind)
            .ok()
            .and_then(|h| h.name_namespace())
        else {
            continue;
        };
        let name = if case_insensitive {
            r.name.to_lowercase()
        } else {
            r.name.clone()
        };
        match seen.get(&(ns, name.clone())) {
            Some(first) => dups.push((r.address.clone(), first.clone(), ns, r.name.clone())),
            None => {
                seen.insert((ns, name), r.address.clone());
            }
        }
    }
    for (addr, first, ns, name) in dups {
        // Point at whichever of the two has an explicit `name:`; else at this one's key.
        let (blame, other) = if !origin(d.spec, &addr).1 && origin(d.spec, &first).1 {
            (first, addr)
        } else {
            (addr, first)
        };
        let (section, explicit) = origin(d.spec, &blame);
        let (path, at_key) = name_path(section, &blame.key, explicit);
        d.err(
            path,
            at_key,
            format!("{ns} name {name:?} is also used by {other}"),
            Some("unique physical names".into()),
        );
    }
}
