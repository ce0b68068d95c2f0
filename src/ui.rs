//! Human output of plans and events. Colours only when asked for (the caller decides: a TTY,
//! no NO_COLOR, no --no-color). JSON forms are plain serde of the same values.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::events::Event;
use crate::plan::{Action, AttrChange, Change, Plan};

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub verbose: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn action_color(a: Action) -> &'static str {
    match a {
        Action::Create => "32",
        Action::Update => "33",
        Action::Replace => "35",
        Action::Delete => "31",
        Action::NoOp => "0",
    }
}

fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// One value, short enough for a plan line (full with `verbose`).
pub fn show_value(v: &Value, verbose: bool) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) if !verbose && (s.contains('\n') || s.chars().count() > 160) => {
            format!("<{} lines, sha256:{}>", s.lines().count(), short_hash(s))
        }
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) | Value::Array(_) => {
            let compact = v.to_string();
            if verbose || compact.chars().count() <= 72 {
                compact
            } else {
                format!(
                    "<{} chars of JSON, sha256:{}>",
                    compact.len(),
                    short_hash(&compact)
                )
            }
        }
        other => other.to_string(),
    }
}

fn attr_lines(a: &AttrChange, action: Action, style: Style, out: &mut String) {
    let forces = if a.forces_replacement {
        style.paint("35", "  # forces replacement")
    } else {
        String::new()
    };
    match (action, &a.before, &a.after) {
        (Action::Create, _, after) => {
            if !after.is_null() {
                let _ = writeln!(
                    out,
                    "      {:<22} {}",
                    a.name,
                    show_value(after, style.verbose)
                );
            }
        }
        (Action::Delete, _, _) => {}
        // Maps (tags, inline policies): show the keys that differ.
        (_, Value::Object(b), Value::Object(af)) => {
            let mut keys: Vec<&String> = b.keys().chain(af.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (bv, av) = (
                    b.get(k).unwrap_or(&Value::Null),
                    af.get(k).unwrap_or(&Value::Null),
                );
                if bv != av {
                    let _ = writeln!(
                        out,
                        "      {:<22} {} → {}{forces}",
                        format!("{}.{k}", a.name),
                        show_value(bv, style.verbose),
                        show_value(av, style.verbose)
                    );
                }
            }
        }
        (_, before, after) => {
            let _ = writeln!(
                out,
                "      {:<22} {} → {}{forces}",
                a.name,
                show_value(before, style.verbose),
                show_value(after, style.verbose)
            );
        }
    }
}

fn change_block(c: &Change, style: Style, out: &mut String) {
    let head = format!("{:>3} {}", c.action.symbol(), c.address);
    let id = c
        .live_id
        .as_deref()
        .map(|i| format!(" [{i}]"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {} ({}){id}",
        style.paint(action_color(c.action), &head),
        c.name
    );
    if let Some(r) = &c.reason {
        let _ = writeln!(out, "      {}", style.paint("2", &format!("# {r}")));
    }
    for a in &c.attributes {
        attr_lines(a, c.action, style, out);
    }
}

/// The human form of a plan, ending with the summary line.
pub fn render_plan(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "No changes. Stack {} in {} (account {}) matches the spec.",
            plan.stack, plan.region, plan.account_id
        );
        return out;
    }
    let _ = writeln!(
        out,
        "Stack {} in {} (account {}): streamstack will perform these actions:\n",
        plan.stack, plan.region, plan.account_id
    );
    for c in &plan.changes {
        change_block(c, style, &mut out);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Plan: {} to add, {} to change, {} to destroy.",
        plan.summary.add, plan.summary.change, plan.summary.destroy
    );
    out
}

/// One line for an event.
pub fn render_event(e: &Event, style: Style) -> String {
    let secs = |d: &std::time::Duration| format!("{}s", d.as_secs());
    match e {
        Event::Start { address, action } => {
            let verb = match action.as_str() {
                "create" => "Creating...",
                "update" => "Modifying...",
                "delete" => "Destroying...",
                other => other,
            };
            format!("{address}: {verb}")
        }
        Event::Progress {
            address,
            waiting_for,
            elapsed,
        } => {
            format!(
                "{address}: Still working... [{} elapsed, waiting for {waiting_for}]",
                secs(elapsed)
            )
        }
        Event::Retry {
            address,
            error,
            elapsed,
        } => {
            format!(
                "{address}: retrying [{} elapsed] after: {error}",
                secs(elapsed)
            )
        }
        Event::Done {
            address,
            action,
            elapsed,
        } => {
            let what = match action.as_str() {
                "create" => "Creation",
                "update" => "Modifications",
                "delete" => "Destruction",
                _ => "Operation",
            };
            style.paint(
                "32",
                &format!("{address}: {what} complete after {}", secs(elapsed)),
            )
        }
        Event::Failed {
            address,
            action,
            error,
        } => style.paint("31", &format!("{address}: {action} failed: {error}")),
        Event::Skipped { address, because } => style.paint(
            "33",
            &format!("{address}: skipped because {because} did not complete"),
        ),
    }
}

/// The human form of a `check` report: one line per hop, the first broken one with its hint.
pub fn render_check(r: &crate::check::CheckReport, style: Style) -> String {
    let mut out = String::new();
    if !r.missing.is_empty() {
        let _ = writeln!(
            out,
            "{} stack {} is not applied: {} of its resources are missing:",
            style.paint("31", "✗"),
            r.stack,
            r.missing.len()
        );
        for m in &r.missing {
            let _ = writeln!(out, "    {m}");
        }
        let _ = writeln!(out, "Run streamstack apply first.");
        return out;
    }
    if let Some(id) = &r.run_id {
        let _ = writeln!(out, "test records: run id {id}");
    }
    for h in &r.hops {
        let mark = if h.ok {
            style.paint("32", "✓")
        } else {
            style.paint("31", "✗")
        };
        let _ = writeln!(out, "{mark} {:<28} {}", h.address, h.summary);
        if r.first_broken.as_deref() == Some(h.address.as_str()) {
            if let Some(hint) = &h.hint {
                let _ = writeln!(out, "    {}", style.paint("33", &format!("hint: {hint}")));
            }
        }
    }
    match &r.first_broken {
        None => {
            let _ = writeln!(out, "\nEvery hop passes: data flows from the hosts to S3.");
        }
        Some(a) => {
            let _ = writeln!(out, "\nThe first broken hop is {a}.");
        }
    }
    out
}
