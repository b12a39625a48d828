//! The whole-file secrecy screen (spec v1.2 §3): a classified marking anywhere in a
//! file — any sheet, hidden or not, title and trailer rows, shared and inline strings,
//! comments, headers, sheet names; the whole text of a CSV or JSON file — keeps the
//! original out of every archive, whatever the rows' verdicts. The readers judge only
//! the rows they parse; this reads everything, streaming and under the same caps.
//!
//! Fail-closed: anything it cannot read through (a cap, a broken container) counts as
//! marked, so such a file is not archived either.

use super::source::TextEncoding;
use super::{Cancel, Format, Limits};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// What the screen found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screened {
    Clean,
    /// A marking, or something that could not be read through (`why`).
    Marked {
        why: &'static str,
    },
}

impl Screened {
    pub fn is_marked(&self) -> bool {
        matches!(self, Screened::Marked { .. })
    }
}

const MARKED: Screened = Screened::Marked { why: "a classified marking" };
const UNREAD: Screened = Screened::Marked { why: "a part that could not be read through" };

/// The report's word that the original was not archived for a marking somewhere in it.
pub fn marked_file_warning() -> huijiao_protocol::Warning {
    huijiao_protocol::Warning {
        row: None,
        field: Some("secret".into()),
        code: "original_not_kept".into(),
        message: huijiao_protocol::report::zh_en(
            "文件中含有涉密标记（可能在未读取的工作表、标题行、表尾或批注中），文件原件未存档",
            "the file holds a classified marking (perhaps on a sheet, title or trailer row or comment that was not read); the original file was not archived",
        ),
    }
}

/// The report's word that classified or unverifiable rows keep the original out.
pub fn not_kept_warning(n: u64) -> huijiao_protocol::Warning {
    huijiao_protocol::Warning {
        row: None,
        field: Some("secret".into()),
        code: "original_not_kept".into(),
        message: huijiao_protocol::report::zh_en(
            &format!("文件中有 {n} 行涉密或密级无法确认，这些行既不存储也不回显；文件原件未存档"),
            &format!("{n} row(s) are classified or have a secret level that cannot be verified; they are neither stored nor echoed, and the original file was not archived"),
        ),
    }
}

/// Screens a whole file. `encoding`: a text file's, as the first pass found it (None
/// when it could not be decoded: then searched as UTF-8 and as GBK both).
pub fn screen(file: &File, format: Option<Format>, encoding: Option<TextEncoding>, limits: &Limits, cancel: &Cancel) -> Screened {
    match format {
        Some(Format::Xlsx | Format::Ods) => screen_zip(file, limits, cancel),
        Some(Format::Xls) => screen_xls(file, limits, cancel),
        Some(Format::Json | Format::Jsonl) => screen_text(file, encoding, true),
        _ => screen_text(file, encoding, false),
    }
}

