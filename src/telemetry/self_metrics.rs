//! The receiver's own metrics as OTLP: one `ResourceMetrics` under its own resource
//! (`service.name=supervisord-receiver`) and scope, built from a snapshot of [`Telemetry`].
//!
//! Names, units, kinds and attribute keys come from the self-telemetry table in
//! [`crate::schema::definitions`]; nothing here spells them.

use std::sync::atomic::Ordering;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::Telemetry;
use crate::schema::definitions::{
    self as defs, AttributeDef, MetricKind, SelfMetricId, SELF_METRICS,
};

/// The receiver's resource, built once at start.
#[derive(Debug, Clone)]
pub struct SelfResource {
    resource: Resource,
}

impl SelfResource {
    /// `service.instance.id` is the host name when it can be read, else an id generated now.
    pub fn detect() -> Self {
        SelfResource::with_instance_id(&instance_id())
    }

    pub fn with_instance_id(instance_id: &str) -> Self {
        SelfResource {
            resource: Resource {
                attributes: vec![
                    string_attribute(&defs::SERVICE_NAME, defs::SELF_SERVICE_NAME),
                    string_attribute(&defs::SERVICE_INSTANCE_ID, instance_id),
                    string_attribute(&defs::SERVICE_VERSION, defs::SCOPE_VERSION),
                ],
                ..Default::default()
            },
        }
    }
}

/// The host name (Linux: the kernel's), or a random id when there is none: an id must be
/// there, and a host name keeps it stable across restarts.
fn instance_id() -> String {
    let from_file = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
    };
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|name| !name.is_empty() && name.len() <= 255)
        .unwrap_or_else(generated_id)
}

/// 64 random bits from the standard library's per-process random hash keys.
fn generated_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(crate::clock::unix_nanos_now());
    format!("{:016x}", hasher.finish())
}

/// Every self-telemetry metric at `now_unix_nano`.
pub fn build(
    telemetry: &Telemetry,
    resource: &SelfResource,
    now_unix_nano: u64,
) -> ResourceMetrics {
    let mut points = Points::new(now_unix_nano);
    for (target, stats) in telemetry.polls.snapshot() {
        let server = string_attribute(&defs::SUPERVISOR_SERVER, &target);
        if stats.polls > 0 {
            points.double(
                SelfMetricId::PollDuration,
                stats.last_duration.as_secs_f64(),
                vec![server.clone()],
            );
        }
        points.counter(
            SelfMetricId::Polls,
            stats.polls,
            stats.since_unix_nano,
            vec![server.clone()],
        );
        for (error_type, count) in &stats.errors {
            points.counter(
                SelfMetricId::PollErrors,
                *count,
                stats.since_unix_nano,
                vec![
                    server.clone(),
                    string_attribute(&defs::ERROR_TYPE, error_type),
                ],
            );
        }
    }

    let export = &telemetry.export;
    let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    points.gauge(SelfMetricId::QueueBatches, read(&export.queue_batches));
    points.gauge(SelfMetricId::QueueBytes, read(&export.queue_bytes));
    points.gauge(
        SelfMetricId::QueueCapacityBatches,
        read(&export.queue_capacity_batches),
    );
    points.gauge(
        SelfMetricId::QueueCapacityBytes,
        read(&export.queue_capacity_bytes),
    );
    let started = telemetry.started.0;
    points.counter(
        SelfMetricId::PointsSent,
        read(&export.sent_points),
        started,
        Vec::new(),
    );
    points.counter(
        SelfMetricId::PointsDropped,
        read(&export.dropped_points),
        started,
        Vec::new(),
    );
    points.counter(
        SelfMetricId::RequestsRetried,
        read(&export.retried_requests),
        started,
        Vec::new(),
    );
    points.counter(
        SelfMetricId::PollsLate,
        telemetry.polls.late(),
        started,
        Vec::new(),
    );

    ResourceMetrics {
        resource: Some(resource.resource.clone()),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: defs::SELF_SCOPE_NAME.to_string(),
                version: defs::SCOPE_VERSION.to_string(),
                ..Default::default()
            }),
            metrics: points.into_metrics(),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// Points per metric, indexed by `SelfMetricId as usize`.
struct Points {
    now: u64,
    points: [Vec<NumberDataPoint>; SelfMetricId::ALL.len()],
}

impl Points {
    fn new(now: u64) -> Self {
        Points {
            now,
            points: Default::default(),
        }
    }

    fn push(&mut self, id: SelfMetricId, point: NumberDataPoint) {
        if let Some(points) = self.points.get_mut(id as usize) {
            points.push(point);
        }
    }

    fn gauge(&mut self, id: SelfMetricId, value: u64) {
        let point = NumberDataPoint {
            time_unix_nano: self.now,
            value: Some(number_data_point::Value::AsInt(saturating_i64(value))),
            ..Default::default()
        };
        self.push(id, point);
    }

    fn double(&mut self, id: SelfMetricId, value: f64, attributes: Vec<KeyValue>) {
        let point = NumberDataPoint {
            attributes,
            time_unix_nano: self.now,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        };
        self.push(id, point);
    }

    fn counter(&mut self, id: SelfMetricId, value: u64, since: u64, attributes: Vec<KeyValue>) {
        let point = NumberDataPoint {
            attributes,
            // A start after the point's own time would be invalid OTLP.
            start_time_unix_nano: since.min(self.now),
            time_unix_nano: self.now,
            value: Some(number_data_point::Value::AsInt(saturating_i64(value))),
            ..Default::default()
        };
        self.push(id, point);
    }

