//! Hostile submissions for tests and the benchmark: files an attacker (or an
//! unlucky office) drops, generated on the fly — nothing of this size is kept in the
//! repository. Each is written straight to disk, so a generator holds little memory
//! however large its file.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The header of a valid submission.
pub const HEADER: &str =
    "登记号,成果名称,成果类型,行政区划代码,登记日期,第一完成单位,主要完成人,学科分类,应用行业,成果所处阶段,任务来源,成果简介,密级";

/// A valid row of node 420102, with `serial` in its reg_no and `title` as its title.
pub fn row(serial: u32, title: &str, secret: &str) -> String {
    format!("4201022024Y{serial:04},{title},应用技术,420102,2024-03-05,武汉研究所,张三,413,C27,初期阶段,计划外,简介,{secret}")
}

/// One hostile file: its name and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An `.xlsx` whose only cell is at XFD1048576 (a dense reader asks for 17 billion cells).
    FarCell,
    /// An `.xlsx` whose shared strings inflate to `scale` MiB.
    SharedStringsBomb,
    /// An `.xlsx` whose sheet holds `scale` MiB of whitespace.
    Whitespace,
    /// An `.xlsx` of `scale` MiB of `<row/>`.
    EmptyRows,
    /// An `.xlsx` with a header and `scale` × 1024 rows of one cell each.
    OneCellRows,
    /// An `.xlsx` whose header cell holds `scale` MiB of text.
    BigHeaderCellXlsx,
    /// A `.csv` of `scale` MiB of commas.
    Commas,
    /// A `.csv` of `scale` × 64 Ki lines of `x`.
    XLines,
    /// A `.csv` whose first cell holds `scale` MiB.
    BigHeaderCellCsv,
    /// A `.json` array of `scale` MiB of zeros.
    Zeros,
    /// A `.csv` with a valid header and `scale` × 1024 rows that are all rejected.
    AllRejected,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::FarCell,
        Kind::SharedStringsBomb,
        Kind::Whitespace,
        Kind::EmptyRows,
        Kind::OneCellRows,
        Kind::BigHeaderCellXlsx,
        Kind::Commas,
        Kind::XLines,
        Kind::BigHeaderCellCsv,
        Kind::Zeros,
        Kind::AllRejected,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Kind::FarCell => "far-cell.xlsx",
            Kind::SharedStringsBomb => "shared-strings-bomb.xlsx",
            Kind::Whitespace => "whitespace.xlsx",
            Kind::EmptyRows => "empty-rows.xlsx",
            Kind::OneCellRows => "one-cell-rows.xlsx",
            Kind::BigHeaderCellXlsx => "big-header-cell.xlsx",
            Kind::Commas => "commas.csv",
            Kind::XLines => "x-lines.csv",
            Kind::BigHeaderCellCsv => "big-header-cell.csv",
            Kind::Zeros => "zeros.json",
            Kind::AllRejected => "all-rejected.csv",
        }
    }

    /// The refusal code the file must get, or None when it is read row by row.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Kind::FarCell | Kind::Commas | Kind::XLines | Kind::BigHeaderCellCsv => Some("missing_column"),
            Kind::SharedStringsBomb => Some("compression_ratio"),
            Kind::Whitespace | Kind::BigHeaderCellXlsx => Some("cell_too_large"),
            Kind::EmptyRows => Some("sheet_too_large"),
            Kind::Zeros => Some("too_many_rows"),
            Kind::OneCellRows | Kind::AllRejected => None,
        }
    }

    /// Writes the file into `dir`, `scale` setting its size; returns its path.
    pub fn write(self, dir: &Path, scale: usize) -> io::Result<PathBuf> {
        let path = dir.join(self.file_name());
        let mib = 1024 * 1024;
        match self {
            Kind::FarCell => xlsx(&path, None, |w| w.write_all(br#"<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>"#))?,
            Kind::SharedStringsBomb => {
                let item = "<si><t>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</t></si>";
                let n = scale * mib / item.len();
                xlsx(&path, Some(&mut |w: &mut dyn Write| repeat(w, "<sst>", item, n, "</sst>")), |w| {
                    w.write_all(br#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#)
                })?
            }
            Kind::Whitespace => xlsx(&path, None, |w| {
                repeat(w, r#"<row r="1"><c r="A1" t="inlineStr"><is><t>"#, &" ".repeat(4096), scale * 256, "</t></is></c></row>")
            })?,
            Kind::EmptyRows => xlsx(&path, None, |w| repeat(w, "", "<row/>", scale * mib / 6, ""))?,
            Kind::OneCellRows => {
                let header: String = HEADER
                    .split(',')
                    .enumerate()
                    .map(|(i, h)| format!(r#"<c r="{}1" t="inlineStr"><is><t>{h}</t></is></c>"#, col(i)))
                    .collect();
                xlsx(&path, None, |w| {
                    write!(w, r#"<row r="1">{header}</row>"#)?;
                    for r in 2..scale * 1024 + 2 {
                        write!(w, r#"<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>x</t></is></c></row>"#)?;
                    }
                    Ok(())
                })?
            }
            Kind::BigHeaderCellXlsx => xlsx(&path, None, |w| {
                repeat(w, r#"<row r="1"><c r="A1" t="inlineStr"><is><t>"#, &"长".repeat(1024), scale * 341, "</t></is></c></row>")
            })?,
            Kind::Commas => text(&path, |w| repeat(w, "", &format!("{}\n", ",".repeat(1023)), scale * 1024, ""))?,
            Kind::XLines => text(&path, |w| repeat(w, "", "x\n", scale * 64 * 1024, ""))?,
            Kind::BigHeaderCellCsv => text(&path, |w| repeat(w, "\"", &"长".repeat(1024), scale * 341, "\",成果名称\n"))?,
            // Just inside the size limit at 256.
            Kind::Zeros => text(&path, |w| repeat(w, "[0", ",0", scale * mib / 2 - 8, "]"))?,
            Kind::AllRejected => text(&path, |w| {
                writeln!(w, "{HEADER}")?;
                for i in 0..scale * 1024 {
                    // A discipline of two digits: every row is rejected, and echoed.
                    writeln!(w, "{}", row(i as u32 % 10_000, &format!("退回{i}"), "公开").replace(",413,", ",41,"))?;
                }
                Ok(())
            })?,
        }
        Ok(path)
    }
}

/// Column letters of a 0-based index.
fn col(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("letters")
}

fn repeat(w: &mut dyn Write, head: &str, item: &str, n: usize, tail: &str) -> io::Result<()> {
    w.write_all(head.as_bytes())?;
    for _ in 0..n {
        w.write_all(item.as_bytes())?;
    }
    w.write_all(tail.as_bytes())
}

fn text(path: &Path, body: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    body(&mut w)?;
    w.flush()
}

/// Writes the body of a part.
type Body<'a> = dyn FnMut(&mut dyn Write) -> io::Result<()> + 'a;

/// A deflated workbook with one sheet whose `<sheetData>` is written by `rows`, and
/// shared strings written by `shared`.
fn xlsx(path: &Path, shared: Option<&mut Body<'_>>, rows: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    use zip::write::SimpleFileOptions;
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).compression_level(Some(9));
    let mut z = zip::ZipWriter::new(std::fs::File::create(path)?);
    let part = |z: &mut zip::ZipWriter<std::fs::File>, name: &str, body: &str| -> io::Result<()> {
        z.start_file(name, opts).map_err(io::Error::other)?;
        z.write_all(body.as_bytes())
    };
    part(
        &mut z,
        "[Content_Types].xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>"#,
    )?;
    part(
        &mut z,
        "_rels/.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
    )?;
    part(
        &mut z,
        "xl/workbook.xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
    )?;
    part(
        &mut z,
        "xl/_rels/workbook.xml.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#,
    )?;
    if let Some(shared) = shared {
        z.start_file("xl/sharedStrings.xml", opts).map_err(io::Error::other)?;
        let mut w = BufWriter::with_capacity(1 << 20, &mut z);
        shared(&mut w)?;
        w.flush()?;
    }
    z.start_file("xl/worksheets/sheet1.xml", opts).map_err(io::Error::other)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, &mut z);
        w.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#)?;
        rows(&mut w)?;
        w.write_all(b"</sheetData></worksheet>")?;
        w.flush()?;
    }
    z.finish().map_err(io::Error::other)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes each file at the size given by HUIJIAO_HOSTILE_DIR / _SCALE (a manual tool).
    #[test]
    fn every_kind_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (out, scale) = match std::env::var("HUIJIAO_HOSTILE_DIR") {
            Ok(d) => (PathBuf::from(d), std::env::var("HUIJIAO_HOSTILE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)),
            Err(_) => (dir.path().to_path_buf(), 1),
        };
        for k in Kind::ALL {
            let p = k.write(&out, scale).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 0, "{k:?}");
        }
        assert_eq!(col(0), "A");
        assert_eq!(col(26), "AA");
        assert_eq!(col(16_383), "XFD");
    }
}
