//! AWS naming and value rules, taken from the service models and docs
//! (docs/aws-facts.md#naming-and-range-rules). Each check is a pure function over the final value
//! and returns what is wrong and what was expected. Patterns are full-match; lengths count
//! characters, not bytes.

/// What is wrong with a value: a message and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub message: String,
    pub expected: Option<String>,
}

pub type Check = Result<(), Violation>;

fn violation(message: impl Into<String>, expected: impl Into<String>) -> Violation {
    Violation {
        message: message.into(),
        expected: Some(expected.into()),
    }
}

fn bad(message: impl Into<String>, expected: impl Into<String>) -> Check {
    Err(violation(message, expected))
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

/// The characters a kind of name may hold, and how an error says so.
struct Chars {
    ok: fn(char) -> bool,
    expected: &'static str,
}

/// A name's length in characters, then its characters.
fn name(what: &str, v: &str, (min, max): (usize, usize), chars: &Chars) -> Check {
    len_between(what, v, min, max)?;
    only_chars(what, v, chars.ok, chars.expected)
}

fn lowercase_digit_or_dash(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// `stack`: `^[a-z][a-z0-9-]{0,30}[a-z0-9]$` (docs/spec.md#top-level).
pub fn stack_name(v: &str) -> Check {
    let ok = v.len() >= 2
        && v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && v.chars().all(lowercase_digit_or_dash);
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
    let ok =
        v.starts_with(|c: char| c.is_ascii_lowercase()) && v.chars().all(lowercase_digit_or_dash);
    if !ok {
        return bad(
            format!("invalid key {v:?}"),
            "lowercase letters, digits and '-', starting with a letter",
        );
    }
    Ok(())
}

/// `[a-zA-Z0-9_.-]`
const KINESIS_CHARS: Chars = Chars {
    ok: |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
    expected: "letters, digits, '_', '.' and '-'",
};

/// `[\w+=,.@-]`
const IAM_CHARS: Chars = Chars {
    ok: |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-'),
    expected: "letters, digits and '+=,.@_-'",
};

/// Kinesis `StreamName`: 1–128, `[a-zA-Z0-9_.-]+`.
pub fn stream_name(v: &str) -> Check {
    name("stream name", v, (1, 128), &KINESIS_CHARS)
}

/// Firehose `DeliveryStreamName`: 1–64, `[a-zA-Z0-9_.-]+`.
pub fn delivery_name(v: &str) -> Check {
    name("delivery stream name", v, (1, 64), &KINESIS_CHARS)
}

/// IAM `RoleName`: 1–64, `[\w+=,.@-]+`.
pub fn role_name(v: &str) -> Check {
    name("IAM role name", v, (1, 64), &IAM_CHARS)
}

/// IAM `UserName`: 1–64, `[\w+=,.@-]+`.
pub fn user_name(v: &str) -> Check {
    name("IAM user name", v, (1, 64), &IAM_CHARS)
}

/// IAM `InstanceProfileName`: 1–128, `[\w+=,.@-]+`.
pub fn instance_profile_name(v: &str) -> Check {
    name("instance profile name", v, (1, 128), &IAM_CHARS)
}

/// EC2 security group name: 1–255 ASCII, not starting with `sg-`.
pub fn security_group_name(v: &str) -> Check {
    const SECURITY_GROUP_CHARS: Chars = Chars {
        ok: |c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c),
        expected: "letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*",
    };
    name("security group name", v, (1, 255), &SECURITY_GROUP_CHARS)?;
    if v.to_ascii_lowercase().starts_with("sg-") {
        return bad(
            format!("security group name {v:?} starts with 'sg-'"),
            "a name not starting with 'sg-'",
        );
    }
    Ok(())
}

/// S3 general-purpose bucket names (docs/aws-facts.md#s3-bucket-names, rules 1–13).
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
    let reserved_prefixes = ["xn--", "sthree-", "amzn-s3-demo-"];
    if let Some(prefix) = reserved_prefixes.into_iter().find(|p| v.starts_with(p)) {
        return bad(
            format!("bucket name {v:?} starts with the reserved prefix {prefix:?}"),
            "a name without a reserved prefix (xn--, sthree-, amzn-s3-demo-)",
        );
    }
    let reserved_suffixes = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    if let Some(suffix) = reserved_suffixes.into_iter().find(|s| v.ends_with(s)) {
        return bad(
            format!("bucket name {v:?} ends with the reserved suffix {suffix:?}"),
            "a name without a reserved suffix (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)",
        );
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

const TAG_CHARS: Chars = Chars {
    ok: |c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c),
    expected: "letters, digits, spaces and _.:/=+-@",
};

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
    only_chars("tag key", k, TAG_CHARS.ok, TAG_CHARS.expected)
}

