//! Program output as log records: each tailed program's stdout and stderr, and supervisord's
//! own log when asked, read through supervisord's log API after each poll (so it works
//! remotely and needs no access to the files).
//!
//! A poll of the output is one round trip for the sizes of every tailed log, then rounds of
//! reads (at most [`MAX_READ_ROUNDS`]), each one multicall of every log that still has bytes to
//! read this poll. A log reads at most `max_bytes_per_poll` per poll; the rest waits for the
//! next. Each read's window is moved, never dropped, when supervisord cannot decode it (see
//! [`crate::supervisor::logtail`]): a window cut inside a character is shortened to end before
//! it, and a byte that is not UTF-8 is passed over, a U+FFFD standing in for it.
//!
//! What the tail promises, and how:
//! - every line once and in order: a log's offset moves only by what was read, and a line is
//!   sent when its newline arrives (or it waited `partial_line_timeout`);
//! - a new target starts at the end of each log; a program that appears later is read from
//!   its log's start (its first lines are the ones worth reading);
//! - a log shorter than the offset (truncated, rotated by supervisord) or at another path (an
//!   `AUTO` log after supervisord restarted) is read again from its start;
//! - a log more than `max_backlog_bytes` behind skips to its newest `max_bytes_per_poll`, and a
//!   record says how many bytes were skipped;
//! - offsets survive a reload (the tailer is handed to the new task) and a restart (a
//!   [`Checkpoint`] saved after the records are queued, see [`offsets`]).
//!
//! supervisord's own log has no size call: `readLog` windows are read from the offset until
//! one comes back short, a one-byte read just before the offset tells whether the file got
//! shorter, and the end of the log is found once, by probing, when a target starts.

pub mod offsets;
pub mod stream;
pub mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scrape::outcome::MonitoredProcess;
use crate::settings::{OutputSettings, OutputStream};
use crate::supervisor::client::{PollError, SupervisorClient};
use crate::supervisor::logtail::{LogAnswer, LogCall, Undecodable};
use stream::{LineLimits, Piece, StreamTail};

/// Read rounds per poll at most: one normally, a few more when windows had to move around
/// characters supervisord could not decode; what is left waits for the next poll.
pub const MAX_READ_ROUNDS: usize = 8;

/// A UTF-8 character is at most this long: a window this long that starts on a character
/// always holds one whole.
const MAX_CHAR_BYTES: u64 = 4;

/// Stands in for a byte supervisord could not decode: not UTF-8 itself, so the lossy decoding
/// of the line shows U+FFFD where it was.
const UNDECODABLE_BYTE: u8 = 0xFF;

/// One tailed log: a program's stream (`process` is `group:name`, as supervisord's per-process
/// calls take it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    pub process: String,
    pub stream: OutputStream,
}

/// A line (or a skip) of one log, with whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// The program's name and group; empty for supervisord's own log.
    pub name: String,
    pub group: String,
    /// `None`: supervisord's own log.
    pub stream: Option<OutputStream>,
    pub piece: Piece,
}

/// Where each log of a target resumes: saved after the records read up to there are queued.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub streams: Vec<SavedOffset>,
    /// supervisord's own log, when it is tailed.
    pub main_log: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedOffset {
    /// `group:name`.
    pub process: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub logfile: String,
    pub offset: u64,
}

/// What one poll of the output produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputReport {
    /// In order within each log; logs one after the other.
    pub records: Vec<OutputRecord>,
    /// Where every log resumes after these records.
    pub checkpoint: Checkpoint,
}

/// One target's output tail; handed to the task that replaces this target's after a reload.
#[derive(Debug)]
pub struct OutputTailer {
    target_name: String,
    settings: OutputSettings,
    streams: BTreeMap<StreamKey, Tailed>,
    main: Option<StreamTail>,
    /// Whether a poll of the output happened: logs found at the first start at their end.
    started: bool,
    /// Offsets a previous run saved, for the first poll.
    resumed: Option<Checkpoint>,
    /// The last problem logged, so a problem that stays is logged once.
    last_problem: Option<String>,
}

#[derive(Debug)]
struct Tailed {
    name: String,
    group: String,
    tail: StreamTail,
}

/// One log's reading in this poll.
struct Plan {
    key: StreamKey,
    size: u64,
    budget: u64,
    /// The next window's length when a fault moved it.
    next_length: Option<u64>,
    done: bool,
    pieces: Vec<Piece>,
}

