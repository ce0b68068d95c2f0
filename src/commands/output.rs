//! `streamstack output SPEC [--json]`

use streamstack::events::Events;
use streamstack::ops;

use super::{open_options, runtime, Outcome};
use streamstack::cli::{Global, OutputArgs};

pub fn run(g: &Global, a: &OutputArgs) -> Outcome {
    if a.fleet.fleet.is_some() {
        let command = streamstack::fleet::run::Command::Output;
        return super::fleet::run(
            g,
            super::fleet::Request {
                fleet: &a.fleet,
                spec: Some(&a.spec),
                command,
                json: a.json,
                ask: false,
                lock_timeout: std::time::Duration::ZERO,
                engine: streamstack::cli::Engine::Streamstack,
            },
        );
    }
    let (spec, json) = (&a.spec, a.json);
    runtime()?.block_on(async {
        let s = ops::open(spec, &open_options(g, Events::none())).await?;
        let live = s.live().await?;
        let outputs = s.outputs(&live).await?;
        if json {
            return super::print_json(&outputs);
        }
        if outputs.is_empty() {
            println!("Nothing of stack {} is live.", s.cx.stack);
            return Ok(0);
        }
        for o in outputs {
            println!("{} = {} ({})", o.address, o.name, o.id);
            for (k, v) in o.details {
                println!("    {k:<14} {v}");
            }
        }
        Ok(0)
    })
}
