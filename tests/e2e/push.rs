//! Push mode for real: supervisord runs the receiver as an event listener from an
//! `[eventlistener:otel]` section; programs are stopped, started and killed; the records and
//! counts arrive at a real OTLP server, also after the backend was down for a while, and
//! supervisord keeps managing its programs meanwhile.

use std::path::Path;
use std::time::{Duration, Instant};

use supervisord_receiver::schema::MetricId;

mod relay;

use super::state_changes::{crash, restarting, wait_for_new_pid};
use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::PROCESS;
use crate::testkit::otlp_sink::{all_records, polls, OtlpSink, Poll, Record};
use crate::testkit::receiver::BIN;
use crate::testkit::supervisord::{Auth, Options, Program, Supervisord};
use crate::testkit::WAIT;

/// The listener's section: run by supervisord, logs to a file the test reads.
fn listener_section(config: &Path, log: &Path) -> String {
    format!(
        "[eventlistener:otel]\n\
         command={BIN} listen --config {}\n\
         events=PROCESS_STATE,SUPERVISOR_STATE_CHANGE,TICK_5\n\
         buffer_size=100\n\
         autorestart=true\n\
         startsecs=0\n\
         stderr_logfile={}\n\
         environment=RUST_LOG=\"info\"",
        config.display(),
        log.display()
    )
}

/// A receiver config for the supervisord that runs it: its URL from the environment.
fn listener_config(dir: &Path, auth: Option<&Auth>, sink: &OtlpSink) -> std::path::PathBuf {
    let cfg = config::native(
        &[target("host-p", "${env:SUPERVISOR_SERVER_URL}").auth(auth)],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    // Polls every 5 s: the records must come from the events, not from polls.
    let cfg = cfg.replace("collection_interval: 1s", "collection_interval: 5s");
    config::write(
        dir,
        "listener.yaml",
        &format!("{cfg}telemetry:\n  metrics: false\n"),
    )
}

fn changes<'a>(records: &'a [Record], process: &str) -> Vec<(&'a str, &'a str)> {
    records
        .iter()
        .filter(|r| r.attr(PROCESS) == Some(process))
        .map(|r| {
            (
                r.attr("previous_state").unwrap_or("?"),
                r.attr("state").unwrap_or("?"),
            )
        })
        .collect()
}

fn wait_for_listener(svd: &Supervisord) {
    svd.wait_for_states(&[("otel", "RUNNING")], WAIT);
}

#[test]
fn the_listener_reports_every_transition_as_it_happens() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OtlpSink::start();
    let config = listener_config(dir.path(), None, &sink);
    let log = dir.path().join("listener.log");
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("web"), restarting("crashy")])
            .section(&listener_section(&config, &log)),
    );
    wait_for_listener(&svd);
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    // The first poll is the baseline of the counts.
    // The listener is one of supervisord's processes too.
    sink.wait_for_processes("host-p", &["web", "crashy", "otel"], WAIT);

    svd.ctl(&["stop", "web"]);
    svd.ctl(&["start", "web"]);
    // Boot gave web STOPPED → STARTING → RUNNING already; these are the steps after it.
    let steps = [
        ("RUNNING", "STOPPING"),
        ("STOPPING", "STOPPED"),
        ("STOPPED", "STARTING"),
        ("STARTING", "RUNNING"),
    ];
    let in_order = |web: &[(&str, &str)]| {
        let mut from = web.iter().position(|w| *w == steps[0]);
        for step in &steps[1..] {
            from = from.and_then(|at| {
                web[at + 1..]
                    .iter()
                    .position(|w| w == step)
                    .map(|p| at + 1 + p)
            });
        }
        from.is_some()
    };
    // Every step, in order, straight from the events (polls come only every 5 s).
    let logs = sink.wait_for_logs(|logs| in_order(&changes(&all_records(logs), "web")), WAIT);
    let records = all_records(&logs);
    let running = records
        .iter()
        .find(|r| r.attr(PROCESS) == Some("web") && r.attr("state") == Some("RUNNING"))
        .unwrap();
    assert_eq!(running.server(), Some("host-p"));
    assert!(running.attr("pid").is_some());
    assert!(running.resource_attr("supervisord.version").is_some());

    // A crash: an unexpected exit, then a start, both counted from the events.
    let old = crash(&svd, "crashy");
    wait_for_new_pid(&svd, "crashy", &old);
    let exits = MetricId::ProcessExits.name();
    let restarts = MetricId::ProcessRestarts.name();
    let poll = sink.wait_for_poll(
        "host-p",
        |p| {
            let seen = (
                p.value(exits, &[(PROCESS, "crashy"), ("expected", "false")]),
                p.value(restarts, &[(PROCESS, "crashy")]),
                p.value(restarts, &[(PROCESS, "web")]),
            );
            // Shown when the wait fails.
            eprintln!("crashy unexpected exits and restarts, web restarts: {seen:?}");
            seen == (Some(1), Some(1), Some(1))
        },
        WAIT,
    );
    assert_eq!(
        poll.expect(exits, &[(PROCESS, "web"), ("expected", "false")]),
        0,
        "a stop is not an exit"
    );
    let crash = all_records(&sink.logs())
        .into_iter()
        .find(|r| r.attr(PROCESS) == Some("crashy") && r.attr("state") == Some("EXITED"))
        .unwrap();
    assert_eq!(crash.attr("expected"), Some("false"));
    assert_eq!(crash.severity_text, "ERROR");

    // Nothing but the protocol went to supervisord: it would have logged a protocol error.
    let listener_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        listener_log.contains("listening to supervisord's events"),
        "{listener_log}"
    );
    assert!(
        !svd.logs().contains("violated the eventlistener protocol"),
        "{}",
        svd.logs()
    );
}

