//! A directory of configuration files (`--config DIR`): every `*.yaml` and `*.yml` in it, in
//! name order, all in one format.
//!
//! - **Datadog's `conf.d/supervisord.d/`**: each file (`conf.yaml`, `auto_conf.yaml`, ...) is
//!   read on its own, with its own `init_config` and `instances`, as the Agent reads them; the
//!   instances of all files are polled. Instance names are unique across the files, and
//!   `metric_patterns` (which switch metrics for the whole receiver) agree.
//! - **Native files**: read as one document. `targets` add up, in file order, with names unique
//!   across the files; every other top-level key (`exporters`, `collection_interval`,
//!   `health`, ...) may be set in one file only and then applies to all, so a directory can keep
//!   the exporters in one file and the targets in others.
//!
//! Which files are read follows the Agent's rules for a check's directory: subdirectories and
//! empty files are skipped; a name must end in `.yaml` or `.yml` (so `conf.yaml.example` is not
//! read); `*.yaml.default` and `*.yml.default` are read only when the directory has no other
//! configuration file; a file of nothing but comments is skipped as an empty one. Every problem
//! names its own file, line and key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::error::{KeyPath, Report, Seg};
use super::locate::Positions;
use super::value::{quote, Fields};
use super::{
    datadog, environment, exposed_secrets, is_datadog, native, parse, scrubbed, top_level,
    ConfigError, Document, EnvLookup, Problem,
};
use crate::settings::Settings;

/// Loads every configuration file of `dir`.
pub fn load(dir: &Path, env: EnvLookup<'_>) -> Result<Settings, ConfigError> {
    let paths = files(dir)?;
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                errors.push(ConfigError::Io { file: path, error });
                continue;
            }
        };
        // The Agent skips empty files, so that provisioning tools may leave one.
        if bytes.is_empty() {
            continue;
        }
        let mut holds_secret = false;
        match parse(&path, &bytes, env, &mut holds_secret) {
            // Only comments: nothing to read, as an empty file (the Agent skips it too, as a
            // file without instances).
            Ok(document) if document.tree.is_null() && !document.report.has_problems() => {
                skipped.push(format!(
                    "{}: holds nothing but comments; skipped",
                    file_name(&path)
                ));
            }
            Ok(document) => files.push(File {
                warnings: exposed_secrets(&path, holds_secret).into_iter().collect(),
                path,
                document,
            }),
            Err(error) => errors.push(error),
        }
    }
    if let Some(error) = ConfigError::combine(errors) {
        return Err(error);
    }
    if files.is_empty() {
        return Err(whole(
            dir,
            "holds no configuration file to read: expected *.yaml or *.yml files with more \
             than comments in them",
        ));
    }
    let secrets: Vec<String> = files
        .iter()
        .flat_map(|f| f.document.secrets.iter().cloned())
        .collect();

    // The format of each file, from its top-level keys; a file that is not a mapping is
    // reported as such and read as neither.
    let mut reports: Vec<Report> = files
        .iter_mut()
        .map(|f| std::mem::take(&mut f.document.report))
        .collect();
    let mut formats = Vec::new();
    for (file, report) in files.iter().zip(reports.iter_mut()) {
        formats.push(top_level(&file.document.tree, report).map(|root| is_datadog(&root)));
    }
    let first_of = |datadog: bool| formats.iter().position(|f| *f == Some(datadog));
    if let (Some(native), Some(dd)) = (first_of(false), first_of(true)) {
        let (first, second) = (native.min(dd), native.max(dd));
        let format = |i: usize| match formats[i] {
            Some(true) => "Datadog's format (it has instances or init_config)",
            _ => "the native format",
        };
        return Err(whole(
            &files[second].path,
            format!(
                "this file is in {}, and {} is in {}: a directory holds files of one format \
                 only",
                format(second),
                files[first].path.display(),
                format(first)
            ),
        ));
    }

    let mut dir_report = Report::default();
    let mut settings = if first_of(true).is_some() {
        datadog_files(&files, &mut reports, &formats)
    } else {
        native_files(&files, &mut reports, &mut dir_report)
    };
    let file_sets_temporality = settings.format == crate::settings::ConfigFormat::Native
        && files.iter().any(|f| {
            f.document
                .tree
                .get(native::METRICS_TEMPORALITY)
                .is_some_and(|v| !v.is_null())
        });
    environment(&mut settings, file_sets_temporality, env, &mut dir_report);

    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (file, report) in files.iter().zip(reports) {
        if report.has_problems() {
            errors.push(scrubbed(
                &file.path,
                report.into_problems(&file.document.positions),
                &secrets,
            ));
            continue;
        }
        let name = file_name(&file.path);
        warnings.extend(
            file.warnings
                .iter()
                .cloned()
                .chain(report.into_warnings(&file.document.positions))
                .map(|w| format!("{name}: {}", super::redact::scrub(&w, &secrets))),
        );
    }
    if dir_report.has_problems() {
        errors.push(scrubbed(
            dir,
            dir_report.into_problems(&Positions::default()),
            &secrets,
        ));
    } else {
        warnings.extend(
            dir_report
                .into_warnings(&Positions::default())
                .iter()
                .map(|w| super::redact::scrub(w, &secrets)),
        );
    }
    if let Some(error) = ConfigError::combine(errors) {
        return Err(error);
    }
    skipped.extend(warnings);
    settings.warnings = skipped;
    Ok(settings)
}

