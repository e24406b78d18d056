//! What changed between two polls of one target: process state transitions, restarts, and
//! supervisord's own state.
//!
//! A poller sees snapshots, so a program that crashes and is restarted between two polls
//! (supervisord restarts it within about 15 ms) looks RUNNING both times; its new start time or
//! pid is what tells. The tracker compares each successful poll with the previous one:
//! - a process whose state changed yields one transition, timed by supervisord's own clock when
//!   the reply says when (`start` for a start, `stop` for a stop or an exit), else its `now`;
//! - a process that started again (new start time or pid) counts one restart, and when its
//!   state did not change (RUNNING both times) it yields one transition RUNNING → RUNNING marked
//!   `restarted`, whose exit status and stop time say what happened in between;
//! - supervisord's own state likewise.
//!
//! Nothing is reported for the first poll of a target, nor for the first successful poll after
//! failed ones: what happened while the receiver could not see is not invented. A process that
//! appears is a baseline, one that disappears is forgotten (its restart count too).

use std::collections::HashMap;

use crate::scrape::outcome::MonitoredProcess;
use crate::vocab::{ProcessInfo, ProcessState, Status, SupervisorState};

/// One process's change of state between two polls.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessTransition {
    pub name: String,
    pub group: String,
    pub previous: ProcessState,
    pub state: ProcessState,
    /// The new state's mapped status.
    pub status: Status,
    /// The process's pid, when it has one (it runs).
    pub pid: Option<i64>,
    /// When the new state follows an exit: its status.
    pub exit_status: Option<i64>,
    /// Whether the exit was one the program's `exitcodes` expect; only events say it.
    pub expected: Option<bool>,
    /// supervisord's reason a spawn failed, when it gave one.
    pub spawnerr: Option<String>,
    /// The state did not change, but the process started again in between.
    pub restarted: bool,
    /// When it happened by supervisord's clock, in Unix nanoseconds, when the reply says.
    pub time_unix_nano: Option<u64>,
}

/// supervisord's own change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorTransition {
    pub previous: SupervisorState,
    pub state: SupervisorState,
}

/// Everything that changed since the previous poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub processes: Vec<ProcessTransition>,
    pub supervisor: Option<SupervisorTransition>,
}

/// What the tracker keeps of a process between polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    state: ProcessState,
    start: i64,
    pid: i64,
}

/// The last poll of one target and the restarts counted since the receiver first saw each
/// process.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    /// By `(group, name)`; `None` before the first poll and after a failed one.
    last: Option<HashMap<(String, String), Seen>>,
    supervisor: Option<SupervisorState>,
    restarts: HashMap<(String, String), u64>,
}

impl ChangeTracker {
    /// Compares a successful poll with the previous one and remembers it.
    pub fn observe(
        &mut self,
        processes: &[MonitoredProcess],
        supervisor: Option<SupervisorState>,
    ) -> Changes {
        let mut changes = Changes::default();
        let previous = self.last.take();
        let mut now = HashMap::with_capacity(processes.len());
        for process in processes {
            let info = &process.info;
            let key = (info.group.clone(), info.name.clone());
            let seen = Seen {
                state: info.state,
                start: info.start,
                pid: info.pid,
            };
            if let Some(before) = previous.as_ref().and_then(|p| p.get(&key)) {
                let restarted = started_again(before, &seen);
                if restarted {
                    *self.restarts.entry(key.clone()).or_insert(0) += 1;
                }
                if before.state != seen.state {
                    changes
                        .processes
                        .push(transition(process, before.state, false));
                } else if restarted {
                    changes
                        .processes
                        .push(transition(process, before.state, true));
                }
            } else {
                self.restarts.entry(key.clone()).or_insert(0);
            }
            now.insert(key, seen);
        }
        self.restarts.retain(|key, _| now.contains_key(key));
        if previous.is_some() {
            if let (Some(before), Some(state)) = (self.supervisor, supervisor) {
                if before != state {
                    changes.supervisor = Some(SupervisorTransition {
                        previous: before,
                        state,
                    });
                }
            }
        }
        self.last = Some(now);
        self.supervisor = supervisor;
        changes
    }

    /// A failed poll: the next successful one is a new baseline.
    pub fn lost_sight(&mut self) {
        self.last = None;
        self.supervisor = None;
    }

    /// Restarts counted per `(group, name)` since the receiver first saw the process.
    pub fn restarts(&self, group: &str, name: &str) -> Option<u64> {
        self.restarts
            .get(&(group.to_string(), name.to_string()))
            .copied()
    }
}

/// A new start time, or a new pid while both polls had one.
fn started_again(before: &Seen, now: &Seen) -> bool {
    let new_start = now.start > 0 && now.start != before.start;
    let new_pid = now.pid > 0 && before.pid > 0 && now.pid != before.pid;
    new_start || new_pid
}

fn transition(
    process: &MonitoredProcess,
    previous: ProcessState,
    restarted: bool,
) -> ProcessTransition {
    let info: &ProcessInfo = &process.info;
    let state = info.state;
    let after_exit = matches!(
        state,
        ProcessState::Exited | ProcessState::Backoff | ProcessState::Fatal
    ) || restarted;
    let when = match state {
        ProcessState::Starting | ProcessState::Running if info.start > 0 => info.start,
        ProcessState::Stopped | ProcessState::Exited if info.stop > 0 => info.stop,
        _ => info.now,
    };
    ProcessTransition {
        name: info.name.clone(),
        group: info.group.clone(),
        previous,
        state,
        status: process.status,
        pid: (info.pid > 0).then_some(info.pid),
        exit_status: after_exit.then_some(info.exitstatus),
        expected: None,
        spawnerr: Some(info.spawnerr.clone()).filter(|s| !s.is_empty()),
        restarted,
        time_unix_nano: seconds_to_nanos(when),
    }
}

