//! The persistent side of a sending queue: one redb file per exporter and signal, one entry
//! per batch keyed by a sequence number (oldest first), valued by its point (or log record)
//! count and its encoded OTLP request.
//!
//! The layout under the storage directory, the exporter key escaped (see [`exporter_dir`]):
//! - metrics: `<storage>/<exporter>/queue.redb`, where it always was, so a queue left on disk
//!   before logs existed is found and sent;
//! - logs: `<storage>/<exporter>/logs/queue.redb`, beside it. A sub-directory rather than a
//!   sibling named after the key (`otlp/logs` escaped to `otlp%2Flogs`), which would be the
//!   metrics directory of an exporter keyed `otlp/logs`: escaped keys never hold a `/`, so no
//!   exporter's directory is ever another's logs directory.
//!
//! redb commits are atomic and durable when `commit` returns (checksummed pages, fsync), and a
//! file left by a crash is repaired on open, so a batch is either wholly queued or not at all.
//! The file is opened with the integrity check on, so a file damaged outside redb is reported
//! rather than trusted; such a file is moved aside (`queue.redb.corrupt-<unix seconds>`) and
//! the queue starts empty.
//!
//! What the host does to the file (a full or read-only filesystem, the directory removed) is
//! reported by [`DiskStore::open`], [`DiskStore::commit`] and [`DiskStore::check_in_place`]; the
//! queue decides what to do about it (see `fault.rs`).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use crate::settings::Signal;

/// Sequence number -> (data points or log records, OTLP `ExportMetricsServiceRequest` or
/// `ExportLogsServiceRequest` protobuf: the file's signal).
const BATCHES: TableDefinition<u64, (u64, &[u8])> = TableDefinition::new("batches");

pub(crate) const FILE_NAME: &str = "queue.redb";

/// The sub-directory of an exporter's directory that holds its logs queue.
pub(crate) const LOGS_DIR: &str = "logs";

/// redb's page cache; the queue is written once and read once, so little cache is needed.
const CACHE_BYTES: usize = 4 << 20;

/// Above this size an empty queue's file is compacted, giving back what an outage took.
const COMPACT_ABOVE_BYTES: u64 = 8 << 20;

/// A batch found on disk when the queue was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredBatch {
    pub seq: u64,
    pub points: u64,
    pub bytes: u64,
}

pub(crate) struct DiskStore {
    db: Database,
    file: PathBuf,
    /// The file's device and inode when opened: a file removed or replaced behind the open
    /// database no longer has them at its path.
    identity: (u64, u64),
}

/// Why a queue file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    /// Another process holds it: using it too would corrupt both queues.
    InUse(String),
    /// The host's to fix, and maybe fixed later (a full or read-only filesystem, a missing
    /// directory, permissions): the path and the OS reason.
    Unavailable(String),
}

impl OpenFailure {
    pub fn reason(&self) -> &str {
        match self {
            OpenFailure::InUse(r) | OpenFailure::Unavailable(r) => r,
        }
    }
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("file", &self.file)
            .finish()
    }
}

/// The sub-directory of one exporter: its name with anything but `[A-Za-z0-9._-]`
/// percent-encoded, so `otlp/backend` and `otlp_backend` never share a directory.
pub(crate) fn exporter_dir(storage: &Path, exporter: &str) -> PathBuf {
    let mut name = String::with_capacity(exporter.len());
    for byte in exporter.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.starts_with('.') {
        // `.` and `..` must not name a directory.
        name.replace_range(..1, "%2E");
    }
    storage.join(name)
}

/// The directory of one exporter's queue of one signal (see the module's layout).
pub(crate) fn queue_dir(storage: &Path, exporter: &str, signal: Signal) -> PathBuf {
    let dir = exporter_dir(storage, exporter);
    match signal {
        Signal::Metrics => dir,
        Signal::Logs => dir.join(LOGS_DIR),
    }
}

