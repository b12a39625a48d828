//! Confidentiality markings (spec §3, "Confidentiality"): fail-closed.
//!
//! A 密级 value is normalized before it is matched — NFKC (full-width letters, circled
//! ideographs such as ㊙, compatibility ideographs), every space, zero-width and other
//! invisible formatting character removed, and the traditional or variant forms 祕, 機,
//! 絕 and 絶 read as 秘, 机 and 绝 — and any value that then contains 秘密, 机密, 绝密
//! or 涉密 is classified. Only the exact values 公开 and 内部 are stored; anything
//! else is `bad_secret`. Neither a classified nor a `bad_secret` row is ever echoed.
//!
//! When two columns or keys give 密级, the row is classified if either is; two
//! recognised values that disagree are refused (`duplicate_column`), never public.

use crate::raw::RawValue;
use crate::record::Secret;
use crate::report::{zh_en, RowError};
use unicode_normalization::UnicodeNormalization;

/// What classifies a value once it is normalized.
const MARKINGS: [&str; 4] = ["秘密", "机密", "绝密", "涉密"];

/// Whether `c` is dropped before matching: whitespace of any kind, controls, and
/// invisible formatting characters (zero-width space and joiners, word joiner, BOM,
/// soft hyphen, bidirectional marks, Mongolian vowel separator).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' | '\u{FFA0}' | '\u{2800}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Traditional and variant forms of the marking characters.
fn simplify(c: char) -> char {
    match c {
        '祕' => '秘',
        '機' => '机',
        '絕' | '絶' => '绝',
        other => other,
    }
}

/// The normalized form a marking is matched in.
pub fn normalize(s: &str) -> String {
    s.nfkc().filter(|c| !is_invisible(*c)).map(simplify).collect()
}

/// Whether a text carries a classified marking anywhere in it.
pub fn is_classified_text(s: &str) -> bool {
    // Every marking ends in 密, and under NFKC only 密 itself or a compatibility
    // ideograph can become 密: without one of them no normalization is needed.
    if !s.chars().any(|c| c == '密' || matches!(c, '\u{F900}'..='\u{FAFF}' | '\u{2F800}'..='\u{2FA1F}')) {
        return false;
    }
    let n = normalize(s);
    MARKINGS.iter().any(|m| n.contains(m))
}

/// Whether any text of a file carries a classified marking (spec v1.2 §3, the whole
/// file): as [`is_classified_text`], except that 秘密 inside 技术秘密 or 商业秘密 (kinds of
/// intellectual property, 知识产权) is not one.
///
/// Every marking ends in 密 once normalized, and only 密 or a compatibility ideograph
/// becomes 密: so only the text just before each such character is normalized — back
/// to its [`WINDOW`]th visible character (invisible ones are dropped by the
/// normalization, so however many an evasion puts in, the marking and a 技术/商业
/// before it are inside) — not the whole text, which in a register full of 技术秘密
/// patents is most of the file.
pub fn file_text_is_marked(s: &str) -> bool {
    let mut visible: std::collections::VecDeque<usize> = std::collections::VecDeque::with_capacity(WINDOW + 1);
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '密' || matches!(c, '\u{F900}'..='\u{FAFF}' | '\u{2F800}'..='\u{2FA1F}') {
            let start = if visible.len() < WINDOW { 0 } else { visible[0] };
            // One character more, for anything that composes with this one.
            let end = chars.peek().map_or(s.len(), |(j, n)| j + n.len_utf8());
            if window_is_marked(&s[start..end]) {
                return true;
            }
        }
        if !is_invisible(c) {
            if visible.len() == WINDOW {
                visible.pop_front();
            }
            visible.push_back(i);
        }
    }
    false
}

/// Visible characters before a 密 that [`file_text_is_marked`] normalizes: the longest
/// marking with 技术 or 商业 before it is four, NFKC never shortens a run of CJK
/// characters, and the margin covers combining marks that compose.
const WINDOW: usize = 32;

fn window_is_marked(s: &str) -> bool {
    let n = normalize(s).replace("技术秘密", "技术□").replace("商业秘密", "商业□");
    MARKINGS.iter().any(|m| n.contains(m))
}

/// Whether a cell's value carries a classified marking (only text can).
pub fn value_is_marked(v: &RawValue) -> bool {
    match v {
        RawValue::Text(s) => is_classified_text(s),
        RawValue::List(items) => items.iter().any(value_is_marked),
        _ => false,
    }
}

