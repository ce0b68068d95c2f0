//! `tail delivery.KEY`: the objects Firehose writes under the delivery's prefix as they land,
//! record by record (every compression the spec accepts, read as `check` reads them), and its
//! error output: objects under the error prefix and the events of its CloudWatch log stream,
//! marked as errors.
//!
//! Each look lists with `StartAfter` the greatest key seen (Firehose names objects by time, so a
//! new one sorts after the others) and reads each new object once. From now (no flag), objects
//! of the last minute count as new: a delivery writes every minute or more rarely.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use super::{Emit, Start, TailOptions, TailRecord};
use crate::aws::{first_pages, next_token, Ctx};
use crate::kinds::delivery::DeliveryProps;
use crate::kinds::objects::{self, MAX_OBJECT_BYTES};
use crate::kinds::Cx;
use crate::model::Resource;
use crate::spec::types::Compression;
use crate::{Error, Result};

/// Without `--since`/`--from-start`, what landed this long before the tail started is shown.
pub const RECENT: Duration = Duration::from_secs(60);
/// Pages listed per look (1000 keys each).
const PAGES_PER_LOOK: usize = 20;

/// The part of a Firehose prefix before its first expression (`!{timestamp:...}`).
fn static_prefix(prefix: Option<&str>) -> String {
    let p = prefix.unwrap_or_default();
    p.split("!{").next().unwrap_or_default().to_string()
}

/// From when records count, by the start asked for.
pub fn not_before(start: Start, now: SystemTime) -> SystemTime {
    match start {
        Start::FromStart => std::time::UNIX_EPOCH,
        Start::Since(d) => now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH),
        Start::Latest => now.checked_sub(RECENT).unwrap_or(std::time::UNIX_EPOCH),
    }
}

/// New objects under one prefix.
struct Objects {
    bucket: String,
    prefix: String,
    after: Option<String>,
    seen: HashSet<(String, String)>,
    /// The error prefix: every record an error.
    error: bool,
}

