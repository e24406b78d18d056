//! The fuzz corpus replayed through the fuzz checks, and every input that ever failed one, by
//! name. A new failing input goes both into `fuzz/corpus/<target>/` and here.
//!
//! The corpus is the corpus directory plus the fixtures it is seeded with, each kept in one
//! copy (`CORPUS` in fuzz/src/lib.rs): a copy of a fixture in the corpus directory fails here.

use crate::checks;

use std::path::PathBuf;

use supervisord_receiver::supervisor::client::decode_multicall_reply;
use supervisord_receiver::supervisor::xmlrpc;

/// Every input of `target` ([`checks::CORPUS`]: its corpus directory and the fixtures it is
/// seeded with, read where they live), sorted within each directory.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let paths = checks::corpus_paths(target);
    assert!(!paths.is_empty(), "no corpus for {target}");
    let mut files = Vec::new();
    for path in paths {
        let path = root.join(path);
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path);
        }
    }
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect()
}

fn corpus_input(target: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn xmlrpc_corpus_replays() {
    let inputs = corpus("xmlrpc_decode");
    assert!(inputs.len() >= 20, "the corpus is seeded: {}", inputs.len());
    for (path, data) in inputs {
        let replayed = std::panic::catch_unwind(|| checks::xmlrpc_decode(&data));
        assert!(replayed.is_ok(), "{} fails", path.display());
    }
}

#[test]
fn config_corpus_replays() {
    let inputs = corpus("config_load");
    assert!(inputs.len() >= 7, "the corpus is seeded: {}", inputs.len());
    for (path, data) in inputs {
        let replayed = std::panic::catch_unwind(|| checks::config_load(&data));
        assert!(replayed.is_ok(), "{} fails", path.display());
    }
}

#[test]
fn http1_corpus_replays() {
    let inputs = corpus("http1_reply");
    assert!(inputs.len() >= 20, "the corpus is seeded: {}", inputs.len());
    for (path, data) in inputs {
        let replayed = std::panic::catch_unwind(|| checks::http1_reply(&data));
        assert!(replayed.is_ok(), "{} fails", path.display());
    }
}

/// Each input is kept once: the corpus directories hold no copy of a fixture they are seeded
/// with (a copy drifts, as `native.yaml` once did).
#[test]
fn corpus_holds_one_copy_of_each_input() {
    for (target, _) in checks::CORPUS {
        let mut seen: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for (path, data) in corpus(target) {
            let name = path.file_name().map(ToOwned::to_owned);
            if let Some((first, _)) = seen
                .iter()
                .find(|(p, d)| *d == data || p.file_name().map(ToOwned::to_owned) == name)
            {
                panic!(
                    "{target}: {} repeats {}; keep one copy",
                    path.display(),
                    first.display()
                );
            }
            seen.push((path, data));
        }
    }
}

// The inputs below failed the one-line check when it was added: a server's text reached the
// log unescaped and uncut, so a reply could forge log lines or write a megabyte-long one. The
// fuzzing campaigns since (see fuzz/README.md) have found no other failure.

#[test]
fn fault_string_with_a_line_break() {
    let data = corpus_input("xmlrpc_decode", "regression_fault_string_newline.xml");
    checks::xmlrpc_decode(&data);
    let fault = xmlrpc::decode_response(&data)
        .ok()
        .and_then(|reply| reply.err())
        .unwrap_or_else(|| panic!("a fault"));
    assert_eq!(fault.to_string(), "10 BAD_NAME\\nWARN forged line");
}

#[test]
fn multicall_fault_string_with_a_line_break() {
    let data = corpus_input("xmlrpc_decode", "regression_multicall_fault_newline.xml");
    checks::xmlrpc_decode(&data);
    let error = decode_multicall_reply(&data).map(|_| ()).err();
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(message, "10 BAD\\nforged");
}

#[test]
fn process_name_with_a_line_break() {
    checks::xmlrpc_decode(&corpus_input("xmlrpc_decode", "edge_forged_log_line.xml"));
}

#[test]
fn element_name_ten_thousand_characters_long() {
    checks::xmlrpc_decode(&corpus_input(
        "xmlrpc_decode",
        "regression_long_element_name.xml",
    ));
}

// The HTTP/1.1 reply reader's inputs below failed the `http1_reply` checks when the target was
// added: a server's Content-Length value was quoted whole in the error (a line of any length up
// to the head cap), and the caps on the head, a chunk-size line and a trailer line were checked
// only while the line was incomplete, so whether an over-long one was refused depended on how
// the reads had cut the reply.

/// The messages the transport gives for those replies.
fn http1_failure(reason: &str) -> checks::ReplyRead {
    checks::ReplyRead::Failed(format!("connection failed during the request: {reason}"))
}

#[test]
fn content_length_value_quoted_short() {
    let data = corpus_input("http1_reply", "regression_content_length_long_value.bin");
    checks::http1_reply(&data);
    assert_eq!(
        checks::read_reply(&data, &[], checks::HTTP1_MAX_BODY),
        http1_failure(&format!("invalid Content-Length '{}...'", "9x".repeat(20)))
    );
}

#[test]
fn head_over_the_cap_refused_however_it_arrives() {
    let data = corpus_input("http1_reply", "regression_head_oversized.bin");
    checks::http1_reply(&data);
    assert_eq!(
        checks::read_reply(&data, &[], checks::HTTP1_MAX_BODY),
        http1_failure("reply head larger than 65536 bytes")
    );
}

#[test]
fn chunk_size_line_over_the_cap_refused_however_it_arrives() {
    let data = corpus_input("http1_reply", "regression_chunk_size_line_long.bin");
    checks::http1_reply(&data);
    assert_eq!(
        checks::read_reply(&data, &[], checks::HTTP1_MAX_BODY),
        http1_failure("chunk size line too long")
    );
}

/// Each cap at its edge: a line or head of exactly the cap is read, one byte more is refused,
/// read whole or in pieces (one byte at a time where that stays fast: the head is parsed again
/// after every read).
#[test]
fn http1_caps_are_exact() {
    let head = |filler: usize| {
        let start = "HTTP/1.1 200 OK\r\nX-Filler: ";
        let end = "\r\nContent-Length: 2\r\n\r\nok";
        format!(
            "{start}{}{end}",
            "a".repeat(filler - start.len() - end.len() + 2)
        )
    };
    let chunk_line = |line: usize| {
        let extension = "e".repeat(line - 2);
        format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;{extension}\r\nok\r\n0\r\n\r\n"
        )
    };
    let trailer = |line: usize| {
        let value = "v".repeat(line - 3);
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nt: {value}\r\n\r\n")
    };
    let ok = checks::ReplyRead::Reply {
        status: 200,
        body: b"ok".to_vec(),
    };
    let cases = [
        (head(65_536), vec![4096], ok.clone()),
        (
            head(65_537),
            vec![4096],
            http1_failure("reply head larger than 65536 bytes"),
        ),
        (chunk_line(1024), vec![1], ok.clone()),
        (
            chunk_line(1025),
            vec![1],
            http1_failure("chunk size line too long"),
        ),
        (trailer(65_536), vec![1, 4096], ok.clone()),
        (
            trailer(65_537),
            vec![1, 4096],
            http1_failure("trailers too long"),
        ),
    ];
    for (data, reads, expected) in cases {
        for reads in [&[][..], &reads] {
            let read = checks::read_reply(data.as_bytes(), reads, checks::HTTP1_MAX_BODY);
            assert_eq!(read, expected, "{} bytes in reads of {reads:?}", data.len());
        }
        checks::http1_reply(data.as_bytes());
    }
}
