//! Tests of `getAllConfigInfo`: a reply recorded from supervisord 4.3.0, lenient handling of
//! entries that cannot be read, faults and odd replies, and the call against a local server
//! (answer, fault, and a server that never answers, cut by the bound it was given).

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;
use crate::settings::{Endpoint, Target};
use crate::supervisor::decode::tests::{entry, fixture_bytes, s};
use crate::supervisor::decode::MAX_PROBLEMS;

fn config(group: &str, name: &str, autostart: bool) -> ProcessConfig {
    ProcessConfig {
        name: name.into(),
        group: group.into(),
        autostart,
    }
}

#[test]
fn a_recorded_reply_gives_every_process_its_autostart() {
    // [program:mysql] and [program:python] autostart=true, [program:java] autostart=false,
    // [program:worker] numprocs=2 autostart=false; supervisord sorts the entries by name.
    let info =
        decode_config_info_reply(&fixture_bytes("config_info_recorded_supervisord_4.3.0.xml"))
            .unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(
        info.processes,
        [
            config("java", "java", false),
            config("mysql", "mysql", true),
            config("python", "python", true),
            config("worker", "worker_00", false),
            config("worker", "worker_01", false),
        ]
    );
}

#[test]
fn members_the_receiver_does_not_read_may_be_anything() {
    // A later supervisord adds `autorestart` (a string: `unexpected`, or a boolean).
    let value = Value::Array(vec![entry(&[
        ("name", s("web")),
        ("group", s("web")),
        ("autorestart", s("unexpected")),
        (
            "exitcodes",
            Value::Array(vec![Value::Int(0), Value::Int(2)]),
        ),
        ("autostart", Value::Bool(true)),
        ("directory", Value::Nil),
    ])]);
    let info = config_info(&value).unwrap();
    assert_eq!(info.processes, [config("web", "web", true)]);
    assert!(info.problems.is_empty());
}

#[test]
fn an_entry_that_cannot_be_read_is_skipped_and_the_rest_count() {
    let value = Value::Array(vec![
        entry(&[
            ("name", s("a")),
            ("group", s("g")),
            ("autostart", Value::Bool(true)),
        ]),
        s("not a struct"),
        entry(&[("group", s("g")), ("autostart", Value::Bool(true))]),
        entry(&[("name", Value::Int(3)), ("autostart", Value::Bool(true))]),
        entry(&[("name", s("b")), ("group", s("g"))]),
        entry(&[
            ("name", s("c")),
            ("group", s("g")),
            ("autostart", Value::Int(1)),
        ]),
        entry(&[("name", s("d")), ("group", Value::Int(1))]),
        // No group: its own, as getAllProcessInfo's entries.
        entry(&[("name", s("solo")), ("autostart", Value::Bool(false))]),
        entry(&[
            ("name", s(&"n".repeat(MAX_NAME_BYTES + 1))),
            ("autostart", Value::Bool(false)),
        ]),
    ]);
    let info = config_info(&value).unwrap();
    assert_eq!(
        info.processes,
        [config("g", "a", true), config("solo", "solo", false)]
    );
    let long = "n".repeat(NAME_LIMIT);
    assert_eq!(
        info.problems,
        [
            "entry #2: a string instead of a struct, skipped".to_owned(),
            "entry #3: field 'name' is missing, skipped".into(),
            "entry #4: field 'name' is an int, not a string, skipped".into(),
            "entry 'g:b': field 'autostart' is missing, skipped".into(),
            "entry 'g:c': field 'autostart' is an int, not a boolean, skipped".into(),
            "entry 'd': field 'group' is an int, not a string, skipped".into(),
            format!("entry '{long}...': name longer than {MAX_NAME_BYTES} bytes, skipped"),
        ]
    );
}

#[test]
fn problems_are_capped_and_counted() {
    let value = Value::Array((0..MAX_PROBLEMS + 3).map(|_| Value::Int(1)).collect());
    let info = config_info(&value).unwrap();
    assert!(info.processes.is_empty());
    assert_eq!(info.problems.len(), MAX_PROBLEMS + 1);
    assert_eq!(
        info.problems.last().map(String::as_str),
        Some("3 more problems not listed")
    );
}

#[test]
fn a_fault_or_a_reply_that_is_not_an_array_gives_nothing() {
    let fault = decode_config_info_reply(&fixture_bytes("fault_unknown_method.xml")).unwrap_err();
    assert!(matches!(fault, ConfigInfoError::Fault(_)), "{fault:?}");
    assert_eq!(fault.to_string(), "1 UNKNOWN_METHOD");

    let body = b"<?xml version='1.0'?>\n<methodResponse><params><param><value><string>x</string>\
                 </value></param></params></methodResponse>";
    let odd = decode_config_info_reply(body).unwrap_err();
    assert_eq!(
        odd.to_string(),
        "invalid reply: a string instead of an array"
    );

    let html = decode_config_info_reply(b"<html><body>nope</body></html>").unwrap_err();
    assert!(matches!(html, ConfigInfoError::Decode(_)), "{html:?}");
}

/// A local HTTP server answering every request with `body`, or never answering (`None`).
async fn serve(body: Option<Vec<u8>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let body = Arc::clone(&body);
                    async move {
                        let sent = request.into_body().collect().await?.to_bytes();
                        let sent = String::from_utf8_lossy(&sent).into_owned();
                        assert!(sent.contains(GET_ALL_CONFIG_INFO), "{sent}");
                        match body.as_ref() {
                            Some(body) => Ok::<_, hyper::Error>(Response::new(Full::new(
                                Bytes::from(body.clone()),
                            ))),
                            None => std::future::pending().await,
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

fn client(port: u16) -> SupervisorClient {
    let target = Target::new(
        "t",
        Endpoint::Tcp {
            tls: false,
            host: "127.0.0.1".into(),
            port,
        },
    );
    SupervisorClient::new(&target).unwrap()
}

#[tokio::test]
async fn the_call_decodes_the_servers_answer() {
    let port = serve(Some(fixture_bytes(
        "config_info_recorded_supervisord_4.3.0.xml",
    )))
    .await;
    let info = client(port)
        .config_info(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(info.processes.len(), 5);

    let port = serve(Some(fixture_bytes("fault_unknown_method.xml"))).await;
    let error = client(port)
        .config_info(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(error, ConfigInfoError::Fault(_)), "{error:?}");
}

#[tokio::test]
async fn the_call_ends_within_its_bound() {
    let port = serve(None).await;
    let within = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let error = client(port).config_info(within).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            error,
            ConfigInfoError::Transport(TransportError::Timeout { after, .. }) if after == within
        ),
        "{error:?}"
    );
}
