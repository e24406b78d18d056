//! The poll client: one supervisord, one [`Snapshot`] per poll.
//!
//! A poll is one `system.multicall` round trip when the server has it (supervisord always has),
//! separate calls otherwise. Only `getAllProcessInfo` is essential; the other answers are
//! optional and their failures become problem strings, as Datadog treats its version lookup.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::settings::{Endpoint, Target};
use crate::supervisor::decode::{self, ModelError};
use crate::supervisor::transport::{RpcTransport, TransportBuildError, TransportError};
use crate::supervisor::xmlrpc::fast::{Item, Reader};
use crate::supervisor::xmlrpc::{self, DecodeError, Fault, Value};
use crate::vocab::{ProcessInfo, Snapshot};

const GET_ALL_PROCESS_INFO: &str = "supervisor.getAllProcessInfo";
const GET_STATE: &str = "supervisor.getState";
const GET_IDENTIFICATION: &str = "supervisor.getIdentification";
const GET_SUPERVISOR_VERSION: &str = "supervisor.getSupervisorVersion";

/// The optional calls, in the order they follow `getAllProcessInfo` in the multicall.
const SECONDARY: [&str; 3] = [GET_STATE, GET_IDENTIFICATION, GET_SUPERVISOR_VERSION];

/// What a poll learned, and what it could not read (logged, never fatal).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolledSnapshot {
    pub snapshot: Snapshot,
    /// Problems in the process entries and failures of the optional calls, e.g.
    /// `getSupervisorVersion failed: 1 UNKNOWN_METHOD`.
    pub problems: Vec<String>,
}

/// Why a poll produced no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// `getAllProcessInfo` answered with a fault.
    #[error("{0}")]
    Fault(Fault),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Model(#[from] ModelError),
}

impl PollError {
    /// The message Datadog's check gives for the same failure (its `can_connect` text), so
    /// existing alerts and log searches keep matching.
    pub fn message(&self, target: &Target) -> String {
        let name = &target.name;
        match self {
            PollError::Transport(error) => match error {
                TransportError::Connect { .. }
                | TransportError::Timeout { .. }
                | TransportError::Io { .. }
                | TransportError::Tls { .. } => cannot_connect(&target.endpoint),
                TransportError::Unauthorized => {
                    format!("Username or password to {name} are incorrect.")
                }
                TransportError::HttpStatus { code, reason } => {
                    format!("An error occurred while connecting to {name}: {code} {reason}")
                }
                TransportError::TooLarge { .. } => format!("Invalid reply from {name}: {error}"),
            },
            PollError::Fault(fault) => {
                format!("An error occurred while reading process information: {fault}")
            }
            PollError::Decode(error) => format!("Invalid reply from {name}: {error}"),
            PollError::Model(error) => format!("Invalid reply from {name}: {error}"),
        }
    }

    /// The cause that [`message`](Self::message) hides, to log beside it.
    pub fn detail(&self) -> Option<String> {
        match self {
            PollError::Transport(TransportError::Connect { reason }) => Some(reason.clone()),
            PollError::Transport(TransportError::Timeout { after, stalled }) => {
                Some(format!("timed out after {after:?} {stalled}"))
            }
            PollError::Transport(
                error @ (TransportError::Io { .. } | TransportError::Tls { .. }),
            ) => Some(error.to_string()),
            _ => None,
        }
    }

    /// A low-cardinality label for self-telemetry.
    pub fn error_type(&self) -> &'static str {
        match self {
            PollError::Transport(error) => match error {
                TransportError::Connect { .. } => "connect",
                TransportError::Timeout { .. } => "timeout",
                TransportError::Unauthorized => "unauthorized",
                TransportError::HttpStatus { .. } => "http_status",
                TransportError::TooLarge { .. } => "too_large",
                TransportError::Io { .. } => "io",
                TransportError::Tls { .. } => "tls",
            },
            PollError::Fault(_) => "fault",
            PollError::Decode(_) | PollError::Model(_) => "invalid_reply",
        }
    }
}

fn cannot_connect(endpoint: &Endpoint) -> String {
    let shown = endpoint.display();
    match endpoint {
        Endpoint::Tcp { .. } => format!(
            "Cannot connect to {shown}. Make sure supervisor is running and XML-RPC inet interface is enabled."
        ),
        Endpoint::Unix { .. } => format!(
            "Cannot connect to {shown}. Make sure supervisor is running and socket is enabled and socket file has the right permissions."
        ),
    }
}

/// The request bodies of a poll. They are the same for every target, so they are encoded once
/// per process and shared ([`Bytes`] clones share the buffer): 1.5 KB less per target, 15 MB
/// in a fleet of 10,000.
struct PollBodies {
    multicall: Bytes,
    get_all: Bytes,
    secondary: [Bytes; 3],
}

