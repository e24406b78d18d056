//! Recorded supervisord replies in, OTLP out.
//!
//! - Golden files: each case decodes a fixture from `tests/fixtures/xmlrpc/`, applies the
//!   target's filters and mapping, builds the export request and compares it, as OTLP/JSON, with
//!   `tests/golden/<case>.json`. Timestamps and the order of metrics and points are ignored.
//!   Some cases add the counts the scrape layer would have kept (restarts, exits) and the
//!   resource readings it would have made (CPU, memory, ...), so those are held to their files
//!   too.
//!   `UPDATE_GOLDEN=1 cargo test --test unit metrics_golden` rewrites the files; review the diff.
//! - Datadog's unit vectors: the process counts and uptimes its check's tests expect, read back
//!   from the produced OTLP.
//! - `docs/metrics.md` must match the table in the code; `UPDATE_DOCS=1` rewrites it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, NumberDataPoint,
};
use serde_json::Value as Json;
use supervisord_receiver::settings::pattern::NamePattern;

use supervisord_receiver::metrics::build_request;
use supervisord_receiver::schema::definitions::{
    CPU_MODE, EXPECTED, GROUP, PROCESS, PROGRAM_RESOURCES, SCOPE_NAME, STATUS, SUPERVISORD_SERVER,
};
use supervisord_receiver::schema::{metrics_page, MetricId, MetricToggles};
use supervisord_receiver::scrape::config_info::Autostarts;
use supervisord_receiver::scrape::monitored;
use supervisord_receiver::scrape::outcome::{
    CountPoint, Counts, PollData, PollOutcome, ProgramResources, Resources, TargetIdentity,
};
use supervisord_receiver::settings::{Endpoint, Target, Temporality};
use supervisord_receiver::supervisor::decode;
use supervisord_receiver::supervisor::xmlrpc::{self, Value};
use supervisord_receiver::vocab::Status;
use supervisord_receiver::vocab::{ProcessInfo, ProcessState, Snapshot};

/// Arbitrary: golden comparison drops timestamps, the vectors never read them.
const POLL_TIME_UNIX_NANO: u64 = 1_414_815_513_000_000_000;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn reply_value(fixture: &str) -> Value {
    let path = manifest_path("tests/fixtures/xmlrpc").join(fixture);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match xmlrpc::decode_response(&body) {
        Ok(Ok(value)) => value,
        Ok(Err(fault)) => panic!("{fixture}: fault {fault}"),
        Err(e) => panic!("{fixture}: {e}"),
    }
}

/// A `getAllProcessInfo` reply.
fn processes_snapshot(fixture: &str) -> Snapshot {
    let (processes, problems) =
        decode::processes(&reply_value(fixture)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    assert!(problems.is_empty(), "{fixture}: {problems:?}");
    Snapshot {
        processes,
        ..Snapshot::default()
    }
}

/// A `system.multicall` reply: getAllProcessInfo, getState, getIdentification,
/// getSupervisorVersion.
fn multicall_snapshot(fixture: &str) -> Snapshot {
    let polled = supervisord_receiver::supervisor::client::from_multicall(reply_value(fixture))
        .unwrap_or_else(|e| panic!("{fixture}: {e:?}"));
    assert!(
        polled.problems.is_empty(),
        "{fixture}: {:?}",
        polled.problems
    );
    polled.snapshot
}

fn target(name: &str) -> Target {
    Target::new(
        name,
        Endpoint::Tcp {
            tls: false,
            host: "localhost".into(),
            port: 9001,
        },
    )
}

fn outcome(target: &Target, snapshot: Snapshot) -> PollOutcome {
    PollOutcome {
        target: identity(target),
        time_unix_nano: POLL_TIME_UNIX_NANO,
        result: Ok(monitored(target, snapshot)),
    }
}

fn identity(target: &Target) -> Arc<TargetIdentity> {
    Arc::new(TargetIdentity::of(target))
}

/// Which format the target came from: the Datadog loader puts `supervisord_server` first on
/// every point (`tests/unit/config/` checks that it does), the native one nothing.
#[derive(Clone, Copy)]
enum Format {
    Native,
    Datadog,
}

impl Format {
    fn apply(self, target: &Target) -> Target {
        let mut target = target.clone();
        if let Format::Datadog = self {
            target
                .point_attributes
                .insert(0, (SUPERVISORD_SERVER.key.into(), target.name.clone()));
        }
        target
    }
}

fn build(target: &Target, snapshot: Snapshot, format: Format) -> ExportMetricsServiceRequest {
    build_counted(target, snapshot, format, |_| {})
}

/// [`build`], with counts added to the poll as the scrape layer would have kept them.
fn build_counted(
    target: &Target,
    snapshot: Snapshot,
    format: Format,
    count: impl FnOnce(&mut PollData),
) -> ExportMetricsServiceRequest {
    let target = format.apply(target);
    let mut outcome = outcome(&target, snapshot);
    if let Ok(data) = &mut outcome.result {
        count(data);
    }
    build_request(&[outcome], &MetricToggles::default())
}

/// Arbitrary, before the poll: golden comparison drops it.
const FIRST_SEEN_UNIX_NANO: u64 = POLL_TIME_UNIX_NANO - 60_000_000_000;

/// A restart count per monitored process (0, 1, 2, 0, ...), as polling keeps them.
fn restarts(data: &mut PollData, temporality: Temporality) {
    let points = data
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| CountPoint {
            name: p.info.name.clone(),
            group: p.info.group.clone(),
            expected: None,
            start_time_unix_nano: FIRST_SEEN_UNIX_NANO,
            value: i as u64 % 3,
        })
        .collect();
    data.restarts = Counts {
        temporality,
        points,
    };
}

