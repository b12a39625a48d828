//! Reading office files into rows and checking them (spec §1, §1.1, §3, §5).
//!
//! A file is read in two passes over an opened descriptor, never whole into memory:
//! [`source`] opens it safely and streams it once for its hash and encoding; then a
//! reader thread ([`read`]) parses it — CSV and JSON with our own streaming parsers,
//! XLSX and ODS with a streaming XML reader under caps on inflated bytes, XLS with
//! our own streaming compound-file/BIFF8 reader — and sends rows in chunks, while
//! [`validate`] checks each row, hands valid ones to a [`RowSink`] (the store) and
//! spools the rejected ones for `NAME.rejected.csv`. The inbox and `huijiao check`
//! share all of it, so a file gets the same verdict from either, except for the rules
//! only a store can decide (`unknown_record`, `not_origin`, `withdrawn_record`).
//!
//! Every cap is in [`Limits`] and listed in docs/ingest.md.
//!
//! One room: the file pipeline's stages (`prepare`, `read`, `validate`) with the
//! formats, caps and refusals they all share; each stage is a screen or two.

mod form;
mod json;
mod ods;
pub mod rejected;
pub mod screen;
pub mod source;
pub mod text;
mod xls;
mod xlsx;
mod xml;

use huijiao_protocol::fields::Field;
use huijiao_protocol::report::{zh_en, Refusal, Report, RowError, Warning};
use huijiao_protocol::secrecy;
use huijiao_protocol::validate::{RawValue, Row, Validator};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use rejected::Spool;
pub use source::{OpenError, Sniffed, Source, Stamp, TextEncoding};

/// Default per-file size limit of spec §1.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

/// Rows handed over per chunk by a reader.
const CHUNK: usize = 1024;

/// The file types of spec §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
    Xls,
    Ods,
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
            "xls" => Some(Format::Xls),
            "ods" => Some(Format::Ods),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Xls => "xls",
            Format::Ods => "ods",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }

    /// Text formats are decoded (UTF-8 or GBK/GB18030); the others are containers.
    pub fn is_text(self) -> bool {
        matches!(self, Format::Csv | Format::Json | Format::Jsonl)
    }
}

/// Whether the inbox must leave a file alone (spec §1): hidden files, Excel lock files
/// and files still being written under a temporary name.
pub fn is_ignored_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.') || name.starts_with("~$") || [".tmp", ".part", ".crdownload", ".swp"].iter().any(|s| lower.ends_with(s))
}

/// What one file may cost, whatever it holds. docs/ingest.md lists each cap with the
/// refusal it leads to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes on disk (spec §1: 256 MiB by default).
    pub max_file_size: u64,
    /// Non-blank data rows (Excel's own limit).
    pub max_rows: u64,
    /// Columns of a sheet (Excel's XFD).
    pub max_columns: u32,
    /// Bytes a CSV record or a JSON line may take; a longer one is a broken row.
    pub max_record: usize,
    /// Inflated bytes of one part of a workbook (a sheet, the shared strings).
    pub max_inflated: u64,
    /// Beyond its first `ratio_free` bytes, a part may inflate at most this many
    /// times its compressed size (a zip bomb does thousands).
    pub max_ratio: u64,
    pub ratio_free: u64,
    /// The same for the shared strings, which Excel deduplicates: real ones hardly
    /// compress past 10:1.
    pub max_shared_ratio: u64,
    pub shared_ratio_free: u64,
    /// Bytes between two XML tags: a cell holds at most 32,767 characters in Excel.
    pub max_xml_token: usize,
    /// Shared strings of a workbook, and their bytes (kept on disk beyond
    /// `shared_in_memory`).
    pub max_shared_strings: usize,
    pub max_shared_bytes: u64,
    pub shared_in_memory: usize,
    /// Cells of one sheet (empty formatted ones included).
    pub max_cells: u64,
    /// Distinct keys of a JSON file.
    pub max_keys: usize,
    /// Errors listed in full in a report; beyond, counts per code.
    pub max_report_errors: usize,
    /// `NAME.rejected.csv` holds rows up to this many bytes, or four times the
    /// file's size if larger.
    pub min_rejected_bytes: u64,
    /// Where spilled shared strings and rejected rows wait (the node's data folder).
    pub temp_dir: std::path::PathBuf,
}

