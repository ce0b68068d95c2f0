//! The plan is a value: a pure function of (desired model, live state) → one change per address,
//! in the order they would be applied. No AWS calls here, so every action choice is unit-tested.
//!
//! Attributes are compared field by field on the serialised model (the same shape for desired and
//! live). What is kind-specific (which attributes force a replacement, whether a name is an
//! identity, which replacements cascade, what a resource uses) comes from the kind registry
//! (`crate::kinds::handler`); nothing here names a kind.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kinds::{self, Live, ResourceKind};
use crate::model::{Address, Kind, Model, Resource};

/// Version of the JSON shape of a plan (`plan --json`, `plan --out`). Bumped on any change that
/// is not a pure addition.
pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    /// The symbol the human plan shows.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One attribute's before → after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    pub name: String,
    /// `null` when creating.
    pub before: Value,
    /// `null` when deleting.
    pub after: Value,
    pub forces_replacement: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: String,
    pub action: Action,
    /// Physical name (desired for create/update/replace, live for delete).
    pub name: String,
    /// Why: what forces a replacement, why a delete happens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The live id (instance id, ARN...) of what is changed or deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_id: Option<String>,
    pub attributes: Vec<AttrChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

/// The whole plan; its JSON form is documented in README.md ("Plan JSON").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub stack: String,
    pub region: String,
    pub account_id: String,
    /// The stack's `streamstack:created-at` the plan stamps (the earliest live one, or when
    /// it was planned); apply stamps the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Changes in apply order; no-ops are left out.
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Summary {
    /// The counts of `changes`: a replace both adds and destroys.
    pub fn of(changes: &[Change]) -> Summary {
        let count = |f: fn(Action) -> bool| changes.iter().filter(|c| f(c.action)).count();
        Summary {
            add: count(|a| matches!(a, Action::Create | Action::Replace)),
            change: count(|a| a == Action::Update),
            destroy: count(|a| matches!(a, Action::Delete | Action::Replace)),
        }
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// A resource that has one of the stack's physical names but is not tagged as the stack's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOurs {
    pub address: Address,
    pub name: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOursError(pub Vec<NotOurs>);

impl std::fmt::Display for NotOursError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} resource(s) with this stack's names exist but are not tagged streamstack:stack as this stack's; \
             streamstack will not change or delete them:",
            self.0.len()
        )?;
        for n in &self.0 {
            writeln!(f, "  {} → {} ({})", n.address, n.name, n.id)?;
        }
        write!(
            f,
            "Rename them in the spec (name:) or remove the existing resources yourself."
        )
    }
}

impl std::error::Error for NotOursError {}

/// The attributes of a resource as one flat JSON object: its props plus `tags`.
fn attributes(r: &Resource) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = r.props.attributes().into_iter().collect();
    // `aws:` tags are AWS's own (CloudFormation adds aws:cloudformation:*): never compared.
    let tags: BTreeMap<&String, &String> = r
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:"))
        .collect();
    out.insert(
        "tags".into(),
        serde_json::to_value(&tags).unwrap_or(Value::Null),
    );
    out
}

/// The kind's implementation, when the registry has one (always, outside a bug).
fn handler(kind: Kind) -> Option<&'static dyn ResourceKind> {
    kinds::handler(kind).ok()
}

fn replace_on(kind: Kind) -> &'static [&'static str] {
    handler(kind).map_or(&[], |h| h.replace_on())
}

fn diff(desired: &Resource, live: &Resource, replace_on: &[&str]) -> Vec<AttrChange> {
    let want = attributes(desired);
    let have = attributes(live);
    let names: BTreeSet<&String> = want.keys().chain(have.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| {
            let after = want.get(n).cloned().unwrap_or(Value::Null);
            let before = have.get(n).cloned().unwrap_or(Value::Null);
            (after != before).then(|| AttrChange {
                name: n.clone(),
                before,
                after,
                forces_replacement: replace_on.contains(&n.as_str()),
            })
        })
        .collect()
}

fn all_attrs(r: &Resource, deleting: bool) -> Vec<AttrChange> {
    attributes(r)
        .into_iter()
        .map(|(name, v)| AttrChange {
            name,
            before: if deleting { v.clone() } else { Value::Null },
            after: if deleting { Value::Null } else { v },
            forces_replacement: false,
        })
        .collect()
}

