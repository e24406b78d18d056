//! What each program costs, end to end: a real supervisord runs a program that allocates a
//! known amount of memory and keeps two children, and a busy one; the receiver on the same host
//! reads their process trees from /proc and the points arrive at a real OTLP server, checked
//! against what /proc itself says. A target told it is not on this host gets none.

use std::collections::BTreeSet;
use std::fs;

use supervisord_receiver::schema::MetricId;

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::PROCESS;
use crate::testkit::otlp_sink::{self, OtlpSink};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::WAIT;

const MIB: i64 = 1024 * 1024;

/// 64 MiB allocated and touched, under two `sleep` children: a tree of three processes.
fn hog() -> Program {
    Program {
        command: "sh -c 'sleep 600 & sleep 600 & exec python3 -c \"b = bytearray(64 << 20); \
                  import time; time.sleep(600)\"'"
            .into(),
        ..Program::running("hog")
    }
}

fn busy() -> Program {
    Program {
        command: "sh -c 'while :; do :; done'".into(),
        ..Program::running("busy")
    }
}

/// The pids of `pid` and its descendants, from /proc's stat files (the test's own reading).
fn tree(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The fields after the command's closing parenthesis: state, ppid, ...
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        parents.push((child, ppid));
    }
    let mut members = vec![pid];
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        members.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    members
}

fn rss_bytes(pid: u32) -> i64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn local_programs_report_their_process_trees() {
    let svd = Supervisord::start(Options::default().programs(vec![hog(), busy()]));
    svd.wait_for_states(&[("hog", "RUNNING"), ("busy", "RUNNING")], WAIT);
    let sink = OtlpSink::start();
    let cfg = config::native(
        &[
            target("local", &svd.unix_url()),
            target("remote", &svd.http_url()).extra("process_resources: false"),
        ],
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let cfg = format!("{cfg}telemetry:\n  metrics: false\n");
    let path = config::write(svd.dir(), "receiver.yaml", &cfg);
    let receiver = Running::start(&path, &[]);

    let memory = MetricId::ProcessMemoryUsage.name();
    let processes = MetricId::ProcessTreeCount.name();
    let cpu = MetricId::ProcessCpuTime.name();
    // Wait until python has allocated its memory and its children are up.
    let poll = sink.wait_for_poll(
        "local",
        |p| {
            p.value(memory, &[(PROCESS, "hog")])
                .is_some_and(|m| m >= 64 * MIB)
                && p.value(processes, &[(PROCESS, "hog")]) == Some(3)
        },
        WAIT,
    );
    let pid: u32 = svd.ctl(&["pid", "hog"]).trim().parse().unwrap();
    let members = tree(pid);
    assert_eq!(members.len(), 3, "{members:?}");
    let by_proc: i64 = members.iter().map(|m| rss_bytes(*m)).sum();
    let by_receiver = poll.expect(memory, &[(PROCESS, "hog")]);
    // The two readings are a poll apart; python's heap is stable by then.
    let tolerance = by_proc / 10 + 4 * MIB;
    assert!(
        (by_receiver - by_proc).abs() <= tolerance,
        "receiver {by_receiver} B, /proc {by_proc} B"
    );
    assert!(poll.expect(MetricId::ProcessThreadCount.name(), &[(PROCESS, "hog")]) >= 3);
    assert!(
        poll.expect(
            MetricId::ProcessOpenFileDescriptors.name(),
            &[(PROCESS, "hog")]
        ) >= 3,
        "stdin, stdout and stderr at least"
    );
    assert!(poll.expect(MetricId::ProcessMemoryVirtual.name(), &[(PROCESS, "hog")]) >= by_receiver);

    // The busy program's CPU time grows, in user mode, from one poll to the next.
    let user = |p: &otlp_sink::Poll| {
        p.points
            .iter()
            .find(|pt| {
                pt.metric == cpu
                    && pt.attr(PROCESS) == Some("busy")
                    && pt.attr("cpu.mode") == Some("user")
            })
            .map(|pt| pt.value)
    };
    let first = user(&poll).expect("cpu.time of busy");
    let later = sink.wait_for_poll("local", |p| user(p).is_some_and(|v| v > first), WAIT);
    assert!(user(&later).unwrap() > first);

    // The target said to be elsewhere has the same programs and no resource points.
    let remote = sink.wait_for_processes("remote", &["hog", "busy"], WAIT);
    let names: BTreeSet<&str> = remote.points.iter().map(|p| p.metric.as_str()).collect();
    for metric in [memory, processes, cpu] {
        assert!(!names.contains(metric), "{metric} on the remote target");
    }
    drop(receiver);
}
