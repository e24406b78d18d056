//! The translation of poll outcomes to OTLP: which points a poll yields ([`builder`]), as the
//! generated structs or written straight to protobuf ([`encode`]). Names, units and attribute
//! keys come from [`crate::schema`].
pub mod builder;
pub mod encode;

pub use builder::{build_request, resource_attributes};
pub use encode::encode_resource_metrics;
