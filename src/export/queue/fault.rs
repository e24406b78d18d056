//! A persistent queue whose disk fails: full, read-only, the directory removed, the file
//! unreadable.
//!
//! The queue never stops taking batches for it. When the store cannot be opened (at start), or a
//! write fails, or the file is found gone, the queue goes to memory: the batches the file held
//! are read back into memory (those that cannot be are dropped and counted), the store is
//! closed, and every batch lives in memory, within the same limits, until the disk works again.
//! One error names the path and the OS reason; retries are quiet unless the reason changes.
//!
//! The store is reopened at the first push after a retry is due: 10 s after the failure, then
//! 20 s, then every 30 s. A file found removed is reopened at once (recreating its directory).
//! A reopen that works writes what memory holds to the file in one commit, and the queue is on
//! disk again. What the file holds then is either stale (it was open earlier in this run, so
//! its batches are in memory already, or were sent or dropped since: removed) or from a
//! previous run (the store never opened in this run, a read-only disk at start: kept, oldest
//! first, ahead of what arrived meanwhile).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::disk::DiskStore;
use super::{disk_seqs, Entry, SendingQueue, State};
use crate::export::encoded::decodes_as;
use crate::export::items;

/// The first retry after a failure.
pub(super) const FIRST_RETRY: Duration = Duration::from_secs(10);
/// Retries double up to this.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(30);

/// One episode of an unusable disk.
#[derive(Debug)]
pub(super) struct Fault {
    reason: String,
    since: Instant,
    next_retry: Instant,
    delay: Duration,
}

impl Fault {
    fn new(reason: String) -> Fault {
        let now = Instant::now();
        Fault {
            reason,
            since: now,
            next_retry: now + FIRST_RETRY,
            delay: FIRST_RETRY,
        }
    }

    /// The store could not be opened at start: logged, and the queue starts in memory.
    pub(super) fn at_start(exporter: &str, reason: &str) -> Fault {
        tracing::error!(
            exporter,
            "cannot open the persistent sending queue ({reason}): starting with the queue in \
             memory (same limits; lost if the receiver stops), retrying every {}-{} s",
            FIRST_RETRY.as_secs(),
            MAX_RETRY.as_secs()
        );
        Fault::new(reason.to_string())
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next_retry
    }

    /// A retry failed: the next one is later. Whether the reason changed.
    fn failed_again(&mut self, reason: String) -> bool {
        self.delay = (self.delay * 2).min(MAX_RETRY);
        self.next_retry = Instant::now() + self.delay;
        let changed = reason != self.reason;
        self.reason = reason;
        changed
    }
}

impl SendingQueue {
    /// Before a push: a store whose file is gone is given up and reopened at once (which
    /// recreates it); a disk that failed is tried again when a retry is due.
    pub(super) fn check_disk(&self, state: &mut State) {
        if let Some(store) = &state.store {
            if let Err(reason) = store.check_in_place() {
                self.disk_failed(
                    state,
                    format!("{reason}: the queue file or its directory was removed"),
                );
                if let Some(fault) = state.fault.as_mut() {
                    fault.next_retry = Instant::now();
                }
            }
        }
        if state.store.is_none() && state.fault.as_ref().is_some_and(Fault::due) {
            self.retry_disk(state);
        }
    }

    /// The store failed (`reason` names the path and the OS reason): its batches come into
    /// memory, the store is closed, and retries start.
    pub(super) fn disk_failed(&self, state: &mut State, reason: String) {
        let Some(store) = state.store.take() else {
            return;
        };
        let on_disk = disk_seqs(state.entries.iter());
        let mut read = match store.read(&on_disk) {
            Ok(read) => read.into_iter(),
            Err(e) => {
                tracing::error!(
                    exporter = %self.exporter,
                    file = %store.file().display(),
                    "cannot read the persistent sending queue back into memory: {e}"
                );
                Vec::new().into_iter()
            }
        };
        drop(store);
        let in_flight = state.in_flight;
        let mut unreadable = Vec::new();
        for (i, entry) in state.entries.iter_mut().enumerate() {
            if entry.encoded.is_some() {
                continue;
            }
            match read.next().flatten().filter(|b| decodes_as(self.signal, b)) {
                Some(bytes) => entry.encoded = Some(Bytes::from(bytes)),
                // One being sent is left to its sender, which has its bytes.
                None if i >= in_flight => unreadable.push(entry.seq),
                None => {}
            }
        }
        let (mut lost_batches, mut lost_points) = (0u64, 0u64);
        state.entries.retain(|e| {
            let keep = !unreadable.contains(&e.seq);
            if !keep {
                lost_batches += 1;
                lost_points += e.points;
            }
            keep
        });
        state.bytes = state.entries.iter().map(|e| e.bytes).sum();
        let held = state.entries.len();
        tracing::error!(
            exporter = %self.exporter,
            "the persistent sending queue cannot be used ({reason}): keeping its {held} batches \
             and the new ones in memory (same limits; lost if the receiver stops), retrying \
             every {}-{} s",
            FIRST_RETRY.as_secs(),
            MAX_RETRY.as_secs()
        );
        if lost_points > 0 {
            self.recorder.add_dropped(lost_points);
            tracing::error!(
                exporter = %self.exporter,
                "{lost_batches} batches of the persistent sending queue could not be read back: \
                 {lost_points} {} dropped",
                items(self.signal)
            );
        }
        state.fault = Some(Fault::new(reason));
    }

