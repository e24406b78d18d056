//! Compiles the admin API (`proto/`) into Rust: the messages, the `Status` server and its
//! client, included by `src/admin/api.rs`.
//!
//! No system `protoc` is needed: protox (a protobuf compiler in Rust) parses the files into a
//! descriptor set, comments included (they become the generated items' documentation), and
//! tonic-prost-build generates code from that set, as it would from protoc's.

use std::path::Path;

const PROTO_ROOT: &str = "proto";
const FILES: &[&str] = &["supervisord_receiver/admin/v1/status.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    for file in FILES {
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(PROTO_ROOT).join(file).display()
        );
    }
    let descriptors = protox::compile(FILES, [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The client's channel is built by the caller (TCP or UNIX socket): no `connect`.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
