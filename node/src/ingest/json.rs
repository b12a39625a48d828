//! JSON (one object or an array of objects) and JSONL / NDJSON (one object per line),
//! read by a small streaming parser of our own rather than into a document tree:
//!
//! - an array is read item by item, so `[0,0,…]` of any length costs one item;
//! - every key of an object is kept in order, duplicates included, so that two keys
//!   for 密级 are both checked (fail-closed) whatever order they come in;
//! - a number out of range (`1e999`) is a value the row rejects, not a broken file;
//! - a string longer than the cell cap is counted, not kept;
//! - nesting is limited, so no input can exhaust the stack.
//!
//! One room: our streaming JSON parser, one state machine over bytes, with the caps it
//! checks as it goes.

use super::{broken_row, Cancel, Limits, Sender, SourceRow};
use huijiao_protocol::fields::Field;
use huijiao_protocol::report::{zh_en, Refusal, RowError, Warning};
use huijiao_protocol::validate::{RawValue, MAX_CELL_CHARS};
use std::collections::HashMap;
use std::io::{self, BufRead, Read};

/// The column of `NAME.rejected.csv` that carries an item or line that could not be
/// read as an object.
pub const RAW_COLUMN: &str = "原始内容 (raw)";

/// Objects and arrays nest at most this deep.
const MAX_DEPTH: usize = 64;
/// Raw text of an unreadable item echoed at most this long.
const MAX_RAW_ECHO: usize = 4096;
/// Keys are matched on at most this many bytes.
const MAX_KEY: usize = 512;

/// Where the parser is, for messages.
#[derive(Debug, Clone, Copy, Default)]
struct Pos {
    line: u64,
    column: u64,
}

#[derive(Debug)]
enum JsonError {
    Syntax { what: &'static str, pos: Pos },
    Io(io::Error),
    TooManyRows,
    Cancelled,
}

impl From<io::Error> for JsonError {
    fn from(e: io::Error) -> Self {
        JsonError::Io(e)
    }
}

type JResult<T> = Result<T, JsonError>;

/// Bytes with one byte of look-ahead, positions, and an optional capture.
trait Input {
    fn peek(&mut self) -> JResult<Option<u8>>;
    fn bump(&mut self);
    fn pos(&self) -> Pos;
    /// Starts or stops copying consumed bytes (at most `MAX_RAW_ECHO`).
    fn capture(&mut self, on: bool) -> Vec<u8>;
}

/// A whole line in memory (JSONL).
struct SliceInput<'a> {
    b: &'a [u8],
    i: usize,
    line: u64,
}

impl Input for SliceInput<'_> {
    fn peek(&mut self) -> JResult<Option<u8>> {
        Ok(self.b.get(self.i).copied())
    }
    fn bump(&mut self) {
        self.i += 1;
    }
    fn pos(&self) -> Pos {
        let col = self.b[..self.i.min(self.b.len())].iter().filter(|&&c| c & 0xC0 != 0x80).count() as u64 + 1;
        Pos { line: self.line, column: col }
    }
    fn capture(&mut self, _on: bool) -> Vec<u8> {
        Vec::new()
    }
}

/// A stream (a JSON file).
struct StreamInput<R> {
    r: R,
    buf: Vec<u8>,
    i: usize,
    n: usize,
    line: u64,
    column: u64,
    capturing: bool,
    captured: Vec<u8>,
    cancel: Cancel,
    reads: u64,
}

impl<R: Read> Input for StreamInput<R> {
    fn peek(&mut self) -> JResult<Option<u8>> {
        if self.i == self.n {
            self.reads += 1;
            if self.reads % 64 == 0 && self.cancel.is_cancelled() {
                return Err(JsonError::Cancelled);
            }
            self.n = loop {
                match self.r.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            };
            self.i = 0;
            if self.n == 0 {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.i]))
    }
    fn bump(&mut self) {
        let b = self.buf[self.i];
        self.i += 1;
        if b == b'\n' {
            self.line += 1;
            self.column = 1;
        } else if b & 0xC0 != 0x80 {
            self.column += 1;
        }
        if self.capturing && self.captured.len() < MAX_RAW_ECHO {
            self.captured.push(b);
        }
    }
    fn pos(&self) -> Pos {
        Pos { line: self.line, column: self.column }
    }
    fn capture(&mut self, on: bool) -> Vec<u8> {
        self.capturing = on;
        std::mem::take(&mut self.captured)
    }
}

