//! Exporters: OTLP over gRPC, HTTP/protobuf, HTTP/JSON, and the debug exporter.
//!
//! Each exporter is built once from its settings (all validation happens there) and then only
//! exports. One attempt per call; whether to retry is the caller's decision, helped by
//! [`ExportError::is_retryable`]: the pipeline puts a sending queue and a retrying sender in
//! front of each OTLP exporter.
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

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest,
};

use crate::settings::{DebugVerbosity, ExporterSettings, OtlpProtocol};
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
                self.export_encoded(&EncodedRequest::from_message(request))
                    .await
            }
        }
    }

    /// Sends a request the pipeline already encoded: as is over gRPC and HTTP/protobuf.
    pub async fn export_encoded(&self, request: &EncodedRequest) -> Result<Accepted, ExportError> {
        match self {
            Exporter::Grpc(grpc) => grpc.export_encoded(request).await,
            Exporter::Http(http) => http.export_encoded(request).await,
            Exporter::Debug(debug) => {
                let decoded = request.decode().map_err(|e| {
                    ExportError::Stdout(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                })?;
                debug
                    .export(&decoded)
                    .map(|()| Accepted::default())
                    .map_err(ExportError::Stdout)
            }
        }
    }

    /// For start-up and error logs: `otlp grpc http://localhost:4317`. Never shows headers or
    /// credentials.
    pub fn describe(&self) -> String {
        match self {
            Exporter::Grpc(grpc) => {
                format!("otlp {} {}", OtlpProtocol::Grpc.name(), grpc.endpoint())
            }
            Exporter::Http(http) => {
                let protocol = if http.is_json() {
                    OtlpProtocol::HttpJson
                } else {
                    OtlpProtocol::HttpProtobuf
                };
                format!("otlp {} {}", protocol.name(), http.endpoint())
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
    /// Points the backend refused (`partial_success.rejected_data_points`): lost, since the
    /// spec forbids retrying them.
    pub rejected_points: u64,
}

/// A backend that accepted only part of an export says so in `partial_success`; the data is
/// gone either way (not retryable), so it is logged with the count lost and the export counts
/// as done.
fn partial_success(endpoint: &str, partial: Option<&ExportMetricsPartialSuccess>) -> Accepted {
    let Some(partial) = partial else {
        return Accepted::default();
    };
    let rejected_points = u64::try_from(partial.rejected_data_points).unwrap_or(0);
    if rejected_points > 0 {
        tracing::warn!(
            endpoint,
            rejected_data_points = rejected_points,
            message = partial.error_message.as_str(),
            "OTLP backend rejected part of the export: {rejected_points} points lost"
        );
    } else if !partial.error_message.is_empty() {
        tracing::warn!(
            endpoint,
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
