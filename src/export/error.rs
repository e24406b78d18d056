//! Exporter errors: one enum for building an exporter, one for a failed export.
//!
//! No text here ever carries a header value: header names are quoted, values never are.

use std::path::PathBuf;
use std::time::Duration;

/// An exporter could not be built from its settings; fatal at start.
#[derive(Debug, thiserror::Error)]
pub enum ExportBuildError {
    #[error("invalid OTLP endpoint '{endpoint}': {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// The value is not quoted: it may be an API key.
    #[error("invalid OTLP header '{name}': {reason}")]
    InvalidHeader { name: String, reason: String },
    #[error("ca_file '{}': {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The persistent sending queue could not be opened (permissions, disk, another receiver
    /// holding it).
    #[error("exporter '{exporter}': sending queue storage '{}': {reason}", path.display())]
    QueueStorage {
        exporter: String,
        path: PathBuf,
        reason: String,
    },
}

/// One export attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The server answered with a non-OK gRPC status (or tonic synthesised one for a
    /// connection failure, as UNAVAILABLE).
    #[error("OTLP export to {endpoint} failed: gRPC status {code:?} ({}): {message}", *code as i32)]
    Grpc {
        endpoint: String,
        code: tonic::Code,
        message: String,
        /// From a `google.rpc.RetryInfo` detail; it also makes RESOURCE_EXHAUSTED retryable.
        retry_delay: Option<Duration>,
    },
    #[error("OTLP export to {endpoint} failed: HTTP {status}: {message}")]
    HttpStatus {
        endpoint: String,
        status: u16,
        message: String,
        /// From a `Retry-After: <seconds>` header.
        retry_after: Option<Duration>,
    },
    /// No HTTP response: connection refused, TLS failure, reset.
    #[error("OTLP export to {endpoint} failed: {message}")]
    HttpTransport { endpoint: String, message: String },
    #[error("OTLP export to {endpoint} failed: no response within {timeout:?}")]
    Timeout { endpoint: String, timeout: Duration },
    #[error("OTLP export to {endpoint} failed: encoding the request: {message}")]
    Encode { endpoint: String, message: String },
    #[error("debug exporter: writing to stdout failed: {0}")]
    Stdout(#[source] std::io::Error),
}

impl ExportError {
    /// Whether the OTLP spec allows sending the same data again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ExportError::Grpc {
                code, retry_delay, ..
            } => grpc_code_is_retryable(*code, retry_delay.is_some()),
            ExportError::HttpStatus { status, .. } => http_status_is_retryable(*status),
            ExportError::HttpTransport { .. } | ExportError::Timeout { .. } => true,
            ExportError::Encode { .. } | ExportError::Stdout(_) => false,
        }
    }

    /// The server's requested wait before a retry, when it gave one.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            ExportError::Grpc { retry_delay, .. } => *retry_delay,
            ExportError::HttpStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// OTLP/gRPC: "Retryable" codes of the spec's failure table. RESOURCE_EXHAUSTED is retryable
/// only when the server says when to come back (RetryInfo), otherwise it is a hard limit.
pub(crate) fn grpc_code_is_retryable(code: tonic::Code, has_retry_info: bool) -> bool {
    use tonic::Code;
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => has_retry_info,
        _ => false,
    }
}

/// OTLP/HTTP: only these statuses are retryable; every other 4xx/5xx drops the data.
pub(crate) fn http_status_is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_retryable_codes_follow_the_spec() {
        use tonic::Code;
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert!(grpc_code_is_retryable(code, false), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
            Code::Internal,
        ] {
            assert!(!grpc_code_is_retryable(code, true), "{code:?}");
        }
        assert!(!grpc_code_is_retryable(Code::ResourceExhausted, false));
        assert!(grpc_code_is_retryable(Code::ResourceExhausted, true));
    }

    #[test]
    fn http_retryable_statuses_follow_the_spec() {
        for status in [429, 502, 503, 504] {
            assert!(http_status_is_retryable(status));
        }
        for status in [400, 401, 403, 404, 413, 500, 501] {
            assert!(!http_status_is_retryable(status));
        }
    }

    #[test]
    fn display_names_the_code() {
        let err = ExportError::Grpc {
            endpoint: "http://localhost:4317".into(),
            code: tonic::Code::Unavailable,
            message: "connection refused".into(),
            retry_delay: None,
        };
        assert_eq!(
            err.to_string(),
            "OTLP export to http://localhost:4317 failed: gRPC status Unavailable (14): \
             connection refused"
        );
        assert!(err.is_retryable());
    }
}
