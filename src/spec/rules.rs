//! AWS naming and value rules, taken from the service models and docs
//! (../shared/reference/aws-domain.md §2). Each check is a pure function over the final value
//! and returns what is wrong and what was expected. Patterns are full-match; lengths count
//! characters, not bytes.

/// What is wrong with a value: a message and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub message: String,
    pub expected: Option<String>,
}

pub type Check = Result<(), Violation>;

fn bad(message: impl Into<String>, expected: impl Into<String>) -> Check {
    Err(Violation {
        message: message.into(),
        expected: Some(expected.into()),
    })
}

/// A value for a message: long ones are shortened.
pub fn shown(v: &str) -> String {
    if v.chars().count() > 48 {
        let head: String = v.chars().take(40).collect();
        format!("{head:?}…")
    } else {
        format!("{v:?}")
    }
}

fn len_between(what: &str, v: &str, min: usize, max: usize) -> Check {
    let n = v.chars().count();
    if n < min || n > max {
        return bad(
            format!("{what} {} is {n} characters long", shown(v)),
            format!("{min} to {max} characters"),
        );
    }
    Ok(())
}

fn only_chars(what: &str, v: &str, ok: impl Fn(char) -> bool, expected: &str) -> Check {
    if let Some(c) = v.chars().find(|c| !ok(*c)) {
        return bad(format!("{what} {v:?} contains {c:?}"), expected);
    }
    Ok(())
}

/// `stack`: `^[a-z][a-z0-9-]{0,30}[a-z0-9]$` (SPEC.md).
pub fn stack_name(v: &str) -> Check {
    let ok = v.len() >= 2
        && v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return bad(
            format!("invalid stack name {v:?} ({} characters)", v.chars().count()),
            "2 to 32 characters: lowercase letters, digits and '-', starting with a letter and not ending with '-'",
        );
    }
    Ok(())
}

/// Keys of buckets/streams/deliveries/hosts: `[a-z][a-z0-9-]*`.
pub fn resource_key(v: &str) -> Check {
    let ok = v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return bad(
            format!("invalid key {v:?}"),
            "lowercase letters, digits and '-', starting with a letter",
        );
    }
    Ok(())
}

fn kinesis_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Kinesis `StreamName`: 1–128, `[a-zA-Z0-9_.-]+`.
pub fn stream_name(v: &str) -> Check {
    len_between("stream name", v, 1, 128)?;
    only_chars(
        "stream name",
        v,
        kinesis_name_char,
        "letters, digits, '_', '.' and '-'",
    )
}

/// Firehose `DeliveryStreamName`: 1–64, `[a-zA-Z0-9_.-]+`.
pub fn delivery_name(v: &str) -> Check {
    len_between("delivery stream name", v, 1, 64)?;
    only_chars(
        "delivery stream name",
        v,
        kinesis_name_char,
        "letters, digits, '_', '.' and '-'",
    )
}

fn iam_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// IAM `RoleName`: 1–64, `[\w+=,.@-]+`.
pub fn role_name(v: &str) -> Check {
    len_between("IAM role name", v, 1, 64)?;
    only_chars(
        "IAM role name",
        v,
        iam_char,
        "letters, digits and '+=,.@_-'",
    )
}

/// IAM `InstanceProfileName`: 1–128, `[\w+=,.@-]+`.
pub fn instance_profile_name(v: &str) -> Check {
    len_between("instance profile name", v, 1, 128)?;
    only_chars(
        "instance profile name",
        v,
        iam_char,
        "letters, digits and '+=,.@_-'",
    )
}

/// EC2 security group name: 1–255 ASCII, not starting with `sg-`.
pub fn security_group_name(v: &str) -> Check {
    len_between("security group name", v, 1, 255)?;
    only_chars(
        "security group name",
        v,
        |c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c),
        "letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*",
    )?;
    if v.to_ascii_lowercase().starts_with("sg-") {
        return bad(
            format!("security group name {v:?} starts with 'sg-'"),
            "a name not starting with 'sg-'",
        );
    }
    Ok(())
}

