//! One diagnostic type for everything the spec layer reports, and its rendering.
//!
//! The format is the contract from SPEC.md: `FILE:LINE:COL: field.path: message (expected ...)`.
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
        Ok(())
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
/// path, message, expected}]}` (`plan --json` and `validate --format json` on a bad spec).
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
            })
        })
        .collect();
    serde_json::json!({"ok": !d.has_errors(), "diagnostics": list})
}
