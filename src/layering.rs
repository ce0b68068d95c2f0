//! The layering of the library, checked: every top-level module of `src/` may use only the
//! modules below it in [`LAYERS`], so the import graph between top-level modules has no circle
//! and each layer can be read (and tested) without the ones above it. CONTRIBUTING.md
//! ("Layers") explains each layer.
//!
//! The check reads the sources as text: every `crate::NAME` path (in code, `use` lists and
//! comments alike, so that a doc link never points up either), with `crate::Error` and
//! `crate::Result` counted as the `error` module they come from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every top-level module of the library, lowest first: a module may use only those before it.
const LAYERS: &[&str] = &[
    // Plain data and leaves.
    "time",
    "diagnostics",
    "model",
    "budget",
    "error",
    // The user's file, offline.
    "spec",
    "schema",
    // What the kinds build on: artefacts, events, the journal, AWS clients.
    "cfn",
    "events",
    "journal",
    "iam",
    "bootstrap",
    "aws",
    // What a stack costs: usage, prices (the snapshot, the cache, the Price List API).
    "cost",
    // One file per resource kind, and the registry.
    "kinds",
    // Spec → model, the pure plan, the executor, the lock.
    "derive",
    "plan",
    "executor",
    "lock",
    // The operator's least-privilege policy, from the model and the kinds.
    "operator_policy",
    // The library behind the commands.
    "ops",
    // From live resources to a spec, and taking them over (`init --from-live`, `adopt`).
    "adopt",
    "cloudformation",
    "check",
    // Watch one hop's records (`tail`).
    "tail",
    // One flow over both engines.
    "deploy",
    // Pricing a plan and the live stacks with the kinds' cost models.
    "bill",
    // Fleets: one spec across accounts and regions, over the library.
    "fleet",
    // Presentation and the command line's definition.
    "ui",
    "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`kinds/host.rs` → `kinds`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    Some(name.strip_suffix(".rs").unwrap_or(name).to_string())
}

/// The top-level modules a source text names through `crate::`.
fn used_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|n| n.trim().split("::").next().unwrap_or(""))
                .collect()
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            vec![&rest[..end]]
        };
        for n in names {
            let n = if n == "Error" || n == "Result" {
                "error"
            } else {
                n
            };
            if !n.is_empty() {
                out.push(n.to_string());
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut modules_seen = Vec::new();
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = top_module(&src, file) else {
            continue;
        };
        // The crate roots and the binary's commands (which reach the library as `streamstack::`).
        if ["lib", "main", "commands", "layering"].contains(&module.as_str()) {
            continue;
        }
        let Some(&own) = rank.get(module.as_str()) else {
            violations.push(format!("{module} (src/{module}) is not in LAYERS"));
            continue;
        };
        modules_seen.push(module.clone());
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for used in used_modules(&text) {
            match rank.get(used.as_str()) {
                Some(&r) if r < own || used == module => {}
                Some(_) => violations.push(format!(
                    "{} uses crate::{used}, which is not below {module}",
                    file.display()
                )),
                // `crate::NAME` of something that is not a module of ours (a macro's `$crate`).
                None => {}
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
    for m in LAYERS {
        assert!(
            modules_seen.iter().any(|s| s == m),
            "LAYERS names {m}, which is not a module of src/"
        );
    }
}

#[test]
fn paths_in_use_lists_and_the_error_type_count() {
    let text =
        "use crate::{model::Address, kinds};\nfn f() -> crate::Result<()> { crate::ops::x() }";
    assert_eq!(
        used_modules(text),
        ["model", "kinds", "error", "ops"].map(String::from)
    );
}
