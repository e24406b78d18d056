//! supervisord's clock against the receiver's.
//!
//! supervisord times what it reports by its own clock (`now`, a process's `start` and `stop`,
//! in whole seconds), and that clock can be off: a host whose time synchronization broke, a
//! container with a faked clock, a clock stepped back by hand or by NTP. The receiver measures
//! how far off at each poll ([`offset_seconds`], the `supervisord.clock.offset` gauge), puts
//! the state changes it reports on its own clock ([`record_time_unix_nano`]), and says once
//! when supervisord's clock is far off or goes back ([`ClockWatch`]). Process uptimes are kept
//! across clock steps by the vocabulary's rule (`ProcessInfo::uptime_across_clock_steps`),
//! which the change tracker applies.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::telemetry::RateLimitedLog;
use crate::vocab::ProcessInfo;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Past this many seconds apart, supervisord's clock is worth a warning: well beyond what time
/// synchronization leaves (milliseconds) and the offset's own resolution (±1 s), and small
/// enough to catch a clock an hour off (a time zone mistake) or a few minutes off (Datadog's
/// intake refuses logs much older or newer than now).
pub const SKEW_WARNING_SECONDS: i64 = 60;

/// At most one line per kind of clock warning per target in this window: a clock that keeps
/// stepping back, or an offset that hovers around the threshold, logs six lines an hour, not one
/// per poll.
const WARNING_WINDOW: Duration = Duration::from_secs(600);

/// One successful poll as the change tracker times it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollClock {
    /// When the poll started, by the receiver's wall clock: the time of its points, and the
    /// latest time a state change it finds can be given.
    pub time_unix_nano: u64,
    /// The receiver's monotonic clock when the reply came ([`monotonic_nanos`]): uptimes that
    /// supervisord's clock cannot give are carried by it.
    pub monotonic_nanos: u64,
    /// supervisord's clock minus the receiver's ([`offset_seconds`]); `None` when the reply had
    /// no process.
    pub offset_seconds: Option<i64>,
}

/// The receiver's monotonic clock in nanoseconds since the first call in this process: only
/// differences mean anything. It never goes back, whatever the wall clocks do.
pub fn monotonic_nanos() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// supervisord's `now` minus the receiver's wall clock when the reply came, in whole seconds;
/// `None` when the reply had no process (`now` comes with each process's information).
///
/// Both clocks are read as whole seconds (supervisord truncates its own), so the offset is
/// exact to ±1 s: 0 or -1 between two synchronized clocks, depending on whether a second began
/// between supervisord's reading and the reply's arrival. The latest `now` of the reply is
/// taken (supervisord reads its clock once per process).
pub fn offset_seconds(processes: &[ProcessInfo], replied_unix_nano: u64) -> Option<i64> {
    let now = processes.iter().map(|p| p.now).filter(|n| *n > 0).max()?;
    let replied = i64::try_from(replied_unix_nano / NANOS_PER_SECOND).ok()?;
    Some(now.saturating_sub(replied))
}

/// The time of a state change found by a poll, on the receiver's clock: supervisord's time of
/// it (`seconds`, a start or stop time; 0 when it gave none), moved by the poll's `offset`,
/// then kept within what the receiver observed: not before the previous poll
/// (`since_unix_nano`), which did not see the change, and not after this one, which did. With
/// no time from supervisord, this poll's time.
///
/// So a record is never an hour in the future or the past because supervisord's clock is,
/// and a wrong offset (a step of supervisord's clock between its record and the poll) can
/// misplace it by one poll interval at most.
pub fn record_time_unix_nano(
    seconds: i64,
    offset: Option<i64>,
    since_unix_nano: u64,
    poll: u64,
) -> u64 {
    if seconds <= 0 {
        return poll;
    }
    let corrected = seconds.saturating_sub(offset.unwrap_or(0));
    let nanos = u64::try_from(corrected)
        .unwrap_or(0)
        .saturating_mul(NANOS_PER_SECOND);
    // The receiver's own clock may have stepped back between the two polls: then this poll's
    // time is all that is known.
    nanos.clamp(since_unix_nano.min(poll), poll)
}