/// Orders live resources for deletion: a resource comes after every resource that uses it
/// (`ResourceKind::uses`), ties by address. Resources are matched by kind and physical name; a
/// kind that shares its namespace with another (the two role kinds) matches either.
pub fn deletion_order<'l>(lives: &[&'l Live]) -> Vec<&'l Live> {
    let n = lives.len();
    // users[i]: the resources that use lives[i].
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (u, l) in lives.iter().enumerate() {
        for (kind, name) in handler(l.address().kind).map_or(Vec::new(), |h| h.uses(&l.resource)) {
            for (i, other) in lives.iter().enumerate() {
                if i != u
                    && other.resource.name == name
                    && same_namespace(other.address().kind, kind)
                {
                    users[i].push(u);
                }
            }
        }
    }
    let mut remaining: Vec<usize> = users.iter().map(Vec::len).collect();
    let mut used_by_me: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, us) in users.iter().enumerate() {
        for &u in us {
            used_by_me[u].push(i);
        }
    }
    let mut ready: BTreeSet<(Address, usize)> = (0..n)
        .filter(|&i| remaining[i] == 0)
        .map(|i| (lives[i].address().clone(), i))
        .collect();
    let mut out = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while let Some((_, i)) = ready.pop_first() {
        done[i] = true;
        out.push(lives[i]);
        for &j in &used_by_me[i] {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                ready.insert((lives[j].address().clone(), j));
            }
        }
    }
    // A cycle (none exists among AWS resources) keeps its members in address order at the end.
    let mut rest: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
    rest.sort_by_key(|&i| lives[i].address().clone());
    out.extend(rest.into_iter().map(|i| lives[i]));
    out
}

/// Do resources of kinds `a` and `b` share a name namespace (the same AWS resource type)?
pub fn same_namespace(a: Kind, b: Kind) -> bool {
    a == b
        || match (handler(a), handler(b)) {
            (Some(x), Some(y)) => std::ptr::addr_eq(x, y),
            _ => false,
        }
}

