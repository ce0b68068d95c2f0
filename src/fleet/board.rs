//! What a fleet run shows while it works, and the report it leaves.
//!
//! - on a terminal, one line per target redrawn in place (phase, resources done/total,
//!   elapsed, result);
//! - without one, plain lines (a phase change, a result), never an escape sequence;
//! - with `--json`, NDJSON: every event carries `"target": "ACCOUNT/REGION"`, and the last
//!   line is the report (`{"type":"report", ..., "targets":[...]}`).
//!
//! The report is also saved (see [`report_path`]) so that `--retry-failed` can read it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

use crate::events::Event;
use crate::{Error, Result};

use super::preflight::Row;
use super::run::{Board, FleetReport, TargetResult};
use super::Target;

/// How the board shows itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A terminal: lines redrawn in place.
    Live,
    /// Plain lines.
    Plain,
    /// NDJSON on stdout.
    Json,
}

#[derive(Debug, Clone, Default)]
struct Line {
    phase: String,
    done: usize,
    total: usize,
    result: Option<String>,
}

/// The board, writing to stdout.
pub struct Printer {
    mode: Mode,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Targets in the order first seen.
    order: Vec<String>,
    lines: BTreeMap<String, Line>,
    /// Lines drawn last time (Live), to move back over.
    drawn: usize,
}

impl Printer {
    pub fn new(mode: Mode) -> Self {
        Printer {
            mode,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Line)) -> Option<String> {
        let mut st = self.state.lock().ok()?;
        if !st.lines.contains_key(id) {
            st.order.push(id.to_string());
        }
        let line = st.lines.entry(id.to_string()).or_default();
        f(line);
        let text = format!("{id:<28} {}", describe(line));
        if self.mode == Mode::Live {
            redraw(&mut st, self.started);
        }
        Some(text)
    }

    fn json(&self, mut v: Value, target: &str) {
        if let Some(o) = v.as_object_mut() {
            o.insert("target".into(), json!(target));
        }
        println!("{v}");
    }
}

fn describe(l: &Line) -> String {
    let progress = if l.total > 0 {
        format!(" {}/{}", l.done.min(l.total), l.total)
    } else {
        String::new()
    };
    match &l.result {
        Some(r) => format!("{:<9}{progress} {r}", l.phase),
        None => format!("{:<9}{progress}", l.phase),
    }
}

fn redraw(st: &mut State, started: Instant) {
    let mut out = std::io::stdout().lock();
    if st.drawn > 0 {
        let _ = write!(out, "\x1b[{}A", st.drawn);
    }
    let elapsed = started.elapsed().as_secs();
    for id in &st.order {
        if let Some(l) = st.lines.get(id) {
            let _ = writeln!(out, "\x1b[2K{id:<28} {} ({elapsed}s)", describe(l));
        }
    }
    st.drawn = st.order.len();
    let _ = out.flush();
}

impl Board for Printer {
    fn phase(&self, target: &Target, phase: &str) {
        let id = target.id();
        let text = self.update(&id, |l| l.phase = phase.to_string());
        match self.mode {
            Mode::Json => self.json(json!({"type": "phase", "phase": phase}), &id),
            Mode::Plain => {
                if let Some(t) = text {
                    println!("{t}");
                }
            }
            Mode::Live => {}
        }
    }

    fn total(&self, target: &Target, total: usize) {
        self.update(&target.id(), |l| {
            l.total = total;
            l.done = 0;
        });
    }

    fn event(&self, target: &Target, event: &Event) {
        let id = target.id();
        if matches!(event, Event::Done { .. }) {
            self.update(&id, |l| l.done += 1);
        }
        if self.mode == Mode::Json {
            if let Ok(v) = serde_json::to_value(event) {
                self.json(v, &id);
            }
        }
    }

    fn finished(&self, r: &TargetResult) {
        let verdict = match (&r.error, r.ok, r.skipped) {
            (_, true, _) => format!("ok in {:.1}s", r.elapsed_s),
            (Some(e), _, true) => format!("skipped: {e}"),
            (Some(e), _, _) => format!("FAILED: {e}"),
            (None, _, _) => "FAILED".to_string(),
        };
        let text = self.update(&r.target, |l| {
            l.phase = r.phase.clone();
            if r.ok {
                l.done = l.total;
            }
            l.result = Some(verdict);
        });
        match self.mode {
            Mode::Json => {
                let v = json!({"type": "target_done", "ok": r.ok, "skipped": r.skipped,
                    "error": r.error, "phase": r.phase, "elapsed_s": r.elapsed_s});
                self.json(v, &r.target);
            }
            Mode::Plain => {
                if let Some(t) = text {
                    println!("{t}");
                }
            }
            Mode::Live => {}
        }
    }

    fn preflight(&self, rows: &[Row]) {
        if self.mode == Mode::Json {
            for r in rows {
                if let Ok(v) = serde_json::to_value(r) {
                    let mut v = v;
                    v["type"] = json!("preflight");
                    let target = r.target.clone();
                    self.json(v, &target);
                }
            }
        }
    }
}

