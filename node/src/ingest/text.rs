//! Text decoding (UTF-8, UTF-8 with BOM, GBK/GB18030, detected) and an RFC 4180 CSV
//! parser that numbers rows the way a spreadsheet shows them.

use huijiao_protocol::report::Refusal;
use std::borrow::Cow;

/// Decodes a text file, detecting the encoding; never asks and never re-encodes.
/// Returns the text and the encoding's report label. Valid UTF-8 is neither copied
/// nor validated twice.
pub fn decode(bytes: Vec<u8>) -> Result<(String, &'static str), Refusal> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Refusal::new(
            "unsupported_encoding",
            "文件是 UTF-16 编码（Excel 的“Unicode 文本”），请另存为“CSV UTF-8（逗号分隔）”",
            "file is UTF-16; save it as CSV UTF-8 instead",
        ));
    }
    let mut bytes = bytes;
    let bom = bytes.starts_with(&[0xEF, 0xBB, 0xBF]);
    if bom {
        bytes.drain(..3);
    }
    let (text, label) = match String::from_utf8(bytes) {
        Ok(s) => (s, "utf-8"),
        Err(_) if bom => {
            return Err(Refusal::new(
                "undecodable",
                "文件以 UTF-8 标记开头，但内容不是有效的 UTF-8",
                "file starts with a UTF-8 BOM but is not valid UTF-8",
            ))
        }
        Err(e) => {
            let body = e.into_bytes();
            // encoding_rs's GB18030 decoder is a superset of GBK (what Excel writes on
            // Chinese Windows), so one pass handles both.
            match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(&body) {
                Some(s) => (s.into_owned(), if has_four_byte_gb18030(&body) { "gb18030" } else { "gbk" }),
                None => {
                    return Err(Refusal::new(
                        "undecodable",
                        "文件既不是 UTF-8 也不是 GBK/GB18030 编码的文本，无法读取",
                        "file is neither UTF-8 nor GBK/GB18030 text",
                    ))
                }
            }
        }
    };
    if looks_binary(&text) {
        return Err(Refusal::new("binary_file", "文件含有二进制内容，不是文本表格", "file holds binary data, not text"));
    }
    Ok((text, label))
}

/// Whether GB18030 bytes use any four-byte sequence (characters outside GBK).
fn has_four_byte_gb18030(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        if b[i] < 0x80 {
            i += 1;
        } else if b.get(i + 1).is_some_and(|n| n.is_ascii_digit()) {
            return true;
        } else {
            i += 2;
        }
    }
    false
}

/// NUL anywhere, or more than one control character per thousand bytes, means binary.
/// C0 controls and DEL are single bytes in UTF-8, so a byte scan finds them.
fn looks_binary(text: &str) -> bool {
    let mut controls = 0usize;
    for &b in text.as_bytes() {
        if b < 0x20 || b == 0x7F {
            if b == 0 {
                return true;
            }
            if !matches!(b, b'\t' | b'\n' | b'\r') {
                controls += 1;
            }
        }
    }
    controls * 1000 > text.len().max(1)
}

/// One CSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    /// The row number a spreadsheet shows: every record and every empty line counts
    /// one, a quoted field spanning lines does not add rows.
    pub row: u64,
    pub fields: Vec<String>,
    /// Set when the record ends inside an unterminated quoted field.
    pub unterminated: bool,
}

/// Parses comma-separated text with RFC 4180 quoting, CRLF, LF or CR line ends. It is
/// lenient the way spreadsheets are: a quote inside an unquoted field is kept as text,
/// and text after a closing quote is appended to the field.
pub fn parse_csv(text: &str) -> Vec<CsvRecord> {
    let mut cursor = CsvCursor::default();
    std::iter::from_fn(|| cursor.next_record(text)).collect()
}

/// Reads CSV records one at a time, so a large file can be processed as it is parsed.
#[derive(Debug, Clone, Default)]
pub struct CsvCursor {
    pos: usize,
    row: u64,
}

