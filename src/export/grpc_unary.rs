//! One gRPC unary call carrying a message that is already encoded, over a tonic `Channel`.
//!
//! tonic's client would encode the message again on every attempt and compresses gzip at a fixed
//! level 6, which on OTLP data costs five times level 1 for a few percent fewer bytes: for a
//! receiver polling a fleet it was the largest single cost. Here the frame is built from the
//! encoded bytes, compressed at level 1 as the OTLP/HTTP exporter does, and the call's status is
//! read from the trailers (or from the headers of a trailers-only reply) as the gRPC protocol
//! specifies. The channel still does connections, HTTP/2, TLS and load spreading.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower_service::Service;

/// A reply larger than this is not read (an OTLP export response is a few bytes).
const MAX_REPLY_BYTES: usize = 4 << 20;
/// How much of a reply's `grpc-message` is kept.
const MESSAGE_LIMIT: usize = 512;

const USER_AGENT: &str = concat!("supervisord-receiver/", env!("CARGO_PKG_VERSION"), " grpc");

/// What one call sends besides the message.
pub(crate) struct CallOptions<'a> {
    pub path: &'static str,
    pub metadata: &'a [(AsciiMetadataKey, AsciiMetadataValue)],
    pub timeout: Duration,
    pub gzip: bool,
}

/// Sends `message` (protobuf bytes) and returns the reply message's bytes, or the call's
/// non-OK status. Transport failures are `Unavailable`, as tonic reports them; running out of
/// time is `DeadlineExceeded`.
pub(crate) async fn call(
    channel: &Channel,
    message: &Bytes,
    options: &CallOptions<'_>,
) -> Result<Bytes, Status> {
    let request = request(message, options)?;
    let mut channel = channel.clone();
    let exchange = async {
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| transport_status(&e, options.timeout))?;
        let response = channel
            .call(request)
            .await
            .map_err(|e| transport_status(&e, options.timeout))?;
        let (parts, body) = response.into_parts();
        // Trailers-only: an error answered with headers alone.
        if let Some(status) = status_from(&parts.headers) {
            return Err(status);
        }
        if parts.status != StatusCode::OK {
            return Err(Status::new(
                http_status_code(parts.status),
                format!("HTTP status {} from the gRPC backend", parts.status),
            ));
        }
        let collected = Limited::new(body, MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| Status::new(Code::Unavailable, format!("reading the reply: {e}")))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let data = collected.to_bytes();
        match status_from(&trailers) {
            Some(status) => Err(status),
            // OK in the trailers, or in the headers of a trailers-only reply.
            None if trailers.contains_key("grpc-status")
                || parts.headers.contains_key("grpc-status") =>
            {
                reply_message(&data, &parts.headers)
            }
            None => Err(Status::new(
                Code::Unknown,
                "the gRPC reply ended without a grpc-status",
            )),
        }
    };
    match tokio::time::timeout(options.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(Status::new(
            Code::DeadlineExceeded,
            format!("no reply within {:?}", options.timeout),
        )),
    }
}

