//! The fuzz targets' bodies, shared by cargo-fuzz (`fuzz_targets/`), the stable runner
//! (`src/bin/fuzz_stable.rs`) and the test suite (`tests/unit/` includes this file), so the
//! three exercise the same code with the same checks.
//!
//! A check returns or panics: a panic anywhere, in the code under test or in an assertion
//! here, is a finding.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use supervisord_receiver::config;
use supervisord_receiver::metrics::build_request;
use supervisord_receiver::scrape;
use supervisord_receiver::scrape::outcome::{PollOutcome, TargetIdentity};
use supervisord_receiver::settings::{Settings, Target};
use supervisord_receiver::supervisor::client;
use supervisord_receiver::supervisor::decode;
use supervisord_receiver::supervisor::read_reply_from;
use supervisord_receiver::supervisor::transport::TransportError;
use supervisord_receiver::supervisor::xmlrpc::{self, Value};
use tokio::io::{AsyncRead, ReadBuf};

/// Each target's inputs, as paths from the repository root: the target's own corpus directory
/// (inputs that exist only for fuzzing; cargo-fuzz adds what it finds there), then the test
/// suite's fixtures it is seeded with, read where they live so each is kept in one copy. The
/// test suite replays all of them (`tests/unit/fuzz_regressions.rs`), `fuzz-stable` mutates
/// them, and fuzz/README.md names them on the cargo-fuzz command lines.
pub const CORPUS: [(&str, &[&str]); 3] = [
    (
        "xmlrpc_decode",
        &["fuzz/corpus/xmlrpc_decode", "tests/fixtures/xmlrpc"],
    ),
    (
        "config_load",
        &[
            "fuzz/corpus/config_load",
            "examples/native.yaml",
            "examples/datadog.yaml",
        ],
    ),
    // No fixture is a whole reply stream (head and body): the corpus directory holds them all.
    ("http1_reply", &["fuzz/corpus/http1_reply"]),
];

/// [`CORPUS`]'s paths for `target` (none for an unknown target).
pub fn corpus_paths(target: &str) -> &'static [&'static str] {
    CORPUS
        .iter()
        .find(|(name, _)| *name == target)
        .map_or(&[], |(_, paths)| paths)
}

/// The longest message a reply may put in one log line: the fixed text plus a quote of the
/// server's text, which the decoder cuts at 200 characters.
pub const MAX_MESSAGE_CHARS: usize = 600;

/// An XML-RPC reply body, as the transport hands it over: the decoder alone, then the poll
/// client's whole path (multicall split, model, problems), the filters and the OTLP builder;
/// and the fast path against the general decoder.
pub fn xmlrpc_decode(data: &[u8]) {
    fast_path_agrees(data);
    match xmlrpc::decode_response(data) {
        Ok(Ok(value)) => {
            round_trip(&value);
            // A plain `getAllProcessInfo` reply, as from a server without multicall.
            if let Ok((_, problems)) = decode::processes(&value) {
                check_lines(&problems);
            }
            let _ = decode::supervisor_state(&value);
        }
        Ok(Err(fault)) => check_line(&fault.to_string()),
        Err(error) => check_line(&error.to_string()),
    }
    for settings in poll_settings() {
        let target = first_target(settings);
        match client::decode_multicall_reply(data) {
            Ok(Ok(polled)) => {
                check_lines(&polled.problems);
                let outcome = PollOutcome {
                    target: Arc::new(TargetIdentity::of(target)),
                    time_unix_nano: 1,
                    result: Ok(scrape::monitored(target, polled.snapshot)),
                };
                let _ = build_request(&[outcome], &settings.metrics);
            }
            Ok(Err(fault)) => check_line(&fault.to_string()),
            Err(error) => check_line(&error.message(target)),
        }
    }
}