fn syntax<T>(input: &impl Input, what: &'static str) -> JResult<T> {
    Err(JsonError::Syntax { what, pos: input.pos() })
}

fn skip_ws(input: &mut impl Input) -> JResult<Option<u8>> {
    while let Some(b) = input.peek()? {
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            input.bump();
        } else {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

fn expect(input: &mut impl Input, word: &[u8]) -> JResult<()> {
    for &w in word {
        match input.peek()? {
            Some(b) if b == w => input.bump(),
            _ => return syntax(input, "an unknown word (expected true, false or null)"),
        }
    }
    Ok(())
}

fn hex4(input: &mut impl Input) -> JResult<u32> {
    let mut v = 0;
    for _ in 0..4 {
        let d = match input.peek()? {
            Some(b) => (b as char).to_digit(16),
            None => None,
        };
        let Some(d) = d else { return syntax(input, "a bad \\u escape") };
        input.bump();
        v = v * 16 + d;
    }
    Ok(v)
}

/// A string after its opening quote: its text (unless longer than `keep` bytes) and
/// its length in characters.
fn string(input: &mut impl Input, keep: usize) -> JResult<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut chars = 0usize;
    let mut push = |out: &mut Vec<u8>, bytes: &[u8], n: usize| {
        chars += n;
        if out.len() < keep {
            out.extend_from_slice(bytes);
        }
    };
    loop {
        let Some(b) = input.peek()? else { return syntax(input, "an unterminated string") };
        input.bump();
        match b {
            b'"' => return Ok((out, chars)),
            b'\\' => {
                let Some(e) = input.peek()? else { return syntax(input, "an unterminated string") };
                input.bump();
                let c = match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hi = hex4(input)?;
                        let code = if (0xD800..0xDC00).contains(&hi) {
                            if input.peek()? != Some(b'\\') {
                                return syntax(input, "a lone surrogate in a \\u escape");
                            }
                            input.bump();
                            if input.peek()? != Some(b'u') {
                                return syntax(input, "a lone surrogate in a \\u escape");
                            }
                            input.bump();
                            let lo = hex4(input)?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return syntax(input, "a lone surrogate in a \\u escape");
                            }
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            hi
                        };
                        match char::from_u32(code) {
                            Some(c) => c,
                            None => return syntax(input, "a lone surrogate in a \\u escape"),
                        }
                    }
                    _ => return syntax(input, "a bad escape in a string"),
                };
                let mut tmp = [0u8; 4];
                push(&mut out, c.encode_utf8(&mut tmp).as_bytes(), 1);
            }
            0..=0x1F => return syntax(input, "a control character in a string"),
            _ => push(&mut out, &[b], usize::from(b & 0xC0 != 0x80)),
        }
    }
}

