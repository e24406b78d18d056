//! The exporters against real OTLP servers: the shared sink for the happy paths (gRPC, HTTP
//! protobuf, HTTP JSON, with and without gzip, headers), of metrics and logs, and small inline
//! servers for the failure replies the sink never sends. The export pipeline (queues, senders,
//! persistence) against the sink, with both signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::testkit::otlp_sink::{self, OtlpSink, Protocol, ReceivedLogs, ReceivedRequest};
use crate::testkit::WAIT;
use supervisord_receiver::export::pipeline::{EncodedBatch, ExportPipeline};
use supervisord_receiver::export::{ExportError, Exporter};
use supervisord_receiver::metrics::build_request;
use supervisord_receiver::schema::MetricToggles;
use supervisord_receiver::scrape::outcome::{
    MonitoredProcess, PollData, PollOutcome, TargetIdentity,
};
use supervisord_receiver::settings::secret::Secret;
use supervisord_receiver::settings::{
    DebugVerbosity, ExporterSettings, OtlpProtocol, OtlpSettings, QueueSettings, RetrySettings,
    Signal, TlsSettings,
};
use supervisord_receiver::telemetry::Telemetry;
use supervisord_receiver::vocab::Status;
use supervisord_receiver::vocab::{ProcessInfo, ProcessState, SupervisorState};

const API_KEY: &str = "s3cr3t-api-key";

fn request() -> ExportMetricsServiceRequest {
    let process = |name: &str, state, status| MonitoredProcess {
        info: ProcessInfo {
            name: name.into(),
            group: "web".into(),
            state,
            start: 1_700_000_000,
            now: 1_700_000_060,
            exitstatus: 0,
            ..ProcessInfo::default()
        },
        status,
        autostart: None,
    };
    let ok = PollOutcome {
        target: Arc::new(TargetIdentity {
            name: "web-1".into(),
            attributes: vec![("env".into(), "prod".into())],
            point_attributes: vec![("supervisord_server".into(), "web-1".into())],
        }),
        time_unix_nano: 1_700_000_060_123_456_789,
        result: Ok(PollData {
            processes: vec![
                process("web_00", ProcessState::Running, Status::Up),
                process("web_01", ProcessState::Backoff, Status::Down),
            ],
            supervisor_state: Some(SupervisorState::Running),
            identification: Some("supervisor".into()),
            version: Some("4.2.5".into()),
            ..Default::default()
        }),
    };
    let failed = PollOutcome {
        target: Arc::new(TargetIdentity {
            name: "db-1".into(),
            attributes: vec![],
            point_attributes: vec![("supervisord_server".into(), "db-1".into())],
        }),
        time_unix_nano: 1_700_000_060_223_456_789,
        result: Err("refused".into()),
    };
    build_request(&[ok, failed], &MetricToggles::default())
}

fn otlp(protocol: OtlpProtocol, endpoint: String, gzip: bool) -> OtlpSettings {
    OtlpSettings {
        protocol,
        logs_endpoint: endpoint.replace("/v1/metrics", "/v1/logs"),
        endpoint,
        signals: Signal::ALL.to_vec(),
        headers: vec![
            ("dd-api-key".into(), Secret::new(API_KEY)),
            ("X-Scope-OrgID".into(), Secret::new("tenant-7")),
        ],
        gzip,
        timeout: Duration::from_secs(10),
        tls: TlsSettings::default(),
        name: "otlp".into(),
        delivery: Default::default(),
    }
}

fn exporter(settings: OtlpSettings) -> Exporter {
    Exporter::new(&ExporterSettings::Otlp(settings)).expect("exporter builds")
}

/// Exports once to the sink and returns what it decoded.
async fn export_to_sink(sink: &OtlpSink, settings: OtlpSettings) -> ReceivedRequest {
    let exporter = exporter(settings);
    let sent = request();
    exporter.export(&sent).await.expect("export succeeds");
    let received = tokio::task::block_in_place(|| sink.wait_for(|r| !r.is_empty(), WAIT));
    assert_eq!(received.len(), 1, "one export, one request");
    let received = received.into_iter().next().unwrap();
    assert_eq!(
        received.request, sent,
        "the sink decoded exactly what was built"
    );
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());
    received
}

