//! The native `exporters:` section: `otlp` / `otlp/<name>` and `debug` / `debug/<name>`, named
//! as in the OpenTelemetry Collector so several of a kind can coexist.
//!
//! An `otlp` exporter carries metrics and logs unless `signals` says otherwise, so a backend
//! that takes only metrics (or only logs) can be kept from the other. Over HTTP each signal has
//! its URL: `endpoint` + `/v1/metrics` or `/v1/logs`, or `metrics_endpoint` / `logs_endpoint`
//! as given. Without `endpoint` (HTTP only), the default signals are those whose own URL is
//! given, so a file written before logs existed, with `metrics_endpoint` alone, still loads and
//! sends what it did. The debug exporter prints every signal.

use std::time::Duration;

use serde_yaml::Value;

pub(crate) mod delivery;

use crate::config::endpoint::{append_signal_path, parse_otlp_url, redact, signal_path};
use crate::config::error::{KeyPath, Report};
use crate::config::native::tls;
use crate::config::value::{self, mapping, quote, string, type_problem, Fields};
use crate::settings::secret::Secret;
use crate::settings::{
    DebugVerbosity, ExporterSettings, OtlpProtocol, OtlpSettings, Signal, TlsSettings,
};

const OTLP_KEYS: &[&str] = &[
    "protocol",
    "endpoint",
    "metrics_endpoint",
    "logs_endpoint",
    "signals",
    "headers",
    "compression",
    "timeout",
    "tls",
    "sending_queue",
    "retry_on_failure",
    "max_request_size",
];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn read(report: &mut Report, path: &KeyPath, v: &Value) -> Vec<ExporterSettings> {
    let Some(f) = mapping(report, path, v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in f.entries() {
        let entry = f.path(key);
        let (kind, name) = key.split_once('/').unwrap_or((key, ""));
        if key.contains('/') && name.is_empty() {
            report.problem(&entry, format!("{} needs a name after '/'", quote(key)));
            continue;
        }
        match kind {
            "otlp" => {
                if let Some(o) = otlp(report, &entry, key, v) {
                    out.push(ExporterSettings::Otlp(o));
                }
            }
            "debug" => {
                if let Some(d) = debug(report, &entry, v) {
                    out.push(d);
                }
            }
            _ => {
                let mut message = format!("unknown exporter {}", quote(key));
                if let Some(near) = value::closest(kind, ["otlp", "debug"].into_iter()) {
                    message.push_str(&format!("; did you mean '{near}'?"));
                }
                message.push_str("; expected otlp, otlp/<name>, debug or debug/<name>");
                report.problem(&entry, message);
            }
        }
    }
    out
}

fn debug(report: &mut Report, path: &KeyPath, v: &Value) -> Option<ExporterSettings> {
    let f = mapping(report, path, v)?;
    f.reject_unknown(report, &["verbosity"]);
    let verbosity = match f.get_set("verbosity") {
        None => DebugVerbosity::Basic,
        Some(v) => match string(report, &f.path("verbosity"), v)? {
            "basic" => DebugVerbosity::Basic,
            "detailed" => DebugVerbosity::Detailed,
            other => {
                report.problem(
                    &f.path("verbosity"),
                    format!(
                        "invalid verbosity {}: expected basic or detailed",
                        quote(other)
                    ),
                );
                return None;
            }
        },
    };
    Some(ExporterSettings::Debug { verbosity })
}

fn otlp(report: &mut Report, path: &KeyPath, key: &str, v: &Value) -> Option<OtlpSettings> {
    let f = mapping(report, path, v)?;
    f.reject_unknown(report, OTLP_KEYS);
    let protocol = match f.get_set("protocol") {
        None => Some(OtlpProtocol::Grpc),
        Some(v) => string(report, &f.path("protocol"), v).and_then(|p| match p {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            "http/json" => Some(OtlpProtocol::HttpJson),
            other => {
                report.problem(
                    &f.path("protocol"),
                    format!(
                        "invalid protocol {}: expected grpc, http/protobuf or http/json",
                        quote(other)
                    ),
                );
                None
            }
        }),
    };
    let http = protocol.is_some_and(|p| p != OtlpProtocol::Grpc);
    let base = url_field(report, &f, "endpoint");
    // A signal's own URL (http/* only), by signal.
    let specific = [
        (Signal::Metrics, "metrics_endpoint"),
        (Signal::Logs, "logs_endpoint"),
    ]
    .map(|(signal, key)| (signal, key, url_field(report, &f, key)));
    for (_, key, url) in &specific {
        if url.is_some() && protocol == Some(OtlpProtocol::Grpc) {
            report.problem(
                &f.path(key),
                "applies to the http/protobuf and http/json protocols only",
            );
        }
    }
    // Invalid `signals` is reported, and the rest still checked as if both were carried.
    let mut signals_valid = true;
    let signals = match f.get_set("signals") {
        Some(v) => signals(report, &f.path("signals"), v).unwrap_or_else(|| {
            signals_valid = false;
            Signal::ALL.to_vec()
        }),
        // Without a base URL, the signals that have their own.
        None if http && base.is_none() && specific.iter().any(|(_, _, u)| u.is_some()) => specific
            .iter()
            .filter(|(_, _, u)| u.is_some())
            .map(|(signal, _, _)| *signal)
            .collect(),
        None => Signal::ALL.to_vec(),
    };
    for (signal, key, url) in &specific {
        if url.is_some() && http && !signals.contains(signal) {
            report.warn(
                &f.path(key),
                format!("ignored: signals does not include {}", signal.name()),
            );
        }
    }
    // Each signal's URL and its parse: its own when given (http/*), else the base one, with the
    // signal's path appended for http/*.
    let resolve = |signal: Signal| -> Option<(String, &url::Url)> {
        let own = specific
            .iter()
            .find(|(s, _, _)| *s == signal)
            .and_then(|(_, _, u)| u.as_ref());
        match (own, &base) {
            (Some((text, url)), _) if http => Some((text.clone(), url)),
            (_, Some((_, url))) if http => {
                Some((append_signal_path(url, signal_path(signal)), url))
            }
            (_, Some((text, url))) => Some((text.clone(), url)),
            (_, None) => None,
        }
    };
    let metrics_url = resolve(Signal::Metrics);
    let logs_url = resolve(Signal::Logs);
    let missing: Vec<&str> = specific
        .iter()
        .filter(|(signal, _, _)| signals.contains(signal))
        .filter(|(signal, _, _)| match signal {
            Signal::Metrics => metrics_url.is_none(),
            Signal::Logs => logs_url.is_none(),
        })
        .map(|(_, key, _)| *key)
        .collect();
    if !missing.is_empty() && f.get_set("endpoint").is_none() {
        let hint = if http {
            format!(" (or {})", missing.join(" and "))
        } else {
            String::new()
        };
        report.problem(&f.path("endpoint"), format!("required{hint}"));
    }
    let uses_https = [(Signal::Metrics, &metrics_url), (Signal::Logs, &logs_url)]
        .into_iter()
        .filter(|(signal, _)| signals.contains(signal))
        .filter_map(|(_, url)| url.as_ref())
        .map(|(_, url)| url.scheme() == "https")
        .reduce(|a, b| a || b);
    // `endpoint` is the metrics URL even without metrics (the receiver's own metrics may use
    // it); an exporter carrying logs only, with its logs URL alone, repeats that URL there.
    let (endpoint, logs_endpoint) = match (metrics_url, logs_url) {
        (Some((m, _)), Some((l, _))) => (Some(m), Some(l)),
        (Some((m, _)), None) => (Some(m.clone()), Some(m)),
        (None, Some((l, _))) => (Some(l.clone()), Some(l)),
        (None, None) => (None, None),
    };
    let headers = f
        .get_set("headers")
        .map(|v| headers(report, &f.path("headers"), v))
        .unwrap_or_default();
    let gzip = match f.get_set("compression") {
        None => true,
        Some(v) => match string(report, &f.path("compression"), v) {
            Some("gzip") => true,
            Some("none") => false,
            Some(other) => {
                report.problem(
                    &f.path("compression"),
                    format!(
                        "invalid compression {}: expected gzip or none",
                        quote(other)
                    ),
                );
                true
            }
            None => true,
        },
    };
    let timeout = match f.get_set("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(v) => match value::duration(report, &f.path("timeout"), v) {
            Some(d) if d.is_zero() => {
                report.problem(&f.path("timeout"), "must be greater than 0s");
                DEFAULT_TIMEOUT
            }
            Some(d) => d,
            None => DEFAULT_TIMEOUT,
        },
    };
    let tls_settings = match f.get_set("tls") {
        None => TlsSettings::default(),
        Some(v) => {
            if uses_https == Some(false) {
                report.problem(&f.path("tls"), "applies to https:// endpoints only");
            }
            let subject = format!("exporter {}", quote(path.last_key().unwrap_or("otlp")));
            tls(report, &f.path("tls"), v, &subject).unwrap_or_default()
        }
    };
    let delivery = delivery::read(report, &f);
    if !signals_valid {
        return None;
    }
    Some(OtlpSettings {
        protocol: protocol?,
        endpoint: endpoint?,
        logs_endpoint: logs_endpoint?,
        signals,
        headers,
        gzip,
        timeout,
        tls: tls_settings,
        name: key.to_string(),
        delivery,
    })
}

