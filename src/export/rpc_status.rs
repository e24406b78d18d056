//! The few `google.rpc` messages OTLP servers send back on failure: `Status` (the body of an
//! OTLP/HTTP error, the `grpc-status-details-bin` of a gRPC one) and `RetryInfo`.
//!
//! Declared by hand: four small messages do not justify a dependency on the full googleapis
//! types.

use std::time::Duration;

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// What a failure reply told us, as far as it could be read.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FailureDetails {
    pub message: Option<String>,
    pub retry_delay: Option<Duration>,
}

/// Reads a protobuf `google.rpc.Status`; garbage yields empty details rather than an error,
/// since the status code already says what matters.
pub(crate) fn decode_protobuf(bytes: &[u8]) -> FailureDetails {
    let Ok(status) = RpcStatus::decode(bytes) else {
        return FailureDetails::default();
    };
    let retry_delay = status
        .details
        .iter()
        .filter(|any| any.type_url == RETRY_INFO_TYPE)
        .find_map(|any| RetryInfo::decode(any.value.as_slice()).ok())
        .and_then(|info| info.retry_delay)
        .map(|d| {
            Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
                + Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0))
        });
    FailureDetails {
        message: (!status.message.is_empty()).then_some(status.message),
        retry_delay,
    }
}

/// Reads the `message` of a JSON `google.rpc.Status`.
pub(crate) fn decode_json(bytes: &[u8]) -> FailureDetails {
    let message = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .filter(|m| !m.is_empty());
    FailureDetails {
        message,
        retry_delay: None,
    }
}

/// Test support: encodes a Status the way a server would.
#[cfg(test)]
pub(crate) fn encode_for_test(code: i32, message: &str, retry_delay_secs: Option<i64>) -> Vec<u8> {
    let details = retry_delay_secs
        .map(|seconds| ProtoAny {
            type_url: RETRY_INFO_TYPE.into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds, nanos: 0 }),
            }
            .encode_to_vec(),
        })
        .into_iter()
        .collect();
    RpcStatus {
        code,
        message: message.into(),
        details,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_message_and_retry_delay() {
        let bytes = encode_for_test(8, "slow down", Some(7));
        assert_eq!(
            decode_protobuf(&bytes),
            FailureDetails {
                message: Some("slow down".into()),
                retry_delay: Some(Duration::from_secs(7)),
            }
        );
        assert_eq!(
            decode_protobuf(&encode_for_test(8, "", None)),
            FailureDetails::default()
        );
    }

    #[test]
    fn garbage_is_empty_details() {
        assert_eq!(decode_protobuf(b"\xff\xff\xff"), FailureDetails::default());
        assert_eq!(decode_json(b"<html>"), FailureDetails::default());
        assert_eq!(
            decode_json(br#"{"code":3,"message":"bad metric"}"#)
                .message
                .as_deref(),
            Some("bad metric")
        );
    }
}
