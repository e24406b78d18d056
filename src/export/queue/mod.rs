//! The sending queue of one OTLP exporter for one signal: bounded by batches and by bytes, in
//! memory or on disk. An exporter carrying metrics and logs has two, each with the configured
//! limits (as the Collector's exporters in a metrics and a logs pipeline do), so a flood of one
//! signal never evicts the other's batches.
//!
//! The pipeline pushes batches without ever waiting for the backend; the exporter's sender takes
//! the oldest ones, sends them, and only then removes them ([`SendingQueue::finish`]), so a batch
//! on disk stays there until the backend has it. When the queue is full the oldest batches that
//! are not being sent are dropped, counted and logged: for monitoring data the newest is worth
//! the most.
//!
//! Delivery is oldest first and at least once: a batch is removed only after the backend
//! acknowledged it (or refused it for good), and never sent again after that. A batch is sent
//! twice only when an acknowledgement is lost: an attempt timed out or its connection broke
//! after the backend took it, or the process died between the acknowledgement and the removal
//! from disk.
//!
//! Every operation is synchronous and short; on disk it includes an fsync, so async callers
//! run it on the blocking pool (see [`SendingQueue::push_async`]).
//!
//! A persistent queue whose disk fails (full, read-only, its directory removed) carries on in
//! memory within the same limits and goes back to disk when it can: see `fault.rs`.

mod disk;
mod fault;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::export::encoded::decodes_as;
use crate::export::{items, EncodedRequest};
use crate::settings::{QueueSettings, Signal};
use crate::telemetry::{ExportRecorder, ExporterStats, Telemetry};
use disk::{DiskStore, OpenFailure};
use fault::Fault;

/// One queued batch, as the sender gets it: possibly several pushed batches merged, oldest
/// first.
#[derive(Debug)]
pub struct Taken {
    pub request: EncodedRequest,
    pub points: u64,
    pub batches: usize,
}

/// What is left when the sender stops: kept on disk, or lost with the process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Leftover {
    pub batches: u64,
    pub points: u64,
    pub bytes: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    points: u64,
    bytes: u64,
    /// The encoded request in memory; `None` when it lives on disk only. Encoded, so that
    /// `queue_size_bytes` bounds the memory an in-memory queue takes.
    encoded: Option<Bytes>,
}

#[derive(Debug)]
struct State {
    entries: VecDeque<Entry>,
    bytes: u64,
    /// The first `in_flight` entries are being sent: never evicted, removed by `finish`.
    in_flight: usize,
    next_seq: u64,
    store: Option<DiskStore>,
    /// Batches and points dropped since the queue became full, for one log line per episode.
    overflow: Option<(u64, u64)>,
    /// The configured disk cannot be used: everything is in memory (`store` is `None`) until a
    /// retry succeeds.
    fault: Option<Fault>,
    /// Whether the store was open at some point of this run: what it held is then in `entries`
    /// already, and what a reopened file holds beyond them is stale.
    opened_once: bool,
}

/// Queue totals across exporters, for the telemetry gauges, and per exporter (its signals'
/// queues added up) for the status API.
#[derive(Debug)]
pub struct QueueGauges {
    slots: Mutex<Vec<(u64, u64, Arc<ExporterStats>)>>,
    telemetry: Arc<Telemetry>,
}

impl QueueGauges {
    pub fn new(telemetry: Arc<Telemetry>) -> Arc<Self> {
        Arc::new(QueueGauges {
            slots: Mutex::new(Vec::new()),
            telemetry,
        })
    }

    fn register(&self, exporter: Arc<ExporterStats>) -> usize {
        let mut slots = lock(&self.slots);
        slots.push((0, 0, exporter));
        slots.len() - 1
    }

