//! `check` counts the records inside the objects a Firehose delivery wrote to S3, in every
//! compression Firehose offers (`CompressionFormat`: UNCOMPRESSED, GZIP, ZIP, Snappy,
//! HADOOP_SNAPPY; https://docs.aws.amazon.com/firehose/latest/APIReference/API_ExtendedS3DestinationConfiguration.html).
//! A record is a non-empty line (after trimming), as `str::lines` and `str::trim` see it.
//!
//! How each format is read (docs/aws-facts.md, "Objects Firehose writes"):
//! - GZIP: a gzip file (members read one after another), magic `1f 8b`;
//! - ZIP: a zip archive (Firehose writes one entry; every entry is read), magic `PK\x03\x04`;
//! - Snappy: the Snappy *framing format* (stream identifier chunk `ff 06 00 00 sNaPpY`, CRC-32C
//!   checked), https://github.com/google/snappy/blob/main/framing_format.txt;
//! - HADOOP_SNAPPY: Hadoop's `BlockCompressorStream` layout, which has no magic: blocks of a
//!   4-byte big-endian uncompressed length, then chunks of a 4-byte big-endian compressed length
//!   and a raw Snappy block until that length is reached. Firehose calls it the Snappy framing
//!   "compatible with Hadoop", https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html.
//!
//! The format is told by the object's magic bytes first, whatever the delivery says (the
//! compression can be changed in place, and older objects keep theirs); an object without one
//! is read as the delivery's HADOOP_SNAPPY if it is configured, and otherwise as text. Text in a
//! delivery that compresses (an emulator that never compresses, moto) is read as text when it
//! is valid UTF-8; anything else is an object that cannot be read, an error naming the format.
//!
//! Reading is bounded: at most `cap` bytes are decompressed per object (a zip bomb or a huge
//! object cannot exhaust memory), and no line is held in memory: records are counted as the
//! bytes stream by. An object cut at the cap says so ([`Counted::capped`]).

use std::io::Read;

use crate::spec::types::Compression;

/// Decompressed bytes read from one object at most, and the most of an object downloaded:
/// Firehose's largest buffer is 128 MiB before compression
/// (https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html).
pub const MAX_OBJECT_BYTES: u64 = 256 * 1024 * 1024;

/// A Hadoop-Snappy chunk that claims more than this is refused before it is decompressed (the
/// Hadoop codec's buffer is 256 KiB by default): a claim is not allowed to allocate gigabytes.
const MAX_HADOOP_CHUNK: usize = 64 * 1024 * 1024;

/// The records of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    pub records: u64,
    /// Records carrying the run id.
    pub ours: u64,
    /// Reading stopped at the cap: there may be more records.
    pub capped: bool,
}

/// How an object was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Gzip,
    Zip,
    Snappy,
    HadoopSnappy,
}

impl Format {
    /// Firehose's name of the compression.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "UNCOMPRESSED",
            Format::Gzip => "GZIP",
            Format::Zip => "ZIP",
            Format::Snappy => "Snappy",
            Format::HadoopSnappy => "HADOOP_SNAPPY",
        }
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const ZIP_EMPTY_MAGIC: &[u8] = b"PK\x05\x06";
const SNAPPY_FRAME_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// The format an object is in, by its magic bytes, else by the delivery's compression.
pub fn detect(body: &[u8], configured: Compression) -> Format {
    if body.starts_with(GZIP_MAGIC) {
        Format::Gzip
    } else if body.starts_with(ZIP_MAGIC) || body.starts_with(ZIP_EMPTY_MAGIC) {
        Format::Zip
    } else if body.starts_with(SNAPPY_FRAME_MAGIC) {
        Format::Snappy
    } else if configured == Compression::HadoopSnappy {
        Format::HadoopSnappy
    } else {
        Format::Text
    }
}

/// Counts the records of an object. `truncated`: the body is only the object's first bytes
/// (it was larger than the download cap), so an end that cannot be decoded is the cut, not a
/// corrupt object. `Err` says why it cannot be read, naming the format.
pub fn count(
    body: &[u8],
    configured: Compression,
    run_id: Option<&str>,
    cap: u64,
    truncated: bool,
) -> Result<(Format, Counted), String> {
    read_lines(body, configured, run_id, cap, truncated, false)
        .map(|(format, counted, _)| (format, counted))
}

