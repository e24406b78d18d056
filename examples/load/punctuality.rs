//! Punctuality of the polls one target received over a window: the fleet's verdict on
//! "no poll late by more than 1 s". Pure functions on CLOCK_MONOTONIC timestamps.

/// A window of CLOCK_MONOTONIC and the interval polls are due at.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: u64,
    pub end: u64,
    pub interval: u64,
}

impl Window {
    /// A poll is late when it comes more than interval + 1 s after the previous one.
    fn late_after(&self) -> u64 {
        self.interval + 1_000_000_000
    }

    /// Polls missing between two polls `gap` apart: the gap in intervals, rounded, minus one.
    fn missed_between(&self, gap: u64) -> u64 {
        let interval = self.interval.max(1);
        ((gap + interval / 2) / interval).saturating_sub(1)
    }

    /// Polls that were due more than 1 s before the window ended, `overdue` after the last one.
    fn missed_at_end(&self, overdue: u64) -> u64 {
        overdue.saturating_sub(1_000_000_000) / self.interval.max(1)
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct TargetStats {
    pub served: u64,
    pub late: u64,
    pub missed: u64,
    pub max_gap: u64,
    pub connects: u64,
}

/// The statistics of one target: `polls` and `connects` are arrival times, ascending. The gap
/// before the first poll in the window is measured from the poll before the window when there
/// was one, from the window start otherwise; a last poll older than interval + 1 s at the end
/// of the window counts as one late poll (it is overdue). Missed polls are counted in each
/// gap, so a run needs no assumption on when each target's schedule started.
pub fn target_stats(polls: &[u64], connects: &[u64], window: &Window) -> TargetStats {
    let mut stats = TargetStats::default();
    let mut previous = polls
        .iter()
        .rev()
        .find(|&&t| t < window.start)
        .copied()
        .unwrap_or(window.start);
    for &t in polls
        .iter()
        .filter(|&&t| t >= window.start && t < window.end)
    {
        let gap = t.saturating_sub(previous);
        stats.served += 1;
        stats.max_gap = stats.max_gap.max(gap);
        if gap > window.late_after() {
            stats.late += 1;
        }
        stats.missed += window.missed_between(gap);
        previous = t;
    }
    let overdue = window.end.saturating_sub(previous);
    stats.max_gap = stats.max_gap.max(overdue);
    if overdue > window.late_after() {
        stats.late += 1;
    }
    stats.missed += window.missed_at_end(overdue);
    stats.connects = connects
        .iter()
        .filter(|&&t| t >= window.start && t < window.end)
        .count() as u64;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn late_polls_and_gaps() {
        let window = Window {
            start: 100 * S,
            end: 130 * S,
            interval: 10 * S,
        };
        // On time: one poll before the window, three in it.
        let on_time = target_stats(&[95 * S, 105 * S, 115 * S, 125 * S], &[], &window);
        assert_eq!(
            on_time,
            TargetStats {
                served: 3,
                late: 0,
                missed: 0,
                max_gap: 10 * S,
                connects: 0
            }
        );
        // A 12 s gap, then nothing for the last 13 s of the window.
        let late = target_stats(&[95 * S, 105 * S, 117 * S], &[101 * S], &window);
        assert_eq!(late.served, 2);
        assert_eq!(late.late, 2);
        assert_eq!(late.missed, 1);
        assert_eq!(late.max_gap, 13 * S);
        assert_eq!(late.connects, 1);
        // A poll skipped in the middle, and a target never polled at all.
        let skipped = target_stats(&[95 * S, 115 * S, 125 * S], &[], &window);
        assert_eq!((skipped.served, skipped.late, skipped.missed), (2, 1, 1));
        let never = target_stats(&[], &[], &window);
        assert_eq!((never.served, never.late, never.missed), (0, 1, 2));
    }
}
