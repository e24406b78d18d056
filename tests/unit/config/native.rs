//! The native format: unknown keys, problem order, TLS keys, timeouts, OTLP endpoints.

use super::*;

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
        ["metrics.supervisord.proces.count: unknown metric 'supervisord.proces.count'; did you mean 'supervisord.process.count'?; valid metrics: supervisord.can_connect, supervisord.process.count, supervisord.process.uptime, supervisord.process.status, supervisord.process.state, supervisord.process.exit_status, supervisord.process.start_time, supervisord.process.restarts, supervisord.process.exits, supervisord.process.cpu.time, supervisord.process.memory.usage, supervisord.process.memory.virtual, supervisord.process.thread.count, supervisord.process.unix.file_descriptor.count, supervisord.process.tree.count, supervisord.state, supervisord.clock.offset"]
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
c.yaml:11:27: targets[1].resource_attributes.status: 'status' is set by the receiver itself; reserved names: supervisor_server, supervisord.identification, supervisord.version, supervisord_server, supervisord_process, supervisord_group, status, state, autostart, expected, cpu.mode
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

#[test]
fn the_counts_switch_like_every_metric() {
    let s = ok(&format!(
        "{TARGET}metrics:\n  supervisord.process.exits: {{enabled: false}}\n"
    ));
    assert!(!s.metrics.is_enabled(MetricId::ProcessExits));
    assert!(s.metrics.is_enabled(MetricId::ProcessRestarts));
    let s = ok(&dd("name: s\nmetric_patterns:\n  exclude: ['restarts$']"));
    assert!(!s.metrics.is_enabled(MetricId::ProcessRestarts));
    assert!(s.metrics.is_enabled(MetricId::ProcessExits));
}

#[test]
fn process_resources_is_auto_true_or_false() {
    use supervisord_receiver::settings::ResourcesMode;
    let mode =
        |value: &str| ok(&format!("{TARGET}    process_resources: {value}\n")).targets[0].resources;
    assert_eq!(ok(TARGET).targets[0].resources, ResourcesMode::Auto);
    assert_eq!(mode("auto"), ResourcesMode::Auto);
    assert_eq!(mode("true"), ResourcesMode::On);
    assert_eq!(mode("\"false\""), ResourcesMode::Off);
    assert_eq!(
        messages(&format!("{TARGET}    process_resources: always\n")),
        ["targets[0].process_resources: expected auto, true or false (auto: read /proc when supervisord is on this host, by a UNIX socket or a loopback address)"]
    );
    // The Datadog format sends what the check sends: no resources.
    let s = ok(&dd("name: a\nhost: localhost"));
    assert_eq!(s.targets[0].resources, ResourcesMode::Off);
}
