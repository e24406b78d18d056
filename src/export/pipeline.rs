//! Between the pollers and the exporters: batches poll outcomes into OTLP requests and hands
//! them to every exporter.
//!
//! Pollers hand over [`ExportItem`]s through a channel. The pipeline only builds requests and
//! puts them in each OTLP exporter's [`SendingQueue`]; a sender task per exporter does the
//! sending and retrying. So a slow or dead backend never holds up the pipeline, the pollers, or
//! another exporter: its queue fills, and past its limits drops its oldest batches.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{ConfigFormat, DeliverySettings, ExporterSettings, Settings};
use crate::export::batch;
use crate::export::queue::{QueueGauges, SendingQueue};
use crate::export::sender::Sender;
use crate::export::{ExportBuildError, Exporter};
use crate::metrics::builder::build_resource_metrics;
use crate::metrics::{encode_resource_metrics, MetricToggles};
use crate::scrape::outcome::PollOutcome;
use crate::telemetry::Telemetry;

/// The final export on shutdown gets at most this long, for all exporters together.
pub const FINAL_EXPORT_LIMIT: Duration = Duration::from_secs(5);

/// After a first item arrives, others are awaited this long so that targets polled at the same
/// tick share one batch (the collector's batch processor waits as long by default).
const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// Items in one batch at most, bounding the memory of a burst.
const MAX_ITEMS_PER_BATCH: usize = 10_000;

/// What flows into the pipeline.
#[derive(Debug)]
pub enum ExportItem {
    Poll(PollOutcome),
    /// The receiver's own metrics, already built (their own scope).
    SelfTelemetry(ResourceMetrics),
}

struct OtlpOutput {
    name: String,
    exporter: Exporter,
    queue: Arc<SendingQueue>,
    delivery: DeliverySettings,
}

enum Output {
    /// The debug exporter writes to stdout at once: no backend, nothing to queue.
    Debug(Exporter),
    Otlp(OtlpOutput),
}

/// Where a batch goes, once the senders run.
enum Sink {
    Debug(Exporter),
    Queue {
        queue: Arc<SendingQueue>,
        max_request_size: u64,
    },
}

pub struct ExportPipeline {
    outputs: Vec<Output>,
    format: ConfigFormat,
    toggles: MetricToggles,
    telemetry: Arc<Telemetry>,
}

impl ExportPipeline {
    /// All fallible setup: every exporter is built and every persistent queue opened here,
    /// before anything is polled.
    pub fn new(settings: &Settings, telemetry: Arc<Telemetry>) -> Result<Self, ExportBuildError> {
        let gauges = QueueGauges::new(Arc::clone(&telemetry));
        let mut outputs = Vec::with_capacity(settings.exporters.len());
        let (mut capacity_batches, mut capacity_bytes) = (0u64, 0u64);
        for exporter_settings in &settings.exporters {
            let exporter = Exporter::new(exporter_settings)?;
            let otlp = match exporter_settings {
                ExporterSettings::Otlp(otlp) => otlp,
                ExporterSettings::Debug { .. } => {
                    outputs.push(Output::Debug(exporter));
                    continue;
                }
            };
            let queue = SendingQueue::open(
                &otlp.name,
                &otlp.delivery.queue,
                Arc::clone(&gauges),
                Arc::clone(&telemetry),
            )
            .map_err(|(path, reason)| ExportBuildError::QueueStorage {
                exporter: otlp.name.clone(),
                path,
                reason,
            })?;
            let (batches, bytes) = queue.limits();
            capacity_batches = capacity_batches.saturating_add(batches);
            capacity_bytes = capacity_bytes.saturating_add(bytes);
            outputs.push(Output::Otlp(OtlpOutput {
                name: otlp.name.clone(),
                exporter,
                queue: Arc::new(queue),
                delivery: otlp.delivery.clone(),
            }));
        }
        telemetry
            .export
            .set_queue_capacity(capacity_batches, capacity_bytes);
        Ok(ExportPipeline {
            outputs,
            format: settings.format,
            toggles: settings.metrics.clone(),
            telemetry,
        })
    }

