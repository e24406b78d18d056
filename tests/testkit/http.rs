//! One HTTP/1.1 GET as a probe sends it (`Connection: close`, the whole reply read), for the
//! suites that ask the receiver's own endpoints (`/healthz`, `/metrics`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::receiver::Running;
use super::WAIT;

/// A reply: its status code, `content-type` and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET path` over a new TCP connection to `addr` (`host:port`).
pub fn get(addr: impl std::net::ToSocketAddrs + std::fmt::Debug, path: &str) -> Reply {
    let mut stream = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr:?}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    parse(&exchange(&mut stream, path))
}

/// Sends `GET path` on `stream` (TCP or a UNIX socket) and returns the raw reply.
pub fn exchange(stream: &mut (impl Read + Write), path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .unwrap_or_else(|e| panic!("read: {e}"));
    reply
}

/// A raw reply taken apart.
pub fn parse(reply: &str) -> Reply {
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((reply, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {reply}"));
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    Reply {
        code,
        content_type,
        body: body.to_string(),
    }
}

/// The address from the receiver's `health endpoint listening on http://ADDR/healthz`.
pub fn health_addr(receiver: &mut Running) -> SocketAddr {
    let marker = "health endpoint listening on http://";
    let log = receiver.wait_for_stderr(marker, WAIT);
    log.split(marker)
        .nth(1)
        .and_then(|rest| rest.split("/healthz").next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no health address in the log:\n{log}"))
}
