use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;

/// Reads `text` as one file at `/conf/supervisord.conf`.
fn ini(text: &str) -> (Ini, Vec<(usize, String)>) {
    let mut ini = Ini::default();
    let file = ini.add_file(Path::new("/conf/supervisord.conf"));
    let read = ini.read(file, text);
    (ini, read.errors)
}

fn value(ini: &Ini, section: &str, key: &str) -> Option<String> {
    ini.get(section, key).map(|e| e.value.clone())
}

#[test]
fn comments_are_python_configparsers() {
    let (ini, errors) = ini("; a comment\n\
         # another\n\
         [a]\n\
         plain = x ; inline\n\
         hash = y # inline too\n\
         tight = http://h/x;y#z\n\
         tab = v\t;after a tab\n\
         \t; an indented comment line\n\
         only = ;\n\
         rounds = a;b ;c #d\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(value(&ini, "a", "plain").as_deref(), Some("x"));
    assert_eq!(value(&ini, "a", "hash").as_deref(), Some("y"));
    assert_eq!(value(&ini, "a", "tight").as_deref(), Some("http://h/x;y#z"));
    assert_eq!(value(&ini, "a", "tab").as_deref(), Some("v"));
    assert_eq!(value(&ini, "a", "only").as_deref(), Some(""));
    // Python looks at the prefixes' occurrences in rounds: the first round finds ';' at 1 (not
    // after a space) and '#' at 7 (after one), and stops, though ' ;' at 4 comes earlier.
    assert_eq!(value(&ini, "a", "rounds").as_deref(), Some("a;b ;c"));
}

#[test]
fn values_continue_on_indented_lines_and_keys_ignore_case() {
    let (ini, errors) = ini("[include]\n\
         FILES = a.conf\n    b.conf\n\n    c.conf\n\n\n\
         [other]\n\
         key : value: with colon\n\
         eq=a=b\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        value(&ini, "include", "files").as_deref(),
        Some("a.conf\nb.conf\n\nc.conf")
    );
    assert_eq!(
        value(&ini, "other", "key").as_deref(),
        Some("value: with colon")
    );
    assert_eq!(value(&ini, "other", "eq").as_deref(), Some("a=b"));
    assert_eq!(
        value(&ini, "Other", "eq"),
        None,
        "section names keep their case"
    );
}

#[test]
fn sections_merge_and_defaults_apply_everywhere() {
    let (ini, errors) = ini("[DEFAULT]\n\
         username = everyone\n\
         [a]\n\
         x = 1\n\
         [b]\n\
         [a]\n\
         x = 2\n\
         y = 3\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(value(&ini, "a", "x").as_deref(), Some("2"));
    assert_eq!(value(&ini, "a", "y").as_deref(), Some("3"));
    assert_eq!(value(&ini, "b", "username").as_deref(), Some("everyone"));
    assert_eq!(value(&ini, "DEFAULT", "username"), None, "not a section");
    let names: Vec<&str> = ini.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(ini.get("a", "x").map(|e| e.line), Some(7));
}

#[test]
fn headers_and_bad_lines_follow_python() {
    assert_eq!(section_header("[a]"), Some("a"));
    assert_eq!(section_header("[a] trailing"), Some("a"));
    assert_eq!(section_header("[a]b]"), Some("a]b"));
    assert_eq!(section_header("[]"), None);
    assert_eq!(section_header("[]]"), Some("]"));
    let (_, errors) = ini("[a]\nno delimiter here\nx = 1\n= value\n");
    let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [2, 4], "{errors:?}");
    let (_, errors) = ini("key = before any section\n[a]\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].1.contains("before any [section]"), "{errors:?}");
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| vars.get(name).cloned()
}

#[test]
fn expansion_is_pythons_percent_format() {
    let env = env_of(&[("SOCK", "/run/s.sock")]);
    let names = Names {
        here: Some(Path::new("/etc/supervisor")),
        host_node_name: None,
        env: &env,
    };
    assert_eq!(
        expand("%(here)s/x.sock", &names, false).as_deref(),
        Ok("/etc/supervisor/x.sock")
    );
    assert_eq!(
        expand("%(ENV_SOCK)s", &names, false).as_deref(),
        Ok("/run/s.sock")
    );
    assert_eq!(expand("100%%", &names, false).as_deref(), Ok("100%"));
    let unset = expand("%(ENV_NOPE)s", &names, false).unwrap_err();
    assert!(
        unset.contains("environment variable NOPE, which is not set"),
        "{unset}"
    );
    let unknown = expand("%(there)s", &names, false).unwrap_err();
    assert!(
        unknown.contains("available names: here, ENV_<variable>"),
        "{unknown}"
    );
    let lone = expand("50% off", &names, false).unwrap_err();
    assert!(lone.contains("'50% off'"), "{lone}");
    let secret = expand("pa%ss", &names, true).unwrap_err();
    assert!(!secret.contains("pa%ss"), "{secret}");
    assert!(expand("%(here)d", &names, false).is_err());
}

#[test]
fn globs_are_pythons() {
    assert!(fnmatch("a.conf", "*.conf"));
    assert!(!fnmatch("a.conf.bak", "*.conf"));
    assert!(fnmatch("a1.ini", "a?.ini"));
    assert!(fnmatch("b.ini", "[abc].ini"));
    assert!(!fnmatch("d.ini", "[abc].ini"));
    assert!(fnmatch("d.ini", "[!abc].ini"));
    assert!(fnmatch("5.ini", "[0-9].ini"));
    assert!(fnmatch("[x.ini", "[x.ini"), "an unclosed [ is literal");
    assert!(fnmatch("].ini", "[]].ini"));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
        std::fs::write(d.join(name), "").unwrap();
    }
    std::fs::create_dir_all(d.join("x/conf.d")).unwrap();
    std::fs::create_dir_all(d.join("y/conf.d")).unwrap();
    std::fs::write(d.join("x/conf.d/p.conf"), "").unwrap();
    std::fs::write(d.join("y/conf.d/q.conf"), "").unwrap();
    let base = d.to_string_lossy().into_owned();
    let mut found = glob(&format!("{base}/*.conf"), false);
    found.sort();
    assert_eq!(found, [format!("{base}/a.conf"), format!("{base}/b.conf")]);
    let hidden = glob(&format!("{base}/.*.conf"), false);
    assert_eq!(hidden, [format!("{base}/.hidden.conf")]);
    let mut nested = glob(&format!("{base}/*/conf.d/*.conf"), false);
    nested.sort();
    assert_eq!(
        nested,
        [
            format!("{base}/x/conf.d/p.conf"),
            format!("{base}/y/conf.d/q.conf")
        ]
    );
    assert_eq!(
        glob(&format!("{base}/c.txt"), false),
        [format!("{base}/c.txt")]
    );
    assert!(glob(&format!("{base}/none.txt"), false).is_empty());
}

/// The environment a test loads with.
type Env = Box<dyn Fn(&str) -> Option<String>>;

/// A directory holding supervisord configuration files, and a context to load them in.
struct Fixture {
    dir: tempfile::TempDir,
    env: Env,
}

impl Fixture {
    fn new(vars: &[(&str, &str)]) -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            env: Box::new(env_of(vars)),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self, name: &str) -> Result<Found, ConfigError> {
        let context = Context {
            env: &*self.env,
            cwd: self.dir.path().to_path_buf(),
            host_name: "this-host".into(),
        };
        load_with(Path::new(name), &context)
    }

    fn target(&self, name: &str) -> Target {
        let found = self.load(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.settings.targets.len(), 1);
        found.settings.targets[0].clone()
    }
}

