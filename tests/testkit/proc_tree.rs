//! A process's children and their process groups, read from /proc, and stopping a supervisord
//! with every program it started. Plain std and libc, so the examples include it too.

use std::fs;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

pub struct ChildProcess {
    pub pid: u32,
    pub pgrp: u32,
    pub zombie: bool,
}

/// `parent`'s children, read from /proc.
pub fn children(parent: u32) -> Vec<ChildProcess> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let (head, rest) = stat.rsplit_once(')')?;
            let pid: u32 = head.split_whitespace().next()?.parse().ok()?;
            let mut fields = rest.split_whitespace();
            let zombie = fields.next()? == "Z";
            let ppid: u32 = fields.next()?.parse().ok()?;
            let pgrp: u32 = fields.next()?.parse().ok()?;
            (ppid == parent).then_some(ChildProcess { pid, pgrp, zombie })
        })
        .collect()
}

/// The process groups led by `parent`'s children. Only a child that leads its own group counts
/// (supervisord's children call setpgrp), so the caller's own group is never a target.
pub fn child_process_groups(parent: u32) -> Vec<u32> {
    children(parent)
        .into_iter()
        .filter(|c| c.pgrp == c.pid)
        .map(|c| c.pgrp)
        .collect()
}

/// Stops a supervisord and every program it started. supervisord stops programs one group at a
/// time and notices an ended child only on its one-second tick, so each program's process group
/// gets SIGTERM alongside supervisord; once every child has ended (or after `bound`), what is
/// left is killed.
#[allow(dead_code)]
pub fn stop_supervisord(child: &mut Child, bound: Duration) {
    let pid = child.id();
    let mut groups = child_process_groups(pid);
    signal(pid, &groups, libc::SIGTERM);
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if children(pid).iter().all(|c| c.zombie) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    groups.extend(child_process_groups(pid));
    let _ = child.kill();
    let _ = child.wait();
    signal(0, &groups, libc::SIGKILL);
}

/// Sends `sig` to `pid` (when not 0) and to each process group in `groups`. A target that is
/// already gone is expected and ignored.
#[allow(dead_code)]
pub fn signal(pid: u32, groups: &[u32], sig: libc::c_int) {
    let targets = std::iter::once(i64::from(pid))
        .filter(|p| *p != 0)
        .chain(groups.iter().map(|g| -i64::from(*g)));
    for target in targets {
        if let Ok(target) = libc::pid_t::try_from(target) {
            // SAFETY: kill has no memory effects; a stale target only yields ESRCH.
            unsafe {
                libc::kill(target, sig);
            }
        }
    }
}