/// One file of the directory, parsed.
struct File {
    path: PathBuf,
    document: Document,
    /// Said of the file as a whole (it exposes a secret).
    warnings: Vec<String>,
}

/// The configuration files of `dir` in name order, by the Agent's rules (see the module
/// documentation).
fn files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read = std::fs::read_dir(dir).map_err(|error| ConfigError::Io {
        file: dir.to_path_buf(),
        error,
    })?;
    let mut regular = Vec::new();
    let mut defaults = Vec::new();
    for entry in read {
        let entry = entry.map_err(|error| ConfigError::Io {
            file: dir.to_path_buf(),
            error,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = if name.ends_with(".yaml") || name.ends_with(".yml") {
            &mut regular
        } else if name.ends_with(".yaml.default") || name.ends_with(".yml.default") {
            &mut defaults
        } else {
            continue;
        };
        // Through symlinks (a Kubernetes ConfigMap's files are links into `..data/`), which
        // is also where `..data` itself, a directory, is left out.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            kind.push(path);
        }
    }
    let mut chosen = if regular.is_empty() {
        defaults
    } else {
        regular
    };
    chosen.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if chosen.is_empty() {
        return Err(whole(
            dir,
            "holds no *.yaml or *.yml file (conf.yaml.example and other names are not read)",
        ));
    }
    Ok(chosen)
}

