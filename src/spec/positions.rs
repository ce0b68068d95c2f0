//! Key-path → source position map.
//!
//! serde_yaml gives us values but forgets where they came from, so we parse the same text a
//! second time with yaml-rust2's event parser and record, for every path, where its key and its
//! value start. Cargo does the same for manifests (`toml_edit` spans). Paths are written the way
//! diagnostics print them: `hosts.collector.flows[0].to`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::diagnostics::Pos;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path such as `hosts.collector.flows[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Self {
        Path(Vec::new())
    }
    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where a path's key and value start in the source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    /// Position of the mapping key (for sequence items, the item itself).
    pub key: Pos,
    /// Position of the value.
    pub value: Pos,
}

/// A merge key (`<<: *x`) followed to find where a value is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSite {
    /// The mapping the anchored mapping is merged into.
    pub into: Path,
    /// Where the alias (`*x`) is written.
    pub at: Pos,
    /// The anchor's name, as written after `*`.
    pub alias: Option<String>,
}

impl std::fmt::Display for MergeSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.into.0.is_empty() {
            write!(f, "merged into the document at line {}", self.at.line)?;
        } else {
            write!(f, "merged into {} at line {}", self.into, self.at.line)?;
        }
        if let Some(alias) = &self.alias {
            write!(f, " (<<: *{alias})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Positions {
    map: HashMap<Path, Span>,
    /// YAML merge keys: a mapping's path → the paths of the anchored mappings merged into it
    /// (`<<: *x` or `<<: [*x, *y]`), in precedence order, each with where it is merged. A merged
    /// value is found where it is written.
    merged: HashMap<Path, Vec<(Path, MergeSite)>>,
    /// Keys that appear twice in one mapping (not those inside a duplicate's second copy).
    pub duplicates: Vec<Duplicate>,
}

/// A key written twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub path: Path,
    /// Where the second one is (the error's position).
    pub at: Pos,
    /// Where the first one is.
    pub first: Pos,
}

impl Positions {
    /// Parses `text` and records positions. On a syntax error returns what was recorded so far;
    /// the caller reports the syntax error itself (from serde_yaml, which has the same locations).
    pub fn parse(text: &str) -> Positions {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rec, false);
        let mut merged: HashMap<Path, Vec<(Path, MergeSite)>> = HashMap::new();
        // In document order, which is the merge's precedence order for `<<: [*x, *y]`.
        for (at, id, alias_pos) in rec.aliases {
            let Some(target) = rec.anchors.get(&id) else {
                continue;
            };
            // `X.<<` or `X.<<[i]`: the alias is merged into X.
            let segs = &at.0;
            let merge_at = segs.iter().rposition(|s| *s == Seg::Key("<<".into()));
            if let Some(i) = merge_at.filter(|i| segs.len() - i <= 2) {
                let into = Path(segs[..i].to_vec());
                let site = MergeSite {
                    into: into.clone(),
                    at: alias_pos,
                    alias: alias_name(text, alias_pos),
                };
                merged.entry(into).or_default().push((target.clone(), site));
            }
        }
        Positions {
            map: rec.map,
            merged,
            duplicates: rec.duplicates,
        }
    }

    /// Position of a path's value, or of its nearest recorded ancestor.
    pub fn value(&self, path: &Path) -> Pos {
        self.lookup(path, |s| s.value)
    }

    /// Position of a path's key, or of its nearest recorded ancestor.
    pub fn key(&self, path: &Path) -> Pos {
        self.lookup(path, |s| s.key)
    }

    /// The merge keys followed to find where `path` (or the ancestor its position falls back
    /// to) is written, from the one nearest the value outwards; empty when it is written in place.
    pub fn merges(&self, path: &Path) -> Vec<&MergeSite> {
        self.locate(path).map(|(_, via)| via).unwrap_or_default()
    }

    /// The merge sites of `path` as diagnostic notes (`merged into streams.b at line 7 (<<: *x)`).
    pub fn merge_notes(&self, path: &Path) -> Vec<String> {
        self.merges(path).iter().map(|m| m.to_string()).collect()
    }

    /// The span of `path` itself, following merge keys to where a merged value is written, and
    /// pushing onto `via` the merge sites followed (innermost first).
    fn find<'s>(
        &'s self,
        path: &Path,
        depth: usize,
        via: &mut Vec<&'s MergeSite>,
    ) -> Option<&'s Span> {
        if let Some(span) = self.map.get(path) {
            return Some(span);
        }
        if depth > 8 {
            return None;
        }
        for l in (0..path.0.len()).rev() {
            let base = Path(path.0[..l].to_vec());
            for (anchor, site) in self.merged.get(&base).into_iter().flatten() {
                let mut inside = anchor.clone();
                inside.0.extend(path.0[l..].iter().cloned());
                if let Some(span) = self.find(&inside, depth + 1, via) {
                    via.push(site);
                    return Some(span);
                }
            }
        }
        None
    }

    /// The span of `path` or of its nearest recorded ancestor, with the merge sites followed.
    fn locate(&self, path: &Path) -> Option<(&Span, Vec<&MergeSite>)> {
        let mut p = path.clone();
        loop {
            let mut via = Vec::new();
            if let Some(span) = self.find(&p, 0, &mut via) {
                return Some((span, via));
            }
            p.0.pop()?;
        }
    }

    fn lookup(&self, path: &Path, pick: impl Fn(&Span) -> Pos) -> Pos {
        self.locate(path)
            .map(|(span, _)| pick(span))
            .unwrap_or(Pos { line: 1, col: 1 })
    }
}

