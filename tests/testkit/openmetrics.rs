//! A real OpenMetrics parser for the tests of `GET /metrics`: Python's `prometheus_client`
//! (`prometheus_client.openmetrics.parser.text_string_to_metric_families`), the Prometheus
//! project's own client library, which rejects what the OpenMetrics specification forbids
//! (interleaved families, a StateSet without its label, a unit that is not the name's suffix, a
//! missing `# EOF` ...).
//!
//! Installed by the routine that installs the supervisor venv
//! ([`super::provision::install_pinned_venv`]): `prometheus-client` [`PROMETHEUS_CLIENT_PIN`]
//! from PyPI into `<target dir>/openmetrics-venv`, built in a staging dir, marked complete last
//! and renamed into place under a cross-process lock, once per machine and target dir. Python 3
//! with `venv` and `pip` must be present; a failure to install fails the test with what went
//! wrong.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;

use super::provision::install_pinned_venv;
use super::supervisord::target_dir;

/// The `prometheus-client` release the venv installs; a venv of another one is rebuilt.
pub const PROMETHEUS_CLIENT_PIN: &str = "0.26.0";

/// Parses stdin with the real parser and prints the families as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": family.name,
        "type": family.type,
        "unit": family.unit,
        "help": family.documentation,
        "samples": [
            {
                "name": s.name,
                "labels": s.labels,
                "value": s.value,
                "timestamp": None if s.timestamp is None else str(s.timestamp),
            }
            for s in family.samples
        ],
    })
json.dump(families, sys.stdout)
"#;

/// One metric family as the parser read it.
#[derive(Debug, Clone, Deserialize)]
pub struct Family {
    pub name: String,
    /// `gauge`, `counter`, `stateset`, `info`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub unit: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    /// The sample's own name: `x_total` and `x_created` in counter `x`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp: Option<String>,
}

/// Parses an exposition with `prometheus_client`; `Err` with the parser's complaint when it
/// rejects the text. Panics when the parser cannot be installed or run.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut child = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the OpenMetrics parser: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("OpenMetrics parser: cannot write: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("OpenMetrics parser: {e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("OpenMetrics parser: unexpected output ({e})"))
}

/// The venv's Python, installing the venv first when needed (once per process).
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| provision(&target_dir()).unwrap_or_else(|e| panic!("{e}")))
}

fn provision(target_dir: &Path) -> Result<PathBuf, String> {
    let venv = target_dir.join("openmetrics-venv");
    install_pinned_venv(
        &venv,
        "prometheus-client",
        PROMETHEUS_CLIENT_PIN,
        is_complete,
    )?;
    Ok(venv.join("bin").join("python"))
}

/// The marker, written last with the pin in it, says the venv is finished and which release it
/// holds: a venv of another release is rebuilt.
fn is_complete(venv: &Path) -> bool {
    fs::read_to_string(venv.join(".complete")).is_ok_and(|pin| pin == PROMETHEUS_CLIENT_PIN)
        && venv.join("bin").join("python").exists()
}
