//! The fast, in-process tests, in one test binary: the public API of the library (config
//! loading, metrics and their golden files, exporters against in-process OTLP servers), the
//! fuzz checks as property tests, the fuzz corpus, the fast-path differential tests, Python's
//! regex semantics and the layering rule. No supervisord, no receiver subprocess: `cargo test
//! --lib --test unit` runs these alone (docs/testing.md).

#[path = "../testkit/mod.rs"]
mod testkit;

/// The fuzz targets' checks (fuzz/README.md), shared with cargo-fuzz and the stable runner.
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod checks;

mod architecture;
mod config;
mod export;
mod fuzz_config;
mod fuzz_http1;
mod fuzz_regressions;
mod fuzz_xmlrpc;
mod metrics_golden;
mod mutation;
mod python_regex;
mod xmlrpc_fast_path;