fn unix(path: PathBuf) -> Endpoint {
    Endpoint::Unix { path }
}

fn tcp(host: &str, port: u16) -> Endpoint {
    Endpoint::Tcp {
        tls: false,
        host: host.into(),
        port,
    }
}

#[test]
fn supervisorctls_serverurl_and_credentials_come_first() {
    let f = Fixture::new(&[("PW", "s3cret-pw")]);
    f.write(
        "supervisord.conf",
        "[unix_http_server]\nfile = /run/other.sock\n\n\
         [supervisorctl]\n\
         serverurl = unix://%(here)s/run/../supervisor.sock ; the socket\n\
         username = ctl\n\
         password = %(ENV_PW)s\n",
    );
    let found = f.load("supervisord.conf").unwrap_or_else(|e| panic!("{e}"));
    let target = &found.settings.targets[0];
    assert_eq!(target.name, "this-host");
    assert_eq!(target.endpoint, unix(f.path().join("supervisor.sock")));
    let credentials = target.credentials.as_ref().unwrap();
    assert_eq!(credentials.username, "ctl");
    assert_eq!(credentials.password.expose(), "s3cret-pw");
    assert!(
        found
            .described
            .contains("from [supervisorctl] serverurl in"),
        "{}",
        found.described
    );
    assert!(!found.described.contains("s3cret"));
    assert_eq!(found.settings.format, crate::settings::ConfigFormat::Native);
    assert_eq!(found.settings.exporters.len(), 1, "OTEL_* defaults");
}

