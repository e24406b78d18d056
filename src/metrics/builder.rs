//! Poll outcomes → OTLP: one `ResourceMetrics` per target, one scope, one `Metric` per enabled
//! metric holding all of its points: a `Gauge`, or for the counts the scrape layer keeps
//! (`PollData::restarts`, `PollData::exits`) and the programs' CPU time
//! (`PollData::resources`) a monotonic `Sum` with the temporality they were made in.
//!
//! A poll is first [`collect`]ed into borrowed points (which metrics, which values, which
//! attributes: the one place that decides), then turned into either the generated OTLP structs
//! ([`build_request`], for the debug and JSON outputs and the golden tests) or straight into
//! protobuf bytes ([`super::encode`], what the OTLP exporters send). Names, units and attribute
//! keys come from the table in [`super::definitions`]; nothing here spells a metric name or
//! attribute key.
//!
//! This runs for every target on every interval: collecting copies no string, and a disabled
//! metric costs one branch.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::schema::definitions::{
    self as defs, AttributeDef, CpuMode, MetricId, MetricKind, METRICS,
};
use crate::schema::MetricToggles;
use crate::scrape::outcome::{
    Counts, PollData, PollOutcome, ProgramResources, Resources, TargetIdentity,
};
use crate::settings::Temporality;
use crate::vocab::Status;
use crate::vocab::{ProcessState, SupervisorState};

/// Builds the request for one round of polls.
pub fn build_request(
    outcomes: &[PollOutcome],
    toggles: &MetricToggles,
) -> ExportMetricsServiceRequest {
    let mut resource_metrics = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        resource_metrics.push(build_resource_metrics(outcome, toggles));
    }
    ExportMetricsServiceRequest { resource_metrics }
}

/// The metrics of one poll of one target.
pub fn build_resource_metrics(outcome: &PollOutcome, toggles: &MetricToggles) -> ResourceMetrics {
    collect(outcome, toggles).to_resource_metrics()
}

/// One attribute, borrowed: key and string value.
pub(crate) type Attribute<'a> = (&'a str, &'a str);

/// A point's value: OTLP's `as_int` or `as_double`, as the metric's `value_type` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Double(f64),
}

impl Value {
    /// An unsigned reading as OTLP's signed int: no count or size reaches 2^63, and one that
    /// did would saturate rather than wrap.
    fn saturating(value: u64) -> Value {
        Value::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

/// One data point before it becomes OTLP. Its attributes, in order: the every-point ones (if
/// any), then `process` and `group` for per-process metrics, then `label`, then `autostart`,
/// then `expected`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point<'a> {
    pub value: Value,
    /// Process name and group name.
    pub process: Option<(&'a str, &'a str)>,
    /// The one-hot dimension (status, process state or supervisor state), or the CPU mode.
    pub label: Option<Attribute<'static>>,
    /// Sums only: where the count starts; 0 (left out) for gauges.
    pub start_time_unix_nano: u64,
    /// The `autostart` of the one-hot status and state points, written as the string `true` or
    /// `false`; `None` (left out) elsewhere and while unknown.
    pub autostart: Option<bool>,
    /// The exit count's `expected`, a boolean attribute.
    pub expected: Option<bool>,
}

/// Everything one poll exports, borrowed from its outcome.
pub(crate) struct Collected<'a> {
    pub time_unix_nano: u64,
    pub resource: Vec<Attribute<'a>>,
    /// Put first on every point, in order (Datadog format: `supervisord_server`, then the
    /// user's tags and `service`, where a key may repeat).
    pub on_every_point: Vec<Attribute<'a>>,
    /// Indexed by `MetricId as usize`; a metric without points is left out of the output.
    pub points: [Vec<Point<'a>>; MetricId::ALL.len()],
    /// Indexed by `MetricId as usize`: the temporality of a sum's points (as the scrape layer
    /// made them); unused for gauges.
    pub temporality: [Temporality; MetricId::ALL.len()],
}

impl<'a> Collected<'a> {
    /// The point's attributes in output order.
    pub fn attributes(&self, point: &Point<'a>) -> impl Iterator<Item = Attribute<'a>> + '_ {
        let process = point
            .process
            .into_iter()
            .flat_map(|(name, group)| [(defs::PROCESS.key, name), (defs::GROUP.key, group)]);
        self.on_every_point
            .iter()
            .copied()
            .chain(process)
            .chain(point.label)
            .chain(point.autostart.map(autostart))
    }