/// Exit counts per monitored process, `expected` true and false, as push mode keeps them.
fn exits(data: &mut PollData, temporality: Temporality) {
    let points = data
        .processes
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            [(true, 1), (false, i as u64)].map(|(expected, value)| CountPoint {
                name: p.info.name.clone(),
                group: p.info.group.clone(),
                expected: Some(expected),
                start_time_unix_nano: FIRST_SEEN_UNIX_NANO,
                value,
            })
        })
        .collect();
    data.exits = Counts {
        temporality,
        points,
    };
}

/// Resource readings for every RUNNING monitored process, as the scrape layer makes them for a
/// local target: the first with its descriptors read, the others without (the recorded
/// replies have one running program each; the builder's tests hold the second shape).
fn resources(data: &mut PollData, cpu_temporality: Temporality) {
    let programs = data
        .processes
        .iter()
        .filter(|p| p.info.state == ProcessState::Running)
        .enumerate()
        .map(|(i, p)| {
            let i = i as u64;
            ProgramResources {
                name: p.info.name.clone(),
                group: p.info.group.clone(),
                cpu_user_seconds: 12.5 + i as f64,
                cpu_system_seconds: 0.75,
                cpu_start_time_unix_nano: FIRST_SEEN_UNIX_NANO,
                memory_usage_bytes: (64 + i) << 20,
                memory_virtual_bytes: (1 + i) << 30,
                threads: 4 + i,
                open_fds: (i == 0).then_some(32),
                processes: 1 + i,
            }
        })
        .collect();
    data.resources = Resources {
        cpu_temporality,
        programs,
    };
}

/// Each monitored process's `autostart` from a `getAllConfigInfo` reply, as a native target's
/// poller sets it.
fn autostart(data: &mut PollData, fixture: &str) {
    let info = supervisord_receiver::supervisor::config_info::config_info(&reply_value(fixture))
        .unwrap_or_else(|e| panic!("{fixture}: {e}"));
    assert!(info.problems.is_empty(), "{fixture}: {:?}", info.problems);
    Autostarts::new(info.processes).apply(&mut data.processes);
}