/// S3 general-purpose bucket names (aws-domain.md §2.4, rules 1–13).
pub fn bucket_name(v: &str) -> Check {
    const EXPECTED: &str = "3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit";
    let n = v.chars().count();
    if !(3..=63).contains(&n) {
        return bad(
            format!("bucket name {v:?} is {n} characters long"),
            EXPECTED,
        );
    }
    only_chars(
        "bucket name",
        v,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-',
        EXPECTED,
    )?;
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !v.starts_with(alnum) || !v.ends_with(alnum) {
        return bad(
            format!("bucket name {v:?} must start and end with a letter or digit"),
            EXPECTED,
        );
    }
    if v.contains("..") {
        return bad(
            format!("bucket name {v:?} has two adjacent periods"),
            EXPECTED,
        );
    }
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u8>().is_ok())
    {
        return bad(
            format!("bucket name {v:?} is formatted as an IP address"),
            "a name that is not an IP address",
        );
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if v.starts_with(prefix) {
            return bad(
                format!("bucket name {v:?} starts with the reserved prefix {prefix:?}"),
                "a name without a reserved prefix (xn--, sthree-, amzn-s3-demo-)",
            );
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if v.ends_with(suffix) {
            return bad(
                format!("bucket name {v:?} ends with the reserved suffix {suffix:?}"),
                "a name without a reserved suffix (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)",
            );
        }
    }
    Ok(())
}

/// AWS region code, e.g. `ap-northeast-2`, `us-gov-west-1`.
pub fn region(v: &str) -> Check {
    let parts: Vec<&str> = v.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[0].len() == 2
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if !ok {
        return bad(
            format!("invalid region {v:?}"),
            "a region code such as eu-west-1",
        );
    }
    Ok(())
}

/// Which service a tag goes to decides its key limit; EC2 allows 127, the rest 128. We check
/// the stricter one for every resource (tags apply to all of them).
pub const TAG_KEY_MAX: usize = 127;
pub const TAG_VALUE_MAX: usize = 256;
/// AWS allows 50 tags per resource; streamstack adds its own.
pub const TAGS_MAX: usize = 50;

fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

pub fn tag_key(k: &str) -> Check {
    len_between("tag key", k, 1, TAG_KEY_MAX)?;
    if k.to_ascii_lowercase().starts_with("aws:") {
        return bad(
            format!("tag key {k:?} uses the reserved prefix 'aws:'"),
            "a key not starting with 'aws:'",
        );
    }
    if k.starts_with("streamstack:") {
        return bad(
            format!("tag key {k:?} uses the prefix 'streamstack:', which streamstack sets itself"),
            "a key not starting with 'streamstack:'",
        );
    }
    only_chars(
        "tag key",
        k,
        tag_char,
        "letters, digits, spaces and _.:/=+-@",
    )
}

pub fn tag_value(v: &str) -> Check {
    len_between("tag value", v, 0, TAG_VALUE_MAX)?;
    only_chars(
        "tag value",
        v,
        tag_char,
        "letters, digits, spaces and _.:/=+-@",
    )
}

/// IPv4 CIDR such as `203.0.113.4/32`, or IPv6 CIDR.
pub fn cidr(v: &str) -> Check {
    let expected = "an IPv4 or IPv6 CIDR block such as 203.0.113.4/32";
    let Some((addr, len)) = v.split_once('/') else {
        return bad(
            format!("{v:?} is not a CIDR block (no prefix length)"),
            expected,
        );
    };
    let max = if let Ok(ip) = addr.parse::<std::net::Ipv4Addr>() {
        let _ = ip;
        32
    } else if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        128
    } else {
        return bad(format!("{addr:?} is not an IP address"), expected);
    };
    match len.parse::<u8>() {
        Ok(n) if n <= max && !len.starts_with('+') => Ok(()),
        _ => bad(
            format!("{len:?} is not a prefix length from 0 to {max}"),
            expected,
        ),
    }
}

/// `^[a-z][a-z0-9-]*\.[a-z0-9-]+$`, the shape of every EC2 instance type.
pub fn instance_type(v: &str) -> Check {
    let expected = "an instance type such as t3.micro";
    let Some((family, size)) = v.split_once('.') else {
        return bad(format!("{v:?} is not an instance type"), expected);
    };
    let fam_ok = family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let size_ok = !size.is_empty()
        && size
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !fam_ok || !size_ok {
        return bad(format!("{v:?} is not an instance type"), expected);
    }
    Ok(())
}

/// Heuristic from aws-domain.md §2.5: Graviton families carry a `g` after the generation digit.
pub fn instance_type_is_arm64(v: &str) -> bool {
    let family = v.split('.').next().unwrap_or("");
    if family == "a1" || family.starts_with("p6e-gb") {
        return true;
    }
    // [a-z]+\d+[a-z-]*g[a-z-]*
    let rest = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    if rest.len() == family.len() {
        return false;
    }
    let after_digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    if after_digits.len() == rest.len() {
        return false;
    }
    after_digits
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '-')
        && after_digits.contains('g')
}