/// JSON text with its `\uXXXX` escapes (surrogate pairs too) read as the characters
/// they stand for: 机密 may be written `\u673a\u5bc6`.
fn unescape_json(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains("\\u") {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 6).and_then(|h| u32::from_str_radix(h, 16).ok());
        match hex {
            Some(hi @ 0xD800..=0xDBFF) => {
                let lo = rest.get(i + 6..i + 12).filter(|t| t.starts_with("\\u")).and_then(|t| u32::from_str_radix(&t[2..], 16).ok());
                match lo.filter(|lo| (0xDC00..=0xDFFF).contains(lo)) {
                    Some(lo) => {
                        out.extend(char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)));
                        rest = &rest[i + 12..];
                    }
                    None => rest = &rest[i + 6..],
                }
            }
            Some(c) => {
                out.extend(char::from_u32(c));
                rest = &rest[i + 6..];
            }
            None => {
                out.push_str("\\u");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// A stream of text searched for markings, with a tail kept across chunks so a marking
/// split between two is still seen.
#[derive(Default)]
struct TextScan {
    carry: String,
    marked: bool,
}

impl TextScan {
    fn push(&mut self, text: &str) {
        if self.marked {
            return;
        }
        self.carry.push_str(text);
        if huijiao_protocol::secrecy::file_text_is_marked(&self.carry) {
            self.marked = true;
            return;
        }
        let keep_from = self.carry.char_indices().rev().nth(32).map_or(0, |(i, _)| i);
        self.carry.drain(..keep_from);
    }
}

/// Whether raw bytes may hold 密 (or a compatibility ideograph) in UTF-8: if not, no
/// marking can be there and the text need not be decoded at all.
fn utf8_may_hold_marking(b: &[u8]) -> bool {
    b.windows(3).any(|w| matches!(w, [0xE5, 0xAF, 0x86] | [0xEF, 0xA4..=0xAB, _] | [0xF0, 0xAF, 0xA0..=0xA8]))
}

fn screen_text(file: &File, encoding: Option<TextEncoding>, json: bool) -> Screened {
    let encodings = match encoding {
        Some(e) => vec![e],
        None => vec![TextEncoding::Utf8 { bom: false }, TextEncoding::Gb { four_byte: true }],
    };
    for enc in encodings {
        let mut f = file;
        if f.seek(SeekFrom::Start(0)).is_err() {
            return UNREAD;
        }
        let marked = match enc {
            TextEncoding::Utf8 { .. } => {
                // Read raw; only pieces that may hold 密 are decoded (lossily: doubt is
                // searched, not skipped). A character cut between reads waits for the
                // next one.
                let mut scan = TextScan::default();
                let mut buf = vec![0u8; 256 * 1024];
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    let n = match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(_) => return UNREAD,
                    };
                    let mut chunk = std::mem::take(&mut pending);
                    chunk.extend_from_slice(&buf[..n]);
                    let cut = utf8_boundary(&chunk);
                    pending = chunk[cut..].to_vec();
                    let whole = &chunk[..cut];
                    if utf8_may_hold_marking(whole) || json && whole.windows(2).any(|w| w == b"\\u") {
                        scan.push(&unescape_json(&String::from_utf8_lossy(whole)));
                    } else {
                        // No 密 here: only its end can start a marking the next piece ends.
                        scan.carry.clear();
                        scan.carry.push_str(&String::from_utf8_lossy(&whole[whole.len().saturating_sub(96)..]));
                    }
                    if scan.marked {
                        break;
                    }
                }
                if !pending.is_empty() && !scan.marked {
                    scan.push(&String::from_utf8_lossy(&pending));
                }
                scan.marked
            }
            gb => {
                let mut r = super::text::Utf8Reader::new(f, gb);
                let mut scan = TextScan::default();
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        // Bytes that do not decode: search what can be read.
                        Err(_) => break,
                    };
                    scan.push(&unescape_json(&String::from_utf8_lossy(&buf[..n])));
                    if scan.marked {
                        break;
                    }
                }
                scan.marked
            }
        };
        if marked {
            return MARKED;
        }
    }
    Screened::Clean
}

/// XML text: markup stripped, character and entity references decoded, fed to a
/// [`TextScan`]. (Texts of neighbouring elements run together: a marking split across
/// two cells is found too, at the cost of a rare false alarm — fail-closed.)
#[derive(Default)]
struct XmlText {
    in_tag: bool,
    /// Inside a tag, the quote an attribute value is open with.
    quote: Option<char>,
    entity: Option<String>,
    out: String,
}

impl XmlText {
    fn push(&mut self, text: &str, scan: &mut TextScan) {
        for ch in text.chars() {
            if let Some(e) = &mut self.entity {
                if ch == ';' || e.len() > 12 {
                    let e = self.entity.take().unwrap_or_default();
                    self.out.push_str(&decode_entity(&e));
                } else {
                    e.push(ch);
                }
                continue;
            }
            match (self.in_tag, self.quote, ch) {
                (false, _, '<') => self.in_tag = true,
                (false, _, '&') => self.entity = Some(String::new()),
                (false, _, c) => self.out.push(c),
                // Attribute values (sheet names, comment authors) are text too.
                (true, None, '"' | '\'') => self.quote = Some(ch),
                (true, Some(q), c) if c == q => self.quote = None,
                (true, Some(_), '&') => self.entity = Some(String::new()),
                (true, Some(_), c) => self.out.push(c),
                (true, None, '>') => self.in_tag = false,
                (true, None, _) => {}
            }
        }
        scan.push(&self.out);
        self.out.clear();
    }
}

