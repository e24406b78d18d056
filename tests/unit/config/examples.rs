//! Both example files load, with their defaults and with every option switched on.

use super::*;

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
    assert_eq!(
        s.temporality,
        supervisord_receiver::settings::TemporalityPreference::Delta
    );
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
    let admin = s
        .admin
        .as_ref()
        .unwrap_or_else(|| panic!("admin: uncommented"));
    assert_eq!(admin.endpoint.display(), "127.0.0.1:8787");
    assert_eq!(admin.unhealthy_after, Duration::from_secs(300));
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
    assert!(!t.autostart_attribute);
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
    assert!(t.autostart_attribute);
    assert!(!s.targets[1].autostart_attribute);
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
