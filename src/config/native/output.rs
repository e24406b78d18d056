//! A native target's `output:` section: which programs' output is read, and the limits of
//! the tail (see `crate::scrape::output`).
//!
//! ```yaml
//! output: true                  # every monitored program, both streams, the defaults
//! output:
//!   include: { groups: [web] }  # the same filters as the target's own
//!   exclude: { names: [noisy] }
//!   streams: [stdout, stderr]
//!   main_log: false             # supervisord's own log too
//!   max_bytes_per_poll: 256KiB  # per program and stream
//!   max_backlog_bytes: 8MiB     # beyond it, the oldest output is skipped (and said so)
//!   max_line_bytes: 16KiB       # a longer line is cut and marked
//!   partial_line_timeout: 5s    # a line without its newline goes after this long
//! ```

use serde_yaml::Value;

use crate::config::error::{KeyPath, Report};
use crate::config::exporters::delivery::size;
use crate::config::value::{boolean, duration, mapping, quote, string_list, type_problem};
use crate::settings::{OutputSettings, OutputStream};

const OUTPUT_KEYS: &[&str] = &[
    "include",
    "exclude",
    "streams",
    "main_log",
    "max_bytes_per_poll",
    "max_backlog_bytes",
    "max_line_bytes",
    "partial_line_timeout",
];

/// `None` when output is off (`false`) or the section is invalid (the problem is reported).
pub(super) fn output(report: &mut Report, path: &KeyPath, v: &Value) -> Option<OutputSettings> {
    let mut out = OutputSettings::default();
    match v {
        Value::Bool(on) => return on.then_some(out),
        Value::String(s) if s == "true" => return Some(out),
        Value::String(s) if s == "false" => return None,
        Value::Mapping(_) => {}
        _ => {
            type_problem(report, path, "true, false or a mapping", v);
            return None;
        }
    }
    let f = mapping(report, path, v)?;
    f.reject_unknown(report, OUTPUT_KEYS);
    out.filter = super::filter(report, &f);
    if let Some(v) = f.get_set("streams") {
        let path = f.path("streams");
        if let Some(names) = string_list(report, &path, v) {
            let mut streams = Vec::new();
            for name in names {
                match OutputStream::ALL.into_iter().find(|s| s.name() == name) {
                    Some(stream) if !streams.contains(&stream) => streams.push(stream),
                    Some(_) => report.problem(&path, format!("{} is listed twice", quote(&name))),
                    None => report.problem(
                        &path,
                        format!("unknown stream {}: expected stdout or stderr", quote(&name)),
                    ),
                }
            }
            if streams.is_empty() {
                report.problem(&path, "must list stdout, stderr or both");
            }
            streams.sort();
            out.streams = streams;
        }
    }
    if let Some(v) = f.get_set("main_log") {
        out.main_log = boolean(report, &f.path("main_log"), v).unwrap_or(false);
    }
    let positive_size = |report: &mut Report, key: &str| {
        let path = f.path(key);
        let n = size(report, &path, f.get_set(key)?)?;
        if n == 0 {
            report.problem(&path, "must be greater than 0");
            return None;
        }
        Some(n)
    };
    if let Some(n) = positive_size(report, "max_bytes_per_poll") {
        out.max_bytes_per_poll = n;
    }
    if let Some(n) = positive_size(report, "max_backlog_bytes") {
        out.max_backlog_bytes = n;
    }
    if let Some(n) = positive_size(report, "max_line_bytes") {
        out.max_line_bytes = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if out.max_backlog_bytes < out.max_bytes_per_poll {
        let key = if f.get_set("max_backlog_bytes").is_some() {
            "max_backlog_bytes"
        } else {
            "max_bytes_per_poll"
        };
        report.problem(
            &f.path(key),
            format!(
                "max_backlog_bytes ({}) is less than max_bytes_per_poll ({}): every poll would \
                 skip",
                out.max_backlog_bytes, out.max_bytes_per_poll
            ),
        );
    }
    if let Some(v) = f.get_set("partial_line_timeout") {
        let path = f.path("partial_line_timeout");
        if let Some(d) = duration(report, &path, v) {
            out.partial_line_timeout = d;
        }
    }
    Some(out)
}
