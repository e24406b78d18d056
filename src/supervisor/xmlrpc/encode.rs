//! The encoder: `methodCall`s for supervisord, and `methodResponse`s (results and faults) for
//! the tools and tests that play supervisord. Output is always well-formed XML, whatever the
//! strings carry.

use base64::Engine as _;

use super::{Fault, Value};

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
pub(super) const CALL_EPILOGUE: &str = "</params></methodCall>\n";

pub(super) fn call_prologue(method: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName><params>");
    out
}

/// Writes `<value>...</value>`. Recursive: meant for values we build, not for unbounded input.
pub(super) fn write_value(out: &mut String, value: &Value) {
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
pub(super) fn escape_into(out: &mut String, text: &str) {
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
