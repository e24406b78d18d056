//! The admin endpoint (native `admin:`): one listener, on a TCP address or a UNIX socket, that
//! serves the gRPC `Status` service ([`super::status`]) and, on plain HTTP/1.1, the same
//! handler as the health endpoint: `GET /healthz` and `GET /metrics`.
//!
//! hyper-util's auto connection reads the first bytes of a connection: the HTTP/2 preface
//! makes it an HTTP/2 connection (gRPC), anything else HTTP/1.1. A request is gRPC when it
//! came over HTTP/2 with an `application/grpc` content type; every other request goes to the
//! HTTP handler. Bounded as the health endpoint is: a few connections at a time (more are
//! closed at once), HTTP/1.1 headers within 5 s and no keep-alive, a few HTTP/2 streams per
//! connection, the whole connection within 10 s, requests of at most 4 KiB.
//!
//! A UNIX socket is created with its permissions set before it listens (so no one connects
//! through wider ones), and removed on stop. A stale socket left by a receiver that died is
//! replaced; a live one, or a file that is not a socket, is a start-up error.

use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::settings::{AdminEndpoint, AdminSettings};
use crate::telemetry::Telemetry;

use super::api::v1::status_server::StatusServer;
use super::status::StatusService;
use super::{accept_until_stopped, State, HEADER_TIMEOUT};

/// HTTP/2 streams (gRPC calls) at once on one connection.
const MAX_STREAMS: u32 = 4;
/// A `GetStatusRequest` is empty; this leaves room for options added later.
const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// The report of a fleet of 10,000 targets is about 2 MB.
pub const MAX_REPORT_BYTES: usize = 64 * 1024 * 1024;
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("admin endpoint {endpoint}: cannot listen: {reason}")]
pub struct AdminServerError {
    endpoint: String,
    reason: String,
}

/// A bound, not yet serving, admin endpoint: binding happens at start so a taken port or an
/// unusable socket path is a start-up error, not a log line later.
#[derive(Debug)]
pub struct AdminServer {
    listener: Bound,
    /// The bound address as `status --admin` takes it (`127.0.0.1:8787`, `unix:///path`).
    local: String,
    unhealthy_after: Duration,
    telemetry: Arc<Telemetry>,
}

#[derive(Debug)]
enum Bound {
    Tcp(std::net::TcpListener),
    Unix {
        listener: tokio::net::UnixListener,
        file: SocketFile,
    },
}

/// The socket file this receiver created: removed on drop, unless something else has replaced
/// it meanwhile.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.dev && meta.ino() == self.ino);
        if ours {
            if let Err(error) = std::fs::remove_file(&self.path) {
                tracing::warn!(
                    "admin endpoint: cannot remove {}: {error}",
                    self.path.display()
                );
            }
        }
    }
}

impl AdminServer {
    /// Binds the endpoint. A UNIX socket needs the Tokio runtime (its listener registers with
    /// it); `run` and `listen` bind inside it.
    pub fn bind(
        settings: &AdminSettings,
        telemetry: Arc<Telemetry>,
    ) -> Result<AdminServer, AdminServerError> {
        let shown = settings.endpoint.display();
        let error = |reason: String| AdminServerError {
            endpoint: shown.clone(),
            reason,
        };
        let (listener, local) = match &settings.endpoint {
            AdminEndpoint::Tcp(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| error(e.to_string()))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| error(e.to_string()))?
                    .to_string();
                (Bound::Tcp(listener), local)
            }
            AdminEndpoint::Unix { path, mode } => {
                let (listener, file) = bind_unix(path, *mode).map_err(error)?;
                (Bound::Unix { listener, file }, shown.clone())
            }
        };
        Ok(AdminServer {
            listener,
            local,
            unhealthy_after: settings.unhealthy_after,
            telemetry,
        })
    }

    /// The address actually bound, as `status --admin` takes it (port 0 in the settings picks
    /// one).
    pub fn local_addr(&self) -> &str {
        &self.local
    }

    /// Serves until `stop` turns true; then a UNIX socket file is removed.
    pub async fn serve(self, stop: watch::Receiver<bool>) {
        let local = self.local;
        let (listener, _file) = match self.listener {
            Bound::Tcp(listener) => match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => (Listener::Tcp(listener), None),
                Err(error) => {
                    tracing::error!(event = "admin_failed", "admin endpoint {local}: {error}");
                    return;
                }
            },
            Bound::Unix { listener, file } => (Listener::Unix(listener), Some(file)),
        };
        tracing::info!(
            event = "admin_listening",
            "admin endpoint listening on {local}: status API (gRPC), /healthz, /metrics"
        );
        let state = Arc::new(State {
            telemetry: Arc::clone(&self.telemetry),
            unhealthy_after: self.unhealthy_after,
        });
        let grpc = StatusServer::new(StatusService::new(self.telemetry, self.unhealthy_after))
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_REPORT_BYTES);
        let accept = || listener.accept();
        accept_until_stopped("admin endpoint", stop, accept, move |stream| {
            let (state, grpc) = (Arc::clone(&state), grpc.clone());
            async move {
                match stream {
                    Stream::Tcp(stream) => connection(stream, state, grpc).await,
                    Stream::Unix(stream) => connection(stream, state, grpc).await,
                }
            }
        })
        .await;
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
        }
    }
}

