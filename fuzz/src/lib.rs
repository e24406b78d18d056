//! The fuzz targets' bodies, shared by cargo-fuzz (`fuzz_targets/`), the stable runner
//! (`src/bin/fuzz_stable.rs`) and the test suite (`tests/unit/` includes this file), so the
//! three exercise the same code with the same checks.
//!
//! A check returns or panics: a panic anywhere, in the code under test or in an assertion
//! here, is a finding.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use supervisord_receiver::config;
use supervisord_receiver::metrics::build_request;
use supervisord_receiver::scrape;
use supervisord_receiver::scrape::outcome::{PollOutcome, TargetIdentity};
use supervisord_receiver::settings::{Settings, Target};
use supervisord_receiver::supervisor::client;
use supervisord_receiver::supervisor::decode;
use supervisord_receiver::supervisor::xmlrpc::{self, Value};

/// Each target's inputs, as paths from the repository root: the target's own corpus directory
/// (inputs that exist only for fuzzing; cargo-fuzz adds what it finds there), then the test
/// suite's fixtures it is seeded with, read where they live so each is kept in one copy. The
/// test suite replays all of them (`tests/unit/fuzz_regressions.rs`), `fuzz-stable` mutates
/// them, and fuzz/README.md names them on the cargo-fuzz command lines.
pub const CORPUS: [(&str, &[&str]); 2] = [
    (
        "xmlrpc_decode",
        &["fuzz/corpus/xmlrpc_decode", "tests/fixtures/xmlrpc"],
    ),
    (
        "config_load",
        &[
            "fuzz/corpus/config_load",
            "examples/native.yaml",
            "examples/datadog.yaml",
        ],
    ),
];

/// [`CORPUS`]'s paths for `target` (none for an unknown target).
pub fn corpus_paths(target: &str) -> &'static [&'static str] {
    CORPUS
        .iter()
        .find(|(name, _)| *name == target)
        .map_or(&[], |(_, paths)| paths)
}

/// The longest message a reply may put in one log line: the fixed text plus a quote of the
/// server's text, which the decoder cuts at 200 characters.
pub const MAX_MESSAGE_CHARS: usize = 600;

/// An XML-RPC reply body, as the transport hands it over: the decoder alone, then the poll
/// client's whole path (multicall split, model, problems), the filters and the OTLP builder;
/// and the fast path against the general decoder.
pub fn xmlrpc_decode(data: &[u8]) {
    fast_path_agrees(data);
    match xmlrpc::decode_response(data) {
        Ok(Ok(value)) => {
            round_trip(&value);
            // A plain `getAllProcessInfo` reply, as from a server without multicall.
            if let Ok((_, problems)) = decode::processes(&value) {
                check_lines(&problems);
            }
            let _ = decode::supervisor_state(&value);
        }
        Ok(Err(fault)) => check_line(&fault.to_string()),
        Err(error) => check_line(&error.to_string()),
    }
    for settings in poll_settings() {
        let target = first_target(settings);
        match client::decode_multicall_reply(data) {
            Ok(Ok(polled)) => {
                check_lines(&polled.problems);
                let outcome = PollOutcome {
                    target: Arc::new(TargetIdentity::of(target)),
                    time_unix_nano: 1,
                    result: Ok(scrape::monitored(target, polled.snapshot)),
                };
                let _ = build_request(&[outcome], &settings.metrics);
            }
            Ok(Err(fault)) => check_line(&fault.to_string()),
            Err(error) => check_line(&error.message(target)),
        }
    }
}

/// Where the poll client's fast path accepts a reply, it gives exactly what the general
/// decoder gives for the same bytes: the same processes, problems and answers.
pub fn fast_path_agrees(data: &[u8]) {
    if let Some(fast) = client::fast_multicall_reply(data) {
        match client::general_multicall_reply(data) {
            Ok(Ok(general)) => assert_eq!(fast, general, "the two paths differ on a multicall"),
            other => {
                panic!("the fast path accepted a multicall the general decoder gives as {other:?}")
            }
        }
    }
    if let Some(fast) = client::fast_processes_reply(data) {
        match client::general_processes_reply(data) {
            Ok(Ok(general)) => assert_eq!(fast, general, "the two paths differ on getAllProcessInfo"),
            other => panic!(
                "the fast path accepted a getAllProcessInfo reply the general decoder gives as {other:?}"
            ),
        }
    }
}

