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
    /// The program's `autostart` from supervisord's configuration (`getAllConfigInfo`), when
    /// known and asked for (`Target::autostart_attribute`); `None` leaves the attribute off.
    pub autostart: Option<bool>,
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
    /// What each running program's process tree uses, read from /proc; empty for a target on
    /// another host.
    pub resources: Resources,
    /// The programs' output read since the last poll; `None` when the target tails none.
    pub output: Option<Box<crate::scrape::output::OutputReport>>,
    /// `supervisord.process.uptime` of each process, in the order of `processes`, as the
    /// change tracker carried it across steps of supervisord's clock
    /// (`ProcessInfo::uptime_across_clock_steps`). Empty when no tracker ran (one-off polls,
    /// tests): then each process's `now - start`, never below 0.
    pub uptimes: Vec<i64>,
    /// `supervisord.clock.offset`: supervisord's clock minus the receiver's when the reply
    /// came, in whole seconds ([`crate::scrape::skew::offset_seconds`]); `None` when the reply
    /// had no process, which is where supervisord's `now` comes from.
    pub clock_offset_seconds: Option<i64>,
}

impl PollData {
    /// The uptime to export for `processes[index]`.
    pub fn uptime(&self, index: usize) -> i64 {
        match (self.uptimes.get(index), self.processes.get(index)) {
            (Some(uptime), _) => *uptime,
            (None, Some(process)) => process.info.uptime_across_clock_steps(None, 0).0,
            (None, None) => 0,
        }
    }
}

/// What one running program's process tree (its process and every descendant) uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProgramResources {
    pub name: String,
    pub group: String,
    /// `supervisord.process.cpu.time{cpu.mode=user}`, in seconds, in the temporality of
    /// [`Resources::cpu_temporality`] (already a difference under delta).
    pub cpu_user_seconds: f64,
    /// `supervisord.process.cpu.time{cpu.mode=system}`, likewise.
    pub cpu_system_seconds: f64,
    /// Where the CPU-time points start: the program's start (cumulative), or where its previous
    /// point ended (delta).
    pub cpu_start_time_unix_nano: u64,
    /// Resident memory of the tree, in bytes.
    pub memory_usage_bytes: u64,
    pub memory_virtual_bytes: u64,
    pub threads: u64,
    /// `None` when a member's descriptors could not be read.
    pub open_fds: Option<u64>,
    /// Processes in the tree, the program's own included.
    pub processes: u64,
}

/// The resource readings of one poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub cpu_temporality: Temporality,
    pub programs: Vec<ProgramResources>,
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
