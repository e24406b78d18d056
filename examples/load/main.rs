//! Fleet load harness: measures the real receiver polling a large simulated supervisord fleet
//! and exporting over OTLP.
//!
//! ```text
//! cargo run --release --example load -- [--targets 10000] [--processes 20] [--interval 10s]
//!     [--duration 60s] [--warmup 13s] [--transport tcp|unix] [--no-keep-alive]
//!     [--no-process-resources] [--sweep] [--json]
//!     [--soak [--churn-every 30s] [--churn-replace 5] [--churn-restart 2] [--restart-down 3s]
//!             [--sample-every 15s]]
//! ```
//!
//! # Roles
//!
//! One executable, three roles, so the receiver's CPU and memory are measured in a process of
//! its own. The orchestrator runs the other two by executing itself again with a hidden first
//! argument:
//!
//! - **orchestrator** (default): parses the options, starts the fleet, writes the receiver's
//!   config (native format: every target, the interval, one OTLP gRPC exporter with gzip to
//!   its own OTLP sink; everything else the receiver's defaults, but `process_resources: false`
//!   on each target with `--no-process-resources`), starts the receiver, waits for the
//!   warm-up, measures a window, stops everything and prints the report. Children are killed
//!   when the orchestrator returns, fails or panics (guards) and by the kernel when it is
//!   killed (`PR_SET_PDEATHSIG`); SIGINT and SIGTERM end the run cleanly.
//! - **fleet** (`__fleet SPEC`): up to `--targets-per-fleet` (4,000) simulated supervisord
//!   servers per process, because each target needs a listener and a connection and a process
//!   may hold 20,000 files. Replies are byte for byte supervisord 4.3.0's (compiled from the
//!   recorded replies in `tests/fixtures/xmlrpc/`, checked against them at start), with
//!   processes whose states, pids, start times and uptimes move with the clock (`sim.rs`), and
//!   `getAllConfigInfo` answered as supervisord does (about 2.5 KB per process, `autostart`
//!   false for one program in ten), so the receiver's configuration calls cost what they cost
//!   against a real fleet. Every poll's arrival time is recorded: the fleet is the external
//!   judge of punctuality.
//! - **receiver** (`__receiver CONFIG PARENT`): `supervisord-receiver run --config CONFIG`
//!   through the same library calls as `src/main.rs`, logging at WARN, stopped by SIGTERM.
//!
//! # Figures
//!
//! Everything is measured over the window only. It starts after the warm-up (default one
//! interval + 3 s: the receiver spreads its first polls over one interval after a 1 s initial
//! delay) and, if that was not enough, once every target has been polled once (the report says
//! when the warm-up was extended), so the window sees the steady state: connections open,
//! schedules running. The receiver's start-up is reported apart: time to its first poll and
//! to the first poll of the last target.
//!
//! - **polls served**: requests asking `getAllProcessInfo` that reached the fleet in the window.
//! - **config info calls served**: requests asking `getAllConfigInfo` in the window (and since
//!   start), not counted as polls. The receiver asks each target once after its first poll and
//!   again every 10 minutes, so a default run's window sees few or none: their cost is in the
//!   start-up and the peak RSS, and in CPU per poll only for windows of 10 minutes or more.
//! - **late**: gaps between two consecutive polls of a target above interval + 1 s, plus a
//!   target whose last poll is older than that when the window ends; **missed**: polls each
//!   target's own schedule called for that never came (a gap of k intervals, rounded, misses
//!   k - 1; at the end of the window, those due more than 1 s before it); **expected** is
//!   served + missed (the nominal targets x window / interval is printed beside it);
//!   **largest gap** over all targets. All from CLOCK_MONOTONIC timestamps taken by the fleet
//!   when a request is complete.
//! - **connections opened**: accepted by the fleet in the window; 0 means every poll reused
//!   its keep-alive connection.
//! - **receiver CPU**: user + system time of the receiver process (`/proc/<pid>/stat`, all
//!   threads) over the window; **per poll**: divided by polls served (the poll's share of
//!   exporting, and of any configuration calls in the window, included); **average cores**:
//!   divided by the window's length.
//! - **RSS**: VmRSS at the end of the window and VmHWM, the peak over the receiver's life
//!   (`/proc/<pid>/status`).
//! - **OTLP export**: counted by the sink in the window: requests, data points (supervisord's
//!   and, apart, the receiver's own metrics), resources, protobuf bytes (decompressed message
//!   size) and gzip wire bytes (the request body's gRPC frames as received, before
//!   decompression: HTTP/2 framing excluded). Per process per interval: divided by polls
//!   served x processes (the receiver's own metrics are in the bytes too: under 1 %).
//! - **fleet / harness cores**: CPU of the fleet processes and of the orchestrator (mostly the
//!   sink) over the window; they share the machine with the receiver.
//! - **Python baseline**: `benches/python_baseline.py` (CPython's `xmlrpc.client.loads`, the
//!   parser of Datadog's check, process CPU time, best of 5) on the exact bytes the fleet
//!   served to its first target, run after the window; the ratio is Python's parse of one
//!   reply over the receiver's CPU for one whole poll (request, decode, translate, encode,
//!   export share).
//! - **issue targets**: each stated target of the performance issue with this run's figure and
//!   whether it is met.
//!
//! `--sweep` makes short runs at several target counts (fixed processes) and process counts
//! (fixed targets) and prints the least-squares slope, intercept and R² of receiver cores
//! against targets and of CPU per poll against processes.
//!
//! `--soak` makes one long run (default: a 3-minute warm-up, a one-hour window) under churn:
//! every `--churn-every`, `--churn-replace` % of the targets are replaced by new ones (the
//! config is rewritten with the next rolling subset of a larger fleet, and the receiver gets
//! SIGHUP) and `--churn-restart` % of the supervisords restart (connections dropped, refused
//! for `--restart-down`, back with new start times and pids). It reads the receiver's VmRSS
//! every `--sample-every` over the window and prints the least-squares slope in MB per hour
//! with R², the first, last, smallest and largest reading, the reloads and restarts done, and
//! the usual figures; polls are judged late or missed only while they were due (the target in
//! the config and its supervisord up). See `soak.rs`.

