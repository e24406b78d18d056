//! A minimal HTTP/1.1 client for plain TCP and UNIX sockets: one request at a time on one
//! connection that the polling task owns.
//!
//! hyper's pooled client runs every connection in a task of its own and hands each request,
//! each response and each body chunk across channels: several task switches a poll, often
//! across worker threads, and about 25 KiB held by every idle kept-alive connection (buffers
//! and the dispatch channel). A receiver polling thousands of supervisords pays both on every
//! target. Here the poll's own task writes the request and reads the reply on the socket, and
//! an idle connection is the socket alone: reply buffers live for one poll.
//!
//! Only what supervisord's `/RPC2` needs is spoken: a request written whole in one `write`,
//! replies framed by `Content-Length`, chunked, or the end of the connection; the head parsed by
//! `httparse` (hyper's own parser) and capped. HTTPS stays on hyper (TLS needs its stack).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::transport::{ConnectGuard, Progress, Stalled, TransportError};
use super::xmlrpc::printable;

/// A reply head larger than this is refused (supervisord's are about 150 bytes; hyper's own
/// limit is about 400 KiB).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers a reply head may carry.
const MAX_HEADERS: usize = 64;
/// A chunk-size line (size and extensions, before its CRLF) longer than this is refused.
const MAX_CHUNK_LINE: usize = 1024;
/// How much of a header value an error message quotes, as the XML-RPC decoder quotes.
const QUOTE_LIMIT: usize = 40;
/// The first read's room; the buffer grows with the reply and is dropped after it.
const FIRST_READ: usize = 16 * 1024;

/// Where to connect.
#[derive(Debug, Clone)]
pub(crate) enum Dial {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

#[derive(Debug)]
pub(crate) enum Http1Error {
    /// No connection could be made; the OS's error.
    Connect(io::Error),
    /// The connect did not finish within the connect timeout.
    ConnectTimeout,
    /// The connection failed or the reply was not HTTP, after the connection was made.
    Io(String),
    /// The reply body is larger than allowed.
    TooLarge,
}

/// A complete reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// One target's connection: kept between polls when keep-alive is on.
#[derive(Debug)]
pub(crate) struct Http1 {
    dial: Dial,
    connect_timeout: Duration,
    keep_alive: bool,
    idle: Mutex<Option<Stream>>,
    progress: Arc<Progress>,
}

impl Http1 {
    pub(crate) fn new(
        dial: Dial,
        connect_timeout: Duration,
        keep_alive: bool,
        progress: Arc<Progress>,
    ) -> Self {
        Http1 {
            dial,
            connect_timeout,
            keep_alive,
            idle: Mutex::new(None),
            progress,
        }
    }

    /// Sends `request` (head and body, whole) and reads the reply. A kept-alive connection
    /// the server closed meanwhile is replaced once by a new one, as long as nothing of the
    /// reply had arrived on it: XML-RPC reads are safe to repeat.
    pub(crate) async fn send(&self, request: &[u8], max_body: usize) -> Result<Reply, Http1Error> {
        let pooled = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.take())
            .filter(Stream::still_idle);
        if let Some(stream) = pooled {
            match self.exchange(stream, request, max_body).await {
                Err(Failure::ClosedBeforeReply(_)) => {}
                Err(Failure::Other(error)) => return Err(error),
                Ok(reply) => return Ok(reply),
            }
        }
        let stream = self.connect().await?;
        match self.exchange(stream, request, max_body).await {
            Ok(reply) => Ok(reply),
            Err(Failure::ClosedBeforeReply(reason) | Failure::Other(Http1Error::Io(reason))) => {
                Err(Http1Error::Io(reason))
            }
            Err(Failure::Other(error)) => Err(error),
        }
    }

