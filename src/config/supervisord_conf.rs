//! Zero-config: the local supervisord, found as `supervisorctl` finds it, from supervisord's own
//! configuration file.
//!
//! Read as supervisor 4.3.0 reads it (`supervisor/options.py`):
//! - **where**: `--supervisord-conf FILE`, else the first file that exists of supervisorctl's
//!   search list ([`search_paths`]);
//! - **how**: Python's `configparser` as supervisor configures it (`RawConfigParser` with
//!   `inline_comment_prefixes=(';', '#')` and `strict=False`): `;` and `#` start a comment at
//!   the start of a line or after whitespace, values continue on indented lines, keys are case
//!   insensitive, a section given twice is merged, `[DEFAULT]` applies to every section;
//!   `%(here)s` (the directory of the file the value is written in) and `%(ENV_NAME)s` expand
//!   in values, `%%` is a `%`;
//! - **includes**: the main file's `[include] files`, globs relative to its directory, each
//!   glob's files in sorted order, as supervisord reads them. supervisord follows only the main
//!   file's `[include]` (an included file's own `[include]` is ignored, with a warning here too),
//!   so includes cannot loop; a file included twice, or including the main file, is read again
//!   as supervisord reads it, without harm.
//!
//! The target is what supervisorctl would talk to: `[supervisorctl] serverurl` with its
//! `username` and `password` (read from the main file only, as supervisorctl does), else the
//! server supervisord serves: `[unix_http_server] file` with its credentials, else
//! `[inet_http_server] port` (`9001`, `host:9001`; `*:9001` and a bare port are this host).
//! Its name is `[supervisord] identifier` when the file sets one, else this host's name. The
//! settings are those of a native file naming that one target: exporters from the `OTEL_*`
//! variables.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::endpoint::{host_port, redact};
use super::error::{KeyPath, Report};
use super::locate::Positions;
use super::value::{self, quote};
use super::{native, ConfigError, EnvLookup, Problem};
use crate::settings::secret::Secret;
use crate::settings::{Credentials, Endpoint, Settings, Target};

/// supervisord's HTTP port when `[supervisorctl] serverurl` is `http://host` without one:
/// supervisorctl's transport (`httplib`) uses HTTP's.
const HTTP_DEFAULT_PORT: u16 = 80;

/// The places supervisorctl looks for its configuration, in its order (supervisor 4.3.0's
/// `Options.searchpaths`): beside the executable's directory (`../etc/supervisord.conf`,
/// `../supervisord.conf`), then the working directory (`supervisord.conf`,
/// `etc/supervisord.conf`), then `/etc/supervisord.conf` and `/etc/supervisor/supervisord.conf`.
///
/// supervisorctl takes its own executable; the receiver takes its own, so a receiver installed
/// beside supervisor (`/usr/local/bin`) looks where that supervisor's configuration is
/// (`/usr/local/etc/supervisord.conf`). Relative paths are relative to the working directory.
pub fn search_paths(executable: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(prefix) = executable.and_then(Path::parent).and_then(Path::parent) {
        paths.push(prefix.join("etc").join("supervisord.conf"));
        paths.push(prefix.join("supervisord.conf"));
    }
    paths.extend(
        [
            "supervisord.conf",
            "etc/supervisord.conf",
            "/etc/supervisord.conf",
            "/etc/supervisor/supervisord.conf",
        ]
        .map(PathBuf::from),
    );
    paths
}

/// The first of [`search_paths`] that exists, relative ones taken from `cwd`.
pub fn find(executable: Option<&Path>, cwd: &Path) -> Result<PathBuf, ConfigError> {
    let searched = search_paths(executable);
    searched
        .iter()
        .map(|path| cwd.join(path))
        .find(|path| path.exists())
        .ok_or(ConfigError::NoSupervisordConf { searched })
}

/// [`find`] from this process: its executable and its working directory.
pub fn locate() -> Result<PathBuf, ConfigError> {
    let executable = std::env::current_exe().ok();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    find(executable.as_deref(), &cwd)
}

