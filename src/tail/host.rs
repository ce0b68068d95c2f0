//! `tail host.KEY`: the instance's console output (new lines only) and its bootstrap progress
//! (the `streamstack:bootstrap` tag its user-data sets), until the tag is set.

use base64::Engine;

use super::{Emit, Ended, TailOptions, TailRecord};
use crate::aws::Ctx;
use crate::kinds::host::{bootstrap_state, Bootstrap};
use crate::model::{Resource, TAG_BOOTSTRAP};
use crate::ops::Session;
use crate::{Error, Result};

/// The lines of `now` that follow what `before` showed. The console output is a window (its
/// last 64 KiB): the longest end of `before` that starts `now` is what was seen already.
pub fn new_lines<'a>(before: &[String], now: &'a [String]) -> &'a [String] {
    let most = before.len().min(now.len());
    for k in (1..=most).rev() {
        if before[before.len() - k..] == now[..k] {
            return &now[k..];
        }
    }
    now
}

async fn console(s: &Session, id: &str) -> Result<Vec<String>> {
    let ec2 = &s.cx.clients.ec2;
    let latest = ec2.get_console_output().instance_id(id).latest(true).send();
    let out = match latest.await.op("ec2:GetConsoleOutput") {
        Ok(o) => o,
        // Some partitions and endpoints refuse `latest`: ask again without it.
        Err(_) => {
            let call = ec2.get_console_output().instance_id(id);
            call.send().await.op("ec2:GetConsoleOutput")?
        }
    };
    let text = out
        .output
        .map(
            |o| match base64::engine::general_purpose::STANDARD.decode(o.trim()) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => o,
            },
        )
        .unwrap_or_default();
    Ok(text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.trim().is_empty())
        .collect())
}

fn now_text() -> Option<String> {
    Some(super::arrival_text(std::time::SystemTime::now()))
}

pub async fn tail(
    s: &Session,
    r: &Resource,
    opts: &TailOptions,
    out: &mut Emit<'_>,
) -> Result<Ended> {
    let live = s.live().await?;
    let Some(l) = live.iter().find(|l| l.ours && l.address() == &r.address) else {
        return Err(Error::Config(format!(
            "{} is not running: no instance of stack {} (apply first)",
            r.address, s.cx.stack
        )));
    };
    let id = l.id.clone();
    let mut before: Vec<String> = Vec::new();
    let mut last_state: Option<Bootstrap> = None;
    loop {
        let lines = console(s, &id).await?;
        for line in new_lines(&before, &lines) {
            out.record(TailRecord {
                arrival: now_text(),
                source: Some(format!("console:{id}")),
                data: line.clone(),
                ..TailRecord::default()
            })?;
        }
        before = lines;
        let (state, _) = bootstrap_state(&s.cx, &id).await?;
        if last_state.as_ref() != Some(&state) {
            let (data, error) = match &state {
                Bootstrap::Done => (format!("{TAG_BOOTSTRAP}=ok: the agent runs"), None),
                Bootstrap::Failed(step) => (
                    format!("{TAG_BOOTSTRAP}=failed:{step}"),
                    Some("bootstrap failed".to_string()),
                ),
                Bootstrap::Pending(st) => (format!("instance {st}, no bootstrap report yet"), None),
                Bootstrap::Gone => (
                    "the instance is gone".to_string(),
                    Some("instance gone".to_string()),
                ),
            };
            out.record(TailRecord {
                arrival: now_text(),
                source: Some(format!("bootstrap:{id}")),
                data,
                error,
                ..TailRecord::default()
            })?;
        }
        if !matches!(state, Bootstrap::Pending(_)) {
            return Ok(Ended::Finished);
        }
        last_state = Some(state);
        if out.stopped() {
            return Ok(Ended::Max);
        }
        let mut waited = std::time::Duration::ZERO;
        while waited < opts.poll {
            if out.stopped() {
                return Ok(Ended::Closed);
            }
            let step = (opts.poll - waited).min(std::time::Duration::from_millis(250));
            tokio::time::sleep(step).await;
            waited += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn only_the_console_lines_not_seen_yet_are_shown() {
        let a = v(&["boot", "net up", "agent"]);
        assert_eq!(new_lines(&[], &a), &a[..]);
        // Grown.
        let b = v(&["boot", "net up", "agent", "ok"]);
        assert_eq!(new_lines(&a, &b), &v(&["ok"])[..]);
        // The window moved on: its start dropped.
        let c = v(&["agent", "ok", "done"]);
        assert_eq!(new_lines(&b, &c), &v(&["done"])[..]);
        // Nothing new.
        assert!(new_lines(&c, &c).is_empty());
        // Nothing in common: all of it.
        let d = v(&["other"]);
        assert_eq!(new_lines(&c, &d), &d[..]);
    }
}
