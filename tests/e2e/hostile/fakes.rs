//! Fake supervisord endpoints: healthy ones serving a recorded reply, and hostile ones (slow,
//! silent, hanging up, endless, not accepting).

use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;

use super::RECORDED;

/// How a fake endpoint treats each connection.
#[derive(Clone)]
pub(super) enum Behaviour {
    /// Answers every request on the connection (keep-alive) with `200 OK` and this body.
    Reply(Arc<Vec<u8>>),
    /// Answers with this status and a short body.
    Status(u16, &'static str),
    /// A complete head, then the body one byte every 500 ms, forever.
    Slowloris,
    /// Reads the request and never answers.
    Silent,
    /// Sends the head and half the body, then closes.
    HangUp,
    /// A chunked body that never ends (past any size cap).
    Endless,
}

/// Fake supervisord endpoints on loopback ports, served by the test's own runtime.
pub(super) struct Fakes {
    runtime: Option<Runtime>,
    /// Listeners whose accept queue is full (and the connections filling it): a connect to
    /// them is neither accepted nor refused.
    unaccepting: Vec<(std::net::TcpListener, Vec<StdTcpStream>)>,
}

/// Connections an endpoint accepted.
pub(super) type Accepted = Arc<AtomicUsize>;

impl Fakes {
    pub(super) fn new() -> Fakes {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fake servers: cannot build runtime: {e}"));
        Fakes {
            runtime: Some(runtime),
            unaccepting: Vec::new(),
        }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime
            .as_ref()
            .unwrap_or_else(|| panic!("fake servers already stopped"))
    }

    /// Starts an endpoint; returns its `http://` URL and its accepted-connection count.
    pub(super) fn serve(&self, behaviour: Behaviour) -> (String, Accepted) {
        let accepted = Accepted::default();
        let count = accepted.clone();
        let listener = self.runtime().block_on(async {
            TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("fake server: cannot bind: {e}"))
        });
        let addr = local_addr(listener.local_addr());
        self.runtime().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream, behaviour.clone()));
            }
        });
        (format!("http://{addr}"), accepted)
    }

    /// An endpoint whose connects hang: its accept queue is full, so the kernel drops SYNs.
    pub(super) fn unaccepting(&mut self) -> String {
        let _enter = self.runtime().enter();
        let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(any).unwrap_or_else(|e| panic!("bind: {e}"));
        let listener = socket
            .listen(0)
            .unwrap_or_else(|e| panic!("listen: {e}"))
            .into_std()
            .unwrap_or_else(|e| panic!("into_std: {e}"));
        let addr = local_addr(listener.local_addr());
        let mut fillers = Vec::new();
        while fillers.len() < 8 {
            match StdTcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => fillers.push(stream),
                Err(_) => break,
            }
        }
        assert!(!fillers.is_empty(), "could not fill the accept queue");
        self.unaccepting.push((listener, fillers));
        format!("http://{addr}")
    }
}

impl Drop for Fakes {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn local_addr(addr: std::io::Result<SocketAddr>) -> SocketAddr {
    addr.unwrap_or_else(|e| panic!("local_addr: {e}"))
}

async fn handle(mut stream: TcpStream, behaviour: Behaviour) {
    let mut pending = Vec::new();
    loop {
        if !read_request(&mut stream, &mut pending).await {
            return;
        }
        match &behaviour {
            Behaviour::Reply(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(body).await.is_err()
                {
                    return;
                }
            }
            Behaviour::Status(code, reason) => {
                let reply = format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 2\r\n\r\nno");
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behaviour::Slowloris => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    RECORDED.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for byte in RECORDED.bytes().cycle() {
                    if stream.write_all(&[byte]).await.is_err() {
                        return;
                    }
                    let mut probe = [0u8; 1024];
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        read = stream.read(&mut probe) => {
                            if matches!(read, Ok(0) | Err(_)) {
                                return;
                            }
                        }
                    }
                }
            }
            Behaviour::Silent => {
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Behaviour::HangUp => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    RECORDED.len()
                );
                let half = RECORDED.get(..RECORDED.len() / 2).unwrap_or_default();
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(half.as_bytes()).await;
                let _ = stream.shutdown().await;
                return;
            }
            Behaviour::Endless => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\
                            Transfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                return;
            }
        }
    }
}

/// Reads one request (head and `Content-Length` body) into `pending`, then removes it;
/// false when the client closed the connection.
async fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(pending.get(..end).unwrap_or_default())
                .to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if pending.len() >= end + 4 + length {
                pending.drain(..end + 4 + length);
                return true;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => pending.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}
