//! Tests of the transport through its facade: requests and replies on the direct connection
//! (TCP and UNIX sockets), connections, building. Also the targets and test servers that the
//! HTTPS pool's tests (`https_tests.rs`) share.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::{Method, Response};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::settings::secret::Secret;
use crate::settings::{Credentials, TlsSettings};

pub(super) const CALL: &[u8] = b"<?xml version=\"1.0\"?><methodCall>\
    <methodName>supervisor.getState</methodName><params/></methodCall>";
pub(super) const REPLY: &[u8] =
    b"<?xml version=\"1.0\"?><methodResponse><params/></methodResponse>";
/// Bound on anything a test waits for, so a broken transport fails the test instead of
/// hanging it. Never reached when the code works; not a timing assertion.
pub(super) const FAILSAFE: Duration = Duration::from_secs(20);

fn target(endpoint: Endpoint) -> Target {
    Target {
        timeout: Duration::from_secs(5),
        ..Target::new("test", endpoint)
    }
}

pub(super) fn tcp_target(addr: SocketAddr) -> Target {
    target(Endpoint::Tcp {
        tls: false,
        host: addr.ip().to_string(),
        port: addr.port(),
    })
}

pub(super) fn https_target(addr: SocketAddr, tls: TlsSettings) -> Target {
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

pub(super) fn with_credentials(mut t: Target) -> Target {
    t.credentials = Some(Credentials {
        username: "admin".to_owned(),
        password: Secret::new("pa:ss word"),
    });
    t
}

/// `Basic base64("admin:pa:ss word")`, computed independently of the code under test.
pub(super) const EXPECTED_AUTH: &str = "Basic YWRtaW46cGE6c3Mgd29yZA==";

pub(super) async fn post(transport: &RpcTransport) -> Result<Bytes, TransportError> {
    tokio::time::timeout(FAILSAFE, transport.post(Bytes::from_static(CALL)))
        .await
        .expect("post did not finish")
}

// ---- A small hyper server -------------------------------------------------------------

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    method: Method,
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Seen {
    pub(super) fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A reply body sent in the given chunks; without a declared length hyper sends it chunked.
pub(super) struct ReplyBody {
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

pub(super) type Respond = Arc<dyn Fn(&Seen) -> Response<ReplyBody> + Send + Sync>;

pub(super) fn ok() -> Respond {
    Arc::new(|_| Response::new(ReplyBody::full(REPLY)))
}

fn status(code: u16) -> Respond {
    Arc::new(move |_| {
        let mut response = Response::new(ReplyBody::full(b"no"));
        *response.status_mut() = StatusCode::from_u16(code).expect("valid status");
        response
    })
}

pub(super) enum TestListener {
    Tcp(TcpListener),
    Unix(UnixListener),
    Tls(TcpListener, TlsAcceptor),
}

pub(super) struct TestServer {
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub(super) fn start(listener: TestListener, respond: Respond) -> Self {
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

    pub(super) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Stops accepting and closes every connection.
    pub(super) async fn stop(self) {
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

pub(super) async fn tcp_server(respond: Respond) -> (TestServer, SocketAddr) {
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
    let transport = RpcTransport::new(&with_credentials(unix_target(&path))).expect("transport");

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

// ---- Building ------------------------------------------------------------------------------

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
