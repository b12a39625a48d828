//! Wall-clock helpers. Only the edges read the clock; everything below takes `now`.

use huijiao_protocol::Date;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as this node's clock says.
///
/// The fault-injection tests set `HUIJIAO_CLOCK_SKEW_SECS` to give one node a clock
/// that is far off, as a badly kept county machine has; never set it in production.
pub fn now_ms() -> i64 {
    static SKEW_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let skew =
        *SKEW_MS.get_or_init(|| std::env::var("HUIJIAO_CLOCK_SKEW_SECS").ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0) * 1000);
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64) + skew
}

/// Today's date in Beijing time.
pub fn today() -> Date {
    Date::from_unix_ms_china(now_ms())
}

/// RFC 3339 in Beijing time with milliseconds, e.g. `2026-11-26T15:31:46.123+08:00`.
pub fn rfc3339_china(ms: i64) -> String {
    let local = ms + huijiao_protocol::date::CHINA_OFFSET_MS;
    let date = Date::from_days(local.div_euclid(86_400_000));
    let in_day = local.rem_euclid(86_400_000);
    let (h, m, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    format!("{date}T{h:02}:{m:02}:{s:02}.{milli:03}+08:00")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_beijing_time() {
        assert_eq!(super::rfc3339_china(0), "1970-01-01T08:00:00.000+08:00");
        assert_eq!(super::rfc3339_china(16 * 3_600_000 + 1), "1970-01-02T00:00:00.001+08:00");
    }
}
