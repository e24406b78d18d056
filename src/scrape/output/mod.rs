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
use crate::settings::{OutputSettings, OutputStream, Target};
use crate::supervisor::client::{PollError, SupervisorClient};
use crate::supervisor::logtail::{LogAnswer, LogCall};
use crate::supervisor::transport::TransportError;
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
    /// The target's endpoint as shown (`unix:///run/supervisor.sock`): offsets saved for
    /// another are not used.
    pub endpoint: String,
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
    endpoint: String,
    settings: OutputSettings,
    streams: BTreeMap<StreamKey, Tailed>,
    main: Option<StreamTail>,
    /// Whether logs found now start at their end: until the first poll that read the logs'
    /// sizes (a new target), and again after new settings (a reload that adds programs does
    /// not send their past). Otherwise a log found is a program added since: read from its
    /// start.
    new_logs_at_end: bool,
    /// Offsets a previous run saved, for the first poll that reads the logs' sizes.
    resumed: Option<Checkpoint>,
    /// The same for supervisord's own log, until it is first read.
    resumed_main: Option<u64>,
    /// The last problem logged, so a problem that stays is logged once.
    last_problem: Option<String>,
    /// Records read but not yet handed on: a poll cut by its timeout leaves them here for the
    /// next, so what a log's offset moved past is never lost.
    undelivered: Vec<OutputRecord>,
    /// The same for supervisord's own log.
    main_pieces: Vec<Piece>,
}

#[derive(Debug)]
struct Tailed {
    name: String,
    group: String,
    tail: StreamTail,
    /// What this log's reads produced and no report took yet.
    pieces: Vec<Piece>,
}

/// One log's reading in this poll.
struct Plan {
    key: StreamKey,
    size: u64,
    budget: u64,
    /// What to read next when a fault changed it.
    next_ask: Option<Ask>,
    done: bool,
}

impl OutputTailer {
    /// A tailer for a target; `resumed` holds the offsets a previous run saved for it.
    pub fn new(target: &Target, settings: OutputSettings, resumed: Option<Checkpoint>) -> Self {
        OutputTailer {
            target_name: target.name.clone(),
            endpoint: target.endpoint.display(),
            settings,
            streams: BTreeMap::new(),
            main: None,
            new_logs_at_end: true,
            resumed_main: resumed.as_ref().and_then(|saved| saved.main_log),
            resumed,
            last_problem: None,
            undelivered: Vec::new(),
            main_pieces: Vec::new(),
        }
    }

