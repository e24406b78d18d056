//! What a poll costs the receiver, set against what it costs the supervisord it polls and what
//! Python's XML-RPC parser (the one behind Datadog's check) spends on the same reply.
//!
//! `cargo run --release --example supervisord_cost -- [--processes 10,100] [--polls N]`
//!
//! Method, for each process count:
//! - a real supervisord (`[inet_http_server]` on 127.0.0.1) starts with that many real programs,
//!   one in ten left STOPPED, one in ten EXITED, the rest RUNNING (`sleep`), spread over five
//!   groups; the run waits until every program has settled;
//! - the receiver's own poller (`TargetPoller`, the real HTTP client, decoder, filter and status
//!   mapping) polls it back to back on a current-thread runtime, one kept-alive connection,
//!   after a warm-up; each outcome is then written as OTLP protobuf and gzipped as the OTLP
//!   exporters do. Nothing else runs in this process meanwhile.
//! - over the same polls, the receiver's CPU comes from `CLOCK_PROCESS_CPUTIME_ID` (user +
//!   system, all threads, nanoseconds), read at each phase boundary; supervisord's from
//!   utime + stime in `/proc/<pid>/stat` (USER_HZ ticks, 10 ms here; the poll counts keep that
//!   resolution under a few percent);
//! - once every count is done and supervisord is gone, Python's `xmlrpc.client.loads` is timed
//!   on the very reply bytes polled (`benches/python_baseline.py`: process CPU, best of 7).
//!
//! The figures, per poll:
//! - `receiver`: the receiver's whole CPU for the poll, request to gzipped OTLP body; split
//!   into `transport+decode` (HTTP round trip on our side, XML-RPC decode, typed model, filter,
//!   status mapping), `translate+encode` (OTLP request, protobuf) and `gzip`. It includes three
//!   reads of the CPU clock, whose cost is printed. The export itself (the network send) is
//!   not included; in the service one request carries many targets' polls.
//! - `supervisord`: the CPU supervisord spends answering, plus its idle housekeeping over the
//!   same wall time (printed separately, small).
//! - `python loads`: decode only, a lower bound on what Datadog's check spends per poll.
//! - `wall`: elapsed time per poll, both sides' CPU plus any waiting on the loopback.
//! - `sup/recv` and `py/recv`: how many times the receiver's whole poll each of them costs.
//!
//! The figures move with the machine and its load; compare the ratios, taken in one run.

#[path = "../common/bench.rs"]
mod bench;
mod cpu;
mod daemon;
mod poll;
#[path = "../../tests/testkit/proc_tree.rs"]
mod proc_tree;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use supervisord_receiver::scrape::poller::TargetPoller;
use supervisord_receiver::settings::{Endpoint, Target};
use supervisord_receiver::supervisor::transport::RpcTransport;
use supervisord_receiver::supervisor::xmlrpc::{self, Value};
use supervisord_receiver::vocab::ProcessState;

use bench::provision::SupervisorTools;
use daemon::{Expected, Supervisord};

/// The calls of one poll, in the client's order (it encodes them the same way).
const POLL_CALLS: [&str; 4] = [
    "supervisor.getAllProcessInfo",
    "supervisor.getState",
    "supervisor.getIdentification",
    "supervisor.getSupervisorVersion",
];
/// How long programs may take to settle after supervisord answers.
const SETTLE_WAIT: Duration = Duration::from_secs(60);
/// Unmeasured polls first: the connection is opened, allocator and caches warm up.
const WARMUP_POLLS: u32 = 20;
/// The Python baseline's settings, as `benches/ratio.rs` passes them.
const PYTHON_REPEAT: u32 = 7;
const PYTHON_MIN_TIME: f64 = 0.05;

#[derive(Parser)]
#[command(about = "Receiver CPU per poll against a real supervisord's and Python's")]
struct Args {
    /// Process counts to measure at, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 100])]
    processes: Vec<usize>,
    /// Measured polls per count [default: 1000 up to 10 processes, 30,000 / processes above].
    #[arg(long)]
    polls: Option<u32>,
}

/// One row of the table.
struct Row {
    processes: usize,
    reply: Vec<u8>,
    totals: poll::Totals,
    /// supervisord's CPU ticks per second while nobody polls it.
    idle_ticks_per_second: f64,
    /// Client connections opened during the measured polls (0 when kept alive).
    new_connections: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.processes.is_empty() || args.processes.iter().any(|&n| n == 0 || n > 5_000) {
        bail!("--processes takes counts between 1 and 5000");
    }
    if args.polls == Some(0) {
        bail!("--polls must be at least 1");
    }
    let tools = bench::supervisor_tools()?;
    let version = tools.try_version().map_err(anyhow::Error::msg)?;
    let hz = cpu::clock_ticks_per_second()?;

