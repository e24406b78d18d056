//! The receiver's own metrics on the OpenTelemetry SDK, the way the OpenTelemetry Collector
//! handles its own (`service::telemetry::metrics`): a meter provider of their own, with a
//! periodic reader and an OTLP exporter, apart from the targets' data pipeline.
//!
//! # Instruments
//!
//! Each instrument is declared once, from the self-telemetry table of
//! [`crate::schema::definitions`] ([`SELF_METRICS`]: name, unit, description, instrument kind),
//! under the scope `supervisord-receiver/self` and the resource [`SelfResource`]:
//!
//! - the histogram (`poll.duration`) is a synchronous instrument: each poll records its
//!   duration ([`super::PollStats::record`]), in the explicit buckets of the table;
//! - the counters and up-down counters are asynchronous (observable): at each collection
//!   their callbacks read the counts and levels the receiver keeps in process anyway for the
//!   health endpoint ([`super::Telemetry`]).
//!
//! Why asynchronous rather than `add()` at each call site, as first planned:
//!
//! - a target removed by a reload must lose its series (`tests/e2e/reload.rs` holds the
//!   receiver to that). In cumulative temporality the SDK (0.33) drops an attribute set only
//!   from an asynchronous instrument, one its callback no longer reports (`drain_and_reset`); a
//!   synchronous counter keeps every series it ever saw until the process ends
//!   (`collect_readonly`). The histogram, which has no asynchronous
//!   form, is the exception: a removed target's `poll.duration` keeps its last state until
//!   restart;
//! - the health endpoint needs the same counts in process: one count, read by both, cannot
//!   disagree with itself, where a second count kept by the SDK could;
//! - nothing is added to the hot paths but the histogram's `record` (0.2 to 0.5 µs a poll,
//!   measured in release on this project's 2-core machine; a synchronous counter `add` with
//!   the target attribute costs another 0.15 to 0.3 µs each).
//!
//! What the SDK costs more than the hand-built OTLP it replaces (measured the same way, 10,000
//! targets): one collection, conversion to OTLP and encoding takes 50 to 100 ms, where the old
//! emitter's snapshot, structs and encoding took about 8 ms. Most of it is the SDK's
//! bookkeeping of attribute sets (sharing the attribute values instead of allocating them
//! changed nothing measurable), and the histogram series weigh 16 numbers each instead of one.
//! It runs on the reader's own thread, once an interval: at 15 s, under 1 % of one core for
//! such a fleet, nothing noticeable for a few hundred targets. Kept for what the SDK brings
//! (one definition of each instrument, standard aggregation, temporality and exporter, a
//! histogram), not for speed.
//!
//! # Export
//!
//! A [`PeriodicReader`] collects every interval (`telemetry.interval` >
//! `OTEL_METRIC_EXPORT_INTERVAL` > the collection interval, see [`export_interval`]) on a
//! thread of its own and hands the result to the exporter, the OTLP one of
//! `opentelemetry-otlp` built by `crate::app::self_telemetry` from one OTLP exporter's settings
//! ([`destination`]). Temporality follows the same preference as the targets' sums
//! (`metrics_temporality`, else `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else
//! cumulative; see [`sdk_temporality`]), applied by the SDK per instrument. The exporter does
//! not retry: a cumulative series survives a lost export, the next one carrying the totals; a
//! delta export that is lost is lost. [`SelfMetrics::shutdown`] makes the last collection and
//! export, bounded by the time the caller gives it.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};
use opentelemetry_sdk::Resource;

use super::{RateLimitedLog, Telemetry};
use crate::schema::definitions::{self as defs, SelfInstrument, SelfMetricId, SELF_METRICS};
use crate::settings::{
    ExporterSettings, OtlpSettings, Signal, TelemetrySettings, TemporalityPreference,
};

/// The environment variable of the OpenTelemetry SDK specification: the export interval in
/// milliseconds.
pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";

/// Series per instrument before the SDK folds new ones into one `otel.metric.overflow=true`
/// series. The SDK's default, 2000, is below the fleets a receiver polls (the load harness
/// runs 10,000 targets, each with a `polls` series and up to 9 `poll.errors` series); the
/// attribute sets are bounded by the configuration anyway, and the memory is only taken by
/// series that exist.
pub const CARDINALITY_LIMIT: usize = 100_000;