/// A `proc_regex` pattern as the Datadog format reads it (Python's syntax).
fn regex(pattern: &str) -> NamePattern {
    NamePattern::python(pattern).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Golden files

/// OTLP/JSON with timestamps removed and metrics and points in a canonical order.
fn normalized(request: &ExportMetricsServiceRequest) -> Json {
    let mut json = serde_json::to_value(request).unwrap();
    normalize(&mut json);
    json
}

/// Stands for the crate version in golden files, so a release does not rewrite them all.
const VERSION_PLACEHOLDER: &str = "${CARGO_PKG_VERSION}";

fn normalize(json: &mut Json) {
    match json {
        Json::Object(map) => {
            map.remove("timeUnixNano");
            map.remove("startTimeUnixNano");
            if map.get("name").and_then(Json::as_str) == Some(SCOPE_NAME)
                && map.get("version").and_then(Json::as_str) == Some(env!("CARGO_PKG_VERSION"))
            {
                map.insert("version".into(), Json::from(VERSION_PLACEHOLDER));
            }
            for value in map.values_mut() {
                normalize(value);
            }
            if let Some(Json::Array(metrics)) = map.get_mut("metrics") {
                metrics.sort_by_key(|m| m["name"].to_string());
            }
            if let Some(Json::Array(points)) = map.get_mut("dataPoints") {
                points.sort_by_key(|p| p["attributes"].to_string());
            }
        }
        Json::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn check_golden(case: &str, request: &ExportMetricsServiceRequest) {
    let path = manifest_path("tests/golden").join(format!("{case}.json"));
    let actual = normalized(request);
    let actual_text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual_text).unwrap();
        return;
    }
    let expected_text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nrun `UPDATE_GOLDEN=1 cargo test --test unit metrics_golden` to create it",
            path.display()
        )
    });
    let mut expected: Json = serde_json::from_str(&expected_text)
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    normalize(&mut expected);
    if expected != actual {
        let expected_text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
        let first_difference = expected_text
            .lines()
            .zip(actual_text.lines())
            .enumerate()
            .find(|(_, (e, a))| e != a)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .unwrap_or_else(|| "one output is a prefix of the other".into());
        panic!(
            "{} does not match the produced metrics; first difference at {first_difference}\n\
             If the change is intended: `UPDATE_GOLDEN=1 cargo test --test unit metrics_golden`, \
             then review the diff.\nproduced:\n{actual_text}",
            path.display()
        );
    }
}

#[test]
fn golden_server1_native() {
    let target = target("server1");
    check_golden(
        "datadog_server1_native",
        &build(
            &target,
            processes_snapshot("datadog_server1.xml"),
            Format::Native,
        ),
    );
}

#[test]
fn golden_server0_datadog_format_with_tags_and_filter() {
    let mut target = target("server0");
    target.filter.names = vec!["apache2".into(), "webapp".into()];
    target.resource_attributes = vec![("env".into(), "prod".into()), ("team".into(), "web".into())];
    // As the Datadog loader sets them for `tags: [env:prod, team:web, team:ops]`.
    target.point_attributes = vec![
        ("env".into(), "prod".into()),
        ("team".into(), "web".into()),
        ("team".into(), "ops".into()),
    ];
    // Push mode's counts, in delta, as a Datadog user would send them.
    check_golden(
        "datadog_server0_auth_datadog",
        &build_counted(
            &target,
            processes_snapshot("datadog_server0_auth.xml"),
            Format::Datadog,
            |data| {
                restarts(data, Temporality::Delta);
                exits(data, Temporality::Delta);
                // supervisord's clock an hour behind the receiver's, as the poller measures it.
                data.clock_offset_seconds = Some(-3_600);
            },
        ),
    );
}

#[test]
fn golden_ruby_backoff() {
    let target = target("server1");
    check_golden(
        "datadog_ruby_native",
        &build(
            &target,
            processes_snapshot("datadog_ruby.xml"),
            Format::Native,
        ),
    );
}

#[test]
fn golden_multicall_with_state_identification_and_version() {
    let target = target("server1");
    // Polling's counts: restarts only, cumulative (the default); a local target (TCP to
    // localhost), so the running programs' resources too; and, as a native target has it, the
    // configuration's `autostart` on the state and status points (mysql and python true, java
    // false).
    check_golden(
        "multicall_ok_native",
        &build_counted(
            &target,
            multicall_snapshot("multicall_ok.xml"),
            Format::Native,
            |data| {
                restarts(data, Temporality::Cumulative);
                resources(data, Temporality::Cumulative);
                autostart(data, "config_info_recorded_supervisord_4.3.0.xml");
                data.clock_offset_seconds = Some(0);
            },
        ),
    );
}

#[test]
fn golden_failed_poll() {
    let mut target = target("server0");
    target.resource_attributes = vec![("env".into(), "prod".into())];
    let failed = PollOutcome {
        target: identity(&Format::Datadog.apply(&target)),
        time_unix_nano: POLL_TIME_UNIX_NANO,
        result: Err(
            "Cannot connect to http://localhost:9001. Make sure supervisor is running \
                     and XML-RPC inet interface is enabled."
                .into(),
        ),
    };
    check_golden(
        "failed_poll_datadog",
        &build_request(&[failed], &MetricToggles::default()),
    );
}