pub fn tag_value(v: &str) -> Check {
    name("tag value", v, (0, TAG_VALUE_MAX), &TAG_CHARS)
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
    let max = if addr.parse::<std::net::Ipv4Addr>().is_ok() {
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
        && family.chars().all(lowercase_digit_or_dash);
    let size_ok = !size.is_empty() && size.chars().all(lowercase_digit_or_dash);
    if !fam_ok || !size_ok {
        return bad(format!("{v:?} is not an instance type"), expected);
    }
    Ok(())
}

/// Heuristic (docs/aws-facts.md#instance-type-architecture): Graviton families carry a `g` after
/// the generation digit.
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

/// An EC2 resource id: `prefix` followed by 8 or 17 hex digits.
fn ec2_id(v: &str, prefix: &str, what: &str) -> Check {
    let hex = v.strip_prefix(prefix).unwrap_or("");
    if (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(());
    }
    bad(
        format!("{v:?} is not {what}"),
        format!("{prefix} followed by 8 or 17 hexadecimal digits"),
    )
}

/// `ami-` followed by 8 or 17 hex digits.
pub fn ami_id(v: &str) -> Check {
    ec2_id(v, "ami-", "an AMI id")
}

/// SSM parameter name: 1–2048, a path starting with `/` (or a plain name).
pub fn ssm_parameter(v: &str) -> Check {
    const SSM_CHARS: Chars = Chars {
        ok: |c| c.is_ascii_alphanumeric() || "_.-/".contains(c),
        expected: "letters, digits and _.-/",
    };
    name("SSM parameter name", v, (1, 2048), &SSM_CHARS)
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
        _ => return Err(violation(format!("{v:?} is not a duration"), expected)),
    };
    match num.parse::<u64>() {
        Ok(0) => Err(violation(
            format!("duration {v:?} must be greater than zero"),
            expected,
        )),
        Ok(n) if !num.starts_with('+') => n
            .checked_mul(mult)
            .ok_or_else(|| violation(format!("duration {v:?} is too long"), expected)),
        _ => Err(violation(format!("{v:?} is not a duration"), expected)),
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
            bad.push(violation(
                "'!{' without a closing '}'",
                "!{namespace:value}",
            ));
            break;
        };
        match prefix_expression(&after[..end]) {
            Ok(e) => out.push(e),
            Err(v) => bad.push(v),
        }
        rest = &after[end + 1..];
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(bad)
    }
}

/// What is inside one `!{...}`: its namespace and value, if Firehose supports them.
fn prefix_expression(inner: &str) -> Result<(String, String), Violation> {
    let Some((ns, val)) = inner.split_once(':') else {
        return Err(violation(
            format!("'!{{{inner}}}' has no namespace"),
            "!{timestamp:FORMAT} or !{firehose:random-string|error-output-type}",
        ));
    };
    match ns {
        "timestamp" if !val.is_empty() => {}
        "firehose" if val == "random-string" || val == "error-output-type" => {}
        _ => {
            return Err(violation(
                format!("unsupported expression '!{{{inner}}}'"),
                "!{timestamp:FORMAT}, !{firehose:random-string} or !{firehose:error-output-type}",
            ))
        }
    }
    Ok((ns.to_string(), val.to_string()))
}