fn request(
    message: &Bytes,
    options: &CallOptions<'_>,
) -> Result<Request<tonic::body::Body>, Status> {
    let payload = if options.gzip {
        let mut encoder = GzEncoder::new(
            Vec::with_capacity(message.len() / 4 + 64),
            Compression::fast(),
        );
        encoder
            .write_all(message)
            .and_then(|()| encoder.finish())
            .map(Bytes::from)
            .map_err(|e| Status::new(Code::Internal, format!("gzip: {e}")))?
    } else {
        message.clone()
    };
    let length = u32::try_from(payload.len())
        .map_err(|_| Status::new(Code::ResourceExhausted, "message over 4 GiB"))?;
    let mut frame = BytesMut::with_capacity(5 + payload.len());
    frame.put_u8(u8::from(options.gzip));
    frame.put_u32(length);
    frame.put_slice(&payload);

    let mut request = Request::builder()
        .method(http::Method::POST)
        .uri(options.path)
        .body(tonic::body::Body::new(Full::new(frame.freeze())))
        .map_err(|e| Status::new(Code::Internal, e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    headers.insert(
        HeaderName::from_static("grpc-accept-encoding"),
        HeaderValue::from_static("gzip"),
    );
    if options.gzip {
        headers.insert(
            HeaderName::from_static("grpc-encoding"),
            HeaderValue::from_static("gzip"),
        );
    }
    if let Ok(value) = HeaderValue::from_str(&grpc_timeout(options.timeout)) {
        headers.insert(HeaderName::from_static("grpc-timeout"), value);
    }
    for (key, value) in options.metadata {
        if let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(key.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_encoded_bytes()),
        ) {
            value.set_sensitive(true);
            headers.append(name, value);
        }
    }
    Ok(request)
}

/// The deadline as gRPC writes it: at most 8 digits and a unit.
fn grpc_timeout(timeout: Duration) -> String {
    let millis = timeout.as_millis();
    if millis < 100_000_000 {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

/// The status in `headers`, unless absent or OK.
fn status_from(headers: &HeaderMap) -> Option<Status> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    if code == Code::Ok {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    // A details header that does not decode is ignored: the code and message still count.
    let details = headers
        .get("grpc-status-details-bin")
        .and_then(|d| {
            // Binary headers are base64, padded or not.
            let unpadded = d.as_bytes().trim_ascii_end();
            let unpadded = unpadded
                .iter()
                .rposition(|&b| b != b'=')
                .map_or(&unpadded[..0], |end| &unpadded[..=end]);
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(unpadded)
                .ok()
        })
        .map(Bytes::from)
        .unwrap_or_default();
    Some(Status::with_details(code, message, details))
}

/// `grpc-message` is percent-encoded UTF-8; anything else is shown lossily, cut to a bound.
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len().min(MESSAGE_LIMIT));
    let mut i = 0;
    while i < raw.len() && out.len() < MESSAGE_LIMIT {
        let byte = raw[i];
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            byte,
            raw.get(i + 1).and_then(|&b| hex(b)),
            raw.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The one message of a successful reply, decompressed if the server compressed it. An empty
/// body is an empty message.
fn reply_message(data: &Bytes, headers: &HeaderMap) -> Result<Bytes, Status> {
    let Some((&flag, rest)) = data.split_first() else {
        return Ok(Bytes::new());
    };
    let malformed = || Status::new(Code::Internal, "malformed gRPC reply frame");
    let length_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(malformed)?;
    let length = u32::from_be_bytes(length_bytes) as usize;
    let payload = rest.get(4..4 + length).ok_or_else(malformed)?;
    if flag == 0 {
        return Ok(data.slice(5..5 + length));
    }
    let gzip = headers
        .get("grpc-encoding")
        .is_some_and(|e| e.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !gzip {
        return Err(Status::new(
            Code::Internal,
            "the reply is compressed with an encoding that was not offered",
        ));
    }
    let mut out = Vec::new();
    GzDecoder::new(payload)
        .take(MAX_REPLY_BYTES as u64)
        .read_to_end(&mut out)
        .map_err(|e| Status::new(Code::Internal, format!("gunzip of the reply: {e}")))?;
    Ok(Bytes::from(out))
}

/// gRPC's mapping of HTTP statuses, for replies that carry no grpc-status.
fn http_status_code(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// A connection that could not be made or broke: retryable, with every cause named (the
/// top-level error alone is often just "transport error").
///
/// The channel enforces the `grpc-timeout` the request carries (our `timeout`) with a timer of
/// its own, which fires at the same moment as ours and often first: that is the same deadline,
/// reported as ours is (DEADLINE_EXCEEDED, "no reply within 2s"), not as UNAVAILABLE
/// "transport error: timeout expired", which reads like a broken connection.
fn transport_status(error: &(dyn std::error::Error + 'static), timeout: Duration) -> Status {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.is::<tonic::TimeoutExpired>() {
            return Status::new(
                Code::DeadlineExceeded,
                format!("no reply within {timeout:?}"),
            );
        }
        cause = current.source();
    }
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    Status::new(Code::Unavailable, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fit_grpc_timeout() {
        assert_eq!(grpc_timeout(Duration::from_secs(10)), "10000m");
        assert_eq!(grpc_timeout(Duration::from_secs(1_000_000)), "1000000S");
    }

    #[test]
    fn statuses_come_from_headers_and_odd_ones_do_not_panic() {
        let mut headers = HeaderMap::new();
        assert!(status_from(&headers).is_none());
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(status_from(&headers).is_none(), "OK is no error");
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        headers.insert("grpc-message", HeaderValue::from_static("too%20much%zz%"));
        headers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_static("!!not base64"),
        );
        let status = status_from(&headers).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "too much%zz%");
        assert!(status.details().is_empty());
        headers.insert("grpc-status-details-bin", HeaderValue::from_static("AAE"));
        assert_eq!(status_from(&headers).unwrap().details(), [0u8, 1]);
    }

    #[test]
    fn reply_frames_are_checked() {
        let headers = HeaderMap::new();
        assert_eq!(
            reply_message(&Bytes::new(), &headers).unwrap(),
            Bytes::new()
        );
        let frame = Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1]);
        assert_eq!(
            reply_message(&frame, &headers).unwrap(),
            Bytes::from_static(&[8, 1])
        );
        let short = Bytes::from_static(&[0, 0, 0, 0, 9, 8]);
        assert_eq!(
            reply_message(&short, &headers).unwrap_err().code(),
            Code::Internal
        );
        let compressed = Bytes::from_static(&[1, 0, 0, 0, 1, 8]);
        assert!(
            reply_message(&compressed, &headers).is_err(),
            "gzip not announced"
        );
    }

    /// The channel's timer and ours end the same deadline; either way it reads as ours.
    #[test]
    fn the_channels_deadline_is_reported_as_a_deadline() {
        #[derive(Debug)]
        struct Wrapped(tonic::TimeoutExpired);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("transport error")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let status = transport_status(&Wrapped(tonic::TimeoutExpired(())), Duration::from_secs(2));
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), "no reply within 2s");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = transport_status(&refused, Duration::from_secs(2));
        assert_eq!(status.code(), Code::Unavailable);
    }
}
