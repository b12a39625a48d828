//! Opening a dropped file safely, and the first pass over its bytes.
//!
//! Only a regular file with a single link is ever read: it is opened with
//! `O_NOFOLLOW | O_NONBLOCK` (a symlink fails, a FIFO does not block) and the opened
//! descriptor, not the path, is checked. The first pass streams the bytes once,
//! hashing them and, for text formats, deciding the encoding, so nothing is held in
//! memory however large the file is.

use super::Cancel;
use huijiao_protocol::record::hex;
use huijiao_protocol::report::Refusal;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// An opened regular file and what it looked like when opened.
#[derive(Debug)]
pub struct Source {
    pub file: File,
    pub stamp: Stamp,
}

/// Size, modification time and identity: if any changes while the file is read, it
/// was still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
}

impl Stamp {
    pub fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// Why a path cannot be read as a submission.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A symlink, FIFO, socket, device, directory or hard link: never read.
    #[error("not a regular file: {0}")]
    NotRegular(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Opens `path` for reading if, and only if, it is a regular file with one link.
pub fn open(path: &Path) -> Result<Source, OpenError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        // ELOOP: the last component is a symlink (O_NOFOLLOW).
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(OpenError::NotRegular("symbolic link")),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(OpenError::NotRegular("socket or FIFO")),
        Err(e) => return Err(e.into()),
    };
    let m = file.metadata()?;
    let ft = m.file_type();
    if !ft.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "directory"
        } else if ft.is_fifo() {
            "FIFO"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_block_device() || ft.is_char_device() {
            "device"
        } else {
            "special file"
        };
        return Err(OpenError::NotRegular(kind));
    }
    if m.nlink() != 1 {
        // A hard link could make a file the node can read (its key) appear in the inbox.
        return Err(OpenError::NotRegular("hard link"));
    }
    Ok(Source { file, stamp: Stamp::of(&m) })
}

/// How a text file is encoded, as the first pass found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// Valid UTF-8; `bom` when it starts with a UTF-8 byte order mark.
    Utf8 { bom: bool },
    /// Not UTF-8: GBK, or GB18030 when four-byte sequences occur (`four_byte`).
    Gb { four_byte: bool },
}

impl TextEncoding {
    /// The report's label.
    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf8 { .. } => "utf-8",
            TextEncoding::Gb { four_byte: false } => "gbk",
            TextEncoding::Gb { four_byte: true } => "gb18030",
        }
    }
}

/// What the first pass learnt.
#[derive(Debug, Clone)]
pub struct Sniffed {
    pub sha256: String,
    /// For text formats: the encoding, or why the text cannot be read at all.
    pub text: Option<Result<TextEncoding, Refusal>>,
}

/// Streams the file once: SHA-256 of every byte and, for a text format, the
/// encoding. Returns None when cancelled.
pub fn sniff(file: &File, text: bool, cancel: &Cancel) -> std::io::Result<Option<Sniffed>> {
    let mut f = file;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut t = TextStats::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        if text {
            t.feed(&buf[..n]);
        }
    }
    Ok(Some(Sniffed { sha256: hex(&h.finalize()), text: text.then(|| t.verdict()) }))
}

/// Running statistics of a text file's bytes.
#[derive(Default)]
struct TextStats {
    /// Bytes seen so far.
    offset: u64,
    head: Vec<u8>,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last chunk.
    carry: Vec<u8>,
    /// Lines before the first invalid UTF-8 byte, and its offset.
    first_bad: Option<(u64, u64)>,
    lines: u64,
    bad: u64,
    /// Lead bytes of valid multi-byte UTF-8 sequences.
    multibyte: u64,
    controls: u64,
    nul: bool,
    /// GB18030: a lead byte is pending; a four-byte sequence was seen.
    gb_lead: bool,
    gb_four: bool,
}

