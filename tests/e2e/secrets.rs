//! Secrets end to end: every output of the real binary (stdout and stderr, at trace level) on
//! failing runs, `check`, `validate` and configuration errors is searched for every secret,
//! as written, percent-encoded and base64-encoded. Also: secrets read from `${file:...}`, the
//! warnings about files every user may read, and running as an unprivileged user against
//! supervisord's socket permissions.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::testkit::receiver::{self, Finished, Running};
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::{yaml_str, WAIT};
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

// ---- Secrets and where to look for them --------------------------------------------------------

/// supervisord's real password, given to the receiver through `${file:...}`.
const RIGHT: &str = "R1ght/pa55:w0rd+e2e";
/// A wrong password, written in the config file.
const WRONG: &str = "Wr0ng pa55/w0rd@e2e";
/// Header values: written in the file, from `${env:...}`, from `${file:...}`.
const HDR_LITERAL: &str = "dd-key/literal+e2e=1";
const HDR_ENV: &str = "api key from env/e2e";
const HDR_FILE: &str = "Bearer tok/en+from=file";

/// Every form in which `secret` could leak: as is, percent-encoded (upper and lower case hex,
/// `+` or `%20` for spaces), and base64 at each of the three alignments it can have inside a
/// longer encoded text.
fn leak_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let encode = |space_plus: bool, lower: bool| {
        let mut out = String::new();
        for b in secret.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' if space_plus => out.push('+'),
                _ if lower => out.push_str(&format!("%{b:02x}")),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    for (plus, lower) in [(false, false), (false, true), (true, false)] {
        forms.push(encode(plus, lower));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for offset in 0..3usize {
        let mut bytes = vec![b'x'; offset];
        bytes.extend_from_slice(secret.as_bytes());
        let encoded = b64.encode(&bytes);
        // Drop the characters that also encode the prefix, and the last group (padding).
        let start = if offset == 0 { 0 } else { 4 };
        let end = encoded.len().saturating_sub(4);
        if let Some(core) = encoded.get(start..end).filter(|c| c.len() >= 8) {
            forms.push(core.to_string());
        }
    }
    forms.sort();
    forms.dedup();
    forms
}

/// Fails when any output of `finished` holds any form of any secret.
fn assert_no_leak(what: &str, finished: &Finished, secrets: &[&str]) {
    for secret in secrets {
        for form in leak_forms(secret) {
            for (stream, text) in [("stdout", &finished.stdout), ("stderr", &finished.stderr)] {
                if let Some(at) = text.find(&form) {
                    let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
                    panic!(
                        "{what}: {stream} holds secret {secret:?} as {form:?}:\n{}",
                        &text[from..to]
                    );
                }
            }
        }
    }
}

fn write_mode(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    path
}

// ---- An OTLP backend that refuses everything ---------------------------------------------------

/// OTLP/HTTP answering `401` under `/401/...` and `403` under `/403/...`, and OTLP/gRPC
/// answering UNAUTHENTICATED, as a backend does for a wrong API key. Keeps the headers it got,
/// to show the secrets really were sent.
struct Refusing {
    http: SocketAddr,
    grpc: SocketAddr,
    headers: Arc<Mutex<Vec<(String, String)>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct RefusingGrpc {
    headers: Arc<Mutex<Vec<(String, String)>>>,
}

#[tonic::async_trait]
impl MetricsService for RefusingGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        record(&self.headers, &request.metadata().clone().into_headers());
        Err(tonic::Status::unauthenticated("invalid API key"))
    }
}

fn record(into: &Mutex<Vec<(String, String)>>, headers: &http::HeaderMap) {
    let mut seen = into.lock().unwrap_or_else(|p| p.into_inner());
    for (k, v) in headers {
        seen.push((
            k.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        ));
    }
}

