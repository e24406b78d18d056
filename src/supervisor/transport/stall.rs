//! Stall tracking: where the request in flight has got to, so that when the poll's timeout
//! cuts it the error can say where it stalled (connecting, waiting for the reply, or reading
//! it, and how far) instead of a bare "timed out".
//!
//! A transport and its connections share one [`Progress`] record: the direct connection
//! ([`super::super::http1`]) writes to it as it connects and reads, and hyper's pool reports
//! its connects through the [`Tracked`] connector wrapper and its reads through the transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;

/// Where a request was when the poll's timeout cut it, for the log line that says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// TCP connect or TLS handshake unfinished.
    Connecting,
    /// Connected (or on a pooled connection), request sent or being sent, no complete reply
    /// head yet: a silent server, or one that trickles its status line and headers.
    AwaitingReply,
    /// The reply head arrived; the body did not complete.
    ReadingReply { received: usize },
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stalled::Connecting => f.write_str("while connecting"),
            Stalled::AwaitingReply => f.write_str("waiting for the reply"),
            Stalled::ReadingReply { received } => {
                write!(f, "while reading the reply ({received} bytes received)")
            }
        }
    }
}

/// What the request in flight has got to. Shared by a transport and its connector; a target
/// has one request in flight at a time, so one record per transport is enough.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Connects under way (hyper may finish one in the background after a request gave up).
    pub(crate) connecting: AtomicUsize,
    pub(crate) head_received: AtomicBool,
    pub(crate) body_bytes: AtomicUsize,
}

impl Progress {
    pub(super) fn start_request(&self) {
        self.head_received.store(false, Ordering::Relaxed);
        self.body_bytes.store(0, Ordering::Relaxed);
    }

    pub(super) fn stalled(&self) -> Stalled {
        if self.head_received.load(Ordering::Relaxed) {
            Stalled::ReadingReply {
                received: self.body_bytes.load(Ordering::Relaxed),
            }
        } else if self.connecting.load(Ordering::Relaxed) > 0 {
            Stalled::Connecting
        } else {
            Stalled::AwaitingReply
        }
    }
}

/// A connector that records in [`Progress`] while a connect is under way.
#[derive(Clone)]
pub(super) struct Tracked<C> {
    pub(super) inner: C,
    pub(super) progress: Arc<Progress>,
}

/// Counts a connect as under way until its future completes or is dropped.
pub(crate) struct ConnectGuard(Arc<Progress>);

impl ConnectGuard {
    pub(crate) fn new(progress: Arc<Progress>) -> Self {
        progress.connecting.fetch_add(1, Ordering::Relaxed);
        ConnectGuard(progress)
    }
}

impl Drop for ConnectGuard {
    fn drop(&mut self) {
        self.0.connecting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<C> tower_service::Service<Uri> for Tracked<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let guard = ConnectGuard::new(Arc::clone(&self.progress));
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let result = connecting.await;
            drop(guard);
            result
        })
    }
}
