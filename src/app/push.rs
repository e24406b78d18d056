//! Push mode's target task: the one target of `listen`, told of every change by supervisord's
//! events ([`super::listen`]), and asked for its whole list of processes only to reconcile.
//!
//! supervisord answers `getAllProcessInfo` in its one thread, in time that grows with every
//! process it runs (about 9 ms at 100 programs, 160 ms at 500), during which it manages
//! nothing. The events already tell every transition, so:
//!
//! - an event becomes its log record at once (handed to the pipeline without waiting for a
//!   poll), is counted (restarts, exits), and updates the held snapshot
//!   ([`crate::scrape::held`]);
//! - [`REPOLL_DELAY`] after a burst of events, supervisord is asked for the processes the
//!   burst named alone (`getProcessInfo`, one round trip), which brings what events lack (exit
//!   status, stop time, the new pid), and the metrics follow within the same second. Events
//!   come in bursts (a stop is STOPPING then STOPPED; a crash EXITED, then STARTING, then
//!   RUNNING a second later): one fetch serves a burst;
//! - every `collection_interval`, the metrics are exported from the held snapshot, with the
//!   programs' resources read from /proc as always;
//! - a full poll (a reconcile) comes every `reconcile_interval`, and at once after a process
//!   group was added or removed, after supervisord (re)entered RUNNING, after an event about a
//!   process the snapshot does not hold, and after a failed call. It also refreshes
//!   `getAllConfigInfo` when that is due ([`crate::scrape::config_info`]), and gives the next
//!   intervals their `can_connect`.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::listen::Received;
use super::pipeline::{ChangeReport, ExportItem};
use crate::clock::unix_nanos_now;
use crate::scrape::changes::Changes;
use crate::scrape::held::HeldSnapshot;
use crate::scrape::poller::TargetPoller;
use crate::telemetry::Telemetry;
use crate::vocab::SupervisorState;

/// How long after an event the processes it named are asked for: long enough for the rest of a
/// burst (supervisord sends a transition's events within a few milliseconds), short enough that
/// the metrics follow the record within the same second.
pub const REPOLL_DELAY: Duration = Duration::from_millis(100);

pub(super) async fn push_loop(
    poller: TargetPoller,
    initial_delay: Duration,
    mut events: mpsc::Receiver<Received>,
    tx: mpsc::Sender<ExportItem>,
    mut stop: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
) {
    let interval = poller.target().collection_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + initial_delay, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut task = PushTask {
        reconcile_every: poller.target().reconcile_interval,
        interval,
        poller,
        tx,
        held: None,
        reconcile_at: Instant::now(),
        reconcile_asked: false,
    };
    // `Some(when)`: a fetch (or a full poll) asked for by an event.
    let mut repoll: Option<Instant> = None;
    let mut events_open = true;
    loop {
        let repoll_at = repoll.unwrap_or_else(|| Instant::now() + interval);
        let sent = tokio::select! {
            biased;
            _ = stop.changed() => break,
            received = events.recv(), if events_open => match received {
                Some(received) => {
                    if task.follow(&received) {
                        repoll.get_or_insert_with(|| Instant::now() + REPOLL_DELAY);
                    }
                    match take(&task.poller, received) {
                        Some(report) => task.tx.send(ExportItem::Changes(report)).await.is_ok(),
                        None => true,
                    }
                }
                // The protocol loop ended (stdin closed): intervals go on until the stop.
                None => {
                    events_open = false;
                    true
                }
            },
            () = tokio::time::sleep_until(repoll_at), if repoll.is_some() => {
                repoll = None;
                task.refresh().await
            }
            scheduled = ticker.tick() => {
                telemetry.polls.record_start(scheduled.elapsed());
                if task.reconcile_due() {
                    // A full poll answers whatever an event asked too.
                    repoll = None;
                }
                task.interval().await
            }
        };
        if !sent {
            break;
        }
    }
}

