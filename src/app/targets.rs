//! The target tasks: one per target on its own schedule, each polling and handing its outcome
//! to the pipeline; started, replaced and stopped as a reload says.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::pipeline::{ExportItem, SharedOffsets};
use super::reload::{Fingerprint, Plan, RestartOnly};
use crate::scrape::changes::{ChangeTracker, CountTemporality, Source};
use crate::scrape::output::OutputTailer;
use crate::scrape::poller::TargetPoller;
use crate::settings::{Settings, Target};
use crate::telemetry::Telemetry;

/// The running poll tasks, by target name.
pub(super) struct Targets {
    running: BTreeMap<String, RunningTarget>,
    tx: mpsc::Sender<ExportItem>,
    stop: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
    restart_only: RestartOnly,
    /// The temporality of the counts every tracker keeps.
    counts: CountTemporality,
    /// Where output tails resume after a restart; `None` without a persistent queue.
    offsets: Option<SharedOffsets>,
}

struct RunningTarget {
    fingerprint: Fingerprint,
    task: JoinHandle<()>,
    /// Outlives the task: a changed target's new task takes it over.
    tracker: Arc<Mutex<ChangeTracker>>,
    /// The output tail, likewise: its offsets are where the new task goes on reading.
    output: Option<SharedTailer>,
}

/// A target's output tail, shared with the task that replaces its task after a reload (an
/// async lock: a poll holds it while it reads).
pub(super) type SharedTailer = Arc<tokio::sync::Mutex<OutputTailer>>;

impl Targets {
    pub(super) fn new(
        tx: mpsc::Sender<ExportItem>,
        stop: watch::Receiver<bool>,
        telemetry: Arc<Telemetry>,
        restart_only: RestartOnly,
        counts: CountTemporality,
        offsets: Option<SharedOffsets>,
    ) -> Targets {
        Targets {
            running: BTreeMap::new(),
            tx,
            stop,
            telemetry,
            restart_only,
            counts,
            offsets,
        }
    }

    /// The output tail of `target` when it tails output: the one its previous task used, with
    /// the new settings, or a new one, which resumes where a previous run's saved offsets say
    /// (or at the end of each log).
    fn output_tailer(
        &self,
        target: &Target,
        previous: Option<SharedTailer>,
    ) -> Option<SharedTailer> {
        let settings = target.output.clone()?;
        if let Some(tailer) = previous {
            // The previous task is gone (aborted and awaited), so nothing holds the lock.
            let reconfigured = match tailer.try_lock() {
                Ok(mut held) => {
                    held.reconfigure(settings.clone());
                    true
                }
                Err(_) => false,
            };
            if reconfigured {
                return Some(tailer);
            }
        }
        let resumed = self.offsets.as_ref().and_then(|offsets| {
            offsets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .load(&target.name, &target.endpoint.display())
        });
        Some(Arc::new(tokio::sync::Mutex::new(OutputTailer::new(
            target, settings, resumed,
        ))))
    }

    /// A tracker for a target new to this receiver: changes from comparing polls.
    fn new_tracker(&self) -> Arc<Mutex<ChangeTracker>> {
        Arc::new(Mutex::new(ChangeTracker::new(Source::Polls, self.counts)))
    }

    pub(super) fn spawn(
        &mut self,
        fingerprint: Fingerprint,
        poller: TargetPoller,
        initial_delay: Duration,
    ) {
        let tracker = self.new_tracker();
        let output = self.output_tailer(poller.target(), None);
        self.spawn_with(fingerprint, poller, tracker, output, initial_delay);
    }

    fn spawn_with(
        &mut self,
        fingerprint: Fingerprint,
        poller: TargetPoller,
        tracker: Arc<Mutex<ChangeTracker>>,
        output: Option<SharedTailer>,
        initial_delay: Duration,
    ) {
        self.start_task(
            fingerprint,
            poller,
            tracker,
            output,
            |poller, tx, stop, telemetry| {
                tokio::spawn(poll_loop(poller, initial_delay, tx, stop, telemetry))
            },
        );
    }

