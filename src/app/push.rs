//! Push mode's target task: the one target of `listen`, polled on its interval like any other,
//! and told of every change by supervisord's events ([`super::listen`]).
//!
//! An event becomes its log record at once (handed to the pipeline without waiting for a
//! poll), is counted (restarts, exits), and asks for a poll [`REPOLL_DELAY`] later, so the
//! metrics follow within the same second. Events come in bursts (a stop is STOPPING then
//! STOPPED; a crash EXITED, then STARTING, then RUNNING a second later): one poll serves a
//! burst, since a poll already asked for is not asked again.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::listen::Received;
use super::pipeline::{ChangeReport, ExportItem};
use crate::clock::unix_nanos_now;
use crate::scrape::changes::Changes;
use crate::scrape::poller::TargetPoller;
use crate::telemetry::Telemetry;
use crate::vocab::SupervisorState;

/// How long after an event its poll comes: long enough for the rest of a burst (supervisord
/// sends a transition's events within a few milliseconds), short enough that the metrics
/// follow the record within the same second.
pub const REPOLL_DELAY: Duration = Duration::from_millis(100);

pub(super) async fn push_loop(
    mut poller: TargetPoller,
    initial_delay: Duration,
    mut events: mpsc::Receiver<Received>,
    tx: mpsc::Sender<ExportItem>,
    mut stop: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
) {
    let interval = poller.target().collection_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + initial_delay, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // `Some(when)`: a poll asked for by an event.
    let mut repoll: Option<Instant> = None;
    let mut events_open = true;
    loop {
        let repoll_at = repoll.unwrap_or_else(|| Instant::now() + interval);
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            received = events.recv(), if events_open => match received {
                Some(received) => {
                    if let Some(report) = take(&poller, received) {
                        repoll.get_or_insert_with(|| Instant::now() + REPOLL_DELAY);
                        if tx.send(ExportItem::Changes(report)).await.is_err() {
                            break;
                        }
                    }
                }
                // The protocol loop ended (stdin closed): polls go on until the stop.
                None => events_open = false,
            },
            () = tokio::time::sleep_until(repoll_at), if repoll.is_some() => {
                repoll = None;
                if !poll(&mut poller, &tx).await {
                    break;
                }
            }
            scheduled = ticker.tick() => {
                telemetry.polls.record_start(scheduled.elapsed());
                repoll = None;
                if !poll(&mut poller, &tx).await {
                    break;
                }
            }
        }
    }
}

async fn poll(poller: &mut TargetPoller, tx: &mpsc::Sender<ExportItem>) -> bool {
    let outcome = poller.poll().await;
    tx.send(ExportItem::Poll(outcome)).await.is_ok()
}

/// What an event changes: counted in the target's tracker, and the record to send; `None` for
/// a tick or a supervisord event that changes nothing.
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
        Received::Tick => return None,
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
