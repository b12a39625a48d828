//! Excel 97–2003 `.xls`: a BIFF8 workbook stream inside a compound file (CFB,
//! [MS-CFB]), read as a stream ([MS-XLS]) into the same [`Form`] as `.xlsx`.
//!
//! Memory is bounded whatever the file claims: the compound file's sector table
//! (4 bytes per sector of the file) is the only thing read whole; the workbook
//! stream is followed sector by sector, each chain checked for loops and for
//! sectors outside the file; the string table (SST) goes into the same
//! [`Strings`] as an `.xlsx`'s shared strings (spilled to disk past 16 MiB, capped);
//! cells are sent on row by row, and formatted empty cells (`BLANK`, `MULBLANK`)
//! are counted, never stored. Older BIFF versions (Excel 5.0/95 and before) and
//! encrypted workbooks are refused with what to do instead.
//!
//! One room: the compound-file reader and the BIFF8 records it carries, read in one
//! streaming pass with the chains checked.

use super::form::{Flow, Form, GridRow};
use super::xlsx::{builtin_date_format, is_date_format, sheet_too_large, too_many_columns, Strings};
use super::xml::CellText;
use super::{Cancel, Limits};
use huijiao_protocol::date::Date;
use huijiao_protocol::report::Refusal;
use huijiao_protocol::validate::{RawValue, MAX_CELL_CHARS};
use std::fs::File;
use std::os::unix::fs::FileExt;

fn unreadable(why: &str) -> Refusal {
    Refusal::new(
        "unreadable_xls",
        &format!("无法读取 Excel 97–2003 (.xls) 文件（{why}），文件可能已损坏；可在 Excel 中另存为 .xlsx 后再提交"),
        &format!("cannot read the workbook: {why}"),
    )
}

type R<T> = Result<T, Refusal>;

fn u16_at(d: &[u8], i: usize) -> R<u16> {
    d.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or_else(|| unreadable("a record is shorter than its fields"))
}

fn u32_at(d: &[u8], i: usize) -> R<u32> {
    d.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(|| unreadable("a record is shorter than its fields"))
}

fn f64_at(d: &[u8], i: usize) -> R<f64> {
    let b = d.get(i..i + 8).ok_or_else(|| unreadable("a record is shorter than its fields"))?;
    Ok(f64::from_le_bytes(b.try_into().expect("eight bytes")))
}

/// A sector read as little-endian `u32`s (a sector table's entries).
fn u32s(sector: &[u8]) -> Vec<u32> {
    sector.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
const FREE: u32 = 0xFFFF_FFFF;

/// A compound file: its sector size and sector table.
struct Cfb<'f> {
    file: &'f File,
    /// The 512-byte header (where the directory and the mini stream's table start).
    header: [u8; 512],
    len: u64,
    shift: u32,
    fat: Vec<u32>,
    mini_cutoff: u64,
}