// ---------------------------------------------------------------------------------------------
// Datadog's unit vectors (reference §6.2 TEST_CASES and §6.4)

fn gauge_points(request: &ExportMetricsServiceRequest, id: MetricId) -> Vec<&NumberDataPoint> {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == id.name())
        .flat_map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.iter().collect::<Vec<_>>(),
            other => panic!("{} is not a gauge: {other:?}", m.name),
        })
        .collect()
}

/// Every point of `id`, gauge or sum.
fn number_points(request: &ExportMetricsServiceRequest, id: MetricId) -> Vec<&NumberDataPoint> {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == id.name())
        .flat_map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.iter().collect::<Vec<_>>(),
            Some(metric::Data::Sum(s)) => s.data_points.iter().collect::<Vec<_>>(),
            other => panic!("{} is neither a gauge nor a sum: {other:?}", m.name),
        })
        .collect()
}

fn attribute<'a>(point: &'a NumberDataPoint, key: &str) -> &'a str {
    point
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no string attribute '{key}' on {point:?}"))
}

fn int(point: &NumberDataPoint) -> i64 {
    match point.value {
        Some(number_data_point::Value::AsInt(v)) => v,
        other => panic!("not an int point: {other:?}"),
    }
}

/// `supervisord.process.count` as (up, down, unknown).
fn counts(request: &ExportMetricsServiceRequest) -> (i64, i64, i64) {
    let points = gauge_points(request, MetricId::ProcessCount);
    assert_eq!(points.len(), 3, "all three statuses are always sent");
    let count = |status: Status| {
        points
            .iter()
            .find(|p| attribute(p, STATUS.key) == status.name())
            .map(|p| int(p))
            .unwrap_or_else(|| panic!("no count for status {}", status.name()))
    };
    (
        count(Status::Up),
        count(Status::Down),
        count(Status::Unknown),
    )
}

/// `supervisord.process.uptime` per process, sorted by process name.
fn uptimes(request: &ExportMetricsServiceRequest) -> Vec<(String, i64)> {
    let mut uptimes: Vec<_> = gauge_points(request, MetricId::ProcessUptime)
        .into_iter()
        .map(|p| (attribute(p, PROCESS.key).to_string(), int(p)))
        .collect();
    uptimes.sort();
    uptimes
}

fn uptimes_of(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    let mut v: Vec<_> = pairs.iter().map(|(n, u)| (n.to_string(), *u)).collect();
    v.sort();
    v
}

/// Cases #1, #7–#12 and the §6.4 filters run against `http://localhost:9001` (mysql RUNNING,
/// java STOPPED, python STARTING).
fn server1(configure: impl FnOnce(&mut Target)) -> ExportMetricsServiceRequest {
    let mut target = target("server1");
    configure(&mut target);
    build(
        &target,
        processes_snapshot("datadog_server1.xml"),
        Format::Datadog,
    )
}

#[test]
fn case_1_no_filter() {
    let request = server1(|_| {});
    assert_eq!(counts(&request), (1, 1, 1));
    assert_eq!(
        uptimes(&request),
        uptimes_of(&[("python", 0), ("mysql", 125), ("java", 0)])
    );
}

#[test]
fn case_2a_proc_names_on_the_authenticated_server() {
    let mut target = target("server0");
    target.filter.names = vec!["apache2".into(), "webapp".into()];
    let request = build(
        &target,
        processes_snapshot("datadog_server0_auth.xml"),
        Format::Datadog,
    );
    assert_eq!(counts(&request), (0, 2, 0));
    // STOPPING counts as active for uptime although it maps to down.
    assert_eq!(
        uptimes(&request),
        uptimes_of(&[("apache2", 0), ("webapp", 2)])
    );
}

#[test]
fn case_2b_backoff_with_zero_uptime() {
    let target = target("server1");
    let request = build(
        &target,
        processes_snapshot("datadog_ruby.xml"),
        Format::Datadog,
    );
    assert_eq!(counts(&request), (0, 1, 0));
    assert_eq!(uptimes(&request), uptimes_of(&[("ruby", 0)]));
}

