//! End to end `GET /metrics`: the real binary polls a real supervisord (the mixed program set,
//! over its UNIX socket, so the programs' resources are read too) and a target that is down,
//! exports to a real OTLP server, and serves the OpenMetrics page on its `health:` port. The
//! page is read by a real OpenMetrics parser (Python's `prometheus_client`), and every family,
//! label and value must be what the OTLP server received for the same poll, in Prometheus
//! naming. A target removed by a reload leaves the page.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality};

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::mixed_processes;
use crate::testkit::http::{self, health_addr};
use crate::testkit::openmetrics::{self, Family};
use crate::testkit::otlp_sink::{any_value_string, OtlpSink, ReceivedRequest};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{free_port, Options, Supervisord};
use crate::testkit::{default_status, PROCESS_STATES, STATUSES, SUPERVISOR_STATES, WAIT};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Each OTLP metric's Prometheus family, type and unit, as docs/operations.md lists them.
const FAMILIES: [(&str, &str, &str, &str); 17] = [
    (
        "supervisord.can_connect",
        "supervisord_can_connect_ratio",
        "gauge",
        "ratio",
    ),
    (
        "supervisord.process.count",
        "supervisord_process_count",
        "gauge",
        "",
    ),
    (
        "supervisord.process.uptime",
        "supervisord_process_uptime_seconds",
        "gauge",
        "seconds",
    ),
    (
        "supervisord.process.status",
        "supervisord_process_status",
        "stateset",
        "",
    ),
    (
        "supervisord.process.state",
        "supervisord_process_state",
        "stateset",
        "",
    ),
    (
        "supervisord.process.exit_status",
        "supervisord_process_exit_status_ratio",
        "gauge",
        "ratio",
    ),
    (
        "supervisord.process.start_time",
        "supervisord_process_start_time_seconds",
        "gauge",
        "seconds",
    ),
    (
        "supervisord.process.restarts",
        "supervisord_process_restarts",
        "counter",
        "",
    ),
    (
        "supervisord.process.exits",
        "supervisord_process_exits",
        "counter",
        "",
    ),
    (
        "supervisord.process.cpu.time",
        "supervisord_process_cpu_time_seconds",
        "counter",
        "seconds",
    ),
    (
        "supervisord.process.memory.usage",
        "supervisord_process_memory_usage_bytes",
        "gauge",
        "bytes",
    ),
    (
        "supervisord.process.memory.virtual",
        "supervisord_process_memory_virtual_bytes",
        "gauge",
        "bytes",
    ),
    (
        "supervisord.process.thread.count",
        "supervisord_process_thread_count",
        "gauge",
        "",
    ),
    (
        "supervisord.process.unix.file_descriptor.count",
        "supervisord_process_unix_file_descriptor_count",
        "gauge",
        "",
    ),
    (
        "supervisord.process.tree.count",
        "supervisord_process_tree_count",
        "gauge",
        "",
    ),
    ("supervisord.state", "supervisord_state", "stateset", ""),
    (
        "supervisord.clock.offset",
        "supervisord_clock_offset_seconds",
        "gauge",
        "seconds",
    ),
];

/// The attribute that holds a StateSet's state.
fn state_key(family: &str) -> &'static str {
    match family {
        "supervisord_process_status" => "status",
        _ => "state",
    }
}

/// Samples by sample name and labels.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// An attribute key as a Prometheus label name (the keys here need only this much).
fn label(key: &str) -> String {
    key.replace('.', "_")
}

