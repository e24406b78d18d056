//! End to end for where the settings come from, against a real supervisord: no `--config` at
//! all (supervisord's own configuration, named or found where supervisorctl looks, its
//! `[include]` followed), a directory of native files or of Datadog's files, and a shard of
//! the targets.
//!
//! The binary's working directory is set on the child (`Command::current_dir`), never on this
//! process, which the suites share.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::testkit::config::{self, otlp_exporter, target};
use crate::testkit::otlp_sink::{self, OtlpSink};
use crate::testkit::receiver::{self, Finished, Running};
use crate::testkit::supervisord::{Options, Program, Supervisord};
use crate::testkit::{yaml_str, WAIT};

const USER: &str = "zc-user";
const PASSWORD: &str = "zc-pass-51d7e";

/// supervisord with a UNIX socket that wants credentials, `[supervisorctl]` carrying them, and
/// its programs in a file that `[include]` brings, by a glob relative to supervisord.conf.
fn supervisord_with_include(identifier: Option<&str>) -> Supervisord {
    let programs = format!(
        "; the programs, included\n{}{}",
        Program::running("alpha").section(),
        Program::running("beta").section()
    );
    let mut options = Options::default()
        .unix_only()
        .with_auth(USER, PASSWORD)
        .programs(Vec::new())
        .section("[include]\nfiles = conf.d/*.ini ; relative to this file")
        .file("conf.d/programs.ini", &programs)
        .file(
            "conf.d/programs.ini.disabled",
            "[program:never]\ncommand=sleep 1\n",
        );
    if let Some(identifier) = identifier {
        // configparser merges a second [supervisord] into the first, as supervisord reads it.
        options = options.section(&format!("[supervisord]\nidentifier = {identifier}"));
    }
    let svd = Supervisord::start(options);
    svd.wait_for_states(&[("alpha", "RUNNING"), ("beta", "RUNNING")], WAIT);
    svd
}

/// The name a target gets when `[supervisord]` has no identifier: this host's.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|e| panic!("cannot read the host name: {e}"))
}

fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut command: Command = receiver::command(args, env);
    command.current_dir(dir);
    Running::spawn(command).wait(Duration::from_secs(30))
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// Target name → (connected, process names), from `check --output json`.
fn checked(run: &Finished) -> Vec<(String, bool, Vec<String>)> {
    let report = json(&run.stdout);
    report["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets: {report}"))
        .iter()
        .map(|t| {
            let mut names: Vec<String> = t["processes"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            (
                t["name"].as_str().unwrap_or_default().to_string(),
                t["connected"].as_bool().unwrap_or(false),
                names,
            )
        })
        .collect()
}

