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
use crate::config::secret::Secret;
use crate::config::settings::{ConfigFormat, Credentials, Endpoint, Settings, Target, TlsSettings};
use crate::config::value::{
    self, boolean, mapping, nonblank, quote, regex_list, string, string_list, type_problem, Fields,
};
use crate::metrics::{metric_names, MetricToggles};
use crate::scrape::filter::ProcessFilter;
use crate::scrape::status::{Status, StatusMapping};
use crate::supervisor::model::ProcessState;

const TOP_KEYS: &[&str] = &[
    "collection_interval",
    "initial_delay",
    "timeout",
    "targets",
    "metrics",
    "exporters",
];

const TARGET_KEYS: &[&str] = &[
    "name",
    "endpoint",
    "username",
    "password",
    "collection_interval",
    "timeout",
    "tls",
    "include",
    "exclude",
    "status_mapping",
    "resource_attributes",
];

/// Datadog's `min_collection_interval` default, so both formats poll at the same pace.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The interval and timeout a target inherits.
struct Defaults {
    interval: Duration,
    timeout: Duration,
    /// Whether the user wrote `timeout` at the top level: clamping the built-in default to a
    /// short interval is expected and not worth a warning.
    timeout_is_explicit: bool,
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
        timeout,
        timeout_is_explicit: root.get_set("timeout").is_some(),
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
    Settings {
        format: ConfigFormat::Native,
        initial_delay,
        targets,
        metrics,
        exporters,
        warnings: Vec::new(),
    }
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
            let tls = tls(report, &f.path("tls"), v).unwrap_or_default();
            if endpoint.is_some() && !is_https {
                report.problem(&f.path("tls"), "applies to https:// endpoints only");
            }
            tls
        }
    };
    let (collection_interval, timeout) = timing(report, &f, defaults);
    let filter = filter(report, &f);
    let status_mapping = match f.get_set("status_mapping") {
        Some(v) => status_mapping(report, &f.path("status_mapping"), v),
        None => StatusMapping::default(),
    };
    let resource_attributes = match f.get_set("resource_attributes") {
        Some(v) => resource_attributes(report, &f.path("resource_attributes"), v),
        None => Vec::new(),
    };
    Some(Target {
        name: name?,
        endpoint: endpoint?,
        credentials,
        tls,
        collection_interval,
        timeout,
        filter,
        status_mapping,
        resource_attributes,
    })
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

pub fn tls(report: &mut Report, path: &KeyPath, v: &Value) -> Option<TlsSettings> {
    let f = mapping(report, path, v)?;
    f.reject_unknown(report, &["ca_file", "insecure_skip_verify"]);
    let ca_file = f.get_set("ca_file").and_then(|v| {
        let path = f.path("ca_file");
        let file = nonblank(report, &path, v)?;
        if let Err(e) = std::fs::metadata(file) {
            report.problem(&path, format!("cannot read {}: {e}", quote(file)));
        }
        Some(file.into())
    });
    let insecure_skip_verify = f
        .get_set("insecure_skip_verify")
        .and_then(|v| boolean(report, &f.path("insecure_skip_verify"), v))
        .unwrap_or(false);
    Some(TlsSettings {
        ca_file,
        insecure_skip_verify,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_bytes, ConfigError};

    fn load(text: &str) -> Result<Settings, Vec<String>> {
        load_bytes(std::path::Path::new("n.yaml"), text.as_bytes(), &|_| None).map_err(
            |e| match e {
                ConfigError::Invalid { problems, .. } => problems
                    .into_iter()
                    .map(|p| format!("{}: {}", p.key_path, p.message))
                    .collect(),
                other => vec![other.to_string()],
            },
        )
    }

    #[test]
    fn defaults_fill_a_minimal_file() {
        let s = load("targets: [{name: a, endpoint: 'unix:///s.sock'}]").unwrap();
        assert_eq!(s.format, ConfigFormat::Native);
        assert_eq!(s.initial_delay, DEFAULT_INITIAL_DELAY);
        let t = &s.targets[0];
        assert_eq!(t.collection_interval, DEFAULT_INTERVAL);
        assert_eq!(t.timeout, DEFAULT_TIMEOUT);
        assert_eq!(t.status_mapping, StatusMapping::default());
        assert!(t.resource_attributes.is_empty());
    }

    #[test]
    fn per_target_overrides_and_zero_initial_delay() {
        let s = load(
            "initial_delay: 0s\ncollection_interval: 1m\ntargets:\n  - name: a\n    \
             endpoint: http://h\n    collection_interval: 2s\n    timeout: 500ms\n",
        )
        .unwrap();
        assert_eq!(s.initial_delay, Duration::ZERO);
        assert_eq!(s.targets[0].collection_interval, Duration::from_secs(2));
        assert_eq!(s.targets[0].timeout, Duration::from_millis(500));
    }

    #[test]
    fn credentials_need_both_halves() {
        let errs = load("targets: [{name: a, endpoint: 'http://h', password: x}]").unwrap_err();
        assert_eq!(errs, ["targets[0].password: set username too, or neither"]);
        let errs = load("targets: [{name: a, endpoint: 'http://h', username: u, password: ''}]")
            .unwrap_err();
        assert_eq!(errs, ["targets[0].password: must not be empty"]);
    }

    #[test]
    fn reserved_attribute_names() {
        assert!(attribute_key_problem("supervisord_process").is_some());
        assert!(attribute_key_problem(" ").is_some());
        assert!(attribute_key_problem("env").is_none());
    }

    #[test]
    fn metrics_switch_off() {
        let s = load(
            "targets: [{name: a, endpoint: 'http://h'}]\nmetrics:\n  \
             supervisord.process.uptime: {enabled: false}\n",
        )
        .unwrap();
        assert!(!s
            .metrics
            .is_enabled(crate::metrics::MetricId::ProcessUptime));
        assert!(s.metrics.is_enabled(crate::metrics::MetricId::ProcessCount));
    }
}