    /// One line per exporter, for the start-up log: where it sends and how it queues.
    pub fn describe(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|output| match output {
                Output::Debug(exporter) => exporter.describe(),
                Output::Otlp(o) => {
                    let queue = &o.delivery.queue;
                    let held = match (queue.enabled, o.queue.file()) {
                        (false, _) => "no sending queue".to_string(),
                        (true, file) => format!(
                            "sending queue {} (up to {} batches, {})",
                            file.map_or_else(
                                || "in memory".to_string(),
                                |f| format!("on disk at {}", f.display())
                            ),
                            queue.max_batches,
                            show_size(queue.max_bytes)
                        ),
                    };
                    format!("{} [{}], {held}", o.exporter.describe(), o.name)
                }
            })
            .collect()
    }

    /// Exports what arrives until `stop` turns true; then drains the channel (closed once every
    /// poller finished its poll in flight) into a last batch, and gives the senders
    /// [`FINAL_EXPORT_LIMIT`] to flush their queues: a retry that was waiting is made at once,
    /// then retried shortly as often as the limit allows (see the sender). What is left stays
    /// on disk for the next start (persistent queues) or is counted as dropped (in-memory
    /// queues).
    pub async fn run(self, mut rx: mpsc::Receiver<ExportItem>, mut stop: watch::Receiver<bool>) {
        let only_debug = self.outputs.iter().all(|o| matches!(o, Output::Debug(_)));
        let (deadline_tx, deadline_rx) = watch::channel(None);
        let mut senders = JoinSet::new();
        let mut sinks = Vec::with_capacity(self.outputs.len());
        let mut queues = Vec::new();
        for output in self.outputs {
            match output {
                Output::Debug(exporter) => sinks.push(Sink::Debug(exporter)),
                Output::Otlp(o) => {
                    sinks.push(Sink::Queue {
                        queue: Arc::clone(&o.queue),
                        max_request_size: o.delivery.max_request_size,
                    });
                    queues.push((o.name.clone(), Arc::clone(&o.queue)));
                    let sender = Sender::new(
                        o.name,
                        o.exporter,
                        o.queue,
                        o.delivery.retry,
                        o.delivery.max_request_size,
                        Arc::clone(&self.telemetry),
                    );
                    senders.spawn(sender.run(deadline_rx.clone()));
                }
            }
        }
        let dispatcher = Dispatcher {
            sinks,
            format: self.format,
            toggles: self.toggles,
            telemetry: Arc::clone(&self.telemetry),
            record_debug: only_debug,
            bytes_per_item: std::sync::atomic::AtomicUsize::new(0),
        };

        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(item) => {
                        let mut batch = vec![item];
                        let stopped = collect(&mut rx, &mut batch, &mut stop).await;
                        dispatcher.dispatch(&batch).await;
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
        dispatcher.dispatch(&last).await;

        let deadline = Instant::now() + FINAL_EXPORT_LIMIT;
        let _ = deadline_tx.send(Some(deadline));
        // Senders stop by themselves at the deadline; the margin only covers a disk write.
        let margin = Duration::from_millis(500);
        let flushed = tokio::time::timeout_at(deadline + margin, async {
            while senders.join_next().await.is_some() {}
        })
        .await;
        if flushed.is_err() {
            senders.abort_all();
            while senders.join_next().await.is_some() {}
        }
        for (name, queue) in queues {
            report_leftover(&name, &queue, &self.telemetry);
        }
    }
}

