//! Between the target tasks and the exporters: gathers what they hand over into batches,
//! writes each batch once as OTLP protobuf, and gives it to the exporters.
//!
//! Pollers send [`ExportItem`]s through a channel. After the first item of a batch, others are
//! awaited for [`BATCH_WINDOW`] so that targets polled on the same tick share a request. The
//! translation ([`crate::metrics`], [`crate::logs`]) happens here, so the exporters receive
//! bytes and know nothing of polls: a batch of items becomes one metrics batch and one logs
//! batch (the state changes the polls found, and those push mode's events told).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use std::sync::{Arc, PoisonError};

use crate::export::pipeline::{EncodedBatch, RunningExports};
use crate::logs::encode_resource_logs;
use crate::metrics::encode_resource_metrics;
use crate::schema::MetricToggles;
use crate::scrape::changes::Changes;
use crate::scrape::outcome::{PollOutcome, TargetIdentity};
use crate::scrape::output::offsets::OffsetStore;
use crate::scrape::output::Checkpoint;
use crate::settings::{LogSettings, Signal};
use crate::telemetry::LatestMetrics;

/// After a first item arrives, others are awaited this long so that targets polled at the same
/// tick share one batch (the collector's batch processor waits as long by default).
const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// Items in one batch at most, bounding the memory of a burst.
const MAX_ITEMS_PER_BATCH: usize = 10_000;

/// What flows into the pipeline: the targets' polls, and the changes push mode's events tell
/// between polls. (The receiver's own metrics do not: the OpenTelemetry SDK exports them on
/// their own, see [`super::self_telemetry`].)
#[derive(Debug)]
pub enum ExportItem {
    Poll(PollOutcome),
    Changes(ChangeReport),
}

impl ExportItem {
    /// Sent without waiting for the batch window (see [`collect`]).
    fn is_urgent(&self) -> bool {
        matches!(self, ExportItem::Changes(_))
    }
}

/// Changes told by events, with what the target's resource needs.
#[derive(Debug)]
pub struct ChangeReport {
    pub target: Arc<TargetIdentity>,
    pub identification: Option<String>,
    pub version: Option<String>,
    pub changes: Changes,
    /// When the receiver was told, in Unix nanoseconds.
    pub observed_unix_nano: u64,
}

/// Exports what arrives until `stop` turns true; then drains the channel (closed once every
/// poller finished its poll in flight) into a last batch, and lets the exporters flush (see
/// [`RunningExports::finish`]). Each target's latest metrics go to `latest` as well.
pub async fn run(
    exports: RunningExports,
    toggles: MetricToggles,
    logs: LogSettings,
    offsets: Option<SharedOffsets>,
    latest: Arc<LatestMetrics>,
    mut rx: mpsc::Receiver<ExportItem>,
    mut stop: watch::Receiver<bool>,
) {
    let writer = Writer {
        toggles,
        logs,
        bytes_per_item: AtomicUsize::new(0),
        latest,
    };
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(item) => {
                    let mut batch = vec![item];
                    let stopped = collect(&mut rx, &mut batch, &mut stop).await;
                    send(&exports, &writer, &batch).await;
                    save_offsets(offsets.as_ref(), &batch).await;
                    if stopped {
                        break;
                    }
                }
                None => break,
            },
            _ = stop.changed() => break,
        }
    }
    let mut last = Vec::new();
    while let Some(item) = rx.recv().await {
        last.push(item);
    }
    send(&exports, &writer, &last).await;
    save_offsets(offsets.as_ref(), &last).await;
    exports.finish().await;
}

/// The output tails' offset files, written by the pipeline (see [`save_offsets`]).
pub type SharedOffsets = Arc<std::sync::Mutex<OffsetStore>>;

/// Saves where the output tails of the items' targets resume, once their records are queued:
/// a restart then neither repeats nor misses a line (see [`OffsetStore`]). The files are
/// written off the runtime's threads; a failure is logged and the next batch tries again.
async fn save_offsets(offsets: Option<&SharedOffsets>, items: &[ExportItem]) {
    let Some(offsets) = offsets else {
        return;
    };
    let checkpoints: Vec<(String, Checkpoint)> = items
        .iter()
        .filter_map(|item| match item {
            ExportItem::Poll(PollOutcome {
                target,
                result: Ok(data),
                ..
            }) => data
                .output
                .as_ref()
                .map(|output| (target.name.clone(), output.checkpoint.clone())),
            _ => None,
        })
        .collect();
    if checkpoints.is_empty() {
        return;
    }
    let offsets = Arc::clone(offsets);
    let saved = tokio::task::spawn_blocking(move || {
        let mut store = offsets.lock().unwrap_or_else(PoisonError::into_inner);
        for (target, checkpoint) in &checkpoints {
            if let Err(error) = store.save(target, checkpoint) {
                tracing::warn!(target_name = %target, "output offsets not saved: {error}");
            }
        }
    });
    if saved.await.is_err() {
        tracing::error!("saving output offsets ended abnormally");
    }
}

