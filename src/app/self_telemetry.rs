//! The receiver's own metrics, wired: which OTLP exporter's connection they use, the
//! `opentelemetry-otlp` exporter built from it, and the SDK meter provider
//! ([`crate::telemetry::self_metrics`]) that drives it. Apart from the targets' data: no
//! sending queue, no retry, no batching with the polls, as the OpenTelemetry Collector's own
//! telemetry (`service::telemetry::metrics`: a periodic reader and an OTLP exporter).
//!
//! - **Where**: the endpoint, protocol, headers, compression, timeout and TLS of the OTLP
//!   exporter `telemetry.exporter` names, else of the first OTLP exporter (the one
//!   `OTEL_EXPORTER_OTLP_*` describes when the file has none). With debug exporters only,
//!   nothing is exported, which the start-up log says.
//! - **Exactly those settings**: the SDK's exporter also reads `OTEL_EXPORTER_OTLP_HEADERS`
//!   (and its `_METRICS_` twin) and adds them to every request. The data exporter ignores
//!   those variables when the file configures its exporters, so, to never send a header (an
//!   API key) the data does not carry, the gRPC metadata and the HTTP headers are set here to
//!   the exporter's settings and nothing else. The endpoint, protocol, timeout and temporality
//!   are given explicitly, which the SDK lets win over the environment (the temporality is the
//!   preference the loader resolved, from `metrics_temporality` or the same
//!   `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, so the two agree). Compression is given
//!   only when on: with `compression: none`, an `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` in the
//!   environment makes the SDK gzip these requests (every OTLP server takes gzip).
//! - **Transport**: gRPC over a tonic channel with the receiver's TLS ([`crate::tls`]: system
//!   roots plus `ca_file`, client certificate, `server_name`, `insecure_skip_verify`); HTTP
//!   over the receiver's hyper + rustls client, run on the tokio runtime (the SDK's periodic
//!   reader exports from a thread of its own, outside the runtime).
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_otlp::{
    Compression, MetricExporter, Protocol, RetryPolicy, WithExportConfig, WithHttpConfig,
    WithTonicConfig,
};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

use crate::settings::{
    ExporterSettings, OtlpProtocol, OtlpSettings, TelemetrySettings, TemporalityPreference,
};
use crate::telemetry::self_metrics::{self, SelfMetrics, SelfResource};
use crate::telemetry::Telemetry;
use crate::tls::{self, TlsError};

/// A reply to an export is a partial-success count at most; anything longer is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why the self-telemetry exporter could not be built. The same settings already built the data
/// exporter, so this is rare.
#[derive(Debug, thiserror::Error)]
pub enum SelfTelemetryError {
    #[error("exporter '{exporter}': {reason}")]
    Exporter { exporter: String, reason: String },
    #[error("exporter '{exporter}': {source}")]
    Tls { exporter: String, source: TlsError },
    #[error("exporter '{exporter}': header '{name}': {reason}")]
    Header {
        exporter: String,
        name: String,
        reason: &'static str,
    },
}

/// Starts the receiver's own metrics, when they are on and have somewhere to go, exported with
/// `temporality` (the settings' preference, as the targets' sums). Called from the runtime (the
/// gRPC channel and the HTTP client are bound to it).
pub fn start(
    settings: &TelemetrySettings,
    temporality: TemporalityPreference,
    exporters: &[ExporterSettings],
    telemetry: &Arc<Telemetry>,
) -> Result<Option<SelfMetrics>, SelfTelemetryError> {
    if !settings.metrics {
        return Ok(None);
    }
    let Some(otlp) = self_metrics::destination(settings, exporters) else {
        tracing::info!(
            "the receiver's own metrics are not exported: no OTLP exporter (the debug exporter \
             does not print them)"
        );
        return Ok(None);
    };
    let interval = self_metrics::export_interval(settings, &|name| std::env::var(name).ok());
    if let Some(ignored) = &interval.ignored {
        tracing::warn!("{ignored}");
    }
    let exporter = exporter(otlp, temporality)?;
    tracing::info!(
        exporter = %otlp.name,
        protocol = otlp.protocol.name(),
        interval = ?interval.every,
        interval_from = interval.source.name(),
        temporality = temporality.name(),
        "sending the receiver's own metrics (OpenTelemetry SDK)"
    );
    Ok(Some(SelfMetrics::start(
        telemetry,
        exporter,
        interval.every,
        SelfResource::detect(),
    )))
}

