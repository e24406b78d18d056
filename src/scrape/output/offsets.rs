//! Where each target's output tail resumes after a restart: one small JSON file per target in
//! the persistent queue's directory, written after the records read up to there are in the
//! queue.
//!
//! Saving after the records are queued makes a restart lose nothing; a crash between the two
//! writes makes it send the lines of that one poll again (at least once, as the Collector's
//! file log receiver with a storage extension). A graceful stop saves after the last poll's
//! records are queued, so a restart then repeats nothing. A file is written only when its
//! offsets moved, through a temporary file renamed over it, so a crash never leaves half a
//! file; one that cannot be read is logged and ignored (the target starts at the end of its
//! logs, as a new one does).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scrape::output::Checkpoint;

/// The folder under the storage directory.
pub const FOLDER: &str = "output-offsets";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a file holds: the checkpoint, and whose it is (the file name is only a safe form of
/// the target's name).
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    target: String,
    checkpoint: Checkpoint,
}

#[derive(Debug)]
pub struct OffsetStore {
    folder: PathBuf,
    /// The last checkpoint written per target, so an unchanged one is not written again.
    written: HashMap<String, Checkpoint>,
}

impl OffsetStore {
    /// A store in `<storage>/output-offsets`, created when first written.
    pub fn new(storage: &Path) -> OffsetStore {
        OffsetStore {
            folder: storage.join(FOLDER),
            written: HashMap::new(),
        }
    }

    /// The checkpoint saved for `target` at `endpoint`; `None` when there is none, it is
    /// unreadable (logged), or it was saved for another endpoint (a target renamed onto
    /// another supervisord does not inherit offsets of logs it never read).
    pub fn load(&self, target: &str, endpoint: &str) -> Option<Checkpoint> {
        let path = self.path(target);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(target_name = %target, path = %path.display(), "output offsets not read, the logs are read from their end: {error}");
                return None;
            }
        };
        match serde_json::from_slice::<Saved>(&text) {
            Ok(saved) if saved.target == target && saved.checkpoint.endpoint == endpoint => {
                Some(saved.checkpoint)
            }
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(target_name = %target, path = %path.display(), "output offsets not read, the logs are read from their end: {error}");
                None
            }
        }
    }

    /// Saves `checkpoint` for `target` unless it is what was saved last.
    pub fn save(&mut self, target: &str, checkpoint: &Checkpoint) -> Result<(), OffsetError> {
        if self.written.get(target) == Some(checkpoint) {
            return Ok(());
        }
        let path = self.path(target);
        let saved = Saved {
            target: target.to_owned(),
            checkpoint: checkpoint.clone(),
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.folder)?;
            let temporary = path.with_extension("json.tmp");
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&serde_json::to_vec(&saved).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)
        };
        write().map_err(|source| OffsetError::Write {
            path: path.clone(),
            source,
        })?;
        self.written.insert(target.to_owned(), checkpoint.clone());
        Ok(())
    }

    /// One file per target: the name made safe for a file name, and a hash of the whole name
    /// so two names that read the same once made safe stay apart.
    fn path(&self, target: &str) -> PathBuf {
        let safe: String = target
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
        let hash = target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        self.folder.join(format!("{safe}-{hash:016x}.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::output::SavedOffset;

    fn checkpoint(offset: u64) -> Checkpoint {
        Checkpoint {
            endpoint: "unix:///s.sock".into(),
            streams: vec![SavedOffset {
                process: "web:web_0".into(),
                stream: "stdout".into(),
                logfile: "/var/log/web.log".into(),
                offset,
            }],
            main_log: Some(3),
        }
    }

    #[test]
    fn a_saved_checkpoint_is_loaded_for_the_same_target_and_endpoint_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OffsetStore::new(dir.path());
        assert_eq!(store.load("web/1", "unix:///s.sock"), None);
        store.save("web/1", &checkpoint(10)).unwrap();
        store.save("web/1", &checkpoint(20)).unwrap();
        let reopened = OffsetStore::new(dir.path());
        assert_eq!(
            reopened.load("web/1", "unix:///s.sock"),
            Some(checkpoint(20))
        );
        assert_eq!(reopened.load("web/1", "http://other:9001"), None);
        assert_eq!(reopened.load("web_1", "unix:///s.sock"), None);
    }

    #[test]
    fn an_unreadable_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::new(dir.path());
        std::fs::create_dir_all(dir.path().join(FOLDER)).unwrap();
        std::fs::write(store.path("t"), b"{not json").unwrap();
        assert_eq!(store.load("t", "e"), None);
    }

    #[test]
    fn a_write_that_fails_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let mut store = OffsetStore::new(&blocker);
        let error = store.save("t", &checkpoint(1)).unwrap_err();
        assert!(error.to_string().contains("output-offsets"), "{error}");
    }
}
