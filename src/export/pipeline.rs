//! Between the pollers and the exporters: batches poll outcomes into OTLP requests and sends
//! them to every exporter.
//!
//! Pollers hand over [`ExportItem`]s through a channel; the pipeline owns everything after that,
//! so polling never waits on a backend beyond the channel's room.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use tokio::sync::{mpsc, watch};

use crate::config::{ConfigFormat, Settings};
use crate::export::{ExportBuildError, Exporter};
use crate::metrics::{build_request, MetricToggles};
use crate::scrape::outcome::PollOutcome;
use crate::telemetry::Telemetry;

/// The final export on shutdown gets at most this long.
pub const FINAL_EXPORT_LIMIT: Duration = Duration::from_secs(5);

/// Outcomes batched into one export request at most.
const MAX_OUTCOMES_PER_REQUEST: usize = 1000;

/// What flows into the pipeline.
#[derive(Debug)]
pub enum ExportItem {
    Poll(PollOutcome),
    /// The receiver's own metrics, already built (their own scope).
    SelfTelemetry(ResourceMetrics),
}

pub struct ExportPipeline {
    exporters: Vec<Exporter>,
    format: ConfigFormat,
    toggles: MetricToggles,
    telemetry: Arc<Telemetry>,
}

impl ExportPipeline {
    /// All fallible setup: every exporter is built here, before anything is polled.
    pub fn new(settings: &Settings, telemetry: Arc<Telemetry>) -> Result<Self, ExportBuildError> {
        let exporters = settings
            .exporters
            .iter()
            .map(Exporter::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExportPipeline {
            exporters,
            format: settings.format,
            toggles: settings.metrics.clone(),
            telemetry,
        })
    }

    pub fn describe(&self) -> Vec<String> {
        self.exporters.iter().map(Exporter::describe).collect()
    }

    /// Exports what arrives until `stop` turns true; then drains the channel (closed once every
    /// poller finished its poll in flight) into one final export bounded by
    /// [`FINAL_EXPORT_LIMIT`].
    pub async fn run(self, mut rx: mpsc::Receiver<ExportItem>, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(item) => {
                        batch.push(item);
                        drain_ready(&mut rx, &mut batch);
                        self.export(&batch).await;
                        batch.clear();
                    }
                    None => break,
                },
                _ = stop.changed() => break,
            }
        }
        while let Some(item) = rx.recv().await {
            batch.push(item);
        }
        if !batch.is_empty()
            && tokio::time::timeout(FINAL_EXPORT_LIMIT, self.export(&batch))
                .await
                .is_err()
        {
            tracing::warn!("final export abandoned after {FINAL_EXPORT_LIMIT:?}");
        }
    }

    async fn export(&self, items: &[ExportItem]) {
        for chunk in items.chunks(MAX_OUTCOMES_PER_REQUEST) {
            let mut outcomes = Vec::with_capacity(chunk.len());
            let mut own = Vec::new();
            for item in chunk {
                match item {
                    ExportItem::Poll(outcome) => outcomes.push(outcome.clone()),
                    ExportItem::SelfTelemetry(resource) => own.push(resource.clone()),
                }
            }
            let mut request = build_request(&outcomes, self.format, &self.toggles);
            request.resource_metrics.extend(own);
            let now = crate::scrape::poller::unix_nanos_now();
            for exporter in &self.exporters {
                let result = exporter.export(&request).await;
                self.telemetry.export.record_attempt(result.is_ok(), now);
                if let Err(error) = result {
                    tracing::warn!(exporter = %exporter.describe(), "export failed: {error}");
                }
            }
        }
    }
}

fn drain_ready(rx: &mut mpsc::Receiver<ExportItem>, batch: &mut Vec<ExportItem>) {
    while batch.len() < MAX_OUTCOMES_PER_REQUEST {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}
