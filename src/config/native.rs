//! The native format: `targets`, `metrics` and `exporters`, documented option by option in
//! `examples/native.yaml`. Every key is checked; an unknown one is an error.

use std::collections::HashMap;
use std::time::Duration;

use serde_yaml::Value;

use crate::config::duration;
use crate::config::endpoint::{parse_supervisor, redact};
use crate::config::error::{KeyPath, Report};
use crate::config::exporters;
use crate::config::reserved_attributes;
use crate::config::value::{
    self, boolean, mapping, nonblank, quote, regex_list, string, string_list, type_problem, Fields,
};
use crate::schema::{metric_names, MetricToggles};
use crate::settings::filter::ProcessFilter;
use crate::settings::secret::Secret;
use crate::settings::{
    ConfigFormat, Credentials, Endpoint, ExporterSettings, Settings, Target, TlsSettings,
};
use crate::settings::{
    HealthSettings, LogSettings, ResourcesMode, TelemetrySettings, TemporalityPreference,
};
use crate::vocab::ProcessState;
use crate::vocab::{Status, StatusMapping};

const TOP_KEYS: &[&str] = &[
    "collection_interval",
    "reconcile_interval",
    "initial_delay",
    "timeout",
    "keep_alive",
    "targets",
    "metrics",
    "exporters",
    "telemetry",
    "health",
    "admin",
    "logs",
    METRICS_TEMPORALITY,
];

/// The top-level key of the sums' temporality preference. When the file does not set it, the
/// loader reads `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` instead.
pub const METRICS_TEMPORALITY: &str = "metrics_temporality";

const TARGET_KEYS: &[&str] = &[
    "name",
    "endpoint",
    "username",
    "password",
    "collection_interval",
    "reconcile_interval",
    "timeout",
    "keep_alive",
    "tls",
    "include",
    "exclude",
    "status_mapping",
    "resource_attributes",
    "process_resources",
    "output",
];

/// Datadog's `min_collection_interval` default, so both formats poll at the same pace.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The interval and timeout a target inherits.
struct Defaults {
    interval: Duration,
    /// Push mode's time between full polls (see [`Target::reconcile_interval`]).
    reconcile_interval: Duration,
    timeout: Duration,
    /// Whether the user wrote `timeout` at the top level: clamping the built-in default to a
    /// short interval is expected and not worth a warning.
    timeout_is_explicit: bool,
    keep_alive: bool,
}

/// Reads a native document; the exporters are left empty when the file has none (the caller
/// then applies the environment).
pub fn read(root: &Fields<'_>, report: &mut Report) -> Settings {
    root.reject_unknown(report, TOP_KEYS);
    let interval = positive_duration(root, "collection_interval", DEFAULT_INTERVAL, report);
    let initial_delay = root
        .get_set("initial_delay")
        .and_then(|v| value::duration(report, &root.path("initial_delay"), v))
        .unwrap_or(DEFAULT_INITIAL_DELAY);
    let timeout = positive_duration(root, "timeout", DEFAULT_TIMEOUT, report);
    let defaults = Defaults {
        interval,
        reconcile_interval: positive_duration(
            root,
            "reconcile_interval",
            crate::settings::DEFAULT_RECONCILE_INTERVAL,
            report,
        ),
        timeout,
        timeout_is_explicit: root.get_set("timeout").is_some(),
        keep_alive: root
            .get_set("keep_alive")
            .and_then(|v| boolean(report, &root.path("keep_alive"), v))
            .unwrap_or(true),
    };
    let targets = targets(root, &defaults, report);
    let metrics = match root.get_set("metrics") {
        Some(v) => metric_toggles(report, &root.path("metrics"), v),
        None => MetricToggles::default(),
    };
    let exporters = match root.get_set("exporters") {
        Some(v) => exporters::read(report, &root.path("exporters"), v),
        None => Vec::new(),
    };
    let telemetry = self_telemetry(root, interval, &exporters, report);
    let health = root
        .get_set("health")
        .and_then(|v| health(report, &root.path("health"), v));
    let admin = root
        .get_set("admin")
        .and_then(|v| admin::admin(report, &root.path("admin"), v));
    Settings {
        format: ConfigFormat::Native,
        initial_delay,
        targets,
        metrics,
        exporters,
        telemetry,
        health,
        admin,
        temporality: metrics_temporality(root, report).unwrap_or_default(),
        logs: root
            .get_set("logs")
            .and_then(|v| logs(report, &root.path("logs"), v))
            .unwrap_or_default(),
        warnings: Vec::new(),
    }
}