impl Objects {
    async fn look(
        &mut self,
        cx: &Cx,
        compression: Compression,
        since: SystemTime,
        out: &mut Emit<'_>,
    ) -> Result<()> {
        let s3 = &cx.clients.s3;
        let op = "s3:ListObjectsV2";
        let (bucket, prefix, after) = (&self.bucket, &self.prefix, &self.after);
        let listed = first_pages(op, PAGES_PER_LOOK, |token| async move {
            let call = s3.list_objects_v2().bucket(bucket).prefix(prefix);
            let call = call.set_start_after(after.clone());
            let page = call.set_continuation_token(token).send().await.op(op)?;
            Ok((
                page.contents.unwrap_or_default(),
                next_token(page.next_continuation_token),
            ))
        })
        .await?;
        for o in listed {
            let Some(key) = o.key else { continue };
            if self.after.as_ref().is_none_or(|a| *a < key) {
                self.after = Some(key.clone());
            }
            let modified = o.last_modified.and_then(|t| SystemTime::try_from(t).ok());
            if modified.is_some_and(|m| m < since) {
                continue;
            }
            let etag = o.e_tag.unwrap_or_default();
            if !self.seen.insert((key.clone(), etag)) {
                continue;
            }
            self.read(cx, &key, o.size, modified, compression, out)
                .await?;
            if out.stopped() {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn read(
        &self,
        cx: &Cx,
        key: &str,
        size: Option<i64>,
        modified: Option<SystemTime>,
        compression: Compression,
        out: &mut Emit<'_>,
    ) -> Result<()> {
        let truncated = size.is_some_and(|n| n as u64 > MAX_OBJECT_BYTES);
        let range = truncated.then(|| format!("bytes=0-{}", MAX_OBJECT_BYTES - 1));
        let call = cx.clients.s3.get_object().bucket(&self.bucket).key(key);
        let got = call.set_range(range).send().await.op("s3:GetObject");
        let body = match got {
            Ok(o) => o
                .body
                .collect()
                .await
                .map_err(|e| Error::resource_read(&self.bucket, key, e))?
                .into_bytes(),
            // Gone between the listing and now (a lifecycle rule, a user): nothing to show.
            Err(e) if e.code() == Some("NoSuchKey") => return Ok(()),
            Err(e) => return Err(e),
        };
        let source = format!("s3://{}/{key}", self.bucket);
        let base = TailRecord {
            arrival: modified.map(super::arrival_text),
            source: Some(source),
            error: self.error.then(|| "error output".to_string()),
            ..TailRecord::default()
        };
        match objects::records(&body, compression, MAX_OBJECT_BYTES, truncated) {
            Ok((_, _, lines)) => {
                for line in lines {
                    super::emit_data(out, base.clone(), line.as_bytes())?;
                }
            }
            Err(why) => out.record(TailRecord {
                data: format!("cannot read the object: {why}"),
                error: Some("unreadable object".into()),
                ..base
            })?,
        }
        Ok(())
    }
}

/// The delivery's CloudWatch log stream: events once each.
struct Log {
    group: String,
    stream: String,
    since_ms: i64,
    seen: BTreeMap<i64, HashSet<String>>,
}

impl Log {
    async fn look(&mut self, cx: &Cx, out: &mut Emit<'_>) -> Result<()> {
        // GetLogEvents (what `check` reads too) forward from `since_ms`; at the end it answers
        // with the token it was given.
        let op = "logs:GetLogEvents";
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..PAGES_PER_LOOK {
            let call = cx
                .clients
                .logs
                .get_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .start_time(self.since_ms)
                .start_from_head(true);
            let page = match call.set_next_token(token.clone()).send().await.op(op) {
                Ok(page) => page,
                // No group or stream yet: Firehose makes the stream at its first error.
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(e),
            };
            let got = page.events.unwrap_or_default();
            let done = got.is_empty() || page.next_forward_token == token;
            events.extend(got);
            if done {
                break;
            }
            token = page.next_forward_token;
        }
        for e in events {
            let t = e.timestamp.unwrap_or(self.since_ms);
            let id = format!("{t}:{:?}", e.message);
            if !self.seen.entry(t).or_default().insert(id) {
                continue;
            }
            self.since_ms = self.since_ms.max(t);
            let when = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(t).unwrap_or(0));
            let rec = TailRecord {
                arrival: Some(super::arrival_text(when)),
                source: Some(format!("logs:{}/{}", self.group, self.stream)),
                error: Some("delivery error log".into()),
                ..TailRecord::default()
            };
            super::emit_data(out, rec, e.message.unwrap_or_default().as_bytes())?;
            if out.stopped() {
                return Ok(());
            }
        }
        // Events older than the newest one are not asked for again.
        let since = self.since_ms;
        self.seen.retain(|t, _| *t >= since);
        Ok(())
    }
}

pub async fn tail(cx: &Cx, r: &Resource, opts: &TailOptions, out: &mut Emit<'_>) -> Result<()> {
    let p = r
        .props
        .get::<DeliveryProps>()
        .ok_or_else(|| Error::Internal(format!("{}: no delivery properties", r.address)))?;
    let since = not_before(opts.start, SystemTime::now());
    let mut places = vec![Objects {
        bucket: p.bucket_name.clone(),
        prefix: static_prefix(p.prefix.as_deref()),
        after: None,
        seen: HashSet::new(),
        error: false,
    }];
    if let Some(e) = &p.error_prefix {
        places.push(Objects {
            bucket: p.bucket_name.clone(),
            prefix: static_prefix(Some(e)),
            after: None,
            seen: HashSet::new(),
            error: true,
        });
    }
    let since_ms = since
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut log = p.error_logging.as_ref().map(|l| Log {
        group: l.log_group.clone(),
        stream: l.log_stream.clone(),
        since_ms,
        seen: BTreeMap::new(),
    });
    loop {
        for place in &mut places {
            place.look(cx, p.compression, since, out).await?;
            if out.stopped() {
                return Ok(());
            }
        }
        if let Some(log) = &mut log {
            log.look(cx, out).await?;
        }
        // In small steps, so that a closed output is noticed.
        let mut waited = Duration::ZERO;
        while waited < opts.poll {
            if out.stopped() {
                return Ok(());
            }
            let step = (opts.poll - waited).min(Duration::from_millis(250));
            tokio::time::sleep(step).await;
            waited += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_from_now_shows_the_last_minute_and_the_others_as_asked() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(not_before(Start::Latest, now), now - RECENT);
        assert_eq!(
            not_before(Start::Since(Duration::from_secs(600)), now),
            now - Duration::from_secs(600)
        );
        assert_eq!(not_before(Start::FromStart, now), std::time::UNIX_EPOCH);
        assert_eq!(
            static_prefix(Some("logs/!{timestamp:yyyy}/")),
            "logs/".to_string()
        );
    }
}