fn assert_user_headers(received: &ReceivedRequest) {
    assert_eq!(received.header("dd-api-key"), Some(API_KEY));
    assert_eq!(received.header("x-scope-orgid"), Some("tenant-7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_plain() {
    let sink = OtlpSink::start();
    let received =
        export_to_sink(&sink, otlp(OtlpProtocol::Grpc, sink.grpc_endpoint(), false)).await;
    assert_eq!(received.protocol, Protocol::Grpc);
    assert!(!received.gzip);
    assert_user_headers(&received);
    assert!(
        received.header("grpc-timeout").is_some(),
        "the deadline is sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_gzip() {
    let sink = OtlpSink::start();
    let received =
        export_to_sink(&sink, otlp(OtlpProtocol::Grpc, sink.grpc_endpoint(), true)).await;
    assert_eq!(received.protocol, Protocol::Grpc);
    assert!(received.gzip);
    assert_user_headers(&received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf() {
    let sink = OtlpSink::start();
    let endpoint = format!("{}/v1/metrics", sink.http_endpoint());
    let received = export_to_sink(&sink, otlp(OtlpProtocol::HttpProtobuf, endpoint, false)).await;
    assert_eq!(received.protocol, Protocol::HttpProtobuf);
    assert!(!received.gzip);
    assert_user_headers(&received);
    assert_eq!(
        received.header("content-type"),
        Some("application/x-protobuf")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_gzip() {
    let sink = OtlpSink::start();
    let endpoint = format!("{}/v1/metrics", sink.http_endpoint());
    let received = export_to_sink(&sink, otlp(OtlpProtocol::HttpProtobuf, endpoint, true)).await;
    assert_eq!(received.protocol, Protocol::HttpProtobuf);
    assert!(received.gzip);
    assert_eq!(received.header("content-encoding"), Some("gzip"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_gzip() {
    let sink = OtlpSink::start();
    let endpoint = format!("{}/v1/metrics", sink.http_endpoint());
    let received = export_to_sink(&sink, otlp(OtlpProtocol::HttpJson, endpoint, true)).await;
    assert_eq!(received.protocol, Protocol::HttpJson);
    assert!(received.gzip);
    assert_user_headers(&received);
    assert_eq!(received.header("content-type"), Some("application/json"));
}

/// OTLP/JSON: lowerCamelCase names, 64-bit integers as strings, enums as numbers.
#[test]
fn json_body_follows_the_otlp_json_encoding() {
    let json = serde_json::to_value(request()).unwrap();
    let resource = &json["resourceMetrics"][0];
    assert!(resource["scopeMetrics"][0]["metrics"].is_array());
    let point = &resource["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0];
    assert_eq!(point["timeUnixNano"], "1700000060123456789");
    assert_eq!(point["asInt"], "1");
    assert_eq!(
        resource["resource"]["attributes"][0]["value"]["stringValue"],
        "web-1"
    );
}

// ---------------------------------------------------------------------------------------------
// Logs

/// Two targets' state changes, as the logs translation shapes them: a resource per target,
/// scope `supervisord-receiver`, records with an event name, severity, attributes and a body.
fn logs_resources() -> Vec<ResourceLogs> {
    let text = |key: &str, value: &str| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    };
    let record =
        |time: u64, severity: SeverityNumber, text_severity: &str, process: &str| LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time + 5,
            severity_number: severity as i32,
            severity_text: text_severity.into(),
            event_name: "supervisord.process.state_change".into(),
            attributes: vec![
                text("supervisord_process", process),
                text("state", "BACKOFF"),
                KeyValue {
                    key: "pid".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(4242)),
                    }),
                    ..Default::default()
                },
            ],
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "{process} is BACKOFF (was STARTING)"
                ))),
            }),
            ..Default::default()
        };
    let resource = |server: &str, records: Vec<LogRecord>| ResourceLogs {
        resource: Some(Resource {
            attributes: vec![text("supervisor_server", server), text("env", "prod")],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: "supervisord-receiver".into(),
                version: "0.1.0".into(),
                ..Default::default()
            }),
            log_records: records,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    };
    vec![
        resource(
            "web-1",
            vec![
                record(
                    1_700_000_000_000_000_001,
                    SeverityNumber::Warn,
                    "WARN",
                    "web_00",
                ),
                record(
                    1_700_000_000_000_000_002,
                    SeverityNumber::Error,
                    "ERROR",
                    "web_01",
                ),
            ],
        ),
        resource(
            "db-1",
            vec![record(
                1_700_000_000_000_000_003,
                SeverityNumber::Info,
                "INFO",
                "pg",
            )],
        ),
    ]
}

fn logs_request() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: logs_resources(),
    }
}

