//! A minimal XML-RPC client for supervisord's UNIX socket: one HTTP/1.0 `POST /RPC2` per call,
//! read to the end (supervisord closes an HTTP/1.0 connection after its reply). The changes are
//! made through it because its send instant is known to the microsecond, where `supervisorctl`
//! spends 100-200 ms starting Python before it says anything to supervisord.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use supervisord_receiver::supervisor::xmlrpc::{self, Value};

/// A call that takes longer than this is a broken supervisord.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Rpc {
    socket: PathBuf,
}

/// When a change was made: the monotonic instant (what latencies are measured from) and the
/// wall clock read just before it (what the records' timestamps are compared with).
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub at: Instant,
    pub wall_unix_nano: u64,
}

impl Sent {
    pub fn now() -> Sent {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Sent {
            at: Instant::now(),
            wall_unix_nano: wall,
        }
    }
}

/// What `getProcessInfo` says of one process.
pub struct ProcessInfo {
    pub state: String,
    pub pid: i64,
}

impl Rpc {
    pub fn new(socket: &Path) -> Rpc {
        Rpc {
            socket: socket.to_path_buf(),
        }
    }

    /// Calls `method` and returns its result.
    pub fn call(&self, method: &str, params: &[Value]) -> Result<Value> {
        self.call_timed(method, params).map(|(_, value)| value)
    }

    /// Calls `method`; returns when the request's first byte was about to be written (the
    /// connection is already open then), and the result.
    pub fn call_timed(&self, method: &str, params: &[Value]) -> Result<(Sent, Value)> {
        let body = xmlrpc::encode_call(method, params);
        let mut request = format!(
            "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let mut stream = UnixStream::connect(&self.socket)
            .with_context(|| format!("cannot connect to {}", self.socket.display()))?;
        stream.set_read_timeout(Some(CALL_TIMEOUT))?;
        stream.set_write_timeout(Some(CALL_TIMEOUT))?;
        let sent = Sent::now();
        stream.write_all(&request)?;
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .with_context(|| format!("{method}: no complete reply"))?;
        let Some(split) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
            bail!("{method}: a reply without a header end");
        };
        let status = String::from_utf8_lossy(&reply[..split]);
        if !status
            .lines()
            .next()
            .is_some_and(|line| line.contains(" 200 "))
        {
            bail!("{method}: {}", status.lines().next().unwrap_or(""));
        }
        match xmlrpc::decode_response(&reply[split + 4..]) {
            Ok(Ok(value)) => Ok((sent, value)),
            Ok(Err(fault)) => bail!("{method}: fault {fault}"),
            Err(error) => bail!("{method}: undecodable reply: {error}"),
        }
    }

    pub fn process_info(&self, name: &str) -> Result<ProcessInfo> {
        let value = self.call(
            "supervisor.getProcessInfo",
            &[Value::String(name.to_owned())],
        )?;
        let state = value
            .get("statename")
            .and_then(Value::as_str)
            .with_context(|| format!("getProcessInfo({name}): no statename"))?
            .to_owned();
        let pid = value.get("pid").and_then(Value::as_i64).unwrap_or(0);
        Ok(ProcessInfo { state, pid })
    }

    /// Waits until `name` is in one of `states`; returns what was seen last.
    pub fn wait_for_state(
        &self,
        name: &str,
        states: &[&str],
        timeout: Duration,
    ) -> Result<ProcessInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.process_info(name)?;
            if states.contains(&info.state.as_str()) {
                return Ok(info);
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} is {} after {timeout:?}, expected one of {states:?}",
                    info.state
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
