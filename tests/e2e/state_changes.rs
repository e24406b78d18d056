//! Polling mode sees more than snapshots: a real supervisord's programs are stopped, started,
//! left to fail into FATAL and left to crash and be restarted between two polls; the state
//! changes arrive as OTLP log records at a real OTLP server and the restarts are counted.

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use supervisord_receiver::schema::MetricId;

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::PROCESS;
use crate::testkit::otlp_sink::{self, all_records, OtlpSink, Record};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::WAIT;

const STATE_CHANGE: &str = "supervisord.process.state_change";

/// A program supervisord restarts as soon as it dies.
pub fn restarting(name: &str) -> Program {
    Program {
        autorestart: true,
        startsecs: 0,
        ..Program::running(name)
    }
}

/// Kills a running program with SIGKILL, as a crash would; returns its pid.
pub fn crash(svd: &Supervisord, name: &str) -> String {
    let pid = svd.ctl(&["pid", name]).trim().to_string();
    assert!(
        pid.parse::<u32>().is_ok_and(|p| p > 0),
        "pid of {name}: {pid}"
    );
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    pid
}

/// Waits until supervisord runs `name` again under another pid than `old`.
pub fn wait_for_new_pid(svd: &Supervisord, name: &str, old: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let pid = svd.ctl(&["pid", name]).trim().to_string();
        let running = svd.states().get(name).map(String::as_str) == Some("RUNNING");
        if running && pid != old && pid.parse::<u32>().is_ok_and(|p| p > 0) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{name} not restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program that can never start: FATAL after one retry. (supervisord reaps children on its
/// one-second tick: a long `startsecs` keeps a loaded machine from counting it as started.)
pub fn failing(name: &str) -> Program {
    Program {
        command: "sh -c 'exit 3'".into(),
        autostart: false,
        startsecs: 10,
        startretries: 1,
        ..Program::running(name)
    }
}

fn records_of<'a>(records: &'a [Record], process: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.event_name == STATE_CHANGE && r.attr(PROCESS) == Some(process))
        .collect()
}

fn has(records: &[Record], process: &str, state: &str) -> bool {
    records_of(records, process)
        .iter()
        .any(|r| r.attr("state") == Some(state))
}

#[test]
fn polls_log_every_change_and_count_restarts_between_polls() {
    let svd = Supervisord::start(Options::default().tcp_only().programs(vec![
        Program::running("web"),
        restarting("crashy"),
        failing("broken"),
    ]));
    svd.wait_for_states(&[("web", "RUNNING"), ("broken", "STOPPED")], WAIT);
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("host-a", &svd.http_url()).extra("resource_attributes:\n  team: infra")],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    // Polls 4 s apart: a crash and restart fits between two of them.
    let cfg = cfg.replace("collection_interval: 1s", "collection_interval: 4s");
    let cfg = format!("{cfg}telemetry:\n  metrics: false\n");
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    // The baseline: a first poll reports no change. Right after it, crashy dies and is
    // restarted, well before the next poll: RUNNING at both, with a new pid.
    sink.wait_for_processes("host-a", &["web", "crashy", "broken"], WAIT);
    let old = crash(&svd, "crashy");
    wait_for_new_pid(&svd, "crashy", &old);
    svd.ctl(&["stop", "web"]);
    svd.ctl(&["start", "broken"]);
    let logs = sink.wait_for_logs(
        |logs| {
            let records = all_records(logs);
            has(&records, "web", "STOPPED")
                && has(&records, "broken", "FATAL")
                && records_of(&records, "crashy")
                    .iter()
                    .any(|r| r.attr("restarted") == Some("true"))
        },
        WAIT,
    );
    let records = all_records(&logs);

    let stopped = records_of(&records, "web")
        .into_iter()
        .find(|r| r.attr("state") == Some("STOPPED"))
        .unwrap();
    assert_eq!(stopped.attr("previous_state"), Some("RUNNING"));
    assert_eq!(stopped.attr("status"), Some("down"));
    assert_eq!(stopped.attr("supervisord_group"), Some("web"));
    assert_eq!(stopped.severity_text, "INFO");
    assert_eq!(stopped.body, "web is STOPPED (was RUNNING)");
    assert_eq!(stopped.scope, "supervisord-receiver");
    assert_eq!(stopped.server(), Some("host-a"));
    assert_eq!(stopped.resource_attr("team"), Some("infra"));
    assert!(stopped.resource_attr("supervisord.version").is_some());
    // supervisord's stop time, put on the receiver's clock between the poll that saw it and
    // the one before (4 s apart), and when the receiver saw it.
    assert!(stopped.observed_time_unix_nano >= stopped.time_unix_nano);
    assert!(
        stopped.observed_time_unix_nano - stopped.time_unix_nano <= 8_000_000_000,
        "{stopped:?}"
    );

    let fatal = records_of(&records, "broken")
        .into_iter()
        .find(|r| r.attr("state") == Some("FATAL"))
        .unwrap();
    assert_eq!(fatal.severity_text, "ERROR");
    assert_eq!(fatal.attr("status"), Some("down"));
    assert!(
        fatal.attr("spawnerr").is_some_and(|e| !e.is_empty()),
        "{fatal:?}"
    );

    let restarted = records_of(&records, "crashy")
        .into_iter()
        .find(|r| r.attr("restarted") == Some("true"))
        .unwrap();
    assert_eq!(restarted.attr("state"), Some("RUNNING"));
    assert_ne!(restarted.attr("pid"), Some(old.as_str()));
    assert!(restarted.attr("pid").is_some());
    assert!(restarted.attr("exit_status").is_some(), "{restarted:?}");
    assert_eq!(restarted.severity_text, "WARN", "{restarted:?}");
    assert!(restarted.body.contains("restarted"), "{}", restarted.body);

    // The restarts: every new pid of crashy, none for a stop; a start after a stop is one.
    let restarts = MetricId::ProcessRestarts.name();
    let crashy = |poll: &otlp_sink::Poll| poll.value(restarts, &[(PROCESS, "crashy")]);
    let poll = sink.wait_for_poll("host-a", |p| crashy(p).is_some_and(|n| n >= 1), WAIT);
    assert_eq!(poll.expect(restarts, &[(PROCESS, "web")]), 0);
    svd.ctl(&["start", "web"]);
    let poll = sink.wait_for_poll(
        "host-a",
        |p| p.value(restarts, &[(PROCESS, "web")]) == Some(1),
        WAIT,
    );
    // Counts only grow (cumulative by default).
    assert!(crashy(&poll).unwrap() >= 1);
    let logs = sink.wait_for_logs(
        |logs| {
            all_records(logs).iter().any(|r| {
                r.attr(PROCESS) == Some("web") && r.attr("previous_state") == Some("STOPPED")
            })
        },
        WAIT,
    );
    let started = all_records(&logs)
        .into_iter()
        .find(|r| r.attr(PROCESS) == Some("web") && r.attr("previous_state") == Some("STOPPED"))
        .unwrap();
    assert!(started.attr("pid").is_some(), "{started:?}");
    drop(receiver);
}

