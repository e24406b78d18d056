//! The environment variables that would change what the receiver does when a harness runs it
//! as a subprocess: its own OTLP settings and its log filter, inherited from whoever started the
//! harness. One list for the benchmark examples (`examples/common/bench.rs`) and the tests
//! (`tests/testkit/receiver.rs`), which both include this file with `#[path]`.

/// Removed from the environment of every receiver (and supervisord, which passes its own
/// environment on to an event listener) that a harness starts.
pub const SCRUBBED_ENV: [&str; 14] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_RESOURCE_ATTRIBUTES",
    "RUST_LOG",
];
