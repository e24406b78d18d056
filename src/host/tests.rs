//! Real processes, real `/proc`: every test spawns what it reads and kills it at the end (a
//! [`Spawned`] guard kills the whole process group on drop, failures included).

use super::*;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A spawned process leading its own process group, killed with the group on drop.
struct Spawned {
    child: Child,
    /// supervisord's `start` for it: whole Unix seconds, read just before the spawn.
    start: i64,
}

impl Spawned {
    fn new(program: &str, args: &[&str]) -> Spawned {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
        Spawned { child, start }
    }

    fn sh(script: &str) -> Spawned {
        Spawned::new("sh", &["-c", script])
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn root(&self) -> (u32, i64) {
        (self.pid(), self.start)
    }

    /// Blocks until the process prints a line (its "ready").
    fn wait_line(&mut self) -> String {
        let out = self.child.stdout.as_mut().expect("stdout is piped");
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        line
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // SAFETY: signalling our own child's process group.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn read_one(reader: &mut ProcReader, root: (u32, i64)) -> Result<TreeUsage, ReadError> {
    reader.read_trees(&[root]).pop().unwrap()
}

/// Reads until `done` holds, for at most 20 s (a wait for the processes to get there, not a
/// measurement).
fn read_until(
    reader: &mut ProcReader,
    root: (u32, i64),
    done: impl Fn(&TreeUsage) -> bool,
) -> TreeUsage {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let usage = read_one(reader, root).unwrap();
        if done(&usage) {
            return usage;
        }
        assert!(Instant::now() < deadline, "never got there: {usage:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_shell_and_its_two_sleeps_are_one_tree_of_three() {
    let mut reader = ProcReader::new().unwrap();
    let tree = Spawned::sh("sleep 600 & sleep 600 & wait");
    let usage = read_until(&mut reader, tree.root(), |u| u.processes >= 3);
    assert_eq!(usage.processes, 3, "{usage:?}");
    assert!(usage.threads >= 3, "{usage:?}");
    assert!(
        usage.rss_bytes > 0 && usage.virtual_bytes >= usage.rss_bytes,
        "{usage:?}"
    );
    // sh's 0, 1, 2 and each sleep's: at least 9 (we run as root in CI, so readable).
    assert!(usage.open_fds.is_some_and(|n| n >= 9), "{usage:?}");
    assert!(usage.cpu_user_seconds >= 0.0 && usage.cpu_system_seconds >= 0.0);
}

#[test]
fn several_roots_in_one_call_keep_their_order_and_do_not_mix() {
    let mut reader = ProcReader::new().unwrap();
    let one = Spawned::new("sleep", &["600"]);
    let three = Spawned::sh("sleep 600 & sleep 600 & wait");
    read_until(&mut reader, three.root(), |u| u.processes >= 3);
    let got = reader.read_trees(&[three.root(), one.root(), three.root()]);
    let processes: Vec<u64> = got.iter().map(|r| r.as_ref().unwrap().processes).collect();
    assert_eq!(processes, [3, 1, 3]);
}

#[test]
fn rss_counts_memory_the_process_touched() {
    const MIB: u64 = 1 << 20;
    let mut reader = ProcReader::new().unwrap();
    // Repeating a one-byte bytearray writes every byte: all 64 MiB resident.
    let mut py = Spawned::new(
        "python3",
        &[
            "-c",
            "import time\nb = bytearray(b'x') * (64 << 20)\nprint('ready', flush=True)\ntime.sleep(60)",
        ],
    );
    assert_eq!(py.wait_line().trim(), "ready");
    let usage = read_one(&mut reader, py.root()).unwrap();
    assert_eq!(usage.processes, 1);
    // 64 MiB plus the interpreter (about 10 MiB); 40 MiB of slack for it.
    assert!(usage.rss_bytes >= 64 * MIB, "{usage:?}");
    assert!(usage.rss_bytes < 64 * MIB + 40 * MIB, "{usage:?}");
    assert!(usage.virtual_bytes >= usage.rss_bytes, "{usage:?}");
}

#[test]
fn cpu_time_grows_while_the_program_spins() {
    let mut reader = ProcReader::new().unwrap();
    let busy = Spawned::sh("while :; do :; done");
    let first = read_one(&mut reader, busy.root()).unwrap();
    let first_cpu = first.cpu_user_seconds + first.cpu_system_seconds;
    // Ticks are 10 ms: wait for a few of them.
    let later = read_until(&mut reader, busy.root(), |u| {
        u.cpu_user_seconds + u.cpu_system_seconds >= first_cpu + 0.05
    });
    assert!(later.cpu_user_seconds > first.cpu_user_seconds, "{later:?}");
}

#[test]
fn reaped_children_count_in_the_parents_cpu() {
    let mut reader = ProcReader::new().unwrap();
    // A child that spins for a while, reaped by the shell, which then waits for its line.
    let mut sh = Spawned::sh(
        "python3 -c 'import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass'; \
         echo done; exec sleep 600",
    );
    assert_eq!(sh.wait_line().trim(), "done");
    let usage = read_one(&mut reader, sh.root()).unwrap();
    assert_eq!(usage.processes, 1, "{usage:?}");
    assert!(
        usage.cpu_user_seconds + usage.cpu_system_seconds >= 0.3,
        "{usage:?}"
    );
}

#[test]
fn a_process_that_exited_is_vanished() {
    let mut reader = ProcReader::new().unwrap();
    let mut gone = Spawned::new("true", &[]);
    gone.child.wait().unwrap();
    let err = read_one(&mut reader, gone.root()).unwrap_err();
    assert_eq!(err, ReadError::Vanished { pid: gone.pid() });
    assert!(err.to_string().contains("is gone"));
}

#[test]
fn a_start_time_other_than_supervisords_is_reused() {
    let mut reader = ProcReader::new().unwrap();
    let sleep = Spawned::new("sleep", &["600"]);
    for wrong in [sleep.start - 100, sleep.start - 2, sleep.start + 3, 0] {
        match read_one(&mut reader, (sleep.pid(), wrong)) {
            Err(ReadError::Reused {
                pid,
                expected,
                found,
            }) => {
                assert_eq!((pid, expected), (sleep.pid(), wrong));
                assert!((found - sleep.start as f64).abs() < 2.0, "{found}");
            }
            other => panic!("start {wrong}: {other:?}"),
        }
    }
    // The start as supervisord gives it (whole seconds) is accepted.
    assert!(read_one(&mut reader, sleep.root()).is_ok());
}

#[test]
fn open_fds_counts_the_files_a_process_holds() {
    let mut reader = ProcReader::new().unwrap();
    let holding = |n: usize| {
        let script = format!(
            "import time\nfiles = [open('/dev/null') for _ in range({n})]\n\
             print('ready', flush=True)\ntime.sleep(60)"
        );
        let mut py = Spawned::new("python3", &["-c", &script]);
        assert_eq!(py.wait_line().trim(), "ready");
        py
    };
    let none = holding(0);
    let five = holding(5);
    let got = reader.read_trees(&[none.root(), five.root()]);
    let fds: Vec<u64> = got
        .into_iter()
        .map(|r| r.unwrap().open_fds.unwrap())
        .collect();
    assert_eq!(fds[1], fds[0] + 5, "{fds:?}");
    // And what a plain listing of /proc/PID/fd says.
    let listed = std::fs::read_dir(format!("/proc/{}/fd", five.pid()))
        .unwrap()
        .count() as u64;
    assert_eq!(fds[1], listed);
}

#[test]
fn a_name_with_spaces_and_parentheses_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a) (b c) d");
    std::os::unix::fs::symlink(
        Command::new("sh")
            .args(["-c", "command -v sleep"])
            .output()
            .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string())
            .unwrap(),
        &odd,
    )
    .unwrap();
    let mut reader = ProcReader::new().unwrap();
    let sleep = Spawned::new(odd.to_str().unwrap(), &["600"]);
    let usage = read_until(&mut reader, sleep.root(), |_| true);
    assert_eq!(usage.processes, 1);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleep.pid())).unwrap();
    assert!(stat.contains("(a) (b c) d)"), "{stat}");
}

