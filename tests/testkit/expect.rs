//! Content checks on what the sink received from one poll, shared by the end-to-end tests.

use std::collections::{BTreeMap, BTreeSet};

use super::otlp_sink::Poll;
use super::{default_status, PROCESS_STATES, STATUSES, SUPERVISOR_STATES};

pub const PROCESS: &str = "supervisord_process";
pub const GROUP: &str = "supervisord_group";

/// The processes of [`super::supervisord::mixed_programs`]: name, group, the states a poll may
/// see. `backoff` is between retries (STARTING) for a moment each cycle.
pub fn mixed_processes() -> Vec<(&'static str, &'static str, &'static [&'static str])> {
    vec![
        ("running", "running", &["RUNNING"]),
        ("stopped", "stopped", &["STOPPED"]),
        ("exited", "exited", &["EXITED"]),
        ("fatal", "fatal", &["FATAL"]),
        ("backoff", "backoff", &["BACKOFF", "STARTING"]),
        ("starting", "starting", &["STARTING"]),
        ("worker_a", "workers", &["RUNNING"]),
        ("worker_b", "workers", &["RUNNING"]),
    ]
}

pub fn mixed_names() -> BTreeSet<String> {
    mixed_processes()
        .into_iter()
        .map(|(n, _, _)| n.to_string())
        .collect()
}

/// Checks that `metric` has one point per value of `key` (with `base` attributes), that exactly
/// one is 1 and the others 0, and returns the value that is 1.
pub fn one_hot(
    poll: &Poll,
    metric: &str,
    base: &[(&str, &str)],
    key: &str,
    values: &[&str],
) -> String {
    let mut hot = Vec::new();
    for value in values {
        let mut attrs = base.to_vec();
        attrs.push((key, value));
        match poll.expect(metric, &attrs) {
            1 => hot.push(value.to_string()),
            0 => {}
            other => panic!(
                "{metric} {attrs:?} = {other}, expected 0 or 1\n{}",
                poll.describe()
            ),
        }
    }
    let all = poll
        .metric(metric)
        .into_iter()
        .filter(|p| p.has_attrs(base))
        .count();
    assert_eq!(
        all,
        values.len(),
        "{metric} {base:?}: expected one point per {key} value\n{}",
        poll.describe()
    );
    assert_eq!(
        hot.len(),
        1,
        "{metric} {base:?}: expected exactly one {key} at 1, got {hot:?}\n{}",
        poll.describe()
    );
    hot.remove(0)
}

/// The state one-hot of one process.
pub fn process_state(poll: &Poll, name: &str) -> String {
    one_hot(
        poll,
        "supervisord.process.state",
        &[(PROCESS, name)],
        "state",
        &PROCESS_STATES,
    )
}

/// The status one-hot of one process.
pub fn process_status(poll: &Poll, name: &str) -> String {
    one_hot(
        poll,
        "supervisord.process.status",
        &[(PROCESS, name)],
        "status",
        &STATUSES,
    )
}

/// `supervisord.process.count` by status.
pub fn counts(poll: &Poll) -> BTreeMap<String, i64> {
    STATUSES
        .iter()
        .map(|s| {
            (
                s.to_string(),
                poll.expect("supervisord.process.count", &[("status", s)]),
            )
        })
        .collect()
}

/// Builds the expected counts map from (status, count) pairs; missing statuses are 0.
pub fn counts_of(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    STATUSES
        .iter()
        .map(|s| {
            let n = pairs
                .iter()
                .find(|(k, _)| k == s)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            (s.to_string(), n)
        })
        .collect()
}

/// A poll of a connected target: can_connect 1 and supervisord itself RUNNING.
pub fn connected(poll: &Poll) {
    assert_eq!(
        poll.expect("supervisord.can_connect", &[]),
        1,
        "{}",
        poll.describe()
    );
    let state = one_hot(poll, "supervisord.state", &[], "state", &SUPERVISOR_STATES);
    assert_eq!(state, "RUNNING");
}

/// Everything a poll of the mixed program set must show, with the default status mapping.
/// Returns each process's observed state.
pub fn mixed_poll(poll: &Poll) -> BTreeMap<String, String> {
    connected(poll);
    assert_eq!(poll.process_names(), mixed_names(), "{}", poll.describe());
    let mut observed = BTreeMap::new();
    let mut expected_counts: BTreeMap<String, i64> = counts_of(&[]);
    for (name, group, allowed) in mixed_processes() {
        let who = [(PROCESS, name)];
        for p in poll.points.iter().filter(|p| p.has_attrs(&who)) {
            assert_eq!(
                p.attr(GROUP),
                Some(group),
                "{name}: group attribute on {}",
                p.metric
            );
        }
        let state = process_state(poll, name);
        assert!(
            allowed.contains(&state.as_str()),
            "{name} is {state}, expected one of {allowed:?}"
        );
        let status = process_status(poll, name);
        assert_eq!(status, default_status(&state), "{name} ({state}) status");
        *expected_counts.entry(status).or_default() += 1;

        let uptime = poll.expect("supervisord.process.uptime", &who);
        let start_time = poll.value("supervisord.process.start_time", &who);
        match name {
            // RUNNING is reached only after startsecs=1, so a whole second has passed.
            "running" | "worker_a" | "worker_b" => assert!(uptime > 0, "{name} uptime {uptime}"),
            "backoff" => assert!(uptime >= 0, "{name} uptime {uptime}"),
            _ => assert_eq!(uptime, 0, "{name} uptime"),
        }
        if name == "stopped" {
            assert_eq!(
                start_time, None,
                "a never-started process has no start_time"
            );
        } else {
            let start = start_time.unwrap_or_else(|| panic!("{name} has no start_time"));
            assert!(start > 1_600_000_000, "{name} start_time {start}");
        }
        let exit_status = poll.expect("supervisord.process.exit_status", &who);
        match name {
            // supervisord records the exit status only of a process that got past startsecs.
            "exited" => assert_eq!(exit_status, 3, "exited exits with 3"),
            _ => assert_eq!(exit_status, 0, "{name} exit_status"),
        }
        observed.insert(name.to_string(), state);
    }
    assert_eq!(
        counts(poll),
        expected_counts,
        "counts from the observed states"
    );
    observed
}

/// No point of the poll names a process outside `names`.
pub fn only_processes(poll: &Poll, names: &[&str]) {
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    assert_eq!(poll.process_names(), want, "{}", poll.describe());
}

/// The longest time between two consecutive polls (sorted `(start time, value)` pairs), in
/// nanoseconds.
pub fn longest_gap(polls: &[(u64, i64)]) -> u64 {
    polls
        .windows(2)
        .map(|w| match w {
            [(a, _), (b, _)] => b.saturating_sub(*a),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}
