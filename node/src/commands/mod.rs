//! The commands beside `run`; the binary's `cli` parses arguments and calls these.

pub mod check;
pub mod query;
pub mod recover;
pub mod registration;
pub mod setup;
pub mod status;
