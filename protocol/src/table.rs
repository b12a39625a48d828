//! A record as a row of the submission format's columns, and the CSV those rows are
//! written in: what the export, the rejected-row files and the generated test
//! submissions share, so that whatever one writes the others read back unchanged.

use crate::fields::Field;
use crate::record::Record;
use crate::validate::format_float;
use std::borrow::Cow;
use std::io;

/// The columns of a submission file the export writes (and the generators use):
/// every field but `op`, by Chinese name.
pub fn columns() -> Vec<Field> {
    Field::ALL.into_iter().filter(|f| *f != Field::Op).collect()
}

/// One record as spreadsheet cells, aligned with [`columns`]: lists joined with `;`,
/// yes/no as 是/否, numbers as the spec writes them, absent as empty. Read straight
/// from the record's fields (an export writes ten million of these).
pub fn cells(r: &Record) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    columns()
        .into_iter()
        .map(|f| match f {
            Field::RegNo => r.reg_no.clone(),
            Field::Op => String::new(),
            Field::Title => r.title.clone(),
            Field::Kind => r.kind.zh().to_string(),
            Field::Region => r.region.clone(),
            Field::RegDate => r.reg_date.to_string(),
            Field::FirstUnit => r.first_unit.clone(),
            Field::Units => r.units.join(";"),
            Field::Persons => r.persons.join(";"),
            Field::Keywords => r.keywords.join(";"),
            Field::Discipline => r.discipline.clone(),
            Field::Industry => opt(&r.industry),
            Field::Stage => opt(&r.stage),
            Field::Level => opt(&r.level),
            Field::Trl => r.trl.map(|t| t.to_string()).unwrap_or_default(),
            Field::TaskSource => r.task_source.clone(),
            Field::PlanNo => opt(&r.plan_no),
            Field::FiscalFunded => r.fiscal_funded.map(|b| if b { "是" } else { "否" }.to_string()).unwrap_or_default(),
            Field::Ip => r.ip.join(";"),
            Field::Transfer => opt(&r.transfer),
            Field::Abstract => r.r#abstract.clone(),
            Field::Funding => r.funding.map(format_float).unwrap_or_default(),
            Field::Benefit => r.benefit.map(format_float).unwrap_or_default(),
            Field::Contact => opt(&r.contact),
            Field::Phone => opt(&r.phone),
            Field::Secret => r.secret.zh().to_string(),
            Field::EmbargoUntil => r.embargo_until.map(|d| d.to_string()).unwrap_or_default(),
        })
        .collect()
}

/// Quotes one field for writing, when it needs it.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Writes one row as a CSV line (CRLF).
pub fn write_csv_row<W: io::Write + ?Sized>(out: &mut W, row: &[String]) -> io::Result<()> {
    for (i, f) in row.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(csv_field(f).as_bytes())?;
    }
    out.write_all(b"\r\n")
}

/// Writes rows as CSV: UTF-8 with a BOM so Excel opens it, CRLF line ends.
pub fn write_csv(rows: impl IntoIterator<Item = Vec<String>>) -> Vec<u8> {
    let mut out = vec![0xEF, 0xBB, 0xBF];
    for r in rows {
        write_csv_row(&mut out, &r).expect("writing to memory");
    }
    out
}

/// `s` padded with spaces to `width` terminal columns (CJK characters take two), for
/// tables printed on a terminal.
pub fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}
