//! The real processes of the benchmark: a supervisord on a UNIX socket with a group of
//! long-running programs (and, in push mode, the receiver as its event listener), and in
//! polling mode the receiver run beside it. Each is stopped with its children when dropped, and
//! dies with this process if it is killed without running Drop.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proc_tree::{signal, stop_supervisord};
use crate::rpc::Rpc;

/// The repository's one provisioning routine, shared with the tests and the other examples.
#[allow(dead_code)]
#[path = "../../tests/testkit/provision.rs"]
mod provisioning;

pub use provisioning::SupervisorTools;

/// The group every measured program belongs to.
pub const GROUP: &str = "apps";

/// Variables of this process's environment that would change what the receiver does; neither
/// supervisord (which passes its environment to the listener) nor the receiver gets them.
const SCRUBBED_ENV: [&str; 14] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_RESOURCE_ATTRIBUTES",
    "RUST_LOG",
];

/// Finds supervisord on PATH or in the shared venv, installing the venv when it is missing.
pub fn provision(target_dir: &Path) -> Result<SupervisorTools> {
    provisioning::provision(target_dir).map_err(anyhow::Error::msg)
}

/// `programs` programs `p0`, `p1`... in [`GROUP`]; `listener`: an `[eventlistener:otel]`
/// section, as written.
fn config_text(dir: &Path, socket: &Path, programs: usize, listener: Option<&str>) -> String {
    let mut text = format!(
        "[unix_http_server]\nfile={socket}\nchmod=0700\n\n\
         [supervisord]\nnodaemon=true\nlogfile={dir}/supervisord.log\n\
         pidfile={dir}/supervisord.pid\nchildlogdir={dir}\nloglevel=info\n\n\
         [rpcinterface:supervisor]\n\
         supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
         [supervisorctl]\nserverurl=unix://{socket}\n\n",
        dir = dir.display(),
        socket = socket.display(),
    );
    // startsecs=0: a start is STARTING then RUNNING in the same pass of supervisord's loop,
    // so every change is one short burst of events, over before the next change is made.
    // autorestart=false: a killed program stays EXITED, a state both modes see.
    for name in program_names(programs) {
        text.push_str(&format!(
            "[program:{name}]\ncommand=sleep 86400\nautostart=true\nautorestart=false\n\
             startsecs=0\nstopwaitsecs=2\nstopasgroup=true\nkillasgroup=true\n\
             redirect_stderr=true\n\n"
        ));
    }
    text.push_str(&format!(
        "[group:{GROUP}]\nprograms={}\n\n",
        program_names(programs).join(",")
    ));
    if let Some(section) = listener {
        text.push_str(section);
        text.push_str("\n\n");
    }
    text
}

pub fn program_names(programs: usize) -> Vec<String> {
    (0..programs).map(|i| format!("p{i}")).collect()
}

/// Kills the child with SIGTERM when this process dies without running Drop (Ctrl-C).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn scrubbed(mut cmd: Command) -> Command {
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// A running supervisord. Dropping it stops supervisord and every program it started.
pub struct Supervisord {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Supervisord {
    /// Starts supervisord and waits until it answers on its socket; the programs' states are
    /// the caller's to wait for. `listener` gets the scratch dir, returns the section.
    pub fn start(
        tools: &SupervisorTools,
        programs: usize,
        listener: impl FnOnce(&Path) -> Result<String>,
    ) -> Result<Supervisord> {
        // Short prefix under /tmp: a UNIX socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("svdlat")
            .tempdir_in("/tmp")?;
        let socket = dir.path().join("supervisor.sock");
        let section = listener(dir.path())?;
        let section = (!section.is_empty()).then_some(section);
        let conf = dir.path().join("supervisord.conf");
        fs::write(
            &conf,
            config_text(dir.path(), &socket, programs, section.as_deref()),
        )?;
        let out = fs::File::create(dir.path().join("supervisord.out"))?;
        let err = out.try_clone()?;
        let mut cmd = scrubbed(tools.supervisord());
        cmd.arg("-c")
            .arg(&conf)
            .arg("-n")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().context("cannot spawn supervisord")?;
        let mut s = Supervisord {
            child: Some(child),
            dir,
            socket,
        };
        let rpc = s.rpc();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("supervisord exited with {status}:\n{}", s.logs());
            }
            if rpc.call("supervisor.getState", &[]).is_ok() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("supervisord did not answer within 20 s:\n{}", s.logs());
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn rpc(&self) -> Rpc {
        Rpc::new(&self.socket)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
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

/// `supervisord-receiver run --config FILE` beside supervisord (polling mode), its logs in a
/// file. Dropping it stops it with SIGTERM, as a service manager would.
pub struct Receiver {
    child: Option<Child>,
    log: PathBuf,
}

impl Receiver {
    pub fn start(binary: &Path, config: &Path, log: &Path) -> Result<Receiver> {
        let out = fs::File::create(log)?;
        let err = out.try_clone()?;
        let mut cmd = scrubbed(Command::new(binary));
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Receiver {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Fails with the receiver's log when it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            bail!(
                "the receiver exited with {status}:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), &[], libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