impl Limits {
    pub fn new(max_file_size: u64) -> Limits {
        Limits {
            max_file_size,
            max_rows: 1_048_576,
            max_columns: 16_384,
            max_record: 4 * 1024 * 1024,
            max_inflated: 2 * 1024 * 1024 * 1024,
            max_ratio: 200,
            ratio_free: 64 * 1024 * 1024,
            max_shared_ratio: 25,
            shared_ratio_free: 4 * 1024 * 1024,
            max_xml_token: 1024 * 1024,
            max_shared_strings: 4 * 1024 * 1024,
            max_shared_bytes: 1024 * 1024 * 1024,
            shared_in_memory: 16 * 1024 * 1024,
            max_cells: 64 * 1024 * 1024,
            max_keys: 1024,
            max_report_errors: 1000,
            min_rejected_bytes: 64 * 1024 * 1024,
            temp_dir: std::env::temp_dir(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(DEFAULT_MAX_FILE_SIZE)
    }
}

/// Asks a file's reading to stop (SIGTERM): readers check it as they go.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One cell of a data row: its column, the field the column fills, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub col: u32,
    pub field: Option<Field>,
    pub value: RawValue,
}

/// One data row as read, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub row: u64,
    /// The row's cells as given, in the file's columns.
    pub cells: Vec<Cell>,
    /// Set when the row could not be parsed into columns (a malformed JSON line, an
    /// unterminated quote, a stray comma): the row is rejected with this error.
    pub broken: Option<RowError>,
}

impl SourceRow {
    /// The row's cells aligned with `columns` (for `NAME.rejected.csv`).
    pub fn given(&self) -> Vec<(u32, String)> {
        self.cells.iter().map(|c| (c.col, c.value.display())).filter(|(_, s)| !s.is_empty()).collect()
    }
}

/// The header of a grid file, or how a JSON file starts.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub encoding: Option<&'static str>,
    /// Column headings as given (grid formats); JSON columns come at the end.
    pub columns: Vec<String>,
    /// Fields the header holds (grid formats); None for JSON, whose keys are per row.
    pub present: Option<Vec<Field>>,
    pub warnings: Vec<Warning>,
}

/// What a reader thread sends.
pub(crate) enum Piece {
    Start(Header),
    Rows(Vec<SourceRow>),
    /// The file cannot be read as a whole (or reading was cancelled).
    Refused(Refusal),
    /// The last piece: warnings known only at the end, and (JSON) the columns.
    End {
        warnings: Vec<Warning>,
        columns: Option<Vec<String>>,
    },
}

/// The reader thread's end of the channel.
pub(crate) struct Sender {
    tx: std::sync::mpsc::SyncSender<Piece>,
    cancel: Cancel,
}

impl Sender {
    /// False when nobody listens any more.
    fn send(&mut self, p: Piece) -> bool {
        self.tx.send(p).is_ok()
    }

    /// Sends rows unless reading was cancelled; false means stop.
    fn rows(&mut self, rows: Vec<SourceRow>) -> bool {
        !self.cancel.is_cancelled() && self.send(Piece::Rows(rows))
    }
}

/// A file being read on its own thread.
pub struct Reading {
    rx: std::sync::mpsc::Receiver<Piece>,
    thread: Option<std::thread::JoinHandle<()>>,
    format: Format,
}

