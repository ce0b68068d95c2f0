//! From text to a typed [`Spec`]: YAML syntax, structure, types, value rules and templating.
//! Cross-references and derived names are checked by the `derive` module, once everything is
//! decoded.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::decode::{suggestion, Decoder};
use super::positions::{Path, Positions};
use super::rules;
use super::template::Templater;
use super::types::*;
use crate::diagnostics::{Diagnostics, Pos};

/// The keys each section accepts; the JSON Schema test checks it names the same ones.
pub const TOP_KEYS: &[&str] = &[
    "version",
    "stack",
    "region",
    "tags",
    "expires_after",
    "vars",
    "buckets",
    "streams",
    "deliveries",
    "hosts",
];
pub const BUCKET_KEYS: &[&str] = &["name", "force_destroy", "versioning", "expire_after_days"];
pub const STREAM_KEYS: &[&str] = &[
    "name",
    "mode",
    "shards",
    "retention_hours",
    "encryption",
    "usage",
];
pub const STREAM_USAGE_KEYS: &[&str] = &["records_per_hour", "record_bytes", "reads_per_record"];
pub const HOST_USAGE_KEYS: &[&str] = &["volume_gb"];
pub const DELIVERY_KEYS: &[&str] = &[
    "name",
    "from",
    "to",
    "prefix",
    "error_prefix",
    "buffering",
    "compression",
    "error_logging",
];
pub const ERROR_LOGGING_KEYS: &[&str] = &["retention_days"];
pub const BUFFERING_KEYS: &[&str] = &["size_mb", "interval_seconds"];
pub const HOST_KEYS: &[&str] = &[
    "instance_type",
    "image",
    "subnet",
    "ssh",
    "flows",
    "sample_data",
    "platform",
    "credentials",
    "instance_id",
    "usage",
];
/// Keys of `hosts.KEY` that only an EC2 host takes (an error on an external one).
pub const EC2_ONLY_HOST_KEYS: &[&str] = &[
    "instance_type",
    "image",
    "subnet",
    "ssh",
    "sample_data",
    "instance_id",
    "usage",
];
pub const SSH_KEYS: &[&str] = &["key_name", "from"];
pub const FLOW_KEYS: &[&str] = &["files", "to", "format", "fields"];
pub const SAMPLE_KEYS: &[&str] = &["file", "records"];

/// The account id used when validating offline: 12 digits, so length rules are exact.
pub const OFFLINE_ACCOUNT_ID: &str = "000000000000";

/// What the environment contributes to loading a spec.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--var NAME=VALUE` overrides, in order.
    pub vars: Vec<(String, String)>,
    /// `--region`: used when the spec has none; an error when it differs from the spec's.
    pub region: Option<String>,
    /// The ambient region (AWS_REGION, AWS_DEFAULT_REGION, the profile): used only when the
    /// spec has none. CI runners and CloudShell set it; the spec's `region:` wins over it.
    pub ambient_region: Option<String>,
    /// The live account id; [`OFFLINE_ACCOUNT_ID`] when offline.
    pub account_id: Option<String>,
    /// `--fleet`: the target's region, which replaces the spec's `region:` (and --region's).
    pub fleet_region: Option<String>,
}

/// A decoded spec plus what loading learned about its environment.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec: Spec,
    /// The region names are built with.
    pub region: String,
    pub account_id: String,
    /// Whether the region is a stand-in because none was configured.
    pub region_is_placeholder: bool,
    /// Stack and region are valid, so physical names can be derived and checked.
    pub names_derivable: bool,
}

/// When no region is known offline we still check lengths against the longest region code.
pub const PLACEHOLDER_REGION: &str = "ap-southeast-7";

pub(crate) fn load(
    file: &str,
    text: &str,
    positions: &Positions,
    opts: &LoadOptions,
) -> (Option<Loaded>, Diagnostics) {
    let mut d = Decoder {
        file,
        source: text,
        positions,
        diags: Diagnostics::default(),
        templater: None,
    };
    if report_duplicate_keys(&mut d) {
        return (None, d.diags);
    }
    let Some(root) = parse_yaml(&mut d, text) else {
        return (None, d.diags);
    };
    let loaded = root_mapping(&mut d, &root).and_then(|m| top_level(&mut d, m, opts));
    (loaded, d.diags)
}

/// Duplicate keys: reported at the second occurrence, which serde_yaml cannot point at. Whether
/// there were any (then nothing else is checked).
fn report_duplicate_keys(d: &mut Decoder) -> bool {
    for dup in &d.positions.duplicates {
        let key = match dup.path.0.last() {
            Some(super::positions::Seg::Key(k)) => k.clone(),
            _ => String::new(),
        };
        d.error_at(
            dup.at,
            &dup.path,
            format!("duplicate key `{key}` (it is already defined above in the same mapping)"),
            Some("each key once".into()),
        );
        d.help(format!(
            "the first `{key}` is at line {}: keep one of the two (YAML does not merge them)",
            dup.first.line
        ));
    }
    !d.positions.duplicates.is_empty()
}

/// The YAML value tree with merge keys applied, or the syntax error reported.
fn parse_yaml(d: &mut Decoder, text: &str) -> Option<Value> {
    // YAML 1.1 merge keys (`<<: *defaults`, `<<: [*a, *b]`): keys written beside `<<` win.
    let parsed = serde_yaml::from_str::<Value>(text).and_then(|mut v| {
        apply_merge(&mut v)?;
        Ok(v)
    });
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            let (pos, message, help) = yaml_error(text, &e);
            d.error_at(pos, &Path::root(), message, None);
            if let Some(help) = help {
                d.help(help);
            }
            None
        }
    }
}

