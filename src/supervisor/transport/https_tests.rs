//! Tests of hyper's pool, which HTTPS targets use: at the I/O layer through a recording TCP
//! connector (one write per request, `TCP_NODELAY`, a server restart between posts), and over
//! TLS against a throwaway CA (trust, `insecure_skip_verify`, unusable CA files).

use std::error::Error as StdError;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::Uri;
use hyper::rt::ReadBufCursor;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use rustls::pki_types::PrivateKeyDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use super::{http_connector, pooled_client};
use crate::settings::{Target, TlsSettings};
use crate::supervisor::transport::tests::{
    https_target, ok, post, tcp_server, tcp_target, with_credentials, TestListener, TestServer,
    CALL, EXPECTED_AUTH, FAILSAFE, REPLY,
};
use crate::supervisor::transport::{Pool, RpcTransport, TransportError};

// ---- A connector that records what the transport writes ---------------------------------

/// The production TCP connector, wrapped to record each write call, `TCP_NODELAY`, and
/// when the server closes the connection.
#[derive(Clone)]
pub(in crate::supervisor::transport) struct ObservedConnector {
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

pub(in crate::supervisor::transport) struct ObservedIo {
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
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA");

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
