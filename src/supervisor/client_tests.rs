//! Tests of the poll client: Datadog's error messages, the multicall round trip and its
//! fallback to separate calls, faults and invalid replies, and hostile servers (each poll ends
//! within the timeout, says where it stalled and closes what it opened).

use super::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::supervisor::transport::Stalled;
use crate::vocab::SupervisorState;

fn target(name: &str, endpoint: Endpoint) -> Target {
    Target {
        timeout: Duration::from_secs(5),
        ..Target::new(name, endpoint)
    }
}

fn tcp(host: &str, port: u16) -> Endpoint {
    Endpoint::Tcp {
        tls: false,
        host: host.to_owned(),
        port,
    }
}

fn unix(path: &str) -> Endpoint {
    Endpoint::Unix {
        path: PathBuf::from(path),
    }
}

fn transport(error: TransportError) -> PollError {
    PollError::Transport(error)
}

#[test]
fn connect_messages_follow_datadog() {
    let inet = target("server0", tcp("invalid_host", 9009));
    let socket = target("server0", unix("/invalid_socket"));
    let errors = [
        transport(TransportError::Connect {
            reason: "Connection refused (os error 111)".into(),
        }),
        transport(TransportError::Timeout {
            after: Duration::from_secs(5),
            stalled: Stalled::ReadingReply { received: 12 },
        }),
        transport(TransportError::Io {
            reason: "connection closed before message completed".into(),
        }),
        transport(TransportError::Tls {
            reason: "invalid peer certificate: UnknownIssuer".into(),
        }),
    ];
    for error in &errors {
        assert_eq!(
            error.message(&inet),
            "Cannot connect to http://invalid_host:9009. Make sure supervisor is running and XML-RPC inet interface is enabled."
        );
        assert_eq!(
            error.message(&socket),
            "Cannot connect to unix:///invalid_socket. Make sure supervisor is running and socket is enabled and socket file has the right permissions."
        );
    }
    let details: Vec<Option<String>> = errors.iter().map(PollError::detail).collect();
    assert_eq!(
        details,
        [
            Some("Connection refused (os error 111)".to_owned()),
            Some("timed out after 5s while reading the reply (12 bytes received)".to_owned()),
            Some(
                "connection failed during the request: connection closed before message completed"
                    .to_owned()
            ),
            Some("TLS: invalid peer certificate: UnknownIssuer".to_owned()),
        ]
    );
    let types: Vec<&str> = errors.iter().map(PollError::error_type).collect();
    assert_eq!(types, ["connect", "timeout", "io", "tls"]);
}

#[test]
fn https_endpoint_is_named_with_its_scheme() {
    let secure = target(
        "s",
        Endpoint::Tcp {
            tls: true,
            host: "sup.example".into(),
            port: 443,
        },
    );
    let error = transport(TransportError::Connect {
        reason: "refused".into(),
    });
    assert_eq!(
        error.message(&secure),
        "Cannot connect to https://sup.example:443. Make sure supervisor is running and XML-RPC inet interface is enabled."
    );
}

#[test]
fn other_messages_follow_datadog() {
    let t = target("server1", tcp("localhost", 9001));
    let cases: Vec<(PollError, &str, &str)> = vec![
        (
            transport(TransportError::Unauthorized),
            "Username or password to server1 are incorrect.",
            "unauthorized",
        ),
        (
            transport(TransportError::HttpStatus {
                code: 404,
                reason: "Not Found".into(),
            }),
            "An error occurred while connecting to server1: 404 Not Found",
            "http_status",
        ),
        (
            transport(TransportError::TooLarge { limit: 16_777_216 }),
            "Invalid reply from server1: reply larger than 16777216 bytes",
            "too_large",
        ),
        (
            PollError::Fault(Fault {
                code: 10,
                message: "BAD_NAME".into(),
            }),
            "An error occurred while reading process information: 10 BAD_NAME",
            "fault",
        ),
        (
            PollError::Decode(DecodeError::Html),
            "Invalid reply from server1: the reply is an HTML page, not XML-RPC: is the URL missing /RPC2?",
            "invalid_reply",
        ),
        (
            PollError::Model(ModelError::NotAnArray { found: "a string" }),
            "Invalid reply from server1: getAllProcessInfo returned a string, not an array",
            "invalid_reply",
        ),
    ];
    for (error, message, error_type) in cases {
        assert_eq!(error.message(&t), message);
        assert_eq!(error.error_type(), error_type);
        assert_eq!(error.detail(), None);
    }
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/xmlrpc/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

fn reply(value_xml: &str) -> String {
    format!(
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n{value_xml}\n</param>\n</params>\n</methodResponse>\n"
    )
}

fn string_value(s: &str) -> String {
    format!("<value><string>{s}</string></value>")
}

fn fault_struct(code: i64, message: &str) -> String {
    format!(
        "<value><struct><member><name>faultCode</name><value><int>{code}</int></value></member>\
         <member><name>faultString</name><value><string>{message}</string></value></member></struct></value>"
    )
}

const STATE_VALUE: &str = "<value><struct><member><name>statecode</name><value><int>1</int></value></member>\
    <member><name>statename</name><value><string>RUNNING</string></value></member></struct></value>";

/// The method name of an encoded call.
fn method_of(body: &str) -> String {
    body.split("<methodName>")
        .nth(1)
        .and_then(|rest| rest.split("</methodName>").next())
        .unwrap_or_default()
        .to_owned()
}

type Handler = Arc<dyn Fn(&str) -> (StatusCode, String) + Send + Sync>;

/// A local HTTP server answering each request from `handler`, recording the methods called.
async fn serve(handler: Handler) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    let seen = seen.clone();
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        let body = String::from_utf8_lossy(&body).into_owned();
                        seen.lock().unwrap().push(method_of(&body));
                        let (status, text) = handler(&body);
                        let mut response = Response::new(Full::new(Bytes::from(text)));
                        *response.status_mut() = status;
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, calls)
}