/// `logs: { state_changes: true }`: which log records are sent besides the metrics.
fn logs(report: &mut Report, path: &KeyPath, v: &Value) -> Option<LogSettings> {
    let f = mapping(report, path, v)?;
    f.reject_unknown(report, &["state_changes"]);
    let defaults = LogSettings::default();
    Some(LogSettings {
        state_changes: f
            .get_set("state_changes")
            .and_then(|v| boolean(report, &f.path("state_changes"), v))
            .unwrap_or(defaults.state_changes),
    })
}

/// `telemetry: { metrics: true, interval: <collection_interval>, exporter: <first otlp> }`: the
/// receiver's own metrics come at the pace of the targets' unless the file (or
/// `OTEL_METRIC_EXPORT_INTERVAL`, read at start) says otherwise, through the connection
/// settings of the first OTLP exporter unless `exporter` names another one of `exporters`.
fn self_telemetry(
    root: &Fields<'_>,
    interval: Duration,
    exporters: &[ExporterSettings],
    report: &mut Report,
) -> TelemetrySettings {
    let mut settings = TelemetrySettings {
        metrics: true,
        interval: None,
        default_interval: interval,
        exporter: None,
    };
    let Some(v) = root.get_set("telemetry") else {
        return settings;
    };
    let Some(f) = mapping(report, &root.path("telemetry"), v) else {
        return settings;
    };
    f.reject_unknown(report, &["metrics", "interval", "exporter"]);
    if let Some(metrics) = f
        .get_set("metrics")
        .and_then(|v| boolean(report, &f.path("metrics"), v))
    {
        settings.metrics = metrics;
    }
    if f.get_set("interval").is_some() {
        settings.interval = Some(positive_duration(&f, "interval", interval, report));
    }
    if let Some(v) = f.get_set("exporter") {
        let path = f.path("exporter");
        if let Some(name) = nonblank(report, &path, v) {
            let otlp: Vec<&str> = exporters
                .iter()
                .filter_map(|e| match e {
                    ExporterSettings::Otlp(otlp) => Some(otlp.name.as_str()),
                    ExporterSettings::Debug { .. } => None,
                })
                .collect();
            if otlp.contains(&name) {
                settings.exporter = Some(name.to_string());
            } else if otlp.is_empty() {
                report.problem(
                    &path,
                    format!(
                        "names {}, but 'exporters' has no otlp exporter to name",
                        quote(name)
                    ),
                );
            } else {
                let known = otlp.iter().map(|n| quote(n)).collect::<Vec<_>>();
                report.problem(
                    &path,
                    format!(
                        "{} is not an otlp exporter of 'exporters'; expected one of {}",
                        quote(name),
                        known.join(", ")
                    ),
                );
            }
        }
    }
    settings
}

/// `metrics_temporality: cumulative | delta | lowmemory` (any case), when the file sets it.
fn metrics_temporality(root: &Fields<'_>, report: &mut Report) -> Option<TemporalityPreference> {
    let v = root.get_set(METRICS_TEMPORALITY)?;
    let path = root.path(METRICS_TEMPORALITY);
    match v {
        Value::String(text) => TemporalityPreference::parse(text).or_else(|| {
            report.problem(
                &path,
                format!(
                    "invalid temporality {}: expected {}",
                    quote(text),
                    temporality_values()
                ),
            );
            None
        }),
        _ => {
            type_problem(report, &path, &temporality_values(), v);
            None
        }
    }
}

