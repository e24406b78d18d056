//! HTTP transport to supervisord's `/RPC2`: TCP and UNIX sockets on a connection of the
//! target's own ([`super::http1`]), HTTPS (rustls) through hyper's pooled client.
//!
//! Everything that can fail or be computed ahead (the URI, the `Host` and `Authorization`
//! header values, the TLS configuration) is done once in [`RpcTransport::new`];
//! [`RpcTransport::post`] only assembles a request from those parts.
//!
//! # One write per request, an ACK per read
//!
//! supervisord (medusa) replies only once it has the whole request. A client that sends the
//! headers and the body in two writes makes the second wait for the ACK of the first (Nagle),
//! which the server delays by up to ~40 ms: every call would cost that. So `TCP_NODELAY` is set
//! on every TCP connection and the request leaves in a single `write`: the direct connection
//! writes one buffer, and hyper uses its "flatten" strategy (`http1_writev(false)`), which also
//! keeps a request in one TLS record. The test `request_leaves_in_one_write_with_nodelay` checks
//! hyper's side at the I/O layer, where it is deterministic.
//!
//! The reply direction has the mirror problem: supervisord writes a long reply in 4 KiB pieces
//! without `TCP_NODELAY`, so its last piece waits for our ACK of the previous ones, and on a
//! kept-alive connection Linux delays that ACK by ~40 ms (the connection looks interactive).
//! Every poll of a real supervisord took 45 ms of wall time for 1 ms of work. Both paths ask the
//! kernel to acknowledge at once after every read (`TCP_QUICKACK`, which does not stick, so it
//! is set again each time: one cheap system call per read); see [`QuickAck`].
//!
//! # Kept-alive connections
//!
//! One connection per target is reused across polls (unless `keep_alive` is off). When
//! supervisord restarts between two polls, the kept connection is found closed before it is
//! used, or fails before any byte of the reply arrives, and the request is sent once more on a
//! new connection, so the poll does not fail (hyper's pool does the same for HTTPS).
//!
//! # Bounded in time and size
//!
//! A poll is bounded as a whole by the target's timeout (in the poll client, around every
//! request it makes), which is never longer than the collection interval: a server that accepts
//! and never answers, or trickles its reply a byte at a time, holds one connection for at most
//! one timeout, then the request is dropped and the connection closed. There is no separate
//! idle-read timer: the poll's own bound already ends a stalled read within the timeout. Replies
//! are capped in size ([`DEFAULT_MAX_RESPONSE_BYTES`]) and so are reply heads (64 KiB on the
//! direct connection, about 400 KiB in hyper). A refused or failed connect is not retried: each
//! poll makes at most one new connection (plus one when a kept connection turns out to be
//! closed). When a request is cut by the timeout, [`RpcTransport::stalled`] says where it was:
//! connecting, waiting for the reply, or reading it (and how far).

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body as _, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connect, Connected, Connection, HttpConnector};
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;

use super::http1::{acknowledge_now, Dial, Http1, Http1Error};
use crate::config::{Endpoint, Target, TlsSettings};

/// Replies larger than this are cut off with [`TransportError::TooLarge`]: a 1,000-process
/// `getAllProcessInfo` is about 1 MiB, so 16 MiB leaves room without letting a hostile server
/// grow our memory unbounded.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How long an unused pooled connection is kept. Longer than any sensible collection interval,
/// so polls reuse it; short enough that a forgotten target does not hold a socket forever.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// supervisord serves XML-RPC on this path only.
const RPC_PATH: &str = "/RPC2";

const USER_AGENT_VALUE: &str = concat!("supervisord-receiver/", env!("CARGO_PKG_VERSION"));

/// Why a request to supervisord failed at the HTTP level or below.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection: refused, DNS failure, socket file missing or not permitted, reset before
    /// any reply. `reason` is the OS's words (`Connection refused (os error 111)`).
    #[error("cannot connect: {reason}")]
    Connect { reason: String },
    /// The poll's time ran out; `stalled` says where the request was then.
    #[error("timed out after {after:?} {stalled}")]
    Timeout { after: Duration, stalled: Stalled },
    #[error("HTTP 401 Unauthorized")]
    Unauthorized,
    /// Any other non-2xx status; `reason` is the canonical phrase, empty for unknown codes.
    #[error("HTTP {code}{}{reason}", if reason.is_empty() { "" } else { " " })]
    HttpStatus { code: u16, reason: String },
    #[error("reply larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection broke after it was made (closed mid-reply, malformed HTTP).
    #[error("connection failed during the request: {reason}")]
    Io { reason: String },
    #[error("TLS: {reason}")]
    Tls { reason: String },
}

/// Where a request was when the poll's timeout cut it, for the log line that says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// TCP connect or TLS handshake unfinished.
    Connecting,
    /// Connected (or on a pooled connection), request sent or being sent, no complete reply
    /// head yet: a silent server, or one that trickles its status line and headers.
    AwaitingReply,
    /// The reply head arrived; the body did not complete.
    ReadingReply { received: usize },
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stalled::Connecting => f.write_str("while connecting"),
            Stalled::AwaitingReply => f.write_str("waiting for the reply"),
            Stalled::ReadingReply { received } => {
                write!(f, "while reading the reply ({received} bytes received)")
            }
        }
    }
}

/// What the request in flight has got to. Shared by a transport and its connector; a target
/// has one request in flight at a time, so one record per transport is enough.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Connects under way (hyper may finish one in the background after a request gave up).
    pub(crate) connecting: AtomicUsize,
    pub(crate) head_received: AtomicBool,
    pub(crate) body_bytes: AtomicUsize,
}

