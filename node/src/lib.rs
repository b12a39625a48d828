//! huijiao node: the daemon and CLI behind the national S&T achievement system.
//!
//! Layout:
//! - [`ingest`]: reading office files (CSV, XLSX, JSON, JSONL) into rows and checking them.
//! - [`config`]: the TOML configuration and its validation.
//! - [`commands`]: the CLI commands `main.rs` dispatches to.
//! - [`clock`]: the wall clock, read only at the edges.

pub mod clock;
pub mod commands;
pub mod config;
pub mod ingest;
