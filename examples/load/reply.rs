//! XML-RPC replies laid out byte for byte as supervisord 4.3.0 writes them (Python's
//! `xmlrpc.client.dumps`: one element per line, members in insertion order, `<int>` and
//! `<string>` tags always written).
//!
//! The layout is not typed in here: the process, state and process-configuration structs are
//! compiled from the replies recorded from a real supervisord (`tests/fixtures/xmlrpc/`: a
//! `getAllProcessInfo`/`getState` multicall and a `getAllConfigInfo`) into static pieces with a
//! slot per member value, and [`Replies::new`] renders the recorded values back through those
//! pieces and refuses to start unless the result equals each recording byte for byte. Rendering a reply is
//! then copying pieces and formatting a few integers: cheap enough for a fleet that shares the
//! machine with what it measures.

use std::fmt;

use supervisord_receiver::supervisor::decode::PROCESS_INFO_FIELDS;

const RECORDED: &str =
    include_str!("../../tests/fixtures/xmlrpc/multicall_recorded_supervisord_4.3.0.xml");
const CONFIG_RECORDED: &str =
    include_str!("../../tests/fixtures/xmlrpc/config_info_recorded_supervisord_4.3.0.xml");

/// The members of a `getProcessInfo` struct, in the order supervisord writes them.
pub const PROCESS_KEYS: [&str; 14] = PROCESS_INFO_FIELDS;

/// The members of a `getAllConfigInfo` struct, in the order supervisord 4.3.0 writes them.
pub const CONFIG_KEYS: [&str; 29] = [
    "autostart",
    "directory",
    "uid",
    "command",
    "exitcodes",
    "group",
    "group_prio",
    "inuse",
    "killasgroup",
    "name",
    "process_prio",
    "redirect_stderr",
    "startretries",
    "startsecs",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_logfile",
    "stdout_logfile_backups",
    "stdout_logfile_maxbytes",
    "stdout_syslog",
    "stopsignal",
    "stopwaitsecs",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_logfile",
    "stderr_logfile_backups",
    "stderr_logfile_maxbytes",
    "stderr_syslog",
    "serverurl",
];

const STATE_KEYS: [&str; 2] = ["statecode", "statename"];
const FAULT_KEYS: [&str; 2] = ["faultCode", "faultString"];

/// Python's marshaller around the values (verified against the recording by the self-check).
const RESPONSE_OPEN: &str = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n";
const RESPONSE_CLOSE: &str = "</param>\n</params>\n</methodResponse>\n";
const FAULT_OPEN: &str = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n";
const FAULT_CLOSE: &str = "</fault>\n</methodResponse>\n";
const ARRAY_OPEN: &str = "<value><array><data>\n";
const ARRAY_CLOSE: &str = "</data></array></value>\n";
const STRUCT_CLOSE: &str = "</struct></value>\n";
const STRING_OPEN: &str = "<value><string>";
const STRING_CLOSE: &str = "</string></value>\n";
/// A fault struct as Python writes it; its layout is the process struct's.
const FAULT_STRUCT: &str = "<value><struct>\n<member>\n<name>faultCode</name>\n\
    <value><int>1</int></value>\n</member>\n<member>\n<name>faultString</name>\n\
    <value><string>UNKNOWN_METHOD</string></value>\n</member>\n</struct></value>\n";

pub const IDENTIFICATION: &str = "supervisor";
pub const VERSION: &str = "4.3.0";

#[derive(Debug)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reply template: {}", self.0)
    }
}

impl std::error::Error for TemplateError {}

