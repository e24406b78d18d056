//! `check`: one poll of every target, printed for a person or as JSON; the equivalent of
//! `datadog-agent check supervisord`.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::scrape::poller::TargetPoller;
use crate::settings::Settings;

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub targets: Vec<TargetReport>,
}

#[derive(Debug, Serialize)]
pub struct TargetReport {
    pub name: String,
    /// Never carries credentials.
    pub endpoint: String,
    pub connected: bool,
    /// The Datadog-worded message when not connected.
    pub error: Option<String>,
    /// The underlying cause (OS error text, timeout) when there is one.
    pub error_detail: Option<String>,
    pub supervisor_state: Option<&'static str>,
    pub version: Option<String>,
    pub identification: Option<String>,
    /// Parts of the reply that could not be used (a malformed process entry, a failed
    /// secondary call); the rest of the data is still shown.
    pub problems: Vec<String>,
    /// The monitored processes (after filters), in supervisord's order.
    pub processes: Vec<ProcessReport>,
}

#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub group: String,
    pub name: String,
    pub state: &'static str,
    pub status: &'static str,
    pub uptime: i64,
    pub exit_status: i64,
    pub pid: i64,
    pub start_time: Option<i64>,
    pub description: String,
}

pub async fn check(settings: Settings, output: OutputFormat) -> ExitCode {
    let mut pollers = Vec::new();
    let mut reports = Vec::new();
    for target in settings.targets {
        let name = target.name.clone();
        let endpoint = target.endpoint.display();
        match TargetPoller::new(target) {
            Ok(poller) => pollers.push(poller),
            Err(error) => reports.push(TargetReport::failed(
                name,
                endpoint,
                error.to_string(),
                None,
            )),
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, poller) in pollers.into_iter().enumerate() {
        tasks.spawn(async move {
            let result = poller.poll_raw().await;
            (index, report(&poller, result))
        });
    }
    let mut polled: Vec<(usize, TargetReport)> = Vec::new();
    let mut task_failed = false;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => polled.push(done),
            Err(error) => {
                task_failed = true;
                eprintln!("error: a poll task failed: {error}");
            }
        }
    }
    // Config order, whatever order the polls finished in.
    polled.sort_by_key(|(index, _)| *index);
    let mut polled: Vec<TargetReport> = polled.into_iter().map(|(_, report)| report).collect();
    polled.append(&mut reports);
    let all_connected = !task_failed && polled.iter().all(|t| t.connected);
    let report = CheckReport { targets: polled };
    let printed = match output {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Table => print_table(&report),
    };
    if let Err(error) = printed {
        eprintln!("error: cannot write the report: {error}");
        return ExitCode::FAILURE;
    }
    if all_connected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report(
    poller: &TargetPoller,
    result: Result<crate::supervisor::client::PolledSnapshot, crate::supervisor::client::PollError>,
) -> TargetReport {
    let target = poller.target();
    match result {
        Err(error) => TargetReport::failed(
            target.name.clone(),
            target.endpoint.display(),
            error.message(target),
            error.detail(),
        ),
        Ok(polled) => {
            let data = crate::scrape::monitored(target, polled.snapshot);
            TargetReport {
                name: target.name.clone(),
                endpoint: target.endpoint.display(),
                connected: true,
                error: None,
                error_detail: None,
                supervisor_state: data.supervisor_state.map(|s| s.name()),
                version: data.version,
                identification: data.identification,
                problems: polled.problems,
                processes: data
                    .processes
                    .into_iter()
                    .map(|p| ProcessReport {
                        uptime: p.info.uptime(),
                        start_time: p.info.start_time(),
                        state: p.info.state.name(),
                        status: p.status.name(),
                        exit_status: p.info.exitstatus,
                        pid: p.info.pid,
                        group: p.info.group,
                        name: p.info.name,
                        description: p.info.description,
                    })
                    .collect(),
            }
        }
    }
}

