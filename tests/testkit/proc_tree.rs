//! A process's children and their process groups, read from /proc: what stopping a supervisord
//! with every program it started needs. Plain std, so the examples include it too.

use std::fs;

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