impl Progress {
    fn start_request(&self) {
        self.head_received.store(false, Ordering::Relaxed);
        self.body_bytes.store(0, Ordering::Relaxed);
    }

    fn stalled(&self) -> Stalled {
        if self.head_received.load(Ordering::Relaxed) {
            Stalled::ReadingReply {
                received: self.body_bytes.load(Ordering::Relaxed),
            }
        } else if self.connecting.load(Ordering::Relaxed) > 0 {
            Stalled::Connecting
        } else {
            Stalled::AwaitingReply
        }
    }
}

/// A connector that records in [`Progress`] while a connect is under way.
#[derive(Clone)]
struct Tracked<C> {
    inner: C,
    progress: Arc<Progress>,
}

/// Counts a connect as under way until its future completes or is dropped.
pub(crate) struct ConnectGuard(Arc<Progress>);

impl ConnectGuard {
    pub(crate) fn new(progress: Arc<Progress>) -> Self {
        progress.connecting.fetch_add(1, Ordering::Relaxed);
        ConnectGuard(progress)
    }
}

impl Drop for ConnectGuard {
    fn drop(&mut self) {
        self.0.connecting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<C> tower_service::Service<Uri> for Tracked<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let guard = ConnectGuard::new(Arc::clone(&self.progress));
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let result = connecting.await;
            drop(guard);
            result
        })
    }
}

/// Why a transport could not be built from settings (bad CA file, ...). Reported at start.
#[derive(Debug, thiserror::Error)]
pub enum TransportBuildError {
    #[error("{0}")]
    Tls(String),
    /// The endpoint cannot be turned into a request URI (a host hyper rejects, a socket path
    /// that is not UTF-8).
    #[error("invalid endpoint '{endpoint}': {reason}")]
    Endpoint { endpoint: String, reason: String },
    /// The credentials cannot be made into a header value. Base64 output always can; the
    /// variant exists because the header API is fallible and building must not panic.
    #[error("credentials cannot be sent in an Authorization header")]
    Credentials,
}

type RequestBody = Full<Bytes>;

/// The connection pool, typed by how it connects; chosen once from the endpoint.
#[derive(Clone)]
enum Pool {
    /// Plain TCP and UNIX sockets: the poll task's own connection (see [`super::http1`]).
    Direct(Arc<Http1>),
    /// Boxed: hyper's client is a few hundred bytes, the direct connection a pointer.
    Https(Box<Client<Tracked<HttpsConnector<QuickAckConnector>>, RequestBody>>),
    /// A TCP connector that records what crosses the socket, for tests only.
    #[cfg(test)]
    Observed(Box<Client<tests::ObservedConnector, RequestBody>>),
}

impl Pool {
    /// The hyper pools' request; `None` for a direct connection, which `post` drives itself.
    fn request(&self, request: Request<RequestBody>) -> Option<ResponseFuture> {
        match self {
            Pool::Https(client) => Some(client.request(request)),
            Pool::Direct(_) => None,
            #[cfg(test)]
            Pool::Observed(client) => Some(client.request(request)),
        }
    }
}

/// One per target, built once; clones share the connection pool.
#[derive(Clone)]
pub struct RpcTransport {
    pool: Pool,
    /// Absolute URI of `/RPC2`; hyper sends it in origin form.
    uri: Uri,
    host: HeaderValue,
    /// `Basic ...`, marked sensitive so hyper never logs it.
    authorization: Option<HeaderValue>,
    /// Named in the error when the connector's own connect timer fires.
    connect_timeout: Duration,
    max_response_bytes: usize,
    progress: Arc<Progress>,
    keep_alive: bool,
}

impl RpcTransport {
    pub fn new(target: &Target) -> Result<Self, TransportBuildError> {
        Self::with_max_response_bytes(target, DEFAULT_MAX_RESPONSE_BYTES)
    }