fn uses_error_output_type(exprs: &[(String, String)]) -> bool {
    exprs
        .iter()
        .any(|(ns, v)| ns == "firehose" && v == "error-output-type")
}

/// Firehose `Prefix` / `ErrorOutputPrefix` rules (docs/aws-facts.md#firehose-prefixes).
/// Returns violations keyed by which field they belong to.
pub fn prefixes(prefix: Option<&str>, error_prefix: Option<&str>) -> Vec<(PrefixField, Violation)> {
    let (of_prefix, prefix_has_expr) = prefix.map_or((Vec::new(), false), prefix_violations);
    let mut out: Vec<_> = of_prefix
        .into_iter()
        .map(|v| (PrefixField::Prefix, v))
        .collect();
    match error_prefix {
        Some(e) => out.extend(
            error_prefix_violations(e)
                .into_iter()
                .map(|v| (PrefixField::ErrorPrefix, v)),
        ),
        None if prefix_has_expr => out.push((
            PrefixField::Prefix,
            violation(
                "error_prefix is required when prefix uses !{...} expressions",
                "an error_prefix such as \"errors/!{firehose:error-output-type}/\"",
            ),
        )),
        None => {}
    }
    out
}

/// What is wrong with `prefix`, and whether it uses expressions (a malformed one counts).
fn prefix_violations(p: &str) -> (Vec<Violation>, bool) {
    let mut out: Vec<Violation> = len_between("prefix", p, 0, 512).err().into_iter().collect();
    match prefix_expressions(p) {
        Ok(exprs) => {
            if uses_error_output_type(&exprs) {
                out.push(violation(
                    "prefix must not use !{firehose:error-output-type}",
                    "that expression only in error_prefix",
                ));
            }
            (out, !exprs.is_empty())
        }
        Err(bad) => {
            out.extend(bad);
            (out, true)
        }
    }
}

