//! What each simulated supervisord reports: P programs under a few groups, as
//! `getAllProcessInfo` lists them (sorted by group, then name), whose states move with the
//! clock.
//!
//! Every value is a pure function of (target, program, Unix time), so the fleet keeps no state
//! per process and needs no timers, and any shard renders the same target identically. Per ten
//! programs: six run steadily (uptime grows), one is FATAL, one was never started, one crash
//! loops (STARTING, RUNNING, EXITED with a varying exit status, BACKOFF, over 1 to 3 minutes)
//! and one is redeployed every 5 to 15 minutes (STOPPING, STOPPED, STARTING, RUNNING with a
//! new pid). Targets differ in boot time, pids, log file names and the phase of each cycle.
//!
//! Their configuration (`getAllConfigInfo`) is the same on every target but for the log file
//! names, which are those of `getAllProcessInfo`: every program has `autostart` true but the
//! one never started (`autostart=false`, one in ten); commands, directories, start and stop
//! settings differ by group.
//!
//! A supervisord that restarts (`--soak`) is a new [`Life`]: its generation is mixed into the
//! target's hash, so every pid, log file name and cycle phase is new, and its processes start
//! again from the restart time.

use crate::reply::{ConfigWriter, Field, ProcessWriter};

const GROUPS: [&str; 5] = ["web", "worker", "celery", "nginx", "cron"];
const SPAWN_ERROR: &str = "Exited too quickly (process log may have details)";
const DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Steady,
    Fatal,
    NeverStarted,
    CrashLoop,
    Redeploy,
}

/// Spreads the unusual programs so every ten have one of each.
const KINDS: [Kind; 10] = [
    Kind::Steady,
    Kind::Steady,
    Kind::CrashLoop,
    Kind::Steady,
    Kind::Steady,
    Kind::Fatal,
    Kind::Steady,
    Kind::Redeploy,
    Kind::Steady,
    Kind::NeverStarted,
];

#[derive(Debug, Clone)]
struct Program {
    name: String,
    group: &'static str,
    kind: Kind,
    /// Distinguishes programs in the per-target hash.
    salt: u64,
    config: Config,
}

/// A program's section of supervisord's configuration, as `getAllConfigInfo` reports it (the
/// members not here are supervisord's defaults, written as constants).
#[derive(Debug, Clone)]
struct Config {
    autostart: bool,
    /// `none` when not set, as supervisord writes a missing value.
    directory: &'static str,
    command: String,
    exitcodes: &'static [i64],
    killasgroup: bool,
    startsecs: i64,
    stopsignal: i64,
    stopwaitsecs: i64,
}

impl Config {
    fn of(group: &'static str, name: &str, index: usize, kind: Kind) -> Config {
        let base = Config {
            autostart: kind != Kind::NeverStarted,
            directory: "/srv/app",
            command: String::new(),
            exitcodes: &[0],
            killasgroup: false,
            startsecs: 1,
            stopsignal: 15,
            stopwaitsecs: 10,
        };
        match group {
            "web" => Config {
                command: format!(
                    "/srv/app/venv/bin/gunicorn app.wsgi:application --bind 127.0.0.1:{} \
                     --workers 4",
                    8000 + index
                ),
                startsecs: 5,
                ..base
            },
            "celery" => Config {
                command: format!(
                    "/srv/app/venv/bin/celery -A app worker --concurrency 4 --hostname {name}"
                ),
                exitcodes: &[0, 2],
                killasgroup: true,
                stopwaitsecs: 60,
                ..base
            },
            "nginx" => Config {
                directory: "none",
                command: "/usr/sbin/nginx -g 'daemon off;'".to_string(),
                stopsignal: 3,
                ..base
            },
            // A shell line: its `&&` is written escaped, as supervisord's marshaller does.
            "cron" => Config {
                command: format!("/bin/sh -c 'sleep 30 && exec /srv/app/bin/{name} --loop'"),
                ..base
            },
            _ => Config {
                command: format!("/srv/app/venv/bin/python -m app.worker --queue q{index}"),
                stopwaitsecs: 30,
                ..base
            },
        }
    }
}

/// Which run of a target's supervisord is answering: generation 0, started with the fleet,
/// until its first restart; each restart (at `started`, Unix seconds) is the next generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Life {
    pub generation: u64,
    pub started: Option<i64>,
}