#[test]
fn delta_temporality_from_the_standard_variable() {
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![restarting("crashy")]),
    );
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("host-b", &svd.unix_url())],
        &[otlp_exporter(
            "http/protobuf",
            &sink.http_endpoint(),
            "gzip",
            &[],
        )],
    );
    let cfg = cfg.replace("collection_interval: 1s", "collection_interval: 2s");
    let cfg = format!("{cfg}telemetry:\n  metrics: false\n");
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(
        &path,
        &[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")],
    );
    let restarts = MetricId::ProcessRestarts.name();
    sink.wait_for_processes("host-b", &["crashy"], WAIT);
    // Two crashes, each seen by a later poll, with a reload that changes the target between
    // them: its counts go on in the new task.
    for round in 0..2 {
        let old = crash(&svd, "crashy");
        wait_for_new_pid(&svd, "crashy", &old);
        let seen = sink.requests().len();
        sink.wait_for(|requests| requests.len() > seen + 1, WAIT);
        if round == 0 {
            let changed = cfg.replace("timeout: 1s", "timeout: 2s");
            assert_ne!(changed, cfg);
            config::write(svd.dir(), "receiver.yaml", &changed);
            receiver.signal("HUP");
            let log = receiver.wait_for_stderr("configuration reloaded", WAIT);
            assert!(log.contains(r#"changed=["host-b"]"#), "{log}");
        }
    }
    let requests = sink.requests();
    // Each point starts where the previous one ended and counts only what happened in it: the
    // two restarts, in two points.
    let mut sums = Vec::new();
    for request in &requests {
        for rm in &request.request.resource_metrics {
            for sm in &rm.scope_metrics {
                for metric in sm.metrics.iter().filter(|m| m.name == restarts) {
                    let Some(Data::Sum(sum)) = &metric.data else {
                        panic!("{restarts} is not a sum: {metric:?}");
                    };
                    assert!(sum.is_monotonic);
                    assert_eq!(sum.aggregation_temporality, 1, "delta");
                    sums.extend(sum.data_points.iter().cloned());
                }
            }
        }
    }
    sums.sort_by_key(|p| p.time_unix_nano);
    for pair in sums.windows(2) {
        assert_eq!(
            pair[1].start_time_unix_nano, pair[0].time_unix_nano,
            "{pair:#?}"
        );
    }
    let values: Vec<i64> = sums
        .iter()
        .map(|p| match p.value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v)) => v,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(values.iter().sum::<i64>(), 2, "{values:?}");
    assert_eq!(values.iter().filter(|v| **v == 1).count(), 2, "{values:?}");
    drop(receiver);
}
