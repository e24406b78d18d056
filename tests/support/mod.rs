//! Transitional: the shared test harness now lives in `tests/testkit/`. `e2e_telemetry.rs` and
//! `e2e_health.rs` still declare `mod support;` and reach it through this re-export until they
//! move into `tests/e2e/` (see docs/testing.md); then this file goes, and `otlp_sink.rs` moves
//! to `tests/testkit/`.
#![allow(dead_code, unused_imports)]

#[path = "../testkit/mod.rs"]
mod testkit;

pub use testkit::*;