#[test]
fn case_7_proc_names_ignore_missing_processes() {
    let request = server1(|t| t.filter.names = vec!["mysql".into(), "invalid_process".into()]);
    assert_eq!(counts(&request), (1, 0, 0));
    assert_eq!(uptimes(&request), uptimes_of(&[("mysql", 125)]));
}

#[test]
fn case_8_proc_regex() {
    let request = server1(|t| t.filter.regex = vec![regex("^mysq.$"), regex("invalid_process")]);
    assert_eq!(counts(&request), (1, 0, 0));
    assert_eq!(uptimes(&request), uptimes_of(&[("mysql", 125)]));
}

#[test]
fn case_9_proc_regex_exclude() {
    let request = server1(|t| t.filter.regex_exclude = vec![regex("^py.*$")]);
    assert_eq!(counts(&request), (1, 1, 0));
    assert_eq!(
        uptimes(&request),
        uptimes_of(&[("mysql", 125), ("java", 0)])
    );
}

#[test]
fn case_10_proc_names_exclude() {
    let request = server1(|t| t.filter.names_exclude = vec!["python".into()]);
    assert_eq!(counts(&request), (1, 1, 0));
    assert_eq!(
        uptimes(&request),
        uptimes_of(&[("mysql", 125), ("java", 0)])
    );
}

#[test]
fn case_11_override_stopped_to_up() {
    let request = server1(|t| t.status_mapping.set(ProcessState::Stopped, Status::Up));
    assert_eq!(counts(&request), (2, 0, 1));
    // The override changes the status, never the uptime rule.
    assert_eq!(
        uptimes(&request),
        uptimes_of(&[("python", 0), ("mysql", 125), ("java", 0)])
    );
    let java_status: Vec<_> = gauge_points(&request, MetricId::ProcessStatus)
        .into_iter()
        .filter(|p| attribute(p, PROCESS.key) == "java" && int(p) == 1)
        .map(|p| attribute(p, STATUS.key))
        .collect();
    assert_eq!(java_status, ["up"]);
}

#[test]
fn case_12_override_stopped_to_unknown() {
    let request = server1(|t| t.status_mapping.set(ProcessState::Stopped, Status::Unknown));
    assert_eq!(counts(&request), (1, 0, 2));
}

#[test]
fn unit_proc_names_python_only() {
    let request = server1(|t| t.filter.names = vec!["python".into()]);
    assert_eq!(counts(&request), (0, 0, 1));
}

#[test]
fn unit_regex_exclude_alone_means_everything_else() {
    let request = server1(|t| t.filter.regex_exclude = vec![regex("^my.*$")]);
    let (up, down, unknown) = counts(&request);
    assert_eq!(up, 0);
    assert_eq!((down, unknown), (1, 1));
}

#[test]
fn unit_extract_uptime() {
    let process = |state| ProcessInfo {
        name: "p".into(),
        group: "p".into(),
        state,
        start: 10,
        now: 25,
        ..ProcessInfo::default()
    };
    let target = target("server1");
    for (state, expected) in [(ProcessState::Running, 15), (ProcessState::Stopped, 0)] {
        let snapshot = Snapshot {
            processes: vec![process(state)],
            ..Snapshot::default()
        };
        let request = build(&target, snapshot, Format::Native);
        assert_eq!(uptimes(&request), uptimes_of(&[("p", expected)]), "{state}");
    }
}

#[test]
fn datadog_format_tags_every_point_with_the_server() {
    let request = build_counted(
        &target("server1"),
        processes_snapshot("datadog_server1.xml"),
        Format::Datadog,
        |data| {
            restarts(data, Temporality::Cumulative);
            exits(data, Temporality::Delta);
            data.clock_offset_seconds = Some(2);
        },
    );
    let mut seen = 0;
    for id in MetricId::ALL {
        let points = number_points(&request, id);
        // The fixture has no supervisord state, and a Datadog-format file reads no resources;
        // everything else is there, sums included.
        assert_eq!(
            points.is_empty(),
            id == MetricId::SupervisorState || PROGRAM_RESOURCES.contains(&id),
            "{}",
            id.name()
        );
        for point in points {
            assert_eq!(
                attribute(point, SUPERVISORD_SERVER.key),
                "server1",
                "{}",
                id.name()
            );
            seen += 1;
        }
    }
    assert!(seen > 0);
}