    let mut rows = Vec::new();
    for &processes in &args.processes {
        let polls = args.polls.unwrap_or_else(|| default_polls(processes));
        rows.push(measure_count(&tools, processes, polls)?);
    }

    let replies = tempfile::tempdir()?;
    let mut files = Vec::new();
    for row in &rows {
        let path = replies
            .path()
            .join(format!("multicall-{}.xml", row.processes));
        std::fs::write(&path, &row.reply)?;
        files.push(path);
    }
    eprintln!("timing Python's xmlrpc.client.loads on the same replies");
    let (python, python_seconds) = python_baseline(&files)?;

    println!();
    println!("machine:     {}", cpu::machine());
    println!("supervisord: {version} ({})", tools.origin);
    println!(
        "receiver:    supervisord-receiver {} (this build)",
        env!("CARGO_PKG_VERSION")
    );
    println!("baseline:    {python} xmlrpc.client.loads, best of {PYTHON_REPEAT}");
    println!();
    print_table(&rows, &python_seconds, hz);
    print_notes(&rows, hz);
    Ok(())
}

/// Enough polls that supervisord's 10 ms ticks add up to about a hundred or more, while the
/// whole run stays near a minute even when each poll waits out a 40 ms delayed ACK.
fn default_polls(processes: usize) -> u32 {
    if processes <= 10 {
        1_000
    } else {
        u32::try_from(30_000 / processes).unwrap_or(50).max(50)
    }
}

