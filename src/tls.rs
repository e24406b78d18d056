//! [`TlsSettings`] turned into what rustls needs, one way for every connection the receiver
//! makes (supervisord over HTTPS, OTLP over HTTPS or gRPC), so the three never differ in what
//! they trust.
//!
//! - Trust: the system's roots plus `ca_file`. No trust at all (no system roots, no `ca_file`)
//!   is an error here rather than a handshake failure on every connection later.
//! - `server_name`: the certificate is checked against that name instead of the endpoint's host.
//! - `cert_file` + `key_file`: a client certificate for servers that require one; the key must
//!   belong to the certificate, which is checked here, not at the first handshake.
//! - `insecure_skip_verify`: any certificate is accepted. The handshake signatures are still
//!   checked, so the peer at least holds the key of the certificate it shows.
//!
//! Errors name the file and what is wrong with it, never its content: a key file is a secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::settings::TlsSettings;

/// A PEM file larger than this is not a certificate bundle or a key: refusing it keeps a wrong
/// path (a log file, a device) from being read whole.
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// Why TLS could not be set up from the settings. Reported at start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ca_file '{}': {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("cert_file '{}': {reason}", path.display())]
    CertFile { path: PathBuf, reason: String },
    /// `reason` never quotes the file: it is a private key.
    #[error("key_file '{}': {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    #[error("server_name '{name}': {reason}")]
    ServerName { name: String, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// ring explicitly, so a second provider linked in by a dependency never makes rustls guess.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The complete client configuration (HTTPS to supervisord, OTLP/HTTP). ALPN is left to the
/// caller's connector.
pub fn client_config(tls: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(server_verifier(tls, &provider)?);
    match client_identity(tls)? {
        Some(identity) => {
            let key_file = identity.key_file.clone();
            builder
                .with_client_auth_cert(identity.chain, identity.key)
                .map_err(|e| TlsError::KeyFile {
                    path: key_file,
                    reason: key_problem(&e),
                })
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// How the server's certificate is checked: against the roots (and `server_name`), or not at
/// all with `insecure_skip_verify`.
pub fn server_verifier(
    tls: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if tls.insecure_skip_verify {
        return Ok(Arc::new(AcceptAnyCertificate(provider.clone())));
    }
    let roots = root_store(tls.ca_file.as_deref())?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    match &tls.server_name {
        None => Ok(webpki),
        Some(name) => Ok(Arc::new(ExpectedName {
            inner: webpki,
            name: server_name(name)?,
        })),
    }
}

/// `server_name` as rustls takes it: a DNS name or an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName {
        name: name.to_string(),
        reason: "not a valid DNS name or IP address".into(),
    })
}

/// A client certificate chain with its key, as read from `cert_file` and `key_file`.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The files' text, for APIs that take PEM (tonic's `Identity`).
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    key_file: PathBuf,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// The client certificate and key, checked to belong together; `None` when none is set. The
/// configuration loader guarantees both or neither; one alone is an error here too.
pub fn client_identity(tls: &TlsSettings) -> Result<Option<ClientIdentity>, TlsError> {
    let (cert_file, key_file) = match (&tls.cert_file, &tls.key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(cert), None) => {
            return Err(TlsError::CertFile {
                path: cert.clone(),
                reason: "key_file is not set; set both or neither".into(),
            })
        }
        (None, Some(key)) => {
            return Err(TlsError::KeyFile {
                path: key.clone(),
                reason: "cert_file is not set; set both or neither".into(),
            })
        }
    };
    let cert_error = |reason: String| TlsError::CertFile {
        path: cert_file.clone(),
        reason,
    };
    let key_error = |reason: String| TlsError::KeyFile {
        path: key_file.clone(),
        reason,
    };
    let (cert_pem, chain) = read_certificates(cert_file).map_err(cert_error)?;
    let key_pem = read_pem_file(key_file).map_err(key_error)?;
    // The parser's error is not shown: it could describe the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| key_error("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".into()))?;
    // The pairing is checked now, so a wrong key fails at start with both file names.
    rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(
        |e| match e {
            rustls::Error::InconsistentKeys(_) => key_error(format!(
                "the key does not belong to the certificate of cert_file '{}'",
                cert_file.display()
            )),
            other => key_error(key_problem(&other)),
        },
    )?;
    Ok(Some(ClientIdentity {
        chain,
        key,
        cert_pem,
        key_pem,
        key_file: key_file.clone(),
    }))
}

