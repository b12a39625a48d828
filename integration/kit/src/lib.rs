//! huijiao-kit: what the demo, the tests and the benchmarks need beside the daemon —
//! never what a node runs. The `huijiao` binary links it for `huijiao demo`; the
//! daemon library does not depend on it, and it does not link the daemon: it starts
//! nodes as processes of the binary and reads their stores through [`demo::Host`].
//!
//! Layout:
//! - [`demo`]: `huijiao demo`, a whole federation of real daemons on loopback.
//! - [`fleet`]: the one way the demo and the test federation lay out nodes, write
//!   their configs and run their processes.
//! - [`audit`]: the Jepsen-style check of a federation run (lost, stale, duplicated).
//! - [`online`]: the demo's units registering online through a node's API.
//! - [`packages`]: the demo's 科技成果包 published at the national node through its API.
//! - [`postgres`]: a private PostgreSQL cluster (tests and benchmarks of the mirror).
//! - [`synth`]: deterministic synthetic submissions (demo, tests, benchmarks).
//! - [`hostile`]: hostile submissions (tests, benchmarks).
//! - [`xlsx_writer`]: minimal XLSX and XLS writers for the demo and tests.

pub mod audit;
pub mod demo;
pub mod fleet;
pub mod hostile;
pub mod online;
pub mod packages;
pub mod postgres;
pub mod synth;
pub mod xlsx_writer;
