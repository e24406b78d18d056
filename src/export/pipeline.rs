//! The exporters and their sending queues, fed with encoded batches.
//!
//! The application hands over batches already written as OTLP protobuf ([`EncodedBatch`]), each
//! of one signal (metrics or logs); this module only queues and sends them, and knows nothing
//! of polls. A batch is put in the sending queue of its signal in each OTLP exporter carrying
//! that signal, and a sender task per queue does the sending and retrying, so a slow or dead
//! backend never holds up the application or another exporter: its queue fills, and past its
//! limits drops its oldest batches. The debug exporter prints every signal at once.
//!
//! Why a queue and a sender per signal rather than one per exporter: it is the Collector's
//! model (an exporter in a metrics and a logs pipeline is two exporters, each with its queue),
//! and it keeps the signals apart where it matters: a batch of one signal never waits behind
//! the other's retries, a flood of one never evicts the other from a full queue, and a request
//! always holds one signal (the two cannot share a request anyway). The exporter itself, with
//! its connections, is shared by its signals' senders.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::export::batch;
use crate::export::queue::{QueueGauges, SendingQueue};
use crate::export::sender::{Sender, SignalExporter};
use crate::export::{items, ExportBuildError, Exporter};
use crate::settings::{DeliverySettings, ExporterSettings, Signal};
use crate::telemetry::{ExportRecorder, Telemetry};

/// The final export on shutdown gets at most this long, for all exporters together.
pub const FINAL_EXPORT_LIMIT: Duration = Duration::from_secs(5);

/// Resources of one signal written one after the other as field 1 of their request
/// (`resource_metrics` of an `ExportMetricsServiceRequest`, `resource_logs` of an
/// `ExportLogsServiceRequest`: the same field number, so the buffer alone is a valid request of
/// `signal`), with where each lies and its data points (log records, for logs), so a batch can
/// be cut at resource boundaries to fit `max_request_size`.
///
/// `Default` is an empty metrics batch: a batch written before logs existed is a metrics batch.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    pub buffer: Bytes,
    pub resources: Vec<(Range<usize>, u64)>,
    /// Which request the buffer is, and so which queues and which endpoint it goes to.
    pub signal: Signal,
}

impl Default for EncodedBatch {
    fn default() -> Self {
        EncodedBatch {
            buffer: Bytes::new(),
            resources: Vec::new(),
            signal: Signal::Metrics,
        }
    }
}