impl PollBodies {
    fn shared() -> &'static PollBodies {
        static BODIES: std::sync::OnceLock<PollBodies> = std::sync::OnceLock::new();
        BODIES.get_or_init(|| {
            let no_params: &[Value] = &[];
            let calls: Vec<(&str, &[Value])> = std::iter::once(GET_ALL_PROCESS_INFO)
                .chain(SECONDARY)
                .map(|method| (method, no_params))
                .collect();
            PollBodies {
                multicall: Bytes::from(xmlrpc::encode_multicall(&calls)),
                get_all: call_body(GET_ALL_PROCESS_INFO),
                secondary: SECONDARY.map(call_body),
            }
        })
    }
}

/// Polls one supervisord. Built once per target; its request bodies are [`PollBodies`]'.
pub struct SupervisorClient {
    /// The target's name, for the one log line this client writes itself.
    name: String,
    pub(super) transport: RpcTransport,
    pub(super) timeout: Duration,
    /// Set when the server answered `system.multicall` with a fault: it lacks the method, and
    /// every later poll of this client goes straight to separate calls.
    pub(super) separate_calls: AtomicBool,
    bodies: &'static PollBodies,
}

impl SupervisorClient {
    pub fn new(target: &Target) -> Result<Self, TransportBuildError> {
        let transport = RpcTransport::new(target)?;
        Ok(SupervisorClient {
            name: target.name.clone(),
            transport,
            timeout: target.timeout,
            separate_calls: AtomicBool::new(false),
            bodies: PollBodies::shared(),
        })
    }

    /// One poll, bounded as a whole by the target's timeout (never longer than its interval,
    /// so a target has at most one poll in flight). Every request, connect and read of the poll
    /// is inside this bound; when it passes, the request is dropped, which closes its
    /// connection, and the error says where it stalled.
    pub async fn poll(&self) -> Result<PolledSnapshot, PollError> {
        match tokio::time::timeout(self.timeout, self.poll_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(PollError::Transport(TransportError::Timeout {
                after: self.timeout,
                stalled: self.transport.stalled(),
            })),
        }
    }

    async fn poll_unbounded(&self) -> Result<PolledSnapshot, PollError> {
        if !self.separate_calls.load(Ordering::Relaxed) {
            let reply = self.transport.post(self.bodies.multicall.clone()).await?;
            match decode_multicall_reply(&reply)? {
                Ok(polled) => return Ok(polled),
                Err(fault) => {
                    tracing::info!(
                        server = %self.name,
                        fault = %fault,
                        "the server refused system.multicall; polling with separate calls from now on"
                    );
                    self.separate_calls.store(true, Ordering::Relaxed);
                }
            }
        }
        self.poll_separately().await
    }

    async fn poll_separately(&self) -> Result<PolledSnapshot, PollError> {
        let reply = self.transport.post(self.bodies.get_all.clone()).await?;
        let processes = match decode_processes_reply(&reply) {
            Ok(Ok(processes)) => Ok(processes),
            Ok(Err(fault)) => return Err(PollError::Fault(fault)),
            // A reply that is not a process array fails the poll after the optional calls.
            Err(PollError::Model(error)) => Err(error),
            Err(error) => return Err(error),
        };
        let mut answers = Vec::with_capacity(SECONDARY.len());
        for body in &self.bodies.secondary {
            answers.push(match self.call(body).await {
                Ok(Ok(value)) => Answer::Value(value),
                Ok(Err(fault)) => Answer::Failed(fault.to_string()),
                Err(error) => Answer::Failed(error.to_string()),
            });
        }
        Ok(assemble(processes?, answers))
    }

    async fn call(&self, body: &Bytes) -> Result<Result<Value, Fault>, PollError> {
        let reply = self.transport.post(body.clone()).await?;
        Ok(xmlrpc::decode_response(&reply)?)
    }
}

/// What a poll makes of the body of a `system.multicall` reply: everything after the
/// transport, without a server (the fuzz targets drive it). `Ok(Err(fault))` when the server
/// refused the multicall itself, which sends the client to separate calls.
///
/// The fast path first, the general decoder for whatever it declines (see
/// [`xmlrpc::fast`](crate::supervisor::xmlrpc)): same results, a fraction of the CPU.
pub fn decode_multicall_reply(body: &[u8]) -> Result<Result<PolledSnapshot, Fault>, PollError> {
    match fast_multicall_reply(body) {
        Some(polled) => Ok(Ok(polled)),
        None => general_multicall_reply(body),
    }
}

/// [`decode_multicall_reply`] through the general decoder alone: the reference the fast path
/// is tested against, and what decodes every reply the fast path declines.
pub fn general_multicall_reply(body: &[u8]) -> Result<Result<PolledSnapshot, Fault>, PollError> {
    match xmlrpc::decode_response(body)? {
        Ok(results) => from_multicall(results).map(Ok),
        Err(fault) => Ok(Err(fault)),
    }
}

