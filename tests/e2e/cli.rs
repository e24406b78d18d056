//! End to end for the command line: `check` (table and JSON) and `validate` against a real
//! supervisord, their exit codes, and `--config` without a subcommand running like `run`.

use std::collections::BTreeMap;

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::{self, mixed_names};
use crate::testkit::otlp_sink::{OtlpSink, Protocol};
use crate::testkit::receiver::{self, Running};
use crate::testkit::supervisord::{free_port, Options, Program, Supervisord};
use crate::testkit::{default_status, WAIT};
use serde_json::Value;

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("check output is not JSON ({e}):\n{stdout}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

fn int_of(v: &Value, key: &str) -> i64 {
    v.get(key)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer {key:?} in {v}"))
}

#[test]
fn check_reports_the_real_daemon_as_json_and_as_a_table() {
    let svd = Supervisord::start(Options::default().with_auth("check-user", "check-pass-2b9e"));
    svd.wait_for_mixed_states();
    let cfg = config::native(
        &[
            target("over-tcp", &svd.http_url()).auth(svd.auth()),
            target("over-socket", &svd.unix_url()).auth(svd.auth()),
        ],
        &[],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let path = path.to_string_lossy();

    let run = receiver::run_once(&["check", "--config", &path, "--output", "json"], &[]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // supervisord's view right after the check; all but `backoff` are settled.
    let real: BTreeMap<String, String> = svd
        .states()
        .into_iter()
        .map(|(k, v)| (k.rsplit(':').next().unwrap_or(&k).to_string(), v))
        .collect();
    let report = json(&run.stdout);
    let targets = report
        .get("targets")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no targets array: {report}"));
    let names: Vec<&str> = targets.iter().map(|t| str_of(t, "name")).collect();
    assert_eq!(names, vec!["over-tcp", "over-socket"]);
    for (t, endpoint) in targets.iter().zip([svd.http_url(), svd.unix_url()]) {
        assert_eq!(str_of(t, "endpoint"), endpoint);
        assert_eq!(t.get("connected"), Some(&Value::Bool(true)), "{t}");
        assert_eq!(t.get("error"), Some(&Value::Null), "{t}");
        assert_eq!(str_of(t, "supervisor_state"), "RUNNING");
        assert_eq!(str_of(t, "version"), svd.tools().version());
        assert_eq!(str_of(t, "identification"), "supervisor");
        let processes = t
            .get("processes")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no processes: {t}"));
        let mut seen = Vec::new();
        for p in processes {
            let name = str_of(p, "name");
            let state = str_of(p, "state");
            seen.push(name.to_string());
            let group = if name.starts_with("worker_") {
                "workers"
            } else {
                name
            };
            assert_eq!(str_of(p, "group"), group, "{p}");
            if name == "backoff" {
                assert!(state == "BACKOFF" || state == "STARTING", "{p}");
            } else {
                assert_eq!(Some(state), real.get(name).map(String::as_str), "{p}");
            }
            assert_eq!(str_of(p, "status"), default_status(state), "{p}");
            let pid = int_of(p, "pid");
            let uptime = int_of(p, "uptime");
            match state {
                "RUNNING" => {
                    assert!(pid > 0, "{p}");
                    assert!(uptime > 0, "{p}");
                }
                "STARTING" => assert!(pid > 0 || name == "backoff", "{p}"),
                _ => assert_eq!(pid, 0, "{p}"),
            }
            match name {
                "stopped" => assert_eq!(p.get("start_time"), Some(&Value::Null), "{p}"),
                _ => assert!(int_of(p, "start_time") > 1_600_000_000, "{p}"),
            }
            let exit_status = int_of(p, "exit_status");
            assert_eq!(exit_status, if name == "exited" { 3 } else { 0 }, "{p}");
        }
        seen.sort();
        assert_eq!(
            seen,
            mixed_names().into_iter().collect::<Vec<_>>(),
            "every process, once"
        );
    }

    let table = receiver::run_once(&["check", "--config", &path], &[]);
    assert_eq!(table.code(), Some(0), "{}", table.describe());
    for needle in [
        "over-tcp",
        "over-socket",
        &svd.http_url(),
        "worker_a",
        "workers",
        "EXITED",
        "FATAL",
        "STOPPED",
        "RUNNING",
    ] {
        assert!(
            table.stdout.contains(needle),
            "table lacks {needle:?}:\n{}",
            table.describe()
        );
    }
    // Each process's row names its state.
    for line in table.stdout.lines() {
        for (name, state) in &real {
            if name != "backoff" && line.split_whitespace().any(|w| w == name.as_str()) {
                assert!(
                    line.contains(state.as_str()),
                    "row for {name} lacks {state}: {line}"
                );
            }
        }
    }
}

#[test]
fn check_exits_one_when_a_target_does_not_answer() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let closed = format!("http://127.0.0.1:{}", free_port());
    let cfg = config::native(
        &[target("up", &svd.http_url()), target("down", &closed)],
        &[],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let path = path.to_string_lossy();

    let run = receiver::run_once(&["check", "--config", &path, "--output", "json"], &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    let report = json(&run.stdout);
    let targets = report
        .get("targets")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no targets: {report}"));
    assert_eq!(targets.len(), 2, "{report}");
    let up = &targets[0];
    let down = &targets[1];
    assert_eq!(str_of(up, "name"), "up");
    assert_eq!(up.get("connected"), Some(&Value::Bool(true)));
    let web = up
        .get("processes")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
        .unwrap_or_else(|| panic!("no process: {up}"));
    assert_eq!(str_of(web, "name"), "web");
    assert_eq!(str_of(web, "state"), "RUNNING");
    assert_eq!(str_of(down, "name"), "down");
    assert_eq!(down.get("connected"), Some(&Value::Bool(false)));
    assert_eq!(
        str_of(down, "error"),
        format!(
            "Cannot connect to {closed}. Make sure supervisor is running and XML-RPC inet \
             interface is enabled."
        )
    );

    let table = receiver::run_once(&["check", "--config", &path], &[]);
    assert_eq!(table.code(), Some(1), "{}", table.describe());
    assert!(
        table
            .stdout
            .contains(&format!("Cannot connect to {closed}."))
            || table
                .stderr
                .contains(&format!("Cannot connect to {closed}.")),
        "{}",
        table.describe()
    );
}

#[test]
fn validate_accepts_good_files_and_rejects_a_bad_one_naming_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let native = config::write(
        dir.path(),
        "good-native.yaml",
        &config::native(
            &[
                target("a", "http://127.0.0.1:9001"),
                target("b", "unix:///run/s.sock"),
            ],
            &[otlp_exporter("grpc", "http://127.0.0.1:4317", "gzip", &[])],
        ),
    );
    let datadog = config::write(
        dir.path(),
        "good-datadog.yaml",
        "init_config: {}\ninstances:\n  - name: dd\n    host: localhost\n    port: 9001\n",
    );
    for good in [&native, &datadog] {
        let run = receiver::run_once(&["validate", "--config", &good.to_string_lossy()], &[]);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
    }

    let bad = config::write(
        dir.path(),
        "broken-receiver.yaml",
        "collection_interval: soon\ntargets:\n  - name: x\n    endpoint: ftp://nowhere:21\n",
    );
    let bad_path = bad.to_string_lossy();
    let run = receiver::run_once(&["validate", "--config", &bad_path], &[]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains("broken-receiver.yaml"),
        "the file is named in the report:\n{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("ftp://nowhere:21") && run.stderr.contains("soon"),
        "every problem is reported, quoting the value:\n{}",
        run.describe()
    );

    // `run` and `check` refuse the same file with the same code.
    for args in [
        vec!["run", "--config", &bad_path],
        vec!["check", "--config", &bad_path],
    ] {
        let refused = receiver::run_once(&args, &[]);
        assert_eq!(refused.code(), Some(2), "{args:?}\n{}", refused.describe());
        assert!(
            refused.stderr.contains("broken-receiver.yaml"),
            "{}",
            refused.describe()
        );
    }
}

#[test]
fn config_flag_alone_runs_and_sigint_stops_cleanly() {
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("plain", &svd.unix_url())],
        &[otlp_exporter(
            "http/protobuf",
            &sink.http_endpoint(),
            "gzip",
            &[],
        )],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::spawn(receiver::command(
        &["--config", &path.to_string_lossy()],
        &[],
    ));

    let poll = sink.wait_for_processes("plain", &["web"], WAIT);
    expect::connected(&poll);
    assert_eq!(expect::process_state(&poll, "web"), "RUNNING");
    receiver.signal("INT");
    let finished = receiver.wait(WAIT);
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(sink
        .requests()
        .iter()
        .all(|r| r.protocol == Protocol::HttpProtobuf && r.gzip));
}

/// A service manager may stop the receiver right after starting it: the signal must already be
/// handled by the time the receiver logs anything, or the default action kills it mid-way.
#[test]
fn sigterm_right_after_start_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let missing = format!("unix://{}/missing.sock", dir.path().display());
    let cfg = config::native(
        &[target("early", &missing)],
        &[crate::testkit::config::debug_exporter("basic")],
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    for attempt in 1..=5 {
        let mut receiver = Running::start(&path, &[]);
        receiver.wait_for_stderr("INFO", WAIT);
        let finished = receiver.stop();
        assert_eq!(
            finished.code(),
            Some(0),
            "attempt {attempt}: {}",
            finished.describe()
        );
    }
}
