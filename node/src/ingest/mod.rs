//! Reading office files into rows and checking them (spec §1, §3, §5).
//!
//! [`parse_file`] turns a file's bytes into [`Parsed`] rows or a whole-file refusal;
//! [`check_rows`] validates the rows. Both are pure: the inbox and `huijiao check` share
//! them, so a file gets the same verdict from either, except for the rules only a store
//! can decide (`unknown_record`, `not_origin`), which the store adds.

mod json;
pub mod text;
mod xlsx;

use huijiao_protocol::fields::{Field, ERROR_COLUMN};
use huijiao_protocol::record::{hex, sha256};
use huijiao_protocol::report::{zh_en, Refusal, Report, RowError, Warning};
use huijiao_protocol::validate::{RawRow, RawValue, Row, Validator};

/// Default per-file size limit of spec §1.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

/// The file types of spec §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
    Json,
    Jsonl,
}

impl Format {
    /// By extension, case-insensitively.
    pub fn from_name(name: &str) -> Option<Format> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Whether the inbox must leave a file alone (spec §1): hidden files, Excel lock files
/// and files still being written under a temporary name.
pub fn is_ignored_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.') || name.starts_with("~$") || [".tmp", ".part", ".crdownload", ".swp"].iter().any(|s| lower.ends_with(s))
}

/// One data row as read, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub row: u64,
    /// The recognised cells. Together with `extra` they are the row as given.
    pub raw: RawRow,
    /// Cells of columns that map to no field (unknown or repeated columns), by
    /// column index: only these are kept besides `raw`, so a row's text is stored once.
    pub extra: Vec<(usize, String)>,
    /// Set when the row could not be parsed at all (a malformed JSON line, an
    /// unterminated quote): the row is rejected with this error.
    pub broken: Option<RowError>,
}

/// A file read into rows, or refused.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// File, hash, format, encoding, warnings, `rows`, and `refused` when refused.
    pub report: Report,
    /// Column headings for `NAME.rejected.csv`, without the error column.
    pub columns: Vec<String>,
    /// The field each column fills, if any.
    pub column_fields: Vec<Option<Field>>,
    /// Non-blank data rows in file order.
    pub rows: Vec<SourceRow>,
}

impl Parsed {
    /// A row's cells as given, aligned with `columns`.
    pub fn given(&self, r: &SourceRow) -> Vec<String> {
        (0..self.columns.len())
            .map(|i| match r.extra.iter().find(|(c, _)| *c == i) {
                Some((_, s)) => s.clone(),
                None => match self.column_fields.get(i).copied().flatten() {
                    Some(f) => r.raw.cells.iter().find(|(g, _)| *g == f).map(|(_, v)| v.display()).unwrap_or_default(),
                    None => String::new(),
                },
            })
            .collect()
    }
}

/// What a reader hands back before the common header checks.
pub(crate) struct Table {
    pub encoding: Option<&'static str>,
    pub columns: Vec<String>,
    pub column_fields: Vec<Option<Field>>,
    pub rows: Vec<SourceRow>,
    pub warnings: Vec<Warning>,
    /// Fields present as columns (CSV/XLSX); None for JSON, where keys are per row.
    pub header_fields: Option<Vec<Field>>,
}

/// Reads a file's bytes. Never panics; a file that cannot be read at all comes back
/// with `report.refused` set and no rows.
pub fn parse_file(name: &str, bytes: &[u8], max_size: u64) -> Parsed {
    let mut report = Report::new(name, &hex(&sha256(bytes)));
    let refused = |mut report: Report, r: Refusal| {
        report.refuse(r);
        Parsed { report, columns: Vec::new(), column_fields: Vec::new(), rows: Vec::new() }
    };
    let Some(format) = Format::from_name(name) else {
        return refused(
            report,
            Refusal::new("unsupported_file_type", "不支持的文件类型，只接受 .csv、.xlsx、.json、.jsonl、.ndjson", "unsupported file type"),
        );
    };
    report.format = Some(format.as_str().to_string());
    if bytes.len() as u64 > max_size {
        return refused(report, too_large(bytes.len() as u64, max_size));
    }
    if bytes.is_empty() {
        return refused(report, Refusal::new("empty_file", "文件是空的", "file is empty"));
    }
    let table = match format {
        Format::Csv => read_csv(bytes),
        Format::Xlsx => xlsx::read(bytes),
        Format::Json => json::read_json(bytes),
        Format::Jsonl => json::read_jsonl(bytes),
    };
    let table = match table {
        Ok(t) => t,
        Err(r) => return refused(report, r),
    };
    report.encoding = table.encoding.map(str::to_string);
    report.warnings = table.warnings;
    report.rows = table.rows.len() as u64;
    if table.rows.is_empty() {
        return refused(report, Refusal::new("no_data_rows", "文件没有数据行", "file holds no data rows"));
    }
    if let Some(present) = &table.header_fields {
        if let Some(r) = missing_columns(present, &table.rows) {
            return refused(report, r);
        }
    }
    Parsed { report, columns: table.columns, column_fields: table.column_fields, rows: table.rows }
}

