//! The XML of OAI-PMH answers, written by hand: escaping, datestamps, the envelope,
//! and a record's two metadata formats — `oai_dc` (unqualified Dublin Core) and
//! `huijiao` (the public fields by their spec keys, `docs/oai/huijiao.xsd`). Both are
//! built from `Record::public_json`, the one public view.

use huijiao_protocol::fields::Field;
use huijiao_protocol::{Date, Record, RegionTable};
use serde_json::Value;
use std::fmt::Write;

pub const OAI_NS: &str = "http://www.openarchives.org/OAI/2.0/";
pub const OAI_SCHEMA: &str = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd";
pub const DC_NS: &str = "http://www.openarchives.org/OAI/2.0/oai_dc/";
pub const DC_SCHEMA: &str = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd";
pub const HUIJIAO_NS: &str = "urn:huijiao:record:1";

/// Text for element content and attribute values: `& < > " '` escaped, and the
/// characters XML 1.0 cannot carry (C0 controls other than tab and new lines) dropped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Seconds since the epoch as an OAI datestamp, `YYYY-MM-DDThh:mm:ssZ` (UTC).
pub fn datestamp(secs: i64) -> String {
    let date = Date::from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{date}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

/// An OAI datestamp argument (`YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ssZ`) as seconds:
/// the first second it covers, or with `end` the last; and whether it had a time.
pub fn parse_datestamp(s: &str, end: bool) -> Option<(i64, bool)> {
    let digits = |r: std::ops::Range<usize>| s.get(r).filter(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if s.as_bytes().get(4) != Some(&b'-') || s.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let day = Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?.to_days() * 86_400;
    match s.len() {
        10 => Some((if end { day + 86_399 } else { day }, false)),
        20 if &s[10..11] == "T" && &s[13..14] == ":" && &s[16..17] == ":" && &s[19..] == "Z" => {
            let (h, mi, se): (i64, i64, i64) =
                (digits(11..13)?.parse().ok()?, digits(14..16)?.parse().ok()?, digits(17..19)?.parse().ok()?);
            (h < 24 && mi < 60 && se < 60).then_some((day + h * 3600 + mi * 60 + se, true))
        }
        _ => None,
    }
}

/// The envelope's head: the XML declaration, the root element, the response date and
/// the request (with its arguments only when they were valid).
pub fn open(out: &mut String, now_secs: i64, base_url: &str, args: Option<&[(String, String)]>) {
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<OAI-PMH xmlns=\"{OAI_NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"{OAI_NS} {OAI_SCHEMA}\"><responseDate>{}</responseDate><request",
        datestamp(now_secs)
    );
    for (k, v) in args.unwrap_or_default() {
        let _ = write!(out, " {}=\"{}\"", esc(k), esc(v));
    }
    let _ = write!(out, ">{}</request>", esc(base_url));
}

pub fn close(out: &mut String) {
    out.push_str("</OAI-PMH>\n");
}

/// One `oai_dc` element: title, creator = persons, contributor = units, subject =
/// keywords and the discipline with its name, description = abstract, date, type =
/// kind, identifier = the public page and the reg_no, coverage = the region's names,
/// language, rights.
pub fn oai_dc(out: &mut String, r: &Record, table: &RegionTable, page_url: &str) {
    let p = r.public_view();
    let _ = write!(
        out,
        "<oai_dc:dc xmlns:oai_dc=\"{DC_NS}\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xsi:schemaLocation=\"{DC_NS} {DC_SCHEMA}\">"
    );
    let mut el = |name: &str, v: &str| {
        if !v.trim().is_empty() {
            let _ = write!(out, "<dc:{name}>{}</dc:{name}>", esc(v));
        }
    };
    el("title", &p.title);
    for person in &p.persons {
        el("creator", person);
    }
    el("contributor", &p.first_unit);
    for u in &p.units {
        el("contributor", u);
    }
    for k in &p.keywords {
        el("subject", k);
    }
    let discipline =
        huijiao_protocol::codes::discipline_name(&p.discipline).map_or(p.discipline.clone(), |n| format!("{} {n}", p.discipline));
    el("subject", &discipline);
    el("description", &p.r#abstract);
    el("date", &p.reg_date.to_string());
    el("type", p.kind.zh());
    el("identifier", page_url);
    el("identifier", &p.reg_no);
    el("coverage", &crate::publish::region_path(table, &p.region));
    el("language", "zh");
    el("rights", "公开（科技成果登记公开信息）");
    out.push_str("</oai_dc:dc>");
}

/// One `huijiao` element: the public fields by their spec keys, in the spec's order.
pub fn huijiao(out: &mut String, r: &Record, schema_url: &str) {
    let fields = r.public_json();
    let _ = write!(out, "<record xmlns=\"{HUIJIAO_NS}\" xsi:schemaLocation=\"{HUIJIAO_NS} {}\">", esc(schema_url));
    for f in Field::ALL.iter().filter(|f| f.public()) {
        let key = f.key();
        match fields.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if !items.is_empty() {
                    let _ = write!(out, "<{key}>");
                    for i in items {
                        let _ = write!(out, "<item>{}</item>", esc(&scalar(i)));
                    }
                    let _ = write!(out, "</{key}>");
                }
            }
            Some(v) => {
                let text = scalar(v);
                if !text.is_empty() {
                    let _ = write!(out, "<{key}>{}</{key}>", esc(&text));
                }
            }
        }
    }
    out.push_str("</record>");
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datestamps_both_ways() {
        assert_eq!(datestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(datestamp(1_765_000_000), "2025-12-06T05:46:40Z");
        assert_eq!(parse_datestamp("2025-12-06T05:46:40Z", false), Some((1_765_000_000, true)));
        assert_eq!(parse_datestamp("1970-01-02", false), Some((86_400, false)));
        assert_eq!(parse_datestamp("1970-01-02", true), Some((2 * 86_400 - 1, false)));
        for bad in ["2025-13-01", "2025-02-30", "2025-1-01", "2025-12-06T05:46:40", "2025-12-06T24:00:00Z", "2025-12-06 05:46:40Z", ""] {
            assert_eq!(parse_datestamp(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn text_is_escaped_and_controls_dropped() {
        assert_eq!(esc("a<b>&\"'\u{1}\u{7}c\n"), "a&lt;b&gt;&amp;&quot;&apos;c\n");
    }
}
