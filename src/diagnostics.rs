//! One diagnostic type for everything the spec layer reports, and its rendering.
//!
//! The format is the contract in docs/cli.md#diagnostics:
//! `FILE:LINE:COL: field.path: message (expected ...)`.
//! Lines and columns are 1-based, as editors show them.

use std::fmt;

/// A position in a source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// Whether a diagnostic stops the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub pos: Pos,
    /// Dotted field path such as `hosts.collector.flows[0].to`; empty for the document itself.
    pub path: String,
    pub message: String,
    /// What was expected, rendered in parentheses after the message.
    pub expected: Option<String>,
    /// A suggestion of what to do, printed on its own line after the diagnostic (`  help: ...`).
    pub help: Option<String>,
    /// Context, each printed on its own line before the help (`  note: ...`): where a value
    /// written in an anchor was merged (`<<: *x`), so that one error per merging site can be
    /// told apart.
    pub notes: Vec<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.col)?;
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(expected) = &self.expected {
            write!(f, " (expected {expected})")?;
        }
        for note in &self.notes {
            write!(f, "\n  note: {note}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    /// The first line of the diagnostic alone: `FILE:LINE:COL: field.path: message (expected ...)`.
    pub fn headline(&self) -> String {
        let mut s = self.to_string();
        if let Some(i) = s.find('\n') {
            s.truncate(i);
        }
        s
    }
}

/// All diagnostics of one load, sorted by position when rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
    /// Sorted by file, line, column, then path; duplicates removed.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut v: Vec<&Diagnostic> = self.0.iter().collect();
        v.sort_by(|a, b| {
            (&a.file, a.pos, a.severity, &a.path, &a.message)
                .cmp(&(&b.file, b.pos, b.severity, &b.path, &b.message))
        });
        v.dedup();
        v
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.sorted() {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Diagnostics as one JSON object: `{"ok": false, "diagnostics": [{severity, file, line, col,
/// path, message, expected, help, notes}]}` (`plan --json` and `validate --format json` on a bad
/// spec); `notes` is a list, empty when there is none.
pub fn to_json(d: &Diagnostics) -> serde_json::Value {
    let list: Vec<serde_json::Value> = d
        .sorted()
        .into_iter()
        .map(|x| {
            serde_json::json!({
                "severity": match x.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "file": x.file,
                "line": x.pos.line,
                "col": x.pos.col,
                "path": x.path,
                "message": x.message,
                "expected": x.expected,
                "help": x.help,
                "notes": x.notes,
            })
        })
        .collect();
    serde_json::json!({"ok": !d.has_errors(), "diagnostics": list})
}

/// The diagnostic with its source line, in the style of rustc and just: the unchanged first line,
/// then the line of `source` it points at with a caret under the span, then the notes and the
/// help (if any).
/// `color` styles the snippet for a terminal. Without a source line to show (an empty file, a
/// position past the end), only the first line, the notes and the help.
pub fn render_with_snippet(d: &Diagnostic, source: &str, color: bool) -> String {
    use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

    let headline = d.headline();
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut elements: Vec<annotate_snippets::Element<'_>> = Vec::new();
    // A top-level field that is not written where the diagnostic points (a missing `stack`, no
    // `region` at all) has no span to show.
    let absent = !d.path.is_empty()
        && !d.path.contains(['.', '['])
        && !source
            .lines()
            .nth(d.pos.line.saturating_sub(1))
            .is_some_and(|l| l.trim_start().starts_with(d.path.as_str()));
    if let Some(line) = source
        .lines()
        .nth(d.pos.line.saturating_sub(1))
        .filter(|_| d.pos.line >= 1 && !absent)
    {
        // No label under the caret: the first line already says what is wrong and expected.
        let annotation = AnnotationKind::Primary.span(span_at(line, d.pos.col));
        elements.push(
            Snippet::source(line)
                .line_start(d.pos.line)
                .fold(false)
                .annotation(annotation)
                .into(),
        );
    }
    for note in &d.notes {
        elements.push(Level::NOTE.message(note.as_str()).into());
    }
    if let Some(help) = &d.help {
        elements.push(Level::HELP.message(help.as_str()).into());
    }
    if elements.is_empty() {
        return headline;
    }
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let report = [Group::with_level(level).elements(elements)];
    let body = renderer.render(&report);
    format!("{headline}\n{}", body.trim_end_matches('\n'))
}

/// The byte range under the caret: the token that starts at the 1-based character column `col`
/// of `line` (a quoted string to its closing quote, a flow collection to its closing bracket on
/// the same line, a key or plain scalar to its end), at least one character wide when the line
/// has one there.
fn span_at(line: &str, col: usize) -> std::ops::Range<usize> {
    let start = line
        .char_indices()
        .nth(col.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    let rest = &line[start..];
    let Some(first) = rest.chars().next() else {
        return start..start;
    };
    let len = match first {
        c if c.is_whitespace() => None,
        '!' if rest.starts_with("!{") => rest.find('}').map(|i| i + 1),
        '"' | '\'' => {
            let mut escaped = false;
            rest.char_indices()
                .skip(1)
                .find(|&(_, c)| {
                    let end = c == first && !escaped;
                    escaped = first == '"' && c == '\\' && !escaped;
                    end
                })
                .map(|(i, c)| i + c.len_utf8())
        }
        '{' | '[' => {
            let close = if first == '{' { '}' } else { ']' };
            let mut depth = 0usize;
            rest.char_indices()
                .find(|&(_, c)| {
                    if c == first {
                        depth += 1;
                    } else if c == close {
                        depth = depth.saturating_sub(1);
                        return depth == 0;
                    }
                    false
                })
                .map(|(i, c)| i + c.len_utf8())
        }
        _ => {
            // A plain scalar or key ends before `: `, ` #`, a flow indicator, or the line's end.
            let bytes = rest.as_bytes();
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                let next = bytes.get(i + 1).copied();
                let ends = (c == ':' && next.is_none_or(|b| b == b' '))
                    || (c == '#' && i > 0 && bytes.get(i - 1) == Some(&b' '))
                    || (i > 0 && matches!(c, ',' | '}' | ']'));
                if ends {
                    end = i;
                    break;
                }
            }
            Some(rest[..end].trim_end().len())
        }
    };
    let len = len.unwrap_or(first.len_utf8()).max(first.len_utf8());
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, col: usize, help: Option<&str>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: "s.yaml".into(),
            pos: Pos { line, col },
            path: "streams.weather.mode".into(),
            message: "unknown mode".into(),
            expected: Some("on_demand or provisioned".into()),
            help: help.map(str::to_string),
            notes: Vec::new(),
        }
    }

    #[test]
    fn spans_cover_the_token_at_the_column() {
        let line = r#"  a: "x\"y" # c"#;
        assert_eq!(&line[span_at(line, 6)], r#""x\"y""#);
        assert_eq!(&line[span_at(line, 3)], "a");
        let line = "    instance_type: {{ vars.x }} # t";
        assert_eq!(&line[span_at(line, 20)], "{{ vars.x }}");
        let line = "    mode: on demand  # comment";
        assert_eq!(&line[span_at(line, 11)], "on demand");
        let line = "  - { files: /a/*.log, to: w }";
        assert_eq!(&line[span_at(line, 14)], "/a/*.log");
        assert_eq!(span_at("ab", 9), 2..2);
        assert_eq!(span_at("\t\tmode: x", 2), 1..2);
        assert_eq!(span_at("é: x", 4), 4..5);
    }

    #[test]
    fn the_snippet_keeps_the_first_line_and_puts_a_caret_under_the_span() {
        let source = "version: 1\nstreams:\n  weather:\n    mode: on-demand\n";
        let out = render_with_snippet(&diag(4, 11, Some("write on_demand")), source, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], diag(4, 11, None).to_string());
        let src = lines
            .iter()
            .position(|l| l.ends_with("    mode: on-demand"))
            .unwrap_or_else(|| panic!("no source line in:\n{out}"));
        assert!(lines[src].trim_start().starts_with("4 |"), "{out}");
        let caret = lines[src + 1];
        let text_at = lines[src].find("    mode").unwrap_or(0);
        assert_eq!(caret.find('^'), Some(text_at + 10), "{out}");
        assert_eq!(caret.trim_start_matches([' ', '|']), "^^^^^^^^^", "{out}");
        assert!(out.ends_with("help: write on_demand"), "{out}");
        // Notes come before the help, in the first line's text form and under the snippet.
        let mut merged = diag(4, 11, Some("write on_demand"));
        merged.notes = vec!["merged into streams.b at line 7 (<<: *stream)".into()];
        assert_eq!(
            merged.to_string().lines().skip(1).collect::<Vec<_>>(),
            [
                "  note: merged into streams.b at line 7 (<<: *stream)",
                "  help: write on_demand"
            ]
        );
        let out = render_with_snippet(&merged, source, false);
        let note = out.find("note: merged into streams.b at line 7 (<<: *stream)");
        let help = out.find("help: write on_demand");
        assert!(note.is_some() && note < help, "{out}");
        assert!(out.contains("4 |"), "{out}");
        // A top-level field that is not in the file: no snippet.
        let mut missing = diag(1, 1, None);
        missing.path = "region".into();
        assert_eq!(
            render_with_snippet(&missing, source, false),
            missing.to_string()
        );
        missing.path = "version".into();
        assert!(render_with_snippet(&missing, source, false).contains("1 | version: 1"));
        // Past the end of the file: the first line only.
        assert_eq!(
            render_with_snippet(&diag(9, 1, None), source, false),
            diag(9, 1, None).to_string()
        );
    }
}
