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
//! - `removed <target>`, `added <target>` (`--soak`, no answer): the receiver's config just
//!   dropped or took the target, so its polls are due or not from now on (see
//!   [`churned_stats`]); `status` counts only the targets in the config;
//! - `restart <target> <down_ms>` (`--soak`, no answer): the target's supervisord restarts: its
//!   connections are closed, its listener too (connections are refused) for `down_ms`, then it
//!   listens again on the same address as a new [`Life`] (new start times and pids);
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
use crate::punctuality::{churned_stats, target_stats, Turn, Window};
use crate::reply::{self, Call, Replies};
use crate::sim::{Life, Programs};

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
    /// Restarts (`--soak`) done since start: the target listens again.
    #[serde(default)]
    pub restarts_done: u64,
    /// Restarts after which the address could not be bound again within a minute (taken by
    /// another socket meanwhile): the target stays down, its polls are not due.
    #[serde(default)]
    pub rebind_failures: u64,
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
    /// When the target left or joined the config, went down or came back (`--soak`).
    turns: Vec<(u64, Turn)>,
    /// The run of its supervisord now answering.
    life: Life,
    /// How long the restart under way keeps the target down.
    down_for: std::time::Duration,
    restarts_done: u64,
    rebind_failures: u64,
}

impl TargetLog {
    /// Whether the receiver's config holds the target (the last `added`/`removed` says).
    fn in_config(&self) -> bool {
        self.turns
            .iter()
            .rev()
            .find_map(|(_, turn)| match turn {
                Turn::Removed => Some(false),
                Turn::Added => Some(true),
                _ => None,
            })
            .unwrap_or(true)
    }

    fn down(&self) -> bool {
        self.turns
            .iter()
            .rev()
            .find_map(|(_, turn)| match turn {
                Turn::Down => Some(true),
                Turn::Up => Some(false),
                _ => None,
            })
            .unwrap_or(false)
    }
}

struct Shard {
    spec: Spec,
    replies: Replies,
    programs: Programs,
    logs: Vec<Mutex<TargetLog>>,
    /// Per target, bumped by a restart: its listener and connections watch it.
    restarts: Vec<tokio::sync::watch::Sender<u64>>,
    requests: AtomicU64,
    sample_written: AtomicBool,
}

impl Shard {
    fn log(&self, target: usize) -> Option<std::sync::MutexGuard<'_, TargetLog>> {
        self.logs
            .get(target.checked_sub(self.spec.first_target)?)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn restarts(&self, target: usize) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.restarts
            .get(target.checked_sub(self.spec.first_target)?)
            .map(tokio::sync::watch::Sender::subscribe)
    }
}

/// A target's listener, on either transport.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Binds the target's address: a free port when `port` is 0 (the first time), the same
    /// port again after a restart.
    fn bind(shard: &Shard, target: usize, port: u16) -> anyhow::Result<Listener> {
        match &shard.spec.unix_dir {
            Some(dir) => {
                let path = socket_path(dir, target);
                // A restart leaves the socket file behind, as supervisord does.
                let _ = std::fs::remove_file(&path);
                let listener = tokio::net::UnixListener::bind(&path)
                    .with_context(|| format!("bind {}", path.display()))?;
                Ok(Listener::Unix(listener))
            }
            None => {
                let listener = std::net::TcpListener::bind(("127.0.0.1", port))
                    .context("bind 127.0.0.1 (out of ports or file descriptors?)")?;
                listener.set_nonblocking(true)?;
                Ok(Listener::Tcp(tokio::net::TcpListener::from_std(listener)?))
            }
        }
    }

    fn port(&self) -> u16 {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map_or(0, |a| a.port()),
            Listener::Unix(_) => 0,
        }
    }

    /// Accepts one connection and serves it on a task of its own.
    async fn accept(&self, shard: &Arc<Shard>, target: usize) -> std::io::Result<()> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                accepted(shard, target);
                tokio::spawn(connection(stream, target, Arc::clone(shard)));
            }
            Listener::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                accepted(shard, target);
                tokio::spawn(connection(stream, target, Arc::clone(shard)));
            }
        }
        Ok(())
    }
}

/// Serves one target until the shard ends; a restart closes the listener, waits, and binds
/// the same address again.
async fn listen(shard: Arc<Shard>, target: usize, mut listener: Listener) {
    let Some(mut restarts) = shard.restarts(target) else {
        return;
    };
    let port = listener.port();
    loop {
        let restart = tokio::select! {
            accepted = listener.accept(&shard, target) => match accepted {
                Ok(()) => false,
                Err(_) => return,
            },
            changed = restarts.changed() => match changed {
                Ok(()) => true,
                Err(_) => return,
            },
        };
        if !restart {
            continue;
        }
        drop(listener);
        let down_for = shard.log(target).map(|l| l.down_for).unwrap_or_default();
        tokio::time::sleep(down_for).await;
        listener = match rebind(&shard, target, port).await {
            Some(listener) => listener,
            None => return,
        };
    }
}

