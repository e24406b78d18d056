//! Poll outcomes → one OTLP export request.
//!
//! One `ResourceMetrics` per target, one scope, one `Metric` per enabled metric holding all of
//! its points. Every value goes through a typed `record_*` call on [`PointsBuilder`], which
//! reads names, units and attribute keys from the table in [`super::definitions`]; nothing here
//! spells a metric name or attribute key.
//!
//! This runs for every target on every interval, so attribute values are built once per
//! process and cloned into each point, vectors are sized up front, and a disabled metric costs
//! one branch.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::definitions::{self as defs, AttributeDef, MetricId, METRICS};
use super::MetricToggles;
use crate::config::ConfigFormat;
use crate::scrape::outcome::{MonitoredProcess, PollData, PollOutcome, TargetIdentity};
use crate::scrape::status::Status;
use crate::supervisor::model::{ProcessState, SupervisorState};

/// Builds the request for one round of polls.
pub fn build_request(
    outcomes: &[PollOutcome],
    format: ConfigFormat,
    toggles: &MetricToggles,
) -> ExportMetricsServiceRequest {
    let mut resource_metrics = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        resource_metrics.push(build_resource_metrics(outcome, format, toggles));
    }
    ExportMetricsServiceRequest { resource_metrics }
}

/// The metrics of one poll of one target.
pub fn build_resource_metrics(
    outcome: &PollOutcome,
    format: ConfigFormat,
    toggles: &MetricToggles,
) -> ResourceMetrics {
    let target = outcome.target.as_ref();
    let on_every_point = match format {
        ConfigFormat::Datadog => Some(string_attribute(&defs::SUPERVISORD_SERVER, &target.name)),
        ConfigFormat::Native => None,
    };
    let mut points = PointsBuilder::new(toggles, outcome.time_unix_nano, on_every_point);
    let resource = match &outcome.result {
        Ok(data) => {
            points.reserve_for_processes(data.processes.len());
            record_poll(&mut points, data);
            resource(
                target,
                data.identification.as_deref(),
                data.version.as_deref(),
            )
        }
        Err(_) => {
            // A failed poll knows nothing but that it failed: "down" is a point, not silence.
            points.record_can_connect(false);
            resource(target, None, None)
        }
    };
    ResourceMetrics {
        resource: Some(resource),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: defs::SCOPE_NAME.to_string(),
                version: defs::SCOPE_VERSION.to_string(),
                ..Default::default()
            }),
            metrics: points.into_metrics(),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

fn record_poll(points: &mut PointsBuilder<'_>, data: &PollData) {
    points.record_can_connect(true);

    let mut counts = StatusCounts::default();
    for process in &data.processes {
        counts.add(process.status);
    }
    for status in Status::ALL {
        points.record_process_count(status, counts.get(status));
    }

    for process in &data.processes {
        record_process(points, process);
    }

    if let Some(state) = data.supervisor_state {
        points.record_supervisor_state(state);
    }
}

fn record_process(points: &mut PointsBuilder<'_>, process: &MonitoredProcess) {
    let info = &process.info;
    let identity = ProcessAttributes::new(&info.name, &info.group);
    points.record_process_uptime(&identity, info.uptime());
    points.record_process_status(&identity, process.status);
    points.record_process_state(&identity, info.state);
    points.record_process_exit_status(&identity, info.exitstatus);
    if let Some(start) = info.start_time() {
        points.record_process_start_time(&identity, start);
    }
}

