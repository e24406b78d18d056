//! Datadog's `supervisord.d/conf.yaml`: `init_config` and `instances`, read as the Agent check
//! reads them (same defaults, same precedence of deprecated keys, same error texts where the
//! check has one).
//!
//! Where the check fails at run time (a filter option that is not a list, a bad status in the
//! override), we fail at load time with the check's exact text. Options the Agent ignores
//! (unknown instance keys, `server_check`) are warnings, not errors, so a file that works with
//! the Agent loads here. Deliberate differences:
//! - both deprecation notices (`user`, `pass`) are shown; the Agent shows only the first because
//!   the two share one once-only key;
//! - an explicit `null` for a list option counts as unset, as the Agent's config model reads it;
//! - regexes (`proc_regex`, `proc_regex_exclude`, `metric_patterns`) take Python's `re` syntax
//!   and are searched as `re.search` does; a construct that cannot be matched here (the `a`
//!   flag, `\N{...}`) is refused at load with its name, and a match that backtracks too long
//!   counts as no match, with a warning (see `settings::pattern`).

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Duration;

use serde_yaml::Value;

use crate::config::endpoint::host_port;
use crate::config::error::{KeyPath, Report};
use crate::config::native::{attribute_key_problem, DEFAULT_INITIAL_DELAY};
use crate::config::python;
use crate::config::value::{
    self, compile_python_regex, mapping, quote, string, type_problem, Fields,
};
use crate::schema::definitions::{AUTOSTART, SUPERVISORD_SERVER};
use crate::schema::{metric_names, MetricToggles};
use crate::settings::filter::ProcessFilter;
use crate::settings::pattern::NamePattern;
use crate::settings::secret::Secret;
use crate::settings::{ConfigFormat, Credentials, Endpoint, Settings, Target, TlsSettings};
use crate::vocab::ProcessState;
use crate::vocab::{Status, StatusMapping};

const INSTANCE_KEYS: &[&str] = &[
    "name",
    "host",
    "port",
    "socket",
    "username",
    "password",
    "user",
    "pass",
    "proc_names",
    "proc_regex",
    "proc_names_exclude",
    "proc_regex_exclude",
    "status_mapping_override",
    "tags",
    "min_collection_interval",
    "service",
    "server_check",
    "empty_default_hostname",
    "disable_generic_tags",
    "metric_patterns",
    "autostart_tag",
];

/// Keys of the native format: in a Datadog file they would be silently lost, so they are errors.
const NATIVE_KEYS: &[&str] = &[
    "targets",
    "exporters",
    "metrics",
    "collection_interval",
    "initial_delay",
    "timeout",
    "metrics_temporality",
];

pub const NAME_MISSING: &str = "Supervisor server name not specified in yaml configuration.";

/// The Agent's default `min_collection_interval`.
const DEFAULT_INTERVAL_SECS: f64 = 15.0;
/// The poll bound for Datadog instances, which have no timeout option.
const TIMEOUT: Duration = Duration::from_secs(10);
/// supervisord's `SupervisorTransport` connects to port 80 when an `http://` socket URL has none.
const HTTP_SOCKET_DEFAULT_PORT: u16 = 80;

fn deprecation(old: &str, new: &str) -> String {
    format!(
        "DEPRECATION NOTICE: The `{old}` config option has been renamed to `{new}` and will be \
         removed in a future release."
    )
}

pub fn read(root: &Fields<'_>, report: &mut Report) -> Settings {
    for (key, _) in root.entries() {
        match key {
            "init_config" | "instances" => {}
            k if NATIVE_KEYS.contains(&k) => report.problem(
                &root.path(k),
                format!(
                    "{} belongs to the native format, but this file has 'instances' or \
                     'init_config' and is read as Datadog's; exporters come from the \
                     OTEL_EXPORTER_OTLP_* variables",
                    quote(k)
                ),
            ),
            k => report.warn(&root.path(k), format!("{} is ignored", quote(k))),
        }
    }
    let service = init_config(root, report);
    let (targets, metrics) = instances(root, report, service.as_deref());
    Settings {
        format: ConfigFormat::Datadog,
        initial_delay: DEFAULT_INITIAL_DELAY,
        targets,
        metrics,
        exporters: Vec::new(),
        telemetry: crate::settings::TelemetrySettings::off(),
        health: None,
        admin: None,
        // `config::load` applies OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE.
        temporality: Default::default(),
        logs: Default::default(),
        warnings: Vec::new(),
    }
}

