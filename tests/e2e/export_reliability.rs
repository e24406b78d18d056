//! End to end: nothing is lost while the OTLP backend is down. The real binary polls targets
//! every second and exports to two real OTLP servers: `main`, which the test stops and restarts,
//! and `reference`, which stays up and so records every poll that was produced. Each poll is
//! identified by its target and its `supervisord.can_connect` timestamp.
//!
//! The targets are closed ports: a refused poll still produces a point every interval, and needs
//! no supervisord.
//!
//! `main` comes first in the config, so every batch is in its queue (on disk, when persistent)
//! before `reference` can have received it: whatever `reference` got before a crash must reach
//! `main` after it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::testkit::otlp_sink::{self, OtlpSink, ReceivedRequest};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::free_port;
use crate::testkit::{yaml_str, WAIT};

/// The config's targets (three closed ports); shared with the disk-fault suite.
pub(super) const TARGETS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Per target, every `can_connect` timestamp received, duplicates included, sorted.
pub(super) fn stamps(requests: &[ReceivedRequest]) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in otlp_sink::points(requests, "supervisord.can_connect") {
        let server = p.server().unwrap_or("?").to_string();
        out.entry(server).or_default().push(p.time_unix_nano);
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

pub(super) fn distinct(stamps: &BTreeMap<String, Vec<u64>>) -> BTreeMap<String, BTreeSet<u64>> {
    stamps
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
        .collect()
}

/// Every target has at least `n` polls more than in `before`.
pub(super) fn each_target_has(
    requests: &[ReceivedRequest],
    before: &BTreeMap<String, BTreeSet<u64>>,
    n: usize,
) -> bool {
    let now = distinct(&stamps(requests));
    TARGETS.iter().all(|t| {
        let had = before.get(*t).map_or(0, BTreeSet::len);
        now.get(*t).map_or(0, BTreeSet::len) >= had + n
    })
}

/// `sub` is contained in `all`, per target.
pub(super) fn contains_all(
    all: &BTreeMap<String, BTreeSet<u64>>,
    sub: &BTreeMap<String, BTreeSet<u64>>,
) -> bool {
    sub.iter()
        .all(|(t, s)| all.get(t).is_some_and(|a| s.is_subset(a)))
}

fn assert_no_duplicates(stamps: &BTreeMap<String, Vec<u64>>) {
    for (target, list) in stamps {
        let mut seen = BTreeSet::new();
        let doubled: Vec<&u64> = list.iter().filter(|t| !seen.insert(**t)).collect();
        assert!(
            doubled.is_empty(),
            "{target}: polls received twice: {doubled:?}"
        );
    }
}

/// The start of a config shared with the disk- and network-fault suites: [`TARGETS`] on
/// closed ports (a refused poll still makes a point every interval, with no supervisord),
/// polled every second; the exporters follow.
pub(super) fn refused_targets() -> String {
    let mut text =
        String::from("collection_interval: 1s\ninitial_delay: 0s\ntimeout: 1s\ntargets:\n");
    for name in TARGETS {
        let url = format!("http://127.0.0.1:{}", free_port());
        text.push_str(&format!(
            "  - name: {name}\n    endpoint: {}\n",
            yaml_str(&url)
        ));
    }
    text
}

/// Three refused targets polled every second; `main` first, with a fast retry, then
/// `reference`.
fn config(
    dir: &Path,
    main: &str,
    main_protocol: &str,
    reference: &str,
    storage: Option<&Path>,
) -> std::path::PathBuf {
    let mut text = refused_targets();
    text.push_str(&format!(
        "exporters:\n  otlp/main:\n    protocol: {main_protocol}\n    endpoint: {}\n    \
         timeout: 2s\n    retry_on_failure:\n      initial_interval: 100ms\n      \
         max_interval: 500ms\n      max_elapsed_time: 2m\n    sending_queue:\n      \
         queue_size_batches: 500\n      queue_size_bytes: 16MiB\n",
        yaml_str(main)
    ));
    if let Some(storage) = storage {
        text.push_str(&format!(
            "      storage: {}\n",
            yaml_str(&storage.to_string_lossy())
        ));
    }
    text.push_str(&format!(
        "  otlp/reference:\n    protocol: http/protobuf\n    endpoint: {}\n    \
         compression: none\n",
        yaml_str(reference)
    ));
    crate::testkit::config::write(dir, "receiver.yaml", &text)
}

fn stop_cleanly(receiver: Running) -> String {
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    finished.stderr
}

#[test]
fn backend_down_then_up_in_memory_every_poll_arrives_once() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut main = OtlpSink::start();
    let reference = OtlpSink::start();
    let path = config(
        dir.path(),
        &main.grpc_endpoint(),
        "grpc",
        &reference.http_endpoint(),
        None,
    );
    let mut receiver = Running::start(&path, &[]);

    main.wait_for(|r| each_target_has(r, &BTreeMap::new(), 2), WAIT);
    main.stop();
    // Down for several intervals, while polling carries on at its pace: the reference keeps
    // receiving every poll.
    let at_stop = distinct(&stamps(&reference.requests()));
    reference.wait_for(|r| each_target_has(r, &at_stop, 4), WAIT);
    receiver.wait_for_stderr("export failed, retrying with backoff", WAIT);
    main.restart();

    let produced = distinct(&stamps(&reference.requests()));
    main.wait_for(|r| contains_all(&distinct(&stamps(r)), &produced), WAIT);
    receiver.wait_for_stderr("export succeeded again", WAIT);
    let stderr = stop_cleanly(receiver);

    let received = stamps(&main.requests());
    assert_no_duplicates(&received);
    assert_eq!(
        distinct(&received),
        distinct(&stamps(&reference.requests())),
        "every poll produced reached the backend that was down, the final one included"
    );
    assert!(main.errors().is_empty(), "{:?}", main.errors());
    for loss in ["points dropped", "points lost", "dropping the oldest"] {
        assert!(!stderr.contains(loss), "nothing was lost:\n{stderr}");
    }
    eprintln!("in-memory outage test took {:?}", started.elapsed());
}

