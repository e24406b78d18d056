use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{Gauge, ScopeMetrics, Sum};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;
use crate::metrics::encode_resource_metrics;
use crate::schema::definitions as defs;
use crate::schema::{MetricId, MetricToggles};
use crate::scrape::outcome::{
    CountPoint, Counts, MonitoredProcess, PollData, PollOutcome, ProgramResources, Resources,
    TargetIdentity,
};
use crate::vocab::{ProcessInfo, ProcessState, Status, SupervisorState};

const SECOND: u64 = 1_000_000_000;

/// What `/metrics` shows after the pipeline recorded these polls, one per target.
fn render_polls(outcomes: &[PollOutcome]) -> String {
    let latest = LatestMetrics::default();
    latest.enable();
    for outcome in outcomes {
        let mut buffer = Vec::new();
        encode_resource_metrics(outcome, &MetricToggles::default(), &mut buffer);
        latest.register(&outcome.target.name);
        latest.record([(outcome.target.name.as_str(), Bytes::from(buffer))]);
    }
    render_metrics(&latest)
}

/// What `/metrics` shows for hand-made resources, one target each.
fn render_resources(resources: Vec<ResourceMetrics>) -> String {
    let latest = LatestMetrics::default();
    latest.enable();
    for (i, resource_metrics) in resources.into_iter().enumerate() {
        let name = format!("t{i}");
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![resource_metrics],
        };
        latest.register(&name);
        latest.record([(name.as_str(), Bytes::from(request.encode_to_vec()))]);
    }
    render_metrics(&latest)
}

fn target(name: &str) -> Arc<TargetIdentity> {
    Arc::new(TargetIdentity {
        name: name.into(),
        attributes: vec![("deployment.environment".into(), "prod".into())],
        point_attributes: vec![],
    })
}

fn process(name: &str, state: ProcessState, status: Status) -> MonitoredProcess {
    MonitoredProcess {
        info: ProcessInfo {
            name: name.into(),
            group: "g".into(),
            state,
            start: 1_700_000_000,
            now: 1_700_000_060,
            ..Default::default()
        },
        status,
        autostart: Some(true),
    }
}

fn poll(name: &str) -> PollOutcome {
    PollOutcome {
        target: target(name),
        time_unix_nano: 1_700_000_061 * SECOND,
        result: Ok(PollData {
            processes: vec![process("web", ProcessState::Running, Status::Up)],
            supervisor_state: Some(SupervisorState::Running),
            identification: Some("supervisor".into()),
            version: Some("4.3.0".into()),
            restarts: Counts {
                temporality: Default::default(),
                points: vec![CountPoint {
                    name: "web".into(),
                    group: "g".into(),
                    expected: None,
                    start_time_unix_nano: 1_700_000_001 * SECOND + 5,
                    value: 2,
                }],
            },
            resources: Resources {
                cpu_temporality: Default::default(),
                programs: vec![ProgramResources {
                    name: "web".into(),
                    group: "g".into(),
                    cpu_user_seconds: 1.5,
                    cpu_system_seconds: 0.25,
                    cpu_start_time_unix_nano: 1_700_000_000 * SECOND,
                    memory_usage_bytes: 4096,
                    memory_virtual_bytes: 8192,
                    threads: 3,
                    open_fds: Some(5),
                    processes: 1,
                }],
            },
            ..Default::default()
        }),
    }
}

fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    key_value(key, any_value::Value::StringValue(value.into()))
}