    /// Push mode's one target: polled like the others, and told of changes by `events`.
    pub(super) fn spawn_push(
        &mut self,
        fingerprint: Fingerprint,
        poller: TargetPoller,
        initial_delay: Duration,
        events: mpsc::Receiver<super::listen::Received>,
    ) {
        let tracker = Arc::new(Mutex::new(ChangeTracker::new(Source::Events, self.counts)));
        let output = self.output_tailer(poller.target(), None);
        self.start_task(
            fingerprint,
            poller,
            tracker,
            output,
            |poller, tx, stop, telemetry| {
                tokio::spawn(super::push::push_loop(
                    poller,
                    initial_delay,
                    events,
                    tx,
                    stop,
                    telemetry,
                ))
            },
        );
    }

    /// Gives `poller` its telemetry, tracker, resource reader and output tail, registers it
    /// and starts its loop (`run`'s schedule or push mode's).
    fn start_task(
        &mut self,
        fingerprint: Fingerprint,
        poller: TargetPoller,
        tracker: Arc<Mutex<ChangeTracker>>,
        output: Option<SharedTailer>,
        spawn: impl FnOnce(
            TargetPoller,
            mpsc::Sender<ExportItem>,
            watch::Receiver<bool>,
            Arc<Telemetry>,
        ) -> JoinHandle<()>,
    ) {
        let poller = poller
            .with_telemetry(Arc::clone(&self.telemetry))
            .with_tracker(Arc::clone(&tracker))
            .with_resources(self.counts.cpu_time)
            .with_output(output.clone());
        let name = poller.target().name.clone();
        self.telemetry
            .polls
            .register_target(&name, &poller.target().endpoint.display());
        self.telemetry.latest.register(&name);
        let task = spawn(
            poller,
            self.tx.clone(),
            self.stop.clone(),
            Arc::clone(&self.telemetry),
        );
        self.running.insert(
            name,
            RunningTarget {
                fingerprint,
                task,
                tracker,
                output,
            },
        );
    }

    /// Applies a new configuration's targets, or none of them: every new client is built
    /// before anything running is touched.
    pub(super) async fn reload(&mut self, settings: Settings) {
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
        let mut trackers = BTreeMap::new();
        for name in plan.removed.iter().chain(&plan.changed) {
            if let Some(running) = self.running.remove(name) {
                // The poll in flight of a stopped target is abandoned: its result would be
                // for a configuration that no longer exists.
                running.task.abort();
                let _ = running.task.await;
                trackers.insert(name.clone(), (running.tracker, running.output));
            }
        }
        // Only once the task is gone can no late poll bring its series back.
        for name in &plan.removed {
            self.telemetry.polls.forget(name);
            self.telemetry.latest.forget(name);
        }
        let count = started.len();
        for (index, (fingerprint, poller)) in started.into_iter().enumerate() {
            let offset = spread(index, count, poller.target().collection_interval);
            // A changed target goes on with its counts, so cumulative series do not restart
            // and delta points leave no gap; its endpoint or filters may have changed, so the
            // next poll is a new baseline for changes.
            let (tracker, output) = match trackers.remove(&poller.target().name) {
                Some((tracker, output)) => {
                    tracker
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .lost_sight();
                    (tracker, output)
                }
                None => (self.new_tracker(), None),
            };
            let output = self.output_tailer(poller.target(), output);
            self.spawn_with(fingerprint, poller, tracker, output, initial_delay + offset);
        }
        self.telemetry
            .receiver
            .count_reload(crate::clock::unix_nanos_now());
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
    pub(super) async fn finish(self) {
        for (_, running) in self.running {
            let _ = running.task.await;
        }
    }
}

/// Where in its interval the `index`-th of `count` targets polls first: evenly spread, so a
/// fleet never polls in lock-step (a burst of thousands of polls every interval would make the
/// last ones late and need the CPU all at once). Deterministic, in configuration order, so
/// phases are the same at every start; one target polls at once (offset zero), as Datadog's
/// check and the OTel Collector's scrapers do.
pub(super) fn spread(index: usize, count: usize, interval: Duration) -> Duration {
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
                // Boxed: a poll's future (request, reply, decoding) is several KB, and as part
                // of this task's state it would be held by every target between polls too.
                let outcome = Box::pin(poller.poll()).await;
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
}
