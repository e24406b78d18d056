//! Hostile replies fail only their own target, with a clear reason.

use std::sync::Arc;

use supervisord_receiver::supervisor::xmlrpc::{self, Value};

use super::fakes::{Behaviour, Fakes};
use super::{connected, disconnected, serial, RECORDED};
use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::otlp_sink::{self, OtlpSink};
use crate::testkit::receiver::Running;
use crate::testkit::WAIT;

fn process(name: &str, statename: &str, state: i64) -> Vec<(String, Value)> {
    let s = |v: &str| Value::String(v.to_owned());
    vec![
        ("name".into(), s(name)),
        ("group".into(), s(name)),
        ("start".into(), Value::Int(100)),
        ("stop".into(), Value::Int(0)),
        ("now".into(), Value::Int(160)),
        ("state".into(), Value::Int(state)),
        ("statename".into(), s(statename)),
        ("spawnerr".into(), s("")),
        ("exitstatus".into(), Value::Int(0)),
        ("logfile".into(), s("/tmp/log")),
        ("stdout_logfile".into(), s("/tmp/log")),
        ("stderr_logfile".into(), s("")),
        ("pid".into(), Value::Int(42)),
        ("description".into(), s("pid 42, uptime 0:01:00")),
    ]
}

/// A `system.multicall` reply as supervisord sends it (bare results).
fn multicall(processes: Vec<Value>) -> Vec<u8> {
    let state = Value::Struct(vec![
        ("statecode".into(), Value::Int(1)),
        ("statename".into(), Value::String("RUNNING".into())),
    ]);
    xmlrpc::encode_response(&Value::Array(vec![
        Value::Array(processes),
        state,
        Value::String("supervisor".into()),
        Value::String("4.3.0".into()),
    ]))
}

fn with_field(mut fields: Vec<(String, Value)>, key: &str, value: Option<Value>) -> Value {
    fields.retain(|(k, _)| k != key);
    if let Some(value) = value {
        fields.push((key.to_owned(), value));
    }
    Value::Struct(fields)
}

/// A target that fails the poll: `can_connect` 0 and this line in the log.
struct Fatal {
    name: &'static str,
    behaviour: Behaviour,
    log: String,
}

/// A target whose reply is kept, with a problem logged: `can_connect` 1 and this line.
struct Lenient {
    name: &'static str,
    body: Vec<u8>,
    log: &'static str,
}

fn reply(body: impl Into<Vec<u8>>) -> Behaviour {
    Behaviour::Reply(Arc::new(body.into()))
}

fn fatal_cases() -> Vec<Fatal> {
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n\
                  <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n\
                  <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n\
                  <methodResponse><params><param><value><string>&lol3;</string></value>\
                  </param></params></methodResponse>";
    let mut invalid_utf8 = RECORDED.as_bytes().to_vec();
    let at = RECORDED.find("<string>bad</string>").unwrap_or(0) + "<string>".len();
    if let Some(byte) = invalid_utf8.get_mut(at) {
        *byte = 0xFF;
    }
    let deep = format!(
        "<?xml version='1.0'?><methodResponse><params><param>{}{}</param></params></methodResponse>",
        "<value><array><data>".repeat(10_000),
        "</data></array></value>".repeat(10_000)
    );
    let huge_name = "n".repeat(17 * 1024 * 1024);
    let huge = multicall(vec![Value::Struct(process(&huge_name, "RUNNING", 20))]);
    let fault = xmlrpc::encode_response(&Value::Array(vec![Value::Struct(vec![
        ("faultCode".into(), Value::Int(10)),
        ("faultString".into(), Value::String("BAD_NAME".into())),
    ])]));
    let half = RECORDED.get(..RECORDED.len() / 2).unwrap_or_default();
    vec![
        Fatal {
            name: "malformed",
            behaviour: reply(format!("{half}</value></methodResponse>")),
            log: "Invalid reply from malformed: ".into(),
        },
        Fatal {
            name: "html",
            behaviour: reply(
                "<!DOCTYPE html>\n<html><head><title>Supervisor Status</title></head></html>",
            ),
            log: "Invalid reply from html: the reply is an HTML page, not XML-RPC: is the URL \
                  missing /RPC2?"
                .into(),
        },
        Fatal {
            name: "laughs",
            behaviour: reply(laughs),
            log: "Invalid reply from laughs: the reply contains a DTD (<!DOCTYPE>), which is \
                  refused"
                .into(),
        },
        Fatal {
            name: "entity",
            behaviour: reply(RECORDED.replacen(
                "<string>bad</string>",
                "<string>&xxe;</string>",
                1,
            )),
            log: "Invalid reply from entity: the reply uses entity '&xxe;'".into(),
        },
        Fatal {
            name: "utf8",
            behaviour: reply(invalid_utf8),
            log: format!("Invalid reply from utf8: the reply is not valid UTF-8 (byte {at})"),
        },
        Fatal {
            name: "deep",
            behaviour: reply(deep),
            log: "Invalid reply from deep: values nest deeper than 64 levels".into(),
        },
        Fatal {
            name: "huge",
            behaviour: reply(huge),
            log: "Invalid reply from huge: reply larger than 16777216 bytes".into(),
        },
        Fatal {
            name: "fault",
            behaviour: reply(fault),
            log: "An error occurred while reading process information: 10 BAD_NAME".into(),
        },
        Fatal {
            name: "wrongtype",
            behaviour: reply(xmlrpc::encode_response(&Value::Array(vec![Value::String(
                "processes".into(),
            )]))),
            log: "Invalid reply from wrongtype: getAllProcessInfo returned a string, not an array"
                .into(),
        },
        Fatal {
            name: "empty",
            behaviour: reply(""),
            log: "Invalid reply from empty: the reply is empty".into(),
        },
        Fatal {
            name: "status500",
            behaviour: Behaviour::Status(500, "Internal Server Error"),
            log: "An error occurred while connecting to status500: 500 Internal Server Error"
                .into(),
        },
    ]
}

