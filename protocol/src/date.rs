//! Calendar dates without a time zone library.
//!
//! China keeps one time zone, UTC+8, and every date in the spec (登记日期, 延期公开至,
//! the `processed/YYYY-MM-DD/` folders) is a Beijing-time calendar date, so "today"
//! is computed from the Unix clock with a fixed +8 h offset.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Beijing time offset from UTC, in milliseconds.
pub const CHINA_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// A proleptic Gregorian calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// Why a date value was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateError {
    /// The text is in none of the accepted forms.
    Format,
    /// The form is right but no such day exists (2023-02-30).
    Impossible,
}

pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A date if the day exists.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Days since 1970-01-01 (negative before), after Howard Hinnant's `days_from_civil`.
    pub fn to_days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The inverse of [`Date::to_days`].
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        Date { year: (y + i64::from(m <= 2)) as i32, month: m, day: d }
    }

    /// The Beijing-time calendar date of a Unix timestamp in milliseconds.
    pub fn from_unix_ms_china(ms: i64) -> Date {
        Date::from_days((ms + CHINA_OFFSET_MS).div_euclid(86_400_000))
    }

    /// An Excel serial day number (1900 date system) as a date. Excel counts the
    /// non-existent 1900-02-29 as day 60, so serials from 61 on are one day ahead.
    pub fn from_excel_serial(serial: f64) -> Option<Date> {
        if !serial.is_finite() || !(1.0..2_958_466.0).contains(&serial) {
            return None;
        }
        let whole = serial.floor() as i64;
        if whole == 60 {
            return None;
        }
        let days_from_1899_12_31 = if whole > 60 { whole - 1 } else { whole };
        // 1899-12-31 is day -25568 relative to 1970-01-01.
        Some(Date::from_days(days_from_1899_12_31 - 25_568))
    }

    /// Parses `YYYY-MM-DD`, `YYYY/M/D`, `YYYY.M.D` or `YYYY年M月D日`, months and days
    /// with or without a leading zero, optionally followed by a time of day (which
    /// Excel appends when a date cell is exported: `2024/3/5 0:00`). The time is ignored.
    pub fn parse(text: &str) -> Result<Date, DateError> {
        let s = text.trim();
        // YYYYMMDD, eight digits and nothing else.
        if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
            let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().map_err(|_| DateError::Format);
            let (year, month, day) = (n(0..4)? as i32, n(4..6)? as u8, n(6..8)? as u8);
            return Date::new(year, month, day).ok_or(DateError::Impossible);
        }
        let (y, rest) = take_digits(s);
        if y.len() != 4 {
            return Err(DateError::Format);
        }
        let (sep, rest) = take_sep(rest).ok_or(DateError::Format)?;
        let (m, rest) = take_digits(rest);
        if m.is_empty() || m.len() > 2 {
            return Err(DateError::Format);
        }
        let (sep2, rest) = take_sep(rest).ok_or(DateError::Format)?;
        let (d, rest) = take_digits(rest);
        if d.is_empty() || d.len() > 2 {
            return Err(DateError::Format);
        }
        let rest = match (sep, sep2) {
            ('年', '月') => rest.strip_prefix('日').ok_or(DateError::Format)?,
            ('-', '-') | ('/', '/') | ('.', '.') => rest,
            _ => return Err(DateError::Format),
        };
        if !is_time_of_day(rest) {
            return Err(DateError::Format);
        }
        let (year, month, day): (i32, u8, u8) = (
            y.parse().map_err(|_| DateError::Format)?,
            m.parse().map_err(|_| DateError::Format)?,
            d.parse().map_err(|_| DateError::Format)?,
        );
        Date::new(year, month, day).ok_or(DateError::Impossible)
    }

    /// This date `years` later, clamped to the end of the month (Feb 29 → Feb 28).
    pub fn add_years(self, years: i32) -> Date {
        let year = self.year + years;
        let day = self.day.min(days_in_month(year, self.month));
        Date { year, month: self.month, day }
    }
}

fn take_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

fn take_sep(s: &str) -> Option<(char, &str)> {
    let c = s.chars().next()?;
    matches!(c, '-' | '/' | '.' | '年' | '月').then(|| (c, &s[c.len_utf8()..]))
}

