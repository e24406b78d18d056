//! The resolved settings the program runs on: every default filled, every regex compiled,
//! every endpoint parsed. Produced once by [`crate::config::load`]; nothing downstream re-reads
//! the YAML.

pub mod filter;
pub mod pattern;
pub mod secret;
pub mod shard;

use std::path::PathBuf;
use std::time::Duration;

use crate::schema::MetricToggles;
use crate::settings::filter::ProcessFilter;
use crate::settings::secret::Secret;
use crate::vocab::StatusMapping;

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
    /// The receiver's own metrics (native `telemetry:`).
    pub telemetry: TelemetrySettings,
    /// The `/healthz` endpoint (native `health:`); `None`: not served.
    pub health: Option<HealthSettings>,
    /// The admin endpoint (native `admin:`): the status API, `/healthz` and `/metrics` on one
    /// listener; `None`: not served.
    pub admin: Option<AdminSettings>,
    /// Which temporality sums are sent with (native `metrics_temporality`, else
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else cumulative).
    pub temporality: TemporalityPreference,
    /// The log records sent besides the metrics (native `logs:`).
    pub logs: LogSettings,
    /// Non-fatal remarks found while loading (deprecated keys, ignored options); logged at start.
    pub warnings: Vec<String>,
}

/// Self-telemetry: the receiver's own metrics, sent by the OpenTelemetry SDK on an OTLP exporter
/// of their own (see `crate::telemetry::self_metrics`), apart from the targets' data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    pub metrics: bool,
    /// `telemetry.interval`, the time between two exports, when the file sets it. It wins over
    /// `OTEL_METRIC_EXPORT_INTERVAL`, which wins over [`TelemetrySettings::default_interval`].
    pub interval: Option<Duration>,
    /// The interval when neither the file nor the environment sets one: the collection
    /// interval, so the receiver's metrics come at the pace of the targets'.
    pub default_interval: Duration,
    /// `telemetry.exporter`: the key of the OTLP exporter (`otlp`, `otlp/backend`) whose
    /// endpoint, protocol, headers, compression, timeout and TLS the self-telemetry exporter
    /// uses; `None`: the first OTLP exporter.
    pub exporter: Option<String>,
}

impl TelemetrySettings {
    /// The Datadog format mirrors the check, which sends nothing about itself: no metrics
    /// appear (or are billed) that the check did not send.
    pub fn off() -> Self {
        TelemetrySettings {
            metrics: false,
            interval: None,
            default_interval: Duration::from_secs(15),
            exporter: None,
        }
    }
}

/// The OTLP signals the receiver sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 2] = [Signal::Metrics, Signal::Logs];

    pub fn name(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

/// The aggregation temporality of one sum's points, as OTLP writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Temporality {
    /// Every point counts from the series' start.
    #[default]
    Cumulative,
    /// Every point counts from where the previous point of the series ended.
    Delta,
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, as the OpenTelemetry specification
/// defines its three values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemporalityPreference {
    #[default]
    Cumulative,
    Delta,
    /// Delta for counts the receiver accumulates from events (a synchronous counter's kind),
    /// cumulative for counts read from snapshots (an asynchronous counter's kind) and for
    /// up-down counts.
    LowMemory,
}

impl TemporalityPreference {
    /// Every preference, in the order the values are listed in messages.
    pub const ALL: [TemporalityPreference; 3] = [
        TemporalityPreference::Cumulative,
        TemporalityPreference::Delta,
        TemporalityPreference::LowMemory,
    ];

    /// The specification's spelling: `cumulative`, `delta`, `lowmemory`.
    pub fn name(self) -> &'static str {
        match self {
            TemporalityPreference::Cumulative => "cumulative",
            TemporalityPreference::Delta => "delta",
            TemporalityPreference::LowMemory => "lowmemory",
        }
    }

    /// One of the specification's values, in any case (`Delta`, `LOWMEMORY`); anything else,
    /// surrounding spaces included, is `None`.
    pub fn parse(text: &str) -> Option<TemporalityPreference> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
    }

    /// The temporality of a count that comes from `source`: cumulative or delta as preferred;
    /// `lowmemory` gives delta to counts accumulated from events (synchronous counters) and
    /// cumulative to counts derived from snapshots (asynchronous counters).
    pub fn temporality(self, source: crate::schema::definitions::CountSource) -> Temporality {
        match self {
            TemporalityPreference::Cumulative => Temporality::Cumulative,
            TemporalityPreference::Delta => Temporality::Delta,
            TemporalityPreference::LowMemory if source.delta_under_low_memory() => {
                Temporality::Delta
            }
            TemporalityPreference::LowMemory => Temporality::Cumulative,
        }
    }

    /// The temporality `metric` is sent with; `None` for a gauge, which has none.
    pub fn for_metric(self, metric: crate::schema::MetricId) -> Option<Temporality> {
        let source = metric.def().kind.count_source()?;
        Some(self.temporality(source))
    }
}

