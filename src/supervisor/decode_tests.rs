//! Tests of the model decoder: recorded replies (Datadog's fixtures, a real supervisord's
//! multicall), lenient handling of bad entries and fields, the problem and process caps, and
//! hostile names.

use super::*;

#[test]
fn the_field_list_names_every_field_once() {
    let mut fields: Vec<Field> = PROCESS_INFO_FIELDS
        .iter()
        .map(|key| Field::from_key(key).expect("a known field"))
        .collect();
    assert!(fields
        .iter()
        .zip(PROCESS_INFO_FIELDS)
        .all(|(f, k)| f.key() == k));
    fields.sort_by_key(|f| *f as usize);
    fields.dedup();
    assert_eq!(fields.len(), FIELD_COUNT);
}
use crate::supervisor::xmlrpc::decode_response;

/// The bytes of a recorded reply in `tests/fixtures/xmlrpc/` (the config info's tests read
/// them too).
pub(crate) fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/xmlrpc/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

fn fixture(name: &str) -> Value {
    decode_response(&fixture_bytes(name)).unwrap().unwrap()
}

pub(crate) fn s(text: &str) -> Value {
    Value::String(text.into())
}

/// A struct of these members, in this order.
pub(crate) fn entry(members: &[(&str, Value)]) -> Value {
    Value::Struct(
        members
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn full_entry(name: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("name", s(name)),
        ("group", s("g")),
        ("start", Value::Int(10)),
        ("stop", Value::Int(0)),
        ("now", Value::Int(25)),
        ("state", Value::Int(20)),
        ("statename", s("RUNNING")),
        ("spawnerr", s("")),
        ("exitstatus", Value::Int(0)),
        ("logfile", s("/l")),
        ("stdout_logfile", s("/l")),
        ("stderr_logfile", s("/e")),
        ("pid", Value::Int(42)),
        ("description", s("pid 42")),
    ]
}

#[test]
fn datadog_server1_fixture() {
    let (procs, problems) = processes(&fixture("datadog_server1.xml")).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let mysql = ProcessInfo {
        name: "mysql".into(),
        group: "mysql".into(),
        description: "pid 787, uptime 0:02:05".into(),
        state: ProcessState::Running,
        statename: "RUNNING".into(),
        start: 1414815388,
        stop: 0,
        now: 1414815513,
        exitstatus: 0,
        pid: 787,
        spawnerr: String::new(),
        logfile: "/var/log/mysql/mysql.log".into(),
        stdout_logfile: "/var/log/mysql/mysql.log".into(),
        stderr_logfile: "/var/log/supervisor/mysql-stderr---supervisor-3ATI82.log".into(),
    };
    assert_eq!(procs.first(), Some(&mysql));
    let summary: Vec<(&str, ProcessState, i64, i64)> = procs
        .iter()
        .map(|p| (p.name.as_str(), p.state, p.exitstatus, p.uptime()))
        .collect();
    assert_eq!(
        summary,
        [
            ("mysql", ProcessState::Running, 0, 125),
            ("java", ProcessState::Stopped, 21, 0),
            ("python", ProcessState::Starting, 0, 0),
        ]
    );
    let java = procs.get(1).unwrap();
    assert_eq!(java.description, "Nov 01 04:22 AM");
    assert_eq!(java.stop, 1414815722);
    assert_eq!(java.now, 1414815738);
    let python = procs.get(2).unwrap();
    assert_eq!(python.pid, 2765);
    assert_eq!(python.description, "");
}

#[test]
fn datadog_server0_and_ruby_fixtures() {
    let (procs, problems) = processes(&fixture("datadog_server0_auth.xml")).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let summary: Vec<(&str, ProcessState, i64)> = procs
        .iter()
        .map(|p| (p.name.as_str(), p.state, p.uptime()))
        .collect();
    assert_eq!(
        summary,
        [
            ("apache2", ProcessState::Fatal, 0),
            ("webapp", ProcessState::Stopping, 2)
        ]
    );
    assert_eq!(
        procs.first().map(|p| p.spawnerr.as_str()),
        Some("Exited too quickly (process log may have details)")
    );
    let (procs, problems) = processes(&fixture("datadog_ruby.xml")).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(procs.len(), 1);
    let ruby = procs.first().unwrap();
    assert_eq!((ruby.state, ruby.uptime()), (ProcessState::Backoff, 0));
    assert_eq!(ruby.stdout_logfile, "/var/log/ruby/ruby.log");
}

#[test]
fn not_an_array_is_an_error() {
    let err = processes(&Value::Struct(vec![])).unwrap_err();
    assert_eq!(err, ModelError::NotAnArray { found: "a struct" });
    assert_eq!(
        err.to_string(),
        "getAllProcessInfo returned a struct, not an array"
    );
}

#[test]
fn bad_entries_are_skipped_and_good_ones_kept() {
    let value = Value::Array(vec![
        s("oops"),
        entry(&[("group", s("g"))]),
        entry(&[("name", Value::Int(3))]),
        entry(&full_entry("web")),
    ]);
    let (procs, problems) = processes(&value).unwrap();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs.first().map(|p| p.name.as_str()), Some("web"));
    assert_eq!(
        problems,
        [
            "process #1: a string instead of a struct, skipped",
            "process #2: field 'name' is missing, skipped",
            "process #3: field 'name' is an int, not a string, skipped",
        ]
    );
}

