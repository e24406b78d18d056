//! Replies for the benchmarks: the reply recorded from a real supervisord 4.3.0, and larger
//! ones templated from its process entries, written under `target/bench-replies/` so the
//! Python baseline loads exactly the bytes the Rust side decodes.

// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The sizes the targets are stated at.
pub const SIZES: [usize; 3] = [10, 100, 1_000];

const RECORDED: &str = "tests/fixtures/xmlrpc/multicall_recorded_supervisord_4.3.0.xml";

/// Where a `getAllProcessInfo` array sits in the recorded multicall reply: the first process
/// struct opens after this, and the secondary answers follow the array.
const ARRAY_OPEN: &str = "<value><array><data>\n<value><array><data>\n";
const ARRAY_CLOSE: &str = "</data></array></value>\n";
const ENTRY_CLOSE: &str = "</struct></value>\n";

/// One generated reply, as sent over the wire.
pub struct Reply {
    pub processes: usize,
    /// `system.multicall` of the four poll calls: what a poll of ours receives.
    pub multicall: Vec<u8>,
    /// `getAllProcessInfo` alone: what Datadog's check receives.
    pub all_process_info: Vec<u8>,
}

/// The recorded reply and its parts.
pub struct Recorded {
    pub path: PathBuf,
    pub body: Vec<u8>,
    /// Everything before the first process entry.
    head: String,
    /// The process entries, each one `<value><struct>…</struct></value>\n`.
    entries: Vec<String>,
    /// Everything after the `getAllProcessInfo` array (state, identification, version).
    tail: String,
}

pub fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `target/bench-replies/`, next to the build's own temporary directory.
pub fn replies_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("bench-replies")
}

pub fn recorded() -> Recorded {
    let path = manifest_path(RECORDED);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8(body.clone()).expect("recorded reply is UTF-8");
    let start = text.find(ARRAY_OPEN).expect("multicall array") + ARRAY_OPEN.len();
    let end = start
        + text[start..]
            .find(ARRAY_CLOSE)
            .expect("end of process array");
    let entries: Vec<String> = text[start..end]
        .split_inclusive(ENTRY_CLOSE)
        .map(str::to_owned)
        .collect();
    assert_eq!(
        entries.len(),
        3,
        "the recorded reply holds bad, off and web"
    );
    Recorded {
        head: text[..start].to_owned(),
        tail: text[end..].to_owned(),
        entries,
        body,
        path,
    }
}

impl Recorded {
    fn entry(&self, name: &str) -> &str {
        let marker = format!("<name>name</name>\n<value><string>{name}</string></value>");
        self.entries
            .iter()
            .find(|entry| entry.contains(&marker))
            .unwrap_or_else(|| panic!("no recorded entry for {name}"))
    }

    /// `count` entries built from the recorded ones: mostly running, with some fatal, stopped
    /// and exited, under a handful of groups, as a large supervisord usually looks.
    fn entries_for(&self, count: usize) -> String {
        const GROUPS: [&str; 5] = ["web", "worker", "celery", "nginx", "cron"];
        let mut out = String::new();
        for i in 0..count {
            let group = GROUPS[i % GROUPS.len()];
            let name = format!("{group}_{i:04}");
            let (template, old, state) = match i % 10 {
                0 => ("bad", "bad", None),
                1 => ("off", "off", None),
                2 => ("off", "off", Some((100, "EXITED", "Nov 24 02:49 AM"))),
                _ => ("web", "web", None),
            };
            let mut entry = self
                .entry(template)
                .replace(&format!("/tmp/{old}-"), &format!("/tmp/{name}-"));
            entry = set_member(&entry, "name", &name);
            entry = set_member(&entry, "group", group);
            if let Some((code, statename, description)) = state {
                entry = set_member(&entry, "state", &code.to_string());
                entry = set_member(&entry, "statename", statename);
                entry = set_member(&entry, "exitstatus", "1");
                entry = set_member(&entry, "description", description);
            }
            if template == "web" {
                let pid = 10_000 + i;
                entry = set_member(&entry, "pid", &pid.to_string());
                let uptime = format!(
                    "pid {pid}, uptime {}:{:02}:{:02}",
                    i / 60,
                    i % 60,
                    (i * 7) % 60
                );
                entry = set_member(&entry, "description", &uptime);
            }
            out.push_str(&entry);
        }
        out
    }

    pub fn generate(&self, processes: usize) -> Reply {
        let entries = self.entries_for(processes);
        let multicall = format!("{}{entries}{}", self.head, self.tail);
        let all_process_info = format!(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n\
             <value><array><data>\n{entries}</data></array></value>\n\
             </param>\n</params>\n</methodResponse>\n"
        );
        Reply {
            processes,
            multicall: multicall.into_bytes(),
            all_process_info: all_process_info.into_bytes(),
        }
    }
}

