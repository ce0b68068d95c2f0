//! Snapshot tests over a corpus of broken specs.
//!
//! Each `tests/specs/invalid/NAME.yaml` must be rejected; the full diagnostic output (every error,
//! sorted, in the `FILE:LINE:COL: field.path: message` form) must equal `NAME.expected` beside it.
//! Each `tests/specs/valid/NAME.yaml` must validate. Set `STREAMSTACK_BLESS=1` to (re)write the
//! expected files after reviewing the change with `git diff`.

use std::path::{Path, PathBuf};

use streamstack::spec::LoadOptions;

fn corpus(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/specs")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn opts() -> LoadOptions {
    // Fixed so the snapshots do not depend on the caller's AWS_REGION.
    LoadOptions {
        vars: vec![],
        region: None,
        ambient_region: Some("eu-west-1".into()),
        account_id: None,
        fleet_region: None,
    }
}

/// Name used in diagnostics: relative, so snapshots are the same on every machine.
fn display_name(p: &Path) -> String {
    format!(
        "invalid/{}",
        p.file_name().and_then(|n| n.to_str()).unwrap_or("?")
    )
}

#[test]
fn every_invalid_spec_is_rejected_with_the_expected_diagnostics() {
    let bless = std::env::var_os("STREAMSTACK_BLESS").is_some();
    let files = corpus("invalid");
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let name = display_name(path);
        let diags = match streamstack::derive::load_str(&name, &text, &opts()) {
            Ok(_) => {
                failures.push(format!("{name}: was accepted"));
                continue;
            }
            Err(d) => d,
        };
        let errors: Vec<_> = diags.errors().collect();
        assert!(!errors.is_empty(), "{name}: rejected without an error");
        for e in &errors {
            assert!(
                e.pos.line >= 1 && e.pos.col >= 1,
                "{name}: bad position in {e}"
            );
            let lines = text.lines().count().max(1);
            assert!(
                e.pos.line <= lines + 1,
                "{name}: line {} beyond the file in {e}",
                e.pos.line
            );
        }
        let actual = diags.to_string();
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: diagnostics differ\n--- expected\n{expected}--- actual\n{actual}"
            )),
            Err(_) => failures.push(format!(
                "{name}: no {} (run with STREAMSTACK_BLESS=1)\n{actual}",
                expected_path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        files.len() >= 40,
        "the corpus has only {} specs",
        files.len()
    );
}

#[test]
fn every_valid_spec_and_example_stack_validates() {
    let mut files = corpus("valid");
    let stacks = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
    for e in std::fs::read_dir(stacks).expect("stacks/").flatten() {
        if e.path().extension().is_some_and(|x| x == "yaml") {
            files.push(e.path());
        }
    }
    assert!(files.len() >= 2);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        // Fleet files (stacks/fleet-*.yaml) are checked as fleet files.
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        if name.is_some_and(|n| n.starts_with("fleet-")) {
            if let Err(d) = streamstack::fleet::file::load_str(&path.display().to_string(), &text) {
                panic!("{} was rejected:\n{d}", path.display());
            }
            continue;
        }
        if let Err(d) = streamstack::derive::load_str(
            &path.display().to_string(),
            &text,
            &LoadOptions::default(),
        ) {
            panic!("{} was rejected:\n{d}", path.display());
        }
    }
}
