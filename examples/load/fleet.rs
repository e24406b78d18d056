//! The fleet role: one shard of simulated supervisord servers, each on its own listener
//! (127.0.0.1:0 or a UNIX socket), answering `POST /RPC2` over HTTP/1.1 keep-alive like
//! supervisord 4.3.0 (medusa) does, and timing every poll it serves.
//!
//! Protocol with the orchestrator (one JSON line each way, stdout and stdin):
//! - after binding, the shard prints `{"ports":[...]}` (TCP; empty for UNIX sockets);
//! - `status` asks how many targets have been polled so far, answered with one [`Status`];
//! - `report <start_ns> <end_ns>` asks for the poll statistics of that window of
//!   CLOCK_MONOTONIC (and the `getAllConfigInfo` calls served), answered with one
//!   [`ShardReport`] line;
//! - end of stdin: the shard exits.
//!
//! The HTTP side is written by hand rather than with hyper so the reply head is exactly
//! medusa's (`Server`, `Date`, `Content-Type`, `Content-Length`, in that order) and the fleet
//! stays cheap: one read and one write per request on a single-threaded runtime.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::child;
use crate::http::{parse_calls, parse_request, Parsed, MAX_REQUEST};
use crate::procfs::{monotonic_ns, unix_now};
use crate::punctuality::{target_stats, Window};
use crate::reply::{self, Call, Replies};
use crate::sim::Programs;

/// What the orchestrator asks of one shard (the role's only argument, as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub shard: usize,
    /// Global index of the shard's first target; targets are numbered across the fleet.
    pub first_target: usize,
    pub targets: usize,
    pub processes: usize,
    pub interval_ns: u64,
    /// Serve on `<dir>/<socket_name>` instead of TCP.
    pub unix_dir: Option<PathBuf>,
    /// The fleet's boot time (Unix seconds), shared by every shard.
    pub boot: i64,
    /// The orchestrator's pid, to die with it.
    pub parent: u32,
    /// Where to write the first reply served to this shard's first target.
    pub sample: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub ports: Vec<u16>,
}

/// Poll statistics of one shard over one window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardReport {
    pub targets: usize,
    /// Polls (requests asking `getAllProcessInfo`) that arrived in the window.
    pub served: u64,
    /// Requests asking `getAllConfigInfo` that arrived in the window: not polls, the receiver
    /// asks them beside its polls (at its first poll of a target, then every 10 minutes).
    pub config_info_served: u64,
    /// Requests asking `getAllConfigInfo` since the shard started.
    pub config_info_total: u64,
    /// Gaps between consecutive polls of a target above interval + 1 s, including a poll
    /// overdue at the end of the window.
    pub late: u64,
    /// Polls the schedule called for that never came: a gap of k intervals (give or take 1 s)
    /// misses k - 1 polls.
    pub missed: u64,
    pub max_gap_ns: u64,
    /// The target with the largest gap (global index).
    pub max_gap_target: usize,
    /// Targets with no poll in the window.
    pub never_polled: usize,
    /// Connections accepted in the window: 0 when every poll reused its connection.
    pub connections_opened: u64,
    /// Every request served since start, polls or not.
    pub requests_total: u64,
}

/// Progress of the receiver's start: its first polls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// Targets polled at least once.
    pub polled: usize,
    /// CLOCK_MONOTONIC of the first poll of any target, and of the last first poll (when every
    /// target has been polled).
    pub first_poll_ns: Option<u64>,
    pub last_first_poll_ns: Option<u64>,
}

/// The socket of a target on the UNIX transport.
pub fn socket_path(dir: &Path, target: usize) -> PathBuf {
    dir.join(format!("t{target:05}.sock"))
}

