//! End to end `status`: the real binary runs with an `admin:` endpoint, polls a real
//! supervisord and an address where nothing listens, and `supervisord-receiver status` (the
//! same binary, as a person or a container health check runs it) reads its state over gRPC:
//! the table, the JSON, the exit codes (0 healthy, 1 something failing, 2 unreachable),
//! `--liveness`, the UNIX socket's permissions and its removal on stop.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::testkit::config::{self, otlp_exporter, target, TargetYaml};
use crate::testkit::http::exchange;
use crate::testkit::otlp_sink::OtlpSink;
use crate::testkit::receiver::{run_once, Finished, Running};
use crate::testkit::supervisord::{free_port, Options, Program, Supervisord};
use crate::testkit::{yaml_str, WAIT};

const PASSWORD: &str = "status-pass-5e2a";

fn status(args: &[&str]) -> Finished {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    run_once(&all, &[])
}

/// `status --admin ADDR --output json`, asked until `done` holds for a report; panics with the
/// last answer after [`WAIT`].
fn wait_for_report(admin: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let run = status(&["--admin", admin, "--output", "json"]);
        if let Ok(report) = serde_json::from_str::<Value>(&run.stdout) {
            if done(&report) {
                return report;
            }
        }
        assert!(
            Instant::now() < deadline,
            "status did not reach the expected state within {WAIT:?}; last:\n{}",
            run.describe()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn target_named<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .and_then(|targets| targets.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no target {name} in {report}"))
}

fn receiver_config(targets: &[TargetYaml], sink: &OtlpSink, admin: &str) -> String {
    format!(
        "{}admin:\n  endpoint: {}\n",
        config::native(
            targets,
            &[otlp_exporter(
                "http/protobuf",
                &sink.http_endpoint(),
                "none",
                &[]
            )]
        ),
        yaml_str(admin)
    )
}

#[test]
fn status_reports_targets_and_exporters_and_exits_by_what_fails() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .with_auth("status-user", PASSWORD)
            .programs(vec![Program::running("app"), Program::running("api")]),
    );
    let sink = OtlpSink::start();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let web = target("web", &svd.http_url()).auth(svd.auth());
    let both = receiver_config(&[web.clone(), target("dead", &dead)], &sink, &admin);
    let path = config::write(svd.dir(), "receiver.yaml", &both);
    let mut receiver = Running::start(&path, &[]);
    receiver.wait_for_stderr(&format!("admin endpoint listening on {admin}"), WAIT);

    // JSON: stable names, both targets with their results, the exporter with its counters.
    let report = wait_for_report(&admin, |r| {
        target_named(r, "web")["processes"]["up"] == 2
            && target_named(r, "dead")["result"] == "error"
            && r["exporters"][0]["last_success_unix_nano"].is_u64()
    });
    assert_eq!(report["status"], "failing", "{report}");
    let receiver_info = &report["receiver"];
    assert_eq!(receiver_info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        receiver_info["config_source"],
        path.to_string_lossy().as_ref()
    );
    assert_eq!(receiver_info["config_format"], "native");
    assert_eq!(receiver_info["reload_count"], 0);
    assert!(receiver_info["start_time_unix_nano"].is_u64(), "{report}");
    assert!(receiver_info["uptime_seconds"].is_f64(), "{report}");
    assert!(report["report_time_unix_nano"].is_u64(), "{report}");

    let web_status = target_named(&report, "web");
    assert_eq!(web_status["result"], "ok");
    assert_eq!(web_status["endpoint"], svd.http_url());
    assert_eq!(web_status["error_message"], Value::Null);
    assert_eq!(web_status["processes"]["down"], 0);
    assert_eq!(web_status["processes"]["unknown"], 0);
    assert_eq!(web_status["consecutive_failures"], 0);
    for key in ["last_poll_start_unix_nano", "next_poll_unix_nano", "polls"] {
        assert!(web_status[key].is_u64(), "{key}: {web_status}");
    }
    assert!(
        web_status["last_poll_duration_seconds"].is_f64(),
        "{web_status}"
    );

    let dead_status = target_named(&report, "dead");
    assert_eq!(dead_status["endpoint"], dead);
    assert_eq!(dead_status["processes"], Value::Null);
    assert_eq!(dead_status["error_type"], "connect");
    assert_eq!(
        dead_status["error_message"],
        format!(
            "Cannot connect to {dead}. Make sure supervisor is running and XML-RPC inet \
             interface is enabled."
        )
    );
    assert!(
        dead_status["consecutive_failures"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{dead_status}"
    );

    let otlp = &report["exporters"][0];
    assert_eq!(otlp["name"], "otlp");
    assert_eq!(otlp["signals"], serde_json::json!(["metrics", "logs"]));
    assert_eq!(otlp["failing"], false);
    assert_eq!(otlp["queue_capacity_batches"], 2000, "1000 per signal");
    assert!(
        otlp["sent_points"].as_u64().is_some_and(|n| n > 0),
        "{otlp}"
    );
    assert_eq!(otlp["failing_since_unix_nano"], Value::Null);
    assert_eq!(report["health"]["healthy"], true);
    assert!(!report.to_string().contains(PASSWORD));
    assert!(!report.to_string().contains("status-user"));

    // The table: the failing target is there with its message, and the exit code is 1.
    let table = status(&["--admin", &admin]);
    assert_eq!(table.code(), Some(1), "{}", table.describe());
    let text = &table.stdout;
    for expected in [
        "supervisord-receiver ",
        "Health: OK",
        "Targets: 2 (1 OK, 1 ERROR)",
        "Exporters: 1",
        "Cannot connect to ",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
            .to_string()
    };
    assert!(line("web").contains(" OK "), "{text}");
    assert!(line("dead").contains(" ERROR "), "{text}");
    assert!(line("otlp").contains("metrics,logs"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");

    // A container health check ignores the targets: the receiver answers and exports.
    let liveness = status(&["--liveness", "--admin", &admin]);
    assert_eq!(liveness.code(), Some(0), "{}", liveness.describe());
    // Without --admin, the endpoint comes from the file's admin: section.
    let by_config = status(&["--config", &path.to_string_lossy()]);
    assert_eq!(by_config.code(), Some(1), "{}", by_config.describe());
    assert!(
        by_config.stdout.contains("dead"),
        "{}",
        by_config.describe()
    );

    // The same listener serves /healthz over plain HTTP/1.1.
    let healthz = http_get(&admin, "/healthz");
    assert!(healthz.starts_with("HTTP/1.1 200 OK\r\n"), "{healthz}");
    assert!(healthz.contains(r#""status":"ok""#), "{healthz}");

    // With the healthy target only (a reload removes the other): exit 0.
    config::write(
        svd.dir(),
        "receiver.yaml",
        &receiver_config(&[web], &sink, &admin),
    );
    receiver.signal("HUP");
    let report = wait_for_report(&admin, |r| r["receiver"]["reload_count"] == 1);
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(1));
    assert!(report["receiver"]["last_reload_unix_nano"].is_u64());
    let healthy = status(&["--admin", &admin]);
    assert_eq!(healthy.code(), Some(0), "{}", healthy.describe());
    assert!(
        healthy.stdout.contains("Targets: 1 (1 OK, 0 ERROR)"),
        "{}",
        healthy.describe()
    );
    assert!(
        healthy.stdout.contains("1 reload"),
        "{}",
        healthy.describe()
    );

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}

/// One HTTP/1.1 GET over TCP, the way a probe sends it; the raw reply.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    exchange(&mut stream, path)
}

#[test]
fn a_unix_socket_admin_is_owner_only_and_removed_on_stop() {
    let svd = Supervisord::start(
        Options::default()
            .unix_only()
            .programs(vec![Program::running("app")]),
    );
    let sink = OtlpSink::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let socket = dir.path().join("admin.sock");
    let admin = format!("unix://{}", socket.display());
    let cfg = receiver_config(&[target("local", &svd.unix_url())], &sink, &admin);
    let path = config::write(dir.path(), "receiver.yaml", &cfg);
    let mut receiver = Running::start(&path, &[]);
    receiver.wait_for_stderr(&format!("admin endpoint listening on {admin}"), WAIT);

    let meta = std::fs::symlink_metadata(&socket).unwrap_or_else(|e| panic!("stat: {e}"));
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let report = wait_for_report(&admin, |r| target_named(r, "local")["result"] == "ok");
    assert_eq!(target_named(&report, "local")["endpoint"], svd.unix_url());
    let run = status(&["--admin", &admin]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stdout.contains("Targets: 1 (1 OK, 0 ERROR)"),
        "{}",
        run.describe()
    );

    let mut stream = std::os::unix::net::UnixStream::connect(&socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    let healthz = exchange(&mut stream, "/healthz");
    assert!(healthz.starts_with("HTTP/1.1 200 OK\r\n"), "{healthz}");

    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(!socket.exists(), "the socket is removed on stop");
}

#[test]
fn nothing_to_ask_is_exit_2_with_what_to_check() {
    let addr = format!("127.0.0.1:{}", free_port());
    let run = status(&["--admin", &addr]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(run.stdout.is_empty(), "{}", run.describe());
    assert!(
        run.stderr.contains(&format!(
            "error: cannot reach the receiver's admin endpoint at {addr}: "
        )),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("check that the receiver is running"),
        "{}",
        run.describe()
    );
    assert_eq!(
        status(&["--liveness", "--admin", &addr]).code(),
        Some(2),
        "--liveness too"
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let missing = format!("unix://{}", dir.path().join("none.sock").display());
    let run = status(&["--admin", &missing]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains("may open the socket"),
        "{}",
        run.describe()
    );

    let without_admin = config::write(
        dir.path(),
        "receiver.yaml",
        &config::native(
            &[target("web", "http://127.0.0.1:9001")],
            &["  debug: {}\n".to_string()],
        ),
    );
    let run = status(&["--config", &without_admin.to_string_lossy()]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains("has no admin: section"),
        "{}",
        run.describe()
    );

    let run = status(&["--admin", "http://127.0.0.1:8787"]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains("expected host:port"),
        "{}",
        run.describe()
    );
}
