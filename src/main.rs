use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use supervisord_receiver::app::Runner;
use supervisord_receiver::cli::{self, Cli, Command};

/// jemalloc, not glibc's allocator: with targets added and removed by reloads, glibc's
/// per-thread arenas fragment and the RSS grows by hundreds of MB an hour at 2,000 targets
/// while the live data stays flat; jemalloc held it flat under the same churn
/// (docs/performance.md, "Soak").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // `status` asks a running receiver: a config file is optional (it only says where).
    if let Some(Command::Status {
        admin,
        output,
        liveness,
    }) = &cli.command
    {
        return match cli::status::resolve(admin.as_deref(), cli.config.as_deref()) {
            Ok(address) => with_runtime(cli::status::status(address, *output, *liveness)),
            Err(code) => code,
        };
    }
    // --config FILE or DIR; without it, the local supervisord through its own configuration.
    let source = match cli::Source::new(cli.config.as_deref(), cli.supervisord_conf.as_deref()) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(cli::EXIT_INVALID_CONFIG);
        }
    };
    let config = source.path().to_path_buf();
    let config = config.as_path();
    match cli.command.unwrap_or(Command::Run { shard: None }) {
        Command::Validate => cli::validate(&source),
        Command::Status { .. } => unreachable!("answered above"),
        Command::Check { output } => {
            let settings = match cli::load_or_report(&source) {
                Ok(settings) => settings,
                Err(code) => return code,
            };
            with_runtime(cli::check::check(settings, output))
        }
        Command::Listen { target } => {
            let settings = match cli::load_or_report(&source) {
                Ok(settings) => settings,
                Err(code) => return code,
            };
            with_runtime(async move {
                let (shutdown, _hangup) = match signals() {
                    Ok(signals) => signals,
                    Err(error) => {
                        eprintln!("error: cannot install signal handlers: {error}");
                        return ExitCode::FAILURE;
                    }
                };
                cli::listen::listen(settings, target.as_deref(), config, shutdown).await
            })
        }
        Command::Run { shard } => {
            // --shard, else SUPERVISORD_RECEIVER_SHARD; applied again at every reload.
            let shard = match cli::source::shard(shard, &|name| std::env::var(name).ok()) {
                Ok(shard) => shard,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(cli::EXIT_INVALID_CONFIG);
                }
            };
            let sharded = source.with_shard(shard);
            let settings = match cli::load_or_report(&sharded) {
                Ok(settings) => settings,
                Err(code) => return code,
            };
            with_runtime(async move {
                let (shutdown, hangup) = match signals() {
                    Ok(signals) => signals,
                    Err(error) => {
                        eprintln!("error: cannot install signal handlers: {error}");
                        return ExitCode::FAILURE;
                    }
                };
                match Runner::new(settings) {
                    Ok(runner) => {
                        let described = config_source(&sharded);
                        runner.telemetry().receiver.set_config_source(described);
                        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
                        let reloader =
                            tokio::spawn(cli::reload_on_hangup(hangup, sharded, reload_tx));
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
    }
}

/// Where the settings came from, as `status` shows it: the `--config` path, or what zero-config
/// read.
fn config_source(source: &cli::Source) -> String {
    match &source.origin {
        cli::source::Origin::Config(path) => path.display().to_string(),
        cli::source::Origin::Supervisord { file, .. } => format!(
            "no --config: the local supervisord, from {}",
            file.display()
        ),
    }
}

fn with_runtime(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// SIGTERM or SIGINT (Ctrl-C) to stop, SIGHUP to reload. The handlers are installed here,
/// before any poll starts, so a signal that arrives during start-up already means "shut down
/// cleanly" or "reload", not "die" (SIGHUP's default).
fn signals() -> std::io::Result<(
    impl std::future::Future<Output = ()>,
    tokio::signal::unix::Signal,
)> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let hangup = signal(SignalKind::hangup())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    Ok((shutdown, hangup))
}