/// What was read, besides the settings: where the target came from, for the log.
#[derive(Debug)]
pub struct Found {
    pub settings: Settings,
    /// `target 'web-1' at unix:///run/supervisor.sock (from [supervisorctl] serverurl in
    /// /etc/supervisord.conf)`; never with credentials.
    pub described: String,
}

/// What loading depends on besides the files, so tests need not touch the process's.
pub struct Context<'a> {
    pub env: EnvLookup<'a>,
    /// Relative paths (the file named, a relative socket path) are taken from here.
    pub cwd: PathBuf,
    /// The target's name when `[supervisord]` has no `identifier`.
    pub host_name: String,
}

/// Loads supervisord's configuration at `path` with this process's environment, working
/// directory and host name.
pub fn load(path: &Path) -> Result<Found, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let context = Context {
        env: &env,
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        host_name: host_name(&env),
    };
    load_with(path, &context)
}

/// This host's name, as Python's `platform.node()` gives it (the kernel's), or `localhost`.
fn host_name(env: EnvLookup<'_>) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| env("HOSTNAME"))
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Loads supervisord's configuration at `path` in `context`.
pub fn load_with(path: &Path, context: &Context<'_>) -> Result<Found, ConfigError> {
    let main = absolute(&path.to_string_lossy(), &context.cwd, context.env);
    let mut problems = Problems::default();
    let mut warnings = Vec::new();
    let text = match std::fs::read(&main) {
        Ok(bytes) => text_of(&main, bytes)?,
        Err(error) => {
            return Err(ConfigError::Io {
                file: path.to_path_buf(),
                error,
            })
        }
    };

    // supervisorctl's view: the main file alone.
    let mut client = Ini::default();
    let main_index = client.add_file(&main);
    problems.parse(main_index, client.read(main_index, &text).errors);
    // supervisord's view: the main file and what its [include] names.
    let mut server = Ini::default();
    let main_index = server.add_file(&main);
    let _ = server.read(main_index, &text);
    if !problems.is_empty() {
        return Err(problems.into_error(&client.files, &[]));
    }
    include(&mut server, context, &mut problems, &mut warnings);

    let mut secrets: Vec<String> = Vec::new();
    let target = match problems.is_empty() {
        true => target(&client, &server, context, &mut problems, &mut secrets),
        false => None,
    };
    let Some((target, from)) = target else {
        if problems.is_empty() {
            problems.add(
                0,
                None,
                "",
                "no supervisord to reach: neither [supervisorctl] serverurl, nor \
                 [unix_http_server] file, nor [inet_http_server] port is set in this file \
                 or the files it includes",
            );
        }
        return Err(problems.into_error(&server.files, &secrets));
    };
    let described = format!(
        "target {} at {} (from {from} in {})",
        quote(&target.name),
        target.endpoint.display(),
        main.display()
    );

    let mut settings = native_defaults();
    settings.targets = vec![target];
    let mut report = Report::default();
    super::environment(&mut settings, false, context.env, &mut report);
    if report.has_problems() {
        return Err(ConfigError::Invalid {
            file: main,
            problems: report.into_problems(&Positions::default()),
        });
    }
    warnings.extend(report.into_warnings(&Positions::default()));
    settings.warnings = warnings
        .iter()
        .map(|w| super::redact::scrub(w, &secrets))
        .collect();
    Ok(Found {
        settings,
        described,
    })
}

/// The file's text; supervisor reads it as UTF-8.
fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: vec![Problem {
                key_path: String::new(),
                line_col: Some((line, 1)),
                message: "not UTF-8 text".into(),
            }],
        }
    })
}

/// The settings of a native file that names one target and nothing else: every default the
/// native format has, whatever it gains later.
fn native_defaults() -> Settings {
    let document: Value =
        serde_yaml::from_str("targets: [{name: t, endpoint: 'unix:///t'}]").unwrap_or(Value::Null);
    let mut scratch = Report::default();
    let root = value::mapping(&mut scratch, &KeyPath::root(), &document);
    let empty = Value::Null;
    let root = root
        .or_else(|| value::mapping(&mut scratch, &KeyPath::root(), &empty))
        .unwrap_or_else(|| unreachable!("null reads as an empty mapping"));
    native::read(&root, &mut scratch)
}

