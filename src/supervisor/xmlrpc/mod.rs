//! XML-RPC codec: request encoding and a hardened, allocation-proportional response decoder.
//!
//! The decoder accepts what XML-RPC servers (supervisord's marshaller included) emit and refuses
//! what a hostile or misconfigured peer could use against us: no DTD, no entity other than the
//! five predefined ones and character references, a nesting cap, strict UTF-8, strict scalars,
//! nothing after the root element. It reads quick-xml's borrowed events, so text that needs no
//! unescaping is copied once, into the [`Value`] that owns it.
//!
//! That decoder is the general path: every call, every reply, every error message. The replies
//! a poll decodes every interval first go through the `fast` submodule, a byte scanner for the
//! way supervisord writes them, which decodes straight to the typed model and hands anything
//! it does not fully recognise back to this decoder; see there for why.

use std::borrow::Cow;
use std::fmt;

pub(crate) mod fast;

use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

/// Deeper nesting of structs and arrays is refused: supervisord's replies nest three levels, and
/// the cap bounds the decoder's recursion whatever the input.
pub const MAX_DEPTH: usize = 64;

/// How much of an offending text an error quotes; enough to recognise it in a log.
const QUOTE_LIMIT: usize = 40;

/// How much of a fault string or a parser message a log line carries. supervisord's longest
/// fault strings (a failed spawn's reason) fit; a hostile megabyte-long one does not.
const MESSAGE_LIMIT: usize = 200;

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    String(String),
    Double(f64),
    /// `dateTime.iso8601`, kept as sent: servers disagree on its exact format.
    DateTime(String),
    Base64(Vec<u8>),
    /// Members in the order received.
    Struct(Vec<(String, Value)>),
    Array(Vec<Value>),
    Nil,
}

impl Value {
    /// A struct member by name. With duplicate names the last one wins, as in Python's
    /// unmarshaller (a dict), so we read what supervisord's own clients read.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members
                .iter()
                .rev()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Struct(members) => Some(members),
            _ => None,
        }
    }

    /// The type with its article, for messages: "a struct", "an int".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an int",
            Value::Bool(_) => "a boolean",
            Value::String(_) => "a string",
            Value::Double(_) => "a double",
            Value::DateTime(_) => "a dateTime",
            Value::Base64(_) => "base64 data",
            Value::Struct(_) => "a struct",
            Value::Array(_) => "an array",
            Value::Nil => "nil",
        }
    }
}

/// An XML-RPC fault: the server understood the call and refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: i64,
    pub message: String,
}

/// Datadog quotes faults as `{faultCode} {faultString}` (`10 BAD_NAME`); so do we. The string
/// comes from the server, so it is shown through [`printable`].
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.code,
            printable(&self.message, MESSAGE_LIMIT)
        )
    }
}

/// Text from the server made safe for one log line: control characters (a newline would let
/// the server forge a log line), line separators and bidirectional overrides are escaped, and
/// the text is cut after `limit` characters.
pub fn printable(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len().min(limit.saturating_mul(4)));
    for (count, c) in text.chars().enumerate() {
        if count == limit {
            out.push_str("...");
            break;
        }
        let unsafe_in_a_log = c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if unsafe_in_a_log {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl Fault {
    /// A `{faultCode: int, faultString: string}` struct, as in a fault reply or a multicall result.
    fn from_value(value: &Value) -> Option<Fault> {
        let code = value.get("faultCode")?.as_i64()?;
        let message = value.get("faultString")?.as_str()?.to_owned();
        Some(Fault { code, message })
    }
}

/// Why a reply could not be decoded. Texts are meant to be logged after "Invalid reply from X: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// supervisord serves its web UI on every path but `/RPC2`.
    #[error("the reply is an HTML page, not XML-RPC: is the URL missing /RPC2?")]
    Html,
    #[error("the reply is empty")]
    Empty,
    #[error("the reply is not valid UTF-8 (byte {at})")]
    InvalidUtf8 { at: usize },
    #[error("the reply declares encoding '{0}'; only UTF-8 is supported")]
    UnsupportedEncoding(String),
    /// Refused outright: a DTD is how entity-expansion attacks start.
    #[error("the reply contains a DTD (<!DOCTYPE>), which is refused")]
    Dtd,
    #[error("the reply uses entity '&{0};'; only the five predefined entities and character references are allowed")]
    UnknownEntity(String),
    #[error("malformed XML at byte {position}: {reason}")]
    Xml { position: u64, reason: String },
    #[error("values nest deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("expected {expected}, found {found}")]
    Unexpected {
        expected: &'static str,
        found: String,
    },
    #[error("unknown value type <{0}>")]
    UnknownType(String),
    #[error("invalid {kind} '{text}'")]
    BadScalar { kind: &'static str, text: String },
    #[error("invalid base64 value: {0}")]
    BadBase64(String),
    #[error("a fault must be a struct with an int faultCode and a string faultString")]
    BadFault,
    #[error("invalid system.multicall reply: {0}")]
    BadMulticall(String),
    #[error("content after the end of the reply")]
    TrailingContent,
}

/// Encodes a `methodResponse` carrying `value`, as a server would: for tools and tests that
/// play supervisord.
pub fn encode_response(value: &Value) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodResponse><params><param>");
    write_value(&mut out, value);
    out.push_str("</param></params></methodResponse>\n");
    out.into_bytes()
}

/// Encodes a fault `methodResponse`.
pub fn encode_fault(fault: &Fault) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodResponse><fault>");
    write_value(
        &mut out,
        &Value::Struct(vec![
            ("faultCode".to_owned(), Value::Int(fault.code)),
            (
                "faultString".to_owned(),
                Value::String(fault.message.clone()),
            ),
        ]),
    );
    out.push_str("</fault></methodResponse>\n");
    out.into_bytes()
}