/// Where the poll client's fast path accepts a reply, it gives exactly what the general
/// decoder gives for the same bytes: the same processes, problems and answers.
pub fn fast_path_agrees(data: &[u8]) {
    if let Some(fast) = client::fast_multicall_reply(data) {
        match client::general_multicall_reply(data) {
            Ok(Ok(general)) => assert_eq!(fast, general, "the two paths differ on a multicall"),
            other => {
                panic!("the fast path accepted a multicall the general decoder gives as {other:?}")
            }
        }
    }
    if let Some(fast) = client::fast_processes_reply(data) {
        match client::general_processes_reply(data) {
            Ok(Ok(general)) => assert_eq!(fast, general, "the two paths differ on getAllProcessInfo"),
            other => panic!(
                "the fast path accepted a getAllProcessInfo reply the general decoder gives as {other:?}"
            ),
        }
    }
}

/// A configuration file's bytes: `load_bytes` returns `Ok` or `Err`, and what it accepts keeps
/// the invariants the poller relies on.
///
/// `${file:...}` substitutions are turned into an unsupported `${File:...}` first: they read
/// the real filesystem, where a generated path could name a terminal or a FIFO and block. The
/// config tests cover them.
pub fn config_load(data: &[u8]) {
    let mut data = data.to_vec();
    for at in 0..data.len() {
        if data.get(at..at + 6) == Some(b"{file:".as_slice()) {
            if let Some(f) = data.get_mut(at + 1) {
                *f = b'F';
            }
        }
    }
    let data = data.as_slice();
    let env = |name: &str| match name {
        "SET" => Some("value".to_owned()),
        "EMPTY" => Some(String::new()),
        "PORT" => Some("9001".to_owned()),
        _ => None,
    };
    if let Ok(settings) = config::load_bytes(Path::new("fuzz.yaml"), data, &env) {
        for target in &settings.targets {
            // One poll in flight per target: the timeout never exceeds the interval.
            assert!(
                !target.timeout.is_zero() && target.timeout <= target.collection_interval,
                "target {:?}: timeout {:?}, interval {:?}",
                target.name,
                target.timeout,
                target.collection_interval
            );
        }
    }
}

/// What decodes must encode and decode back: to itself when every character is one XML can
/// carry (the encoder replaces the others with U+FFFD).
fn round_trip(value: &Value) {
    let encoded = xmlrpc::encode_response(value);
    match xmlrpc::decode_response(&encoded) {
        Ok(Ok(again)) => {
            if representable(value) {
                assert_eq!(&again, value, "decode(encode(v)) != v");
            }
        }
        other => panic!("a decoded value, encoded again, does not decode: {other:?}"),
    }
}

/// Every text of `value` survives encoding unchanged.
pub fn representable(value: &Value) -> bool {
    match value {
        Value::String(s) | Value::DateTime(s) => s.chars().all(representable_char),
        Value::Struct(members) => members
            .iter()
            .all(|(name, v)| name.chars().all(representable_char) && representable(v)),
        Value::Array(items) => items.iter().all(representable),
        Value::Int(_) | Value::Bool(_) | Value::Double(_) | Value::Base64(_) | Value::Nil => true,
    }
}

/// Characters XML 1.0 can carry (the encoder writes `\r` as a reference).
pub fn representable_char(c: char) -> bool {
    !matches!(c, '\u{FFFE}' | '\u{FFFF}') && (c >= ' ' || matches!(c, '\t' | '\n' | '\r'))
}

/// A message about a reply goes into one log line: no line break a server could use to forge
/// another line, and bounded in length.
pub fn check_line(message: &str) {
    assert!(
        !message.contains(['\n', '\r']),
        "line break in a message: {message:?}"
    );
    assert!(
        message.chars().count() <= MAX_MESSAGE_CHARS,
        "message of {} characters: {:?}...",
        message.chars().count(),
        message.chars().take(100).collect::<String>()
    );
}

fn check_lines(messages: &[String]) {
    for message in messages {
        check_line(message);
    }
}

