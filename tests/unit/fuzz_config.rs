//! Property tests of the config loader: arbitrary bytes, generated YAML built from the keys both
//! formats know, and mutated example files all go through `config::load_bytes`, which must
//! return `Ok` or `Err` and never panic; what it accepts keeps the poller's invariants.
//!
//! Bounded (2,000 cases per property) so they take seconds in `cargo test`; the same check runs
//! unbounded under cargo-fuzz (fuzz/README.md).

use crate::checks;

use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    Config {
        cases: 2_000,
        // A failure prints its minimal input; it goes into tests/unit/fuzz_regressions.rs.
        failure_persistence: None,
        ..Config::default()
    }
}

const NATIVE_EXAMPLE: &str = include_str!("../../examples/native.yaml");
const DATADOG_EXAMPLE: &str = include_str!("../../examples/datadog.yaml");

/// Keys of both formats, a few misspelt, and YAML's merge key.
const KEYS: [&str; 48] = [
    "collection_interval",
    "initial_delay",
    "timeout",
    "targets",
    "name",
    "endpoint",
    "username",
    "password",
    "include",
    "exclude",
    "names",
    "regex",
    "groups",
    "status_mapping",
    "resource_attributes",
    "metrics",
    "enabled",
    "exporters",
    "otlp",
    "otlp/b",
    "debug",
    "protocol",
    "headers",
    "compression",
    "verbosity",
    "tls",
    "ca_file",
    "insecure_skip_verify",
    "init_config",
    "instances",
    "host",
    "port",
    "socket",
    "user",
    "pass",
    "proc_names",
    "proc_regex",
    "proc_names_exclude",
    "proc_regex_exclude",
    "status_mapping_override",
    "tags",
    "service",
    "min_collection_interval",
    "server_check",
    "metric_patterns",
    "targetz",
    "STOPPED",
    "<<",
];

/// Values worth trying in those keys.
const SCALARS: [&str; 40] = [
    "1s",
    "0s",
    "500ms",
    "-1s",
    "1h30m",
    "99999999999999999h",
    "15",
    "0",
    "-1",
    "65536",
    "1e400",
    "true",
    "null",
    "~",
    "''",
    "\"\"",
    "up",
    "down",
    "STOPPED",
    "http://127.0.0.1:9001",
    "https://[::1]:9001/RPC2",
    "http://h:0",
    "unix:///tmp/s.sock",
    "unix://",
    "ftp://x",
    "grpc",
    "http/json",
    "gzip",
    "detailed",
    "\"(\"",
    "'^web-(?=x)'",
    "${env:SET}",
    "${env:UNSET}",
    "\"${env:EMPTY}\"",
    "http://h:${env:PORT}",
    "$${literal}",
    "${",
    "&a x",
    "*a",
    "\"\\u0000\"",
];

/// Characters YAML gives a meaning to, to draw often in arbitrary text.
const YAML_CHARS: [char; 22] = [
    ':', '-', ' ', '\n', '\t', '[', ']', '{', '}', ',', '#', '&', '*', '!', '|', '>', '\'', '"',
    '%', '@', '?', '$',
];

/// A YAML node, rendered as block or flow YAML.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&SCALARS[..]).prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(&KEYS[..]).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

fn node() -> impl Strategy<Value = Node> {
    scalar()
        .prop_map(Node::Scalar)
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Node::Seq),
                prop::collection::vec((key(), inner), 0..6).prop_map(Node::Map),
            ]
        })
}

fn render(node: &Node, indent: usize, flow: bool, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Node::Seq(items) if flow || items.is_empty() => {
            out.push_str(" [");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let mut inner = String::new();
                render(item, 0, true, &mut inner);
                out.push_str(inner.trim());
            }
            out.push_str("]\n");
        }
        Node::Map(members) if flow || members.is_empty() => {
            out.push_str(" {");
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let mut inner = String::new();
                render(v, 0, true, &mut inner);
                out.push_str(k);
                out.push(':');
                out.push_str(inner.trim_end());
            }
            out.push_str("}\n");
        }
        Node::Seq(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&pad);
                out.push_str("  -");
                render(item, indent + 4, false, out);
            }
        }
        Node::Map(members) => {
            out.push('\n');
            for (k, v) in members {
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                render(v, indent + 2, false, out);
            }
        }
    }
}