    /// Like [`RpcTransport::new`], with another cap on the reply size.
    pub fn with_max_response_bytes(
        target: &Target,
        max_response_bytes: usize,
    ) -> Result<Self, TransportBuildError> {
        let progress = Arc::new(Progress::default());
        let (pool, uri, host) = match &target.endpoint {
            Endpoint::Tcp {
                tls: false,
                host: name,
                port,
            } => {
                let (uri, host) = tcp_uri(&target.endpoint)?;
                let dial = Dial::Tcp {
                    host: name.clone(),
                    port: *port,
                };
                let pool = direct(dial, target, &progress);
                (pool, uri, host)
            }
            Endpoint::Tcp { tls: true, .. } => {
                let (uri, host) = tcp_uri(&target.endpoint)?;
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls_config(&target.tls)?)
                    .https_only()
                    .enable_http1()
                    .wrap_connector(http_connector(target.timeout));
                (
                    Pool::Https(Box::new(tracked_client(
                        https,
                        &progress,
                        target.keep_alive,
                    ))),
                    uri,
                    host,
                )
            }
            Endpoint::Unix { path } => {
                let uri = unix_uri(path)?;
                let pool = direct(Dial::Unix(path.clone()), target, &progress);
                (pool, uri, HeaderValue::from_static("localhost"))
            }
        };
        let authorization = match &target.credentials {
            Some(credentials) => Some(basic_auth(
                &credentials.username,
                credentials.password.expose(),
            )?),
            None => None,
        };
        Ok(RpcTransport {
            pool,
            uri,
            host,
            authorization,
            connect_timeout: target.timeout,
            max_response_bytes,
            progress,
            keep_alive: target.keep_alive,
        })
    }

    /// POSTs an XML-RPC body to `/RPC2` and returns the reply body (any 2xx status).
    pub async fn post(&self, body: Bytes) -> Result<Bytes, TransportError> {
        self.progress.start_request();
        if let Pool::Direct(connection) = &self.pool {
            return self.post_direct(connection, &body).await;
        }
        let Some(pending) = self.pool.request(self.request(body)) else {
            return Err(TransportError::Io {
                reason: "no connection pool".into(),
            });
        };
        let response = pending
            .await
            .map_err(|err| self.classify(&err, err.is_connect()))?;
        self.progress.head_received.store(true, Ordering::Relaxed);
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(TransportError::Unauthorized);
        }
        if !status.is_success() {
            return Err(TransportError::HttpStatus {
                code: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_owned(),
            });
        }
        self.read_capped(response.into_body()).await
    }

    /// A request on the target's own connection: the head and body in one buffer, one write.
    async fn post_direct(&self, connection: &Http1, body: &[u8]) -> Result<Bytes, TransportError> {
        let mut request = Vec::with_capacity(256 + body.len());
        request.extend_from_slice(b"POST ");
        request.extend_from_slice(RPC_PATH.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(self.host.as_bytes());
        request.extend_from_slice(b"\r\nContent-Type: text/xml\r\nContent-Length: ");
        request.extend_from_slice(body.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\nUser-Agent: ");
        request.extend_from_slice(USER_AGENT_VALUE.as_bytes());
        if let Some(authorization) = &self.authorization {
            request.extend_from_slice(b"\r\nAuthorization: ");
            request.extend_from_slice(authorization.as_bytes());
        }
        if !self.keep_alive {
            request.extend_from_slice(b"\r\nConnection: close");
        }
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
        let reply = connection
            .send(&request, self.max_response_bytes)
            .await
            .map_err(|error| match error {
                Http1Error::Connect(e) => TransportError::Connect {
                    reason: e.to_string(),
                },
                Http1Error::ConnectTimeout => TransportError::Timeout {
                    after: self.connect_timeout,
                    stalled: Stalled::Connecting,
                },
                Http1Error::Io(reason) => TransportError::Io { reason },
                Http1Error::TooLarge => TransportError::TooLarge {
                    limit: self.max_response_bytes,
                },
            })?;
        match StatusCode::from_u16(reply.status) {
            Ok(StatusCode::UNAUTHORIZED) => Err(TransportError::Unauthorized),
            Ok(status) if status.is_success() => Ok(reply.body),
            status => Err(TransportError::HttpStatus {
                code: reply.status,
                reason: status
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
                    .to_owned(),
            }),
        }
    }

    /// Where the latest request stands: read when the poll's timeout has cut it.
    pub fn stalled(&self) -> Stalled {
        self.progress.stalled()
    }

    fn request(&self, body: Bytes) -> Request<RequestBody> {
        let length = HeaderValue::from(body.len());
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        headers.insert(CONTENT_LENGTH, length);
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        if !self.keep_alive {
            // The server closes first, so its side keeps the TIME_WAIT, not ours.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        request
    }

    /// Reads the reply frame by frame so a too-large one is dropped as soon as it passes the
    /// cap, never buffered whole.
    async fn read_capped(&self, mut body: Incoming) -> Result<Bytes, TransportError> {
        let limit = self.max_response_bytes;
        let too_large = TransportError::TooLarge { limit };
        // With a Content-Length, the lower bound is the declared length.
        let declared = body.size_hint().lower();
        if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(too_large);
        }
        let mut reply = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(limit));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| self.classify(&err, false))?;
            if let Ok(data) = frame.into_data() {
                if data.len() > limit - reply.len() {
                    return Err(too_large);
                }
                reply.extend_from_slice(&data);
                self.progress
                    .body_bytes
                    .store(reply.len(), Ordering::Relaxed);
            }
        }
        Ok(reply.freeze())
    }

    /// Turns a hyper error into ours by looking for the error types it wraps (rustls, io) among
    /// its causes, never by matching message text.
    fn classify(&self, err: &(dyn StdError + 'static), connecting: bool) -> TransportError {
        let mut innermost_io: Option<&io::Error> = None;
        for cause in causes(err) {
            if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
                return TransportError::Tls {
                    reason: tls.to_string(),
                };
            }
            if let Some(io_err) = cause.downcast_ref::<io::Error>() {
                innermost_io = Some(io_err);
            }
        }
        if !connecting {
            return TransportError::Io {
                reason: chain_text(err),
            };
        }
        let reason = match innermost_io {
            // The connector's own timer, not the OS's: the same as the poll's timeout cutting
            // the connect (the two are equal and race), so it is reported the same way.
            Some(e) if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() => {
                return TransportError::Timeout {
                    after: self.connect_timeout,
                    stalled: Stalled::Connecting,
                };
            }
            Some(e) => e.to_string(),
            None => chain_text(err),
        };
        TransportError::Connect { reason }
    }
}

/// `err` and its causes. Unlike `source()`, steps into the error an `io::Error` wraps
/// (`io::Error::source()` skips it): that is where rustls' errors and nested io errors hide.
fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn StdError + 'static)| {
        match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        }
    })
}

