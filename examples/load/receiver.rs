//! The receiver role: what `supervisord-receiver run --config FILE` does (src/main.rs), on the
//! same library entry points, so the figures are those of the real binary, SIGHUP reloads
//! included (`--soak` sends them). One difference, outside the measured code: logs at WARN
//! (the orchestrator keeps them in a file and reports how many there were), but for the one
//! INFO line each applied reload writes ("configuration reloaded"), which `--soak` counts.

use std::path::Path;
use std::process::ExitCode;

use supervisord_receiver::app::Runner;
use supervisord_receiver::cli::{self, Source};

use crate::child;

pub fn main(config: &str, parent: &str) -> ExitCode {
    match parent
        .parse::<u32>()
        .map_err(|e| e.to_string())
        .and_then(child::die_with_parent)
    {
        Ok(()) => {}
        Err(error) => {
            eprintln!("load receiver: {error}");
            return ExitCode::FAILURE;
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "warn,supervisord_receiver::app::targets=info",
        ))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let settings = match cli::load_or_report(Path::new(config)) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, hangup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(hangup)) => (term, hangup),
            (Err(error), _) | (_, Err(error)) => {
                eprintln!("error: cannot install signal handlers: {error}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = async move {
            term.recv().await;
        };
        match Runner::new(settings) {
            Ok(runner) => {
                let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
                let source = Source::from(Path::new(config));
                let reloader = tokio::spawn(cli::reload_on_hangup(hangup, source, reload_tx));
                runner.run_with_reloads(shutdown, reload_rx).await;
                reloader.abort();
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    })
}