/// [`decode_multicall_reply`]'s fast path alone: `Some` only with exactly what
/// [`general_multicall_reply`] gives, `None` to leave the reply to it (a multicall fault, a
/// `getAllProcessInfo` fault or odd result, anything the fast reader does not recognise).
/// Public for the differential tests and the fuzz targets.
pub fn fast_multicall_reply(body: &[u8]) -> Option<PolledSnapshot> {
    let mut reader = Reader::params(body)?;
    if reader.value()? != Item::Array || reader.array_item()? != Some(Item::Array) {
        return None;
    }
    let processes = decode::fast_processes(&mut reader, true)?;
    // The small answers after it, as the general decoder would have made them.
    let mut rest = Vec::new();
    while let Some(item) = reader.array_item()? {
        rest.push(reader.tree(item, SMALL_ANSWER_DEPTH)?);
    }
    reader.end_params()?;
    let answers = secondary_answers(xmlrpc::split_multicall(Value::Array(rest)).ok()?);
    Some(assemble(processes, answers))
}

/// How deep the optional answers may nest for the fast path: a conventional one-element
/// wrapper around `getState`'s struct is two levels.
const SMALL_ANSWER_DEPTH: usize = 3;

/// What a poll without `system.multicall` makes of the body of a `getAllProcessInfo` reply:
/// the processes and the problems met, or the server's fault. Fast path first, as
/// [`decode_multicall_reply`].
pub fn decode_processes_reply(body: &[u8]) -> Result<ProcessesReply, PollError> {
    match fast_processes_reply(body) {
        Some(processes) => Ok(Ok(processes)),
        None => general_processes_reply(body),
    }
}

/// The processes of a `getAllProcessInfo` reply and the problems met, or the server's fault.
pub type ProcessesReply = Result<(Vec<ProcessInfo>, Vec<String>), Fault>;

/// [`decode_processes_reply`] through the general decoder alone.
pub fn general_processes_reply(body: &[u8]) -> Result<ProcessesReply, PollError> {
    match xmlrpc::decode_response(body)? {
        Ok(value) => Ok(Ok(decode::processes(&value)?)),
        Err(fault) => Ok(Err(fault)),
    }
}

/// [`decode_processes_reply`]'s fast path alone, as [`fast_multicall_reply`].
pub fn fast_processes_reply(body: &[u8]) -> Option<(Vec<ProcessInfo>, Vec<String>)> {
    let mut reader = Reader::params(body)?;
    if reader.value()? != Item::Array {
        return None;
    }
    let processes = decode::fast_processes(&mut reader, false)?;
    reader.end_params()?;
    Some(processes)
}

fn call_body(method: &str) -> Bytes {
    Bytes::from(xmlrpc::encode_call(method, &[]))
}

/// What became of one optional call.
enum Answer {
    Value(Value),
    Failed(String),
    Missing,
}

/// Decodes a `system.multicall` reply of the four poll calls with the general path; public so
/// golden tests replay recorded replies through it.
pub fn from_multicall(results: Value) -> Result<PolledSnapshot, PollError> {
    let mut results = xmlrpc::split_multicall(results)?.into_iter();
    let processes = match results.next() {
        Some(Ok(value)) => xmlrpc::unwrap_multicall(value, true),
        Some(Err(fault)) => return Err(PollError::Fault(fault)),
        None => {
            return Err(PollError::Decode(DecodeError::BadMulticall(
                "no result for getAllProcessInfo".to_owned(),
            )))
        }
    };
    let processes = decode::processes(&processes)?;
    Ok(assemble(processes, secondary_answers(results)))
}

/// The optional answers of a multicall, in [`SECONDARY`] order, from the results that follow
/// `getAllProcessInfo`'s (more are ignored).
fn secondary_answers(results: impl IntoIterator<Item = Result<Value, Fault>>) -> Vec<Answer> {
    let mut results = results.into_iter();
    SECONDARY
        .iter()
        .map(|_| match results.next() {
            Some(Ok(value)) => Answer::Value(xmlrpc::unwrap_multicall(value, false)),
            Some(Err(fault)) => Answer::Failed(fault.to_string()),
            None => Answer::Missing,
        })
        .collect()
}

/// Builds the snapshot from the decoded processes and the optional answers, in [`SECONDARY`]
/// order.
fn assemble(
    (processes, mut problems): (Vec<ProcessInfo>, Vec<String>),
    answers: Vec<Answer>,
) -> PolledSnapshot {
    let mut snapshot = Snapshot {
        processes,
        ..Snapshot::default()
    };
    for (method, answer) in SECONDARY.iter().zip(answers) {
        let short = method.strip_prefix("supervisor.").unwrap_or(method);
        let value = match answer {
            Answer::Value(value) => value,
            Answer::Failed(why) => {
                problems.push(format!("{short} failed: {why}"));
                continue;
            }
            Answer::Missing => {
                problems.push(format!("{short}: no result in the multicall reply"));
                continue;
            }
        };
        let read = match *method {
            GET_STATE => {
                snapshot.state = decode::supervisor_state(&value);
                snapshot.state.is_some()
            }
            GET_IDENTIFICATION => {
                snapshot.identification = decode::string(&value);
                snapshot.identification.is_some()
            }
            _ => {
                snapshot.version = decode::string(&value);
                snapshot.version.is_some()
            }
        };
        if !read {
            problems.push(format!(
                "{short} returned {} that is not understood",
                value.kind()
            ));
        }
    }
    PolledSnapshot { snapshot, problems }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
