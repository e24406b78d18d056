//! Exponential backoff with jitter, computed as the OpenTelemetry Collector's exporterhelper
//! does, so `retry_on_failure` means the same thing here as there.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::settings::RetrySettings;

/// The waits between the attempts of one batch.
#[derive(Debug)]
pub(crate) struct Backoff {
    current: Duration,
    max_interval: Duration,
    multiplier: f64,
    randomization_factor: f64,
}

impl Backoff {
    pub fn new(settings: &RetrySettings) -> Self {
        Backoff {
            current: settings.initial_interval,
            max_interval: settings.max_interval,
            multiplier: settings.multiplier,
            randomization_factor: settings.randomization_factor,
        }
    }

    /// The next wait: the current interval spread by the randomization factor
    /// (`current * (1 ± factor)`), after which the interval grows by the multiplier up to
    /// `max_interval`. `unit` is a random number in `[0, 1)`.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let current = self.current.as_secs_f64();
        let delta = current * self.randomization_factor;
        let low = current - delta;
        let wait = low + (2.0 * delta) * unit.clamp(0.0, 1.0);
        let grown = (current * self.multiplier).min(self.max_interval.as_secs_f64());
        self.current = Duration::try_from_secs_f64(grown).unwrap_or(self.max_interval);
        Duration::try_from_secs_f64(wait.max(0.0)).unwrap_or(self.max_interval)
    }

    pub fn next(&mut self) -> Duration {
        self.next_with(random_unit())
    }
}

/// A random number in `[0, 1)`, from the standard library's per-instance random hash keys: jitter
/// only has to keep many receivers from retrying in step, which needs no random-number crate.
fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    // The top 53 bits fill an f64's mantissa exactly.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RetrySettings {
        RetrySettings::default()
    }

    #[test]
    fn grows_by_the_multiplier_up_to_the_maximum() {
        let mut b = Backoff::new(&settings());
        // unit 0.5 is the middle of the spread: the interval itself.
        let waits: Vec<f64> = (0..7).map(|_| b.next_with(0.5).as_secs_f64()).collect();
        let expected = [5.0, 7.5, 11.25, 16.875, 25.3125, 30.0, 30.0];
        for (w, e) in waits.iter().zip(expected) {
            assert!((w - e).abs() < 1e-9, "{waits:?}");
        }
    }

    #[test]
    fn jitter_spreads_by_the_randomization_factor() {
        let mut low = Backoff::new(&settings());
        let mut high = Backoff::new(&settings());
        assert_eq!(low.next_with(0.0), Duration::from_millis(2500));
        assert_eq!(high.next_with(1.0), Duration::from_millis(7500));
        let mut flat = Backoff::new(&RetrySettings {
            randomization_factor: 0.0,
            ..settings()
        });
        assert_eq!(flat.next_with(0.9), Duration::from_secs(5));
    }

    #[test]
    fn random_waits_stay_in_range() {
        let mut b = Backoff::new(&settings());
        for _ in 0..100 {
            let w = b.next();
            assert!(w >= Duration::from_millis(2500), "{w:?}");
            assert!(w <= Duration::from_secs(45), "{w:?}");
        }
        let units: Vec<f64> = (0..20).map(|_| random_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)), "{units:?}");
        assert!(units.windows(2).any(|w| w[0] != w[1]), "{units:?}");
    }
}
