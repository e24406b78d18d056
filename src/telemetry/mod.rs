//! The receiver's own health: counts and states written by the pollers and the export
//! pipeline, read by the health endpoint and, through OpenTelemetry instruments, by the
//! self-telemetry exporter.
//!
//! Everything here is cheap to update from hot paths (atomics, one short lock per poll).
//!
//! - [`self_metrics`]: the OpenTelemetry instruments, declared from the self-telemetry table of
//!   [`crate::schema::definitions`], the SDK's meter provider, its periodic reader and the
//!   exporter it drives, apart from the targets' data.
//! - [`ratelimit`]: named, rate-limited log events (`event="export_failed"`).
pub mod ratelimit;
pub mod self_metrics;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::Histogram;
use opentelemetry::KeyValue;

pub use ratelimit::RateLimitedLog;

use crate::clock::unix_nanos_now;
use crate::schema::definitions as defs;

/// Shared by every part of one running receiver. The health endpoint reads it as it is; the
/// self-telemetry instruments observe it (see [`self_metrics`]), all but the poll duration
/// histogram, which [`PollStats::record`] feeds.
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
    /// Polls of every target that started more than [`LATE_AFTER`] after their schedule.
    late: AtomicU64,
    /// `supervisord_receiver.poll.duration`, once self-telemetry is on.
    duration: OnceLock<Histogram<f64>>,
}

/// A poll that starts later than this after its scheduled time counts as late: the bound the
/// load harness holds a fleet to.
pub const LATE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TargetPollStats {
    pub polls: u64,
    pub last_duration: Duration,
    /// Failed polls by low-cardinality error type (`PollError::error_type`).
    pub errors: BTreeMap<&'static str, u64>,
    /// Unix nanoseconds when the last poll finished (0: none yet).
    pub last_poll_unix_nano: u64,
    /// The last poll's error type; `None` when it succeeded or none happened yet.
    pub last_error_type: Option<&'static str>,
}

impl PollStats {
    pub fn record(&self, target: &str, duration: Duration, error_type: Option<&'static str>) {
        if let Some(histogram) = self.duration.get() {
            histogram.record(
                duration.as_secs_f64(),
                &[KeyValue::new(
                    defs::SUPERVISOR_SERVER.key,
                    target.to_owned(),
                )],
            );
        }
        let Ok(mut map) = self.by_target.lock() else {
            return;
        };
        let stats = match map.get_mut(target) {
            Some(stats) => stats,
            None => map.entry(target.to_owned()).or_default(),
        };
        stats.polls += 1;
        stats.last_duration = duration;
        stats.last_poll_unix_nano = unix_nanos_now();
        stats.last_error_type = error_type;
        if let Some(error_type) = error_type {
            *stats.errors.entry(error_type).or_default() += 1;
        }
    }

    /// Counts a poll that started `lateness` after its scheduled time, if that is late.
    pub fn record_start(&self, lateness: Duration) {
        if lateness > LATE_AFTER {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Lists a configured target before its first poll, so the health status and the
    /// self-telemetry show it from the start.
    pub fn register(&self, target: &str) {
        if let Ok(mut map) = self.by_target.lock() {
            if !map.contains_key(target) {
                map.insert(target.to_owned(), TargetPollStats::default());
            }
        }
    }

    /// Drops a target removed by a reload, so its counter series stop (the poll duration
    /// histogram keeps its last state: see [`self_metrics`]).
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

    /// Calls `f` with every target's stats, in name order, under the lock: what an observable
    /// instrument reads at each collection, without copying a fleet's worth of maps.
    pub fn for_each(&self, mut f: impl FnMut(&str, &TargetPollStats)) {
        if let Ok(map) = self.by_target.lock() {
            for (name, stats) in map.iter() {
                f(name, stats);
            }
        }
    }

    /// Feeds the poll duration histogram from now on; a second one is ignored.
    pub(crate) fn set_duration_histogram(&self, histogram: Histogram<f64>) {
        let _ = self.duration.set(histogram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_polls_starting_over_a_second_late_count() {
        let stats = PollStats::default();
        stats.record_start(Duration::ZERO);
        stats.record_start(LATE_AFTER);
        assert_eq!(stats.late(), 0);
        stats.record_start(LATE_AFTER + Duration::from_millis(1));
        assert_eq!(stats.late(), 1);
    }

    #[test]
    fn polls_keep_the_last_result_and_count_errors_by_type() {
        let stats = PollStats::default();
        stats.register("web");
        let registered = stats.snapshot().remove("web").unwrap_or_default();
        assert_eq!(registered.polls, 0);
        assert_eq!(registered.last_poll_unix_nano, 0);

        stats.record("web", Duration::from_millis(3), Some("timeout"));
        stats.record("web", Duration::from_millis(4), Some("timeout"));
        stats.record("web", Duration::from_millis(5), None);
        let web = stats.snapshot().remove("web").unwrap_or_default();
        assert_eq!(web.polls, 3);
        assert_eq!(web.last_duration, Duration::from_millis(5));
        assert_eq!(web.last_error_type, None);
        assert_eq!(web.errors.get("timeout"), Some(&2));
        assert!(web.last_poll_unix_nano > 0);
        let mut seen = Vec::new();
        stats.for_each(|name, s| seen.push((name.to_string(), s.polls)));
        assert_eq!(seen, [("web".to_string(), 3)]);

        // Registering again keeps the counts; forgetting drops them.
        stats.register("web");
        assert_eq!(stats.snapshot().get("web").map(|s| s.polls), Some(3));
        stats.forget("web");
        assert!(stats.snapshot().is_empty());
    }

    #[test]
    fn failing_since_is_the_first_failure_after_a_success() {
        let export = ExportCounters::default();
        export.record_attempt(false, 10);
        export.record_attempt(false, 20);
        assert_eq!(export.failing_since_unix_nano.load(Ordering::Relaxed), 10);
        export.record_attempt(true, 30);
        assert_eq!(export.failing_since_unix_nano.load(Ordering::Relaxed), 0);
        assert_eq!(export.last_success_unix_nano.load(Ordering::Relaxed), 30);
    }
}