impl Drop for Reading {
    fn drop(&mut self) {
        // Closing the channel makes the reader stop at its next send.
        let (_, dead) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.rx, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

pub(crate) fn too_many_rows(max: u64) -> Refusal {
    Refusal::new(
        "too_many_rows",
        &format!("文件超过 {max} 行数据，请拆分后再提交"),
        &format!("the file holds more than {max} data rows; split it"),
    )
}

/// Not a verdict: the node is stopping and the file stays in the inbox.
pub(crate) fn cancelled() -> Refusal {
    Refusal::new("cancelled", "读取被中止（节点正在停止）", "reading was cancelled (the node is stopping)")
}

pub(crate) fn read_failed(e: &std::io::Error) -> Refusal {
    if e.kind() == std::io::ErrorKind::InvalidData {
        return Refusal::new("undecodable", &format!("文件无法解码：{e}"), &format!("the file cannot be decoded: {e}"));
    }
    Refusal::new("unreadable_file", &format!("读取文件出错：{e}"), &format!("cannot read the file: {e}"))
}

pub fn unsupported_type() -> Refusal {
    Refusal::new(
        "unsupported_file_type",
        "不支持的文件类型，只接受 .csv、.xlsx、.xls、.ods、.json、.jsonl、.ndjson",
        "unsupported file type",
    )
}

pub fn empty_file() -> Refusal {
    Refusal::new("empty_file", "文件是空的", "file is empty")
}

fn no_data_rows() -> Refusal {
    Refusal::new("no_data_rows", "文件没有数据行", "file holds no data rows")
}

pub(crate) fn unknown_column(name: &str) -> Warning {
    Warning {
        row: None,
        field: Some(name.to_string()),
        code: "unknown_column".into(),
        message: zh_en(&format!("未知列“{name}”，已忽略"), &format!("unknown column `{name}` ignored")),
    }
}

/// An error for a row that could not be parsed at all: no field to blame.
pub fn broken_row(row: u64, code: &str, zh: &str, en: &str) -> RowError {
    RowError { row, reg_no: None, field: None, code: code.into(), message: zh_en(zh, en) }
}

/// Starts reading an opened file on a thread of its own. `encoding` is what the
/// first pass found (text formats only).
pub fn read(file: &File, format: Format, encoding: Option<TextEncoding>, limits: &Limits, cancel: &Cancel) -> std::io::Result<Reading> {
    let file = file.try_clone()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let mut sender = Sender { tx, cancel: cancel.clone() };
    let (limits, cancel) = (limits.clone(), cancel.clone());
    let thread = std::thread::Builder::new().name("file-reader".into()).spawn(move || {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_file(file, format, encoding, &limits, &cancel, &mut sender)));
        if result.is_err() {
            sender.send(Piece::Refused(Refusal::new(
                "unreadable_file",
                "读取文件时出现内部错误，文件未处理",
                "an internal error stopped reading the file; nothing was stored",
            )));
        }
    })?;
    Ok(Reading { rx, thread: Some(thread), format })
}

