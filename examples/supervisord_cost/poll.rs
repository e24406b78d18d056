//! The measured loop: polls back to back, each one what the receiver does per target and
//! interval, with the CPU clock read at the two phase boundaries.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use supervisord_receiver::metrics::encode_resource_metrics;
use supervisord_receiver::schema::MetricToggles;
use supervisord_receiver::scrape::outcome::PollOutcome;
use supervisord_receiver::scrape::poller::TargetPoller;

use crate::cpu;

/// What `polls` polls cost, summed.
pub struct Totals {
    pub polls: u32,
    /// Receiver CPU from the request to a checked [`PollOutcome`]: HTTP on a kept-alive
    /// connection, XML-RPC decode, typed model, filter and status mapping.
    pub transport_decode_ns: u64,
    /// Receiver CPU from the outcome to the protobuf OTLP request.
    pub translate_encode_ns: u64,
    /// Receiver CPU to gzip that request, as the OTLP exporters do (level 1).
    pub gzip_ns: u64,
    /// supervisord's own CPU over the loop, in clock ticks.
    pub supervisord_ticks: u64,
    pub wall: Duration,
    /// Size of the last protobuf request, and of its gzip.
    pub otlp_bytes: usize,
    pub gzip_bytes: usize,
}

/// The OTLP request of one poll, protobuf-encoded as the OTLP exporters send it.
fn translate(outcome: &PollOutcome, toggles: &MetricToggles) -> Vec<u8> {
    let mut out = Vec::new();
    encode_resource_metrics(outcome, toggles, &mut out);
    out
}

/// The OTLP exporters' compression: gzip at the fast level.
fn gzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body)?;
    Ok(encoder.finish()?)
}

/// A poll that failed or saw fewer processes than configured would measure something else.
fn check(outcome: &PollOutcome, processes: usize) -> Result<()> {
    match &outcome.result {
        Ok(data) if data.processes.len() == processes => Ok(()),
        Ok(data) => bail!(
            "a poll saw {} processes, expected {processes}",
            data.processes.len()
        ),
        Err(message) => bail!("a poll failed: {message}"),
    }
}

/// `warmup` unmeasured polls (connection set up, allocator and caches warm), then `polls`
/// measured ones.
pub async fn measure(
    poller: &mut TargetPoller,
    processes: usize,
    warmup: u32,
    polls: u32,
    supervisord_pid: u32,
) -> Result<Totals> {
    let toggles = MetricToggles::default();
    for _ in 0..warmup {
        let outcome = poller.poll().await;
        check(&outcome, processes)?;
        std::hint::black_box(gzip(&translate(&outcome, &toggles))?);
    }
    let mut totals = Totals {
        polls,
        transport_decode_ns: 0,
        translate_encode_ns: 0,
        gzip_ns: 0,
        supervisord_ticks: 0,
        wall: Duration::ZERO,
        otlp_bytes: 0,
        gzip_bytes: 0,
    };
    let ticks_before = cpu::stat_ticks(supervisord_pid)?;
    let started = Instant::now();
    let mut mark = cpu::process_cpu_ns();
    for _ in 0..polls {
        let outcome = poller.poll().await;
        let polled = cpu::process_cpu_ns();
        let body = translate(&outcome, &toggles);
        let encoded = cpu::process_cpu_ns();
        let compressed = gzip(&body);
        let done = cpu::process_cpu_ns();
        totals.transport_decode_ns += polled.saturating_sub(mark);
        totals.translate_encode_ns += encoded.saturating_sub(polled);
        totals.gzip_ns += done.saturating_sub(encoded);
        mark = done;
        // Not part of a real poll; a length comparison, whose few nanoseconds land in the
        // next poll's first phase.
        check(&outcome, processes)?;
        totals.otlp_bytes = body.len();
        totals.gzip_bytes = compressed.context("gzip")?.len();
    }
    totals.wall = started.elapsed();
    let ticks_after = cpu::stat_ticks(supervisord_pid)?;
    totals.supervisord_ticks = ticks_after.saturating_sub(ticks_before);
    Ok(totals)
}