/// One member value. The variants beyond `Int` and `Str` render what supervisord computes, so
/// the fleet never formats a string of its own.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Int(i64),
    Str(&'a str),
    /// `1` or `0`, in a `<boolean>` slot.
    Bool(bool),
    /// The items of an array of integers (`exitcodes`), in an `<array>` slot.
    Ints(&'a [i64]),
    /// Text already marshalled, written as is (the self-check's recorded values).
    Raw(&'a str),
    /// `/tmp/<name>-<stream>---supervisor-<suffix>.log`, supervisord's AUTO log file name.
    LogFile {
        name: &'a str,
        stream: &'static str,
        suffix: [u8; 8],
    },
    /// A RUNNING process's description: `pid 15042, uptime 0:00:19`, the uptime as Python's
    /// `str(timedelta)` (`1 day, 2:03:04`, `12 days, 0:00:01`).
    Uptime {
        pid: i64,
        seconds: i64,
    },
    /// A STOPPED or EXITED process's description: its stop time as `%b %d %I:%M %p`.
    StopTime(i64),
}

/// Static pieces with one slot between each two.
#[derive(Debug, Clone)]
struct StructTemplate {
    pieces: Vec<Vec<u8>>,
}

impl StructTemplate {
    /// Splits `text`, one XML-RPC struct, at the value of each member in `keys` (in order);
    /// fails when a member is missing, out of order, or not listed. A slot runs from the
    /// value's type tag to its closing tag, so an array's slot holds its `<data>` element.
    fn compile(text: &str, keys: &[&str]) -> Result<StructTemplate, TemplateError> {
        let mut pieces = Vec::with_capacity(keys.len() + 1);
        let mut cursor = 0;
        for key in keys {
            let marker = format!("<name>{key}</name>\n<value><");
            let rest = text.get(cursor..).unwrap_or("");
            let at = rest
                .find(&marker)
                .ok_or_else(|| TemplateError(format!("member '{key}' missing or out of order")))?;
            let type_start = cursor + at + marker.len();
            let value_start = text
                .get(type_start..)
                .and_then(|t| t.find('>'))
                .map(|end| type_start + end + 1)
                .ok_or_else(|| TemplateError(format!("member '{key}': no type tag")))?;
            let close = format!("</{}>", text.get(type_start..value_start - 1).unwrap_or(""));
            let value_end = text
                .get(value_start..)
                .and_then(|t| t.find(&close))
                .map(|end| value_start + end)
                .ok_or_else(|| TemplateError(format!("member '{key}': no closing tag")))?;
            let piece = text.get(cursor..value_start).unwrap_or("");
            if piece.matches("<name>").count() != 1 {
                return Err(TemplateError(format!(
                    "a member the fleet does not know precedes '{key}'"
                )));
            }
            pieces.push(piece.as_bytes().to_vec());
            cursor = value_end;
        }
        let last = text.get(cursor..).unwrap_or("");
        if last.contains("<name>") {
            return Err(TemplateError(
                "a member the fleet does not know ends the struct".into(),
            ));
        }
        pieces.push(last.as_bytes().to_vec());
        Ok(StructTemplate { pieces })
    }

    /// The values of one rendered struct, in slot order (for the self-check).
    fn values<'t>(&self, text: &'t str) -> Option<Vec<&'t str>> {
        let mut values = Vec::new();
        let mut rest = text.strip_prefix(std::str::from_utf8(self.pieces.first()?).ok()?)?;
        for piece in self.pieces.get(1..)? {
            let piece = std::str::from_utf8(piece).ok()?;
            let end = rest.find(piece)?;
            values.push(rest.get(..end)?);
            rest = rest.get(end + piece.len()..)?;
        }
        rest.is_empty().then_some(values)
    }

    /// The type tag of each slot (`int`, `string`, `boolean`, `array`): every piece but the
    /// last ends with `<value><tag>`.
    fn value_tags(&self) -> Vec<&str> {
        let slots = self.pieces.len().saturating_sub(1);
        self.pieces
            .iter()
            .take(slots)
            .map(|piece| {
                let piece = std::str::from_utf8(piece).unwrap_or("");
                piece
                    .rsplit("<value><")
                    .next()
                    .and_then(|tag| tag.strip_suffix('>'))
                    .unwrap_or("")
            })
            .collect()
    }

    fn render(&self, out: &mut Vec<u8>, fields: &[Field<'_>]) {
        let mut pieces = self.pieces.iter();
        if let Some(first) = pieces.next() {
            out.extend_from_slice(first);
        }
        for (piece, field) in pieces.zip(fields) {
            write_field(out, field);
            out.extend_from_slice(piece);
        }
    }
}

/// The compiled templates; build once with [`Replies::new`].
#[derive(Debug, Clone)]
pub struct Replies {
    process: StructTemplate,
    state: StructTemplate,
    config: StructTemplate,
}

/// Supervisord's own state, the answer to `getState`.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorState {
    pub code: i64,
    pub name: &'static str,
}

pub const RUNNING: SupervisorState = SupervisorState {
    code: 1,
    name: "RUNNING",
};

/// What a request asks: one call or a `system.multicall` of several, in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    GetAllProcessInfo,
    GetAllConfigInfo,
    GetState,
    GetIdentification,
    GetSupervisorVersion,
    Unknown,
}

impl Call {
    pub fn from_name(name: &[u8]) -> Call {
        match name {
            b"supervisor.getAllProcessInfo" => Call::GetAllProcessInfo,
            b"supervisor.getAllConfigInfo" => Call::GetAllConfigInfo,
            b"supervisor.getState" => Call::GetState,
            b"supervisor.getIdentification" => Call::GetIdentification,
            b"supervisor.getSupervisorVersion" => Call::GetSupervisorVersion,
            _ => Call::Unknown,
        }
    }
}

