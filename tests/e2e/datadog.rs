//! End to end with Datadog's `supervisord.d/conf.yaml` format, the exporter chosen by the
//! standard OTEL_EXPORTER_OTLP_* variables, against a real supervisord.

use crate::testkit::config;
use crate::testkit::expect::{self, counts, counts_of, process_status, PROCESS};
use crate::testkit::otlp_sink::{
    any_value_string, OtlpSink, Protocol, ReceivedRequest, SERVER_ATTR,
};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Supervisord};
use crate::testkit::{yaml_str, WAIT};
use opentelemetry_proto::tonic::common::v1::KeyValue;

const MIXED: [&str; 8] = [
    "running", "stopped", "exited", "fatal", "backoff", "starting", "worker_a", "worker_b",
];

#[test]
fn datadog_config_over_tcp_with_auth_exports_to_grpc_from_otel_env() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .with_auth("dd-user", "dd-pass-4e1b"),
    );
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let auth = svd.auth().cloned().unwrap_or_else(|| panic!("auth is set"));
    let cfg = format!(
        "init_config: {{service: payments}}\n\
         instances:\n  \
           - name: dd-tcp\n    \
             host: 127.0.0.1\n    \
             port: {port}\n    \
             username: {user}\n    \
             password: {pass}\n    \
             tags: [\"env:e2e\", \"team:infra\", \"role:web\", \"role:db\"]\n    \
             min_collection_interval: 1\n",
        port = svd.port(),
        user = yaml_str(&auth.username),
        pass = yaml_str(&auth.password),
    );
    let path = config::write(svd.dir(), "conf.yaml", &cfg);
    let grpc = sink.grpc_endpoint();
    let receiver = Running::start(
        &path,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );

    let poll = sink.wait_for_processes("dd-tcp", &MIXED, WAIT);
    expect::mixed_poll(&poll);
    for p in &poll.points {
        assert_eq!(
            p.attr("supervisord_server"),
            Some("dd-tcp"),
            "{} lacks supervisord_server: {:?}",
            p.metric,
            p.attrs
        );
    }
    // What Datadog's OTLP ingest makes of them: the check's tags, on every point.
    assert_every_point_tagged(
        &sink.requests(),
        "dd-tcp",
        &[
            "supervisord_server:dd-tcp",
            "env:e2e",
            "team:infra",
            "role:web",
            "role:db",
            "service:payments",
        ],
    );
    let resource = poll.resource_attrs();
    assert_eq!(
        resource.get("service.name").map(String::as_str),
        Some("payments"),
        "{resource:?}"
    );
    assert_eq!(
        resource.get("role").map(String::as_str),
        Some("web"),
        "{resource:?}"
    );
    assert_eq!(
        resource.get("env").map(String::as_str),
        Some("e2e"),
        "{resource:?}"
    );
    assert_eq!(
        resource.get("team").map(String::as_str),
        Some("infra"),
        "{resource:?}"
    );
    assert_eq!(
        resource.get("supervisor_server").map(String::as_str),
        Some("dd-tcp")
    );

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(sink.requests().iter().all(|r| r.protocol == Protocol::Grpc));
}

#[test]
fn datadog_config_over_socket_with_filters_exports_to_http_from_otel_env() {
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .with_auth("dd-sock", "dd-sock-pass-0c7d"),
    );
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let auth = svd.auth().cloned().unwrap_or_else(|| panic!("auth is set"));
    let cfg = format!(
        "init_config: {{service: payments}}\n\
         instances:\n  \
           - name: dd-sock\n    \
             service: sock-svc\n    \
             socket: {socket}\n    \
             username: {user}\n    \
             password: {pass}\n    \
             proc_names: [running, worker_a, stopped]\n    \
             proc_regex: ['^exi']\n    \
             proc_names_exclude: [stopped]\n    \
             status_mapping_override:\n      \
               EXITED: up\n    \
             tags: [\"role:socket\"]\n    \
             min_collection_interval: 1\n",
        socket = yaml_str(&svd.unix_url()),
        user = yaml_str(&auth.username),
        pass = yaml_str(&auth.password),
    );
    let path = config::write(svd.dir(), "conf.yaml", &cfg);
    let http = sink.http_endpoint();
    let receiver = Running::start(
        &path,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &http),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );

    let poll = sink.wait_for_processes("dd-sock", &["running", "worker_a", "exited"], WAIT);
    expect::connected(&poll);
    assert_eq!(process_status(&poll, "exited"), "up");
    assert_eq!(counts(&poll), counts_of(&[("up", 3)]));
    assert_eq!(
        poll.expect("supervisord.process.exit_status", &[(PROCESS, "exited")]),
        3
    );
    assert!(poll
        .points
        .iter()
        .all(|p| p.attr("supervisord_server") == Some("dd-sock")));
    assert_eq!(
        poll.resource_attrs().get("role").map(String::as_str),
        Some("socket")
    );
    assert_every_point_tagged(
        &sink.requests(),
        "dd-sock",
        &[
            "supervisord_server:dd-sock",
            "role:socket",
            "service:sock-svc",
        ],
    );
    assert!(
        datadog_tags_of(&sink.requests(), "dd-sock")
            .iter()
            .all(|(_, tags)| !tags.contains(&"service:payments".to_string())),
        "the instance's service wins over init_config's"
    );

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(sink
        .requests()
        .iter()
        .all(|r| r.protocol == Protocol::HttpProtobuf));
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());
}

/// Datadog's OTLP metric mapping of point attributes to tags: each `KeyValue` in wire order
/// becomes `key:value` (an empty value becomes `n/a`); resource attributes are left out, as
/// with the Agent's default `resource_attributes_as_tags: false`. Read from the raw requests so a
/// key given twice is seen twice.
fn datadog_tags(attributes: &[KeyValue]) -> Vec<String> {
    attributes
        .iter()
        .map(|kv| {
            let value = any_value_string(kv.value.as_ref());
            let value = if value.is_empty() {
                "n/a".into()
            } else {
                value
            };
            format!("{}:{value}", kv.key)
        })
        .collect()
}

/// `(metric name, tags)` of every point of one target.
fn datadog_tags_of(requests: &[ReceivedRequest], server: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for r in requests {
        for rm in &r.request.resource_metrics {
            let ours = rm.resource.as_ref().is_some_and(|res| {
                res.attributes.iter().any(|kv| {
                    kv.key == SERVER_ATTR && any_value_string(kv.value.as_ref()) == server
                })
            });
            if !ours {
                continue;
            }
            for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
                use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                let attrs: Vec<&[KeyValue]> = match &m.data {
                    Some(Data::Gauge(g)) => {
                        g.data_points.iter().map(|p| &p.attributes[..]).collect()
                    }
                    Some(Data::Sum(s)) => s.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    _ => Vec::new(),
                };
                for a in attrs {
                    out.push((m.name.clone(), datadog_tags(a)));
                }
            }
        }
    }
    out
}

fn assert_every_point_tagged(requests: &[ReceivedRequest], server: &str, wanted: &[&str]) {
    let tagged = datadog_tags_of(requests, server);
    assert!(!tagged.is_empty(), "no points of {server}");
    for (metric, tags) in &tagged {
        for w in wanted {
            assert!(
                tags.iter().any(|t| t == w),
                "{metric} lacks the tag {w}: {tags:?}"
            );
        }
    }
}
