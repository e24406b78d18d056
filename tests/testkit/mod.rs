//! The shared test harness, with real parts: a real supervisord with real children, a real
//! OTLP server, and the real binary as a subprocess.
//!
//! Both test binaries (`tests/e2e/`, `tests/unit/`) include it as `mod testkit;`; each uses
//! only part of it.
#![allow(dead_code)]

pub mod config;
pub mod expect;
pub mod faketime;
pub mod gate;
pub mod http;
pub mod openmetrics;
pub mod otlp_sink;
pub mod proc_tree;
pub mod promtool;
pub mod provision;
pub mod receiver;
pub mod relay;
pub mod supervisord;

use std::time::Duration;

/// The bound on every wait in the end-to-end tests: generous for a loaded 2-core machine, short
/// enough that a broken build fails fast.
pub const WAIT: Duration = Duration::from_secs(20);

/// Every process state supervisord names; the one-hot `state` attribute has a point for each.
pub const PROCESS_STATES: [&str; 8] = [
    "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN",
];

/// supervisord's own states; `supervisord.state` has a point for each.
pub const SUPERVISOR_STATES: [&str; 4] = ["RUNNING", "RESTARTING", "SHUTDOWN", "FATAL"];

/// Datadog's status values; `supervisord.process.count` and `.status` have a point for each.
pub const STATUSES: [&str; 3] = ["up", "down", "unknown"];

/// Datadog's default mapping from a supervisord state to a status.
pub fn default_status(state: &str) -> &'static str {
    match state {
        "RUNNING" => "up",
        "STARTING" | "UNKNOWN" => "unknown",
        _ => "down",
    }
}

/// A YAML double-quoted string (paths, URLs and passwords go into configs through this).
pub fn yaml_str(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}
