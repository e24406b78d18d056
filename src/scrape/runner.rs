//! The `run` loop: one task per target on its own schedule, feeding the export pipeline; the
//! receiver's own metrics and health endpoint beside them; targets reloaded in place.
//!
//! All fallible setup (clients, exporters, the health port) happens in [`Runner::new`]; the
//! loops are short.
//!
//! Reload (SIGHUP, see [`Runner::run_with_reloads`]) applies the new file's targets only:
//! an unchanged target keeps its task, connection and schedule; a changed one is restarted;
//! a removed one is stopped and its self-telemetry forgotten; a new one starts after
//! `initial_delay`. First polls are spread evenly over the interval (see [`spread`]). Exporters, the sending queue, metric switches, self-telemetry and the
//! health endpoint are read at start only: a reload that changes them says so in a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::admin::{AdminError, HealthServer};
use crate::config::{ExporterSettings, Settings, Target, TelemetrySettings};
use crate::export::pipeline::{ExportItem, ExportPipeline};
use crate::scrape::poller::TargetPoller;
use crate::telemetry::self_metrics::SelfResource;
use crate::telemetry::{emitter, Telemetry};

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
}

/// Room in the channel between the pollers and the pipeline: every target's next outcome and
/// a self-telemetry report fit while the pipeline is busy with the previous batch.
const MIN_CHANNEL: usize = 16;

pub struct Runner {
    pollers: Vec<(Fingerprint, TargetPoller)>,
    pipeline: ExportPipeline,
    initial_delay: Duration,
    telemetry: Arc<Telemetry>,
    self_telemetry: TelemetrySettings,
    health: Option<HealthServer>,
    /// What a reload cannot change, to warn when the new file changes it anyway.
    restart_only: RestartOnly,
}

impl Runner {
    pub fn new(settings: Settings) -> Result<Runner, SetupError> {
        let telemetry = Arc::new(Telemetry::default());
        let pipeline = ExportPipeline::new(&settings, Arc::clone(&telemetry))?;
        let restart_only = RestartOnly::of(&settings);
        let health = match &settings.health {
            Some(health) => Some(HealthServer::bind(health, Arc::clone(&telemetry))?),
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
        Ok(Runner {
            pollers,
            pipeline,
            initial_delay: settings.initial_delay,
            telemetry,
            self_telemetry: settings.telemetry,
            health,
            restart_only,
        })
    }

    pub fn telemetry(&self) -> Arc<Telemetry> {
        Arc::clone(&self.telemetry)
    }

    /// The health endpoint's bound address, when it is configured.
    pub fn health_addr(&self) -> Option<std::net::SocketAddr> {
        self.health.as_ref().map(HealthServer::local_addr)
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
            initial_delay,
            telemetry,
            self_telemetry,
            health,
            restart_only,
        } = self;
        for exporter in pipeline.describe() {
            tracing::info!(exporter = %exporter, "exporting");
        }
        tracing::info!(targets = pollers.len(), "polling");
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<ExportItem>((pollers.len() * 2).max(MIN_CHANNEL));
        let export_task = tokio::spawn(pipeline.run(rx, stop_rx.clone()));

        let mut targets = Targets {
            running: BTreeMap::new(),
            tx: tx.clone(),
            stop: stop_rx.clone(),
            telemetry: Arc::clone(&telemetry),
            restart_only,
        };
        let count = pollers.len();
        for (index, (fingerprint, poller)) in pollers.into_iter().enumerate() {
            let offset = spread(index, count, poller.target().collection_interval);
            targets.spawn(fingerprint, poller, initial_delay + offset);
        }
        let emitter_task = self_telemetry.metrics.then(|| {
            tracing::info!(
                interval = ?self_telemetry.interval,
                "sending the receiver's own metrics"
            );
            tokio::spawn(emitter::run(
                Arc::clone(&telemetry),
                SelfResource::detect(),
                self_telemetry.interval,
                tx.clone(),
                stop_rx.clone(),
            ))
        });
        // Only the pollers and the emitter may keep the channel open: the pipeline drains it
        // on shutdown until every sender is gone.
        drop(tx);
        let health_task = health.map(|server| tokio::spawn(server.serve(stop_rx.clone())));

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
        if let Some(task) = emitter_task {
            let _ = task.await;
        }
        if export_task.await.is_err() {
            tracing::error!("the export task ended abnormally");
        }
        if let Some(task) = health_task {
            let _ = task.await;
        }
        tracing::info!("stopped");
    }
}