/// Exports the logs request once to the sink and returns what it decoded.
async fn export_logs_to_sink(sink: &OtlpSink, settings: OtlpSettings) -> ReceivedLogs {
    let sent = logs_request();
    exporter(settings)
        .export_logs(&sent)
        .await
        .expect("export succeeds");
    let received = tokio::task::block_in_place(|| sink.wait_for_logs(|r| !r.is_empty(), WAIT));
    assert_eq!(received.len(), 1, "one export, one request");
    assert!(
        sink.requests().is_empty(),
        "nothing went to the metrics service"
    );
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());
    let received = received.into_iter().next().unwrap();
    assert_eq!(
        received.request, sent,
        "the sink decoded exactly what was built"
    );
    let records = otlp_sink::all_records(std::slice::from_ref(&received));
    let servers: Vec<_> = records.iter().map(|r| r.server().unwrap()).collect();
    assert_eq!(servers, ["web-1", "web-1", "db-1"]);
    assert_eq!(records[1].attr("supervisord_process"), Some("web_01"));
    assert_eq!(records[1].attr("pid"), Some("4242"));
    assert_eq!(records[1].severity_text, "ERROR");
    assert_eq!(records[1].body, "web_01 is BACKOFF (was STARTING)");
    assert_eq!(records[2].resource_attr("env"), Some("prod"));
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_over_grpc() {
    for gzip in [false, true] {
        let sink = OtlpSink::start();
        let received =
            export_logs_to_sink(&sink, otlp(OtlpProtocol::Grpc, sink.grpc_endpoint(), gzip)).await;
        assert_eq!(received.protocol, Protocol::Grpc);
        assert_eq!(received.gzip, gzip);
        assert_eq!(received.header("dd-api-key"), Some(API_KEY));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_over_http_protobuf_and_json() {
    for (protocol, expected, content_type) in [
        (
            OtlpProtocol::HttpProtobuf,
            Protocol::HttpProtobuf,
            "application/x-protobuf",
        ),
        (
            OtlpProtocol::HttpJson,
            Protocol::HttpJson,
            "application/json",
        ),
    ] {
        for gzip in [false, true] {
            let sink = OtlpSink::start();
            let endpoint = format!("{}/v1/metrics", sink.http_endpoint());
            let received = export_logs_to_sink(&sink, otlp(protocol, endpoint, gzip)).await;
            assert_eq!(received.protocol, expected);
            assert_eq!(received.gzip, gzip);
            assert_eq!(received.header("content-type"), Some(content_type));
            assert_eq!(received.header("x-scope-orgid"), Some("tenant-7"));
        }
    }
}

/// OTLP/JSON of logs: lowerCamelCase names, 64-bit integers as strings, enums as numbers.
#[test]
fn logs_json_body_follows_the_otlp_json_encoding() {
    let json = serde_json::to_value(logs_request()).unwrap();
    let record = &json["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(record["timeUnixNano"], "1700000000000000001");
    assert_eq!(record["severityNumber"], SeverityNumber::Warn as i32);
    assert_eq!(record["eventName"], "supervisord.process.state_change");
    assert_eq!(
        record["body"]["stringValue"],
        "web_00 is BACKOFF (was STARTING)"
    );
    assert_eq!(record["attributes"][2]["value"]["intValue"], "4242");
}

#[tokio::test]
async fn logs_partial_success_is_still_success() {
    let addr = fixed_http_reply(
        200,
        &[("content-type", "application/json")],
        br#"{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"too old"}}"#.to_vec(),
    )
    .await;
    let endpoint = format!("http://{addr}/v1/metrics");
    let accepted = exporter(otlp(OtlpProtocol::HttpJson, endpoint, false))
        .export_logs(&logs_request())
        .await
        .expect("a partial success is logged, not failed");
    assert_eq!(accepted.rejected_points, 1);
}

/// Resources written one after the other as field 1, as the application writes a batch.
fn encoded_batch<M: Message>(
    signal: Signal,
    resources: &[M],
    count: impl Fn(&M) -> u64,
) -> EncodedBatch {
    let mut buffer = Vec::new();
    let mut ranges = Vec::new();
    for resource in resources {
        let start = buffer.len();
        prost::encoding::message::encode(1, resource, &mut buffer);
        ranges.push((start..buffer.len(), count(resource)));
    }
    EncodedBatch {
        buffer: Bytes::from(buffer),
        resources: ranges,
        signal,
    }
}

fn logs_batch() -> EncodedBatch {
    encoded_batch(Signal::Logs, &logs_resources(), |rl: &ResourceLogs| {
        rl.scope_logs
            .iter()
            .map(|s| s.log_records.len() as u64)
            .sum()
    })
}

fn metrics_batch() -> EncodedBatch {
    // The counts are what telemetry reports; the sink checks the content.
    encoded_batch(Signal::Metrics, &request().resource_metrics, |_| 1)
}

fn with_signals(mut settings: OtlpSettings, name: &str, signals: &[Signal]) -> OtlpSettings {
    settings.name = name.into();
    settings.signals = signals.to_vec();
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_sends_each_signal_to_its_endpoint_and_only_where_carried() {
    let both_http = OtlpSink::start();
    let both_grpc = OtlpSink::start();
    let metrics_only = OtlpSink::start();
    let http_endpoint = format!("{}/v1/metrics", both_http.http_endpoint());
    let exporters = [
        ExporterSettings::Otlp(with_signals(
            otlp(OtlpProtocol::HttpProtobuf, http_endpoint, true),
            "otlp/http",
            &Signal::ALL,
        )),
        ExporterSettings::Otlp(with_signals(
            otlp(OtlpProtocol::Grpc, both_grpc.grpc_endpoint(), false),
            "otlp/grpc",
            &Signal::ALL,
        )),
        ExporterSettings::Otlp(with_signals(
            otlp(OtlpProtocol::Grpc, metrics_only.grpc_endpoint(), false),
            "otlp/metrics",
            &[Signal::Metrics],
        )),
        ExporterSettings::Debug {
            verbosity: DebugVerbosity::Basic,
        },
    ];
    let telemetry = Arc::new(Telemetry::default());
    let pipeline = ExportPipeline::new(&exporters, telemetry.clone()).expect("pipeline builds");
    let lines = pipeline.describe();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(
        lines[1].starts_with(&format!(
            "otlp http/protobuf {}/v1/logs [otlp/http logs], sending queue in memory",
            both_http.http_endpoint()
        )),
        "{lines:#?}"
    );
    let running = pipeline.start();
    running.dispatch(&logs_batch()).await;
    running.dispatch(&metrics_batch()).await;
    running.finish().await;

    for sink in [&both_http, &both_grpc] {
        let logs = sink.logs();
        assert_eq!(logs.len(), 1, "one logs request");
        assert_eq!(logs[0].request, logs_request());
        let metrics = sink.requests();
        assert_eq!(metrics.len(), 1, "one metrics request");
        assert_eq!(metrics[0].request, request());
        assert!(sink.errors().is_empty(), "{:?}", sink.errors());
    }
    assert!(
        metrics_only.logs().is_empty(),
        "logs kept from a metrics-only backend"
    );
    assert_eq!(metrics_only.requests().len(), 1);
    // Three log records to each of the two exporters carrying logs, and the metrics counts.
    let sent = telemetry
        .export
        .sent_points
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sent, 2 * 3 + 3 * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_queue_keeps_logs_and_metrics_across_a_restart() {
    let mut sink = OtlpSink::start();
    tokio::task::block_in_place(|| sink.stop());
    let storage = tempfile::tempdir().unwrap();
    let endpoint = format!("{}/v1/metrics", sink.http_endpoint());
    let mut settings = otlp(OtlpProtocol::HttpProtobuf, endpoint, false);
    settings.delivery.queue = QueueSettings {
        storage: Some(storage.path().to_path_buf()),
        ..QueueSettings::default()
    };
    settings.delivery.retry = RetrySettings {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(200),
        ..RetrySettings::default()
    };
    let exporters = [ExporterSettings::Otlp(settings)];

    // The backend is down for the whole first run: the stop leaves both batches on disk.
    let pipeline = ExportPipeline::new(&exporters, Arc::new(Telemetry::default())).unwrap();
    let running = pipeline.start();
    running.dispatch(&logs_batch()).await;
    running.dispatch(&metrics_batch()).await;
    running.finish().await;
    let otlp_dir = storage.path().join("otlp");
    assert!(
        otlp_dir.join("queue.redb").is_file(),
        "metrics where they always were"
    );
    assert!(
        otlp_dir.join("logs").join("queue.redb").is_file(),
        "logs beside them"
    );
    assert!(sink.logs().is_empty() && sink.requests().is_empty());

    tokio::task::block_in_place(|| sink.restart());
    let pipeline = ExportPipeline::new(&exporters, Arc::new(Telemetry::default())).unwrap();
    let running = pipeline.start();
    let logs = tokio::task::block_in_place(|| sink.wait_for_logs(|r| !r.is_empty(), WAIT));
    let metrics = tokio::task::block_in_place(|| sink.wait_for(|r| !r.is_empty(), WAIT));
    running.finish().await;
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].request,
        logs_request(),
        "the logs sent after the restart"
    );
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].request, request());
    assert!(sink.errors().is_empty(), "{:?}", sink.errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_retried_like_metrics() {
    let sink = OtlpSink::start_failing_first_logs(2);
    let mut settings = otlp(OtlpProtocol::Grpc, sink.grpc_endpoint(), false);
    settings.delivery.retry = RetrySettings {
        initial_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(50),
        randomization_factor: 0.0,
        ..RetrySettings::default()
    };
    let pipeline = ExportPipeline::new(
        &[ExporterSettings::Otlp(settings)],
        Arc::new(Telemetry::default()),
    )
    .unwrap();
    let running = pipeline.start();
    running.dispatch(&logs_batch()).await;
    let logs = tokio::task::block_in_place(|| sink.wait_for_logs(|r| !r.is_empty(), WAIT));
    running.finish().await;
    assert_eq!(
        sink.failed_logs().len(),
        2,
        "two scripted failures, then success"
    );
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].request, logs_request());
}

// ---------------------------------------------------------------------------------------------
// Failures

/// An HTTP server answering every request with one fixed reply.
async fn fixed_http_reply(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from(body);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let mut response = Response::new(Full::new(body.clone()));
                *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                for (name, value) in headers {
                    response
                        .headers_mut()
                        .insert(*name, hyper::header::HeaderValue::from_static(value));
                }
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// The `google.rpc.Status` an OTLP server puts in error bodies and gRPC status details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

fn rpc_status(code: i32, message: &str, retry_delay_secs: Option<i64>) -> Vec<u8> {
    let details = retry_delay_secs
        .map(|seconds| ProtoAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds, nanos: 0 }),
            }
            .encode_to_vec(),
        })
        .into_iter()
        .collect();
    RpcStatus {
        code,
        message: message.into(),
        details,
    }
    .encode_to_vec()
}

