//! The words every layer speaks: supervisord's process and server states, what it reports of a
//! process, and Datadog's up/down/unknown status with its mapping from states.
//!
//! A leaf: it imports nothing of the crate, so settings, the client, the translation and the
//! exporters can all name a state without depending on one another.
pub mod model;
pub mod status;

pub use model::{ProcessConfig, ProcessInfo, ProcessState, Snapshot, SupervisorState, UptimeTrack};
pub use status::{Status, StatusMapping};
