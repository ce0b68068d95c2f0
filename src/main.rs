//! Parse arguments, run one command, map the outcome to an exit code. Nothing else.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let g = &cli.global;
    let outcome = match &cli.command {
        Command::Validate { specs } => commands::validate::run(g, specs),
        Command::Render { spec, host, what } => {
            commands::render::run(g, spec, host.as_deref(), *what)
        }
        Command::Plan {
            spec,
            json,
            out,
            detailed_exitcode,
        } => commands::plan::run(g, spec, *json, out.as_deref(), *detailed_exitcode),
        Command::Apply {
            target,
            auto_approve,
            json,
            parallelism,
        } => commands::apply::run(g, target, *auto_approve, *json, *parallelism),
        Command::Destroy {
            spec,
            auto_approve,
            json,
        } => commands::destroy::run(g, spec, *auto_approve, *json),
        Command::Output { spec, json } => commands::output::run(g, spec, *json),
        Command::Schema => commands::schema::run(),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Spec(d)) => {
            commands::print_diagnostics(&d, commands::stderr_color(g));
            ExitCode::from(1)
        }
        Err(Failure::Message(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}
