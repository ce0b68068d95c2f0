//! `check`: does data flow? Each kind that is a hop of the pipeline (hosts produce, streams
//! carry, deliveries land in S3) reports what it finds, with evidence; the first broken hop is
//! named with a hint. With `--put N`, N test records carrying a run id go into every resource
//! that takes records from producers, and only those records count. Nothing here names a kind.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::kinds::{self, CheckRun, Hop, Live};
use crate::ops::Session;
use crate::Result;

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Write this many test records first, and wait for them.
    pub put: Option<u32>,
    /// How long to wait for every hop to pass (0: look once).
    pub timeout: Duration,
    /// How often to look again while waiting.
    pub poll: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub stack: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Desired resources that are not live: the stack is not (fully) applied.
    pub missing: Vec<String>,
    /// Every hop, in pipeline order.
    pub hops: Vec<Hop>,
    /// The first hop that is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<String>,
    pub elapsed_s: f64,
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("check-{:x}-{:x}", nanos, std::process::id())
}

/// One look at every hop.
async fn look(s: &Session, live: &[Live], run: &CheckRun) -> Result<Vec<Hop>> {
    let desired = &s.validated.model;
    let mut ordered: Vec<(u8, &crate::model::Resource)> = Vec::new();
    for r in desired.resources.values() {
        ordered.push((kinds::handler(r.address.kind)?.hop_order(), r));
    }
    ordered.sort_by(|a, b| (a.0, &a.1.address).cmp(&(b.0, &b.1.address)));
    let mut hops = Vec::new();
    for (_, r) in ordered {
        let l = live.iter().find(|l| l.ours && l.address() == &r.address);
        if let Some(hop) = kinds::handler(r.address.kind)?
            .check(&s.cx, r, l, run)
            .await?
        {
            hops.push((r, hop));
        }
    }
    // A broken hop fed by a working one says so: "20 records in stream.weather; none delivered".
    let working: Vec<(crate::model::Kind, String, String, u64)> = hops
        .iter()
        .filter(|(_, h)| h.ok)
        .filter_map(|(r, h)| {
            let n = h.evidence["test_records"]
                .as_u64()
                .or_else(|| h.evidence["records"].as_u64())?;
            Some((r.address.kind, r.name.clone(), h.address.clone(), n))
        })
        .collect();
    let out = hops
        .into_iter()
        .map(|(r, mut h)| {
            if !h.ok {
                let feeds = kinds::handler(r.address.kind)
                    .map(|k| k.uses(r))
                    .unwrap_or_default();
                for (kind, name) in feeds {
                    let fed = working.iter().find(|(k, n, _, _)| {
                        *n == name && kinds::REGISTRY.same_namespace(*k, kind)
                    });
                    if let Some((_, _, address, n)) = fed {
                        h.summary = format!("{n} records in {address}; {}", h.summary);
                    }
                }
            }
            h
        })
        .collect();
    Ok(out)
}

/// Checks the pipeline of the session's stack.
pub async fn check(s: &Session, opts: &CheckOptions) -> Result<CheckReport> {
    let started = Instant::now();
    let live = s.live().await?;
    let missing: Vec<String> = s
        .validated
        .model
        .resources
        .values()
        .filter(|r| !live.iter().any(|l| l.ours && l.address() == &r.address))
        .map(|r| format!("{} ({})", r.address, r.name))
        .collect();
    let mut run = CheckRun {
        run_id: None,
        expect: 0,
        started,
        memo: Default::default(),
    };
    if let Some(n) = opts.put.filter(|_| missing.is_empty()) {
        let id = run_id();
        let records: Vec<String> = (0..n)
            .map(|i| {
                serde_json::json!({"streamstack_check": id, "seq": i, "city": "Seoul"}).to_string()
                    + "\n"
            })
            .collect();
        for r in s.validated.model.resources.values() {
            kinds::handler(r.address.kind)?
                .put_test_records(&s.cx, r, &records)
                .await?;
        }
        run.run_id = Some(id);
        run.expect = n;
    }
    let deadline = started + opts.timeout;
    let hops = loop {
        let hops = look(s, &live, &run).await?;
        if !missing.is_empty() || hops.iter().all(|h| h.ok) || Instant::now() >= deadline {
            break hops;
        }
        tokio::time::sleep(
            opts.poll
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    };
    let first_broken = hops.iter().find(|h| !h.ok).map(|h| h.address.clone());
    Ok(CheckReport {
        stack: s.cx.stack.clone(),
        ok: missing.is_empty() && first_broken.is_none(),
        run_id: run.run_id,
        missing,
        hops,
        first_broken,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}