/// The target's state between events and intervals.
struct PushTask {
    poller: TargetPoller,
    tx: mpsc::Sender<ExportItem>,
    /// The last full poll with the events since applied; `None` before the first successful
    /// one and after a failed call.
    held: Option<HeldSnapshot>,
    reconcile_every: Duration,
    /// `collection_interval`: a `reconcile_every` no longer makes every interval a full poll.
    interval: Duration,
    /// When the next full poll is due.
    reconcile_at: Instant,
    /// An event or a failure asked for a full poll before then.
    reconcile_asked: bool,
}

impl PushTask {
    /// Applies an event to the held snapshot; `true` when supervisord should be asked soon
    /// (after [`REPOLL_DELAY`]): for the processes it named, or in full.
    fn follow(&mut self, received: &Received) -> bool {
        match received {
            Received::Process(change) => {
                let applied = self
                    .held
                    .as_mut()
                    .is_some_and(|held| held.apply_event(change, std::time::Instant::now()));
                if !applied {
                    self.reconcile_asked = true;
                }
                true
            }
            Received::Supervisor { running: true } | Received::GroupsChanged => {
                self.reconcile_asked = true;
                true
            }
            Received::Supervisor { running: false } | Received::Tick => false,
        }
    }

    fn reconcile_due(&self) -> bool {
        self.held.is_none()
            || self.reconcile_asked
            || self.reconcile_every <= self.interval
            || Instant::now() >= self.reconcile_at
    }

    /// One `collection_interval`: a full poll when due, else the held snapshot.
    async fn interval(&mut self) -> bool {
        if self.reconcile_due() {
            return self.reconcile().await;
        }
        let Some(held) = &self.held else {
            return self.reconcile().await;
        };
        let outcome = self.poller.held_outcome(held).await;
        self.tx.send(ExportItem::Poll(outcome)).await.is_ok()
    }

    /// After a burst of events: the processes it named, merged into the held snapshot and
    /// exported; a full poll instead when one was asked for, or when the fetch fails or
    /// answers for a process the snapshot does not hold.
    async fn refresh(&mut self) -> bool {
        if self.reconcile_asked {
            return self.reconcile().await;
        }
        let Some(held) = &mut self.held else {
            return self.reconcile().await;
        };
        let names = held.take_stale();
        if names.is_empty() {
            return true;
        }
        let merged = match self.poller.fetch_processes(&names).await {
            Ok(fetched) => held.merge(fetched, std::time::Instant::now()),
            Err(_) => false,
        };
        if !merged {
            return self.reconcile().await;
        }
        let outcome = self.poller.held_outcome(held).await;
        self.tx.send(ExportItem::Poll(outcome)).await.is_ok()
    }

    /// A full poll: exported as it is, and the new held snapshot when it succeeded.
    async fn reconcile(&mut self) -> bool {
        let outcome = self.poller.poll().await;
        let answered = std::time::Instant::now();
        self.held = outcome
            .result
            .as_ref()
            .ok()
            .map(|data| HeldSnapshot::of_poll(data, answered));
        self.reconcile_at = Instant::now() + self.reconcile_every;
        self.reconcile_asked = false;
        self.tx.send(ExportItem::Poll(outcome)).await.is_ok()
    }
}

/// What an event changes: counted in the target's tracker, and the record to send; `None` for
/// a tick or an event that changes nothing.
fn take(poller: &TargetPoller, received: Received) -> Option<ChangeReport> {
    let now = unix_nanos_now();
    let mut tracker = poller
        .tracker()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let changes = match received {
        Received::Process(change) => {
            tracker.observe_event(&change, now);
            Changes {
                processes: vec![change],
                supervisor: None,
            }
        }
        Received::Supervisor { running } => {
            let state = if running {
                SupervisorState::Running
            } else {
                SupervisorState::Shutdown
            };
            Changes {
                processes: Vec::new(),
                supervisor: Some(tracker.observe_supervisor(state)?),
            }
        }
        Received::Tick | Received::GroupsChanged => return None,
    };
    let (identification, version) = poller.described();
    Some(ChangeReport {
        target: Arc::clone(poller.identity()),
        identification: identification.map(str::to_owned),
        version: version.map(str::to_owned),
        changes,
        observed_unix_nano: now,
    })
}
