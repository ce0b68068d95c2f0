//! One thin file per command: glue between the CLI and the library, no AWS or spec logic.

pub mod adopt;
pub mod apply;
pub mod check;
pub mod completions;
pub mod destroy;
pub mod fleet;
pub mod force_unlock;
pub mod gc;
pub mod init;
pub mod output;
pub mod plan;
pub mod render;
pub mod schema;
pub mod stacks;
pub mod tail;
pub mod validate;

use std::io::IsTerminal;

use streamstack::diagnostics::Diagnostics;
use streamstack::spec::LoadOptions;

use streamstack::cli::Global;

/// What a command failed with; `main` prints it and maps it to exit code 1.
#[derive(Debug)]
pub enum Failure {
    /// Spec diagnostics, already complete.
    Spec(Diagnostics),
    /// Anything else, one message.
    Message(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Spec(d) => write!(f, "{d}"),
            Failure::Message(m) => f.write_str(m),
        }
    }
}

pub type Outcome = Result<u8, Failure>;

/// Loading options from the global flags and the environment (offline).
pub fn load_options(g: &Global) -> LoadOptions {
    let ambient_region = std::env::var("AWS_REGION")
        .ok()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty());
    LoadOptions {
        vars: g.spec.vars.clone(),
        region: g.connection.region.clone().filter(|r| !r.is_empty()),
        ambient_region,
        account_id: None,
        fleet_region: None,
    }
}

/// Prints `value` as pretty JSON on stdout (`--json`).
pub fn print_json(value: &impl serde::Serialize) -> Outcome {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::Message(e.to_string()))?;
    println!("{text}");
    Ok(0)
}

/// Colours only on a terminal, never with NO_COLOR or --no-color.
pub fn use_color(g: &Global, stream_is_tty: bool) -> bool {
    !g.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream_is_tty
}

pub fn stderr_color(g: &Global) -> bool {
    use_color(g, std::io::stderr().is_terminal())
}

/// Prints diagnostics to stderr, errors in red and warnings in yellow on a terminal. With
/// `snippets`, each is followed by its source line with a caret under the span and its help
/// (the file is read again; a file that cannot be read gets the plain line).
pub fn print_diagnostics(d: &Diagnostics, color: bool, snippets: bool) {
    let mut sources: std::collections::HashMap<&str, Option<String>> =
        std::collections::HashMap::new();
    for diag in d.sorted() {
        let source = if snippets {
            sources
                .entry(diag.file.as_str())
                .or_insert_with(|| std::fs::read_to_string(&diag.file).ok())
                .as_deref()
        } else {
            None
        };
        if let Some(source) = source {
            let text = streamstack::diagnostics::render_with_snippet(diag, source, color);
            match (color, text.split_once('\n')) {
                (true, Some((first, rest))) => {
                    eprintln!("{}\n{rest}", paint(diag.severity, first))
                }
                (true, None) => eprintln!("{}", paint(diag.severity, &text)),
                (false, _) => eprintln!("{text}"),
            }
        } else if color {
            eprintln!("{}", paint(diag.severity, &diag.to_string()));
        } else {
            eprintln!("{diag}");
        }
    }
}

/// Snippets by default only when stderr is a terminal (piped output stays one line each).
pub fn stderr_snippets() -> bool {
    std::io::stderr().is_terminal()
}

fn paint(severity: streamstack::diagnostics::Severity, line: &str) -> String {
    let code = match severity {
        streamstack::diagnostics::Severity::Error => "31",
        streamstack::diagnostics::Severity::Warning => "33",
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}

/// A tokio runtime for the AWS commands.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Message(format!("cannot start the async runtime: {e}")))
}

/// Test and tuning knobs from the environment: STREAMSTACK_POLL_MS (how often waits poll) and
/// STREAMSTACK_PROGRESS_MS (how often progress is reported while waiting).
pub fn timeouts() -> streamstack::kinds::Timeouts {
    let mut t = streamstack::kinds::Timeouts::default();
    let ms = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_millis)
    };
    if let Some(p) = ms("STREAMSTACK_POLL_MS") {
        t.poll = p;
    }
    if let Some(p) = ms("STREAMSTACK_PROGRESS_MS") {
        t.progress_every = p;
    }
    t
}

