//! XLSX: the first worksheet, header in its first row, cells typed as Excel stored them.

use super::{map_header, SourceRow, Table};
use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use huijiao_protocol::date::Date;
use huijiao_protocol::report::Refusal;
use huijiao_protocol::validate::{RawRow, RawValue};
use std::io::Cursor;

pub fn read(bytes: &[u8]) -> Result<Table, Refusal> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Refusal::new("unreadable_xlsx", "无法读取 Excel 文件，文件可能已损坏或不是 .xlsx 格式", &format!("cannot read the workbook: {e}"))
    };
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| unreadable(&e))?;
    let range = match wb.worksheet_range_at(0) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(unreadable(&e)),
        None => return Err(Refusal::new("no_data_rows", "工作簿中没有工作表", "the workbook has no worksheet")),
    };
    let Some((first_row, _)) = range.start() else {
        return Err(Refusal::new("no_data_rows", "文件没有数据行", "file holds no data rows"));
    };
    let mut it = range.rows().enumerate();
    let header: Vec<String> = match it.next() {
        Some((_, cells)) => cells.iter().map(|c| to_raw(c).display()).collect(),
        None => return Err(Refusal::new("no_data_rows", "文件没有数据行", "file holds no data rows")),
    };
    let (map, warnings) = map_header(&header);
    let mut rows = Vec::new();
    for (i, cells) in it {
        // Rows as Excel numbers them: the range may start below row 1.
        let row = u64::from(first_row) + i as u64 + 1;
        let values: Vec<RawValue> = cells.iter().map(to_raw).collect();
        if values.iter().all(|v| v.display().trim().is_empty()) {
            continue;
        }
        let mut raw = RawRow { row, cells: Vec::with_capacity(map.len()) };
        let mut extra = Vec::new();
        for (i, (f, v)) in map.iter().zip(values).enumerate() {
            match f {
                Some(f) => raw.cells.push((*f, v)),
                None => {
                    let shown = v.display();
                    if !shown.is_empty() {
                        extra.push((i, shown));
                    }
                }
            }
        }
        rows.push(SourceRow { row, raw, extra, broken: None });
    }
    let fields: Vec<_> = map.iter().flatten().copied().collect();
    Ok(Table { encoding: None, columns: header, column_fields: map, rows, warnings, header_fields: Some(fields) })
}

fn to_raw(c: &Data) -> RawValue {
    match c {
        Data::Empty => RawValue::Empty,
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