    /// The OTLP `aggregation_temporality` of a sum's points.
    pub fn aggregation_temporality(&self, id: MetricId) -> AggregationTemporality {
        match self.temporality.get(id as usize) {
            Some(Temporality::Delta) => AggregationTemporality::Delta,
            Some(Temporality::Cumulative) | None => AggregationTemporality::Cumulative,
        }
    }

    /// The metrics that have points, with their definitions, in table order.
    pub fn metrics(&self) -> impl Iterator<Item = (&'static defs::MetricDef, &[Point<'a>])> {
        METRICS
            .iter()
            .zip(self.points.iter())
            .filter(|(_, points)| !points.is_empty())
            .map(|(def, points)| (def, points.as_slice()))
    }

    fn to_resource_metrics(&self) -> ResourceMetrics {
        let metrics = self
            .metrics()
            .map(|(def, points)| {
                let data_points = points.iter().map(|p| self.to_point(p)).collect();
                let data = match def.kind {
                    MetricKind::Gauge => metric::Data::Gauge(Gauge { data_points }),
                    MetricKind::Sum { monotonic, .. } => metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: self.aggregation_temporality(def.id) as i32,
                        is_monotonic: monotonic,
                    }),
                };
                Metric {
                    name: def.name.to_string(),
                    description: def.description.to_string(),
                    unit: def.unit.to_string(),
                    metadata: Vec::new(),
                    data: Some(data),
                }
            })
            .collect();
        ResourceMetrics {
            resource: Some(Resource {
                attributes: self
                    .resource
                    .iter()
                    .map(|&(k, v)| key_value(k, v))
                    .collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: defs::SCOPE_NAME.to_string(),
                    version: defs::SCOPE_VERSION.to_string(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }

    fn to_point(&self, point: &Point<'a>) -> NumberDataPoint {
        let expected = point
            .expected
            .map(|expected| bool_key_value(defs::EXPECTED.key, expected));
        NumberDataPoint {
            attributes: self
                .attributes(point)
                .map(|(k, v)| key_value(k, v))
                .chain(expected)
                .collect(),
            start_time_unix_nano: point.start_time_unix_nano,
            time_unix_nano: self.time_unix_nano,
            value: Some(match point.value {
                Value::Int(v) => number_data_point::Value::AsInt(v),
                Value::Double(v) => number_data_point::Value::AsDouble(v),
            }),
            ..Default::default()
        }
    }
}

/// What one poll exports: the one place that decides which points exist.
pub(crate) fn collect<'a>(outcome: &'a PollOutcome, toggles: &'a MetricToggles) -> Collected<'a> {
    let target = outcome.target.as_ref();
    let on_every_point = target
        .point_attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut points = PointsBuilder {
        toggles,
        points: Default::default(),
        temporality: Default::default(),
    };
    let resource = match &outcome.result {
        Ok(data) => {
            points.reserve_for(data);
            record_poll(&mut points, data);
            resource_attributes(
                target,
                data.identification.as_deref(),
                data.version.as_deref(),
            )
        }
        Err(_) => {
            // A failed poll knows nothing but that it failed: "down" is a point, not silence.
            points.record_can_connect(false);
            resource_attributes(target, None, None)
        }
    };
    Collected {
        time_unix_nano: outcome.time_unix_nano,
        resource,
        on_every_point,
        points: points.points,
        temporality: points.temporality,
    }
}

fn record_poll<'a>(points: &mut PointsBuilder<'a>, data: &'a PollData) {
    points.record_can_connect(true);

    let mut counts = StatusCounts::default();
    for process in &data.processes {
        counts.add(process.status);
    }
    for status in Status::ALL {
        points.record_process_count(status, counts.get(status));
    }

    for (index, process) in data.processes.iter().enumerate() {
        let info = &process.info;
        let identity = (info.name.as_str(), info.group.as_str());
        points.record_process(MetricId::ProcessUptime, identity, data.uptime(index), None);
        points.record_process_status(identity, process.status, process.autostart);
        points.record_process_state(identity, info.state, process.autostart);
        points.record_process(MetricId::ProcessExitStatus, identity, info.exitstatus, None);
        if let Some(start) = info.start_time() {
            points.record_process(MetricId::ProcessStartTime, identity, start, None);
        }
    }
    points.record_counts(MetricId::ProcessRestarts, &data.restarts);
    points.record_counts(MetricId::ProcessExits, &data.exits);
    points.record_resources(&data.resources);

    if let Some(state) = data.supervisor_state {
        points.record_supervisor_state(state);
    }
    if let Some(offset) = data.clock_offset_seconds {
        points.record_clock_offset(offset);
    }
}

/// supervisor_server, identification and version when known, then the user's attributes.
/// The attributes of a target's resource, shared by its metrics and its log records: the name,
/// supervisord's identification and version when known, then the user's attributes.
pub fn resource_attributes<'a>(
    target: &'a TargetIdentity,
    identification: Option<&'a str>,
    version: Option<&'a str>,
) -> Vec<Attribute<'a>> {
    let mut attributes = Vec::with_capacity(3 + target.attributes.len());
    attributes.push((defs::SUPERVISOR_SERVER.key, target.name.as_str()));
    if let Some(identification) = identification {
        attributes.push((defs::SUPERVISORD_IDENTIFICATION.key, identification));
    }
    if let Some(version) = version {
        attributes.push((defs::SUPERVISORD_VERSION.key, version));
    }
    for (key, value) in &target.attributes {
        // OTLP requires unique keys; ours identify the target, so a user attribute cannot
        // shadow them.
        if defs::RESOURCE_ATTRIBUTES.iter().any(|a| a.key == key) {
            continue;
        }
        attributes.push((key.as_str(), value.as_str()));
    }
    attributes
}

