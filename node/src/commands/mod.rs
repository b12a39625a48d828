//! The CLI commands; `main.rs` parses arguments and calls these.

pub mod check;
pub mod query;
pub mod recover;
pub mod status;
