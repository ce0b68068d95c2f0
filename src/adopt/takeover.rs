//! `adopt SPEC`: the resources that match the spec by physical name but carry no streamstack
//! tags become the stack's. [`decide`] (pure) says exactly what adopting does: per resource the
//! tags added and each setting the spec changes in place; what it refuses (tagged by another
//! stack, made by CloudFormation, an IAM entity outside the stack's path) and what would force a
//! replacement. [`run`] then tags each resource and makes the in-place changes, through the
//! kind's own `update`: no create, no delete, no replace.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::kinds::{self, Live, Registry};
use crate::model::{Address, Model, Resource, TAG_STACK};
use crate::plan::{self, Action, AttrChange};
use crate::{Error, Result};

/// One resource adopting takes over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adoption {
    pub address: String,
    pub name: String,
    /// The id AWS knows it by.
    pub id: String,
    /// The tags adopting adds (the live ones are kept).
    pub tags_added: BTreeMap<String, String>,
    /// The settings the spec changes, in place.
    pub updates: Vec<AttrChange>,
    /// Why the setting changes wait for `apply` (they need a resource apply creates); the
    /// tags are still added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// What adopting means for this resource beyond its settings (an adopted instance: what
    /// apply swaps onto it in place, and that its agent configuration stays unmanaged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A resource adopt will not take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub address: String,
    pub name: String,
    /// Who owns it ("stack other-lab", "CloudFormation stack X").
    pub owner: String,
}

/// A difference that would replace an adopted resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replacement {
    pub address: String,
    pub name: String,
    pub reason: String,
}

/// What adopting the spec does.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AdoptPlan {
    pub stack: String,
    pub adopt: Vec<Adoption>,
    /// Resources already the stack's: nothing to do.
    pub already_ours: Vec<String>,
    /// Resources of the spec that are not live: adopt makes none; `apply` creates them.
    pub missing: Vec<String>,
    pub refused: Vec<Refusal>,
    pub replacements: Vec<Replacement>,
}

impl AdoptPlan {
    /// Whether anything would be written.
    pub fn has_changes(&self) -> bool {
        !self.adopt.is_empty()
    }
}

/// Who owns a resource with these tags, if not nobody: another stack, or CloudFormation.
pub fn owner(tags: &BTreeMap<String, String>, stack: &str) -> Option<String> {
    if let Some(s) = tags.get(TAG_STACK).filter(|s| *s != stack) {
        return Some(format!("stack {s}"));
    }
    if let Some(s) = tags.get("aws:cloudformation:stack-name") {
        return Some(format!("CloudFormation stack {s}"));
    }
    tags.keys()
        .find(|k| k.starts_with("aws:cloudformation:"))
        .map(|_| "CloudFormation".to_string())
}

/// Attributes (kind, attribute) whose in-place change creates something inside the resource
/// (a log group's missing log stream is `CreateLogStream`): adopt leaves such a resource's
/// settings to apply, so that adopting makes no create call at all.
const CREATES_INSIDE: &[(&str, &str)] = &[("log_group", "log_stream")];