    /// New settings after a reload; the offsets stay.
    pub fn reconfigure(&mut self, settings: OutputSettings) {
        self.settings = settings;
        self.new_logs_at_end = true;
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
    ///
    /// Safe to cancel (the poll's timeout): the offsets move only together with the records
    /// kept in the tailer, which the next poll's report carries.
    pub async fn poll(
        &mut self,
        client: &SupervisorClient,
        processes: &[MonitoredProcess],
        now: u64,
    ) -> OutputReport {
        let mut problems = match self.poll_streams(client, processes, now).await {
            Ok(problems) => problems,
            Err(error) => vec![format!("reading program output failed: {error}")],
        };
        if self.settings.main_log {
            if let Err(error) = self.poll_main_log(client, now).await {
                problems.push(format!("reading supervisord's log failed: {error}"));
            }
        } else {
            self.main = None;
        }
        self.log_problems(problems);
        let limits = self.limits();
        let mut report = OutputReport {
            records: std::mem::take(&mut self.undelivered),
            checkpoint: Checkpoint::default(),
        };
        for (key, tailed) in &mut self.streams {
            // A line that waited long enough goes, whether or not its log was read this poll.
            tailed.tail.flush_stale(now, limits, &mut tailed.pieces);
            tailed.tail.end_poll(&mut tailed.pieces);
            let pieces = std::mem::take(&mut tailed.pieces);
            push_records(
                &mut report.records,
                &tailed.name,
                &tailed.group,
                Some(key.stream),
                pieces,
            );
        }
        if let Some(tail) = &mut self.main {
            tail.flush_stale(now, limits, &mut self.main_pieces);
            tail.end_poll(&mut self.main_pieces);
        }
        let pieces = std::mem::take(&mut self.main_pieces);
        push_records(&mut report.records, "", "", None, pieces);
        report.checkpoint = self.checkpoint();
        report
    }

    /// Where every log resumes.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            endpoint: self.endpoint.clone(),
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
    ) -> Result<Vec<String>, PollError> {
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
            if let Some(mut tailed) = self.streams.remove(&key) {
                tailed.tail.finish(&mut tailed.pieces);
                push_records(
                    &mut self.undelivered,
                    &tailed.name,
                    &tailed.group,
                    Some(key.stream),
                    tailed.pieces,
                );
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let calls: Vec<LogCall<'_>> = wanted
            .keys()
            .map(|key| LogCall::Size {
                process: &key.process,
                stream: key.stream,
            })
            .collect();
        let answers = sizes(client, &calls).await?;
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
            let tailed = self.streams.entry(key.clone()).or_insert_with(|| {
                let offset = if self.new_logs_at_end {
                    resumed_offset(self.resumed.as_ref(), key, logfile).unwrap_or(size)
                } else {
                    0
                };
                Tailed {
                    name: name.clone(),
                    group: group.clone(),
                    tail: StreamTail::new(logfile.clone(), offset),
                    pieces: Vec::new(),
                }
            });
            if tailed.tail.logfile() != logfile || size < tailed.tail.offset() {
                tailed.tail.restart(logfile, &mut tailed.pieces);
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
                next_ask: None,
                done: false,
            });
        }
        self.new_logs_at_end = false;
        self.resumed = None;
        self.read_rounds(client, &mut plans, now, limits).await?;
        Ok(problems)
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
            // (plan, offset, the ask, where its windows start in `calls`)
            let mut asks = Vec::new();
            let mut calls = Vec::new();
            for (index, plan) in plans.iter_mut().enumerate() {
                let Some(tailed) = self.streams.get(&plan.key) else {
                    continue;
                };
                let offset = tailed.tail.offset();
                if plan.done || offset >= plan.size || plan.budget == 0 {
                    continue;
                }
                let ask = plan
                    .next_ask
                    .take()
                    .unwrap_or_else(|| Ask::Window((plan.size - offset).min(plan.budget)));
                asks.push((index, offset, ask, calls.len()));
                for length in ask_lengths(&asks.last().expect("just pushed").2) {
                    calls.push(LogCall::Read {
                        process: &plan.key.process,
                        stream: plan.key.stream,
                        offset,
                        length,
                    });
                }
            }
            if asks.is_empty() {
                return Ok(());
            }
            let mut answers = client.log_calls(&calls).await?.into_iter();
            for (index, offset, ask, _) in asks {
                let answers: Vec<LogAnswer> =
                    answers.by_ref().take(ask_lengths(&ask).len()).collect();
                let plan = &mut plans[index];
                let Some(tailed) = self.streams.get_mut(&plan.key) else {
                    continue;
                };
                match next_step(&ask, answers, plan.size - offset) {
                    Step::Read { text, asked } => {
                        let read = text.len() as u64;
                        tailed
                            .tail
                            .push(text.as_bytes(), now, limits, &mut tailed.pieces);
                        plan.budget = plan.budget.saturating_sub(read);
                        // Fewer bytes than asked: the log shrank since its size was read.
                        plan.done |= read < asked;
                    }
                    Step::Retry(ask) => plan.next_ask = Some(ask),
                    Step::PassOver => {
                        tailed
                            .tail
                            .push(&[UNDECODABLE_BYTE], now, limits, &mut tailed.pieces);
                        plan.budget = plan.budget.saturating_sub(1);
                    }
                    Step::Wait | Step::Stop => plan.done = true,
                }
            }
        }
        Ok(())
    }

    async fn poll_main_log(
        &mut self,
        client: &SupervisorClient,
        now: u64,
    ) -> Result<(), PollError> {
        let limits = self.limits();
        if self.main.is_none() {
            let offset = match self.resumed_main {
                Some(offset) => offset,
                None => match main_log_size(client).await? {
                    Some(size) => size,
                    None => return Ok(()),
                },
            };
            self.main = Some(StreamTail::new("", offset));
            self.resumed_main = None;
        }
        let Some(tail) = self.main.as_mut() else {
            return Ok(());
        };
        let pieces = &mut self.main_pieces;
        let mut budget = self.settings.max_bytes_per_poll;
        let mut next_ask = None;
        for _ in 0..MAX_READ_ROUNDS {
            if budget == 0 {
                break;
            }
            let offset = tail.offset();
            let ask = next_ask.take().unwrap_or(Ask::Window(budget));
            let lengths = ask_lengths(&ask);
            let mut calls: Vec<LogCall<'_>> = lengths
                .iter()
                .map(|&length| LogCall::ReadMain { offset, length })
                .collect();
            // One byte before the offset tells an empty read of a log that got shorter.
            if offset > 0 {
                calls.push(LogCall::ReadMain {
                    offset: offset - 1,
                    length: 1,
                });
            }
            let mut answers = client.log_calls(&calls).await?;
            let before = (offset > 0).then(|| answers.pop()).flatten();
            let caught_up =
                matches!(answers.first(), Some(LogAnswer::Text(text)) if text.is_empty());
            if caught_up && matches!(ask, Ask::Window(_)) {
                if matches!(before, Some(LogAnswer::Text(ref byte)) if byte.is_empty()) {
                    tail.restart("", pieces);
                    continue;
                }
                break;
            }
            // The size is unknown: a character still being written at the end of the log
            // cannot be told from a byte that starts none; supervisord writes its log in
            // whole lines, so the byte is passed over.
            match next_step(&ask, answers, u64::MAX) {
                Step::Read { text, asked } => {
                    let read = text.len() as u64;
                    tail.push(text.as_bytes(), now, limits, pieces);
                    budget = budget.saturating_sub(read);
                    if read < asked {
                        break;
                    }
                }
                Step::Retry(ask) => next_ask = Some(ask),
                Step::PassOver => {
                    tail.push(&[UNDECODABLE_BYTE], now, limits, pieces);
                    budget = budget.saturating_sub(1);
                }
                Step::Wait | Step::Stop => break,
            }
        }
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

/// What to read from a log at its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ask {
    /// One window of this many bytes.
    Window(u64),
    /// Windows of these lengths (longest first), of which the longest that decodes is kept:
    /// after supervisord failed to decode a window without saying where.
    Candidates(Vec<u64>),
}

