//! XLSX, read as a stream (ODS is `ods.rs`): the workbook's sheets in order, each sheet's rows as
//! they come, cells typed as the program stored them. No grid is built from a sheet's
//! declared or actual extent; empty (formatted) cells cost nothing; shared strings are
//! kept in memory up to a bound and on disk beyond it.

use super::form::{Flow, Form, GridRow};
use super::xml::{entity, open_zip, xml_error, xml_reader, CellText, Guard, PosFile, Tripped};
use super::{Cancel, Limits};
use huijiao_protocol::date::Date;
use huijiao_protocol::report::Refusal;
use huijiao_protocol::validate::RawValue;
use quick_xml::events::{BytesStart, Event};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

type Zip = zip::ZipArchive<PosFile>;

pub(super) fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b':') {
        Some(p) => &name[p + 1..],
        None => name,
    }
}

/// An attribute's text, entities resolved.
fn attr_value(a: &quick_xml::events::attributes::Attribute<'_>) -> Option<String> {
    let raw = std::str::from_utf8(&a.value).ok()?;
    quick_xml::escape::unescape(raw).ok().map(|v| v.into_owned())
}

/// An attribute's value, by local name.
pub(super) fn attr(e: &BytesStart<'_>, key: &[u8]) -> Option<String> {
    e.attributes().flatten().find(|a| local(a.key.as_ref()) == key).and_then(|a| attr_value(&a))
}

/// Opens a part of the archive under a guard.
pub(super) fn part<'z>(
    zip: &'z mut Zip,
    path: &str,
    limits: &Limits,
    cancel: &Cancel,
    tripped: &Tripped,
) -> Option<super::xml::Xml<zip::read::ZipFile<'z, PosFile>>> {
    let f = zip.by_name(path).ok()?;
    let compressed = f.compressed_size();
    Some(xml_reader(Guard::new(f, path, compressed, limits, cancel, tripped)))
}

/// A start tag: its local name, its attributes by local name, the names of the
/// elements around it.
type Tag = (Vec<u8>, HashMap<Vec<u8>, String>, Vec<Vec<u8>>);

/// Reads a small XML part (relationships, workbook, styles) into its start tags.
fn tags(zip: &mut Zip, path: &str, limits: &Limits, cancel: &Cancel, tripped: &Tripped) -> Result<Vec<Tag>, Refusal> {
    let Some(mut r) = part(zip, path, limits, cancel, tripped) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match r.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let name = local(e.name().as_ref()).to_vec();
                let attrs = e.attributes().flatten().filter_map(|a| Some((local(a.key.as_ref()).to_vec(), attr_value(&a)?))).collect();
                out.push((name.clone(), attrs, stack.clone()));
                stack.push(name);
            }
            Ok(Event::Empty(e)) => {
                let name = local(e.name().as_ref()).to_vec();
                let attrs = e.attributes().flatten().filter_map(|a| Some((local(a.key.as_ref()).to_vec(), attr_value(&a)?))).collect();
                out.push((name, attrs, stack.clone()));
            }
            Ok(Event::End(_)) => {
                stack.pop();
            }
            Ok(Event::Eof) => return Ok(out),
            Ok(_) => {}
            Err(e) => return Err(xml_error(&e, path, "xlsx", tripped)),
        }
        if out.len() > 100_000 {
            return Err(Refusal::new("unreadable_xlsx", &format!("{path} 过大"), &format!("{path} is too large")));
        }
        buf.clear();
    }
}

/// The parts of a workbook that say where things are.
struct Book {
    /// (name, path of the sheet part, hidden) in workbook order; None for a chart sheet.
    sheets: Vec<(String, Option<String>, bool)>,
    date1904: bool,
    styles: Option<String>,
    shared: Option<String>,
}

