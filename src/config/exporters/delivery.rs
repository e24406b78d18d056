//! The delivery keys of an `otlp` exporter, named as in the OpenTelemetry Collector's
//! exporterhelper: `sending_queue`, `retry_on_failure` and `max_request_size`.

use serde_yaml::Value;

use crate::config::error::{KeyPath, Report};
use crate::config::value::{self, mapping, nonblank, quote, type_problem, Fields};
use crate::settings::{DeliverySettings, QueueSettings, RetrySettings};

const QUEUE_KEYS: &[&str] = &[
    "enabled",
    "queue_size_batches",
    "queue_size_bytes",
    "storage",
];

const RETRY_KEYS: &[&str] = &[
    "enabled",
    "initial_interval",
    "max_interval",
    "max_elapsed_time",
    "multiplier",
    "randomization_factor",
];

/// A request must hold at least one target's `can_connect` with room to spare.
const MIN_REQUEST_SIZE: u64 = 1024;

/// Reads the delivery keys of one `otlp` mapping; absent keys keep the defaults.
pub fn read(report: &mut Report, f: &Fields<'_>) -> DeliverySettings {
    let defaults = DeliverySettings::default();
    let max_request_size = match f.get_set("max_request_size") {
        None => defaults.max_request_size,
        Some(v) => {
            let path = f.path("max_request_size");
            match size(report, &path, v) {
                Some(n) if n < MIN_REQUEST_SIZE => {
                    report.problem(&path, format!("must be at least 1KiB, found {n} bytes"));
                    defaults.max_request_size
                }
                Some(n) => n,
                None => defaults.max_request_size,
            }
        }
    };
    let queue = match f.get_set("sending_queue") {
        None => defaults.queue,
        Some(v) => queue(report, &f.path("sending_queue"), v, max_request_size),
    };
    let retry = match f.get_set("retry_on_failure") {
        None => defaults.retry,
        Some(v) => retry(report, &f.path("retry_on_failure"), v),
    };
    DeliverySettings {
        queue,
        retry,
        max_request_size,
    }
}

fn queue(report: &mut Report, path: &KeyPath, v: &Value, max_request_size: u64) -> QueueSettings {
    let mut out = QueueSettings::default();
    let Some(f) = mapping(report, path, v) else {
        return out;
    };
    f.reject_unknown(report, QUEUE_KEYS);
    if let Some(v) = f.get_set("enabled") {
        out.enabled = value::boolean(report, &f.path("enabled"), v).unwrap_or(true);
    }
    if let Some(v) = f.get_set("queue_size_batches") {
        let path = f.path("queue_size_batches");
        match integer(report, &path, v) {
            Some(0) => report.problem(&path, "must be at least 1"),
            Some(n) => out.max_batches = n,
            None => {}
        }
    }
    if let Some(v) = f.get_set("queue_size_bytes") {
        let path = f.path("queue_size_bytes");
        if let Some(n) = size(report, &path, v) {
            out.max_bytes = n;
            if n < max_request_size {
                report.problem(
                    &path,
                    format!(
                        "{} is less than max_request_size ({}): one full request could never \
                         be queued",
                        show_size(n),
                        show_size(max_request_size)
                    ),
                );
            }
        }
    }
    if let Some(v) = f.get_set("storage") {
        out.storage = nonblank(report, &f.path("storage"), v).map(Into::into);
        if !out.enabled && out.storage.is_some() {
            report.problem(
                &f.path("storage"),
                "needs the queue enabled (enabled: false keeps nothing)",
            );
        }
    }
    out
}