impl EncodedBatch {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// One signal's queue of an OTLP exporter.
struct SignalQueue {
    signal: Signal,
    queue: Arc<SendingQueue>,
}

struct OtlpOutput {
    name: String,
    exporter: Arc<Exporter>,
    /// One per signal the exporter carries, in [`Signal::ALL`] order.
    queues: Vec<SignalQueue>,
    delivery: DeliverySettings,
}

enum Output {
    /// The debug exporter writes to stdout at once: no backend, nothing to queue. Its own
    /// counters count what it printed.
    Debug(Exporter, ExportRecorder),
    Otlp(OtlpOutput),
}

/// Where a batch goes, once the senders run.
enum Sink {
    Debug(Exporter, ExportRecorder),
    Queue {
        signal: Signal,
        queue: Arc<SendingQueue>,
        max_request_size: u64,
    },
}

/// Every configured exporter with its queues, built and opened but not yet sending.
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
                    let own = telemetry.exporters.register("debug", &Signal::ALL);
                    let recorder = ExportRecorder::new(Arc::clone(&telemetry), own);
                    outputs.push(Output::Debug(exporter, recorder));
                    continue;
                }
            };
            let own = telemetry.exporters.register(&otlp.name, &otlp.signals);
            let recorder = ExportRecorder::new(Arc::clone(&telemetry), Arc::clone(&own));
            let (mut own_batches, mut own_bytes) = (0u64, 0u64);
            let mut queues = Vec::with_capacity(Signal::ALL.len());
            for signal in Signal::ALL {
                if !otlp.signals.contains(&signal) {
                    continue;
                }
                let queue = SendingQueue::open_counted(
                    &otlp.name,
                    signal,
                    &otlp.delivery.queue,
                    Arc::clone(&gauges),
                    recorder.clone(),
                )
                .map_err(|(path, reason)| ExportBuildError::QueueStorage {
                    exporter: otlp.name.clone(),
                    path,
                    reason,
                })?;
                let (batches, bytes) = queue.limits();
                capacity_batches = capacity_batches.saturating_add(batches);
                capacity_bytes = capacity_bytes.saturating_add(bytes);
                own_batches = own_batches.saturating_add(batches);
                own_bytes = own_bytes.saturating_add(bytes);
                queues.push(SignalQueue {
                    signal,
                    queue: Arc::new(queue),
                });
            }
            own.counters.set_queue_capacity(own_batches, own_bytes);
            outputs.push(Output::Otlp(OtlpOutput {
                name: otlp.name.clone(),
                exporter: Arc::new(exporter),
                queues,
                delivery: otlp.delivery.clone(),
            }));
        }
        telemetry
            .export
            .set_queue_capacity(capacity_batches, capacity_bytes);
        Ok(ExportPipeline { outputs, telemetry })
    }

    /// For the start-up log: one line per debug exporter, and one per signal of each OTLP
    /// exporter, where it sends and how it queues. A metrics line reads as before logs existed;
    /// a logs line names the signal: `otlp http/protobuf http://c:4318/v1/logs [otlp logs], …`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for output in &self.outputs {
            let o = match output {
                Output::Debug(exporter, _) => {
                    lines.push(exporter.describe());
                    continue;
                }
                Output::Otlp(o) => o,
            };
            for q in &o.queues {
                let queue = &o.delivery.queue;
                let held = match (queue.enabled, q.queue.file()) {
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
                let label = match q.signal {
                    Signal::Metrics => o.name.clone(),
                    Signal::Logs => format!("{} logs", o.name),
                };
                lines.push(format!(
                    "{} [{label}], {held}",
                    o.exporter.describe_signal(q.signal)
                ));
            }
        }
        lines
    }

    /// Push mode: stdout is supervisord's event channel, so the debug exporters print to
    /// stderr.
    pub fn debug_to_stderr(mut self) -> Self {
        for output in &mut self.outputs {
            if let Output::Debug(Exporter::Debug(debug), _) = output {
                *debug = debug.clone().to_stderr();
            }
        }
        self
    }

    /// Starts a sender task per signal of each OTLP exporter; batches then go in through
    /// [`RunningExports::dispatch`].
    pub fn start(self) -> RunningExports {
        let record_debug = self.outputs.iter().all(|o| matches!(o, Output::Debug(..)));
        let (deadline_tx, deadline_rx) = watch::channel(None);
        let mut senders = JoinSet::new();
        let mut sinks = Vec::with_capacity(self.outputs.len());
        let mut queues = Vec::new();
        for output in self.outputs {
            let o = match output {
                Output::Debug(exporter, recorder) => {
                    sinks.push(Sink::Debug(exporter, recorder));
                    continue;
                }
                Output::Otlp(o) => o,
            };
            for q in o.queues {
                sinks.push(Sink::Queue {
                    signal: q.signal,
                    queue: Arc::clone(&q.queue),
                    max_request_size: o.delivery.max_request_size,
                });
                let name = q.queue.name().to_string();
                queues.push((name.clone(), Arc::clone(&q.queue)));
                let exporter = SignalExporter {
                    exporter: Arc::clone(&o.exporter),
                    signal: q.signal,
                };
                let sender = Sender::new(
                    name,
                    exporter,
                    q.queue,
                    o.delivery.retry.clone(),
                    o.delivery.max_request_size,
                    Arc::clone(&self.telemetry),
                );
                senders.spawn(sender.run(deadline_rx.clone()));
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
    /// Hands one batch to every exporter carrying its signal, in configuration order: printed
    /// by the debug exporter (which prints every signal), or cut to `max_request_size` and
    /// queued in the exporter's queue of the batch's signal.
    pub async fn dispatch(&self, batch: &EncodedBatch) {
        if batch.is_empty() {
            return;
        }
        for sink in &self.sinks {
            match sink {
                Sink::Debug(exporter, recorder) => {
                    let result = match batch.signal {
                        Signal::Metrics => {
                            match ExportMetricsServiceRequest::decode(batch.buffer.clone()) {
                                Ok(request) => exporter.export(&request).await,
                                Err(error) => {
                                    undecodable(batch.signal, &error);
                                    continue;
                                }
                            }
                        }
                        Signal::Logs => {
                            match ExportLogsServiceRequest::decode(batch.buffer.clone()) {
                                Ok(request) => exporter.export_logs(&request).await,
                                Err(error) => {
                                    undecodable(batch.signal, &error);
                                    continue;
                                }
                            }
                        }
                    };
                    // The exporter's own counters always; the totals only when no backend is
                    // configured (then its prints are the exports health reports on).
                    let now = crate::clock::unix_nanos_now();
                    let own = &recorder.own().counters;
                    own.record_attempt(result.is_ok(), now);
                    if result.is_ok() {
                        own.add_sent(batch.resources.iter().map(|(_, points)| points).sum());
                    }
                    if self.record_debug {
                        self.telemetry.export.record_attempt(result.is_ok(), now);
                    }
                    if let Err(error) = result {
                        tracing::warn!(exporter = %exporter.describe(), "export failed: {error}");
                    }
                }
                Sink::Queue {
                    signal,
                    queue,
                    max_request_size,
                } => {
                    if *signal != batch.signal {
                        continue;
                    }
                    for piece in batch::pack_encoded(
                        batch.signal,
                        &batch.buffer,
                        &batch.resources,
                        *max_request_size,
                    ) {
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

fn undecodable(signal: Signal, error: &prost::DecodeError) {
    tracing::error!(
        "a {} batch does not decode for the debug exporter: {error}",
        signal.name()
    );
}

/// After the final flush: what a persistent queue keeps for the next start, or what an in-memory
/// queue loses.
pub(crate) fn report_leftover(name: &str, queue: &SendingQueue, telemetry: &Telemetry) {
    let left = queue.leftover();
    if left.batches == 0 {
        return;
    }
    let lost = queue.memory_only();
    let what = items(queue.signal());
    if let Some(file) = queue.file() {
        let kept_points = left.points - lost.points;
        if kept_points > 0 {
            tracing::info!(
                exporter = name,
                file = %file.display(),
                batches = left.batches - lost.batches,
                points = kept_points,
                "not sent before the {FINAL_EXPORT_LIMIT:?} stop limit: kept in the persistent \
                 sending queue for the next start ({kept_points} {what})"
            );
        }
    }
    if lost.points > 0 {
        telemetry.export.add_dropped(lost.points);
        queue.recorder().own().counters.add_dropped(lost.points);
        tracing::warn!(
            exporter = name,
            batches = lost.batches,
            points = lost.points,
            "not sent before the {FINAL_EXPORT_LIMIT:?} stop limit: {} {what} lost (the sending \
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
