//! A real supervisord with `n` real programs, stopped with its children when dropped.
//!
//! supervisord comes from PATH when present; otherwise supervisor is installed from PyPI into
//! the venv the end-to-end tests share (`target/supervisor-venv`), by the routine they use
//! (`tests/testkit/provision.rs`), so nothing beyond `python3` has to be installed beforehand.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bench::provision::SupervisorTools;
use crate::bench::{NotReady, SupervisordProcess};

/// Groups the programs are spread over, as a large supervisord usually looks.
const GROUPS: [&str; 5] = ["web", "worker", "celery", "nginx", "cron"];

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
    process: SupervisordProcess,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Supervisord {
    /// Starts supervisord with `count` programs and waits until its HTTP server accepts; the
    /// programs' states are the caller's to wait for. A port found free can be taken before
    /// supervisord binds it, so a failed start is retried on a new port.
    pub fn start(tools: &SupervisorTools, count: usize) -> Result<Supervisord> {
        let mut last = String::new();
        for _ in 0..5 {
            match Supervisord::try_start(tools, count)? {
                Ok(s) => return Ok(s),
                Err(failure) => last = failure,
            }
        }
        bail!("supervisord did not start ({}):\n{last}", tools.origin)
    }

    fn try_start(tools: &SupervisorTools, count: usize) -> Result<Result<Supervisord, String>> {
        let dir = tempfile::Builder::new()
            .prefix("svdcost")
            .tempdir_in("/tmp")?;
        let port = free_port()?;
        let conf = dir.path().join("supervisord.conf");
        fs::write(&conf, config_text(dir.path(), port, count))?;
        // Not scrubbed: supervisord here runs no receiver.
        let process = SupervisordProcess::spawn(tools.supervisord(), &conf, dir.path())?;
        let mut s = Supervisord { process, dir, port };
        let ready = s.process.wait_ready(Duration::from_millis(100), || {
            std::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        Ok(match ready {
            Ok(()) => Ok(s),
            Err(NotReady::Exited(status)) => {
                Err(format!("supervisord exited with {status}:\n{}", s.logs()))
            }
            Err(NotReady::TimedOut) => Err(format!("no answer on port {port}:\n{}", s.logs())),
        })
    }

    pub fn pid(&self) -> Result<u32> {
        self.process.pid().context("supervisord already stopped")
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

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(listener.local_addr()?.port())
}
