//! Log tail throughput: how many lines per second the output tail delivers from a program that
//! writes far faster than it is read, and what that costs the receiver and supervisord in CPU,
//! against the same receiver with output off measured in the same run.
//!
//! ```text
//! cargo build --release && cargo run --release --example tail_throughput -- \
//!     [--duration 20] [--per-poll-kib 256,1024,4096] [--backlog-kib 8192] \
//!     [--rate 50000000] [--compression gzip|none] [--receiver PATH]
//! ```
//!
//! The receiver is the real release binary, `target/release/supervisord-receiver` beside this
//! example (`--receiver PATH` for another); `cargo run --example` does not build it, so build
//! it first; a binary older than `src/` is reported.
//!
//! Method, for each configuration in turn (output off, then one per `--per-poll-kib` value),
//! each with fresh processes:
//! - a real supervisord (UNIX socket) runs one program, a Python loop that writes numbered
//!   lines of exactly 100 bytes (`000000000000012345 xxx…x\n`) to stdout, paced at `--rate`
//!   bytes per second (default 50 MB/s, twelve times the largest default `max_bytes_per_poll`
//!   per second; 0: as fast as supervisord drains the pipe, 170-190 MB/s on a 2-core VM), to
//!   `stdout_logfile` with `stdout_logfile_maxbytes=0`: the log never rotates. The pace keeps
//!   the log under 2 GiB for the whole run: supervisord 4.3.0 cannot report the size of a
//!   larger log (XML-RPC integers are 32-bit; `tailProcessStdoutLog` answers HTTP 500), so the
//!   tail stops there. A row whose log passed 2 GiB is flagged;
//! - the receiver runs beside it (`run`, `collection_interval: 1s`, `timeout: 1s`, one target,
//!   self-telemetry off) and exports over OTLP/gRPC (gzip by default, as configured out of the
//!   box) to a counting OTLP server in this process; with output on, the target has
//!   `output: {streams: [stdout], max_bytes_per_poll: X, max_backlog_bytes: Y}`;
//! - the program starts writing once the receiver's first poll has reached the server (the
//!   tail then knows the log, empty, and reads it from its start); after the first line
//!   arrived (output off: right away) and 3 s of warm-up, a window of `--duration` seconds is
//!   measured: records and requests at the server, the CPU time of the receiver, of
//!   supervisord and of the program (each process's CPU clock, every thread: the kernel's
//!   utime + stime, read in nanoseconds rather than `/proc/PID/stat`'s 10 ms ticks, which are
//!   too coarse for the receiver with output off), and the log's growth;
//! - then the program stops writing, and every byte it wrote must be accounted for, either
//!   delivered as a line or counted in a `supervisord.process.output.skipped` record's
//!   `skipped_bytes` (waited for up to 15 s);
//! - every line is checked at the server: whole (100 bytes, the program's own text) and in
//!   order (numbers rising; a skip jumps ahead).
//!
//! MB are 10^6 bytes; "delivered" counts a line's body and its newline; rates are what arrived
//! at the server within the window, which may hold one poll's lines more or less than its
//! length in seconds (±5 % at 20 s). The tail reads at most `max_bytes_per_poll` per poll and
//! stream, so with a 1 s interval the delivered rate cannot pass `max_bytes_per_poll` per
//! second (the "ceiling" column); a log more than `max_backlog_bytes` behind is skipped to its
//! newest `max_bytes_per_poll`. No figure is asserted: the run fails only when the receiver
//! exits, no line arrives, or a line arrives cut or out of order.

#[path = "common/bench.rs"]
mod bench;
#[allow(dead_code)]
#[path = "../tests/testkit/proc_tree.rs"]
mod proc_tree;

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use bench::provision::SupervisorTools;
use bench::{scrubbed, NotReady, Receiver, SupervisordProcess};

/// Every line the program writes is this long, its newline included.
const LINE_BYTES: u64 = 100;
/// Lines per write of the program at most: 200 kB (fewer when paced slowly).
const LINES_PER_WRITE: u64 = 2000;
/// The largest log size supervisord 4.3.0 can report (`tailProcessStdoutLog`'s offset is an
/// XML-RPC `int`).
const LARGEST_REPORTED_SIZE: u64 = i32::MAX as u64;
/// The receiver's `collection_interval`.
const INTERVAL: Duration = Duration::from_secs(1);
/// Measured time after the first line arrived and before the window opens.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long the first poll, then the first line, may take.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How long the tail may take to account for every byte once the program stopped.
const SETTLE_WAIT: Duration = Duration::from_secs(15);
/// The event name of the record that counts skipped bytes.
const SKIPPED_EVENT: &str = "supervisord.process.output.skipped";

