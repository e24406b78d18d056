//! The decoder: a hardened, allocation-proportional reader of `methodResponse`s.
//!
//! It accepts what XML-RPC servers (supervisord's marshaller included) emit and refuses what a
//! hostile or misconfigured peer could use against us: no DTD, no entity other than the five
//! predefined ones and character references, a nesting cap, strict UTF-8, strict scalars,
//! nothing after the root element. It reads quick-xml's borrowed events, so text that needs no
//! unescaping is copied once, into the [`Value`] that owns it.

use std::borrow::Cow;

use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::error::MESSAGE_LIMIT;
use super::{printable, DecodeError, Fault, Value};

/// Deeper nesting of structs and arrays is refused: supervisord's replies nest three levels, and
/// the cap bounds the decoder's recursion whatever the input.
pub const MAX_DEPTH: usize = 64;

/// How much of an offending text an error quotes; enough to recognise it in a log.
pub(super) const QUOTE_LIMIT: usize = 40;

/// Decodes a `methodResponse`: `Ok(Ok(value))` for a result, `Ok(Err(fault))` for a fault.
pub fn decode_response(body: &[u8]) -> Result<Result<Value, Fault>, DecodeError> {
    decode(body, LineEnds::Normalized)
}

/// [`decode_response`], with the carriage returns of strings kept as sent.
///
/// XML parsers turn `\r\n` and `\r` in text into `\n` (XML 1.0, 2.11), and supervisord's
/// marshaller sends them raw: a string then has fewer bytes than the log window it holds, and
/// a tail that moves its offset by the string's length would read the same bytes twice. The
/// log calls decode with this instead.
pub fn decode_response_keeping_line_ends(body: &[u8]) -> Result<Result<Value, Fault>, DecodeError> {
    decode(body, LineEnds::AsSent)
}

/// What becomes of line ends in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnds {
    /// `\r\n` and `\r` become `\n`, as XML requires.
    Normalized,
    AsSent,
}

fn decode(body: &[u8], line_ends: LineEnds) -> Result<Result<Value, Fault>, DecodeError> {
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
    let mut parser = Parser::new(text, line_ends);
    let result = parser.response()?;
    parser.end_of_document()?;
    Ok(result)
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
    line_ends: LineEnds,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, line_ends: LineEnds) -> Self {
        Parser {
            reader: Reader::from_str(text),
            pending: None,
            line_ends,
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
            Event::Text(text) if self.line_ends == LineEnds::AsSent => {
                text.decode().map_err(encoding_error)
            }
            Event::CData(cdata) if self.line_ends == LineEnds::AsSent => {
                cdata.decode().map_err(encoding_error)
            }
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
