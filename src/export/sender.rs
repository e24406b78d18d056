//! One OTLP exporter's sender: takes the oldest queued batches, sends them, and retries what the
//! OTLP specification calls retryable, with backoff, until the backend takes them or the retry
//! time runs out.
//!
//! Only this task ever waits for the backend; the pipeline and the pollers never do.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::RetrySettings;
use crate::export::backoff::Backoff;
use crate::export::queue::{SendingQueue, Taken};
use crate::export::{Accepted, EncodedRequest, ExportError, Exporter};
use crate::telemetry::Telemetry;

/// What the sender is told about stopping: `Some(deadline)` once the receiver stops; the queue is
/// then flushed until it is empty or the deadline passes.
pub(crate) type StopSignal = watch::Receiver<Option<Instant>>;

/// Sends one request; the seam that lets the retry logic be tested without a network.
pub(crate) trait Transmit {
    fn send(
        &self,
        request: &EncodedRequest,
    ) -> impl std::future::Future<Output = Result<Accepted, ExportError>> + std::marker::Send;
}

impl Transmit for Exporter {
    async fn send(&self, request: &EncodedRequest) -> Result<Accepted, ExportError> {
        self.export_encoded(request).await
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
    pub telemetry: Arc<Telemetry>,
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
        Sender {
            name,
            exporter,
            queue,
            retry,
            max_request_size,
            telemetry,
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
                    self.telemetry.export.add_sent(taken.points - rejected);
                    self.telemetry.export.add_dropped(rejected);
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
        self.telemetry.export.add_dropped(taken.points);
        let points = taken.points;
        match gave_up_after {
            None => tracing::warn!(
                exporter = %self.name,
                points,
                "export failed, {points} points dropped ({error})"
            ),
            Some(after) => tracing::warn!(
                exporter = %self.name,
                points,
                "export still failing after {after:.1?} of retries (max_elapsed_time): {points} \
                 points dropped: {error}"
            ),
        }
    }

    async fn deliver(&mut self, request: &EncodedRequest, stop: &mut StopSignal) -> Delivery {
        let first_attempt = Instant::now();
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let Some(result) = attempt(&self.exporter, request, stop).await else {
                return Delivery::Interrupted;
            };
            let now_nanos = crate::scrape::poller::unix_nanos_now();
            self.telemetry
                .export
                .record_attempt(result.is_ok(), now_nanos);
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
            // The server's requested delay is honoured, never shortened by the backoff.
            let wait = backoff.next().max(error.retry_delay().unwrap_or_default());
            let elapsed = first_attempt.elapsed();
            if !self.retry.max_elapsed_time.is_zero()
                && elapsed + wait > self.retry.max_elapsed_time
            {
                return Delivery::GaveUp(error, elapsed);
            }
            if self.failures == 1 {
                tracing::warn!(
                    exporter = %self.name,
                    "export failed, retrying with backoff; data is queued meanwhile: {error}"
                );
            } else {
                tracing::debug!(
                    exporter = %self.name,
                    attempt = self.failures,
                    retry_in = ?wait,
                    "export failed again: {error}"
                );
            }
            self.telemetry.export.add_retried();
            if !pause(wait, stop).await {
                return Delivery::Interrupted;
            }
        }
    }
}

