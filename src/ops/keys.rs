//! Secrets kinds hand out on apply (an external host's access key), around the executor: which
//! are due is asked before any write (an apply that must write one and has no
//! `--credentials-dir` is refused with nothing changed), and they are handed out after a
//! successful apply. Nothing here names a kind: each kind answers through its
//! `key_due`/`issue_key`.

use super::Session;
use crate::kinds::{self, IssuedKey, KeyOptions};
use crate::{Error, Result};

impl Session {
    /// Why each desired resource needs a new secret in this apply (empty: none does).
    pub async fn keys_due(&self, opts: &KeyOptions) -> Result<Vec<String>> {
        let mut due = Vec::new();
        for r in self.validated.model.resources.values() {
            let handler = kinds::handler(r.address.kind)?;
            if let Some(why) = handler.key_due(&self.cx, r, opts).await? {
                due.push(why);
            }
        }
        Ok(due)
    }

    /// Refuses, before any write, an apply whose due secrets have nowhere to go.
    pub async fn check_keys_writable(&self, opts: &KeyOptions) -> Result<Vec<String>> {
        let due = self.keys_due(opts).await?;
        if !due.is_empty() && opts.dir.is_none() {
            return Err(Error::Config(format!(
                "{}; access keys are written only to a credentials file: pass \
                 --credentials-dir DIR (nothing was changed)",
                due.join("; ")
            )));
        }
        Ok(due)
    }

    /// After a successful apply: every secret that is due, handed out (written to
    /// `opts.dir`), old ones deleted only after the new ones are written.
    pub async fn issue_keys(&self, opts: &KeyOptions) -> Result<Vec<IssuedKey>> {
        let mut issued = Vec::new();
        for r in self.validated.model.resources.values() {
            let handler = kinds::handler(r.address.kind)?;
            if let Some(k) = handler.issue_key(&self.cx, r, opts).await? {
                issued.push(k);
            }
        }
        Ok(issued)
    }
}
