//! A real OTLP server for tests, of metrics and logs: gRPC (tonic, `MetricsService` and
//! `LogsService`) and HTTP (hyper, `POST /v1/metrics` and `/v1/logs`, protobuf and JSON), all
//! accepting gzip. It keeps every decoded request so tests can check what an exporter sent:
//! metrics in [`OtlpSink::requests`], logs in [`OtlpSink::logs`].
//!
//! The API is synchronous: the servers run on their own thread with their own runtime, so tests
//! need no async runtime of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, NumberDataPoint,
};
use prost::Message;
use tonic::codec::CompressionEncoding;

/// The resource attribute that names the target a point came from.
pub const SERVER_ATTR: &str = "supervisor_server";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub protocol: Protocol,
    /// Lower-case header names, in arrival order (gRPC: the request metadata).
    pub headers: Vec<(String, String)>,
    /// `Content-Encoding: gzip` (HTTP) or `grpc-encoding: gzip` (gRPC).
    pub gzip: bool,
    pub request: ExportMetricsServiceRequest,
}

impl ReceivedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One logs export request as the sink decoded it.
#[derive(Debug, Clone)]
pub struct ReceivedLogs {
    pub protocol: Protocol,
    /// Lower-case header names, in arrival order (gRPC: the request metadata).
    pub headers: Vec<(String, String)>,
    /// `Content-Encoding: gzip` (HTTP) or `grpc-encoding: gzip` (gRPC).
    pub gzip: bool,
    pub request: ExportLogsServiceRequest,
    /// When the sink had the request decoded, before it is stored: the arrival instant the
    /// latency benchmark (`examples/push_latency`) measures to.
    pub received_at: Instant,
}

impl ReceivedLogs {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Received {
    requests: Vec<ReceivedRequest>,
    /// Bodies the sink could not decode: the exporter sent something malformed.
    errors: Vec<String>,
    /// How many more metrics export requests are answered with a retryable failure.
    fail_remaining: usize,
    /// The requests that were answered with a failure (not in `requests`).
    failed: Vec<ReceivedRequest>,
    logs: Vec<ReceivedLogs>,
    /// How many more logs export requests are answered with a retryable failure: counted apart
    /// from the metrics ones, so scripting one signal's failures leaves the other alone.
    logs_fail_remaining: usize,
    failed_logs: Vec<ReceivedLogs>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Received>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a decoded request as received (`true`), or as failed (`false`) while scripted
    /// failures remain.
    fn accept(&self, request: ReceivedRequest) -> bool {
        let mut received = self.lock();
        let accepted = if received.fail_remaining > 0 {
            received.fail_remaining -= 1;
            received.failed.push(request);
            false
        } else {
            received.requests.push(request);
            true
        };
        drop(received);
        self.changed.notify_all();
        accepted
    }

    /// Like [`Shared::accept`], for a logs request.
    fn accept_logs(&self, request: ReceivedLogs) -> bool {
        let mut received = self.lock();
        let accepted = if received.logs_fail_remaining > 0 {
            received.logs_fail_remaining -= 1;
            received.failed_logs.push(request);
            false
        } else {
            received.logs.push(request);
            true
        };
        drop(received);
        self.changed.notify_all();
        accepted
    }