/// The rate-limit key and `event` of a failed self-telemetry export.
const EXPORT_FAILED: &str = "self_telemetry_export_failed";

/// The receiver's resource, built once at start: `service.name`, `service.instance.id`,
/// `service.version`, and nothing else (no SDK or environment detectors), so the series are
/// the same wherever the receiver runs.
#[derive(Debug, Clone)]
pub struct SelfResource {
    resource: Resource,
}

impl SelfResource {
    /// `service.instance.id` is the host name when it can be read, else an id generated now.
    pub fn detect() -> Self {
        SelfResource::with_instance_id(&instance_id())
    }

    pub fn with_instance_id(instance_id: &str) -> Self {
        let attributes = [
            (defs::SERVICE_NAME.key, defs::SELF_SERVICE_NAME.to_string()),
            (defs::SERVICE_INSTANCE_ID.key, instance_id.to_string()),
            (defs::SERVICE_VERSION.key, defs::SCOPE_VERSION.to_string()),
        ];
        SelfResource {
            resource: Resource::builder_empty()
                .with_attributes(attributes.map(|(k, v)| KeyValue::new(k, v)))
                .build(),
        }
    }
}

/// The host name (Linux: the kernel's), or a random id when there is none: an id must be
/// there, and a host name keeps it stable across restarts.
fn instance_id() -> String {
    let from_file = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
    };
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|name| !name.is_empty() && name.len() <= 255)
        .unwrap_or_else(generated_id)
}

/// 64 random bits from the standard library's per-process random hash keys.
fn generated_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(crate::clock::unix_nanos_now());
    format!("{:016x}", hasher.finish())
}

/// Where the export interval came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalSource {
    /// `telemetry.interval`.
    File,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    Environment,
    /// Neither: the collection interval.
    CollectionInterval,
}

impl IntervalSource {
    pub fn name(self) -> &'static str {
        match self {
            IntervalSource::File => "telemetry.interval",
            IntervalSource::Environment => OTEL_METRIC_EXPORT_INTERVAL,
            IntervalSource::CollectionInterval => "collection_interval",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInterval {
    pub every: Duration,
    pub source: IntervalSource,
    /// An `OTEL_METRIC_EXPORT_INTERVAL` that was set but not used, and why: logged at start.
    pub ignored: Option<String>,
}

/// The time between two exports: `telemetry.interval` when the file sets it, else
/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, a positive integer, as the SDK specification
/// defines it; an empty variable counts as unset), else the collection interval (not the SDK's
/// 60 s: the receiver's own metrics have always come at the pace of the targets').
pub fn export_interval(
    settings: &TelemetrySettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> ExportInterval {
    let variable = env(OTEL_METRIC_EXPORT_INTERVAL).filter(|v| !v.trim().is_empty());
    if let Some(every) = settings.interval {
        return ExportInterval {
            every,
            source: IntervalSource::File,
            ignored: variable.map(|_| {
                format!("{OTEL_METRIC_EXPORT_INTERVAL} is ignored: telemetry.interval is set")
            }),
        };
    }
    let fallback = |ignored| ExportInterval {
        every: settings.default_interval,
        source: IntervalSource::CollectionInterval,
        ignored,
    };
    let Some(value) = variable else {
        return fallback(None);
    };
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => ExportInterval {
            every: Duration::from_millis(ms),
            source: IntervalSource::Environment,
            ignored: None,
        },
        _ => fallback(Some(format!(
            "{OTEL_METRIC_EXPORT_INTERVAL}={value:?} is ignored: expected a positive number of \
             milliseconds"
        ))),
    }
}

/// The SDK's temporality for the preference: the same three values, which the SDK applies per
/// instrument as the specification says. `cumulative`: everything cumulative. `delta`: counters
/// (ours are asynchronous) and the histogram delta, up-down counters cumulative. `lowmemory`:
/// synchronous counters and the histogram delta, asynchronous counters and up-down counters
/// cumulative; here that makes only `poll.duration` delta.
pub fn sdk_temporality(preference: TemporalityPreference) -> Temporality {
    match preference {
        TemporalityPreference::Cumulative => Temporality::Cumulative,
        TemporalityPreference::Delta => Temporality::Delta,
        TemporalityPreference::LowMemory => Temporality::LowMemory,
    }
}

/// The OTLP exporter whose endpoint, protocol, headers, compression, timeout and TLS the
/// receiver's own metrics use: the one `telemetry.exporter` names, else the first OTLP
/// exporter. `None` with debug exporters only: then they are not exported at all.
pub fn destination<'a>(
    settings: &TelemetrySettings,
    exporters: &'a [ExporterSettings],
) -> Option<&'a OtlpSettings> {
    let mut otlp = exporters.iter().filter_map(|e| match e {
        ExporterSettings::Otlp(otlp) => Some(otlp),
        ExporterSettings::Debug { .. } => None,
    });
    match &settings.exporter {
        Some(name) => otlp.find(|o| &o.name == name),
        // An exporter that carries logs only is meant for a backend that may not take metrics.
        None => otlp.find(|o| o.signals.contains(&Signal::Metrics)),
    }
}

