//! The OTLP exporter from `OTEL_EXPORTER_OTLP_*` variables, per the OpenTelemetry exporter
//! specification, used when the file configures no exporter (always so for Datadog's format).
//!
//! Read: `PROTOCOL`, `ENDPOINT`, `HEADERS`, `COMPRESSION`, `TIMEOUT`, `CERTIFICATE` (a CA
//! file, as the spec defines it), `CLIENT_CERTIFICATE` and `CLIENT_KEY` (mutual TLS, both or
//! neither). Signal-specific variables (`OTEL_EXPORTER_OTLP_METRICS_*`) win
//! over the generic ones; an empty variable counts as unset. With nothing set, the result is what any OTel SDK does:
//! OTLP over http/protobuf to `http://localhost:4318/v1/metrics`.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::endpoint::{append_signal_path, parse_otlp_url, redact};
use crate::config::error::Report;
use crate::config::expand::EnvLookup;
use crate::config::value::quote;
use crate::settings::{DeliverySettings, OtlpProtocol, OtlpSettings, TlsSettings};

const PREFIX: &str = "OTEL_EXPORTER_OTLP_";
const SIGNAL_PREFIX: &str = "OTEL_EXPORTER_OTLP_METRICS_";

/// Every variable this module reads (suffixes after the two prefixes).
pub const SUFFIXES: [&str; 8] = [
    "PROTOCOL",
    "ENDPOINT",
    "HEADERS",
    "COMPRESSION",
    "TIMEOUT",
    "CERTIFICATE",
    "CLIENT_CERTIFICATE",
    "CLIENT_KEY",
];

/// The set variable for one setting, signal-specific first: `(name, value)`.
fn lookup(env: EnvLookup<'_>, suffix: &str) -> Option<(String, String)> {
    [SIGNAL_PREFIX, PREFIX].into_iter().find_map(|prefix| {
        let name = format!("{prefix}{suffix}");
        env(&name).filter(|v| !v.is_empty()).map(|v| (name, v))
    })
}

/// The names of the `OTEL_EXPORTER_OTLP_*` variables that are set.
pub fn set_variables(env: EnvLookup<'_>) -> Vec<String> {
    SUFFIXES
        .iter()
        .flat_map(|s| [format!("{SIGNAL_PREFIX}{s}"), format!("{PREFIX}{s}")])
        .filter(|name| env(name).is_some_and(|v| !v.is_empty()))
        .collect()
}

pub fn from_env(env: EnvLookup<'_>, report: &mut Report) -> OtlpSettings {
    let protocol = match lookup(env, "PROTOCOL") {
        None => OtlpProtocol::HttpProtobuf,
        Some((name, value)) => match value.trim() {
            "grpc" => OtlpProtocol::Grpc,
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            "http/json" => OtlpProtocol::HttpJson,
            _ => {
                report.env_problem(
                    &name,
                    format!(
                        "invalid protocol {}: expected grpc, http/protobuf or http/json",
                        quote(&value)
                    ),
                );
                OtlpProtocol::HttpProtobuf
            }
        },
    };
    let endpoint = endpoint(env, protocol, report);
    let headers = match lookup(env, "HEADERS") {
        None => Vec::new(),
        Some((name, value)) => match parse_headers(&value) {
            Ok(h) => h,
            Err(e) => {
                report.env_problem(&name, e);
                Vec::new()
            }
        },
    };
    let gzip = match lookup(env, "COMPRESSION") {
        None => false,
        Some((name, value)) => match value.trim() {
            "gzip" => true,
            "none" => false,
            _ => {
                report.env_problem(
                    &name,
                    format!(
                        "invalid compression {}: expected gzip or none",
                        quote(&value)
                    ),
                );
                false
            }
        },
    };
    let timeout = match lookup(env, "TIMEOUT") {
        None => Duration::from_secs(10),
        Some((name, value)) => match value.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                report.env_problem(
                    &name,
                    format!(
                        "invalid timeout {}: expected a positive number of milliseconds",
                        quote(&value)
                    ),
                );
                Duration::from_secs(10)
            }
        },
    };
    let tls = tls(env, report);
    OtlpSettings {
        protocol,
        endpoint,
        headers,
        gzip,
        timeout,
        name: "otlp".to_string(),
        delivery: DeliverySettings::default(),
        tls,
    }
}

/// `CERTIFICATE`, `CLIENT_CERTIFICATE`, `CLIENT_KEY`: files that must exist; they are parsed
/// when the exporter is built.
fn tls(env: EnvLookup<'_>, report: &mut Report) -> TlsSettings {
    let mut file = |suffix: &str| {
        lookup(env, suffix).map(|(name, file)| {
            if let Err(e) = std::fs::metadata(&file) {
                report.env_problem(&name, format!("cannot read {}: {e}", quote(&file)));
            }
            (name, PathBuf::from(file))
        })
    };
    let ca_file = file("CERTIFICATE").map(|(_, path)| path);
    let cert_file = file("CLIENT_CERTIFICATE");
    let key_file = file("CLIENT_KEY");
    match (&cert_file, &key_file) {
        (Some((name, _)), None) => report.env_problem(
            name,
            format!("set {PREFIX}CLIENT_KEY (or {SIGNAL_PREFIX}CLIENT_KEY) too, or neither"),
        ),
        (None, Some((name, _))) => report.env_problem(
            name,
            format!(
                "set {PREFIX}CLIENT_CERTIFICATE (or {SIGNAL_PREFIX}CLIENT_CERTIFICATE) too, or \
                 neither"
            ),
        ),
        _ => {}
    }
    TlsSettings {
        ca_file,
        cert_file: cert_file.map(|(_, path)| path),
        key_file: key_file.map(|(_, path)| path),
        ..TlsSettings::default()
    }
}

