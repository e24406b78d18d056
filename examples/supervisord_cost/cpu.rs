//! CPU clocks for both sides, and what machine the figures come from.

use std::fs;

use anyhow::{bail, Context, Result};

/// This process's CPU time (user + system, every thread) in nanoseconds: the clock Python's
/// `time.process_time` reads, so the receiver and the Python baseline are timed alike.
pub fn process_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, exclusively borrowed timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
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

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ).
pub fn clock_ticks_per_second() -> Result<u64> {
    // SAFETY: sysconf reads a configuration value and has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    match u64::try_from(hz) {
        Ok(hz) if hz > 0 => Ok(hz),
        _ => bail!("sysconf(_SC_CLK_TCK) gave {hz}"),
    }
}

/// Another process's own CPU time (utime + stime, children excluded), in clock ticks.
pub fn other_process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so fields are counted from
    // the last `)`. utime and stime are fields 14 and 15, i.e. the 12th and 13th after it.
    let (_, rest) = stat
        .rsplit_once(')')
        .with_context(|| format!("unexpected {path}"))?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no utime/stime in {path}"))
    };
    let utime = next()?;
    let stime = next()?;
    Ok(utime + stime)
}

/// `model name` from /proc/cpuinfo, and the CPUs this process may run on.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
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
