//! The figures of a run, the issue's targets next to them, and their printing (text or JSON).

use std::time::Duration;

use serde::Serialize;

use crate::fleet::ShardReport;
use crate::procfs::{Machine, Memory};
use crate::run::{target_name, RunSpec, Startup, Window};
use crate::sink::Counts;

#[derive(Debug, Clone, Serialize)]
pub struct PythonBaseline {
    pub python: String,
    pub reply_bytes: u64,
    pub seconds_per_call: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub targets: usize,
    pub processes: usize,
    pub interval_seconds: f64,
    pub warmup_seconds: f64,
    /// The measured window, as it actually lasted.
    pub window_seconds: f64,
    pub transport: &'static str,
    pub keep_alive: bool,
    pub process_resources: bool,
    pub fleet_processes: usize,

    /// targets x window / interval.
    pub polls_nominal: f64,
    /// Served + missed: what each target's schedule called for in the window.
    pub polls_expected: u64,
    pub polls_served: u64,
    pub polls_late: u64,
    pub polls_missed: u64,
    pub max_gap_seconds: f64,
    pub max_gap_target: String,
    pub targets_never_polled: usize,
    pub connections_opened: u64,
    /// `getAllConfigInfo` requests served in the window (not polls; their CPU is in the
    /// window's), and since the fleet started.
    pub config_info_calls_served: u64,
    pub config_info_calls_total: u64,

    pub receiver_cpu_user_seconds: f64,
    pub receiver_cpu_system_seconds: f64,
    pub receiver_cpu_seconds: f64,
    pub receiver_cpu_us_per_poll: f64,
    pub receiver_average_cores: f64,
    pub receiver_rss_bytes: u64,
    pub receiver_peak_rss_bytes: u64,
    pub fleet_average_cores: f64,
    /// The orchestrator itself (mostly the OTLP sink).
    pub harness_average_cores: f64,

    pub export: Counts,
    pub points_per_request: f64,
    pub protobuf_bytes_per_process_per_interval: f64,
    pub wire_bytes_per_process_per_interval: f64,

    pub python: Option<PythonBaseline>,
    pub python_error: Option<String>,
    /// Python's parse of one reply divided by the receiver's CPU per whole poll.
    pub ratio_vs_python_parse: Option<f64>,

    pub startup: Startup,
    pub receiver_exit: String,
    pub receiver_stop_seconds: f64,
    pub receiver_log_lines: usize,
    pub receiver_log_first_lines: Vec<String>,

    pub issue_targets: Vec<IssueTarget>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IssueTarget {
    pub target: &'static str,
    pub measured: String,
    pub status: String,
}

impl RunReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: &RunSpec,
        shards: &[ShardReport],
        window: Window,
        memory: Memory,
        startup: Startup,
        receiver_exit: String,
        receiver_stop: Duration,
        python: Option<anyhow::Result<PythonBaseline>>,
        receiver_log_lines: usize,
        receiver_log_first_lines: Vec<String>,
    ) -> RunReport {
        let interval = spec.interval.as_secs_f64();
        let seconds = window.seconds.max(f64::MIN_POSITIVE);
        let polls_served: u64 = shards.iter().map(|s| s.served).sum();
        let polls_missed: u64 = shards.iter().map(|s| s.missed).sum();
        let worst = shards.iter().max_by_key(|s| s.max_gap_ns);
        let cpu = window.receiver.total().as_secs_f64();
        let per_poll = |total: f64| total / polls_served.max(1) as f64;
        let process_polls = (polls_served as f64 * spec.processes as f64).max(1.0);
        let export = window.export;
        let (python, python_error) = match python {
            Some(Ok(p)) => (Some(p), None),
            Some(Err(e)) => (None, Some(format!("{e:#}"))),
            None => (None, None),
        };
        let cpu_us_per_poll = per_poll(cpu) * 1e6;
        let mut report = RunReport {
            targets: spec.targets,
            processes: spec.processes,
            interval_seconds: interval,
            warmup_seconds: spec.warmup.as_secs_f64(),
            window_seconds: seconds,
            transport: spec.transport.name(),
            keep_alive: spec.keep_alive,
            process_resources: spec.process_resources,
            fleet_processes: shards.len(),
            polls_nominal: spec.targets as f64 * seconds / interval,
            polls_expected: polls_served + polls_missed,
            polls_served,
            polls_late: shards.iter().map(|s| s.late).sum(),
            polls_missed,
            max_gap_seconds: worst.map_or(0.0, |s| s.max_gap_ns as f64 / 1e9),
            max_gap_target: worst.map_or_else(String::new, |s| target_name(s.max_gap_target)),
            targets_never_polled: shards.iter().map(|s| s.never_polled).sum(),
            connections_opened: shards.iter().map(|s| s.connections_opened).sum(),
            config_info_calls_served: shards.iter().map(|s| s.config_info_served).sum(),
            config_info_calls_total: shards.iter().map(|s| s.config_info_total).sum(),
            receiver_cpu_user_seconds: window.receiver.user.as_secs_f64(),
            receiver_cpu_system_seconds: window.receiver.system.as_secs_f64(),
            receiver_cpu_seconds: cpu,
            receiver_cpu_us_per_poll: cpu_us_per_poll,
            receiver_average_cores: cpu / seconds,
            receiver_rss_bytes: memory.rss_bytes,
            receiver_peak_rss_bytes: memory.peak_rss_bytes,
            fleet_average_cores: window.fleet.as_secs_f64() / seconds,
            harness_average_cores: window.harness.as_secs_f64() / seconds,
            export,
            points_per_request: (export.points + export.self_points) as f64
                / export.requests.max(1) as f64,
            protobuf_bytes_per_process_per_interval: export.protobuf_bytes as f64 / process_polls,
            wire_bytes_per_process_per_interval: export.wire_bytes as f64 / process_polls,
            ratio_vs_python_parse: python
                .as_ref()
                .filter(|_| polls_served > 0)
                .map(|p| p.seconds_per_call * 1e6 / cpu_us_per_poll),
            python,
            python_error,
            startup,
            receiver_exit,
            receiver_stop_seconds: receiver_stop.as_secs_f64(),
            receiver_log_lines,
            receiver_log_first_lines,
            issue_targets: Vec::new(),
        };
        report.issue_targets = issue_targets(&report);
        report
    }
}

