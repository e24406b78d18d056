//! Backoff for a target that keeps failing: fewer connection attempts, the same points.
//!
//! The first [`FREE_ATTEMPTS`] failures in a row are retried every interval, so a blip costs
//! nothing. After that the attempts spread out, doubling the spacing each time (2, 4, 8, ...
//! intervals) up to [`MAX_SPACING`] (or one interval, when the interval is longer). Skipped
//! intervals still emit `can_connect` 0 with the last reason: the series never has a gap, and
//! a host whose supervisord is gone for the day is not knocked on every few seconds. The cost
//! is that a recovery shows up to [`MAX_SPACING`] late.

use std::time::Duration;

/// Failures in a row that are retried at every interval.
pub const FREE_ATTEMPTS: u32 = 3;

/// The longest time between two attempts of a failing target.
pub const MAX_SPACING: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct FailureBackoff {
    consecutive_failures: u32,
    /// Intervals still to skip before the next attempt.
    skip_remaining: u32,
    /// The most intervals skipped in a row, from [`MAX_SPACING`] and the interval.
    max_skip: u32,
}

impl FailureBackoff {
    pub fn new(interval: Duration) -> Self {
        let per_spacing = if interval.is_zero() {
            1
        } else {
            (MAX_SPACING.as_secs_f64() / interval.as_secs_f64()).floor() as u32
        };
        FailureBackoff {
            consecutive_failures: 0,
            skip_remaining: 0,
            max_skip: per_spacing.max(1) - 1,
        }
    }

    /// Called once per interval: whether this interval really polls.
    pub fn attempt_now(&mut self) -> bool {
        if self.skip_remaining > 0 {
            self.skip_remaining -= 1;
            false
        } else {
            true
        }
    }

    /// Intervals that will pass without an attempt before the next one: 0 when the next
    /// interval attempts.
    pub fn intervals_skipped_before_next_attempt(&self) -> u32 {
        self.skip_remaining
    }

    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.skip_remaining = 0;
    }

    pub fn record_failure(&mut self) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures > FREE_ATTEMPTS {
            let doublings = (self.consecutive_failures - FREE_ATTEMPTS).min(16);
            let spacing = 1u32 << doublings;
            self.skip_remaining = (spacing - 1).min(self.max_skip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of `ticks` intervals attempt a poll, when every attempt fails.
    fn attempts(interval: Duration, ticks: usize) -> Vec<usize> {
        let mut backoff = FailureBackoff::new(interval);
        let mut attempted = Vec::new();
        for tick in 0..ticks {
            if backoff.attempt_now() {
                attempted.push(tick);
                backoff.record_failure();
            }
        }
        attempted
    }

    #[test]
    fn spacing_doubles_after_the_free_attempts_up_to_the_cap() {
        // 10 s interval: at most 6 intervals (60 s) apart.
        assert_eq!(
            attempts(Duration::from_secs(10), 40),
            [0, 1, 2, 3, 5, 9, 15, 21, 27, 33, 39]
        );
    }

    #[test]
    fn a_long_interval_is_never_stretched() {
        assert_eq!(attempts(Duration::from_secs(60), 6), [0, 1, 2, 3, 4, 5]);
        assert_eq!(attempts(Duration::from_secs(300), 6), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn success_resets() {
        let mut backoff = FailureBackoff::new(Duration::from_secs(1));
        for _ in 0..10 {
            if backoff.attempt_now() {
                backoff.record_failure();
            }
        }
        backoff.record_success();
        assert!(backoff.attempt_now());
        backoff.record_failure();
        assert!(backoff.attempt_now(), "a fresh failure is retried at once");
    }
}
