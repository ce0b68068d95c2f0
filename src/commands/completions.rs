//! `streamstack completions SHELL`

use super::Outcome;
use streamstack::cli::{Cli, CompletionsArgs};

pub fn run(a: &CompletionsArgs) -> Outcome {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(a.shell, &mut cmd, "streamstack", &mut std::io::stdout());
    Ok(0)
}
