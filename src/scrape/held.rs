//! Push mode's held snapshot: the last full poll of the target, kept up to date by
//! supervisord's events, so the metrics of every interval come without asking supervisord for
//! the whole list (`getAllProcessInfo` costs it time in proportion to every process it runs).
//!
//! - A full poll replaces it ([`HeldSnapshot::of_poll`]).
//! - An event sets its process's state, status, pid and start or stop time at once
//!   ([`HeldSnapshot::apply_event`]) and marks the process stale: an event does not say the
//!   exit status, nor the new pid of a start, so the process is then asked for alone
//!   ([`HeldSnapshot::take_stale`], [`HeldSnapshot::merge`]).
//! - Each export reads it with supervisord's `now` advanced by the receiver's monotonic clock
//!   since supervisord last spoke of the process ([`HeldSnapshot::data`]), so uptime keeps
//!   counting between polls and never jumps with the wall clock.
//!
//! Times set from an event are on supervisord's clock too: its `now` for the process, advanced
//! the same way, so an uptime computed as `now - start` starts at 0 with the event.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::scrape::changes::ProcessTransition;
use crate::scrape::outcome::{MonitoredProcess, PollData};
use crate::vocab::{ProcessState, SupervisorState};

/// A process by `(group, name)`, as the change tracker keys it.
type Key = (String, String);

/// One process as last known, and when supervisord's `now` in it was true.
#[derive(Debug, Clone)]
struct HeldProcess {
    process: MonitoredProcess,
    seen_at: Instant,
}

impl HeldProcess {
    /// supervisord's `now` for this process at `at`: the `now` it gave, plus the whole seconds
    /// the receiver's monotonic clock counted since.
    fn now_at(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.seen_at).as_secs();
        self.process
            .info
            .now
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }
}

/// The last full poll of a target with the events since applied.
#[derive(Debug, Clone)]
pub struct HeldSnapshot {
    /// In supervisord's order, as polled.
    processes: Vec<HeldProcess>,
    supervisor_state: Option<SupervisorState>,
    identification: Option<String>,
    version: Option<String>,
    /// Processes events changed since they were last asked for.
    stale: BTreeSet<Key>,
    /// supervisord's clock against the receiver's, as the full poll measured it: exported with
    /// every held interval (`supervisord.clock.offset`), so the gauge does not pause between
    /// reconciles; a step of supervisord's clock shows at the next full poll.
    clock_offset_seconds: Option<i64>,
}

impl HeldSnapshot {
    /// The snapshot of a successful full poll, whose reply came at `at`.
    pub fn of_poll(data: &PollData, at: Instant) -> HeldSnapshot {
        HeldSnapshot {
            processes: data
                .processes
                .iter()
                .map(|process| HeldProcess {
                    process: process.clone(),
                    seen_at: at,
                })
                .collect(),
            supervisor_state: data.supervisor_state,
            identification: data.identification.clone(),
            version: data.version.clone(),
            stale: BTreeSet::new(),
            clock_offset_seconds: data.clock_offset_seconds,
        }
    }

    /// Applies a process's event, told at `at`, and marks the process stale. `false` when the
    /// process is not in the snapshot (a program added since the poll): only a full poll
    /// brings it in with everything the metrics need.
    pub fn apply_event(&mut self, change: &ProcessTransition, at: Instant) -> bool {
        let Some(held) = self
            .processes
            .iter_mut()
            .find(|h| h.process.info.group == change.group && h.process.info.name == change.name)
        else {
            return false;
        };
        let now = held.now_at(at);
        held.seen_at = at;
        let info = &mut held.process.info;
        info.now = now;
        info.state = change.state;
        info.statename = change.state.name().to_owned();
        held.process.status = change.status;
        match change.state {
            // Spawned a moment ago: the new pid is not in the event, the old one is gone.
            ProcessState::Starting => {
                info.start = now;
                info.pid = 0;
            }
            ProcessState::Running | ProcessState::Stopping => {
                if let Some(pid) = change.pid {
                    info.pid = pid;
                }
            }
            ProcessState::Stopped | ProcessState::Exited | ProcessState::Backoff => {
                info.stop = now;
                info.pid = 0;
            }
            ProcessState::Fatal | ProcessState::Unknown => info.pid = 0,
        }
        self.stale
            .insert((change.group.clone(), change.name.clone()));
        true
    }

