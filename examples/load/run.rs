//! One measured run: fleet shards, the OTLP sink, the receiver; warm-up, window, report.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::child::ChildGuard;
use crate::fleet::{self, ShardReport};
use crate::options::{config_duration, Transport};
use crate::procfs::{self, CpuTime, Memory};
use crate::report::{PythonBaseline, RunReport};
use crate::sink::{Counts, Sink};
use crate::soak::Soak;

/// The receiver's default bound on one poll; the config states it, clamped to the interval,
/// so the receiver has no reason to warn.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the receiver may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct RunSpec {
    pub targets: usize,
    pub processes: usize,
    pub interval: Duration,
    pub duration: Duration,
    pub warmup: Duration,
    pub transport: Transport,
    pub targets_per_fleet: usize,
    /// Whether the receiver keeps its connections open between polls.
    pub keep_alive: bool,
    /// Whether targets keep the default `process_resources: auto` (on loopback: read /proc for
    /// the simulated pids) or set `false`.
    pub process_resources: bool,
    /// The interpreter for the baseline, or None to skip it.
    pub python: Option<String>,
}

/// Set by SIGINT or SIGTERM: the run stops waiting and cleans up.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub struct Shard {
    guard: ChildGuard,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The global indexes of the targets it serves.
    pub targets: std::ops::Range<usize>,
}

impl Shard {
    /// Sends commands that have no answer (`--soak`'s churn), one per line.
    pub fn tell(&mut self, lines: &[String]) -> anyhow::Result<()> {
        if let Some(stdin) = &mut self.stdin {
            for line in lines {
                writeln!(stdin, "{line}")
                    .with_context(|| format!("telling {} '{line}'", self.guard.name))?;
            }
            stdin.flush()?;
        }
        Ok(())
    }

    fn read_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line)?;
        if n == 0 {
            let status = self.guard.exited();
            bail!(
                "{} ended without answering (exit: {status:?}); its errors are above",
                self.guard.name
            );
        }
        Ok(line)
    }
}

/// What is read at each end of the measured window.
struct Snapshot {
    mono_ns: u64,
    at: Instant,
    receiver: CpuTime,
    fleet: Vec<CpuTime>,
    harness: CpuTime,
    sink: Counts,
}

pub fn run(spec: &RunSpec, runtime: &tokio::runtime::Handle) -> anyhow::Result<RunReport> {
    run_with(spec, runtime, None)
}