#[test]
fn missing_and_mistyped_fields_get_defaults() {
    let mut members = full_entry("web");
    members.retain(|(k, _)| !matches!(*k, "group" | "pid" | "statename"));
    for (k, v) in members.iter_mut() {
        if *k == "start" {
            *v = s("10");
        }
        if *k == "description" {
            *v = Value::Int(1);
        }
    }
    let (procs, problems) = processes(&Value::Array(vec![entry(&members)])).unwrap();
    let web = procs.first().unwrap();
    assert_eq!(web.group, "web");
    assert_eq!(web.start, 0);
    assert_eq!(web.pid, 0);
    assert_eq!(web.description, "");
    // The code still gives the state; the name stands in for the missing statename.
    assert_eq!(web.state, ProcessState::Running);
    assert_eq!(web.statename, "RUNNING");
    assert_eq!(
        problems,
        [
            "process 'web': field 'group' is missing",
            "process 'web': field 'statename' is missing",
            "process 'web': field 'description' is not a string",
            "process 'web': field 'start' is not an int",
            "process 'web': field 'pid' is missing",
        ]
    );
}

#[test]
fn unknown_state_is_reported() {
    let mut members = full_entry("web");
    for (k, v) in members.iter_mut() {
        match *k {
            "statename" => *v = s("NEW"),
            "state" => *v = Value::Int(7),
            _ => {}
        }
    }
    let (procs, problems) = processes(&Value::Array(vec![entry(&members)])).unwrap();
    let web = procs.first().unwrap();
    assert_eq!(web.state, ProcessState::Unknown);
    assert_eq!(web.statename, "NEW");
    assert_eq!(problems, ["process 'web': unknown state 'NEW' (code 7)"]);

    // A genuine UNKNOWN from supervisord is not a problem.
    for (k, v) in members.iter_mut() {
        match *k {
            "statename" => *v = s("UNKNOWN"),
            "state" => *v = Value::Int(1000),
            _ => {}
        }
    }
    let (_, problems) = processes(&Value::Array(vec![entry(&members)])).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn problems_are_capped() {
    let entries = (0..30).map(|_| s("x")).collect();
    let (procs, problems) = processes(&Value::Array(entries)).unwrap();
    assert!(procs.is_empty());
    assert_eq!(problems.len(), MAX_PROBLEMS + 1);
    assert_eq!(problems.last().unwrap(), "20 more problems not listed");
}

#[test]
fn state_identification_and_version() {
    let state = entry(&[("statecode", Value::Int(1)), ("statename", s("RUNNING"))]);
    assert_eq!(supervisor_state(&state), Some(SupervisorState::Running));
    let by_code = entry(&[("statecode", Value::Int(-1))]);
    assert_eq!(supervisor_state(&by_code), Some(SupervisorState::Shutdown));
    assert_eq!(supervisor_state(&s("RUNNING")), None);
    assert_eq!(string(&s("supervisor")), Some("supervisor".into()));
    assert_eq!(string(&Value::Int(4)), None);
}

#[test]
fn multicall_fixture_has_every_answer() {
    use crate::supervisor::xmlrpc::{split_multicall, unwrap_multicall};
    let results = split_multicall(fixture("multicall_ok.xml")).unwrap();
    let [Ok(procs), Ok(state), Ok(ident), Ok(version)] = results.as_slice() else {
        panic!("unexpected multicall results {results:?}");
    };
    let procs = &unwrap_multicall(procs.clone(), true);
    let state = &unwrap_multicall(state.clone(), false);
    let ident = &unwrap_multicall(ident.clone(), false);
    let version = &unwrap_multicall(version.clone(), false);
    assert_eq!(processes(procs).unwrap().0.len(), 3);
    assert_eq!(supervisor_state(state), Some(SupervisorState::Running));
    assert_eq!(string(ident).as_deref(), Some("supervisor"));
    assert_eq!(string(version).as_deref(), Some("4.2.5"));
}

/// Recorded from a real supervisord 4.3.0: its multicall results are bare, not wrapped.
#[test]
fn recorded_supervisord_multicall_decodes() {
    use crate::supervisor::xmlrpc::{split_multicall, unwrap_multicall};
    let results = split_multicall(fixture("multicall_recorded_supervisord_4.3.0.xml")).unwrap();
    let [Ok(procs), Ok(state), Ok(ident), Ok(version)] = results.as_slice() else {
        panic!("unexpected multicall results {results:?}");
    };
    let (procs, problems) = processes(&unwrap_multicall(procs.clone(), true)).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let names: Vec<_> = procs.iter().map(|p| (p.name.as_str(), p.state)).collect();
    assert_eq!(
        names,
        [
            ("bad", ProcessState::Fatal),
            ("off", ProcessState::Stopped),
            ("web", ProcessState::Running)
        ]
    );
    let state = unwrap_multicall(state.clone(), false);
    assert_eq!(supervisor_state(&state), Some(SupervisorState::Running));
    assert_eq!(
        string(&unwrap_multicall(ident.clone(), false)).as_deref(),
        Some("supervisor")
    );
    assert_eq!(
        string(&unwrap_multicall(version.clone(), false)).as_deref(),
        Some("4.3.0")
    );
}

#[test]
fn hostile_names_in_problems_are_cut_and_escaped() {
    let name = format!("evil\nERROR forged{}", "n".repeat(100));
    let state = format!("BAD\r{}", "s".repeat(10_000));
    let value = Value::Array(vec![entry(&[
        ("name", s(&name)),
        ("statename", s(&state)),
        ("state", Value::Int(20)),
    ])]);
    let (procs, problems) = processes(&value).unwrap();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].name, name, "the name itself is kept as sent");
    assert!(!problems.is_empty());
    for problem in &problems {
        assert!(
            !problem.contains('\n') && !problem.contains('\r'),
            "{problem}"
        );
        assert!(problem.len() < 300, "{problem}");
    }
    assert!(
        problems[0].starts_with("process 'evil\\nERROR forgednnn"),
        "{problems:?}"
    );
}