impl<'f> Cfb<'f> {
    fn open(file: &'f File) -> R<Cfb<'f>> {
        let len = file.metadata().map_err(|e| super::read_failed(&e))?.len();
        let mut h = [0u8; 512];
        file.read_exact_at(&mut h, 0).map_err(|_| unreadable("not an Excel 97–2003 workbook (too short)"))?;
        if h[..8] != [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1] {
            return Err(unreadable("not an Excel 97–2003 workbook (no compound file signature)"));
        }
        let shift = u32::from(u16_at(&h, 0x1E)?);
        if shift != 9 && shift != 12 {
            return Err(unreadable("bad sector size"));
        }
        if u32_at(&h, 0x38)? != 4096 {
            return Err(unreadable("bad mini stream cutoff"));
        }
        let mut cfb = Cfb { file, header: h, len, shift, fat: Vec::new(), mini_cutoff: 4096 };
        let sectors = cfb.sectors();
        // The sectors holding the sector table: 109 listed in the header, the rest in
        // a chain of DIFAT sectors.
        let fat_count = u64::from(u32_at(&h, 0x2C)?);
        if fat_count > sectors {
            return Err(unreadable("the sector table is larger than the file"));
        }
        let mut fat_sectors: Vec<u32> = (0..109).map(|i| u32_at(&h, 0x4C + 4 * i)).collect::<R<_>>()?;
        let per = (cfb.size() / 4) as usize;
        let (mut next, mut left) = (u32_at(&h, 0x44)?, u32_at(&h, 0x48)?);
        let mut buf = vec![0u8; cfb.size() as usize];
        while left > 0 && next != END_OF_CHAIN && next != FREE {
            if fat_sectors.len() as u64 > sectors + 109 {
                return Err(unreadable("the sector table's list loops"));
            }
            cfb.read_sector(next, &mut buf)?;
            let entries = u32s(&buf);
            fat_sectors.extend(&entries[..per - 1]);
            next = entries[per - 1];
            left -= 1;
        }
        let mut fat = Vec::with_capacity(fat_count as usize * per);
        for &s in fat_sectors.iter().take(fat_count as usize) {
            cfb.read_sector(s, &mut buf)?;
            fat.extend(u32s(&buf));
        }
        cfb.fat = fat;
        Ok(cfb)
    }

    fn size(&self) -> u64 {
        1 << self.shift
    }

    /// Sectors the file holds (an upper bound for any chain).
    fn sectors(&self) -> u64 {
        self.len.div_ceil(self.size())
    }

    fn read_sector(&self, s: u32, buf: &mut [u8]) -> R<()> {
        let at = (u64::from(s) + 1) << self.shift;
        if at + buf.len() as u64 > self.len + self.size() {
            return Err(unreadable("a sector lies outside the file"));
        }
        // The last sector may be cut short: what is missing reads as zeros.
        buf.fill(0);
        let want = buf.len().min(self.len.saturating_sub(at) as usize);
        self.file.read_exact_at(&mut buf[..want], at).map_err(|e| super::read_failed(&e))
    }

    /// The sectors of a chain, at most `max` of them (a loop or a chain running off
    /// the table is refused).
    fn chain(&self, start: u32, max: u64) -> R<Vec<u32>> {
        let mut out = Vec::new();
        let mut s = start;
        while s != END_OF_CHAIN {
            if out.len() as u64 >= max || out.len() > self.fat.len() {
                return Err(unreadable("a chain of sectors loops or is longer than its stream"));
            }
            out.push(s);
            s = *self.fat.get(s as usize).ok_or_else(|| unreadable("a chain of sectors leaves the sector table"))?;
        }
        Ok(out)
    }

    /// The directory's streams: (name, start sector, size), and the root's entry.
    fn directory(&self, start: u32) -> R<Vec<(String, u8, u32, u64)>> {
        let chain = self.chain(start, self.sectors())?;
        let mut buf = vec![0u8; self.size() as usize];
        let mut out = Vec::new();
        for s in chain {
            self.read_sector(s, &mut buf)?;
            for e in buf.chunks_exact(128) {
                let name_len = (u16_at(e, 0x40)? as usize).min(64);
                let units: Vec<u16> =
                    e[..name_len].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).take_while(|&u| u != 0).collect();
                let size = if self.shift == 9 {
                    u64::from(u32_at(e, 0x78)?)
                } else {
                    u64::from(u32_at(e, 0x78)?) | u64::from(u32_at(e, 0x7C)?) << 32
                };
                out.push((String::from_utf16_lossy(&units), e[0x42], u32_at(e, 0x74)?, size));
            }
        }
        Ok(out)
    }
}

/// A stream of the compound file, read in order.
struct Stream<'f> {
    cfb: Option<&'f Cfb<'f>>,
    sectors: Vec<u32>,
    /// A small stream (in the mini stream) is held whole.
    small: Vec<u8>,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_at: u64,
}

