//! What a supervisord program costs on this host, read from Linux `/proc`: its process (the pid
//! supervisord reports) and every descendant of it.
//!
//! A leaf: it names nothing else of the crate. The scrape layer calls [`ProcReader::read_trees`]
//! once per poll of a target that runs on this host, with the pids and start times the poll
//! returned.
//!
//! # How a read goes
//!
//! Each root's tree is walked down from the root: each member's `/proc/PID/stat` (parsed by
//! the `procfs` crate's `Stat`, from a buffer this reader keeps between calls) for its numbers
//! and parent, its `/proc/PID/fd` for the descriptors, and `/proc/PID/task/TID/children` of
//! each of its threads (one file when `stat` says one thread) for the next members. Nothing
//! else on the host is read.
//!
//! The kernel documents `children` as reliable only when the tasks are frozen; they are not
//! here. A child exiting, or re-parented, while its parent's file is read can be listed stale
//! or missed. A listed pid whose `stat` does not name that parent as its `ppid` (exited and
//! reused, or re-parented since) is skipped; a missed child is accepted: it is absent from that
//! one read, as a process forked just after it would be.
//!
//! **Fallback.** `children` needs `CONFIG_PROC_CHILDREN`, which every mainstream distribution
//! kernel enables. When the root's main thread's `children` does not exist (ENOENT while its
//! `task/PID` directory does), the kernel lacks it: that call and every later one of this
//! reader go back to one pass over every process's `stat` in `/proc` for the parent→children
//! map, each tree then walked in that snapshot. A tree whose `children` file is there but
//! unreadable (other than by its process exiting) goes through that pass too, for that call.
//!
//! # Cost
//!
//! About 10 µs of CPU per tree member (its `stat`, `children` and fd count;
//! `examples/proc_cost.rs`, figures in `docs/performance.md`), whatever the host runs: one
//! three-process program, 30 µs; 100 of them, 3.1 ms. The fallback's pass costs about 6 µs per
//! process on the host whatever the number of roots (2.27 ms for 370 processes), plus about
//! 2 µs per member for its fd count: so the walk costs more than the fallback only when the
//! trees hold more than about half the host's processes, as in that benchmark's 100 programs.
//! The parse is `procfs`'s; a hand-written one of the nine fields kept measured 1.80 ms against
//! 2.20 ms for the pass (18% less, about 1 µs per process read). Kept: the kernel's formatting
//! of `stat` is most of the cost, and the crate's parser is a maintained answer to the classic
//! trap (a name holding spaces and parentheses). Our own plain `read`s into one buffer, rather
//! than `procfs`'s `Process::stat()`, cost 21% less (2.20 against 2.80 ms for the pass).
//!
//! # Rules the caller relies on
//!
//! - **Same pid namespace.** The pids are supervisord's; they mean the same processes here only
//!   when the receiver sees the host's (or supervisord's container's) pid namespace.
//! - **Pid reuse.** A root whose start time in `/proc` is not within 1 s of supervisord's `start`
//!   (allowing for supervisord's whole seconds: the true start lies in `[start, start + 1)`, so
//!   anything in `[start - 1, start + 2)` is accepted) is [`ReadError::Reused`]: never another
//!   process's numbers.
//! - **Permissions.** `/proc/PID/stat` is readable by anyone unless `/proc` is mounted with
//!   `hidepid=`; `/proc/PID/fd` needs the programs' user or root (ptrace access). A tree with
//!   an unreadable `fd` directory still has its CPU and memory, with `open_fds: None`. With
//!   `hidepid=2` other users' processes are invisible: a root that is hidden but alive (`kill(pid,
//!   0)` does not say ESRCH) is [`ReadError::Denied`], not [`ReadError::Vanished`].
//! - **CPU is not strictly monotonic.** The CPU of a tree is its live members' times plus the
//!   times of the children each has reaped (`cutime`, `cstime`). A member that exits and is
//!   reaped by a member moves its time into that member's `cutime`; one that is orphaned (its
//!   parent in the tree exited first) is reparented outside the tree and takes its time with it.
//!   The sum can therefore drop when a tree shrinks; a restart (a new `start`) resets it.

