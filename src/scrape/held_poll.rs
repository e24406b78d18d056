//! Push mode's work between two full polls, on the poller's own parts (a child of
//! [`super::poller`], so it reads them without widening their visibility): an interval's
//! outcome from the held snapshot, and the processes that events named asked for alone.

use std::sync::{Arc, PoisonError};

use super::TargetPoller;
use crate::clock::unix_nanos_now;
use crate::scrape::held::HeldSnapshot;
use crate::scrape::outcome::{MonitoredProcess, PollOutcome};
use crate::supervisor::client::PollError;
use crate::vocab::Snapshot;

impl TargetPoller {
    /// An interval's outcome without asking supervisord for its processes: the held snapshot
    /// at this instant, the counts kept from events, and, as after every poll, the programs'
    /// resources from /proc and their output (which cost supervisord nothing, or what the
    /// target's `output:` asks for anyway).
    ///
    /// Nothing is compared with the previous poll (the events reported every change) and no
    /// poll is recorded in the self-telemetry (none was made). `can_connect` is 1: a held
    /// snapshot exists only while the last call to supervisord succeeded.
    pub async fn held_outcome(&mut self, held: &HeldSnapshot) -> PollOutcome {
        let time_unix_nano = unix_nanos_now();
        let mut data = held.data(std::time::Instant::now());
        (data.restarts, data.exits) = self
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counts(time_unix_nano);
        self.read_beside(&mut data, time_unix_nano).await;
        PollOutcome {
            target: Arc::clone(&self.identity),
            time_unix_nano,
            result: Ok(data),
        }
    }

    /// supervisord's entries for `names` (`group:name`), filtered and mapped as a poll's: one
    /// `getProcessInfo` each, in one round trip. A failure is logged at debug level only: the
    /// caller makes a full poll next, which logs and reports it as any poll does.
    pub async fn fetch_processes(
        &mut self,
        names: &[String],
    ) -> Result<Vec<MonitoredProcess>, PollError> {
        match self.client.process_infos(names).await {
            Ok((processes, problems)) => {
                for problem in &problems {
                    tracing::debug!(event = "reply_problem", target_name = %self.target.name, "{problem}");
                }
                let snapshot = Snapshot {
                    processes,
                    ..Snapshot::default()
                };
                Ok(crate::scrape::monitored(&self.target, snapshot).processes)
            }
            Err(error) => {
                tracing::debug!(
                    event = "process_info_failed",
                    target_name = %self.target.name,
                    error_type = error.error_type(),
                    "getProcessInfo of {} process(es) failed: {error}; polling in full",
                    names.len()
                );
                Err(error)
            }
        }
    }
}
