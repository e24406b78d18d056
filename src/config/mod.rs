//! Configuration: the native format and Datadog's `supervisord.d/conf.yaml`, validated and
//! resolved into [`Settings`]; also a directory of such files (`directory.rs`) and supervisord's
//! own configuration, for the local supervisord without a receiver config
//! ([`supervisord_conf`]).
//!
//! Loading is one pass that reports every problem at once (`file:line:col: key: message`):
//! read the file, parse it into a YAML tree, expand `${env:NAME}`, pick the format from the
//! top-level keys (`instances` or `init_config` mean Datadog's), validate and resolve, then
//! fill in the OTLP exporter from `OTEL_EXPORTER_OTLP_*` when the file names none.
mod datadog;
mod directory;
mod duration;
mod endpoint;
mod error;
mod expand;
mod exporters;
mod locate;
mod native;
mod otel_env;
mod python;
mod redact;
pub mod supervisord_conf;
mod value;

use std::path::Path;

use serde_yaml::Value;

use crate::settings::{ExporterSettings, Settings, TemporalityPreference};

pub use error::{ConfigError, Problem};
pub use expand::EnvLookup;
pub(crate) use redact::{mode_if_world_readable, world_readable};

use error::{KeyPath, Report};
use locate::Positions;

/// Attribute names the receiver sets itself, which user attributes may not reuse: every key
/// of the metric definitions table (ATTRIBUTES lists `state` twice, once per meaning).
pub fn reserved_attributes() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for attribute in crate::schema::definitions::ATTRIBUTES {
        if !keys.contains(&attribute.key) {
            keys.push(attribute.key);
        }
    }
    keys
}

/// Loads `path` (a file, or a directory of files), reading `${env:...}` and `OTEL_*` from the
/// process environment.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// Loads `path` with `env` as the environment, so tests need not touch the process's.
///
/// A file with a password or header value written in it (not only `${env:...}` or
/// `${file:...}` references) that every user may read gets a warning: the secret is as public as
/// the file.
pub fn load_with_env(path: &Path, env: EnvLookup<'_>) -> Result<Settings, ConfigError> {
    if path.is_dir() {
        return directory::load(path, env);
    }
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Io {
        file: path.to_path_buf(),
        error,
    })?;
    let mut holds_secret = false;
    let mut settings = load_scanned(path, &bytes, env, &mut holds_secret)?;
    if let Some(warning) = exposed_secrets(path, holds_secret) {
        settings.warnings.insert(0, warning);
    }
    Ok(settings)
}

/// The warning for a file that holds a secret (`holds_secret`) and that every user may read.
fn exposed_secrets(path: &Path, holds_secret: bool) -> Option<String> {
    let mode = world_readable(path).filter(|_| holds_secret)?;
    Some(format!(
        "this file holds a password or header value and is readable by every user \
         (mode {mode:04o}); run chmod o-r on it, or move the secrets to ${{env:...}} or \
         to ${{file:...}} files only the receiver can read"
    ))
}

/// Loads configuration text; `file` only names it in messages.
pub fn load_bytes(file: &Path, bytes: &[u8], env: EnvLookup<'_>) -> Result<Settings, ConfigError> {
    load_scanned(file, bytes, env, &mut false)
}

/// One file read and parsed: its YAML tree with `${env:...}` and `${file:...}` expanded, where
/// each key sits, what the expansion found, and the secrets to keep out of messages.
struct Document {
    tree: Value,
    positions: Positions,
    report: Report,
    secrets: Vec<String>,
}

impl Document {
    /// The error for `problems` of this document's `file`, secrets scrubbed from the messages.
    fn invalid(&self, file: &Path, problems: Vec<Problem>) -> ConfigError {
        scrubbed(file, problems, &self.secrets)
    }
}

/// A [`ConfigError::Invalid`] whose messages quote none of `secrets`.
fn scrubbed(file: &Path, problems: Vec<Problem>, secrets: &[String]) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        problems: problems
            .into_iter()
            .map(|p| Problem {
                message: redact::scrub(&p.message, secrets),
                ..p
            })
            .collect(),
    }
}

/// Reads `bytes` as YAML and expands it; fails at once when the text is not YAML.
fn parse(
    file: &Path,
    bytes: &[u8],
    env: EnvLookup<'_>,
    holds_secret: &mut bool,
) -> Result<Document, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            return Err(invalid(vec![Problem {
                key_path: String::new(),
                line_col: Some((line, col)),
                message: "not UTF-8 text".into(),
            }]));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let positions = Positions::scan(text);
    let mut report = Report::default();

    let mut tree: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let at = e.location().map(|l| (l.line(), l.column()));
            report.problem_at(at, format!("invalid YAML: {}", yaml_message(&e)));
            return Err(invalid(report.into_problems(&positions)));
        }
    };
    if let Err(e) = tree.apply_merge() {
        let at = e.location().map(|l| (l.line(), l.column()));
        report.problem_at(at, format!("invalid YAML merge (<<): {}", yaml_message(&e)));
        return Err(invalid(report.into_problems(&positions)));
    }
    *holds_secret = redact::holds_secret(&tree, &KeyPath::root());
    let mut reads = expand::FileReads::default();
    expand::expand_tree(&mut tree, &KeyPath::root(), env, &mut report, &mut reads);
    let secrets = redact::secret_values(&tree, &reads.values);
    Ok(Document {
        tree,
        positions,
        report,
        secrets,
    })
}

