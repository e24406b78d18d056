//! What `/healthz` answers, computed from the telemetry counters alone (no I/O), so every
//! rule is tested on literal values.
//!
//! Healthy means "the receiver gets its data out": unhealthy once every export has failed for
//! longer than `unhealthy_after`. A supervisord that is down is not the receiver's illness: it
//! is reported per target (and by `supervisord.can_connect`), never turns the status to 503.
//!
//! Only target names, counts, error types and times are shown: no endpoints, no credentials,
//! no error texts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};

use crate::telemetry::Telemetry;

#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    pub healthy: bool,
    pub body: Value,
}

pub fn report(
    telemetry: &Telemetry,
    unhealthy_after: Duration,
    now_unix_nano: u64,
) -> HealthReport {
    let export = &telemetry.export;
    let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let failing_since = read(&export.failing_since_unix_nano);
    let last_success = read(&export.last_success_unix_nano);
    let failing_for = (failing_since != 0).then(|| seconds_between(failing_since, now_unix_nano));
    let limit = unhealthy_after.as_secs_f64();
    let healthy = failing_for.is_none_or(|failing| failing <= limit);

    let targets: Vec<Value> = telemetry
        .polls
        .snapshot()
        .into_iter()
        .map(|(name, stats)| {
            let last_poll = match (stats.last_poll_unix_nano, stats.last_error_type) {
                (0, _) => Value::Null,
                (_, None) => json!("ok"),
                (_, Some(error_type)) => json!(error_type),
            };
            json!({
                "name": name,
                "polls": stats.polls,
                "last_poll": last_poll,
                "last_poll_unix_nano": nonzero(stats.last_poll_unix_nano),
                "last_poll_duration_seconds": (stats.polls > 0)
                    .then_some(stats.last_duration.as_secs_f64()),
                "failed_polls": stats.errors.values().sum::<u64>(),
            })
        })
        .collect();

    let mut body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "exports": {
            "last_success_unix_nano": nonzero(last_success),
            "failing_since_unix_nano": nonzero(failing_since),
            "failing_for_seconds": failing_for,
            "unhealthy_after_seconds": limit,
            "sent_points": read(&export.sent_points),
            "dropped_points": read(&export.dropped_points),
            "retried_requests": read(&export.retried_requests),
            "queue_batches": read(&export.queue_batches),
            "queue_capacity_batches": read(&export.queue_capacity_batches),
        },
        "targets": targets,
    });
    if let (false, Some(failing_for), Value::Object(fields)) = (healthy, failing_for, &mut body) {
        fields.insert(
            "reason".into(),
            json!(format!(
                "every export has failed for {failing_for:.1}s (unhealthy after {limit}s)"
            )),
        );
    }
    HealthReport { healthy, body }
}

fn nonzero(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

fn seconds_between(from_unix_nano: u64, to_unix_nano: u64) -> f64 {
    Duration::from_nanos(to_unix_nano.saturating_sub(from_unix_nano)).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn healthy_until_exports_fail_for_longer_than_the_limit() {
        let telemetry = Telemetry::default();
        let limit = Duration::from_secs(2);
        let t0 = 1_700_000_000 * SECOND;
        assert!(report(&telemetry, limit, t0).healthy, "no export yet");

        telemetry.export.record_attempt(true, t0);
        telemetry.export.record_attempt(false, t0 + SECOND);
        let at = |t| report(&telemetry, limit, t);
        assert!(at(t0 + 2 * SECOND).healthy);
        assert!(
            at(t0 + 3 * SECOND).healthy,
            "exactly the limit is still healthy"
        );
        let failing = at(t0 + 4 * SECOND);
        assert!(!failing.healthy);
        assert_eq!(failing.body["status"], "unhealthy");
        assert_eq!(failing.body["exports"]["failing_for_seconds"], 3.0);
        assert_eq!(
            failing.body["reason"],
            "every export has failed for 3.0s (unhealthy after 2s)"
        );

        telemetry.export.record_attempt(true, t0 + 5 * SECOND);
        let back = at(t0 + 6 * SECOND);
        assert!(back.healthy);
        assert_eq!(back.body["status"], "ok");
        assert!(back.body.get("reason").is_none());
        assert_eq!(
            back.body["exports"]["last_success_unix_nano"],
            t0 + 5 * SECOND
        );
        assert_eq!(back.body["exports"]["failing_since_unix_nano"], Value::Null);
    }

    #[test]
    fn targets_show_their_last_poll_without_details() {
        let telemetry = Telemetry::default();
        telemetry.polls.register("new");
        telemetry
            .polls
            .record("web", Duration::from_millis(20), Some("unauthorized"));
        let body = report(&telemetry, Duration::from_secs(60), u64::MAX).body;
        let targets = body["targets"].as_array().cloned().unwrap_or_default();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0]["name"], "new");
        assert_eq!(targets[0]["last_poll"], Value::Null);
        assert_eq!(targets[0]["polls"], 0);
        assert_eq!(targets[1]["name"], "web");
        assert_eq!(targets[1]["last_poll"], "unauthorized");
        assert_eq!(targets[1]["failed_polls"], 1);
        assert_eq!(targets[1]["last_poll_duration_seconds"], 0.02);
    }
}
