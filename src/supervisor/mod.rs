//! Talking to supervisord: transport, XML-RPC codec, typed model, and the poll client.
pub mod client;
pub mod config_info;
pub mod decode;
pub mod events;
mod http1;
pub mod logtail;
pub mod transport;
pub mod xmlrpc;
