//! Configuration loading through the public API: both example files, every error text of the
//! Datadog check, unknown keys, `${env:...}`, the OTEL_* variables, positions and secrets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use supervisord_receiver::config::{load_bytes, load_with_env, ConfigError, Problem};
use supervisord_receiver::schema::MetricId;
use supervisord_receiver::settings::{
    ConfigFormat, Endpoint, ExporterSettings, OtlpProtocol, OtlpSettings, Settings,
};
use supervisord_receiver::vocab::Status;
use supervisord_receiver::vocab::{ProcessInfo, ProcessState};

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    load_bytes(Path::new("c.yaml"), text.as_bytes(), &env_of(vars))
}

fn ok(text: &str) -> Settings {
    load_text(text, &[]).unwrap_or_else(|e| panic!("expected to load:\n{e}"))
}

fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
    match load_text(text, vars) {
        Ok(_) => panic!("expected problems for:\n{text}"),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// `key_path: message` of every problem.
fn messages(text: &str) -> Vec<String> {
    problems(text, &[])
        .into_iter()
        .map(|p| format!("{}: {}", p.key_path, p.message))
        .collect()
}

fn display(text: &str, vars: &[(&str, &str)]) -> String {
    match load_text(text, vars) {
        Ok(_) => panic!("expected problems for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn otlp(s: &Settings) -> &OtlpSettings {
    match s.exporters.first() {
        Some(ExporterSettings::Otlp(o)) => o,
        other => panic!("expected an OTLP exporter, got {other:?}"),
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The example with every optional setting turned on: "# " removed where it starts a line's
/// text (explanations start with "##" and stay comments).
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            let rest = &line[indent..];
            match rest.strip_prefix("# ") {
                Some(setting) if !rest.starts_with("##") => format!("{}{setting}", &line[..indent]),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tcp(host: &str, port: u16) -> Endpoint {
    Endpoint::Tcp {
        tls: false,
        host: host.into(),
        port,
    }
}

// ---------------------------------------------------------------- examples

#[test]
fn native_example_loads_with_its_defaults() {
    let s = load_with_env(&example("native.yaml"), &env_of(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.format, ConfigFormat::Native);
    assert_eq!(s.initial_delay, Duration::from_secs(1));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let names: Vec<_> = s.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["web-1", "local"]);
    let web = &s.targets[0];
    assert_eq!(web.endpoint, tcp("127.0.0.1", 9001));
    assert_eq!(web.collection_interval, Duration::from_secs(15));
    assert_eq!(web.timeout, Duration::from_secs(10));
    assert!(web.credentials.is_none());
    assert_eq!(
        s.targets[1].endpoint,
        Endpoint::Unix {
            path: "/var/run/supervisor.sock".into()
        }
    );
    let o = otlp(&s);
    assert_eq!(s.exporters.len(), 1);
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
    assert_eq!(o.endpoint, "http://localhost:4317");
    assert!(o.gzip);
    assert_eq!(o.timeout, Duration::from_secs(10));
}

#[test]
fn native_example_loads_with_every_option_on() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not checked at load").unwrap_or_else(|e| panic!("{e}"));
    let ca = ca.to_string_lossy().to_string();
    let text = std::fs::read_to_string(example("native.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let text = uncommented(&text)
        .replace("/etc/supervisor/ca.pem", &ca)
        .replace("/etc/ssl/private-ca.pem", &ca)
        .replace("/etc/supervisor/client.pem", &ca)
        .replace("/etc/supervisor/client-key.pem", &ca)
        .replace("/etc/ssl/otlp-client.pem", &ca)
        .replace("/etc/ssl/otlp-client-key.pem", &ca);
    let vars = [("SUPERVISOR_PASSWORD", "pw"), ("OTLP_API_KEY", "key")];
    let s = load_text(&text, &vars).unwrap_or_else(|e| panic!("{e}\n{text}"));

    assert_eq!(s.initial_delay, Duration::from_secs(1));
    let names: Vec<_> = s.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["web-1", "local", "secure"]);
    let web = &s.targets[0];
    let creds = web
        .credentials
        .as_ref()
        .unwrap_or_else(|| panic!("credentials"));
    assert_eq!(creds.username, "monitor");
    assert_eq!(creds.password.expose(), "pw");
    assert_eq!(web.collection_interval, Duration::from_secs(30));
    assert_eq!(web.timeout, Duration::from_secs(5));
    assert_eq!(web.filter.names, ["nginx"]);
    assert_eq!(web.filter.regex[0].as_str(), "^web-");
    assert_eq!(web.filter.groups, ["workers"]);
    assert_eq!(web.filter.names_exclude, ["cron"]);
    assert_eq!(web.filter.regex_exclude[0].as_str(), "tmp$");
    assert_eq!(web.filter.groups_exclude, ["batch"]);
    assert_eq!(web.status_mapping.status(ProcessState::Stopped), Status::Up);
    assert_eq!(
        web.status_mapping.status(ProcessState::Exited),
        Status::Unknown
    );
    assert_eq!(
        web.resource_attributes,
        [
            ("env".to_string(), "prod".to_string()),
            ("team".into(), "core".into())
        ]
    );
    let secure = &s.targets[2];
    assert_eq!(
        secure.endpoint,
        Endpoint::Tcp {
            tls: true,
            host: "supervisor.example.com".into(),
            port: 9001
        }
    );
    assert_eq!(secure.tls.ca_file.as_deref(), Some(Path::new(&ca)));
    assert!(!s.metrics.is_enabled(MetricId::ProcessStartTime));
    assert!(s.metrics.is_enabled(MetricId::ProcessUptime));

    assert_eq!(s.exporters.len(), 3);
    let o = otlp(&s);
    assert_eq!(o.headers[0].0, "x-api-key");
    assert_eq!(o.headers[0].1.expose(), "key");
    match &s.exporters[1] {
        ExporterSettings::Otlp(b) => {
            assert_eq!(b.protocol, OtlpProtocol::HttpProtobuf);
            assert_eq!(b.endpoint, "https://otlp.example.com/custom/v1/metrics");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.exporters[2], ExporterSettings::Debug { .. }));
}

#[test]
fn datadog_example_loads() {
    let s = load_with_env(&example("datadog.yaml"), &env_of(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.format, ConfigFormat::Datadog);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let t = &s.targets[0];
    assert_eq!(t.name, "server0");
    assert_eq!(t.endpoint, tcp("localhost", 9001));
    assert_eq!(t.collection_interval, Duration::from_secs(15));
    assert_eq!(t.timeout, Duration::from_secs(10));
    assert_eq!(
        s.targets[1].endpoint,
        Endpoint::Unix {
            path: "/var/run/supervisor.sock".into()
        }
    );
    // No exporter in a Datadog file: the OTel SDK defaults.
    let o = otlp(&s);
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.endpoint, "http://localhost:4318/v1/metrics");
    assert!(!o.gzip);
}

#[test]
fn datadog_example_loads_with_every_option_on() {
    let text = std::fs::read_to_string(example("datadog.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let text = uncommented(&text);
    let s = load_text(&text, &[("SUPERVISOR_PASSWORD", "pw")])
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let t = &s.targets[0];
    // socket wins over host/port; user/pass win over username/password.
    assert_eq!(
        t.endpoint,
        Endpoint::Unix {
            path: "/var/run/supervisor.sock".into()
        }
    );
    let creds = t
        .credentials
        .as_ref()
        .unwrap_or_else(|| panic!("credentials"));
    assert_eq!(creds.username, "monitor");
    assert_eq!(creds.password.expose(), "pw");
    assert_eq!(t.filter.names, ["nginx", "mysql"]);
    assert_eq!(t.filter.regex[0].as_str(), "^web-");
    assert_eq!(t.filter.names_exclude, ["cron"]);
    assert_eq!(t.filter.regex_exclude[0].as_str(), "tmp$");
    assert_eq!(t.status_mapping.status(ProcessState::Stopped), Status::Up);
    assert_eq!(
        t.resource_attributes,
        [
            ("env".to_string(), "prod".to_string()),
            ("team".into(), "core".into()),
            ("service.name".into(), "payments".into())
        ]
    );
    assert!(!s.metrics.is_enabled(MetricId::ProcessStartTime));
    assert!(s.metrics.is_enabled(MetricId::CanConnect));
    assert_eq!(
        s.warnings[..2],
        [
            "DEPRECATION NOTICE: The `user` config option has been renamed to `username` and will be removed in a future release.",
            "DEPRECATION NOTICE: The `pass` config option has been renamed to `password` and will be removed in a future release.",
        ]
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("server_check")),
        "{:?}",
        s.warnings
    );
}

// ---------------------------------------------------------------- Datadog behaviour

const DD: &str = "init_config:\ninstances:\n";

fn dd(instance: &str) -> String {
    let mut out = String::from(DD);
    for (i, line) in instance.lines().enumerate() {
        out.push_str(if i == 0 { "  - " } else { "    " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn datadog_name_missing_or_blank_has_the_checks_text() {
    for instance in ["host: localhost", "name: ''", "name: '   '", "name:"] {
        assert_eq!(
            messages(&dd(instance)),
            ["instances[0].name: Supervisor server name not specified in yaml configuration."],
            "{instance}"
        );
    }
}

#[test]
fn datadog_filter_options_must_be_lists() {
    for key in [
        "proc_regex",
        "proc_regex_exclude",
        "proc_names",
        "proc_names_exclude",
    ] {
        let text = dd(&format!("name: server0\n{key}: not-a-list"));
        assert_eq!(
            messages(&text),
            [format!(
                "instances[0].{key}: '{key}' should be a list of strings. e.g. ['not-a-list']"
            )]
        );
    }
    assert_eq!(
        messages(&dd("name: s\nproc_names: 5")),
        ["instances[0].proc_names: 'proc_names' should be a list of strings. e.g. [5]"]
    );
    assert_eq!(
        messages(&dd("name: s\nproc_names: {a: b}")),
        ["instances[0].proc_names: 'proc_names' should be a list of strings. e.g. [{'a': 'b'}]"]
    );
}

#[test]
fn datadog_status_mapping_override_errors() {
    assert_eq!(
        messages(&dd("name: s\nstatus_mapping_override:\n  STOPPED: invalid_status")),
        ["instances[0].status_mapping_override.STOPPED: 'status_mapping_override' should be a status mapping e.g. STOPPED => invalid_status"]
    );
    assert_eq!(
        messages(&dd("name: s\nstatus_mapping_override: [STOPPED]")),
        ["instances[0].status_mapping_override: 'status_mapping_override' should be a dictionary"]
    );
    // Case-sensitive values, as the check.
    assert_eq!(
        messages(&dd("name: s\nstatus_mapping_override: {STOPPED: UP}")),
        ["instances[0].status_mapping_override.STOPPED: 'status_mapping_override' should be a status mapping e.g. STOPPED => UP"]
    );
    // An unknown state key is accepted with a warning; the valid override applies.
    let s = ok(&dd(
        "name: s\nstatus_mapping_override: {stopped: up, STOPPED: unknown}",
    ));
    assert_eq!(
        s.targets[0].status_mapping.status(ProcessState::Stopped),
        Status::Unknown
    );
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("'stopped' is not a supervisord state"));
}

#[test]
fn datadog_socket_must_be_unix_or_http() {
    assert_eq!(
        messages(&dd("name: s\nsocket: tcp://127.0.0.1:9001")),
        ["instances[0].socket: Unknown protocol for serverurl tcp://127.0.0.1:9001"]
    );
    let s = ok(&dd(
        "name: s\nsocket: unix:///correct/path/supervisor.sock\nhost: http://127.0.0.1",
    ));
    assert_eq!(
        s.targets[0].endpoint,
        Endpoint::Unix {
            path: "/correct/path/supervisor.sock".into()
        }
    );
    let s = ok(&dd("name: s\nsocket: http://10.0.0.5:9002/RPC2"));
    assert_eq!(s.targets[0].endpoint, tcp("10.0.0.5", 9002));
    let s = ok(&dd("name: s\nsocket: http://10.0.0.5"));
    assert_eq!(s.targets[0].endpoint, tcp("10.0.0.5", 80));
}

#[test]
fn datadog_test_cases_resolve_like_the_check() {
    // TEST_CASES of the check's unit tests, and its e2e config (port as a string).
    let cases: [(&str, Endpoint); 5] = [
        (
            "{host: localhost, name: server1, port: 9001}",
            tcp("localhost", 9001),
        ),
        (
            "{host: 10.60.130.82, name: server1}",
            tcp("10.60.130.82", 9001),
        ),
        (
            "{name: server0, host: invalid_host, port: 9009}",
            tcp("invalid_host", 9009),
        ),
        (
            "{name: travis, host: localhost, port: '19001'}",
            tcp("localhost", 19001),
        ),
        (
            "{name: server0, socket: 'unix:///invalid_socket'}",
            Endpoint::Unix {
                path: "/invalid_socket".into(),
            },
        ),
    ];
    for (instance, endpoint) in cases {
        let s = ok(&format!("{DD}  - {instance}\n"));
        assert_eq!(s.targets[0].endpoint, endpoint, "{instance}");
        assert!(s.targets[0].credentials.is_none());
    }
}

#[test]
fn datadog_credentials_follow_the_checks_precedence() {
    let creds = |instance: &str| {
        let s = ok(&dd(instance));
        s.targets[0]
            .credentials
            .as_ref()
            .map(|c| (c.username.clone(), c.password.expose().to_string()))
    };
    // Inet: both must be non-empty.
    assert_eq!(creds("name: s\nuser: someone"), None);
    assert_eq!(creds("name: s\nusername: u\npassword: ''"), None);
    assert_eq!(
        creds("name: s\nusername: realuser\npassword: realpass"),
        Some(("realuser".into(), "realpass".into()))
    );
    // user/pass win over username/password.
    assert_eq!(
        creds("name: s\nuser: a\nusername: b\npass: c\npassword: d"),
        Some(("a".into(), "c".into()))
    );
    // An empty user falls back to username, as Python's `or`.
    assert_eq!(
        creds("name: s\nuser: ''\nusername: b\npassword: d"),
        Some(("b".into(), "d".into()))
    );
    // Socket: both present is enough, even empty.
    assert_eq!(
        creds("name: s\nsocket: unix:///s.sock\nusername: u\npassword: ''"),
        Some(("u".into(), String::new()))
    );
    assert_eq!(creds("name: s\nsocket: unix:///s.sock\nusername: u"), None);
}

#[test]
fn datadog_deprecation_notices_are_exact() {
    let s = ok(&dd("name: server0\nuser: user\npass: pass"));
    assert_eq!(
        s.warnings,
        [
            "DEPRECATION NOTICE: The `user` config option has been renamed to `username` and will be removed in a future release.",
            "DEPRECATION NOTICE: The `pass` config option has been renamed to `password` and will be removed in a future release.",
        ]
    );
    let s = ok(&dd("name: server0\nusername: u\npassword: p"));
    assert!(s.warnings.is_empty());
}

#[test]
fn datadog_tags_service_and_interval() {
    let s = ok(&dd(
        "name: s\ntags: ['env:prod', 'url:http://x', solo]\nservice: pay\nmin_collection_interval: 5",
    ));
    let t = &s.targets[0];
    assert_eq!(
        t.resource_attributes,
        [
            ("env".to_string(), "prod".to_string()),
            ("url".into(), "http://x".into()),
            ("solo".into(), String::new()),
            ("service.name".into(), "pay".into()),
        ]
    );
    // Datadog's OTLP ingest tags a metric with its point attributes only, so the tags and the
    // service go on every point as well, `service` under the key that becomes `service:pay`.
    assert_eq!(
        t.point_attributes,
        [
            ("supervisord_server".to_string(), "s".to_string()),
            ("env".into(), "prod".into()),
            ("url".into(), "http://x".into()),
            ("solo".into(), String::new()),
            ("service".into(), "pay".into()),
        ]
    );
    assert_eq!(t.collection_interval, Duration::from_secs(5));
    assert_eq!(t.timeout, Duration::from_secs(5));
    let s = ok(&dd("name: s\nmin_collection_interval: 60"));
    assert_eq!(s.targets[0].timeout, Duration::from_secs(10));
    assert_eq!(
        messages(&dd("name: s\nmin_collection_interval: 0")),
        ["instances[0].min_collection_interval: invalid interval 0: expected a number of seconds greater than 0"]
    );
    assert_eq!(
        messages(&dd("name: s\ntags: ['supervisord_server:x']")),
        ["instances[0].tags[0]: 'supervisord_server' is set by the receiver itself; reserved names: supervisor_server, supervisord.identification, supervisord.version, supervisord_server, supervisord_process, supervisord_group, status, state"]
    );
}

#[test]
fn datadog_service_comes_from_init_config_unless_the_instance_has_one() {
    let s = ok("init_config: {service: payments}\ninstances:\n  - name: a\n  - name: b\n    service: own\n    tags: [env:prod]\n");
    let (a, b) = (&s.targets[0], &s.targets[1]);
    assert_eq!(
        a.resource_attributes,
        [("service.name".to_string(), "payments".to_string())]
    );
    assert_eq!(
        a.point_attributes,
        [
            ("supervisord_server".to_string(), "a".to_string()),
            ("service".into(), "payments".into())
        ]
    );
    assert_eq!(
        b.resource_attributes,
        [
            ("env".to_string(), "prod".to_string()),
            ("service.name".into(), "own".into())
        ]
    );
    assert_eq!(
        b.point_attributes,
        [
            ("supervisord_server".to_string(), "b".to_string()),
            ("env".into(), "prod".into()),
            ("service".into(), "own".into())
        ]
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn datadog_tag_key_given_twice_keeps_every_value_on_points() {
    let s =
        ok("instances:\n  - name: a\n    tags: ['role:web', 'role:db', 'role:web', env:prod]\n");
    let t = &s.targets[0];
    // The check tags with all of them; the points carry each, in order (Datadog's mapping
    // makes a tag of every attribute it reads); the resource keeps each key once.
    assert_eq!(
        t.point_attributes,
        [
            ("supervisord_server".to_string(), "a".to_string()),
            ("role".into(), "web".into()),
            ("role".into(), "db".into()),
            ("role".into(), "web".into()),
            ("env".into(), "prod".into()),
        ]
    );
    assert_eq!(
        t.resource_attributes,
        [
            ("role".to_string(), "web".to_string()),
            ("env".into(), "prod".into()),
        ]
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn native_targets_put_nothing_extra_on_points() {
    let s = ok("targets:\n  - name: a\n    endpoint: http://localhost:9001\n    resource_attributes: {env: prod}\nexporters:\n  debug: {}\n");
    assert!(s.targets[0].point_attributes.is_empty());
}

#[test]
fn datadog_bad_values_and_duplicates() {
    assert_eq!(
        messages(&dd("name: s\nport: http")),
        ["instances[0].port: invalid port 'http': expected an integer from 1 to 65535"]
    );
    assert_eq!(
        messages(&dd("name: s\nproc_regex: ['(?<=a)b', '(?a)web', 'a**']\nproc_regex_exclude: ['\\N{DIGIT ONE}']\nmetric_patterns: {include: ['(?P<x']}")),
        [
            "instances[0].proc_regex[1]: invalid regex '(?a)web': the ASCII-only flag (?a) is not supported",
            "instances[0].proc_regex[2]: invalid regex 'a**': multiple repeat at position 2 (Python's re refuses it too)",
            "instances[0].proc_regex_exclude[0]: invalid regex '\\N{DIGIT ONE}': named characters (\\N{...}) is not supported",
            "instances[0].metric_patterns.include[0]: invalid regex '(?P<x': missing >, unterminated name at position 4 (Python's re refuses it too)",
        ]
    );
    assert_eq!(
        messages(&format!("{DD}  - name: a\n  - name: a\n")),
        ["instances[1].name: duplicate name 'a': instances[0] has it too, and their metrics would mix"]
    );
    assert_eq!(
        messages("init_config:\n"),
        ["instances: required: list at least one instance"]
    );
    assert_eq!(
        messages("instances: []\n"),
        ["instances: list at least one instance"]
    );
    assert_eq!(
        messages("instances:\n  - name: a\nexporters:\n  debug:\n"),
        ["exporters: 'exporters' belongs to the native format, but this file has 'instances' or 'init_config' and is read as Datadog's; exporters come from the OTEL_EXPORTER_OTLP_* variables"]
    );
}

#[test]
fn datadog_unknown_options_are_warnings() {
    let s = ok(&dd(
        "name: s\nproc_name: [x]\nserver_check: true\nempty_default_hostname: true",
    ));
    assert_eq!(
        s.warnings,
        [
            "instances[0].proc_name at line 4, column 5: unknown option 'proc_name' is ignored; did you mean 'proc_names'?",
            "instances[0].server_check at line 5, column 5: is ignored: supervisord.can_connect is always reported",
        ]
    );
}

#[test]
fn datadog_metric_patterns_switch_metrics() {
    let s = ok(&dd(
        "name: s\nmetric_patterns:\n  include: ['process']\n  exclude: ['uptime$']",
    ));
    assert!(s.metrics.is_enabled(MetricId::ProcessCount));
    assert!(!s.metrics.is_enabled(MetricId::ProcessUptime));
    assert!(!s.metrics.is_enabled(MetricId::CanConnect));
    let text = format!("{DD}  - name: a\n    metric_patterns: {{exclude: [x]}}\n  - name: b\n");
    assert_eq!(
        messages(&text),
        ["instances[1].metric_patterns: must be the same in every instance: metrics are switched on or off for the whole receiver"]
    );
}

#[test]
fn datadog_regexes_take_pythons_syntax() {
    let s = ok(&dd("name: s\nproc_regex: ['^(?!web_|worker_)', '(\\w)\\1', '(?i)^WEB_(?P<n>\\d)(?P=n)']\nproc_regex_exclude: ['(?<=_)tmp\\Z']\nmetric_patterns:\n  include: ['^supervisord\\.(?!process\\.uptime)']"));
    let filter = &s.targets[0].filter;
    let names = [
        "db",
        "web_1",
        "web_11",
        "worker_ssh",
        "worker_x",
        "cron_tmp",
    ];
    let monitored = |name: &&str| {
        filter.monitors(&ProcessInfo {
            name: name.to_string(),
            ..Default::default()
        })
    };
    let kept: Vec<&str> = names.into_iter().filter(monitored).collect();
    assert_eq!(kept, ["db", "web_11", "worker_ssh"]);
    assert_eq!(filter.regex[2].as_str(), "(?i)^WEB_(?P<n>\\d)(?P=n)");
    assert!(s.metrics.is_enabled(MetricId::ProcessCount));
    assert!(!s.metrics.is_enabled(MetricId::ProcessUptime));
}

#[test]
fn native_regexes_keep_the_regex_crates_syntax() {
    let text = "targets:\n  - name: a\n    endpoint: http://h:9001\n    include: {regex: ['(?<=a)b', '^(?P<n>a)x']}\nexporters:\n  debug: {}\n";
    assert_eq!(
        messages(text),
        ["targets[0].include.regex[0]: invalid regex '(?<=a)b': look-around, including look-ahead and look-behind, is not supported (Rust regex syntax: look-around and backreferences are not supported)"]
    );
}

// ---------------------------------------------------------------- native format

const TARGET: &str = "targets:\n  - name: a\n    endpoint: http://h:9001\n";

#[test]
fn native_unknown_keys_are_errors_with_a_suggestion() {
    let text =
        format!("colection_interval: 5s\n{TARGET}    timout: 1s\n    include: {{name: [x]}}\n");
    assert_eq!(
        messages(&text),
        [
            "colection_interval: unknown key 'colection_interval'; did you mean 'collection_interval'?",
            "targets[0].timout: unknown key 'timout'; did you mean 'timeout'?",
            "targets[0].include.name: unknown key 'name'; did you mean 'names'?",
        ]
    );
    assert_eq!(
        messages(&format!("{TARGET}metrics:\n  supervisord.proces.count: {{enabled: false}}\n")),
        ["metrics.supervisord.proces.count: unknown metric 'supervisord.proces.count'; did you mean 'supervisord.process.count'?; valid metrics: supervisord.can_connect, supervisord.process.count, supervisord.process.uptime, supervisord.process.status, supervisord.process.state, supervisord.process.exit_status, supervisord.process.start_time, supervisord.state"]
    );
    assert_eq!(
        messages(&format!("{TARGET}exporters:\n  otpl: {{}}\n")),
        ["exporters.otpl: unknown exporter 'otpl'; did you mean 'otlp'?; expected otlp, otlp/<name>, debug or debug/<name>"]
    );
}

#[test]
fn native_reports_every_problem_in_file_order() {
    let text = "\
collection_interval: 15
timeout: -1s
targets:
  - name: a
    endpoint: ftp://x
    tls: {insecure_skip_verify: true}
  - name: a
    endpoint: http://h:9001/status
    username: u
    status_mapping: {STOPED: up, RUNNING: fine}
    resource_attributes: {status: x, n: 1}
";
    assert_eq!(
        display(text, &[]),
        "\
c.yaml:1:1: collection_interval: invalid duration '15': a unit is required, e.g. '15s'
c.yaml:2:1: timeout: invalid duration '-1s': must not be negative
c.yaml:5:5: targets[0].endpoint: invalid endpoint 'ftp://x': scheme must be http, https or unix
c.yaml:7:5: targets[1].name: duplicate name 'a': targets[0] has it too
c.yaml:8:5: targets[1].endpoint: invalid endpoint 'http://h:9001/status': the path must be empty or /RPC2 (requests always go to /RPC2)
c.yaml:9:5: targets[1].username: set password too, or neither
c.yaml:10:22: targets[1].status_mapping.STOPED: unknown supervisord state 'STOPED'; expected one of STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL, UNKNOWN
c.yaml:10:34: targets[1].status_mapping.RUNNING: invalid status 'fine': expected up, down or unknown
c.yaml:11:27: targets[1].resource_attributes.status: 'status' is set by the receiver itself; reserved names: supervisor_server, supervisord.identification, supervisord.version, supervisord_server, supervisord_process, supervisord_group, status, state
c.yaml:11:38: targets[1].resource_attributes.n: expected a string (quote numbers and booleans), found a number (1)"
    );
}

#[test]
fn native_tls_only_on_https_and_required_keys() {
    assert_eq!(
        messages(&format!(
            "{TARGET}    tls: {{insecure_skip_verify: true}}\n"
        )),
        ["targets[0].tls: applies to https:// endpoints only"]
    );
    assert_eq!(
        messages("targets:\n  - {}\n"),
        ["targets[0].name: required", "targets[0].endpoint: required"]
    );
    assert_eq!(
        messages("targets: []\n"),
        ["targets: list at least one supervisord target"]
    );
    assert_eq!(
        messages("timeout: 1s\n"),
        ["targets: required: list at least one supervisord target"]
    );
}

#[test]
fn native_timeout_is_clamped_to_the_interval() {
    // The built-in default timeout is clamped quietly: a short interval is a normal choice.
    let s = ok(&format!("collection_interval: 5s\n{TARGET}"));
    assert_eq!(s.targets[0].timeout, Duration::from_secs(5));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // A timeout the user wrote is clamped with a warning.
    let s = ok(&format!("collection_interval: 5s\ntimeout: 10s\n{TARGET}"));
    assert_eq!(s.targets[0].timeout, Duration::from_secs(5));
    assert_eq!(
        s.warnings,
        ["targets[0] at line 4, column 3: timeout 10s is longer than the collection interval 5s; using 5s"]
    );
    let s = ok(&format!("{TARGET}    timeout: 1m\n"));
    assert_eq!(s.targets[0].timeout, Duration::from_secs(15));
    assert_eq!(
        s.warnings,
        ["targets[0].timeout at line 4, column 5: timeout 1m is longer than the collection interval 15s; using 15s"]
    );
}

#[test]
fn native_otlp_endpoint_rules() {
    let exporter = |body: &str| {
        let s = ok(&format!("{TARGET}exporters:\n  otlp:\n{body}"));
        let o = otlp(&s).clone();
        o
    };
    let o = exporter("    endpoint: http://c:4317\n");
    assert_eq!(
        (o.protocol, o.endpoint.as_str()),
        (OtlpProtocol::Grpc, "http://c:4317")
    );
    let o = exporter("    protocol: http/protobuf\n    endpoint: http://c:4318\n");
    assert_eq!(o.endpoint, "http://c:4318/v1/metrics");
    let o = exporter("    protocol: http/json\n    endpoint: http://c:4318/base/\n");
    assert_eq!(o.endpoint, "http://c:4318/base/v1/metrics");
    let o = exporter("    protocol: http/protobuf\n    metrics_endpoint: http://c:1/x\n");
    assert_eq!(o.endpoint, "http://c:1/x");
    assert_eq!(
        messages(&format!("{TARGET}exporters:\n  otlp:\n    metrics_endpoint: http://c:1/x\n")),
        [
            "exporters.otlp.endpoint: required",
            "exporters.otlp.metrics_endpoint: applies to the http/protobuf and http/json protocols only",
        ]
    );
}

// ---------------------------------------------------------------- ${env:...}

#[test]
fn env_expansion_in_both_formats() {
    let vars = [("HOST", "db.local"), ("PW", "s3cret"), ("PORT", "9100")];
    let text = "targets:\n  - name: a\n    endpoint: http://${env:HOST}:9001\n    username: u\n    password: ${env:PW}\n";
    let s = load_text(text, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.targets[0].endpoint, tcp("db.local", 9001));
    let pw = s.targets[0]
        .credentials
        .as_ref()
        .map(|c| c.password.expose().to_string());
    assert_eq!(pw.as_deref(), Some("s3cret"));

    let s = load_text(&dd("name: s\nhost: ${env:HOST}\nport: ${env:PORT}"), &vars)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.targets[0].endpoint, tcp("db.local", 9100));

    let s = load_text(
        "targets:\n  - name: 'cost $${env:X}'\n    endpoint: http://h\n",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.targets[0].name, "cost ${env:X}");
}

#[test]
fn env_expansion_errors() {
    let text = "targets:\n  - name: ${env:NAME}\n    endpoint: http://${HOST}:9001\n";
    assert_eq!(
        display(text, &[]),
        "\
c.yaml:2:5: targets[0].name: environment variable 'NAME' is not set
c.yaml:3:5: targets[0].endpoint: unsupported substitution '${HOST}'; only ${env:NAME} and ${file:/path} are supported"
    );
}

// ---------------------------------------------------------------- OTEL_* variables

const NATIVE_NO_EXPORTER: &str = TARGET;

fn env_exporter(vars: &[(&str, &str)]) -> OtlpSettings {
    let s = load_text(NATIVE_NO_EXPORTER, vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.exporters.len(), 1);
    otlp(&s).clone()
}

#[test]
fn otel_defaults_without_any_variable() {
    let o = env_exporter(&[]);
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.endpoint, "http://localhost:4318/v1/metrics");
    assert!(!o.gzip);
    assert_eq!(o.timeout, Duration::from_secs(10));
    assert!(o.headers.is_empty());
}

#[test]
fn otel_endpoint_path_rules() {
    for (base, expected) in [
        ("http://c:4318", "http://c:4318/v1/metrics"),
        ("http://c:4318/", "http://c:4318/v1/metrics"),
        ("https://c/otlp", "https://c/otlp/v1/metrics"),
        ("https://c/otlp/", "https://c/otlp/v1/metrics"),
    ] {
        let o = env_exporter(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)]);
        assert_eq!(o.endpoint, expected, "{base}");
    }
    let o = env_exporter(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4318/as/is"),
    ]);
    assert_eq!(o.endpoint, "http://m:4318/as/is");
    let o = env_exporter(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317/"),
    ]);
    assert_eq!(
        (o.protocol, o.endpoint.as_str()),
        (OtlpProtocol::Grpc, "http://c:4317/")
    );
    assert_eq!(
        env_exporter(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).endpoint,
        "http://localhost:4317"
    );
}

#[test]
fn otel_signal_specific_variables_win() {
    let o = env_exporter(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "b=specific"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
    ]);
    assert_eq!(o.protocol, OtlpProtocol::HttpJson);
    let headers: Vec<_> = o
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(headers, [("b", "specific")]);
    assert!(o.gzip);
    assert_eq!(o.timeout, Duration::from_millis(2500));
}

#[test]
fn otel_headers_are_percent_decoded() {
    let o = env_exporter(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "dd-api-key=ab%2Fcd%3D%3D, x-team = core%20team",
    )]);
    let headers: Vec<_> = o
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [("dd-api-key", "ab/cd=="), ("x-team", "core team")]
    );
}

#[test]
fn otel_problems_name_the_variable() {
    let text = display(
        NATIVE_NO_EXPORTER,
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "dd-api-key=topsecretvalue,broken",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
        ],
    );
    assert_eq!(
        text,
        "\
c.yaml: OTEL_EXPORTER_OTLP_ENDPOINT: invalid endpoint 'localhost:4318': expected a URL such as http://localhost:4317
c.yaml: OTEL_EXPORTER_OTLP_HEADERS: malformed header list: entry 2 has no '='"
    );
}

#[test]
fn otel_variables_are_ignored_when_the_file_has_exporters() {
    let s = load_text(
        &format!("{TARGET}exporters:\n  debug:\n"),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.exporters.len(), 1);
    assert!(matches!(s.exporters[0], ExporterSettings::Debug { .. }));
    assert_eq!(
        s.warnings,
        ["OTEL_EXPORTER_OTLP_ENDPOINT: ignored: the file configures its exporters"]
    );
}

// ---------------------------------------------------------------- positions, secrets, robustness

#[test]
fn a_type_error_has_its_line_and_column() {
    let text = "targets:\n  - name: a\n    endpoint: http://h\n    include:\n      names: nginx\n";
    let p = problems(text, &[]);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key_path, "targets[0].include.names");
    assert_eq!(p[0].line_col, Some((5, 7)));
    assert_eq!(
        p[0].message,
        "expected a list of strings, found a string 'nginx'"
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let p = problems("targets:\n  - name: [a\n", &[]);
    assert_eq!(p.len(), 1);
    assert!(p[0].line_col.is_some(), "{p:?}");
    assert!(p[0].message.starts_with("invalid YAML: "), "{p:?}");
    assert!(!p[0].message.contains(" at line "), "{p:?}");
}

#[test]
fn secrets_never_appear_in_errors() {
    let secret = "hunter2-XYZ";
    let cases = [
        // A password in the wrong type, or in an invalid spot.
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: [{secret}]\n"),
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: {{a: {secret}}}\n"),
        format!("targets:\n  - name: a\n    endpoint: http://u:{secret}@h:9001\n    username: u\n    password: {secret}\n"),
        format!("targets:\n  - name: a\n    endpoint: ftp://u:{secret}@h\n"),
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: 'a${{{secret}}}'\n    username: u\n"),
        format!("targets:\n  - name: a\n    endpoint: http://h\n    password: 'a${{env:{secret}-}}'\n    username: u\n"),
        format!("{TARGET}exporters:\n  otlp:\n    endpoint: http://c\n    headers: {{k: [{secret}]}}\n"),
        format!("{TARGET}exporters:\n  otlp:\n    endpoint: http://c\n    headers: {{k: \"{secret}\\n\"}}\n"),
        format!("{TARGET}exporters:\n  otlp:\n    endpoint: http://c\n    headers: {{k: '${{x{secret}}}'}}\n"),
        "targets:\n  - name: a\n    endpoint: http://h\n    password: 98765432109876543210987\n".to_string(),
        dd(&format!("name: s\npass: [{secret}]\n")),
        dd(&format!("name: s\npassword: {{a: {secret}}}\n")),
        dd(&format!("name: s\npassword: 'a${{{secret}}}'\n")),
    ];
    for text in &cases {
        let shown = display(text, &[]);
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("98765432109876543210987"), "{shown}");
        assert!(!format!("{:?}", load_text(text, &[])).contains(secret));
    }
    let shown = display(
        TARGET,
        &[("OTEL_EXPORTER_OTLP_HEADERS", &format!("a={secret},oops"))],
    );
    assert!(!shown.contains(secret), "{shown}");
    // Loaded secrets do not print either.
    let s = load_text(
        "targets:\n  - name: a\n    endpoint: http://h\n    username: u\n    password: ${env:PW}\n",
        &[("PW", secret)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{s:?}").contains(secret));
}

#[test]
fn odd_documents_are_problems_not_panics() {
    let huge = format!(
        "targets:\n  - name: a\n    endpoint: http://h:{}\n",
        "9".repeat(400)
    );
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"   \n# only a comment\n".to_vec(),
        b"- a\n- b\n".to_vec(),
        b"just a scalar".to_vec(),
        b"42".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x01, 0x80],
        b"\x00\x01\x02garbage".to_vec(),
        b"targets: 5\n".to_vec(),
        b"targets: [5, null, [], {}]\n".to_vec(),
        b"targets:\n  - name: {a: b}\n    endpoint: [x]\n    username: 1\n    password: 2\n    collection_interval: [1]\n    timeout: {a: 1}\n    tls: 5\n    include: [x]\n    exclude: {names: 5, regex: [1], groups: [[]]}\n    status_mapping: [1]\n    resource_attributes: 5\n".to_vec(),
        b"collection_interval: -5s\ninitial_delay: 99999999999999999999h\ntimeout: 0s\ntargets: [{name: a, endpoint: 'http://h'}]\n".to_vec(),
        b"targets: [{name: a, endpoint: 'http://h'}]\nmetrics: [1]\nexporters: [1]\n".to_vec(),
        b"targets: [{name: a, endpoint: 'http://h'}]\nmetrics: {supervisord.state: 5}\nexporters: {otlp: 5, debug: {verbosity: 5}, otlp/: {}}\n".to_vec(),
        b"instances: 5\n".to_vec(),
        b"init_config: 5\ninstances: [5, null, {name: 5, port: 99999999, socket: 5, tags: 5, min_collection_interval: .nan, status_mapping_override: {1: [2]}, metric_patterns: 5}]\n".to_vec(),
        b"instances: [{name: a, port: -1, min_collection_interval: 1e400, tags: [1, ':x'], host: 'a b'}]\n".to_vec(),
        b"{1: 2, [a]: b}\n".to_vec(),
        b"a: &x [*x]\n".to_vec(),
        b"!tag {targets: 1}\n".to_vec(),
        b"---\na: 1\n---\nb: 2\n".to_vec(),
        huge.into_bytes(),
        deep.into_bytes(),
    ];
    for input in inputs {
        let result = load_bytes(Path::new("c.yaml"), &input, &env_of(&[]));
        match result {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert!(!problems.is_empty());
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&input)),
        }
    }
}

#[test]
fn a_missing_file_is_an_io_error() {
    let err = load_with_env(Path::new("/nonexistent/receiver.yaml"), &env_of(&[]))
        .err()
        .unwrap_or_else(|| panic!("expected an error"));
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err
        .to_string()
        .starts_with("/nonexistent/receiver.yaml: cannot read: "));
}
