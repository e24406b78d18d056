//! The one definition of every metric and attribute the receiver emits (name, unit, type,
//! attributes, description, default), which metrics are switched on, and the generated
//! `docs/metrics.md`.
//!
//! A leaf beside the vocabulary: settings, the loader, the translation and self-telemetry all
//! read it, and it reads only [`crate::vocab`] (the closed sets of attribute values).
pub mod definitions;
pub mod docs;
pub mod events;
pub mod toggles;

pub use definitions::MetricId;
pub use docs::metrics_page;
pub use toggles::{metric_names, MetricToggles, UnknownMetric};