impl DiskStore {
    /// Opens (or creates) the queue file of the exporter's `signal` and lists the batches it
    /// holds, oldest first.
    pub fn open(
        storage: &Path,
        exporter: &str,
        signal: Signal,
    ) -> Result<(DiskStore, Vec<StoredBatch>), OpenFailure> {
        let dir = queue_dir(storage, exporter, signal);
        create_private_dir(&dir).map_err(|e| {
            OpenFailure::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let file = dir.join(FILE_NAME);
        let db = match open_db(&file) {
            Ok(db) => db,
            Err(OpenError::InUse(reason)) => return Err(OpenFailure::InUse(reason)),
            Err(OpenError::Fatal(reason)) => return Err(OpenFailure::Unavailable(reason)),
            Err(OpenError::Unreadable(reason)) => {
                let aside = set_aside(&file).map_err(OpenFailure::Unavailable)?;
                tracing::warn!(
                    file = %file.display(),
                    moved_to = %aside.display(),
                    "the persistent sending queue {} is corrupt ({reason}): moved aside to {}; \
                     the queue starts empty",
                    file.display(),
                    aside.display()
                );
                open_db(&file).map_err(|e| match e {
                    OpenError::InUse(r) => OpenFailure::InUse(r),
                    e => OpenFailure::Unavailable(e.reason()),
                })?
            }
        };
        let identity = identity(&file)
            .map_err(|e| OpenFailure::Unavailable(format!("{}: {e}", file.display())))?;
        let store = DiskStore { db, file, identity };
        let batches = store.scan().map_err(|e| {
            OpenFailure::Unavailable(format!("cannot read {}: {e}", store.file.display()))
        })?;
        Ok((store, batches))
    }

    /// `Err` with the path and the reason when the file is no longer the one opened: removed
    /// (with its directory, say) or replaced. The open database would carry on writing to a file
    /// nobody can find again.
    pub fn check_in_place(&self) -> Result<(), String> {
        match identity(&self.file) {
            Ok(id) if id == self.identity => Ok(()),
            Ok(_) => Err(format!(
                "{} was replaced by another file",
                self.file.display()
            )),
            Err(e) => Err(format!("{}: {e}", self.file.display())),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    fn scan(&self) -> Result<Vec<StoredBatch>, redb::Error> {
        // The table is created by the first write transaction that opens it.
        let txn = self.db.begin_write()?;
        txn.open_table(BATCHES)?;
        txn.commit()?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let (points, bytes) = value.value();
            out.push(StoredBatch {
                seq: key.value(),
                points,
                bytes: bytes.len() as u64,
            });
        }
        Ok(out)
    }

    /// One atomic, durable change: the new batch is in and the removed ones are out, or neither.
    pub fn commit(
        &self,
        insert: Option<(u64, u64, &[u8])>,
        remove: &[u64],
    ) -> Result<(), redb::Error> {
        self.commit_many(insert.as_slice(), remove)
    }

    /// [`DiskStore::commit`] of several batches (seq, points, encoded request) at once.
    pub fn commit_many(
        &self,
        insert: &[(u64, u64, &[u8])],
        remove: &[u64],
    ) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(BATCHES)?;
            for seq in remove {
                table.remove(seq)?;
            }
            for &(seq, points, bytes) in insert {
                table.insert(seq, (points, bytes))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The encoded requests of `seqs`, in order; `None` for one that is not there.
    pub fn read(&self, seqs: &[u64]) -> Result<Vec<Option<Vec<u8>>>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            out.push(table.get(seq)?.map(|v| v.value().1.to_vec()));
        }
        Ok(out)
    }

    /// Gives disk space back once the queue is empty again after an outage filled it.
    pub fn compact_if_large(&mut self) {
        let size = std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        if size <= COMPACT_ABOVE_BYTES {
            return;
        }
        match self.db.compact() {
            Ok(_) => {
                tracing::debug!(file = %self.file.display(), "persistent sending queue compacted")
            }
            Err(e) => tracing::debug!(file = %self.file.display(), "compaction skipped: {e}"),
        }
    }
}

enum OpenError {
    /// Unusable as it is, but the directory is fine: set the file aside and start anew.
    Unreadable(String),
    /// Another process holds the file.
    InUse(String),
    /// Nothing to do about it here: permissions, a full or read-only disk, I/O.
    Fatal(String),
}

impl OpenError {
    fn reason(self) -> String {
        match self {
            OpenError::Unreadable(r) | OpenError::InUse(r) | OpenError::Fatal(r) => r,
        }
    }
}

/// A file's device and inode.
fn identity(file: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file)?;
    Ok((meta.dev(), meta.ino()))
}

fn open_db(file: &Path) -> Result<Database, OpenError> {
    let mut builder = Database::builder();
    builder
        .set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true);
    // The integrity check turns damage into an error; this guard covers any check that still
    // asserts, so a damaged file can never take the receiver down.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.create(file)));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch)) => {
            Err(OpenError::InUse(format!(
                "{} is in use by another process (another receiver with the same storage?)",
                file.display()
            )))
        }
        // A short or foreign file reads as invalid data or an early end; anything else
        // (permissions, a full or read-only disk) is the host's to fix.
        Ok(Err(DatabaseError::Storage(redb::StorageError::Io(e))))
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Err(OpenError::Fatal(format!("{}: {e}", file.display())))
        }
        Ok(Err(e)) => Err(OpenError::Unreadable(e.to_string())),
        Err(_) => Err(OpenError::Unreadable(
            "the storage engine failed on it".into(),
        )),
    }
}

