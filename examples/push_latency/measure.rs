//! One mode's run: supervisord, the receiver (as its listener, or polling beside it), the OTLP
//! sink; the changes one at a time, then the crashes, then the bursts; each change's latency
//! from the instant it was made to the arrival of its record at the sink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use supervisord_receiver::supervisor::xmlrpc::Value;

use crate::daemon::{self, Receiver, SupervisorTools, Supervisord, GROUP};
use crate::otlp_sink::{self, all_records, OtlpSink, ReceivedLogs, Record};
use crate::rpc::{Rpc, Sent};

/// Programs changed in turn: a program's next change comes `PROGRAMS` changes later, long
/// after its previous burst of events is over.
pub const PROGRAMS: usize = 6;
/// The name of the target in both configs (the `supervisor_server` resource attribute).
const TARGET: &str = "host";
const STATE_CHANGE: &str = "supervisord.process.state_change";
/// How long supervisord, the programs and the first poll may take to be ready.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How long a program may take to reach the state a change needs.
const STATE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Push,
    Poll,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Poll => "poll",
        }
    }

    /// `collection_interval` of the receiver's config.
    pub fn interval(self) -> &'static str {
        match self {
            // Polls that rarely come: the records must come from the events.
            Mode::Push => "10s",
            Mode::Poll => "1s",
        }
    }

    /// How long a change's record may take before the run fails.
    pub fn record_timeout(self) -> Duration {
        match self {
            Mode::Push => Duration::from_secs(10),
            Mode::Poll => Duration::from_secs(5),
        }
    }

    /// A random pause before each change (after the check of the program's state): in push
    /// mode longer than the pipeline's 200 ms batch window, so no change joins the previous
    /// one's batch; in polling mode spread over a whole interval, so changes fall at every
    /// phase of the poll schedule. It also leaves supervisord idle when the change comes: a
    /// child killed while supervisord finishes an XML-RPC reply is often reaped only on its
    /// next one-second tick (it sees the closed pipe before the child is a zombie).
    fn pause(self, rng: &mut Rng) -> Duration {
        match self {
            Mode::Push => Duration::from_millis(300 + rng.below(300)),
            Mode::Poll => Duration::from_millis(100 + rng.below(1000)),
        }
    }

    /// How long records of the last changes may still be on their way.
    fn settle(self) -> Duration {
        match self {
            Mode::Push => Duration::from_millis(1500),
            Mode::Poll => Duration::from_millis(3000),
        }
    }
}

/// The parts of a run, reported apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Stops and starts, one program at a time: the headline figure.
    Single,
    /// SIGKILL, one program at a time.
    Crash,
    /// The whole group stopped or started in one call.
    Burst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `supervisor.stopProcess(name, false)`: STOPPING during the call, STOPPED once reaped.
    Stop,
    /// `supervisor.startProcess(name, false)`: STARTING during the call, RUNNING at once after
    /// (startsecs=0).
    Start,
    /// SIGKILL to the program's pid: EXITED once supervisord reaps it, at once when the
    /// closed stdout pipe wakes it; when it was busy at that moment, the child may not be a
    /// zombie yet when it looks, and it reaps it on its loop's one-second tick (Python retries
    /// its poll after SIGCHLD).
    Kill,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Stop => "stop",
            Kind::Start => "start",
            Kind::Kill => "kill",
        }
    }

    /// The states a program must be in for this change.
    fn needs(self) -> &'static [&'static str] {
        match self {
            Kind::Stop | Kind::Kill => &["RUNNING"],
            Kind::Start => &["STOPPED", "EXITED"],
        }
    }

    /// The states of a record that reports this change: the first one either mode sends (push
    /// sends the transient STOPPING and STARTING, a poll sees the settled STOPPED and RUNNING).
    fn reported_by(self) -> &'static [&'static str] {
        match self {
            Kind::Stop => &["STOPPING", "STOPPED"],
            Kind::Start => &["STARTING", "RUNNING"],
            Kind::Kill => &["EXITED"],
        }
    }

    /// The transitions supervisord goes through, from `from`: what push mode reports, each
    /// once; a poll reports one record from `from` to the last state.
    fn transitions(self, from: &str) -> Vec<(String, String)> {
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        match self {
            Kind::Stop => vec![pair(from, "STOPPING"), pair("STOPPING", "STOPPED")],
            Kind::Start => vec![pair(from, "STARTING"), pair("STARTING", "RUNNING")],
            Kind::Kill => vec![pair(from, "EXITED")],
        }
    }
}

