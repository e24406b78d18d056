//! A real supervisord with `n` real programs, stopped with its children when dropped.
//!
//! supervisord comes from PATH when present; otherwise supervisor is installed from PyPI into
//! the venv the end-to-end tests share (`target/supervisor-venv`), by the routine they use
//! (`tests/testkit/provision.rs`), so nothing beyond `python3` has to be installed beforehand.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proc_tree::stop_supervisord;

/// Groups the programs are spread over, as a large supervisord usually looks.
const GROUPS: [&str; 5] = ["web", "worker", "celery", "nginx", "cron"];

/// The repository's one provisioning routine, shared with the tests and the demo.
#[allow(dead_code)]
#[path = "../../tests/testkit/provision.rs"]
mod provisioning;

/// How to invoke supervisord, as [`provision`] found or installed it.
pub struct Tools {
    inner: provisioning::SupervisorTools,
    pub origin: String,
}

impl Tools {
    fn command(&self) -> Result<Command> {
        Ok(self.inner.supervisord())
    }

    /// `supervisord --version`, e.g. `4.3.0`.
    pub fn version(&self) -> Result<String> {
        self.inner.try_version().map_err(anyhow::Error::msg)
    }
}

/// Finds supervisord on PATH or in the shared venv, installing the venv when it is missing.
pub fn provision(target_dir: &Path) -> Result<Tools> {
    let inner = provisioning::provision(target_dir).map_err(anyhow::Error::msg)?;
    Ok(Tools {
        origin: inner.origin.clone(),
        inner,
    })
}

/// The state each program settles in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Running,
    Stopped,
    Exited,
}

/// Mostly running programs, one in ten stopped and one in ten exited, spread over
/// [`GROUPS`]: `(group, name, expected state)`.
pub fn programs(count: usize) -> Vec<(&'static str, String, Expected)> {
    (0..count)
        .map(|i| {
            let group = GROUPS[i % GROUPS.len()];
            let expected = match i % 10 {
                1 => Expected::Stopped,
                2 => Expected::Exited,
                _ => Expected::Running,
            };
            (group, format!("{group}_{i:04}"), expected)
        })
        .collect()
}

fn config_text(dir: &Path, port: u16, count: usize) -> String {
    let mut text = format!(
        "[inet_http_server]\nport=127.0.0.1:{port}\n\n\
         [supervisord]\nnodaemon=true\nlogfile={dir}/supervisord.log\n\
         pidfile={dir}/supervisord.pid\nchildlogdir={dir}\nloglevel=info\n\n\
         [rpcinterface:supervisor]\n\
         supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n",
        dir = dir.display()
    );
    let programs = programs(count);
    for (_, name, expected) in &programs {
        let (command, autostart, startsecs) = match expected {
            Expected::Running => ("sleep 100000", true, 1),
            Expected::Stopped => ("sleep 100000", false, 1),
            Expected::Exited => ("true", true, 0),
        };
        text.push_str(&format!(
            "[program:{name}]\ncommand={command}\nautostart={autostart}\nautorestart=false\n\
             startsecs={startsecs}\nstopwaitsecs=2\nstopasgroup=true\nkillasgroup=true\n\
             redirect_stderr=true\n\n"
        ));
    }
    for group in GROUPS {
        let members: Vec<&str> = programs
            .iter()
            .filter(|(g, _, _)| *g == group)
            .map(|(_, name, _)| name.as_str())
            .collect();
        if !members.is_empty() {
            text.push_str(&format!(
                "[group:{group}]\nprograms={}\n\n",
                members.join(",")
            ));
        }
    }
    text
}

/// A running supervisord. Dropping it stops supervisord and every program it started.
pub struct Supervisord {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Supervisord {
    /// Starts supervisord with `count` programs and waits until its HTTP server accepts; the
    /// programs' states are the caller's to wait for. A port found free can be taken before
    /// supervisord binds it, so a failed start is retried on a new port.
    pub fn start(tools: &Tools, count: usize) -> Result<Supervisord> {
        let mut last = String::new();
        for _ in 0..5 {
            match Supervisord::try_start(tools, count)? {
                Ok(s) => return Ok(s),
                Err(failure) => last = failure,
            }
        }
        bail!("supervisord did not start ({}):\n{last}", tools.origin)
    }

    fn try_start(tools: &Tools, count: usize) -> Result<Result<Supervisord, String>> {
        let dir = tempfile::Builder::new()
            .prefix("svdcost")
            .tempdir_in("/tmp")?;
        let port = free_port()?;
        let conf = dir.path().join("supervisord.conf");
        fs::write(&conf, config_text(dir.path(), port, count))?;
        let out = fs::File::create(dir.path().join("supervisord.out"))?;
        let err = out.try_clone()?;
        let mut cmd = tools.command()?;
        cmd.arg("-c")
            .arg(&conf)
            .arg("-n")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. It makes the
        // kernel send SIGTERM to supervisord if this process dies without running Drop (Ctrl-C,
        // SIGKILL); supervisord then stops its programs itself.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("cannot spawn supervisord")?;
        let mut s = Supervisord {
            child: Some(child),
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Ok(Err(format!(
                    "supervisord exited with {status}:\n{}",
                    s.logs()
                )));
            }
            if std::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(Ok(s));
            }
            if Instant::now() > deadline {
                return Ok(Err(format!("no answer on port {port}:\n{}", s.logs())));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("supervisord already stopped")
    }

    /// supervisord's log and console output, for error messages.
    pub fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- supervisord.log\n{}--- console\n{}",
            read("supervisord.log"),
            read("supervisord.out")
        )
    }
}

impl Drop for Supervisord {
    /// supervisord and every program it started: see [`stop_supervisord`].
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_supervisord(&mut child, Duration::from_secs(10));
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(listener.local_addr()?.port())
}