async fn export_http_error(addr: SocketAddr, protocol: OtlpProtocol) -> ExportError {
    let endpoint = format!("http://{addr}/v1/metrics");
    exporter(otlp(protocol, endpoint, false))
        .export(&request())
        .await
        .expect_err("the server refuses")
}

#[tokio::test]
async fn http_503_is_retryable_with_retry_after() {
    let addr = fixed_http_reply(
        503,
        &[
            ("content-type", "application/x-protobuf"),
            ("retry-after", "3"),
        ],
        rpc_status(14, "ingest overloaded", None),
    )
    .await;
    let err = export_http_error(addr, OtlpProtocol::HttpProtobuf).await;
    assert!(
        matches!(&err, ExportError::HttpStatus { status: 503, message, .. } if message == "ingest overloaded"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.retry_delay(), Some(Duration::from_secs(3)));
    assert_eq!(
        err.to_string(),
        format!("OTLP export to http://{addr}/v1/metrics failed: HTTP 503: ingest overloaded")
    );
}

#[tokio::test]
async fn http_400_is_not_retryable_and_hides_headers() {
    let addr = fixed_http_reply(
        400,
        &[("content-type", "application/json")],
        br#"{"code":3,"message":"metric name is invalid"}"#.to_vec(),
    )
    .await;
    let err = export_http_error(addr, OtlpProtocol::HttpJson).await;
    assert!(
        matches!(&err, ExportError::HttpStatus { status: 400, message, .. } if message == "metric name is invalid"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains(API_KEY));
}

#[tokio::test]
async fn http_error_without_otlp_body_uses_the_text() {
    let addr = fixed_http_reply(
        502,
        &[("content-type", "text/html")],
        b"Bad gateway".to_vec(),
    )
    .await;
    let err = export_http_error(addr, OtlpProtocol::HttpProtobuf).await;
    assert!(
        matches!(&err, ExportError::HttpStatus { status: 502, message, .. } if message == "Bad gateway"),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn http_partial_success_is_still_success() {
    let addr = fixed_http_reply(
        200,
        &[("content-type", "application/json")],
        br#"{"partialSuccess":{"rejectedDataPoints":"2","errorMessage":"too old"}}"#.to_vec(),
    )
    .await;
    let endpoint = format!("http://{addr}/v1/metrics");
    exporter(otlp(OtlpProtocol::HttpJson, endpoint, false))
        .export(&request())
        .await
        .expect("a partial success is logged, not failed");
}

#[tokio::test]
async fn http_unanswered_request_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections without ever answering.
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            streams.push(stream);
        }
    });
    let mut settings = otlp(
        OtlpProtocol::HttpProtobuf,
        format!("http://{addr}/v1/metrics"),
        false,
    );
    settings.timeout = Duration::from_millis(300);
    let err = exporter(settings)
        .export(&request())
        .await
        .expect_err("no answer");
    assert!(matches!(err, ExportError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    held.abort();
}

#[tokio::test]
async fn backend_down_at_start_is_a_retryable_export_error() {
    // Bound then dropped: nothing listens on the port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let grpc = exporter(otlp(OtlpProtocol::Grpc, format!("http://{addr}"), false));
    let err = grpc.export(&request()).await.expect_err("nothing listens");
    assert!(
        matches!(
            err,
            ExportError::Grpc {
                code: tonic::Code::Unavailable,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());

    let http = exporter(otlp(
        OtlpProtocol::HttpProtobuf,
        format!("http://{addr}/v1/metrics"),
        false,
    ));
    let err = http.export(&request()).await.expect_err("nothing listens");
    assert!(matches!(err, ExportError::HttpTransport { .. }), "{err:?}");
    assert!(err.is_retryable());
}

/// A gRPC server refusing every export with one status.
struct RefusingService {
    code: tonic::Code,
    details: Vec<u8>,
}

#[tonic::async_trait]
impl MetricsService for RefusingService {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        Err(tonic::Status::with_details(
            self.code,
            "refused by test",
            Bytes::from(self.details.clone()),
        ))
    }
}

async fn grpc_refusal(code: tonic::Code, details: Vec<u8>) -> ExportError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .add_service(
            MetricsServiceServer::new(RefusingService { code, details })
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        )
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let handle = tokio::spawn(server);
    let err = exporter(otlp(OtlpProtocol::Grpc, format!("http://{addr}"), true))
        .export(&request())
        .await
        .expect_err("the server refuses");
    handle.abort();
    err
}

#[tokio::test]
async fn grpc_status_codes_map_to_retryability() {
    let err = grpc_refusal(tonic::Code::InvalidArgument, Vec::new()).await;
    assert!(
        matches!(&err, ExportError::Grpc { code: tonic::Code::InvalidArgument, message, .. } if message == "refused by test"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains(API_KEY));

    let err = grpc_refusal(tonic::Code::ResourceExhausted, Vec::new()).await;
    assert!(
        !err.is_retryable(),
        "RESOURCE_EXHAUSTED without RetryInfo is final"
    );

    let details = rpc_status(8, "slow down", Some(5));
    let err = grpc_refusal(tonic::Code::ResourceExhausted, details).await;
    assert!(
        err.is_retryable(),
        "RESOURCE_EXHAUSTED with RetryInfo may be retried"
    );
    assert_eq!(err.retry_delay(), Some(Duration::from_secs(5)));
}

// ---------------------------------------------------------------------------------------------
// TLS

struct TestPki {
    ca_file: tempfile::NamedTempFile,
    cert_pem: String,
    key_pem: String,
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it.
fn test_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "export test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut ca_file, ca.pem().as_bytes()).unwrap();
    TestPki {
        ca_file,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// An HTTPS server accepting every export with an empty protobuf response.
async fn https_sink(pki: &TestPki) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that rejects our certificate aborts the handshake; nothing to serve.
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    let body = ExportMetricsServiceResponse::default().encode_to_vec();
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn with_tls(mut settings: OtlpSettings, tls: TlsSettings) -> OtlpSettings {
    settings.tls = tls;
    settings
}

#[tokio::test]
async fn https_trusts_the_configured_ca_only() {
    let pki = test_pki();
    let addr = https_sink(&pki).await;
    let endpoint = format!("https://{addr}/v1/metrics");
    let settings = || otlp(OtlpProtocol::HttpProtobuf, endpoint.clone(), false);

    let err = exporter(settings())
        .export(&request())
        .await
        .expect_err("the test CA is not a system root");
    assert!(matches!(err, ExportError::HttpTransport { .. }), "{err:?}");

    let trusted = with_tls(
        settings(),
        TlsSettings {
            ca_file: Some(pki.ca_file.path().to_path_buf()),
            insecure_skip_verify: false,
            ..TlsSettings::default()
        },
    );
    exporter(trusted)
        .export(&request())
        .await
        .expect("ca_file trusts the server");

    let insecure = with_tls(
        settings(),
        TlsSettings {
            ca_file: None,
            insecure_skip_verify: true,
            ..TlsSettings::default()
        },
    );
    exporter(insecure)
        .export(&request())
        .await
        .expect("verification is off");
}

/// A gRPC server over TLS accepting every export.
async fn grpcs_sink(pki: &TestPki) -> SocketAddr {
    struct Accepting;

    #[tonic::async_trait]
    impl MetricsService for Accepting {
        async fn export(
            &self,
            _request: tonic::Request<ExportMetricsServiceRequest>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = tonic::transport::Identity::from_pem(&pki.cert_pem, &pki.key_pem);
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .unwrap()
        .add_service(MetricsServiceServer::new(Accepting))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    addr
}

#[tokio::test]
async fn grpc_tls_with_ca_file_and_without_verification() {
    let pki = test_pki();
    let addr = grpcs_sink(&pki).await;
    let settings = || otlp(OtlpProtocol::Grpc, format!("https://{addr}"), false);

    let err = exporter(settings())
        .export(&request())
        .await
        .expect_err("the test CA is not a system root");
    assert!(matches!(err, ExportError::Grpc { .. }), "{err:?}");

    let trusted = with_tls(
        settings(),
        TlsSettings {
            ca_file: Some(pki.ca_file.path().to_path_buf()),
            insecure_skip_verify: false,
            ..TlsSettings::default()
        },
    );
    exporter(trusted)
        .export(&request())
        .await
        .expect("ca_file trusts the server");

    let insecure = with_tls(
        settings(),
        TlsSettings {
            ca_file: None,
            insecure_skip_verify: true,
            ..TlsSettings::default()
        },
    );
    exporter(insecure)
        .export(&request())
        .await
        .expect("verification is off");
}
