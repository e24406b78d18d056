//! What the status API reports beyond the health counters: the receiver itself (start, config
//! source, reloads) and each exporter's own counters, beside the totals of
//! [`super::ExportCounters`].
//!
//! The export layer registers one [`ExporterStats`] per configured exporter when it builds the
//! pipeline and records into it and into the totals together ([`ExportRecorder`]); the totals
//! and the self-telemetry metrics read from them stay exactly as they were.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock::unix_nanos_now;
use crate::settings::{ConfigFormat, Signal};

use super::{ExportCounters, Telemetry};

/// The receiver as a whole: when it started, where its configuration came from, how often it
/// was reloaded.
#[derive(Debug)]
pub struct ReceiverInfo {
    /// Unix nanoseconds when the receiver's telemetry was created, i.e. at start.
    started_unix_nano: u64,
    /// `None` until the command line says (see [`ReceiverInfo::set_config_source`]).
    config_source: Mutex<Option<String>>,
    /// 0: not told; 1: native; 2: Datadog.
    config_format: AtomicU64,
    reloads: AtomicU64,
    last_reload_unix_nano: AtomicU64,
}

impl Default for ReceiverInfo {
    fn default() -> Self {
        ReceiverInfo {
            started_unix_nano: unix_nanos_now(),
            config_source: Mutex::new(None),
            config_format: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            last_reload_unix_nano: AtomicU64::new(0),
        }
    }
}

impl ReceiverInfo {
    pub fn started_unix_nano(&self) -> u64 {
        self.started_unix_nano
    }

    /// Where the configuration came from, as a person reads it: the `--config` path, or a
    /// description of where a configuration without a file was found.
    pub fn set_config_source(&self, source: impl Into<String>) {
        if let Ok(mut slot) = self.config_source.lock() {
            *slot = Some(source.into());
        }
    }

    pub fn config_source(&self) -> Option<String> {
        self.config_source.lock().ok().and_then(|s| s.clone())
    }

    pub fn set_config_format(&self, format: ConfigFormat) {
        let code = match format {
            ConfigFormat::Native => 1,
            ConfigFormat::Datadog => 2,
        };
        self.config_format.store(code, Ordering::Relaxed);
    }

    /// `native`, `datadog`, or `None` when not told.
    pub fn config_format(&self) -> Option<&'static str> {
        match self.config_format.load(Ordering::Relaxed) {
            1 => Some("native"),
            2 => Some("datadog"),
            _ => None,
        }
    }

    /// Counts a reload that was applied, at `now_unix_nano`.
    pub fn count_reload(&self, now_unix_nano: u64) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.last_reload_unix_nano
            .store(now_unix_nano, Ordering::Relaxed);
    }

    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// 0 when no reload was applied.
    pub fn last_reload_unix_nano(&self) -> u64 {
        self.last_reload_unix_nano.load(Ordering::Relaxed)
    }
}

/// One configured exporter's own counters: the same fields as the totals, for it alone.
#[derive(Debug, Default)]
pub struct ExporterStats {
    /// The exporter's key: `otlp`, `otlp/backend`, `debug`.
    pub name: String,
    /// The signals it carries, in [`Signal::ALL`] order.
    pub signals: Vec<Signal>,
    pub counters: ExportCounters,
}

impl ExporterStats {
    /// Stats that belong to no registry: for queues and senders built outside a pipeline
    /// (tests), so recording never needs an `Option`.
    pub fn detached() -> Arc<ExporterStats> {
        Arc::new(ExporterStats::default())
    }
}

/// Every exporter's stats, in the order the pipeline registered them (configuration order).
/// A bounded set, written once at start: the lock is taken only to register and to report.
#[derive(Debug, Default)]
pub struct ExporterRegistry {
    list: Mutex<Vec<Arc<ExporterStats>>>,
}

impl ExporterRegistry {
    pub fn register(&self, name: &str, signals: &[Signal]) -> Arc<ExporterStats> {
        let stats = Arc::new(ExporterStats {
            name: name.to_owned(),
            signals: signals.to_vec(),
            counters: ExportCounters::default(),
        });
        if let Ok(mut list) = self.list.lock() {
            list.push(Arc::clone(&stats));
        }
        stats
    }

    pub fn snapshot(&self) -> Vec<Arc<ExporterStats>> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Records into one exporter's counters and the receiver's totals at once, so the two cannot
/// drift apart. Cheap to clone (two `Arc`s).
#[derive(Debug, Clone)]
pub struct ExportRecorder {
    telemetry: Arc<Telemetry>,
    own: Arc<ExporterStats>,
}

impl ExportRecorder {
    pub fn new(telemetry: Arc<Telemetry>, own: Arc<ExporterStats>) -> Self {
        ExportRecorder { telemetry, own }
    }

    pub fn own(&self) -> &Arc<ExporterStats> {
        &self.own
    }

    fn both(&self, f: impl Fn(&ExportCounters)) {
        f(&self.telemetry.export);
        f(&self.own.counters);
    }

    pub fn add_sent(&self, points: u64) {
        self.both(|c| c.add_sent(points));
    }

    pub fn add_retried(&self) {
        self.both(ExportCounters::add_retried);
    }

    pub fn add_dropped(&self, points: u64) {
        self.both(|c| c.add_dropped(points));
    }

    pub fn record_attempt(&self, succeeded: bool, now_unix_nano: u64) {
        self.both(|c| c.record_attempt(succeeded, now_unix_nano));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorder_counts_in_its_exporter_and_in_the_totals() {
        let telemetry = Arc::new(Telemetry::default());
        let a = telemetry
            .exporters
            .register("otlp", &[Signal::Metrics, Signal::Logs]);
        let b = telemetry.exporters.register("otlp/b", &[Signal::Metrics]);
        let ra = ExportRecorder::new(Arc::clone(&telemetry), Arc::clone(&a));
        let rb = ExportRecorder::new(Arc::clone(&telemetry), Arc::clone(&b));
        ra.add_sent(10);
        rb.add_sent(5);
        rb.add_dropped(2);
        rb.add_retried();
        ra.record_attempt(true, 100);
        rb.record_attempt(false, 110);
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(read(&telemetry.export.sent_points), 15);
        assert_eq!(read(&a.counters.sent_points), 10);
        assert_eq!(read(&b.counters.sent_points), 5);
        assert_eq!(read(&b.counters.dropped_points), 2);
        assert_eq!(read(&a.counters.dropped_points), 0);
        assert_eq!(read(&b.counters.retried_requests), 1);
        assert_eq!(read(&a.counters.failing_since_unix_nano), 0);
        assert_eq!(read(&b.counters.failing_since_unix_nano), 110);
        assert_eq!(read(&telemetry.export.failing_since_unix_nano), 110);
        let names: Vec<String> = telemetry
            .exporters
            .snapshot()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, ["otlp", "otlp/b"]);
    }

    #[test]
    fn the_receiver_counts_reloads_and_keeps_its_source() {
        let info = ReceiverInfo::default();
        assert!(info.started_unix_nano() > 0);
        assert_eq!(info.config_source(), None);
        assert_eq!(info.config_format(), None);
        info.set_config_source("/etc/r.yaml");
        info.set_config_format(ConfigFormat::Datadog);
        info.count_reload(42);
        assert_eq!(info.config_source().as_deref(), Some("/etc/r.yaml"));
        assert_eq!(info.config_format(), Some("datadog"));
        assert_eq!((info.reloads(), info.last_reload_unix_nano()), (1, 42));
    }
}
