//! supervisord's log API, as the output tail uses it: the size of a program's log, an exact
//! window of it, and a window of supervisord's own log.
//!
//! Two calls make a read, because neither call alone is safe (checked against supervisord
//! 4.3.0's `tailFile` and `readFile`):
//! - `tailProcessStdoutLog(name, offset, length)` returns the log's *last* `length` bytes
//!   whenever more than `length` were written since `offset` (and sets its overflow flag), not
//!   the bytes after `offset`. With `length` 0 it returns no data and the log's size, whatever
//!   the offset: that is how the size is asked ([`LogCall::Size`]).
//! - `readProcessStdoutLog(name, offset, length)` returns exactly the window asked
//!   ([`LogCall::Read`]), but says nothing of the size, and a `length` of 0 means "to the end",
//!   unbounded: it is never sent with 0.
//!
//! supervisord decodes the window as UTF-8 before answering, so a window that starts or ends
//! inside a multi-byte character, or holds bytes that are not UTF-8, fails the whole call.
//! Inside `system.multicall` that failure is a fault whose text names the position of the
//! first byte it could not decode ([`LogAnswer::Undecodable`]): the tail moves its window by
//! it. A call made on its own fails with HTTP 500 instead, which names nothing.
//!
//! All the calls of one round go in one multicall (several when their windows add up to more
//! than [`MAX_WINDOW_BYTES_PER_REQUEST`]), each request bounded by the target's timeout.

use std::sync::atomic::Ordering;

use crate::settings::OutputStream;
use crate::supervisor::client::{PollError, SupervisorClient};
use crate::supervisor::transport::TransportError;
use crate::supervisor::xmlrpc::{self, Fault, Value};

/// The bytes of windows asked in one request. The reply escapes `&`, `<` and `>` (up to five
/// bytes each), so even a window of nothing else stays under the transport's 16 MiB cap.
pub const MAX_WINDOW_BYTES_PER_REQUEST: u64 = 2 * 1024 * 1024;

/// supervisord's `FAILED` fault code, which carries the undecodable window's error.
const FAILED: i64 = 30;
/// supervisord's `NO_FILE`: the program logs to no file (or it was removed).
const NO_FILE: i64 = 70;

/// One call of the log API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCall<'a> {
    /// The size of a program's log (`tailProcess…Log(name, 0, 0)`): no data is read.
    Size {
        process: &'a str,
        stream: OutputStream,
    },
    /// Exactly `length` bytes (fewer at the end of the log) from `offset`; `length` > 0.
    Read {
        process: &'a str,
        stream: OutputStream,
        offset: u64,
        length: u64,
    },
    /// A window of supervisord's own log (`readLog`); `length` > 0.
    ReadMain { offset: u64, length: u64 },
}

impl LogCall<'_> {
    fn method(&self) -> &'static str {
        match self {
            LogCall::Size {
                stream: OutputStream::Stdout,
                ..
            } => "supervisor.tailProcessStdoutLog",
            LogCall::Size {
                stream: OutputStream::Stderr,
                ..
            } => "supervisor.tailProcessStderrLog",
            LogCall::Read {
                stream: OutputStream::Stdout,
                ..
            } => "supervisor.readProcessStdoutLog",
            LogCall::Read {
                stream: OutputStream::Stderr,
                ..
            } => "supervisor.readProcessStderrLog",
            LogCall::ReadMain { .. } => "supervisor.readLog",
        }
    }

    fn params(&self) -> Vec<Value> {
        let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
        match self {
            LogCall::Size { process, .. } => {
                vec![Value::String((*process).to_owned()), int(0), int(0)]
            }
            LogCall::Read {
                process,
                offset,
                length,
                ..
            } => vec![
                Value::String((*process).to_owned()),
                int(*offset),
                int((*length).max(1)),
            ],
            LogCall::ReadMain { offset, length } => vec![int(*offset), int((*length).max(1))],
        }
    }

    fn window(&self) -> u64 {
        match self {
            LogCall::Size { .. } => 0,
            LogCall::Read { length, .. } | LogCall::ReadMain { length, .. } => *length,
        }
    }
}

/// What one call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogAnswer {
    /// [`LogCall::Size`]: the log's size in bytes (0 when the program logs to no file).
    Size(u64),
    /// A read's window, as supervisord decoded it.
    Text(String),
    /// The program logs to no file, or the file is gone.
    NoFile,
    /// supervisord could not decode the window as UTF-8.
    Undecodable(Undecodable),
    /// Any other refusal (`BAD_NAME` for a program that went away, `FAILED` for a file that
    /// could not be read).
    Fault(Fault),
    /// An answer of another shape than the call returns.
    Invalid(String),
}

