//! huijiao node: the daemon behind the national S&T achievement system — only what a
//! node runs. The binary (`main.rs`, `cli/`) adds the command line; the demo and the
//! test kit are the `huijiao-kit` crate, which this library does not depend on.
//!
//! Layout:
//! - [`daemon`]: `huijiao run` — opens the store and runs the subsystems until shutdown.
//! - [`inbox`]: watching folders, settling files, handling each file exactly once.
//! - [`ingest`]: reading office files (CSV, XLSX, XLS, ODS, JSON, JSONL) into rows and checking them.
//! - [`store`]: the SQLite store, the only code that touches SQLite.
//! - [`config`]: the TOML configuration and its validation.
//! - [`commands`]: the commands beside `run` (the binary's command line calls them).
//! - [`fsx`]: file operations whose errors name the path.
//! - [`clock`]: the wall clock (Beijing time; a skew for tests).

pub mod admin;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod downlink;
pub mod fsx;
pub mod health;
pub mod http;
pub mod inbox;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod net;
pub mod oai;
pub mod packages;
pub mod pki;
pub mod publish;
pub mod registration;
pub mod search;
pub mod service;
pub mod store;
pub mod uplink;
pub mod web;