/// A problem about a whole file or directory.
fn whole(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: path.to_path_buf(),
        problems: vec![Problem {
            key_path: String::new(),
            line_col: None,
            message: message.into(),
        }],
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Datadog's files, each read on its own; their instances are all polled.
fn datadog_files(files: &[File], reports: &mut [Report], formats: &[Option<bool>]) -> Settings {
    let mut merged: Option<Settings> = None;
    // Instance name → (file, index), for names given twice across files.
    let mut names: HashMap<String, (usize, usize)> = HashMap::new();
    let mut first_patterns: Option<(usize, crate::schema::MetricToggles)> = None;
    for (i, file) in files.iter().enumerate() {
        if formats[i] != Some(true) {
            continue;
        }
        let report = &mut reports[i];
        let Some(root) = super::value::mapping(report, &KeyPath::root(), &file.document.tree)
        else {
            continue;
        };
        let settings = datadog::read(&root, report);
        if let Some(Value::Sequence(items)) = root.get("instances") {
            for (index, item) in items.iter().enumerate() {
                let Some(name) = item
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.trim().is_empty())
                else {
                    continue;
                };
                match names.get(name) {
                    Some((other, first)) if *other != i => report.problem(
                        &KeyPath::root().key("instances").index(index).key("name"),
                        format!(
                            "duplicate name {}: instances[{first}] of {} has it too, and their \
                             metrics would mix",
                            quote(name),
                            files[*other].path.display()
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        names.insert(name.to_string(), (i, index));
                    }
                }
            }
        }
        match &first_patterns {
            None => first_patterns = Some((i, settings.metrics.clone())),
            Some((other, toggles)) if *toggles != settings.metrics => report.problem(
                &KeyPath::root().key("instances"),
                format!(
                    "metric_patterns must be the same as in {}: metrics are switched on or off \
                     for the whole receiver",
                    files[*other].path.display()
                ),
            ),
            Some(_) => {}
        }
        match &mut merged {
            None => merged = Some(settings),
            Some(all) => all.targets.extend(settings.targets),
        }
    }
    merged.unwrap_or_else(|| {
        // No file could be read as a mapping: every one has its problem already.
        let mut scratch = Report::default();
        datadog::read(&empty_fields(), &mut scratch)
    })
}

fn empty_fields() -> Fields<'static> {
    static NULL: Value = Value::Null;
    super::value::mapping(&mut Report::default(), &KeyPath::root(), &NULL)
        .unwrap_or_else(|| unreachable!("null reads as an empty mapping"))
}

/// Where one file's targets sit in the merged document.
struct Span {
    offset: usize,
    len: usize,
}

/// Native files, merged into one document: targets concatenated, every other top-level key
/// from the one file that sets it. Each finding goes back to the file it concerns.
fn native_files(files: &[File], reports: &mut [Report], dir_report: &mut Report) -> Settings {
    let mut merged = Mapping::new();
    let mut targets: Vec<Value> = Vec::new();
    let mut any_targets = false;
    let mut spans: Vec<Span> = Vec::new();
    let mut owners: HashMap<String, usize> = HashMap::new();
    for (i, file) in files.iter().enumerate() {
        let report = &mut reports[i];
        let offset = targets.len();
        let Value::Mapping(map) = &file.document.tree else {
            spans.push(Span { offset, len: 0 });
            continue;
        };
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                // Reported by the reader of the merged document, which sees the same keys.
                continue;
            };
            if key == "targets" {
                any_targets = true;
                match value {
                    Value::Sequence(items) => targets.extend(items.iter().cloned()),
                    Value::Null => {}
                    other => super::value::type_problem(
                        report,
                        &KeyPath::root().key("targets"),
                        "a list of targets",
                        other,
                    ),
                }
                continue;
            }
            match owners.get(key) {
                Some(owner) => report.problem(
                    &KeyPath::root().key(key),
                    format!(
                        "{} is set in {} too: in a directory each top-level key may be set in \
                         one file only (targets excepted, which add up)",
                        quote(key),
                        files[*owner].path.display()
                    ),
                ),
                None => {
                    owners.insert(key.to_string(), i);
                    merged.insert(Value::String(key.to_string()), value.clone());
                }
            }
        }
        spans.push(Span {
            offset,
            len: targets.len() - offset,
        });
    }
    if any_targets {
        merged.insert(Value::String("targets".into()), Value::Sequence(targets));
    }
    let tree = Value::Mapping(merged);

    // What a file's substitutions could not expand is already reported there.
    let mut report = Report::default();
    for (i, file_report) in reports.iter().enumerate() {
        for path in file_report.poisoned() {
            if let Some(merged_path) = to_merged(path, i, &spans[i], &owners) {
                report.mute(&merged_path);
            }
        }
    }
    let settings = match super::value::mapping(&mut report, &KeyPath::root(), &tree) {
        Some(root) => native::read(&root, &mut report),
        None => native::read(&empty_fields(), &mut report),
    };
    let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    let rest = report.route(reports, |path, message| {
        from_merged(path, message, &spans, &owners, &paths)
    });
    // Findings about the whole merged document (no target in any file) name the directory.
    *dir_report = rest;
    settings
}