impl OutputTailer {
    /// A tailer for a target; `resumed` holds the offsets a previous run saved for it.
    pub fn new(target_name: &str, settings: OutputSettings, resumed: Option<Checkpoint>) -> Self {
        OutputTailer {
            target_name: target_name.to_owned(),
            settings,
            streams: BTreeMap::new(),
            main: None,
            started: false,
            resumed,
            last_problem: None,
        }
    }

    /// New settings after a reload; the offsets stay.
    pub fn reconfigure(&mut self, settings: OutputSettings) {
        self.settings = settings;
    }

    fn limits(&self) -> LineLimits {
        LineLimits {
            max_line_bytes: self.settings.max_line_bytes,
            partial_line_timeout_nanos: u64::try_from(
                self.settings.partial_line_timeout.as_nanos(),
            )
            .unwrap_or(u64::MAX),
        }
    }

    /// Reads what the monitored `processes` wrote since the last poll. Never fails: a failed
    /// round is logged, and what was read so far is kept.
    pub async fn poll(
        &mut self,
        client: &SupervisorClient,
        processes: &[MonitoredProcess],
        now: u64,
    ) -> OutputReport {
        let mut report = OutputReport::default();
        let mut problems = Vec::new();
        if let Err(error) = self.poll_streams(client, processes, now, &mut report).await {
            problems.push(format!("reading program output failed: {error}"));
        }
        if self.settings.main_log {
            if let Err(error) = self.poll_main_log(client, now, &mut report).await {
                problems.push(format!("reading supervisord's log failed: {error}"));
            }
        } else {
            self.main = None;
        }
        self.started = true;
        self.resumed = None;
        self.log_problems(problems);
        report.checkpoint = self.checkpoint();
        report
    }

