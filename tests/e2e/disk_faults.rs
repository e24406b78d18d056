//! End to end: the persistent sending queue under disk faults. The real binary polls three
//! closed ports every second and exports to two real OTLP servers: `main`, with its queue on
//! disk, which the test keeps down so batches pile up in the queue, and `reference`, which stays
//! up and so records every poll produced. `main` comes first in the config: every batch is in
//! its queue before `reference` can have it.
//!
//! Full and read-only filesystems are small tmpfs mounts (the tests need root, as the test
//! command runs; without it they fail saying so), unmounted by a guard even when a test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::testkit::otlp_sink::{self, OtlpSink, ReceivedRequest};
use crate::testkit::receiver::Running;
use crate::testkit::{yaml_str, WAIT};

use super::export_reliability::{contains_all, distinct, each_target_has, refused_targets, stamps};

/// The exporter's directory under the storage directory.
const MAIN_DIR: &str = "otlp%2Fmain";

/// Longer than the first disk retry (10 s) plus a poll interval.
const RETRY_WAIT: Duration = Duration::from_secs(15);

/// Per target, the distinct `can_connect` timestamps received.
fn polls(requests: &[ReceivedRequest]) -> BTreeMap<String, BTreeSet<u64>> {
    distinct(&stamps(requests))
}

fn config(dir: &Path, main: &OtlpSink, reference: &OtlpSink, storage: &Path) -> PathBuf {
    let mut text = refused_targets();
    text.push_str(&format!(
        "exporters:\n  otlp/main:\n    protocol: http/protobuf\n    endpoint: {}\n    \
         timeout: 2s\n    retry_on_failure:\n      initial_interval: 100ms\n      \
         max_interval: 500ms\n      max_elapsed_time: 2m\n    sending_queue:\n      \
         storage: {}\n",
        yaml_str(&main.http_endpoint()),
        yaml_str(&storage.to_string_lossy())
    ));
    text.push_str(&format!(
        "  otlp/reference:\n    protocol: http/protobuf\n    endpoint: {}\n    \
         compression: none\n",
        yaml_str(&reference.http_endpoint())
    ));
    crate::testkit::config::write(dir, "receiver.yaml", &text)
}

/// A tmpfs mounted for one test, unmounted when dropped (a failed test included).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Panics when not root: mounting needs it, and a fault test that cannot make its fault
    /// must not pass.
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "mounting a tmpfs needs root: run the disk-fault tests as root"
        );
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir,
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn remount(&self, mode: &str) {
        run("mount", &["-o", &format!("remount,{mode}")], &self.dir);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a receiver a failed test left behind may still hold a file there.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn run(program: &str, args: &[&str], dir: &Path) {
    let status = Command::new(program)
        .args(args)
        .arg(dir)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        status.success(),
        "{program} {args:?} {}: {status}",
        dir.display()
    );
}

/// Fills the filesystem of `file` until a write fails for lack of space.
fn fill(file: &Path) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    for chunk in [64 << 10, 4 << 10, 512] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
}

/// Kills the receiver, brings `main` back and starts a receiver again: what the first one
/// queued reaches `main` only if it was on disk. Returns that receiver's stderr.
fn kill_and_deliver(
    receiver: Running,
    main: &mut OtlpSink,
    reference: &OtlpSink,
    path: &Path,
) -> String {
    receiver.signal("KILL");
    let killed = receiver.wait(WAIT);
    assert_eq!(killed.code(), None, "{}", killed.describe());
    let before_kill = polls(&reference.requests());
    assert!(
        otlp_sink::points(&main.requests(), "supervisord.can_connect").is_empty(),
        "main was down all along"
    );
    main.restart();
    let mut receiver = Running::start(path, &[]);
    receiver.wait_for_stderr("holds batches from a previous run", WAIT);
    main.wait_for(|r| contains_all(&polls(r), &before_kill), WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    finished.stderr
}

/// Once the queue is back on disk: waits for a poll made after the recovery (so it is on disk
/// as well), then kills and restarts the receiver ([`kill_and_deliver`]) and checks that
/// neither run lost anything.
fn deliver_after_recovery(
    receiver: Running,
    main: &mut OtlpSink,
    reference: &OtlpSink,
    path: &Path,
) {
    let recovered = polls(&reference.requests());
    reference.wait_for(|r| each_target_has(r, &recovered, 1), WAIT);
    let stderr = format!(
        "{}{}",
        receiver.stderr_so_far(),
        kill_and_deliver(receiver, main, reference, path)
    );
    assert_nothing_lost(&stderr);
}

fn assert_nothing_lost(stderr: &str) {
    for loss in ["dropped", "points lost", "could not be read back"] {
        assert!(!stderr.contains(loss), "nothing was lost:\n{stderr}");
    }
}

/// (1) The filesystem fills up: one error naming the file and `No space left on device`, the
/// queue carries on in memory, and goes back to disk once there is room, with what it held.
#[test]
fn a_full_filesystem_keeps_the_queue_in_memory_then_back_on_disk() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mnt = Tmpfs::mount(&dir.path().join("mnt"), "2m");
    let storage = mnt.dir.join("queue");
    let mut main = OtlpSink::start();
    main.stop();
    let reference = OtlpSink::start();
    let path = config(dir.path(), &main, &reference, &storage);
    let mut receiver = Running::start(&path, &[]);
    reference.wait_for(|r| each_target_has(r, &BTreeMap::new(), 2), WAIT);
    assert!(storage.join(MAIN_DIR).join("queue.redb").is_file());

    let filler = mnt.dir.join("filler");
    fill(&filler);
    let stderr = receiver.wait_for_stderr("No space left on device", WAIT);
    assert!(
        stderr.contains("the persistent sending queue cannot be used (")
            && stderr.contains(
                &storage
                    .join(MAIN_DIR)
                    .join("queue.redb")
                    .display()
                    .to_string()
            ),
        "the error names the file and the reason:\n{stderr}"
    );
    // Polls keep coming while the disk is full: in memory now.
    let at_full = polls(&reference.requests());
    reference.wait_for(|r| each_target_has(r, &at_full, 2), WAIT);

    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{}: {e}", filler.display()));
    let stderr = receiver.wait_for_stderr("is usable again", RETRY_WAIT);
    assert_eq!(
        stderr.matches("cannot be used (").count(),
        1,
        "one error per episode:\n{stderr}"
    );
    assert!(
        !stderr.contains(": 0 batches moved from memory"),
        "{stderr}"
    );
    deliver_after_recovery(receiver, &mut main, &reference, &path);
    eprintln!("full filesystem test took {:?}", started.elapsed());
}

