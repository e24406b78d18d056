//! Configuration loading through the public API: both example files, every error text of the
//! Datadog check, unknown keys, `${env:...}`, the OTEL_* variables, positions and secrets.

mod admin;
mod datadog;
mod env;
mod examples;
mod native;
mod output;
mod robustness;
mod temporality;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use supervisord_receiver::config::{load_bytes, load_with_env, ConfigError, Problem};
use supervisord_receiver::schema::MetricId;
use supervisord_receiver::settings::{
    ConfigFormat, Endpoint, ExporterSettings, OtlpProtocol, OtlpSettings, Settings,
};
use supervisord_receiver::vocab::Status;
use supervisord_receiver::vocab::{ProcessInfo, ProcessState};

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    load_bytes(Path::new("c.yaml"), text.as_bytes(), &env_of(vars))
}

fn ok(text: &str) -> Settings {
    load_text(text, &[]).unwrap_or_else(|e| panic!("expected to load:\n{e}"))
}

fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
    match load_text(text, vars) {
        Ok(_) => panic!("expected problems for:\n{text}"),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// `key_path: message` of every problem.
fn messages(text: &str) -> Vec<String> {
    problems(text, &[])
        .into_iter()
        .map(|p| format!("{}: {}", p.key_path, p.message))
        .collect()
}

fn display(text: &str, vars: &[(&str, &str)]) -> String {
    match load_text(text, vars) {
        Ok(_) => panic!("expected problems for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn otlp(s: &Settings) -> &OtlpSettings {
    match s.exporters.first() {
        Some(ExporterSettings::Otlp(o)) => o,
        other => panic!("expected an OTLP exporter, got {other:?}"),
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The example with every optional setting turned on: "# " removed where it starts a line's
/// text (explanations start with "##" and stay comments).
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            let rest = &line[indent..];
            match rest.strip_prefix("# ") {
                Some(setting) if !rest.starts_with("##") => format!("{}{setting}", &line[..indent]),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tcp(host: &str, port: u16) -> Endpoint {
    Endpoint::Tcp {
        tls: false,
        host: host.into(),
        port,
    }
}

const DD: &str = "init_config:\ninstances:\n";

/// A Datadog-format file with one instance (`instance` is its YAML, unindented).
fn dd(instance: &str) -> String {
    let mut out = String::from(DD);
    for (i, line) in instance.lines().enumerate() {
        out.push_str(if i == 0 { "  - " } else { "    " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A native target list, for the cases that need any valid target.
const TARGET: &str = "targets:\n  - name: a\n    endpoint: http://h:9001\n";