/// One measured change.
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: Kind,
    pub phase: Phase,
    /// From the change to the arrival of its record's request at the sink.
    pub latency: Duration,
    /// From the change to the record's observed time (the receiver's clock when it learnt of
    /// the change: the event's arrival, or the poll); `None` when that clock reads earlier than
    /// the change (a poll that started just before it).
    pub to_receiver: Option<Duration>,
    /// The `state` of the record that reported it.
    pub state: String,
}

/// Everything one mode's run found.
pub struct ModeRun {
    pub mode: Mode,
    pub samples: Vec<Sample>,
    /// Records per `(previous_state, state)` of the measured programs, received after the
    /// first change, against what the changes made should give.
    pub transitions: BTreeMap<(String, String), (usize, usize)>,
    /// Records sent more than once (same process, states and timestamps).
    pub duplicates: usize,
    /// Logs requests received after the first change, and records in them.
    pub requests: usize,
    pub records: usize,
    /// What the listener or the receiver logged at WARN and above, and supervisord's
    /// complaints about the listener.
    pub warnings: Vec<String>,
}

/// xorshift64*: pauses that do not line up with anything, no crate needed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let seed = Sent::now().wall_unix_nano | 1;
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

pub struct Plan<'a> {
    pub tools: &'a SupervisorTools,
    pub binary: &'a Path,
    pub changes: usize,
    pub kills: usize,
    pub bursts: usize,
}

fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The receiver's config: one target, the sink's gRPC endpoint, no compression, no
/// self-telemetry (its exports would share the sink's time).
fn receiver_config(mode: Mode, endpoint: &str, sink: &OtlpSink) -> String {
    format!(
        "collection_interval: {interval}\ninitial_delay: 0s\ntimeout: 1s\n\
         targets:\n  - name: {TARGET}\n    endpoint: {endpoint}\n\
         exporters:\n  otlp:\n    protocol: grpc\n    endpoint: {sink}\n    compression: none\n\
         telemetry:\n  metrics: false\n",
        interval = mode.interval(),
        endpoint = yaml_str(endpoint),
        sink = yaml_str(&sink.grpc_endpoint()),
    )
}

/// The `[eventlistener:otel]` section, as docs/push-mode.md recommends it.
fn listener_section(binary: &Path, config: &Path, log: &Path) -> String {
    format!(
        "[eventlistener:otel]\n\
         command={} listen --config {}\n\
         events=PROCESS_STATE,SUPERVISOR_STATE_CHANGE\n\
         buffer_size=100\n\
         autorestart=true\n\
         startsecs=0\n\
         stderr_logfile={}\n\
         environment=RUST_LOG=\"info\"",
        binary.display(),
        config.display(),
        log.display()
    )
}

fn full_name(program: &str) -> String {
    format!("{GROUP}:{program}")
}