/// `cumulative, delta or lowmemory`, for messages.
pub fn temporality_values() -> String {
    let names: Vec<&str> = TemporalityPreference::ALL
        .iter()
        .map(|p| p.name())
        .collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The health endpoint's default port: the OpenTelemetry Collector's `health_check` extension's.
pub const DEFAULT_HEALTH_ENDPOINT: &str = "127.0.0.1:13133";
pub const DEFAULT_UNHEALTHY_AFTER: Duration = Duration::from_secs(300);

/// `health: { endpoint: 127.0.0.1:13133, unhealthy_after: 5m, allow_non_loopback: false }`.
/// The status names every target, so it stays on this host unless the file says otherwise.
fn health(report: &mut Report, path: &KeyPath, v: &Value) -> Option<HealthSettings> {
    let f = mapping(report, path, v)?;
    f.reject_unknown(
        report,
        &["endpoint", "unhealthy_after", "allow_non_loopback"],
    );
    let allow_non_loopback = f
        .get_set("allow_non_loopback")
        .and_then(|v| boolean(report, &f.path("allow_non_loopback"), v))
        .unwrap_or(false);
    let endpoint = match f.get_set("endpoint") {
        None => DEFAULT_HEALTH_ENDPOINT.parse().ok(),
        Some(v) => {
            let path = f.path("endpoint");
            let text = nonblank(report, &path, v)?;
            local_listen_address(
                report,
                &path,
                text,
                allow_non_loopback,
                "the health status names every target",
            )
        }
    };
    let unhealthy_after = positive_duration(&f, "unhealthy_after", DEFAULT_UNHEALTHY_AFTER, report);
    Some(HealthSettings {
        endpoint: endpoint?,
        unhealthy_after,
    })
}

/// A TCP address to listen on (`health.endpoint`, `admin.endpoint`) that stays on this host
/// unless `allow_non_loopback`; `why` says what it would show to others.
pub(super) fn local_listen_address(
    report: &mut Report,
    path: &KeyPath,
    text: &str,
    allow_non_loopback: bool,
    why: &str,
) -> Option<std::net::SocketAddr> {
    match parse_listen_address(text) {
        Ok(addr) if !addr.ip().is_loopback() && !allow_non_loopback => {
            report.problem(
                path,
                format!(
                    "{} is not a loopback address; {why}, so set allow_non_loopback: true to \
                     serve it beyond this host",
                    quote(text)
                ),
            );
            None
        }
        Ok(addr) => Some(addr),
        Err(reason) => {
            report.problem(path, format!("invalid endpoint {}: {reason}", quote(text)));
            None
        }
    }
}

/// `ip:port`, `[ipv6]:port` or `localhost:port`. Other host names are refused: what a name
/// resolves to can change, and an address that must stay on this host has to be certain.
fn parse_listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected host:port, e.g. 127.0.0.1:13133".into());
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port {}", quote(port)))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err("the host must be an IP address or localhost".into())
}

/// A duration that must be above zero, or `default` when the key is absent.
fn positive_duration(
    f: &Fields<'_>,
    key: &str,
    default: Duration,
    report: &mut Report,
) -> Duration {
    let Some(v) = f.get_set(key) else {
        return default;
    };
    let path = f.path(key);
    match value::duration(report, &path, v) {
        Some(d) if d.is_zero() => {
            report.problem(&path, "must be greater than 0s");
            default
        }
        Some(d) => d,
        None => default,
    }
}

fn targets(root: &Fields<'_>, defaults: &Defaults, report: &mut Report) -> Vec<Target> {
    let path = root.path("targets");
    let items = match root.get("targets") {
        None | Some(Value::Null) => {
            report.problem(&path, "required: list at least one supervisord target");
            return Vec::new();
        }
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            type_problem(report, &path, "a list of targets", other);
            return Vec::new();
        }
    };
    if items.is_empty() {
        report.problem(&path, "list at least one supervisord target");
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        // Checked on the raw value so that a duplicate is reported even when a target is
        // invalid for another reason.
        if let Some(name) = item
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
        {
            match seen.get(name) {
                Some(first) => report.problem(
                    &item_path.key("name"),
                    format!(
                        "duplicate name {}: targets[{first}] has it too",
                        quote(name)
                    ),
                ),
                None => {
                    seen.insert(name, i);
                }
            }
        }
        if let Some(t) = target(report, &item_path, item, defaults) {
            out.push(t);
        }
    }
    out
}