#[test]
fn odd_stat_contents_are_errors_not_panics() {
    let good = "42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 5000 1000 50 \
                18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
    let sample = parse_stat(42, good.as_bytes()).unwrap();
    assert_eq!(sample.ppid, 1);
    assert_eq!((sample.user_ticks, sample.system_ticks), (7 + 2, 3 + 1));
    assert_eq!(
        (sample.vsize, sample.rss_pages, sample.threads),
        (1000, 50, 1)
    );
    assert_eq!(sample.starttime, 5000);
    let tricky = good.replace("(x)", "(a) S 9 (b)");
    assert_eq!(parse_stat(42, tricky.as_bytes()).unwrap().ppid, 1);
    for odd in [
        "",
        "(",
        ")",
        "()",
        "42",
        "42 (x)",
        "42 (x) ",
        "(x) S 1",
        " (x) S 1",
        "x (y) S 1",
        "42 )x( S 1",
        "42 (x) S",
        "42 (x) S notanumber",
        "42 (x) S 1 2 3",
        "42 (x)S 1 2",
        "\u{0} (\u{0}) \u{0}",
        "42 (é) S -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1",
    ] {
        assert!(parse_stat(42, odd.as_bytes()).is_err(), "{odd:?} parsed");
    }
    assert!(parse_stat(42, &[0xff, 0xfe, b'(', b')']).is_err());
}

