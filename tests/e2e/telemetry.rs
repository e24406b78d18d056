//! End to end self-telemetry: the real binary polls a real supervisord (and two targets that
//! fail in different ways), and the OpenTelemetry SDK inside it sends the receiver's own
//! metrics, under their own resource and scope and in requests of their own, to a real OTLP
//! server, which decodes them: counters, up-down counters and the poll duration histogram.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::testkit::config::{self, debug_exporter, otlp_exporter, target};
use crate::testkit::otlp_sink::{
    any_value_string, histogram_points, HistogramPoint, OtlpSink, Protocol, ReceivedRequest,
};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{free_port, Auth, Options, Program, Supervisord};
use crate::testkit::WAIT;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality};

const SCOPE: &str = "supervisord-receiver/self";
const POLLS: &str = "supervisord_receiver.polls";
const ERRORS: &str = "supervisord_receiver.poll.errors";
const DURATION: &str = "supervisord_receiver.poll.duration";
const LATE: &str = "supervisord_receiver.polls.late";
const QUEUE_BATCHES: &str = "supervisord_receiver.export.queue.batches";
const CAPACITY_BATCHES: &str = "supervisord_receiver.export.queue.capacity.batches";
const CAPACITY_BYTES: &str = "supervisord_receiver.export.queue.capacity.bytes";
const SENT: &str = "supervisord_receiver.export.points.sent";
/// The poll duration buckets of the definitions (src/schema/definitions.rs).
const BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// A header the environment offers the SDK's exporter: it must never reach the backend,
/// since the file configures the exporters.
const LEAKED_HEADERS: (&str, &str) = ("OTEL_EXPORTER_OTLP_HEADERS", "x-leaked=from-the-env");

/// One self-telemetry number point with everything the checks need, doubles kept as doubles.
#[derive(Debug, Clone)]
struct SelfPoint {
    metric: String,
    resource: BTreeMap<String, String>,
    attrs: BTreeMap<String, String>,
    value: f64,
    time: u64,
    start: u64,
    /// `Some(monotonic)` for sums, which must be cumulative.
    sum: Option<bool>,
}

fn is_own(requests: &ReceivedRequest) -> bool {
    requests
        .request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .any(|sm| sm.scope.as_ref().map(|s| s.name.as_str()) == Some(SCOPE))
}

fn self_points(requests: &[ReceivedRequest]) -> Vec<SelfPoint> {
    let attrs = |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        kvs.iter()
            .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
            .collect::<BTreeMap<_, _>>()
    };
    let mut out = Vec::new();
    for request in requests {
        for rm in &request.request.resource_metrics {
            let resource = rm
                .resource
                .as_ref()
                .map(|r| attrs(&r.attributes))
                .unwrap_or_default();
            for sm in &rm.scope_metrics {
                if sm.scope.as_ref().map(|s| s.name.as_str()) != Some(SCOPE) {
                    continue;
                }
                for m in &sm.metrics {
                    let (points, sum) = match &m.data {
                        Some(metric::Data::Sum(s)) => {
                            assert_eq!(
                                s.aggregation_temporality,
                                AggregationTemporality::Cumulative as i32,
                                "{} is cumulative",
                                m.name
                            );
                            (&s.data_points, Some(s.is_monotonic))
                        }
                        Some(metric::Data::Histogram(_)) => continue,
                        other => panic!("{}: unexpected data {other:?}", m.name),
                    };
                    for p in points {
                        let value = match p.value {
                            Some(number_data_point::Value::AsInt(i)) => i as f64,
                            Some(number_data_point::Value::AsDouble(d)) => d,
                            None => panic!("{}: a point without a value", m.name),
                        };
                        out.push(SelfPoint {
                            metric: m.name.clone(),
                            resource: resource.clone(),
                            attrs: attrs(&p.attributes),
                            value,
                            time: p.time_unix_nano,
                            start: p.start_time_unix_nano,
                            sum,
                        });
                    }
                }
            }
        }
    }
    out
}

/// The newest value of `metric` with these point attributes.
fn latest(points: &[SelfPoint], metric: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    points
        .iter()
        .filter(|p| p.metric == metric)
        .filter(|p| {
            attrs
                .iter()
                .all(|(k, v)| p.attrs.get(*k).map(String::as_str) == Some(*v))
        })
        .max_by_key(|p| p.time)
        .map(|p| p.value)
}

