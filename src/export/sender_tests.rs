//! The sender's retry and stop behaviour, on a paused clock with a scripted backend.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use opentelemetry_proto::tonic::metrics::v1::{
    metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::*;
use crate::export::queue::QueueGauges;
use crate::settings::QueueSettings;

/// Replies from a script, one per attempt, and records what it was sent and when.
struct Scripted {
    replies: Mutex<VecDeque<Result<Accepted, ExportError>>>,
    sent: Mutex<Vec<ExportMetricsServiceRequest>>,
    times: Mutex<Vec<Instant>>,
}

impl Transmit for Arc<Scripted> {
    async fn send(&self, request: &EncodedRequest) -> Result<Accepted, ExportError> {
        self.sent.lock().unwrap().push(request.decode().unwrap());
        self.times.lock().unwrap().push(Instant::now());
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
            Signal::Metrics,
            &QueueSettings::default(),
            QueueGauges::new(telemetry.clone()),
            telemetry.clone(),
        )
        .unwrap(),
    );
    let backend = Arc::new(Scripted {
        replies: Mutex::new(replies.into()),
        sent: Mutex::new(Vec::new()),
        times: Mutex::new(Vec::new()),
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
        self.stop_now();
        self.join().await
    }

    /// Sets the stop deadline 5 s from now, as the pipeline does, and returns it.
    fn stop_now(&self) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(5);
        self.stop.send(Some(deadline)).unwrap();
        deadline
    }

    /// Waits for the sender to finish.
    async fn join(self) -> Self {
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

    /// When each attempt was made.
    fn times(&self) -> Vec<Instant> {
        self.backend.times.lock().unwrap().clone()
    }

    /// The points of every request the backend took, in order: `replies` were consumed by
    /// the first attempts, every later attempt succeeded.
    fn points_per_attempt(&self) -> Vec<u64> {
        self.backend
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                r.resource_metrics
                    .iter()
                    .map(crate::export::batch::count_resource_points)
                    .sum()
            })
            .collect()
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

/// The default retry settings without jitter: a first wait of 5 s, then 7.5 s, ...
fn slow_retry() -> RetrySettings {
    RetrySettings {
        randomization_factor: 0.0,
        ..RetrySettings::default()
    }
}

fn failing(n: usize) -> Vec<Result<Accepted, ExportError>> {
    (0..n).map(|_| unavailable(None)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_long_backoff_retries_at_once_and_delivers_every_batch() {
    let s = start(failing(2), slow_retry());
    let begin = Instant::now();
    s.queue.push(request(2));
    // The first attempt fails; the next is planned 5 s later. More batches queue behind.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.attempts(), 1);
    s.queue.push(request(3));
    s.queue.push(request(4));
    let stopped = Instant::now();
    let deadline = s.stop_now();
    let s = s.join().await;

    let times = s.times();
    let after_stop: Vec<Duration> = times[1..].iter().map(|t| *t - stopped).collect();
    // Tried at once (fails again), 100 ms later (taken), then the batches behind it.
    assert_eq!(
        after_stop,
        [
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(100)
        ],
        "attempts at {:?}",
        times.iter().map(|t| *t - begin).collect::<Vec<_>>()
    );
    assert!(times.iter().all(|t| *t < deadline));
    assert_eq!(s.points_per_attempt(), [2, 2, 2, 7]);
    assert_eq!(s.counters(), (9, 2, 0));
    assert_eq!(s.queue.leftover().batches, 0);
}

#[tokio::test(start_paused = true)]
async fn a_backend_failing_through_the_stop_window_is_retried_until_the_deadline_only() {
    let s = start(failing(1000), slow_retry());
    s.queue.push(request(5));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = Instant::now();
    let deadline = s.stop_now();
    let s = s.join().await;
    assert!(
        Instant::now() <= deadline,
        "the sender ended by the deadline"
    );

    let after_stop: Vec<u64> = s.times()[1..]
        .iter()
        .map(|t| (*t - stopped).as_millis() as u64)
        .collect();
    // 100 ms doubling up to 1 s; the last wait is cut to leave the attempt 100 ms.
    assert_eq!(
        after_stop,
        [0, 100, 300, 700, 1500, 2500, 3500, 4500, 4900],
        "attempts after the stop (ms)"
    );
    let left = s.queue.leftover();
    assert_eq!((left.batches, left.points), (1, 5), "still queued");
    assert_eq!(s.counters().2, 0);
    // What is left is what the pipeline reports lost, the queue being in memory.
    crate::export::pipeline::report_leftover("otlp", &s.queue, &s.telemetry);
    assert_eq!(s.counters().2, 5);
}

#[tokio::test(start_paused = true)]
async fn a_server_delay_past_the_deadline_still_gets_a_last_attempt() {
    let s = start(
        vec![unavailable(Some(Duration::from_secs(60)))],
        fast_retry(),
    );
    s.queue.push(request(3));
    let stopped = Instant::now();
    let deadline = s.stop_now();
    let s = s.join().await;
    let times = s.times();
    assert_eq!(times.len(), 2);
    assert_eq!(
        times[1],
        deadline - LAST_ATTEMPT_ROOM,
        "{:?}",
        times[1] - stopped
    );
    assert_eq!(s.counters(), (3, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_server_delay_within_the_deadline_is_honoured_while_stopping() {
    let s = start(
        vec![unavailable(None), unavailable(Some(Duration::from_secs(2)))],
        fast_retry(),
    );
    s.queue.push(request(1));
    let stopped = Instant::now();
    s.stop_now();
    let s = s.join().await;
    let after_stop: Vec<Duration> = s.times().iter().map(|t| *t - stopped).collect();
    assert_eq!(
        after_stop,
        [
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(2100)
        ]
    );
    assert_eq!(s.counters(), (1, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_not_max_elapsed_time_bounds_retries_while_stopping() {
    let retry = RetrySettings {
        max_elapsed_time: Duration::from_secs(1),
        ..fast_retry()
    };
    // Attempts at 0, 0.1, 0.3, 0.7, 1.5, 2.5 and 3.5 s: the last three past
    // max_elapsed_time, the last one taken.
    let s = start(failing(6), retry);
    s.queue.push(request(2));
    let stopped = Instant::now();
    s.stop_now();
    let s = s.join().await;
    assert_eq!(s.attempts(), 7);
    assert_eq!(s.times()[6] - stopped, Duration::from_millis(3500));
    assert_eq!(s.counters(), (2, 6, 0));
}