mod kept;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use procfs::process::{Process, Stat};
use procfs::FromRead;

use kept::{KeptFiles, Kind};

#[cfg(test)]
mod tests;

/// What one program's process tree uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TreeUsage {
    /// User CPU seconds: `utime` of every live process of the tree plus the `cutime` (children
    /// it has reaped) of each.
    pub cpu_user_seconds: f64,
    /// System CPU seconds: `stime` plus `cstime`, likewise.
    pub cpu_system_seconds: f64,
    /// The sum of resident set sizes over the tree. Pages shared between members (a forked
    /// worker's copy-on-write pages, shared libraries, shared memory) count once per process
    /// that maps them, so this overstates what the tree takes from the host's memory, as `ps`
    /// summed would.
    pub rss_bytes: u64,
    /// The sum of virtual sizes (VSZ) over the tree.
    pub virtual_bytes: u64,
    /// The sum of threads over the tree.
    pub threads: u64,
    /// The sum of open file descriptors (`/proc/PID/fd` entries) over the tree; `None` when any
    /// member's `fd` directory is unreadable (another user's process, without root).
    pub open_fds: Option<u64>,
    /// Members of the tree, the root included.
    pub processes: u64,
}

/// Why a tree could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// The root pid is not running any more.
    #[error("process {pid} is gone")]
    Vanished { pid: u32 },
    /// The pid now belongs to a process started at another time than supervisord says.
    #[error(
        "pid {pid} was reused: the process there started at Unix time {found:.2}, supervisord's \
         started at {expected}"
    )]
    Reused {
        pid: u32,
        /// supervisord's `start`, whole Unix seconds.
        expected: i64,
        /// The start of the process now at that pid, Unix seconds.
        found: f64,
    },
    /// The process exists but this receiver may not read it.
    #[error("permission denied reading {}: {needed}", path.display())]
    Denied { path: PathBuf, needed: &'static str },
    /// `/proc` could not be read, or held what it never should.
    #[error("cannot read {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
}

/// What [`ReadError::Denied`] says is needed.
const NEEDED: &str =
    "run as the programs' user or root; with hidepid=2 on /proc, a member of its gid= group";

/// Reads process trees from `/proc`. Keep one and reuse it: its buffers are kept between calls.
#[derive(Debug)]
pub struct ProcReader {
    /// Unix seconds at boot, refreshed at each [`read_trees`](Self::read_trees) so a stepped
    /// wall clock is followed.
    boot_unix_seconds: f64,
    /// `USER_HZ`, the unit of `/proc/PID/stat`'s times.
    ticks_per_second: u64,
    page_size: u64,
    /// The contents of one `/proc/PID/stat`.
    buf: Vec<u8>,
    /// The path being read (`/proc/PID/stat`).
    path: String,
    /// The last pass's processes, sorted by pid.
    procs: Vec<Sample>,
    /// (parent, child) of every process of the last pass, sorted.
    edges: Vec<(u32, u32)>,
    /// Pids whose `stat` failed in the last pass other than by vanishing, with the error.
    failed: Vec<(u32, ReadError)>,
    /// Walk state, kept for its allocation: (member to visit, the parent that listed it).
    stack: Vec<(u32, u32)>,
    /// The `children` walk: members already counted in the tree being walked.
    visited: HashSet<u32>,
    /// Whether this kernel has `/proc/PID/task/TID/children`; false once a root's was missing.
    children_files: bool,
    /// Per process of `procs`: already in the tree being walked.
    seen: Vec<bool>,
    /// Indexes of `seen` set by the walk, to clear after it.
    touched: Vec<usize>,
    /// The walk's `stat` and `children` files, kept open from one call to the next.
    kept: KeptFiles,
}