/// Encodes a `methodCall`.
pub fn encode_call(method: &str, params: &[Value]) -> Vec<u8> {
    let mut out = call_prologue(method);
    for param in params {
        out.push_str("<param>");
        write_value(&mut out, param);
        out.push_str("</param>");
    }
    out.push_str(CALL_EPILOGUE);
    out.into_bytes()
}

/// Encodes a `system.multicall` of `(method, params)` pairs: one round trip for several calls.
pub fn encode_multicall(calls: &[(&str, &[Value])]) -> Vec<u8> {
    let mut out = call_prologue("system.multicall");
    out.push_str("<param><value><array><data>");
    for (method, params) in calls {
        out.push_str("<value><struct><member><name>methodName</name><value><string>");
        escape_into(&mut out, method);
        out.push_str("</string></value></member><member><name>params</name><value><array><data>");
        for param in params.iter() {
            write_value(&mut out, param);
        }
        out.push_str("</data></array></value></member></struct></value>");
    }
    out.push_str("</data></array></value></param>");
    out.push_str(CALL_EPILOGUE);
    out.into_bytes()
}

const CALL_EPILOGUE: &str = "</params></methodCall>\n";

fn call_prologue(method: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName><params>");
    out
}

/// Writes `<value>...</value>`. Recursive: meant for values we build, not for unbounded input.
fn write_value(out: &mut String, value: &Value) {
    out.push_str("<value>");
    match value {
        Value::Int(i) => {
            // `<int>` is 32-bit in the spec; larger values need the common `<i8>` extension.
            let tag = if i32::try_from(*i).is_ok() {
                "int"
            } else {
                "i8"
            };
            push_element(out, tag, &i.to_string());
        }
        Value::Bool(b) => out.push_str(if *b {
            "<boolean>1</boolean>"
        } else {
            "<boolean>0</boolean>"
        }),
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
        }
        // Rust prints finite doubles without exponent, which is the only form the spec allows.
        Value::Double(d) => push_element(out, "double", &d.to_string()),
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Base64(bytes) => push_element(
            out,
            "base64",
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        ),
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, member) in members {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                write_value(out, member);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array>");
        }
        Value::Nil => out.push_str("<nil/>"),
    }
    out.push_str("</value>");
}

fn push_element(out: &mut String, tag: &str, text: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    out.push_str(text);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// Escapes text content. `\r` becomes a character reference (a parser would otherwise normalise
/// it away); characters XML 1.0 cannot carry at all become U+FFFD rather than an unparseable
/// request.
fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(pos) = rest.find(|c: char| needs_escape(c)) {
        let (plain, tail) = rest.split_at(pos);
        out.push_str(plain);
        let mut chars = tail.chars();
        let Some(c) = chars.next() else { break };
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push('\u{FFFD}'),
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
}

fn needs_escape(c: char) -> bool {
    matches!(c, '&' | '<' | '>' | '\r' | '\u{FFFE}' | '\u{FFFF}')
        || (c < ' ' && !matches!(c, '\t' | '\n'))
}

/// Decodes a `methodResponse`: `Ok(Ok(value))` for a result, `Ok(Err(fault))` for a fault.
pub fn decode_response(body: &[u8]) -> Result<Result<Value, Fault>, DecodeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if looks_like_html(body) {
        return Err(DecodeError::Html);
    }
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    if text.trim_start_matches(is_xml_space).is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut parser = Parser::new(text);
    let result = parser.response()?;
    parser.end_of_document()?;
    Ok(result)
}

/// Splits a `system.multicall` result into one answer per call.
///
/// supervisord returns each result bare (`getState` as a struct, `getAllProcessInfo` as the
/// array itself), where the XML-RPC multicall convention wraps each in a one-element array. Both
/// are accepted here: a fault struct is a fault, anything else is the result as sent; the caller,
/// which knows each call's shape, removes the conventional wrapper with [`unwrap_multicall`].
pub fn split_multicall(value: Value) -> Result<Vec<Result<Value, Fault>>, DecodeError> {
    let Value::Array(items) = value else {
        return Err(DecodeError::BadMulticall(format!(
            "expected an array, found {}",
            value.kind()
        )));
    };
    Ok(items
        .into_iter()
        .map(|item| match Fault::from_value(&item) {
            Some(fault) => Err(fault),
            None => Ok(item),
        })
        .collect())
}

/// Removes the conventional one-element wrapper of a multicall result, when it is there.
/// `result_is_array` says whether the call itself returns an array (`getAllProcessInfo`): then
/// only an array holding exactly one array is a wrapper, so a bare one-process reply is kept.
pub fn unwrap_multicall(value: Value, result_is_array: bool) -> Value {
    match value {
        Value::Array(mut items)
            if items.len() == 1
                && (!result_is_array || matches!(items.first(), Some(Value::Array(_)))) =>
        {
            items.pop().unwrap_or(Value::Nil)
        }
        other => other,
    }
}

/// XML's whitespace, which is narrower than Unicode's.
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(body.len());
    let rest = body.get(start..).unwrap_or_default();
    starts_with_ignore_case(rest, b"<!doctype html") || starts_with_ignore_case(rest, b"<html")
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Cuts quoted input short so an error message stays one readable line.
fn quote(text: &str) -> String {
    printable(text, QUOTE_LIMIT)
}

