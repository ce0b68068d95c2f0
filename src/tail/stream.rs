//! `tail stream.KEY`: every open shard, followed across reshards, politely.
//!
//! - Shards are listed at the start and again only when one ends: AWS ends a closed shard read
//!   to its end with no next iterator. A child is read only once each of its parents (still
//!   listed) has ended, from its start (`TRIM_HORIZON`): nothing is lost or repeated across a
//!   split or a merge. A shard already closed when the tail starts is read too (from the start
//!   asked for): on AWS its first page ends it.
//! - One `GetRecords` per shard at a time, at least [`GET_RECORDS_GAP`] after the previous one
//!   on that shard returned (the [`Pacer`] `check` uses): Firehose keeps the other four of the
//!   shard's 5 reads a second. Caught up (`MillisBehindLatest` 0), a shard waits
//!   [`CAUGHT_UP_GAP`]; refused with `ProvisionedThroughputExceededException`, it backs off from
//!   2 s, doubling to 30 s. Requests go without the SDK's own retries (their backoff would not
//!   keep the pace).
//! - moto never ends a shard, and after a split keeps putting records into the closed parent
//!   (its shard lookup takes the first shard whose hash range matches, closed or not; the
//!   children stay empty): reading a closed shard until AWS says it ended is what shows them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{Shard, ShardIteratorType};

use super::{emit_data, Emit, Start, TailOptions, TailRecord};
use crate::aws::{all_pages, send_once, Ctx};
use crate::kinds::check_memo::{parents_first, Pacer, GET_RECORDS_GAP};
use crate::kinds::Cx;
use crate::Result;

/// A caught-up shard's next `GetRecords` waits this long after the previous one returned.
pub const CAUGHT_UP_GAP: Duration = Duration::from_millis(1500);
/// Every shard ended: the shards are listed again after this long.
const ALL_ENDED_WAIT: Duration = Duration::from_secs(1);
const THROTTLED_FIRST: Duration = Duration::from_secs(2);
const THROTTLED_MOST: Duration = Duration::from_secs(30);

/// What the reader knows of one shard.
#[derive(Debug, Default)]
pub struct ShardState {
    pub parents: Vec<String>,
    /// Listed as closed (an ending sequence number).
    pub closed: bool,
    /// Read to its end: nothing more will come.
    pub ended: bool,
    /// Listed in the first listing (read from the asked start); later ones from their start.
    pub initial: bool,
    pub iterator: Option<String>,
    /// Not before this (a back-off, or a caught-up wait).
    pub due: Option<Instant>,
    pub backoff: Option<Duration>,
    pub caught_up: bool,
    /// The highest sequence number read (an expired iterator goes on after it).
    pub last_sequence: Option<String>,
}

/// `a < b` for Kinesis sequence numbers (decimal strings of up to 128 bits).
pub fn sequence_lt(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) < (b.len(), b)
}

/// The shards of a stream as the reader follows them.
#[derive(Debug, Default)]
pub struct Shards {
    pub shards: BTreeMap<String, ShardState>,
    /// Listing order, parents first.
    order: Vec<String>,
    listed_once: bool,
}

impl Shards {
    /// Takes a listing: (id, parents, closed), in any order.
    pub fn listed(&mut self, listing: Vec<(String, Vec<String>, bool)>) {
        let first = !self.listed_once;
        self.listed_once = true;
        let ordered = parents_first(listing, |s| s.0.as_str(), |s| s.1.clone());
        self.order = ordered.iter().map(|s| s.0.clone()).collect();
        for (id, parents, closed) in ordered {
            let s = self.shards.entry(id).or_insert_with(|| ShardState {
                initial: first,
                ..ShardState::default()
            });
            s.parents = parents;
            s.closed = closed;
        }
    }

    /// Shards that may be read now: not ended, each parent still known ended.
    pub fn readable(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| {
                self.shards.get(*id).is_some_and(|s| {
                    !s.ended
                        && s.parents
                            .iter()
                            .all(|p| self.shards.get(p).is_none_or(|p| p.ended))
                })
            })
            .cloned()
            .collect()
    }

    /// The readable shard whose turn comes first, and when (pacer and back-off).
    pub fn next_turn(&self, pacer: &Pacer, now: Instant) -> Option<(String, Instant)> {
        self.readable()
            .into_iter()
            .map(|id| {
                let paced = now + pacer.wait(&id, now);
                let due = self.shards.get(&id).and_then(|s| s.due);
                let at = due.map_or(paced, |d| d.max(paced));
                (id, at)
            })
            .min_by_key(|(_, at)| *at)
    }
}