fn resolve(base_dir: &str, target: &str) -> String {
    if let Some(abs) = target.strip_prefix('/') {
        return abs.to_string();
    }
    let mut parts: Vec<&str> = base_dir.split('/').filter(|p| !p.is_empty()).collect();
    for seg in target.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn book(zip: &mut Zip, limits: &Limits, cancel: &Cancel, tripped: &Tripped) -> Result<Book, Refusal> {
    // Where the workbook part is: the package relationships say, xl/workbook.xml by custom.
    let mut wb_path = "xl/workbook.xml".to_string();
    for (name, a, _) in tags(zip, "_rels/.rels", limits, cancel, tripped)? {
        if name == b"Relationship" && a.get(&b"Type"[..]).is_some_and(|t| t.ends_with("/officeDocument")) {
            if let Some(t) = a.get(&b"Target"[..]) {
                wb_path = resolve("", t);
            }
        }
    }
    let (dir, file) = wb_path.rsplit_once('/').unwrap_or(("", &wb_path));
    let rels_path = if dir.is_empty() { format!("_rels/{file}.rels") } else { format!("{dir}/_rels/{file}.rels") };
    let mut targets: HashMap<String, (String, String)> = HashMap::new();
    for (name, a, _) in tags(zip, &rels_path, limits, cancel, tripped)? {
        if name == b"Relationship" {
            if let (Some(id), Some(t), Some(ty)) = (a.get(&b"Id"[..]), a.get(&b"Target"[..]), a.get(&b"Type"[..])) {
                let kind = ty.rsplit('/').next().unwrap_or("").to_string();
                targets.insert(id.clone(), (kind, resolve(dir, t)));
            }
        }
    }
    let wb = tags(zip, &wb_path, limits, cancel, tripped)?;
    if wb.is_empty() {
        return Err(Refusal::new("unreadable_xlsx", "无法读取 Excel 文件：缺少工作簿部分", "cannot read the workbook: no workbook part"));
    }
    let mut sheets = Vec::new();
    let mut date1904 = false;
    for (name, a, _) in &wb {
        match name.as_slice() {
            b"workbookPr" => date1904 = a.get(&b"date1904"[..]).is_some_and(|v| v == "1" || v == "true"),
            b"sheet" => {
                let sheet_name = a.get(&b"name"[..]).cloned().unwrap_or_default();
                let path = a.get(&b"id"[..]).and_then(|id| targets.get(id)).filter(|(k, _)| k == "worksheet").map(|(_, p)| p.clone());
                let hidden = a.get(&b"state"[..]).is_some_and(|s| s == "hidden" || s == "veryHidden");
                sheets.push((sheet_name, path, hidden));
            }
            _ => {}
        }
    }
    let find = |kind: &str, default: &str| targets.values().find(|(k, _)| k == kind).map(|(_, p)| p.clone()).or(Some(default.to_string()));
    Ok(Book { sheets, date1904, styles: find("styles", "xl/styles.xml"), shared: find("sharedStrings", "xl/sharedStrings.xml") })
}

/// Whether each cell style (`s` attribute) shows a date.
fn date_styles(zip: &mut Zip, path: Option<&str>, limits: &Limits, cancel: &Cancel, tripped: &Tripped) -> Result<Vec<bool>, Refusal> {
    let Some(path) = path else { return Ok(Vec::new()) };
    let mut custom: HashMap<u32, bool> = HashMap::new();
    let mut styles = Vec::new();
    for (name, a, stack) in tags(zip, path, limits, cancel, tripped)? {
        match name.as_slice() {
            b"numFmt" => {
                if let (Some(id), Some(code)) = (a.get(&b"numFmtId"[..]).and_then(|v| v.parse().ok()), a.get(&b"formatCode"[..])) {
                    custom.insert(id, is_date_format(code));
                }
            }
            b"xf" if stack.last().is_some_and(|p| p == b"cellXfs") => {
                let id: u32 = a.get(&b"numFmtId"[..]).and_then(|v| v.parse().ok()).unwrap_or(0);
                styles.push(custom.get(&id).copied().unwrap_or(builtin_date_format(id)));
            }
            _ => {}
        }
    }
    Ok(styles)
}

/// Whether a built-in number format (Excel's ids, the East Asian ones included) shows a date.
pub(crate) fn builtin_date_format(id: u32) -> bool {
    matches!(id, 14..=22 | 27..=36 | 45..=47 | 50..=58)
}

/// Whether a number format shows a date: a year or day token outside quotes and
/// brackets (`yyyy"年"m"月"d"日"`, `[$-F800]dddd`), or months without hours.
pub(crate) fn is_date_format(code: &str) -> bool {
    let mut plain = String::new();
    let (mut quoted, mut bracket) = (false, false);
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '[' if !quoted => bracket = true,
            ']' if !quoted => bracket = false,
            '\\' if !quoted => {
                chars.next();
            }
            _ if quoted || bracket => {}
            c => plain.push(c.to_ascii_lowercase()),
        }
    }
    if plain.contains("general") {
        return false;
    }
    plain.contains('y') || plain.contains('d') || (plain.contains('m') && !plain.contains('h') && !plain.contains('s'))
}

