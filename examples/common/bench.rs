//! What the benchmark examples (`tail_throughput`, `push_latency`, `supervisord_cost`) share:
//! finding the receiver binary and the supervisor venv, running supervisord and the receiver as
//! real processes that die with the example, reading a process's CPU time, and describing the
//! machine a figure comes from.
//!
//! Each example includes this file with `#[path]`, beside `tests/testkit/proc_tree.rs` as its
//! own `proc_tree` module at the crate root.

#![allow(dead_code)]

/// The repository's one provisioning routine, shared with the tests and the demo.
#[path = "../../tests/testkit/provision.rs"]
pub mod provision;
#[path = "scrubbed_env.rs"]
mod scrubbed_env;

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::proc_tree::{signal, stop_supervisord};
use provision::SupervisorTools;
pub use scrubbed_env::SCRUBBED_ENV;

/// How long supervisord may take to answer after it was started.
const START_WAIT: Duration = Duration::from_secs(20);
/// How long a process may take to exit once asked to stop.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The cargo target dir, where the shared supervisor venv lives: the one this example was built
/// in, else `target/` under the manifest.
pub fn target_dir() -> PathBuf {
    provision::built_target_dir()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Finds supervisord on PATH or in the shared venv, installing the venv when it is missing.
pub fn supervisor_tools() -> Result<SupervisorTools> {
    provision::provision(&target_dir()).map_err(anyhow::Error::msg)
}

/// The receiver binary: `explicit`, or `supervisord-receiver` in the profile dir the example
/// was built in (`target/release/examples/NAME` → `target/release/`).
pub fn receiver_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let profile = exe
                .parent()
                .and_then(Path::parent)
                .context("this example is not inside a cargo target dir")?;
            profile.join("supervisord-receiver")
        }
    };
    if !path.is_file() {
        bail!(
            "{} is missing: build the receiver first (`cargo build --release`), or name it \
             with --receiver PATH",
            path.display()
        );
    }
    Ok(path)
}

/// Whether a file under `src/` (or `Cargo.toml`) was modified after `binary` was built; warns
/// when one was.
pub fn warn_if_stale(binary: &Path) -> bool {
    let Some(source) = newer_sources(binary) else {
        return false;
    };
    eprintln!(
        "warning: {} is older than {}: rebuild it with `cargo build --release`",
        binary.display(),
        source.display()
    );
    true
}

/// A file under `src/` (or `Cargo.toml`) modified after `binary` was built, if any.
fn newer_sources(binary: &Path) -> Option<PathBuf> {
    let built = fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pending = vec![root.join("src"), root.join("Cargo.toml")];
    while let Some(path) = pending.pop() {
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                pending.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        } else if meta.modified().is_ok_and(|m: SystemTime| m > built) {
            return Some(path);
        }
    }
    None
}

/// The lines that open a report: the machine, its load before and after the run, supervisord
/// and the receiver binary.
pub fn print_environment(
    load: &[String; 2],
    tools: &SupervisorTools,
    version: &str,
    binary: &Path,
    stale: bool,
) {
    println!("machine:     {}", machine());
    println!(
        "load:        {} before, {} after (1, 5, 15 min)",
        load[0], load[1]
    );
    println!("supervisord: {version} ({})", tools.origin);
    println!(
        "receiver:    {}{}",
        binary.display(),
        if stale { " (OLDER THAN src/)" } else { "" }
    );
}

/// `model name` from /proc/cpuinfo, the CPUs this process may run on, the kernel.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}

/// The first three fields of /proc/loadavg.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A CPU-time clock's reading in nanoseconds; `None` when the clock cannot be read.
pub fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec for the duration of the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// The kernel's CPU-time clock of a whole process (every thread, exited ones included: its
/// utime + stime, in nanoseconds). The clock id is what glibc's `clock_getcpuclockid` returns
/// (`MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`), built here since the libc crate does not
/// declare that function on Linux. Falls back to `/proc/PID/stat`'s ticks.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let pid_t = libc::pid_t::try_from(pid).ok()?;
    let clock: libc::clockid_t = ((!pid_t) << 3) | 2;
    if let Some(ns) = clock_ns(clock) {
        return Some(ns);
    }
    let ticks = stat_ticks(pid).ok()?;
    let hz = clock_ticks_per_second().unwrap_or(100);
    Some(ticks * 1_000_000_000 / hz)
}

/// A process's peak resident memory (`VmHWM` of `/proc/PID/status`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix("VmHWM:")?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ).
pub fn clock_ticks_per_second() -> Result<u64> {
    // SAFETY: sysconf reads a configuration value and has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    match u64::try_from(hz) {
        Ok(hz) if hz > 0 => Ok(hz),
        _ => bail!("sysconf(_SC_CLK_TCK) gave {hz}"),
    }
}

/// A process's own CPU time (utime + stime of `/proc/PID/stat`, children excluded), in clock
/// ticks.
pub fn stat_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so fields are counted from
    // the last `)`. utime and stime are fields 14 and 15, i.e. the 12th and 13th after it.
    let (_, rest) = stat
        .rsplit_once(')')
        .with_context(|| format!("unexpected {path}"))?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no utime/stime in {path}"))
    };
    let utime = next()?;
    let stime = next()?;
    Ok(utime + stime)
}

/// Kills the child with SIGTERM when this process dies without running Drop (Ctrl-C, SIGKILL);
/// a supervisord then stops its programs itself.
pub fn die_with_parent(cmd: &mut Command) {
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

/// `cmd` without [`SCRUBBED_ENV`].
pub fn scrubbed(mut cmd: Command) -> Command {
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Why a supervisord did not become ready.
pub enum NotReady {
    Exited(ExitStatus),
    /// Not within [`START_WAIT`] (20 s).
    TimedOut,
}

/// A supervisord process, `cmd -c CONF -n` run in a scratch dir, its console in
/// `supervisord.out` there. Dropping it stops supervisord and every program it started (see
/// [`stop_supervisord`]); it also dies with this process.
pub struct SupervisordProcess {
    child: Option<Child>,
}

impl SupervisordProcess {
    pub fn spawn(mut cmd: Command, conf: &Path, dir: &Path) -> Result<SupervisordProcess> {
        let out = fs::File::create(dir.join("supervisord.out"))?;
        let err = out.try_clone()?;
        cmd.arg("-c")
            .arg(conf)
            .arg("-n")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().context("cannot spawn supervisord")?;
        Ok(SupervisordProcess { child: Some(child) })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Checks `ready` every `pause` until it holds; fails when supervisord exits first, or
    /// after [`START_WAIT`].
    pub fn wait_ready(
        &mut self,
        pause: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), NotReady> {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(NotReady::Exited(status));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(NotReady::TimedOut);
            }
            thread::sleep(pause);
        }
    }
}

impl Drop for SupervisordProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_supervisord(&mut child, STOP_WAIT);
        }
    }
}

/// `supervisord-receiver run --config FILE`, without [`SCRUBBED_ENV`] but for `env`, its output
/// in a file. Dropping it stops it with SIGTERM, as a service manager would.
pub struct Receiver {
    child: Option<Child>,
    log: PathBuf,
}

impl Receiver {
    pub fn start(
        binary: &Path,
        config: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Receiver> {
        let out = fs::File::create(log)?;
        let err = out.try_clone()?;
        let mut cmd = scrubbed(Command::new(binary));
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
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

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of its log at WARN or ERROR.
    pub fn warnings(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }

    /// Fails with the receiver's log when it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            bail!("the receiver exited with {status}:\n{}", self.log());
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
        let deadline = Instant::now() + STOP_WAIT;
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
