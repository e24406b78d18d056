//! Push mode's protocol loop: the receiver as a supervisord event listener, on its stdin and
//! stdout.
//!
//! supervisord waits for a listener to answer before it sends the next event, and holds at
//! most `buffer_size` (default 10) events for a listener that is busy, then drops the oldest.
//! So the loop only reads, parses and hands each event over without waiting (a bounded
//! channel and `try_send`), then answers `RESULT 2\nOK` at once: exporting happens elsewhere,
//! and a slow or dead backend never reaches supervisord. An event that does not parse is logged
//! and still answered OK (sending it again would not make it parse). Nothing but the protocol is
//! ever written to stdout.

use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::scrape::changes::ProcessTransition;
use crate::settings::filter::ProcessFilter;
use crate::supervisor::events::{self, Event, EventHeader};
use crate::vocab::{ProcessInfo, StatusMapping};

/// The prefix of `PROCESS_GROUP_ADDED` and `PROCESS_GROUP_REMOVED`.
const PROCESS_GROUP_EVENTS: &str = "PROCESS_GROUP_";

/// What the loop hands over.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A monitored process changed state.
    Process(ProcessTransition),
    /// supervisord entered RUNNING (`true`) or began to stop.
    Supervisor { running: bool },
    /// A process group was added or removed (`PROCESS_GROUP_ADDED`, `PROCESS_GROUP_REMOVED`:
    /// `supervisorctl update`, `add`, `remove`): the list of processes changed.
    GroupsChanged,
    /// A TICK: time to poll.
    Tick,
}

/// How the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// supervisord closed stdin (it is stopping, or restarting the listener).
    InputClosed,
}

/// Answers events until stdin closes. `handed` receives what the receiver acts on; when it is
/// full the event is dropped with a warning rather than making supervisord wait.
pub async fn serve<R, W>(
    mut input: R,
    mut output: W,
    filter: &ProcessFilter,
    mapping: &StatusMapping,
    handed: &mpsc::Sender<Received>,
) -> std::io::Result<Ended>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut dropped = 0u64;
    loop {
        output.write_all(events::READY).await?;
        output.flush().await?;
        let Some(read) = events::read_event(&mut input).await? else {
            return Ok(Ended::InputClosed);
        };
        let taken = read.and_then(|(header, payload)| {
            let event = events::parse_event(&header, &payload)?;
            Ok(received(&header, event, filter, mapping))
        });
        match taken {
            Ok(Some(item)) => {
                if handed.try_send(item).is_err() {
                    dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(
                            event = "listener_event_dropped",
                            dropped,
                            "the receiver is behind: an event was dropped rather than hold \
                             supervisord up"
                        );
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(
                    event = "listener_bad_event",
                    "{error}; answered OK and skipped"
                );
            }
        }
        output.write_all(events::OK).await?;
        output.flush().await?;
    }
}

/// What an event means for the receiver; `None` for events it does not act on and for
/// processes the target's filters leave out.
fn received(
    header: &EventHeader,
    event: Event,
    filter: &ProcessFilter,
    mapping: &StatusMapping,
) -> Option<Received> {
    match event {
        Event::ProcessState {
            name,
            group,
            state,
            from_state,
            pid,
            expected,
            ..
        } => {
            let info = ProcessInfo {
                name,
                group,
                state,
                ..Default::default()
            };
            if !filter.monitors(&info) {
                return None;
            }
            let exited = matches!(
                state,
                crate::vocab::ProcessState::Exited | crate::vocab::ProcessState::Backoff
            );
            Some(Received::Process(ProcessTransition {
                status: mapping.status(state),
                previous: from_state,
                state,
                pid: pid.filter(|p| *p > 0),
                exit_status: None,
                expected: if exited { expected } else { None },
                spawnerr: None,
                restarted: false,
                // The event carries no time; supervisord sends it as the change happens.
                time_unix_nano: Some(crate::clock::unix_nanos_now()),
                name: info.name,
                group: info.group,
            }))
        }
        Event::SupervisorState { running } => Some(Received::Supervisor { running }),
        Event::Tick { .. } => Some(Received::Tick),
        Event::Other if header.eventname.starts_with(PROCESS_GROUP_EVENTS) => {
            Some(Received::GroupsChanged)
        }
        Event::Other => {
            tracing::debug!(event = "listener_ignored", eventname = %header.eventname, "not acted on");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{ProcessState, Status};

    fn frame(eventname: &str, payload: &str) -> String {
        format!(
            "ver:3.0 server:supervisor serial:1 pool:otel poolserial:1 eventname:{eventname} len:{}\n{payload}",
            payload.len()
        )
    }

    async fn run(input: &str, filter: &ProcessFilter, capacity: usize) -> (String, Vec<Received>) {
        let (tx, mut rx) = mpsc::channel(capacity);
        let mut out = Vec::new();
        let ended = serve(
            tokio::io::BufReader::new(input.as_bytes()),
            &mut out,
            filter,
            &StatusMapping::default(),
            &tx,
        )
        .await
        .unwrap();
        assert_eq!(ended, Ended::InputClosed);
        drop(tx);
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item);
        }
        (String::from_utf8(out).unwrap(), got)
    }

    #[tokio::test]
    async fn every_event_is_answered_and_handed_over() {
        let input = [
            frame(
                "PROCESS_STATE_EXITED",
                "processname:web groupname:web from_state:RUNNING expected:0 pid:42",
            ),
            frame("TICK_5", "when:1700000000"),
            frame(
                "PROCESS_LOG_STDOUT",
                "processname:web groupname:web pid:42\nhello",
            ),
            frame(
                "PROCESS_STATE_NOPE",
                "processname:web groupname:web from_state:RUNNING",
            ),
            frame("SUPERVISOR_STATE_CHANGE_STOPPING", ""),
            frame("PROCESS_GROUP_ADDED", "groupname:batch\n"),
        ]
        .concat();
        let (out, got) = run(&input, &ProcessFilter::default(), 16).await;
        assert_eq!(out, "READY\nRESULT 2\nOK".repeat(6) + "READY\n");
        assert_eq!(got.len(), 4);
        let Received::Process(t) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            (t.previous, t.state),
            (ProcessState::Running, ProcessState::Exited)
        );
        assert_eq!(
            (t.expected, t.pid, t.status),
            (Some(false), Some(42), Status::Down)
        );
        assert_eq!(got[1], Received::Tick);
        assert_eq!(got[2], Received::Supervisor { running: false });
        assert_eq!(got[3], Received::GroupsChanged);
    }

    #[tokio::test]
    async fn unmonitored_processes_are_answered_but_not_handed_over() {
        let filter = ProcessFilter {
            names: vec!["db".into()],
            ..Default::default()
        };
        let input = frame(
            "PROCESS_STATE_RUNNING",
            "processname:web groupname:web from_state:STARTING pid:1",
        );
        let (out, got) = run(&input, &filter, 16).await;
        assert_eq!(out, "READY\nRESULT 2\nOK".to_string() + "READY\n");
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn a_full_channel_never_holds_supervisord_up() {
        let input = frame("TICK_5", "when:1").repeat(5);
        let (out, got) = run(&input, &ProcessFilter::default(), 1).await;
        assert_eq!(out.matches("RESULT 2\nOK").count(), 5);
        assert_eq!(got, [Received::Tick]);
    }
}
