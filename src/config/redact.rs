//! Keeping secrets out of what loading prints, and noticing files that expose them.
//!
//! Messages already leave out values at secret keys (passwords, header values). This is the
//! backstop: every secret the document holds (those values, whatever `${file:...}` read, and the
//! `user:password` of any URL) is replaced by `***` wherever a message quotes a value, whichever
//! check wrote it. Only quoted text (between the message's first and last `'`) is searched, and
//! only whole words of it, so a password such as `pass` does not also blank out the word
//! "password" or Datadog's deprecation notice about the `pass` option.

use std::fs::Metadata;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_yaml::Value;

use crate::config::error::KeyPath;

/// Secrets shorter than this are not searched for in messages: a one- or two-letter word in a
/// quoted value is more likely text than the password, and the key-based rules already keep
/// such passwords out.
const MIN_SCRUBBED_LEN: usize = 3;

/// The permission bits when every user may read the file (`o+r`), `None` otherwise.
pub fn mode_if_world_readable(metadata: &Metadata) -> Option<u32> {
    let mode = metadata.permissions().mode() & 0o7777;
    (mode & 0o004 != 0).then_some(mode)
}

/// [`mode_if_world_readable`] of the file at `path` (following symlinks); `None` when it cannot
/// be read.
pub fn world_readable(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| mode_if_world_readable(&m))
}

/// Whether the document, as written (before substitution), holds a secret: a password or a
/// header value with text of its own, not only `${env:...}` or `${file:...}` references. A
/// reference is not a secret: it names where the secret is, and a secret file every user can
/// read gets its own warning.
pub fn holds_secret(value: &Value, path: &KeyPath) -> bool {
    match value {
        Value::String(s) => path.is_secret() && !only_substitutions(s),
        Value::Number(_) | Value::Bool(_) => path.is_secret(),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .any(|(i, item)| holds_secret(item, &path.index(i))),
        Value::Mapping(map) => map.iter().any(|(k, v)| match k.as_str() {
            Some(key) => holds_secret(v, &path.key(key)),
            None => holds_secret(v, path),
        }),
        Value::Tagged(tagged) => holds_secret(&tagged.value, path),
        Value::Null => false,
    }
}

/// True when the string is nothing but `${...}` substitutions and whitespace.
fn only_substitutions(s: &str) -> bool {
    let mut rest = s.trim();
    while let Some(after) = rest.strip_prefix("${") {
        match after.find('}') {
            Some(end) => rest = after.get(end + 1..).unwrap_or_default().trim_start(),
            None => return false,
        }
    }
    rest.is_empty()
}

/// Every secret of the expanded document, longest first (so a secret containing another is
/// replaced whole): values at secret keys, `file_values`, and URL credentials.
pub fn secret_values(value: &Value, file_values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = file_values.to_vec();
    collect(value, &KeyPath::root(), &mut out);
    out.retain(|s| s.chars().count() >= MIN_SCRUBBED_LEN);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn collect(value: &Value, path: &KeyPath, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if path.is_secret() {
                out.push(s.clone());
            }
            if let Some(userinfo) = userinfo(s, path.last_key() == Some("host")) {
                out.push(userinfo.to_string());
                if let Some((_, password)) = userinfo.split_once(':') {
                    out.push(password.to_string());
                }
            }
        }
        Value::Number(n) if path.is_secret() => out.push(n.to_string()),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, &path.index(i), out);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map {
                let child = match k.as_str() {
                    Some(key) => path.key(key),
                    None => path.clone(),
                };
                collect(v, &child, out);
            }
        }
        Value::Tagged(tagged) => collect(&tagged.value, path, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The `user:password` of `scheme://user:password@host/...`; with `bare_host`, also of
/// `user:password@host` (Datadog's `host`).
fn userinfo(s: &str, bare_host: bool) -> Option<&str> {
    let rest = match s.split_once("://") {
        Some((_, rest)) => rest,
        None if bare_host => s,
        None => return None,
    };
    // Up to the last '@', not just within the authority: a password written with a '/' in it
    // (unencoded) ends the authority early, but is still a password.
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    rest.get(..end)?
        .rsplit_once('@')
        .map(|(userinfo, _)| userinfo)
        .filter(|u| !u.is_empty())
}

/// `text` with every secret that stands as a whole word inside its quoted part replaced by
/// `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        out = scrub_one(&out, secret);
    }
    out
}

