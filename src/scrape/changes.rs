//! What changed between two polls of one target: process state transitions, restarts, and
//! supervisord's own state.
//!
//! A poller sees snapshots, so a program that crashes and is restarted between two polls
//! (supervisord restarts it within about 15 ms) looks RUNNING both times; its new start time or
//! pid is what tells. The tracker compares each successful poll with the previous one:
//! - a process whose state changed yields one transition, timed by supervisord's own clock when
//!   the reply says when (`start` for a start, `stop` for a stop or an exit), corrected by the
//!   poll's measured clock offset and kept between the previous poll and this one
//!   ([`skew::record_time_unix_nano`]), else at this poll's time;
//! - a process that started again (new start time or pid) counts one restart, and when its
//!   state did not change (RUNNING both times) it yields one transition RUNNING → RUNNING marked
//!   `restarted`, whose exit status and stop time say what happened in between;
//! - supervisord's own state likewise.
//!
//! Each poll also gives each process's uptime, carried across steps of supervisord's clock by
//! the receiver's monotonic clock (`ProcessInfo::uptime_across_clock_steps`, which needs the
//! previous poll of the process: kept here, through failed polls too).
//!
//! Nothing is reported for the first poll of a target, nor for the first successful poll after
//! failed ones: what happened while the receiver could not see is not invented. A process that
//! appears is a baseline, one that disappears is forgotten (its counts too).
//!
//! In push mode ([`Source::Events`]) supervisord's events tell each transition as it happens
//! and the tracker counts from them ([`ChangeTracker::observe_event`]); polls then only keep the
//! list of processes.

use std::collections::HashMap;

use crate::scrape::counts::CountSeries;
use crate::scrape::outcome::{CountPoint, Counts, MonitoredProcess};
use crate::scrape::skew::{self, PollClock};
use crate::settings::Temporality;
use crate::vocab::{ProcessInfo, ProcessState, Status, SupervisorState, UptimeTrack};

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
    /// When it happened, in Unix nanoseconds on the receiver's clock: from a poll, supervisord's
    /// time of it put on the receiver's clock, within the observation
    /// ([`skew::record_time_unix_nano`]); from an event, its arrival.
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

/// What the tracker keeps of a process between polls: its state, and its pid, start time and
/// uptime bookkeeping (in the track).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    state: ProcessState,
    uptime: UptimeTrack,
}

/// A process by group and name (supervisord names a process uniquely only within its group),
/// as `group NUL name` in one allocation.
///
/// The tracker keeps a key per process in several maps, for every target: two `String`s are
/// 48 bytes and two allocations, this is 16 bytes and one, about 2.5 KB less per target of 20
/// processes (25 MB in a fleet of 10,000). The order is that of `(group, name)`: NUL sorts
/// before every other character, and XML cannot carry one inside a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key(Box<str>);

impl Key {
    fn new(group: &str, name: &str) -> Key {
        let mut joined = String::with_capacity(group.len() + 1 + name.len());
        joined.push_str(group);
        joined.push('\0');
        joined.push_str(name);
        Key(joined.into_boxed_str())
    }

    /// `(group, name)`.
    fn parts(&self) -> (&str, &str) {
        self.0.split_once('\0').unwrap_or(("", &self.0))
    }
}

/// The temporality each count is reported with (decided by the app from the metric table and
/// the temporality preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountTemporality {
    pub restarts: Temporality,
    pub exits: Temporality,
    /// `supervisord.process.cpu.time` (kept by [`super::resources`], decided with the others).
    pub cpu_time: Temporality,
}

/// Where transitions and counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// Comparing consecutive polls (`run`).
    #[default]
    Polls,
    /// supervisord's events (`listen`): they see every transition, so polls only keep the
    /// baseline and the list of processes; comparing them too would report each change twice.
    Events,
}

/// The last poll of one target and the counts kept since the receiver first saw each process.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    /// By `(group, name)`, as the last successful poll saw them (kept through failed polls, for
    /// the uptimes).
    last: HashMap<Key, Seen>,
    /// When the last successful poll started; `None` before the first poll and after a failed
    /// one, when the next poll is a baseline.
    compared_since: Option<u64>,
    supervisor: Option<SupervisorState>,
    restarts: HashMap<Key, CountSeries>,
    /// Push mode only: by process and `expected`.
    exits: HashMap<(Key, bool), CountSeries>,
    /// Push mode only: each process's state as the events last told it (or as a poll first saw
    /// it). Polls do not overwrite it: an event queued by supervisord before the listener was
    /// ready can arrive after a poll that already shows its outcome, and a poll can land
    /// between two events of one restart.
    pushed: HashMap<Key, ProcessState>,
    temporality: CountTemporality,
    source: Source,
}

