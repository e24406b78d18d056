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

/// A change in whether a target is due polls (`--soak`): the config dropped or took it
/// (SIGHUP), its supervisord went down or came back (a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Removed,
    Added,
    Down,
    Up,
}

/// The statistics of a target under churn: due polls only while it is in the config and its
/// supervisord up. `turns` are (time, turn), ascending; the target is in the config and up
/// before the first. Each span where it is due is judged as [`target_stats`] judges a window,
/// but from the moment it became due (a poll before that does not count as the previous one:
/// the schedule restarted). `served`, `connects` count the whole window: polls cost CPU
/// whether they were due or not. Returns the statistics and how long the target was due.
pub fn churned_stats(
    polls: &[u64],
    connects: &[u64],
    turns: &[(u64, Turn)],
    window: &Window,
) -> (TargetStats, u64) {
    let mut due_spans = Vec::new();
    let (mut in_config, mut up, mut since) = (true, true, 0u64);
    for &(at, turn) in turns {
        let was = in_config && up;
        match turn {
            Turn::Removed => in_config = false,
            Turn::Added => in_config = true,
            Turn::Down => up = false,
            Turn::Up => up = true,
        }
        let is = in_config && up;
        if was && !is {
            due_spans.push((since, at));
        } else if !was && is {
            since = at;
        }
    }
    if in_config && up {
        due_spans.push((since, u64::MAX));
    }
    let whole = target_stats(polls, connects, window);
    let mut stats = TargetStats {
        served: whole.served,
        connects: whole.connects,
        ..TargetStats::default()
    };
    let mut due = 0;
    for (since, until) in due_spans {
        let span = Window {
            start: since.max(window.start),
            end: until.min(window.end),
            interval: window.interval,
        };
        if span.start >= span.end {
            continue;
        }
        due += span.end - span.start;
        let from = polls.partition_point(|&t| t < since);
        let part = target_stats(polls.get(from..).unwrap_or(&[]), &[], &span);
        stats.late += part.late;
        stats.missed += part.missed;
        stats.max_gap = stats.max_gap.max(part.max_gap);
    }
    (stats, due)
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

    #[test]
    fn churn_excuses_what_was_not_due() {
        let window = Window {
            start: 100 * S,
            end: 200 * S,
            interval: 10 * S,
        };
        let every = |from: u64, to: u64| (from..to).step_by(10).map(|t| t * S).collect::<Vec<_>>();
        // No turns: the same verdict as target_stats.
        let steady = every(95, 200);
        assert_eq!(
            churned_stats(&steady, &[], &[], &window),
            (target_stats(&steady, &[], &window), 100 * S)
        );

        // Removed at 130, added again at 161 and polled 1.5 s later: nothing late or missed,
        // though the gap between 125 and 162.5 is 37.5 s.
        let mut polls = every(95, 130);
        polls.extend([
            162 * S + S / 2,
            172 * S + S / 2,
            182 * S + S / 2,
            192 * S + S / 2,
        ]);
        let turns = [(130 * S, Turn::Removed), (161 * S, Turn::Added)];
        let (stats, due) = churned_stats(&polls, &[], &turns, &window);
        assert_eq!((stats.served, stats.late, stats.missed), (7, 0, 0));
        assert_eq!(due, 30 * S + 39 * S);
        assert!(stats.max_gap <= 10 * S, "{}", stats.max_gap);
        // The same polls without the turns: late and missed.
        let (unexcused, _) = churned_stats(&polls, &[], &[], &window);
        assert!(
            unexcused.late >= 1 && unexcused.missed >= 2,
            "{unexcused:?}"
        );

        // Down 143..146 (a restart): the poll due at 145 failed, the next one at 155 is on
        // time from the restart; one that never comes after is late and missed.
        let mut polls = every(95, 140);
        polls.extend(every(155, 200));
        let turns = [(143 * S, Turn::Down), (146 * S, Turn::Up)];
        let (stats, _) = churned_stats(&polls, &[], &turns, &window);
        assert_eq!((stats.late, stats.missed), (0, 0));
        let (stats, _) = churned_stats(&every(95, 140), &[], &turns, &window);
        assert_eq!(stats.late, 1);
        assert_eq!(stats.missed, 5);

        // Removed before the window and never added back: nothing due, nothing late.
        let (stats, due) = churned_stats(&every(0, 50), &[], &[(50 * S, Turn::Removed)], &window);
        assert_eq!((stats.served, stats.late, stats.missed, due), (0, 0, 0, 0));
        // Restarted while out of the config, then added: due from the addition only.
        let turns = [
            (50 * S, Turn::Removed),
            (120 * S, Turn::Down),
            (123 * S, Turn::Up),
            (150 * S, Turn::Added),
        ];
        let (_, due) = churned_stats(&every(151, 200), &[], &turns, &window);
        assert_eq!(due, 50 * S);
    }
}
