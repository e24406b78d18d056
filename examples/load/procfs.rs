//! What the harness reads from the kernel: CPU time and memory of a process (`/proc`), the
//! machine, and the system-wide monotonic clock every role timestamps with, so times taken in
//! different processes compare directly.

use std::fmt;
use std::time::Duration;

/// CPU time a process has used (all its threads, not its reaped children).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The CPU used between `earlier` and this reading.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

#[derive(Debug)]
pub struct ProcError {
    what: String,
}

impl fmt::Display for ProcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for ProcError {}

fn error(what: String) -> ProcError {
    ProcError { what }
}

/// utime + stime from `/proc/<pid>/stat`, in clock ticks converted to time. The tick is 10 ms
/// on Linux: over a window of tens of seconds that is well under 1 % of what is measured.
pub fn cpu_time(pid: u32) -> Result<CpuTime, ProcError> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| error(format!("{path}: {e}")))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let after = text
        .rfind(')')
        .and_then(|at| text.get(at + 1..))
        .ok_or_else(|| error(format!("{path}: no ')' in '{text}'")))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let ticks = |index: usize| -> Result<u64, ProcError> {
        fields
            .get(index)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| error(format!("{path}: field {} unreadable", index + 3)))
    };
    let hz = clock_ticks_per_second();
    let to_duration = |t: u64| Duration::from_nanos(t.saturating_mul(1_000_000_000) / hz);
    Ok(CpuTime {
        user: to_duration(ticks(11)?),
        system: to_duration(ticks(12)?),
    })
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// Resident memory now (VmRSS) and its peak over the process's life (VmHWM), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

pub fn memory(pid: u32) -> Result<Memory, ProcError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| error(format!("{path}: {e}")))?;
    let kib = |key: &str| -> Result<u64, ProcError> {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .ok_or_else(|| error(format!("{path}: no {key}")))
    };
    Ok(Memory {
        rss_bytes: kib("VmRSS:")?,
        peak_rss_bytes: kib("VmHWM:")?,
    })
}

/// The CPU model and the number of CPUs this process may run on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
}

pub fn machine() -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Machine {
        cpu_model,
        cores,
        kernel,
    }
}

/// Nanoseconds on CLOCK_MONOTONIC: one clock for the whole machine, so the fleet's arrival
/// times and the orchestrator's measurement window can be compared across processes.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

/// Seconds since the Unix epoch (supervisord's `now`).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