fn retry(report: &mut Report, path: &KeyPath, v: &Value) -> RetrySettings {
    let mut out = RetrySettings::default();
    let Some(f) = mapping(report, path, v) else {
        return out;
    };
    f.reject_unknown(report, RETRY_KEYS);
    if let Some(v) = f.get_set("enabled") {
        out.enabled = value::boolean(report, &f.path("enabled"), v).unwrap_or(true);
    }
    let duration = |report: &mut Report, key: &str, allow_zero: bool| {
        let v = f.get_set(key)?;
        let path = f.path(key);
        let d = value::duration(report, &path, v)?;
        if d.is_zero() && !allow_zero {
            report.problem(&path, "must be greater than 0s");
            return None;
        }
        Some(d)
    };
    if let Some(d) = duration(report, "initial_interval", false) {
        out.initial_interval = d;
    }
    if let Some(d) = duration(report, "max_interval", false) {
        out.max_interval = d;
    }
    if let Some(d) = duration(report, "max_elapsed_time", true) {
        out.max_elapsed_time = d;
    }
    if out.max_interval < out.initial_interval {
        report.problem(
            &f.path("max_interval"),
            format!(
                "{} is less than initial_interval ({})",
                crate::config::duration::format(out.max_interval),
                crate::config::duration::format(out.initial_interval)
            ),
        );
    }
    if let Some(v) = f.get_set("multiplier") {
        let path = f.path("multiplier");
        match float(report, &path, v) {
            Some(m) if (1.0..=1000.0).contains(&m) => out.multiplier = m,
            Some(m) => report.problem(&path, format!("must be between 1 and 1000, found {m}")),
            None => {}
        }
    }
    if let Some(v) = f.get_set("randomization_factor") {
        let path = f.path("randomization_factor");
        match float(report, &path, v) {
            Some(r) if (0.0..=1.0).contains(&r) => out.randomization_factor = r,
            Some(r) => report.problem(&path, format!("must be between 0 and 1, found {r}")),
            None => {}
        }
    }
    out
}

/// A non-negative integer; the digit strings `${env:...}` produces are accepted too.
fn integer(report: &mut Report, path: &KeyPath, v: &Value) -> Option<u64> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    if parsed.is_none() {
        type_problem(report, path, "a whole number", v);
    }
    parsed
}

fn float(report: &mut Report, path: &KeyPath, v: &Value) -> Option<f64> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite());
    if parsed.is_none() {
        type_problem(report, path, "a number", v);
    }
    parsed
}

/// A byte size: a plain number of bytes or one with a binary unit (`64MiB`).
pub(crate) fn size(report: &mut Report, path: &KeyPath, v: &Value) -> Option<u64> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => {
            type_problem(report, path, "a size such as '4MiB'", v);
            return None;
        }
    };
    match parse_size(&text) {
        Ok(n) => Some(n),
        Err(reason) => {
            report.problem(path, format!("invalid size {}: {reason}", quote(&text)));
            None
        }
    }
}

const UNITS: [(&str, u64); 5] = [
    ("", 1),
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

/// `4194304`, `4096KiB`, `4 MiB`, `1GiB`. Decimal units (`MB`) are refused rather than guessed:
/// they would be 5% off from what a reader of `MiB` expects.
fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let unit = unit.trim();
    if number.is_empty() {
        return Err(
            "expected a whole number of bytes, optionally with a unit KiB, MiB or GiB \
                    (e.g. '4MiB')"
                .into(),
        );
    }
    let Some(scale) = UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s) else {
        let binary = match unit.to_ascii_lowercase().as_str() {
            "k" | "kb" | "kib" => Some("KiB"),
            "m" | "mb" | "mib" => Some("MiB"),
            "g" | "gb" | "gib" => Some("GiB"),
            _ => None,
        };
        let mut reason = format!("unknown unit {} (use KiB, MiB or GiB)", quote(unit));
        if let Some(b) = binary {
            reason.push_str(&format!("; did you mean '{number}{b}'?"));
        }
        return Err(reason);
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| "too large".to_string())
}

