//! OTLP/HTTP: protobuf or JSON bodies POSTed to the resolved `/v1/metrics` or `/v1/logs` URL.
//! Both signals share the exporter's client, so its connection pool.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{
    HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

use super::error::{ExportBuildError, ExportError};
use super::{
    partial_success, redact_endpoint, rpc_status, tls, Accepted, EncodedRequest, PartialSuccess,
};
use crate::settings::{OtlpSettings, Signal};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// Replies are a status message or a partial-success count; anything longer is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a non-OTLP error body (an HTML page from a proxy) goes into the message.
const MAX_ERROR_TEXT: usize = 200;
/// Idle keep-alive connections are dropped after this; longer than any sane interval.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One URL: as shown in messages (without credentials), and parsed.
#[derive(Debug)]
struct Target {
    endpoint: String,
    uri: Uri,
}

impl Target {
    fn new(url: &str) -> Result<Target, ExportBuildError> {
        let endpoint = redact_endpoint(url);
        let invalid = |reason: String| ExportBuildError::InvalidEndpoint {
            endpoint: endpoint.clone(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(invalid("the scheme must be http or https".into())),
        }
        Ok(Target { endpoint, uri })
    }
}

#[derive(Debug)]
pub struct HttpExporter {
    /// Where metrics go (`endpoint`).
    metrics: Target,
    /// Where logs go (`logs_endpoint`); `None` when the exporter carries no logs.
    logs: Option<Target>,
    json: bool,
    gzip: bool,
    /// User headers, values marked sensitive so `Debug` hides them.
    headers: HeaderMap,
    timeout: Duration,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpExporter {
    pub fn new(settings: &OtlpSettings, json: bool) -> Result<Self, ExportBuildError> {
        let metrics = Target::new(&settings.endpoint)?;
        let logs = if settings.signals.contains(&Signal::Logs) {
            Some(Target::new(&settings.logs_endpoint)?)
        } else {
            None
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(&settings.tls)?)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(HttpExporter {
            metrics,
            logs,
            json,
            gzip: settings.gzip,
            headers: headers(settings)?,
            timeout: settings.timeout,
            client,
        })
    }

    /// The metrics URL, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.metrics.endpoint
    }

    /// The URL `signal` goes to, without credentials (the metrics URL for logs when the exporter
    /// carries none).
    pub fn endpoint_of(&self, signal: Signal) -> &str {
        &self.target(signal).endpoint
    }

