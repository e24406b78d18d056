//! Named, rate-limited log events: a failure that repeats every few seconds (an export to a
//! backend that is down) writes one line per key per window, and the next line says how many
//! similar ones were held back.
//!
//! ```
//! use std::time::Duration;
//! use supervisord_receiver::rate_limited;
//! use supervisord_receiver::telemetry::RateLimitedLog;
//!
//! let logs = RateLimitedLog::new(Duration::from_secs(60));
//! let exporter = "otlp";
//! rate_limited!(logs, warn, "export_failed", exporter, "export failed: {}", "refused");
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys are expected to be few (event names, maybe with an exporter's name); past this many
/// the memory is reset rather than grown, which at worst lets one extra line through per key.
const MAX_KEYS: usize = 1024;

/// Allows one line per key per window.
#[derive(Debug)]
pub struct RateLimitedLog {
    window: Duration,
    keys: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    last_written: Instant,
    suppressed: u64,
}

impl RateLimitedLog {
    /// One line per key per minute: a backend down for an hour costs 60 lines, not 240.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

    pub fn new(window: Duration) -> Self {
        RateLimitedLog {
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(k)` when a line for `key` may be written now, `k` being how many were held back
    /// since the last one; `None` when this one is to be held back (and counted).
    pub fn allow(&self, key: &str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    /// [`RateLimitedLog::allow`] at a given instant, for tests.
    pub fn allow_at(&self, key: &str, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update; logging must go on.
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = keys.get_mut(key) {
            if now.saturating_duration_since(slot.last_written) < self.window {
                slot.suppressed += 1;
                return None;
            }
            let suppressed = slot.suppressed;
            *slot = Slot {
                last_written: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(
            key.to_owned(),
            Slot {
                last_written: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// Forgets `key`, so the next occurrence is written at once: call it when the condition
    /// ends (the backend accepts again), so a new failure is never hidden behind an old one.
    pub fn reset(&self, key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(key);
    }
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        RateLimitedLog::new(Self::DEFAULT_WINDOW)
    }
}

/// Writes a `tracing` event with `event = <name>` when the [`RateLimitedLog`] allows it; the
/// line after held-back ones carries `suppressed = <count>` ("suppressed K similar").
///
/// `rate_limited!(logs, warn, "export_failed", exporter = %name, "export failed: {error}")`:
/// the level is a `tracing` macro name, the event name is the rate-limit key, the rest is
/// passed to `tracing` as written.
#[macro_export]
macro_rules! rate_limited {
    ($logs:expr, $level:ident, $event:expr, $($rest:tt)+) => {{
        let event: &str = $event;
        match $logs.allow(event) {
            Some(0) => ::tracing::$level!(event, $($rest)+),
            Some(suppressed) => ::tracing::$level!(event, suppressed, $($rest)+),
            None => {}
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_per_window_with_the_held_back_count() {
        let logs = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(logs.allow_at("export_failed", at(0)), Some(0));
        assert_eq!(logs.allow_at("export_failed", at(1)), None);
        assert_eq!(logs.allow_at("export_failed", at(9)), None);
        // Another key has its own window.
        assert_eq!(logs.allow_at("poll_failed", at(9)), Some(0));
        assert_eq!(logs.allow_at("export_failed", at(10)), Some(2));
        assert_eq!(logs.allow_at("export_failed", at(11)), None);
        assert_eq!(logs.allow_at("export_failed", at(25)), Some(1));
        assert_eq!(logs.allow_at("export_failed", at(40)), Some(0));
    }

    #[test]
    fn reset_lets_the_next_line_through() {
        let logs = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(logs.allow_at("export_failed", t0), Some(0));
        assert_eq!(logs.allow_at("export_failed", t0), None);
        logs.reset("export_failed");
        assert_eq!(logs.allow_at("export_failed", t0), Some(0));
    }

    #[test]
    fn memory_stays_bounded() {
        let logs = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 3) {
            logs.allow_at(&format!("k{i}"), t0);
        }
        let len = logs.keys.lock().map(|k| k.len()).unwrap_or(usize::MAX);
        assert!(len <= MAX_KEYS, "{len}");
    }

    #[test]
    fn the_macro_compiles_with_fields_and_formatting() {
        let logs = RateLimitedLog::default();
        let exporter = "otlp grpc http://localhost:4317";
        for _ in 0..3 {
            crate::rate_limited!(
                logs,
                warn,
                "export_failed",
                exporter,
                "export failed: {}",
                "refused"
            );
        }
        assert_eq!(logs.allow("export_failed"), None);
    }
}
