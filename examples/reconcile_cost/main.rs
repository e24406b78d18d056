//! supervisord's own CPU per hour of being monitored: polled every 15 s as Datadog's check does
//! (the receiver's `run`), against push mode every 10 s with the default reconcile (the
//! receiver as supervisord's event listener), each less supervisord's idle loop.
//!
//! `cargo build --release && cargo run --release --example reconcile_cost -- [--processes
//! 10,100,500] [--window 30] [--call-budget 3]`
//!
//! Method, for each process count (defaults: 10, 100 and 500, in about 6 minutes in all):
//! - a real supervisord on a UNIX socket with that many real programs (`sleep`, RUNNING), and
//!   the receiver as an `[eventlistener:otel]` that is started only for the push window. Every
//!   receiver reaches supervisord through a recording relay, which counts the calls it asks
//!   for, inside multicalls too;
//! - (c) a window with nobody asking: supervisord's idle rate (its once-a-second loop);
//! - per call: each kind of call made back to back for `--call-budget` seconds (at least ten
//!   calls): supervisord's CPU (utime + stime from `/proc/<pid>/stat`) less its idle rate over
//!   the same wall time, per call. The kinds: the receiver's full poll (the multicall of
//!   `getAllProcessInfo`, `getState`, `getIdentification`, `getSupervisorVersion`),
//!   `getAllConfigInfo`, push mode's fetch of one process (`getProcessInfo`), and a run of
//!   Datadog's check (`getAllProcessInfo` then `getSupervisorVersion`, a new connection each);
//! - per hour: each mode's calls in a steady hour times their per-call costs. (a) `run` at
//!   15 s: 240 full polls and at most 6 `getAllConfigInfo`; (b) push mode at 10 s with the
//!   default `reconcile_interval` (5 min): 12 full polls, at most 6 `getAllConfigInfo`, no call
//!   at the other intervals, and one `getProcessInfo` multicall per burst of state changes;
//! - the cross-check: a real window of `--window` seconds of each mode (the receiver binary
//!   exporting to an OTLP sink in this process), supervisord's CPU above its idle rate set
//!   against what the per-call costs predict for the calls the relay counted.
//!
//! The figures move with the machine and its load (the other processes on the machine share
//! its cores); compare the ratios, taken in one run.

#[path = "../common/bench.rs"]
mod bench;
mod calls;
#[path = "../push_latency/daemon.rs"]
mod daemon;
#[allow(dead_code)]
#[path = "../../tests/testkit/otlp_sink.rs"]
mod otlp_sink;
#[path = "../../tests/testkit/proc_tree.rs"]
mod proc_tree;
#[path = "../../tests/e2e/push/relay.rs"]
mod relay;
mod report;
#[allow(dead_code)]
#[path = "../push_latency/rpc.rs"]
mod rpc;
mod window;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use supervisord_receiver::supervisor::xmlrpc::Value;

use report::{Size, PUSH_INTERVAL, RUN_INTERVAL};
use window::{Mode, Setup, LISTENER};

/// How long the programs may take to reach RUNNING.
const SETTLE_WAIT: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(about = "supervisord's CPU per hour: polled every 15 s against push mode")]
struct Args {
    /// Process counts to measure at, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 100, 500])]
    processes: Vec<usize>,
    /// Seconds of each real window (nobody, run, push).
    #[arg(long, default_value_t = 30)]
    window: u64,
    /// Seconds of back-to-back calls per kind of call.
    #[arg(long, default_value_t = 3.0)]
    call_budget: f64,
    /// The receiver binary [default: supervisord-receiver beside this example's profile dir].
    #[arg(long)]
    receiver: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.processes.is_empty() || args.processes.iter().any(|&n| n == 0 || n > 2_000) {
        bail!("--processes takes counts between 1 and 2000");
    }
    if args.window < 5 || args.call_budget.is_nan() || args.call_budget <= 0.0 {
        bail!("--window takes at least 5 seconds, --call-budget more than 0");
    }
    let started = Instant::now();
    let load_before = bench::load_average();
    let tools = bench::supervisor_tools()?;
    let version = tools.try_version().map_err(anyhow::Error::msg)?;
    let binary = bench::receiver_binary(args.receiver.as_deref())?;
    let stale = bench::warn_if_stale(&binary);
    let hz = bench::clock_ticks_per_second()?;
    let sink = otlp_sink::OtlpSink::start();

    let mut sizes = Vec::new();
    for &processes in &args.processes {
        sizes.push(measure_size(&args, &tools, &binary, &sink, hz, processes)?);
    }

