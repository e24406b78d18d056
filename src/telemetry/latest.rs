//! The latest metrics of every target, as the OTLP protobuf bytes the pipeline already wrote:
//! what `GET /metrics` renders ([`crate::admin`]), so a Prometheus without a collector sees the
//! same points the OTLP exporters send.
//!
//! The pipeline records, per batch, one [`Bytes::slice`] of the batch buffer per target: no
//! copy, one short lock. A slice keeps its batch's buffer alive until every target in that
//! batch has been recorded again, so what is held is about one poll of every target (one
//! collection interval's batches).
//!
//! Nothing is recorded until [`LatestMetrics::enable`]: the first request for `/metrics` turns
//! it on, so a receiver nobody scrapes holds nothing.
//!
//! Only configured targets are kept: [`LatestMetrics::register`] when a target's task starts,
//! [`LatestMetrics::forget`] when a reload removes it. A record for a target that is not
//! registered is dropped, so the last poll of a removed target, still in the pipeline's channel
//! when it was forgotten, cannot bring it back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

#[derive(Debug, Default)]
pub struct LatestMetrics {
    enabled: AtomicBool,
    /// Target name → field 1 (`resource_metrics`) of an `ExportMetricsServiceRequest`, tag and
    /// length included (so the bytes decode as a one-resource request); `None` before the
    /// target's first poll since recording began.
    by_target: Mutex<BTreeMap<String, Option<Bytes>>>,
}

impl LatestMetrics {
    /// Starts recording (idempotent); targets appear from their next poll.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Lists a configured target (its task starts); its data, if any, is kept.
    pub fn register(&self, target: &str) {
        let mut map = self.lock();
        if !map.contains_key(target) {
            map.insert(target.to_owned(), None);
        }
    }

    /// Drops a target removed by a reload, and its data.
    pub fn forget(&self, target: &str) {
        self.lock().remove(target);
    }

    /// Records the latest `resource_metrics` field of each target, in one lock; a target that is
    /// not registered is skipped. Does nothing until [`Self::enable`].
    pub fn record<'a>(&self, latest: impl IntoIterator<Item = (&'a str, Bytes)>) {
        if !self.is_enabled() {
            return;
        }
        let mut map = self.lock();
        for (target, bytes) in latest {
            if let Some(slot) = map.get_mut(target) {
                *slot = Some(bytes);
            }
        }
    }

    /// The recorded targets' bytes, in target name order (a reference count each, no copy).
    pub fn snapshot(&self) -> Vec<(String, Bytes)> {
        self.lock()
            .iter()
            .filter_map(|(name, bytes)| Some((name.clone(), bytes.clone()?)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Bytes>>> {
        self.by_target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_registered_targets_once_enabled() {
        let latest = LatestMetrics::default();
        latest.register("web");
        latest.record([("web", Bytes::from_static(b"a"))]);
        assert!(latest.snapshot().is_empty(), "off until enabled");

        latest.enable();
        latest.register("db");
        latest.record([
            ("web", Bytes::from_static(b"b")),
            ("gone", Bytes::from_static(b"c")),
        ]);
        assert_eq!(
            latest.snapshot(),
            [("web".to_string(), Bytes::from_static(b"b"))],
            "db has no poll yet; an unregistered target is not recorded"
        );

        latest.record([("db", Bytes::from_static(b"d"))]);
        latest.register("web");
        assert_eq!(
            latest.snapshot().len(),
            2,
            "registering again keeps the data"
        );
        latest.forget("web");
        latest.record([("web", Bytes::from_static(b"e"))]);
        assert_eq!(
            latest.snapshot(),
            [("db".to_string(), Bytes::from_static(b"d"))],
            "a forgotten target stays gone, even if a late poll arrives"
        );
    }
}