fn listing_entry(s: Shard) -> (String, Vec<String>, bool) {
    let parents = [s.parent_shard_id, s.adjacent_parent_shard_id]
        .into_iter()
        .flatten()
        .collect();
    let closed = s
        .sequence_number_range
        .as_ref()
        .is_some_and(|r| r.ending_sequence_number.is_some());
    (s.shard_id, parents, closed)
}

async fn list(cx: &Cx, stream: &str) -> Result<Vec<(String, Vec<String>, bool)>> {
    let shards = all_pages("kinesis:ListShards", |token: Option<String>| {
        let call = cx.clients.kinesis.list_shards();
        // The stream's name and a NextToken cannot go together.
        let call = match token {
            Some(t) => call.next_token(t),
            None => call.stream_name(stream),
        };
        async move {
            let out = call.send().await.op("kinesis:ListShards")?;
            Ok((out.shards.unwrap_or_default(), out.next_token))
        }
    })
    .await?;
    Ok(shards.into_iter().map(listing_entry).collect())
}

async fn iterator(
    cx: &Cx,
    stream: &str,
    shard: &str,
    s: &ShardState,
    opts: &TailOptions,
) -> Result<Option<String>> {
    let call = cx
        .clients
        .kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    let call = match (&s.last_sequence, s.initial, opts.start) {
        (Some(seq), _, _) => call
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
        (None, false, _) | (None, true, Start::FromStart) => {
            call.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        (None, true, Start::Latest) => call.shard_iterator_type(ShardIteratorType::Latest),
        (None, true, Start::Since(d)) => {
            let at = std::time::SystemTime::now()
                .checked_sub(d)
                .unwrap_or(std::time::UNIX_EPOCH);
            call.shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_smithy_types::DateTime::from(at))
        }
    };
    Ok(call
        .send()
        .await
        .op("kinesis:GetShardIterator")?
        .shard_iterator)
}

/// Follows the stream until the emitter says stop (`--max`, a closed output).
pub async fn tail(cx: &Cx, stream: &str, opts: &TailOptions, out: &mut Emit<'_>) -> Result<()> {
    let pacer = Pacer::new(GET_RECORDS_GAP);
    let mut shards = Shards::default();
    shards.listed(list(cx, stream).await?);
    let mut relist = false;
    loop {
        if out.stopped() {
            return Ok(());
        }
        if relist {
            shards.listed(list(cx, stream).await?);
            relist = false;
        }
        let Some((id, at)) = shards.next_turn(&pacer, Instant::now()) else {
            // Every shard ended (a stream being resharded): look again in a while.
            tokio::time::sleep(ALL_ENDED_WAIT).await;
            relist = true;
            continue;
        };
        let now = Instant::now();
        if at > now {
            // In small steps, so that a closed output is noticed.
            tokio::time::sleep((at - now).min(Duration::from_millis(250))).await;
            continue;
        }
        relist |= read_page(cx, stream, &id, &mut shards, &pacer, opts, out).await?;
    }
}