/// The refusal for a file over the size limit.
pub fn too_large(size: u64, max: u64) -> Refusal {
    let mib = |b: u64| b.div_ceil(1024 * 1024);
    Refusal::new(
        "file_too_large",
        &format!("文件大小 {} MiB 超过上限 {} MiB，请拆分后再提交", mib(size), mib(max)),
        &format!("file is {} MiB, over the {} MiB limit; split it", mib(size), mib(max)),
    )
}

/// A required column missing from the header refuses the file. `reg_no` is always
/// required; the others only when some row is not a withdrawal, because a withdrawal
/// needs only `reg_no` (spec §3).
fn missing_columns(present: &[Field], rows: &[SourceRow]) -> Option<Refusal> {
    let missing: Vec<Field> = Field::ALL
        .into_iter()
        .filter(|f| f.required() && !present.contains(f))
        .filter(|f| *f == Field::RegNo || rows.iter().any(|r| r.broken.is_none() && !r.raw.is_withdraw()))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let zh: Vec<String> = missing.iter().map(|f| f.zh().to_string()).collect();
    let en: Vec<&str> = missing.iter().map(|f| f.key()).collect();
    Some(Refusal::new("missing_column", &format!("缺少必填列：{}", zh.join("、")), &format!("required column missing: {}", en.join(", "))))
}

/// Maps header cells to fields; unknown columns become warnings, a second column for
/// the same field is ignored with a warning.
pub(crate) fn map_header(header: &[String]) -> (Vec<Option<Field>>, Vec<Warning>) {
    let mut seen = Vec::new();
    let mut warnings = Vec::new();
    let map = header
        .iter()
        .map(|h| {
            let name = h.trim();
            if name.is_empty() || name == ERROR_COLUMN || name == json::RAW_COLUMN {
                return None;
            }
            match Field::from_header(name) {
                Some(f) if seen.contains(&f) => {
                    warnings.push(Warning {
                        row: None,
                        field: Some(name.to_string()),
                        code: "duplicate_column".into(),
                        message: zh_en(
                            &format!("列“{name}”与前面的列重复，已忽略"),
                            &format!("column `{name}` repeats an earlier column and is ignored"),
                        ),
                    });
                    None
                }
                Some(f) => {
                    seen.push(f);
                    Some(f)
                }
                None => {
                    warnings.push(unknown_column(name));
                    None
                }
            }
        })
        .collect();
    (map, warnings)
}

pub(crate) fn unknown_column(name: &str) -> Warning {
    Warning {
        row: None,
        field: Some(name.to_string()),
        code: "unknown_column".into(),
        message: zh_en(&format!("未知列“{name}”，已忽略"), &format!("unknown column `{name}` ignored")),
    }
}

