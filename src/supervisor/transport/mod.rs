//! HTTP transport to supervisord's `/RPC2`: TCP and UNIX sockets on a connection of the
//! target's own ([`super::http1`]), HTTPS (rustls) through hyper's pooled client.
//!
//! Everything that can fail or be computed ahead (the URI, the `Host` and `Authorization`
//! header values, the TLS configuration) is done once in [`RpcTransport::new`];
//! [`RpcTransport::post`] only assembles a request from those parts.
//!
//! # One write per request, an ACK per read
//!
//! supervisord (medusa) replies only once it has the whole request. A client that sends the
//! headers and the body in two writes makes the second wait for the ACK of the first (Nagle),
//! which the server delays by up to ~40 ms: every call would cost that. So `TCP_NODELAY` is set
//! on every TCP connection and the request leaves in a single `write`: the direct connection
//! writes one buffer, and hyper uses its "flatten" strategy (`http1_writev(false)`), which also
//! keeps a request in one TLS record. The test `request_leaves_in_one_write_with_nodelay` checks
//! hyper's side at the I/O layer, where it is deterministic.
//!
//! The reply direction has the mirror problem: supervisord writes a long reply in 4 KiB pieces
//! without `TCP_NODELAY`, so its last piece waits for our ACK of the previous ones, and on a
//! kept-alive connection Linux delays that ACK by ~40 ms (the connection looks interactive).
//! Every poll of a real supervisord took 45 ms of wall time for 1 ms of work. Both paths ask the
//! kernel to acknowledge at once after every read (`TCP_QUICKACK`, which does not stick, so it
//! is set again each time: one cheap system call per read); see `quickack`.
//!
//! # Kept-alive connections
//!
//! One connection per target is reused across polls (unless `keep_alive` is off). When
//! supervisord restarts between two polls, the kept connection is found closed before it is
//! used, or fails before any byte of the reply arrives, and the request is sent once more on a
//! new connection, so the poll does not fail (hyper's pool does the same for HTTPS).
//!
//! # Bounded in time and size
//!
//! A poll is bounded as a whole by the target's timeout (in the poll client, around every
//! request it makes), which is never longer than the collection interval: a server that accepts
//! and never answers, or trickles its reply a byte at a time, holds one connection for at most
//! one timeout, then the request is dropped and the connection closed. There is no separate
//! idle-read timer: the poll's own bound already ends a stalled read within the timeout. Replies
//! are capped in size ([`DEFAULT_MAX_RESPONSE_BYTES`]) and so are reply heads (64 KiB on the
//! direct connection, about 400 KiB in hyper). A refused or failed connect is not retried: each
//! poll makes at most one new connection (plus one when a kept connection turns out to be
//! closed). When a request is cut by the timeout, [`RpcTransport::stalled`] says where it was:
//! connecting, waiting for the reply, or reading it (and how far).
//!
//! # Where each job lives
//!
//! This module is the facade, [`RpcTransport`], and its errors. Request assembly is in
//! `request`, hyper's HTTPS pool in `https`, stall tracking in `stall` and `TCP_QUICKACK` for
//! the pool's connections in `quickack`; the direct connection is `super::http1`.

mod https;
mod quickack;
mod request;
mod stall;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};

use super::http1::{Dial, Http1, Http1Error};
use crate::settings::{Endpoint, Target};
use quickack::QuickAckConnector;
use request::{basic_auth, tcp_uri, unix_uri};
use stall::Tracked;

pub use https::POOL_IDLE_TIMEOUT;
pub use stall::Stalled;
pub(crate) use stall::{ConnectGuard, Progress};

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
    /// The poll's time ran out; `stalled` says where the request was then.
    #[error("timed out after {after:?} {stalled}")]
    Timeout { after: Duration, stalled: Stalled },
    #[error("HTTP 401 Unauthorized")]
    Unauthorized,
    /// Any other non-2xx status; `reason` is the canonical phrase, empty for unknown codes.
    #[error("HTTP {code}{}{reason}", if reason.is_empty() { "" } else { " " })]
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
    /// The endpoint cannot be turned into a request URI (a host hyper rejects, a socket path
    /// that is not UTF-8).
    #[error("invalid endpoint '{endpoint}': {reason}")]
    Endpoint { endpoint: String, reason: String },
    /// The credentials cannot be made into a header value. Base64 output always can; the
    /// variant exists because the header API is fallible and building must not panic.
    #[error("credentials cannot be sent in an Authorization header")]
    Credentials,
}

type RequestBody = Full<Bytes>;