/// The document as a mapping, or an error (an empty document has its own).
fn root_mapping<'v>(d: &mut Decoder, root: &'v Value) -> Option<&'v Mapping> {
    if root.is_null() {
        d.error(
            &Path::root(),
            "the spec is empty",
            Some("a mapping with at least `version` and `stack`"),
        );
        return None;
    }
    d.mapping(root, &Path::root())
}

/// The spec from its top-level mapping, in the order its diagnostics are reported: keys,
/// `version`, `stack`, the region, `vars`, `tags`, `expires_after`, then each section.
fn top_level(d: &mut Decoder, m: &Mapping, opts: &LoadOptions) -> Option<Loaded> {
    // `x-*` keys at the top hold anchors to merge elsewhere (as docker-compose allows).
    let mut checked = m.clone();
    checked.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
    d.known_keys(&checked, &Path::root(), TOP_KEYS);
    let version = version(d, m);
    let (stack, stack_valid) = stack(d, m);
    let region = region(d, m, opts);
    let account_id = opts
        .account_id
        .clone()
        .unwrap_or_else(|| OFFLINE_ACCOUNT_ID.to_string());
    let stack_for_tpl = stack.clone().unwrap_or_default();
    let vars = vars(d, m, opts, (&stack_for_tpl, &region.name, &account_id));
    d.templater = Some(Templater::new(
        &stack_for_tpl,
        &region.name,
        &account_id,
        &vars,
    ));
    let tags = tags(d, m);
    let expires_after = expires_after(d, m);
    let mut undecoded = std::collections::BTreeSet::new();
    let buckets = section(d, m, "buckets", bucket, &mut undecoded);
    let streams = section(d, m, "streams", stream, &mut undecoded);
    let deliveries = section(d, m, "deliveries", delivery, &mut undecoded);
    let hosts = section(d, m, "hosts", host, &mut undecoded);
    Some(Loaded {
        spec: Spec {
            file: d.file.to_string(),
            version: version?,
            stack: stack?,
            region: region.in_spec,
            tags,
            expires_after,
            vars,
            buckets,
            streams,
            deliveries,
            hosts,
            undecoded,
        },
        region: region.name,
        account_id,
        region_is_placeholder: region.is_placeholder,
        names_derivable: stack_valid && region.valid,
    })
}

/// `version`, which must be the number 1.
fn version(d: &mut Decoder, m: &Mapping) -> Option<u32> {
    let p = Path::root().key("version");
    match d.required(m, &Path::root(), "version", "version: 1")? {
        Value::Number(n) if n.as_u64() == Some(1) => Some(1),
        Value::Number(n) => {
            d.error(&p, format!("unsupported spec version {n}"), Some("1"));
            None
        }
        // Every other value is an error of its own: a quoted `"1"` passes as a string anywhere
        // else, so it is named for what it is.
        Value::String(s) => {
            d.error(&p, format!("{s:?} is a string, not a number"), Some("1"));
            None
        }
        other => {
            let found = super::decode::type_name(other);
            d.error(&p, format!("expected a number, found {found}"), Some("1"));
            None
        }
    }
}

/// `stack`, and whether it is a valid stack name (checked when given).
fn stack(d: &mut Decoder, m: &Mapping) -> (Option<String>, bool) {
    let p = Path::root().key("stack");
    let stack = d
        .required(
            m,
            &Path::root(),
            "stack",
            "a stack name such as weather-lab",
        )
        .and_then(|v| d.literal_string(v, &p));
    let valid = match &stack {
        Some(s) => d.check(&p, rules::stack_name(s)),
        None => true,
    };
    (stack, valid)
}

/// The region names are built with, and where it comes from.
struct Region {
    /// `region:` as written in the spec.
    in_spec: Option<String>,
    /// The spec's, else --region's or the ambient one, else [`PLACEHOLDER_REGION`].
    name: String,
    is_placeholder: bool,
    /// Valid, so names can be derived (a spec's region with an error is not).
    valid: bool,
}

/// The spec's `region:` (checked, and against --region), else the configured region (checked),
/// else the placeholder.
fn region(d: &mut Decoder, m: &Mapping, opts: &LoadOptions) -> Region {
    let p = Path::root().key("region");
    let in_spec = Decoder::field(m, "region").and_then(|v| d.literal_string(v, &p));
    if let Some(r) = &opts.fleet_region {
        // A fleet's target region was checked with the fleet file.
        return Region {
            in_spec,
            name: r.clone(),
            is_placeholder: false,
            valid: rules::region(r).is_ok(),
        };
    }
    if let Some(r) = &in_spec {
        let valid = d.check(&p, rules::region(r));
        if let Some(cli) = opts.region.as_ref().filter(|cli| valid && *cli != r) {
            d.error(
                &p,
                format!("the spec's region {r:?} differs from --region {cli:?}"),
                Some("the same region, or no --region (the spec's region is used)"),
            );
        }
        let name = r.clone();
        return Region {
            in_spec,
            name,
            is_placeholder: false,
            valid,
        };
    }
    let Some(configured) = opts.region.as_ref().or(opts.ambient_region.as_ref()) else {
        return Region {
            in_spec,
            name: PLACEHOLDER_REGION.to_string(),
            is_placeholder: true,
            valid: true,
        };
    };
    let valid = match rules::region(configured) {
        Ok(()) => true,
        Err(v) => {
            let message = format!("configured region: {}", v.message);
            d.error(&Path::root(), message, v.expected.as_deref());
            false
        }
    };
    Region {
        in_spec,
        name: configured.clone(),
        is_placeholder: false,
        valid,
    }
}

