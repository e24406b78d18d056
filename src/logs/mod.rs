//! State changes → OTLP log records: one `ResourceLogs` per target (the same resource as its
//! metrics), scope `supervisord-receiver`, one record per change, with the event name,
//! attributes and severity of the table in [`crate::schema::events`].
//!
//! Log volume is small (a record per state change), so the generated structs are built and
//! prost encodes them; the metrics' hand-written encoder exists because a poll is many points.

mod output;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::metrics::resource_attributes;
use crate::schema::definitions::{GROUP, PROCESS, SCOPE_NAME, SCOPE_VERSION, STATUS};
use crate::schema::events::{
    EventId, EXIT_STATUS, EXPECTED, PID, PREVIOUS_STATE, RESTARTED, SPAWNERR, STATE,
    SUPERVISORD_PREVIOUS_STATE, SUPERVISORD_STATE,
};
use crate::scrape::changes::{Changes, ProcessTransition, SupervisorTransition};
use crate::scrape::outcome::TargetIdentity;
use crate::scrape::output::OutputRecord;
use crate::vocab::{ProcessState, SupervisorState};

/// The records of one target's changes, then of its programs' output; `None` when there are
/// none.
///
/// `observed_unix_nano` is when the receiver saw the changes; a record's own time is
/// supervisord's when the change carries one.
pub fn build_resource_logs(
    target: &TargetIdentity,
    identification: Option<&str>,
    version: Option<&str>,
    changes: &Changes,
    output: &[OutputRecord],
    observed_unix_nano: u64,
) -> Option<ResourceLogs> {
    if changes.processes.is_empty() && changes.supervisor.is_none() && output.is_empty() {
        return None;
    }
    let mut records = Vec::with_capacity(changes.processes.len() + 1 + output.len());
    if let Some(change) = &changes.supervisor {
        records.push(supervisor_record(change, observed_unix_nano));
    }
    for change in &changes.processes {
        records.push(process_record(change, observed_unix_nano));
    }
    records.extend(output::output_records(output, observed_unix_nano));
    Some(resource_logs(target, identification, version, records))
}