impl<'f> Stream<'f> {
    fn open(cfb: &'f Cfb<'f>, root: (u32, u64), start: u32, size: u64) -> R<Stream<'f>> {
        if size > cfb.len {
            return Err(unreadable("the workbook stream is larger than the file"));
        }
        let ss = cfb.size();
        if size < cfb.mini_cutoff {
            // In the mini stream: 64-byte sectors inside the root's stream.
            let mini_fat_chain = cfb.chain(u32_at(&cfb.header, 0x3C)?, cfb.sectors())?;
            let mut buf = vec![0u8; ss as usize];
            let mut mini_fat = Vec::new();
            for s in mini_fat_chain {
                cfb.read_sector(s, &mut buf)?;
                mini_fat.extend(u32s(&buf));
            }
            let container = cfb.chain(root.0, root.1.div_ceil(ss) + 1)?;
            let mut small = Vec::with_capacity(size as usize);
            let mut s = start;
            let mut steps = 0;
            while (small.len() as u64) < size {
                if s == END_OF_CHAIN || steps > mini_fat.len() {
                    return Err(unreadable("the workbook stream ends early"));
                }
                steps += 1;
                let at = u64::from(s) * 64;
                let sector = *container.get((at / ss) as usize).ok_or_else(|| unreadable("a mini sector lies outside its stream"))?;
                cfb.read_sector(sector, &mut buf)?;
                let from = (at % ss) as usize;
                small.extend_from_slice(&buf[from..from + 64]);
                s = *mini_fat.get(s as usize).ok_or_else(|| unreadable("a chain of mini sectors leaves its table"))?;
            }
            small.truncate(size as usize);
            return Ok(Stream { cfb: None, sectors: Vec::new(), small, size, pos: 0, buf: Vec::new(), buf_at: u64::MAX });
        }
        let sectors = cfb.chain(start, size.div_ceil(ss) + 1)?;
        if (sectors.len() as u64) * ss < size {
            return Err(unreadable("the workbook stream ends early"));
        }
        Ok(Stream { cfb: Some(cfb), sectors, small: Vec::new(), size, pos: 0, buf: vec![0u8; ss as usize], buf_at: u64::MAX })
    }

    /// Fills `out` from the current position; `false` at the end of the stream.
    fn read(&mut self, out: &mut [u8]) -> R<bool> {
        if self.pos + out.len() as u64 > self.size {
            return Ok(false);
        }
        let Some(cfb) = self.cfb else {
            out.copy_from_slice(&self.small[self.pos as usize..self.pos as usize + out.len()]);
            self.pos += out.len() as u64;
            return Ok(true);
        };
        let ss = cfb.size();
        let mut done = 0;
        while done < out.len() {
            let sector_at = self.pos / ss * ss;
            if self.buf_at != sector_at {
                cfb.read_sector(self.sectors[(self.pos / ss) as usize], &mut self.buf)?;
                self.buf_at = sector_at;
            }
            let from = (self.pos - sector_at) as usize;
            let n = (ss as usize - from).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[from..from + n]);
            done += n;
            self.pos += n as u64;
        }
        Ok(true)
    }
}

/// BIFF records, one after another.
struct Biff<'f> {
    stream: Stream<'f>,
    /// The record read last: its type, its offset in the stream and its body.
    kind: u16,
    at: u64,
    data: Vec<u8>,
    /// A record read ahead (after the end of a string table).
    peeked: bool,
}

const BOF: u16 = 0x0809;
const EOF: u16 = 0x000A;
const CONTINUE: u16 = 0x003C;

impl Biff<'_> {
    /// The next record; `false` at the end of the stream.
    fn next(&mut self) -> R<bool> {
        if self.peeked {
            self.peeked = false;
            return Ok(true);
        }
        let mut head = [0u8; 4];
        self.at = self.stream.pos;
        if !self.stream.read(&mut head)? {
            return Ok(false);
        }
        self.kind = u16::from_le_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        self.data.resize(len, 0);
        if !self.stream.read(&mut self.data)? {
            return Err(unreadable("the last record is cut short"));
        }
        Ok(true)
    }
}

/// Reading across `CONTINUE` records: the string table and long strings.
struct Cont<'a, 'f> {
    biff: &'a mut Biff<'f>,
    pos: usize,
}

impl Cont<'_, '_> {
    /// Moves to the next `CONTINUE` record when the current one is used up.
    fn more(&mut self) -> R<()> {
        while self.pos >= self.biff.data.len() {
            if !self.biff.next()? || self.biff.kind != CONTINUE {
                return Err(unreadable("a string runs past its record"));
            }
            self.pos = 0;
        }
        Ok(())
    }

    fn skip(&mut self, mut n: usize) -> R<()> {
        while n > 0 {
            self.more()?;
            let take = n.min(self.biff.data.len() - self.pos);
            self.pos += take;
            n -= take;
        }
        Ok(())
    }

    fn u8(&mut self) -> R<u8> {
        self.more()?;
        self.pos += 1;
        Ok(self.biff.data[self.pos - 1])
    }

    fn u16(&mut self) -> R<u16> {
        Ok(u16::from(self.u8()?) | u16::from(self.u8()?) << 8)
    }

    fn u32(&mut self) -> R<u32> {
        Ok(u32::from(self.u16()?) | u32::from(self.u16()?) << 16)
    }

