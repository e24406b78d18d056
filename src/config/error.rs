//! What a failed load reports: every problem of the file at once, each with the key it concerns
//! and, when the source scan found it, its line and column.

use std::fmt;
use std::path::PathBuf;

use crate::config::locate::Positions;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {error}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// Every problem found, in file order; problems without a position (environment variables)
    /// come last.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    /// Problems in several files (a directory of configuration files, a supervisord.conf and
    /// the files it includes), each naming its own file; in the order the files were read.
    #[error("{}", render_several(.0))]
    Several(Vec<ConfigError>),
    /// No `--config` and no supervisord configuration at any place supervisorctl looks.
    #[error(
        "no configuration: no --config FILE, and no supervisord configuration where \
         supervisorctl looks for one ({}); name supervisord's with --supervisord-conf FILE or \
         give the receiver's with --config FILE",
        render_paths(searched)
    )]
    NoSupervisordConf { searched: Vec<PathBuf> },
}

impl ConfigError {
    /// One error for all of `errors`: the error itself when there is one.
    pub fn combine(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ConfigError::Several(errors)),
        }
    }
}

fn render_several(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

fn render_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn render_problems(file: &std::path::Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| p.render(file)).collect();
    lines.join("\n")
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `targets[1].endpoint`, `instances[0].proc_regex`, or an environment variable's name.
    /// Empty for problems about the whole file (YAML syntax, wrong top-level type).
    pub key_path: String,
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    pub message: String,
}