/// The program: waits for `DIR/go`, then writes numbered 100-byte lines in writes of
/// `LINES_PER_WRITE` lines until `DIR/stop` appears, paced at RATE bytes per second when RATE
/// is not 0; then idles, so supervisord reports no state change.
const WRITER: &str = r#"
import os, sys, time
d, rate, per_write = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.01)
if rate:
    per_write = max(1, min(per_write, rate // 1000))
fd = sys.stdout.fileno()
pad = b"x" * 80
stop = os.path.join(d, "stop")
i = 0
written = 0
start = time.monotonic()
while not os.path.exists(stop):
    chunk = b"".join(b"%018d %s\n" % (n, pad) for n in range(i, i + per_write))
    i += per_write
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view):]
    written += len(chunk)
    if rate:
        ahead = written / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
time.sleep(3600)
"#;

#[derive(Parser)]
#[command(about = "Output tail throughput and CPU against a program writing as fast as it can")]
struct Args {
    /// Seconds measured per configuration.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// `max_bytes_per_poll` of each configuration with output on, in KiB.
    #[arg(long, value_delimiter = ',', default_values_t = [256, 1024, 4096])]
    per_poll_kib: Vec<u64>,
    /// `max_backlog_bytes` in KiB (raised to `max_bytes_per_poll` when below it).
    #[arg(long, default_value_t = 8192)]
    backlog_kib: u64,
    /// The program's pace in bytes per second; 0: as fast as it can (its log may then pass
    /// 2 GiB within the run, which supervisord 4.3.0 cannot report).
    #[arg(long, default_value_t = 50_000_000)]
    rate: u64,
    /// The exporter's compression: gzip (the default of the receiver) or none.
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// The receiver binary [default: target/release/supervisord-receiver beside this example].
    #[arg(long)]
    receiver: Option<PathBuf>,
}

/// One configuration of the receiver: output off, or on with these limits.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// `(max_bytes_per_poll, max_backlog_bytes)`; `None`: output off.
    output: Option<(u64, u64)>,
}

impl Setup {
    fn label(&self) -> String {
        match self.output {
            None => "off".to_owned(),
            Some((per_poll, backlog)) => format!("{} / {}", kib(per_poll), kib(backlog)),
        }
    }
}

fn kib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// What one configuration measured.
struct Row {
    setup: Setup,
    window: Duration,
    counts: sink::Counts,
    /// CPU nanoseconds in the window.
    receiver_cpu: u64,
    supervisord_cpu: u64,
    writer_cpu: u64,
    /// Bytes the log grew by in the window.
    written: u64,
    /// The log's size when the program stopped.
    log_size: u64,
    receiver_peak_rss_kib: Option<u64>,
    /// After the program stopped: bytes written in all, and delivered + skipped, when the
    /// tail caught up within [`SETTLE_WAIT`] (`None` with output off).
    accounted: Option<(u64, u64)>,
    /// What the receiver logged at WARN or ERROR.
    warnings: Vec<String>,
    /// The first line that was not whole, as it arrived.
    first_bad_line: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.duration == 0 {
        bail!("--duration must be at least 1");
    }
    if !matches!(args.compression.as_str(), "gzip" | "none") {
        bail!("--compression is gzip or none");
    }
    let binary = bench::receiver_binary(args.receiver.as_deref())?;
    let stale = bench::warn_if_stale(&binary);
    let tools = bench::supervisor_tools()?;
    let version = tools.try_version().map_err(anyhow::Error::msg)?;
    let mut setups = vec![Setup { output: None }];
    for &per_poll in &args.per_poll_kib {
        if per_poll == 0 {
            bail!("--per-poll-kib values must be above 0");
        }
        let per_poll = per_poll << 10;
        let backlog = (args.backlog_kib << 10).max(per_poll);
        setups.push(Setup {
            output: Some((per_poll, backlog)),
        });
    }
    let plan = Plan {
        tools: &tools,
        binary: &binary,
        window: Duration::from_secs(args.duration),
        rate: args.rate,
        compression: &args.compression,
    };

