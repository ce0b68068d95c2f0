//! `streamstack stacks [--json] [--prices live|cached|offline]`

use streamstack::bill;
use streamstack::cost::usd;

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
        let stacks = bill::list_stacks_with_cost(&opts.aws, a.prices.unwrap_or_default()).await?;
        if json {
            return super::print_json(&stacks);
        }
        if stacks.is_empty() {
            println!("No stacks: nothing is tagged streamstack:stack in this region.");
            return Ok(0);
        }
        println!(
            "{:<32} {:>9}  {:<20}  {:<20}  {:<7}  {:>10}  {:>10}",
            "STACK", "RESOURCES", "CREATED-AT", "EXPIRES-AT", "EXPIRED", "$/HOUR", "ACCRUED"
        );
        for s in &stacks {
            let i = &s.info;
            println!(
                "{:<32} {:>9}  {:<20}  {:<20}  {:<7}  {:>10}  {:>10}",
                i.name,
                i.resources,
                i.created_at.as_deref().unwrap_or("-"),
                i.expires_at.as_deref().unwrap_or("never"),
                if i.expired { "yes" } else { "no" },
                usd(s.hourly_usd),
                usd(s.accrued_usd)
            );
        }
        if let Some(s) = stacks.first() {
            println!("\nPrices: {}, {}.", s.price_source, s.price_date);
            if let Some(why) = stacks.iter().find_map(|s| s.cost_reason.as_deref()) {
                println!("Cost unknown: {why}");
            }
        }
        Ok(0)
    })
}