/// `ami-` followed by 8 or 17 hex digits.
pub fn ami_id(v: &str) -> Check {
    let hex = v.strip_prefix("ami-").unwrap_or("");
    if (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        bad(
            format!("{v:?} is not an AMI id"),
            "ami- followed by 8 or 17 hexadecimal digits",
        )
    }
}

/// SSM parameter name: 1–2048, a path starting with `/` (or a plain name).
pub fn ssm_parameter(v: &str) -> Check {
    len_between("SSM parameter name", v, 1, 2048)?;
    only_chars(
        "SSM parameter name",
        v,
        |c| c.is_ascii_alphanumeric() || "_.-/".contains(c),
        "letters, digits and _.-/",
    )
}

/// `<n>s|m|h|d` → seconds; positive.
pub fn duration(v: &str) -> Result<u64, Violation> {
    let expected = "a duration such as 90s, 30m, 8h or 7d";
    let (num, unit) = v.split_at(v.len().saturating_sub(1));
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(Violation {
                message: format!("{v:?} is not a duration"),
                expected: Some(expected.into()),
            })
        }
    };
    match num.parse::<u64>() {
        Ok(0) => Err(Violation {
            message: format!("duration {v:?} must be greater than zero"),
            expected: Some(expected.into()),
        }),
        Ok(n) if !num.starts_with('+') => n.checked_mul(mult).ok_or_else(|| Violation {
            message: format!("duration {v:?} is too long"),
            expected: Some(expected.into()),
        }),
        _ => Err(Violation {
            message: format!("{v:?} is not a duration"),
            expected: Some(expected.into()),
        }),
    }
}

/// The `!{namespace:value}` expressions in a Firehose prefix, or every one that is malformed.
pub fn prefix_expressions(v: &str) -> Result<Vec<(String, String)>, Vec<Violation>> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut rest = v;
    while let Some(i) = rest.find("!{") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            bad.push(Violation {
                message: "'!{' without a closing '}'".into(),
                expected: Some("!{namespace:value}".into()),
            });
            break;
        };
        let inner = &after[..end];
        rest = &after[end + 1..];
        let Some((ns, val)) = inner.split_once(':') else {
            bad.push(Violation {
                message: format!("'!{{{inner}}}' has no namespace"),
                expected: Some(
                    "!{timestamp:FORMAT} or !{firehose:random-string|error-output-type}".into(),
                ),
            });
            continue;
        };
        match ns {
            "timestamp" if !val.is_empty() => {}
            "firehose" if val == "random-string" || val == "error-output-type" => {}
            _ => {
                bad.push(Violation {
                    message: format!("unsupported expression '!{{{inner}}}'"),
                    expected: Some(
                        "!{timestamp:FORMAT}, !{firehose:random-string} or !{firehose:error-output-type}"
                            .into(),
                    ),
                });
                continue;
            }
        }
        out.push((ns.to_string(), val.to_string()));
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(bad)
    }
}