fn latest_in(requests: &[ReceivedRequest], metric: &str, attrs: &[(&str, &str)]) -> f64 {
    latest(&self_points(requests), metric, attrs).unwrap_or(0.0)
}

/// The poll duration histograms of one target, oldest first.
fn durations(requests: &[ReceivedRequest], server: &str) -> Vec<HistogramPoint> {
    let mut points: Vec<HistogramPoint> = histogram_points(requests)
        .into_iter()
        .filter(|h| h.metric == DURATION && h.attr("supervisor_server") == Some(server))
        .collect();
    points.sort_by_key(|h| h.time_unix_nano);
    points
}

/// What every self-telemetry request must be, whatever the protocol: requests of their own,
/// under the receiver's resource and scope, with the exporter's headers and none from the
/// environment, cumulative sums and histograms in the buckets of the definitions.
fn check_own_requests(requests: &[ReceivedRequest], protocol: Protocol, gzip: bool) {
    let own: Vec<&ReceivedRequest> = requests.iter().filter(|r| is_own(r)).collect();
    assert!(!own.is_empty(), "no self-telemetry request");
    for request in &own {
        assert_eq!(request.protocol, protocol);
        assert_eq!(request.gzip, gzip);
        assert_eq!(
            request.header("x-tenant"),
            Some("t-42"),
            "{:?}",
            request.headers
        );
        assert_eq!(request.header("x-leaked"), None, "{:?}", request.headers);
        // Requests of their own: no target's data rides along.
        for rm in &request.request.resource_metrics {
            for sm in &rm.scope_metrics {
                assert_eq!(sm.scope.as_ref().map(|s| s.name.as_str()), Some(SCOPE));
                assert_eq!(
                    sm.scope.as_ref().map(|s| s.version.as_str()),
                    Some(env!("CARGO_PKG_VERSION"))
                );
                assert!(sm
                    .metrics
                    .iter()
                    .all(|m| m.name.starts_with("supervisord_receiver.")));
            }
        }
    }
    // And the data requests carry no self metric.
    for request in requests.iter().filter(|r| !is_own(r)) {
        for rm in &request.request.resource_metrics {
            for sm in &rm.scope_metrics {
                assert!(sm
                    .metrics
                    .iter()
                    .all(|m| !m.name.starts_with("supervisord_receiver.")));
            }
        }
    }

    let points = self_points(requests);
    for p in &points {
        let keys: Vec<&str> = p.resource.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["service.instance.id", "service.name", "service.version"],
            "{p:?}"
        );
        assert_eq!(
            p.resource.get("service.name").map(String::as_str),
            Some("supervisord-receiver")
        );
        assert!(!p.resource["service.instance.id"].is_empty());
        assert_eq!(p.resource["service.version"], env!("CARGO_PKG_VERSION"));
        assert!(p.start > 0 && p.start <= p.time, "{p:?}");
        // Counters are monotonic sums, the queue's levels non-monotonic ones.
        let level = p.metric.contains(".export.queue.");
        assert_eq!(p.sum, Some(!level), "{p:?}");
    }

    // Counters only grow, per series, and keep their start.
    // (time, value, start) per (metric, attributes).
    type Series = Vec<(u64, f64, u64)>;
    let mut series: BTreeMap<(String, String), Series> = BTreeMap::new();
    for p in points.iter().filter(|p| p.sum == Some(true)) {
        series
            .entry((p.metric.clone(), format!("{:?}", p.attrs)))
            .or_default()
            .push((p.time, p.value, p.start));
    }
    for (key, mut values) in series {
        values.sort_by_key(|(t, _, _)| *t);
        assert!(
            values
                .windows(2)
                .all(|w| w[0].1 <= w[1].1 && w[0].2 == w[1].2),
            "{key:?} went down or restarted: {values:?}"
        );
    }

    for h in histogram_points(requests)
        .iter()
        .filter(|h| h.scope == SCOPE)
    {
        assert_eq!(h.metric, DURATION);
        assert_eq!(h.unit, "s");
        assert!(h.cumulative, "{h:?}");
        assert_eq!(h.explicit_bounds, BOUNDS, "{h:?}");
        assert_eq!(h.bucket_counts.len(), BOUNDS.len() + 1, "{h:?}");
        assert_eq!(h.bucket_counts.iter().sum::<u64>(), h.count, "{h:?}");
        assert!(h.count > 0, "no histogram series before a poll: {h:?}");
        let sum = h.sum.unwrap_or(-1.0);
        // A poll is bounded by the 1 s timeout of the config; a real one takes some time.
        assert!(sum > 0.0 && sum / (h.count as f64) < 5.0, "{h:?}");
        assert!(h.start_time_unix_nano > 0 && h.start_time_unix_nano <= h.time_unix_nano);
    }
}

