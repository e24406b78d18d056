//! One OTLP exporter's sender for one signal: takes the oldest queued batches, sends them, and
//! retries what the OTLP specification calls retryable, with backoff, until the backend takes
//! them or the retry time runs out. An exporter carrying metrics and logs has a sender for each,
//! so one signal's retries never hold up the other's batches.
//!
//! Only this task ever waits for the backend; the pipeline and the pollers never do.
//!
//! On stop, the queue is flushed within the stop deadline: a retry that was waiting is made at
//! once, and what fails then is retried after short waits (100 ms, doubling, at most 1 s) for as
//! long as the deadline allows, batch after batch. Only what still is not sent at the deadline
//! stays queued, for the pipeline to report lost (or keep on disk).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::export::backoff::Backoff;
use crate::export::queue::{SendingQueue, Taken};
use crate::export::{items, Accepted, EncodedRequest, ExportError, Exporter};
use crate::settings::{RetrySettings, Signal};
use crate::telemetry::{ExportRecorder, Telemetry};

/// What the sender is told about stopping: `Some(deadline)` once the receiver stops; the queue is
/// then flushed until it is empty or the deadline passes, with no attempt begun after it.
pub(crate) type StopSignal = watch::Receiver<Option<Instant>>;

/// Sends one request; the seam that lets the retry logic be tested without a network.
pub(crate) trait Transmit {
    fn send(
        &self,
        request: &EncodedRequest,
    ) -> impl std::future::Future<Output = Result<Accepted, ExportError>> + std::marker::Send;
}

/// An exporter as one signal's sender uses it: the exporter is shared by its signals' senders
/// (one gRPC channel, one HTTP connection pool), each sending its own signal.
pub(crate) struct SignalExporter {
    pub exporter: Arc<Exporter>,
    pub signal: Signal,
}

impl Transmit for SignalExporter {
    async fn send(&self, request: &EncodedRequest) -> Result<Accepted, ExportError> {
        self.exporter.export_encoded(self.signal, request).await
    }
}

/// How one batch ended.
#[derive(Debug)]
enum Delivery {
    Sent(Accepted),
    /// Not retryable (or retries off): the data is dropped.
    Refused(ExportError),
    /// Retryable, but `max_elapsed_time` has passed.
    GaveUp(ExportError, Duration),
    /// The stop deadline came first: the batch stays queued.
    Interrupted,
}

pub(crate) struct Sender<E> {
    pub name: String,
    pub exporter: E,
    pub queue: Arc<SendingQueue>,
    pub retry: RetrySettings,
    pub max_request_size: u64,
    /// The totals, and the counters of the exporter the queue belongs to.
    pub recorder: ExportRecorder,
    /// Failed attempts since the last success, for one warning per outage.
    failures: u64,
}

impl<E: Transmit> Sender<E> {
    pub fn new(
        name: String,
        exporter: E,
        queue: Arc<SendingQueue>,
        retry: RetrySettings,
        max_request_size: u64,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let recorder = ExportRecorder::new(telemetry, Arc::clone(queue.recorder().own()));
        Sender {
            name,
            exporter,
            queue,
            retry,
            max_request_size,
            recorder,
            failures: 0,
        }
    }

    /// Sends until stopped: then flushes the queue until it is empty or the deadline passes.
    pub async fn run(mut self, mut stop: StopSignal) {
        loop {
            let stopping = stop.borrow().is_some();
            let Some(taken) = self.queue.take_async(self.max_request_size).await else {
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = self.queue.pushed() => {}
                    changed = stop.changed() => if changed.is_err() { return },
                }
                continue;
            };
            if taken.request.is_empty() {
                // Nothing readable in it (counted when taken).
                self.queue.finish_async(taken).await;
                continue;
            }
            match self.deliver(&taken.request, &mut stop).await {
                Delivery::Sent(accepted) => {
                    let rejected = accepted.rejected_points.min(taken.points);
                    self.recorder.add_sent(taken.points - rejected);
                    self.recorder.add_dropped(rejected);
                }
                Delivery::Refused(error) => {
                    let why = if error.is_retryable() {
                        "retry_on_failure is off"
                    } else {
                        "not retryable"
                    };
                    self.lost(&taken, &format!("{why}: {error}"), None);
                }
                Delivery::GaveUp(error, after) => {
                    self.lost(&taken, &error.to_string(), Some(after));
                }
                Delivery::Interrupted => {
                    self.queue.release();
                    return;
                }
            }
            self.queue.finish_async(taken).await;
        }
    }

    fn lost(&self, taken: &Taken, error: &str, gave_up_after: Option<Duration>) {
        self.recorder.add_dropped(taken.points);
        let points = taken.points;
        let what = items(self.queue.signal());
        match gave_up_after {
            None => tracing::warn!(
                exporter = %self.name,
                points,
                "export failed, {points} {what} dropped ({error})"
            ),
            Some(after) => tracing::warn!(
                exporter = %self.name,
                points,
                "export still failing after {after:.1?} of retries (max_elapsed_time): {points} \
                 {what} dropped: {error}"
            ),
        }
    }

    /// Sends one batch until the backend takes it, refuses it for good, or the retry time runs
    /// out.
    ///
    /// While running, retries follow `retry_on_failure` (backoff with jitter, the server's
    /// requested delay honoured, `max_elapsed_time`). Once the stop deadline is set, see
    /// [`stop_retry_at`]: a wait in progress ends at once and the batch is tried right away,
    /// then again after short waits as long as the deadline allows; `max_elapsed_time` no longer
    /// applies, the deadline bounds the retries.
    async fn deliver(&mut self, request: &EncodedRequest, stop: &mut StopSignal) -> Delivery {
        let first_attempt = Instant::now();
        let mut backoff = Backoff::new(&self.retry);
        let mut stop_backoff = Backoff::new(&STOP_RETRY);
        loop {
            let Some(result) = attempt(&self.exporter, request, stop).await else {
                return Delivery::Interrupted;
            };
            let now_nanos = crate::clock::unix_nanos_now();
            self.recorder.record_attempt(result.is_ok(), now_nanos);
            let error = match result {
                Ok(accepted) => {
                    if self.failures > 0 {
                        let queued = self.queue.leftover();
                        tracing::info!(
                            exporter = %self.name,
                            failed_attempts = self.failures,
                            queued_batches = queued.batches,
                            "export succeeded again; sending what was queued meanwhile"
                        );
                        self.failures = 0;
                    }
                    return Delivery::Sent(accepted);
                }
                Err(error) => error,
            };
            self.failures += 1;
            if !self.retry.enabled || !error.is_retryable() {
                return Delivery::Refused(error);
            }
            let server_delay = error.retry_delay().unwrap_or_default();
            let now = Instant::now();
            let deadline = *stop.borrow();
            let retry_at = match deadline {
                Some(deadline) => {
                    let wait = stop_backoff.next().max(server_delay);
                    match stop_retry_at(now, wait, deadline) {
                        Some(at) => at,
                        None => return Delivery::Interrupted,
                    }
                }
                None => {
                    // The server's requested delay is honoured, never shortened by the backoff.
                    let wait = backoff.next().max(server_delay);
                    let elapsed = first_attempt.elapsed();
                    if !self.retry.max_elapsed_time.is_zero()
                        && elapsed + wait > self.retry.max_elapsed_time
                    {
                        return Delivery::GaveUp(error, elapsed);
                    }
                    now + wait
                }
            };
            if self.failures == 1 {
                tracing::warn!(
                    exporter = %self.name,
                    "export failed, retrying with backoff; data is queued meanwhile: {error}"
                );
            } else {
                tracing::debug!(
                    exporter = %self.name,
                    attempt = self.failures,
                    retry_in = ?retry_at.saturating_duration_since(now),
                    stopping = deadline.is_some(),
                    "export failed again: {error}"
                );
            }
            self.recorder.add_retried();
            if pause_until(retry_at, deadline.is_some(), stop).await == Paused::CutByStop {
                tracing::info!(
                    exporter = %self.name,
                    "stopping: trying the queued data now rather than at the planned retry"
                );
            }
        }
    }
}