/// The records of an object themselves (`tail`): each non-empty line, as [`count`] counts them
/// (lossy UTF-8, trailing `\r` dropped), read the same way and within the same cap.
pub fn records(
    body: &[u8],
    configured: Compression,
    cap: u64,
    truncated: bool,
) -> Result<(Format, Counted, Vec<String>), String> {
    read_lines(body, configured, None, cap, truncated, true)
}

fn read_lines(
    body: &[u8],
    configured: Compression,
    run_id: Option<&str>,
    cap: u64,
    truncated: bool,
    keep: bool,
) -> Result<(Format, Counted, Vec<String>), String> {
    let format = detect(body, configured);
    let mut lines = Lines::new(run_id, cap);
    lines.keep = keep;
    let read = match format {
        Format::Gzip => lines.read_all(flate2::read::MultiGzDecoder::new(body)),
        Format::Snappy => lines.read_all(snap::read::FrameDecoder::new(body)),
        Format::Zip => read_zip(body, &mut lines),
        Format::HadoopSnappy => match read_hadoop_snappy(body, &mut lines) {
            // Not Hadoop-Snappy at all but text (an emulator that does not compress). Text has
            // no NUL byte; a Hadoop-Snappy object under 16 MiB starts with one.
            Err(_) if !body.contains(&0) && std::str::from_utf8(body).is_ok() => {
                lines = Lines::new(run_id, cap);
                lines.keep = keep;
                lines.push(body);
                let counted = lines.finish(truncated);
                return Ok((Format::Text, counted, lines.kept));
            }
            other => other,
        },
        Format::Text => {
            if configured != Compression::Uncompressed && std::str::from_utf8(body).is_err() {
                Err(format!(
                    "not {} (no magic bytes of it) and not text",
                    configured.api_name()
                ))
            } else {
                lines.push(body);
                Ok(())
            }
        }
    };
    match read {
        Ok(()) => {
            let counted = lines.finish(truncated);
            Ok((format, counted, lines.kept))
        }
        Err(_) if truncated && lines.seen > 0 => {
            let counted = lines.finish(true);
            Ok((format, counted, lines.kept))
        }
        Err(e) => Err(format!("cannot read it as {}: {e}", format.name())),
    }
}

/// Every entry of a zip archive.
fn read_zip(body: &[u8], lines: &mut Lines<'_>) -> Result<(), String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(body)).map_err(|e| e.to_string())?;
    for i in 0..archive.len() {
        if lines.full() {
            break;
        }
        let entry = archive.by_index(i).map_err(|e| e.to_string())?;
        if entry.is_file() {
            lines.read_all(entry)?;
        }
    }
    Ok(())
}

/// Hadoop's block layout of raw Snappy blocks (see the module docs).
fn read_hadoop_snappy(body: &[u8], lines: &mut Lines<'_>) -> Result<(), String> {
    let mut rest = body;
    let mut decoder = snap::raw::Decoder::new();
    while !rest.is_empty() && !lines.full() {
        let (block_len, after) = be_u32(rest).ok_or("a block's length is cut short")?;
        rest = after;
        let mut left = block_len as usize;
        while left > 0 {
            let (chunk_len, after) = be_u32(rest).ok_or("a chunk's length is cut short")?;
            let chunk = after
                .get(..chunk_len as usize)
                .ok_or("a chunk is cut short")?;
            rest = &after[chunk.len()..];
            let n = snap::raw::decompress_len(chunk).map_err(|e| e.to_string())?;
            if n > left || n > MAX_HADOOP_CHUNK {
                return Err(format!("a chunk of {n} bytes in a block of {left} left"));
            }
            let out = decoder.decompress_vec(chunk).map_err(|e| e.to_string())?;
            left -= out.len();
            lines.push(&out);
            if lines.full() {
                return Ok(());
            }
            if out.is_empty() {
                return Err("an empty chunk in a block that is not complete".into());
            }
        }
    }
    Ok(())
}

fn be_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

