//! One bad target never hurts another: the real binary polls hundreds of healthy fake
//! supervisords beside hostile ones (slow, silent, hanging up, oversized, unreachable) and
//! broken replies, and a real supervisord that is restarted under it.
//!
//! Schedules are checked from what the OTLP server received (the `can_connect` timestamps the
//! receiver itself reports), never by timing the test's own code.

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use supervisord_receiver::supervisor::xmlrpc::{self, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;

use support::config::{self, otlp_exporter, target, TargetYaml};
use support::otlp_sink::{self, OtlpSink, Poll, ReceivedRequest, SERVER_ATTR};
use support::receiver::Running;
use support::supervisord::{parse_status, Options, Program, Supervisord};
use support::WAIT;

const CAN_CONNECT: &str = "supervisord.can_connect";

/// A reply recorded from a real supervisord 4.3.0: what the healthy fakes serve.
const RECORDED: &str = include_str!("fixtures/xmlrpc/multicall_recorded_supervisord_4.3.0.xml");

/// The tests of this file load the machine (hundreds of connections, a real supervisord):
/// one at a time, so none of them judges a schedule while another competes for the cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- Fake supervisords ------------------------------------------------------------------------

/// How a fake endpoint treats each connection.
#[derive(Clone)]
enum Behaviour {
    /// Answers every request on the connection (keep-alive) with `200 OK` and this body.
    Reply(Arc<Vec<u8>>),
    /// Answers with this status and a short body.
    Status(u16, &'static str),
    /// A complete head, then the body one byte every 500 ms, forever.
    Slowloris,
    /// Reads the request and never answers.
    Silent,
    /// Sends the head and half the body, then closes.
    HangUp,
    /// A chunked body that never ends (past any size cap).
    Endless,
}

/// Fake supervisord endpoints on loopback ports, served by the test's own runtime.
struct Fakes {
    runtime: Option<Runtime>,
    /// Listeners whose accept queue is full (and the connections filling it): a connect to
    /// them is neither accepted nor refused.
    unaccepting: Vec<(std::net::TcpListener, Vec<StdTcpStream>)>,
}

/// Connections an endpoint accepted.
type Accepted = Arc<AtomicUsize>;

impl Fakes {
    fn new() -> Fakes {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fake servers: cannot build runtime: {e}"));
        Fakes {
            runtime: Some(runtime),
            unaccepting: Vec::new(),
        }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime
            .as_ref()
            .unwrap_or_else(|| panic!("fake servers already stopped"))
    }

    /// Starts an endpoint; returns its `http://` URL and its accepted-connection count.
    fn serve(&self, behaviour: Behaviour) -> (String, Accepted) {
        let accepted = Accepted::default();
        let count = accepted.clone();
        let listener = self.runtime().block_on(async {
            TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("fake server: cannot bind: {e}"))
        });
        let addr = local_addr(listener.local_addr());
        self.runtime().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream, behaviour.clone()));
            }
        });
        (format!("http://{addr}"), accepted)
    }

    /// An endpoint whose connects hang: its accept queue is full, so the kernel drops SYNs.
    fn unaccepting(&mut self) -> String {
        let _enter = self.runtime().enter();
        let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(any).unwrap_or_else(|e| panic!("bind: {e}"));
        let listener = socket
            .listen(0)
            .unwrap_or_else(|e| panic!("listen: {e}"))
            .into_std()
            .unwrap_or_else(|e| panic!("into_std: {e}"));
        let addr = local_addr(listener.local_addr());
        let mut fillers = Vec::new();
        while fillers.len() < 8 {
            match StdTcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => fillers.push(stream),
                Err(_) => break,
            }
        }
        assert!(!fillers.is_empty(), "could not fill the accept queue");
        self.unaccepting.push((listener, fillers));
        format!("http://{addr}")
    }
}