fn measure_count(tools: &SupervisorTools, processes: usize, polls: u32) -> Result<Row> {
    eprintln!("{processes} processes: starting supervisord");
    let supervisord = Supervisord::start(tools, processes)?;
    let pid = supervisord.pid()?;
    let target = Target::new(
        "supervisord-cost",
        Endpoint::Tcp {
            tls: false,
            host: "127.0.0.1".to_owned(),
            port: supervisord.port,
        },
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let row = runtime.block_on(async {
        let reply = settle(&target, processes)
            .await
            .with_context(|| supervisord.logs())?;
        let idle_ticks_per_second = idle_rate(pid).await?;
        let mut poller = TargetPoller::new(target.clone())?;
        let warmup = WARMUP_POLLS;
        eprintln!("{processes} processes: {warmup} warm-up polls, then {polls} measured");
        let sockets_before = cpu::client_sockets_to(supervisord.port);
        // The warm-up opens the one connection the measured polls reuse.
        let totals = poll::measure(&mut poller, processes, warmup, polls, pid).await?;
        let sockets_after = cpu::client_sockets_to(supervisord.port);
        anyhow::Ok(Row {
            processes,
            reply,
            totals,
            idle_ticks_per_second,
            new_connections: sockets_after.saturating_sub(sockets_before + 1),
        })
    })?;
    drop(runtime);
    drop(supervisord);
    Ok(row)
}

/// Waits until every program is in its expected state, then returns one raw poll reply (the
/// bytes the Python baseline decodes), fetched with the receiver's own transport.
async fn settle(target: &Target, processes: usize) -> Result<Vec<u8>> {
    let poller = TargetPoller::new(target.clone())?;
    let want = |e: Expected| {
        daemon::programs(processes)
            .iter()
            .filter(|(_, _, x)| *x == e)
            .count()
    };
    let expected = [
        (ProcessState::Running, want(Expected::Running)),
        (ProcessState::Stopped, want(Expected::Stopped)),
        (ProcessState::Exited, want(Expected::Exited)),
    ];
    let started = Instant::now();
    loop {
        let seen = match poller.poll_raw().await {
            Ok(polled) => {
                let count = |state| {
                    polled
                        .snapshot
                        .processes
                        .iter()
                        .filter(|p| p.state == state)
                        .count()
                };
                let seen: Vec<(ProcessState, usize)> =
                    expected.iter().map(|&(s, _)| (s, count(s))).collect();
                if seen == expected {
                    break;
                }
                format!("{seen:?}")
            }
            Err(error) => error.to_string(),
        };
        if started.elapsed() > SETTLE_WAIT {
            bail!(
                "programs did not settle within {SETTLE_WAIT:?}; want {expected:?}, last: {seen}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "{processes} processes: settled after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let no_params: &[Value] = &[];
    let calls: Vec<(&str, &[Value])> = POLL_CALLS.iter().map(|&m| (m, no_params)).collect();
    let body = Bytes::from(xmlrpc::encode_multicall(&calls));
    let reply = RpcTransport::new(target)?.post(body).await?;
    Ok(reply.to_vec())
}

/// supervisord's CPU ticks per second with nobody polling (its one-second housekeeping).
async fn idle_rate(pid: u32) -> Result<f64> {
    const IDLE: Duration = Duration::from_secs(1);
    let before = cpu::stat_ticks(pid)?;
    let started = Instant::now();
    tokio::time::sleep(IDLE).await;
    let ticks = cpu::stat_ticks(pid)?.saturating_sub(before);
    Ok(ticks as f64 / started.elapsed().as_secs_f64())
}

/// Python's best CPU seconds per `loads` call, per file in order, and its version.
fn python_baseline(files: &[PathBuf]) -> Result<(String, Vec<f64>)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_baseline.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(["--repeat", &PYTHON_REPEAT.to_string()])
        .args(["--min-time", &PYTHON_MIN_TIME.to_string()])
        .args(files)
        .output()
        .context("cannot run python3 for the baseline")?;
    if !output.status.success() {
        bail!(
            "python3 {} failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("python baseline output is not JSON")?;
    let version = report["python"].as_str().unwrap_or("python3").to_owned();
    let times = report["results"]
        .as_array()
        .context("no results in the python baseline output")?
        .iter()
        .map(|r| r["best_cpu_seconds_per_call"].as_f64())
        .collect::<Option<Vec<f64>>>()
        .context("a python result has no per-call time")?;
    if times.len() != files.len() {
        bail!("python timed {} of {} files", times.len(), files.len());
    }
    Ok((version, times))
}

fn print_table(rows: &[Row], python_seconds: &[f64], hz: u64) {
    let header = |cells: [&str; 13]| {
        println!(
            "{:>9} {:>5} {:>7} | {:>8} {:>9} {:>9} {:>7} | {:>11} {:>8} | {:>8} {:>7} | {:>7} {:>7}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7],
            cells[8], cells[9], cells[10], cells[11], cells[12]
        )
    };
    header([
        "processes",
        "polls",
        "reply",
        "receiver",
        "transport",
        "translate",
        "gzip",
        "supervisord",
        "sup/recv",
        "python",
        "py/recv",
        "wall",
        "OTLP gz",
    ]);
    header([
        "",
        "",
        "bytes",
        "µs/poll",
        "+decode",
        "+encode",
        "",
        "µs/poll",
        "",
        "loads µs",
        "",
        "ms/poll",
        "bytes",
    ]);
    for (row, python) in rows.iter().zip(python_seconds) {
        let t = &row.totals;
        let per_poll = |ns: u64| ns as f64 / 1e3 / f64::from(t.polls);
        let transport = per_poll(t.transport_decode_ns);
        let translate = per_poll(t.translate_encode_ns);
        let gzip = per_poll(t.gzip_ns);
        let receiver = transport + translate + gzip;
        let supervisord = t.supervisord_ticks as f64 * 1e6 / hz as f64 / f64::from(t.polls);
        let python = python * 1e6;
        let wall = t.wall.as_secs_f64() * 1e3 / f64::from(t.polls);
        println!(
            "{:>9} {:>5} {:>7} | {:>8.1} {:>9.1} {:>9.1} {:>7.1} | {:>11.1} {:>7.2}x | {:>8.1} {:>6.2}x | {:>7.2} {:>7}",
            row.processes,
            t.polls,
            row.reply.len(),
            receiver,
            transport,
            translate,
            gzip,
            supervisord,
            supervisord / receiver,
            python,
            python / receiver,
            wall,
            t.gzip_bytes,
        );
    }
}

fn print_notes(rows: &[Row], hz: u64) {
    println!();
    println!(
        "receiver = transport+decode + translate+encode + gzip, process CPU; each poll includes 3 \
         clock reads of {:.2} µs.",
        cpu::clock_read_ns() / 1e3
    );
    println!(
        "supervisord = utime+stime over the same polls, {:.0} ms ticks; python = loads alone on \
         the reply bytes.",
        1e3 / hz as f64
    );
    println!("wall = elapsed time per poll: both sides' CPU plus any waiting on the loopback.");
    for row in rows {
        let t = &row.totals;
        let idle_us_per_poll =
            row.idle_ticks_per_second * 1e6 / hz as f64 * t.wall.as_secs_f64() / f64::from(t.polls);
        println!(
            "{} processes: supervisord idle {:.1} ms CPU/s (~{:.1} µs of its per-poll figure); \
             {} new connection(s) during the measured polls; OTLP {} B before gzip.",
            row.processes,
            row.idle_ticks_per_second * 1e3 / hz as f64,
            idle_us_per_poll,
            row.new_connections,
            t.otlp_bytes,
        );
    }
}
