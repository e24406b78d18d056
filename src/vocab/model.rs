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
/// is what uptime is computed against (as Datadog does), so the receiver's clock skew never
/// enters it.
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
    /// Datadog's `_extract_uptime`: `now - start` in an active state, else 0. It can be negative
    /// when supervisord's clock went backwards; Datadog reports it as is and so do we.
    pub fn uptime(&self) -> i64 {
        if self.state.counts_uptime() {
            self.now - self.start
        } else {
            0
        }
    }

    /// `start` is 0 for a process that never started.
    pub fn start_time(&self) -> Option<i64> {
        (self.start > 0).then_some(self.start)
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
        assert_eq!(p.uptime(), -5);
    }
}