    fn set(&self, slot: usize, batches: u64, bytes: u64) {
        let mut slots = lock(&self.slots);
        let Some(s) = slots.get_mut(slot) else {
            return;
        };
        (s.0, s.1) = (batches, bytes);
        let exporter = Arc::clone(&s.2);
        let (b, n) = slots
            .iter()
            .fold((0, 0), |(b, n), (sb, sn, _)| (b + sb, n + sn));
        self.telemetry.export.set_queue(b, n);
        let (b, n) = slots
            .iter()
            .filter(|(_, _, e)| Arc::ptr_eq(e, &exporter))
            .fold((0, 0), |(b, n), (sb, sn, _)| (b + sb, n + sn));
        exporter.counters.set_queue(b, n);
    }
}

/// The sequence numbers of the entries that live on disk.
fn disk_seqs<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<u64> {
    entries
        .filter(|e| e.encoded.is_none())
        .map(|e| e.seq)
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
pub struct SendingQueue {
    /// For messages: the exporter's key, with ` (logs)` for its logs queue.
    exporter: String,
    signal: Signal,
    /// The storage directory and the exporter's key, for a persistent queue.
    storage: Option<(PathBuf, String)>,
    max_batches: u64,
    max_bytes: u64,
    state: Mutex<State>,
    pushed: Notify,
    gauges: Arc<QueueGauges>,
    slot: usize,
    /// The exporter's counters and the totals.
    recorder: ExportRecorder,
}

impl SendingQueue {
    /// [`SendingQueue::open_counted`] for an exporter of no pipeline: its own counters are
    /// kept nowhere, the totals in `telemetry` (the queue and sender tests).
    #[cfg(test)]
    pub fn open(
        exporter: &str,
        signal: Signal,
        settings: &QueueSettings,
        gauges: Arc<QueueGauges>,
        telemetry: Arc<Telemetry>,
    ) -> Result<SendingQueue, (PathBuf, String)> {
        let recorder = ExportRecorder::new(telemetry, ExporterStats::detached());
        SendingQueue::open_counted(exporter, signal, settings, gauges, recorder)
    }

    /// An in-memory queue, or the exporter's persistent one for `signal` under
    /// `settings.storage` with what a previous run left in it. Drops and the queue's size are
    /// counted by `recorder`: in the exporter's own counters and in the totals.
    pub fn open_counted(
        exporter: &str,
        signal: Signal,
        settings: &QueueSettings,
        gauges: Arc<QueueGauges>,
        recorder: ExportRecorder,
    ) -> Result<SendingQueue, (PathBuf, String)> {
        // Disabled: room for the batch being sent only; what arrives meanwhile is dropped.
        let (max_batches, max_bytes) = if settings.enabled {
            (settings.max_batches.max(1), settings.max_bytes)
        } else {
            (1, u64::MAX)
        };
        let mut state = State {
            entries: VecDeque::new(),
            bytes: 0,
            in_flight: 0,
            next_seq: 0,
            store: None,
            overflow: None,
            fault: None,
            opened_once: false,
        };
        let name = display_name(exporter, signal);
        let what = items(signal);
        let storage = match (settings.enabled, &settings.storage) {
            (true, Some(storage)) => Some(storage.clone()),
            _ => None,
        };
        let opened = storage
            .as_ref()
            .map(|storage| DiskStore::open(storage, exporter, signal));
        match opened {
            None => {}
            Some(Err(OpenFailure::InUse(reason))) => {
                return Err((storage.unwrap_or_default(), reason));
            }
            Some(Err(OpenFailure::Unavailable(reason))) => {
                state.fault = Some(Fault::at_start(&name, &reason));
            }
            Some(Ok((store, found))) => {
                for b in &found {
                    state.bytes += b.bytes;
                    state.entries.push_back(Entry {
                        seq: b.seq,
                        points: b.points,
                        bytes: b.bytes,
                        encoded: None,
                    });
                }
                state.next_seq = found.last().map_or(0, |b| b.seq + 1);
                if !found.is_empty() {
                    tracing::info!(
                        exporter = name,
                        file = %store.file().display(),
                        batches = found.len(),
                        points = found.iter().map(|b| b.points).sum::<u64>(),
                        "the persistent sending queue holds batches from a previous run ({what}); \
                         sending them oldest first"
                    );
                }
                state.store = Some(store);
                state.opened_once = true;
            }
        }
        let slot = gauges.register(Arc::clone(recorder.own()));
        let queue = SendingQueue {
            exporter: name,
            signal,
            storage: storage.map(|s| (s, exporter.to_string())),
            max_batches,
            max_bytes,
            state: Mutex::new(state),
            pushed: Notify::new(),
            gauges,
            slot,
            recorder,
        };
        // Limits lowered since the last run: the oldest go first, as on any overflow.
        let mut state = queue.lock();
        queue.trim(&mut state);
        queue.publish(&state);
        drop(state);
        Ok(queue)
    }

    /// Drops the oldest idle batches while the queue is over its limits (lowered since the
    /// batches were written), from disk too.
    fn trim(&self, state: &mut State) {
        let evict = self.evictions(state, 0).unwrap_or(0);
        let evicted = disk_seqs(state.entries.iter().skip(state.in_flight).take(evict));
        if let Some(store) = &state.store {
            if let Err(e) = store.commit(None, &evicted) {
                let reason = format!("{}: {e}", store.file().display());
                self.disk_failed(state, reason);
            }
        }
        self.evict(state, evict);
    }

    /// The exporter's key, with ` (logs)` for a logs queue: how messages name it.
    pub fn name(&self) -> &str {
        &self.exporter
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// Whether the queue is configured on disk (it may be in memory for now, the disk failing).
    pub fn is_persistent(&self) -> bool {
        self.storage.is_some()
    }

    /// The queue file, while the queue is on disk.
    pub fn file(&self) -> Option<PathBuf> {
        self.lock().store.as_ref().map(|s| s.file().to_path_buf())
    }

    pub fn limits(&self) -> (u64, u64) {
        (self.max_batches, self.max_bytes)
    }

    /// Where this queue's exporter counts (its own stats and the totals).
    pub fn recorder(&self) -> &ExportRecorder {
        &self.recorder
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Adds a batch, evicting the oldest batches not being sent when it would not fit. Never waits
    /// for the backend; on disk it waits for the write.
    pub fn push(&self, request: EncodedRequest) {
        let points = request.points();
        let encoded = request.bytes().clone();
        let bytes = encoded.len() as u64;
        let mut state = self.lock();
        self.check_disk(&mut state);
        let Some(evict) = self.evictions(&state, bytes) else {
            drop(state);
            self.recorder.add_dropped(points);
            tracing::warn!(
                exporter = %self.exporter,
                points,
                "sending queue full with batches being sent: {points} new {} dropped",
                items(self.signal)
            );
            return;
        };
        let seq = state.next_seq;
        state.next_seq += 1;
        let evicted = disk_seqs(state.entries.iter().skip(state.in_flight).take(evict));
        // One commit adds the batch and removes the evicted ones. If it fails, the queue goes
        // to memory, this batch included, until the disk can be used again.
        let written = state.store.as_ref().map(|store| {
            store
                .commit(Some((seq, points, &encoded)), &evicted)
                .map_err(|e| format!("{}: {e}", store.file().display()))
        });
        let encoded = match written {
            None => Some(encoded),
            Some(Ok(())) => None,
            Some(Err(reason)) => {
                self.disk_failed(&mut state, reason);
                Some(encoded)
            }
        };
        self.evict(&mut state, evict);
        state.bytes += bytes;
        state.entries.push_back(Entry {
            seq,
            points,
            bytes,
            encoded,
        });
        self.publish(&state);
        drop(state);
        self.pushed.notify_one();
    }

    /// How many of the oldest idle entries must go for `incoming` more bytes to fit; `None` when
    /// even dropping them all would not make room.
    fn evictions(&self, state: &State, incoming: u64) -> Option<usize> {
        let extra = u64::from(incoming > 0);
        let mut batches = state.entries.len() as u64 + extra;
        let mut bytes = state.bytes + incoming;
        let mut evict = 0;
        let mut idle = state.entries.iter().skip(state.in_flight);
        while batches > self.max_batches || bytes > self.max_bytes {
            let entry = idle.next()?;
            batches -= 1;
            bytes -= entry.bytes;
            evict += 1;
        }
        Some(evict)
    }

    /// Drops the `count` oldest idle entries from memory (their disk records are removed by the
    /// caller's write), counting and logging the loss once per episode of a full queue.
    fn evict(&self, state: &mut State, count: usize) {
        if count == 0 {
            if let Some((batches, points)) = state.overflow.take() {
                tracing::info!(
                    exporter = %self.exporter,
                    "the sending queue has room again; {batches} batches ({points} {}) were \
                     dropped while it was full",
                    items(self.signal)
                );
            }
            return;
        }
        let at = state.in_flight;
        let removed: Vec<Entry> = state.entries.drain(at..at + count).collect();
        let points: u64 = removed.iter().map(|e| e.points).sum();
        state.bytes -= removed.iter().map(|e| e.bytes).sum::<u64>();
        self.recorder.add_dropped(points);
        let total = state.overflow.get_or_insert((0, 0));
        if total.0 == 0 {
            tracing::warn!(
                exporter = %self.exporter,
                max_batches = self.max_batches,
                max_bytes = self.max_bytes,
                "sending queue full: dropping the oldest batches to make room (the backend is \
                 down or too slow)"
            );
        }
        total.0 += removed.len() as u64;
        total.1 += points;
    }

    fn publish(&self, state: &State) {
        self.gauges
            .set(self.slot, state.entries.len() as u64, state.bytes);
    }

    /// Waits until the queue has something to send (or the waiter is woken to re-check).
    pub async fn pushed(&self) {
        self.pushed.notified().await;
    }

    /// Takes the oldest batches, as many as fit in `max_bytes` together (at least one), and
    /// marks them in flight; `None` when the queue is empty. Only one taker at a time.
    pub fn take(&self, max_bytes: u64) -> Option<Taken> {
        let mut state = self.lock();
        let mut count = 0;
        let mut size = 0;
        for entry in &state.entries {
            if count > 0 && size + entry.bytes > max_bytes {
                break;
            }
            count += 1;
            size += entry.bytes;
        }
        if count == 0 {
            return None;
        }
        let on_disk = disk_seqs(state.entries.iter().take(count));
        let mut read = match &state.store {
            Some(store) if !on_disk.is_empty() => match store.read(&on_disk) {
                Ok(bytes) => bytes.into_iter(),
                Err(e) => {
                    tracing::error!(
                        exporter = %self.exporter,
                        "cannot read the persistent sending queue: {e}; retrying later"
                    );
                    return None;
                }
            },
            _ => Vec::new().into_iter(),
        };
        let mut requests = Vec::with_capacity(count);
        let mut points = 0;
        let mut unreadable_points = 0;
        for entry in state.entries.iter().take(count) {
            let request = match &entry.encoded {
                Some(encoded) => Some(encoded.clone()),
                // What comes back from disk is checked: a record that does not decode is
                // dropped and counted here, rather than refused by the backend later.
                None => read
                    .next()
                    .flatten()
                    .filter(|bytes| decodes_as(self.signal, bytes))
                    .map(Bytes::from),
            };
            match request {
                Some(bytes) => {
                    points += entry.points;
                    requests.push(EncodedRequest::from_encoded(bytes, entry.points));
                }
                None => unreadable_points += entry.points,
            }
        }
        if unreadable_points > 0 {
            self.recorder.add_dropped(unreadable_points);
            tracing::error!(
                exporter = %self.exporter,
                "a batch in the persistent sending queue does not decode: {unreadable_points} \
                 {} dropped",
                items(self.signal)
            );
        }
        state.in_flight = count;
        Some(Taken {
            request: EncodedRequest::concat(requests),
            points,
            batches: count,
        })
    }

    /// Removes what was taken: sent, or given up on (counted by the caller).
    pub fn finish(&self, taken: &Taken) {
        let mut state = self.lock();
        let count = taken.batches.min(state.in_flight);
        let removed: Vec<Entry> = state.entries.drain(..count).collect();
        state.in_flight = 0;
        state.bytes -= removed.iter().map(|e| e.bytes).sum::<u64>();
        let seqs = disk_seqs(removed.iter());
        let now_empty = state.entries.is_empty();
        let mut failed = None;
        if let Some(store) = state.store.as_mut() {
            if !seqs.is_empty() {
                if let Err(e) = store.commit(None, &seqs) {
                    // They are sent; the rest goes to memory, and the file is brought in line
                    // with it when the disk works again.
                    failed = Some(format!("{}: {e}", store.file().display()));
                }
            }
            if now_empty && failed.is_none() {
                store.compact_if_large();
            }
        }
        if let Some(reason) = failed {
            self.disk_failed(&mut state, reason);
        }
        self.publish(&state);
    }

    /// Puts back what was taken but not sent (stopping): it stays queued.
    pub fn release(&self) {
        self.lock().in_flight = 0;
    }

    /// What the queue still holds.
    pub fn leftover(&self) -> Leftover {
        let state = self.lock();
        Leftover {
            batches: state.entries.len() as u64,
            points: state.entries.iter().map(|e| e.points).sum(),
            bytes: state.bytes,
        }
    }

    /// Points held in memory only (all of them without storage; those a failed disk write left
    /// behind otherwise): what a stop loses.
    pub fn memory_only(&self) -> Leftover {
        let state = self.lock();
        let mut out = Leftover::default();
        for e in state.entries.iter().filter(|e| e.encoded.is_some()) {
            out.batches += 1;
            out.points += e.points;
            out.bytes += e.bytes;
        }
        out
    }
}

/// Runs a queue operation on the blocking pool when it touches the disk.
impl SendingQueue {
    pub async fn push_async(self: &Arc<Self>, request: EncodedRequest) {
        if !self.is_persistent() {
            return self.push(request);
        }
        let queue = Arc::clone(self);
        if let Err(e) = tokio::task::spawn_blocking(move || queue.push(request)).await {
            tracing::error!(exporter = %self.exporter, "queueing a batch failed: {e}");
        }
    }

    pub async fn take_async(self: &Arc<Self>, max_bytes: u64) -> Option<Taken> {
        if !self.is_persistent() {
            return self.take(max_bytes);
        }
        let queue = Arc::clone(self);
        tokio::task::spawn_blocking(move || queue.take(max_bytes))
            .await
            .ok()
            .flatten()
    }

    pub async fn finish_async(self: &Arc<Self>, taken: Taken) {
        if !self.is_persistent() {
            return self.finish(&taken);
        }
        let queue = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || queue.finish(&taken)).await;
    }
}

/// How messages name the queue of an exporter's signal: the key alone for metrics (as before
/// logs existed), `otlp (logs)` for logs.
fn display_name(exporter: &str, signal: Signal) -> String {
    match signal {
        Signal::Metrics => exporter.to_string(),
        Signal::Logs => format!("{exporter} (logs)"),
    }
}

/// Where an exporter's persistent queue of one signal lives under a storage directory.
#[cfg(test)]
fn queue_file(storage: &std::path::Path, exporter: &str, signal: Signal) -> PathBuf {
    disk::queue_dir(storage, exporter, signal).join(disk::FILE_NAME)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };

    use super::*;

    /// A request with `points` points, tagged by name so order can be checked.
    fn request(name: &str, points: usize) -> EncodedRequest {
        EncodedRequest::from_message(&message(name, points))
    }

    fn message(name: &str, points: usize) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); points],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn names(request: &EncodedRequest) -> Vec<String> {
        request
            .decode()
            .unwrap()
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .map(|m| m.name.clone())
            .collect()
    }

    fn open(settings: &QueueSettings) -> (SendingQueue, Arc<Telemetry>) {
        let telemetry = Arc::new(Telemetry::default());
        let queue = SendingQueue::open(
            "otlp/test",
            Signal::Metrics,
            settings,
            QueueGauges::new(telemetry.clone()),
            telemetry.clone(),
        )
        .unwrap();
        (queue, telemetry)
    }

    fn dropped(t: &Telemetry) -> u64 {
        t.export.dropped_points.load(Ordering::Relaxed)
    }

    fn gauges(t: &Telemetry) -> (u64, u64) {
        (
            t.export.queue_batches.load(Ordering::Relaxed),
            t.export.queue_bytes.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn full_by_batches_drops_the_oldest_idle_ones() {
        let (queue, telemetry) = open(&QueueSettings {
            max_batches: 3,
            ..QueueSettings::default()
        });
        for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            queue.push(request(name, i + 1));
        }
        // a (1 point) and b (2) went.
        assert_eq!(dropped(&telemetry), 3);
        let taken = queue.take(u64::MAX).unwrap();
        assert_eq!(names(&taken.request), ["c", "d", "e"]);
        assert_eq!((taken.points, taken.batches), (12, 3));
        // Being sent: never evicted; the newcomer has no room and is dropped.
        queue.push(request("f", 6));
        assert_eq!(dropped(&telemetry), 9);
        queue.finish(&taken);
        assert_eq!(queue.leftover(), Leftover::default());
        assert_eq!(gauges(&telemetry), (0, 0));
    }

    #[test]
    fn full_by_bytes_drops_the_oldest() {
        let one = request("a", 10).len();
        let (queue, telemetry) = open(&QueueSettings {
            max_bytes: one * 2,
            ..QueueSettings::default()
        });
        queue.push(request("a", 10));
        queue.push(request("b", 10));
        assert_eq!(gauges(&telemetry), (2, one * 2));
        queue.push(request("c", 10));
        assert_eq!(dropped(&telemetry), 10);
        let taken = queue.take(u64::MAX).unwrap();
        assert_eq!(names(&taken.request), ["b", "c"]);
    }

    #[test]
    fn take_merges_oldest_first_up_to_the_request_size() {
        let (queue, _) = open(&QueueSettings::default());
        let one = request("a", 10).len();
        for name in ["a", "b", "c"] {
            queue.push(request(name, 10));
        }
        let taken = queue.take(one * 2).unwrap();
        assert_eq!(names(&taken.request), ["a", "b"]);
        queue.finish(&taken);
        // At least one, even when it alone is over the limit.
        let taken = queue.take(1).unwrap();
        assert_eq!(names(&taken.request), ["c"]);
        queue.release();
        assert_eq!(queue.leftover().batches, 1);
        assert!(queue.take(1).is_some(), "a released batch is taken again");
    }

    #[test]
    fn disabled_holds_only_the_batch_being_sent() {
        let (queue, telemetry) = open(&QueueSettings {
            enabled: false,
            storage: Some("/nonexistent/never/created".into()),
            ..QueueSettings::default()
        });
        assert!(!queue.is_persistent());
        queue.push(request("a", 1));
        let taken = queue.take(u64::MAX).unwrap();
        queue.push(request("b", 2));
        assert_eq!(dropped(&telemetry), 2);
        queue.finish(&taken);
        assert!(queue.take(u64::MAX).is_none());
    }

    #[test]
    fn persistent_batches_outlive_the_queue_and_lower_limits_trim_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let settings = QueueSettings {
            storage: Some(dir.path().to_path_buf()),
            ..QueueSettings::default()
        };
        {
            let (queue, _) = open(&settings);
            assert!(queue.is_persistent());
            for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
                queue.push(request(name, i + 1));
            }
            // Sent but the process dies before the removal: sent again (at least once).
            let _ = queue.take(1).unwrap();
            assert_eq!(queue.memory_only(), Leftover::default());
        }
        {
            let (queue, telemetry) = open(&settings);
            assert_eq!(gauges(&telemetry).0, 4);
            let taken = queue.take(1).unwrap();
            assert_eq!(names(&taken.request), ["a"]);
            queue.finish(&taken);
        }
        let (queue, telemetry) = open(&QueueSettings {
            max_batches: 2,
            ..settings
        });
        // b went to make room: c and d are left, oldest first.
        assert_eq!(dropped(&telemetry), 2);
        let taken = queue.take(u64::MAX).unwrap();
        assert_eq!(names(&taken.request), ["c", "d"]);
        assert_eq!(taken.points, 7);
        assert_eq!(
            queue.file(),
            Some(queue_file(dir.path(), "otlp/test", Signal::Metrics)),
            "one file per exporter, under its name"
        );
    }

    fn logs_message(name: &str, records: usize) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            event_name: name.into(),
                            time_unix_nano: 1,
                            ..Default::default()
                        };
                        records
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn an_exporter_keeps_its_logs_in_a_queue_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let settings = QueueSettings {
            storage: Some(dir.path().to_path_buf()),
            ..QueueSettings::default()
        };
        let telemetry = Arc::new(Telemetry::default());
        let gauges = QueueGauges::new(telemetry.clone());
        let open_signal = |signal| {
            SendingQueue::open("otlp", signal, &settings, gauges.clone(), telemetry.clone())
                .unwrap()
        };
        {
            // Both open at once: two files, neither locking the other.
            let metrics = open_signal(Signal::Metrics);
            let logs = open_signal(Signal::Logs);
            metrics.push(request("m", 2));
            logs.push(EncodedRequest::from_logs(&logs_message("l", 3)));
            assert_eq!(logs.name(), "otlp (logs)");
            assert_eq!(
                logs.file(),
                Some(dir.path().join("otlp").join("logs").join("queue.redb"))
            );
            assert_eq!(
                metrics.file(),
                Some(dir.path().join("otlp").join("queue.redb"))
            );
        }
        let logs = open_signal(Signal::Logs);
        let taken = logs.take(u64::MAX).unwrap();
        assert_eq!(taken.points, 3, "log records are counted");
        assert_eq!(taken.request.decode_logs().unwrap(), logs_message("l", 3));
        let metrics = open_signal(Signal::Metrics);
        assert_eq!(names(&metrics.take(u64::MAX).unwrap().request), ["m"]);
    }

    #[test]
    fn a_record_of_the_wrong_signal_on_disk_is_dropped_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let settings = QueueSettings {
            storage: Some(dir.path().to_path_buf()),
            ..QueueSettings::default()
        };
        let (telemetry, gauges) = {
            let t = Arc::new(Telemetry::default());
            (t.clone(), QueueGauges::new(t))
        };
        {
            let store = SendingQueue::open(
                "otlp",
                Signal::Logs,
                &settings,
                gauges.clone(),
                telemetry.clone(),
            )
            .unwrap();
            // A metrics batch where logs belong (only a damaged or foreign file holds one): a
            // metric's name is field 1, where a log record has a fixed64.
            store.push(request("m", 2));
        }
        let logs =
            SendingQueue::open("otlp", Signal::Logs, &settings, gauges, telemetry.clone()).unwrap();
        let taken = logs.take(u64::MAX).unwrap();
        assert!(taken.request.is_empty());
        assert_eq!(dropped(&telemetry), 2);
    }

    /// A storage directory that cannot be created: the queue starts in memory, and moves to
    /// disk once it can be.
    #[test]
    fn a_storage_that_cannot_be_opened_keeps_the_queue_in_memory_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("queue");
        // A file where the directory belongs: `Not a directory`, as a read-only disk would fail.
        std::fs::write(&storage, b"").unwrap();
        let settings = QueueSettings {
            storage: Some(storage.clone()),
            ..QueueSettings::default()
        };
        let (queue, telemetry) = open(&settings);
        assert!(queue.is_persistent() && queue.file().is_none());
        queue.push(request("a", 1));
        queue.push(request("b", 2));
        assert_eq!(queue.memory_only().points, 3);

        std::fs::remove_file(&storage).unwrap();
        queue.push(request("c", 4));
        assert!(queue.file().is_none(), "not retried before it is due");
        queue.retry_now();
        queue.push(request("d", 8));
        assert_eq!(
            queue.file(),
            Some(queue_file(&storage, "otlp/test", Signal::Metrics))
        );
        assert_eq!(queue.memory_only(), Leftover::default(), "all on disk");
        drop(queue);
        let (queue, _) = open(&settings);
        assert_eq!(
            names(&queue.take(u64::MAX).unwrap().request),
            ["a", "b", "c", "d"]
        );
        assert_eq!(dropped(&telemetry), 0);
    }

    /// What a previous run left on a disk that could not be opened at start is sent first once
    /// it can.
    #[test]
    fn batches_of_a_previous_run_on_a_disk_unusable_at_start_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("queue");
        let settings = QueueSettings {
            storage: Some(storage.clone()),
            ..QueueSettings::default()
        };
        {
            let (queue, _) = open(&settings);
            queue.push(request("old1", 1));
            queue.push(request("old2", 1));
        }
        let moved = dir.path().join("moved");
        std::fs::rename(&storage, &moved).unwrap();
        std::fs::write(&storage, b"").unwrap();
        let (queue, _) = open(&settings);
        queue.push(request("new1", 1));
        std::fs::remove_file(&storage).unwrap();
        std::fs::rename(&moved, &storage).unwrap();
        queue.retry_now();
        queue.push(request("new2", 1));
        assert!(queue.file().is_some());
        assert_eq!(queue.leftover().batches, 4);
        let taken = queue.take(u64::MAX).unwrap();
        assert_eq!(names(&taken.request), ["old1", "old2", "new1", "new2"]);
        queue.finish(&taken);
        drop(queue);
        let (queue, _) = open(&settings);
        assert!(
            queue.take(u64::MAX).is_none(),
            "all removed from disk once sent"
        );
    }

    /// The directory removed under a running queue: what it held is kept, and the directory is
    /// recreated with it at the next push.
    #[test]
    fn a_removed_directory_is_recreated_with_what_the_queue_held() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("queue");
        let settings = QueueSettings {
            storage: Some(storage.clone()),
            ..QueueSettings::default()
        };
        let (queue, telemetry) = open(&settings);
        queue.push(request("a", 1));
        queue.push(request("b", 2));
        // One being sent while it happens.
        let taken = queue.take(1).unwrap();
        std::fs::remove_dir_all(&storage).unwrap();
        queue.push(request("c", 4));
        let file = queue_file(&storage, "otlp/test", Signal::Metrics);
        assert!(file.is_file(), "recreated");
        assert_eq!(queue.file(), Some(file));
        assert_eq!(queue.memory_only(), Leftover::default(), "all on disk");
        drop(taken);
        drop(queue);
        // The one being sent was not acknowledged: still queued.
        let (queue, _) = open(&settings);
        assert_eq!(
            names(&queue.take(u64::MAX).unwrap().request),
            ["a", "b", "c"]
        );
        assert_eq!(dropped(&telemetry), 0);
    }

    #[test]
    fn a_second_queue_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = QueueSettings {
            storage: Some(dir.path().to_path_buf()),
            ..QueueSettings::default()
        };
        let (_held, _) = open(&settings);
        let telemetry = Arc::new(Telemetry::default());
        let err = SendingQueue::open(
            "otlp/test",
            Signal::Metrics,
            &settings,
            QueueGauges::new(telemetry.clone()),
            telemetry,
        )
        .unwrap_err();
        assert!(err.1.contains("in use by another process"), "{err:?}");
    }
}
