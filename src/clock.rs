//! The wall clock as OTLP wants it: nanoseconds since the Unix epoch.
//!
//! A leaf: every layer that stamps data (polls, export attempts, self-telemetry, health) reads
//! the time here, so none has to reach into another for it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch; 0 if the clock is before 1970, `u64::MAX` after
/// the year 2554.
pub fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