/// Reads the files the main file's `[include] files` names into `ini`, as supervisord does.
fn include(
    ini: &mut Ini,
    context: &Context<'_>,
    problems: &mut Problems,
    warnings: &mut Vec<String>,
) {
    if ini.section("include").is_none() {
        return;
    }
    let Some(files) = ini.get("include", "files") else {
        let line = ini.section("include").map(|s| s.line);
        problems.add(
            0,
            line,
            "[include]",
            "has no files setting (supervisord refuses to start so)",
        );
        return;
    };
    let here = ini.here(files.file);
    let names = Names {
        here: Some(&here),
        host_node_name: Some(&context.host_name),
        env: context.env,
    };
    let files_value = match expand(&files.value, &names, false) {
        Ok(v) => v,
        Err(message) => {
            problems.at(files, "[include] files", message);
            return;
        }
    };
    let base = ini.here(0);
    for pattern in files_value.split_whitespace() {
        let pattern = join(&base.to_string_lossy(), pattern);
        let mut matched = glob(&pattern, false);
        if matched.is_empty() {
            warnings.push(format!(
                "[include] files: no file matches {}",
                quote(&pattern)
            ));
            continue;
        }
        matched.sort();
        for name in matched {
            let path = PathBuf::from(&name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    // supervisord's parser skips a file it cannot open, so does this reader.
                    warnings.push(format!(
                        "[include] files: cannot read {}, skipped as supervisord skips it: \
                         {error}",
                        path.display()
                    ));
                    continue;
                }
            };
            let index = ini.add_file(&absolute(&name, &context.cwd, context.env));
            let text = match text_of(&path, bytes) {
                Ok(text) => text,
                Err(_) => {
                    problems.add(index, None, "", "not UTF-8 text");
                    continue;
                }
            };
            let read = ini.read(index, &text);
            problems.parse(index, read.errors);
            if read.sections.iter().any(|s| s == "include") {
                warnings.push(format!(
                    "{}: its [include] is not followed: supervisord reads the [include] of \
                     its main file only",
                    path.display()
                ));
            }
        }
    }
}

/// The target supervisorctl would reach, and where it came from.
fn target(
    client: &Ini,
    server: &Ini,
    context: &Context<'_>,
    problems: &mut Problems,
    secrets: &mut Vec<String>,
) -> Option<(Target, &'static str)> {
    let before = problems.len();
    let env = context.env;
    let (endpoint, credentials, from) = if let Some(url) = client.get("supervisorctl", "serverurl")
    {
        let endpoint = client
            .expand_here(url, env)
            .and_then(|text| server_url(&text, context))
            .map_err(|message| problems.at(url, "[supervisorctl] serverurl", message))
            .ok();
        let credentials = credentials(client, "supervisorctl", env, problems, secrets);
        (endpoint, credentials, "[supervisorctl] serverurl")
    } else if let Some(section) = server.first_section("unix_http_server") {
        let endpoint = required(server, section, "file", problems).and_then(|file| {
            server
                .expand_here(file, env)
                .map_err(|message| problems.at(file, &format!("[{section}] file"), message))
                .ok()
                .map(|path| Endpoint::Unix {
                    path: absolute(path.trim(), &context.cwd, env),
                })
        });
        let credentials = credentials(server, section, env, problems, secrets);
        (endpoint, credentials, "[unix_http_server] file")
    } else if let Some(section) = server.first_section("inet_http_server") {
        let endpoint = required(server, section, "port", problems).and_then(|port| {
            expand(&port.value, &Names::env(env), false)
                .and_then(|text| inet_address(&text))
                .map_err(|message| problems.at(port, &format!("[{section}] port"), message))
                .ok()
        });
        let credentials = credentials(server, section, env, problems, secrets);
        (endpoint, credentials, "[inet_http_server] port")
    } else {
        return None;
    };
    let name = match server.get("supervisord", "identifier") {
        Some(identifier) => match server.expand_here(identifier, env) {
            Ok(name) if !name.trim().is_empty() => Some(name.trim().to_string()),
            Ok(_) => Some(context.host_name.clone()),
            Err(message) => {
                problems.at(identifier, "[supervisord] identifier", message);
                None
            }
        },
        None => Some(context.host_name.clone()),
    };
    if problems.len() > before {
        return None;
    }
    let mut target = Target::new(name?, endpoint?);
    target.credentials = credentials?;
    Some((target, from))
}