async fn send(exports: &RunningExports, writer: &Writer, items: &[ExportItem]) {
    exports.dispatch(&writer.encode(items)).await;
    exports.dispatch(&writer.encode_logs(items)).await;
}

/// Gathers more items for up to [`BATCH_WINDOW`]; `true` when `stop` fired meanwhile.
///
/// Changes told by events do not wait: a batch holding one goes at once, with what is already
/// in the channel. The window exists so that polls of many targets share a request; an event
/// is one small record a person may be paged for, and push mode's point is to deliver it
/// within milliseconds (measured by `examples/push_latency`: the window alone made its p99
/// 210 ms). Polls still share their requests, and a burst of events that supervisord sends
/// one after the other goes out as it comes.
async fn collect(
    rx: &mut mpsc::Receiver<ExportItem>,
    batch: &mut Vec<ExportItem>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let until = Instant::now() + BATCH_WINDOW;
    while batch.len() < MAX_ITEMS_PER_BATCH {
        if batch.iter().any(ExportItem::is_urgent) {
            while batch.len() < MAX_ITEMS_PER_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            return false;
        }
        tokio::select! {
            received = rx.recv() => match received {
                Some(item) => batch.push(item),
                None => return false,
            },
            () = tokio::time::sleep_until(until) => return false,
            _ = stop.changed() => return true,
        }
    }
    false
}

/// Writes batches as OTLP protobuf.
struct Writer {
    toggles: MetricToggles,
    logs: LogSettings,
    /// Bytes per item of the last batch: the next buffer is sized from it, so a batch of
    /// megabytes is written without regrowing (a copy per doubling).
    bytes_per_item: AtomicUsize,
    /// Where each polled target's `resource_metrics` is kept for `GET /metrics`.
    latest: Arc<LatestMetrics>,
}

impl Writer {
    /// Every item as one `resource_metrics` field, one after the other in one buffer, with
    /// where each lies and its data points. Each poll's field is also the latest metrics of its
    /// target (a slice of the buffer, once `GET /metrics` turned recording on).
    fn encode(&self, items: &[ExportItem]) -> EncodedBatch {
        if items.is_empty() {
            return EncodedBatch::default();
        }
        let estimate = self
            .bytes_per_item
            .load(Ordering::Relaxed)
            .saturating_mul(items.len());
        // A little over the estimate, so a batch that grew a bit does not regrow.
        let mut buffer = Vec::with_capacity(estimate.saturating_add(estimate / 8));
        let mut resources = Vec::with_capacity(items.len());
        // The target of each entry of `resources`.
        let mut targets = Vec::with_capacity(items.len());
        for item in items {
            let start = buffer.len();
            let points = match item {
                ExportItem::Poll(outcome) => {
                    targets.push(outcome.target.name.as_str());
                    encode_resource_metrics(outcome, &self.toggles, &mut buffer)
                }
                ExportItem::Changes(_) => continue,
            };
            resources.push((start..buffer.len(), points));
        }
        if let Some(per_item) = buffer.len().checked_div(items.len()) {
            self.bytes_per_item.store(per_item, Ordering::Relaxed);
        }
        let buffer = Bytes::from(buffer);
        if self.latest.is_enabled() {
            self.latest.record(
                targets
                    .into_iter()
                    .zip(&resources)
                    .map(|(target, (range, _))| (target, buffer.slice(range.clone()))),
            );
        }
        EncodedBatch {
            signal: Signal::Metrics,
            buffer,
            resources,
        }
    }