fn read_file(file: File, format: Format, encoding: Option<TextEncoding>, limits: &Limits, cancel: &Cancel, tx: &mut Sender) {
    use std::io::{Seek, SeekFrom};
    let mut file = file;
    if let Err(e) = file.seek(SeekFrom::Start(0)) {
        tx.send(Piece::Refused(read_failed(&e)));
        return;
    }
    match format {
        Format::Csv => {
            let enc = encoding.unwrap_or(TextEncoding::Utf8 { bom: false });
            let mut csv = text::CsvReader::new(text::Utf8Reader::new(file, enc), limits.max_record, limits.max_columns as usize);
            let mut form = form::Form::new(tx, true, Some(enc.label()), limits.max_rows);
            form.start_sheet("");
            loop {
                let rec = match csv.next_record() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        drop(form);
                        tx.send(Piece::Refused(read_failed(&e)));
                        return;
                    }
                };
                if rec.row % 1024 == 0 && cancel.is_cancelled() {
                    drop(form);
                    tx.send(Piece::Refused(cancelled()));
                    return;
                }
                if form.push(csv_grid_row(rec)) != form::Flow::Continue {
                    break;
                }
            }
            form.end_sheet();
            form.finish(&[]);
        }
        Format::Json | Format::Jsonl => {
            let enc = encoding.unwrap_or(TextEncoding::Utf8 { bom: false });
            tx.send(Piece::Start(Header { encoding: Some(enc.label()), columns: Vec::new(), present: None, warnings: Vec::new() }));
            let r = text::Utf8Reader::new(file, enc);
            let built = if format == Format::Json {
                json::read_json(r, limits, cancel, tx).map_err(json::json_refusal)
            } else {
                json::read_jsonl(r, limits, cancel, tx)
            };
            match built {
                Ok(mut b) => {
                    if !b.rows.is_empty() && !tx.rows(std::mem::take(&mut b.rows)) {
                        return;
                    }
                    let (columns, warnings) = b.finish();
                    tx.send(Piece::End { warnings, columns: Some(columns) });
                }
                Err(r) => {
                    tx.send(Piece::Refused(r));
                }
            }
        }
        Format::Xlsx | Format::Ods | Format::Xls => {
            let mut form = form::Form::new(tx, false, None, limits.max_rows);
            let result = match format {
                Format::Xlsx => xlsx::read(file, limits, cancel, &mut form),
                Format::Ods => ods::read_ods(file, limits, cancel, &mut form),
                _ => xls::read(file, limits, cancel, &mut form),
            };
            match result {
                Ok(later) => form.finish(&later),
                Err(r) => {
                    drop(form);
                    tx.send(Piece::Refused(r));
                }
            }
        }
    }
}

fn csv_grid_row(rec: text::CsvRecord) -> form::GridRow {
    let broken = if rec.oversized {
        Some(broken_row(rec.row, "record_too_long", "该行过长，无法读取", "the row is too long to be read"))
    } else if rec.unterminated {
        Some(broken_row(
            rec.row,
            "unterminated_quote",
            "引号未闭合，该行及其后内容无法解析",
            "unterminated quote; the row cannot be parsed",
        ))
    } else {
        None
    };
    let fields = rec.fields.len() as u32;
    let max = huijiao_protocol::validate::MAX_CELL_CHARS;
    let cells = rec
        .fields
        .into_iter()
        .enumerate()
        .filter(|(_, f)| !f.trim().is_empty())
        .map(|(i, f)| {
            // Cheap first: a cell of at most `max` bytes has at most `max` characters.
            let v = if f.len() > max && f.chars().count() > max { RawValue::TooLong(f.chars().count()) } else { RawValue::Text(f) };
            (i as u32, v)
        })
        .collect();
    form::GridRow { row: rec.row, cells, fields: Some(fields), broken }
}

/// Where valid rows go. The store answers each chunk, in order, with the rows it
/// refused (`unknown_record`, `not_origin`, `withdrawn_record`).
pub trait RowSink {
    /// Nothing read later can refuse the whole file any more (its header has every
    /// required column): a store may commit what it has in parts (spec v1.2 §2).
    fn whole_file_decided(&mut self) {}
    fn send(&mut self, rows: Vec<(u64, Row)>);
    /// The answer for the oldest unanswered chunk; `wait` blocks for it. None when
    /// no answer can come (nothing pending, or the store went away).
    fn answer(&mut self, wait: bool) -> Option<Vec<RowError>>;
}

/// A sink without a store (`huijiao check`): every row is taken.
#[derive(Default)]
pub struct NoStore {
    pending: usize,
}

impl RowSink for NoStore {
    fn send(&mut self, _rows: Vec<(u64, Row)>) {
        self.pending += 1;
    }
    fn answer(&mut self, _wait: bool) -> Option<Vec<RowError>> {
        (self.pending > 0).then(|| {
            self.pending -= 1;
            Vec::new()
        })
    }
}