fn decode_entity(e: &str) -> String {
    let num = e
        .strip_prefix("#x")
        .or_else(|| e.strip_prefix("#X"))
        .map(|h| u32::from_str_radix(h, 16))
        .or_else(|| e.strip_prefix('#').map(str::parse));
    match num {
        Some(Ok(n)) => char::from_u32(n).map(String::from).unwrap_or_default(),
        _ => match e {
            "amp" => "&".into(),
            "lt" => "<".into(),
            "gt" => ">".into(),
            "quot" => "\"".into(),
            "apos" => "'".into(),
            other => format!("&{other};"),
        },
    }
}

fn screen_zip(file: &File, limits: &Limits, cancel: &Cancel) -> Screened {
    let Ok(f) = file.try_clone() else { return UNREAD };
    let Ok(mut zip) = super::xml::open_zip(f, "xlsx") else { return UNREAD };
    let tripped: super::xml::Tripped = Default::default();
    for i in 0..zip.len() {
        let Ok(entry) = zip.by_index(i) else { return UNREAD };
        let name = entry.name().to_ascii_lowercase();
        // Every XML part (sheets, shared strings, comments, drawings, the workbook with
        // its sheet names, document properties); pictures and macros hold no text.
        if !(name.ends_with(".xml") || name.ends_with(".rels") || name.ends_with(".vml")) {
            continue;
        }
        let compressed = entry.compressed_size();
        let part = entry.name().to_string();
        let mut guard = super::xml::Guard::new(entry, &part, compressed, limits, cancel, &tripped);
        let mut scan = TextScan::default();
        let mut xml = XmlText::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match guard.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => return UNREAD,
            };
            // Whole UTF-8 characters only: a character cut between reads waits.
            let mut chunk = std::mem::take(&mut tail);
            chunk.extend_from_slice(&buf[..n]);
            let cut = utf8_boundary(&chunk);
            tail = chunk[cut..].to_vec();
            xml.push(&String::from_utf8_lossy(&chunk[..cut]), &mut scan);
            if scan.marked {
                return MARKED;
            }
        }
    }
    Screened::Clean
}

