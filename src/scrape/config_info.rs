//! supervisord's configuration of the monitored programs: when to ask for it
//! (`getAllConfigInfo`), what is known of it, and the `autostart` it gives each process.
//!
//! The reply costs supervisord about a second and 2.5 MB for 1,000 programs, and a program's
//! configuration changes only when someone edits it, so it is not asked at every poll. It is
//! asked after a successful poll when:
//! - it is the poller's first (a start, or a reload: a reloaded target gets a new poller);
//! - the target was unreachable since the last successful poll (supervisord may have restarted
//!   with another configuration);
//! - the set of monitored processes (`group:name`) differs from the previous poll's
//!   (`supervisorctl update` added or removed programs);
//! - [`REFRESH_EVERY`] has passed since the last answer (`supervisorctl update` can change a
//!   program's configuration without changing the set), or [`RETRY_AFTER`] since a call that
//!   failed.
//!
//! A failed call never fails the poll: it is logged (once while the reason stays the same) and
//! the last answer stays in use; a process it does not cover has no `autostart`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::scrape::outcome::MonitoredProcess;
use crate::settings::Target;
use crate::supervisor::client::SupervisorClient;
use crate::supervisor::config_info::{ConfigInfo, ConfigInfoError};
use crate::vocab::ProcessConfig;

/// The longest an answer is used before it is asked again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);

/// How long after a failed call the next one is made (unless a change asks sooner): soon
/// enough that a passing failure (a timeout on a busy supervisord) costs minutes, not the
/// whole refresh period, of unknown `autostart`; rare enough that a supervisord that always
/// fails the call is asked once a minute, not every poll.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why the configuration is asked for (logged with the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The poller's first successful poll.
    First,
    /// The target answers again after failed polls.
    Reconnected,
    /// The monitored processes are not those of the previous poll.
    ProcessesChanged,
    /// [`REFRESH_EVERY`] since the last answer.
    Refresh,
    /// [`RETRY_AFTER`] since a call that failed.
    Retry,
}

/// The monitored processes of one poll, by `group:name`, as a fingerprint: its size and the
/// sum of its members' hashes, which is the same whatever the order. Comparing two costs
/// nothing and keeps no copy of the names; a collision would only delay a refresh until the
/// next periodic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSet {
    count: usize,
    sum: u64,
}

impl ProcessSet {
    pub fn of<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> ProcessSet {
        let mut set = ProcessSet { count: 0, sum: 0 };
        for (group, name) in members {
            // SipHash with fixed keys: the same members give the same sum in every poll.
            let mut hasher = DefaultHasher::new();
            (group, name).hash(&mut hasher);
            set.count += 1;
            set.sum = set.sum.wrapping_add(hasher.finish());
        }
        set
    }

    fn of_processes(processes: &[MonitoredProcess]) -> ProcessSet {
        ProcessSet::of(
            processes
                .iter()
                .map(|p| (p.info.group.as_str(), p.info.name.as_str())),
        )
    }
}

/// When to call: the policy alone, on instants it is given (so it is tested without a clock).
#[derive(Debug, Default)]
pub struct RefreshPolicy {
    /// The monitored processes of the last successful poll.
    last_set: Option<ProcessSet>,
    /// A poll failed since the last successful one.
    lost_sight: bool,
    /// The last call: when it was made, and whether it was answered.
    last_call: Option<(Instant, bool)>,
}

impl RefreshPolicy {
    /// A poll failed (the target unreachable, or its reply unusable).
    pub fn poll_failed(&mut self) {
        self.lost_sight = true;
    }

    /// After a successful poll that reported `set`, at `now`: why to call, or `None` to keep
    /// the last answer.
    pub fn due(&mut self, set: ProcessSet, now: Instant) -> Option<Reason> {
        let previous = self.last_set.replace(set);
        let reconnected = std::mem::take(&mut self.lost_sight);
        let Some((at, answered)) = self.last_call else {
            return Some(Reason::First);
        };
        if reconnected {
            return Some(Reason::Reconnected);
        }
        if previous != Some(set) {
            return Some(Reason::ProcessesChanged);
        }
        let (wait, reason) = if answered {
            (REFRESH_EVERY, Reason::Refresh)
        } else {
            (RETRY_AFTER, Reason::Retry)
        };
        (now.saturating_duration_since(at) >= wait).then_some(reason)
    }

    /// A call was made at `now`; `answered`: it gave a configuration.
    pub fn called(&mut self, now: Instant, answered: bool) {
        self.last_call = Some((now, answered));
    }
}

