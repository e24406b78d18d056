//! `status`: asks a running receiver for its status over its admin endpoint (the gRPC
//! `Status` service of `proto/`) and prints it for a person, like `datadog-agent status`, or as
//! JSON.
//!
//! Exit codes: 0 healthy; 1 something failing (a target whose last poll failed, an exporter
//! whose exports fail, or the receiver unhealthy by the `/healthz` rule); 2 the endpoint
//! cannot be reached (or `--config` does not say where it is). With `--liveness`, failing
//! targets are ignored: 0 when the receiver answers and its exports are healthy, which is what
//! a container health check asks.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::admin::api::v1;
use crate::admin::server::{UnixConnector, MAX_REPORT_BYTES};
use crate::cli::OutputFormat;

/// Where `status` asks when neither `--admin` nor `--config` says.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8787";
pub const EXIT_FAILING: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 2;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An admin endpoint as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddress {
    /// `host:port`.
    Tcp(String),
    /// `unix:///path`.
    Unix(PathBuf),
}

impl AdminAddress {
    pub fn parse(text: &str) -> Result<AdminAddress, String> {
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "invalid admin endpoint '{text}': expected unix:// followed by an absolute \
                     path, e.g. unix:///run/supervisord-receiver/admin.sock"
                ));
            }
            return Ok(AdminAddress::Unix(PathBuf::from(path)));
        }
        let valid = !text.contains('/')
            && text
                .parse::<http::uri::Authority>()
                .is_ok_and(|a| a.port_u16().is_some() && !a.host().is_empty());
        if !valid {
            return Err(format!(
                "invalid admin endpoint '{text}': expected host:port (e.g. {DEFAULT_ADMIN}) or \
                 unix:///path/to/admin.sock"
            ));
        }
        Ok(AdminAddress::Tcp(text.to_string()))
    }

    pub fn display(&self) -> String {
        match self {
            AdminAddress::Tcp(addr) => addr.clone(),
            AdminAddress::Unix(path) => format!("unix://{}", path.display()),
        }
    }
}

/// The endpoint to ask: `--admin`, else the `admin.endpoint` of `--config`, else
/// [`DEFAULT_ADMIN`]. An error is printed to stderr and is the exit code.
pub fn resolve(admin: Option<&str>, config: Option<&Path>) -> Result<AdminAddress, ExitCode> {
    let unusable = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_UNREACHABLE)
    };
    if let Some(text) = admin {
        return AdminAddress::parse(text).map_err(unusable);
    }
    let Some(path) = config else {
        return AdminAddress::parse(DEFAULT_ADMIN).map_err(unusable);
    };
    let settings = match crate::config::load(path) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return Err(unusable(format!(
                "cannot read the admin endpoint from {}; name it with --admin ADDR",
                path.display()
            )));
        }
    };
    match settings.admin {
        Some(admin) => AdminAddress::parse(&admin.endpoint.display()).map_err(unusable),
        None => Err(unusable(format!(
            "{} has no admin: section, so the receiver serves no status API; add \
             `admin: {{ endpoint: {DEFAULT_ADMIN} }}` and restart it (docs/operations.md, \
             \"Status\"), or name the endpoint with --admin ADDR",
            path.display()
        ))),
    }
}

/// Asks, prints, and says how it went in the exit code.
pub async fn status(address: AdminAddress, output: OutputFormat, liveness: bool) -> ExitCode {
    let report = match fetch(&address).await {
        Ok(report) => report,
        Err(problem) => {
            eprintln!("{}", unreachable_message(&address, &problem));
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let healthy = report.health.as_ref().is_some_and(|h| h.healthy);
    let ok = if liveness {
        healthy
    } else {
        failures(&report).is_empty()
    };
    let text = match output {
        OutputFormat::Table => render_table(&report),
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&to_json(&report)).unwrap_or_default();
            text.push('\n');
            text
        }
    };
    if let Err(error) = std::io::stdout().lock().write_all(text.as_bytes()) {
        eprintln!("error: cannot write the report: {error}");
        return ExitCode::FAILURE;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILING)
    }
}

