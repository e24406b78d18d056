//! The native `exporters:` section: `otlp` / `otlp/<name>` and `debug` / `debug/<name>`, named
//! as in the OpenTelemetry Collector so several of a kind can coexist.

use std::time::Duration;

use serde_yaml::Value;

mod delivery;

use crate::config::endpoint::{append_signal_path, parse_otlp_url, redact};
use crate::config::error::{KeyPath, Report};
use crate::config::native::tls;
use crate::config::value::{self, mapping, quote, string, type_problem, Fields};
use crate::settings::secret::Secret;
use crate::settings::{DebugVerbosity, ExporterSettings, OtlpProtocol, OtlpSettings, TlsSettings};

const OTLP_KEYS: &[&str] = &[
    "protocol",
    "endpoint",
    "metrics_endpoint",
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
    let metrics_endpoint = url_field(report, &f, "metrics_endpoint");
    if metrics_endpoint.is_some() && protocol == Some(OtlpProtocol::Grpc) {
        report.problem(
            &f.path("metrics_endpoint"),
            "applies to the http/protobuf and http/json protocols only",
        );
    }
    let endpoint = match (&metrics_endpoint, &base) {
        (Some((text, _)), _) if http => Some(text.clone()),
        (_, Some((_, url))) if http => Some(append_signal_path(url, "v1/metrics")),
        (_, Some((text, _))) => Some(text.clone()),
        (_, None) => {
            if f.get_set("endpoint").is_none() {
                let hint = if http { " (or metrics_endpoint)" } else { "" };
                report.problem(&f.path("endpoint"), format!("required{hint}"));
            }
            None
        }
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
            let uses_https = metrics_endpoint
                .as_ref()
                .or(base.as_ref())
                .map(|(_, url)| url.scheme() == "https");
            if uses_https == Some(false) {
                report.problem(&f.path("tls"), "applies to https:// endpoints only");
            }
            let subject = format!("exporter {}", quote(path.last_key().unwrap_or("otlp")));
            tls(report, &f.path("tls"), v, &subject).unwrap_or_default()
        }
    };
    let delivery = delivery::read(report, &f);
    Some(OtlpSettings {
        protocol: protocol?,
        endpoint: endpoint?,
        headers,
        gzip,
        timeout,
        tls: tls_settings,
        name: key.to_string(),
        delivery,
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
}
