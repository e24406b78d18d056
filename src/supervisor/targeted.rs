//! Push mode's small calls between two full polls: `getProcessInfo` of the processes supervisord's
//! events named, and `getState` to check access.
//!
//! `getAllProcessInfo` costs supervisord time in proportion to every process it runs (under
//! 1 ms at 10 programs, 160 ms at 500, in its one thread); `getProcessInfo("group:name")` of
//! one process costs 0.3 to 2.3 ms (`docs/performance.md`). An event says a process changed state but not its exit status, stop time
//! or new pid: asking for just the processes a burst of events named, several in one
//! `system.multicall`, brings those in at the cost of the processes that changed.

use std::time::Duration;

use bytes::Bytes;

use crate::supervisor::client::{PollError, SupervisorClient};
use crate::supervisor::decode;
use crate::supervisor::transport::TransportError;
use crate::supervisor::xmlrpc::{self, DecodeError, Value};
use crate::vocab::ProcessInfo;

pub const GET_PROCESS_INFO: &str = "supervisor.getProcessInfo";
const GET_STATE: &str = "supervisor.getState";

/// The processes asked for, in the order asked, and the problems met in their entries.
pub type ProcessInfos = (Vec<ProcessInfo>, Vec<String>);

impl SupervisorClient {
    /// `getProcessInfo` of each `group:name` in `names`, in one `system.multicall` (separate
    /// calls when the server refused multicalls), bounded as a whole by the target's timeout.
    /// Any call's fault fails the whole: a name supervisord no longer knows (`BAD_NAME`) means
    /// its processes changed, which only a full poll sees right.
    pub async fn process_infos(&self, names: &[String]) -> Result<ProcessInfos, PollError> {
        if names.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let asked = async {
            if self
                .separate_calls
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                self.process_infos_separately(names).await
            } else {
                let params: Vec<[Value; 1]> = names
                    .iter()
                    .map(|name| [Value::String(name.clone())])
                    .collect();
                let calls: Vec<(&str, &[Value])> = params
                    .iter()
                    .map(|param| (GET_PROCESS_INFO, param.as_slice()))
                    .collect();
                let reply = self
                    .transport
                    .post(Bytes::from(xmlrpc::encode_multicall(&calls)))
                    .await?;
                decode_process_infos_reply(&reply, names.len())
            }
        };
        self.bounded(asked).await
    }

    /// `getState` alone: the cheapest call supervisord answers only with the right
    /// credentials, so `listen` can say at start what it lacks without a full poll.
    pub async fn check_access(&self) -> Result<(), PollError> {
        let body = Bytes::from(xmlrpc::encode_call(GET_STATE, &[]));
        let asked = async {
            let reply = self.transport.post(body).await?;
            match xmlrpc::decode_response(&reply)? {
                Ok(_) => Ok(()),
                Err(fault) => Err(PollError::Fault(fault)),
            }
        };
        self.bounded(asked).await
    }

    async fn process_infos_separately(&self, names: &[String]) -> Result<ProcessInfos, PollError> {
        let mut values = Vec::with_capacity(names.len());
        for name in names {
            let body = xmlrpc::encode_call(GET_PROCESS_INFO, &[Value::String(name.clone())]);
            let reply = self.transport.post(Bytes::from(body)).await?;
            match xmlrpc::decode_response(&reply)? {
                Ok(value) => values.push(value),
                Err(fault) => return Err(PollError::Fault(fault)),
            }
        }
        Ok(decode::processes(&Value::Array(values))?)
    }

    async fn bounded<T>(
        &self,
        asked: impl std::future::Future<Output = Result<T, PollError>>,
    ) -> Result<T, PollError> {
        let within: Duration = self.timeout;
        match tokio::time::timeout(within, asked).await {
            Ok(result) => result,
            Err(_) => Err(PollError::Transport(TransportError::Timeout {
                after: within,
                stalled: self.transport.stalled(),
            })),
        }
    }
}

/// What the body of a multicall of `count` `getProcessInfo` calls says, without a server (the
/// tests drive it): the processes in the order asked, or the first fault.
pub fn decode_process_infos_reply(body: &[u8], count: usize) -> Result<ProcessInfos, PollError> {
    let results = match xmlrpc::decode_response(body)? {
        Ok(value) => xmlrpc::split_multicall(value)?,
        Err(fault) => return Err(PollError::Fault(fault)),
    };
    if results.len() != count {
        return Err(PollError::Decode(DecodeError::BadMulticall(format!(
            "{} results for {count} getProcessInfo calls",
            results.len()
        ))));
    }
    let mut values = Vec::with_capacity(count);
    for result in results {
        match result {
            Ok(value) => values.push(xmlrpc::unwrap_multicall(value, false)),
            Err(fault) => return Err(PollError::Fault(fault)),
        }
    }
    // The entries of `getAllProcessInfo` and `getProcessInfo` are the same struct: one
    // lenient decoder for both.
    Ok(decode::processes(&Value::Array(values))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ProcessState;

    fn entry(name: &str, state: ProcessState, exitstatus: i64) -> Value {
        Value::Struct(vec![
            ("name".into(), Value::String(name.into())),
            ("group".into(), Value::String(name.into())),
            ("statename".into(), Value::String(state.name().into())),
            ("state".into(), Value::Int(state.code())),
            ("exitstatus".into(), Value::Int(exitstatus)),
            ("pid".into(), Value::Int(0)),
        ])
    }

    #[test]
    fn each_process_comes_back_in_the_order_asked() {
        // supervisord answers each call bare; the conventional wrapper is accepted too.
        let reply = xmlrpc::encode_response(&Value::Array(vec![
            entry("web", ProcessState::Stopped, -1),
            Value::Array(vec![entry("db", ProcessState::Exited, 3)]),
        ]));
        let (processes, _) = decode_process_infos_reply(&reply, 2).unwrap();
        let seen: Vec<_> = processes
            .iter()
            .map(|p| (p.name.as_str(), p.state, p.exitstatus))
            .collect();
        assert_eq!(
            seen,
            [
                ("web", ProcessState::Stopped, -1),
                ("db", ProcessState::Exited, 3)
            ]
        );
    }

    #[test]
    fn a_fault_or_a_missing_answer_fails_the_whole() {
        let bad_name = Value::Struct(vec![
            ("faultCode".into(), Value::Int(10)),
            ("faultString".into(), Value::String("BAD_NAME: web".into())),
        ]);
        let reply = xmlrpc::encode_response(&Value::Array(vec![
            entry("db", ProcessState::Running, 0),
            bad_name,
        ]));
        let error = decode_process_infos_reply(&reply, 2).unwrap_err();
        assert_eq!(error.error_type(), "fault");
        let reply =
            xmlrpc::encode_response(&Value::Array(vec![entry("db", ProcessState::Running, 0)]));
        let error = decode_process_infos_reply(&reply, 2).unwrap_err();
        assert_eq!(error.error_type(), "invalid_reply");
    }
}