/// Wraps one target's records: the target's resource (the same as its metrics') and the
/// receiver's scope. What rides on every metric point (Datadog's tags) rides on every record
/// too, so a log search by the same tags finds them.
fn resource_logs(
    target: &TargetIdentity,
    identification: Option<&str>,
    version: Option<&str>,
    mut records: Vec<LogRecord>,
) -> ResourceLogs {
    for record in &mut records {
        record.attributes.extend(
            target
                .point_attributes
                .iter()
                .map(|(key, value)| string(key, value)),
        );
    }
    ResourceLogs {
        resource: Some(Resource {
            attributes: resource_attributes(target, identification, version)
                .into_iter()
                .map(|(k, v)| string(k, v))
                .collect(),
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_string(),
                version: SCOPE_VERSION.to_string(),
                ..Default::default()
            }),
            log_records: records,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// Appends the records of one target's changes as field 1 (`resource_logs`) of an
/// `ExportLogsServiceRequest`, the layout the export layer batches; returns how many records
/// (none written when nothing changed).
pub fn encode_resource_logs(
    target: &TargetIdentity,
    identification: Option<&str>,
    version: Option<&str>,
    changes: &Changes,
    output: &[OutputRecord],
    observed_unix_nano: u64,
    out: &mut Vec<u8>,
) -> u64 {
    let Some(resource) = build_resource_logs(
        target,
        identification,
        version,
        changes,
        output,
        observed_unix_nano,
    ) else {
        return 0;
    };
    let records = resource
        .scope_logs
        .iter()
        .map(|scope| scope.log_records.len() as u64)
        .sum();
    prost::encoding::message::encode(1, &resource, out);
    records
}

/// The severity of a process change.
pub fn process_severity(change: &ProcessTransition) -> SeverityNumber {
    let unexpected_exit = match change.expected {
        Some(expected) => !expected,
        None => change.exit_status.is_some_and(|status| status != 0),
    };
    match change.state {
        ProcessState::Fatal => SeverityNumber::Error,
        ProcessState::Exited if unexpected_exit => SeverityNumber::Error,
        _ if change.restarted && unexpected_exit => SeverityNumber::Error,
        ProcessState::Backoff => SeverityNumber::Warn,
        _ if change.restarted => SeverityNumber::Warn,
        _ => SeverityNumber::Info,
    }
}

fn process_record(change: &ProcessTransition, observed: u64) -> LogRecord {
    let mut attributes = vec![
        string(PROCESS.key, &change.name),
        string(GROUP.key, &change.group),
        string(STATE.key, change.state.name()),
        string(PREVIOUS_STATE.key, change.previous.name()),
        string(STATUS.key, change.status.name()),
    ];
    if let Some(pid) = change.pid {
        attributes.push(int(PID.key, pid));
    }
    if let Some(status) = change.exit_status {
        attributes.push(int(EXIT_STATUS.key, status));
    }
    if let Some(expected) = change.expected {
        attributes.push(boolean(EXPECTED.key, expected));
    }
    if let Some(spawnerr) = &change.spawnerr {
        attributes.push(string(SPAWNERR.key, spawnerr));
    }
    if change.restarted {
        attributes.push(boolean(RESTARTED.key, true));
    }
    record(
        EventId::ProcessStateChange,
        process_severity(change),
        process_body(change),
        attributes,
        change.time_unix_nano,
        observed,
    )
}

/// A line a person reads in a log view: what happened to which process, and the facts that
/// explain it.
pub fn process_body(change: &ProcessTransition) -> String {
    let who = if change.group == change.name {
        change.name.clone()
    } else {
        format!("{}:{}", change.group, change.name)
    };
    let mut body = if change.restarted {
        format!(
            "{who} restarted between two polls and is {} again",
            change.state.name()
        )
    } else {
        format!(
            "{who} is {} (was {})",
            change.state.name(),
            change.previous.name()
        )
    };
    let mut facts = Vec::new();
    if let Some(status) = change.exit_status {
        let how = match change.expected {
            Some(true) => ", expected",
            Some(false) => ", unexpected",
            None => "",
        };
        facts.push(format!("exit status {status}{how}"));
    }
    if let Some(pid) = change.pid {
        facts.push(format!("pid {pid}"));
    }
    if let Some(spawnerr) = &change.spawnerr {
        facts.push(spawnerr.clone());
    }
    if !facts.is_empty() {
        body.push_str(": ");
        body.push_str(&facts.join(", "));
    }
    body
}

fn supervisor_record(change: &SupervisorTransition, observed: u64) -> LogRecord {
    let severity = if change.previous == SupervisorState::Running {
        SeverityNumber::Warn
    } else {
        SeverityNumber::Info
    };
    record(
        EventId::SupervisorStateChange,
        severity,
        format!(
            "supervisord is {} (was {})",
            change.state.name(),
            change.previous.name()
        ),
        vec![
            string(SUPERVISORD_STATE.key, change.state.name()),
            string(SUPERVISORD_PREVIOUS_STATE.key, change.previous.name()),
        ],
        None,
        observed,
    )
}

pub(crate) fn record(
    event: EventId,
    severity: SeverityNumber,
    body: String,
    attributes: Vec<KeyValue>,
    time: Option<u64>,
    observed: u64,
) -> LogRecord {
    LogRecord {
        time_unix_nano: time.unwrap_or(0),
        observed_time_unix_nano: observed,
        severity_number: severity as i32,
        severity_text: severity_text(severity).to_string(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes,
        event_name: if event.def().is_event {
            event.name().to_string()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

fn severity_text(severity: SeverityNumber) -> &'static str {
    match severity {
        SeverityNumber::Unspecified => "",
        SeverityNumber::Error => "ERROR",
        SeverityNumber::Warn => "WARN",
        _ => "INFO",
    }
}

pub(crate) fn string(key: &str, value: &str) -> KeyValue {
    value_of(key, any_value::Value::StringValue(value.to_string()))
}

pub(crate) fn int(key: &str, value: i64) -> KeyValue {
    value_of(key, any_value::Value::IntValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    value_of(key, any_value::Value::BoolValue(value))
}

fn value_of(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Status;

    fn change(state: ProcessState) -> ProcessTransition {
        ProcessTransition {
            name: "web_00".into(),
            group: "web".into(),
            previous: ProcessState::Running,
            state,
            status: Status::Down,
            pid: None,
            exit_status: None,
            expected: None,
            spawnerr: None,
            restarted: false,
            time_unix_nano: Some(7_000_000_000),
        }
    }

    fn target() -> TargetIdentity {
        TargetIdentity {
            name: "web-1".into(),
            attributes: vec![("env".into(), "prod".into())],
            point_attributes: vec![],
        }
    }

    fn attr<'a>(record: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn an_unexpected_exit_is_an_error_record_with_every_field() {
        let mut exited = change(ProcessState::Exited);
        exited.exit_status = Some(3);
        exited.expected = Some(false);
        exited.pid = Some(42);
        let changes = Changes {
            processes: vec![exited],
            supervisor: None,
        };
        let rl =
            build_resource_logs(&target(), Some("sup"), Some("4.3.0"), &changes, &[], 9).unwrap();
        let resource_keys: Vec<_> = rl
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(
            resource_keys,
            [
                "supervisor_server",
                "supervisord.identification",
                "supervisord.version",
                "env"
            ]
        );
        let scope = &rl.scope_logs[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, SCOPE_NAME);
        let r = &scope.log_records[0];
        assert_eq!(r.event_name, "supervisord.process.state_change");
        assert_eq!(r.severity_number, SeverityNumber::Error as i32);
        assert_eq!(r.severity_text, "ERROR");
        assert_eq!(
            (r.time_unix_nano, r.observed_time_unix_nano),
            (7_000_000_000, 9)
        );
        assert_eq!(
            attr(r, "state"),
            Some(&any_value::Value::StringValue("EXITED".into()))
        );
        assert_eq!(
            attr(r, "previous_state"),
            Some(&any_value::Value::StringValue("RUNNING".into()))
        );
        assert_eq!(
            attr(r, "status"),
            Some(&any_value::Value::StringValue("down".into()))
        );
        assert_eq!(attr(r, "exit_status"), Some(&any_value::Value::IntValue(3)));
        assert_eq!(
            attr(r, "expected"),
            Some(&any_value::Value::BoolValue(false))
        );
        assert_eq!(attr(r, "pid"), Some(&any_value::Value::IntValue(42)));
        assert_eq!(attr(r, "restarted"), None);
        assert_eq!(
            r.body.as_ref().unwrap().value,
            Some(any_value::Value::StringValue(
                "web:web_00 is EXITED (was RUNNING): exit status 3, unexpected, pid 42".into()
            ))
        );
    }

    #[test]
    fn severities_follow_what_happened() {
        let mut expected_exit = change(ProcessState::Exited);
        expected_exit.exit_status = Some(0);
        expected_exit.expected = Some(true);
        assert_eq!(process_severity(&expected_exit), SeverityNumber::Info);
        let mut polled_exit = change(ProcessState::Exited);
        polled_exit.exit_status = Some(2);
        assert_eq!(process_severity(&polled_exit), SeverityNumber::Error);
        assert_eq!(
            process_severity(&change(ProcessState::Fatal)),
            SeverityNumber::Error
        );
        assert_eq!(
            process_severity(&change(ProcessState::Backoff)),
            SeverityNumber::Warn
        );
        assert_eq!(
            process_severity(&change(ProcessState::Stopped)),
            SeverityNumber::Info
        );
        let mut crash = change(ProcessState::Running);
        crash.restarted = true;
        crash.exit_status = Some(1);
        assert_eq!(process_severity(&crash), SeverityNumber::Error);
        crash.exit_status = Some(0);
        assert_eq!(process_severity(&crash), SeverityNumber::Warn);
    }

    #[test]
    fn supervisord_changes_and_no_changes() {
        assert!(build_resource_logs(&target(), None, None, &Changes::default(), &[], 1).is_none());
        let changes = Changes {
            processes: vec![],
            supervisor: Some(SupervisorTransition {
                previous: SupervisorState::Running,
                state: SupervisorState::Shutdown,
            }),
        };
        let rl = build_resource_logs(&target(), None, None, &changes, &[], 5).unwrap();
        let r = &rl.scope_logs[0].log_records[0];
        assert_eq!(r.event_name, "supervisord.state_change");
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(r.time_unix_nano, 0);
    }
}
