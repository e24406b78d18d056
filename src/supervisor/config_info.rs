//! `supervisor.getAllConfigInfo`: what supervisord's configuration says of each process, of
//! which the receiver reads `autostart` (whether a stopped program is stopped on purpose).
//!
//! The reply is large (about 2.5 KB per process: 2.5 MB and a second of supervisord's time for
//! 1,000 programs), so it is not part of the poll's multicall: the scrape layer decides when to
//! ask (`scrape::config_info`), and this module makes the one call and decodes its reply.
//!
//! supervisord 4.3.0 writes, per process, `autostart`, `directory`, `uid`, `command`,
//! `exitcodes` (an array), `group`, `group_prio`, `inuse`, `killasgroup`, `name`, the log and
//! signal settings and `serverurl`; later versions add members (`autorestart`). Only `name`,
//! `group` and `autostart` are read, and decoding is lenient as for `getAllProcessInfo`
//! ([`super::decode`]): an entry that cannot be read is skipped with a problem string, and its
//! process is left without `autostart`; the other entries still count.

use std::time::Duration;

use bytes::Bytes;

use crate::supervisor::client::SupervisorClient;
use crate::supervisor::decode::{Problems, MAX_NAME_BYTES, MAX_PROCESSES};
use crate::supervisor::transport::TransportError;
use crate::supervisor::xmlrpc::{self, printable, DecodeError, Fault, Value};
use crate::vocab::ProcessConfig;

pub const GET_ALL_CONFIG_INFO: &str = "supervisor.getAllConfigInfo";

/// How much of a name a problem string quotes: names come from the server and go into logs.
const NAME_LIMIT: usize = 100;

/// Why a `getAllConfigInfo` call gave nothing to use.
#[derive(Debug, thiserror::Error)]
pub enum ConfigInfoError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The server refused the call (a supervisord without the method answers
    /// `1 UNKNOWN_METHOD`).
    #[error("{0}")]
    Fault(Fault),
    #[error("invalid reply: {0}")]
    Decode(#[from] DecodeError),
    #[error("invalid reply: {found} instead of an array")]
    NotAnArray { found: &'static str },
}

/// The configuration of each process the reply described, in supervisord's order, and the
/// problems met (entries skipped).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigInfo {
    pub processes: Vec<ProcessConfig>,
    pub problems: Vec<String>,
}

impl SupervisorClient {
    /// One `getAllConfigInfo` call, bounded by `within` (what is left of the poll's timeout, so
    /// a poll and this call together never outlast it).
    pub async fn config_info(&self, within: Duration) -> Result<ConfigInfo, ConfigInfoError> {
        let body = Bytes::from(xmlrpc::encode_call(GET_ALL_CONFIG_INFO, &[]));
        let reply = match tokio::time::timeout(within, self.transport.post(body)).await {
            Ok(reply) => reply?,
            Err(_) => {
                return Err(ConfigInfoError::Transport(TransportError::Timeout {
                    after: within,
                    stalled: self.transport.stalled(),
                }))
            }
        };
        decode_config_info_reply(&reply)
    }
}

/// What the body of a `getAllConfigInfo` reply says, without a server (the tests and the fuzz
/// checks drive it).
pub fn decode_config_info_reply(body: &[u8]) -> Result<ConfigInfo, ConfigInfoError> {
    match xmlrpc::decode_response(body)? {
        Ok(value) => config_info(&value),
        Err(fault) => Err(ConfigInfoError::Fault(fault)),
    }
}

/// The entries of a `getAllConfigInfo` result.
pub fn config_info(value: &Value) -> Result<ConfigInfo, ConfigInfoError> {
    let entries = value.as_array().ok_or(ConfigInfoError::NotAnArray {
        found: value.kind(),
    })?;
    let mut processes = Vec::with_capacity(entries.len().min(MAX_PROCESSES));
    let mut problems = Problems::default();
    for (index, entry) in entries.iter().enumerate().take(MAX_PROCESSES) {
        match process_config(entry) {
            Ok(config) => processes.push(config),
            // Entries are numbered from 1 in messages, as a person counts them.
            Err(problem) => problems.push(|| problem.describe(index + 1)),
        }
    }
    Ok(ConfigInfo {
        processes,
        problems: problems.finish_entries(entries.len(), "entries"),
    })
}

/// One entry, or why it is skipped.
fn process_config(entry: &Value) -> Result<ProcessConfig, Problem> {
    if entry.as_struct().is_none() {
        return Err(Problem::NotAStruct(entry.kind()));
    }
    let name = match entry.get("name") {
        Some(Value::String(name)) => name,
        Some(other) => return Err(Problem::Field("name", "a string", Some(other.kind()))),
        None => return Err(Problem::Field("name", "a string", None)),
    };
    // As for getAllProcessInfo: a process without a group is its own group.
    let group = match entry.get("group") {
        Some(Value::String(group)) => group,
        None => name,
        Some(other) => {
            return Err(Problem::Named(
                name.clone(),
                Box::new(Problem::Field("group", "a string", Some(other.kind()))),
            ))
        }
    };
    if name.len() > MAX_NAME_BYTES || group.len() > MAX_NAME_BYTES {
        return Err(Problem::Named(name.clone(), Box::new(Problem::TooLong)));
    }
    let autostart = match entry.get("autostart") {
        Some(Value::Bool(autostart)) => *autostart,
        other => {
            let problem = Problem::Field("autostart", "a boolean", other.map(Value::kind));
            return Err(Problem::Named(format!("{group}:{name}"), Box::new(problem)));
        }
    };
    Ok(ProcessConfig {
        name: name.clone(),
        group: group.clone(),
        autostart,
    })
}

/// Why an entry was skipped.
enum Problem {
    NotAStruct(&'static str),
    /// The field, the type it should have, the type it has (`None`: missing).
    Field(&'static str, &'static str, Option<&'static str>),
    TooLong,
    /// A problem of the entry of this process (`name` or `group:name`).
    Named(String, Box<Problem>),
}

impl Problem {
    fn describe(&self, number: usize) -> String {
        match self {
            Problem::Named(who, problem) => {
                format!("entry '{}': {}", printable(who, NAME_LIMIT), problem.what())
            }
            other => format!("entry #{number}: {}", other.what()),
        }
    }

    fn what(&self) -> String {
        match self {
            Problem::NotAStruct(kind) => format!("{kind} instead of a struct, skipped"),
            Problem::Field(field, _, None) => format!("field '{field}' is missing, skipped"),
            Problem::Field(field, expected, Some(found)) => {
                format!("field '{field}' is {found}, not {expected}, skipped")
            }
            Problem::TooLong => format!("name longer than {MAX_NAME_BYTES} bytes, skipped"),
            Problem::Named(_, problem) => problem.what(),
        }
    }
}

#[cfg(test)]
#[path = "config_info_tests.rs"]
mod tests;