/// Where supervisord's UTF-8 decoding of a window failed, from its fault text
/// (`'utf-8' codec can't decode byte 0xe2 in position 99: unexpected end of data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable {
    /// The offset in the window of the first byte it could not decode; `None` when the
    /// failure named none (a call made outside a multicall).
    pub position: Option<u64>,
    /// That byte, when named.
    pub byte: Option<u8>,
    /// The window ended inside a character (`unexpected end of data`), rather than holding a
    /// byte that starts none.
    pub incomplete: bool,
}

impl Undecodable {
    /// Reads the position, byte and kind from a `FAILED` fault's text; `None` when the fault
    /// is about something else.
    ///
    /// supervisord 4.3.0 names none of them: its read calls catch `ValueError` to map a
    /// `readFile` failure to a fault name, and `UnicodeDecodeError` is one, so the fault says
    /// `type object 'Faults' has no attribute 'utf-8'` (the error's first argument, the
    /// codec). Other versions let the decode error through, position and all.
    pub fn from_fault(fault: &Fault) -> Option<Undecodable> {
        let text = &fault.message;
        let is_decode_failure = text.contains("UnicodeDecodeError")
            || text.contains("has no attribute 'utf-8'")
            || text.contains("has no attribute 'utf8'");
        if fault.code != FAILED || !is_decode_failure {
            return None;
        }
        let number_after = |marker: &str, radix: u32| {
            let start = text.find(marker)? + marker.len();
            let digits: String = text[start..]
                .chars()
                .take_while(|c| c.is_digit(radix))
                .collect();
            u64::from_str_radix(&digits, radix).ok()
        };
        Some(Undecodable {
            position: number_after("in position ", 10),
            byte: number_after("decode byte 0x", 16).and_then(|b| u8::try_from(b).ok()),
            incomplete: text.contains("unexpected end of data"),
        })
    }
}