fn status(met: bool) -> String {
    if met { "met" } else { "NOT MET" }.to_string()
}

/// The issue's targets that one run can check, with this run's figure.
fn issue_targets(r: &RunReport) -> Vec<IssueTarget> {
    let on_time = r.polls_late == 0 && r.polls_missed == 0 && r.targets_never_polled == 0;
    let per_poll = r.receiver_cpu_us_per_poll;
    let per_poll_status = if r.processes == 10 {
        status(per_poll <= 50.0)
    } else if r.processes > 10 && per_poll <= 50.0 {
        format!("met (at {} processes; 10 cost less)", r.processes)
    } else {
        "n/a: stated at 10 processes (--processes 10 or --sweep)".to_string()
    };
    let fleet_scale = r.targets >= 10_000 && r.processes >= 20 && r.interval_seconds <= 10.0;
    let scale_note = if fleet_scale {
        String::new()
    } else {
        " at this scale (stated: 10,000 x 20, 10 s)".to_string()
    };
    let mut targets = vec![
        IssueTarget {
            target: "no poll late by more than 1 s",
            measured: format!(
                "{} late, {} missed, largest gap {:.2} s",
                r.polls_late, r.polls_missed, r.max_gap_seconds
            ),
            status: status(on_time) + &scale_note,
        },
        IssueTarget {
            target: "< 0.5 core on average",
            measured: format!("{:.3} cores", r.receiver_average_cores),
            status: status(r.receiver_average_cores < 0.5) + &scale_note,
        },
        IssueTarget {
            target: "< 200 MB RSS",
            measured: format!("{} peak", megabytes(r.receiver_peak_rss_bytes)),
            status: status(r.receiver_peak_rss_bytes < 200_000_000) + &scale_note,
        },
        IssueTarget {
            target: "<= 50 us CPU per poll of a 10-process target",
            measured: format!("{per_poll:.1} us at {} processes", r.processes),
            status: per_poll_status,
        },
        IssueTarget {
            target: "wire bytes/process/interval after gzip reported",
            measured: format!("{:.1} B", r.wire_bytes_per_process_per_interval),
            status: "reported".to_string(),
        },
    ];
    if let Some(ratio) = r.ratio_vs_python_parse {
        targets.push(IssueTarget {
            target: ">= 50x less CPU than Python's xmlrpc.client",
            measured: format!("{ratio:.1}x (whole poll vs Python's parse)"),
            status: if ratio >= 50.0 {
                "met (whole poll: stricter than the decoder alone)".to_string()
            } else {
                "n/a: the target is the decoder alone (cargo bench --bench ratio)".to_string()
            },
        });
    }
    targets
}

pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn print_machine(machine: &Machine) {
    println!(
        "machine: {} ({} cores), Linux {}",
        machine.cpu_model, machine.cores, machine.kernel
    );
}

