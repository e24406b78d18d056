//! The status report (`proto/supervisord_receiver/admin/v1/status.proto`), computed from the
//! telemetry alone (no I/O, no poll, no export), and the gRPC service that answers with it.
//!
//! The health verdict is [`super::health::report`]'s, so `status --liveness` and `/healthz`
//! can never disagree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_nanos_now;
use crate::telemetry::{ExportCounters, TargetPollStats, Telemetry};

use super::api::v1;

/// The version `--version` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn report(
    telemetry: &Telemetry,
    unhealthy_after: Duration,
    now_unix_nano: u64,
) -> v1::StatusReport {
    let info = &telemetry.receiver;
    let started = info.started_unix_nano();
    let receiver = v1::ReceiverStatus {
        version: VERSION.to_string(),
        start_time_unix_nano: started,
        uptime_seconds: seconds_between(started, now_unix_nano),
        config_source: info.config_source().unwrap_or_default(),
        config_format: info.config_format().unwrap_or_default().to_string(),
        reload_count: info.reloads(),
        last_reload_unix_nano: info.last_reload_unix_nano(),
    };
    let targets = telemetry
        .polls
        .snapshot()
        .into_iter()
        .map(|(name, stats)| target(name, stats))
        .collect();
    let exporters = telemetry
        .exporters
        .snapshot()
        .iter()
        .map(|stats| {
            let c = &stats.counters;
            v1::ExporterStatus {
                name: stats.name.clone(),
                signals: stats.signals.iter().map(|s| s.name().to_string()).collect(),
                queue_batches: read(&c.queue_batches),
                queue_bytes: read(&c.queue_bytes),
                queue_capacity_batches: read(&c.queue_capacity_batches),
                queue_capacity_bytes: read(&c.queue_capacity_bytes),
                sent_points: read(&c.sent_points),
                retried_requests: read(&c.retried_requests),
                dropped_points: read(&c.dropped_points),
                last_success_unix_nano: read(&c.last_success_unix_nano),
                failing_since_unix_nano: read(&c.failing_since_unix_nano),
            }
        })
        .collect();
    v1::StatusReport {
        receiver: Some(receiver),
        targets,
        exporters,
        health: Some(health(telemetry, unhealthy_after, now_unix_nano)),
        report_time_unix_nano: now_unix_nano,
    }
}

fn target(name: String, stats: TargetPollStats) -> v1::TargetStatus {
    let result = match (stats.polls, stats.last_error_type) {
        (0, _) => v1::PollResult::Unspecified,
        (_, None) => v1::PollResult::Ok,
        (_, Some(_)) => v1::PollResult::Error,
    };
    v1::TargetStatus {
        name,
        endpoint: stats.endpoint,
        last_poll_start_unix_nano: stats.last_poll_start_unix_nano,
        last_poll_duration_seconds: stats.last_duration.as_secs_f64(),
        result: result as i32,
        error_message: stats.last_message.unwrap_or_default(),
        error_type: stats.last_error_type.unwrap_or_default().to_string(),
        processes: stats.processes.map(|p| v1::ProcessCounts {
            up: p.up,
            down: p.down,
            unknown: p.unknown,
        }),
        next_poll_unix_nano: stats.next_poll_unix_nano,
        consecutive_failures: stats.consecutive_failures,
        polls: stats.polls,
        failed_polls: stats.errors.values().sum(),
    }
}

