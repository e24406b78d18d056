//! End to end: faults of the network itself, made for real by a TCP relay
//! ([`crate::testkit::relay`]) put on one link at a time: between the receiver and one real
//! supervisord (beside targets reached directly), and between the receiver and a real OTLP
//! server (gRPC and HTTP exporters). The relay's mode is changed while the real binary runs:
//! latency with jitter, loss stalls, a link gone dark, resets mid-reply or mid-request, and the
//! healed link again.
//!
//! Schedules and deliveries are judged from what the OTLP servers received (each poll is
//! identified by its target and its `supervisord.can_connect` timestamp, the time the poll
//! started), never by timing the test's own code; causes from the receiver's log.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::export_reliability::{contains_all, distinct, each_target_has, refused_targets, stamps};
use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::longest_gap;
use crate::testkit::otlp_sink::{self, OtlpSink, Protocol, ReceivedRequest};
use crate::testkit::receiver::Running;
use crate::testkit::relay::{Mode, Relay};
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::{yaml_str, WAIT};

const CAN_CONNECT: &str = "supervisord.can_connect";
const SECOND: u64 = 1_000_000_000;

fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `(poll start, can_connect)` of every poll of `target` received, sorted.
fn polls_of(requests: &[ReceivedRequest], target: &str) -> Vec<(u64, i64)> {
    let mut polls: Vec<(u64, i64)> = otlp_sink::points(requests, CAN_CONNECT)
        .iter()
        .filter(|p| p.server() == Some(target))
        .map(|p| (p.time_unix_nano, p.value))
        .collect();
    polls.sort_unstable();
    polls.dedup();
    polls
}

/// Waits until `target` has `n` polls that started at or after `since`; returns them, and when
/// the `n`-th was seen at the sink (Unix nanoseconds).
fn polls_since(sink: &OtlpSink, target: &str, since: u64, n: usize) -> (Vec<(u64, i64)>, u64) {
    let mut seen_at = 0;
    let requests = sink.wait_for(
        |r| {
            let done = polls_of(r, target).iter().filter(|p| p.0 >= since).count() >= n;
            if done {
                seen_at = unix_nanos_now();
            }
            done
        },
        WAIT,
    );
    let polls: Vec<(u64, i64)> = polls_of(&requests, target)
        .into_iter()
        .filter(|p| p.0 >= since)
        .take(n)
        .collect();
    (polls, seen_at)
}

/// Waits for the first successful poll of `target` that started after `after`.
fn success_after(sink: &OtlpSink, target: &str, after: u64) -> u64 {
    let requests = sink.wait_for(
        |r| polls_of(r, target).iter().any(|p| p.0 > after && p.1 == 1),
        WAIT,
    );
    polls_of(&requests, target)
        .into_iter()
        .find(|p| p.0 > after && p.1 == 1)
        .map_or(0, |p| p.0)
}

/// The log lines that contain every one of `needles`.
fn lines_with<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .collect()
}

// ---- The relay itself ---------------------------------------------------------------------------

