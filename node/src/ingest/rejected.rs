//! `NAME.rejected.csv`: the rejected rows as given plus a column `错误 (error)`,
//! UTF-8 with a BOM so Excel opens it (spec §2). Rows are spooled to an unnamed
//! temporary file as they are rejected — by the checks, or later by the store — and
//! written out in row order at the end, so the cost is linear in the rows and the
//! memory is a few bytes per rejected row. A row refused for its 密级 never reaches
//! the spool.

use super::text::write_csv_row;
use huijiao_protocol::fields::{Field, ERROR_COLUMN};
use huijiao_protocol::report::RowError;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Rejected rows waiting to be written.
pub struct Spool {
    out: BufWriter<File>,
    /// (row, offset, length) of each entry.
    index: Vec<(u64, u64, u32)>,
    offset: u64,
    widest: u32,
    failed: Option<io::Error>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    c: Vec<(u32, String)>,
    e: String,
}

/// The text of the error column for one row: each error with the field it blames.
pub fn error_text(errors: &[RowError]) -> String {
    let text: Vec<String> = errors
        .iter()
        .map(|e| match e.field.as_deref().and_then(Field::from_header) {
            Some(f) => format!("{}({}): {}", f.zh(), f.key(), e.message),
            None => e.message.clone(),
        })
        .collect();
    text.join("；")
}

impl Spool {
    /// A spool in an unnamed file in `dir` (it disappears with the process).
    pub fn new(dir: &Path) -> io::Result<Spool> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(Spool { out: BufWriter::with_capacity(256 * 1024, file), index: Vec::new(), offset: 0, widest: 0, failed: None })
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Adds a rejected row: its cells as given, by column, and its errors.
    pub fn push(&mut self, row: u64, cells: Vec<(u32, String)>, errors: &[RowError]) {
        if self.failed.is_some() {
            return;
        }
        if let Some((c, _)) = cells.iter().max_by_key(|(c, _)| *c) {
            self.widest = self.widest.max(c + 1);
        }
        let mut line = serde_json::to_vec(&Entry { c: cells, e: error_text(errors) }).expect("entries serialize");
        line.push(b'\n');
        match self.out.write_all(&line) {
            Ok(()) => {
                self.index.push((row, self.offset, line.len() as u32));
                self.offset += line.len() as u64;
            }
            Err(e) => self.failed = Some(e),
        }
    }

    /// Writes the CSV: `columns` (widened if a broken row had more cells), the error
    /// column, then every spooled row in row order.
    pub fn write_csv(mut self, columns: &[String], out: &mut impl Write) -> io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.out.flush()?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        let width = columns.len().max(self.widest as usize);
        let mut header: Vec<String> = columns.to_vec();
        header.resize(width, String::new());
        header.push(ERROR_COLUMN.to_string());
        out.write_all(&[0xEF, 0xBB, 0xBF])?;
        write_csv_row(out, &header)?;
        self.index.sort_by_key(|(row, _, _)| *row);
        let mut buf = Vec::new();
        let mut cells = vec![String::new(); width + 1];
        for (_, offset, len) in &self.index {
            buf.resize(*len as usize, 0);
            file.read_exact_at(&mut buf, *offset)?;
            let entry: Entry = serde_json::from_slice(&buf).map_err(io::Error::other)?;
            cells.iter_mut().for_each(String::clear);
            for (c, v) in entry.c {
                if let Some(slot) = cells.get_mut(c as usize) {
                    *slot = v;
                }
            }
            cells[width] = entry.e;
            write_csv_row(out, &cells)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(row: u64) -> RowError {
        RowError { row, reg_no: None, field: Some("title".into()), code: "too_long".into(), message: "太长 (too long)".into() }
    }

    #[test]
    fn rows_come_out_in_row_order_aligned_with_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path()).unwrap();
        s.push(9, vec![(0, "b".into()), (2, "x,y".into())], &[err(9)]);
        s.push(3, vec![(1, "a".into())], &[err(3)]);
        s.push(5, vec![(3, "beyond".into())], &[err(5)]);
        let mut out = Vec::new();
        s.write_csv(&["登记号".into(), "成果名称".into(), "备注".into()], &mut out).unwrap();
        let text = String::from_utf8(out[3..].to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "登记号,成果名称,备注,,错误 (error)");
        assert!(lines[1].starts_with(",a,,,成果名称(title)"), "{}", lines[1]);
        assert!(lines[2].starts_with(",,,beyond,"), "{}", lines[2]);
        assert!(lines[3].starts_with("b,,\"x,y\",,"), "{}", lines[3]);
    }
}
