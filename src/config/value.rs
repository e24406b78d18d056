//! Typed reads from the YAML tree that report, rather than stop at, what is wrong.
//!
//! serde's derive stops at the first error and knows nothing of our messages, so both formats
//! walk the tree with these helpers: each read either returns the value or records one problem
//! naming the key and quoting the value (never for secrets), and validation carries on.

use std::time::Duration;

use regex::Regex;
use serde_yaml::Value;

use crate::config::duration;
use crate::config::error::{KeyPath, Report};
use crate::settings::pattern::NamePattern;

/// How a value is named in "expected X, found Y".
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a string".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a tagged value ({})", t.tag),
    }
}

/// `'text'`, with control characters escaped and very long text shortened.
pub fn quote(text: &str) -> String {
    const MAX: usize = 120;
    let mut out = String::from("'");
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A scalar as written (`15`, `true`, `'abc'`); `None` for collections and null.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A value for a message: strings quoted, numbers and booleans as written, collections named.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Number(_) | Value::Bool(_) => scalar_text(v).unwrap_or_default(),
        other => describe(other),
    }
}

/// Records "expected {expected}, found {what} ({value})", leaving the value out for secrets.
pub fn type_problem(report: &mut Report, path: &KeyPath, expected: &str, v: &Value) {
    let found = describe(v);
    let message = match (path.is_secret(), v) {
        (false, Value::String(s)) => format!("expected {expected}, found {found} {}", quote(s)),
        (false, Value::Number(_) | Value::Bool(_)) => {
            let text = scalar_text(v).unwrap_or_default();
            format!("expected {expected}, found {found} ({text})")
        }
        _ => format!("expected {expected}, found {found}"),
    };
    report.problem(path, message);
}

pub fn string<'v>(report: &mut Report, path: &KeyPath, v: &'v Value) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        _ => {
            type_problem(report, path, "a string", v);
            None
        }
    }
}

/// A string with something other than whitespace in it.
pub fn nonblank<'v>(report: &mut Report, path: &KeyPath, v: &'v Value) -> Option<&'v str> {
    let s = string(report, path, v)?;
    if s.trim().is_empty() {
        report.problem(path, "must not be empty");
        return None;
    }
    Some(s)
}

/// `true`/`false`; the strings `"true"`/`"false"` too, which is what `${env:...}` produces.
pub fn boolean(report: &mut Report, path: &KeyPath, v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => {
            type_problem(report, path, "true or false", v);
            None
        }
    }
}

pub fn duration(report: &mut Report, path: &KeyPath, v: &Value) -> Option<Duration> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            type_problem(report, path, "a duration such as '10s'", v);
            return None;
        }
    };
    match duration::parse(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            report.problem(path, format!("invalid duration {}: {e}", quote(&text)));
            None
        }
    }
}

/// A list of strings; `null` is an empty list. Bad items are reported one by one.
pub fn string_list(report: &mut Report, path: &KeyPath, v: &Value) -> Option<Vec<String>> {
    let items = match v {
        Value::Null => return Some(Vec::new()),
        Value::Sequence(items) => items,
        _ => {
            type_problem(report, path, "a list of strings", v);
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => out.push(s.clone()),
            _ => {
                ok = false;
                type_problem(report, &path.index(i), "a string", item);
            }
        }
    }
    ok.then_some(out)
}

/// Compiles each pattern of a list (regex crate syntax), reporting each one that does not
/// compile.
pub fn regex_list(report: &mut Report, path: &KeyPath, v: &Value) -> Vec<NamePattern> {
    let Some(items) = v.as_sequence() else {
        return string_list(report, path, v)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| compile_regex(report, path, p))
            .collect();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        if let Some(p) = string(report, &item_path, item) {
            if let Some(r) = compile_regex(report, &item_path, p) {
                out.push(r);
            }
        }
    }
    out
}

/// A pattern in the regex crate's syntax (the native format).
pub fn compile_regex(report: &mut Report, path: &KeyPath, pattern: &str) -> Option<NamePattern> {
    match Regex::new(pattern) {
        Ok(r) => Some(NamePattern::rust(r)),
        Err(e) => {
            report.problem(
                path,
                format!(
                    "invalid regex {}: {} (Rust regex syntax: look-around and backreferences \
                     are not supported)",
                    quote(pattern),
                    regex_reason(&e)
                ),
            );
            None
        }
    }
}

/// A pattern in Python's `re` syntax (the Datadog format, as the Agent's check reads it).
pub fn compile_python_regex(
    report: &mut Report,
    path: &KeyPath,
    pattern: &str,
) -> Option<NamePattern> {
    match NamePattern::python(pattern) {
        Ok(p) => Some(p),
        Err(e) => {
            report.problem(path, format!("invalid regex {}: {e}", quote(pattern)));
            None
        }
    }
}

/// The one-line reason of a regex error (its display spans several lines with a caret).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    last.trim().trim_start_matches("error: ").to_string()
}