/// `vars`: defaults from the file (rendered over `(stack, region, account_id)`), then the --var
/// overrides, each of which must name a declared variable.
fn vars(
    d: &mut Decoder,
    m: &Mapping,
    opts: &LoadOptions,
    (stack, region, account_id): (&str, &str, &str),
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    if let Some(v) = Decoder::field(m, "vars") {
        let pre = Templater::new(stack, region, account_id, &BTreeMap::new());
        d.templater = Some(pre);
        vars = d.string_map(v, &Path::root().key("vars"), true);
    }
    for (k, v) in &opts.vars {
        if vars.contains_key(k) {
            vars.insert(k.clone(), v.clone());
        } else {
            undeclared_var(d, k, &vars);
        }
    }
    vars
}

/// A --var the spec does not declare is a typo until proven otherwise: it would be silently
/// ignored.
fn undeclared_var(d: &mut Decoder, k: &str, vars: &BTreeMap<String, String>) {
    let declared: Vec<&str> = vars.keys().map(String::as_str).collect();
    let hint = super::decode::did_you_mean(k, declared.iter().copied())
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    let expected = if declared.is_empty() {
        format!("{hint}a name declared under vars: (there are none)")
    } else {
        format!("{hint}one of: {}", declared.join(", "))
    };
    d.error(
        &Path::root().key("vars"),
        format!("--var {k}=… sets a variable the spec does not declare"),
        Some(&expected),
    );
}

/// `tags`: each key and value checked, and room left for streamstack's own.
fn tags(d: &mut Decoder, m: &Mapping) -> BTreeMap<String, String> {
    let Some(v) = Decoder::field(m, "tags") else {
        return BTreeMap::new();
    };
    let p = Path::root().key("tags");
    let tags = d.string_map(v, &p, true);
    for (k, val) in &tags {
        let kp = p.key(k);
        if let Err(e) = rules::tag_key(k) {
            d.error_key(&kp, e.message, e.expected);
        }
        d.check(&kp, rules::tag_value(val));
    }
    // streamstack adds streamstack:stack, :address, :created-at, :expires-at, and one of
    // :force-destroy (buckets) or :image (hosts).
    let max = rules::TAGS_MAX - 5;
    if tags.len() > max {
        d.error(
            &p,
            format!("{} tags given", tags.len()),
            Some(&format!(
                "at most {max} (AWS allows 50; streamstack uses up to 5)"
            )),
        );
    }
    tags
}

fn expires_after(d: &mut Decoder, m: &Mapping) -> Option<Duration> {
    let p = Path::root().key("expires_after");
    let s = d.string(Decoder::field(m, "expires_after")?, &p)?;
    match rules::duration(&s) {
        Ok(seconds) => Some(Duration { seconds }),
        Err(e) => {
            d.violation(&p, e);
            None
        }
    }
}

/// serde_yaml's `apply_merge`, also for an anchor that itself merges another (`x-b: &b { <<: *a }`
/// merged with `<<: *b`): serde_yaml merges one level and leaves the inner `<<` behind as a key.
/// Resolving the merged values first (innermost first) gives YAML's precedence: keys written
/// beside a `<<` win over the mappings it merges, and earlier ones in `<<: [*x, *y]` over later
/// ones. Recursion is bounded by serde_yaml's nesting limit.
fn apply_merge(v: &mut Value) -> Result<(), serde_yaml::Error> {
    match v {
        Value::Mapping(m) => {
            for child in m.values_mut() {
                apply_merge(child)?;
            }
            if m.contains_key("<<") {
                // Only this mapping's own `<<` is left to merge: everything under it is done.
                v.apply_merge()?;
            }
        }
        Value::Sequence(items) => {
            for item in items {
                apply_merge(item)?;
            }
        }
        Value::Tagged(t) => apply_merge(&mut t.value)?,
        _ => {}
    }
    Ok(())
}

/// Position, message and help for a YAML syntax error. libyaml reports where it noticed the
/// problem and, for unterminated constructs, where they started ("while scanning a quoted scalar
/// at line 2 column 8"); the start is where the user must look, so it becomes the position.
/// Two exceptions point where the problem was noticed: a tab (the context is the scalar before
/// it, often on the line above), and a key out of line with the lines above it (with a help
/// naming the indentation of both).
fn yaml_error(text: &str, e: &serde_yaml::Error) -> (Pos, String, Option<String>) {
    let noticed = e.location().map(|l| Pos {
        line: l.line(),
        col: l.column(),
    });
    let (message, context) = without_locations(&e.to_string());
    let mut pos = context.or(noticed).unwrap_or(Pos { line: 1, col: 1 });
    let mut help = None;
    if let Some(at) = noticed {
        if message.contains("tab character") {
            pos = at;
        } else if message.contains("did not find expected key")
            || message.contains("mapping values are not allowed")
            || message.contains("did not find expected '-'")
        {
            if let Some((hint, key_at)) = indentation_hint(text, at.line) {
                help = Some(hint);
                pos = key_at;
            }
        }
    }
    let mut message = format!("YAML syntax error: {message}");
    let line_text = text.lines().nth(pos.line.saturating_sub(1)).unwrap_or("");
    if line_text.starts_with(['\t', ' ']) && line_text.contains('\t') {
        message.push_str(" (tabs cannot be used for indentation in YAML; use spaces)");
    }
    (pos, message, help)
}

