//! Text: a streaming decoder to UTF-8 (UTF-8 passes through, GBK/GB18030 is decoded
//! chunk by chunk) and a streaming RFC 4180 CSV parser that numbers rows the way a
//! spreadsheet shows them. Neither holds more than one record of the file.

use super::source::TextEncoding;
use std::io::{self, Read};

/// Reads a text file as UTF-8 bytes, whatever its encoding. A byte the encoding
/// cannot decode is an error of kind `InvalidData` naming its offset.
pub struct Utf8Reader<R> {
    inner: R,
    decoder: Option<encoding_rs::Decoder>,
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    raw_eof: bool,
    /// Decoded bytes not yet handed out.
    out: Vec<u8>,
    out_start: usize,
    /// Offset in the file of `raw[raw_start]`, for messages.
    offset: u64,
    skip_bom: bool,
}

impl<R: Read> Utf8Reader<R> {
    pub fn new(inner: R, encoding: TextEncoding) -> Utf8Reader<R> {
        let (decoder, skip_bom) = match encoding {
            TextEncoding::Utf8 { bom } => (None, bom),
            TextEncoding::Gb { .. } => (Some(encoding_rs::GB18030.new_decoder_without_bom_handling()), false),
        };
        Utf8Reader {
            inner,
            decoder,
            raw: vec![0; 64 * 1024],
            raw_start: 0,
            raw_end: 0,
            raw_eof: false,
            out: Vec::new(),
            out_start: 0,
            offset: 0,
            skip_bom,
        }
    }

    /// Decodes more input into `out`; false at the end.
    fn decode_more(&mut self) -> io::Result<bool> {
        let Some(decoder) = self.decoder.as_mut() else { unreachable!("only decoding readers decode") };
        loop {
            if self.raw_start == self.raw_end && !self.raw_eof {
                let n = loop {
                    match self.inner.read(&mut self.raw) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                };
                self.raw_start = 0;
                self.raw_end = n;
                self.raw_eof = n == 0;
            }
            self.out.clear();
            self.out_start = 0;
            self.out.resize(self.raw.len() * 3 + 16, 0);
            let src = &self.raw[self.raw_start..self.raw_end];
            let (result, read, written) = decoder.decode_to_utf8_without_replacement(src, &mut self.out, self.raw_eof);
            self.out.truncate(written);
            self.raw_start += read;
            self.offset += read as u64;
            if let encoding_rs::DecoderResult::Malformed(bad, _) = result {
                let at = self.offset - u64::from(bad);
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("byte {} cannot be decoded as GBK/GB18030", at + 1)));
            }
            if written > 0 {
                return Ok(true);
            }
            if self.raw_eof && self.raw_start == self.raw_end {
                return Ok(false);
            }
        }
    }
}

impl<R: Read> Read for Utf8Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.skip_bom {
            let mut bom = [0u8; 3];
            self.inner.read_exact(&mut bom)?;
            self.skip_bom = false;
            self.offset = 3;
        }
        if self.decoder.is_none() {
            return self.inner.read(buf);
        }
        if self.out_start == self.out.len() && !self.decode_more()? {
            return Ok(0);
        }
        let n = (self.out.len() - self.out_start).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

/// One CSV record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsvRecord {
    /// The row number a spreadsheet shows: every record and every empty line counts
    /// one, a quoted field spanning lines does not add rows.
    pub row: u64,
    pub fields: Vec<String>,
    /// Set when the record ends inside an unterminated quoted field.
    pub unterminated: bool,
    /// Set when the record was longer than the cap: its fields were not kept.
    pub oversized: bool,
}

/// Parses comma-separated UTF-8 text with RFC 4180 quoting, CRLF, LF or CR line ends,
/// reading as it goes. It is lenient the way spreadsheets are: a quote inside an
/// unquoted field is kept as text, and text after a closing quote is appended to the
/// field.
pub struct CsvReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    row: u64,
    max_record: usize,
    max_fields: usize,
}

/// What parsing the buffered bytes found.
enum Scan {
    /// A whole record ending at this buffer index (after its line end).
    Done(usize, Vec<String>, bool),
    /// The buffer ends inside the record.
    More,
    /// The record has more fields than any sheet has columns.
    TooWide,
}