mod child;
mod churn;
mod fit;
mod fleet;
mod http;
mod options;
mod procfs;
mod punctuality;
mod receiver;
mod reply;
mod report;
mod run;
mod sim;
mod sink;
mod soak;
mod sweep;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;

use crate::options::Options;
use crate::run::{RunSpec, INTERRUPTED};

/// The binary's allocator (src/main.rs), so the receiver role's memory is the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Default window of one sweep run: long enough for two polls of every target.
const SWEEP_DURATION: Duration = Duration::from_secs(20);
/// Default window and warm-up of a soak: long enough for a leak to show over the noise, and
/// for the receiver's memory to settle (allocator arenas, connections, the first
/// `getAllConfigInfo` of every target) under churn before the readings start.
const SOAK_DURATION: Duration = Duration::from_secs(3600);
const SOAK_WARMUP: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "__fleet" => fleet::main(arg(2)),
        "__receiver" => receiver::main(arg(2), arg(3)),
        _ => match orchestrate(Options::parse()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("load: error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn orchestrate(options: Options) -> anyhow::Result<()> {
    if options.targets == 0 || options.processes == 0 || options.interval.is_zero() {
        anyhow::bail!("--targets, --processes and --interval must be above 0");
    }
    child::raise_nofile().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("load: interrupted, cleaning up");
        INTERRUPTED.store(true, Ordering::Relaxed);
    });
    let machine = procfs::machine();
    let spec = |targets: usize, processes: usize, duration: Duration, python: bool| RunSpec {
        targets,
        processes,
        interval: options.interval,
        duration,
        warmup: options
            .warmup
            .unwrap_or(options.interval + Duration::from_secs(3)),
        transport: options.transport,
        targets_per_fleet: options.targets_per_fleet,
        keep_alive: !options.no_keep_alive,
        process_resources: !options.no_process_resources,
        python: (python && !options.no_python).then(|| options.python.clone()),
    };
    if options.soak {
        if options.churn_every.is_zero() || options.sample_every.is_zero() {
            anyhow::bail!("--churn-every and --sample-every must be above 0");
        }
        let duration = options.duration.unwrap_or(SOAK_DURATION);
        let mut run = spec(options.targets, options.processes, duration, false);
        run.warmup = options.warmup.unwrap_or(SOAK_WARMUP);
        let mut soak = soak::Soak::new(
            soak::SoakSpec {
                churn_every: options.churn_every,
                replace_percent: options.churn_replace,
                restart_percent: options.churn_restart,
                restart_down: options.restart_down,
                sample_every: options.sample_every,
            },
            options.targets,
        );
        let report = run::run_with(&run, runtime.handle(), Some(&mut soak))?;
        let report = soak::SoakReport::new(soak, report);
        if options.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "machine": machine,
                    "soak": report,
                }))?
            );
        } else {
            report::print_machine(&machine);
            soak::print(&report);
        }
    } else if options.sweep {
        let duration = options.duration.unwrap_or(SWEEP_DURATION);
        let mut by_targets = Vec::new();
        for &targets in &options.sweep_targets {
            let run = spec(targets, options.processes, duration, false);
            by_targets.push(run::run(&run, runtime.handle())?);
        }
        let mut by_processes = Vec::new();
        let mut runs = by_targets.len();
        for &processes in &options.sweep_processes {
            let targets = options.sweep_processes_targets;
            // The run at (targets, processes) may already be in the first series.
            let done = by_targets
                .iter()
                .find(|r| r.targets == targets && r.processes == processes);
            let report = match done {
                Some(report) => report.clone(),
                None => {
                    runs += 1;
                    run::run(&spec(targets, processes, duration, false), runtime.handle())?
                }
            };
            by_processes.push(report);
        }
        let sweep = sweep::SweepReport::new(by_targets, by_processes);
        if options.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "machine": machine,
                    "sweep": sweep,
                }))?
            );
        } else {
            report::print_machine(&machine);
            println!(
                "sweep: {} runs of {:?} each, every {:?}, {}",
                runs,
                duration,
                options.interval,
                options.transport.name()
            );
            sweep::print(&sweep);
        }
    } else {
        let duration = options.duration.unwrap_or(Duration::from_secs(60));
        let run = spec(options.targets, options.processes, duration, true);
        let report = run::run(&run, runtime.handle())?;
        if options.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "machine": machine,
                    "run": report,
                }))?
            );
        } else {
            report::print_machine(&machine);
            report::print_run(&report);
        }
    }
    Ok(())
}