/// `init_config`: only `service` means something to the check (the default `service` tag of
/// every instance); it is returned for [`instance`].
fn init_config(root: &Fields<'_>, report: &mut Report) -> Option<String> {
    let v = root.get_set("init_config")?;
    let f = mapping(report, &root.path("init_config"), v)?;
    for key in f.unknown(&["service"]) {
        report.warn(&f.path(key), format!("{} is ignored", quote(key)));
    }
    optional_string(report, &f, "service")
}

/// Metric patterns as written, to check that every instance agrees.
type PatternTexts = (Vec<String>, Vec<String>);

fn instances(
    root: &Fields<'_>,
    report: &mut Report,
    default_service: Option<&str>,
) -> (Vec<Target>, MetricToggles) {
    let path = root.path("instances");
    let items = match root.get("instances") {
        None | Some(Value::Null) => {
            report.problem(&path, "required: list at least one instance");
            return (Vec::new(), MetricToggles::default());
        }
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            type_problem(report, &path, "a list of instances", other);
            return (Vec::new(), MetricToggles::default());
        }
    };
    if items.is_empty() {
        report.problem(&path, "list at least one instance");
    }
    let mut targets = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut patterns: Option<(PatternTexts, Vec<NamePattern>, Vec<NamePattern>)> = None;
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        if !item.is_mapping() {
            type_problem(report, &item_path, "a mapping", item);
            continue;
        }
        let Some(f) = mapping(report, &item_path, item) else {
            continue;
        };
        let mp = metric_patterns(report, &f);
        match &patterns {
            None => patterns = Some(mp),
            Some((first, _, _)) if *first != mp.0 => report.problem(
                &f.path("metric_patterns"),
                "must be the same in every instance: metrics are switched on or off for the \
                 whole receiver",
            ),
            Some(_) => {}
        }
        if let Some(name) = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
        {
            match seen.get(name) {
                Some(first) => report.problem(
                    &f.path("name"),
                    format!(
                        "duplicate name {}: instances[{first}] has it too, and their metrics \
                         would mix",
                        quote(name)
                    ),
                ),
                None => {
                    seen.insert(name, i);
                }
            }
        }
        if let Some(t) = instance(report, &f, default_service) {
            targets.push(t);
        }
    }
    let toggles = match patterns {
        Some((_, include, exclude)) => toggles(&include, &exclude),
        None => MetricToggles::default(),
    };
    (targets, toggles)
}

/// One instance; `default_service` is `init_config`'s `service`, which the instance's own wins
/// over.
fn instance(report: &mut Report, f: &Fields<'_>, default_service: Option<&str>) -> Option<Target> {
    for key in f.unknown(INSTANCE_KEYS) {
        let mut message = format!("unknown option {} is ignored", quote(key));
        if let Some(near) = value::closest(key, INSTANCE_KEYS.iter().copied()) {
            message.push_str(&format!("; did you mean '{near}'?"));
        }
        report.warn(&f.path(key), message);
    }
    if f.get("server_check").is_some() {
        report.warn(
            &f.path("server_check"),
            "is ignored: supervisord.can_connect is always reported",
        );
    }

    let name = match f.get("name") {
        None | Some(Value::Null) => {
            report.problem(&f.path("name"), NAME_MISSING);
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            report.problem(&f.path("name"), NAME_MISSING);
            None
        }
        Some(v) => string(report, &f.path("name"), v).map(str::to_string),
    };
    let (endpoint, socket_mode) = match endpoint(report, f) {
        Some((e, s)) => (Some(e), s),
        None => (None, false),
    };
    let credentials = credentials(report, f, socket_mode);
    let filter = ProcessFilter {
        regex: regexes(report, f, "proc_regex"),
        regex_exclude: regexes(report, f, "proc_regex_exclude"),
        names: names(report, f, "proc_names"),
        names_exclude: names(report, f, "proc_names_exclude"),
        ..ProcessFilter::default()
    };
    let status_mapping = status_mapping_override(report, f);
    let autostart_attribute = autostart_tag(report, f);
    let (resource_attributes, point_attributes) = attributes(
        report,
        f,
        name.as_deref(),
        default_service,
        autostart_attribute,
    );
    let interval = interval(report, f);
    Some(Target {
        name: name?,
        endpoint: endpoint?,
        credentials,
        tls: TlsSettings::default(),
        collection_interval: interval,
        timeout: interval.min(TIMEOUT),
        // The check has no such key: push mode's default.
        reconcile_interval: crate::settings::DEFAULT_RECONCILE_INTERVAL,
        filter,
        status_mapping,
        resource_attributes,
        point_attributes,
        keep_alive: true,
        // The check sends no per-program resources: a Datadog file gets none, and no new
        // custom metrics appear on the bill.
        resources: crate::settings::ResourcesMode::Off,
        autostart_attribute,
        output: None,
    })
}

