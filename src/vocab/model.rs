//! The typed model of what supervisord reports.
//!
//! Unknown state names or codes map to [`ProcessState::Unknown`]; nothing here panics on input.

use std::fmt;

/// A process state as supervisord names it (`supervisor/states.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProcessState {
    Stopped,
    Starting,
    Running,
    Backoff,
    Stopping,
    Exited,
    Fatal,
    #[default]
    Unknown,
}

impl ProcessState {
    /// Every state, in supervisord's code order: the one-hot `state` attribute emits one point each.
    pub const ALL: [ProcessState; 8] = [
        ProcessState::Stopped,
        ProcessState::Starting,
        ProcessState::Running,
        ProcessState::Backoff,
        ProcessState::Stopping,
        ProcessState::Exited,
        ProcessState::Fatal,
        ProcessState::Unknown,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ProcessState::Stopped => "STOPPED",
            ProcessState::Starting => "STARTING",
            ProcessState::Running => "RUNNING",
            ProcessState::Backoff => "BACKOFF",
            ProcessState::Stopping => "STOPPING",
            ProcessState::Exited => "EXITED",
            ProcessState::Fatal => "FATAL",
            ProcessState::Unknown => "UNKNOWN",
        }
    }

    pub const fn code(self) -> i64 {
        match self {
            ProcessState::Stopped => 0,
            ProcessState::Starting => 10,
            ProcessState::Running => 20,
            ProcessState::Backoff => 30,
            ProcessState::Stopping => 40,
            ProcessState::Exited => 100,
            ProcessState::Fatal => 200,
            ProcessState::Unknown => 1000,
        }
    }

    /// Exact, case-sensitive match on supervisord's names (Datadog keys its mapping the same way).
    pub fn from_name(name: &str) -> Option<ProcessState> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn from_code(code: i64) -> Option<ProcessState> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The state of a process entry: the name wins (Datadog reads `statename`), then the code,
    /// then UNKNOWN.
    pub fn resolve(statename: Option<&str>, code: Option<i64>) -> ProcessState {
        statename
            .and_then(ProcessState::from_name)
            .or_else(|| code.and_then(ProcessState::from_code))
            .unwrap_or(ProcessState::Unknown)
    }

    /// Datadog's rule: uptime counts only in BACKOFF, RUNNING and STOPPING, whatever the status
    /// mapping says.
    pub const fn counts_uptime(self) -> bool {
        matches!(
            self,
            ProcessState::Backoff | ProcessState::Running | ProcessState::Stopping
        )
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// supervisord's own state (`supervisor.getState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupervisorState {
    Fatal,
    Running,
    Restarting,
    Shutdown,
}

impl SupervisorState {
    pub const ALL: [SupervisorState; 4] = [
        SupervisorState::Running,
        SupervisorState::Restarting,
        SupervisorState::Shutdown,
        SupervisorState::Fatal,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            SupervisorState::Fatal => "FATAL",
            SupervisorState::Running => "RUNNING",
            SupervisorState::Restarting => "RESTARTING",
            SupervisorState::Shutdown => "SHUTDOWN",
        }
    }

    pub const fn code(self) -> i64 {
        match self {
            SupervisorState::Fatal => 2,
            SupervisorState::Running => 1,
            SupervisorState::Restarting => 0,
            SupervisorState::Shutdown => -1,
        }
    }

    /// Name first, then code; `None` when neither is known (then no `supervisord.state` point).
    pub fn resolve(statename: Option<&str>, code: Option<i64>) -> Option<SupervisorState> {
        statename
            .and_then(|n| Self::ALL.into_iter().find(|s| s.name() == n))
            .or_else(|| code.and_then(|c| Self::ALL.into_iter().find(|s| s.code() == c)))
    }
}

/// One entry of `supervisor.getAllProcessInfo`.
///
/// Timestamps are supervisord's unix seconds; `now` is supervisord's clock at reply time, which
/// is what uptime is computed against (as Datadog does), so a steady skew between supervisord's
/// clock and the receiver's never enters it (a step of supervisord's clock does: see
/// [`ProcessInfo::uptime_across_clock_steps`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessInfo {
    pub name: String,
    pub group: String,
    pub description: String,
    pub state: ProcessState,
    /// The raw `statename` as sent, kept for display when it was not a known name.
    pub statename: String,
    pub start: i64,
    pub stop: i64,
    pub now: i64,
    pub exitstatus: i64,
    pub pid: i64,
    pub spawnerr: String,
    pub logfile: String,
    pub stdout_logfile: String,
    pub stderr_logfile: String,
}