impl Drop for Fakes {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn local_addr(addr: std::io::Result<SocketAddr>) -> SocketAddr {
    addr.unwrap_or_else(|e| panic!("local_addr: {e}"))
}

async fn handle(mut stream: TcpStream, behaviour: Behaviour) {
    let mut pending = Vec::new();
    loop {
        if !read_request(&mut stream, &mut pending).await {
            return;
        }
        match &behaviour {
            Behaviour::Reply(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(body).await.is_err()
                {
                    return;
                }
            }
            Behaviour::Status(code, reason) => {
                let reply = format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 2\r\n\r\nno");
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behaviour::Slowloris => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    RECORDED.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for byte in RECORDED.bytes().cycle() {
                    if stream.write_all(&[byte]).await.is_err() {
                        return;
                    }
                    let mut probe = [0u8; 1024];
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        read = stream.read(&mut probe) => {
                            if matches!(read, Ok(0) | Err(_)) {
                                return;
                            }
                        }
                    }
                }
            }
            Behaviour::Silent => {
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Behaviour::HangUp => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    RECORDED.len()
                );
                let half = RECORDED.get(..RECORDED.len() / 2).unwrap_or_default();
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(half.as_bytes()).await;
                let _ = stream.shutdown().await;
                return;
            }
            Behaviour::Endless => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\
                            Transfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                return;
            }
        }
    }
}

/// Reads one request (head and `Content-Length` body) into `pending`, then removes it;
/// false when the client closed the connection.
async fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(pending.get(..end).unwrap_or_default())
                .to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if pending.len() >= end + 4 + length {
                pending.drain(..end + 4 + length);
                return true;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => pending.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

// ---- What the OTLP server received --------------------------------------------------------------

/// `can_connect` points per target, `(time_unix_nano, value)`, read incrementally from the
/// requests the sink received (hundreds of targets: re-reading everything on each wake-up
/// would cost more than the polls).
#[derive(Default)]
struct CanConnect {
    read: usize,
    by_target: BTreeMap<String, Vec<(u64, i64)>>,
}

impl CanConnect {
    fn update(&mut self, requests: &[ReceivedRequest]) {
        for received in requests.get(self.read..).unwrap_or_default() {
            for rm in &received.request.resource_metrics {
                let server = rm
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == SERVER_ATTR))
                    .map(|kv| otlp_sink::any_value_string(kv.value.as_ref()))
                    .unwrap_or_default();
                for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
                    let Some(metric::Data::Gauge(gauge)) = &m.data else {
                        continue;
                    };
                    if m.name != CAN_CONNECT {
                        continue;
                    }
                    for dp in &gauge.data_points {
                        if let Some(number_data_point::Value::AsInt(v)) = dp.value {
                            self.by_target
                                .entry(server.clone())
                                .or_default()
                                .push((dp.time_unix_nano, v));
                        }
                    }
                }
            }
        }
        self.read = requests.len();
    }

    fn points(&self, target: &str) -> Vec<(u64, i64)> {
        let mut points = self.by_target.get(target).cloned().unwrap_or_default();
        points.sort_unstable();
        points
    }

    fn count(&self, target: &str) -> usize {
        self.by_target.get(target).map_or(0, Vec::len)
    }
}

