//! A real supervisord restarted under the receiver is reconnected over TCP and UNIX.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{connected, disconnected, inet_message, serial, unix_nanos_now};
use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::otlp_sink::{self, OtlpSink, Poll};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{parse_status, Options, Program, Supervisord};
use crate::testkit::WAIT;

/// A supervisord started on an existing config (same port, same socket path) after the first
/// one stopped. Dropping it stops it and its programs.
struct Restarted {
    child: Child,
}

impl Restarted {
    fn start(svd: &Supervisord) -> Restarted {
        let out = std::fs::File::create(svd.dir().join("restarted.out"))
            .unwrap_or_else(|e| panic!("cannot create output file: {e}"));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone output file: {e}"));
        let child = svd
            .tools()
            .supervisord()
            .arg("-c")
            .arg(svd.conf_path())
            .arg("-n")
            .current_dir(svd.dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start supervisord again: {e}"));
        Restarted { child }
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        let pid = self.child.id();
        let programs = child_pids(pid);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for program in programs {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(program.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The pids whose parent is `parent`, from /proc.
fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, rest) = stat.rsplit_once(')')?;
            let pid: u32 = head.split_whitespace().next()?.parse().ok()?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Whether `pid` has exited (gone, or a zombie waiting for its parent).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}

/// Stops supervisord as an operator would (SIGTERM: it stops its programs, removes its socket
/// and exits) and waits for it to be gone.
fn stop_daemon(svd: &Supervisord) {
    let pid = svd.pid();
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert!(
        matches!(sent, Ok(s) if s.success()),
        "kill failed: {sent:?}"
    );
    let deadline = Instant::now() + WAIT;
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "supervisord did not stop within {WAIT:?}\n{}",
            svd.logs()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until supervisord answers `supervisorctl status` on its (new) socket.
fn wait_until_answering(svd: &Supervisord) {
    let deadline = Instant::now() + WAIT;
    while parse_status(&svd.ctl(&["status"])).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the restarted supervisord did not answer within {WAIT:?}\n{}",
            std::fs::read_to_string(svd.dir().join("restarted.out")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_restarted_supervisord_is_reconnected_over_tcp_and_unix() {
    let _serial = serial();
    let svd = Supervisord::start(Options::default().programs(vec![Program::running("web")]));
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let names = ["over-tcp", "over-unix"];
    let cfg = config::native(
        &[
            target(names[0], &svd.http_url()),
            target(names[1], &svd.unix_url()),
        ],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);
    for name in names {
        sink.wait_for_poll(name, connected, WAIT);
    }

    stop_daemon(&svd);
    assert!(
        !Path::new(svd.socket_path()).exists(),
        "supervisord removes its socket file when it stops"
    );
    for name in names {
        sink.wait_for_poll(name, disconnected, WAIT);
    }
    receiver.wait_for_stderr(&inet_message(&svd.http_url()), WAIT);

    let _restarted = Restarted::start(&svd);
    wait_until_answering(&svd);
    let up = unix_nanos_now();

    // Within two intervals of supervisord answering again, each target is connected again.
    for name in names {
        let requests = sink.wait_for(
            |r| {
                otlp_sink::polls(r, name)
                    .iter()
                    .filter(|p| p.points.first().is_some_and(|pt| pt.time_unix_nano > up))
                    .count()
                    >= 2
            },
            WAIT,
        );
        let after: Vec<Poll> = otlp_sink::polls(&requests, name)
            .into_iter()
            .filter(|p| p.points.first().is_some_and(|pt| pt.time_unix_nano > up))
            .take(2)
            .collect();
        assert!(
            after.iter().any(connected),
            "{name}: not reconnected within two polls of the restart:\n{}",
            after
                .iter()
                .map(Poll::describe)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
    }
    receiver.wait_for_stderr("supervisord is reachable again", WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}