/// The last NDJSON line: SPEC.md's report.
pub fn report_json(r: &FleetReport) -> Value {
    let targets: Vec<Value> = r
        .targets
        .iter()
        .map(|t| {
            json!({"target": t.target, "account": t.account, "region": t.region, "name": t.name,
                "ok": t.ok, "error": t.error, "skipped": t.skipped, "phase": t.phase,
                "elapsed_s": t.elapsed_s, "detail": t.detail})
        })
        .collect();
    json!({"type": "report", "command": r.command, "ok": r.ok,
        "stopped_by_preflight": r.stopped_by_preflight,
        "succeeded": r.targets.iter().filter(|t| t.ok).count(),
        "failed": r.targets.iter().filter(|t| !t.ok && !t.skipped).count(),
        "skipped": r.targets.iter().filter(|t| t.skipped).count(),
        "preflight": r.preflight, "targets": targets})
}

/// The summary table printed at the end (and, for `check`, every target's hops).
pub fn summary(r: &FleetReport) -> String {
    let mut out = format!(
        "\n{:<28} {:<20} {:<8} {:<8} {:>8}  {}\n",
        "TARGET", "NAME", "RESULT", "PHASE", "ELAPSED", "ERROR"
    );
    for t in &r.targets {
        let result = if t.ok {
            "ok"
        } else if t.skipped {
            "skipped"
        } else {
            "FAILED"
        };
        out.push_str(&format!(
            "{:<28} {:<20} {:<8} {:<8} {:>7.1}s  {}\n",
            t.target,
            t.name,
            result,
            t.phase,
            t.elapsed_s,
            t.error.as_deref().unwrap_or("")
        ));
    }
    if r.command == "check" {
        for t in &r.targets {
            let Some(hops) = t.detail.get("hops").and_then(Value::as_array) else {
                continue;
            };
            out.push_str(&format!("\n{} ({})\n", t.target, t.name));
            for h in hops {
                let ok = h.get("ok").and_then(Value::as_bool).unwrap_or(false);
                out.push_str(&format!(
                    "  {} {:<32} {}\n",
                    if ok { "ok  " } else { "FAIL" },
                    h.get("address").and_then(Value::as_str).unwrap_or("?"),
                    h.get("summary").and_then(Value::as_str).unwrap_or("")
                ));
            }
        }
    }
    if r.command == "plan" {
        out.push_str(&fleet_cost(r));
    }
    out.push_str(&found(r));
    let failed = r.targets.iter().filter(|t| !t.ok).count();
    out.push_str(&format!(
        "\n{} of {} targets succeeded{}.\n",
        r.targets.len() - failed,
        r.targets.len(),
        if failed > 0 {
            "; rerun the others with --retry-failed"
        } else {
            ""
        }
    ));
    out
}

/// What `stacks`, `output` and `gc` found in each target, a line each.
fn found(r: &FleetReport) -> String {
    let mut out = String::new();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    for t in &r.targets {
        let lines: Vec<String> = match r.command.as_str() {
            "stacks" => rows(&t.detail, "stacks")
                .iter()
                .map(|s| {
                    let n = s.get("resources").and_then(Value::as_u64).unwrap_or(0);
                    let expired = s.get("expired").and_then(Value::as_bool) == Some(true);
                    let expires = text(s, "expires_at");
                    let state = if expired { "expired" } else { "live" };
                    format!(
                        "{} ({n} resources, expires {expires}, {state})",
                        text(s, "name")
                    )
                })
                .collect(),
            "output" => rows(&t.detail, "outputs")
                .iter()
                .map(|o| {
                    format!(
                        "{} = {} ({})",
                        text(o, "address"),
                        text(o, "name"),
                        text(o, "id")
                    )
                })
                .collect(),
            "gc" => {
                let names = |k: &str| {
                    let v: Vec<String> = rows(&t.detail, k)
                        .iter()
                        .filter_map(|n| n.as_str().map(String::from))
                        .collect();
                    v.join(", ")
                };
                vec![format!(
                    "expired: {}; destroyed: {}",
                    names("expired"),
                    names("destroyed")
                )]
            }
            _ => Vec::new(),
        };
        if !lines.is_empty() || matches!(r.command.as_str(), "stacks" | "output") && t.ok {
            out.push_str(&format!("\n{} ({})\n", t.target, t.name));
            if lines.is_empty() {
                out.push_str("  nothing\n");
            }
            for l in lines {
                out.push_str(&format!("  {l}\n"));
            }
        }
    }
    out
}

fn rows(detail: &Value, key: &str) -> Vec<Value> {
    detail
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Where the last run's report of `stack` over `fleet` is kept: `.streamstack/fleet/<stack>-<fleet
/// file stem>.json` in `dir`, the spec's directory (the fleet file's for `stacks` and `gc`).
pub fn report_path(dir: &Path, stack: &str, fleet: &Path) -> PathBuf {
    let stem = fleet
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "fleet".into());
    dir.join(".streamstack")
        .join("fleet")
        .join(format!("{stack}-{stem}.json"))
}

