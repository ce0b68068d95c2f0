//! Creations in flight. Ownership is the `streamstack:stack` tag, and most AWS APIs take tags at
//! creation, so a resource is never untagged. Some endpoints ignore creation tags (moto's S3
//! CreateBucket and Kinesis CreateStream), and there a run killed between "created" and
//! "tagged", or one whose create answer was lost, would leave an untagged resource that the
//! stack then refuses as foreign. The journal closes that window: before such a create, the
//! kind records (kind, name); after the tags are on, it removes the record. A later run that
//! finds an untagged resource with a recorded name knows it is its own and adopts it (the plan
//! then tags it).
//!
//! The journal is a small JSON file per account, region and stack in the state directory
//! (`STREAMSTACK_STATE_DIR`, else `$XDG_STATE_HOME/streamstack`, else
//! `~/.local/state/streamstack`). Without a usable directory it lives in memory, which still
//! covers lost answers within one run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::Kind;

/// (kind, name) → when the creation began, in seconds since the epoch.
type Entries = BTreeMap<(String, String), u64>;

/// How much earlier than the recorded start a resource may say it was created (clock skew
/// between this machine and AWS) and still be the one this stack created.
pub const CLOCK_SKEW: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
pub struct Journal {
    path: Option<PathBuf>,
    entries: Mutex<Entries>,
    /// What earlier runs left (read at open): only those can vouch for a resource found
    /// untagged. Within a run, the kinds know whether an attempt of theirs may have created it.
    earlier: Entries,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn state_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("STREAMSTACK_STATE_DIR")
        .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("streamstack")))
        .or_else(|| env("HOME").map(|h| h.join(".local/state/streamstack")))
}

/// The entries a journal file holds; none when there is no file. A file that cannot be read or
/// parsed only costs the cross-run protection: that is said, and the run goes on without it.
fn read_entries(path: &std::path::Path) -> Entries {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Entries::new(),
        Err(e) => {
            tracing::warn!("cannot read the creation journal {}: {e}", path.display());
            return Entries::new();
        }
    };
    match serde_json::from_str::<Vec<(String, String, u64)>>(&text) {
        Ok(list) => list.into_iter().map(|(k, n, t)| ((k, n), t)).collect(),
        Err(e) => {
            tracing::warn!("ignoring the creation journal {}: {e}", path.display());
            Entries::new()
        }
    }
}

impl Journal {
    /// An empty journal that lives only in memory.
    pub fn in_memory() -> Journal {
        Journal::default()
    }

    /// The journal of one stack in one account and region.
    pub fn open(account_id: &str, region: &str, stack: &str) -> Journal {
        let path =
            state_dir().map(|d| d.join(format!("creating-{account_id}-{region}-{stack}.json")));
        let entries = path.as_deref().map(read_entries).unwrap_or_default();
        Journal {
            path,
            earlier: entries.clone(),
            entries: Mutex::new(entries),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the file atomically (temp file, then rename); failures only cost the cross-run
    /// protection, so they are logged, not raised.
    fn save(&self, entries: &Entries) {
        let Some(path) = &self.path else {
            return;
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            if entries.is_empty() {
                return match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                };
            }
            let list: Vec<(&String, &String, u64)> =
                entries.iter().map(|((k, n), t)| (k, n, *t)).collect();
            let text = serde_json::to_string(&list).map_err(std::io::Error::other)?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!("cannot write the creation journal {}: {e}", path.display());
        }
    }

    /// Records that `name` of `kind` is about to be created (keeping the first start, when an
    /// earlier run began it too).
    pub fn begin(&self, kind: Kind, name: &str) {
        let mut e = self.entries();
        if let std::collections::btree_map::Entry::Vacant(v) =
            e.entry((kind.to_string(), name.to_string()))
        {
            v.insert(now_secs());
            self.save(&e);
        }
    }

    /// The creation is complete (the resource carries its tags), or did not happen.
    pub fn end(&self, kind: Kind, name: &str) {
        let mut e = self.entries();
        if e.remove(&(kind.to_string(), name.to_string())).is_some() {
            self.save(&e);
        }
    }

    /// Was a creation of `name` begun and not ended?
    pub fn has(&self, kind: Kind, name: &str) -> bool {
        self.entries()
            .contains_key(&(kind.to_string(), name.to_string()))
    }

    /// Is a resource of `kind` called `name`, which AWS says was created at `created`, the one
    /// an earlier run of this stack began creating (and died before tagging)? Only if that run
    /// left the record, and the resource is not older than the record: a same-named resource
    /// that existed before is someone else's.
    pub fn created_it(&self, kind: Kind, name: &str, created: Option<SystemTime>) -> bool {
        let Some(begun) = self
            .earlier
            .get(&(kind.to_string(), name.to_string()))
            .copied()
        else {
            return false;
        };
        let Some(created) = created.and_then(|c| c.duration_since(UNIX_EPOCH).ok()) else {
            return false;
        };
        created.as_secs() + CLOCK_SKEW.as_secs() >= begun
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_forgets_what_ended() {
        let dir = std::env::temp_dir().join(format!("ss-journal-{}", std::process::id()));
        std::env::set_var("STREAMSTACK_STATE_DIR", &dir);
        let k = Kind::new("stream");
        let j = Journal::open("123456789012", "eu-west-1", "lab");
        j.begin(k, "lab-weather");
        j.begin(k, "lab-other");
        j.end(k, "lab-other");
        // A new process (a run after kill -9) sees what was begun and not ended.
        let again = Journal::open("123456789012", "eu-west-1", "lab");
        assert!(again.has(k, "lab-weather"));
        assert!(!again.has(k, "lab-other"));
        assert!(!Journal::open("123456789012", "eu-west-1", "other").has(k, "lab-weather"));
        // Only a resource created after the creation began is the stack's.
        let now = SystemTime::now();
        assert!(again.created_it(k, "lab-weather", Some(now)));
        assert!(!again.created_it(k, "lab-weather", Some(now - Duration::from_secs(3600))));
        assert!(!again.created_it(k, "lab-weather", None));
        assert!(!again.created_it(k, "lab-other", Some(now)));
        again.end(k, "lab-weather");
        assert!(!Journal::open("123456789012", "eu-west-1", "lab").has(k, "lab-weather"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
