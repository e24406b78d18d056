//! Hundreds of healthy targets beside hostile ones keep their schedule.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};

use super::fakes::{Accepted, Behaviour, Fakes};
use super::{inet_message, serial, CAN_CONNECT, RECORDED};
use crate::testkit::config::{self, otlp_exporter, target, TargetYaml};
use crate::testkit::expect::longest_gap;
use crate::testkit::otlp_sink::{self, OtlpSink, ReceivedRequest, SERVER_ATTR};
use crate::testkit::receiver::Running;
use crate::testkit::WAIT;

// ---- What the OTLP server received --------------------------------------------------------------

/// `can_connect` points per target, `(time_unix_nano, value)`, read incrementally from the
/// requests the sink received (hundreds of targets: re-reading everything on each wake-up
/// would cost more than the polls).
#[derive(Default)]
struct CanConnect {
    read: usize,
    by_target: BTreeMap<String, Vec<(u64, i64)>>,
}

impl CanConnect {
    fn update(&mut self, requests: &[ReceivedRequest]) {
        for received in requests.get(self.read..).unwrap_or_default() {
            for rm in &received.request.resource_metrics {
                let server = rm
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == SERVER_ATTR))
                    .map(|kv| otlp_sink::any_value_string(kv.value.as_ref()))
                    .unwrap_or_default();
                for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
                    let Some(metric::Data::Gauge(gauge)) = &m.data else {
                        continue;
                    };
                    if m.name != CAN_CONNECT {
                        continue;
                    }
                    for dp in &gauge.data_points {
                        if let Some(number_data_point::Value::AsInt(v)) = dp.value {
                            self.by_target
                                .entry(server.clone())
                                .or_default()
                                .push((dp.time_unix_nano, v));
                        }
                    }
                }
            }
        }
        self.read = requests.len();
    }

    fn points(&self, target: &str) -> Vec<(u64, i64)> {
        let mut points = self.by_target.get(target).cloned().unwrap_or_default();
        points.sort_unstable();
        points
    }

    fn count(&self, target: &str) -> usize {
        self.by_target.get(target).map_or(0, Vec::len)
    }
}

// ---- Hundreds of healthy targets beside hostile ones ---------------------------------------------

const HEALTHY: usize = 300;
/// Polls of every target before the schedule is judged.
const POLLS: usize = 8;
const INTERVAL_NANOS: u64 = 1_000_000_000;

#[test]
fn hundreds_of_healthy_targets_keep_their_schedule_beside_hostile_ones() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut fakes = Fakes::new();
    let recorded = Arc::new(RECORDED.as_bytes().to_vec());
    let mut targets: Vec<TargetYaml> = (0..HEALTHY)
        .map(|i| {
            let (url, _) = fakes.serve(Behaviour::Reply(recorded.clone()));
            target(&format!("healthy-{i:03}"), &url)
        })
        .collect();
    let mut hostile: Vec<(&str, String, Option<Accepted>)> = Vec::new();
    for (name, behaviour) in [
        ("slowloris", Behaviour::Slowloris),
        ("silent", Behaviour::Silent),
        ("hangup", Behaviour::HangUp),
        ("endless", Behaviour::Endless),
    ] {
        let (url, accepted) = fakes.serve(behaviour);
        hostile.push((name, url, Some(accepted)));
    }
    hostile.push(("unaccepting", fakes.unaccepting(), None));
    for (name, url, _) in &hostile {
        targets.push(target(name, url));
    }

    let sink = OtlpSink::start();
    let cfg = config::native(
        &targets,
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "gzip", &[])],
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    let names: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, _)| match i.checked_sub(HEALTHY) {
            None => format!("healthy-{i:03}"),
            Some(h) => hostile
                .get(h)
                .map(|(n, _, _)| n.to_string())
                .unwrap_or_default(),
        })
        .collect();
    let mut seen = CanConnect::default();
    sink.wait_for(
        |requests| {
            seen.update(requests);
            names.iter().all(|name| seen.count(name) >= POLLS)
        },
        Duration::from_secs(40),
    );

    // Every hostile target failed with its own reason, in the check's words.
    let mut logs = |needle: &str| receiver.wait_for_stderr(needle, WAIT);
    let url = |name: &str| {
        hostile
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, u, _)| u.clone())
            .unwrap_or_default()
    };
    logs(&inet_message(&url("slowloris")));
    logs("timed out after 1s while reading the reply");
    logs("timed out after 1s waiting for the reply");
    logs("timed out after 1s while connecting");
    logs(&inet_message(&url("hangup")));
    logs("Invalid reply from endless: reply larger than 16777216 bytes");
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    seen.update(&sink.requests());

    let mut late = Vec::new();
    for name in &names {
        let points = seen.points(name);
        let healthy = name.starts_with("healthy-");
        let expected = i64::from(healthy);
        assert!(
            points.iter().all(|(_, v)| *v == expected),
            "{name}: can_connect should always be {expected}: {points:?}"
        );
        let gap = longest_gap(&points);
        if gap > INTERVAL_NANOS + 1_000_000_000 {
            late.push(format!("{name}: {:.3}s", gap as f64 / 1e9));
        }
    }
    assert!(
        late.is_empty(),
        "consecutive polls more than interval + 1s apart: {late:?}"
    );
    // No reconnect storm: at most one connection per poll (plus the one in flight at the stop).
    for (name, _, accepted) in &hostile {
        if let Some(accepted) = accepted {
            let accepted = accepted.load(Ordering::SeqCst);
            let polls = seen.count(name);
            assert!(
                accepted <= polls + 1,
                "{name}: {accepted} connections for {polls} polls"
            );
        }
    }
    drop(fakes);
}