/// `[section]`'s `key`, which supervisord needs: without it, a problem at the section's header.
fn required<'a>(
    ini: &'a Ini,
    section: &str,
    key: &str,
    problems: &mut Problems,
) -> Option<&'a Entry> {
    let entry = ini.get(section, key);
    if entry.is_none() {
        let line = ini.section(section).map(|s| s.line);
        problems.add(
            ini.section_file(section),
            line,
            &format!("[{section}]"),
            format!("has no {key} value (supervisord refuses to start so)"),
        );
    }
    entry
}

/// A section's `username` and `password` (`%(ENV_NAME)s` expanded): both or neither, as
/// supervisord requires. `Some(None)` is "no credentials"; `None` a problem, reported.
fn credentials(
    ini: &Ini,
    section: &str,
    env: EnvLookup<'_>,
    problems: &mut Problems,
    secrets: &mut Vec<String>,
) -> Option<Option<Credentials>> {
    let username = ini.get(section, "username");
    let password = ini.get(section, "password");
    let mut expanded = |entry: &Entry, key: &str, secret: bool| {
        expand(&entry.value, &Names::env(env), secret)
            .map_err(|message| problems.at(entry, &format!("[{section}] {key}"), message))
            .ok()
    };
    match (username, password) {
        (None, None) => Some(None),
        (Some(u), None) => {
            problems.at(
                u,
                &format!("[{section}] username"),
                "set password too, or neither (supervisord requires both)",
            );
            None
        }
        (None, Some(p)) => {
            problems.at(
                p,
                &format!("[{section}] password"),
                "set username too, or neither (supervisord requires both)",
            );
            None
        }
        (Some(u), Some(p)) => {
            let username = expanded(u, "username", false);
            let password = expanded(p, "password", true);
            let (username, password) = (username?, password?);
            secrets.push(password.clone());
            if password.starts_with("{SHA}") && section != "supervisorctl" {
                problems.at(
                    p,
                    &format!("[{section}] password"),
                    "is a SHA-1 digest ({SHA}...), which supervisord checks but a client cannot \
                     send: set the clear text as [supervisorctl] username and password (with \
                     serverurl), or use a receiver configuration (--config FILE)",
                );
                return None;
            }
            Some(Some(Credentials {
                username,
                password: Secret::new(password),
            }))
        }
    }
}

/// `[supervisorctl] serverurl`, as supervisorctl's transport reads it: `unix://PATH` (relative
/// to the working directory, `~` expanded) or `http://host[:port]` (port 80 by default; any
/// path is ignored, requests go to `/RPC2`).
fn server_url(text: &str, context: &Context<'_>) -> Result<Endpoint, String> {
    if let Some(path) = text.strip_prefix("unix://") {
        if path.trim().is_empty() {
            return Err(format!(
                "invalid serverurl {}: the socket path is missing",
                quote(text)
            ));
        }
        return Ok(Endpoint::Unix {
            path: absolute(path, &context.cwd, context.env),
        });
    }
    if let Some(rest) = text.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // supervisorctl sends its username and password options, never a URL's.
        let authority = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let (host, port) = host_port(authority)
            .map_err(|reason| format!("invalid serverurl {}: {reason}", quote(&redact(text))))?;
        return Ok(Endpoint::Tcp {
            tls: false,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(HTTP_DEFAULT_PORT),
        });
    }
    Err(format!(
        "Unknown protocol for serverurl {} (supervisorctl speaks unix:// and http://)",
        redact(text)
    ))
}

/// `[inet_http_server] port`, as supervisord's `inet_address` reads it: `PORT` or `HOST:PORT`;
/// no host, `*`, or an any-address (`0.0.0.0`, `::`) is this host.
fn inet_address(text: &str) -> Result<Endpoint, String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host.to_ascii_lowercase(), port),
        None => (String::new(), text),
    };
    let port = port
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            format!(
                "invalid port {}: expected a number from 1 to 65535",
                quote(port)
            )
        })?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let host = match bare {
        "" | "*" => "localhost".to_string(),
        "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        other => other.to_string(),
    };
    Ok(Endpoint::Tcp {
        tls: false,
        host,
        port,
    })
}

