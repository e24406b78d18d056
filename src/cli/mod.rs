//! The command line: `run` (default), `listen`, `check`, `validate`, `status`.
//!
//! Exit codes are a contract: `validate` 0 valid / 2 invalid; `check` 0 when every target
//! answered, 1 otherwise, 2 for an invalid config; `run` and `listen` 0 after a clean
//! shutdown, 2 for an invalid config (for `listen`, also a target it cannot pick), 1 for any
//! other start-up failure; `status` 0 healthy, 1 something failing, 2 the admin endpoint cannot
//! be reached.

pub mod check;
pub mod listen;
pub mod source;
pub mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::ConfigError;
use crate::settings::shard::Shard;
use crate::settings::Settings;

pub use source::Source;

#[derive(Debug, Parser)]
#[command(
    name = "supervisord-receiver",
    version,
    about = "Polls supervisord over XML-RPC and exports OpenTelemetry metrics over OTLP.",
    args_conflicts_with_subcommands = false
)]
pub struct Cli {
    /// Configuration file: native format or Datadog's supervisord.d/conf.yaml (detected); or a
    /// directory of them (every *.yaml and *.yml, in name order). Without it: the local
    /// supervisord, found through supervisord's own configuration.
    #[arg(long, short = 'c', global = true, value_name = "FILE|DIR")]
    pub config: Option<PathBuf>,

    /// Without --config: supervisord's configuration file, to poll the supervisord it
    /// describes as supervisorctl would (default: the first of supervisorctl's search paths
    /// that exists: ../etc/supervisord.conf and ../supervisord.conf from the executable's
    /// directory, ./supervisord.conf, ./etc/supervisord.conf, /etc/supervisord.conf,
    /// /etc/supervisor/supervisord.conf).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "config")]
    pub supervisord_conf: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll every target forever and export (the default).
    Run {
        /// Keep only this shard of the targets: INDEX/COUNT, INDEX a number or a name ending
        /// in -<number> (a StatefulSet pod name: --shard "$(POD_NAME)/3"); a target belongs
        /// to the shard its name hashes to. Default: SUPERVISORD_RECEIVER_SHARD, else every
        /// target.
        #[arg(long, value_name = "INDEX/COUNT", value_parser = source::parse_shard)]
        shard: Option<Shard>,
    },
    /// Push mode: run by supervisord as an event listener ([eventlistener:NAME] with
    /// command=supervisord-receiver listen --config FILE); speaks the listener protocol on
    /// stdin/stdout, sends each state change at once and polls its one target.
    Listen {
        /// The target to watch, when the file has more than one.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
    /// Poll every target once and print what was found.
    Check {
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Check the configuration file and report every problem.
    Validate,
    /// Ask a running receiver how it is (targets, exporters, health) through its admin
    /// endpoint. Exit 0 healthy, 1 something failing, 2 the endpoint cannot be reached.
    Status {
        /// The admin endpoint: host:port or unix:///path. Default: the admin.endpoint of
        /// --config FILE when given, else 127.0.0.1:8787.
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Exit 0 when the receiver answers and its exports are healthy (the /healthz rule),
        /// whatever its targets: for container health checks.
        #[arg(long)]
        liveness: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

pub const EXIT_INVALID_CONFIG: u8 = 2;

/// Loads the config or prints every problem to stderr; `run` and `check` refuse an invalid file
/// exactly as `validate` reports it.
/// A path is read as `--config PATH`.
pub fn load_or_report(source: impl Into<Source>) -> Result<Settings, ExitCode> {
    let source = source.into();
    let path = source.path();
    match source.load() {
        Ok(source::Loaded { settings, notes }) => {
            for note in &notes {
                tracing::info!("{note}");
            }
            for warning in &settings.warnings {
                tracing::warn!("{}: {warning}", path.display());
            }
            Ok(settings)
        }
        Err(error) => {
            report_config_error(&error);
            Err(ExitCode::from(EXIT_INVALID_CONFIG))
        }
    }
}

fn report_config_error(error: &ConfigError) {
    eprintln!("{error}");
}

/// Reloads `source` on every SIGHUP and hands the new settings to the runner. A file that does
/// not load is reported line by line at ERROR, exactly as `validate` prints it, and the
/// running configuration stays.
pub async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    source: Source,
    reloads: tokio::sync::mpsc::Sender<Settings>,
) {
    let path = source.path().to_path_buf();
    while hangup.recv().await.is_some() {
        tracing::info!(
            event = "reload",
            file = %path.display(),
            "SIGHUP: reloading the configuration"
        );
        match source.load() {
            Ok(source::Loaded { settings, notes }) => {
                for note in &notes {
                    tracing::info!(event = "reload", "{note}");
                }
                for warning in &settings.warnings {
                    tracing::warn!(event = "reload", "{}: {warning}", path.display());
                }
                if reloads.send(settings).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                for line in error.to_string().lines() {
                    tracing::error!(event = "reload_failed", "{line}");
                }
                tracing::error!(
                    event = "reload_failed",
                    "configuration not reloaded, the running one is kept"
                );
            }
        }
    }
}

pub fn validate(source: &Source) -> ExitCode {
    let path = source.path();
    match source.load() {
        Ok(source::Loaded { settings, notes }) => {
            for note in &notes {
                eprintln!("{note}");
            }
            for warning in &settings.warnings {
                eprintln!("{}: warning: {warning}", path.display());
            }
            println!(
                "{}: valid ({}, {} target{})",
                path.display(),
                match (&source.origin, settings.format) {
                    (source::Origin::Supervisord { .. }, _) => "supervisord's configuration",
                    (_, crate::settings::ConfigFormat::Native) => "native format",
                    (_, crate::settings::ConfigFormat::Datadog) => "Datadog format",
                },
                settings.targets.len(),
                if settings.targets.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            report_config_error(&error);
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
    }
}