fn int_point(value: i64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: 0,
        time_unix_nano: 7 * SECOND,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} help"),
        unit: unit.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn sum(
    name: &str,
    unit: &str,
    monotonic: bool,
    temporality: AggregationTemporality,
    points: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: unit.into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

fn resource(attributes: Vec<KeyValue>, metrics: Vec<Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: "s".into(),
                version: "1".into(),
                ..Default::default()
            }),
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The lines of `text` that begin with `prefix`.
fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn a_failed_poll_is_can_connect_zero_and_target_info() {
    let failed = PollOutcome {
        target: target("web-1"),
        time_unix_nano: 42,
        result: Err("refused".into()),
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        render_polls(&[failed]),
        format!(
            "# TYPE target info\n\
             # HELP target Target metadata\n\
             target_info{{deployment_environment=\"prod\",supervisor_server=\"web-1\"}} 1\n\
             # TYPE supervisord_can_connect_ratio gauge\n\
             # UNIT supervisord_can_connect_ratio ratio\n\
             # HELP supervisord_can_connect_ratio 1 when the last poll of supervisord \
             succeeded, 0 when it failed.\n\
             supervisord_can_connect_ratio{{deployment_environment=\"prod\",\
             otel_scope_name=\"supervisord-receiver\",otel_scope_version=\"{version}\",\
             supervisor_server=\"web-1\"}} 0\n\
             # EOF\n"
        )
    );
}

#[test]
fn a_poll_has_prometheus_names_units_and_types() {
    let text = render_polls(&[poll("web-1")]);
    let version = env!("CARGO_PKG_VERSION");
    let common = [
        ("deployment_environment", "prod"),
        ("otel_scope_name", "supervisord-receiver"),
        ("otel_scope_version", version),
        ("supervisor_server", "web-1"),
        ("supervisord_identification", "supervisor"),
        ("supervisord_version", "4.3.0"),
    ];
    let with = |more: &[(&'static str, &'static str)]| {
        let mut all: Vec<_> = common.iter().chain(more).collect();
        all.sort();
        all.iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let web = with(&[("supervisord_group", "g"), ("supervisord_process", "web")]);
    assert!(text.starts_with("# TYPE target info\n"), "{text}");
    assert_eq!(
        lines(&text, "target_info"),
        [
            "target_info{deployment_environment=\"prod\",supervisor_server=\"web-1\",\
          supervisord_identification=\"supervisor\",supervisord_version=\"4.3.0\"} 1"
        ]
    );
    for (family, kind, unit) in [
        ("supervisord_can_connect_ratio", "gauge", Some("ratio")),
        ("supervisord_process_count", "gauge", None),
        (
            "supervisord_process_uptime_seconds",
            "gauge",
            Some("seconds"),
        ),
        ("supervisord_process_status", "stateset", None),
        ("supervisord_process_state", "stateset", None),
        (
            "supervisord_process_exit_status_ratio",
            "gauge",
            Some("ratio"),
        ),
        (
            "supervisord_process_start_time_seconds",
            "gauge",
            Some("seconds"),
        ),
        ("supervisord_process_restarts", "counter", None),
        (
            "supervisord_process_cpu_time_seconds",
            "counter",
            Some("seconds"),
        ),
        (
            "supervisord_process_memory_usage_bytes",
            "gauge",
            Some("bytes"),
        ),
        (
            "supervisord_process_memory_virtual_bytes",
            "gauge",
            Some("bytes"),
        ),
        ("supervisord_process_thread_count", "gauge", None),
        (
            "supervisord_process_unix_file_descriptor_count",
            "gauge",
            None,
        ),
        ("supervisord_process_tree_count", "gauge", None),
        ("supervisord_state", "stateset", None),
    ] {
        assert_eq!(
            lines(&text, &format!("# TYPE {family} ")),
            [format!("# TYPE {family} {kind}")],
            "{text}"
        );
        let units = lines(&text, &format!("# UNIT {family} "));
        match unit {
            Some(unit) => assert_eq!(units, [format!("# UNIT {family} {unit}")]),
            None => assert!(units.is_empty(), "{family}: {units:?}"),
        }
        assert_eq!(lines(&text, &format!("# HELP {family} ")).len(), 1);
    }
    assert_eq!(lines(&text, "# TYPE").len(), 16, "{text}");

    assert_eq!(
        lines(&text, "supervisord_process_uptime_seconds{"),
        [format!("supervisord_process_uptime_seconds{{{web}}} 60")]
    );
    assert_eq!(
        lines(&text, "supervisord_process_count{"),
        [
            format!(
                "supervisord_process_count{{{}}} 0",
                with(&[("status", "down")])
            ),
            format!(
                "supervisord_process_count{{{}}} 1",
                with(&[("status", "up")])
            ),
            format!(
                "supervisord_process_count{{{}}} 0",
                with(&[("status", "unknown")])
            ),
        ]
    );
    // A counter: `_total`, and `_created` from the start time, every nanosecond kept.
    assert_eq!(
        lines(&text, "supervisord_process_restarts"),
        [
            format!("supervisord_process_restarts_total{{{web}}} 2"),
            format!("supervisord_process_restarts_created{{{web}}} 1700000001.000000005"),
        ]
    );
    assert_eq!(
        lines(&text, "supervisord_process_cpu_time_seconds_"),
        [
            format!("supervisord_process_cpu_time_seconds_total{{cpu_mode=\"user\",{web}}} 1.5"),
            format!(
                "supervisord_process_cpu_time_seconds_created{{cpu_mode=\"user\",{web}}} \
                 1700000000.000000000"
            ),
            format!("supervisord_process_cpu_time_seconds_total{{cpu_mode=\"system\",{web}}} 0.25"),
            format!(
                "supervisord_process_cpu_time_seconds_created{{cpu_mode=\"system\",{web}}} \
                 1700000000.000000000"
            ),
        ]
    );
    // StateSets: the state in a label named after the family, one sample per state, no
    // timestamps anywhere.
    let states: Vec<String> = crate::vocab::ProcessState::ALL
        .iter()
        .map(|state| {
            let one = u8::from(*state == ProcessState::Running);
            format!(
                "supervisord_process_state{{autostart=\"true\",{web},\
                 supervisord_process_state=\"{}\"}} {one}",
                state.name()
            )
        })
        .collect();
    assert_eq!(lines(&text, "supervisord_process_state{"), states);
    assert_eq!(
        lines(&text, "supervisord_state{"),
        ["RUNNING", "RESTARTING", "SHUTDOWN", "FATAL"]
            .iter()
            .map(|s| format!(
                "supervisord_state{{{},supervisord_state=\"{s}\"}} {}",
                with(&[]),
                u8::from(*s == "RUNNING")
            ))
            .collect::<Vec<_>>()
    );
    assert!(lines(&text, "supervisord_process_status{")
        .iter()
        .all(|l| l.contains("supervisord_process_status=\"") && !l.contains(",status=")));
    assert!(text.ends_with("\n# EOF\n"));
}

#[test]
fn families_are_written_whole_across_targets() {
    let text = render_polls(&[poll("a"), poll("b")]);
    assert_eq!(lines(&text, "# TYPE").len(), 16, "one TYPE per family");
    assert_eq!(lines(&text, "target_info{").len(), 2);
    // Every sample line belongs to the family of the last TYPE line before it.
    let mut family = String::new();
    let mut seen = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap_or_default().to_owned();
            assert!(!seen.contains(&family), "{family} twice");
            seen.push(family.clone());
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&family), "{line} outside {family}");
        }
    }
    // Target a's samples of a family come before target b's.
    let uptime = lines(&text, "supervisord_process_uptime_seconds{");
    assert_eq!(uptime.len(), 2);
    assert!(uptime[0].contains("supervisor_server=\"a\""));
    assert!(uptime[1].contains("supervisor_server=\"b\""));
}

