//! A real supervisord for tests: provisioned once per machine, started per test in a temp dir with
//! real child processes in real states, and stopped (with its children) on drop.
//!
//! `supervisord`/`supervisorctl` come from PATH when present; otherwise they are installed from
//! PyPI into a venv under the cargo target dir, shared by every test binary, the examples and
//! the demo ([`super::provision`], the one routine all of them use).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::gate::{self, SharedGuard};
use super::proc_tree::{child_process_groups, children};
use super::provision;
pub use super::provision::SupervisorTools;

/// How long a started supervisord may take to answer its first `status`.
const READY_WAIT: Duration = Duration::from_secs(20);

/// The cargo target dir (`target/`), shared by all test binaries of the workspace.
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tmp.to_path_buf())
}

/// Where the venv lives when supervisord is not on PATH (the examples and the demo use it too).
pub fn venv_dir() -> PathBuf {
    provision::venv_dir(&target_dir())
}

/// Finds or installs supervisord once per process; panics with the cause when it cannot.
pub fn ensure_supervisord() -> &'static SupervisorTools {
    static TOOLS: OnceLock<SupervisorTools> = OnceLock::new();
    TOOLS.get_or_init(|| provision::provision(&target_dir()).unwrap_or_else(|e| panic!("{e}")))
}

/// Basic-auth credentials for both HTTP servers of a supervisord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub username: String,
    pub password: String,
}

impl Auth {
    pub fn new(username: &str, password: &str) -> Auth {
        Auth {
            username: username.to_string(),
            password: password.to_string(),
        }
    }
}

/// One `[program:x]` section.
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub command: String,
    pub autostart: bool,
    pub autorestart: bool,
    pub startsecs: u32,
    pub startretries: u32,
    /// `[group:g]` this program belongs to; `None` = its own group, named like the program.
    pub group: Option<String>,
}

impl Program {
    /// A long-lived program that reaches RUNNING after one second.
    pub fn running(name: &str) -> Program {
        Program {
            name: name.to_string(),
            command: "sleep 86400".to_string(),
            autostart: true,
            autorestart: false,
            startsecs: 1,
            startretries: 3,
            group: None,
        }
    }

    pub fn in_group(mut self, group: &str) -> Program {
        self.group = Some(group.to_string());
        self
    }

    /// The `[program:x]` section, as written into supervisord.conf.
    pub fn section(&self) -> String {
        format!(
            "[program:{name}]\n\
             command={command}\n\
             autostart={autostart}\n\
             autorestart={autorestart}\n\
             startsecs={startsecs}\n\
             startretries={startretries}\n\
             stopwaitsecs=2\n\
             stopasgroup=true\n\
             killasgroup=true\n\
             redirect_stderr=true\n\n",
            name = self.name,
            command = self.command,
            autostart = self.autostart,
            autorestart = self.autorestart,
            startsecs = self.startsecs,
            startretries = self.startretries,
        )
    }
}

/// The default program set: one program per reachable state, plus a two-program group.
///
/// | program | state |
/// |---|---|
/// | running | RUNNING |
/// | stopped | STOPPED (never started) |
/// | exited | EXITED (exit 3 after a second) |
/// | fatal | FATAL (exit 3 at once, no retries; supervisord records no exit status then) |
/// | backoff | BACKOFF, briefly STARTING between retries |
/// | starting | STARTING (startsecs never reached) |
/// | workers:worker_a, workers:worker_b | RUNNING |
pub fn mixed_programs() -> Vec<Program> {
    let base = Program::running("x");
    vec![
        Program::running("running"),
        Program {
            name: "stopped".into(),
            autostart: false,
            ..base.clone()
        },
        Program {
            name: "exited".into(),
            command: "sh -c 'sleep 1; exit 3'".into(),
            startsecs: 0,
            ..base.clone()
        },
        // supervisord reaps children on its one-second tick, not when they exit; with a
        // startsecs of 1 a loaded machine could see these "stay up" long enough to count as
        // started (then EXITED). Ten seconds leaves no doubt that they failed to start.
        Program {
            name: "fatal".into(),
            command: "sh -c 'exit 3'".into(),
            startsecs: 10,
            startretries: 0,
            ..base.clone()
        },
        Program {
            name: "backoff".into(),
            command: "sh -c 'exit 1'".into(),
            startsecs: 10,
            startretries: 1000,
            ..base.clone()
        },
        Program {
            name: "starting".into(),
            startsecs: 3600,
            ..base
        },
        Program::running("worker_a").in_group("workers"),
        Program::running("worker_b").in_group("workers"),
    ]
}

