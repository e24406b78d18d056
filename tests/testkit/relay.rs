//! A TCP relay that makes network faults for real, in user space: it listens on a loopback port,
//! forwards every connection to an upstream address, and its [`Mode`] can be changed while it
//! runs, so a test turns a healthy link into a slow, lossy, dark, resetting or dead one and back.
//!
//! Why user space: the kernel's `netem` qdisc is not available everywhere the tests run (not on
//! the development machine), and network namespaces need root. A relay between two loopback
//! ports needs neither, and the peers on both sides still see real sockets and real kernel
//! errors (`ECONNRESET`, `ECONNREFUSED`, a read that never completes).
//!
//! How it works: each accepted connection gets its own connection to the upstream, and one task
//! pumps both directions. A *chunk* is what one `read` returned (about what the peer wrote at
//! once, at most 64 KiB), not a packet. Each chunk is given a delivery time by the mode in force
//! when it was read, and chunks go out in order: a chunk is never delivered before the one read
//! before it, so a held chunk holds up those behind it, as TCP's in-order delivery does. The end
//! of a stream (a peer's FIN) travels as a chunk too and is passed on as a FIN. A mode change
//! applies to the next chunk read on every connection, those already open included.
//!
//! The relay's own sockets set `TCP_NODELAY`, so it adds no Nagle delay of its own.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the link does to the bytes crossing it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// A healthy loopback link: every chunk is forwarded at once.
    Pass,
    /// A long or congested path: every chunk, in each direction, is delivered `base` ± up to
    /// `jitter` (uniform) after it was read, order kept. Unlike `netem`, the delay is per chunk,
    /// not per packet, and the TCP handshake with the relay itself is not delayed (the relay
    /// accepts at once; only the bytes that follow are).
    Latency { base: Duration, jitter: Duration },
    /// Packet loss on a TCP stream, as the application sees it: nothing is lost, but a chunk
    /// (with the given `probability`) is held for `stall`, as a segment waits for its
    /// retransmission, and the chunks behind it wait too. The kernel's retransmission timeout
    /// starts at 200 ms and doubles on each loss of the same segment; here each stall has the
    /// same length, and bytes lost in the middle of a chunk hold the whole chunk.
    Loss { probability: f64, stall: Duration },
    /// The peer (or a middlebox) resets the connection in the middle of a reply: the first
    /// `after_bytes` bytes the upstream sends on a connection once the mode is on are passed on,
    /// then both sides are reset (`SO_LINGER` 0, then close), so each sees `ECONNRESET`. The
    /// kernel would send the reset from one end only; here both ends get one, as a middlebox
    /// that drops the connection state does.
    ResetMidReply { after_bytes: usize },
    /// The same, counted on the bytes the client sends: the request is cut after
    /// `after_bytes`, so the upstream never receives it whole.
    ResetMidRequest { after_bytes: usize },
    /// A link that went dark: connections are still accepted and their bytes read, but nothing
    /// goes on in either direction, not even a close, and the relay closes nothing. What it
    /// read is held, in order, and delivered when the mode changes, as TCP's retransmissions
    /// deliver it once a path heals; a peer that gave up meanwhile then gets the late bytes
    /// and the close. The kernel would give up after about 15 minutes of retransmissions
    /// (`ETIMEDOUT`); here the connection waits forever, so only the client's own timeout ends
    /// it. Unlike a real dark path, the relay accepts new connections (a SYN would go
    /// unanswered): a client sees its connect succeed and then no reply.
    Silent,
    /// The host is down: the listener is closed, so connects are refused (`ECONNREFUSED`) as by
    /// the kernel for a closed port, and the connections that were open are reset, as by a
    /// peer that rebooted. Leaving this mode opens the listener again on the same port.
    Refuse,
}

/// What the relay has seen since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Connections accepted.
    pub connections: usize,
    /// Bytes forwarded from clients to the upstream.
    pub bytes_to_upstream: u64,
    /// Bytes forwarded from the upstream to clients.
    pub bytes_to_client: u64,
    /// Chunks given a delivery time later than their arrival (latency or a loss stall).
    pub chunks_delayed: u64,
    /// Chunks held for a loss stall.
    pub stalls: u64,
    /// Chunks read while the link was dark (`Silent`), held until it came back.
    pub chunks_held: u64,
    /// Connections the relay reset (`ResetMid*`, `Refuse`, or a peer's own reset passed on).
    pub resets: u64,
}

/// A running relay; dropping it closes every connection it holds.
pub struct Relay {
    runtime: Option<Runtime>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop; `None` while the relay refuses.
    accepting: Mutex<Option<JoinHandle<()>>>,
}