/// Computes the plan. Fails, changing nothing, if a same-named resource is not the stack's.
pub fn plan(desired: &Model, live: &[Live]) -> Result<Plan, NotOursError> {
    let foreign: Vec<NotOurs> = live
        .iter()
        .filter(|l| !l.ours)
        .filter(|l| {
            // IAM compares names case-insensitively: `Weather-Lab-Collector-Host` takes the name.
            let case_insensitive = handler(l.address().kind)
                .and_then(|h| h.name_namespace())
                .is_some_and(|(_, ci)| ci);
            desired.of_kind(l.address().kind).any(|r| {
                r.name == l.resource.name
                    || (case_insensitive && r.name.eq_ignore_ascii_case(&l.resource.name))
            })
        })
        .map(|l| NotOurs {
            address: l.address().clone(),
            name: l.resource.name.clone(),
            id: l.id.clone(),
        })
        .collect();
    if !foreign.is_empty() {
        return Err(NotOursError(foreign));
    }
    let ours: Vec<&Live> = live.iter().filter(|l| l.ours).collect();
    let mut by_address: BTreeMap<&Address, Vec<&Live>> = BTreeMap::new();
    for l in &ours {
        by_address.entry(l.address()).or_default().push(l);
    }

    let order: Vec<Address> = match desired.graph() {
        Ok(g) => g.creation_order().to_vec(),
        Err(_) => desired.resources.keys().cloned().collect(),
    };
    let mut changes = Vec::new();
    let mut replaced: BTreeSet<Address> = BTreeSet::new();
    let mut extra_deletes = Vec::new();
    for address in &order {
        let Some(want) = desired.get(address) else {
            continue;
        };
        let candidates = by_address.remove(address).unwrap_or_default();
        let (current, extras): (Vec<&Live>, Vec<&Live>) = {
            let pick = candidates
                .iter()
                .position(|l| l.resource.name == want.name)
                .or(if candidates.is_empty() { None } else { Some(0) });
            let mut cur = Vec::new();
            let mut ext = Vec::new();
            for (i, l) in candidates.iter().enumerate() {
                if Some(i) == pick {
                    cur.push(*l);
                } else {
                    ext.push(*l);
                }
            }
            (cur, ext)
        };
        for extra in extras {
            extra_deletes.push(Change {
                address: address.to_string(),
                action: Action::Delete,
                name: extra.resource.name.clone(),
                reason: Some(format!(
                    "a second live resource for {address} (left by an interrupted apply)"
                )),
                live_id: Some(extra.id.clone()),
                attributes: vec![],
            });
        }
        let Some(have) = current.first() else {
            changes.push(Change {
                address: address.to_string(),
                action: Action::Create,
                name: want.name.clone(),
                reason: None,
                live_id: None,
                attributes: all_attrs(want, false),
            });
            continue;
        };
        // Most kinds' name is their identity; some (hosts: a `Name` tag) rename in place.
        let renamed = have.resource.name != want.name;
        let name_is_identity = handler(address.kind).is_none_or(|h| h.name_is_identity());
        if renamed && name_is_identity {
            replaced.insert(address.clone());
            changes.push(Change {
                address: address.to_string(),
                action: Action::Replace,
                name: want.name.clone(),
                reason: Some(format!(
                    "the name changes from {} to {}",
                    have.resource.name, want.name
                )),
                live_id: Some(have.id.clone()),
                attributes: diff(want, &have.resource, replace_on(address.kind)),
            });
            continue;
        }
        let mut attrs = diff(want, &have.resource, replace_on(address.kind));
        if let Some(why) = &have.broken {
            // A terminal failed state (a delivery CREATING_FAILED): only a new one helps.
            replaced.insert(address.clone());
            changes.push(Change {
                address: address.to_string(),
                action: Action::Replace,
                name: want.name.clone(),
                reason: Some(format!("{address} is broken: {why}")),
                live_id: Some(have.id.clone()),
                attributes: attrs,
            });
            continue;
        }
        if renamed {
            attrs.insert(
                0,
                AttrChange {
                    name: "name".into(),
                    before: Value::String(have.resource.name.clone()),
                    after: Value::String(want.name.clone()),
                    forces_replacement: false,
                },
            );
        }
        let replaced_with = handler(address.kind).map_or(&[][..], |h| h.replaced_with());
        let cascade = want
            .depends_on
            .iter()
            .find(|d| replaced.contains(*d) && replaced_with.contains(&d.kind));
        let forced: Vec<&str> = attrs
            .iter()
            .filter(|a| a.forces_replacement)
            .map(|a| a.name.as_str())
            .collect();
        let (action, reason) = if let Some(dep) = cascade {
            (
                Action::Replace,
                Some(format!("{dep} is replaced and {address} reads from it")),
            )
        } else if !forced.is_empty() {
            (
                Action::Replace,
                Some(format!("changing {} forces replacement", forced.join(", "))),
            )
        } else if !attrs.is_empty() {
            (Action::Update, None)
        } else {
            (Action::NoOp, None)
        };
        if action == Action::Replace {
            replaced.insert(address.clone());
        }
        if action != Action::NoOp {
            changes.push(Change {
                address: address.to_string(),
                action,
                name: want.name.clone(),
                reason,
                live_id: Some(have.id.clone()),
                attributes: attrs,
            });
        }
    }
    // Live resources of the stack that the spec no longer has.
    let removed: Vec<&Live> = by_address.into_values().flatten().collect();
    for l in deletion_order(&removed) {
        changes.push(Change {
            address: l.address().to_string(),
            action: Action::Delete,
            name: l.resource.name.clone(),
            reason: Some("no longer in the spec".into()),
            live_id: Some(l.id.clone()),
            attributes: all_attrs(&l.resource, true),
        });
    }
    changes.extend(extra_deletes);
    let summary = Summary::of(&changes);
    Ok(Plan {
        format_version: FORMAT_VERSION.into(),
        stack: desired.stack.clone(),
        region: desired.env.region.clone(),
        account_id: desired.env.account_id.clone(),
        created_at: None,
        changes,
        summary,
    })
}

