//! A recording relay on a UNIX socket: the receiver talks to supervisord through it, and the
//! test counts the XML-RPC methods supervisord was asked for, inside multicalls too (which
//! supervisord's own log does not show: at `loglevel=trace` it names only `system.multicall`).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Every byte each connection sent towards supervisord, one buffer per connection.
type Sent = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

pub struct Relay {
    path: PathBuf,
    sent: Sent,
    stopping: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Listens on a new socket and relays each connection to `upstream`.
    pub fn start(upstream: &Path) -> Relay {
        // Short prefix under /tmp: a UNIX socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("rly")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let sent: Sent = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_path_buf();
        let (accepted_sent, accepted_stopping) = (Arc::clone(&sent), Arc::clone(&stopping));
        thread::spawn(move || {
            for client in listener.incoming() {
                if accepted_stopping.load(Ordering::Relaxed) {
                    return;
                }
                let (Ok(client), Ok(server)) = (client, UnixStream::connect(&upstream)) else {
                    continue;
                };
                let record = Arc::new(Mutex::new(Vec::new()));
                accepted_sent.lock().unwrap().push(Arc::clone(&record));
                relay(client, server, record);
            }
        });
        Relay {
            path,
            sent,
            stopping,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// How many times `method` was asked for so far, alone or in a multicall.
    pub fn calls(&self, method: &str) -> usize {
        let needle = format!("<string>{method}</string>");
        let plain = format!("<methodName>{method}</methodName>");
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|bytes| {
                let text = String::from_utf8_lossy(&bytes.lock().unwrap()).into_owned();
                text.matches(&needle).count() + text.matches(&plain).count()
            })
            .sum()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
    }
}

/// Copies both ways until either side closes; what the client sends is recorded.
fn relay(client: UnixStream, server: UnixStream, record: Arc<Mutex<Vec<u8>>>) {
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = client_in.read(&mut buf) {
            if n == 0 || server_out.write_all(&buf[..n]).is_err() {
                break;
            }
            record.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        let _ = server_out.shutdown(std::net::Shutdown::Both);
    });
    let (mut server_in, mut client_out) = (server, client);
    thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n) = server_in.read(&mut buf) {
            if n == 0 || client_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client_out.shutdown(std::net::Shutdown::Both);
    });
}