impl CsvCursor {
    /// The next record of `text` (always the same text), or None at the end.
    pub fn next_record(&mut self, text: &str) -> Option<CsvRecord> {
        let b = text.as_bytes();
        let mut i = self.pos;
        if i >= b.len() {
            return None;
        }
        self.row += 1;
        let mut fields = Vec::new();
        let mut unterminated = false;
        loop {
            let mut field = String::new();
            if b.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    match memchr(b'"', &b[i..]) {
                        None => {
                            field.push_str(&text[i..]);
                            i = b.len();
                            unterminated = true;
                            break;
                        }
                        Some(q) => {
                            field.push_str(&text[i..i + q]);
                            i += q + 1;
                            if b.get(i) == Some(&b'"') {
                                field.push('"');
                                i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                }
            }
            let end = b[i..].iter().position(|&c| matches!(c, b',' | b'\n' | b'\r')).map_or(b.len(), |p| i + p);
            field.push_str(&text[i..end]);
            i = end;
            fields.push(field);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'\r') => {
                    i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                    break;
                }
                Some(b'\n') => {
                    i += 1;
                    break;
                }
                _ => break,
            }
        }
        self.pos = i;
        Some(CsvRecord { row: self.row, fields, unterminated })
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

/// Quotes one field for writing, when it needs it.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Writes rows as CSV: UTF-8 with a BOM so Excel opens it, CRLF line ends.
pub fn write_csv(rows: impl IntoIterator<Item = Vec<String>>) -> Vec<u8> {
    let mut out = vec![0xEF, 0xBB, 0xBF];
    for r in rows {
        let line: Vec<Cow<'_, str>> = r.iter().map(|f| csv_field(f)).collect();
        out.extend_from_slice(line.join(",").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quoted_line_breaks_and_empty_lines_number_rows_as_excel_does() {
        let text = "a,b\r\n1,\"x\r\ny\"\r\n\r\n\"q\"\"uote\",2\n3,\"unterminated";
        let recs = parse_csv(text);
        let rows: Vec<u64> = recs.iter().map(|r| r.row).collect();
        assert_eq!(rows, vec![1, 2, 3, 4, 5]);
        assert_eq!(recs[1].fields, vec!["1", "x\r\ny"]);
        assert_eq!(recs[2].fields, vec![""]);
        assert_eq!(recs[3].fields, vec!["q\"uote", "2"]);
        assert!(recs[4].unterminated && !recs[3].unterminated);
    }

    #[test]
    fn detects_each_encoding() {
        assert_eq!(decode(b"a,b".to_vec()).unwrap().1, "utf-8");
        assert_eq!(decode(b"\xEF\xBB\xBFa,b".to_vec()).unwrap(), ("a,b".to_string(), "utf-8"));
        let (gbk, _, _) = encoding_rs::GBK.encode("登记号,成果名称");
        assert_eq!(decode(gbk.into_owned()).unwrap(), ("登记号,成果名称".to_string(), "gbk"));
        let (gb, _, _) = encoding_rs::GB18030.encode("𠀀𬌗研究所");
        assert_eq!(decode(gb.into_owned()).unwrap(), ("𠀀𬌗研究所".to_string(), "gb18030"));
        assert_eq!(decode(b"\xFF\xFEa\0".to_vec()).unwrap_err().code, "unsupported_encoding");
        assert_eq!(decode(b"\x81\x20\xff".to_vec()).unwrap_err().code, "undecodable");
        assert_eq!(decode(b"abc\0def".to_vec()).unwrap_err().code, "binary_file");
    }

    proptest! {
        #[test]
        fn written_csv_parses_back(rows in prop::collection::vec(prop::collection::vec("[a-z,\"\r\n 中]{0,6}", 1..5), 1..6)) {
            let bytes = write_csv(rows.clone());
            let text = std::str::from_utf8(&bytes[3..]).unwrap();
            let parsed: Vec<Vec<String>> = parse_csv(text).into_iter().map(|r| r.fields).collect();
            prop_assert_eq!(parsed, rows);
        }

        #[test]
        fn parsing_never_panics(s in ".{0,64}") {
            let _ = parse_csv(&s);
        }
    }
}