/// The programs every target of the fleet runs (the same application deployed on every host).
#[derive(Debug, Clone)]
pub struct Programs {
    programs: Vec<Program>,
    /// Indexes into `programs` in name order: `getAllConfigInfo` sorts by name.
    by_name: Vec<usize>,
    /// When the fleet "booted"; each target's supervisord started up to 30 days before.
    boot: i64,
}

impl Programs {
    pub fn new(count: usize, boot: i64) -> Programs {
        let mut programs: Vec<Program> = (0..count)
            .map(|i| {
                let group = GROUPS.get(i % GROUPS.len()).copied().unwrap_or("web");
                let name = format!("{group}_{i:02}");
                let kind = KINDS.get(i % KINDS.len()).copied().unwrap_or(Kind::Steady);
                Program {
                    config: Config::of(group, &name, i, kind),
                    name,
                    group,
                    kind,
                    salt: i as u64,
                }
            })
            .collect();
        programs.sort_by(|a, b| (a.group, &a.name).cmp(&(b.group, &b.name)));
        let mut by_name: Vec<usize> = (0..programs.len()).collect();
        by_name.sort_by(|&a, &b| {
            let name = |i: usize| programs.get(i).map(|p| p.name.as_str());
            name(a).cmp(&name(b))
        });
        Programs {
            programs,
            by_name,
            boot,
        }
    }

    /// Writes every process of `target` as its supervisord would report it at `now`.
    #[cfg(test)]
    pub fn write(&self, out: &mut ProcessWriter<'_>, target: u64, now: i64) {
        self.write_life(out, target, Life::default(), now);
    }

    /// The hash every value of `target` derives from, and when its supervisord started.
    fn identity(&self, target: u64, life: Life) -> (u64, i64) {
        let first = target_hash(target);
        match life.started {
            Some(started) if life.generation > 0 => (
                mix(first ^ life.generation.wrapping_mul(0x2545_F491_4F6C_DD1D)),
                started,
            ),
            _ => (first, self.boot - (first % (30 * DAY as u64)) as i64),
        }
    }

    /// [`Programs::write`] for one life of the target's supervisord.
    pub fn write_life(&self, out: &mut ProcessWriter<'_>, target: u64, life: Life, now: i64) {
        let (target_hash, booted) = self.identity(target, life);
        for program in &self.programs {
            let h = program_hash(target_hash, program);
            let info = state_of(program.kind, h, booted, now);
            let name = program.name.as_str();
            let stdout = Field::LogFile {
                name,
                stream: "stdout",
                suffix: log_suffix(h),
            };
            out.process(&[
                Field::Str(name),
                Field::Str(program.group),
                Field::Int(info.start),
                Field::Int(info.stop),
                Field::Int(now),
                Field::Int(info.state),
                Field::Str(info.statename),
                Field::Str(info.spawnerr),
                Field::Int(info.exitstatus),
                stdout,
                stdout,
                Field::LogFile {
                    name,
                    stream: "stderr",
                    suffix: log_suffix(h.rotate_left(17)),
                },
                Field::Int(info.pid),
                info.description,
            ]);
        }
    }

    /// Writes the configuration of every process of `target`, in name order, as its
    /// supervisord's `getAllConfigInfo` reports it (log file names as in [`Programs::write`]).
    #[cfg(test)]
    pub fn write_config(&self, out: &mut ConfigWriter<'_>, target: u64) {
        self.write_config_life(out, target, Life::default());
    }

    /// [`Programs::write_config`] for one life of the target's supervisord.
    pub fn write_config_life(&self, out: &mut ConfigWriter<'_>, target: u64, life: Life) {
        let (target_hash, _) = self.identity(target, life);
        for program in self.by_name.iter().filter_map(|&i| self.programs.get(i)) {
            let h = program_hash(target_hash, program);
            let name = program.name.as_str();
            let c = &program.config;
            out.config(&[
                Field::Bool(c.autostart),
                Field::Str(c.directory),
                Field::Str("none"),
                Field::Str(&c.command),
                Field::Ints(c.exitcodes),
                Field::Str(program.group),
                Field::Int(999),
                Field::Bool(true),
                Field::Bool(c.killasgroup),
                Field::Str(name),
                Field::Int(999),
                Field::Bool(false),
                Field::Int(3),
                Field::Int(c.startsecs),
                Field::Int(0),
                Field::Bool(false),
                Field::LogFile {
                    name,
                    stream: "stdout",
                    suffix: log_suffix(h),
                },
                Field::Int(10),
                Field::Int(52_428_800),
                Field::Bool(false),
                Field::Int(c.stopsignal),
                Field::Int(c.stopwaitsecs),
                Field::Int(0),
                Field::Bool(false),
                Field::LogFile {
                    name,
                    stream: "stderr",
                    suffix: log_suffix(h.rotate_left(17)),
                },
                Field::Int(10),
                Field::Int(52_428_800),
                Field::Bool(false),
                Field::Str("none"),
            ]);
        }
    }
}

