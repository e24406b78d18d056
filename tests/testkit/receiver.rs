//! Runs the real `supervisord-receiver` binary as a subprocess and captures its output.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::gate::{self, SharedGuard};

pub const BIN: &str = env!("CARGO_BIN_EXE_supervisord-receiver");

/// How long a `check`/`validate` run or a graceful stop may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Variables from the test's own environment that would change what the binary does: the list
/// the benchmark examples scrub too, kept in one file both include.
#[path = "../../examples/common/scrubbed_env.rs"]
mod scrubbed_env;
use scrubbed_env::SCRUBBED_ENV;

/// A command for the binary with a predictable environment: no inherited OTLP settings, info
/// logs unless the test sets `RUST_LOG` itself.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The result of a finished run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// For assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs to completion (`check`, `validate`); panics when it takes longer than [`RUN_LIMIT`].
pub fn run_once(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let running = Running::spawn(command(args, env));
    running.wait(RUN_LIMIT)
}

/// A long-running `run` invocation.
pub struct Running {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    /// Keeps a test that loads the machine on purpose from starting meanwhile ([`gate`]).
    _shared: SharedGuard,
}

impl Running {
    /// `supervisord-receiver run --config CONFIG` with extra environment.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Running {
        let config = config.to_string_lossy();
        Running::spawn(command(&["run", "--config", &config], env))
    }

    pub fn spawn(mut cmd: Command) -> Running {
        let shared = gate::shared();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(collect(pipe, stdout.clone()));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(collect(pipe, stderr.clone()));
        }
        Running {
            child: Some(child),
            stdout,
            stderr,
            readers,
            _shared: shared,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("receiver already stopped"))
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        snapshot(&self.stderr)
    }

    pub fn stdout_so_far(&self) -> String {
        snapshot(&self.stdout)
    }

    /// Waits for the `n`-th "configuration reloaded" line (a SIGHUP applied).
    pub fn wait_for_reloads(&self, n: usize) {
        let deadline = Instant::now() + super::WAIT;
        loop {
            let log = self.stderr_so_far();
            if log.matches("configuration reloaded").count() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no reload #{n} within {:?}:\n{log}",
                super::WAIT
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr contains `needle`; panics with the output so far on timeout or exit.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr_so_far();
            if text.contains(needle) {
                return text;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "receiver exited ({status}) before logging {needle:?}\n--- stdout\n{}\n--- stderr\n{text}",
                    self.stdout_so_far()
                );
            }
            assert!(
                Instant::now() < deadline,
                "receiver did not log {needle:?} within {timeout:?}\n--- stderr\n{text}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the graceful exit.
    pub fn stop(self) -> Finished {
        self.signal("TERM");
        self.wait(RUN_LIMIT)
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let sent = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status();
            assert!(
                matches!(sent, Ok(s) if s.success()),
                "kill -{name} failed: {sent:?}"
            );
        }
    }

    /// Waits for exit; kills the process and panics with its output when `limit` passes.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("receiver already waited for"));
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    for reader in self.readers.drain(..) {
                        let _ = reader.join();
                    }
                    panic!(
                        "receiver did not exit within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                        snapshot(&self.stdout),
                        snapshot(&self.stderr)
                    );
                }
                Err(e) => panic!("cannot wait for the receiver: {e}"),
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Finished {
            status,
            stdout: snapshot(&self.stdout),
            stderr: snapshot(&self.stderr),
        }
    }
}

impl Drop for Running {
    /// A test that panicked midway must not leave the receiver behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]),
            }
        }
    })
}

fn snapshot(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}