#[test]
fn check_and_run_poll_the_supervisord_that_supervisord_conf_describes() {
    let svd = supervisord_with_include(Some("zc-web"));
    let conf = svd.conf_path().to_string_lossy().into_owned();

    let run = receiver::run_once(
        &["check", "--supervisord-conf", &conf, "--output", "json"],
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(
        checked(&run),
        [(
            "zc-web".to_string(),
            true,
            vec!["alpha".to_string(), "beta".to_string()]
        )],
        "{}",
        run.describe()
    );
    let report = json(&run.stdout);
    assert_eq!(report["targets"][0]["endpoint"], svd.unix_url().as_str());
    assert!(
        run.stderr.contains("from [supervisorctl] serverurl in"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "{}",
        run.describe()
    );

    let sink = OtlpSink::start();
    let endpoint = sink.http_endpoint();
    let mut command = receiver::command(
        &["run", "--supervisord-conf", &conf],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    // A directory without supervisord.conf: the named file is what counts.
    command.current_dir("/");
    let receiver = Running::spawn(command);
    let poll = sink.wait_for_processes("zc-web", &["alpha", "beta"], WAIT);
    assert_eq!(
        poll.resource_attrs().get("supervisord.version"),
        Some(&svd.tools().version())
    );
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
    assert!(
        !finished.stderr.contains(PASSWORD),
        "{}",
        finished.describe()
    );
}

#[test]
fn without_arguments_the_working_directory_is_searched_like_supervisorctl() {
    let svd = supervisord_with_include(None);
    // supervisord.conf is in its directory: `supervisorctl status` run there finds it, and so
    // does the receiver.
    let run = run_in(svd.dir(), &["check", "--output", "json"], &[]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(
        checked(&run),
        [(
            host_name(),
            true,
            vec!["alpha".to_string(), "beta".to_string()]
        )],
        "{}",
        run.describe()
    );
    assert!(
        run.stderr
            .contains("found supervisord's configuration where supervisorctl looks"),
        "{}",
        run.describe()
    );

    // The same from a directory with nothing to find: exit 2, the places searched listed.
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    if !Path::new("/etc/supervisord.conf").exists()
        && !Path::new("/etc/supervisor/supervisord.conf").exists()
    {
        let run = run_in(empty.path(), &["check"], &[]);
        assert_eq!(run.code(), Some(2), "{}", run.describe());
        assert!(
            run.stderr.contains("supervisord.conf, etc/supervisord.conf, /etc/supervisord.conf, /etc/supervisor/supervisord.conf"),
            "{}",
            run.describe()
        );
    }
}

#[test]
fn a_supervisord_conf_with_nothing_to_reach_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = config::write(
        dir.path(),
        "supervisord.conf",
        "[supervisord]\nlogfile=/tmp/x.log\n[inet_http_server]\nport = not-a-port\n",
    );
    let conf = conf.to_string_lossy().into_owned();
    let run = receiver::run_once(&["run", "--supervisord-conf", &conf], &[]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains(&format!(
            "{conf}:4:1: [inet_http_server] port: invalid port 'not-a-port'"
        )),
        "{}",
        run.describe()
    );
}

/// Native files in one directory: the exporters in one, targets in others.
fn native_dir(dir: &Path, sink: &OtlpSink, files: &[(&str, &str)]) -> std::path::PathBuf {
    let conf = dir.join("receiver.d");
    std::fs::create_dir_all(&conf).unwrap_or_else(|e| panic!("{e}"));
    config::write(
        &conf,
        "00-exporters.yaml",
        &format!(
            "collection_interval: 1s\ninitial_delay: 0s\nexporters:\n{}",
            otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])
        ),
    );
    for (name, text) in files {
        config::write(&conf, name, text);
    }
    conf
}

fn targets_yaml(targets: &[(&str, &str, &str)]) -> String {
    let mut out = String::from("targets:\n");
    for (name, endpoint, only) in targets {
        out.push_str(&format!(
            "  - name: {}\n    endpoint: {}\n    include: {{names: [{only}]}}\n",
            yaml_str(name),
            yaml_str(endpoint)
        ));
    }
    out
}

#[test]
fn a_directory_of_native_files_polls_the_targets_of_each_and_reloads_them() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .programs(vec![Program::running("alpha"), Program::running("beta")]),
    );
    let sink = OtlpSink::start();
    let url = svd.http_url();
    let dir = native_dir(
        svd.dir(),
        &sink,
        &[
            ("10-web.yaml", &targets_yaml(&[("web", &url, "alpha")])),
            ("20-db.yml", &targets_yaml(&[("db", &url, "beta")])),
            ("conf.yaml.example", "not: [yaml"),
        ],
    );
    let mut receiver = Running::start(&dir, &[]);
    sink.wait_for_processes("web", &["alpha"], WAIT);
    sink.wait_for_processes("db", &["beta"], WAIT);

    // SIGHUP reads the directory again: a new file's target starts.
    config::write(
        &dir,
        "30-more.yaml",
        &targets_yaml(&[("more", &url, "alpha")]),
    );
    receiver.signal("HUP");
    receiver.wait_for_stderr("configuration reloaded", WAIT);
    sink.wait_for_processes("more", &["alpha"], WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}

#[test]
fn a_name_in_two_files_of_a_directory_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sink = OtlpSink::start();
    let conf = native_dir(
        dir.path(),
        &sink,
        &[
            (
                "a.yaml",
                &targets_yaml(&[("same", "http://127.0.0.1:1", "x")]),
            ),
            (
                "b.yaml",
                &targets_yaml(&[("same", "http://127.0.0.1:2", "x")]),
            ),
        ],
    );
    let conf_text = conf.to_string_lossy().into_owned();
    let run = receiver::run_once(&["run", "--config", &conf_text], &[]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    let a = conf.join("a.yaml").display().to_string();
    let b = conf.join("b.yaml").display().to_string();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with(&b) && l.contains("duplicate name 'same'") && l.contains(&a)),
        "{}",
        run.describe()
    );
    assert!(sink.requests().is_empty());
}

