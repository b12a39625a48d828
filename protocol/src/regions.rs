//! The GB/T 2260 administrative division table and the jurisdiction rule of spec §4.
//!
//! A copy of the table ships inside the binary (`data/gb2260-regions.tsv`); an operator
//! may load a newer one with [`RegionTable::parse`] because codes change every year.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The table published on 2021-01-04, embedded so a node works without any data files.
pub const EMBEDDED_TSV: &str = include_str!("../data/gb2260-regions.tsv");

/// The national node's id; its jurisdiction covers every code.
pub const NATIONAL: &str = "000000";

/// The tier of a unit, as the table's `level` column names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    National,
    Province,
    Prefecture,
    County,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::National => "national",
            Level::Province => "province",
            Level::Prefecture => "prefecture",
            Level::County => "county",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub code: String,
    pub name: String,
    pub level: Level,
    /// The code of the enclosing unit; empty for the national row.
    pub parent: String,
}

/// A table could not be parsed; names the line.
#[derive(Debug, thiserror::Error)]
#[error("region table line {line}: {reason}")]
pub struct RegionTableError {
    pub line: usize,
    pub reason: String,
}

/// The administrative division codes known to a node.
#[derive(Debug, Clone)]
pub struct RegionTable {
    by_code: HashMap<String, Region>,
}

impl RegionTable {
    /// The embedded table, parsed once per process.
    pub fn embedded() -> &'static RegionTable {
        static TABLE: OnceLock<RegionTable> = OnceLock::new();
        TABLE.get_or_init(|| RegionTable::parse(EMBEDDED_TSV).expect("embedded region table is valid"))
    }

    /// Parses the TSV form: a header line `code name level parent`, then one row per unit.
    pub fn parse(tsv: &str) -> Result<RegionTable, RegionTableError> {
        let mut by_code = HashMap::new();
        for (i, line) in tsv.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || (i == 0 && line.starts_with("code")) {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 3 {
                return Err(RegionTableError { line: line_no, reason: format!("expected 4 tab-separated columns, found {}", cols.len()) });
            }
            let code = cols[0].trim();
            if !is_six_digits(code) {
                return Err(RegionTableError { line: line_no, reason: format!("`{code}` is not a 6-digit code") });
            }
            let level = match cols[2].trim() {
                "national" => Level::National,
                "province" => Level::Province,
                "prefecture" => Level::Prefecture,
                "county" => Level::County,
                other => return Err(RegionTableError { line: line_no, reason: format!("unknown level `{other}`") }),
            };
            let region = Region {
                code: code.to_string(),
                name: cols[1].trim().to_string(),
                level,
                parent: cols.get(3).map(|s| s.trim().to_string()).unwrap_or_default(),
            };
            by_code.insert(region.code.clone(), region);
        }
        by_code.entry(NATIONAL.to_string()).or_insert_with(|| Region {
            code: NATIONAL.to_string(),
            name: "中华人民共和国".to_string(),
            level: Level::National,
            parent: String::new(),
        });
        if by_code.len() < 2 {
            return Err(RegionTableError { line: 0, reason: "the table holds no codes".to_string() });
        }
        Ok(RegionTable { by_code })
    }

    pub fn get(&self, code: &str) -> Option<&Region> {
        self.by_code.get(code)
    }

    pub fn contains(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    /// Every unit, in code order.
    pub fn all(&self) -> Vec<&Region> {
        let mut v: Vec<&Region> = self.by_code.values().collect();
        v.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        v
    }

    /// The units called `name`, or when none is, those whose name starts with it
    /// (`湖北` finds 湖北省), in code order.
    pub fn find_by_name(&self, name: &str) -> Vec<&Region> {
        let exact: Vec<&Region> = self.all().into_iter().filter(|r| r.name == name).collect();
        if !exact.is_empty() || name.is_empty() {
            return exact;
        }
        self.all().into_iter().filter(|r| r.name.starts_with(name)).collect()
    }

    /// All codes of one level, sorted.
    pub fn codes_of(&self, level: Level) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_code.values().filter(|r| r.level == level).map(|r| r.code.as_str()).collect();
        v.sort_unstable();
        v
    }
}

pub fn is_six_digits(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The tier a node id stands for, by the shape of the code (spec §4).
pub fn node_level(node: &str) -> Level {
    if node == NATIONAL {
        Level::National
    } else if node.ends_with("0000") {
        Level::Province
    } else if node.ends_with("00") {
        Level::Prefecture
    } else {
        Level::County
    }
}

/// The code prefix a node's jurisdiction covers: `""` for national, `XX` for a province,
/// `XXYY` for a prefecture and the whole code for a county-level node.
pub fn jurisdiction_prefix(node: &str) -> &str {
    match node_level(node) {
        Level::National => "",
        Level::Province => &node[..2],
        Level::Prefecture => &node[..4],
        Level::County => node,
    }
}

/// Whether `code` lies inside the jurisdiction of `node` (spec §4).
pub fn covers(node: &str, code: &str) -> bool {
    is_six_digits(code) && code.starts_with(jurisdiction_prefix(node))
}

/// Whether `child`'s whole jurisdiction lies inside `parent`'s, and is strictly smaller.
pub fn is_below(parent: &str, child: &str) -> bool {
    parent != child && covers(parent, child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_has_every_tier() {
        let t = RegionTable::embedded();
        assert_eq!(t.codes_of(Level::Province).len(), 34);
        assert_eq!(t.codes_of(Level::Prefecture).len(), 333);
        assert_eq!(t.codes_of(Level::County).len(), 2846);
        assert_eq!(t.get("110105").unwrap().name, "朝阳区");
        assert!(!t.contains("110100"), "grouping codes are not units");
    }

    #[test]
    fn jurisdiction_follows_the_code_shape() {
        assert!(covers("000000", "420102"));
        assert!(covers("420000", "429004"), "a 省直辖县 is under its province");
        assert!(covers("420100", "420102"));
        assert!(!covers("420100", "420202"));
        assert!(covers("420102", "420102"));
        assert!(!covers("420102", "420103"));
        assert!(!covers("420000", "4201"), "only six-digit codes");
        assert!(is_below("420000", "420100"));
        assert!(!is_below("420100", "420100"));
        assert!(!is_below("420100", "420000"));
    }

    #[test]
    fn a_newer_table_can_be_loaded_and_errors_name_the_line() {
        let t = RegionTable::parse("code\tname\tlevel\tparent\n110000\t北京市\tprovince\t000000\n").unwrap();
        assert!(t.contains("110000") && t.contains(NATIONAL));
        let e = RegionTable::parse("code\tname\tlevel\tparent\n11000\tx\tprovince\t000000\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