/// The OTLP metric exporter of `opentelemetry-otlp` on `otlp`'s connection settings, with the
/// temporality preference.
fn exporter(
    otlp: &OtlpSettings,
    temporality: TemporalityPreference,
) -> Result<MetricExporter, SelfTelemetryError> {
    let builder =
        MetricExporter::builder().with_temporality(self_metrics::sdk_temporality(temporality));
    let built = match otlp.protocol {
        OtlpProtocol::Grpc => {
            let mut grpc = builder
                .with_tonic()
                .with_channel(channel(otlp)?)
                .with_interceptor(ExactMetadata(metadata(otlp)?))
                .with_timeout(otlp.timeout)
                .with_retry_policy(RetryPolicy::disabled());
            if otlp.gzip {
                grpc = grpc.with_compression(Compression::Gzip);
            }
            grpc.build()
        }
        OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
            let protocol = match otlp.protocol {
                OtlpProtocol::HttpJson => Protocol::HttpJson,
                _ => Protocol::HttpBinary,
            };
            let mut http = builder
                .with_http()
                .with_http_client(HttpClient::new(otlp)?)
                // Already the full URL, `/v1/metrics` resolved: the SDK takes it as is.
                .with_endpoint(otlp.endpoint.clone())
                .with_protocol(protocol)
                .with_timeout(otlp.timeout)
                .with_retry_policy(RetryPolicy::disabled());
            if otlp.gzip {
                http = http.with_compression(Compression::Gzip);
            }
            http.build()
        }
    };
    built.map_err(|e| SelfTelemetryError::Exporter {
        exporter: otlp.name.clone(),
        reason: e.to_string(),
    })
}

/// A lazily connected channel: a backend down at start costs failed exports, not the start.
fn channel(otlp: &OtlpSettings) -> Result<Channel, SelfTelemetryError> {
    let failed = |reason: String| SelfTelemetryError::Exporter {
        exporter: otlp.name.clone(),
        reason,
    };
    let tls_failed = |source| SelfTelemetryError::Tls {
        exporter: otlp.name.clone(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(otlp.endpoint.clone())
        .map_err(|e| failed(e.to_string()))?
        .connect_timeout(otlp.timeout)
        .timeout(otlp.timeout);
    if endpoint.uri().scheme_str() == Some("https") {
        let provider = tls::provider();
        let verifier = tls::server_verifier(&otlp.tls, &provider).map_err(tls_failed)?;
        let mut config = ClientTlsConfig::new();
        if let Some(identity) = tls::client_identity(&otlp.tls).map_err(tls_failed)? {
            config = config.identity(Identity::from_pem(identity.cert_pem, identity.key_pem));
        }
        if let Some(name) = &otlp.tls.server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint
            .tls_config_with_verifier(config, verifier)
            .map_err(|e| failed(e.to_string()))?;
    }
    Ok(endpoint.connect_lazy())
}

fn metadata(otlp: &OtlpSettings) -> Result<MetadataMap, SelfTelemetryError> {
    let mut map = MetadataMap::new();
    for (name, value) in &otlp.headers {
        let invalid = |reason| SelfTelemetryError::Header {
            exporter: otlp.name.clone(),
            name: name.clone(),
            reason,
        };
        let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| invalid("not a valid gRPC metadata name"))?;
        let mut value = AsciiMetadataValue::try_from(value.expose())
            .map_err(|_| invalid("the value is not valid in a header"))?;
        value.set_sensitive(true);
        map.append(key, value);
    }
    Ok(map)
}

/// Sets each request's metadata to the exporter's headers, replacing what the SDK added from
/// `OTEL_EXPORTER_OTLP_HEADERS` (see the module documentation).
#[derive(Clone)]
struct ExactMetadata(MetadataMap);

impl tonic::service::Interceptor for ExactMetadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        *request.metadata_mut() = self.0.clone();
        Ok(request)
    }
}

/// The OTLP/HTTP exporter's client: the receiver's hyper client with its TLS, each request run
/// on the tokio runtime, since the SDK's reader thread has no runtime of its own.
#[derive(Debug)]
struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The exporter's headers, values marked sensitive so `Debug` hides them.
    headers: HeaderMap,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
}

type HttpError = opentelemetry_http::HttpError;

