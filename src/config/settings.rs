//! The resolved settings the program runs on: every default filled, every regex compiled,
//! every endpoint parsed. Produced once by [`crate::config::load`]; nothing downstream re-reads
//! the YAML.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::secret::Secret;
use crate::metrics::MetricToggles;
use crate::scrape::filter::ProcessFilter;
use crate::scrape::status::StatusMapping;

/// Which file format the settings came from; it changes attribute and message conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Native,
    /// Datadog's `supervisord.d/conf.yaml`: points also carry `supervisord_server`.
    Datadog,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub format: ConfigFormat,
    /// Wait before the first poll.
    pub initial_delay: Duration,
    pub targets: Vec<Target>,
    pub metrics: MetricToggles,
    pub exporters: Vec<ExporterSettings>,
    /// Non-fatal remarks found while loading (deprecated keys, ignored options); logged at start.
    pub warnings: Vec<String>,
}

/// Where a supervisord listens. The XML-RPC path is always `/RPC2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://host:port` or `https://host:port` (`[inet_http_server]`).
    Tcp { tls: bool, host: String, port: u16 },
    /// `[unix_http_server]` socket file.
    Unix { path: PathBuf },
}

impl Endpoint {
    /// How the endpoint is named in messages: `http://localhost:9001`, `unix:///run/s.sock`.
    /// Never carries credentials.
    pub fn display(&self) -> String {
        match self {
            Endpoint::Tcp { tls, host, port } => {
                let scheme = if *tls { "https" } else { "http" };
                if host.contains(':') && !host.starts_with('[') {
                    format!("{scheme}://[{host}]:{port}")
                } else {
                    format!("{scheme}://{host}:{port}")
                }
            }
            Endpoint::Unix { path } => format!("unix://{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// TLS settings towards a server (supervisord over HTTPS, or an OTLP backend).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with extra CA certificates, added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Turns certificate verification off; logged as a warning at start.
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub endpoint: Endpoint,
    pub credentials: Option<Credentials>,
    pub tls: TlsSettings,
    /// Time between the starts of two polls of this target.
    pub collection_interval: Duration,
    /// Bound on one whole poll (connect, request, reply).
    pub timeout: Duration,
    pub filter: ProcessFilter,
    pub status_mapping: StatusMapping,
    /// Extra resource attributes (native `resource_attributes`, Datadog `tags`), in order.
    pub resource_attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl OtlpProtocol {
    pub fn name(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub protocol: OtlpProtocol,
    /// For gRPC, the server's base URL (`http://localhost:4317`). For HTTP, the full URL metrics
    /// are POSTed to, with `/v1/metrics` already resolved by the OTLP spec's path rules.
    pub endpoint: String,
    /// Header values may hold API keys (`dd-api-key`), so they are secrets.
    pub headers: Vec<(String, Secret)>,
    pub gzip: bool,
    pub timeout: Duration,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebugVerbosity {
    /// One line per export: resources and point counts.
    Basic,
    /// Every point with its attributes.
    Detailed,
}

#[derive(Debug, Clone)]
pub enum ExporterSettings {
    Otlp(OtlpSettings),
    /// Prints metrics to stdout.
    Debug {
        verbosity: DebugVerbosity,
    },
}
