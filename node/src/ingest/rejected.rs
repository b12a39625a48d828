//! `NAME.rejected.csv`: the rejected rows as given plus a column `错误 (error)`,
//! UTF-8 with a BOM so Excel opens it (spec §2). Rows are spooled to an unnamed
//! temporary file as they are rejected — by the checks, or later by the store — and
//! written out in row order at the end, so the cost is linear in the rows and the
//! memory is a few bytes per rejected row. A row refused for its 密级 never reaches
//! the spool.

use huijiao_protocol::fields::{Field, ERROR_COLUMN};
use huijiao_protocol::report::RowError;
use huijiao_protocol::table::write_csv_row;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Rejected rows waiting to be written.
pub struct Spool {
    out: BufWriter<File>,
    /// Bytes the spool may hold: a file of a million broken rows must not turn into
    /// gigabytes on disk. Rows past it are counted, not kept.
    max_bytes: u64,
    left_out: u64,
    /// (row, offset, length) of each entry.
    index: Vec<(u64, u64, u32)>,
    offset: u64,
    widest: u32,
    failed: Option<io::Error>,
}

/// An entry: `[cells: u32] ([col: u32] [len: u32] bytes)* [len: u32] error-bytes`,
/// little-endian.
fn encode(cells: &[(u32, String)], error: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(cells.len() as u32).to_le_bytes());
    for (c, v) in cells {
        out.extend_from_slice(&c.to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(&(error.len() as u32).to_le_bytes());
    out.extend_from_slice(error.as_bytes());
}

/// Reads one entry back into `cells` (by column) and returns its error text.
fn decode(mut b: &[u8], cells: &mut [String]) -> io::Result<String> {
    let bad = || io::Error::other("corrupt rejected-row spool");
    let u32_at = |b: &mut &[u8]| -> io::Result<u32> {
        let (head, rest) = b.split_first_chunk::<4>().ok_or_else(bad)?;
        *b = rest;
        Ok(u32::from_le_bytes(*head))
    };
    let text = |b: &mut &[u8], len: usize| -> io::Result<String> {
        let (s, rest) = b.split_at_checked(len).ok_or_else(bad)?;
        *b = rest;
        String::from_utf8(s.to_vec()).map_err(|_| bad())
    };
    let n = u32_at(&mut b)?;
    for _ in 0..n {
        let c = u32_at(&mut b)? as usize;
        let len = u32_at(&mut b)? as usize;
        let v = text(&mut b, len)?;
        if let Some(slot) = cells.get_mut(c) {
            *slot = v;
        }
    }
    let len = u32_at(&mut b)? as usize;
    text(&mut b, len)
}

/// The text of the error column for one row: each error with the field it blames,
/// the empty required fields named together.
pub fn error_text(errors: &[RowError]) -> String {
    let mut text: Vec<String> = Vec::with_capacity(errors.len());
    let mut missing: Vec<String> = Vec::new();
    let several_missing = errors.iter().filter(|e| e.code == "missing_field").count() > 1;
    for e in errors {
        match e.field.as_deref().and_then(Field::from_header) {
            Some(f) if several_missing && e.code == "missing_field" => missing.push(format!("{}({})", f.zh(), f.key())),
            Some(f) => text.push(format!("{}({}): {}", f.zh(), f.key(), e.message)),
            None => text.push(e.message.clone()),
        }
    }
    if !missing.is_empty() {
        text.insert(0, format!("必填项为空 (required fields empty): {}", missing.join("、")));
    }
    text.join("；")
}

impl Spool {
    /// A spool in an unnamed file in `dir` (it disappears with the process) that
    /// keeps at most `max_bytes` of rows.
    pub fn new(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(Spool {
            out: BufWriter::with_capacity(256 * 1024, file),
            max_bytes,
            left_out: 0,
            index: Vec::new(),
            offset: 0,
            widest: 0,
            failed: None,
        })
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
        if self.offset >= self.max_bytes {
            self.left_out += 1;
            return;
        }
        if let Some((c, _)) = cells.iter().max_by_key(|(c, _)| *c) {
            self.widest = self.widest.max(c + 1);
        }
        let mut line = Vec::with_capacity(256);
        encode(&cells, &error_text(errors), &mut line);
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
        // Rows come in order but for the few the store refused a moment later: read
        // the spool front to back when it is in order, by position otherwise.
        let in_order = self.index.windows(2).all(|w| w[0].0 <= w[1].0);
        self.index.sort_by_key(|(row, _, _)| *row);
        let mut cells = vec![String::new(); width + 1];
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, &file);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(0))?;
        let mut buf = Vec::new();
        for (_, offset, len) in &self.index {
            buf.resize(*len as usize, 0);
            if in_order {
                std::io::Read::read_exact(&mut reader, &mut buf)?;
            } else {
                file.read_exact_at(&mut buf, *offset)?;
            }
            cells.iter_mut().for_each(String::clear);
            cells[width] = decode(&buf, &mut cells[..width])?;
            write_csv_row(out, &cells)?;
        }
        if self.left_out > 0 {
            cells.iter_mut().for_each(String::clear);
            cells[width] = format!(
                "另有 {} 行被退回但未列出：退回的行太多，请检查这是否是正确的登记表 ({} more rejected rows are not listed: too many; is this the right register?)",
                self.left_out, self.left_out
            );
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
        let mut s = Spool::new(dir.path(), u64::MAX).unwrap();
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

        // Past its bound the spool counts rows instead of keeping them.
        let mut s = Spool::new(dir.path(), 10).unwrap();
        s.push(2, vec![(0, "a".into())], &[err(2)]);
        s.push(3, vec![(0, "b".into())], &[err(3)]);
        let mut out = Vec::new();
        s.write_csv(&["登记号".into()], &mut out).unwrap();
        let text = String::from_utf8(out[3..].to_vec()).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().last().unwrap().contains("另有 1 行"), "{text}");
    }
}