/// The states the mixed set settles in, keyed as `supervisorctl status` names them.
/// `backoff` is listed as BACKOFF; it flips to STARTING for a moment at each retry.
pub fn mixed_expected_states() -> Vec<(&'static str, &'static str)> {
    vec![
        ("running", "RUNNING"),
        ("stopped", "STOPPED"),
        ("exited", "EXITED"),
        ("fatal", "FATAL"),
        ("backoff", "BACKOFF"),
        ("starting", "STARTING"),
        ("workers:worker_a", "RUNNING"),
        ("workers:worker_b", "RUNNING"),
    ]
}

#[derive(Debug, Clone)]
pub struct Options {
    /// `[inet_http_server]` on a free 127.0.0.1 port.
    pub tcp: bool,
    /// `[unix_http_server]` with a socket in the temp dir.
    pub unix: bool,
    /// Required by both servers when set.
    pub auth: Option<Auth>,
    pub programs: Vec<Program>,
    /// More sections, as written (an `[eventlistener:x]`).
    pub sections: Vec<String>,
    /// More files written into supervisord's directory before it starts (path relative to
    /// the directory, text): files an `[include]` section names.
    pub files: Vec<(String, String)>,
    /// More environment for supervisord (and so its programs): a faked clock
    /// (`testkit::faketime`).
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    /// TCP and UNIX socket, no auth, the mixed program set.
    fn default() -> Self {
        Options {
            tcp: true,
            unix: true,
            auth: None,
            programs: mixed_programs(),
            sections: Vec::new(),
            files: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl Options {
    pub fn with_auth(mut self, username: &str, password: &str) -> Options {
        self.auth = Some(Auth::new(username, password));
        self
    }

    pub fn tcp_only(mut self) -> Options {
        self.tcp = true;
        self.unix = false;
        self
    }

    pub fn unix_only(mut self) -> Options {
        self.tcp = false;
        self.unix = true;
        self
    }

    pub fn programs(mut self, programs: Vec<Program>) -> Options {
        self.programs = programs;
        self
    }

    /// Adds a section to supervisord.conf, as written.
    pub fn section(mut self, text: &str) -> Options {
        self.sections.push(text.to_string());
        self
    }

    /// Writes a file into supervisord's directory before it starts (`conf.d/programs.ini`).
    pub fn file(mut self, relative: &str, text: &str) -> Options {
        self.files.push((relative.to_string(), text.to_string()));
        self
    }

    /// Sets an environment variable for supervisord and its programs.
    pub fn env(mut self, key: &str, value: &str) -> Options {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running supervisord. Dropping it stops supervisord, which stops its children.
pub struct Supervisord {
    child: Option<Child>,
    dir: tempfile::TempDir,
    conf: PathBuf,
    tcp_port: Option<u16>,
    socket: Option<PathBuf>,
    auth: Option<Auth>,
    tools: &'static SupervisorTools,
    /// Keeps a test that loads the machine on purpose from starting meanwhile ([`gate`]).
    _shared: SharedGuard,
}

impl Supervisord {
    /// Starts supervisord and waits until it answers; panics with its log when it cannot start.
    pub fn start(opts: Options) -> Supervisord {
        assert!(
            opts.tcp || opts.unix,
            "a supervisord needs a TCP or UNIX server"
        );
        let tools = ensure_supervisord();
        let shared = gate::shared();
        let mut last_failure = String::new();
        // A port found free can be taken before supervisord binds it; try again with a new one.
        for _ in 0..5 {
            match Supervisord::try_start(&opts, tools, &shared) {
                Ok(s) => return s,
                Err(failure) => last_failure = failure,
            }
        }
        panic!(
            "supervisord did not start ({}):\n{last_failure}",
            tools.origin
        );
    }

    fn try_start(
        opts: &Options,
        tools: &'static SupervisorTools,
        shared: &SharedGuard,
    ) -> Result<Supervisord, String> {
        // Short prefix under /tmp: a UNIX socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("svd")
            .tempdir_in("/tmp")
            .map_err(|e| format!("cannot create temp dir: {e}"))?;
        let tcp_port = opts.tcp.then(free_port);
        let socket = opts.unix.then(|| dir.path().join("supervisor.sock"));
        let conf = dir.path().join("supervisord.conf");
        for (relative, text) in &opts.files {
            let path = dir.path().join(relative);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let text = config_text(dir.path(), tcp_port, socket.as_deref(), opts);
        fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let out = fs::File::create(dir.path().join("supervisord.out"))
            .map_err(|e| format!("cannot create output file: {e}"))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot clone output file: {e}"))?;
        let child = tools
            .supervisord()
            .arg("-c")
            .arg(&conf)
            .arg("-n")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot spawn supervisord: {e}"))?;
        let mut s = Supervisord {
            child: Some(child),
            dir,
            conf,
            tcp_port,
            socket,
            auth: opts.auth.clone(),
            tools,
            _shared: shared.clone(),
        };
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if let Some(status) = s.exited() {
                return Err(format!("supervisord exited with {status}:\n{}", s.logs()));
            }
            if !parse_status(&s.status_output()).is_empty() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "supervisord did not answer within {READY_WAIT:?}; last status:\n{}\nlogs:\n{}",
                    s.status_output(),
                    s.logs()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The TCP port; panics when this supervisord has no TCP server.
    pub fn port(&self) -> u16 {
        self.tcp_port
            .unwrap_or_else(|| panic!("this supervisord has no [inet_http_server]"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The socket path; panics when this supervisord has no UNIX server.
    pub fn socket_path(&self) -> &Path {
        self.socket
            .as_deref()
            .unwrap_or_else(|| panic!("this supervisord has no [unix_http_server]"))
    }

    /// `unix:///tmp/.../supervisor.sock`.
    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket_path().display())
    }

    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// A scratch dir that lives as long as this supervisord (for receiver configs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn tools(&self) -> &'static SupervisorTools {
        self.tools
    }

    /// supervisord's own log and console output, for panic messages.
    pub fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- supervisord.log\n{}--- console\n{}",
            read("supervisord.log"),
            read("supervisord.out")
        )
    }

    /// Runs `supervisorctl -c CONF ARGS...` and returns stdout and stderr together.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self
            .tools
            .supervisorctl()
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run supervisorctl: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    }

    fn status_output(&self) -> String {
        self.ctl(&["status"])
    }

    /// `name` (or `group:name`) → state name, as `supervisorctl status` reports them now.
    pub fn states(&self) -> BTreeMap<String, String> {
        parse_status(&self.status_output())
    }

    /// Polls until every listed process is in its state; panics with the last status on timeout.
    pub fn wait_for_states(&self, expected: &[(&str, &str)], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.status_output();
            let states = parse_status(&output);
            let missing: Vec<String> = expected
                .iter()
                .filter(|(name, state)| states.get(*name).map(String::as_str) != Some(*state))
                .map(|(name, state)| format!("{name}={state}"))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "supervisord processes not in the expected states within {timeout:?}: {}\n\
                 last `supervisorctl status`:\n{output}",
                missing.join(", ")
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the mixed set's settled states (see [`mixed_programs`]).
    pub fn wait_for_mixed_states(&self) {
        self.wait_for_states(&mixed_expected_states(), Duration::from_secs(20));
    }

    /// supervisord's pid.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("supervisord already stopped"))
    }
}

impl Drop for Supervisord {
    /// supervisord notices a stopped child only on its one-second tick and stops programs one
    /// group at a time, so a plain SIGTERM takes seconds. Each program leads its own process
    /// group: those groups get SIGTERM alongside supervisord, and once every child has ended,
    /// supervisord has nothing left to do and is killed. No process outlives the drop.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let supervisord = child.id();
        let first = child_process_groups(supervisord);
        signal(&[supervisord.to_string()], "TERM");
        signal(&group_targets(&first), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if children(supervisord).iter().all(|c| c.zombie) {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Children spawned since the first look (a retry) are caught here.
        let mut groups = first;
        groups.extend(child_process_groups(supervisord));
        let _ = child.kill();
        let _ = child.wait();
        signal(&group_targets(&groups), "KILL");
    }
}

/// `kill -SIGNAL -- TARGETS...`. Errors (a target already gone) are expected and ignored.
fn signal(targets: &[String], name: &str) {
    if targets.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg("--")
        .args(targets)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `-PGID` kill targets: a negative pid names a process group.
fn group_targets(groups: &[u32]) -> Vec<String> {
    groups.iter().map(|g| format!("-{g}")).collect()
}

/// A port that was free a moment ago. Another process may take it before supervisord binds it;
/// [`Supervisord::start`] retries.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}

fn config_text(dir: &Path, tcp_port: Option<u16>, socket: Option<&Path>, opts: &Options) -> String {
    let mut text = String::new();
    let credentials = |text: &mut String| {
        if let Some(auth) = &opts.auth {
            text.push_str(&format!(
                "username={}\npassword={}\n",
                auth.username, auth.password
            ));
        }
    };
    if let Some(socket) = socket {
        text.push_str(&format!(
            "[unix_http_server]\nfile={}\nchmod=0700\n",
            socket.display()
        ));
        credentials(&mut text);
        text.push('\n');
    }
    if let Some(port) = tcp_port {
        text.push_str(&format!("[inet_http_server]\nport=127.0.0.1:{port}\n"));
        credentials(&mut text);
        text.push('\n');
    }
    text.push_str(&format!(
        "[supervisord]\n\
         nodaemon=true\n\
         logfile={dir}/supervisord.log\n\
         pidfile={dir}/supervisord.pid\n\
         childlogdir={dir}\n\
         loglevel=info\n\n\
         [rpcinterface:supervisor]\n\
         supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n",
        dir = dir.display()
    ));
    let serverurl = match (socket, tcp_port) {
        (Some(socket), _) => format!("unix://{}", socket.display()),
        (None, Some(port)) => format!("http://127.0.0.1:{port}"),
        (None, None) => String::new(),
    };
    text.push_str(&format!("[supervisorctl]\nserverurl={serverurl}\n"));
    credentials(&mut text);
    text.push('\n');
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for program in &opts.programs {
        text.push_str(&program.section());
        if let Some(group) = &program.group {
            groups.entry(group).or_default().push(&program.name);
        }
    }
    for (group, members) in groups {
        text.push_str(&format!(
            "[group:{group}]\nprograms={}\n\n",
            members.join(",")
        ));
    }
    for section in &opts.sections {
        text.push_str(section);
        text.push_str("\n\n");
    }
    text
}

/// Reads `supervisorctl status` lines: `NAME   STATE   description`. Lines that are not process
/// lines (connection errors) are skipped, so an unreachable daemon gives an empty map.
pub fn parse_status(output: &str) -> BTreeMap<String, String> {
    const STATES: [&str; 8] = [
        "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN",
    ];
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let state = words.next()?;
            STATES
                .contains(&state)
                .then(|| (name.to_string(), state.to_string()))
        })
        .collect()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut file =
        fs::File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}
