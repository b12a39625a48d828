//! What a reader hands to validation: a cell as found ([`RawValue`]) and a row of the
//! fields a reader recognised ([`RawRow`]), before any rule of the format is applied.

use crate::date::Date;
use crate::fields::Field;

/// A cell as a reader found it, before any rule is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// An empty cell or a JSON null.
    Empty,
    Text(String),
    /// An exact integer (JSON integer, an XLSX integer cell).
    Int(i64),
    /// A floating-point number (JSON fraction, an XLSX numeric cell).
    Float(f64),
    Bool(bool),
    /// An Excel date cell.
    Date(Date),
    /// A JSON array.
    List(Vec<RawValue>),
    /// A value of a kind no field takes (a JSON object, an Excel error cell); names the kind.
    Invalid(&'static str),
    /// A cell longer than [`MAX_CELL_CHARS`] (its length in characters): the reader
    /// does not keep it, and the row is refused without echoing it.
    TooLong(usize),
}

/// The longest cell a row may hold, in any column, known or not (spec §3).
pub const MAX_CELL_CHARS: usize = 10_000;

impl RawValue {
    /// The value as a clerk would read it in a cell, for `NAME.rejected.csv`.
    pub fn display(&self) -> String {
        match self {
            RawValue::Empty | RawValue::Invalid(_) | RawValue::TooLong(_) => String::new(),
            RawValue::Text(s) => s.clone(),
            RawValue::Int(i) => i.to_string(),
            RawValue::Float(f) => format_float(*f),
            RawValue::Bool(b) => b.to_string(),
            RawValue::Date(d) => d.to_string(),
            RawValue::List(items) => items.iter().map(RawValue::display).collect::<Vec<_>>().join(";"),
        }
    }

    /// An empty cell, or text of only whitespace.
    pub fn is_blank(&self) -> bool {
        match self {
            RawValue::Empty => true,
            RawValue::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }
}

/// Shortest text that reads back as the same number; integral values without `.0`.
pub fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// One data row with the fields a reader recognised, numbered as the user sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRow {
    pub row: u64,
    pub cells: Vec<(Field, RawValue)>,
}

impl RawRow {
    /// A row whose every cell is empty is skipped silently (spec §1).
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(|(_, v)| v.is_blank())
    }

    pub(crate) fn get(&self, f: Field) -> Option<&RawValue> {
        self.cells.iter().find(|(g, _)| *g == f).map(|(_, v)| v).filter(|v| !v.is_blank())
    }
}