/// The endpoint and whether it came from `socket` (which changes the credential rule).
fn endpoint(report: &mut Report, f: &Fields<'_>) -> Option<(Endpoint, bool)> {
    if let Some(v) = f.get_set("socket") {
        let path = f.path("socket");
        let url = string(report, &path, v)?;
        if let Some(sock) = url.strip_prefix("unix://") {
            if sock.is_empty() {
                report.problem(
                    &path,
                    format!("invalid socket {}: the path is missing", quote(url)),
                );
                return None;
            }
            return Some((Endpoint::Unix { path: sock.into() }, true));
        }
        if let Some(rest) = url.strip_prefix("http://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            return match host_port(authority) {
                Ok((host, port)) => Some((
                    Endpoint::Tcp {
                        tls: false,
                        host,
                        port: port.unwrap_or(HTTP_SOCKET_DEFAULT_PORT),
                    },
                    true,
                )),
                Err(reason) => {
                    report.problem(&path, format!("invalid socket {}: {reason}", quote(url)));
                    None
                }
            };
        }
        report.problem(&path, format!("Unknown protocol for serverurl {url}"));
        return None;
    }
    let host = match f.get_set("host") {
        None => Some("localhost".to_string()),
        Some(v) => {
            string(report, &f.path("host"), v).and_then(|h| host(report, &f.path("host"), h))
        }
    };
    let port = match f.get_set("port") {
        None => Some(crate::config::endpoint::DEFAULT_PORT),
        Some(v) => port(report, &f.path("port"), v),
    };
    Some((
        Endpoint::Tcp {
            tls: false,
            host: host?,
            port: port?,
        },
        false,
    ))
}

fn host(report: &mut Report, path: &KeyPath, h: &str) -> Option<String> {
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return Some(v6.to_string());
    }
    let problem = if h.contains("://") {
        "expected a host name or address without a scheme (for a URL, use 'socket')".to_string()
    } else {
        match host_port(h) {
            Ok((host, None)) => return Some(host),
            Ok((_, Some(_))) => "expected a host name or address; the port goes in 'port'".into(),
            Err(reason) => reason,
        }
    };
    report.problem(path, format!("invalid host {}: {problem}", quote(h)));
    None
}

/// An integer or a numeric string, as the Agent accepts both.
fn port(report: &mut Report, path: &KeyPath, v: &Value) -> Option<u16> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match parsed
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
    {
        Some(p) => Some(p),
        None => {
            let shown = value::show(v);
            report.problem(
                path,
                format!("invalid port {shown}: expected an integer from 1 to 65535"),
            );
            None
        }
    }
}

/// An optional string option; `None` when absent or null.
fn optional_string(report: &mut Report, f: &Fields<'_>, key: &str) -> Option<String> {
    let v = f.get_set(key)?;
    string(report, &f.path(key), v).map(str::to_string)
}

/// The check's rule: `user or username`, `pass or password`; over inet both must be non-empty,
/// over a socket both must merely be present.
fn credentials(report: &mut Report, f: &Fields<'_>, socket_mode: bool) -> Option<Credentials> {
    let user = optional_string(report, f, "user").filter(|s| !s.is_empty());
    let pass = optional_string(report, f, "pass").filter(|s| !s.is_empty());
    if user.is_some() {
        report.warn_plain(deprecation("user", "username"));
    }
    if pass.is_some() {
        report.warn_plain(deprecation("pass", "password"));
    }
    let username = user.or_else(|| optional_string(report, f, "username"));
    let password = pass.or_else(|| optional_string(report, f, "password"));
    match (username, password) {
        (Some(u), Some(p)) if socket_mode || (!u.is_empty() && !p.is_empty()) => {
            Some(Credentials {
                username: u,
                password: Secret::new(p),
            })
        }
        _ => None,
    }
}

/// The check's "list of strings" test, with its message; items must be strings too.
fn string_items(report: &mut Report, f: &Fields<'_>, key: &str) -> Vec<(KeyPath, String)> {
    let path = f.path(key);
    match f.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let item_path = path.index(i);
                string(report, &item_path, item).map(|s| (item_path, s.to_string()))
            })
            .collect(),
        Some(other) => {
            let example = python::repr(&Value::Sequence(vec![other.clone()]));
            report.problem(
                &path,
                format!("'{key}' should be a list of strings. e.g. {example}"),
            );
            Vec::new()
        }
    }
}

