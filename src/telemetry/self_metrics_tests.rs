//! Self-telemetry's instruments, resource and export, checked through the SDK.

use std::collections::BTreeMap;
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint,
};

use super::*;

/// Keeps every export as the OTLP request the OTLP exporter would send; asks the SDK for
/// `temporality`, as the OTLP exporter does for the configured preference.
#[derive(Clone, Default)]
struct Capture {
    requests: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    temporality: Temporality,
}

impl Capture {
    fn last(&self) -> ExportMetricsServiceRequest {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests.last().cloned().unwrap_or_default()
    }
}

impl PushMetricExporter for Capture {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let request = ExportMetricsServiceRequest::from(metrics);
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
        std::future::ready(Ok(()))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        self.temporality
    }
}

fn start(telemetry: &Arc<Telemetry>) -> (SelfMetrics, Capture) {
    start_with(telemetry, TemporalityPreference::Cumulative)
}

fn start_with(
    telemetry: &Arc<Telemetry>,
    preference: TemporalityPreference,
) -> (SelfMetrics, Capture) {
    let capture = Capture {
        temporality: sdk_temporality(preference),
        ..Capture::default()
    };
    let metrics = SelfMetrics::start(
        telemetry,
        capture.clone(),
        Duration::from_secs(3600),
        SelfResource::with_instance_id("host-1"),
    );
    (metrics, capture)
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<&str, &str> {
    kvs.iter()
        .filter_map(
            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Some((kv.key.as_str(), s.as_str())),
                _ => None,
            },
        )
        .collect()
}

fn metric(request: &ExportMetricsServiceRequest, id: SelfMetricId) -> Option<&Metric> {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .find(|m| m.name == id.name())
}

/// The sum's points, checking it is cumulative and monotonic as the table says.
fn sum(request: &ExportMetricsServiceRequest, id: SelfMetricId) -> Vec<NumberDataPoint> {
    let m = metric(request, id).unwrap_or_else(|| panic!("no {}", id.name()));
    assert_eq!(m.unit, id.def().unit);
    assert_eq!(m.description, id.def().description);
    match &m.data {
        Some(metric::Data::Sum(s)) => {
            assert_eq!(
                s.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
            assert_eq!(
                s.is_monotonic,
                id.def().instrument == SelfInstrument::Counter,
                "{}",
                id.name()
            );
            s.data_points.clone()
        }
        other => panic!("{}: {other:?}", id.name()),
    }
}

fn int(p: &NumberDataPoint) -> i64 {
    match p.value {
        Some(number_data_point::Value::AsInt(i)) => i,
        other => panic!("{other:?}"),
    }
}

fn single(request: &ExportMetricsServiceRequest, id: SelfMetricId) -> i64 {
    let points = sum(request, id);
    assert_eq!(points.len(), 1, "{}", id.name());
    int(&points[0])
}

fn by_server<'a>(points: &'a [NumberDataPoint], server: &str) -> Vec<&'a NumberDataPoint> {
    points
        .iter()
        .filter(|p| attrs(&p.attributes).get("supervisor_server") == Some(&server))
        .collect()
}

