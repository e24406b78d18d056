//! What one poll costs the receiver when its target is the only one: the most common
//! deployment (one receiver per host, one supervisord), where no poll shares its wake-ups,
//! timers or export request with another target's. Reported beside the whole-poll cost of
//! Python's `xmlrpc.client` doing what Datadog's check does, on the same supervisord, in the
//! same run.
//!
//! ```text
//! cargo build --release && cargo run --release --example lone_poll -- \
//!     [--programs 10] [--interval 1s] [--duration 30] [--exporters grpc,http,debug] \
//!     [--python-runs 300] [--receiver PATH]
//! ```
//!
//! Method:
//! - a real supervisord (`[inet_http_server]` on 127.0.0.1) runs `--programs` real programs
//!   (one in ten STOPPED, one in ten EXITED, the rest RUNNING `sleep`), as in the
//!   `supervisord_cost` example; the run waits until they settle;
//! - for each exporter, a fresh receiver (the release binary beside this example, or
//!   `--receiver`) runs `run` with that one target at `collection_interval: --interval`, every
//!   other setting its default but the receiver's own telemetry (off) and `initial_delay: 0s`;
//!   it exports to a real OTLP server in this process (gRPC or HTTP, gzip as by default) or
//!   with the `debug` exporter (`verbosity: basic`, stdout to a file);
//! - after its first export and 3 s more, a window of `--duration` seconds is measured: the
//!   receiver's CPU time from its process CPU clock (every thread, user + system, in
//!   nanoseconds), divided by the polls the window holds (`duration / interval`: the receiver
//!   keeps its schedule; the metrics requests the server counted are printed beside it);
//! - start-up: the time from spawning the receiver to the first metrics request at the server
//!   (it includes the first poll and the pipeline's 200 ms batch window), and its peak RSS;
//! - Python: `python_poll.py` beside this file, the same supervisord, process CPU per run, best
//!   of 5 batches.
//!
//! No figure is asserted; the ratios are computed in the run, against the baseline measured in
//! it.

#[path = "../common/bench.rs"]
mod bench;
#[allow(dead_code)]
#[path = "../supervisord_cost/daemon.rs"]
mod daemon;
#[allow(dead_code)]
#[path = "../../tests/testkit/otlp_sink.rs"]
mod otlp_sink;
#[allow(dead_code)]
#[path = "../../tests/testkit/proc_tree.rs"]
mod proc_tree;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use daemon::Supervisord;
use otlp_sink::OtlpSink;

/// Time after the first export before the window: connections open, caches warm.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long the receiver may take to export its first poll.
const FIRST_EXPORT_WAIT: Duration = Duration::from_secs(20);

#[derive(Parser)]
#[command(about = "Receiver CPU per poll of a lone target, against Python's whole poll")]
struct Args {
    /// Programs the supervisord runs.
    #[arg(long, default_value_t = 10)]
    programs: usize,
    /// The receiver's collection_interval, in seconds.
    #[arg(long, default_value_t = 1)]
    interval: u64,
    /// The measured window per exporter, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Exporters to measure, in order: grpc, http, debug.
    #[arg(long, value_delimiter = ',', default_values_t = ["grpc".to_owned(), "http".to_owned(), "debug".to_owned()])]
    exporters: Vec<String>,
    /// Runs per batch of the Python baseline.
    #[arg(long, default_value_t = 300)]
    python_runs: u32,
    /// The receiver binary [default: target/release/supervisord-receiver].
    #[arg(long)]
    receiver: Option<std::path::PathBuf>,
}

struct Row {
    exporter: String,
    cpu_per_poll_us: f64,
    polls: f64,
    requests: usize,
    startup: Duration,
    peak_rss_kib: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.interval == 0 || args.duration == 0 || args.programs == 0 {
        bail!("--interval, --duration and --programs must be at least 1");
    }
    if let Some(bad) = args
        .exporters
        .iter()
        .find(|e| !matches!(e.as_str(), "grpc" | "http" | "debug"))
    {
        bail!("unknown exporter {bad:?}: grpc, http or debug");
    }
    let binary = bench::receiver_binary(args.receiver.as_deref())?;
    let stale = bench::warn_if_stale(&binary);
    let tools = bench::supervisor_tools()?;
    let version = tools.try_version().map_err(anyhow::Error::msg)?;
    let load_before = bench::load_average();

    eprintln!("starting supervisord with {} programs", args.programs);
    let supervisord = Supervisord::start(&tools, args.programs)?;
    let url = format!("http://127.0.0.1:{}", supervisord.port);
    wait_settled(&url, args.programs)?;

    let mut rows = Vec::new();
    for exporter in &args.exporters {
        eprintln!("{exporter}: measuring {} s", args.duration);
        rows.push(measure(&binary, &url, exporter, &args)?);
    }
    eprintln!("python: {} runs per batch", args.python_runs);
    let python = python_baseline(&url, args.python_runs)?;
    drop(supervisord);
    let load = [load_before, bench::load_average()];

