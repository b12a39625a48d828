//! `huijiao check`: validate files without storing anything.

use crate::ingest::{check_path, Limits};
use huijiao_protocol::{RegionTable, Validator};
use std::io::Write;
use std::path::PathBuf;

/// Checks each file and prints its report; returns the process exit code: 0 when every
/// row of every file is accepted, 1 otherwise.
pub fn run(files: &[PathBuf], json: bool, node: Option<&str>, regions: &RegionTable, out: &mut dyn Write) -> anyhow::Result<i32> {
    let validator = Validator { regions, today: crate::clock::today(), node };
    let limits = Limits::default();
    let mut code = 0;
    for path in files {
        // The same path as the inbox, without a store.
        let report = check_path(path, &validator, &limits);
        if !report.is_clean() {
            code = 1;
        }
        if json {
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            write!(out, "{}", report.to_text())?;
        }
    }
    Ok(code)
}