/// The numbers of one process that a tree needs, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    pid: u32,
    ppid: u32,
    /// `utime + cutime`, clock ticks.
    user_ticks: u64,
    /// `stime + cstime`, clock ticks.
    system_ticks: u64,
    rss_pages: u64,
    vsize: u64,
    threads: u64,
    /// Clock ticks after boot.
    starttime: u64,
}

/// Which way [`ProcReader::read_trees_with`] finds the members of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Down from the root through `/proc/PID/task/TID/children`, falling back to `Scan` when
    /// the kernel lacks those files.
    Children,
    /// One scan of every process in `/proc` for the parent→children map.
    Scan,
}

/// This tree is to be read through the scan instead.
struct FallBack;

/// Why a `children` file gave no list.
enum Children {
    /// Not there: the process or thread exited, or the kernel lacks the files.
    Missing,
    /// There but unreadable.
    Unreadable,
}

/// A tree's sums as its members are added.
struct Totals {
    usage: TreeUsage,
    user_ticks: u64,
    system_ticks: u64,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            usage: TreeUsage {
                open_fds: Some(0),
                ..TreeUsage::default()
            },
            user_ticks: 0,
            system_ticks: 0,
        }
    }

    fn add(&mut self, sample: &Sample, fds: Option<u64>, page_size: u64) {
        let usage = &mut self.usage;
        usage.open_fds = match (usage.open_fds, fds) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.user_ticks = self.user_ticks.saturating_add(sample.user_ticks);
        self.system_ticks = self.system_ticks.saturating_add(sample.system_ticks);
        usage.rss_bytes = usage
            .rss_bytes
            .saturating_add(sample.rss_pages.saturating_mul(page_size));
        usage.virtual_bytes = usage.virtual_bytes.saturating_add(sample.vsize);
        usage.threads = usage.threads.saturating_add(sample.threads);
        usage.processes += 1;
    }

    fn usage(mut self, ticks_per_second: u64) -> TreeUsage {
        let hz = ticks_per_second as f64;
        self.usage.cpu_user_seconds = self.user_ticks as f64 / hz;
        self.usage.cpu_system_seconds = self.system_ticks as f64 / hz;
        self.usage
    }
}

/// Whether a `stat` read keeps its file open for the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Yes,
    No,
}

/// How reading one `stat` went.
enum StatRead {
    Read(Sample),
    Gone,
}

impl ProcReader {
    /// A reader; fails when `/proc` is not there (not Linux, or not mounted).
    pub fn new() -> Result<ProcReader, ReadError> {
        let mut reader = ProcReader {
            boot_unix_seconds: boot_unix_seconds(),
            ticks_per_second: procfs::ticks_per_second().max(1),
            page_size: procfs::page_size(),
            buf: Vec::with_capacity(1024),
            path: String::with_capacity(32),
            procs: Vec::new(),
            edges: Vec::new(),
            failed: Vec::new(),
            stack: Vec::new(),
            visited: HashSet::new(),
            children_files: true,
            seen: Vec::new(),
            touched: Vec::new(),
            kept: KeptFiles::default(),
        };
        // Our own stat: proves /proc is there and parses as expected.
        let me = std::process::id();
        match reader.read_stat(me, Keep::No)? {
            StatRead::Read(_) => Ok(reader),
            StatRead::Gone => Err(ReadError::Io {
                path: PathBuf::from(format!("/proc/{me}/stat")),
                reason: "this process is not in /proc: is /proc mounted?".to_string(),
            }),
        }
    }

