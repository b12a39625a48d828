//! What the zipped-XML readers (XLSX, ODS) share: positional reads of the file, a zip
//! archive opened only after its entry count is checked, and a guard on every
//! inflated part that enforces the caps of [`Limits`] before the XML parser buffers
//! anything.

use super::{Cancel, Limits};
use huijiao_protocol::report::Refusal;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::Arc;

/// A file read at positions, so a zip archive over it can be cloned freely.
#[derive(Clone)]
pub struct PosFile {
    file: Arc<File>,
    pos: u64,
    len: u64,
}

impl PosFile {
    pub fn new(file: File) -> io::Result<PosFile> {
        let len = file.metadata()?.len();
        Ok(PosFile { file: Arc::new(file), pos: 0, len })
    }
}

impl Read for PosFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PosFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let next = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = next.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// The most entries a workbook's zip may list (a real one has a few dozen).
const MAX_ENTRIES: u64 = 10_000;

/// Opens the zip archive of a workbook, refusing one that lists absurdly many
/// entries before the zip reader allocates for them.
pub fn open_zip(file: File, what: &str) -> Result<zip::ZipArchive<PosFile>, Refusal> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Refusal::new(
            &format!("unreadable_{what}"),
            &format!("无法读取 .{what} 文件，文件可能已损坏或不是 .{what} 格式"),
            &format!("cannot read the workbook: {e}"),
        )
    };
    let f = PosFile::new(file).map_err(|e| unreadable(&e))?;
    if let Some(n) = entry_count(&f) {
        if n > MAX_ENTRIES {
            return Err(unreadable(&format!("the zip lists {n} entries")));
        }
    }
    zip::ZipArchive::new(f).map_err(|e| unreadable(&e))
}

/// The entry count from the end-of-central-directory record, if one is found.
fn entry_count(f: &PosFile) -> Option<u64> {
    let tail_len = f.len.min(65_557);
    let mut tail = vec![0u8; tail_len as usize];
    f.file.read_exact_at(&mut tail, f.len - tail_len).ok()?;
    let at = tail.windows(4).rposition(|w| w == [0x50, 0x4B, 0x05, 0x06])?;
    let n = u16::from_le_bytes([*tail.get(at + 10)?, *tail.get(at + 11)?]);
    if n != 0xFFFF {
        return Some(u64::from(n));
    }
    // Zip64: the locator sits just before the record and points at the real count.
    let loc = at.checked_sub(20)?;
    if tail.get(loc..loc + 4)? != [0x50, 0x4B, 0x06, 0x07] {
        return Some(u64::MAX);
    }
    let off = u64::from_le_bytes(tail.get(loc + 8..loc + 16)?.try_into().ok()?);
    let mut rec = [0u8; 40];
    f.file.read_exact_at(&mut rec, off).ok()?;
    Some(u64::from_le_bytes(rec[32..40].try_into().ok()?))
}

/// Where a guard records why it stopped a part.
pub type Tripped = Rc<RefCell<Option<Refusal>>>;

/// Counts the inflated bytes of one part and stops it past the caps: total size,
/// compression ratio, and the length of a single tag-plus-text (no XML a spreadsheet
/// program writes has a megabyte between two `<`).
pub struct Guard<R> {
    inner: R,
    part: String,
    read: u64,
    compressed: u64,
    since_lt: usize,
    max_inflated: u64,
    max_ratio: u64,
    ratio_free: u64,
    max_token: usize,
    cancel: Cancel,
    next_check: u64,
    tripped: Tripped,
}

impl<R: Read> Guard<R> {
    pub fn new(inner: R, part: &str, compressed: u64, limits: &Limits, cancel: &Cancel, tripped: &Tripped) -> Guard<R> {
        Guard {
            inner,
            part: part.to_string(),
            read: 0,
            compressed,
            since_lt: 0,
            max_inflated: limits.max_inflated,
            max_ratio: limits.max_ratio,
            ratio_free: limits.ratio_free,
            max_token: limits.max_xml_token,
            cancel: cancel.clone(),
            next_check: 1 << 20,
            tripped: tripped.clone(),
        }
    }

