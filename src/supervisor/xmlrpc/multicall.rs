//! `system.multicall`: several calls in one round trip, which is how a poll asks supervisord
//! for everything at once. Encodes the call, and splits the reply into one answer per call,
//! accepting both supervisord's bare results and the conventional one-element wrappers.

use super::encode::{call_prologue, escape_into, write_value, CALL_EPILOGUE};
use super::{DecodeError, Fault, Value};

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