/// Something about supervisord's clock worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockWarning {
    /// Its offset went past [`SKEW_WARNING_SECONDS`] either way.
    Skewed { offset_seconds: i64 },
    /// Its `now` went back since the previous poll; `step_seconds` is how far (the change of
    /// offset, negative), `offset_seconds` where it is now.
    SteppedBack {
        step_seconds: i64,
        offset_seconds: i64,
    },
    /// Its offset came back within [`SKEW_WARNING_SECONDS`] (the end of a `Skewed` episode).
    BackInLine { offset_seconds: i64 },
}

/// What one target's clock did over its polls: warns once per episode (an offset past
/// [`SKEW_WARNING_SECONDS`] until it comes back, or a step back), at most once per kind per
/// 10 minutes.
#[derive(Debug)]
pub struct ClockWatch {
    /// supervisord's latest `now` and the offset at the previous poll that had a process.
    last: Option<(i64, i64)>,
    /// In an episode of a large offset.
    skewed: bool,
    logs: RateLimitedLog,
}

impl Default for ClockWatch {
    fn default() -> Self {
        ClockWatch {
            last: None,
            skewed: false,
            logs: RateLimitedLog::new(WARNING_WINDOW),
        }
    }
}

impl ClockWatch {
    /// What a successful poll's clock reading (supervisord's latest `now` and the offset, both
    /// `None` without a process) says, before rate limiting.
    pub fn observe(&mut self, now: Option<i64>, offset: Option<i64>) -> Vec<ClockWarning> {
        let mut warnings = Vec::new();
        let (Some(now), Some(offset)) = (now, offset) else {
            return warnings;
        };
        if let Some((last_now, last_offset)) = self.last {
            if now < last_now {
                // The change of offset is the step (the change of `now` also holds the time
                // between the polls); the smaller of the two, should the receiver's own clock
                // have moved too.
                warnings.push(ClockWarning::SteppedBack {
                    step_seconds: offset
                        .saturating_sub(last_offset)
                        .min(now.saturating_sub(last_now)),
                    offset_seconds: offset,
                });
            }
        }
        let skewed = offset.saturating_abs() > SKEW_WARNING_SECONDS;
        if skewed && !self.skewed {
            warnings.push(ClockWarning::Skewed {
                offset_seconds: offset,
            });
        } else if !skewed && self.skewed {
            warnings.push(ClockWarning::BackInLine {
                offset_seconds: offset,
            });
        }
        self.skewed = skewed;
        self.last = Some((now, offset));
        warnings
    }

    /// Observes a successful poll's reply and logs what it says about target `target_name`.
    pub fn check(&mut self, target_name: &str, processes: &[ProcessInfo], offset: Option<i64>) {
        let now = processes.iter().map(|p| p.now).filter(|n| *n > 0).max();
        for warning in self.observe(now, offset) {
            self.log(target_name, warning);
        }
    }

    fn log(&self, target_name: &str, warning: ClockWarning) {
        match warning {
            ClockWarning::Skewed { offset_seconds } => crate::rate_limited!(
                self.logs,
                warn,
                "supervisord_clock_skewed",
                target_name,
                offset_seconds,
                "supervisord's clock is {} the receiver's (more than {SKEW_WARNING_SECONDS} s): \
                 its state changes are put on the receiver's clock, and its start and stop \
                 times are off by as much; check the time synchronization of its host",
                apart(offset_seconds)
            ),
            ClockWarning::SteppedBack {
                step_seconds,
                offset_seconds,
            } => crate::rate_limited!(
                self.logs,
                warn,
                "supervisord_clock_stepped_back",
                target_name,
                step_seconds,
                offset_seconds,
                "supervisord's clock went back {} s since the previous poll (it is now {} the \
                 receiver's): uptimes go on by the receiver's clock",
                step_seconds.saturating_abs(),
                apart(offset_seconds)
            ),
            ClockWarning::BackInLine { offset_seconds } => tracing::info!(
                event = "supervisord_clock_in_line",
                target_name,
                offset_seconds,
                "supervisord's clock is within {SKEW_WARNING_SECONDS} s of the receiver's again"
            ),
        }
    }
}

