//! The OTLP sink: a gRPC `MetricsService` on 127.0.0.1 that counts what the receiver exports
//! and throws it away.
//!
//! Counting is kept cheap because the sink shares the machine with the receiver it measures:
//! - wire bytes: the raw request body, counted frame by frame before tonic decompresses it
//!   (gRPC length-prefixed messages, gzip-compressed: what the network carries, minus HTTP/2
//!   frame and header overhead);
//! - protobuf bytes: the size of each decompressed message, read in the codec;
//! - resources and data points: a reduced message type that decodes only the nesting down to
//!   the data points and skips their content, instead of building full OTLP messages.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message as _;
use supervisord_receiver::schema::definitions::SELF_SCOPE_NAME;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// The sink accepts any size the receiver may send (its own cap is 4 MiB by default).
const MAX_MESSAGE: usize = 256 << 20;

/// Running totals since the sink started.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    resources: AtomicU64,
    points: AtomicU64,
    self_points: AtomicU64,
    protobuf_bytes: AtomicU64,
    wire_bytes: AtomicU64,
}

/// A reading of [`Counters`]; subtract two to get a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    pub requests: u64,
    /// Resources of supervisord data (one per target and poll).
    pub resources: u64,
    /// Data points of supervisord data.
    pub points: u64,
    /// Data points of the receiver's own metrics (scope `supervisord-receiver/self`).
    pub self_points: u64,
    pub protobuf_bytes: u64,
    pub wire_bytes: u64,
}

impl Counters {
    pub fn read(&self) -> Counts {
        Counts {
            requests: self.requests.load(Ordering::Relaxed),
            resources: self.resources.load(Ordering::Relaxed),
            points: self.points.load(Ordering::Relaxed),
            self_points: self.self_points.load(Ordering::Relaxed),
            protobuf_bytes: self.protobuf_bytes.load(Ordering::Relaxed),
            wire_bytes: self.wire_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Counts {
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_sub(earlier.requests),
            resources: self.resources.saturating_sub(earlier.resources),
            points: self.points.saturating_sub(earlier.points),
            self_points: self.self_points.saturating_sub(earlier.self_points),
            protobuf_bytes: self.protobuf_bytes.saturating_sub(earlier.protobuf_bytes),
            wire_bytes: self.wire_bytes.saturating_sub(earlier.wire_bytes),
        }
    }
}

/// `ExportMetricsServiceRequest` down to the data points, which are skipped, not decoded.
#[derive(Clone, PartialEq, prost::Message)]
struct Request {
    #[prost(message, repeated, tag = "1")]
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceMetrics {
    #[prost(message, repeated, tag = "2")]
    scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeMetrics {
    #[prost(message, optional, tag = "1")]
    scope: Option<Scope>,
    #[prost(message, repeated, tag = "2")]
    metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Scope {
    #[prost(string, tag = "1")]
    name: String,
}

/// The data fields of `Metric` (a oneof on the wire is just alternative fields).
#[derive(Clone, PartialEq, prost::Message)]
struct Metric {
    #[prost(message, optional, tag = "5")]
    gauge: Option<Points>,
    #[prost(message, optional, tag = "7")]
    sum: Option<Points>,
    #[prost(message, optional, tag = "9")]
    histogram: Option<Points>,
    #[prost(message, optional, tag = "10")]
    exponential_histogram: Option<Points>,
    #[prost(message, optional, tag = "11")]
    summary: Option<Points>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Points {
    #[prost(message, repeated, tag = "1")]
    data_points: Vec<Skipped>,
}

/// Any message, its fields skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct Skipped {}

struct Decoded {
    protobuf_bytes: usize,
    request: Request,
}

#[derive(Clone, Copy)]
struct CountingCodec;

impl Codec for CountingCodec {
    type Encode = ExportMetricsServiceResponse;
    type Decode = Decoded;
    type Encoder = CountingCodec;
    type Decoder = CountingCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for CountingCodec {
    type Item = ExportMetricsServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encode: {e}")))
    }
}

impl Decoder for CountingCodec {
    type Item = Decoded;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Decoded>, Status> {
        let protobuf_bytes = bytes::Buf::remaining(src);
        let request = Request::decode(src)
            .map_err(|e| Status::invalid_argument(format!("not an OTLP metrics request: {e}")))?;
        Ok(Some(Decoded {
            protobuf_bytes,
            request,
        }))
    }
}

/// Counts one decoded request.
struct Export(Arc<Counters>);

impl tonic::server::UnaryService<Decoded> for Export {
    type Response = ExportMetricsServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, Status>>;

    fn call(&mut self, request: tonic::Request<Decoded>) -> Self::Future {
        let decoded = request.into_inner();
        let counters = &self.0;
        let (mut resources, mut points, mut self_points) = (0u64, 0u64, 0u64);
        for rm in &decoded.request.resource_metrics {
            let mut own = false;
            for sm in &rm.scope_metrics {
                let n: usize = sm
                    .metrics
                    .iter()
                    .flat_map(|m| {
                        [
                            &m.gauge,
                            &m.sum,
                            &m.histogram,
                            &m.exponential_histogram,
                            &m.summary,
                        ]
                    })
                    .flatten()
                    .map(|p| p.data_points.len())
                    .sum();
                if sm.scope.as_ref().is_some_and(|s| s.name == SELF_SCOPE_NAME) {
                    self_points += n as u64;
                    own = true;
                } else {
                    points += n as u64;
                }
            }
            if !own {
                resources += 1;
            }
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.resources.fetch_add(resources, Ordering::Relaxed);
        counters.points.fetch_add(points, Ordering::Relaxed);
        counters
            .self_points
            .fetch_add(self_points, Ordering::Relaxed);
        counters
            .protobuf_bytes
            .fetch_add(decoded.protobuf_bytes as u64, Ordering::Relaxed);
        std::future::ready(Ok(tonic::Response::new(
            ExportMetricsServiceResponse::default(),
        )))
    }
}

/// The gRPC service, in place of the generated `MetricsServiceServer`, with the counting
/// codec and the wire-byte count around the request body.
#[derive(Clone)]
struct SinkService(Arc<Counters>);

impl tonic::server::NamedService for SinkService {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for SinkService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let counters = Arc::clone(&self.0);
        Box::pin(async move {
            if request.uri().path() != EXPORT_PATH {
                let mut response = http::Response::new(tonic::body::Body::default());
                response.headers_mut().insert(
                    "grpc-status",
                    http::HeaderValue::from(tonic::Code::Unimplemented as i32),
                );
                return Ok(response);
            }
            let wire = Arc::clone(&counters);
            let request = request.map(move |body| {
                body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        wire.wire_bytes
                            .fetch_add(bytes::Buf::remaining(data) as u64, Ordering::Relaxed);
                    }
                    frame
                })
            });
            let mut grpc = tonic::server::Grpc::new(CountingCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE);
            Ok(grpc.unary(Export(counters), request).await)
        })
    }
}

/// A running sink; stops when dropped.
pub struct Sink {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Sink {
    /// Binds 127.0.0.1:0 and serves on `runtime`.
    pub fn start(runtime: &tokio::runtime::Handle) -> std::io::Result<Sink> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = SinkService(Arc::clone(&counters));
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        runtime.spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await;
            if let Err(error) = served {
                eprintln!("load: OTLP sink stopped: {error}");
            }
        });
        Ok(Sink {
            addr,
            counters,
            stop: Some(stop),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