/// Why the call did not give a report: the endpoint cannot be reached, or what answers is not
/// the status API.
#[derive(Debug)]
pub enum Unreachable {
    Connect(String),
    Call(String),
}

async fn fetch(address: &AdminAddress) -> Result<v1::StatusReport, Unreachable> {
    let uri = match address {
        AdminAddress::Tcp(addr) => format!("http://{addr}"),
        // The authority is not used to connect, only sent as :authority.
        AdminAddress::Unix(_) => "http://localhost".to_string(),
    };
    let endpoint = tonic::transport::Endpoint::from_shared(uri)
        .map_err(|e| Unreachable::Connect(chain(&e)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let connecting = async {
        match address {
            AdminAddress::Tcp(_) => endpoint.connect().await,
            AdminAddress::Unix(path) => {
                endpoint
                    .connect_with_connector(UnixConnector(path.clone()))
                    .await
            }
        }
    };
    let channel = match tokio::time::timeout(CONNECT_TIMEOUT * 2, connecting).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(error)) => return Err(Unreachable::Connect(chain(&error))),
        Err(_) => {
            return Err(Unreachable::Connect(format!(
                "no connection within {CONNECT_TIMEOUT:?}"
            )))
        }
    };
    let mut client =
        v1::status_client::StatusClient::new(channel).max_decoding_message_size(MAX_REPORT_BYTES);
    match tokio::time::timeout(CALL_TIMEOUT, client.get_status(v1::GetStatusRequest {})).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(Unreachable::Call(format!(
            "{}: {}",
            status.code(),
            status.message()
        ))),
        Err(_) => Err(Unreachable::Call(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

/// An error with its causes, `outer: inner: innermost` (tonic's own text is only "transport
/// error").
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What to check, on stderr, when no report came.
pub fn unreachable_message(address: &AdminAddress, problem: &Unreachable) -> String {
    let shown = address.display();
    let socket_hint = match address {
        AdminAddress::Unix(_) => {
            " and that this user may open the socket (admin.socket_mode, the file's group);"
        }
        AdminAddress::Tcp(_) => ";",
    };
    match problem {
        Unreachable::Connect(cause) => format!(
            "error: cannot reach the receiver's admin endpoint at {shown}: {cause}\n\
             check that the receiver is running, that its configuration has an admin: section \
             (admin: {{ endpoint: {DEFAULT_ADMIN} }}) with the same address{socket_hint} name \
             another address with --admin ADDR (host:port or unix:///path), or give --config \
             FILE to read its admin.endpoint"
        ),
        Unreachable::Call(cause) => format!(
            "error: something answers at {shown}, but not the receiver's status API: {cause}\n\
             check that --admin names the admin: endpoint, not health: or another service, and \
             that the receiver is recent enough to serve it"
        ),
    }
}

/// What fails, one line each: targets whose last poll failed, exporters whose exports fail,
/// the receiver's health. Empty: exit 0.
pub fn failures(report: &v1::StatusReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(health) = report.health.as_ref().filter(|h| !h.healthy) {
        out.push(format!("unhealthy: {}", health.reason));
    }
    for target in &report.targets {
        if target.result() == v1::PollResult::Error {
            out.push(format!("target {}: {}", target.name, target.error_message));
        }
    }
    for exporter in &report.exporters {
        if exporter.failing_since_unix_nano != 0 {
            out.push(format!("exporter {}: exports failing", exporter.name));
        }
    }
    out
}

fn result_name(result: v1::PollResult) -> &'static str {
    match result {
        v1::PollResult::Ok => "ok",
        v1::PollResult::Error => "error",
        v1::PollResult::Unspecified => "pending",
    }
}

/// `null` for 0 ("never", "not yet"): what a script tests for.
fn time(unix_nano: u64) -> Value {
    if unix_nano == 0 {
        Value::Null
    } else {
        json!(unix_nano)
    }
}

fn text_or_null(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        json!(text)
    }
}

/// The report as JSON: the proto's field names (snake_case), times as Unix nanoseconds or
/// `null`, the poll result as `ok`, `error` or `pending`, and `status` (`ok` or `failing`, as
/// the exit code says without `--liveness`).
pub fn to_json(report: &v1::StatusReport) -> Value {
    let receiver = report.receiver.clone().unwrap_or_default();
    let health = report.health.clone().unwrap_or_default();
    let failures = failures(report);
    json!({
        "status": if failures.is_empty() { "ok" } else { "failing" },
        "failures": failures,
        "report_time_unix_nano": report.report_time_unix_nano,
        "receiver": {
            "version": receiver.version,
            "start_time_unix_nano": time(receiver.start_time_unix_nano),
            "uptime_seconds": receiver.uptime_seconds,
            "config_source": text_or_null(&receiver.config_source),
            "config_format": text_or_null(&receiver.config_format),
            "reload_count": receiver.reload_count,
            "last_reload_unix_nano": time(receiver.last_reload_unix_nano),
        },
        "health": {
            "healthy": health.healthy,
            "reason": text_or_null(&health.reason),
            "unhealthy_after_seconds": health.unhealthy_after_seconds,
            "exports_failing_since_unix_nano": time(health.exports_failing_since_unix_nano),
        },
        "targets": report.targets.iter().map(|t| json!({
            "name": t.name,
            "endpoint": t.endpoint,
            "result": result_name(t.result()),
            "error_message": text_or_null(&t.error_message),
            "error_type": text_or_null(&t.error_type),
            "last_poll_start_unix_nano": time(t.last_poll_start_unix_nano),
            "last_poll_duration_seconds": (t.polls > 0).then_some(t.last_poll_duration_seconds),
            "processes": t.processes.map(|p| json!({
                "up": p.up,
                "down": p.down,
                "unknown": p.unknown,
            })),
            "next_poll_unix_nano": time(t.next_poll_unix_nano),
            "consecutive_failures": t.consecutive_failures,
            "polls": t.polls,
            "failed_polls": t.failed_polls,
        })).collect::<Vec<_>>(),
        "exporters": report.exporters.iter().map(|e| json!({
            "name": e.name,
            "signals": e.signals,
            "failing": e.failing_since_unix_nano != 0,
            "queue_batches": e.queue_batches,
            "queue_bytes": e.queue_bytes,
            "queue_capacity_batches": e.queue_capacity_batches,
            "queue_capacity_bytes": e.queue_capacity_bytes,
            "sent_points": e.sent_points,
            "retried_requests": e.retried_requests,
            "dropped_points": e.dropped_points,
            "last_success_unix_nano": time(e.last_success_unix_nano),
            "failing_since_unix_nano": time(e.failing_since_unix_nano),
        })).collect::<Vec<_>>(),
    })
}

/// The screen a person reads: the receiver's line and health, then a row per target and per
/// exporter, with each failure's message under its row.
pub fn render_table(report: &v1::StatusReport) -> String {
    let now = report.report_time_unix_nano;
    let receiver = report.receiver.clone().unwrap_or_default();
    let health = report.health.clone().unwrap_or_default();
    let mut s = String::new();
    let _ = write!(
        s,
        "supervisord-receiver {}, up {}",
        receiver.version,
        duration(Duration::from_secs_f64(receiver.uptime_seconds.max(0.0)))
    );
    if !receiver.config_source.is_empty() {
        let _ = write!(s, ", config {}", receiver.config_source);
        if !receiver.config_format.is_empty() {
            let _ = write!(s, " ({})", receiver.config_format);
        }
    }
    let _ = write!(s, ", {} reload", receiver.reload_count);
    if receiver.reload_count != 1 {
        s.push('s');
    }
    if receiver.last_reload_unix_nano != 0 {
        let _ = write!(s, " (last {})", ago(receiver.last_reload_unix_nano, now));
    }
    s.push('\n');
    let limit = duration(Duration::from_secs_f64(
        health.unhealthy_after_seconds.max(0.0),
    ));
    if health.healthy {
        let _ = writeln!(
            s,
            "Health: OK (unhealthy once every export has failed for {limit})"
        );
    } else {
        let _ = writeln!(s, "Health: UNHEALTHY: {}", health.reason);
    }

    let failed = report
        .targets
        .iter()
        .filter(|t| t.result() == v1::PollResult::Error)
        .count();
    let _ = writeln!(
        s,
        "\nTargets: {} ({} OK, {} ERROR)",
        report.targets.len(),
        report
            .targets
            .iter()
            .filter(|t| t.result() == v1::PollResult::Ok)
            .count(),
        failed
    );
    let header = [
        "NAME",
        "STATUS",
        "LAST POLL",
        "DURATION",
        "UP",
        "DOWN",
        "UNKNOWN",
        "NEXT POLL",
        "ENDPOINT",
    ];
    let mut rows = Vec::new();
    for t in &report.targets {
        let status = match t.result() {
            v1::PollResult::Ok => "OK",
            v1::PollResult::Error => "ERROR",
            v1::PollResult::Unspecified => "PENDING",
        };
        let count = |pick: fn(&v1::ProcessCounts) -> u64| {
            t.processes
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| pick(p).to_string())
        };
        let row = vec![
            t.name.clone(),
            status.to_string(),
            ago(t.last_poll_start_unix_nano, now),
            if t.polls == 0 {
                "-".to_string()
            } else {
                poll_duration(t.last_poll_duration_seconds)
            },
            count(|p| p.up),
            count(|p| p.down),
            count(|p| p.unknown),
            due(t.next_poll_unix_nano, now),
            t.endpoint.clone(),
        ];
        let note = (t.result() == v1::PollResult::Error).then(|| {
            let times = match t.consecutive_failures {
                0 | 1 => String::new(),
                n => format!(" ({n} in a row)"),
            };
            format!("error{times}: {}", t.error_message)
        });
        rows.push((row, note));
    }
    table(&mut s, &header, &rows);

    let _ = writeln!(s, "\nExporters: {}", report.exporters.len());
    let header = [
        "NAME",
        "SIGNALS",
        "QUEUE",
        "SENT",
        "RETRIED",
        "DROPPED",
        "LAST SUCCESS",
        "STATUS",
    ];
    let rows: Vec<(Vec<String>, Option<String>)> = report
        .exporters
        .iter()
        .map(|e| {
            let queue = if e.queue_capacity_batches == 0 {
                "-".to_string()
            } else {
                format!(
                    "{}/{} ({}%)",
                    e.queue_batches,
                    e.queue_capacity_batches,
                    percent(e.queue_batches, e.queue_capacity_batches)
                )
            };
            let status = if e.failing_since_unix_nano == 0 {
                "OK".to_string()
            } else {
                format!("FAILING since {}", ago(e.failing_since_unix_nano, now))
            };
            let row = vec![
                e.name.clone(),
                e.signals.join(","),
                queue,
                e.sent_points.to_string(),
                e.retried_requests.to_string(),
                e.dropped_points.to_string(),
                ago(e.last_success_unix_nano, now),
                status,
            ];
            (row, None)
        })
        .collect();
    table(&mut s, &header, &rows);
    s
}

