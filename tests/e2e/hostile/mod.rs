//! One bad target never hurts another: the real binary polls hundreds of healthy fake
//! supervisords beside hostile ones (slow, silent, hanging up, oversized, unreachable) and
//! broken replies, and a real supervisord that is restarted under it.
//!
//! Schedules are checked from what the OTLP server received (the `can_connect` timestamps the
//! receiver itself reports), never by timing the test's own code.

mod fakes;
mod fleet;
mod replies;
mod restart;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::testkit::gate::{self, ExclusiveGuard};
use crate::testkit::otlp_sink::Poll;

const CAN_CONNECT: &str = "supervisord.can_connect";

/// A reply recorded from a real supervisord 4.3.0: what the healthy fakes serve.
const RECORDED: &str =
    include_str!("../../fixtures/xmlrpc/multicall_recorded_supervisord_4.3.0.xml");

/// The tests of this suite load the machine (hundreds of connections, a real supervisord): one
/// at a time, and with no other end-to-end test running meanwhile, so none of them judges a
/// schedule while another competes for the cores.
fn serial() -> ExclusiveGuard {
    gate::exclusive()
}

fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn connected(poll: &Poll) -> bool {
    poll.value(CAN_CONNECT, &[]) == Some(1)
}

fn disconnected(poll: &Poll) -> bool {
    poll.value(CAN_CONNECT, &[]) == Some(0)
}

fn inet_message(url: &str) -> String {
    format!(
        "Cannot connect to {url}. Make sure supervisor is running and XML-RPC inet interface is \
         enabled."
    )
}