/// What is wrong with `error_prefix`: expressions in it must include the error output type.
fn error_prefix_violations(e: &str) -> Vec<Violation> {
    let mut out: Vec<Violation> = len_between("error_prefix", e, 0, 512)
        .err()
        .into_iter()
        .collect();
    match prefix_expressions(e) {
        Ok(exprs) if !exprs.is_empty() && !uses_error_output_type(&exprs) => out.push(violation(
            "error_prefix uses expressions but not !{firehose:error-output-type}",
            "at least one !{firehose:error-output-type}",
        )),
        Ok(_) => {}
        Err(bad) => out.extend(bad),
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
    if let Some(ext) = [".gz", ".bz2", ".zip"].into_iter().find(|e| v.ends_with(e)) {
        return bad(
            format!("the agent ignores files ending in {ext}"),
            "a pattern for uncompressed files",
        );
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
    const KEY_PAIR_CHARS: Chars = Chars {
        ok: |c| c.is_ascii() && !c.is_ascii_control(),
        expected: "ASCII characters",
    };
    name("key pair name", v, (1, 255), &KEY_PAIR_CHARS)
}

/// `subnet-` followed by 8 or 17 hex digits.
pub fn subnet_id(v: &str) -> Check {
    ec2_id(v, "subnet-", "a subnet id")
}

/// `i-` followed by 8 or 17 hex digits: the instance a host adopts.
pub fn instance_id(v: &str) -> Check {
    ec2_id(v, "i-", "an instance id")
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

    /// `check` accepts every one of `ok` and refuses every one of `refused`.
    fn judges(check: impl Fn(&str) -> Check, ok: &[&str], refused: &[&str]) {
        for v in ok {
            assert!(check(v).is_ok(), "{v:?} refused: {:?}", check(v));
        }
        for v in refused {
            assert!(check(v).is_err(), "{v:?} accepted");
        }
    }

    #[test]
    fn bucket_names() {
        let (longest, too_long) = ("a".repeat(63), "a".repeat(64));
        judges(
            bucket_name,
            &["abc", "my-bucket.logs", "a1-b2", &longest],
            &[
                "ab",
                &too_long,
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
            ],
        );
    }

    #[test]
    fn names_are_full_match_and_count_chars() {
        let a = |n: usize| "a".repeat(n);
        judges(stream_name, &[&a(128)], &["my stream!", &a(129)]);
        judges(delivery_name, &[&a(64)], &[&a(65)]);
        judges(role_name, &[&a(64)], &[&a(65), "é"]);
        judges(instance_profile_name, &[&a(128)], &[&a(129)]);
        let (longest, too_long) = (
            format!("a{}", "b".repeat(31)),
            format!("a{}", "b".repeat(32)),
        );
        judges(stack_name, &["ab", &longest], &["a", &too_long, "weather-"]);
    }

    #[test]
    fn messages_name_the_value_and_what_was_expected() {
        let long_role = format!("IAM role name {:?}… is 65 characters long", "a".repeat(40));
        for (check, message, expected) in [
            (
                stream_name("my stream!"),
                "stream name \"my stream!\" contains ' '",
                "letters, digits, '_', '.' and '-'",
            ),
            (role_name(&"a".repeat(65)), &long_role, "1 to 64 characters"),
            (
                subnet_id("subnet-xyz"),
                "\"subnet-xyz\" is not a subnet id",
                "subnet- followed by 8 or 17 hexadecimal digits",
            ),
            (
                ami_id("ami-xyz"),
                "\"ami-xyz\" is not an AMI id",
                "ami- followed by 8 or 17 hexadecimal digits",
            ),
            (
                duration("0h").map(|_| ()),
                "duration \"0h\" must be greater than zero",
                "a duration such as 90s, 30m, 8h or 7d",
            ),
            (
                tag_value("a|b"),
                "tag value \"a|b\" contains '|'",
                "letters, digits, spaces and _.:/=+-@",
            ),
        ] {
            let v = check.err();
            assert_eq!(
                v.as_ref()
                    .map(|v| (v.message.as_str(), v.expected.as_deref())),
                Some((message, Some(expected)))
            );
        }
    }

    #[test]
    fn cidrs_durations_types() {
        judges(
            cidr,
            &["203.0.113.4/32", "::/0"],
            &["203.0.113.4", "203.0.113.4/33", "300.0.0.1/8"],
        );
        assert_eq!(duration("8h").ok(), Some(28800));
        judges(
            |v| duration(v).map(|_| ()),
            &["90s"],
            &["0h", "8 hours", "h"],
        );
        judges(
            instance_type,
            &["t3.micro", "c7i-flex.large"],
            &["T3.micro", "t3"],
        );
        for (t, arm) in [
            ("t4g.micro", true),
            ("c7gn.large", true),
            ("t3.micro", false),
            ("m5.large", false),
        ] {
            assert_eq!(instance_type_is_arm64(t), arm, "{t}");
        }
        judges(ami_id, &["ami-0123456789abcdef0"], &["ami-xyz"]);
        judges(
            subnet_id,
            &["subnet-0123abcd"],
            &["subnet-xyz", "sg-0123abcd"],
        );
        judges(
            instance_id,
            &["i-0123abcd", "i-0123456789abcdef0"],
            &[
                "i-0123",
                "i-xyz0123g",
                "ami-0123abcd",
                "i-0123456789abcdef01",
            ],
        );
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
        let (k127, k128) = ("k".repeat(127), "k".repeat(128));
        judges(
            tag_key,
            &[&k127],
            &["aws:foo", "AWS:foo", "streamstack:stack", &k128],
        );
        judges(tag_value, &[&"v".repeat(256)], &[&"v".repeat(257)]);
        judges(
            agent_file_pattern,
            &["/var/log/weather/*.log"],
            &["/var/log/*/x.log", "var/log/x.log", "/x.log"],
        );
        judges(region, &["ap-northeast-2", "us-gov-west-1"], &["Europe"]);
        judges(
            kms_key,
            &[
                "alias/my-key",
                "arn:aws:kms:eu-west-1:123456789012:key/abcd",
            ],
            &["nope"],
        );
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
