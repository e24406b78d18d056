//! `--sweep`: short runs varying targets, then processes, and the least-squares lines through
//! them. The issue asks for linear scaling and the measured slope: CPU should grow in
//! proportion to targets (same work per poll) and CPU per poll in proportion to processes.

use serde::Serialize;

use crate::fit::{fit, Fit};
use crate::report::{megabytes, thousands, RunReport};

#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub by_targets: Vec<RunReport>,
    pub by_processes: Vec<RunReport>,
    /// Average receiver cores against targets.
    pub cores_vs_targets: Option<Fit>,
    /// Receiver CPU per poll (µs) against processes per target.
    pub us_per_poll_vs_processes: Option<Fit>,
}

impl SweepReport {
    pub fn new(by_targets: Vec<RunReport>, by_processes: Vec<RunReport>) -> SweepReport {
        let cores: Vec<(f64, f64)> = by_targets
            .iter()
            .map(|r| (r.targets as f64, r.receiver_average_cores))
            .collect();
        let per_poll: Vec<(f64, f64)> = by_processes
            .iter()
            .map(|r| (r.processes as f64, r.receiver_cpu_us_per_poll))
            .collect();
        SweepReport {
            cores_vs_targets: fit(&cores),
            us_per_poll_vs_processes: fit(&per_poll),
            by_targets,
            by_processes,
        }
    }
}

fn row(r: &RunReport) {
    println!(
        "  {:>7} {:>9} {:>9} {:>10.1} {:>8.3} {:>10} {:>5} {:>7} {:>8.2} {:>9.1}",
        thousands(r.targets as u64),
        r.processes,
        thousands(r.polls_served),
        r.receiver_cpu_us_per_poll,
        r.receiver_average_cores,
        megabytes(r.receiver_peak_rss_bytes),
        r.polls_late,
        r.polls_missed,
        r.max_gap_seconds,
        r.wire_bytes_per_process_per_interval,
    );
}

pub fn print(s: &SweepReport) {
    println!(
        "  {:>7} {:>9} {:>9} {:>10} {:>8} {:>10} {:>5} {:>7} {:>8} {:>9}",
        "targets",
        "processes",
        "polls",
        "us/poll",
        "cores",
        "peak RSS",
        "late",
        "missed",
        "max gap",
        "wire B/pi"
    );
    for r in s.by_targets.iter().chain(&s.by_processes) {
        row(r);
    }
    println!("  (wire B/pi: gzip wire bytes per process per interval)");
    println!();
    if let Some(f) = s.cores_vs_targets {
        println!(
            "receiver cores vs targets: slope {:.4} cores per 1,000 targets \
             ({:.2} us of CPU per target per second), intercept {:.4} cores, R^2 {:.4}",
            f.slope * 1000.0,
            f.slope * 1e6,
            f.intercept,
            f.r_squared
        );
        println!(
            "  line at 10,000 targets: {:.3} cores",
            f.slope * 10_000.0 + f.intercept
        );
    }
    if let Some(f) = s.us_per_poll_vs_processes {
        println!(
            "receiver CPU per poll vs processes: slope {:.2} us per process, intercept {:.1} us, \
             R^2 {:.4}",
            f.slope, f.intercept, f.r_squared
        );
        println!(
            "  line at 10 processes: {:.1} us per poll (target <= 50 us)",
            f.slope * 10.0 + f.intercept
        );
    }
}
