//! `${env:NAME}` and `${file:/path}` substitution in string values, as the OpenTelemetry
//! Collector does it.
//!
//! Runs on the parsed tree, before validation, for both formats. Only string values are expanded
//! (never keys), anywhere inside the string; `$${` stands for a literal `${`. Substituted text is
//! not scanned again. Other `${...}` forms are rejected rather than left as is, so that a later
//! provider cannot change the meaning of a file that loads today.
//!
//! `${file:/path}` is the file's content with one trailing newline removed (what `echo` or an
//! editor leaves), so secrets can live in files readable by the receiver alone (systemd
//! credentials, Kubernetes secret volumes). The path must be absolute: relative to what would
//! depend on how the service was started. Errors name the path, never the content.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::config::error::{KeyPath, Report};

/// Reads one environment variable; injected so tests do not share the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A secret file larger than this is not a password or an API key: most likely a wrong path.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    Unset(String),
    Unsupported(String),
    InvalidName(String),
    Unterminated,
    /// `${file:...}` with a relative or empty path.
    FilePath(String),
    /// The file could not be read; the reason is the OS's, or says why the content is refused.
    File {
        path: PathBuf,
        reason: String,
    },
}

impl ExpandError {
    /// The message; `secret` leaves out any text taken from the value.
    fn message(&self, secret: bool) -> String {
        match self {
            ExpandError::Unset(name) => format!("environment variable '{name}' is not set"),
            ExpandError::Unsupported(_) if secret => {
                "unsupported substitution; only ${env:NAME} and ${file:/path} are supported"
                    .to_string()
            }
            ExpandError::Unsupported(token) => format!(
                "unsupported substitution '{token}'; only ${{env:NAME}} and ${{file:/path}} are \
                 supported"
            ),
            ExpandError::InvalidName(_) if secret => "invalid environment variable name".into(),
            ExpandError::InvalidName(name) => format!("invalid environment variable name '{name}'"),
            ExpandError::Unterminated => {
                "unterminated '${' (write '$${' for a literal '${')".into()
            }
            ExpandError::FilePath(_) if secret => {
                "${file:...} needs an absolute path (${file:/run/secrets/name})".into()
            }
            ExpandError::FilePath(path) => {
                format!("${{file:{path}}} needs an absolute path (${{file:/run/secrets/name}})")
            }
            ExpandError::File { path, reason } => {
                format!("cannot read secret file '{}': {reason}", path.display())
            }
        }
    }
}

/// What the substitutions read from files: the values (secrets, hidden from every message) and
/// where they came from.
#[derive(Debug, Default)]
pub struct FileReads {
    pub values: Vec<String>,
    /// Each `${file:...}` read, with the permission bits of a file every user may read.
    pub files: Vec<FileRead>,
}

#[derive(Debug)]
pub struct FileRead {
    pub path: PathBuf,
    pub world_readable: Option<u32>,
}

