//! Child processes that never outlive the harness: killed when their guard is dropped (normal
//! end, error or panic of the orchestrator), and killed by the kernel when the orchestrator dies
//! without dropping anything (SIGKILL, abort), through `PR_SET_PDEATHSIG`.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Kills and reaps the child on drop, unless it has already exited.
pub struct ChildGuard {
    child: Child,
    /// For error messages: "fleet 2", "receiver".
    pub name: String,
}

impl ChildGuard {
    pub fn new(child: Child, name: impl Into<String>) -> ChildGuard {
        ChildGuard {
            child,
            name: name.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status when the child has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then up to `grace` for the child to exit on its own; SIGKILL after that. Returns
    /// the exit status (None when it had to be killed) and how long the exit took.
    pub fn terminate(&mut self, grace: Duration) -> (Option<ExitStatus>, Duration) {
        let started = Instant::now();
        if let Some(status) = self.exited() {
            return (Some(status), Duration::ZERO);
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain kill(2) on our own, not yet reaped, child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        while started.elapsed() < grace {
            if let Some(status) = self.exited() {
                return (Some(status), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (None, started.elapsed())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Called first thing in a child role: the kernel sends SIGKILL when the orchestrator dies. The
/// orchestrator passes its pid so a child whose parent died before this call exits at once
/// instead of running orphaned.
pub fn die_with_parent(parent: u32) -> Result<(), String> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and changes nothing else.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if rc != 0 {
        return Err(format!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: getppid cannot fail.
    let actual = unsafe { libc::getppid() };
    if u32::try_from(actual).ok() != Some(parent) {
        return Err(format!(
            "the harness (pid {parent}) is gone; exiting (parent is now {actual})"
        ));
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: a fleet shard holds a listener and a
/// connection per target, the orchestrator pipes and sink connections.
pub fn raise_nofile() -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        ));
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the hard one is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(format!(
                "setrlimit(RLIMIT_NOFILE, {}): {}",
                limit.rlim_max,
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(limit.rlim_cur)
}