/// Renames a corrupt file to `queue.redb.corrupt-<unix seconds>`, kept for inspection.
fn set_aside(file: &Path) -> Result<PathBuf, String> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = file.with_extension(format!("redb.corrupt-{secs}"));
    std::fs::rename(file, &aside)
        .map_err(|e| format!("cannot move the unreadable {} aside: {e}", file.display()))?;
    Ok(aside)
}

/// The queue holds the data and nothing else, but it is nobody else's business either.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_names_map_to_distinct_directories() {
        let root = Path::new("/q");
        assert_eq!(exporter_dir(root, "otlp"), Path::new("/q/otlp"));
        assert_eq!(
            exporter_dir(root, "otlp/backend"),
            Path::new("/q/otlp%2Fbackend")
        );
        assert_eq!(
            exporter_dir(root, "otlp/../x"),
            Path::new("/q/otlp%2F..%2Fx")
        );
        assert_eq!(exporter_dir(root, "otlp/é"), Path::new("/q/otlp%2F%C3%A9"));
        assert_ne!(
            exporter_dir(root, "otlp/a_b"),
            exporter_dir(root, "otlp_a/b")
        );
        assert_eq!(
            queue_dir(root, "otlp", Signal::Metrics),
            Path::new("/q/otlp"),
            "metrics stay where queues were before logs"
        );
        assert_eq!(
            queue_dir(root, "otlp/backend", Signal::Logs),
            Path::new("/q/otlp%2Fbackend/logs")
        );
        assert_ne!(
            queue_dir(root, "otlp", Signal::Logs),
            queue_dir(root, "otlp/logs", Signal::Metrics),
            "no exporter's queue is another's logs queue"
        );
    }

    #[test]
    fn batches_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, found) = DiskStore::open(dir.path(), "otlp/a", Signal::Metrics).unwrap();
            assert!(found.is_empty());
            store.commit(Some((1, 10, b"one")), &[]).unwrap();
            store.commit(Some((2, 20, b"two!")), &[]).unwrap();
            store.commit(Some((3, 30, b"three")), &[1]).unwrap();
        }
        let (store, found) = DiskStore::open(dir.path(), "otlp/a", Signal::Metrics).unwrap();
        assert_eq!(
            found,
            [
                StoredBatch {
                    seq: 2,
                    points: 20,
                    bytes: 4
                },
                StoredBatch {
                    seq: 3,
                    points: 30,
                    bytes: 5
                },
            ]
        );
        assert_eq!(
            store.read(&[3, 1, 2]).unwrap(),
            [Some(b"three".to_vec()), None, Some(b"two!".to_vec())]
        );
        // Another exporter's queue is separate.
        let (_, other) = DiskStore::open(dir.path(), "otlp/b", Signal::Metrics).unwrap();
        assert!(other.is_empty());
    }

    #[test]
    fn a_second_process_cannot_share_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_held, _) = DiskStore::open(dir.path(), "otlp", Signal::Metrics).unwrap();
        let err = DiskStore::open(dir.path(), "otlp", Signal::Metrics).unwrap_err();
        assert!(
            matches!(&err, OpenFailure::InUse(r) if r.contains("in use by another process")),
            "{err:?}"
        );
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_the_queue_starts_empty() {
        for damage in [&b"not a database at all"[..], &[0u8; 4096][..]] {
            let dir = tempfile::tempdir().unwrap();
            let file = exporter_dir(dir.path(), "otlp").join(FILE_NAME);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, damage).unwrap();
            let (store, found) = DiskStore::open(dir.path(), "otlp", Signal::Metrics).unwrap();
            assert!(found.is_empty());
            store.commit(Some((1, 1, b"x")), &[]).unwrap();
            let names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                names.iter().any(|n| n.starts_with("queue.redb.corrupt-")),
                "{names:?}"
            );
        }
    }

    const CRASH_DIR_VAR: &str = "SUPERVISORD_RECEIVER_TEST_CRASH_DIR";
    const READY: &str = "crash-helper-wrote-a-batch";

    /// What the crash helper writes under `seq`: sizes that span several pages.
    fn payload(seq: u64) -> Vec<u8> {
        let len = (seq * 7919) % 20_000 + 1;
        vec![(seq % 251) as u8; len as usize]
    }

    /// Run by `crash_mid_write_leaves_only_whole_batches` in a child process, which it kills:
    /// appends batches and removes the oldest, as a queue under load does, until killed.
    #[test]
    #[ignore = "a helper process of crash_mid_write_leaves_only_whole_batches"]
    fn crash_helper_writes_until_killed() {
        use std::io::Write as _;
        let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
            return;
        };
        let (store, found) = DiskStore::open(Path::new(&dir), "otlp", Signal::Metrics).unwrap();
        let mut oldest = found.first().map_or(0, |b| b.seq);
        let mut seq = found.last().map_or(0, |b| b.seq + 1);
        let mut announced = false;
        // Bounded, in case the parent test is gone: it kills this process long before.
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(30) {
            let remove = if seq % 2 == 0 && oldest < seq {
                vec![oldest]
            } else {
                vec![]
            };
            store
                .commit(Some((seq, seq, &payload(seq))), &remove)
                .unwrap();
            oldest += remove.len() as u64;
            seq += 1;
            if !announced {
                println!("{READY}");
                std::io::stdout().flush().unwrap();
                announced = true;
            }
        }
    }

    /// A process killed in the middle of writing (kill -9 at varying points of a commit) leaves
    /// a file that opens, lists a contiguous run of batches, and reads each back whole.
    #[test]
    fn crash_mid_write_leaves_only_whole_batches() {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut total = 0;
        for round in 0..4u64 {
            let mut child = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "export::queue::disk::tests::crash_helper_writes_until_killed",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_DIR_VAR, dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let ready = std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|line| line.contains(READY));
            assert!(ready, "the helper never wrote a batch");
            // Let it get into the middle of some later commit.
            std::thread::sleep(std::time::Duration::from_millis(15 + 25 * round));
            child.kill().unwrap();
            child.wait().unwrap();

            let (store, found) = DiskStore::open(dir.path(), "otlp", Signal::Metrics).unwrap();
            assert!(
                !found.is_empty(),
                "round {round}: the first commit was durable"
            );
            let seqs: Vec<u64> = found.iter().map(|b| b.seq).collect();
            let first = seqs[0];
            assert_eq!(seqs, (first..first + seqs.len() as u64).collect::<Vec<_>>());
            for (b, bytes) in found.iter().zip(store.read(&seqs).unwrap()) {
                assert_eq!(b.points, b.seq);
                assert_eq!(bytes, Some(payload(b.seq)), "batch {} is whole", b.seq);
            }
            total = *seqs.last().unwrap();
        }
        assert!(
            total > 4,
            "the helper kept writing across restarts ({total})"
        );
    }

    #[test]
    fn a_truncated_file_never_yields_a_partial_batch() {
        let dir = tempfile::tempdir().unwrap();
        let file = exporter_dir(dir.path(), "otlp").join(FILE_NAME);
        {
            let (store, _) = DiskStore::open(dir.path(), "otlp", Signal::Metrics).unwrap();
            for seq in 0..20u64 {
                store
                    .commit(Some((seq, seq, &vec![seq as u8; 1000])), &[])
                    .unwrap();
            }
        }
        let full = std::fs::read(&file).unwrap();
        // Torn tails of every size a crash could leave: the store opens, and every batch it
        // lists reads back whole.
        for keep in [full.len() / 2, full.len() - 1, 4096, 100] {
            std::fs::write(&file, &full[..keep]).unwrap();
            let (store, found) = DiskStore::open(dir.path(), "otlp", Signal::Metrics).unwrap();
            let seqs: Vec<u64> = found.iter().map(|b| b.seq).collect();
            for (seq, bytes) in seqs.iter().zip(store.read(&seqs).unwrap()) {
                assert_eq!(bytes, Some(vec![*seq as u8; 1000]));
            }
            drop(store);
            std::fs::write(&file, &full).unwrap();
        }
    }
}