/// The waits between the attempts of one batch once the receiver is stopping: 100 ms, doubling,
/// at most 1 s, without jitter. Short, because what is not sent by the deadline is lost (or
/// kept on disk for the next start), and a stop is no outage the backend needs shielding from.
const STOP_RETRY: RetrySettings = RetrySettings {
    enabled: true,
    initial_interval: Duration::from_millis(100),
    max_interval: Duration::from_secs(1),
    max_elapsed_time: Duration::ZERO,
    multiplier: 2.0,
    randomization_factor: 0.0,
};

/// No attempt is begun with less than this left before the stop deadline: it could not finish.
const LAST_ATTEMPT_ROOM: Duration = Duration::from_millis(100);

/// When to try again while stopping, after waiting `wait` from `now`; `None` when no attempt
/// fits before the deadline any more (the batch stays queued).
///
/// `wait` includes a delay the server asked for (gRPC `RetryInfo`, HTTP `Retry-After`), which is
/// honoured when it ends early enough. One that would end after the deadline does not make us
/// give up: the last attempt is made [`LAST_ATTEMPT_ROOM`] before the deadline instead. Waiting
/// as asked would lose the data for sure, while one more attempt costs the backend little and
/// may well get it through. Likewise the short waits are cut to fit, so the time left is used.
fn stop_retry_at(now: Instant, wait: Duration, deadline: Instant) -> Option<Instant> {
    let last = deadline.checked_sub(LAST_ATTEMPT_ROOM)?;
    (now < last).then(|| (now + wait).min(last))
}

/// One export attempt, cut short when the stop deadline passes first (`None`). None is begun
/// after the deadline.
async fn attempt<E: Transmit>(
    exporter: &E,
    request: &EncodedRequest,
    stop: &mut StopSignal,
) -> Option<Result<Accepted, ExportError>> {
    if stop.borrow().is_some_and(|d| Instant::now() >= d) {
        return None;
    }
    let send = exporter.send(request);
    tokio::pin!(send);
    loop {
        let deadline = *stop.borrow();
        tokio::select! {
            result = &mut send => return Some(result),
            () = sleep_until_deadline(deadline) => return None,
            changed = stop.changed() => {
                if changed.is_err() {
                    // The pipeline is gone; finish the attempt without a deadline.
                    return Some(send.await);
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Paused {
    /// The planned time came.
    Waited,
    /// The stop deadline was set during a wait planned while running: it ended at once.
    CutByStop,
}

/// Waits until `until`, the planned retry. A wait planned while running (`stopping` false) ends
/// at once when the stop deadline is set: the retry it waited for may lie past the deadline, and
/// the backend may well be back already. A wait planned while stopping already fits before the
/// deadline (see [`stop_retry_at`]).
async fn pause_until(until: Instant, stopping: bool, stop: &mut StopSignal) -> Paused {
    if stopping {
        tokio::time::sleep_until(until).await;
        return Paused::Waited;
    }
    loop {
        if stop.borrow_and_update().is_some() {
            return Paused::CutByStop;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Paused::Waited,
            changed = stop.changed() => {
                if changed.is_err() {
                    // The pipeline is gone: no stop will come.
                    tokio::time::sleep_until(until).await;
                    return Paused::Waited;
                }
            }
        }
    }
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