/// What an ask's answers lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Text read from the offset; `asked` is the window's length.
    Read { text: String, asked: u64 },
    /// Ask again, differently, in the next round.
    Retry(Ask),
    /// The byte at the offset starts no character: a replacement stands in for it.
    PassOver,
    /// The character at the offset is not all written yet: read it next poll.
    Wait,
    /// Nothing more to read this poll (caught up, or the log is gone).
    Stop,
}

fn ask_lengths(ask: &Ask) -> Vec<u64> {
    match ask {
        Ask::Window(length) => vec![*length],
        Ask::Candidates(lengths) => lengths.clone(),
    }
}

/// The windows to try after a window of `length` bytes (of `available` after the offset)
/// could not be decoded: shorter by one to three bytes (it ended inside a character), halves
/// down to one byte (a byte that is not UTF-8 lies inside), and one to four bytes (the first
/// character alone, widened past the budget if need be). One round trip finds the longest
/// that decodes.
fn candidates(length: u64, available: u64) -> Vec<u64> {
    let mut lengths: Vec<u64> = (1..=3).filter_map(|cut| length.checked_sub(cut)).collect();
    lengths.extend(std::iter::successors(Some(length / 2), |l| Some(l / 2)).take_while(|&l| l > 0));
    lengths.extend((1..=MAX_CHAR_BYTES).filter(|&l| l <= available));
    lengths.retain(|&l| l > 0 && l != length);
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    lengths.dedup();
    lengths
}

