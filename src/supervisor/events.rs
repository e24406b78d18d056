//! supervisord's event listener protocol, the listener's side: the header and payload of each
//! event, and the lines the listener answers with.
//!
//! A listener writes `READY\n`; supervisord sends one header line (`ver:3.0 server:supervisor
//! serial:21 pool:listener poolserial:10 eventname:PROCESS_STATE_EXITED len:54`) and then
//! exactly `len` bytes of payload; the listener answers `RESULT 2\nOK` (or `RESULT 4\nFAIL`,
//! which makes supervisord send the event again later) and is READY again. Payloads are
//! `key:value` tokens separated by spaces; `PROCESS_LOG_*` and `PROCESS_COMMUNICATION_*` put
//! their data after the first newline.
//!
//! Nothing here panics on input: a header or payload that does not parse is an [`EventError`]
//! naming what is wrong, and the caller still answers (an event is never left unanswered, or
//! supervisord would stop sending to this listener).

use std::collections::HashMap;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use crate::vocab::ProcessState;

/// Written when ready for the next event.
pub const READY: &[u8] = b"READY\n";
/// Written after an event was taken.
pub const OK: &[u8] = b"RESULT 2\nOK";
/// Written to have supervisord send the event again later.
pub const FAIL: &[u8] = b"RESULT 4\nFAIL";

/// A header line longer than this is not one supervisord writes (its headers are about 100
/// bytes); reading stops there.
pub const MAX_HEADER_BYTES: usize = 4 * 1024;
/// A payload longer than this is read and dropped: `PROCESS_LOG` payloads are bounded by the
/// program's `*_capture_maxbytes`, which is far smaller in practice.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event header: {0}")]
    Header(String),
    #[error("event {event}: {reason}")]
    Payload { event: String, reason: String },
}

/// An event's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    pub serial: u64,
    pub pool: String,
    pub eventname: String,
    pub len: usize,
}

/// Parses a header line (without its newline).
pub fn parse_header(line: &str) -> Result<EventHeader, EventError> {
    let tokens = tokens(line);
    let get = |key: &str| {
        tokens
            .get(key)
            .ok_or_else(|| EventError::Header(format!("no '{key}' in {}", shown(line))))
    };
    let number = |key: &str| -> Result<u64, EventError> {
        let text = get(key)?;
        text.parse::<u64>()
            .map_err(|_| EventError::Header(format!("'{key}' is not a number: {}", shown(text))))
    };
    let len = usize::try_from(number("len")?)
        .map_err(|_| EventError::Header("'len' is too large".into()))?;
    Ok(EventHeader {
        serial: number("serial").unwrap_or(0),
        pool: tokens.get("pool").cloned().unwrap_or_default(),
        eventname: get("eventname")?.clone(),
        len,
    })
}

/// What an event says, for the events the receiver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `PROCESS_STATE_<STATE>`: a process entered `state`.
    ProcessState {
        name: String,
        group: String,
        state: ProcessState,
        from_state: ProcessState,
        pid: Option<i64>,
        /// `EXITED` only: whether the exit code is one of the program's `exitcodes`.
        expected: Option<bool>,
        /// `STARTING` and `BACKOFF`: spawn attempts so far.
        tries: Option<u64>,
    },
    /// `SUPERVISOR_STATE_CHANGE_RUNNING` / `_STOPPING`.
    SupervisorState { running: bool },
    /// `TICK_5`, `TICK_60`, `TICK_3600`: supervisord's clock.
    Tick { when: i64 },
    /// Any other event (subscribed to, but nothing to do).
    Other,
}

