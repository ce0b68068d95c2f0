//! What one `check` remembers from one look at the pipeline to the next, so that polling costs
//! AWS only what is new: each S3 object is downloaded once per check, each shard is read on from
//! where the last look stopped, and `GetRecords` keeps its pace on every shard.
//!
//! Kinesis allows 5 `GetRecords` per second per shard, shared by every consumer of the shard,
//! Firehose reading the stream included
//! (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html): `check` takes
//! at most one of them, at least a second after its previous call on that shard returned.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::objects::Counted;

/// The least time between the end of one `GetRecords` on a shard and the start of the next.
/// Counted from the previous answer, not its request, so that the service too sees the calls a
/// second apart whatever the time they spent in flight; the margin covers timer rounding.
pub const GET_RECORDS_GAP: Duration = Duration::from_millis(1020);

/// Turns per key (a shard) at least `gap` apart.
#[derive(Debug)]
pub struct Pacer {
    gap: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    pub fn new(gap: Duration) -> Pacer {
        Pacer {
            gap,
            last: Mutex::default(),
        }
    }

    /// How long a call on `key` made at `now` must wait for its turn.
    pub fn wait(&self, key: &str, now: Instant) -> Duration {
        let last = self.lock();
        last.get(key).map_or(Duration::ZERO, |t| {
            (*t + self.gap).saturating_duration_since(now)
        })
    }

    /// Notes that a call on `key` ended (answered or not) at `now`.
    pub fn done(&self, key: &str, now: Instant) {
        self.lock().insert(key.to_string(), now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where a shard's reading stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCursor {
    /// The iterator to read on with; `None` before the first read.
    pub iterator: Option<String>,
    /// Records read so far, and those carrying the run id.
    pub records: u64,
    pub ours: u64,
    /// A closed shard read to its end (no next iterator): nothing more to read.
    pub ended: bool,
}

/// One object's count, or why it could not be read.
pub type ObjectCount = std::result::Result<Counted, String>;

/// What one check remembers (see the module docs). Shared by every look of the check.
#[derive(Debug)]
pub struct CheckMemo {
    pub get_records: Pacer,
    /// By bucket, key and ETag (a rewritten object is read again).
    objects: Mutex<HashMap<(String, String, String), ObjectCount>>,
    /// By stream and shard id.
    shards: Mutex<HashMap<(String, String), ShardCursor>>,
}

impl Default for CheckMemo {
    fn default() -> CheckMemo {
        CheckMemo {
            get_records: Pacer::new(GET_RECORDS_GAP),
            objects: Mutex::default(),
            shards: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl CheckMemo {
    pub fn object(&self, bucket: &str, key: &str, etag: &str) -> Option<ObjectCount> {
        let k = (bucket.to_string(), key.to_string(), etag.to_string());
        lock(&self.objects).get(&k).cloned()
    }

    pub fn remember_object(&self, bucket: &str, key: &str, etag: &str, count: ObjectCount) {
        let k = (bucket.to_string(), key.to_string(), etag.to_string());
        lock(&self.objects).insert(k, count);
    }

    pub fn shard(&self, stream: &str, shard: &str) -> ShardCursor {
        let k = (stream.to_string(), shard.to_string());
        lock(&self.shards).get(&k).cloned().unwrap_or_default()
    }

    pub fn remember_shard(&self, stream: &str, shard: &str, cursor: ShardCursor) {
        lock(&self.shards).insert((stream.to_string(), shard.to_string()), cursor);
    }
}

/// Shards in reading order: every parent (and adjacent parent, after a merge) listed before
/// its children, so a closed parent is read to its end before the shards that continue it;
/// otherwise in the order given.
pub fn parents_first<T>(
    shards: Vec<T>,
    id: impl Fn(&T) -> &str,
    parents: impl Fn(&T) -> Vec<String>,
) -> Vec<T> {
    let ids: Vec<String> = shards.iter().map(|s| id(s).to_string()).collect();
    let mut left: Vec<Option<T>> = shards.into_iter().map(Some).collect();
    let mut placed: Vec<String> = Vec::new();
    let mut out = Vec::new();
    while out.len() < ids.len() {
        let before = out.len();
        for slot in left.iter_mut() {
            let ready = slot.as_ref().is_some_and(|s| {
                parents(s)
                    .iter()
                    .all(|p| !ids.contains(p) || placed.contains(p))
            });
            if let Some(s) = slot.take_if(|_| ready) {
                placed.push(id(&s).to_string());
                out.push(s);
            }
        }
        if out.len() == before {
            // A cycle (no real stream has one): the rest in the order given.
            out.extend(left.iter_mut().filter_map(Option::take));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard's calls as our code schedules them against a clock the test moves: each waits
    /// what the pacer says, then takes `latency` to be answered.
    fn schedule(pacer: &Pacer, t0: Instant, calls: &[(&str, f64, f64)]) -> Vec<(String, f64)> {
        let mut clock = t0;
        let mut starts = Vec::new();
        for (shard, idle, latency) in calls {
            clock += Duration::from_secs_f64(*idle);
            clock += pacer.wait(shard, clock);
            starts.push((shard.to_string(), (clock - t0).as_secs_f64()));
            clock += Duration::from_secs_f64(*latency);
            pacer.done(shard, clock);
        }
        starts
    }

    #[test]
    fn get_records_on_a_shard_start_at_least_a_second_after_the_last_one_ended() {
        let pacer = Pacer::new(GET_RECORDS_GAP);
        let t0 = Instant::now();
        // (shard, idle before the call, time in flight)
        let calls = [
            ("a", 0.0, 0.05),
            ("a", 0.0, 0.3),
            ("b", 0.0, 0.01),
            ("a", 0.2, 0.0),
            ("b", 2.0, 0.1),
            ("a", 0.0, 0.0),
            ("a", 0.0, 0.0),
        ];
        let starts = schedule(&pacer, t0, &calls);
        for shard in ["a", "b"] {
            let mut last_end: Option<f64> = None;
            for (i, (s, start)) in starts.iter().enumerate() {
                if s != shard {
                    continue;
                }
                if let Some(end) = last_end {
                    assert!(
                        start - end >= 1.0,
                        "{shard}: call {i} at {start}, last ended {end}"
                    );
                }
                last_end = Some(start + calls[i].2);
            }
        }
        // Shards do not wait for each other: b's first call went at once after a's second.
        assert!(
            (starts[2].1 - (starts[1].1 + 0.3)).abs() < 1e-9,
            "{starts:?}"
        );
        // A shard idle for longer than the gap does not wait.
        assert_eq!(
            pacer.wait("b", t0 + Duration::from_secs(60)),
            Duration::ZERO
        );
    }

    #[test]
    fn closed_parents_are_read_before_their_children() {
        // After a split (s0 → s2, s3) and a merge (s2 + s3 → s4), listed children first.
        let shards = vec![
            ("s4", vec!["s2", "s3"]),
            ("s3", vec!["s0"]),
            ("s2", vec!["s0"]),
            ("s1", vec![]),
            ("s0", vec!["gone"]),
        ];
        let order: Vec<&str> = parents_first(
            shards,
            |s| s.0,
            |s| s.1.iter().map(|p| p.to_string()).collect(),
        )
        .into_iter()
        .map(|s| s.0)
        .collect();
        let at = |id: &str| order.iter().position(|s| *s == id).unwrap();
        assert_eq!(order.len(), 5);
        assert!(at("s0") < at("s2") && at("s0") < at("s3"), "{order:?}");
        assert!(at("s2") < at("s4") && at("s3") < at("s4"), "{order:?}");
    }
}