fn scrub_one(text: &str, secret: &str) -> String {
    let (Some(first), Some(last)) = (text.find('\''), text.rfind('\'')) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(secret) {
        let end = at + secret.len();
        let quoted = at > first && end <= last;
        let before = text.get(..at).and_then(|t| t.chars().next_back());
        let after = text.get(end..).and_then(|t| t.chars().next());
        let word =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        if quoted && word && at >= copied {
            out.push_str(text.get(copied..at).unwrap_or_default());
            out.push_str("***");
            copied = end;
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn secrets_written_in_the_file_are_noticed() {
        let holds = |s: &str| holds_secret(&yaml(s), &KeyPath::root());
        assert!(holds("targets: [{password: hunter2}]"));
        assert!(holds("instances: [{pass: 1234}]"));
        assert!(holds("exporters: {otlp: {headers: {k: v}}}"));
        assert!(holds("targets: [{password: 'pre-${env:X}'}]"));
        assert!(!holds("targets: [{password: '${file:/run/secrets/pw}'}]"));
        assert!(!holds("targets: [{password: '${env:PW}'}]"));
        assert!(!holds(
            "exporters: {otlp: {headers: {k: ' ${env:A}${env:B} '}}}"
        ));
        assert!(!holds("targets: [{name: a, username: u}]"));
    }

    #[test]
    fn secret_values_cover_keys_files_and_urls() {
        let v = yaml(
            "targets:\n  - password: hunter2\n    endpoint: 'http://bob:s3/cr3t@h:9001'\n\
             instances:\n  - host: 'ann:pa55w0rd@db'\n    tags: ['team@example']\n\
             exporters: {otlp: {headers: {k: api-key-value}}}\n",
        );
        let found = secret_values(&v, &["from-file".to_string(), "ab".to_string()]);
        for s in [
            "hunter2",
            "bob:s3/cr3t",
            "s3/cr3t",
            "ann:pa55w0rd",
            "pa55w0rd",
            "api-key-value",
            "from-file",
        ] {
            assert!(found.iter().any(|f| f == s), "{s} not in {found:?}");
        }
        assert!(!found.iter().any(|f| f == "team" || f == "ab"), "{found:?}");
        assert!(found.windows(2).all(|w| w[0].len() >= w[1].len()));
    }

    #[test]
    fn scrub_replaces_quoted_whole_words() {
        let secrets = vec!["bob:s3cr3t".to_string(), "s3cr3t".to_string()];
        assert_eq!(
            scrub(
                "invalid 'http://bob:s3cr3t@h' or 's3cr3t, s3cr3t'",
                &secrets
            ),
            "invalid 'http://***@h' or '***, ***'"
        );
        let pass = vec!["pass".to_string()];
        let notice = "The `pass` config option has been renamed to `password`";
        assert_eq!(scrub(notice, &pass), notice);
        assert_eq!(
            scrub(
                "unknown key 'pasword'; did you mean 'password'? 'pass'",
                &pass
            ),
            "unknown key 'pasword'; did you mean 'password'? '***'"
        );
        assert_eq!(scrub("no quotes: pass", &pass), "no quotes: pass");
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn files_readable_by_everyone_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let load = |path: &Path| {
            crate::config::load_with_env(path, &|name| (name == "PW").then(|| "x".into()))
                .unwrap()
                .warnings
        };
        let target = "targets: [{name: a, endpoint: 'http://h', username: u, password: ";
        let literal = format!("{target}hunter2}}]\n");
        let from_env = format!("{target}'${{env:PW}}'}}]\n");
        let warned = |w: &[String]| w.iter().any(|w| w.contains("readable by every user"));
        assert!(warned(&load(&write(d, "a.yaml", &literal, 0o644))));
        assert!(!warned(&load(&write(d, "b.yaml", &literal, 0o640))));
        assert!(!warned(&load(&write(d, "c.yaml", &from_env, 0o644))));

        let key = write(d, "client.key", "k", 0o644);
        let cert = write(d, "client.pem", "c", 0o644);
        let tls = format!(
            "targets:\n  - name: web\n    endpoint: https://h\n    tls:\n      \
             cert_file: {}\n      key_file: {}\n      insecure_skip_verify: true\n",
            cert.display(),
            key.display()
        );
        let warnings = load(&write(d, "tls.yaml", &tls, 0o600));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains(&format!(
            "the private key '{}' is readable by every user (mode 0644)",
            key.display()
        )));
        assert!(warnings[1].starts_with("targets[0].tls.insecure_skip_verify at line 7"));
        assert!(warnings[1].contains("TLS certificate verification is off for target 'web'"));
    }
}