/// supervisor_server, identification and version when known, then the user's attributes.
fn resource(
    target: &TargetIdentity,
    identification: Option<&str>,
    version: Option<&str>,
) -> Resource {
    let mut attributes = Vec::with_capacity(3 + target.attributes.len());
    attributes.push(string_attribute(&defs::SUPERVISOR_SERVER, &target.name));
    if let Some(identification) = identification {
        attributes.push(string_attribute(
            &defs::SUPERVISORD_IDENTIFICATION,
            identification,
        ));
    }
    if let Some(version) = version {
        attributes.push(string_attribute(&defs::SUPERVISORD_VERSION, version));
    }
    for (key, value) in &target.attributes {
        // OTLP requires unique keys; ours identify the target, so a user attribute cannot
        // shadow them.
        if defs::RESOURCE_ATTRIBUTES.iter().any(|a| a.key == key) {
            continue;
        }
        attributes.push(KeyValue {
            key: key.clone(),
            value: Some(string_value(value)),
            ..Default::default()
        });
    }
    Resource {
        attributes,
        ..Default::default()
    }
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

/// The attributes that identify one process, built once and cloned into each of its points.
struct ProcessAttributes {
    process: KeyValue,
    group: KeyValue,
}

impl ProcessAttributes {
    fn new(name: &str, group: &str) -> Self {
        ProcessAttributes {
            process: string_attribute(&defs::PROCESS, name),
            group: string_attribute(&defs::GROUP, group),
        }
    }
}

/// Collects the points of one resource, per metric, skipping disabled metrics.
struct PointsBuilder<'a> {
    toggles: &'a MetricToggles,
    time_unix_nano: u64,
    /// Appended to every point (Datadog's `supervisord_server`), when set.
    on_every_point: Option<KeyValue>,
    /// Indexed by `MetricId as usize`.
    points: [Vec<NumberDataPoint>; MetricId::ALL.len()],
}

impl<'a> PointsBuilder<'a> {
    fn new(
        toggles: &'a MetricToggles,
        time_unix_nano: u64,
        on_every_point: Option<KeyValue>,
    ) -> Self {
        PointsBuilder {
            toggles,
            time_unix_nano,
            on_every_point,
            points: Default::default(),
        }
    }

    /// Sizes each metric's point list for `processes` processes, so recording never regrows.
    fn reserve_for_processes(&mut self, processes: usize) {
        for id in MetricId::ALL {
            if !self.toggles.is_enabled(id) {
                continue;
            }
            let per_target = match id {
                MetricId::CanConnect => 1,
                MetricId::ProcessCount => Status::ALL.len(),
                MetricId::SupervisorState => SupervisorState::ALL.len(),
                MetricId::ProcessStatus => processes * Status::ALL.len(),
                MetricId::ProcessState => processes * ProcessState::ALL.len(),
                MetricId::ProcessUptime
                | MetricId::ProcessExitStatus
                | MetricId::ProcessStartTime => processes,
            };
            if let Some(points) = self.points.get_mut(id as usize) {
                points.reserve(per_target);
            }
        }
    }

    fn record_can_connect(&mut self, connected: bool) {
        if self.toggles.is_enabled(MetricId::CanConnect) {
            let attributes = self.attributes(0);
            self.push(MetricId::CanConnect, i64::from(connected), attributes);
        }
    }

    fn record_process_count(&mut self, status: Status, count: i64) {
        if self.toggles.is_enabled(MetricId::ProcessCount) {
            let mut attributes = self.attributes(1);
            attributes.push(string_attribute(&defs::STATUS, status.name()));
            self.push(MetricId::ProcessCount, count, attributes);
        }
    }

    fn record_process_uptime(&mut self, process: &ProcessAttributes, seconds: i64) {
        if self.toggles.is_enabled(MetricId::ProcessUptime) {
            let attributes = self.process_attributes(process, None);
            self.push(MetricId::ProcessUptime, seconds, attributes);
        }
    }

    /// One point per status: 1 for `current`, 0 for the others.
    fn record_process_status(&mut self, process: &ProcessAttributes, current: Status) {
        if self.toggles.is_enabled(MetricId::ProcessStatus) {
            for status in Status::ALL {
                let attributes = self.process_attributes(
                    process,
                    Some(string_attribute(&defs::STATUS, status.name())),
                );
                self.push(
                    MetricId::ProcessStatus,
                    i64::from(status == current),
                    attributes,
                );
            }
        }
    }

    /// One point per supervisord state: 1 for `current`, 0 for the others.
    fn record_process_state(&mut self, process: &ProcessAttributes, current: ProcessState) {
        if self.toggles.is_enabled(MetricId::ProcessState) {
            for state in ProcessState::ALL {
                let attributes = self.process_attributes(
                    process,
                    Some(string_attribute(&defs::PROCESS_STATE, state.name())),
                );
                self.push(
                    MetricId::ProcessState,
                    i64::from(state == current),
                    attributes,
                );
            }
        }
    }

    fn record_process_exit_status(&mut self, process: &ProcessAttributes, exit_status: i64) {
        if self.toggles.is_enabled(MetricId::ProcessExitStatus) {
            let attributes = self.process_attributes(process, None);
            self.push(MetricId::ProcessExitStatus, exit_status, attributes);
        }
    }