fn seconds_to_nanos(seconds: i64) -> Option<u64> {
    u64::try_from(seconds)
        .ok()
        .filter(|s| *s > 0)
        .and_then(|s| s.checked_mul(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(name: &str, state: ProcessState, start: i64, pid: i64) -> MonitoredProcess {
        MonitoredProcess {
            info: ProcessInfo {
                name: name.into(),
                group: name.into(),
                state,
                statename: state.name().into(),
                start,
                stop: 0,
                now: 1_000,
                pid,
                ..Default::default()
            },
            status: crate::vocab::StatusMapping::default().status(state),
        }
    }

    #[test]
    fn the_first_poll_is_a_baseline() {
        let mut t = ChangeTracker::default();
        let changes = t.observe(
            &[process("a", ProcessState::Running, 10, 7)],
            Some(SupervisorState::Running),
        );
        assert_eq!(changes, Changes::default());
        assert_eq!(t.restarts("a", "a"), Some(0));
    }

    #[test]
    fn a_state_change_is_one_transition_timed_by_supervisord() {
        let mut t = ChangeTracker::default();
        t.observe(&[process("a", ProcessState::Running, 10, 7)], None);
        let mut stopped = process("a", ProcessState::Stopped, 10, 0);
        stopped.info.stop = 500;
        let changes = t.observe(&[stopped], None);
        assert_eq!(changes.processes.len(), 1);
        let c = &changes.processes[0];
        assert_eq!(
            (c.previous, c.state),
            (ProcessState::Running, ProcessState::Stopped)
        );
        assert_eq!(c.time_unix_nano, Some(500_000_000_000));
        assert_eq!((c.pid, c.exit_status, c.restarted), (None, None, false));
        assert_eq!(t.restarts("a", "a"), Some(0));
    }

    #[test]
    fn a_crash_and_restart_between_polls_counts_and_is_reported() {
        let mut t = ChangeTracker::default();
        t.observe(&[process("a", ProcessState::Running, 10, 7)], None);
        let mut again = process("a", ProcessState::Running, 20, 8);
        again.info.stop = 19;
        again.info.exitstatus = 3;
        let changes = t.observe(&[again], None);
        let c = &changes.processes[0];
        assert!(c.restarted);
        assert_eq!(
            (c.previous, c.state),
            (ProcessState::Running, ProcessState::Running)
        );
        assert_eq!((c.pid, c.exit_status), (Some(8), Some(3)));
        assert_eq!(c.time_unix_nano, Some(20_000_000_000));
        assert_eq!(t.restarts("a", "a"), Some(1));
        // Nothing new: nothing reported, nothing counted.
        assert!(t
            .observe(&[process("a", ProcessState::Running, 20, 8)], None)
            .processes
            .is_empty());
        assert_eq!(t.restarts("a", "a"), Some(1));
    }

    #[test]
    fn a_start_after_a_stop_counts_as_a_restart() {
        let mut t = ChangeTracker::default();
        t.observe(&[process("a", ProcessState::Stopped, 10, 0)], None);
        let changes = t.observe(&[process("a", ProcessState::Running, 30, 9)], None);
        assert_eq!(changes.processes[0].state, ProcessState::Running);
        assert!(
            !changes.processes[0].restarted,
            "the state changed: not a hidden restart"
        );
        assert_eq!(t.restarts("a", "a"), Some(1));
    }

    #[test]
    fn fatal_carries_the_exit_status_and_spawn_error() {
        let mut t = ChangeTracker::default();
        t.observe(&[process("a", ProcessState::Backoff, 10, 0)], None);
        let mut fatal = process("a", ProcessState::Fatal, 10, 0);
        fatal.info.exitstatus = 1;
        fatal.info.spawnerr = "Exited too quickly (process log may have details)".into();
        let c = &t.observe(&[fatal], None).processes[0];
        assert_eq!(c.exit_status, Some(1));
        assert_eq!(
            c.spawnerr.as_deref(),
            Some("Exited too quickly (process log may have details)")
        );
        assert_eq!(c.time_unix_nano, Some(1_000_000_000_000));
    }

    #[test]
    fn an_outage_resets_the_baseline_and_supervisord_changes_are_reported() {
        let mut t = ChangeTracker::default();
        t.observe(
            &[process("a", ProcessState::Running, 10, 7)],
            Some(SupervisorState::Running),
        );
        let changes = t.observe(
            &[process("a", ProcessState::Running, 10, 7)],
            Some(SupervisorState::Restarting),
        );
        assert_eq!(
            changes.supervisor,
            Some(SupervisorTransition {
                previous: SupervisorState::Running,
                state: SupervisorState::Restarting
            })
        );
        t.lost_sight();
        let after = t.observe(
            &[process("a", ProcessState::Running, 99, 70)],
            Some(SupervisorState::Running),
        );
        assert_eq!(after, Changes::default());
        assert_eq!(t.restarts("a", "a"), Some(0));
    }

    #[test]
    fn processes_that_come_and_go_are_baselined_and_forgotten() {
        let mut t = ChangeTracker::default();
        t.observe(&[process("a", ProcessState::Running, 10, 7)], None);
        let changes = t.observe(&[process("b", ProcessState::Running, 10, 8)], None);
        assert!(changes.processes.is_empty());
        assert_eq!(t.restarts("a", "a"), None);
        assert_eq!(t.restarts("b", "b"), Some(0));
    }
}