    /// The state changes (unless `logs.state_changes` is off) and the programs' output of the
    /// items as log records, one `resource_logs` per item that has any.
    fn encode_logs(&self, items: &[ExportItem]) -> EncodedBatch {
        let mut buffer = Vec::new();
        let mut resources = Vec::new();
        let no_changes = Changes::default();
        let changes = |changes| {
            if self.logs.state_changes {
                changes
            } else {
                &no_changes
            }
        };
        for item in items {
            let start = buffer.len();
            let records = match item {
                ExportItem::Poll(PollOutcome {
                    target,
                    time_unix_nano,
                    result: Ok(data),
                }) => encode_resource_logs(
                    target,
                    data.identification.as_deref(),
                    data.version.as_deref(),
                    changes(&data.changes),
                    data.output
                        .as_ref()
                        .map_or(&[][..], |output| &output.records),
                    *time_unix_nano,
                    &mut buffer,
                ),
                ExportItem::Poll(_) => 0,
                ExportItem::Changes(report) => encode_resource_logs(
                    &report.target,
                    report.identification.as_deref(),
                    report.version.as_deref(),
                    changes(&report.changes),
                    &[],
                    report.observed_unix_nano,
                    &mut buffer,
                ),
            };
            if records > 0 {
                resources.push((start..buffer.len(), records));
            }
        }
        EncodedBatch {
            signal: Signal::Logs,
            buffer: Bytes::from(buffer),
            resources,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll() -> ExportItem {
        poll_of("t")
    }

    fn poll_of(name: &str) -> ExportItem {
        ExportItem::Poll(PollOutcome {
            target: Arc::new(TargetIdentity {
                name: name.into(),
                attributes: Vec::new(),
                point_attributes: Vec::new(),
            }),
            time_unix_nano: 1,
            result: Err("down".into()),
        })
    }

    fn event() -> ExportItem {
        ExportItem::Changes(ChangeReport {
            target: Arc::new(TargetIdentity {
                name: "t".into(),
                attributes: Vec::new(),
                point_attributes: Vec::new(),
            }),
            identification: None,
            version: None,
            changes: Changes::default(),
            observed_unix_nano: 1,
        })
    }

    #[test]
    fn each_poll_is_its_targets_latest_metrics_once_asked_for() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use prost::Message;

        let latest = Arc::new(LatestMetrics::default());
        let writer = Writer {
            toggles: MetricToggles::default(),
            logs: LogSettings::default(),
            bytes_per_item: AtomicUsize::new(0),
            latest: Arc::clone(&latest),
        };
        latest.register("t");
        latest.register("u");
        writer.encode(&[poll()]);
        assert!(latest.snapshot().is_empty(), "nothing kept before /metrics");

        latest.enable();
        let batch = writer.encode(&[poll(), event(), poll_of("u"), poll_of("removed")]);
        let kept = latest.snapshot();
        assert_eq!(kept.len(), 2);
        for ((name, bytes), (range, _)) in kept.iter().zip(&batch.resources) {
            assert_eq!(bytes, &batch.buffer.slice(range.clone()), "{name}");
            // A slice of the batch's buffer, not a copy.
            assert_eq!(
                bytes.as_ptr(),
                batch.buffer[range.clone()].as_ptr(),
                "{name}"
            );
            let request = ExportMetricsServiceRequest::decode(bytes.clone()).unwrap();
            assert_eq!(request.resource_metrics.len(), 1, "{name}");
        }
        assert_eq!(kept[0].0, "t");
        assert_eq!(kept[1].0, "u");
    }

    /// With the clock paused, the window never ends by itself: `collect` returning at all shows
    /// what ended it.
    #[tokio::test(start_paused = true)]
    async fn an_event_ends_the_batch_window_and_polls_wait_for_it() {
        let (tx, mut rx) = mpsc::channel(8);
        let (_stop_tx, mut stop) = watch::channel(false);
        let started = Instant::now();
        tx.send(poll()).await.unwrap();
        tx.send(event()).await.unwrap();
        tx.send(poll()).await.unwrap();
        let mut batch = vec![rx.recv().await.unwrap()];
        assert!(!collect(&mut rx, &mut batch, &mut stop).await);
        assert_eq!(batch.len(), 3, "what was already there goes along");
        assert_eq!(
            Instant::now(),
            started,
            "no time passed: the event did not wait"
        );

        tx.send(poll()).await.unwrap();
        let mut batch = vec![rx.recv().await.unwrap()];
        assert!(!collect(&mut rx, &mut batch, &mut stop).await);
        assert_eq!(batch.len(), 1);
        assert_eq!(
            Instant::now(),
            started + BATCH_WINDOW,
            "polls wait for the window"
        );
    }
}