/// The element names XML-RPC uses; anything else is kept by name for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    MethodResponse,
    Params,
    Param,
    Fault,
    Value,
    Struct,
    Member,
    Name,
    Array,
    Data,
    Int,
    Boolean,
    String,
    Double,
    DateTime,
    Base64,
    Nil,
    Other(Box<str>),
}

impl Tag {
    fn from_name(name: &[u8]) -> Tag {
        match name {
            b"methodResponse" => Tag::MethodResponse,
            b"params" => Tag::Params,
            b"param" => Tag::Param,
            b"fault" => Tag::Fault,
            b"value" => Tag::Value,
            b"struct" => Tag::Struct,
            b"member" => Tag::Member,
            b"name" => Tag::Name,
            b"array" => Tag::Array,
            b"data" => Tag::Data,
            b"int" | b"i4" | b"i8" | b"ex:i8" => Tag::Int,
            b"boolean" => Tag::Boolean,
            b"string" => Tag::String,
            b"double" => Tag::Double,
            b"dateTime.iso8601" => Tag::DateTime,
            b"base64" => Tag::Base64,
            b"nil" | b"ex:nil" => Tag::Nil,
            other => Tag::Other(String::from_utf8_lossy(other).into()),
        }
    }

    fn name(&self) -> &str {
        match self {
            Tag::MethodResponse => "methodResponse",
            Tag::Params => "params",
            Tag::Param => "param",
            Tag::Fault => "fault",
            Tag::Value => "value",
            Tag::Struct => "struct",
            Tag::Member => "member",
            Tag::Name => "name",
            Tag::Array => "array",
            Tag::Data => "data",
            Tag::Int => "int",
            Tag::Boolean => "boolean",
            Tag::String => "string",
            Tag::Double => "double",
            Tag::DateTime => "dateTime.iso8601",
            Tag::Base64 => "base64",
            Tag::Nil => "nil",
            Tag::Other(name) => name,
        }
    }
}

/// What the parser sees: elements, and text with references already resolved and adjacent
/// pieces (split by references, CDATA or comments) joined.
enum Tok<'a> {
    Decl,
    Start(Tag),
    Empty(Tag),
    End(Tag),
    Text(Cow<'a, str>),
    Eof,
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match self {
            Tok::Decl => "an XML declaration".to_owned(),
            Tok::Start(tag) => format!("<{}>", quote(tag.name())),
            Tok::Empty(tag) => format!("<{}/>", quote(tag.name())),
            Tok::End(tag) => format!("</{}>", quote(tag.name())),
            Tok::Text(text) => format!("text '{}'", quote(text)),
            Tok::Eof => "the end of the reply".to_owned(),
        }
    }

    fn is_space(&self) -> bool {
        matches!(self, Tok::Text(text) if text.chars().all(is_xml_space))
    }
}