    async fn connect(&self) -> Result<Stream, Http1Error> {
        // Counted until the connect ends or is dropped (the poll's timeout may cut it).
        let _connecting = ConnectGuard::new(Arc::clone(&self.progress));
        let connecting = async {
            match &self.dial {
                Dial::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Ok(Stream::Tcp(stream))
                }
                Dial::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
            }
        };
        let result = tokio::time::timeout(self.connect_timeout, connecting).await;
        match result {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(Http1Error::Connect(error)),
            Err(_) => Err(Http1Error::ConnectTimeout),
        }
    }

    async fn exchange(
        &self,
        mut stream: Stream,
        request: &[u8],
        max_body: usize,
    ) -> Result<Reply, Failure> {
        stream
            .write_all(request)
            .await
            .map_err(|e| Failure::ClosedBeforeReply(format!("sending the request: {e}")))?;
        let mut buf = BytesMut::with_capacity(FIRST_READ);
        let (head, body) = read_reply(&mut stream, &mut buf, max_body, &self.progress).await?;
        let reusable = self.keep_alive
            && head.keep_alive
            && !matches!(head.framing, Framing::UntilClose)
            && buf.is_empty();
        if reusable {
            if let Ok(mut idle) = self.idle.lock() {
                *idle = Some(stream);
            }
        }
        Ok(Reply {
            status: head.status,
            body,
        })
    }
}

/// One reply read from `reader` as from a connection, for the fuzz target `http1_reply`
/// (`fuzz/`) and its property tests: the status and body, or the error the transport gives for
/// it (as on a new connection, where nothing is retried). Not part of the API: the direct
/// connection is reachable only through [`super::transport::RpcTransport`].
#[doc(hidden)]
pub async fn read_reply_from<R: AsyncRead + Unpin>(
    reader: R,
    max_body: usize,
) -> Result<(u16, Bytes), TransportError> {
    let mut source = Reader(reader);
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    let progress = Progress::default();
    match read_reply(&mut source, &mut buf, max_body, &progress).await {
        Ok((head, body)) => Ok((head.status, body)),
        Err(Failure::ClosedBeforeReply(reason) | Failure::Other(Http1Error::Io(reason))) => {
            Err(TransportError::Io { reason })
        }
        Err(Failure::Other(Http1Error::TooLarge)) => {
            Err(TransportError::TooLarge { limit: max_body })
        }
        // Reading makes neither; mapped as the transport maps them.
        Err(Failure::Other(Http1Error::Connect(e))) => Err(TransportError::Connect {
            reason: e.to_string(),
        }),
        Err(Failure::Other(Http1Error::ConnectTimeout)) => Err(TransportError::Timeout {
            after: Duration::ZERO,
            stalled: Stalled::Connecting,
        }),
    }
}

/// Reads one reply (interim 1xx replies skipped): its head and its whole body. What follows
/// the reply stays in `buf`.
async fn read_reply<S: Source>(
    stream: &mut S,
    buf: &mut BytesMut,
    max_body: usize,
    progress: &Progress,
) -> Result<(Head, Bytes), Failure> {
    let head = loop {
        let head = read_head(stream, buf).await?;
        // 1xx replies are interim: the real one follows.
        if !(100..200).contains(&head.status) {
            break head;
        }
        buf.advance(head.length);
    };
    progress.head_received.store(true, Ordering::Relaxed);
    buf.advance(head.length);
    let body = match head.framing {
        Framing::Length(length) => {
            if length > max_body {
                return Err(Failure::Other(Http1Error::TooLarge));
            }
            read_exact_body(stream, buf, length, progress).await?
        }
        Framing::Chunked => read_chunked(stream, buf, max_body, progress).await?,
        Framing::UntilClose => read_to_close(stream, buf, max_body, progress).await?,
    };
    Ok((head, body))
}

/// Reads until `buf` starts with a complete reply head, and parses it.
async fn read_head<S: Source>(stream: &mut S, buf: &mut BytesMut) -> Result<Head, Failure> {
    let mut received_any = !buf.is_empty();
    loop {
        if !buf.is_empty() {
            // The cap holds for a complete head too: whether a head is refused must not depend
            // on how much of it the reads had brought when it was first parsed.
            match parse_head(buf).map_err(Failure::Other)? {
                Some(head) if head.length > MAX_HEAD_BYTES => return Err(head_too_large()),
                Some(head) => return Ok(head),
                None if buf.len() > MAX_HEAD_BYTES => return Err(head_too_large()),
                None => {}
            }
        }
        let read = read_some(stream, buf).await;
        match read {
            Ok(0) if !received_any => {
                return Err(Failure::ClosedBeforeReply(
                    "connection closed before the reply".into(),
                ))
            }
            Ok(0) => {
                return Err(Failure::Other(Http1Error::Io(
                    "connection closed in the reply head".into(),
                )))
            }
            Ok(_) => received_any = true,
            Err(e) if !received_any => {
                return Err(Failure::ClosedBeforeReply(format!(
                    "waiting for the reply: {e}"
                )))
            }
            Err(e) => return Err(Failure::Other(Http1Error::Io(e.to_string()))),
        }
    }
}