impl ChangeTracker {
    pub fn new(source: Source, temporality: CountTemporality) -> ChangeTracker {
        ChangeTracker {
            source,
            temporality,
            ..ChangeTracker::default()
        }
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// Compares a successful poll with the previous one and remembers it; returns what changed
    /// and each process's uptime, in the order of `processes`. `clock.time_unix_nano` is when
    /// the poll started (a process first seen now starts its counts then).
    pub fn observe(
        &mut self,
        processes: &[MonitoredProcess],
        supervisor: Option<SupervisorState>,
        clock: PollClock,
    ) -> (Changes, Vec<i64>) {
        let now_unix_nano = clock.time_unix_nano;
        let mut changes = Changes::default();
        let mut uptimes = Vec::with_capacity(processes.len());
        let previous = std::mem::take(&mut self.last);
        let compared_since = self.compared_since.replace(now_unix_nano);
        let mut current = HashMap::with_capacity(processes.len());
        let from_polls = self.source == Source::Polls;
        for process in processes {
            let info = &process.info;
            let key = Key::new(&info.group, &info.name);
            let before = previous.get(&key);
            let (uptime, track) =
                info.uptime_across_clock_steps(before.map(|b| &b.uptime), clock.monotonic_nanos);
            uptimes.push(uptime);
            let seen = Seen {
                state: info.state,
                uptime: track,
            };
            match (before, compared_since) {
                (Some(before), Some(since)) if from_polls => {
                    let restarted = started_again(before, &seen);
                    if restarted {
                        self.series(&key, now_unix_nano).add(1);
                    }
                    let window = (since, clock);
                    if before.state != seen.state {
                        changes
                            .processes
                            .push(transition(process, before.state, false, window));
                    } else if restarted {
                        changes
                            .processes
                            .push(transition(process, before.state, true, window));
                    }
                }
                _ => {
                    self.series(&key, now_unix_nano);
                }
            }
            if !from_polls {
                self.pushed.entry(key.clone()).or_insert(seen.state);
            }
            current.insert(key, seen);
        }
        self.restarts.retain(|key, _| current.contains_key(key));
        self.exits.retain(|(key, _), _| current.contains_key(key));
        self.pushed.retain(|key, _| current.contains_key(key));
        if compared_since.is_some() && from_polls {
            if let (Some(before), Some(state)) = (self.supervisor, supervisor) {
                if before != state {
                    changes.supervisor = Some(SupervisorTransition {
                        previous: before,
                        state,
                    });
                }
            }
        }
        self.last = current;
        self.supervisor = supervisor;
        (changes, uptimes)
    }

    /// A process event (push mode): counts a start of a process already seen as a restart and
    /// an exit by `expected`. Returns whether the process is one the receiver had seen (a start
    /// of one it had not is its first sight).
    ///
    /// A start counts only when the process was last known not to run: a STARTING event for a
    /// process already known as STARTING or RUNNING tells of the start the receiver saw first
    /// (at boot, supervisord queues the first events until the listener is ready, and the first
    /// poll may come before them).
    pub fn observe_event(&mut self, change: &ProcessTransition, now_unix_nano: u64) -> bool {
        let key = Key::new(&change.group, &change.name);
        let before = self.pushed.insert(key.clone(), change.state);
        let known = before.is_some() || self.restarts.contains_key(&key);
        let series = self.series(&key, now_unix_nano);
        let was_running = matches!(before, Some(ProcessState::Starting | ProcessState::Running));
        if known && change.state == ProcessState::Starting && !was_running {
            series.add(1);
        }
        if let (ProcessState::Exited, Some(expected)) = (change.state, change.expected) {
            if let Some(exits) = self.exits.get_mut(&(key, expected)) {
                exits.add(1);
            }
        }
        known
    }

    /// supervisord's own change told by an event; `None` when it is no change.
    pub fn observe_supervisor(&mut self, state: SupervisorState) -> Option<SupervisorTransition> {
        let previous = self.supervisor.replace(state)?;
        (previous != state).then_some(SupervisorTransition { previous, state })
    }

    /// A failed poll: the next successful one is a new baseline. The counts stay: the process
    /// is the same program, and its series goes on.
    pub fn lost_sight(&mut self) {
        self.compared_since = None;
        self.supervisor = None;
    }

    /// The points of every count at `now`, each with its temporality (a delta point moves the
    /// series on). Exits only in push mode, where events count them.
    pub fn counts(&mut self, now_unix_nano: u64) -> (Counts, Counts) {
        let restarts = Counts {
            temporality: self.temporality.restarts,
            points: points(
                &mut self.restarts,
                self.temporality.restarts,
                now_unix_nano,
                |_| None,
            ),
        };
        let exits = Counts {
            temporality: self.temporality.exits,
            points: points(
                &mut self.exits,
                self.temporality.exits,
                now_unix_nano,
                |k| Some(k.1),
            ),
        };
        (restarts, exits)
    }

    /// Restarts counted per `(group, name)` since the receiver first saw the process.
    pub fn restarts(&self, group: &str, name: &str) -> Option<u64> {
        self.restarts
            .get(&Key::new(group, name))
            .map(CountSeries::total)
    }

    /// Exits counted from events per `(group, name)` and `expected`.
    pub fn exits(&self, group: &str, name: &str, expected: bool) -> Option<u64> {
        self.exits
            .get(&(Key::new(group, name), expected))
            .map(CountSeries::total)
    }

    /// The restart series of a process, started now when it is new (with its exit series in
    /// push mode).
    fn series(&mut self, key: &Key, now_unix_nano: u64) -> &mut CountSeries {
        if self.source == Source::Events && !self.restarts.contains_key(key) {
            for expected in [false, true] {
                self.exits
                    .entry((key.clone(), expected))
                    .or_insert_with(|| CountSeries::new(now_unix_nano));
            }
        }
        self.restarts
            .entry(key.clone())
            .or_insert_with(|| CountSeries::new(now_unix_nano))
    }
}

/// One point per series, in a stable order (group, name, then `expected`).
fn points<K: Ord + Clone + std::hash::Hash + HasProcess>(
    series: &mut HashMap<K, CountSeries>,
    temporality: Temporality,
    now_unix_nano: u64,
    expected: impl Fn(&K) -> Option<bool>,
) -> Vec<CountPoint> {
    let mut keys: Vec<K> = series.keys().cloned().collect();
    keys.sort();
    keys.into_iter()
        .filter_map(|key| {
            let (start, value) = series.get_mut(&key)?.point(temporality, now_unix_nano);
            let (group, name) = key.process().parts();
            Some(CountPoint {
                name: name.to_owned(),
                group: group.to_owned(),
                expected: expected(&key),
                start_time_unix_nano: start,
                value,
            })
        })
        .collect()
}

/// The process a series key belongs to.
trait HasProcess {
    fn process(&self) -> &Key;
}

impl HasProcess for Key {
    fn process(&self) -> &Key {
        self
    }
}

impl HasProcess for (Key, bool) {
    fn process(&self) -> &Key {
        &self.0
    }
}

/// A new start time, or a new pid while both polls had one.
fn started_again(before: &Seen, now: &Seen) -> bool {
    let (before, now) = (&before.uptime, &now.uptime);
    let new_start = now.start() > 0 && now.start() != before.start();
    let new_pid = now.pid() > 0 && before.pid() > 0 && now.pid() != before.pid();
    new_start || new_pid
}

/// The transition of `process` from `previous`, found by the poll `window.1`, the previous one
/// having started at `window.0`.
fn transition(
    process: &MonitoredProcess,
    previous: ProcessState,
    restarted: bool,
    (since_unix_nano, clock): (u64, PollClock),
) -> ProcessTransition {
    let info: &ProcessInfo = &process.info;
    let state = info.state;
    let after_exit = matches!(
        state,
        ProcessState::Exited | ProcessState::Backoff | ProcessState::Fatal
    ) || restarted;
    // supervisord's time of the change, when the reply says it (0: it does not).
    let when = match state {
        ProcessState::Starting | ProcessState::Running => info.start,
        ProcessState::Stopped | ProcessState::Exited => info.stop,
        _ => 0,
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
        time_unix_nano: Some(skew::record_time_unix_nano(
            when,
            clock.offset_seconds,
            since_unix_nano,
            clock.time_unix_nano,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// A poll at `now_unix_nano` with synchronized clocks (an offset of 0).
    fn at(now_unix_nano: u64) -> PollClock {
        PollClock {
            time_unix_nano: now_unix_nano,
            monotonic_nanos: now_unix_nano,
            offset_seconds: Some(0),
        }
    }

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
            autostart: None,
        }
    }

    #[test]
    fn the_first_poll_is_a_baseline() {
        let mut t = ChangeTracker::default();
        let changes = t
            .observe(
                &[process("a", ProcessState::Running, 10, 7)],
                Some(SupervisorState::Running),
                at(0),
            )
            .0;
        assert_eq!(changes, Changes::default());
        assert_eq!(t.restarts("a", "a"), Some(0));
    }

    #[test]
    fn a_state_change_is_one_transition_timed_by_supervisord() {
        let mut t = ChangeTracker::default();
        t.observe(
            &[process("a", ProcessState::Running, 10, 7)],
            None,
            at(490 * SECOND),
        );
        let mut stopped = process("a", ProcessState::Stopped, 10, 0);
        stopped.info.stop = 500;
        let changes = t.observe(&[stopped], None, at(510 * SECOND)).0;
        assert_eq!(changes.processes.len(), 1);
        let c = &changes.processes[0];
        assert_eq!(
            (c.previous, c.state),
            (ProcessState::Running, ProcessState::Stopped)
        );
        assert_eq!(c.time_unix_nano, Some(500 * SECOND));
        assert_eq!((c.pid, c.exit_status, c.restarted), (None, None, false));
        assert_eq!(t.restarts("a", "a"), Some(0));
    }

    #[test]
    fn a_crash_and_restart_between_polls_counts_and_is_reported() {
        let mut t = ChangeTracker::default();
        t.observe(
            &[process("a", ProcessState::Running, 10, 7)],
            None,
            at(15 * SECOND),
        );
        let mut again = process("a", ProcessState::Running, 20, 8);
        again.info.stop = 19;
        again.info.exitstatus = 3;
        let changes = t.observe(&[again], None, at(25 * SECOND)).0;
        let c = &changes.processes[0];
        assert!(c.restarted);
        assert_eq!(
            (c.previous, c.state),
            (ProcessState::Running, ProcessState::Running)
        );
        assert_eq!((c.pid, c.exit_status), (Some(8), Some(3)));
        assert_eq!(c.time_unix_nano, Some(20 * SECOND));
        assert_eq!(t.restarts("a", "a"), Some(1));
        // Nothing new: nothing reported, nothing counted.
        assert!(t
            .observe(&[process("a", ProcessState::Running, 20, 8)], None, at(0))
            .0
            .processes
            .is_empty());
        assert_eq!(t.restarts("a", "a"), Some(1));
    }

    #[test]
    fn a_start_after_a_stop_counts_as_a_restart() {
        let mut t = ChangeTracker::default();
        t.observe(&[process("a", ProcessState::Stopped, 10, 0)], None, at(0));
        let changes = t
            .observe(&[process("a", ProcessState::Running, 30, 9)], None, at(0))
            .0;
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
        t.observe(&[process("a", ProcessState::Backoff, 10, 0)], None, at(0));
        let mut fatal = process("a", ProcessState::Fatal, 10, 0);
        fatal.info.exitstatus = 1;
        fatal.info.spawnerr = "Exited too quickly (process log may have details)".into();
        let c = &t.observe(&[fatal], None, at(2_000 * SECOND)).0.processes[0];
        assert_eq!(c.exit_status, Some(1));
        assert_eq!(
            c.spawnerr.as_deref(),
            Some("Exited too quickly (process log may have details)")
        );
        // supervisord says no time for FATAL: the poll's.
        assert_eq!(c.time_unix_nano, Some(2_000 * SECOND));
    }

    #[test]
    fn an_outage_resets_the_baseline_and_supervisord_changes_are_reported() {
        let mut t = ChangeTracker::default();
        t.observe(
            &[process("a", ProcessState::Running, 10, 7)],
            Some(SupervisorState::Running),
            at(0),
        );
        let changes = t
            .observe(
                &[process("a", ProcessState::Running, 10, 7)],
                Some(SupervisorState::Restarting),
                at(0),
            )
            .0;
        assert_eq!(
            changes.supervisor,
            Some(SupervisorTransition {
                previous: SupervisorState::Running,
                state: SupervisorState::Restarting
            })
        );
        t.lost_sight();
        let after = t
            .observe(
                &[process("a", ProcessState::Running, 99, 70)],
                Some(SupervisorState::Running),
                at(0),
            )
            .0;
        assert_eq!(after, Changes::default());
        assert_eq!(t.restarts("a", "a"), Some(0));
    }

    #[test]
    fn processes_that_come_and_go_are_baselined_and_forgotten() {
        let mut t = ChangeTracker::default();
        t.observe(&[process("a", ProcessState::Running, 10, 7)], None, at(0));
        let changes = t
            .observe(&[process("b", ProcessState::Running, 10, 8)], None, at(0))
            .0;
        assert!(changes.processes.is_empty());
        assert_eq!(t.restarts("a", "a"), None);
        assert_eq!(t.restarts("b", "b"), Some(0));
    }

    /// A poll at `seconds` by the receiver's clocks, supervisord's being `offset` seconds off.
    fn skewed(seconds: u64, offset: i64) -> PollClock {
        PollClock {
            time_unix_nano: seconds * SECOND,
            monotonic_nanos: seconds * SECOND,
            offset_seconds: Some(offset),
        }
    }

    #[test]
    fn record_times_from_a_skewed_supervisord_land_within_the_observation() {
        // supervisord an hour ahead: its stop at 4_105 is 505 on the receiver's clock.
        let mut t = ChangeTracker::default();
        let mut running = process("a", ProcessState::Running, 4_000, 7);
        running.info.now = 4_100;
        t.observe(&[running], None, skewed(500, 3_600));
        let mut stopped = process("a", ProcessState::Stopped, 4_000, 0);
        (stopped.info.stop, stopped.info.now) = (4_105, 4_110);
        let (changes, _) = t.observe(&[stopped], None, skewed(510, 3_600));
        assert_eq!(changes.processes[0].time_unix_nano, Some(505 * SECOND));
        // Its clock stepped an hour back between the start and the poll that sees it: the
        // offset is the new one, and the start time, read with it, lies past this poll; it is
        // put at this poll.
        let mut started = process("a", ProcessState::Running, 4_112, 8);
        started.info.now = 4_120 - 3_600;
        let (changes, _) = t.observe(&[started], None, skewed(520, 0));
        assert_eq!(changes.processes[0].time_unix_nano, Some(520 * SECOND));
    }

    #[test]
    fn uptimes_go_on_across_a_step_back_and_a_failed_poll() {
        let mut t = ChangeTracker::default();
        let at_now = |now: i64| {
            let mut p = process("a", ProcessState::Running, 1_000, 7);
            p.info.now = now;
            p
        };
        let (_, uptimes) = t.observe(&[at_now(1_030)], None, skewed(100, 0));
        assert_eq!(uptimes, [30]);
        // supervisord's clock goes an hour back: `now - start` would be negative.
        let (_, uptimes) = t.observe(&[at_now(1_040 - 3_600)], None, skewed(110, -3_600));
        assert_eq!(uptimes, [40]);
        // A failed poll in between: the process's history stays.
        t.lost_sight();
        let (_, uptimes) = t.observe(&[at_now(1_060 - 3_600)], None, skewed(130, -3_600));
        assert_eq!(uptimes, [60]);
    }

    fn event(name: &str, state: ProcessState, expected: Option<bool>) -> ProcessTransition {
        ProcessTransition {
            name: name.into(),
            group: name.into(),
            previous: ProcessState::Running,
            state,
            status: crate::vocab::StatusMapping::default().status(state),
            pid: None,
            exit_status: None,
            expected,
            spawnerr: None,
            restarted: false,
            time_unix_nano: None,
        }
    }

    #[test]
    fn counts_report_each_process_with_its_temporality() {
        let mut t = ChangeTracker::new(
            Source::Polls,
            CountTemporality {
                restarts: Temporality::Delta,
                exits: Temporality::Delta,
                cpu_time: Temporality::Delta,
            },
        );
        t.observe(&[process("a", ProcessState::Running, 10, 7)], None, at(100));
        let (restarts, exits) = t.counts(100);
        assert_eq!(restarts.temporality, Temporality::Delta);
        assert_eq!(
            restarts.points,
            vec![CountPoint {
                name: "a".into(),
                group: "a".into(),
                expected: None,
                start_time_unix_nano: 100,
                value: 0
            }]
        );
        assert!(exits.points.is_empty(), "polling counts no exits");
        t.observe(&[process("a", ProcessState::Running, 20, 8)], None, at(200));
        let (restarts, _) = t.counts(200);
        assert_eq!(
            (
                restarts.points[0].start_time_unix_nano,
                restarts.points[0].value
            ),
            (100, 1)
        );
        // A failed poll and a new baseline keep the series going.
        t.lost_sight();
        t.observe(&[process("a", ProcessState::Running, 90, 9)], None, at(300));
        let (restarts, _) = t.counts(300);
        assert_eq!(
            (
                restarts.points[0].start_time_unix_nano,
                restarts.points[0].value
            ),
            (200, 0)
        );
    }

    #[test]
    fn push_mode_counts_from_events_and_polls_only_keep_the_list() {
        let mut t = ChangeTracker::new(Source::Events, CountTemporality::default());
        // Boot: the first start of a process not yet seen is its first sight.
        assert!(!t.observe_event(&event("a", ProcessState::Starting, None), 50));
        t.observe(&[process("a", ProcessState::Running, 10, 7)], None, at(100));
        // A poll that sees a new start time reports nothing: the events did.
        let polled = t
            .observe(&[process("a", ProcessState::Running, 20, 8)], None, at(150))
            .0;
        assert_eq!(polled, Changes::default());
        assert_eq!(t.restarts("a", "a"), Some(0));
        assert!(t.observe_event(&event("a", ProcessState::Exited, Some(false)), 200));
        assert!(t.observe_event(&event("a", ProcessState::Starting, None), 201));
        assert!(t.observe_event(&event("a", ProcessState::Exited, Some(true)), 300));
        assert_eq!(t.restarts("a", "a"), Some(1));
        assert_eq!(t.exits("a", "a", false), Some(1));
        assert_eq!(t.exits("a", "a", true), Some(1));
        let (restarts, exits) = t.counts(400);
        assert_eq!(restarts.points.len(), 1);
        let exits: Vec<_> = exits
            .points
            .iter()
            .map(|p| (p.expected, p.start_time_unix_nano, p.value))
            .collect();
        assert_eq!(exits, vec![(Some(false), 50, 1), (Some(true), 50, 1)]);
    }

    #[test]
    fn late_boot_events_and_polls_between_events_count_no_restart_twice() {
        let mut t = ChangeTracker::new(Source::Events, CountTemporality::default());
        // The first poll comes before the boot events that supervisord queued.
        t.observe(
            &[process("a", ProcessState::Starting, 10, 7)],
            None,
            at(100),
        );
        t.observe_event(&event("a", ProcessState::Starting, None), 110);
        t.observe_event(&event("a", ProcessState::Running, None), 120);
        assert_eq!(
            t.restarts("a", "a"),
            Some(0),
            "the boot start is the first sight"
        );
        // A crash, a poll that already sees the new start, then the start's event.
        t.observe_event(&event("a", ProcessState::Exited, Some(false)), 200);
        t.observe(
            &[process("a", ProcessState::Starting, 20, 8)],
            None,
            at(210),
        );
        t.observe_event(&event("a", ProcessState::Starting, None), 220);
        assert_eq!(t.restarts("a", "a"), Some(1));
        // A failed start retried from BACKOFF is a new start too.
        t.observe_event(&event("a", ProcessState::Backoff, None), 300);
        t.observe_event(&event("a", ProcessState::Starting, None), 310);
        assert_eq!(t.restarts("a", "a"), Some(2));
    }

    #[test]
    fn supervisord_events_report_real_changes_only() {
        let mut t = ChangeTracker::new(Source::Events, CountTemporality::default());
        assert_eq!(t.observe_supervisor(SupervisorState::Running), None);
        assert_eq!(t.observe_supervisor(SupervisorState::Running), None);
        assert_eq!(
            t.observe_supervisor(SupervisorState::Shutdown),
            Some(SupervisorTransition {
                previous: SupervisorState::Running,
                state: SupervisorState::Shutdown
            })
        );
    }
}