/// The verdict on a row's 密级 cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No 密级 value at all (a withdrawal needs none; an upsert misses a field).
    Missing,
    Level(Secret),
    Classified,
    /// A value that is neither a recognised level nor a marking.
    Bad,
    /// Two recognised values that disagree.
    Conflict,
}

/// The text a secrecy check reads from a cell: lists joined, anything else as shown.
fn text_of(v: &RawValue) -> Option<String> {
    match v {
        RawValue::Empty => None,
        RawValue::Text(s) if s.trim().is_empty() => None,
        RawValue::List(items) => {
            let parts: Vec<String> = items.iter().filter_map(text_of).collect();
            (!parts.is_empty()).then(|| parts.join(";"))
        }
        other => Some(other.display()),
    }
}

/// Judges every cell that maps to 密级. Fail-closed: a marking in any of them
/// classifies the row; a value of a kind that shows no text (an object, an error
/// cell, an over-long cell) is `Bad`, never public.
pub fn judge<'a>(values: impl IntoIterator<Item = &'a RawValue>) -> Verdict {
    let mut level = None;
    let mut bad = false;
    let mut conflict = false;
    for v in values {
        let text = match v {
            RawValue::Invalid(_) | RawValue::TooLong(_) => {
                bad = true;
                continue;
            }
            other => match text_of(other) {
                Some(t) => t,
                None => continue,
            },
        };
        if is_classified_text(&text) {
            return Verdict::Classified;
        }
        let this = match text.trim() {
            "公开" => Secret::Public,
            "内部" => Secret::Internal,
            _ => {
                bad = true;
                continue;
            }
        };
        match level {
            Some(l) if l != this => conflict = true,
            _ => level = Some(this),
        }
    }
    if bad {
        Verdict::Bad
    } else if conflict {
        Verdict::Conflict
    } else {
        level.map_or(Verdict::Missing, Verdict::Level)
    }
}

/// The verdict on a row that could not be parsed into columns (a stray comma, an
/// unterminated quote, a malformed JSON line): its cells cannot be trusted to be in
/// their columns, so every cell is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenVerdict {
    /// A marking somewhere in the row.
    Classified,
    /// No cell reads exactly 公开 or 内部: what the row's 密级 was cannot be known.
    Unverified,
    /// No marking, and a recognised level is present: the row may be echoed.
    Echo,
}

pub fn judge_broken<'a>(texts: impl IntoIterator<Item = &'a str>) -> BrokenVerdict {
    let mut level_seen = false;
    for t in texts {
        if is_classified_text(t) {
            return BrokenVerdict::Classified;
        }
        level_seen |= matches!(t.trim(), "公开" | "内部");
    }
    if level_seen {
        BrokenVerdict::Echo
    } else {
        BrokenVerdict::Unverified
    }
}

fn secret_error(row: u64, code: &str, zh: &str, en: &str) -> RowError {
    RowError { row, reg_no: None, field: Some("secret".into()), code: code.into(), message: zh_en(zh, en) }
}

/// The error for a row marked 秘密, 机密, 绝密 or 涉密: row and field only.
pub fn classified_error(row: u64) -> RowError {
    secret_error(row, "classified", "涉密成果不在本系统登记", "classified achievements are not registered in this system")
}

/// The error for a 密级 that is not a recognised value; the value is not echoed.
pub fn bad_secret_error(row: u64) -> RowError {
    secret_error(
        row,
        "bad_secret",
        "密级应为 公开、内部、秘密、机密 或 绝密；该行内容不回显",
        "secret must be one of 公开, 内部, 秘密, 机密, 绝密; the row is not echoed",
    )
}

/// The error for two 密级 columns that disagree.
pub fn conflict_error(row: u64) -> RowError {
    secret_error(row, "duplicate_column", "两个密级列的值不一致；该行内容不回显", "two secret columns disagree; the row is not echoed")
}

