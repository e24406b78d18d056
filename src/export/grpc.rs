//! OTLP/gRPC: `MetricsService/Export` with requests the pipeline already encoded.
//!
//! The generated client would take an `ExportMetricsServiceRequest` by value and encode it
//! again on every attempt; [`RawRequestCodec`] hands tonic the bytes as they are (tonic still
//! frames and compresses them) and decodes the response as the generated client does.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::GrpcMethod;

use super::error::{ExportBuildError, ExportError};
use super::{partial_success, redact_endpoint, rpc_status, tls, Accepted, EncodedRequest};
use crate::config::OtlpSettings;

#[derive(Debug)]
pub struct GrpcExporter {
    /// For messages: the configured endpoint without credentials.
    endpoint: String,
    channel_settings: Endpoint,
    /// Created on the first export: a channel spawns its worker on the tokio runtime, and
    /// exporters are built before one may be running.
    client: OnceLock<tonic::client::Grpc<Channel>>,
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
            client: OnceLock::new(),
            gzip: settings.gzip,
            metadata: metadata(settings)?,
            timeout: settings.timeout,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn export_encoded(&self, request: &EncodedRequest) -> Result<Accepted, ExportError> {
        // `Bytes` clones share the buffer: a retry re-sends the same bytes.
        let mut call = tonic::Request::new(request.bytes().clone());
        call.extensions_mut()
            .insert(GrpcMethod::new(SERVICE, METHOD));
        // Tells the server our deadline (grpc-timeout); the channel enforces it locally.
        call.set_timeout(self.timeout);
        let metadata = call.metadata_mut();
        for (key, value) in &self.metadata {
            metadata.append(key.clone(), value.clone());
        }
        let mut client = self.client().clone();
        let result = match client.ready().await {
            Ok(()) => {
                let path = http::uri::PathAndQuery::from_static(PATH);
                client.unary(call, path, RawRequestCodec).await
            }
            Err(e) => Err(tonic::Status::unknown(format!(
                "Service was not ready: {e}"
            ))),
        };
        match result {
            Ok(response) => Ok(partial_success(
                &self.endpoint,
                response.get_ref().partial_success.as_ref(),
            )),
            Err(status) => Err(self.error(&status)),
        }
    }

    fn client(&self) -> &tonic::client::Grpc<Channel> {
        self.client.get_or_init(|| {
            let client = tonic::client::Grpc::new(self.channel_settings.connect_lazy())
                .accept_compressed(CompressionEncoding::Gzip);
            if self.gzip {
                client.send_compressed(CompressionEncoding::Gzip)
            } else {
                client
            }
        })
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

const SERVICE: &str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
const METHOD: &str = "Export";
const PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Sends encoded request bytes as they are; decodes the `ExportMetricsServiceResponse`.
#[derive(Debug, Clone, Copy, Default)]
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = Bytes;
    type Decode = ExportMetricsServiceResponse;
    type Encoder = RawRequestCodec;
    type Decoder = RawRequestCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawRequestCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawRequestCodec
    }
}

impl Encoder for RawRequestCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawRequestCodec {
    type Item = ExportMetricsServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let response = ExportMetricsServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| tonic::Status::internal(format!("undecodable response: {e}")))?;
        Ok(Some(response))
    }
}

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
    use crate::config::secret::Secret;
    use crate::config::{OtlpProtocol, TlsSettings};

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