/// One export attempt, cut short when the stop deadline passes first (`None`).
async fn attempt<E: Transmit>(
    exporter: &E,
    request: &EncodedRequest,
    stop: &mut StopSignal,
) -> Option<Result<Accepted, ExportError>> {
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

/// Waits `wait`, unless the stop deadline comes first (`false`).
async fn pause(wait: Duration, stop: &mut StopSignal) -> bool {
    let until = Instant::now() + wait;
    loop {
        let deadline = *stop.borrow();
        if deadline.is_some_and(|d| d <= until) {
            // Waiting past the deadline is pointless: the next attempt could not happen.
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => return true,
            changed = stop.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(until).await;
                    return true;
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
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };

    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

    use super::*;
    use crate::config::QueueSettings;
    use crate::export::queue::QueueGauges;

    /// Replies from a script, one per attempt, and records what it was sent.
    struct Scripted {
        replies: Mutex<VecDeque<Result<Accepted, ExportError>>>,
        sent: Mutex<Vec<ExportMetricsServiceRequest>>,
    }

    impl Transmit for Arc<Scripted> {
        async fn send(&self, request: &EncodedRequest) -> Result<Accepted, ExportError> {
            self.sent.lock().unwrap().push(request.decode().unwrap());
            let reply = self.replies.lock().unwrap().pop_front();
            reply.unwrap_or(Ok(Accepted::default()))
        }
    }

    fn unavailable(retry_delay: Option<Duration>) -> Result<Accepted, ExportError> {
        Err(ExportError::Grpc {
            endpoint: "http://backend".into(),
            code: tonic::Code::Unavailable,
            message: "down".into(),
            retry_delay,
        })
    }

    fn bad_request() -> Result<Accepted, ExportError> {
        Err(ExportError::HttpStatus {
            endpoint: "http://backend".into(),
            status: 400,
            message: "bad".into(),
            retry_after: None,
        })
    }

    fn request(points: usize) -> EncodedRequest {
        EncodedRequest::from_message(&ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "m".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); points],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }

    fn fast_retry() -> RetrySettings {
        RetrySettings {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            max_elapsed_time: Duration::from_secs(5),
            ..RetrySettings::default()
        }
    }

    struct Setup {
        backend: Arc<Scripted>,
        queue: Arc<SendingQueue>,
        telemetry: Arc<Telemetry>,
        stop: watch::Sender<Option<Instant>>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(replies: Vec<Result<Accepted, ExportError>>, retry: RetrySettings) -> Setup {
        let telemetry = Arc::new(Telemetry::default());
        let queue = Arc::new(
            SendingQueue::open(
                "otlp",
                &QueueSettings::default(),
                QueueGauges::new(telemetry.clone()),
                telemetry.clone(),
            )
            .unwrap(),
        );
        let backend = Arc::new(Scripted {
            replies: Mutex::new(replies.into()),
            sent: Mutex::new(Vec::new()),
        });
        let sender = Sender::new(
            "otlp".into(),
            backend.clone(),
            queue.clone(),
            retry,
            4 << 20,
            telemetry.clone(),
        );
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(sender.run(stop_rx));
        Setup {
            backend,
            queue,
            telemetry,
            stop,
            task,
        }
    }

    impl Setup {
        /// Asks the sender to flush and stop, and waits for it.
        async fn finish(self) -> Self {
            self.stop
                .send(Some(Instant::now() + Duration::from_secs(5)))
                .unwrap();
            let task = self.task;
            task.await.unwrap();
            Setup {
                task: tokio::spawn(async {}),
                ..self
            }
        }

        fn counters(&self) -> (u64, u64, u64) {
            let e = &self.telemetry.export;
            (
                e.sent_points.load(Ordering::Relaxed),
                e.retried_requests.load(Ordering::Relaxed),
                e.dropped_points.load(Ordering::Relaxed),
            )
        }

        fn attempts(&self) -> usize {
            self.backend.sent.lock().unwrap().len()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_retried_until_sent() {
        let s = start(vec![unavailable(None), unavailable(None)], fast_retry());
        s.queue.push(request(3));
        let s = s.finish().await;
        assert_eq!(s.attempts(), 3);
        assert_eq!(s.counters(), (3, 2, 0));
        assert_eq!(s.queue.leftover().batches, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_servers_delay_is_honoured() {
        let s = start(
            vec![unavailable(Some(Duration::from_secs(3)))],
            fast_retry(),
        );
        let begin = Instant::now();
        s.queue.push(request(1));
        let s = s.finish().await;
        assert_eq!(s.attempts(), 2);
        // The clock is paused and only moves by the sender's own sleeps.
        assert!(
            begin.elapsed() >= Duration::from_secs(3),
            "{:?}",
            begin.elapsed()
        );
        assert_eq!(s.counters(), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_drop_the_batch_and_go_on() {
        let s = start(vec![bad_request()], fast_retry());
        s.queue.push(request(4));
        s.queue.push(request(2));
        let s = s.finish().await;
        // Both batches went in one request; the 400 drops both, nothing is retried.
        assert_eq!(s.attempts(), 1);
        assert_eq!(s.counters(), (0, 0, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_max_elapsed_time() {
        let replies = (0..100).map(|_| unavailable(None)).collect();
        let retry = RetrySettings {
            max_elapsed_time: Duration::from_secs(2),
            ..fast_retry()
        };
        let s = start(replies, retry);
        s.queue.push(request(5));
        let begin = Instant::now();
        // Wait (in paused time) past the retry limit, then a fresh batch still gets through.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(begin.elapsed() >= Duration::from_secs(2));
        let (_, retried, dropped) = s.counters();
        assert_eq!(dropped, 5);
        assert!(retried >= 4, "{retried}");
        s.backend.replies.lock().unwrap().clear();
        s.queue.push(request(1));
        let s = s.finish().await;
        assert_eq!(s.counters().0, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn partial_success_counts_the_rejected_points_as_dropped() {
        let s = start(vec![Ok(Accepted { rejected_points: 2 })], fast_retry());
        s.queue.push(request(5));
        let s = s.finish().await;
        assert_eq!(s.counters(), (3, 0, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_off_means_one_attempt() {
        let retry = RetrySettings {
            enabled: false,
            ..fast_retry()
        };
        let s = start(vec![unavailable(None)], retry);
        s.queue.push(request(2));
        let s = s.finish().await;
        assert_eq!(s.attempts(), 1);
        assert_eq!(s.counters(), (0, 0, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_leaves_unsent_batches_queued_within_the_deadline() {
        let replies = (0..1000).map(|_| unavailable(None)).collect();
        let retry = RetrySettings {
            max_elapsed_time: Duration::from_secs(60),
            ..fast_retry()
        };
        let s = start(replies, retry);
        s.queue.push(request(2));
        s.queue.push(request(3));
        let begin = Instant::now();
        let s = s.finish().await;
        assert!(
            begin.elapsed() <= Duration::from_secs(5),
            "{:?}",
            begin.elapsed()
        );
        let left = s.queue.leftover();
        assert_eq!((left.batches, left.points), (2, 5));
        assert_eq!(s.counters().2, 0, "queued, not dropped: the caller decides");
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_goes_out_oldest_first_in_few_requests() {
        let s = start(vec![], fast_retry());
        for points in 1..=5 {
            s.queue.push(request(points));
        }
        let s = s.finish().await;
        let sent = s.backend.sent.lock().unwrap().clone();
        let sizes: Vec<u64> = sent
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .map(crate::export::batch::count_resource_points)
            .collect();
        assert_eq!(sizes, [1, 2, 3, 4, 5]);
        assert!(sent.len() <= 2, "{}", sent.len());
        assert_eq!(s.counters(), (15, 0, 0));
    }
}
