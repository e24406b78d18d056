//! The printed figures: order statistics of the latencies, per mode and per kind of change.

use std::time::Duration;

use crate::measure::{ms, Kind, Mode, ModeRun, Phase, Sample};

/// min, median, p99, max and count of some latencies.
pub struct Summary {
    pub count: usize,
    pub min: Duration,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// `None` without values. The median is the middle value (the mean of the two middle ones
    /// for an even count); p99 is the nearest rank, the ⌈0.99·n⌉-th smallest (with 120 values,
    /// the second largest).
    pub fn of(values: impl IntoIterator<Item = Duration>) -> Option<Summary> {
        let mut v: Vec<Duration> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort();
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        };
        let rank = (n * 99).div_ceil(100).max(1);
        Some(Summary {
            count: n,
            min: v[0],
            median,
            p99: v[rank - 1],
            max: v[n - 1],
        })
    }
}

fn of_phase(run: &ModeRun, phase: Phase) -> impl Iterator<Item = &Sample> {
    run.samples.iter().filter(move |s| s.phase == phase)
}

fn singles(run: &ModeRun) -> impl Iterator<Item = &Sample> {
    of_phase(run, Phase::Single)
}

pub fn single_summary(run: &ModeRun) -> Option<Summary> {
    Summary::of(singles(run).map(|s| s.latency))
}

/// One line of the table; the last column names the states of the records that reported the
/// changes.
fn row(label: &str, samples: &[&Sample]) {
    let Some(all) = Summary::of(samples.iter().map(|s| s.latency)) else {
        return;
    };
    let seen = Summary::of(samples.iter().filter_map(|s| s.to_receiver));
    let after = Summary::of(
        samples
            .iter()
            .filter_map(|s| s.to_receiver.map(|r| s.latency.saturating_sub(r))),
    );
    let cell = |s: &Option<Summary>, f: fn(&Summary) -> Duration| {
        s.as_ref()
            .map_or_else(|| "-".to_owned(), |s| format!("{:.1}", ms(f(s))))
    };
    println!(
        "{label:<17} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>8} {:>8} | {:>8} | {}",
        all.count,
        ms(all.min),
        ms(all.median),
        ms(all.p99),
        ms(all.max),
        cell(&seen, |s| s.median),
        cell(&seen, |s| s.p99),
        cell(&after, |s| s.median),
        states_of(samples),
    );
}

pub fn print(runs: &[ModeRun]) {
    println!(
        "{:<17} {:>5} {:>8} {:>8} {:>8} {:>8} | {:>17} | {:>8} |",
        "", "", "", "", "", "", "seen by receiver", "then to"
    );
    println!(
        "{:<17} {:>5} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} | reported as",
        "ms", "n", "min", "median", "p99", "max", "median", "p99", "sink med"
    );
    for run in runs {
        let label = run.mode.label();
        row(label, &singles(run).collect::<Vec<_>>());
        for kind in [Kind::Stop, Kind::Start] {
            let of_kind: Vec<&Sample> = singles(run).filter(|s| s.kind == kind).collect();
            row(&format!("  {}", kind.label()), &of_kind);
        }
        let crash: Vec<&Sample> = of_phase(run, Phase::Crash).collect();
        row(&format!("{label} kill"), &crash);
        let burst: Vec<&Sample> = of_phase(run, Phase::Burst).collect();
        row(&format!("{label} group burst"), &burst);
    }
    println!();
    let median = |mode: Mode| {
        runs.iter()
            .find(|r| r.mode == mode)
            .and_then(single_summary)
    };
    if let (Some(push), Some(poll)) = (median(Mode::Push), median(Mode::Poll)) {
        println!(
            "poll/push: {:.1}x the median, {:.1}x the p99",
            ms(poll.median) / ms(push.median),
            ms(poll.p99) / ms(push.p99)
        );
    }
    if let Some(push) = median(Mode::Push) {
        let met = if push.p99 < Duration::from_millis(100) {
            "met"
        } else {
            "not met"
        };
        println!(
            "goal: push p99 < 100 ms: {met} (p99 {:.1} ms over {} changes)",
            ms(push.p99),
            push.count
        );
    }
    for run in runs {
        println!();
        print_checks(run);
    }
}

/// The states that reported the changes, e.g. `STOPPING` or `STOPPED 28, STOPPING 2`.
fn states_of(samples: &[&Sample]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in samples {
        *counts.entry(s.state.as_str()).or_default() += 1;
    }
    if counts.len() == 1 {
        return counts.keys().next().copied().unwrap_or("").to_owned();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lost and duplicated records, and what the receiver and supervisord complained of.
fn print_checks(run: &ModeRun) {
    let label = run.mode.label();
    println!(
        "{label}: {} logs requests, {} records after the first change; {} duplicated",
        run.requests, run.records, run.duplicates
    );
    let what = match run.mode {
        Mode::Push => "every transition, each once",
        Mode::Poll => "one record per change, from the state before it to the settled one",
    };
    let off: Vec<String> = run
        .transitions
        .iter()
        .filter(|(_, (got, want))| got != want)
        .map(|((from, to), (got, want))| format!("{from}->{to} {got} (expected {want})"))
        .collect();
    if off.is_empty() {
        let total: usize = run.transitions.values().map(|(got, _)| got).sum();
        println!("{label}: records as expected ({what}): {total}");
    } else {
        println!(
            "{label}: records NOT as expected ({what}): {}",
            off.join(", ")
        );
    }
    if run.warnings.is_empty() {
        println!("{label}: no warnings from the receiver or supervisord");
    }
    for w in &run.warnings {
        println!("{label}: {w}");
    }
}

/// Every sample, one line each, with a header.
pub fn csv(runs: &[ModeRun]) -> String {
    let mut out = String::from("mode,phase,kind,state,latency_ms,seen_ms\n");
    for run in runs {
        for s in &run.samples {
            let phase = match s.phase {
                Phase::Single => "single",
                Phase::Crash => "crash",
                Phase::Burst => "burst",
            };
            let seen = s
                .to_receiver
                .map_or_else(String::new, |d| format!("{:.3}", ms(d)));
            out.push_str(&format!(
                "{},{phase},{},{},{:.3},{seen}\n",
                run.mode.label(),
                s.kind.label(),
                s.state,
                ms(s.latency),
            ));
        }
    }
    out
}