/// `signals: [metrics, logs]`: each name once (repeats are harmless), at least one. The result
/// is in [`Signal::ALL`] order.
fn signals(report: &mut Report, path: &KeyPath, v: &Value) -> Option<Vec<Signal>> {
    let names = value::string_list(report, path, v)?;
    let mut wanted = Vec::with_capacity(names.len());
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        match Signal::ALL.into_iter().find(|s| s.name() == name) {
            Some(signal) => wanted.push(signal),
            None => {
                ok = false;
                let mut message = format!("unknown signal {}", quote(name));
                let known = Signal::ALL.map(Signal::name);
                if let Some(near) = value::closest(name, known.into_iter()) {
                    message.push_str(&format!("; did you mean '{near}'?"));
                }
                message.push_str("; expected metrics or logs");
                report.problem(&path.index(i), message);
            }
        }
    }
    if names.is_empty() {
        report.problem(
            path,
            "must name at least one signal (metrics, logs); to send nothing to this backend, \
             remove the exporter",
        );
        return None;
    }
    ok.then(|| {
        Signal::ALL
            .into_iter()
            .filter(|s| wanted.contains(s))
            .collect()
    })
}

/// A URL-valued key: the text as written and its parse.
fn url_field(report: &mut Report, f: &Fields<'_>, key: &str) -> Option<(String, url::Url)> {
    let v = f.get_set(key)?;
    let path = f.path(key);
    let text = string(report, &path, v)?;
    match parse_otlp_url(text) {
        Ok(url) => Some((text.to_string(), url)),
        Err(reason) => {
            let shown = quote(&redact(text));
            report.problem(&path, format!("invalid endpoint {shown}: {reason}"));
            None
        }
    }
}