fn target(report: &mut Report, path: &KeyPath, v: &Value, defaults: &Defaults) -> Option<Target> {
    if !v.is_mapping() {
        type_problem(report, path, "a mapping", v);
        return None;
    }
    let f = mapping(report, path, v)?;
    f.reject_unknown(report, TARGET_KEYS);

    let name = match f.get("name") {
        None => {
            report.problem(&f.path("name"), "required");
            None
        }
        Some(v) => nonblank(report, &f.path("name"), v).map(str::to_string),
    };
    let endpoint = match f.get("endpoint") {
        None => {
            report.problem(&f.path("endpoint"), "required");
            None
        }
        Some(v) => string(report, &f.path("endpoint"), v).and_then(|text| {
            parse_supervisor(text)
                .map_err(|reason| {
                    let shown = quote(&redact(text));
                    report.problem(
                        &f.path("endpoint"),
                        format!("invalid endpoint {shown}: {reason}"),
                    );
                })
                .ok()
        }),
    };
    let credentials = credentials(report, &f);
    let is_https = matches!(endpoint, Some(Endpoint::Tcp { tls: true, .. }));
    let tls = match f.get_set("tls") {
        None => TlsSettings::default(),
        Some(v) => {
            let subject = match &name {
                Some(name) => format!("target {}", quote(name)),
                None => "this target".to_string(),
            };
            let tls = tls(report, &f.path("tls"), v, &subject).unwrap_or_default();
            if endpoint.is_some() && !is_https {
                report.problem(&f.path("tls"), "applies to https:// endpoints only");
            }
            tls
        }
    };
    let (collection_interval, timeout) = timing(report, &f, defaults);
    // Read under `run` too, so one file serves both commands and `validate` checks it.
    let reconcile_interval = positive_duration(
        &f,
        "reconcile_interval",
        defaults.reconcile_interval,
        report,
    );
    let keep_alive = f
        .get_set("keep_alive")
        .and_then(|v| boolean(report, &f.path("keep_alive"), v))
        .unwrap_or(defaults.keep_alive);
    let filter = filter(report, &f);
    let status_mapping = match f.get_set("status_mapping") {
        Some(v) => status_mapping(report, &f.path("status_mapping"), v),
        None => StatusMapping::default(),
    };
    let resource_attributes = match f.get_set("resource_attributes") {
        Some(v) => resource_attributes(report, &f.path("resource_attributes"), v),
        None => Vec::new(),
    };
    let resources = match f.get_set("process_resources") {
        None => ResourcesMode::Auto,
        Some(v) => process_resources(report, &f.path("process_resources"), v),
    };
    let output = f
        .get_set("output")
        .and_then(|v| output::output(report, &f.path("output"), v));
    Some(Target {
        name: name?,
        endpoint: endpoint?,
        credentials,
        tls,
        collection_interval,
        timeout,
        reconcile_interval,
        filter,
        status_mapping,
        resource_attributes,
        point_attributes: Vec::new(),
        keep_alive,
        resources,
        autostart_attribute: true,
        output,
    })
}

/// `process_resources: auto | true | false`.
fn process_resources(report: &mut Report, path: &KeyPath, v: &Value) -> ResourcesMode {
    match v {
        // `${env:...}` gives strings: "true" and "false" count as the booleans.
        Value::Bool(true) => ResourcesMode::On,
        Value::Bool(false) => ResourcesMode::Off,
        Value::String(s) if s == "true" => ResourcesMode::On,
        Value::String(s) if s == "false" => ResourcesMode::Off,
        Value::String(s) if s == "auto" => ResourcesMode::Auto,
        _ => {
            report.problem(
                path,
                "expected auto, true or false (auto: read /proc when supervisord is on this \
                 host, by a UNIX socket or a loopback address)",
            );
            ResourcesMode::Auto
        }
    }
}

fn credentials(report: &mut Report, f: &Fields<'_>) -> Option<Credentials> {
    let username = f
        .get("username")
        .and_then(|v| nonblank(report, &f.path("username"), v));
    let password = f.get("password").and_then(|v| {
        let path = f.path("password");
        let p = string(report, &path, v)?;
        if p.is_empty() {
            report.problem(&path, "must not be empty");
        }
        Some(p)
    });
    match (f.get("username"), f.get("password")) {
        (Some(_), None) => report.problem(&f.path("username"), "set password too, or neither"),
        (None, Some(_)) => report.problem(&f.path("password"), "set username too, or neither"),
        _ => {}
    }
    Some(Credentials {
        username: username?.to_string(),
        password: Secret::new(password?),
    })
}

