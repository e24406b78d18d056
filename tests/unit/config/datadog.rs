//! The Datadog format behaves as the check does: its error texts, precedence and defaults.

use super::*;

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
        ["instances[0].tags[0]: 'supervisord_server' is set by the receiver itself; reserved names: supervisor_server, supervisord.identification, supervisord.version, supervisord_server, supervisord_process, supervisord_group, status, state, autostart, expected, cpu.mode"]
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
fn datadog_autostart_tag_is_off_unless_the_instance_asks() {
    // Without the key the output stays the check's: no getAllConfigInfo, no autostart tag.
    let s = ok(&dd("name: s"));
    assert!(!s.targets[0].autostart_attribute);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    for (value, on) in [
        ("true", true),
        ("false", false),
        ("'true'", true),
        ("null", false),
    ] {
        let s = ok(&dd(&format!("name: s\nautostart_tag: {value}")));
        assert_eq!(s.targets[0].autostart_attribute, on, "{value}");
        assert!(s.warnings.is_empty(), "{value}: {:?}", s.warnings);
    }
    // Per instance.
    let s = ok(&format!(
        "{DD}  - name: a\n    autostart_tag: true\n  - name: b\n"
    ));
    let on: Vec<bool> = s.targets.iter().map(|t| t.autostart_attribute).collect();
    assert_eq!(on, [true, false]);
    // The native format always has it.
    let s =
        ok("targets:\n  - name: a\n    endpoint: http://localhost:9001\nexporters:\n  debug: {}\n");
    assert!(s.targets[0].autostart_attribute);
}

#[test]
fn datadog_autostart_tag_must_be_a_boolean() {
    assert_eq!(
        display(&dd("name: s\nautostart_tag: yes"), &[]),
        "c.yaml:4:5: instances[0].autostart_tag: expected true or false, found a string 'yes'"
    );
    assert_eq!(
        messages(&dd("name: s\nautostart_tag: 1")),
        ["instances[0].autostart_tag: expected true or false, found a number (1)"]
    );
    assert_eq!(
        messages(&dd("name: s\nautostart_tag: [true]")),
        ["instances[0].autostart_tag: expected true or false, found a list"]
    );
}

#[test]
fn datadog_autostart_tag_reserves_the_key_only_when_on() {
    // A user's own `autostart` tag keeps loading, and riding on every point, as before.
    let s = ok(&dd("name: s\ntags: ['autostart:manual']"));
    assert!(s.targets[0]
        .point_attributes
        .contains(&("autostart".into(), "manual".into())));
    // With the receiver's attribute on, the two would clash on the same points.
    let problems = messages(&dd(
        "name: s\nautostart_tag: true\ntags: ['autostart:manual']",
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "instances[0].tags[0]: 'autostart' is set by the receiver itself; reserved names:"
        ),
        "{problems:?}"
    );
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