    /// An `XLUnicodeRichExtendedString` (`rich`) or `XLUnicodeString`: its
    /// characters may continue in the next record, which then begins with a new
    /// flags byte.
    fn string(&mut self, rich: bool, out: &mut CellText) -> R<()> {
        out.clear();
        let cch = usize::from(self.u16()?);
        let flags = self.u8()?;
        let runs = if rich && flags & 0x08 != 0 { usize::from(self.u16()?) } else { 0 };
        let ext = if rich && flags & 0x04 != 0 { self.u32()? as usize } else { 0 };
        let mut wide = flags & 0x01 != 0;
        let mut left = cch;
        let mut units: Vec<u16> = Vec::new();
        while left > 0 {
            if self.pos >= self.biff.data.len() {
                self.more()?;
                wide = self.u8()? & 0x01 != 0;
                continue;
            }
            let avail = self.biff.data.len() - self.pos;
            let d = &self.biff.data[self.pos..];
            let n = if wide { left.min(avail / 2) } else { left.min(avail) };
            if n == 0 {
                // Half a character at the end of a record.
                return Err(unreadable("a string is cut in the middle of a character"));
            }
            units.clear();
            if wide {
                units.extend(d[..2 * n].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
                self.pos += 2 * n;
            } else {
                units.extend(d[..n].iter().map(|&b| u16::from(b)));
                self.pos += n;
            }
            out.push(&String::from_utf16_lossy(&units));
            left -= n;
        }
        self.skip(4 * runs + ext)
    }
}

/// Whether a number shown with each cell format (XF) is a date.
#[derive(Default)]
struct Globals {
    date1904: bool,
    formats: std::collections::HashMap<u16, bool>,
    xf_formats: Vec<u16>,
    /// Worksheets: name and the offset of their `BOF`.
    /// (name, offset of its BOF, hidden) of each worksheet.
    sheets: Vec<(String, u64, bool)>,
}

impl Globals {
    fn is_date(&self, xf: u16) -> bool {
        self.xf_formats.get(usize::from(xf)).is_some_and(|&f| self.formats.get(&f).copied().unwrap_or(builtin_date_format(u32::from(f))))
    }