    /// Each root's tree, in the order of `roots`. `start_unix_seconds` is supervisord's `start`
    /// for that process (whole seconds); a root whose /proc start time differs from it by more
    /// than 1 s (allowing for the rounding: see the module doc) is [`ReadError::Reused`], never
    /// another program's numbers.
    ///
    /// Members are found by walking down from the root through `/proc/PID/task/TID/children`;
    /// when the kernel lacks those files (no `CONFIG_PROC_CHILDREN`: the root's is not there),
    /// one scan of every process in /proc builds the parent→children map instead, for this call
    /// and every later one (see the module doc).
    ///
    /// A member that exits during the walk is skipped; the root gone is
    /// [`ReadError::Vanished`]. When `/proc` itself cannot be listed (the scan), every root
    /// still to read gets that error.
    pub fn read_trees(&mut self, roots: &[(u32, i64)]) -> Vec<Result<TreeUsage, ReadError>> {
        let walk = if self.children_files {
            Walk::Children
        } else {
            Walk::Scan
        };
        self.read_trees_with(roots, walk)
    }

    /// [`read_trees`](Self::read_trees) as on a kernel without `children` files: one scan of
    /// every process in /proc, then each tree in that snapshot. For `examples/proc_cost.rs`,
    /// which compares the two; not meant for use otherwise.
    #[doc(hidden)]
    pub fn read_trees_by_scan(
        &mut self,
        roots: &[(u32, i64)],
    ) -> Vec<Result<TreeUsage, ReadError>> {
        self.read_trees_with(roots, Walk::Scan)
    }

    /// Both walks, so that tests can compare them.
    fn read_trees_with(
        &mut self,
        roots: &[(u32, i64)],
        walk: Walk,
    ) -> Vec<Result<TreeUsage, ReadError>> {
        if roots.is_empty() {
            self.kept.end_round();
            return Vec::new();
        }
        self.boot_unix_seconds = boot_unix_seconds();
        // `Some` once this call has scanned: its outcome.
        let mut scanned: Option<Result<(), ReadError>> = None;
        let mut out = Vec::with_capacity(roots.len());
        for &(pid, start) in roots {
            if walk == Walk::Children && self.children_files {
                // `Err(FallBack)`: this tree could not be walked that way; through the scan.
                if let Ok(tree) = self.walk_children(pid, start) {
                    out.push(tree);
                    continue;
                }
            }
            let scan = scanned.get_or_insert_with(|| self.scan());
            match scan {
                Ok(()) => out.push(self.tree(pid, start)),
                Err(e) => out.push(Err(e.clone())),
            }
        }
        self.kept.end_round();
        out
    }

    /// One root's tree, walked down through `/proc/PID/task/TID/children`, reading each
    /// member's `stat` and `fd` as it goes. `Err(FallBack)` when this tree must go through the
    /// scan instead: the kernel has no `children` files (then remembered), or one could not be
    /// read for another reason than its process being gone.
    fn walk_children(
        &mut self,
        pid: u32,
        start: i64,
    ) -> Result<Result<TreeUsage, ReadError>, FallBack> {
        let mut totals = Totals::new();
        self.stack.clear();
        self.visited.clear();
        // (member, the parent whose `children` listed it); the root has none to check.
        self.stack.push((pid, 0));
        while let Some((member, parent)) = self.stack.pop() {
            let is_root = member == pid && parent == 0;
            let sample = match self.read_stat(member, Keep::Yes) {
                Ok(StatRead::Read(sample)) => sample,
                Ok(StatRead::Gone) if is_root => return Ok(Err(hidden_or_vanished(pid))),
                Err(e) if is_root => return Ok(Err(e)),
                // Exited since its parent listed it, or unreadable (as in the scan, where such
                // a process is not in the snapshot): skipped, with what is below it.
                Ok(StatRead::Gone) | Err(_) => continue,
            };
            if is_root {
                if let Err(e) = self.check_start(&sample, start) {
                    return Ok(Err(e));
                }
            } else if sample.ppid != parent {
                // `children` is read without freezing the tasks: a pid it listed may have
                // exited and been reused, or been re-parented, since.
                continue;
            }
            // With pids reused mid-walk, a cycle.
            if !self.visited.insert(member) {
                continue;
            }
            let fds = match fd_count(member) {
                FdCount::Count(n) => Some(n),
                FdCount::Unreadable => None,
                FdCount::Gone if is_root => return Ok(Err(ReadError::Vanished { pid })),
                FdCount::Gone => continue,
            };
            totals.add(&sample, fds, self.page_size);
            match self.push_children(member, sample.threads) {
                Ok(()) => {}
                Err(Children::Missing) if is_root => {
                    // The main thread's directory there but not its `children`: the kernel
                    // lacks them. Otherwise the root exited.
                    if std::fs::metadata(format!("/proc/{pid}/task/{pid}")).is_ok() {
                        self.children_files = false;
                        return Err(FallBack);
                    }
                    return Ok(Err(ReadError::Vanished { pid }));
                }
                // Exited after its stat was read: its children were re-parented away.
                Err(Children::Missing) => {}
                Err(Children::Unreadable) => return Err(FallBack),
            }
        }
        Ok(Ok(totals.usage(self.ticks_per_second)))
    }

