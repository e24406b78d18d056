//! The exporters and their sending queues, fed with encoded batches.
//!
//! The application hands over batches already written as OTLP protobuf ([`EncodedBatch`]);
//! this module only queues and sends them, and knows nothing of polls. The batch is put in
//! each OTLP exporter's [`SendingQueue`], and a sender task per exporter does the sending and
//! retrying, so a slow or dead backend never holds up the application or another exporter: its
//! queue fills, and past its limits drops its oldest batches. The debug exporter prints at once.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::export::batch;
use crate::export::queue::{QueueGauges, SendingQueue};
use crate::export::sender::Sender;
use crate::export::{ExportBuildError, Exporter};
use crate::settings::{DeliverySettings, ExporterSettings};
use crate::telemetry::Telemetry;

/// The final export on shutdown gets at most this long, for all exporters together.
pub const FINAL_EXPORT_LIMIT: Duration = Duration::from_secs(5);

/// Resources written one after the other as field 1 of an `ExportMetricsServiceRequest`
/// (so the buffer alone is a valid request), with where each lies and its data points, so a
/// batch can be cut at resource boundaries to fit `max_request_size`.
#[derive(Debug, Clone, Default)]
pub struct EncodedBatch {
    pub buffer: Bytes,
    pub resources: Vec<(Range<usize>, u64)>,
}

impl EncodedBatch {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
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

/// Every configured exporter with its queue, built and opened but not yet sending.
pub struct ExportPipeline {
    outputs: Vec<Output>,
    telemetry: Arc<Telemetry>,
}

impl ExportPipeline {
    /// All fallible setup: every exporter is built and every persistent queue opened here,
    /// before anything is polled.
    pub fn new(
        exporters: &[ExporterSettings],
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, ExportBuildError> {
        let gauges = QueueGauges::new(Arc::clone(&telemetry));
        let mut outputs = Vec::with_capacity(exporters.len());
        let (mut capacity_batches, mut capacity_bytes) = (0u64, 0u64);
        for exporter_settings in exporters {
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
        Ok(ExportPipeline { outputs, telemetry })
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

    /// Starts a sender task per OTLP exporter; batches then go in through
    /// [`RunningExports::dispatch`].
    pub fn start(self) -> RunningExports {
        let record_debug = self.outputs.iter().all(|o| matches!(o, Output::Debug(_)));
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
        RunningExports {
            sinks,
            senders,
            deadline_tx,
            queues,
            telemetry: self.telemetry,
            record_debug,
        }
    }
}

/// The exporters while they send.
pub struct RunningExports {
    sinks: Vec<Sink>,
    senders: JoinSet<()>,
    /// `Some(deadline)` once stopping: the senders flush until then.
    deadline_tx: watch::Sender<Option<Instant>>,
    queues: Vec<(String, Arc<SendingQueue>)>,
    telemetry: Arc<Telemetry>,
    /// With only debug exporters, their writes are the export attempts health reports on.
    record_debug: bool,
}

impl RunningExports {
    /// Hands one batch to every exporter, in configuration order: printed by the debug
    /// exporter, or cut to `max_request_size` and queued.
    pub async fn dispatch(&self, batch: &EncodedBatch) {
        if batch.is_empty() {
            return;
        }
        for sink in &self.sinks {
            match sink {
                Sink::Debug(exporter) => {
                    let request = match ExportMetricsServiceRequest::decode(batch.buffer.clone()) {
                        Ok(request) => request,
                        Err(error) => {
                            tracing::error!(
                                "a batch does not decode for the debug exporter: {error}"
                            );
                            continue;
                        }
                    };
                    let result = exporter.export(&request).await;
                    if self.record_debug {
                        let now = crate::clock::unix_nanos_now();
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
                    for piece in
                        batch::pack_encoded(&batch.buffer, &batch.resources, *max_request_size)
                    {
                        queue.push_async(piece).await;
                    }
                }
            }
        }
    }

    /// Gives the senders [`FINAL_EXPORT_LIMIT`] to flush their queues: a retry that was
    /// waiting is made at once, then retried shortly as often as the limit allows (see the
    /// sender). What is left stays on disk for the next start (persistent queues) or is counted
    /// as dropped (in-memory queues).
    pub async fn finish(mut self) {
        let deadline = Instant::now() + FINAL_EXPORT_LIMIT;
        let _ = self.deadline_tx.send(Some(deadline));
        // Senders stop by themselves at the deadline; the margin only covers a disk write.
        let margin = Duration::from_millis(500);
        let flushed = tokio::time::timeout_at(deadline + margin, async {
            while self.senders.join_next().await.is_some() {}
        })
        .await;
        if flushed.is_err() {
            self.senders.abort_all();
            while self.senders.join_next().await.is_some() {}
        }
        for (name, queue) in &self.queues {
            report_leftover(name, queue, &self.telemetry);
        }
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
