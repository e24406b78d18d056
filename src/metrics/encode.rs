//! Poll outcomes straight to OTLP protobuf bytes, without the generated structs.
//!
//! Building `ResourceMetrics` structs costs two allocations per attribute (key and value are
//! owned `String`s, and every point repeats its process's), and prost then walks the tree
//! once per nesting level to size it. For a fleet that is most of the receiver's work, so the
//! OTLP exporters get bytes written here from the borrowed points of
//! [`super::builder::collect`]: one sizing pass in plain arithmetic, one writing pass.
//!
//! The bytes are exactly what prost writes for [`super::builder::build_resource_metrics`]
//! (fields in tag order, proto3 defaults left out, oneof members always written); a test
//! compares the two byte for byte on generated polls.
//!
//! Protobuf concatenation merges messages, so requests written here can be joined by
//! appending: an `ExportMetricsServiceRequest` is only its repeated field 1.

use prost::encoding::{encode_varint, encoded_len_varint};

use super::builder::{autostart, collect, Collected, Point, Value};
use crate::schema::definitions::{
    MetricDef, MetricKind, EXPECTED, GROUP, PROCESS, SCOPE_NAME, SCOPE_VERSION,
};
use crate::schema::MetricToggles;
use crate::scrape::outcome::PollOutcome;

/// Wire types of the protobuf encoding.
const LEN: u8 = 2;
const I64: u8 = 1;
const VARINT: u8 = 0;

/// A field key of a tag below 16: one byte.
const fn key(tag: u8, wire_type: u8) -> u8 {
    (tag << 3) | wire_type
}

/// Appends one poll as field 1 (`resource_metrics`) of an `ExportMetricsServiceRequest`;
/// returns its data points.
pub fn encode_resource_metrics(
    outcome: &PollOutcome,
    toggles: &MetricToggles,
    out: &mut Vec<u8>,
) -> u64 {
    let collected = collect(outcome, toggles);
    Writer::new(&collected).write_request_field(out)
}