/// (2) Read-only at start, with batches left by a previous run: the receiver starts, warns
/// naming the file and the reason, runs in memory; once writable, the queue is on disk again,
/// the previous run's batches first.
#[test]
fn a_read_only_filesystem_at_start_runs_in_memory_until_writable() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mnt = Tmpfs::mount(&dir.path().join("mnt"), "4m");
    let storage = mnt.dir.join("queue");
    let mut main = OtlpSink::start();
    main.stop();
    let reference = OtlpSink::start();
    let path = config(dir.path(), &main, &reference, &storage);

    // A previous run leaves batches on disk.
    let receiver = Running::start(&path, &[]);
    reference.wait_for(|r| each_target_has(r, &BTreeMap::new(), 2), WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    let after_run_1 = polls(&reference.requests());

    mnt.remount("ro");
    let mut receiver = Running::start(&path, &[]);
    let stderr = receiver.wait_for_stderr("cannot open the persistent sending queue", WAIT);
    assert!(
        stderr.contains("Read-only file system")
            && stderr.contains(&storage.join(MAIN_DIR).display().to_string()),
        "the error names the file and the reason:\n{stderr}"
    );
    reference.wait_for(|r| each_target_has(r, &after_run_1, 2), WAIT);

    mnt.remount("rw");
    let stderr = receiver.wait_for_stderr("is usable again", RETRY_WAIT);
    assert!(
        stderr.contains("from a previous run found there, sent first"),
        "{stderr}"
    );
    // One error per queue (metrics, logs) and episode.
    let file = storage.join(MAIN_DIR).join("queue.redb");
    assert_eq!(
        stderr
            .matches(&format!("{}: Read-only file system", file.display()))
            .count(),
        1,
        "{stderr}"
    );
    deliver_after_recovery(receiver, &mut main, &reference, &path);
    eprintln!("read-only filesystem test took {:?}", started.elapsed());
}

/// (3) A queue file of garbage at start: moved aside as `queue.redb.corrupt-<time>` with a
/// warning, and a fresh store is used.
#[test]
fn a_corrupt_queue_file_is_moved_aside_and_a_fresh_one_used() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let storage = dir.path().join("queue");
    let queue_dir = storage.join(MAIN_DIR);
    std::fs::create_dir_all(&queue_dir).unwrap_or_else(|e| panic!("{e}"));
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(queue_dir.join("queue.redb"), &garbage).unwrap_or_else(|e| panic!("{e}"));
    let main = OtlpSink::start();
    let reference = OtlpSink::start();
    let path = config(dir.path(), &main, &reference, &storage);

    let mut receiver = Running::start(&path, &[]);
    let stderr = receiver.wait_for_stderr("is corrupt", WAIT);
    assert!(
        stderr.contains(" WARN ") && stderr.contains(&queue_dir.display().to_string()),
        "{stderr}"
    );
    main.wait_for(|r| each_target_has(r, &BTreeMap::new(), 2), WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());

    let aside: Vec<PathBuf> = std::fs::read_dir(&queue_dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("queue.redb.corrupt-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap_or_else(|e| panic!("{e}")),
        garbage,
        "kept as it was"
    );
    assert!(queue_dir.join("queue.redb").is_file(), "a fresh store");
    assert!(
        !finished
            .stderr
            .contains("cannot open the persistent sending queue"),
        "on disk, not in memory:\n{}",
        finished.stderr
    );
}

/// (4) The storage directory removed while running: logged with the path and the reason,
/// recreated at the next batch with everything the queue held.
#[test]
fn a_storage_directory_removed_while_running_is_recreated() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let storage = dir.path().join("queue");
    let mut main = OtlpSink::start();
    main.stop();
    let reference = OtlpSink::start();
    let path = config(dir.path(), &main, &reference, &storage);
    let mut receiver = Running::start(&path, &[]);
    reference.wait_for(|r| each_target_has(r, &BTreeMap::new(), 2), WAIT);

    std::fs::remove_dir_all(&storage).unwrap_or_else(|e| panic!("{e}"));
    let stderr = receiver.wait_for_stderr("is usable again", WAIT);
    let file = storage.join(MAIN_DIR).join("queue.redb");
    assert!(
        stderr.contains(&format!(
            "{}: No such file or directory (os error 2): the queue file or its directory was \
             removed",
            file.display()
        )),
        "{stderr}"
    );
    assert!(file.is_file(), "recreated");
    deliver_after_recovery(receiver, &mut main, &reference, &path);
    eprintln!("removed directory test took {:?}", started.elapsed());
}