/// The connection pool, typed by how it connects; chosen once from the endpoint.
#[derive(Clone)]
enum Pool {
    /// Plain TCP and UNIX sockets: the poll task's own connection (see [`super::http1`]).
    Direct(Arc<Http1>),
    /// Boxed: hyper's client is a few hundred bytes, the direct connection a pointer.
    Https(Box<Client<Tracked<HttpsConnector<QuickAckConnector>>, RequestBody>>),
    /// A TCP connector that records what crosses the socket, for tests only.
    #[cfg(test)]
    Observed(Box<Client<https::tests::ObservedConnector, RequestBody>>),
}

impl Pool {
    /// The hyper pools' request; `None` for a direct connection, which `post` drives itself.
    fn request(&self, request: Request<RequestBody>) -> Option<ResponseFuture> {
        match self {
            Pool::Https(client) => Some(client.request(request)),
            Pool::Direct(_) => None,
            #[cfg(test)]
            Pool::Observed(client) => Some(client.request(request)),
        }
    }
}

/// One per target, built once; clones share the connection pool.
#[derive(Clone)]
pub struct RpcTransport {
    pool: Pool,
    /// Absolute URI of `/RPC2`; hyper sends it in origin form.
    uri: Uri,
    host: HeaderValue,
    /// `Basic ...`, marked sensitive so hyper never logs it.
    authorization: Option<HeaderValue>,
    /// Named in the error when the connector's own connect timer fires.
    connect_timeout: Duration,
    max_response_bytes: usize,
    progress: Arc<Progress>,
    keep_alive: bool,
}

impl RpcTransport {
    pub fn new(target: &Target) -> Result<Self, TransportBuildError> {
        Self::with_max_response_bytes(target, DEFAULT_MAX_RESPONSE_BYTES)
    }

    /// Like [`RpcTransport::new`], with another cap on the reply size.
    pub fn with_max_response_bytes(
        target: &Target,
        max_response_bytes: usize,
    ) -> Result<Self, TransportBuildError> {
        let progress = Arc::new(Progress::default());
        let (pool, uri, host) = match &target.endpoint {
            Endpoint::Tcp {
                tls: false,
                host: name,
                port,
            } => {
                let (uri, host) = tcp_uri(&target.endpoint)?;
                let dial = Dial::Tcp {
                    host: name.clone(),
                    port: *port,
                };
                let pool = direct(dial, target, &progress);
                (pool, uri, host)
            }
            Endpoint::Tcp { tls: true, .. } => {
                let (uri, host) = tcp_uri(&target.endpoint)?;
                (https::https_pool(target, &progress)?, uri, host)
            }
            Endpoint::Unix { path } => {
                let uri = unix_uri(path)?;
                let pool = direct(Dial::Unix(path.clone()), target, &progress);
                (pool, uri, HeaderValue::from_static("localhost"))
            }
        };
        let authorization = match &target.credentials {
            Some(credentials) => Some(basic_auth(
                &credentials.username,
                credentials.password.expose(),
            )?),
            None => None,
        };
        Ok(RpcTransport {
            pool,
            uri,
            host,
            authorization,
            connect_timeout: target.timeout,
            max_response_bytes,
            progress,
            keep_alive: target.keep_alive,
        })
    }

    /// POSTs an XML-RPC body to `/RPC2` and returns the reply body (any 2xx status).
    pub async fn post(&self, body: Bytes) -> Result<Bytes, TransportError> {
        self.progress.start_request();
        if let Pool::Direct(connection) = &self.pool {
            return self.post_direct(connection, &body).await;
        }
        self.post_pooled(body).await
    }

    /// A request on the target's own connection: the head and body in one buffer, one write.
    async fn post_direct(&self, connection: &Http1, body: &[u8]) -> Result<Bytes, TransportError> {
        let request = self.direct_request(body);
        let reply = connection
            .send(&request, self.max_response_bytes)
            .await
            .map_err(|error| match error {
                Http1Error::Connect(e) => TransportError::Connect {
                    reason: e.to_string(),
                },
                Http1Error::ConnectTimeout => TransportError::Timeout {
                    after: self.connect_timeout,
                    stalled: Stalled::Connecting,
                },
                Http1Error::Io(reason) => TransportError::Io { reason },
                Http1Error::TooLarge => TransportError::TooLarge {
                    limit: self.max_response_bytes,
                },
            })?;
        match StatusCode::from_u16(reply.status) {
            Ok(StatusCode::UNAUTHORIZED) => Err(TransportError::Unauthorized),
            Ok(status) if status.is_success() => Ok(reply.body),
            status => Err(TransportError::HttpStatus {
                code: reply.status,
                reason: status
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
                    .to_owned(),
            }),
        }
    }

    /// Where the latest request stands: read when the poll's timeout has cut it.
    pub fn stalled(&self) -> Stalled {
        self.progress.stalled()
    }
}

fn direct(dial: Dial, target: &Target, progress: &Arc<Progress>) -> Pool {
    Pool::Direct(Arc::new(Http1::new(
        dial,
        target.timeout,
        target.keep_alive,
        Arc::clone(progress),
    )))
}
