//! End to end self-telemetry: the real binary polls a real supervisord (and two targets that
//! fail in different ways) and sends its own metrics, under its own resource and scope, to a
//! real OTLP server together with the targets' data.

mod support;

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality};
use support::config::{self, otlp_exporter, target};
use support::otlp_sink::{any_value_string, OtlpSink, ReceivedRequest};
use support::receiver::Running;
use support::supervisord::{free_port, Auth, Options, Program, Supervisord};
use support::WAIT;

const SCOPE: &str = "supervisord-receiver/self";
const POLLS: &str = "supervisord_receiver.polls";
const ERRORS: &str = "supervisord_receiver.poll.errors";
const DURATION: &str = "supervisord_receiver.poll.duration";
const CAPACITY_BATCHES: &str = "supervisord_receiver.export.queue.capacity.batches";
const CAPACITY_BYTES: &str = "supervisord_receiver.export.queue.capacity.bytes";
const SENT: &str = "supervisord_receiver.export.points.sent";

/// One self-telemetry point with everything the checks need, doubles kept as doubles.
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
                        Some(metric::Data::Gauge(g)) => (&g.data_points, None),
                        Some(metric::Data::Sum(s)) => {
                            assert_eq!(
                                s.aggregation_temporality,
                                AggregationTemporality::Cumulative as i32,
                                "{} is cumulative",
                                m.name
                            );
                            (&s.data_points, Some(s.is_monotonic))
                        }
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

#[test]
fn own_metrics_arrive_with_their_resource_attributes_and_growing_counts() {
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
        otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])
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
    let receiver = Running::start(&path, &[]);

    // Two emissions that each saw every target fail or succeed at least once.
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
        },
        WAIT,
    );
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());

    let points = self_points(&requests);
    // Every self point is under the receiver's own resource, never a target's.
    for p in &points {
        assert_eq!(
            p.resource.get("service.name").map(String::as_str),
            Some("supervisord-receiver"),
            "{p:?}"
        );
        assert!(
            p.resource
                .get("service.instance.id")
                .is_some_and(|id| !id.is_empty()),
            "{p:?}"
        );
        assert!(p.resource.contains_key("service.version"), "{p:?}");
        assert!(!p.resource.contains_key("supervisor_server"), "{p:?}");
        assert!(p.metric.starts_with("supervisord_receiver."), "{p:?}");
        if let Some(monotonic) = p.sum {
            assert!(monotonic, "{p:?}");
            assert!(p.start > 0 && p.start <= p.time, "{p:?}");
        }
    }
    // And no target resource carries one.
    for request in &requests {
        for rm in &request.request.resource_metrics {
            for sm in &rm.scope_metrics {
                let own = sm.scope.as_ref().map(|s| s.name.as_str()) == Some(SCOPE);
                assert!(sm
                    .metrics
                    .iter()
                    .all(|m| own == m.name.starts_with("supervisord_receiver.")));
            }
        }
    }

    // Counters only grow, per series.
    let mut series: BTreeMap<(String, String), Vec<(u64, f64)>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.sum.is_some()) {
        series
            .entry((p.metric.clone(), format!("{:?}", p.attrs)))
            .or_default()
            .push((p.time, p.value));
    }
    for (key, mut values) in series {
        values.sort_by_key(|(t, _)| *t);
        assert!(
            values.windows(2).all(|w| w[0].1 <= w[1].1),
            "{key:?} went down: {values:?}"
        );
    }

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
    for server in ["good", "refused", "badauth"] {
        let duration = latest(&points, DURATION, &[("supervisor_server", server)])
            .unwrap_or_else(|| panic!("{server}: no poll duration"));
        // A poll is bounded by the 1 s timeout of the config; a real one takes some time.
        assert!(duration > 0.0 && duration < 5.0, "{server}: {duration}");
    }
    assert_eq!(latest(&points, CAPACITY_BATCHES, &[]), Some(123.0));
    assert_eq!(latest(&points, CAPACITY_BYTES, &[]), Some(8388608.0));
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
    // Four polls a second apart: three emissions would have happened by now.
    let requests = sink.wait_for(|r| support::otlp_sink::polls(r, "refused").len() >= 4, WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(self_points(&requests).is_empty());
    assert!(self_points(&sink.requests()).is_empty());
}
