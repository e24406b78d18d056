//! The composition root: the only module that sees every layer. It builds the export pipeline
//! from the settings, spawns a task per target, runs the receiver's own metrics and health
//! endpoint beside them, applies reloads and stops everything in order (the OpenTelemetry
//! Collector's service/graph, Vector's topology builder).
//!
//! - [`runner`]: setup, the run loop, shutdown;
//! - [`targets`]: the target tasks and their schedule;
//! - [`reload`]: what a reload changes;
//! - [`pipeline`]: polls batched, translated and handed to the exporters;
//! - [`self_telemetry`]: the receiver's own metrics: the SDK's meter provider and its OTLP
//!   exporter, apart from the data pipeline;
//! - [`listen`]: push mode's event listener loop;
//! - [`push`]: push mode's target task.
pub mod listen;
pub mod pipeline;
pub mod push;
pub mod reload;
pub mod runner;
pub mod self_telemetry;
pub mod targets;

pub use runner::{Runner, SetupError};

use crate::schema::definitions::CountSource;
use crate::schema::MetricId;
use crate::scrape::changes::CountTemporality;
use crate::settings::TemporalityPreference;

/// The temporality of each count kept per process, from the preference and the metric table
/// (restarts are read from snapshots, exits counted from events, which `lowmemory` tells
/// apart).
pub fn count_temporality(preference: TemporalityPreference) -> CountTemporality {
    let of = |metric| preference.for_metric(metric).unwrap_or_default();
    CountTemporality {
        restarts: of(MetricId::ProcessRestarts),
        exits: of(MetricId::ProcessExits),
        // Read from /proc snapshots, as restarts are from polls.
        cpu_time: preference.temporality(CountSource::Snapshots),
    }
}
