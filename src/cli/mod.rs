//! The command line: `run` (default), `listen`, `check`, `validate`.
//!
//! Exit codes are a contract: `validate` 0 valid / 2 invalid; `check` 0 when every target
//! answered, 1 otherwise, 2 for an invalid config; `run` and `listen` 0 after a clean
//! shutdown, 2 for an invalid config (for `listen`, also a target it cannot pick), 1 for any
//! other start-up failure.

pub mod check;
pub mod listen;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, ConfigError};
use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "supervisord-receiver",
    version,
    about = "Polls supervisord over XML-RPC and exports OpenTelemetry metrics over OTLP.",
    args_conflicts_with_subcommands = false
)]
pub struct Cli {
    /// Configuration file: native format or Datadog's supervisord.d/conf.yaml (detected).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll every target forever and export (the default).
    Run,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

pub const EXIT_INVALID_CONFIG: u8 = 2;

/// Loads the config or prints every problem to stderr; `run` and `check` refuse an invalid file
/// exactly as `validate` reports it.
pub fn load_or_report(path: &Path) -> Result<Settings, ExitCode> {
    match config::load(path) {
        Ok(settings) => {
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

/// Reloads `path` on every SIGHUP and hands the new settings to the runner. A file that does
/// not load is reported line by line at ERROR, exactly as `validate` prints it, and the
/// running configuration stays.
pub async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    path: PathBuf,
    reloads: tokio::sync::mpsc::Sender<Settings>,
) {
    while hangup.recv().await.is_some() {
        tracing::info!(
            event = "reload",
            file = %path.display(),
            "SIGHUP: reloading the configuration"
        );
        match config::load(&path) {
            Ok(settings) => {
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

pub fn validate(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(settings) => {
            for warning in &settings.warnings {
                eprintln!("{}: warning: {warning}", path.display());
            }
            println!(
                "{}: valid ({} format, {} target{})",
                path.display(),
                match settings.format {
                    crate::settings::ConfigFormat::Native => "native",
                    crate::settings::ConfigFormat::Datadog => "Datadog",
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