/// Gathers more items for up to [`BATCH_WINDOW`]; `true` when `stop` fired meanwhile.
async fn collect(
    rx: &mut mpsc::Receiver<ExportItem>,
    batch: &mut Vec<ExportItem>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let until = Instant::now() + BATCH_WINDOW;
    while batch.len() < MAX_ITEMS_PER_BATCH {
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

struct Dispatcher {
    sinks: Vec<Sink>,
    format: ConfigFormat,
    toggles: MetricToggles,
    telemetry: Arc<Telemetry>,
    /// With only debug exporters, their writes are the export attempts health reports on.
    record_debug: bool,
    /// Bytes per item of the last batch: the next buffer is sized from it, so a batch of
    /// megabytes is written without regrowing (a copy per doubling).
    bytes_per_item: std::sync::atomic::AtomicUsize,
}

impl Dispatcher {
    /// Hands one batch to every exporter, in configuration order: printed by the debug
    /// exporter, or encoded once, cut to `max_request_size` and queued.
    async fn dispatch(&self, items: &[ExportItem]) {
        if items.is_empty() {
            return;
        }
        let needs_structs = self.sinks.iter().any(|s| matches!(s, Sink::Debug(_)));
        let structs = if needs_structs {
            self.build(items)
        } else {
            None
        };
        let needs_bytes = self.sinks.iter().any(|s| matches!(s, Sink::Queue { .. }));
        let encoded = if needs_bytes {
            Some(self.encode(items))
        } else {
            None
        };
        for sink in &self.sinks {
            match sink {
                Sink::Debug(exporter) => {
                    let Some(request) = &structs else { continue };
                    let result = exporter.export(request).await;
                    if self.record_debug {
                        let now = crate::scrape::poller::unix_nanos_now();
                        self.telemetry.export.record_attempt(result.is_ok(), now);
                    }
                    if let Err(error) = result {
                        tracing::warn!(exporter = %exporter.describe(), "export failed: {error}");
                    }
                }
                Sink::Queue {
                    queue,
                    max_request_size,
                } => {
                    let Some((buffer, resources)) = &encoded else {
                        continue;
                    };
                    for piece in batch::pack_encoded(buffer, resources, *max_request_size) {
                        queue.push_async(piece).await;
                    }
                }
            }
        }
    }

    fn build(&self, items: &[ExportItem]) -> Option<ExportMetricsServiceRequest> {
        let resource_metrics: Vec<ResourceMetrics> = items
            .iter()
            .map(|item| match item {
                ExportItem::Poll(outcome) => {
                    build_resource_metrics(outcome, self.format, &self.toggles)
                }
                ExportItem::SelfTelemetry(resource) => resource.clone(),
            })
            .collect();
        (!resource_metrics.is_empty()).then_some(ExportMetricsServiceRequest { resource_metrics })
    }

    /// Every item as one `resource_metrics` field, one after the other in one buffer, with
    /// where each lies and its data points.
    fn encode(&self, items: &[ExportItem]) -> (Bytes, Vec<(Range<usize>, u64)>) {
        let estimate = self
            .bytes_per_item
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_mul(items.len());
        // A little over the estimate, so a batch that grew a bit does not regrow.
        let mut buffer = Vec::with_capacity(estimate.saturating_add(estimate / 8));
        let mut resources = Vec::with_capacity(items.len());
        for item in items {
            let start = buffer.len();
            let points = match item {
                ExportItem::Poll(outcome) => {
                    encode_resource_metrics(outcome, self.format, &self.toggles, &mut buffer)
                }
                ExportItem::SelfTelemetry(resource) => {
                    prost::encoding::message::encode(1, resource, &mut buffer);
                    batch::count_resource_points(resource)
                }
            };
            resources.push((start..buffer.len(), points));
        }
        if let Some(per_item) = buffer.len().checked_div(items.len()) {
            self.bytes_per_item
                .store(per_item, std::sync::atomic::Ordering::Relaxed);
        }
        (Bytes::from(buffer), resources)
    }
}

/// After the final flush: what a persistent queue keeps for the next start, or what an in-memory
/// queue loses.
pub(crate) fn report_leftover(name: &str, queue: &SendingQueue, telemetry: &Telemetry) {
    let left = queue.leftover();
    if left.batches == 0 {
        return;
    }
    let lost = queue.memory_only();
    if let Some(file) = queue.file() {
        let kept_points = left.points - lost.points;
        if kept_points > 0 {
            tracing::info!(
                exporter = name,
                file = %file.display(),
                batches = left.batches - lost.batches,
                points = kept_points,
                "not sent before the {FINAL_EXPORT_LIMIT:?} stop limit: kept in the persistent \
                 sending queue for the next start"
            );
        }
    }
    if lost.points > 0 {
        telemetry.export.add_dropped(lost.points);
        tracing::warn!(
            exporter = name,
            batches = lost.batches,
            points = lost.points,
            "not sent before the {FINAL_EXPORT_LIMIT:?} stop limit: {} points lost (the sending \
             queue is in memory)",
            lost.points
        );
    }
}

/// `64MiB`, `1536KiB`, `1000B`: sizes as the configuration writes them.
fn show_size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, scale) in UNITS {
        if n >= scale && n.is_multiple_of(scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_show_in_binary_units() {
        assert_eq!(show_size(64 << 20), "64MiB");
        assert_eq!(show_size(1536 << 10), "1536KiB");
        assert_eq!(show_size(1000), "1000B");
        assert_eq!(show_size(u64::MAX), format!("{}B", u64::MAX));
    }
}
