//! supervisord-receiver: watches supervisord instances over XML-RPC and exports what it sees as
//! OpenTelemetry data over OTLP.
//!
//! # Layers
//!
//! Data flows one way: settings → supervisor client → scrape → metrics (translation) → export.
//! Below them lie the leaves, which import only one another; above them, `app` is the only
//! module that sees every layer, and `cli` drives it. Each layer has its own error type.
//!
//! ```text
//!   cli ──► app ──► config (YAML → settings)
//!            │
//!            ├──► supervisor ──► scrape ──► metrics ──► (bytes) ──► export
//!            │                     │                                  │
//!            ├──► admin ──► telemetry ◄───────────────────────────────┘
//!            ▼
//!   leaves: vocab, clock, schema, settings, tls, host
//! ```
//!
//! The rule: a module may import only the modules its row names (and itself). A test
//! (`tests/unit/architecture.rs`) reads this table and fails on any other `crate::` path outside
//! test code.
//!
//! | layer | module | may import |
//! |---|---|---|
//! | leaf | `vocab` | nothing |
//! | leaf | `clock` | nothing |
//! | leaf | `schema` | `vocab` |
//! | leaf | `settings` | `vocab`, `schema` |
//! | leaf | `tls` | `settings` |
//! | leaf | `host` | nothing |
//! | loader | `config` | `vocab`, `schema`, `settings`, `tls` |
//! | client | `supervisor` | `vocab`, `clock`, `settings`, `tls` |
//! | self-telemetry | `telemetry` | `clock`, `schema`, `settings` |
//! | scrape | `scrape` | `vocab`, `clock`, `settings`, `supervisor`, `telemetry`, `host` |
//! | translation | `metrics` | `vocab`, `clock`, `schema`, `settings`, `scrape` |
//! | translation | `logs` | `vocab`, `clock`, `schema`, `settings`, `scrape`, `metrics` |
//! | export | `export` | `clock`, `schema`, `settings`, `tls`, `telemetry` |
//! | admin | `admin` | `clock`, `settings`, `telemetry` |
//! | root | `app` | everything |
//! | root | `cli` | everything |
//!
//! - [`vocab`]: supervisord's states, what it reports of a process, Datadog's status mapping.
//! - [`clock`]: the wall clock in Unix nanoseconds.
//! - [`schema`]: the one table of metrics and attributes, metric switches, `docs/metrics.md`.
//! - [`settings`]: the resolved settings as plain data (filters compiled, defaults filled).
//! - [`tls`]: rustls configurations from TLS settings, the same for every connection.
//! - [`host`]: what a program's process tree uses on this host, from Linux `/proc`.
//! - [`config`]: the YAML loader (native and Datadog formats) that produces settings; only
//!   `app` and `cli` read it.
//! - [`supervisor`]: the transport (TCP, HTTPS, UNIX socket), the XML-RPC codec, the poll client.
//! - [`scrape`]: one target's poll: filters, status mapping, failure backoff, changes, the
//!   programs' resources and output.
//! - [`metrics`]: poll outcomes → OTLP, as structs or straight to protobuf bytes.
//! - [`logs`]: state changes and program output → OTLP log records.
//! - [`export`]: exporters, sending queues, retries; receives encoded requests only.
//! - [`telemetry`]: the receiver's own state (for health) and metrics (OpenTelemetry SDK
//!   instruments declared from [`schema`]); the targets' latest metrics (for `/metrics`).
//! - [`admin`]: the `/healthz` and `/metrics` (OpenMetrics) endpoints, and the status API (gRPC, generated from `proto/`)
//!   served beside it on the admin endpoint.
//! - [`app`]: the composition root: pipeline, target tasks, push mode, reload, shutdown.
//! - [`cli`]: the `run`, `listen`, `check`, `validate` and `status` commands.
pub mod admin;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod export;
pub mod host;
pub mod logs;
pub mod metrics;
pub mod schema;
pub mod scrape;
pub mod settings;
pub mod supervisor;
pub mod telemetry;
pub mod tls;
pub mod vocab;