pub fn run(mode: Mode, plan: &Plan) -> Result<ModeRun> {
    let sink = OtlpSink::start();
    let mut receiver_log = PathBuf::new();
    let svd = Supervisord::start(plan.tools, PROGRAMS, |dir| {
        receiver_log = dir.join("receiver.log");
        if mode == Mode::Poll {
            return Ok(String::new());
        }
        let config = dir.join("listener.yaml");
        std::fs::write(
            &config,
            receiver_config(mode, "${env:SUPERVISOR_SERVER_URL}", &sink),
        )?;
        Ok(listener_section(plan.binary, &config, &receiver_log))
    })?;
    let rpc = svd.rpc();
    let mut receiver = match mode {
        Mode::Push => None,
        Mode::Poll => {
            let config = svd.dir().join("receiver.yaml");
            let endpoint = format!("unix://{}", svd.socket().display());
            std::fs::write(&config, receiver_config(mode, &endpoint, &sink))?;
            Some(Receiver::start(
                plan.binary,
                &config,
                &receiver_log,
                &[("RUST_LOG", "info")],
            )?)
        }
    };
    let names = daemon::program_names(PROGRAMS);
    for name in &names {
        rpc.wait_for_state(&full_name(name), &["RUNNING"], READY_WAIT)?;
    }
    let mut wanted = names.clone();
    if mode == Mode::Push {
        rpc.wait_for_state("otel", &["RUNNING"], READY_WAIT)
            .with_context(|| svd.logs())?;
        // The listener is one of supervisord's processes too.
        wanted.push("otel".to_owned());
    }
    // The first poll is the baseline: no change is reported before it.
    wait_for_baseline(&sink, &wanted, &receiver_log)?;
    let start = Instant::now();

    let mut rng = Rng::seeded();
    let mut samples = Vec::new();
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut expect = |kind: Kind, from: &str| {
        let transitions = kind.transitions(from);
        let counted = match mode {
            Mode::Push => transitions,
            Mode::Poll => vec![(
                from.to_owned(),
                transitions.last().map(|t| t.1.clone()).unwrap_or_default(),
            )],
        };
        for t in counted {
            *expected.entry(t).or_default() += 1;
        }
    };
    for i in 0..plan.changes {
        let name = &names[i % PROGRAMS];
        let kind = if (i / PROGRAMS).is_multiple_of(2) {
            Kind::Stop
        } else {
            Kind::Start
        };
        let info = rpc.wait_for_state(&full_name(name), kind.needs(), STATE_WAIT)?;
        thread::sleep(mode.pause(&mut rng));
        let sent = change(&rpc, kind, name, info.pid)?;
        expect(kind, &info.state);
        let sample = wait_for_record(&sink, mode, kind, name, &info.state, sent, Phase::Single)?;
        if (i + 1) % 20 == 0 {
            eprintln!(
                "{}: {}/{} changes, last {:.1} ms",
                mode.label(),
                i + 1,
                plan.changes,
                ms(sample.latency)
            );
        }
        samples.push(sample);
        if let Some(receiver) = receiver.as_mut() {
            receiver.check_alive()?;
        }
    }

    if plan.kills > 0 {
        start_all(&rpc, &names, &mut expect)?;
        thread::sleep(mode.settle());
        for k in 0..plan.kills {
            let name = &names[k % PROGRAMS];
            let info = rpc.wait_for_state(&full_name(name), &["RUNNING"], STATE_WAIT)?;
            thread::sleep(mode.pause(&mut rng));
            let sent = change(&rpc, Kind::Kill, name, info.pid)?;
            expect(Kind::Kill, "RUNNING");
            samples.push(wait_for_record(
                &sink,
                mode,
                Kind::Kill,
                name,
                "RUNNING",
                sent,
                Phase::Crash,
            )?);
            // Up again, unmeasured; the next pause keeps its records out of the next kill's
            // batch.
            rpc.wait_for_state(&full_name(name), &["EXITED"], STATE_WAIT)?;
            change(&rpc, Kind::Start, name, 0)?;
            expect(Kind::Start, "EXITED");
            if (k + 1) % 10 == 0 {
                eprintln!("{}: {}/{} kills", mode.label(), k + 1, plan.kills);
            }
        }
    }

    if plan.bursts > 0 {
        start_all(&rpc, &names, &mut expect)?;
        thread::sleep(mode.settle());
        for burst in 0..plan.bursts {
            for (kind, method, from) in [
                (Kind::Stop, "supervisor.stopProcessGroup", "RUNNING"),
                (Kind::Start, "supervisor.startProcessGroup", "STOPPED"),
            ] {
                for name in &names {
                    rpc.wait_for_state(&full_name(name), &[from], STATE_WAIT)?;
                }
                thread::sleep(mode.pause(&mut rng));
                let (sent, _) = rpc.call_timed(
                    method,
                    &[Value::String(GROUP.to_owned()), Value::Bool(false)],
                )?;
                for name in &names {
                    expect(kind, from);
                    samples.push(wait_for_record(
                        &sink,
                        mode,
                        kind,
                        name,
                        from,
                        sent,
                        Phase::Burst,
                    )?);
                }
            }
            eprintln!("{}: burst {}/{}", mode.label(), burst + 1, plan.bursts);
        }
    }

    thread::sleep(mode.settle());
    if let Some(receiver) = receiver.as_mut() {
        receiver.check_alive()?;
    }
    let logs: Vec<ReceivedLogs> = sink
        .logs()
        .into_iter()
        .filter(|r| r.received_at >= start)
        .collect();
    let records: Vec<Record> = all_records(&logs)
        .into_iter()
        .filter(|r| r.event_name == STATE_CHANGE)
        .filter(|r| {
            r.attr("supervisord_process")
                .is_some_and(|p| names.iter().any(|n| n == p))
        })
        .collect();
    let mut transitions: BTreeMap<(String, String), (usize, usize)> =
        expected.into_iter().map(|(k, n)| (k, (0, n))).collect();
    let mut seen = BTreeMap::new();
    let mut duplicates = 0;
    for r in &records {
        let key = (
            r.attr("previous_state").unwrap_or("?").to_owned(),
            r.attr("state").unwrap_or("?").to_owned(),
        );
        transitions.entry(key.clone()).or_default().0 += 1;
        let identity = (
            r.attr("supervisord_process").unwrap_or("").to_owned(),
            key,
            r.time_unix_nano,
            r.observed_time_unix_nano,
        );
        if seen.insert(identity, ()).is_some() {
            duplicates += 1;
        }
    }
    let mut warnings = log_warnings(&receiver_log);
    let supervisord_log = svd.logs();
    // The listener's protocol errors, overflowing event buffers, and the listener's exits.
    for line in supervisord_log.lines().filter(|l| {
        l.contains("violated")
            || l.contains("overflow")
            || (l.contains("otel") && !l.contains("spawned") && !l.contains("entered RUNNING"))
    }) {
        warnings.push(format!("supervisord: {line}"));
    }
    drop(receiver);
    Ok(ModeRun {
        mode,
        samples,
        transitions,
        duplicates,
        requests: logs.len(),
        records: all_records(&logs).len(),
        warnings,
    })
}