/// The running poll tasks, by target name.
struct Targets {
    running: BTreeMap<String, RunningTarget>,
    tx: mpsc::Sender<ExportItem>,
    stop: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
    restart_only: RestartOnly,
}

struct RunningTarget {
    fingerprint: Fingerprint,
    task: JoinHandle<()>,
}

impl Targets {
    fn spawn(&mut self, fingerprint: Fingerprint, poller: TargetPoller, initial_delay: Duration) {
        let poller = poller.with_telemetry(Arc::clone(&self.telemetry));
        let name = poller.target().name.clone();
        self.telemetry.polls.register(&name);
        let task = tokio::spawn(poll_loop(
            poller,
            initial_delay,
            self.tx.clone(),
            self.stop.clone(),
            Arc::clone(&self.telemetry),
        ));
        self.running
            .insert(name, RunningTarget { fingerprint, task });
    }

    /// Applies a new configuration's targets, or none of them: every new client is built
    /// before anything running is touched.
    async fn reload(&mut self, settings: Settings) {
        let changed_sections = self.restart_only.changed(&RestartOnly::of(&settings));
        let initial_delay = settings.initial_delay;
        let wanted: Vec<(Fingerprint, Target)> = settings
            .targets
            .into_iter()
            .map(|target| (Fingerprint::of(&target), target))
            .collect();
        let current: BTreeMap<&str, Fingerprint> = self
            .running
            .iter()
            .map(|(name, running)| (name.as_str(), running.fingerprint))
            .collect();
        let plan = Plan::new(
            &current,
            wanted
                .iter()
                .map(|(fp, target)| (target.name.as_str(), *fp)),
        );

        let mut started = Vec::new();
        for (fingerprint, target) in wanted {
            if !plan.starts(&target.name) {
                continue;
            }
            let name = target.name.clone();
            match TargetPoller::new(target) {
                Ok(poller) => started.push((fingerprint, poller)),
                Err(error) => {
                    tracing::error!(
                        event = "reload_failed",
                        "target '{name}': {error}; configuration not reloaded, the running \
                         one is kept"
                    );
                    return;
                }
            }
        }

        if !changed_sections.is_empty() {
            tracing::warn!(
                event = "reload_restart_needed",
                "{} changed: only targets are reloaded, the rest applies at the next restart",
                changed_sections.join(", ")
            );
        }
        for name in plan.removed.iter().chain(&plan.changed) {
            if let Some(running) = self.running.remove(name) {
                // The poll in flight of a stopped target is abandoned: its result would be
                // for a configuration that no longer exists.
                running.task.abort();
                let _ = running.task.await;
            }
        }
        // Only once the task is gone can no late poll bring its series back.
        for name in &plan.removed {
            self.telemetry.polls.forget(name);
        }
        let count = started.len();
        for (index, (fingerprint, poller)) in started.into_iter().enumerate() {
            let offset = spread(index, count, poller.target().collection_interval);
            self.spawn(fingerprint, poller, initial_delay + offset);
        }
        tracing::info!(
            event = "reloaded",
            added = ?plan.added,
            changed = ?plan.changed,
            removed = ?plan.removed,
            unchanged = plan.unchanged,
            "configuration reloaded"
        );
    }

    /// Waits for every poll task, once `stop` is set, and drops the last sender they hold.
    async fn finish(self) {
        for (_, running) in self.running {
            let _ = running.task.await;
        }
    }
}

/// How a reload changes the running targets, by name.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    added: Vec<String>,
    changed: Vec<String>,
    removed: Vec<String>,
    unchanged: usize,
}