pub fn open_options(
    g: &Global,
    events: streamstack::events::Events,
) -> streamstack::ops::OpenOptions {
    streamstack::ops::OpenOptions {
        load: load_options(g),
        aws: streamstack::aws::AwsOptions {
            region: g.connection.region.clone(),
            profile: g.connection.profile.clone(),
            endpoint_url: g.connection.endpoint_url.clone(),
            api_budget: g.api_budget,
        },
        events,
        timeouts: timeouts(),
    }
}

impl From<streamstack::Error> for Failure {
    fn from(e: streamstack::Error) -> Self {
        match e {
            streamstack::Error::Spec(d) => Failure::Spec(d),
            other => Failure::Message(other.to_string()),
        }
    }
}

pub fn stdout_style(g: &Global) -> streamstack::ui::Style {
    streamstack::ui::Style {
        color: use_color(g, std::io::stdout().is_terminal()),
        verbose: g.verbose > 0,
    }
}

/// Prints events as they come (human lines, or NDJSON with `json`), on the sender's thread:
/// every event line is out before the command prints its report (with --json, the report must
/// be the last line).
pub fn event_printer(style: streamstack::ui::Style, json: bool) -> streamstack::events::Events {
    streamstack::events::Events::call(move |e| {
        if json {
            if let Ok(line) = serde_json::to_string(e) {
                println!("{line}");
            }
        } else {
            println!("{}", streamstack::ui::render_event(e, style));
        }
    })
}

/// The session `destroy SPEC` or `destroy --stack NAME` works on.
pub async fn open_spec_or_stack(
    spec: Option<&std::path::Path>,
    stack: Option<&str>,
    opts: &streamstack::ops::OpenOptions,
) -> Result<streamstack::ops::Session, Failure> {
    Ok(match (spec, stack) {
        (Some(spec), _) => streamstack::ops::open(spec, opts).await?,
        (None, Some(name)) => streamstack::ops::open_stack(name, opts).await?,
        (None, None) => {
            return Err(Failure::Message("give a spec file or --stack NAME".into()));
        }
    })
}

/// Runs `work` holding the stack's lock for `command` (an apply or destroy), and releases the
/// lock whatever `work` returns; `work`'s failure comes first, unless the lock was taken over.
pub async fn locked(
    s: &streamstack::ops::Session,
    command: &str,
    timeout: std::time::Duration,
    work: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    let lock = s.lock(command, timeout).await?;
    let outcome = work.await;
    let released = lock.release().await;
    // A lock taken over from under the run explains whatever else failed: it comes first.
    if let Err(lost @ streamstack::Error::Locked(_)) = released {
        return Err(lost.into());
    }
    let code = outcome?;
    released?;
    Ok(code)
}

/// Refuses at once, before anything is read or locked, when approval will be needed and no
/// terminal can give it.
pub fn approval_possible(auto_approve: bool) -> Result<(), Failure> {
    if auto_approve || std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(Failure::Message(
            "refusing to make changes without confirmation: no terminal to ask on; pass --auto-approve".into(),
        ))
    }
}

/// Asks for `yes` on a terminal; refuses without one (never hangs in CI).
pub fn confirm(question: &str) -> Result<(), Failure> {
    use std::io::{BufRead, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message(
            "refusing to make changes without confirmation: no terminal to ask on; pass --auto-approve".into(),
        ));
    }
    print!("{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    // A prompt that did not show is no reason to stop: the answer is what counts.
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Message(format!("cannot read the answer: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::Message(
            "cancelled: the answer was not 'yes'".into(),
        ))
    }
}

/// Prints the done line when everything succeeded (to stderr with `json`: stdout carries only
/// JSON); otherwise fails with every failed and skipped operation.
pub fn finish(applied: &streamstack::deploy::Applied, done_line: String, json: bool) -> Outcome {
    if !applied.ok() {
        return Err(Failure::Message(applied.failure()));
    }
    if json {
        eprintln!("{done_line}");
    } else {
        println!("{done_line}");
    }
    Ok(0)
}