    fn record_process_start_time(&mut self, process: &ProcessAttributes, unix_seconds: i64) {
        if self.toggles.is_enabled(MetricId::ProcessStartTime) {
            let attributes = self.process_attributes(process, None);
            self.push(MetricId::ProcessStartTime, unix_seconds, attributes);
        }
    }

    /// One point per supervisord state: 1 for `current`, 0 for the others.
    fn record_supervisor_state(&mut self, current: SupervisorState) {
        if self.toggles.is_enabled(MetricId::SupervisorState) {
            for state in SupervisorState::ALL {
                let mut attributes = self.attributes(1);
                attributes.push(string_attribute(&defs::SUPERVISOR_STATE, state.name()));
                self.push(
                    MetricId::SupervisorState,
                    i64::from(state == current),
                    attributes,
                );
            }
        }
    }

    /// The recorded metrics, in table order; a metric without points is left out.
    fn into_metrics(self) -> Vec<Metric> {
        let mut metrics = Vec::with_capacity(METRICS.len());
        for (def, data_points) in METRICS.iter().zip(self.points) {
            if data_points.is_empty() {
                continue;
            }
            metrics.push(Metric {
                name: def.name.to_string(),
                description: def.description.to_string(),
                unit: def.unit.to_string(),
                metadata: Vec::new(),
                data: Some(metric::Data::Gauge(Gauge { data_points })),
            });
        }
        metrics
    }

    /// An attribute list with room for `own` attributes, starting with the every-point ones.
    fn attributes(&self, own: usize) -> Vec<KeyValue> {
        let mut attributes = Vec::with_capacity(own + 1);
        if let Some(common) = &self.on_every_point {
            attributes.push(common.clone());
        }
        attributes
    }

    fn process_attributes(
        &self,
        process: &ProcessAttributes,
        extra: Option<KeyValue>,
    ) -> Vec<KeyValue> {
        let mut attributes = self.attributes(3);
        attributes.push(process.process.clone());
        attributes.push(process.group.clone());
        attributes.extend(extra);
        attributes
    }

    fn push(&mut self, id: MetricId, value: i64, attributes: Vec<KeyValue>) {
        if let Some(points) = self.points.get_mut(id as usize) {
            points.push(NumberDataPoint {
                attributes,
                time_unix_nano: self.time_unix_nano,
                value: Some(number_data_point::Value::AsInt(value)),
                ..Default::default()
            });
        }
    }
}

fn string_attribute(def: &AttributeDef, value: &str) -> KeyValue {
    KeyValue {
        key: def.key.to_string(),
        value: Some(string_value(value)),
        ..Default::default()
    }
}

fn string_value(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::supervisor::model::ProcessInfo;

    fn outcome(result: Result<PollData, String>) -> PollOutcome {
        PollOutcome {
            target: Arc::new(TargetIdentity {
                name: "web-1".into(),
                attributes: vec![("env".into(), "prod".into())],
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
        let request = build_request(
            &[outcome(Err("refused".into()))],
            ConfigFormat::Native,
            &MetricToggles::default(),
        );
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
        };
        let request = build_request(
            &[outcome(Ok(data))],
            ConfigFormat::Native,
            &MetricToggles::default(),
        );
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
    fn disabled_metrics_are_absent_and_datadog_adds_server_to_points() {
        let mut toggles = MetricToggles::default();
        toggles
            .set_enabled(MetricId::ProcessState.name(), false)
            .unwrap();
        let data = PollData {
            processes: vec![process("a", ProcessState::Running, Status::Up)],
            ..Default::default()
        };
        let request = build_request(&[outcome(Ok(data))], ConfigFormat::Datadog, &toggles);
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

    #[test]
    fn user_attributes_cannot_shadow_ours() {
        let mut o = outcome(Err(String::new()));
        o.target = Arc::new(TargetIdentity {
            name: "web-1".into(),
            attributes: vec![(defs::SUPERVISOR_SERVER.key.into(), "other".into())],
        });
        let request = build_request(&[o], ConfigFormat::Native, &MetricToggles::default());
        let attributes = &request.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert_eq!(attributes.len(), 1);
        assert_eq!(attr(attributes, defs::SUPERVISOR_SERVER.key), Some("web-1"));
    }
}
