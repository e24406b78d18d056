//! TLS towards an OTLP backend, from the same building blocks as HTTPS to supervisord
//! ([`crate::tls`]): system roots plus `ca_file`, an optional client certificate,
//! `server_name`, or no verification when the user asked for it.

use tonic::transport::{ClientTlsConfig, Endpoint, Identity};

use super::error::ExportBuildError;
use crate::settings::TlsSettings;
use crate::tls::{self as tls_settings, TlsError};

/// The rustls configuration of the HTTP exporter.
pub(crate) fn client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, ExportBuildError> {
    tls_settings::client_config(tls).map_err(build_error)
}

/// TLS for the gRPC exporter's channel. tonic takes the verifier and the client identity
/// separately; `server_name` also becomes the SNI name there.
pub(crate) fn grpc_endpoint(
    endpoint: Endpoint,
    tls: &TlsSettings,
) -> Result<Endpoint, ExportBuildError> {
    let provider = tls_settings::provider();
    let verifier = tls_settings::server_verifier(tls, &provider).map_err(build_error)?;
    let mut config = ClientTlsConfig::new();
    if let Some(identity) = tls_settings::client_identity(tls).map_err(build_error)? {
        config = config.identity(Identity::from_pem(identity.cert_pem, identity.key_pem));
    }
    if let Some(name) = &tls.server_name {
        config = config.domain_name(name.clone());
    }
    endpoint
        .tls_config_with_verifier(config, verifier)
        .map_err(|e| ExportBuildError::Tls(e.to_string()))
}

fn build_error(error: TlsError) -> ExportBuildError {
    match error {
        TlsError::CaFile { path, reason } => ExportBuildError::CaFile { path, reason },
        other => ExportBuildError::Tls(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_config_builds_without_roots() {
        let tls = TlsSettings {
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        assert!(client_config(&tls).is_ok());
    }

    #[test]
    fn grpc_errors_name_the_file() {
        let tls = TlsSettings {
            cert_file: Some("/nonexistent/client.pem".into()),
            key_file: Some("/nonexistent/client.key".into()),
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        let endpoint = Endpoint::from_static("https://localhost:4317");
        let err = grpc_endpoint(endpoint, &tls).unwrap_err();
        assert!(
            err.to_string()
                .contains("cert_file '/nonexistent/client.pem'"),
            "{err}"
        );
    }
}