/// The last answer: each process's `autostart`, sorted by group and name for lookups that
/// copy nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Autostarts {
    sorted: Vec<ProcessConfig>,
}

impl Autostarts {
    pub fn new(mut processes: Vec<ProcessConfig>) -> Autostarts {
        processes.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        Autostarts { sorted: processes }
    }

    /// The `autostart` of `group:name`; `None` when the answer did not cover it.
    pub fn get(&self, group: &str, name: &str) -> Option<bool> {
        self.sorted
            .binary_search_by(|c| (c.group.as_str(), c.name.as_str()).cmp(&(group, name)))
            .ok()
            .and_then(|i| self.sorted.get(i))
            .map(|c| c.autostart)
    }

    /// Sets each process's `autostart` from this answer (`None` where it says nothing).
    pub fn apply(&self, processes: &mut [MonitoredProcess]) {
        for process in processes {
            process.autostart = self.get(&process.info.group, &process.info.name);
        }
    }
}

/// One target's configuration knowledge: the policy, the last answer, and what was logged.
#[derive(Debug, Default)]
pub struct ConfigInfoState {
    policy: RefreshPolicy,
    /// `None` until the first answer.
    known: Option<Autostarts>,
    /// The last failure logged, so a call that keeps failing for the same reason is logged
    /// once (and again when the reason changes).
    last_failure: Option<String>,
    /// The last problems logged (entries that could not be read), likewise.
    last_problems: Vec<String>,
}

impl ConfigInfoState {
    /// A poll failed: the next successful one asks again.
    pub fn poll_failed(&mut self) {
        self.policy.poll_failed();
    }

    /// After a successful poll: asks supervisord when the policy says so (bounded by what is
    /// left of the poll's timeout, which started at `poll_started`), then sets each process's
    /// `autostart` from the last answer.
    pub async fn refresh_and_apply(
        &mut self,
        client: &SupervisorClient,
        target: &Target,
        poll_started: Instant,
        processes: &mut [MonitoredProcess],
    ) {
        let set = ProcessSet::of_processes(processes);
        if let Some(reason) = self.policy.due(set, Instant::now()) {
            let started = Instant::now();
            let within = target.timeout.saturating_sub(poll_started.elapsed());
            let result = client.config_info(within).await;
            tracing::debug!(
                event = "config_info",
                target_name = %target.name,
                reason = ?reason,
                elapsed_ms = started.elapsed().as_millis() as u64,
                answered = result.is_ok(),
                "getAllConfigInfo"
            );
            self.record(&target.name, result, Instant::now());
        }
        if let Some(known) = &self.known {
            known.apply(processes);
        }
    }

    /// What a call gave, at `now`: the new answer, or a failure logged while the last answer
    /// stays in use.
    pub fn record(
        &mut self,
        target_name: &str,
        result: Result<ConfigInfo, ConfigInfoError>,
        now: Instant,
    ) {
        self.policy.called(now, result.is_ok());
        match result {
            Ok(info) => {
                if self.last_failure.take().is_some() {
                    tracing::info!(event = "config_info_answered", target_name = %target_name, "getAllConfigInfo answers again");
                }
                if info.problems != self.last_problems {
                    for problem in &info.problems {
                        tracing::warn!(event = "reply_problem", target_name = %target_name, "getAllConfigInfo: {problem}");
                    }
                    self.last_problems = info.problems;
                }
                self.known = Some(Autostarts::new(info.processes));
            }
            Err(error) => {
                let message = format!("getAllConfigInfo failed: {error}");
                let kept = if self.known.is_some() {
                    "the last answer stays in use"
                } else {
                    "processes have no autostart attribute until it answers"
                };
                if self.last_failure.as_deref() == Some(message.as_str()) {
                    tracing::debug!(event = "config_info_failed", target_name = %target_name, "{message}; {kept}");
                } else {
                    tracing::warn!(event = "config_info_failed", target_name = %target_name, "{message}; {kept}");
                    self.last_failure = Some(message);
                }
            }
        }
    }

