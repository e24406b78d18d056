//! The debug exporter: metrics and logs as text on stdout, to see what would be sent without a
//! backend. It prints every signal.
//!
//! The format is line-oriented and stable so it can be grepped and diffed:
//! - basic, one line per resource: `supervisor_server=web-1 can_connect=1 processes=6 points=57`,
//!   and for logs `supervisor_server=web-1 log_records=2`
//! - detailed, one line per point:
//!   `web-1 supervisord.process.state{supervisord_process=web,supervisord_group=web,state=RUNNING} 1`,
//!   and one line per log record, its severity, event name, attributes and body:
//!   `web-1 WARN supervisord.process.state_change{supervisord_process=web,state=BACKOFF} "web is BACKOFF (was STARTING)"`

use std::collections::HashSet;
use std::io::{self, Write};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, NumberDataPoint, ResourceMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::schema::definitions::{GROUP, PROCESS, SUPERVISOR_SERVER};
use crate::schema::MetricId;
use crate::settings::DebugVerbosity;

#[derive(Debug, Clone)]
pub struct DebugExporter {
    verbosity: DebugVerbosity,
    /// Prints to stderr instead of stdout: in push mode stdout is supervisord's event channel,
    /// where anything but the listener protocol would break it.
    to_stderr: bool,
}

impl DebugExporter {
    pub fn new(verbosity: DebugVerbosity) -> Self {
        DebugExporter {
            verbosity,
            to_stderr: false,
        }
    }

    /// The same exporter, printing to stderr.
    pub fn to_stderr(mut self) -> Self {
        self.to_stderr = true;
        self
    }

    /// Writes `render` to stdout or stderr under one lock, so concurrent log lines cannot
    /// interleave with it.
    fn print(&self, render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        if self.to_stderr {
            let stderr = io::stderr();
            let mut out = io::BufWriter::new(stderr.lock());
            render(&mut out)?;
            out.flush()
        } else {
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            render(&mut out)?;
            out.flush()
        }
    }

    pub fn verbosity(&self) -> DebugVerbosity {
        self.verbosity
    }

    /// Writes the whole request at once (see [`DebugExporter::print`]).
    pub fn export(&self, request: &ExportMetricsServiceRequest) -> io::Result<()> {
        self.print(|mut out| self.render(request, &mut out))
    }

    pub fn render(
        &self,
        request: &ExportMetricsServiceRequest,
        out: &mut impl Write,
    ) -> io::Result<()> {
        for resource in &request.resource_metrics {
            match self.verbosity {
                DebugVerbosity::Basic => render_summary(resource, out)?,
                DebugVerbosity::Detailed => render_points(resource, out)?,
            }
        }
        Ok(())
    }

    /// Like [`DebugExporter::export`], for a logs request.
    pub fn export_logs(&self, request: &ExportLogsServiceRequest) -> io::Result<()> {
        self.print(|mut out| self.render_logs(request, &mut out))
    }

    pub fn render_logs(
        &self,
        request: &ExportLogsServiceRequest,
        out: &mut impl Write,
    ) -> io::Result<()> {
        for resource in &request.resource_logs {
            match self.verbosity {
                DebugVerbosity::Basic => render_logs_summary(resource, out)?,
                DebugVerbosity::Detailed => render_records(resource, out)?,
            }
        }
        Ok(())
    }
}

fn render_logs_summary(resource: &ResourceLogs, out: &mut impl Write) -> io::Result<()> {
    let records: usize = resource
        .scope_logs
        .iter()
        .map(|s| s.log_records.len())
        .sum();
    writeln!(
        out,
        "{}={} log_records={records}",
        SUPERVISOR_SERVER.key,
        display_text(resource_server(resource.resource.as_ref())),
    )
}

/// `<server> <severity> <event>{<attributes>} <body>`; `-` for a missing severity or event name.
fn render_records(resource: &ResourceLogs, out: &mut impl Write) -> io::Result<()> {
    let server = display_text(resource_server(resource.resource.as_ref()));
    for record in resource.scope_logs.iter().flat_map(|s| &s.log_records) {
        let severity = match record.severity_text.as_str() {
            "" => "-",
            text => text,
        };
        let event = match record.event_name.as_str() {
            "" => "-",
            name => name,
        };
        write!(
            out,
            "{server} {} {}",
            display_text(severity),
            display_text(event)
        )?;
        let mut separator = '{';
        for attribute in &record.attributes {
            write!(out, "{separator}{}=", attribute.key)?;
            write_value(attribute.value.as_ref(), out)?;
            separator = ',';
        }
        if separator == ',' {
            out.write_all(b"}")?;
        }
        out.write_all(b" ")?;
        write_value(record.body.as_ref(), out)?;
        writeln!(out)?;
    }
    Ok(())
}

