//! `streamstack check SPEC [--put N] [--timeout DUR] [--json]`

use std::time::Duration;

use streamstack::check::{self, CheckOptions};
use streamstack::events::Events;
use streamstack::ops;

use super::{open_options, runtime, stdout_style, Failure, Outcome};
use streamstack::cli::{CheckArgs, Global};

pub fn run(g: &Global, a: &CheckArgs) -> Outcome {
    if a.fleet.fleet.is_some() {
        let opts = CheckOptions {
            put: a.put,
            timeout: a.timeout.unwrap_or(if a.put.is_some() {
                Duration::from_secs(300)
            } else {
                Duration::ZERO
            }),
            poll: super::timeouts().poll,
        };
        let command = streamstack::fleet::run::Command::Check(opts);
        return super::fleet::run(
            g,
            super::fleet::Request {
                fleet: &a.fleet,
                spec: Some(&a.spec),
                command,
                json: a.json,
                ask: false,
                lock_timeout: Duration::ZERO,
                engine: streamstack::cli::Engine::Streamstack,
            },
        );
    }
    let (spec, put, timeout, json) = (&a.spec, a.put, a.timeout, a.json);
    let style = stdout_style(g);
    runtime()?.block_on(async {
        let s = ops::open(spec, &open_options(g, Events::none())).await?;
        let opts = CheckOptions {
            put,
            timeout: timeout.unwrap_or(if put.is_some() {
                Duration::from_secs(300)
            } else {
                Duration::ZERO
            }),
            poll: super::timeouts().poll,
        };
        let report = check::check(&s, &opts).await?;
        if json {
            let line =
                serde_json::to_string(&report).map_err(|e| Failure::Message(e.to_string()))?;
            println!("{line}");
        } else {
            print!("{}", streamstack::ui::render_check(&report, style));
        }
        Ok(if report.ok { 0 } else { 1 })
    })
}
