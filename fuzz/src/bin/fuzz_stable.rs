//! The fuzz targets on a stable toolchain: replay a corpus, or mutate it at random (no coverage
//! feedback, unlike cargo-fuzz, but the same targets and checks). A failing input is saved
//! under `artifacts/<target>/` and the exit code is 1.
//!
//! ```text
//! fuzz-stable replay <target> [file or dir]...
//! fuzz-stable mutate <target> <corpus dir> [iterations] [seed]
//! ```
//!
//! Without a path, `replay` replays the target's whole corpus (`CORPUS` in the library: its
//! corpus directory and the test fixtures it is seeded with). `mutate` starts from the given
//! directory plus those fixtures.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use supervisord_receiver_fuzz::{config_load, corpus_paths, http1_reply, xmlrpc_decode};

const USAGE: &str = "usage: fuzz-stable replay <xmlrpc_decode|config_load|http1_reply> [file or dir]...\n       \
                     fuzz-stable mutate <xmlrpc_decode|config_load|http1_reply> <corpus dir> [iterations] [seed]";

/// Inputs grow no larger than this while mutating.
const MAX_LEN: usize = 64 * 1024;

/// Pieces the mutator splices in: the syntax each target's parser cares about.
const XML_TOKENS: &[&str] = &[
    "<value>",
    "</value>",
    "<array>",
    "</array>",
    "<data>",
    "</data>",
    "<struct>",
    "</struct>",
    "<member>",
    "</member>",
    "<name>",
    "</name>",
    "<string>",
    "</string>",
    "<int>",
    "</int>",
    "<i8>",
    "<boolean>",
    "<double>",
    "<base64>",
    "<nil/>",
    "<value/>",
    "<dateTime.iso8601>",
    "<fault>",
    "</fault>",
    "<params>",
    "<param>",
    "<methodResponse>",
    "</methodResponse>",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x10FFFF;",
    "&#xD800;",
    "&a;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?pi?>",
    "faultCode",
    "faultString",
    "statename",
    "RUNNING",
    "FATAL",
    "-9223372036854775808",
    "99999999999999999999",
    "1e308",
    "NaN",
    "\u{FEFF}",
    "\r\n",
    "\u{0}",
    "\u{FFFE}",
    "\u{202E}",
    "<html>",
];

const YAML_TOKENS: &[&str] = &[
    "targets:",
    "instances:",
    "init_config:",
    "exporters:",
    "metrics:",
    "- name: a\n",
    "endpoint: ",
    "unix:///tmp/s.sock",
    "http://127.0.0.1:9001",
    "https://[::1]:1",
    "host: ",
    "port: ",
    "socket: ",
    "timeout: ",
    "collection_interval: ",
    "initial_delay: ",
    "0s",
    "1ms",
    "-1s",
    "99999999999999h",
    "1.5s",
    "min_collection_interval: ",
    "proc_regex: [\"(\"]",
    "status_mapping: {STOPPED: up}",
    "status_mapping_override:",
    "${env:SET}",
    "${env:UNSET}",
    "$${",
    "${",
    "&anchor ",
    "*anchor",
    "<<: *anchor",
    "!!binary ",
    "!tag ",
    "? ",
    "---\n",
    "...\n",
    "{",
    "}",
    "[",
    "]",
    ": ",
    "\n  ",
    "\n    - ",
    "\"",
    "'",
    "~",
    "null",
    "true",
    "0x1F",
    "1e999",
    "\t",
    "#",
    "|\n",
    ">-\n",
    "\u{FEFF}",
    "\u{0}",
];