/// "3600 s ahead of", "5 s behind", "level with".
fn apart(offset_seconds: i64) -> String {
    match offset_seconds {
        0 => "level with".to_string(),
        o if o > 0 => format!("{o} s ahead of"),
        o => format!("{} s behind", o.saturating_abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;

    fn at(now: i64) -> ProcessInfo {
        ProcessInfo {
            now,
            ..Default::default()
        }
    }

    #[test]
    fn the_offset_is_supervisords_latest_now_minus_the_reply_time_in_seconds() {
        let replied = 1_700_000_000 * SECOND + 999_000_000;
        assert_eq!(offset_seconds(&[at(1_700_000_000)], replied), Some(0));
        assert_eq!(
            offset_seconds(&[at(1_700_003_599), at(1_700_003_600)], replied),
            Some(3_600)
        );
        assert_eq!(
            offset_seconds(&[at(1_699_996_400)], replied + SECOND),
            Some(-3_601)
        );
        // No process, or none with a time: no offset.
        assert_eq!(offset_seconds(&[], replied), None);
        assert_eq!(offset_seconds(&[at(0)], replied), None);
    }

    #[test]
    fn record_times_are_corrected_by_the_offset_and_kept_within_the_observation() {
        const T: i64 = 1_700_000_000;
        let since = T as u64 * SECOND;
        let poll = (T as u64 + 10) * SECOND;
        let expected = (T as u64 + 5) * SECOND;
        // supervisord an hour ahead, or behind: its stop time is put 5 s into the window.
        assert_eq!(
            record_time_unix_nano(T + 5 + 3_600, Some(3_600), since, poll),
            expected
        );
        assert_eq!(
            record_time_unix_nano(T + 5 - 3_600, Some(-3_600), since, poll),
            expected
        );
        // Outside the window (supervisord's clock stepped between its record and the poll):
        // the window's edges.
        assert_eq!(record_time_unix_nano(T + 3_600, Some(0), since, poll), poll);
        assert_eq!(
            record_time_unix_nano(T - 3_600, Some(0), since, poll),
            since
        );
        // No time from supervisord: the poll's time; no offset known: the time as is.
        assert_eq!(record_time_unix_nano(0, Some(3_600), since, poll), poll);
        assert_eq!(record_time_unix_nano(T + 5, None, since, poll), expected);
        // The receiver's own clock went back between the polls.
        assert_eq!(
            record_time_unix_nano(T + 5, Some(0), poll + SECOND, poll),
            poll
        );
    }

    #[test]
    fn a_large_offset_warns_once_per_episode() {
        let mut watch = ClockWatch::default();
        assert_eq!(watch.observe(Some(1_000), Some(0)), []);
        assert_eq!(
            watch.observe(Some(4_601), Some(3_600)),
            [ClockWarning::Skewed {
                offset_seconds: 3_600
            }]
        );
        assert_eq!(watch.observe(Some(4_602), Some(3_600)), []);
        assert_eq!(watch.observe(None, None), [], "no process: nothing known");
        assert_eq!(watch.observe(Some(4_603), Some(3_599)), []);
        assert_eq!(
            watch.observe(Some(4_604), Some(60)),
            [ClockWarning::BackInLine { offset_seconds: 60 }]
        );
        assert_eq!(
            watch.observe(Some(4_605), Some(-61)),
            [ClockWarning::Skewed {
                offset_seconds: -61
            }]
        );
    }

    #[test]
    fn a_step_back_warns_with_its_size() {
        let mut watch = ClockWatch::default();
        assert_eq!(watch.observe(Some(10_000), Some(0)), []);
        assert_eq!(
            watch.observe(Some(6_401), Some(-3_600)),
            [
                ClockWarning::SteppedBack {
                    step_seconds: -3_600,
                    offset_seconds: -3_600
                },
                ClockWarning::Skewed {
                    offset_seconds: -3_600
                }
            ]
        );
        // The clock runs on from there: no new step.
        assert_eq!(watch.observe(Some(6_402), Some(-3_600)), []);
        // A small step back is a step too, within the offset's threshold.
        assert_eq!(
            watch.observe(Some(6_400), Some(-3_603)),
            [ClockWarning::SteppedBack {
                step_seconds: -3,
                offset_seconds: -3_603
            }]
        );
    }
}
