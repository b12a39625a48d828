//! Excel 97–2003 `.xls` (BIFF8 in a compound file), read with calamine.
//!
//! calamine parses every sheet of an `.xls` into a dense grid when the workbook is
//! opened, so an `.xls` is held to a smaller size than other files
//! ([`MAX_XLS_SIZE`]) and each sheet's extent is checked before its rows are read.
//! A file that makes the reader fail or panic is refused; a file that kills the
//! process is set aside by the inbox after repeated attempts.

use super::form::{Flow, Form, GridRow};
use super::{Cancel, Limits};
use calamine::{Data, Reader, Xls};
use huijiao_protocol::date::Date;
use huijiao_protocol::report::Refusal;
use huijiao_protocol::validate::{RawValue, MAX_CELL_CHARS};
use std::fs::File;

/// The largest `.xls` read (Excel 97–2003 workbooks are small; save larger ones as
/// `.xlsx`, which is read as a stream).
pub const MAX_XLS_SIZE: u64 = 32 * 1024 * 1024;

fn unreadable(e: &dyn std::fmt::Display) -> Refusal {
    Refusal::new(
        "unreadable_xls",
        "无法读取 Excel 97–2003 (.xls) 文件，文件可能已损坏；可另存为 .xlsx 后再提交",
        &format!("cannot read the workbook: {e}"),
    )
}

pub(crate) fn read(file: File, limits: &Limits, cancel: &Cancel, form: &mut Form<'_>) -> Result<Vec<String>, Refusal> {
    let size = file.metadata().map_err(|e| unreadable(&e))?.len();
    if size > MAX_XLS_SIZE {
        let mib = MAX_XLS_SIZE / (1024 * 1024);
        return Err(Refusal::new(
            "file_too_large",
            &format!(".xls 文件超过 {mib} MiB，请另存为 .xlsx 或拆分后再提交"),
            &format!("an .xls file over {mib} MiB is not read; save it as .xlsx or split it"),
        ));
    }
    let mut wb: Xls<_> = Xls::new(std::io::BufReader::new(file)).map_err(|e| unreadable(&e))?;
    let names: Vec<String> = wb.sheet_names().to_vec();
    for (i, name) in names.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(super::cancelled());
        }
        form.start_sheet(name);
        let range = wb.worksheet_range(name).map_err(|e| unreadable(&e))?;
        let (h, w) = range.get_size();
        if (h as u64).saturating_mul(w as u64) > limits.max_xls_cells {
            return Err(super::xlsx::sheet_too_large(&format!("{h} 行 × {w} 列 / {h} rows × {w} columns")));
        }
        let first_row = range.start().map_or(0, |(r, _)| r);
        let first_col = range.start().map_or(0, |(_, c)| c);
        let mut flow = Flow::Continue;
        for (k, cells) in range.rows().enumerate() {
            let row = u64::from(first_row) + k as u64 + 1;
            let cells: Vec<(u32, RawValue)> =
                cells.iter().enumerate().map(|(c, d)| (first_col + c as u32, to_raw(d))).filter(|(_, v)| !v.is_blank()).collect();
            if cells.is_empty() {
                continue;
            }
            flow = form.push(GridRow { row, cells, fields: None, broken: None });
            if flow != Flow::Continue {
                break;
            }
        }
        match flow {
            Flow::Stop => return Ok(Vec::new()),
            Flow::NextSheet => continue,
            Flow::Continue => {
                form.end_sheet();
                if form.has_header() {
                    return Ok(names[i + 1..].to_vec());
                }
            }
        }
    }
    Ok(Vec::new())
}

fn to_raw(c: &Data) -> RawValue {
    match c {
        Data::Empty => RawValue::Empty,
        Data::String(s) if s.chars().count() > MAX_CELL_CHARS => RawValue::TooLong(s.chars().count()),
        Data::String(s) => RawValue::Text(s.clone()),
        Data::Int(i) => RawValue::Int(*i),
        Data::Float(f) => RawValue::Float(*f),
        Data::Bool(b) => RawValue::Bool(*b),
        Data::DateTime(dt) if dt.is_datetime() && (1.0..2_958_466.0).contains(&dt.as_f64()) => {
            let (y, m, d, ..) = dt.to_ymd_hms_milli();
            Date::new(i32::from(y), m, d).map_or(RawValue::Invalid("date"), RawValue::Date)
        }
        Data::DateTime(_) | Data::DurationIso(_) => RawValue::Invalid("duration"),
        Data::DateTimeIso(s) => Date::parse(s).map_or_else(|_| RawValue::Text(s.clone()), RawValue::Date),
        Data::Error(_) => RawValue::Invalid("error cell"),
    }
}