/// A `tls:` block of a target or an OTLP exporter; `subject` names it in the warning that
/// `insecure_skip_verify: true` always gives (`target 'web-1'`).
pub fn tls(report: &mut Report, path: &KeyPath, v: &Value, subject: &str) -> Option<TlsSettings> {
    let f = mapping(report, path, v)?;
    f.reject_unknown(
        report,
        &[
            "ca_file",
            "cert_file",
            "key_file",
            "server_name",
            "insecure_skip_verify",
        ],
    );
    let ca_file = tls_file(report, &f, "ca_file");
    let cert_file = tls_file(report, &f, "cert_file");
    let key_file = tls_file(report, &f, "key_file");
    match (f.get_set("cert_file"), f.get_set("key_file")) {
        (Some(_), None) => report.problem(&f.path("cert_file"), "set key_file too, or neither"),
        (None, Some(_)) => report.problem(&f.path("key_file"), "set cert_file too, or neither"),
        _ => {}
    }
    if let Some(key) = &key_file {
        if let Some(mode) = crate::config::world_readable(key) {
            report.warn(
                &f.path("key_file"),
                format!(
                    "the private key {} is readable by every user (mode {mode:04o});                      run chmod o-r on it",
                    quote(&key.to_string_lossy())
                ),
            );
        }
    }
    let server_name = f.get_set("server_name").and_then(|v| {
        let path = f.path("server_name");
        let name = nonblank(report, &path, v)?;
        match crate::tls::server_name(name) {
            Ok(_) => Some(name.to_string()),
            Err(_) => {
                report.problem(
                    &path,
                    format!(
                        "invalid server_name {}: expected a DNS name or an IP address",
                        quote(name)
                    ),
                );
                None
            }
        }
    });
    let insecure_skip_verify = f
        .get_set("insecure_skip_verify")
        .and_then(|v| boolean(report, &f.path("insecure_skip_verify"), v))
        .unwrap_or(false);
    if insecure_skip_verify {
        report.warn(
            &f.path("insecure_skip_verify"),
            format!(
                "TLS certificate verification is off for {subject}: whoever answers at its \
                 address is trusted"
            ),
        );
    }
    Some(TlsSettings {
        ca_file,
        cert_file,
        key_file,
        server_name,
        insecure_skip_verify,
    })
}

/// A file named under `tls:`, which must exist; it is parsed when connections are set up.
fn tls_file(report: &mut Report, f: &Fields<'_>, key: &str) -> Option<std::path::PathBuf> {
    let v = f.get_set(key)?;
    let path = f.path(key);
    let file = nonblank(report, &path, v)?;
    if let Err(e) = std::fs::metadata(file) {
        report.problem(&path, format!("cannot read {}: {e}", quote(file)));
    }
    Some(file.into())
}

/// The target's interval and timeout; a timeout above the interval is clamped to it, since a
/// poll may not outlast the next one's start.
fn timing(report: &mut Report, f: &Fields<'_>, defaults: &Defaults) -> (Duration, Duration) {
    let interval = positive_duration(f, "collection_interval", defaults.interval, report);
    let timeout = positive_duration(f, "timeout", defaults.timeout, report);
    let timeout_is_explicit = defaults.timeout_is_explicit || f.get_set("timeout").is_some();
    if timeout > interval && !timeout_is_explicit {
        return (interval, interval);
    }
    if timeout > interval {
        // Name what the target itself sets; inherited values are reported on the target.
        let path = if f.get_set("timeout").is_some() {
            f.path("timeout")
        } else if f.get_set("collection_interval").is_some() {
            f.path("collection_interval")
        } else {
            f.base().clone()
        };
        report.warn(
            &path,
            format!(
                "timeout {} is longer than the collection interval {}; using {}",
                duration::format(timeout),
                duration::format(interval),
                duration::format(interval)
            ),
        );
        return (interval, interval);
    }
    (interval, timeout)
}