/// The shared strings of a workbook: the first bytes in memory, the rest in an
/// unnamed temporary file. `.xls` keeps its string table (SST) here too.
pub(crate) struct Strings {
    mem: String,
    file: Option<File>,
    spill_from: u64,
    /// Start of each string in the logical byte space; one more than there are strings.
    starts: Vec<u64>,
    too_long: HashMap<u32, usize>,
    limit_mem: usize,
    temp_dir: std::path::PathBuf,
    /// Bytes of all strings so far.
    total: u64,
}

impl Strings {
    pub(crate) fn new(limits: &Limits) -> Strings {
        Strings {
            mem: String::new(),
            file: None,
            spill_from: 0,
            starts: vec![0],
            too_long: HashMap::new(),
            limit_mem: limits.shared_in_memory,
            temp_dir: limits.temp_dir.clone(),
            total: 0,
        }
    }

    /// Adds the next string, within the caps on their number and bytes.
    pub(crate) fn add(&mut self, t: &CellText, limits: &Limits) -> Result<(), Refusal> {
        let too_many = |what: &str| {
            Refusal::new(
                "too_many_shared_strings",
                &format!("工作簿的共享字符串超过上限（{what}），请拆分后再提交"),
                &format!("the workbook's shared strings exceed the cap ({what}); split the file"),
            )
        };
        self.total += t.text.len() as u64;
        if self.starts.len() > limits.max_shared_strings {
            return Err(too_many(&format!("{} 个 / {} strings", limits.max_shared_strings, limits.max_shared_strings)));
        }
        if self.total > limits.max_shared_bytes {
            let mib = limits.max_shared_bytes / (1024 * 1024);
            return Err(too_many(&format!("{mib} MiB")));
        }
        self.push(t).map_err(|e| super::read_failed(&e))
    }

    fn push(&mut self, t: &CellText) -> std::io::Result<()> {
        let max = huijiao_protocol::validate::MAX_CELL_CHARS;
        let idx = self.starts.len() as u32 - 1;
        let at = *self.starts.last().expect("starts holds the end");
        let text = if t.chars > max {
            self.too_long.insert(idx, t.chars);
            ""
        } else {
            t.text.as_str()
        };
        if self.file.is_none() && self.mem.len() + text.len() <= self.limit_mem {
            if self.mem.capacity() == 0 {
                // Exactly the bound: growing by doubling would touch twice as much.
                self.mem.reserve_exact(self.limit_mem);
            }
            self.mem.push_str(text);
        } else {
            if self.file.is_none() {
                self.file = Some(tempfile::tempfile_in(&self.temp_dir)?);
                self.spill_from = at;
            }
            let f = self.file.as_mut().expect("just made");
            f.write_all(text.as_bytes())?;
        }
        self.starts.push(at + text.len() as u64);
        Ok(())
    }

    pub(crate) fn get(&self, i: usize) -> RawValue {
        let (Some(&a), Some(&b)) = (self.starts.get(i), self.starts.get(i + 1)) else { return RawValue::Invalid("shared string index") };
        if let Some(n) = self.too_long.get(&(i as u32)) {
            return RawValue::TooLong(*n);
        }
        let s = match &self.file {
            Some(f) if a >= self.spill_from => {
                let mut buf = vec![0u8; (b - a) as usize];
                if f.read_exact_at(&mut buf, a - self.spill_from).is_err() {
                    return RawValue::Invalid("shared string");
                }
                String::from_utf8(buf).unwrap_or_default()
            }
            _ => self.mem[a as usize..b as usize].to_string(),
        };
        if s.is_empty() {
            RawValue::Empty
        } else {
            RawValue::Text(s)
        }
    }
}