#[test]
fn http_serverurls_are_read_as_supervisorctl_reads_them() {
    let f = Fixture::new(&[("HOME", "/home/me")]);
    let url = |url: &str| {
        f.write("s.conf", &format!("[supervisorctl]\nserverurl={url}\n"));
        f.load("s.conf")
            .map(|found| found.settings.targets[0].endpoint.clone())
    };
    assert_eq!(
        url("http://LocalHost:9001").unwrap(),
        tcp("localhost", 9001)
    );
    assert_eq!(url("http://127.0.0.1").unwrap(), tcp("127.0.0.1", 80));
    assert_eq!(url("http://[::1]:9001/RPC2").unwrap(), tcp("::1", 9001));
    assert_eq!(
        url("http://user:hunter22@h:9001").unwrap(),
        tcp("h", 9001),
        "a URL's credentials are not used"
    );
    assert_eq!(
        url("unix://~/s.sock").unwrap(),
        unix("/home/me/s.sock".into())
    );
    assert_eq!(
        url("unix://rel.sock").unwrap(),
        unix(f.path().join("rel.sock"))
    );
    let error = url("https://user:hunter22@h:9001").unwrap_err().to_string();
    assert!(
        error.contains("[supervisorctl] serverurl: Unknown protocol"),
        "{error}"
    );
    assert!(!error.contains("hunter22"), "{error}");
}

#[test]
fn without_serverurl_the_server_sections_decide() {
    let f = Fixture::new(&[]);
    f.write(
        "supervisord.conf",
        "[unix_http_server]\nfile=%(here)s/sock/supervisor.sock\nusername=u\npassword=p4ss\n\
         [inet_http_server]\nport=9001\n\
         [supervisord]\nidentifier = web-7\n",
    );
    let target = f.target("supervisord.conf");
    assert_eq!(target.name, "web-7");
    assert_eq!(target.endpoint, unix(f.path().join("sock/supervisor.sock")));
    assert_eq!(target.credentials.unwrap().username, "u");

    for (port, endpoint) in [
        ("9001", tcp("localhost", 9001)),
        ("*:9002", tcp("localhost", 9002)),
        ("0.0.0.0:9003", tcp("127.0.0.1", 9003)),
        ("10.1.2.3:9004", tcp("10.1.2.3", 9004)),
        ("[::1]:9005", tcp("::1", 9005)),
    ] {
        f.write("inet.conf", &format!("[inet_http_server]\nport = {port}\n"));
        let target = f.target("inet.conf");
        assert_eq!(target.endpoint, endpoint, "{port}");
        assert_eq!(target.name, "this-host");
        assert!(target.credentials.is_none());
    }
}