impl HttpClient {
    fn new(otlp: &OtlpSettings) -> Result<HttpClient, SelfTelemetryError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| SelfTelemetryError::Exporter {
                exporter: otlp.name.clone(),
                reason: e.to_string(),
            })?;
        let tls = tls::client_config(&otlp.tls).map_err(|source| SelfTelemetryError::Tls {
            exporter: otlp.name.clone(),
            source,
        })?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let mut headers = HeaderMap::new();
        for (name, value) in &otlp.headers {
            let invalid = |reason| SelfTelemetryError::Header {
                exporter: otlp.name.clone(),
                name: name.clone(),
                reason,
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("not a valid header name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| invalid("the value is not valid in a header"))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        Ok(HttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            headers,
            timeout: otlp.timeout,
            runtime,
        })
    }

    /// The SDK's request with the exporter's headers only: its body, URL, content type,
    /// encoding and user agent are kept, whatever else it added is not.
    fn outgoing(&self, request: Request<Bytes>) -> Result<Request<Full<Bytes>>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = Request::builder()
            .method(parts.method)
            .uri(parts.uri)
            .body(Full::new(body))?;
        let headers = outgoing.headers_mut();
        for name in [CONTENT_TYPE, CONTENT_ENCODING, USER_AGENT] {
            if let Some(value) = parts.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        Ok(outgoing)
    }
}

