//! The first minutes: init, completions, and the CLI contract a CI job trips on (exit codes,
//! undeclared --var, no credentials). Offline: no emulator needed.

use std::process::{Command, Output};

fn streamstack(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamstack"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run streamstack")
}

#[test]
fn init_writes_specs_that_validate_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (example, file) in [
        ("weather-lab", "a.yaml"),
        ("classroom", "b.yaml"),
        ("direct", "c.yaml"),
    ] {
        let o = streamstack(&["init", "--example", example, file], dir.path());
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("streamstack plan {file}")));
        let o = streamstack(&["validate", file], dir.path());
        assert_eq!(o.status.code(), Some(0), "{example}: {o:?}");
    }
    let o = streamstack(&["init"], dir.path());
    assert_eq!(o.status.code(), Some(0), "default path stack.yaml");
    assert!(dir.path().join("stack.yaml").exists());
    std::fs::write(dir.path().join("stack.yaml"), "mine").expect("write");
    let o = streamstack(&["init"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stack.yaml")).expect("read"),
        "mine"
    );
    let o = streamstack(&["init", "--force"], dir.path());
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn completions_for_bash_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = streamstack(&["completions", shell], dir.path());
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("streamstack"));
        if shell == "bash" {
            let file = dir.path().join("c.bash");
            std::fs::write(&file, &o.stdout).expect("write");
            let check = Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .expect("bash -n");
            assert!(check.status.success(), "{check:?}");
        }
    }
}

#[test]
fn usage_errors_and_undeclared_vars_exit_1_and_missing_credentials_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = root.join("stacks/weather-lab.yaml");
    let spec = spec.to_str().expect("utf-8");
    let o = streamstack(&["plan", "--no-such-flag", spec], dir.path());
    assert_eq!(
        o.status.code(),
        Some(1),
        "a usage error is not 'changes' (2)"
    );
    let o = streamstack(
        &["--var", "instnce_type=t3.small", "validate", spec],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did you mean `instance_type`"), "{err}");
    let o = streamstack(&["plan", spec], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no AWS credentials found") && err.contains("AWS_PROFILE"),
        "{err}"
    );
}

#[test]
fn the_field_reference_names_every_key_the_loader_accepts_and_the_readme_stays_inside() {
    use streamstack::spec::*;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference = std::fs::read_to_string(root.join("docs/spec.md")).expect("docs/spec.md");
    let lists: [(&str, &[&str]); 10] = [
        ("top level", TOP_KEYS),
        ("buckets", BUCKET_KEYS),
        ("streams", STREAM_KEYS),
        ("deliveries", DELIVERY_KEYS),
        ("buffering", BUFFERING_KEYS),
        ("error_logging", ERROR_LOGGING_KEYS),
        ("hosts", HOST_KEYS),
        ("ssh", SSH_KEYS),
        ("flows", FLOW_KEYS),
        ("sample_data", SAMPLE_KEYS),
    ];
    for (section, keys) in lists {
        for k in keys {
            assert!(
                reference.contains(&format!("`{k}`")),
                "docs/spec.md does not document {section}.{k}"
            );
        }
    }
    // Every value the loader knows is documented too.
    for f in streamstack::spec::types::Format::NAMES {
        assert!(reference.contains(&format!("`{f}`")), "format {f}");
    }
    for (c, _) in streamstack::spec::types::Compression::ALL {
        assert!(reference.contains(&format!("`{c}`")), "compression {c}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    // Every user and contributor document links only inside the repository, to files that exist.
    let mut docs = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    let mut in_docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    in_docs.sort();
    assert!(!in_docs.is_empty());
    docs.extend(in_docs);
    for doc in &docs {
        let name = doc.strip_prefix(root).unwrap_or(doc).display().to_string();
        let text = std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, line) in text.lines().enumerate() {
            assert!(
                !line.contains("](http")
                    && !line.contains("](../")
                    && !line.contains("](/")
                    && !line.contains("`../shared")
                    && !line.contains("SPEC.md"),
                "{name}:{}: links outside the repository: {line}",
                i + 1
            );
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                let after = &rest[at + 2..];
                let target = after.split(')').next().unwrap_or("");
                let file = target.split('#').next().unwrap_or("");
                if !file.is_empty() {
                    let dir = doc.parent().unwrap_or(root);
                    assert!(
                        dir.join(file).exists(),
                        "{name}:{}: links to {file}, which does not exist",
                        i + 1
                    );
                }
                rest = after;
            }
        }
    }
    assert!(readme.contains("CONTRIBUTING.md"));
    assert!(readme.contains("docs/spec.md"));
}

#[test]
fn validate_format_human_shows_the_source_line_with_a_caret_and_piped_output_stays_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec =
        "version: 1\nstack: lab\nregion: eu-west-1\nstreams:\n  weather:\n    mode: on-demand\n";
    std::fs::write(dir.path().join("s.yaml"), spec).expect("write");
    let o = streamstack(&["validate", "--format", "human", "s.yaml"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("s.yaml:6:11: streams.weather.mode: "),
        "the first line is unchanged: {err}"
    );
    let src = lines
        .iter()
        .position(|l| l.ends_with("|     mode: on-demand"))
        .unwrap_or_else(|| panic!("no source line in:\n{err}"));
    assert!(lines[src].trim_start().starts_with("6 |"), "{err}");
    // The caret sits under the value's first character: column 11 of the source text.
    let text_start = lines[src].find("|").map(|i| i + 2).unwrap_or(0);
    let caret = lines[src + 1];
    assert_eq!(caret.find('^'), Some(text_start + 10), "{err}");
    assert!(
        caret.contains("^^^^^^^^^"),
        "the span covers on-demand: {err}"
    );

    // Without a terminal and without --format human: the lines the snapshots and editors expect.
    let o = streamstack(&["validate", "s.yaml"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains('^') && !err.contains(" |"), "{err}");
    assert_eq!(
        err.lines().count(),
        2,
        "one diagnostic and the summary: {err}"
    );
}
