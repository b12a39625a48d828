//! ODS (OpenDocument spreadsheets), read as a stream like XLSX: the workbook's tables
//! in order, each table's rows as they come, repeated rows and cells only advancing
//! the position.

use super::form::{Flow, Form, GridRow};
use super::xlsx::{attr, local, part, sheet_too_large, too_many_columns};
use super::xml::{entity, open_zip, xml_error, CellText, Tripped};
use super::{Cancel, Limits};
use huijiao_protocol::date::Date;
use huijiao_protocol::report::Refusal;
use huijiao_protocol::validate::RawValue;
use quick_xml::events::Event;
use std::fs::File;

/// Reads an `.ods` file (OpenDocument) into the form; returns the sheets after the
/// data sheet. A repeated empty row or cell (`number-rows-repeated`,
/// `number-columns-repeated`) only advances the position.
///
/// One piece: one streaming XML state machine (table, row, cell, text, repeats); its states
/// share the position and the caps.
pub(crate) fn read_ods(file: File, limits: &Limits, cancel: &Cancel, form: &mut Form<'_>) -> Result<Vec<String>, Refusal> {
    let mut zip = open_zip(file, "ods")?;
    let tripped = Tripped::default();
    let path = "content.xml";
    let Some(mut r) = part(&mut zip, path, limits, cancel, &tripped) else {
        return Err(Refusal::new("unreadable_ods", "无法读取 .ods 文件：缺少 content.xml", "cannot read the workbook: no content.xml"));
    };
    let mut buf = Vec::new();
    // Per sheet.
    let mut in_table = false;
    let mut reading = false; // rows of this sheet go to the form
    let mut done_data = false; // the data sheet has been read
    let mut later: Vec<String> = Vec::new();
    let (mut row_no, mut rows_read, mut cells_read) = (0u64, 0u64, 0u64);
    // Per row.
    let mut row = GridRow::default();
    let mut row_repeat = 1u64;
    let mut in_row = false;
    let mut col = 0u32;
    // Per cell.
    let mut in_cell = false;
    let mut cell_repeat = 1u32;
    let (mut vtype, mut value, mut date_value, mut bool_value) = (String::new(), None::<String>, None::<String>, None::<String>);
    let mut text = CellText::default();
    let mut paragraphs = 0;
    let mut in_p = 0usize;
    let mut skip = 0usize; // annotations inside a cell
                           // Hidden sheets: the table styles that hide one, and whether the current is hidden.
    let mut table_style: Option<String> = None;
    let mut hidden_styles: std::collections::HashSet<String> = Default::default();
    let finish_row =
        |row: &mut GridRow, repeat: u64, row_no: &mut u64, rows_read: &mut u64, form: &mut Form<'_>| -> Result<Flow, Refusal> {
            let base = *row_no;
            *row_no += repeat;
            if row.cells.is_empty() {
                return Ok(Flow::Continue);
            }
            *rows_read += repeat;
            if *row_no > limits.max_rows || *rows_read > limits.max_rows {
                return Err(sheet_too_large(&format!("超过 {} 行 / more than {} rows", limits.max_rows, limits.max_rows)));
            }
            let cells = std::mem::take(&mut row.cells);
            for k in 1..=repeat {
                let flow = form.push(GridRow { row: base + k, cells: cells.clone(), fields: None, broken: None });
                if flow != Flow::Continue {
                    return Ok(flow);
                }
            }
            Ok(Flow::Continue)
        };
    loop {
        let ev = match r.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) => return Err(xml_error(&e, path, "ods", &tripped)),
        };
        let is_empty = matches!(ev, Event::Empty(_));
        match ev {
            // Table styles that hide a sheet (`table:display="false"`), declared before the body.
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == b"style" && !in_table => {
                table_style = (attr(&e, b"family").as_deref() == Some("table")).then(|| attr(&e, b"name").unwrap_or_default());
            }
            Event::Start(e) | Event::Empty(e)
                if local(e.name().as_ref()) == b"table-properties" && !in_table && attr(&e, b"display").as_deref() == Some("false") =>
            {
                hidden_styles.extend(table_style.clone());
            }
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == b"table" && !in_table => {
                let name = attr(&e, b"name").unwrap_or_default();
                let hidden = attr(&e, b"style-name").is_some_and(|st| hidden_styles.contains(&st));
                if hidden && !done_data {
                    // Its rows are not read (`reading` stays off to its end).
                    form.skip_hidden_sheet(&name);
                    reading = false;
                } else if done_data {
                    later.push(name);
                } else {
                    form.start_sheet(&name);
                    reading = true;
                    row_no = 0;
                    rows_read = 0;
                    cells_read = 0;
                }
                in_table = !is_empty;
                if is_empty && reading {
                    form.end_sheet();
                    reading = false;
                    done_data = form.has_header();
                }
            }
            Event::End(e) if local(e.name().as_ref()) == b"table" && in_table => {
                in_table = false;
                if reading {
                    reading = false;
                    match form.end_sheet() {
                        Flow::Stop if !form.has_header() => return Ok(Vec::new()),
                        _ => {}
                    }
                    done_data = form.has_header();
                }
            }
            Event::Start(e) | Event::Empty(e) if reading && local(e.name().as_ref()) == b"table-row" => {
                row_repeat = attr(&e, b"number-rows-repeated").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
                row = GridRow::default();
                col = 0;
                in_row = !is_empty;
                if is_empty {
                    match finish_row(&mut row, row_repeat, &mut row_no, &mut rows_read, form)? {
                        Flow::Continue => {}
                        Flow::Stop => return Ok(Vec::new()),
                        Flow::NextSheet => reading = false,
                    }
                }
            }
            Event::End(e) if reading && in_row && local(e.name().as_ref()) == b"table-row" => {
                in_row = false;
                match finish_row(&mut row, row_repeat, &mut row_no, &mut rows_read, form)? {
                    Flow::Continue => {}
                    Flow::Stop => return Ok(Vec::new()),
                    Flow::NextSheet => reading = false,
                }
            }
            Event::Start(e) | Event::Empty(e)
                if reading && in_row && matches!(local(e.name().as_ref()), b"table-cell" | b"covered-table-cell") && !in_cell =>
            {
                cell_repeat = attr(&e, b"number-columns-repeated").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
                vtype = attr(&e, b"value-type").unwrap_or_default();
                value = attr(&e, b"value");
                date_value = attr(&e, b"date-value");
                bool_value = attr(&e, b"boolean-value");
                text.clear();
                paragraphs = 0;
                in_cell = !is_empty;
                if is_empty {
                    place_cell(
                        &mut row,
                        &mut col,
                        cell_repeat,
                        ods_value(&vtype, &value, &date_value, &bool_value, &text),
                        limits,
                        &mut cells_read,
                    )?;
                }
            }
            Event::End(e) if in_cell && matches!(local(e.name().as_ref()), b"table-cell" | b"covered-table-cell") && skip == 0 => {
                in_cell = false;
                place_cell(
                    &mut row,
                    &mut col,
                    cell_repeat,
                    ods_value(&vtype, &value, &date_value, &bool_value, &text),
                    limits,
                    &mut cells_read,
                )?;
            }
            Event::Start(e) | Event::Empty(e) if in_cell => match local(e.name().as_ref()) {
                b"annotation" => skip += usize::from(!is_empty),
                _ if skip > 0 => {}
                b"p" | b"h" => {
                    if paragraphs > 0 {
                        text.push("\n");
                    }
                    paragraphs += 1;
                    in_p += usize::from(!is_empty);
                }
                b"s" => {
                    let n: usize = attr(&e, b"c").and_then(|v| v.parse().ok()).unwrap_or(1).min(1000);
                    text.push(&" ".repeat(n));
                }
                b"tab" => text.push("\t"),
                b"line-break" => text.push("\n"),
                _ => {}
            },
            Event::End(e) if in_cell => match local(e.name().as_ref()) {
                b"annotation" => skip = skip.saturating_sub(1),
                b"p" | b"h" if skip == 0 => in_p = in_p.saturating_sub(1),
                _ => {}
            },
            Event::Text(x) if in_cell && in_p > 0 && skip == 0 => text.push(&x.xml10_content().unwrap_or_default()),
            Event::GeneralRef(x) if in_cell && in_p > 0 && skip == 0 => text.push(&entity(&x).unwrap_or_default()),
            Event::Eof => {
                if reading {
                    form.end_sheet();
                }
                return Ok(later);
            }
            _ => {}
        }
        buf.clear();
    }
}