    fn push_error(&self, error: String) {
        self.lock().errors.push(error);
        self.changed.notify_all();
    }
}

pub struct OtlpSink {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A listener on `addr` (port 0: an ephemeral one).
fn bind(addr: SocketAddr) -> std::io::Result<StdTcpListener> {
    let l = StdTcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl OtlpSink {
    /// Binds both servers on 127.0.0.1 ephemeral ports and serves until dropped.
    pub fn start() -> OtlpSink {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener =
            || bind(any).unwrap_or_else(|e| panic!("OTLP sink: cannot bind 127.0.0.1:0: {e}"));
        let grpc_listener = listener();
        let http_listener = listener();
        let addr = |l: &StdTcpListener| {
            l.local_addr()
                .unwrap_or_else(|e| panic!("OTLP sink: local_addr: {e}"))
        };
        let mut sink = OtlpSink {
            grpc_addr: addr(&grpc_listener),
            http_addr: addr(&http_listener),
            shared: Arc::new(Shared::default()),
            shutdown: None,
            thread: None,
        };
        sink.spawn(grpc_listener, http_listener);
        sink
    }

    /// Like [`OtlpSink::start`], but the first `n` metrics export requests (either protocol) are
    /// answered with a retryable failure, as by a backend that is not ready yet: gRPC
    /// `UNAVAILABLE`, HTTP 503. They are recorded in [`OtlpSink::failed`], not in
    /// [`OtlpSink::requests`]. Logs requests are not counted (see
    /// [`OtlpSink::start_failing_first_logs`]).
    pub fn start_failing_first(n: usize) -> OtlpSink {
        let sink = OtlpSink::start();
        sink.shared.lock().fail_remaining = n;
        sink
    }

    /// Like [`OtlpSink::start_failing_first`], for the first `n` logs export requests; they are
    /// recorded in [`OtlpSink::failed_logs`]. Metrics requests are not counted.
    pub fn start_failing_first_logs(n: usize) -> OtlpSink {
        let sink = OtlpSink::start();
        sink.shared.lock().logs_fail_remaining = n;
        sink
    }

    fn spawn(&mut self, grpc_listener: StdTcpListener, http_listener: StdTcpListener) {
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_shared = self.shared.clone();
        let thread = thread::Builder::new()
            .name("otlp-sink".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("OTLP sink: cannot build runtime: {e}"));
                runtime.block_on(serve(
                    grpc_listener,
                    http_listener,
                    thread_shared,
                    shutdown_rx,
                ));
            })
            .unwrap_or_else(|e| panic!("OTLP sink: cannot spawn thread: {e}"));
        self.shutdown = Some(shutdown);
        self.thread = Some(thread);
    }

    /// Takes the backend down: both ports closed (connections refused), after answering what is
    /// in flight, so a request the sink recorded was also acknowledged. What was received is
    /// kept.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Brings the backend back on the same ports, keeping what was received before.
    pub fn restart(&mut self) {
        assert!(self.thread.is_none(), "OTLP sink: restart while running");
        // The ports were ours a moment ago; a busy one is retried briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        let rebind = |addr: SocketAddr| loop {
            match bind(addr) {
                Ok(l) => return l,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("OTLP sink: cannot bind {addr} again: {e}"),
            }
        };
        let grpc_listener = rebind(self.grpc_addr);
        let http_listener = rebind(self.http_addr);
        self.spawn(grpc_listener, http_listener);
    }

    pub fn is_running(&self) -> bool {
        self.thread.is_some()
    }

    /// `http://127.0.0.1:PORT`: the gRPC server's base URL.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:PORT`: the HTTP server's base URL, without `/v1/metrics`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Every request decoded so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The requests answered with a scripted failure (see [`OtlpSink::start_failing_first`]),
    /// in arrival order.
    pub fn failed(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().failed.clone()
    }

    /// Bodies that could not be decoded, with the reason.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// Every logs request decoded so far, in arrival order.
    pub fn logs(&self) -> Vec<ReceivedLogs> {
        self.shared.lock().logs.clone()
    }

    /// The logs requests answered with a scripted failure, in arrival order.
    pub fn failed_logs(&self) -> Vec<ReceivedLogs> {
        self.shared.lock().failed_logs.clone()
    }