/// Reads what an event says from its header and payload.
pub fn parse_event(header: &EventHeader, payload: &[u8]) -> Result<Event, EventError> {
    let name = header.eventname.as_str();
    let problem = |reason: String| EventError::Payload {
        event: name.to_string(),
        reason,
    };
    // The token part ends at the first newline (log and communication data follow it).
    let head_end = payload
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(payload.len());
    let head = std::str::from_utf8(&payload[..head_end])
        .map_err(|_| problem("the payload is not UTF-8".into()))?;
    let tokens = tokens(head);
    if let Some(state) = name.strip_prefix("PROCESS_STATE_") {
        let state = ProcessState::from_name(state)
            .ok_or_else(|| problem(format!("unknown state {}", shown(state))))?;
        let required = |key: &str| {
            tokens
                .get(key)
                .cloned()
                .ok_or_else(|| problem(format!("no '{key}' in {}", shown(head))))
        };
        let from_state = ProcessState::from_name(&required("from_state")?).unwrap_or_default();
        return Ok(Event::ProcessState {
            name: required("processname")?,
            group: required("groupname")?,
            state,
            from_state,
            pid: tokens.get("pid").and_then(|p| p.parse().ok()),
            expected: tokens.get("expected").map(|e| e == "1"),
            tries: tokens.get("tries").and_then(|t| t.parse().ok()),
        });
    }
    match name {
        "SUPERVISOR_STATE_CHANGE_RUNNING" => Ok(Event::SupervisorState { running: true }),
        "SUPERVISOR_STATE_CHANGE_STOPPING" => Ok(Event::SupervisorState { running: false }),
        _ if name.starts_with("TICK_") => {
            let when = tokens
                .get("when")
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| problem(format!("no 'when' in {}", shown(head))))?;
            Ok(Event::Tick { when })
        }
        _ => Ok(Event::Other),
    }
}