/// A path of file `index`'s document as a path of the merged document.
fn to_merged(
    path: &KeyPath,
    index: usize,
    span: &Span,
    owners: &HashMap<String, usize>,
) -> Option<KeyPath> {
    match path.0.as_slice() {
        [Seg::Key(k), Seg::Index(j), rest @ ..] if k == "targets" => {
            let mut segs = vec![Seg::Key(k.clone()), Seg::Index(span.offset + j)];
            segs.extend(rest.iter().cloned());
            Some(KeyPath(segs))
        }
        [Seg::Key(k), ..] if owners.get(k) == Some(&index) => Some(path.clone()),
        _ => None,
    }
}

/// The file a path of the merged document belongs to, the path in that file, and the message
/// with the merged document's target indexes (`targets[7]`) made the file's own.
fn from_merged(
    path: &KeyPath,
    message: &str,
    spans: &[Span],
    owners: &HashMap<String, usize>,
    paths: &[String],
) -> Option<(usize, KeyPath, String)> {
    let file_of = |j: usize| {
        spans
            .iter()
            .position(|s| j >= s.offset && j < s.offset + s.len)
    };
    let (index, local) = match path.0.as_slice() {
        [Seg::Key(k), Seg::Index(j), rest @ ..] if k == "targets" => {
            let index = file_of(*j)?;
            let mut segs = vec![Seg::Key(k.clone()), Seg::Index(j - spans[index].offset)];
            segs.extend(rest.iter().cloned());
            (index, KeyPath(segs))
        }
        [Seg::Key(k), ..] if k != "targets" => (*owners.get(k)?, path.clone()),
        _ => return None,
    };
    let message = match regex::Regex::new(r"targets\[(\d+)\]") {
        Ok(re) => re
            .replace_all(message, |caps: &regex::Captures<'_>| {
                let whole = caps.get(0).map_or("", |m| m.as_str()).to_string();
                let Some(j) = caps.get(1).and_then(|m| m.as_str().parse::<usize>().ok()) else {
                    return whole;
                };
                match file_of(j) {
                    Some(other) if other == index => {
                        format!("targets[{}]", j - spans[other].offset)
                    }
                    Some(other) => {
                        format!("targets[{}] of {}", j - spans[other].offset, paths[other])
                    }
                    None => whole,
                }
            })
            .into_owned(),
        Err(_) => message.to_string(),
    };
    Some((index, local, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn load_dir(dir: &Path) -> Result<Settings, ConfigError> {
        load(dir, &|_| None)
    }

    const DEBUG: &str = "exporters: {debug: {}}\n";

    #[test]
    fn native_files_add_up_their_targets_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "b.yaml",
            "targets:\n  - {name: b1, endpoint: 'http://h:2'}\n",
        );
        write(
            d,
            "a.yml",
            &format!("collection_interval: 3s\n{DEBUG}targets:\n  - {{name: a1, endpoint: 'http://h:1'}}\n"),
        );
        write(d, "conf.yaml.example", "not: [read");
        write(d, "empty.yaml", "");
        write(d, "comments.yaml", "# targets:\n#   - name: off\n");
        std::fs::create_dir(d.join("sub.yaml")).unwrap();
        let settings = load_dir(d).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = settings.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a1", "b1"]);
        assert!(settings
            .targets
            .iter()
            .all(|t| t.collection_interval == std::time::Duration::from_secs(3)));
        assert_eq!(settings.exporters.len(), 1);
        assert_eq!(
            settings.warnings,
            ["comments.yaml: holds nothing but comments; skipped"]
        );
    }

    #[test]
    fn a_name_in_two_files_names_both() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "a.yaml",
            &format!("{DEBUG}targets:\n  - {{name: web, endpoint: 'http://h:1'}}\n"),
        );
        write(
            d,
            "b.yaml",
            "targets:\n  - {name: other, endpoint: 'http://h:3'}\n  - name: web\n    endpoint: 'http://h:2'\n",
        );
        let text = load_dir(d).unwrap_err().to_string();
        let a = d.join("a.yaml").display().to_string();
        let b = d.join("b.yaml").display().to_string();
        assert!(
            text.contains(&format!(
                "{b}:3:5: targets[1].name: duplicate name 'web': targets[0] of {a} has it too"
            )),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn a_section_in_two_files_names_both_and_problems_keep_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "a.yaml",
            &format!("{DEBUG}targets:\n  - {{name: a, endpoint: 'http://h:1'}}\n"),
        );
        write(
            d,
            "b.yaml",
            "exporters: {debug: {}}\ntargets:\n  - name: b\n    endpoint: 'ftp://h'\n",
        );
        let text = load_dir(d).unwrap_err().to_string();
        let a = d.join("a.yaml").display().to_string();
        let b = d.join("b.yaml").display().to_string();
        assert!(
            text.contains(&format!(
                "{b}:1:1: exporters: 'exporters' is set in {a} too: in a directory each \
                 top-level key may be set in one file only"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{b}:4:5: targets[0].endpoint: invalid endpoint 'ftp://h'"
            )),
            "{text}"
        );
    }

    #[test]
    fn formats_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "a.yaml",
            "targets:\n  - {name: a, endpoint: 'http://h:1'}\n",
        );
        write(d, "conf.yaml", "init_config:\ninstances: [{name: x}]\n");
        let text = load_dir(d).unwrap_err().to_string();
        assert!(
            text.contains(&format!(
                "{}: this file is in Datadog's format (it has instances or init_config), and {} \
                 is in the native format",
                d.join("conf.yaml").display(),
                d.join("a.yaml").display()
            )),
            "{text}"
        );
    }

    #[test]
    fn datadog_files_each_keep_their_own_init_config() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "conf.yaml",
            "init_config: {service: one}\ninstances:\n  - {name: a, port: 9001}\n",
        );
        write(
            d,
            "auto_conf.yaml",
            "ad_identifiers: [supervisord]\ninit_config:\ninstances:\n  - {name: b, port: 9002}\n",
        );
        write(d, "conf.yaml.example", "instances: [{name: never}]\n");
        write(d, "conf.yaml.default", "instances: [{name: never}]\n");
        let settings = load_dir(d).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = settings.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let service = |i: usize| {
            settings.targets[i]
                .point_attributes
                .iter()
                .any(|(k, v)| k == "service" && v == "one")
        };
        assert!(!service(0) && service(1));
        assert!(
            settings
                .warnings
                .iter()
                .any(|w| w.starts_with("auto_conf.yaml: ad_identifiers")),
            "{:?}",
            settings.warnings
        );
    }

    #[test]
    fn datadog_names_are_unique_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "a.yaml", "instances:\n  - {name: x}\n");
        write(d, "b.yaml", "instances:\n  - {name: y}\n  - {name: x}\n");
        let text = load_dir(d).unwrap_err().to_string();
        assert!(
            text.contains(&format!(
                "{}:3:6: instances[1].name: duplicate name 'x': instances[0] of {} has it too",
                d.join("b.yaml").display(),
                d.join("a.yaml").display()
            )),
            "{text}"
        );
    }

    #[test]
    fn default_files_are_read_only_alone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "conf.yaml.default", "instances: [{name: fallback}]\n");
        let settings = load_dir(d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.targets[0].name, "fallback");
    }

    #[test]
    fn an_empty_directory_says_what_it_looks_for() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "conf.yaml.example", "instances: []\n");
        let text = load_dir(dir.path()).unwrap_err().to_string();
        assert!(text.contains("holds no *.yaml or *.yml file"), "{text}");
    }
}
