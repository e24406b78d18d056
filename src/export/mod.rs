//! Exporters: OTLP over gRPC, HTTP/protobuf, HTTP/JSON, and the debug exporter.
//!
//! Each exporter is built once from its settings (all validation happens there) and then only
//! exports. One attempt per call; whether to retry is the caller's decision, helped by
//! [`ExportError::is_retryable`]: the pipeline puts a sending queue and a retrying sender in
//! front of each OTLP exporter, one pair per signal it carries.
//!
//! Two signals go through the same exporters: metrics and logs. Their requests have the same
//! shape on the wire (a repeated resource field, number 1; a partial success with the rejected
//! count as field 1 and the message as field 2), so everything up to the send is shared; what
//! differs is the gRPC method, the HTTP URL, the JSON and debug renderings, and the words
//! (data points, log records).
mod backoff;
mod batch;
pub mod debug;
mod encoded;
pub mod error;
pub mod grpc;
mod grpc_unary;
pub mod http;
pub mod pipeline;
mod queue;
mod rpc_status;
mod sender;
mod tls;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use crate::settings::{DebugVerbosity, ExporterSettings, OtlpProtocol, Signal};
pub use debug::DebugExporter;
pub use encoded::EncodedRequest;
pub use error::{ExportBuildError, ExportError};
pub use grpc::GrpcExporter;
pub use http::HttpExporter;

/// The OTLP exporters are boxed: they hold clients and TLS state several hundred bytes large,
/// and the runner keeps a list of exporters of mixed kinds.
#[derive(Debug)]
pub enum Exporter {
    Grpc(Box<GrpcExporter>),
    Http(Box<HttpExporter>),
    Debug(DebugExporter),
}

impl Exporter {
    pub fn new(settings: &ExporterSettings) -> Result<Exporter, ExportBuildError> {
        Ok(match settings {
            ExporterSettings::Otlp(otlp) => match otlp.protocol {
                OtlpProtocol::Grpc => Exporter::Grpc(Box::new(GrpcExporter::new(otlp)?)),
                OtlpProtocol::HttpProtobuf => {
                    Exporter::Http(Box::new(HttpExporter::new(otlp, false)?))
                }
                OtlpProtocol::HttpJson => Exporter::Http(Box::new(HttpExporter::new(otlp, true)?)),
            },
            ExporterSettings::Debug { verbosity } => {
                Exporter::Debug(DebugExporter::new(*verbosity))
            }
        })
    }

    /// Sends (or prints) a metrics request.
    pub async fn export(
        &self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<Accepted, ExportError> {
        match self {
            Exporter::Debug(debug) => debug
                .export(request)
                .map(|()| Accepted::default())
                .map_err(ExportError::Stdout),
            _ => {
                self.export_encoded(Signal::Metrics, &EncodedRequest::from_message(request))
                    .await
            }
        }
    }

    /// Sends (or prints) a logs request.
    pub async fn export_logs(
        &self,
        request: &ExportLogsServiceRequest,
    ) -> Result<Accepted, ExportError> {
        match self {
            Exporter::Debug(debug) => debug
                .export_logs(request)
                .map(|()| Accepted::default())
                .map_err(ExportError::Stdout),
            _ => {
                self.export_encoded(Signal::Logs, &EncodedRequest::from_logs(request))
                    .await
            }
        }
    }

    /// Sends a request of `signal` the pipeline already encoded: as is over gRPC and
    /// HTTP/protobuf, to the signal's gRPC method or HTTP URL.
    pub async fn export_encoded(
        &self,
        signal: Signal,
        request: &EncodedRequest,
    ) -> Result<Accepted, ExportError> {
        match self {
            Exporter::Grpc(grpc) => grpc.export_encoded(signal, request).await,
            Exporter::Http(http) => http.export_encoded(signal, request).await,
            Exporter::Debug(debug) => {
                let undecodable = |e: prost::DecodeError| {
                    ExportError::Stdout(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                };
                let printed = match signal {
                    Signal::Metrics => debug.export(&request.decode().map_err(undecodable)?),
                    Signal::Logs => debug.export_logs(&request.decode_logs().map_err(undecodable)?),
                };
                printed
                    .map(|()| Accepted::default())
                    .map_err(ExportError::Stdout)
            }
        }
    }

    /// For start-up and error logs: `otlp grpc http://localhost:4317`, with the metrics URL of
    /// an HTTP exporter. Never shows headers or credentials.
    pub fn describe(&self) -> String {
        self.describe_signal(Signal::Metrics)
    }

    /// Like [`Exporter::describe`], with the URL `signal` goes to (HTTP: `/v1/logs` for logs).
    pub fn describe_signal(&self, signal: Signal) -> String {
        match self {
            Exporter::Grpc(grpc) => {
                format!(
                    "otlp {} {}",
                    OtlpProtocol::Grpc.name(),
                    grpc.endpoint_of(signal)
                )
            }
            Exporter::Http(http) => {
                let protocol = if http.is_json() {
                    OtlpProtocol::HttpJson
                } else {
                    OtlpProtocol::HttpProtobuf
                };
                format!("otlp {} {}", protocol.name(), http.endpoint_of(signal))
            }
            Exporter::Debug(debug) => match debug.verbosity() {
                DebugVerbosity::Basic => "debug basic".to_string(),
                DebugVerbosity::Detailed => "debug detailed".to_string(),
            },
        }
    }
}

/// What a backend said about an export it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Items the backend refused (`partial_success.rejected_data_points`, or
    /// `rejected_log_records` for logs): lost, since the spec forbids retrying them.
    pub rejected_points: u64,
}

/// What one item of a signal is called in messages: `points`, `log records`.
pub(crate) fn items(signal: Signal) -> &'static str {
    match signal {
        Signal::Metrics => "points",
        Signal::Logs => "log records",
    }
}

