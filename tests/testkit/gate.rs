//! Tests that load the machine on purpose (hundreds of connections beside a real supervisord)
//! and then judge schedules must not share the cores with other end-to-end tests. All suites run
//! in one process, so the process keeps a gate: every [`Supervisord`] and every receiver
//! ([`Running`]) holds a [`shared`] guard for as long as it lives, and [`exclusive`] waits until
//! no other test holds one, then keeps new ones waiting until it is dropped.
//!
//! The thread holding the exclusive guard may start supervisords and receivers itself. A guard
//! may be dropped on any thread.
//!
//! [`Supervisord`]: super::supervisord::Supervisord
//! [`Running`]: super::receiver::Running

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

/// Longer than any test holds a supervisord or a receiver; past it, something leaked a guard.
const EXCLUSIVE_WAIT: Duration = Duration::from_secs(600);

struct State {
    /// Shared guards alive (clones count once).
    shared: usize,
    /// The thread that holds the exclusive guard.
    exclusive: Option<ThreadId>,
}

static STATE: Mutex<State> = Mutex::new(State {
    shared: 0,
    exclusive: None,
});
static CHANGED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held by each supervisord and receiver a test starts. Cloning shares the same hold.
#[derive(Clone)]
pub struct SharedGuard {
    _token: Option<Arc<SharedToken>>,
}

struct SharedToken;

impl Drop for SharedToken {
    fn drop(&mut self) {
        let mut state = state();
        state.shared = state.shared.saturating_sub(1);
        CHANGED.notify_all();
    }
}

/// Waits while another thread holds the exclusive guard.
pub fn shared() -> SharedGuard {
    let me = thread::current().id();
    let mut state = state();
    if state.exclusive == Some(me) {
        return SharedGuard { _token: None };
    }
    while state.exclusive.is_some() {
        state = CHANGED.wait(state).unwrap_or_else(|p| p.into_inner());
    }
    state.shared += 1;
    SharedGuard {
        _token: Some(Arc::new(SharedToken)),
    }
}

/// Held by a test that must have the machine to itself.
pub struct ExclusiveGuard(());

impl Drop for ExclusiveGuard {
    fn drop(&mut self) {
        state().exclusive = None;
        CHANGED.notify_all();
    }
}

/// Waits until no other test holds a supervisord, a receiver or the exclusive guard.
pub fn exclusive() -> ExclusiveGuard {
    let me = thread::current().id();
    let deadline = Instant::now() + EXCLUSIVE_WAIT;
    let mut state = state();
    while state.shared > 0 || state.exclusive.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "waited {EXCLUSIVE_WAIT:?} for the other tests to drop {} supervisord(s) or \
             receiver(s)",
            state.shared
        );
        state = CHANGED
            .wait_timeout(state, left)
            .map(|(s, _)| s)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    state.exclusive = Some(me);
    ExclusiveGuard(())
}
