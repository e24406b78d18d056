//! "Down, but meant to run": a real supervisord's programs carry their configuration's
//! `autostart` on their state and status points, read with `getAllConfigInfo`; the documented
//! Prometheus alert, run by the real `promtool` over the points the OTLP server received, fires
//! for the programs meant to run that do not, and only for them; the Datadog format sends the
//! attribute only when the instance asks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use serde_yaml::Value as Yaml;
use supervisord_receiver::schema::MetricId;

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::PROCESS;
use crate::testkit::otlp_sink::{self, any_value_string, OtlpSink, Poll, ReceivedRequest};
use crate::testkit::promtool;
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::{yaml_str, WAIT};

const AUTOSTART: &str = "autostart";
const STATE: &str = "supervisord.process.state";
const STATUS: &str = "supervisord.process.status";

/// The programs and what their configuration means them to be:
///
/// | program | autostart | state |
/// |---|---|---|
/// | web | true | RUNNING |
/// | manual | false | STOPPED, never started: on purpose |
/// | broken | true | FATAL: `/bin/false` fails its only start |
/// | halted | true | STOPPED by hand (`supervisorctl stop`) |
/// | workers:worker_a | true | RUNNING, in a group |
fn programs() -> Vec<Program> {
    let base = Program::running("x");
    vec![
        Program::running("web"),
        Program {
            name: "manual".into(),
            autostart: false,
            ..base.clone()
        },
        // supervisord reaps children on its one-second tick: a long startsecs keeps a loaded
        // machine from counting the failed start as a start.
        Program {
            name: "broken".into(),
            command: "/bin/false".into(),
            startsecs: 10,
            startretries: 0,
            ..base.clone()
        },
        Program::running("halted"),
        Program::running("worker_a").in_group("workers"),
    ]
}

/// `(name, autostart, state)` once `halted` is stopped.
const SETTLED: [(&str, &str, &str); 5] = [
    ("web", "true", "RUNNING"),
    ("manual", "false", "STOPPED"),
    ("broken", "true", "FATAL"),
    ("halted", "true", "STOPPED"),
    ("worker_a", "true", "RUNNING"),
];

/// The programs meant to run that do not.
const DOWN_BUT_MEANT_TO_RUN: [&str; 2] = ["broken", "halted"];

fn settled_supervisord() -> Supervisord {
    let svd = Supervisord::start(Options::default().unix_only().programs(programs()));
    svd.wait_for_states(
        &[
            ("web", "RUNNING"),
            ("manual", "STOPPED"),
            ("broken", "FATAL"),
            ("halted", "RUNNING"),
            ("workers:worker_a", "RUNNING"),
        ],
        WAIT,
    );
    svd.ctl(&["stop", "halted"]);
    svd.wait_for_states(&[("halted", "STOPPED")], WAIT);
    svd
}

