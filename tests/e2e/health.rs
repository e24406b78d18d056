//! End to end health endpoint: the real binary exports to a real OTLP server through a TCP
//! relay the test can cut, and `/healthz` follows: 200 while exports succeed, 503 once they
//! have failed for longer than `unhealthy_after`, 200 again when the backend is back.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::http::{self, health_addr};
use crate::testkit::otlp_sink::OtlpSink;
use crate::testkit::receiver::{run_once, Running};
use crate::testkit::supervisord::{free_port, Options, Program, Supervisord};
use crate::testkit::WAIT;
use serde_json::Value;

/// A TCP relay to `upstream` that can be cut: when down, live connections are closed and new
/// ones are closed as soon as they are accepted, as a backend that went away.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped on every cut, so the copy loops of older connections stop.
    generation: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("relay: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("relay: {e}"));
        let relay = Relay {
            addr,
            up: Arc::new(AtomicBool::new(true)),
            generation: Arc::new(AtomicU64::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
        };
        let (up, generation, closed) = (
            relay.up.clone(),
            relay.generation.clone(),
            relay.closed.clone(),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mine = generation.load(Ordering::SeqCst);
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let generation = generation.clone();
                    thread::spawn(move || pump(from, to, &generation, mine));
                }
            }
        });
        relay
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accept loop so it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies until either side closes or the relay is cut.
fn pump(mut from: TcpStream, mut to: TcpStream, generation: &AtomicU64, mine: u64) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 * 1024];
    while generation.load(Ordering::SeqCst) == mine {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// `GET /healthz` as a probe sends it: the status code and the JSON body.
fn healthz(addr: SocketAddr) -> (u16, Value) {
    let (code, body) = get(addr, "/healthz");
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/healthz body is not JSON ({e}): {body}"));
    (code, json)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let reply = http::get(addr, path);
    (reply.code, reply.body)
}

/// Asks `/healthz` until `done` holds for its answer; panics with the last one after `timeout`.
fn wait_for_health(
    addr: SocketAddr,
    mut done: impl FnMut(u16, &Value) -> bool,
    timeout: Duration,
) -> (u16, Value) {
    let deadline = Instant::now() + timeout;
    loop {
        let (code, body) = healthz(addr);
        if done(code, &body) {
            return (code, body);
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not reach the expected state within {timeout:?}; last: {code} {body}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn healthz_turns_503_while_exports_fail_and_back_to_200() {
    let password = "health-pass-9d1c";
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .with_auth("health-user", password)
            .programs(vec![Program::running("app")]),
    );
    let sink = OtlpSink::start();
    let upstream: SocketAddr = sink
        .http_endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("sink address: {e}"));
    let relay = Relay::start(upstream);
    // Quick retries, so an export succeeds soon after the backend is back.
    let exporter = format!(
        "{}    retry_on_failure:\n      initial_interval: 100ms\n      max_interval: 500ms\n",
        otlp_exporter("http/protobuf", &relay.url(), "none", &[])
    );
    let cfg = format!(
        "{}health:\n  endpoint: 127.0.0.1:0\n  unhealthy_after: 2s\n",
        config::native(
            &[target("web", &svd.http_url()).auth(svd.auth())],
            &[exporter]
        )
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);
    let addr = health_addr(&mut receiver);
    assert!(addr.ip().is_loopback());

    // Healthy: data arrives and the status says which target answered.
    sink.wait_for_poll("web", |p| !p.is_empty(), WAIT);
    let (code, body) = wait_for_health(
        addr,
        |_, body| body["exports"]["last_success_unix_nano"].is_u64(),
        WAIT,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["exports"]["failing_since_unix_nano"], Value::Null);
    let targets = body["targets"].as_array().cloned().unwrap_or_default();
    assert_eq!(targets.len(), 1, "{body}");
    assert_eq!(targets[0]["name"], "web");
    assert_eq!(targets[0]["last_poll"], "ok");
    assert!(
        targets[0]["polls"].as_u64().is_some_and(|n| n >= 1),
        "{body}"
    );
    let text = body.to_string();
    for secret in [password, "health-user", "127.0.0.1"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let (code, _) = get(addr, "/");
    assert_eq!(code, 404);

    // The backend goes away: unhealthy once exports have failed for more than 2 s.
    relay.cut();
    let (code, body) = wait_for_health(addr, |code, _| code != 200, WAIT);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    let failing_for = body["exports"]["failing_for_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("no failing_for_seconds: {body}"));
    assert!(failing_for > 2.0, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("every export has failed for ")),
        "{body}"
    );
    assert_eq!(body["targets"][0]["last_poll"], "ok", "polling goes on");

    // Back: the next export that gets through makes it healthy again.
    relay.restore();
    let (code, body) = wait_for_health(addr, |code, _| code == 200, WAIT);
    assert_eq!(body["status"], "ok", "{code} {body}");
    assert_eq!(body["exports"]["failing_since_unix_nano"], Value::Null);

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(!finished.stderr.contains(password));
}

#[test]
fn non_loopback_addresses_need_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let base = config::native(
        &[target("web", "http://127.0.0.1:9001")],
        &["  debug: {}\n".to_string()],
    );
    let refused = config::write(
        dir.path(),
        "open.yaml",
        &format!("{base}health:\n  endpoint: 0.0.0.0:13133\n"),
    );
    let run = run_once(&["validate", "--config", &refused.to_string_lossy()], &[]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains(
            "health.endpoint: '0.0.0.0:13133' is not a loopback address; the health status \
             names every target, so set allow_non_loopback: true to serve it beyond this host"
        ),
        "{}",
        run.describe()
    );
    let allowed = config::write(
        dir.path(),
        "allowed.yaml",
        &format!("{base}health:\n  endpoint: 0.0.0.0:13133\n  allow_non_loopback: true\n"),
    );
    let run = run_once(&["validate", "--config", &allowed.to_string_lossy()], &[]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let named = config::write(
        dir.path(),
        "named.yaml",
        &format!("{base}health:\n  endpoint: example.com:13133\n"),
    );
    let run = run_once(&["validate", "--config", &named.to_string_lossy()], &[]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr
            .contains("the host must be an IP address or localhost"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_taken_health_port_stops_the_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = taken
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port();
    let cfg = format!(
        "{}health:\n  endpoint: 127.0.0.1:{port}\n",
        config::native(
            &[target("web", &format!("http://127.0.0.1:{}", free_port()))],
            &["  debug: {}\n".to_string()],
        )
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let run = run_once(&["run", "--config", &path.to_string_lossy()], &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains(&format!(
            "error: health endpoint 127.0.0.1:{port}: cannot listen: "
        )),
        "{}",
        run.describe()
    );
}