/// Starts every program that is not running (unmeasured) and waits until all run.
fn start_all(rpc: &Rpc, names: &[String], expect: &mut impl FnMut(Kind, &str)) -> Result<()> {
    for name in names {
        let info = rpc.process_info(&full_name(name))?;
        if info.state != "RUNNING" {
            change(rpc, Kind::Start, name, 0)?;
            expect(Kind::Start, &info.state);
        }
    }
    for name in names {
        rpc.wait_for_state(&full_name(name), &["RUNNING"], STATE_WAIT)?;
    }
    Ok(())
}

/// Makes the change and returns its instant.
fn change(rpc: &Rpc, kind: Kind, name: &str, pid: i64) -> Result<Sent> {
    let method = match kind {
        Kind::Stop => "supervisor.stopProcess",
        Kind::Start => "supervisor.startProcess",
        Kind::Kill => {
            let pid = libc::pid_t::try_from(pid)
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("{name} has no pid ({pid})"))?;
            let sent = Sent::now();
            // SAFETY: kill has no memory effects.
            if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
                bail!(
                    "kill -KILL {pid} ({name}): {}",
                    std::io::Error::last_os_error()
                );
            }
            return Ok(sent);
        }
    };
    let (sent, _) = rpc.call_timed(
        method,
        &[Value::String(full_name(name)), Value::Bool(false)],
    )?;
    Ok(sent)
}

/// Waits for the first record of `name` that reports the change: received after it, from
/// `from` to one of the states the change's kind is reported by.
fn wait_for_record(
    sink: &OtlpSink,
    mode: Mode,
    kind: Kind,
    name: &str,
    from: &str,
    sent: Sent,
    phase: Phase,
) -> Result<Sample> {
    let timeout = mode.record_timeout();
    let deadline = sent.at + timeout;
    loop {
        let logs = sink.logs();
        for request in logs.iter().filter(|r| r.received_at >= sent.at) {
            let found = all_records(std::slice::from_ref(request))
                .into_iter()
                .find(|r| {
                    r.event_name == STATE_CHANGE
                        && r.attr("supervisord_process") == Some(name)
                        && r.attr("previous_state") == Some(from)
                        && r.attr("state")
                            .is_some_and(|s| kind.reported_by().contains(&s))
                });
            if let Some(record) = found {
                let to_receiver = record
                    .observed_time_unix_nano
                    .checked_sub(sent.wall_unix_nano)
                    .map(Duration::from_nanos);
                return Ok(Sample {
                    kind,
                    phase,
                    latency: request.received_at - sent.at,
                    to_receiver,
                    state: record.attr("state").unwrap_or("?").to_owned(),
                });
            }
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = all_records(&logs)
                .iter()
                .filter(|r| r.attr("supervisord_process") == Some(name))
                .map(|r| {
                    format!(
                        "{}->{}",
                        r.attr("previous_state").unwrap_or("?"),
                        r.attr("state").unwrap_or("?")
                    )
                })
                .collect();
            bail!(
                "{}: {} of {name} ({from} -> {:?}) never reported within {timeout:?}; records of \
                 {name} so far: {seen:?}\n{}",
                mode.label(),
                kind.label(),
                kind.reported_by(),
                otlp_sink::summarize_logs(&logs)
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for a poll that reports every one of `wanted` at the sink.
fn wait_for_baseline(sink: &OtlpSink, wanted: &[String], log: &Path) -> Result<()> {
    let deadline = Instant::now() + READY_WAIT;
    loop {
        let requests = sink.requests();
        let names = otlp_sink::latest_poll(&requests, TARGET).process_names();
        if wanted.iter().all(|w| names.contains(w)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no poll of {wanted:?} at the sink within {READY_WAIT:?}; received: {}\n\
                 receiver log:\n{}",
                otlp_sink::summarize(&requests),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The receiver's WARN and ERROR lines.
fn log_warnings(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(|l| format!("receiver: {l}"))
        .collect()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
