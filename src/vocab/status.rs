//! Datadog's three-valued process status and the per-target mapping from supervisord states.

use super::model::ProcessState;

/// The mapped health of a process: Datadog's `status:` tag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Up,
    Down,
    Unknown,
}

impl Status {
    /// Datadog sends the three counts in this order; we keep it for the same reading order.
    pub const ALL: [Status; 3] = [Status::Down, Status::Up, Status::Unknown];

    pub const fn name(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Down => "down",
            Status::Unknown => "unknown",
        }
    }

    /// Case-sensitive, as Datadog's validation is.
    pub fn from_name(name: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// supervisord state → status, one entry per state. Starts from Datadog's default mapping; a
/// `status_mapping_override` replaces entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMapping {
    by_state: [Status; 8],
}

impl Default for StatusMapping {
    fn default() -> Self {
        let mut by_state = [Status::Down; 8];
        for (i, state) in ProcessState::ALL.into_iter().enumerate() {
            by_state[i] = match state {
                ProcessState::Running => Status::Up,
                ProcessState::Starting | ProcessState::Unknown => Status::Unknown,
                _ => Status::Down,
            };
        }
        StatusMapping { by_state }
    }
}

impl StatusMapping {
    pub fn status(&self, state: ProcessState) -> Status {
        self.by_state[Self::index(state)]
    }

    pub fn set(&mut self, state: ProcessState, status: Status) {
        self.by_state[Self::index(state)] = status;
    }

    fn index(state: ProcessState) -> usize {
        ProcessState::ALL
            .iter()
            .position(|s| *s == state)
            .expect("ALL lists every state")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mapping_is_datadogs() {
        let m = StatusMapping::default();
        let expect = [
            ("STOPPED", "down"),
            ("STARTING", "unknown"),
            ("RUNNING", "up"),
            ("BACKOFF", "down"),
            ("STOPPING", "down"),
            ("EXITED", "down"),
            ("FATAL", "down"),
            ("UNKNOWN", "unknown"),
        ];
        for (state, status) in expect {
            let state = ProcessState::from_name(state).unwrap();
            assert_eq!(m.status(state).name(), status, "{state}");
        }
    }

    #[test]
    fn override_replaces_one_entry() {
        let mut m = StatusMapping::default();
        m.set(ProcessState::Stopped, Status::Up);
        assert_eq!(m.status(ProcessState::Stopped), Status::Up);
        assert_eq!(m.status(ProcessState::Exited), Status::Down);
    }

    #[test]
    fn status_names_are_case_sensitive() {
        assert_eq!(Status::from_name("up"), Some(Status::Up));
        assert_eq!(Status::from_name("UP"), None);
    }
}
