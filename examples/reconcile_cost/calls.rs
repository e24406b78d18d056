//! What each kind of call costs supervisord, measured over many calls made back to back: its
//! CPU (utime + stime of `/proc/<pid>/stat`) over the calls, less its idle rate over the same
//! wall time, divided by the calls.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use supervisord_receiver::settings::{Endpoint, Target};
use supervisord_receiver::supervisor::client::SupervisorClient;

use crate::bench::stat_ticks;
use crate::rpc::Rpc;

/// Calls made before measuring: the connection opens, supervisord's caches warm up.
const WARMUP: u32 = 3;
/// At least this many calls per kind, whatever the budget.
const MIN_CALLS: u32 = 10;

/// The calls the two modes make, and the Datadog check's for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The receiver's poll: one `system.multicall` of `getAllProcessInfo`, `getState`,
    /// `getIdentification` and `getSupervisorVersion` on a kept-alive connection. What `run`
    /// makes every interval and push mode at each reconcile.
    FullPoll,
    /// `getAllConfigInfo` (for `autostart`): at most every 10 minutes in both modes.
    ConfigInfo,
    /// `getProcessInfo` of one process in a multicall: push mode's fetch after a burst of
    /// events about one process.
    ProcessInfo,
    /// One run of Datadog's check: `getAllProcessInfo`, then `getSupervisorVersion`, each on a
    /// new connection (Python's `ServerProxy` opens one per request).
    DatadogRun,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::FullPoll,
        Kind::ConfigInfo,
        Kind::ProcessInfo,
        Kind::DatadogRun,
    ];
}

/// supervisord's CPU per call of one kind, its idle housekeeping taken out.
#[derive(Debug, Clone, Copy)]
pub struct CallCost {
    pub kind: Kind,
    pub calls: u32,
    pub seconds_per_call: f64,
}

/// Measures every [`Kind`] against the supervisord at `socket` (pid `pid`), each for about
/// `budget` of wall time; `idle_seconds_per_second` is its CPU rate with nobody asking.
pub fn measure(
    socket: &Path,
    pid: u32,
    hz: u64,
    idle_seconds_per_second: f64,
    budget: Duration,
    a_process: &str,
) -> Result<Vec<CallCost>> {
    let target = Target::new(
        "reconcile-cost",
        Endpoint::Unix {
            path: socket.to_path_buf(),
        },
    );
    let client = SupervisorClient::new(&target)?;
    let rpc = Rpc::new(socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let names = [a_process.to_owned()];
    let mut costs = Vec::new();
    for kind in Kind::ALL {
        let call = || -> Result<()> {
            match kind {
                Kind::FullPoll => {
                    runtime.block_on(client.poll())?;
                }
                Kind::ConfigInfo => {
                    runtime.block_on(client.config_info(target.timeout))?;
                }
                Kind::ProcessInfo => {
                    runtime.block_on(client.process_infos(&names))?;
                }
                Kind::DatadogRun => {
                    rpc.call("supervisor.getAllProcessInfo", &[])?;
                    rpc.call("supervisor.getSupervisorVersion", &[])?;
                }
            }
            Ok(())
        };
        for _ in 0..WARMUP {
            call().with_context(|| format!("{kind:?}"))?;
        }
        let ticks_before = stat_ticks(pid)?;
        let started = Instant::now();
        let mut calls = 0u32;
        while calls < MIN_CALLS || started.elapsed() < budget {
            call().with_context(|| format!("{kind:?}"))?;
            calls += 1;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = stat_ticks(pid)?.saturating_sub(ticks_before) as f64 / hz as f64;
        let above_idle = (cpu - idle_seconds_per_second * wall).max(0.0);
        costs.push(CallCost {
            kind,
            calls,
            seconds_per_call: above_idle / f64::from(calls),
        });
    }
    Ok(costs)
}

/// The cost of one call of `kind` among `costs`.
pub fn cost_of(costs: &[CallCost], kind: Kind) -> f64 {
    costs
        .iter()
        .find(|c| c.kind == kind)
        .map_or(0.0, |c| c.seconds_per_call)
}