impl TextStats {
    fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < 4 {
            let take = (4 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        for &b in chunk {
            if b < 0x20 || b == 0x7F {
                if b == 0 {
                    self.nul = true;
                } else if !matches!(b, b'\t' | b'\n' | b'\r') {
                    self.controls += 1;
                }
            }
            // GB18030 four-byte sequences: a lead byte followed by an ASCII digit.
            if self.gb_lead {
                self.gb_four |= b.is_ascii_digit();
                self.gb_lead = false;
            } else if b >= 0x81 && b != 0xFF {
                self.gb_lead = true;
            }
        }
        // UTF-8 validity across chunk boundaries.
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let base = self.offset - (data.len() - chunk.len()) as u64;
        let mut rest: &[u8] = &data;
        let mut at = base;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.count_valid(s.as_bytes());
                    break;
                }
                Err(e) => {
                    let good = &rest[..e.valid_up_to()];
                    self.count_valid(good);
                    match e.error_len() {
                        Some(n) => {
                            if self.first_bad.is_none() {
                                self.first_bad = Some((self.lines + 1, at + e.valid_up_to() as u64));
                            }
                            self.bad += 1;
                            at += (e.valid_up_to() + n) as u64;
                            rest = &rest[e.valid_up_to() + n..];
                        }
                        None => {
                            // Incomplete at the end: keep it for the next chunk.
                            self.carry = rest[e.valid_up_to()..].to_vec();
                            break;
                        }
                    }
                }
            }
        }
        self.offset += chunk.len() as u64;
    }

    fn count_valid(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.lines += 1;
            } else if b >= 0xC0 {
                self.multibyte += 1;
            }
        }
    }

    fn verdict(mut self) -> Result<TextEncoding, Refusal> {
        if !self.carry.is_empty() {
            // The file ends inside a UTF-8 sequence.
            if self.first_bad.is_none() {
                self.first_bad = Some((self.lines + 1, self.offset - self.carry.len() as u64));
            }
            self.bad += 1;
        }
        let h = &self.head;
        if h.starts_with(&[0xFF, 0xFE, 0, 0]) || h.starts_with(&[0, 0, 0xFE, 0xFF]) {
            return Err(Refusal::new(
                "unsupported_encoding",
                "文件是 UTF-32 编码，请另存为“CSV UTF-8（逗号分隔）”",
                "file is UTF-32; save it as CSV UTF-8 instead",
            ));
        }
        if h.starts_with(&[0xFF, 0xFE]) || h.starts_with(&[0xFE, 0xFF]) {
            return Err(Refusal::new(
                "unsupported_encoding",
                "文件是 UTF-16 编码（Excel 的“Unicode 文本”），请另存为“CSV UTF-8（逗号分隔）”",
                "file is UTF-16; save it as CSV UTF-8 instead",
            ));
        }
        let bom = h.starts_with(&[0xEF, 0xBB, 0xBF]);
        if self.nul || self.controls * 1000 > self.offset.max(1) {
            return Err(Refusal::new("binary_file", "文件含有二进制内容，不是文本表格", "file holds binary data, not text"));
        }
        let Some((line, at)) = self.first_bad else { return Ok(TextEncoding::Utf8 { bom }) };
        // Mostly valid UTF-8 with a few stray bytes is a damaged UTF-8 file, not GBK:
        // GBK text is invalid UTF-8 at almost every Chinese character.
        if bom || self.multibyte >= 20 * self.bad {
            return Err(Refusal::new(
                "undecodable",
                &format!("文件是 UTF-8 编码，但第 {line} 行（第 {} 个字节处）有无效字节，请检查该处后重新保存", at + 1),
                &format!("the file is UTF-8 but has an invalid byte on line {line} (byte {}); fix it and save again", at + 1),
            ));
        }
        Ok(TextEncoding::Gb { four_byte: self.gb_four })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(bytes: &[u8], chunk: usize) -> Result<TextEncoding, Refusal> {
        let mut t = TextStats::default();
        for c in bytes.chunks(chunk.max(1)) {
            t.feed(c);
        }
        t.verdict()
    }

    #[test]
    fn encodings_are_told_apart_in_any_chunking() {
        let (gbk, _, _) = encoding_rs::GBK.encode("登记号,成果名称\n4201,水稻\n");
        let (gb4, _, _) = encoding_rs::GB18030.encode("𠀀𬌗研究所");
        for chunk in [1, 2, 3, 7, 4096] {
            assert_eq!(verdict("登记号,成果".as_bytes(), chunk), Ok(TextEncoding::Utf8 { bom: false }));
            assert_eq!(verdict(b"\xEF\xBB\xBFa,b", chunk), Ok(TextEncoding::Utf8 { bom: true }));
            assert_eq!(verdict(&gbk, chunk), Ok(TextEncoding::Gb { four_byte: false }));
            assert_eq!(verdict(&gb4, chunk), Ok(TextEncoding::Gb { four_byte: true }));
        }
        assert_eq!(verdict(b"\xFF\xFEa\0", 10).unwrap_err().code, "unsupported_encoding");
        let e = verdict(b"\xFF\xFE\0\0a\0\0\0", 10).unwrap_err();
        assert!(e.message.contains("UTF-32"), "{e:?}");
        assert_eq!(verdict(b"abc\0def", 10).unwrap_err().code, "binary_file");
    }

    #[test]
    fn a_stray_byte_in_utf8_is_located() {
        let mut text = "登记号,成果名称\n".repeat(30).into_bytes();
        text.extend_from_slice(b"x,\xFF\n");
        let e = verdict(&text, 100).unwrap_err();
        assert_eq!(e.code, "undecodable");
        assert!(e.message.contains("第 31 行"), "{}", e.message);
    }
}
