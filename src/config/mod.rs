//! Configuration: the native format and Datadog's `supervisord.d/conf.yaml`, validated and
//! resolved into [`Settings`].
pub mod secret;
pub mod settings;

pub use settings::*;