impl ProcessInfo {
    /// Datadog's `_extract_uptime`: `now - start` in an active state, else 0. It is negative
    /// when supervisord's clock went back behind the process's start; Datadog reports that as
    /// is, the receiver reports [`ProcessInfo::uptime_across_clock_steps`] instead.
    pub fn uptime(&self) -> i64 {
        if self.state.counts_uptime() {
            self.now.saturating_sub(self.start)
        } else {
            0
        }
    }

    /// The uptime the receiver reports, given what it kept of the previous poll (`previous`)
    /// and its own monotonic clock now (`monotonic_nanos`, from any fixed origin), with what to
    /// keep for the next poll.
    ///
    /// supervisord's `now - start` ([`ProcessInfo::uptime`]) while it is sensible. When it is
    /// not (negative: supervisord's clock is behind the start it recorded; or supervisord's
    /// `now` went back since the previous poll of the same instance, same pid and start), the
    /// uptime is the last one taken from supervisord, advanced by the receiver's monotonic
    /// clock since; with none (the instance first seen while the clock is behind), 0 from now
    /// on. It goes on so for that instance until supervisord's `now - start` catches up (its
    /// clock stepped forward again), so a step back never makes the series jump back, and it
    /// is never negative. A step forward shows as a jump forward, as in supervisord's own
    /// `now - start`.
    pub fn uptime_across_clock_steps(
        &self,
        previous: Option<&UptimeTrack>,
        monotonic_nanos: u64,
    ) -> (i64, UptimeTrack) {
        let same = previous.filter(|p| p.pid == self.pid && p.start == self.start);
        let mut track = UptimeTrack {
            pid: self.pid,
            start: self.start,
            now: self.now,
            anchor: None,
            continued: false,
        };
        if !self.state.counts_uptime() {
            return (0, track);
        }
        let raw = self.uptime();
        let anchor = same.and_then(|p| p.anchor);
        let continued = anchor.map(|(uptime, at)| {
            let elapsed = monotonic_nanos.saturating_sub(at) / 1_000_000_000;
            uptime.saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
        });
        let went_back = same.is_some_and(|p| self.now < p.now);
        let was_continued = same.is_some_and(|p| p.continued);
        let behind = continued.is_some_and(|c| raw < c);
        if raw < 0 || ((went_back || was_continued) && behind) {
            track.anchor = anchor.or(Some((0, monotonic_nanos)));
            track.continued = true;
            (continued.unwrap_or(0), track)
        } else {
            track.anchor = Some((raw, monotonic_nanos));
            (raw, track)
        }
    }

    /// `start` is 0 for a process that never started.
    pub fn start_time(&self) -> Option<i64> {
        (self.start > 0).then_some(self.start)
    }
}

/// What the receiver keeps of one process instance between two polls to report its uptime
/// across supervisord's clock steps ([`ProcessInfo::uptime_across_clock_steps`]): a few
/// integers, no names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UptimeTrack {
    /// The instance: a new pid or start time is another instance, whose uptime starts afresh.
    pid: i64,
    start: i64,
    /// supervisord's `now` at that poll, to see its clock go back.
    now: i64,
    /// The last uptime taken from supervisord's clock, with the receiver's monotonic clock
    /// then (nanoseconds); `None` while the process was in a state without uptime.
    anchor: Option<(i64, u64)>,
    /// The uptime reported was the anchor advanced by the receiver's clock, not supervisord's.
    continued: bool,
}

impl UptimeTrack {
    /// The process's pid at that poll (0 when it had none).
    pub fn pid(&self) -> i64 {
        self.pid
    }

    /// The process's start time by supervisord's clock at that poll (0 when it never started).
    pub fn start(&self) -> i64 {
        self.start
    }
}

/// Everything one poll learned from a supervisord.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub processes: Vec<ProcessInfo>,
    /// `None` when `getState` failed or was not answered.
    pub state: Option<SupervisorState>,
    pub identification: Option<String>,
    pub version: Option<String>,
}