/// A sink that keeps every valid row (tools and tests).
#[derive(Default)]
pub struct Collect {
    pub rows: Vec<(u64, Row)>,
    pending: usize,
}

impl RowSink for Collect {
    fn send(&mut self, rows: Vec<(u64, Row)>) {
        self.rows.extend(rows);
        self.pending += 1;
    }
    fn answer(&mut self, _wait: bool) -> Option<Vec<RowError>> {
        (self.pending > 0).then(|| {
            self.pending -= 1;
            Vec::new()
        })
    }
}

/// A file checked row by row.
#[derive(Debug)]
pub struct Checked {
    pub report: Report,
    /// Column headings for `NAME.rejected.csv` (without the error column).
    pub columns: Vec<String>,
    /// Rows refused for their 密级 (classified, unrecognised, contradictory or
    /// unverifiable): never echoed anywhere, and the original is not archived.
    pub not_echoed: u64,
    /// Reading was cancelled: nothing of the file counts.
    pub cancelled: bool,
}

/// The report's errors: the first `max` in full, counts of every code.
struct ErrorLog {
    max: usize,
    kept: Vec<RowError>,
    counts: BTreeMap<String, u64>,
    total: u64,
}

impl ErrorLog {
    fn push(&mut self, e: RowError) {
        self.total += 1;
        match self.counts.get_mut(&e.code) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(e.code.clone(), 1);
            }
        }
        if self.kept.len() < self.max {
            self.kept.push(e);
        }
    }

    fn into_report(mut self, report: &mut Report) {
        self.kept.sort_by_key(|e| e.row);
        report.errors = self.kept;
        if self.total > report.errors.len() as u64 {
            let counts: Vec<String> = self.counts.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            report.warnings.push(Warning {
                row: None,
                field: None,
                code: "errors_truncated".into(),
                message: zh_en(
                    &format!("共 {} 个错误，报告只列出前 {} 个；各类错误数：{}", self.total, self.max, counts.join("，")),
                    &format!("{} errors; the report lists the first {}; per code: {}", self.total, self.max, counts.join(", ")),
                ),
            });
            report.error_counts = Some(self.counts);
        }
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

/// Whether a row asks for an upsert (needs every required column): no 操作, or 登记.
/// A row with another 操作 is a row error of its own (`bad_op`), not a reason to
/// refuse the file.
fn is_upsert(r: &SourceRow) -> bool {
    r.broken.is_none()
        && r.cells.iter().filter(|c| c.field == Some(Field::Op)).all(|c| {
            let s = c.value.display();
            let s = s.trim();
            s.is_empty() || s == "登记" || s.eq_ignore_ascii_case("upsert")
        })
}

/// The verdict on one row: the valid row, or its errors and whether it may be echoed.
fn check_row(validator: &Validator<'_>, r: &SourceRow) -> Result<Row, (Vec<RowError>, bool)> {
    if let Some(e) = &r.broken {
        let texts: Vec<String> = r.cells.iter().map(|c| c.value.display()).collect();
        let too_long = r.cells.iter().any(|c| matches!(c.value, RawValue::TooLong(_)));
        // A row whose 密级 cannot be read is echoed only when it plainly holds a
        // recognised level and no marking; otherwise the report names only its row.
        return match secrecy::judge_broken(texts.iter().map(String::as_str)) {
            secrecy::BrokenVerdict::Classified => Err((vec![secrecy::classified_error(r.row)], false)),
            secrecy::BrokenVerdict::Echo if !too_long && e.code != "record_too_long" => Err((vec![e.clone()], true)),
            _ => Err((vec![e.clone()], false)),
        };
    }
    let cells = r.cells.iter().filter_map(|c| c.field.map(|f| (f, &c.value)));
    // A cell over the length cap refuses its row in any column, known or not (spec §3).
    let long_unknown: Vec<RowError> = r
        .cells
        .iter()
        .filter(|c| c.field.is_none() && matches!(c.value, RawValue::TooLong(_)))
        .map(|c| {
            let max = huijiao_protocol::validate::MAX_CELL_CHARS;
            RowError {
                row: r.row,
                reg_no: None,
                field: None,
                code: "cell_too_long".into(),
                message: zh_en(
                    &format!("第 {} 列（表头未知的列）超过 {max} 个字符，内容未保留", c.col + 1),
                    &format!("column {} (not a column of the format) is longer than {max} characters and was not kept", c.col + 1),
                ),
            }
        })
        .collect();
    let checked = match validator.validate_cells(r.row, cells) {
        Ok(row) if long_unknown.is_empty() => return Ok(row),
        Ok(row) => Err(long_unknown.into_iter().map(|e| RowError { reg_no: Some(row.reg_no().to_string()), ..e }).collect()),
        Err(mut errs) => {
            errs.extend(long_unknown);
            Err(errs)
        }
    };
    checked.map_err(|errs: Vec<RowError>| {
        // A classified marking anywhere in a rejected row keeps the row out of the
        // rejected file, even in a column that is not 密级.
        let echo = !errs.iter().any(secrecy::forbids_echo) && !r.cells.iter().any(|c| secrecy::value_is_marked(&c.value));
        (errs, echo)
    })
}

/// Checks a file's rows as they arrive (`report` names the file and its hash),
/// handing valid rows to `sink` in chunks of
/// `chunk` so a store can write while later rows are still being read and checked,
/// and spooling rejected rows that may be echoed. A whole-file refusal found on the
/// way (in which case whatever reached `sink` must be discarded) is in the report.
///
/// One piece: the checking stage of the three-stage pipeline, one loop over chunks whose
/// counters, caps and spool are shared by every branch.
pub fn validate(
    reading: Reading,
    mut report: Report,
    validator: &Validator<'_>,
    limits: &Limits,
    chunk: usize,
    sink: &mut dyn RowSink,
    mut spool: Option<&mut Spool>,
) -> Checked {
    report.format = Some(reading.format.as_str().to_string());
    let mut errors = ErrorLog { max: limits.max_report_errors, kept: Vec::new(), counts: BTreeMap::new(), total: 0 };
    let mut columns: Vec<String> = Vec::new();
    let mut missing: Vec<Field> = Vec::new();
    let (mut rows, mut accepted, mut rejected, mut not_echoed) = (0u64, 0u64, 0u64, 0u64);
    let mut refusal: Option<Refusal> = None;
    let mut buf: Vec<(u64, Row)> = Vec::new();
    // Rows handed to the sink and not yet answered, chunk by chunk.
    let mut pending: VecDeque<Vec<SourceRow>> = VecDeque::new();
    let mut held: Vec<SourceRow> = Vec::new();
    let mut ended = false;

    let settle = |answer: Vec<RowError>,
                  chunk_rows: Vec<SourceRow>,
                  errors: &mut ErrorLog,
                  spool: &mut Option<&mut Spool>,
                  accepted: &mut u64,
                  rejected: &mut u64| {
        for e in answer {
            *accepted = accepted.saturating_sub(1);
            *rejected += 1;
            if let (Some(s), Ok(i)) = (spool.as_deref_mut(), chunk_rows.binary_search_by_key(&e.row, |r| r.row)) {
                s.push(chunk_rows[i].row, chunk_rows[i].given(), std::slice::from_ref(&e));
            }
            errors.push(e);
        }
    };

    while refusal.is_none() {
        let piece = match reading.rx.recv() {
            Ok(p) => p,
            Err(_) => break,
        };
        match piece {
            Piece::Start(h) => {
                report.encoding = h.encoding.map(str::to_string);
                report.warnings.extend(h.warnings);
                columns = h.columns;
                if let Some(present) = &h.present {
                    missing = missing_required(present);
                    // Without an `op` column every row is an upsert, so the header decides.
                    refusal = missing_column_refusal(&missing, !present.contains(&Field::Op));
                }
                // With every required column there (or none to be had from a header),
                // only an unreadable file could still refuse the whole of it.
                if missing.is_empty() && refusal.is_none() {
                    sink.whole_file_decided();
                }
            }
            Piece::Refused(r) => refusal = Some(r),
            Piece::End { warnings, columns: c } => {
                report.warnings.extend(warnings);
                if let Some(c) = c {
                    columns = c;
                }
                ended = true;
                break;
            }
            Piece::Rows(list) => {
                for r in list {
                    rows += 1;
                    if !missing.is_empty() && is_upsert(&r) {
                        refusal = missing_column_refusal(&missing, true);
                        break;
                    }
                    match check_row(validator, &r) {
                        Ok(row) => {
                            accepted += 1;
                            buf.push((r.row, row));
                            held.push(r);
                            if buf.len() >= chunk {
                                sink.send(std::mem::take(&mut buf));
                                pending.push_back(std::mem::take(&mut held));
                                while let Some(answer) = sink.answer(false) {
                                    let Some(c) = pending.pop_front() else { break };
                                    settle(answer, c, &mut errors, &mut spool, &mut accepted, &mut rejected);
                                }
                            }
                        }
                        Err((errs, echo)) => {
                            rejected += 1;
                            if echo {
                                if let Some(s) = spool.as_deref_mut() {
                                    s.push(r.row, r.given(), &errs);
                                }
                            } else {
                                not_echoed += 1;
                            }
                            for e in errs {
                                errors.push(e);
                            }
                        }
                    }
                }
            }
        }
    }
    let cancelled = refusal.as_ref().is_some_and(|r| r.code == "cancelled");
    if refusal.is_none() && !ended {
        // The reader went away without a word: it must not count as read.
        refusal = Some(Refusal::new("unreadable_file", "读取文件时出错，文件未处理", "reading the file failed; nothing was stored"));
    }
    if refusal.is_none() && rows == 0 {
        refusal = Some(no_data_rows());
    }
    if refusal.is_none() {
        if !buf.is_empty() {
            sink.send(std::mem::take(&mut buf));
            pending.push_back(std::mem::take(&mut held));
        }
        while let Some(c) = pending.pop_front() {
            match sink.answer(true) {
                Some(answer) => settle(answer, c, &mut errors, &mut spool, &mut accepted, &mut rejected),
                None => break,
            }
        }
    }
    drop(reading);
    match refusal {
        Some(r) => report.refuse(r),
        None => {
            report.rows = rows;
            report.accepted = accepted;
            report.rejected = rejected;
            errors.into_report(&mut report);
        }
    }
    Checked { report, columns, not_echoed, cancelled }
}

/// Checks one file without a store (`huijiao check`): opens it safely, refuses what
/// is not a regular file, over the size limit, or of an unknown type, without reading
/// it, and otherwise gives the same verdict as the inbox.
pub fn check_path(path: &std::path::Path, validator: &Validator<'_>, limits: &Limits) -> Report {
    check_file(path, validator, limits, &mut NoStore::default(), None).report
}

/// A file opened and hashed, ready to read: the first half of the one file pipeline
/// that `huijiao check` and the inbox share ([`prepare`], then [`read`] and
/// [`validate`], then the whole-file screen).
pub struct Prepared {
    pub src: Source,
    pub format: Format,
    pub sha256: String,
    /// The text encoding (text formats; `None` for workbooks and JSON), or why the
    /// content is refused: empty, or text that cannot be read. Known once the file is
    /// hashed; the inbox first asks its journal whether it has seen these bytes.
    pub content: Result<Option<TextEncoding>, Refusal>,
}

/// Why a file was not prepared.
pub enum Unprepared {
    /// Not opened: not a regular file, or an IO error.
    Open(OpenError),
    /// Refused before it was read: its type or its size. The opened file is kept for
    /// the whole-file screen, which decides whether the original may be archived.
    Refused {
        src: Source,
        format: Option<Format>,
        refusal: Refusal,
    },
    /// Hashing it failed.
    Read(std::io::Error),
    Cancelled,
}

/// Opens `path` safely ([`source::open`]), names its format, checks its size, and
/// hashes it in one pass that also finds a text file's encoding.
pub fn prepare(path: &std::path::Path, limits: &Limits, cancel: &Cancel) -> Result<Prepared, Unprepared> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let src = source::open(path).map_err(Unprepared::Open)?;
    let Some(format) = Format::from_name(&name) else {
        return Err(Unprepared::Refused { src, format: None, refusal: unsupported_type() });
    };
    if src.stamp.size > limits.max_file_size {
        let refusal = too_large(src.stamp.size, limits.max_file_size);
        return Err(Unprepared::Refused { src, format: Some(format), refusal });
    }
    let sniffed = match source::sniff(&src.file, format.is_text(), cancel) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Unprepared::Cancelled),
        Err(e) => return Err(Unprepared::Read(e)),
    };
    let content = if src.stamp.size == 0 { Err(empty_file()) } else { sniffed.text.transpose() };
    Ok(Prepared { src, format, sha256: sniffed.sha256, content })
}