async fn read_exact_body<S: Source>(
    stream: &mut S,
    buf: &mut BytesMut,
    length: usize,
    progress: &Progress,
) -> Result<Bytes, Failure> {
    // The declared length is the server's word: room for at most 1 MiB is made up front,
    // the rest as it arrives.
    buf.reserve(length.saturating_sub(buf.len()).min(1 << 20));
    while buf.len() < length {
        progress.body_bytes.store(buf.len(), Ordering::Relaxed);
        match read_some(stream, buf).await {
            Ok(0) => {
                return Err(io_failure(format!(
                    "connection closed after {} of {length} body bytes",
                    buf.len()
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(io_failure(e.to_string())),
        }
    }
    Ok(buf.split_to(length).freeze())
}

async fn read_to_close<S: Source>(
    stream: &mut S,
    buf: &mut BytesMut,
    max_body: usize,
    progress: &Progress,
) -> Result<Bytes, Failure> {
    loop {
        if buf.len() > max_body {
            return Err(Failure::Other(Http1Error::TooLarge));
        }
        progress.body_bytes.store(buf.len(), Ordering::Relaxed);
        match read_some(stream, buf).await {
            Ok(0) => return Ok(buf.split().freeze()),
            Ok(_) => {}
            Err(e) => return Err(io_failure(e.to_string())),
        }
    }
}

/// Decodes a chunked body in place: chunk data is moved into `body` as it completes.
async fn read_chunked<S: Source>(
    stream: &mut S,
    buf: &mut BytesMut,
    max_body: usize,
    progress: &Progress,
) -> Result<Bytes, Failure> {
    let mut body = BytesMut::new();
    loop {
        // A chunk-size line: hex digits, optional extensions, CRLF.
        let line_end = loop {
            match judge_line(buf, MAX_CHUNK_LINE) {
                Line::Ends(end) => break end,
                Line::TooLong => return Err(io_failure("chunk size line too long".into())),
                Line::Open => fill(stream, buf, "in a chunk size").await?,
            }
        };
        let size = parse_chunk_size(&buf[..line_end])
            .ok_or_else(|| io_failure("invalid chunk size".into()))?;
        buf.advance(line_end + 2);
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let end = loop {
                    match judge_line(buf, MAX_HEAD_BYTES) {
                        Line::Ends(end) => break end,
                        Line::TooLong => return Err(io_failure("trailers too long".into())),
                        Line::Open => fill(stream, buf, "in the trailers").await?,
                    }
                };
                buf.advance(end + 2);
                if end == 0 {
                    return Ok(body.freeze());
                }
            }
        }
        if body.len().saturating_add(size) > max_body {
            return Err(Failure::Other(Http1Error::TooLarge));
        }
        while buf.len() < size + 2 {
            progress
                .body_bytes
                .store(body.len() + buf.len(), Ordering::Relaxed);
            fill(stream, buf, "in a chunk").await?;
        }
        body.extend_from_slice(&buf[..size]);
        if &buf[size..size + 2] != b"\r\n" {
            return Err(io_failure("chunk not followed by CRLF".into()));
        }
        buf.advance(size + 2);
    }
}

async fn fill<S: Source>(stream: &mut S, buf: &mut BytesMut, when: &str) -> Result<(), Failure> {
    match read_some(stream, buf).await {
        Ok(0) => Err(io_failure(format!("connection closed {when}"))),
        Ok(_) => Ok(()),
        Err(e) => Err(io_failure(e.to_string())),
    }
}

/// Why an exchange failed: on a reused connection, a close before any reply byte means the
/// server had dropped it while idle, and a new connection is tried.
enum Failure {
    ClosedBeforeReply(String),
    Other(Http1Error),
}

fn io_failure(reason: String) -> Failure {
    Failure::Other(Http1Error::Io(reason))
}

fn head_too_large() -> Failure {
    io_failure(format!("reply head larger than {MAX_HEAD_BYTES} bytes"))
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    /// Bytes of the head, blank line included.
    length: usize,
    framing: Framing,
    /// Whether the server lets the connection serve another request.
    keep_alive: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, Http1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Http1Error::Io(format!("invalid HTTP reply: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let http11 = response.version == Some(1);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = !http11;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed: usize = value.parse().map_err(|_| {
                let value = printable(value, QUOTE_LIMIT);
                Http1Error::Io(format!("invalid Content-Length '{value}'"))
            })?;
            if content_length.is_some_and(|known| known != parsed) {
                return Err(Http1Error::Io("conflicting Content-Length headers".into()));
            }
            content_length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }
    // Chunked wins over a length (RFC 9112 §6.3); no framing at all means until the close.
    let framing = match (chunked, content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(length)) => Framing::Length(length),
        (false, None) if status == 204 || status == 304 => Framing::Length(0),
        (false, None) => Framing::UntilClose,
    };
    Ok(Some(Head {
        status,
        length,
        framing,
        keep_alive: !close,
    }))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Where the line at the start of `buf` stands, against a cap on its length (CRLF excluded).
enum Line {
    /// It ends (its CRLF starts) here.
    Ends(usize),
    TooLong,
    /// More is needed.
    Open,
}

/// The line at the start of `buf`, judged the same whatever the reads brought so far: without
/// its CRLF, the line is at least all of `buf` but a last CR.
fn judge_line(buf: &[u8], max: usize) -> Line {
    match find_crlf(buf) {
        Some(end) if end > max => Line::TooLong,
        Some(end) => Line::Ends(end),
        None if buf.len() > max + 1 => Line::TooLong,
        None => Line::Open,
    }
}

/// The hex size before any `;extension`; at most 15 digits, so it cannot overflow.
fn parse_chunk_size(line: &[u8]) -> Option<usize> {
    let digits = line.split(|&b| b == b';').next().map(<[u8]>::trim_ascii)?;
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    usize::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// A connected socket.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Whether a kept connection is still open and silent. The server may have closed it, or
    /// (a broken one) written to it between polls: either way it cannot carry the next reply.
    fn still_idle(&self) -> bool {
        let mut probe = [0u8; 1];
        let read = match self {
            Stream::Tcp(s) => s.try_read(&mut probe),
            Stream::Unix(s) => s.try_read(&mut probe),
        };
        matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Where reply bytes come from: a connected socket, or any reader ([`read_reply_from`]).
trait Source: AsyncRead + Unpin {
    /// Called after each read that did not fail.
    fn after_read(&self) {}
}

/// On TCP the kernel is asked to acknowledge at once after every read (see `transport`'s
/// module documentation: supervisord's replies come in pieces that otherwise wait ~40 ms for a
/// delayed ACK).
impl Source for Stream {
    fn after_read(&self) {
        if let Stream::Tcp(stream) = self {
            acknowledge_now(stream);
        }
    }
}

/// Any reader as a reply source, for [`read_reply_from`].
struct Reader<R>(R);

impl<R: AsyncRead + Unpin> AsyncRead for Reader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<R: AsyncRead + Unpin> Source for Reader<R> {}

/// One read into `buf`'s spare room (grown when full).
async fn read_some<S: Source>(source: &mut S, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(buf.capacity().max(FIRST_READ));
    }
    let n = source.read_buf(buf).await?;
    source.after_read();
    Ok(n)
}

/// Asks the kernel to acknowledge what was just read at once, not after its delayed-ACK timer.
#[cfg(target_os = "linux")]
pub(crate) fn acknowledge_now(stream: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is this open socket's, and `on` outlives the call, which only
    // reads `size_of::<c_int>()` bytes from it. A failure only means a delayed ACK.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn acknowledge_now(_stream: &TcpStream) {}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_framed_as_rfc_9112_says() {
        let head = |text: &str| parse_head(text.as_bytes()).unwrap().unwrap();
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert!(matches!(h.framing, Framing::Length(5)) && h.keep_alive && h.status == 200);
        assert_eq!(h.length, 38);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked));
        let h = head("HTTP/1.0 200 OK\r\n\r\n");
        assert!(matches!(h.framing, Framing::UntilClose) && !h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-")
            .unwrap()
            .is_none());
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(parse_head(b"<html>\r\n\r\n").is_err());
    }

    #[test]
    fn chunk_sizes_are_bounded_hex() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"1A;name=value"), Some(26));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"fffffffffffffffff"), None);
        assert_eq!(parse_chunk_size(b"xyz"), None);
    }
}