fn histogram(request: &ExportMetricsServiceRequest) -> Vec<HistogramDataPoint> {
    match metric(request, SelfMetricId::PollDuration).map(|m| &m.data) {
        Some(Some(metric::Data::Histogram(h))) => {
            assert_eq!(
                h.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
            h.data_points.clone()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_instrument_of_the_table_is_exported_under_the_own_resource_and_scope() {
    let telemetry = Arc::new(Telemetry::default());
    telemetry.polls.register("idle");
    let (metrics, capture) = start(&telemetry);
    telemetry
        .polls
        .record("web", Duration::from_millis(3), None);
    telemetry
        .polls
        .record("web", Duration::from_millis(700), Some("connect"));
    telemetry.polls.record_start(Duration::from_secs(2));
    telemetry.export.add_sent(40);
    telemetry.export.add_dropped(3);
    telemetry.export.add_retried();
    telemetry.export.set_queue(2, 2048);
    telemetry.export.set_queue_capacity(1000, 1 << 20);
    metrics.force_flush().unwrap();
    let request = capture.last();

    assert_eq!(request.resource_metrics.len(), 1);
    let rm = &request.resource_metrics[0];
    let resource = attrs(&rm.resource.as_ref().unwrap().attributes);
    assert_eq!(
        resource,
        BTreeMap::from([
            ("service.instance.id", "host-1"),
            ("service.name", "supervisord-receiver"),
            ("service.version", defs::SCOPE_VERSION),
        ])
    );
    assert_eq!(rm.scope_metrics.len(), 1);
    let scope = rm.scope_metrics[0].scope.as_ref().unwrap();
    assert_eq!(scope.name, defs::SELF_SCOPE_NAME);
    assert_eq!(scope.version, defs::SCOPE_VERSION);

    let polls = sum(&request, SelfMetricId::Polls);
    assert_eq!(int(by_server(&polls, "web")[0]), 2);
    assert_eq!(int(by_server(&polls, "idle")[0]), 0, "listed before a poll");
    for p in &polls {
        assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
    }
    let errors = sum(&request, SelfMetricId::PollErrors);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        attrs(&errors[0].attributes),
        BTreeMap::from([("error_type", "connect"), ("supervisor_server", "web")])
    );
    assert_eq!(int(&errors[0]), 1);
    assert_eq!(single(&request, SelfMetricId::PointsSent), 40);
    assert_eq!(single(&request, SelfMetricId::PointsDropped), 3);
    assert_eq!(single(&request, SelfMetricId::RequestsRetried), 1);
    assert_eq!(single(&request, SelfMetricId::PollsLate), 1);
    assert_eq!(single(&request, SelfMetricId::QueueBatches), 2);
    assert_eq!(single(&request, SelfMetricId::QueueBytes), 2048);
    assert_eq!(single(&request, SelfMetricId::QueueCapacityBatches), 1000);
    assert_eq!(single(&request, SelfMetricId::QueueCapacityBytes), 1 << 20);

    let durations = histogram(&request);
    assert_eq!(durations.len(), 1, "no histogram series before a poll");
    let web = &durations[0];
    assert_eq!(
        attrs(&web.attributes).get("supervisor_server"),
        Some(&"web")
    );
    assert_eq!(web.count, 2);
    assert!((web.sum.unwrap_or_default() - 0.703).abs() < 1e-9);
    assert_eq!(web.explicit_bounds, defs::POLL_DURATION_BOUNDARIES);
    assert_eq!(
        web.bucket_counts.len(),
        defs::POLL_DURATION_BOUNDARIES.len() + 1
    );
    // 3 ms in (2.5 ms, 5 ms], 700 ms in (0.5 s, 1 s].
    let bucket = |upper: f64| {
        let i = defs::POLL_DURATION_BOUNDARIES
            .iter()
            .position(|b| *b == upper)
            .unwrap();
        web.bucket_counts[i]
    };
    assert_eq!(bucket(0.005), 1);
    assert_eq!(bucket(1.0), 1);
    assert_eq!(web.bucket_counts.iter().sum::<u64>(), 2);

    // Every row of the table is there, none else.
    let names: Vec<&str> = rm.scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let mut expected: Vec<&str> = SELF_METRICS.iter().map(|m| m.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
}

#[test]
fn a_forgotten_target_loses_its_counter_series_and_counts_grow() {
    let telemetry = Arc::new(Telemetry::default());
    let (metrics, capture) = start(&telemetry);
    telemetry
        .polls
        .record("gone", Duration::from_millis(1), Some("timeout"));
    telemetry
        .polls
        .record("kept", Duration::from_millis(1), None);
    metrics.force_flush().unwrap();
    let first = capture.last();
    assert_eq!(
        by_server(&sum(&first, SelfMetricId::Polls), "gone").len(),
        1
    );

    telemetry.polls.forget("gone");
    telemetry
        .polls
        .record("kept", Duration::from_millis(1), None);
    metrics.force_flush().unwrap();
    let second = capture.last();
    let polls = sum(&second, SelfMetricId::Polls);
    assert!(by_server(&polls, "gone").is_empty(), "{polls:?}");
    assert_eq!(int(by_server(&polls, "kept")[0]), 2);
    assert!(metric(&second, SelfMetricId::PollErrors)
        .map(|m| match &m.data {
            Some(metric::Data::Sum(s)) => s.data_points.is_empty(),
            _ => true,
        })
        .unwrap_or(true));
    // The same start time across exports: one cumulative series.
    let start = |r: &ExportMetricsServiceRequest| {
        by_server(&sum(r, SelfMetricId::Polls), "kept")[0].start_time_unix_nano
    };
    assert_eq!(start(&first), start(&second));
}

/// The temporality of a sum or histogram metric, and its points' integer values (a histogram's
/// counts), in export order.
fn temporality_and_values(
    request: &ExportMetricsServiceRequest,
    id: SelfMetricId,
) -> (AggregationTemporality, Vec<i64>) {
    let m = metric(request, id).unwrap_or_else(|| panic!("no {}", id.name()));
    let (temporality, values) = match &m.data {
        Some(metric::Data::Sum(s)) => (
            s.aggregation_temporality,
            s.data_points.iter().map(int).collect(),
        ),
        Some(metric::Data::Histogram(h)) => (
            h.aggregation_temporality,
            h.data_points.iter().map(|p| p.count as i64).collect(),
        ),
        other => panic!("{}: {other:?}", id.name()),
    };
    let temporality = AggregationTemporality::try_from(temporality).unwrap();
    (temporality, values)
}

/// The preference reaches every instrument by the specification's rules, and the counters'
/// delta points, computed by the SDK from the totals the callbacks observe, count only what
/// happened since the previous export.
#[test]
fn the_temporality_preference_applies_per_instrument() {
    use AggregationTemporality::{Cumulative, Delta};
    // counters, up-down counters, histogram
    let cases = [
        (TemporalityPreference::Cumulative, Cumulative, Cumulative),
        (TemporalityPreference::Delta, Delta, Delta),
        (TemporalityPreference::LowMemory, Cumulative, Delta),
    ];
    for (preference, counters, histogram) in cases {
        let telemetry = Arc::new(Telemetry::default());
        let (metrics, capture) = start_with(&telemetry, preference);
        telemetry.export.add_sent(40);
        telemetry.export.set_queue(2, 2048);
        telemetry
            .polls
            .record("web", Duration::from_millis(3), None);
        metrics.force_flush().unwrap();
        telemetry.export.add_sent(5);
        telemetry
            .polls
            .record("web", Duration::from_millis(3), None);
        metrics.force_flush().unwrap();
        let request = capture.last();

        let (temporality, sent) = temporality_and_values(&request, SelfMetricId::PointsSent);
        assert_eq!(temporality, counters, "{preference:?}");
        let expected_sent = if counters == Delta { 5 } else { 45 };
        assert_eq!(sent, [expected_sent], "{preference:?}");
        let (temporality, polls) = temporality_and_values(&request, SelfMetricId::Polls);
        assert_eq!(temporality, counters, "{preference:?}");
        assert_eq!(polls, [if counters == Delta { 1 } else { 2 }]);

        let (temporality, queued) = temporality_and_values(&request, SelfMetricId::QueueBatches);
        assert_eq!(temporality, Cumulative, "{preference:?}: up-down counters");
        assert_eq!(queued, [2]);

        let (temporality, durations) = temporality_and_values(&request, SelfMetricId::PollDuration);
        assert_eq!(temporality, histogram, "{preference:?}");
        assert_eq!(durations, [if histogram == Delta { 1 } else { 2 }]);
    }
}

#[test]
fn shutdown_makes_a_last_export() {
    let telemetry = Arc::new(Telemetry::default());
    let (metrics, capture) = start(&telemetry);
    telemetry.export.add_sent(7);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime
        .block_on(metrics.shutdown(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(single(&capture.last(), SelfMetricId::PointsSent), 7);
}

#[test]
fn the_interval_comes_from_the_file_then_the_environment_then_the_collection_interval() {
    let settings = |interval| TelemetrySettings {
        metrics: true,
        interval,
        default_interval: Duration::from_secs(15),
        exporter: None,
    };
    let env = |value: Option<&'static str>| {
        move |name: &str| {
            assert_eq!(name, OTEL_METRIC_EXPORT_INTERVAL);
            value.map(str::to_string)
        }
    };
    let at = |interval, value| export_interval(&settings(interval), &env(value));

    let file = at(Some(Duration::from_secs(2)), Some("5000"));
    assert_eq!(
        (file.every, file.source),
        (Duration::from_secs(2), IntervalSource::File)
    );
    assert!(file
        .ignored
        .is_some_and(|w| w.contains("telemetry.interval is set")));

    let environment = at(None, Some("5000"));
    assert_eq!(
        environment,
        ExportInterval {
            every: Duration::from_secs(5),
            source: IntervalSource::Environment,
            ignored: None,
        }
    );
    for unset in [None, Some(""), Some("  ")] {
        let default = at(None, unset);
        assert_eq!(
            default,
            ExportInterval {
                every: Duration::from_secs(15),
                source: IntervalSource::CollectionInterval,
                ignored: None,
            }
        );
    }
    for bad in ["0", "-1", "5s", "1.5"] {
        let default = at(None, Some(bad));
        assert_eq!(default.every, Duration::from_secs(15), "{bad}");
        assert!(default.ignored.is_some(), "{bad}");
    }
}

#[test]
fn the_destination_is_the_named_or_first_otlp_exporter() {
    let otlp = |name: &str| {
        ExporterSettings::Otlp(OtlpSettings {
            protocol: crate::settings::OtlpProtocol::Grpc,
            endpoint: format!("http://{name}:4317"),
            logs_endpoint: format!("http://{name}:4317"),
            signals: crate::settings::Signal::ALL.to_vec(),
            headers: Vec::new(),
            gzip: false,
            timeout: Duration::from_secs(1),
            tls: Default::default(),
            name: name.to_string(),
            delivery: Default::default(),
        })
    };
    let debug = ExporterSettings::Debug {
        verbosity: crate::settings::DebugVerbosity::Basic,
    };
    let mut settings = TelemetrySettings::off();
    let exporters = [debug.clone(), otlp("otlp"), otlp("otlp/local")];
    let name =
        |s: &TelemetrySettings, e: &[ExporterSettings]| destination(s, e).map(|o| o.name.clone());
    assert_eq!(name(&settings, &exporters).as_deref(), Some("otlp"));
    settings.exporter = Some("otlp/local".into());
    assert_eq!(name(&settings, &exporters).as_deref(), Some("otlp/local"));
    settings.exporter = None;
    assert_eq!(name(&settings, &[debug]), None);
}

#[test]
fn an_instance_id_is_always_there() {
    assert!(!instance_id().is_empty());
    let a = generated_id();
    assert_eq!(a.len(), 16);
    assert_ne!(a, generated_id());
}