/// libyaml's message without any " at line N column M", and the last such position that
/// follows a "while ..." context.
fn without_locations(raw: &str) -> (String, Option<Pos>) {
    let mut message = String::new();
    let mut context = None;
    let mut rest = raw;
    while let Some(i) = rest.find(" at line ") {
        let (before, after) = rest.split_at(i);
        message.push_str(before);
        let tail = &after[" at line ".len()..];
        let line: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
        let after_line = &tail[line.len()..];
        let col: String = after_line
            .strip_prefix(" column ")
            .map(|t| t.chars().take_while(|c| c.is_ascii_digit()).collect())
            .unwrap_or_default();
        let consumed = line.len()
            + if col.is_empty() {
                0
            } else {
                " column ".len() + col.len()
            };
        if before.contains("while ") {
            if let (Ok(l), Ok(c)) = (line.parse(), col.parse()) {
                context = Some(Pos { line: l, col: c });
            }
        }
        rest = &tail[consumed..];
    }
    message.push_str(rest);
    (message, context)
}

/// When the key on line `line` does not start in the same column as the key on the content line
/// above it, a help naming both columns, and the position of the line's key. A list item's key
/// starts after its `- `.
fn indentation_hint(text: &str, line: usize) -> Option<(String, Pos)> {
    let lines: Vec<&str> = text.lines().collect();
    let key_column = |l: &str| {
        let spaces = l.len() - l.trim_start_matches(' ').len();
        let rest = &l[spaces..];
        let item = rest.strip_prefix('-').filter(|r| r.starts_with(' '));
        spaces + item.map_or(0, |r| 1 + r.len() - r.trim_start_matches(' ').len()) + 1
    };
    let content = |l: &&str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let here = *lines.get(line.checked_sub(1)?)?;
    if !content(&here) || here.starts_with('\t') {
        return None;
    }
    let (above_no, above) = lines[..line - 1]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| content(l))?;
    let (i, j) = (key_column(here), key_column(above));
    if i == j {
        return None;
    }
    Some((
        format!(
            "check the indentation: the key on line {line} starts in column {i}, the one on line \
             {} above it in column {j}; the keys of one mapping must start in the same column, \
             and a nested mapping goes under its `key:` line, indented further",
            above_no + 1,
        ),
        Pos { line, col: i },
    ))
}

fn section<T>(
    d: &mut Decoder,
    m: &Mapping,
    name: &str,
    each: impl Fn(&mut Decoder, &Mapping, &Path) -> Option<T>,
    undecoded: &mut std::collections::BTreeSet<String>,
) -> BTreeMap<String, T> {
    let path = Path::root().key(name);
    let mut out = BTreeMap::new();
    match Decoder::field(m, name) {
        Some(Value::Mapping(items)) => {
            // Keys that fail the key syntax check are never decoded.
            for k in items.keys().filter_map(|k| k.as_str()) {
                if rules::resource_key(k).is_err() {
                    undecoded.insert(format!("{name}.{k}"));
                }
            }
        }
        Some(_) => {
            undecoded.insert(format!("{name}.*"));
        }
        None => {}
    }
    for (key, v, p) in d.keyed(Decoder::field(m, name), &path) {
        let item = match v {
            // `archive:` with nothing under it means "all defaults".
            Value::Null => Some(Mapping::new()),
            v => d.mapping(v, &p).cloned(),
        };
        let errors_before = d.diags.errors().count();
        match item.and_then(|item| each(d, &item, &p)) {
            Some(t) if d.diags.errors().count() == errors_before => {
                out.insert(key, t);
            }
            Some(t) => {
                // Decoded with errors (e.g. one bad flow): keep it for reference checks, but
                // skip checks that would repeat the error.
                undecoded.insert(format!("{name}.{key}"));
                out.insert(key, t);
            }
            None => {
                undecoded.insert(format!("{name}.{key}"));
            }
        }
    }
    out
}

fn opt_string(d: &mut Decoder, m: &Mapping, p: &Path, k: &str) -> Option<String> {
    Decoder::field(m, k).and_then(|v| d.string(v, &p.key(k)))
}

/// An optional field: `default` when not given, else what `decode` makes of its value.
fn or_default<T>(
    d: &mut Decoder,
    m: &Mapping,
    p: &Path,
    k: &str,
    default: T,
    decode: impl FnOnce(&mut Decoder, &Value, &Path) -> Option<T>,
) -> Option<T> {
    match Decoder::field(m, k) {
        None => Some(default),
        Some(v) => decode(d, v, &p.key(k)),
    }
}

fn opt_bool(d: &mut Decoder, m: &Mapping, p: &Path, k: &str, default: bool) -> bool {
    Decoder::field(m, k)
        .and_then(|v| d.boolean(v, &p.key(k)))
        .unwrap_or(default)
}

fn bucket(d: &mut Decoder, m: &Mapping, p: &Path) -> Option<BucketSpec> {
    d.known_keys(m, p, BUCKET_KEYS);
    let name = opt_string(d, m, p, "name");
    Some(BucketSpec {
        name,
        force_destroy: opt_bool(d, m, p, "force_destroy", false),
        versioning: opt_bool(d, m, p, "versioning", false),
        expire_after_days: Decoder::field(m, "expire_after_days")
            .and_then(|v| d.int(v, &p.key("expire_after_days"), 1, 36500))
            .map(|n| n as u32),
    })
}

