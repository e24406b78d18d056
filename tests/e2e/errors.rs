//! End to end error paths: Datadog's messages in the log, `can_connect` 0 in the exported data,
//! good targets unaffected, and secrets never printed.

use crate::testkit::config::{self, debug_exporter, otlp_exporter, target};
use crate::testkit::expect;
use crate::testkit::otlp_sink::{self, OtlpSink, Poll};
use crate::testkit::receiver::{self, Running};
use crate::testkit::supervisord::{free_port, Auth, Options, Program, Supervisord};
use crate::testkit::WAIT;
use base64::Engine;

/// A poll of a target that did not answer: can_connect 0 and nothing about processes.
fn disconnected(poll: &Poll) -> bool {
    poll.value("supervisord.can_connect", &[]) == Some(0)
}

fn assert_disconnected_only(poll: &Poll) {
    assert!(disconnected(poll), "{}", poll.describe());
    assert!(
        poll.process_names().is_empty(),
        "no process data for an unreachable target:\n{}",
        poll.describe()
    );
    // Nothing was counted, so there is no count to report other than zero.
    let counted: Vec<_> = poll
        .metric("supervisord.process.count")
        .into_iter()
        .filter(|p| p.value != 0)
        .collect();
    assert!(counted.is_empty(), "{counted:?}");
}

#[test]
fn closed_tcp_port_is_reported_in_datadog_words_and_as_can_connect_zero() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sink = OtlpSink::start();
    let url = format!("http://127.0.0.1:{}", free_port());
    let cfg = config::native(
        &[target("refused", &url)],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    let poll = sink.wait_for_poll("refused", disconnected, WAIT);
    assert_disconnected_only(&poll);
    let message = format!(
        "Cannot connect to {url}. Make sure supervisor is running and XML-RPC inet interface is \
         enabled."
    );
    receiver.wait_for_stderr(&message, WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(
        !finished.stderr.contains("DEBUG"),
        "RUST_LOG=info hides debug logs:\n{}",
        finished.describe()
    );
}

#[test]
fn missing_socket_is_reported_in_datadog_words_and_as_can_connect_zero() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sink = OtlpSink::start();
    let url = format!("unix://{}/missing.sock", dir.path().display());
    let cfg = config::native(
        &[target("nosock", &url)],
        &[otlp_exporter(
            "http/protobuf",
            &sink.http_endpoint(),
            "none",
            &[],
        )],
    );
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);

    let poll = sink.wait_for_poll("nosock", disconnected, WAIT);
    assert_disconnected_only(&poll);
    let message = format!(
        "Cannot connect to {url}. Make sure supervisor is running and socket is enabled and \
         socket file has the right permissions."
    );
    receiver.wait_for_stderr(&message, WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}

#[test]
fn wrong_password_is_reported_and_no_secret_is_ever_printed() {
    const RIGHT: &str = "Right-Pa55-e2e-b81f";
    const WRONG: &str = "Wr0ng-Pa55-e2e-6d0a";
    let svd = Supervisord::start(
        Options::default()
            .with_auth("admin", RIGHT)
            .programs(vec![Program::running("web")]),
    );
    svd.wait_for_states(&[("web", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let wrong = Auth::new("admin", WRONG);
    let cfg = config::native(
        &[
            target("badpass-tcp", &svd.http_url()).auth(Some(&wrong)),
            target("badpass-unix", &svd.unix_url()).auth(Some(&wrong)),
            target("good", &svd.http_url()).auth(svd.auth()),
        ],
        &[
            otlp_exporter(
                "http/json",
                &sink.http_endpoint(),
                "none",
                &[("x-api-key", "hdr-secret-e2e-93aa")],
            ),
            debug_exporter("detailed"),
        ],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    // Debug logs are where a careless request dump would show up.
    let mut receiver = Running::start(&path, &[("RUST_LOG", "debug")]);

    for name in ["badpass-tcp", "badpass-unix"] {
        let poll = sink.wait_for_poll(name, disconnected, WAIT);
        assert_disconnected_only(&poll);
        receiver.wait_for_stderr(
            &format!("Username or password to {name} are incorrect."),
            WAIT,
        );
    }
    let good = sink.wait_for_processes("good", &["web"], WAIT);
    expect::connected(&good);
    let run = receiver.stop();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(run.stderr.contains("DEBUG"), "RUST_LOG=debug is respected");
    assert!(sink
        .requests()
        .iter()
        .all(|r| r.header("x-api-key") == Some("hdr-secret-e2e-93aa")));

    let check = receiver::run_once(
        &[
            "check",
            "--config",
            &path.to_string_lossy(),
            "--output",
            "json",
        ],
        &[("RUST_LOG", "debug")],
    );
    assert_eq!(check.code(), Some(1), "{}", check.describe());
    assert!(
        check
            .stdout
            .contains("Username or password to badpass-tcp are incorrect."),
        "{}",
        check.describe()
    );

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secrets = [
        WRONG.to_string(),
        RIGHT.to_string(),
        "hdr-secret-e2e-93aa".to_string(),
        b64(&format!("admin:{WRONG}")),
        b64(&format!("admin:{RIGHT}")),
    ];
    for (what, finished) in [("run", &run), ("check", &check)] {
        for secret in &secrets {
            assert!(
                !finished.stdout.contains(secret.as_str())
                    && !finished.stderr.contains(secret.as_str()),
                "{what} printed the secret {secret:?}:\n{}",
                finished.describe()
            );
        }
    }
}

#[test]
fn a_bad_target_beside_a_good_one_keeps_the_good_one_exported() {
    let svd = Supervisord::start(Options::default().tcp_only());
    svd.wait_for_mixed_states();
    let sink = OtlpSink::start();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let cfg = config::native(
        &[target("bad", &closed), target("good", &svd.http_url())],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "gzip", &[])],
    );
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    // Several polls of each: the failing target does not stop the good one, poll after poll.
    let requests = sink.wait_for(
        |r| {
            otlp_sink::polls(r, "good")
                .iter()
                .filter(|p| p.value("supervisord.can_connect", &[]) == Some(1))
                .count()
                >= 3
                && otlp_sink::polls(r, "bad")
                    .iter()
                    .filter(|p| disconnected(p))
                    .count()
                    >= 3
        },
        WAIT,
    );
    for poll in otlp_sink::polls(&requests, "bad") {
        assert_disconnected_only(&poll);
    }
    for poll in otlp_sink::polls(&requests, "good") {
        assert_eq!(poll.expect("supervisord.can_connect", &[]), 1);
    }
    expect::mixed_poll(&otlp_sink::latest_poll(&requests, "good"));

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(
        finished
            .stderr
            .contains(&format!("Cannot connect to {closed}.")),
        "{}",
        finished.describe()
    );
}
