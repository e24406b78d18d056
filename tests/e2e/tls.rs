//! TLS end to end: HTTPS to supervisord and OTLP over TLS (gRPC and HTTP), with certificates
//! made by the test, mutual TLS, a wrong CA, `server_name` and `insecure_skip_verify`.
//!
//! supervisord has no TLS of its own: in production it sits behind a TLS proxy. The tests do the
//! same with a small TLS-terminating proxy in front of the real supervisord's inet port and in
//! front of the real OTLP sink's ports, so every byte still reaches real servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::testkit::config::{self, target};
use crate::testkit::otlp_sink::{self, OtlpSink, Protocol};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::{yaml_str, WAIT};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

// ---- Certificates ------------------------------------------------------------------------------

/// A CA, a server certificate it signed, a client certificate it signed, and a second CA that
/// signed nothing here: every file the tests point the receiver at.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// For the proxies: the server chain and key, and the CA that client certificates need.
    server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    /// A server certificate for `supervisord.test` only (not for 127.0.0.1).
    named_server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    client_roots: Arc<RootCertStore>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params.extended_key_usages = vec![usage];
    params
        .distinguished_name
        .push(DnType::CommonName, "e2e tls");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("certificate");
    (cert, key)
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ca("e2e test CA");
        let other = ca_named_other();
        let (server_cert, server_key) = leaf(
            &ca,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (named_cert, named_key) = leaf(
            &ca,
            &["supervisord.test"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            leaf(&ca, &["receiver"], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, text: &str| write_private(dir.path(), name, text);
        let mut client_roots = RootCertStore::empty();
        client_roots.add(ca.der().clone()).expect("CA root");
        Pki {
            ca: write("ca.pem", &ca.pem()),
            other_ca: write("other-ca.pem", &other.pem()),
            client_cert: write("client.pem", &client_cert.pem()),
            client_key: write("client-key.pem", &client_key.serialize_pem()),
            server: (
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            ),
            named_server: (
                vec![named_cert.der().clone()],
                PrivateKeyDer::Pkcs8(named_key.serialize_der().into()),
            ),
            client_roots: Arc::new(client_roots),
            dir,
        }
    }

    fn path(p: &Path) -> String {
        yaml_str(&p.to_string_lossy())
    }

    /// A `tls:` block (for a target's `extra`, or indented under an exporter).
    fn tls_yaml(&self, ca: &Path, client_cert: bool) -> String {
        let mut out = format!("tls:\n  ca_file: {}\n", Pki::path(ca));
        if client_cert {
            out.push_str(&format!(
                "  cert_file: {}\n  key_file: {}\n",
                Pki::path(&self.client_cert),
                Pki::path(&self.client_key)
            ));
        }
        out
    }
}

fn ca_named_other() -> CertifiedIssuer<'static, KeyPair> {
    ca("some other CA")
}

/// Keys and certificates as a careful operator keeps them: readable by the owner only.
fn write_private(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write PEM");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

// ---- A TLS-terminating proxy -------------------------------------------------------------------

/// Accepts TLS on 127.0.0.1 and forwards the plaintext to `backend`, like the stunnel or nginx
/// an operator puts in front of supervisord's inet port or a collector. Records every failed
/// handshake, as seen from the server side.
struct TlsFront {
    addr: SocketAddr,
    failures: Arc<Mutex<Vec<String>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// `client_roots`: when set, a client certificate signed by them is required.
    fn start(
        backend: SocketAddr,
        identity: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        client_roots: Option<Arc<RootCertStore>>,
    ) -> TlsFront {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_roots {
            Some(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .expect("client verifier"),
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(identity.0.clone(), identity.1.clone_key())
            .expect("server config");
        // gRPC needs h2 negotiated; HTTP/1.1 clients offer only http/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let failures_t = failures.clone();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let serve = async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let (acceptor, failures) = (acceptor.clone(), failures_t.clone());
                        tokio::spawn(async move {
                            let mut tls = match acceptor.accept(stream).await {
                                Ok(tls) => tls,
                                Err(e) => {
                                    failures.lock().expect("lock").push(e.to_string());
                                    return;
                                }
                            };
                            let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await
                            else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = shutdown_rx => {}
                }
            });
        });
        TlsFront {
            addr,
            failures,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("lock").clone()
    }

    /// Waits until a handshake failed in a way `matches` recognises.
    fn wait_for_failure(&self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(f) = self.failures().into_iter().find(|f| matches(f)) {
                return f;
            }
            assert!(
                Instant::now() < deadline,
                "no such handshake failure within {WAIT:?}; failures: {:?}",
                self.failures()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn addr_of(url: &str) -> SocketAddr {
    let host_port = url.trim_start_matches("http://");
    host_port.parse().expect("a 127.0.0.1:port URL")
}

fn disconnected(poll: &otlp_sink::Poll) -> bool {
    poll.value("supervisord.can_connect", &[]) == Some(0)
}

// ---- supervisord over HTTPS --------------------------------------------------------------------

#[test]
fn https_supervisord_requires_the_client_certificate_and_the_right_ca() {
    let pki = Pki::new();
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .with_auth("tls-user", "tls-pass-7c2e")
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let front = TlsFront::start(
        addr_of(&svd.http_url()),
        &pki.server,
        Some(pki.client_roots.clone()),
    );
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[
            target("mtls", &front.url())
                .auth(svd.auth())
                .extra(&pki.tls_yaml(&pki.ca, true)),
            target("no-client-cert", &front.url())
                .auth(svd.auth())
                .extra(&pki.tls_yaml(&pki.ca, false)),
            target("wrong-ca", &front.url())
                .auth(svd.auth())
                .extra(&pki.tls_yaml(&pki.other_ca, true)),
        ],
        &[config::otlp_exporter(
            "grpc",
            &sink.grpc_endpoint(),
            "none",
            &[],
        )],
    );
    let path = config::write(pki.dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    let poll = sink.wait_for_processes("mtls", &["web"], WAIT);
    crate::testkit::expect::connected(&poll);
    for name in ["no-client-cert", "wrong-ca"] {
        let poll = sink.wait_for_poll(name, disconnected, WAIT);
        assert!(poll.process_names().is_empty(), "{}", poll.describe());
    }
    // The server refused the handshake without a certificate; the receiver says why.
    front.wait_for_failure(|f| f.contains("no certificates") || f.contains("Certificate"));
    let cannot = format!(
        "Cannot connect to {}. Make sure supervisor is running and XML-RPC inet interface is \
         enabled.",
        front.url()
    );
    let stderr = receiver.wait_for_stderr("UnknownIssuer", WAIT);
    assert!(stderr.contains(&cannot), "{stderr}");
    let stderr = receiver.wait_for_stderr("CertificateRequired", WAIT);
    for line in stderr.lines().filter(|l| l.contains("CertificateRequired")) {
        assert!(line.contains("no-client-cert"), "{line}");
    }
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}

#[test]
fn server_name_and_insecure_skip_verify() {
    let pki = Pki::new();
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    // The certificate names supervisord.test, not the address the receiver connects to.
    let front = TlsFront::start(addr_of(&svd.http_url()), &pki.named_server, None);
    let sink = OtlpSink::start();
    // An OTLP backend whose certificate no configured CA signed.
    let otlp_front = TlsFront::start(addr_of(&sink.http_endpoint()), &Pki::new().server, None);
    let ca = Pki::path(&pki.ca);
    let cfg = format!(
        "{}  otlp/insecure:\n    protocol: http/protobuf\n    endpoint: {}\n    \
         tls: {{insecure_skip_verify: true}}\n",
        config::native(
            &[
                target("named", &front.url()).extra(&format!(
                    "tls: {{ca_file: {ca}, server_name: supervisord.test}}"
                )),
                target("unnamed", &front.url()).extra(&format!("tls: {{ca_file: {ca}}}")),
                target("insecure", &front.url()).extra("tls: {insecure_skip_verify: true}"),
            ],
            &[],
        ),
        yaml_str(&otlp_front.url()),
    );
    let path = config::write(pki.dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    for name in ["named", "insecure"] {
        let poll = sink.wait_for_processes(name, &["web"], WAIT);
        crate::testkit::expect::connected(&poll);
    }
    sink.wait_for_poll("unnamed", disconnected, WAIT);
    receiver.wait_for_stderr("certificate not valid for name \\\"127.0.0.1\\\"", WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    // Turning verification off is logged at start, naming what it applies to.
    for subject in ["target 'insecure'", "exporter 'otlp/insecure'"] {
        let line = finished
            .stderr
            .lines()
            .find(|l| {
                l.contains(&format!(
                    "TLS certificate verification is off for {subject}"
                ))
            })
            .unwrap_or_else(|| panic!("no warning for {subject}:\n{}", finished.describe()));
        assert!(line.contains("WARN"), "{line}");
    }
    assert!(
        !finished
            .stderr
            .contains("verification is off for target 'named'"),
        "{}",
        finished.describe()
    );
}

// ---- OTLP over TLS -----------------------------------------------------------------------------

/// The `otlp/<name>` block for an exporter behind a TLS front.
fn tls_exporter(name: &str, protocol: &str, endpoint: &str, tls: &str) -> String {
    let mut out = format!(
        "  otlp/{name}:\n    protocol: {protocol}\n    endpoint: {}\n    compression: none\n",
        yaml_str(endpoint)
    );
    for line in tls.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn otlp_grpc_and_http_over_mutual_tls() {
    let pki = Pki::new();
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let roots = Some(pki.client_roots.clone());
    let grpc_front = TlsFront::start(addr_of(&sink.grpc_endpoint()), &pki.server, roots.clone());
    let http_front = TlsFront::start(addr_of(&sink.http_endpoint()), &pki.server, roots);
    let cfg = config::native(
        &[target("local", &svd.unix_url())],
        &[
            tls_exporter(
                "grpc",
                "grpc",
                &grpc_front.url(),
                &pki.tls_yaml(&pki.ca, true),
            ),
            tls_exporter(
                "http",
                "http/protobuf",
                &http_front.url(),
                &pki.tls_yaml(&pki.ca, true),
            ),
        ],
    );
    let path = config::write(pki.dir.path(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    let requests = sink.wait_for(
        |r| {
            [Protocol::Grpc, Protocol::HttpProtobuf].iter().all(|p| {
                let of_protocol: Vec<_> = r.iter().filter(|x| x.protocol == *p).cloned().collect();
                otlp_sink::latest_poll(&of_protocol, "local")
                    .process_names()
                    .contains("web")
            })
        },
        WAIT,
    );
    assert!(!requests.is_empty());
    assert!(
        grpc_front.failures().is_empty(),
        "{:?}",
        grpc_front.failures()
    );
    assert!(
        http_front.failures().is_empty(),
        "{:?}",
        http_front.failures()
    );
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}

#[test]
fn otlp_without_client_certificate_or_with_a_wrong_ca_fails_clearly() {
    let pki = Pki::new();
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let roots = Some(pki.client_roots.clone());
    let grpc_front = TlsFront::start(addr_of(&sink.grpc_endpoint()), &pki.server, roots.clone());
    let http_front = TlsFront::start(addr_of(&sink.http_endpoint()), &pki.server, roots);
    let (grpc, http) = (grpc_front.url(), http_front.url());
    let cfg = config::native(
        &[target("local", &svd.unix_url())],
        &[
            tls_exporter("grpc-nocert", "grpc", &grpc, &pki.tls_yaml(&pki.ca, false)),
            tls_exporter(
                "grpc-wrongca",
                "grpc",
                &grpc,
                &pki.tls_yaml(&pki.other_ca, true),
            ),
            tls_exporter(
                "http-nocert",
                "http/protobuf",
                &http,
                &pki.tls_yaml(&pki.ca, false),
            ),
            tls_exporter(
                "http-wrongca",
                "http/protobuf",
                &http,
                &pki.tls_yaml(&pki.other_ca, true),
            ),
        ],
    );
    // Self-telemetry would follow the first exporter and add handshakes of its own to the ones
    // this test reads: off, so each failure logged belongs to one data exporter.
    let cfg = format!("{cfg}telemetry:\n  metrics: false\n");
    let path = config::write(pki.dir.path(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    // Seen from the servers: handshakes without a certificate, and handshakes the client
    // aborted because it does not trust the server.
    for front in [&grpc_front, &http_front] {
        front.wait_for_failure(|f| f.contains("no certificates"));
        front.wait_for_failure(|f| f.contains("UnknownCA"));
    }
    // Seen from the receiver: each exporter's failure, with the TLS reason where the client
    // library reports one.
    let logged = |stderr: &str, exporter: &str, reason: &str| {
        stderr
            .lines()
            .any(|l| l.contains(&format!("otlp/{exporter}")) && l.contains(reason))
    };
    let deadline = Instant::now() + WAIT;
    let expected = [
        ("grpc-wrongca", "UnknownIssuer"),
        ("http-wrongca", "UnknownIssuer"),
        ("http-nocert", "CertificateRequired"),
        ("grpc-nocert", "failed"),
    ];
    loop {
        let stderr = receiver.stderr_so_far();
        if expected.iter().all(|(e, r)| logged(&stderr, e, r)) {
            break;
        }
        assert!(Instant::now() < deadline, "missing failure logs:\n{stderr}");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        sink.requests().is_empty(),
        "{}",
        otlp_sink::summarize(&sink.requests())
    );
    // Data that cannot be delivered is held until the stop limit; no need to wait for it.
    drop(receiver);
}

#[test]
fn otlp_tls_from_the_standard_environment_variables() {
    let pki = Pki::new();
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let front = TlsFront::start(
        addr_of(&sink.http_endpoint()),
        &pki.server,
        Some(pki.client_roots.clone()),
    );
    let cfg = format!(
        "init_config:\ninstances:\n  - name: dd-local\n    socket: {}\n    \
         min_collection_interval: 1\n",
        yaml_str(&svd.unix_url())
    );
    let path = config::write(pki.dir.path(), "conf.yaml", &cfg);
    let (ca, cert, key) = (
        pki.ca.to_string_lossy().to_string(),
        pki.client_cert.to_string_lossy().to_string(),
        pki.client_key.to_string_lossy().to_string(),
    );
    let endpoint = front.url();
    // The generic and the signal-specific forms, mixed: each is honoured. (Each signal needs
    // its certificate and key: the logs one has its own variable here.)
    let receiver = Running::start(
        &path,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
            ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
        ],
    );

    sink.wait_for_processes("dd-local", &["web"], WAIT);
    assert!(front.failures().is_empty(), "{:?}", front.failures());
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());

    // Without the key, the configuration is refused before anything starts.
    let finished = crate::testkit::receiver::run_once(
        &["validate", "--config", &path.to_string_lossy()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
        ],
    );
    assert_eq!(finished.code(), Some(2), "{}", finished.describe());
    assert!(
        finished
            .stderr
            .contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: set OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{}",
        finished.describe()
    );
}

#[test]
fn a_key_that_does_not_match_its_certificate_stops_the_start() {
    let pki = Pki::new();
    let other_key = write_private(
        pki.dir.path(),
        "other-key.pem",
        &KeyPair::generate().expect("key").serialize_pem(),
    );
    let tls = format!(
        "tls:\n  ca_file: {}\n  cert_file: {}\n  key_file: {}\n",
        Pki::path(&pki.ca),
        Pki::path(&pki.client_cert),
        Pki::path(&other_key)
    );
    let cfg = config::native(
        &[target("local", "unix:///nonexistent/supervisor.sock")],
        &[tls_exporter(
            "backend",
            "grpc",
            "https://127.0.0.1:4317",
            &tls,
        )],
    );
    let path = config::write(pki.dir.path(), "receiver.yaml", &cfg);
    let finished =
        crate::testkit::receiver::run_once(&["run", "--config", &path.to_string_lossy()], &[]);
    assert_eq!(finished.code(), Some(1), "{}", finished.describe());
    let expected = format!(
        "key_file '{}': the key does not belong to the certificate of cert_file '{}'",
        other_key.display(),
        pki.client_cert.display()
    );
    assert!(
        finished.stderr.contains(&expected),
        "{}",
        finished.describe()
    );
}
