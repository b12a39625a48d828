//! A minimal XLSX writer: one worksheet, text, numbers and date cells, stored (not
//! deflated) in the zip. Enough for the demo's generated submissions and for tests
//! that need what only a spreadsheet can carry (date cells, 16-digit numeric codes).

/// A cell to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// An Excel date cell (serial number with a date format).
    Date(huijiao_protocol::Date),
    /// A formula with no saved result (as a program, not Excel, may write one); in
    /// `.xls`, a formatted empty cell.
    Formula(String),
}

/// Builds the bytes of a workbook whose first (only) sheet holds `rows`.
pub fn workbook(rows: &[Vec<Cell>]) -> Vec<u8> {
    workbook_sheets(&[("成果", rows)])
}

/// The XML of one worksheet.
fn sheet_xml(rows: &[Vec<Cell>]) -> String {
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, cell) in row.iter().enumerate() {
            let at = format!("{}{}", column_name(c), r + 1);
            match cell {
                Cell::Empty => {}
                Cell::Text(s) => {
                    sheet.push_str(&format!(r#"<c r="{at}" t="inlineStr"><is><t xml:space="preserve">{}</t></is></c>"#, escape(s)))
                }
                Cell::Number(x) => sheet.push_str(&format!(r#"<c r="{at}"><v>{x}</v></c>"#)),
                Cell::Formula(f) => sheet.push_str(&format!(r#"<c r="{at}"><f>{}</f></c>"#, escape(f))),
                Cell::Date(d) => {
                    // Excel's 1900 system: day 25569 is 1970-01-01.
                    let serial = d.to_days() + 25_569;
                    sheet.push_str(&format!(r#"<c r="{at}" s="1"><v>{serial}</v></c>"#));
                }
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    sheet
}

/// Builds the bytes of a workbook with these sheets, in this order.
pub fn workbook_sheets(sheets: &[(&str, &[Vec<Cell>])]) -> Vec<u8> {
    let visible: Vec<(&str, &[Vec<Cell>], &str)> = sheets.iter().map(|(n, r)| (*n, *r, "visible")).collect();
    workbook_sheets_states(&visible)
}

/// [`workbook_sheets`] with each sheet's `state`: `visible`, `hidden` or `veryHidden`.
pub fn workbook_sheets_states(sheets: &[(&str, &[Vec<Cell>], &str)]) -> Vec<u8> {
    let head = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;
    let overrides: String = (1..=sheets.len())
        .map(|i| format!(r#"<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#))
        .collect();
    let listed: String = sheets
        .iter()
        .enumerate()
        .map(|(i, (name, _, state))| format!(r#"<sheet name="{}" sheetId="{}" state="{state}" r:id="rId{}"/>"#, escape(name), i + 1, i + 1))
        .collect();
    let rels: String = (1..=sheets.len())
        .map(|i| format!(r#"<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>"#))
        .collect();
    let mut files: Vec<(String, String)> = vec![
        (
            "[Content_Types].xml".into(),
            format!(
                r#"{head}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>{overrides}<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#
            ),
        ),
        (
            "_rels/.rels".into(),
            format!(
                r#"{head}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
            ),
        ),
        (
            "xl/workbook.xml".into(),
            format!(
                r#"{head}<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{listed}</sheets></workbook>"#
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels".into(),
            format!(
                r#"{head}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#
            ),
        ),
        (
            "xl/styles.xml".into(),
            format!(
                r#"{head}<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font/></fonts><fills count="1"><fill/></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>"#
            ),
        ),
    ];
    for (i, (_, rows, _)) in sheets.iter().enumerate() {
        files.push((format!("xl/worksheets/sheet{}.xml", i + 1), sheet_xml(rows)));
    }
    zip_stored(files.iter().map(|(n, d)| (n.as_str(), d.as_bytes())))
}

fn column_name(mut c: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A zip archive with every entry stored uncompressed.
pub fn zip_stored<'a>(files: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut count = 0u16;
    for (name, data) in files {
        let crc = crc32(data);
        let offset = out.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // version made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&[0u8; 6]); // comment length, disk, internal attrs
                h.extend_from_slice(&0u32.to_le_bytes()); // external attrs
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(data);
        central.extend(header(0x0201_4b50, true));
        count += 1;
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Builds an Excel 97–2003 `.xls` (BIFF8 in a compound file) with these sheets:
/// text in the shared string table (split across `CONTINUE` records when long),
/// whole numbers as `RK`, other numbers as `NUMBER`, dates as numbers with a date
/// format, and [`Cell::Empty`] as a formatted empty cell (`BLANK`). A workbook
/// stream under 4096 bytes goes into the mini stream, as Excel would put it.
pub fn workbook_xls(sheets: &[(&str, &[Vec<Cell>])]) -> Vec<u8> {
    fn rec(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(body);
    }
    fn wide(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }
    let bof = |dt: u16| -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&0x0600u16.to_le_bytes());
        b[2..4].copy_from_slice(&dt.to_le_bytes());
        b
    };
    // The string table: every text once.
    let mut strings: Vec<&str> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (_, rows) in sheets {
        for cell in rows.iter().flatten() {
            if let Cell::Text(s) = cell {
                index.entry(s.as_str()).or_insert_with(|| {
                    strings.push(s);
                    strings.len() as u32 - 1
                });
            }
        }
    }
    let mut globals = Vec::new();
    rec(&mut globals, 0x0809, &bof(0x0005));
    // XF 0 general, XF 1 a built-in date format (14), XF 2 a custom one (164).
    let mut format = vec![164, 0];
    let code = "yyyy\"年\"m\"月\"d\"日\"";
    format.extend_from_slice(&(code.encode_utf16().count() as u16).to_le_bytes());
    format.push(1);
    format.extend(wide(code));
    rec(&mut globals, 0x041E, &format);
    for ifmt in [0u16, 14, 164] {
        let mut xf = vec![0u8; 20];
        xf[2..4].copy_from_slice(&ifmt.to_le_bytes());
        rec(&mut globals, 0x00E0, &xf);
    }
    let mut sheet_at = Vec::new();
    for (name, _) in sheets {
        let mut b = vec![0u8; 4];
        b.extend_from_slice(&[0, 0, name.encode_utf16().count() as u8, 1]);
        b.extend(wide(name));
        sheet_at.push(globals.len() + 4);
        rec(&mut globals, 0x0085, &b);
    }
    // SST, continued in records of at most 8224 bytes; a string cut inside its
    // characters goes on after a flags byte.
    const MAX: usize = 8224;
    let mut body = Vec::new();
    body.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    body.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    let mut kind = 0x00FCu16;
    for (i, s) in strings.iter().enumerate() {
        let units: Vec<u16> = s.encode_utf16().collect();
        // Some strings carry formatting runs (rich text) or phonetic data, as Excel
        // writes for East Asian text: bytes after the characters that are skipped.
        let (runs, ext) = (if i % 7 == 3 { 2usize } else { 0 }, if i % 11 == 5 { 10usize } else { 0 });
        let mut head = (units.len() as u16).to_le_bytes().to_vec();
        head.push(1 | if runs > 0 { 0x08 } else { 0 } | if ext > 0 { 0x04 } else { 0 });
        if runs > 0 {
            head.extend_from_slice(&(runs as u16).to_le_bytes());
        }
        if ext > 0 {
            head.extend_from_slice(&(ext as u32).to_le_bytes());
        }
        if body.len() + head.len() > MAX {
            rec(&mut globals, kind, &body);
            (kind, body) = (0x003C, Vec::new());
        }
        body.extend(head);
        let mut rest = &units[..];
        while !rest.is_empty() {
            let room = (MAX - body.len()) / 2;
            if room == 0 {
                rec(&mut globals, kind, &body);
                (kind, body) = (0x003C, vec![1]);
                continue;
            }
            let n = room.min(rest.len());
            body.extend(rest[..n].iter().flat_map(|u| u.to_le_bytes()));
            rest = &rest[n..];
        }
        // The runs and phonetic bytes continue in the next record without a flags byte.
        let tail = vec![0xAB_u8; 4 * runs + ext];
        let mut tail = &tail[..];
        while !tail.is_empty() {
            if body.len() == MAX {
                rec(&mut globals, kind, &body);
                (kind, body) = (0x003C, Vec::new());
            }
            let n = (MAX - body.len()).min(tail.len());
            body.extend_from_slice(&tail[..n]);
            tail = &tail[n..];
        }
    }
    rec(&mut globals, kind, &body);
    rec(&mut globals, 0x000A, &[]);
    let mut stream = globals;
    for (i, (_, rows)) in sheets.iter().enumerate() {
        let at = stream.len() as u32;
        stream[sheet_at[i]..sheet_at[i] + 4].copy_from_slice(&at.to_le_bytes());
        rec(&mut stream, 0x0809, &bof(0x0010));
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let mut b = Vec::new();
                b.extend_from_slice(&(r as u16).to_le_bytes());
                b.extend_from_slice(&(c as u16).to_le_bytes());
                let (kind, xf, tail): (u16, u16, Vec<u8>) = match cell {
                    Cell::Empty | Cell::Formula(_) => (0x0201, 0, Vec::new()),
                    Cell::Text(s) => (0x00FD, 0, index[s.as_str()].to_le_bytes().to_vec()),
                    Cell::Number(x) if x.fract() == 0.0 && x.abs() < 5.0e8 => {
                        (0x027E, 0, (((*x as i32) << 2) as u32 | 2).to_le_bytes().to_vec())
                    }
                    Cell::Number(x) => (0x0203, 0, x.to_le_bytes().to_vec()),
                    Cell::Date(d) => (0x0203, 1 + (r % 2) as u16, ((d.to_days() + 25_569) as f64).to_le_bytes().to_vec()),
                };
                b.extend_from_slice(&xf.to_le_bytes());
                b.extend(tail);
                rec(&mut stream, kind, &b);
            }
        }
        rec(&mut stream, 0x000A, &[]);
    }
    compound_file(&stream)
}

/// A compound file (512-byte sectors) holding one stream named `Workbook`.
fn compound_file(stream: &[u8]) -> Vec<u8> {
    const END: u32 = 0xFFFF_FFFE;
    const FREE: u32 = 0xFFFF_FFFF;
    let mini = stream.len() < 4096;
    let sectors_of = |n: usize| n.div_ceil(512);
    // Sectors after the FAT: directory, [mini FAT], stream or mini stream container.
    let (data_len, mini_fat_len) = if mini { (stream.len().div_ceil(64) * 64, 1) } else { (stream.len(), 0) };
    let rest = 1 + mini_fat_len + sectors_of(data_len);
    let mut fat_count = 1;
    while fat_count * 128 < fat_count + rest {
        fat_count += 1;
    }
    let dir = fat_count as u32;
    let mini_fat = dir + 1;
    let data = dir + 1 + mini_fat_len as u32;
    let mut fat = vec![FREE; fat_count * 128];
    for entry in fat.iter_mut().take(fat_count) {
        *entry = 0xFFFF_FFFD;
    }
    fat[dir as usize] = END;
    if mini {
        fat[mini_fat as usize] = END;
    }
    let n = sectors_of(data_len) as u32;
    for s in 0..n {
        fat[(data + s) as usize] = if s + 1 == n { END } else { data + s + 1 };
    }
    let mut h = vec![0u8; 512];
    h[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    let put = |h: &mut [u8], at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0x18..0x1A].copy_from_slice(&0x003Eu16.to_le_bytes());
    h[0x1A..0x1C].copy_from_slice(&3u16.to_le_bytes());
    h[0x1C..0x1E].copy_from_slice(&0xFFFEu16.to_le_bytes());
    h[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes());
    h[0x20..0x22].copy_from_slice(&6u16.to_le_bytes());
    put(&mut h, 0x2C, fat_count as u32);
    put(&mut h, 0x30, dir);
    put(&mut h, 0x38, 4096);
    put(&mut h, 0x3C, if mini { mini_fat } else { END });
    put(&mut h, 0x40, u32::from(mini));
    put(&mut h, 0x44, END);
    for i in 0..109 {
        put(&mut h, 0x4C + 4 * i, if i < fat_count { i as u32 } else { FREE });
    }
    let mut out = h;
    out.extend(fat.iter().flat_map(|v| v.to_le_bytes()));
    let entry = |name: &str, kind: u8, child: u32, start: u32, size: u32| {
        let mut e = vec![0u8; 128];
        let units: Vec<u8> = name.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
        e[..units.len()].copy_from_slice(&units);
        e[0x40..0x42].copy_from_slice(&(units.len() as u16).to_le_bytes());
        e[0x42] = kind;
        e[0x43] = 1;
        e[0x44..0x48].copy_from_slice(&FREE.to_le_bytes());
        e[0x48..0x4C].copy_from_slice(&FREE.to_le_bytes());
        e[0x4C..0x50].copy_from_slice(&child.to_le_bytes());
        e[0x74..0x78].copy_from_slice(&start.to_le_bytes());
        e[0x78..0x7C].copy_from_slice(&size.to_le_bytes());
        e
    };
    let (root_start, root_size, book_start) = if mini { (data, data_len as u32, 0) } else { (END, 0, data) };
    out.extend(entry("Root Entry", 5, 1, root_start, root_size));
    out.extend(entry("Workbook", 2, FREE, book_start, stream.len() as u32));
    out.extend(vec![0u8; 256]);
    if mini {
        let mut mf: Vec<u32> = vec![FREE; 128];
        let m = data_len as u32 / 64;
        for s in 0..m {
            mf[s as usize] = if s + 1 == m { END } else { s + 1 };
        }
        out.extend(mf.iter().flat_map(|v| v.to_le_bytes()));
    }
    out.extend_from_slice(stream);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(26), "AA");
    }
}