    /// Tries the disk again: on success the queue is on disk, what memory held written to it.
    pub(super) fn retry_disk(&self, state: &mut State) {
        let Some(fault) = state.fault.as_mut() else {
            return;
        };
        let Some((storage, key)) = &self.storage else {
            return;
        };
        let (store, found) = match DiskStore::open(storage, key, self.signal) {
            Ok(opened) => opened,
            Err(e) => return self.still_failing(fault, e.reason().to_string()),
        };
        let (adopted, stale) = if state.opened_once {
            (Vec::new(), found.iter().map(|b| b.seq).collect())
        } else {
            (found, Vec::new())
        };
        // Sequence numbers after anything the file keeps, in the order the batches came.
        let base = adopted.last().map_or(0, |b| b.seq + 1).max(state.next_seq);
        for (i, entry) in state.entries.iter_mut().enumerate() {
            entry.seq = base + i as u64;
        }
        state.next_seq = base + state.entries.len() as u64;
        // Those being sent too: the backend may not take them.
        let inserts: Vec<(u64, u64, &[u8])> = state
            .entries
            .iter()
            .filter_map(|e| e.encoded.as_ref().map(|b| (e.seq, e.points, &b[..])))
            .collect();
        let moved = inserts.len();
        if let Err(e) = store.commit_many(&inserts, &stale) {
            let reason = format!("{}: {e}", store.file().display());
            return self.still_failing(fault, reason);
        }
        let since = fault.since.elapsed();
        state.fault = None;
        for entry in state.entries.iter_mut() {
            entry.encoded = None;
        }
        let in_flight = state.in_flight;
        for (i, b) in adopted.iter().enumerate() {
            state.bytes += b.bytes;
            state.entries.insert(
                in_flight + i,
                Entry {
                    seq: b.seq,
                    points: b.points,
                    bytes: b.bytes,
                    encoded: None,
                },
            );
        }
        tracing::info!(
            exporter = %self.exporter,
            file = %store.file().display(),
            "the persistent sending queue {} is usable again after {}s: {moved} batches moved \
             from memory to disk{}",
            store.file().display(),
            since.as_secs(),
            if adopted.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} batches ({} {}) from a previous run found there, sent first",
                    adopted.len(),
                    adopted.iter().map(|b| b.points).sum::<u64>(),
                    items(self.signal)
                )
            }
        );
        state.store = Some(store);
        state.opened_once = true;
        // The batches found may not all fit.
        self.trim(state);
    }

    fn still_failing(&self, fault: &mut Fault, reason: String) {
        let delay = fault.delay;
        if fault.failed_again(reason.clone()) {
            tracing::warn!(
                exporter = %self.exporter,
                "the persistent sending queue still cannot be used ({reason}); the queue stays \
                 in memory, retrying in {}s",
                fault.delay.as_secs()
            );
        } else {
            tracing::debug!(
                exporter = %self.exporter,
                "the persistent sending queue still cannot be used ({reason}); retried after \
                 {}s",
                delay.as_secs()
            );
        }
    }

    /// Makes the next push try the disk again, whatever the schedule says.
    #[cfg(test)]
    pub(super) fn retry_now(&self) {
        if let Some(fault) = self.lock().fault.as_mut() {
            fault.next_retry = Instant::now();
        }
    }
}