#[test]
fn overlong_names_skip_the_entry() {
    let long = "n".repeat(MAX_NAME_BYTES + 1);
    let at_limit = "k".repeat(MAX_NAME_BYTES);
    let mut grouped = full_entry("short");
    grouped.retain(|(k, _)| *k != "group");
    grouped.push(("group", s(&long)));
    let value = Value::Array(vec![
        entry(&full_entry(&long)),
        entry(&grouped),
        entry(&full_entry(&at_limit)),
    ]);
    let (procs, problems) = processes(&value).unwrap();
    let names: Vec<&str> = procs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [at_limit.as_str()]);
    assert_eq!(
        problems,
        [
            format!(
                "process #1: name '{}...' longer than {MAX_NAME_BYTES} bytes, skipped",
                "n".repeat(NAME_LIMIT)
            ),
            format!("process 'short': group name longer than {MAX_NAME_BYTES} bytes, skipped"),
        ]
    );
}

#[test]
fn entries_past_the_process_cap_are_ignored() {
    let one = entry(&[("name", s("p"))]);
    let value = Value::Array(vec![one; MAX_PROCESSES + 5]);
    let (procs, problems) = processes(&value).unwrap();
    assert_eq!(procs.len(), MAX_PROCESSES);
    assert_eq!(
        problems.last().map(String::as_str),
        Some("5 processes past the first 10000 ignored")
    );
}

#[test]
fn a_thousand_processes() {
    let template = std::fs::read_to_string(format!(
        "{}/tests/fixtures/xmlrpc/datadog_ruby.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let entry = template
        .split_once("<value><array><data>\n")
        .and_then(|(_, rest)| rest.split_once("</data></array></value>"))
        .map(|(entry, _)| entry)
        .unwrap();
    let mut body = String::from(
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n",
    );
    for i in 0..1000 {
        body.push_str(&entry.replace(
            "<string>ruby</string>",
            &format!("<string>ruby{i}</string>"),
        ));
    }
    body.push_str("</data></array></value>\n</param>\n</params>\n</methodResponse>\n");
    let value = decode_response(body.as_bytes()).unwrap().unwrap();
    let (procs, problems) = processes(&value).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(procs.len(), 1000);
    assert_eq!(procs.last().map(|p| p.name.as_str()), Some("ruby999"));
    assert_eq!(procs.last().map(|p| p.group.as_str()), Some("ruby999"));
}

#[test]
fn fault_fixtures() {
    for (name, code, message) in [
        ("fault_bad_name.xml", 10, "BAD_NAME"),
        ("fault_unknown_method.xml", 1, "UNKNOWN_METHOD"),
    ] {
        let path = format!(
            "{}/tests/fixtures/xmlrpc/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let fault = decode_response(&std::fs::read(path).unwrap())
            .unwrap()
            .unwrap_err();
        assert_eq!((fault.code, fault.message.as_str()), (code, message));
    }
}