/// One `GetRecords` on `id`; true when the shard ended (list again).
async fn read_page(
    cx: &Cx,
    stream: &str,
    id: &str,
    shards: &mut Shards,
    pacer: &Pacer,
    opts: &TailOptions,
    out: &mut Emit<'_>,
) -> Result<bool> {
    let Some(s) = shards.shards.get_mut(id) else {
        return Ok(false);
    };
    let it = match s.iterator.take() {
        Some(it) => it,
        None => match iterator(cx, stream, id, s, opts).await? {
            Some(it) => it,
            None => {
                s.ended = true;
                return Ok(true);
            }
        },
    };
    let request = cx
        .clients
        .kinesis
        .get_records()
        .shard_iterator(&it)
        .limit(10_000);
    let sent = send_once!(aws_sdk_kinesis, request)
        .await
        .op("kinesis:GetRecords");
    let now = Instant::now();
    pacer.done(id, now);
    let page = match sent {
        Ok(page) => page,
        Err(e) if e.code() == Some("ProvisionedThroughputExceededException") => {
            let b = s
                .backoff
                .map_or(THROTTLED_FIRST, |b| (b * 2).min(THROTTLED_MOST));
            tracing::info!("{id}: GetRecords throttled, next in {} s", b.as_secs());
            s.backoff = Some(b);
            s.due = Some(now + b);
            s.iterator = Some(it);
            return Ok(false);
        }
        // An iterator lives 5 minutes: a new one from the last record read.
        Err(e) if e.code() == Some("ExpiredIteratorException") => return Ok(false),
        Err(e) => return Err(e),
    };
    s.backoff = None;
    let caught_up = page.millis_behind_latest.unwrap_or(0) == 0;
    s.caught_up = caught_up;
    s.due = caught_up.then(|| now + CAUGHT_UP_GAP);
    s.iterator = page.next_shard_iterator;
    // AWS's end of a closed shard: no next iterator (the children come next).
    let ended = s.iterator.is_none();
    s.ended = ended;
    for r in page.records {
        let seq = r.sequence_number;
        let pk = r.partition_key.unwrap_or_default();
        if s.last_sequence
            .as_deref()
            .is_none_or(|last| sequence_lt(last, &seq))
        {
            s.last_sequence = Some(seq.clone());
        }
        let arrival = r
            .approximate_arrival_timestamp
            .and_then(|t| std::time::SystemTime::try_from(t).ok());
        let base = TailRecord {
            shard: Some(id.to_string()),
            sequence: Some(seq),
            partition_key: Some(pk),
            arrival: arrival.map(super::arrival_text),
            ..TailRecord::default()
        };
        match super::decode::deaggregate(r.data.as_ref()) {
            Some(users) => {
                for (i, u) in users.into_iter().enumerate() {
                    let rec = TailRecord {
                        sequence: base.sequence.as_ref().map(|s| format!("{s}:{i}")),
                        partition_key: Some(u.partition_key),
                        ..base.clone()
                    };
                    emit_data(out, rec, &u.data)?;
                }
            }
            None => emit_data(out, base, r.data.as_ref())?,
        }
        if out.stopped() {
            break;
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(items: &[(&str, &[&str], bool)]) -> Vec<(String, Vec<String>, bool)> {
        items
            .iter()
            .map(|(id, parents, closed)| {
                (
                    id.to_string(),
                    parents.iter().map(|p| p.to_string()).collect(),
                    *closed,
                )
            })
            .collect()
    }

    #[test]
    fn children_wait_for_their_parents_to_end() {
        let mut s = Shards::default();
        s.listed(listing(&[("s0", &[], false), ("s1", &[], false)]));
        assert_eq!(s.readable(), ["s0", "s1"]);
        // A split of s0 and a merge of s1 with... s0's children, listed children first.
        s.listed(listing(&[
            ("s3", &["s0"], false),
            ("s2", &["s0"], false),
            ("s1", &[], false),
            ("s0", &[], true),
        ]));
        assert_eq!(s.readable(), ["s1", "s0"]);
        assert!(!s.shards["s2"].initial, "a child is read from its start");
        s.shards.get_mut("s0").unwrap().ended = true;
        assert_eq!(s.readable(), ["s1", "s3", "s2"]);
        // A merge of s2 and s3 into s4: s4 waits for both.
        s.listed(listing(&[
            ("s0", &[], true),
            ("s1", &[], false),
            ("s2", &[], true),
            ("s3", &[], true),
            ("s4", &["s2", "s3"], false),
        ]));
        s.shards.get_mut("s2").unwrap().ended = true;
        assert!(!s.readable().contains(&"s4".to_string()));
        s.shards.get_mut("s3").unwrap().ended = true;
        assert_eq!(s.readable(), ["s1", "s4"]);
        // A parent no longer listed (past retention) does not hold its child back.
        let mut t = Shards::default();
        t.listed(listing(&[("s9", &["gone"], false)]));
        assert_eq!(t.readable(), ["s9"]);
    }

    #[test]
    fn the_next_turn_keeps_each_shard_a_gap_apart_and_honours_back_off() {
        let pacer = Pacer::new(GET_RECORDS_GAP);
        let mut s = Shards::default();
        s.listed(listing(&[("a", &[], false), ("b", &[], false)]));
        let t0 = Instant::now();
        // a was just read: b goes first, at once; a after the gap.
        pacer.done("a", t0);
        assert_eq!(s.next_turn(&pacer, t0), Some(("b".to_string(), t0)));
        pacer.done("b", t0);
        let (id, at) = s.next_turn(&pacer, t0).unwrap();
        assert_eq!((id.as_str(), at), ("a", t0 + GET_RECORDS_GAP));
        // A throttled shard waits for its back-off even when the pacer would let it go.
        s.shards.get_mut("a").unwrap().due = Some(t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(2);
        assert_eq!(s.next_turn(&pacer, later), Some(("b".to_string(), later)));
        pacer.done("b", later);
        let (id, at) = s.next_turn(&pacer, later).unwrap();
        assert_eq!((id.as_str(), at), ("b", later + GET_RECORDS_GAP));
        // No turn is ever sooner than the gap after the shard's last call.
        for id in ["a", "b"] {
            assert!(pacer.wait(id, later) > Duration::ZERO || id == "a");
        }
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_lt("9", "10"));
        assert!(!sequence_lt("10", "9"));
        assert!(!sequence_lt("10", "10"));
        assert!(sequence_lt(
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692540925702759324208523137515618"
        ));
    }
}
