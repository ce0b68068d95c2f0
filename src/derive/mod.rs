//! From the user's spec to the desired model: `crate::spec` reads and checks the file on its
//! own; this module derives every resource the spec implies (physical names, the roles,
//! instance profiles and security groups no one writes, tags, least-privilege policies,
//! rendered user-data, dependency edges) with each kind's own property struct, and checks what
//! can only be checked on final values (derived name lengths, references, unique names).
//!
//! It sits above `crate::kinds` (it builds their property structs) and below everything that
//! needs a model (`plan`, `ops`, `cloudformation`): `model` itself is plain data that names no
//! kind.

mod deliveries;
mod deriver;
mod hosts;
mod names;
mod storage;

use std::collections::BTreeMap;
use std::path::Path;

pub use deriver::DeriveError;
use deriver::Deriver;

use crate::diagnostics::{Diagnostic, Diagnostics, Severity};
use crate::model::{Env, Model};
use crate::spec::types::Spec;
use crate::spec::{self, LoadOptions};

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
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Validated, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&path.display().to_string(), &text, opts),
        Err(e) => Err(spec::unreadable(path, &e)),
    }
}

/// Validates spec text and derives its model; `file` is the name diagnostics use.
pub fn load_str(file: &str, text: &str, opts: &LoadOptions) -> Result<Validated, Diagnostics> {
    let spec::Read {
        loaded,
        diagnostics: mut diags,
        positions,
    } = spec::read_str(file, text, opts);
    let Some(loaded) = loaded else {
        return Err(diags);
    };
    if !loaded.names_derivable {
        // Every physical name starts with the stack (and many end with the region): checking
        // them would only repeat the error already reported.
        return Err(diags);
    }
    let mut env = Env::new(&loaded.account_id, &loaded.region, &loaded.spec.stack);
    if opts.fleet_region.is_some() {
        env = env.with_iam_per_region(&loaded.spec.stack);
    }
    match derive(&loaded.spec, env) {
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

/// The desired model of `spec` in `env`, or every problem that prevents it. One module per
/// spec section: a section yields several kinds (a host: a role, a profile, a group and an
/// instance), and the checks that need final values (references, unique names) span kinds.
pub fn derive(spec: &Spec, env: Env) -> Result<Model, Vec<DeriveError>> {
    let mut d = Deriver {
        spec,
        env,
        errors: Vec::new(),
        resources: BTreeMap::new(),
        origins: BTreeMap::new(),
    };
    storage::buckets(&mut d);
    storage::streams(&mut d);
    deliveries::deliveries(&mut d);
    hosts::hosts(&mut d);
    names::unique_names(&mut d);
    if d.errors.is_empty() {
        Ok(Model {
            stack: spec.stack.clone(),
            env: d.env,
            resources: d.resources,
        })
    } else {
        Err(d.errors)
    }
}