    /// Where every log resumes.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            streams: self
                .streams
                .iter()
                .map(|(key, tailed)| SavedOffset {
                    process: key.process.clone(),
                    stream: key.stream.name().to_owned(),
                    logfile: tailed.tail.logfile().to_owned(),
                    offset: tailed.tail.committed(),
                })
                .collect(),
            main_log: self.main.as_ref().map(StreamTail::committed),
        }
    }

    async fn poll_streams(
        &mut self,
        client: &SupervisorClient,
        processes: &[MonitoredProcess],
        now: u64,
        report: &mut OutputReport,
    ) -> Result<(), PollError> {
        let limits = self.limits();
        let wanted = self.wanted(processes);
        // Logs no longer tailed send what they hold.
        let gone: Vec<StreamKey> = self
            .streams
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(tailed) = self.streams.remove(&key) {
                let mut pieces = Vec::new();
                tailed.tail.finish(&mut pieces);
                push_records(
                    report,
                    &tailed.name,
                    &tailed.group,
                    Some(key.stream),
                    pieces,
                );
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let calls: Vec<LogCall<'_>> = wanted
            .keys()
            .map(|key| LogCall::Size {
                process: &key.process,
                stream: key.stream,
            })
            .collect();
        let answers = client.log_calls(&calls).await?;
        let mut plans = Vec::new();
        let mut problems = Vec::new();
        for ((key, (name, group, logfile)), answer) in wanted.iter().zip(answers) {
            let size = match answer {
                LogAnswer::Size(size) => size,
                LogAnswer::NoFile => continue,
                other => {
                    problems.push(format!("{}: {}", key.process, describe(&other)));
                    continue;
                }
            };
            let mut pieces = Vec::new();
            let tailed = self.streams.entry(key.clone()).or_insert_with(|| {
                let offset = if self.started {
                    0
                } else {
                    resumed_offset(self.resumed.as_ref(), key, logfile).unwrap_or(size)
                };
                Tailed {
                    name: name.clone(),
                    group: group.clone(),
                    tail: StreamTail::new(logfile.clone(), offset),
                }
            });
            if tailed.tail.logfile() != logfile || size < tailed.tail.offset() {
                tailed.tail.restart(logfile, &mut pieces);
            }
            let backlog = size - tailed.tail.offset();
            if backlog > self.settings.max_backlog_bytes {
                let newest = size.saturating_sub(self.settings.max_bytes_per_poll);
                tailed.tail.skip_to(newest.max(tailed.tail.offset()));
            }
            plans.push(Plan {
                key: key.clone(),
                size,
                budget: self.settings.max_bytes_per_poll,
                next_length: None,
                done: false,
                pieces,
            });
        }
        if !problems.is_empty() {
            tracing::debug!(target_name = %self.target_name, problems = ?problems, "output logs not read");
        }
        let read = self.read_rounds(client, &mut plans, now, limits).await;
        for mut plan in plans {
            if let Some(tailed) = self.streams.get_mut(&plan.key) {
                tailed.tail.flush_stale(now, limits, &mut plan.pieces);
                tailed.tail.end_poll(&mut plan.pieces);
                push_records(
                    report,
                    &tailed.name,
                    &tailed.group,
                    Some(plan.key.stream),
                    plan.pieces,
                );
            }
        }
        // Logs not read this poll may still hold a line that waited long enough.
        for (key, tailed) in &mut self.streams {
            if !wanted.contains_key(key) {
                continue;
            }
            let mut pieces = Vec::new();
            tailed.tail.flush_stale(now, limits, &mut pieces);
            push_records(
                report,
                &tailed.name,
                &tailed.group,
                Some(key.stream),
                pieces,
            );
        }
        read
    }

    /// The logs to tail: each tailed stream of each monitored program the output filter
    /// keeps, that supervisord logs to a file; with the program's name, group and log file.
    fn wanted(
        &self,
        processes: &[MonitoredProcess],
    ) -> BTreeMap<StreamKey, (String, String, String)> {
        let mut wanted = BTreeMap::new();
        for process in processes {
            let info = &process.info;
            if !self.settings.filter.monitors(info) {
                continue;
            }
            for &stream in &self.settings.streams {
                let logfile = match stream {
                    OutputStream::Stdout => &info.stdout_logfile,
                    OutputStream::Stderr => &info.stderr_logfile,
                };
                if logfile.is_empty() {
                    continue;
                }
                wanted.insert(
                    StreamKey {
                        process: format!("{}:{}", info.group, info.name),
                        stream,
                    },
                    (info.name.clone(), info.group.clone(), logfile.clone()),
                );
            }
        }
        wanted
    }

    /// Reads the planned logs in rounds until each has read its budget, reached the size
    /// found, or cannot go on this poll.
    async fn read_rounds(
        &mut self,
        client: &SupervisorClient,
        plans: &mut [Plan],
        now: u64,
        limits: LineLimits,
    ) -> Result<(), PollError> {
        for _ in 0..MAX_READ_ROUNDS {
            let mut windows = Vec::new();
            for (index, plan) in plans.iter_mut().enumerate() {
                let Some(tailed) = self.streams.get(&plan.key) else {
                    continue;
                };
                let offset = tailed.tail.offset();
                if plan.done || offset >= plan.size || plan.budget == 0 {
                    continue;
                }
                let length = plan
                    .next_length
                    .take()
                    .unwrap_or_else(|| (plan.size - offset).min(plan.budget));
                windows.push((index, offset, length));
            }
            if windows.is_empty() {
                return Ok(());
            }
            let calls: Vec<LogCall<'_>> = windows
                .iter()
                .map(|&(index, offset, length)| LogCall::Read {
                    process: &plans[index].key.process,
                    stream: plans[index].key.stream,
                    offset,
                    length,
                })
                .collect();
            let answers = client.log_calls(&calls).await?;
            for ((index, offset, length), answer) in windows.into_iter().zip(answers) {
                let plan = &mut plans[index];
                let Some(tailed) = self.streams.get_mut(&plan.key) else {
                    continue;
                };
                let available = plan.size - offset;
                match answer {
                    LogAnswer::Text(text) if text.is_empty() => plan.done = true,
                    LogAnswer::Text(text) => {
                        let read = text.len() as u64;
                        tailed
                            .tail
                            .push(text.as_bytes(), now, limits, &mut plan.pieces);
                        plan.budget = plan.budget.saturating_sub(read);
                        // Fewer bytes than asked: the log shrank since its size was read.
                        plan.done |= read < length;
                    }
                    LogAnswer::Undecodable(fault) => match moved_window(fault, length, available) {
                        Move::Shorten(to) => plan.next_length = Some(to),
                        Move::Widen(to) => plan.next_length = Some(to),
                        Move::PassOver => {
                            tailed
                                .tail
                                .push(&[UNDECODABLE_BYTE], now, limits, &mut plan.pieces);
                            plan.budget = plan.budget.saturating_sub(1);
                        }
                        Move::Wait => plan.done = true,
                    },
                    LogAnswer::NoFile | LogAnswer::Fault(_) | LogAnswer::Invalid(_) => {
                        plan.done = true;
                    }
                    LogAnswer::Size(_) => plan.done = true,
                }
            }
        }
        Ok(())
    }

    async fn poll_main_log(
        &mut self,
        client: &SupervisorClient,
        now: u64,
        report: &mut OutputReport,
    ) -> Result<(), PollError> {
        let limits = self.limits();
        if self.main.is_none() {
            let resumed = self.resumed.as_ref().and_then(|saved| saved.main_log);
            let offset = match resumed {
                Some(offset) => offset,
                None => match main_log_size(client).await? {
                    Some(size) => size,
                    None => return Ok(()),
                },
            };
            self.main = Some(StreamTail::new("", offset));
        }
        let Some(tail) = self.main.as_mut() else {
            return Ok(());
        };
        let mut pieces = Vec::new();
        let mut budget = self.settings.max_bytes_per_poll;
        let mut next_length = None;
        for _ in 0..MAX_READ_ROUNDS {
            if budget == 0 {
                break;
            }
            let offset = tail.offset();
            let length = next_length.take().unwrap_or(budget);
            let mut calls = vec![LogCall::ReadMain { offset, length }];
            if offset > 0 {
                calls.push(LogCall::ReadMain {
                    offset: offset - 1,
                    length: 1,
                });
            }
            let answers = client.log_calls(&calls).await?;
            let mut answers = answers.into_iter();
            let (read, before) = (answers.next(), answers.next());
            match read {
                Some(LogAnswer::Text(text)) if !text.is_empty() => {
                    let read = text.len() as u64;
                    tail.push(text.as_bytes(), now, limits, &mut pieces);
                    budget = budget.saturating_sub(read);
                    if read < length {
                        break;
                    }
                }
                Some(LogAnswer::Text(_)) => {
                    // Nothing after the offset: caught up, unless the log got shorter.
                    if matches!(before, Some(LogAnswer::Text(ref byte)) if byte.is_empty()) {
                        tail.restart("", &mut pieces);
                        continue;
                    }
                    break;
                }
                // The size is unknown here: a window may always be widened; a failure to
                // decode even a widened one means the character is still being written.
                Some(LogAnswer::Undecodable(fault)) => {
                    match moved_window(fault, length, length + MAX_CHAR_BYTES) {
                        Move::Shorten(to) => next_length = Some(to),
                        Move::Widen(to) if length < MAX_CHAR_BYTES => next_length = Some(to),
                        Move::PassOver => {
                            tail.push(&[UNDECODABLE_BYTE], now, limits, &mut pieces);
                            budget = budget.saturating_sub(1);
                        }
                        Move::Widen(_) | Move::Wait => break,
                    }
                }
                _ => break,
            }
        }
        tail.flush_stale(now, limits, &mut pieces);
        tail.end_poll(&mut pieces);
        push_records(report, "", "", None, pieces);
        Ok(())
    }

    fn log_problems(&mut self, problems: Vec<String>) {
        let summary = (!problems.is_empty()).then(|| problems.join("; "));
        if summary != self.last_problem {
            if let Some(summary) = &summary {
                tracing::warn!(event = "output_tail_failed", target_name = %self.target_name, "{summary}");
            }
            self.last_problem = summary;
        }
    }
}