/// The longest gap between consecutive polls of a target, in nanoseconds.
fn longest_gap(points: &[(u64, i64)]) -> u64 {
    points
        .windows(2)
        .map(|w| match w {
            [(a, _), (b, _)] => b.saturating_sub(*a),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn connected(poll: &Poll) -> bool {
    poll.value(CAN_CONNECT, &[]) == Some(1)
}

fn disconnected(poll: &Poll) -> bool {
    poll.value(CAN_CONNECT, &[]) == Some(0)
}

fn inet_message(url: &str) -> String {
    format!(
        "Cannot connect to {url}. Make sure supervisor is running and XML-RPC inet interface is \
         enabled."
    )
}

// ---- Hundreds of healthy targets beside hostile ones ---------------------------------------------

const HEALTHY: usize = 300;
/// Polls of every target before the schedule is judged.
const POLLS: usize = 8;
const INTERVAL_NANOS: u64 = 1_000_000_000;

#[test]
fn hundreds_of_healthy_targets_keep_their_schedule_beside_hostile_ones() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut fakes = Fakes::new();
    let recorded = Arc::new(RECORDED.as_bytes().to_vec());
    let mut targets: Vec<TargetYaml> = (0..HEALTHY)
        .map(|i| {
            let (url, _) = fakes.serve(Behaviour::Reply(recorded.clone()));
            target(&format!("healthy-{i:03}"), &url)
        })
        .collect();
    let mut hostile: Vec<(&str, String, Option<Accepted>)> = Vec::new();
    for (name, behaviour) in [
        ("slowloris", Behaviour::Slowloris),
        ("silent", Behaviour::Silent),
        ("hangup", Behaviour::HangUp),
        ("endless", Behaviour::Endless),
    ] {
        let (url, accepted) = fakes.serve(behaviour);
        hostile.push((name, url, Some(accepted)));
    }
    hostile.push(("unaccepting", fakes.unaccepting(), None));
    for (name, url, _) in &hostile {
        targets.push(target(name, url));
    }

    let sink = OtlpSink::start();
    let cfg = config::native(
        &targets,
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "gzip", &[])],
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    let names: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, _)| match i.checked_sub(HEALTHY) {
            None => format!("healthy-{i:03}"),
            Some(h) => hostile
                .get(h)
                .map(|(n, _, _)| n.to_string())
                .unwrap_or_default(),
        })
        .collect();
    let mut seen = CanConnect::default();
    sink.wait_for(
        |requests| {
            seen.update(requests);
            names.iter().all(|name| seen.count(name) >= POLLS)
        },
        Duration::from_secs(40),
    );

    // Every hostile target failed with its own reason, in the check's words.
    let mut logs = |needle: &str| receiver.wait_for_stderr(needle, WAIT);
    let url = |name: &str| {
        hostile
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, u, _)| u.clone())
            .unwrap_or_default()
    };
    logs(&inet_message(&url("slowloris")));
    logs("timed out after 1s while reading the reply");
    logs("timed out after 1s waiting for the reply");
    logs("timed out after 1s while connecting");
    logs(&inet_message(&url("hangup")));
    logs("Invalid reply from endless: reply larger than 16777216 bytes");
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    seen.update(&sink.requests());

    let mut late = Vec::new();
    for name in &names {
        let points = seen.points(name);
        let healthy = name.starts_with("healthy-");
        let expected = i64::from(healthy);
        assert!(
            points.iter().all(|(_, v)| *v == expected),
            "{name}: can_connect should always be {expected}: {points:?}"
        );
        let gap = longest_gap(&points);
        if gap > INTERVAL_NANOS + 1_000_000_000 {
            late.push(format!("{name}: {:.3}s", gap as f64 / 1e9));
        }
    }
    assert!(
        late.is_empty(),
        "consecutive polls more than interval + 1s apart: {late:?}"
    );
    // No reconnect storm: at most one connection per poll (plus the one in flight at the stop).
    for (name, _, accepted) in &hostile {
        if let Some(accepted) = accepted {
            let accepted = accepted.load(Ordering::SeqCst);
            let polls = seen.count(name);
            assert!(
                accepted <= polls + 1,
                "{name}: {accepted} connections for {polls} polls"
            );
        }
    }
    drop(fakes);
}

// ---- Hostile replies ---------------------------------------------------------------------------

fn process(name: &str, statename: &str, state: i64) -> Vec<(String, Value)> {
    let s = |v: &str| Value::String(v.to_owned());
    vec![
        ("name".into(), s(name)),
        ("group".into(), s(name)),
        ("start".into(), Value::Int(100)),
        ("stop".into(), Value::Int(0)),
        ("now".into(), Value::Int(160)),
        ("state".into(), Value::Int(state)),
        ("statename".into(), s(statename)),
        ("spawnerr".into(), s("")),
        ("exitstatus".into(), Value::Int(0)),
        ("logfile".into(), s("/tmp/log")),
        ("stdout_logfile".into(), s("/tmp/log")),
        ("stderr_logfile".into(), s("")),
        ("pid".into(), Value::Int(42)),
        ("description".into(), s("pid 42, uptime 0:01:00")),
    ]
}