fn endpoint(env: EnvLookup<'_>, protocol: OtlpProtocol, report: &mut Report) -> String {
    let http = protocol != OtlpProtocol::Grpc;
    if let Some(value) = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").filter(|v| !v.is_empty()) {
        if let Err(e) = parse_otlp_url(&value) {
            let name = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
            let shown = quote(&redact(&value));
            report.env_problem(name, format!("invalid endpoint {shown}: {e}"));
        }
        return value;
    }
    let default = if http {
        "http://localhost:4318"
    } else {
        "http://localhost:4317"
    };
    let base = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty());
    let text = base.clone().unwrap_or_else(|| default.to_string());
    match parse_otlp_url(&text) {
        Ok(url) if http => append_signal_path(&url, "v1/metrics"),
        Ok(_) => text,
        Err(e) => {
            report.env_problem(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("invalid endpoint {}: {e}", quote(&redact(&text))),
            );
            text
        }
    }
}

/// `k1=v1,k2=v2` (W3C baggage-like): keys and values trimmed, values percent-decoded, empty
/// members skipped. The error never contains a value: header values are secrets.
pub fn parse_headers(text: &str) -> Result<Vec<(String, crate::settings::secret::Secret)>, String> {
    let mut out = Vec::new();
    for (i, member) in text.split(',').enumerate() {
        if member.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let Some((key, value)) = member.split_once('=') else {
            return Err(format!("malformed header list: entry {n} has no '='"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!(
                "malformed header list: entry {n} has an empty name"
            ));
        }
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(format!(
                "malformed header list: entry {n} has an invalid header name"
            ));
        }
        // Baggage properties (`;k=v`) have no meaning for headers; keep the value part only.
        let value = value.split(';').next().unwrap_or_default().trim();
        let decoded = percent_decode(value)
            .ok_or_else(|| format!("malformed header list: entry {n} has a bad %-escape"))?;
        if http::HeaderValue::from_str(&decoded).is_err() {
            return Err(format!(
                "malformed header list: entry {n} has a value that is not a valid header value"
            ));
        }
        out.push((
            key.to_string(),
            crate::settings::secret::Secret::new(decoded),
        ));
    }
    Ok(out)
}

/// `%XX` decoding; `None` for a truncated or non-hex escape, or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::locate::Positions;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)]) -> (OtlpSettings, Vec<String>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| map.get(k).cloned();
        let mut report = Report::default();
        let s = from_env(&env, &mut report);
        let problems = report
            .into_problems(&Positions::default())
            .into_iter()
            .map(|p| format!("{}: {}", p.key_path, p.message))
            .collect();
        (s, problems)
    }

    #[test]
    fn defaults_follow_the_spec() {
        let (s, problems) = run(&[]);
        assert!(problems.is_empty());
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(s.endpoint, "http://localhost:4318/v1/metrics");
        assert!(!s.gzip);
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert!(s.headers.is_empty());
    }

    #[test]
    fn grpc_default_and_base_as_is() {
        let (s, _) = run(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(s.endpoint, "http://localhost:4317");
        let (s, _) = run(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
        ]);
        assert_eq!(s.endpoint, "https://c:4317");
    }

    #[test]
    fn signal_specific_wins() {
        let (s, _) = run(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base/"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/custom"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
        ]);
        assert_eq!(s.protocol, OtlpProtocol::HttpJson);
        assert_eq!(s.endpoint, "http://m:1/custom");
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert!(s.gzip);
    }

    #[test]
    fn empty_signal_variable_falls_back() {
        let (s, _) = run(&[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", ""),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otlp"),
        ]);
        assert_eq!(s.endpoint, "http://c:4318/otlp/v1/metrics");
    }

    #[test]
    fn headers_are_decoded() {
        let h = parse_headers(" api-key = a%20b%3Dc , x=1,, y=2;prop=1").unwrap();
        let h: Vec<_> = h.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(h, [("api-key", "a b=c"), ("x", "1"), ("y", "2")]);
    }

    #[test]
    fn bad_values_name_the_variable_not_secrets() {
        let (_, problems) = run(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,hunter2"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "10s"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp"),
        ]);
        assert_eq!(
            problems,
            [
                "OTEL_EXPORTER_OTLP_PROTOCOL: invalid protocol 'udp': expected grpc, http/protobuf or http/json",
                "OTEL_EXPORTER_OTLP_HEADERS: malformed header list: entry 2 has no '='",
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: invalid timeout '10s': expected a positive number of milliseconds",
            ]
        );
        assert!(parse_headers("a=%zz").unwrap_err().contains("%-escape"));
        let (s, problems) = run(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")]);
        assert_eq!(
            s.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/nonexistent/ca.pem"))
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0]
            .starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read '/nonexistent/ca.pem': "));
        assert!(!parse_headers("a=%zzhunter2")
            .unwrap_err()
            .contains("hunter2"));
    }
}