#[test]
fn nothing_usable_names_the_file_and_the_key() {
    let f = Fixture::new(&[]);
    let path = f.write("none.conf", "[supervisord]\nlogfile=/tmp/x\n");
    let error = f.load("none.conf").unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("{}: no supervisord to reach", path.display())),
        "{error}"
    );

    let path = f.write("inet.conf", "[inet_http_server]\nusername=u\n");
    let error = f.load("inet.conf").unwrap_err().to_string();
    let file = path.display();
    assert!(
        error.contains(&format!(
            "{file}:1:1: [inet_http_server]: has no port value"
        )),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "{file}:2:1: [inet_http_server] username: set password too"
        )),
        "{error}"
    );

    f.write("port.conf", "[inet_http_server]\nport=http\n");
    let error = f.load("port.conf").unwrap_err().to_string();
    assert!(
        error.contains("[inet_http_server] port: invalid port 'http'"),
        "{error}"
    );

    f.write(
        "sha.conf",
        "[unix_http_server]\nfile=/s.sock\nusername=u\npassword={SHA}82ab876d1387bfafe46cc1c8a2ef074eae50cb1d\n",
    );
    let error = f.load("sha.conf").unwrap_err().to_string();
    assert!(
        error.contains(":4:1: [unix_http_server] password: is a SHA-1 digest"),
        "{error}"
    );
    assert!(!error.contains("82ab876d"), "{error}");

    f.write(
        "env.conf",
        "[unix_http_server]\nfile=%(ENV_NOT_SET)s/s.sock\n",
    );
    let error = f.load("env.conf").unwrap_err().to_string();
    assert!(
        error.contains(
            ":2:1: [unix_http_server] file: %(ENV_NOT_SET)s names the environment variable NOT_SET"
        ),
        "{error}"
    );

    f.write("bad.conf", "[supervisorctl]\nthis line has no delimiter\n");
    let error = f.load("bad.conf").unwrap_err().to_string();
    assert!(
        error.contains("bad.conf:2:1: not a [section] header"),
        "{error}"
    );

    let error = f.load("missing.conf").unwrap_err().to_string();
    assert!(error.starts_with("missing.conf: cannot read: "), "{error}");
}

#[test]
fn includes_are_globs_from_the_including_files_directory() {
    let f = Fixture::new(&[]);
    f.write(
        "etc/supervisord.conf",
        "[include]\nfiles = conf.d/*.conf extra/server.ini\n\
         [supervisord]\nidentifier=main\n",
    );
    f.write("etc/conf.d/b.conf", "[supervisord]\nidentifier = from-b\n");
    f.write("etc/conf.d/a.conf", "[supervisord]\nidentifier = from-a\n");
    f.write(
        "etc/conf.d/.hidden.conf",
        "[supervisord]\nidentifier = hidden\n",
    );
    f.write(
        "etc/extra/server.ini",
        "[unix_http_server]\nfile = %(here)s/s.sock\n",
    );
    let target = f.target("etc/supervisord.conf");
    // Sorted within a glob, later files winning, as configparser merges them.
    assert_eq!(target.name, "from-b");
    assert_eq!(target.endpoint, unix(f.path().join("etc/extra/s.sock")));
}

#[test]
fn a_pattern_that_matches_nothing_is_a_warning() {
    let f = Fixture::new(&[]);
    f.write(
        "supervisord.conf",
        "[include]\nfiles=nothing/*.conf\n[inet_http_server]\nport=9001\n",
    );
    let found = f.load("supervisord.conf").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        found
            .settings
            .warnings
            .iter()
            .any(|w| w.contains("[include] files: no file matches")),
        "{:?}",
        found.settings.warnings
    );
    f.write(
        "no-files.conf",
        "[include]\n[inet_http_server]\nport=9001\n",
    );
    let error = f.load("no-files.conf").unwrap_err().to_string();
    assert!(
        error.contains(":1:1: [include]: has no files setting"),
        "{error}"
    );
}