/// Expands every string value in `value`; failures are reported at the value's path, and each
/// secret file readable by every user gets a warning there.
pub fn expand_tree(
    value: &mut Value,
    path: &KeyPath,
    env: EnvLookup<'_>,
    report: &mut Report,
    reads: &mut FileReads,
) {
    match value {
        Value::String(s) => {
            let before = reads.files.len();
            match expand(s, env, reads) {
                Ok(Some(expanded)) => *s = expanded,
                Ok(None) => {}
                Err(e) => report.poison(path, e.message(path.is_secret())),
            }
            for read in reads.files.get(before..).unwrap_or_default() {
                if let Some(mode) = read.world_readable {
                    report.warn(
                        path,
                        format!(
                            "the secret file '{}' is readable by every user (mode {mode:04o}); \
                             run chmod o-r on it",
                            read.path.display()
                        ),
                    );
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &path.index(i), env, report, reads);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let child = match k.as_str() {
                    Some(key) => path.key(key),
                    None => path.clone(),
                };
                expand_tree(v, &child, env, report, reads);
            }
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, env, report, reads),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The expanded text, or `None` when the string holds no `$` and stays as is.
pub fn expand(
    s: &str,
    env: EnvLookup<'_>,
    reads: &mut FileReads,
) -> Result<Option<String>, ExpandError> {
    if !s.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        let (before, from) = rest.split_at(pos);
        out.push_str(before);
        if let Some(after) = from.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = from.strip_prefix("${") {
            let end = after.find('}').ok_or(ExpandError::Unterminated)?;
            let (inner, tail) = after.split_at(end);
            out.push_str(&substitute(inner, env, reads)?);
            rest = tail.get(1..).unwrap_or_default();
        } else {
            out.push('$');
            rest = from.get(1..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn substitute(
    inner: &str,
    env: EnvLookup<'_>,
    reads: &mut FileReads,
) -> Result<String, ExpandError> {
    if let Some(path) = inner.strip_prefix("file:") {
        return read_secret_file(path, reads);
    }
    let Some(name) = inner.strip_prefix("env:") else {
        return Err(ExpandError::Unsupported(format!("${{{inner}}}")));
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ExpandError::InvalidName(name.to_string()));
    }
    env(name).ok_or_else(|| ExpandError::Unset(name.to_string()))
}

fn read_secret_file(path: &str, reads: &mut FileReads) -> Result<String, ExpandError> {
    let file_path = Path::new(path);
    if !file_path.is_absolute() {
        return Err(ExpandError::FilePath(path.to_string()));
    }
    let error = |reason: String| ExpandError::File {
        path: file_path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(file_path).map_err(|e| error(e.to_string()))?;
    let world_readable = file
        .metadata()
        .ok()
        .and_then(|m| crate::config::mode_if_world_readable(&m));
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(error(format!(
            "larger than {} KiB, too large for a secret",
            MAX_FILE_BYTES / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| error("not UTF-8 text".into()))?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text)
        .to_string();
    reads.files.push(FileRead {
        path: file_path.to_path_buf(),
        world_readable,
    });
    reads.values.push(value.clone());
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("${env:HOST}".into()),
            _ => None,
        }
    }

    fn run(s: &str) -> Result<String, ExpandError> {
        expand(s, &env, &mut FileReads::default()).map(|o| o.unwrap_or_else(|| s.to_string()))
    }

    #[test]
    fn expands_anywhere_in_the_string() {
        assert_eq!(
            run("http://${env:HOST}:9001").unwrap(),
            "http://db.local:9001"
        );
        assert_eq!(run("${env:HOST}").unwrap(), "db.local");
        assert_eq!(run("a${env:EMPTY}b").unwrap(), "ab");
        assert_eq!(run("no dollar").unwrap(), "no dollar");
        assert_eq!(run("cost: $5").unwrap(), "cost: $5");
    }

    #[test]
    fn escapes_and_no_rescan() {
        assert_eq!(run("$${env:HOST}").unwrap(), "${env:HOST}");
        assert_eq!(run("${env:DOLLAR}").unwrap(), "${env:HOST}");
        assert_eq!(run("$$x").unwrap(), "$$x");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(run("${env:NOPE}"), Err(ExpandError::Unset("NOPE".into())));
        assert_eq!(
            run("${HOST}"),
            Err(ExpandError::Unsupported("${HOST}".into()))
        );
        assert_eq!(
            run("${vault:/x}"),
            Err(ExpandError::Unsupported("${vault:/x}".into()))
        );
        assert_eq!(
            run("${file:relative/x}"),
            Err(ExpandError::FilePath("relative/x".into()))
        );
        assert_eq!(
            run("${env:A-B}"),
            Err(ExpandError::InvalidName("A-B".into()))
        );
        assert_eq!(run("${env:}"), Err(ExpandError::InvalidName(String::new())));
        assert_eq!(run("x${env:HOST"), Err(ExpandError::Unterminated));
    }

    #[test]
    fn secret_messages_do_not_quote() {
        let e = ExpandError::Unsupported("${hunter2}".into());
        assert!(!e.message(true).contains("hunter2"));
        assert!(e.message(false).contains("${hunter2}"));
    }

    #[test]
    fn files_lose_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("plain", "s3cret", "s3cret"),
            ("lf", "s3cret\n", "s3cret"),
            ("crlf", "s3cret\r\n", "s3cret"),
            ("two", "s3cret\n\n", "s3cret\n"),
            ("spaces", " s3cret \n", " s3cret "),
            ("empty", "", ""),
        ];
        for (name, content, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            let mut reads = FileReads::default();
            let text = format!("key=${{file:{}}};", path.display());
            let out = expand(&text, &env, &mut reads).unwrap().unwrap();
            assert_eq!(out, format!("key={expected};"), "{name}");
            assert_eq!(reads.values, [expected], "{name}");
            assert_eq!(reads.files[0].path, path);
        }
    }

    #[test]
    fn file_errors_name_the_path_never_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = run(&format!("${{file:{}}}", missing.display())).unwrap_err();
        let text = err.message(true);
        assert!(
            text.starts_with(&format!(
                "cannot read secret file '{}': ",
                missing.display()
            )),
            "{text}"
        );

        let binary = dir.path().join("binary");
        std::fs::write(&binary, b"hunter2\xff\xfe").unwrap();
        let err = run(&format!("${{file:{}}}", binary.display())).unwrap_err();
        assert!(err.message(true).ends_with("not UTF-8 text"));
        assert!(!err.message(false).contains("hunter2"));

        let large = dir.path().join("large");
        std::fs::write(&large, "x".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        let err = run(&format!("${{file:{}}}", large.display())).unwrap_err();
        assert!(err.message(true).contains("too large"), "{err:?}");

        let err = run(&format!("${{file:{}}}", dir.path().display())).unwrap_err();
        assert!(matches!(err, ExpandError::File { .. }), "{err:?}");
    }

    #[test]
    fn world_readable_files_are_flagged() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "k").unwrap();
        for (mode, flagged) in [(0o644, Some(0o644)), (0o640, None), (0o600, None)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let mut reads = FileReads::default();
            expand(&format!("${{file:{}}}", path.display()), &env, &mut reads).unwrap();
            assert_eq!(reads.files[0].world_readable, flagged, "{mode:o}");
        }
    }
}