/// What adopting does, from the desired model (stamped: its tags are what the stack's
/// resources carry) and what is live: the plan, and the live resources as they will be seen
/// once adopted (marked the stack's).
pub fn decide(
    registry: &Registry,
    desired: &Model,
    live: &[Live],
) -> Result<(AdoptPlan, Vec<Live>)> {
    let mut out = AdoptPlan {
        stack: desired.stack.clone(),
        ..AdoptPlan::default()
    };
    let mut marked = live.to_vec();
    let mut adopted: Vec<Address> = Vec::new();
    for l in marked.iter_mut() {
        let Some(want) = desired.get(l.address()) else {
            continue;
        };
        let same_name = if registry.case_insensitive(want.address.kind) {
            want.name.eq_ignore_ascii_case(&l.resource.name)
        } else {
            want.name == l.resource.name
        };
        // A kind whose name is a label (a host's `Name` tag) is matched by discovery instead
        // (the instance id the spec adopts): its name is renamed in place.
        let name_is_identity = registry
            .handler(want.address.kind)
            .map_or(true, |h| h.name_is_identity());
        if !same_name && name_is_identity {
            continue;
        }
        if l.ours {
            out.already_ours.push(l.address().to_string());
            continue;
        }
        let refuse = |owner: String| Refusal {
            address: l.address().to_string(),
            name: l.resource.name.clone(),
            owner,
        };
        if let Some(o) = owner(&l.resource.tags, &desired.stack) {
            out.refused.push(refuse(o));
        } else if registry.case_insensitive(want.address.kind) {
            // IAM: the stack's roles and profiles live under its path, which IAM cannot give an
            // existing entity; destroy and gc list them by that path.
            out.refused.push(refuse(
                "nobody, but an IAM entity is adopted only under the stack's path (/streamstack/…)"
                    .into(),
            ));
        } else {
            l.ours = true;
            adopted.push(l.address().clone());
        }
    }
    if !out.refused.is_empty() {
        return Ok((out, live.to_vec()));
    }
    let ours: Vec<Live> = marked.iter().filter(|l| l.ours).cloned().collect();
    let planned = plan::plan(registry, desired, &ours)?;
    let by_address: BTreeMap<String, &Live> = marked
        .iter()
        .filter(|l| l.ours)
        .map(|l| (l.address().to_string(), l))
        .collect();
    for c in &planned.changes {
        let is_adopted = adopted.iter().any(|a| a.to_string() == c.address);
        match c.action {
            Action::Create => out.missing.push(c.address.clone()),
            Action::Replace if is_adopted => out.replacements.push(Replacement {
                address: c.address.clone(),
                name: c.name.clone(),
                reason: c
                    .reason
                    .clone()
                    .unwrap_or_else(|| "a setting AWS cannot change in place".into()),
            }),
            _ => {}
        }
    }
    for address in &adopted {
        let (Some(want), Some(l)) = (desired.get(address), by_address.get(&address.to_string()))
        else {
            continue;
        };
        let change = planned
            .changes
            .iter()
            .find(|c| c.address == address.to_string() && c.action == Action::Update);
        let updates: Vec<AttrChange> = change
            .map(|c| {
                c.attributes
                    .iter()
                    .filter(|a| a.name != "tags")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let missing_dep = want
            .depends_on
            .iter()
            .find(|d| !by_address.contains_key(&d.to_string()));
        let replaced = out.replacements.iter().any(|r| r.address == c_str(address));
        let creates_inside = updates.iter().find(|u| {
            CREATES_INSIDE
                .iter()
                .any(|(k, a)| *k == address.kind.as_str() && *a == u.name)
        });
        let deferred = if replaced {
            Some("it is replaced at apply (--allow-replace)".to_string())
        } else if let Some(u) = creates_inside {
            Some(format!(
                "the settings wait for apply: setting {} creates something inside it",
                u.name
            ))
        } else {
            missing_dep
                .filter(|_| !updates.is_empty())
                .map(|d| format!("the settings wait for apply: they use {d}, which apply creates"))
        };
        out.adopt.push(Adoption {
            address: address.to_string(),
            name: l.resource.name.clone(),
            id: l.id.clone(),
            tags_added: added_tags(&want.tags, &l.resource.tags),
            updates,
            deferred,
            note: if address.kind == kinds::host::KIND {
                kinds::host::adopted_note(want, l)
            } else {
                None
            },
        });
    }
    Ok((out, marked))
}

fn c_str(a: &Address) -> String {
    a.to_string()
}

/// The desired tags a live resource lacks or has with another value.
fn added_tags(
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    desired
        .iter()
        .filter(|(k, v)| live.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The error that stops adopt before any write: refusals, and replacements without
/// `allow_replace`.
pub fn stop_reason(p: &AdoptPlan, allow_replace: bool) -> Option<Error> {
    if !p.refused.is_empty() {
        let lines: Vec<String> = p
            .refused
            .iter()
            .map(|r| format!("{} ({}) is owned by {}", r.address, r.name, r.owner))
            .collect();
        return Some(Error::Config(format!(
            "adopt refused, nothing was changed: {}",
            lines.join("; ")
        )));
    }
    if !p.replacements.is_empty() && !allow_replace {
        let lines: Vec<String> = p
            .replacements
            .iter()
            .map(|r| format!("{} ({}): {}", r.address, r.name, r.reason))
            .collect();
        return Some(Error::Config(format!(
            "adopting would replace a resource, so nothing was changed (pass --allow-replace to \
             adopt it anyway; apply then replaces it): {}",
            lines.join("; ")
        )));
    }
    None
}

/// The resource adopt brings `live` to: the desired one with the live tags kept beside the
/// stack's, and with the live settings when they wait for apply.
fn target(want: &Resource, live: &Live, a: &Adoption) -> Resource {
    let mut r = want.clone();
    for (k, v) in &live.resource.tags {
        if !k.starts_with("aws:") {
            r.tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if a.deferred.is_some() {
        r.props = live.resource.props.clone();
    }
    r
}

/// Adopts what `p` says, in the registry's order (what others use first), one resource at a
/// time: each is tagged as the stack's and changed in place by its kind's `update`. Returns
/// the addresses adopted; stops at the first error (what was adopted before it stays adopted,
/// and a second `adopt` continues).
pub async fn run(
    cx: &kinds::Cx,
    registry: &Registry<'_>,
    desired: &Model,
    p: &AdoptPlan,
    marked: &[Live],
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let order: Vec<_> = registry
        .handlers()
        .flat_map(|h| h.kinds().iter().copied())
        .collect();
    let mut todo: Vec<&Adoption> = p.adopt.iter().collect();
    todo.sort_by_key(|a| {
        order
            .iter()
            .position(|k| a.address.split('.').next() == Some(k.as_str()))
            .unwrap_or(usize::MAX)
    });
    for a in todo {
        let Some(l) = marked.iter().find(|l| l.address().to_string() == a.address) else {
            continue;
        };
        let Some(want) = desired.get(l.address()) else {
            continue;
        };
        let r = target(want, l, a);
        registry
            .handler(l.address().kind)?
            .update(cx, &r, l)
            .await?;
        done.push(a.address.clone());
    }
    Ok(done)
}

/// The adopt plan for people: per resource the tags added and the settings changed in place,
/// then what adopt leaves to apply and what stops it.
pub fn render_text(p: &AdoptPlan) -> String {
    let mut out = String::new();
    if !p.adopt.is_empty() {
        out.push_str(&format!(
            "streamstack will adopt these resources into stack {}:\n",
            p.stack
        ));
    }
    for a in &p.adopt {
        out.push_str(&format!("\n  ~ {} ({}, {})\n", a.address, a.name, a.id));
        for (k, v) in &a.tags_added {
            out.push_str(&format!("      + tag {k} = {v:?}\n"));
        }
        if let Some(note) = &a.note {
            out.push_str(&format!("      # {note}\n"));
        }
        match &a.deferred {
            Some(why) if !a.updates.is_empty() => {
                out.push_str(&format!("      settings unchanged now: {why}\n"));
            }
            _ => {}
        }
        for u in &a.updates {
            let verb = if a.deferred.is_some() {
                "at apply"
            } else {
                "in place"
            };
            out.push_str(&format!(
                "      ~ {}: {} -> {} ({verb})\n",
                u.name, u.before, u.after
            ));
        }
    }
    for a in &p.already_ours {
        out.push_str(&format!("\n  = {a}: already this stack's\n"));
    }
    if !p.missing.is_empty() {
        out.push_str("\nNot live, so not adopted (apply creates them):\n");
        for m in &p.missing {
            out.push_str(&format!("  + {m}\n"));
        }
    }
    for r in &p.replacements {
        out.push_str(&format!(
            "\n  -/+ {} ({}) would be replaced: {}\n",
            r.address, r.name, r.reason
        ));
    }
    for r in &p.refused {
        out.push_str(&format!(
            "\n  ! {} ({}) is refused: owned by {}\n",
            r.address, r.name, r.owner
        ));
    }
    let updates: usize = p
        .adopt
        .iter()
        .filter(|a| a.deferred.is_none())
        .map(|a| a.updates.len())
        .sum();
    out.push_str(&format!(
        "\nAdopt: {} to tag, {updates} setting(s) to change in place, nothing created, deleted or replaced.\n",
        p.adopt.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::fake::{self, Cloud, FakeKind, GADGET, STACK, THING, WIDGET};
    use crate::model::Props;
    use serde_json::json;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn live(r: &Resource, t: BTreeMap<String, String>, props: serde_json::Value) -> Live {
        Live::new(
            format!("id-{}", r.name),
            crate::kinds::owned_by(&t, STACK),
            r.address.clone(),
            r.name.clone(),
            t,
            Props::new(props),
        )
    }

    /// THING replaces on `mode`; GADGET depends on THING and WIDGET.
    fn kinds(cloud: &std::sync::Arc<Cloud>) -> [FakeKind; 3] {
        [
            FakeKind::new(cloud, &[THING]).replace_on(&["mode"]),
            FakeKind::new(cloud, &[GADGET]),
            FakeKind::new(cloud, &[WIDGET]),
        ]
    }

    #[test]
    fn untagged_same_names_are_adopted_with_tags_and_in_place_updates() {
        let cloud = Cloud::new();
        let [a, b, c] = kinds(&cloud);
        let list: [&dyn kinds::ResourceKind; 3] = [&a, &b, &c];
        let reg = Registry(&list);
        let thing = fake::resource(THING, "t", json!({"mode": "od", "hours": 48}));
        let widget = fake::resource(WIDGET, "w", json!({}));
        let gadget = fake::depending(
            fake::resource(GADGET, "g", json!({"uses": "fake-w"})),
            &[&thing, &widget],
        );
        let desired = fake::model([thing.clone(), gadget.clone(), widget.clone()]);
        let lives = vec![
            live(&gadget, BTreeMap::new(), json!({"uses": "console"})),
            live(
                &thing,
                tags(&[("team", "a")]),
                json!({"mode": "od", "hours": 24}),
            ),
        ];
        let (p, marked) = decide(&reg, &desired, &lives).unwrap();
        assert!(p.refused.is_empty() && p.replacements.is_empty(), "{p:?}");
        assert_eq!(p.missing, vec!["widget.w".to_string()]);
        assert_eq!(p.adopt.len(), 2);
        let th = p.adopt.iter().find(|a| a.address == "thing.t").unwrap();
        assert_eq!(
            th.tags_added.get(TAG_STACK).map(String::as_str),
            Some(STACK)
        );
        assert_eq!(th.updates.len(), 1, "{th:?}");
        assert_eq!(th.updates[0].name, "hours");
        assert_eq!(th.deferred, None);
        let ga = p.adopt.iter().find(|a| a.address == "gadget.g").unwrap();
        assert!(
            ga.deferred.as_deref().unwrap().contains("widget.w"),
            "{ga:?}"
        );
        assert!(marked.iter().all(|l| l.ours));
        assert!(stop_reason(&p, false).is_none());
        // The live user tag is kept beside the stack's; deferred settings stay as live.
        let t = target(&thing, &marked[1], th);
        assert_eq!(t.tags.get("team").map(String::as_str), Some("a"));
        assert_eq!(t.props, thing.props);
        let t = target(&gadget, &marked[0], ga);
        assert_eq!(t.props, marked[0].resource.props);
        assert_eq!(t.tags.get(TAG_STACK).map(String::as_str), Some(STACK));
    }

    #[test]
    fn another_stacks_or_cloudformations_resource_is_refused() {
        let cloud = Cloud::new();
        let [a, b, c] = kinds(&cloud);
        let list: [&dyn kinds::ResourceKind; 3] = [&a, &b, &c];
        let reg = Registry(&list);
        let thing = fake::resource(THING, "t", json!({"mode": "od"}));
        let widget = fake::resource(WIDGET, "w", json!({}));
        let desired = fake::model([thing.clone(), widget.clone()]);
        let lives = vec![
            live(
                &thing,
                tags(&[(TAG_STACK, "other-lab")]),
                json!({"mode": "od"}),
            ),
            live(
                &widget,
                tags(&[("aws:cloudformation:stack-name", "cfn-lab")]),
                json!({}),
            ),
        ];
        let (p, marked) = decide(&reg, &desired, &lives).unwrap();
        assert!(p.adopt.is_empty());
        assert!(marked.iter().all(|l| !l.ours));
        let owners: Vec<&str> = p.refused.iter().map(|r| r.owner.as_str()).collect();
        assert_eq!(
            owners,
            vec!["stack other-lab", "CloudFormation stack cfn-lab"]
        );
        let e = stop_reason(&p, true).unwrap().to_string();
        assert!(
            e.contains("thing.t (fake-t) is owned by stack other-lab"),
            "{e}"
        );
    }

    #[test]
    fn a_replacement_stops_adopt_unless_allowed() {
        let cloud = Cloud::new();
        let [a, b, c] = kinds(&cloud);
        let list: [&dyn kinds::ResourceKind; 3] = [&a, &b, &c];
        let reg = Registry(&list);
        let thing = fake::resource(THING, "t", json!({"mode": "od"}));
        let desired = fake::model([thing.clone()]);
        let lives = vec![live(&thing, BTreeMap::new(), json!({"mode": "prov"}))];
        let (p, _) = decide(&reg, &desired, &lives).unwrap();
        assert_eq!(p.replacements.len(), 1, "{p:?}");
        let e = stop_reason(&p, false).unwrap().to_string();
        assert!(
            e.contains("--allow-replace") && e.contains("thing.t"),
            "{e}"
        );
        assert!(stop_reason(&p, true).is_none());
        let deferred = p.adopt[0].deferred.as_deref().unwrap();
        assert!(deferred.contains("replaced at apply"));
    }

    /// A log group whose log stream is missing: creating it would be a create call, so adopt
    /// only tags the group and leaves its settings to apply.
    #[test]
    fn a_change_that_creates_inside_a_resource_waits_for_apply() {
        const LOG_GROUP: crate::model::Kind = crate::model::Kind::new("log_group");
        let cloud = Cloud::new();
        let groups = FakeKind::new(&cloud, &[LOG_GROUP]);
        let list: [&dyn kinds::ResourceKind; 1] = [&groups];
        let reg = Registry(&list);
        let group = fake::resource(LOG_GROUP, "d", json!({"log_stream": "DestinationDelivery"}));
        let desired = fake::model([group.clone()]);
        let lives = vec![live(&group, BTreeMap::new(), json!({"log_stream": ""}))];
        let (p, marked) = decide(&reg, &desired, &lives).unwrap();
        let a = &p.adopt[0];
        assert!(
            a.deferred.as_deref().unwrap().contains("log_stream"),
            "{a:?}"
        );
        assert_eq!(
            target(&group, &marked[0], a).props,
            marked[0].resource.props
        );
        assert!(render_text(&p).contains("0 setting(s) to change in place"));
    }

    /// A kind whose name is a label (a host's `Name` tag): discovery puts the candidate at the
    /// desired address (the instance id the spec adopts), whatever its name. The plan refuses
    /// it until adopted; adopt takes it with a rename in place, or refuses another stack's.
    #[test]
    fn a_label_named_candidate_is_adopted_at_its_address_and_refused_by_plan() {
        let cloud = Cloud::new();
        let things = FakeKind::new(&cloud, &[THING]).renames_in_place();
        let list: [&dyn kinds::ResourceKind; 1] = [&things];
        let reg = Registry(&list);
        let want = fake::resource(THING, "agent", json!({"mode": "od"}));
        let desired = fake::model([want.clone()]);
        let mut console = live(&want, tags(&[("Name", "x")]), json!({"mode": "od"}));
        console.resource.name = "kinesis-agent".into();
        let e = plan::plan(&reg, &desired, std::slice::from_ref(&console)).unwrap_err();
        assert!(matches!(e, Error::NotOurs(_)), "{e}");
        let (p, marked) = decide(&reg, &desired, std::slice::from_ref(&console)).unwrap();
        assert!(p.refused.is_empty() && p.replacements.is_empty(), "{p:?}");
        assert_eq!(p.adopt.len(), 1, "{p:?}");
        assert!(marked[0].ours);
        assert_eq!(p.adopt[0].updates[0].name, "name", "{p:?}");
        // Another stack's instance at that address: refused.
        console.resource.tags = tags(&[(TAG_STACK, "other-lab")]);
        let (p, _) = decide(&reg, &desired, &[console]).unwrap();
        assert_eq!(p.refused.len(), 1, "{p:?}");
        assert!(p.adopt.is_empty());
    }

    #[test]
    fn owners_are_read_from_tags() {
        assert_eq!(owner(&tags(&[(TAG_STACK, "lab")]), "lab"), None);
        assert_eq!(owner(&tags(&[("team", "x")]), "lab"), None);
        assert_eq!(
            owner(&tags(&[("aws:cloudformation:logical-id", "X")]), "lab"),
            Some("CloudFormation".into())
        );
    }
}