/// The longest prefix of `b` that does not end inside a UTF-8 character.
fn utf8_boundary(b: &[u8]) -> usize {
    let mut i = b.len();
    let mut back = 0;
    while i > 0 && back < 4 {
        let c = b[i - 1];
        if c & 0xC0 != 0x80 {
            let len = match c {
                0x00..=0x7F => 1,
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            return if back + 1 >= len { b.len() } else { i - 1 };
        }
        i -= 1;
        back += 1;
    }
    b.len()
}

/// The UTF-16LE forms of the characters a marking starts with (as written, in their
/// traditional and variant forms), and of 密 that every marking ends with.
const FIRSTS: [[u8; 2]; 8] = [
    [0xD8, 0x79], // 秘
    [0x3A, 0x67], // 机
    [0xDD, 0x7E], // 绝
    [0x89, 0x6D], // 涉
    [0x55, 0x79], // 祕
    [0x5F, 0x6A], // 機
    [0x55, 0x7D], // 絕
    [0x76, 0x7D], // 絶
];
const MI: [u8; 2] = [0xC6, 0x5B];
/// 技术 and 商业 before 秘密: intellectual property, not a marking.
const IP_BEFORE: [[u8; 4]; 2] = [[0x80, 0x62, 0x2F, 0x67], [0x46, 0x55, 0x1A, 0x4E]];

/// Searches the record bodies of an `.xls` workbook for a marking in UTF-16LE (how
/// BIFF8 stores every Chinese string: cells, the string table, comments, sheet names).
/// Tolerant, as the raw bytes demand: the first character may stand up to 10 bytes
/// before 密 at any alignment (a string continued in the next record has a flag byte
/// between; an invisible character may sit between the two).
fn utf16_marked(b: &[u8]) -> bool {
    for i in 0..b.len().saturating_sub(1) {
        if b[i..i + 2] != MI {
            continue;
        }
        for j in i.saturating_sub(10)..i {
            if j + 2 > i || !FIRSTS.contains(&[b[j], b[j + 1]]) {
                continue;
            }
            // 秘密 right after 技术 or 商业 is the name of an IP kind.
            let is_ip = b[j..j + 2] == [0xD8, 0x79] && j + 2 == i && j >= 4 && IP_BEFORE.iter().any(|p| b[j - 4..j] == p[..]);
            if !is_ip {
                return true;
            }
        }
    }
    false
}

fn screen_xls(file: &File, limits: &Limits, cancel: &Cancel) -> Screened {
    let mut carry: Vec<u8> = Vec::new();
    let mut marked = false;
    let read = super::xls::each_record_body(file, limits, cancel, &mut |body| {
        carry.extend_from_slice(body);
        if utf16_marked(&carry) {
            marked = true;
            return false;
        }
        let keep = carry.len().saturating_sub(16);
        carry.drain(..keep);
        true
    });
    match read {
        _ if marked => MARKED,
        Ok(()) => Screened::Clean,
        Err(_) => UNREAD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn xml_text_is_decoded_before_it_is_searched() {
        // Fed a few characters at a time, as reads cut it.
        let run = |xml: &str| {
            let mut scan = TextScan::default();
            let mut x = XmlText::default();
            let chars: Vec<char> = xml.chars().collect();
            for piece in chars.chunks(3) {
                x.push(&piece.iter().collect::<String>(), &mut scan);
            }
            scan.marked
        };
        assert!(run("<si><t>本成果为</t></si><si><r><t>机</t></r><r><t>密</t></r></si>"), "a marking split into rich-text runs");
        assert!(run("<t>&#26426;&#23494;</t>"), "numeric character references");
        assert!(run("<sheet name=\"涉密成果（不报送）\"/>"), "a sheet name");
        assert!(!run("<t>知识产权</t><t>技术秘密:JSMM-1</t>"));
        assert!(!run("<t>公开</t><t>内部</t>"));
    }

    #[test]
    fn utf16_markings_are_found_across_flag_bytes_and_not_in_ip_kinds() {
        assert!(utf16_marked(&utf16("密级：机密")));
        let mut cut = utf16("本成果为机");
        cut.push(0x01); // a CONTINUE record's option byte
        cut.extend(utf16("密"));
        assert!(utf16_marked(&cut));
        assert!(utf16_marked(&utf16("絕\u{200B}密")));
        assert!(!utf16_marked(&utf16("技术秘密:JSMM-1；商业秘密")));
        assert!(!utf16_marked(&utf16("保密期限")));
    }

    #[test]
    fn json_escapes_hide_nothing() {
        assert_eq!(unescape_json(r#"{"备注":"\u673a\u5bc6"}"#), "{\"备注\":\"机密\"}");
        assert_eq!(unescape_json(r"\ud840\udc00 \uZZZZ \u"), "\u{20000} \\uZZZZ \\u");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, "{\"reg_no\":\"x\",\"note\":\"\\u7edd\\u5bc6\"}\n").unwrap();
        let f = File::open(&p).unwrap();
        assert!(screen(&f, Some(Format::Jsonl), Some(TextEncoding::Utf8 { bom: false }), &Limits::new(1 << 20), &Cancel::new()).is_marked());
        std::fs::write(&p, "{\"reg_no\":\"x\",\"ip\":\"\\u6280\\u672f\\u79d8\\u5bc6:1\"}\n").unwrap();
        let f = File::open(&p).unwrap();
        assert!(
            !screen(&f, Some(Format::Jsonl), Some(TextEncoding::Utf8 { bom: false }), &Limits::new(1 << 20), &Cancel::new()).is_marked()
        );
    }

    #[test]
    fn raw_utf8_without_mi_needs_no_decoding() {
        assert!(!utf8_may_hold_marking("公开,内部,水稻".as_bytes()));
        assert!(utf8_may_hold_marking("机密".as_bytes()));
        assert_eq!(utf8_boundary("ab机".as_bytes()), 5);
        assert_eq!(utf8_boundary(&"ab机".as_bytes()[..4]), 2);
    }
}