impl<R: Read> CsvReader<R> {
    /// `max_record`: the most bytes one record may take, `max_fields` the most fields;
    /// a larger record comes back `oversized`, without its fields.
    pub fn new(inner: R, max_record: usize, max_fields: usize) -> CsvReader<R> {
        CsvReader { inner, buf: vec![0; 256 * 1024], start: 0, end: 0, eof: false, row: 0, max_record, max_fields }
    }

    /// Reads more bytes into the buffer, keeping the unparsed part. False at the end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grow = self.buf.len();
            self.buf.resize(self.buf.len() + grow, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next record, or None at the end.
    pub fn next_record(&mut self) -> io::Result<Option<CsvRecord>> {
        loop {
            if self.start == self.end && !self.fill()? {
                return Ok(None);
            }
            match scan(&self.buf[self.start..self.end], self.eof, self.max_fields)? {
                Scan::Done(used, fields, unterminated) => {
                    self.start += used;
                    self.row += 1;
                    if used > self.max_record {
                        return Ok(Some(CsvRecord { row: self.row, fields: Vec::new(), unterminated: false, oversized: true }));
                    }
                    return Ok(Some(CsvRecord { row: self.row, fields, unterminated, oversized: false }));
                }
                Scan::TooWide => {
                    self.row += 1;
                    let row = self.row;
                    self.skip_record()?;
                    return Ok(Some(CsvRecord { row, fields: Vec::new(), unterminated: false, oversized: true }));
                }
                Scan::More => {
                    if self.end - self.start >= self.max_record {
                        self.row += 1;
                        let row = self.row;
                        self.skip_record()?;
                        return Ok(Some(CsvRecord { row, fields: Vec::new(), unterminated: false, oversized: true }));
                    }
                    self.fill()?;
                }
            }
        }
    }

    /// Skips the rest of an oversized record without keeping it.
    fn skip_record(&mut self) -> io::Result<()> {
        let mut quoted = false;
        let mut field_start = true;
        loop {
            while self.start < self.end {
                let b = self.buf[self.start];
                self.start += 1;
                match b {
                    b'"' if quoted => quoted = false,
                    b'"' if field_start => quoted = true,
                    b',' if !quoted => {
                        field_start = true;
                        continue;
                    }
                    b'\n' if !quoted => return Ok(()),
                    b'\r' if !quoted => {
                        if self.start == self.end {
                            self.fill()?;
                        }
                        if self.start < self.end && self.buf[self.start] == b'\n' {
                            self.start += 1;
                        }
                        return Ok(());
                    }
                    _ => {}
                }
                field_start = false;
            }
            self.start = 0;
            self.end = 0;
            if !self.fill()? {
                return Ok(());
            }
        }
    }
}

fn utf8(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the text is not valid UTF-8"))
}

/// Parses one record from `b`; `eof` says no more bytes follow.
fn scan(b: &[u8], eof: bool, max_fields: usize) -> io::Result<Scan> {
    let mut i = 0;
    let mut fields = Vec::new();
    let mut unterminated = false;
    loop {
        let mut field = Vec::new();
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match b[i..].iter().position(|&c| c == b'"') {
                    None if eof => {
                        field.extend_from_slice(&b[i..]);
                        i = b.len();
                        unterminated = true;
                        break;
                    }
                    None => return Ok(Scan::More),
                    Some(q) => {
                        field.extend_from_slice(&b[i..i + q]);
                        i += q + 1;
                        match b.get(i) {
                            Some(b'"') => {
                                field.push(b'"');
                                i += 1;
                            }
                            None if !eof => return Ok(Scan::More),
                            _ => break,
                        }
                    }
                }
            }
        }
        let end = match b[i..].iter().position(|&c| matches!(c, b',' | b'\n' | b'\r')) {
            Some(p) => i + p,
            None if eof => b.len(),
            None => return Ok(Scan::More),
        };
        field.extend_from_slice(&b[i..end]);
        i = end;
        fields.push(utf8(field)?);
        if fields.len() > max_fields {
            return Ok(Scan::TooWide);
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'\r') => match b.get(i + 1) {
                Some(b'\n') => return Ok(Scan::Done(i + 2, fields, unterminated)),
                None if !eof => return Ok(Scan::More),
                _ => return Ok(Scan::Done(i + 1, fields, unterminated)),
            },
            Some(b'\n') => return Ok(Scan::Done(i + 1, fields, unterminated)),
            _ => return Ok(Scan::Done(i, fields, unterminated)),
        }
    }
}

