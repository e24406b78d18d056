//! The orchestrator's command line.

use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "load",
    about = "Measures supervisord-receiver polling a simulated supervisord fleet and exporting \
             over OTLP (cargo run --release --example load -- [options])."
)]
pub struct Options {
    /// Simulated supervisord servers, each a target of the receiver.
    #[arg(long, default_value_t = 10_000)]
    pub targets: usize,

    /// Processes each supervisord reports.
    #[arg(long, default_value_t = 20)]
    pub processes: usize,

    /// The receiver's collection_interval.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Measured window [default: 60s, or 20s per run with --sweep].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Time between starting the receiver and the measured window [default: one interval + 3s;
    /// 3m with --soak].
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,

    /// How the receiver reaches the fleet.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,

    /// Connections closed after each poll (the receiver's `keep_alive: false`): a connect per
    /// poll for less memory per target.
    #[arg(long)]
    pub no_keep_alive: bool,

    /// Targets set `process_resources: false`. The fleet listens on loopback, so by default the
    /// receiver reads /proc for the pids of its simulated processes (made up, most beyond
    /// pid_max): a cost a fleet of remote supervisords does not have.
    #[arg(long)]
    pub no_process_resources: bool,

    /// Several short runs varying targets, then processes; prints the least-squares slopes.
    #[arg(long)]
    pub sweep: bool,

    /// Targets of the --sweep runs (at --processes processes).
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000,8000")]
    pub sweep_targets: Vec<usize>,

    /// Processes of the --sweep runs (at --sweep-processes-targets targets).
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,40")]
    pub sweep_processes: Vec<usize>,

    /// Targets of the --sweep runs that vary processes.
    #[arg(long, default_value_t = 2_000)]
    pub sweep_processes_targets: usize,

    /// Most targets one fleet process serves (each needs a listener and a connection).
    #[arg(long, default_value_t = 4_000)]
    pub targets_per_fleet: usize,

    /// Python interpreter for the baseline (benches/python_baseline.py).
    #[arg(long, default_value = "python3")]
    pub python: String,

    /// Skip the Python baseline.
    #[arg(long)]
    pub no_python: bool,

    /// A long run under churn (`--duration` is its window, default one hour): the config
    /// rolls over the fleet (SIGHUP), supervisords restart; prints the slope of the receiver's
    /// memory over the window.
    #[arg(long)]
    pub soak: bool,

    /// --soak: time between two churn rounds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub churn_every: Duration,

    /// --soak: percent of the targets replaced by new ones each round (a reload).
    #[arg(long, default_value_t = 5.0)]
    pub churn_replace: f64,

    /// --soak: percent of the targets whose supervisord restarts each round.
    #[arg(long, default_value_t = 2.0)]
    pub churn_restart: f64,

    /// --soak: how long a restarting supervisord refuses connections.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub restart_down: Duration,

    /// --soak: time between two readings of the receiver's VmRSS.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub sample_every: Duration,

    /// Print the report as JSON on stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// 127.0.0.1, one port per target.
    Tcp,
    /// One UNIX socket per target in a temporary directory.
    Unix,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

/// `500ms`, `10s`, `2m`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("'{text}': a unit is needed (ms, s, m)"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}': not a number"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{text}': {e}"))
}

/// A duration as the receiver's config reads it.
pub fn config_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
