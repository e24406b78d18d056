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
//! - [`status`]: what the status API adds: the receiver's start, config source and reloads,
//!   and each exporter's own counters beside the totals.
//! - [`latest`]: the latest encoded metrics of every target, for `GET /metrics`.
pub mod latest;
pub mod ratelimit;
pub mod self_metrics;
pub mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::Histogram;
use opentelemetry::KeyValue;

pub use latest::LatestMetrics;
pub use ratelimit::RateLimitedLog;
pub use status::{ExportRecorder, ExporterRegistry, ExporterStats, ReceiverInfo};

use crate::clock::unix_nanos_now;
use crate::schema::definitions as defs;

/// Shared by every part of one running receiver. The health endpoint reads it as it is; the
/// self-telemetry instruments observe it (see [`self_metrics`]), all but the poll duration
/// histogram, which [`PollStats::record`] feeds.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub export: ExportCounters,
    pub polls: PollStats,
    /// Each exporter's own counters, registered by the export pipeline (the status API).
    pub exporters: ExporterRegistry,
    /// Start time, config source and reloads (the status API).
    pub receiver: ReceiverInfo,
    /// Each target's latest metrics, recorded by the pipeline once `/metrics` is asked for.
    pub latest: Arc<LatestMetrics>,
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
    /// Where the target is polled, as displayed (never with credentials); empty until
    /// [`PollStats::register_target`].
    pub endpoint: String,
    /// Unix nanoseconds when the last poll started (0: none yet).
    pub last_poll_start_unix_nano: u64,
    /// The last poll's failure message, worded as Datadog's check words it; `None` when it
    /// succeeded or none happened yet.
    pub last_message: Option<String>,
    /// The processes of the last poll by mapped status; `None` unless it succeeded.
    pub processes: Option<ProcessCounts>,
    /// Unix nanoseconds when the next poll is due to connect (0: unknown).
    pub next_poll_unix_nano: u64,
    /// Failed polls in a row, up to the last one.
    pub consecutive_failures: u64,
}

/// A poll's monitored processes by mapped status (Datadog's up, down, unknown).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProcessCounts {
    pub up: u64,
    pub down: u64,
    pub unknown: u64,
}

/// Everything one poll tells the status, recorded under one lock by [`PollStats::record_poll`].
#[derive(Debug, Clone, Copy)]
pub struct PollRecord<'a> {
    pub started_unix_nano: u64,
    /// The XML-RPC exchange's duration (what the poll duration histogram records).
    pub duration: Duration,
    /// `PollError::error_type` of a failed poll.
    pub error_type: Option<&'static str>,
    /// The Datadog-worded message of a failed poll.
    pub message: Option<&'a str>,
    /// The processes of a successful poll.
    pub processes: Option<ProcessCounts>,
    pub next_poll_unix_nano: u64,
}

impl PollStats {
    /// Records a poll's duration and result; what [`PollStats::record_poll`] records, without
    /// the details the status API shows.
    pub fn record(&self, target: &str, duration: Duration, error_type: Option<&'static str>) {
        let now = unix_nanos_now();
        self.record_poll(
            target,
            PollRecord {
                started_unix_nano: now.saturating_sub(duration.as_nanos() as u64),
                duration,
                error_type,
                message: None,
                processes: None,
                next_poll_unix_nano: 0,
            },
        );
    }

    /// Records one poll: the duration histogram, the counts, and the last result with its
    /// message, process counts and next poll, in one short lock. The message is copied only
    /// when it differs from the last one.
    pub fn record_poll(&self, target: &str, poll: PollRecord<'_>) {
        let PollRecord {
            started_unix_nano,
            duration,
            error_type,
            message,
            processes,
            next_poll_unix_nano,
        } = poll;
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
            stats.consecutive_failures += 1;
        } else {
            stats.consecutive_failures = 0;
        }
        stats.last_poll_start_unix_nano = started_unix_nano;
        if stats.last_message.as_deref() != message {
            stats.last_message = message.map(str::to_owned);
        }
        stats.processes = processes;
        stats.next_poll_unix_nano = next_poll_unix_nano;
    }

    /// A backed-off interval that did not connect: only when the next attempt is due changes.
    pub fn record_skipped(&self, target: &str, next_poll_unix_nano: u64) {
        if let Ok(mut map) = self.by_target.lock() {
            if let Some(stats) = map.get_mut(target) {
                stats.next_poll_unix_nano = next_poll_unix_nano;
            }
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

    /// [`PollStats::register`], with the endpoint as displayed (a reload that changed the
    /// target's endpoint calls it again, and the new one is shown).
    pub fn register_target(&self, target: &str, endpoint: &str) {
        if let Ok(mut map) = self.by_target.lock() {
            let stats = map.entry(target.to_owned()).or_default();
            if stats.endpoint != endpoint {
                stats.endpoint = endpoint.to_owned();
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
    fn a_poll_record_keeps_what_the_status_shows() {
        let stats = PollStats::default();
        stats.register_target("web", "http://127.0.0.1:9001");
        let failed = PollRecord {
            started_unix_nano: 100,
            duration: Duration::from_millis(7),
            error_type: Some("connect"),
            message: Some("Cannot connect to http://127.0.0.1:9001."),
            processes: None,
            next_poll_unix_nano: 200,
        };
        stats.record_poll("web", failed);
        stats.record_poll(
            "web",
            PollRecord {
                started_unix_nano: 200,
                next_poll_unix_nano: 400,
                ..failed
            },
        );
        let web = stats.snapshot().remove("web").unwrap_or_default();
        assert_eq!(web.endpoint, "http://127.0.0.1:9001");
        assert_eq!(web.consecutive_failures, 2);
        assert_eq!(web.last_poll_start_unix_nano, 200);
        assert_eq!(
            web.last_message.as_deref(),
            Some("Cannot connect to http://127.0.0.1:9001.")
        );
        assert_eq!(web.processes, None);
        stats.record_skipped("web", 600);
        stats.record_skipped("gone", 600);
        assert_eq!(stats.snapshot()["web"].next_poll_unix_nano, 600);
        assert!(!stats.snapshot().contains_key("gone"));

        let counts = ProcessCounts {
            up: 3,
            down: 1,
            unknown: 0,
        };
        stats.record_poll(
            "web",
            PollRecord {
                started_unix_nano: 700,
                duration: Duration::from_millis(2),
                error_type: None,
                message: None,
                processes: Some(counts),
                next_poll_unix_nano: 800,
            },
        );
        let web = stats.snapshot().remove("web").unwrap_or_default();
        assert_eq!(web.consecutive_failures, 0);
        assert_eq!(web.last_message, None);
        assert_eq!(web.processes, Some(counts));
        assert_eq!(web.next_poll_unix_nano, 800);
        assert_eq!(web.polls, 3);
        assert_eq!(web.errors.get("connect"), Some(&2));
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
