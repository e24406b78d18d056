//! Per-target polling: schedule, filters, status mapping.
pub mod filter;
pub mod outcome;
pub mod status;