/// Which log records are produced (native `logs:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// One record per process or supervisord state change. Default on.
    pub state_changes: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            state_changes: true,
        }
    }
}

/// The health endpoint: `GET /healthz` on a local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// A loopback address unless the file explicitly allows another one; port 0 picks a free
    /// port, logged at start.
    pub endpoint: std::net::SocketAddr,
    /// Exports failing for longer than this turn the endpoint unhealthy (503).
    pub unhealthy_after: Duration,
}

/// The admin endpoint: the gRPC status API (`proto/`), `GET /healthz` and `GET /metrics` on
/// one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    pub endpoint: AdminEndpoint,
    /// Exports failing for longer than this turn `/healthz` unhealthy (503) and the status
    /// report's health with it.
    pub unhealthy_after: Duration,
}

/// Where the admin endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminEndpoint {
    /// A loopback address unless the file explicitly allows another one; port 0 picks a free
    /// port, logged at start.
    Tcp(std::net::SocketAddr),
    /// A UNIX socket file, created with `mode` as its permissions and removed on stop.
    Unix { path: PathBuf, mode: u32 },
}

impl AdminEndpoint {
    /// How the endpoint is named in messages and on the `status` command line:
    /// `127.0.0.1:8787`, `unix:///run/supervisord-receiver/admin.sock`.
    pub fn display(&self) -> String {
        match self {
            AdminEndpoint::Tcp(addr) => addr.to_string(),
            AdminEndpoint::Unix { path, .. } => format!("unix://{}", path.display()),
        }
    }
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
    /// PEM certificate chain presented to servers that ask for one (mutual TLS); set together
    /// with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`. Only its path is held: the key is read when the
    /// connection is built, so it never sits in the settings.
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, instead of the endpoint's host (a server
    /// reached by IP address or through a tunnel).
    pub server_name: Option<String>,
    /// Turns certificate verification off; logged as a warning at start.
    pub insecure_skip_verify: bool,
}

/// Push mode's default [`Target::reconcile_interval`]. Long enough that supervisord's cost of
/// being monitored falls far more than 5x: 12 full polls an hour instead of 360 at a 10 s
/// interval (240 at Datadog's 15 s), so it answers `getAllProcessInfo` 20 to 30 times less
/// often (10x less CPU in all, `getAllConfigInfo` included: `docs/performance.md`). Short
/// enough that an event it dropped (it drops a listener's oldest event when the listener's
/// `buffer_size` is full) is corrected within 5 minutes.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);

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
    /// Push mode (`listen`) only: time between two full polls (`getAllProcessInfo`) of the
    /// target, which reconcile what the events told. Between them, each
    /// `collection_interval` exports the snapshot the events keep up to date. `run` ignores
    /// it: there every poll is a full one.
    pub reconcile_interval: Duration,
    pub filter: ProcessFilter,
    pub status_mapping: StatusMapping,
    /// Extra resource attributes (native `resource_attributes`, Datadog `tags`), in order, each
    /// key once.
    pub resource_attributes: Vec<(String, String)>,
    /// Attributes every point of this target carries: in the Datadog format
    /// `supervisord_server`, the user's `tags` (every value of a key given twice) and `service`,
    /// because Datadog's OTLP ingest makes tags of point attributes only (the loader decides;
    /// the translation only copies). Empty in the native format, whose users choose
    /// `resource_attributes_as_tags` or a Collector processor instead.
    pub point_attributes: Vec<(String, String)>,
    /// Whether the connection stays open between polls (native `keep_alive`, default on).
    /// Off trades a connect per poll for open files: one per poll in flight rather than one
    /// per target, for fleets larger than the open-file limit.
    pub keep_alive: bool,
    /// Whether the programs' CPU, memory, threads and descriptors are read from /proc.
    pub resources: ResourcesMode,
    /// Whether per-process status and state points carry the `autostart` attribute (from
    /// `getAllConfigInfo`): always in the native format; in the Datadog format only when the
    /// instance asks (`autostart_tag: true`), so the check's output stays as it was.
    pub autostart_attribute: bool,
    /// The programs' output sent as log records (native `output:`); `None`: not tailed.
    pub output: Option<OutputSettings>,
}

