//! What the executor reports while it works. The UI turns events into lines (or NDJSON).

use std::time::Duration;

use serde::Serialize;

use crate::model::Address;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An operation started.
    Start { address: Address, action: String },
    /// Still working: what it waits for, and for how long so far.
    Progress {
        address: Address,
        waiting_for: String,
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    /// A retry after an error that is expected to clear (IAM propagation, busy resource).
    Retry {
        address: Address,
        error: String,
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    Done {
        address: Address,
        action: String,
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    Failed {
        address: Address,
        action: String,
        error: String,
    },
    /// Not attempted because something it depends on failed.
    Skipped { address: Address, because: Address },
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
    }
}

/// Where events go. Cloneable; sending never blocks and never fails the operation.
#[derive(Clone)]
pub struct Events(Option<Sink>);

#[derive(Clone)]
enum Sink {
    Channel(tokio::sync::mpsc::UnboundedSender<Event>),
    /// Handled at once, on the sender's thread: what it prints comes before anything the
    /// caller prints after the operation returns.
    Call(std::sync::Arc<dyn Fn(&Event) + Send + Sync>),
}

impl Events {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<Event>) -> Self {
        Events(Some(Sink::Channel(tx)))
    }
    /// Events handed to `f` as they happen (a printer).
    pub fn call(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Events(Some(Sink::Call(std::sync::Arc::new(f))))
    }
    /// Drops every event.
    pub fn none() -> Self {
        Events(None)
    }
    pub fn send(&self, e: Event) {
        match &self.0 {
            Some(Sink::Channel(tx)) => {
                let _ = tx.send(e);
            }
            Some(Sink::Call(f)) => f(&e),
            None => {}
        }
    }
}