fn client_for(port: u16) -> (SupervisorClient, Target) {
    let t = target("server1", tcp("127.0.0.1", port));
    (SupervisorClient::new(&t).unwrap(), t)
}

/// Answers separate calls like supervisord; `system.multicall` as `multicall` says.
fn supervisord(multicall: Option<String>) -> Handler {
    Arc::new(move |body: &str| {
        let text = match method_of(body).as_str() {
            "system.multicall" => match &multicall {
                Some(text) => text.clone(),
                None => fixture("fault_unknown_method.xml"),
            },
            GET_ALL_PROCESS_INFO => fixture("datadog_server1.xml"),
            GET_STATE => reply(STATE_VALUE),
            GET_IDENTIFICATION => reply(&string_value("supervisor")),
            GET_SUPERVISOR_VERSION => fixture("fault_unknown_method.xml"),
            _ => fixture("fault_unknown_method.xml"),
        };
        (StatusCode::OK, text)
    })
}

#[tokio::test]
async fn one_multicall_round_trip() {
    let (port, calls) = serve(supervisord(Some(fixture("multicall_ok.xml")))).await;
    let (client, _) = client_for(port);
    let polled = client.poll().await.unwrap();
    assert_eq!(*calls.lock().unwrap(), ["system.multicall"]);
    assert!(polled.problems.is_empty(), "{:?}", polled.problems);
    let snapshot = polled.snapshot;
    let names: Vec<&str> = snapshot.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["mysql", "java", "python"]);
    assert_eq!(snapshot.state, Some(SupervisorState::Running));
    assert_eq!(snapshot.identification.as_deref(), Some("supervisor"));
    assert_eq!(snapshot.version.as_deref(), Some("4.2.5"));
}

#[tokio::test]
async fn multicall_fault_falls_back_and_is_remembered() {
    let (port, calls) = serve(supervisord(None)).await;
    let (client, _) = client_for(port);
    let first = client.poll().await.unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "system.multicall",
            GET_ALL_PROCESS_INFO,
            GET_STATE,
            GET_IDENTIFICATION,
            GET_SUPERVISOR_VERSION
        ]
    );
    assert_eq!(first.snapshot.processes.len(), 3);
    assert_eq!(first.snapshot.state, Some(SupervisorState::Running));
    assert_eq!(first.snapshot.identification.as_deref(), Some("supervisor"));
    assert_eq!(first.snapshot.version, None);
    assert_eq!(
        first.problems,
        ["getSupervisorVersion failed: 1 UNKNOWN_METHOD"]
    );

    calls.lock().unwrap().clear();
    let second = client.poll().await.unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        [
            GET_ALL_PROCESS_INFO,
            GET_STATE,
            GET_IDENTIFICATION,
            GET_SUPERVISOR_VERSION
        ]
    );
    assert_eq!(second, first);
}

#[tokio::test]
async fn secondary_faults_in_the_multicall_are_problems() {
    let multicall = reply(&format!(
        "<value><array><data>\
         <value><array><data><value><array><data></data></array></value></data></array></value>\
         {}\
         <value><array><data><value><int>3</int></value></data></array></value>\
         </data></array></value>",
        fault_struct(1, "UNKNOWN_METHOD"),
    ));
    let (port, _) = serve(supervisord(Some(multicall))).await;
    let (client, _) = client_for(port);
    let polled = client.poll().await.unwrap();
    assert_eq!(polled.snapshot, Snapshot::default());
    assert_eq!(
        polled.problems,
        [
            "getState failed: 1 UNKNOWN_METHOD",
            "getIdentification returned an int that is not understood",
            "getSupervisorVersion: no result in the multicall reply",
        ]
    );
}

