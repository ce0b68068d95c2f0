//! `streamstack gc [--dry-run] [--auto-approve] [--json]`

use futures::StreamExt;
use streamstack::ops;

use super::{confirm, destroy, open_options, runtime, Failure, Outcome};
use streamstack::cli::{GcArgs, Global};

/// Expired stacks destroyed at once.
const AT_ONCE: usize = 3;

pub fn run(g: &Global, a: &GcArgs) -> Outcome {
    if a.fleet.fleet.is_some() {
        let command = streamstack::fleet::run::Command::Gc { dry_run: a.dry_run };
        let ask = !a.auto_approve && !a.dry_run;
        return super::fleet::run(
            g,
            super::fleet::Request {
                fleet: &a.fleet,
                spec: None,
                command,
                json: a.json,
                ask,
                lock_timeout: std::time::Duration::ZERO,
                engine: streamstack::cli::Engine::Streamstack,
            },
        );
    }
    let (dry_run, auto_approve, json) = (a.dry_run, a.auto_approve, a.json);
    runtime()?.block_on(async {
        let base = open_options(g, streamstack::events::Events::none());
        // A dry run also prices what collecting would save (prices never fail it).
        let costed: Vec<streamstack::bill::StackCost> = if dry_run {
            streamstack::bill::list_stacks_with_cost(&base.aws, Default::default())
                .await?
                .into_iter()
                .filter(|s| s.info.expired)
                .collect()
        } else {
            Vec::new()
        };
        let expired: Vec<ops::StackInfo> = if dry_run {
            costed.iter().map(|s| s.info.clone()).collect()
        } else {
            ops::list_stacks(&base.aws)
                .await?
                .into_iter()
                .filter(|s| s.expired)
                .collect()
        };
        let names: Vec<&str> = expired.iter().map(|s| s.name.as_str()).collect();
        if expired.is_empty() {
            if json {
                println!("{}", serde_json::json!({"type": "gc", "expired": [], "destroyed": []}));
            } else {
                println!("Nothing to collect: no stack in this region has expired.");
            }
            return Ok(0);
        }
        if !json {
            for s in &expired {
                println!(
                    "expired: {} (expires-at {}, {} resources)",
                    s.name,
                    s.expires_at.as_deref().unwrap_or("?"),
                    s.resources
                );
            }
        }
        if dry_run {
            let saves = costed.iter().map(|s| s.daily_usd).sum::<Option<f64>>();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"type": "gc", "expired": costed, "destroyed": [],
                        "saves_daily_usd": saves})
                );
            } else {
                println!(
                    "Collecting would save {}/day.",
                    streamstack::cost::usd(saves)
                );
            }
            return Ok(0);
        }
        if !auto_approve {
            confirm(&format!("\nDestroy {} expired stack(s): {}?", names.len(), names.join(", ")))?;
        }
        // Each stack is destroyed as `destroy --stack` does it, a few at a time.
        let results: Vec<(String, Outcome)> = futures::stream::iter(names.iter().map(|name| {
            let base = base.clone();
            async move {
                let outcome = match ops::open_stack(name, &base).await {
                    Ok(s) => {
                        let engine = streamstack::deploy::Engine::Streamstack;
                        destroy::destroy(&s, engine, g, true, json, std::time::Duration::ZERO).await
                    }
                    Err(e) => Err(Failure::from(e)),
                };
                (name.to_string(), outcome)
            }
        }))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(n, o)| o.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect();
        let destroyed: Vec<&str> = results
            .iter()
            .filter(|(_, o)| o.is_ok())
            .map(|(n, _)| n.as_str())
            .collect();
        if json {
            println!(
                "{}",
                serde_json::json!({"type": "gc", "expired": expired, "destroyed": destroyed, "failed": failed})
            );
        }
        if failed.is_empty() {
            Ok(0)
        } else {
            Err(Failure::Message(format!("gc could not destroy: {}", failed.join("; "))))
        }
    })
}