/// [`columns`], or `(none)`.
fn table(s: &mut String, header: &[&str], rows: &[(Vec<String>, Option<String>)]) {
    if rows.is_empty() {
        s.push_str("  (none)\n");
        return;
    }
    columns(s, header, rows);
}

/// The header and the rows, indented by two: columns padded to their widest cell, two spaces
/// apart; a row's note on its own line below it, under the second column. `check` prints its
/// tables so too.
pub(super) fn columns(s: &mut String, header: &[&str], rows: &[(Vec<String>, Option<String>)]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for (row, _) in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let lines = std::iter::once((&header, &None)).chain(rows.iter().map(|(r, n)| (r, n)));
    for (row, note) in lines {
        s.push_str("  ");
        for (w, cell) in widths.iter().zip(row) {
            let _ = write!(s, "{cell:<w$}  ");
        }
        let trimmed = s.trim_end().len();
        s.truncate(trimmed);
        s.push('\n');
        if let Some(note) = note {
            let indent = 2 + widths.first().copied().unwrap_or(0) + 2;
            let _ = writeln!(s, "{:indent$}{note}", "");
        }
    }
}

fn percent(part: u64, whole: u64) -> u64 {
    (part.saturating_mul(100)).checked_div(whole).unwrap_or(0)
}

/// `3s ago`, `never`.
fn ago(unix_nano: u64, now: u64) -> String {
    if unix_nano == 0 {
        return "never".to_string();
    }
    format!(
        "{} ago",
        duration(Duration::from_nanos(now.saturating_sub(unix_nano)))
    )
}