#[test]
fn with_the_backend_down_nothing_is_lost_and_supervisord_is_never_held_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = OtlpSink::start();
    let auth = Auth::new("listener", "push-secret-91c");
    let config = listener_config(dir.path(), Some(&auth), &sink);
    let log = dir.path().join("listener.log");
    let programs = (0..4)
        .map(|i| Program::running(&format!("app{i}")))
        .collect();
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .with_auth(&auth.username, &auth.password)
            .programs(programs)
            .section(&listener_section(&config, &log)),
    );
    wait_for_listener(&svd);
    sink.wait_for_processes("host-p", &["app0", "app1", "app2", "app3", "otel"], WAIT);

    sink.stop();
    // supervisord goes on managing while every export fails: each command returns at once.
    let started = Instant::now();
    for round in 0..3 {
        for i in 0..4 {
            svd.ctl(&["stop", &format!("app{i}")]);
        }
        for i in 0..4 {
            svd.ctl(&["start", &format!("app{i}")]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "supervisord slowed down in round {round}"
        );
    }
    svd.wait_for_states(
        &[
            ("app0", "RUNNING"),
            ("app1", "RUNNING"),
            ("app2", "RUNNING"),
            ("app3", "RUNNING"),
        ],
        WAIT,
    );
    sink.restart();
    // Every transition made while the backend was down arrives once it is back: 3 rounds of
    // 4 steps (stopping, stopped, starting, running) per program.
    let logs = sink.wait_for_logs(
        |logs| {
            let records = all_records(logs);
            (0..4).all(|i| changes(&records, &format!("app{i}")).len() >= 12)
        },
        WAIT + Duration::from_secs(40),
    );
    let records = all_records(&logs);
    for i in 0..4 {
        let app = changes(&records, &format!("app{i}"));
        assert_eq!(
            app.iter()
                .filter(|c| **c == ("STOPPING", "STOPPED"))
                .count(),
            3,
            "app{i}: {app:?}"
        );
    }
    let listener_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!listener_log.contains("push-secret-91c"));
    assert!(
        !listener_log.contains("listener_event_dropped"),
        "{listener_log}"
    );
}

#[test]
fn a_listener_without_credentials_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OtlpSink::start();
    let config = listener_config(dir.path(), None, &sink);
    let log = dir.path().join("listener.log");
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .with_auth("admin", "never-shown-5d2")
            .programs(vec![Program::running("web")])
            .section(&listener_section(&config, &log)),
    );
    wait_for_listener(&svd);
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("does not pass its credentials") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("asks for a username and password"), "{text}");
    assert!(text.contains("listener.yaml"), "names the file: {text}");
    // Events are still answered: supervisord keeps managing.
    svd.ctl(&["stop", "web"]);
    svd.wait_for_states(&[("web", "STOPPED")], WAIT);
    let logs = sink.wait_for_logs(
        |logs| changes(&all_records(logs), "web").contains(&("STOPPING", "STOPPED")),
        WAIT,
    );
    assert!(!logs.is_empty());
}