pub fn main(arg: &str) -> ExitCode {
    match run(arg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("load fleet: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(arg: &str) -> anyhow::Result<()> {
    let spec: Spec = serde_json::from_str(arg).context("fleet spec")?;
    child::die_with_parent(spec.parent).map_err(anyhow::Error::msg)?;
    child::raise_nofile().map_err(anyhow::Error::msg)?;
    let replies = Replies::new()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(serve(spec, replies))
}

/// Per-target log, written by the target's connections and read by the report.
#[derive(Default)]
struct TargetLog {
    polls: Vec<u64>,
    connects: Vec<u64>,
    config_calls: Vec<u64>,
}

struct Shard {
    spec: Spec,
    replies: Replies,
    programs: Programs,
    logs: Vec<Mutex<TargetLog>>,
    requests: AtomicU64,
    sample_written: AtomicBool,
}

impl Shard {
    fn log(&self, target: usize) -> Option<std::sync::MutexGuard<'_, TargetLog>> {
        self.logs
            .get(target.checked_sub(self.spec.first_target)?)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

async fn serve(spec: Spec, replies: Replies) -> anyhow::Result<()> {
    let shard = Arc::new(Shard {
        programs: Programs::new(spec.processes, spec.boot),
        logs: (0..spec.targets).map(|_| Mutex::default()).collect(),
        requests: AtomicU64::new(0),
        sample_written: AtomicBool::new(false),
        replies,
        spec,
    });
    let targets = shard.spec.first_target..shard.spec.first_target + shard.spec.targets;
    let mut ports = Vec::new();
    match &shard.spec.unix_dir {
        Some(dir) => {
            for target in targets {
                let path = socket_path(dir, target);
                let listener = tokio::net::UnixListener::bind(&path)
                    .with_context(|| format!("bind {}", path.display()))?;
                let shard = Arc::clone(&shard);
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        accepted(&shard, target);
                        tokio::spawn(connection(stream, target, Arc::clone(&shard)));
                    }
                });
            }
        }
        None => {
            for target in targets {
                let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
                    .context("bind 127.0.0.1:0 (out of ports or file descriptors?)")?;
                listener.set_nonblocking(true)?;
                ports.push(listener.local_addr()?.port());
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let shard = Arc::clone(&shard);
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let _ = stream.set_nodelay(true);
                        accepted(&shard, target);
                        tokio::spawn(connection(stream, target, Arc::clone(&shard)));
                    }
                });
            }
        }
    }
    println_flush(&serde_json::to_string(&Ready { ports })?)?;

    // Standard input is read on a thread of its own: a blocking read would stall the servers.
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::Builder::new()
        .name("commands".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })
        .context("stdin thread")?;
    while let Some(line) = lines.recv().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("report"), Some(start), Some(end)) => {
                let window = Window {
                    start: start.parse().context("report start")?,
                    end: end.parse().context("report end")?,
                    interval: shard.spec.interval_ns,
                };
                let report = report(&shard, &window);
                println_flush(&serde_json::to_string(&report)?)?;
            }
            (Some("status"), None, None) => {
                println_flush(&serde_json::to_string(&status(&shard))?)?;
            }
            _ => anyhow::bail!("unknown command '{line}'"),
        }
    }
    Ok(())
}