fn stream(d: &mut Decoder, m: &Mapping, p: &Path) -> Option<StreamSpec> {
    d.known_keys(m, p, STREAM_KEYS);
    let name = opt_string(d, m, p, "name");
    let mode = or_default(d, m, p, "mode", StreamMode::OnDemand, stream_mode)?;
    let shards = Decoder::field(m, "shards")
        .and_then(|v| d.int(v, &p.key("shards"), 1, 10_000))
        .map(|n| n as u32);
    check_shards_for_mode(d, m, p, mode);
    let retention_hours = Decoder::field(m, "retention_hours")
        .and_then(|v| d.int(v, &p.key("retention_hours"), 24, 8760))
        .unwrap_or(24) as u32;
    let encryption = or_default(
        d,
        m,
        p,
        "encryption",
        StreamEncryption::AwsManaged,
        stream_encryption,
    )?;
    let usage = Decoder::field(m, "usage").and_then(|v| usage(d, v, &p.key("usage"), true));
    Some(StreamSpec {
        name,
        mode,
        shards,
        retention_hours,
        encryption,
        usage,
    })
}

/// `mode`: on_demand or provisioned.
fn stream_mode(d: &mut Decoder, v: &Value, mp: &Path) -> Option<StreamMode> {
    let mode = d.one_of(v, mp, &["on_demand", "provisioned"])?;
    Some(match mode.as_str() {
        "provisioned" => StreamMode::Provisioned,
        _ => StreamMode::OnDemand,
    })
}

/// `shards` is required with provisioned streams and refused with on-demand ones.
fn check_shards_for_mode(d: &mut Decoder, m: &Mapping, p: &Path, mode: StreamMode) {
    match (mode, m.contains_key("shards")) {
        (StreamMode::Provisioned, false) => {
            let pos = d.positions.key(p);
            d.error_at(
                pos,
                &p.key("shards"),
                "`shards` is required when mode is provisioned".into(),
                Some("shards: 1 or more".into()),
            );
        }
        (StreamMode::OnDemand, true) => d.error(
            &p.key("shards"),
            "`shards` is not allowed when mode is on_demand (Kinesis scales on-demand streams itself)",
            Some("no shards, or mode: provisioned"),
        ),
        _ => {}
    }
}

/// `encryption`: aws_managed, none, or a KMS key.
fn stream_encryption(d: &mut Decoder, v: &Value, ep: &Path) -> Option<StreamEncryption> {
    let s = d.string(v, ep)?;
    match s.as_str() {
        "aws_managed" => Some(StreamEncryption::AwsManaged),
        "none" => Some(StreamEncryption::None),
        key if rules::kms_key(key).is_ok() => Some(StreamEncryption::Kms(key.to_string())),
        other => {
            let hint = suggestion(other, &["aws_managed", "none"]);
            d.error(
                ep,
                format!("unknown encryption {other:?}{hint}"),
                Some("aws_managed, none, or a KMS key ARN or alias/NAME"),
            );
            None
        }
    }
}

fn delivery(d: &mut Decoder, m: &Mapping, p: &Path) -> Option<DeliverySpec> {
    d.known_keys(m, p, DELIVERY_KEYS);
    let name = opt_string(d, m, p, "name");
    let from = d
        .required(m, p, "from", "a key of `streams`, or `direct`")
        .and_then(|v| d.string(v, &p.key("from")));
    let to = d
        .required(m, p, "to", "a key of `buckets`")
        .and_then(|v| d.string(v, &p.key("to")));
    let prefix = opt_string(d, m, p, "prefix");
    let error_prefix = opt_string(d, m, p, "error_prefix");
    check_prefixes(d, p, prefix.as_deref(), error_prefix.as_deref());
    let buffering = buffering(d, m, p);
    let compression = or_default(
        d,
        m,
        p,
        "compression",
        Compression::Uncompressed,
        compression,
    )?;
    let error_logging = error_logging(d, m, p);
    let from = match from?.as_str() {
        "direct" => DeliverySource::Direct,
        s => DeliverySource::Stream(s.to_string()),
    };
    Some(DeliverySpec {
        name,
        from,
        to: to?,
        prefix,
        error_prefix,
        buffering,
        compression,
        error_logging,
    })
}

/// Firehose's rules for `prefix` and `error_prefix`, each error at its field.
fn check_prefixes(d: &mut Decoder, p: &Path, prefix: Option<&str>, error_prefix: Option<&str>) {
    for (field, v) in rules::prefixes(prefix, error_prefix) {
        let fp = match field {
            rules::PrefixField::Prefix => p.key("prefix"),
            rules::PrefixField::ErrorPrefix => p.key("error_prefix"),
        };
        // An error about one expression points at that expression, when it is written on the
        // value's line as it appears in the message.
        let expression = v
            .message
            .strip_prefix("unsupported expression '")
            .or_else(|| v.message.strip_prefix('\''))
            .and_then(|m| m.split_once("}'").map(|(e, _)| format!("{e}}}")));
        let pos = match expression {
            Some(e) => d.position_of(&fp, &e),
            None => d.positions.value(&fp),
        };
        d.error_at(pos, &fp, v.message, v.expected);
    }
}

/// `buffering`: Firehose's defaults for what is not given.
fn buffering(d: &mut Decoder, m: &Mapping, p: &Path) -> Buffering {
    let mut buffering = Buffering::default();
    let bp = p.key("buffering");
    let Some(bm) = Decoder::field(m, "buffering").and_then(|v| d.mapping(v, &bp)) else {
        return buffering;
    };
    d.known_keys(bm, &bp, BUFFERING_KEYS);
    if let Some(n) =
        Decoder::field(bm, "size_mb").and_then(|v| d.int(v, &bp.key("size_mb"), 1, 128))
    {
        buffering.size_mb = n as u32;
    }
    if let Some(n) = Decoder::field(bm, "interval_seconds")
        .and_then(|v| d.int(v, &bp.key("interval_seconds"), 0, 900))
    {
        buffering.interval_seconds = n as u32;
    }
    buffering
}