/// Problems, by the file (index into the files read) they are in.
#[derive(Default)]
struct Problems {
    found: Vec<(usize, Problem)>,
}

impl Problems {
    fn add(&mut self, file: usize, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.found.push((
            file,
            Problem {
                key_path: key.to_string(),
                line_col: line.map(|l| (l, 1)),
                message: message.into(),
            },
        ));
    }

    fn parse(&mut self, file: usize, errors: Vec<(usize, String)>) {
        for (line, message) in errors {
            self.add(file, Some(line), "", message);
        }
    }

    fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// A problem with the value of `entry`, at its line.
    fn at(&mut self, entry: &Entry, key: &str, message: impl Into<String>) {
        self.add(entry.file, Some(entry.line), key, message);
    }

    fn len(&self) -> usize {
        self.found.len()
    }

    /// One error per file, in the order the files were read; no secret quoted.
    fn into_error(self, files: &[PathBuf], secrets: &[String]) -> ConfigError {
        let mut errors = Vec::new();
        for (index, file) in files.iter().enumerate() {
            let mut problems: Vec<Problem> = self
                .found
                .iter()
                .filter(|(i, _)| *i == index)
                .map(|(_, p)| Problem {
                    message: super::redact::scrub(&p.message, secrets),
                    ..p.clone()
                })
                .collect();
            if problems.is_empty() {
                continue;
            }
            problems.sort_by_key(|p| p.line_col.unwrap_or((usize::MAX, 0)));
            errors.push(ConfigError::Invalid {
                file: file.clone(),
                problems,
            });
        }
        ConfigError::combine(errors).unwrap_or(ConfigError::Several(Vec::new()))
    }
}

/// One value as the parser holds it: its text (lines joined), and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: String,
    file: usize,
    line: usize,
}

#[derive(Debug, Default)]
struct Section {
    name: String,
    /// Where the section was first declared.
    file: usize,
    line: usize,
    /// Keys lowercased, in first-set order; a key set again keeps its place and takes the new
    /// value, as Python's dict does.
    options: Vec<(String, Entry)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&Entry> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, e)| e)
    }

    fn set(&mut self, key: String, entry: Entry) {
        match self.options.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = entry,
            None => self.options.push((key, entry)),
        }
    }
}

/// Where the parser is writing: `[DEFAULT]` or a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Defaults,
    Section(usize),
}

/// Python's `configparser.RawConfigParser` as supervisor configures it, for the parts
/// supervisor uses. Several files read into one parser merge as they do in Python.
#[derive(Debug, Default)]
struct Ini {
    files: Vec<PathBuf>,
    defaults: Section,
    sections: Vec<Section>,
}

impl Ini {
    fn add_file(&mut self, path: &Path) -> usize {
        self.files.push(path.to_path_buf());
        self.files.len() - 1
    }

