//! End to end reload: SIGHUP makes the real binary re-read its file while it polls a real
//! supervisord and exports to a real OTLP server. Added targets start, changed ones restart
//! with their new settings, removed ones stop, an unchanged one keeps its schedule, and a
//! broken file is refused with the running configuration kept.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::testkit::config::{self, otlp_exporter, target, TargetYaml};
use crate::testkit::otlp_sink::{self, OtlpSink, ReceivedRequest};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::WAIT;

/// New targets wait this long after a reload; a restarted target would show a gap at least as
/// long in its poll times, where a kept one polls every second.
const RELOAD_DELAY_S: u64 = 4;

fn config_text(targets: &[TargetYaml], compression: &str, sink: &OtlpSink) -> String {
    config::native(
        targets,
        &[otlp_exporter(
            "grpc",
            &sink.grpc_endpoint(),
            compression,
            &[],
        )],
    )
    .replacen(
        "initial_delay: 0s",
        &format!("initial_delay: {RELOAD_DELAY_S}s"),
        1,
    )
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The times of `server`'s polls, oldest first.
fn poll_times(requests: &[ReceivedRequest], server: &str) -> Vec<u64> {
    otlp_sink::polls(requests, server)
        .iter()
        .filter_map(|p| p.points.first().map(|point| point.time_unix_nano))
        .collect()
}

fn polls_after(requests: &[ReceivedRequest], server: &str, t: u64) -> usize {
    poll_times(requests, server)
        .into_iter()
        .filter(|time| *time > t)
        .count()
}

/// Targets named in the receiver's own `supervisord_receiver.polls` points newer than `t`.
fn self_telemetry_targets_after(requests: &[ReceivedRequest], t: u64) -> Vec<String> {
    let mut names: Vec<String> = otlp_sink::points(requests, "supervisord_receiver.polls")
        .into_iter()
        .filter(|p| p.time_unix_nano > t)
        .filter_map(|p| p.attr("supervisor_server").map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn sighup_adds_changes_and_removes_targets_and_refuses_a_broken_file() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .programs(vec![Program::running("alpha"), Program::running("beta")]),
    );
    let sink = OtlpSink::start();
    let url = svd.http_url();
    let a = || target("a", &url);
    let path = config::write(
        svd.dir(),
        "receiver.yaml",
        &config::native(
            &[a()],
            &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
        ),
    );
    let mut receiver = Running::start(&path, &[]);
    sink.wait_for(|r| poll_times(r, "a").len() >= 2, WAIT);

    // Added: b starts and reports what its filter lets through.
    config::write(
        svd.dir(),
        "receiver.yaml",
        &config_text(
            &[a(), target("b", &url).extra("include:\n  names: [beta]")],
            "none",
            &sink,
        ),
    );
    receiver.signal("HUP");
    receiver.wait_for_reloads(1);
    sink.wait_for_processes("b", &["beta"], WAIT);

    // Changed: b restarts with its new filter; a new exporter setting is not applied.
    config::write(
        svd.dir(),
        "receiver.yaml",
        &config_text(
            &[a(), target("b", &url).extra("include:\n  names: [alpha]")],
            "gzip",
            &sink,
        ),
    );
    receiver.signal("HUP");
    receiver.wait_for_reloads(2);
    sink.wait_for_processes("b", &["alpha"], WAIT);
    receiver.wait_for_stderr(
        "exporters changed: only targets are reloaded, the rest applies at the next restart",
        WAIT,
    );

    // Removed: b stops; its points and its self-telemetry end.
    config::write(
        svd.dir(),
        "receiver.yaml",
        &config_text(&[a()], "none", &sink),
    );
    receiver.signal("HUP");
    receiver.wait_for_reloads(3);
    let removed_at = now_unix_nano();
    let requests = sink.wait_for(
        |r| {
            polls_after(r, "a", removed_at) >= 3
                && !self_telemetry_targets_after(r, removed_at).is_empty()
        },
        WAIT,
    );
    assert_eq!(
        polls_after(&requests, "b", removed_at),
        0,
        "b polled after its removal"
    );
    assert_eq!(self_telemetry_targets_after(&requests, removed_at), ["a"]);

    // Broken: refused with file and line; a keeps being exported.
    config::write(
        svd.dir(),
        "receiver.yaml",
        "collection_interval: 1s\ntargets:\n  - name: a\n    endpoint: ftp://nowhere\n",
    );
    receiver.signal("HUP");
    let log = receiver.wait_for_stderr("configuration not reloaded", WAIT);
    let file_line = format!("{}:4:", path.display());
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&file_line) && l.contains("endpoint")),
        "the problem is logged at ERROR with its file and line:\n{log}"
    );
    let refused_at = now_unix_nano();
    let requests = sink.wait_for(|r| polls_after(r, "a", refused_at) >= 2, WAIT);

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());

    // a was never restarted: its polls kept their one-second pace through every reload, while
    // a restart waits RELOAD_DELAY_S before its first poll.
    let times = poll_times(&requests, "a");
    let longest_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        longest_gap < (RELOAD_DELAY_S - 1) * 1_000_000_000,
        "a gap of {longest_gap} ns in a's polls: {times:?}"
    );
    assert!(
        requests.iter().all(|r| !r.gzip),
        "the exporter is not rebuilt on reload"
    );
    assert_eq!(finished.stderr.matches("configuration reloaded").count(), 3);
}