/// Parses a whole text at once (tests and small inputs).
pub fn parse_csv(text: &str) -> Vec<CsvRecord> {
    let mut r = CsvReader::new(text.as_bytes(), usize::MAX, usize::MAX);
    std::iter::from_fn(|| r.next_record().expect("in-memory text reads")).collect()
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

    /// A reader that hands out one byte at a time: every record crosses buffer ends.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match (self.0.first(), out.first_mut()) {
                (Some(b), Some(o)) => {
                    *o = *b;
                    self.0 = &self.0[1..];
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn records_split_at_any_byte_parse_the_same() {
        let text = "a,b\r\n1,\"x\r\ny\"\r\n\r\n\"q\"\"uote\",2\r3,\"end\"";
        let whole = parse_csv(text);
        let mut r = CsvReader::new(Trickle(text.as_bytes()), usize::MAX, usize::MAX);
        let trickled: Vec<CsvRecord> = std::iter::from_fn(|| r.next_record().unwrap()).collect();
        assert_eq!(trickled, whole);
    }

    #[test]
    fn an_oversized_record_is_skipped_whole() {
        let text = format!("a,b\n\"{}\",x\nc,d\n", "长".repeat(1000));
        let mut r = CsvReader::new(text.as_bytes(), 512, 100);
        let recs: Vec<CsvRecord> = std::iter::from_fn(|| r.next_record().unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert!(recs[1].oversized && recs[1].fields.is_empty());
        assert_eq!((recs[2].row, recs[2].fields.clone()), (3, vec!["c".to_string(), "d".to_string()]));
        let wide = format!("a\n{}\nb\n", ",".repeat(500));
        let mut r = CsvReader::new(wide.as_bytes(), 1 << 20, 100);
        let recs: Vec<CsvRecord> = std::iter::from_fn(|| r.next_record().unwrap()).collect();
        assert_eq!(recs.iter().map(|r| (r.row, r.oversized)).collect::<Vec<_>>(), vec![(1, false), (2, true), (3, false)]);
    }

    #[test]
    fn gbk_decodes_in_a_stream() {
        let text = "登记号,成果名称\n".repeat(5000);
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        let mut out = String::new();
        Utf8Reader::new(Trickle(&gbk), TextEncoding::Gb { four_byte: false }).read_to_string(&mut out).unwrap();
        assert_eq!(out, "登记号,成果名称\n".repeat(5000));
        let mut bad = gbk.to_vec();
        bad.extend_from_slice(b"\x81\x20");
        let e = Utf8Reader::new(&bad[..], TextEncoding::Gb { four_byte: false }).read_to_string(&mut out).unwrap_err();
        assert!(e.to_string().contains("cannot be decoded"), "{e}");
        let mut s = String::new();
        Utf8Reader::new(&b"\xEF\xBB\xBFa,b"[..], TextEncoding::Utf8 { bom: true }).read_to_string(&mut s).unwrap();
        assert_eq!(s, "a,b");
    }

    proptest! {
        #[test]
        fn written_csv_parses_back(rows in prop::collection::vec(prop::collection::vec("[a-z,\"\r\n 中=+@'\t-]{0,6}", 1..5), 1..6)) {
            let bytes = huijiao_protocol::table::write_csv(rows.clone());
            let text = std::str::from_utf8(&bytes[3..]).unwrap();
            // As a node reads cells: trimmed, and without the `'` that keeps a spreadsheet
            // from running a formula (spec v1.2 §3).
            let read = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
                rows.iter().map(|r| r.iter().map(|c| huijiao_protocol::table::unquote_formula(c.trim()).to_string()).collect()).collect()
            };
            let parsed: Vec<Vec<String>> = parse_csv(text).into_iter().map(|r| r.fields).collect();
            prop_assert_eq!(read(parsed), read(rows));
        }

        #[test]
        fn parsing_never_panics(s in ".{0,64}") {
            let _ = parse_csv(&s);
        }
    }
}