#[test]
fn includes_cannot_loop() {
    let f = Fixture::new(&[]);
    // The main file includes itself and a file that includes the main file back: supervisord
    // reads the main file's [include] once, so each is read once more at most.
    f.write(
        "supervisord.conf",
        "[include]\nfiles = supervisord.conf other.conf\n[inet_http_server]\nport=9001\n",
    );
    f.write(
        "other.conf",
        "[include]\nfiles = supervisord.conf other.conf\n[supervisord]\nidentifier=other\n",
    );
    let found = f.load("supervisord.conf").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.settings.targets[0].name, "other");
    assert_eq!(found.settings.targets[0].endpoint, tcp("localhost", 9001));
    let nested: Vec<&String> = found
        .settings
        .warnings
        .iter()
        .filter(|w| w.contains("its [include] is not followed"))
        .collect();
    assert_eq!(nested.len(), 2, "{:?}", found.settings.warnings);
}

#[test]
fn supervisorctl_reads_only_the_main_file() {
    let f = Fixture::new(&[]);
    f.write(
        "supervisord.conf",
        "[include]\nfiles=ctl.conf\n[inet_http_server]\nport=9001\n",
    );
    f.write(
        "ctl.conf",
        "[supervisorctl]\nserverurl=unix:///elsewhere.sock\n",
    );
    assert_eq!(
        f.target("supervisord.conf").endpoint,
        tcp("localhost", 9001)
    );
}

#[test]
fn the_search_follows_supervisorctls_order() {
    let f = Fixture::new(&[]);
    let exe = f.path().join("prefix/bin/supervisord-receiver");
    let searched = search_paths(Some(&exe));
    let expected: Vec<PathBuf> = vec![
        f.path().join("prefix/etc/supervisord.conf"),
        f.path().join("prefix/supervisord.conf"),
        "supervisord.conf".into(),
        "etc/supervisord.conf".into(),
        "/etc/supervisord.conf".into(),
        "/etc/supervisor/supervisord.conf".into(),
    ];
    assert_eq!(searched, expected);

    let cwd = f.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    let missing = find(Some(&exe), &cwd);
    if !Path::new("/etc/supervisord.conf").exists()
        && !Path::new("/etc/supervisor/supervisord.conf").exists()
    {
        let error = missing.unwrap_err().to_string();
        assert!(error.contains("no supervisord configuration where supervisorctl looks"));
        assert!(
            error.contains("etc/supervisord.conf, /etc/supervisord.conf"),
            "{error}"
        );
    }
    f.write("work/etc/supervisord.conf", "");
    assert_eq!(
        find(Some(&exe), &cwd).unwrap(),
        cwd.join("etc/supervisord.conf")
    );
    f.write("work/supervisord.conf", "");
    assert_eq!(
        find(Some(&exe), &cwd).unwrap(),
        cwd.join("supervisord.conf")
    );
    f.write("prefix/supervisord.conf", "");
    assert_eq!(
        find(Some(&exe), &cwd).unwrap(),
        f.path().join("prefix/supervisord.conf")
    );
    f.write("prefix/etc/supervisord.conf", "");
    assert_eq!(
        find(Some(&exe), &cwd).unwrap(),
        f.path().join("prefix/etc/supervisord.conf")
    );
}

#[test]
fn paths_are_normalized_as_supervisor_does() {
    let env = env_of(&[("HOME", "/home/me")]);
    let cwd = Path::new("/work/dir");
    assert_eq!(
        absolute("a/../b/./c.sock", cwd, &env),
        PathBuf::from("/work/dir/b/c.sock")
    );
    assert_eq!(absolute("/x//y/", cwd, &env), PathBuf::from("/x/y"));
    assert_eq!(
        absolute("~/s.sock", cwd, &env),
        PathBuf::from("/home/me/s.sock")
    );
    assert_eq!(absolute("/../..", cwd, &env), PathBuf::from("/"));
}