    fn number(&self, xf: u16, x: f64) -> RawValue {
        if !x.is_finite() {
            return RawValue::Invalid("number");
        }
        if self.is_date(xf) {
            let serial = if self.date1904 { x + 1462.0 } else { x };
            return Date::from_excel_serial(serial).map_or(RawValue::Invalid("date"), RawValue::Date);
        }
        RawValue::Float(x)
    }
}

fn rk(v: u32) -> f64 {
    let x = if v & 0x02 != 0 { f64::from((v as i32) >> 2) } else { f64::from_bits(u64::from(v & 0xFFFF_FFFC) << 32) };
    if v & 0x01 != 0 {
        x / 100.0
    } else {
        x
    }
}

fn text(t: &CellText) -> RawValue {
    if t.chars > MAX_CELL_CHARS {
        RawValue::TooLong(t.chars)
    } else if t.text.is_empty() {
        RawValue::Empty
    } else {
        RawValue::Text(t.text.clone())
    }
}

/// Reads the workbook's globals: formats, sheets and the string table.
fn globals(biff: &mut Biff<'_>, limits: &Limits, cancel: &Cancel, strings: &mut Strings) -> R<Globals> {
    if !biff.next()? || biff.kind != BOF {
        if matches!(biff.kind, 0x0009 | 0x0209 | 0x0409) {
            return Err(old_version());
        }
        return Err(unreadable("the workbook stream does not begin with BOF"));
    }
    match u16_at(&biff.data, 0)? {
        0x0600 => {}
        0x0500 | 0x0400 | 0x0300 | 0x0200 => return Err(old_version()),
        v => return Err(unreadable(&format!("unknown BIFF version {v:#06x}"))),
    }
    let mut g = Globals::default();
    let mut cur = CellText::default();
    while biff.next()? {
        match biff.kind {
            EOF => return Ok(g),
            0x002F => {
                return Err(Refusal::new(
                    "unreadable_xls",
                    "该 .xls 文件设有打开密码（已加密），无法读取；请取消密码后再提交",
                    "the workbook is encrypted (password to open); remove the password and submit it again",
                ))
            }
            0x0022 => g.date1904 = u16_at(&biff.data, 0)? == 1,
            0x041E => {
                let id = u16_at(&biff.data, 0)?;
                let mut c = Cont { biff, pos: 2 };
                c.string(false, &mut cur)?;
                g.formats.insert(id, is_date_format(&cur.text));
            }
            0x00E0 => {
                if g.xf_formats.len() >= 65_536 {
                    return Err(unreadable("too many cell formats"));
                }
                g.xf_formats.push(u16_at(&biff.data, 2)?);
            }
            0x0085 => {
                let at = u64::from(u32_at(&biff.data, 0)?);
                let kind = *biff.data.get(5).ok_or_else(|| unreadable("a sheet record is short"))?;
                let cch = usize::from(*biff.data.get(6).ok_or_else(|| unreadable("a sheet record is short"))?);
                let wide = biff.data.get(7).is_some_and(|f| f & 1 != 0);
                let raw = biff.data.get(8..).unwrap_or_default();
                let name = if wide {
                    let units: Vec<u16> = raw.chunks_exact(2).take(cch).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
                    String::from_utf16_lossy(&units)
                } else {
                    raw.iter().take(cch).map(|&b| char::from(b)).collect()
                };
                // hsState: 0 visible, 1 hidden, 2 very hidden.
                let hidden = biff.data.get(4).is_some_and(|s| s & 0x03 != 0);
                if kind == 0 {
                    g.sheets.push((name, at, hidden));
                }
            }
            0x00FC => {
                let unique = u32_at(&biff.data, 4)? as usize;
                let mut c = Cont { biff, pos: 8 };
                for i in 0..unique {
                    if i % 4096 == 0 && cancel.is_cancelled() {
                        return Err(super::cancelled());
                    }
                    if c.pos >= c.biff.data.len() {
                        // A table whose count overstates it ends at its last record.
                        if !c.biff.next()? {
                            break;
                        }
                        if c.biff.kind != CONTINUE {
                            c.biff.peeked = true;
                            break;
                        }
                        c.pos = 0;
                    }
                    c.string(true, &mut cur)?;
                    strings.add(&cur, limits)?;
                }
            }
            _ => {}
        }
    }
    Err(unreadable("the workbook's globals have no end"))
}

fn old_version() -> Refusal {
    Refusal::new(
        "unreadable_xls",
        "这是 Excel 5.0/95 或更早版本的工作簿，无法读取；请在 Excel 中另存为 .xlsx 后再提交",
        "an Excel 5.0/95 or older workbook is not read; save it as .xlsx and submit it again",
    )
}

/// The rows of one worksheet, from after its `BOF` to its `EOF`.
struct SheetReader<'a> {
    g: &'a Globals,
    strings: &'a Strings,
    limits: &'a Limits,
    row: GridRow,
    cells: u64,
}

impl SheetReader<'_> {
    /// Adds a cell; a cell of a later row first sends the row before on.
    fn cell(&mut self, form: &mut Form<'_>, row: u16, col: u16, value: RawValue) -> R<Flow> {
        self.count(1)?;
        if u32::from(col) >= self.limits.max_columns {
            return Err(too_many_columns(self.limits.max_columns));
        }
        let r = u64::from(row) + 1;
        let mut flow = Flow::Continue;
        if r != self.row.row {
            if r < self.row.row {
                return Err(unreadable(&format!(
                    "the cells of row {r} come after those of row {}; open and save the file in Excel",
                    self.row.row
                )));
            }
            flow = self.flush(form);
            self.row.row = r;
        }
        if !value.is_blank() {
            self.row.cells.push((u32::from(col), value));
        }
        Ok(flow)
    }

    fn count(&mut self, n: u64) -> R<()> {
        self.cells += n;
        if self.cells > self.limits.max_cells {
            return Err(sheet_too_large(&format!("超过 {} 个单元格 / more than {} cells", self.limits.max_cells, self.limits.max_cells)));
        }
        Ok(())
    }

    fn flush(&mut self, form: &mut Form<'_>) -> Flow {
        let mut done = std::mem::take(&mut self.row);
        self.row.row = done.row;
        if done.cells.is_empty() {
            return Flow::Continue;
        }
        done.cells.sort_by_key(|(c, _)| *c);
        form.push(done)
    }
}