    /// The stale processes as supervisord names them (`group:name`), and marks them fresh: the
    /// caller asks for them (and on failure makes a full poll, which replaces everything).
    pub fn take_stale(&mut self) -> Vec<String> {
        std::mem::take(&mut self.stale)
            .into_iter()
            .map(|(group, name)| format!("{group}:{name}"))
            .collect()
    }

    /// Replaces processes with what supervisord answered for them at `at`, keeping what only
    /// a full poll asks (the program's `autostart`). `false` when one is not in the snapshot.
    pub fn merge(&mut self, fetched: Vec<MonitoredProcess>, at: Instant) -> bool {
        let mut all_known = true;
        for mut process in fetched {
            let found = self.processes.iter_mut().find(|h| {
                h.process.info.group == process.info.group
                    && h.process.info.name == process.info.name
            });
            match found {
                Some(held) => {
                    process.autostart = held.process.autostart;
                    *held = HeldProcess {
                        process,
                        seen_at: at,
                    };
                }
                None => all_known = false,
            }
        }
        all_known
    }

    /// Whether a process is in the snapshot.
    pub fn holds(&self, group: &str, name: &str) -> bool {
        self.processes
            .iter()
            .any(|h| h.process.info.group == group && h.process.info.name == name)
    }

    /// What a poll at `at` would have seen, as far as the snapshot knows: the processes with
    /// supervisord's `now` advanced, its state, identification and version. The counts,
    /// resources, output and changes are the caller's to fill.
    pub fn data(&self, at: Instant) -> PollData {
        PollData {
            processes: self
                .processes
                .iter()
                .map(|held| {
                    let mut process = held.process.clone();
                    process.info.now = held.now_at(at);
                    process
                })
                .collect(),
            supervisor_state: self.supervisor_state,
            identification: self.identification.clone(),
            version: self.version.clone(),
            clock_offset_seconds: self.clock_offset_seconds,
            ..PollData::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::vocab::{ProcessInfo, Status, StatusMapping};

    fn process(name: &str, state: ProcessState, start: i64, pid: i64) -> MonitoredProcess {
        MonitoredProcess {
            info: ProcessInfo {
                name: name.into(),
                group: name.into(),
                state,
                statename: state.name().into(),
                start,
                now: 1_000,
                pid,
                ..Default::default()
            },
            status: StatusMapping::default().status(state),
            autostart: Some(true),
        }
    }

    fn event(name: &str, state: ProcessState, pid: Option<i64>) -> ProcessTransition {
        ProcessTransition {
            name: name.into(),
            group: name.into(),
            previous: ProcessState::Running,
            state,
            status: StatusMapping::default().status(state),
            pid,
            exit_status: None,
            expected: None,
            spawnerr: None,
            restarted: false,
            time_unix_nano: None,
        }
    }

    fn poll(processes: Vec<MonitoredProcess>) -> PollData {
        PollData {
            processes,
            supervisor_state: Some(SupervisorState::Running),
            version: Some("4.3.0".into()),
            ..PollData::default()
        }
    }

    fn of<'a>(data: &'a PollData, name: &str) -> &'a ProcessInfo {
        &data
            .processes
            .iter()
            .find(|p| p.info.name == name)
            .unwrap()
            .info
    }

    #[test]
    fn uptime_keeps_counting_on_the_monotonic_clock() {
        let t0 = Instant::now();
        let held = HeldSnapshot::of_poll(
            &poll(vec![process("web", ProcessState::Running, 900, 7)]),
            t0,
        );
        assert_eq!(of(&held.data(t0), "web").uptime(), 100);
        let later = held.data(t0 + Duration::from_millis(2_500));
        assert_eq!(of(&later, "web").uptime(), 102);
        assert_eq!(later.supervisor_state, Some(SupervisorState::Running));
        assert_eq!(later.version.as_deref(), Some("4.3.0"));
    }