/// A `system.multicall` reply as supervisord sends it (bare results).
fn multicall(processes: Vec<Value>) -> Vec<u8> {
    let state = Value::Struct(vec![
        ("statecode".into(), Value::Int(1)),
        ("statename".into(), Value::String("RUNNING".into())),
    ]);
    xmlrpc::encode_response(&Value::Array(vec![
        Value::Array(processes),
        state,
        Value::String("supervisor".into()),
        Value::String("4.3.0".into()),
    ]))
}

fn with_field(mut fields: Vec<(String, Value)>, key: &str, value: Option<Value>) -> Value {
    fields.retain(|(k, _)| k != key);
    if let Some(value) = value {
        fields.push((key.to_owned(), value));
    }
    Value::Struct(fields)
}

/// A target that fails the poll: `can_connect` 0 and this line in the log.
struct Fatal {
    name: &'static str,
    behaviour: Behaviour,
    log: String,
}

/// A target whose reply is kept, with a problem logged: `can_connect` 1 and this line.
struct Lenient {
    name: &'static str,
    body: Vec<u8>,
    log: &'static str,
}

fn reply(body: impl Into<Vec<u8>>) -> Behaviour {
    Behaviour::Reply(Arc::new(body.into()))
}

fn fatal_cases() -> Vec<Fatal> {
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n\
                  <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n\
                  <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n\
                  <methodResponse><params><param><value><string>&lol3;</string></value>\
                  </param></params></methodResponse>";
    let mut invalid_utf8 = RECORDED.as_bytes().to_vec();
    let at = RECORDED.find("<string>bad</string>").unwrap_or(0) + "<string>".len();
    if let Some(byte) = invalid_utf8.get_mut(at) {
        *byte = 0xFF;
    }
    let deep = format!(
        "<?xml version='1.0'?><methodResponse><params><param>{}{}</param></params></methodResponse>",
        "<value><array><data>".repeat(10_000),
        "</data></array></value>".repeat(10_000)
    );
    let huge_name = "n".repeat(17 * 1024 * 1024);
    let huge = multicall(vec![Value::Struct(process(&huge_name, "RUNNING", 20))]);
    let fault = xmlrpc::encode_response(&Value::Array(vec![Value::Struct(vec![
        ("faultCode".into(), Value::Int(10)),
        ("faultString".into(), Value::String("BAD_NAME".into())),
    ])]));
    let half = RECORDED.get(..RECORDED.len() / 2).unwrap_or_default();
    vec![
        Fatal {
            name: "malformed",
            behaviour: reply(format!("{half}</value></methodResponse>")),
            log: "Invalid reply from malformed: ".into(),
        },
        Fatal {
            name: "html",
            behaviour: reply(
                "<!DOCTYPE html>\n<html><head><title>Supervisor Status</title></head></html>",
            ),
            log: "Invalid reply from html: the reply is an HTML page, not XML-RPC: is the URL \
                  missing /RPC2?"
                .into(),
        },
        Fatal {
            name: "laughs",
            behaviour: reply(laughs),
            log: "Invalid reply from laughs: the reply contains a DTD (<!DOCTYPE>), which is \
                  refused"
                .into(),
        },
        Fatal {
            name: "entity",
            behaviour: reply(RECORDED.replacen(
                "<string>bad</string>",
                "<string>&xxe;</string>",
                1,
            )),
            log: "Invalid reply from entity: the reply uses entity '&xxe;'".into(),
        },
        Fatal {
            name: "utf8",
            behaviour: reply(invalid_utf8),
            log: format!("Invalid reply from utf8: the reply is not valid UTF-8 (byte {at})"),
        },
        Fatal {
            name: "deep",
            behaviour: reply(deep),
            log: "Invalid reply from deep: values nest deeper than 64 levels".into(),
        },
        Fatal {
            name: "huge",
            behaviour: reply(huge),
            log: "Invalid reply from huge: reply larger than 16777216 bytes".into(),
        },
        Fatal {
            name: "fault",
            behaviour: reply(fault),
            log: "An error occurred while reading process information: 10 BAD_NAME".into(),
        },
        Fatal {
            name: "wrongtype",
            behaviour: reply(xmlrpc::encode_response(&Value::Array(vec![Value::String(
                "processes".into(),
            )]))),
            log: "Invalid reply from wrongtype: getAllProcessInfo returned a string, not an array"
                .into(),
        },
        Fatal {
            name: "empty",
            behaviour: reply(""),
            log: "Invalid reply from empty: the reply is empty".into(),
        },
        Fatal {
            name: "status500",
            behaviour: Behaviour::Status(500, "Internal Server Error"),
            log: "An error occurred while connecting to status500: 500 Internal Server Error"
                .into(),
        },
    ]
}

