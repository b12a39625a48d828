//! JSON (one object or an array of objects) and JSONL / NDJSON (one object per line).

use super::{broken_row, text, unknown_column, SourceRow, Table};
use huijiao_protocol::fields::Field;
use huijiao_protocol::report::{Refusal, Warning};
use huijiao_protocol::validate::{format_float, RawRow, RawValue};
use serde_json::Value;

/// The column of `NAME.rejected.csv` that carries a JSON line that could not be parsed.
pub const RAW_COLUMN: &str = "原始内容 (raw)";

pub fn read_json(bytes: &[u8]) -> Result<Table, Refusal> {
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
        Value::Object(o) => b.object(1, o),
        Value::Array(items) => {
            for (i, v) in items.into_iter().enumerate() {
                let row = i as u64 + 1;
                match v {
                    Value::Object(o) => b.object(row, o),
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
    Ok(b.finish(encoding))
}

pub fn read_jsonl(bytes: &[u8]) -> Result<Table, Refusal> {
    let (text, encoding) = text::decode(bytes)?;
    let mut b = Builder::default();
    for (i, line) in text.lines().enumerate() {
        let row = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(obj)) => b.object(row, obj),
            Ok(other) => b.not_object(row, other.to_string()),
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
    }
    Ok(b.finish(encoding))
}

/// Collects rows and the union of keys (for `NAME.rejected.csv` columns).
#[derive(Default)]
struct Builder {
    keys: Vec<String>,
    rows: Vec<(SourceRow, Vec<(String, String)>)>,
    unknown: Vec<String>,
    has_raw: bool,
}

impl Builder {
    fn object(&mut self, row: u64, obj: serde_json::Map<String, Value>) {
        let mut raw = RawRow { row, cells: Vec::with_capacity(obj.len()) };
        let mut given = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            if !self.keys.contains(&k) {
                self.keys.push(k.clone());
            }
            given.push((k.clone(), display(&v)));
            match Field::from_header(&k) {
                Some(f) if !raw.cells.iter().any(|(g, _)| *g == f) => raw.cells.push((f, to_raw(v))),
                Some(_) => {}
                None => {
                    if !self.unknown.contains(&k) {
                        self.unknown.push(k);
                    }
                }
            }
        }
        if raw.is_blank() && given.iter().all(|(_, v)| v.trim().is_empty()) {
            return;
        }
        self.rows.push((SourceRow { row, raw, given: Vec::new(), broken: None }, given));
    }

    fn not_object(&mut self, row: u64, text: String) {
        let e = broken_row(row, "not_an_object", "该项不是 JSON 对象", "the item is not a JSON object");
        self.broken(row, text, e);
    }

    fn broken(&mut self, row: u64, text: String, e: huijiao_protocol::RowError) {
        self.has_raw = true;
        self.rows.push((
            SourceRow { row, raw: RawRow { row, cells: Vec::new() }, given: Vec::new(), broken: Some(e) },
            vec![(RAW_COLUMN.to_string(), text)],
        ));
    }

    fn finish(mut self, encoding: &'static str) -> Table {
        if self.has_raw {
            self.keys.push(RAW_COLUMN.to_string());
        }
        let keys = self.keys;
        let rows = self
            .rows
            .into_iter()
            .map(|(mut r, given)| {
                r.given = keys.iter().map(|k| given.iter().find(|(g, _)| g == k).map(|(_, v)| v.clone()).unwrap_or_default()).collect();
                r
            })
            .collect();
        let warnings: Vec<Warning> = self.unknown.iter().map(|k| unknown_column(k)).collect();
        Table { encoding: Some(encoding), columns: keys, rows, warnings, header_fields: None }
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
