//! The export side of a poll, against the way it used to be done, measured in the same run:
//!
//! - `export/structs`: the generated OTLP structs (`build_request`), then what the pipeline did
//!   with them before the request was written directly: sized for the request limit
//!   (`encoded_len`), encoded into the sending queue, decoded when taken, encoded again by the
//!   gRPC client. This is the baseline.
//! - `export/direct`: what the pipeline does now: the poll written straight to protobuf bytes
//!   (`encode_resource_metrics`), queued and sent as they are.
//! - `export/gzip_fast` and `export/gzip_6`: compressing those bytes as the OTLP/HTTP exporter
//!   does (level 1) and as tonic does for gRPC (level 6).
//!
//! The last lines print the ratio of the two paths per process count.
//!
//! `cargo bench --bench export`

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use supervisord_receiver::metrics::{build_request, encode_resource_metrics};
use supervisord_receiver::schema::MetricToggles;
use supervisord_receiver::scrape::outcome::{
    MonitoredProcess, PollData, PollOutcome, TargetIdentity,
};
use supervisord_receiver::vocab::Status;
use supervisord_receiver::vocab::{ProcessInfo, ProcessState, SupervisorState};

const SIZES: [usize; 3] = [10, 100, 1000];

/// A poll of `processes` processes named as a real fleet names them, in mixed states.
fn outcome(processes: usize) -> PollOutcome {
    let states = [
        ProcessState::Running,
        ProcessState::Running,
        ProcessState::Running,
        ProcessState::Stopped,
        ProcessState::Exited,
        ProcessState::Backoff,
    ];
    let processes = (0..processes)
        .map(|i| {
            let state = states[i % states.len()];
            MonitoredProcess {
                info: ProcessInfo {
                    name: format!("worker_{:02}", i % 16),
                    group: format!("pool_{}", i / 16),
                    state,
                    start: 1_732_400_000 + i as i64,
                    now: 1_732_440_000,
                    exitstatus: i64::from(state == ProcessState::Exited),
                    pid: 10_000 + i as i64,
                    ..Default::default()
                },
                status: if state == ProcessState::Running {
                    Status::Up
                } else {
                    Status::Down
                },
                // The Datadog format, as the figures in docs/performance.md: no `autostart`.
                autostart: None,
            }
        })
        .collect();
    PollOutcome {
        target: Arc::new(TargetIdentity {
            name: "web-07.example.internal".into(),
            attributes: vec![("deployment.environment".into(), "production".into())],
            // The Datadog format: the server's name on every point.
            point_attributes: vec![(
                "supervisord_server".into(),
                "web-07.example.internal".into(),
            )],
        }),
        time_unix_nano: 1_732_440_000_123_456_789,
        result: Ok(PollData {
            processes,
            supervisor_state: Some(SupervisorState::Running),
            identification: Some("supervisor".into()),
            version: Some("4.3.0".into()),
            ..Default::default()
        }),
    }
}

/// The former path, from the poll to the bytes on the wire.
fn via_structs(outcome: &PollOutcome, toggles: &MetricToggles) -> Vec<u8> {
    let request = build_request(std::slice::from_ref(outcome), toggles);
    black_box(request.encoded_len());
    let queued = request.encode_to_vec();
    let taken = ExportMetricsServiceRequest::decode(queued.as_slice()).expect("decodes");
    taken.encode_to_vec()
}

fn direct(outcome: &PollOutcome, toggles: &MetricToggles) -> Vec<u8> {
    let mut out = Vec::new();
    encode_resource_metrics(outcome, toggles, &mut out);
    out
}

fn gzip(body: &[u8], level: Compression) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), level);
    encoder.write_all(body).expect("gzip");
    encoder.finish().expect("gzip")
}

fn configured() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

fn stages(c: &mut Criterion) {
    let toggles = MetricToggles::default();
    let outcomes: Vec<(usize, PollOutcome)> = SIZES.iter().map(|&n| (n, outcome(n))).collect();
    for (n, outcome) in &outcomes {
        assert_eq!(
            direct(outcome, &toggles),
            via_structs(outcome, &toggles),
            "both paths write the same bytes ({n} processes)"
        );
    }
    let mut group = c.benchmark_group("export/structs");
    for (n, outcome) in &outcomes {
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), outcome, |b, o| {
            b.iter(|| via_structs(black_box(o), &toggles))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("export/direct");
    for (n, outcome) in &outcomes {
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), outcome, |b, o| {
            b.iter(|| direct(black_box(o), &toggles))
        });
    }
    group.finish();
    for (name, level) in [
        ("export/gzip_fast", Compression::fast()),
        ("export/gzip_6", Compression::new(6)),
    ] {
        let mut group = c.benchmark_group(name);
        for (n, outcome) in &outcomes {
            let body = direct(outcome, &toggles);
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
                b.iter(|| gzip(black_box(body), level))
            });
        }
        group.finish();
    }
    summary(&outcomes, &toggles);
}

/// Per process count: bytes, both paths' cost per poll (best of a few timed runs) and the ratio.
fn summary(outcomes: &[(usize, PollOutcome)], toggles: &MetricToggles) {
    fn best<F: FnMut()>(mut f: F) -> f64 {
        let mut calls = 1u32;
        loop {
            let start = std::time::Instant::now();
            for _ in 0..calls {
                f();
            }
            if start.elapsed() > Duration::from_millis(50) {
                break;
            }
            calls *= 2;
        }
        (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                for _ in 0..calls {
                    f();
                }
                start.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
            })
            .fold(f64::INFINITY, f64::min)
    }
    println!("\nexport side of one poll (µs, best of 5), Datadog format, all metrics enabled");
    println!(
        "{:>9} {:>8} {:>10} {:>12} {:>10} {:>7} {:>11}",
        "processes", "points", "protobuf B", "structs µs", "direct µs", "ratio", "gzip-1 B"
    );
    for (n, outcome) in outcomes {
        let mut out = Vec::new();
        let points = encode_resource_metrics(outcome, toggles, &mut out);
        let structs = best(|| {
            black_box(via_structs(outcome, toggles));
        });
        let direct_us = best(|| {
            black_box(direct(outcome, toggles));
        });
        println!(
            "{n:>9} {points:>8} {:>10} {structs:>12.2} {direct_us:>10.2} {:>6.1}x {:>11}",
            out.len(),
            structs / direct_us,
            gzip(&out, Compression::fast()).len()
        );
    }
}

criterion_group! {
    name = benches;
    config = configured();
    targets = stages
}
criterion_main!(benches);
