//! Finds supervisord, or installs it: the one provisioning routine of the repository, used by
//! the tests (`tests/testkit/supervisord.rs`), the `supervisord_cost` example and, through the
//! `provision` example, the demo script (`examples/demo/run.sh`).
//!
//! `supervisord` and `supervisorctl` come from PATH when both are there. Otherwise supervisor
//! [`SUPERVISOR_PIN`] is installed from PyPI into `<target dir>/supervisor-venv`, once per
//! machine and target dir: built in a staging dir, marked complete last, then renamed into
//! place, under a cross-process lock (`supervisor-venv.lock`), so the test binaries, the examples
//! and the demo can all ask at once and share one venv.
//!
//! Plain std and no crate of the workspace: the demo compiles this with `rustc` alone.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// The supervisor release the venv installs. Bump on purpose: a venv from another release is
/// refused until it is deleted.
pub const SUPERVISOR_PIN: &str = "4.3.0";

/// How long provisioning may wait for another process that holds the install lock.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// How to invoke supervisord and supervisorctl: a program plus leading arguments, because a
/// renamed venv only works through `bin/python -m` (its scripts' shebangs name the old path).
#[derive(Debug, Clone)]
pub struct SupervisorTools {
    supervisord: Vec<OsString>,
    supervisorctl: Vec<OsString>,
    /// Where the tools came from (`PATH` or `venv <dir>`), for messages.
    pub origin: String,
}

impl SupervisorTools {
    pub fn supervisord(&self) -> Command {
        command_from(&self.supervisord)
    }

    pub fn supervisorctl(&self) -> Command {
        command_from(&self.supervisorctl)
    }

    /// The command line [`Self::supervisord`] runs, for callers that run it themselves.
    pub fn supervisord_argv(&self) -> &[OsString] {
        &self.supervisord
    }

    /// The command line [`Self::supervisorctl`] runs.
    pub fn supervisorctl_argv(&self) -> &[OsString] {
        &self.supervisorctl
    }

