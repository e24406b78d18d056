//! The tables: per call, per hour (from the per-call costs and each mode's calls per hour), and
//! the real windows set against what the per-call costs predict for the calls counted in them.

use std::time::Duration;

use supervisord_receiver::scrape::config_info::REFRESH_EVERY;
use supervisord_receiver::settings::DEFAULT_RECONCILE_INTERVAL;

use crate::calls::{cost_of, CallCost, Kind};
use crate::window::{Mode, Window};

/// `run`'s interval, as Datadog's check's default `min_collection_interval`.
pub const RUN_INTERVAL: Duration = Duration::from_secs(15);
/// Push mode's interval: fresher than the check's.
pub const PUSH_INTERVAL: Duration = Duration::from_secs(10);

/// What one process count measured.
pub struct Size {
    pub processes: usize,
    pub costs: Vec<CallCost>,
    pub windows: Vec<Window>,
}

impl Size {
    /// supervisord's idle CPU rate, from the window where nobody asked.
    pub fn idle_per_second(&self) -> f64 {
        self.windows
            .iter()
            .find(|w| w.mode == Mode::Idle)
            .map_or(0.0, |w| w.cpu_seconds / w.wall_seconds)
    }
}

/// Calls per hour of the two kinds that cost supervisord, in a steady hour (no state changes).
#[derive(Debug, Clone, Copy)]
struct Schedule {
    full: f64,
    config: f64,
}

/// Full polls every `every`; `getAllConfigInfo` at the first full poll at least
/// [`REFRESH_EVERY`] after the last (an upper bound: a poll a moment early waits for the next).
fn schedule(every: Duration) -> Schedule {
    let every = every.as_secs_f64();
    let config_every = (REFRESH_EVERY.as_secs_f64() / every).ceil() * every;
    Schedule {
        full: 3600.0 / every,
        config: 3600.0 / config_every,
    }
}

fn per_hour(costs: &[CallCost], schedule: Schedule) -> f64 {
    schedule.full * cost_of(costs, Kind::FullPoll)
        + schedule.config * cost_of(costs, Kind::ConfigInfo)
}

fn predicted(costs: &[CallCost], window: &Window) -> f64 {
    window.calls.full as f64 * cost_of(costs, Kind::FullPoll)
        + window.calls.config as f64 * cost_of(costs, Kind::ConfigInfo)
        + window.calls.fetch as f64 * cost_of(costs, Kind::ProcessInfo)
}

pub fn print(sizes: &[Size]) {
    let run = schedule(RUN_INTERVAL);
    let push = schedule(DEFAULT_RECONCILE_INTERVAL);
    println!();
    println!("supervisord CPU per call, its idle loop taken out (ms):");
    println!(
        "{:>9} | {:>12} {:>16} {:>17} {:>14} | {:>12}",
        "processes",
        "full poll",
        "getAllConfigInfo",
        "getProcessInfo(1)",
        "Datadog run",
        "idle ms/s"
    );
    for size in sizes {
        let ms = |kind| cost_of(&size.costs, kind) * 1e3;
        println!(
            "{:>9} | {:>12.3} {:>16.3} {:>17.3} {:>14.3} | {:>12.3}",
            size.processes,
            ms(Kind::FullPoll),
            ms(Kind::ConfigInfo),
            ms(Kind::ProcessInfo),
            ms(Kind::DatadogRun),
            size.idle_per_second() * 1e3,
        );
    }
    println!(
        "(calls measured: {})",
        sizes
            .iter()
            .map(|s| {
                let calls: Vec<String> = s.costs.iter().map(|c| c.calls.to_string()).collect();
                format!("{}: {}", s.processes, calls.join("/"))
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!();
    println!(
        "supervisord CPU per hour of being monitored (s/h), from the per-call costs: (a) {} full \
         polls + {} getAllConfigInfo an hour; (b) {} + {} (no state change; each burst of events \
         adds one getProcessInfo); (c) its idle loop, not in (a) or (b):",
        run.full, run.config, push.full, push.config
    );
    println!(
        "{:>9} | {:>12} {:>13} | {:>12} | {:>8} | {:>14}",
        "processes", "(a) run 15s", "(b) push 10s", "(c) idle", "(a)/(b)", "Datadog check"
    );
    for size in sizes {
        let a = per_hour(&size.costs, run);
        let b = per_hour(&size.costs, push);
        println!(
            "{:>9} | {:>12.2} {:>13.2} | {:>12.2} | {:>7.1}x | {:>14.2}",
            size.processes,
            a,
            b,
            size.idle_per_second() * 3600.0,
            a / b,
            run.full * cost_of(&size.costs, Kind::DatadogRun),
        );
    }
    println!();
    println!(
        "real windows: supervisord's CPU above its idle rate, against the per-call costs times \
         the calls counted at the relay (ms); and that window's rate over an hour (s/h):"
    );
    println!(
        "{:>9} {:>13} | {:>6} {:>5} {:>6} {:>6} | {:>9} {:>10} | {:>10}",
        "processes",
        "mode",
        "wall s",
        "full",
        "config",
        "fetch",
        "measured",
        "predicted",
        "window s/h"
    );
    for size in sizes {
        let idle = size.idle_per_second();
        for window in size.windows.iter().filter(|w| w.mode != Mode::Idle) {
            let above = window.cpu_seconds - idle * window.wall_seconds;
            println!(
                "{:>9} {:>13} | {:>6.1} {:>5} {:>6} {:>6} | {:>9.1} {:>10.1} | {:>10.2}",
                size.processes,
                window.mode.label(),
                window.wall_seconds,
                window.calls.full,
                window.calls.config,
                window.calls.fetch,
                above * 1e3,
                predicted(&size.costs, window) * 1e3,
                above / window.wall_seconds * 3600.0,
            );
        }
    }
    println!();
    println!(
        "A window starts with the receiver: push mode's window holds its first reconcile (and \
         config call), which an hour holds once, so its hourly rate overstates push mode; the \
         per-hour table counts the steady schedule. CPU is read in 10 ms ticks."
    );
}