impl TargetReport {
    fn failed(name: String, endpoint: String, error: String, detail: Option<String>) -> Self {
        TargetReport {
            name,
            endpoint,
            connected: false,
            error: Some(error),
            error_detail: detail,
            supervisor_state: None,
            version: None,
            identification: None,
            problems: Vec::new(),
            processes: Vec::new(),
        }
    }
}

fn print_json(report: &CheckReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)
}

fn print_table(report: &CheckReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(render_table(report).as_bytes())
}

/// The table a person reads: one block per target.
pub fn render_table(report: &CheckReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for target in &report.targets {
        let _ = write!(s, "{} ({}): ", target.name, target.endpoint);
        if let Some(error) = &target.error {
            let _ = writeln!(s, "ERROR {error}");
            if let Some(detail) = &target.error_detail {
                let _ = writeln!(s, "  cause: {detail}");
            }
            s.push('\n');
            continue;
        }
        let _ = writeln!(
            s,
            "connected, supervisord {} {}, {} monitored process{}",
            target.version.as_deref().unwrap_or("(version unknown)"),
            target.supervisor_state.unwrap_or("(state unknown)"),
            target.processes.len(),
            if target.processes.len() == 1 {
                ""
            } else {
                "es"
            }
        );
        for problem in &target.problems {
            let _ = writeln!(s, "  warning: {problem}");
        }
        let rows: Vec<(Vec<String>, Option<String>)> = target
            .processes
            .iter()
            .map(|p| {
                let row = vec![
                    p.group.clone(),
                    p.name.clone(),
                    p.state.to_owned(),
                    p.status.to_owned(),
                    format_duration(p.uptime),
                    p.exit_status.to_string(),
                ];
                (row, None)
            })
            .collect();
        let header = ["GROUP", "NAME", "STATE", "STATUS", "UPTIME", "EXIT"];
        super::status::columns(&mut s, &header, &rows);
        s.push('\n');
    }
    s
}

/// `3725` → `1h2m5s`; negative values (clock skew) print as is.
fn format_duration(seconds: i64) -> String {
    if seconds <= 0 {
        return format!("{seconds}s");
    }
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(59), "59s");
        assert_eq!(format_duration(3725), "1h2m5s");
        assert_eq!(format_duration(61), "1m1s");
        assert_eq!(format_duration(-4), "-4s");
    }

    #[test]
    fn table_shows_processes_and_errors() {
        let report = CheckReport {
            targets: vec![
                TargetReport {
                    name: "web".into(),
                    endpoint: "http://127.0.0.1:9001".into(),
                    connected: true,
                    error: None,
                    error_detail: None,
                    supervisor_state: Some("RUNNING"),
                    version: Some("4.2.5".into()),
                    identification: Some("supervisor".into()),
                    problems: vec![],
                    processes: vec![ProcessReport {
                        group: "workers".into(),
                        name: "worker_a".into(),
                        state: "RUNNING",
                        status: "up",
                        uptime: 65,
                        exit_status: 0,
                        pid: 42,
                        start_time: Some(1),
                        description: String::new(),
                    }],
                },
                TargetReport::failed(
                    "db".into(),
                    "unix:///x.sock".into(),
                    "Cannot connect to unix:///x.sock.".into(),
                    Some("No such file or directory (os error 2)".into()),
                ),
            ],
        };
        let table = render_table(&report);
        assert!(table.contains("web (http://127.0.0.1:9001): connected, supervisord 4.2.5 RUNNING, 1 monitored process\n"), "{table}");
        assert!(
            table.contains("  GROUP    NAME      STATE    STATUS  UPTIME  EXIT\n"),
            "{table}"
        );
        assert!(
            table.contains("  workers  worker_a  RUNNING  up      1m5s    0\n"),
            "{table}"
        );
        assert!(table.contains("db (unix:///x.sock): ERROR Cannot connect to unix:///x.sock.\n  cause: No such file"), "{table}");
    }
}