    /// The last answer, if any.
    pub fn known(&self) -> Option<&Autostarts> {
        self.known.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::transport::TransportError;
    use crate::vocab::{ProcessInfo, Status};

    fn set(members: &[(&str, &str)]) -> ProcessSet {
        ProcessSet::of(members.iter().copied())
    }

    const WEB: [(&str, &str); 2] = [("web", "web"), ("workers", "worker_0")];

    fn after(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_set_is_its_members_whatever_their_order() {
        assert_eq!(set(&WEB), set(&[WEB[1], WEB[0]]));
        assert_ne!(set(&WEB), set(&WEB[..1]));
        assert_ne!(set(&WEB), set(&[("web", "web"), ("workers", "worker_1")]));
        // The group is part of the identity, and so is where the name ends.
        assert_ne!(set(&[("a", "x")]), set(&[("b", "x")]));
        assert_ne!(set(&[("ab", "c")]), set(&[("a", "bc")]));
        assert_eq!(set(&[]), set(&[]));
    }

    #[test]
    fn the_first_poll_asks_and_then_the_answer_is_kept_for_ten_minutes() {
        let t0 = Instant::now();
        let mut policy = RefreshPolicy::default();
        assert_eq!(policy.due(set(&WEB), t0), Some(Reason::First));
        policy.called(t0, true);
        for secs in [1, 10, 60, 599] {
            assert_eq!(policy.due(set(&WEB), after(t0, secs)), None, "{secs} s");
        }
        assert_eq!(policy.due(set(&WEB), after(t0, 600)), Some(Reason::Refresh));
        policy.called(after(t0, 600), true);
        assert_eq!(policy.due(set(&WEB), after(t0, 601)), None);
        assert_eq!(
            policy.due(set(&WEB), after(t0, 1_200)),
            Some(Reason::Refresh)
        );
    }

    #[test]
    fn until_the_first_call_every_poll_is_a_first() {
        let t0 = Instant::now();
        let mut policy = RefreshPolicy::default();
        assert_eq!(policy.due(set(&WEB), t0), Some(Reason::First));
        // No call was made (the caller gave up): the next poll asks again.
        assert_eq!(policy.due(set(&WEB), after(t0, 1)), Some(Reason::First));
        // A failed poll before the first call changes nothing.
        policy.poll_failed();
        assert_eq!(policy.due(set(&WEB), after(t0, 2)), Some(Reason::First));
        policy.called(after(t0, 2), true);
        assert_eq!(policy.due(set(&WEB), after(t0, 3)), None);
    }

    #[test]
    fn a_changed_set_of_processes_asks_at_once() {
        let t0 = Instant::now();
        let mut policy = RefreshPolicy::default();
        policy.due(set(&WEB), t0);
        policy.called(t0, true);
        assert_eq!(policy.due(set(&WEB), after(t0, 10)), None);
        // `supervisorctl update` added a program.
        let more = [WEB[0], WEB[1], ("late", "late")];
        assert_eq!(
            policy.due(set(&more), after(t0, 20)),
            Some(Reason::ProcessesChanged)
        );
        policy.called(after(t0, 20), true);
        assert_eq!(policy.due(set(&more), after(t0, 30)), None);
        // ...and removed one: a change too.
        assert_eq!(
            policy.due(set(&more[1..]), after(t0, 40)),
            Some(Reason::ProcessesChanged)
        );
        policy.called(after(t0, 40), true);
        // The ten minutes count from the last answer.
        assert_eq!(policy.due(set(&more[1..]), after(t0, 639)), None);
        assert_eq!(
            policy.due(set(&more[1..]), after(t0, 640)),
            Some(Reason::Refresh)
        );
    }

    #[test]
    fn a_target_that_comes_back_is_asked_again() {
        let t0 = Instant::now();
        let mut policy = RefreshPolicy::default();
        policy.due(set(&WEB), t0);
        policy.called(t0, true);
        policy.poll_failed();
        policy.poll_failed();
        assert_eq!(
            policy.due(set(&WEB), after(t0, 30)),
            Some(Reason::Reconnected)
        );
        policy.called(after(t0, 30), true);
        assert_eq!(policy.due(set(&WEB), after(t0, 31)), None);
    }

    #[test]
    fn a_failed_call_is_retried_after_a_minute_or_at_the_next_change() {
        let t0 = Instant::now();
        let mut policy = RefreshPolicy::default();
        policy.due(set(&WEB), t0);
        policy.called(t0, false);
        assert_eq!(policy.due(set(&WEB), after(t0, 1)), None);
        assert_eq!(policy.due(set(&WEB), after(t0, 59)), None);
        assert_eq!(policy.due(set(&WEB), after(t0, 60)), Some(Reason::Retry));
        policy.called(after(t0, 60), false);
        // A change does not wait for the retry.
        assert_eq!(
            policy.due(set(&WEB[..1]), after(t0, 61)),
            Some(Reason::ProcessesChanged)
        );
        policy.called(after(t0, 61), true);
        // Answered: back to the ten-minute refresh.
        assert_eq!(policy.due(set(&WEB[..1]), after(t0, 121)), None);
        assert_eq!(
            policy.due(set(&WEB[..1]), after(t0, 661)),
            Some(Reason::Refresh)
        );
    }

    #[test]
    fn a_clock_that_goes_backwards_waits_instead_of_asking() {
        let t0 = Instant::now();
        let later = after(t0, 100);
        let mut policy = RefreshPolicy::default();
        policy.due(set(&WEB), later);
        policy.called(later, true);
        assert_eq!(policy.due(set(&WEB), t0), None);
    }

    fn config(group: &str, name: &str, autostart: bool) -> ProcessConfig {
        ProcessConfig {
            name: name.into(),
            group: group.into(),
            autostart,
        }
    }

    fn process(group: &str, name: &str) -> MonitoredProcess {
        MonitoredProcess {
            info: ProcessInfo {
                name: name.into(),
                group: group.into(),
                ..Default::default()
            },
            status: Status::Down,
            autostart: None,
        }
    }

    #[test]
    fn each_process_gets_the_autostart_of_its_group_and_name() {
        // In supervisord's order (by name), with same-named processes in two groups.
        let known = Autostarts::new(vec![
            config("b", "api", false),
            config("a", "api", true),
            config("workers", "worker_00", false),
            config("web", "web", true),
        ]);
        assert_eq!(known.get("a", "api"), Some(true));
        assert_eq!(known.get("b", "api"), Some(false));
        assert_eq!(known.get("web", "web"), Some(true));
        assert_eq!(known.get("web", "api"), None);
        let mut processes = vec![
            process("web", "web"),
            process("b", "api"),
            process("workers", "worker_00"),
            process("late", "late"),
        ];
        processes[3].autostart = Some(true);
        known.apply(&mut processes);
        let autostart: Vec<_> = processes.iter().map(|p| p.autostart).collect();
        assert_eq!(autostart, [Some(true), Some(false), Some(false), None]);
    }

    fn answer(configs: Vec<ProcessConfig>) -> Result<ConfigInfo, ConfigInfoError> {
        Ok(ConfigInfo {
            processes: configs,
            problems: Vec::new(),
        })
    }

    fn refused() -> Result<ConfigInfo, ConfigInfoError> {
        Err(ConfigInfoError::Transport(TransportError::Connect {
            reason: "refused".into(),
        }))
    }

    #[test]
    fn a_failed_call_keeps_the_last_answer() {
        let t0 = Instant::now();
        let mut state = ConfigInfoState::default();
        state.record("t", refused(), t0);
        assert!(state.known().is_none(), "nothing known before an answer");
        state.record("t", answer(vec![config("web", "web", true)]), after(t0, 60));
        state.record("t", refused(), after(t0, 660));
        assert_eq!(state.known().and_then(|k| k.get("web", "web")), Some(true));
        // The failure is retried a minute later, not at the next poll.
        let web = set(&[("web", "web")]);
        state.policy.due(web, after(t0, 661));
        assert_eq!(state.policy.due(web, after(t0, 662)), None);
        assert_eq!(state.policy.due(web, after(t0, 720)), Some(Reason::Retry));
        // An answer replaces the last one whole: a program no longer in it has no autostart.
        state.record(
            "t",
            answer(vec![config("api", "api", false)]),
            after(t0, 720),
        );
        let known = state.known().cloned().unwrap_or_default();
        assert_eq!(known.get("web", "web"), None);
        assert_eq!(known.get("api", "api"), Some(false));
    }

    #[test]
    fn failures_and_problems_are_remembered_to_be_logged_once() {
        let t0 = Instant::now();
        let mut state = ConfigInfoState::default();
        state.record("t", refused(), t0);
        let first = state.last_failure.clone();
        assert_eq!(
            first.as_deref(),
            Some("getAllConfigInfo failed: cannot connect: refused")
        );
        state.record("t", refused(), after(t0, 60));
        assert_eq!(state.last_failure, first);
        let with_problem = Ok(ConfigInfo {
            processes: Vec::new(),
            problems: vec!["entry #1: an int instead of a struct, skipped".into()],
        });
        state.record("t", with_problem, after(t0, 120));
        assert_eq!(state.last_failure, None);
        assert_eq!(state.last_problems.len(), 1);
    }
}