fn names(report: &mut Report, f: &Fields<'_>, key: &str) -> Vec<String> {
    string_items(report, f, key)
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

/// Python patterns, as the check's `re.search(rgx, name)` reads them.
fn regexes(report: &mut Report, f: &Fields<'_>, key: &str) -> Vec<NamePattern> {
    string_items(report, f, key)
        .into_iter()
        .filter_map(|(path, s)| compile_python_regex(report, &path, &s))
        .collect()
}

fn status_mapping_override(report: &mut Report, f: &Fields<'_>) -> StatusMapping {
    let mut out = StatusMapping::default();
    let path = f.path("status_mapping_override");
    let map = match f.get("status_mapping_override") {
        None | Some(Value::Null) => return out,
        Some(Value::Mapping(map)) => map,
        Some(_) => {
            report.problem(&path, "'status_mapping_override' should be a dictionary");
            return out;
        }
    };
    for (k, v) in map {
        let entry = k.as_str().map_or_else(|| path.clone(), |key| path.key(key));
        let status = v.as_str().and_then(Status::from_name);
        let Some(status) = status else {
            report.problem(
                &entry,
                format!(
                    "'status_mapping_override' should be a status mapping e.g. {} => {}",
                    python::str(k),
                    python::str(v)
                ),
            );
            continue;
        };
        match k.as_str().and_then(ProcessState::from_name) {
            Some(state) => out.set(state, status),
            None => {
                let states: Vec<&str> = ProcessState::ALL.iter().map(|s| s.name()).collect();
                report.warn(
                    &entry,
                    format!(
                        "{} is not a supervisord state and never matches; states are {}",
                        quote(&python::str(k)),
                        states.join(", ")
                    ),
                );
            }
        }
    }
    out
}

/// Attributes as `(key, value)`, in order.
type Attributes = Vec<(String, String)>;

/// The attribute key of `service` on points: Datadog makes a point attribute `k` the tag `k:v`,
/// so `service` gives the check's `service:<name>` tag.
const SERVICE_POINT_KEY: &str = "service";
/// The attribute key of `service` on the resource, which Datadog maps to its `service` tag.
const SERVICE_RESOURCE_KEY: &str = "service.name";

/// `tags` (`key:value`, split at the first `:`; no `:` gives an empty value) and `service` (the
/// instance's, else `init_config`'s), as the check tags every metric with them.
///
/// Returns the resource attributes (each key once, the first value kept; `service` as
/// `service.name`) and the point attributes (`supervisord_server`, then every tag in order, a
/// key given twice included, then `service`). Datadog's OTLP ingest turns point attributes into tags and ignores resource
/// attributes unless `resource_attributes_as_tags` is on, so only the points keep every tag a
/// migrating user's monitors filter on. A key given twice (`role:web`, `role:db`) is two
/// `KeyValue`s with the same key on each point: the OTLP specification asks for unique keys,
/// but Datadog's mapping reads the attribute list in order and makes a tag of each, which is how
/// the check's two tags survive; no conformant form (an array value, a joined string) does that.
///
/// An `autostart` tag is the user's own unless the instance asks for the receiver's
/// (`autostart_tag: true`), so a file that loaded before that key existed still loads.
fn attributes(
    report: &mut Report,
    f: &Fields<'_>,
    name: Option<&str>,
    default_service: Option<&str>,
    autostart_attribute: bool,
) -> (Attributes, Attributes) {
    let mut resource: Vec<(String, String)> = Vec::new();
    // The check tags every metric `supervisord_server:<name>` first.
    let mut points: Vec<(String, String)> = name
        .map(|n| (SUPERVISORD_SERVER.key.to_string(), n.to_string()))
        .into_iter()
        .collect();
    let path = f.path("tags");
    let tags = match f.get("tags") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Sequence(items)) => &items[..],
        Some(other) => {
            type_problem(report, &path, "a list of 'key:value' strings", other);
            &[][..]
        }
    };
    for (i, tag) in tags.iter().enumerate() {
        let at = path.index(i);
        let Some(text) = string(report, &at, tag) else {
            continue;
        };
        let (key, val) = text.split_once(':').unwrap_or((text, ""));
        let ours = key != AUTOSTART.key || autostart_attribute;
        if let Some(message) = attribute_key_problem(key).filter(|_| ours) {
            report.problem(&at, message);
            continue;
        }
        if !resource.iter().any(|(k, _)| k == key) {
            resource.push((key.to_string(), val.to_string()));
        }
        points.push((key.to_string(), val.to_string()));
    }
    let service = optional_string(report, f, "service")
        .or_else(|| default_service.map(str::to_string))
        .filter(|s| !s.is_empty());
    if let Some(service) = service {
        // The option names the service; a `service.name:` tag yields to it on the resource.
        resource.retain(|(k, _)| k != SERVICE_RESOURCE_KEY);
        resource.push((SERVICE_RESOURCE_KEY.to_string(), service.clone()));
        points.push((SERVICE_POINT_KEY.to_string(), service));
    }
    (resource, points)
}

