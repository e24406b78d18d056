//! The real processes of the benchmark: a supervisord on a UNIX socket with a group of
//! long-running programs (and, in push mode, the receiver as its event listener), and in
//! polling mode the receiver run beside it. Each is stopped with its children when dropped, and
//! dies with this process if it is killed without running Drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bench::{scrubbed, NotReady, SupervisordProcess};
use crate::rpc::Rpc;

pub use crate::bench::provision::SupervisorTools;
pub use crate::bench::Receiver;

/// The group every measured program belongs to.
pub const GROUP: &str = "apps";

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

/// A running supervisord. Dropping it stops supervisord and every program it started.
pub struct Supervisord {
    process: SupervisordProcess,
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
        let process = SupervisordProcess::spawn(scrubbed(tools.supervisord()), &conf, dir.path())?;
        let mut s = Supervisord {
            process,
            dir,
            socket,
        };
        let rpc = s.rpc();
        match s.process.wait_ready(Duration::from_millis(100), || {
            rpc.call("supervisor.getState", &[]).is_ok()
        }) {
            Ok(()) => Ok(s),
            Err(NotReady::Exited(status)) => {
                bail!("supervisord exited with {status}:\n{}", s.logs())
            }
            Err(NotReady::TimedOut) => {
                bail!("supervisord did not answer within 20 s:\n{}", s.logs())
            }
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