    fn target(&self, signal: Signal) -> &Target {
        match (signal, &self.logs) {
            (Signal::Logs, Some(logs)) => logs,
            _ => &self.metrics,
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    pub async fn export(
        &self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<Accepted, ExportError> {
        self.export_encoded(Signal::Metrics, &EncodedRequest::from_message(request))
            .await
    }

    /// POSTs a request of `signal` to the signal's URL. An exporter that carries no logs has no
    /// logs URL: a logs request is refused as unencodable rather than sent to the metrics URL.
    pub async fn export_encoded(
        &self,
        signal: Signal,
        request: &EncodedRequest,
    ) -> Result<Accepted, ExportError> {
        let target = match (signal, &self.logs) {
            (Signal::Logs, None) => {
                return Err(ExportError::Encode {
                    endpoint: self.metrics.endpoint.clone(),
                    message: "this exporter carries no logs".into(),
                })
            }
            _ => self.target(signal),
        };
        let endpoint = target.endpoint.as_str();
        let body = self.encode(signal, endpoint, request)?;
        let mut http_request = Request::builder()
            .method(Method::POST)
            .uri(target.uri.clone())
            .body(Full::new(body))
            .map_err(|e| encode_error(endpoint, e.to_string()))?;
        let headers = http_request.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        let content_type = if self.json { JSON } else { PROTOBUF };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if self.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }

        let exchange = async {
            let response = self
                .client
                .request(http_request)
                .await
                .map_err(|e| transport_error(endpoint, &e))?;
            let (parts, body) = response.into_parts();
            // An unreadable or oversized body is treated as empty: the status decides.
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, ExportError>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ExportError::Timeout {
                endpoint: endpoint.to_string(),
                timeout: self.timeout,
            })??;

        let json_reply = is_json(&parts.headers);
        if parts.status.is_success() {
            let partial = if json_reply {
                partial_success_from_json(signal, &body)
            } else {
                partial_success_from_protobuf(signal, &body)
            };
            return Ok(partial_success(endpoint, signal, partial.as_ref()));
        }
        Err(ExportError::HttpStatus {
            endpoint: endpoint.to_string(),
            status: parts.status.as_u16(),
            message: error_message(&parts, &body, json_reply),
            retry_after: retry_after(&parts.headers),
        })
    }

    /// The body: the protobuf bytes as they are, or the request decoded as its signal's
    /// message and written as OTLP/JSON; gzipped when configured.
    fn encode(
        &self,
        signal: Signal,
        endpoint: &str,
        request: &EncodedRequest,
    ) -> Result<Bytes, ExportError> {
        let failed = |e: &dyn std::fmt::Display| encode_error(endpoint, e.to_string());
        let body = if self.json {
            let json = match signal {
                Signal::Metrics => serde_json::to_vec(&request.decode().map_err(|e| failed(&e))?),
                Signal::Logs => serde_json::to_vec(&request.decode_logs().map_err(|e| failed(&e))?),
            };
            Bytes::from(json.map_err(|e| failed(&e))?)
        } else {
            request.bytes().clone()
        };
        if !self.gzip {
            return Ok(body);
        }
        let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        encoder
            .write_all(&body)
            .and_then(|()| encoder.finish())
            .map(Bytes::from)
            .map_err(|e| encode_error(endpoint, format!("gzip: {e}")))
    }
}

fn encode_error(endpoint: &str, message: String) -> ExportError {
    ExportError::Encode {
        endpoint: endpoint.to_string(),
        message,
    }
}

/// The whole source chain: hyper's top-level text ("client error (Connect)") says little.
fn transport_error(endpoint: &str, error: &(dyn std::error::Error + 'static)) -> ExportError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ExportError::HttpTransport {
        endpoint: endpoint.to_string(),
        message,
    }
}

const USER_AGENT_VALUE: &str = concat!("supervisord-receiver/", env!("CARGO_PKG_VERSION"));

fn headers(settings: &OtlpSettings) -> Result<HeaderMap, ExportBuildError> {
    let mut map = HeaderMap::with_capacity(settings.headers.len());
    for (name, value) in &settings.headers {
        let invalid = |reason: &str| ExportBuildError::InvalidHeader {
            name: name.clone(),
            reason: reason.to_string(),
        };
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("not a valid HTTP header name"))?;
        let mut header_value = HeaderValue::from_str(value.expose())
            .map_err(|_| invalid("the value is not valid in a header"))?;
        header_value.set_sensitive(true);
        map.append(header_name, header_value);
    }
    Ok(map)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(JSON))
}

/// Servers should send `Retry-After: <seconds>` with 429/503; the HTTP-date form is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// The `google.rpc.Status` message of an OTLP error body, or the start of whatever text a proxy
/// sent, or the status's reason phrase.
fn error_message(parts: &http::response::Parts, body: &[u8], json: bool) -> String {
    let details = if json {
        rpc_status::decode_json(body)
    } else {
        rpc_status::decode_protobuf(body)
    };
    if let Some(message) = details.message {
        return message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() && !text.contains('\u{FFFD}') {
        return truncate(text, MAX_ERROR_TEXT);
    }
    parts
        .status
        .canonical_reason()
        .unwrap_or("no message")
        .to_string()
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// The `partial_success` of a protobuf reply: the two responses differ only in their field
/// names, so each is decoded as its own type.
fn partial_success_from_protobuf(signal: Signal, body: &[u8]) -> Option<PartialSuccess> {
    match signal {
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()?
            .partial_success
            .map(|p| PartialSuccess {
                rejected: p.rejected_data_points,
                error_message: p.error_message,
            }),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()?
            .partial_success
            .map(|p| PartialSuccess {
                rejected: p.rejected_log_records,
                error_message: p.error_message,
            }),
    }
}

/// OTLP/JSON encodes int64 as a string, but servers differ; both forms are accepted. The count
/// is `rejectedDataPoints` for metrics, `rejectedLogRecords` for logs.
fn partial_success_from_json(signal: Signal, body: &[u8]) -> Option<PartialSuccess> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let partial = value.get("partialSuccess")?;
    let field = match signal {
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let rejected = match partial.get(field) {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let message = partial
        .get("errorMessage")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    Some(PartialSuccess {
        rejected: rejected.unwrap_or(0),
        error_message: message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::secret::Secret;
    use crate::settings::{OtlpProtocol, TlsSettings};

    fn settings(endpoint: &str) -> OtlpSettings {
        OtlpSettings {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: endpoint.into(),
            logs_endpoint: endpoint.replace("/v1/metrics", "/v1/logs"),
            signals: Signal::ALL.to_vec(),
            headers: vec![("x-api-key".into(), Secret::new("hunter2"))],
            gzip: true,
            timeout: Duration::from_secs(5),
            tls: TlsSettings::default(),
            name: "otlp".into(),
            delivery: Default::default(),
        }
    }

    #[test]
    fn debug_output_hides_header_values() {
        let exporter = HttpExporter::new(&settings("http://localhost:4318/v1/metrics"), false)
            .expect("valid settings");
        let text = format!("{exporter:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn endpoint_must_be_http() {
        let err = HttpExporter::new(&settings("ftp://x/v1/metrics"), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid OTLP endpoint 'ftp://x/v1/metrics': the scheme must be http or https"
        );
    }

    #[test]
    fn partial_success_accepts_string_and_number_counts() {
        let p = partial_success_from_json(
            Signal::Metrics,
            br#"{"partialSuccess":{"rejectedDataPoints":"3","errorMessage":"bad"}}"#,
        )
        .unwrap();
        assert_eq!((p.rejected, p.error_message.as_str()), (3, "bad"));
        let p = partial_success_from_json(
            Signal::Metrics,
            br#"{"partialSuccess":{"rejectedDataPoints":4}}"#,
        )
        .unwrap();
        assert_eq!(p.rejected, 4);
        assert!(partial_success_from_json(Signal::Metrics, b"{}").is_none());
        let p = partial_success_from_json(
            Signal::Logs,
            br#"{"partialSuccess":{"rejectedLogRecords":"5","errorMessage":"too old"}}"#,
        )
        .unwrap();
        assert_eq!((p.rejected, p.error_message.as_str()), (5, "too old"));
    }

    #[test]
    fn partial_success_of_either_signal_decodes_from_protobuf() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let body = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 7,
                error_message: "dropped".into(),
            }),
        }
        .encode_to_vec();
        let p = partial_success_from_protobuf(Signal::Logs, &body).unwrap();
        assert_eq!((p.rejected, p.error_message.as_str()), (7, "dropped"));
        assert!(partial_success_from_protobuf(Signal::Logs, b"").is_none());
    }

    #[test]
    fn error_text_is_bounded() {
        let long = "x".repeat(500);
        assert_eq!(truncate(&long, 200).len(), 203);
        assert_eq!(truncate("short", 200), "short");
    }
}