/// Replaces the value of member `key` in one recorded struct, keeping its type tag.
fn set_member(entry: &str, key: &str, value: &str) -> String {
    let marker = format!("<name>{key}</name>\n<value><");
    let at = entry
        .find(&marker)
        .unwrap_or_else(|| panic!("no member {key}"))
        + marker.len();
    let open_end = at + entry[at..].find('>').expect("type tag") + 1;
    let close = open_end + entry[open_end..].find("</").expect("closing tag");
    format!("{}{value}{}", &entry[..open_end], &entry[close..])
}

/// Generates the replies at every size and writes them out; returns them with their paths
/// (`processes_<n>.xml`, `multicall_<n>.xml`).
pub fn write_replies() -> Vec<(Reply, PathBuf, PathBuf)> {
    let recorded = recorded();
    let dir = replies_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    SIZES
        .iter()
        .map(|&n| {
            let reply = recorded.generate(n);
            let processes = dir.join(format!("processes_{n}.xml"));
            let multicall = dir.join(format!("multicall_{n}.xml"));
            for (path, bytes) in [
                (&processes, &reply.all_process_info),
                (&multicall, &reply.multicall),
            ] {
                std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            (reply, processes, multicall)
        })
        .collect()
}

/// The poll path after the transport, shared by both benchmarks.
pub mod pipeline {
    use std::io::Write;
    use std::sync::Arc;

    use flate2::write::GzEncoder;
    use flate2::Compression;
    use supervisord_receiver::metrics::encode_resource_metrics;
    use supervisord_receiver::schema::MetricToggles;
    use supervisord_receiver::scrape::monitored;
    use supervisord_receiver::scrape::outcome::{PollOutcome, TargetIdentity};
    use supervisord_receiver::settings::{Endpoint, Target};
    use supervisord_receiver::supervisor::client::{
        decode_multicall_reply, decode_processes_reply, general_processes_reply, PollError,
        ProcessesReply,
    };
    use supervisord_receiver::vocab::{ProcessInfo, Snapshot};

    /// Arbitrary: nothing reads the timestamps.
    const POLL_TIME_UNIX_NANO: u64 = 1_795_482_488_000_000_000;

    /// A target with the defaults: no filter, Datadog's status mapping.
    pub fn target() -> Target {
        Target {
            resource_attributes: vec![("env".into(), "bench".into())],
            ..Target::new(
                "bench",
                Endpoint::Tcp {
                    tls: false,
                    host: "localhost".into(),
                    port: 9001,
                },
            )
        }
    }

    /// What a poll without multicall does with a `getAllProcessInfo` reply, the one Datadog's
    /// check receives: XML-RPC decoding and the typed process entries.
    pub fn decode_processes(body: &[u8]) -> Vec<ProcessInfo> {
        processes_of(decode_processes_reply(body))
    }

    /// The same through the general decoder alone, to show what the fast path saves.
    pub fn decode_processes_general(body: &[u8]) -> Vec<ProcessInfo> {
        processes_of(general_processes_reply(body))
    }

    fn processes_of(reply: Result<ProcessesReply, PollError>) -> Vec<ProcessInfo> {
        match reply {
            Ok(Ok((processes, _problems))) => processes,
            Ok(Err(fault)) => panic!("fault: {fault}"),
            Err(e) => panic!("decode: {e:?}"),
        }
    }

    /// What a poll of ours does with its reply.
    pub fn decode_multicall(body: &[u8]) -> Snapshot {
        match decode_multicall_reply(body) {
            Ok(Ok(polled)) => polled.snapshot,
            Ok(Err(fault)) => panic!("fault: {fault}"),
            Err(e) => panic!("multicall: {e:?}"),
        }
    }

    /// Filters, status mapping and the OTLP request written as protobuf, for one target: what
    /// the pipeline hands the OTLP exporters.
    pub fn translate(target: &Target, snapshot: Snapshot) -> Vec<u8> {
        let outcome = PollOutcome {
            target: Arc::new(TargetIdentity::of(target)),
            time_unix_nano: POLL_TIME_UNIX_NANO,
            result: Ok(monitored(target, snapshot)),
        };
        let mut out = Vec::new();
        encode_resource_metrics(&outcome, &MetricToggles::default(), &mut out);
        out
    }

    /// gzip as the OTLP exporters apply it (level 1).
    pub fn gzip(body: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        match encoder.write_all(body).and_then(|()| encoder.finish()) {
            Ok(out) => out,
            Err(e) => panic!("gzip: {e}"),
        }
    }
}
