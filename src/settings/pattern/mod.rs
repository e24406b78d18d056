//! A name pattern of either format: the regex crate's syntax (native format) or Python's `re`
//! syntax (Datadog format, as the Agent's check reads it), both searched unanchored
//! (`re.search`).
//!
//! Python patterns are rewritten by [`python::translate`] and compiled with fancy-regex, which
//! backtracks only for what needs it (look-around, back-references, atomic groups,
//! conditionals) and hands every other part, or a whole plain pattern, to the regex crate's
//! linear-time engine.
//!
//! Backtracking is bounded: past [`BACKTRACK_LIMIT`] steps a match gives up with an error. The
//! name is then treated as **not matching** that pattern (an include does not take the process,
//! an exclude does not drop it), as the pattern cannot tell, and a warning naming the pattern,
//! the name and the reason is logged once per pattern (not every poll: the same names come back
//! each time).

mod python;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Backtracking steps one match may take before it gives up. A pathological pattern such as
/// `^(a|a)+(?=b)c` on 40 `a`s reaches 100,000 steps in about 6-10 ms on a 2-core build machine
/// (release build), so a poll over 100 processes stays within a second even when every one of
/// them hits the limit. Legitimate patterns on names (supervisord names are short: tens of
/// characters) take hundreds of steps; this leaves room for quadratic backtracking on names of
/// about 300 characters. fancy-regex's default, 1,000,000, costs ten times as much per name.
pub const BACKTRACK_LIMIT: usize = 100_000;

/// A compiled name pattern; `is_match` searches anywhere in the name.
#[derive(Clone)]
pub struct NamePattern {
    text: String,
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    /// Native format: the regex crate, its own syntax.
    Rust(regex::Regex),
    /// Datadog format: Python's syntax. Shared so clones warn once between them.
    Python(Arc<PythonPattern>),
}

struct PythonPattern {
    /// Exact for names that do not end in a newline.
    regex: fancy_regex::Regex,
    /// Exact for names that end in one, when the pattern has a `$` outside multi-line mode
    /// (Python's `$` also matches before a final newline).
    trailing_newline: Option<fancy_regex::Regex>,
    /// Set once a match has failed and been logged.
    warned: AtomicBool,
}

/// Why a Python pattern is refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Python's `re` refuses it too (Python's message and position).
    #[error("{message} at position {position} (Python's re refuses it too)")]
    Invalid { message: String, position: usize },
    /// Valid Python that cannot be matched here.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// The translated pattern is refused by fancy-regex.
    #[error("not supported by the matcher (fancy-regex): {0}")]
    Engine(String),
}

impl NamePattern {
    /// A pattern in the regex crate's syntax (the native format).
    pub fn rust(regex: regex::Regex) -> NamePattern {
        NamePattern {
            text: regex.as_str().to_string(),
            engine: Engine::Rust(regex),
        }
    }

