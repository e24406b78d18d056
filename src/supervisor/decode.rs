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

use crate::supervisor::xmlrpc::fast::{Item, Reader, Scalar};
use crate::supervisor::xmlrpc::{printable, Value};
use crate::vocab::{ProcessInfo, ProcessState, SupervisorState};

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

/// Problem strings, capped at [`MAX_PROBLEMS`] plus one summary line (the process info's and
/// the configuration's, [`super::config_info`]).
#[derive(Default)]
pub(crate) struct Problems {
    listed: Vec<String>,
    unlisted: usize,
}

impl Problems {
    /// `problem` makes the string only while the list has room.
    pub(crate) fn push(&mut self, problem: impl FnOnce() -> String) {
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

    /// [`Problems::finish`], and a line for what an array of `entries` holds past the first
    /// [`MAX_PROCESSES`], which is not read (`what`: "processes", "entries").
    pub(crate) fn finish_entries(self, entries: usize, what: &str) -> Vec<String> {
        let mut problems = self.finish();
        if let Some(ignored) = entries.checked_sub(MAX_PROCESSES).filter(|n| *n > 0) {
            problems.push(format!(
                "{ignored} {what} past the first {MAX_PROCESSES} ignored"
            ));
        }
        problems
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
    Ok((
        processes,
        problems.finish_entries(entries.len(), "processes"),
    ))
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
#[path = "decode_tests.rs"]
pub(super) mod tests;
