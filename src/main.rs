//! Parse arguments, run one command, map the outcome to an exit code. Nothing else.

mod commands;

use std::process::ExitCode;

use clap::Parser;

use commands::Failure;
use streamstack::cli::{Cli, Command};

fn main() -> ExitCode {
    restore_sigpipe();
    // Every usage error exits 1: exit 2 means "the plan has changes" (--detailed-exitcode).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let g = match cli.effective_global() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let g = &g;
    init_logs(g.verbose);
    let outcome = match &cli.command {
        Command::Validate(a) => commands::validate::run(g, a),
        Command::Render(a) => commands::render::run(g, a),
        Command::Plan(a) => commands::plan::run(g, a),
        Command::Apply(a) => commands::apply::run(g, a),
        Command::Check(a) => commands::check::run(g, a),
        Command::Destroy(a) => commands::destroy::run(g, a),
        Command::ForceUnlock(a) => commands::force_unlock::run(g, a),
        Command::Stacks(a) => commands::stacks::run(g, a),
        Command::Gc(a) => commands::gc::run(g, a),
        Command::Output(a) => commands::output::run(g, a),
        Command::Schema => commands::schema::run(),
        Command::Init(a) if a.from_live => commands::adopt::init_from_live(g, a),
        Command::Init(a) => commands::init::run(a),
        Command::Completions(a) => commands::completions::run(a),
        Command::Adopt(a) => commands::adopt::run(g, a),
        Command::Tail(a) => commands::tail::run(g, a),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Spec(d)) => {
            commands::print_diagnostics(&d, commands::stderr_color(g), commands::stderr_snippets());
            ExitCode::from(1)
        }
        Err(Failure::Message(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`streamstack render ... | head -1`)
/// would panic; restore the default so the process ends quietly, as other CLI tools do.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default at the start of `main`, before any
    // thread exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs go to stderr, never into `--json` stdout. `-v` shows every AWS call (service,
/// operation, status, ms) and every retry with its reason; `-vv` also streamstack's own debug
/// lines and the SDK's; `RUST_LOG` overrides both.
fn init_logs(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // The SDK's credential chain warns about every provider that found nothing (the
        // instance metadata service, most often) before streamstack says what to do about it.
        0 => "warn,aws_config=error",
        1 => "warn,aws_config=error,streamstack=info",
        _ => "info,streamstack=debug,aws_smithy_runtime=debug,aws_config=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
