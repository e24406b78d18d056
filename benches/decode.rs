//! Micro benchmarks of each stage of a poll after the transport, on the reply recorded from a
//! real supervisord and on larger ones generated from it (see `common`):
//! - `decode/get_all_process_info`: XML-RPC decoding and the typed process entries, on the
//!   reply Datadog's check receives (the figure `benches/ratio.rs` compares with Python): the
//!   fast path, as a poll runs it;
//! - `decode/general_path`: the same through the general decoder alone, what a reply the fast
//!   path declines costs;
//! - `decode/xmlrpc_only`: the general decoder's XML-RPC layer alone, on the same reply;
//! - `decode/multicall`: the whole multicall path a poll takes;
//! - `translate`: filters, status mapping and the OTLP request written as protobuf (one step:
//!   `benches/export.rs` sets it against the former generated-structs path);
//! - `encode/gzip`: compressing that body as the OTLP exporters do.
//!
//! `cargo bench --bench decode`; the ratio against Python is `cargo bench --bench ratio`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

use common::pipeline;
use supervisord_receiver::supervisor::xmlrpc;

/// Short runs: the figures are relative, and the machine is shared.
fn configured() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

fn stages(c: &mut Criterion) {
    let recorded = common::recorded();
    let replies = common::write_replies();
    let target = pipeline::target();

    // The XML-RPC layer alone, to tell its share from the typed process entries'.
    let mut group = c.benchmark_group("decode/xmlrpc_only");
    for (reply, _, _) in &replies {
        group.throughput(Throughput::Elements(reply.processes as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(reply.processes),
            &reply.all_process_info,
            |b, body| b.iter(|| xmlrpc::decode_response(black_box(body))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("decode/get_all_process_info");
    for (reply, _, _) in &replies {
        group.throughput(Throughput::Elements(reply.processes as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(reply.processes),
            &reply.all_process_info,
            |b, body| b.iter(|| pipeline::decode_processes(black_box(body))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("decode/general_path");
    for (reply, _, _) in &replies {
        group.throughput(Throughput::Elements(reply.processes as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(reply.processes),
            &reply.all_process_info,
            |b, body| b.iter(|| pipeline::decode_processes_general(black_box(body))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("decode/multicall");
    group.throughput(Throughput::Elements(3));
    group.bench_function("recorded_supervisord_4.3.0", |b| {
        b.iter(|| pipeline::decode_multicall(black_box(&recorded.body)))
    });
    for (reply, _, _) in &replies {
        group.throughput(Throughput::Elements(reply.processes as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(reply.processes),
            &reply.multicall,
            |b, body| b.iter(|| pipeline::decode_multicall(black_box(body))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("translate");
    let recorded_snapshot = pipeline::decode_multicall(&recorded.body);
    group.throughput(Throughput::Elements(3));
    group.bench_function("recorded_supervisord_4.3.0", |b| {
        b.iter_batched(
            || recorded_snapshot.clone(),
            |snapshot| pipeline::translate(&target, snapshot),
            BatchSize::SmallInput,
        )
    });
    for (reply, _, _) in &replies {
        let snapshot = pipeline::decode_multicall(&reply.multicall);
        group.throughput(Throughput::Elements(reply.processes as u64));
        group.bench_function(BenchmarkId::from_parameter(reply.processes), |b| {
            b.iter_batched(
                || snapshot.clone(),
                |snapshot| pipeline::translate(&target, snapshot),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let requests: Vec<_> = replies
        .iter()
        .map(|(reply, _, _)| {
            let snapshot = pipeline::decode_multicall(&reply.multicall);
            (reply.processes, pipeline::translate(&target, snapshot))
        })
        .collect();
    let mut gzip = c.benchmark_group("encode/gzip");
    for (processes, body) in &requests {
        gzip.throughput(Throughput::Bytes(body.len() as u64));
        gzip.bench_with_input(BenchmarkId::from_parameter(processes), body, |b, body| {
            b.iter(|| pipeline::gzip(black_box(body)))
        });
    }
    gzip.finish();
}

criterion_group! {
    name = benches;
    config = configured();
    targets = stages
}
criterion_main!(benches);