impl opentelemetry_http::HttpClient for HttpClient {
    // The trait is declared with `async_trait`; this is the signature it expands to.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let outgoing = self.outgoing(request);
        let client = self.client.clone();
        let timeout = self.timeout;
        let runtime = self.runtime.clone();
        Box::pin(async move {
            let outgoing = outgoing?;
            let exchange = async move {
                let response = client.request(outgoing).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES).collect().await?;
                Ok::<_, HttpError>(Response::from_parts(parts, body.to_bytes()))
            };
            let task = runtime.spawn(async move {
                match tokio::time::timeout(timeout, exchange).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {timeout:?}").into()),
                }
            });
            let result = task.await.map_err(|e| -> HttpError { Box::new(e) })?;
            if let Err(error) = &result {
                tracing::debug!("self-telemetry export over HTTP failed: {error}");
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::secret::Secret;

    fn otlp(protocol: OtlpProtocol, endpoint: &str) -> OtlpSettings {
        OtlpSettings {
            protocol,
            endpoint: endpoint.into(),
            logs_endpoint: endpoint.into(),
            signals: crate::settings::Signal::ALL.to_vec(),
            headers: vec![("x-api-key".into(), Secret::new("s3cret"))],
            gzip: true,
            timeout: Duration::from_secs(1),
            tls: Default::default(),
            name: "otlp/own".into(),
            delivery: Default::default(),
        }
    }

    #[tokio::test]
    async fn every_protocol_builds_an_exporter() {
        for (protocol, endpoint) in [
            (OtlpProtocol::Grpc, "http://127.0.0.1:4317"),
            (OtlpProtocol::Grpc, "https://127.0.0.1:4317"),
            (
                OtlpProtocol::HttpProtobuf,
                "http://127.0.0.1:4318/v1/metrics",
            ),
            (OtlpProtocol::HttpJson, "https://127.0.0.1:4318/v1/metrics"),
        ] {
            if let Err(e) = exporter(&otlp(protocol, endpoint), TemporalityPreference::Cumulative) {
                panic!("{protocol:?} {endpoint}: {e}");
            }
        }
    }

    /// The preference reaches the SDK's exporter whatever the protocol (which then applies it
    /// per instrument: `crate::telemetry::self_metrics`'s tests).
    #[tokio::test]
    async fn the_exporter_has_the_preferred_temporality() {
        use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
        use opentelemetry_sdk::metrics::Temporality;
        for (protocol, endpoint) in [
            (OtlpProtocol::Grpc, "http://127.0.0.1:4317"),
            (
                OtlpProtocol::HttpProtobuf,
                "http://127.0.0.1:4318/v1/metrics",
            ),
        ] {
            for (preference, expected) in [
                (TemporalityPreference::Cumulative, Temporality::Cumulative),
                (TemporalityPreference::Delta, Temporality::Delta),
                (TemporalityPreference::LowMemory, Temporality::LowMemory),
            ] {
                let built = exporter(&otlp(protocol, endpoint), preference).unwrap();
                assert_eq!(built.temporality(), expected, "{protocol:?} {preference:?}");
            }
        }
    }

    #[test]
    fn header_errors_name_the_header_never_the_value() {
        let mut settings = otlp(OtlpProtocol::Grpc, "http://127.0.0.1:4317");
        settings.headers = vec![("x-api-key".into(), Secret::new("sec\nret"))];
        let err = metadata(&settings).unwrap_err().to_string();
        assert_eq!(
            err,
            "exporter 'otlp/own': header 'x-api-key': the value is not valid in a header"
        );
    }

    #[tokio::test]
    async fn http_requests_carry_the_exporter_headers_and_nothing_the_sdk_added() {
        let client = HttpClient::new(&otlp(
            OtlpProtocol::HttpProtobuf,
            "http://127.0.0.1:4318/v1/metrics",
        ))
        .unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
        let request = Request::builder()
            .uri("http://127.0.0.1:4318/v1/metrics")
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(CONTENT_ENCODING, "gzip")
            .header(USER_AGENT, "OTel-OTLP-Exporter-Rust")
            .header("authorization", "from OTEL_EXPORTER_OTLP_HEADERS")
            .body(Bytes::from_static(b"body"))
            .unwrap();
        let outgoing = client.outgoing(request).unwrap();
        let mut names: Vec<&str> = outgoing.headers().keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-encoding",
                "content-type",
                "user-agent",
                "x-api-key"
            ]
        );
        assert_eq!(outgoing.headers()["x-api-key"], "s3cret");
    }

    /// An HTTPS OTLP endpoint with a certificate from a throwaway CA: the CA's PEM, the
    /// address, and what it received (path, headers).
    async fn https_sink() -> (
        String,
        std::net::SocketAddr,
        Arc<std::sync::Mutex<Vec<Seen>>>,
    ) {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
            KeyPair,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let log = Arc::clone(&log);
                            async move {
                                let path = req.uri().path().to_string();
                                let headers = req.headers().clone();
                                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                                let body = body.unwrap_or_default();
                                log.lock().unwrap().push((path, headers, body.len()));
                                Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                    Bytes::new(),
                                )))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (ca.pem(), addr, seen)
    }

    type Seen = (String, HeaderMap, usize);

    /// The whole path: SDK reader thread, `opentelemetry-otlp`, this client on the runtime,
    /// the receiver's TLS with a `ca_file`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sdk_exports_over_https_trusting_the_ca_file() {
        let (ca_pem, addr, seen) = https_sink().await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let endpoint = format!("https://{addr}/v1/metrics");
        let flush = |settings: OtlpSettings| async move {
            let telemetry = Arc::new(Telemetry::default());
            telemetry.polls.register("web");
            let metrics = SelfMetrics::start(
                &telemetry,
                exporter(&settings, TemporalityPreference::Cumulative).unwrap(),
                Duration::from_secs(3600),
                SelfResource::with_instance_id("h"),
            );
            let flushed = tokio::task::spawn_blocking(move || metrics.force_flush().is_ok());
            flushed.await.unwrap()
        };

        let untrusted = otlp(OtlpProtocol::HttpProtobuf, &endpoint);
        assert!(!flush(untrusted).await, "an unknown CA is refused");
        assert!(seen.lock().unwrap().is_empty());

        let mut trusted = otlp(OtlpProtocol::HttpProtobuf, &endpoint);
        trusted.tls.ca_file = Some(ca_file);
        assert!(flush(trusted).await);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (path, headers, bytes) = &seen[0];
        assert_eq!(path, "/v1/metrics");
        assert_eq!(headers["x-api-key"], "s3cret");
        assert_eq!(headers[CONTENT_TYPE], "application/x-protobuf");
        assert_eq!(headers[CONTENT_ENCODING], "gzip");
        assert!(*bytes > 0);
    }

    #[test]
    fn grpc_metadata_is_replaced_by_the_exporter_headers() {
        use tonic::service::Interceptor as _;
        let settings = otlp(OtlpProtocol::Grpc, "http://127.0.0.1:4317");
        let mut interceptor = ExactMetadata(metadata(&settings).unwrap());
        let mut request = tonic::Request::new(());
        request
            .metadata_mut()
            .insert("authorization", "from-the-environment".parse().unwrap());
        let request = interceptor.call(request).unwrap();
        let keys: Vec<String> = request
            .metadata()
            .keys()
            .map(|k| format!("{k:?}"))
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(
            request.metadata().get("x-api-key").map(|v| v.as_bytes()),
            Some(&b"s3cret"[..])
        );
    }
}