fn text(bytes: Vec<u8>) -> String {
    // The input is UTF-8 and cuts are only made where `keep` allows whole strings.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A number: an exact integer, a finite float, or (out of range) its text, which
/// the field's rule then rejects as a row error.
fn number(input: &mut impl Input) -> JResult<RawValue> {
    let mut s = Vec::new();
    let digit = |b: u8| b.is_ascii_digit();
    if input.peek()? == Some(b'-') {
        s.push(b'-');
        input.bump();
    }
    let int = take_while(input, &mut s, digit)?;
    if int == 0 || (int > 1 && s[usize::from(s[0] == b'-')] == b'0') {
        return syntax(input, "a malformed number");
    }
    let mut float = false;
    if input.peek()? == Some(b'.') {
        s.push(b'.');
        input.bump();
        float = true;
        if take_while(input, &mut s, digit)? == 0 {
            return syntax(input, "a malformed number");
        }
    }
    if matches!(input.peek()?, Some(b'e' | b'E')) {
        s.push(b'e');
        input.bump();
        float = true;
        if let Some(sign @ (b'+' | b'-')) = input.peek()? {
            s.push(sign);
            input.bump();
        }
        if take_while(input, &mut s, digit)? == 0 {
            return syntax(input, "a malformed number");
        }
    }
    let t = text(s);
    if !float {
        if let Ok(i) = t.parse::<i64>() {
            return Ok(RawValue::Int(i));
        }
    }
    Ok(match t.parse::<f64>() {
        Ok(f) if f.is_finite() => RawValue::Float(f),
        _ => RawValue::Text(t),
    })
}

fn take_while(input: &mut impl Input, s: &mut Vec<u8>, ok: fn(u8) -> bool) -> JResult<usize> {
    let mut n = 0;
    while let Some(b) = input.peek()? {
        if !ok(b) {
            break;
        }
        s.push(b);
        input.bump();
        n += 1;
    }
    Ok(n)
}

/// A scalar or a list of scalars, as a cell; deeper structures are read and refused.
fn cell_value(input: &mut impl Input, depth: usize, in_list: bool) -> JResult<RawValue> {
    if depth > MAX_DEPTH {
        return syntax(input, "values nested too deeply");
    }
    match skip_ws(input)? {
        Some(b'"') => {
            input.bump();
            let (bytes, chars) = string(input, MAX_CELL_CHARS * 4 + 4)?;
            Ok(if chars > MAX_CELL_CHARS { RawValue::TooLong(chars) } else { RawValue::Text(text(bytes)) })
        }
        Some(b'-' | b'0'..=b'9') => number(input),
        Some(b't') => expect(input, b"true").map(|_| RawValue::Bool(true)),
        Some(b'f') => expect(input, b"false").map(|_| RawValue::Bool(false)),
        Some(b'n') => expect(input, b"null").map(|_| RawValue::Empty),
        Some(b'[') if !in_list => {
            input.bump();
            let mut items = Vec::new();
            if skip_ws(input)? == Some(b']') {
                input.bump();
                return Ok(RawValue::List(items));
            }
            loop {
                let v = cell_value(input, depth + 1, true)?;
                if items.len() < 1024 {
                    items.push(v);
                }
                match skip_ws(input)? {
                    Some(b',') => input.bump(),
                    Some(b']') => {
                        input.bump();
                        return Ok(RawValue::List(items));
                    }
                    _ => return syntax(input, "a list not closed by ]"),
                }
            }
        }
        Some(b'[') => {
            skip_value(input, depth)?;
            Ok(RawValue::Invalid("nested list"))
        }
        Some(b'{') => {
            skip_value(input, depth)?;
            Ok(RawValue::Invalid("object"))
        }
        Some(_) => syntax(input, "an unexpected character"),
        None => syntax(input, "the end of the text"),
    }
}

/// Reads and discards one value of any kind.
fn skip_value(input: &mut impl Input, depth: usize) -> JResult<()> {
    if depth > MAX_DEPTH {
        return syntax(input, "values nested too deeply");
    }
    match skip_ws(input)? {
        Some(open @ (b'[' | b'{')) => {
            input.bump();
            let close = if open == b'[' { b']' } else { b'}' };
            if skip_ws(input)? == Some(close) {
                input.bump();
                return Ok(());
            }
            loop {
                if open == b'{' {
                    if skip_ws(input)? != Some(b'"') {
                        return syntax(input, "a key that is not a string");
                    }
                    input.bump();
                    string(input, 0)?;
                    if skip_ws(input)? != Some(b':') {
                        return syntax(input, "a missing colon after a key");
                    }
                    input.bump();
                }
                skip_value(input, depth + 1)?;
                match skip_ws(input)? {
                    Some(b',') => input.bump(),
                    Some(c) if c == close => {
                        input.bump();
                        return Ok(());
                    }
                    _ => return syntax(input, "a missing comma or closing bracket"),
                }
            }
        }
        _ => cell_value(input, depth, true).map(|_| ()),
    }
}

/// The (key, value) pairs of an object whose `{` is next, in order, duplicates kept.
fn object(input: &mut impl Input) -> JResult<Vec<(String, bool, RawValue)>> {
    input.bump();
    let mut pairs = Vec::new();
    if skip_ws(input)? == Some(b'}') {
        input.bump();
        return Ok(pairs);
    }
    loop {
        if skip_ws(input)? != Some(b'"') {
            return syntax(input, "a key that is not a string");
        }
        input.bump();
        let (key, _) = string(input, MAX_KEY)?;
        let long = key.len() >= MAX_KEY;
        let key = if long { format!("{}…", String::from_utf8_lossy(&key).chars().take(40).collect::<String>()) } else { text(key) };
        if skip_ws(input)? != Some(b':') {
            return syntax(input, "a missing colon after a key");
        }
        input.bump();
        let v = cell_value(input, 1, false)?;
        pairs.push((key, long, v));
        match skip_ws(input)? {
            Some(b',') => input.bump(),
            Some(b'}') => {
                input.bump();
                return Ok(pairs);
            }
            _ => return syntax(input, "a missing comma or closing brace"),
        }
    }
}

/// Turns objects into rows: columns are the keys in the order first seen.
pub(crate) struct Builder {
    columns: Vec<String>,
    fields: Vec<Option<Field>>,
    index: HashMap<String, u32>,
    max_keys: usize,
    dropped_keys: bool,
    raw_col: Option<u32>,
    unknown: Vec<String>,
    pub rows: Vec<SourceRow>,
}

impl Builder {
    pub fn new(max_keys: usize) -> Builder {
        Builder {
            columns: Vec::new(),
            fields: Vec::new(),
            index: HashMap::new(),
            max_keys,
            dropped_keys: false,
            raw_col: None,
            unknown: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn column(&mut self, key: &str, long: bool) -> Option<u32> {
        if let Some(&i) = self.index.get(key) {
            return Some(i);
        }
        if self.columns.len() >= self.max_keys {
            self.dropped_keys = true;
            return None;
        }
        let field = if long { None } else { Field::from_header(key) };
        if field.is_none() && !huijiao_protocol::fields::is_error_column(key) && key != RAW_COLUMN {
            self.unknown.push(key.to_string());
        }
        let i = self.columns.len() as u32;
        self.columns.push(key.to_string());
        self.fields.push(field);
        self.index.insert(key.to_string(), i);
        Some(i)
    }

    fn object(&mut self, row: u64, pairs: Vec<(String, bool, RawValue)>) {
        let mut cells = Vec::with_capacity(pairs.len());
        for (k, long, v) in pairs {
            let Some(col) = self.column(&k, long) else { continue };
            let field = self.fields[col as usize];
            cells.push(super::Cell { col, field, value: v });
        }
        if cells.iter().all(|c| c.value.is_blank()) {
            return;
        }
        self.rows.push(SourceRow { row, cells, broken: None });
    }

    fn broken(&mut self, row: u64, raw: String, e: RowError) {
        let col = match self.raw_col {
            Some(c) => c,
            None => {
                let c = self.columns.len() as u32;
                self.columns.push(RAW_COLUMN.to_string());
                self.fields.push(None);
                self.raw_col = Some(c);
                c
            }
        };
        self.rows.push(SourceRow { row, cells: vec![super::Cell { col, field: None, value: RawValue::Text(raw) }], broken: Some(e) });
    }

    fn not_object(&mut self, row: u64, raw: Vec<u8>) {
        let e = broken_row(row, "not_an_object", "该项不是 JSON 对象", "the item is not a JSON object");
        self.broken(row, text(raw), e);
    }

    /// The columns and warnings once every row is read.
    pub fn finish(&self) -> (Vec<String>, Vec<Warning>) {
        let mut warnings: Vec<Warning> = self.unknown.iter().map(|k| super::unknown_column(k)).collect();
        if self.dropped_keys {
            warnings.push(Warning {
                row: None,
                field: None,
                code: "too_many_keys".into(),
                message: zh_en(
                    &format!("文件中不同的键超过 {} 个，其余的键已忽略", self.max_keys),
                    &format!("the file has more than {} distinct keys; the rest were ignored", self.max_keys),
                ),
            });
        }
        (self.columns.clone(), warnings)
    }
}

fn malformed(e: JsonError, whole_file: bool) -> Result<Refusal, JsonError> {
    match e {
        JsonError::Syntax { what, pos } if whole_file => Ok(Refusal::new(
            "malformed_json",
            &format!("JSON 无法解析（第 {} 行第 {} 列：{}）：文件可能不完整", pos.line, pos.column, zh_of(what)),
            &format!("JSON cannot be parsed at line {} column {}: {what}", pos.line, pos.column),
        )),
        other => Err(other),
    }
}

/// A short Chinese reading of a syntax problem.
fn zh_of(what: &str) -> &'static str {
    match what {
        "the end of the text" | "an unterminated string" => "内容提前结束",
        "values nested too deeply" => "嵌套过深",
        _ => "语法错误",
    }
}

/// Reads a `.json` file and sends its rows.
pub(crate) fn read_json(r: impl Read, limits: &Limits, cancel: &Cancel, tx: &mut Sender) -> Result<Builder, Refusal> {
    let mut input = StreamInput {
        r,
        buf: vec![0; 64 * 1024],
        i: 0,
        n: 0,
        line: 1,
        column: 1,
        capturing: false,
        captured: Vec::new(),
        cancel: cancel.clone(),
        reads: 0,
    };
    let mut b = Builder::new(limits.max_keys);
    match json_body(&mut input, &mut b, limits, tx) {
        Ok(()) => Ok(b),
        Err(JsonError::TooManyRows) => Err(super::too_many_rows(limits.max_rows)),
        Err(JsonError::Cancelled) => Err(super::cancelled()),
        Err(JsonError::Io(e)) => Err(super::read_failed(&e)),
        Err(e) => Err(malformed(e, true).unwrap_or_else(|_| super::cancelled())),
    }
}

fn json_body<R: Read>(input: &mut StreamInput<R>, b: &mut Builder, limits: &Limits, tx: &mut Sender) -> JResult<()> {
    match skip_ws(input)? {
        Some(b'{') => {
            let pairs = object(input)?;
            b.object(1, pairs);
        }
        Some(b'[') => {
            input.bump();
            let mut row = 0u64;
            if skip_ws(input)? == Some(b']') {
                input.bump();
            } else {
                loop {
                    row += 1;
                    if row > limits.max_rows {
                        return Err(JsonError::TooManyRows);
                    }
                    match skip_ws(input)? {
                        Some(b'{') => {
                            let pairs = object(input)?;
                            b.object(row, pairs);
                        }
                        _ => {
                            input.capture(true);
                            skip_value(input, 1)?;
                            let raw = input.capture(false);
                            b.not_object(row, raw);
                        }
                    }
                    if b.rows.len() >= super::CHUNK && !tx.rows(std::mem::take(&mut b.rows)) {
                        return Err(JsonError::Cancelled);
                    }
                    match skip_ws(input)? {
                        Some(b',') => input.bump(),
                        Some(b']') => {
                            input.bump();
                            break;
                        }
                        _ => return syntax(input, "a missing comma or closing bracket"),
                    }
                }
            }
        }
        Some(_) | None => {
            // Valid JSON of another kind, or not JSON at all.
            if skip_value(input, 0).is_ok() && skip_ws(input)?.is_none() {
                return Err(JsonError::Syntax { what: "not an object or array", pos: input.pos() });
            }
            return syntax(input, "not JSON");
        }
    }
    if skip_ws(input)?.is_some() {
        return syntax(input, "characters after the end of the JSON value");
    }
    Ok(())
}

/// The refusal of a whole `.json` file, with `not_object_or_array` told apart.
pub(crate) fn json_refusal(r: Refusal) -> Refusal {
    if r.message.contains("not an object or array") {
        Refusal::new("not_object_or_array", "JSON 顶层应为一个对象或对象数组", "JSON must be one object or an array of objects")
    } else {
        r
    }
}

/// Reads a `.jsonl` / `.ndjson` file line by line and sends its rows.
pub(crate) fn read_jsonl(r: impl Read, limits: &Limits, cancel: &Cancel, tx: &mut Sender) -> Result<Builder, Refusal> {
    let mut r = io::BufReader::with_capacity(256 * 1024, r);
    let mut b = Builder::new(limits.max_keys);
    let mut line = Vec::new();
    let mut row = 0u64;
    let mut rows_seen = 0u64;
    loop {
        line.clear();
        let (n, oversized) = read_line(&mut r, &mut line, limits.max_record).map_err(|e| super::read_failed(&e))?;
        if n == 0 {
            break;
        }
        row += 1;
        if row % 1024 == 0 && cancel.is_cancelled() {
            return Err(super::cancelled());
        }
        if oversized {
            rows_seen += 1;
            let e = broken_row(row, "record_too_long", "该行过长，无法读取", "the line is too long to be read");
            b.broken(row, String::new(), e);
        } else {
            let body = trim(&line);
            if body.is_empty() {
                continue;
            }
            rows_seen += 1;
            let mut input = SliceInput { b: body, i: 0, line: row };
            let parsed = match skip_ws(&mut input) {
                Ok(Some(b'{')) => object(&mut input).and_then(|p| match skip_ws(&mut input)? {
                    None => Ok(Some(p)),
                    Some(_) => syntax(&input, "characters after the end of the object"),
                }),
                _ => match skip_value(&mut input, 0).and_then(|_| skip_ws(&mut input)) {
                    Ok(None) => Ok(None),
                    Ok(Some(_)) => syntax(&input, "characters after the end of the value"),
                    Err(e) => Err(e),
                },
            };
            match parsed {
                Ok(Some(pairs)) => b.object(row, pairs),
                Ok(None) => b.not_object(row, body[..body.len().min(MAX_RAW_ECHO)].to_vec()),
                Err(JsonError::Syntax { what, pos }) => {
                    let e = broken_row(
                        row,
                        "malformed_json_line",
                        &format!("该行不是有效的 JSON（第 {} 列：{}）", pos.column, zh_of(what)),
                        &format!("the line is not valid JSON at column {}: {what}", pos.column),
                    );
                    let raw = text(body[..body.len().min(MAX_RAW_ECHO)].to_vec());
                    b.broken(row, raw, e);
                }
                Err(_) => return Err(super::cancelled()),
            }
        }
        if rows_seen > limits.max_rows {
            return Err(super::too_many_rows(limits.max_rows));
        }
        if b.rows.len() >= super::CHUNK && !tx.rows(std::mem::take(&mut b.rows)) {
            return Err(super::cancelled());
        }
    }
    Ok(b)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// Reads one line (without its `\n`) keeping at most `max` bytes; returns the bytes
/// consumed and whether the line was longer.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut over = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((consumed, over));
        }
        let (chunk, done) = match buf.iter().position(|&c| c == b'\n') {
            Some(p) => (&buf[..p], Some(p + 1)),
            None => (buf, None),
        };
        if !over {
            if line.len() + chunk.len() > max {
                over = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        consumed += used;
        if done.is_some() {
            return Ok((consumed, over));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Vec<(String, RawValue)> {
        let mut i = SliceInput { b: s.as_bytes(), i: 0, line: 1 };
        assert_eq!(skip_ws(&mut i).unwrap(), Some(b'{'));
        object(&mut i).unwrap().into_iter().map(|(k, _, v)| (k, v)).collect()
    }

    #[test]
    fn duplicate_keys_are_all_kept_in_order() {
        let p = obj(r#"{"secret":"机密","secret":"公开","Secret":"绝密"}"#);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], ("secret".into(), RawValue::Text("公开".into())));
    }

    #[test]
    fn values_of_every_kind() {
        let p = obj(r#"{"a":1,"b":-2.5,"c":1e999,"d":true,"e":null,"f":["x",2],"g":{"h":[1]},"i":[[1]],"j":"\u6c34\ud83d\ude00\n"}"#);
        let v: Vec<&RawValue> = p.iter().map(|(_, v)| v).collect();
        assert_eq!(v[0], &RawValue::Int(1));
        assert_eq!(v[1], &RawValue::Float(-2.5));
        assert_eq!(v[2], &RawValue::Text("1e999".into()));
        assert_eq!(v[3], &RawValue::Bool(true));
        assert_eq!(v[4], &RawValue::Empty);
        assert_eq!(v[5], &RawValue::List(vec![RawValue::Text("x".into()), RawValue::Int(2)]));
        assert_eq!(v[6], &RawValue::Invalid("object"));
        assert_eq!(v[7], &RawValue::List(vec![RawValue::Invalid("nested list")]));
        assert_eq!(v[8], &RawValue::Text("水😀\n".into()));
    }

    #[test]
    fn long_strings_are_counted_not_kept() {
        let s = format!(r#"{{"title":"{}"}}"#, "长".repeat(MAX_CELL_CHARS + 1));
        assert_eq!(obj(&s)[0].1, RawValue::TooLong(MAX_CELL_CHARS + 1));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = format!(r#"{{"a":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let mut i = SliceInput { b: s.as_bytes(), i: 0, line: 1 };
        skip_ws(&mut i).unwrap();
        assert!(matches!(object(&mut i), Err(JsonError::Syntax { .. })));
    }

    #[test]
    fn malformed_input_never_panics() {
        for s in [
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1,",
            "{\"a\":01}",
            "{\"a\":-}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":tru}",
            "{\"a\":1.}",
            "{\"a\":1e}",
        ] {
            let mut i = SliceInput { b: s.as_bytes(), i: 0, line: 1 };
            skip_ws(&mut i).unwrap();
            assert!(object(&mut i).is_err(), "{s}");
        }
    }
}