impl Replies {
    /// Compiles the templates from the recorded reply and checks that they reproduce it.
    pub fn new() -> Result<Replies, TemplateError> {
        let array = RECORDED
            .strip_prefix(RESPONSE_OPEN)
            .and_then(|rest| rest.strip_suffix(RESPONSE_CLOSE))
            .and_then(|rest| rest.strip_prefix(ARRAY_OPEN))
            .and_then(|rest| rest.strip_suffix(ARRAY_CLOSE))
            .ok_or_else(|| TemplateError("not a multicall reply".into()))?;
        let processes_text = array
            .strip_prefix(ARRAY_OPEN)
            .ok_or_else(|| TemplateError("first answer is not an array".into()))?;
        let end = processes_text
            .find(ARRAY_CLOSE)
            .ok_or_else(|| TemplateError("process array not closed".into()))?;
        let (processes_text, tail) = processes_text.split_at(end);
        let tail = tail.get(ARRAY_CLOSE.len()..).unwrap_or("");
        let entries: Vec<&str> = processes_text.split_inclusive(STRUCT_CLOSE).collect();
        let web = entries
            .iter()
            .find(|e| e.contains("<value><string>RUNNING</string>"))
            .ok_or_else(|| TemplateError("no RUNNING process to learn the layout from".into()))?;
        let process = StructTemplate::compile(web, &PROCESS_KEYS)?;
        let state_end = tail
            .find(STRUCT_CLOSE)
            .map(|at| at + STRUCT_CLOSE.len())
            .ok_or_else(|| TemplateError("no getState struct".into()))?;
        let (state_text, strings) = tail.split_at(state_end);
        let state = StructTemplate::compile(state_text, &STATE_KEYS)?;
        let configs_text = CONFIG_RECORDED
            .strip_prefix(RESPONSE_OPEN)
            .and_then(|rest| rest.strip_suffix(RESPONSE_CLOSE))
            .and_then(|rest| rest.strip_prefix(ARRAY_OPEN))
            .and_then(|rest| rest.strip_suffix(ARRAY_CLOSE))
            .ok_or_else(|| TemplateError("not a getAllConfigInfo reply".into()))?;
        let configs: Vec<&str> = configs_text.split_inclusive(STRUCT_CLOSE).collect();
        let config = StructTemplate::compile(
            configs
                .first()
                .ok_or_else(|| TemplateError("no recorded process configuration".into()))?,
            &CONFIG_KEYS,
        )?;
        let replies = Replies {
            process,
            state,
            config,
        };
        replies.self_check(&entries, state_text, strings)?;
        replies.config_self_check(&configs)?;
        Ok(replies)
    }

    /// The `getAllConfigInfo` recording through the config template, its values typed as the
    /// fleet writes them (booleans and integers formatted again, the `exitcodes` array as
    /// recorded): the result must be the recording.
    fn config_self_check(&self, entries: &[&str]) -> Result<(), TemplateError> {
        let mut out = Vec::with_capacity(CONFIG_RECORDED.len());
        out.extend_from_slice(RESPONSE_OPEN.as_bytes());
        out.extend_from_slice(ARRAY_OPEN.as_bytes());
        let tags = self.config.value_tags();
        for entry in entries {
            let values = self.config.values(entry).ok_or_else(|| {
                TemplateError("a recorded process configuration does not fit the layout".into())
            })?;
            let mut fields = Vec::with_capacity(values.len());
            for (value, tag) in values.iter().zip(&tags) {
                fields.push(match *tag {
                    "boolean" if *value == "1" || *value == "0" => Field::Bool(*value == "1"),
                    "int" => Field::Int(value.parse().map_err(|_| {
                        TemplateError(format!("recorded int '{value}' does not parse"))
                    })?),
                    "string" if !value.contains('&') => Field::Str(value),
                    _ => Field::Raw(value),
                });
            }
            self.config.render(&mut out, &fields);
        }
        out.extend_from_slice(ARRAY_CLOSE.as_bytes());
        out.extend_from_slice(RESPONSE_CLOSE.as_bytes());
        if out != CONFIG_RECORDED.as_bytes() {
            return Err(TemplateError(
                "rendering the recorded configurations does not reproduce the recording".into(),
            ));
        }
        Ok(())
    }