/// [`load_bytes`], also telling whether the text holds a secret.
fn load_scanned(
    file: &Path,
    bytes: &[u8],
    env: EnvLookup<'_>,
    holds_secret: &mut bool,
) -> Result<Settings, ConfigError> {
    let mut document = parse(file, bytes, env, holds_secret)?;
    let mut report = std::mem::take(&mut document.report);
    let Some(root) = top_level(&document.tree, &mut report) else {
        return Err(document.invalid(file, report.into_problems(&document.positions)));
    };

    let is_datadog = is_datadog(&root);
    let mut settings = if is_datadog {
        datadog::read(&root, &mut report)
    } else {
        native::read(&root, &mut report)
    };
    let file_sets_temporality = !is_datadog && root.get_set(native::METRICS_TEMPORALITY).is_some();
    environment(&mut settings, file_sets_temporality, env, &mut report);

    if report.has_problems() {
        return Err(document.invalid(file, report.into_problems(&document.positions)));
    }
    settings.warnings = report
        .into_warnings(&document.positions)
        .iter()
        .map(|w| redact::scrub(w, &document.secrets))
        .collect();
    Ok(settings)
}

/// Whether a document is Datadog's: it has `instances` or `init_config`.
fn is_datadog(root: &value::Fields<'_>) -> bool {
    root.get("instances").is_some() || root.get("init_config").is_some()
}

/// The top-level mapping of a document, or `None` with the problem reported.
fn top_level<'v>(tree: &'v Value, report: &mut Report) -> Option<value::Fields<'v>> {
    let root_path = KeyPath::root();
    match tree {
        Value::Null => {
            report.problem(
                &root_path,
                "the file is empty; expected a mapping with 'targets' (or Datadog's 'instances')",
            );
            None
        }
        Value::Mapping(_) => value::mapping(report, &root_path, tree),
        other => {
            report.problem(
                &root_path,
                format!(
                    "expected a mapping at the top level, found {}",
                    value::describe(other)
                ),
            );
            None
        }
    }
}

/// What the environment decides: the temporality, unless the file sets it, and the OTLP
/// exporters from `OTEL_EXPORTER_OTLP_*`, when the settings have no exporter.
fn environment(
    settings: &mut Settings,
    file_sets_temporality: bool,
    env: EnvLookup<'_>,
    report: &mut Report,
) {
    if let Some(preference) = temporality_from_env(env, file_sets_temporality, report) {
        settings.temporality = preference;
    }
    if settings.exporters.is_empty() {
        settings.exporters.extend(
            otel_env::from_env(env, report)
                .into_iter()
                .map(ExporterSettings::Otlp),
        );
    } else {
        for name in otel_env::set_variables(env) {
            report.env_warn(&name, "ignored: the file configures its exporters");
        }
    }
}

/// The OpenTelemetry exporter specification's variable for the sums' temporality.
pub const TEMPORALITY_VARIABLE: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";

/// [`TEMPORALITY_VARIABLE`], when it decides: set (an empty variable counts as unset) and the
/// file sets no `metrics_temporality` (a Datadog-format file never does). The same for the
/// exporters of the file and those of the environment: temporality is not a connection setting.
fn temporality_from_env(
    env: EnvLookup<'_>,
    file_sets_it: bool,
    report: &mut Report,
) -> Option<TemporalityPreference> {
    let value = env(TEMPORALITY_VARIABLE).filter(|v| !v.trim().is_empty())?;
    if file_sets_it {
        report.env_warn(
            TEMPORALITY_VARIABLE,
            format!("ignored: the file sets {}", native::METRICS_TEMPORALITY),
        );
        return None;
    }
    let preference = TemporalityPreference::parse(value.trim());
    if preference.is_none() {
        report.env_problem(
            TEMPORALITY_VARIABLE,
            format!(
                "invalid temporality {}: expected {}",
                value::quote(&value),
                native::temporality_values()
            ),
        );
    }
    preference
}

/// The parser's message without its own "at line L column C" (the problem carries those), and
/// without the values it quotes between backticks: the value may be a password (an integer too
/// large for any type is reported that way), and the position already shows it.
fn yaml_message(e: &serde_yaml::Error) -> String {
    let mut text = e.to_string();
    for (pattern, replacement) in [(r" at line \d+ column \d+", ""), (r"`[^`]*`", "(value)")] {
        if let Ok(re) = regex::Regex::new(pattern) {
            text = re.replace_all(&text, replacement).into_owned();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ConfigFormat;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        load_bytes(Path::new("m.yaml"), text.as_bytes(), &|_| None)
    }

    #[test]
    fn format_follows_the_top_level_keys() {
        let native = load("targets: [{name: a, endpoint: 'http://h'}]").unwrap();
        assert_eq!(native.format, ConfigFormat::Native);
        let dd = load("init_config:\ninstances: [{name: a}]").unwrap();
        assert_eq!(dd.format, ConfigFormat::Datadog);
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        assert!(load("\u{feff}targets: [{name: a, endpoint: 'http://h'}]").is_ok());
    }

    #[test]
    fn yaml_messages_lose_positions_and_quoted_values() {
        let e = serde_yaml::from_str::<Value>("a: [1,\n").unwrap_err();
        assert!(!yaml_message(&e).contains(" at line "));
        let e = serde_yaml::from_str::<Value>("a: 99999999999999999999999\n").unwrap_err();
        assert!(!yaml_message(&e).contains("9999"), "{}", yaml_message(&e));
    }

    #[test]
    fn io_errors_name_the_file() {
        let err = load_with_env(Path::new("/nonexistent/x.yaml"), &|_| None).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("/nonexistent/x.yaml: cannot read: "));
    }
}