/// Where an ask's answers lead. `available` is how many bytes the log holds after the offset.
fn next_step(ask: &Ask, answers: Vec<LogAnswer>, available: u64) -> Step {
    match ask {
        Ask::Window(length) => match answers.into_iter().next() {
            Some(LogAnswer::Text(text)) if !text.is_empty() => Step::Read {
                text,
                asked: *length,
            },
            Some(LogAnswer::Undecodable(fault)) => match fault.position {
                // A server that says where (a later supervisord) saves the search.
                Some(position) if position > 0 && position < *length => {
                    Step::Retry(Ask::Window(position))
                }
                _ => Step::Retry(Ask::Candidates(candidates(*length, available))),
            },
            _ => Step::Stop,
        },
        Ask::Candidates(lengths) => {
            let mut longest: Option<(String, u64)> = None;
            let mut undecodable = false;
            for (answer, &length) in answers.into_iter().zip(lengths) {
                match answer {
                    LogAnswer::Text(text)
                        if !text.is_empty()
                            && longest
                                .as_ref()
                                .is_none_or(|(best, _)| text.len() > best.len()) =>
                    {
                        longest = Some((text, length));
                    }
                    LogAnswer::Undecodable(_) => undecodable = true,
                    _ => {}
                }
            }
            match longest {
                Some((text, asked)) => Step::Read { text, asked },
                // Four bytes from a character's start always hold all of it: when none of
                // one to four decodes, the first byte starts none.
                None if undecodable && available >= MAX_CHAR_BYTES => Step::PassOver,
                None if undecodable => Step::Wait,
                None => Step::Stop,
            }
        }
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
    let powers: Vec<u64> = (0..48).map(|power| 1u64 << power).collect();
    let answers = probe(client, &powers).await?;
    if answers.iter().any(|a| matches!(a, LogAnswer::NoFile)) {
        return Ok(None);
    }
    // The size is at least `low` and less than `high`.
    let mut low = 0;
    let Some(mut high) = narrow(&powers, &answers, &mut low) else {
        return Ok(Some(low));
    };
    while high - low > 1 {
        let step = ((high - low) / 64).max(1);
        let sizes: Vec<u64> = (1..64)
            .map(|i| low + i * step)
            .take_while(|&p| p < high)
            .collect();
        let answers = probe(client, &sizes).await?;
        if let Some(smaller) = narrow(&sizes, &answers, &mut low) {
            high = smaller;
        }
    }
    Ok(Some(low))
}

/// Reads the last byte of a log of each of `sizes` bytes (one multicall): whether the log is at
/// least that long.
async fn probe(client: &SupervisorClient, sizes: &[u64]) -> Result<Vec<LogAnswer>, PollError> {
    let calls: Vec<LogCall<'_>> = sizes
        .iter()
        .map(|&size| LogCall::ReadMain {
            offset: size - 1,
            length: 1,
        })
        .collect();
    client.log_calls(&calls).await
}

/// Moves `low` up to the largest of the ascending `sizes` the log reaches (a byte, or one
/// supervisord could not decode, was there), and returns the first it does not reach.
fn narrow(sizes: &[u64], answers: &[LogAnswer], low: &mut u64) -> Option<u64> {
    for (&size, answer) in sizes.iter().zip(answers) {
        let reached = match answer {
            LogAnswer::Text(text) => !text.is_empty(),
            LogAnswer::Undecodable(_) => true,
            _ => false,
        };
        if !reached {
            return Some(size);
        }
        *low = size;
    }
    None
}

fn push_records(
    records: &mut Vec<OutputRecord>,
    name: &str,
    group: &str,
    stream: Option<OutputStream>,
    pieces: Vec<Piece>,
) {
    records.extend(pieces.into_iter().map(|piece| OutputRecord {
        name: name.to_owned(),
        group: group.to_owned(),
        stream,
        piece,
    }));
}

/// The sizes of the logs of `calls`, in one multicall; when supervisord cannot answer it as a
/// whole, one call per log, so one log it cannot report on does not stop the others.
///
/// supervisord 4.3.0 sends a log's size as an XML-RPC int, which its marshaller refuses past
/// 2 GiB: the whole multicall then fails with HTTP 500. A log that large (`*_logfile_maxbytes=0`
/// and a chatty program) cannot be tailed; its call fails alone, named in the warning, and the
/// target's other logs go on.
async fn sizes(
    client: &SupervisorClient,
    calls: &[LogCall<'_>],
) -> Result<Vec<LogAnswer>, PollError> {
    match client.log_calls(calls).await {
        Err(PollError::Transport(TransportError::HttpStatus { code: 500, .. }))
            if calls.len() > 1 =>
        {
            let mut answers = Vec::with_capacity(calls.len());
            for call in calls {
                answers.push(match client.log_calls(std::slice::from_ref(call)).await {
                    Ok(mut answer) => answer
                        .pop()
                        .unwrap_or(LogAnswer::Invalid("no answer".into())),
                    Err(PollError::Transport(TransportError::HttpStatus { code: 500, .. })) => {
                        LogAnswer::Invalid(
                            "supervisord could not report this log's size (HTTP 500: past 2 \
                             GiB, its XML-RPC int overflows; rotate the log)"
                                .into(),
                        )
                    }
                    Err(error) => return Err(error),
                });
            }
            Ok(answers)
        }
        other => other,
    }
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
    use crate::supervisor::logtail::Undecodable;

    fn fault(position: Option<u64>, incomplete: bool) -> Undecodable {
        Undecodable {
            position,
            byte: None,
            incomplete,
        }
    }

    fn text(t: &str) -> LogAnswer {
        LogAnswer::Text(t.into())
    }

    fn failed() -> LogAnswer {
        LogAnswer::Undecodable(fault(None, false))
    }

    #[test]
    fn a_window_that_does_not_decode_is_searched_in_one_round_trip() {
        assert_eq!(
            candidates(100, 500),
            [99, 98, 97, 50, 25, 12, 6, 4, 3, 2, 1]
        );
        // A short window widens up to one whole character, never past the log's end.
        assert_eq!(candidates(2, 500), [4, 3, 1]);
        assert_eq!(candidates(2, 2), [1]);
        assert_eq!(
            next_step(&Ask::Window(100), vec![failed()], 500),
            Step::Retry(Ask::Candidates(candidates(100, 500)))
        );
    }

    #[test]
    fn a_server_that_names_the_position_saves_the_search() {
        assert_eq!(
            next_step(
                &Ask::Window(100),
                vec![LogAnswer::Undecodable(fault(Some(99), true))],
                500
            ),
            Step::Retry(Ask::Window(99))
        );
    }

    #[test]
    fn the_longest_window_that_decodes_is_read() {
        // 99 and 98 fail (a character cut), 97 decodes.
        let answers = vec![failed(), failed(), text("abc"), text("ab"), text("a")];
        assert_eq!(
            next_step(&Ask::Candidates(vec![99, 98, 97, 50, 1]), answers, 500),
            Step::Read {
                text: "abc".into(),
                asked: 97
            }
        );
    }

    #[test]
    fn when_not_even_one_character_decodes_the_byte_is_passed_over_or_awaited() {
        let lengths = vec![4, 3, 2, 1];
        let none = || vec![failed(), failed(), failed(), failed()];
        assert_eq!(
            next_step(&Ask::Candidates(lengths.clone()), none(), 500),
            Step::PassOver
        );
        assert_eq!(
            next_step(&Ask::Candidates(lengths), none(), 3),
            Step::Wait,
            "three bytes at the end of the log: the character is still being written"
        );
        assert_eq!(next_step(&Ask::Window(10), vec![text("")], 10), Step::Stop);
    }

    #[test]
    fn the_log_size_lies_between_the_last_probe_reached_and_the_first_not() {
        let mut low = 0;
        let answers = [text("x"), failed(), text(""), text("x")];
        assert_eq!(narrow(&[1, 2, 4, 8], &answers, &mut low), Some(4));
        assert_eq!(
            low, 2,
            "a byte supervisord could not decode is a byte all the same"
        );
        let mut low = 5;
        assert_eq!(narrow(&[6, 7], &[text("a"), text("b")], &mut low), None);
        assert_eq!(low, 7);
    }

    #[test]
    fn saved_offsets_count_only_for_the_same_file() {
        let key = StreamKey {
            process: "web:web_0".into(),
            stream: OutputStream::Stderr,
        };
        let saved = Checkpoint {
            endpoint: "unix:///s.sock".into(),
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