/// `compression`, spelled as Firehose spells it.
fn compression(d: &mut Decoder, v: &Value, cp: &Path) -> Option<Compression> {
    let names: Vec<&str> = Compression::ALL.iter().map(|(n, _)| *n).collect();
    let s = d.one_of(v, cp, &names)?;
    let named = Compression::ALL.iter().find(|(n, _)| *n == s);
    Some(named.map_or(Compression::Uncompressed, |(_, c)| *c))
}

/// `error_logging`: absent or `true` → on with the default retention, `false` → off, or a
/// mapping `{ retention_days: N }` with one of CloudWatch Logs' retention values.
fn error_logging(d: &mut Decoder, m: &Mapping, p: &Path) -> Option<ErrorLogging> {
    let on = Some(ErrorLogging::default());
    let Some(v) = Decoder::field(m, "error_logging") else {
        return on;
    };
    let lp = p.key("error_logging");
    if let Value::Bool(b) = v {
        return b.then_some(ErrorLogging::default());
    }
    let lm = d.mapping(v, &lp)?;
    d.known_keys(lm, &lp, ERROR_LOGGING_KEYS);
    let mut logging = ErrorLogging::default();
    if let Some(n) = Decoder::field(lm, "retention_days")
        .and_then(|v| d.int(v, &lp.key("retention_days"), 1, 3653))
    {
        let n = n as u32;
        if LOG_RETENTION_DAYS.contains(&n) {
            logging.retention_days = n;
        } else {
            let allowed: Vec<String> = LOG_RETENTION_DAYS.iter().map(u32::to_string).collect();
            d.error(
                &lp.key("retention_days"),
                format!("{n} is not a retention CloudWatch Logs offers"),
                Some(&format!("one of {}", allowed.join(", "))),
            );
        }
    }
    Some(logging)
}

fn host(d: &mut Decoder, m: &Mapping, p: &Path) -> Option<HostSpec> {
    d.known_keys(m, p, HOST_KEYS);
    let platform = or_default(d, m, p, "platform", Platform::Ec2, |d, v, pp| {
        match d.one_of(v, pp, &Platform::NAMES)?.as_str() {
            "external" => Some(Platform::External),
            _ => Some(Platform::Ec2),
        }
    })?;
    let credentials = host_credentials(d, m, p, platform);
    if platform == Platform::External {
        return external_host(d, m, p, credentials);
    }
    let instance_type = d
        .required(m, p, "instance_type", "an instance type such as t3.micro")
        .and_then(|v| d.string(v, &p.key("instance_type")));
    if let Some(t) = &instance_type {
        d.check(&p.key("instance_type"), rules::instance_type(t));
    }
    let image = or_default(d, m, p, "image", Image::Al2023, image);
    if let (Some(t), Some(img)) = (&instance_type, &image) {
        check_architecture(d, p, t, img);
    }
    let subnet = opt_string(d, m, p, "subnet");
    if let Some(s) = &subnet {
        d.check(&p.key("subnet"), rules::subnet_id(s));
    }
    let ssh = Decoder::field(m, "ssh").and_then(|v| ssh(d, v, &p.key("ssh")));
    let flows = flows(d, m, p);
    let sample_data =
        Decoder::field(m, "sample_data").and_then(|v| sample_data(d, v, &p.key("sample_data")));
    let instance_id = opt_string(d, m, p, "instance_id");
    if let Some(i) = &instance_id {
        d.check(&p.key("instance_id"), rules::instance_id(i));
    }
    let usage = Decoder::field(m, "usage").and_then(|v| usage(d, v, &p.key("usage"), false));
    Some(HostSpec {
        instance_type: instance_type?,
        image: image?,
        subnet,
        ssh,
        flows,
        sample_data,
        platform,
        credentials,
        instance_id,
        usage,
    })
}

/// `credentials`: only on an external host, where it defaults to `access_key` (the one way
/// offered); on an EC2 host the agent uses the instance profile, so it is an error there.
fn host_credentials(
    d: &mut Decoder,
    m: &Mapping,
    p: &Path,
    platform: Platform,
) -> Option<HostCredentials> {
    let given = Decoder::field(m, "credentials");
    if platform == Platform::Ec2 {
        if given.is_some() {
            d.error_key(
                &p.key("credentials"),
                "`credentials` is for external hosts: an EC2 host's agent uses its instance profile",
                Some("no `credentials`, or `platform: external`".into()),
            );
        }
        return None;
    }
    match given {
        None => Some(HostCredentials::AccessKey),
        Some(v) => d
            .one_of(v, &p.key("credentials"), &HostCredentials::NAMES)
            .map(|_| HostCredentials::AccessKey),
    }
}

/// An external host: flows only; every field about an instance is an error at its key.
fn external_host(
    d: &mut Decoder,
    m: &Mapping,
    p: &Path,
    credentials: Option<HostCredentials>,
) -> Option<HostSpec> {
    for k in EC2_ONLY_HOST_KEYS {
        if Decoder::field(m, k).is_some() {
            d.error_key(
                &p.key(k),
                format!(
                    "`{k}` is meaningless on an external host (streamstack launches no instance)"
                ),
                Some("no `{k}`, or `platform: ec2`".replace("{k}", k)),
            );
        }
    }
    let flows = flows(d, m, p);
    Some(HostSpec {
        instance_type: String::new(),
        image: Image::Al2023,
        subnet: None,
        ssh: None,
        flows,
        sample_data: None,
        platform: Platform::External,
        credentials,
        instance_id: None,
        usage: None,
    })
}