#[test]
fn own_metrics_arrive_over_grpc_with_their_histogram_and_growing_counts() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .with_auth("tele-user", "tele-pass-41b7")
            .programs(vec![Program::running("app")]),
    );
    let sink = OtlpSink::start();
    let refused = format!("http://127.0.0.1:{}", free_port());
    let wrong = Auth::new("tele-user", "not-the-password");
    let exporter = format!(
        "{}    sending_queue:\n      queue_size_batches: 123\n      queue_size_bytes: 8MiB\n",
        otlp_exporter(
            "grpc",
            &sink.grpc_endpoint(),
            "gzip",
            &[("x-tenant", "t-42")]
        )
    );
    let cfg = format!(
        "{}telemetry:\n  metrics: true\n  interval: 1s\n",
        config::native(
            &[
                target("good", &svd.http_url()).auth(svd.auth()),
                target("refused", &refused),
                target("badauth", &svd.http_url()).auth(Some(&wrong)),
            ],
            &[exporter],
        )
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[LEAKED_HEADERS]);
    let log = receiver.wait_for_stderr("sending the receiver's own metrics", WAIT);
    assert!(
        log.contains("interval=1s") && log.contains("telemetry.interval"),
        "{log}"
    );

    // Two exports that each saw every target fail or succeed at least once.
    let first = sink.wait_for(
        |r| {
            latest_in(r, POLLS, &[("supervisor_server", "good")]) >= 2.0
                && latest_in(r, ERRORS, &[("supervisor_server", "refused")]) >= 1.0
                && latest_in(r, ERRORS, &[("supervisor_server", "badauth")]) >= 1.0
        },
        WAIT,
    );
    let before = self_points(&first);
    let polls_before = latest(&before, POLLS, &[("supervisor_server", "good")]).unwrap_or(0.0);
    let refused_before = latest(
        &before,
        ERRORS,
        &[("supervisor_server", "refused"), ("error_type", "connect")],
    )
    .unwrap_or_else(|| panic!("refused counts error_type=connect: {before:#?}"));
    let requests = sink.wait_for(
        |r| {
            latest_in(r, POLLS, &[("supervisor_server", "good")]) > polls_before
                && latest_in(
                    r,
                    ERRORS,
                    &[("supervisor_server", "refused"), ("error_type", "connect")],
                ) > refused_before
                && latest_in(r, SENT, &[]) > 0.0
                && durations(r, "good").len() >= 2
        },
        WAIT,
    );
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());

    check_own_requests(&requests, Protocol::Grpc, true);
    let points = self_points(&requests);
    let badauth = latest(
        &points,
        ERRORS,
        &[
            ("supervisor_server", "badauth"),
            ("error_type", "unauthorized"),
        ],
    );
    assert!(badauth.is_some_and(|n| n >= 1.0), "{badauth:?}");
    assert_eq!(
        latest(&points, ERRORS, &[("supervisor_server", "good")]),
        None,
        "a target that never failed has no error series"
    );
    // Each signal (metrics, logs) has a queue of its own with the configured limits.
    assert_eq!(latest(&points, CAPACITY_BATCHES, &[]), Some(2.0 * 123.0));
    assert_eq!(latest(&points, CAPACITY_BYTES, &[]), Some(2.0 * 8388608.0));
    assert!(latest(&points, QUEUE_BATCHES, &[]).is_some());
    assert!(latest(&points, LATE, &[]).is_some(), "polls.late is there");

    // Every target has a duration histogram that grows with its polls: one observation per
    // poll, counted with the same collection as `polls` (the histogram is fed first).
    for server in ["good", "refused", "badauth"] {
        let series = durations(&requests, server);
        assert!(!series.is_empty(), "{server}: no poll duration");
        assert!(
            series.windows(2).all(|w| w[0].count <= w[1].count
                && w[0].start_time_unix_nano == w[1].start_time_unix_nano),
            "{server}: {series:#?}"
        );
        // Each export: the histogram and the counter of one collection.
        for request in requests.iter().filter(|r| is_own(r)) {
            let one = std::slice::from_ref(request);
            let Some(h) = durations(one, server).pop() else {
                continue;
            };
            let polls = latest(&self_points(one), POLLS, &[("supervisor_server", server)])
                .unwrap_or_else(|| panic!("{server}: no polls point beside {h:?}"))
                as u64;
            assert!(
                h.count == polls || h.count == polls + 1,
                "{server}: {} durations for {polls} polls",
                h.count
            );
        }
    }
    let good = durations(&requests, "good");
    assert!(good.last().is_some_and(|h| h.count >= 2), "{good:#?}");
}