    /// Waits until `done` holds for the logs requests received so far and returns them; panics
    /// with a summary of what did arrive when `timeout` passes first.
    pub fn wait_for_logs(
        &self,
        done: impl FnMut(&[ReceivedLogs]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedLogs> {
        self.wait_until(|r| &r.logs, summarize_logs, "logs condition", done, timeout)
    }

    /// Waits until `done` holds for the requests received so far and returns them; panics with a
    /// summary of what did arrive when `timeout` passes first.
    pub fn wait_for(
        &self,
        done: impl FnMut(&[ReceivedRequest]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedRequest> {
        self.wait_until(|r| &r.requests, summarize, "condition", done, timeout)
    }

    /// The wait behind [`OtlpSink::wait_for`] and [`OtlpSink::wait_for_logs`], over the list
    /// `list` picks.
    fn wait_until<T: Clone>(
        &self,
        list: impl Fn(&Received) -> &Vec<T>,
        summarize: fn(&[T]) -> String,
        what: &str,
        mut done: impl FnMut(&[T]) -> bool,
        timeout: Duration,
    ) -> Vec<T> {
        let deadline = Instant::now() + timeout;
        let mut received = self.shared.lock();
        loop {
            if done(list(&received)) {
                return list(&received).clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let summary = summarize(list(&received));
                let errors = received.errors.join("\n");
                drop(received);
                panic!(
                    "OTLP sink: {what} not met within {timeout:?}.\nreceived: {summary}\n\
                     undecodable bodies: [{errors}]"
                );
            }
            // Also wake up regularly: a condition may depend on the clock of the caller.
            let wait = (deadline - now).min(Duration::from_millis(250));
            received = self
                .shared
                .changed
                .wait_timeout(received, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl OtlpSink {
    /// Waits until the newest poll of target `server` satisfies `done`, and returns that poll.
    pub fn wait_for_poll(
        &self,
        server: &str,
        mut done: impl FnMut(&Poll) -> bool,
        timeout: Duration,
    ) -> Poll {
        let requests = self.wait_for(|r| done(&latest_poll(r, server)), timeout);
        latest_poll(&requests, server)
    }

    /// Waits for a poll of `server` that reports exactly these processes.
    pub fn wait_for_processes(&self, server: &str, names: &[&str], timeout: Duration) -> Poll {
        let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
        self.wait_for_poll(server, |p| p.process_names() == want, timeout)
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    grpc_listener: StdTcpListener,
    http_listener: StdTcpListener,
    shared: Arc<Shared>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let grpc_listener = tokio::net::TcpListener::from_std(grpc_listener)
        .unwrap_or_else(|e| panic!("OTLP sink: gRPC listener: {e}"));
    let http_listener = tokio::net::TcpListener::from_std(http_listener)
        .unwrap_or_else(|e| panic!("OTLP sink: HTTP listener: {e}"));
    let service = MetricsServiceServer::new(GrpcSink {
        shared: shared.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip);
    let logs_service = LogsServiceServer::new(GrpcSink {
        shared: shared.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut grpc_stopping = stopping.clone();
    let grpc = tonic::transport::Server::builder()
        .add_service(service)
        .add_service(logs_service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener),
            async move {
                let _ = grpc_stopping.changed().await;
            },
        );
    let grpc = tokio::spawn(async move {
        if let Err(e) = grpc.await {
            eprintln!("OTLP sink: gRPC server stopped: {e}");
        }
    });
    let http = tokio::spawn(serve_http(http_listener, shared, stopping));
    let _ = shutdown.await;
    // Graceful: stop accepting, finish the requests in flight, close. Bounded, since a client
    // could hold a connection open; dropping the runtime after this cancels whatever is left.
    let _ = stopping_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = grpc.await;
        let _ = http.await;
    })
    .await;
}

struct GrpcSink {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl MetricsService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = header_pairs(&request.metadata().clone().into_headers());
        let gzip = headers
            .iter()
            .any(|(k, v)| k == "grpc-encoding" && v.eq_ignore_ascii_case("gzip"));
        let accepted = self.shared.accept(ReceivedRequest {
            protocol: Protocol::Grpc,
            headers,
            gzip,
            request: request.into_inner(),
        });
        if !accepted {
            return Err(tonic::Status::unavailable("OTLP sink: scripted failure"));
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let headers = header_pairs(&request.metadata().clone().into_headers());
        let gzip = headers
            .iter()
            .any(|(k, v)| k == "grpc-encoding" && v.eq_ignore_ascii_case("gzip"));
        let accepted = self.shared.accept_logs(ReceivedLogs {
            protocol: Protocol::Grpc,
            headers,
            gzip,
            request: request.into_inner(),
            received_at: Instant::now(),
        });
        if !accepted {
            return Err(tonic::Status::unavailable("OTLP sink: scripted failure"));
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let shared = shared.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle_http(req, shared.clone()));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    // Answers the request in flight, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn handle_http(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = http::HeaderValue::from_str(content_type) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    let logs = match (req.method(), req.uri().path()) {
        (&http::Method::POST, "/v1/metrics") => false,
        (&http::Method::POST, "/v1/logs") => true,
        _ => {
            shared.push_error(format!("unexpected {} {}", req.method(), req.uri()));
            return reply(StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec());
        }
    };
    let headers = header_pairs(req.headers());
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let gzip = header("content-encoding") == "gzip";
    let content_type = header("content-type");
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            shared.push_error(format!("cannot read body: {e}"));
            return reply(StatusCode::BAD_REQUEST, "text/plain", Vec::new());
        }
    };
    let body = if gzip {
        let mut plain = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain) {
            shared.push_error(format!("bad gzip body: {e}"));
            return reply(StatusCode::BAD_REQUEST, "text/plain", Vec::new());
        }
        plain
    } else {
        body.to_vec()
    };
    let protocol = if content_type.starts_with("application/x-protobuf") {
        Protocol::HttpProtobuf
    } else if content_type.starts_with("application/json") {
        Protocol::HttpJson
    } else {
        shared.push_error(format!("unexpected content-type '{content_type}'"));
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", Vec::new());
    };
    let accepted = if logs {
        match decode_body::<ExportLogsServiceRequest>(protocol, &body) {
            Ok(request) => shared.accept_logs(ReceivedLogs {
                protocol,
                headers,
                gzip,
                request,
                received_at: Instant::now(),
            }),
            Err(e) => {
                shared.push_error(format!("{protocol:?} logs body does not decode: {e}"));
                return reply(StatusCode::BAD_REQUEST, "text/plain", Vec::new());
            }
        }
    } else {
        match decode_body::<ExportMetricsServiceRequest>(protocol, &body) {
            Ok(request) => shared.accept(ReceivedRequest {
                protocol,
                headers,
                gzip,
                request,
            }),
            Err(e) => {
                shared.push_error(format!("{protocol:?} body does not decode: {e}"));
                return reply(StatusCode::BAD_REQUEST, "text/plain", Vec::new());
            }
        }
    };
    if !accepted {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"OTLP sink: scripted failure".to_vec(),
        );
    }
    if protocol == Protocol::HttpJson {
        reply(StatusCode::OK, "application/json", b"{}".to_vec())
    } else {
        // Both responses encode to nothing when empty; each signal gets its own all the same.
        let body = if logs {
            ExportLogsServiceResponse::default().encode_to_vec()
        } else {
            ExportMetricsServiceResponse::default().encode_to_vec()
        };
        reply(StatusCode::OK, "application/x-protobuf", body)
    }
}

/// A request body as protobuf or OTLP/JSON.
fn decode_body<T>(protocol: Protocol, body: &[u8]) -> Result<T, String>
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    if protocol == Protocol::HttpJson {
        serde_json::from_slice::<T>(body).map_err(|e| e.to_string())
    } else {
        T::decode(body).map_err(|e| e.to_string())
    }
}

/// One number data point, flattened with its metric name and resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: String,
    pub resource_attrs: BTreeMap<String, String>,
    pub attrs: BTreeMap<String, String>,
    /// Double values are truncated: every metric of this project is an integer.
    pub value: i64,
    pub time_unix_nano: u64,
}

impl Point {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }

    pub fn resource_attr(&self, key: &str) -> Option<&str> {
        self.resource_attrs.get(key).map(String::as_str)
    }

    /// The target this point came from.
    pub fn server(&self) -> Option<&str> {
        self.resource_attr(SERVER_ATTR)
    }

    /// Every `(key, value)` is among the point attributes.
    pub fn has_attrs(&self, wanted: &[(&str, &str)]) -> bool {
        wanted.iter().all(|(k, v)| self.attr(k) == Some(*v))
    }
}

/// Renders an attribute value the way tests compare it.
pub fn any_value_string(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attr_map(attrs: &[KeyValue]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
        .collect()
}

fn number_points(data: Option<&metric::Data>) -> &[NumberDataPoint] {
    match data {
        Some(metric::Data::Gauge(g)) => &g.data_points,
        Some(metric::Data::Sum(s)) => &s.data_points,
        _ => &[],
    }
}

/// Every number point (gauges and sums) of every metric, in arrival order; histograms are in
/// [`histogram_points`].
pub fn all_points(requests: &[ReceivedRequest]) -> Vec<Point> {
    let mut out = Vec::new();
    for received in requests {
        for rm in &received.request.resource_metrics {
            let resource_attrs = rm
                .resource
                .as_ref()
                .map(|r| attr_map(&r.attributes))
                .unwrap_or_default();
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    for dp in number_points(m.data.as_ref()) {
                        let value = match dp.value {
                            Some(number_data_point::Value::AsInt(i)) => i,
                            Some(number_data_point::Value::AsDouble(d)) => d as i64,
                            None => continue,
                        };
                        out.push(Point {
                            metric: m.name.clone(),
                            resource_attrs: resource_attrs.clone(),
                            attrs: attr_map(&dp.attributes),
                            value,
                            time_unix_nano: dp.time_unix_nano,
                        });
                    }
                }
            }
        }
    }
    out
}

/// One explicit-bucket histogram data point, flattened with its metric, scope and resource.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub metric: String,
    pub unit: String,
    pub scope: String,
    pub resource_attrs: BTreeMap<String, String>,
    pub attrs: BTreeMap<String, String>,
    /// `true` for cumulative, `false` for delta.
    pub cumulative: bool,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Upper bounds of the buckets; `bucket_counts` has one more entry (up to +Inf).
    pub explicit_bounds: Vec<f64>,
    pub bucket_counts: Vec<u64>,
}

