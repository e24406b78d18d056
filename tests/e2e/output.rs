//! Program output as log records, end to end: real programs write to stdout and stderr under a
//! real supervisord, the receiver tails them through supervisord's log API, and the records
//! arrive at a real OTLP server, checked line by line: every line once and in order across the
//! per-poll limit (a split line, a multi-byte character on the window's edge), lenient text,
//! supervisord's own log, a skip when a program writes faster than it is read (every byte
//! accounted for), and a restart with the persistent queue that neither repeats nor misses.

use std::path::Path;
use std::time::Duration;

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::otlp_sink::{all_records, OtlpSink, Record};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{write_file, Options, Program, Supervisord};
use crate::testkit::{yaml_str, WAIT};

/// A program section that keeps stderr apart (the testkit's programs redirect it), running a
/// Python script from `dir` that waits for `dir/go` before it writes.
fn program(name: &str, dir: &Path, script: &str) -> String {
    let path = write_file(dir, &format!("{name}.py"), script);
    format!(
        "[program:{name}]\ncommand=python3 -u {script} {dir}\nautostart=true\nstartsecs=0\n\
         redirect_stderr=false\nstdout_logfile_maxbytes=0\nstderr_logfile_maxbytes=0\n\
         stopasgroup=true\nkillasgroup=true\nstopwaitsecs=2\n",
        script = path.display(),
        dir = dir.display(),
    )
}

/// The receiver's config: one target over the UNIX socket with `output` settings, one gRPC
/// exporter, and `storage` for the persistent queue when given.
fn receiver_config(
    svd: &Supervisord,
    sink: &OtlpSink,
    output: &str,
    storage: Option<&Path>,
) -> std::path::PathBuf {
    let target = target("t", &svd.unix_url()).extra(&format!("output:\n{output}"));
    let mut exporter = otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[]);
    if let Some(storage) = storage {
        exporter.push_str(&format!(
            "    sending_queue:\n      storage: {}\n",
            yaml_str(&storage.to_string_lossy())
        ));
    }
    let cfg = config::native(&[target], &[exporter]);
    let cfg = format!("{cfg}telemetry:\n  metrics: false\n");
    config::write(svd.dir(), "receiver.yaml", &cfg)
}

/// Waits until the receiver has polled the target once (its logs' ends are then known), and
/// lets the programs write.
fn after_first_poll_go(sink: &OtlpSink, dir: &Path, programs: &[&str]) {
    sink.wait_for_processes("t", programs, WAIT);
    std::fs::write(dir.join("go"), b"").unwrap();
}

/// The bodies of `program`'s lines on `stream`, in arrival order.
fn lines(records: &[Record], program: &str, stream: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| {
            r.attr("supervisord_process") == Some(program)
                && r.attr("log.iostream") == Some(stream)
                && r.event_name.is_empty()
        })
        .map(|r| r.body.clone())
        .collect()
}

const TALKER: &str = r#"
import os, sys, time
d = sys.argv[1]
# Written before the receiver starts: a new target starts at the end of each log.
sys.stdout.buffer.write(b"early line\n")
sys.stdout.buffer.flush()
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.05)
out = bytearray()
# One line across the first 4 KiB window, with a 3-byte character on its edge (bytes
# 4094-4096 of the window, which starts where the receiver found the log's end).
out += b"a" * 4094 + "日本".encode() + b"\n"
for i in range(300):
    out += f"out {i:04d} ünïcödé ✓\n".encode()
out += b"\x1b[31mred\x1b[0m\n" + b"nul\x00byte\n" + b"bad\xffbyte\n" + b"crlf\r\n"
out += b"z" * 20000 + b"\n"
out += b"out end\n"
sys.stdout.buffer.write(out)
sys.stdout.buffer.flush()
err = "".join(f"err {i:04d} ⚠\n" for i in range(200)) + "err end\n"
sys.stderr.buffer.write(err.encode())
sys.stderr.buffer.flush()
time.sleep(600)
"#;