/// How long a change may take to show in the exported metrics: supervisord notices a dead
/// child on its one-second loop, the fetch follows 100 ms after the events, and the next
/// one-second interval exports it. Generous for a loaded machine; without the held snapshot
/// and its fetches the change would wait for the hour-long reconcile.
const FRESH: Duration = Duration::from_secs(10);

/// Waits for a poll of `host-r` where `process` is in `state` with `exit_status`, and says how
/// long it took.
fn wait_for_state(sink: &OtlpSink, process: &str, state: &str, exit_status: i64) -> Poll {
    let started = Instant::now();
    let state_metric = MetricId::ProcessState.name();
    let exit_metric = MetricId::ProcessExitStatus.name();
    let poll = sink.wait_for_poll(
        "host-r",
        |p| {
            p.value(state_metric, &[(PROCESS, process), ("state", state)]) == Some(1)
                && p.value(exit_metric, &[(PROCESS, process)]) == Some(exit_status)
        },
        FRESH,
    );
    eprintln!(
        "{process} {state} (exit status {exit_status}) exported after {:?}",
        started.elapsed()
    );
    poll
}

#[test]
fn between_reconciles_the_metrics_come_from_events_without_a_full_poll() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OtlpSink::start();
    let config = dir.path().join("listener.yaml");
    let log = dir.path().join("listener.log");
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![
                Program::running("web"),
                Program::running("victim"),
                Program::running("steady"),
            ])
            // Started once the relay is up, so every call goes through it.
            .section(&format!(
                "{}\nautostart=false",
                listener_section(&config, &log)
            )),
    );
    svd.wait_for_states(
        &[
            ("web", "RUNNING"),
            ("victim", "RUNNING"),
            ("steady", "RUNNING"),
        ],
        WAIT,
    );
    let relay = relay::Relay::start(svd.socket_path());
    let cfg = config::native(
        &[target("host-r", &relay.url())],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    config::write(
        dir.path(),
        "listener.yaml",
        &format!("reconcile_interval: 1h\n{cfg}telemetry:\n  metrics: false\n"),
    );
    svd.ctl(&["start", "otel"]);
    wait_for_listener(&svd);
    sink.wait_for_processes("host-r", &["web", "victim", "steady", "otel"], WAIT);
    // The boot: the first full poll, and one more if supervisord's queued RUNNING event comes
    // after it. Then nothing but events, fetches and held snapshots for the hour.
    std::thread::sleep(Duration::from_secs(2));
    let get_all = "supervisor.getAllProcessInfo";
    let full_polls = relay.calls(get_all);
    assert!(
        (1..=2).contains(&full_polls),
        "{full_polls} full polls at boot"
    );
    let first = polls(&sink.requests(), "host-r").len();
    let watching = Instant::now();

    // Uptime keeps counting between reconciles, on every one-second interval.
    let uptime = MetricId::ProcessUptime.name();
    let before = sink.wait_for_poll(
        "host-r",
        |p| p.value(uptime, &[(PROCESS, "steady")]).is_some(),
        WAIT,
    );
    let earlier = before.expect(uptime, &[(PROCESS, "steady")]);
    let after = sink.wait_for_poll(
        "host-r",
        |p| {
            p.value(uptime, &[(PROCESS, "steady")])
                .is_some_and(|u| u >= earlier + 2)
        },
        FRESH,
    );
    assert_eq!(after.expect(MetricId::CanConnect.name(), &[]), 1);

    // A stop, a start and a kill, each exported with its state and exit status: the events
    // set the state, the fetch that follows brings the exit status they lack.
    svd.ctl(&["stop", "web"]);
    wait_for_state(&sink, "web", "STOPPED", -1);
    svd.ctl(&["start", "web"]);
    let started = wait_for_state(&sink, "web", "RUNNING", 0);
    assert_eq!(
        started.expect(MetricId::ProcessRestarts.name(), &[(PROCESS, "web")]),
        1,
        "one start after a stop, counted once"
    );
    crash(&svd, "victim");
    wait_for_state(&sink, "victim", "EXITED", -1);

    // Metrics came every second meanwhile, and supervisord never listed every process again.
    let seconds = watching.elapsed().as_secs() as usize;
    let exported = polls(&sink.requests(), "host-r").len() - first;
    assert!(
        exported + 2 >= seconds,
        "{exported} exports in {seconds} s of one-second intervals"
    );
    assert_eq!(
        relay.calls(get_all),
        full_polls,
        "getAllProcessInfo asked between reconciles"
    );
    assert!(
        relay.calls("supervisor.getProcessInfo") >= 3,
        "the fetches went through the relay"
    );
}