    /// Renders the recording's own values back: the result must be the recording.
    fn self_check(
        &self,
        entries: &[&str],
        state_text: &str,
        strings: &str,
    ) -> Result<(), TemplateError> {
        let mut out = Vec::with_capacity(RECORDED.len());
        out.extend_from_slice(RESPONSE_OPEN.as_bytes());
        out.extend_from_slice(ARRAY_OPEN.as_bytes());
        out.extend_from_slice(ARRAY_OPEN.as_bytes());
        for entry in entries {
            let values = self.process.values(entry).ok_or_else(|| {
                TemplateError("a recorded process does not fit the layout".into())
            })?;
            let fields: Vec<Field<'_>> = values.iter().map(|v| Field::Str(v)).collect();
            self.process.render(&mut out, &fields);
        }
        out.extend_from_slice(ARRAY_CLOSE.as_bytes());
        let values = self
            .state
            .values(state_text)
            .ok_or_else(|| TemplateError("the recorded state does not fit the layout".into()))?;
        let fields: Vec<Field<'_>> = values.iter().map(|v| Field::Str(v)).collect();
        self.state.render(&mut out, &fields);
        // The two strings, through the same writer as served replies.
        for s in [IDENTIFICATION, VERSION] {
            write_string(&mut out, s);
        }
        out.extend_from_slice(ARRAY_CLOSE.as_bytes());
        out.extend_from_slice(RESPONSE_CLOSE.as_bytes());
        if strings
            != format!(
                "{STRING_OPEN}{IDENTIFICATION}{STRING_CLOSE}{STRING_OPEN}{VERSION}{STRING_CLOSE}"
            )
        {
            return Err(TemplateError(
                "identification and version differ from the recording".into(),
            ));
        }
        if out != RECORDED.as_bytes() {
            return Err(TemplateError(
                "rendering the recorded values does not reproduce the recording".into(),
            ));
        }
        if StructTemplate::compile(FAULT_STRUCT, &FAULT_KEYS).is_err() {
            return Err(TemplateError("fault layout".into()));
        }
        Ok(())
    }

    /// Renders the whole body answering `calls` (`multicall`: a `system.multicall` of them).
    /// `processes` writes the process structs of `getAllProcessInfo`, `configs` those of
    /// `getAllConfigInfo`.
    pub fn render(
        &self,
        out: &mut Vec<u8>,
        multicall: bool,
        calls: &[Call],
        state: SupervisorState,
        mut processes: impl FnMut(&mut ProcessWriter<'_>),
        mut configs: impl FnMut(&mut ConfigWriter<'_>),
    ) {
        if !multicall && calls.first().is_none_or(|c| *c == Call::Unknown) {
            out.extend_from_slice(FAULT_OPEN.as_bytes());
            out.extend_from_slice(FAULT_STRUCT.as_bytes());
            out.extend_from_slice(FAULT_CLOSE.as_bytes());
            return;
        }
        out.extend_from_slice(RESPONSE_OPEN.as_bytes());
        if multicall {
            out.extend_from_slice(ARRAY_OPEN.as_bytes());
        }
        for call in calls {
            match call {
                Call::GetAllProcessInfo => {
                    out.extend_from_slice(ARRAY_OPEN.as_bytes());
                    processes(&mut ProcessWriter {
                        template: &self.process,
                        out,
                    });
                    out.extend_from_slice(ARRAY_CLOSE.as_bytes());
                }
                Call::GetAllConfigInfo => {
                    out.extend_from_slice(ARRAY_OPEN.as_bytes());
                    configs(&mut ConfigWriter {
                        template: &self.config,
                        out,
                    });
                    out.extend_from_slice(ARRAY_CLOSE.as_bytes());
                }
                Call::GetState => self
                    .state
                    .render(out, &[Field::Int(state.code), Field::Str(state.name)]),
                Call::GetIdentification => write_string(out, IDENTIFICATION),
                Call::GetSupervisorVersion => write_string(out, VERSION),
                // supervisord's multicall puts a fault struct in place of the result.
                Call::Unknown => out.extend_from_slice(FAULT_STRUCT.as_bytes()),
            }
            if !multicall {
                break;
            }
        }
        if multicall {
            out.extend_from_slice(ARRAY_CLOSE.as_bytes());
        }
        out.extend_from_slice(RESPONSE_CLOSE.as_bytes());
    }
}

/// Writes the process structs of one `getAllProcessInfo` answer.
pub struct ProcessWriter<'a> {
    template: &'a StructTemplate,
    out: &'a mut Vec<u8>,
}

impl ProcessWriter<'_> {
    /// One process; `fields` in [`PROCESS_KEYS`] order.
    pub fn process(&mut self, fields: &[Field<'_>; 14]) {
        self.template.render(self.out, fields);
    }
}

/// Writes the process configuration structs of one `getAllConfigInfo` answer.
pub struct ConfigWriter<'a> {
    template: &'a StructTemplate,
    out: &'a mut Vec<u8>,
}

