//! Export requests measured, counted and cut to size.
//!
//! A request is split along its own structure (resources, then metrics, then data points; for
//! logs, resources then log records) so every piece is still a valid OTLP request carrying its
//! resource and scope. Sizes are bytes of the protobuf encoding before compression, what a
//! collector's `max_recv_msg_size_mib` limits.

use std::ops::Range;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{metric, Metric, ResourceMetrics, ScopeMetrics};
use prost::Message;

use super::EncodedRequest;
use crate::settings::Signal;

/// Upper bound of what a length-delimited field adds around a message: one tag byte and a
/// length varint (at most 5 bytes below 4 GiB).
const FIELD_OVERHEAD: u64 = 6;

/// Data points in a request, of every metric type: what telemetry counts as sent or lost.
pub(crate) fn count_points(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .map(count_resource_points)
        .sum()
}

pub(crate) fn count_resource_points(resource: &ResourceMetrics) -> u64 {
    resource
        .scope_metrics
        .iter()
        .flat_map(|sm| &sm.metrics)
        .map(|m| points_of(m) as u64)
        .sum()
}

/// Log records in a logs request: what telemetry counts as sent or lost for logs.
pub(crate) fn count_log_records(request: &ExportLogsServiceRequest) -> u64 {
    request
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len() as u64)
        .sum()
}

fn points_of(metric: &Metric) -> usize {
    match &metric.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

fn field_len(message: &impl Message) -> u64 {
    message.encoded_len() as u64 + FIELD_OVERHEAD
}

/// Pieces of `request`, each encoding to at most `max_bytes` unless a single data point is
/// larger on its own (it is then sent alone; the backend decides).
pub(crate) fn split(
    request: &ExportMetricsServiceRequest,
    max_bytes: u64,
) -> Vec<ExportMetricsServiceRequest> {
    if request.encoded_len() as u64 <= max_bytes {
        return vec![request.clone()];
    }
    let pieces = request
        .resource_metrics
        .iter()
        .flat_map(|resource| split_resource(resource, max_bytes));
    pack(pieces, max_bytes)
        .into_iter()
        .map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
        .collect()
}

/// Resource pieces packed in order into groups whose request fields add up to at most
/// `max_bytes` (a piece larger on its own goes alone): the requests of a split, for either
/// signal.
fn pack<R: Message>(pieces: impl IntoIterator<Item = R>, max_bytes: u64) -> Vec<Vec<R>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for piece in pieces {
        let len = field_len(&piece);
        if size + len > max_bytes && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(piece);
        size += len;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One resource's metrics in pieces that each fit `max_bytes` as a request field.
fn split_resource(resource: &ResourceMetrics, max_bytes: u64) -> Vec<ResourceMetrics> {
    if field_len(resource) <= max_bytes {
        return vec![resource.clone()];
    }
    let shell = ResourceMetrics {
        resource: resource.resource.clone(),
        scope_metrics: Vec::new(),
        schema_url: resource.schema_url.clone(),
    };
    let shell_len = field_len(&shell);
    let mut pieces = Vec::new();
    let mut current = shell.clone();
    let mut size = shell_len;
    for scope in &resource.scope_metrics {
        let header = ScopeMetrics {
            scope: scope.scope.clone(),
            metrics: Vec::new(),
            schema_url: scope.schema_url.clone(),
        };
        let header_len = field_len(&header);
        let budget = max_bytes.saturating_sub(shell_len + header_len);
        // A new scope group starts in every piece, and whenever the scope changes.
        let mut in_group = false;
        for metric in scope.metrics.iter().flat_map(|m| split_metric(m, budget)) {
            let len = field_len(&metric);
            let added = if in_group { len } else { header_len + len };
            if size + added > max_bytes && size > shell_len {
                pieces.push(std::mem::replace(&mut current, shell.clone()));
                size = shell_len;
                in_group = false;
            }
            if !in_group {
                current.scope_metrics.push(header.clone());
                size += header_len;
                in_group = true;
            }
            if let Some(group) = current.scope_metrics.last_mut() {
                group.metrics.push(metric);
            }
            size += len;
        }
    }
    if size > shell_len {
        pieces.push(current);
    }
    pieces
}

/// Gauges and sums are cut between data points; other types are rare here (only gauges and
/// sums are produced) and stay whole.
fn split_metric(metric: &Metric, budget: u64) -> Vec<Metric> {
    if field_len(metric) <= budget {
        return vec![metric.clone()];
    }
    match &metric.data {
        Some(metric::Data::Gauge(gauge)) => {
            chunk_points(&gauge.data_points, budget, metric, |points| {
                metric::Data::Gauge(opentelemetry_proto::tonic::metrics::v1::Gauge {
                    data_points: points,
                })
            })
        }
        Some(metric::Data::Sum(sum)) => chunk_points(&sum.data_points, budget, metric, |points| {
            metric::Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum {
                data_points: points,
                aggregation_temporality: sum.aggregation_temporality,
                is_monotonic: sum.is_monotonic,
            })
        }),
        _ => vec![metric.clone()],
    }
}

fn chunk_points<P: Message + Clone>(
    points: &[P],
    budget: u64,
    metric: &Metric,
    wrap: impl Fn(Vec<P>) -> metric::Data,
) -> Vec<Metric> {
    let with = |points: Vec<P>| Metric {
        data: Some(wrap(points)),
        ..metric_header(metric)
    };
    // The metric's name, description, unit and metadata, plus the data's own field.
    let header_len = field_len(&with(Vec::new())) + FIELD_OVERHEAD;
    let mut out = Vec::new();
    let mut current: Vec<P> = Vec::new();
    let mut size = header_len;
    for point in points {
        let len = field_len(point);
        if size + len > budget && !current.is_empty() {
            out.push(with(std::mem::take(&mut current)));
            size = header_len;
        }
        current.push(point.clone());
        size += len;
    }
    if !current.is_empty() {
        out.push(with(current));
    }
    out
}

/// The metric's identity without its points: cloning the whole metric only to replace its
/// points would copy them twice.
fn metric_header(metric: &Metric) -> Metric {
    Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data: None,
    }
}