impl Plan {
    fn new<'a>(
        current: &BTreeMap<&str, Fingerprint>,
        wanted: impl Iterator<Item = (&'a str, Fingerprint)>,
    ) -> Plan {
        let mut plan = Plan::default();
        let mut kept = BTreeSet::new();
        for (name, fingerprint) in wanted {
            kept.insert(name);
            match current.get(name) {
                None => plan.added.push(name.to_string()),
                Some(running) if *running != fingerprint => plan.changed.push(name.to_string()),
                Some(_) => plan.unchanged += 1,
            }
        }
        plan.removed = current
            .keys()
            .filter(|name| !kept.contains(*name))
            .map(|name| name.to_string())
            .collect();
        plan
    }

    fn starts(&self, name: &str) -> bool {
        self.added.iter().chain(&self.changed).any(|n| n == name)
    }
}

/// Identifies a configuration by value without keeping it: a hash of its `Debug` form (which
/// covers every field, present and future, regexes by pattern) and of the secrets that form
/// masks, so a changed password counts as a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64);

impl Fingerprint {
    fn of(target: &Target) -> Fingerprint {
        let mut hasher = DefaultHasher::new();
        format!("{target:?}").hash(&mut hasher);
        if let Some(credentials) = &target.credentials {
            credentials.password.expose().hash(&mut hasher);
        }
        Fingerprint(hasher.finish())
    }

    fn of_debug(value: &impl std::fmt::Debug, secrets: &[&str]) -> Fingerprint {
        let mut hasher = DefaultHasher::new();
        format!("{value:?}").hash(&mut hasher);
        secrets.hash(&mut hasher);
        Fingerprint(hasher.finish())
    }
}

/// The settings a reload does not apply, by section, to name what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RestartOnly {
    sections: Vec<(&'static str, Fingerprint)>,
    /// Everything but the targets and `initial_delay` (which reloaded targets use), for
    /// settings added after this list was written.
    rest: Fingerprint,
}

impl RestartOnly {
    fn of(settings: &Settings) -> RestartOnly {
        let header_values: Vec<&str> = settings
            .exporters
            .iter()
            .flat_map(|exporter| match exporter {
                ExporterSettings::Otlp(otlp) => otlp.headers.as_slice(),
                _ => &[],
            })
            .map(|(_, value)| value.expose())
            .collect();
        let mut rest = settings.clone();
        rest.targets.clear();
        rest.warnings.clear();
        rest.initial_delay = Duration::ZERO;
        RestartOnly {
            sections: vec![
                ("format", Fingerprint::of_debug(&settings.format, &[])),
                (
                    "exporters",
                    Fingerprint::of_debug(&settings.exporters, &header_values),
                ),
                ("metrics", Fingerprint::of_debug(&settings.metrics, &[])),
                ("telemetry", Fingerprint::of_debug(&settings.telemetry, &[])),
                ("health", Fingerprint::of_debug(&settings.health, &[])),
            ],
            rest: Fingerprint::of_debug(&rest, &header_values),
        }
    }

    /// The names of the sections that differ; "other settings" when only the rest does.
    fn changed(&self, new: &RestartOnly) -> Vec<&'static str> {
        let mut changed: Vec<&'static str> = self
            .sections
            .iter()
            .zip(&new.sections)
            .filter(|(old, new)| old != new)
            .map(|((name, _), _)| *name)
            .collect();
        if changed.is_empty() && self.rest != new.rest {
            changed.push("other settings");
        }
        changed
    }
}

