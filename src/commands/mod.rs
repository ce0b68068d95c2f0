//! One thin file per command: glue between the CLI and the library, no AWS or spec logic.

pub mod render;
pub mod schema;
pub mod validate;

use std::io::IsTerminal;

use streamstack::diagnostics::Diagnostics;
use streamstack::spec::LoadOptions;

use crate::cli::Global;

/// What a command failed with; `main` prints it and maps it to exit code 1.
#[derive(Debug)]
pub enum Failure {
    /// Spec diagnostics, already complete.
    Spec(Diagnostics),
    /// Anything else, one message.
    Message(String),
}

pub type Outcome = Result<u8, Failure>;

/// Loading options from the global flags and the environment (offline).
pub fn load_options(g: &Global) -> LoadOptions {
    let region = g
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty());
    LoadOptions {
        vars: g.vars.clone(),
        region,
        account_id: None,
    }
}

/// Colours only on a terminal, never with NO_COLOR or --no-color.
pub fn use_color(g: &Global, stream_is_tty: bool) -> bool {
    !g.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream_is_tty
}

pub fn stderr_color(g: &Global) -> bool {
    use_color(g, std::io::stderr().is_terminal())
}

/// Prints diagnostics to stderr, errors in red and warnings in yellow on a terminal.
pub fn print_diagnostics(d: &Diagnostics, color: bool) {
    for diag in d.sorted() {
        let line = diag.to_string();
        if color {
            let code = match diag.severity {
                streamstack::diagnostics::Severity::Error => "31",
                streamstack::diagnostics::Severity::Warning => "33",
            };
            eprintln!("\x1b[{code}m{line}\x1b[0m");
        } else {
            eprintln!("{line}");
        }
    }
}
