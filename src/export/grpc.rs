//! OTLP/gRPC: `MetricsService/Export` and `LogsService/Export` with requests the pipeline
//! already encoded, sent by [`grpc_unary`] over a tonic channel (see there why not through the
//! generated client). Both signals share the exporter's channel when they go to the same base
//! URL, as configured exporters always do: gRPC multiplexes calls on a connection, and the
//! method path tells the signals apart. A logs URL of its own (from
//! `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`) gets a channel of its own.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::error::{ExportBuildError, ExportError};
use super::grpc_unary::{self, CallOptions};
use super::{
    partial_success, redact_endpoint, rpc_status, tls, Accepted, EncodedRequest, PartialSuccess,
};
use crate::settings::{OtlpSettings, Signal};

/// One server: its URL for messages, and the channel to it.
#[derive(Debug)]
struct Route {
    /// For messages: the configured endpoint without credentials.
    endpoint: String,
    channel_settings: Endpoint,
    /// Created on the first export: a channel spawns its worker on the tokio runtime, and
    /// exporters are built before one may be running.
    channel: OnceLock<Channel>,
}

impl Route {
    fn new(url: &str, settings: &OtlpSettings) -> Result<Route, ExportBuildError> {
        let invalid = |reason: String| ExportBuildError::InvalidEndpoint {
            endpoint: redact_endpoint(url),
            reason,
        };
        let mut channel_settings = Endpoint::from_shared(url.to_string())
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
        Ok(Route {
            endpoint: redact_endpoint(url),
            channel_settings,
            channel: OnceLock::new(),
        })
    }

    fn channel(&self) -> &Channel {
        self.channel
            .get_or_init(|| self.channel_settings.connect_lazy())
    }
}

#[derive(Debug)]
pub struct GrpcExporter {
    /// `endpoint`: metrics, and logs when they go to the same server.
    main: Route,
    /// `logs_endpoint`, when the exporter carries logs to another URL.
    logs: Option<Route>,
    gzip: bool,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    timeout: Duration,
}

impl GrpcExporter {
    pub fn new(settings: &OtlpSettings) -> Result<Self, ExportBuildError> {
        let main = Route::new(&settings.endpoint, settings)?;
        let logs = if settings.signals.contains(&Signal::Logs)
            && settings.logs_endpoint != settings.endpoint
        {
            Some(Route::new(&settings.logs_endpoint, settings)?)
        } else {
            None
        };
        Ok(GrpcExporter {
            main,
            logs,
            gzip: settings.gzip,
            metadata: metadata(settings)?,
            timeout: settings.timeout,
        })
    }

    /// The base URL, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.main.endpoint
    }

    /// The base URL `signal` goes to, without credentials.
    pub fn endpoint_of(&self, signal: Signal) -> &str {
        &self.route(signal).endpoint
    }

    fn route(&self, signal: Signal) -> &Route {
        match (signal, &self.logs) {
            (Signal::Logs, Some(logs)) => logs,
            _ => &self.main,
        }
    }

    pub async fn export_encoded(
        &self,
        signal: Signal,
        request: &EncodedRequest,
    ) -> Result<Accepted, ExportError> {
        let route = self.route(signal);
        let options = CallOptions {
            path: path(signal),
            metadata: &self.metadata,
            // Sent to the server as grpc-timeout and enforced here.
            timeout: self.timeout,
            gzip: self.gzip,
        };
        let reply = grpc_unary::call(route.channel(), request.bytes(), &options).await;
        match reply {
            Ok(bytes) => {
                // A reply that does not decode still means the export was taken.
                let partial = match signal {
                    Signal::Metrics => ExportMetricsServiceResponse::decode(bytes)
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map(|p| PartialSuccess {
                            rejected: p.rejected_data_points,
                            error_message: p.error_message,
                        }),
                    Signal::Logs => ExportLogsServiceResponse::decode(bytes)
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map(|p| PartialSuccess {
                            rejected: p.rejected_log_records,
                            error_message: p.error_message,
                        }),
                };
                Ok(partial_success(&route.endpoint, signal, partial.as_ref()))
            }
            Err(status) => Err(error(&route.endpoint, &status)),
        }
    }
}

fn error(endpoint: &str, status: &tonic::Status) -> ExportError {
    let details = rpc_status::decode_protobuf(status.details());
    ExportError::Grpc {
        endpoint: endpoint.to_string(),
        code: status.code(),
        message: status.message().to_string(),
        retry_delay: details.retry_delay,
    }
}

/// The OTLP service method of a signal.
fn path(signal: Signal) -> &'static str {
    match signal {
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
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
    use crate::settings::secret::Secret;
    use crate::settings::{OtlpProtocol, TlsSettings};

    fn settings(endpoint: &str, headers: Vec<(String, Secret)>) -> OtlpSettings {
        OtlpSettings {
            protocol: OtlpProtocol::Grpc,
            endpoint: endpoint.into(),
            logs_endpoint: endpoint.into(),
            signals: Signal::ALL.to_vec(),
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