enum Frame {
    Map {
        path: Path,
        /// The key whose value comes next, with its position; None while expecting a key.
        pending: Option<(String, Pos)>,
        /// Depth of a non-scalar key being skipped (complex keys are not supported by the spec).
        skipping: usize,
    },
    Seq {
        path: Path,
        next: usize,
    },
}

#[derive(Default)]
struct Recorder {
    /// Anchor id → the path of the anchored node.
    anchors: HashMap<usize, Path>,
    /// Paths whose node is an alias, with the anchor id and where the alias is written.
    aliases: Vec<(Path, usize, Pos)>,
    stack: Vec<Frame>,
    map: HashMap<Path, Span>,
    duplicates: Vec<Duplicate>,
    started: bool,
    /// A container whose position is taken from its first child: libyaml-style parsers mark a
    /// block mapping's start after its first key, which is not where a reader looks.
    awaiting_first_child: Vec<(Path, bool)>,
}

/// The anchor name of the alias written at `at` (`*name`), read from the source.
fn alias_name(text: &str, at: Pos) -> Option<String> {
    let line = text.lines().nth(at.line.checked_sub(1)?)?;
    let rest: String = line.chars().skip(at.col.checked_sub(1)?).collect();
    let name: String = rest
        .strip_prefix('*')?
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
        .collect();
    (!name.is_empty()).then_some(name)
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

impl Recorder {
    /// Gives every container still waiting for a position the position of this scalar (the
    /// first one inside them).
    fn settle(&mut self, at: Pos) {
        for (container, is_item) in std::mem::take(&mut self.awaiting_first_child) {
            if let Some(span) = self.map.get_mut(&container) {
                span.value = at;
                if is_item || container.0.is_empty() {
                    span.key = at;
                }
            }
        }
    }

    /// Called for the start of every node; returns the path the node lives at, or None for a
    /// key, and while inside a skipped complex key.
    fn node_start(&mut self, scalar: Option<&str>, at: Pos) -> Option<Path> {
        // A scalar inside a complex key (`{{ x }}` unquoted is a mapping whose key is a
        // mapping) is not where its container starts.
        let in_complex_key =
            matches!(self.stack.last(), Some(Frame::Map { skipping, .. }) if *skipping > 0);
        if scalar.is_some() && !in_complex_key {
            self.settle(at);
        }
        match self.stack.last_mut() {
            None => {
                if self.started {
                    return None;
                }
                self.started = true;
                self.map.insert(Path::root(), Span { key: at, value: at });
                Some(Path::root())
            }
            Some(Frame::Map {
                path,
                pending,
                skipping,
            }) => {
                if *skipping > 0 {
                    return None;
                }
                let Some((k, key_pos)) = pending.take() else {
                    // This node is a key.
                    match scalar {
                        Some(k) => *pending = Some((k.to_string(), at)),
                        None => *skipping = 1,
                    }
                    return None;
                };
                let p = path.key(&k);
                self.mapping_value(p, key_pos, at)
            }
            Some(Frame::Seq { path, next }) => {
                let p = path.index(*next);
                *next += 1;
                self.map.insert(p.clone(), Span { key: at, value: at });
                Some(p)
            }
        }
    }
}

impl Recorder {
    /// Records the value of a mapping's key, noting a key written twice.
    fn mapping_value(&mut self, p: Path, key_pos: Pos, at: Pos) -> Option<Path> {
        // A key written twice is one error: the keys inside its second copy repeat those of
        // the first, and are not reported again.
        let inside_duplicate = self.duplicates.iter().any(|d| p.0.starts_with(&d.path.0));
        if let Some(first) = self.map.get(&p).filter(|_| !inside_duplicate) {
            self.duplicates.push(Duplicate {
                path: p.clone(),
                at: key_pos,
                first: first.key,
            });
        }
        let span = Span {
            key: key_pos,
            value: at,
        };
        self.map.insert(p.clone(), span);
        Some(p)
    }

    /// A mapping or sequence starts (`anchor` 0 when it has none).
    fn container_start(&mut self, is_map: bool, anchor: usize, at: Pos) {
        if let Some(Frame::Map { skipping, .. }) = self.stack.last_mut() {
            if *skipping > 0 {
                *skipping += 1;
                return;
            }
        }
        // None: a complex key starts, and node_start has set the mapping to skip it.
        let Some(path) = self.node_start(None, at) else {
            return;
        };
        if anchor > 0 {
            self.anchors.insert(anchor, path.clone());
        }
        let is_item = matches!(path.0.last(), Some(Seg::Index(_)));
        self.awaiting_first_child.push((path.clone(), is_item));
        self.stack.push(if is_map {
            Frame::Map {
                path,
                pending: None,
                skipping: 0,
            }
        } else {
            Frame::Seq { path, next: 0 }
        });
    }

    /// A mapping or sequence ends.
    fn container_end(&mut self, at: Pos) {
        // An empty container keeps its own start position.
        self.awaiting_first_child.clear();
        if let Some(Frame::Map {
            skipping, pending, ..
        }) = self.stack.last_mut()
        {
            if *skipping > 0 {
                *skipping -= 1;
                if *skipping == 0 {
                    // The complex key is done; its value follows under a placeholder.
                    *pending = Some(("<complex key>".to_string(), at));
                }
                return;
            }
        }
        self.stack.pop();
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = pos(&mark);
        match ev {
            Event::Scalar(ref v, _, anchor, _) => {
                if let (Some(p), true) = (self.node_start(Some(v), at), anchor > 0) {
                    self.anchors.insert(anchor, p);
                }
            }
            Event::Alias(id) => {
                if let Some(p) = self.node_start(Some(""), at) {
                    self.aliases.push((p, id, at));
                }
            }
            Event::MappingStart(anchor, _) => self.container_start(true, anchor, at),
            Event::SequenceStart(anchor, _) => self.container_start(false, anchor, at),
            Event::MappingEnd | Event::SequenceEnd => self.container_end(at),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keys_values_and_items() {
        let text = "a: 1\nb:\n  c: x\n  d:\n    - e: 2\n    - f\n";
        let p = Positions::parse(text);
        let b_c = Path::root().key("b").key("c");
        assert_eq!(p.key(&b_c), Pos { line: 3, col: 3 });
        assert_eq!(p.value(&b_c), Pos { line: 3, col: 6 });
        let e = Path::root().key("b").key("d").index(0).key("e");
        assert_eq!(p.value(&e), Pos { line: 5, col: 10 });
        let f = Path::root().key("b").key("d").index(1);
        assert_eq!(p.value(&f), Pos { line: 6, col: 7 });
        // Unknown deeper path falls back to the nearest ancestor.
        assert_eq!(p.value(&f.key("zzz")), Pos { line: 6, col: 7 });
        assert_eq!(format!("{e}"), "b.d[0].e");
    }

    #[test]
    fn containers_start_at_their_first_child_and_duplicates_are_found() {
        let text =
            "version: 1\nhosts:\n  h:\n    flows:\n      - files: x\n        to: y\n    flows: 2\n";
        let p = Positions::parse(text);
        assert_eq!(p.value(&Path::root()), Pos { line: 1, col: 1 });
        let h = Path::root().key("hosts").key("h");
        assert_eq!(p.value(&h), Pos { line: 4, col: 5 });
        assert_eq!(p.key(&h), Pos { line: 3, col: 3 });
        let item = h.key("flows").index(0);
        assert_eq!(p.key(&item), Pos { line: 5, col: 9 });
        assert_eq!(
            p.duplicates,
            vec![Duplicate {
                path: h.key("flows"),
                at: Pos { line: 7, col: 5 },
                first: Pos { line: 4, col: 5 }
            }]
        );
        // A duplicated host: one duplicate, not one per key repeated inside it.
        let text = "hosts:\n  h:\n    a: 1\n    b: [{c: 1}]\n  h:\n    a: 2\n    b: [{c: 2}]\n  i: {}\n  i: {}\n";
        let p = Positions::parse(text);
        let hosts = Path::root().key("hosts");
        assert_eq!(
            p.duplicates,
            vec![
                Duplicate {
                    path: hosts.key("h"),
                    at: Pos { line: 5, col: 3 },
                    first: Pos { line: 2, col: 3 }
                },
                Duplicate {
                    path: hosts.key("i"),
                    at: Pos { line: 9, col: 3 },
                    first: Pos { line: 8, col: 3 }
                }
            ]
        );
    }

    #[test]
    fn flow_style_and_complex_keys_do_not_confuse_it() {
        let text = "x: { size_mb: 5, interval_seconds: 60 }\n? [a, b]\n: 3\ny: 4\n";
        let p = Positions::parse(text);
        assert_eq!(
            p.value(&Path::root().key("x").key("interval_seconds")),
            Pos { line: 1, col: 36 }
        );
        assert_eq!(p.value(&Path::root().key("y")), Pos { line: 4, col: 4 });
    }

    #[test]
    fn merged_values_are_found_where_written_with_where_they_were_merged() {
        let text = "\
x-base: &base
  a: 1
x-more: &more
  <<: *base
  b: 2
s:
  one: { <<: *more }
  two:
    <<: [*base, *more]
    b: 3
  three:
    <<:
      - *more
";
        let p = Positions::parse(text);
        let s = Path::root().key("s");
        let notes = |path: &Path| p.merge_notes(path);
        // Through two merges: the anchor merged into an anchor, then into `s.one`.
        assert_eq!(p.value(&s.key("one").key("a")), Pos { line: 2, col: 6 });
        assert_eq!(
            notes(&s.key("one").key("a")),
            [
                "merged into x-more at line 4 (<<: *base)",
                "merged into s.one at line 7 (<<: *more)"
            ]
        );
        assert_eq!(p.value(&s.key("one").key("b")), Pos { line: 5, col: 6 });
        assert_eq!(
            notes(&s.key("one").key("b")),
            ["merged into s.one at line 7 (<<: *more)"]
        );
        // A sequence of aliases: the first that has the key, named by its alias.
        assert_eq!(
            notes(&s.key("two").key("a")),
            ["merged into s.two at line 9 (<<: *base)"]
        );
        // Written beside `<<`: no note.
        assert_eq!(p.value(&s.key("two").key("b")), Pos { line: 10, col: 8 });
        assert!(notes(&s.key("two").key("b")).is_empty());
        // A block sequence: the line of the alias.
        assert_eq!(
            notes(&s.key("three").key("b")),
            ["merged into s.three at line 13 (<<: *more)"]
        );
        // Not in the anchor either: the mapping itself, written in place.
        assert_eq!(
            p.value(&s.key("three").key("zzz")),
            p.value(&s.key("three"))
        );
        assert!(notes(&s.key("three").key("zzz")).is_empty());
        assert_eq!(
            alias_name("  <<: [*a-1, *b]", Pos { line: 1, col: 14 }),
            Some("b".into())
        );
        assert_eq!(alias_name("x", Pos { line: 1, col: 1 }), None);
        assert_eq!(alias_name("x", Pos { line: 0, col: 0 }), None);
    }
}
