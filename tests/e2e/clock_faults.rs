//! Faults of supervisord's clock: a real supervisord whose clock libfaketime moves
//! (`testkit::faketime`: an hour ahead, an hour behind, an hour back while its programs run),
//! polled every second by the real receiver. What the real OTLP server received must show
//! uptimes that are never negative and keep growing across the step, `supervisord.clock.offset`
//! at the skew, state changes made during the skew timed within the polls that saw them, and
//! one warning per target and kind in the receiver's log.

use std::time::Duration;

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::expect::PROCESS;
use crate::testkit::faketime::FakeClock;
use crate::testkit::otlp_sink::{all_records, polls, OtlpSink, Poll, ReceivedRequest, Record};
use crate::testkit::receiver::Running;
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::WAIT;

const HOUR: i64 = 3_600;
const OFFSET: &str = "supervisord.clock.offset";
const UPTIME: &str = "supervisord.process.uptime";
const STATE_CHANGE: &str = "supervisord.process.state_change";
const SKEWED: &str = "supervisord_clock_skewed";
const STEPPED_BACK: &str = "supervisord_clock_stepped_back";

/// A supervisord on `clock` with two programs: `steady` runs throughout, `web` is stopped and
/// started during the tests.
fn supervisord_on(clock: &FakeClock) -> Supervisord {
    let programs = vec![Program::running("steady"), Program::running("web")];
    let svd = Supervisord::start(clock.apply(Options::default().tcp_only().programs(programs)));
    svd.wait_for_states(&[("steady", "RUNNING"), ("web", "RUNNING")], WAIT);
    svd
}

/// The receiver polling every second the named supervisords, sending to `sink`.
fn receiver(sink: &OtlpSink, targets: &[(&str, &Supervisord)]) -> Running {
    let yaml: Vec<_> = targets
        .iter()
        .map(|(name, svd)| target(name, &svd.http_url()))
        .collect();
    let text = config::native(
        &yaml,
        &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
    );
    let text = format!("{text}telemetry:\n  metrics: false\n");
    let path = config::write(targets[0].1.dir(), "receiver.yaml", &text);
    Running::start(&path, &[])
}

/// Stops `web` and starts it again, leaving time for a poll to see it stopped, so the state
/// changes carry supervisord's stop time and then its start time.
fn stop_and_start_web(svd: &Supervisord) {
    let out = svd.ctl(&["stop", "web"]);
    assert!(out.contains("stopped"), "{out}");
    std::thread::sleep(Duration::from_millis(1_500));
    let out = svd.ctl(&["start", "web"]);
    assert!(out.contains("started"), "{out}");
}

/// The state-change records of `web` on target `server`.
fn web_records<'a>(records: &'a [Record], server: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| {
            r.server() == Some(server)
                && r.event_name == STATE_CHANGE
                && r.attr(PROCESS) == Some("web")
        })
        .collect()
}

/// `web` on `server` was seen stopped, then running again.
fn web_stopped_and_started(records: &[Record], server: &str) -> bool {
    let web = web_records(records, server);
    let stopped = web.iter().position(|r| r.attr("state") == Some("STOPPED"));
    stopped.is_some_and(|i| web[i..].iter().any(|r| r.attr("state") == Some("RUNNING")))
}

/// Waits for `web` on each server to be seen stopped and started, and for the metrics of the
/// polls that saw it; returns the records and the metrics.
fn wait_for_web_changes(sink: &OtlpSink, servers: &[&str]) -> (Vec<Record>, Vec<ReceivedRequest>) {
    let logs = sink.wait_for_logs(
        |logs| {
            let records = all_records(logs);
            servers
                .iter()
                .all(|server| web_stopped_and_started(&records, server))
        },
        WAIT,
    );
    let records = all_records(&logs);
    let last_seen = records
        .iter()
        .map(|r| r.observed_time_unix_nano)
        .max()
        .unwrap_or(0);
    let metrics = sink.wait_for(
        |requests| {
            servers
                .iter()
                .all(|server| polls(requests, server).iter().any(|p| time(p) >= last_seen))
        },
        WAIT,
    );
    (records, metrics)
}

/// Every point of a poll shares its time.
fn time(poll: &Poll) -> u64 {
    poll.points.first().map_or(0, |p| p.time_unix_nano)
}

/// Each state-change record of `server` lies between the poll that found it (its observed
/// time) and the poll before, whatever supervisord's clock said.
fn assert_within_observation(records: &[Record], metrics: &[ReceivedRequest], server: &str) {
    let times: Vec<u64> = polls(metrics, server).iter().map(time).collect();
    let changes: Vec<_> = records
        .iter()
        .filter(|r| r.server() == Some(server) && r.event_name == STATE_CHANGE)
        .collect();
    assert!(!changes.is_empty(), "{server}: no state change");
    for record in changes {
        let found_by = times
            .iter()
            .position(|t| *t == record.observed_time_unix_nano)
            .unwrap_or_else(|| {
                panic!("{server}: no poll at the record's observed time: {record:?}")
            });
        assert!(
            found_by > 0,
            "{server}: a change at the first poll: {record:?}"
        );
        let since = times[found_by - 1];
        assert!(
            (since..=record.observed_time_unix_nano).contains(&record.time_unix_nano),
            "{server}: {} is timed {:.1} s after the poll that found it (the previous poll \
             {:.1} s before it)",
            record.body,
            (record.time_unix_nano as f64 - record.observed_time_unix_nano as f64) / 1e9,
            (record.observed_time_unix_nano - since) as f64 / 1e9,
        );
    }
}

