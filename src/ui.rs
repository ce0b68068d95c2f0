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

/// Beyond this many diff lines a change is summarised (by hash) instead of shown.
const DIFF_MAX_LINES: usize = 200;

/// A value as the lines a reviewer reads: documents pretty-printed, scripts as they are.
/// `None` for values that fit on one line.
fn as_lines(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\n') => Some(s.clone()),
        Value::Object(_) | Value::Array(_) if v.to_string().chars().count() > 72 => {
            serde_json::to_string_pretty(v).ok().map(|t| t + "\n")
        }
        _ => None,
    }
}

/// The line diff of two long values (policy documents, user-data), `-`/`+` marked; `None` when
/// neither is long, or the diff is too big to read.
pub fn line_diff(before: &Value, after: &Value) -> Option<String> {
    let (b, a) = match (as_lines(before), as_lines(after)) {
        (None, None) => return None,
        (b, a) => (
            b.unwrap_or_else(|| show_value(before, true) + "\n"),
            a.unwrap_or_else(|| show_value(after, true) + "\n"),
        ),
    };
    let diff = similar::TextDiff::from_lines(&b, &a);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .to_string()
        .lines()
        .filter(|l| !l.starts_with("---") && !l.starts_with("+++"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    (text.lines().count() <= DIFF_MAX_LINES).then_some(text)
}

/// One attribute's before → after: one line, or a line diff for documents and scripts.
fn change_line(
    name: &str,
    before: &Value,
    after: &Value,
    forces: &str,
    style: Style,
    out: &mut String,
) {
    if !before.is_null() && !after.is_null() {
        if let Some(diff) = line_diff(before, after) {
            let _ = writeln!(out, "      {name}{forces}");
            for l in diff.lines() {
                let painted = match l.chars().next() {
                    Some('-') => style.paint("31", l),
                    Some('+') => style.paint("32", l),
                    Some('@') => style.paint("2", l),
                    _ => l.to_string(),
                };
                let _ = writeln!(out, "        {painted}");
            }
            return;
        }
    }
    let _ = writeln!(
        out,
        "      {:<22} {} → {}{forces}",
        name,
        show_value(before, style.verbose),
        show_value(after, style.verbose)
    );
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
                    change_line(&format!("{}.{k}", a.name), bv, av, &forces, style, out);
                }
            }
        }
        (_, before, after) => change_line(&a.name, before, after, &forces, style, out),
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

/// GitHub's limit on a comment's length.
pub const MARKDOWN_MAX: usize = 65_536;

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn marked(text: &str, sign: char) -> String {
    text.lines().map(|l| format!("{sign}{l}\n")).collect()
}

/// A plan as Markdown for a pull-request comment: a summary line, deletes and replacements
/// called out first, a table of changes, and `<details>` with each change's attributes (policy
/// documents and scripts as ```diff blocks). Stays under GitHub's comment limit.
pub fn render_plan_markdown(plan: &Plan) -> String {
    let mut out = format!(
        "### streamstack plan: `{}` in `{}` (account `{}`)\n\n",
        plan.stack, plan.region, plan.account_id
    );
    if !plan.has_changes() {
        out.push_str("**No changes.** The live stack matches the spec.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "**Plan: {} to add, {} to change, {} to destroy.**\n",
        plan.summary.add, plan.summary.change, plan.summary.destroy
    );
    out.push_str(&markdown_risky(plan));
    out.push_str("| | Address | Action | Name | Reason |\n|---|---|---|---|---|\n");
    for c in &plan.changes {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | `{}` | {} |",
            c.action.symbol(),
            c.address,
            c.action.name(),
            md_escape(&c.name),
            c.reason.as_deref().map(md_escape).unwrap_or_default()
        );
    }
    out.push('\n');
    let details: String = plan.changes.iter().filter_map(markdown_details).collect();
    let note = "\n> [!NOTE]\n> The plan is longer than a comment holds: the details above are cut. Run `streamstack plan` for all of it.\n";
    if out.len() + details.len() > MARKDOWN_MAX {
        let room = MARKDOWN_MAX.saturating_sub(out.len() + note.len() + 64);
        // Cut at a whole <details> block so no tag is left open.
        let mut kept = 0;
        for block in details.split_inclusive("</details>\n") {
            if kept + block.len() > room {
                break;
            }
            kept += block.len();
        }
        out.push_str(&details[..kept]);
        out.push_str(note);
    } else {
        out.push_str(&details);
    }
    out
}