    fn trip(&self, r: Refusal) -> io::Error {
        *self.tripped.borrow_mut() = Some(r);
        io::Error::other("stopped by a cap")
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let chunk = &buf[..n];
        match chunk.iter().rposition(|&b| b == b'<') {
            Some(p) => self.since_lt = n - p - 1,
            None => self.since_lt += n,
        }
        if self.since_lt > self.max_token {
            return Err(self.trip(Refusal::new(
                "cell_too_large",
                &format!("{} 中有一段超过 {} KiB 的内容（单元格或标记），不是电子表格程序能写出的文件", self.part, self.max_token / 1024),
                &format!(
                    "{} holds a run of more than {} KiB without markup; no spreadsheet program writes that",
                    self.part,
                    self.max_token / 1024
                ),
            )));
        }
        if self.read > self.max_inflated {
            let mib = self.max_inflated / (1024 * 1024);
            return Err(self.trip(Refusal::new(
                "inflated_too_large",
                &format!("{} 解压后超过 {mib} MiB，请拆分后再提交", self.part),
                &format!("{} inflates to more than {mib} MiB; split the file", self.part),
            )));
        }
        if self.read > self.ratio_free && self.read > self.compressed.saturating_mul(self.max_ratio) {
            return Err(self.trip(Refusal::new(
                "compression_ratio",
                &format!("{} 的压缩比超过 {}:1，疑似压缩炸弹，未读取", self.part, self.max_ratio),
                &format!("{} inflates more than {} times its size: a zip bomb, not read", self.part, self.max_ratio),
            )));
        }
        if self.read >= self.next_check {
            self.next_check = self.read + (1 << 20);
            if self.cancel.is_cancelled() {
                return Err(self.trip(super::cancelled()));
            }
        }
        Ok(n)
    }
}

/// An XML reader over a guarded part.
pub type Xml<R> = quick_xml::Reader<BufReader<Guard<R>>>;

pub fn xml_reader<R: Read>(guard: Guard<R>) -> Xml<R> {
    let mut r = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, guard));
    r.config_mut().trim_text(false);
    r
}

/// The refusal for an XML error: the guard's reason if it tripped, else malformed.
pub fn xml_error(e: &dyn std::fmt::Display, part: &str, what: &str, tripped: &Tripped) -> Refusal {
    if let Some(r) = tripped.borrow_mut().take() {
        return r;
    }
    Refusal::new(
        &format!("unreadable_{what}"),
        &format!("无法读取 .{what} 文件中的 {part}，文件可能已损坏"),
        &format!("cannot read {part} of the workbook: {e}"),
    )
}

/// Text of a cell or string item as it is read, with its length counted and the
/// text dropped past the cell cap.
#[derive(Default)]
pub struct CellText {
    pub text: String,
    pub chars: usize,
}

impl CellText {
    pub fn push(&mut self, s: &str) {
        let max = huijiao_protocol::validate::MAX_CELL_CHARS;
        let n = s.chars().count();
        if self.chars + n <= max {
            self.text.push_str(s);
        } else {
            self.text.clear();
        }
        self.chars += n;
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.chars = 0;
    }

    /// The cell's value: text, or `TooLong` past the cap.
    pub fn value(&self) -> huijiao_protocol::validate::RawValue {
        use huijiao_protocol::validate::{RawValue, MAX_CELL_CHARS};
        if self.chars > MAX_CELL_CHARS {
            RawValue::TooLong(self.chars)
        } else if self.text.is_empty() {
            RawValue::Empty
        } else {
            RawValue::Text(self.text.clone())
        }
    }
}

/// The text an entity or character reference stands for.
pub fn entity(e: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if e.is_char_ref() {
        return e.resolve_char_ref().ok().flatten().map(String::from);
    }
    let name = e.decode().ok()?;
    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
}