/// `(offset, uptime of steady)` of every poll of `server` that listed processes, oldest first.
fn readings(metrics: &[ReceivedRequest], server: &str) -> Vec<(i64, i64)> {
    let steady = [(PROCESS, "steady")];
    polls(metrics, server)
        .iter()
        .filter(|poll| !poll.metric(UPTIME).is_empty())
        .map(|poll| (poll.expect(OFFSET, &[]), poll.expect(UPTIME, &steady)))
        .collect()
}

/// The receiver's warnings of kind `event` about `server`.
fn warnings(receiver: &Running, event: &str, server: &str) -> usize {
    let name = format!("target_name=\"{server}\"");
    receiver
        .stderr_so_far()
        .lines()
        .filter(|line| line.contains(" WARN ") && line.contains(event) && line.contains(&name))
        .count()
}

#[test]
fn a_supervisord_an_hour_ahead_or_behind_is_measured_and_its_changes_land_in_the_polls() {
    let ahead_clock = FakeClock::new(HOUR);
    let behind_clock = FakeClock::new(-HOUR);
    let ahead = supervisord_on(&ahead_clock);
    let behind = supervisord_on(&behind_clock);
    let sink = OtlpSink::start();
    let receiver = receiver(&sink, &[("ahead", &ahead), ("behind", &behind)]);
    for server in ["ahead", "behind"] {
        sink.wait_for_processes(server, &["steady", "web"], WAIT);
    }

    // Changes made while the clocks are off carry supervisord's start and stop times.
    stop_and_start_web(&ahead);
    stop_and_start_web(&behind);
    let (records, metrics) = wait_for_web_changes(&sink, &["ahead", "behind"]);

    for (server, skew) in [("ahead", HOUR), ("behind", -HOUR)] {
        assert_within_observation(&records, &metrics, server);
        let readings = readings(&metrics, server);
        assert!(readings.len() >= 3, "{server}: {readings:?}");
        for (offset, uptime) in &readings {
            assert!(
                (offset - skew).abs() <= 2,
                "{server}: offset {offset}, not {skew}"
            );
            assert!(*uptime >= 0, "{server}: uptime {uptime}");
        }
        assert!(
            readings.windows(2).all(|w| w[0].1 <= w[1].1),
            "{server}: uptime went back: {readings:?}"
        );
        assert_eq!(
            warnings(&receiver, SKEWED, server),
            1,
            "{server}: one warning for the skew, after {} polls:\n{}",
            readings.len(),
            receiver.stderr_so_far()
        );
        assert_eq!(warnings(&receiver, STEPPED_BACK, server), 0);
    }
}

#[test]
fn a_clock_stepping_back_an_hour_keeps_uptimes_growing_and_changes_in_the_polls() {
    let clock = FakeClock::new(0);
    let svd = supervisord_on(&clock);
    let sink = OtlpSink::start();
    let receiver = receiver(&sink, &[("stepping", &svd)]);
    let steady = [(PROCESS, "steady")];
    let before = sink.wait_for_poll(
        "stepping",
        |poll| {
            poll.value(UPTIME, &steady)
                .is_some_and(|uptime| uptime >= 2)
        },
        WAIT,
    );
    assert!(
        before.expect(OFFSET, &[]).abs() <= 1,
        "{}",
        before.describe()
    );

    // An hour back: the programs' start times are now an hour in supervisord's future.
    clock.set(-HOUR);
    sink.wait_for_poll(
        "stepping",
        |poll| {
            poll.value(OFFSET, &[])
                .is_some_and(|o| (o + HOUR).abs() <= 2)
        },
        WAIT,
    );
    stop_and_start_web(&svd);
    let (records, _) = wait_for_web_changes(&sink, &["stepping"]);
    // A few more polls of the steady program after the step.
    let last = readings(&sink.requests(), "stepping")
        .last()
        .map_or(0, |(_, uptime)| *uptime);
    let metrics = sink.wait_for(
        |requests| {
            readings(requests, "stepping")
                .last()
                .is_some_and(|(_, uptime)| *uptime >= last + 2)
        },
        WAIT,
    );

    assert_within_observation(&records, &metrics, "stepping");
    let readings = readings(&metrics, "stepping");
    let step = readings
        .iter()
        .position(|(offset, _)| *offset < -60)
        .unwrap_or_else(|| panic!("no poll after the step: {readings:?}"));
    assert!(step > 0, "{readings:?}");
    for (i, (offset, uptime)) in readings.iter().enumerate() {
        let skew = if i < step { 0 } else { -HOUR };
        assert!(
            (offset - skew).abs() <= 2,
            "poll {i}: offset {offset}: {readings:?}"
        );
        assert!(*uptime >= 0, "poll {i}: uptime {uptime}: {readings:?}");
    }
    assert!(
        readings.windows(2).all(|w| w[0].1 <= w[1].1),
        "uptime went back: {readings:?}"
    );
    assert!(
        readings[readings.len() - 1].1 > readings[step - 1].1,
        "uptime stopped growing at the step: {readings:?}"
    );
    let log = receiver.stderr_so_far();
    assert_eq!(warnings(&receiver, STEPPED_BACK, "stepping"), 1, "{log}");
    assert_eq!(warnings(&receiver, SKEWED, "stepping"), 1, "{log}");
}
