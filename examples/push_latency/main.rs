//! How long after a program's state changes its OTLP log record is at the backend, in push mode
//! (the receiver as supervisord's event listener) and in polling mode (`run`, polling every
//! second).
//!
//! `cargo build --release && cargo run --release --example push_latency -- [--changes 120]
//! [--mode push|poll|both] [--kills 30] [--bursts 10] [--samples FILE.csv]`
//!
//! The receiver is the real release binary, `target/release/supervisord-receiver` beside this
//! example (`--receiver PATH` for another); it is not built by `cargo run --example`, so it
//! must be built first, and a binary older than `src/` is reported.
//!
//! Method, for each mode:
//! - a real supervisord (UNIX socket) runs six programs (`sleep`, `startsecs=0`,
//!   `autorestart=false`) in one group; an OTLP server in this process (the tests' sink: tonic
//!   gRPC) receives, and the receiver exports over OTLP/gRPC, compression none, self-telemetry
//!   off;
//! - push: supervisord runs the receiver from an `[eventlistener:otel]` section
//!   (`events=PROCESS_STATE,SUPERVISOR_STATE_CHANGE`, endpoint `${env:SUPERVISOR_SERVER_URL}`),
//!   `collection_interval: 10s`, so the records come from the events; poll: `run` beside
//!   supervisord with `collection_interval: 1s` (expected: half an interval on average, plus
//!   the export);
//! - after the first poll reached the sink (the baseline), `--changes` changes are made one at
//!   a time, the programs in turn, each stopped then started: `supervisor.stopProcess` /
//!   `startProcess` with `wait=false`, sent straight over the socket. supervisord makes the
//!   transition (RUNNING to STOPPING, STOPPED to STARTING) while it handles the request, so
//!   the change's instant is read right before the request's first byte is written;
//!   `supervisorctl` would add 100-200 ms of Python start-up in which the instant is unknown;
//! - its latency ends when the sink has decoded the logs request holding the first record of
//!   that program from the state before the change to a state that reports it (stop:
//!   STOPPING or STOPPED, start: STARTING or RUNNING: push mode reports the transient state, a
//!   poll the settled one). No record within 10 s (push) or 5 s (poll) ends the run with an
//!   error;
//! - before each change, once the program is in the state the change needs, a random pause:
//!   300-600 ms in push mode (longer than the pipeline's 200 ms batch window, so no change
//!   rides in the previous one's batch), 100-1100 ms in polling mode (changes fall at every
//!   phase of the poll schedule). supervisord is idle when the change comes;
//! - then `--kills` crashes, reported apart: SIGKILL to a program's pid, the instant read
//!   right before the signal, until its EXITED record. supervisord wakes on the closed stdout
//!   pipe and reaps the child at once; had it been busy at that moment (say, finishing an
//!   XML-RPC reply), it could look before the child is a zombie and reap it only on its
//!   loop's next one-second tick. Each program is started again, unmeasured;
//! - then `--bursts` times, the whole group is stopped and started in one call
//!   (`stopProcessGroup` / `startProcessGroup`): six programs' events at once, each program's
//!   latency from that call;
//! - once done, every record of the programs is counted by transition against what the
//!   changes made, to show lost or duplicated records.
//!
//! The columns: the latency (change to arrival at the sink: min, median, p99 by nearest rank,
//! max); "seen by receiver", the change to the record's observed time (when the receiver got
//! the event, or polled); "then to sink", the rest (batching, encoding, export); "reported
//! as", the states of the records that ended the changes' latencies. The run fails
//! when fewer than 100 single changes of a mode were measured. No figure is asserted: the goal
//! (push p99 under 100 ms) is reported as met or not.

#[path = "../common/bench.rs"]
mod bench;
mod daemon;
mod measure;
#[allow(dead_code)]
#[path = "../../tests/testkit/otlp_sink.rs"]
mod otlp_sink;
#[path = "../../tests/testkit/proc_tree.rs"]
mod proc_tree;
mod report;
mod rpc;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use measure::{Mode, Plan};

/// Fewer single changes than this per mode is not a figure.
const MIN_SAMPLES: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Modes {
    Push,
    Poll,
    Both,
}

#[derive(Parser)]
#[command(about = "State change to OTLP log record at the backend: push mode against polling")]
struct Args {
    /// Single changes per mode (at least 100 for a figure).
    #[arg(long, default_value_t = 120)]
    changes: usize,
    /// Which mode to measure.
    #[arg(long, value_enum, default_value_t = Modes::Both)]
    mode: Modes,
    /// Crashes (SIGKILL) per mode after the single changes, reported apart (0: none).
    #[arg(long, default_value_t = 30)]
    kills: usize,
    /// Stops and starts of the whole group in one call, after the crashes (0: none).
    #[arg(long, default_value_t = 10)]
    bursts: usize,
    /// The receiver binary [default: target/release/supervisord-receiver beside this example].
    #[arg(long)]
    receiver: Option<PathBuf>,
    /// Also write every sample to this CSV file (mode, phase, kind, state, latency_ms,
    /// seen_ms).
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.changes == 0 {
        bail!("--changes must be at least 1 (and 100 for a figure)");
    }
    let binary = receiver_binary(args.receiver.as_deref())?;
    let stale = bench::warn_if_stale(&binary);
    let tools = bench::supervisor_tools()?;
    let version = tools.try_version().map_err(anyhow::Error::msg)?;
    let modes = match args.mode {
        Modes::Push => vec![Mode::Push],
        Modes::Poll => vec![Mode::Poll],
        Modes::Both => vec![Mode::Push, Mode::Poll],
    };
    let plan = Plan {
        tools: &tools,
        binary: &binary,
        changes: args.changes,
        kills: args.kills,
        bursts: args.bursts,
    };
    let load_before = bench::load_average();
    let mut runs = Vec::new();
    for mode in modes {
        eprintln!(
            "{}: {} changes, {} kills, {} bursts",
            mode.label(),
            args.changes,
            args.kills,
            args.bursts
        );
        runs.push(measure::run(mode, &plan)?);
    }
    let load = [load_before, bench::load_average()];

    println!();
    bench::print_environment(&load, &tools, &version, &binary, stale);
    println!("export:      OTLP/gRPC, compression none, to a tonic server in this process");
    println!(
        "push:        `listen` run by supervisord ([eventlistener:otel], \
         events=PROCESS_STATE,SUPERVISOR_STATE_CHANGE), collection_interval {}",
        Mode::Push.interval()
    );
    println!(
        "poll:        `run` over the UNIX socket, collection_interval {}",
        Mode::Poll.interval()
    );
    println!(
        "changes:     {n} programs in turn, stopped then started over XML-RPC; kills: SIGKILL, \
         then an unmeasured start; bursts: the group of {n} stopped, then started, in one call",
        n = measure::PROGRAMS
    );
    println!();
    report::print(&runs);
    if let Some(path) = &args.samples {
        fs::write(path, report::csv(&runs))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }

    let short: Vec<String> = runs
        .iter()
        .filter_map(|run| {
            let n = report::single_summary(run).map_or(0, |s| s.count);
            (n < MIN_SAMPLES).then(|| format!("{}: {n}", run.mode.label()))
        })
        .collect();
    if !short.is_empty() {
        bail!(
            "fewer than {MIN_SAMPLES} changes measured ({}): not a figure",
            short.join(", ")
        );
    }
    Ok(())
}

/// The receiver binary ([`bench::receiver_binary`]), as an absolute path: supervisord runs the
/// listener's command from its own directory.
fn receiver_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = bench::receiver_binary(explicit)?;
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}