/// An upstream that echoes what it reads, one thread per connection.
fn echo_server() -> std::net::SocketAddr {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("echo: cannot bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("echo: local_addr: {e}"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn connect(relay: &Relay) -> TcpStream {
    let stream = TcpStream::connect(relay.addr()).unwrap_or_else(|e| panic!("cannot connect: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("read timeout: {e}"));
    stream
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream
        .write_all(message)
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut reply = vec![0u8; message.len()];
    stream
        .read_exact(&mut reply)
        .unwrap_or_else(|e| panic!("read: {e}"));
    reply
}

/// Each mode does to a real socket what its documentation says: the faults the other tests
/// rely on happen, and the peers see the kernel's errors.
#[test]
fn the_relay_makes_each_fault_it_promises() {
    let relay = Relay::start(echo_server());

    let mut stream = connect(&relay);
    assert_eq!(round_trip(&mut stream, b"ping"), b"ping");

    // Latency: both directions are delayed.
    relay.set(Mode::Latency {
        base: Duration::from_millis(150),
        jitter: Duration::ZERO,
    });
    let started = Instant::now();
    assert_eq!(round_trip(&mut stream, b"slow"), b"slow");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // Loss with certainty: every chunk is stalled, nothing is lost.
    relay.set(Mode::Loss {
        probability: 1.0,
        stall: Duration::from_millis(100),
    });
    let before = relay.counts();
    assert_eq!(round_trip(&mut stream, b"lossy"), b"lossy");
    assert_eq!(relay.counts().stalls, before.stalls + 2);

    // Silent: nothing comes back, and nothing is closed; the held bytes arrive once it heals.
    relay.set(Mode::Silent);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap_or_else(|e| panic!("read timeout: {e}"));
    stream
        .write_all(b"dark")
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut buf = [0u8; 4];
    let silent = stream.read(&mut buf);
    assert!(
        matches!(&silent, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{silent:?}"
    );
    relay.set(Mode::Pass);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("read timeout: {e}"));
    stream
        .read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("the held bytes did not arrive: {e}"));
    assert_eq!(&buf, b"dark");

    // A reset mid-reply: the first bytes, then ECONNRESET.
    relay.set(Mode::ResetMidReply { after_bytes: 3 });
    stream
        .write_all(b"hello")
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = Vec::new();
    let error = loop {
        let mut chunk = [0u8; 16];
        match stream.read(&mut chunk) {
            Ok(0) => panic!("closed without a reset after {got:?}"),
            Ok(n) => got.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) => break e,
        }
    };
    assert_eq!(got, b"hel");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");

    // Down: connects are refused, and accepted again once it is back.
    relay.set(Mode::Refuse);
    let refused = TcpStream::connect(relay.addr());
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    relay.set(Mode::Pass);
    let mut stream = connect(&relay);
    assert_eq!(round_trip(&mut stream, b"back"), b"back");

    let counts = relay.counts();
    assert_eq!(counts.connections, 2, "{counts:?}");
    assert!(counts.resets >= 1 && counts.chunks_held >= 1, "{counts:?}");
}

// ---- The link to one supervisord ----------------------------------------------------------------

/// The target behind the relay, and its schedule: room for a round trip of up to about 1.2 s
/// (two 600 ms stalls, or twice 300 ± 200 ms) within its timeout.
const SLOW: &str = "slow";
const SLOW_INTERVAL: u64 = 2 * SECOND;
const SLOW_TIMEOUT: Duration = Duration::from_secs(2);
/// Polled directly, every second.
const FAST: [&str; 2] = ["fast-tcp", "fast-unix"];
/// How late the point of a poll cut by its timeout may reach the sink, beyond the timeout: the
/// pipeline's 200 ms batch window, the export, and a loaded machine.
const REPORT_MARGIN: u64 = 1_500_000_000;

#[test]
fn a_slow_dark_or_resetting_link_to_one_supervisord_spares_the_others() {
    let started = Instant::now();
    let svd = Supervisord::start(
        Options::default().programs(vec![Program::running("app"), Program::running("worker")]),
    );
    let link = Relay::to_url(&svd.http_url());
    let sink = OtlpSink::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let targets = [
        target(SLOW, &link.url()).extra(&format!(
            "collection_interval: {}s\ntimeout: {SLOW_TIMEOUT:?}",
            SLOW_INTERVAL / SECOND
        )),
        target(FAST[0], &svd.http_url()),
        target(FAST[1], &svd.unix_url()),
    ];
    let text = config::native(
        &targets,
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let path = config::write(dir.path(), "receiver.yaml", &text);
    let mut receiver = Running::start(&path, &[]);
    let (first, _) = polls_since(&sink, SLOW, 0, 1);
    assert_eq!(
        first.first().map(|p| p.1),
        Some(1),
        "healthy link: {first:?}"
    );

    // Latency with jitter, then loss stalls: every poll still succeeds within its timeout.
    for (mode, name) in [
        (
            Mode::Latency {
                base: Duration::from_millis(300),
                jitter: Duration::from_millis(200),
            },
            "latency",
        ),
        (
            Mode::Loss {
                probability: 0.5,
                stall: Duration::from_millis(600),
            },
            "loss",
        ),
    ] {
        let before = link.counts();
        link.set(mode);
        let (polls, _) = polls_since(&sink, SLOW, unix_nanos_now(), 2);
        assert!(
            polls.iter().all(|p| p.1 == 1),
            "{name}: polls within the timeout succeed: {polls:?}"
        );
        let after = link.counts();
        assert!(
            after.chunks_delayed > before.chunks_delayed,
            "{name}: {after:?}"
        );
    }
    assert!(link.counts().stalls > 0, "{:?}", link.counts());

    // Dark: the poll ends at its timeout, its point arrives right after, the log says why.
    link.set(Mode::Silent);
    let (polls, seen_at) = polls_since(&sink, SLOW, unix_nanos_now(), 1);
    let dark = polls.first().copied().unwrap_or_default();
    assert_eq!(dark.1, 0, "a dark link fails the poll: {polls:?}");
    let reported_after = seen_at.saturating_sub(dark.0);
    eprintln!(
        "dark link: the failed poll reached the OTLP server {:.2}s after it started",
        reported_after as f64 / 1e9
    );
    assert!(
        u128::from(reported_after) <= SLOW_TIMEOUT.as_nanos() + u128::from(REPORT_MARGIN),
        "the failed poll was reported {:.2}s after it started",
        reported_after as f64 / 1e9
    );
    let log = receiver.wait_for_stderr("waiting for the reply", WAIT);
    let reason = format!("timed out after {SLOW_TIMEOUT:?} waiting for the reply");
    assert_eq!(
        lines_with(&log, &["WARN", "target_name=slow", &reason]).len(),
        1,
        "one warning names the target and where it stalled:\n{log}"
    );
    link.set(Mode::Pass);
    success_after(&sink, SLOW, dark.0);
    receiver.wait_for_stderr("supervisord is reachable again", WAIT);

    // A reset mid-reply: the poll fails at once (long before its timeout) with the reason,
    // then a new connection works.
    link.set(Mode::ResetMidReply { after_bytes: 200 });
    let (polls, seen_at) = polls_since(&sink, SLOW, unix_nanos_now(), 1);
    let reset = polls.first().copied().unwrap_or_default();
    assert_eq!(reset.1, 0, "a reset fails the poll: {polls:?}");
    let reported_after = seen_at.saturating_sub(reset.0);
    assert!(
        u128::from(reported_after) < SLOW_TIMEOUT.as_nanos(),
        "the reset poll was reported {:.2}s after it started",
        reported_after as f64 / 1e9
    );
    let log = receiver.wait_for_stderr("Connection reset by peer", WAIT);
    let warned = lines_with(
        &log,
        &["WARN", "target_name=slow", "Connection reset by peer"],
    );
    assert_eq!(warned.len(), 1, "{log}");
    let connections = link.counts().connections;
    link.set(Mode::Pass);
    success_after(&sink, SLOW, reset.0);
    assert!(
        link.counts().connections > connections,
        "a new connection replaced the reset one: {:?}",
        link.counts()
    );

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    let recovered = lines_with(
        &finished.stderr,
        &["supervisord is reachable again", "target_name=slow"],
    );
    assert_eq!(recovered.len(), 2, "{}", finished.stderr);
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);

    // Every target kept its schedule throughout: the fast ones were never touched, and the
    // slow one reported every interval, its failures included.
    let requests = sink.requests();
    for name in FAST {
        let polls = polls_of(&requests, name);
        assert!(polls.iter().all(|p| p.1 == 1), "{name}: {polls:?}");
        let gap = longest_gap(&polls);
        assert!(
            gap <= 2 * SECOND,
            "{name}: polls {:.2}s apart (interval 1s)",
            gap as f64 / 1e9
        );
    }
    let gap = longest_gap(&polls_of(&requests, SLOW));
    assert!(
        gap <= SLOW_INTERVAL + SECOND,
        "{SLOW}: polls {:.2}s apart (interval 2s)",
        gap as f64 / 1e9
    );
    eprintln!("supervisord link test took {:?}", started.elapsed());
}

// ---- The link to the OTLP backend ---------------------------------------------------------------

/// Three refused targets polled every second, exported over gRPC and over HTTP through a relay
/// each (to one OTLP server), and directly to `reference`, which records every poll produced.
/// The relayed exporters come first, so a batch is in their queues before `reference` has it.
fn export_config(
    dir: &std::path::Path,
    grpc: &Relay,
    http: &Relay,
    reference: &OtlpSink,
) -> PathBuf {
    let mut text = refused_targets();
    text.push_str("exporters:\n");
    for (name, protocol, link) in [("grpc", "grpc", grpc), ("http", "http/protobuf", http)] {
        text.push_str(&format!(
            "  otlp/{name}:\n    protocol: {protocol}\n    endpoint: {}\n    timeout: 2s\n    \
             retry_on_failure:\n      initial_interval: 100ms\n      max_interval: 500ms\n      \
             max_elapsed_time: 2m\n",
            yaml_str(&link.url())
        ));
    }
    text.push_str(&format!(
        "  otlp/reference:\n    protocol: http/protobuf\n    endpoint: {}\n    \
         compression: none\n",
        yaml_str(&reference.http_endpoint())
    ));
    config::write(dir, "receiver.yaml", &text)
}

/// The requests `main` received over one protocol.
fn over(requests: &[ReceivedRequest], protocol: Protocol) -> Vec<ReceivedRequest> {
    requests
        .iter()
        .filter(|r| r.protocol == protocol)
        .cloned()
        .collect()
}

const EXPORTERS: [(&str, Protocol); 2] = [
    ("otlp/grpc", Protocol::Grpc),
    ("otlp/http", Protocol::HttpProtobuf),
];

/// Waits until every poll `reference` has received has reached `main` over both protocols;
/// panics naming the missing ones.
fn everything_arrives(main: &OtlpSink, reference: &OtlpSink, phase: &str) {
    let produced = distinct(&stamps(&reference.requests()));
    let deadline = Instant::now() + WAIT;
    loop {
        let requests = main.requests();
        let mut missing = String::new();
        for (name, protocol) in EXPORTERS {
            let got = distinct(&stamps(&over(&requests, protocol)));
            for (target, polls) in &produced {
                let lost: Vec<&u64> = polls
                    .iter()
                    .filter(|t| !got.get(target).is_some_and(|g| g.contains(t)))
                    .collect();
                if !lost.is_empty() {
                    missing.push_str(&format!("{name} {target}: {lost:?}\n"));
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{phase}: polls produced but not received within {WAIT:?}:\n{missing}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One exporter's failed attempts in a part of the log: the warnings, and how many attempts
/// failed in all (warned, or logged at debug level as retries).
fn failures(log: &str, exporter: &str) -> (Vec<String>, usize) {
    let field = format!("exporter={exporter}");
    let warned: Vec<String> = lines_with(
        log,
        &["WARN", "export failed, retrying with backoff", &field],
    )
    .into_iter()
    .map(str::to_owned)
    .collect();
    let again = lines_with(log, &["DEBUG", "export failed again", &field]).len();
    let failed = warned.len() + again;
    (warned, failed)
}

#[test]
fn a_slow_dark_or_resetting_link_to_the_backend_loses_no_poll() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let main = OtlpSink::start();
    let reference = OtlpSink::start();
    let grpc = Relay::to_url(&main.grpc_endpoint());
    let http = Relay::to_url(&main.http_endpoint());
    let path = export_config(dir.path(), &grpc, &http, &reference);
    // Debug for the sender alone: its retries are logged there, its episodes as warnings.
    let receiver = Running::start(
        &path,
        &[(
            "RUST_LOG",
            "info,supervisord_receiver::export::sender=debug",
        )],
    );
    main.wait_for(
        |r| {
            EXPORTERS
                .iter()
                .all(|(_, p)| each_target_has(&over(r, *p), &BTreeMap::new(), 2))
        },
        WAIT,
    );

    // Latency within the export timeout costs nothing but time.
    let latency = Mode::Latency {
        base: Duration::from_millis(200),
        jitter: Duration::from_millis(100),
    };
    grpc.set(latency);
    http.set(latency);
    let before = distinct(&stamps(&reference.requests()));
    reference.wait_for(|r| each_target_has(r, &before, 3), WAIT);
    everything_arrives(&main, &reference, "latency");
    for link in [&grpc, &http] {
        assert!(link.counts().chunks_delayed > 0, "{:?}", link.counts());
    }
    let log = receiver.stderr_so_far();
    assert!(
        !log.contains("export failed"),
        "latency alone failed an export:\n{log}"
    );

    // Two episodes: a dark link (requests time out) and resets mid-request. Each is logged
    // once per exporter, with its cause, however many retries it took; once the link heals,
    // every poll produced meanwhile arrives.
    let episodes = [
        (
            Mode::Silent,
            ["no reply within 2s", "no response within 2s"],
        ),
        (
            Mode::ResetMidRequest { after_bytes: 64 },
            ["connection reset", "connection closed"],
        ),
    ];
    for (mode, causes) in episodes {
        let start = receiver.stderr_so_far().len();
        let before = distinct(&stamps(&reference.requests()));
        grpc.set(mode);
        http.set(mode);
        reference.wait_for(|r| each_target_has(r, &before, 3), WAIT);
        // Failed, warned and retried, by both exporters, before the link heals.
        let deadline = Instant::now() + WAIT;
        loop {
            let log = receiver.stderr_so_far();
            let episode = log.get(start..).unwrap_or_default();
            let retried = EXPORTERS.iter().all(|(exporter, _)| {
                let (warned, failed) = failures(episode, exporter);
                !warned.is_empty() && failed >= 2
            });
            if retried {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mode:?}: not every exporter failed and retried:\n{episode}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        grpc.set(Mode::Pass);
        http.set(Mode::Pass);
        everything_arrives(&main, &reference, &format!("{mode:?}"));
        let log = receiver.stderr_so_far();
        let episode = log.get(start..).unwrap_or_default();
        for (exporter, _) in EXPORTERS {
            let (warned, failed) = failures(episode, exporter);
            assert_eq!(warned.len(), 1, "{mode:?}: {exporter} warned {warned:#?}");
            assert!(failed >= 2, "{mode:?}: {exporter} was retried:\n{episode}");
            let warning = warned.first().map(|w| w.to_lowercase()).unwrap_or_default();
            assert!(
                causes.iter().any(|c| warning.contains(c)),
                "{mode:?}: {exporter}'s warning names the cause ({causes:?}): {warning}"
            );
        }
    }
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    for (exporter, _) in EXPORTERS {
        let recovered = lines_with(
            &finished.stderr,
            &["export succeeded again", &format!("exporter={exporter}")],
        );
        assert_eq!(recovered.len(), 2, "{exporter}: {recovered:#?}");
    }
    for loss in [
        "points dropped",
        "points lost",
        "dropping the oldest",
        "panicked",
    ] {
        assert!(!finished.stderr.contains(loss), "{}", finished.stderr);
    }
    // The final flush too: every poll produced reached both relayed exporters.
    let produced = distinct(&stamps(&reference.requests()));
    for (name, protocol) in EXPORTERS {
        let got = distinct(&stamps(&over(&main.requests(), protocol)));
        assert!(contains_all(&got, &produced), "{name}: polls missing");
    }
    assert!(main.errors().is_empty(), "{:?}", main.errors());
    eprintln!("export link test took {:?}", started.elapsed());
}