/// The running self-telemetry: the meter provider, its reader thread and exporter.
pub struct SelfMetrics {
    /// `None` once shut down.
    provider: Option<SdkMeterProvider>,
}

impl std::fmt::Debug for SelfMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfMetrics").finish_non_exhaustive()
    }
}

impl SelfMetrics {
    /// Declares every instrument of [`SELF_METRICS`] on a new meter provider whose periodic
    /// reader hands what it collects to `exporter` every `interval` (the first time one
    /// interval from now). From now on polls feed the duration histogram of `telemetry`.
    pub fn start<E: PushMetricExporter>(
        telemetry: &Arc<Telemetry>,
        exporter: E,
        interval: Duration,
        resource: SelfResource,
    ) -> SelfMetrics {
        let reader = PeriodicReader::builder(Reported::new(exporter))
            .with_interval(interval)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource.resource)
            .with_reader(reader)
            .with_view(|_: &Instrument| {
                Stream::builder()
                    .with_cardinality_limit(CARDINALITY_LIMIT)
                    .build()
                    .ok()
            })
            .build();
        let scope = InstrumentationScope::builder(defs::SELF_SCOPE_NAME)
            .with_version(defs::SCOPE_VERSION)
            .build();
        declare(&provider.meter_with_scope(scope), telemetry);
        SelfMetrics {
            provider: Some(provider),
        }
    }

    /// Collects and exports now, blocking until the exporter answered: for tests.
    pub fn force_flush(&self) -> OTelSdkResult {
        self.provider
            .as_ref()
            .map_or(Ok(()), SdkMeterProvider::force_flush)
    }

    /// The last collection and export, then the reader thread ends. The SDK's shutdown blocks
    /// (up to 5 s of its own), so it runs on a thread of its own and is waited for `limit` at
    /// most; past that it is left to finish while the process exits.
    pub async fn shutdown(mut self, limit: Duration) -> Result<(), String> {
        let rx = self.stop_on_a_thread()?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(error.to_string()),
            Ok(Err(_)) => Err("the thread that stops it ended without an answer".into()),
            Err(_) => Err(format!("not done within {limit:?}")),
        }
    }
}

impl SelfMetrics {
    /// Runs the SDK's blocking shutdown on a thread of its own; its answer comes on the channel.
    fn stop_on_a_thread(
        &mut self,
    ) -> Result<tokio::sync::oneshot::Receiver<OTelSdkResult>, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let Some(provider) = self.provider.take() else {
            let _ = tx.send(Ok(()));
            return Ok(rx);
        };
        std::thread::Builder::new()
            .name("self-telemetry-stop".into())
            .spawn(move || {
                let _ = tx.send(provider.shutdown());
            })
            .map_err(|e| format!("cannot start the thread that stops it: {e}"))?;
        Ok(rx)
    }
}

/// Dropped without [`SelfMetrics::shutdown`] (a start that failed later on): the provider's own
/// drop would block the caller, a runtime thread perhaps, for its last export; it stops on a
/// thread of its own instead, unwaited.
impl Drop for SelfMetrics {
    fn drop(&mut self) {
        let _ = self.stop_on_a_thread();
    }
}

