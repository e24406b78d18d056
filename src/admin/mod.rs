//! The health endpoint: `GET /healthz` on a local port (native `health:`), for liveness probes
//! and supervisors of the receiver itself.
//!
//! 200 with a JSON status while the receiver gets its data out, 503 with the same status and a
//! `reason` once every export has failed for longer than `unhealthy_after`. The rules are in
//! [`health`]; this module only serves them, with bounds so that a misbehaving client cannot
//! hold resources: a few connections at a time, no keep-alive, headers within 5 s, the whole
//! exchange within 10 s.
//!
//! The same port serves `GET /metrics`: every target's latest metrics in the OpenMetrics text
//! format, for a Prometheus without a collector ([`openmetrics`]). The first request turns the
//! recording of the latest metrics on.
//!
//! The admin endpoint (native `admin:`, [`server`]) serves this same handler beside the gRPC
//! status API ([`status`], generated into [`api`] from `proto/`) on one listener, TCP or UNIX
//! socket; `health:` is its older form, kept as it was.
pub mod api;
pub mod health;
pub mod openmetrics;
pub mod server;
pub mod status;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};

use crate::clock::unix_nanos_now;
use crate::settings::HealthSettings;
use crate::telemetry::Telemetry;

pub const PATH: &str = "/healthz";
/// The targets' latest metrics, in the OpenMetrics text format.
pub const METRICS_PATH: &str = "/metrics";

/// Connections served at once; more are closed at once (a probe retries).
const MAX_CONNECTIONS: usize = 8;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("health endpoint {endpoint}: cannot listen: {source}")]
pub struct AdminError {
    endpoint: SocketAddr,
    source: std::io::Error,
}

/// A bound, not yet serving, health endpoint: binding happens at start so a taken port is a
/// start-up error, not a log line later.
#[derive(Debug)]
pub struct HealthServer {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    unhealthy_after: Duration,
    telemetry: Arc<Telemetry>,
}

impl HealthServer {
    pub fn bind(
        settings: &HealthSettings,
        telemetry: Arc<Telemetry>,
    ) -> Result<HealthServer, AdminError> {
        let error = |source| AdminError {
            endpoint: settings.endpoint,
            source,
        };
        let listener = std::net::TcpListener::bind(settings.endpoint).map_err(error)?;
        listener.set_nonblocking(true).map_err(error)?;
        let local_addr = listener.local_addr().map_err(error)?;
        Ok(HealthServer {
            listener,
            local_addr,
            unhealthy_after: settings.unhealthy_after,
            telemetry,
        })
    }

    /// The address actually bound (port 0 in the settings picks one).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `stop` turns true.
    pub async fn serve(self, stop: watch::Receiver<bool>) {
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(event = "health_failed", "health endpoint: {error}");
                return;
            }
        };
        tracing::info!(
            event = "health_listening",
            "health endpoint listening on http://{}{PATH}",
            self.local_addr
        );
        let state = Arc::new(State {
            telemetry: self.telemetry,
            unhealthy_after: self.unhealthy_after,
        });
        let accept = || async { listener.accept().await.map(|(stream, _)| stream) };
        accept_until_stopped("health endpoint", stop, accept, move |stream| {
            let state = Arc::clone(&state);
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(state.answer(request).await) }
            });
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
        })
        .await;
    }
}

/// Accepts connections until `stop` turns true and serves each on a task of its own, as both
/// endpoints bound them: [`MAX_CONNECTIONS`] at a time (more are closed at once), each within
/// [`CONNECTION_TIMEOUT`]. `endpoint` names the endpoint in the log.
async fn accept_until_stopped<S, A, C>(
    endpoint: &str,
    mut stop: watch::Receiver<bool>,
    accept: impl Fn() -> A,
    serve: impl Fn(S) -> C,
) where
    A: Future<Output = std::io::Result<S>>,
    C: Future + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = accept() => accepted,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::debug!("{endpoint}: accept: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let connection = serve(stream);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            drop(slot);
        });
    }
}

struct State {
    telemetry: Arc<Telemetry>,
    unhealthy_after: Duration,
}

impl State {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        if path != PATH && path != METRICS_PATH {
            return text(
                StatusCode::NOT_FOUND,
                "not found; try /healthz or /metrics\n",
            );
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
            response.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET, HEAD"),
            );
            return response;
        }
        if path == METRICS_PATH {
            return metrics(&self.telemetry).await;
        }
        let report = health::report(&self.telemetry, self.unhealthy_after, unix_nanos_now());
        let status = if report.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut body = report.body.to_string();
        body.push('\n');
        respond(status, "application/json", body)
    }
}