/// A native receiver polling `svd` every second as target `intent`.
fn native_receiver(svd: &Supervisord, sink: &OtlpSink) -> Running {
    let cfg = config::native(
        &[target("intent", &svd.unix_url())],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let cfg = format!("{cfg}telemetry:\n  metrics: false\nlogs:\n  state_changes: false\n");
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    Running::start(&path, &[])
}

/// Every state and status point of `name` carries `autostart` = `expected`, and no point of
/// another metric carries it.
fn assert_autostart(poll: &Poll, name: &str, expected: Option<&str>) {
    let mine: Vec<_> = poll
        .points
        .iter()
        .filter(|p| p.attr(PROCESS) == Some(name))
        .collect();
    assert!(
        !mine.is_empty(),
        "no points of {name}:\n{}",
        poll.describe()
    );
    for p in mine {
        let wanted = if p.metric == STATE || p.metric == STATUS {
            expected
        } else {
            None
        };
        assert_eq!(
            p.attr(AUTOSTART),
            wanted,
            "{name}: {} {:?}",
            p.metric,
            p.attrs
        );
    }
}

/// Every value of the `autostart` attribute in `requests` is an OTLP string, never a bool.
fn assert_autostart_is_a_string(requests: &[ReceivedRequest]) {
    let mut seen = 0;
    for r in requests {
        for m in r
            .request
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
        {
            let Some(metric::Data::Gauge(gauge)) = &m.data else {
                continue;
            };
            for kv in gauge
                .data_points
                .iter()
                .flat_map(|p| &p.attributes)
                .filter(|kv| kv.key == AUTOSTART)
            {
                let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
                assert!(
                    matches!(value, Some(any_value::Value::StringValue(s)) if s == "true" || s == "false"),
                    "{}: {kv:?}",
                    m.name
                );
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "no autostart attribute at all");
}

#[test]
fn native_points_say_what_each_program_is_meant_to_be() {
    let svd = settled_supervisord();
    let sink = OtlpSink::start();
    let receiver = native_receiver(&svd, &sink);

    let names: Vec<&str> = SETTLED.iter().map(|(name, _, _)| *name).collect();
    let poll = sink.wait_for_processes("intent", &names, WAIT);
    for (name, autostart, state) in SETTLED {
        assert_autostart(&poll, name, Some(autostart));
        assert_eq!(
            poll.expect(STATE, &[(PROCESS, name), ("state", state)]),
            1,
            "{name}"
        );
    }
    // Every point of the one-hot series has it, so each program keeps one series per state
    // and status: 8 + 3 per program.
    for (name, autostart, _) in SETTLED {
        let labelled = poll
            .points
            .iter()
            .filter(|p| p.attr(PROCESS) == Some(name) && p.attr(AUTOSTART) == Some(autostart))
            .count();
        assert_eq!(labelled, 11, "{name}");
    }
    // The configuration is read in the target's first poll: no poll lacks it.
    for p in otlp_sink::polls(&sink.requests(), "intent") {
        assert_autostart(&p, "manual", Some("false"));
    }
    assert_autostart_is_a_string(&sink.requests());

    // `supervisorctl update` adds a program: the set of processes changed, so the next poll
    // reads the configuration again and the newcomer gets its autostart at once.
    let mut conf = fs::read_to_string(svd.conf_path()).unwrap();
    conf.push_str(
        "\n[program:late]\ncommand=sleep 86400\nautostart=false\nstartsecs=1\n\
         stopasgroup=true\nkillasgroup=true\n",
    );
    fs::write(svd.conf_path(), conf).unwrap();
    let update = svd.ctl(&["update"]);
    assert!(update.contains("late"), "{update}");
    let mut with_late = names.clone();
    with_late.push("late");
    let poll = sink.wait_for_processes("intent", &with_late, WAIT);
    assert_autostart(&poll, "late", Some("false"));
    assert_autostart(&poll, "web", Some("true"));

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(
        !finished.stderr.contains("config_info_failed"),
        "{}",
        finished.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// The documented Prometheus alert, run by promtool on what was received

/// The alerting rules of the "Down, but meant to run" section of docs/operations.md, as
/// written there.
fn documented_rules() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md");
    let page = fs::read_to_string(&path).unwrap();
    let section = page
        .split("\n## Down, but meant to run\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{}: no 'Down, but meant to run' section", path.display()));
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.starts_with("groups:"))
        .unwrap_or_else(|| panic!("{}: no rule group in the section", path.display()))
        .to_string()
}

/// A Prometheus metric or label name as the Collector's prometheus exporter makes it: every
/// run of characters outside `[a-zA-Z0-9]` becomes one `_` (metric names), or each one does
/// (label names).
fn prometheus_label(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The exporter's name of a gauge (with `add_metric_suffixes`, its default): the name's
/// words joined by `_`, the unit's word appended, and `ratio` for unit `1`.
fn prometheus_gauge_name(name: &str, unit: &str) -> String {
    let mut words: Vec<&str> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let unit_word = match unit {
        "1" => Some("ratio"),
        "s" => Some("seconds"),
        "By" => Some("bytes"),
        // `{process}` and the like are annotations, left out.
        _ => None,
    };
    if let Some(word) = unit_word {
        words.retain(|w| *w != word);
        words.push(word);
    }
    words.join("_")
}

/// One Prometheus series: name and labels (resource attributes included, as with
/// `resource_to_telemetry_conversion`).
type Series = (String, BTreeMap<String, String>);

/// Every gauge series of target `server` in the received requests, with its value at each poll
/// (polls numbered in time order; `None` where the series had no point).
fn received_series(
    requests: &[ReceivedRequest],
    server: &str,
) -> BTreeMap<Series, Vec<Option<f64>>> {
    let mut samples: BTreeMap<Series, BTreeMap<u64, f64>> = BTreeMap::new();
    let mut times = BTreeSet::new();
    for rm in requests.iter().flat_map(|r| &r.request.resource_metrics) {
        let resource: BTreeMap<String, String> = rm
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .map(|kv| {
                (
                    prometheus_label(&kv.key),
                    any_value_string(kv.value.as_ref()),
                )
            })
            .collect();
        if resource.get("supervisor_server").map(String::as_str) != Some(server) {
            continue;
        }
        for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
            let Some(metric::Data::Gauge(gauge)) = &m.data else {
                continue;
            };
            let name = prometheus_gauge_name(&m.name, &m.unit);
            for p in &gauge.data_points {
                let mut labels = resource.clone();
                for kv in &p.attributes {
                    labels.insert(
                        prometheus_label(&kv.key),
                        any_value_string(kv.value.as_ref()),
                    );
                }
                let value = match p.value {
                    Some(number_data_point::Value::AsInt(v)) => v as f64,
                    Some(number_data_point::Value::AsDouble(v)) => v,
                    None => continue,
                };
                times.insert(p.time_unix_nano);
                samples
                    .entry((name.clone(), labels))
                    .or_default()
                    .insert(p.time_unix_nano, value);
            }
        }
    }
    samples
        .into_iter()
        .map(|(series, values)| {
            let row = times.iter().map(|t| values.get(t).copied()).collect();
            (series, row)
        })
        .collect()
}

/// `name{k="v",...}` in PromQL's series syntax.
fn series_text((name, labels): &Series) -> String {
    let mut out = format!("{name}{{");
    for (i, (k, v)) in labels.iter().enumerate() {
        let v = v.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(out, "{}{k}=\"{v}\"", if i > 0 { "," } else { "" });
    }
    out.push('}');
    out
}

/// `{{ $labels.NAME }}` replaced by the label's value, as Prometheus renders the simple
/// templates of the documented annotations.
fn render(template: &str, labels: &BTreeMap<String, String>) -> String {
    let pattern = regex::Regex::new(r"\{\{\s*\$labels\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").unwrap();
    pattern
        .replace_all(template, |c: &regex::Captures<'_>| {
            labels.get(&c[1]).cloned().unwrap_or_default()
        })
        .into_owned()
}

fn string_map(value: Option<&Yaml>) -> BTreeMap<String, String> {
    value
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect()
}

/// A duration of the rule file (`5m`, `30s`) in whole minutes, rounded up.
fn minutes(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.len() - 1);
    let n: u64 = number.parse().unwrap_or_else(|_| panic!("duration {text}"));
    match unit {
        "m" => n,
        "s" => n.div_ceil(60),
        "h" => n * 60,
        _ => panic!("duration {text}"),
    }
}