    /// The directory of file `index`: what `%(here)s` means in its values.
    fn here(&self, index: usize) -> PathBuf {
        self.files
            .get(index)
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// `entry`'s value with `%(here)s` (the directory of its file) and `%(ENV_NAME)s`
    /// expanded.
    fn expand_here(&self, entry: &Entry, env: EnvLookup<'_>) -> Result<String, String> {
        let here = self.here(entry.file);
        let names = Names {
            here: Some(&here),
            host_node_name: None,
            env,
        };
        expand(&entry.value, &names, false)
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The first section whose name starts with `kind` (`[unix_http_server]`, or a named one
    /// such as `[unix_http_server:x]`, as supervisord looks them up).
    fn first_section(&self, kind: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|s| s.name.starts_with(kind))
            .map(|s| s.name.as_str())
    }

    fn section_file(&self, name: &str) -> usize {
        self.section(name).map_or(0, |s| s.file)
    }

    /// `RawConfigParser.get`: the section's value, else `[DEFAULT]`'s.
    fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        let key = key.to_lowercase();
        self.section(section)?
            .get(&key)
            .or_else(|| self.defaults.get(&key))
    }

    /// Python 3.11's `RawConfigParser._read` with supervisor's options, for file `file`.
    fn read(&mut self, file: usize, text: &str) -> Read {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut read = Read::default();
        let errors = &mut read.errors;
        let mut cursor: Option<Cursor> = None;
        let mut option: Option<String> = None;
        let mut indent_level = 0usize;
        for (index, line) in text.lines().enumerate() {
            let lineno = index + 1;
            let comment_start = comment_start(line);
            let value = line
                .get(..comment_start.unwrap_or(line.len()))
                .unwrap_or(line)
                .trim();
            if value.is_empty() {
                // An empty line inside a value is kept, unless the line held a comment.
                if comment_start.is_none() {
                    if let (Some(cursor), Some(option)) = (cursor, &option) {
                        if let Some(entry) = self.entry_mut(cursor, option) {
                            entry.value.push('\n');
                        }
                    }
                }
                continue;
            }
            let indent = line.find(|c: char| !c.is_whitespace()).unwrap_or(0);
            if let (Some(cursor), Some(name)) = (cursor, &option) {
                if indent > indent_level {
                    if let Some(entry) = self.entry_mut(cursor, name) {
                        entry.value.push('\n');
                        entry.value.push_str(value);
                    }
                    continue;
                }
            }
            indent_level = indent;
            if let Some(name) = section_header(value) {
                read.sections.push(name.to_string());
                cursor = Some(
                    if let Some(i) = self.sections.iter().position(|s| s.name == name) {
                        Cursor::Section(i)
                    } else if name == "DEFAULT" {
                        Cursor::Defaults
                    } else {
                        self.sections.push(Section {
                            name: name.to_string(),
                            file,
                            line: lineno,
                            options: Vec::new(),
                        });
                        Cursor::Section(self.sections.len() - 1)
                    },
                );
                option = None;
                continue;
            }
            let Some(cursor) = cursor else {
                errors.push((
                    lineno,
                    "a key before any [section] header (supervisor's parser stops here)".into(),
                ));
                return read;
            };
            match option_line(value) {
                Some((name, text)) if !name.is_empty() => {
                    let key = name.to_lowercase();
                    let entry = Entry {
                        value: text.to_string(),
                        file,
                        line: lineno,
                    };
                    match cursor {
                        Cursor::Defaults => self.defaults.set(key.clone(), entry),
                        Cursor::Section(i) => {
                            if let Some(section) = self.sections.get_mut(i) {
                                section.set(key.clone(), entry);
                            }
                        }
                    }
                    option = Some(key);
                }
                _ => errors.push((
                    lineno,
                    "not a [section] header, a comment or a key = value line".into(),
                )),
            }
        }
        // `_join_multiline_values`: a value's trailing empty lines go.
        for section in std::iter::once(&mut self.defaults).chain(self.sections.iter_mut()) {
            for (_, entry) in &mut section.options {
                let trimmed = entry.value.trim_end().len();
                entry.value.truncate(trimmed);
            }
        }
        read
    }

    fn entry_mut(&mut self, cursor: Cursor, key: &str) -> Option<&mut Entry> {
        let section = match cursor {
            Cursor::Defaults => &mut self.defaults,
            Cursor::Section(i) => self.sections.get_mut(i)?,
        };
        section
            .options
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, e)| e)
    }
}

/// What one file's reading found.
#[derive(Debug, Default)]
struct Read {
    /// The lines that could not be parsed, with why (Python raises them together at the end
    /// of the file, or at once for a key before any section).
    errors: Vec<(usize, String)>,
    /// The section headers, in order.
    sections: Vec<String>,
}