/// Which of a program's logs supervisord keeps (`stdout_logfile`, `stderr_logfile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub const ALL: [OutputStream; 2] = [OutputStream::Stdout, OutputStream::Stderr];

    /// The `log.iostream` value of the OpenTelemetry semantic conventions.
    pub fn name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// Tailing the programs' output through supervisord's log API (native per-target `output:`).
#[derive(Debug, Clone)]
pub struct OutputSettings {
    /// Which of the monitored programs are tailed (every one when no include is set).
    pub filter: ProcessFilter,
    /// The streams tailed, each once.
    pub streams: Vec<OutputStream>,
    /// Also tail supervisord's own log (`readLog`).
    pub main_log: bool,
    /// Bytes read at most per program and stream in one poll; a backlog is read over several
    /// polls.
    pub max_bytes_per_poll: u64,
    /// Unread bytes a stream may fall behind by; beyond it the oldest are skipped (and a record
    /// says how many), so a program that always writes faster than it is read costs bounded
    /// work and the newest output still arrives.
    pub max_backlog_bytes: u64,
    /// A longer line is cut to this many bytes, and its record marked.
    pub max_line_bytes: usize,
    /// A last line without its newline is sent as it is after waiting this long for the rest.
    pub partial_line_timeout: Duration,
}

impl Default for OutputSettings {
    fn default() -> Self {
        OutputSettings {
            filter: ProcessFilter::default(),
            streams: OutputStream::ALL.to_vec(),
            main_log: false,
            max_bytes_per_poll: 256 * 1024,
            max_backlog_bytes: 8 * 1024 * 1024,
            max_line_bytes: 16 * 1024,
            partial_line_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether a target's programs are read from this host's /proc (native `process_resources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResourcesMode {
    /// When supervisord is on this host: a UNIX socket, or TCP to a loopback address.
    #[default]
    Auto,
    On,
    Off,
}

impl Target {
    /// Whether the pids supervisord reports for this target are this host's. A TCP endpoint
    /// on another address may still be this host (its own IP): `process_resources: true` says
    /// so; a container that shares no pid namespace with supervisord sees other pids under
    /// the same socket: `false` says so.
    pub fn reads_resources(&self) -> bool {
        match self.resources {
            ResourcesMode::On => true,
            ResourcesMode::Off => false,
            ResourcesMode::Auto => match &self.endpoint {
                Endpoint::Unix { .. } => true,
                Endpoint::Tcp { host, .. } => {
                    let bare = host.trim_start_matches('[').trim_end_matches(']');
                    bare.eq_ignore_ascii_case("localhost")
                        || bare
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
            },
        }
    }
}

impl Target {
    /// A target with the defaults both formats start from: no credentials, no TLS settings,
    /// 15 s interval, 10 s timeout, every process, Datadog's status mapping, no attributes.
    pub fn new(name: impl Into<String>, endpoint: Endpoint) -> Target {
        Target {
            name: name.into(),
            endpoint,
            credentials: None,
            tls: TlsSettings::default(),
            collection_interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            filter: ProcessFilter::default(),
            status_mapping: StatusMapping::default(),
            resource_attributes: Vec::new(),
            point_attributes: Vec::new(),
            keep_alive: true,
            resources: ResourcesMode::Auto,
            autostart_attribute: true,
            output: None,
        }
    }
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

/// One OTLP exporter: where and how it sends, and which signals it carries.
///
/// As in the OpenTelemetry Collector, where an `otlp` exporter named in two pipelines is two
/// exporters, each signal it carries gets a sending queue and a sender of its own (see
/// `crate::export::pipeline`): logs never wait behind metrics, nor metrics behind logs. The
/// connection settings (protocol, headers, compression, timeout, TLS) are shared.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub protocol: OtlpProtocol,
    /// For gRPC, the server's base URL (`http://localhost:4317`). For HTTP, the full URL metrics
    /// are POSTed to, with `/v1/metrics` already resolved by the OTLP spec's path rules. Set
    /// even when the exporter carries no metrics (the receiver's own metrics may use it); an
    /// HTTP exporter carrying logs only, configured with its logs URL alone, repeats that URL.
    pub endpoint: String,
    /// Where logs go: for gRPC the same base URL as `endpoint` (the method path tells the
    /// signals apart); for HTTP the full URL logs are POSTed to, `/v1/logs` resolved by the same
    /// rules, or the signal-specific URL as given.
    pub logs_endpoint: String,
    /// The signals this exporter carries: never empty, each once, in [`Signal::ALL`] order.
    /// Both unless configured otherwise, so a backend that takes only metrics can be kept from
    /// logs.
    pub signals: Vec<Signal>,
    /// Header values may hold API keys (`dd-api-key`), so they are secrets.
    pub headers: Vec<(String, Secret)>,
    pub gzip: bool,
    pub timeout: Duration,
    pub tls: TlsSettings,
    /// The exporter's key (`otlp`, `otlp/backend`): names it in logs and keys its persistent
    /// queue, so a restart finds the same exporter's data.
    pub name: String,
    pub delivery: DeliverySettings,
}

/// How an OTLP exporter holds and resends data while its backend is slow or down, with the
/// OpenTelemetry Collector's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    pub queue: QueueSettings,
    pub retry: RetrySettings,
    /// Bound on one export request, in bytes of its protobuf encoding before compression;
    /// larger batches are split.
    pub max_request_size: u64,
}

impl DeliverySettings {
    /// 4 MiB: what an OpenTelemetry Collector's gRPC receiver accepts by default
    /// (`max_recv_msg_size_mib: 4`).
    pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 4 * 1024 * 1024;
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            queue: QueueSettings::default(),
            retry: RetrySettings::default(),
            max_request_size: Self::DEFAULT_MAX_REQUEST_SIZE,
        }
    }
}

