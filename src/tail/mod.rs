//! `tail`: watch the records flow through one hop of the stack: a stream's records as they
//! arrive (every shard, across reshards, at most one `GetRecords` a second per shard), the
//! objects a delivery writes (and its error output), or a host's console and bootstrap.
//! Physical names come from the spec's model; nothing here writes to AWS.

pub mod decode;
pub mod delivery;
pub mod host;
pub mod stream;

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::kinds::{DELIVERY, HOST, STREAM};
use crate::ops::Session;
use crate::{Error, Result};

pub use decode::Encoding;

/// Where a stream is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// What arrives from now on (`LATEST`; a delivery: objects of the last minute and after).
    #[default]
    Latest,
    /// From this long ago (`AT_TIMESTAMP`).
    Since(Duration),
    /// Everything still retained (`TRIM_HORIZON`; a delivery: every object).
    FromStart,
}

#[derive(Debug, Clone, Default)]
pub struct TailOptions {
    pub start: Start,
    /// Stop after this many printed records.
    pub max: Option<u64>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Print only records whose shown text matches.
    pub grep: Option<regex_lite::Regex>,
    /// Indent JSON data.
    pub pretty: bool,
    /// How often a delivery's bucket or a host's console is looked at again.
    pub poll: Duration,
}

/// One record as printed: `--json` writes it as one object a line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TailRecord {
    pub shard: Option<String>,
    pub sequence: Option<String>,
    pub partition_key: Option<String>,
    /// When the record reached AWS (RFC 3339, milliseconds), as AWS says.
    pub arrival: Option<String>,
    /// The data decoded (see [`decode`]).
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// The data was gzip (inflated).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gzip: bool,
    /// Where a record that is not a stream's came from: `s3://bucket/key`, `logs:GROUP/STREAM`,
    /// `console`, `bootstrap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Set on what reports a failure (a delivery's error output, a failed bootstrap): what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TailRecord {
    /// The text line: arrival, where from, partition key, data; `ERROR(what)` before the data
    /// of an error.
    pub fn line(&self) -> String {
        let mut parts: Vec<String> = vec![self.arrival.clone().unwrap_or_else(|| "-".into())];
        parts.extend(self.shard.clone().or_else(|| self.source.clone()));
        parts.extend(self.partition_key.clone());
        if let Some(e) = &self.error {
            parts.push(format!("ERROR({e})"));
        }
        parts.push(self.data.clone());
        parts.join(" ")
    }
}

/// Where records go: the command's stdout.
pub trait Sink {
    fn write(&mut self, record: &TailRecord) -> std::io::Result<()>;
    /// The reader of the output went away (`| head -1`): stop.
    fn closed(&mut self) -> bool {
        false
    }
}

/// Why a tail stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Max,
    Timeout,
    /// The output was closed.
    Closed,
    /// A host reported its bootstrap.
    Finished,
}

/// The sink with the filter and the count (`--grep`, `--max`).
pub struct Emit<'a> {
    sink: &'a mut dyn Sink,
    grep: Option<&'a regex_lite::Regex>,
    max: Option<u64>,
    pretty: bool,
    pub printed: u64,
    closed: bool,
}

impl Emit<'_> {
    /// `--max` reached, or the output closed.
    pub fn stopped(&mut self) -> bool {
        if !self.closed && self.sink.closed() {
            self.closed = true;
        }
        self.closed || self.max.is_some_and(|m| self.printed >= m)
    }

    pub fn record(&mut self, r: TailRecord) -> Result<()> {
        if self.stopped() {
            return Ok(());
        }
        if let Some(g) = self.grep {
            if !g.is_match(&r.data) {
                return Ok(());
            }
        }
        match self.sink.write(&r) {
            Ok(()) => self.printed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => return Err(Error::Config(format!("cannot write the output: {e}"))),
        }
        Ok(())
    }
}

/// `base` with `data` decoded, emitted.
pub fn emit_data(out: &mut Emit<'_>, mut base: TailRecord, data: &[u8]) -> Result<()> {
    let d = decode::decode(data, out.pretty);
    base.data = d.text;
    base.encoding = Some(d.encoding);
    base.gzip = d.gzip;
    out.record(base)
}

/// `t` as RFC 3339 UTC with milliseconds.
pub fn arrival_text(t: SystemTime) -> String {
    let whole = crate::time::rfc3339(t);
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    match whole.strip_suffix('Z') {
        Some(s) => format!("{s}.{ms:03}Z"),
        None => whole,
    }
}

