//! The OTLP exporters from `OTEL_EXPORTER_OTLP_*` variables, per the OpenTelemetry exporter
//! specification, used when the file configures no exporter (always so for Datadog's format).
//!
//! Read: `PROTOCOL`, `ENDPOINT`, `HEADERS`, `COMPRESSION`, `TIMEOUT`, `CERTIFICATE` (a CA
//! file, as the spec defines it), `CLIENT_CERTIFICATE` and `CLIENT_KEY` (mutual TLS, both or
//! neither). For each signal, its own variables (`OTEL_EXPORTER_OTLP_METRICS_*`,
//! `OTEL_EXPORTER_OTLP_LOGS_*`) win over the generic ones; an empty variable counts as unset.
//! A signal's own `ENDPOINT` is used as is; the generic one is a base URL to which HTTP appends
//! `/v1/metrics` or `/v1/logs`. With nothing set, the result is what any OTel SDK does: OTLP
//! over http/protobuf to `http://localhost:4318/v1/metrics` and `…/v1/logs`.
//!
//! `OTEL_METRICS_EXPORTER` and `OTEL_LOGS_EXPORTER` choose whether a signal is exported at all:
//! `otlp` (or unset) yes, `none` no; the spec's other values name exporters this receiver does
//! not have, and are errors.
//!
//! One exporter or two: when the two signals resolve to the same protocol, headers,
//! compression, timeout and TLS, one exporter `otlp` carries both (each signal to its own
//! URL); otherwise `otlp` carries metrics and `otlp/logs` logs, each with its settings. A
//! variable that both signals read (a generic one) is reported once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::endpoint::{append_signal_path, parse_otlp_url, redact, signal_path};
use crate::config::error::Report;
use crate::config::expand::EnvLookup;
use crate::config::value::quote;
use crate::settings::secret::Secret;
use crate::settings::{DeliverySettings, OtlpProtocol, OtlpSettings, Signal, TlsSettings};

const PREFIX: &str = "OTEL_EXPORTER_OTLP_";

/// Every variable this module reads (suffixes after the prefixes).
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

/// The variables that switch a signal's exporter on or off, per signal.
const SELECTORS: [(Signal, &str); 2] = [
    (Signal::Metrics, "OTEL_METRICS_EXPORTER"),
    (Signal::Logs, "OTEL_LOGS_EXPORTER"),
];

/// The name of the exporter that carries logs when they cannot share the metrics one.
pub const LOGS_EXPORTER_NAME: &str = "otlp/logs";

/// `OTEL_EXPORTER_OTLP_METRICS_`, `OTEL_EXPORTER_OTLP_LOGS_`.
fn signal_prefix(signal: Signal) -> String {
    format!("{PREFIX}{}_", signal.name().to_ascii_uppercase())
}

/// The set variable for one setting of `signal`, signal-specific first: `(name, value)`.
fn lookup(env: EnvLookup<'_>, signal: Signal, suffix: &str) -> Option<(String, String)> {
    [signal_prefix(signal), PREFIX.to_string()]
        .into_iter()
        .find_map(|prefix| {
            let name = format!("{prefix}{suffix}");
            env(&name).filter(|v| !v.is_empty()).map(|v| (name, v))
        })
}

/// The names of the variables this module reads that are set.
pub fn set_variables(env: EnvLookup<'_>) -> Vec<String> {
    let exporters = SELECTORS.iter().map(|(_, name)| name.to_string());
    let otlp = SUFFIXES.iter().flat_map(|s| {
        Signal::ALL
            .iter()
            .map(move |signal| format!("{}{s}", signal_prefix(*signal)))
            .chain([format!("{PREFIX}{s}")])
    });
    exporters
        .chain(otlp)
        .filter(|name| env(name).is_some_and(|v| !v.is_empty()))
        .collect()
}

/// Problems of the variables, each variable's once: the two signals read the generic ones
/// alike, so a bad one would otherwise be reported twice.
struct Problems<'r> {
    report: &'r mut Report,
    seen: HashSet<String>,
}

impl Problems<'_> {
    fn add(&mut self, variable: &str, message: String) {
        if self.seen.insert(variable.to_string()) {
            self.report.env_problem(variable, message);
        }
    }
}