    println!();
    bench::print_environment(
        &[load_before, bench::load_average()],
        &tools,
        &version,
        &binary,
        stale,
    );
    println!(
        "run:         {:.0} s; windows of {} s, {} s of calls per kind",
        started.elapsed().as_secs_f64(),
        args.window,
        args.call_budget
    );
    report::print(&sizes);
    Ok(())
}

fn measure_size(
    args: &Args,
    tools: &daemon::SupervisorTools,
    binary: &Path,
    sink: &otlp_sink::OtlpSink,
    hz: u64,
    processes: usize,
) -> Result<Size> {
    eprintln!("{processes} processes: starting supervisord");
    let mut relay = None;
    let supervisord = daemon::Supervisord::start(tools, processes, |dir| {
        let opened = relay::Relay::start(&dir.join("supervisor.sock"));
        let section = listener_section(dir, binary, &opened.url(), &sink.grpc_endpoint())?;
        relay = Some(opened);
        Ok(section)
    })?;
    let relay = relay.context("no relay")?;
    let rpc = supervisord.rpc();
    settle(&rpc, processes).with_context(|| supervisord.logs())?;
    let pid = supervisord_pid(supervisord.dir())?;
    let setup = Setup {
        pid,
        hz,
        relay: &relay,
        rpc: supervisord.rpc(),
        binary: binary.to_path_buf(),
        run_config: supervisord.dir().join("run.yaml"),
        log_dir: supervisord.dir().to_path_buf(),
    };
    let length = Duration::from_secs(args.window);
    eprintln!("{processes} processes: {length:?} with nobody asking");
    let idle = window::measure(Mode::Idle, &setup, length)?;
    let idle_rate = idle.cpu_seconds / idle.wall_seconds;
    eprintln!("{processes} processes: per-call costs");
    let costs = calls::measure(
        supervisord.socket(),
        pid,
        hz,
        idle_rate,
        Duration::from_secs_f64(args.call_budget),
        &format!("{}:p0", daemon::GROUP),
    )?;
    let mut windows = vec![idle];
    for mode in [Mode::Run, Mode::Push] {
        eprintln!("{processes} processes: {length:?} of {}", mode.label());
        windows.push(
            window::measure(mode, &setup, length)
                .with_context(|| format!("{}\n{}", supervisord.logs(), listener_log(&setup)))?,
        );
    }
    Ok(Size {
        processes,
        costs,
        windows,
    })
}

/// The listener's section (started only for the push window) and both receivers' files.
fn listener_section(dir: &Path, binary: &Path, endpoint: &str, sink: &str) -> Result<String> {
    let config = |interval: Duration| {
        format!(
            "collection_interval: {}s\ntargets:\n  - name: cost\n    endpoint: {endpoint}\n\
             exporters:\n  otlp:\n    endpoint: {sink}\ntelemetry:\n  metrics: false\n",
            interval.as_secs()
        )
    };
    fs::write(dir.join("run.yaml"), config(RUN_INTERVAL))?;
    let push = dir.join("push.yaml");
    fs::write(&push, config(PUSH_INTERVAL))?;
    Ok(format!(
        "[eventlistener:{LISTENER}]\ncommand={} listen --config {}\n\
         events=PROCESS_STATE,SUPERVISOR_STATE_CHANGE,PROCESS_GROUP\nbuffer_size=100\n\
         autostart=false\nautorestart=false\nstartsecs=0\nstderr_logfile={}\n\
         environment=RUST_LOG=\"warn\"",
        binary.display(),
        push.display(),
        dir.join("listener.log").display()
    ))
}

fn listener_log(setup: &Setup<'_>) -> String {
    fs::read_to_string(setup.log_dir.join("listener.log")).unwrap_or_default()
}

/// Waits until every program runs.
fn settle(rpc: &rpc::Rpc, processes: usize) -> Result<()> {
    let started = Instant::now();
    loop {
        let list = rpc.call("supervisor.getAllProcessInfo", &[])?;
        let running = list.as_array().map_or(0, |entries| {
            entries
                .iter()
                .filter(|e| e.get("statename").and_then(Value::as_str) == Some("RUNNING"))
                .count()
        });
        if running >= processes {
            return Ok(());
        }
        if started.elapsed() > SETTLE_WAIT {
            bail!("{running} of {processes} programs running after {SETTLE_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// supervisord's pid, from its pidfile.
fn supervisord_pid(dir: &Path) -> Result<u32> {
    let text = fs::read_to_string(dir.join("supervisord.pid")).context("supervisord.pid")?;
    text.trim().parse().context("supervisord.pid")
}
