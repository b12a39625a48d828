//! The CLI commands; `main.rs` parses arguments and calls these.

pub mod check;
pub mod query;
pub mod recover;
pub mod setup;
pub mod status;

/// `s` padded with spaces to `width` terminal columns (CJK characters take two).
pub fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}
