//! From XML-RPC values to the typed model.
//!
//! Lenient by design: one malformed process entry or field never hides the rest of the reply.
//! Defaults fill the gaps and each gap becomes a short problem string for the log.
//!
//! Process entries come from either decoder: from a [`Value`] tree (the general path), or
//! straight from the reply's bytes through the fast reader (`fast_processes`), which spares
//! the tree and a string per member name. Both feed the same entry builder, so the fast path
//! cannot word a problem differently.

use std::borrow::Cow;

use crate::supervisor::model::{ProcessInfo, ProcessState, SupervisorState};
use crate::supervisor::xmlrpc::fast::{Item, Reader, Scalar};
use crate::supervisor::xmlrpc::{printable, Value};

/// Problem strings kept per reply; past that only a count, so a server that omits a field for
/// a thousand processes produces a readable log line, not a thousand.
pub const MAX_PROBLEMS: usize = 10;

/// Entries past this many are ignored, with one problem line saying how many. No practical
/// supervisord runs this many processes; the cap is what keeps a hostile reply within the
/// memory of a legitimate one. Each process becomes about fifteen metric points: a 16 MiB reply
/// of minimal entries (some 200,000) took 1.7 GB once turned into OTLP; capped, it takes about
/// 100 MB, as a real 16 MiB reply does (measured, release build).
pub const MAX_PROCESSES: usize = 10_000;

/// An entry whose process or group name is longer than this (in bytes) is skipped: each name
/// is repeated on every point of its process, so long names multiply memory (at this cap, a
/// 16 MiB reply of long-named entries peaks at about 170 MB). supervisord's names are program
/// names, far shorter.
pub const MAX_NAME_BYTES: usize = 128;

/// How much of a process or state name a problem string quotes: the names come from the
/// server and go into log lines.
const NAME_LIMIT: usize = 100;

/// A reply whose shape leaves nothing to salvage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("getAllProcessInfo returned {found}, not an array")]
    NotAnArray { found: &'static str },
}

/// The fields of a `getProcessInfo` struct that we read; others (`directory`, `environment`,
/// `enabled` in some versions) are ignored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Group,
    Description,
    Start,
    Stop,
    Now,
    State,
    Statename,
    Spawnerr,
    Exitstatus,
    Logfile,
    StdoutLogfile,
    StderrLogfile,
    Pid,
}

const FIELD_COUNT: usize = 14;

/// The members of a `getProcessInfo` struct, in the order supervisord 4.3.0 writes them: for
/// tests and tools that build replies.
pub const PROCESS_INFO_FIELDS: [&str; FIELD_COUNT] = [
    "name",
    "group",
    "start",
    "stop",
    "now",
    "state",
    "statename",
    "spawnerr",
    "exitstatus",
    "logfile",
    "stdout_logfile",
    "stderr_logfile",
    "pid",
    "description",
];

impl Field {
    fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "name" => Field::Name,
            "group" => Field::Group,
            "description" => Field::Description,
            "start" => Field::Start,
            "stop" => Field::Stop,
            "now" => Field::Now,
            "state" => Field::State,
            "statename" => Field::Statename,
            "spawnerr" => Field::Spawnerr,
            "exitstatus" => Field::Exitstatus,
            "logfile" => Field::Logfile,
            "stdout_logfile" => Field::StdoutLogfile,
            "stderr_logfile" => Field::StderrLogfile,
            "pid" => Field::Pid,
            _ => return None,
        })
    }

    fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Group => "group",
            Field::Description => "description",
            Field::Start => "start",
            Field::Stop => "stop",
            Field::Now => "now",
            Field::State => "state",
            Field::Statename => "statename",
            Field::Spawnerr => "spawnerr",
            Field::Exitstatus => "exitstatus",
            Field::Logfile => "logfile",
            Field::StdoutLogfile => "stdout_logfile",
            Field::StderrLogfile => "stderr_logfile",
            Field::Pid => "pid",
        }
    }
}

