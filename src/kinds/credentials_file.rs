//! The AWS shared-credentials file external hosts' access keys are written to
//! (`apply --credentials-dir DIR`): `DIR/credentials`, one profile per external host
//! (`[streamstack-<stack>-<host>]`), merged with the profiles already in the file.
//!
//! - The file is replaced atomically: a temporary file in DIR created with mode 0600 (never
//!   readable by others, not even for a moment), written, synced, then renamed over the file.
//! - Only the host's profile is replaced; other profiles, comments and blank lines are kept as
//!   they were.
//! - The secret is never logged: errors name the file and the profile only.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The file's name inside the credentials directory.
pub const FILE_NAME: &str = "credentials";

/// The profile of an external host's key.
pub fn profile_name(stack: &str, host: &str) -> String {
    format!("streamstack-{stack}-{host}")
}

/// The credentials file inside `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// `text` (a shared-credentials file) with profile `profile` set to exactly `entries`: its
/// section replaced where it was, else appended; everything else kept.
pub fn merge(text: &str, profile: &str, entries: &[(&str, &str)]) -> String {
    let header = format!("[{profile}]");
    let mut section = header.clone();
    section.push('\n');
    for (k, v) in entries {
        section.push_str(&format!("{k} = {v}\n"));
    }
    let mut out = String::new();
    let mut in_target = false;
    let mut written = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_target = trimmed == header;
            if in_target {
                out.push_str(&section);
                written = true;
                continue;
            }
        }
        if !in_target {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !written {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&section);
    }
    out
}

/// The value of `key` in profile `profile` of `text`, if there is one.
pub fn value_of(text: &str, profile: &str, key: &str) -> Option<String> {
    let header = format!("[{profile}]");
    let mut in_target = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_target = trimmed == header;
            continue;
        }
        if in_target {
            if let Some((k, v)) = trimmed.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

/// The access key id profile `profile` of the file in `dir` holds, if the file and the
/// profile exist.
pub fn key_id_in(dir: &Path, profile: &str) -> Option<String> {
    let text = std::fs::read_to_string(path_in(dir)).ok()?;
    value_of(&text, profile, "aws_access_key_id")
}

/// Writes profile `profile` with this key into `dir/credentials` (creating `dir` with mode
/// 0700 if missing), atomically and with mode 0600; returns the file's path.
pub fn write_key(dir: &Path, profile: &str, key_id: &str, secret: &str) -> Result<PathBuf> {
    let fail = |what: &str, e: std::io::Error| {
        Error::Config(format!(
            "could not {what} the credentials file in {} (profile {profile}): {e}",
            dir.display()
        ))
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode_0700()
            .create(dir)
            .map_err(|e| fail("create the directory of", e))?;
    }
    let path = path_in(dir);
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(fail("read", e)),
    };
    let text = merge(
        &existing,
        profile,
        &[
            ("aws_access_key_id", key_id),
            ("aws_secret_access_key", secret),
        ],
    );
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        if let Err(cleanup) = std::fs::remove_file(&tmp) {
            tracing::warn!("could not remove {}: {cleanup}", tmp.display());
        }
        return Err(fail("write", e));
    }
    Ok(path)
}

/// A new file only its owner may read and write (0600 from its creation on Unix).
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// `DirBuilder::mode` where there is one.
trait Mode0700 {
    fn mode_0700(&mut self) -> &mut Self;
}

impl Mode0700 for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            self.mode(0o700);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [(&str, &str); 2] = [
        ("aws_access_key_id", "AKIANEW"),
        ("aws_secret_access_key", "s"),
    ];

    #[test]
    fn a_profile_is_appended_and_others_are_kept() {
        let text = "# mine\n[default]\naws_access_key_id = AKIAMINE\n";
        let out = merge(text, "streamstack-lab-edge", &KEY);
        assert!(out.starts_with(text), "{out}");
        assert!(out.ends_with("\n[streamstack-lab-edge]\naws_access_key_id = AKIANEW\naws_secret_access_key = s\n"), "{out}");
        assert_eq!(
            value_of(&out, "default", "aws_access_key_id").as_deref(),
            Some("AKIAMINE")
        );
    }

    #[test]
    fn a_profile_is_replaced_in_place() {
        let text = "[a]\nx = 1\n[streamstack-lab-edge]\naws_access_key_id = AKIAOLD\naws_secret_access_key = old\n[b]\ny = 2\n";
        let out = merge(text, "streamstack-lab-edge", &KEY);
        assert_eq!(
            out,
            "[a]\nx = 1\n[streamstack-lab-edge]\naws_access_key_id = AKIANEW\naws_secret_access_key = s\n[b]\ny = 2\n"
        );
        assert!(!out.contains("old"));
        assert_eq!(value_of(&out, "b", "y").as_deref(), Some("2"));
        assert_eq!(
            merge("", "p", &KEY),
            "[p]\naws_access_key_id = AKIANEW\naws_secret_access_key = s\n"
        );
    }

    #[test]
    fn the_file_is_written_private_and_merged() {
        let dir = std::env::temp_dir().join(format!("ss-creds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = write_key(&dir, "one", "AKIA1", "secret-1").unwrap();
        write_key(&dir, "two", "AKIA2", "secret-2").unwrap();
        write_key(&dir, "one", "AKIA3", "secret-3").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(key_id_in(&dir, "one").as_deref(), Some("AKIA3"));
        assert_eq!(key_id_in(&dir, "two").as_deref(), Some("AKIA2"));
        assert!(!text.contains("secret-1"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