#[test]
fn own_metrics_arrive_over_http_json_at_the_interval_of_the_environment() {
    let svd = Supervisord::start(Options::default().tcp_only());
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[target("web", &svd.http_url())],
        &[otlp_exporter(
            "http/json",
            &sink.http_endpoint(),
            "none",
            &[("x-tenant", "t-42")],
        )],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(
        &path,
        &[LEAKED_HEADERS, ("OTEL_METRIC_EXPORT_INTERVAL", "700")],
    );
    let log = receiver.wait_for_stderr("sending the receiver's own metrics", WAIT);
    assert!(
        log.contains("interval=700ms") && log.contains("OTEL_METRIC_EXPORT_INTERVAL"),
        "{log}"
    );
    let requests = sink.wait_for(|r| durations(r, "web").len() >= 3, WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());

    check_own_requests(&requests, Protocol::HttpJson, false);
    let web = durations(&requests, "web");
    let last = web.last().map(|h| h.count).unwrap_or(0);
    assert!(last >= 1, "{web:#?}");
    // 700 ms apart, not at the 1 s collection interval: three exports in under 2.5 s of
    // export times.
    let times: Vec<u64> = web.iter().map(|h| h.time_unix_nano).collect();
    let spans: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        spans.iter().any(|s| *s < 950_000_000),
        "exports {spans:?} ns apart"
    );
}

#[test]
fn the_last_report_is_sent_when_the_receiver_stops() {
    let svd = Supervisord::start(Options::default().tcp_only());
    let sink = OtlpSink::start();
    let cfg = format!(
        "{}telemetry:\n  interval: 1h\n",
        config::native(
            &[target("web", &svd.http_url())],
            &[otlp_exporter(
                "http/protobuf",
                &sink.http_endpoint(),
                "gzip",
                &[("x-tenant", "t-42")],
            )],
        )
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);
    sink.wait_for(
        |r| crate::testkit::otlp_sink::polls(r, "web").len() >= 3,
        WAIT,
    );
    assert!(
        self_points(&sink.requests()).is_empty(),
        "not before an hour"
    );
    let stopping = Instant::now();
    let finished = receiver.stop();
    let stop_took = stopping.elapsed();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());

    let requests = sink.requests();
    let own: Vec<&ReceivedRequest> = requests.iter().filter(|r| is_own(r)).collect();
    assert_eq!(own.len(), 1, "one report, at the stop");
    check_own_requests(&requests, Protocol::HttpProtobuf, true);
    let points = self_points(&requests);
    let polls = latest(&points, POLLS, &[("supervisor_server", "web")]).unwrap_or(0.0);
    assert!(polls >= 3.0, "{points:#?}");
    // Sent after the data's last export: it counts what that one sent.
    assert!(latest(&points, SENT, &[]).is_some_and(|n| n > 0.0));
    assert_eq!(durations(&requests, "web").len(), 1);
    assert!(stop_took < Duration::from_secs(10), "{stop_took:?}");
}

#[test]
fn own_metrics_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sink = OtlpSink::start();
    let refused = format!("http://127.0.0.1:{}", free_port());
    let cfg = format!(
        "{}telemetry:\n  metrics: false\n  interval: 1s\n",
        config::native(
            &[target("refused", &refused)],
            &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
        )
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);
    // Four polls a second apart: three exports would have happened by now.
    let requests = sink.wait_for(
        |r| crate::testkit::otlp_sink::polls(r, "refused").len() >= 4,
        WAIT,
    );
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(self_points(&requests).is_empty());
    assert!(sink.requests().iter().all(|r| !is_own(r)));
    assert!(!finished
        .stderr
        .contains("sending the receiver's own metrics"));
}

#[test]
fn with_a_debug_exporter_only_the_start_says_they_are_not_exported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let refused = format!("http://127.0.0.1:{}", free_port());
    let cfg = config::native(&[target("refused", &refused)], &[debug_exporter("basic")]);
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);
    receiver.wait_for_stderr(
        "the receiver's own metrics are not exported: no OTLP exporter",
        WAIT,
    );
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(!finished.stdout.contains("supervisord_receiver."));
}
