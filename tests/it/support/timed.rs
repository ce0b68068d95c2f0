//! When each Kinesis call reached the proxy, and the shard it is about: tests of a rate per
//! shard (`tail`'s pacer) assert a minimum spacing between arrivals, which no machine speed can
//! make fail.

use std::time::Instant;

use base64::Engine;
use serde_json::Value;

/// One Kinesis call as it arrived.
#[derive(Clone, Debug)]
pub struct Timed {
    /// `kinesis:GetRecords`, ...
    pub call: String,
    /// When the request reached the proxy (before it was answered).
    pub at: Instant,
    /// The shard the call is about, when it names one.
    pub shard: Option<String>,
}

/// The shard a Kinesis request names: its `ShardId`, else the one inside its `ShardIterator`
/// (moto's iterators are the base64 of `STREAM:SHARD:SEQUENCE`; an AWS iterator is opaque).
pub fn shard_of(json: &Value) -> Option<String> {
    if let Some(id) = json.get("ShardId").and_then(Value::as_str) {
        return Some(id.to_string());
    }
    let it = json.get("ShardIterator").and_then(Value::as_str)?;
    let clean: String = it.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split(':');
    parts.next()?;
    parts.next().map(str::to_string)
}
