//! The request side of a simulated supervisord: HTTP/1.1 requests with a Content-Length body
//! (what the receiver sends) and the XML-RPC calls they carry. Pure functions on bytes.

use crate::reply::Call;

/// A request larger than this is not a poll: the connection is closed.
pub const MAX_REQUEST: usize = 1 << 20;

#[derive(Debug, PartialEq)]
pub struct Request {
    /// `POST /RPC2`; anything else gets a 404.
    pub rpc2: bool,
    pub body_start: usize,
    /// One past the request's last byte.
    pub end: usize,
    pub close: bool,
}

#[derive(Debug, PartialEq)]
pub enum Parsed {
    Complete(Request),
    Partial,
    Invalid,
}

/// An HTTP/1.1 request with a Content-Length body (what the receiver sends).
pub fn parse_request(input: &[u8]) -> Parsed {
    let Some(head_end) = find(input, b"\r\n\r\n", 0) else {
        return Parsed::Partial;
    };
    let Ok(head) = std::str::from_utf8(input.get(..head_end).unwrap_or(&[])) else {
        return Parsed::Invalid;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let rpc2 = parts.next() == Some("POST") && parts.next() == Some("/RPC2");
    let mut length = 0usize;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Invalid;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(n) => length = n,
                Err(_) => return Parsed::Invalid,
            }
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Invalid;
        }
    }
    let body_start = head_end + 4;
    let end = body_start.saturating_add(length);
    if end > MAX_REQUEST {
        return Parsed::Invalid;
    }
    if input.len() < end {
        return Parsed::Partial;
    }
    Parsed::Complete(Request {
        rpc2,
        body_start,
        end,
        close,
    })
}

/// The calls of an XML-RPC request, in order; true for a `system.multicall`.
pub fn parse_calls(body: &[u8], calls: &mut Vec<Call>) -> bool {
    calls.clear();
    let Some(method) = between(body, b"<methodName>", b"</methodName>", 0).map(|(m, _)| m) else {
        calls.push(Call::Unknown);
        return false;
    };
    if trim(method) != b"system.multicall" {
        calls.push(Call::from_name(trim(method)));
        return false;
    }
    let mut at = 0;
    while let Some(member) = find(body, b"<name>methodName</name>", at) {
        let Some(value) = find(body, b"<value>", member) else {
            break;
        };
        let value = value + b"<value>".len();
        let (name, next) = if body
            .get(value..)
            .is_some_and(|rest| rest.starts_with(b"<string>"))
        {
            match between(body, b"<string>", b"</string>", value) {
                Some(found) => found,
                None => break,
            }
        } else {
            match between(body, b"", b"</value>", value) {
                Some(found) => found,
                None => break,
            }
        };
        calls.push(Call::from_name(trim(name)));
        at = next;
    }
    true
}

/// The bytes between `open` (searched from `from`) and the next `close`, and where they end.
fn between<'a>(hay: &'a [u8], open: &[u8], close: &[u8], from: usize) -> Option<(&'a [u8], usize)> {
    let start = find(hay, open, from)? + open.len();
    let end = find(hay, close, start)?;
    Some((hay.get(start..end)?, end + close.len()))
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from);
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| at + from)
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_when_complete() {
        let request = b"POST /RPC2 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcPOST";
        assert_eq!(parse_request(&request[..20]), Parsed::Partial);
        assert_eq!(parse_request(&request[..52]), Parsed::Partial);
        assert_eq!(
            parse_request(request),
            Parsed::Complete(Request {
                rpc2: true,
                body_start: 51,
                end: 54,
                close: false
            })
        );
    }

    #[test]
    fn multicall_names_in_request_order() {
        let body = b"<?xml version=\"1.0\"?>\n<methodCall><methodName>system.multicall</methodName>\
            <params><param><value><array><data>\
            <value><struct><member><name>methodName</name><value><string>supervisor.getAllProcessInfo</string></value></member></struct></value>\
            <value><struct><member><name>methodName</name><value>supervisor.getState</value></member></struct></value>\
            <value><struct><member><name>methodName</name><value><string>nope</string></value></member></struct></value>\
            </data></array></value></param></params></methodCall>";
        let mut calls = Vec::new();
        assert!(parse_calls(body, &mut calls));
        assert_eq!(
            calls,
            [Call::GetAllProcessInfo, Call::GetState, Call::Unknown]
        );
        let single = b"<methodCall><methodName>supervisor.getState</methodName></methodCall>";
        assert!(!parse_calls(single, &mut calls));
        assert_eq!(calls, [Call::GetState]);
        // The configuration call as the receiver writes it: alone, not a poll.
        let config = supervisord_receiver::supervisor::xmlrpc::encode_call(
            supervisord_receiver::supervisor::config_info::GET_ALL_CONFIG_INFO,
            &[],
        );
        assert!(!parse_calls(&config, &mut calls));
        assert_eq!(calls, [Call::GetAllConfigInfo]);
    }
}
