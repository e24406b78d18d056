//! The one table of metric definitions and the translation of poll outcomes to OTLP.

/// A metric name that is not in the table (from `metrics:` in the native config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric '{0}'")]
pub struct UnknownMetric(pub String);

/// Which metrics are enabled (native `metrics: <name>: enabled:`). All are on by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricToggles {
    // filled in by the metrics table
}

impl MetricToggles {
    pub fn set_enabled(&mut self, _metric_name: &str, _enabled: bool) -> Result<(), UnknownMetric> {
        todo!()
    }
}

/// Every metric name in the table, in table order.
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    std::iter::empty()
}