impl Refusing {
    fn start() -> Refusing {
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        };
        let (http_listener, grpc_listener) = (bind(), bind());
        let http = http_listener.local_addr().expect("addr");
        let grpc = grpc_listener.local_addr().expect("addr");
        let headers = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let seen = headers.clone();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let grpc_listener =
                    tokio::net::TcpListener::from_std(grpc_listener).expect("listener");
                let grpc_server = tonic::transport::Server::builder()
                    .add_service(
                        MetricsServiceServer::new(RefusingGrpc {
                            headers: seen.clone(),
                        })
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                    )
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(
                        grpc_listener,
                    ));
                tokio::spawn(grpc_server);
                let http_listener =
                    tokio::net::TcpListener::from_std(http_listener).expect("listener");
                let serve = async move {
                    loop {
                        let Ok((stream, _)) = http_listener.accept().await else {
                            continue;
                        };
                        let seen = seen.clone();
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                refuse_http(req, seen.clone())
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = shutdown_rx => {}
                }
            });
        });
        Refusing {
            http,
            grpc,
            headers,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn header_values(&self) -> Vec<String> {
        let seen = self.headers.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Waits until every one of `values` arrived in some request header.
    fn wait_for_headers(&self, values: &[&str]) {
        let deadline = Instant::now() + WAIT;
        while !values
            .iter()
            .all(|v| self.header_values().iter().any(|h| h == v))
        {
            assert!(
                Instant::now() < deadline,
                "the refusing backend never got every secret header; got {} headers",
                self.header_values().len()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn refuse_http(
    req: hyper::Request<Incoming>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    record(&seen, req.headers());
    let status = if req.uri().path().starts_with("/403/") {
        403
    } else {
        401
    };
    let _ = req.into_body().collect().await;
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"invalid API key")));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    Ok(response)
}

// ---- Failing runs ------------------------------------------------------------------------------

#[test]
fn no_output_ever_holds_a_secret() {
    let svd = Supervisord::start(
        Options::default()
            .with_auth("admin", RIGHT)
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let backend = Refusing::start();
    let dir = svd.dir();
    // Secret files as systemd or Kubernetes provide them: one trailing newline. The password
    // file is private; the header file is readable by everyone, which earns a warning.
    let password_file = write_mode(dir, "password", &format!("{RIGHT}\n"), 0o600);
    let header_file = write_mode(dir, "token", &format!("{HDR_FILE}\n"), 0o644);
    let cfg = format!(
        "collection_interval: 1s\ninitial_delay: 0s\ntimeout: 1s\ntargets:\n\
         \x20 - {{name: badpass-tcp, endpoint: {tcp}, username: admin, password: {wrong}}}\n\
         \x20 - {{name: badpass-unix, endpoint: {unix}, username: admin, password: {wrong}}}\n\
         \x20 - name: good\n    endpoint: {tcp}\n    username: admin\n    \
         password: \"${{file:{password_file}}}\"\n\
         exporters:\n\
         \x20 otlp/reject401:\n    protocol: http/protobuf\n    endpoint: {http401}\n    \
         headers: {{dd-api-key: {literal}}}\n\
         \x20 otlp/reject403:\n    protocol: http/json\n    endpoint: {http403}\n    \
         headers: {{x-api-key: \"${{env:E2E_HEADER}}\"}}\n\
         \x20 otlp/grpc:\n    protocol: grpc\n    endpoint: {grpc}\n    \
         headers: {{authorization: \"${{file:{header_file}}}\"}}\n\
         \x20 debug:\n    verbosity: detailed\n",
        tcp = yaml_str(&svd.http_url()),
        unix = yaml_str(&svd.unix_url()),
        wrong = yaml_str(WRONG),
        password_file = password_file.display(),
        header_file = header_file.display(),
        http401 = yaml_str(&format!("http://{}/401", backend.http)),
        http403 = yaml_str(&format!("http://{}/403", backend.http)),
        grpc = yaml_str(&format!("http://{}", backend.grpc)),
        literal = yaml_str(HDR_LITERAL),
    );
    // Readable by every user, with a password written in it: a warning says so.
    let config = write_mode(dir, "receiver.yaml", &cfg, 0o644);
    let config_arg = config.to_string_lossy().to_string();
    let env = [("RUST_LOG", "trace"), ("E2E_HEADER", HDR_ENV)];
    let mut running = Running::start(&config, &env);

    for name in ["badpass-tcp", "badpass-unix"] {
        running.wait_for_stderr(
            &format!("Username or password to {name} are incorrect."),
            WAIT,
        );
    }
    backend.wait_for_headers(&[HDR_LITERAL, HDR_ENV, HDR_FILE]);
    let deadline = Instant::now() + WAIT;
    while !running.stdout_so_far().contains("good") {
        assert!(
            Instant::now() < deadline,
            "the debug exporter never printed target good"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let run = running.stop();
    assert_eq!(run.code(), Some(0), "{}", tail(&run));
    assert!(run.stderr.contains("TRACE"), "RUST_LOG=trace is respected");
    assert!(
        run.stderr.contains("readable by every user (mode 0644)"),
        "{}",
        tail(&run)
    );
    assert!(
        run.stderr.contains(&format!(
            "the secret file '{}' is readable by every user",
            header_file.display()
        )),
        "{}",
        tail(&run)
    );

    let check_json = receiver::run_once(
        &["check", "--config", &config_arg, "--output", "json"],
        &env,
    );
    assert_eq!(check_json.code(), Some(1), "{}", tail(&check_json));
    assert!(check_json
        .stdout
        .contains("Username or password to badpass-unix are incorrect."));
    let check_table = receiver::run_once(&["check", "--config", &config_arg], &env);
    assert_eq!(check_table.code(), Some(1), "{}", tail(&check_table));
    let validate = receiver::run_once(&["validate", "--config", &config_arg], &env);
    assert_eq!(validate.code(), Some(0), "{}", tail(&validate));

    let secrets = [RIGHT, WRONG, HDR_LITERAL, HDR_ENV, HDR_FILE];
    let basic = |pw: &str| base64::engine::general_purpose::STANDARD.encode(format!("admin:{pw}"));
    let (basic_right, basic_wrong) = (basic(RIGHT), basic(WRONG));
    let mut all: Vec<&str> = secrets.to_vec();
    all.extend([basic_right.as_str(), basic_wrong.as_str()]);
    for (what, finished) in [
        ("run", &run),
        ("check --output json", &check_json),
        ("check", &check_table),
        ("validate", &validate),
    ] {
        assert_no_leak(what, finished, &all);
    }
}

/// The last lines of a run, for assertion messages (trace output is long).
fn tail(finished: &Finished) -> String {
    let keep = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    format!(
        "exit: {}\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
        finished.status,
        keep(&finished.stdout),
        keep(&finished.stderr)
    )
}

// ---- Configuration errors next to secrets ------------------------------------------------------

#[test]
fn configuration_errors_next_to_secrets_never_show_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let missing = d.join("no-such-secret");
    let native = format!(
        "targets:\n\
         \x20 - name: near\n    endpoint: \"http://admin:Url-pa55/w0rd@127.0.0.1:9001\"\n    \
         username: admin\n    password: [\"List pa55/w0rd\"]\n\
         \x20 - name: near2\n    endpoint: http://127.0.0.1:9001\n    \
         password: \"Lone pa55/w0rd\"\n    pasword: \"Typo pa55/w0rd\"\n    \
         timeout: \"Lone pa55/w0rd\"\n\
         \x20 - name: near3\n    endpoint: http://127.0.0.1:9001\n    username: admin\n    \
         password: \"${{file:{missing}}}\"\n    include: {{names: \"Lone pa55/w0rd\"}}\n\
         exporters:\n  otlp:\n    endpoint: \"https://user:Otlp-url-pa55@otlp.example\"\n    \
         headers: {{x-key: \"Bad-h3ader/value\\a\", y-key: 12345678}}\n    \
         compression: \"Hdr-in-wr0ng/place\"\n    \
         tls: {{ca_file: \"${{file:{missing}}}\"}}\n",
        missing = missing.display(),
    );
    let yaml_error = "targets:\n  - name: a\n    endpoint: http://127.0.0.1:9001\n    \
         username: admin\n    password: \"Yaml pa55/w0rd\"\n    include: [unclosed\n";
    let huge_number = "targets:\n  - name: a\n    endpoint: http://127.0.0.1:9001\n    \
         username: admin\n    password: 987654321987654321987654321987654321\n";
    let datadog = "init_config:\ninstances:\n\
         \x20 - name: dd\n    socket: \"http://admin:Dd-sock-pa55@127.0.0.1:9001\"\n    \
         password: \"Dd pa55/w0rd\"\n    proc_names: \"Dd pa55/w0rd\"\n\
         \x20 - name: dd2\n    host: \"admin:Dd-host-pa55@db\"\n    port: \"Dd pa55/w0rd\"\n";
    let env_config = "init_config:\ninstances:\n  - name: dd\n    socket: unix:///x.sock\n";
    let env: [(&str, &str); 3] = [
        ("RUST_LOG", "trace"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://u:Env-url-pa55@otlp.example",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "dd-api-key=Env%20hdr%2Fpa55,broken",
        ),
    ];
    let secrets = [
        "Url-pa55/w0rd",
        "List pa55/w0rd",
        "Lone pa55/w0rd",
        "Otlp-url-pa55",
        "Bad-h3ader/value",
        "12345678",
        "Yaml pa55/w0rd",
        "987654321987654321",
        "Dd-sock-pa55",
        "Dd pa55/w0rd",
        "Dd-host-pa55",
        "Env-url-pa55",
        "Env hdr/pa55",
        "Env%20hdr",
    ];
    let files = [
        ("native.yaml", native.as_str(), &env[..1]),
        ("yaml-error.yaml", yaml_error, &env[..1]),
        ("huge-number.yaml", huge_number, &env[..1]),
        ("datadog.yaml", datadog, &env[..1]),
        ("env.yaml", env_config, &env[..]),
    ];
    for (name, text, env) in files {
        let path = write_mode(d, name, text, 0o600);
        let path = path.to_string_lossy().to_string();
        for command in ["validate", "check", "run"] {
            let finished = receiver::run_once(&[command, "--config", &path], env);
            assert_eq!(
                finished.code(),
                Some(2),
                "{name} {command}: {}",
                finished.describe()
            );
            assert!(
                finished.stderr.contains(&path),
                "{name} {command}: the errors name the file:\n{}",
                finished.describe()
            );
            assert_no_leak(&format!("{name} {command}"), &finished, &secrets);
        }
    }
    // The errors still say what is wrong, and a missing secret file is named.
    let path = d.join("native.yaml").to_string_lossy().to_string();
    let finished = receiver::run_once(&["validate", "--config", &path], &[]);
    for expected in [
        "targets[0].endpoint: invalid endpoint 'http://***@127.0.0.1:9001': ",
        "exporters.otlp.endpoint: invalid endpoint 'https://***@otlp.example': credentials",
        "targets[2].include.names: expected a list of strings, found a string '***'",
        "targets[0].password: expected a string, found a list",
        "targets[1].password: set username too, or neither",
        "targets[1].pasword: unknown key 'pasword'; did you mean 'password'?",
        "targets[1].timeout: invalid duration '***'",
        &format!(
            "targets[2].password: cannot read secret file '{}': No such file",
            missing.display()
        ),
        "exporters.otlp.headers.x-key: the value has characters not allowed in a header",
    ] {
        assert!(
            finished.stderr.contains(expected),
            "missing {expected:?}:\n{}",
            finished.describe()
        );
    }
}

// ---- An unprivileged receiver and the socket's permissions -------------------------------------

/// `setpriv` from util-linux, when this test runs as root and it is installed: the only way to
/// run the receiver as another user for real.
fn setpriv() -> Option<PathBuf> {
    // SAFETY-free check of the effective user: `id -u` avoids a libc dependency.
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn chown(path: &Path, owner: &str) {
    let status = Command::new("chown")
        .arg(owner)
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {owner} {}", path.display());
}

#[test]
fn an_unprivileged_receiver_needs_the_socket_group() {
    let Some(setpriv) = setpriv() else {
        eprintln!("skipped: needs root and setpriv (util-linux) to run the receiver as nobody");
        return;
    };
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let socket = svd.socket_path().to_path_buf();
    // supervisord's own default: the socket belongs to root, mode 0700. The directory must let
    // others reach the socket (0711), as /run or /var/run does.
    std::fs::set_permissions(svd.dir(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let cfg = format!(
        "targets:\n  - name: local\n    endpoint: {}\nexporters:\n  debug: {{}}\n",
        yaml_str(&svd.unix_url())
    );
    let config = write_mode(svd.dir(), "receiver.yaml", &cfg, 0o644);
    let as_nobody = || {
        let mut cmd = Command::new(&setpriv);
        cmd.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            receiver::BIN,
            "check",
            "--config",
        ])
        .arg(&config)
        .env("RUST_LOG", "info");
        let out = cmd.output().expect("setpriv");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let (code, stdout) = as_nobody();
    assert_eq!(code, Some(1), "{stdout}");
    let message = format!(
        "Cannot connect to {}. Make sure supervisor is running and socket is enabled and socket \
         file has the right permissions.",
        svd.unix_url()
    );
    assert!(stdout.contains(&message), "{stdout}");
    assert!(stdout.contains("Permission denied"), "{stdout}");

    // [unix_http_server] chown=root:nogroup and chmod=0770: the group may connect.
    chown(&socket, "root:nogroup");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let (code, stdout) = as_nobody();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("web"), "{stdout}");
}