#[test]
fn counts_are_monotonic_sums_with_their_temporality_and_a_bool_expected() {
    let request = build_counted(
        &target("server1"),
        processes_snapshot("datadog_server1.xml"),
        Format::Native,
        |data| {
            restarts(data, Temporality::Cumulative);
            exits(data, Temporality::Delta);
        },
    );
    let sum = |id: MetricId| {
        request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == id.name())
            .and_then(|m| match &m.data {
                Some(metric::Data::Sum(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{} is not a sum", id.name()))
    };
    let restarts = sum(MetricId::ProcessRestarts);
    assert!(restarts.is_monotonic);
    assert_eq!(
        restarts.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let exits = sum(MetricId::ProcessExits);
    assert!(exits.is_monotonic);
    assert_eq!(
        exits.aggregation_temporality,
        AggregationTemporality::Delta as i32
    );
    // Three processes, each with an expected and an unexpected series.
    assert_eq!(exits.data_points.len(), 6);
    for point in restarts.data_points.iter().chain(&exits.data_points) {
        assert_eq!(point.start_time_unix_nano, FIRST_SEEN_UNIX_NANO);
        assert_eq!(point.time_unix_nano, POLL_TIME_UNIX_NANO);
        let keys: Vec<_> = point.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys[..2], [PROCESS.key, GROUP.key]);
    }
    let expected: Vec<_> = exits
        .data_points
        .iter()
        .map(|p| {
            let kv = p.attributes.iter().find(|kv| kv.key == EXPECTED.key);
            match kv.and_then(|kv| kv.value.as_ref()?.value.as_ref()) {
                Some(any_value::Value::BoolValue(b)) => *b,
                other => panic!("expected is not a bool: {other:?}"),
            }
        })
        .collect();
    assert_eq!(expected, [true, false, true, false, true, false]);
}

#[test]
fn resources_are_a_double_cpu_sum_and_int_gauges_with_the_server_on_every_point() {
    for temporality in [Temporality::Cumulative, Temporality::Delta] {
        let request = build_counted(
            &target("server1"),
            multicall_snapshot("multicall_ok.xml"),
            Format::Datadog,
            |data| resources(data, temporality),
        );
        let metric = |id: MetricId| {
            request.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .find(|m| m.name == id.name())
                .unwrap_or_else(|| panic!("no {}", id.name()))
        };
        let Some(metric::Data::Sum(cpu)) = &metric(MetricId::ProcessCpuTime).data else {
            panic!("cpu time is not a sum");
        };
        assert!(cpu.is_monotonic);
        let otlp = match temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta => AggregationTemporality::Delta,
        };
        assert_eq!(cpu.aggregation_temporality, otlp as i32);
        // One running program (mysql), two modes.
        let modes: Vec<_> = cpu
            .data_points
            .iter()
            .map(|p| {
                assert_eq!(attribute(p, SUPERVISORD_SERVER.key), "server1");
                assert_eq!(p.start_time_unix_nano, FIRST_SEEN_UNIX_NANO);
                let Some(number_data_point::Value::AsDouble(v)) = p.value else {
                    panic!("not a double point: {p:?}");
                };
                (attribute(p, CPU_MODE.key), v)
            })
            .collect();
        assert_eq!(modes, [("user", 12.5), ("system", 0.75)]);
        for id in &PROGRAM_RESOURCES[1..] {
            let points = gauge_points(&request, *id);
            assert_eq!(points.len(), 1, "{}", id.name());
            for point in points {
                assert_eq!(attribute(point, SUPERVISORD_SERVER.key), "server1");
                assert_eq!(attribute(point, PROCESS.key), "mysql");
                assert_eq!(point.start_time_unix_nano, 0);
                assert!(int(point) > 0, "{}", id.name());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// docs/metrics.md

#[test]
fn the_metrics_page_matches_the_definitions() {
    let path = manifest_path("docs/metrics.md");
    let expected = metrics_page();
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nThe page is generated: run `UPDATE_DOCS=1 cargo test --test unit \
             metrics_golden`.",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "{}: differs from src/metrics/definitions.rs; run `UPDATE_DOCS=1 cargo test --test unit \
         metrics_golden` to regenerate it.\nexpected:\n{expected}",
        path.display()
    );
}