fn shared_strings(zip: &mut Zip, path: Option<&str>, limits: &Limits, cancel: &Cancel, tripped: &Tripped) -> Result<Strings, Refusal> {
    let mut s = Strings::new(limits);
    let Some(path) = path else { return Ok(s) };
    let strict = Limits { max_ratio: limits.max_shared_ratio, ratio_free: limits.shared_ratio_free, ..limits.clone() };
    let Some(mut r) = part(zip, path, &strict, cancel, tripped) else { return Ok(s) };
    let mut buf = Vec::new();
    let mut cur = CellText::default();
    let (mut in_si, mut in_t, mut skip) = (false, false, 0usize);
    loop {
        match r.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match local(e.name().as_ref()) {
                b"si" => {
                    in_si = true;
                    cur.clear();
                }
                b"rPh" | b"phoneticPr" => skip += 1,
                b"t" if in_si && skip == 0 => in_t = true,
                _ => {}
            },
            Ok(Event::Empty(e)) if local(e.name().as_ref()) == b"si" => {
                cur.clear();
                s.push(&cur).map_err(|e| super::read_failed(&e))?;
            }
            Ok(Event::End(e)) => match local(e.name().as_ref()) {
                b"si" => {
                    in_si = false;
                    s.add(&cur, limits)?;
                }
                b"rPh" | b"phoneticPr" => skip = skip.saturating_sub(1),
                b"t" => in_t = false,
                _ => {}
            },
            Ok(Event::Text(t)) if in_t => cur.push(&t.xml10_content().unwrap_or_default()),
            Ok(Event::GeneralRef(e)) if in_t => cur.push(&entity(&e).unwrap_or_default()),
            Ok(Event::Eof) => return Ok(s),
            Ok(_) => {}
            Err(e) => return Err(xml_error(&e, path, "xlsx", tripped)),
        }
        buf.clear();
    }
}

/// `AB12` → column 27 (0-based).
fn column_of(r: &str) -> Option<u32> {
    let mut col: u32 = 0;
    let mut letters = 0;
    for b in r.bytes() {
        if b.is_ascii_alphabetic() {
            col = col.checked_mul(26)?.checked_add(u32::from(b.to_ascii_uppercase() - b'A') + 1)?;
            letters += 1;
        } else {
            break;
        }
    }
    (letters > 0).then(|| col - 1)
}

pub(crate) fn too_many_columns(max: u32) -> Refusal {
    Refusal::new(
        "too_many_columns",
        &format!("工作表的列数超过 {max} 列（XFD），文件不是电子表格程序能写出的"),
        &format!("a sheet has cells beyond column {max} (XFD); no spreadsheet program writes that"),
    )
}

pub(crate) fn sheet_too_large(what: &str) -> Refusal {
    Refusal::new(
        "sheet_too_large",
        &format!("工作表过大（{what}），请拆分后再提交"),
        &format!("a sheet is too large ({what}); split the file"),
    )
}

/// Reads an `.xlsx` file into the form; returns the sheets after the data sheet.
pub(crate) fn read(file: File, limits: &Limits, cancel: &Cancel, form: &mut Form<'_>) -> Result<Vec<String>, Refusal> {
    let mut zip = open_zip(file, "xlsx")?;
    let tripped = Tripped::default();
    let book = book(&mut zip, limits, cancel, &tripped)?;
    let dates = date_styles(&mut zip, book.styles.as_deref(), limits, cancel, &tripped)?;
    let strings = shared_strings(&mut zip, book.shared.as_deref(), limits, cancel, &tripped)?;
    for (i, (name, path, hidden)) in book.sheets.iter().enumerate() {
        if *hidden {
            form.skip_hidden_sheet(name);
            continue;
        }
        form.start_sheet(name);
        let flow = match path {
            Some(p) => sheet(&mut zip, p, &strings, &dates, book.date1904, limits, cancel, &tripped, form)?,
            None => Flow::Continue,
        };
        match flow {
            Flow::Stop => return Ok(Vec::new()),
            Flow::NextSheet => continue,
            Flow::Continue => {
                form.end_sheet();
                if form.has_header() {
                    return Ok(book.sheets[i + 1..].iter().map(|(n, _, _)| n.clone()).collect());
                }
            }
        }
    }
    Ok(Vec::new())
}

