//! The `run` loop: one task per target on its own schedule, one export task.
//!
//! All fallible setup (clients, exporters) happens in [`Runner::new`]; the loops are short.
//! Pollers send outcomes over a channel; the export task batches whatever has arrived into one
//! request, so a slow exporter never delays a poll.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::config::{ConfigFormat, Settings};
use crate::export::Exporter;
use crate::metrics::{build_request, MetricToggles};
use crate::scrape::outcome::PollOutcome;
use crate::scrape::poller::TargetPoller;

/// The final export on shutdown gets at most this long.
pub const FINAL_EXPORT_LIMIT: Duration = Duration::from_secs(5);

/// Outcomes batched into one export request at most.
const MAX_OUTCOMES_PER_REQUEST: usize = 1000;

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
    exporters: Vec<Exporter>,
    format: ConfigFormat,
    toggles: MetricToggles,
    initial_delay: Duration,
}

impl Runner {
    pub fn new(settings: Settings) -> Result<Runner, SetupError> {
        let exporters = settings
            .exporters
            .iter()
            .map(Exporter::new)
            .collect::<Result<Vec<_>, _>>()?;
        let pollers = settings
            .targets
            .into_iter()
            .map(|target| {
                let name = target.name.clone();
                TargetPoller::new(target).map_err(|source| SetupError::Transport {
                    target: name,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Runner {
            pollers,
            exporters,
            format: settings.format,
            toggles: settings.metrics,
            initial_delay: settings.initial_delay,
        })
    }

    /// Polls and exports until `shutdown` completes, then lets each poll in flight finish and
    /// makes one final export bounded by [`FINAL_EXPORT_LIMIT`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        for exporter in &self.exporters {
            tracing::info!(exporter = %exporter.describe(), "exporting");
        }
        tracing::info!(targets = self.pollers.len(), "polling");
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<PollOutcome>(self.pollers.len().max(1) * 2);
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
        let exporter = ExportLoop {
            exporters: self.exporters,
            format: self.format,
            toggles: self.toggles,
        };
        let export_task = tokio::spawn(exporter.run(rx, stop_rx.clone()));

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
    tx: mpsc::Sender<PollOutcome>,
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
                if tx.send(outcome).await.is_err() {
                    break;
                }
            }
        }
    }
}

struct ExportLoop {
    exporters: Vec<Exporter>,
    format: ConfigFormat,
    toggles: MetricToggles,
}

impl ExportLoop {
    async fn run(self, mut rx: mpsc::Receiver<PollOutcome>, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(outcome) => {
                        batch.push(outcome);
                        drain_ready(&mut rx, &mut batch);
                        self.export(&batch).await;
                        batch.clear();
                    }
                    None => break,
                },
                _ = stop.changed() => break,
            }
        }
        // Shutdown: the pollers finish their polls in flight (each bounded by its timeout) and
        // drop their senders, which closes the channel; what they produced goes out in one last
        // export bounded by FINAL_EXPORT_LIMIT.
        while let Some(outcome) = rx.recv().await {
            batch.push(outcome);
        }
        if !batch.is_empty()
            && tokio::time::timeout(FINAL_EXPORT_LIMIT, self.export(&batch))
                .await
                .is_err()
        {
            tracing::warn!("final export abandoned after {FINAL_EXPORT_LIMIT:?}");
        }
    }

    async fn export(&self, outcomes: &[PollOutcome]) {
        for chunk in outcomes.chunks(MAX_OUTCOMES_PER_REQUEST) {
            let request = build_request(chunk, self.format, &self.toggles);
            for exporter in &self.exporters {
                if let Err(error) = exporter.export(&request).await {
                    tracing::warn!(exporter = %exporter.describe(), "export failed: {error}");
                }
            }
        }
    }
}

fn drain_ready(rx: &mut mpsc::Receiver<PollOutcome>, batch: &mut Vec<PollOutcome>) {
    while batch.len() < MAX_OUTCOMES_PER_REQUEST {
        match rx.try_recv() {
            Ok(outcome) => batch.push(outcome),
            Err(_) => break,
        }
    }
}
