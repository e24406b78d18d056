//! The XML-RPC data model: [`Value`], what a call carries and a reply returns, and [`Fault`],
//! a server's refusal. Shared by the encoder, the decoder and the typed model's builders.

use std::fmt;

use super::error::{printable, MESSAGE_LIMIT};

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

impl Fault {
    /// A `{faultCode: int, faultString: string}` struct, as in a fault reply or a multicall result.
    pub(super) fn from_value(value: &Value) -> Option<Fault> {
        let code = value.get("faultCode")?.as_i64()?;
        let message = value.get("faultString")?.as_str()?.to_owned();
        Some(Fault { code, message })
    }
}