    /// `supervisord --version`, e.g. `4.3.0`.
    pub fn try_version(&self) -> Result<String, String> {
        let out = self
            .supervisord()
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run supervisord ({}): {e}", self.origin))?;
        if !out.status.success() {
            return Err(format!(
                "supervisord --version failed ({}): {}",
                self.origin,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// [`Self::try_version`], panicking on failure (for tests).
    pub fn version(&self) -> String {
        self.try_version().unwrap_or_else(|e| panic!("{e}"))
    }
}

fn command_from(argv: &[OsString]) -> Command {
    let (program, args) = argv
        .split_first()
        .unwrap_or_else(|| panic!("empty supervisor command line"));
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// The cargo target dir the running program was built in: its nearest ancestor that cargo
/// marked with `CACHEDIR.TAG` (how the examples and the demo find the venv they share).
pub fn built_target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

/// Where the venv lives under a cargo target dir.
pub fn venv_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("supervisor-venv")
}

/// Finds supervisord on PATH, or in the venv under `target_dir`, installing the venv when it
/// is missing or unfinished. A venv of another release is an error (delete it to reinstall).
pub fn provision(target_dir: &Path) -> Result<SupervisorTools, String> {
    if let (Some(d), Some(c)) = (find_on_path("supervisord"), find_on_path("supervisorctl")) {
        return Ok(SupervisorTools {
            supervisord: vec![d.into_os_string()],
            supervisorctl: vec![c.into_os_string()],
            origin: "PATH".to_string(),
        });
    }
    let venv = venv_dir(target_dir);
    install_pinned_venv(&venv, "supervisor", SUPERVISOR_PIN, venv_is_complete)?;
    let python = venv.join("bin").join("python");
    let tools = SupervisorTools {
        supervisord: vec![
            python.clone().into_os_string(),
            "-m".into(),
            "supervisor.supervisord".into(),
        ],
        supervisorctl: vec![
            python.into_os_string(),
            "-m".into(),
            "supervisor.supervisorctl".into(),
        ],
        origin: format!("venv {}", venv.display()),
    };
    // A venv from an older pin is replaced only by deleting it; say so rather than run an
    // unexpected release silently.
    let version = tools.try_version()?;
    if version != SUPERVISOR_PIN {
        return Err(format!(
            "{} holds supervisor {version}, expected {SUPERVISOR_PIN}: delete it to reinstall",
            venv.display()
        ));
    }
    Ok(tools)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The marker is written last, inside the staging dir, before the rename: a venv without it was
/// never finished and is never used.
fn venv_is_complete(venv: &Path) -> bool {
    venv.join(".complete").is_file() && venv.join("bin").join("python").exists()
}

/// Installs `package==pin` from PyPI into `venv` unless `is_complete` finds it there, under
/// the cross-process lock `<venv>.lock` beside it, checked again once the lock is held: the
/// supervisor venv here and the OpenMetrics parser's (`super::openmetrics`) both go this way.
/// The venv is built in a staging dir, marked complete last (`.complete`, holding `pin`), then
/// renamed into place; whatever stood at `venv` before (unfinished, or of another pin) is
/// replaced.
pub fn install_pinned_venv(
    venv: &Path,
    package: &str,
    pin: &str,
    is_complete: fn(&Path) -> bool,
) -> Result<(), String> {
    if is_complete(venv) {
        return Ok(());
    }
    let parent = venv
        .parent()
        .ok_or_else(|| format!("venv path {} has no parent", venv.display()))?;
    let name = venv
        .file_name()
        .ok_or_else(|| format!("venv path {} has no name", venv.display()))?
        .to_string_lossy();
    let _lock = InstallLock::acquire(&parent.join(format!("{name}.lock")))?;
    if is_complete(venv) {
        return Ok(());
    }
    eprintln!("installing {package}=={pin} into {}", venv.display());
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = parent.join(format!("{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let context = format!("{package} provisioning");
    let step = |cmd: &mut Command, what: &str| run(cmd, &context, what);
    let installed = step(
        Command::new("python3").args(["-m", "venv"]).arg(&staging),
        "python3 -m venv (is python3 with the venv module installed?)",
    )
    .and_then(|()| {
        step(
            Command::new(staging.join("bin").join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("{package}=={pin}"),
            ]),
            &format!("pip install {package}"),
        )
    })
    .and_then(|()| {
        fs::write(staging.join(".complete"), pin)
            .map_err(|e| format!("cannot write the venv marker: {e}"))
    });
    if let Err(e) = installed {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    if venv.exists() {
        fs::remove_dir_all(venv).map_err(|e| format!("cannot remove {}: {e}", venv.display()))?;
    }
    fs::rename(&staging, venv).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            staging.display(),
            venv.display()
        )
    })
}

/// Runs `cmd`, `what` it is, failing with its output; `context` starts every message.
fn run(cmd: &mut Command, context: &str, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{context}: cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{context}: {what} failed with {}:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A cross-process lock: `mkdir` is atomic. The holder writes its pid inside, so a lock left by
/// a killed process is taken over instead of blocking every later run.
pub struct InstallLock {
    dir: PathBuf,
}

impl InstallLock {
    pub fn acquire(dir: &Path) -> Result<InstallLock, String> {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match fs::create_dir(dir) {
                Ok(()) => {
                    let _ = fs::write(dir.join("pid"), std::process::id().to_string());
                    return Ok(InstallLock {
                        dir: dir.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if lock_holder_is_gone(dir) {
                        let _ = fs::remove_dir_all(dir);
                        continue;
                    }
                }
                Err(e) => return Err(format!("cannot create lock {}: {e}", dir.display())),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "waited {LOCK_WAIT:?} for {}; remove it if no install is running",
                    dir.display()
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The pid file is written right after mkdir; give a holder that is between the two a moment.
fn lock_holder_is_gone(dir: &Path) -> bool {
    let read_pid = || {
        fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    };
    let pid = match read_pid() {
        Some(pid) => pid,
        None => {
            thread::sleep(Duration::from_millis(500));
            match read_pid() {
                Some(pid) => pid,
                None => return dir.exists(),
            }
        }
    };
    !Path::new("/proc").join(pid.to_string()).exists()
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