/// [`check_path`] with a sink for the valid rows and a spool for the rejected ones.
pub fn check_file(
    path: &std::path::Path,
    validator: &Validator<'_>,
    limits: &Limits,
    sink: &mut dyn RowSink,
    spool: Option<&mut Spool>,
) -> Checked {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
    let refused = |sha: &str, r: Refusal| {
        let mut report = Report::new(&name, sha);
        report.format = Format::from_name(&name).map(|f| f.as_str().to_string());
        report.refuse(r);
        Checked { report, columns: Vec::new(), not_echoed: 0, cancelled: false }
    };
    let cancel = Cancel::new();
    let Prepared { src, format, sha256, content } = match prepare(path, limits, &cancel) {
        Ok(p) => p,
        Err(Unprepared::Open(OpenError::NotRegular(kind))) => return refused("", not_regular(kind)),
        Err(Unprepared::Open(OpenError::Io(e))) => {
            return refused("", Refusal::new("unreadable_file", "无法读取文件", &format!("cannot read {}: {e}", path.display())))
        }
        Err(Unprepared::Refused { refusal, .. }) => return refused("", refusal),
        Err(Unprepared::Read(e)) => return refused("", read_failed(&e)),
        Err(Unprepared::Cancelled) => return refused("", cancelled()),
    };
    let encoding = match content {
        Ok(e) => e,
        Err(r) => return refused(&sha256, r),
    };
    // Rows go to the sink a chunk at a time, as in the daemon: memory stays bounded
    // whatever the file's length.
    let mut checked = match read(&src.file, format, encoding, limits, &cancel) {
        Ok(reading) => validate(reading, Report::new(&name, &sha256), validator, limits, CHUNK, sink, spool),
        Err(e) => return refused(&sha256, read_failed(&e)),
    };
    // What the daemon would say of the original (it would not archive it).
    if checked.not_echoed > 0 {
        checked.report.warnings.push(screen::not_kept_warning(checked.not_echoed));
    } else if screen::screen(&src.file, Some(format), encoding, limits, &cancel).is_marked() {
        checked.report.warnings.push(screen::marked_file_warning());
    }
    checked
}

/// The refusal of a path that is not a regular file.
pub fn not_regular(kind: &str) -> Refusal {
    Refusal::new(
        "not_a_regular_file",
        &format!("这不是普通文件（{kind}），未读取；请把文件本身放入收件箱"),
        &format!("not a regular file ({kind}); it was not read — drop the file itself into the inbox"),
    )
}

#[cfg(test)]
mod tests;
