//! The `run` loop: builds the export pipeline, the target tasks, the receiver's own metrics and
//! the health and admin endpoints; applies reloads; stops them in order: polls in flight, the
//! last export of the data, the last export of the receiver's own metrics (within what is left
//! of the same stop limit), the health and admin endpoints (so `status` answers while it stops).
//!
//! All fallible setup (clients, exporters, the health and admin endpoints) happens in
//! [`Runner::new`]; the
//! loops are short. Reload (SIGHUP, see [`Runner::run_with_reloads`]) applies the new file's
//! targets only ([`super::reload`]); exporters, the sending queue, metric switches,
//! self-telemetry and the health and admin endpoints are read at start only, and a reload that changes
//! them says so in a warning.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::pipeline::{self, ExportItem, SharedOffsets};
use super::reload::{Fingerprint, RestartOnly};
use super::self_telemetry::{self, SelfTelemetryError};
use super::targets::{spread, Targets};
use crate::admin::server::{AdminServer, AdminServerError};
use crate::admin::{AdminError, HealthServer};
use crate::export::pipeline::{ExportPipeline, FINAL_EXPORT_LIMIT};
use crate::schema::MetricToggles;
use crate::scrape::changes::CountTemporality;
use crate::scrape::output::offsets::OffsetStore;
use crate::scrape::poller::TargetPoller;
use crate::settings::{ExporterSettings, LogSettings, Settings, Signal};
use crate::telemetry::self_metrics::SelfMetrics;
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
    #[error(transparent)]
    Health(#[from] AdminError),
    #[error(transparent)]
    Admin(#[from] AdminServerError),
    #[error("self-telemetry: {0}")]
    SelfTelemetry(#[from] SelfTelemetryError),
}

/// Room in the channel between the pollers and the pipeline: every target's next outcome fits
/// while the pipeline is busy with the previous batch.
const MIN_CHANNEL: usize = 16;

pub struct Runner {
    pollers: Vec<(Fingerprint, TargetPoller)>,
    pipeline: ExportPipeline,
    toggles: MetricToggles,
    logs: LogSettings,
    counts: CountTemporality,
    initial_delay: Duration,
    telemetry: Arc<Telemetry>,
    /// Push mode (`listen`): the events of the one target's supervisord.
    events: Option<mpsc::Receiver<super::listen::Received>>,
    /// The receiver's own metrics, already exporting on their own; `None` when off or when
    /// there is no OTLP exporter.
    self_metrics: Option<SelfMetrics>,
    health: Option<HealthServer>,
    /// The admin endpoint: the status API, `/healthz` and `/metrics` (native `admin:`).
    admin: Option<AdminServer>,
    /// What a reload cannot change, to warn when the new file changes it anyway.
    restart_only: RestartOnly,
    /// Where output tails save their offsets: beside the first persistent queue of logs.
    offsets: Option<SharedOffsets>,
}

/// The directory of the first persistent queue that holds logs: output offsets are saved
/// there, so they survive a restart exactly when the records they follow do. Without one, a
/// restart starts each log at its end, as a new target does.
pub fn offsets_storage(exporters: &[ExporterSettings]) -> Option<&std::path::Path> {
    exporters.iter().find_map(|exporter| match exporter {
        ExporterSettings::Otlp(otlp)
            if otlp.signals.contains(&Signal::Logs) && otlp.delivery.queue.enabled =>
        {
            otlp.delivery.queue.storage.as_deref()
        }
        _ => None,
    })
}

impl Runner {
    pub fn new(settings: Settings) -> Result<Runner, SetupError> {
        let telemetry = Arc::new(Telemetry::default());
        telemetry.receiver.set_config_format(settings.format);
        let pipeline = ExportPipeline::new(&settings.exporters, Arc::clone(&telemetry))?;
        let restart_only = RestartOnly::of(&settings);
        let offsets = offsets_storage(&settings.exporters)
            .map(|storage| Arc::new(std::sync::Mutex::new(OffsetStore::new(storage))));
        let health = match &settings.health {
            Some(health) => Some(HealthServer::bind(health, Arc::clone(&telemetry))?),
            None => None,
        };
        let admin = match &settings.admin {
            Some(admin) => Some(AdminServer::bind(admin, Arc::clone(&telemetry))?),
            None => None,
        };
        let pollers = settings
            .targets
            .into_iter()
            .map(|target| {
                let name = target.name.clone();
                let fingerprint = Fingerprint::of(&target);
                TargetPoller::new(target)
                    .map(|poller| (fingerprint, poller))
                    .map_err(|source| SetupError::Transport {
                        target: name,
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Last: the SDK's reader thread starts here, and nothing after it can fail.
        let self_metrics = self_telemetry::start(
            &settings.telemetry,
            settings.temporality,
            &settings.exporters,
            &telemetry,
        )?;
        Ok(Runner {
            pollers,
            pipeline,
            toggles: settings.metrics,
            logs: settings.logs,
            counts: super::count_temporality(settings.temporality),
            initial_delay: settings.initial_delay,
            events: None,
            telemetry,
            self_metrics,
            health,
            admin,
            restart_only,
            offsets,
        })
    }

    /// Push mode: `events` (from [`super::listen::serve`]) tell the changes of the one target
    /// (the caller makes sure there is exactly one).
    /// stdout then belongs to the listener protocol: the debug exporter prints to stderr.
    pub fn with_events(mut self, events: mpsc::Receiver<super::listen::Received>) -> Self {
        self.events = Some(events);
        self.pipeline = self.pipeline.debug_to_stderr();
        self
    }

    pub fn telemetry(&self) -> Arc<Telemetry> {
        Arc::clone(&self.telemetry)
    }

    /// The health endpoint's bound address, when it is configured.
    pub fn health_addr(&self) -> Option<std::net::SocketAddr> {
        self.health.as_ref().map(HealthServer::local_addr)
    }

    /// The admin endpoint's bound address (`127.0.0.1:8787`, `unix:///path`), when configured.
    pub fn admin_addr(&self) -> Option<&str> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    /// Polls and exports until `shutdown` completes, then lets each poll in flight finish and
    /// makes one final bounded export.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (_never, reloads) = mpsc::channel(1);
        self.run_with_reloads(shutdown, reloads).await;
    }

    /// Like [`Runner::run`], applying each settings received on `reloads` (see the module
    /// documentation for what a reload changes).
    pub async fn run_with_reloads(
        self,
        shutdown: impl Future<Output = ()>,
        mut reloads: mpsc::Receiver<Settings>,
    ) {
        let Runner {
            pollers,
            pipeline,
            toggles,
            logs,
            counts,
            initial_delay,
            telemetry,
            events,
            self_metrics,
            health,
            admin,
            restart_only,
            offsets,
        } = self;
        for exporter in pipeline.describe() {
            tracing::info!(exporter = %exporter, "exporting");
        }
        tracing::info!(targets = pollers.len(), "polling");
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<ExportItem>((pollers.len() * 2).max(MIN_CHANNEL));
        let export_task = tokio::spawn(pipeline::run(
            pipeline.start(),
            toggles,
            logs,
            offsets.clone(),
            Arc::clone(&telemetry.latest),
            rx,
            stop_rx.clone(),
        ));

        let mut targets = Targets::new(
            tx.clone(),
            stop_rx.clone(),
            Arc::clone(&telemetry),
            restart_only,
            counts,
            offsets,
        );
        let count = pollers.len();
        let mut events = events;
        for (index, (fingerprint, poller)) in pollers.into_iter().enumerate() {
            let offset = spread(index, count, poller.target().collection_interval);
            match events.take() {
                Some(events) => targets.spawn_push(fingerprint, poller, initial_delay, events),
                None => targets.spawn(fingerprint, poller, initial_delay + offset),
            }
        }
        // Only the pollers may keep the channel open: the pipeline drains it on shutdown until
        // every sender is gone.
        drop(tx);
        let health_task = health.map(|server| tokio::spawn(server.serve(stop_rx.clone())));
        let admin_task = admin.map(|server| tokio::spawn(server.serve(stop_rx.clone())));

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(settings) = reloads.recv() => targets.reload(settings).await,
            }
        }

        tracing::info!("shutting down: finishing polls in flight");
        let _ = stop_tx.send(true);
        targets.finish().await;
        let flushing_since = tokio::time::Instant::now();
        if export_task.await.is_err() {
            tracing::error!("the export task ended abnormally");
        }
        // After the data's last export, so the last report counts what it sent; within what is
        // left of the same limit, so a stop takes no longer than before. A backend that made
        // the data use it all is most likely down for these too.
        if let Some(self_metrics) = self_metrics {
            let left = FINAL_EXPORT_LIMIT.saturating_sub(flushing_since.elapsed());
            if let Err(error) = self_metrics.shutdown(left).await {
                tracing::warn!("the receiver's own metrics: no last export: {error}");
            }
        }
        if let Some(task) = health_task {
            let _ = task.await;
        }
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        tracing::info!("stopped");
    }
}
