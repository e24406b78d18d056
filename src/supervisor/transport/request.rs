//! Request assembly: the parts of a request that can fail or be computed ahead (the `/RPC2`
//! URI, the `Host` and `Authorization` header values) are made once, when the transport is
//! built; each post only puts a request together from them, in the form its connection takes
//! (one buffer for the direct connection, an `http::Request` for hyper's pool).

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;

use super::{RequestBody, RpcTransport, TransportBuildError};
use crate::settings::Endpoint;

/// supervisord serves XML-RPC on this path only.
const RPC_PATH: &str = "/RPC2";

const USER_AGENT_VALUE: &str = concat!("supervisord-receiver/", env!("CARGO_PKG_VERSION"));

impl RpcTransport {
    /// The direct connection's request: the head and body in one buffer, for one write.
    pub(super) fn direct_request(&self, body: &[u8]) -> Vec<u8> {
        let mut request = Vec::with_capacity(256 + body.len());
        request.extend_from_slice(b"POST ");
        request.extend_from_slice(RPC_PATH.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(self.host.as_bytes());
        request.extend_from_slice(b"\r\nContent-Type: text/xml\r\nContent-Length: ");
        request.extend_from_slice(body.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\nUser-Agent: ");
        request.extend_from_slice(USER_AGENT_VALUE.as_bytes());
        if let Some(authorization) = &self.authorization {
            request.extend_from_slice(b"\r\nAuthorization: ");
            request.extend_from_slice(authorization.as_bytes());
        }
        if !self.keep_alive {
            request.extend_from_slice(b"\r\nConnection: close");
        }
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
        request
    }

    /// The request for hyper's pool.
    pub(super) fn request(&self, body: Bytes) -> Request<RequestBody> {
        let length = HeaderValue::from(body.len());
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        headers.insert(CONTENT_LENGTH, length);
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        if !self.keep_alive {
            // The server closes first, so its side keeps the TIME_WAIT, not ours.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        request
    }
}

pub(super) fn tcp_uri(endpoint: &Endpoint) -> Result<(Uri, HeaderValue), TransportBuildError> {
    let base = endpoint.display();
    let invalid = |reason: String| TransportBuildError::Endpoint {
        endpoint: base.clone(),
        reason,
    };
    let uri = Uri::try_from(format!("{base}{RPC_PATH}")).map_err(|e| invalid(e.to_string()))?;
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("no host".to_owned()))?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| invalid(e.to_string()))?;
    Ok((uri, host))
}

/// hyperlocal's form, `unix://<hex of the socket path>:0/RPC2`, built here because
/// `hyperlocal::Uri::new` panics on a URI too long to parse. The path must be UTF-8: hyperlocal
/// decodes it lossily and would connect to another file.
pub(super) fn unix_uri(path: &Path) -> Result<Uri, TransportBuildError> {
    let invalid = |reason: &str| TransportBuildError::Endpoint {
        endpoint: format!("unix://{}", path.display()),
        reason: reason.to_owned(),
    };
    let utf8 = path
        .to_str()
        .ok_or_else(|| invalid("socket path is not UTF-8"))?;
    let mut uri = String::with_capacity(16 + 2 * utf8.len());
    uri.push_str("unix://");
    for byte in utf8.bytes() {
        // Writing to a String cannot fail.
        let _ = write!(uri, "{byte:02x}");
    }
    uri.push_str(":0");
    uri.push_str(RPC_PATH);
    Uri::try_from(uri).map_err(|e| invalid(&e.to_string()))
}

pub(super) fn basic_auth(
    username: &str,
    password: &str,
) -> Result<HeaderValue, TransportBuildError> {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| TransportBuildError::Credentials)?;
    value.set_sensitive(true);
    Ok(value)
}
