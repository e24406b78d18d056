//! CPU clocks for both sides, and what machine the figures come from.

use std::fs;

pub use crate::bench::{clock_ticks_per_second, machine, stat_ticks};

/// This process's CPU time (user + system, every thread) in nanoseconds: the clock Python's
/// `time.process_time` reads, so the receiver and the Python baseline are timed alike.
pub fn process_cpu_ns() -> u64 {
    crate::bench::clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or(0)
}

/// What one reading of [`process_cpu_ns`] costs, itself in CPU nanoseconds: the poll loop
/// reads it twice per poll, and that share is inside the receiver's figure.
pub fn clock_read_ns() -> f64 {
    const READS: u32 = 100_000;
    let start = process_cpu_ns();
    for _ in 0..READS {
        std::hint::black_box(process_cpu_ns());
    }
    process_cpu_ns().saturating_sub(start) as f64 / f64::from(READS)
}

/// Client-side TCP sockets towards `port` that the kernel still lists, in any state: one when
/// the loop reused its connection, about one per poll (TIME_WAIT) when it did not.
pub fn client_sockets_to(port: u16) -> usize {
    let wanted = format!(":{port:04X}");
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    // `sl local_address rem_address st ...`
                    line.split_whitespace()
                        .nth(2)
                        .is_some_and(|remote| remote.ends_with(&wanted))
                })
                .count()
        })
        .sum()
}