impl SupervisorClient {
    /// Makes `calls`, one answer each in the same order. Fails only when a request as a
    /// whole failed (the transport, a reply that is not XML-RPC); each call's own refusal is
    /// its answer.
    pub async fn log_calls(&self, calls: &[LogCall<'_>]) -> Result<Vec<LogAnswer>, PollError> {
        let mut answers = Vec::with_capacity(calls.len());
        let mut start = 0;
        while start < calls.len() {
            let mut end = start + 1;
            let mut window = calls[start].window();
            while end < calls.len() && window + calls[end].window() <= MAX_WINDOW_BYTES_PER_REQUEST
            {
                window += calls[end].window();
                end += 1;
            }
            let chunk = &calls[start..end];
            if self.separate_calls.load(Ordering::Relaxed) {
                for call in chunk {
                    answers.push(self.one_log_call(call).await?);
                }
            } else {
                answers.extend(self.log_multicall(chunk).await?);
            }
            start = end;
        }
        Ok(answers)
    }

    async fn log_multicall(&self, calls: &[LogCall<'_>]) -> Result<Vec<LogAnswer>, PollError> {
        let params: Vec<Vec<Value>> = calls.iter().map(LogCall::params).collect();
        let encoded: Vec<(&str, &[Value])> = calls
            .iter()
            .zip(&params)
            .map(|(call, params)| (call.method(), params.as_slice()))
            .collect();
        let reply = self
            .bounded_post(xmlrpc::encode_multicall(&encoded))
            .await?;
        let results = match xmlrpc::decode_response_keeping_line_ends(&reply)? {
            Ok(value) => xmlrpc::split_multicall(value)?,
            Err(fault) => return Err(PollError::Fault(fault)),
        };
        let mut results = results.into_iter();
        Ok(calls
            .iter()
            .map(|call| match results.next() {
                Some(result) => answer(call, result),
                None => LogAnswer::Invalid("no result in the multicall reply".into()),
            })
            .collect())
    }

    async fn one_log_call(&self, call: &LogCall<'_>) -> Result<LogAnswer, PollError> {
        let body = xmlrpc::encode_call(call.method(), &call.params());
        match self.bounded_post(body).await {
            Ok(reply) => Ok(answer(
                call,
                xmlrpc::decode_response_keeping_line_ends(&reply)?,
            )),
            // supervisord answers an exception outside a multicall (the undecodable window)
            // with a bare 500.
            Err(PollError::Transport(TransportError::HttpStatus { code: 500, .. }))
                if !matches!(call, LogCall::Size { .. }) =>
            {
                Ok(LogAnswer::Undecodable(Undecodable {
                    position: None,
                    byte: None,
                    incomplete: false,
                }))
            }
            Err(error) => Err(error),
        }
    }

    async fn bounded_post(&self, body: Vec<u8>) -> Result<bytes::Bytes, PollError> {
        match tokio::time::timeout(self.timeout, self.transport.post(body.into())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(PollError::Transport(TransportError::Timeout {
                after: self.timeout,
                stalled: self.transport.stalled(),
            })),
        }
    }
}

/// One call's result as its answer.
fn answer(call: &LogCall<'_>, result: Result<Value, Fault>) -> LogAnswer {
    let value = match result {
        Ok(value) => value,
        Err(fault) if fault.code == NO_FILE => return LogAnswer::NoFile,
        Err(fault) => {
            return match Undecodable::from_fault(&fault) {
                Some(undecodable) => LogAnswer::Undecodable(undecodable),
                None => LogAnswer::Fault(fault),
            }
        }
    };
    match call {
        LogCall::Size { .. } => {
            let value = xmlrpc::unwrap_multicall(value, true);
            match value.as_array() {
                Some([_, Value::Int(size), _]) => {
                    LogAnswer::Size(u64::try_from(*size).unwrap_or(0))
                }
                _ => LogAnswer::Invalid(format!(
                    "{} answered {}, not [data, offset, overflow]",
                    call.method(),
                    value.kind()
                )),
            }
        }
        LogCall::Read { .. } | LogCall::ReadMain { .. } => {
            match xmlrpc::unwrap_multicall(value, false) {
                Value::String(text) => LogAnswer::Text(text),
                other => LogAnswer::Invalid(format!(
                    "{} answered {}, not a string",
                    call.method(),
                    other.kind()
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(message: &str) -> Fault {
        Fault {
            code: FAILED,
            message: message.into(),
        }
    }

    #[test]
    fn supervisords_decode_failures_name_position_byte_and_kind() {
        let cut = failed("FAILED: <class 'UnicodeDecodeError'>:'utf-8' codec can't decode byte 0xe2 in position 99: unexpected end of data");
        assert_eq!(
            Undecodable::from_fault(&cut),
            Some(Undecodable {
                position: Some(99),
                byte: Some(0xe2),
                incomplete: true
            })
        );
        let bad = failed("FAILED: <class 'UnicodeDecodeError'>:'utf-8' codec can't decode byte 0xff in position 0: invalid start byte");
        assert_eq!(
            Undecodable::from_fault(&bad),
            Some(Undecodable {
                position: Some(0),
                byte: Some(0xff),
                incomplete: false
            })
        );
        // Python names a range for some errors: the first byte is what counts.
        let range = failed("FAILED: <class 'UnicodeDecodeError'>:'utf-8' codec can't decode bytes in position 3-4: invalid continuation byte");
        assert_eq!(
            Undecodable::from_fault(&range).map(|u| (u.position, u.byte)),
            Some((Some(3), None))
        );
        assert_eq!(
            Undecodable::from_fault(&failed("FAILED: disk on fire")),
            None
        );
        let other_code = Fault {
            code: 10,
            message: "BAD_NAME: UnicodeDecodeError".into(),
        };
        assert_eq!(Undecodable::from_fault(&other_code), None);
    }

    #[test]
    fn answers_take_the_shape_of_their_call() {
        let size = LogCall::Size {
            process: "web:web_0",
            stream: OutputStream::Stdout,
        };
        let read = LogCall::Read {
            process: "web:web_0",
            stream: OutputStream::Stderr,
            offset: 10,
            length: 5,
        };
        let tail_reply = Value::Array(vec![
            Value::String(String::new()),
            Value::Int(1234),
            Value::Bool(true),
        ]);
        assert_eq!(answer(&size, Ok(tail_reply)), LogAnswer::Size(1234));
        assert_eq!(
            answer(&read, Ok(Value::Array(vec![Value::String("abc".into())]))),
            LogAnswer::Text("abc".into())
        );
        assert_eq!(
            answer(
                &read,
                Err(Fault {
                    code: NO_FILE,
                    message: "NO_FILE: /x".into()
                })
            ),
            LogAnswer::NoFile
        );
        assert!(matches!(
            answer(&size, Ok(Value::Int(3))),
            LogAnswer::Invalid(_)
        ));
        assert!(matches!(
            answer(&read, Ok(Value::Int(3))),
            LogAnswer::Invalid(_)
        ));
    }

    /// A window holds the log's bytes as they are: the offset moves by the string's length.
    #[test]
    fn carriage_returns_in_a_window_are_kept() {
        let body = b"<?xml version='1.0'?>\n<methodResponse><params><param><value><string>a\r\nb\rc</string></value></param></params></methodResponse>\n";
        assert_eq!(
            xmlrpc::decode_response_keeping_line_ends(body).unwrap(),
            Ok(Value::String("a\r\nb\rc".into()))
        );
        assert_eq!(
            xmlrpc::decode_response(body).unwrap(),
            Ok(Value::String("a\nb\nc".into())),
            "other replies are read as XML says"
        );
    }

    #[test]
    fn a_read_never_asks_for_the_unbounded_length_zero() {
        let read = LogCall::ReadMain {
            offset: 0,
            length: 0,
        };
        assert_eq!(read.params(), vec![Value::Int(0), Value::Int(1)]);
        assert_eq!(read.method(), "supervisor.readLog");
    }
}