fn lenient_cases() -> Vec<Lenient> {
    vec![
        Lenient {
            name: "fieldtype",
            body: multicall(vec![
                with_field(
                    process("web", "RUNNING", 20),
                    "pid",
                    Some(Value::String("42".into())),
                ),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process 'web': field 'pid' is not an int",
        },
        Lenient {
            name: "missing",
            body: multicall(vec![
                with_field(process("web", "RUNNING", 20), "name", None),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process #1: field 'name' is missing, skipped",
        },
        Lenient {
            name: "unknownstate",
            body: multicall(vec![
                Value::Struct(process("web", "EXPLODING", 1000)),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process 'web': unknown state 'EXPLODING' (code 1000)",
        },
        Lenient {
            name: "forged",
            body: multicall(vec![
                Value::Struct(process("web\nERROR forged line", "NOPE", 7)),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process 'web\\nERROR forged line': unknown state 'NOPE' (code 7)",
        },
    ]
}

#[test]
fn hostile_replies_fail_only_their_own_target_with_a_clear_reason() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let fakes = Fakes::new();
    let (good_url, _) = fakes.serve(reply(RECORDED));
    let fatal = fatal_cases();
    let lenient = lenient_cases();
    let mut targets = vec![target("good", &good_url)];
    for case in &fatal {
        let (url, _) = fakes.serve(case.behaviour.clone());
        targets.push(target(case.name, &url));
    }
    for case in &lenient {
        let (url, _) = fakes.serve(reply(case.body.clone()));
        targets.push(target(case.name, &url));
    }
    let sink = OtlpSink::start();
    let cfg = config::native(
        &targets,
        &[otlp_exporter(
            "http/protobuf",
            &sink.http_endpoint(),
            "none",
            &[],
        )],
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    for case in &fatal {
        let poll = sink.wait_for_poll(case.name, disconnected, WAIT);
        assert!(poll.process_names().is_empty(), "{}", poll.describe());
        receiver.wait_for_stderr(&case.log, WAIT);
    }
    for case in &lenient {
        let poll = sink.wait_for_poll(case.name, connected, WAIT);
        assert!(
            poll.process_names().contains("db"),
            "{}: the rest of the reply is kept\n{}",
            case.name,
            poll.describe()
        );
        receiver.wait_for_stderr(case.log, WAIT);
    }
    let unknown = sink.wait_for_poll("unknownstate", connected, WAIT);
    assert_eq!(
        unknown.value(
            "supervisord.process.state",
            &[("supervisord_process", "web"), ("state", "UNKNOWN")]
        ),
        Some(1),
        "{}",
        unknown.describe()
    );

    // Still polling the good target after all of that, and every bad one, every interval.
    let before = otlp_sink::polls(&sink.requests(), "good").len();
    let requests = sink.wait_for(
        |r| {
            otlp_sink::polls(r, "good")
                .iter()
                .filter(|p| connected(p))
                .count()
                >= before + 2
        },
        WAIT,
    );
    for poll in otlp_sink::polls(&requests, "good") {
        assert!(connected(&poll), "{}", poll.describe());
    }
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(
        !finished.stderr.contains("\nERROR forged line"),
        "a process name forged a log line:\n{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("panicked"),
        "{}",
        finished.describe()
    );
    for case in &fatal {
        let polls = otlp_sink::polls(&requests, case.name);
        assert!(
            polls.len() >= 2 && polls.iter().all(disconnected),
            "{}: can_connect 0 every interval",
            case.name
        );
    }
}