    /// Pushes on the walk's stack the children of every thread of `member`, each with `member`
    /// as the parent to check. `threads` is the thread count from its `stat`: with one, only
    /// the main thread's file is read, without listing `task/`.
    fn push_children(&mut self, member: u32, threads: u64) -> Result<(), Children> {
        if threads <= 1 {
            return self.push_thread_children(member, member);
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{member}/task")) else {
            return Err(Children::Missing);
        };
        let mut any = false;
        for entry in tasks.flatten() {
            let name = entry.file_name();
            let Some(tid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            match self.push_thread_children(member, tid) {
                Ok(()) => any = true,
                // That thread exited since the listing.
                Err(Children::Missing) => {}
                Err(Children::Unreadable) => return Err(Children::Unreadable),
            }
        }
        if any {
            Ok(())
        } else {
            Err(Children::Missing)
        }
    }

    /// Pushes the pids listed in `/proc/MEMBER/task/TID/children`, read into the kept buffer.
    fn push_thread_children(&mut self, member: u32, tid: u32) -> Result<(), Children> {
        self.path.clear();
        let _ = write!(self.path, "/proc/{member}/task/{tid}/children");
        match self
            .kept
            .read(member, Kind::Children { tid }, &self.path, &mut self.buf)
        {
            Ok(_) => {}
            Err(e) if gone(&e) => return Err(Children::Missing),
            Err(_) => return Err(Children::Unreadable),
        }
        // Space-separated pids; anything else is skipped, never a panic.
        for word in self.buf.split(|b| b.is_ascii_whitespace()) {
            let Some(child) = std::str::from_utf8(word)
                .ok()
                .and_then(|w| w.parse::<u32>().ok())
            else {
                continue;
            };
            if child != 0 {
                self.stack.push((child, member));
            }
        }
        Ok(())
    }

    /// [`ReadError::Reused`] when the root's start time is not supervisord's `start`.
    fn check_start(&self, root: &Sample, start: i64) -> Result<(), ReadError> {
        let found = self.boot_unix_seconds + root.starttime as f64 / self.ticks_per_second as f64;
        let expected = start as f64;
        if found < expected - 1.0 || found >= expected + 2.0 {
            return Err(ReadError::Reused {
                pid: root.pid,
                expected: start,
                found,
            });
        }
        Ok(())
    }

    /// The pass over `/proc`: every process's sample and parent.
    fn scan(&mut self) -> Result<(), ReadError> {
        self.procs.clear();
        self.edges.clear();
        self.failed.clear();
        let dir = std::fs::read_dir("/proc").map_err(|e| ReadError::Io {
            path: PathBuf::from("/proc"),
            reason: e.to_string(),
        })?;
        for entry in dir {
            let Ok(entry) = entry else {
                continue;
            };
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            match self.read_stat(pid, Keep::No) {
                Ok(StatRead::Read(sample)) => {
                    self.procs.push(sample);
                    self.edges.push((sample.ppid, sample.pid));
                }
                Ok(StatRead::Gone) => {}
                Err(e) => self.failed.push((pid, e)),
            }
        }
        self.procs.sort_unstable_by_key(|s| s.pid);
        self.seen.clear();
        self.seen.resize(self.procs.len(), false);
        self.touched.clear();
        self.edges.sort_unstable();
        Ok(())
    }

    /// One root's tree in the last pass's snapshot.
    fn tree(&mut self, pid: u32, start: i64) -> Result<TreeUsage, ReadError> {
        let root = match self.sample(pid) {
            Some(s) => s,
            None => {
                if let Some((_, e)) = self.failed.iter().find(|(p, _)| *p == pid) {
                    return Err(e.clone());
                }
                // Not in the pass: hidden (hidepid=2) or gone.
                return Err(hidden_or_vanished(pid));
            }
        };
        self.check_start(&root, start)?;

        let mut totals = Totals::new();
        self.stack.clear();
        for i in self.touched.drain(..) {
            self.seen[i] = false;
        }
        self.stack.push((pid, 0));
        while let Some((member, _)) = self.stack.pop() {
            let Ok(index) = self.procs.binary_search_by_key(&member, |s| s.pid) else {
                continue;
            };
            // A snapshot taken over time could, with pids reused mid-pass, hold a cycle.
            if self.seen[index] {
                continue;
            }
            self.seen[index] = true;
            self.touched.push(index);
            let sample = self.procs[index];
            let fds = match fd_count(member) {
                FdCount::Count(n) => Some(n),
                FdCount::Unreadable => None,
                // Exited since the pass: skipped, unless it is the root.
                FdCount::Gone if member == pid => return Err(ReadError::Vanished { pid }),
                FdCount::Gone => continue,
            };
            totals.add(&sample, fds, self.page_size);
            let from = self.edges.partition_point(|&(p, _)| p < member);
            for &(parent, child) in &self.edges[from..] {
                if parent != member {
                    break;
                }
                self.stack.push((child, parent));
            }
        }
        Ok(totals.usage(self.ticks_per_second))
    }

    fn sample(&self, pid: u32) -> Option<Sample> {
        self.procs
            .binary_search_by_key(&pid, |s| s.pid)
            .ok()
            .map(|i| self.procs[i])
    }

    /// Reads and parses `/proc/PID/stat` into the kept buffer; with [`Keep::Yes`] through a
    /// file kept open for the next call (the walk's few members, not the scan's every process).
    fn read_stat(&mut self, pid: u32, keep: Keep) -> Result<StatRead, ReadError> {
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/stat");
        self.buf.clear();
        let read = match keep {
            Keep::Yes => self.kept.read(pid, Kind::Stat, &self.path, &mut self.buf),
            Keep::No => std::fs::File::open(&self.path).and_then(|f| read_all(f, &mut self.buf)),
        };
        match read {
            Ok(_) => {}
            Err(e) if gone(&e) => return Ok(StatRead::Gone),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err(ReadError::Denied {
                    path: PathBuf::from(&self.path),
                    needed: NEEDED,
                })
            }
            Err(e) => {
                return Err(ReadError::Io {
                    path: PathBuf::from(&self.path),
                    reason: e.to_string(),
                })
            }
        }
        // A process reaped between open and read reads as empty.
        if self.buf.is_empty() {
            return Ok(StatRead::Gone);
        }
        parse_stat(pid, &self.buf)
            .map(StatRead::Read)
            .map_err(|reason| ReadError::Io {
                path: PathBuf::from(&self.path),
                reason,
            })
    }
}