/// Saves the report (for `--retry-failed`).
pub fn save(path: &Path, r: &FleetReport) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
    }
    let text =
        serde_json::to_string_pretty(&report_json(r)).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))
}

/// The targets (`ACCOUNT/REGION`) that did not succeed in the saved report.
pub fn failed_targets(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "--retry-failed: no report of an earlier run at {} ({e})",
            path.display()
        ))
    })?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(v.get("targets")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter(|t| t.get("ok").and_then(Value::as_bool) != Some(true))
                .filter_map(|t| t.get("target").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// The fleet's cost after the plan: every target's hourly cost added up (a plan's cost is in
/// each target's `detail.cost`), or which targets' cost is unknown.
pub fn fleet_cost(r: &FleetReport) -> String {
    let mut hourly = 0.0;
    let mut unknown = Vec::new();
    let mut priced = 0;
    for t in &r.targets {
        match t
            .detail
            .get("cost")
            .and_then(|c| c.get("hourly_usd"))
            .and_then(Value::as_f64)
        {
            Some(h) => {
                hourly += h;
                priced += 1;
            }
            None if t.detail.get("cost").is_some() => unknown.push(t.target.as_str()),
            None => {}
        }
    }
    if priced == 0 && unknown.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nFleet cost after the plan: ${hourly:.4}/hour, ${:.2}/day, ${:.2} if forgotten for 30 days ({priced} targets priced)\n",
        hourly * 24.0,
        hourly * 24.0 * 30.0
    );
    if !unknown.is_empty() {
        out.push_str(&format!(
            "Cost unknown in {} targets (no prices for their region): {}\n",
            unknown.len(),
            unknown.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> FleetReport {
        let t = |id: &str, ok: bool, error: Option<&str>, detail: Value| TargetResult {
            target: id.into(),
            account: id.split('/').next().unwrap_or_default().into(),
            region: id.split('/').nth(1).unwrap_or_default().into(),
            name: "alice".into(),
            ok,
            error: error.map(String::from),
            skipped: false,
            phase: "check".into(),
            elapsed_s: 1.5,
            detail,
        };
        let hops =
            json!({"hops": [{"address": "delivery.raw", "ok": true, "summary": "20 of 20 in S3"}]});
        FleetReport {
            command: "check".into(),
            ok: false,
            targets: vec![
                t("111111111111/eu-west-1", true, None, hops),
                t(
                    "222222222222/eu-west-1",
                    false,
                    Some("AccessDenied: no"),
                    Value::Null,
                ),
            ],
            preflight: Vec::new(),
            stopped_by_preflight: false,
        }
    }

    #[test]
    fn a_fleet_plan_adds_up_its_targets_costs_and_names_the_unknown_ones() {
        let mut r = report();
        r.command = "plan".into();
        r.targets[0].detail = json!({"cost": {"hourly_usd": 0.05}});
        r.targets[1].detail = json!({"cost": {"hourly_usd": 0.05}});
        let both = fleet_cost(&r);
        assert!(
            both.contains("$0.1000/hour, $2.40/day, $72.00 if forgotten"),
            "{both}"
        );
        assert!(!both.contains("unknown"), "{both}");
        r.targets[1].detail = json!({"cost": {"hourly_usd": null, "reason": "unknown: region"}});
        let one = fleet_cost(&r);
        assert!(
            one.contains("$0.0500/hour") && one.contains("(1 targets priced)"),
            "{one}"
        );
        assert!(
            one.contains("unknown in 1 targets") && one.contains("222222222222/eu-west-1"),
            "{one}"
        );
        assert!(summary(&r).contains("Fleet cost after the plan"));
    }

    #[test]
    fn the_report_line_has_spec_shape_and_the_summary_shows_hops() {
        let r = report();
        let j = report_json(&r);
        assert_eq!(j["type"], "report");
        assert_eq!(j["ok"], false);
        let t = &j["targets"][1];
        for k in ["target", "account", "region", "name", "ok", "error"] {
            assert!(t.get(k).is_some(), "{k} in {t}");
        }
        assert_eq!(t["target"], "222222222222/eu-west-1");
        assert_eq!(t["account"], "222222222222");
        let s = summary(&r);
        assert!(s.contains("FAILED   check"), "{s}");
        assert!(s.contains("AccessDenied: no"), "{s}");
        assert!(s.contains("ok   delivery.raw"), "{s}");
        assert!(
            s.contains("1 of 2 targets succeeded; rerun the others with --retry-failed"),
            "{s}"
        );
        assert!(!s.contains('\x1b'));
    }

    #[test]
    fn retry_failed_reads_the_targets_that_did_not_succeed() {
        let dir = std::env::temp_dir().join(format!("ss-fleet-board-{}", std::process::id()));
        let path = report_path(&dir, "lab", Path::new("class.yaml"));
        assert!(path.ends_with(".streamstack/fleet/lab-class.json"));
        save(&path, &report()).unwrap();
        assert_eq!(failed_targets(&path).unwrap(), ["222222222222/eu-west-1"]);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failed_targets(&path).is_err());
    }
}
