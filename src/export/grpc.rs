//! OTLP/gRPC: `MetricsService/Export` with requests the pipeline already encoded, sent by
//! [`grpc_unary`] over a tonic channel (see there why not through the generated client).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::error::{ExportBuildError, ExportError};
use super::grpc_unary::{self, CallOptions};
use super::{partial_success, redact_endpoint, rpc_status, tls, Accepted, EncodedRequest};
use crate::settings::OtlpSettings;

#[derive(Debug)]
pub struct GrpcExporter {
    /// For messages: the configured endpoint without credentials.
    endpoint: String,
    channel_settings: Endpoint,
    /// Created on the first export: a channel spawns its worker on the tokio runtime, and
    /// exporters are built before one may be running.
    channel: OnceLock<Channel>,
    gzip: bool,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    timeout: Duration,
}

impl GrpcExporter {
    pub fn new(settings: &OtlpSettings) -> Result<Self, ExportBuildError> {
        let invalid = |reason: String| ExportBuildError::InvalidEndpoint {
            endpoint: redact_endpoint(&settings.endpoint),
            reason,
        };
        let mut channel_settings = Endpoint::from_shared(settings.endpoint.clone())
            .map_err(|e| invalid(e.to_string()))?
            // The connection is made lazily, so a backend that is down at start costs one
            // failed export, not the process.
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout);
        match channel_settings.uri().scheme_str() {
            Some("http") => {}
            Some("https") => channel_settings = with_tls(channel_settings, settings)?,
            _ => return Err(invalid("the scheme must be http or https".into())),
        }
        Ok(GrpcExporter {
            endpoint: redact_endpoint(&settings.endpoint),
            channel_settings,
            channel: OnceLock::new(),
            gzip: settings.gzip,
            metadata: metadata(settings)?,
            timeout: settings.timeout,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn export_encoded(&self, request: &EncodedRequest) -> Result<Accepted, ExportError> {
        let options = CallOptions {
            path: PATH,
            metadata: &self.metadata,
            // Sent to the server as grpc-timeout and enforced here.
            timeout: self.timeout,
            gzip: self.gzip,
        };
        let reply = grpc_unary::call(self.channel(), request.bytes(), &options).await;
        match reply {
            Ok(bytes) => {
                // A reply that does not decode still means the export was taken.
                let response = ExportMetricsServiceResponse::decode(bytes).unwrap_or_default();
                Ok(partial_success(
                    &self.endpoint,
                    response.partial_success.as_ref(),
                ))
            }
            Err(status) => Err(self.error(&status)),
        }
    }

    fn channel(&self) -> &Channel {
        self.channel
            .get_or_init(|| self.channel_settings.connect_lazy())
    }

    fn error(&self, status: &tonic::Status) -> ExportError {
        let details = rpc_status::decode_protobuf(status.details());
        ExportError::Grpc {
            endpoint: self.endpoint.clone(),
            code: status.code(),
            message: status.message().to_string(),
            retry_delay: details.retry_delay,
        }
    }
}

const PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

fn with_tls(endpoint: Endpoint, settings: &OtlpSettings) -> Result<Endpoint, ExportBuildError> {
    tls::grpc_endpoint(endpoint, &settings.tls)
}

fn metadata(
    settings: &OtlpSettings,
) -> Result<Vec<(AsciiMetadataKey, AsciiMetadataValue)>, ExportBuildError> {
    settings
        .headers
        .iter()
        .map(|(name, value)| {
            let invalid = |reason: &str| ExportBuildError::InvalidHeader {
                name: name.clone(),
                reason: reason.to_string(),
            };
            let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| invalid("not a valid gRPC metadata name"))?;
            let mut value = AsciiMetadataValue::try_from(value.expose())
                .map_err(|_| invalid("the value is not valid in a header"))?;
            value.set_sensitive(true);
            Ok((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::secret::Secret;
    use crate::settings::{OtlpProtocol, TlsSettings};

    fn settings(endpoint: &str, headers: Vec<(String, Secret)>) -> OtlpSettings {
        OtlpSettings {
            protocol: OtlpProtocol::Grpc,
            endpoint: endpoint.into(),
            headers,
            gzip: false,
            timeout: Duration::from_secs(5),
            tls: TlsSettings::default(),
            name: "otlp".into(),
            delivery: Default::default(),
        }
    }

    #[test]
    fn bad_header_errors_never_show_the_value() {
        let err = GrpcExporter::new(&settings(
            "http://localhost:4317",
            vec![("dd-api-key".into(), Secret::new("sec\nret"))],
        ))
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            "invalid OTLP header 'dd-api-key': the value is not valid in a header"
        );
        let err = GrpcExporter::new(&settings(
            "http://localhost:4317",
            vec![("bad header".into(), Secret::new("x"))],
        ))
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("invalid OTLP header 'bad header'"));
    }

    #[test]
    fn bad_endpoint_is_a_build_error() {
        let err = GrpcExporter::new(&settings("not a uri", vec![])).unwrap_err();
        assert!(
            matches!(err, ExportBuildError::InvalidEndpoint { .. }),
            "{err}"
        );
    }

    #[test]
    fn https_with_missing_ca_file_is_a_build_error() {
        let mut s = settings("https://otel.example:4317", vec![]);
        s.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let err = GrpcExporter::new(&s).unwrap_err();
        assert!(matches!(err, ExportBuildError::CaFile { .. }), "{err}");
    }
}