#[test]
fn the_documented_alert_fires_for_the_programs_meant_to_run_and_only_them() {
    let rules = documented_rules();
    let parsed: Yaml = serde_yaml::from_str(&rules).unwrap();
    let rule = &parsed["groups"][0]["rules"][0];
    let alertname = rule["alert"].as_str().unwrap().to_string();
    let expr = rule["expr"].as_str().unwrap();
    let for_minutes = minutes(rule["for"].as_str().unwrap());
    assert!(
        for_minutes >= 3,
        "the test evaluates before and after `for`"
    );
    // The metric the expression reads is the exporter's name of the state metric.
    let state_series = prometheus_gauge_name(STATE, MetricId::ProcessState.def().unit);
    assert!(
        expr.starts_with(&state_series),
        "{expr} reads {state_series}"
    );

    let svd = settled_supervisord();
    let sink = OtlpSink::start();
    let receiver = native_receiver(&svd, &sink);
    // One poll a second; each becomes a minute of the rule test (the polls' order and values
    // as received, the clock stretched to the rule's scale), enough of them to pass `for`.
    let polls = for_minutes as usize + 3;
    let requests = sink.wait_for(
        |r| otlp_sink::polls(r, "intent").len() >= polls,
        WAIT + Duration::from_secs(polls as u64 * 2),
    );
    drop(receiver);

    let series = received_series(&requests, "intent");
    let samples = series.values().map(Vec::len).max().unwrap_or(0);
    assert!(samples >= polls, "{samples} polls");
    let mut input_series = Vec::new();
    for (key, values) in &series {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.map_or_else(|| "_".to_string(), |v| v.to_string()))
            .collect();
        input_series.push(serde_json::json!({
            "series": series_text(key),
            "values": values.join(" "),
        }));
    }
    // What should fire: the RUNNING series of each program meant to run that does not, with
    // its labels as received, the rule's labels and its rendered annotations.
    let exp_alerts: Vec<serde_json::Value> = DOWN_BUT_MEANT_TO_RUN
        .iter()
        .map(|name| {
            let ((_, labels), _) = series
                .iter()
                .find(|((metric, labels), _)| {
                    *metric == state_series
                        && labels.get(PROCESS).map(String::as_str) == Some(*name)
                        && labels.get("state").map(String::as_str) == Some("RUNNING")
                })
                .unwrap_or_else(|| panic!("no RUNNING series of {name}"));
            let mut exp_labels = labels.clone();
            exp_labels.extend(string_map(rule.get("labels")));
            let annotations: BTreeMap<String, String> = string_map(rule.get("annotations"))
                .into_iter()
                .map(|(k, template)| (k, render(&template, &exp_labels)))
                .collect();
            serde_json::json!({ "exp_labels": exp_labels, "exp_annotations": annotations })
        })
        .collect();
    let last = samples - 1;
    let test = serde_json::json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": input_series,
            "alert_rule_test": [
                // Down for less than `for`: pending, not firing.
                { "eval_time": "1m", "alertname": alertname, "exp_alerts": [] },
                { "eval_time": format!("{last}m"), "alertname": alertname, "exp_alerts": exp_alerts },
            ],
        }],
    });
    let dir = svd.dir();
    fs::write(dir.join("rules.yml"), &rules).unwrap();
    let test_file = dir.join("intent_test.yml");
    fs::write(&test_file, serde_yaml::to_string(&test).unwrap()).unwrap();

    let (passed, output) = promtool::test_rules(dir, &test_file);
    assert!(
        passed,
        "promtool test rules failed:\n{output}\nrules:\n{rules}\ntest:\n{}",
        fs::read_to_string(&test_file).unwrap_or_default()
    );
    // The alert is not vacuous: the manual program's series is there, at 0, and stays quiet.
    assert!(series.keys().any(|(metric, labels)| *metric == state_series
        && labels.get(PROCESS).map(String::as_str) == Some("manual")
        && labels.get(AUTOSTART).map(String::as_str) == Some("false")
        && labels.get("state").map(String::as_str) == Some("RUNNING")));
}