fn health(telemetry: &Telemetry, unhealthy_after: Duration, now_unix_nano: u64) -> v1::Health {
    let verdict = super::health::report(telemetry, unhealthy_after, now_unix_nano);
    let export: &ExportCounters = &telemetry.export;
    v1::Health {
        healthy: verdict.healthy,
        reason: verdict.body["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        unhealthy_after_seconds: unhealthy_after.as_secs_f64(),
        exports_failing_since_unix_nano: read(&export.failing_since_unix_nano),
    }
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn seconds_between(from_unix_nano: u64, to_unix_nano: u64) -> f64 {
    Duration::from_nanos(to_unix_nano.saturating_sub(from_unix_nano)).as_secs_f64()
}

/// The gRPC `Status` service.
#[derive(Debug, Clone)]
pub struct StatusService {
    telemetry: Arc<Telemetry>,
    unhealthy_after: Duration,
}

impl StatusService {
    pub fn new(telemetry: Arc<Telemetry>, unhealthy_after: Duration) -> Self {
        StatusService {
            telemetry,
            unhealthy_after,
        }
    }
}

#[tonic::async_trait]
impl v1::status_server::Status for StatusService {
    async fn get_status(
        &self,
        _request: tonic::Request<v1::GetStatusRequest>,
    ) -> Result<tonic::Response<v1::StatusReport>, tonic::Status> {
        Ok(tonic::Response::new(report(
            &self.telemetry,
            self.unhealthy_after,
            unix_nanos_now(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::settings::Signal;
    use crate::telemetry::{PollRecord, ProcessCounts};

    const SECOND: u64 = 1_000_000_000;

    fn telemetry() -> Telemetry {
        let telemetry = Telemetry::default();
        telemetry
            .polls
            .register_target("web", "http://127.0.0.1:9001");
        telemetry.polls.register_target("db", "unix:///run/db.sock");
        telemetry
            .polls
            .register_target("new", "http://10.0.0.1:9001");
        telemetry.polls.record_poll(
            "web",
            PollRecord {
                started_unix_nano: 10 * SECOND,
                duration: Duration::from_millis(4),
                error_type: None,
                message: None,
                processes: Some(ProcessCounts {
                    up: 3,
                    down: 1,
                    unknown: 0,
                }),
                next_poll_unix_nano: 25 * SECOND,
            },
        );
        telemetry.polls.record_poll(
            "db",
            PollRecord {
                started_unix_nano: 11 * SECOND,
                duration: Duration::from_millis(1),
                error_type: Some("connect"),
                message: Some("Cannot connect to unix:///run/db.sock."),
                processes: None,
                next_poll_unix_nano: 26 * SECOND,
            },
        );
        let otlp = telemetry
            .exporters
            .register("otlp", &[Signal::Metrics, Signal::Logs]);
        otlp.counters.add_sent(40);
        otlp.counters.set_queue(2, 2048);
        otlp.counters.set_queue_capacity(2000, 1 << 20);
        otlp.counters.record_attempt(false, 12 * SECOND);
        telemetry.export.record_attempt(false, 12 * SECOND);
        telemetry.receiver.set_config_source("/etc/r.yaml");
        telemetry
    }

    #[test]
    fn the_report_shows_targets_exporters_and_health() {
        let telemetry = telemetry();
        let now = 20 * SECOND;
        let r = report(&telemetry, Duration::from_secs(5), now);
        let receiver = r.receiver.clone().unwrap_or_default();
        assert_eq!(receiver.version, VERSION);
        assert_eq!(receiver.config_source, "/etc/r.yaml");
        assert_eq!(r.report_time_unix_nano, now);

        let names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["db", "new", "web"], "name order");
        let [db, new, web] = [&r.targets[0], &r.targets[1], &r.targets[2]];
        assert_eq!(web.result(), v1::PollResult::Ok);
        assert_eq!(web.endpoint, "http://127.0.0.1:9001");
        assert_eq!(
            web.processes,
            Some(v1::ProcessCounts {
                up: 3,
                down: 1,
                unknown: 0
            })
        );
        assert_eq!(web.next_poll_unix_nano, 25 * SECOND);
        assert_eq!(web.last_poll_duration_seconds, 0.004);
        assert_eq!(db.result(), v1::PollResult::Error);
        assert_eq!(db.error_message, "Cannot connect to unix:///run/db.sock.");
        assert_eq!(db.error_type, "connect");
        assert_eq!((db.consecutive_failures, db.failed_polls), (1, 1));
        assert_eq!(db.processes, None);
        assert_eq!(new.result(), v1::PollResult::Unspecified);

        let otlp = &r.exporters[0];
        assert_eq!(otlp.name, "otlp");
        assert_eq!(otlp.signals, ["metrics", "logs"]);
        assert_eq!((otlp.queue_batches, otlp.queue_capacity_batches), (2, 2000));
        assert_eq!(otlp.sent_points, 40);
        assert_eq!(otlp.failing_since_unix_nano, 12 * SECOND);

        let health = r.health.clone().unwrap_or_default();
        assert!(!health.healthy, "failing for 8 s, limit 5 s");
        assert_eq!(
            health.reason,
            "every export has failed for 8.0s (unhealthy after 5s)"
        );
        assert_eq!(health.exports_failing_since_unix_nano, 12 * SECOND);
        let later = report(&telemetry, Duration::from_secs(60), now);
        assert!(later.health.unwrap_or_default().healthy);
        assert_eq!(r.health.unwrap_or_default().unhealthy_after_seconds, 5.0);
    }

    /// The generated types encode and decode: the proto compiled (without protoc) into working
    /// code.
    #[test]
    fn a_report_round_trips_through_protobuf() {
        let original = report(&telemetry(), Duration::from_secs(5), 20 * SECOND);
        let bytes = original.encode_to_vec();
        let decoded = v1::StatusReport::decode(bytes.as_slice()).unwrap_or_default();
        assert_eq!(decoded, original);
        assert_eq!(decoded.targets.len(), 3);
        assert_eq!(decoded.exporters[0].signals, ["metrics", "logs"]);
    }
}
