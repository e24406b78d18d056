//! Talking to supervisord: transport, XML-RPC codec, typed model, and the poll client.
pub mod client;
pub mod config_info;
pub mod decode;
pub mod events;
mod http1;
/// The direct connection's reply reader, for the fuzz target `http1_reply` and its tests only.
#[doc(hidden)]
pub use http1::read_reply_from;
pub mod logtail;
pub mod targeted;
pub mod transport;
pub mod xmlrpc;
