//! Durations as the OpenTelemetry Collector writes them (Go's syntax): `500ms`, `10s`, `1m`,
//! `1h30m`, `1.5s`. A unit is mandatory so that `15` cannot mean seconds to one reader and
//! milliseconds to another.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("a unit is required, e.g. '{0}s'")]
    MissingUnit(String),
    #[error("must not be negative")]
    Negative,
    #[error("unknown unit '{0}' (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    #[error("expected a number followed by a unit, e.g. '10s' or '1m30s'")]
    Syntax,
    #[error("too large")]
    Overflow,
}

const UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(DurationError::Syntax);
    }
    if s.parse::<f64>().is_ok() {
        return Err(DurationError::MissingUnit(s.to_string()));
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(DurationError::Syntax);
        }
        let value: f64 = number.parse().map_err(|_| DurationError::Syntax)?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(s.to_string()));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| DurationError::Overflow)
}

/// The shortest rendering in the same syntax: `15s`, `1m30s`, `500ms`, `0s`.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if secs == 0 && nanos == 0 {
        return "0s".to_string();
    }
    if secs == 0 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || nanos > 0 {
        if nanos == 0 {
            out.push_str(&format!("{s}s"));
        } else {
            let frac = format!("{:09}", nanos);
            out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn rejects_with_a_reason() {
        assert_eq!(parse("15"), Err(DurationError::MissingUnit("15".into())));
        assert_eq!(
            parse("1m30"),
            Err(DurationError::MissingUnit("1m30".into()))
        );
        assert_eq!(parse("-5s"), Err(DurationError::Negative));
        assert_eq!(
            parse("5 sec"),
            Err(DurationError::UnknownUnit(" sec".into()))
        );
        assert_eq!(parse("5d"), Err(DurationError::UnknownUnit("d".into())));
        assert_eq!(parse("s"), Err(DurationError::Syntax));
        assert_eq!(parse(""), Err(DurationError::Syntax));
        assert_eq!(parse("1..2s"), Err(DurationError::Syntax));
        assert_eq!(
            parse("99999999999999999999999h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_secs(15)), "15s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
