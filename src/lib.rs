//! supervisord-receiver: polls supervisord over XML-RPC and exports OpenTelemetry metrics.
//!
//! Layers, each with its own error type:
//! - [`config`]: the two YAML formats (native and Datadog's `supervisord.d/conf.yaml`), validated
//!   and resolved once into [`config::Settings`].
//! - [`supervisor`]: the transport (TCP, HTTPS, UNIX socket), the XML-RPC codec and the typed model.
//! - [`scrape`]: per-target polling, process filters, status mapping.
//! - [`metrics`]: the one table of metric definitions and the translation to OTLP.
//! - [`export`]: OTLP gRPC / HTTP exporters, the export pipeline and the debug exporter.
//! - [`telemetry`]: the receiver's own counters (self-telemetry, health).
//! - [`admin`]: the `/healthz` endpoint.
pub mod admin;
pub mod cli;
pub mod config;
pub mod export;
pub mod metrics;
pub mod scrape;
pub mod supervisor;
pub mod telemetry;