/// Firehose `Prefix` / `ErrorOutputPrefix` rules (aws-domain.md §2.2).
/// Returns violations keyed by which field they belong to.
pub fn prefixes(prefix: Option<&str>, error_prefix: Option<&str>) -> Vec<(PrefixField, Violation)> {
    let mut out = Vec::new();
    let mut prefix_has_expr = false;
    if let Some(p) = prefix {
        if let Err(v) = len_between("prefix", p, 0, 512) {
            out.push((PrefixField::Prefix, v));
        }
        match prefix_expressions(p) {
            Ok(exprs) => {
                prefix_has_expr = !exprs.is_empty();
                if exprs
                    .iter()
                    .any(|(ns, v)| ns == "firehose" && v == "error-output-type")
                {
                    out.push((
                        PrefixField::Prefix,
                        Violation {
                            message: "prefix must not use !{firehose:error-output-type}".into(),
                            expected: Some("that expression only in error_prefix".into()),
                        },
                    ));
                }
            }
            Err(bad) => {
                prefix_has_expr = true;
                out.extend(bad.into_iter().map(|v| (PrefixField::Prefix, v)));
            }
        }
    }
    match error_prefix {
        None if prefix_has_expr => out.push((
            PrefixField::Prefix,
            Violation {
                message: "error_prefix is required when prefix uses !{...} expressions".into(),
                expected: Some(
                    "an error_prefix such as \"errors/!{firehose:error-output-type}/\"".into(),
                ),
            },
        )),
        None => {}
        Some(e) => {
            if let Err(v) = len_between("error_prefix", e, 0, 512) {
                out.push((PrefixField::ErrorPrefix, v));
            }
            match prefix_expressions(e) {
                Ok(exprs) if !exprs.is_empty() => {
                    if !exprs
                        .iter()
                        .any(|(ns, v)| ns == "firehose" && v == "error-output-type")
                    {
                        out.push((
                            PrefixField::ErrorPrefix,
                            Violation {
                                message: "error_prefix uses expressions but not !{firehose:error-output-type}".into(),
                                expected: Some("at least one !{firehose:error-output-type}".into()),
                            },
                        ));
                    }
                }
                Ok(_) => {}
                Err(bad) => out.extend(bad.into_iter().map(|v| (PrefixField::ErrorPrefix, v))),
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixField {
    Prefix,
    ErrorPrefix,
}

/// A file glob the agent can tail: absolute, directory without globs, file name not empty.
pub fn agent_file_pattern(v: &str) -> Check {
    let expected = "an absolute path whose file name may use * or ?, e.g. /var/log/app/*.log";
    if !v.starts_with('/') {
        return bad(format!("{v:?} is not an absolute path"), expected);
    }
    if v.ends_with('/') {
        return bad(format!("{v:?} ends with '/'"), expected);
    }
    let (dir, _file) = v.rsplit_once('/').unwrap_or(("", v));
    if dir.is_empty() {
        return bad(format!("{v:?} has no directory"), expected);
    }
    if dir.contains(['*', '?', '[', '{']) {
        return bad(
            format!("{v:?} uses a glob in the directory part, which the agent does not support"),
            expected,
        );
    }
    if v.contains(|c: char| {
        c.is_control() || c == '\'' || c == '"' || c == '\\' || c == '$' || c == '`'
    }) {
        return bad(
            format!("{v:?} contains a character that is unsafe in a path"),
            expected,
        );
    }
    for ext in [".gz", ".bz2", ".zip"] {
        if v.ends_with(ext) {
            return bad(
                format!("the agent ignores files ending in {ext}"),
                "a pattern for uncompressed files",
            );
        }
    }
    Ok(())
}

/// A plain absolute file path (no globs) that user-data writes to.
pub fn plain_file_path(v: &str) -> Check {
    agent_file_pattern(v)?;
    if v.contains(['*', '?', '[', ']', '{', '}']) {
        return bad(
            format!("{v:?} contains glob characters"),
            "a plain absolute file path",
        );
    }
    Ok(())
}

/// Does `name` match the agent's file-name glob? `*` matches any run of characters (none
/// included), `?` exactly one character, and every other character itself.
///
/// Greedy, with one backtrack point: when a literal fails after a `*`, only the latest `*` takes
/// one more character (an earlier `*` could not do better, since the later one can absorb
/// anything it would). O(pattern × name) at worst, linear in practice, whatever the user writes.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // The pattern index just after the latest `*`, and how much of the name it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = n.get(ni) {
        match p.get(pi) {
            Some('*') => {
                pi += 1;
                star = Some((pi, ni));
            }
            Some(&q) if q == '?' || q == c => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((after_star, taken)) => {
                    pi = after_star;
                    ni = taken + 1;
                    star = Some((after_star, ni));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// An EC2 key pair name: 1–255 ASCII.
pub fn key_pair_name(v: &str) -> Check {
    len_between("key pair name", v, 1, 255)?;
    only_chars(
        "key pair name",
        v,
        |c| c.is_ascii() && !c.is_ascii_control(),
        "ASCII characters",
    )
}

/// `subnet-` followed by hex digits.
pub fn subnet_id(v: &str) -> Check {
    let hex = v.strip_prefix("subnet-").unwrap_or("");
    if (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        bad(
            format!("{v:?} is not a subnet id"),
            "subnet- followed by 8 or 17 hexadecimal digits",
        )
    }
}

/// A KMS key reference for Kinesis: key ARN, alias ARN, `alias/Name` or a key id (UUID).
pub fn kms_key(v: &str) -> Check {
    let expected = "a KMS key ARN, alias ARN, alias/NAME or key id";
    if v.chars().count() > 2048 || v.is_empty() {
        return bad(format!("KMS key {v:?} has a bad length"), expected);
    }
    if let Some(alias) = v.strip_prefix("alias/") {
        if !alias.is_empty()
            && alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
        {
            return Ok(());
        }
    } else if v.starts_with("arn:") {
        let parts: Vec<&str> = v.splitn(6, ':').collect();
        if parts.len() == 6
            && parts[2] == "kms"
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && (parts[5].starts_with("key/") || parts[5].starts_with("alias/"))
        {
            return Ok(());
        }
    } else {
        let hex: String = v.chars().filter(|c| *c != '-').collect();
        if v.len() == 36 && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(());
        }
        if let Some(rest) = v.strip_prefix("mrk-") {
            if rest.len() == 32 && rest.chars().all(|c| c.is_ascii_hexdigit()) {
                return Ok(());
            }
        }
    }
    bad(format!("{v:?} is not a KMS key reference"), expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.logs", "a1-b2", &"a".repeat(63)] {
            assert!(bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "sthree-x",
            "amzn-s3-demo-x",
            "abc-s3alias",
            "abc--ol-s3",
            "abc.mrap",
            "abc--x-s3",
            "abc--table-s3",
            "ab_c",
        ] {
            assert!(bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_full_match_and_count_chars() {
        assert!(stream_name("my stream!").is_err());
        assert!(stream_name(&"a".repeat(128)).is_ok());
        assert!(stream_name(&"a".repeat(129)).is_err());
        assert!(delivery_name(&"a".repeat(65)).is_err());
        assert!(role_name(&"a".repeat(64)).is_ok());
        assert!(role_name(&"a".repeat(65)).is_err());
        assert!(role_name("é").is_err());
        assert!(instance_profile_name(&"a".repeat(128)).is_ok());
        assert!(stack_name("a").is_err());
        assert!(stack_name("ab").is_ok());
        assert!(stack_name(&format!("a{}", "b".repeat(31))).is_ok());
        assert!(stack_name(&format!("a{}", "b".repeat(32))).is_err());
        assert!(stack_name("weather-").is_err());
    }

    #[test]
    fn cidrs_durations_types() {
        assert!(cidr("203.0.113.4/32").is_ok());
        assert!(cidr("::/0").is_ok());
        assert!(cidr("203.0.113.4").is_err());
        assert!(cidr("203.0.113.4/33").is_err());
        assert!(cidr("300.0.0.1/8").is_err());
        assert_eq!(duration("8h").ok(), Some(28800));
        assert!(duration("0h").is_err());
        assert!(duration("8 hours").is_err());
        assert!(duration("h").is_err());
        assert!(instance_type("t3.micro").is_ok());
        assert!(instance_type("c7i-flex.large").is_ok());
        assert!(instance_type("T3.micro").is_err());
        assert!(instance_type("t3").is_err());
        assert!(instance_type_is_arm64("t4g.micro"));
        assert!(instance_type_is_arm64("c7gn.large"));
        assert!(!instance_type_is_arm64("t3.micro"));
        assert!(!instance_type_is_arm64("m5.large"));
        assert!(ami_id("ami-0123456789abcdef0").is_ok());
        assert!(ami_id("ami-xyz").is_err());
    }

    #[test]
    fn prefix_rules() {
        assert!(prefixes(Some("weather/"), None).is_empty());
        assert_eq!(prefixes(Some("w/!{timestamp:yyyy}/"), None).len(), 1);
        assert!(prefixes(
            Some("w/!{timestamp:yyyy}/"),
            Some("e/!{firehose:error-output-type}/")
        )
        .is_empty());
        assert_eq!(prefixes(Some("w/"), Some("e/!{timestamp:yyyy}/")).len(), 1);
        assert_eq!(
            prefixes(Some("w/!{firehose:error-output-type}"), Some("e/")).len(),
            1
        );
        assert_eq!(prefixes(Some("w/!{nope:x}"), Some("e/")).len(), 1);
        assert_eq!(prefixes(Some("w/!{timestamp:yyyy"), Some("e/")).len(), 1);
        // Every bad expression is reported, not only the first.
        let all = prefixes(
            Some("w/!{nope:x}/!{timestamp:yyyy}/!{firehose:nah}/!{bare}/!{open"),
            Some("e/!{firehose:error-output-type}/"),
        );
        let messages: Vec<&str> = all.iter().map(|(_, v)| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unsupported expression '!{nope:x}'",
                "unsupported expression '!{firehose:nah}'",
                "'!{bare}' has no namespace",
                "'!{' without a closing '}'"
            ]
        );
    }

    #[test]
    fn tags_and_paths() {
        assert!(tag_key("aws:foo").is_err());
        assert!(tag_key("AWS:foo").is_err());
        assert!(tag_key("streamstack:stack").is_err());
        assert!(tag_key(&"k".repeat(127)).is_ok());
        assert!(tag_key(&"k".repeat(128)).is_err());
        assert!(tag_value(&"v".repeat(257)).is_err());
        assert!(agent_file_pattern("/var/log/weather/*.log").is_ok());
        assert!(agent_file_pattern("/var/log/*/x.log").is_err());
        assert!(agent_file_pattern("var/log/x.log").is_err());
        assert!(agent_file_pattern("/x.log").is_err());
        assert!(glob_matches("*.log", "first.log"));
        assert!(!glob_matches("*.log", "first.txt"));
        assert!(glob_matches("app-?.log", "app-1.log"));
        assert!(region("ap-northeast-2").is_ok());
        assert!(region("us-gov-west-1").is_ok());
        assert!(region("Europe").is_err());
        assert!(kms_key("alias/my-key").is_ok());
        assert!(kms_key("arn:aws:kms:eu-west-1:123456789012:key/abcd").is_ok());
        assert!(kms_key("nope").is_err());
    }

    /// The file-name glob as the agent reads it: `*` any run of characters (none included, `/`
    /// included), `?` exactly one character, everything else itself (`[`, `{`, `\\` too), case
    /// counting, characters rather than bytes.
    #[test]
    fn glob_semantics() {
        for (pattern, name, matches) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "any/thing.log", true),
            ("**", "", true),
            ("?", "", false),
            ("?", "é", true),
            ("??", "é", false),
            ("*.log", "first.log", true),
            ("*.log", "first.txt", false),
            ("*.log", "a.log.gz", false),
            ("*.log*", "a.log.gz", true),
            ("app-?.log", "app-1.log", true),
            ("app-?.log", "app-10.log", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("a*a", "a", false),
            ("*a", "ba", true),
            ("a*", "a", true),
            ("*?", "", false),
            ("*?*", "x", true),
            ("[ab].log", "a.log", false),
            ("[ab].log", "[ab].log", true),
            ("{a,b}", "{a,b}", true),
            ("A.log", "a.log", false),
            ("x\\*", "x\\yz", true),
        ] {
            assert_eq!(
                glob_matches(pattern, name),
                matches,
                "{pattern:?} ~ {name:?}"
            );
        }
    }

    /// The matcher as first written (backtracking, exponential in the worst case): the
    /// semantics `glob_matches` keeps.
    fn reference_glob(pattern: &str, name: &str) -> bool {
        fn go(p: &[char], n: &[char]) -> bool {
            match (p.first(), n.first()) {
                (None, None) => true,
                (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
                (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
                (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
                _ => false,
            }
        }
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        go(&p, &n)
    }

    /// Every string of up to `max` characters from `alphabet`.
    fn strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    /// Forty stars before a literal that is not there: the backtracking matcher tries every way
    /// of splitting 10,000 characters among 40 stars and never finishes.
    #[test]
    fn glob_with_many_stars_on_a_long_name_is_decided() {
        let pattern = format!("{}x", "*".repeat(40));
        let long = "a".repeat(10_000);
        assert!(!glob_matches(&pattern, &long));
        assert!(glob_matches(&pattern, &format!("{long}x")));
        assert!(glob_matches(
            &format!("{pattern}{}", "*".repeat(40)),
            &format!("{long}x{long}")
        ));
        let stars_and_marks = "*?".repeat(20) + "b";
        assert!(!glob_matches(&stars_and_marks, &long));
        assert!(glob_matches(&stars_and_marks, &format!("{long}b")));
    }

    #[test]
    fn glob_agrees_with_the_reference_on_every_small_pattern_and_name() {
        let names = strings(&['a', 'b', '*'], 4);
        for pattern in strings(&['a', 'b', '*', '?'], 5) {
            for name in &names {
                assert_eq!(
                    glob_matches(&pattern, name),
                    reference_glob(&pattern, name),
                    "{pattern:?} ~ {name:?}"
                );
            }
        }
    }
}