fn target_hash(target: u64) -> u64 {
    mix(target.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn program_hash(target_hash: u64, program: &Program) -> u64 {
    mix(target_hash ^ program.salt.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

struct Info {
    start: i64,
    stop: i64,
    state: i64,
    statename: &'static str,
    spawnerr: &'static str,
    exitstatus: i64,
    pid: i64,
    description: Field<'static>,
}

impl Info {
    fn running(start: i64, stop: i64, pid: i64, now: i64) -> Info {
        Info {
            start,
            stop,
            state: 20,
            statename: "RUNNING",
            spawnerr: "",
            exitstatus: 0,
            pid,
            description: Field::Uptime {
                pid,
                seconds: now - start,
            },
        }
    }

    fn between(start: i64, stop: i64, pid: i64, state: i64, statename: &'static str) -> Info {
        Info {
            start,
            stop,
            state,
            statename,
            spawnerr: "",
            exitstatus: 0,
            pid,
            description: Field::Str(""),
        }
    }

    fn stopped(start: i64, stop: i64, state: i64, statename: &'static str, exit: i64) -> Info {
        Info {
            start,
            stop,
            state,
            statename,
            spawnerr: "",
            exitstatus: exit,
            pid: 0,
            description: Field::StopTime(stop),
        }
    }

    fn failed(start: i64, stop: i64, state: i64, statename: &'static str) -> Info {
        Info {
            start,
            stop,
            state,
            statename,
            spawnerr: SPAWN_ERROR,
            exitstatus: 0,
            pid: 0,
            description: Field::Str(SPAWN_ERROR),
        }
    }
}

/// Where `now` falls in a cycle of `period` seconds whose phase comes from `h`: (cycle number,
/// cycle start, seconds into the cycle).
fn cycle(h: u64, period: i64, now: i64) -> (i64, i64, i64) {
    let phase = ((h >> 20) % period as u64) as i64;
    let shifted = now + phase;
    let position = shifted.rem_euclid(period);
    (shifted.div_euclid(period), now - position, position)
}

fn state_of(kind: Kind, h: u64, booted: i64, now: i64) -> Info {
    match kind {
        Kind::Steady => {
            let start = booted + 2 + (h % 5) as i64;
            Info::running(start, 0, pid(h, 0), now)
        }
        Kind::Fatal => Info::failed(booted + 3, booted + 3, 200, "FATAL"),
        Kind::NeverStarted => Info {
            description: Field::Str("Not started"),
            ..Info::between(0, 0, 0, 0, "STOPPED")
        },
        Kind::CrashLoop => {
            let period = 60 + (h % 121) as i64;
            let (k, started, at) = cycle(h, period, now);
            let runs = period * 6 / 10;
            let exited = started + runs;
            let previous_exit = started - period + runs;
            if at < 1 {
                Info::between(started, previous_exit, pid(h, k), 10, "STARTING")
            } else if at < runs {
                Info::running(started, previous_exit, pid(h, k), now)
            } else if at < period * 8 / 10 {
                Info::stopped(started, exited, 100, "EXITED", 1 + k.rem_euclid(3))
            } else {
                Info::failed(started + period * 8 / 10, exited, 30, "BACKOFF")
            }
        }
        Kind::Redeploy => {
            let period = 300 + (h % 601) as i64;
            let (k, started, at) = cycle(h, period, now);
            let previous_start = started - period + 3;
            if at < 1 {
                Info::between(
                    previous_start,
                    started - period + 1,
                    pid(h, k - 1),
                    40,
                    "STOPPING",
                )
            } else if at < 3 {
                Info::stopped(previous_start, started + 1, 0, "STOPPED", 0)
            } else if at < 4 {
                Info::between(started + 3, started + 1, pid(h, k), 10, "STARTING")
            } else {
                Info::running(started + 3, started + 1, pid(h, k), now)
            }
        }
    }
}

/// A plausible pid (Linux's default pid_max is 4,194,304).
fn pid(h: u64, generation: i64) -> i64 {
    300 + (mix(h ^ (generation as u64).wrapping_mul(0xA076_1D64_78BD_642F)) % 4_000_000) as i64
}

/// The 8 random characters supervisord's AUTO log files carry (Python's tempfile alphabet).
fn log_suffix(h: u64) -> [u8; 8] {
    const ALPHABET: &[u8; 37] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    let mut suffix = [b'_'; 8];
    let mut bits = mix(h ^ 0x5851_F42D_4C95_7F2D);
    for c in suffix.iter_mut() {
        *c = ALPHABET
            .get((bits % ALPHABET.len() as u64) as usize)
            .copied()
            .unwrap_or(b'_');
        bits /= ALPHABET.len() as u64;
    }
    suffix
}

/// splitmix64's finaliser: a cheap, well-mixed hash of a number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use supervisord_receiver::supervisor::config_info::decode_config_info_reply;
    use supervisord_receiver::supervisor::xmlrpc::{decode_response, Value};

    use super::*;
    use crate::reply::{Call, Replies, CONFIG_KEYS, RUNNING};

    fn render_calls(
        replies: &Replies,
        programs: &Programs,
        calls: &[Call],
        target: u64,
        now: i64,
    ) -> String {
        let mut out = Vec::new();
        replies.render(
            &mut out,
            calls.len() > 1,
            calls,
            RUNNING,
            |w| programs.write(w, target, now),
            |w| programs.write_config(w, target),
        );
        String::from_utf8(out).unwrap()
    }

    fn render(replies: &Replies, programs: &Programs, target: u64, now: i64) -> String {
        let mut out = Vec::new();
        replies.render(
            &mut out,
            true,
            &[Call::GetAllProcessInfo],
            RUNNING,
            |w| programs.write(w, target, now),
            |_| unreachable!("no getAllConfigInfo asked"),
        );
        String::from_utf8(out).unwrap()
    }

    fn decoded(text: &str) -> Value {
        decode_response(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn config_info_lists_every_process_with_its_autostart() {
        let replies = Replies::new().unwrap();
        let boot = 1_795_000_000;
        let programs = Programs::new(20, boot);
        let text = render_calls(&replies, &programs, &[Call::GetAllConfigInfo], 7, boot);
        // About 2.5 KB per process, as supervisord's own reply.
        let per_process = text.len() / 20;
        assert!((2_000..3_000).contains(&per_process), "{per_process} bytes");

        // The receiver's own decoder: every process, in name order, with its autostart.
        let info = decode_config_info_reply(text.as_bytes()).unwrap();
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        let mut expected: Vec<(String, &str, bool)> = programs
            .programs
            .iter()
            .map(|p| (p.name.clone(), p.group, p.kind != Kind::NeverStarted))
            .collect();
        expected.sort();
        let got: Vec<(String, &str, bool)> = info
            .processes
            .iter()
            .map(|c| (c.name.clone(), c.group.as_str(), c.autostart))
            .collect();
        assert_eq!(got, expected);
        let off: Vec<&str> = info
            .processes
            .iter()
            .filter(|c| !c.autostart)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(off, ["cron_09", "cron_19"]);

        // Every member supervisord 4.3.0 writes, in its order; values as written.
        let value = decoded(&text);
        let entries = value.as_array().unwrap();
        assert_eq!(entries.len(), 20);
        for entry in entries {
            let keys: Vec<&str> = entry
                .as_struct()
                .unwrap()
                .iter()
                .map(|(k, _)| k.as_str())
                .collect();
            assert_eq!(keys, CONFIG_KEYS);
        }
        let entry = |name: &str| {
            entries
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
                .unwrap()
        };
        assert_eq!(
            entry("cron_04").get("command").and_then(Value::as_str),
            Some("/bin/sh -c 'sleep 30 && exec /srv/app/bin/cron_04 --loop'")
        );
        assert_eq!(
            entry("celery_02").get("exitcodes"),
            Some(&Value::Array(vec![Value::Int(0), Value::Int(2)]))
        );
        assert_eq!(
            entry("web_00").get("exitcodes"),
            Some(&Value::Array(vec![Value::Int(0)]))
        );
        assert_eq!(
            entry("web_00").get("command").and_then(Value::as_str),
            Some(
                "/srv/app/venv/bin/gunicorn app.wsgi:application --bind 127.0.0.1:8000 --workers 4"
            )
        );

        // The log files are those getAllProcessInfo reports, target by target.
        let processes = decoded(&render(&replies, &programs, 7, boot));
        let processes = processes
            .as_array()
            .and_then(|calls| calls.first())
            .and_then(|first| first.as_array())
            .unwrap();
        assert_eq!(processes.len(), 20);
        for process in processes {
            let config = entry(process.get("name").and_then(Value::as_str).unwrap());
            for key in ["group", "stdout_logfile", "stderr_logfile"] {
                assert_eq!(process.get(key), config.get(key), "{key}");
            }
        }
        assert_ne!(
            text,
            render_calls(&replies, &programs, &[Call::GetAllConfigInfo], 8, boot)
        );

        // In a multicall too, beside the other calls.
        let both = decoded(&render_calls(
            &replies,
            &programs,
            &[Call::GetAllProcessInfo, Call::GetAllConfigInfo],
            7,
            boot,
        ));
        let both = both.as_array().unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both.get(1), Some(&value));
    }

    #[test]
    fn states_move_with_the_clock() {
        let replies = Replies::new().unwrap();
        let boot = 1_795_000_000;
        let programs = Programs::new(20, boot);
        let mut seen = BTreeSet::new();
        for now in boot..boot + 1800 {
            let text = render(&replies, &programs, 7, now);
            for state in [
                "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL",
            ] {
                if text.contains(&format!("<value><string>{state}</string>")) {
                    seen.insert(state);
                }
            }
        }
        assert_eq!(seen.len(), 7, "{seen:?}");
        // The same target renders the same at the same time; other targets differ.
        assert_eq!(
            render(&replies, &programs, 7, boot),
            render(&replies, &programs, 7, boot)
        );
        assert_ne!(
            render(&replies, &programs, 7, boot),
            render(&replies, &programs, 8, boot)
        );
        assert_eq!(
            render(&replies, &programs, 7, boot)
                .matches("<struct>")
                .count(),
            20
        );
    }
    #[test]
    fn a_restart_brings_new_start_times_and_pids() {
        let replies = Replies::new().unwrap();
        let boot = 1_795_000_000;
        let programs = Programs::new(20, boot);
        let now = boot + 600;
        let restart = now - 10;
        let processes = |life: Life| -> Vec<(String, i64, i64)> {
            let mut out = Vec::new();
            replies.render(
                &mut out,
                false,
                &[Call::GetAllProcessInfo],
                RUNNING,
                |w| programs.write_life(w, 7, life, now),
                |_| unreachable!("no getAllConfigInfo asked"),
            );
            let value = decoded(&String::from_utf8(out).unwrap());
            let field = |p: &Value, key: &str| p.get(key).and_then(Value::as_i64).unwrap();
            value
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let name = p.get("name").and_then(Value::as_str).unwrap().to_string();
                    (name, field(p, "start"), field(p, "pid"))
                })
                .collect()
        };
        let before = processes(Life::default());
        let after = processes(Life {
            generation: 1,
            started: Some(restart),
        });
        assert_eq!(before.len(), 20);
        assert_eq!(after.len(), 20);
        let mut steady = 0;
        for ((name, old_start, old_pid), (_, new_start, new_pid)) in before.iter().zip(&after) {
            // Programs whose index ends in 0, 1, 3, 4, 6 or 8 run steadily since boot.
            let index: usize = name.rsplit('_').next().unwrap().parse().unwrap();
            if [0, 1, 3, 4, 6, 8].contains(&(index % 10)) {
                steady += 1;
                assert!(*old_start < boot, "{name}: {old_start}");
                assert!(
                    (restart..=restart + 6).contains(new_start),
                    "{name}: {new_start}"
                );
            }
            if *new_pid != 0 {
                assert_ne!(old_pid, new_pid, "{name}");
            }
        }
        assert_eq!(steady, 12);
        // Generation 0 is the fleet's first life, whatever `started` says.
        assert_eq!(
            processes(Life {
                generation: 0,
                started: Some(restart)
            }),
            before
        );
    }
}