    println!();
    bench::print_environment(&load, &tools, &version, &binary, stale);
    println!(
        "binary:      {:.1} MB on disk",
        fs::metadata(&binary)?.len() as f64 / 1e6
    );
    println!(
        "target:      one supervisord, {} programs, TCP, collection_interval {}s; window {} s \
         per exporter after the first export and {} s",
        args.programs,
        args.interval,
        args.duration,
        WARM_UP.as_secs()
    );
    println!(
        "baseline:    {} xmlrpc.client, a new ServerProxy, getAllProcessInfo and \
         getSupervisorVersion per run (the check's calls): {:.0} µs of CPU per run",
        python.version,
        python.seconds_per_run * 1e6
    );
    println!();
    println!(
        "| exporter | receiver µs per poll | Python / receiver | polls in window | metrics \
         requests | start-up to first export | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {:.0} | {:.1}x | {:.0} | {} | {:.0} ms | {:.1} MB |",
            row.exporter,
            row.cpu_per_poll_us,
            python.seconds_per_run * 1e6 / row.cpu_per_poll_us,
            row.polls,
            row.requests,
            row.startup.as_secs_f64() * 1e3,
            row.peak_rss_kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// Waits until supervisord answers and every program has left STARTING (the `supervisord_cost`
/// example's programs: RUNNING `sleep`s settle after 1 s, `true`s exit at once).
fn wait_settled(url: &str, programs: usize) -> Result<()> {
    let script = "import sys, xmlrpc.client\n\
                  s = xmlrpc.client.ServerProxy(sys.argv[1])\n\
                  print(sum(p['statename'] not in ('STARTING', 'BACKOFF') \
                  for p in s.supervisor.getAllProcessInfo()))\n";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("python3").args(["-c", script, url]).output()?;
        let settled: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if settled == programs {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("programs did not settle within 60 s ({settled} of {programs})");
        }
        thread::sleep(Duration::from_millis(300));
    }
}

fn measure(binary: &Path, url: &str, exporter: &str, args: &Args) -> Result<Row> {
    let dir = tempfile::tempdir()?;
    let sink = OtlpSink::start();
    let exporters = match exporter {
        "grpc" => format!(
            "  otlp:\n    protocol: grpc\n    endpoint: {}\n",
            sink.grpc_endpoint()
        ),
        "http" => format!(
            "  otlp:\n    protocol: http/protobuf\n    endpoint: {}\n",
            sink.http_endpoint()
        ),
        _ => "  debug:\n    verbosity: basic\n".to_owned(),
    };
    let config = dir.path().join("receiver.yaml");
    fs::write(
        &config,
        format!(
            "collection_interval: {interval}s\ninitial_delay: 0s\ntimeout: {interval}s\n\
             targets:\n  - name: lone\n    endpoint: {url}\n\
             exporters:\n{exporters}telemetry:\n  metrics: false\n",
            interval = args.interval
        ),
    )?;
    let log = dir.path().join("receiver.log");
    let spawned = Instant::now();
    let mut receiver = bench::Receiver::start(binary, &config, &log, &[])?;
    let pid = receiver.pid();
    let first_export = |sink: &OtlpSink| -> bool {
        if exporter == "debug" {
            fs::read_to_string(&log).is_ok_and(|text| text.contains("can_connect="))
        } else {
            !sink.requests().is_empty()
        }
    };
    while !first_export(&sink) {
        receiver.check_alive()?;
        if spawned.elapsed() > FIRST_EXPORT_WAIT {
            bail!(
                "no export within {FIRST_EXPORT_WAIT:?}:\n{}",
                receiver.log()
            );
        }
        thread::sleep(Duration::from_millis(2));
    }
    let startup = spawned.elapsed();
    thread::sleep(WARM_UP);
    let requests_before = sink.requests().len();
    let cpu_before = bench::cpu_ns(pid).context("cannot read the receiver's CPU clock")?;
    let started = Instant::now();
    thread::sleep(Duration::from_secs(args.duration));
    let cpu_after = bench::cpu_ns(pid).context("cannot read the receiver's CPU clock")?;
    let window = started.elapsed();
    receiver.check_alive()?;
    let requests = sink.requests().len() - requests_before;
    let peak_rss_kib = bench::peak_rss_kib(pid).unwrap_or(0);
    let warnings = receiver.warnings();
    if !warnings.is_empty() {
        eprintln!("{exporter}: the receiver warned:\n{}", warnings.join("\n"));
    }
    let polls = window.as_secs_f64() / args.interval as f64;
    Ok(Row {
        exporter: exporter.to_owned(),
        cpu_per_poll_us: (cpu_after - cpu_before) as f64 / 1e3 / polls,
        polls,
        requests,
        startup,
        peak_rss_kib,
    })
}

struct Python {
    seconds_per_run: f64,
    version: String,
}

fn python_baseline(url: &str, runs: u32) -> Result<Python> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lone_poll/python_poll.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(url)
        .arg(runs.to_string())
        .output()
        .context("cannot run python3")?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(Python {
        seconds_per_run: json["seconds_per_run"]
            .as_f64()
            .context("no seconds_per_run")?,
        version: json["python"].as_str().unwrap_or("Python").to_owned(),
    })
}