/// Reads `file` to its end into `buf` with plain `read`s: `read_to_end` would first ask for
/// the size (`statx`, `lseek`), which `/proc` files do not have, two system calls per file.
fn read_all(mut file: std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut len = buf.len();
    loop {
        if buf.capacity() - len < 512 {
            buf.reserve(1024);
        }
        buf.resize(buf.capacity(), 0);
        let result = file.read(&mut buf[len..]);
        match result {
            Ok(0) => {
                buf.truncate(len);
                return Ok(len);
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
}

/// The numbers a tree needs from one `/proc/PID/stat`.
fn parse_stat(pid: u32, contents: &[u8]) -> Result<Sample, String> {
    // procfs slices around the name's parentheses without checking that there is room; check
    // here so that no content can make it panic.
    if !well_formed(contents) {
        return Err(format!(
            "unexpected contents {:?}",
            String::from_utf8_lossy(&contents[..contents.len().min(80)])
        ));
    }
    let stat = Stat::from_read(contents).map_err(|e| e.to_string())?;
    let ticks = |a: u64, b: i64| a.saturating_add(u64::try_from(b).unwrap_or(0));
    Ok(Sample {
        pid,
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        user_ticks: ticks(stat.utime, stat.cutime),
        system_ticks: ticks(stat.stime, stat.cstime),
        rss_pages: stat.rss,
        vsize: stat.vsize,
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
        starttime: stat.starttime,
    })
}

/// `PID (comm) S …`: digits, a space, the name in parentheses (which may hold anything,
/// parentheses and spaces included: the last `)` closes it), then a space and the fields.
fn well_formed(stat: &[u8]) -> bool {
    let text = stat.trim_ascii();
    let Some(open) = text.iter().position(|&b| b == b'(') else {
        return false;
    };
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return false;
    };
    open >= 2
        && text[..open - 1].iter().all(u8::is_ascii_digit)
        && text[open - 1] == b' '
        && close > open
        && close + 2 < text.len()
        && text[close + 1] == b' '
}

/// An error that means the process is not there (any more).
fn gone(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// A root absent from `/proc`: alive but hidden (`hidepid=2`) is `Denied`, else `Vanished`.
fn hidden_or_vanished(pid: u32) -> ReadError {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return ReadError::Vanished { pid };
    };
    if raw <= 0 {
        return ReadError::Vanished { pid };
    }
    // SAFETY: signal 0 sends nothing; it only checks that the pid exists and may be signalled.
    let alive = unsafe { libc::kill(raw, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if alive {
        ReadError::Denied {
            path: PathBuf::from(format!("/proc/{pid}")),
            needed: NEEDED,
        }
    } else {
        ReadError::Vanished { pid }
    }
}

enum FdCount {
    Count(u64),
    Unreadable,
    Gone,
}

/// The number of a process's open descriptors. Since Linux 6.2 the size of `/proc/PID/fd` is
/// that number: one `stat` of the path (what `procfs` also reads, after opening `/proc/PID`
/// first, two more system calls). An older kernel reports 0 there: then the directory is listed.
fn fd_count(pid: u32) -> FdCount {
    match std::fs::metadata(format!("/proc/{pid}/fd")) {
        Ok(meta) if meta.size() > 0 => return FdCount::Count(meta.size()),
        Ok(_) => {}
        Err(e) if gone(&e) => return FdCount::Gone,
        Err(_) => return FdCount::Unreadable,
    }
    let Ok(raw) = i32::try_from(pid) else {
        return FdCount::Gone;
    };
    let counted = Process::new(raw).and_then(|p| p.fd_count());
    match counted {
        Ok(n) => FdCount::Count(n as u64),
        Err(procfs::ProcError::NotFound(_)) => FdCount::Gone,
        Err(procfs::ProcError::Io(e, _)) if gone(&e) => FdCount::Gone,
        Err(_) => FdCount::Unreadable,
    }
}

/// Unix seconds at boot: the wall clock less the time since boot (`CLOCK_BOOTTIME`, the clock
/// of `/proc/PID/stat`'s `starttime`), to the microsecond where `/proc/stat`'s `btime` gives
/// whole seconds.
fn boot_unix_seconds() -> f64 {
    fn now(clock: libc::clockid_t) -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return 0.0;
        }
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }
    now(libc::CLOCK_REALTIME) - now(libc::CLOCK_BOOTTIME)
}