/// How a window supervisord could not decode moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// To this length: the bytes before the failure decode.
    Shorten(u64),
    /// To this length: the window ended inside its first character.
    Widen(u64),
    /// The first byte starts no character: stand a replacement in for it and go on.
    PassOver,
    /// The first character is not all written yet: read it next poll.
    Wait,
}

/// Where a window of `length` bytes (of `available` after its offset) goes after `fault`.
fn moved_window(fault: Undecodable, length: u64, available: u64) -> Move {
    match fault.position {
        Some(position) if position > 0 && position < length => Move::Shorten(position),
        Some(0) if fault.incomplete => {
            let wider = available.min(MAX_CHAR_BYTES.max(length + 1));
            if wider > length {
                Move::Widen(wider)
            } else {
                Move::Wait
            }
        }
        Some(0) => Move::PassOver,
        // No position (a call outside a multicall): halve until it decodes, and at one byte
        // the byte itself is the problem.
        _ if length > 1 => Move::Shorten(length / 2),
        _ => Move::PassOver,
    }
}

/// The offset a previous run saved for `key`, when it was saved for the same log file.
fn resumed_offset(resumed: Option<&Checkpoint>, key: &StreamKey, logfile: &str) -> Option<u64> {
    resumed?
        .streams
        .iter()
        .find(|saved| {
            saved.process == key.process
                && saved.stream == key.stream.name()
                && saved.logfile == logfile
        })
        .map(|saved| saved.offset)
}

