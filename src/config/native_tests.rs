//! The native format's loader: every section, its defaults and its errors.

use super::*;
use crate::config::{load_bytes, ConfigError};

fn load(text: &str) -> Result<Settings, Vec<String>> {
    load_bytes(std::path::Path::new("n.yaml"), text.as_bytes(), &|_| None).map_err(|e| match e {
        ConfigError::Invalid { problems, .. } => problems
            .into_iter()
            .map(|p| format!("{}: {}", p.key_path, p.message))
            .collect(),
        other => vec![other.to_string()],
    })
}

#[test]
fn defaults_fill_a_minimal_file() {
    let s = load("targets: [{name: a, endpoint: 'unix:///s.sock'}]").unwrap();
    assert_eq!(s.format, ConfigFormat::Native);
    assert_eq!(s.initial_delay, DEFAULT_INITIAL_DELAY);
    let t = &s.targets[0];
    assert_eq!(t.collection_interval, DEFAULT_INTERVAL);
    assert_eq!(t.timeout, DEFAULT_TIMEOUT);
    assert_eq!(t.status_mapping, StatusMapping::default());
    assert!(t.resource_attributes.is_empty());
}

#[test]
fn per_target_overrides_and_zero_initial_delay() {
    let s = load(
        "initial_delay: 0s\ncollection_interval: 1m\ntargets:\n  - name: a\n    \
         endpoint: http://h\n    collection_interval: 2s\n    timeout: 500ms\n",
    )
    .unwrap();
    assert_eq!(s.initial_delay, Duration::ZERO);
    assert_eq!(s.targets[0].collection_interval, Duration::from_secs(2));
    assert_eq!(s.targets[0].timeout, Duration::from_millis(500));
}

#[test]
fn keep_alive_is_on_unless_turned_off_globally_or_per_target() {
    let s = load("targets: [{name: a, endpoint: 'http://h'}]").unwrap();
    assert!(s.targets[0].keep_alive);
    let s = load(
        "keep_alive: false\ntargets:\n  - {name: a, endpoint: 'http://h'}\n  \
         - {name: b, endpoint: 'http://h', keep_alive: true}\n",
    )
    .unwrap();
    assert_eq!(
        s.targets.iter().map(|t| t.keep_alive).collect::<Vec<_>>(),
        [false, true]
    );
    let errs = load("targets: [{name: a, endpoint: 'http://h', keep_alive: 'yes'}]").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("targets[0].keep_alive: "), "{errs:?}");
}

#[test]
fn credentials_need_both_halves() {
    let errs = load("targets: [{name: a, endpoint: 'http://h', password: x}]").unwrap_err();
    assert_eq!(errs, ["targets[0].password: set username too, or neither"]);
    let errs =
        load("targets: [{name: a, endpoint: 'http://h', username: u, password: ''}]").unwrap_err();
    assert_eq!(errs, ["targets[0].password: must not be empty"]);
}

#[test]
fn reserved_attribute_names() {
    assert!(attribute_key_problem("supervisord_process").is_some());
    assert!(attribute_key_problem(" ").is_some());
    assert!(attribute_key_problem("env").is_none());
}

#[test]
fn metrics_switch_off() {
    let s = load(
        "targets: [{name: a, endpoint: 'http://h'}]\nmetrics:\n  \
         supervisord.process.uptime: {enabled: false}\n",
    )
    .unwrap();
    assert!(!s.metrics.is_enabled(crate::schema::MetricId::ProcessUptime));
    assert!(s.metrics.is_enabled(crate::schema::MetricId::ProcessCount));
}

const ONE_TARGET: &str = "targets: [{name: a, endpoint: 'http://h'}]\n";

#[test]
fn self_telemetry_follows_the_collection_interval_unless_told() {
    let s = load(&format!("collection_interval: 7s\n{ONE_TARGET}")).unwrap();
    assert_eq!(
        s.telemetry,
        TelemetrySettings {
            metrics: true,
            interval: None,
            default_interval: Duration::from_secs(7),
            exporter: None,
        }
    );
    assert!(s.health.is_none(), "no health endpoint unless asked for");
    let s = load(&format!(
        "{ONE_TARGET}telemetry: {{metrics: false, interval: 2s}}\n"
    ))
    .unwrap();
    assert!(!s.telemetry.metrics);
    assert_eq!(s.telemetry.interval, Some(Duration::from_secs(2)));
    let errs = load(&format!(
        "{ONE_TARGET}telemetry: {{interval: 0s, metric: true}}\n"
    ))
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs
        .iter()
        .any(|e| e == "telemetry.interval: must be greater than 0s"));
    assert!(errs.iter().any(|e| e.starts_with("telemetry.metric: ")));
}