/// The error's causes joined by `: `, skipping hyper-util's client wrapper ("client error
/// (SendRequest)") and repeated texts (an `io::Error` displays as the error it wraps).
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    for cause in causes(err) {
        if cause.is::<hyper_util::client::legacy::Error>() {
            continue;
        }
        let part = cause.to_string();
        if part.is_empty() || text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// See [`pooled_client`].
const READ_BUFFER_BYTES: usize = 4 * 1024;

fn pooled_client<C>(connector: C, keep_alive: bool) -> Client<C, RequestBody>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // Polls of a target are sequential: one kept-alive connection is all it ever needs;
        // none when keep-alive is off (the connection closes after its reply).
        .pool_max_idle_per_host(usize::from(keep_alive))
        .pool_timer(TokioTimer::new())
        // Flatten headers and body into one buffer: see the module docs.
        .http1_writev(false)
        // hyper's adaptive read buffer grows to the largest reply seen and an idle kept-alive
        // connection keeps it: ~64 KiB a target, 640 MB for a fleet of 10,000. A fixed 4 KiB
        // costs a few more reads per reply and bounds what an idle connection holds.
        .http1_read_buf_exact_size(READ_BUFFER_BYTES)
        .retry_canceled_requests(true)
        .build(connector)
}

/// A pooled client whose connector reports connects in progress to `progress`.
fn tracked_client<C>(
    connector: C,
    progress: &Arc<Progress>,
    keep_alive: bool,
) -> Client<Tracked<C>, RequestBody>
where
    Tracked<C>: Connect + Clone + Send + Sync + 'static,
{
    let tracked = Tracked {
        inner: connector,
        progress: Arc::clone(progress),
    };
    pooled_client(tracked, keep_alive)
}

fn direct(dial: Dial, target: &Target, progress: &Arc<Progress>) -> Pool {
    Pool::Direct(Arc::new(Http1::new(
        dial,
        target.timeout,
        target.keep_alive,
        Arc::clone(progress),
    )))
}

fn http_connector(connect_timeout: Duration) -> QuickAckConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    // The HTTPS connector hands it https:// URIs; the plain pool only ever builds http:// ones.
    http.enforce_http(false);
    QuickAckConnector(http)
}

/// The TCP connector, its connections wrapped in [`QuickAck`].
#[derive(Clone)]
struct QuickAckConnector(HttpConnector);

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAck<TokioIo<tokio::net::TcpStream>>;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAck) })
    }
}

/// A TCP connection that acknowledges every read at once (see the module documentation).
struct QuickAck<T>(T);

impl hyper::rt::Read for QuickAck<TokioIo<tokio::net::TcpStream>> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.0).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) {
            acknowledge_now(this.0.inner());
        }
        result
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for QuickAck<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for QuickAck<T> {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

fn tcp_uri(endpoint: &Endpoint) -> Result<(Uri, HeaderValue), TransportBuildError> {
    let base = endpoint.display();
    let invalid = |reason: String| TransportBuildError::Endpoint {
        endpoint: base.clone(),
        reason,
    };
    let uri = Uri::try_from(format!("{base}{RPC_PATH}")).map_err(|e| invalid(e.to_string()))?;
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("no host".to_owned()))?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| invalid(e.to_string()))?;
    Ok((uri, host))
}

/// hyperlocal's form, `unix://<hex of the socket path>:0/RPC2`, built here because
/// `hyperlocal::Uri::new` panics on a URI too long to parse. The path must be UTF-8: hyperlocal
/// decodes it lossily and would connect to another file.
fn unix_uri(path: &Path) -> Result<Uri, TransportBuildError> {
    let invalid = |reason: &str| TransportBuildError::Endpoint {
        endpoint: format!("unix://{}", path.display()),
        reason: reason.to_owned(),
    };
    let utf8 = path
        .to_str()
        .ok_or_else(|| invalid("socket path is not UTF-8"))?;
    let mut uri = String::with_capacity(16 + 2 * utf8.len());
    uri.push_str("unix://");
    for byte in utf8.bytes() {
        // Writing to a String cannot fail.
        let _ = write!(uri, "{byte:02x}");
    }
    uri.push_str(":0");
    uri.push_str(RPC_PATH);
    Uri::try_from(uri).map_err(|e| invalid(&e.to_string()))
}

