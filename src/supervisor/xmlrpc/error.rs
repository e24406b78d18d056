//! Why a reply could not be decoded ([`DecodeError`]), and how text from the server is made
//! safe to quote in those messages and in logs ([`printable`]): a server must not be able to
//! forge a log line or flood one.

/// How much of a fault string or a parser message a log line carries. supervisord's longest
/// fault strings (a failed spawn's reason) fit; a hostile megabyte-long one does not.
pub(super) const MESSAGE_LIMIT: usize = 200;

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