/// What `/metrics` must show for each poll of `server` the OTLP server received, by the poll's
/// time: the expectation written from the OTLP data alone.
fn expected_polls(requests: &[ReceivedRequest], server: &str) -> BTreeMap<u64, Samples> {
    let mut polls: BTreeMap<u64, Samples> = BTreeMap::new();
    for received in requests {
        for rm in &received.request.resource_metrics {
            let resource: BTreeMap<String, String> = rm
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|kv| (label(&kv.key), any_value_string(kv.value.as_ref())))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            if resource.get("supervisor_server").map(String::as_str) != Some(server) {
                continue;
            }
            for sm in &rm.scope_metrics {
                let scope = sm.scope.clone().unwrap_or_default();
                for m in &sm.metrics {
                    let &(_, family, kind, _) = FAMILIES
                        .iter()
                        .find(|(name, ..)| *name == m.name)
                        .unwrap_or_else(|| panic!("unexpected metric {}", m.name));
                    let points = match &m.data {
                        Some(metric::Data::Gauge(g)) => &g.data_points,
                        Some(metric::Data::Sum(s)) => {
                            assert_eq!(
                                s.aggregation_temporality,
                                AggregationTemporality::Cumulative as i32
                            );
                            &s.data_points
                        }
                        other => panic!("{}: unexpected data {other:?}", m.name),
                    };
                    for point in points {
                        let poll = polls.entry(point.time_unix_nano).or_default();
                        poll.insert(("target_info".into(), resource.clone()), 1.0);
                        let mut labels = resource.clone();
                        labels.insert("otel_scope_name".into(), scope.name.clone());
                        labels.insert("otel_scope_version".into(), scope.version.clone());
                        for kv in &point.attributes {
                            let value = any_value_string(kv.value.as_ref());
                            if !value.is_empty() {
                                labels.insert(label(&kv.key), value);
                            }
                        }
                        let value = match point.value {
                            Some(number_data_point::Value::AsInt(v)) => v as f64,
                            Some(number_data_point::Value::AsDouble(v)) => v,
                            None => continue,
                        };
                        match kind {
                            "gauge" => {
                                poll.insert((family.into(), labels), value);
                            }
                            "counter" => {
                                poll.insert((format!("{family}_total"), labels.clone()), value);
                                if point.start_time_unix_nano != 0 {
                                    poll.insert(
                                        (format!("{family}_created"), labels),
                                        point.start_time_unix_nano as f64 / 1e9,
                                    );
                                }
                            }
                            _ => {
                                let state = labels
                                    .remove(state_key(family))
                                    .unwrap_or_else(|| panic!("{family} without its state"));
                                labels.insert(family.into(), state);
                                poll.insert((family.into(), labels), value);
                            }
                        }
                    }
                }
            }
        }
    }
    polls
}

/// The parsed page's samples of `server`.
fn samples_of(families: &[Family], server: &str) -> Samples {
    families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.labels.get("supervisor_server").map(String::as_str) == Some(server))
        .map(|s| ((s.name.clone(), s.labels.clone()), s.value))
        .collect()
}

/// Equal sample for sample; `_created` times (seconds with nanoseconds, read back as a double)
/// within a microsecond.
fn same(page: &Samples, otlp: &Samples) -> bool {
    page.len() == otlp.len()
        && page.iter().zip(otlp).all(|((pk, pv), (ok, ov))| {
            pk == ok && ((pv - ov).abs() <= 1e-6 * ov.abs().max(1.0) || pv == ov)
        })
}

/// What differs between the page and a poll, for failure messages.
fn diff(page: &Samples, otlp: &Samples) -> String {
    let mut out = String::new();
    for (key, value) in page {
        if otlp.get(key) != Some(value) {
            out.push_str(&format!(
                "  page {key:?} = {value} (OTLP: {:?})\n",
                otlp.get(key)
            ));
        }
    }
    for (key, value) in otlp {
        if !page.contains_key(key) {
            out.push_str(&format!("  OTLP only {key:?} = {value}\n"));
        }
    }
    out
}

/// The page, checked and parsed: 200, the OpenMetrics content type, accepted by the parser.
fn scrape(addr: SocketAddr) -> (String, Vec<Family>) {
    let http::Reply {
        code,
        content_type,
        body,
    } = http::get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert_eq!(content_type, CONTENT_TYPE);
    let families = openmetrics::parse(&body)
        .unwrap_or_else(|e| panic!("the OpenMetrics parser rejects the page: {e}\n{body}"));
    (body, families)
}