/// A backend's `partial_success`, whichever the signal: both messages are the rejected count
/// (field 1) and a message (field 2), so they decode alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartialSuccess {
    pub rejected: i64,
    pub error_message: String,
}

/// A backend that accepted only part of an export says so in `partial_success`; the data is
/// gone either way (not retryable), so it is logged with the count lost and the export counts
/// as done.
fn partial_success(endpoint: &str, signal: Signal, partial: Option<&PartialSuccess>) -> Accepted {
    let Some(partial) = partial else {
        return Accepted::default();
    };
    let rejected_points = u64::try_from(partial.rejected).unwrap_or(0);
    if rejected_points > 0 {
        let what = items(signal);
        match signal {
            Signal::Metrics => tracing::warn!(
                endpoint,
                rejected_data_points = rejected_points,
                message = partial.error_message.as_str(),
                "OTLP backend rejected part of the export: {rejected_points} {what} lost"
            ),
            Signal::Logs => tracing::warn!(
                endpoint,
                rejected_log_records = rejected_points,
                message = partial.error_message.as_str(),
                "OTLP backend rejected part of the export: {rejected_points} {what} lost"
            ),
        }
    } else if !partial.error_message.is_empty() {
        tracing::warn!(
            endpoint,
            signal = signal.name(),
            message = partial.error_message.as_str(),
            "OTLP backend accepted the export with a warning"
        );
    }
    Accepted { rejected_points }
}

/// The endpoint as shown in messages: any `user:password@` is removed.
fn redact_endpoint(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            // Both setters only fail for URLs that cannot have credentials at all.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::settings::secret::Secret;
    use crate::settings::{OtlpSettings, TlsSettings};

    fn otlp(protocol: OtlpProtocol, endpoint: &str) -> ExporterSettings {
        ExporterSettings::Otlp(OtlpSettings {
            protocol,
            endpoint: endpoint.into(),
            logs_endpoint: endpoint.replace("/v1/metrics", "/v1/logs"),
            signals: Signal::ALL.to_vec(),
            headers: vec![("dd-api-key".into(), Secret::new("s3cret"))],
            gzip: false,
            timeout: Duration::from_secs(1),
            tls: TlsSettings::default(),
            name: "otlp".into(),
            delivery: Default::default(),
        })
    }

    #[test]
    fn describe_names_protocol_and_endpoint_only() {
        let cases = [
            (
                otlp(OtlpProtocol::Grpc, "http://localhost:4317"),
                "otlp grpc http://localhost:4317",
            ),
            (
                otlp(
                    OtlpProtocol::HttpProtobuf,
                    "http://localhost:4318/v1/metrics",
                ),
                "otlp http/protobuf http://localhost:4318/v1/metrics",
            ),
            (
                otlp(
                    OtlpProtocol::HttpJson,
                    "http://u:pw@localhost:4318/v1/metrics",
                ),
                "otlp http/json http://localhost:4318/v1/metrics",
            ),
            (
                ExporterSettings::Debug {
                    verbosity: DebugVerbosity::Detailed,
                },
                "debug detailed",
            ),
        ];
        for (settings, expected) in cases {
            let exporter = Exporter::new(&settings).unwrap();
            assert_eq!(exporter.describe(), expected);
            assert_eq!(
                exporter.describe_signal(Signal::Logs),
                expected.replace("/v1/metrics", "/v1/logs")
            );
            assert!(!format!("{exporter:?}").contains("s3cret"));
        }
    }

    #[test]
    fn redaction_keeps_plain_endpoints_verbatim() {
        assert_eq!(
            redact_endpoint("http://localhost:4317"),
            "http://localhost:4317"
        );
        assert_eq!(
            redact_endpoint("https://key:pw@otlp.example/v1/metrics"),
            "https://otlp.example/v1/metrics"
        );
    }
}