#[test]
fn an_empty_list_reads_nothing() {
    let mut reader = ProcReader::new().unwrap();
    assert!(reader.read_trees(&[]).is_empty());
}

#[test]
fn pid_zero_is_vanished() {
    let mut reader = ProcReader::new().unwrap();
    assert_eq!(
        read_one(&mut reader, (0, 0)),
        Err(ReadError::Vanished { pid: 0 })
    );
}

#[test]
fn the_children_walk_finds_what_the_scan_finds() {
    let mut reader = ProcReader::new().unwrap();
    // Three levels: sh, a subshell with two sleeps, and a sleep of its own.
    let tree = Spawned::sh("(sleep 600 & sleep 600 & wait) & sleep 600 & wait");
    let one = Spawned::new("sleep", &["600"]);
    read_until(&mut reader, tree.root(), |u| u.processes >= 5);
    let roots = [tree.root(), one.root()];
    // Until the forks have all exec'd `sleep` (their sizes change then), the two reads may
    // differ; once everything sleeps, nothing moves between them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let by_children = loop {
        let by_children = reader.read_trees_with(&roots, Walk::Children);
        assert!(
            reader.children_files,
            "this kernel has no /proc/PID/task/TID/children: both walks were the scan"
        );
        let by_scan = reader.read_trees_with(&roots, Walk::Scan);
        if by_children == by_scan {
            break by_children;
        }
        assert!(
            Instant::now() < deadline,
            "the walks disagree:\n{by_children:?}\n{by_scan:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(by_children[0].as_ref().unwrap().processes, 5);
    assert_eq!(by_children[1].as_ref().unwrap().processes, 1);
}

#[test]
fn a_thread_s_children_are_in_the_tree() {
    let mut reader = ProcReader::new().unwrap();
    // The children of a thread other than the main one are listed in that thread's `children`
    // only: bash forks from its main thread, so a process whose other thread forks is needed.
    // This test's own process is one: a sleep spawned from a new thread is its child.
    // The thread lives on while the tree is read, so the sleep stays that thread's child.
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let child = Spawned::new("sleep", &["600"]);
        pid_tx.send(child.pid()).unwrap();
        let _ = done_rx.recv();
    });
    let child = pid_rx.recv().unwrap();
    let me = std::process::id();
    // This process's own start, to pass the reuse check.
    let start = match reader.read_stat(me, Keep::No).unwrap() {
        StatRead::Read(s) => {
            (reader.boot_unix_seconds + s.starttime as f64 / reader.ticks_per_second as f64) as i64
        }
        StatRead::Gone => unreachable!(),
    };
    // Other tests' processes come and go in this tree: only look for the sleep.
    reader
        .read_trees_with(&[(me, start)], Walk::Children)
        .pop()
        .unwrap()
        .unwrap();
    assert!(reader.children_files);
    let found = reader.visited.contains(&child);
    done_tx.send(()).unwrap();
    thread.join().unwrap();
    assert!(found, "{child} not in {:?}", reader.visited);
}