#[test]
fn self_telemetry_exporter_names_an_otlp_exporter_of_the_file() {
    let exporters = "exporters:\n  otlp: {endpoint: 'http://a:4317', protocol: grpc}\n  \
                     otlp/local: {endpoint: 'http://b:4318'}\n  debug: {}\n";
    let s = load(&format!(
        "{ONE_TARGET}{exporters}telemetry: {{exporter: otlp/local}}\n"
    ))
    .unwrap();
    assert_eq!(s.telemetry.exporter.as_deref(), Some("otlp/local"));
    let errs = load(&format!(
        "{ONE_TARGET}{exporters}telemetry: {{exporter: debug}}\n"
    ))
    .unwrap_err();
    assert_eq!(
        errs,
        [
            "telemetry.exporter: 'debug' is not an otlp exporter of 'exporters'; expected one \
          of 'otlp', 'otlp/local'"
        ]
    );
    let errs = load(&format!(
        "{ONE_TARGET}exporters: {{debug: {{}}}}\ntelemetry: {{exporter: otlp}}\n"
    ))
    .unwrap_err();
    assert_eq!(
        errs,
        ["telemetry.exporter: names 'otlp', but 'exporters' has no otlp exporter to name"]
    );
}

#[test]
fn health_defaults_and_loopback_rule() {
    let s = load(&format!("{ONE_TARGET}health: {{}}\n")).unwrap();
    assert_eq!(
        s.health,
        Some(HealthSettings {
            endpoint: "127.0.0.1:13133".parse().unwrap(),
            unhealthy_after: Duration::from_secs(300),
        })
    );
    let at = |endpoint: &str| {
        load(&format!("{ONE_TARGET}health: {{endpoint: '{endpoint}'}}\n"))
            .map(|s| s.health.map(|h| h.endpoint.to_string()))
    };
    assert_eq!(at("localhost:0"), Ok(Some("127.0.0.1:0".into())));
    assert_eq!(at("[::1]:9"), Ok(Some("[::1]:9".into())));
    assert_eq!(
        at("10.0.0.1:13133"),
        Err(vec![
            "health.endpoint: '10.0.0.1:13133' is not a loopback address; the health status \
             names every target, so set allow_non_loopback: true to serve it beyond this host"
                .to_string()
        ])
    );
    assert_eq!(
        at("13133"),
        Err(vec![
            "health.endpoint: invalid endpoint '13133': expected host:port, e.g. \
             127.0.0.1:13133"
                .to_string()
        ])
    );
    assert_eq!(
        at("localhost:http"),
        Err(vec![
            "health.endpoint: invalid endpoint 'localhost:http': invalid port 'http'".to_string()
        ])
    );
    let open = load(&format!(
        "{ONE_TARGET}health: {{endpoint: '0.0.0.0:1', allow_non_loopback: true, \
         unhealthy_after: 2s}}\n"
    ))
    .unwrap();
    let health = open.health.unwrap();
    assert_eq!(health.endpoint.to_string(), "0.0.0.0:1");
    assert_eq!(health.unhealthy_after, Duration::from_secs(2));
}

#[test]
fn reconcile_interval_defaults_to_five_minutes_and_is_inherited_or_overridden() {
    let s = load("targets: [{name: a, endpoint: 'unix:///s.sock'}]").unwrap();
    assert_eq!(
        s.targets[0].reconcile_interval,
        crate::settings::DEFAULT_RECONCILE_INTERVAL
    );
    assert_eq!(
        crate::settings::DEFAULT_RECONCILE_INTERVAL,
        Duration::from_secs(300)
    );
    let s = load(
        "reconcile_interval: 1h\ntargets:\n  - {name: a, endpoint: 'http://h'}\n  \
         - {name: b, endpoint: 'http://h', reconcile_interval: 30s}\n",
    )
    .unwrap();
    assert_eq!(s.targets[0].reconcile_interval, Duration::from_secs(3600));
    assert_eq!(s.targets[1].reconcile_interval, Duration::from_secs(30));
}

#[test]
fn a_bad_reconcile_interval_names_its_key() {
    let errs =
        load("reconcile_interval: 0s\ntargets: [{name: a, endpoint: 'http://h'}]").unwrap_err();
    assert_eq!(errs, ["reconcile_interval: must be greater than 0s"]);
    let errs =
        load("targets: [{name: a, endpoint: 'http://h', reconcile_interval: 300}]").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("targets[0].reconcile_interval: "),
        "{errs:?}"
    );
}
