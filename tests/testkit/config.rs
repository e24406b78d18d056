//! Writes receiver config files (native and Datadog format) for the end-to-end tests.

use std::path::{Path, PathBuf};

use super::supervisord::{write_file, Auth};
use super::yaml_str;

/// One entry of the native `targets:` list.
#[derive(Debug, Clone)]
pub struct TargetYaml {
    name: String,
    endpoint: String,
    auth: Option<Auth>,
    /// More keys of the target, written without indentation (`include:\n  names: [a]`).
    extra: String,
}

pub fn target(name: &str, endpoint: &str) -> TargetYaml {
    TargetYaml {
        name: name.to_string(),
        endpoint: endpoint.to_string(),
        auth: None,
        extra: String::new(),
    }
}

impl TargetYaml {
    pub fn auth(mut self, auth: Option<&Auth>) -> TargetYaml {
        self.auth = auth.cloned();
        self
    }

    pub fn extra(mut self, yaml: &str) -> TargetYaml {
        self.extra.push_str(yaml);
        if !self.extra.ends_with('\n') {
            self.extra.push('\n');
        }
        self
    }

    fn render(&self) -> String {
        let mut out = format!(
            "  - name: {}\n    endpoint: {}\n",
            yaml_str(&self.name),
            yaml_str(&self.endpoint)
        );
        if let Some(auth) = &self.auth {
            out.push_str(&format!(
                "    username: {}\n    password: {}\n",
                yaml_str(&auth.username),
                yaml_str(&auth.password)
            ));
        }
        for line in self.extra.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// The `otlp:` exporter block (indented under `exporters:`).
pub fn otlp_exporter(
    protocol: &str,
    endpoint: &str,
    compression: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut out = format!(
        "  otlp:\n    protocol: {protocol}\n    endpoint: {}\n    compression: {compression}\n",
        yaml_str(endpoint)
    );
    if !headers.is_empty() {
        out.push_str("    headers:\n");
        for (k, v) in headers {
            out.push_str(&format!("      {k}: {}\n", yaml_str(v)));
        }
    }
    out
}

/// The `debug:` exporter block (indented under `exporters:`).
pub fn debug_exporter(verbosity: &str) -> String {
    format!("  debug:\n    verbosity: {verbosity}\n")
}

/// A native config polling every second from the start, with the given exporter blocks.
pub fn native(targets: &[TargetYaml], exporters: &[String]) -> String {
    let mut out =
        String::from("collection_interval: 1s\ninitial_delay: 0s\ntimeout: 1s\ntargets:\n");
    for t in targets {
        out.push_str(&t.render());
    }
    out.push_str("exporters:\n");
    for e in exporters {
        out.push_str(e);
    }
    out
}

/// Writes a config file into `dir` and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    write_file(dir, name, text)
}