/// The entries of a mapping, keyed by string, with the path they sit at.
pub struct Fields<'v> {
    path: KeyPath,
    entries: Vec<(String, &'v Value)>,
}

impl<'v> Fields<'v> {
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Like `get`, but an explicit `null` counts as absent (`tls:` with nothing under it).
    pub fn get_set(&self, key: &str) -> Option<&'v Value> {
        self.get(key).filter(|v| !v.is_null())
    }

    pub fn path(&self, key: &str) -> KeyPath {
        self.path.key(key)
    }

    /// Where the mapping itself sits.
    pub fn base(&self) -> &KeyPath {
        &self.path
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &'v Value)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Keys other than `known`, in file order.
    pub fn unknown<'a>(&'a self, known: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(move |k| !known.contains(k))
    }

    /// One problem per unknown key, with the closest known key when one is near.
    pub fn reject_unknown(&self, report: &mut Report, known: &[&str]) {
        for key in self.unknown(known) {
            let mut message = format!("unknown key {}", quote(key));
            if let Some(near) = closest(key, known.iter().copied()) {
                message.push_str(&format!("; did you mean '{near}'?"));
            }
            report.problem(&self.path.key(key), message);
        }
    }
}

/// A mapping with string keys; `null` reads as an empty mapping.
pub fn mapping<'v>(report: &mut Report, path: &KeyPath, v: &'v Value) -> Option<Fields<'v>> {
    let map = match v {
        Value::Null => {
            return Some(Fields {
                path: path.clone(),
                entries: Vec::new(),
            })
        }
        Value::Mapping(map) => map,
        _ => {
            type_problem(report, path, "a mapping", v);
            return None;
        }
    };
    let mut entries = Vec::with_capacity(map.len());
    for (k, v) in map {
        match k {
            Value::String(s) => entries.push((s.clone(), v)),
            _ => {
                report.problem(path, format!("keys must be strings, found {}", show(k)));
            }
        }
    }
    Some(Fields {
        path: path.clone(),
        entries,
    })
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let cost = usize::from(ca != *cb);
            let value = (prev + cost).min(above + 1).min(left + 1);
            prev = above;
            if let Some(slot) = row.get_mut(j + 1) {
                *slot = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::locate::Positions;

    fn messages(report: Report) -> Vec<String> {
        report
            .into_problems(&Positions::default())
            .into_iter()
            .map(|p| format!("{}: {}", p.key_path, p.message))
            .collect()
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn type_problems_quote_values_except_secrets() {
        let mut r = Report::default();
        let root = KeyPath::root();
        assert!(string(&mut r, &root.key("name"), &yaml("5")).is_none());
        assert!(string(&mut r, &root.key("password"), &yaml("12345")).is_none());
        assert!(boolean(&mut r, &root.key("b"), &yaml("yes")).is_none());
        assert!(string(&mut r, &root.key("l"), &yaml("[a]")).is_none());
        assert_eq!(
            messages(r),
            [
                "name: expected a string, found a number (5)",
                "password: expected a string, found a number",
                "b: expected true or false, found a string 'yes'",
                "l: expected a string, found a list",
            ]
        );
    }

    #[test]
    fn durations_need_units() {
        let mut r = Report::default();
        let p = KeyPath::root().key("timeout");
        assert_eq!(
            duration(&mut r, &p, &yaml("'1m30s'")),
            Some(Duration::from_secs(90))
        );
        assert!(duration(&mut r, &p, &yaml("15")).is_none());
        assert_eq!(
            messages(r),
            ["timeout: invalid duration '15': a unit is required, e.g. '15s'"]
        );
    }

    #[test]
    fn unknown_keys_suggest_a_near_one() {
        let mut r = Report::default();
        let v = yaml("colection_interval: 1s\nzzz: 1\n");
        let f = mapping(&mut r, &KeyPath::root(), &v).unwrap();
        f.reject_unknown(&mut r, &["collection_interval", "timeout"]);
        assert_eq!(
            messages(r),
            [
                "colection_interval: unknown key 'colection_interval'; did you mean 'collection_interval'?",
                "zzz: unknown key 'zzz'",
            ]
        );
    }

    #[test]
    fn regex_errors_explain_the_dialect() {
        let mut r = Report::default();
        let v = yaml("['^ok$', '(?=x)']");
        assert_eq!(
            regex_list(&mut r, &KeyPath::root().key("regex"), &v).len(),
            1
        );
        assert_eq!(
            messages(r),
            ["regex[1]: invalid regex '(?=x)': look-around, including look-ahead and look-behind, \
              is not supported (Rust regex syntax: look-around and backreferences are not supported)"]
        );
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("a\u{0}b"), "'a\\u{0}b'");
        assert_eq!(quote(&"x".repeat(500)).chars().count(), 123);
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("tiemout", ["timeout", "targets"].into_iter()),
            Some("timeout")
        );
        assert_eq!(closest("xyz", ["timeout"].into_iter()), None);
    }
}