/// A native and a Datadog target (the builder differs by format), with a status mapping.
fn poll_settings() -> &'static [Settings; 2] {
    static SETTINGS: OnceLock<[Settings; 2]> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let load = |text: &str| {
            config::load_bytes(Path::new("fuzz.yaml"), text.as_bytes(), &|_| None)
                .unwrap_or_else(|e| panic!("the fuzz harness's own config does not load: {e}"))
        };
        [
            load(
                "targets:\n  - name: fuzz\n    endpoint: http://127.0.0.1:9001\n    \
                 status_mapping: { STOPPED: up }\nexporters:\n  debug: {}\n",
            ),
            load(
                "init_config:\ninstances:\n  - name: fuzz\n    host: 127.0.0.1\n    port: 9001\n    \
                 status_mapping_override: { STOPPED: up }\n",
            ),
        ]
    })
}

fn first_target(settings: &Settings) -> &Target {
    settings
        .targets
        .first()
        .unwrap_or_else(|| panic!("the fuzz harness's own config has no target"))
}

// --- http1_reply ---------------------------------------------------------------------------

/// The body cap `http1_reply` reads with: above every input the mutator makes (64 KiB), so only
/// a declared length or chunk size reaches it.
pub const HTTP1_MAX_BODY: usize = 1 << 20;
/// A second, small cap, which real replies (the XML-RPC fixtures, up to 13 KB) exceed.
pub const HTTP1_SMALL_MAX_BODY: usize = 1024;

/// What the direct connection's reply reader made of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyRead {
    Reply {
        status: u16,
        body: Vec<u8>,
    },
    /// Refused by the body cap ([`TransportError::TooLarge`]).
    TooLarge,
    /// Any other failure, as the transport's message says it.
    Failed(String),
}

/// A server's reply stream through the direct HTTP/1.1 client's reply reader: read whole, in
/// reads of random sizes (drawn from the input, so a failure reproduces) and under smaller body
/// caps. Checks: no panic; the reader ends at the end of the stream and reads nothing after it;
/// a body is never larger than the cap, one within it is never refused, and a body of exactly
/// the cap is read; how the bytes are cut into reads changes nothing; every error message is one
/// bounded line; and wherever the independent reference ([`expected_reply`]) has an answer, the
/// reader gives exactly it.
pub fn http1_reply(data: &[u8]) {
    let whole = read_reply(data, &[], HTTP1_MAX_BODY);
    check_reply_read(data, &whole, HTTP1_MAX_BODY);
    let split = read_reply(data, &read_sizes(data), HTTP1_MAX_BODY);
    check_reply_read(data, &split, HTTP1_MAX_BODY);
    match (&whole, &split) {
        (ReplyRead::Reply { .. }, _) | (_, ReplyRead::Reply { .. }) => assert_eq!(
            whole, split,
            "the reply read whole and the reply read in pieces differ"
        ),
        // Which error comes first may depend on what had arrived (a head too long or invalid).
        _ => {}
    }
    if let ReplyRead::Reply { body, .. } = &whole {
        // The cap is exact: a body of the cap's size is read, one a byte larger is refused.
        let at_cap = read_reply(data, &[], body.len());
        assert_eq!(at_cap, whole, "a body of exactly the cap read differently");
        if let Some(below) = body.len().checked_sub(1) {
            let over = read_reply(data, &[], below);
            assert_eq!(
                over,
                ReplyRead::TooLarge,
                "a body a byte over the cap was not refused"
            );
        }
    }
    let small = read_reply(data, &[], HTTP1_SMALL_MAX_BODY);
    check_reply_read(data, &small, HTTP1_SMALL_MAX_BODY);
    match (&whole, &small) {
        (ReplyRead::Reply { body, .. }, _) if body.len() <= HTTP1_SMALL_MAX_BODY => {
            assert_eq!(
                whole, small,
                "a body within the smaller cap read differently"
            );
        }
        (ReplyRead::Reply { .. }, small) => assert_eq!(
            small,
            &ReplyRead::TooLarge,
            "a body above the smaller cap was not refused for its size"
        ),
        (_, ReplyRead::Reply { .. }) => {
            panic!("accepted under the smaller cap, refused under the larger: {whole:?}")
        }
        _ => {}
    }
}