/// Problem strings, capped at [`MAX_PROBLEMS`] plus one summary line.
#[derive(Default)]
struct Problems {
    listed: Vec<String>,
    unlisted: usize,
}

impl Problems {
    fn push(&mut self, problem: impl FnOnce() -> String) {
        if self.listed.len() < MAX_PROBLEMS {
            self.listed.push(problem());
        } else {
            self.unlisted += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.unlisted > 0 {
            let s = if self.unlisted == 1 { "" } else { "s" };
            self.listed
                .push(format!("{} more problem{s} not listed", self.unlisted));
        }
        self.listed
    }
}

/// The processes of a `getAllProcessInfo` reply, in supervisord's order, and the problems met.
pub fn processes(value: &Value) -> Result<(Vec<ProcessInfo>, Vec<String>), ModelError> {
    let entries = value.as_array().ok_or(ModelError::NotAnArray {
        found: value.kind(),
    })?;
    let mut processes = Vec::with_capacity(entries.len().min(MAX_PROCESSES));
    let mut problems = Problems::default();
    for (index, entry) in entries.iter().enumerate().take(MAX_PROCESSES) {
        let Some(members) = entry.as_struct() else {
            problems.push(|| {
                format!(
                    "process #{}: {} instead of a struct, skipped",
                    index + 1,
                    entry.kind()
                )
            });
            continue;
        };
        // One pass over the members; a repeated key keeps its last value, like `Value::get`.
        let mut fields = Fields::default();
        for (key, value) in members {
            if let Some(field) = Field::from_key(key) {
                fields[field as usize] = Some(Got::from_value(value));
            }
        }
        if let Some(info) = process(index, fields, &mut problems) {
            processes.push(info);
        }
    }
    let mut problems = problems.finish();
    if let Some(ignored) = entries.len().checked_sub(MAX_PROCESSES).filter(|n| *n > 0) {
        problems.push(format!(
            "{ignored} processes past the first {MAX_PROCESSES} ignored"
        ));
    }
    Ok((processes, problems))
}

/// The same as [`processes`] on the value the general decoder would make of the array whose
/// `<array><data>` `reader` has just read, without making that value: what a poll runs.
///
/// `None` ("not mine") when the reader gives up, or for what is cheaper left to the general
/// path than repeated here: an entry that is not a struct of scalars, more than
/// [`MAX_PROCESSES`] entries. With `unwrap`, an array holding exactly one array is read as
/// that array, as [`unwrap_multicall`](crate::supervisor::xmlrpc::unwrap_multicall) does with
/// a `getAllProcessInfo` result in a multicall.
pub(crate) fn fast_processes(
    reader: &mut Reader<'_>,
    unwrap: bool,
) -> Option<(Vec<ProcessInfo>, Vec<String>)> {
    let mut processes = Vec::new();
    let mut problems = Problems::default();
    let mut next = reader.array_item()?;
    let wrapped = unwrap && next == Some(Item::Array);
    if wrapped {
        next = reader.array_item()?;
    }
    let mut index = 0;
    while let Some(item) = next {
        if item != Item::Struct || index == MAX_PROCESSES {
            return None;
        }
        let mut fields = Fields::default();
        while let Some((key, value)) = reader.member()? {
            let Item::Scalar(scalar) = value else {
                return None;
            };
            reader.member_end()?;
            if let Some(field) = Field::from_key(&key) {
                fields[field as usize] = Some(Got::from_scalar(scalar));
            }
        }
        if let Some(info) = process(index, fields, &mut problems) {
            processes.push(info);
        }
        index += 1;
        next = reader.array_item()?;
    }
    // The wrapper holds the process array and nothing else.
    if wrapped && reader.array_item()?.is_some() {
        return None;
    }
    Some((processes, problems.finish()))
}

/// A field's value as either decoder read it. Both build entries with [`process`] from these,
/// so both report the same processes with the same problems.
enum Got<'v> {
    Int(i64),
    Str(Cow<'v, str>),
    /// Any other type, by its name in messages ("a boolean").
    Other(&'static str),
}

impl<'v> Got<'v> {
    fn from_value(value: &'v Value) -> Self {
        match value {
            Value::Int(i) => Got::Int(*i),
            Value::String(s) => Got::Str(Cow::Borrowed(s)),
            other => Got::Other(other.kind()),
        }
    }

    fn from_scalar(scalar: Scalar<'v>) -> Self {
        match scalar {
            Scalar::Int(i) => Got::Int(i),
            Scalar::Str(s) => Got::Str(s),
            Scalar::Bool(b) => Got::Other(Value::Bool(b).kind()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Got::Int(_) => "an int",
            Got::Str(_) => "a string",
            Got::Other(kind) => kind,
        }
    }
}

/// The fields of one entry, by [`Field`].
type Fields<'v> = [Option<Got<'v>>; FIELD_COUNT];

/// One struct entry; `None` (skipped) when it has no string `name`.
fn process(index: usize, mut fields: Fields<'_>, problems: &mut Problems) -> Option<ProcessInfo> {
    // Entries are numbered from 1 in messages, as a person counts them.
    let number = index + 1;
    let name = match fields[Field::Name as usize].take() {
        Some(Got::Str(name)) => name.into_owned(),
        Some(other) => {
            problems.push(|| {
                format!(
                    "process #{number}: field 'name' is {}, not a string, skipped",
                    other.kind()
                )
            });
            return None;
        }
        None => {
            problems.push(|| format!("process #{number}: field 'name' is missing, skipped"));
            return None;
        }
    };
    if name.len() > MAX_NAME_BYTES {
        problems.push(|| {
            format!(
                "process #{number}: name '{}' longer than {MAX_NAME_BYTES} bytes, skipped",
                printable(&name, NAME_LIMIT)
            )
        });
        return None;
    }
    let mut reader = EntryReader {
        name: &name,
        fields,
        problems,
    };
    let group = reader.string(Field::Group).unwrap_or_else(|| name.clone());
    if group.len() > MAX_NAME_BYTES {
        reader.problems.push(|| {
            format!(
                "process '{}': group name longer than {MAX_NAME_BYTES} bytes, skipped",
                printable(&name, NAME_LIMIT)
            )
        });
        return None;
    }
    let statename = reader.string(Field::Statename);
    let code = reader.int(Field::State);
    let state = ProcessState::resolve(statename.as_deref(), code);
    if state == ProcessState::Unknown && statename.as_deref() != Some(ProcessState::Unknown.name())
    {
        let shown = printable(statename.as_deref().unwrap_or(""), NAME_LIMIT);
        let name = printable(&name, NAME_LIMIT);
        reader.problems.push(|| match code {
            Some(code) => format!("process '{name}': unknown state '{shown}' (code {code})"),
            None => format!("process '{name}': unknown state '{shown}'"),
        });
    }
    let info = ProcessInfo {
        group,
        description: reader.string(Field::Description).unwrap_or_default(),
        state,
        // Kept even when missing, for display: the resolved name stands in.
        statename: statename.unwrap_or_else(|| state.name().to_owned()),
        start: reader.int(Field::Start).unwrap_or_default(),
        stop: reader.int(Field::Stop).unwrap_or_default(),
        now: reader.int(Field::Now).unwrap_or_default(),
        exitstatus: reader.int(Field::Exitstatus).unwrap_or_default(),
        pid: reader.int(Field::Pid).unwrap_or_default(),
        spawnerr: reader.string(Field::Spawnerr).unwrap_or_default(),
        logfile: reader.string(Field::Logfile).unwrap_or_default(),
        stdout_logfile: reader.string(Field::StdoutLogfile).unwrap_or_default(),
        stderr_logfile: reader.string(Field::StderrLogfile).unwrap_or_default(),
        name: String::new(),
    };
    Some(ProcessInfo { name, ..info })
}

/// Takes typed fields out of one named entry, noting each missing or mistyped one.
struct EntryReader<'a, 'v> {
    name: &'a str,
    fields: Fields<'v>,
    problems: &'a mut Problems,
}

impl EntryReader<'_, '_> {
    fn int(&mut self, field: Field) -> Option<i64> {
        self.typed(field, "an int", |got| match got {
            Got::Int(i) => Some(i),
            _ => None,
        })
    }

    fn string(&mut self, field: Field) -> Option<String> {
        self.typed(field, "a string", |got| match got {
            Got::Str(s) => Some(s.into_owned()),
            _ => None,
        })
    }

    fn typed<T>(
        &mut self,
        field: Field,
        expected: &str,
        convert: impl FnOnce(Got<'_>) -> Option<T>,
    ) -> Option<T> {
        let raw_name = self.name;
        let name = || printable(raw_name, NAME_LIMIT);
        match self.fields[field as usize].take() {
            Some(got) => {
                let converted = convert(got);
                if converted.is_none() {
                    self.problems.push(|| {
                        format!(
                            "process '{}': field '{}' is not {expected}",
                            name(),
                            field.key()
                        )
                    });
                }
                converted
            }
            None => {
                self.problems
                    .push(|| format!("process '{}': field '{}' is missing", name(), field.key()));
                None
            }
        }
    }
}

/// `getState`'s `{statecode, statename}`; `None` when neither is a known state.
pub fn supervisor_state(value: &Value) -> Option<SupervisorState> {
    SupervisorState::resolve(
        value.get("statename").and_then(Value::as_str),
        value.get("statecode").and_then(Value::as_i64),
    )
}

/// A string reply (`getIdentification`, `getSupervisorVersion`).
pub fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_list_names_every_field_once() {
        let mut fields: Vec<Field> = PROCESS_INFO_FIELDS
            .iter()
            .map(|key| Field::from_key(key).expect("a known field"))
            .collect();
        assert!(fields
            .iter()
            .zip(PROCESS_INFO_FIELDS)
            .all(|(f, k)| f.key() == k));
        fields.sort_by_key(|f| *f as usize);
        fields.dedup();
        assert_eq!(fields.len(), FIELD_COUNT);
    }
    use crate::supervisor::xmlrpc::decode_response;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/xmlrpc/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).unwrap();
        decode_response(&body).unwrap().unwrap()
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn entry(members: &[(&str, Value)]) -> Value {
        Value::Struct(
            members
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    fn full_entry(name: &str) -> Vec<(&'static str, Value)> {
        vec![
            ("name", s(name)),
            ("group", s("g")),
            ("start", Value::Int(10)),
            ("stop", Value::Int(0)),
            ("now", Value::Int(25)),
            ("state", Value::Int(20)),
            ("statename", s("RUNNING")),
            ("spawnerr", s("")),
            ("exitstatus", Value::Int(0)),
            ("logfile", s("/l")),
            ("stdout_logfile", s("/l")),
            ("stderr_logfile", s("/e")),
            ("pid", Value::Int(42)),
            ("description", s("pid 42")),
        ]
    }

    #[test]
    fn datadog_server1_fixture() {
        let (procs, problems) = processes(&fixture("datadog_server1.xml")).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let mysql = ProcessInfo {
            name: "mysql".into(),
            group: "mysql".into(),
            description: "pid 787, uptime 0:02:05".into(),
            state: ProcessState::Running,
            statename: "RUNNING".into(),
            start: 1414815388,
            stop: 0,
            now: 1414815513,
            exitstatus: 0,
            pid: 787,
            spawnerr: String::new(),
            logfile: "/var/log/mysql/mysql.log".into(),
            stdout_logfile: "/var/log/mysql/mysql.log".into(),
            stderr_logfile: "/var/log/supervisor/mysql-stderr---supervisor-3ATI82.log".into(),
        };
        assert_eq!(procs.first(), Some(&mysql));
        let summary: Vec<(&str, ProcessState, i64, i64)> = procs
            .iter()
            .map(|p| (p.name.as_str(), p.state, p.exitstatus, p.uptime()))
            .collect();
        assert_eq!(
            summary,
            [
                ("mysql", ProcessState::Running, 0, 125),
                ("java", ProcessState::Stopped, 21, 0),
                ("python", ProcessState::Starting, 0, 0),
            ]
        );
        let java = procs.get(1).unwrap();
        assert_eq!(java.description, "Nov 01 04:22 AM");
        assert_eq!(java.stop, 1414815722);
        assert_eq!(java.now, 1414815738);
        let python = procs.get(2).unwrap();
        assert_eq!(python.pid, 2765);
        assert_eq!(python.description, "");
    }

    #[test]
    fn datadog_server0_and_ruby_fixtures() {
        let (procs, problems) = processes(&fixture("datadog_server0_auth.xml")).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let summary: Vec<(&str, ProcessState, i64)> = procs
            .iter()
            .map(|p| (p.name.as_str(), p.state, p.uptime()))
            .collect();
        assert_eq!(
            summary,
            [
                ("apache2", ProcessState::Fatal, 0),
                ("webapp", ProcessState::Stopping, 2)
            ]
        );
        assert_eq!(
            procs.first().map(|p| p.spawnerr.as_str()),
            Some("Exited too quickly (process log may have details)")
        );
        let (procs, problems) = processes(&fixture("datadog_ruby.xml")).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(procs.len(), 1);
        let ruby = procs.first().unwrap();
        assert_eq!((ruby.state, ruby.uptime()), (ProcessState::Backoff, 0));
        assert_eq!(ruby.stdout_logfile, "/var/log/ruby/ruby.log");
    }

    #[test]
    fn not_an_array_is_an_error() {
        let err = processes(&Value::Struct(vec![])).unwrap_err();
        assert_eq!(err, ModelError::NotAnArray { found: "a struct" });
        assert_eq!(
            err.to_string(),
            "getAllProcessInfo returned a struct, not an array"
        );
    }

    #[test]
    fn bad_entries_are_skipped_and_good_ones_kept() {
        let value = Value::Array(vec![
            s("oops"),
            entry(&[("group", s("g"))]),
            entry(&[("name", Value::Int(3))]),
            entry(&full_entry("web")),
        ]);
        let (procs, problems) = processes(&value).unwrap();
        assert_eq!(procs.len(), 1);
        assert_eq!(procs.first().map(|p| p.name.as_str()), Some("web"));
        assert_eq!(
            problems,
            [
                "process #1: a string instead of a struct, skipped",
                "process #2: field 'name' is missing, skipped",
                "process #3: field 'name' is an int, not a string, skipped",
            ]
        );
    }

    #[test]
    fn missing_and_mistyped_fields_get_defaults() {
        let mut members = full_entry("web");
        members.retain(|(k, _)| !matches!(*k, "group" | "pid" | "statename"));
        for (k, v) in members.iter_mut() {
            if *k == "start" {
                *v = s("10");
            }
            if *k == "description" {
                *v = Value::Int(1);
            }
        }
        let (procs, problems) = processes(&Value::Array(vec![entry(&members)])).unwrap();
        let web = procs.first().unwrap();
        assert_eq!(web.group, "web");
        assert_eq!(web.start, 0);
        assert_eq!(web.pid, 0);
        assert_eq!(web.description, "");
        // The code still gives the state; the name stands in for the missing statename.
        assert_eq!(web.state, ProcessState::Running);
        assert_eq!(web.statename, "RUNNING");
        assert_eq!(
            problems,
            [
                "process 'web': field 'group' is missing",
                "process 'web': field 'statename' is missing",
                "process 'web': field 'description' is not a string",
                "process 'web': field 'start' is not an int",
                "process 'web': field 'pid' is missing",
            ]
        );
    }

    #[test]
    fn unknown_state_is_reported() {
        let mut members = full_entry("web");
        for (k, v) in members.iter_mut() {
            match *k {
                "statename" => *v = s("NEW"),
                "state" => *v = Value::Int(7),
                _ => {}
            }
        }
        let (procs, problems) = processes(&Value::Array(vec![entry(&members)])).unwrap();
        let web = procs.first().unwrap();
        assert_eq!(web.state, ProcessState::Unknown);
        assert_eq!(web.statename, "NEW");
        assert_eq!(problems, ["process 'web': unknown state 'NEW' (code 7)"]);

        // A genuine UNKNOWN from supervisord is not a problem.
        for (k, v) in members.iter_mut() {
            match *k {
                "statename" => *v = s("UNKNOWN"),
                "state" => *v = Value::Int(1000),
                _ => {}
            }
        }
        let (_, problems) = processes(&Value::Array(vec![entry(&members)])).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn problems_are_capped() {
        let entries = (0..30).map(|_| s("x")).collect();
        let (procs, problems) = processes(&Value::Array(entries)).unwrap();
        assert!(procs.is_empty());
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(problems.last().unwrap(), "20 more problems not listed");
    }

    #[test]
    fn state_identification_and_version() {
        let state = entry(&[("statecode", Value::Int(1)), ("statename", s("RUNNING"))]);
        assert_eq!(supervisor_state(&state), Some(SupervisorState::Running));
        let by_code = entry(&[("statecode", Value::Int(-1))]);
        assert_eq!(supervisor_state(&by_code), Some(SupervisorState::Shutdown));
        assert_eq!(supervisor_state(&s("RUNNING")), None);
        assert_eq!(string(&s("supervisor")), Some("supervisor".into()));
        assert_eq!(string(&Value::Int(4)), None);
    }

    #[test]
    fn multicall_fixture_has_every_answer() {
        use crate::supervisor::xmlrpc::{split_multicall, unwrap_multicall};
        let results = split_multicall(fixture("multicall_ok.xml")).unwrap();
        let [Ok(procs), Ok(state), Ok(ident), Ok(version)] = results.as_slice() else {
            panic!("unexpected multicall results {results:?}");
        };
        let procs = &unwrap_multicall(procs.clone(), true);
        let state = &unwrap_multicall(state.clone(), false);
        let ident = &unwrap_multicall(ident.clone(), false);
        let version = &unwrap_multicall(version.clone(), false);
        assert_eq!(processes(procs).unwrap().0.len(), 3);
        assert_eq!(supervisor_state(state), Some(SupervisorState::Running));
        assert_eq!(string(ident).as_deref(), Some("supervisor"));
        assert_eq!(string(version).as_deref(), Some("4.2.5"));
    }

    /// Recorded from a real supervisord 4.3.0: its multicall results are bare, not wrapped.
    #[test]
    fn recorded_supervisord_multicall_decodes() {
        use crate::supervisor::xmlrpc::{split_multicall, unwrap_multicall};
        let results = split_multicall(fixture("multicall_recorded_supervisord_4.3.0.xml")).unwrap();
        let [Ok(procs), Ok(state), Ok(ident), Ok(version)] = results.as_slice() else {
            panic!("unexpected multicall results {results:?}");
        };
        let (procs, problems) = processes(&unwrap_multicall(procs.clone(), true)).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let names: Vec<_> = procs.iter().map(|p| (p.name.as_str(), p.state)).collect();
        assert_eq!(
            names,
            [
                ("bad", ProcessState::Fatal),
                ("off", ProcessState::Stopped),
                ("web", ProcessState::Running)
            ]
        );
        let state = unwrap_multicall(state.clone(), false);
        assert_eq!(supervisor_state(&state), Some(SupervisorState::Running));
        assert_eq!(
            string(&unwrap_multicall(ident.clone(), false)).as_deref(),
            Some("supervisor")
        );
        assert_eq!(
            string(&unwrap_multicall(version.clone(), false)).as_deref(),
            Some("4.3.0")
        );
    }

    #[test]
    fn hostile_names_in_problems_are_cut_and_escaped() {
        let name = format!("evil\nERROR forged{}", "n".repeat(100));
        let state = format!("BAD\r{}", "s".repeat(10_000));
        let value = Value::Array(vec![entry(&[
            ("name", s(&name)),
            ("statename", s(&state)),
            ("state", Value::Int(20)),
        ])]);
        let (procs, problems) = processes(&value).unwrap();
        assert_eq!(procs.len(), 1);
        assert_eq!(procs[0].name, name, "the name itself is kept as sent");
        assert!(!problems.is_empty());
        for problem in &problems {
            assert!(
                !problem.contains('\n') && !problem.contains('\r'),
                "{problem}"
            );
            assert!(problem.len() < 300, "{problem}");
        }
        assert!(
            problems[0].starts_with("process 'evil\\nERROR forgednnn"),
            "{problems:?}"
        );
    }

    #[test]
    fn overlong_names_skip_the_entry() {
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        let at_limit = "k".repeat(MAX_NAME_BYTES);
        let mut grouped = full_entry("short");
        grouped.retain(|(k, _)| *k != "group");
        grouped.push(("group", s(&long)));
        let value = Value::Array(vec![
            entry(&full_entry(&long)),
            entry(&grouped),
            entry(&full_entry(&at_limit)),
        ]);
        let (procs, problems) = processes(&value).unwrap();
        let names: Vec<&str> = procs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [at_limit.as_str()]);
        assert_eq!(
            problems,
            [
                format!(
                    "process #1: name '{}...' longer than {MAX_NAME_BYTES} bytes, skipped",
                    "n".repeat(NAME_LIMIT)
                ),
                format!("process 'short': group name longer than {MAX_NAME_BYTES} bytes, skipped"),
            ]
        );
    }

    #[test]
    fn entries_past_the_process_cap_are_ignored() {
        let one = entry(&[("name", s("p"))]);
        let value = Value::Array(vec![one; MAX_PROCESSES + 5]);
        let (procs, problems) = processes(&value).unwrap();
        assert_eq!(procs.len(), MAX_PROCESSES);
        assert_eq!(
            problems.last().map(String::as_str),
            Some("5 processes past the first 10000 ignored")
        );
    }

    #[test]
    fn a_thousand_processes() {
        let template = std::fs::read_to_string(format!(
            "{}/tests/fixtures/xmlrpc/datadog_ruby.xml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let entry = template
            .split_once("<value><array><data>\n")
            .and_then(|(_, rest)| rest.split_once("</data></array></value>"))
            .map(|(entry, _)| entry)
            .unwrap();
        let mut body = String::from(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n",
        );
        for i in 0..1000 {
            body.push_str(&entry.replace(
                "<string>ruby</string>",
                &format!("<string>ruby{i}</string>"),
            ));
        }
        body.push_str("</data></array></value>\n</param>\n</params>\n</methodResponse>\n");
        let value = decode_response(body.as_bytes()).unwrap().unwrap();
        let (procs, problems) = processes(&value).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(procs.len(), 1000);
        assert_eq!(procs.last().map(|p| p.name.as_str()), Some("ruby999"));
        assert_eq!(procs.last().map(|p| p.group.as_str()), Some("ruby999"));
    }

    #[test]
    fn fault_fixtures() {
        for (name, code, message) in [
            ("fault_bad_name.xml", 10, "BAD_NAME"),
            ("fault_unknown_method.xml", 1, "UNKNOWN_METHOD"),
        ] {
            let path = format!(
                "{}/tests/fixtures/xmlrpc/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let fault = decode_response(&std::fs::read(path).unwrap())
                .unwrap()
                .unwrap_err();
            assert_eq!((fault.code, fault.message.as_str()), (code, message));
        }
    }
}
