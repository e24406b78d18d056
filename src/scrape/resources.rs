//! What each running program of a local target costs: its process tree read from this host's
//! /proc ([`crate::host`]) by the pid supervisord reports, after each successful poll.
//!
//! The reads are synchronous: a /proc scan and a few small files per process, measured in
//! docs/performance.md ("Reading /proc"), small next to the poll itself, so they run in the
//! poll task rather than paying a hand-over to a blocking thread.
//!
//! A pid that vanished or was reused between supervisord's answer and the read yields nothing
//! for that program, never another program's numbers (the host module compares start times).
//! A program the receiver may not read is skipped, with one warning per target naming what is
//! needed, and again only when the reason changes.

use std::collections::HashMap;

use crate::host::{ProcReader, ReadError, TreeUsage};
use crate::scrape::outcome::{MonitoredProcess, ProgramResources, Resources};
use crate::settings::Temporality;

/// A program's CPU-time series: it starts with the process (a new pid is a new series) and,
/// under delta, goes on from where its previous point ended.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuSeries {
    pid: i64,
    reported_user: f64,
    reported_system: f64,
    reported_until_unix_nano: u64,
}

/// Reads the resources of one target's programs, poll after poll.
pub struct ResourceReader {
    /// `None` when /proc cannot be read at all (logged once at creation).
    proc: Option<ProcReader>,
    temporality: Temporality,
    cpu: HashMap<(String, String), CpuSeries>,
    /// The last permission problem warned about, so it is logged once.
    warned: Option<String>,
}

impl ResourceReader {
    pub fn new(target_name: &str, temporality: Temporality) -> ResourceReader {
        let proc = match ProcReader::new() {
            Ok(proc) => Some(proc),
            Err(error) => {
                tracing::warn!(target_name, "per-program resources are not read: {error}");
                None
            }
        };
        ResourceReader {
            proc,
            temporality,
            cpu: HashMap::new(),
            warned: None,
        }
    }

    /// The readings of every monitored process that has a pid, at `now`.
    pub fn read(
        &mut self,
        target_name: &str,
        processes: &[MonitoredProcess],
        now_unix_nano: u64,
    ) -> Resources {
        let mut resources = Resources {
            cpu_temporality: self.temporality,
            programs: Vec::new(),
        };
        let Some(proc) = self.proc.as_mut() else {
            return resources;
        };
        let running: Vec<&MonitoredProcess> = processes
            .iter()
            .filter(|p| p.info.pid > 0 && u32::try_from(p.info.pid).is_ok())
            .collect();
        let roots: Vec<(u32, i64)> = running
            .iter()
            .map(|p| (p.info.pid as u32, p.info.start))
            .collect();
        let readings = proc.read_trees(&roots);
        let mut denied = None;
        for (process, reading) in running.iter().zip(readings) {
            match reading {
                Ok(usage) => {
                    let program = self.program(process, &usage, now_unix_nano);
                    resources.programs.push(program);
                }
                Err(error @ ReadError::Denied { .. }) => {
                    denied.get_or_insert_with(|| error.to_string());
                }
                Err(error) => {
                    tracing::debug!(
                        target_name,
                        process = %process.info.name,
                        "no resources this poll: {error}"
                    );
                }
            }
        }
        if denied != self.warned {
            if let Some(reason) = &denied {
                tracing::warn!(
                    event = "resources_denied",
                    target_name,
                    "some programs' resources cannot be read: {reason}"
                );
            }
            self.warned = denied;
        }
        let keep: Vec<(String, String)> = running
            .iter()
            .map(|p| (p.info.group.clone(), p.info.name.clone()))
            .collect();
        self.cpu.retain(|key, _| keep.contains(key));
        resources
    }