/// What one signal's variables resolve to, apart from its URL.
#[derive(Debug, Clone, PartialEq)]
struct Connection {
    protocol: OtlpProtocol,
    headers: Vec<(String, Secret)>,
    gzip: bool,
    timeout: Duration,
    tls: TlsSettings,
}

/// The exporters the environment describes: `otlp` carrying both signals, or `otlp` (metrics)
/// and `otlp/logs` (logs) when their settings differ; fewer when `OTEL_METRICS_EXPORTER` or
/// `OTEL_LOGS_EXPORTER` is `none`. Empty only with a problem reported.
pub fn from_env(env: EnvLookup<'_>, report: &mut Report) -> Vec<OtlpSettings> {
    let mut problems = Problems {
        report,
        seen: HashSet::new(),
    };
    let wanted: Vec<Signal> = SELECTORS
        .into_iter()
        .filter(|(_, variable)| selected(env, variable, &mut problems))
        .map(|(signal, _)| signal)
        .collect();
    if wanted.is_empty() {
        problems.add(
            "OTEL_METRICS_EXPORTER",
            "no exporter: OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER are both none and the \
             file configures no exporter, so nothing would be sent"
                .to_string(),
        );
        return Vec::new();
    }
    let connections: Vec<(Signal, Connection)> = wanted
        .iter()
        .map(|&signal| (signal, connection(env, signal, &mut problems)))
        .collect();
    let settings = |name: &str, signals: Vec<Signal>, c: &Connection, problems: &mut Problems| {
        // The URL of a signal the exporter does not carry is still filled in (`endpoint` may
        // serve the receiver's own metrics), but its variables are not this exporter's to
        // judge: a signal switched off is not checked.
        let mut unchecked = Report::default();
        let mut url = |signal: Signal| {
            if signals.contains(&signal) {
                endpoint(env, signal, c.protocol, problems)
            } else {
                let mut quiet = Problems {
                    report: &mut unchecked,
                    seen: HashSet::new(),
                };
                endpoint(env, signal, c.protocol, &mut quiet)
            }
        };
        OtlpSettings {
            protocol: c.protocol,
            endpoint: url(Signal::Metrics),
            logs_endpoint: url(Signal::Logs),
            signals,
            headers: c.headers.clone(),
            gzip: c.gzip,
            timeout: c.timeout,
            tls: c.tls.clone(),
            name: name.to_string(),
            delivery: DeliverySettings::default(),
        }
    };
    match connections.as_slice() {
        [(_, metrics), (_, logs)] if metrics != logs => vec![
            settings("otlp", vec![Signal::Metrics], metrics, &mut problems),
            settings(LOGS_EXPORTER_NAME, vec![Signal::Logs], logs, &mut problems),
        ],
        [(_, first), ..] => vec![settings("otlp", wanted.clone(), first, &mut problems)],
        [] => Vec::new(),
    }
}

/// `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER`: `otlp` or unset exports the signal, `none`
/// does not.
fn selected(env: EnvLookup<'_>, variable: &str, problems: &mut Problems) -> bool {
    let Some(value) = env(variable).filter(|v| !v.trim().is_empty()) else {
        return true;
    };
    match value.trim() {
        "otlp" => true,
        "none" => false,
        _ => {
            problems.add(
                variable,
                format!(
                    "unsupported exporter {}: expected otlp or none",
                    quote(&value)
                ),
            );
            true
        }
    }
}

