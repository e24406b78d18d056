//! What one poll of one target produced: the input of the metric translation.

use std::sync::Arc;

use crate::scrape::changes::Changes;
use crate::settings::{Target, Temporality};
use crate::vocab::Status;
use crate::vocab::{ProcessInfo, SupervisorState};

/// The per-target facts that do not change between polls (resource identity).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetIdentity {
    /// The target's `name`: the `supervisor_server` resource attribute.
    pub name: String,
    /// User attributes (native `resource_attributes`, Datadog `tags`), in configured order.
    pub attributes: Vec<(String, String)>,
    /// User attributes put on every point as well (Datadog `tags` and `service`), in order; a
    /// key may repeat.
    pub point_attributes: Vec<(String, String)>,
}

impl TargetIdentity {
    /// The identity of a configured target.
    pub fn of(target: &Target) -> TargetIdentity {
        TargetIdentity {
            name: target.name.clone(),
            attributes: target.resource_attributes.clone(),
            point_attributes: target.point_attributes.clone(),
        }
    }
}

/// A monitored process (after filters) with its mapped status.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoredProcess {
    pub info: ProcessInfo,
    pub status: Status,
}

/// A successful poll, already filtered and mapped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PollData {
    pub processes: Vec<MonitoredProcess>,
    pub supervisor_state: Option<SupervisorState>,
    pub identification: Option<String>,
    pub version: Option<String>,
    /// `supervisord.process.restarts`: one point per monitored process.
    pub restarts: Counts,
    /// `supervisord.process.exits`: in push mode, two points (`expected` true and false) per
    /// monitored process; empty when polling, which cannot tell how many exits there were.
    pub exits: Counts,
    /// What changed since the previous poll (empty on a first poll, and in push mode, where
    /// events report the changes).
    pub changes: Changes,
}

/// One point of a count the receiver keeps for a process (restarts, exits), ready to write as
/// a monotonic sum point.
#[derive(Debug, Clone, PartialEq)]
pub struct CountPoint {
    pub name: String,
    pub group: String,
    /// The `expected` attribute (exits only).
    pub expected: Option<bool>,
    /// Where the count starts: when the receiver first saw the process (cumulative), or where
    /// the series' previous point ended (delta).
    pub start_time_unix_nano: u64,
    pub value: u64,
}

/// The points of one count, all with the same temporality.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Counts {
    pub temporality: Temporality,
    pub points: Vec<CountPoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PollOutcome {
    pub target: Arc<TargetIdentity>,
    /// The receiver's clock when the poll finished, in unix nanoseconds: every point's timestamp.
    pub time_unix_nano: u64,
    /// `Err` holds the message that was logged (Datadog's wording); the metrics only need to know
    /// it failed.
    pub result: Result<PollData, String>,
}
