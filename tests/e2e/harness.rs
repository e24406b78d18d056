//! The test infrastructure checked against itself: a real supervisord reaches every state it
//! promises, over each server kind, and the OTLP sink decodes what real OTLP clients send.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use crate::testkit::otlp_sink::{self, OtlpSink, Protocol};
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::WAIT;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

#[test]
fn mixed_programs_reach_every_promised_state_over_tcp_and_socket_with_auth() {
    let svd = Supervisord::start(Options::default().with_auth("alice", "s3cret"));
    svd.wait_for_mixed_states();
    let states = svd.states();
    assert_eq!(
        states.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![
            "backoff",
            "exited",
            "fatal",
            "running",
            "starting",
            "stopped",
            "workers:worker_a",
            "workers:worker_b",
        ],
        "{states:?}"
    );
    assert!(svd.http_url().starts_with("http://127.0.0.1:"));
    assert!(svd.unix_url().starts_with("unix:///tmp/"));
    assert!(svd.socket_path().exists());
    // The TCP server enforces the same credentials as the socket.
    let refused = xmlrpc_status(&svd.http_url(), None);
    assert_eq!(refused, 401, "TCP server answered without credentials");
    let ok = xmlrpc_status(&svd.http_url(), Some(("alice", "s3cret")));
    assert_eq!(ok, 200);
}

#[test]
fn ctl_stops_and_starts_a_program_and_drop_ends_the_children() {
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("only")]),
    );
    svd.wait_for_states(&[("only", "RUNNING")], WAIT);
    let pid_line = svd.ctl(&["pid", "only"]);
    let child_pid: u32 = pid_line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("supervisorctl pid: {pid_line:?}: {e}"));
    let out = svd.ctl(&["stop", "only"]);
    assert!(out.contains("stopped"), "{out}");
    svd.wait_for_states(&[("only", "STOPPED")], WAIT);
    svd.ctl(&["start", "only"]);
    svd.wait_for_states(&[("only", "RUNNING")], WAIT);
    let new_pid: u32 = svd.ctl(&["pid", "only"]).trim().parse().unwrap_or(0);
    assert_ne!(new_pid, child_pid);
    let supervisord_pid = svd.pid();
    drop(svd);
    for pid in [supervisord_pid, new_pid] {
        assert!(
            !process_alive(pid),
            "pid {pid} still alive after the supervisord was dropped"
        );
    }
}

/// A zombie (exited, not yet reaped by a parent that is gone) counts as ended.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// POSTs `supervisor.getState` over plain HTTP and returns the status code.
fn xmlrpc_status(base: &str, auth: Option<(&str, &str)>) -> u16 {
    let body = "<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getState</methodName>\
                <params></params></methodCall>";
    let runtime = runtime();
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = hyper::Request::post(format!("{base}/RPC2"))
            .header("content-type", "text/xml")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|e| panic!("request: {e}"));
        if let Some((user, pass)) = auth {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.headers_mut().insert(
                "authorization",
                format!("Basic {token}")
                    .parse()
                    .unwrap_or_else(|e| panic!("header: {e}")),
            );
        }
        let resp = client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("POST {base}/RPC2: {e}"));
        resp.status().as_u16()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn sample_request(server: &str, value: i64) -> ExportMetricsServiceRequest {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("supervisor_server", server)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "supervisord.process.uptime".to_string(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![kv("supervisord_process", "web")],
                            time_unix_nano: 1_700_000_000_000_000_000,
                            value: Some(number_data_point::Value::AsInt(value)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes)
        .unwrap_or_else(|e| panic!("gzip write: {e}"));
    enc.finish().unwrap_or_else(|e| panic!("gzip finish: {e}"))
}

async fn post(url: &str, content_type: &str, gzipped: bool, body: Vec<u8>) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = hyper::Request::post(url)
        .header("content-type", content_type)
        .header("x-tenant", "e2e");
    if gzipped {
        builder = builder.header("content-encoding", "gzip");
    }
    let req = builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|e| panic!("request: {e}"));
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

#[test]
fn sink_decodes_grpc_and_http_protobuf_and_json_with_and_without_gzip() {
    let sink = OtlpSink::start();
    let runtime = runtime();
    let url = format!("{}/v1/metrics", sink.http_endpoint());
    runtime.block_on(async {
        let mut client = MetricsServiceClient::connect(sink.grpc_endpoint())
            .await
            .unwrap_or_else(|e| panic!("gRPC connect: {e}"))
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        let mut req = tonic::Request::new(sample_request("grpc", 1));
        req.metadata_mut().insert(
            "x-tenant",
            "e2e".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        client
            .export(req)
            .await
            .unwrap_or_else(|e| panic!("gRPC export: {e}"));

        let pb = sample_request("pb", 2).encode_to_vec();
        assert_eq!(post(&url, "application/x-protobuf", false, pb.clone()).await, 200);
        assert_eq!(post(&url, "application/x-protobuf", true, gzip(&pb)).await, 200);
        // OTLP/JSON as the spec writes it: camelCase, 64-bit integers as strings.
        let json = serde_json::json!({"resourceMetrics": [{
            "resource": {"attributes": [{"key": "supervisor_server", "value": {"stringValue": "json"}}]},
            "scopeMetrics": [{"metrics": [{"name": "supervisord.process.uptime", "gauge": {"dataPoints": [{
                "attributes": [{"key": "supervisord_process", "value": {"stringValue": "web"}}],
                "timeUnixNano": "1700000000000000000", "asInt": "4"}]}}]}]}]})
        .to_string()
        .into_bytes();
        assert_eq!(post(&url, "application/json", true, gzip(&json)).await, 200);
        assert_eq!(post(&url, "application/x-protobuf", false, b"\xff\xff".to_vec()).await, 400);
    });

    let requests = sink.wait_for(|r| r.len() == 4, Duration::from_secs(10));
    let kinds: Vec<(Protocol, bool)> = requests.iter().map(|r| (r.protocol, r.gzip)).collect();
    assert_eq!(
        kinds,
        vec![
            (Protocol::Grpc, true),
            (Protocol::HttpProtobuf, false),
            (Protocol::HttpProtobuf, true),
            (Protocol::HttpJson, true),
        ]
    );
    assert!(requests.iter().all(|r| r.header("X-Tenant") == Some("e2e")));
    let values: BTreeMap<String, i64> = otlp_sink::points(&requests, "supervisord.process.uptime")
        .into_iter()
        .map(|p| {
            assert_eq!(p.attr("supervisord_process"), Some("web"));
            assert_eq!(p.time_unix_nano, 1_700_000_000_000_000_000);
            (p.server().unwrap_or("?").to_string(), p.value)
        })
        .collect();
    assert_eq!(
        values,
        BTreeMap::from([
            ("grpc".to_string(), 1),
            ("json".to_string(), 4),
            ("pb".to_string(), 2),
        ])
    );
    let poll = otlp_sink::latest_poll(&requests, "json");
    assert_eq!(
        poll.expect(
            "supervisord.process.uptime",
            &[("supervisord_process", "web")]
        ),
        4
    );
    assert_eq!(sink.errors().len(), 1, "{:?}", sink.errors());
}
