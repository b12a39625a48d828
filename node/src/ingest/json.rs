//! JSON (one object or an array of objects) and JSONL / NDJSON (one object per line).

use super::{broken_row, text, unknown_column, Piece, SourceRow, Stream, Table, Tail, CHUNK};
use huijiao_protocol::fields::Field;
use huijiao_protocol::report::{Refusal, Warning};
use huijiao_protocol::validate::{format_float, RawRow, RawValue};
use serde_json::Value;

/// The column of `NAME.rejected.csv` that carries a JSON line that could not be parsed.
pub const RAW_COLUMN: &str = "原始内容 (raw)";

pub fn read_json(bytes: Vec<u8>) -> Result<Table, Refusal> {
    let (text, encoding) = text::decode(bytes)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Refusal::new(
            "malformed_json",
            &format!("JSON 无法解析（第 {} 行第 {} 列）：文件可能不完整", e.line(), e.column()),
            &format!("JSON cannot be parsed at line {} column {}: {e}", e.line(), e.column()),
        )
    })?;
    let mut b = Builder::default();
    match value {
        Value::Object(o) => b.object(1, o.into_iter().collect()),
        Value::Array(items) => {
            for (i, v) in items.into_iter().enumerate() {
                let row = i as u64 + 1;
                match v {
                    Value::Object(o) => b.object(row, o.into_iter().collect()),
                    other => b.not_object(row, other.to_string()),
                }
            }
        }
        _ => {
            return Err(Refusal::new(
                "not_object_or_array",
                "JSON 顶层应为一个对象或对象数组",
                "JSON must be one object or an array of objects",
            ))
        }
    }
    Ok(b.finish(Some(encoding)))
}

/// Decodes and parses JSON Lines on a thread of their own, handing rows over in chunks.
pub(crate) fn stream_jsonl(bytes: Vec<u8>) -> Stream {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let done = std::thread::Builder::new()
        .name("jsonl-reader".into())
        .spawn(move || {
            let mut b = Builder::default();
            let text = match text::decode(bytes) {
                Ok((text, encoding)) => {
                    let _ = tx.send(Piece::Start { encoding, header: None });
                    text
                }
                Err(r) => {
                    let _ = tx.send(Piece::Refused(r));
                    return Tail { columns: Vec::new(), column_fields: Vec::new(), warnings: Vec::new() };
                }
            };
            for (i, line) in text.lines().enumerate() {
                let row = i as u64 + 1;
                if line.trim().is_empty() {
                    continue;
                }
                // Straight into (key, value) pairs: no map of the whole object is built.
                match serde_json::from_str::<Pairs>(line) {
                    Ok(Pairs(pairs)) => b.object(row, pairs),
                    Err(e) if e.classify() == serde_json::error::Category::Data => b.not_object(row, line.trim().to_string()),
                    Err(e) => b.broken(
                        row,
                        line.to_string(),
                        broken_row(
                            row,
                            "malformed_json_line",
                            &format!("该行不是有效的 JSON（第 {} 列）", e.column()),
                            &format!("the line is not valid JSON: {e}"),
                        ),
                    ),
                }
                if b.rows.len() >= CHUNK && tx.send(Piece::Rows(std::mem::take(&mut b.rows))).is_err() {
                    break;
                }
            }
            if !b.rows.is_empty() {
                let _ = tx.send(Piece::Rows(std::mem::take(&mut b.rows)));
            }
            let t = b.finish(Some("utf-8"));
            Tail { columns: t.columns, column_fields: t.column_fields, warnings: t.warnings }
        })
        .expect("can start a reader thread");
    Stream { rx, done }
}

/// Collects rows and the union of keys (for `NAME.rejected.csv` columns).
#[derive(Default)]
struct Builder {
    keys: Vec<String>,
    /// The field of each key in `keys`.
    fields: Vec<Option<Field>>,
    rows: Vec<SourceRow>,
    unknown: Vec<String>,
    has_raw: bool,
}

impl Builder {
    /// The column of a key; `hint` is where the key usually is (rows of one file
    /// mostly list their keys in the same order).
    fn column(&mut self, key: &str, hint: usize) -> usize {
        if self.keys.get(hint).is_some_and(|k| k == key) {
            return hint;
        }
        match self.keys.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key.to_string());
                self.fields.push(Field::from_header(key));
                self.keys.len() - 1
            }
        }
    }

    fn object(&mut self, row: u64, obj: Vec<(String, Value)>) {
        let mut raw = RawRow { row, cells: Vec::with_capacity(obj.len()) };
        let mut extra = Vec::new();
        for (i, (k, v)) in obj.into_iter().enumerate() {
            let col = self.column(&k, i);
            match self.fields[col] {
                Some(f) if !raw.cells.iter().any(|(g, _)| *g == f) => raw.cells.push((f, to_raw(v))),
                Some(_) => extra.push((col, display(&v))),
                None => {
                    if !self.unknown.contains(&k) {
                        self.unknown.push(k);
                    }
                    extra.push((col, display(&v)));
                }
            }
        }
        if raw.is_blank() && extra.iter().all(|(_, v)| v.trim().is_empty()) {
            return;
        }
        self.rows.push(SourceRow { row, raw, extra, broken: None });
    }

    fn not_object(&mut self, row: u64, text: String) {
        let e = broken_row(row, "not_an_object", "该项不是 JSON 对象", "the item is not a JSON object");
        self.broken(row, text, e);
    }

    /// A row that could not be parsed: its text goes to the raw column (`usize::MAX`
    /// until the columns are final, see `Parsed::given`).
    fn broken(&mut self, row: u64, text: String, e: huijiao_protocol::RowError) {
        self.has_raw = true;
        self.rows.push(SourceRow { row, raw: RawRow { row, cells: Vec::new() }, extra: vec![(usize::MAX, text)], broken: Some(e) });
    }

    fn finish(mut self, encoding: Option<&'static str>) -> Table {
        // The raw-text column, when needed, comes last.
        if self.has_raw {
            self.keys.push(RAW_COLUMN.to_string());
        }
        let column_fields = self.keys.iter().map(|k| if k == RAW_COLUMN { None } else { Field::from_header(k) }).collect();
        let warnings: Vec<Warning> = self.unknown.iter().map(|k| unknown_column(k)).collect();
        Table { encoding, columns: self.keys, column_fields, rows: self.rows, warnings, header_fields: None }
    }
}

/// A JSON object as its (key, value) pairs in order.
struct Pairs(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(32));
                while let Some(pair) = m.next_entry()? {
                    v.push(pair);
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(V)
    }
}

fn to_raw(v: Value) -> RawValue {
    match v {
        Value::Null => RawValue::Empty,
        Value::Bool(b) => RawValue::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RawValue::Int(i),
            None => RawValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => RawValue::Text(s),
        Value::Array(items) => RawValue::List(
            items
                .into_iter()
                .map(|v| match v {
                    Value::Array(_) => RawValue::Invalid("nested list"),
                    other => to_raw(other),
                })
                .collect(),
        ),
        Value::Object(_) => RawValue::Invalid("object"),
    }
}

/// A JSON value as a spreadsheet cell: lists joined with `;`.
fn display(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_i64().map(|i| i.to_string()).unwrap_or_else(|| format_float(n.as_f64().unwrap_or(0.0))),
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}
