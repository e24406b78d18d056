//! A native target's `output:` section: the shorthand, every key, and the errors that name
//! the key.

use super::*;
use supervisord_receiver::settings::OutputStream;

fn output_of(yaml: &str) -> Option<supervisord_receiver::settings::OutputSettings> {
    let text = format!("{TARGET}    output:{yaml}\n");
    ok(&text).targets[0].output.clone()
}

#[test]
fn output_is_off_unless_asked_and_true_takes_the_defaults() {
    assert!(ok(TARGET).targets[0].output.is_none());
    assert!(output_of(" false").is_none());
    let on = output_of(" true").expect("on");
    assert_eq!(on.streams, [OutputStream::Stdout, OutputStream::Stderr]);
    assert!(!on.main_log);
    assert_eq!(on.max_bytes_per_poll, 256 * 1024);
    assert_eq!(on.max_backlog_bytes, 8 * 1024 * 1024);
    assert_eq!(on.max_line_bytes, 16 * 1024);
    assert_eq!(on.partial_line_timeout, Duration::from_secs(5));
}

#[test]
fn every_output_key_is_read() {
    let out = output_of(
        "\n      include: {groups: [web]}\n      exclude: {names: [noisy]}\n      \
         streams: [stderr]\n      main_log: true\n      max_bytes_per_poll: 64KiB\n      \
         max_backlog_bytes: 1MiB\n      max_line_bytes: 2048\n      partial_line_timeout: 500ms",
    )
    .expect("on");
    assert_eq!(out.streams, [OutputStream::Stderr]);
    assert!(out.main_log);
    assert_eq!(
        (
            out.max_bytes_per_poll,
            out.max_backlog_bytes,
            out.max_line_bytes
        ),
        (64 * 1024, 1024 * 1024, 2048)
    );
    assert_eq!(out.partial_line_timeout, Duration::from_millis(500));
    let web = ProcessInfo {
        name: "web_0".into(),
        group: "web".into(),
        ..Default::default()
    };
    let noisy = ProcessInfo {
        name: "noisy".into(),
        group: "web".into(),
        ..Default::default()
    };
    let other = ProcessInfo {
        name: "db".into(),
        group: "db".into(),
        ..Default::default()
    };
    assert!(out.filter.monitors(&web));
    assert!(!out.filter.monitors(&noisy));
    assert!(!out.filter.monitors(&other));
}

#[test]
fn output_problems_name_the_key() {
    let messages_of = |yaml: &str| messages(&format!("{TARGET}    output:{yaml}\n"));
    assert_eq!(
        messages_of(" 3"),
        ["targets[0].output: expected true, false or a mapping, found a number (3)"]
    );
    assert_eq!(
        messages_of("\n      streams: [stdout, stdin, stdout]"),
        [
            "targets[0].output.streams: unknown stream 'stdin': expected stdout or stderr",
            "targets[0].output.streams: 'stdout' is listed twice",
        ]
    );
    assert_eq!(
        messages_of("\n      max_bytes_per_poll: 0"),
        ["targets[0].output.max_bytes_per_poll: must be greater than 0"]
    );
    assert_eq!(
        messages_of("\n      max_backlog_bytes: 1KiB"),
        ["targets[0].output.max_backlog_bytes: max_backlog_bytes (1024) is less than max_bytes_per_poll (262144): every poll would skip"]
    );
    assert_eq!(
        messages_of("\n      max_line_bytes: 4MB"),
        ["targets[0].output.max_line_bytes: invalid size '4MB': unknown unit 'MB' (use KiB, MiB or GiB); did you mean '4MiB'?"]
    );
    assert_eq!(
        messages_of("\n      stream: [stdout]"),
        ["targets[0].output.stream: unknown key 'stream'; did you mean 'streams'?"]
    );
}