/// Empty, or whitespace followed by `H:MM` or `H:MM:SS` (an optional fraction of seconds).
fn is_time_of_day(rest: &str) -> bool {
    if rest.is_empty() {
        return true;
    }
    let t = rest.trim_start_matches([' ', 'T']);
    if t.len() == rest.len() {
        return false;
    }
    let mut parts = t.split(':');
    let ok_num = |p: Option<&str>, max: u32| {
        p.is_some_and(|p| {
            let p = p.split('.').next().unwrap_or("");
            !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n <= max)
        })
    };
    ok_num(parts.next(), 23) && ok_num(parts.next(), 59) && parts.next().is_none_or(|s| ok_num(Some(s), 59)) && parts.next().is_none()
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(|_| serde::de::Error::custom(format!("invalid date `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_spec_form_parses() {
        let want = Date::new(2024, 3, 5).unwrap();
        for s in [
            "2024-03-05",
            "2024-3-5",
            "2024/3/5",
            "2024/03/05",
            "2024年3月5日",
            "2024年03月05日",
            " 2024.3.5 ",
            "2024/3/5 0:00",
            "2024-03-05 00:00:00",
            "20240305",
            " 2024.03.05",
        ] {
            assert_eq!(Date::parse(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn impossible_and_malformed_dates_differ() {
        assert_eq!(Date::parse("2023-02-30"), Err(DateError::Impossible));
        assert_eq!(Date::parse("2023-13-01"), Err(DateError::Impossible));
        assert_eq!(Date::parse("2024-02-29").map(|d| d.day), Ok(29));
        assert_eq!(Date::parse("20230230"), Err(DateError::Impossible));
        for s in ["2024-3/5", "24-3-5", "2024年3月5", "2024-03-05x", "2024030", "202403051", "", "2024--05", "2024-03-05 25:00"] {
            assert_eq!(Date::parse(s), Err(DateError::Format), "{s}");
        }
    }

    #[test]
    fn excel_serials_match_excel() {
        assert_eq!(Date::from_excel_serial(1.0), Date::new(1900, 1, 1));
        assert_eq!(Date::from_excel_serial(61.0), Date::new(1900, 3, 1));
        assert_eq!(Date::from_excel_serial(45356.0), Date::new(2024, 3, 5));
        assert_eq!(Date::from_excel_serial(45356.75), Date::new(2024, 3, 5));
        assert_eq!(Date::from_excel_serial(0.0), None);
    }

    #[test]
    fn china_date_turns_at_sixteen_utc() {
        // 2026-11-25T16:00:00Z is midnight in Beijing.
        let ms = Date::new(2026, 11, 25).unwrap().to_days() * 86_400_000 + 16 * 3_600_000;
        assert_eq!(Date::from_unix_ms_china(ms - 1), Date::new(2026, 11, 25).unwrap());
        assert_eq!(Date::from_unix_ms_china(ms), Date::new(2026, 11, 26).unwrap());
    }

    #[test]
    fn add_years_clamps_leap_day() {
        assert_eq!(Date::new(2024, 2, 29).unwrap().add_years(5), Date::new(2029, 2, 28).unwrap());
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -700_000i64..2_900_000) {
            let d = Date::from_days(days);
            prop_assert_eq!(d.to_days(), days);
        }

        #[test]
        fn every_form_of_a_real_date_parses_to_it(days in 0i64..2_900_000, form in 0usize..4, pad in any::<bool>()) {
            let d = Date::from_days(days);
            let (m, dd) = if pad { (format!("{:02}", d.month), format!("{:02}", d.day)) } else { (d.month.to_string(), d.day.to_string()) };
            let s = match form {
                0 => format!("{:04}-{m}-{dd}", d.year),
                1 => format!("{:04}/{m}/{dd}", d.year),
                2 => format!("{:04}年{m}月{dd}日", d.year),
                _ => format!("{:04}.{m}.{dd}", d.year),
            };
            prop_assert_eq!(Date::parse(&s), Ok(d));
            prop_assert_eq!(Date::parse(&d.to_string()), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in ".{0,30}") {
            let _ = Date::parse(&s);
        }

        #[test]
        fn days_past_month_end_are_impossible(y in 1i32..9999, m in 1u8..=12, extra in 1u8..5) {
            let d = days_in_month(y, m) + extra;
            if d <= 99 {
                prop_assert_eq!(Date::parse(&format!("{y:04}-{m}-{d}")), Err(DateError::Impossible));
            }
        }
    }
}
