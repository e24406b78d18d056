//! `${env:NAME}` substitution in string values, as the OpenTelemetry Collector does it.
//!
//! Runs on the parsed tree, before validation, for both formats. Only string values are expanded
//! (never keys), anywhere inside the string; `$${` stands for a literal `${`. Substituted text is
//! not scanned again. Other `${...}` forms are rejected rather than left as is, so that a later
//! `${file:...}` cannot change the meaning of a file that loads today.

use serde_yaml::Value;

use crate::config::error::{KeyPath, Report};

/// Reads one environment variable; injected so tests do not share the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    Unset(String),
    Unsupported(String),
    InvalidName(String),
    Unterminated,
}

impl ExpandError {
    /// The message; `secret` leaves out any text taken from the value.
    fn message(&self, secret: bool) -> String {
        match self {
            ExpandError::Unset(name) => format!("environment variable '{name}' is not set"),
            ExpandError::Unsupported(_) if secret => {
                "unsupported substitution; only ${env:NAME} is supported".to_string()
            }
            ExpandError::Unsupported(token) => {
                format!("unsupported substitution '{token}'; only ${{env:NAME}} is supported")
            }
            ExpandError::InvalidName(_) if secret => "invalid environment variable name".into(),
            ExpandError::InvalidName(name) => format!("invalid environment variable name '{name}'"),
            ExpandError::Unterminated => {
                "unterminated '${' (write '$${' for a literal '${')".into()
            }
        }
    }
}

/// Expands every string value in `value`; failures are reported at the value's path.
pub fn expand_tree(value: &mut Value, path: &KeyPath, env: EnvLookup<'_>, report: &mut Report) {
    match value {
        Value::String(s) => match expand(s, env) {
            Ok(Some(expanded)) => *s = expanded,
            Ok(None) => {}
            Err(e) => report.poison(path, e.message(path.is_secret())),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &path.index(i), env, report);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let child = match k.as_str() {
                    Some(key) => path.key(key),
                    None => path.clone(),
                };
                expand_tree(v, &child, env, report);
            }
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, env, report),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The expanded text, or `None` when the string holds no `$` and stays as is.
pub fn expand(s: &str, env: EnvLookup<'_>) -> Result<Option<String>, ExpandError> {
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
            out.push_str(&substitute(inner, env)?);
            rest = tail.get(1..).unwrap_or_default();
        } else {
            out.push('$');
            rest = from.get(1..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn substitute(inner: &str, env: EnvLookup<'_>) -> Result<String, ExpandError> {
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
        expand(s, &env).map(|o| o.unwrap_or_else(|| s.to_string()))
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
            run("${file:/x}"),
            Err(ExpandError::Unsupported("${file:/x}".into()))
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
}