/// The value of a cell once its element ends.
fn xlsx_value(t: &str, style: Option<usize>, v: &CellText, is: &CellText, strings: &Strings, dates: &[bool], date1904: bool) -> RawValue {
    let text = v.text.trim();
    match t {
        "s" => match text.parse::<usize>() {
            Ok(i) => strings.get(i),
            Err(_) if text.is_empty() => RawValue::Empty,
            Err(_) => RawValue::Invalid("shared string index"),
        },
        "inlineStr" => is.value(),
        "str" => v.value(),
        "b" => match text {
            "1" | "true" => RawValue::Bool(true),
            "0" | "false" => RawValue::Bool(false),
            "" => RawValue::Empty,
            _ => RawValue::Invalid("boolean"),
        },
        "e" => RawValue::Invalid("error cell"),
        "d" if !text.is_empty() => {
            Date::parse(text.get(..10).unwrap_or(text)).map_or_else(|_| RawValue::Text(text.to_string()), RawValue::Date)
        }
        _ if text.is_empty() => {
            // A number cell may still carry inline text from a lax writer.
            is.value()
        }
        _ => match text.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                if style.and_then(|s| dates.get(s)).copied().unwrap_or(false) {
                    let serial = if date1904 { x + 1462.0 } else { x };
                    match Date::from_excel_serial(serial) {
                        Some(d) => RawValue::Date(d),
                        None => RawValue::Invalid("date"),
                    }
                } else {
                    RawValue::Float(x)
                }
            }
            _ => RawValue::Text(text.to_string()),
        },
    }
}