/// Scrapes until `done` holds for the page; panics with the last one after `timeout`.
fn scrape_until(
    addr: SocketAddr,
    mut done: impl FnMut(&[Family]) -> bool,
    timeout: Duration,
) -> (String, Vec<Family>) {
    let deadline = Instant::now() + timeout;
    loop {
        let (body, families) = scrape(addr);
        if done(&families) {
            return (body, families);
        }
        assert!(
            Instant::now() < deadline,
            "/metrics did not reach the expected state within {timeout:?}; last:\n{body}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn family<'a>(families: &'a [Family], name: &str) -> &'a Family {
    families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The one sample of `family` with all of `labels`.
fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = family(families, name)
        .samples
        .iter()
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

/// The state of a StateSet metric (the labels of one metric point): exactly one is 1.
fn state_of(families: &[Family], name: &str, labels: &[(&str, &str)], states: &[&str]) -> String {
    let mut on = Vec::new();
    for state in states {
        let mut with_state = labels.to_vec();
        with_state.push((name, state));
        match value(families, name, &with_state) {
            1.0 => on.push(state.to_string()),
            0.0 => {}
            other => panic!("{name} {with_state:?} = {other}"),
        }
    }
    assert_eq!(on.len(), 1, "{name} {labels:?}: {on:?}");
    on.remove(0)
}

#[test]
fn metrics_page_is_openmetrics_with_what_otlp_carries() {
    // The parser first: installing it must not eat into the programs' timing.
    let _ = openmetrics::python();
    let svd = Supervisord::start(Options::default());
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let targets = |with_down: bool| {
        let mut targets = vec![target("local", &svd.unix_url())];
        if with_down {
            targets.push(target("down", &format!("http://127.0.0.1:{}", free_port())));
        }
        format!(
            "{}telemetry:\n  metrics: false\nhealth:\n  endpoint: 127.0.0.1:0\n",
            config::native(
                &targets,
                &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])]
            )
        )
    };
    let path = config::write(svd.dir(), "receiver.yaml", &targets(true));
    let mut receiver = Running::start(&path, &[]);
    let addr = health_addr(&mut receiver);

    // The first request turns the recording on: targets appear from their next poll.
    let has = |families: &[Family], server: &str| {
        families.iter().any(|f| {
            f.name == "supervisord_can_connect_ratio"
                && f.samples
                    .iter()
                    .any(|s| s.labels.get("supervisor_server").map(String::as_str) == Some(server))
        })
    };
    let (body, families) = scrape_until(
        addr,
        |families| has(families, "local") && has(families, "down"),
        WAIT,
    );

    // Metadata: names, types and units of the specification; HELP from the descriptions.
    assert_eq!(families[0].name, "target", "target_info comes first");
    assert_eq!(families[0].kind, "info");
    assert_eq!(family(&families, "target").samples.len(), 2);
    for f in &families[1..] {
        let &(_, _, kind, unit) = FAMILIES
            .iter()
            .find(|(_, name, ..)| *name == f.name)
            .unwrap_or_else(|| panic!("unexpected family {}", f.name));
        assert_eq!(
            (f.kind.as_str(), f.unit.as_str()),
            (kind, unit),
            "{}",
            f.name
        );
        assert!(!f.help.is_empty(), "{}", f.name);
    }
    // Polling: everything but the exit counts, which only push mode has.
    assert_eq!(families.len(), 1 + FAMILIES.len() - 1, "{body}");
    let samples = families.iter().flat_map(|f| &f.samples);
    assert!(
        samples.clone().all(|s| s.timestamp.is_none()),
        "no timestamps"
    );
    assert!(body.ends_with("# EOF\n"));

    // The page says what supervisord says.
    let local = [("supervisor_server", "local")];
    assert_eq!(
        value(&families, "supervisord_can_connect_ratio", &local),
        1.0
    );
    assert_eq!(
        state_of(&families, "supervisord_state", &local, &SUPERVISOR_STATES),
        "RUNNING"
    );
    let mut counts: BTreeMap<String, f64> = STATUSES.iter().map(|s| (s.to_string(), 0.0)).collect();
    for (name, group, allowed) in mixed_processes() {
        let who = [
            ("supervisor_server", "local"),
            ("supervisord_process", name),
            ("supervisord_group", group),
        ];
        let state = state_of(
            &families,
            "supervisord_process_state",
            &who,
            &PROCESS_STATES,
        );
        assert!(allowed.contains(&state.as_str()), "{name} is {state}");
        let status = state_of(&families, "supervisord_process_status", &who, &STATUSES);
        assert_eq!(status, default_status(&state), "{name} ({state})");
        *counts.entry(status).or_default() += 1.0;
        let uptime = value(&families, "supervisord_process_uptime_seconds", &who);
        if state == "RUNNING" {
            assert!(uptime >= 1.0, "{name}: uptime {uptime}");
        }
    }
    for (status, count) in counts {
        let mut labels = local.to_vec();
        labels.push(("status", &status));
        assert_eq!(
            value(&families, "supervisord_process_count", &labels),
            count,
            "{status}"
        );
    }
    // A target whose polls fail: can_connect 0, nothing else but its target_info.
    let down = samples_of(&families, "down");
    let names: Vec<&str> = down.keys().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["supervisord_can_connect_ratio", "target_info"],
        "{down:?}"
    );
    assert_eq!(
        value(
            &families,
            "supervisord_can_connect_ratio",
            &[("supervisor_server", "down")]
        ),
        0.0
    );

    // Each target's samples are exactly one poll the OTLP server received, renamed.
    for server in ["local", "down"] {
        let page = samples_of(&families, server);
        let deadline = Instant::now() + WAIT;
        loop {
            let polls = expected_polls(&sink.requests(), server);
            if polls.values().any(|otlp| same(&page, otlp)) {
                break;
            }
            let newest = polls.values().next_back().cloned().unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "{server}: the page is none of the {} polls received; against the newest:\n{}",
                polls.len(),
                diff(&page, &newest)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    // A target removed by a reload leaves the page at once.
    config::write(svd.dir(), "receiver.yaml", &targets(false));
    receiver.signal("HUP");
    receiver.wait_for_stderr("configuration reloaded", WAIT);
    let (body, families) = scrape(addr);
    assert!(samples_of(&families, "down").is_empty(), "{body}");
    assert!(!samples_of(&families, "local").is_empty(), "{body}");

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}
