//! The native `admin:` section: where the status API (gRPC), `GET /healthz` and `GET /metrics`
//! are served, on one listener (see `crate::admin::server`).
//!
//! ```yaml
//! admin:
//!   endpoint: 127.0.0.1:8787        # default; or unix:///run/supervisord-receiver/admin.sock
//!   socket_mode: "0600"             # unix:// only: the socket file's permissions (default 0600)
//!   unhealthy_after: 5m             # /healthz turns 503 after exports failed this long
//!   allow_non_loopback: false       # TCP only: serve beyond this host
//! ```
//!
//! A TCP address is checked as `health.endpoint` is: loopback unless `allow_non_loopback`.

use std::path::PathBuf;

use serde_yaml::Value;

use crate::config::error::{KeyPath, Report};
use crate::config::value::{boolean, mapping, nonblank, quote, type_problem};
use crate::settings::{AdminEndpoint, AdminSettings};

/// The default endpoint: the port `supervisord-receiver status` asks when told nothing else.
pub const DEFAULT_ADMIN_ENDPOINT: &str = "127.0.0.1:8787";
/// Owner only: the report names every target and endpoint.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// The longest path a UNIX socket address holds (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

const KEYS: &[&str] = &[
    "endpoint",
    "socket_mode",
    "unhealthy_after",
    "allow_non_loopback",
];

pub(super) fn admin(report: &mut Report, path: &KeyPath, v: &Value) -> Option<AdminSettings> {
    let f = mapping(report, path, v)?;
    f.reject_unknown(report, KEYS);
    let allow_non_loopback = f
        .get_set("allow_non_loopback")
        .and_then(|v| boolean(report, &f.path("allow_non_loopback"), v))
        .unwrap_or(false);
    let endpoint_path = f.path("endpoint");
    let text = match f.get_set("endpoint") {
        None => Some(DEFAULT_ADMIN_ENDPOINT),
        Some(v) => nonblank(report, &endpoint_path, v),
    };
    let mode_path = f.path("socket_mode");
    let mode = f
        .get_set("socket_mode")
        .and_then(|v| socket_mode(report, &mode_path, v));
    let endpoint = match text {
        None => None,
        Some(text) => match text.strip_prefix("unix://") {
            Some(socket) => {
                unix_path(report, &endpoint_path, text, socket).map(|path| AdminEndpoint::Unix {
                    path,
                    mode: mode.unwrap_or(DEFAULT_SOCKET_MODE),
                })
            }
            None => {
                if f.get_set("socket_mode").is_some() {
                    report.problem(&mode_path, "applies to unix:// endpoints only");
                }
                tcp(report, &endpoint_path, text, allow_non_loopback)
            }
        },
    };
    let unhealthy_after = super::positive_duration(
        &f,
        "unhealthy_after",
        super::DEFAULT_UNHEALTHY_AFTER,
        report,
    );
    Some(AdminSettings {
        endpoint: endpoint?,
        unhealthy_after,
    })
}

fn tcp(
    report: &mut Report,
    path: &KeyPath,
    text: &str,
    allow_non_loopback: bool,
) -> Option<AdminEndpoint> {
    if text.contains("://") || !text.contains(':') {
        report.problem(
            path,
            format!(
                "invalid endpoint {}: expected host:port (e.g. {DEFAULT_ADMIN_ENDPOINT}) or \
                 unix:///path/to/admin.sock",
                quote(text)
            ),
        );
        return None;
    }
    super::local_listen_address(
        report,
        path,
        text,
        allow_non_loopback,
        "the status API names every target and endpoint",
    )
    .map(AdminEndpoint::Tcp)
}

/// The socket file of `unix:///path`: absolute, short enough for a socket address.
fn unix_path(report: &mut Report, path: &KeyPath, text: &str, socket: &str) -> Option<PathBuf> {
    if !socket.starts_with('/') || socket.len() < 2 {
        report.problem(
            path,
            format!(
                "invalid endpoint {}: expected unix:// followed by an absolute path, e.g. \
                 unix:///run/supervisord-receiver/admin.sock",
                quote(text)
            ),
        );
        return None;
    }
    if socket.len() > MAX_SOCKET_PATH {
        report.problem(
            path,
            format!(
                "invalid endpoint {}: the socket path is {} bytes long, and a UNIX socket path \
                 holds at most {MAX_SOCKET_PATH}",
                quote(text),
                socket.len()
            ),
        );
        return None;
    }
    Some(PathBuf::from(socket))
}

/// `socket_mode: "0600"`: octal permissions as text (`0600` unquoted is text to the YAML
/// reader too, but `600` or `0o600` are numbers, whose digits are lost). The owner must keep
/// read and write, or no one could connect.
fn socket_mode(report: &mut Report, path: &KeyPath, v: &Value) -> Option<u32> {
    let expected = "an octal mode in quotes, e.g. \"0600\"";
    let text = match v {
        Value::String(text) => text.as_str(),
        Value::Number(n) => {
            report.problem(
                path,
                format!("expected {expected}; YAML read this one as the number {n}"),
            );
            return None;
        }
        _ => {
            type_problem(report, path, expected, v);
            return None;
        }
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let mode = (!digits.is_empty() && digits.len() <= 4)
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .filter(|mode| *mode <= 0o777);
    let Some(mode) = mode else {
        report.problem(
            path,
            format!(
                "invalid mode {}: expected {expected}, at most \"0777\"",
                quote(text)
            ),
        );
        return None;
    };
    if mode & 0o600 != 0o600 {
        report.problem(
            path,
            format!(
                "mode {} takes read or write from the owner, so nobody could connect; the owner \
                 needs both (e.g. \"0600\", or \"0660\" for a group)",
                quote(text)
            ),
        );
        return None;
    }
    if mode & 0o007 != 0 {
        report.warn(
            path,
            format!(
                "mode {} lets every user of this host read the status (targets, endpoints, \
                 errors); \"0600\" or \"0660\" with a group keeps it to the receiver's users",
                quote(text)
            ),
        );
    }
    Some(mode)
}