    /// In table order; a metric without points is left out.
    fn into_metrics(self) -> Vec<Metric> {
        let mut metrics = Vec::with_capacity(SELF_METRICS.len());
        for (def, data_points) in SELF_METRICS.iter().zip(self.points) {
            if data_points.is_empty() {
                continue;
            }
            let data = match def.kind {
                MetricKind::Gauge => metric::Data::Gauge(Gauge { data_points }),
                MetricKind::Counter => metric::Data::Sum(Sum {
                    data_points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            };
            metrics.push(Metric {
                name: def.name.to_string(),
                description: def.description.to_string(),
                unit: def.unit.to_string(),
                metadata: Vec::new(),
                data: Some(data),
            });
        }
        metrics
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn string_attribute(def: &AttributeDef, value: &str) -> KeyValue {
    KeyValue {
        key: def.key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
        attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            }
        })
    }

    fn metric(rm: &ResourceMetrics, id: SelfMetricId) -> Option<&Metric> {
        rm.scope_metrics
            .iter()
            .flat_map(|sm| sm.metrics.iter())
            .find(|m| m.name == id.name())
    }

    fn points(m: &Metric) -> &[NumberDataPoint] {
        match &m.data {
            Some(metric::Data::Gauge(g)) => &g.data_points,
            Some(metric::Data::Sum(s)) => &s.data_points,
            _ => &[],
        }
    }

    fn int(p: &NumberDataPoint) -> Option<i64> {
        match p.value {
            Some(number_data_point::Value::AsInt(i)) => Some(i),
            _ => None,
        }
    }

    #[test]
    fn counts_become_cumulative_sums_under_the_own_resource() {
        let telemetry = Telemetry::default();
        telemetry.polls.register("idle");
        telemetry
            .polls
            .record("web", Duration::from_millis(250), None);
        telemetry
            .polls
            .record("web", Duration::from_millis(500), Some("connect"));
        telemetry.export.add_sent(40);
        telemetry.export.add_dropped(3);
        telemetry.export.add_retried();
        telemetry.export.set_queue(2, 2048);
        telemetry.export.set_queue_capacity(1000, 1 << 20);
        let now = crate::clock::unix_nanos_now() + 1;
        let rm = build(&telemetry, &SelfResource::with_instance_id("host-1"), now);

        let resource = rm.resource.as_ref().map(|r| r.attributes.as_slice());
        let resource = resource.unwrap_or_default();
        assert_eq!(attr(resource, "service.name"), Some("supervisord-receiver"));
        assert_eq!(attr(resource, "service.instance.id"), Some("host-1"));
        assert_eq!(
            rm.scope_metrics[0].scope.as_ref().map(|s| s.name.as_str()),
            Some(defs::SELF_SCOPE_NAME)
        );

        let duration = metric(&rm, SelfMetricId::PollDuration).unwrap();
        let duration = points(duration);
        assert_eq!(duration.len(), 1, "no duration before a first poll");
        assert_eq!(
            attr(&duration[0].attributes, "supervisor_server"),
            Some("web")
        );
        assert_eq!(
            duration[0].value,
            Some(number_data_point::Value::AsDouble(0.5))
        );

        let polls = metric(&rm, SelfMetricId::Polls).unwrap();
        match &polls.data {
            Some(metric::Data::Sum(sum)) => {
                assert!(sum.is_monotonic);
                assert_eq!(
                    sum.aggregation_temporality,
                    AggregationTemporality::Cumulative as i32
                );
            }
            other => panic!("{other:?}"),
        }
        let by_server = |server: &str| {
            points(polls)
                .iter()
                .find(|p| attr(&p.attributes, "supervisor_server") == Some(server))
                .and_then(int)
        };
        assert_eq!(by_server("web"), Some(2));
        assert_eq!(by_server("idle"), Some(0));
        for p in points(polls) {
            assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
        }

        let errors = points(metric(&rm, SelfMetricId::PollErrors).unwrap());
        assert_eq!(errors.len(), 1);
        assert_eq!(attr(&errors[0].attributes, "error_type"), Some("connect"));
        assert_eq!(int(&errors[0]), Some(1));

        let single = |id| int(&points(metric(&rm, id).unwrap())[0]);
        assert_eq!(single(SelfMetricId::PointsSent), Some(40));
        assert_eq!(single(SelfMetricId::PointsDropped), Some(3));
        assert_eq!(single(SelfMetricId::RequestsRetried), Some(1));
        assert_eq!(single(SelfMetricId::QueueBatches), Some(2));
        assert_eq!(single(SelfMetricId::QueueBytes), Some(2048));
        assert_eq!(single(SelfMetricId::QueueCapacityBatches), Some(1000));
        assert_eq!(single(SelfMetricId::QueueCapacityBytes), Some(1 << 20));
    }

    #[test]
    fn a_forgotten_target_has_no_series() {
        let telemetry = Telemetry::default();
        telemetry
            .polls
            .record("gone", Duration::from_millis(1), None);
        telemetry.polls.forget("gone");
        let rm = build(&telemetry, &SelfResource::with_instance_id("h"), u64::MAX);
        assert!(metric(&rm, SelfMetricId::Polls).is_none());
        assert!(metric(&rm, SelfMetricId::PollDuration).is_none());
    }

    #[test]
    fn an_instance_id_is_always_there() {
        assert!(!instance_id().is_empty());
        let a = generated_id();
        assert_eq!(a.len(), 16);
        assert_ne!(a, generated_id());
    }
}
