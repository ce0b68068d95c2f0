//! Physical names of derived resources, and the check that names are unique per namespace.

use std::collections::BTreeMap;

use super::deriver::{name_path, Deriver};
use crate::kinds;
use crate::model::Address;

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
        let origin = |a: &Address| d.origins.get(a).copied();
        let named = |a: &Address| origin(a).is_some_and(|o| o.named);
        let (blame, other) = if !named(&addr) && named(&first) {
            (first, addr)
        } else {
            (addr, first)
        };
        let Some(at) = origin(&blame) else {
            continue;
        };
        let (path, at_key) = name_path(at.section, &blame.key, at.named);
        d.err(
            path,
            at_key,
            format!("{ns} name {name:?} is also used by {other}"),
            Some("unique physical names".into()),
        );
    }
}