/// Pieces of a logs request, each encoding to at most `max_bytes` unless a single log record is
/// larger on its own (it is then sent alone). Resources are packed whole when they fit, and a
/// larger one is cut between its log records, every piece keeping its resource and scope.
pub(crate) fn split_logs(
    request: &ExportLogsServiceRequest,
    max_bytes: u64,
) -> Vec<ExportLogsServiceRequest> {
    if request.encoded_len() as u64 <= max_bytes {
        return vec![request.clone()];
    }
    let pieces = request
        .resource_logs
        .iter()
        .flat_map(|resource| split_resource_logs(resource, max_bytes));
    pack(pieces, max_bytes)
        .into_iter()
        .map(|resource_logs| ExportLogsServiceRequest { resource_logs })
        .collect()
}

/// One resource's log records in pieces that each fit `max_bytes` as a request field.
fn split_resource_logs(resource: &ResourceLogs, max_bytes: u64) -> Vec<ResourceLogs> {
    if field_len(resource) <= max_bytes {
        return vec![resource.clone()];
    }
    let shell = ResourceLogs {
        resource: resource.resource.clone(),
        scope_logs: Vec::new(),
        schema_url: resource.schema_url.clone(),
    };
    let shell_len = field_len(&shell);
    let mut pieces = Vec::new();
    let mut current = shell.clone();
    let mut size = shell_len;
    for scope in &resource.scope_logs {
        let header = ScopeLogs {
            scope: scope.scope.clone(),
            log_records: Vec::new(),
            schema_url: scope.schema_url.clone(),
        };
        let header_len = field_len(&header);
        // A new scope group starts in every piece, and whenever the scope changes.
        let mut in_group = false;
        for record in &scope.log_records {
            let len = field_len(record);
            let added = if in_group { len } else { header_len + len };
            if size + added > max_bytes && size > shell_len {
                pieces.push(std::mem::replace(&mut current, shell.clone()));
                size = shell_len;
                in_group = false;
            }
            if !in_group {
                current.scope_logs.push(header.clone());
                size += header_len;
                in_group = true;
            }
            if let Some(group) = current.scope_logs.last_mut() {
                group.log_records.push(record.clone());
            }
            size += len;
        }
    }
    if size > shell_len {
        pieces.push(current);
    }
    pieces
}

