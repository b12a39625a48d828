//! Reading office files into rows and checking them (spec §1, §3, §5).
//!
//! [`open_file`] opens a file's bytes (CSV and JSONL are then parsed on a thread of
//! their own); [`validate_rows`] checks the rows as they arrive and hands the valid
//! ones on in chunks. The inbox and `huijiao check` share both, so a file gets the same
//! verdict from either, except for the rules only a store can decide
//! (`unknown_record`, `not_origin`), which the store adds. [`parse_file`] reads a whole
//! file into rows (for `NAME.rejected.csv` and tests).

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
            .map(|i| {
                // The raw text of an unparsable JSON line sits in the last column.
                if self.columns[i] == json::RAW_COLUMN {
                    usize::MAX
                } else {
                    i
                }
            })
            .map(|i| match r.extra.iter().find(|(c, _)| *c == i) {
                Some((_, s)) => s.clone(),
                None => match self.column_fields.get(i).copied().flatten().filter(|_| i != usize::MAX) {
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

/// A CSV header: its cells, the field of each, and warnings about it.
pub(crate) type Header = (Vec<String>, Vec<Option<Field>>, Vec<Warning>);

/// What a reader thread sends: first how the text decoded (and, for CSV, the
/// header), then rows.
pub(crate) enum Piece {
    Start { encoding: &'static str, header: Option<Header> },
    Rows(Vec<SourceRow>),
    Refused(Refusal),
}

/// Pieces arriving from a reader thread, and what the thread knows at the end.
pub(crate) struct Stream {
    pub rx: std::sync::mpsc::Receiver<Piece>,
    pub done: std::thread::JoinHandle<Tail>,
}

/// What a streaming reader knows only at the end (JSON keys are per row).
pub(crate) struct Tail {
    pub columns: Vec<String>,
    pub column_fields: Vec<Option<Field>>,
    pub warnings: Vec<Warning>,
}

enum Feed {
    Ready(std::vec::IntoIter<SourceRow>),
    Stream(Stream),
}

/// A file opened for reading: the header is known, the rows come in chunks while
/// they are parsed (CSV and JSONL are parsed on their own thread, so a store can write
/// the first rows while later ones are still being read).
pub struct Opened {
    /// File, hash, format, encoding and header warnings; `refused` when the file
    /// could not be opened at all.
    pub report: Report,
    columns: Vec<String>,
    column_fields: Vec<Option<Field>>,
    header_fields: Option<Vec<Field>>,
    feed: Feed,
}

/// Rows handed over per chunk.
const CHUNK: usize = 1024;

impl Opened {
    fn refused(mut report: Report, r: Refusal) -> Opened {
        report.refuse(r);
        Opened { report, columns: Vec::new(), column_fields: Vec::new(), header_fields: None, feed: Feed::Ready(Vec::new().into_iter()) }
    }

    fn from_table(mut report: Report, t: Table) -> Opened {
        report.encoding = t.encoding.map(str::to_string);
        report.warnings = t.warnings;
        Opened {
            report,
            columns: t.columns,
            column_fields: t.column_fields,
            header_fields: t.header_fields,
            feed: Feed::Ready(t.rows.into_iter()),
        }
    }

    /// The next rows, in file order; None at the end.
    pub fn next_chunk(&mut self) -> Option<Vec<SourceRow>> {
        match &mut self.feed {
            Feed::Ready(it) => {
                let chunk: Vec<SourceRow> = it.by_ref().take(CHUNK).collect();
                (!chunk.is_empty()).then_some(chunk)
            }
            Feed::Stream(s) => loop {
                match s.rx.recv().ok()? {
                    Piece::Rows(rows) => return Some(rows),
                    Piece::Start { encoding, header } => {
                        self.report.encoding = Some(encoding.to_string());
                        if let Some((columns, map, warnings)) = header {
                            self.header_fields = Some(map.iter().flatten().copied().collect());
                            self.columns = columns;
                            self.column_fields = map;
                            self.report.warnings = warnings;
                        }
                    }
                    Piece::Refused(r) => {
                        self.report.refuse(r);
                        return None;
                    }
                }
            },
        }
    }

    /// After the last chunk: the columns (for `NAME.rejected.csv`) and warnings.
    fn finish(self) -> (Report, Vec<String>, Vec<Option<Field>>) {
        let mut report = self.report;
        match self.feed {
            Feed::Ready(_) => (report, self.columns, self.column_fields),
            Feed::Stream(s) => {
                drop(s.rx);
                match s.done.join() {
                    Ok(tail) => {
                        report.warnings.extend(tail.warnings);
                        let (columns, fields) =
                            if tail.columns.is_empty() { (self.columns, self.column_fields) } else { (tail.columns, tail.column_fields) };
                        (report, columns, fields)
                    }
                    Err(_) => (report, self.columns, self.column_fields),
                }
            }
        }
    }
}

/// Opens a file's bytes for reading. Never panics; a file that cannot be read at all
/// comes back with `report.refused` set.
pub fn open_file(name: &str, bytes: Vec<u8>, max_size: u64) -> Opened {
    let report = Report::new(name, &hex(&sha256(&bytes)));
    let Some(format) = Format::from_name(name) else {
        return Opened::refused(
            report,
            Refusal::new("unsupported_file_type", "不支持的文件类型，只接受 .csv、.xlsx、.json、.jsonl、.ndjson", "unsupported file type"),
        );
    };
    let mut report = report;
    report.format = Some(format.as_str().to_string());
    if bytes.len() as u64 > max_size {
        return Opened::refused(report, too_large(bytes.len() as u64, max_size));
    }
    if bytes.is_empty() {
        return Opened::refused(report, Refusal::new("empty_file", "文件是空的", "file is empty"));
    }
    match format {
        Format::Xlsx => match xlsx::read(&bytes) {
            Ok(t) => Opened::from_table(report, t),
            Err(r) => Opened::refused(report, r),
        },
        Format::Json => match json::read_json(bytes) {
            Ok(t) => Opened::from_table(report, t),
            Err(r) => Opened::refused(report, r),
        },
        // Decoding, too, happens on the reader thread.
        Format::Csv => {
            Opened { report, columns: Vec::new(), column_fields: Vec::new(), header_fields: None, feed: Feed::Stream(stream_csv(bytes)) }
        }
        Format::Jsonl => Opened {
            report,
            columns: Vec::new(),
            column_fields: Vec::new(),
            header_fields: None,
            feed: Feed::Stream(json::stream_jsonl(bytes)),
        },
    }
}

/// The required columns a header lacks.
fn missing_required(present: &[Field]) -> Vec<Field> {
    Field::ALL.into_iter().filter(|f| f.required() && !present.contains(f)).collect()
}

/// A required column missing from the header refuses the file. `reg_no` is always
/// required; the others only when some row is not a withdrawal, because a withdrawal
/// needs only `reg_no` (spec §3). Returns the refusal once it is certain.
fn missing_column_refusal(missing: &[Field], any_upsert: bool) -> Option<Refusal> {
    if missing.is_empty() || !(any_upsert || missing.contains(&Field::RegNo)) {
        return None;
    }
    let missing: Vec<Field> = missing.iter().copied().filter(|f| *f == Field::RegNo || any_upsert).collect();
    let zh: Vec<&str> = missing.iter().map(|f| f.zh()).collect();
    let en: Vec<&str> = missing.iter().map(|f| f.key()).collect();
    Some(Refusal::new("missing_column", &format!("缺少必填列：{}", zh.join("、")), &format!("required column missing: {}", en.join(", "))))
}

fn no_data_rows() -> Refusal {
    Refusal::new("no_data_rows", "文件没有数据行", "file holds no data rows")
}

fn is_upsert(r: &SourceRow) -> bool {
    r.broken.is_none() && !r.raw.is_withdraw()
}

/// Reads a whole file into rows (for `NAME.rejected.csv`, tools and tests).
pub fn parse_file(name: &str, bytes: &[u8], max_size: u64) -> Parsed {
    let mut o = open_file(name, bytes.to_vec(), max_size);
    let mut rows = Vec::new();
    while let Some(chunk) = o.next_chunk() {
        rows.extend(chunk);
    }
    if o.report.refused.is_some() {
        rows.clear();
    }
    let missing = o.header_fields.as_deref().map(missing_required).unwrap_or_default();
    let upserts_only = o.header_fields.as_ref().is_some_and(|h| !h.contains(&Field::Op));
    let (mut report, columns, column_fields) = o.finish();
    if report.refused.is_none() {
        report.rows = rows.len() as u64;
        // Decided as the streaming path decides: from the header alone when it can be.
        let refusal = match missing_column_refusal(&missing, upserts_only) {
            Some(r) => Some(r),
            None if rows.is_empty() => Some(no_data_rows()),
            None => missing_column_refusal(&missing, rows.iter().any(is_upsert)),
        };
        if let Some(r) = refusal {
            report.refuse(r);
            rows.clear();
        }
    }
    Parsed { report, columns, column_fields, rows }
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

/// Decodes the text, reads the header, then the rows, on a thread of its own.
fn stream_csv(bytes: Vec<u8>) -> Stream {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let done = std::thread::Builder::new()
        .name("csv-reader".into())
        .spawn(move || {
            let tail = Tail { columns: Vec::new(), column_fields: Vec::new(), warnings: Vec::new() };
            let (text, encoding) = match text::decode(bytes) {
                Ok(d) => d,
                Err(r) => {
                    let _ = tx.send(Piece::Refused(r));
                    return tail;
                }
            };
            let mut cursor = text::CsvCursor::default();
            // The first non-blank line is the header (spec §1: "the first row").
            let header = loop {
                match cursor.next_record(&text) {
                    None => {
                        let _ = tx.send(Piece::Start { encoding, header: None });
                        let _ = tx.send(Piece::Refused(no_data_rows()));
                        return tail;
                    }
                    Some(r) if r.fields.iter().all(|f| f.trim().is_empty()) => continue,
                    Some(r) => break r,
                }
            };
            let (map, warnings) = map_header(&header.fields);
            let width = header.fields.len();
            if tx.send(Piece::Start { encoding, header: Some((header.fields, map.clone(), warnings)) }).is_err() {
                return tail;
            }
            let mut chunk = Vec::with_capacity(CHUNK);
            while let Some(rec) = cursor.next_record(&text) {
                if let Some(row) = csv_row(rec, &map, width) {
                    chunk.push(row);
                    if chunk.len() == CHUNK && tx.send(Piece::Rows(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))).is_err() {
                        return tail;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Piece::Rows(chunk));
            }
            tail
        })
        .expect("can start a reader thread");
    Stream { rx, done }
}

/// One CSV record as a row; None for a blank row.
fn csv_row(rec: text::CsvRecord, map: &[Option<Field>], width: usize) -> Option<SourceRow> {
    if !rec.unterminated && rec.fields.iter().all(|f| f.trim().is_empty()) {
        return None;
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
    Some(SourceRow { row: rec.row, raw, extra, broken })
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

/// Validates every row of a parsed file.
pub fn check_rows(parsed: &Parsed, validator: &Validator<'_>) -> Checked {
    let opened = Opened {
        report: Report { rows: 0, ..parsed.report.clone() },
        columns: parsed.columns.clone(),
        column_fields: parsed.column_fields.clone(),
        header_fields: None,
        feed: Feed::Ready(parsed.rows.clone().into_iter()),
    };
    let mut valid = Vec::with_capacity(parsed.rows.len());
    let checked = validate_rows(opened, validator, usize::MAX, |chunk| valid.extend(chunk));
    let mut report = checked.report;
    if parsed.report.refused.is_some() {
        report = parsed.report.clone();
    }
    Checked { report, valid }
}

/// Validates an opened file's rows as they arrive, handing valid rows to `sink` in
/// chunks of `chunk` so a store can write while later rows are still being read and
/// checked. Returns the report (counts, errors, or a whole-file refusal found on the
/// way, in which case whatever reached `sink` must be discarded) and the rejected
/// rows, as given, for `NAME.rejected.csv`.
pub fn validate_rows(mut opened: Opened, validator: &Validator<'_>, chunk: usize, mut sink: impl FnMut(Vec<(u64, Row)>)) -> Parsed {
    if opened.report.refused.is_some() {
        let (report, columns, column_fields) = opened.finish();
        return Parsed { report, columns, column_fields, rows: Vec::new() };
    }
    // The first chunk comes after the header, which a streaming reader sends first.
    let mut next = opened.next_chunk();
    let missing = opened.header_fields.as_deref().map(missing_required).unwrap_or_default();
    // Without an `op` column every row is an upsert, so the header alone decides.
    let upserts_only = opened.header_fields.as_ref().is_some_and(|h| !h.contains(&Field::Op));
    let mut refusal = missing_column_refusal(&missing, upserts_only);
    let (mut rows, mut accepted, mut rejected) = (0u64, 0u64, 0u64);
    let mut errors = Vec::new();
    let mut kept = Vec::new();
    let mut buf = Vec::new();
    'read: while refusal.is_none() {
        let Some(rows_in) = next.take() else { break };
        for r in rows_in {
            rows += 1;
            if !missing.is_empty() && is_upsert(&r) {
                refusal = missing_column_refusal(&missing, true);
                break 'read;
            }
            let result = match &r.broken {
                Some(e) => Err(vec![e.clone()]),
                None => validator.validate(&r.raw),
            };
            match result {
                Ok(row) => {
                    accepted += 1;
                    buf.push((r.row, row));
                    if buf.len() >= chunk {
                        sink(std::mem::take(&mut buf));
                    }
                }
                Err(e) => {
                    rejected += 1;
                    errors.extend(e);
                    kept.push(r);
                }
            }
        }
        next = opened.next_chunk();
    }
    if opened.report.refused.is_some() {
        // The reader refused the file (it could not be decoded).
        let (report, columns, column_fields) = opened.finish();
        return Parsed { report, columns, column_fields, rows: Vec::new() };
    }
    if refusal.is_none() && rows == 0 {
        refusal = Some(no_data_rows());
    }
    if refusal.is_none() && !buf.is_empty() {
        sink(buf);
    }
    let (mut report, columns, column_fields) = opened.finish();
    match refusal {
        Some(r) => {
            report.refuse(r);
            kept.clear();
        }
        None => {
            report.rows = rows;
            report.accepted = accepted;
            report.rejected = rejected;
            report.errors = errors;
        }
    }
    Parsed { report, columns, column_fields, rows: kept }
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