/// The deletes and replacements, called out in a warning box (empty when there are none).
fn markdown_risky(plan: &Plan) -> String {
    let mut out = String::new();
    let risky = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace));
    for c in risky {
        if out.is_empty() {
            out.push_str("> [!WARNING]\n> **Deletes and replacements**\n");
        }
        let reason = c.reason.as_deref().map(|r| format!(": {}", md_escape(r)));
        let _ = writeln!(
            out,
            "> - `{}` **{}** (`{}`){}",
            c.action.symbol(),
            c.address,
            c.name,
            reason.unwrap_or_default()
        );
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The attribute names and values a change shows: an object attribute that is updated, field by
/// field (`buffering.size_mb`); any other, whole.
fn attribute_pairs<'a>(c: &Change, a: &'a AttrChange) -> Vec<(String, &'a Value, &'a Value)> {
    match (&a.before, &a.after) {
        (Value::Object(b), Value::Object(af))
            if c.action == Action::Update || c.action == Action::Replace =>
        {
            let mut keys: Vec<&String> = b.keys().chain(af.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .map(|k| {
                    let (before, after) = (b.get(k), af.get(k));
                    let name = format!("{}.{k}", a.name);
                    (
                        name,
                        before.unwrap_or(&Value::Null),
                        after.unwrap_or(&Value::Null),
                    )
                })
                .filter(|(_, b, a)| b != a)
                .collect()
        }
        (b, af) => vec![(a.name.clone(), b, af)],
    }
}

/// One change's `<details>` block: a table of short values and a diff of each long one.
fn markdown_details(c: &Change) -> Option<String> {
    if c.attributes.is_empty() {
        return None;
    }
    let mut rows = String::new();
    let mut diffs = String::new();
    for a in &c.attributes {
        for (name, b, af) in attribute_pairs(c, a) {
            let diff = match (b.is_null(), af.is_null()) {
                // A create or delete: the whole document, as added or removed lines.
                (true, false) => as_lines(af).map(|t| marked(&t, '+')),
                (false, true) => as_lines(b).map(|t| marked(&t, '-')),
                _ => line_diff(b, af),
            };
            if let Some(d) = diff {
                let _ = write!(diffs, "`{name}`\n```diff\n{d}```\n");
                continue;
            }
            let forces = if a.forces_replacement {
                " (forces replacement)"
            } else {
                ""
            };
            let _ = writeln!(
                rows,
                "| `{name}`{forces} | `{}` | `{}` |",
                md_escape(&show_value(b, false)),
                md_escape(&show_value(af, false))
            );
        }
    }
    let mut block = format!(
        "<details><summary><code>{} {}</code>: {} attribute(s)</summary>\n\n",
        c.action.symbol(),
        c.address,
        c.attributes.len()
    );
    if !rows.is_empty() {
        block.push_str("| Attribute | Before | After |\n|---|---|---|\n");
        block.push_str(&rows);
        block.push('\n');
    }
    block.push_str(&diffs);
    block.push_str("\n</details>\n");
    Some(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_the_plan_json_spelling() {
        use Action::*;
        for a in [NoOp, Create, Update, Replace, Delete] {
            assert_eq!(serde_json::to_value(a).ok(), Some(Value::from(a.name())));
        }
    }

    #[test]
    fn markdown_calls_out_deletes_and_shows_updated_fields() {
        let change = |address: &str, action, attributes| Change {
            address: address.into(),
            action,
            name: format!("lab-{address}"),
            reason: (action == Action::Delete).then(|| "no longer in the spec".into()),
            live_id: None,
            attributes,
        };
        let buffering = AttrChange {
            name: "buffering".into(),
            before: serde_json::json!({"size_mb": 5, "interval_seconds": 60}),
            after: serde_json::json!({"size_mb": 64, "interval_seconds": 60}),
            forces_replacement: false,
        };
        let changes = vec![
            change("delivery.d", Action::Update, vec![buffering]),
            change("stream.old", Action::Delete, vec![]),
        ];
        let plan = Plan {
            format_version: "1".into(),
            stack: "lab".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            created_at: None,
            summary: crate::plan::Summary::of(&changes),
            changes,
        };
        let md = render_plan_markdown(&plan);
        assert!(
            md.contains("**Plan: 0 to add, 1 to change, 1 to destroy.**"),
            "{md}"
        );
        assert!(md.contains("> - `-` **stream.old** (`lab-stream.old`): no longer in the spec"));
        assert!(
            md.contains("| `~` | `delivery.d` | update | `lab-delivery.d` |  |"),
            "{md}"
        );
        // Only the field that changed, in the delivery's details.
        assert!(md.contains("| `buffering.size_mb` | `5` | `64` |"), "{md}");
        assert!(!md.contains("buffering.interval_seconds"), "{md}");
        // No details block for a change without attributes.
        assert_eq!(md.matches("<details>").count(), 1, "{md}");
    }
}