/// Places a cell (repeated `repeat` times) at the current column.
fn place_cell(
    row: &mut GridRow,
    col: &mut u32,
    repeat: u32,
    value: RawValue,
    limits: &Limits,
    cells_read: &mut u64,
) -> Result<(), Refusal> {
    if value.is_blank() {
        *col = col.saturating_add(repeat);
        return Ok(());
    }
    if col.saturating_add(repeat) > limits.max_columns {
        return Err(too_many_columns(limits.max_columns));
    }
    *cells_read += u64::from(repeat);
    if *cells_read > limits.max_cells {
        return Err(sheet_too_large(&format!("超过 {} 个单元格 / more than {} cells", limits.max_cells, limits.max_cells)));
    }
    for _ in 0..repeat {
        row.cells.push((*col, value.clone()));
        *col += 1;
    }
    Ok(())
}

fn ods_value(vtype: &str, value: &Option<String>, date: &Option<String>, boolean: &Option<String>, text: &CellText) -> RawValue {
    match vtype {
        "float" | "percentage" | "currency" => match value.as_deref().map(str::trim).and_then(|v| v.parse::<f64>().ok()) {
            Some(x) if x.is_finite() => RawValue::Float(x),
            _ => text.value(),
        },
        "date" => match date.as_deref().and_then(|d| Date::parse(d.get(..10).unwrap_or(d)).ok()) {
            Some(d) => RawValue::Date(d),
            None => text.value(),
        },
        "boolean" => match boolean.as_deref() {
            Some("true") => RawValue::Bool(true),
            Some("false") => RawValue::Bool(false),
            _ => text.value(),
        },
        _ => text.value(),
    }
}
