//! `listen`: push mode. supervisord runs the receiver as an event listener
//! (`[eventlistener:otel]`); it speaks the listener protocol on stdin and stdout, turns each
//! event into a log record at once, and keeps the metrics of its one target from the events,
//! polling it in full every `reconcile_interval` ([`crate::app::push`]).
//!
//! stdout is supervisord's channel: only the protocol is written there. Logs go to stderr
//! (supervisord captures it with `stderr_logfile`), and so does the debug exporter's output.
//! The listener ends when supervisord closes stdin (it stops or restarts the listener) or on
//! SIGTERM/SIGINT, after the same bounded final export as `run`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::sync::mpsc;

use crate::app::listen::{self, Ended};
use crate::app::Runner;
use crate::settings::{Settings, Target};
use crate::supervisor::client::SupervisorClient;

/// Events waiting for the target task. supervisord sends one event at a time and waits for the
/// answer, so this only fills when the task is stuck; then events are dropped (and counted in
/// a warning) rather than making supervisord wait.
const EVENT_QUEUE: usize = 1024;

/// Keeps the one target the listener watches: `--target NAME`, or the only one in the file.
pub fn pick_target(
    settings: &mut Settings,
    wanted: Option<&str>,
    path: &Path,
) -> Result<(), String> {
    let names: Vec<&str> = settings.targets.iter().map(|t| t.name.as_str()).collect();
    let index = match wanted {
        Some(name) => settings
            .targets
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| {
                format!(
                    "{}: no target named '{name}' (targets: {})",
                    path.display(),
                    names.join(", ")
                )
            })?,
        None if settings.targets.len() == 1 => 0,
        None => {
            return Err(format!(
                "{}: listen watches the one supervisord that runs it, and this file has {} \
                 targets ({}): name it with --target NAME",
                path.display(),
                names.len(),
                names.join(", ")
            ))
        }
    };
    let target = settings.targets.swap_remove(index);
    settings.targets = vec![target];
    Ok(())
}

pub async fn listen(
    mut settings: Settings,
    target: Option<&str>,
    path: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> ExitCode {
    if let Err(message) = pick_target(&mut settings, target, path) {
        eprintln!("error: {message}");
        return ExitCode::from(super::EXIT_INVALID_CONFIG);
    }
    let target = settings.targets[0].clone();
    let filter = target.filter.clone();
    let mapping = target.status_mapping.clone();
    let runner = match Runner::new(settings) {
        Ok(runner) => runner,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    runner
        .telemetry()
        .receiver
        .set_config_source(path.display().to_string());
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let protocol = tokio::spawn(async move {
        let input = BufReader::new(tokio::io::stdin());
        listen::serve(input, tokio::io::stdout(), &filter, &mapping, &events_tx).await
    });
    let input_closed = async move {
        match protocol.await {
            Ok(Ok(Ended::InputClosed)) => {
                tracing::info!("supervisord closed the event stream: stopping");
            }
            Ok(Err(error)) => {
                tracing::error!("the event stream failed: {error}; stopping");
            }
            Err(error) => tracing::error!("the event loop ended abnormally: {error}"),
        }
    };
    tracing::info!(target_name = %target.name, "listening to supervisord's events");
    // Beside the protocol loop, so the first events are answered meanwhile.
    let access = tokio::spawn(check_access(target.clone(), path.to_path_buf()));
    runner
        .with_events(events_rx)
        .run(async move {
            tokio::select! {
                () = shutdown => {}
                () = input_closed => {}
            }
        })
        .await;
    access.abort();
    ExitCode::SUCCESS
}

/// One call before listening, to say clearly what the listener needs when supervisord refuses
/// it: supervisord gives an event listener its URL (`SUPERVISOR_SERVER_URL`) but never its
/// credentials. Events are answered either way; the polls just keep failing until fixed. The
/// call is `getState`, which costs supervisord next to nothing, not a poll: push mode asks for
/// the whole list of processes only to reconcile.
async fn check_access(target: Target, path: std::path::PathBuf) {
    let Ok(client) = SupervisorClient::new(&target) else {
        return;
    };
    let bounded = tokio::time::timeout(
        target.timeout.min(Duration::from_secs(5)),
        client.check_access(),
    );
    if let Ok(Err(error)) = bounded.await {
        if error.error_type() != "unauthorized" {
            return;
        }
        let what = if target.credentials.is_some() {
            "refused the username and password"
        } else {
            "asks for a username and password, and the file gives none"
        };
        tracing::error!(
            target_name = %target.name,
            "supervisord at {} {what} ({error}): supervisord does not pass its credentials to \
             event listeners, so set username and password of target '{}' in {} to those of \
             supervisord.conf's [unix_http_server] or [inet_http_server] (a password as \
             ${{env:NAME}} or ${{file:PATH}} keeps it out of the file)",
            target.endpoint.display(),
            target.name,
            path.display()
        );
    }
}