fn render_summary(resource: &ResourceMetrics, out: &mut impl Write) -> io::Result<()> {
    let mut can_connect = None;
    let mut points = 0usize;
    // Distinct (process, group) pairs: counts monitored processes whichever metrics are on.
    let mut processes = HashSet::new();
    for (name, point) in points_of(resource) {
        points += 1;
        if name == MetricId::CanConnect.name() {
            can_connect = int_value(point);
        }
        let process = string_attribute(&point.attributes, PROCESS.key);
        let group = string_attribute(&point.attributes, GROUP.key);
        if process.is_some() || group.is_some() {
            processes.insert((process, group));
        }
    }
    let can_connect = can_connect.map_or_else(|| "-".to_string(), |v| v.to_string());
    writeln!(
        out,
        "{}={} can_connect={} processes={} points={}",
        SUPERVISOR_SERVER.key,
        display_text(server_name(resource)),
        can_connect,
        processes.len(),
        points
    )
}

fn render_points(resource: &ResourceMetrics, out: &mut impl Write) -> io::Result<()> {
    let server = display_text(server_name(resource));
    for (name, point) in points_of(resource) {
        write!(out, "{server} {name}")?;
        let mut separator = '{';
        for attribute in &point.attributes {
            write!(out, "{separator}{}=", attribute.key)?;
            write_value(attribute.value.as_ref(), out)?;
            separator = ',';
        }
        if separator == ',' {
            out.write_all(b"}")?;
        }
        match point.value {
            Some(number_data_point::Value::AsInt(v)) => writeln!(out, " {v}")?,
            Some(number_data_point::Value::AsDouble(v)) => writeln!(out, " {v}")?,
            None => writeln!(out, " -")?,
        }
    }
    Ok(())
}

/// Every gauge point of a resource with its metric name, in emission order.
fn points_of(resource: &ResourceMetrics) -> impl Iterator<Item = (&str, &NumberDataPoint)> {
    resource
        .scope_metrics
        .iter()
        .flat_map(|scope| &scope.metrics)
        .flat_map(|metric| {
            let points: &[NumberDataPoint] = match &metric.data {
                Some(metric::Data::Gauge(gauge)) => &gauge.data_points,
                Some(metric::Data::Sum(sum)) => &sum.data_points,
                _ => &[],
            };
            points.iter().map(move |p| (metric.name.as_str(), p))
        })
}

fn server_name(resource: &ResourceMetrics) -> &str {
    resource_server(resource.resource.as_ref())
}

