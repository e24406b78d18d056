//! Exporters: OTLP over gRPC, HTTP/protobuf, HTTP/JSON, and the debug exporter.