#[test]
fn every_line_arrives_once_and_in_order_across_the_per_poll_limit() {
    let scripts = tempfile::tempdir().unwrap();
    let idle = Program {
        autostart: false,
        ..Program::running("idle")
    };
    let svd = Supervisord::start(Options::default().programs(vec![idle]).section(&program(
        "talker",
        scripts.path(),
        TALKER,
    )));
    let sink = OtlpSink::start();
    let path = receiver_config(
        &svd,
        &sink,
        "  max_bytes_per_poll: 4KiB\n  max_backlog_bytes: 1MiB\n  main_log: true\n",
        None,
    );
    // The line written before the receiver starts is in the log by then.
    let deadline = std::time::Instant::now() + WAIT;
    while !svd.ctl(&["tail", "talker"]).contains("early line") {
        assert!(std::time::Instant::now() < deadline, "talker wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let receiver = Running::start(&path, &[]);
    after_first_poll_go(&sink, scripts.path(), &["idle", "talker"]);
    // Something for supervisord to log after the receiver found its log's end.
    svd.ctl(&["start", "idle"]);

    let done = |records: &[Record]| {
        lines(records, "talker", "stdout")
            .last()
            .map(String::as_str)
            == Some("out end")
            && lines(records, "talker", "stderr")
                .last()
                .map(String::as_str)
                == Some("err end")
    };
    let requests = sink.wait_for_logs(|r| done(&all_records(r)), WAIT);
    let records = all_records(&requests);

    let mut expected_out = vec![format!("{}日本", "a".repeat(4094))];
    expected_out.extend((0..300).map(|i| format!("out {i:04} ünïcödé ✓")));
    expected_out.extend(["red", "nulbyte", "bad\u{fffd}byte", "crlf"].map(String::from));
    expected_out.push("z".repeat(16 * 1024));
    expected_out.push("out end".into());
    let got_out = lines(&records, "talker", "stdout");
    for (i, (got, want)) in got_out.iter().zip(&expected_out).enumerate() {
        assert_eq!(got, want, "stdout line {i}");
    }
    assert_eq!(got_out.len(), expected_out.len());
    let mut expected_err: Vec<String> = (0..200).map(|i| format!("err {i:04} ⚠")).collect();
    expected_err.push("err end".into());
    assert_eq!(lines(&records, "talker", "stderr"), expected_err);

    // More than one poll read them: the per-poll limit held.
    let requests_with_output = requests
        .iter()
        .filter(|r| !lines(&all_records(std::slice::from_ref(r)), "talker", "stdout").is_empty())
        .count();
    assert!(
        requests_with_output >= 3,
        "{requests_with_output} requests carried stdout lines; 4 KiB a poll needs at least 3"
    );

    let line = records
        .iter()
        .find(|r| r.attr("log.iostream") == Some("stdout"))
        .unwrap();
    let cut = records.iter().find(|r| r.body.starts_with("zzz")).unwrap();
    assert_eq!(
        cut.attr("cut_bytes"),
        Some("3616"),
        "20000 bytes cut to 16 KiB"
    );
    assert_eq!(line.attr("cut_bytes"), None);
    assert_eq!(line.attr("supervisord_group"), Some("talker"));
    assert_eq!(line.server(), Some("t"), "the metrics' resource");
    assert_eq!((line.severity_number, line.time_unix_nano), (0, 0));
    assert!(line.observed_time_unix_nano > 0);

    // supervisord's own log, read with readLog from where it ended at the first poll: what
    // it logged before is not sent, what it logged after is.
    let main_log: Vec<&Record> = records
        .iter()
        .filter(|r| r.attrs.is_empty() && r.event_name.is_empty())
        .collect();
    assert!(
        main_log.iter().any(|r| r.body.contains("spawned: 'idle'")),
        "supervisord's log lines: {main_log:?}"
    );
    receiver.stop();
}

const TICKER: &str = r#"
import os, sys, time
d = sys.argv[1]
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.05)
i = 0
while not os.path.exists(os.path.join(d, "stop")):
    print(f"tick {i}", flush=True)
    i += 1
    time.sleep(0.01)
print("tick end", flush=True)
time.sleep(600)
"#;

#[test]
fn a_restart_with_the_persistent_queue_neither_repeats_nor_misses_a_line() {
    let scripts = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let svd = Supervisord::start(Options::default().programs(Vec::new()).section(&program(
        "ticker",
        scripts.path(),
        TICKER,
    )));
    let sink = OtlpSink::start();
    let path = receiver_config(&svd, &sink, "  streams: [stdout]\n", Some(storage.path()));
    let first = Running::start(&path, &[]);
    after_first_poll_go(&sink, scripts.path(), &["ticker"]);
    sink.wait_for_logs(
        |r| lines(&all_records(r), "ticker", "stdout").len() > 50,
        WAIT,
    );
    let finished = first.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    let before = lines(&all_records(&sink.logs()), "ticker", "stdout").len();
    // The program goes on writing while no receiver runs.
    std::thread::sleep(Duration::from_millis(1500));

    let second = Running::start(&path, &[]);
    sink.wait_for_logs(
        |r| lines(&all_records(r), "ticker", "stdout").len() > before + 100,
        WAIT,
    );
    let requests = stop_ticking(&sink, scripts.path());
    second.stop();

    let got = lines(&all_records(&requests), "ticker", "stdout");
    let ticks = assert_every_tick_once(&got, &format!("the first run stopped after {before}"));
    assert!(ticks > before + 100, "lines written while down arrived too");
}

/// Tells the ticker to stop and waits for its last line; returns every logs request.
fn stop_ticking(sink: &OtlpSink, dir: &Path) -> Vec<crate::testkit::otlp_sink::ReceivedLogs> {
    std::fs::write(dir.join("stop"), b"").unwrap();
    sink.wait_for_logs(
        |r| {
            lines(&all_records(r), "ticker", "stdout")
                .last()
                .is_some_and(|l| l == "tick end")
        },
        WAIT,
    )
}

/// Checks `got` is `tick 0`, `tick 1`, ... `tick end`, each once; returns the ticks' count.
fn assert_every_tick_once(got: &[String], when: &str) -> usize {
    let ticks = got.len().saturating_sub(1);
    let expected: Vec<String> = (0..ticks)
        .map(|i| format!("tick {i}"))
        .chain(["tick end".to_string()])
        .collect();
    if got != expected {
        let first_wrong = got.iter().zip(&expected).position(|(g, e)| g != e);
        let around = |lines: &[String], i: usize| {
            lines[i.saturating_sub(2)..(i + 3).min(lines.len())].to_vec()
        };
        panic!(
            "{} lines, first difference at {first_wrong:?}: got {:?}, expected {:?} ({when})",
            got.len(),
            first_wrong.map(|i| around(got, i)),
            first_wrong.map(|i| around(&expected, i)),
        );
    }
    ticks
}

#[test]
fn a_reload_goes_on_from_the_same_offsets() {
    let scripts = tempfile::tempdir().unwrap();
    let svd = Supervisord::start(Options::default().programs(Vec::new()).section(&program(
        "ticker",
        scripts.path(),
        TICKER,
    )));
    let sink = OtlpSink::start();
    let path = receiver_config(&svd, &sink, "  streams: [stdout]\n", None);
    let receiver = Running::start(&path, &[]);
    after_first_poll_go(&sink, scripts.path(), &["ticker"]);
    for (reload, max_line) in ["8KiB", "4KiB", "16KiB"].into_iter().enumerate() {
        sink.wait_for_logs(
            |r| lines(&all_records(r), "ticker", "stdout").len() > 40 * (reload + 1),
            WAIT,
        );
        // Changed output settings change the target: its task is replaced, mid-poll or not.
        receiver_config(
            &svd,
            &sink,
            &format!("  streams: [stdout]\n  max_line_bytes: {max_line}\n"),
            None,
        );
        receiver.signal("HUP");
        receiver.wait_for_reloads(reload + 1);
    }
    let before = lines(&all_records(&sink.logs()), "ticker", "stdout").len();
    sink.wait_for_logs(
        |r| lines(&all_records(r), "ticker", "stdout").len() > before + 40,
        WAIT,
    );
    let requests = stop_ticking(&sink, scripts.path());
    receiver.stop();
    let got = lines(&all_records(&requests), "ticker", "stdout");
    assert_every_tick_once(&got, "across three reloads");
    assert!(
        !receiver_log_mentions_skips(&requests),
        "nothing was skipped: the reloads kept the offsets"
    );
}

fn receiver_log_mentions_skips(requests: &[crate::testkit::otlp_sink::ReceivedLogs]) -> bool {
    all_records(requests)
        .iter()
        .any(|r| r.event_name == "supervisord.process.output.skipped")
}

const FLOOD: &str = r#"
import os, sys, time
d = sys.argv[1]
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.05)
out = bytearray()
for i in range(3000):
    out += f"burst {i:05d} ".encode() + b"x" * 88 + b"\n"
