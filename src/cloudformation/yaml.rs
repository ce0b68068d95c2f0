//! The template as YAML that every CloudFormation reader takes the same way.
//!
//! serde_yaml writes YAML 1.2, where `2026-11-29T05:48:25Z` and `2012-10-17` are plain strings.
//! The tools around CloudFormation (the AWS CLI, cfn-lint, checkov, moto) read YAML 1.1 with
//! PyYAML, which turns such plain scalars into dates (and `yes`, `on`, `0x1F`, `1_000` into
//! booleans and numbers). So this emitter writes a string plain only when it is plainly a string
//! in both versions, multi-line strings as literal blocks, and everything else double-quoted
//! (JSON escapes are valid YAML).

use serde_json::Value;

/// `v` as a block-style YAML document.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(o) if !o.is_empty() => mapping(o, 0, &mut out),
        Value::Array(a) if !a.is_empty() => sequence(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn mapping(o: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in o {
        pad(out, indent);
        out.push_str(&string(k));
        out.push(':');
        value_after_key(v, indent, out);
    }
}

fn sequence(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        pad(out, indent);
        out.push('-');
        match v {
            // `- key: value` with the rest of the mapping under the first key.
            Value::Object(o) if !o.is_empty() => {
                out.push(' ');
                let mut first = true;
                for (k, x) in o {
                    if !first {
                        pad(out, indent + 2);
                    }
                    first = false;
                    out.push_str(&string(k));
                    out.push(':');
                    value_after_key(x, indent + 2, out);
                }
            }
            other => not_a_mapping(other, indent + 2, indent + 2, out),
        }
    }
}

/// What follows `key:` at `indent`.
fn value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            out.push('\n');
            mapping(o, indent + 2, out);
        }
        other => not_a_mapping(other, indent, indent + 2, out),
    }
}

/// A value that is not a non-empty mapping, after `key:` or `-`: a sequence on the next lines
/// at `sequence_indent`, a block scalar at `block_indent`, or a scalar on the same line.
fn not_a_mapping(v: &Value, sequence_indent: usize, block_indent: usize, out: &mut String) {
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            sequence(a, sequence_indent, out);
        }
        Value::String(s) if is_block(s) => {
            out.push(' ');
            block(s, block_indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A multi-line string that a literal block can hold exactly: printable, no carriage returns,
/// and a first line that does not start with a space (which would need an indentation
/// indicator).
fn is_block(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
        && !s.lines().any(|l| l.ends_with(' ') || l.ends_with('\t'))
}

fn block(s: &str, indent: usize, out: &mut String) {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    for line in s.trim_end_matches('\n').split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

/// A string: plain when that reads back as the same string in YAML 1.1 and 1.2, else quoted.
fn string(s: &str) -> String {
    if is_plain(s) {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // Only letters may start it: no digit (numbers, dates, times), sign, dot or indicator.
    if !first.is_ascii_alphabetic() {
        return false;
    }
    if !s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '_'
                    | '-'
                    | '.'
                    | '/'
                    | ':'
                    | '('
                    | ')'
                    | ','
                    | '\''
                    | '$'
                    | '{'
                    | '}'
                    | '!'
                    | '*'
                    | '@'
                    | '+'
                    | '='
                    | ';'
                    | '<'
                    | '>'
            )
    }) {
        return false;
    }
    if s.ends_with([' ', ':']) || s.contains(": ") || s.contains(" #") {
        return false;
    }
    // Flow indicators are fine inside a plain scalar in block context, except at the start
    // (excluded above); YAML 1.1's booleans and nulls are not strings.
    const WORDS: &[&str] = &[
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", "inf",
    ];
    !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_yaml_1_1_reads_otherwise_are_quoted() {
        for s in [
            "2026-11-29T05:48:25Z",
            "2012-10-17",
            "yes",
            "On",
            "0x1F",
            "1_000",
            "12:30",
            "",
            "a: b",
            "-x",
            "*alias",
            "!tag",
            "x #c",
            "~",
        ] {
            let y = to_string(&json!({ "k": s }));
            let back: serde_yaml::Value = serde_yaml::from_str(&y).unwrap_or_default();
            assert_eq!(back["k"].as_str(), Some(s), "{y}");
            assert!(y.contains('"'), "{s:?} is quoted: {y}");
        }
    }

    #[test]
    fn templates_read_back_equal() {
        let v = json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {
                "Tags": [{"Key": "streamstack:stack", "Value": "lab"}, {"Key": "n", "Value": 3}],
                "Empty": [], "Nested": [[1, 2], {"a": null}],
                "UserData": {"Fn::Base64": {"Fn::Sub": "#!/bin/bash\nset -eu\n\n  indented\tx\n"}},
                "NoNewline": "a\nb",
                "Many": "a\n\n\n",
                "Lead": " a\nb",
            }}},
        });
        let y = to_string(&v);
        let back: serde_json::Value = serde_yaml::from_str(&y).unwrap_or_default();
        assert_eq!(back, v, "{y}");
        assert!(y.contains("Type: AWS::S3::Bucket"), "plain where safe: {y}");
        assert!(y.contains("Fn::Sub: |\n"), "scripts as literal blocks: {y}");
    }
}