/// Serves one connection: gRPC to the status service, the rest to the HTTP handler.
async fn connection<I>(io: I, state: Arc<State>, grpc: StatusServer<StatusService>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        let mut grpc = grpc.clone();
        async move {
            if is_grpc(&request) {
                tower_service::Service::call(&mut grpc, request).await
            } else {
                Ok::<_, Infallible>(state.answer(request).await.map(tonic::body::Body::new))
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_BYTES);
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

/// gRPC is HTTP/2 with an `application/grpc` content type (`application/grpc+proto` too).
fn is_grpc(request: &Request<Incoming>) -> bool {
    request.version() == http::Version::HTTP_2
        && request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Creates the socket, sets its file's permissions, then listens: no connection is accepted
/// through wider permissions than `mode`.
fn bind_unix(path: &Path, mode: u32) -> Result<(tokio::net::UnixListener, SocketFile), String> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err("a UNIX socket is bound inside the async runtime".into());
    }
    clear_stale(path)?;
    let socket = tokio::net::UnixSocket::new_stream().map_err(|e| e.to_string())?;
    socket.bind(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{e}: the directory {} does not exist (systemd: RuntimeDirectory=)",
            path.parent().unwrap_or(Path::new("/")).display()
        ),
        _ => e.to_string(),
    })?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set mode {mode:04o}: {e}"))?;
    let listener = socket.listen(1024).map_err(|e| e.to_string())?;
    Ok((listener, file))
}

/// Removes the socket a receiver that died left behind (nothing answers on it); refuses to
/// touch a live socket or any other kind of file.
fn clear_stale(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket (not removed)",
            path.display()
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(format!(
            "another process serves on {} (a receiver already running?)",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(
                "admin endpoint: removing the stale socket {} (nothing answers on it)",
                path.display()
            );
            std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket: {e}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A tonic connector to the admin endpoint's UNIX socket at this path: how a client (`status`)
/// reaches it.
#[derive(Debug, Clone)]
pub struct UnixConnector(pub PathBuf);

impl tower_service::Service<http::Uri> for UnixConnector {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(TokioIo::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::api::v1;
    use crate::admin::tests::{ask, READ_TIMEOUT};

    fn get_unix(path: &Path, request: &str) -> String {
        let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        ask(stream, request)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unix_socket_serves_grpc_and_http_and_is_removed_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let telemetry = Arc::new(Telemetry::default());
        telemetry
            .polls
            .register_target("web", "http://127.0.0.1:9001");
        let settings = AdminSettings {
            endpoint: AdminEndpoint::Unix {
                path: path.clone(),
                mode: 0o640,
            },
            unhealthy_after: Duration::from_secs(60),
        };
        let server = AdminServer::bind(&settings, Arc::clone(&telemetry)).unwrap();
        assert_eq!(server.local_addr(), format!("unix://{}", path.display()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let (stop_tx, stop_rx) = watch::channel(false);
        let serving = tokio::spawn(server.serve(stop_rx));

        let socket = path.clone();
        let health = tokio::task::spawn_blocking(move || {
            get_unix(&socket, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        })
        .await
        .unwrap();
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.contains(r#""name":"web""#), "{health}");

        let socket = path.clone();
        let channel = tonic::transport::Endpoint::from_static("http://admin")
            .connect_with_connector(UnixConnector(socket))
            .await
            .unwrap();
        let report = v1::status_client::StatusClient::new(channel)
            .get_status(v1::GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.targets.len(), 1);
        assert_eq!(report.targets[0].endpoint, "http://127.0.0.1:9001");
        assert!(report.health.unwrap_or_default().healthy);

        let _ = stop_tx.send(true);
        serving.await.unwrap();
        assert!(!path.exists(), "the socket is removed on stop");
    }

    #[tokio::test]
    async fn a_live_socket_or_another_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sock");
        let _held = std::os::unix::net::UnixListener::bind(&live).unwrap();
        let settings = |path: &Path| AdminSettings {
            endpoint: AdminEndpoint::Unix {
                path: path.to_path_buf(),
                mode: 0o600,
            },
            unhealthy_after: Duration::from_secs(60),
        };
        let error = AdminServer::bind(&settings(&live), Arc::default()).unwrap_err();
        assert!(
            error.to_string().contains("another process serves on"),
            "{error}"
        );

        let plain = dir.path().join("plain");
        std::fs::write(&plain, "keep me").unwrap();
        let error = AdminServer::bind(&settings(&plain), Arc::default()).unwrap_err();
        assert!(
            error.to_string().contains("exists and is not a socket"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");

        // A socket nobody serves on any more is replaced.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let server = AdminServer::bind(&settings(&stale), Arc::default()).unwrap();
        drop(server);
        assert!(!stale.exists(), "dropped before serving: removed too");

        let missing = dir.path().join("no-such-dir").join("admin.sock");
        let error = AdminServer::bind(&settings(&missing), Arc::default()).unwrap_err();
        assert!(error.to_string().contains("does not exist"), "{error}");
    }
}