fn read_csv(bytes: &[u8]) -> Result<Table, Refusal> {
    let (text, encoding) = text::decode(bytes)?;
    let mut records = text::parse_csv(&text).into_iter();
    // The first non-blank line is the header (spec §1: "the first row").
    let header = loop {
        match records.next() {
            None => return Err(Refusal::new("no_data_rows", "文件没有数据行", "file holds no data rows")),
            Some(r) if r.fields.iter().all(|f| f.trim().is_empty()) => continue,
            Some(r) => break r,
        }
    };
    let (map, warnings) = map_header(&header.fields);
    let width = header.fields.len();
    let mut rows = Vec::new();
    for rec in records {
        if !rec.unterminated && rec.fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let extra_cells = rec.fields.iter().skip(width).any(|f| !f.trim().is_empty());
        let mut raw = RawRow { row: rec.row, cells: Vec::with_capacity(width) };
        let mut extra = Vec::new();
        let mut fields = rec.fields.into_iter();
        for (i, f) in map.iter().enumerate() {
            let cell = fields.next();
            match (f, cell) {
                (Some(f), cell) => raw.cells.push((*f, cell.map_or(RawValue::Empty, RawValue::Text))),
                (None, Some(c)) if !c.is_empty() => extra.push((i, c)),
                (None, _) => {}
            }
        }
        let broken = if rec.unterminated {
            Some(broken_row(
                rec.row,
                "unterminated_quote",
                "引号未闭合，该行及其后内容无法解析",
                "unterminated quote; the row cannot be parsed",
            ))
        } else if extra_cells {
            Some(broken_row(
                rec.row,
                "too_many_cells",
                "该行的单元格多于表头的列数（可能有多余的逗号）",
                "the row has more cells than the header (a stray comma?)",
            ))
        } else {
            None
        };
        rows.push(SourceRow { row: rec.row, raw, extra, broken });
    }
    let fields: Vec<Field> = map.iter().flatten().copied().collect();
    Ok(Table { encoding: Some(encoding), columns: header.fields, column_fields: map, rows, warnings, header_fields: Some(fields) })
}

/// An error for a row that could not be parsed at all: no field to blame.
pub fn broken_row(row: u64, code: &str, zh: &str, en: &str) -> RowError {
    RowError { row, reg_no: None, field: None, code: code.into(), message: zh_en(zh, en) }
}

/// The outcome of validating a parsed file.
#[derive(Debug)]
pub struct Checked {
    pub report: Report,
    /// Valid rows in file order, with their row numbers.
    pub valid: Vec<(u64, Row)>,
}

/// Validates every row; the report gets counts and one error per broken rule.
pub fn check_rows(parsed: &Parsed, validator: &Validator<'_>) -> Checked {
    let mut valid = Vec::with_capacity(parsed.rows.len());
    let report = validate_rows(parsed, validator, usize::MAX, |chunk| valid.extend(chunk));
    Checked { report, valid }
}

/// Validates rows in chunks of `chunk` valid rows, handing each chunk to `sink` as soon
/// as it is full so a store can write while later rows are still being checked.
/// Returns the report with counts and errors.
pub fn validate_rows(parsed: &Parsed, validator: &Validator<'_>, chunk: usize, mut sink: impl FnMut(Vec<(u64, Row)>)) -> Report {
    let mut report = parsed.report.clone();
    if report.refused.is_some() {
        return report;
    }
    let mut buf = Vec::new();
    for r in &parsed.rows {
        let result = match &r.broken {
            Some(e) => Err(vec![e.clone()]),
            None => validator.validate(&r.raw),
        };
        match result {
            Ok(row) => {
                report.accepted += 1;
                buf.push((r.row, row));
                if buf.len() >= chunk {
                    sink(std::mem::take(&mut buf));
                }
            }
            Err(errors) => {
                report.rejected += 1;
                report.errors.extend(errors);
            }
        }
    }
    if !buf.is_empty() {
        sink(buf);
    }
    report
}

/// `NAME.rejected.csv`: the rejected rows as given plus the error column, UTF-8 with a
/// BOM. A classified row is left out entirely (its content must not be echoed); the
/// report names its row. Returns None when no row can be written.
pub fn rejected_csv(parsed: &Parsed, report: &Report) -> Option<Vec<u8>> {
    let rows = report.rejected_rows();
    if rows.is_empty() {
        return None;
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut header = parsed.columns.clone();
    header.push(ERROR_COLUMN.to_string());
    out.push(header);
    for row in rows {
        let errors: Vec<&RowError> = report.errors.iter().filter(|e| e.row == row).collect();
        if errors.iter().any(|e| e.code == "classified") {
            continue;
        }
        let Ok(i) = parsed.rows.binary_search_by_key(&row, |r| r.row) else { continue };
        let mut cells = parsed.given(&parsed.rows[i]);
        let text: Vec<String> = errors
            .iter()
            .map(|e| match e.field.as_deref().and_then(Field::from_header) {
                Some(f) => format!("{}({}): {}", f.zh(), f.key(), e.message),
                None => e.message.clone(),
            })
            .collect();
        cells.push(text.join("；"));
        out.push(cells);
    }
    (out.len() > 1).then(|| text::write_csv(out))
}

#[cfg(test)]
mod tests;