/// A recursive-descent parser over [`Tok`]s. Recursion is bounded by [`MAX_DEPTH`].
struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    /// An event read past the end of a text run, handed out next.
    pending: Option<Event<'a>>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            reader: Reader::from_str(text),
            pending: None,
        }
    }

    fn xml_error(&self, error: quick_xml::Error) -> DecodeError {
        DecodeError::Xml {
            position: self.reader.error_position(),
            // quick-xml quotes names from the input in its messages.
            reason: printable(&error.to_string(), MESSAGE_LIMIT),
        }
    }

    fn event(&mut self) -> Result<Event<'a>, DecodeError> {
        if let Some(event) = self.pending.take() {
            return Ok(event);
        }
        self.reader.read_event().map_err(|e| self.xml_error(e))
    }

    fn next(&mut self) -> Result<Tok<'a>, DecodeError> {
        loop {
            let event = self.event()?;
            return Ok(match event {
                Event::Start(start) => Tok::Start(Tag::from_name(start.name().as_ref())),
                Event::Empty(start) => Tok::Empty(Tag::from_name(start.name().as_ref())),
                Event::End(end) => Tok::End(Tag::from_name(end.name().as_ref())),
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    Tok::Text(self.text_run(event)?)
                }
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Decl(decl) => {
                    if let Some(encoding) = decl.encoding() {
                        let encoding = encoding.map_err(|e| self.xml_error(e.into()))?;
                        let encoding = String::from_utf8_lossy(&encoding);
                        let utf8 = ["utf-8", "utf8", "us-ascii", "ascii"]
                            .iter()
                            .any(|ok| encoding.eq_ignore_ascii_case(ok));
                        if !utf8 {
                            return Err(DecodeError::UnsupportedEncoding(quote(&encoding)));
                        }
                    }
                    Tok::Decl
                }
                Event::DocType(doctype) => {
                    let content = doctype.into_inner();
                    let content = content.trim_ascii_start();
                    return Err(if starts_with_ignore_case(content, b"html") {
                        DecodeError::Html
                    } else {
                        DecodeError::Dtd
                    });
                }
                Event::Eof => Tok::Eof,
            });
        }
    }

    /// Joins a run of text pieces; borrows when the run is a single piece without `\r`.
    fn text_run(&mut self, first: Event<'a>) -> Result<Cow<'a, str>, DecodeError> {
        let mut text = self.text_piece(first)?;
        loop {
            let event = self.event()?;
            match event {
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    let piece = self.text_piece(event)?;
                    text.to_mut().push_str(&piece);
                }
                Event::Comment(_) | Event::PI(_) => {}
                other => {
                    self.pending = Some(other);
                    return Ok(text);
                }
            }
        }
    }

    fn text_piece(&self, event: Event<'a>) -> Result<Cow<'a, str>, DecodeError> {
        let encoding_error = |e: quick_xml::encoding::EncodingError| self.xml_error(e.into());
        match event {
            Event::Text(text) => text.xml10_content().map_err(encoding_error),
            Event::CData(cdata) => cdata.xml10_content().map_err(encoding_error),
            Event::GeneralRef(reference) => {
                if reference.is_char_ref() {
                    return match reference.resolve_char_ref() {
                        Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
                        Ok(None) => Err(DecodeError::UnknownEntity(quote(
                            &String::from_utf8_lossy(&reference),
                        ))),
                        Err(e) => Err(self.xml_error(e)),
                    };
                }
                let c = match &*reference {
                    b"lt" => "<",
                    b"gt" => ">",
                    b"amp" => "&",
                    b"apos" => "'",
                    b"quot" => "\"",
                    other => {
                        return Err(DecodeError::UnknownEntity(quote(&String::from_utf8_lossy(
                            other,
                        ))))
                    }
                };
                Ok(Cow::Borrowed(c))
            }
            _ => Ok(Cow::Borrowed("")),
        }
    }

    /// The next token that is not whitespace between elements.
    fn next_markup(&mut self) -> Result<Tok<'a>, DecodeError> {
        loop {
            let tok = self.next()?;
            if !tok.is_space() {
                return Ok(tok);
            }
        }
    }

    fn expect_start(&mut self, tag: Tag, expected: &'static str) -> Result<(), DecodeError> {
        match self.next_markup()? {
            Tok::Start(found) if found == tag => Ok(()),
            other => Err(unexpected(expected, &other)),
        }
    }

    fn expect_end(&mut self, tag: Tag, expected: &'static str) -> Result<(), DecodeError> {
        match self.next_markup()? {
            Tok::End(found) if found == tag => Ok(()),
            other => Err(unexpected(expected, &other)),
        }
    }

    fn response(&mut self) -> Result<Result<Value, Fault>, DecodeError> {
        let mut first = true;
        loop {
            match self.next_markup()? {
                Tok::Decl if first => {}
                Tok::Start(Tag::MethodResponse) => break,
                Tok::Start(Tag::Other(name)) | Tok::Empty(Tag::Other(name))
                    if name.eq_ignore_ascii_case("html") =>
                {
                    return Err(DecodeError::Html)
                }
                other => return Err(unexpected("<methodResponse>", &other)),
            }
            first = false;
        }
        let result = match self.next_markup()? {
            Tok::Start(Tag::Params) => {
                self.expect_start(Tag::Param, "<param>")?;
                let value = self.value_element()?;
                self.expect_end(Tag::Param, "</param>")?;
                self.expect_end(Tag::Params, "</params>")?;
                Ok(value)
            }
            Tok::Start(Tag::Fault) => {
                let value = self.value_element()?;
                self.expect_end(Tag::Fault, "</fault>")?;
                Err(Fault::from_value(&value).ok_or(DecodeError::BadFault)?)
            }
            other => return Err(unexpected("<params> or <fault>", &other)),
        };
        self.expect_end(Tag::MethodResponse, "</methodResponse>")?;
        Ok(result)
    }

    fn end_of_document(&mut self) -> Result<(), DecodeError> {
        match self.next_markup()? {
            Tok::Eof => Ok(()),
            _ => Err(DecodeError::TrailingContent),
        }
    }

    /// A whole `<value>` element at the top of a param or fault.
    fn value_element(&mut self) -> Result<Value, DecodeError> {
        match self.next_markup()? {
            Tok::Start(Tag::Value) => self.value(0),
            Tok::Empty(Tag::Value) => Ok(Value::String(String::new())),
            other => Err(unexpected("<value>", &other)),
        }
    }

    /// The content of a `<value>` whose start tag was read; `depth` counts enclosing containers.
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let mut tok = self.next()?;
        let mut leading = None;
        if let Tok::Text(text) = tok {
            leading = Some(text);
            tok = self.next()?;
        }
        let (tag, empty) = match tok {
            // The spec: a value without a type element is a string.
            Tok::End(Tag::Value) => {
                return Ok(Value::String(
                    leading.map(Cow::into_owned).unwrap_or_default(),
                ))
            }
            Tok::Start(tag) => (tag, false),
            Tok::Empty(tag) => (tag, true),
            other => return Err(unexpected("a value type or </value>", &other)),
        };
        if let Some(text) = leading {
            if !text.chars().all(is_xml_space) {
                return Err(unexpected("a value type or </value>", &Tok::Text(text)));
            }
        }
        let value = self.typed(tag, empty, depth)?;
        self.expect_end(Tag::Value, "</value>")?;
        Ok(value)
    }

    fn typed(&mut self, tag: Tag, empty: bool, depth: usize) -> Result<Value, DecodeError> {
        if matches!(tag, Tag::Struct | Tag::Array) && depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { limit: MAX_DEPTH });
        }
        match tag {
            Tag::Int => {
                let text = self.scalar_text(empty, Tag::Int)?;
                let trimmed = text.trim_matches(is_xml_space);
                trimmed
                    .parse::<i64>()
                    .map(Value::Int)
                    .map_err(|_| bad_scalar("int", &text))
            }
            Tag::Boolean => {
                let text = self.scalar_text(empty, Tag::Boolean)?;
                match text.trim_matches(is_xml_space) {
                    "1" => Ok(Value::Bool(true)),
                    "0" => Ok(Value::Bool(false)),
                    _ => Err(bad_scalar("boolean", &text)),
                }
            }
            Tag::String => Ok(Value::String(
                self.scalar_text(empty, Tag::String)?.into_owned(),
            )),
            Tag::Double => {
                let text = self.scalar_text(empty, Tag::Double)?;
                match text.trim_matches(is_xml_space).parse::<f64>() {
                    // Rust also reads "inf" and "NaN", which XML-RPC has no form for.
                    Ok(d) if d.is_finite() => Ok(Value::Double(d)),
                    _ => Err(bad_scalar("double", &text)),
                }
            }
            Tag::DateTime => {
                let text = self.scalar_text(empty, Tag::DateTime)?;
                Ok(Value::DateTime(text.trim_matches(is_xml_space).to_owned()))
            }
            Tag::Base64 => {
                let text = self.scalar_text(empty, Tag::Base64)?;
                decode_base64(&text).map(Value::Base64)
            }
            Tag::Nil => {
                if !empty {
                    self.expect_end(Tag::Nil, "</nil>")?;
                }
                Ok(Value::Nil)
            }
            Tag::Struct => {
                let mut members = Vec::new();
                if !empty {
                    loop {
                        match self.next_markup()? {
                            Tok::Start(Tag::Member) => members.push(self.member(depth + 1)?),
                            Tok::End(Tag::Struct) => break,
                            other => return Err(unexpected("<member> or </struct>", &other)),
                        }
                    }
                }
                Ok(Value::Struct(members))
            }
            Tag::Array => {
                let mut items = Vec::new();
                if !empty {
                    match self.next_markup()? {
                        Tok::Start(Tag::Data) => loop {
                            match self.next_markup()? {
                                Tok::Start(Tag::Value) => items.push(self.value(depth + 1)?),
                                Tok::Empty(Tag::Value) => items.push(Value::String(String::new())),
                                Tok::End(Tag::Data) => break,
                                other => return Err(unexpected("<value> or </data>", &other)),
                            }
                        },
                        Tok::Empty(Tag::Data) => {}
                        other => return Err(unexpected("<data>", &other)),
                    }
                    self.expect_end(Tag::Array, "</array>")?;
                }
                Ok(Value::Array(items))
            }
            other => Err(DecodeError::UnknownType(quote(other.name()))),
        }
    }

    /// The text of a scalar element up to its end tag; markup inside is an error.
    fn scalar_text(&mut self, empty: bool, tag: Tag) -> Result<Cow<'a, str>, DecodeError> {
        if empty {
            return Ok(Cow::Borrowed(""));
        }
        let mut tok = self.next()?;
        let mut text = Cow::Borrowed("");
        if let Tok::Text(content) = tok {
            text = content;
            tok = self.next()?;
        }
        match tok {
            Tok::End(found) if found == tag => Ok(text),
            other => Err(unexpected("text or an end tag", &other)),
        }
    }

    fn member(&mut self, depth: usize) -> Result<(String, Value), DecodeError> {
        let name = match self.next_markup()? {
            Tok::Start(Tag::Name) => self.scalar_text(false, Tag::Name)?.into_owned(),
            Tok::Empty(Tag::Name) => String::new(),
            other => return Err(unexpected("<name>", &other)),
        };
        let value = match self.next_markup()? {
            Tok::Start(Tag::Value) => self.value(depth)?,
            Tok::Empty(Tag::Value) => Value::String(String::new()),
            other => return Err(unexpected("<value>", &other)),
        };
        self.expect_end(Tag::Member, "</member>")?;
        Ok((name, value))
    }
}