// ---------------------------------------------------------------------------------------------
// Datadog format

#[test]
fn datadog_format_tags_autostart_only_when_the_instance_asks() {
    let svd = settled_supervisord();
    let sink = OtlpSink::start();
    let socket = yaml_str(&svd.unix_url());
    let cfg = format!(
        "init_config:\n\
         instances:\n  \
           - name: dd-plain\n    \
             socket: {socket}\n    \
             min_collection_interval: 1\n  \
           - name: dd-intent\n    \
             socket: {socket}\n    \
             autostart_tag: true\n    \
             min_collection_interval: 1\n",
    );
    let path = config::write(svd.dir(), "conf.yaml", &cfg);
    let grpc = sink.grpc_endpoint();
    let receiver = Running::start(
        &path,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
    );
    let names: Vec<&str> = SETTLED.iter().map(|(name, _, _)| *name).collect();
    let intent = sink.wait_for_processes("dd-intent", &names, WAIT);
    for (name, autostart, _) in SETTLED {
        assert_autostart(&intent, name, Some(autostart));
    }
    let plain = sink.wait_for_processes("dd-plain", &names, WAIT);
    assert!(plain.points.iter().all(|p| p.attr(AUTOSTART).is_none()));
    // Not one point of the instance without the key, in any poll.
    let requests = sink.requests();
    for p in otlp_sink::polls(&requests, "dd-plain") {
        assert!(
            p.points.iter().all(|p| p.attr(AUTOSTART).is_none()),
            "{}",
            p.describe()
        );
    }
    assert_autostart_is_a_string(&requests);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}