    let load_before = bench::load_average();
    let mut rows = Vec::new();
    for setup in setups {
        eprintln!("output {}: measuring {} s", setup.label(), args.duration);
        rows.push(measure(setup, &plan)?);
    }
    let load = [load_before, bench::load_average()];

    println!();
    bench::print_environment(&load, &tools, &version, &binary, stale);
    println!(
        "program:     python3, {LINE_BYTES}-byte numbered lines to stdout in writes of {} kB, {}",
        LINES_PER_WRITE * LINE_BYTES / 1000,
        if args.rate == 0 {
            "as fast as supervisord drains the pipe".to_owned()
        } else {
            format!("paced at {:.1} MB/s", args.rate as f64 / 1e6)
        }
    );
    println!(
        "receiver:    `run`, UNIX socket, collection_interval {}s, one target, stdout tailed; \
         OTLP/gRPC, compression {}, to a tonic server in this process",
        INTERVAL.as_secs(),
        args.compression
    );
    println!(
        "window:      {} s per configuration after {} s of warm-up; MB = 10^6 bytes; CPU from \
         each process's CPU clock",
        args.duration,
        WARM_UP.as_secs()
    );
    println!();
    print_tables(&rows);

    let broken: Vec<String> = rows
        .iter()
        .filter(|row| row.counts.bad_lines > 0 || row.counts.out_of_order > 0)
        .map(|row| {
            format!(
                "output {}: {} lines not whole (the first: {:?}), {} out of order",
                row.setup.label(),
                row.counts.bad_lines,
                row.first_bad_line.as_deref().unwrap_or(""),
                row.counts.out_of_order
            )
        })
        .collect();
    if !broken.is_empty() {
        bail!("lines arrived damaged: {}", broken.join("; "));
    }
    Ok(())
}

struct Plan<'a> {
    tools: &'a SupervisorTools,
    binary: &'a Path,
    window: Duration,
    rate: u64,
    compression: &'a str,
}