#[test]
fn state_sets_are_the_schemas_one_hot_metrics() {
    assert_eq!(
        STATE_SETS,
        [
            (MetricId::ProcessState.name(), defs::PROCESS_STATE.key),
            (MetricId::ProcessStatus.name(), defs::STATUS.key),
            (MetricId::SupervisorState.name(), defs::SUPERVISOR_STATE.key),
        ]
    );
}

#[test]
fn a_state_set_keeps_each_metric_point_together() {
    let point = |process: &str, state: &str, value| {
        int_point(
            value,
            vec![
                string("supervisord_process", process),
                string("state", state),
            ],
        )
    };
    // Interleaved processes: the exposition groups each process's states.
    let text = render_resources(vec![resource(
        vec![],
        vec![gauge(
            "supervisord.process.state",
            "1",
            vec![
                point("a", "RUNNING", 1),
                point("b", "RUNNING", 0),
                point("a", "STOPPED", 0),
                point("b", "STOPPED", 1),
            ],
        )],
    )]);
    assert_eq!(
        lines(&text, "supervisord_process_state"),
        [
            "supervisord_process_state{otel_scope_name=\"s\",otel_scope_version=\"1\",\
             supervisord_process=\"a\",supervisord_process_state=\"RUNNING\"} 1",
            "supervisord_process_state{otel_scope_name=\"s\",otel_scope_version=\"1\",\
             supervisord_process=\"a\",supervisord_process_state=\"STOPPED\"} 0",
            "supervisord_process_state{otel_scope_name=\"s\",otel_scope_version=\"1\",\
             supervisord_process=\"b\",supervisord_process_state=\"RUNNING\"} 0",
            "supervisord_process_state{otel_scope_name=\"s\",otel_scope_version=\"1\",\
             supervisord_process=\"b\",supervisord_process_state=\"STOPPED\"} 1",
        ]
    );
    // A point that is neither 0 nor 1 is no StateSet: the metric stays the gauge it is.
    let text = render_resources(vec![resource(
        vec![],
        vec![gauge(
            "supervisord.state",
            "1",
            vec![int_point(2, vec![string("state", "RUNNING")])],
        )],
    )]);
    assert!(
        text.contains("# TYPE supervisord_state_ratio gauge\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "supervisord_state_ratio{otel_scope_name=\"s\",otel_scope_version=\"1\",\
             state=\"RUNNING\"} 2\n"
        ),
        "{text}"
    );
}

#[test]
fn names_get_unit_words_and_type_suffixes() {
    let cases = [
        ("a.b", "s", Kind::Gauge, "a_b_seconds", "seconds"),
        ("a.seconds", "s", Kind::Gauge, "a_seconds", "seconds"),
        ("a.seconds.b", "s", Kind::Gauge, "a_seconds_b", ""),
        ("a.b", "1", Kind::Gauge, "a_b_ratio", "ratio"),
        ("a.b", "1", Kind::Counter, "a_b", ""),
        ("a.b", "{process}", Kind::Gauge, "a_b", ""),
        ("a.total", "{request}", Kind::Counter, "a", ""),
        (
            "a.b",
            "ms",
            Kind::Counter,
            "a_b_milliseconds",
            "milliseconds",
        ),
        ("a.b", "By", Kind::Gauge, "a_b_bytes", "bytes"),
        (
            "a.b",
            "By/s",
            Kind::Gauge,
            "a_b_bytes_per_second",
            "bytes_per_second",
        ),
        (
            "a.b",
            "{packet}/s",
            Kind::Gauge,
            "a_b_per_second",
            "per_second",
        ),
        ("a.b", "%", Kind::Gauge, "a_b_percent", "percent"),
        ("a.b", "furlongs", Kind::Gauge, "a_b_furlongs", "furlongs"),
        ("a.b", "", Kind::Gauge, "a_b", ""),
        ("a.state", "1", Kind::StateSet, "a_state", ""),
        ("a..b-c/d", "", Kind::Gauge, "a_b_c_d", ""),
        ("9lives", "", Kind::Gauge, "_9lives", ""),
        ("a:b", "", Kind::Gauge, "a:b", ""),
    ];
    for (name, unit, kind, family, word) in cases {
        assert_eq!(
            family_name(name, unit, kind),
            (family.to_owned(), word.to_owned()),
            "{name} [{unit}] {kind:?}"
        );
    }
}

#[test]
fn labels_are_sanitized_merged_and_escaped() {
    let point = int_point(
        1,
        vec![
            string("cpu.mode", "user"),
            string("a_b", "second"),
            string("a.b", "first"),
            string("tag", "x"),
            string("tag", "y"),
            string("9th", "nine"),
            string("_hidden", "h"),
            string("empty", ""),
            string("quote", "say \"hi\"\\ \nbye"),
            key_value("flag", any_value::Value::BoolValue(true)),
            key_value("n", any_value::Value::IntValue(-3)),
        ],
    );
    let text = render_resources(vec![resource(
        vec![string("service.name", "svc"), string("tag", "resource")],
        vec![gauge("m", "", vec![point])],
    )]);
    assert_eq!(
        lines(&text, "m{"),
        [
            "m{a_b=\"first;second\",cpu_mode=\"user\",flag=\"true\",key_9th=\"nine\",\
          key_hidden=\"h\",n=\"-3\",otel_scope_name=\"s\",otel_scope_version=\"1\",\
          quote=\"say \\\"hi\\\"\\\\ \\nbye\",service_name=\"svc\",tag=\"x;y\"} 1"
        ],
        "a point attribute wins over the resource's of the same key:\n{text}"
    );
    assert_eq!(
        lines(&text, "target_info"),
        ["target_info{service_name=\"svc\",tag=\"resource\"} 1"]
    );
}

#[test]
fn help_text_is_escaped() {
    let mut metric = gauge("m", "", vec![int_point(1, vec![])]);
    metric.description = "a \"b\" \\ c\nd".into();
    let text = render_resources(vec![resource(vec![], vec![metric])]);
    assert!(text.contains("# HELP m a \\\"b\\\" \\\\ c\\nd\n"), "{text}");
}

#[test]
fn sums_follow_the_specification() {
    let start = |mut point: NumberDataPoint| {
        point.start_time_unix_nano = 3 * SECOND;
        point
    };
    let text = render_resources(vec![resource(
        vec![],
        vec![
            sum(
                "delta.count",
                "{x}",
                true,
                AggregationTemporality::Delta,
                vec![int_point(5, vec![])],
            ),
            sum(
                "queue.size",
                "{x}",
                false,
                AggregationTemporality::Cumulative,
                vec![int_point(-2, vec![])],
            ),
            sum(
                "work.time",
                "s",
                true,
                AggregationTemporality::Cumulative,
                vec![start(NumberDataPoint {
                    value: Some(number_data_point::Value::AsDouble(2.0)),
                    ..int_point(0, vec![])
                })],
            ),
        ],
    )]);
    assert!(!text.contains("delta"), "a delta sum is left out:\n{text}");
    assert!(text.contains("# TYPE queue_size gauge\n"), "{text}");
    assert!(
        text.contains("queue_size{otel_scope_name=\"s\",otel_scope_version=\"1\"} -2\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "# TYPE work_time_seconds counter\n# UNIT work_time_seconds seconds\n\
             work_time_seconds_total{otel_scope_name=\"s\",otel_scope_version=\"1\"} 2.0\n\
             work_time_seconds_created{otel_scope_name=\"s\",otel_scope_version=\"1\"} \
             3.000000000\n"
        ),
        "{text}"
    );
}

#[test]
fn a_second_type_for_one_name_is_dropped() {
    let text = render_resources(vec![
        resource(vec![], vec![gauge("x", "", vec![int_point(1, vec![])])]),
        resource(
            vec![],
            vec![sum(
                "x",
                "",
                true,
                AggregationTemporality::Cumulative,
                vec![int_point(2, vec![])],
            )],
        ),
    ]);
    assert_eq!(lines(&text, "# TYPE x "), ["# TYPE x gauge"]);
    assert_eq!(lines(&text, "x").len(), 1, "{text}");
}

#[test]
fn numbers_are_openmetrics_numbers() {
    use number_data_point::Value::{AsDouble, AsInt};
    assert_eq!(number(&AsInt(-7)), "-7");
    assert_eq!(number(&AsDouble(1.0)), "1.0");
    assert_eq!(number(&AsDouble(0.000_000_1)), "1e-7");
    assert_eq!(number(&AsDouble(f64::INFINITY)), "+Inf");
    assert_eq!(number(&AsDouble(f64::NEG_INFINITY)), "-Inf");
    assert_eq!(number(&AsDouble(f64::NAN)), "NaN");
    assert_eq!(seconds(1_700_000_000_123_456_789), "1700000000.123456789");
}

#[test]
fn nothing_recorded_is_an_empty_exposition() {
    assert_eq!(render_metrics(&LatestMetrics::default()), "# EOF\n");
}