#[derive(Default)]
struct StatusCounts {
    up: i64,
    down: i64,
    unknown: i64,
}

impl StatusCounts {
    fn add(&mut self, status: Status) {
        match status {
            Status::Up => self.up += 1,
            Status::Down => self.down += 1,
            Status::Unknown => self.unknown += 1,
        }
    }

    fn get(&self, status: Status) -> i64 {
        match status {
            Status::Up => self.up,
            Status::Down => self.down,
            Status::Unknown => self.unknown,
        }
    }
}

/// Collects the points of one resource, per metric, skipping disabled metrics.
struct PointsBuilder<'a> {
    toggles: &'a MetricToggles,
    points: [Vec<Point<'a>>; MetricId::ALL.len()],
    temporality: [Temporality; MetricId::ALL.len()],
}

impl<'a> PointsBuilder<'a> {
    /// Sizes each metric's point list for the poll, so recording never regrows.
    fn reserve_for(&mut self, data: &PollData) {
        let processes = data.processes.len();
        for id in MetricId::ALL {
            if !self.toggles.is_enabled(id) {
                continue;
            }
            let per_target = match id {
                MetricId::CanConnect | MetricId::ClockOffset => 1,
                MetricId::ProcessCount => Status::ALL.len(),
                MetricId::SupervisorState => SupervisorState::ALL.len(),
                MetricId::ProcessStatus => processes * Status::ALL.len(),
                MetricId::ProcessState => processes * ProcessState::ALL.len(),
                MetricId::ProcessUptime
                | MetricId::ProcessExitStatus
                | MetricId::ProcessStartTime => processes,
                MetricId::ProcessRestarts => data.restarts.points.len(),
                MetricId::ProcessExits => data.exits.points.len(),
                MetricId::ProcessCpuTime => data.resources.programs.len() * CpuMode::ALL.len(),
                MetricId::ProcessMemoryUsage
                | MetricId::ProcessMemoryVirtual
                | MetricId::ProcessThreadCount
                | MetricId::ProcessOpenFileDescriptors
                | MetricId::ProcessTreeCount => data.resources.programs.len(),
            };
            if let Some(points) = self.points.get_mut(id as usize) {
                points.reserve(per_target);
            }
        }
    }

    fn record_can_connect(&mut self, connected: bool) {
        self.push(MetricId::CanConnect, i64::from(connected), None, None);
    }

    /// supervisord's clock minus the receiver's, a target-level point.
    fn record_clock_offset(&mut self, offset_seconds: i64) {
        self.push(MetricId::ClockOffset, offset_seconds, None, None);
    }

    fn record_process_count(&mut self, status: Status, count: i64) {
        let label = label(&defs::STATUS, status.name());
        self.push(MetricId::ProcessCount, count, None, Some(label));
    }

    fn record_process(
        &mut self,
        id: MetricId,
        process: (&'a str, &'a str),
        value: i64,
        label: Option<Attribute<'static>>,
    ) {
        self.push(id, value, Some(process), label);
    }

    /// One point per status: 1 for `current`, 0 for the others; each with `autostart` when
    /// known.
    fn record_process_status(
        &mut self,
        process: (&'a str, &'a str),
        current: Status,
        autostart: Option<bool>,
    ) {
        if self.toggles.is_enabled(MetricId::ProcessStatus) {
            for status in Status::ALL {
                let label = label(&defs::STATUS, status.name());
                let value = i64::from(status == current);
                self.push_one_hot(MetricId::ProcessStatus, process, value, label, autostart);
            }
        }
    }