/// Where a line's comment starts, by `configparser`'s rules with supervisor's prefixes: a line
/// whose text starts with `;` or `#` is a comment; otherwise `;` or `#` at the start or after
/// whitespace starts one (the prefixes' occurrences are examined in rounds, as Python does).
fn comment_start(line: &str) -> Option<usize> {
    let trimmed = line.trim();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Some(0);
    }
    let mut start: Option<usize> = None;
    let mut searching: Vec<(char, Option<usize>)> = vec![(';', None), ('#', None)];
    while start.is_none() && !searching.is_empty() {
        let mut next = Vec::new();
        for (prefix, last) in searching {
            let from = last.map_or(0, |i| i + 1);
            let Some(found) = line.get(from..).and_then(|rest| rest.find(prefix)) else {
                continue;
            };
            let at = from + found;
            next.push((prefix, Some(at)));
            let after_space = line
                .get(..at)
                .and_then(|before| before.chars().next_back())
                .is_some_and(char::is_whitespace);
            if at == 0 || after_space {
                start = Some(start.map_or(at, |s| s.min(at)));
            }
        }
        searching = next;
    }
    start
}

/// `[name]`, as `configparser`'s `\[(?P<header>.+)\]` matches it from the line's start: the
/// name runs to the line's last `]`.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| rest.get(..end)).flatten()
}

/// `key = value` or `key: value`, split at the first `=` or `:`.
fn option_line(value: &str) -> Option<(&str, &str)> {
    let at = value.find(['=', ':'])?;
    let name = value.get(..at)?.trim_end();
    let text = value.get(at + 1..)?.trim();
    Some((name, text))
}

/// The names a value may use: `%(here)s`, `%(ENV_NAME)s` and, in `[include] files`,
/// `%(host_node_name)s`.
struct Names<'a> {
    here: Option<&'a Path>,
    host_node_name: Option<&'a str>,
    env: EnvLookup<'a>,
}