pub fn print_run(r: &RunReport) {
    let e = &r.export;
    println!(
        "fleet: {} targets x {} processes, every {} s, {}{}{} ({} fleet processes)",
        thousands(r.targets as u64),
        r.processes,
        r.interval_seconds,
        r.transport,
        if r.keep_alive { "" } else { ", no keep-alive" },
        if r.process_resources {
            ""
        } else {
            ", process_resources: false"
        },
        r.fleet_processes
    );
    println!(
        "window: {:.1} s measured after a {:.1} s warm-up{}",
        r.window_seconds,
        r.warmup_seconds + r.startup.warmup_extended_seconds,
        if r.startup.warmup_extended_seconds > 0.5 {
            " (extended until every target was polled once)"
        } else {
            ""
        }
    );
    println!();
    println!("polls (counted by the fleet)");
    println!(
        "  served                       {:>14}   expected {} (nominal {})",
        thousands(r.polls_served),
        thousands(r.polls_expected),
        thousands(r.polls_nominal.round() as u64)
    );
    println!(
        "  late (gap > interval + 1 s)  {:>14}   largest gap {:.2} s ({})",
        thousands(r.polls_late),
        r.max_gap_seconds,
        r.max_gap_target
    );
    println!(
        "  missed                       {:>14}   targets never polled {}",
        thousands(r.polls_missed),
        r.targets_never_polled
    );
    println!(
        "  connections opened           {:>14}   (0: every poll reused its connection)",
        thousands(r.connections_opened)
    );
    println!(
        "  config info calls served     {:>14}   getAllConfigInfo, not polls; {} since start",
        thousands(r.config_info_calls_served),
        thousands(r.config_info_calls_total)
    );
    println!("receiver");
    println!(
        "  start: first poll after      {:>12.2} s   every target polled once after {:.2} s",
        r.startup.first_poll_seconds, r.startup.every_target_polled_seconds
    );
    println!(
        "  CPU                          {:>12.2} s   user {:.2} s, system {:.2} s",
        r.receiver_cpu_seconds, r.receiver_cpu_user_seconds, r.receiver_cpu_system_seconds
    );
    println!(
        "  CPU per poll                 {:>12.1} us",
        r.receiver_cpu_us_per_poll
    );
    println!(
        "  average cores                {:>14.3}",
        r.receiver_average_cores
    );
    println!(
        "  RSS                          {:>14}   peak {}",
        megabytes(r.receiver_rss_bytes),
        megabytes(r.receiver_peak_rss_bytes)
    );
    println!(
        "  stop after SIGTERM           {:>12.2} s   exit: {}",
        r.receiver_stop_seconds, r.receiver_exit
    );
    println!(
        "  log lines (WARN and above)   {:>14}",
        r.receiver_log_lines
    );
    for line in &r.receiver_log_first_lines {
        println!("    | {line}");
    }
    println!("OTLP export (gRPC, gzip) received in the window");
    println!(
        "  requests                     {:>14}   {} points per request",
        thousands(e.requests),
        thousands(r.points_per_request.round() as u64)
    );
    println!(
        "  data points                  {:>14}   + {} of the receiver's own metrics",
        thousands(e.points),
        thousands(e.self_points)
    );
    println!(
        "  resources                    {:>14}",
        thousands(e.resources)
    );
    println!(
        "  protobuf bytes               {:>14}   {:.1} per process per interval",
        thousands(e.protobuf_bytes),
        r.protobuf_bytes_per_process_per_interval
    );
    println!(
        "  gzip wire bytes              {:>14}   {:.1} per process per interval",
        thousands(e.wire_bytes),
        r.wire_bytes_per_process_per_interval
    );
    println!(
        "other processes: fleet {:.3} cores, harness and OTLP sink {:.3} cores",
        r.fleet_average_cores, r.harness_average_cores
    );
    match (&r.python, &r.python_error) {
        (Some(p), _) => {
            println!(
                "Python baseline ({}): xmlrpc.client.loads of one served reply ({} bytes): {:.1} us",
                p.python,
                thousands(p.reply_bytes),
                p.seconds_per_call * 1e6
            );
            if let Some(ratio) = r.ratio_vs_python_parse {
                println!("  receiver CPU per whole poll vs Python's parse alone: {ratio:.1} x");
            }
        }
        (None, Some(error)) => println!("Python baseline: not measured: {error}"),
        (None, None) => {}
    }
    println!();
    println!("issue targets");
    for t in &r.issue_targets {
        println!("  {:<48} {:<42} {}", t.target, t.measured, t.status);
    }
}