fn measure(setup: Setup, plan: &Plan) -> Result<Row> {
    // Short prefix under /tmp: a UNIX socket path must fit in 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("tailtp")
        .tempdir_in("/tmp")?;
    let dir = dir.path();
    let log = dir.join("writer.out");
    let svd = Supervisord::start(plan.tools, dir, plan.rate)?;
    let sink = sink::Sink::start()?;
    let config = dir.join("receiver.yaml");
    fs::write(
        &config,
        receiver_config(setup, &svd.socket, &sink.endpoint(), plan.compression),
    )?;
    let mut receiver = Receiver::start(plan.binary, &config, &dir.join("receiver.log"), &[])?;

    // The first poll found the log empty: the tail reads it from its start.
    wait_for(&sink, &mut receiver, "the first poll", |c| {
        c.metrics_requests > 0
    })?;
    fs::write(dir.join("go"), b"")?;
    let writer = svd.writer_pid()?;
    if setup.output.is_some() {
        wait_for(&sink, &mut receiver, "the first line", |c| c.lines > 0)?;
    }
    thread::sleep(WARM_UP);
    receiver.check_alive()?;

    let cpu = |pid: u32| bench::cpu_ns(pid).with_context(|| format!("no CPU clock for pid {pid}"));
    let log_size = || fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let counts_before = sink.counts();
    let (receiver_before, svd_before, writer_before) =
        (cpu(receiver.pid())?, cpu(svd.pid())?, cpu(writer)?);
    let size_before = log_size();
    let start = Instant::now();
    while start.elapsed() < plan.window {
        thread::sleep((plan.window - start.elapsed()).min(Duration::from_millis(500)));
        receiver.check_alive()?;
    }
    let counts_after = sink.counts();
    let (receiver_after, svd_after, writer_after) =
        (cpu(receiver.pid())?, cpu(svd.pid())?, cpu(writer)?);
    let size_after = log_size();
    let window = start.elapsed();
    let receiver_peak_rss_kib = bench::peak_rss_kib(receiver.pid());

    // The program stops; what it wrote must end up delivered or counted as skipped.
    fs::write(dir.join("stop"), b"")?;
    let accounted = match setup.output {
        None => None,
        Some(_) => {
            // Nothing is written any more once the size holds still for a moment.
            let mut written = log_size();
            loop {
                thread::sleep(Duration::from_millis(300));
                let now = log_size();
                if now == written {
                    break;
                }
                written = now;
            }
            let deadline = Instant::now() + SETTLE_WAIT;
            loop {
                let c = sink.counts();
                let seen = c.line_bytes + c.skipped_bytes;
                if seen >= written || Instant::now() > deadline {
                    break Some((written, seen));
                }
                thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let final_counts = sink.counts();
    let first_bad_line = sink.first_bad_line();
    let log_size = log_size();
    let warnings = receiver.warnings();
    drop(receiver);
    drop(svd);
    Ok(Row {
        setup,
        window,
        counts: sink::Counts {
            // Checked over the whole run, not only the window.
            bad_lines: final_counts.bad_lines,
            out_of_order: final_counts.out_of_order,
            ..counts_after.since(&counts_before)
        },
        receiver_cpu: receiver_after.saturating_sub(receiver_before),
        supervisord_cpu: svd_after.saturating_sub(svd_before),
        writer_cpu: writer_after.saturating_sub(writer_before),
        written: size_after.saturating_sub(size_before),
        log_size,
        first_bad_line,
        receiver_peak_rss_kib,
        accounted,
        warnings,
    })
}

/// Waits until the server's counts satisfy `done`; fails when the receiver exits or
/// [`READY_WAIT`] passes.
fn wait_for(
    sink: &sink::Sink,
    receiver: &mut Receiver,
    what: &str,
    done: impl Fn(&sink::Counts) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + READY_WAIT;
    while !done(&sink.counts()) {
        receiver.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{what} did not reach the OTLP server within {READY_WAIT:?}; receiver log:\n{}",
                receiver.log()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One target over the UNIX socket, the server's gRPC endpoint, no self-telemetry.
fn receiver_config(setup: Setup, socket: &Path, sink: &str, compression: &str) -> String {
    let output = match setup.output {
        None => String::new(),
        Some((per_poll, backlog)) => format!(
            "    output: {{streams: [stdout], max_bytes_per_poll: {per_poll}, \
             max_backlog_bytes: {backlog}}}\n"
        ),
    };
    format!(
        "collection_interval: {interval}s\ninitial_delay: 0s\ntimeout: {interval}s\n\
         targets:\n  - name: tail\n    endpoint: {endpoint}\n{output}\
         exporters:\n  otlp:\n    protocol: grpc\n    endpoint: {sink}\n    \
         compression: {compression}\n\
         telemetry:\n  metrics: false\n",
        interval = INTERVAL.as_secs(),
        endpoint = yaml_str(&format!("unix://{}", socket.display())),
        sink = yaml_str(sink),
    )
}

fn print_tables(rows: &[Row]) {
    let base = rows.iter().find(|row| row.setup.output.is_none());
    let mb = |bytes: u64, window: Duration| bytes as f64 / 1e6 / window.as_secs_f64();
    let core = |ns: u64, window: Duration| ns as f64 / 1e9 / window.as_secs_f64() * 100.0;
    // CPU per second of window, to compare runs of slightly different lengths.
    let rate = |ns: u64, window: Duration| ns as f64 / window.as_secs_f64();

    println!(
        "| output (max_bytes_per_poll / max_backlog_bytes) | lines/s | delivered MB/s | \
         ceiling MB/s | skipped MB/s | written MB/s | polls | logs requests | OTLP bytes per \
         line | every byte accounted for |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let c = &row.counts;
        let w = row.window;
        let (lines, delivered, ceiling, skipped, per_line, accounted) = match row.setup.output {
            None => (
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ),
            Some((per_poll, _)) => (
                format!("{:.0}", c.lines as f64 / w.as_secs_f64()),
                format!("{:.3}", mb(c.line_bytes, w)),
                format!("{:.3}", per_poll as f64 / 1e6 / INTERVAL.as_secs_f64()),
                format!("{:.1}", mb(c.skipped_bytes, w)),
                if c.lines > 0 {
                    format!("{:.0}", c.logs_protobuf_bytes as f64 / c.lines as f64)
                } else {
                    "-".to_owned()
                },
                match row.accounted {
                    Some((written, seen)) if written == seen => {
                        format!("yes ({:.1} MB)", written as f64 / 1e6)
                    }
                    Some((written, seen)) => format!(
                        "no: {} of {} bytes within {} s",
                        seen,
                        written,
                        SETTLE_WAIT.as_secs()
                    ),
                    None => "-".to_owned(),
                },
            ),
        };
        println!(
            "| {} | {lines} | {delivered} | {ceiling} | {skipped} | {:.1} | {} | {} | {per_line} | \
             {accounted} |",
            row.setup.label(),
            mb(row.written, w),
            c.metrics_requests,
            c.logs_requests,
        );
    }
    println!();
    println!(
        "| output | receiver % of a core | × off | receiver CPU s per MB delivered | added by the \
         tail, CPU s per MB | receiver peak RSS | supervisord % of a core | × off | program % \
         of a core |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let w = row.window;
        let ratio = |ours: u64, theirs: Option<(u64, Duration)>| match theirs {
            Some((ns, bw)) if ns > 0 => format!("{:.1}x", rate(ours, w) / rate(ns, bw)),
            _ => "-".to_owned(),
        };
        let delivered_mb = row.counts.line_bytes as f64 / 1e6;
        let (per_mb, added_per_mb) = if row.setup.output.is_some() && delivered_mb > 0.0 {
            let added = base.map(|b| {
                (rate(row.receiver_cpu, w) - rate(b.receiver_cpu, b.window)) * w.as_secs_f64()
                    / 1e9
                    / delivered_mb
            });
            (
                format!("{:.3}", row.receiver_cpu as f64 / 1e9 / delivered_mb),
                added.map_or("-".to_owned(), |a| format!("{a:.3}")),
            )
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        let rss = row.receiver_peak_rss_kib.map_or("-".to_owned(), |k| {
            format!("{:.1} MB", k as f64 * 1024.0 / 1e6)
        });
        println!(
            "| {} | {:.2} | {} | {per_mb} | {added_per_mb} | {rss} | {:.1} | {} | {:.1} |",
            row.setup.label(),
            core(row.receiver_cpu, w),
            if row.setup.output.is_some() {
                ratio(row.receiver_cpu, base.map(|b| (b.receiver_cpu, b.window)))
            } else {
                "1.0x".to_owned()
            },
            core(row.supervisord_cpu, w),
            if row.setup.output.is_some() {
                ratio(
                    row.supervisord_cpu,
                    base.map(|b| (b.supervisord_cpu, b.window)),
                )
            } else {
                "1.0x".to_owned()
            },
            core(row.writer_cpu, w),
        );
    }
    println!();
    for row in rows {
        if row.log_size > LARGEST_REPORTED_SIZE {
            println!(
                "output {}: the log reached {:.2} GB, past the 2 GiB supervisord can report: \
                 the tail stopped there, figures of this row are not its throughput",
                row.setup.label(),
                row.log_size as f64 / 1e9
            );
        }
    }
    let warned: Vec<&Row> = rows.iter().filter(|r| !r.warnings.is_empty()).collect();
    if warned.is_empty() {
        println!("the receiver logged no warning or error");
    }
    for row in warned {
        println!(
            "output {}: the receiver logged {} warnings or errors, the first:",
            row.setup.label(),
            row.warnings.len()
        );
        for line in row.warnings.iter().take(3) {
            println!("  {line}");
        }
    }
}

/// A supervisord with the writing program. Dropping it stops both.
struct Supervisord {
    process: SupervisordProcess,
    dir: PathBuf,
    socket: PathBuf,
}

impl Supervisord {
    fn start(tools: &SupervisorTools, dir: &Path, rate: u64) -> Result<Supervisord> {
        let socket = dir.join("s.sock");
        let script = dir.join("writer.py");
        fs::write(&script, WRITER)?;
        let conf = dir.join("supervisord.conf");
        fs::write(
            &conf,
            format!(
                "[unix_http_server]\nfile={socket}\nchmod=0700\n\n\
                 [supervisord]\nnodaemon=true\nlogfile={dir}/supervisord.log\n\
                 pidfile={dir}/supervisord.pid\nchildlogdir={dir}\nloglevel=info\n\n\
                 [rpcinterface:supervisor]\n\
                 supervisor.rpcinterface_factory = \
                 supervisor.rpcinterface:make_main_rpcinterface\n\n\
                 [program:writer]\ncommand=python3 -u {script} {dir} {rate} {LINES_PER_WRITE}\n\
                 autostart=true\nautorestart=false\nstartsecs=0\nstopwaitsecs=2\n\
                 stopasgroup=true\nkillasgroup=true\nredirect_stderr=false\n\
                 stdout_logfile={dir}/writer.out\nstdout_logfile_maxbytes=0\n\
                 stderr_logfile={dir}/writer.err\nstderr_logfile_maxbytes=0\n",
                socket = socket.display(),
                dir = dir.display(),
                script = script.display(),
            ),
        )?;
        let process = SupervisordProcess::spawn(scrubbed(tools.supervisord()), &conf, dir)?;
        let mut s = Supervisord {
            process,
            dir: dir.to_path_buf(),
            socket,
        };
        let socket = s.socket.clone();
        match s.process.wait_ready(Duration::from_millis(50), || {
            UnixStream::connect(&socket).is_ok()
        }) {
            Ok(()) => Ok(s),
            Err(NotReady::Exited(status)) => {
                bail!("supervisord exited with {status}:\n{}", s.logs())
            }
            Err(NotReady::TimedOut) => {
                bail!("supervisord did not listen within 20 s:\n{}", s.logs())
            }
        }
    }

    fn pid(&self) -> u32 {
        self.process.pid().unwrap_or(0)
    }

    /// The writing program: supervisord's one live child.
    fn writer_pid(&self) -> Result<u32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = proc_tree::children(self.pid()).iter().find(|c| !c.zombie) {
                return Ok(child.pid);
            }
            if Instant::now() > deadline {
                bail!("the program did not start:\n{}", self.logs());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- supervisord.log\n{}--- console\n{}--- writer.err\n{}",
            read("supervisord.log"),
            read("supervisord.out"),
            read("writer.err")
        )
    }
}

/// An OTLP/gRPC server that counts what it receives and keeps nothing: requests, lines and
/// their bytes, skipped bytes, and whether each line is whole and comes after the previous.
mod sink {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::thread::{self, JoinHandle};

    use anyhow::{Context, Result};
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
        LogsService, LogsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use prost::Message;
    use tonic::codec::CompressionEncoding;

    use super::{LINE_BYTES, SKIPPED_EVENT};

    /// Larger than any request the receiver sends (it cuts them at 4 MiB by default).
    const MAX_MESSAGE: usize = 64 << 20;

    #[derive(Debug, Clone, Copy, Default)]
    pub struct Counts {
        pub metrics_requests: u64,
        pub logs_requests: u64,
        /// The logs requests' protobuf encoding (as re-encoded here, before any compression).
        pub logs_protobuf_bytes: u64,
        /// Line records, and their bodies' bytes plus one newline each.
        pub lines: u64,
        pub line_bytes: u64,
        pub skip_records: u64,
        pub skipped_bytes: u64,
        /// Records neither a line nor a skip (state changes).
        pub other_records: u64,
        /// Lines that are not the program's whole text.
        pub bad_lines: u64,
        /// Lines whose number is not above the previous line's.
        pub out_of_order: u64,
        /// The number of the last line.
        pub last_number: Option<u64>,
    }

    impl Counts {
        /// What arrived since `earlier`.
        pub fn since(&self, earlier: &Counts) -> Counts {
            Counts {
                metrics_requests: self.metrics_requests - earlier.metrics_requests,
                logs_requests: self.logs_requests - earlier.logs_requests,
                logs_protobuf_bytes: self.logs_protobuf_bytes - earlier.logs_protobuf_bytes,
                lines: self.lines - earlier.lines,
                line_bytes: self.line_bytes - earlier.line_bytes,
                skip_records: self.skip_records - earlier.skip_records,
                skipped_bytes: self.skipped_bytes - earlier.skipped_bytes,
                other_records: self.other_records - earlier.other_records,
                bad_lines: self.bad_lines - earlier.bad_lines,
                out_of_order: self.out_of_order - earlier.out_of_order,
                last_number: self.last_number,
            }
        }

        fn line(&mut self, body: &str) {
            self.lines += 1;
            self.line_bytes += body.len() as u64 + 1;
            match number(body) {
                Some(n) => {
                    if self.last_number.is_some_and(|last| n <= last) {
                        self.out_of_order += 1;
                    }
                    self.last_number = Some(n);
                }
                None => self.bad_lines += 1,
            }
        }
    }

    /// The number of a whole line of the program (`000000000000012345 ` and 80 `x`).
    fn number(body: &str) -> Option<u64> {
        let bytes = body.as_bytes();
        if bytes.len() as u64 != LINE_BYTES - 1 || bytes[18] != b' ' {
            return None;
        }
        if !bytes[19..].iter().all(|&b| b == b'x') {
            return None;
        }
        body[..18].parse().ok()
    }

    #[derive(Default)]
    struct State {
        counts: Counts,
        /// The first line that was not whole, cut to 200 characters.
        first_bad: Option<String>,
    }

    impl State {
        fn line(&mut self, body: &str) {
            let bad = self.counts.bad_lines;
            self.counts.line(body);
            if self.counts.bad_lines > bad && self.first_bad.is_none() {
                self.first_bad = Some(body.chars().take(200).collect());
            }
        }
    }

    type Shared = Arc<Mutex<State>>;

    fn lock(shared: &Shared) -> MutexGuard<'_, State> {
        shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub struct Sink {
        addr: SocketAddr,
        shared: Shared,
        shutdown: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Sink {
        /// Serves on an ephemeral port of 127.0.0.1, on a thread of its own, until dropped.
        pub fn start() -> Result<Sink> {
            let listener = TcpListener::bind(("127.0.0.1", 0)).context("OTLP server: bind")?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            let shared = Shared::default();
            let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
            let served = shared.clone();
            let thread = thread::Builder::new()
                .name("otlp-server".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            eprintln!("OTLP server: no runtime: {e}");
                            return;
                        }
                    };
                    runtime.block_on(serve(listener, served, stop));
                })?;
            Ok(Sink {
                addr,
                shared,
                shutdown: Some(shutdown),
                thread: Some(thread),
            })
        }

        pub fn endpoint(&self) -> String {
            format!("http://{}", self.addr)
        }

        pub fn counts(&self) -> Counts {
            lock(&self.shared).counts
        }

        pub fn first_bad_line(&self) -> Option<String> {
            lock(&self.shared).first_bad.clone()
        }
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            if let Some(tx) = self.shutdown.take() {
                let _ = tx.send(());
            }
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    async fn serve(
        listener: TcpListener,
        shared: Shared,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("OTLP server: {e}");
                return;
            }
        };
        let counter = Counter { shared };
        let metrics = MetricsServiceServer::new(counter.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE);
        let logs = LogsServiceServer::new(counter)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE);
        let served = tonic::transport::Server::builder()
            .add_service(metrics)
            .add_service(logs)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stop.await;
                },
            )
            .await;
        if let Err(e) = served {
            eprintln!("OTLP server stopped: {e}");
        }
    }

    #[derive(Clone)]
    struct Counter {
        shared: Shared,
    }

    fn string(value: Option<&AnyValue>) -> Option<&str> {
        match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    fn int(value: Option<&AnyValue>) -> Option<u64> {
        match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::IntValue(n)) => u64::try_from(*n).ok(),
            Some(any_value::Value::StringValue(s)) => s.parse().ok(),
            _ => None,
        }
    }

    #[tonic::async_trait]
    impl MetricsService for Counter {
        async fn export(
            &self,
            _request: tonic::Request<ExportMetricsServiceRequest>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            lock(&self.shared).counts.metrics_requests += 1;
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    #[tonic::async_trait]
    impl LogsService for Counter {
        async fn export(
            &self,
            request: tonic::Request<ExportLogsServiceRequest>,
        ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
            let request = request.into_inner();
            let size = request.encoded_len() as u64;
            let mut state = lock(&self.shared);
            state.counts.logs_requests += 1;
            state.counts.logs_protobuf_bytes += size;
            let records = request
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .flat_map(|sl| &sl.log_records);
            for record in records {
                if record.event_name == SKIPPED_EVENT {
                    state.counts.skip_records += 1;
                    let skipped = record
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "skipped_bytes")
                        .and_then(|kv| int(kv.value.as_ref()));
                    state.counts.skipped_bytes += skipped.unwrap_or(0);
                } else if record.event_name.is_empty() {
                    match string(record.body.as_ref()) {
                        Some(body) => state.line(body),
                        None => {
                            state.counts.lines += 1;
                            state.counts.bad_lines += 1;
                        }
                    }
                } else {
                    state.counts.other_records += 1;
                }
            }
            Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
        }
    }
}
