//! End to end with the native config: a real supervisord (mixed states) → the real binary → a
//! real OTLP server, over each transport and each OTLP protocol.

use crate::testkit::config::{self, debug_exporter, otlp_exporter, target};
use crate::testkit::expect::{self, counts, counts_of, process_state, process_status, PROCESS};
use crate::testkit::otlp_sink::{OtlpSink, Protocol, ReceivedRequest};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::WAIT;

const MIXED: [&str; 8] = [
    "running", "stopped", "exited", "fatal", "backoff", "starting", "worker_a", "worker_b",
];

fn assert_transport(requests: &[ReceivedRequest], protocol: Protocol, gzip: bool) {
    assert!(!requests.is_empty());
    for r in requests {
        assert_eq!(
            r.protocol, protocol,
            "every export uses the configured protocol"
        );
        assert_eq!(r.gzip, gzip, "compression of every export");
    }
}

#[test]
fn tcp_with_auth_to_grpc_reports_every_state_of_the_real_daemon() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .with_auth("e2e-user", "tcp-pass-7f3a"),
    );
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("mixed", &svd.http_url())
            .auth(svd.auth())
            .extra("resource_attributes:\n  deployment.environment: e2e\n  team: infra")],
        &[otlp_exporter(
            "grpc",
            &sink.grpc_endpoint(),
            "gzip",
            &[("x-tenant", "e2e")],
        )],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    let poll = sink.wait_for_processes("mixed", &MIXED, WAIT);
    let observed = expect::mixed_poll(&poll);
    // What the sink saw is what supervisord reports (backoff flips to STARTING between retries).
    for (name, state) in svd.states() {
        let short = name.rsplit(':').next().unwrap_or(&name).to_string();
        if short != "backoff" {
            assert_eq!(observed.get(&short), Some(&state), "{name}");
        }
    }
    let resource = poll.resource_attrs();
    assert_eq!(
        resource.get("supervisor_server").map(String::as_str),
        Some("mixed")
    );
    assert_eq!(
        resource.get("supervisord.version"),
        Some(&svd.tools().version())
    );
    assert_eq!(
        resource
            .get("supervisord.identification")
            .map(String::as_str),
        Some("supervisor")
    );
    assert_eq!(
        resource.get("deployment.environment").map(String::as_str),
        Some("e2e")
    );
    assert_eq!(resource.get("team").map(String::as_str), Some("infra"));
    assert!(
        poll.points
            .iter()
            .all(|p| p.attr("supervisord_server").is_none()),
        "supervisord_server is for Datadog-format configs only"
    );

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    let requests = sink.requests();
    assert_transport(&requests, Protocol::Grpc, true);
    assert!(requests.iter().all(|r| r.header("x-tenant") == Some("e2e")));
}

#[test]
fn unix_socket_without_auth_to_http_protobuf() {
    let svd = Supervisord::start(Options::default().unix_only());
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("sock", &svd.unix_url())],
        &[otlp_exporter(
            "http/protobuf",
            &sink.http_endpoint(),
            "none",
            &[],
        )],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    let poll = sink.wait_for_processes("sock", &MIXED, WAIT);
    expect::mixed_poll(&poll);
    assert_eq!(
        poll.resource_attrs().get("supervisord.version"),
        Some(&svd.tools().version())
    );

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert_transport(&sink.requests(), Protocol::HttpProtobuf, false);
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());
}

#[test]
fn unix_socket_with_auth_to_http_json() {
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .with_auth("sock-user", "sock-pass-91c2"),
    );
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("sock-auth", &svd.unix_url()).auth(svd.auth())],
        &[otlp_exporter(
            "http/json",
            &sink.http_endpoint(),
            "gzip",
            &[],
        )],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    let poll = sink.wait_for_processes("sock-auth", &MIXED, WAIT);
    expect::mixed_poll(&poll);

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert_transport(&sink.requests(), Protocol::HttpJson, true);
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());
    assert!(
        !finished.stdout.contains("sock-pass-91c2") && !finished.stderr.contains("sock-pass-91c2"),
        "the password leaked:\n{}",
        finished.describe()
    );
}