#[tokio::test]
async fn get_all_process_info_fault_fails_the_poll() {
    let multicall = reply(&format!(
        "<value><array><data>{}</data></array></value>",
        fault_struct(10, "BAD_NAME")
    ));
    let (port, _) = serve(supervisord(Some(multicall))).await;
    let (client, t) = client_for(port);
    let error = client.poll().await.unwrap_err();
    assert_eq!(
        error.message(&t),
        "An error occurred while reading process information: 10 BAD_NAME"
    );

    // The same fault from a separate call, on a server without multicall.
    let handler: Handler = Arc::new(|body: &str| {
        let text = if method_of(body) == GET_ALL_PROCESS_INFO {
            fixture("fault_bad_name.xml")
        } else {
            fixture("fault_unknown_method.xml")
        };
        (StatusCode::OK, text)
    });
    let (port, calls) = serve(handler).await;
    let (client, t) = client_for(port);
    let error = client.poll().await.unwrap_err();
    assert_eq!(
        error.message(&t),
        "An error occurred while reading process information: 10 BAD_NAME"
    );
    assert_eq!(
        *calls.lock().unwrap(),
        ["system.multicall", GET_ALL_PROCESS_INFO]
    );
}

#[tokio::test]
async fn html_and_invalid_replies() {
    let handler: Handler = Arc::new(|_: &str| {
        (
            StatusCode::OK,
            "<!DOCTYPE html>\n<html><head><title>Supervisor Status</title></head></html>"
                .to_owned(),
        )
    });
    let (port, _) = serve(handler).await;
    let (client, t) = client_for(port);
    let error = client.poll().await.unwrap_err();
    assert_eq!(
        error.message(&t),
        "Invalid reply from server1: the reply is an HTML page, not XML-RPC: is the URL missing /RPC2?"
    );
    assert_eq!(error.error_type(), "invalid_reply");

    let (port, _) = serve(supervisord(Some(reply(&string_value("x"))))).await;
    let (client, t) = client_for(port);
    let error = client.poll().await.unwrap_err();
    assert_eq!(
        error.message(&t),
        "Invalid reply from server1: invalid system.multicall reply: expected an array, found a string"
    );

    let multicall = reply("<value><array><data><value><int>1</int></value></data></array></value>");
    let (port, _) = serve(supervisord(Some(multicall))).await;
    let (client, t) = client_for(port);
    let error = client.poll().await.unwrap_err();
    assert_eq!(
        error.message(&t),
        "Invalid reply from server1: getAllProcessInfo returned an int, not an array"
    );
}

#[tokio::test]
async fn http_errors_reach_the_caller() {
    let handler: Handler =
        Arc::new(|_: &str| (StatusCode::UNAUTHORIZED, "Unauthorized".to_owned()));
    let (port, _) = serve(handler).await;
    let (client, t) = client_for(port);
    let error = client.poll().await.unwrap_err();
    assert_eq!(
        error.message(&t),
        "Username or password to server1 are incorrect."
    );
}

// ---- Hostile servers: every poll ends within the timeout and closes what it opened -------

use std::sync::atomic::AtomicUsize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Bound on anything a test waits for, so a broken client fails the test instead of hanging
/// it. Never reached when the code works; not a timing assertion.
const FAILSAFE: Duration = Duration::from_secs(20);

/// How a hostile server treats each connection after reading the request.
#[derive(Clone, Copy)]
enum Hostile {
    /// Never answers; holds the connection until the client closes it.
    Silent,
    /// Sends the reply head one byte at a time, forever.
    TrickleHead,
    /// Sends a complete head announcing a large body, then the body one byte at a time.
    TrickleBody,
    /// Closes without answering.
    Close,
}

/// Connections accepted and connections the client has closed.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    closed: AtomicUsize,
}

async fn hostile_server(behaviour: Hostile) -> (u16, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            let shared = shared.clone();
            tokio::spawn(async move {
                misbehave(stream, behaviour).await;
                shared.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (port, counts)
}

/// Returns once the client has closed the connection (or, for `Close`, at once).
async fn misbehave(mut stream: TcpStream, behaviour: Hostile) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let trickle: &[u8] = match behaviour {
        Hostile::Close => return,
        Hostile::Silent => {
            // Reads until the client closes; the request body arrives and is ignored.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    return;
                }
            }
            return;
        }
        // A valid head that never ends: one endless header value.
        Hostile::TrickleHead => b"HTTP/1.1 200 OK\r\nX-Pad: ",
        Hostile::TrickleBody => {
            let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            b"<?xml version='1.0'?><methodResponse>"
        }
    };
    // One byte every 20 ms, `trickle` then padding, until the client goes away.
    for byte in trickle.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[*byte]).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            read = stream.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
        }
    }
}

