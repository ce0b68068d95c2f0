//! `streamstack validate SPEC... [--format human|json|github]`

use streamstack::diagnostics::{Diagnostic, Diagnostics, Severity};

use super::{load_options, print_diagnostics, stderr_color, stderr_snippets, Outcome};
use streamstack::cli::{Global, ValidateArgs, ValidateFormat};

/// A GitHub Actions workflow command: the error shows on the pull request's diff at its line.
fn github_line(d: &Diagnostic) -> String {
    let escape_data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_prop = |s: &str| escape_data(s).replace(':', "%3A").replace(',', "%2C");
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut message = if d.path.is_empty() {
        d.message.clone()
    } else {
        format!("{}: {}", d.path, d.message)
    };
    if let Some(e) = &d.expected {
        message.push_str(&format!(" (expected {e})"));
    }
    for n in &d.notes {
        message.push_str(&format!("\nnote: {n}"));
    }
    if let Some(h) = &d.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    format!(
        "::{level} file={},line={},col={},title=streamstack::{}",
        escape_prop(&d.file),
        d.pos.line,
        d.pos.col,
        escape_data(&message)
    )
}

pub fn run(g: &Global, a: &ValidateArgs) -> Outcome {
    let (specs, format) = (&a.specs, a.format);
    let opts = load_options(g);
    let color = stderr_color(g);
    let mut failed = 0;
    let mut all = Vec::new();
    for path in specs {
        let (ok, diags, summary) = match streamstack::derive::load_file(path, &opts) {
            Ok(v) => {
                let summary = format!(
                    "{}: ok: stack {}, {} resources",
                    path.display(),
                    v.spec.stack,
                    v.model.resources.len()
                );
                (true, v.warnings, summary)
            }
            Err(d) => {
                let n = d.errors().count();
                let summary = format!(
                    "{}: {n} error{}",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                );
                (false, d, summary)
            }
        };
        if !ok {
            failed += 1;
        }
        match format {
            ValidateFormat::Auto | ValidateFormat::Human => {
                let snippets = format == ValidateFormat::Human || stderr_snippets();
                print_diagnostics(&diags, color, snippets);
                if ok {
                    println!("{summary}");
                } else {
                    eprintln!("{summary}");
                }
            }
            ValidateFormat::Github => {
                for d in diags.sorted() {
                    println!("{}", github_line(d));
                }
                eprintln!("{summary}");
            }
            ValidateFormat::Json => {
                let mut one = streamstack::diagnostics::to_json(&diags);
                one["file"] = serde_json::json!(path.display().to_string());
                one["ok"] = serde_json::json!(ok);
                all.push(one);
            }
        }
    }
    if format == ValidateFormat::Json {
        println!("{}", serde_json::json!({"ok": failed == 0, "files": all}));
    }
    if failed > 0 {
        // Already printed; report only the exit status.
        return Err(super::Failure::Spec(Diagnostics::default()));
    }
    Ok(0)
}