/// The sending queue between the pollers and one exporter (`sending_queue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Off: nothing waits; a batch that arrives while the previous one is still being sent is
    /// dropped (counted).
    pub enabled: bool,
    pub max_batches: u64,
    pub max_bytes: u64,
    /// Directory of the persistent queue; `None` keeps the queue in memory.
    pub storage: Option<PathBuf>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            max_batches: 1000,
            max_bytes: 64 * 1024 * 1024,
            storage: None,
        }
    }
}

/// Retries of a failed export (`retry_on_failure`): exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    pub enabled: bool,
    pub initial_interval: Duration,
    pub max_interval: Duration,
    /// Give up on a batch this long after its first attempt; zero retries forever.
    pub max_elapsed_time: Duration,
    pub multiplier: f64,
    /// Each wait is drawn from `[w * (1 - f), w * (1 + f)]`.
    pub randomization_factor: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebugVerbosity {
    /// One line per export: resources and point counts.
    Basic,
    /// Every point with its attributes.
    Detailed,
}

/// Built once at load, a handful per process: the variants' size difference costs nothing, and
/// a box would be noise at every use.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ExporterSettings {
    Otlp(OtlpSettings),
    /// Prints metrics to stdout.
    Debug {
        verbosity: DebugVerbosity,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: Endpoint, resources: ResourcesMode) -> Target {
        Target {
            resources,
            ..Target::new("t", endpoint)
        }
    }

    fn tcp(host: &str) -> Endpoint {
        Endpoint::Tcp {
            tls: false,
            host: host.into(),
            port: 9001,
        }
    }

    #[test]
    fn resources_are_read_for_this_host_unless_told_otherwise() {
        let unix = Endpoint::Unix {
            path: "/run/supervisor.sock".into(),
        };
        let cases = [
            (unix.clone(), ResourcesMode::Auto, true),
            (tcp("127.0.0.1"), ResourcesMode::Auto, true),
            (tcp("127.8.9.10"), ResourcesMode::Auto, true),
            (tcp("::1"), ResourcesMode::Auto, true),
            (tcp("[::1]"), ResourcesMode::Auto, true),
            (tcp("LocalHost"), ResourcesMode::Auto, true),
            (tcp("10.0.0.12"), ResourcesMode::Auto, false),
            (tcp("web-1.example"), ResourcesMode::Auto, false),
            (tcp("10.0.0.12"), ResourcesMode::On, true),
            (unix, ResourcesMode::Off, false),
        ];
        for (endpoint, mode, expected) in cases {
            let shown = endpoint.display();
            assert_eq!(
                target(endpoint, mode).reads_resources(),
                expected,
                "{shown} {mode:?}"
            );
        }
    }
}
