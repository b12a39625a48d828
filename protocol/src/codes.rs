//! Names for the codes of two fields, from tables shipped inside the binary: GB/T
//! 13745-2009 first-level disciplines (`data/gbt13745-2009-level1.tsv`, for 学科分类) and
//! GB/T 4754-2017 sections and divisions (`data/gbt4754-2017-divisions.tsv`, for
//! 应用行业). Pages show a code with its name; forms offer the names to choose from.

use std::collections::HashMap;
use std::sync::OnceLock;

const DISCIPLINES_TSV: &str = include_str!("../data/gbt13745-2009-level1.tsv");
const INDUSTRIES_TSV: &str = include_str!("../data/gbt4754-2017-divisions.tsv");

/// `(code, name)` rows of a table, comments and blank lines skipped.
fn rows(tsv: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    tsv.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(|l| {
        let mut cols = l.split('\t');
        Some((cols.next()?.trim(), cols.next()?.trim()))
    })
}

fn map(tsv: &'static str) -> HashMap<&'static str, &'static str> {
    rows(tsv).collect()
}

/// Every first-level discipline, `(code, name)`, in code order.
pub fn disciplines() -> Vec<(&'static str, &'static str)> {
    rows(DISCIPLINES_TSV).collect()
}

/// Every industry section and division, `(code, name)`, in table order (a section
/// before its divisions).
pub fn industries() -> Vec<(&'static str, &'static str)> {
    rows(INDUSTRIES_TSV).collect()
}

/// The name of a discipline code: its first-level discipline's (a 5- or 7-digit code
/// belongs to the first-level discipline of its first 3 digits).
pub fn discipline_name(code: &str) -> Option<&'static str> {
    static M: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    let m = M.get_or_init(|| map(DISCIPLINES_TSV));
    m.get(code.get(..3)?).copied()
}

/// The name of an industry code: the section's for a letter, the division's for a
/// letter and two or more digits (`C2710` is named by its division `C27`).
pub fn industry_name(code: &str) -> Option<&'static str> {
    static M: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    let m = M.get_or_init(|| map(INDUSTRIES_TSV));
    let key = if code.len() >= 3 { code.get(..3)? } else { code };
    m.get(key).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_by_their_first_level_or_division() {
        assert_eq!(discipline_name("110"), Some("数学"));
        assert_eq!(discipline_name("52010"), discipline_name("520"));
        assert!(discipline_name("520").is_some());
        assert_eq!(discipline_name("2101010"), discipline_name("210"));
        assert_eq!(discipline_name("99"), None);
        assert_eq!(industry_name("C"), Some("制造业"));
        assert!(industry_name("C27").is_some_and(|n| n.contains("医药")), "{:?}", industry_name("C27"));
        assert_eq!(industry_name("C2710"), industry_name("C27"));
        assert_eq!(industry_name("Z"), None);
        assert_eq!(industries().iter().filter(|(c, _)| c.len() == 1).count(), 20, "sections A–T");
        assert!(disciplines().len() > 50);
    }
}