/// A configuration file's bytes: `load_bytes` returns `Ok` or `Err`, and what it accepts keeps
/// the invariants the poller relies on.
///
/// `${file:...}` substitutions are turned into an unsupported `${File:...}` first: they read
/// the real filesystem, where a generated path could name a terminal or a FIFO and block. The
/// config tests cover them.
pub fn config_load(data: &[u8]) {
    let mut data = data.to_vec();
    for at in 0..data.len() {
        if data.get(at..at + 6) == Some(b"{file:".as_slice()) {
            if let Some(f) = data.get_mut(at + 1) {
                *f = b'F';
            }
        }
    }
    let data = data.as_slice();
    let env = |name: &str| match name {
        "SET" => Some("value".to_owned()),
        "EMPTY" => Some(String::new()),
        "PORT" => Some("9001".to_owned()),
        _ => None,
    };
    if let Ok(settings) = config::load_bytes(Path::new("fuzz.yaml"), data, &env) {
        for target in &settings.targets {
            // One poll in flight per target: the timeout never exceeds the interval.
            assert!(
                !target.timeout.is_zero() && target.timeout <= target.collection_interval,
                "target {:?}: timeout {:?}, interval {:?}",
                target.name,
                target.timeout,
                target.collection_interval
            );
        }
    }
}

/// What decodes must encode and decode back: to itself when every character is one XML can
/// carry (the encoder replaces the others with U+FFFD).
fn round_trip(value: &Value) {
    let encoded = xmlrpc::encode_response(value);
    match xmlrpc::decode_response(&encoded) {
        Ok(Ok(again)) => {
            if representable(value) {
                assert_eq!(&again, value, "decode(encode(v)) != v");
            }
        }
        other => panic!("a decoded value, encoded again, does not decode: {other:?}"),
    }
}

/// Every text of `value` survives encoding unchanged.
pub fn representable(value: &Value) -> bool {
    match value {
        Value::String(s) | Value::DateTime(s) => s.chars().all(representable_char),
        Value::Struct(members) => members
            .iter()
            .all(|(name, v)| name.chars().all(representable_char) && representable(v)),
        Value::Array(items) => items.iter().all(representable),
        Value::Int(_) | Value::Bool(_) | Value::Double(_) | Value::Base64(_) | Value::Nil => true,
    }
}

/// Characters XML 1.0 can carry (the encoder writes `\r` as a reference).
pub fn representable_char(c: char) -> bool {
    !matches!(c, '\u{FFFE}' | '\u{FFFF}') && (c >= ' ' || matches!(c, '\t' | '\n' | '\r'))
}

/// A message about a reply goes into one log line: no line break a server could use to forge
/// another line, and bounded in length.
pub fn check_line(message: &str) {
    assert!(
        !message.contains(['\n', '\r']),
        "line break in a message: {message:?}"
    );
    assert!(
        message.chars().count() <= MAX_MESSAGE_CHARS,
        "message of {} characters: {:?}...",
        message.chars().count(),
        message.chars().take(100).collect::<String>()
    );
}

fn check_lines(messages: &[String]) {
    for message in messages {
        check_line(message);
    }
}

/// A native and a Datadog target (the builder differs by format), with a status mapping.
fn poll_settings() -> &'static [Settings; 2] {
    static SETTINGS: OnceLock<[Settings; 2]> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let load = |text: &str| {
            config::load_bytes(Path::new("fuzz.yaml"), text.as_bytes(), &|_| None)
                .unwrap_or_else(|e| panic!("the fuzz harness's own config does not load: {e}"))
        };
        [
            load(
                "targets:\n  - name: fuzz\n    endpoint: http://127.0.0.1:9001\n    \
                 status_mapping: { STOPPED: up }\nexporters:\n  debug: {}\n",
            ),
            load(
                "init_config:\ninstances:\n  - name: fuzz\n    host: 127.0.0.1\n    port: 9001\n    \
                 status_mapping_override: { STOPPED: up }\n",
            ),
        ]
    })
}

fn first_target(settings: &Settings) -> &Target {
    settings
        .targets
        .first()
        .unwrap_or_else(|| panic!("the fuzz harness's own config has no target"))
}
