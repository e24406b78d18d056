//! Which metrics are switched on: the native `metrics:` section and Datadog's
//! `metric_patterns`, checked against the table of definitions.

use super::definitions::{MetricId, METRICS};

/// A metric name that is not in the table (from `metrics:` in the native config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric '{0}'")]
pub struct UnknownMetric(pub String);

/// Which metrics are enabled (native `metrics: <name>: enabled:`). Starts from each metric's
/// `enabled_by_default` in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricToggles {
    /// Indexed by `MetricId as usize`, so a lookup on the hot path is one load.
    enabled: [bool; MetricId::ALL.len()],
}

impl Default for MetricToggles {
    fn default() -> Self {
        let mut enabled = [true; MetricId::ALL.len()];
        for (slot, metric) in enabled.iter_mut().zip(METRICS.iter()) {
            *slot = metric.enabled_by_default;
        }
        MetricToggles { enabled }
    }
}

impl MetricToggles {
    pub fn set_enabled(&mut self, metric_name: &str, enabled: bool) -> Result<(), UnknownMetric> {
        let id = MetricId::from_name(metric_name)
            .ok_or_else(|| UnknownMetric(metric_name.to_string()))?;
        if let Some(slot) = self.enabled.get_mut(id as usize) {
            *slot = enabled;
        }
        Ok(())
    }

    pub fn is_enabled(&self, id: MetricId) -> bool {
        self.enabled.get(id as usize).copied().unwrap_or(false)
    }
}

/// Every metric name in the table, in table order.
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    METRICS.iter().map(|m| m.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::definitions::METRICS;

    #[test]
    fn toggles_start_from_the_table_defaults() {
        let toggles = MetricToggles::default();
        for metric in &METRICS {
            assert_eq!(toggles.is_enabled(metric.id), metric.enabled_by_default);
        }
    }

    #[test]
    fn toggles_switch_by_name() {
        let mut toggles = MetricToggles::default();
        let name = MetricId::ProcessState.name();
        toggles.set_enabled(name, false).unwrap();
        assert!(!toggles.is_enabled(MetricId::ProcessState));
        assert!(toggles.is_enabled(MetricId::CanConnect));
        toggles.set_enabled(name, true).unwrap();
        assert!(toggles.is_enabled(MetricId::ProcessState));
    }

    #[test]
    fn unknown_names_are_rejected() {
        let err = MetricToggles::default()
            .set_enabled("supervisord.process.cpu", true)
            .unwrap_err();
        assert_eq!(err.to_string(), "unknown metric 'supervisord.process.cpu'");
    }

    #[test]
    fn names_follow_the_table() {
        let names: Vec<_> = metric_names().collect();
        assert_eq!(names.len(), METRICS.len());
        assert_eq!(names.first(), Some(&MetricId::CanConnect.name()));
    }
}