fn basic_auth(username: &str, password: &str) -> Result<HeaderValue, TransportBuildError> {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| TransportBuildError::Credentials)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Trust, client certificate, `server_name` and `insecure_skip_verify` are handled as for the
/// OTLP exporters: see [`crate::config::tls`].
fn tls_config(tls: &TlsSettings) -> Result<ClientConfig, TransportBuildError> {
    crate::config::tls::client_config(tls).map_err(|e| TransportBuildError::Tls(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::future::Future;
    use std::io::IoSlice;
    use std::net::SocketAddr;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::task::{ready, Context, Poll};

    use http::Response;
    use hyper::body::{Frame, SizeHint};
    use hyper::rt::ReadBufCursor;
    use hyper::service::service_fn;
    use hyper_util::client::legacy::connect::{Connected, Connection};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::PrivateKeyDer;
    use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
    use tokio::net::{TcpListener, TcpStream, UnixListener};
    use tokio::sync::Notify;
    use tokio::task::{JoinHandle, JoinSet};
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::config::secret::Secret;
    use crate::config::Credentials;

    const CALL: &[u8] = b"<?xml version=\"1.0\"?><methodCall>\
        <methodName>supervisor.getState</methodName><params/></methodCall>";
    const REPLY: &[u8] = b"<?xml version=\"1.0\"?><methodResponse><params/></methodResponse>";
    /// Bound on anything a test waits for, so a broken transport fails the test instead of
    /// hanging it. Never reached when the code works; not a timing assertion.
    const FAILSAFE: Duration = Duration::from_secs(20);

    fn target(endpoint: Endpoint) -> Target {
        Target {
            timeout: Duration::from_secs(5),
            ..Target::new("test", endpoint)
        }
    }

    fn tcp_target(addr: SocketAddr) -> Target {
        target(Endpoint::Tcp {
            tls: false,
            host: addr.ip().to_string(),
            port: addr.port(),
        })
    }

    fn https_target(addr: SocketAddr, tls: TlsSettings) -> Target {
        let mut t = target(Endpoint::Tcp {
            tls: true,
            host: addr.ip().to_string(),
            port: addr.port(),
        });
        t.tls = tls;
        t
    }

    fn unix_target(path: &Path) -> Target {
        target(Endpoint::Unix {
            path: path.to_path_buf(),
        })
    }

    fn with_credentials(mut t: Target) -> Target {
        t.credentials = Some(Credentials {
            username: "admin".to_owned(),
            password: Secret::new("pa:ss word"),
        });
        t
    }

    /// `Basic base64("admin:pa:ss word")`, computed independently of the code under test.
    const EXPECTED_AUTH: &str = "Basic YWRtaW46cGE6c3Mgd29yZA==";

    async fn post(transport: &RpcTransport) -> Result<Bytes, TransportError> {
        tokio::time::timeout(FAILSAFE, transport.post(Bytes::from_static(CALL)))
            .await
            .expect("post did not finish")
    }

    // ---- A small hyper server -------------------------------------------------------------

    /// What the server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: Method,
        path: String,
        headers: http::HeaderMap,
        body: Bytes,
    }

    impl Seen {
        fn header(&self, name: http::header::HeaderName) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
    }

    /// A reply body sent in the given chunks; without a declared length hyper sends it chunked.
    struct ReplyBody {
        chunks: VecDeque<Bytes>,
        declared: Option<u64>,
    }

    impl ReplyBody {
        fn full(body: &'static [u8]) -> Self {
            ReplyBody {
                chunks: VecDeque::from([Bytes::from_static(body)]),
                declared: Some(body.len() as u64),
            }
        }

        fn chunked(chunks: usize, chunk_len: usize) -> Self {
            ReplyBody {
                chunks: (0..chunks)
                    .map(|_| Bytes::from(vec![b'x'; chunk_len]))
                    .collect(),
                declared: None,
            }
        }
    }

    impl hyper::body::Body for ReplyBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
        }

        fn is_end_stream(&self) -> bool {
            self.chunks.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            match self.declared {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            }
        }
    }

    type Respond = Arc<dyn Fn(&Seen) -> Response<ReplyBody> + Send + Sync>;

    fn ok() -> Respond {
        Arc::new(|_| Response::new(ReplyBody::full(REPLY)))
    }

    fn status(code: u16) -> Respond {
        Arc::new(move |_| {
            let mut response = Response::new(ReplyBody::full(b"no"));
            *response.status_mut() = StatusCode::from_u16(code).expect("valid status");
            response
        })
    }

    enum TestListener {
        Tcp(TcpListener),
        Unix(UnixListener),
        Tls(TcpListener, TlsAcceptor),
    }

    struct TestServer {
        connections: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: JoinHandle<()>,
    }

    impl TestServer {
        fn start(listener: TestListener, respond: Respond) -> Self {
            let connections = Arc::new(AtomicUsize::new(0));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (count, log) = (connections.clone(), seen.clone());
            let task = tokio::spawn(async move {
                // Dropped with this task, which closes every connection: a server restart.
                let mut open = JoinSet::new();
                loop {
                    let (log, respond) = (log.clone(), respond.clone());
                    match &listener {
                        TestListener::Tcp(l) => {
                            let Ok((stream, _)) = l.accept().await else {
                                continue;
                            };
                            count.fetch_add(1, Ordering::SeqCst);
                            open.spawn(serve_connection(stream, log, respond));
                        }
                        TestListener::Unix(l) => {
                            let Ok((stream, _)) = l.accept().await else {
                                continue;
                            };
                            count.fetch_add(1, Ordering::SeqCst);
                            open.spawn(serve_connection(stream, log, respond));
                        }
                        TestListener::Tls(l, acceptor) => {
                            let Ok((stream, _)) = l.accept().await else {
                                continue;
                            };
                            count.fetch_add(1, Ordering::SeqCst);
                            let acceptor = acceptor.clone();
                            open.spawn(async move {
                                if let Ok(tls) = acceptor.accept(stream).await {
                                    serve_connection(tls, log, respond).await;
                                }
                            });
                        }
                    }
                }
            });
            TestServer {
                connections,
                seen,
                task,
            }
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().expect("lock").clone()
        }

        /// Stops accepting and closes every connection.
        async fn stop(self) {
            self.task.abort();
            let _ = self.task.await;
        }
    }

    async fn serve_connection<S>(io: S, log: Arc<Mutex<Vec<Seen>>>, respond: Respond)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request: Request<Incoming>| {
            let (log, respond) = (log.clone(), respond.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let seen = Seen {
                    method: parts.method,
                    path: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                };
                let response = respond(&seen);
                log.lock().expect("lock").push(seen);
                Ok::<_, Infallible>(response)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    }

    async fn tcp_server(respond: Respond) -> (TestServer, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (
            TestServer::start(TestListener::Tcp(listener), respond),
            addr,
        )
    }

    /// A server that answers the first request on the first connection with `reply` verbatim,
    /// then either closes or keeps the connection open until the client closes it.
    async fn raw_server(reply: &'static [u8], close_after: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            read_request(&mut stream).await;
            let _ = stream.write_all(reply).await;
            if !close_after {
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
            }
        });
        addr
    }

    /// Reads one request: headers, then `content-length` bytes of body.
    async fn read_request(stream: &mut TcpStream) {
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let Ok(n) = stream.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            request.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }

    // ---- A connector that records what the transport writes ---------------------------------

    /// The production TCP connector, wrapped to record each write call, `TCP_NODELAY`, and
    /// when the server closes the connection.
    #[derive(Clone)]
    pub(super) struct ObservedConnector {
        inner: HttpConnector,
        log: Arc<IoLog>,
    }

    #[derive(Default)]
    struct IoLog {
        writes: Mutex<Vec<WriteCall>>,
        nodelay: Mutex<Vec<bool>>,
        closed_by_peer: Notify,
    }

    #[derive(Debug)]
    struct WriteCall {
        /// Non-empty buffers handed to this one call.
        buffers: usize,
        bytes: Vec<u8>,
    }

    impl IoLog {
        fn record(&self, buffers: usize, bytes: Vec<u8>) {
            self.writes
                .lock()
                .expect("lock")
                .push(WriteCall { buffers, bytes });
        }
    }

    /// A transport for `target` whose pool connects through an [`ObservedConnector`] built
    /// like the production one.
    fn observed_transport(target: &Target) -> (RpcTransport, Arc<IoLog>) {
        let mut transport = RpcTransport::new(target).expect("transport");
        let connector = ObservedConnector {
            inner: http_connector(target.timeout).0,
            log: Arc::new(IoLog::default()),
        };
        let log = connector.log.clone();
        transport.pool = Pool::Observed(Box::new(pooled_client(connector, true)));
        (transport, log)
    }

    type BoxError = Box<dyn StdError + Send + Sync>;

    impl tower_service::Service<Uri> for ObservedConnector {
        type Response = ObservedIo;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<ObservedIo, BoxError>> + Send>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.inner.poll_ready(cx).map_err(Into::into)
        }

        fn call(&mut self, uri: Uri) -> Self::Future {
            let connecting = self.inner.call(uri);
            let log = self.log.clone();
            Box::pin(async move {
                let stream = connecting.await?.into_inner();
                log.nodelay.lock().expect("lock").push(stream.nodelay()?);
                Ok(ObservedIo { stream, log })
            })
        }
    }

    pub(super) struct ObservedIo {
        stream: TcpStream,
        log: Arc<IoLog>,
    }

    impl Connection for ObservedIo {
        fn connected(&self) -> Connected {
            Connected::new()
        }
    }

    impl hyper::rt::Read for ObservedIo {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let mut local = vec![0u8; buf.remaining().min(64 * 1024)];
            let mut read = ReadBuf::new(&mut local);
            let result = ready!(Pin::new(&mut this.stream).poll_read(cx, &mut read));
            // A read of zero bytes into a non-empty buffer is the peer's close.
            if result.is_err() || (read.filled().is_empty() && read.capacity() > 0) {
                this.log.closed_by_peer.notify_one();
            }
            result?;
            buf.put_slice(read.filled());
            Poll::Ready(Ok(()))
        }
    }

    impl hyper::rt::Write for ObservedIo {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
            this.log.record(1, buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs))?;
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let buffers = bufs.iter().filter(|b| !b.is_empty()).count();
            this.log.record(buffers, all[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        /// Like a real `TcpStream`: hyper's automatic strategy would then queue headers and
        /// body as separate buffers, which is what the configuration must override.
        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().stream).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
        }
    }

    // ---- Requests ----------------------------------------------------------------------------

    #[tokio::test]
    async fn tcp_request_carries_auth_and_headers() {
        let (server, addr) = tcp_server(ok()).await;
        let transport = RpcTransport::new(&with_credentials(tcp_target(addr))).expect("transport");

        assert_eq!(
            post(&transport).await.expect("reply"),
            Bytes::from_static(REPLY)
        );

        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/RPC2");
        assert_eq!(request.body, Bytes::from_static(CALL));
        assert_eq!(request.header(AUTHORIZATION), Some(EXPECTED_AUTH));
        assert_eq!(request.header(CONTENT_TYPE), Some("text/xml"));
        assert_eq!(
            request.header(CONTENT_LENGTH),
            Some(CALL.len().to_string().as_str())
        );
        assert_eq!(
            request.header(USER_AGENT),
            Some(concat!("supervisord-receiver/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(
            request.header(HOST),
            Some(format!("127.0.0.1:{}", addr.port()).as_str())
        );
    }

    #[tokio::test]
    async fn no_authorization_header_without_credentials() {
        let (server, addr) = tcp_server(ok()).await;
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");

        post(&transport).await.expect("reply");

        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].headers.get(AUTHORIZATION).is_none());
    }

    #[tokio::test]
    async fn unix_socket_request_carries_auth_and_localhost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("supervisor.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let server = TestServer::start(TestListener::Unix(listener), ok());
        let transport =
            RpcTransport::new(&with_credentials(unix_target(&path))).expect("transport");

        assert_eq!(
            post(&transport).await.expect("reply"),
            Bytes::from_static(REPLY)
        );

        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/RPC2");
        assert_eq!(seen[0].header(HOST), Some("localhost"));
        assert_eq!(seen[0].header(AUTHORIZATION), Some(EXPECTED_AUTH));
        assert_eq!(seen[0].body, Bytes::from_static(CALL));
    }

    #[tokio::test]
    async fn request_leaves_in_one_write_with_nodelay() {
        let (server, addr) = tcp_server(ok()).await;
        let (transport, log) = observed_transport(&tcp_target(addr));

        post(&transport).await.expect("reply");

        assert_eq!(server.seen().len(), 1);
        assert_eq!(*log.nodelay.lock().expect("lock"), vec![true]);
        let writes = log.writes.lock().expect("lock");
        assert_eq!(
            writes.len(),
            1,
            "the request took several writes: {writes:?}"
        );
        assert_eq!(writes[0].buffers, 1, "headers and body were not flattened");
        let request = String::from_utf8_lossy(&writes[0].bytes);
        assert!(request.starts_with("POST /RPC2 HTTP/1.1\r\n"), "{request}");
        assert!(writes[0].bytes.ends_with(CALL), "{request}");
    }

    // ---- Replies -----------------------------------------------------------------------------

    #[tokio::test]
    async fn status_401_is_unauthorized() {
        let (_server, addr) = tcp_server(status(401)).await;
        let transport = RpcTransport::new(&with_credentials(tcp_target(addr))).expect("transport");

        let err = post(&transport).await.expect_err("401");
        assert!(matches!(err, TransportError::Unauthorized), "{err:?}");
    }

    #[tokio::test]
    async fn other_statuses_carry_code_and_canonical_reason() {
        let (_server, addr) = tcp_server(status(404)).await;
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");
        let err = post(&transport).await.expect_err("404");
        let TransportError::HttpStatus { code, reason } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((*code, reason.as_str()), (404, "Not Found"));

        let (_server, addr) = tcp_server(status(599)).await;
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");
        let err = post(&transport).await.expect_err("599");
        assert!(
            matches!(&err, TransportError::HttpStatus { code: 599, reason } if reason.is_empty()),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "HTTP 599");
    }

    #[tokio::test]
    async fn declared_length_over_the_cap_is_rejected_before_reading() {
        // Declares 1 GiB and sends 5 bytes, then waits: reading the body would hang.
        let addr = raw_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\nhello",
            false,
        )
        .await;
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");

        let err = post(&transport).await.expect_err("too large");
        assert!(
            matches!(
                err,
                TransportError::TooLarge {
                    limit: DEFAULT_MAX_RESPONSE_BYTES
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn chunked_reply_over_the_cap_is_cut_off() {
        let respond: Respond = Arc::new(|_| Response::new(ReplyBody::chunked(4, 30)));
        let (_server, addr) = tcp_server(respond).await;
        let transport =
            RpcTransport::with_max_response_bytes(&tcp_target(addr), 100).expect("transport");

        let err = post(&transport).await.expect_err("too large");
        assert!(
            matches!(err, TransportError::TooLarge { limit: 100 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn reply_exactly_at_the_cap_is_accepted() {
        let respond: Respond = Arc::new(|_| Response::new(ReplyBody::chunked(4, 25)));
        let (_server, addr) = tcp_server(respond).await;
        let transport =
            RpcTransport::with_max_response_bytes(&tcp_target(addr), 100).expect("transport");

        assert_eq!(post(&transport).await.expect("reply").len(), 100);
    }

    #[tokio::test]
    async fn reply_cut_short_is_an_io_error() {
        let addr = raw_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<short",
            true,
        )
        .await;
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");

        let err = post(&transport).await.expect_err("truncated");
        assert!(matches!(err, TransportError::Io { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn malformed_http_is_an_io_error() {
        let addr = raw_server(b"garbage\r\n\r\n", true).await;
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");

        let err = post(&transport).await.expect_err("garbage");
        assert!(matches!(err, TransportError::Io { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn an_endless_reply_head_is_cut_off() {
        // A status line, then header lines as fast as the client takes them, never a blank line.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            read_request(&mut stream).await;
            if stream.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
                return;
            }
            let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
            while stream.write_all(line.as_bytes()).await.is_ok() {
                counter.fetch_add(line.len(), Ordering::SeqCst);
            }
        });
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");

        let err = post(&transport).await.expect_err("endless head");
        assert!(matches!(err, TransportError::Io { .. }), "{err:?}");
        // hyper stops at its head limit (about 400 KiB; what was sent also counts the socket
        // buffers), before the reply cap.
        let sent = sent.load(Ordering::SeqCst);
        assert!(sent < DEFAULT_MAX_RESPONSE_BYTES, "{sent} bytes sent");
    }

    // ---- Connections ---------------------------------------------------------------------------

    #[tokio::test]
    async fn one_connection_serves_successive_posts() {
        let (server, addr) = tcp_server(ok()).await;
        let transport = RpcTransport::new(&tcp_target(addr)).expect("transport");

        for _ in 0..3 {
            post(&transport).await.expect("reply");
        }

        assert_eq!(server.seen().len(), 3);
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn without_keep_alive_each_post_has_its_own_connection_and_asks_to_close() {
        let (server, addr) = tcp_server(ok()).await;
        let target = Target {
            keep_alive: false,
            ..tcp_target(addr)
        };
        let transport = RpcTransport::new(&target).expect("transport");

        for _ in 0..3 {
            post(&transport).await.expect("reply");
        }

        let seen = server.seen();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|s| s.header(CONNECTION) == Some("close")));
        assert_eq!(server.connections(), 3);
    }

    #[tokio::test]
    async fn server_restart_between_posts_does_not_fail_the_next() {
        let (server, addr) = tcp_server(ok()).await;
        let (transport, log) = observed_transport(&tcp_target(addr));
        post(&transport).await.expect("first reply");

        server.stop().await;
        // Wait until the pooled connection has seen the close, as it has by the next poll.
        tokio::time::timeout(FAILSAFE, log.closed_by_peer.notified())
            .await
            .expect("the client never saw the server close the connection");
        let listener = TcpListener::bind(addr).await.expect("rebind the same port");
        let restarted = TestServer::start(TestListener::Tcp(listener), ok());

        assert_eq!(
            post(&transport).await.expect("reply after restart"),
            Bytes::from_static(REPLY)
        );
        assert_eq!(restarted.connections(), 1);
    }

    #[tokio::test]
    async fn refused_port_is_a_connect_error_in_the_os_words() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let transport = RpcTransport::new(&with_credentials(tcp_target(addr))).expect("transport");

        let err = post(&transport).await.expect_err("refused");
        let TransportError::Connect { reason } = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("refused"), "{reason}");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("pa:ss") && !text.contains("YWRtaW4"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error_in_the_os_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let transport =
            RpcTransport::new(&unix_target(&dir.path().join("absent.sock"))).expect("transport");

        let err = post(&transport).await.expect_err("missing");
        let TransportError::Connect { reason } = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("No such file or directory"), "{reason}");
    }

    /// Mode 000 stops an unprivileged client only; as root (CAP_DAC_OVERRIDE) the connect
    /// succeeds. A direct connect decides which of the two the transport must match.
    #[tokio::test]
    async fn socket_without_permission_matches_what_the_os_allows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("supervisor.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let _server = TestServer::start(TestListener::Unix(listener), ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let transport = RpcTransport::new(&unix_target(&path)).expect("transport");

        let probe = std::os::unix::net::UnixStream::connect(&path);
        let result = post(&transport).await;
        match probe {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let err = result.expect_err("permission denied");
                let TransportError::Connect { reason } = &err else {
                    panic!("{err:?}")
                };
                assert!(reason.contains("Permission denied"), "{reason}");
            }
            Ok(_) => assert_eq!(
                result.expect("privileged connect"),
                Bytes::from_static(REPLY)
            ),
            Err(e) => panic!("unexpected probe error: {e}"),
        }
    }

    // ---- HTTPS -------------------------------------------------------------------------------

    struct TestPki {
        ca_pem: String,
        acceptor: TlsAcceptor,
    }

    /// A throwaway CA and a server certificate it signed for 127.0.0.1.
    fn test_pki() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "transport test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA");

        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("server certificate");

        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        TestPki {
            ca_pem: ca.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }

    async fn tls_server(pki: &TestPki) -> (TestServer, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = TestServer::start(TestListener::Tls(listener, pki.acceptor.clone()), ok());
        (server, addr)
    }

    #[tokio::test]
    async fn https_rejects_a_certificate_from_an_unknown_ca() {
        let pki = test_pki();
        let (_server, addr) = tls_server(&pki).await;
        let transport =
            RpcTransport::new(&https_target(addr, TlsSettings::default())).expect("transport");

        let err = post(&transport).await.expect_err("untrusted");
        let TransportError::Tls { reason } = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("UnknownIssuer"), "{reason}");
    }

    #[tokio::test]
    async fn https_trusts_the_configured_ca_file() {
        let pki = test_pki();
        let (server, addr) = tls_server(&pki).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).expect("write CA");
        let tls = TlsSettings {
            ca_file: Some(ca_file),
            insecure_skip_verify: false,
            ..TlsSettings::default()
        };
        let transport =
            RpcTransport::new(&with_credentials(https_target(addr, tls))).expect("transport");

        for _ in 0..2 {
            assert_eq!(
                post(&transport).await.expect("reply"),
                Bytes::from_static(REPLY)
            );
        }
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].header(AUTHORIZATION), Some(EXPECTED_AUTH));
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn https_insecure_skip_verify_accepts_any_certificate() {
        let pki = test_pki();
        let (_server, addr) = tls_server(&pki).await;
        let tls = TlsSettings {
            ca_file: None,
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        let transport = RpcTransport::new(&https_target(addr, tls)).expect("transport");

        assert_eq!(
            post(&transport).await.expect("reply"),
            Bytes::from_static(REPLY)
        );
    }

    // ---- Building ------------------------------------------------------------------------------

    #[test]
    fn unusable_ca_files_fail_the_build() {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr: SocketAddr = "127.0.0.1:9001".parse().expect("addr");
        let build = |ca_file: PathBuf| {
            let tls = TlsSettings {
                ca_file: Some(ca_file),
                insecure_skip_verify: false,
                ..TlsSettings::default()
            };
            RpcTransport::new(&https_target(addr, tls)).err()
        };

        let missing = dir.path().join("missing.pem");
        let err = build(missing.clone()).expect("missing file fails");
        assert!(
            err.to_string().contains(&*missing.to_string_lossy()),
            "{err}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = build(empty).expect("file without certificates fails");
        assert!(err.to_string().contains("no certificate found"), "{err}");
    }

    #[test]
    fn authorization_header_is_marked_sensitive() {
        let t = with_credentials(tcp_target("127.0.0.1:9001".parse().expect("addr")));
        let transport = RpcTransport::new(&t).expect("transport");
        let value = transport.authorization.expect("credentials give a header");
        assert!(value.is_sensitive());
        assert_eq!(value, EXPECTED_AUTH);
    }

    #[test]
    fn non_utf8_socket_path_fails_the_build() {
        use std::os::unix::ffi::OsStrExt as _;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/run/\xffsupervisor.sock"));
        let err = RpcTransport::new(&unix_target(path))
            .err()
            .expect("non-UTF-8");
        assert!(
            matches!(err, TransportBuildError::Endpoint { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unix_uri_hex_encodes_the_path() {
        let uri = unix_uri(Path::new("/run/s.sock")).expect("uri");
        let expected: Uri = hyperlocal::Uri::new("/run/s.sock", "/RPC2").into();
        assert_eq!(uri, expected);
    }
}