/// `in 12s`, `due` (within a second, or past), `-` (unknown).
fn due(unix_nano: u64, now: u64) -> String {
    match unix_nano {
        0 => "-".to_string(),
        t if t < now.saturating_add(1_000_000_000) => "due".to_string(),
        t => format!("in {}", duration(Duration::from_nanos(t - now))),
    }
}

/// `4ms`, `1.25s`.
fn poll_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        let ms = seconds * 1000.0;
        if ms < 10.0 {
            format!("{ms:.1}ms")
        } else {
            format!("{ms:.0}ms")
        }
    } else {
        format!("{seconds:.2}s")
    }
}

/// Whole seconds, as the `check` table writes them: `0s`, `59s`, `1m5s`, `2h3m`, `3d4h`.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, h, m, s) = (
        secs / 86_400,
        (secs % 86_400) / 3600,
        (secs % 3600) / 60,
        secs % 60,
    );
    match (days, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{days}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn report() -> v1::StatusReport {
        let now = 1_700_000_000 * SECOND;
        v1::StatusReport {
            receiver: Some(v1::ReceiverStatus {
                version: "0.1.0".into(),
                start_time_unix_nano: now - 3_725 * SECOND,
                uptime_seconds: 3_725.0,
                config_source: "/etc/r.yaml".into(),
                config_format: "native".into(),
                reload_count: 1,
                last_reload_unix_nano: now - 60 * SECOND,
            }),
            targets: vec![
                v1::TargetStatus {
                    name: "db".into(),
                    endpoint: "unix:///run/db.sock".into(),
                    last_poll_start_unix_nano: now - SECOND,
                    last_poll_duration_seconds: 0.0004,
                    result: v1::PollResult::Error as i32,
                    error_message: "Cannot connect to unix:///run/db.sock.".into(),
                    error_type: "connect".into(),
                    processes: None,
                    next_poll_unix_nano: now + 29 * SECOND,
                    consecutive_failures: 5,
                    polls: 5,
                    failed_polls: 5,
                },
                v1::TargetStatus {
                    name: "web".into(),
                    endpoint: "http://127.0.0.1:9001".into(),
                    last_poll_start_unix_nano: now - 3 * SECOND,
                    last_poll_duration_seconds: 0.0042,
                    result: v1::PollResult::Ok as i32,
                    processes: Some(v1::ProcessCounts {
                        up: 3,
                        down: 1,
                        unknown: 0,
                    }),
                    next_poll_unix_nano: now + 12 * SECOND,
                    polls: 9,
                    ..Default::default()
                },
            ],
            exporters: vec![
                v1::ExporterStatus {
                    name: "otlp".into(),
                    signals: vec!["metrics".into(), "logs".into()],
                    queue_batches: 20,
                    queue_capacity_batches: 2000,
                    sent_points: 1234,
                    last_success_unix_nano: now - 2 * SECOND,
                    ..Default::default()
                },
                v1::ExporterStatus {
                    name: "debug".into(),
                    signals: vec!["metrics".into(), "logs".into()],
                    failing_since_unix_nano: now - 62 * SECOND,
                    ..Default::default()
                },
            ],
            health: Some(v1::Health {
                healthy: true,
                unhealthy_after_seconds: 300.0,
                ..Default::default()
            }),
            report_time_unix_nano: now,
        }
    }

    #[test]
    fn the_table_reads_at_a_glance() {
        let table = render_table(&report());
        let expected = "\
supervisord-receiver 0.1.0, up 1h2m, config /etc/r.yaml (native), 1 reload (last 1m0s ago)
Health: OK (unhealthy once every export has failed for 5m0s)

Targets: 2 (1 OK, 1 ERROR)
  NAME  STATUS  LAST POLL  DURATION  UP  DOWN  UNKNOWN  NEXT POLL  ENDPOINT
  db    ERROR   1s ago     0.4ms     -   -     -        in 29s     unix:///run/db.sock
        error (5 in a row): Cannot connect to unix:///run/db.sock.
  web   OK      3s ago     4.2ms     3   1     0        in 12s     http://127.0.0.1:9001

Exporters: 2
  NAME   SIGNALS       QUEUE         SENT  RETRIED  DROPPED  LAST SUCCESS  STATUS
  otlp   metrics,logs  20/2000 (1%)  1234  0        0        2s ago        OK
  debug  metrics,logs  -             0     0        0        never         FAILING since 1m2s ago
";
        assert_eq!(table, expected, "\n{table}");
    }

    #[test]
    fn json_has_stable_names_and_nulls_for_never() {
        let value = to_json(&report());
        assert_eq!(value["status"], "failing");
        assert_eq!(value["receiver"]["reload_count"], 1);
        let db = &value["targets"][0];
        assert_eq!(db["result"], "error");
        assert_eq!(
            db["error_message"],
            "Cannot connect to unix:///run/db.sock."
        );
        assert_eq!(db["processes"], Value::Null);
        let web = &value["targets"][1];
        assert_eq!(web["result"], "ok");
        assert_eq!(web["error_message"], Value::Null);
        assert_eq!(web["processes"]["up"], 3);
        assert_eq!(value["exporters"][0]["failing"], false);
        assert_eq!(value["exporters"][1]["failing"], true);
        assert_eq!(value["exporters"][1]["last_success_unix_nano"], Value::Null);
        assert_eq!(value["health"]["healthy"], true);
        assert_eq!(
            value["failures"],
            json!([
                "target db: Cannot connect to unix:///run/db.sock.",
                "exporter debug: exports failing"
            ])
        );
    }

    #[test]
    fn addresses_are_host_port_or_a_unix_path() {
        assert_eq!(
            AdminAddress::parse("127.0.0.1:8787"),
            Ok(AdminAddress::Tcp("127.0.0.1:8787".into()))
        );
        assert_eq!(
            AdminAddress::parse("localhost:1"),
            Ok(AdminAddress::Tcp("localhost:1".into()))
        );
        assert_eq!(
            AdminAddress::parse("[::1]:8787"),
            Ok(AdminAddress::Tcp("[::1]:8787".into()))
        );
        assert_eq!(
            AdminAddress::parse("unix:///run/a.sock"),
            Ok(AdminAddress::Unix("/run/a.sock".into()))
        );
        for bad in [
            "127.0.0.1",
            "http://127.0.0.1:8787",
            "unix://run/a.sock",
            ":8787",
            "",
        ] {
            assert!(AdminAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_secs(0)), "0s");
        assert_eq!(duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(duration(Duration::from_secs(7_260)), "2h1m");
        assert_eq!(duration(Duration::from_secs(90_000)), "1d1h");
        assert_eq!(poll_duration(1.234), "1.23s");
        assert_eq!(poll_duration(0.0421), "42ms");
        assert_eq!(due(5, 10), "due");
        assert_eq!(due(0, 10), "-");
    }
}