/// One signal's protocol, headers, compression, timeout and TLS.
fn connection(env: EnvLookup<'_>, signal: Signal, problems: &mut Problems) -> Connection {
    let protocol = match lookup(env, signal, "PROTOCOL") {
        None => OtlpProtocol::HttpProtobuf,
        Some((name, value)) => match value.trim() {
            "grpc" => OtlpProtocol::Grpc,
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            "http/json" => OtlpProtocol::HttpJson,
            _ => {
                problems.add(
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
    // Reported here, in the order the file's problems have always come in.
    let _ = endpoint(env, signal, protocol, problems);
    let headers = match lookup(env, signal, "HEADERS") {
        None => Vec::new(),
        Some((name, value)) => match parse_headers(&value) {
            Ok(h) => h,
            Err(e) => {
                problems.add(&name, e);
                Vec::new()
            }
        },
    };
    let gzip = match lookup(env, signal, "COMPRESSION") {
        None => false,
        Some((name, value)) => match value.trim() {
            "gzip" => true,
            "none" => false,
            _ => {
                problems.add(
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
    let timeout = match lookup(env, signal, "TIMEOUT") {
        None => Duration::from_secs(10),
        Some((name, value)) => match value.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                problems.add(
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
    let tls = tls(env, signal, problems);
    Connection {
        protocol,
        headers,
        gzip,
        timeout,
        tls,
    }
}

/// `CERTIFICATE`, `CLIENT_CERTIFICATE`, `CLIENT_KEY`: files that must exist; they are parsed
/// when the exporter is built.
fn tls(env: EnvLookup<'_>, signal: Signal, problems: &mut Problems) -> TlsSettings {
    let mut file = |suffix: &str| {
        lookup(env, signal, suffix).map(|(name, file)| {
            if let Err(e) = std::fs::metadata(&file) {
                problems.add(&name, format!("cannot read {}: {e}", quote(&file)));
            }
            (name, PathBuf::from(file))
        })
    };
    let ca_file = file("CERTIFICATE").map(|(_, path)| path);
    let cert_file = file("CLIENT_CERTIFICATE");
    let key_file = file("CLIENT_KEY");
    let specific = signal_prefix(signal);
    match (&cert_file, &key_file) {
        (Some((name, _)), None) => problems.add(
            name,
            format!("set {PREFIX}CLIENT_KEY (or {specific}CLIENT_KEY) too, or neither"),
        ),
        (None, Some((name, _))) => problems.add(
            name,
            format!(
                "set {PREFIX}CLIENT_CERTIFICATE (or {specific}CLIENT_CERTIFICATE) too, or \
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

/// Where `signal` goes over `protocol`: the signal's own `ENDPOINT` as is; else the generic
/// one (or the default, `http://localhost:4318` for HTTP, `http://localhost:4317` for gRPC),
/// with `/v1/<signal>` appended for HTTP and as is for gRPC.
fn endpoint(
    env: EnvLookup<'_>,
    signal: Signal,
    protocol: OtlpProtocol,
    problems: &mut Problems,
) -> String {
    let http = protocol != OtlpProtocol::Grpc;
    let own = format!("{}ENDPOINT", signal_prefix(signal));
    if let Some(value) = env(&own).filter(|v| !v.is_empty()) {
        if let Err(e) = parse_otlp_url(&value) {
            let shown = quote(&redact(&value));
            problems.add(&own, format!("invalid endpoint {shown}: {e}"));
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
        Ok(url) if http => append_signal_path(&url, signal_path(signal)),
        Ok(_) => text,
        Err(e) => {
            problems.add(
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

    /// Every exporter the variables describe, and the problems.
    fn run_all(vars: &[(&str, &str)]) -> (Vec<OtlpSettings>, Vec<String>) {
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

    /// The exporter carrying metrics.
    fn run(vars: &[(&str, &str)]) -> (OtlpSettings, Vec<String>) {
        let (all, problems) = run_all(vars);
        let metrics = all
            .into_iter()
            .find(|o| o.signals.contains(&Signal::Metrics))
            .expect("an exporter carries metrics");
        (metrics, problems)
    }

    fn summary(exporters: &[OtlpSettings]) -> Vec<(String, Vec<Signal>, String, String)> {
        exporters
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    o.signals.clone(),
                    o.endpoint.clone(),
                    o.logs_endpoint.clone(),
                )
            })
            .collect()
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
    fn one_exporter_carries_both_signals_when_their_settings_agree() {
        let both = vec![Signal::Metrics, Signal::Logs];
        let (all, problems) = run_all(&[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            summary(&all),
            [(
                "otlp".to_string(),
                both.clone(),
                "http://localhost:4318/v1/metrics".to_string(),
                "http://localhost:4318/v1/logs".to_string()
            )]
        );
        // A logs URL of their own does not split them: only the connection settings do.
        let (all, _) = run_all(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318/otlp/"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://l:1/as/is"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ]);
        assert_eq!(
            summary(&all),
            [(
                "otlp".to_string(),
                both.clone(),
                "https://c:4318/otlp/v1/metrics".to_string(),
                "https://l:1/as/is".to_string()
            )]
        );
        assert!(all[0].gzip);
        // gRPC: the base URL for both.
        let (all, _) = run_all(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        ]);
        assert_eq!(
            summary(&all),
            [(
                "otlp".to_string(),
                both,
                "http://c:4317".to_string(),
                "http://c:4317".to_string()
            )]
        );
    }

    #[test]
    fn differing_logs_settings_make_a_second_exporter() {
        let (all, problems) = run_all(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=generic"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4317"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "2000"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            summary(&all),
            [
                (
                    "otlp".to_string(),
                    vec![Signal::Metrics],
                    "http://c:4318/v1/metrics".to_string(),
                    // Not carried: filled in, never used.
                    "http://l:4317".to_string()
                ),
                (
                    "otlp/logs".to_string(),
                    vec![Signal::Logs],
                    "http://c:4318".to_string(),
                    "http://l:4317".to_string()
                ),
            ]
        );
        assert_eq!(all[0].protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(all[0].timeout, Duration::from_secs(10));
        assert_eq!(all[1].protocol, OtlpProtocol::Grpc);
        assert_eq!(all[1].timeout, Duration::from_millis(2000));
        for o in &all {
            let headers: Vec<_> = o
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose()))
                .collect();
            assert_eq!(headers, [("k", "generic")], "generic variables serve both");
        }
        // Any one setting differing is enough, TLS included.
        let ca = tempfile::NamedTempFile::new().unwrap();
        let ca = ca.path().to_str().unwrap();
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=logs"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", ca),
        ] {
            let (all, problems) = run_all(&[(name, value)]);
            assert!(problems.is_empty(), "{problems:?}");
            let names: Vec<&str> = all.iter().map(|o| o.name.as_str()).collect();
            assert_eq!(names, ["otlp", "otlp/logs"], "{name}");
        }
    }

    #[test]
    fn exporter_selectors_switch_a_signal_off() {
        let (all, problems) = run_all(&[("OTEL_LOGS_EXPORTER", "none")]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].signals, [Signal::Metrics]);
        // A logs-only setting no longer makes a second exporter, nor is it checked.
        let (all, problems) = run_all(&[
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "udp"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "not a url"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(all.len(), 1);

        let (all, problems) = run_all(&[
            ("OTEL_METRICS_EXPORTER", " none "),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=v"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            summary(&all),
            [(
                "otlp".to_string(),
                vec![Signal::Logs],
                "http://localhost:4318/v1/metrics".to_string(),
                "http://localhost:4318/v1/logs".to_string()
            )]
        );

        let (all, problems) = run_all(&[
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]);
        assert!(all.is_empty());
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("OTEL_METRICS_EXPORTER: no exporter"),
            "{problems:?}"
        );

        let (_, problems) = run_all(&[
            ("OTEL_LOGS_EXPORTER", "console"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
        ]);
        assert_eq!(
            problems,
            [
                "OTEL_METRICS_EXPORTER: unsupported exporter 'prometheus': expected otlp or none",
                "OTEL_LOGS_EXPORTER: unsupported exporter 'console': expected otlp or none",
            ]
        );
    }

    #[test]
    fn a_generic_variable_is_reported_once_for_both_signals() {
        let (_, problems) = run_all(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd"),
        ]);
        assert_eq!(
            problems,
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT: invalid endpoint 'localhost:4318': expected a URL such as http://localhost:4317",
                "OTEL_EXPORTER_OTLP_TIMEOUT: invalid timeout 'soon': expected a positive number of milliseconds",
                "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: invalid compression 'zstd': expected gzip or none",
            ]
        );
    }

    #[test]
    fn set_variables_include_the_logs_ones() {
        let env = |k: &str| {
            matches!(
                k,
                "OTEL_LOGS_EXPORTER"
                    | "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
                    | "OTEL_EXPORTER_OTLP_HEADERS"
            )
            .then(|| "x".to_string())
        };
        assert_eq!(
            set_variables(&env),
            [
                "OTEL_LOGS_EXPORTER",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "OTEL_EXPORTER_OTLP_HEADERS"
            ]
        );
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
