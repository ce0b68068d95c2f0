//! Parse arguments, run one command, map the outcome to an exit code. Nothing else.

mod commands;

use std::process::ExitCode;

use clap::Parser;

use commands::Failure;
use streamstack::cli::{self, Cli, Command};

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
        Command::Validate { specs, format, .. } => commands::validate::run(g, specs, *format),
        Command::Render {
            spec, host, what, ..
        } => commands::render::run(g, spec, host.as_deref(), *what),
        Command::Plan {
            spec,
            json,
            format,
            out,
            detailed_exitcode,
            engine,
            ..
        } => {
            let format = if *json {
                cli::PlanFormat::Json
            } else {
                format.unwrap_or(cli::PlanFormat::Human)
            };
            match engine {
                cli::Engine::Streamstack => {
                    commands::plan::run(g, spec, format, out.as_deref(), *detailed_exitcode)
                }
                cli::Engine::Cloudformation => commands::cloudformation::plan(
                    g,
                    spec,
                    format,
                    out.as_deref(),
                    *detailed_exitcode,
                ),
            }
        }
        Command::Apply {
            target,
            auto_approve,
            json,
            parallelism,
            lock_timeout,
            wait_bootstrap,
            engine: cli::Engine::Streamstack,
            ..
        } => commands::apply::run(
            g,
            target,
            *auto_approve,
            *json,
            *parallelism,
            lock_timeout.unwrap_or_default(),
            *wait_bootstrap,
        ),
        Command::Apply {
            target,
            auto_approve,
            json,
            parallelism,
            lock_timeout,
            wait_bootstrap,
            engine: cli::Engine::Cloudformation,
            ..
        } => commands::cloudformation::apply(
            g,
            target,
            *auto_approve,
            *json,
            *parallelism,
            lock_timeout.unwrap_or_default(),
            *wait_bootstrap,
        ),
        Command::ForceUnlock { spec, lock_id, .. } => commands::force_unlock::run(g, spec, lock_id),
        Command::Check {
            spec,
            put,
            timeout,
            json,
            ..
        } => commands::check::run(g, spec, *put, *timeout, *json),
        Command::Destroy {
            spec,
            stack,
            auto_approve,
            json,
            lock_timeout,
            engine: cli::Engine::Streamstack,
            ..
        } => commands::destroy::run(
            g,
            spec.as_deref(),
            stack.as_deref(),
            *auto_approve,
            *json,
            lock_timeout.unwrap_or_default(),
        ),
        Command::Destroy {
            spec,
            stack,
            auto_approve,
            json,
            lock_timeout,
            engine: cli::Engine::Cloudformation,
            ..
        } => commands::cloudformation::destroy(
            g,
            spec.as_deref(),
            stack.as_deref(),
            *auto_approve,
            *json,
            lock_timeout.unwrap_or_default(),
        ),
        Command::Stacks { json, .. } => commands::stacks::run(g, *json),
        Command::Gc {
            dry_run,
            auto_approve,
            json,
            ..
        } => commands::gc::run(g, *dry_run, *auto_approve, *json),
        Command::Output { spec, json, .. } => commands::output::run(g, spec, *json),
        Command::Schema => commands::schema::run(),
        Command::Init {
            example,
            force,
            path,
        } => commands::init::run(*example, *force, path),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "streamstack", &mut std::io::stdout());
            Ok(0)
        }
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