fn resource_server(resource: Option<&Resource>) -> &str {
    resource
        .and_then(|r| string_attribute(&r.attributes, SUPERVISOR_SERVER.key))
        .unwrap_or("-")
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match &value.value {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int_value(point: &NumberDataPoint) -> Option<i64> {
    match point.value {
        Some(number_data_point::Value::AsInt(v)) => Some(v),
        _ => None,
    }
}

fn write_value(value: Option<&AnyValue>, out: &mut impl Write) -> io::Result<()> {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => write!(out, "{}", display_text(s)),
        Some(any_value::Value::IntValue(v)) => write!(out, "{v}"),
        Some(any_value::Value::BoolValue(v)) => write!(out, "{v}"),
        Some(any_value::Value::DoubleValue(v)) => write!(out, "{v}"),
        Some(_) | None => write!(out, "-"),
    }
}

/// Plain text as is; text that would break the line's structure (spaces, separators, quotes,
/// empty) is quoted with escapes, so every line splits the same way.
fn display_text(text: &str) -> std::borrow::Cow<'_, str> {
    let plain = !text.is_empty()
        && text.chars().all(|c| {
            !c.is_whitespace() && !c.is_control() && !matches!(c, ',' | '{' | '}' | '=' | '"')
        });
    if plain {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(format!("{text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::build_request;
    use crate::schema::MetricToggles;
    use crate::scrape::outcome::{MonitoredProcess, PollData, PollOutcome, TargetIdentity};
    use crate::vocab::Status;
    use crate::vocab::{ProcessInfo, ProcessState};

    fn request() -> ExportMetricsServiceRequest {
        let process = |name: &str, state, status| MonitoredProcess {
            info: ProcessInfo {
                name: name.into(),
                group: "web".into(),
                state,
                ..Default::default()
            },
            status,
            autostart: None,
        };
        let ok = PollOutcome {
            target: Arc::new(TargetIdentity {
                name: "web-1".into(),
                attributes: vec![],
                point_attributes: vec![],
            }),
            time_unix_nano: 1,
            result: Ok(PollData {
                processes: vec![
                    process("web", ProcessState::Running, Status::Up),
                    process("worker one", ProcessState::Stopped, Status::Down),
                ],
                ..Default::default()
            }),
        };
        let failed = PollOutcome {
            target: Arc::new(TargetIdentity {
                name: "db-1".into(),
                attributes: vec![],
                point_attributes: vec![],
            }),
            time_unix_nano: 1,
            result: Err("refused".into()),
        };
        build_request(&[ok, failed], &MetricToggles::default())
    }

    fn render(verbosity: DebugVerbosity) -> String {
        let mut out = Vec::new();
        DebugExporter::new(verbosity)
            .render(&request(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn basic_is_one_line_per_resource() {
        // 1 can_connect + 3 counts + 2 × (uptime + 3 status + 8 state + exit status).
        assert_eq!(
            render(DebugVerbosity::Basic),
            "supervisor_server=web-1 can_connect=1 processes=2 points=30\n\
             supervisor_server=db-1 can_connect=0 processes=0 points=1\n"
        );
    }

    #[test]
    fn detailed_is_one_line_per_point() {
        let text = render(DebugVerbosity::Detailed);
        assert_eq!(text.lines().count(), 31);
        assert!(text.contains("\nweb-1 supervisord.process.state{supervisord_process=web,supervisord_group=web,state=RUNNING} 1\n"));
        assert!(text.contains("\nweb-1 supervisord.process.uptime{supervisord_process=\"worker one\",supervisord_group=web} 0\n"));
        assert!(text.starts_with("web-1 supervisord.can_connect 1\n"));
        assert!(text.ends_with("db-1 supervisord.can_connect 0\n"));
    }

    /// Two records of one target, shaped as the logs translation writes them: a process change
    /// with its attributes, and a supervisord change.
    fn logs_request() -> ExportLogsServiceRequest {
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};
        let text = |key: &str, value: &str| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        };
        let record = |severity: &str, event: &str, attributes, body: &str| LogRecord {
            severity_text: severity.into(),
            event_name: event.into(),
            attributes,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body.into())),
            }),
            ..Default::default()
        };
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![text(SUPERVISOR_SERVER.key, "web-1")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        record(
                            "INFO",
                            "supervisord.state_change",
                            vec![text("supervisord_state", "RUNNING")],
                            "supervisord is RUNNING (was RESTARTING)",
                        ),
                        record(
                            "WARN",
                            "supervisord.process.state_change",
                            vec![
                                text(PROCESS.key, "worker one"),
                                text(GROUP.key, "web"),
                                text("state", "BACKOFF"),
                            ],
                            "web:worker one is BACKOFF (was STARTING)",
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn render_logs(verbosity: DebugVerbosity) -> String {
        let mut out = Vec::new();
        DebugExporter::new(verbosity)
            .render_logs(&logs_request(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn logs_basic_is_one_line_per_resource() {
        assert_eq!(
            render_logs(DebugVerbosity::Basic),
            "supervisor_server=web-1 log_records=2\n"
        );
    }

    #[test]
    fn logs_detailed_is_one_line_per_record() {
        let text = render_logs(DebugVerbosity::Detailed);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines,
            [
                "web-1 INFO supervisord.state_change{supervisord_state=RUNNING} \
                 \"supervisord is RUNNING (was RESTARTING)\"",
                "web-1 WARN supervisord.process.state_change{supervisord_process=\"worker one\",\
                 supervisord_group=web,state=BACKOFF} \"web:worker one is BACKOFF (was STARTING)\"",
            ]
        );
    }
}