#[test]
fn backend_down_across_a_stop_and_a_kill_persistent_queue_delivers_every_poll() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let storage = dir.path().join("queue");
    let mut main = OtlpSink::start();
    main.stop();
    let reference = OtlpSink::start();
    let path = config(
        dir.path(),
        &main.http_endpoint(),
        "http/protobuf",
        &reference.http_endpoint(),
        Some(&storage),
    );

    // Run 1: the backend is down from the start; a clean stop keeps the queue on disk.
    let receiver = Running::start(&path, &[]);
    reference.wait_for(|r| each_target_has(r, &BTreeMap::new(), 3), WAIT);
    let stderr = stop_cleanly(receiver);
    assert!(
        stderr.contains("kept in the persistent sending queue for the next start"),
        "{stderr}"
    );
    let after_run_1 = distinct(&stamps(&reference.requests()));

    // Run 2: still down; it finds run 1's batches, queues more, and is killed with SIGKILL.
    let mut receiver = Running::start(&path, &[]);
    receiver.wait_for_stderr("holds batches from a previous run", WAIT);
    reference.wait_for(|r| each_target_has(r, &after_run_1, 3), WAIT);
    receiver.signal("KILL");
    let killed = receiver.wait(WAIT);
    assert_eq!(
        killed.code(),
        None,
        "killed by a signal: {}",
        killed.describe()
    );
    let before_kill = distinct(&stamps(&reference.requests()));
    assert!(
        crate::testkit::otlp_sink::points(&main.requests(), "supervisord.can_connect").is_empty(),
        "the backend was down all along"
    );

    // Run 3: the backend is back; everything queued by runs 1 and 2 arrives.
    main.restart();
    let mut receiver = Running::start(&path, &[]);
    receiver.wait_for_stderr("holds batches from a previous run", WAIT);
    main.wait_for(|r| contains_all(&distinct(&stamps(r)), &before_kill), WAIT);
    let stderr = stop_cleanly(receiver);

    let received = stamps(&main.requests());
    assert_no_duplicates(&received);
    let received = distinct(&received);
    let produced = distinct(&stamps(&reference.requests()));
    assert!(
        contains_all(&received, &produced),
        "every poll that reached the reference reached the backend that was down"
    );
    // A batch already on disk when the kill came, but not yet sent to the reference, is the only
    // thing the backend may have beyond it.
    for target in TARGETS {
        let extra: Vec<&u64> = received
            .get(target)
            .map(|r| r.iter().filter(|t| !produced[target].contains(t)).collect())
            .unwrap_or_default();
        assert!(extra.len() <= 2, "{target}: unexpected polls {extra:?}");
    }
    assert!(main.errors().is_empty(), "{:?}", main.errors());
    assert!(!stderr.contains("points lost"), "{stderr}");
    // One file per exporter under the storage directory.
    assert!(storage.join("otlp%2Fmain").join("queue.redb").exists());
    eprintln!("persistent outage test took {:?}", started.elapsed());
}

/// A persistent queue's directory can only be used by one receiver at a time: the second one
/// refuses to start rather than share it.
#[test]
fn a_second_receiver_on_the_same_storage_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let storage = dir.path().join("queue");
    let main = OtlpSink::start();
    let reference = OtlpSink::start();
    let path = config(
        dir.path(),
        &main.grpc_endpoint(),
        "grpc",
        &reference.http_endpoint(),
        Some(&storage),
    );
    let first = Running::start(&path, &[]);
    reference.wait_for(|r| each_target_has(r, &BTreeMap::new(), 1), WAIT);
    let second = Running::start(&path, &[]).wait(Duration::from_secs(30));
    assert_eq!(second.code(), Some(1), "{}", second.describe());
    assert!(
        second.stderr.contains("in use by another process"),
        "{}",
        second.describe()
    );
    stop_cleanly(first);
}