/// The plan for `destroy`: every live resource of the stack, deleted; same-named resources that
/// are not ours are left alone (and reported by the caller).
pub fn destroy_plan(desired: &Model, live: &[Live]) -> Plan {
    let ours: Vec<&Live> = live.iter().filter(|l| l.ours).collect();
    let changes: Vec<Change> = deletion_order(&ours)
        .into_iter()
        .map(|l| Change {
            address: l.address().to_string(),
            action: Action::Delete,
            name: l.resource.name.clone(),
            reason: None,
            live_id: Some(l.id.clone()),
            attributes: vec![],
        })
        .collect();
    Plan {
        summary: Summary::of(&changes),
        format_version: FORMAT_VERSION.into(),
        stack: desired.stack.clone(),
        region: desired.env.region.clone(),
        account_id: desired.env.account_id.clone(),
        created_at: None,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Props, TAG_STACK};
    use crate::spec::{load_str, LoadOptions};
    use serde_json::json;

    const SPEC: &str = r#"
version: 1
stack: lab
region: eu-west-1
buckets:
  archive: { force_destroy: true }
streams:
  weather: { retention_hours: 24 }
deliveries:
  to-s3: { from: weather, to: archive, prefix: "w/" }
hosts:
  collector:
    instance_type: t3.micro
    flows:
      - { files: /var/log/w/*.log, to: weather }
"#;

    fn model(text: &str) -> Model {
        load_str(
            "t.yaml",
            text,
            &LoadOptions {
                region: Some("eu-west-1".into()),
                account_id: Some("123456789012".into()),
                vars: vec![],
                ambient_region: None,
            },
        )
        .expect("valid spec")
        .model
    }

    fn live_of(m: &Model) -> Vec<Live> {
        m.resources
            .values()
            .map(|r| Live {
                broken: None,
                created: None,
                resource: Resource {
                    depends_on: Default::default(),
                    ..r.clone()
                },
                id: format!("id-{}", r.address),
                ours: true,
            })
            .collect()
    }

    fn find<'p>(p: &'p Plan, address: &str) -> &'p Change {
        p.changes
            .iter()
            .find(|c| c.address == address)
            .unwrap_or_else(|| panic!("no change for {address} in {:#?}", p.changes))
    }

    fn edit(live: &mut [Live], address: &str, f: impl FnOnce(&mut Resource)) {
        let l = live
            .iter_mut()
            .find(|l| l.address().to_string() == address)
            .expect("address present");
        f(&mut l.resource);
    }

    #[test]
    fn in_sync_means_no_changes() {
        let m = model(SPEC);
        let p = plan(&m, &live_of(&m)).expect("plan");
        assert!(!p.has_changes(), "{:#?}", p.changes);
        assert_eq!(
            p.summary,
            Summary {
                add: 0,
                change: 0,
                destroy: 0
            }
        );
    }

    #[test]
    fn nothing_live_creates_everything_in_dependency_order() {
        let m = model(SPEC);
        let p = plan(&m, &[]).expect("plan");
        assert_eq!(p.summary.add, m.resources.len());
        assert!(p.changes.iter().all(|c| c.action == Action::Create));
        let pos = |a: &str| {
            p.changes
                .iter()
                .position(|c| c.address == a)
                .expect("present")
        };
        assert!(pos("stream.weather") < pos("delivery.to-s3"));
        assert!(pos("delivery_role.to-s3") < pos("delivery.to-s3"));
        assert!(pos("delivery.to-s3") < pos("host.collector"));
        assert!(pos("instance_profile.collector") < pos("host.collector"));
    }

    struct Case {
        name: &'static str,
        address: &'static str,
        edit: fn(&mut Resource),
        action: Action,
        attr: &'static str,
    }

    /// Sets one attribute of a resource, whatever its kind: the props become a plain JSON
    /// object, which is all the planner looks at.
    fn set_attr(r: &mut Resource, name: &str, f: impl FnOnce(&mut Value)) {
        let mut attrs = r.props.attributes();
        f(attrs.entry(name.to_string()).or_insert(Value::Null));
        r.props = Props::new(Value::Object(attrs));
    }

    #[test]
    fn action_choice_per_attribute() {
        let cases = [
            Case {
                name: "retention changed out of band → update",
                address: "stream.weather",
                edit: |r| set_attr(r, "retention_hours", |v| *v = json!(48)),
                action: Action::Update,
                attr: "retention_hours",
            },
            Case {
                name: "a tag removed → update",
                address: "bucket.archive",
                edit: |r| {
                    r.tags.remove("streamstack:force-destroy");
                },
                action: Action::Update,
                attr: "tags",
            },
            Case {
                name: "policy edited → update",
                address: "host_role.collector",
                edit: |r| {
                    set_attr(r, "inline_policies", |v| {
                        v["streamstack"] = json!({"Statement": []})
                    })
                },
                action: Action::Update,
                attr: "inline_policies",
            },
            Case {
                name: "buffering → update in place",
                address: "delivery.to-s3",
                edit: |r| set_attr(r, "buffering", |v| v["size_mb"] = json!(64)),
                action: Action::Update,
                attr: "buffering",
            },
            Case {
                name: "delivery source → replace",
                address: "delivery.to-s3",
                edit: |r| set_attr(r, "source", |v| *v = Value::Null),
                action: Action::Replace,
                attr: "source",
            },
            Case {
                name: "user-data (agent config) → replace",
                address: "host.collector",
                edit: |r| {
                    set_attr(r, "user_data", |v| {
                        *v = json!(format!("{}# edited\n", v.as_str().unwrap_or_default()))
                    })
                },
                action: Action::Replace,
                attr: "user_data",
            },
            Case {
                name: "instance type → replace",
                address: "host.collector",
                edit: |r| set_attr(r, "instance_type", |v| *v = json!("t3.small")),
                action: Action::Replace,
                attr: "instance_type",
            },
            Case {
                name: "IMDSv2 turned off → update",
                address: "host.collector",
                edit: |r| set_attr(r, "http_tokens_required", |v| *v = json!(false)),
                action: Action::Update,
                attr: "http_tokens_required",
            },
        ];
        let m = model(SPEC);
        for case in cases {
            let mut live = live_of(&m);
            edit(&mut live, case.address, case.edit);
            let p = plan(&m, &live).expect("plan");
            assert_eq!(p.changes.len(), 1, "{}: {:#?}", case.name, p.changes);
            let c = find(&p, case.address);
            assert_eq!(c.action, case.action, "{}", case.name);
            assert_eq!(c.attributes.len(), 1, "{}", case.name);
            assert_eq!(c.attributes[0].name, case.attr, "{}", case.name);
            assert_eq!(
                c.attributes[0].forces_replacement,
                case.action == Action::Replace,
                "{}",
                case.name
            );
            if case.action == Action::Replace {
                assert!(
                    c.reason.as_deref().is_some_and(|r| r.contains(case.attr)),
                    "{}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn renamed_stream_replaces_it_and_the_delivery_reading_it() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        edit(&mut live, "stream.weather", |r| {
            r.name = "lab-old-weather".into()
        });
        let p = plan(&m, &live).expect("plan");
        assert_eq!(find(&p, "stream.weather").action, Action::Replace);
        let d = find(&p, "delivery.to-s3");
        assert_eq!(d.action, Action::Replace);
        assert!(d
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("stream.weather")));
        assert_eq!(
            p.summary,
            Summary {
                add: 2,
                change: 0,
                destroy: 2
            }
        );
    }

    #[test]
    fn resources_removed_from_the_spec_are_deleted() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        let mut orphan = live
            .iter()
            .find(|l| l.address().to_string() == "host.collector")
            .cloned()
            .expect("host");
        orphan.resource.address = "host.old".parse().expect("address");
        orphan.resource.name = "lab-old".into();
        orphan.id = "i-old".into();
        live.push(orphan);
        let p = plan(&m, &live).expect("plan");
        let c = find(&p, "host.old");
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.live_id.as_deref(), Some("i-old"));
        assert_eq!(
            p.summary,
            Summary {
                add: 0,
                change: 0,
                destroy: 1
            }
        );
    }

    #[test]
    fn a_second_instance_for_one_address_is_deleted() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        let mut twin = live
            .iter()
            .find(|l| l.address().to_string() == "host.collector")
            .cloned()
            .expect("host");
        twin.id = "i-twin".into();
        live.push(twin);
        let p = plan(&m, &live).expect("plan");
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].action, Action::Delete);
    }

    #[test]
    fn a_same_named_foreign_resource_fails_the_plan() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        let l = live
            .iter_mut()
            .find(|l| l.address().to_string() == "stream.weather")
            .expect("stream");
        l.ours = false;
        l.resource.tags.remove(TAG_STACK);
        let err = plan(&m, &live).expect_err("foreign");
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].name, "lab-weather");
        assert!(err.to_string().contains("stream.weather"));
    }

    #[test]
    fn destroy_deletes_only_ours_users_before_what_they_use() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        live[0].ours = false;
        let p = destroy_plan(&m, &live);
        assert_eq!(p.changes.len(), m.resources.len() - 1);
        assert!(p.changes.iter().all(|c| c.action == Action::Delete));
        let pos = |a: &str| {
            p.changes
                .iter()
                .position(|c| c.address == a)
                .unwrap_or_else(|| panic!("{a} missing from {:#?}", p.changes))
        };
        assert!(pos("host.collector") < pos("instance_profile.collector"));
        assert!(pos("instance_profile.collector") < pos("host_role.collector"));
        assert!(pos("delivery.to-s3") < pos("stream.weather"));
        assert!(pos("delivery.to-s3") < pos("delivery_role.to-s3"));
        assert!(pos("delivery.to-s3") < pos("log_group.to-s3"));
    }
}
