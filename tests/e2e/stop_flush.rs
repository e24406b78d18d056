//! End to end: a clean stop loses nothing the backend would take.
//!
//! The real binary polls a real supervisord every second and exports over gRPC, with the default
//! `retry_on_failure` (first wait 5 s, then ×1.5, ±50 %), to a backend that answers UNAVAILABLE
//! to its first three requests. SIGTERM comes 10 s after the start: by then the sender has
//! failed two or three times and waits for a retry planned several seconds ahead, often past
//! the 5 s stop limit. The stop must end that wait and try at once (then again shortly), so that
//! every point of every interval reaches the backend, exactly once, and nothing is reported lost.
//! Before the fix, the sender gave up whenever the planned retry lay past the stop limit, and
//! every point of those ten seconds was lost.
//!
//! A second exporter, `otlp/reference`, sends to a backend that never fails: it records every
//! point the receiver produced, to compare with what the failing backend got in the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::otlp_sink::{self, OtlpSink, Point, ReceivedRequest};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Supervisord};
use crate::testkit::{yaml_str, WAIT};

/// The target's name, the `supervisor_server` of its points.
const TARGET: &str = "web";
/// Export requests the backend answers with UNAVAILABLE before it takes any.
const FAILURES: usize = 3;
/// SIGTERM comes this long after the start.
const RUN_FOR: Duration = Duration::from_secs(10);

/// A point's identity: metric, resource and point attributes, timestamp.
fn key(p: &Point) -> String {
    format!(
        "{} {:?} {:?} @{}",
        p.metric, p.resource_attrs, p.attrs, p.time_unix_nano
    )
}

/// Every point received, by identity, with how often it arrived.
fn tally(requests: &[ReceivedRequest]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in otlp_sink::all_points(requests) {
        *out.entry(key(&p)).or_default() += 1;
    }
    out
}

/// The distinct timestamps of the target's polls, oldest first.
fn poll_times(requests: &[ReceivedRequest]) -> Vec<u64> {
    let times: BTreeSet<u64> = otlp_sink::all_points(requests)
        .iter()
        .filter(|p| p.server() == Some(TARGET))
        .map(|p| p.time_unix_nano)
        .collect();
    times.into_iter().collect()
}

#[test]
fn a_stop_while_retrying_delivers_every_poll_exactly_once() {
    let svd = Supervisord::start(Options::default().tcp_only());
    let backend = OtlpSink::start_failing_first(FAILURES);
    let reference = OtlpSink::start();
    let mut exporters = vec![otlp_exporter("grpc", &backend.grpc_endpoint(), "gzip", &[])];
    exporters.push(format!(
        "  otlp/reference:\n    protocol: http/protobuf\n    endpoint: {}\n    \
         compression: none\n",
        yaml_str(&reference.http_endpoint())
    ));
    // Self-telemetry goes to the first OTLP exporter, the failing one: off, so only the data
    // meets the scripted failures.
    let cfg = format!(
        "{}telemetry:\n  metrics: false\n",
        config::native(&[target(TARGET, &svd.http_url())], &exporters)
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);

    let started = Instant::now();
    let mut receiver = Running::start(&path, &[]);
    receiver.wait_for_stderr("export failed, retrying with backoff", WAIT);
    std::thread::sleep(RUN_FOR.saturating_sub(started.elapsed()));
    let failed_before_stop = backend.failed().len();
    receiver.signal("TERM");
    let finished = receiver.wait(Duration::from_secs(30));
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    eprintln!(
        "{failed_before_stop} failed attempts before SIGTERM; stopped after {:?}",
        started.elapsed()
    );
    for line in finished.stderr.lines().filter(|l| l.contains("export")) {
        eprintln!("  {line}");
    }

    let received = backend.requests();
    assert_eq!(
        backend.failed().len(),
        FAILURES,
        "the backend refused its first requests, then took every one"
    );
    assert!(backend.errors().is_empty(), "{:?}", backend.errors());
    for loss in ["points lost", "points dropped", "dropping the oldest"] {
        assert!(
            !finished.stderr.contains(loss),
            "nothing was lost:\n{}",
            finished.stderr
        );
    }

    // Exactly once: no point (metric, attributes, timestamp) twice.
    let got = tally(&received);
    let doubled: Vec<&String> = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(doubled.is_empty(), "points received twice: {doubled:#?}");

    // Every interval: the polls' timestamps are the whole series, a second apart, no gap.
    let times = poll_times(&received);
    assert!(
        times.len() >= 9,
        "{} polls arrived in {RUN_FOR:?}: {times:?}",
        times.len()
    );
    for pair in times.windows(2) {
        let gap = Duration::from_nanos(pair[1] - pair[0]);
        assert!(
            (Duration::from_millis(500)..=Duration::from_millis(1500)).contains(&gap),
            "polls {gap:?} apart, an interval is missing or doubled: {times:?}"
        );
    }

    // Every point produced (the reference got them all) reached the failing backend.
    let produced = tally(&reference.requests());
    assert_eq!(poll_times(&reference.requests()), times);
    let missing: Vec<&String> = produced.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} points never reached the backend, such as {:#?}\n--- stderr\n{}",
        missing.len(),
        produced.len(),
        &missing[..missing.len().min(3)],
        finished.stderr
    );
    assert_eq!(
        got.len(),
        produced.len(),
        "the backend got points nobody produced"
    );
}
