//! The receiver role: what `supervisord-receiver run --config FILE` does (src/main.rs), on the
//! same library entry points, so the figures are those of the real binary. Two differences,
//! both outside the measured code: logs at WARN (the orchestrator keeps them in a file and
//! reports how many there were), and no SIGHUP reload.

use std::path::Path;
use std::process::ExitCode;

use supervisord_receiver::app::Runner;
use supervisord_receiver::cli;

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
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
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
        let shutdown =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    async move {
                        term.recv().await;
                    }
                }
                Err(error) => {
                    eprintln!("error: cannot install signal handlers: {error}");
                    return ExitCode::FAILURE;
                }
            };
        match Runner::new(settings) {
            Ok(runner) => {
                runner.run(shutdown).await;
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    })
}
