//! A record as a row of the submission format's columns, and the CSV those rows are
//! written in: what the export, the rejected-row files and the generated test
//! submissions share, so that whatever one writes the others read back unchanged.

use crate::fields::Field;
use crate::raw::format_float;
use crate::record::Record;
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

/// A cell as it goes into a CSV file meant to be opened by people (spec v1.2 §3): one
/// that a spreadsheet would run as a formula — it begins with `=`, `+`, `-` or `@`,
/// also after tabs and carriage returns — gets a leading `'` (OWASP's advice), except a
/// plain number (`-12.5`) or a telephone number (`+86 27 8888 8888`). Leading tabs and
/// carriage returns are dropped (a node reading the file trims them anyway). A node
/// reading the file back removes exactly that `'` ([`unquote_formula`]), so our own
/// files re-import unchanged.
pub fn defuse(s: &str) -> Cow<'_, str> {
    let t = s.trim_start_matches(['\t', '\r']);
    let mut chars = t.chars();
    let risky = match chars.next() {
        Some('=' | '@') => true,
        Some('+' | '-') => {
            let rest = chars.as_str();
            let plain = rest.chars().any(|c| c.is_ascii_digit())
                && rest.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | ',' | '-' | '(' | ')'));
            !plain
        }
        _ => false,
    };
    match (risky, t.len() == s.len()) {
        (true, _) => Cow::Owned(format!("'{t}")),
        (false, true) => Cow::Borrowed(s),
        (false, false) => Cow::Owned(t.to_string()),
    }
}

/// The reading side of [`defuse`] (spec v1.2 §3): a value that begins with `'` followed
/// by `=`, `+`, `-` or `@` is read without that `'`.
pub fn unquote_formula(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => s,
    }
}

/// Quotes one field for writing, when it needs it.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Writes one row as a CSV line (CRLF), every cell [`defuse`]d: every CSV the node
/// writes (exports, rejected rows, statistics) may be opened in a spreadsheet.
pub fn write_csv_row<W: io::Write + ?Sized>(out: &mut W, row: &[String]) -> io::Result<()> {
    for (i, f) in row.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(csv_field(&defuse(f)).as_bytes())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_defused_and_read_back() {
        for (cell, written) in [
            ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
            ("+SUM(A1)", "'+SUM(A1)"),
            ("-2+3", "'-2+3"),
            ("@cmd", "'@cmd"),
            ("\t=1", "'=1"),
            ("\r\t@x", "'@x"),
            ("\tabc", "abc"),
            ("-12.5", "-12.5"),
            ("+86 27 8888 8888", "+86 27 8888 8888"),
            ("+86-27-88888888", "+86-27-88888888"),
            ("-", "'-"),
            ("水稻", "水稻"),
            ("a=b", "a=b"),
        ] {
            assert_eq!(defuse(cell), written, "{cell:?}");
            assert_eq!(unquote_formula(written.trim()), cell.trim(), "{cell:?} reads back as the reader trims it");
        }
        assert_eq!(unquote_formula("'abc"), "'abc", "only before = + - @");
        let mut out = Vec::new();
        write_csv_row(&mut out, &["=1+1".into(), "-3".into()]).unwrap();
        assert_eq!(out, b"'=1+1,-3\r\n");
    }

    #[test]
    fn a_formula_title_survives_export_and_reading() {
        let mut r = crate::record::tests::sample();
        r.title = "=HYPERLINK(\"http://evil\",\"点我\")".into();
        r.first_unit = "@单位".into();
        let written: Vec<String> = cells(&r).iter().map(|c| defuse(c).into_owned()).collect();
        assert!(written[1].starts_with("'="), "{}", written[1]);
        let v = crate::validate::Validator {
            regions: crate::RegionTable::embedded(),
            today: crate::Date::new(2026, 1, 1).unwrap(),
            node: None,
        };
        let row = v
            .validate_cells(
                2,
                columns()
                    .into_iter()
                    .zip(written.iter())
                    .map(|(f, c)| (f, crate::validate::RawValue::Text(c.clone())))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|(f, c)| (*f, c)),
            )
            .unwrap();
        assert_eq!(row, crate::validate::Row::Upsert(r));
    }
}