#[test]
fn a_datadog_directory_polls_the_instances_of_conf_and_auto_conf() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .programs(vec![Program::running("alpha"), Program::running("beta")]),
    );
    let dir = svd.dir().join("supervisord.d");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let instance = |name: &str, proc_name: &str| {
        format!(
            "  - name: {name}\n    host: 127.0.0.1\n    port: {}\n    proc_names: [{proc_name}]\n    \
             min_collection_interval: 1\n",
            svd.port()
        )
    };
    config::write(
        &dir,
        "conf.yaml",
        &format!(
            "init_config:\n\ninstances:\n{}",
            instance("dd-conf", "alpha")
        ),
    );
    config::write(
        &dir,
        "auto_conf.yaml",
        &format!(
            "ad_identifiers:\n  - supervisord\ninit_config:\ninstances:\n{}",
            instance("dd-auto", "beta")
        ),
    );
    config::write(&dir, "conf.yaml.example", "instances: [{name: example}]\n");
    let dir_text = dir.to_string_lossy().into_owned();

    let run = receiver::run_once(&["check", "--config", &dir_text, "--output", "json"], &[]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(
        checked(&run),
        [
            ("dd-auto".to_string(), true, vec!["beta".to_string()]),
            ("dd-conf".to_string(), true, vec!["alpha".to_string()]),
        ],
        "{}",
        run.describe()
    );

    let sink = OtlpSink::start();
    let endpoint = sink.http_endpoint();
    let receiver = Running::start(&dir, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let poll = sink.wait_for_processes("dd-conf", &["alpha"], WAIT);
    assert!(poll
        .points
        .iter()
        .all(|p| p.attr("supervisord_server") == Some("dd-conf")));
    sink.wait_for_processes("dd-auto", &["beta"], WAIT);
    let finished = receiver.stop();
    assert_eq!(finished.code(), Some(0), "{}", finished.describe());
}

#[test]
fn each_shard_polls_its_own_targets() {
    let svd = Supervisord::start(
        Options::default()
            .tcp_only()
            .programs(vec![Program::running("alpha")]),
    );
    let sink = OtlpSink::start();
    let url = svd.http_url();
    let names = ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5"];
    let targets: Vec<_> = names.iter().map(|n| target(n, &url)).collect();
    let path = config::write(
        svd.dir(),
        "receiver.yaml",
        &config::native(
            &targets,
            &[otlp_exporter("grpc", &sink.grpc_endpoint(), "none", &[])],
        ),
    );
    let path = path.to_string_lossy().into_owned();
    // Two receivers, shard 0 by a pod name and shard 1 by the variable.
    let first = Running::spawn(receiver::command(
        &["run", "--config", &path, "--shard", "receiver-0/2"],
        &[],
    ));
    let second = Running::spawn(receiver::command(
        &["run", "--config", &path],
        &[("SUPERVISORD_RECEIVER_SHARD", "1/2")],
    ));
    let requests = sink.wait_for(
        |r| names.iter().all(|n| !otlp_sink::polls(r, n).is_empty()),
        WAIT,
    );
    let first = first.stop();
    let second = second.stop();
    assert_eq!(first.code(), Some(0), "{}", first.describe());
    assert_eq!(second.code(), Some(0), "{}", second.describe());
    // Every target by exactly one receiver: each says how many it took, and all arrived.
    let shard_line = |run: &Finished| -> String {
        run.stderr
            .lines()
            .find(|l| l.contains("fall to this receiver"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no shard line:\n{}", run.describe()))
    };
    let (first_line, second_line) = (shard_line(&first), shard_line(&second));
    assert!(first_line.contains("shard 0/2:"), "{first_line}");
    assert!(second_line.contains("shard 1/2:"), "{second_line}");
    let count = |line: &str| -> usize {
        line.split("shard ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line}"))
    };
    assert_eq!(count(&first_line) + count(&second_line), names.len());
    assert!(!requests.is_empty());
}