    #[test]
    fn the_full_polls_clock_offset_goes_with_every_held_interval() {
        let t0 = Instant::now();
        let mut polled = poll(vec![process("web", ProcessState::Running, 900, 7)]);
        polled.clock_offset_seconds = Some(-3_600);
        let held = HeldSnapshot::of_poll(&polled, t0);
        let later = held.data(t0 + Duration::from_secs(30));
        assert_eq!(later.clock_offset_seconds, Some(-3_600));
    }

    #[test]
    fn events_set_state_pid_and_times_and_mark_the_process_stale() {
        let t0 = Instant::now();
        let mut held = HeldSnapshot::of_poll(
            &poll(vec![
                process("web", ProcessState::Running, 900, 7),
                process("db", ProcessState::Running, 800, 8),
            ]),
            t0,
        );
        let t1 = t0 + Duration::from_secs(10);
        assert!(held.apply_event(&event("web", ProcessState::Stopping, Some(7)), t1));
        assert!(held.apply_event(&event("web", ProcessState::Stopped, Some(7)), t1));
        let data = held.data(t1 + Duration::from_secs(5));
        let web = of(&data, "web");
        assert_eq!(web.state, ProcessState::Stopped);
        assert_eq!(web.statename, "STOPPED");
        assert_eq!((web.pid, web.stop, web.now), (0, 1_010, 1_015));
        assert_eq!(web.uptime(), 0);
        let status = data
            .processes
            .iter()
            .find(|p| p.info.name == "web")
            .unwrap();
        assert_eq!(status.status, Status::Down);
        assert_eq!(status.autostart, Some(true), "kept from the full poll");
        // The other process is untouched, its uptime still counting.
        assert_eq!(of(&data, "db").uptime(), 215);

        let t2 = t1 + Duration::from_secs(20);
        assert!(held.apply_event(&event("web", ProcessState::Starting, None), t2));
        assert!(held.apply_event(&event("web", ProcessState::Running, Some(42)), t2));
        let data = held.data(t2 + Duration::from_secs(3));
        let web = of(&data, "web");
        assert_eq!(
            (web.state, web.pid, web.start),
            (ProcessState::Running, 42, 1_030)
        );
        assert_eq!(web.uptime(), 3);
        assert_eq!(held.take_stale(), ["web:web"]);
        assert!(held.take_stale().is_empty(), "asked for once");
    }

    #[test]
    fn an_event_for_a_process_not_held_asks_for_a_full_poll() {
        let t0 = Instant::now();
        let mut held = HeldSnapshot::of_poll(
            &poll(vec![process("web", ProcessState::Running, 900, 7)]),
            t0,
        );
        assert!(!held.apply_event(&event("new", ProcessState::Starting, None), t0));
        assert!(held.take_stale().is_empty());
        assert!(!held.holds("new", "new"));
    }

    #[test]
    fn a_fetched_process_brings_what_the_event_lacked() {
        let t0 = Instant::now();
        let mut held = HeldSnapshot::of_poll(
            &poll(vec![process("web", ProcessState::Running, 900, 7)]),
            t0,
        );
        let t1 = t0 + Duration::from_secs(30);
        held.apply_event(&event("web", ProcessState::Exited, Some(7)), t1);
        let mut fetched = process("web", ProcessState::Exited, 900, 0);
        fetched.info.exitstatus = -1;
        fetched.info.stop = 1_029;
        fetched.info.now = 1_030;
        fetched.autostart = None;
        assert!(held.merge(vec![fetched], t1));
        let data = held.data(t1 + Duration::from_secs(4));
        let web = of(&data, "web");
        assert_eq!((web.exitstatus, web.stop, web.now), (-1, 1_029, 1_034));
        assert_eq!(data.processes[0].autostart, Some(true));
        assert!(!held.merge(vec![process("gone", ProcessState::Running, 1, 1)], t1));
    }
}