fn filter(report: &mut Report, f: &Fields<'_>) -> ProcessFilter {
    let mut filter = ProcessFilter::default();
    for (key, exclude) in [("include", false), ("exclude", true)] {
        let Some(v) = f.get_set(key) else { continue };
        let Some(sel) = mapping(report, &f.path(key), v) else {
            continue;
        };
        sel.reject_unknown(report, &["names", "regex", "groups"]);
        let list = |report: &mut Report, k: &str| {
            sel.get(k)
                .and_then(|v| string_list(report, &sel.path(k), v))
                .unwrap_or_default()
        };
        let names = list(report, "names");
        let groups = list(report, "groups");
        let regex = sel
            .get("regex")
            .map(|v| regex_list(report, &sel.path("regex"), v))
            .unwrap_or_default();
        if exclude {
            filter.names_exclude = names;
            filter.regex_exclude = regex;
            filter.groups_exclude = groups;
        } else {
            filter.names = names;
            filter.regex = regex;
            filter.groups = groups;
        }
    }
    filter
}

fn status_mapping(report: &mut Report, path: &KeyPath, v: &Value) -> StatusMapping {
    let mut mapping_out = StatusMapping::default();
    let Some(f) = mapping(report, path, v) else {
        return mapping_out;
    };
    for (key, v) in f.entries() {
        let entry = f.path(key);
        let state = ProcessState::from_name(key);
        if state.is_none() {
            let names: Vec<&str> = ProcessState::ALL.iter().map(|s| s.name()).collect();
            report.problem(
                &entry,
                format!(
                    "unknown supervisord state {}; expected one of {}",
                    quote(key),
                    names.join(", ")
                ),
            );
        }
        let status = match v {
            Value::String(s) => Status::from_name(s).or_else(|| {
                report.problem(
                    &entry,
                    format!("invalid status {}: expected up, down or unknown", quote(s)),
                );
                None
            }),
            _ => {
                type_problem(report, &entry, "up, down or unknown", v);
                None
            }
        };
        if let (Some(state), Some(status)) = (state, status) {
            mapping_out.set(state, status);
        }
    }
    mapping_out
}

fn resource_attributes(report: &mut Report, path: &KeyPath, v: &Value) -> Vec<(String, String)> {
    let Some(f) = mapping(report, path, v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in f.entries() {
        let entry = f.path(key);
        if let Some(message) = attribute_key_problem(key) {
            report.problem(&entry, message);
            continue;
        }
        match v {
            Value::String(s) => out.push((key.to_string(), s.clone())),
            _ => type_problem(report, &entry, "a string (quote numbers and booleans)", v),
        }
    }
    out
}

/// Why a user attribute key cannot be used, if it cannot.
pub fn attribute_key_problem(key: &str) -> Option<String> {
    if key.trim().is_empty() {
        return Some("attribute names must not be empty".into());
    }
    let reserved = reserved_attributes();
    reserved.contains(&key).then(|| {
        format!(
            "{} is set by the receiver itself; reserved names: {}",
            quote(key),
            reserved.join(", ")
        )
    })
}

fn metric_toggles(report: &mut Report, path: &KeyPath, v: &Value) -> MetricToggles {
    let mut toggles = MetricToggles::default();
    let Some(f) = mapping(report, path, v) else {
        return toggles;
    };
    let known: Vec<&'static str> = metric_names().collect();
    for (name, v) in f.entries() {
        let entry = f.path(name);
        if !known.contains(&name) {
            let mut message = format!("unknown metric {}", quote(name));
            if let Some(near) = value::closest(name, known.iter().copied()) {
                message.push_str(&format!("; did you mean '{near}'?"));
            }
            message.push_str(&format!("; valid metrics: {}", known.join(", ")));
            report.problem(&entry, message);
            continue;
        }
        let Some(settings) = mapping(report, &entry, v) else {
            continue;
        };
        settings.reject_unknown(report, &["enabled"]);
        let enabled = settings
            .get_set("enabled")
            .and_then(|v| boolean(report, &settings.path("enabled"), v));
        if let Some(enabled) = enabled {
            if let Err(e) = toggles.set_enabled(name, enabled) {
                report.problem(&entry, e.to_string());
            }
        }
    }
    toggles
}

mod admin;
mod output;

#[cfg(test)]
#[path = "native_tests.rs"]
mod tests;