/// A document: a top-level mapping, some values in flow style.
fn document() -> impl Strategy<Value = String> {
    (prop::collection::vec((key(), node()), 0..6), any::<bool>()).prop_map(|(members, flow)| {
        let mut out = String::new();
        for (k, v) in members {
            out.push_str(&k);
            out.push(':');
            render(&v, 2, flow, &mut out);
        }
        out
    })
}

/// The example with its optional settings switched on, as tests/unit/config/ reads it.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            let rest = line.get(indent..).unwrap_or_default();
            match rest.strip_prefix("# ") {
                Some(setting) if !rest.starts_with("##") => {
                    format!("{}{setting}", line.get(..indent).unwrap_or_default())
                }
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Clone)]
enum LineEdit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Indent(usize, usize),
    Dedent(usize),
    ReplaceValue(usize, String),
    InsertByte(usize, u8),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    let at = any::<usize>();
    prop_oneof![
        at.prop_map(LineEdit::Delete),
        at.prop_map(LineEdit::Duplicate),
        (at, any::<usize>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        (at, 1usize..5).prop_map(|(a, n)| LineEdit::Indent(a, n)),
        at.prop_map(LineEdit::Dedent),
        (at, scalar()).prop_map(|(a, v)| LineEdit::ReplaceValue(a, v)),
        (at, any::<u8>()).prop_map(|(a, b)| LineEdit::InsertByte(a, b)),
    ]
}

fn edit(text: &str, edits: &[LineEdit]) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            LineEdit::Delete(at) if !lines.is_empty() => {
                lines.remove(at % n);
            }
            LineEdit::Duplicate(at) => {
                if let Some(line) = lines.get(at % n).cloned() {
                    lines.insert(at % n, line);
                }
            }
            LineEdit::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            LineEdit::Indent(at, by) => {
                if let Some(line) = lines.get_mut(at % n) {
                    line.insert_str(0, &" ".repeat(*by));
                }
            }
            LineEdit::Dedent(at) => {
                if let Some(line) = lines.get_mut(at % n) {
                    *line = line.trim_start().to_owned();
                }
            }
            LineEdit::ReplaceValue(at, value) => {
                if let Some(line) = lines.get_mut(at % n) {
                    if let Some((k, _)) = line.split_once(':') {
                        *line = format!("{k}: {value}");
                    }
                }
            }
            LineEdit::InsertByte(at, byte) => {
                if let Some(line) = lines.get_mut(at % n) {
                    let mut bytes = std::mem::take(line).into_bytes();
                    bytes.insert(at % (bytes.len() + 1), *byte);
                    *line = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
            _ => {}
        }
    }
    lines.join("\n").into_bytes()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        checks::config_load(&bytes);
    }

    #[test]
    fn arbitrary_text(chars in prop::collection::vec(
        prop_oneof![
            prop::sample::select(&YAML_CHARS[..]),
            any::<char>(),
        ],
        0..256,
    )) {
        checks::config_load(String::from_iter(chars).as_bytes());
    }

    #[test]
    fn generated_yaml(doc in document()) {
        checks::config_load(doc.as_bytes());
    }

    #[test]
    fn mutated_examples(
        which in 0..4usize,
        edits in prop::collection::vec(line_edit(), 1..6),
    ) {
        let base = match which {
            0 => NATIVE_EXAMPLE.to_owned(),
            1 => uncommented(NATIVE_EXAMPLE),
            2 => DATADOG_EXAMPLE.to_owned(),
            _ => uncommented(DATADOG_EXAMPLE),
        };
        checks::config_load(&edit(&base, &edits));
    }
}