/// Counts non-empty lines, and those containing the run id, as bytes stream by; holds no line.
struct Lines<'a> {
    id: Option<&'a [u8]>,
    cap: u64,
    seen: u64,
    capped: bool,
    counted: Counted,
    /// The current line: only whitespace so far.
    blank: bool,
    /// The current line contains the id.
    matched: bool,
    /// The current line is not empty (something since the last newline).
    started: bool,
    /// The last bytes of the current line (fewer than the id's length): an id split between
    /// two pushes is still found.
    tail: Vec<u8>,
    /// An incomplete UTF-8 sequence at the start of a line still blank.
    pending: Vec<u8>,
    /// Keep each record's text (`tail`), in `kept`; the current line is in `line`.
    keep: bool,
    line: Vec<u8>,
    kept: Vec<String>,
}

impl<'a> Lines<'a> {
    fn new(run_id: Option<&'a str>, cap: u64) -> Lines<'a> {
        Lines {
            id: run_id.filter(|id| !id.is_empty()).map(str::as_bytes),
            cap,
            seen: 0,
            capped: false,
            counted: Counted::default(),
            blank: true,
            matched: false,
            started: false,
            tail: Vec::new(),
            pending: Vec::new(),
            keep: false,
            line: Vec::new(),
            kept: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.capped
    }

    /// Reads `r` to its end or to the cap.
    fn read_all(&mut self, mut r: impl Read) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.full() {
            let n = r.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            self.push(&buf[..n]);
        }
        Ok(())
    }

    /// Takes the next bytes, up to the cap.
    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.seen);
        let bytes = if (bytes.len() as u64) > room {
            self.capped = true;
            &bytes[..room as usize]
        } else {
            bytes
        };
        self.seen += bytes.len() as u64;
        for segment in bytes.split_inclusive(|b| *b == b'\n') {
            let (line, ends) = match segment.split_last() {
                Some((b'\n', line)) => (line, true),
                _ => (segment, false),
            };
            self.take_line_part(line);
            if ends {
                self.end_line();
            }
        }
    }

    fn take_line_part(&mut self, part: &[u8]) {
        if part.is_empty() {
            return;
        }
        self.started = true;
        if self.keep {
            self.line.extend_from_slice(part);
        }
        if self.blank {
            for b in part {
                self.take_blank_byte(*b);
                if !self.blank {
                    break;
                }
            }
        }
        if let (Some(id), false) = (self.id, self.matched) {
            let mut window = std::mem::take(&mut self.tail);
            window.extend_from_slice(part);
            self.matched = window.windows(id.len()).any(|w| w == id);
            let keep = window.len().min(id.len().saturating_sub(1));
            self.tail = window.split_off(window.len() - keep);
        }
    }

    /// One byte of a line that is blank so far: is it still blank (`char::is_whitespace`, as
    /// `str::trim` sees it; an invalid sequence is U+FFFD, as `from_utf8_lossy` makes it)?
    fn take_blank_byte(&mut self, b: u8) {
        if b.is_ascii() && self.pending.is_empty() {
            self.blank = char::from(b).is_whitespace();
            return;
        }
        self.pending.push(b);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                self.blank = s.chars().all(char::is_whitespace);
                self.pending.clear();
            }
            Err(e) if e.error_len().is_some() => self.blank = false,
            Err(_) => {}
        }
    }

    fn end_line(&mut self) {
        let blank = self.blank && self.pending.is_empty();
        if self.started && !blank {
            self.counted.records += 1;
            if self.matched {
                self.counted.ours += 1;
            }
            if self.keep {
                let text = String::from_utf8_lossy(&self.line);
                self.kept
                    .push(text.strip_suffix('\r').unwrap_or(&text).to_string());
            }
        }
        self.line.clear();
        self.blank = true;
        self.matched = false;
        self.started = false;
        self.tail.clear();
        self.pending.clear();
    }

    fn finish(&mut self, truncated: bool) -> Counted {
        self.end_line();
        self.counted.capped = self.capped || truncated;
        self.counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// `n` records as the agent sends them (one JSON object a line), `ours` of them with the id.
    fn records(n: usize, ours: usize) -> Vec<u8> {
        (0..n)
            .map(|i| {
                let id = if i < ours { "check-42" } else { "other" };
                format!("{{\"city\":\"Seoul\",\"i\":{i},\"run\":\"{id}\"}}\n")
            })
            .collect::<String>()
            .into_bytes()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zip_one(data: &[u8]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("records", options).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().into_inner()
    }

    fn snappy_framed(data: &[u8]) -> Vec<u8> {
        let mut e = snap::write::FrameEncoder::new(Vec::new());
        e.write_all(data).unwrap();
        e.into_inner().unwrap()
    }

    /// Hadoop's BlockCompressorStream, by hand: one block per `block` bytes, chunks of `chunk`.
    fn hadoop_snappy(data: &[u8], block: usize, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = snap::raw::Encoder::new();
        for b in data.chunks(block) {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            for c in b.chunks(chunk) {
                let z = enc.compress_vec(c).unwrap();
                out.extend_from_slice(&(z.len() as u32).to_be_bytes());
                out.extend_from_slice(&z);
            }
        }
        out
    }

    fn counted(body: &[u8], configured: Compression) -> (Format, Counted) {
        count(body, configured, Some("check-42"), MAX_OBJECT_BYTES, false).unwrap()
    }

    fn plain(records: u64, ours: u64) -> Counted {
        Counted {
            records,
            ours,
            capped: false,
        }
    }

    #[test]
    fn a_zip_of_20_records_counts_20_not_1() {
        let body = zip_one(&records(20, 7));
        // The old reader took the archive for text: its bytes hold one line.
        let old = String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        assert_ne!(old, 20);
        assert_eq!(
            counted(&body, Compression::Zip),
            (Format::Zip, plain(20, 7))
        );
        // Told by its magic, whatever the delivery says now.
        assert_eq!(counted(&body, Compression::Gzip).1, plain(20, 7));
    }

    #[test]
    fn every_compression_firehose_writes_is_counted() {
        let data = records(20, 20);
        for (body, configured, format) in [
            (data.clone(), Compression::Uncompressed, Format::Text),
            (gzip(&data), Compression::Gzip, Format::Gzip),
            (zip_one(&data), Compression::Zip, Format::Zip),
            (snappy_framed(&data), Compression::Snappy, Format::Snappy),
            (
                hadoop_snappy(&data, 256 * 1024, 256 * 1024),
                Compression::HadoopSnappy,
                Format::HadoopSnappy,
            ),
            // Several blocks and chunks, with records split across them.
            (
                hadoop_snappy(&data, 300, 77),
                Compression::HadoopSnappy,
                Format::HadoopSnappy,
            ),
        ] {
            assert_eq!(
                counted(&body, configured),
                (format, plain(20, 20)),
                "{format:?}"
            );
        }
    }

    #[test]
    fn gzip_members_are_all_read_and_uncompressed_text_in_a_compressing_delivery_counts() {
        let mut body = gzip(&records(3, 0));
        body.extend(gzip(&records(4, 4)));
        assert_eq!(counted(&body, Compression::Gzip).1, plain(7, 4));
        // moto writes text whatever the compression says.
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::HadoopSnappy,
        ] {
            assert_eq!(counted(&records(5, 1), c), (Format::Text, plain(5, 1)));
        }
    }

    #[test]
    fn lines_are_counted_as_str_lines_and_trim_count_them() {
        let text = "a\n\n  \t\r\nb check-42\r\n\u{a0}\u{3000}\n\u{a0}x\nlast check-42";
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        let ours = text
            .lines()
            .filter(|l| !l.trim().is_empty() && l.contains("check-42"))
            .count() as u64;
        let (_, c) = counted(text.as_bytes(), Compression::Uncompressed);
        assert_eq!((c.records, c.ours), (lines, ours));
        // One byte at a time: the id split across pushes is still found.
        let mut l = Lines::new(Some("check-42"), MAX_OBJECT_BYTES);
        for b in text.as_bytes() {
            l.push(std::slice::from_ref(b));
        }
        assert_eq!(l.finish(false), plain(lines, ours));
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap_and_says_so() {
        // 4 MiB of records compress to a few KiB; only 256 KiB is read.
        let data: Vec<u8> = b"{\"a\":1}\n".repeat(512 * 1024);
        let cap = 256 * 1024;
        for (body, configured) in [
            (zip_one(&data), Compression::Zip),
            (gzip(&data), Compression::Gzip),
            (snappy_framed(&data), Compression::Snappy),
            (
                hadoop_snappy(&data, 1 << 20, 1 << 18),
                Compression::HadoopSnappy,
            ),
        ] {
            assert!(body.len() < data.len() / 16);
            let (_, c) = count(&body, configured, None, cap, false).unwrap();
            assert!(c.capped, "{configured:?}");
            assert_eq!(c.records, cap / 8, "{configured:?}");
        }
        // A line with no end is not held in memory either.
        let (_, c) = count(
            &gzip(&vec![b'x'; 4 << 20]),
            Compression::Gzip,
            None,
            cap,
            false,
        )
        .unwrap();
        assert_eq!((c.records, c.capped), (1, true));
    }

    #[test]
    fn an_object_that_cannot_be_decoded_is_an_error_naming_the_compression() {
        let mut corrupt = gzip(&records(20, 0));
        let n = corrupt.len();
        corrupt[n / 2..].fill(0xaa);
        let e = count(&corrupt, Compression::Gzip, None, MAX_OBJECT_BYTES, false).unwrap_err();
        assert!(e.contains("GZIP"), "{e}");
        let mut zip = zip_one(&records(20, 0));
        zip.truncate(zip.len() - 30);
        let e = count(&zip, Compression::Zip, None, MAX_OBJECT_BYTES, false).unwrap_err();
        assert!(e.contains("ZIP"), "{e}");
        let mut framed = snappy_framed(&records(20, 0));
        let last = framed.len() - 1;
        framed[last] ^= 0xff;
        let e = count(&framed, Compression::Snappy, None, MAX_OBJECT_BYTES, false).unwrap_err();
        assert!(e.contains("Snappy"), "{e}");
        // Binary that is no Hadoop-Snappy (a chunk that claims more than its block).
        let mut hadoop = hadoop_snappy(&records(20, 0), 1 << 20, 1 << 20);
        hadoop[3] = 1;
        hadoop.push(0xff);
        let e = count(
            &hadoop,
            Compression::HadoopSnappy,
            None,
            MAX_OBJECT_BYTES,
            false,
        )
        .unwrap_err();
        assert!(e.contains("HADOOP_SNAPPY"), "{e}");
        // Binary without magic in a compressing delivery.
        let e = count(
            &[0xff, 0xfe, 0x00, 0x81],
            Compression::Zip,
            None,
            100,
            false,
        )
        .unwrap_err();
        assert!(e.contains("ZIP"), "{e}");
    }

    #[test]
    fn a_download_cut_at_the_cap_counts_what_it_holds_and_says_so() {
        let body = gzip(&records(2000, 0));
        let cut = &body[..body.len() / 2];
        let (_, c) = count(cut, Compression::Gzip, None, MAX_OBJECT_BYTES, true).unwrap();
        assert!(c.capped);
        assert!(c.records > 0 && c.records < 2000, "{c:?}");
    }

    #[test]
    fn the_records_themselves_are_kept_for_tail_in_every_format() {
        let data = b"{\"a\":1}\r\n\n  \nplain text\n{\"a\":2}".to_vec();
        let want = vec!["{\"a\":1}", "plain text", "{\"a\":2}"];
        for (body, configured) in [
            (data.clone(), Compression::Uncompressed),
            (gzip(&data), Compression::Gzip),
            (zip_one(&data), Compression::Zip),
            (snappy_framed(&data), Compression::Snappy),
            (hadoop_snappy(&data, 8, 4), Compression::HadoopSnappy),
        ] {
            let (_, counted, kept) = super::records(&body, configured, 1 << 20, false)
                .unwrap_or_else(|e| panic!("{configured:?}: {e}"));
            assert_eq!(kept, want, "{configured:?}");
            assert_eq!(counted.records, 3);
        }
        // Counting keeps nothing, and still counts the same.
        let (_, counted) = count(&gzip(&data), Compression::Gzip, None, 1 << 20, false).unwrap();
        assert_eq!(counted.records, 3);
    }
}