impl<'a> Names<'a> {
    /// `%(ENV_NAME)s` only, as supervisor expands credentials and ports.
    fn env(env: EnvLookup<'a>) -> Names<'a> {
        Names {
            here: None,
            host_node_name: None,
            env,
        }
    }
}

/// Python's `value % names`, as supervisor's `expand` applies it: `%(name)s` is the name's
/// value, `%%` a `%`. `secret` keeps the value itself out of messages.
fn expand(value: &str, names: &Names<'_>, secret: bool) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
            continue;
        }
        let bad = |what: &str| {
            let shown = if secret {
                String::new()
            } else {
                format!(" in {}", quote(&redact(value)))
            };
            format!("{what}{shown} (write %% for a literal %)")
        };
        let Some(inner) = after.strip_prefix('(') else {
            return Err(bad("a '%' that starts no %(name)s"));
        };
        let Some((name, tail)) = inner.split_once(')') else {
            return Err(bad("an unclosed %(name)s"));
        };
        let Some(tail) = tail.strip_prefix('s') else {
            return Err(bad(&format!("%({name}) is not followed by s")));
        };
        out.push_str(&lookup(name, names)?);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(name: &str, names: &Names<'_>) -> Result<String, String> {
    if let Some(variable) = name.strip_prefix("ENV_") {
        return (names.env)(variable).ok_or_else(|| {
            format!("%({name})s names the environment variable {variable}, which is not set")
        });
    }
    match (name, names.here, names.host_node_name) {
        ("here", Some(here), _) => Ok(here.to_string_lossy().into_owned()),
        ("host_node_name", _, Some(host)) => Ok(host.to_string()),
        _ => {
            let mut available = Vec::new();
            if names.here.is_some() {
                available.push("here");
            }
            if names.host_node_name.is_some() {
                available.push("host_node_name");
            }
            available.push("ENV_<variable>");
            Err(format!(
                "%({name})s cannot be expanded here; available names: {}",
                available.join(", ")
            ))
        }
    }
}

/// `~` and `~/...` as the home directory (`os.path.expanduser`, for the current user only).
fn expand_user(path: &str, env: EnvLookup<'_>) -> PathBuf {
    let home = || env("HOME").filter(|h| !h.is_empty());
    match path.strip_prefix('~') {
        Some("") => home().map_or_else(|| PathBuf::from(path), PathBuf::from),
        Some(rest) if rest.starts_with('/') => home().map_or_else(
            || PathBuf::from(path),
            |h| PathBuf::from(format!("{}{rest}", h.trim_end_matches('/'))),
        ),
        _ => PathBuf::from(path),
    }
}

/// supervisor's `normalize_path`: `~` expanded, relative to `cwd`, then `os.path.normpath`
/// (`..`, `.` and doubled slashes resolved, without reading the file system).
fn absolute(path: &str, cwd: &Path, env: EnvLookup<'_>) -> PathBuf {
    let path = cwd.join(expand_user(path, env));
    let mut parts: Vec<&str> = Vec::new();
    let text = path.to_string_lossy().into_owned();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    PathBuf::from(format!("/{}", parts.join("/")))
}

/// `os.path.join(base, name)`: `name` itself when absolute.
fn join(base: &str, name: &str) -> String {
    if name.starts_with('/') || base.is_empty() {
        name.to_string()
    } else if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// `os.path.split`: the part before the last `/` (trailing slashes dropped, unless it is all
/// slashes) and the part after.
fn split(path: &str) -> (&str, &str) {
    let at = path.rfind('/').map_or(0, |i| i + 1);
    let (head, tail) = path.split_at(at);
    let stripped = head.trim_end_matches('/');
    if head.is_empty() || stripped.is_empty() {
        (head, tail)
    } else {
        (stripped, tail)
    }
}

fn has_magic(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Python 3.11's `glob.glob(pattern)` (not recursive; a wildcard matches no name starting with
/// `.` unless the pattern does), unsorted.
fn glob(pattern: &str, dirs_only: bool) -> Vec<String> {
    let (dir, base) = split(pattern);
    if !has_magic(pattern) {
        let exists = if base.is_empty() {
            Path::new(dir).is_dir()
        } else {
            std::fs::symlink_metadata(pattern).is_ok()
        };
        return if exists {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        };
    }
    let dir = if dir.is_empty() { "." } else { dir };
    let dirs = if dir != pattern && has_magic(dir) {
        glob(dir, true)
    } else {
        vec![dir.to_string()]
    };
    let mut out = Vec::new();
    for dir in dirs {
        if has_magic(base) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && !base.starts_with('.') {
                    continue;
                }
                if dirs_only && !entry.path().is_dir() {
                    continue;
                }
                if fnmatch(&name, base) {
                    out.push(join(&dir, &name));
                }
            }
        } else {
            let path = join(&dir, base);
            let exists = if base.is_empty() {
                Path::new(&dir).is_dir()
            } else {
                std::fs::symlink_metadata(&path).is_ok()
            };
            if exists {
                out.push(path);
            }
        }
    }
    out
}

/// One piece of a shell pattern.
#[derive(Debug)]
enum Piece {
    Star,
    One,
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Literal(char),
}

/// Python's `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]` (a `[` without its `]` is
/// itself).
fn fnmatch(name: &str, pattern: &str) -> bool {
    let pieces = pieces(pattern);
    let name: Vec<char> = name.chars().collect();
    matches(&name, &pieces)
}

fn pieces(pattern: &str) -> Vec<Piece> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push(Piece::Star),
            '?' => out.push(Piece::One),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push(Piece::Literal('['));
                    continue;
                }
                let mut inner = &chars[i..j];
                i = j + 1;
                let negated = inner.first() == Some(&'!');
                if negated {
                    inner = &inner[1..];
                }
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < inner.len() {
                    let low = inner[k];
                    if inner.get(k + 1) == Some(&'-') && k + 2 < inner.len() {
                        ranges.push((low, inner[k + 2]));
                        k += 3;
                    } else {
                        ranges.push((low, low));
                        k += 1;
                    }
                }
                out.push(Piece::Set { negated, ranges });
            }
            other => out.push(Piece::Literal(other)),
        }
    }
    out
}

fn matches(name: &[char], pieces: &[Piece]) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return name.is_empty();
    };
    match first {
        Piece::Star => (0..=name.len()).any(|skip| matches(&name[skip..], rest)),
        Piece::One => !name.is_empty() && matches(&name[1..], rest),
        Piece::Literal(c) => name.first() == Some(c) && matches(&name[1..], rest),
        Piece::Set { negated, ranges } => match name.first() {
            Some(c) => {
                let inside = ranges.iter().any(|(low, high)| low <= c && c <= high);
                inside != *negated && matches(&name[1..], rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
#[path = "supervisord_conf_tests.rs"]
mod tests;