    /// One point per supervisord state: 1 for `current`, 0 for the others; each with
    /// `autostart` when known.
    fn record_process_state(
        &mut self,
        process: (&'a str, &'a str),
        current: ProcessState,
        autostart: Option<bool>,
    ) {
        if self.toggles.is_enabled(MetricId::ProcessState) {
            for state in ProcessState::ALL {
                let label = label(&defs::PROCESS_STATE, state.name());
                let value = i64::from(state == current);
                self.push_one_hot(MetricId::ProcessState, process, value, label, autostart);
            }
        }
    }

    /// A point of a process's one-hot metric (enabled: the caller checked).
    fn push_one_hot(
        &mut self,
        id: MetricId,
        process: (&'a str, &'a str),
        value: i64,
        label: Attribute<'static>,
        autostart: Option<bool>,
    ) {
        if let Some(points) = self.points.get_mut(id as usize) {
            points.push(Point {
                value: Value::Int(value),
                process: Some(process),
                label: Some(label),
                start_time_unix_nano: 0,
                autostart,
                expected: None,
            });
        }
    }

    /// A count's points as they are (the scrape layer already made them in the temporality it
    /// was given), as a monotonic sum of that temporality.
    fn record_counts(&mut self, id: MetricId, counts: &'a Counts) {
        if !self.toggles.is_enabled(id) {
            return;
        }
        if let Some(slot) = self.temporality.get_mut(id as usize) {
            *slot = counts.temporality;
        }
        if let Some(points) = self.points.get_mut(id as usize) {
            points.extend(counts.points.iter().map(|count| Point {
                value: Value::saturating(count.value),
                process: Some((count.name.as_str(), count.group.as_str())),
                label: None,
                start_time_unix_nano: count.start_time_unix_nano,
                autostart: None,
                expected: count.expected,
            }));
        }
    }

    /// The running programs' resource readings: CPU time as a monotonic double sum in the
    /// temporality the scrape layer made it in (one point per mode), the rest int gauges; the
    /// descriptor count only where it could be read. Nothing when no program was read.
    fn record_resources(&mut self, resources: &'a Resources) {
        if self.toggles.is_enabled(MetricId::ProcessCpuTime) && !resources.programs.is_empty() {
            if let Some(slot) = self.temporality.get_mut(MetricId::ProcessCpuTime as usize) {
                *slot = resources.cpu_temporality;
            }
            if let Some(points) = self.points.get_mut(MetricId::ProcessCpuTime as usize) {
                points.extend(resources.programs.iter().flat_map(|program| {
                    CpuMode::ALL.map(|mode| Point {
                        value: Value::Double(match mode {
                            CpuMode::User => program.cpu_user_seconds,
                            CpuMode::System => program.cpu_system_seconds,
                        }),
                        process: Some(identity(program)),
                        label: Some(label(&defs::CPU_MODE, mode.name())),
                        start_time_unix_nano: program.cpu_start_time_unix_nano,
                        autostart: None,
                        expected: None,
                    })
                }));
            }
        }
        for program in &resources.programs {
            let process = Some(identity(program));
            let gauges = [
                (
                    MetricId::ProcessMemoryUsage,
                    Some(program.memory_usage_bytes),
                ),
                (
                    MetricId::ProcessMemoryVirtual,
                    Some(program.memory_virtual_bytes),
                ),
                (MetricId::ProcessThreadCount, Some(program.threads)),
                (MetricId::ProcessOpenFileDescriptors, program.open_fds),
                (MetricId::ProcessTreeCount, Some(program.processes)),
            ];
            for (id, value) in gauges {
                if let Some(value) = value {
                    self.push_value(id, Value::saturating(value), process, None);
                }
            }
        }
    }

    /// One point per supervisord state: 1 for `current`, 0 for the others.
    fn record_supervisor_state(&mut self, current: SupervisorState) {
        if self.toggles.is_enabled(MetricId::SupervisorState) {
            for state in SupervisorState::ALL {
                let label = label(&defs::SUPERVISOR_STATE, state.name());
                let value = i64::from(state == current);
                self.push(MetricId::SupervisorState, value, None, Some(label));
            }
        }
    }

    fn push(
        &mut self,
        id: MetricId,
        value: i64,
        process: Option<(&'a str, &'a str)>,
        label: Option<Attribute<'static>>,
    ) {
        self.push_value(id, Value::Int(value), process, label);
    }

    fn push_value(
        &mut self,
        id: MetricId,
        value: Value,
        process: Option<(&'a str, &'a str)>,
        label: Option<Attribute<'static>>,
    ) {
        if !self.toggles.is_enabled(id) {
            return;
        }
        if let Some(points) = self.points.get_mut(id as usize) {
            points.push(Point {
                value,
                process,
                label,
                start_time_unix_nano: 0,
                autostart: None,
                expected: None,
            });
        }
    }
}

