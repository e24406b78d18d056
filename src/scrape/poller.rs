//! One target's poll: ask supervisord, filter, map, and log what went wrong.

use crate::clock::unix_nanos_now;
use std::sync::{Arc, Mutex, PoisonError};

use crate::scrape::backoff::FailureBackoff;
use crate::scrape::changes::ChangeTracker;
use crate::scrape::config_info::ConfigInfoState;
use crate::scrape::outcome::{PollData, PollOutcome, TargetIdentity};
use crate::scrape::output::OutputTailer;
use crate::scrape::resources::ResourceReader;
use crate::scrape::skew::{self, ClockWatch, PollClock};
use crate::settings::Target;
use crate::supervisor::client::{PollError, SupervisorClient};
use crate::supervisor::transport::TransportBuildError;
use crate::telemetry::{PollRecord, ProcessCounts, Telemetry};
use crate::vocab::Status;

// Push mode's work between full polls, on this poller's parts.
#[path = "held_poll.rs"]
mod held_poll;

/// Everything needed to poll one target, built once before the loop starts.
pub struct TargetPoller {
    target: Arc<Target>,
    identity: Arc<TargetIdentity>,
    client: SupervisorClient,
    /// The last failure message, so a target that stays down logs its reason once (and again
    /// when the reason changes) rather than every interval.
    last_failure: Option<String>,
    /// The last set of reply problems, logged the same way.
    last_problems: Vec<String>,
    /// Where poll durations and error types are counted; absent for one-off polls (`check`).
    telemetry: Option<Arc<Telemetry>>,
    /// Spreads out the attempts of a target that keeps failing.
    backoff: FailureBackoff,
    /// What changed since the last poll, and the counts kept per process. Shared so a reload
    /// can hand it to the task that replaces this one; locked only while a poll is compared.
    tracker: Arc<Mutex<ChangeTracker>>,
    /// supervisord's identification and version from the last successful poll, for the
    /// resource of records made between polls (push mode's events).
    described: (Option<String>, Option<String>),
    /// For a target on this host: reads its programs' process trees after each poll.
    resources: Option<ResourceReader>,
    /// For a target with `output:`: reads its programs' output after each poll. Shared so a
    /// reload hands its offsets to the task that replaces this one.
    output: Option<Arc<tokio::sync::Mutex<OutputTailer>>>,
    /// For a target whose points carry `autostart`: when to ask supervisord's configuration,
    /// and its last answer.
    config_info: Option<ConfigInfoState>,
    /// supervisord's clock over the polls, to warn once when it is far off or goes back.
    clock: ClockWatch,
}

impl TargetPoller {
    pub fn new(target: Target) -> Result<Self, TransportBuildError> {
        let client = SupervisorClient::new(&target)?;
        let identity = Arc::new(TargetIdentity::of(&target));
        let backoff = FailureBackoff::new(target.collection_interval);
        let config_info = target.autostart_attribute.then(ConfigInfoState::default);
        Ok(TargetPoller {
            backoff,
            target: Arc::new(target),
            identity,
            client,
            last_failure: None,
            last_problems: Vec::new(),
            telemetry: None,
            tracker: Arc::default(),
            described: (None, None),
            resources: None,
            output: None,
            config_info,
            clock: ClockWatch::default(),
        })
    }

    /// Reads the programs' resources after each successful poll when the target is on this
    /// host (see [`crate::settings::Target::reads_resources`]), CPU time in `cpu_time`.
    pub fn with_resources(mut self, cpu_time: crate::settings::Temporality) -> Self {
        self.resources = self
            .target
            .reads_resources()
            .then(|| ResourceReader::new(&self.target.name, cpu_time));
        self
    }

    /// Reads the programs' output after each successful poll with `tailer` (see
    /// [`crate::scrape::output`]).
    pub fn with_output(mut self, tailer: Option<Arc<tokio::sync::Mutex<OutputTailer>>>) -> Self {
        self.output = tailer;
        self
    }

    /// Uses `tracker` (a new one, or the one of the task this poller replaces) for changes and
    /// counts.
    pub fn with_tracker(mut self, tracker: Arc<Mutex<ChangeTracker>>) -> Self {
        self.tracker = tracker;
        self
    }

    pub fn tracker(&self) -> &Arc<Mutex<ChangeTracker>> {
        &self.tracker
    }

    /// The target's resource identity.
    pub fn identity(&self) -> &Arc<TargetIdentity> {
        &self.identity
    }

    /// supervisord's identification and version, as last polled.
    pub fn described(&self) -> (Option<&str>, Option<&str>) {
        (self.described.0.as_deref(), self.described.1.as_deref())
    }

    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Polls once and returns the raw result, for `check` which shows more than the metrics.
    pub async fn poll_raw(&self) -> Result<crate::supervisor::client::PolledSnapshot, PollError> {
        self.client.poll().await
    }

    /// What a successful poll or held interval reads beside supervisord's process list: the
    /// programs' output (bounded by the target's timeout like the poll itself; a tail cut short
    /// keeps what it read for the next time, the tailer being safe to cancel) and their
    /// resources from `/proc`.
    async fn read_beside(&mut self, data: &mut PollData, time_unix_nano: u64) {
        if let Some(tailer) = &self.output {
            let tail = async {
                tailer
                    .lock()
                    .await
                    .poll(&self.client, &data.processes, time_unix_nano)
                    .await
            };
            match tokio::time::timeout(self.target.timeout, tail).await {
                Ok(report) => data.output = Some(Box::new(report)),
                Err(_) => tracing::warn!(
                    event = "output_tail_timeout",
                    target_name = %self.target.name,
                    "reading program output took longer than the timeout ({:?}); going on at \
                     the next poll",
                    self.target.timeout
                ),
            }
        }
        if let Some(reader) = &mut self.resources {
            data.resources = reader.read(&self.target.name, &data.processes, time_unix_nano);
        }
    }

