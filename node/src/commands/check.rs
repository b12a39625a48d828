//! `huijiao check`: validate files without storing anything.

use crate::ingest::{open_file, validate_rows, DEFAULT_MAX_FILE_SIZE};
use huijiao_protocol::report::{Refusal, Report};
use huijiao_protocol::{RegionTable, Validator};
use std::io::Write;
use std::path::PathBuf;

/// Checks each file and prints its report; returns the process exit code: 0 when every
/// row of every file is accepted, 1 otherwise.
pub fn run(files: &[PathBuf], json: bool, node: Option<&str>, regions: &RegionTable, out: &mut dyn Write) -> anyhow::Result<i32> {
    let validator = Validator { regions, today: crate::clock::today(), node };
    let mut code = 0;
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        let report = match std::fs::read(path) {
            // The same path as the inbox, without a store.
            Ok(bytes) => validate_rows(open_file(&name, bytes, DEFAULT_MAX_FILE_SIZE), &validator, usize::MAX, |_| {}).report,
            Err(e) => {
                let mut r = Report::new(&name, "");
                r.refuse(Refusal::new("unreadable_file", "无法读取文件", &format!("cannot read {}: {e}", path.display())));
                r
            }
        };
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