    fn program(
        &mut self,
        process: &MonitoredProcess,
        usage: &TreeUsage,
        now_unix_nano: u64,
    ) -> ProgramResources {
        let info = &process.info;
        let started = u64::try_from(info.start)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000);
        let key = (info.group.clone(), info.name.clone());
        let fresh = CpuSeries {
            pid: info.pid,
            reported_user: 0.0,
            reported_system: 0.0,
            reported_until_unix_nano: started,
        };
        let series = self.cpu.entry(key).or_insert(fresh);
        if series.pid != info.pid {
            *series = fresh;
        }
        let (user, system, start) = match self.temporality {
            Temporality::Cumulative => (usage.cpu_user_seconds, usage.cpu_system_seconds, started),
            Temporality::Delta => {
                let start = series.reported_until_unix_nano;
                // A tree that lost a member whose time was not yet reaped can read lower than
                // before: the difference never goes below zero.
                let user = (usage.cpu_user_seconds - series.reported_user).max(0.0);
                let system = (usage.cpu_system_seconds - series.reported_system).max(0.0);
                series.reported_user = series.reported_user.max(usage.cpu_user_seconds);
                series.reported_system = series.reported_system.max(usage.cpu_system_seconds);
                series.reported_until_unix_nano = now_unix_nano.max(start);
                (user, system, start)
            }
        };
        ProgramResources {
            name: info.name.clone(),
            group: info.group.clone(),
            cpu_user_seconds: user,
            cpu_system_seconds: system,
            cpu_start_time_unix_nano: start,
            memory_usage_bytes: usage.rss_bytes,
            memory_virtual_bytes: usage.virtual_bytes,
            threads: usage.threads,
            open_fds: usage.open_fds,
            processes: usage.processes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{ProcessInfo, ProcessState, Status};

    fn process(pid: i64, start: i64) -> MonitoredProcess {
        MonitoredProcess {
            info: ProcessInfo {
                name: "web".into(),
                group: "web".into(),
                state: ProcessState::Running,
                pid,
                start,
                ..Default::default()
            },
            status: Status::Up,
            autostart: None,
        }
    }

    fn usage(user: f64, system: f64) -> TreeUsage {
        TreeUsage {
            cpu_user_seconds: user,
            cpu_system_seconds: system,
            ..Default::default()
        }
    }

    #[test]
    fn cumulative_cpu_counts_from_the_program_start() {
        let mut reader = ResourceReader::new("t", Temporality::Cumulative);
        let p = reader.program(&process(7, 100), &usage(1.5, 0.5), 200_000_000_000);
        assert_eq!(
            (
                p.cpu_user_seconds,
                p.cpu_system_seconds,
                p.cpu_start_time_unix_nano
            ),
            (1.5, 0.5, 100_000_000_000)
        );
    }

    #[test]
    fn delta_cpu_goes_on_from_the_last_point_and_restarts_with_a_new_pid() {
        let mut reader = ResourceReader::new("t", Temporality::Delta);
        let first = reader.program(&process(7, 100), &usage(1.0, 0.5), 110_000_000_000);
        assert_eq!(
            (first.cpu_user_seconds, first.cpu_start_time_unix_nano),
            (1.0, 100_000_000_000)
        );
        let second = reader.program(&process(7, 100), &usage(3.0, 0.5), 120_000_000_000);
        assert_eq!(
            (second.cpu_user_seconds, second.cpu_system_seconds),
            (2.0, 0.0)
        );
        assert_eq!(second.cpu_start_time_unix_nano, 110_000_000_000);
        // A tree that lost a member reads lower: no negative point.
        let lower = reader.program(&process(7, 100), &usage(2.5, 0.5), 130_000_000_000);
        assert_eq!(lower.cpu_user_seconds, 0.0);
        // A new pid is a new series, starting with the new process.
        let again = reader.program(&process(8, 125), &usage(0.25, 0.0), 140_000_000_000);
        assert_eq!(
            (again.cpu_user_seconds, again.cpu_start_time_unix_nano),
            (0.25, 125_000_000_000)
        );
    }
}
