//! `TCP_QUICKACK` for the hyper pool's TCP connections (the HTTPS targets').
//!
//! supervisord writes a long reply in 4 KiB pieces without `TCP_NODELAY`, so its last piece
//! waits for our ACK of the previous ones, and on a kept-alive connection Linux delays that ACK
//! by ~40 ms (the connection looks interactive): every poll of a real supervisord took 45 ms of
//! wall time for 1 ms of work. So every read asks the kernel to acknowledge at once.
//! `TCP_QUICKACK` does not stick, so it is set again after each read: one cheap system call per
//! read. The direct connection does the same itself ([`super::super::http1`]); this wraps the
//! connections hyper's connector makes so that the pool does too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;

use crate::supervisor::http1::acknowledge_now;

/// The TCP connector, its connections wrapped in [`QuickAck`].
#[derive(Clone)]
pub(super) struct QuickAckConnector(pub(super) HttpConnector);

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAck<TokioIo<tokio::net::TcpStream>>;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAck) })
    }
}

/// A TCP connection that acknowledges every read at once (see the module documentation).
pub(super) struct QuickAck<T>(T);

impl hyper::rt::Read for QuickAck<TokioIo<tokio::net::TcpStream>> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.0).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) {
            acknowledge_now(this.0.inner());
        }
        result
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for QuickAck<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for QuickAck<T> {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}