/// `autostart_tag` (not a key of the check, which ignores it): `true` tags the process status
/// and state points `autostart:true` or `autostart:false` from supervisord's configuration.
/// Off by default, so what the check sent stays exactly what is sent.
fn autostart_tag(report: &mut Report, f: &Fields<'_>) -> bool {
    f.get_set("autostart_tag")
        .and_then(|v| value::boolean(report, &f.path("autostart_tag"), v))
        .unwrap_or(false)
}

/// `min_collection_interval`, in seconds (integer, float or numeric string).
fn interval(report: &mut Report, f: &Fields<'_>) -> Duration {
    let default = Duration::from_secs_f64(DEFAULT_INTERVAL_SECS);
    let Some(v) = f.get_set("min_collection_interval") else {
        return default;
    };
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match secs
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    {
        Some(d) => d,
        None => {
            let shown = value::show(v);
            report.problem(
                &f.path("min_collection_interval"),
                format!("invalid interval {shown}: expected a number of seconds greater than 0"),
            );
            default
        }
    }
}

/// `metric_patterns`: the texts (to compare instances) and the compiled Python patterns.
fn metric_patterns(
    report: &mut Report,
    f: &Fields<'_>,
) -> (PatternTexts, Vec<NamePattern>, Vec<NamePattern>) {
    let empty = ((Vec::new(), Vec::new()), Vec::new(), Vec::new());
    let Some(v) = f.get_set("metric_patterns") else {
        return empty;
    };
    let Some(mp) = mapping(report, &f.path("metric_patterns"), v) else {
        return empty;
    };
    for key in mp.unknown(&["include", "exclude"]) {
        report.warn(
            &mp.path(key),
            format!("unknown option {} is ignored", quote(key)),
        );
    }
    let mut side = |key: &str| {
        let items = string_items(report, &mp, key);
        let texts: Vec<String> = items.iter().map(|(_, s)| s.clone()).collect();
        let compiled = items
            .iter()
            .filter_map(|(p, s)| compile_python_regex(report, p, s))
            .collect::<Vec<_>>();
        (texts, compiled)
    };
    let (include_texts, include) = side("include");
    let (exclude_texts, exclude) = side("exclude");
    ((include_texts, exclude_texts), include, exclude)
}

/// Datadog's rule: with includes, keep only matching names; then drop names an exclude matches.
/// A pattern that gives up on a name does not match it (and says so once, in a warning).
fn toggles(include: &[NamePattern], exclude: &[NamePattern]) -> MetricToggles {
    let mut t = MetricToggles::default();
    for name in metric_names() {
        let kept = (include.is_empty() || include.iter().any(|r| r.is_match(name)))
            && !exclude.iter().any(|r| r.is_match(name));
        if !kept {
            // The name comes from the table itself, so it is known.
            let _ = t.set_enabled(name, false);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecation_text_is_the_agents() {
        assert_eq!(
            deprecation("user", "username"),
            "DEPRECATION NOTICE: The `user` config option has been renamed to `username` and \
             will be removed in a future release."
        );
    }

    #[test]
    fn metric_patterns_follow_datadog() {
        let re = |s: &str| NamePattern::python(s).unwrap();
        let t = toggles(&[re("process")], &[re("uptime")]);
        assert!(t.is_enabled(crate::schema::MetricId::ProcessCount));
        assert!(!t.is_enabled(crate::schema::MetricId::ProcessUptime));
        assert!(!t.is_enabled(crate::schema::MetricId::SupervisorState));
        let all = toggles(&[], &[]);
        assert_eq!(all, MetricToggles::default());
    }

    #[test]
    fn instance_defaults() {
        let s = crate::config::load_bytes(
            std::path::Path::new("d.yaml"),
            b"instances: [{name: a}]",
            &|_| None,
        )
        .unwrap();
        let t = &s.targets[0];
        assert_eq!(s.format, ConfigFormat::Datadog);
        assert_eq!(
            t.endpoint,
            Endpoint::Tcp {
                tls: false,
                host: "localhost".into(),
                port: 9001
            }
        );
        assert_eq!(t.collection_interval, Duration::from_secs(15));
        assert_eq!(t.timeout, TIMEOUT);
        assert!(t.credentials.is_none());
        assert!(s.warnings.is_empty());
    }
}
