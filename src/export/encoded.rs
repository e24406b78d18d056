//! An export request as the OTLP exporters send it: protobuf bytes and their data point count.
//!
//! The pipeline writes requests once (see [`crate::metrics::encode`]); the sending queue keeps
//! and merges them as bytes (protobuf concatenation merges messages), and the gRPC and
//! HTTP/protobuf exporters send those bytes as they are. Only HTTP/JSON and the debug output
//! need the decoded structs.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use super::batch;

/// A protobuf-encoded `ExportMetricsServiceRequest`.
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

    /// Bytes already encoded, with the data points they hold (the writer counted them).
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

    pub fn points(&self) -> u64 {
        self.points
    }

    /// The structs, for the outputs that need them (JSON, debug).
    pub fn decode(&self) -> Result<ExportMetricsServiceRequest, prost::DecodeError> {
        ExportMetricsServiceRequest::decode(self.bytes.as_ref())
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
}
