//! XML-RPC codec: request encoding and a hardened, allocation-proportional response decoder.
//!
//! The decoder accepts what XML-RPC servers (supervisord's marshaller included) emit and refuses
//! what a hostile or misconfigured peer could use against us: no DTD, no entity other than the
//! five predefined ones and character references, a nesting cap, strict UTF-8, strict scalars,
//! nothing after the root element. It reads quick-xml's borrowed events, so text that needs no
//! unescaping is copied once, into the [`Value`] that owns it.
//!
//! That decoder is the general path: every call, every reply, every error message. The replies
//! a poll decodes every interval first go through the `fast` submodule, a byte scanner for the
//! way supervisord writes them, which decodes straight to the typed model and hands anything
//! it does not fully recognise back to this decoder; see there for why.
//!
//! One job per submodule: the data model in `value`, the encoder in `encode`, the decoder in
//! `parse`, `system.multicall` in `multicall`, decode errors and log-safe server text in
//! `error`. Everything is used through the re-exports here.

mod encode;
mod error;
pub(crate) mod fast;
mod multicall;
mod parse;
#[cfg(test)]
mod tests;
mod value;

pub use encode::{encode_call, encode_fault, encode_response};
pub use error::{printable, DecodeError};
pub use multicall::{encode_multicall, split_multicall, unwrap_multicall};
pub use parse::{decode_response, decode_response_keeping_line_ends, MAX_DEPTH};
pub use value::{Fault, Value};