/// Reads a worksheet into the form (or skips a substream that is not one).
///
/// One piece: one state machine over a worksheet's BIFF records; its records share the row
/// being built and the caps.
fn sheet(biff: &mut Biff<'_>, g: &Globals, strings: &Strings, limits: &Limits, cancel: &Cancel, form: &mut Form<'_>) -> R<Flow> {
    let mut s = SheetReader { g, strings, limits, row: GridRow::default(), cells: 0 };
    // A formula whose text result follows in a STRING record.
    let mut pending: Option<(u16, u16)> = None;
    let mut depth = 0u32;
    let mut cur = CellText::default();
    let mut records = 0u64;
    let mut flow = Flow::Continue;
    while biff.next()? {
        records += 1;
        if records % 65_536 == 0 && cancel.is_cancelled() {
            return Err(super::cancelled());
        }
        let d = &biff.data;
        let kind = biff.kind;
        // Charts embedded in the sheet are substreams of their own.
        if depth > 0 || kind == BOF {
            match kind {
                BOF => depth += 1,
                EOF => depth -= 1,
                _ => {}
            }
            if depth > 64 {
                return Err(unreadable("substreams nest too deep"));
            }
            continue;
        }
        if flow != Flow::Continue {
            if kind == EOF {
                return Ok(flow);
            }
            continue;
        }
        let step = match kind {
            EOF => {
                flow = s.flush(form);
                return Ok(flow);
            }
            // LABELSST, NUMBER, RK, LABEL, BOOLERR
            0x00FD => {
                let v = s.strings.get(u32_at(d, 6)? as usize);
                s.cell(form, u16_at(d, 0)?, u16_at(d, 2)?, v)?
            }
            0x0203 => {
                let v = s.g.number(u16_at(d, 4)?, f64_at(d, 6)?);
                s.cell(form, u16_at(d, 0)?, u16_at(d, 2)?, v)?
            }
            0x027E => {
                let v = s.g.number(u16_at(d, 4)?, rk(u32_at(d, 6)?));
                s.cell(form, u16_at(d, 0)?, u16_at(d, 2)?, v)?
            }
            0x00BD => {
                let (row, first) = (u16_at(d, 0)?, u16_at(d, 2)?);
                let n = d.len().saturating_sub(6) / 6;
                let mut f = Flow::Continue;
                for i in 0..n {
                    let v = s.g.number(u16_at(d, 4 + 6 * i)?, rk(u32_at(d, 6 + 6 * i)?));
                    let col = first.checked_add(i as u16).ok_or_else(|| unreadable("a row of numbers runs past the last column"))?;
                    let step = s.cell(form, row, col, v)?;
                    if step != Flow::Continue {
                        f = step;
                    }
                }
                f
            }
            // LABEL, and RSTRING (the same with formatting runs after the text).
            0x0204 | 0x00D6 => {
                let (row, col) = (u16_at(d, 0)?, u16_at(d, 2)?);
                Cont { biff, pos: 6 }.string(false, &mut cur)?;
                s.cell(form, row, col, text(&cur))?
            }
            0x0205 => {
                let v = match (d.get(6), d.get(7)) {
                    (Some(&b), Some(0)) => RawValue::Bool(b != 0),
                    (Some(_), Some(_)) => RawValue::Invalid("error cell"),
                    _ => return Err(unreadable("a record is shorter than its fields")),
                };
                s.cell(form, u16_at(d, 0)?, u16_at(d, 2)?, v)?
            }
            // FORMULA: its cached result.
            0x0006 => {
                let (row, col, xf) = (u16_at(d, 0)?, u16_at(d, 2)?, u16_at(d, 4)?);
                let v = if u16_at(d, 12)? == 0xFFFF {
                    match d[6] {
                        0 => {
                            pending = Some((row, col));
                            continue;
                        }
                        1 => RawValue::Bool(d[8] != 0),
                        2 => RawValue::Invalid("error cell"),
                        _ => RawValue::Empty,
                    }
                } else {
                    s.g.number(xf, f64_at(d, 6)?)
                };
                s.cell(form, row, col, v)?
            }
            0x0207 => match pending.take() {
                Some((row, col)) => {
                    Cont { biff, pos: 0 }.string(false, &mut cur)?;
                    s.cell(form, row, col, text(&cur))?
                }
                None => Flow::Continue,
            },
            // BLANK, MULBLANK: formatting only.
            0x0201 => {
                s.count(1)?;
                Flow::Continue
            }
            0x00BE => {
                s.count((d.len().saturating_sub(6) / 2) as u64)?;
                Flow::Continue
            }
            _ => Flow::Continue,
        };
        if !matches!(kind, 0x0006 | 0x0207 | CONTINUE | 0x04BC | 0x0221) {
            // A text result comes straight after its formula (and its shared or array formula).
            pending = None;
        }
        flow = step;
    }
    Err(unreadable("a sheet has no end"))
}

