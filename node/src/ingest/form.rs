//! Office forms (spec §1.1): finding the data sheet and its header row, the columns a
//! header names, and where the data ends. Every grid format (CSV, XLSX, XLS, ODS)
//! pushes its rows through a [`Form`], one sheet after another; the form decides
//! which rows are data and sends them on in chunks.

use super::{broken_row, unknown_column, Cell, Piece, Sender, SourceRow, CHUNK};
use huijiao_protocol::fields::{is_error_column, is_serial_column, normalize_header, Field};
use huijiao_protocol::report::{zh_en, Refusal, RowError, Warning};
use huijiao_protocol::validate::RawValue;

/// The header is looked for in this many first rows of a sheet.
pub const HEADER_ROWS: u64 = 10;

/// A header cell longer than this (in characters) names no column.
const MAX_HEADER_CHARS: usize = 256;

/// What the first non-empty cell of a trailer row begins with.
const TRAILER_WORDS: [&str; 13] =
    ["合计", "总计", "小计", "填表人", "填报人", "审核人", "负责人", "注：", "注:", "说明：", "说明:", "备注：", "备注:"];

/// One physical row of a sheet as a reader found it.
#[derive(Debug, Clone, Default)]
pub(crate) struct GridRow {
    /// The row number the user sees.
    pub row: u64,
    /// Non-empty cells by column (0-based), ascending.
    pub cells: Vec<(u32, RawValue)>,
    /// CSV: the number of fields the record had (for `too_many_cells`).
    pub fields: Option<u32>,
    /// Set when the row could not be read at all (an unterminated quote, an
    /// oversized record).
    pub broken: Option<RowError>,
}

impl GridRow {
    fn is_blank(&self) -> bool {
        self.broken.is_none() && self.cells.iter().all(|(_, v)| v.is_blank())
    }
}

/// What a reader should do after pushing a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// This sheet has no header: go on to the next one.
    NextSheet,
    /// Stop reading (refused or cancelled; the form has said so).
    Stop,
}

/// The header a sheet turned out to have.
struct Header {
    width: u32,
    fields: Vec<Option<Field>>,
    reg_no_col: Option<u32>,
}

pub(crate) struct Form<'s> {
    tx: &'s mut Sender,
    /// CSV rules: a record with more fields than the header is broken.
    csv: bool,
    encoding: Option<&'static str>,
    max_rows: u64,
    sheet: String,
    /// The first rows of the current sheet, while its header is not yet known.
    first: Vec<GridRow>,
    header: Option<Header>,
    /// The first trailer row and how many non-blank rows the trailer has.
    trailer: Option<(u64, u64)>,
    /// Sheets before the data sheet (no header in their first rows).
    skipped: Vec<String>,
    /// Hidden sheets before the data sheet: never read (spec v1.2 §1.1).
    hidden: Vec<String>,
    /// The first non-blank row seen in any sheet: what a refusal names.
    first_row: Option<Vec<String>>,
    data_rows: u64,
    chunk: Vec<SourceRow>,
    beyond_header: Option<u64>,
    done: bool,
    /// The current sheet was found to have no header.
    abandoned: bool,
    /// The last row in `first` is a header (登记号 and two more columns): the next row is
    /// looked at before deciding, in case it is the lower row of a two-level header.
    strong: bool,
}

fn cell_name(v: &RawValue) -> String {
    v.display()
}

/// Whether `lower`, right below the header row `upper`, is the lower row of a two-level
/// header: it names a known column where `upper` has an empty cell or a cell that names
/// none (a group label), and it holds no 登记号 value (a data row always does).
fn is_lower_header(upper: &GridRow, lower: &GridRow) -> bool {
    let upper_field = |c: u32| upper.cells.iter().find(|(col, _)| *col == c).and_then(|(_, v)| Field::from_header(&cell_name(v)));
    let reg_no_col = upper.cells.iter().find(|(_, v)| Field::from_header(&cell_name(v)) == Some(Field::RegNo)).map(|(c, _)| *c);
    let reg_no_filled = reg_no_col
        .is_some_and(|rc| lower.cells.iter().any(|(c, v)| *c == rc && !v.is_blank() && Field::from_header(&cell_name(v)).is_none()));
    !reg_no_filled
        && lower.broken.is_none()
        && lower.cells.iter().any(|(c, v)| upper_field(*c).is_none() && Field::from_header(&cell_name(v)).is_some())
}

