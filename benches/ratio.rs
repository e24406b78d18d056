//! The target, measured against a baseline taken in the same run: decoding a
//! `getAllProcessInfo` reply must cost at least 50 times less CPU than Python's
//! `xmlrpc.client.loads` (the parser behind Datadog's check) on the identical bytes.
//!
//! What is timed is what a poll runs: `client::decode_processes_reply` (a poll without
//! multicall) and `client::decode_multicall_reply` (a poll with it), both the fast path with
//! the general decoder behind it for what the fast path declines. These replies are what
//! supervisord writes, so the fast path reads them; the first table also times the general
//! decoder alone on the same bytes (`client::general_processes_reply`), to show what the fast
//! path is worth and what a reply it declines costs.
//!
//! Both sides are timed the same way, so a noisy machine slows both: process CPU time
//! (`CLOCK_PROCESS_CPUTIME_ID`, what `time.process_time` reads), `REPEAT` runs of `number`
//! calls where `number` is the smallest power of ten whose run takes `MIN_TIME`, best run
//! divided by `number`. Python runs `benches/python_baseline.py` on the files written under
//! `target/bench-replies/`; `python3` must be on `PATH`.
//!
//! Our side does more than Python's: `loads` stops at generic dicts, ours also types every
//! process entry. The second table is informative: the whole multicall path, and a whole poll
//! after the transport (decode, translation, protobuf, gzip), against Python's `loads` alone.
//!
//! `cargo bench --bench ratio`

mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pipeline;

const REPEAT: u32 = 7;
/// Seconds of CPU per run, at least.
const MIN_TIME: f64 = 0.05;
const TARGET_RATIO: f64 = 50.0;

/// Process CPU time in seconds, all threads (the benchmark runs on one).
fn process_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, exclusively borrowed timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

fn run<F: FnMut()>(number: u64, f: &mut F) -> f64 {
    let start = process_cpu_seconds();
    for _ in 0..number {
        f();
    }
    process_cpu_seconds() - start
}

/// Best CPU seconds per call, measured as `python_baseline.py` measures.
fn best_per_call<F: FnMut()>(mut f: F) -> f64 {
    let mut number = 1;
    while run(number, &mut f) < MIN_TIME {
        number *= 10;
    }
    (0..REPEAT)
        .map(|_| run(number, &mut f))
        .fold(f64::INFINITY, f64::min)
        / number as f64
}

/// Python's best CPU seconds per call of `loads`, per file, in the order given.
fn python_baseline(files: &[&Path]) -> (String, Vec<f64>) {
    let script = common::manifest_path("benches/python_baseline.py");
    let output = Command::new("python3")
        .arg(&script)
        .args([
            "--repeat",
            &REPEAT.to_string(),
            "--min-time",
            &MIN_TIME.to_string(),
        ])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (needed on PATH for the baseline): {e}"));
    if !output.status.success() {
        panic!(
            "python3 {} failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("python baseline output is not JSON: {e}"));
    let version = report["python"].as_str().unwrap_or("python3").to_owned();
    let times = report["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| {
            r["best_cpu_seconds_per_call"]
                .as_f64()
                .expect("per-call time")
        })
        .collect::<Vec<_>>();
    assert_eq!(times.len(), files.len(), "one result per file");
    (version, times)
}

fn micros(seconds: f64) -> f64 {
    seconds * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` passes nothing and
    // should not spend a minute measuring.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("ratio: run with `cargo bench --bench ratio`");
        return;
    }
    let replies = common::write_replies();
    let target = pipeline::target();

    let recorded = common::recorded();
    let mut files: Vec<PathBuf> = replies
        .iter()
        .flat_map(|(_, processes, multicall)| [processes.clone(), multicall.clone()])
        .collect();
    files.push(recorded.path.clone());
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (python, python_times) = python_baseline(&paths);

    println!(
        "\nCPU time per call, best of {REPEAT} runs of >= {MIN_TIME} s; baseline: {python} \
         xmlrpc.client.loads on the same bytes ({})",
        common::replies_dir().display()
    );
    println!(
        "\ngetAllProcessInfo reply (what Datadog's check decodes): client::decode_processes_reply; \
         general path alone for comparison"
    );
    println!(
        "{:>9} {:>9} {:>12} {:>12} {:>8}  {:>10}  {:>11} {:>8}",
        "processes", "bytes", "ours µs", "python µs", "ratio", "50x met", "general µs", "ratio"
    );
    let mut rows = Vec::new();
    for (i, (reply, _, _)) in replies.iter().enumerate() {
        let body = &reply.all_process_info;
        let ours = best_per_call(|| {
            black_box(pipeline::decode_processes(black_box(body)));
        });
        let general = best_per_call(|| {
            black_box(pipeline::decode_processes_general(black_box(body)));
        });
        let python = python_times.get(2 * i).copied().unwrap_or(f64::NAN);
        let ratio = python / ours;
        println!(
            "{:>9} {:>9} {:>12.2} {:>12.2} {:>7.1}x  {:>10}  {:>11.2} {:>7.1}x",
            reply.processes,
            body.len(),
            micros(ours),
            micros(python),
            ratio,
            if ratio >= TARGET_RATIO { "yes" } else { "NO" },
            micros(general),
            python / general,
        );
        rows.push(ratio);
    }

    println!(
        "\nmulticall reply (what a poll of ours decodes), and a whole poll after the transport"
    );
    println!(
        "{:>12} {:>9} {:>12} {:>12} {:>8}  {:>14} {:>8}",
        "processes", "bytes", "ours µs", "python µs", "ratio", "full poll µs", "ratio"
    );
    let multicalls = std::iter::once(("3 (recorded)".to_owned(), &recorded.body, files.len() - 1))
        .chain(
            replies.iter().enumerate().map(|(i, (reply, _, _))| {
                (reply.processes.to_string(), &reply.multicall, 2 * i + 1)
            }),
        );
    for (label, body, python_index) in multicalls {
        let decode = best_per_call(|| {
            black_box(pipeline::decode_multicall(black_box(body)));
        });
        let full = best_per_call(|| {
            let snapshot = pipeline::decode_multicall(black_box(body));
            let body = pipeline::translate(&target, snapshot);
            black_box(pipeline::gzip(&body));
        });
        let python = python_times.get(python_index).copied().unwrap_or(f64::NAN);
        println!(
            "{:>12} {:>9} {:>12.2} {:>12.2} {:>7.1}x  {:>14.2} {:>7.1}x",
            label,
            body.len(),
            micros(decode),
            micros(python),
            python / decode,
            micros(full),
            python / full,
        );
    }

    let met = rows.iter().all(|ratio| *ratio >= TARGET_RATIO);
    println!(
        "\ntarget ({TARGET_RATIO}x less CPU than Python at {:?} processes): {}",
        common::SIZES,
        if met { "met" } else { "NOT met" }
    );
}