/// One instrument per row of the table. The meter provider keeps the callbacks of the
/// observable ones for as long as it runs.
fn declare(meter: &Meter, telemetry: &Arc<Telemetry>) {
    for def in &SELF_METRICS {
        let id = def.id;
        let telemetry = Arc::clone(telemetry);
        match def.instrument {
            SelfInstrument::Histogram { boundaries } => {
                let histogram = meter
                    .f64_histogram(def.name)
                    .with_unit(def.unit)
                    .with_description(def.description)
                    .with_boundaries(boundaries.to_vec())
                    .build();
                if id == SelfMetricId::PollDuration {
                    telemetry.polls.set_duration_histogram(histogram);
                }
            }
            SelfInstrument::Counter => {
                meter
                    .u64_observable_counter(def.name)
                    .with_unit(def.unit)
                    .with_description(def.description)
                    .with_callback(move |observer: &dyn AsyncInstrument<u64>| {
                        observe(id, &telemetry, &mut |value, attributes| {
                            observer.observe(value, attributes)
                        });
                    })
                    .build();
            }
            SelfInstrument::UpDownCounter => {
                meter
                    .i64_observable_up_down_counter(def.name)
                    .with_unit(def.unit)
                    .with_description(def.description)
                    .with_callback(move |observer: &dyn AsyncInstrument<i64>| {
                        observe(id, &telemetry, &mut |value, attributes| {
                            observer.observe(i64::try_from(value).unwrap_or(i64::MAX), attributes)
                        });
                    })
                    .build();
            }
        }
    }
}

/// What an observable instrument reports at a collection, read from the receiver's counts.
/// A target that is gone is not reported, so its series end.
fn observe(id: SelfMetricId, telemetry: &Telemetry, emit: &mut dyn FnMut(u64, &[KeyValue])) {
    use std::sync::atomic::Ordering::Relaxed;
    let server = |name: &str| KeyValue::new(defs::SUPERVISOR_SERVER.key, name.to_owned());
    let export = &telemetry.export;
    let value = match id {
        SelfMetricId::Polls => {
            telemetry
                .polls
                .for_each(|name, stats| emit(stats.polls, &[server(name)]));
            return;
        }
        SelfMetricId::PollErrors => {
            telemetry.polls.for_each(|name, stats| {
                for (error_type, count) in &stats.errors {
                    let error_type = KeyValue::new(defs::ERROR_TYPE.key, *error_type);
                    emit(*count, &[server(name), error_type]);
                }
            });
            return;
        }
        // Recorded, not observed.
        SelfMetricId::PollDuration => return,
        SelfMetricId::QueueBatches => export.queue_batches.load(Relaxed),
        SelfMetricId::QueueBytes => export.queue_bytes.load(Relaxed),
        SelfMetricId::QueueCapacityBatches => export.queue_capacity_batches.load(Relaxed),
        SelfMetricId::QueueCapacityBytes => export.queue_capacity_bytes.load(Relaxed),
        SelfMetricId::PointsSent => export.sent_points.load(Relaxed),
        SelfMetricId::PointsDropped => export.dropped_points.load(Relaxed),
        SelfMetricId::RequestsRetried => export.retried_requests.load(Relaxed),
        SelfMetricId::PollsLate => telemetry.polls.late(),
    };
    emit(value, &[]);
}

/// The exporter as the reader sees it: failures logged here, rate-limited (one line a minute
/// while the backend is down), since the SDK's own log events are compiled out. A failed
/// export is not retried: the next one carries the cumulative totals.
struct Reported<E> {
    inner: E,
    logs: RateLimitedLog,
}

impl<E> Reported<E> {
    fn new(inner: E) -> Self {
        Reported {
            inner,
            logs: RateLimitedLog::default(),
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Reported<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let export = self.inner.export(metrics);
        async move {
            let result = export.await;
            match &result {
                Ok(()) => self.logs.reset(EXPORT_FAILED),
                Err(error) => crate::rate_limited!(
                    self.logs,
                    warn,
                    EXPORT_FAILED,
                    "the receiver's own metrics were not exported: {error}"
                ),
            }
            result
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
#[path = "self_metrics_tests.rs"]
mod tests;