/// Whether an error is one of the secrecy refusals whose row must never be echoed.
pub fn forbids_echo(e: &RowError) -> bool {
    e.field.as_deref() == Some("secret") && matches!(e.code.as_str(), "classified" | "bad_secret" | "duplicate_column")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }

    #[test]
    fn a_files_text_is_marked_unless_the_secret_is_intellectual_property() {
        assert!(file_text_is_marked("备注：本成果实为机密"));
        assert!(file_text_is_marked("机\u{2800}密") && is_classified_text("机\u{2800}密"), "a Braille blank hides nothing");
        assert!(!file_text_is_marked("知识产权：技术秘密:JSMM-1；商业秘密"));
        assert!(file_text_is_marked("技术秘密；另有秘密资料"));
        assert!(!file_text_is_marked("保密期限 5 年，密码学"));
        // However many invisible characters come between, and however far into a long text.
        let hidden = format!("{}机{}密", "技术秘密；".repeat(5000), "\u{200B}".repeat(500));
        assert!(file_text_is_marked(&hidden));
        assert!(!file_text_is_marked(&format!("技术{}秘密", "\u{200B}".repeat(500))), "技术 before it, invisibles between");
        assert!(
            file_text_is_marked(&format!("㊙{}\u{FAB5}x", "\u{FEFF}".repeat(100)))
                == window_is_marked(&format!("㊙{}\u{FAB5}x", "\u{FEFF}".repeat(100)))
        );
    }

    /// The windowed scan says what normalizing the whole text would, on random texts
    /// of the characters that matter (markings' parts, 技术 and 商业, invisible ones, a
    /// combining mark, compatibility and circled ideographs, filler).
    #[test]
    fn the_windowed_scan_agrees_with_normalizing_the_whole_text() {
        let alphabet: Vec<char> = "秘密机绝涉技术商业祕機絕㊙\u{200B}\u{FEFF} \u{0301}\u{F9B1}\u{FAB5}甲乙，a1".chars().collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let len = (x % 60) as usize;
            let text: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let whole = s_has(&text);
            assert_eq!(file_text_is_marked(&text), whole, "{text:?}");
        }
        fn s_has(s: &str) -> bool {
            let n = normalize(s).replace("技术秘密", "技术□").replace("商业秘密", "商业□");
            MARKINGS.iter().any(|m| n.contains(m))
        }
    }

    #[test]
    fn markings_in_any_disguise_are_classified() {
        for s in [
            "秘密",
            "机密",
            "绝密",
            "涉密",
            "机密★10年",
            "内部（机密）",
            "祕密",
            "機密",
            "絕密",
            "絶密",
            "秘 密",
            "机\u{3000}密",
            "机\u{200B}密",
            "机\u{FEFF}密",
            "机\u{00AD}密",
            "绝\n密",
            "㊙密",
            "涉 密 项 目",
        ] {
            assert_eq!(judge([&t(s)]), Verdict::Classified, "{s:?}");
        }
    }

    #[test]
    fn only_exact_levels_are_stored() {
        assert_eq!(judge([&t(" 公开 ")]), Verdict::Level(Secret::Public));
        assert_eq!(judge([&t("内部")]), Verdict::Level(Secret::Internal));
        for s in ["secret", "confidential", "公 开", "public", "公开的", "0"] {
            assert_eq!(judge([&t(s)]), Verdict::Bad, "{s:?}");
        }
        assert_eq!(judge([&RawValue::Empty]), Verdict::Missing);
        assert_eq!(judge([]), Verdict::Missing);
        assert_eq!(judge([&RawValue::Invalid("object")]), Verdict::Bad);
        assert_eq!(judge([&RawValue::TooLong(20_000)]), Verdict::Bad);
    }

    #[test]
    fn two_columns_fail_closed() {
        assert_eq!(judge([&t("公开"), &t("机密")]), Verdict::Classified);
        assert_eq!(judge([&t("机密"), &t("公开")]), Verdict::Classified);
        assert_eq!(judge([&t("公开"), &t("Secret")]), Verdict::Bad);
        assert_eq!(judge([&t("公开"), &t("内部")]), Verdict::Conflict);
        assert_eq!(judge([&t("公开"), &t("公开")]), Verdict::Level(Secret::Public));
        assert_eq!(judge([&t("公开"), &RawValue::Empty]), Verdict::Level(Secret::Public));
        assert_eq!(judge([&RawValue::List(vec![t("机密")])]), Verdict::Classified);
    }

    #[test]
    fn broken_rows_are_searched_whole() {
        assert_eq!(judge_broken(["a", "机 密", "公开"]), BrokenVerdict::Classified);
        assert_eq!(judge_broken(["a", "公开"]), BrokenVerdict::Echo);
        assert_eq!(judge_broken(["a", "b"]), BrokenVerdict::Unverified);
    }
}