const HTTP_TOKENS: &[&str] = &[
    "HTTP/1.1 200 OK\r\n",
    "HTTP/1.0 200 OK\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.1 204 No Content\r\n",
    "HTTP/1.1 304 Not Modified\r\n",
    "\r\n",
    "\r\n\r\n",
    "\n",
    "\r",
    "Content-Length: ",
    "content-length:0\r\n",
    "Content-Length: 5\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip, chunked\r\n",
    "Transfer-Encoding: gzip\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive\r\n",
    "Server: Medusa/1.12\r\n",
    "0\r\n\r\n",
    "5\r\nhello\r\n",
    "1;",
    ";ext=\"v\"",
    "Trailer: x\r\n",
    "ffffffffffffffffff",
    "fffffffffffffff",
    "100000",
    "-1",
    "+5",
    " 5 ",
    "99999999999999999999",
    " ",
    "\t",
    ":",
    "\u{0}",
    "\u{7F}",
    "\u{FF}",
    "\u{2028}",
    "X-Filler: ",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(target)) = (args.first(), args.get(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let (check, tokens): (fn(&[u8]), &[&str]) = match target.as_str() {
        "xmlrpc_decode" => (xmlrpc_decode, XML_TOKENS),
        "config_load" => (config_load, YAML_TOKENS),
        "http1_reply" => (http1_reply, HTTP_TOKENS),
        other => {
            eprintln!("unknown target '{other}'\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rest = args.get(2..).unwrap_or_default();
    match mode.as_str() {
        "replay" => replay(target, check, rest),
        "mutate" => mutate(target, check, tokens, rest),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn replay(target: &str, check: fn(&[u8]), paths: &[String]) -> ExitCode {
    let files = if paths.is_empty() {
        corpus_files(&in_repo(corpus_paths(target)))
    } else {
        corpus_files(paths)
    };
    for file in &files {
        let Ok(data) = std::fs::read(file) else {
            eprintln!("cannot read {}", file.display());
            return ExitCode::from(2);
        };
        if !passes(check, &data) {
            eprintln!("{target}: {} fails", file.display());
            return ExitCode::from(1);
        }
    }
    println!("{target}: {} inputs replayed, none failed", files.len());
    ExitCode::SUCCESS
}

fn mutate(target: &str, check: fn(&[u8]), tokens: &[&str], args: &[String]) -> ExitCode {
    let Some(dir) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let iterations: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0x5EED);
    // The fixtures the target's corpus is seeded with, kept outside the corpus directory.
    let mut seeds = vec![PathBuf::from(dir)];
    seeds.extend(in_repo(corpus_paths(target).get(1..).unwrap_or_default()));
    let corpus: Vec<Vec<u8>> = corpus_files(&seeds)
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .collect();
    if corpus.is_empty() {
        eprintln!("no corpus in {dir}");
        return ExitCode::from(2);
    }
    let mut rng = Rng(seed | 1);
    for i in 0..iterations {
        let mut input = corpus
            .get(rng.below(corpus.len()))
            .cloned()
            .unwrap_or_default();
        for _ in 0..=rng.below(8) {
            mutate_once(&mut input, &corpus, tokens, &mut rng);
        }
        if !passes(check, &input) {
            let saved = save_artifact(target, &input);
            eprintln!(
                "{target}: failing input after {i} iterations (seed {seed}), saved to {}",
                saved.display()
            );
            return ExitCode::from(1);
        }
    }
    println!("{target}: {iterations} mutated inputs (seed {seed}), none failed");
    ExitCode::SUCCESS
}

fn passes(check: fn(&[u8]), data: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| check(data))).is_ok()
}

fn mutate_once(input: &mut Vec<u8>, corpus: &[Vec<u8>], tokens: &[&str], rng: &mut Rng) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(8) {
        0 if len > 0 => {
            if let Some(b) = input.get_mut(at.min(len - 1)) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => input.insert(at, rng.next() as u8),
        2 if len > 0 => {
            let end = (at + 1 + rng.below(32)).min(len);
            input.drain(at.min(len - 1)..end);
        }
        3 if len > 0 => {
            let end = (at + 1 + rng.below(64)).min(len);
            let piece: Vec<u8> = input.get(at.min(len - 1)..end).unwrap_or_default().to_vec();
            let to = rng.below(input.len() + 1);
            input.splice(to..to, piece);
        }
        4 | 5 => {
            let token = tokens.get(rng.below(tokens.len())).copied().unwrap_or("");
            input.splice(at..at, token.bytes());
        }
        6 => input.truncate(at),
        _ => {
            // Splice in a piece of another corpus entry.
            let other = corpus
                .get(rng.below(corpus.len()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let from = rng.below(other.len() + 1);
            let end = (from + rng.below(256)).min(other.len());
            input.splice(
                at..at,
                other.get(from..end).unwrap_or_default().iter().copied(),
            );
        }
    }
    input.truncate(MAX_LEN);
}

/// Paths from the repository root (this crate is `fuzz/` in it).
fn in_repo(paths: &[&str]) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    paths.iter().map(|p| root.join(p)).collect()
}

fn corpus_files(paths: &[impl AsRef<Path>]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        let path = path.as_ref();
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
                    .collect();
                found.sort();
                files.extend(found);
            }
            Err(_) => files.push(path.to_path_buf()),
        }
    }
    files
}

fn save_artifact(target: &str, data: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    // FNV-1a: a stable name, so the same input is saved once.
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("crash-{hash:016x}"));
    let _ = std::fs::write(&path, data);
    path
}

/// xorshift64*: reproducible from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
