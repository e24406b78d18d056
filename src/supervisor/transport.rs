//! HTTP transport to supervisord's `/RPC2`: TCP (keep-alive), HTTPS (rustls), UNIX socket.

use std::time::Duration;

use bytes::Bytes;

use crate::config::Target;

/// Replies larger than this are cut off with [`TransportError::TooLarge`]: a 1,000-process
/// `getAllProcessInfo` is about 1 MiB, so 16 MiB leaves room without letting a hostile server
/// grow our memory unbounded.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why a request to supervisord failed at the HTTP level or below.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection: refused, DNS failure, socket file missing or not permitted, reset before
    /// any reply. `reason` is the OS's words (`Connection refused (os error 111)`).
    #[error("cannot connect: {reason}")]
    Connect { reason: String },
    #[error("no complete reply within {after:?}")]
    Timeout { after: Duration },
    #[error("HTTP 401 Unauthorized")]
    Unauthorized,
    #[error("HTTP {code} {reason}")]
    HttpStatus { code: u16, reason: String },
    #[error("reply larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection broke after it was made (closed mid-reply, malformed HTTP).
    #[error("connection failed during the request: {reason}")]
    Io { reason: String },
    #[error("TLS: {reason}")]
    Tls { reason: String },
}

/// Why a transport could not be built from settings (bad CA file, ...). Reported at start.
#[derive(Debug, thiserror::Error)]
pub enum TransportBuildError {
    #[error("{0}")]
    Tls(String),
}

/// One per target, built once; clones share the connection pool.
#[derive(Clone)]
pub struct RpcTransport {}

impl RpcTransport {
    pub fn new(_target: &Target) -> Result<Self, TransportBuildError> {
        todo!()
    }

    /// POSTs an XML-RPC body to `/RPC2` and returns the reply body (any 2xx status).
    pub async fn post(&self, _body: Bytes) -> Result<Bytes, TransportError> {
        todo!()
    }
}