out += b"burst end\n"
sys.stdout.buffer.write(out)
sys.stdout.buffer.flush()
with open(os.path.join(d, "written"), "w") as f:
    f.write(str(len(out)))
time.sleep(600)
"#;

#[test]
fn a_program_that_writes_faster_than_it_is_read_is_skipped_with_every_byte_accounted_for() {
    let scripts = tempfile::tempdir().unwrap();
    let svd = Supervisord::start(Options::default().programs(Vec::new()).section(&program(
        "flood",
        scripts.path(),
        FLOOD,
    )));
    let sink = OtlpSink::start();
    let path = receiver_config(
        &svd,
        &sink,
        "  streams: [stdout]\n  max_bytes_per_poll: 2KiB\n  max_backlog_bytes: 8KiB\n",
        None,
    );
    let receiver = Running::start(&path, &[]);
    after_first_poll_go(&sink, scripts.path(), &["flood"]);
    let requests = sink.wait_for_logs(
        |r| {
            lines(&all_records(r), "flood", "stdout")
                .last()
                .map(String::as_str)
                == Some("burst end")
        },
        WAIT,
    );
    receiver.stop();
    let records: Vec<Record> = all_records(&requests)
        .into_iter()
        .filter(|r| r.attr("supervisord_process") == Some("flood"))
        .filter(|r| r.attr("log.iostream") == Some("stdout"))
        .collect();
    let written: u64 = std::fs::read_to_string(scripts.path().join("written"))
        .unwrap()
        .parse()
        .unwrap();

    let mut skipped = 0;
    let mut read = 0;
    let mut last_number = None;
    for record in &records {
        if record.event_name == "supervisord.process.output.skipped" {
            assert_eq!(record.severity_text, "WARN");
            skipped += record
                .attr("skipped_bytes")
                .unwrap()
                .parse::<u64>()
                .unwrap();
            continue;
        }
        read += record.body.len() as u64 + 1;
        if record.body == "burst end" {
            continue;
        }
        // Whole lines only: a skip resumes at the next line, never in the middle of one.
        let number: u32 = record
            .body
            .strip_prefix("burst ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a whole line: {:?}", record.body));
        assert_eq!(record.body.len(), 6 + 5 + 1 + 88, "{:?}", record.body);
        assert!(
            last_number < Some(number),
            "in order: {number} after {last_number:?}"
        );
        last_number = Some(number);
    }
    assert!(skipped > 0, "a 300 KB burst at 2 KiB a poll must skip");
    assert_eq!(
        read + skipped,
        written,
        "every byte was either read or counted as skipped"
    );
}