/// The shortest exact rendering: `64MiB`, `1536KiB`, `1000`.
fn show_size(n: u64) -> String {
    for (unit, scale) in UNITS.iter().rev() {
        if *scale > 1 && n >= *scale && n.is_multiple_of(*scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::locate::Positions;

    fn read_yaml(text: &str) -> (DeliverySettings, Vec<String>) {
        let v: Value = serde_yaml::from_str(text).unwrap();
        let mut report = Report::default();
        let root = KeyPath::root().key("otlp");
        let f = mapping(&mut report, &root, &v).unwrap();
        let out = read(&mut report, &f);
        let problems = report
            .into_problems(&Positions::default())
            .into_iter()
            .map(|p| format!("{}: {}", p.key_path, p.message))
            .collect();
        (out, problems)
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("4194304"), Ok(4 << 20));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size(" 64 MiB "), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(
            parse_size("64MB"),
            Err("unknown unit 'MB' (use KiB, MiB or GiB); did you mean '64MiB'?".into())
        );
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert_eq!(parse_size("99999999999999GiB"), Err("too large".into()));
        assert_eq!(show_size(64 << 20), "64MiB");
        assert_eq!(show_size(1536 << 10), "1536KiB");
        assert_eq!(show_size(1000), "1000");
    }

    #[test]
    fn defaults_are_the_collectors() {
        let (d, problems) = read_yaml("{}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(d, DeliverySettings::default());
        assert!(d.queue.enabled);
        assert_eq!((d.queue.max_batches, d.queue.max_bytes), (1000, 64 << 20));
        assert_eq!(d.queue.storage, None);
        let r = d.retry;
        assert!(r.enabled);
        assert_eq!(r.initial_interval, Duration::from_secs(5));
        assert_eq!(r.max_interval, Duration::from_secs(30));
        assert_eq!(r.max_elapsed_time, Duration::from_secs(300));
        assert_eq!((r.multiplier, r.randomization_factor), (1.5, 0.5));
        assert_eq!(d.max_request_size, 4 << 20);
    }

    #[test]
    fn every_key_is_read() {
        let (d, problems) = read_yaml(
            "sending_queue: {enabled: true, queue_size_batches: 50, queue_size_bytes: 8MiB, \
             storage: /var/lib/q}\n\
             retry_on_failure: {enabled: false, initial_interval: 100ms, max_interval: 1s, \
             max_elapsed_time: 0s, multiplier: 2, randomization_factor: 0}\n\
             max_request_size: '512KiB'\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(d.queue.max_batches, 50);
        assert_eq!(d.queue.max_bytes, 8 << 20);
        assert_eq!(d.queue.storage.as_deref(), Some("/var/lib/q".as_ref()));
        assert!(!d.retry.enabled);
        assert_eq!(d.retry.initial_interval, Duration::from_millis(100));
        assert_eq!(d.retry.max_interval, Duration::from_secs(1));
        assert_eq!(d.retry.max_elapsed_time, Duration::ZERO);
        assert_eq!(
            (d.retry.multiplier, d.retry.randomization_factor),
            (2.0, 0.0)
        );
        assert_eq!(d.max_request_size, 512 << 10);
    }

    #[test]
    fn problems_name_the_key_and_quote_the_value() {
        let (_, problems) = read_yaml(
            "sending_queue: {queue_size_batches: 0, queue_size_bytes: 64MB, sotrage: x}\n\
             retry_on_failure: {initial_interval: 10s, max_interval: 1s, multiplier: 0.5, \
             randomization_factor: 2, max_elapsed_time: 5}\n\
             max_request_size: 100\n",
        );
        assert_eq!(
            problems,
            [
                "otlp.max_request_size: must be at least 1KiB, found 100 bytes",
                "otlp.sending_queue.sotrage: unknown key 'sotrage'; did you mean 'storage'?",
                "otlp.sending_queue.queue_size_batches: must be at least 1",
                "otlp.sending_queue.queue_size_bytes: invalid size '64MB': unknown unit 'MB' \
                 (use KiB, MiB or GiB); did you mean '64MiB'?",
                "otlp.retry_on_failure.max_elapsed_time: invalid duration '5': a unit is \
                 required, e.g. '5s'",
                "otlp.retry_on_failure.max_interval: 1s is less than initial_interval (10s)",
                "otlp.retry_on_failure.multiplier: must be between 1 and 1000, found 0.5",
                "otlp.retry_on_failure.randomization_factor: must be between 0 and 1, found 2",
            ]
        );
    }

    #[test]
    fn the_queue_must_hold_one_full_request() {
        let (_, problems) =
            read_yaml("max_request_size: 8MiB\nsending_queue: {queue_size_bytes: 4MiB}\n");
        assert_eq!(
            problems,
            [
                "otlp.sending_queue.queue_size_bytes: 4MiB is less than max_request_size (8MiB): \
              one full request could never be queued"
            ]
        );
        let (_, problems) = read_yaml("sending_queue: {enabled: false, storage: /var/lib/q}\n");
        assert_eq!(
            problems,
            ["otlp.sending_queue.storage: needs the queue enabled (enabled: false keeps nothing)"]
        );
        let (_, problems) = read_yaml("sending_queue: {queue_size_batches: ten}\n");
        assert_eq!(
            problems,
            ["otlp.sending_queue.queue_size_batches: expected a whole number, found a string 'ten'"]
        );
    }
}