    /// A pattern in Python's `re` syntax (the Datadog format).
    pub fn python(pattern: &str) -> Result<NamePattern, PatternError> {
        let translation = python::translate(pattern).map_err(|r| match r {
            python::Refusal::Invalid { message, position } => {
                PatternError::Invalid { message, position }
            }
            python::Refusal::Unsupported(what) => PatternError::Unsupported(what),
        })?;
        let regex = build(&translation.plain)?;
        // Should the second form not compile (a `$` inside a look-behind, say), the first one
        // still serves: it differs only for names that end in a newline.
        let trailing_newline = translation.trailing_newline.and_then(|p| build(&p).ok());
        Ok(NamePattern {
            text: pattern.to_string(),
            engine: Engine::Python(Arc::new(PythonPattern {
                regex,
                trailing_newline,
                warned: AtomicBool::new(false),
            })),
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches anywhere in `name`; `false` when a Python pattern gives up
    /// (see the module doc).
    pub fn is_match(&self, name: &str) -> bool {
        match &self.engine {
            Engine::Rust(regex) => regex.is_match(name),
            Engine::Python(p) => {
                let regex = match &p.trailing_newline {
                    Some(r) if name.ends_with('\n') => r,
                    _ => &p.regex,
                };
                match regex.is_match(name) {
                    Ok(matched) => matched,
                    Err(e) => {
                        if !p.warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                pattern = %self.text,
                                name,
                                "regex '{}' is treated as not matching '{name}': {}; \
                                 later failures of this pattern are not logged",
                                self.text,
                                match_error(&e),
                            );
                        }
                        false
                    }
                }
            }
        }
    }
}

fn build(pattern: &str) -> Result<fancy_regex::Regex, PatternError> {
    fancy_regex::RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map_err(|e| PatternError::Engine(compile_error(&e)))
}

/// fancy-regex's reason, without the position (it counts in the rewritten pattern, not the
/// one the user wrote), with the regex crate's causes, on one line.
fn compile_error(e: &fancy_regex::Error) -> String {
    let text = match e {
        fancy_regex::Error::ParseError(_, inner) => inner.to_string(),
        fancy_regex::Error::CompileError(inner) => match &**inner {
            fancy_regex::CompileError::InnerError(build) => {
                let mut text = build.to_string();
                let mut cause = std::error::Error::source(build);
                while let Some(c) = cause {
                    text.push_str(": ");
                    text.push_str(&c.to_string());
                    cause = c.source();
                }
                text
            }
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

fn match_error(e: &fancy_regex::Error) -> String {
    match e {
        fancy_regex::Error::RuntimeError(fancy_regex::RuntimeError::BacktrackLimitExceeded) => {
            format!("it needs more than {BACKTRACK_LIMIT} backtracking steps")
        }
        fancy_regex::Error::RuntimeError(fancy_regex::RuntimeError::StackOverflow) => {
            "it needs more backtracking stack than the matcher allows".to_string()
        }
        other => other.to_string(),
    }
}

/// The syntax and the pattern as written: a configuration's fingerprint (its `Debug` form)
/// changes with either, and never with the warned-once state.
impl fmt::Debug for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let syntax = match self.engine {
            Engine::Rust(_) => "Rust",
            Engine::Python(_) => "Python",
        };
        f.debug_tuple(syntax).field(&self.text).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(p: &str) -> NamePattern {
        NamePattern::python(p).unwrap()
    }

    #[test]
    fn python_patterns_search_unanchored() {
        assert!(py("ysq").is_match("mysql"));
        assert!(py("^(?!web_|worker_)").is_match("db"));
        assert!(!py("^(?!web_|worker_)").is_match("web_1"));
        assert!(py(r"(?<=_)\d").is_match("web_1"));
        assert!(py(r"(\w)\1").is_match("mysql_pool"));
        assert!(!py(r"(\w)\1").is_match("mysql"));
        assert!(py(r"(?P<c>\w)(?P=c)").is_match("cool"));
        assert!(py("(?i)WEB").is_match("web"));
    }

    #[test]
    fn dollar_follows_python_before_a_final_newline() {
        assert!(py("a$").is_match("a\n"));
        assert!(!py(r"a\Z").is_match("a\n"));
        assert!(py("a$").is_match("a"));
        assert!(!py("a$\n").is_match("a"));
        assert!(py("a$\n").is_match("a\n"));
    }

    #[test]
    fn a_pattern_that_gives_up_does_not_match() {
        // The look-ahead keeps it on the backtracking engine.
        let p = py("^(a|a)+(?=b)c");
        let name = "a".repeat(40);
        assert!(!p.is_match(&name));
        assert!(!p.is_match(&name));
        let Engine::Python(inner) = &p.engine else {
            panic!("a Python pattern")
        };
        assert!(inner.warned.load(Ordering::Relaxed));
    }

    #[test]
    fn refusals_name_the_reason() {
        let err = |p: &str| NamePattern::python(p).unwrap_err().to_string();
        assert_eq!(err("(?a)web"), "the ASCII-only flag (?a) is not supported");
        assert_eq!(
            err("a**"),
            "multiple repeat at position 2 (Python's re refuses it too)"
        );
        assert_eq!(
            err("a{100000000}"),
            "not supported by the matcher (fancy-regex): error building NFA: heap usage during \
             NFA compilation exceeded limit of 10485760"
        );
    }

    #[test]
    fn debug_shows_syntax_and_text() {
        assert_eq!(format!("{:?}", py("^a")), r#"Python("^a")"#);
        let r = NamePattern::rust(regex::Regex::new("^a").unwrap());
        assert_eq!(format!("{r:?}"), r#"Rust("^a")"#);
        assert!(r.is_match("ab"));
        assert_eq!(r.as_str(), "^a");
    }
}