/// One read of `data` as a server's reply stream: `reads` are the sizes the stream hands out,
/// cycled (none: as much as the reader has room for), then the end of the stream.
pub fn read_reply(data: &[u8], reads: &[usize], max_body: usize) -> ReplyRead {
    let stream = ReplyStream {
        data,
        reads,
        next_read: 0,
        ended: false,
    };
    match run_to_end(read_reply_from(stream, max_body)) {
        Ok((status, body)) => ReplyRead::Reply {
            status,
            body: body.to_vec(),
        },
        Err(TransportError::TooLarge { .. }) => ReplyRead::TooLarge,
        Err(error) => ReplyRead::Failed(error.to_string()),
    }
}

/// The checks on any one read of `data`.
fn check_reply_read(data: &[u8], read: &ReplyRead, max_body: usize) {
    match read {
        ReplyRead::Reply { body, .. } => assert!(
            body.len() <= max_body,
            "a body of {} bytes under a cap of {max_body}",
            body.len()
        ),
        ReplyRead::TooLarge => {}
        ReplyRead::Failed(message) => check_line(message),
    }
    match expected_reply(data, max_body) {
        Expected::Exactly(expected) => assert_eq!(read, &expected, "the reference reads otherwise"),
        Expected::NotAReply => assert!(
            !matches!(read, ReplyRead::Reply { .. }),
            "accepted a stream the reference finds cut short: {read:?}"
        ),
        Expected::Unknown => {}
    }
}

/// Read sizes drawn from the input's hash: 1 to 8 bytes for short inputs, up to a 64th of the
/// input for long ones (a few hundred reads at most, since the head is parsed again after each).
pub fn read_sizes(data: &[u8]) -> Vec<usize> {
    let mut state = fnv1a(data) | 1;
    let most = (data.len() / 64).max(8);
    (0..64)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            1 + usize::try_from(r % most as u64).unwrap_or(0)
        })
        .collect()
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A reply stream in memory: never makes its reader wait, ends after its data, and fails the
/// check if read again after it said so (a reader that does could spin forever on a socket).
struct ReplyStream<'a> {
    data: &'a [u8],
    reads: &'a [usize],
    next_read: usize,
    ended: bool,
}

impl AsyncRead for ReplyStream<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            assert!(!this.ended, "read again after the end of the stream");
            this.ended = true;
            return Poll::Ready(Ok(()));
        }
        let size = match this.reads.get(this.next_read % this.reads.len().max(1)) {
            Some(&size) => size.max(1),
            None => usize::MAX,
        };
        this.next_read += 1;
        let n = size.min(buf.remaining()).min(this.data.len());
        let (piece, rest) = this.data.split_at(n);
        buf.put_slice(piece);
        this.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future that must finish without waiting: the stream it reads never makes it wait, so
/// a pending future would wait forever on a real connection.
fn run_to_end<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the reply reader waits on a stream that has ended"),
    }
}

/// What the reference says a reply stream must read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// This, and nothing else.
    Exactly(ReplyRead),
    /// Not a reply (cut short); which error the reader gives is its own business.
    NotAReply,
    /// The reference has no opinion: the stream holds something it leaves to the reader's own
    /// rules (an unusual head, lenient chunk syntax, a cap's edge).
    Unknown,
}

/// Framing, as RFC 9112 §6.3 decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefFraming {
    Length(usize),
    Chunked,
    UntilClose,
}

/// The longest head, chunk-size line or trailer line the reference judges; longer ones meet the
/// reader's caps, which the reference leaves alone.
const REF_MAX_LINE: usize = 1000;
const REF_MAX_HEAD: usize = 16 * 1024;