/// Where in its interval the `index`-th of `count` targets polls first: evenly spread, so a
/// fleet never polls in lock-step (a burst of thousands of polls every interval would make the
/// last ones late and need the CPU all at once). Deterministic, in configuration order, so
/// phases are the same at every start; one target polls at once (offset zero), as Datadog's
/// check and the OTel Collector's scrapers do.
fn spread(index: usize, count: usize, interval: Duration) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    let nanos = interval.as_nanos() * (index as u128) / (count as u128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

async fn poll_loop(
    mut poller: TargetPoller,
    initial_delay: Duration,
    tx: mpsc::Sender<ExportItem>,
    mut stop: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
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
            scheduled = ticker.tick() => {
                telemetry.polls.record_start(scheduled.elapsed());
                let outcome = poller.poll().await;
                if tx.send(ExportItem::Poll(outcome)).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;
    use crate::config::{load_bytes, Credentials};

    fn settings(text: &str) -> Settings {
        load_bytes(std::path::Path::new("r.yaml"), text.as_bytes(), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = "targets:\n  - {name: a, endpoint: 'http://127.0.0.1:1'}\n  \
                        - {name: b, endpoint: 'http://127.0.0.1:2'}\nexporters: {debug: {}}\n";

    fn fingerprints(s: &Settings) -> BTreeMap<String, Fingerprint> {
        s.targets
            .iter()
            .map(|t| (t.name.clone(), Fingerprint::of(t)))
            .collect()
    }

    fn plan(old: &Settings, new: &Settings) -> Plan {
        let old = fingerprints(old);
        let current = old.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let new = fingerprints(new);
        Plan::new(&current, new.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    #[test]
    fn first_polls_spread_evenly_over_the_interval() {
        let interval = Duration::from_secs(10);
        assert_eq!(spread(0, 1, interval), Duration::ZERO);
        let offsets: Vec<Duration> = (0..4).map(|i| spread(i, 4, interval)).collect();
        assert_eq!(
            offsets,
            [0, 2500, 5000, 7500].map(Duration::from_millis).to_vec()
        );
        assert!(spread(9_999, 10_000, interval) < interval);
    }

    #[test]
    fn a_reload_sorts_targets_into_added_changed_removed_and_kept() {
        let old = settings(BASE);
        let new = settings(
            "targets:\n  - {name: a, endpoint: 'http://127.0.0.1:1'}\n  \
             - {name: b, endpoint: 'http://127.0.0.1:2', include: {regex: ['^w']}}\n  \
             - {name: c, endpoint: 'http://127.0.0.1:3'}\nexporters: {debug: {}}\n",
        );
        assert_eq!(
            plan(&old, &new),
            Plan {
                added: vec!["c".into()],
                changed: vec!["b".into()],
                removed: vec![],
                unchanged: 1,
            }
        );
        let fewer = settings(
            "targets:\n  - {name: b, endpoint: 'http://127.0.0.1:2'}\nexporters: {debug: {}}\n",
        );
        assert_eq!(
            plan(&old, &fewer),
            Plan {
                removed: vec!["a".into()],
                unchanged: 1,
                ..Plan::default()
            }
        );
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let old = settings(BASE);
        let new = settings(BASE);
        assert_eq!(
            plan(&old, &new),
            Plan {
                unchanged: 2,
                ..Plan::default()
            }
        );
        assert!(RestartOnly::of(&old)
            .changed(&RestartOnly::of(&new))
            .is_empty());
    }

    #[test]
    fn a_new_password_is_a_change_though_it_prints_as_stars() {
        let mut target = settings(BASE).targets.remove(0);
        target.credentials = Some(Credentials {
            username: "u".into(),
            password: Secret::new("one"),
        });
        let before = Fingerprint::of(&target);
        target.credentials = Some(Credentials {
            username: "u".into(),
            password: Secret::new("two"),
        });
        assert_ne!(before, Fingerprint::of(&target));
    }

    #[test]
    fn sections_that_need_a_restart_are_named() {
        let old = RestartOnly::of(&settings(BASE));
        let with = |extra: &str| RestartOnly::of(&settings(&format!("{BASE}{extra}")));
        assert_eq!(
            old.changed(&with("telemetry: {interval: 3s}\n")),
            ["telemetry"]
        );
        assert_eq!(
            old.changed(&with("metrics: {supervisord.state: {enabled: false}}\n")),
            ["metrics"]
        );
        assert_eq!(old.changed(&with("health: {}\n")), ["health"]);
        // Timing settings reach targets (changed) or only new targets (initial_delay).
        assert!(old.changed(&with("initial_delay: 5s\n")).is_empty());
        let grpc = |key: &str| {
            RestartOnly::of(&settings(&format!(
                "targets: [{{name: a, endpoint: 'http://h'}}]\nexporters:\n  otlp:\n    \
                 endpoint: http://localhost:4317\n    headers: {{x-key: {key}}}\n"
            )))
        };
        assert_eq!(grpc("one").changed(&grpc("two")), ["exporters"]);
    }
}