/// A run, with `--soak`'s churn and memory readings when `soak` is given: its fleet has spare
/// servers, its config is the soak's rolling subset, and the soak is called every second from
/// the first poll of every target on (warm-up and window).
pub fn run_with(
    spec: &RunSpec,
    runtime: &tokio::runtime::Handle,
    mut soak: Option<&mut Soak>,
) -> anyhow::Result<RunReport> {
    let dir = tempfile::Builder::new()
        .prefix("supervisord-load-")
        .tempdir()
        .context("temporary directory")?;
    let exe = std::env::current_exe().context("path of this executable")?;
    let sink = Sink::start(runtime).context("OTLP sink")?;

    progress(&format!(
        "starting {} targets x {} processes ({}), every {:?}",
        spec.targets,
        spec.processes,
        spec.transport.name(),
        spec.interval
    ));
    let socket_dir = dir.path().join("fleet");
    if spec.transport == Transport::Unix {
        std::fs::create_dir(&socket_dir).context("socket directory")?;
    }
    let sample = dir.path().join("reply.xml");
    let servers = soak.as_deref().map_or(spec.targets, Soak::servers);
    let (mut shards, ports) = start_fleet(spec, servers, &exe, &socket_dir, &sample)?;

    let config = dir.path().join("receiver.yaml");
    let sink_addr = sink.addr.to_string();
    let yaml = match soak.as_deref_mut() {
        Some(soak) => {
            let (spec, socket_dir) = (spec.clone(), socket_dir.clone());
            soak.prepare(
                &mut shards,
                Box::new(move |members| {
                    receiver_config(&spec, members, &ports, &socket_dir, &sink_addr)
                }),
                &config,
            )?
        }
        None => receiver_config(
            spec,
            &mut (0..spec.targets).map(|t| (t, target_name(t))),
            &ports,
            &socket_dir,
            &sink_addr,
        ),
    };
    std::fs::write(&config, yaml).context("writing the receiver config")?;
    let log_path = dir.path().join("receiver.log");
    let log = std::fs::File::create(&log_path).context("receiver log file")?;
    let receiver = Command::new(&exe)
        .arg("__receiver")
        .arg(&config)
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the receiver")?;
    let mut receiver = ChildGuard::new(receiver, "receiver");
    let started = Instant::now();
    let started_ns = procfs::monotonic_ns();

    progress(&format!("warm-up {:?}", spec.warmup));
    let startup = match soak.as_deref_mut() {
        None => {
            wait_until(started + spec.warmup, &mut receiver, &log_path, |_| Ok(()))?;
            wait_for_first_polls(spec, &mut shards, &mut receiver, &log_path, started_ns)?
        }
        // Churn starts once every target has been polled, and runs through the rest of the
        // warm-up, so the window sees a receiver already used to it.
        Some(soak) => {
            let first = started + spec.interval + Duration::from_secs(3);
            wait_until(
                first.min(started + spec.warmup),
                &mut receiver,
                &log_path,
                |_| Ok(()),
            )?;
            let startup =
                wait_for_first_polls(spec, &mut shards, &mut receiver, &log_path, started_ns)?;
            progress("churn starts");
            soak.start();
            wait_until(
                started + spec.warmup,
                &mut receiver,
                &log_path,
                |receiver| soak.tick(receiver, &mut shards, false),
            )?;
            startup
        }
    };
    let start = snapshot(&receiver, &shards, &sink)?;
    progress(&format!("measuring {:?}", spec.duration));
    let mut last_rss = Memory::default();
    wait_until(
        start.at + spec.duration,
        &mut receiver,
        &log_path,
        |receiver| {
            // Kept so a receiver that dies right at the end still reports memory.
            if let Ok(memory) = procfs::memory(receiver.pid()) {
                last_rss = memory;
            }
            match soak.as_deref_mut() {
                Some(soak) => soak.tick(receiver, &mut shards, true),
                None => Ok(()),
            }
        },
    )?;
    let end = snapshot(&receiver, &shards, &sink)?;
    let memory = procfs::memory(receiver.pid()).unwrap_or(last_rss);

    let mut reports = Vec::new();
    for shard in &mut shards {
        if let Some(stdin) = &mut shard.stdin {
            writeln!(stdin, "report {} {}", start.mono_ns, end.mono_ns)
                .with_context(|| format!("asking {} for its report", shard.guard.name))?;
            stdin.flush()?;
        }
        let line = shard.read_line()?;
        let report: ShardReport = serde_json::from_str(&line)
            .with_context(|| format!("{}: report '{}'", shard.guard.name, line.trim()))?;
        reports.push(report);
    }

    progress("stopping the receiver");
    let (exit, stop_took) = receiver.terminate(STOP_GRACE);
    for shard in &mut shards {
        // End of input tells the shard to exit; the guard kills it if it does not.
        shard.stdin = None;
    }
    drop(shards);
    drop(sink);
    // On a quiet machine: the fleet and the receiver are gone.
    let python = match &spec.python {
        Some(python) if sample.is_file() => Some(python_baseline(python, &sample)),
        Some(_) => Some(Err(anyhow::anyhow!("no reply was served to sample"))),
        None => None,
    };
    let (log_lines, log_sample) = log_summary(&log_path);
    if let Some(soak) = soak {
        soak.finish(&reports, &log_path);
    }

    Ok(RunReport::new(
        spec,
        &reports,
        Window {
            seconds: end.at.duration_since(start.at).as_secs_f64(),
            receiver: end.receiver.since(&start.receiver),
            fleet: end
                .fleet
                .iter()
                .zip(&start.fleet)
                .map(|(e, s)| e.since(s).total())
                .sum(),
            harness: end.harness.since(&start.harness).total(),
            export: end.sink.since(&start.sink),
        },
        memory,
        startup,
        exit.map_or_else(
            || format!("killed after {STOP_GRACE:?} without exiting"),
            |s| s.to_string(),
        ),
        stop_took,
        python,
        log_lines,
        log_sample,
    ))
}

/// How long the receiver took to poll each target once, from its start.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Startup {
    pub first_poll_seconds: f64,
    pub every_target_polled_seconds: f64,
    /// The warm-up had to be extended until every target was polled once.
    pub warmup_extended_seconds: f64,
}