/// An independent reading of a reply stream, written from RFC 9112 and not from the client:
/// interim 1xx heads skipped, then one head framed by `Transfer-Encoding: chunked`, a
/// `Content-Length` or the end of the stream. It only judges "tame" heads (CRLF line ends,
/// `HTTP/1.0` or `HTTP/1.1`, token header names, printable ASCII values, at most 64 headers) and
/// strict chunk syntax, and has no opinion on anything else.
pub fn expected_reply(data: &[u8], max_body: usize) -> Expected {
    let mut rest = data;
    let (status, framing) = loop {
        let Some(end) = find(rest, b"\r\n\r\n") else {
            // Cut short in a tame head: no reply. (A long or odd one: the reader's caps decide.)
            return if rest.len() <= REF_MAX_LINE && tame_partial_head(rest) {
                Expected::NotAReply
            } else {
                Expected::Unknown
            };
        };
        let Some((status, framing)) = tame_head(&rest[..end + 2]) else {
            return Expected::Unknown;
        };
        // Conflicting lengths, even in an interim head: never a reply.
        let Some(framing) = framing else {
            return Expected::NotAReply;
        };
        rest = &rest[end + 4..];
        if !(100..200).contains(&status) {
            break (status, framing);
        }
    };
    match framing {
        RefFraming::Length(length) if length > max_body => Expected::Exactly(ReplyRead::TooLarge),
        RefFraming::Length(length) => match rest.get(..length) {
            Some(body) => Expected::Exactly(ReplyRead::Reply {
                status,
                body: body.to_vec(),
            }),
            None => Expected::NotAReply,
        },
        RefFraming::UntilClose if rest.len() > max_body => Expected::Exactly(ReplyRead::TooLarge),
        RefFraming::UntilClose => Expected::Exactly(ReplyRead::Reply {
            status,
            body: rest.to_vec(),
        }),
        RefFraming::Chunked => match decode_chunked(rest) {
            Chunked::Complete(body) if body.len() > max_body => {
                Expected::Exactly(ReplyRead::TooLarge)
            }
            Chunked::Complete(body) => Expected::Exactly(ReplyRead::Reply { status, body }),
            // Cut short, and within the cap so far: only the size can refuse it first.
            Chunked::CutShort { declared } if declared <= max_body => Expected::NotAReply,
            Chunked::CutShort { .. } | Chunked::Unknown => Expected::Unknown,
        },
    }
}

