//! An export request as the OTLP exporters send it: protobuf bytes and the items they carry
//! (data points, or log records).
//!
//! The pipeline writes requests once (see [`crate::metrics::encode`]); the sending queue keeps
//! and merges them as bytes (protobuf concatenation merges messages), and the gRPC and
//! HTTP/protobuf exporters send those bytes as they are. Only HTTP/JSON and the debug output
//! need the decoded structs.
//!
//! The bytes do not say which signal they are: an `ExportMetricsServiceRequest` and an
//! `ExportLogsServiceRequest` are both only their repeated resource field, number 1. Whoever
//! holds a request knows its signal (a sending queue holds one signal), and says it when the
//! request is sent or decoded.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use super::batch;
use crate::settings::Signal;

/// A protobuf-encoded `ExportMetricsServiceRequest` or `ExportLogsServiceRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedRequest {
    bytes: Bytes,
    points: u64,
}

impl EncodedRequest {
    pub fn from_message(request: &ExportMetricsServiceRequest) -> Self {
        EncodedRequest {
            bytes: Bytes::from(request.encode_to_vec()),
            points: batch::count_points(request),
        }
    }

    /// A logs request; its count is of log records.
    pub fn from_logs(request: &ExportLogsServiceRequest) -> Self {
        EncodedRequest {
            bytes: Bytes::from(request.encode_to_vec()),
            points: batch::count_log_records(request),
        }
    }

    /// Bytes already encoded, with the data points (or log records) they hold (the writer
    /// counted them).
    pub fn from_encoded(bytes: impl Into<Bytes>, points: u64) -> Self {
        EncodedRequest {
            bytes: bytes.into(),
            points,
        }
    }

    /// One request holding every part's resources, in order.
    pub fn concat(parts: impl IntoIterator<Item = EncodedRequest>) -> Self {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return EncodedRequest::default();
        };
        let Some(second) = parts.next() else {
            return first;
        };
        let mut bytes = Vec::with_capacity(first.bytes.len() + second.bytes.len());
        let mut points = 0;
        for part in [first, second].into_iter().chain(parts) {
            bytes.extend_from_slice(&part.bytes);
            points += part.points;
        }
        EncodedRequest::from_encoded(bytes, points)
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Data points in a metrics request, log records in a logs request: what telemetry counts
    /// as sent or dropped.
    pub fn points(&self) -> u64 {
        self.points
    }

    /// The structs of a metrics request, for the outputs that need them (JSON, debug).
    pub fn decode(&self) -> Result<ExportMetricsServiceRequest, prost::DecodeError> {
        ExportMetricsServiceRequest::decode(self.bytes.as_ref())
    }

    /// The structs of a logs request.
    pub fn decode_logs(&self) -> Result<ExportLogsServiceRequest, prost::DecodeError> {
        ExportLogsServiceRequest::decode(self.bytes.as_ref())
    }
}

/// Whether `bytes` decode as a request of `signal`: what comes back from a persistent queue is
/// checked before it is sent.
pub(crate) fn decodes_as(signal: Signal, bytes: &[u8]) -> bool {
    match signal {
        Signal::Metrics => ExportMetricsServiceRequest::decode(bytes).is_ok(),
        Signal::Logs => ExportLogsServiceRequest::decode(bytes).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;

    fn request(names: &[&str]) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: names
                .iter()
                .map(|name| ResourceMetrics {
                    resource: Some(Resource::default()),
                    schema_url: (*name).into(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn concatenation_is_the_merged_request() {
        let parts = [request(&["a", "b"]), request(&[]), request(&["c"])];
        let joined = EncodedRequest::concat(parts.iter().map(EncodedRequest::from_message));
        assert_eq!(joined.decode().unwrap(), request(&["a", "b", "c"]));
        assert!(EncodedRequest::concat([]).is_empty());
    }

    #[test]
    fn logs_requests_concatenate_and_count_records() {
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let resource = |name: &str, records: usize| ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000,
                        ..Default::default()
                    };
                    records
                ],
                ..Default::default()
            }],
            schema_url: name.into(),
            ..Default::default()
        };
        let logs = |resources: Vec<ResourceLogs>| ExportLogsServiceRequest {
            resource_logs: resources,
        };
        let parts = [
            logs(vec![resource("a", 2)]),
            logs(vec![resource("b", 1), resource("c", 1)]),
        ];
        let joined = EncodedRequest::concat(parts.iter().map(EncodedRequest::from_logs));
        assert_eq!(joined.points(), 4);
        assert_eq!(
            joined.decode_logs().unwrap(),
            logs(vec![resource("a", 2), resource("b", 1), resource("c", 1)])
        );
        assert!(decodes_as(Signal::Logs, joined.bytes()));
        // A log record's first field is a fixed64 where a metric has its name: a logs request
        // does not pass for a metrics one.
        assert!(!decodes_as(Signal::Metrics, joined.bytes()));
    }
}
