//! Per-target polling: schedule, filters, status mapping.
pub mod backoff;
pub mod changes;
pub mod config_info;
pub mod counts;
pub mod held;
pub mod outcome;
pub mod output;
pub mod poller;
pub mod resources;
pub mod skew;

use crate::settings::Target;
use crate::vocab::Snapshot;
use outcome::{MonitoredProcess, PollData};

/// Applies a target's filters and status mapping to what supervisord reported.
pub fn monitored(target: &Target, snapshot: Snapshot) -> PollData {
    let processes = target
        .filter
        .apply(snapshot.processes)
        .into_iter()
        .map(|info| MonitoredProcess {
            status: target.status_mapping.status(info.state),
            info,
            autostart: None,
        })
        .collect();
    PollData {
        processes,
        supervisor_state: snapshot.state,
        identification: snapshot.identification,
        version: snapshot.version,
        restarts: Default::default(),
        exits: Default::default(),
        changes: Default::default(),
        resources: Default::default(),
        output: None,
        uptimes: Vec::new(),
        clock_offset_seconds: None,
    }
}
