//! The HTTPS pool: targets served over TLS (rustls) go through hyper's pooled client, since
//! the direct connection ([`super::super::http1`]) speaks plain TCP and UNIX sockets only.
//!
//! Here are the pool's configuration (one kept-alive connection per target, requests written
//! in one buffer, a fixed read buffer), its TCP connector (`TCP_NODELAY`, the connect timeout,
//! [`super::quickack`]), the capped read of a reply, and the translation of hyper's errors into
//! [`TransportError`]s, by the error types they wrap rather than by their text.

use std::error::Error as StdError;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use super::quickack::QuickAckConnector;
use super::stall::{Progress, Tracked};
use super::{Pool, RequestBody, RpcTransport, Stalled, TransportBuildError, TransportError};
use crate::settings::{Target, TlsSettings};

#[cfg(test)]
#[path = "https_tests.rs"]
pub(super) mod tests;

/// How long an unused pooled connection is kept. Longer than any sensible collection interval,
/// so polls reuse it; short enough that a forgotten target does not hold a socket forever.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The pool for an HTTPS target: rustls over the TCP connector, connects tracked in `progress`.
pub(super) fn https_pool(
    target: &Target,
    progress: &Arc<Progress>,
) -> Result<Pool, TransportBuildError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(&target.tls)?)
        .https_only()
        .enable_http1()
        .wrap_connector(http_connector(target.timeout));
    Ok(Pool::Https(Box::new(tracked_client(
        https,
        progress,
        target.keep_alive,
    ))))
}

impl RpcTransport {
    /// A request through hyper's pool (HTTPS; the test connector too): the reply body of any
    /// 2xx status.
    pub(super) async fn post_pooled(&self, body: Bytes) -> Result<Bytes, TransportError> {
        let Some(pending) = self.pool.request(self.request(body)) else {
            return Err(TransportError::Io {
                reason: "no connection pool".into(),
            });
        };
        let response = pending
            .await
            .map_err(|err| self.classify(&err, err.is_connect()))?;
        self.progress.head_received.store(true, Ordering::Relaxed);
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(TransportError::Unauthorized);
        }
        if !status.is_success() {
            return Err(TransportError::HttpStatus {
                code: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_owned(),
            });
        }
        self.read_capped(response.into_body()).await
    }

    /// Reads the reply frame by frame so a too-large one is dropped as soon as it passes the
    /// cap, never buffered whole.
    async fn read_capped(&self, mut body: Incoming) -> Result<Bytes, TransportError> {
        let limit = self.max_response_bytes;
        let too_large = TransportError::TooLarge { limit };
        // With a Content-Length, the lower bound is the declared length.
        let declared = body.size_hint().lower();
        if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(too_large);
        }
        let mut reply = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(limit));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| self.classify(&err, false))?;
            if let Ok(data) = frame.into_data() {
                if data.len() > limit - reply.len() {
                    return Err(too_large);
                }
                reply.extend_from_slice(&data);
                self.progress
                    .body_bytes
                    .store(reply.len(), Ordering::Relaxed);
            }
        }
        Ok(reply.freeze())
    }

    /// Turns a hyper error into ours by looking for the error types it wraps (rustls, io) among
    /// its causes, never by matching message text.
    fn classify(&self, err: &(dyn StdError + 'static), connecting: bool) -> TransportError {
        let mut innermost_io: Option<&io::Error> = None;
        for cause in causes(err) {
            if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
                return TransportError::Tls {
                    reason: tls.to_string(),
                };
            }
            if let Some(io_err) = cause.downcast_ref::<io::Error>() {
                innermost_io = Some(io_err);
            }
        }
        if !connecting {
            return TransportError::Io {
                reason: chain_text(err),
            };
        }
        let reason = match innermost_io {
            // The connector's own timer, not the OS's: the same as the poll's timeout cutting
            // the connect (the two are equal and race), so it is reported the same way.
            Some(e) if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() => {
                return TransportError::Timeout {
                    after: self.connect_timeout,
                    stalled: Stalled::Connecting,
                };
            }
            Some(e) => e.to_string(),
            None => chain_text(err),
        };
        TransportError::Connect { reason }
    }
}

/// `err` and its causes. Unlike `source()`, steps into the error an `io::Error` wraps
/// (`io::Error::source()` skips it): that is where rustls' errors and nested io errors hide.
fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn StdError + 'static)| {
        match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        }
    })
}

/// The error's causes joined by `: `, skipping hyper-util's client wrapper ("client error
/// (SendRequest)") and repeated texts (an `io::Error` displays as the error it wraps).
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    for cause in causes(err) {
        if cause.is::<hyper_util::client::legacy::Error>() {
            continue;
        }
        let part = cause.to_string();
        if part.is_empty() || text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// See [`pooled_client`].
const READ_BUFFER_BYTES: usize = 4 * 1024;

fn pooled_client<C>(connector: C, keep_alive: bool) -> Client<C, RequestBody>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // Polls of a target are sequential: one kept-alive connection is all it ever needs;
        // none when keep-alive is off (the connection closes after its reply).
        .pool_max_idle_per_host(usize::from(keep_alive))
        .pool_timer(TokioTimer::new())
        // Flatten headers and body into one buffer: see the transport's module docs.
        .http1_writev(false)
        // hyper's adaptive read buffer grows to the largest reply seen and an idle kept-alive
        // connection keeps it: ~64 KiB a target, 640 MB for a fleet of 10,000. A fixed 4 KiB
        // costs a few more reads per reply and bounds what an idle connection holds.
        .http1_read_buf_exact_size(READ_BUFFER_BYTES)
        .retry_canceled_requests(true)
        .build(connector)
}

/// A pooled client whose connector reports connects in progress to `progress`.
fn tracked_client<C>(
    connector: C,
    progress: &Arc<Progress>,
    keep_alive: bool,
) -> Client<Tracked<C>, RequestBody>
where
    Tracked<C>: Connect + Clone + Send + Sync + 'static,
{
    let tracked = Tracked {
        inner: connector,
        progress: Arc::clone(progress),
    };
    pooled_client(tracked, keep_alive)
}

fn http_connector(connect_timeout: Duration) -> QuickAckConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    // The HTTPS connector hands it https:// URIs; the plain pool only ever builds http:// ones.
    http.enforce_http(false);
    QuickAckConnector(http)
}

/// Trust, client certificate, `server_name` and `insecure_skip_verify` are handled as for the
/// OTLP exporters: see [`crate::tls`].
fn tls_config(tls: &TlsSettings) -> Result<ClientConfig, TransportBuildError> {
    crate::tls::client_config(tls).map_err(|e| TransportBuildError::Tls(e.to_string()))
}