fn lenient_cases() -> Vec<Lenient> {
    vec![
        Lenient {
            name: "fieldtype",
            body: multicall(vec![
                with_field(
                    process("web", "RUNNING", 20),
                    "pid",
                    Some(Value::String("42".into())),
                ),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process 'web': field 'pid' is not an int",
        },
        Lenient {
            name: "missing",
            body: multicall(vec![
                with_field(process("web", "RUNNING", 20), "name", None),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process #1: field 'name' is missing, skipped",
        },
        Lenient {
            name: "unknownstate",
            body: multicall(vec![
                Value::Struct(process("web", "EXPLODING", 1000)),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process 'web': unknown state 'EXPLODING' (code 1000)",
        },
        Lenient {
            name: "forged",
            body: multicall(vec![
                Value::Struct(process("web\nERROR forged line", "NOPE", 7)),
                Value::Struct(process("db", "RUNNING", 20)),
            ]),
            log: "process 'web\\nERROR forged line': unknown state 'NOPE' (code 7)",
        },
    ]
}

#[test]
fn hostile_replies_fail_only_their_own_target_with_a_clear_reason() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let fakes = Fakes::new();
    let (good_url, _) = fakes.serve(reply(RECORDED));
    let fatal = fatal_cases();
    let lenient = lenient_cases();
    let mut targets = vec![target("good", &good_url)];
    for case in &fatal {
        let (url, _) = fakes.serve(case.behaviour.clone());
        targets.push(target(case.name, &url));
    }
    for case in &lenient {
        let (url, _) = fakes.serve(reply(case.body.clone()));
        targets.push(target(case.name, &url));
    }
    let sink = OtlpSink::start();
    let cfg = config::native(
        &targets,
        &[otlp_exporter(
            "http/protobuf",
            &sink.http_endpoint(),
            "none",
            &[],
        )],
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    for case in &fatal {
        let poll = sink.wait_for_poll(case.name, disconnected, WAIT);
        assert!(poll.process_names().is_empty(), "{}", poll.describe());
        receiver.wait_for_stderr(&case.log, WAIT);
    }
    for case in &lenient {
        let poll = sink.wait_for_poll(case.name, connected, WAIT);
        assert!(
            poll.process_names().contains("db"),
            "{}: the rest of the reply is kept\n{}",
            case.name,
            poll.describe()
        );
        receiver.wait_for_stderr(case.log, WAIT);
    }
    let unknown = sink.wait_for_poll("unknownstate", connected, WAIT);
    assert_eq!(
        unknown.value(
            "supervisord.process.state",
            &[("supervisord_process", "web"), ("state", "UNKNOWN")]
        ),
        Some(1),
        "{}",
        unknown.describe()
    );

    // Still polling the good target after all of that, and every bad one, every interval.
    let before = otlp_sink::polls(&sink.requests(), "good").len();
    let requests = sink.wait_for(
        |r| {
            otlp_sink::polls(r, "good")
                .iter()
                .filter(|p| connected(p))
                .count()
                >= before + 2
        },
        WAIT,
    );
    for poll in otlp_sink::polls(&requests, "good") {
        assert!(connected(&poll), "{}", poll.describe());
    }
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(
        !finished.stderr.contains("\nERROR forged line"),
        "a process name forged a log line:\n{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("panicked"),
        "{}",
        finished.describe()
    );
    for case in &fatal {
        let polls = otlp_sink::polls(&requests, case.name);
        assert!(
            polls.len() >= 2 && polls.iter().all(disconnected),
            "{}: can_connect 0 every interval",
            case.name
        );
    }
}

// ---- supervisord restarted under the receiver ----------------------------------------------------

/// A supervisord started on an existing config (same port, same socket path) after the first
/// one stopped. Dropping it stops it and its programs.
struct Restarted {
    child: Child,
}

impl Restarted {
    fn start(svd: &Supervisord) -> Restarted {
        let out = std::fs::File::create(svd.dir().join("restarted.out"))
            .unwrap_or_else(|e| panic!("cannot create output file: {e}"));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone output file: {e}"));
        let child = svd
            .tools()
            .supervisord()
            .arg("-c")
            .arg(svd.conf_path())
            .arg("-n")
            .current_dir(svd.dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start supervisord again: {e}"));
        Restarted { child }
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        let pid = self.child.id();
        let programs = child_pids(pid);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for program in programs {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(program.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The pids whose parent is `parent`, from /proc.
fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, rest) = stat.rsplit_once(')')?;
            let pid: u32 = head.split_whitespace().next()?.parse().ok()?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Whether `pid` has exited (gone, or a zombie waiting for its parent).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}

/// Stops supervisord as an operator would (SIGTERM: it stops its programs, removes its socket
/// and exits) and waits for it to be gone.
fn stop_daemon(svd: &Supervisord) {
    let pid = svd.pid();
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert!(
        matches!(sent, Ok(s) if s.success()),
        "kill failed: {sent:?}"
    );
    let deadline = Instant::now() + WAIT;
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "supervisord did not stop within {WAIT:?}\n{}",
            svd.logs()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until supervisord answers `supervisorctl status` on its (new) socket.
fn wait_until_answering(svd: &Supervisord) {
    let deadline = Instant::now() + WAIT;
    while parse_status(&svd.ctl(&["status"])).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the restarted supervisord did not answer within {WAIT:?}\n{}",
            std::fs::read_to_string(svd.dir().join("restarted.out")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_restarted_supervisord_is_reconnected_over_tcp_and_unix() {
    let _serial = serial();
    let svd = Supervisord::start(Options::default().programs(vec![Program::running("web")]));
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let names = ["over-tcp", "over-unix"];
    let cfg = config::native(
        &[
            target(names[0], &svd.http_url()),
            target(names[1], &svd.unix_url()),
        ],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);
    for name in names {
        sink.wait_for_poll(name, connected, WAIT);
    }

    stop_daemon(&svd);
    assert!(
        !Path::new(svd.socket_path()).exists(),
        "supervisord removes its socket file when it stops"
    );
    for name in names {
        sink.wait_for_poll(name, disconnected, WAIT);
    }
    receiver.wait_for_stderr(&inet_message(&svd.http_url()), WAIT);

    let _restarted = Restarted::start(&svd);
    wait_until_answering(&svd);
    let up = unix_nanos_now();

    // Within two intervals of supervisord answering again, each target is connected again.
    for name in names {
        let requests = sink.wait_for(
            |r| {
                otlp_sink::polls(r, name)
                    .iter()
                    .filter(|p| p.points.first().is_some_and(|pt| pt.time_unix_nano > up))
                    .count()
                    >= 2
            },
            WAIT,
        );
        let after: Vec<Poll> = otlp_sink::polls(&requests, name)
            .into_iter()
            .filter(|p| p.points.first().is_some_and(|pt| pt.time_unix_nano > up))
            .take(2)
            .collect();
        assert!(
            after.iter().any(connected),
            "{name}: not reconnected within two polls of the restart:\n{}",
            after
                .iter()
                .map(Poll::describe)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
    }
    receiver.wait_for_stderr("supervisord is reachable again", WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}