/// Waits (after the warm-up) until every target has been polled once, so the window sees the
/// receiver in its steady state: connections open, schedules running.
fn wait_for_first_polls(
    spec: &RunSpec,
    shards: &mut [Shard],
    receiver: &mut ChildGuard,
    log: &Path,
    started_ns: u64,
) -> anyhow::Result<Startup> {
    let waiting = Instant::now();
    let patience = spec.interval * 3 + Duration::from_secs(300);
    loop {
        let mut polled = 0;
        let mut first: Option<u64> = None;
        let mut last: Option<u64> = Some(0);
        for shard in shards.iter_mut() {
            if let Some(stdin) = &mut shard.stdin {
                writeln!(stdin, "status")?;
                stdin.flush()?;
            }
            let line = shard.read_line()?;
            let status: fleet::Status = serde_json::from_str(&line)
                .with_context(|| format!("{}: status '{}'", shard.guard.name, line.trim()))?;
            polled += status.polled;
            first = match (first, status.first_poll_ns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            last = last.zip(status.last_first_poll_ns).map(|(a, b)| a.max(b));
        }
        if let (Some(first), Some(last)) = (first, last) {
            let seconds = |t: u64| t.saturating_sub(started_ns) as f64 / 1e9;
            return Ok(Startup {
                first_poll_seconds: seconds(first),
                every_target_polled_seconds: seconds(last),
                warmup_extended_seconds: waiting.elapsed().as_secs_f64(),
            });
        }
        if waiting.elapsed() > patience {
            bail!(
                "after the warm-up and {patience:?} more, the receiver has polled {polled} of {} \
                 targets",
                spec.targets
            );
        }
        if polled > 0 && waiting.elapsed() < Duration::from_millis(250) {
            progress(&format!(
                "warm-up: {polled} of {} targets polled so far; waiting for the rest",
                spec.targets
            ));
        }
        wait_until(
            Instant::now() + Duration::from_millis(200),
            receiver,
            log,
            |_| Ok(()),
        )?;
    }
}

/// The measured figures of the window.
pub struct Window {
    pub seconds: f64,
    pub receiver: CpuTime,
    pub fleet: Duration,
    pub harness: Duration,
    pub export: Counts,
}

fn progress(message: &str) {
    eprintln!("load: {message}");
}

/// Starts `servers` simulated supervisords: the spec's targets, and spare ones for `--soak`.
fn start_fleet(
    spec: &RunSpec,
    servers: usize,
    exe: &Path,
    socket_dir: &Path,
    sample: &Path,
) -> anyhow::Result<(Vec<Shard>, Vec<u16>)> {
    let per = spec.targets_per_fleet.max(1);
    let count = servers.div_ceil(per).max(1);
    let boot = procfs::unix_now() - 3600;
    let mut shards = Vec::with_capacity(count);
    let mut first = 0;
    for shard in 0..count {
        // Balanced: the first shards take one more when the division is not exact.
        let targets = servers / count + usize::from(shard < servers % count);
        let shard_spec = fleet::Spec {
            shard,
            first_target: first,
            targets,
            processes: spec.processes,
            interval_ns: u64::try_from(spec.interval.as_nanos()).unwrap_or(u64::MAX),
            unix_dir: (spec.transport == Transport::Unix).then(|| socket_dir.to_path_buf()),
            boot,
            parent: std::process::id(),
            sample: (shard == 0).then(|| sample.to_path_buf()),
        };
        first += targets;
        let mut child = Command::new(exe)
            .arg("__fleet")
            .arg(serde_json::to_string(&shard_spec)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a fleet process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("fleet stdout")?;
        shards.push(Shard {
            guard: ChildGuard::new(child, format!("fleet process {shard}")),
            stdin,
            stdout: BufReader::new(stdout),
            targets: first - targets..first,
        });
    }
    let mut ports = Vec::with_capacity(servers);
    for shard in &mut shards {
        let line = shard.read_line()?;
        let ready: fleet::Ready = serde_json::from_str(&line)
            .with_context(|| format!("{}: '{}'", shard.guard.name, line.trim()))?;
        ports.extend(ready.ports);
    }
    if spec.transport == Transport::Tcp && ports.len() != servers {
        bail!(
            "the fleet bound {} ports for {} targets",
            ports.len(),
            servers
        );
    }
    Ok((shards, ports))
}

/// The native config: the `members` (fleet server, target name), the interval, and one OTLP
/// gRPC exporter (gzip) to the sink. Everything else is the receiver's default, but
/// `process_resources: false` when asked.
fn receiver_config(
    spec: &RunSpec,
    members: &mut dyn Iterator<Item = (usize, String)>,
    ports: &[u16],
    socket_dir: &Path,
    sink: &str,
) -> String {
    let mut yaml = String::with_capacity(spec.targets * 64 + 512);
    yaml.push_str(&format!(
        "collection_interval: {}\ninitial_delay: 1s\ntimeout: {}\nkeep_alive: {}\ntargets:\n",
        config_duration(spec.interval),
        config_duration(spec.interval.min(DEFAULT_TIMEOUT)),
        spec.keep_alive,
    ));
    for (target, name) in members {
        let endpoint = match spec.transport {
            Transport::Tcp => format!(
                "http://127.0.0.1:{}",
                ports.get(target).copied().unwrap_or(0)
            ),
            Transport::Unix => format!(
                "unix://{}",
                fleet::socket_path(socket_dir, target).display()
            ),
        };
        yaml.push_str(&format!("  - name: {name}\n    endpoint: {endpoint}\n"));
        if !spec.process_resources {
            yaml.push_str("    process_resources: false\n");
        }
    }
    yaml.push_str(&format!(
        "exporters:\n  otlp:\n    protocol: grpc\n    endpoint: http://{sink}\n    compression: gzip\n"
    ));
    yaml
}

pub fn target_name(target: usize) -> String {
    format!("host-{target:05}")
}

/// Sleeps until `deadline` in short steps, calling `each` every second; fails when the
/// receiver exits or the harness is interrupted.
fn wait_until(
    deadline: Instant,
    receiver: &mut ChildGuard,
    log: &Path,
    mut each: impl FnMut(&ChildGuard) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut next = Instant::now();
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if let Some(status) = receiver.exited() {
            let (_, lines) = log_summary(log);
            bail!(
                "the receiver exited ({status}) during the run; its log:\n{}",
                lines.join("\n")
            );
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        if now >= next {
            each(receiver)?;
            next = now + Duration::from_secs(1);
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

fn snapshot(receiver: &ChildGuard, shards: &[Shard], sink: &Sink) -> anyhow::Result<Snapshot> {
    let mono_ns = procfs::monotonic_ns();
    let at = Instant::now();
    let receiver = procfs::cpu_time(receiver.pid()).context("receiver CPU")?;
    let fleet = shards
        .iter()
        .map(|s| procfs::cpu_time(s.guard.pid()))
        .collect::<Result<Vec<_>, _>>()
        .context("fleet CPU")?;
    let harness = procfs::cpu_time(std::process::id()).context("harness CPU")?;
    Ok(Snapshot {
        mono_ns,
        at,
        receiver,
        fleet,
        harness,
        sink: sink.counters.read(),
    })
}

/// Python's `xmlrpc.client.loads` on the reply bytes the fleet served (benches/python_baseline.py).
fn python_baseline(python: &str, reply: &Path) -> anyhow::Result<PythonBaseline> {
    progress("Python baseline on the served reply");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/python_baseline.py");
    let output = Command::new(python)
        .arg(&script)
        .args(["--repeat", "5", "--min-time", "0.1"])
        .arg(reply)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    #[derive(serde::Deserialize)]
    struct Out {
        python: String,
        results: Vec<One>,
    }
    #[derive(serde::Deserialize)]
    struct One {
        bytes: u64,
        best_cpu_seconds_per_call: f64,
    }
    let out: Out = serde_json::from_slice(&output.stdout).context("baseline output")?;
    let one = out.results.first().context("baseline: no result")?;
    Ok(PythonBaseline {
        python: out.python,
        reply_bytes: one.bytes,
        seconds_per_call: one.best_cpu_seconds_per_call,
    })
}

/// Line count of the receiver's log and its first lines: WARN and above (the INFO line of each
/// reload is `--soak`'s to count).
fn log_summary(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .filter(|line| line.split_whitespace().nth(1) != Some("INFO"))
        .map(str::to_string)
        .collect();
    let sample = lines.iter().take(5).cloned().collect();
    (lines.len(), sample)
}