fn timed_client(port: u16, timeout: Duration) -> (SupervisorClient, Target) {
    let mut t = target("server1", tcp("127.0.0.1", port));
    t.timeout = timeout;
    (SupervisorClient::new(&t).unwrap(), t)
}

async fn poll_failsafe(client: &SupervisorClient) -> Result<PolledSnapshot, PollError> {
    tokio::time::timeout(FAILSAFE, client.poll())
        .await
        .expect("the poll outlived its own timeout")
}

/// Waits until the server has seen `n` connections closed by the client.
async fn closed(counts: &Counts, n: usize) {
    tokio::time::timeout(FAILSAFE, async {
        while counts.closed.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the client kept a timed-out connection open");
}

#[tokio::test]
async fn stalled_servers_time_out_with_where_they_stalled_and_are_disconnected() {
    let cases = [
        (Hostile::Silent, "waiting for the reply"),
        (Hostile::TrickleHead, "waiting for the reply"),
        (Hostile::TrickleBody, "while reading the reply"),
    ];
    for (behaviour, stage) in cases {
        let (port, counts) = hostile_server(behaviour).await;
        let (client, t) = timed_client(port, Duration::from_millis(300));
        for poll in 1..=3 {
            let error = poll_failsafe(&client).await.unwrap_err();
            assert_eq!(error.error_type(), "timeout", "{error:?}");
            assert_eq!(
                error.message(&t),
                format!(
                    "Cannot connect to http://127.0.0.1:{port}. Make sure supervisor is running and XML-RPC inet interface is enabled."
                )
            );
            let detail = error.detail().unwrap_or_default();
            assert!(
                detail.starts_with(&format!("timed out after 300ms {stage}")),
                "{detail}"
            );
            // The timed-out request's connection is closed, not left to the server.
            closed(&counts, poll).await;
            // One connection per poll: no retries, no second connection held open.
            assert_eq!(counts.accepted.load(Ordering::SeqCst), poll);
        }
        if matches!(behaviour, Hostile::TrickleBody) {
            let error = poll_failsafe(&client).await.unwrap_err();
            let Some(PollError::Transport(TransportError::Timeout {
                stalled: Stalled::ReadingReply { received },
                ..
            })) = Some(&error)
            else {
                panic!("{error:?}")
            };
            assert!(*received > 0, "{error:?}");
        }
    }
}

#[tokio::test]
async fn a_server_that_hangs_up_costs_one_connection_per_poll() {
    let (port, counts) = hostile_server(Hostile::Close).await;
    let (client, t) = timed_client(port, Duration::from_secs(5));
    for poll in 1..=3 {
        let error = poll_failsafe(&client).await.unwrap_err();
        assert_eq!(error.error_type(), "io", "{error:?}");
        assert!(
            error
                .message(&t)
                .starts_with("Cannot connect to http://127.0.0.1:"),
            "{}",
            error.message(&t)
        );
        assert_eq!(counts.accepted.load(Ordering::SeqCst), poll);
    }
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect
/// neither succeeds nor fails until the client gives up.
fn unaccepting_listener() -> (
    std::net::SocketAddr,
    std::net::TcpListener,
    Vec<std::net::TcpStream>,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.into_std().unwrap();
    // Fill the queue with connections that are never accepted (kept alive by the caller).
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    (addr, listener, fillers)
}

#[tokio::test]
async fn an_unanswered_connect_times_out_while_connecting() {
    let (addr, _listener, _fillers) = unaccepting_listener();
    let (client, t) = timed_client(addr.port(), Duration::from_millis(300));
    let error = poll_failsafe(&client).await.unwrap_err();
    assert_eq!(error.error_type(), "timeout", "{error:?}");
    assert_eq!(
        error.detail().as_deref(),
        Some("timed out after 300ms while connecting"),
        "{}",
        error.message(&t)
    );
}

#[tokio::test]
async fn hostile_fault_strings_are_cut_and_escaped_in_messages() {
    let message = format!("line one\nWARN forged line {}", "x".repeat(10_000));
    let multicall = reply(&format!(
        "<value><array><data>{}</data></array></value>",
        fault_struct(10, &message)
    ));
    let (port, _) = serve(supervisord(Some(multicall))).await;
    let (client, t) = client_for(port);
    let text = client.poll().await.unwrap_err().message(&t);
    assert!(
        text.starts_with(
            "An error occurred while reading process information: 10 line one\\nWARN forged line xxx"
        ),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert!(text.len() < 300 && text.ends_with("..."), "{text}");
}
