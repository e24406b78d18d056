//! The end-to-end suites, in one test binary: the real `supervisord-receiver` binary against a
//! real supervisord and real OTLP servers. One module per suite, so `cargo test --test e2e
//! datadog::` runs one of them; the shared harness is `tests/testkit/`.
//!
//! The suites share one process: nothing here may set environment variables, change the
//! working directory or install process-wide handlers. Tests that load the machine on purpose
//! take [`testkit::gate::exclusive`]; see docs/testing.md.

#[path = "../testkit/mod.rs"]
mod testkit;

mod cli;
mod clock_faults;
mod datadog;
mod demo;
mod disk_faults;
mod errors;
mod export_reliability;
mod harness;
mod health;
mod hostile;
mod intent;
mod native;
mod network_faults;
mod openmetrics;
mod output;
mod push;
mod reload;
mod resources;
mod secrets;
mod state_changes;
mod status;
mod stop_flush;
mod telemetry;
mod tls;
mod zero_config;