/// rustls' words for a key problem, which name the kind of problem, never key material.
fn key_problem(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InconsistentKeys(_) => "the key does not belong to the certificate".into(),
        other => other.to_string(),
    }
}

/// The system roots, plus the certificates of `ca_file`.
fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    // An unreadable part of the system store is skipped: a ca_file may be all that is needed.
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(error = %err, "skipping part of the system certificate store");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| TlsError::CaFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Setup(
            "no CA certificates to verify servers with: none found on the system and no \
             ca_file set"
                .into(),
        ));
    }
    Ok(roots)
}

/// Every certificate of a PEM file; a file without one is an error, since it would trust
/// nothing.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certificates(path)
        .map(|(_, certs)| certs)
        .map_err(|reason| TlsError::CaFile {
            path: path.to_path_buf(),
            reason,
        })
}

/// The bytes of a PEM file and every certificate in it; a file without one is an error.
fn read_certificates(path: &Path) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let pem = read_pem_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found in the file (PEM expected)".into());
    }
    Ok((pem, certs))
}

/// Reads a PEM file, refusing one too large to be a certificate or key.
fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "larger than {} MiB: not a PEM file",
            MAX_PEM_BYTES / 1024 / 1024
        ));
    }
    Ok(bytes)
}

/// Checks the certificate against `server_name` instead of the name the connection was made
/// with.
#[derive(Debug)]
struct ExpectedName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for ExpectedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any chain, any name; the handshake signatures are still verified.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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
    use rcgen::{CertificateParams, KeyPair};

    struct Files {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
        other_key: PathBuf,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = KeyPair::generate().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Files {
            cert: write("client.pem", &cert.pem()),
            key: write("client.key", &key.serialize_pem()),
            other_key: write("other.key", &other.serialize_pem()),
            _dir: dir,
        }
    }

    fn with_identity(cert: &Path, key: &Path) -> TlsSettings {
        TlsSettings {
            cert_file: Some(cert.to_path_buf()),
            key_file: Some(key.to_path_buf()),
            insecure_skip_verify: true,
            ..TlsSettings::default()
        }
    }

    #[test]
    fn a_matching_pair_builds() {
        let f = files();
        assert!(client_config(&with_identity(&f.cert, &f.key)).is_ok());
        let identity = client_identity(&with_identity(&f.cert, &f.key))
            .unwrap()
            .unwrap();
        assert_eq!(identity.chain.len(), 1);
        assert!(!format!("{identity:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_without_showing_it() {
        let f = files();
        let err = client_config(&with_identity(&f.cert, &f.other_key)).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("key_file '"), "{text}");
        assert!(text.contains("does not belong"), "{text}");
        let key_text = std::fs::read_to_string(&f.other_key).unwrap();
        let body = key_text.lines().nth(1).unwrap();
        assert!(!text.contains(body), "{text}");
    }

    #[test]
    fn swapped_or_missing_files_name_the_file() {
        let f = files();
        let err = client_config(&with_identity(&f.key, &f.cert)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("no certificate found in the file (PEM expected)"),
            "{err}"
        );
        let err =
            client_config(&with_identity(Path::new("/nonexistent/c.pem"), &f.key)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cert_file '/nonexistent/c.pem': "),
            "{err}"
        );
        let only_cert = TlsSettings {
            cert_file: Some(f.cert.clone()),
            ..TlsSettings::default()
        };
        assert!(client_identity(&only_cert).is_err());
    }

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
        assert!(err
            .to_string()
            .ends_with("no certificate found in the file (PEM expected)"));
    }

    #[test]
    fn server_name_must_be_a_name_or_address() {
        assert!(server_name("otel.example").is_ok());
        assert!(server_name("10.0.0.1").is_ok());
        let err = server_name("not a name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "server_name 'not a name': not a valid DNS name or IP address"
        );
    }
}