/// A program's process and group names.
fn identity(program: &ProgramResources) -> (&str, &str) {
    (program.name.as_str(), program.group.as_str())
}

fn label(def: &'static AttributeDef, value: &'static str) -> Attribute<'static> {
    (def.key, value)
}

/// The `autostart` attribute: the strings `true` and `false` (see [`defs::AUTOSTART`]).
pub(crate) fn autostart(value: bool) -> Attribute<'static> {
    (defs::AUTOSTART.key, if value { "true" } else { "false" })
}

fn key_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn bool_key_value(key: &str, value: bool) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(value)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::scrape::outcome::{CountPoint, MonitoredProcess};
    use crate::vocab::ProcessInfo;

    fn outcome(result: Result<PollData, String>) -> PollOutcome {
        PollOutcome {
            target: Arc::new(TargetIdentity {
                name: "web-1".into(),
                attributes: vec![("env".into(), "prod".into())],
                point_attributes: vec![],
            }),
            time_unix_nano: 42,
            result,
        }
    }

    fn process(name: &str, state: ProcessState, status: Status) -> MonitoredProcess {
        MonitoredProcess {
            info: ProcessInfo {
                name: name.into(),
                group: "g".into(),
                state,
                start: 100,
                now: 160,
                exitstatus: 3,
                ..Default::default()
            },
            status,
            autostart: None,
        }
    }

    fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
        attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            }
        })
    }

    fn points(rm: &ResourceMetrics, id: MetricId) -> &[NumberDataPoint] {
        let metric = rm.scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == id.name());
        match metric.and_then(|m| m.data.as_ref()) {
            Some(metric::Data::Gauge(g)) => &g.data_points,
            _ => &[],
        }
    }

    fn int(p: &NumberDataPoint) -> i64 {
        match p.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            _ => panic!("not an int point"),
        }
    }

    #[test]
    fn failed_poll_is_can_connect_zero_only() {
        let request = build_request(&[outcome(Err("refused".into()))], &MetricToggles::default());
        let rm = &request.resource_metrics[0];
        let metrics = &rm.scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].name, MetricId::CanConnect.name());
        let p = points(rm, MetricId::CanConnect);
        assert_eq!((int(&p[0]), p[0].time_unix_nano), (0, 42));
        let keys: Vec<_> = rm
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(keys, [defs::SUPERVISOR_SERVER.key, "env"]);
    }

    #[test]
    fn one_hot_states_and_counts() {
        let data = PollData {
            processes: vec![
                process("a", ProcessState::Running, Status::Up),
                process("b", ProcessState::Stopped, Status::Down),
            ],
            supervisor_state: Some(SupervisorState::Running),
            identification: Some("supervisor".into()),
            version: Some("4.2.5".into()),
            ..Default::default()
        };
        let request = build_request(&[outcome(Ok(data))], &MetricToggles::default());
        let rm = &request.resource_metrics[0];
        let state = points(rm, MetricId::ProcessState);
        assert_eq!(state.len(), 16);
        let ones: Vec<_> = state
            .iter()
            .filter(|p| int(p) == 1)
            .map(|p| {
                (
                    attr(&p.attributes, defs::PROCESS.key).unwrap(),
                    attr(&p.attributes, defs::PROCESS_STATE.key).unwrap(),
                )
            })
            .collect();
        assert_eq!(ones, [("a", "RUNNING"), ("b", "STOPPED")]);
        let counts: Vec<_> = points(rm, MetricId::ProcessCount)
            .iter()
            .map(|p| (attr(&p.attributes, defs::STATUS.key).unwrap(), int(p)))
            .collect();
        assert_eq!(counts, [("down", 1), ("up", 1), ("unknown", 0)]);
        let uptime: Vec<_> = points(rm, MetricId::ProcessUptime)
            .iter()
            .map(int)
            .collect();
        assert_eq!(uptime, [60, 0]);
        assert_eq!(points(rm, MetricId::SupervisorState).len(), 4);
        assert_eq!(rm.resource.as_ref().unwrap().attributes.len(), 4);
    }

    #[test]
    fn uptimes_are_the_trackers_and_the_clock_offset_is_a_target_point() {
        let mut behind = process("b", ProcessState::Running, Status::Up);
        behind.info.now = 40;
        let processes = vec![process("a", ProcessState::Running, Status::Up), behind];
        // As polled: the tracker's uptimes and the measured offset.
        let data = PollData {
            processes: processes.clone(),
            uptimes: vec![61, 7],
            clock_offset_seconds: Some(-3_600),
            ..Default::default()
        };
        let request = build_request(&[outcome(Ok(data))], &MetricToggles::default());
        let rm = &request.resource_metrics[0];
        let uptime: Vec<_> = points(rm, MetricId::ProcessUptime)
            .iter()
            .map(int)
            .collect();
        assert_eq!(uptime, [61, 7]);
        let offset = points(rm, MetricId::ClockOffset);
        assert_eq!(offset.len(), 1);
        assert_eq!((int(&offset[0]), offset[0].time_unix_nano), (-3_600, 42));
        assert!(offset[0].attributes.is_empty(), "a target-level point");
        // Without a tracker (a one-off poll): `now - start`, never negative; no offset known,
        // no point.
        let data = PollData {
            processes,
            ..Default::default()
        };
        let request = build_request(&[outcome(Ok(data))], &MetricToggles::default());
        let rm = &request.resource_metrics[0];
        let uptime: Vec<_> = points(rm, MetricId::ProcessUptime)
            .iter()
            .map(int)
            .collect();
        assert_eq!(uptime, [60, 0]);
        assert!(points(rm, MetricId::ClockOffset).is_empty());
    }

    #[test]
    fn autostart_rides_on_the_one_hot_points_only_as_a_string() {
        let data = PollData {
            processes: vec![
                MonitoredProcess {
                    autostart: Some(true),
                    ..process("a", ProcessState::Fatal, Status::Down)
                },
                MonitoredProcess {
                    autostart: Some(false),
                    ..process("b", ProcessState::Stopped, Status::Down)
                },
                process("c", ProcessState::Stopped, Status::Down),
            ],
            ..Default::default()
        };
        let request = build_request(&[outcome(Ok(data))], &MetricToggles::default());
        let rm = &request.resource_metrics[0];
        for id in [MetricId::ProcessState, MetricId::ProcessStatus] {
            for p in points(rm, id) {
                let keys: Vec<_> = p.attributes.iter().map(|a| a.key.as_str()).collect();
                let expected = match attr(&p.attributes, defs::PROCESS.key) {
                    Some("a") => Some("true"),
                    Some("b") => Some("false"),
                    _ => None,
                };
                assert_eq!(attr(&p.attributes, defs::AUTOSTART.key), expected);
                // Last, after the one-hot label.
                if expected.is_some() {
                    assert_eq!(keys.last(), Some(&defs::AUTOSTART.key), "{keys:?}");
                    assert_eq!(keys.len(), 4, "{keys:?}");
                } else {
                    assert_eq!(keys.len(), 3, "{keys:?}");
                }
            }
        }
        for id in [
            MetricId::ProcessUptime,
            MetricId::ProcessExitStatus,
            MetricId::ProcessCount,
        ] {
            for p in points(rm, id) {
                assert_eq!(attr(&p.attributes, defs::AUTOSTART.key), None, "{id:?}");
            }
        }
    }

    #[test]
    fn disabled_metrics_are_absent_and_point_attributes_go_on_every_point() {
        let mut toggles = MetricToggles::default();
        toggles
            .set_enabled(MetricId::ProcessState.name(), false)
            .unwrap();
        let data = PollData {
            processes: vec![process("a", ProcessState::Running, Status::Up)],
            ..Default::default()
        };
        let mut o = outcome(Ok(data));
        // As the Datadog loader sets it.
        o.target = Arc::new(TargetIdentity {
            point_attributes: vec![(defs::SUPERVISORD_SERVER.key.into(), "web-1".into())],
            ..(*o.target).clone()
        });
        let request = build_request(&[o], &toggles);
        let rm = &request.resource_metrics[0];
        assert!(points(rm, MetricId::ProcessState).is_empty());
        assert!(points(rm, MetricId::SupervisorState).is_empty());
        for metric in &rm.scope_metrics[0].metrics {
            let Some(metric::Data::Gauge(g)) = &metric.data else {
                panic!("gauge expected")
            };
            for p in &g.data_points {
                assert_eq!(
                    attr(&p.attributes, defs::SUPERVISORD_SERVER.key),
                    Some("web-1")
                );
            }
        }
    }

    fn count(name: &str, expected: Option<bool>, start: u64, value: u64) -> CountPoint {
        CountPoint {
            name: name.into(),
            group: "g".into(),
            expected,
            start_time_unix_nano: start,
            value,
        }
    }

    fn sum_of(rm: &ResourceMetrics, id: MetricId) -> Option<&Sum> {
        let metric = rm.scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == id.name())?;
        match metric.data.as_ref() {
            Some(metric::Data::Sum(s)) => Some(s),
            other => panic!("{} is not a sum: {other:?}", id.name()),
        }
    }

    fn with_counts() -> PollData {
        PollData {
            processes: vec![process("a", ProcessState::Running, Status::Up)],
            restarts: Counts {
                temporality: Temporality::Cumulative,
                points: vec![count("a", None, 7, 2), count("b", None, 8, 0)],
            },
            exits: Counts {
                temporality: Temporality::Delta,
                points: vec![
                    count("a", Some(true), 30, 1),
                    count("a", Some(false), 30, 0),
                ],
            },
            ..Default::default()
        }
    }

    #[test]
    fn counts_are_monotonic_sums_in_their_temporality() {
        let mut o = outcome(Ok(with_counts()));
        o.target = Arc::new(TargetIdentity {
            point_attributes: vec![(defs::SUPERVISORD_SERVER.key.into(), "web-1".into())],
            ..(*o.target).clone()
        });
        let request = build_request(&[o], &MetricToggles::default());
        let rm = &request.resource_metrics[0];

        let restarts = sum_of(rm, MetricId::ProcessRestarts).expect("restarts");
        assert!(restarts.is_monotonic);
        assert_eq!(
            restarts.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let seen: Vec<_> = restarts
            .data_points
            .iter()
            .map(|p| {
                let keys: Vec<_> = p.attributes.iter().map(|a| a.key.as_str()).collect();
                (keys, p.start_time_unix_nano, p.time_unix_nano, int(p))
            })
            .collect();
        let keys = vec![
            defs::SUPERVISORD_SERVER.key,
            defs::PROCESS.key,
            defs::GROUP.key,
        ];
        assert_eq!(seen, [(keys.clone(), 7, 42, 2), (keys, 8, 42, 0)]);

        let exits = sum_of(rm, MetricId::ProcessExits).expect("exits");
        assert!(exits.is_monotonic);
        assert_eq!(
            exits.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        let expected: Vec<_> = exits
            .data_points
            .iter()
            .map(|p| {
                let last = p.attributes.last().unwrap();
                assert_eq!(last.key, defs::EXPECTED.key);
                assert_eq!(
                    attr(&p.attributes, defs::SUPERVISORD_SERVER.key),
                    Some("web-1")
                );
                let value = last.value.as_ref().and_then(|v| v.value.clone());
                (value, int(p))
            })
            .collect();
        assert_eq!(
            expected,
            [
                (Some(any_value::Value::BoolValue(true)), 1),
                (Some(any_value::Value::BoolValue(false)), 0)
            ]
        );
        // Gauges keep no start time.
        assert!(points(rm, MetricId::ProcessUptime)
            .iter()
            .all(|p| p.start_time_unix_nano == 0));
    }

    #[test]
    fn counts_are_left_out_when_disabled_or_empty() {
        let mut toggles = MetricToggles::default();
        toggles
            .set_enabled(MetricId::ProcessExits.name(), false)
            .unwrap();
        let request = build_request(&[outcome(Ok(with_counts()))], &toggles);
        let rm = &request.resource_metrics[0];
        assert!(sum_of(rm, MetricId::ProcessExits).is_none());
        assert_eq!(
            sum_of(rm, MetricId::ProcessRestarts).map(|s| s.data_points.len()),
            Some(2)
        );

        let data = PollData {
            processes: vec![process("a", ProcessState::Running, Status::Up)],
            ..Default::default()
        };
        let request = build_request(&[outcome(Ok(data))], &MetricToggles::default());
        let rm = &request.resource_metrics[0];
        assert!(sum_of(rm, MetricId::ProcessRestarts).is_none());
        assert!(sum_of(rm, MetricId::ProcessExits).is_none());
    }

    fn program(name: &str, open_fds: Option<u64>) -> ProgramResources {
        ProgramResources {
            name: name.into(),
            group: "g".into(),
            cpu_user_seconds: 1.5,
            cpu_system_seconds: 0.25,
            cpu_start_time_unix_nano: 11,
            memory_usage_bytes: 4096,
            memory_virtual_bytes: u64::MAX,
            threads: 3,
            open_fds,
            processes: 2,
        }
    }

    fn with_resources(temporality: Temporality) -> PollData {
        PollData {
            processes: vec![process("a", ProcessState::Running, Status::Up)],
            resources: Resources {
                cpu_temporality: temporality,
                programs: vec![program("a", Some(7)), program("b", None)],
            },
            ..Default::default()
        }
    }

    fn double(p: &NumberDataPoint) -> f64 {
        match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            _ => panic!("not a double point"),
        }
    }

    #[test]
    fn cpu_time_is_a_monotonic_double_sum_per_mode() {
        for (temporality, otlp) in [
            (Temporality::Cumulative, AggregationTemporality::Cumulative),
            (Temporality::Delta, AggregationTemporality::Delta),
        ] {
            let mut o = outcome(Ok(with_resources(temporality)));
            o.target = Arc::new(TargetIdentity {
                point_attributes: vec![(defs::SUPERVISORD_SERVER.key.into(), "web-1".into())],
                ..(*o.target).clone()
            });
            let request = build_request(&[o], &MetricToggles::default());
            let rm = &request.resource_metrics[0];
            let cpu = sum_of(rm, MetricId::ProcessCpuTime).expect("cpu time");
            assert!(cpu.is_monotonic);
            assert_eq!(cpu.aggregation_temporality, otlp as i32);
            let seen: Vec<_> = cpu
                .data_points
                .iter()
                .map(|p| {
                    let keys: Vec<_> = p.attributes.iter().map(|a| a.key.as_str()).collect();
                    assert_eq!(
                        keys,
                        [
                            defs::SUPERVISORD_SERVER.key,
                            defs::PROCESS.key,
                            defs::GROUP.key,
                            defs::CPU_MODE.key
                        ]
                    );
                    assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (11, 42));
                    (
                        attr(&p.attributes, defs::PROCESS.key).unwrap(),
                        attr(&p.attributes, defs::CPU_MODE.key).unwrap(),
                        double(p),
                    )
                })
                .collect();
            assert_eq!(
                seen,
                [
                    ("a", "user", 1.5),
                    ("a", "system", 0.25),
                    ("b", "user", 1.5),
                    ("b", "system", 0.25)
                ]
            );
        }
    }

    #[test]
    fn resource_gauges_are_ints_and_descriptors_only_where_read() {
        let request = build_request(
            &[outcome(Ok(with_resources(Temporality::Cumulative)))],
            &MetricToggles::default(),
        );
        let rm = &request.resource_metrics[0];
        let values = |id: MetricId| -> Vec<_> {
            points(rm, id)
                .iter()
                .map(|p| {
                    assert_eq!(p.start_time_unix_nano, 0);
                    (attr(&p.attributes, defs::PROCESS.key).unwrap(), int(p))
                })
                .collect()
        };
        assert_eq!(
            values(MetricId::ProcessMemoryUsage),
            [("a", 4096), ("b", 4096)]
        );
        // Past i64: saturated, not wrapped.
        assert_eq!(
            values(MetricId::ProcessMemoryVirtual),
            [("a", i64::MAX), ("b", i64::MAX)]
        );
        assert_eq!(values(MetricId::ProcessThreadCount), [("a", 3), ("b", 3)]);
        assert_eq!(values(MetricId::ProcessOpenFileDescriptors), [("a", 7)]);
        assert_eq!(values(MetricId::ProcessTreeCount), [("a", 2), ("b", 2)]);
    }

    #[test]
    fn resources_are_left_out_when_disabled_or_not_read() {
        let mut toggles = MetricToggles::default();
        for id in [MetricId::ProcessCpuTime, MetricId::ProcessThreadCount] {
            toggles.set_enabled(id.name(), false).unwrap();
        }
        let request = build_request(&[outcome(Ok(with_resources(Temporality::Delta)))], &toggles);
        let rm = &request.resource_metrics[0];
        assert!(sum_of(rm, MetricId::ProcessCpuTime).is_none());
        assert!(points(rm, MetricId::ProcessThreadCount).is_empty());
        assert_eq!(points(rm, MetricId::ProcessTreeCount).len(), 2);

        // A remote target: no readings, no resource metric at all.
        let data = PollData {
            processes: vec![process("a", ProcessState::Running, Status::Up)],
            ..Default::default()
        };
        let request = build_request(&[outcome(Ok(data))], &MetricToggles::default());
        let names: Vec<_> = request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        for id in defs::PROGRAM_RESOURCES {
            assert!(!names.contains(&id.name()), "{}", id.name());
        }
    }

    #[test]
    fn user_attributes_cannot_shadow_ours() {
        let mut o = outcome(Err(String::new()));
        o.target = Arc::new(TargetIdentity {
            name: "web-1".into(),
            attributes: vec![(defs::SUPERVISOR_SERVER.key.into(), "other".into())],
            point_attributes: vec![],
        });
        let request = build_request(&[o], &MetricToggles::default());
        let attributes = &request.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert_eq!(attributes.len(), 1);
        assert_eq!(attr(attributes, defs::SUPERVISOR_SERVER.key), Some("web-1"));
    }
}
