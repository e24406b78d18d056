//! TLS towards an OTLP backend: system roots plus an optional CA file, or no verification at all
//! when the user asked for it.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::ExportBuildError;
use crate::config::TlsSettings;

/// ring explicitly, so a second provider linked in by a dependency never makes rustls guess.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration of the HTTP exporter.
pub(crate) fn client_config(tls: &TlsSettings) -> Result<ClientConfig, ExportBuildError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ExportBuildError::Tls(e.to_string()))?;
    let config = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(root_store(tls.ca_file.as_deref())?)
            .with_no_client_auth()
    };
    Ok(config)
}

/// The system roots, plus the certificates of `ca_file`.
fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, ExportBuildError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: a configured ca_file may be all that is needed.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| ExportBuildError::CaFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(ExportBuildError::Tls(
            "no CA certificates: none found on the system and no ca_file set".into(),
        ));
    }
    Ok(roots)
}

/// Every certificate of a PEM file; an empty file is an error, since it would trust nothing.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ExportBuildError> {
    let error = |reason: String| ExportBuildError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| error(e.to_string()))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// `insecure_skip_verify`: any certificate chain and name are accepted, but the handshake
/// signatures are still checked, so the session is at least bound to the presented key.
#[derive(Debug)]
pub(crate) struct SkipServerVerification(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_ca_file_is_an_error() {
        let err = read_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ca_file '/nonexistent/ca.pem': "),
            "{err}"
        );
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = read_ca_file(empty.path()).unwrap_err();
        assert!(
            err.to_string().ends_with("no PEM certificate in the file"),
            "{err}"
        );
    }

    #[test]
    fn insecure_config_builds_without_roots() {
        let tls = TlsSettings {
            ca_file: None,
            insecure_skip_verify: true,
        };
        assert!(client_config(&tls).is_ok());
    }
}