    /// Polls once; never fails: a failure is an outcome with `can_connect` 0, logged here.
    ///
    /// An attempt is cheap and bounded: one connection at most (no retry after a failed
    /// connect), cut by the target's timeout, never longer than the interval, so a target never
    /// has two polls in flight. A target that keeps failing is backed off (see
    /// [`FailureBackoff`]): an interval without an attempt repeats the last failure, so
    /// `can_connect` 0 still arrives every interval.
    pub async fn poll(&mut self) -> PollOutcome {
        // Points carry the time the poll started, which the schedule sets: a poll cut by its
        // timeout and a skipped one stay one interval apart, as the series' readers expect.
        let time_unix_nano = unix_nanos_now();
        if let Some(message) = self.last_failure.clone() {
            if !self.backoff.attempt_now() {
                tracing::debug!(event = "poll_skipped", target_name = %self.target.name, "backing off: {message}");
                if let Some(telemetry) = &self.telemetry {
                    let next = self.next_attempt_unix_nano(time_unix_nano);
                    telemetry.polls.record_skipped(&self.target.name, next);
                }
                return PollOutcome {
                    target: Arc::clone(&self.identity),
                    time_unix_nano,
                    result: Err(message),
                };
            }
        }
        let started = std::time::Instant::now();
        let result = self.client.poll().await;
        let duration = started.elapsed();
        let (replied_unix_nano, replied_monotonic_nanos) =
            (unix_nanos_now(), skew::monotonic_nanos());
        let error_type = result.as_ref().err().map(PollError::error_type);
        let result = match result {
            Ok(polled) => {
                self.backoff.record_success();
                if self.last_failure.take().is_some() {
                    tracing::info!(target_name = %self.target.name, "supervisord is reachable again");
                }
                self.log_problems(&polled.problems);
                // From every process of the reply, the filtered-out ones too.
                let offset = skew::offset_seconds(&polled.snapshot.processes, replied_unix_nano);
                self.clock
                    .check(&self.target.name, &polled.snapshot.processes, offset);
                let mut data = crate::scrape::monitored(&self.target, polled.snapshot);
                data.clock_offset_seconds = offset;
                if let Some(config_info) = &mut self.config_info {
                    config_info
                        .refresh_and_apply(&self.client, &self.target, started, &mut data.processes)
                        .await;
                }
                self.described = (data.identification.clone(), data.version.clone());
                {
                    // A panic elsewhere while holding the lock leaves plain data behind:
                    // usable. The block ends the guard before the output tail's awaits.
                    let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
                    let clock = PollClock {
                        time_unix_nano,
                        monotonic_nanos: replied_monotonic_nanos,
                        offset_seconds: offset,
                    };
                    (data.changes, data.uptimes) =
                        tracker.observe(&data.processes, data.supervisor_state, clock);
                    (data.restarts, data.exits) = tracker.counts(time_unix_nano);
                }
                self.read_beside(&mut data, time_unix_nano).await;
                Ok(data)
            }
            Err(error) => {
                self.tracker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .lost_sight();
                if let Some(config_info) = &mut self.config_info {
                    config_info.poll_failed();
                }
                self.backoff.record_failure();
                let message = error.message(&self.target);
                self.log_failure(&error, &message);
                Err(message)
            }
        };
        if let Some(telemetry) = &self.telemetry {
            let (message, processes) = match &result {
                Ok(data) => (None, Some(process_counts(&data.processes))),
                Err(message) => (Some(message.as_str()), None),
            };
            telemetry.polls.record_poll(
                &self.target.name,
                PollRecord {
                    started_unix_nano: time_unix_nano,
                    duration,
                    error_type,
                    message,
                    processes,
                    next_poll_unix_nano: self.next_attempt_unix_nano(time_unix_nano),
                },
            );
        }
        PollOutcome {
            target: Arc::clone(&self.identity),
            time_unix_nano,
            result,
        }
    }

    /// When the next poll that connects is due, for a poll (or skipped interval) that started
    /// at `started_unix_nano`: one interval later, or more while backing off.
    fn next_attempt_unix_nano(&self, started_unix_nano: u64) -> u64 {
        let intervals = u64::from(self.backoff.intervals_skipped_before_next_attempt()) + 1;
        let interval = self.target.collection_interval.as_nanos() as u64;
        started_unix_nano.saturating_add(interval.saturating_mul(intervals))
    }

    fn log_failure(&mut self, error: &PollError, message: &str) {
        let detail = error.detail().unwrap_or_default();
        if self.last_failure.as_deref() == Some(message) {
            tracing::debug!(event = "poll_failed", target_name = %self.target.name, error_type = error.error_type(), detail, "{message}");
        } else {
            tracing::warn!(event = "poll_failed", target_name = %self.target.name, error_type = error.error_type(), detail, "{message}");
            self.last_failure = Some(message.to_owned());
        }
    }

    fn log_problems(&mut self, problems: &[String]) {
        if problems != self.last_problems.as_slice() {
            for problem in problems {
                tracing::warn!(event = "reply_problem", target_name = %self.target.name, "{problem}");
            }
            self.last_problems = problems.to_vec();
        }
    }
}

/// The processes of a poll by mapped status.
fn process_counts(processes: &[crate::scrape::outcome::MonitoredProcess]) -> ProcessCounts {
    let mut counts = ProcessCounts::default();
    for process in processes {
        match process.status {
            Status::Up => counts.up += 1,
            Status::Down => counts.down += 1,
            Status::Unknown => counts.unknown += 1,
        }
    }
    counts
}