/// Tails `target` (`stream.KEY`, `delivery.KEY` or `host.KEY` of the session's spec) into
/// `sink` until `--max`, `--timeout`, a closed output or (a host) its bootstrap report.
pub async fn tail(
    s: &Session,
    target: &str,
    opts: &TailOptions,
    sink: &mut dyn Sink,
) -> Result<Ended> {
    let model = &s.validated.model;
    let Some(r) = model
        .resources
        .values()
        .find(|r| r.address.to_string() == target)
    else {
        let mut known: Vec<String> = model
            .resources
            .values()
            .filter(|r| [STREAM, DELIVERY, HOST].contains(&r.address.kind))
            .map(|r| r.address.to_string())
            .collect();
        known.sort();
        return Err(Error::Config(format!(
            "{target:?} is not a stream, delivery or host of stack {} (it has: {})",
            s.cx.stack,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let mut out = Emit {
        sink,
        grep: opts.grep.as_ref(),
        max: opts.max,
        pretty: opts.pretty,
        printed: 0,
        closed: false,
    };
    if out.max == Some(0) {
        return Ok(Ended::Max);
    }
    let run = async {
        let kind = r.address.kind;
        if kind == STREAM {
            stream::tail(&s.cx, &r.name, opts, &mut out).await?;
            Ok(None)
        } else if kind == DELIVERY {
            delivery::tail(&s.cx, r, opts, &mut out).await?;
            Ok(None)
        } else if kind == HOST {
            host::tail(s, r, opts, &mut out).await.map(Some)
        } else {
            Err(Error::Config(format!(
                "{target} is a {}: tail follows a stream, a delivery or a host",
                kind.as_str()
            )))
        }
    };
    let finished = match opts.timeout {
        Some(t) => match tokio::time::timeout(t, run).await {
            Ok(done) => done?,
            Err(_) => return Ok(Ended::Timeout),
        },
        None => run.await?,
    };
    Ok(match finished {
        Some(e) => e,
        None if out.closed => Ended::Closed,
        None => Ended::Max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` records, then answers as a closed pipe.
    struct Pipe {
        got: Vec<String>,
        room: usize,
    }

    impl Sink for Pipe {
        fn write(&mut self, r: &TailRecord) -> std::io::Result<()> {
            if self.got.len() == self.room {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.got.push(r.line());
            Ok(())
        }
    }

    fn emit<'a>(sink: &'a mut Pipe, grep: Option<&'a regex_lite::Regex>, max: u64) -> Emit<'a> {
        Emit {
            sink,
            grep,
            max: Some(max),
            pretty: false,
            printed: 0,
            closed: false,
        }
    }

    fn rec(i: usize) -> TailRecord {
        TailRecord {
            shard: Some("shardId-000000000001".into()),
            partition_key: Some(format!("k{i}")),
            arrival: Some("2026-12-03T21:00:00.250Z".into()),
            ..TailRecord::default()
        }
    }

    #[test]
    fn grep_max_and_a_closed_pipe_stop_or_filter_the_records() {
        let re = regex_lite::Regex::new("Seoul").unwrap();
        let mut pipe = Pipe {
            got: Vec::new(),
            room: 10,
        };
        let mut out = emit(&mut pipe, Some(&re), 2);
        for (i, data) in [
            b"{\"city\": \"Seoul\"}".as_slice(),
            b"Busan",
            b"Seoul 2",
            b"Seoul 3",
        ]
        .into_iter()
        .enumerate()
        {
            emit_data(&mut out, rec(i), data).unwrap();
        }
        assert!(out.stopped());
        assert_eq!(out.printed, 2);
        assert_eq!(
            pipe.got,
            [
                "2026-12-03T21:00:00.250Z shardId-000000000001 k0 {\"city\":\"Seoul\"}",
                "2026-12-03T21:00:00.250Z shardId-000000000001 k2 Seoul 2"
            ]
        );
        // A closed pipe: no error, and nothing more is written.
        let mut pipe = Pipe {
            got: Vec::new(),
            room: 1,
        };
        let mut out = emit(&mut pipe, None, 100);
        for i in 0..3 {
            emit_data(&mut out, rec(i), b"x").unwrap();
        }
        assert!(out.stopped());
        assert_eq!((out.printed, pipe.got.len()), (1, 1));
    }

    #[test]
    fn errors_are_marked_and_arrival_has_milliseconds() {
        let r = TailRecord {
            source: Some("s3://b/failed/x".into()),
            error: Some("error output".into()),
            data: "{}".into(),
            ..TailRecord::default()
        };
        assert_eq!(r.line(), "- s3://b/failed/x ERROR(error output) {}");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["error"], "error output");
        assert!(v["shard"].is_null() && v["sequence"].is_null());
        let t = std::time::UNIX_EPOCH + Duration::from_millis(1_764_795_600_042);
        assert_eq!(arrival_text(t), "2025-12-03T21:00:00.042Z");
    }
}