impl Relay {
    /// A relay on a free 127.0.0.1 port to `upstream`, in [`Mode::Pass`].
    pub fn start(upstream: SocketAddr) -> Relay {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("relay")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("relay: cannot build runtime: {e}"));
        let listener = runtime
            .block_on(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
            .unwrap_or_else(|e| panic!("relay: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("relay: local_addr: {e}"));
        let (generation, _) = watch::channel(0);
        let (mode, _) = watch::channel(Mode::Pass);
        let shared = Arc::new(Shared {
            upstream,
            mode,
            // A fixed seed per port: runs differ only by the port, never by the clock.
            random: Mutex::new(0x9E37_79B9_7F4A_7C15 ^ u64::from(addr.port())),
            generation,
            counts: Counters::default(),
        });
        let accepting = runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        Relay {
            runtime: Some(runtime),
            addr,
            shared,
            accepting: Mutex::new(Some(accepting)),
        }
    }

    /// A relay to the `host:port` of an `http://` URL (a supervisord's or an OTLP server's).
    pub fn to_url(url: &str) -> Relay {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or(rest))
            .unwrap_or_else(|| panic!("relay: not an http:// URL: {url}"));
        let upstream: SocketAddr = authority
            .parse()
            .unwrap_or_else(|e| panic!("relay: '{authority}' is not an address: {e}"));
        Relay::start(upstream)
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the upstream's URL, through the relay.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Changes what the link does, from the next chunk on (and, leaving [`Mode::Silent`], for
    /// what the dark link held).
    pub fn set(&self, mode: Mode) {
        let was = self.shared.mode.send_replace(mode);
        match (was == Mode::Refuse, mode == Mode::Refuse) {
            (false, true) => {
                if let Some(accepting) = self.accepting_slot().take() {
                    accepting.abort();
                    // Once the task is gone, so is its listener: connects are refused from now.
                    let _ = self.runtime().block_on(accepting);
                }
                self.shared.generation.send_modify(|g| *g += 1);
            }
            (true, false) => self.listen_again(),
            _ => {}
        }
    }

    pub fn counts(&self) -> Counts {
        self.shared.counts.snapshot()
    }

    fn runtime(&self) -> &Runtime {
        self.runtime
            .as_ref()
            .unwrap_or_else(|| panic!("relay already stopped"))
    }

    fn accepting_slot(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.accepting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds the same port again (it was ours a moment ago; a busy one is retried briefly).
    fn listen_again(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match self.runtime().block_on(TcpListener::bind(self.addr)) {
                Ok(listener) => break listener,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("relay: cannot bind {} again: {e}", self.addr),
            }
        };
        let accepting = self
            .runtime()
            .spawn(accept_loop(listener, Arc::clone(&self.shared)));
        *self.accepting_slot() = Some(accepting);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    /// Watched by every connection, so a held chunk goes on when the link is back.
    mode: watch::Sender<Mode>,
    /// xorshift64 state, for jitter and loss draws.
    random: Mutex<u64>,
    /// Bumped when the relay starts refusing: every connection open then is reset.
    generation: watch::Sender<u64>,
    counts: Counters,
}

impl Shared {
    /// A uniform draw in [0, 1).
    fn uniform(&self) -> f64 {
        let mut state = self.random.lock().unwrap_or_else(|p| p.into_inner());
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    bytes_to_upstream: AtomicU64,
    bytes_to_client: AtomicU64,
    chunks_delayed: AtomicU64,
    stalls: AtomicU64,
    chunks_held: AtomicU64,
    resets: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Counts {
        let n = |c: &AtomicU64| c.load(Ordering::SeqCst);
        Counts {
            connections: self.connections.load(Ordering::SeqCst),
            bytes_to_upstream: n(&self.bytes_to_upstream),
            bytes_to_client: n(&self.bytes_to_client),
            chunks_delayed: n(&self.chunks_delayed),
            stalls: n(&self.stalls),
            chunks_held: n(&self.chunks_held),
            resets: n(&self.resets),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::SeqCst);
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        shared.counts.connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(serve(client, Arc::clone(&shared)));
    }
}

/// Which way a chunk travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToUpstream,
    ToClient,
}

/// How a pump ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The end of the stream was passed on.
    Closed,
    /// The connection is to be reset on both sides.
    Reset,
}

/// One relayed connection: both directions, until both ends closed or a reset.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let mut generation = shared.generation.subscribe();
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(upstream) => upstream,
        Err(_) => {
            // Nowhere to forward to: the client sees the connection reset.
            reset(&[&client], &shared);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let up = pump(&client, &upstream, Direction::ToUpstream, &shared);
    let down = pump(&upstream, &client, Direction::ToClient, &shared);
    tokio::pin!(up, down);
    let end = tokio::select! {
        end = &mut up => if end == End::Reset { End::Reset } else { down.await },
        end = &mut down => if end == End::Reset { End::Reset } else { up.await },
        _ = generation.changed() => End::Reset,
    };
    if end == End::Reset {
        reset(&[&client, &upstream], &shared);
    }
}

/// `SO_LINGER` 0: the close that follows (when the streams are dropped) sends a reset.
fn reset(streams: &[&TcpStream], shared: &Shared) {
    for stream in streams {
        let _ = stream.set_zero_linger();
    }
    bump(&shared.counts.resets, 1);
}

/// What a pump holds for delivery.
enum Item {
    Data(Vec<u8>),
    /// The sender closed its side: passed on as a FIN.
    Eof,
    /// Reset the connection once everything before it is delivered.
    Reset,
}

/// When an item goes on: at a time, or (read while the link was dark) once the link is back.
#[derive(Clone, Copy)]
enum Due {
    At(Instant),
    WhenLinkIsBack,
}

/// Moves chunks from `from` to `to`, each at the delivery time its mode gave it, in order.
async fn pump(from: &TcpStream, to: &TcpStream, direction: Direction, shared: &Shared) -> End {
    let mut mode_changes = shared.mode.subscribe();
    let mut pending: VecDeque<(Due, Item)> = VecDeque::new();
    let mut last_due = Instant::now();
    // Bytes passed on in this direction since a reset mode for it came into force.
    let mut passed_before_reset = 0usize;
    let mut read_done = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let next_due = match pending.front() {
            Some((Due::At(due), _)) => Some(*due),
            _ => None,
        };
        tokio::select! {
            read = read_chunk(from, &mut buf), if !read_done => {
                let item = match read {
                    Ok(0) => {
                        read_done = true;
                        Item::Eof
                    }
                    Ok(n) => Item::Data(buf.get(..n).unwrap_or_default().to_vec()),
                    // The peer reset its side: pass the reset on.
                    Err(_) => return End::Reset,
                };
                let mode = *shared.mode.borrow();
                let now = Instant::now();
                let cut = match (mode, direction) {
                    (Mode::ResetMidReply { after_bytes }, Direction::ToClient)
                    | (Mode::ResetMidRequest { after_bytes }, Direction::ToUpstream) => {
                        Some(after_bytes)
                    }
                    _ => None,
                };
                let Some(after_bytes) = cut else {
                    passed_before_reset = 0;
                    let due = match delay(mode, shared) {
                        None => {
                            bump(&shared.counts.chunks_held, 1);
                            Due::WhenLinkIsBack
                        }
                        Some(delay) => {
                            if !delay.is_zero() {
                                bump(&shared.counts.chunks_delayed, 1);
                            }
                            last_due = last_due.max(now + delay);
                            Due::At(last_due)
                        }
                    };
                    pending.push_back((due, item));
                    continue;
                };
                last_due = last_due.max(now);
                let due = Due::At(last_due);
                let room = after_bytes.saturating_sub(passed_before_reset);
                match item {
                    Item::Data(bytes) if bytes.len() < room => {
                        passed_before_reset += bytes.len();
                        pending.push_back((due, Item::Data(bytes)));
                    }
                    Item::Data(mut bytes) => {
                        bytes.truncate(room);
                        passed_before_reset = after_bytes;
                        if !bytes.is_empty() {
                            pending.push_back((due, Item::Data(bytes)));
                        }
                        pending.push_back((due, Item::Reset));
                        read_done = true;
                    }
                    other => pending.push_back((due, other)),
                }
            }
            () = sleep_until(next_due), if next_due.is_some() => {
                let Some((_, item)) = pending.pop_front() else { continue };
                match item {
                    Item::Data(bytes) => {
                        if write_all(to, &bytes).await.is_err() {
                            return End::Reset;
                        }
                        let counter = match direction {
                            Direction::ToUpstream => &shared.counts.bytes_to_upstream,
                            Direction::ToClient => &shared.counts.bytes_to_client,
                        };
                        bump(counter, bytes.len() as u64);
                    }
                    Item::Eof => {
                        shutdown_write(to);
                        return End::Closed;
                    }
                    Item::Reset => return End::Reset,
                }
            }
            changed = mode_changes.changed() => {
                if changed.is_err() {
                    // The relay is gone.
                    return End::Reset;
                }
                // The link is back: what it held goes on now, in order.
                if *mode_changes.borrow_and_update() != Mode::Silent {
                    let now = Instant::now();
                    last_due = last_due.max(now);
                    for (due, _) in pending.iter_mut() {
                        if matches!(due, Due::WhenLinkIsBack) {
                            *due = Due::At(last_due);
                        }
                    }
                }
            }
        }
    }
}

/// How long a chunk read now waits before it goes on; `None`: it never does.
fn delay(mode: Mode, shared: &Shared) -> Option<Duration> {
    match mode {
        Mode::Pass | Mode::Refuse | Mode::ResetMidReply { .. } | Mode::ResetMidRequest { .. } => {
            Some(Duration::ZERO)
        }
        Mode::Latency { base, jitter } => {
            let offset = jitter.as_secs_f64() * (2.0 * shared.uniform() - 1.0);
            Some(Duration::from_secs_f64(
                (base.as_secs_f64() + offset).max(0.0),
            ))
        }
        Mode::Loss { probability, stall } => {
            if shared.uniform() < probability {
                bump(&shared.counts.stalls, 1);
                Some(stall)
            } else {
                Some(Duration::ZERO)
            }
        }
        Mode::Silent => None,
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// One read of what is there (cancel-safe: nothing is consumed until the read succeeds).
async fn read_chunk(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Passes a FIN on. tokio's `shutdown` needs the stream exclusively, and both directions of a
/// connection share it here.
fn shutdown_write(stream: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is this open socket's; `shutdown` only changes its state.
    unsafe {
        libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR);
    }
}
