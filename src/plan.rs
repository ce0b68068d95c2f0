//! The plan is a value: a pure function of (desired model, live state) → one change per address,
//! in the order they would be applied. No AWS calls here, so every action choice is unit-tested.
//!
//! Attributes are compared field by field on the serialised model (the same shape for desired and
//! live). What is kind-specific (which attributes force a replacement, whether a name is an
//! identity, which replacements cascade, what a resource uses) comes from a kind registry
//! ([`Registry`]), passed in; nothing here names a kind. Per address, the action is chosen by
//! [`decide`], a pure function of the desired resource, the live one and what is replaced.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, NotOurs, NotOursError};
use crate::kinds::{Live, Registry};
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
    /// The action's name, as plan JSON spells it (`no_op`, `create`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Action::NoOp => "no_op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }

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
    /// The plan of `changes` to `desired`'s stack.
    pub fn new(desired: &Model, changes: Vec<Change>) -> Plan {
        Plan {
            format_version: FORMAT_VERSION.into(),
            stack: desired.stack.clone(),
            region: desired.env.region.clone(),
            account_id: desired.env.account_id.clone(),
            created_at: None,
            summary: Summary::of(&changes),
            changes,
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

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
pub fn deletion_order<'l>(kinds: &Registry, lives: &[&'l Live]) -> Vec<&'l Live> {
    let n = lives.len();
    // users[i]: the resources that use lives[i].
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (u, l) in lives.iter().enumerate() {
        let used = kinds
            .handler(l.address().kind)
            .map_or(Vec::new(), |h| h.uses(&l.resource));
        for (kind, name) in used {
            for (i, other) in lives.iter().enumerate() {
                if i != u
                    && other.resource.name == name
                    && kinds.same_namespace(other.address().kind, kind)
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

/// Live resources with one of the desired names that are not the stack's (IAM compares names
/// case-insensitively: `Weather-Lab-Collector-Host` takes the name).
fn foreign(kinds: &Registry, desired: &Model, live: &[Live]) -> Vec<NotOurs> {
    live.iter()
        .filter(|l| !l.ours)
        .filter(|l| {
            let case_insensitive = kinds.case_insensitive(l.address().kind);
            desired.of_kind(l.address().kind).any(|r| {
                r.name == l.resource.name
                    || (case_insensitive && r.name.eq_ignore_ascii_case(&l.resource.name))
            }) || (
                // A kind whose name is a label (hosts) finds a candidate by what the spec says
                // it adopts (an instance id), at the desired address.
                !KindFacts::of(kinds, l.address().kind).name_is_identity
                    && desired.get(l.address()).is_some()
            )
        })
        .map(|l| NotOurs {
            address: l.address().clone(),
            name: l.resource.name.clone(),
            id: l.id.clone(),
        })
        .collect()
}

/// What the planner needs to know of a kind to decide a change: its implementation's answers.
#[derive(Debug, Clone, Copy)]
pub struct KindFacts {
    /// Attributes whose change forces a replacement.
    pub replace_on: &'static [&'static str],
    /// Whether a new physical name is a new resource.
    pub name_is_identity: bool,
    /// Kinds whose replacement replaces a resource of this kind that depends on them.
    pub replaced_with: &'static [Kind],
}

impl KindFacts {
    fn of(kinds: &Registry, kind: Kind) -> KindFacts {
        match kinds.handler(kind) {
            Ok(h) => KindFacts {
                replace_on: h.replace_on(),
                name_is_identity: h.name_is_identity(),
                replaced_with: h.replaced_with(),
            },
            // Never, outside a bug: the safest reading (names are identities, nothing cascades).
            Err(_) => KindFacts {
                replace_on: &[],
                name_is_identity: true,
                replaced_with: &[],
            },
        }
    }
}

/// The change for one desired resource, given the live one it answers to (if any) and the
/// addresses already being replaced: a pure function of its inputs. `None` when in sync.
pub fn decide(
    want: &Resource,
    have: Option<&Live>,
    replaced: &BTreeSet<Address>,
    facts: KindFacts,
) -> Option<Change> {
    let address = &want.address;
    let change = |action, reason, live_id, attributes| Change {
        address: address.to_string(),
        action,
        name: want.name.clone(),
        reason,
        live_id,
        attributes,
    };
    let Some(have) = have else {
        return Some(change(Action::Create, None, None, all_attrs(want, false)));
    };
    let live_id = Some(have.id.clone());
    let mut attrs = diff(want, &have.resource, facts.replace_on);
    // Most kinds' name is their identity; some (hosts: a `Name` tag) rename in place.
    let renamed = have.resource.name != want.name;
    if renamed && facts.name_is_identity {
        let why = format!(
            "the name changes from {} to {}",
            have.resource.name, want.name
        );
        return Some(change(Action::Replace, Some(why), live_id, attrs));
    }
    if let Some(why) = &have.broken {
        // A terminal failed state (a delivery CREATING_FAILED): only a new one helps.
        let why = format!("{address} is broken: {why}");
        return Some(change(Action::Replace, Some(why), live_id, attrs));
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
    let cascade = want
        .depends_on
        .iter()
        .find(|d| replaced.contains(*d) && facts.replaced_with.contains(&d.kind));
    let forced: Vec<&str> = attrs
        .iter()
        .filter(|a| a.forces_replacement)
        .map(|a| a.name.as_str())
        .collect();
    let (action, reason) = if let Some(dep) = cascade {
        let why = format!("{dep} is replaced and {address} reads from it");
        (Action::Replace, Some(why))
    } else if !forced.is_empty() {
        let why = format!("changing {} forces replacement", forced.join(", "));
        (Action::Replace, Some(why))
    } else if !attrs.is_empty() {
        (Action::Update, None)
    } else {
        return None;
    };
    Some(change(action, reason, live_id, attrs))
}

/// The live resource a desired one answers to (the one with its name, else the first), and the
/// others found for its address (left by an interrupted apply): those are deleted.
fn pick<'l>(want: &Resource, candidates: Vec<&'l Live>) -> (Option<&'l Live>, Vec<&'l Live>) {
    let chosen = candidates
        .iter()
        .position(|l| l.resource.name == want.name)
        .or(if candidates.is_empty() { None } else { Some(0) });
    let mut current = None;
    let mut extras = Vec::new();
    for (i, l) in candidates.into_iter().enumerate() {
        if Some(i) == chosen {
            current = Some(l);
        } else {
            extras.push(l);
        }
    }
    (current, extras)
}

fn delete_change(l: &Live, reason: Option<String>, attributes: Vec<AttrChange>) -> Change {
    Change {
        address: l.address().to_string(),
        action: Action::Delete,
        name: l.resource.name.clone(),
        reason,
        live_id: Some(l.id.clone()),
        attributes,
    }
}

/// Computes the plan. Fails, changing nothing, if a same-named resource is not the stack's
/// ([`Error::NotOurs`]).
pub fn plan(kinds: &Registry, desired: &Model, live: &[Live]) -> Result<Plan, Error> {
    let foreign = foreign(kinds, desired, live);
    if !foreign.is_empty() {
        return Err(Error::NotOurs(NotOursError(foreign)));
    }
    let mut by_address: BTreeMap<&Address, Vec<&Live>> = BTreeMap::new();
    for l in live.iter().filter(|l| l.ours) {
        by_address.entry(l.address()).or_default().push(l);
    }
    // A model's graph has no cycle (derivation only adds edges to what a resource reads from):
    // one would be a bug, reported rather than planned around.
    let graph = desired
        .graph()
        .map_err(|e| Error::Internal(format!("the desired resources depend on each other: {e}")))?;
    let order = graph.creation_order();
    let mut changes = Vec::new();
    let mut replaced: BTreeSet<Address> = BTreeSet::new();
    let mut extra_deletes = Vec::new();
    for address in order {
        let Some(want) = desired.get(address) else {
            continue;
        };
        let (current, extras) = pick(want, by_address.remove(address).unwrap_or_default());
        for extra in extras {
            let why =
                format!("a second live resource for {address} (left by an interrupted apply)");
            extra_deletes.push(delete_change(extra, Some(why), vec![]));
        }
        let facts = KindFacts::of(kinds, address.kind);
        if let Some(c) = decide(want, current, &replaced, facts) {
            if c.action == Action::Replace {
                replaced.insert(address.clone());
            }
            changes.push(c);
        }
    }
    // Live resources of the stack that the spec no longer has.
    let removed: Vec<&Live> = by_address.into_values().flatten().collect();
    for l in deletion_order(kinds, &removed) {
        let reason = Some("no longer in the spec".to_string());
        changes.push(delete_change(l, reason, all_attrs(&l.resource, true)));
    }
    changes.extend(extra_deletes);
    Ok(Plan::new(desired, changes))
}

/// The plan for `destroy`: every live resource of the stack, deleted; same-named resources that
/// are not ours are left alone (and reported by the caller).
pub fn destroy_plan(kinds: &Registry, desired: &Model, live: &[Live]) -> Plan {
    let ours: Vec<&Live> = live.iter().filter(|l| l.ours).collect();
    let changes = deletion_order(kinds, &ours)
        .into_iter()
        .map(|l| delete_change(l, None, vec![]))
        .collect();
    Plan::new(desired, changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::load_str;
    use crate::kinds::REGISTRY;
    use crate::model::{Props, TAG_STACK};
    use crate::spec::LoadOptions;
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
                fleet_region: None,
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

    /// A plan's summary: (add, change, destroy).
    fn counts(p: &Plan) -> (usize, usize, usize) {
        (p.summary.add, p.summary.change, p.summary.destroy)
    }

    /// A copy of the live resource at `address`.
    fn copy_of(live: &[Live], address: &str) -> Live {
        live.iter()
            .find(|l| l.address().to_string() == address)
            .cloned()
            .unwrap_or_else(|| panic!("{address} is not live"))
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
        let p = plan(&REGISTRY, &m, &live_of(&m)).expect("plan");
        assert!(!p.has_changes(), "{:#?}", p.changes);
        assert_eq!(counts(&p), (0, 0, 0));
    }

    #[test]
    fn nothing_live_creates_everything_in_dependency_order() {
        let m = model(SPEC);
        let p = plan(&REGISTRY, &m, &[]).expect("plan");
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
            let p = plan(&REGISTRY, &m, &live).expect("plan");
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

    /// One row of the table of [`decide`]: the live `gizmo.g` (if any), whether the kind's name
    /// is its identity and what is already replaced, against one desired `gizmo.g` named `lab-g`
    /// with `size: 1, mode: a`, depending on `feed.f` and `other.o`, of a kind whose `size`
    /// forces a replacement and whose replacement follows that of a `feed`.
    struct Decision {
        name: &'static str,
        have: Option<Live>,
        name_is_identity: bool,
        /// The address already replaced, as (kind, key).
        replaced: Option<(Kind, &'static str)>,
        /// The change expected; `None` for no change.
        expect: Option<Expected>,
    }

    /// A change's action, a part of its reason, and its attributes (name, forces replacement)
    /// in order.
    type Expected = (
        Action,
        Option<&'static str>,
        &'static [(&'static str, bool)],
    );

    const GIZMO: Kind = Kind::new("gizmo");
    const FEED: Kind = Kind::new("feed");
    const OTHER: Kind = Kind::new("other");

    fn gizmo(name: &str, props: Value) -> Resource {
        Resource {
            address: Address::new(GIZMO, "g"),
            name: name.into(),
            tags: BTreeMap::from([(TAG_STACK.to_string(), "lab".to_string())]),
            depends_on: [Address::new(FEED, "f"), Address::new(OTHER, "o")].into(),
            props: Props::new(props),
        }
    }

    /// A row where `have` is the live `gizmo.g` called `name` with `props` (`None` for none).
    fn row(name: &'static str, have: Option<(&str, Value)>) -> Decision {
        Decision {
            name,
            have: have.map(|(name, props)| Live {
                resource: Resource {
                    depends_on: Default::default(),
                    ..gizmo(name, props)
                },
                id: "id-g".into(),
                ours: true,
                broken: None,
                created: None,
            }),
            name_is_identity: true,
            replaced: None,
            expect: None,
        }
    }

    impl Decision {
        fn expect(
            self,
            action: Action,
            reason: Option<&'static str>,
            attributes: &'static [(&'static str, bool)],
        ) -> Decision {
            Decision {
                expect: Some((action, reason, attributes)),
                ..self
            }
        }

        /// The kind's name is only a label.
        fn name_is_label(self) -> Decision {
            Decision {
                name_is_identity: false,
                ..self
            }
        }

        fn replacing(self, kind: Kind, key: &'static str) -> Decision {
            Decision {
                replaced: Some((kind, key)),
                ..self
            }
        }

        /// The live resource is in a terminal failed state.
        fn broken(mut self, why: &str) -> Decision {
            if let Some(l) = &mut self.have {
                l.broken = Some(why.into());
            }
            self
        }
    }

    #[test]
    fn decide_per_address() {
        let same = || Some(("lab-g", json!({"size": 1, "mode": "a"})));
        let mode_b = || Some(("lab-g", json!({"size": 1, "mode": "b"})));
        let renamed = || Some(("lab-old", json!({"size": 1, "mode": "a"})));
        let size_2 = |name| Some((name, json!({"size": 2, "mode": "a"})));
        let forces = Some("changing size forces replacement");
        let cascade = Some("feed.f is replaced and gizmo.g reads from it");
        let rows = [
            row("nothing live → create, every attribute new", None).expect(
                Action::Create,
                None,
                &[("mode", false), ("size", false), ("tags", false)],
            ),
            row("live and desired equal → no change", same()),
            row("an attribute AWS changes in place → update", mode_b()).expect(
                Action::Update,
                None,
                &[("mode", false)],
            ),
            row("a forcing attribute → replace, naming it", size_2("lab-g")).expect(
                Action::Replace,
                forces,
                &[("size", true)],
            ),
            row(
                "a new name where the name is the identity → replace",
                renamed(),
            )
            .expect(
                Action::Replace,
                Some("the name changes from lab-old to lab-g"),
                &[],
            ),
            row(
                "a new name where it is a label → rename in place",
                renamed(),
            )
            .name_is_label()
            .expect(Action::Update, None, &[("name", false)]),
            row(
                "renamed in place, a forcing attribute → replace",
                size_2("lab-old"),
            )
            .name_is_label()
            .expect(Action::Replace, forces, &[("name", false), ("size", true)]),
            row(
                "a broken resource, in sync otherwise → replace, saying why",
                same(),
            )
            .broken("CREATING_FAILED")
            .expect(
                Action::Replace,
                Some("gizmo.g is broken: CREATING_FAILED"),
                &[],
            ),
            row(
                "a replaced dependency of a kind in replaced_with → replace",
                same(),
            )
            .replacing(FEED, "f")
            .expect(Action::Replace, cascade, &[]),
            row(
                "the cascade wins over an in-place update, keeping the diff",
                mode_b(),
            )
            .replacing(FEED, "f")
            .expect(Action::Replace, cascade, &[("mode", false)]),
            row(
                "a replaced dependency of a kind not in replaced_with → no change",
                same(),
            )
            .replacing(OTHER, "o"),
            row(
                "a replaced feed that is not a dependency → no change",
                same(),
            )
            .replacing(FEED, "x"),
        ];
        let want = gizmo("lab-g", json!({"size": 1, "mode": "a"}));
        for row in rows {
            check(&want, row);
        }
    }

    /// Decides `want` against the row's live resource and compares with what the row expects.
    fn check(want: &Resource, row: Decision) {
        let replaced: BTreeSet<Address> = row
            .replaced
            .iter()
            .map(|(kind, key)| Address::new(*kind, key))
            .collect();
        let facts = KindFacts {
            replace_on: &["size"],
            name_is_identity: row.name_is_identity,
            replaced_with: &[FEED],
        };
        let got = decide(want, row.have.as_ref(), &replaced, facts);
        let Some((action, reason, attrs)) = row.expect else {
            assert_eq!(got, None, "{}", row.name);
            return;
        };
        let c = got.unwrap_or_else(|| panic!("{}: no change", row.name));
        assert_eq!(c.action, action, "{}", row.name);
        assert_eq!((c.address.as_str(), c.name.as_str()), ("gizmo.g", "lab-g"));
        let live_id = row.have.as_ref().map(|l| l.id.clone());
        assert_eq!(c.live_id, live_id, "{}", row.name);
        let why = c.reason.as_deref();
        match reason {
            Some(r) => assert!(why.is_some_and(|w| w.contains(r)), "{}: {why:?}", row.name),
            None => assert_eq!(why, None, "{}", row.name),
        }
        let got: Vec<(&str, bool)> = c
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.forces_replacement))
            .collect();
        assert_eq!(got, attrs, "{}", row.name);
    }

    #[test]
    fn renamed_stream_replaces_it_and_the_delivery_reading_it() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        edit(&mut live, "stream.weather", |r| {
            r.name = "lab-old-weather".into()
        });
        let p = plan(&REGISTRY, &m, &live).expect("plan");
        assert_eq!(find(&p, "stream.weather").action, Action::Replace);
        let d = find(&p, "delivery.to-s3");
        assert_eq!(d.action, Action::Replace);
        assert!(d
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("stream.weather")));
        assert_eq!(counts(&p), (2, 0, 2));
    }

    #[test]
    fn resources_removed_from_the_spec_are_deleted() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        let mut orphan = copy_of(&live, "host.collector");
        orphan.resource.address = REGISTRY.parse_address("host.old").expect("address");
        orphan.resource.name = "lab-old".into();
        orphan.id = "i-old".into();
        live.push(orphan);
        let p = plan(&REGISTRY, &m, &live).expect("plan");
        let c = find(&p, "host.old");
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.live_id.as_deref(), Some("i-old"));
        assert_eq!(counts(&p), (0, 0, 1));
    }

    #[test]
    fn a_second_instance_for_one_address_is_deleted() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        let mut twin = copy_of(&live, "host.collector");
        twin.id = "i-twin".into();
        live.push(twin);
        let p = plan(&REGISTRY, &m, &live).expect("plan");
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
        let Err(Error::NotOurs(err)) = plan(&REGISTRY, &m, &live) else {
            panic!("a foreign stream must fail the plan");
        };
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].name, "lab-weather");
        assert!(err.to_string().contains("stream.weather"));
    }

    /// A host with ssh in `subnet`: its group is made in that subnet's VPC.
    fn ssh_host_in(subnet: &str) -> String {
        format!(
            "version: 1\nstack: lab\nregion: eu-west-1\nstreams:\n  weather: {{}}\n\
             hosts:\n  collector:\n    instance_type: t3.micro\n    subnet: {subnet}\n\
             \x20   ssh: {{ from: [203.0.113.4/32] }}\n\
             \x20   flows: [{{ files: /var/log/w/*.log, to: weather }}]\n"
        )
    }

    #[test]
    fn a_host_moved_to_another_vpc_replaces_its_security_group_too() {
        // The group's create reads the VPC from the host's subnet: a value from another
        // resource, compared as the group's `subnet` (the kind reads a group in another VPC
        // as that VPC's id).
        let live = live_of(&model(&ssh_host_in("subnet-0aaa0aaa")));
        let m = model(&ssh_host_in("subnet-0bbb0bbb"));
        let p = plan(&REGISTRY, &m, &live).expect("plan");
        assert_eq!(find(&p, "host.collector").action, Action::Replace);
        let group = find(&p, "security_group.collector");
        assert_eq!(group.action, Action::Replace, "{group:#?}");
        assert!(
            group.attributes.iter().any(|a| a.name == "subnet"),
            "{group:#?}"
        );
        // The host waits for its group.
        let order = |a: &str| p.changes.iter().position(|c| c.address == a);
        assert!(order("security_group.collector") < order("host.collector"));
    }

    #[test]
    fn destroy_deletes_only_ours_users_before_what_they_use() {
        let m = model(SPEC);
        let mut live = live_of(&m);
        live[0].ours = false;
        let p = destroy_plan(&REGISTRY, &m, &live);
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