fn headers(report: &mut Report, path: &KeyPath, v: &Value) -> Vec<(String, Secret)> {
    let Some(f) = mapping(report, path, v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, v) in f.entries() {
        let entry = f.path(name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            report.problem(&entry, format!("invalid header name {}", quote(name)));
            continue;
        }
        let Value::String(s) = v else {
            type_problem(report, &entry, "a string", v);
            continue;
        };
        if http::HeaderValue::from_str(s).is_err() {
            report.problem(&entry, "the value has characters not allowed in a header");
            continue;
        }
        out.push((name.to_string(), Secret::new(s.clone())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::locate::Positions;

    fn read_yaml(text: &str) -> (Vec<ExporterSettings>, Vec<String>) {
        let v: Value = serde_yaml::from_str(text).unwrap();
        let mut report = Report::default();
        let out = read(&mut report, &KeyPath::root().key("exporters"), &v);
        let problems = report
            .into_problems(&Positions::default())
            .into_iter()
            .map(|p| format!("{}: {}", p.key_path, p.message))
            .collect();
        (out, problems)
    }

    #[test]
    fn several_exporters_in_file_order() {
        let (out, problems) = read_yaml(
            "otlp/a: {endpoint: 'http://a:4317'}\ndebug: {verbosity: detailed}\n\
             otlp/b: {protocol: http/json, endpoint: 'https://b', compression: none, timeout: 3s}\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out.len(), 3);
        assert!(matches!(
            out[1],
            ExporterSettings::Debug {
                verbosity: DebugVerbosity::Detailed
            }
        ));
        let ExporterSettings::Otlp(b) = &out[2] else {
            panic!("{:?}", out[2]);
        };
        assert_eq!(b.endpoint, "https://b/v1/metrics");
        assert!(!b.gzip);
        assert_eq!(b.timeout, Duration::from_secs(3));
    }

    #[test]
    fn header_problems_never_show_values() {
        let (_, problems) =
            read_yaml("otlp:\n  endpoint: 'http://a'\n  headers: {'bad name': x, k: \"v\\n\"}\n");
        assert_eq!(
            problems,
            [
                "exporters.otlp.headers.bad name: invalid header name 'bad name'",
                "exporters.otlp.headers.k: the value has characters not allowed in a header",
            ]
        );
    }

    #[test]
    fn bad_choices_are_named() {
        let (_, problems) = read_yaml(
            "otlp: {endpoint: 'http://a', protocol: udp, compression: zstd}\ndebug: {verbosity: loud}\n",
        );
        assert_eq!(
            problems,
            [
                "exporters.otlp.protocol: invalid protocol 'udp': expected grpc, http/protobuf or http/json",
                "exporters.otlp.compression: invalid compression 'zstd': expected gzip or none",
                "exporters.debug.verbosity: invalid verbosity 'loud': expected basic or detailed",
            ]
        );
    }

    fn only_otlp(text: &str) -> OtlpSettings {
        let (out, problems) = read_yaml(text);
        assert!(problems.is_empty(), "{problems:?}");
        match out.as_slice() {
            [ExporterSettings::Otlp(o)] => o.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_signal_gets_its_url() {
        let o = only_otlp("otlp: {protocol: http/protobuf, endpoint: 'http://c:4318/base/'}\n");
        assert_eq!(o.signals, Signal::ALL);
        assert_eq!(o.endpoint, "http://c:4318/base/v1/metrics");
        assert_eq!(o.logs_endpoint, "http://c:4318/base/v1/logs");
        // A signal's own URL is used as is, the other still derived from the base.
        let o = only_otlp(
            "otlp: {protocol: http/json, endpoint: 'http://c:4318', logs_endpoint: 'https://l/in'}\n",
        );
        assert_eq!(o.endpoint, "http://c:4318/v1/metrics");
        assert_eq!(o.logs_endpoint, "https://l/in");
        // gRPC: one base URL for both.
        let o = only_otlp("otlp: {endpoint: 'http://c:4317'}\n");
        assert_eq!(
            (o.endpoint.as_str(), o.logs_endpoint.as_str()),
            ("http://c:4317", "http://c:4317")
        );
    }

    #[test]
    fn without_a_base_url_the_signals_are_those_with_their_own() {
        let o = only_otlp("otlp: {protocol: http/protobuf, metrics_endpoint: 'http://m/x'}\n");
        assert_eq!(o.signals, [Signal::Metrics]);
        assert_eq!(o.endpoint, "http://m/x");
        let o = only_otlp("otlp: {protocol: http/protobuf, logs_endpoint: 'http://l/y'}\n");
        assert_eq!(o.signals, [Signal::Logs]);
        assert_eq!(o.logs_endpoint, "http://l/y");
        let o = only_otlp(
            "otlp: {protocol: http/protobuf, metrics_endpoint: 'http://m/x', logs_endpoint: 'http://l/y'}\n",
        );
        assert_eq!(o.signals, Signal::ALL);
        // Asking for a signal that has no URL is an error naming what is missing.
        let (_, problems) = read_yaml(
            "otlp: {protocol: http/protobuf, metrics_endpoint: 'http://m/x', signals: [metrics, logs]}\n",
        );
        assert_eq!(
            problems,
            ["exporters.otlp.endpoint: required (or logs_endpoint)"]
        );
        let (_, problems) = read_yaml("otlp: {protocol: http/json}\n");
        assert_eq!(
            problems,
            ["exporters.otlp.endpoint: required (or metrics_endpoint and logs_endpoint)"]
        );
    }

    #[test]
    fn signals_choose_what_an_exporter_carries() {
        let o = only_otlp("otlp: {endpoint: 'http://c:4317', signals: [metrics]}\n");
        assert_eq!(o.signals, [Signal::Metrics]);
        let o = only_otlp("otlp: {endpoint: 'http://c:4317', signals: [logs, metrics, logs]}\n");
        assert_eq!(o.signals, Signal::ALL, "in the usual order, each once");
        let (out, problems) = read_yaml(
            "otlp: {endpoint: 'http://c:4317', signals: [metrics, log, traces]}\n\
             otlp/b: {endpoint: 'http://c:4317', signals: []}\n\
             otlp/c: {endpoint: 'http://c:4317', signals: logs}\n",
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            problems,
            [
                "exporters.otlp.signals[1]: unknown signal 'log'; did you mean 'logs'?; expected metrics or logs",
                "exporters.otlp.signals[2]: unknown signal 'traces'; expected metrics or logs",
                "exporters.otlp/b.signals: must name at least one signal (metrics, logs); to send \
                 nothing to this backend, remove the exporter",
                "exporters.otlp/c.signals: expected a list of strings, found a string 'logs'",
            ]
        );
    }

    #[test]
    fn logs_endpoint_rules_mirror_metrics_endpoint() {
        let (_, problems) =
            read_yaml("otlp: {endpoint: 'http://c:4317', logs_endpoint: 'http://l/y'}\n");
        assert_eq!(
            problems,
            ["exporters.otlp.logs_endpoint: applies to the http/protobuf and http/json protocols only"]
        );
        let (_, problems) = read_yaml(
            "otlp: {protocol: http/protobuf, endpoint: 'http://c', logs_endpoint: 'l'}\n",
        );
        assert_eq!(
            problems,
            ["exporters.otlp.logs_endpoint: invalid endpoint 'l': expected a URL such as http://localhost:4317"]
        );
        // tls with an https URL for one signal only is fine; with none, it is not.
        let (_, problems) = read_yaml(
            "otlp: {protocol: http/protobuf, endpoint: 'http://c', logs_endpoint: 'https://l', \
             tls: {insecure_skip_verify: true}}\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let (_, problems) = read_yaml(
            "otlp: {protocol: http/protobuf, endpoint: 'http://c', tls: {insecure_skip_verify: true}}\n",
        );
        assert_eq!(
            problems,
            ["exporters.otlp.tls: applies to https:// endpoints only"]
        );
    }

    #[test]
    fn a_url_for_a_signal_not_carried_is_a_warning() {
        let v: Value = serde_yaml::from_str(
            "otlp: {protocol: http/protobuf, endpoint: 'http://c', logs_endpoint: 'http://l', \
             signals: [metrics]}\n",
        )
        .unwrap();
        let mut report = Report::default();
        let out = read(&mut report, &KeyPath::root().key("exporters"), &v);
        assert_eq!(out.len(), 1);
        assert_eq!(
            report.into_warnings(&Positions::default()),
            ["exporters.otlp.logs_endpoint: ignored: signals does not include logs"]
        );
    }
}
