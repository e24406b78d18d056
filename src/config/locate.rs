//! Line and column of each key, from a light scan of the source text.
//!
//! The YAML crate gives positions only for syntax errors; the value tree it builds has none, and
//! it offers no spanned deserialization. Rather than a second YAML parser, this module reads the
//! source line by line the way configuration files are written: block mappings and sequences by
//! indentation (including sequences at their parent key's indentation), quoted keys, and flow
//! collections (`{ a: 1, b: [x] }`) that open and close on one line. It skips comments, document
//! markers and block scalars (`|`, `>`).
//!
//! It is a best effort with a safe failure mode: a path it did not record (a flow collection
//! spread over several lines, keys brought in by a merge `<<`, a multi-line quoted key) is placed
//! at its nearest recorded ancestor, and a path with no recorded ancestor gets no position. It
//! never rejects input; the YAML parser decides what is valid.

use std::collections::HashMap;

use crate::config::error::Seg;

/// The scanned positions, keyed by path.
#[derive(Debug, Default)]
pub struct Positions {
    map: HashMap<Vec<Seg>, (usize, usize)>,
}

struct Frame {
    /// Column of the key or of the `-` that opened this level.
    col: usize,
    seg: Seg,
}

impl Positions {
    pub fn scan(src: &str) -> Positions {
        let mut positions = Positions::default();
        let mut stack: Vec<Frame> = Vec::new();
        // Lines indented deeper than this column belong to a block scalar.
        let mut block_scalar: Option<usize> = None;
        for (n, raw) in src.lines().enumerate() {
            let line = n + 1;
            let chars: Vec<char> = raw.chars().collect();
            let indent = chars.iter().take_while(|c| **c == ' ').count();
            let blank = chars.iter().skip(indent).all(|c| c.is_whitespace());
            if let Some(col) = block_scalar {
                if blank || indent > col {
                    continue;
                }
                block_scalar = None;
            }
            if blank || chars.get(indent) == Some(&'#') || is_document_marker(&chars) {
                continue;
            }
            positions.scan_line(&chars, indent, line, &mut stack, &mut block_scalar);
        }
        positions
    }

    fn scan_line(
        &mut self,
        chars: &[char],
        indent: usize,
        line: usize,
        stack: &mut Vec<Frame>,
        block_scalar: &mut Option<usize>,
    ) {
        let mut col = indent;
        loop {
            let Some(&c) = chars.get(col) else { return };
            if c == '-' && chars.get(col + 1).is_none_or(|n| n.is_whitespace()) {
                while stack.last().is_some_and(|f| f.col > col) {
                    stack.pop();
                }
                match stack.last_mut() {
                    Some(Frame {
                        col: top,
                        seg: Seg::Index(i),
                    }) if *top == col => *i += 1,
                    _ => stack.push(Frame {
                        col,
                        seg: Seg::Index(0),
                    }),
                }
                self.record(&path_of(stack), line, col);
                col = skip_spaces(chars, col + 1);
                continue;
            }
            if let Some((key, after)) = block_key(chars, col) {
                while stack.last().is_some_and(|f| f.col >= col) {
                    stack.pop();
                }
                stack.push(Frame {
                    col,
                    seg: Seg::Key(key),
                });
                let path = path_of(stack);
                self.record(&path, line, col);
                let value = skip_properties(chars, skip_spaces(chars, after));
                match chars.get(value) {
                    Some('|' | '>') => *block_scalar = Some(col),
                    Some('{' | '[') => self.scan_flow(chars, value, &path, line),
                    _ => {}
                }
                return;
            }
            match c {
                '{' | '[' => self.scan_flow(chars, col, &path_of(stack), line),
                '|' | '>' => *block_scalar = Some(stack.last().map_or(0, |f| f.col)),
                _ => {}
            }
            return;
        }
    }