/// One resource larger than `max_bytes` on its own, decoded and split along its structure.
/// `None` when it does not decode (cannot happen with our own encoding).
fn split_encoded_resource(
    signal: Signal,
    resource: Bytes,
    max_bytes: u64,
) -> Option<Vec<EncodedRequest>> {
    Some(match signal {
        Signal::Metrics => split(
            &ExportMetricsServiceRequest::decode(resource).ok()?,
            max_bytes,
        )
        .iter()
        .map(EncodedRequest::from_message)
        .collect(),
        Signal::Logs => split_logs(&ExportLogsServiceRequest::decode(resource).ok()?, max_bytes)
            .iter()
            .map(EncodedRequest::from_logs)
            .collect(),
    })
}

/// Several queued requests as one: their resources side by side, oldest first. The encoded size
/// of the result is the sum of theirs (a request is only its repeated resource field).
/// Requests cut from resources encoded one after the other in `buffer` (each a
/// `resource_metrics` or `resource_logs` field, both field 1 of their request, with its data
/// points or log records), packed in order up to `max_bytes`. The pieces share `buffer`; a
/// resource larger than `max_bytes` on its own is decoded as `signal` and split along its
/// structure, the rare slow path.
pub(crate) fn pack_encoded(
    signal: Signal,
    buffer: &Bytes,
    resources: &[(Range<usize>, u64)],
    max_bytes: u64,
) -> Vec<EncodedRequest> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut end = 0;
    let mut points = 0;
    let flush = |out: &mut Vec<EncodedRequest>, start: usize, end: usize, points: u64| {
        if end > start {
            out.push(EncodedRequest::from_encoded(
                buffer.slice(start..end),
                points,
            ));
        }
    };
    for (range, range_points) in resources {
        let len = (range.end - range.start) as u64;
        if len > max_bytes {
            flush(&mut out, start, end, points);
            (start, end, points) = (range.end, range.end, 0);
            match split_encoded_resource(signal, buffer.slice(range.clone()), max_bytes) {
                Some(pieces) => out.extend(pieces),
                // Our own encoding: cannot happen, and sending it whole is the safe answer.
                None => out.push(EncodedRequest::from_encoded(
                    buffer.slice(range.clone()),
                    *range_points,
                )),
            }
            continue;
        }
        if (end - start) as u64 + len > max_bytes && end > start {
            flush(&mut out, start, end, points);
            (start, points) = (range.start, 0);
        }
        if end == start {
            start = range.start;
        }
        end = range.end;
        points += range_points;
    }
    flush(&mut out, start, end, points);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::metrics::v1::{number_data_point, Gauge, NumberDataPoint};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn gauge(name: &str, points: usize) -> Metric {
        Metric {
            name: name.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: (0..points)
                    .map(|i| NumberDataPoint {
                        attributes: vec![kv("supervisord_process", &format!("process-{i}"))],
                        time_unix_nano: 1_700_000_000_000_000_000,
                        value: Some(number_data_point::Value::AsInt(i as i64)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        }
    }

    fn resource(server: &str, metrics: Vec<Metric>) -> ResourceMetrics {
        ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("supervisor_server", server)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "supervisord-receiver".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// (server, metric, process) -> value of every point, to check nothing is lost or doubled.
    fn points(requests: &[ExportMetricsServiceRequest]) -> BTreeMap<(String, String, String), i64> {
        let mut out = BTreeMap::new();
        for request in requests {
            for rm in &request.resource_metrics {
                let server = format!("{:?}", rm.resource.as_ref().map(|r| &r.attributes));
                assert_eq!(rm.scope_metrics.len(), 1, "every piece keeps its scope");
                for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    let Some(metric::Data::Gauge(g)) = &m.data else {
                        panic!("{m:?}")
                    };
                    for p in &g.data_points {
                        let key = (
                            server.clone(),
                            m.name.clone(),
                            format!("{:?}", p.attributes),
                        );
                        let Some(number_data_point::Value::AsInt(v)) = p.value else {
                            panic!("{p:?}")
                        };
                        assert!(out.insert(key, v).is_none(), "a point was doubled");
                    }
                }
            }
        }
        out
    }

    fn request(resources: Vec<ResourceMetrics>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: resources,
        }
    }

    #[test]
    fn small_requests_stay_whole() {
        let r = request(vec![resource("a", vec![gauge("m", 3)])]);
        assert_eq!(split(&r, 4 << 20), vec![r.clone()]);
        assert_eq!(count_points(&r), 3);
    }

    #[test]
    fn many_resources_are_packed_up_to_the_limit() {
        let r = request(
            (0..50)
                .map(|i| resource(&format!("target-{i}"), vec![gauge("m", 5)]))
                .collect(),
        );
        let max = 2048;
        let pieces = split(&r, max);
        assert!(pieces.len() > 1);
        for p in &pieces {
            assert!(p.encoded_len() as u64 <= max, "{}", p.encoded_len());
            // Whole resources, several per request.
            assert!(p.resource_metrics.len() > 1);
        }
        assert_eq!(points(&pieces), points(std::slice::from_ref(&r)));
        assert_eq!(pieces.iter().map(count_points).sum::<u64>(), 250);
    }

    #[test]
    fn a_large_resource_is_cut_between_metrics_then_points() {
        let r = request(vec![
            resource("big", vec![gauge("a", 40), gauge("b", 200), gauge("c", 1)]),
            resource("small", vec![gauge("a", 1)]),
        ]);
        let max = 1024;
        let pieces = split(&r, max);
        for p in &pieces {
            assert!(p.encoded_len() as u64 <= max, "{}", p.encoded_len());
        }
        assert_eq!(points(&pieces), points(std::slice::from_ref(&r)));
        let reassembled: u64 = pieces.iter().map(count_points).sum();
        assert_eq!(reassembled, 242);
    }

    #[test]
    fn a_point_larger_than_the_limit_is_sent_alone() {
        let mut big = gauge("m", 1);
        if let Some(metric::Data::Gauge(g)) = &mut big.data {
            g.data_points[0].attributes.push(kv("x", &"y".repeat(5000)));
        }
        let r = request(vec![resource("a", vec![big, gauge("n", 2)])]);
        let pieces = split(&r, 1024);
        assert_eq!(points(&pieces), points(std::slice::from_ref(&r)));
        assert_eq!(
            pieces.iter().filter(|p| p.encoded_len() > 1024).count(),
            1,
            "only the oversized point exceeds the limit"
        );
    }

    /// Encodes each resource as its own request field, one after the other, as the pipeline does.
    fn encoded(resources: &[ResourceMetrics]) -> (Bytes, Vec<(Range<usize>, u64)>) {
        let mut buffer = Vec::new();
        let mut ranges = Vec::new();
        for resource in resources {
            let start = buffer.len();
            let one = request(vec![resource.clone()]);
            one.encode(&mut buffer).unwrap();
            ranges.push((start..buffer.len(), count_points(&one)));
        }
        (Bytes::from(buffer), ranges)
    }

    #[test]
    fn encoded_resources_are_packed_in_order_and_oversized_ones_split() {
        let resources: Vec<ResourceMetrics> = (0..12)
            .map(|i| {
                resource(
                    &format!("s{i}"),
                    vec![gauge("m", if i == 5 { 400 } else { 3 })],
                )
            })
            .collect();
        let whole = request(resources.clone());
        let (buffer, ranges) = encoded(&resources);
        let max = 2048;
        let pieces = pack_encoded(Signal::Metrics, &buffer, &ranges, max);
        assert!(pieces.len() > 2, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() <= max), "every piece fits");
        let decoded: Vec<ExportMetricsServiceRequest> =
            pieces.iter().map(|p| p.decode().unwrap()).collect();
        for (piece, request) in pieces.iter().zip(&decoded) {
            assert_eq!(piece.points(), count_points(request));
        }
        assert_eq!(points(&decoded), points(std::slice::from_ref(&whole)));
        let servers: Vec<String> = decoded
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .map(|rm| format!("{:?}", rm.resource))
            .collect();
        let mut deduped = servers.clone();
        deduped.dedup();
        assert_eq!(deduped.len(), 12, "resources stay in order: {deduped:?}");

        let all = pack_encoded(Signal::Metrics, &buffer, &ranges, u64::MAX);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].decode().unwrap(), whole);
        assert!(pack_encoded(Signal::Metrics, &buffer, &[], max).is_empty());
    }

    fn log_resource(server: &str, records: usize, body_len: usize) -> ResourceLogs {
        use opentelemetry_proto::tonic::logs::v1::LogRecord;
        ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("supervisor_server", server)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "supervisord-receiver".into(),
                    ..Default::default()
                }),
                log_records: (0..records)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        attributes: vec![kv("supervisord_process", &format!("process-{i}"))],
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("x".repeat(body_len))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// (server, process, time) of every record, to check nothing is lost or doubled.
    fn records(requests: &[ExportLogsServiceRequest]) -> BTreeMap<(String, String, u64), ()> {
        let mut out = BTreeMap::new();
        for request in requests {
            for rl in &request.resource_logs {
                let server = format!("{:?}", rl.resource.as_ref().map(|r| &r.attributes));
                assert_eq!(rl.scope_logs.len(), 1, "every piece keeps its scope");
                assert!(rl.scope_logs[0].scope.is_some());
                for r in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
                    let key = (
                        server.clone(),
                        format!("{:?}", r.attributes),
                        r.time_unix_nano,
                    );
                    assert!(out.insert(key, ()).is_none(), "a record was doubled");
                }
            }
        }
        out
    }

    #[test]
    fn encoded_logs_are_packed_and_an_oversized_resource_cut_between_records() {
        let resources: Vec<ResourceLogs> = (0..8)
            .map(|i| log_resource(&format!("s{i}"), if i == 3 { 60 } else { 2 }, 40))
            .collect();
        let whole = ExportLogsServiceRequest {
            resource_logs: resources.clone(),
        };
        let mut buffer = Vec::new();
        let mut ranges = Vec::new();
        for resource in &resources {
            let start = buffer.len();
            prost::encoding::message::encode(1, resource, &mut buffer);
            let records = resource.scope_logs[0].log_records.len() as u64;
            ranges.push((start..buffer.len(), records));
        }
        let buffer = Bytes::from(buffer);
        let max = 1024;
        let pieces = pack_encoded(Signal::Logs, &buffer, &ranges, max);
        assert!(pieces.len() > 3, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() <= max), "every piece fits");
        let decoded: Vec<ExportLogsServiceRequest> =
            pieces.iter().map(|p| p.decode_logs().unwrap()).collect();
        for (piece, request) in pieces.iter().zip(&decoded) {
            assert_eq!(piece.points(), count_log_records(request));
        }
        assert_eq!(records(&decoded), records(std::slice::from_ref(&whole)));
        assert_eq!(pieces.iter().map(EncodedRequest::points).sum::<u64>(), 74);

        let all = pack_encoded(Signal::Logs, &buffer, &ranges, u64::MAX);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].decode_logs().unwrap(), whole);
    }

    #[test]
    fn a_log_record_larger_than_the_limit_is_sent_alone() {
        let mut resource = log_resource("a", 3, 10);
        resource.scope_logs[0].log_records[1].body = Some(AnyValue {
            value: Some(any_value::Value::StringValue("y".repeat(5000))),
        });
        let request = ExportLogsServiceRequest {
            resource_logs: vec![resource],
        };
        let pieces = split_logs(&request, 1024);
        assert_eq!(records(&pieces), records(std::slice::from_ref(&request)));
        assert_eq!(
            pieces.iter().filter(|p| p.encoded_len() > 1024).count(),
            1,
            "only the oversized record exceeds the limit"
        );
        assert_eq!(pieces.iter().map(count_log_records).sum::<u64>(), 3);
    }
}
