//! huijiao node: the daemon and CLI behind the national S&T achievement system.
//!
//! Layout:
//! - [`demo`]: `huijiao demo`, a whole federation of real daemons on loopback.
//! - [`daemon`]: `huijiao run` — opens the store and runs the subsystems until shutdown.
//! - [`inbox`]: watching folders, settling files, handling each file exactly once.
//! - [`ingest`]: reading office files (CSV, XLSX, XLS, ODS, JSON, JSONL) into rows and checking them.
//! - [`store`]: the SQLite store, the only code that touches SQLite.
//! - [`synth`]: deterministic synthetic submissions (demo, tests, benchmarks).
//! - [`hostile`]: hostile submissions (tests, benchmarks).
//! - [`xlsx_writer`]: minimal XLSX and XLS writers for the demo and tests.
//! - [`config`]: the TOML configuration and its validation.
//! - [`audit`]: the Jepsen-style check of a federation run (lost, stale, duplicated).
//! - [`cli`]: argument parsing and dispatch (`main.rs` calls it).
//! - [`commands`]: the CLI commands.
//! - [`fsx`]: file operations whose errors name the path.
//! - [`clock`]: the wall clock (Beijing time; a skew for tests).

pub mod admin;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod downlink;
pub mod fsx;
pub mod health;
pub mod hostile;
pub mod http;
pub mod inbox;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod pki;
pub mod publish;
pub mod search;
pub mod service;
pub mod store;
pub mod synth;
pub mod uplink;
pub mod web;
pub mod xlsx_writer;
