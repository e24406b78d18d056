//! The one table of metric definitions and the translation of poll outcomes to OTLP.

/// Which metrics are enabled (native `metrics: <name>: enabled:`). All are on by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricToggles {
    // filled in by the metrics table
}
