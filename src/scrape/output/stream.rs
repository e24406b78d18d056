//! One log being tailed (a program's stdout or stderr, or supervisord's own log): where the
//! next read starts, and the line it is in the middle of. Bytes in, whole lines out; no I/O,
//! so every rule here is unit-tested.

use crate::scrape::output::text::{readable, without_split_char_at_end};

/// What a stream hands on: lines, and the news that some bytes were not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// One line, without its newline. `cut_bytes` > 0 when the line was longer than the limit
    /// and only its start is kept.
    Line { text: String, cut_bytes: u64 },
    /// Bytes passed over unread: the program wrote faster than they could be read (see
    /// `max_backlog_bytes`), counted up to the next whole line.
    Skipped { bytes: u64 },
}

/// The limits a stream applies to lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLimits {
    /// Bytes kept of one line; the rest is dropped and counted in `cut_bytes`.
    pub max_line_bytes: usize,
    /// A line still without its newline this long after its first byte arrived is sent as it
    /// is (a prompt, a progress bar, a program that died mid-line).
    pub partial_line_timeout_nanos: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTail {
    /// The log file supervisord reported for the stream: another path is another file (an
    /// `AUTO` log is a new file each time supervisord starts), read from its start.
    logfile: String,
    /// Where the next read starts.
    offset: u64,
    /// The bytes of the line being assembled, at most `max_line_bytes`.
    line: Vec<u8>,
    /// Bytes of that line dropped beyond the limit.
    line_cut: u64,
    /// Where that line starts in the log: what a restart resumes from, so a line is never half
    /// sent.
    line_start: u64,
    /// When that line's first byte arrived (receiver clock, Unix nanoseconds).
    line_since: u64,
    /// After a skip: bytes are dropped up to the next newline, so the next record starts a
    /// line rather than the middle of one.
    resync: bool,
    /// Bytes skipped and not yet reported.
    skipped: u64,
}

impl StreamTail {
    /// A stream whose next read starts at `offset` of `logfile`.
    pub fn new(logfile: impl Into<String>, offset: u64) -> StreamTail {
        StreamTail {
            logfile: logfile.into(),
            offset,
            line: Vec::new(),
            line_cut: 0,
            line_start: offset,
            line_since: 0,
            resync: false,
            skipped: 0,
        }
    }

    pub fn logfile(&self) -> &str {
        &self.logfile
    }

    /// Where the next read starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where a restart would resume without losing or repeating a line: the start of the line
    /// being assembled, else the next read.
    pub fn committed(&self) -> u64 {
        if self.has_partial_line() {
            self.line_start
        } else {
            self.offset
        }
    }

    fn has_partial_line(&self) -> bool {
        !self.line.is_empty() || self.line_cut > 0
    }

    /// Takes the bytes read at [`offset`](Self::offset), which moves past them; every line
    /// they complete goes to `out`.
    pub fn push(&mut self, bytes: &[u8], now: u64, limits: LineLimits, out: &mut Vec<Piece>) {
        let chunk_start = self.offset;
        self.offset += bytes.len() as u64;
        let mut pos = 0;
        if self.resync {
            match memchr(&bytes[pos..]) {
                Some(newline) => {
                    pos = newline + 1;
                    self.skipped += pos as u64;
                    self.resync = false;
                    self.line_start = chunk_start + pos as u64;
                }
                None => {
                    self.skipped += bytes.len() as u64;
                    self.line_start = self.offset;
                    return;
                }
            }
        }
        self.report_skipped(out);
        while let Some(newline) = memchr(&bytes[pos..]) {
            self.append(&bytes[pos..pos + newline], now, limits);
            self.emit_line(out);
            pos += newline + 1;
            self.line_start = chunk_start + pos as u64;
        }
        if pos < bytes.len() {
            self.append(&bytes[pos..], now, limits);
        }
    }

    fn append(&mut self, bytes: &[u8], now: u64, limits: LineLimits) {
        if !self.has_partial_line() {
            self.line_since = now;
        }
        let room = limits.max_line_bytes.saturating_sub(self.line.len());
        let kept = bytes.len().min(room);
        self.line.extend_from_slice(&bytes[..kept]);
        self.line_cut += (bytes.len() - kept) as u64;
    }

    fn emit_line(&mut self, out: &mut Vec<Piece>) {
        let mut cut_bytes = self.line_cut;
        let kept = if cut_bytes > 0 {
            let kept = without_split_char_at_end(&self.line);
            cut_bytes += (self.line.len() - kept.len()) as u64;
            kept
        } else {
            &self.line
        };
        out.push(Piece::Line {
            text: readable(kept),
            cut_bytes,
        });
        self.line.clear();
        self.line_cut = 0;
    }

    /// Sends the line being assembled as it is when it waited too long for its newline.
    pub fn flush_stale(&mut self, now: u64, limits: LineLimits, out: &mut Vec<Piece>) {
        if self.has_partial_line()
            && now.saturating_sub(self.line_since) >= limits.partial_line_timeout_nanos
        {
            self.emit_line(out);
            self.line_start = self.offset;
        }
    }

    /// Passes over everything up to `offset` (the program wrote faster than it is read), the
    /// line being assembled included, and then up to the next newline.
    pub fn skip_to(&mut self, offset: u64) {
        let partial = if self.has_partial_line() {
            self.offset - self.line_start
        } else {
            0
        };
        self.skipped += offset.saturating_sub(self.offset) + partial;
        self.line.clear();
        self.line_cut = 0;
        self.offset = offset;
        self.line_start = offset;
        self.resync = true;
    }