/// Binds a restarted target's address again (another socket may hold it for a while), and
/// starts its supervisord's next life.
async fn rebind(shard: &Shard, target: usize, port: u16) -> Option<Listener> {
    const ATTEMPTS: u32 = 300;
    for attempt in 1..=ATTEMPTS {
        match Listener::bind(shard, target, port) {
            Ok(listener) => {
                if let Some(mut log) = shard.log(target) {
                    log.turns.push((monotonic_ns(), Turn::Up));
                    log.life = Life {
                        generation: log.life.generation + 1,
                        started: Some(unix_now()),
                    };
                    log.restarts_done += 1;
                }
                return Some(listener);
            }
            Err(error) if attempt == ATTEMPTS => {
                eprintln!("load fleet: target {target} stays down after its restart: {error:#}");
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    if let Some(mut log) = shard.log(target) {
        log.rebind_failures += 1;
    }
    None
}

/// `removed`, `added` and `restart`: what the orchestrator's churn does to one target.
fn churn(shard: &Shard, command: &str, target: &str, down_ms: Option<&str>) -> anyhow::Result<()> {
    let target: usize = target.parse().context("churn target")?;
    let now = monotonic_ns();
    let Some(mut log) = shard.log(target) else {
        anyhow::bail!("target {target} is not in this shard");
    };
    match (command, down_ms) {
        ("removed", None) => log.turns.push((now, Turn::Removed)),
        ("added", None) => log.turns.push((now, Turn::Added)),
        ("restart", Some(ms)) => {
            // A restart under way is not restarted again.
            if log.down() {
                return Ok(());
            }
            log.down_for = std::time::Duration::from_millis(ms.parse().context("down_ms")?);
            log.turns.push((now, Turn::Down));
            drop(log);
            if let Some(restarts) = shard
                .restarts
                .get(target.saturating_sub(shard.spec.first_target))
            {
                restarts.send_modify(|generation| *generation += 1);
            }
        }
        _ => anyhow::bail!("unknown command '{command} {target}'"),
    }
    Ok(())
}

async fn serve(spec: Spec, replies: Replies) -> anyhow::Result<()> {
    let shard = Arc::new(Shard {
        programs: Programs::new(spec.processes, spec.boot),
        logs: (0..spec.targets).map(|_| Mutex::default()).collect(),
        restarts: (0..spec.targets)
            .map(|_| tokio::sync::watch::Sender::new(0))
            .collect(),
        requests: AtomicU64::new(0),
        sample_written: AtomicBool::new(false),
        replies,
        spec,
    });
    let targets = shard.spec.first_target..shard.spec.first_target + shard.spec.targets;
    let mut ports = Vec::new();
    for target in targets {
        let listener = Listener::bind(&shard, target, 0)?;
        if let Listener::Tcp(_) = listener {
            ports.push(listener.port());
        }
        tokio::spawn(listen(Arc::clone(&shard), target, listener));
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
            (Some(command @ ("removed" | "added" | "restart")), Some(target), down_ms) => {
                churn(&shard, command, target, down_ms)?;
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
    // A restart of the target's supervisord drops its connections.
    let Some(mut restarts) = shard.restarts(target) else {
        return;
    };
    loop {
        let request = loop {
            match parse_request(&input) {
                Parsed::Complete(request) => break request,
                Parsed::Partial if input.len() <= MAX_REQUEST => {}
                Parsed::Partial | Parsed::Invalid => return,
            }
            let read = tokio::select! {
                read = stream.read_buf(&mut input) => read,
                _ = restarts.changed() => return,
            };
            match read {
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
            let life = shard.log(target).map(|log| log.life).unwrap_or_default();
            shard.replies.render(
                &mut body,
                multicall,
                &calls,
                reply::RUNNING,
                |w| shard.programs.write_life(w, target as u64, life, now),
                |w| shard.programs.write_config_life(w, target as u64, life),
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
        let (stats, due) = if log.turns.is_empty() {
            (target_stats(&log.polls, &log.connects, window), u64::MAX)
        } else {
            churned_stats(&log.polls, &log.connects, &log.turns, window)
        };
        report.restarts_done += log.restarts_done;
        report.rebind_failures += log.rebind_failures;
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
        // A target due for less than an interval may rightly not have been polled yet.
        if stats.served == 0 && due > window.interval + 1_000_000_000 {
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
        if !log.in_config() {
            continue;
        }
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