/// The workbook stream of a compound file, as BIFF records: `Workbook` in Excel 97 and
/// later; `Book` in Excel 5.0/95 — and in BIFF8 files some tools write (the BOF
/// record's version decides).
fn workbook<'f>(cfb: &'f Cfb<'f>) -> R<Biff<'f>> {
    let entries = cfb.directory(u32_at(&cfb.header, 0x30)?)?;
    let root = entries.iter().find(|e| e.1 == 5).map(|e| (e.2, e.3)).ok_or_else(|| unreadable("the compound file has no root"))?;
    let named = |n: &str| entries.iter().find(|e| e.1 == 2 && e.0.eq_ignore_ascii_case(n));
    let Some(book) = named("Workbook").or_else(|| named("Book")) else {
        return Err(unreadable("the compound file holds no workbook"));
    };
    let stream = Stream::open(cfb, root, book.2, book.3)?;
    Ok(Biff { stream, kind: 0, at: 0, data: Vec::new(), peeked: false })
}

/// Skips the rest of a substream (a sheet) whose BOF was just read, to its EOF.
fn skip_substream(biff: &mut Biff<'_>) -> R<()> {
    let mut depth = 1u32;
    while depth > 0 && biff.next()? {
        match biff.kind {
            BOF => depth += 1,
            EOF => depth -= 1,
            _ => {}
        }
    }
    Ok(())
}

/// Calls `each` with the body of every record of the workbook stream, in order, until
/// it returns false (the whole-file secrecy screen reads them all).
pub(crate) fn each_record_body(file: &File, limits: &Limits, cancel: &Cancel, each: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), Refusal> {
    let _ = limits;
    let cfb = Cfb::open(file)?;
    let mut biff = workbook(&cfb)?;
    while biff.next()? {
        if cancel.is_cancelled() {
            return Err(super::cancelled());
        }
        if !each(&biff.data) {
            break;
        }
    }
    Ok(())
}

pub(crate) fn read(file: File, limits: &Limits, cancel: &Cancel, form: &mut Form<'_>) -> Result<Vec<String>, Refusal> {
    let cfb = Cfb::open(&file)?;
    let mut biff = workbook(&cfb)?;
    let mut strings = Strings::new(limits);
    let g = globals(&mut biff, limits, cancel, &mut strings)?;
    let mut seen = 0usize;
    let mut used = vec![false; g.sheets.len()];
    while biff.next()? {
        if cancel.is_cancelled() {
            return Err(super::cancelled());
        }
        if biff.kind != BOF {
            continue;
        }
        let is_sheet = u16_at(&biff.data, 2)? == 0x0010;
        let at = biff.at;
        // Found by its offset; a writer that got the offsets wrong still lists its
        // worksheets in stream order.
        let i = g.sheets.iter().position(|(_, o, _)| *o == at).or_else(|| (0..g.sheets.len()).find(|k| !used[*k]));
        let Some(i) = i.filter(|_| is_sheet) else {
            // A chart or macro sheet: skipped to its end.
            skip_substream(&mut biff)?;
            continue;
        };
        seen += 1;
        used[i] = true;
        if g.sheets[i].2 {
            // A hidden sheet: skipped unread, to its end.
            form.skip_hidden_sheet(&g.sheets[i].0);
            skip_substream(&mut biff)?;
            continue;
        }
        form.start_sheet(&g.sheets[i].0);
        match sheet(&mut biff, &g, &strings, limits, cancel, form)? {
            Flow::Stop => return Ok(Vec::new()),
            Flow::NextSheet => continue,
            Flow::Continue => {
                form.end_sheet();
                if form.has_header() {
                    return Ok(g.sheets[i + 1..].iter().map(|(n, _, _)| n.clone()).collect());
                }
            }
        }
        if seen > g.sheets.len() {
            break;
        }
    }
    Ok(Vec::new())
}
