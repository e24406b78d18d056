//! Real windows of supervisord's life: nobody asking, the receiver's `run` polling it, the
//! receiver as its event listener. Each measures supervisord's CPU over the window and counts,
//! through the recording relay every receiver talks to, the calls it was asked to answer.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use supervisord_receiver::supervisor::xmlrpc::Value;

use crate::bench::stat_ticks;
use crate::daemon::Receiver;
use crate::relay::Relay;
use crate::rpc::Rpc;

/// Who watches supervisord during a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nobody: supervisord's own loop (c).
    Idle,
    /// `supervisord-receiver run` at `collection_interval: 15s` (a).
    Run,
    /// `supervisord-receiver listen` run by supervisord, `collection_interval: 10s`, the
    /// default reconcile (b).
    Push,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Idle => "(c) nobody",
            Mode::Run => "(a) run 15s",
            Mode::Push => "(b) push 10s",
        }
    }
}

/// The calls of the kinds that cost supervisord, as counted at the relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub full: usize,
    pub config: usize,
    pub fetch: usize,
}

impl Counted {
    pub fn at(relay: &Relay) -> Counted {
        Counted {
            full: relay.calls("supervisor.getAllProcessInfo"),
            config: relay.calls("supervisor.getAllConfigInfo"),
            fetch: relay.calls("supervisor.getProcessInfo"),
        }
    }

    fn since(self, before: Counted) -> Counted {
        Counted {
            full: self.full - before.full,
            config: self.config - before.config,
            fetch: self.fetch - before.fetch,
        }
    }
}

/// One window's measurement.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub mode: Mode,
    pub wall_seconds: f64,
    /// supervisord's CPU over the window, idle loop included.
    pub cpu_seconds: f64,
    pub calls: Counted,
}

/// What a window needs: supervisord, its listener section's name, the receiver and its files.
pub struct Setup<'a> {
    pub pid: u32,
    pub hz: u64,
    pub relay: &'a Relay,
    pub rpc: Rpc,
    pub binary: PathBuf,
    pub run_config: PathBuf,
    pub log_dir: PathBuf,
}

/// The name of the `[eventlistener:…]` section, started and stopped for the push window.
pub const LISTENER: &str = "otel";

pub fn measure(mode: Mode, setup: &Setup<'_>, length: Duration) -> Result<Window> {
    let calls_before = Counted::at(setup.relay);
    let ticks_before = stat_ticks(setup.pid)?;
    let started = Instant::now();
    let mut receiver = None;
    match mode {
        Mode::Idle => {}
        Mode::Run => {
            receiver = Some(Receiver::start(
                &setup.binary,
                &setup.run_config,
                &setup.log_dir.join("run.log"),
                &[("RUST_LOG", "warn")],
            )?);
        }
        Mode::Push => {
            setup.rpc.call(
                "supervisor.startProcess",
                &[Value::String(LISTENER.into()), Value::Bool(true)],
            )?;
        }
    }
    std::thread::sleep(length.saturating_sub(started.elapsed()));
    let cpu_ticks = stat_ticks(setup.pid)?.saturating_sub(ticks_before);
    let wall_seconds = started.elapsed().as_secs_f64();
    let calls = Counted::at(setup.relay).since(calls_before);
    if let Some(receiver) = &mut receiver {
        receiver.check_alive()?;
    }
    drop(receiver);
    if mode == Mode::Push {
        setup.rpc.call(
            "supervisor.stopProcess",
            &[Value::String(LISTENER.into()), Value::Bool(true)],
        )?;
    }
    Ok(Window {
        mode,
        wall_seconds,
        cpu_seconds: cpu_ticks as f64 / setup.hz as f64,
        calls,
    })
}