/// `/metrics`: turns the recording on (targets appear from their next poll) and renders what is
/// recorded.
async fn metrics(telemetry: &Telemetry) -> Response<Full<Bytes>> {
    telemetry.latest.enable();
    match openmetrics::render_off_thread(Arc::clone(&telemetry.latest)).await {
        Some(body) => respond(StatusCode::OK, openmetrics::CONTENT_TYPE, body),
        None => text(StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use tokio::task::JoinHandle;

    use super::*;

    pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(10);

    /// A plain HTTP/1.1 exchange over a std socket, TCP or UNIX: what a probe does.
    pub(super) fn ask(mut stream: impl Read + Write, request: &str) -> String {
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    fn get(addr: SocketAddr, request: &str) -> String {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        ask(stream, request)
    }

    /// A health server on a free local port (1 s to unhealthy), serving until told to stop.
    fn start(telemetry: &Arc<Telemetry>) -> (SocketAddr, watch::Sender<bool>, JoinHandle<()>) {
        let settings = HealthSettings {
            endpoint: SocketAddr::from(([127, 0, 0, 1], 0)),
            unhealthy_after: Duration::from_secs(1),
        };
        let server = HealthServer::bind(&settings, Arc::clone(telemetry)).unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let (stop_tx, stop_rx) = watch::channel(false);
        (addr, stop_tx, tokio::spawn(server.serve(stop_rx)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_status_and_refuses_the_rest() {
        let telemetry = Arc::new(Telemetry::default());
        telemetry.polls.register("web");
        let (addr, stop_tx, serving) = start(&telemetry);

        let exchange =
            |request: &'static str| tokio::task::spawn_blocking(move || get(addr, request));
        let ok = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("content-type: application/json"), "{ok}");
        assert!(ok.contains(r#""status":"ok""#), "{ok}");
        assert!(ok.contains(r#""name":"web""#), "{ok}");

        telemetry.export.record_attempt(false, 1);
        let failing = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(
            failing.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{failing}"
        );
        assert!(failing.contains(r#""status":"unhealthy""#), "{failing}");

        let missing = exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = exchange("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );

        let _ = stop_tx.send(true);
        serving.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_latest_metrics_once_asked_for() {
        let telemetry = Arc::new(Telemetry::default());
        telemetry.latest.register("web");
        let (addr, stop_tx, serving) = start(&telemetry);
        let exchange =
            |request: &'static str| tokio::task::spawn_blocking(move || get(addr, request));

        assert!(!telemetry.latest.is_enabled());
        let first = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        assert!(
            first.contains(&format!("content-type: {}\r\n", openmetrics::CONTENT_TYPE)),
            "{first}"
        );
        assert!(
            first.ends_with("\r\n\r\n# EOF\n"),
            "nothing recorded yet: {first}"
        );
        assert!(
            telemetry.latest.is_enabled(),
            "the first request turns recording on"
        );

        // What the pipeline records for a poll of `web` that failed.
        let failed = crate::scrape::outcome::PollOutcome {
            target: Arc::new(crate::scrape::outcome::TargetIdentity {
                name: "web".into(),
                attributes: Vec::new(),
                point_attributes: Vec::new(),
            }),
            time_unix_nano: 1,
            result: Err("refused".into()),
        };
        let mut buffer = Vec::new();
        crate::metrics::encode_resource_metrics(&failed, &Default::default(), &mut buffer);
        telemetry.latest.record([("web", Bytes::from(buffer))]);
        let second = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(
            second.contains("\nsupervisord_can_connect_ratio{") && second.ends_with("} 0\n# EOF\n"),
            "{second}"
        );
        let head = exchange("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body: {head}");

        let _ = stop_tx.send(true);
        serving.await.unwrap();
    }

    #[test]
    fn a_taken_port_is_a_start_up_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let settings = HealthSettings {
            endpoint: taken.local_addr().unwrap(),
            unhealthy_after: Duration::from_secs(1),
        };
        let error = HealthServer::bind(&settings, Arc::default()).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "health endpoint {}: cannot listen: ",
                settings.endpoint
            )),
            "{error}"
        );
    }
}