#[test]
fn stopping_and_starting_a_program_shows_in_later_polls() {
    let svd = Supervisord::start(Options::default().tcp_only().programs(vec![
        Program::running("running"),
        Program::running("worker_a").in_group("workers"),
    ]));
    svd.wait_for_states(
        &[("running", "RUNNING"), ("workers:worker_a", "RUNNING")],
        WAIT,
    );
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("flip", &svd.http_url())],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    let before = sink.wait_for_processes("flip", &["running", "worker_a"], WAIT);
    assert_eq!(process_state(&before, "running"), "RUNNING");
    assert_eq!(counts(&before), counts_of(&[("up", 2)]));
    let started_at = before.expect("supervisord.process.start_time", &[(PROCESS, "running")]);

    let out = svd.ctl(&["stop", "running"]);
    assert!(out.contains("running: stopped"), "{out}");
    let after = sink.wait_for_poll(
        "flip",
        |p| {
            p.value(
                "supervisord.process.state",
                &[(PROCESS, "running"), ("state", "STOPPED")],
            ) == Some(1)
        },
        WAIT,
    );
    assert_eq!(process_state(&after, "running"), "STOPPED");
    assert_eq!(process_status(&after, "running"), "down");
    assert_eq!(
        after.expect("supervisord.process.uptime", &[(PROCESS, "running")]),
        0
    );
    // A process that ran keeps its last start time once stopped.
    assert_eq!(
        after.value("supervisord.process.start_time", &[(PROCESS, "running")]),
        Some(started_at)
    );
    assert_eq!(process_state(&after, "worker_a"), "RUNNING");
    assert_eq!(counts(&after), counts_of(&[("up", 1), ("down", 1)]));

    svd.ctl(&["start", "running"]);
    let again = sink.wait_for_poll(
        "flip",
        |p| {
            p.value(
                "supervisord.process.state",
                &[(PROCESS, "running"), ("state", "RUNNING")],
            ) == Some(1)
        },
        WAIT,
    );
    assert_eq!(counts(&again), counts_of(&[("up", 2)]));
    let restarted_at = again.expect("supervisord.process.start_time", &[(PROCESS, "running")]);
    assert!(restarted_at >= started_at);

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}

#[test]
fn filters_and_status_mapping_select_from_the_real_process_list() {
    let svd = Supervisord::start(Options::default().tcp_only());
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let url = svd.http_url();
    let cfg = config::native(
        &[
            target("by-name", &url).extra("include:\n  names: [running, stopped, no_such_process]"),
            target("by-regex", &url).extra("include:\n  regex: ['^worker_']"),
            target("by-group", &url)
                .extra("include:\n  groups: [workers]\nexclude:\n  names: [worker_b]"),
            target("exclude-only", &url)
                .extra("exclude:\n  regex: ['^(backoff|starting)$']\n  groups: [workers]"),
            target("mapped", &url).extra(
                "include:\n  names: [running, stopped, fatal]\n\
                 status_mapping:\n  STOPPED: up\n  FATAL: unknown",
            ),
        ],
        &[
            otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[]),
            debug_exporter("detailed"),
        ],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    let by_name = sink.wait_for_processes("by-name", &["running", "stopped"], WAIT);
    expect::connected(&by_name);
    assert_eq!(counts(&by_name), counts_of(&[("up", 1), ("down", 1)]));

    let by_regex = sink.wait_for_processes("by-regex", &["worker_a", "worker_b"], WAIT);
    assert_eq!(counts(&by_regex), counts_of(&[("up", 2)]));

    let by_group = sink.wait_for_processes("by-group", &["worker_a"], WAIT);
    assert_eq!(counts(&by_group), counts_of(&[("up", 1)]));

    let exclude_only = sink.wait_for_processes(
        "exclude-only",
        &["running", "stopped", "exited", "fatal"],
        WAIT,
    );
    assert_eq!(counts(&exclude_only), counts_of(&[("up", 1), ("down", 3)]));

    let mapped = sink.wait_for_processes("mapped", &["running", "stopped", "fatal"], WAIT);
    assert_eq!(process_status(&mapped, "stopped"), "up");
    assert_eq!(process_status(&mapped, "fatal"), "unknown");
    assert_eq!(process_state(&mapped, "stopped"), "STOPPED");
    assert_eq!(counts(&mapped), counts_of(&[("up", 2), ("unknown", 1)]));
    // The mapping changes the status, never the uptime rule.
    assert_eq!(
        mapped.expect("supervisord.process.uptime", &[(PROCESS, "stopped")]),
        0
    );

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    // The debug exporter prints the points it exports, on stdout; logs stay on stderr.
    assert!(
        !finished.stderr.contains("supervisord.process.state{"),
        "{}",
        finished.describe()
    );
    for needle in [
        "supervisord.process.state",
        "worker_a",
        "by-group",
        "mapped",
    ] {
        assert!(
            finished.stdout.contains(needle),
            "debug output lacks {needle:?}:\n{}",
            finished.describe()
        );
    }
}
