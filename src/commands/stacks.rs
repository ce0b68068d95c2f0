//! `streamstack stacks [--json]`

use streamstack::ops;

use super::{open_options, runtime, Outcome};
use streamstack::cli::{Global, StacksArgs};

pub fn run(g: &Global, a: &StacksArgs) -> Outcome {
    if a.fleet.fleet.is_some() {
        let command = streamstack::fleet::run::Command::Stacks;
        return super::fleet::run(
            g,
            super::fleet::Request {
                fleet: &a.fleet,
                spec: None,
                command,
                json: a.json,
                ask: false,
                lock_timeout: std::time::Duration::ZERO,
                engine: streamstack::cli::Engine::Streamstack,
            },
        );
    }
    let json = a.json;
    let opts = open_options(g, streamstack::events::Events::none());
    runtime()?.block_on(async {
        let stacks = ops::list_stacks(&opts.aws).await?;
        if json {
            return super::print_json(&stacks);
        }
        if stacks.is_empty() {
            println!("No stacks: nothing is tagged streamstack:stack in this region.");
            return Ok(0);
        }
        println!(
            "{:<32} {:>9}  {:<20}  {:<20}  EXPIRED",
            "STACK", "RESOURCES", "CREATED-AT", "EXPIRES-AT"
        );
        for s in stacks {
            println!(
                "{:<32} {:>9}  {:<20}  {:<20}  {}",
                s.name,
                s.resources,
                s.created_at.as_deref().unwrap_or("-"),
                s.expires_at.as_deref().unwrap_or("never"),
                if s.expired { "yes" } else { "no" }
            );
        }
        Ok(0)
    })
}