/// Sizes of one resource, computed once and used while writing.
struct Writer<'c, 'a> {
    collected: &'c Collected<'a>,
    resource_len: usize,
    scope_len: usize,
    /// The every-point attributes as whole `attributes` fields, written once and copied.
    common: Vec<u8>,
    /// Per metric with points, in output order: its definition, points, the length of its
    /// gauge or sum, and of its body.
    metrics: Vec<(&'static MetricDef, &'c [Point<'a>], usize, usize)>,
    scope_metrics_len: usize,
    resource_metrics_len: usize,
}

impl<'c, 'a> Writer<'c, 'a> {
    fn new(collected: &'c Collected<'a>) -> Self {
        let resource_len = collected
            .resource
            .iter()
            .map(|&(k, v)| message_field_len(key_value_len(k, v)))
            .sum();
        let scope_len = string_field_len(SCOPE_NAME) + string_field_len(SCOPE_VERSION);
        let mut common = Vec::new();
        for &(k, v) in &collected.on_every_point {
            write_key_value(&mut common, key(7, LEN), k, v);
        }
        let mut writer = Writer {
            collected,
            resource_len,
            scope_len,
            common,
            metrics: Vec::with_capacity(collected.points.len()),
            scope_metrics_len: 0,
            resource_metrics_len: 0,
        };
        for (def, points) in collected.metrics() {
            let points_len: usize = points
                .iter()
                .map(|p| message_field_len(writer.point_len(p)))
                .sum();
            let data_len = match def.kind {
                MetricKind::Gauge => points_len,
                // aggregation_temporality = 2 (an enum, never 0 here: one key byte, one value
                // byte), is_monotonic = 3 (left out when false).
                MetricKind::Sum { monotonic, .. } => points_len + 2 + 2 * usize::from(monotonic),
            };
            let len = string_field_len(def.name)
                + string_field_len(def.description)
                + string_field_len(def.unit)
                + message_field_len(data_len);
            writer.metrics.push((def, points, data_len, len));
        }
        writer.scope_metrics_len = message_field_len(scope_len)
            + writer
                .metrics
                .iter()
                .map(|&(_, _, _, len)| message_field_len(len))
                .sum::<usize>();
        writer.resource_metrics_len =
            message_field_len(resource_len) + message_field_len(writer.scope_metrics_len);
        writer
    }

    fn write_request_field(&self, out: &mut Vec<u8>) -> u64 {
        out.reserve(message_field_len(self.resource_metrics_len));
        // ExportMetricsServiceRequest.resource_metrics = 1
        write_len_prefix(out, key(1, LEN), self.resource_metrics_len);
        // ResourceMetrics.resource = 1
        write_len_prefix(out, key(1, LEN), self.resource_len);
        for &(k, v) in &self.collected.resource {
            // Resource.attributes = 1
            write_key_value(out, key(1, LEN), k, v);
        }
        // ResourceMetrics.scope_metrics = 2
        write_len_prefix(out, key(2, LEN), self.scope_metrics_len);
        // ScopeMetrics.scope = 1: InstrumentationScope.name = 1, .version = 2
        write_len_prefix(out, key(1, LEN), self.scope_len);
        write_string(out, key(1, LEN), SCOPE_NAME);
        write_string(out, key(2, LEN), SCOPE_VERSION);
        let mut points = 0u64;
        for &(def, metric_points, data_len, len) in &self.metrics {
            // ScopeMetrics.metrics = 2
            write_len_prefix(out, key(2, LEN), len);
            // Metric.name = 1, .description = 2, .unit = 3, .gauge = 5 or .sum = 7
            write_string(out, key(1, LEN), def.name);
            write_string(out, key(2, LEN), def.description);
            write_string(out, key(3, LEN), def.unit);
            let data_tag = match def.kind {
                MetricKind::Gauge => 5,
                MetricKind::Sum { .. } => 7,
            };
            write_len_prefix(out, key(data_tag, LEN), data_len);
            for point in metric_points {
                // Gauge.data_points = 1, Sum.data_points = 1
                self.write_point(out, point);
            }
            if let MetricKind::Sum { monotonic, .. } = def.kind {
                // Sum.aggregation_temporality = 2, .is_monotonic = 3
                let temporality = self.collected.aggregation_temporality(def.id) as u64;
                out.push(key(2, VARINT));
                encode_varint(temporality, out);
                if monotonic {
                    out.push(key(3, VARINT));
                    out.push(1);
                }
            }
            points += metric_points.len() as u64;
        }
        points
    }

    /// A `NumberDataPoint`: start_time_unix_nano = 2 and time_unix_nano = 3 (fixed64, left out
    /// when 0), as_double = 4 (double) or as_int = 6 (sfixed64), a oneof member: always
    /// written, eight bytes either way, attributes = 7 in
    /// [`Collected::attributes`] order (`autostart` last, a string), then `expected` as a bool.
    fn point_len(&self, point: &Point<'_>) -> usize {
        let fixed64 = |value: u64| if value != 0 { 9 } else { 0 };
        let time = fixed64(point.start_time_unix_nano) + fixed64(self.collected.time_unix_nano);
        let process = point.process.map_or(0, |(name, group)| {
            message_field_len(key_value_len(PROCESS.key, name))
                + message_field_len(key_value_len(GROUP.key, group))
        });
        let label = point
            .label
            .map_or(0, |(k, v)| message_field_len(key_value_len(k, v)));
        let autostart = point
            .autostart
            .map(autostart)
            .map_or(0, |(k, v)| message_field_len(key_value_len(k, v)));
        let expected = point
            .expected
            .map_or(0, |_| message_field_len(bool_key_value_len(EXPECTED.key)));
        time + 9 + self.common.len() + process + label + autostart + expected
    }

    fn write_point(&self, out: &mut Vec<u8>, point: &Point<'a>) {
        write_len_prefix(out, key(1, LEN), self.point_len(point));
        if point.start_time_unix_nano != 0 {
            out.push(key(2, I64));
            out.extend_from_slice(&point.start_time_unix_nano.to_le_bytes());
        }
        let time = self.collected.time_unix_nano;
        if time != 0 {
            out.push(key(3, I64));
            out.extend_from_slice(&time.to_le_bytes());
        }
        match point.value {
            Value::Double(v) => {
                out.push(key(4, I64));
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Int(v) => {
                out.push(key(6, I64));
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.extend_from_slice(&self.common);
        if let Some((name, group)) = point.process {
            write_key_value(out, key(7, LEN), PROCESS.key, name);
            write_key_value(out, key(7, LEN), GROUP.key, group);
        }
        if let Some((k, v)) = point.label {
            write_key_value(out, key(7, LEN), k, v);
        }
        if let Some((k, v)) = point.autostart.map(autostart) {
            write_key_value(out, key(7, LEN), k, v);
        }
        if let Some(expected) = point.expected {
            write_bool_key_value(out, key(7, LEN), EXPECTED.key, expected);
        }
    }
}

/// A `KeyValue` with a string `AnyValue`: key = 1 (left out when empty), value = 2 holding
/// string_value = 1 (a oneof member: written even when empty).
fn key_value_len(k: &str, v: &str) -> usize {
    string_field_len(k) + message_field_len(message_field_len(v.len()))
}

fn write_key_value(out: &mut Vec<u8>, field_key: u8, k: &str, v: &str) {
    write_len_prefix(out, field_key, key_value_len(k, v));
    write_string(out, key(1, LEN), k);
    write_len_prefix(out, key(2, LEN), message_field_len(v.len()));
    write_len_prefix(out, key(1, LEN), v.len());
    out.extend_from_slice(v.as_bytes());
}

/// A `KeyValue` with a bool `AnyValue`: key = 1 (left out when empty), value = 2 holding
/// bool_value = 2 (a oneof member: written even when false), two bytes.
fn bool_key_value_len(k: &str) -> usize {
    string_field_len(k) + message_field_len(2)
}

fn write_bool_key_value(out: &mut Vec<u8>, field_key: u8, k: &str, v: bool) {
    write_len_prefix(out, field_key, bool_key_value_len(k));
    write_string(out, key(1, LEN), k);
    write_len_prefix(out, key(2, LEN), 2);
    out.push(key(2, VARINT));
    out.push(u8::from(v));
}

/// A proto3 string field: absent when empty.
fn string_field_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        message_field_len(s.len())
    }
}

fn write_string(out: &mut Vec<u8>, field_key: u8, s: &str) {
    if !s.is_empty() {
        write_len_prefix(out, field_key, s.len());
        out.extend_from_slice(s.as_bytes());
    }
}

/// A length-delimited field of a one-byte key: key, length, body.
fn message_field_len(body: usize) -> usize {
    1 + encoded_len_varint(body as u64) + body
}

fn write_len_prefix(out: &mut Vec<u8>, field_key: u8, len: usize) {
    out.push(field_key);
    encode_varint(len as u64, out);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::metrics::builder::build_resource_metrics;
    use crate::schema::definitions::SUPERVISORD_SERVER;
    use crate::schema::MetricId;
    use crate::scrape::outcome::{
        CountPoint, Counts, MonitoredProcess, PollData, ProgramResources, Resources, TargetIdentity,
    };
    use crate::settings::Temporality;
    use crate::vocab::Status;
    use crate::vocab::{ProcessInfo, ProcessState, SupervisorState};

    fn prost_bytes(outcome: &PollOutcome, t: &MetricToggles) -> Vec<u8> {
        ExportMetricsServiceRequest {
            resource_metrics: vec![build_resource_metrics(outcome, t)],
        }
        .encode_to_vec()
    }

    fn ours(outcome: &PollOutcome, t: &MetricToggles) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let points = encode_resource_metrics(outcome, t, &mut out);
        (out, points)
    }

    fn process(name: &str, group: &str, state: ProcessState, start: i64) -> MonitoredProcess {
        MonitoredProcess {
            info: ProcessInfo {
                name: name.into(),
                group: group.into(),
                state,
                start,
                now: start + 3_600,
                stop: 0,
                exitstatus: -1,
                pid: 4242,
                ..Default::default()
            },
            status: Status::Up,
            autostart: None,
        }
    }

    fn outcome(
        name: &str,
        attributes: Vec<(String, String)>,
        time: u64,
        result: Result<PollData, String>,
    ) -> PollOutcome {
        // Every point repeats the server name and the user's attributes, one key twice, as the
        // Datadog format sends them.
        let mut point_attributes = vec![(SUPERVISORD_SERVER.key.to_string(), name.to_string())];
        point_attributes.extend(attributes.iter().cloned());
        if let Some((k, _)) = attributes.first() {
            point_attributes.push((k.clone(), "again".into()));
        }
        PollOutcome {
            target: Arc::new(TargetIdentity {
                name: name.into(),
                attributes,
                point_attributes,
            }),
            time_unix_nano: time,
            result,
        }
    }

    /// The outcome without point attributes (the native format) and as it is.
    fn both(outcome: &PollOutcome) -> [PollOutcome; 2] {
        let mut bare = outcome.clone();
        bare.target = Arc::new(TargetIdentity {
            point_attributes: Vec::new(),
            ..(*outcome.target).clone()
        });
        [bare, outcome.clone()]
    }

    fn assert_same(outcome: &PollOutcome) {
        let mut toggles = MetricToggles::default();
        for o in both(outcome) {
            let (bytes, points) = ours(&o, &toggles);
            let expected = prost_bytes(&o, &toggles);
            assert_eq!(bytes, expected, "{:?}", o.target.point_attributes);
            let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
            let counted: usize = decoded.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .map(|m| {
                    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                    match &m.data {
                        Some(Data::Gauge(g)) => g.data_points.len(),
                        Some(Data::Sum(s)) => s.data_points.len(),
                        _ => 0,
                    }
                })
                .sum();
            assert_eq!(points, counted as u64);
        }
        toggles
            .set_enabled(MetricId::ProcessState.name(), false)
            .unwrap();
        toggles
            .set_enabled(MetricId::CanConnect.name(), false)
            .unwrap();
        toggles
            .set_enabled(MetricId::ProcessExits.name(), false)
            .unwrap();
        toggles
            .set_enabled(MetricId::ProcessMemoryVirtual.name(), false)
            .unwrap();
        assert_eq!(ours(outcome, &toggles).0, prost_bytes(outcome, &toggles));
        toggles
            .set_enabled(MetricId::ProcessCpuTime.name(), false)
            .unwrap();
        assert_eq!(ours(outcome, &toggles).0, prost_bytes(outcome, &toggles));
    }

    fn count(name: &str, expected: Option<bool>, start: u64, value: u64) -> CountPoint {
        CountPoint {
            name: name.into(),
            group: format!("{name}-group"),
            expected,
            start_time_unix_nano: start,
            value,
        }
    }

    /// Restarts and exits (with `expected` both ways) in the given temporalities, start times
    /// and values at the edges (0, which proto3 leaves out, and past i64).
    fn counts(restarts: Temporality, exits: Temporality) -> (Counts, Counts) {
        (
            Counts {
                temporality: restarts,
                points: vec![
                    count("web", None, 1_700_000_000_000_000_000, 3),
                    count("wörker:0", None, 0, 0),
                    count("", None, u64::MAX, u64::MAX),
                ],
            },
            Counts {
                temporality: exits,
                points: vec![
                    count("web", Some(true), 5, 1),
                    count("web", Some(false), 5, 0),
                    count("", Some(false), 0, 1 << 40),
                ],
            },
        )
    }

    #[test]
    fn sums_encode_as_prost_does_in_both_temporalities() {
        let both_ways = [Temporality::Cumulative, Temporality::Delta];
        for restarts_temporality in both_ways {
            for exits_temporality in both_ways {
                let (restarts, exits) = counts(restarts_temporality, exits_temporality);
                let data = PollData {
                    processes: vec![process("web", "web", ProcessState::Running, 100)],
                    restarts,
                    exits,
                    ..Default::default()
                };
                let o = outcome("sums", vec![("env".into(), "prod".into())], 9, Ok(data));
                assert_same(&o);
                let decoded = ExportMetricsServiceRequest::decode(
                    ours(&o, &MetricToggles::default()).0.as_slice(),
                )
                .unwrap();
                let sums = decoded.resource_metrics[0].scope_metrics[0]
                    .metrics
                    .iter()
                    .filter(|m| {
                        matches!(
                            m.data,
                            Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(
                                _
                            ))
                        )
                    })
                    .count();
                assert_eq!(sums, 2);
            }
        }
        // A sum alone, without any other metric or attribute.
        let (restarts, _) = counts(Temporality::Delta, Temporality::Delta);
        let data = PollData {
            restarts,
            ..Default::default()
        };
        assert_same(&outcome("", vec![], 0, Ok(data)));
    }

    /// Readings at the edges: zeros (which proto3 would leave out were they not oneof members
    /// or start times), values past i64 and f64's odd ones, descriptors read and not.
    fn resources(cpu_temporality: Temporality) -> Resources {
        let program = |name: &str, open_fds: Option<u64>| ProgramResources {
            name: name.into(),
            group: format!("{name}-group"),
            cpu_user_seconds: 12.75,
            cpu_system_seconds: 0.01,
            cpu_start_time_unix_nano: 1_700_000_000_000_000_000,
            memory_usage_bytes: 512 << 20,
            memory_virtual_bytes: 4 << 30,
            threads: 12,
            open_fds,
            processes: 5,
        };
        Resources {
            cpu_temporality,
            programs: vec![
                program("web", Some(64)),
                program("wörker:0", None),
                ProgramResources {
                    name: String::new(),
                    group: String::new(),
                    ..ProgramResources::default()
                },
                ProgramResources {
                    cpu_user_seconds: f64::MAX,
                    cpu_system_seconds: -0.0,
                    cpu_start_time_unix_nano: u64::MAX,
                    memory_usage_bytes: u64::MAX,
                    memory_virtual_bytes: 1 << 63,
                    threads: u64::MAX,
                    open_fds: Some(u64::MAX),
                    processes: i64::MAX as u64,
                    ..program("big", Some(0))
                },
            ],
        }
    }

    #[test]
    fn resources_encode_as_prost_does_in_both_temporalities() {
        for temporality in [Temporality::Cumulative, Temporality::Delta] {
            let (restarts, exits) = counts(temporality, Temporality::Delta);
            let data = PollData {
                processes: vec![process("web", "web", ProcessState::Running, 100)],
                restarts,
                exits,
                resources: resources(temporality),
                ..Default::default()
            };
            let o = outcome("res", vec![("env".into(), "prod".into())], 9, Ok(data));
            assert_same(&o);
            let decoded = ExportMetricsServiceRequest::decode(
                ours(&o, &MetricToggles::default()).0.as_slice(),
            )
            .unwrap();
            let names: Vec<_> = decoded.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            for id in crate::schema::definitions::PROGRAM_RESOURCES {
                assert!(names.contains(&id.name()), "{}", id.name());
            }
        }
        // Resources alone, without any other metric or attribute, at time 0.
        let data = PollData {
            resources: resources(Temporality::Delta),
            ..Default::default()
        };
        assert_same(&outcome("", vec![], 0, Ok(data)));
        // A reading of nothing but zeros.
        let data = PollData {
            resources: Resources {
                cpu_temporality: Temporality::Cumulative,
                programs: vec![ProgramResources {
                    open_fds: Some(0),
                    ..ProgramResources::default()
                }],
            },
            ..Default::default()
        };
        assert_same(&outcome("zero", vec![], 1, Ok(data)));
    }

    #[test]
    fn a_poll_encodes_as_prost_encodes_its_structs() {
        // With and without `autostart`, as a target whose configuration covers some programs.
        let with_autostart = |autostart, p: MonitoredProcess| MonitoredProcess {
            autostart: Some(autostart),
            ..p
        };
        let data = PollData {
            processes: vec![
                process("web", "web", ProcessState::Running, 1_700_000_000),
                with_autostart(
                    true,
                    process("wörker:0", "wörker", ProcessState::Backoff, 0),
                ),
                with_autostart(false, process("", "", ProcessState::Unknown, 5)),
                with_autostart(false, process("off", "off", ProcessState::Stopped, 0)),
            ],
            supervisor_state: Some(SupervisorState::Running),
            identification: Some("supervisor".into()),
            version: Some("4.3.0".into()),
            ..Default::default()
        };
        let attributes = vec![
            ("env".into(), "prod".into()),
            ("empty".into(), String::new()),
        ];
        assert_same(&outcome(
            "web-1",
            attributes,
            1_732_000_000_123_456_789,
            Ok(data),
        ));
    }

    #[test]
    fn failures_time_zero_and_empty_polls_encode_as_prost_does() {
        assert_same(&outcome("down", vec![], 42, Err("refused".into())));
        assert_same(&outcome("", vec![], 0, Ok(PollData::default())));
    }

    #[test]
    fn requests_join_by_concatenation() {
        let a = outcome("a", vec![], 1, Err("x".into()));
        let b = outcome("b", vec![], 2, Ok(PollData::default()));
        let toggles = MetricToggles::default();
        let mut joined = ours(&a, &toggles).0;
        joined.extend(ours(&b, &toggles).0);
        let decoded = ExportMetricsServiceRequest::decode(joined.as_slice()).unwrap();
        assert_eq!(
            decoded.resource_metrics,
            [
                build_resource_metrics(&a, &toggles),
                build_resource_metrics(&b, &toggles)
            ]
        );
    }

    fn any_state() -> impl Strategy<Value = ProcessState> {
        prop::sample::select(ProcessState::ALL.to_vec())
    }

    fn any_temporality() -> impl Strategy<Value = Temporality> {
        prop::sample::select(vec![Temporality::Cumulative, Temporality::Delta])
    }

    fn any_counts() -> impl Strategy<Value = Counts> {
        let point = (
            "\\PC{0,40}",
            "\\PC{0,20}",
            prop::option::of(any::<bool>()),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(name, group, expected, start_time_unix_nano, value)| CountPoint {
                    name,
                    group,
                    expected,
                    start_time_unix_nano,
                    value,
                },
            );
        (any_temporality(), prop::collection::vec(point, 0..10)).prop_map(
            |(temporality, points)| Counts {
                temporality,
                points,
            },
        )
    }

    fn any_resources() -> impl Strategy<Value = Resources> {
        let program = (
            ("\\PC{0,40}", "\\PC{0,20}"),
            (any::<f64>(), any::<f64>(), any::<u64>()),
            (any::<u64>(), any::<u64>(), any::<u64>()),
            (prop::option::of(any::<u64>()), any::<u64>()),
        )
            .prop_map(
                |((name, group), (user, system, start), (rss, vms, threads), (fds, processes))| {
                    ProgramResources {
                        name,
                        group,
                        cpu_user_seconds: user,
                        cpu_system_seconds: system,
                        cpu_start_time_unix_nano: start,
                        memory_usage_bytes: rss,
                        memory_virtual_bytes: vms,
                        threads,
                        open_fds: fds,
                        processes,
                    }
                },
            );
        (any_temporality(), prop::collection::vec(program, 0..10)).prop_map(
            |(cpu_temporality, programs)| Resources {
                cpu_temporality,
                programs,
            },
        )
    }

    proptest! {
        #[test]
        fn generated_polls_encode_as_prost_does(
            names in prop::collection::vec(("\\PC{0,200}", "\\PC{0,20}", any_state(), any::<i64>(), prop::option::of(any::<bool>())), 0..40),
            target in "\\PC{0,300}",
            time in any::<u64>(),
            state in prop::option::of(prop::sample::select(SupervisorState::ALL.to_vec())),
            restarts in any_counts(),
            exits in any_counts(),
            resources in any_resources(),
        ) {
            let processes = names
                .iter()
                .map(|(n, g, s, start, autostart)| MonitoredProcess {
                    autostart: *autostart,
                    ..process(n, g, *s, *start)
                })
                .collect();
            let mut data = PollData {
                processes,
                supervisor_state: state,
                identification: Some(target.clone()),
                version: None,
                ..Default::default()
            };
            data.restarts = restarts;
            data.exits = exits;
            data.resources = resources;
            let o = outcome(&target, vec![(target.clone(), "v".repeat(150))], time, Ok(data));
            let toggles = MetricToggles::default();
            for o in both(&o) {
                prop_assert_eq!(ours(&o, &toggles).0, prost_bytes(&o, &toggles));
            }
        }
    }
}
