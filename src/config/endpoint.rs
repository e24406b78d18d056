//! Endpoint strings: supervisord's (`http://host:port`, `https://…`, `unix:///path.sock`) and
//! OTLP's (`http(s)://host[:port][/path]`).
//!
//! supervisord endpoints are split by hand rather than with `url`: that crate hides a port equal
//! to the scheme's default (`http://h:80` and `http://h` look alike) and accepts `http:///x`,
//! while we need "no port" to mean 9001 and an empty host to be an error.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use crate::settings::{Endpoint, Signal};

/// supervisord's default `[inet_http_server]` port, whatever the scheme.
pub const DEFAULT_PORT: u16 = 9001;

/// The reason an endpoint is invalid, without the endpoint itself (the caller quotes it,
/// redacted).
pub type Reason = String;

pub fn parse_supervisor(text: &str) -> Result<Endpoint, Reason> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("expected http://host[:port], https://host[:port] or unix:///path".into());
    };
    match scheme {
        "unix" => {
            if rest.is_empty() {
                return Err("the socket path is missing".into());
            }
            if !rest.starts_with('/') {
                return Err("the socket path must be absolute (unix:///path/to.sock)".into());
            }
            Ok(Endpoint::Unix {
                path: PathBuf::from(rest),
            })
        }
        "http" | "https" => {
            let (authority, path) = split_authority(rest);
            let (host, port) = host_port(authority)?;
            if !matches!(path, "" | "/" | "/RPC2") {
                return Err("the path must be empty or /RPC2 (requests always go to /RPC2)".into());
            }
            Ok(Endpoint::Tcp {
                tls: scheme == "https",
                host,
                port: port.unwrap_or(DEFAULT_PORT),
            })
        }
        _ => Err("scheme must be http, https or unix".into()),
    }
}

/// Splits `host:port/path?query` into the authority and what follows it.
fn split_authority(rest: &str) -> (&str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.split_at(end)
}

/// Host and optional port of an authority; IPv6 literals in brackets come back without them.
pub fn host_port(authority: &str) -> Result<(String, Option<u16>), Reason> {
    if authority.contains('@') {
        return Err("credentials are not allowed in the URL; use username and password".into());
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return Err("unclosed '[' in the host".into());
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address".into());
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("unexpected text after ']'")?),
        };
        (v6.to_string(), port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("IPv6 addresses must be written in brackets, e.g. [::1]".into())
            }
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
    {
        return Err("the host contains characters not allowed in a host name".into());
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or("the port must be a number from 1 to 65535")?),
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|n| *n != 0)
}

/// The endpoint text with any `user:password@` replaced, safe to quote in a message. Everything
/// up to the last `@` goes, not only what precedes the first `/`: a password written with an
/// unencoded `/` ends the authority early but is still a password.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => text.to_string(),
    }
}

/// Checks an OTLP URL: http or https, a host, no credentials.
pub fn parse_otlp_url(text: &str) -> Result<url::Url, Reason> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("expected a URL such as http://localhost:4317".into());
    };
    if !matches!(scheme, "http" | "https") {
        return Err("scheme must be http or https".into());
    }
    let (authority, _) = split_authority(rest);
    if authority.contains('@') {
        return Err("credentials are not allowed in the URL; use headers".into());
    }
    host_port(authority)?;
    url::Url::parse(text).map_err(|e| e.to_string())
}

/// The path OTLP/HTTP appends to a base endpoint for a signal: `v1/metrics`, `v1/logs`.
pub fn signal_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Metrics => "v1/metrics",
        Signal::Logs => "v1/logs",
    }
}