/// What supervisord's configuration says of one process (an entry of
/// `supervisor.getAllConfigInfo`), as far as the receiver reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessConfig {
    pub name: String,
    pub group: String,
    /// The program's `autostart`: supervisord starts it by itself (at its own start, and when
    /// `supervisorctl update` adds it), so a stop is not the configuration's intent.
    pub autostart: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for s in ProcessState::ALL {
            assert_eq!(ProcessState::from_name(s.name()), Some(s));
            assert_eq!(ProcessState::from_code(s.code()), Some(s));
        }
        for s in SupervisorState::ALL {
            assert_eq!(SupervisorState::resolve(Some(s.name()), None), Some(s));
            assert_eq!(SupervisorState::resolve(None, Some(s.code())), Some(s));
        }
    }

    #[test]
    fn unknown_names_and_codes_are_unknown() {
        assert_eq!(
            ProcessState::resolve(Some("running"), Some(7)),
            ProcessState::Unknown
        );
        assert_eq!(
            ProcessState::resolve(Some("NEW"), Some(20)),
            ProcessState::Running
        );
        assert_eq!(ProcessState::resolve(None, None), ProcessState::Unknown);
        assert_eq!(SupervisorState::resolve(Some("x"), Some(9)), None);
    }

    #[test]
    fn uptime_follows_datadog_rule() {
        let mut p = ProcessInfo {
            start: 10,
            now: 25,
            state: ProcessState::Running,
            ..Default::default()
        };
        assert_eq!(p.uptime(), 15);
        p.state = ProcessState::Stopped;
        assert_eq!(p.uptime(), 0);
        p.state = ProcessState::Backoff;
        assert_eq!(p.uptime(), 15);
        p.state = ProcessState::Stopping;
        p.start = 30;
        assert_eq!(
            p.uptime(),
            -5,
            "Datadog's value, before the receiver's rule"
        );
    }

    const SECOND: u64 = 1_000_000_000;

    fn running(start: i64, now: i64, pid: i64) -> ProcessInfo {
        ProcessInfo {
            state: ProcessState::Running,
            start,
            now,
            pid,
            ..Default::default()
        }
    }

    /// Polls `infos` at `monotonic` seconds, carrying the track, and returns the uptimes.
    fn uptimes(polls: &[(ProcessInfo, u64)]) -> Vec<i64> {
        let mut track = None;
        polls
            .iter()
            .map(|(info, at)| {
                let (uptime, next) = info.uptime_across_clock_steps(track.as_ref(), at * SECOND);
                track = Some(next);
                uptime
            })
            .collect()
    }

    #[test]
    fn uptime_is_supervisords_while_its_clock_is_sane() {
        // Skewed by an hour either way, but steady: `now - start` is right, whatever the offset.
        let polls = [
            (running(1_000, 1_010, 7), 50),
            (running(1_000, 1_020, 7), 60),
            (running(1_000, 1_031, 7), 70),
        ];
        assert_eq!(uptimes(&polls), [10, 20, 31]);
        let stopped = ProcessInfo {
            state: ProcessState::Stopped,
            ..running(1_000, 1_040, 0)
        };
        assert_eq!(stopped.uptime_across_clock_steps(None, 0).0, 0);
    }

    #[test]
    fn a_step_back_behind_the_start_continues_by_the_receivers_clock() {
        // Running for 10 s, then supervisord's clock goes back an hour: `now - start` would be
        // about -3590. The uptime goes on from 10 by the receiver's monotonic clock.
        let polls = [
            (running(1_000, 1_010, 7), 100),
            (running(1_000, 1_010 - 3_600 + 5, 7), 105),
            (running(1_000, 1_010 - 3_600 + 15, 7), 115),
        ];
        assert_eq!(uptimes(&polls), [10, 15, 25]);
    }

    #[test]
    fn a_step_back_on_a_long_running_process_does_not_jump_back() {
        // Up for two hours; the clock goes back an hour: `now - start` stays positive but
        // falls by an hour. The receiver's clock carries it, poll after poll, until
        // supervisord's clock steps forward again and `now - start` catches up.
        let polls = [
            (running(1_000, 8_200, 7), 100),
            (running(1_000, 8_210 - 3_600, 7), 110),
            (running(1_000, 8_220 - 3_600, 7), 120),
            (running(1_000, 8_231, 7), 131),
            (running(1_000, 8_241, 7), 141),
        ];
        assert_eq!(uptimes(&polls), [7_200, 7_210, 7_220, 7_231, 7_241]);
    }

    #[test]
    fn without_an_earlier_value_the_uptime_starts_at_zero() {
        // First seen while supervisord's clock is behind the start: 0, then the receiver's
        // time since.
        let polls = [
            (running(5_000, 1_400, 7), 10),
            (running(5_000, 1_410, 7), 20),
        ];
        assert_eq!(uptimes(&polls), [0, 10]);
        // A new instance (another pid and start) does not inherit the old one's uptime.
        let polls = [
            (running(1_000, 1_010, 7), 100),
            (running(5_000, 1_400, 8), 110),
        ];
        assert_eq!(uptimes(&polls), [10, 0]);
        // Nor does the same one after a state without uptime.
        let in_state = |state| ProcessInfo {
            state,
            ..running(1_000, 1_010, 7)
        };
        let polls = [
            (in_state(ProcessState::Starting), 100),
            (running(1_000, 990, 7), 110),
        ];
        assert_eq!(uptimes(&polls), [0, 0]);
    }
}