/// `image`: al2023, al2023-arm64, an AMI id, or `ssm:` and a parameter name.
fn image(d: &mut Decoder, v: &Value, ip: &Path) -> Option<Image> {
    let s = d.string(v, ip)?;
    match s.as_str() {
        "al2023" => Some(Image::Al2023),
        "al2023-arm64" => Some(Image::Al2023Arm64),
        s if s.starts_with("ami-") => d
            .check(ip, rules::ami_id(s))
            .then(|| Image::Ami(s.to_string())),
        s if s.starts_with("ssm:") => {
            let param = &s[4..];
            d.check(ip, rules::ssm_parameter(param))
                .then(|| Image::Ssm(param.to_string()))
        }
        other => {
            d.error(
                ip,
                format!("unknown image {other:?}"),
                Some("al2023, al2023-arm64, ami-..., or ssm:/parameter/name"),
            );
            None
        }
    }
}

/// The AL2023 aliases name an architecture; catch the mismatch before RunInstances does.
fn check_architecture(d: &mut Decoder, p: &Path, instance_type: &str, image: &Image) {
    let arm = rules::instance_type_is_arm64(instance_type);
    let want = match image {
        Image::Al2023 if arm => "al2023-arm64",
        Image::Al2023Arm64 if !arm => "al2023",
        _ => return,
    };
    d.error(
        &p.key("image"),
        format!("image {image} does not match the architecture of instance type {instance_type}"),
        Some(&format!("image: {want}")),
    );
}

/// `ssh`: an optional key pair and the CIDR blocks allowed in.
fn ssh(d: &mut Decoder, v: &Value, sp: &Path) -> Option<Ssh> {
    let sm = d.mapping(v, sp)?;
    d.known_keys(sm, sp, SSH_KEYS);
    let key_name = opt_string(d, sm, sp, "key_name");
    if let Some(k) = &key_name {
        d.check(&sp.key("key_name"), rules::key_pair_name(k));
    }
    let from = d.required(
        sm,
        sp,
        "from",
        "a CIDR block such as 203.0.113.4/32, or a list of them",
    )?;
    let from = ssh_from(d, from, &sp.key("from"))?;
    Some(Ssh { key_name, from })
}

/// `ssh.from`: one CIDR block (warned about when it is the whole internet) or a list of them;
/// the valid ones.
fn ssh_from(d: &mut Decoder, v: &Value, fp: &Path) -> Option<Vec<String>> {
    let Value::Sequence(items) = v else {
        let s = d.string(v, fp)?;
        if !d.check(fp, rules::cidr(&s)) {
            return None;
        }
        if s == "0.0.0.0/0" || s == "::/0" {
            d.warn(fp, "SSH is open to the whole internet".into());
        }
        return Some(vec![s]);
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(s) = d.string(item, &fp.index(i)) {
            if d.check(&fp.index(i), rules::cidr(&s)) {
                out.push(s);
            }
        }
    }
    if items.is_empty() {
        d.error(fp, "the list is empty", Some("at least one CIDR block"));
    }
    Some(out)
}

