//! `${env:...}` in both formats, and the OTEL_* variables.

use super::*;
use supervisord_receiver::settings::Signal;

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

/// The exporter the variables make for metrics (with `otlp/logs` beside it when the logs
/// variables differ).
fn env_exporter(vars: &[(&str, &str)]) -> OtlpSettings {
    let s = load_text(NATIVE_NO_EXPORTER, vars).unwrap_or_else(|e| panic!("{e}"));
    let o = otlp(&s).clone();
    assert_eq!(o.name, "otlp");
    assert!(o.signals.contains(&Signal::Metrics));
    o
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
    assert_eq!(o.signals, [Signal::Metrics]);
    // Logs keep the generic variables: a second exporter.
    let s = load_text(
        NATIVE_NO_EXPORTER,
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.exporters.len(), 2);
    let ExporterSettings::Otlp(logs) = &s.exporters[1] else {
        panic!("{:?}", s.exporters[1]);
    };
    assert_eq!(logs.name, "otlp/logs");
    assert_eq!(logs.signals, [Signal::Logs]);
    assert_eq!(logs.protocol, OtlpProtocol::Grpc);
    assert_eq!(logs.headers[0].1.expose(), "generic");
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