/// supervisord's log size, found by reading single bytes (`readLog` says nothing of it): one
/// multicall of probes at every power of two, then rounds of 63 probes between the last that
/// found a byte and the first that did not. About five round trips for a 50 MB log, once per
/// target start. `None`: supervisord logs to no file.
async fn main_log_size(client: &SupervisorClient) -> Result<Option<u64>, PollError> {
    let exists = |answer: &LogAnswer| match answer {
        LogAnswer::Text(text) => !text.is_empty(),
        LogAnswer::Undecodable(_) => true,
        _ => false,
    };
    let probes: Vec<u64> = (0..48).map(|power| 1u64 << power).collect();
    let calls: Vec<LogCall<'_>> = probes
        .iter()
        .map(|&size| LogCall::ReadMain {
            offset: size - 1,
            length: 1,
        })
        .collect();
    let answers = client.log_calls(&calls).await?;
    if answers.iter().any(|a| matches!(a, LogAnswer::NoFile)) {
        return Ok(None);
    }
    // The size is at least `low` and less than `high`.
    let mut low = 0;
    let mut high = None;
    for (&size, answer) in probes.iter().zip(&answers) {
        if exists(answer) {
            low = size;
        } else {
            high = Some(size);
            break;
        }
    }
    let Some(mut high) = high else {
        return Ok(Some(low));
    };
    while high - low > 1 {
        let step = ((high - low) / 64).max(1);
        let probes: Vec<u64> = (1..64)
            .map(|i| low + i * step)
            .take_while(|&p| p < high)
            .collect();
        let calls: Vec<LogCall<'_>> = probes
            .iter()
            .map(|&size| LogCall::ReadMain {
                offset: size - 1,
                length: 1,
            })
            .collect();
        let answers = client.log_calls(&calls).await?;
        for (&size, answer) in probes.iter().zip(&answers) {
            if exists(answer) {
                low = size;
            } else {
                high = size;
                break;
            }
        }
    }
    Ok(Some(low))
}

fn push_records(
    report: &mut OutputReport,
    name: &str,
    group: &str,
    stream: Option<OutputStream>,
    pieces: Vec<Piece>,
) {
    report
        .records
        .extend(pieces.into_iter().map(|piece| OutputRecord {
            name: name.to_owned(),
            group: group.to_owned(),
            stream,
            piece,
        }));
}

fn describe(answer: &LogAnswer) -> String {
    match answer {
        LogAnswer::Fault(fault) => fault.to_string(),
        LogAnswer::Invalid(why) => why.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(position: Option<u64>, incomplete: bool) -> Undecodable {
        Undecodable {
            position,
            byte: None,
            incomplete,
        }
    }

    #[test]
    fn a_window_cut_inside_a_character_ends_before_it() {
        assert_eq!(
            moved_window(fault(Some(99), true), 100, 500),
            Move::Shorten(99)
        );
        assert_eq!(
            moved_window(fault(Some(5), false), 100, 500),
            Move::Shorten(5)
        );
    }

    #[test]
    fn a_window_shorter_than_its_first_character_widens_or_waits_for_it() {
        assert_eq!(moved_window(fault(Some(0), true), 1, 500), Move::Widen(4));
        assert_eq!(moved_window(fault(Some(0), true), 2, 3), Move::Widen(3));
        assert_eq!(
            moved_window(fault(Some(0), true), 2, 2),
            Move::Wait,
            "the character's last byte is not written yet"
        );
    }

    #[test]
    fn a_byte_that_starts_no_character_is_passed_over() {
        assert_eq!(
            moved_window(fault(Some(0), false), 100, 500),
            Move::PassOver
        );
        assert_eq!(
            moved_window(fault(None, false), 100, 500),
            Move::Shorten(50)
        );
        assert_eq!(moved_window(fault(None, false), 1, 500), Move::PassOver);
    }

    #[test]
    fn saved_offsets_count_only_for_the_same_file() {
        let key = StreamKey {
            process: "web:web_0".into(),
            stream: OutputStream::Stderr,
        };
        let saved = Checkpoint {
            streams: vec![SavedOffset {
                process: "web:web_0".into(),
                stream: "stderr".into(),
                logfile: "/var/log/web.err".into(),
                offset: 77,
            }],
            main_log: None,
        };
        assert_eq!(
            resumed_offset(Some(&saved), &key, "/var/log/web.err"),
            Some(77)
        );
        assert_eq!(
            resumed_offset(Some(&saved), &key, "/tmp/web-auto.log"),
            None
        );
        let stdout = StreamKey {
            stream: OutputStream::Stdout,
            ..key
        };
        assert_eq!(
            resumed_offset(Some(&saved), &stdout, "/var/log/web.err"),
            None
        );
    }
}