impl Problem {
    /// `{file}:{line}:{col}: {key_path}: {message}`, leaving out what is unknown.
    pub fn render(&self, file: &std::path::Path) -> String {
        let mut out = file.display().to_string();
        if let Some((line, col)) = self.line_col {
            out.push_str(&format!(":{line}:{col}"));
        }
        if !self.key_path.is_empty() {
            out.push_str(": ");
            out.push_str(&self.key_path);
        }
        out.push_str(": ");
        out.push_str(&self.message);
        out
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Where a value sits in the document. Kept structured (not a string) so the source scan can
/// look it up exactly, whatever characters the keys contain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// A path naming something outside the document (an environment variable).
    pub fn external(name: &str) -> Self {
        KeyPath(vec![Seg::Key(name.to_string())])
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        KeyPath(segs)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    pub fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The last mapping key of the path, if the path ends with one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Passwords and header values: the places whose values are never quoted.
    pub fn is_secret(&self) -> bool {
        let in_headers = self
            .0
            .iter()
            .any(|s| matches!(s, Seg::Key(k) if k == "headers"));
        in_headers || matches!(self.last_key(), Some("password" | "pass"))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem or warning before it is placed in the file.
#[derive(Debug, Clone)]
struct Finding {
    path: KeyPath,
    /// Known position (YAML syntax errors); otherwise looked up from `path`.
    position: Option<(usize, usize)>,
    /// Positioned from the source scan (false for environment variables).
    in_file: bool,
    message: String,
}

/// Collects problems and warnings during one validation pass.
#[derive(Debug, Default)]
pub struct Report {
    problems: Vec<Finding>,
    warnings: Vec<Finding>,
    /// Warnings printed as is, without a location (Datadog's exact deprecation notices).
    plain_warnings: Vec<String>,
    /// Values whose `${env:...}` expansion failed: their text is not what the user meant, so
    /// further complaints about them would only add noise.
    poisoned: Vec<KeyPath>,
}

impl Report {
    pub fn problem(&mut self, path: &KeyPath, message: impl Into<String>) {
        if self.poisoned.iter().any(|p| path.starts_with(p)) {
            return;
        }
        self.problems.push(Finding {
            path: path.clone(),
            position: None,
            in_file: true,
            message: message.into(),
        });
    }

    /// A problem whose position the YAML parser gave.
    pub fn problem_at(&mut self, position: Option<(usize, usize)>, message: impl Into<String>) {
        self.problems.push(Finding {
            path: KeyPath::root(),
            position,
            in_file: true,
            message: message.into(),
        });
    }

    /// A problem about an environment variable: no position in the file.
    pub fn env_problem(&mut self, variable: &str, message: impl Into<String>) {
        self.problems.push(Finding {
            path: KeyPath::external(variable),
            position: None,
            in_file: false,
            message: message.into(),
        });
    }

    /// A problem that makes the value at `path` meaningless (failed substitution).
    pub fn poison(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.problem(path, message);
        self.poisoned.push(path.clone());
    }

    pub fn warn(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.warnings.push(Finding {
            path: path.clone(),
            position: None,
            in_file: true,
            message: message.into(),
        });
    }

    pub fn env_warn(&mut self, variable: &str, message: impl Into<String>) {
        self.warnings.push(Finding {
            path: KeyPath::external(variable),
            position: None,
            in_file: false,
            message: message.into(),
        });
    }

    pub fn warn_plain(&mut self, message: impl Into<String>) {
        let message = message.into();
        if !self.plain_warnings.contains(&message) {
            self.plain_warnings.push(message);
        }
    }

    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The values whose substitution failed (see [`Report::poison`]).
    pub fn poisoned(&self) -> &[KeyPath] {
        &self.poisoned
    }

    /// Treats the value at `path` as already reported: later problems inside it are dropped.
    pub fn mute(&mut self, path: &KeyPath) {
        self.poisoned.push(path.clone());
    }

    /// For a document merged from several files: moves each finding about the document into
    /// the report of the file it concerns. `route` gives, for a path of the merged document and
    /// a message, the file (an index into `files`), the path in that file and the message as
    /// that file's reader should see it; `None` (and every finding about an environment
    /// variable) stays in the returned report.
    pub fn route(
        self,
        files: &mut [Report],
        route: impl Fn(&KeyPath, &str) -> Option<(usize, KeyPath, String)>,
    ) -> Report {
        let mut rest = Report {
            plain_warnings: self.plain_warnings,
            poisoned: self.poisoned,
            ..Report::default()
        };
        let mut place = |finding: Finding, problem: bool| {
            let routed = (finding.in_file && finding.position.is_none())
                .then(|| route(&finding.path, &finding.message))
                .flatten();
            let (target, finding) = match routed {
                Some((index, path, message)) if index < files.len() => (
                    &mut files[index],
                    Finding {
                        path,
                        message,
                        ..finding
                    },
                ),
                _ => (&mut rest, finding),
            };
            if problem {
                target.problems.push(finding);
            } else {
                target.warnings.push(finding);
            }
        };
        for finding in self.problems {
            place(finding, true);
        }
        for finding in self.warnings {
            place(finding, false);
        }
        rest
    }

    /// Places every finding in the file and sorts the problems in file order.
    pub fn into_problems(self, positions: &Positions) -> Vec<Problem> {
        place(self.problems, positions)
    }

    /// Warnings in file order, Datadog's notices first. They leave out the file name, which
    /// the caller prints in front: `targets[0] at line 3, column 3: timeout 10s is ...`.
    pub fn into_warnings(self, positions: &Positions) -> Vec<String> {
        let mut out = self.plain_warnings;
        out.extend(
            place(self.warnings, positions)
                .into_iter()
                .map(|p| match p.line_col {
                    Some((line, col)) => {
                        format!("{} at line {line}, column {col}: {}", p.key_path, p.message)
                    }
                    None => format!("{}: {}", p.key_path, p.message),
                }),
        );
        out
    }
}

fn place(findings: Vec<Finding>, positions: &Positions) -> Vec<Problem> {
    let mut problems: Vec<Problem> = findings
        .into_iter()
        .map(|f| {
            let line_col = match (f.position, f.in_file) {
                (Some(p), _) => Some(p),
                (None, true) => positions.locate(&f.path.0),
                (None, false) => None,
            };
            Problem {
                key_path: f.path.to_string(),
                line_col,
                message: f.message,
            }
        })
        .collect();
    // Stable: unplaced problems keep their order, after the placed ones.
    problems.sort_by_key(|p| p.line_col.unwrap_or((usize::MAX, usize::MAX)));
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_render_like_the_brief() {
        let p = KeyPath::root().key("targets").index(1).key("endpoint");
        assert_eq!(p.to_string(), "targets[1].endpoint");
        assert!(!p.is_secret());
        assert!(KeyPath::root()
            .key("instances")
            .index(0)
            .key("pass")
            .is_secret());
        let h = KeyPath::root()
            .key("exporters")
            .key("otlp")
            .key("headers")
            .key("x");
        assert!(h.is_secret());
    }

    #[test]
    fn render_leaves_out_unknown_parts() {
        let file = std::path::Path::new("c.yaml");
        let p = Problem {
            key_path: "timeout".into(),
            line_col: Some((3, 10)),
            message: "bad".into(),
        };
        assert_eq!(p.render(file), "c.yaml:3:10: timeout: bad");
        let p = Problem {
            key_path: String::new(),
            line_col: None,
            message: "empty".into(),
        };
        assert_eq!(p.render(file), "c.yaml: empty");
    }

    #[test]
    fn poisoned_paths_swallow_later_problems() {
        let mut r = Report::default();
        let p = KeyPath::root().key("a");
        r.poison(&p, "unset");
        r.problem(&p, "invalid");
        r.problem(&KeyPath::root().key("b"), "other");
        let problems = r.into_problems(&Positions::default());
        let messages: Vec<_> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages, ["unset", "other"]);
    }
}