/// The fields a row names when read as a header.
fn named_fields(row: &GridRow) -> Vec<Field> {
    let mut out = Vec::new();
    for (_, v) in &row.cells {
        if let Some(f) = Field::from_header(&cell_name(v)) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

impl<'s> Form<'s> {
    pub fn new(tx: &'s mut Sender, csv: bool, encoding: Option<&'static str>, max_rows: u64) -> Form<'s> {
        Form {
            tx,
            csv,
            encoding,
            max_rows,
            sheet: String::new(),
            first: Vec::new(),
            header: None,
            trailer: None,
            skipped: Vec::new(),
            hidden: Vec::new(),
            first_row: None,
            data_rows: 0,
            chunk: Vec::with_capacity(CHUNK),
            beyond_header: None,
            done: false,
            abandoned: false,
            strong: false,
        }
    }

    /// The data sheet has been found (and read or being read).
    pub fn has_header(&self) -> bool {
        self.header.is_some()
    }

    /// A hidden or very hidden sheet: skipped unread, with a warning naming it (the
    /// data sheet is the first *visible* sheet with a header).
    pub fn skip_hidden_sheet(&mut self, name: &str) {
        if self.header.is_none() {
            self.hidden.push(name.to_string());
        }
    }

    pub fn start_sheet(&mut self, name: &str) {
        self.sheet = name.to_string();
        self.first.clear();
        self.abandoned = false;
        self.strong = false;
    }

    /// Takes the next row of the current sheet.
    pub fn push(&mut self, row: GridRow) -> Flow {
        if self.done {
            return Flow::Stop;
        }
        if self.header.is_some() {
            return self.data(row);
        }
        if self.abandoned {
            return Flow::NextSheet;
        }
        if self.strong && !row.is_blank() {
            // The row after a header: perhaps its lower row (two-level header).
            self.first.push(row);
            self.strong = false;
            return self.decide();
        }
        if row.row > HEADER_ROWS {
            return match self.decide() {
                Flow::Continue => self.data(row),
                other => other,
            };
        }
        if row.is_blank() {
            return Flow::Continue;
        }
        if self.first_row.is_none() {
            self.first_row = Some(row.cells.iter().map(|(_, v)| cell_name(v)).collect());
        }
        let named = named_fields(&row);
        self.strong = named.contains(&Field::RegNo) && named.len() >= 3;
        self.first.push(row);
        Flow::Continue
    }

    /// The current sheet ended.
    pub fn end_sheet(&mut self) -> Flow {
        if self.done {
            return Flow::Stop;
        }
        if self.abandoned {
            return Flow::NextSheet;
        }
        if self.header.is_none() {
            self.strong = false;
            return self.decide();
        }
        Flow::Stop
    }

    /// Picks the header among the first rows: the first holding 登记号 and at least two
    /// other known columns; failing that, the first holding 登记号 and one other (a
    /// withdrawal file needs only 登记号 and 操作).
    fn decide(&mut self) -> Flow {
        let first = std::mem::take(&mut self.first);
        let named: Vec<Vec<Field>> = first.iter().map(named_fields).collect();
        let pick = (0..first.len())
            .find(|&i| named[i].contains(&Field::RegNo) && named[i].len() >= 3)
            .or_else(|| (0..first.len()).find(|&i| named[i].contains(&Field::RegNo) && named[i].len() >= 2));
        let Some(h) = pick else {
            self.skipped.push(self.sheet.clone());
            self.abandoned = true;
            return Flow::NextSheet;
        };
        let mut rows = first.into_iter().peekable();
        let title_rows = h as u64;
        rows.by_ref().take(h).for_each(drop);
        let mut header = rows.next().expect("picked row exists");
        // A two-level header (spec v1.2 §1.1): the row right below names columns under a
        // group cell (成果完成人 over 第一完成单位 / 完成单位 / 主要完成人) or under empty
        // cells; each column takes the lower row's name where it has one.
        if let Some(lower) = rows.peek().filter(|l| l.row == header.row + 1 && is_lower_header(&header, l)) {
            let mut cells: std::collections::BTreeMap<u32, RawValue> = header.cells.iter().cloned().collect();
            for (c, v) in &lower.cells {
                if !v.is_blank() {
                    cells.insert(*c, v.clone());
                }
            }
            header = GridRow { row: header.row, cells: cells.into_iter().collect(), fields: header.fields.max(lower.fields), broken: None };
            rows.next();
        }
        if !self.start(&header, title_rows) {
            return Flow::Stop;
        }
        for row in rows {
            if self.data(row) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Sends the header and its warnings. False when the receiver is gone.
    fn start(&mut self, header: &GridRow, title_rows: u64) -> bool {
        // A CSV header is as wide as its record, trailing empty names included.
        let width = header.cells.last().map_or(0, |(c, _)| c + 1).max(header.fields.unwrap_or(0));
        let mut columns = vec![String::new(); width as usize];
        for (c, v) in &header.cells {
            columns[*c as usize] = cell_name(v);
        }
        let has_reg_no = named_fields(header).contains(&Field::RegNo);
        let mut warnings = Vec::new();
        for s in &self.hidden {
            warnings.push(Warning {
                row: None,
                field: Some(s.clone()),
                code: "sheet_skipped".into(),
                message: zh_en(
                    &format!("工作表“{s}”是隐藏的，已跳过（只读取可见的工作表）"),
                    &format!("sheet `{s}` is hidden; skipped (only visible sheets are read)"),
                ),
            });
        }
        for s in &self.skipped {
            warnings.push(Warning {
                row: None,
                field: Some(s.clone()),
                code: "sheet_skipped".into(),
                message: zh_en(
                    &format!("工作表“{s}”前几行中没有表头，已跳过"),
                    &format!("sheet `{s}` has no header row in its first rows; skipped"),
                ),
            });
        }
        if title_rows > 0 {
            warnings.push(Warning {
                row: Some(header.row),
                field: None,
                code: "title_rows_skipped".into(),
                message: zh_en(
                    &format!("表头在第 {} 行，其上方的 {title_rows} 行（标题、填报单位等）已跳过", header.row),
                    &format!("the header is on row {}; the {title_rows} row(s) above it (title, 填报单位 …) were skipped", header.row),
                ),
            });
        }
        let mut fields = Vec::with_capacity(columns.len());
        let mut seen: Vec<(Field, String)> = Vec::new();
        for name in &mut columns {
            let norm = normalize_header(name);
            let long = name.chars().count() > MAX_HEADER_CHARS;
            if long {
                *name = format!("{}…", name.chars().take(40).collect::<String>());
            }
            let field = if norm.is_empty() || is_error_column(name) || is_serial_column(&norm, has_reg_no) {
                None
            } else if long {
                warnings.push(unknown_column(name));
                None
            } else {
                match Field::from_header(name) {
                    Some(f) => {
                        if let Some((_, other)) = seen.iter().find(|(g, _)| *g == f) {
                            warnings.push(Warning {
                                row: None,
                                field: Some(f.key().to_string()),
                                code: "duplicate_column".into(),
                                message: zh_en(
                                    &format!("列“{other}”和列“{name}”都是{}；两列的值不同的行将被退回", f.zh()),
                                    &format!("columns `{other}` and `{name}` both give {}; rows where they differ are refused", f.key()),
                                ),
                            });
                        } else {
                            seen.push((f, name.clone()));
                        }
                        Some(f)
                    }
                    None => {
                        warnings.push(unknown_column(name));
                        None
                    }
                }
            };
            fields.push(field);
        }
        let reg_no_col = fields.iter().position(|f| *f == Some(Field::RegNo)).map(|c| c as u32);
        let present: Vec<Field> = fields.iter().flatten().copied().collect();
        self.header = Some(Header { width, fields, reg_no_col });
        self.tx.send(Piece::Start(super::Header { encoding: self.encoding, columns, present: Some(present), warnings }))
    }

    fn data(&mut self, row: GridRow) -> Flow {
        if row.is_blank() {
            return Flow::Continue;
        }
        let h = self.header.as_ref().expect("data after the header");
        if let Some((_, n)) = &mut self.trailer {
            *n += 1;
            return Flow::Continue;
        }
        if row.broken.is_none() {
            let reg_no_empty = match h.reg_no_col {
                Some(c) => row.cells.iter().find(|(col, _)| *col == c).is_none_or(|(_, v)| v.is_blank()),
                None => true,
            };
            if reg_no_empty {
                let first = row.cells.iter().map(|(_, v)| v.display()).find(|s| !s.trim().is_empty()).unwrap_or_default();
                let first = first.trim();
                if TRAILER_WORDS.iter().any(|w| first.starts_with(w)) {
                    self.trailer = Some((row.row, 1));
                    return Flow::Continue;
                }
            }
        }
        self.data_rows += 1;
        if self.data_rows > self.max_rows {
            self.done = true;
            self.tx.send(Piece::Refused(super::too_many_rows(self.max_rows)));
            return Flow::Stop;
        }
        let width = h.width;
        let mut broken = row.broken;
        if self.csv && broken.is_none() && row.fields.is_some_and(|n| n > width) {
            broken = Some(broken_row(
                row.row,
                "too_many_cells",
                &format!("该行有 {} 个单元格，多于表头的 {width} 列（可能有多余的逗号）", row.fields.unwrap_or(0)),
                &format!("the row has {} cells, more than the header's {width} (a stray comma?)", row.fields.unwrap_or(0)),
            ));
        }
        let mut cells = Vec::with_capacity(row.cells.len());
        for (col, value) in row.cells {
            if col < width {
                cells.push(Cell { col, field: h.fields[col as usize], value });
            } else if broken.is_some() {
                // Kept (beyond the columns) so the secrecy check sees every cell.
                cells.push(Cell { col, field: None, value });
            } else if !value.is_blank() && self.beyond_header.is_none() {
                self.beyond_header = Some(row.row);
            }
        }
        self.chunk.push(SourceRow { row: row.row, cells, broken });
        if self.chunk.len() >= CHUNK && !self.tx.rows(std::mem::take(&mut self.chunk)) {
            self.done = true;
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// After the last sheet read: refuses a file without a header, or sends the last
    /// rows and the warnings only known at the end. `later` names the sheets after the
    /// data sheet, which are not read.
    pub fn finish(mut self, later: &[String]) {
        if self.done {
            return;
        }
        if self.header.is_none() {
            let seen = self.first_row.take().unwrap_or_default();
            self.tx.send(Piece::Refused(no_header(&seen, !self.skipped.is_empty() && self.skipped.len() > 1)));
            return;
        }
        if !self.chunk.is_empty() && !self.tx.rows(std::mem::take(&mut self.chunk)) {
            return;
        }
        let mut warnings = Vec::new();
        if let Some((first, n)) = self.trailer {
            warnings.push(Warning {
                row: Some(first),
                field: None,
                code: "trailer_rows_skipped".into(),
                message: zh_en(
                    &format!("第 {first} 行起是表尾（合计、填表人等），共 {n} 行已跳过"),
                    &format!("row {first} starts the form's trailer (合计, 填表人 …); {n} non-empty row(s) from there were skipped"),
                ),
            });
        }
        if let Some(r) = self.beyond_header {
            warnings.push(Warning {
                row: Some(r),
                field: None,
                code: "cells_beyond_header".into(),
                message: zh_en(
                    &format!("第 {r} 行等有内容在表头之外的列中，已忽略"),
                    &format!("row {r} (and maybe others) has cells right of the header's last column; they were ignored"),
                ),
            });
        }
        for s in later {
            warnings.push(Warning {
                row: None,
                field: Some(s.clone()),
                code: "sheet_skipped".into(),
                message: zh_en(&format!("数据表之后的工作表“{s}”未读取"), &format!("sheet `{s}` after the data sheet was not read")),
            });
        }
        self.tx.send(Piece::End { warnings, columns: None });
    }
}

/// The refusal of a file none of whose sheets has a header row.
fn no_header(first_row: &[String], several_sheets: bool) -> Refusal {
    let named: Vec<Field> = first_row.iter().filter_map(|c| Field::from_header(c)).collect();
    let missing: Vec<Field> = Field::ALL.into_iter().filter(|f| f.required() && !named.contains(f)).collect();
    let zh: Vec<&str> = missing.iter().map(|f| f.zh()).collect();
    let en: Vec<&str> = missing.iter().map(|f| f.key()).collect();
    let (wz, we) = if several_sheets { ("任何工作表的", "of any sheet") } else { ("", "") };
    Refusal::new(
        "missing_column",
        &format!(
            "{wz}前 {HEADER_ROWS} 行中找不到表头（需含“登记号”及至少两个其他列名）；缺少必填列：{}",
            if zh.is_empty() { "登记号".to_string() } else { zh.join("、") }
        ),
        &format!(
            "no header row (登记号 and at least two other column names) in the first {HEADER_ROWS} rows {we}; required column missing: {}",
            if en.is_empty() { "reg_no".to_string() } else { en.join(", ") }
        ),
    )
}