impl HistogramPoint {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// Every histogram point of every metric, in arrival order.
pub fn histogram_points(requests: &[ReceivedRequest]) -> Vec<HistogramPoint> {
    let mut out = Vec::new();
    for received in requests {
        for rm in &received.request.resource_metrics {
            let resource_attrs = rm
                .resource
                .as_ref()
                .map(|r| attr_map(&r.attributes))
                .unwrap_or_default();
            for sm in &rm.scope_metrics {
                let scope = sm
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for m in &sm.metrics {
                    let Some(metric::Data::Histogram(histogram)) = &m.data else {
                        continue;
                    };
                    let cumulative = histogram.aggregation_temporality
                        == AggregationTemporality::Cumulative as i32;
                    for dp in &histogram.data_points {
                        out.push(HistogramPoint {
                            metric: m.name.clone(),
                            unit: m.unit.clone(),
                            scope: scope.clone(),
                            resource_attrs: resource_attrs.clone(),
                            attrs: attr_map(&dp.attributes),
                            cumulative,
                            start_time_unix_nano: dp.start_time_unix_nano,
                            time_unix_nano: dp.time_unix_nano,
                            count: dp.count,
                            sum: dp.sum,
                            min: dp.min,
                            max: dp.max,
                            explicit_bounds: dp.explicit_bounds.clone(),
                            bucket_counts: dp.bucket_counts.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Every point of one metric, in arrival order.
pub fn points(requests: &[ReceivedRequest], metric_name: &str) -> Vec<Point> {
    all_points(requests)
        .into_iter()
        .filter(|p| p.metric == metric_name)
        .collect()
}

/// The metric names received so far.
pub fn metric_names(requests: &[ReceivedRequest]) -> BTreeSet<String> {
    all_points(requests).into_iter().map(|p| p.metric).collect()
}

/// Every point of the most recent poll of one target: all points of one poll share a timestamp.
pub fn latest_poll(requests: &[ReceivedRequest], server: &str) -> Poll {
    let mine: Vec<Point> = all_points(requests)
        .into_iter()
        .filter(|p| p.server() == Some(server))
        .collect();
    let newest = mine.iter().map(|p| p.time_unix_nano).max().unwrap_or(0);
    Poll {
        points: mine
            .into_iter()
            .filter(|p| p.time_unix_nano == newest)
            .collect(),
    }
}

/// Every poll of one target, oldest first.
pub fn polls(requests: &[ReceivedRequest], server: &str) -> Vec<Poll> {
    let mut by_time: BTreeMap<u64, Vec<Point>> = BTreeMap::new();
    for p in all_points(requests) {
        if p.server() == Some(server) {
            by_time.entry(p.time_unix_nano).or_default().push(p);
        }
    }
    by_time
        .into_values()
        .map(|points| Poll { points })
        .collect()
}

/// The points of one poll of one target.
#[derive(Debug, Clone, Default)]
pub struct Poll {
    pub points: Vec<Point>,
}

impl Poll {
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn metric(&self, name: &str) -> Vec<&Point> {
        self.points.iter().filter(|p| p.metric == name).collect()
    }

    /// The single point of `metric` carrying all `attrs`; `None` when absent, panics when
    /// ambiguous (two series with the same identity is a bug worth seeing).
    pub fn value(&self, metric: &str, attrs: &[(&str, &str)]) -> Option<i64> {
        let found: Vec<&Point> = self
            .points
            .iter()
            .filter(|p| p.metric == metric && p.has_attrs(attrs))
            .collect();
        assert!(
            found.len() <= 1,
            "{} points of {metric} match {attrs:?}: {found:#?}",
            found.len()
        );
        found.first().map(|p| p.value)
    }

    /// Like [`Poll::value`], but the point must exist.
    pub fn expect(&self, metric: &str, attrs: &[(&str, &str)]) -> i64 {
        self.value(metric, attrs).unwrap_or_else(|| {
            panic!(
                "no point of {metric} with {attrs:?} in the poll:\n{}",
                self.describe()
            )
        })
    }

    /// The process names (`supervisord_process`) this poll reports, sorted.
    pub fn process_names(&self) -> BTreeSet<String> {
        self.points
            .iter()
            .filter_map(|p| p.attr("supervisord_process").map(str::to_string))
            .collect()
    }

    /// The resource attributes of the poll (all its points share one resource).
    pub fn resource_attrs(&self) -> BTreeMap<String, String> {
        self.points
            .first()
            .map(|p| p.resource_attrs.clone())
            .unwrap_or_default()
    }

    /// One line per point, for panic messages.
    pub fn describe(&self) -> String {
        self.points
            .iter()
            .map(|p| format!("  {} {:?} = {}", p.metric, p.attrs, p.value))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One line per request: protocol, gzip, and metric names with point counts.
pub fn summarize(requests: &[ReceivedRequest]) -> String {
    if requests.is_empty() {
        return "no requests".to_string();
    }
    requests
        .iter()
        .map(|r| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for h in histogram_points(std::slice::from_ref(r)) {
                let server = h.attr(SERVER_ATTR).unwrap_or("?").to_string();
                *counts
                    .entry(format!("{}@{server} (histogram)", h.metric))
                    .or_default() += 1;
            }
            for p in all_points(std::slice::from_ref(r)) {
                let mut key = format!("{}@{}", p.metric, p.server().unwrap_or("?"));
                // The one value that explains most failed waits.
                if p.metric == "supervisord.can_connect" {
                    key.push_str(&format!("={}", p.value));
                }
                *counts.entry(key).or_default() += 1;
            }
            format!("\n  {:?} gzip={} {:?}", r.protocol, r.gzip, counts)
        })
        .collect()
}

/// One log record, flattened with its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub resource_attrs: BTreeMap<String, String>,
    pub scope: String,
    pub attrs: BTreeMap<String, String>,
    pub event_name: String,
    pub severity_text: String,
    pub severity_number: i32,
    /// The body rendered as [`any_value_string`] renders attribute values.
    pub body: String,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
}

impl Record {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }

    pub fn resource_attr(&self, key: &str) -> Option<&str> {
        self.resource_attrs.get(key).map(String::as_str)
    }

    /// The target this record came from.
    pub fn server(&self) -> Option<&str> {
        self.resource_attr(SERVER_ATTR)
    }
}

/// Every log record of every logs request, in arrival order.
pub fn all_records(requests: &[ReceivedLogs]) -> Vec<Record> {
    let mut out = Vec::new();
    for received in requests {
        for rl in &received.request.resource_logs {
            let resource_attrs = rl
                .resource
                .as_ref()
                .map(|r| attr_map(&r.attributes))
                .unwrap_or_default();
            for sl in &rl.scope_logs {
                let scope = sl
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for record in &sl.log_records {
                    out.push(Record {
                        resource_attrs: resource_attrs.clone(),
                        scope: scope.clone(),
                        attrs: attr_map(&record.attributes),
                        event_name: record.event_name.clone(),
                        severity_text: record.severity_text.clone(),
                        severity_number: record.severity_number,
                        body: any_value_string(record.body.as_ref()),
                        time_unix_nano: record.time_unix_nano,
                        observed_time_unix_nano: record.observed_time_unix_nano,
                    });
                }
            }
        }
    }
    out
}

/// One line per logs request: protocol, gzip, and event names per target with record counts.
pub fn summarize_logs(requests: &[ReceivedLogs]) -> String {
    if requests.is_empty() {
        return "no logs requests".to_string();
    }
    requests
        .iter()
        .map(|r| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for record in all_records(std::slice::from_ref(r)) {
                let key = format!("{}@{}", record.event_name, record.server().unwrap_or("?"));
                *counts.entry(key).or_default() += 1;
            }
            format!("\n  {:?} gzip={} {:?}", r.protocol, r.gzip, counts)
        })
        .collect()
}
