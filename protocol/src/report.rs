//! The per-file report of spec §5 (`NAME.report.json` and the output of `check`).

use serde::{Deserialize, Serialize};

/// One file's verdict. Field order is the order of spec §5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub file: String,
    pub sha256: String,
    /// `csv`, `xlsx`, `json` or `jsonl`; null for an unsupported type.
    pub format: Option<String>,
    /// The detected text encoding (`utf-8`, `gbk`, `gb18030`); null for XLSX and refusals
    /// that happen before decoding.
    pub encoding: Option<String>,
    /// Data rows, blank rows excluded.
    pub rows: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub refused: Option<Refusal>,
    pub errors: Vec<RowError>,
    pub warnings: Vec<Warning>,
    /// Present only when `errors` lists just the first errors of a file with many
    /// (a warning `errors_truncated` says so): the number of errors of each code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_counts: Option<std::collections::BTreeMap<String, u64>>,
}

/// Why a whole file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub row: u64,
    /// Null where unknown, and always null for a classified row.
    pub reg_no: Option<String>,
    /// The English key of the field at fault; null when the row could not be parsed.
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

/// Something the clerk should know that did not cost a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub row: Option<u64>,
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

/// Joins a Chinese message and its English translation the way every message is written.
pub fn zh_en(zh: &str, en: &str) -> String {
    format!("{zh} ({en})")
}

impl Refusal {
    pub fn new(code: &str, zh: &str, en: &str) -> Refusal {
        Refusal { code: code.to_string(), message: zh_en(zh, en) }
    }
}

impl Report {
    /// An empty report for a file about to be read.
    pub fn new(file: &str, sha256: &str) -> Report {
        Report {
            file: file.to_string(),
            sha256: sha256.to_string(),
            format: None,
            encoding: None,
            rows: 0,
            accepted: 0,
            rejected: 0,
            refused: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            error_counts: None,
        }
    }

    /// Marks the whole file refused: nothing from it counts, as no row was taken.
    pub fn refuse(&mut self, refusal: Refusal) {
        self.refused = Some(refusal);
        self.rows = 0;
        self.accepted = 0;
        self.rejected = 0;
        self.errors.clear();
        self.error_counts = None;
    }

    /// The row numbers that were rejected, ascending and without repeats.
    pub fn rejected_rows(&self) -> Vec<u64> {
        let mut rows: Vec<u64> = self.errors.iter().map(|e| e.row).collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// Whether every row was accepted.
    pub fn is_clean(&self) -> bool {
        self.refused.is_none() && self.rejected == 0
    }

    /// A short human-readable form for terminals.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let fmt = self.format.as_deref().unwrap_or("?");
        let enc = self.encoding.as_deref().map(|e| format!(", {e}")).unwrap_or_default();
        if let Some(r) = &self.refused {
            let _ = writeln!(s, "{}: 整个文件被拒收 (refused as a whole) [{fmt}{enc}]", self.file);
            let _ = writeln!(s, "  {}: {}", r.code, r.message);
        } else {
            let _ = writeln!(
                s,
                "{}: {} 行 (rows), {} 接收 (accepted), {} 退回 (rejected) [{fmt}{enc}]",
                self.file, self.rows, self.accepted, self.rejected
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "  第 {} 行 (row {}) [{}] {}: {}", e.row, e.row, e.field.as_deref().unwrap_or("*"), e.code, e.message);
        }
        for w in &self.warnings {
            let row = w.row.map(|r| format!("第 {r} 行 (row {r}) ")).unwrap_or_default();
            let _ = writeln!(s, "  警告 (warning) {row}[{}] {}: {}", w.field.as_deref().unwrap_or("*"), w.code, w.message);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(row: u64) -> RowError {
        RowError { row, reg_no: None, field: Some("reg_no".into()), code: "unknown_record".into(), message: String::new() }
    }

    #[test]
    fn rejected_rows_are_sorted_without_repeats() {
        let mut r = Report::new("a.csv", "00");
        r.errors = vec![err(4), err(2), err(4), err(6)];
        assert_eq!(r.rejected_rows(), vec![2, 4, 6]);
    }

    #[test]
    fn serializes_with_spec_keys_in_order() {
        let mut r = Report::new("a.csv", "ab");
        r.refuse(Refusal::new("no_data_rows", "文件没有数据行", "file holds no data rows"));
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.starts_with(r#"{"file":"a.csv","sha256":"ab","format":null,"encoding":null,"rows":0,"accepted":0,"rejected":0,"refused":{"code":"no_data_rows","message":"文件没有数据行 (file holds no data rows)"}"#), "{s}");
    }
}