fn unexpected(expected: &'static str, found: &Tok<'_>) -> DecodeError {
    DecodeError::Unexpected {
        expected,
        found: found.describe(),
    }
}

fn bad_scalar(kind: &'static str, text: &str) -> DecodeError {
    DecodeError::BadScalar {
        kind,
        text: quote(text),
    }
}

/// Servers wrap base64 in lines (Python every 76 characters), so whitespace is dropped first.
fn decode_base64(text: &str) -> Result<Vec<u8>, DecodeError> {
    let compact: Cow<'_, str> = if text.contains(is_xml_space) {
        Cow::Owned(text.chars().filter(|c| !is_xml_space(*c)).collect())
    } else {
        Cow::Borrowed(text)
    };
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| DecodeError::BadBase64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(value_xml: &str) -> String {
        format!(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n{value_xml}\n</param>\n</params>\n</methodResponse>\n"
        )
    }

    fn decode_value(value_xml: &str) -> Result<Value, DecodeError> {
        match decode_response(response(value_xml).as_bytes())? {
            Ok(value) => Ok(value),
            Err(fault) => panic!("unexpected fault {fault}"),
        }
    }

    /// The public encoder's output as text.
    fn encode_response(value: &Value) -> String {
        String::from_utf8(super::encode_response(value)).unwrap()
    }

    #[test]
    fn scalar_types() {
        let cases: Vec<(&str, Value)> = vec![
            ("<value><int>42</int></value>", Value::Int(42)),
            ("<value><i4>-7</i4></value>", Value::Int(-7)),
            (
                "<value><i8>9007199254740993</i8></value>",
                Value::Int(9_007_199_254_740_993),
            ),
            ("<value><int> +5 </int></value>", Value::Int(5)),
            ("<value><boolean>1</boolean></value>", Value::Bool(true)),
            ("<value><boolean>0</boolean></value>", Value::Bool(false)),
            (
                "<value><string>mysql</string></value>",
                Value::String("mysql".into()),
            ),
            ("<value><string/></value>", Value::String(String::new())),
            (
                "<value><string></string></value>",
                Value::String(String::new()),
            ),
            (
                "<value>bare text</value>",
                Value::String("bare text".into()),
            ),
            ("<value>  </value>", Value::String("  ".into())),
            ("<value></value>", Value::String(String::new())),
            ("<value/>", Value::String(String::new())),
            ("<value><double>-1.5</double></value>", Value::Double(-1.5)),
            (
                "<value><dateTime.iso8601>20141101T04:18:33</dateTime.iso8601></value>",
                Value::DateTime("20141101T04:18:33".into()),
            ),
            (
                "<value><base64>aGVs\nbG8=</base64></value>",
                Value::Base64(b"hello".to_vec()),
            ),
            ("<value><nil/></value>", Value::Nil),
            ("<value><ex:nil/></value>", Value::Nil),
            ("<value>\n  <int>3</int>\n</value>", Value::Int(3)),
        ];
        for (xml, expected) in cases {
            assert_eq!(decode_value(xml), Ok(expected), "{xml}");
        }
    }

    #[test]
    fn struct_keeps_member_order_and_get_finds_last_duplicate() {
        let value = decode_value(
            "<value><struct>\n<member>\n<name>b</name>\n<value><int>1</int></value>\n</member>\n\
             <member><name>a</name><value><string>x</string></value></member>\n\
             <member><name>b</name><value><int>2</int></value></member>\n</struct></value>",
        )
        .unwrap();
        let members = value.as_struct().unwrap();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a", "b"]);
        assert_eq!(value.get("b").and_then(Value::as_i64), Some(2));
        assert_eq!(value.get("a").and_then(Value::as_str), Some("x"));
        assert_eq!(value.get("missing"), None);
        assert_eq!(Value::Int(1).get("a"), None);
    }

    #[test]
    fn arrays_nested_and_empty() {
        let value = decode_value(
            "<value><array><data>\n<value><array><data>\n<value><int>1</int></value>\n</data></array></value>\n\
             <value><array><data/></array></value>\n<value><struct>\n</struct></value>\n</data></array></value>",
        )
        .unwrap();
        assert_eq!(
            value,
            Value::Array(vec![
                Value::Array(vec![Value::Int(1)]),
                Value::Array(vec![]),
                Value::Struct(vec![]),
            ])
        );
        assert_eq!(value.as_array().map(<[Value]>::len), Some(3));
    }

    #[test]
    fn text_entities_cdata_and_comments() {
        assert_eq!(
            decode_value(
                "<value><string>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233;&#xE9;</string></value>"
            ),
            Ok(Value::String("a & b <c> \"d\" 'e' éé".into()))
        );
        assert_eq!(
            decode_value("<value><string>x<![CDATA[<raw>&]]><!-- note -->y</string></value>"),
            Ok(Value::String("x<raw>&y".into()))
        );
        assert_eq!(
            decode_value("<value><string>line1\r\nline2&#13;</string></value>"),
            Ok(Value::String("line1\nline2\r".into()))
        );
    }

    #[test]
    fn fault_reply() {
        let body = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n\
                    <member>\n<name>faultCode</name>\n<value><int>10</int></value>\n</member>\n\
                    <member>\n<name>faultString</name>\n<value><string>BAD_NAME</string></value>\n</member>\n\
                    </struct></value>\n</fault>\n</methodResponse>\n";
        let fault = decode_response(body.as_bytes()).unwrap().unwrap_err();
        assert_eq!(
            fault,
            Fault {
                code: 10,
                message: "BAD_NAME".into()
            }
        );
        assert_eq!(fault.to_string(), "10 BAD_NAME");
    }

    #[test]
    fn fault_without_fields_is_an_error() {
        let body = "<methodResponse><fault><value><struct><member><name>faultCode</name>\
                    <value><string>x</string></value></member></struct></value></fault></methodResponse>";
        assert_eq!(decode_response(body.as_bytes()), Err(DecodeError::BadFault));
    }

    #[test]
    fn round_trip_of_every_type_with_escaping() {
        let value = Value::Struct(vec![
            (
                "tricky <&> name".into(),
                Value::String("a<b>&c \"q\" 'a' ]]> \r\n\t é 🦀".into()),
            ),
            ("int".into(), Value::Int(-3)),
            ("big".into(), Value::Int(i64::MAX)),
            ("bool".into(), Value::Bool(true)),
            ("double".into(), Value::Double(1e300)),
            ("small".into(), Value::Double(-0.000125)),
            ("date".into(), Value::DateTime("20240101T00:00:00".into())),
            ("bytes".into(), Value::Base64(vec![0, 1, 2, 255])),
            (
                "array".into(),
                Value::Array(vec![Value::Nil, Value::String(String::new())]),
            ),
        ]);
        let decoded = decode_response(encode_response(&value).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(decoded, value);
    }

    #[test]
    fn fault_replies_round_trip() {
        let fault = Fault {
            code: 10,
            message: "BAD_NAME: <x> & y".into(),
        };
        assert_eq!(decode_response(&encode_fault(&fault)), Ok(Err(fault)));
    }

    #[test]
    fn server_text_is_made_printable() {
        assert_eq!(printable("plain text", 40), "plain text");
        assert_eq!(
            printable("a\nWARN forged\r\u{1b}[31m\u{202E}", 40),
            "a\\nWARN forged\\r\\u{1b}[31m\\u{202e}"
        );
        assert_eq!(printable("é🦀xyz", 2), "é🦀...");
        assert_eq!(printable("", 0), "");
        let fault = Fault {
            code: 2,
            message: format!("one\ntwo{}", "z".repeat(1000)),
        };
        let shown = fault.to_string();
        assert!(
            shown.starts_with("2 one\\ntwozzz") && shown.ends_with("..."),
            "{shown}"
        );
        assert_eq!(
            shown.chars().count(),
            "2 ".len() + MESSAGE_LIMIT + 1 + "...".len()
        );
    }

    #[test]
    fn hostile_names_in_errors_are_cut_and_escaped() {
        let long = "t".repeat(100_000);
        let Err(DecodeError::Unexpected { found, .. }) =
            decode_response(format!("<{long}/>").as_bytes())
        else {
            panic!("expected an unexpected-element error");
        };
        assert_eq!(found, format!("<{}.../>", "t".repeat(QUOTE_LIMIT)));
        let Err(DecodeError::Xml { reason, .. }) = decode_response(
            format!("<methodResponse><params><param><value><int>1</{long}>").as_bytes(),
        ) else {
            panic!("expected an XML error");
        };
        assert!(reason.chars().count() <= MESSAGE_LIMIT + 3, "{reason}");
    }

    #[test]
    fn unrepresentable_characters_are_replaced() {
        let mut out = String::new();
        escape_into(&mut out, "a\u{1}b\u{FFFF}c");
        assert_eq!(out, "a\u{FFFD}b\u{FFFD}c");
    }

    #[test]
    fn encode_call_is_well_formed() {
        let body = encode_call(
            "supervisor.getProcessInfo",
            &[Value::String("web&<1>".into())],
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.getProcessInfo</methodName>\
             <params><param><value><string>web&amp;&lt;1&gt;</string></value></param></params></methodCall>\n"
        );
        let body = encode_call("supervisor.getState", &[]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.getState</methodName>\
             <params></params></methodCall>\n"
        );
    }

    #[test]
    fn encode_multicall_shape() {
        let body = encode_multicall(&[
            ("supervisor.getState", &[]),
            ("supervisor.getProcessInfo", &[Value::String("a".into())]),
        ]);
        let expected = "<?xml version=\"1.0\"?>\n<methodCall><methodName>system.multicall</methodName><params>\
            <param><value><array><data>\
            <value><struct><member><name>methodName</name><value><string>supervisor.getState</string></value></member>\
            <member><name>params</name><value><array><data></data></array></value></member></struct></value>\
            <value><struct><member><name>methodName</name><value><string>supervisor.getProcessInfo</string></value></member>\
            <member><name>params</name><value><array><data><value><string>a</string></value></data></array></value></member></struct></value>\
            </data></array></value></param></params></methodCall>\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }

    #[test]
    fn split_multicall_values_and_faults() {
        let fault = Value::Struct(vec![
            ("faultCode".into(), Value::Int(1)),
            ("faultString".into(), Value::String("UNKNOWN_METHOD".into())),
        ]);
        let state = Value::Struct(vec![("statecode".into(), Value::Int(1))]);
        let value = Value::Array(vec![
            Value::Array(vec![Value::Int(1)]),
            fault,
            state.clone(),
        ]);
        assert_eq!(
            split_multicall(value),
            Ok(vec![
                Ok(Value::Array(vec![Value::Int(1)])),
                Err(Fault {
                    code: 1,
                    message: "UNKNOWN_METHOD".into()
                }),
                Ok(state),
            ])
        );
        assert_eq!(
            split_multicall(Value::Int(3)),
            Err(DecodeError::BadMulticall(
                "expected an array, found an int".into()
            ))
        );
    }

    #[test]
    fn multicall_wrappers_are_removed_only_when_present() {
        let proc_struct = Value::Struct(vec![("name".into(), Value::String("a".into()))]);
        // supervisord's bare form: a one-process array stays as it is.
        let bare = Value::Array(vec![proc_struct.clone()]);
        assert_eq!(unwrap_multicall(bare.clone(), true), bare);
        // The conventional form wraps the array once more.
        let wrapped = Value::Array(vec![bare.clone()]);
        assert_eq!(unwrap_multicall(wrapped, true), bare);
        let empty_wrapped = Value::Array(vec![Value::Array(vec![])]);
        assert_eq!(unwrap_multicall(empty_wrapped, true), Value::Array(vec![]));
        // Scalars and structs: bare or wrapped.
        let version = Value::String("4.3.0".into());
        assert_eq!(unwrap_multicall(version.clone(), false), version);
        assert_eq!(
            unwrap_multicall(Value::Array(vec![version.clone()]), false),
            version
        );
    }

    #[test]
    fn html_replies_are_recognised() {
        let html = DecodeError::Html;
        for body in [
            "<!DOCTYPE html>\n<html><body>Supervisor Status</body></html>",
            "  \n<!doctype HTML PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\">",
            "<HTML><head></head></HTML>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"x\">\n<html/>",
            "<?xml version=\"1.0\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><body/></html>",
        ] {
            assert_eq!(decode_response(body.as_bytes()), Err(html.clone()), "{body}");
        }
        assert_eq!(
            html.to_string(),
            "the reply is an HTML page, not XML-RPC: is the URL missing /RPC2?"
        );
    }

    #[test]
    fn dtd_and_entity_expansion_are_refused() {
        let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n\
                      <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n\
                      <methodResponse><params><param><value><string>&lol2;</string></value></param></params></methodResponse>";
        assert_eq!(decode_response(laughs.as_bytes()), Err(DecodeError::Dtd));
        assert_eq!(
            decode_value("<value><string>&lol9;</string></value>"),
            Err(DecodeError::UnknownEntity("lol9".into()))
        );
        let external = "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><methodResponse/>";
        assert_eq!(decode_response(external.as_bytes()), Err(DecodeError::Dtd));
    }

    #[test]
    fn bad_character_references_are_errors() {
        assert!(matches!(
            decode_value("<value><string>&#0;</string></value>"),
            Err(DecodeError::Xml { .. })
        ));
        assert!(matches!(
            decode_value("<value><string>&#xZZ;</string></value>"),
            Err(DecodeError::Xml { .. })
        ));
    }

    #[test]
    fn nesting_is_capped() {
        let nested = |levels: usize| {
            let mut xml = String::new();
            for _ in 0..levels {
                xml.push_str("<value><array><data>");
            }
            for _ in 0..levels {
                xml.push_str("</data></array></value>");
            }
            xml
        };
        assert!(decode_value(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(
            decode_value(&nested(MAX_DEPTH + 1)),
            Err(DecodeError::TooDeep { limit: MAX_DEPTH })
        );
        // Far deeper input fails at the cap, without reading (or recursing) any further.
        assert_eq!(
            decode_value(&nested(100_000)),
            Err(DecodeError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut body = response("<value><string>caf").into_bytes();
        let at = body.len();
        body.extend_from_slice(b"\xE9</string></value>");
        assert_eq!(decode_response(&body), Err(DecodeError::InvalidUtf8 { at }));
    }

    #[test]
    fn bad_scalars_are_errors() {
        let cases = [
            ("<value><int>12a</int></value>", "int", "12a"),
            ("<value><int></int></value>", "int", ""),
            (
                "<value><int>99999999999999999999</int></value>",
                "int",
                "99999999999999999999",
            ),
            ("<value><boolean>true</boolean></value>", "boolean", "true"),
            ("<value><double>1.2.3</double></value>", "double", "1.2.3"),
            ("<value><double>inf</double></value>", "double", "inf"),
            ("<value><double>NaN</double></value>", "double", "NaN"),
        ];
        for (xml, kind, text) in cases {
            assert_eq!(
                decode_value(xml),
                Err(DecodeError::BadScalar {
                    kind,
                    text: text.into()
                }),
                "{xml}"
            );
        }
        assert!(matches!(
            decode_value("<value><base64>!!!</base64></value>"),
            Err(DecodeError::BadBase64(_))
        ));
    }

    #[test]
    fn long_quotes_are_cut() {
        let long = "x".repeat(200);
        let Err(DecodeError::BadScalar { text, .. }) =
            decode_value(&format!("<value><int>{long}</int></value>"))
        else {
            panic!("expected a scalar error");
        };
        assert_eq!(text, format!("{}...", "x".repeat(QUOTE_LIMIT)));
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        for tail in ["garbage", "<methodResponse/>", "<!-- ok --><x/>"] {
            let body = format!("{}{tail}", response("<value><int>1</int></value>"));
            assert_eq!(
                decode_response(body.as_bytes()),
                Err(DecodeError::TrailingContent),
                "{tail}"
            );
        }
        let body = format!("{}<!-- fine -->\n", response("<value><int>1</int></value>"));
        assert_eq!(decode_response(body.as_bytes()), Ok(Ok(Value::Int(1))));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(decode_response(b""), Err(DecodeError::Empty));
        assert_eq!(decode_response(b" \n"), Err(DecodeError::Empty));
        assert_eq!(
            decode_response(b"Unauthorized"),
            Err(DecodeError::Unexpected {
                expected: "<methodResponse>",
                found: "text 'Unauthorized'".into()
            })
        );
        assert_eq!(
            decode_response(b"<methodCall/>"),
            Err(DecodeError::Unexpected {
                expected: "<methodResponse>",
                found: "<methodCall/>".into()
            })
        );
        assert_eq!(
            decode_value("<value><float>1</float></value>"),
            Err(DecodeError::UnknownType("float".into()))
        );
        assert_eq!(
            decode_value("<value>x<int>1</int></value>"),
            Err(DecodeError::Unexpected {
                expected: "a value type or </value>",
                found: "text 'x'".into()
            })
        );
        assert!(matches!(
            decode_response(b"<methodResponse><params><param><value><int>1</int></value></param>"),
            Err(DecodeError::Xml { .. }) | Err(DecodeError::Unexpected { .. })
        ));
        assert!(matches!(
            decode_response(b"<methodResponse><params></params></methodResponse>"),
            Err(DecodeError::Unexpected { .. })
        ));
        assert!(matches!(
            decode_value("<value><int>1</string></value>"),
            Err(DecodeError::Xml { .. })
        ));
    }

    #[test]
    fn truncated_and_corrupted_replies_are_errors_not_panics() {
        let value = Value::Array(vec![Value::Struct(vec![
            ("name".into(), Value::String("a&b".into())),
            ("pid".into(), Value::Int(7)),
            ("ok".into(), Value::Bool(true)),
            ("bytes".into(), Value::Base64(vec![1, 2, 3])),
        ])]);
        let body = encode_response(&value);
        let bytes = body.as_bytes();
        let full_len = body.trim_end().len();
        for cut in 0..full_len {
            let prefix = bytes.get(..cut).unwrap_or_default();
            assert!(decode_response(prefix).is_err(), "prefix of {cut} bytes");
        }
        for at in 0..bytes.len() {
            for replacement in [b'<', b'>', b'&', b'/', b'x', 0xFF] {
                let mut corrupted = bytes.to_vec();
                if let Some(byte) = corrupted.get_mut(at) {
                    *byte = replacement;
                }
                let _ = decode_response(&corrupted);
            }
        }
    }

    #[test]
    fn encodings() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><params><param>\
                    <value><int>1</int></value></param></params></methodResponse>";
        assert_eq!(decode_response(body.as_bytes()), Ok(Ok(Value::Int(1))));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(body.as_bytes());
        assert_eq!(decode_response(&bom), Ok(Ok(Value::Int(1))));
        let latin = body.replace("UTF-8", "ISO-8859-1");
        assert_eq!(
            decode_response(latin.as_bytes()),
            Err(DecodeError::UnsupportedEncoding("ISO-8859-1".into()))
        );
    }
}
