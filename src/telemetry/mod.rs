//! The receiver's own health: counters written by the pollers and the export pipeline, read by
//! the self-telemetry exporter and the health endpoint.
//!
//! Everything here is cheap to update from hot paths (atomics, one short lock per poll).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Shared by every part of one running receiver.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub export: ExportCounters,
    pub polls: PollStats,
}

/// What happened to the data on its way out. Points are data points as counted in OTLP.
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// Points a backend accepted.
    pub sent_points: AtomicU64,
    /// Export attempts that failed with a retryable error and were tried again.
    pub retried_requests: AtomicU64,
    /// Points given up on: non-retryable errors, partial-success rejections, retries past
    /// their time limit, queue overflow.
    pub dropped_points: AtomicU64,
    /// Batches and bytes waiting in the sending queue, and its limits.
    pub queue_batches: AtomicU64,
    pub queue_bytes: AtomicU64,
    pub queue_capacity_batches: AtomicU64,
    pub queue_capacity_bytes: AtomicU64,
    /// Unix nanoseconds of the last export a backend accepted (0: none yet).
    pub last_success_unix_nano: AtomicU64,
    /// Unix nanoseconds since which every export has failed (0: the last one succeeded).
    pub failing_since_unix_nano: AtomicU64,
}

impl ExportCounters {
    pub fn add_sent(&self, points: u64) {
        self.sent_points.fetch_add(points, Ordering::Relaxed);
    }

    pub fn add_retried(&self) {
        self.retried_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_dropped(&self, points: u64) {
        self.dropped_points.fetch_add(points, Ordering::Relaxed);
    }

    pub fn set_queue(&self, batches: u64, bytes: u64) {
        self.queue_batches.store(batches, Ordering::Relaxed);
        self.queue_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn set_queue_capacity(&self, batches: u64, bytes: u64) {
        self.queue_capacity_batches
            .store(batches, Ordering::Relaxed);
        self.queue_capacity_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Records the outcome of one export attempt at `now_unix_nano`.
    pub fn record_attempt(&self, succeeded: bool, now_unix_nano: u64) {
        if succeeded {
            self.last_success_unix_nano
                .store(now_unix_nano, Ordering::Relaxed);
            self.failing_since_unix_nano.store(0, Ordering::Relaxed);
        } else {
            let _ = self.failing_since_unix_nano.compare_exchange(
                0,
                now_unix_nano,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

/// Per-target poll results, keyed by target name (a bounded set: the configured targets).
#[derive(Debug, Default)]
pub struct PollStats {
    by_target: Mutex<BTreeMap<String, TargetPollStats>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TargetPollStats {
    pub polls: u64,
    pub last_duration: Duration,
    /// Failed polls by low-cardinality error type (`PollError::error_type`).
    pub errors: BTreeMap<&'static str, u64>,
}

impl PollStats {
    pub fn record(&self, target: &str, duration: Duration, error_type: Option<&'static str>) {
        let Ok(mut map) = self.by_target.lock() else {
            return;
        };
        let stats = match map.get_mut(target) {
            Some(stats) => stats,
            None => map.entry(target.to_owned()).or_default(),
        };
        stats.polls += 1;
        stats.last_duration = duration;
        if let Some(error_type) = error_type {
            *stats.errors.entry(error_type).or_default() += 1;
        }
    }

    /// Drops a target removed by a reload, so its series stop.
    pub fn forget(&self, target: &str) {
        if let Ok(mut map) = self.by_target.lock() {
            map.remove(target);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, TargetPollStats> {
        self.by_target
            .lock()
            .map(|map| map.clone())
            .unwrap_or_default()
    }
}
