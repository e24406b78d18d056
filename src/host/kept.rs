//! `/proc` files kept open between reads of the same processes.
//!
//! A lone poll of a supervisord with ten programs read 30 `/proc` files: each an `openat` (a
//! path walk through `/proc`, revalidating the pid's dentry), a `read` and a `close`. The
//! `stat` and `children` files of a process are `seq_file`s: read again from offset 0
//! (`pread`), they are formatted afresh, so an open file serves every later poll with one
//! system call instead of three.
//!
//! An open `/proc/PID/...` file stays bound to the process it was opened for, not to its pid
//! number: once that process is gone a read fails with ESRCH (or reads nothing), even if the
//! number was reused. Such a file is dropped and the path opened again, so the answer is always
//! the current process's, as a fresh open would give.
//!
//! Bounded: at most [`MAX_KEPT`] files in the whole process, whatever the number of targets and
//! readers (beyond that, files are opened per read as before), so kept files never compete
//! with connections for the open-file limit; and a file not read during a whole
//! [`KeptFiles::end_round`] round is closed, so exited programs' files go within one poll.

use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Kept files at most, in the whole process: two per program (`stat`, `children`) of 128
/// single-threaded programs, a quarter of the smallest usual open-file limit (1,024).
pub(super) const MAX_KEPT: usize = 256;

/// Files kept by every [`KeptFiles`] of the process.
static KEPT_TOTAL: AtomicUsize = AtomicUsize::new(0);

/// Which file of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// `/proc/PID/stat`.
    Stat,
    /// `/proc/PID/task/TID/children`, keyed by the thread.
    Children { tid: u32 },
}

#[derive(Debug)]
struct Kept {
    file: File,
    /// The round it was last read in.
    round: u64,
}

impl Kept {
    /// Takes one of the process's [`MAX_KEPT`] places; `None` when all are taken.
    fn new(file: File, round: u64) -> Option<Kept> {
        KEPT_TOTAL
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_KEPT).then_some(n + 1)
            })
            .ok()?;
        Some(Kept { file, round })
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        KEPT_TOTAL.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub(super) struct KeptFiles {
    files: HashMap<(u32, Kind), Kept>,
    round: u64,
}

impl KeptFiles {
    /// Reads the whole file for `(pid, kind)` into `buf` (cleared first), through the kept file
    /// when there is one; `path` is opened when there is none or the kept one's process is gone.
    ///
    /// A `stat` always has contents while its process lives, so an empty or failed read of a
    /// kept one means the process is gone: every kept file of that pid is dropped (a `children`
    /// file of a gone process reads as empty, like one of a process without children) and the
    /// path opened afresh. A `children` file is kept even when empty.
    pub(super) fn read(
        &mut self,
        pid: u32,
        kind: Kind,
        path: &str,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<usize> {
        let key = (pid, kind);
        if let Some(kept) = self.files.get_mut(&key) {
            buf.clear();
            match read_from_start(&kept.file, buf) {
                Ok(n) if n > 0 || kind != Kind::Stat => {
                    kept.round = self.round;
                    return Ok(n);
                }
                // The process is gone, or the file fails: opened afresh below, which tells.
                _ => self.files.retain(|&(p, _), _| p != pid),
            }
        }
        let file = File::open(path)?;
        buf.clear();
        let n = read_from_start(&file, buf)?;
        if n > 0 || kind != Kind::Stat {
            if let Some(kept) = Kept::new(file, self.round) {
                self.files.insert(key, kept);
            }
        }
        Ok(n)
    }

    /// Ends a round of reads: closes every file not read since the previous call.
    pub(super) fn end_round(&mut self) {
        let round = self.round;
        self.files.retain(|_, kept| kept.round == round);
        self.round = self.round.wrapping_add(1);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }
}

/// The file's contents from offset 0 with `pread`s (a `seq_file` formats them afresh), appended
/// to `buf`, which grows as needed.
///
/// A read shorter than the room it was given is the end: a `seq_file` read fills the room
/// given unless the contents end first. This spares the empty read that would otherwise end
/// every file (one system call of two for a `stat`).
fn read_from_start(file: &File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = buf.len();
    let mut len = start;
    loop {
        if buf.capacity() - len < 512 {
            buf.reserve(1024);
        }
        buf.resize(buf.capacity(), 0);
        let room = buf.len() - len;
        match file.read_at(&mut buf[len..], (len - start) as u64) {
            Ok(n) if n < room => {
                buf.truncate(len + n);
                return Ok(len + n - start);
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

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    fn stat_path(pid: u32) -> String {
        format!("/proc/{pid}/stat")
    }

    #[test]
    fn a_kept_stat_is_read_again_while_its_process_lives_and_dropped_when_it_is_gone() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep runs");
        let pid = child.id();
        let mut kept = KeptFiles::default();
        let mut buf = Vec::new();
        let n = kept
            .read(pid, Kind::Stat, &stat_path(pid), &mut buf)
            .unwrap();
        assert!(n > 0 && buf.starts_with(format!("{pid} (sleep)").as_bytes()));
        assert_eq!(kept.len(), 1);
        // Read again through the kept file: the whole contents again, not what follows them.
        let again = kept
            .read(pid, Kind::Stat, &stat_path(pid), &mut buf)
            .unwrap();
        assert_eq!(again, n);
        assert!(buf.starts_with(format!("{pid} (sleep)").as_bytes()));

        child.kill().unwrap();
        child.wait().unwrap();
        let gone = kept.read(pid, Kind::Stat, &stat_path(pid), &mut buf);
        assert_eq!(gone.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(kept.len(), 0, "the gone process's file is closed");
    }

    #[test]
    fn files_not_read_in_a_round_are_closed_at_its_end() {
        let me = std::process::id();
        let mut kept = KeptFiles::default();
        let mut buf = Vec::new();
        kept.read(me, Kind::Stat, &stat_path(me), &mut buf).unwrap();
        let children = format!("/proc/{me}/task/{me}/children");
        kept.read(me, Kind::Children { tid: me }, &children, &mut buf)
            .unwrap();
        assert_eq!(kept.len(), 2, "an empty children file is kept too");
        kept.end_round();
        kept.read(me, Kind::Stat, &stat_path(me), &mut buf).unwrap();
        kept.end_round();
        assert_eq!(kept.len(), 1, "only the file read in the last round stays");
        kept.end_round();
        assert_eq!(kept.len(), 0);
    }

    #[test]
    fn a_kept_children_file_lists_children_forked_after_it_was_opened() {
        let me = std::process::id();
        // SAFETY: gettid has no arguments and no memory effects.
        let tid = u32::try_from(unsafe { libc::gettid() }).unwrap();
        let path = format!("/proc/{me}/task/{tid}/children");
        let mut kept = KeptFiles::default();
        let mut buf = Vec::new();
        kept.read(me, Kind::Children { tid }, &path, &mut buf)
            .unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep runs");
        kept.read(me, Kind::Children { tid }, &path, &mut buf)
            .unwrap();
        let listed = String::from_utf8_lossy(&buf).into_owned();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(kept.len(), 1, "read through the kept file");
        assert!(
            listed
                .split_whitespace()
                .any(|p| p == child.id().to_string()),
            "{listed:?} lists {}",
            child.id()
        );
    }
}
