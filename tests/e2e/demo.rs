//! The README's first command, `bash examples/demo/run.sh`, run for real: it starts supervisord
//! with its sample programs, exports to an OTLP server given by the standard variable, stops by
//! itself after DEMO_DURATION, and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::testkit::expect::{self, process_state};
use crate::testkit::otlp_sink::{all_records, OtlpSink, Protocol};
use crate::testkit::receiver::{Running, BIN};
use crate::testkit::WAIT;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The value after `label` on the line of the demo's output that contains it.
fn reported(output: &str, label: &str) -> String {
    output
        .lines()
        .find_map(|line| line.split_once(label).map(|(_, rest)| rest))
        .map(|rest| {
            rest.split(|c: char| c == ';' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|| panic!("the demo did not report {label:?}:\n{output}"))
}

#[test]
fn demo_script_runs_every_state_exports_and_cleans_up() {
    let sink = OtlpSink::start();
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("examples/demo/run.sh"))
        .env("DEMO_RECEIVER_BIN", BIN)
        // Room for a few 5 s polls; the test waits on what arrives, not on the clock.
        .env("DEMO_DURATION", "10")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", sink.http_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env_remove("RUST_LOG");
    let demo = Running::spawn(cmd);

    let all = sink.wait_for_processes(
        "demo-tcp",
        &[
            "web",
            "worker-1",
            "worker-2",
            "migrate",
            "broken",
            "flapping",
            "nightly-report",
        ],
        WAIT,
    );
    expect::connected(&all);
    for (name, states) in [
        ("web", &["RUNNING"][..]),
        ("worker-1", &["RUNNING"]),
        ("worker-2", &["RUNNING"]),
        ("migrate", &["EXITED"]),
        ("broken", &["FATAL"]),
        ("flapping", &["BACKOFF", "STARTING"]),
        ("nightly-report", &["STOPPED"]),
    ] {
        let state = process_state(&all, name);
        assert!(states.contains(&state.as_str()), "{name} is {state}");
    }
    let resource = all.resource_attrs();
    assert_eq!(
        resource
            .get("supervisord.identification")
            .map(String::as_str),
        Some("demo-supervisor")
    );
    assert_eq!(
        resource.get("deployment.environment").map(String::as_str),
        Some("demo")
    );
    // The socket target watches only the worker group.
    let workers = sink.wait_for_processes("demo-socket", &["worker-1", "worker-2"], WAIT);
    expect::connected(&workers);
    // And what they print, a line every 5 s, as log records.
    sink.wait_for_logs(
        |requests| {
            all_records(requests).iter().any(|r| {
                r.server() == Some("demo-socket")
                    && r.attr("log.iostream") == Some("stdout")
                    && r.body.contains("processed job")
            })
        },
        WAIT,
    );

    // DEMO_DURATION ends it; the bound here only guards against a hang.
    let finished = demo.wait(WAIT * 3);
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(sink
        .requests()
        .iter()
        .all(|r| r.protocol == Protocol::HttpProtobuf));
    assert!(
        finished.stdout.contains("nightly-report") && finished.stdout.contains("demo-socket"),
        "the debug exporter prints the points:\n{}",
        finished.describe()
    );

    let temp_dir = reported(&finished.stderr, "temp dir: ");
    assert!(!Path::new(&temp_dir).exists(), "{temp_dir} was not removed");
    let pid = reported(&finished.stderr, "supervisord pid: ");
    assert!(
        !Path::new("/proc").join(&pid).exists(),
        "supervisord (pid {pid}) outlived the demo"
    );
}