    /// The log is another file now (rotated, truncated, or a new path): the line being
    /// assembled is sent as it is, and reading starts again at the file's beginning.
    pub fn restart(&mut self, logfile: &str, out: &mut Vec<Piece>) {
        if self.has_partial_line() {
            self.emit_line(out);
        }
        self.report_skipped(out);
        self.logfile = logfile.to_owned();
        self.offset = 0;
        self.line_start = 0;
        self.resync = false;
    }

    /// At the end of a poll: a skip still waiting for its newline is reported now.
    pub fn end_poll(&mut self, out: &mut Vec<Piece>) {
        self.report_skipped(out);
    }

    /// Everything still held, sent as it is: the stream is no longer tailed.
    pub fn finish(mut self, out: &mut Vec<Piece>) {
        if self.has_partial_line() {
            self.emit_line(out);
        }
        self.report_skipped(out);
    }

    fn report_skipped(&mut self, out: &mut Vec<Piece>) {
        if self.skipped > 0 {
            out.push(Piece::Skipped {
                bytes: self.skipped,
            });
            self.skipped = 0;
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LineLimits = LineLimits {
        max_line_bytes: 10,
        partial_line_timeout_nanos: 100,
    };

    fn line(text: &str) -> Piece {
        Piece::Line {
            text: text.into(),
            cut_bytes: 0,
        }
    }

    #[test]
    fn lines_split_between_reads_are_joined_and_the_offset_holds_at_their_start() {
        let mut tail = StreamTail::new("/log", 100);
        let mut out = Vec::new();
        tail.push(b"one\ntw", 1, LIMITS, &mut out);
        assert_eq!(out, [line("one")]);
        assert_eq!(tail.offset(), 106);
        assert_eq!(
            tail.committed(),
            104,
            "the half line is read again after a restart"
        );
        out.clear();
        tail.push(b"o\nthree\n", 2, LIMITS, &mut out);
        assert_eq!(out, [line("two"), line("three")]);
        assert_eq!(tail.committed(), 114);
    }

    #[test]
    fn a_long_line_is_cut_at_the_limit_on_a_character_boundary_and_counted() {
        let mut tail = StreamTail::new("/log", 0);
        let mut out = Vec::new();
        // 8 ASCII bytes, then a 3-byte character across the 10-byte limit.
        tail.push("12345678日".as_bytes(), 1, LIMITS, &mut out);
        tail.push(b"rest\nnext\n", 1, LIMITS, &mut out);
        assert_eq!(
            out,
            [
                Piece::Line {
                    text: "12345678".into(),
                    cut_bytes: 3 + 4
                },
                line("next")
            ]
        );
    }

    #[test]
    fn a_line_without_its_newline_goes_after_the_timeout_from_its_first_byte() {
        let mut tail = StreamTail::new("/log", 0);
        let mut out = Vec::new();
        tail.push(b"prompt> ", 1000, LIMITS, &mut out);
        tail.flush_stale(1050, LIMITS, &mut out);
        assert!(out.is_empty());
        tail.push(b"y", 1080, LIMITS, &mut out);
        tail.flush_stale(1100, LIMITS, &mut out);
        assert_eq!(out, [line("prompt> y")]);
        assert_eq!(tail.committed(), 9);
        out.clear();
        tail.push(b"\nlast\n", 1200, LIMITS, &mut out);
        assert_eq!(out, [line(""), line("last")]);
    }

    #[test]
    fn a_skip_counts_the_half_line_and_resumes_at_the_next_whole_line() {
        let mut tail = StreamTail::new("/log", 0);
        let mut out = Vec::new();
        tail.push(b"first\nhalf", 1, LIMITS, &mut out);
        out.clear();
        tail.skip_to(1000);
        tail.push(b"tail of a line\nwhole\n", 2, LIMITS, &mut out);
        assert_eq!(
            out,
            [
                Piece::Skipped {
                    bytes: 4 + (1000 - 10) + 15
                },
                line("whole")
            ]
        );
        assert_eq!(tail.committed(), 1021);
    }

    #[test]
    fn a_skip_still_waiting_for_a_newline_is_reported_at_the_end_of_the_poll() {
        let mut tail = StreamTail::new("/log", 0);
        let mut out = Vec::new();
        tail.skip_to(50);
        tail.push(b"no newline yet", 1, LIMITS, &mut out);
        assert!(out.is_empty());
        tail.end_poll(&mut out);
        assert_eq!(out, [Piece::Skipped { bytes: 64 }]);
    }

    #[test]
    fn a_restart_sends_the_half_line_and_reads_the_new_file_from_its_start() {
        let mut tail = StreamTail::new("/log", 0);
        let mut out = Vec::new();
        tail.push(b"a\nunfinished", 1, LIMITS, &mut out);
        tail.restart("/log.new", &mut out);
        assert_eq!(out, [line("a"), line("unfinished")]);
        assert_eq!(
            (tail.offset(), tail.committed(), tail.logfile()),
            (0, 0, "/log.new")
        );
    }

    #[test]
    fn a_replacement_byte_and_carriage_returns_read_as_text() {
        let mut tail = StreamTail::new("/log", 0);
        let mut out = Vec::new();
        tail.push(b"bad \xff byte\r\n", 1, LIMITS, &mut out);
        assert_eq!(
            out,
            [Piece::Line {
                text: "bad \u{fffd} byte".into(),
                cut_bytes: 1
            }]
        );
    }
}
