//! A record's bytes as `tail` shows them: UTF-8 text as is, JSON compacted (or indented with
//! `--pretty`), gzip inflated first, anything else as base64; and KPL-aggregated records split
//! into the user records inside them.

use std::io::Read;

use base64::Engine;
use serde::Serialize;

/// The most bytes a gzip record is inflated to (a Kinesis record is at most 10 MiB): a
/// compression bomb cannot exhaust memory.
pub const MAX_INFLATED: u64 = 32 * 1024 * 1024;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// The magic of a KPL aggregated record
/// (https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md).
pub const KPL_MAGIC: &[u8] = &[0xF3, 0x89, 0x9A, 0xC2];

/// How the data was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Text,
    Json,
    Base64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// What is printed.
    pub text: String,
    pub encoding: Encoding,
    /// The data was gzip, inflated.
    pub gzip: bool,
}

/// Decodes one record's data (see the module docs).
pub fn decode(data: &[u8], pretty: bool) -> Decoded {
    if data.starts_with(GZIP_MAGIC) {
        let mut out = Vec::new();
        let inflated = flate2::read::MultiGzDecoder::new(data)
            .take(MAX_INFLATED)
            .read_to_end(&mut out);
        if inflated.is_ok() {
            let mut d = decode_plain(&out, pretty);
            d.gzip = true;
            return d;
        }
    }
    decode_plain(data, pretty)
}

fn decode_plain(data: &[u8], pretty: bool) -> Decoded {
    let Ok(text) = std::str::from_utf8(data) else {
        return Decoded {
            text: base64::engine::general_purpose::STANDARD.encode(data),
            encoding: Encoding::Base64,
            gzip: false,
        };
    };
    let text = text.trim_end_matches(['\n', '\r']);
    if let Some(json) = as_json(text, pretty) {
        return Decoded {
            text: json,
            encoding: Encoding::Json,
            gzip: false,
        };
    }
    // Several JSON documents, one a line (an agent that aggregates lines into one record).
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > 1 {
        let each: Option<Vec<String>> = lines.iter().map(|l| as_json(l, pretty)).collect();
        if let Some(each) = each {
            return Decoded {
                text: each.join("\n"),
                encoding: Encoding::Json,
                gzip: false,
            };
        }
    }
    Decoded {
        text: text.to_string(),
        encoding: Encoding::Text,
        gzip: false,
    }
}

/// `text` compacted (or indented) when it is one JSON object or array.
fn as_json(text: &str, pretty: bool) -> Option<String> {
    let t = text.trim();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    if pretty {
        serde_json::to_string_pretty(&v).ok()
    } else {
        Some(v.to_string())
    }
}

/// One user record inside a KPL aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// The user records of a KPL aggregated record, or `None` when `data` is not one (no magic, or
/// a protobuf that does not parse: then the record is shown as it is). The trailing MD5 is not
/// checked (no MD5 in streamstack's crates); a record that parses to its last byte is taken.
pub fn deaggregate(data: &[u8]) -> Option<Vec<UserRecord>> {
    let body = data.strip_prefix(KPL_MAGIC)?;
    let proto = body.get(..body.len().checked_sub(16)?)?;
    let mut keys: Vec<String> = Vec::new();
    // (partition key index, data)
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut p = Proto(proto);
    while !p.0.is_empty() {
        match p.field()? {
            (1, Field::Bytes(b)) => keys.push(String::from_utf8_lossy(b).into_owned()),
            (3, Field::Bytes(b)) => {
                let (mut key, mut data) = (0, Vec::new());
                let mut r = Proto(b);
                while !r.0.is_empty() {
                    match r.field()? {
                        (1, Field::Varint(i)) => key = i,
                        (3, Field::Bytes(d)) => data = d.to_vec(),
                        _ => {}
                    }
                }
                records.push((key, data));
            }
            _ => {}
        }
    }
    records
        .into_iter()
        .map(|(i, data)| {
            Some(UserRecord {
                partition_key: keys.get(usize::try_from(i).ok()?)?.clone(),
                data,
            })
        })
        .collect()
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// A protobuf message being read.
struct Proto<'a>(&'a [u8]);

impl<'a> Proto<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (b, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn field(&mut self) -> Option<(u64, Field<'a>)> {
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                let b = self.0.get(..n)?;
                self.0 = &self.0[n..];
                Field::Bytes(b)
            }
            1 => {
                self.0 = self.0.get(8..)?;
                Field::Other
            }
            5 => {
                self.0 = self.0.get(4..)?;
                Field::Other
            }
            _ => return None,
        };
        Some((number, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn text_json_gzip_and_binary_are_shown_decoded() {
        let d = decode(b"GET /index.html 200\n", false);
        assert_eq!(
            (d.text.as_str(), d.encoding),
            ("GET /index.html 200", Encoding::Text)
        );
        let d = decode(b"{ \"city\": \"Seoul\",\n \"t\": 3 }\n", false);
        assert_eq!(
            (d.text.as_str(), d.encoding),
            (r#"{"city":"Seoul","t":3}"#, Encoding::Json)
        );
        let d = decode(b"{\"a\":[1,2]}", true);
        assert_eq!(d.text, "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
        let d = decode(&gzip(b"{\"z\": 1}\n"), false);
        assert_eq!((d.text.as_str(), d.gzip), (r#"{"z":1}"#, true));
        let d = decode(&gzip(b"plain"), false);
        assert_eq!(
            (d.text.as_str(), d.encoding, d.gzip),
            ("plain", Encoding::Text, true)
        );
        let d = decode(b"{\"a\": 1}\n{\"b\": 2}\n", false);
        assert_eq!(d.text, "{\"a\":1}\n{\"b\":2}");
        // Not JSON after all: as is.
        let d = decode(b"{not json", false);
        assert_eq!((d.text.as_str(), d.encoding), ("{not json", Encoding::Text));
        let d = decode(&[0xff, 0x00, 0x01], false);
        assert_eq!((d.text.as_str(), d.encoding), ("/wAB", Encoding::Base64));
        // A broken gzip is binary.
        let d = decode(&[0x1f, 0x8b, 0x00], false);
        assert_eq!(d.encoding, Encoding::Base64);
    }

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    /// An aggregated record as the KPL writes it.
    fn aggregated(keys: &[&str], records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut proto = Vec::new();
        for k in keys {
            bytes_field(1, k.as_bytes(), &mut proto);
        }
        for (i, data) in records {
            let mut r = Vec::new();
            varint(1 << 3, &mut r);
            varint(*i, &mut r);
            bytes_field(3, data, &mut r);
            bytes_field(3, &r, &mut proto);
        }
        let mut out = KPL_MAGIC.to_vec();
        out.extend(proto);
        out.extend([0u8; 16]);
        out
    }

    #[test]
    fn kpl_aggregated_records_are_split_into_their_user_records() {
        let agg = aggregated(&["k0", "k1"], &[(0, b"one"), (1, b"two"), (0, b"three")]);
        let users = deaggregate(&agg).unwrap();
        let got: Vec<(&str, &[u8])> = users
            .iter()
            .map(|u| (u.partition_key.as_str(), u.data.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("k0", &b"one"[..]),
                ("k1", &b"two"[..]),
                ("k0", &b"three"[..])
            ]
        );
        // Not aggregated, cut short, or naming a key that is not in the table: shown as is.
        assert_eq!(deaggregate(b"plain"), None);
        assert_eq!(deaggregate(&agg[..agg.len() - 21]), None);
        assert_eq!(deaggregate(&aggregated(&["k0"], &[(3, b"x")])), None);
    }
}