impl ConfigWriter<'_> {
    /// One process's configuration; `fields` in [`CONFIG_KEYS`] order.
    pub fn config(&mut self, fields: &[Field<'_>; 29]) {
        self.template.render(self.out, fields);
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(STRING_OPEN.as_bytes());
    escape(out, s);
    out.extend_from_slice(STRING_CLOSE.as_bytes());
}

fn write_field(out: &mut Vec<u8>, field: &Field<'_>) {
    match *field {
        Field::Int(i) => write_int(out, i),
        Field::Str(s) => escape(out, s),
        Field::Bool(b) => out.push(if b { b'1' } else { b'0' }),
        Field::Ints(items) => {
            out.extend_from_slice(b"<data>\n");
            for &item in items {
                out.extend_from_slice(b"<value><int>");
                write_int(out, item);
                out.extend_from_slice(b"</int></value>\n");
            }
            out.extend_from_slice(b"</data>");
        }
        Field::Raw(s) => out.extend_from_slice(s.as_bytes()),
        Field::LogFile {
            name,
            stream,
            suffix,
        } => {
            out.extend_from_slice(b"/tmp/");
            escape(out, name);
            out.push(b'-');
            out.extend_from_slice(stream.as_bytes());
            out.extend_from_slice(b"---supervisor-");
            out.extend_from_slice(&suffix);
            out.extend_from_slice(b".log");
        }
        Field::Uptime { pid, seconds } => {
            out.extend_from_slice(b"pid ");
            write_int(out, pid);
            out.extend_from_slice(b", uptime ");
            write_timedelta(out, seconds.max(0));
        }
        Field::StopTime(unix) => write_stop_time(out, unix),
    }
}

/// Python's `xmlrpc.client.escape`: `&`, `<`, `>`.
fn escape(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            _ => out.push(b),
        }
    }
}

pub fn write_int(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let mut n = value.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or(&[]));
}

fn write_2(out: &mut Vec<u8>, value: i64) {
    out.push(b'0' + (value / 10 % 10) as u8);
    out.push(b'0' + (value % 10) as u8);
}

/// `str(datetime.timedelta(seconds=s))`.
fn write_timedelta(out: &mut Vec<u8>, seconds: i64) {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    if days > 0 {
        write_int(out, days);
        out.extend_from_slice(if days == 1 { b" day, " } else { b" days, " });
    }
    write_int(out, rest / 3600);
    out.push(b':');
    write_2(out, rest / 60 % 60);
    out.push(b':');
    write_2(out, rest % 60);
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// `%b %d %I:%M %p` of a Unix time, in UTC (supervisord uses local time; the fleet's is UTC).
fn write_stop_time(out: &mut Vec<u8>, unix: i64) {
    let (_, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    let hour = secs / 3600;
    let hour12 = match hour % 12 {
        0 => 12,
        h => h,
    };
    out.extend_from_slice(month_name(month).as_bytes());
    out.push(b' ');
    write_2(out, day);
    out.push(b' ');
    write_2(out, hour12);
    out.push(b':');
    write_2(out, secs / 60 % 60);
    out.extend_from_slice(if hour < 12 { b" AM" } else { b" PM" });
}

fn month_name(month: i64) -> &'static str {
    usize::try_from(month - 1)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .copied()
        .unwrap_or("???")
}

/// The HTTP `Date` header value medusa writes: `Tue, 05 Nov 2024 10:00:00 GMT`.
pub fn http_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let secs = unix.rem_euclid(86_400);
    let weekday = usize::try_from((days + 4).rem_euclid(7))
        .ok()
        .and_then(|w| WEEKDAYS.get(w))
        .copied()
        .unwrap_or("???");
    format!(
        "{weekday}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        month_name(month),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_reproduce_the_recording() {
        assert!(Replies::new().is_ok());
    }

    #[test]
    fn python_formats() {
        let mut out = Vec::new();
        write_timedelta(&mut out, 19);
        out.push(b'|');
        write_timedelta(&mut out, 86_400 + 3723);
        out.push(b'|');
        write_timedelta(&mut out, 3 * 86_400);
        assert_eq!(out, b"0:00:19|1 day, 1:02:03|3 days, 0:00:00");
        let mut out = Vec::new();
        write_stop_time(&mut out, 1_795_482_469);
        assert_eq!(String::from_utf8(out).unwrap(), "Nov 24 01:07 AM");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_482_469), "Tue, 24 Nov 2026 01:07:49 GMT");
    }
}
