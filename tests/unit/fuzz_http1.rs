//! Property tests of the direct HTTP/1.1 client's reply reader (`src/supervisor/http1.rs`):
//! arbitrary bytes, mutated real replies and HTTP token soup through the fuzz target's checks,
//! and generated replies (interim heads, headers, `Content-Length`, chunked or
//! connection-close framing) read back in reads of random sizes to their status and body.
//!
//! Bounded (2,000 cases per property) so they take seconds in `cargo test`; the same checks
//! run unbounded under cargo-fuzz (fuzz/README.md).

use crate::checks::{self, GeneratedFraming, GeneratedReply, HTTP1_MAX_BODY};

use proptest::prelude::*;

use super::mutation::Mutation;
use proptest::test_runner::Config;

fn config() -> Config {
    Config {
        cases: 2_000,
        // A failure prints its minimal input; it goes into tests/unit/fuzz_regressions.rs.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Reply streams to mutate: a real supervisord reply and the three framings.
const SEEDS: [&[u8]; 5] = [
    include_bytes!("../../fuzz/corpus/http1_reply/real_supervisord_4.3.0_fault.bin"),
    include_bytes!("../../fuzz/corpus/http1_reply/chunked_extensions_and_trailers.bin"),
    include_bytes!("../../fuzz/corpus/http1_reply/until_close_http10.bin"),
    include_bytes!("../../fuzz/corpus/http1_reply/interim_100_continue.bin"),
    include_bytes!("../../fuzz/corpus/http1_reply/hostile_content_length_duplicate.bin"),
];

/// The syntax the reader cares about, for mutations and token soup.
const TOKENS: [&str; 28] = [
    "HTTP/1.1 200 OK\r\n",
    "HTTP/1.0 200 OK\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.1 204 No Content\r\n",
    "\r\n",
    "\r\n\r\n",
    "\n",
    "\r",
    "Content-Length: ",
    "content-length:0\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive\r\n",
    "0\r\n\r\n",
    "5\r\nhello\r\n",
    ";ext=1",
    "ffffffffffffffffff",
    "fffffffffffffff",
    "-1",
    "+5",
    "99999999999999999999",
    " ",
    "\t",
    ":",
    "\u{0}",
    "\u{FF}",
    "X-Filler: ",
];

/// Mutations over this target's tokens (`super::mutation`).
fn mutation() -> impl Strategy<Value = Mutation> {
    super::mutation::mutation(TOKENS.len(), 32, 64)
}

fn apply(input: &mut Vec<u8>, mutation: &Mutation) {
    super::mutation::apply(input, mutation, &TOKENS);
}

/// Header names and values a server sends beside the framing ones.
const HEADERS: [(&str, &str); 8] = [
    ("Content-Type", "text/xml"),
    ("Date", "Mon, 07 Dec 2026 10:58:00 GMT"),
    ("Server", "Medusa/1.12"),
    ("Connection", "close"),
    ("Connection", "keep-alive"),
    ("Keep-Alive", "timeout=5"),
    ("X-Empty", ""),
    ("WWW-Authenticate", "Basic realm=\"default\""),
];

fn header() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        3 => prop::sample::select(&HEADERS[..]).prop_map(|(n, v)| (n.to_owned(), v.to_owned())),
        1 => ("X-[A-Za-z0-9-]{1,12}", "[ -~]{0,24}")
            .prop_map(|(n, v)| (n, v.trim_matches(' ').to_owned())),
    ]
}

fn framing() -> impl Strategy<Value = GeneratedFraming> {
    prop_oneof![
        (1usize..3).prop_map(|copies| GeneratedFraming::Length { copies }),
        (
            prop::collection::vec(any::<usize>(), 0..8),
            any::<bool>(),
            prop::option::of("[a-z]{1,8}(=[a-z0-9]{0,8})?"),
            prop::collection::vec(header(), 0..3),
            prop::option::of(0usize..100_000),
        )
            .prop_map(|(cuts, upper, extension, trailers, with_length)| {
                GeneratedFraming::Chunked {
                    cuts,
                    upper,
                    extension,
                    trailers,
                    with_length,
                }
            }),
        Just(GeneratedFraming::UntilClose),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        // The CRLFs and hex digits chunked framing is made of, inside the data.
        prop::collection::vec(prop::sample::select(&b"\r\n0123456789abcdef;"[..]), 0..256),
        prop::sample::select(&SEEDS[..]).prop_map(<[u8]>::to_vec),
    ]
}

fn generated_reply() -> impl Strategy<Value = GeneratedReply> {
    (
        prop::collection::vec(100u16..200, 0..3),
        200u16..600,
        any::<bool>(),
        prop::collection::vec(header(), 0..6),
        body(),
        framing(),
    )
        .prop_map(|(interim, status, http10, headers, body, framing)| {
            // Without framing headers, 204 and 304 carry no body (RFC 9112 §6.3).
            let bodiless = matches!(status, 204 | 304);
            let status = match framing {
                GeneratedFraming::UntilClose if bodiless => 200,
                _ => status,
            };
            GeneratedReply {
                interim,
                status,
                http10,
                headers,
                body,
                framing,
            }
        })
}

/// Read sizes: none (as much as the reader has room for), or cycled sizes from one byte up.
fn reads() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(1usize..8, 1..8),
        prop::collection::vec(1usize..600, 1..8),
    ]
}

/// The body cap to read with: the target's, any small one, or the body's size give or take a
/// byte (where an off-by-one in the cap shows).
#[derive(Debug, Clone)]
enum Cap {
    Large,
    Small(usize),
    AroundBody(isize),
}

fn cap() -> impl Strategy<Value = Cap> {
    prop_oneof![
        Just(Cap::Large),
        (0usize..3000).prop_map(Cap::Small),
        (-1isize..=1).prop_map(Cap::AroundBody),
    ]
}

fn max_body(cap: &Cap, body: &[u8]) -> usize {
    match *cap {
        Cap::Large => HTTP1_MAX_BODY,
        Cap::Small(n) => n,
        Cap::AroundBody(by) => body.len().saturating_add_signed(by),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        checks::http1_reply(&bytes);
    }

    #[test]
    fn token_soup(tokens in prop::collection::vec(0..TOKENS.len(), 0..24)) {
        let soup: String = tokens
            .iter()
            .filter_map(|&t| TOKENS.get(t).copied())
            .collect();
        checks::http1_reply(soup.as_bytes());
    }

    #[test]
    fn mutated_replies(
        which in 0..SEEDS.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut input = SEEDS.get(which).copied().unwrap_or_default().to_vec();
        for m in &mutations {
            apply(&mut input, m);
        }
        checks::http1_reply(&input);
    }

    #[test]
    fn generated_replies_read_back(
        reply in generated_reply(),
        reads in reads(),
        cap in cap(),
    ) {
        checks::http1_round_trip(&reply, &reads, max_body(&cap, &reply.body));
    }

    #[test]
    fn mutated_generated_replies(
        reply in generated_reply(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut input = reply.encode();
        for m in &mutations {
            apply(&mut input, m);
        }
        checks::http1_reply(&input);
    }
}
