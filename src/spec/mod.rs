//! The user's spec file: YAML loading with positions, scalar templating and validation rules,
//! into a typed [`types::Spec`] and diagnostics. Nothing here needs credentials or the network,
//! and nothing here knows a resource kind: the `derive` module turns a spec into the desired model.

mod decode;
mod load;
pub mod positions;
pub mod rules;
mod template;
pub mod types;

use std::path::Path as FsPath;

pub use load::{LoadOptions, Loaded, OFFLINE_ACCOUNT_ID, PLACEHOLDER_REGION};
pub use load::{
    BUCKET_KEYS, BUFFERING_KEYS, DELIVERY_KEYS, ERROR_LOGGING_KEYS, FLOW_KEYS, HOST_KEYS,
    SAMPLE_KEYS, SSH_KEYS, STREAM_KEYS, TOP_KEYS,
};

use crate::diagnostics::{Diagnostic, Diagnostics, Pos, Severity};
use positions::Positions;

/// A spec read and checked on its own (before deriving resources): the decoded spec when its
/// structure allowed one, every diagnostic so far, and the positions that later diagnostics
/// (found while deriving) are reported at.
pub struct Read {
    pub loaded: Option<Loaded>,
    pub diagnostics: Diagnostics,
    pub positions: Positions,
}

/// Reads and checks spec text; `file` is the name diagnostics use.
pub fn read_str(file: &str, text: &str, opts: &LoadOptions) -> Read {
    let positions = Positions::parse(text);
    let (loaded, mut diagnostics) = load::load(file, text, &positions, opts);
    if loaded.as_ref().is_some_and(|l| l.region_is_placeholder) {
        diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            file: file.to_string(),
            pos: Pos { line: 1, col: 1 },
            path: "region".into(),
            message: format!(
                "no region in the spec, --region or AWS_REGION; names are checked with the longest region code ({PLACEHOLDER_REGION})"
            ),
            expected: None,
            help: None,
            notes: Vec::new(),
        });
    }
    Read {
        loaded,
        diagnostics,
        positions,
    }
}

/// The one diagnostic of a spec file that cannot be read.
pub fn unreadable(path: &FsPath, e: &std::io::Error) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        severity: Severity::Error,
        file: path.display().to_string(),
        pos: Pos { line: 1, col: 1 },
        path: String::new(),
        message: format!("cannot read the file: {e}"),
        expected: None,
        help: None,
        notes: Vec::new(),
    }])
}