/// Reads one event: its header line and exactly `len` payload bytes. `Ok(None)` at the end of
/// input (supervisord closed the pipe). A header too long or unparsable is an error after the
/// line was consumed; a payload over [`MAX_PAYLOAD_BYTES`] is read through and dropped (the
/// stream stays in step), and returned empty.
pub async fn read_event<R: AsyncBufRead + Unpin>(
    input: &mut R,
) -> std::io::Result<Option<Result<(EventHeader, Vec<u8>), EventError>>> {
    let mut line = Vec::new();
    let read = (&mut *input)
        .take(MAX_HEADER_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if line.len() > MAX_HEADER_BYTES {
            // Skip the rest of the overlong line so the next read starts at a line.
            let mut rest = Vec::new();
            input.read_until(b'\n', &mut rest).await?;
            return Ok(Some(Err(EventError::Header(format!(
                "longer than {MAX_HEADER_BYTES} bytes"
            )))));
        }
        return Ok(None);
    }
    line.pop();
    let text = String::from_utf8_lossy(&line);
    let header = match parse_header(text.trim_end_matches('\r')) {
        Ok(header) => header,
        Err(error) => return Ok(Some(Err(error))),
    };
    if header.len > MAX_PAYLOAD_BYTES {
        let skipped = tokio::io::copy(
            &mut (&mut *input).take(header.len as u64),
            &mut tokio::io::sink(),
        )
        .await?;
        if skipped < header.len as u64 {
            return Ok(None);
        }
        return Ok(Some(Ok((header, Vec::new()))));
    }
    let mut payload = vec![0; header.len];
    match input.read_exact(&mut payload).await {
        Ok(_) => Ok(Some(Ok((header, payload)))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// `key:value` tokens separated by spaces; a token without `:` is ignored.
fn tokens(text: &str) -> HashMap<String, String> {
    text.split(' ')
        .filter_map(|t| t.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Text from supervisord quoted in a message: printable and cut short.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(120).collect();
    format!("{:?}", cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "ver:3.0 server:supervisor serial:21 pool:otel poolserial:10 eventname:PROCESS_STATE_EXITED len:54";

    #[test]
    fn a_header_parses() {
        let h = parse_header(HEADER).unwrap();
        assert_eq!(
            h,
            EventHeader {
                serial: 21,
                pool: "otel".into(),
                eventname: "PROCESS_STATE_EXITED".into(),
                len: 54
            }
        );
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        assert_eq!(
            parse_header("ver:3.0 eventname:X").unwrap_err().to_string(),
            "event header: no 'len' in \"ver:3.0 eventname:X\""
        );
        assert!(parse_header("eventname:X len:-1")
            .unwrap_err()
            .to_string()
            .contains("'len' is not a number"));
    }

    fn header(eventname: &str, len: usize) -> EventHeader {
        EventHeader {
            serial: 1,
            pool: "otel".into(),
            eventname: eventname.into(),
            len,
        }
    }

    #[test]
    fn process_state_events_carry_their_fields() {
        let payload = b"processname:cat groupname:cats from_state:RUNNING expected:0 pid:2766";
        let event = parse_event(&header("PROCESS_STATE_EXITED", payload.len()), payload).unwrap();
        assert_eq!(
            event,
            Event::ProcessState {
                name: "cat".into(),
                group: "cats".into(),
                state: ProcessState::Exited,
                from_state: ProcessState::Running,
                pid: Some(2766),
                expected: Some(false),
                tries: None,
            }
        );
        let payload = b"processname:cat groupname:cat from_state:STOPPED tries:0";
        let Event::ProcessState { tries, state, .. } =
            parse_event(&header("PROCESS_STATE_STARTING", payload.len()), payload).unwrap()
        else {
            panic!("a process state event")
        };
        assert_eq!((state, tries), (ProcessState::Starting, Some(0)));
    }

    #[test]
    fn other_events_and_ticks() {
        assert_eq!(
            parse_event(&header("TICK_5", 15), b"when:1201063880").unwrap(),
            Event::Tick { when: 1201063880 }
        );
        assert_eq!(
            parse_event(&header("SUPERVISOR_STATE_CHANGE_STOPPING", 0), b"").unwrap(),
            Event::SupervisorState { running: false }
        );
        assert_eq!(
            parse_event(
                &header("PROCESS_LOG_STDOUT", 40),
                b"processname:a groupname:a pid:1\nhello\n"
            )
            .unwrap(),
            Event::Other
        );
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        for (name, payload) in [
            (
                "PROCESS_STATE_NOPE",
                &b"processname:a groupname:a from_state:RUNNING"[..],
            ),
            ("PROCESS_STATE_RUNNING", b"groupname:a from_state:STARTING"),
            ("PROCESS_STATE_RUNNING", b"\xff\xfe"),
            ("TICK_5", b"when:soon"),
        ] {
            let error = parse_event(&header(name, payload.len()), payload).unwrap_err();
            assert!(
                error.to_string().starts_with(&format!("event {name}: ")),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn events_are_read_in_step() {
        let payload = "processname:cat groupname:cat from_state:STARTING pid:7";
        let stream = format!(
            "ver:3.0 server:supervisor serial:1 pool:p poolserial:1 eventname:PROCESS_STATE_RUNNING len:{}\n{payload}\
             eventname:TICK_5 len:15\nwhen:1201063880",
            payload.len()
        );
        let mut input = tokio::io::BufReader::new(stream.as_bytes());
        let (h, p) = read_event(&mut input).await.unwrap().unwrap().unwrap();
        assert_eq!(h.eventname, "PROCESS_STATE_RUNNING");
        assert_eq!(p, payload.as_bytes());
        let (h, p) = read_event(&mut input).await.unwrap().unwrap().unwrap();
        assert_eq!(
            (h.eventname.as_str(), p.as_slice()),
            ("TICK_5", &b"when:1201063880"[..])
        );
        assert!(read_event(&mut input).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_bad_header_is_reported_and_reading_goes_on() {
        let long = "x".repeat(MAX_HEADER_BYTES + 10);
        let stream = format!("garbage\n{long}\neventname:TICK_5 len:4\nwhen");
        let mut input = tokio::io::BufReader::new(stream.as_bytes());
        assert!(read_event(&mut input).await.unwrap().unwrap().is_err());
        let error = read_event(&mut input).await.unwrap().unwrap().unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
        let (h, _) = read_event(&mut input).await.unwrap().unwrap().unwrap();
        assert_eq!(h.eventname, "TICK_5");
    }

    #[tokio::test]
    async fn a_cut_payload_is_the_end_of_input() {
        let mut input = tokio::io::BufReader::new(&b"eventname:TICK_5 len:99\nwhen:1"[..]);
        assert!(read_event(&mut input).await.unwrap().is_none());
    }
}
