//! The `run` loop: one task per target on its own schedule, feeding the export pipeline.
//!
//! All fallible setup (clients, exporters) happens in [`Runner::new`]; the loops are short.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::config::Settings;
use crate::export::pipeline::{ExportItem, ExportPipeline};
use crate::scrape::poller::TargetPoller;
use crate::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("target '{target}': {source}")]
    Transport {
        target: String,
        source: crate::supervisor::transport::TransportBuildError,
    },
    #[error("exporter: {0}")]
    Exporter(#[from] crate::export::ExportBuildError),
}

pub struct Runner {
    pollers: Vec<TargetPoller>,
    pipeline: ExportPipeline,
    initial_delay: Duration,
    telemetry: Arc<Telemetry>,
}

impl Runner {
    pub fn new(settings: Settings) -> Result<Runner, SetupError> {
        let telemetry = Arc::new(Telemetry::default());
        let pipeline = ExportPipeline::new(&settings, Arc::clone(&telemetry))?;
        let pollers = settings
            .targets
            .into_iter()
            .map(|target| {
                let name = target.name.clone();
                TargetPoller::new(target)
                    .map(|poller| poller.with_telemetry(Arc::clone(&telemetry)))
                    .map_err(|source| SetupError::Transport {
                        target: name,
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Runner {
            pollers,
            pipeline,
            initial_delay: settings.initial_delay,
            telemetry,
        })
    }

    pub fn telemetry(&self) -> Arc<Telemetry> {
        Arc::clone(&self.telemetry)
    }

    /// Polls and exports until `shutdown` completes, then lets each poll in flight finish and
    /// makes one final bounded export.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        for exporter in self.pipeline.describe() {
            tracing::info!(exporter = %exporter, "exporting");
        }
        tracing::info!(targets = self.pollers.len(), "polling");
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<ExportItem>(self.pollers.len().max(1) * 2);
        let mut poll_tasks = tokio::task::JoinSet::new();
        for poller in self.pollers {
            poll_tasks.spawn(poll_loop(
                poller,
                self.initial_delay,
                tx.clone(),
                stop_rx.clone(),
            ));
        }
        drop(tx);
        let export_task = tokio::spawn(self.pipeline.run(rx, stop_rx.clone()));

        shutdown.await;
        tracing::info!("shutting down: finishing polls in flight");
        let _ = stop_tx.send(true);
        while poll_tasks.join_next().await.is_some() {}
        if export_task.await.is_err() {
            tracing::error!("the export task ended abnormally");
        }
        tracing::info!("stopped");
    }
}

async fn poll_loop(
    mut poller: TargetPoller,
    initial_delay: Duration,
    tx: mpsc::Sender<ExportItem>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = poller.target().collection_interval;
    let start = tokio::time::Instant::now() + initial_delay;
    let mut ticker = tokio::time::interval_at(start, interval);
    // A poll that overran its interval starts the next one right after, then keeps the period.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                let outcome = poller.poll().await;
                if tx.send(ExportItem::Poll(outcome)).await.is_err() {
                    break;
                }
            }
        }
    }
}