/// A tame head's status and framing (`None`: lengths in conflict, which is an error); `None`
/// for a head the reference does not judge. `head` ends with the CRLF of its last line.
fn tame_head(head: &[u8]) -> Option<(u16, Option<RefFraming>)> {
    if head.len() > REF_MAX_HEAD {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.strip_suffix("\r\n")?.split("\r\n");
    let status_line = lines.next()?;
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with('0') {
        return None;
    }
    let reason = rest.get(3..)?;
    if !(reason.is_empty() || reason.starts_with(' ')) || !reason.bytes().all(printable_ascii) {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    let mut lengths = Vec::new();
    let mut encodings = Vec::new();
    let mut count = 0;
    for line in lines {
        count += 1;
        let (name, value) = line.split_once(':')?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) || !value.bytes().all(printable_ascii) {
            return None;
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            // Only plain digits are judged (at most 15: no overflow).
            if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            lengths.push(value.parse::<usize>().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encodings.push(value);
        }
    }
    if count > 64 {
        return None;
    }
    // Lengths that disagree make the reply an error, whatever else the head says.
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Some((status, None));
    }
    let framing = match (encodings.as_slice(), lengths.first()) {
        // Chunked wins over a length.
        ([encoding], _) if encoding.eq_ignore_ascii_case("chunked") => RefFraming::Chunked,
        ([_, ..], _) => return None,
        ([], Some(&length)) => RefFraming::Length(length),
        ([], None) if status == 204 || status == 304 => RefFraming::Length(0),
        ([], None) => RefFraming::UntilClose,
    };
    Some((status, Some(framing)))
}

/// Whether the start of a head so far is tame (no byte the reference leaves to the reader).
fn tame_partial_head(head: &[u8]) -> bool {
    let complete = b"HTTP/1.1 ";
    let n = head.len().min(complete.len());
    let crlf_only = head.iter().enumerate().all(|(at, &b)| match b {
        b'\n' => at > 0 && head[at - 1] == b'\r',
        b'\r' => head.get(at + 1).is_none_or(|&next| next == b'\n'),
        _ => printable_ascii(b),
    });
    head[..n] == complete[..n] && crlf_only
}

fn printable_ascii(b: u8) -> bool {
    (b' '..=b'~').contains(&b) || b == b'\t'
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What [`decode_chunked`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Well-formed, last chunk and trailers included: the body.
    Complete(Vec<u8>),
    /// Well-formed as far as it goes, then the stream ends; `declared` is the body's size with
    /// the chunk in progress counted whole.
    CutShort { declared: usize },
    /// Something the strict grammar does not allow, or a line near the reader's caps.
    Unknown,
}

/// The reference chunked decoder: RFC 9112 §7.1 strictly (hex sizes of at most 15 digits,
/// extensions `;name[=value]`, trailer fields, CRLF everywhere), written apart from the
/// client's.
pub fn decode_chunked(mut data: &[u8]) -> Chunked {
    let mut body = Vec::new();
    loop {
        let Some(end) = find(data, b"\r\n") else {
            return cut_short_or_unknown(data, body.len());
        };
        let line = &data[..end];
        if line.len() > REF_MAX_LINE {
            return Chunked::Unknown;
        }
        let (digits, extensions) = match line.iter().position(|&b| b == b';') {
            Some(at) => line.split_at(at),
            None => (line, &b""[..]),
        };
        let extensions_ok = extensions.iter().all(|&b| printable_ascii(b) && b != b'\t');
        if digits.is_empty()
            || digits.len() > 15
            || !digits.iter().all(u8::is_ascii_hexdigit)
            || !extensions_ok
        {
            return Chunked::Unknown;
        }
        let Ok(size) = usize::from_str_radix(std::str::from_utf8(digits).unwrap_or("x"), 16) else {
            return Chunked::Unknown;
        };
        data = &data[end + 2..];
        if size == 0 {
            return trailers(data, body);
        }
        let declared = body.len().saturating_add(size);
        let Some(chunk) = data.get(..size) else {
            return Chunked::CutShort { declared };
        };
        match data.get(size..size + 2) {
            Some(b"\r\n") => {}
            Some(_) => return Chunked::Unknown,
            None if data.get(size..).is_some_and(|r| r.is_empty() || r == b"\r") => {
                return Chunked::CutShort { declared };
            }
            None => return Chunked::Unknown,
        }
        body.extend_from_slice(chunk);
        data = &data[size + 2..];
    }
}

/// Trailer fields after the last chunk, then the empty line that ends the body.
fn trailers(mut data: &[u8], body: Vec<u8>) -> Chunked {
    loop {
        let Some(end) = find(data, b"\r\n") else {
            return cut_short_or_unknown(data, body.len());
        };
        if end == 0 {
            return Chunked::Complete(body);
        }
        let line = &data[..end];
        if line.len() > REF_MAX_LINE
            || !line.iter().all(|&b| printable_ascii(b))
            || !line.contains(&b':')
        {
            return Chunked::Unknown;
        }
        data = &data[end + 2..];
    }
}

/// A line with no end yet: cut short if it is short and tame.
fn cut_short_or_unknown(line: &[u8], declared: usize) -> Chunked {
    if line.len() <= REF_MAX_LINE && line.iter().all(|&b| printable_ascii(b) || b == b'\r') {
        Chunked::CutShort { declared }
    } else {
        Chunked::Unknown
    }
}

/// A reply to generate: interim heads, a final head with its headers, a body and how it is
/// framed. [`GeneratedReply::encode`] writes it as a server would.
#[derive(Debug, Clone)]
pub struct GeneratedReply {
    pub interim: Vec<u16>,
    pub status: u16,
    pub http10: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: GeneratedFraming,
}

#[derive(Debug, Clone)]
pub enum GeneratedFraming {
    /// `Content-Length`, written `copies` times (the same value).
    Length { copies: usize },
    /// `Transfer-Encoding: chunked`: the body cut at `cuts` (positions, any order), each chunk
    /// size written in upper or lower case with an optional extension, then trailers. A
    /// `Content-Length` beside it (which chunked overrides) when `with_length` is set.
    Chunked {
        cuts: Vec<usize>,
        upper: bool,
        extension: Option<String>,
        trailers: Vec<(String, String)>,
        with_length: Option<usize>,
    },
    /// Neither: the body runs to the end of the stream.
    UntilClose,
}

impl GeneratedReply {
    /// The chunks the body is sent in, for chunked framing (empty ones dropped: a zero size
    /// ends the body).
    pub fn chunks(&self) -> Vec<&[u8]> {
        let GeneratedFraming::Chunked { cuts, .. } = &self.framing else {
            return vec![self.body.as_slice()];
        };
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (self.body.len() + 1)).collect();
        at.push(0);
        at.push(self.body.len());
        at.sort_unstable();
        at.dedup();
        at.windows(2)
            .filter_map(|w| self.body.get(w[0]..w[1]))
            .collect()
    }

    /// The chunked part of the stream alone (chunks, last chunk, trailers, final CRLF).
    pub fn chunked_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let GeneratedFraming::Chunked {
            upper,
            extension,
            trailers,
            ..
        } = &self.framing
        else {
            return out;
        };
        for chunk in self.chunks() {
            let size = if *upper {
                format!("{:X}", chunk.len())
            } else {
                format!("{:x}", chunk.len())
            };
            out.extend_from_slice(size.as_bytes());
            if let Some(extension) = extension {
                out.push(b';');
                out.extend_from_slice(extension.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for (name, value) in trailers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The whole reply stream.
    pub fn encode(&self) -> Vec<u8> {
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut out = Vec::new();
        for code in &self.interim {
            out.extend_from_slice(format!("HTTP/1.1 {code} Continue\r\n\r\n").as_bytes());
        }
        out.extend_from_slice(format!("{version} {} OK\r\n", self.status).as_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        match &self.framing {
            GeneratedFraming::Length { copies } => {
                for _ in 0..(*copies).max(1) {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n", self.body.len()).as_bytes(),
                    );
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.body);
            }
            GeneratedFraming::Chunked { with_length, .. } => {
                if let Some(length) = with_length {
                    out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
                }
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                out.extend_from_slice(&self.chunked_body());
            }
            GeneratedFraming::UntilClose => {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.body);
            }
        }
        out
    }
}

/// A generated reply, encoded and read in `reads`, gives its status and body (or is refused for
/// its size above `max_body`); its chunked part decodes by the reference to the same body.
pub fn http1_round_trip(reply: &GeneratedReply, reads: &[usize], max_body: usize) {
    let encoded = reply.encode();
    let expected = if reply.body.len() > max_body {
        ReplyRead::TooLarge
    } else {
        ReplyRead::Reply {
            status: reply.status,
            body: reply.body.clone(),
        }
    };
    if matches!(reply.framing, GeneratedFraming::Chunked { .. }) {
        assert_eq!(
            decode_chunked(&reply.chunked_body()),
            Chunked::Complete(reply.body.clone()),
            "the reference decoder does not read a generated chunked body back"
        );
    }
    let read = read_reply(&encoded, reads, max_body);
    assert_eq!(read, expected, "a generated reply reads back otherwise");
    check_reply_read(&encoded, &read, max_body);
}
