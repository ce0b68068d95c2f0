//! Signing a form-encoded request again, the way moto checks it once IAM is enforced.
//!
//! moto verifies a SigV4 signature against the request it rebuilds from the form it parsed,
//! encoded again the way Python does (a space as `+`), not against the body it received; the
//! Rust SDK sends a space as `%20` (as AWS accepts), so every form request with a space in a
//! value (a role's description) fails with `SignatureDoesNotMatch`. For a user whose secret the
//! proxy is given ([`super::proxy::ProxyConfig::resign`]), the proxy sends the body encoded the
//! Python way and signs it again with that secret, headers and date unchanged.

use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::http::request::Parts;
use sha2::{Digest, Sha256};

/// The body encoded the Python way and its `Authorization`, when the request is a form signed
/// by one of `users` (access key id, secret); `None` otherwise (sent as it came).
pub fn resign(
    parts: &Parts,
    body: &[u8],
    users: &[(String, String)],
) -> Option<(Vec<u8>, HeaderValue)> {
    let header = |name: &str| parts.headers.get(name)?.to_str().ok();
    if !header(CONTENT_TYPE.as_str())?.starts_with("application/x-www-form-urlencoded") {
        return None;
    }
    let auth = header(AUTHORIZATION.as_str())?;
    let credential = between(auth, "Credential=", ",")?;
    let signed = between(auth, "SignedHeaders=", ",")?;
    let mut scope = credential.split('/');
    let key = scope.next()?;
    let (_, secret) = users.iter().find(|(k, _)| k == key)?;
    let (date, region, service) = (scope.next()?, scope.next()?, scope.next()?);
    let body = python_form(body);
    let mut headers = String::new();
    for name in signed.split(';') {
        let value = match name {
            "content-length" => body.len().to_string(),
            _ => header(name)?.trim().to_string(),
        };
        headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical = format!(
        "{}\n{}\n{}\n{headers}\n{signed}\n{}",
        parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        sha256_hex(body.as_bytes())
    );
    let amz_date = header("x-amz-date")?;
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        amz_date.get(0..4)?,
        amz_date.get(4..6)?,
        amz_date.get(6..8)?,
        amz_date.get(9..11)?,
        amz_date.get(11..13)?,
        amz_date.get(13..15)?
    );
    let time = streamstack::time::parse_rfc3339(&rfc3339)?;
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(secret, time, region, service);
    let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, to_sign.as_bytes());
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    );
    Some((body.into_bytes(), HeaderValue::from_str(&auth).ok()?))
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let rest = &s[from..];
    Some(rest.find(end).map_or(rest, |to| &rest[..to]))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The form decoded, then encoded as Python's `urlencode` does (`quote_plus`).
fn python_form(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            format!("{}={}", quote_plus(&decode(k)), quote_plus(&decode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn quote_plus(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