    /// Records the keys and items of a flow collection that starts at `start`, up to the end of
    /// the line.
    fn scan_flow(&mut self, chars: &[char], start: usize, base: &[Seg], line: usize) {
        enum Flow {
            Map { path: Vec<Seg>, key: Option<String> },
            Seq { path: Vec<Seg>, index: usize },
        }
        enum Expect {
            Node,
            Key,
            Separator,
        }
        let mut frames: Vec<Flow> = Vec::new();
        let mut expect = Expect::Node;
        let mut i = start;
        while let Some(&c) = chars.get(i) {
            if c == ' ' || c == '\t' {
                i += 1;
                continue;
            }
            if c == '#' {
                return;
            }
            match expect {
                Expect::Node | Expect::Key if c == ']' || c == '}' => expect = Expect::Separator,
                Expect::Node => {
                    let path = match frames.last() {
                        None => base.to_vec(),
                        Some(Flow::Seq { path, index }) => {
                            let mut p = path.clone();
                            p.push(Seg::Index(*index));
                            self.record(&p, line, i);
                            p
                        }
                        Some(Flow::Map { path, key }) => {
                            let mut p = path.clone();
                            if let Some(k) = key {
                                p.push(Seg::Key(k.clone()));
                            }
                            p
                        }
                    };
                    match c {
                        '{' => {
                            frames.push(Flow::Map { path, key: None });
                            expect = Expect::Key;
                            i += 1;
                        }
                        '[' => {
                            frames.push(Flow::Seq { path, index: 0 });
                            i += 1;
                        }
                        _ => {
                            i = flow_scalar(chars, i).1;
                            expect = Expect::Separator;
                        }
                    }
                    if frames.is_empty() {
                        return;
                    }
                }
                Expect::Key => {
                    let (key, end) = flow_scalar(chars, i);
                    if let Some(Flow::Map { path, key: slot }) = frames.last_mut() {
                        let mut p = path.clone();
                        p.push(Seg::Key(key.clone()));
                        self.record(&p, line, i);
                        *slot = Some(key);
                    }
                    i = skip_spaces(chars, end);
                    if chars.get(i) == Some(&':') {
                        i += 1;
                        expect = Expect::Node;
                    } else {
                        expect = Expect::Separator;
                    }
                }
                Expect::Separator => {
                    i += 1;
                    match (c, frames.last_mut()) {
                        (',', Some(Flow::Seq { index, .. })) => {
                            *index += 1;
                            expect = Expect::Node;
                        }
                        (',', Some(Flow::Map { key, .. })) => {
                            *key = None;
                            expect = Expect::Key;
                        }
                        (']' | '}', Some(_)) => {
                            frames.pop();
                            if frames.is_empty() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            }
        }
    }

    fn record(&mut self, path: &[Seg], line: usize, col0: usize) {
        self.map.entry(path.to_vec()).or_insert((line, col0 + 1));
    }

    /// The position of `path`, or of its nearest recorded ancestor.
    pub fn locate(&self, path: &[Seg]) -> Option<(usize, usize)> {
        (1..=path.len())
            .rev()
            .find_map(|n| path.get(..n).and_then(|p| self.map.get(p)).copied())
    }
}

fn path_of(stack: &[Frame]) -> Vec<Seg> {
    stack.iter().map(|f| f.seg.clone()).collect()
}

fn is_document_marker(chars: &[char]) -> bool {
    let three: String = chars.iter().take(3).collect();
    (three == "---" || three == "...") && chars.get(3).is_none_or(|c| c.is_whitespace())
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
        i += 1;
    }
    i
}

/// Skips an anchor (`&a`) or tag (`!t`) in front of a value.
fn skip_properties(chars: &[char], mut i: usize) -> usize {
    while matches!(chars.get(i), Some('&' | '!')) {
        while chars.get(i).is_some_and(|c| !c.is_whitespace()) {
            i += 1;
        }
        i = skip_spaces(chars, i);
    }
    i
}

/// A block mapping key starting at `col`: its text and the index just after its `:`.
fn block_key(chars: &[char], col: usize) -> Option<(String, usize)> {
    let first = *chars.get(col)?;
    let (key, end) = match first {
        '"' | '\'' => quoted(chars, col),
        '[' | ']' | '{' | '}' | ',' | '#' | '&' | '*' | '!' | '|' | '>' | '%' | '@' | '`' => {
            return None
        }
        _ => {
            let mut i = col;
            loop {
                let c = *chars.get(i)?;
                if c == ':' && chars.get(i + 1).is_none_or(|n| n.is_whitespace()) {
                    break;
                }
                if c == '#' && i > col && chars.get(i - 1).is_some_and(|p| p.is_whitespace()) {
                    return None;
                }
                i += 1;
            }
            let key: String = chars.get(col..i)?.iter().collect();
            (key.trim_end().to_string(), i)
        }
    };
    let colon = skip_spaces(chars, end);
    let is_key =
        chars.get(colon) == Some(&':') && chars.get(colon + 1).is_none_or(|n| n.is_whitespace());
    (is_key && !key.is_empty()).then_some((key, colon + 1))
}

/// A quoted scalar starting at `start`: its (roughly unescaped) text and the index after it.
fn quoted(chars: &[char], start: usize) -> (String, usize) {
    let quote = chars.get(start).copied().unwrap_or('"');
    let mut out = String::new();
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        if quote == '"' && c == '\\' {
            if let Some(&n) = chars.get(i + 1) {
                out.push(n);
            }
            i += 2;
            continue;
        }
        if c == quote {
            if quote == '\'' && chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            return (out, i + 1);
        }
        out.push(c);
        i += 1;
    }
    (out, i)
}

/// A scalar inside a flow collection: its text and the index after it.
fn flow_scalar(chars: &[char], start: usize) -> (String, usize) {
    if matches!(chars.get(start), Some('"' | '\'')) {
        return quoted(chars, start);
    }
    let mut i = start;
    while let Some(&c) = chars.get(i) {
        let ends_key = c == ':'
            && chars
                .get(i + 1)
                .is_none_or(|n| n.is_whitespace() || matches!(n, ',' | ']' | '}'));
        if matches!(c, ',' | ']' | '}') || ends_key {
            break;
        }
        i += 1;
    }
    let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
    (text.trim_end().to_string(), i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &[&str]) -> Vec<Seg> {
        s.iter()
            .map(|p| match p.parse::<usize>() {
                Ok(n) => Seg::Index(n),
                Err(_) => Seg::Key(p.to_string()),
            })
            .collect()
    }

    const DOC: &str = "\
# comment
collection_interval: 15s
targets:
  - name: web-1   # trailing
    endpoint: http://127.0.0.1:9001
    include: { names: [a, b], regex: [\"^web-\"] }
  - name: web-2
    status_mapping:
      STOPPED: up
    note: |
      name: not a key
      - nor: an item
    \"quoted key\": 1
exporters:
  otlp/x:
    headers: {dd-api-key: x}
";

    #[test]
    fn block_keys_and_items() {
        let p = Positions::scan(DOC);
        assert_eq!(p.locate(&path(&["collection_interval"])), Some((2, 1)));
        assert_eq!(p.locate(&path(&["targets", "0"])), Some((4, 3)));
        assert_eq!(p.locate(&path(&["targets", "0", "name"])), Some((4, 5)));
        assert_eq!(p.locate(&path(&["targets", "0", "endpoint"])), Some((5, 5)));
        assert_eq!(p.locate(&path(&["targets", "1", "name"])), Some((7, 5)));
        assert_eq!(
            p.locate(&path(&["targets", "1", "status_mapping", "STOPPED"])),
            Some((9, 7))
        );
        assert_eq!(
            p.locate(&path(&["targets", "1", "quoted key"])),
            Some((13, 5))
        );
        assert_eq!(
            p.locate(&path(&["exporters", "otlp/x", "headers", "dd-api-key"])),
            Some((16, 15))
        );
    }

    #[test]
    fn flow_collections_on_one_line() {
        let p = Positions::scan(DOC);
        assert_eq!(
            p.locate(&path(&["targets", "0", "include", "names", "1"])),
            Some((6, 27))
        );
        assert_eq!(
            p.locate(&path(&["targets", "0", "include", "regex", "0"])),
            Some((6, 39))
        );
    }

    #[test]
    fn block_scalars_are_skipped() {
        let p = Positions::scan(DOC);
        assert_eq!(
            p.locate(&path(&["targets", "1", "note", "name"])),
            Some((10, 5))
        );
    }

    #[test]
    fn compact_sequences_and_unknown_paths() {
        let src =
            "instances:\n- name: a\n  port: 1\n- name: b\n  tags:\n  - x:y\n  - z\nother: 1\n";
        let p = Positions::scan(src);
        assert_eq!(p.locate(&path(&["instances", "1", "name"])), Some((4, 3)));
        assert_eq!(
            p.locate(&path(&["instances", "1", "tags", "1"])),
            Some((7, 3))
        );
        assert_eq!(p.locate(&path(&["other"])), Some((8, 1)));
        // Falls back to the nearest ancestor.
        assert_eq!(
            p.locate(&path(&["instances", "0", "missing"])),
            Some((2, 1))
        );
        assert_eq!(p.locate(&path(&["nowhere"])), None);
    }

    #[test]
    fn never_panics_on_odd_text() {
        for src in [
            "{",
            "}",
            "[[[",
            "- - -",
            ": :",
            "\"unterminated: x",
            "'a'': b",
            "a: {b: [c, {d: }",
            "\u{0}\u{1}",
            "-\t",
            "key: &anchor !tag {x: 1}",
            "?",
            "é: ü",
            "a: {: b}",
        ] {
            let _ = Positions::scan(src);
        }
    }
}