/// `flows`: a list of at least one; the flows that decoded.
fn flows(d: &mut Decoder, m: &Mapping, p: &Path) -> Vec<Flow> {
    let fp = p.key("flows");
    let expected = "a list of flows (files → stream or direct delivery)";
    match d.required(m, p, "flows", expected) {
        Some(Value::Sequence(items)) => {
            if items.is_empty() {
                d.error(
                    &fp,
                    "a host needs at least one flow",
                    Some("a list of flows"),
                );
            }
            let flows = items.iter().enumerate();
            flows
                .filter_map(|(i, item)| flow(d, item, &fp.index(i)))
                .collect()
        }
        Some(other) => {
            let found = match other {
                Value::Mapping(_) => "a mapping",
                Value::String(_) => "a string",
                _ => "a scalar",
            };
            d.error(&fp, format!("expected a list, found {found}"), None);
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// `usage:` of a stream (`stream`) or a host: the figures the cost estimate cannot know.
fn usage(d: &mut Decoder, v: &Value, up: &Path, stream: bool) -> Option<UsageSpec> {
    let um = d.mapping(v, up)?;
    d.known_keys(
        um,
        up,
        if stream {
            STREAM_USAGE_KEYS
        } else {
            HOST_USAGE_KEYS
        },
    );
    let mut int = |key: &str, min: u64, max: u64| {
        Decoder::field(um, key).and_then(|v| d.int(v, &up.key(key), min, max))
    };
    Some(if stream {
        UsageSpec {
            records_per_hour: int("records_per_hour", 0, 3_600_000_000),
            record_bytes: int("record_bytes", 1, 10_485_760),
            reads_per_record: int("reads_per_record", 0, 100),
            volume_gb: None,
        }
    } else {
        UsageSpec {
            volume_gb: int("volume_gb", 1, 65_536),
            ..UsageSpec::default()
        }
    })
}

/// `sample_data`: a file one of the host's flows watches, and how many records to write.
fn sample_data(d: &mut Decoder, v: &Value, sp: &Path) -> Option<SampleData> {
    let sm = d.mapping(v, sp)?;
    d.known_keys(sm, sp, SAMPLE_KEYS);
    let file = d
        .required(sm, sp, "file", "the log file to write records to")
        .and_then(|v| d.string(v, &sp.key("file")))?;
    d.check(&sp.key("file"), rules::plain_file_path(&file))
        .then_some(())?;
    let records = Decoder::field(sm, "records")
        .and_then(|v| d.int(v, &sp.key("records"), 1, 1000))
        .unwrap_or(20) as u32;
    Some(SampleData { file, records })
}

fn flow(d: &mut Decoder, v: &Value, p: &Path) -> Option<Flow> {
    let m = d.mapping(v, p)?;
    d.known_keys(m, p, FLOW_KEYS);
    let files = d
        .required(
            m,
            p,
            "files",
            "an absolute file pattern such as /var/log/app/*.log",
        )
        .and_then(|v| d.string(v, &p.key("files")));
    if let Some(f) = &files {
        d.check(&p.key("files"), rules::agent_file_pattern(f));
    }
    let to = d
        .required(m, p, "to", "a key of `streams`, or of a `direct` delivery")
        .and_then(|v| d.string(v, &p.key("to")));
    let format = or_default(d, m, p, "format", "lines".to_string(), |d, v, fp| {
        d.one_of(v, fp, &Format::NAMES)
    });
    let fields = Decoder::field(m, "fields").map(|v| csv_fields(d, v, &p.key("fields")));
    let format = flow_format(d, p, &format?, fields)?;
    Some(Flow {
        files: files?,
        to: to?,
        format,
    })
}

/// `fields`, the column names of format csv: the names that decoded, or `None` when `fields` is
/// not a list.
fn csv_fields(d: &mut Decoder, v: &Value, fp: &Path) -> Option<Vec<String>> {
    let Value::Sequence(items) = v else {
        let found = if v.is_string() {
            "a string"
        } else {
            "something else"
        };
        let message = format!("expected a list of field names, found {found}");
        d.error(fp, message, None);
        return None;
    };
    let fields = items.iter().enumerate();
    Some(
        fields
            .filter_map(|(i, it)| d.string(it, &fp.index(i)))
            .collect(),
    )
}

/// The format named `name`, with `fields` as decoded when given (`Some(None)`: given, but not
/// a list): csv needs them, every other format refuses them.
fn flow_format(
    d: &mut Decoder,
    p: &Path,
    name: &str,
    fields: Option<Option<Vec<String>>>,
) -> Option<Format> {
    if name == "csv" {
        return match fields {
            Some(Some(f)) if !f.is_empty() => Some(Format::Csv { fields: f }),
            // Already reported.
            Some(None) => None,
            _ => {
                d.error(
                    &p.key("format"),
                    "format csv needs `fields`, the column names",
                    Some("fields: [a, b, c]"),
                );
                None
            }
        };
    }
    if let Some(Some(_)) = fields {
        d.error(
            &p.key("fields"),
            format!("`fields` only applies to format csv, not {name}"),
            None,
        );
    }
    Some(match name {
        "json" => Format::Json,
        "apache_log" => Format::ApacheLog,
        "apache_combined" => Format::ApacheCombined,
        "apache_error" => Format::ApacheError,
        "syslog" => Format::Syslog,
        "rfc3339_syslog" => Format::Rfc3339Syslog,
        _ => Format::Lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_inside_merged_anchors_are_applied_with_yaml_precedence() {
        let text = "\
c: &c { k: from-c, only-c: 1 }
a: &a { <<: *c, own: a }
b: &b { k: from-b, only-b: 2 }
x:
  <<: [*a, *b]
  own: x
";
        let mut v: Value = serde_yaml::from_str(text).unwrap_or_default();
        assert!(apply_merge(&mut v).is_ok());
        let x = &v["x"];
        // `a` merges `c`, and `a` comes before `b`: c's `k` wins over b's.
        assert_eq!(x["k"], Value::from("from-c"));
        assert_eq!(x["only-c"], Value::from(1));
        assert_eq!(x["only-b"], Value::from(2));
        assert_eq!(x["own"], Value::from("x"));
        assert!(x.get("<<").is_none() && v["a"].get("<<").is_none(), "{x:?}");
        // A scalar merged is still refused.
        let mut bad: Value =
            serde_yaml::from_str("a: &a 1\nb: { <<: { <<: *a } }\n").unwrap_or_default();
        assert!(apply_merge(&mut bad).is_err());
    }

    fn syntax(text: &str) -> (Pos, String, Option<String>) {
        match serde_yaml::from_str::<Value>(text) {
            Ok(_) => panic!("parsed: {text}"),
            Err(e) => yaml_error(text, &e),
        }
    }

    #[test]
    fn a_tab_is_reported_on_its_own_line() {
        // libyaml's context is the plain scalar on the line above; the tab is on line 3.
        let (pos, message, _) = syntax("a:\n  b: c\n\t  d: e\n");
        assert_eq!(pos, Pos { line: 3, col: 1 }, "{message}");
        assert!(message.contains("tabs cannot be used"), "{message}");
        let (pos, _, _) = syntax("a:\n  b: c\n  \td: e\n");
        assert_eq!(pos, Pos { line: 3, col: 3 });
    }

    #[test]
    fn a_key_out_of_line_gets_an_indentation_help_at_the_key() {
        let (pos, _, help) = syntax("a:\n  b:\n    c: 1\n     d: 2\n");
        assert_eq!(pos, Pos { line: 4, col: 6 });
        let help = help.unwrap_or_default();
        assert!(
            help.contains("line 4 starts in column 6")
                && help.contains("line 3 above it in column 5"),
            "{help}"
        );
        // A list item's key starts after its `- `.
        let (pos, _, help) = syntax("a:\n  - b: 1\n     c: 2\n");
        assert_eq!(pos, Pos { line: 3, col: 6 });
        assert!(help
            .unwrap_or_default()
            .contains("line 2 above it in column 5"));
        // Not an indentation problem: no help, libyaml's position.
        let (pos, _, help) = syntax("a: b: c\n");
        assert_eq!((pos, help), (Pos { line: 1, col: 5 }, None));
    }
}
