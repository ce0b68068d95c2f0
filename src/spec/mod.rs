//! The user's spec file: YAML loading with positions, scalar templating, validation rules and
//! the bridge to the desired model. Nothing here needs credentials or the network.

mod decode;
mod load;
pub mod positions;
pub mod rules;
mod template;
pub mod types;

use std::path::Path as FsPath;

pub use load::{LoadOptions, OFFLINE_ACCOUNT_ID, PLACEHOLDER_REGION};
pub use load::{
    BUCKET_KEYS, BUFFERING_KEYS, DELIVERY_KEYS, ERROR_LOGGING_KEYS, FLOW_KEYS, HOST_KEYS,
    SAMPLE_KEYS, SSH_KEYS, STREAM_KEYS, TOP_KEYS,
};

use crate::diagnostics::{Diagnostic, Diagnostics, Pos, Severity};
use crate::model::{self, Env, Model};
use positions::Positions;
use types::Spec;

/// A spec that passed every check, with the model it implies.
#[derive(Debug, Clone)]
pub struct Validated {
    pub spec: Spec,
    pub model: Model,
    /// Warnings (never errors) found on the way.
    pub warnings: Diagnostics,
    /// True when no region was configured and names were checked with a stand-in.
    pub region_is_placeholder: bool,
}

/// Reads and validates a spec file. Errors come back all at once, sorted by position.
pub fn load_file(path: &FsPath, opts: &LoadOptions) -> Result<Validated, Diagnostics> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&name, &text, opts),
        Err(e) => Err(Diagnostics(vec![Diagnostic {
            severity: Severity::Error,
            file: name,
            pos: Pos { line: 1, col: 1 },
            path: String::new(),
            message: format!("cannot read the file: {e}"),
            expected: None,
            help: None,
            notes: Vec::new(),
        }])),
    }
}

/// Validates spec text; `file` is the name diagnostics use.
pub fn load_str(file: &str, text: &str, opts: &LoadOptions) -> Result<Validated, Diagnostics> {
    let positions = Positions::parse(text);
    let (loaded, mut diags) = load::load(file, text, &positions, opts);
    let Some(loaded) = loaded else {
        return Err(diags);
    };
    if loaded.region_is_placeholder {
        diags.push(Diagnostic {
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
    if !loaded.names_derivable {
        // Every physical name starts with the stack (and many end with the region): checking
        // them would only repeat the error already reported.
        return Err(diags);
    }
    let env = Env::new(&loaded.account_id, &loaded.region, &loaded.spec.stack);
    match model::derive(&loaded.spec, env) {
        Ok(_) if diags.has_errors() => Err(diags),
        Ok(model) => Ok(Validated {
            spec: loaded.spec,
            model,
            warnings: diags,
            region_is_placeholder: loaded.region_is_placeholder,
        }),
        Err(errors) => {
            for e in errors {
                let pos = if e.at_key {
                    positions.key(&e.path)
                } else {
                    positions.value(&e.path)
                };
                diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: file.to_string(),
                    pos,
                    path: e.path.to_string(),
                    message: e.violation.message,
                    expected: e.violation.expected,
                    help: None,
                    notes: positions.merge_notes(&e.path),
                });
            }
            Err(diags)
        }
    }
}