fn println_flush(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

fn accepted(shard: &Shard, target: usize) {
    if let Some(mut log) = shard.log(target) {
        log.connects.push(monotonic_ns());
    }
}

/// One keep-alive connection: requests in, replies out, until the client closes.
async fn connection<S>(mut stream: S, target: usize, shard: Arc<Shard>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut body: Vec<u8> = Vec::new();
    let mut output: Vec<u8> = Vec::new();
    let mut calls: Vec<Call> = Vec::with_capacity(8);
    let mut date = (i64::MIN, String::new());
    loop {
        let request = loop {
            match parse_request(&input) {
                Parsed::Complete(request) => break request,
                Parsed::Partial if input.len() <= MAX_REQUEST => {}
                Parsed::Partial | Parsed::Invalid => return,
            }
            match stream.read_buf(&mut input).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let arrived = monotonic_ns();
        shard.requests.fetch_add(1, Ordering::Relaxed);
        let now = unix_now();
        output.clear();
        if request.rpc2 {
            let payload = input.get(request.body_start..request.end).unwrap_or(&[]);
            let multicall = parse_calls(payload, &mut calls);
            // A poll is a request asking getAllProcessInfo; a getAllConfigInfo is counted
            // apart (the receiver sends it alone, after a poll).
            let poll = calls.contains(&Call::GetAllProcessInfo);
            let config_info = calls.contains(&Call::GetAllConfigInfo);
            if poll || config_info {
                if let Some(mut log) = shard.log(target) {
                    if poll {
                        log.polls.push(arrived);
                    }
                    if config_info {
                        log.config_calls.push(arrived);
                    }
                }
            }
            body.clear();
            shard.replies.render(
                &mut body,
                multicall,
                &calls,
                reply::RUNNING,
                |w| shard.programs.write(w, target as u64, now),
                |w| shard.programs.write_config(w, target as u64),
            );
            if date.0 != now {
                date = (now, reply::http_date(now));
            }
            // medusa's head: Server and Date first, then what the XML-RPC handler set.
            output.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: Medusa/1.12\r\nDate: ");
            output.extend_from_slice(date.1.as_bytes());
            output.extend_from_slice(b"\r\nContent-Type: text/xml\r\nContent-Length: ");
            reply::write_int(&mut output, body.len() as i64);
            output.extend_from_slice(b"\r\n\r\n");
            output.extend_from_slice(&body);
            if poll {
                write_sample(&shard, target, &body);
            }
        } else {
            output.extend_from_slice(
                b"HTTP/1.1 404 Not Found\r\nServer: Medusa/1.12\r\nContent-Length: 0\r\n\r\n",
            );
        }
        if stream.write_all(&output).await.is_err() {
            return;
        }
        input.drain(..request.end.min(input.len()));
        if request.close {
            return;
        }
    }
}

/// The first poll reply of the shard's first target, for the Python baseline to parse.
fn write_sample(shard: &Shard, target: usize, body: &[u8]) {
    let Some(path) = &shard.spec.sample else {
        return;
    };
    if target != shard.spec.first_target || shard.sample_written.swap(true, Ordering::Relaxed) {
        return;
    }
    let partial = path.with_extension("partial");
    let written = std::fs::write(&partial, body).and_then(|()| std::fs::rename(&partial, path));
    if let Err(error) = written {
        eprintln!("load fleet: cannot write {}: {error}", path.display());
    }
}

fn report(shard: &Shard, window: &Window) -> ShardReport {
    let mut report = ShardReport {
        targets: shard.spec.targets,
        requests_total: shard.requests.load(Ordering::Relaxed),
        ..ShardReport::default()
    };
    for (i, log) in shard.logs.iter().enumerate() {
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        let stats = target_stats(&log.polls, &log.connects, window);
        report.served += stats.served;
        report.late += stats.late;
        report.missed += stats.missed;
        report.connections_opened += stats.connects;
        report.config_info_total += log.config_calls.len() as u64;
        report.config_info_served += log
            .config_calls
            .iter()
            .filter(|&&t| t >= window.start && t < window.end)
            .count() as u64;
        if stats.served == 0 {
            report.never_polled += 1;
        }
        if stats.max_gap > report.max_gap_ns {
            report.max_gap_ns = stats.max_gap;
            report.max_gap_target = shard.spec.first_target + i;
        }
    }
    report
}

fn status(shard: &Shard) -> Status {
    let mut status = Status::default();
    let mut all = true;
    for log in &shard.logs {
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        match log.polls.first() {
            Some(&first) => {
                status.polled += 1;
                status.first_poll_ns = Some(status.first_poll_ns.map_or(first, |t| t.min(first)));
                status.last_first_poll_ns =
                    Some(status.last_first_poll_ns.map_or(first, |t| t.max(first)));
            }
            None => all = false,
        }
    }
    if !all {
        status.last_first_poll_ns = None;
    }
    status
}