#[allow(clippy::too_many_arguments)]
/// One piece: one streaming XML state machine over a worksheet (rows, cells, shared
/// strings, merges, hidden rows); its states share the position and the caps.
fn sheet(
    zip: &mut Zip,
    path: &str,
    strings: &Strings,
    dates: &[bool],
    date1904: bool,
    limits: &Limits,
    cancel: &Cancel,
    tripped: &Tripped,
    form: &mut Form<'_>,
) -> Result<Flow, Refusal> {
    let Some(mut r) = part(zip, path, limits, cancel, tripped) else { return Ok(Flow::Continue) };
    let mut buf = Vec::new();
    let mut row = GridRow::default();
    let mut row_no: u64 = 0;
    let mut rows_read: u64 = 0;
    let mut cells_read: u64 = 0;
    let mut in_row = false;
    // The cell being read.
    let (mut col, mut t, mut style) = (0u32, String::new(), None::<usize>);
    let mut next_col: u32 = 0;
    let (mut v, mut is) = (CellText::default(), CellText::default());
    let (mut in_v, mut in_is_t, mut skip) = (false, false, 0usize);
    // The current cell holds a formula (`<f>`).
    let mut formula = false;
    let mut in_cell = false;
    let start_row = |e: &BytesStart<'_>, row_no: &mut u64, rows_read: &mut u64| -> Result<u64, Refusal> {
        *rows_read += 1;
        let n = attr(e, b"r").and_then(|r| r.parse::<u64>().ok()).unwrap_or(*row_no + 1);
        if n > limits.max_rows || *rows_read > limits.max_rows {
            return Err(sheet_too_large(&format!("超过 {} 行 / more than {} rows", limits.max_rows, limits.max_rows)));
        }
        *row_no = n;
        Ok(n)
    };
    loop {
        let ev = match r.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) => return Err(xml_error(&e, path, "xlsx", tripped)),
        };
        let is_empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == b"row" => {
                let n = start_row(&e, &mut row_no, &mut rows_read)?;
                row = GridRow { row: n, ..GridRow::default() };
                next_col = 0;
                // An empty element is a row without cells (a formatted blank row).
                in_row = !is_empty;
            }
            Event::End(e) if local(e.name().as_ref()) == b"row" => {
                in_row = false;
                let done = std::mem::take(&mut row);
                if !done.cells.is_empty() {
                    let mut done = done;
                    done.cells.sort_by_key(|(c, _)| *c);
                    match form.push(done) {
                        Flow::Continue => {}
                        other => return Ok(other),
                    }
                }
            }
            Event::Start(e) if local(e.name().as_ref()) == b"c" => {
                in_cell = true;
                cells_read += 1;
                if cells_read > limits.max_cells {
                    return Err(sheet_too_large(&format!("超过 {} 个单元格 / more than {} cells", limits.max_cells, limits.max_cells)));
                }
                col = attr(&e, b"r").and_then(|r| column_of(&r)).unwrap_or(next_col);
                if col >= limits.max_columns {
                    return Err(too_many_columns(limits.max_columns));
                }
                next_col = col + 1;
                t = attr(&e, b"t").unwrap_or_default();
                style = attr(&e, b"s").and_then(|s| s.parse().ok());
                v.clear();
                is.clear();
                formula = false;
            }
            Event::Empty(e) if local(e.name().as_ref()) == b"c" => {
                // A cell without a value: formatting only.
                cells_read += 1;
                if cells_read > limits.max_cells {
                    return Err(sheet_too_large(&format!("超过 {} 个单元格 / more than {} cells", limits.max_cells, limits.max_cells)));
                }
                let c = attr(&e, b"r").and_then(|r| column_of(&r)).unwrap_or(next_col);
                if c >= limits.max_columns {
                    return Err(too_many_columns(limits.max_columns));
                }
                next_col = c + 1;
            }
            Event::End(e) if local(e.name().as_ref()) == b"c" => {
                in_cell = false;
                let mut value = xlsx_value(&t, style, &v, &is, strings, dates, date1904);
                if formula && value.is_blank() {
                    // A formula whose result was never saved (a file written by a
                    // program, not Excel): say so, not that the field is missing.
                    value = RawValue::Invalid("公式没有保存计算结果，请在 Excel 中打开并保存后再提交 / a formula with no saved result; open and save the file in Excel");
                }
                if !value.is_blank() && in_row {
                    row.cells.push((col, value));
                }
            }
            Event::Start(e) | Event::Empty(e) if in_cell && local(e.name().as_ref()) == b"f" => formula = true,
            Event::Start(e) if in_cell => match local(e.name().as_ref()) {
                b"v" => in_v = true,
                b"rPh" | b"phoneticPr" => skip += 1,
                b"t" if skip == 0 => in_is_t = true,
                _ => {}
            },
            Event::End(e) if in_cell => match local(e.name().as_ref()) {
                b"v" => in_v = false,
                b"rPh" | b"phoneticPr" => skip = skip.saturating_sub(1),
                b"t" => in_is_t = false,
                _ => {}
            },
            Event::Text(x) if in_v => v.push(&x.xml10_content().unwrap_or_default()),
            Event::Text(x) if in_is_t => is.push(&x.xml10_content().unwrap_or_default()),
            Event::GeneralRef(e) if in_v => v.push(&entity(&e).unwrap_or_default()),
            Event::GeneralRef(e) if in_is_t => is.push(&entity(&e).unwrap_or_default()),
            Event::End(e) if local(e.name().as_ref()) == b"sheetData" => return Ok(Flow::Continue),
            Event::Eof => return Ok(Flow::Continue),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_formats() {
        assert_eq!(column_of("A1"), Some(0));
        assert_eq!(column_of("AA94"), Some(26));
        assert_eq!(column_of("XFD1048576"), Some(16_383));
        assert_eq!(column_of("12"), None);
        assert!(is_date_format("yyyy\"年\"m\"月\"d\"日\""));
        assert!(is_date_format("[$-F800]dddd, mmmm dd, yyyy"));
        assert!(is_date_format("m/d/yy h:mm"));
        assert!(!is_date_format("h:mm:ss"));
        assert!(!is_date_format("0.00_);[Red](0.00)"));
        assert!(!is_date_format("General"));
        assert_eq!(resolve("xl", "worksheets/sheet1.xml"), "xl/worksheets/sheet1.xml");
        assert_eq!(resolve("xl", "/xl/worksheets/s.xml"), "xl/worksheets/s.xml");
        assert_eq!(resolve("xl/sub", "../styles.xml"), "xl/styles.xml");
    }
}