/// The OTLP/HTTP rule for a base endpoint: the signal path is appended to the base path with
/// exactly one `/` between them (`http://h:4318` and `http://h:4318/` both give
/// `http://h:4318/v1/metrics`; `http://h/otlp` gives `http://h/otlp/v1/metrics`, and
/// `http://h/otlp/v1/logs` for logs). A signal-specific URL is never passed here: it is used as
/// is.
pub fn append_signal_path(base: &url::Url, signal_path: &str) -> String {
    let mut url = base.clone();
    let path = format!("{}/{signal_path}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(tls: bool, host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            tls,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn supervisor_endpoints() {
        assert_eq!(
            parse_supervisor("http://127.0.0.1:9001"),
            Ok(tcp(false, "127.0.0.1", 9001))
        );
        assert_eq!(parse_supervisor("http://h"), Ok(tcp(false, "h", 9001)));
        assert_eq!(parse_supervisor("https://h/RPC2"), Ok(tcp(true, "h", 9001)));
        assert_eq!(parse_supervisor("http://h:80/"), Ok(tcp(false, "h", 80)));
        assert_eq!(
            parse_supervisor("http://[::1]:9002"),
            Ok(tcp(false, "::1", 9002))
        );
        assert_eq!(
            parse_supervisor("unix:///run/supervisor.sock"),
            Ok(Endpoint::Unix {
                path: "/run/supervisor.sock".into()
            })
        );
    }

    #[test]
    fn supervisor_endpoint_errors() {
        let err = |s: &str| parse_supervisor(s).unwrap_err();
        assert_eq!(err("ftp://x"), "scheme must be http, https or unix");
        assert!(err("localhost:9001").starts_with("expected http://"));
        assert!(err("http://h/other").starts_with("the path must be"));
        assert!(err("http://h?x=1").starts_with("the path must be"));
        assert_eq!(err("http://:9001"), "the host is missing");
        assert_eq!(err("http:///x"), "the host is missing");
        assert_eq!(
            err("http://h:0"),
            "the port must be a number from 1 to 65535"
        );
        assert_eq!(
            err("http://h:99999"),
            "the port must be a number from 1 to 65535"
        );
        assert!(err("http://u:p@h").starts_with("credentials"));
        assert!(err("http://::1").starts_with("IPv6"));
        assert!(err("unix://relative.sock").contains("absolute"));
        assert_eq!(err("unix://"), "the socket path is missing");
    }

    #[test]
    fn redaction_hides_credentials() {
        assert_eq!(redact("ftp://user:hunter2@h/x"), "ftp://***@h/x");
        assert_eq!(redact("http://user:hun/ter2@h:1"), "http://***@h:1");
        assert_eq!(redact("http://h:1"), "http://h:1");
        assert_eq!(redact("no scheme"), "no scheme");
    }

    #[test]
    fn signal_path_gets_exactly_one_slash() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            append_signal_path(&u("http://h:4318"), "v1/metrics"),
            "http://h:4318/v1/metrics"
        );
        assert_eq!(
            append_signal_path(&u("http://h:4318/"), "v1/metrics"),
            "http://h:4318/v1/metrics"
        );
        assert_eq!(
            append_signal_path(&u("https://h/otlp"), "v1/metrics"),
            "https://h/otlp/v1/metrics"
        );
        assert_eq!(
            append_signal_path(&u("https://h/otlp/"), "v1/metrics"),
            "https://h/otlp/v1/metrics"
        );
    }

    #[test]
    fn logs_path_follows_the_same_rule() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let logs = signal_path(Signal::Logs);
        assert_eq!(
            append_signal_path(&u("http://h:4318"), logs),
            "http://h:4318/v1/logs"
        );
        assert_eq!(
            append_signal_path(&u("https://h/otlp/"), logs),
            "https://h/otlp/v1/logs"
        );
        assert_eq!(
            append_signal_path(&u("https://h/otlp?k=v"), logs),
            "https://h/otlp/v1/logs?k=v"
        );
        assert_eq!(
            append_signal_path(&u("http://h:4318"), signal_path(Signal::Metrics)),
            "http://h:4318/v1/metrics"
        );
    }
}
