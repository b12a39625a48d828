//! Publishing the catalogue: the request parameters the HTTP API and `huijiao query`
//! share (with errors naming the parameter), records as JSON in each view, statistics
//! tables with region names, and streamed CSV / JSONL exports.

use crate::store::catalogue::{Catalogue, Filters, GroupBy, Hit, Sort, View};
use huijiao_protocol::record;
use huijiao_protocol::regions::{self, Level};
use huijiao_protocol::table::{cells, columns};
use huijiao_protocol::{Date, Kind, RegionTable};
use serde_json::{Map, Value};
use std::io::Write;

/// Records per page unless asked otherwise, and the most a page holds: a bigger
/// `limit` is cut to this, not refused.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
/// A search longer than this, or with more terms, is refused: its cost grows with both.
pub const MAX_QUERY_CHARS: usize = 100;
pub const MAX_QUERY_TERMS: usize = 8;

/// A parameter that cannot be served, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

fn bad(param: &str, message: impl Into<String>) -> ParamError {
    ParamError { param: param.to_string(), message: message.into() }
}

/// What a request may carry besides the filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `q`, filters, `sort`, `limit`, `cursor`.
    List,
    /// `q`, filters, `by`.
    Stats,
    /// `q`, filters, `format`.
    Export,
}

/// The filter parameters, by their spec keys (and a few conveniences).
pub const FILTER_PARAMS: [&str; 20] = [
    "region",
    "kind",
    "stage",
    "level",
    "discipline",
    "industry",
    "transfer",
    "ip",
    "has_ip",
    "ip_type",
    "trl",
    "trl_min",
    "trl_max",
    "reg_date",
    "year",
    "since",
    "until",
    "fiscal_funded",
    "origin",
    "reg_no",
];

/// What statistics may group by.
pub const GROUP_BY: [&str; 10] = ["region", "province", "prefecture", "county", "kind", "year", "stage", "industry", "transfer", "level"];

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub q: Option<String>,
    pub filters: Filters,
    pub sort: Sort,
    pub limit: usize,
    /// The `limit` asked for was more than [`MAX_LIMIT`].
    pub limit_capped: bool,
    pub cursor: Option<String>,
    pub by: Option<GroupBy>,
    pub format: Option<Format>,
    /// A word of `q` that is the full name of a region (`江岸区`, `湖北省`) and so acts
    /// as the region filter instead of as text (it is no longer in `q`).
    pub region_from_q: Option<String>,
}

/// Parses request parameters (`key=value` pairs as given). Unknown, repeated and
/// malformed parameters are refused, naming the parameter.
///
/// One piece: one arm per parameter of the API (docs/openapi.json), each checked and named
/// in its error; the match is the parameter table.
pub fn parse(pairs: &[(String, String)], endpoint: Endpoint, table: &RegionTable) -> Result<Request, ParamError> {
    let mut r = Request {
        q: None,
        filters: Filters::default(),
        sort: Sort::Relevance,
        limit: DEFAULT_LIMIT,
        limit_capped: false,
        cursor: None,
        by: None,
        format: None,
        region_from_q: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut sort_given = false;
    for (key, value) in pairs {
        let key = key.as_str();
        let extra: &[&str] = match endpoint {
            Endpoint::List => &["q", "sort", "limit", "cursor"],
            Endpoint::Stats => &["q", "by"],
            Endpoint::Export => &["q", "format"],
        };
        if !FILTER_PARAMS.contains(&key) && !extra.contains(&key) {
            let mut known: Vec<&str> = extra.to_vec();
            known.extend(FILTER_PARAMS);
            return Err(bad(key, format!("unknown parameter (known: {})", known.join(", "))));
        }
        if seen.contains(&key) {
            return Err(bad(key, "given more than once"));
        }
        seen.push(key);
        let v = value.trim();
        if v.is_empty() {
            continue;
        }
        let f = &mut r.filters;
        match key {
            "q" => r.q = Some(parse_q(v)?),
            "sort" => {
                sort_given = true;
                r.sort = match v {
                    "relevance" => Sort::Relevance,
                    "date" => Sort::Date,
                    "region" => Sort::Region,
                    _ => return Err(bad(key, format!("`{v}` is not one of relevance, date, region"))),
                }
            }
            "limit" => {
                let n: usize = v.parse().map_err(|_| bad(key, format!("`{v}` is not a whole number")))?;
                if n == 0 {
                    return Err(bad(key, "must be at least 1"));
                }
                r.limit_capped = n > MAX_LIMIT;
                r.limit = n.min(MAX_LIMIT);
            }
            "cursor" => r.cursor = Some(v.to_string()),
            "by" => r.by = Some(parse_by(v)?),
            "format" => r.format = Some(Format::parse(v).ok_or_else(|| bad(key, format!("`{v}` is not csv or jsonl")))?),
            "region" => f.region = Some(resolve_region(v, table)?),
            "kind" => {
                f.kind =
                    Some(Kind::parse(v).ok_or_else(|| bad(key, format!("`{v}` is not 应用技术, 基础理论 or 软科学")))?.zh().to_string())
            }
            "stage" => f.stage = Some(one_of(key, v, &record::STAGES)?),
            "level" => f.level = Some(one_of(key, v, &record::LEVELS)?),
            "transfer" => f.transfer = Some(one_of(key, v, &record::TRANSFERS)?),
            "ip" | "ip_type" => f.ip_type = Some(one_of(key, v, &record::IP_TYPES)?),
            "has_ip" => f.has_ip = Some(parse_bool(key, v)?),
            "fiscal_funded" => f.fiscal_funded = Some(parse_bool(key, v)?),
            "discipline" => {
                if v.len() > 7 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(key, format!("`{v}` is not a GB/T 13745 code or its first digits")));
                }
                f.discipline = Some(v.to_string());
            }
            "industry" => {
                let u = v.to_ascii_uppercase();
                let mut b = u.bytes();
                let ok = b.next().is_some_and(|c| (b'A'..=b'T').contains(&c)) && u.len() <= 5 && b.all(|c| c.is_ascii_digit());
                if !ok {
                    return Err(bad(key, format!("`{v}` is not a GB/T 4754 code or its start (C, C27, I6510)")));
                }
                f.industry = Some(u);
            }
            "trl" => {
                let (lo, hi) = match v.split_once("..").or_else(|| v.split_once('-')) {
                    Some((a, b)) => (parse_trl(key, a)?, parse_trl(key, b)?),
                    None => (parse_trl(key, v)?, parse_trl(key, v)?),
                };
                f.trl_min = Some(lo);
                f.trl_max = Some(hi);
            }
            "trl_min" => f.trl_min = Some(parse_trl(key, v)?),
            "trl_max" => f.trl_max = Some(parse_trl(key, v)?),
            "reg_date" => {
                let (a, b) = v.split_once("..").unwrap_or((v, v));
                if !a.trim().is_empty() {
                    f.since = Some(parse_date(key, a)?);
                }
                if !b.trim().is_empty() {
                    f.until = Some(parse_date(key, b)?);
                }
            }
            "year" => {
                let y: i32 =
                    v.parse().ok().filter(|y| (1900..=9999).contains(y)).ok_or_else(|| bad(key, format!("`{v}` is not a year")))?;
                f.since = Some(Date { year: y, month: 1, day: 1 });
                f.until = Some(Date { year: y, month: 12, day: 31 });
            }
            "since" => f.since = Some(parse_date(key, v)?),
            "until" => f.until = Some(parse_date(key, v)?),
            "origin" => {
                if !regions::is_six_digits(v) {
                    return Err(bad(key, format!("`{v}` is not a node id (6 digits)")));
                }
                f.origin = Some(v.to_string());
            }
            "reg_no" => {
                if v.chars().count() > 30 {
                    return Err(bad(key, "longer than any registration number"));
                }
                f.reg_no = Some(v.to_string());
            }
            _ => unreachable!("every known parameter is handled"),
        }
    }
    if let (Some(lo), Some(hi)) = (r.filters.trl_min, r.filters.trl_max) {
        if lo > hi {
            return Err(bad("trl", format!("the range {lo}..{hi} is empty")));
        }
    }
    if let (Some(a), Some(b)) = (r.filters.since, r.filters.until) {
        if a > b {
            return Err(bad("reg_date", format!("the range {a}..{b} is empty")));
        }
    }
    region_words(&mut r, table);
    // Without a search there is no relevance: newest first.
    if r.q.is_none() && !sort_given {
        r.sort = Sort::Date;
    }
    if endpoint == Endpoint::Stats && r.by.is_none() {
        return Err(bad("by", format!("required: one of {}", GROUP_BY.join(", "))));
    }
    r.by = r.by.map(|b| if b == GroupBy::Region { region_level_below(r.filters.region.as_deref()) } else { b });
    if endpoint == Endpoint::Export && r.format.is_none() {
        r.format = Some(Format::Csv);
    }
    Ok(r)
}

/// A word of the search that is exactly the name of one region (not the country), and
/// inside the region filter if there is one, becomes the region filter: `江岸区 水稻`
/// finds 水稻 among 江岸区's records (a record's text seldom names its own place).
fn region_words(r: &mut Request, table: &RegionTable) {
    let Some(q) = r.q.clone() else { return };
    let mut kept: Vec<&str> = Vec::new();
    for t in crate::search::terms(&q) {
        if r.region_from_q.is_none() {
            let named: Vec<_> = table.find_by_name(t).into_iter().filter(|x| x.name == t && x.level != Level::National).collect();
            if let [one] = named.as_slice() {
                let prefix = regions::jurisdiction_prefix(&one.code).to_string();
                if r.filters.region.as_deref().is_none_or(|p| prefix.starts_with(p)) {
                    r.filters.region = Some(prefix);
                    r.region_from_q = Some(t.to_string());
                    continue;
                }
            }
        }
        kept.push(t);
    }
    if r.region_from_q.is_some() {
        r.q = (!kept.is_empty()).then(|| kept.join(" "));
    }
}

fn parse_q(v: &str) -> Result<String, ParamError> {
    if v.chars().count() > MAX_QUERY_CHARS {
        return Err(bad("q", format!("longer than {MAX_QUERY_CHARS} characters")));
    }
    if crate::search::terms(v).count() > MAX_QUERY_TERMS {
        return Err(bad("q", format!("more than {MAX_QUERY_TERMS} words")));
    }
    if crate::search::match_expr(v).is_none() {
        return Err(bad("q", "holds no letters, digits or Chinese characters to search for"));
    }
    Ok(v.to_string())
}

fn parse_by(v: &str) -> Result<GroupBy, ParamError> {
    Ok(match v {
        "region" => GroupBy::Region,
        "province" => GroupBy::Province,
        "prefecture" => GroupBy::Prefecture,
        "county" => GroupBy::County,
        "kind" => GroupBy::Kind,
        "year" => GroupBy::Year,
        "stage" => GroupBy::Stage,
        "industry" => GroupBy::IndustrySection,
        "transfer" => GroupBy::Transfer,
        "level" => GroupBy::Level,
        _ => return Err(bad("by", format!("`{v}` is not one of {}", GROUP_BY.join(", ")))),
    })
}

/// `by=region`: one level below the region asked about (provinces nationwide).
fn region_level_below(prefix: Option<&str>) -> GroupBy {
    match prefix.map_or(0, str::len) {
        0 | 1 => GroupBy::Province,
        2 | 3 => GroupBy::Prefecture,
        _ => GroupBy::County,
    }
}

fn one_of(key: &str, v: &str, allowed: &[&str]) -> Result<String, ParamError> {
    if allowed.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(bad(key, format!("`{v}` is not one of {}", allowed.join(", "))))
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ParamError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "是" => Ok(true),
        "false" | "0" | "no" | "否" => Ok(false),
        _ => Err(bad(key, format!("`{v}` is not true or false"))),
    }
}

fn parse_trl(key: &str, v: &str) -> Result<u8, ParamError> {
    v.trim().parse::<u8>().ok().filter(|n| (1..=9).contains(n)).ok_or_else(|| bad(key, format!("`{}` is not a TRL from 1 to 9", v.trim())))
}

fn parse_date(key: &str, v: &str) -> Result<Date, ParamError> {
    Date::parse(v.trim()).map_err(|_| bad(key, format!("`{}` is not a date (YYYY-MM-DD)", v.trim())))
}

/// A region as a code prefix: a prefix of digits as given (`42`, `4201`), a node code
/// (`420000` is all of Hubei), or a name from the GB/T 2260 table (`湖北省`, `武汉市`,
/// also `湖北`). A name several units share is refused with their codes.
pub fn resolve_region(v: &str, table: &RegionTable) -> Result<String, ParamError> {
    if v.bytes().all(|b| b.is_ascii_digit()) {
        if v.len() > 6 {
            return Err(bad("region", format!("`{v}` is longer than a region code")));
        }
        if v.len() == 6 {
            if !table.contains(v) {
                return Err(bad("region", format!("`{v}` is not in the GB/T 2260 table")));
            }
            return Ok(regions::jurisdiction_prefix(v).to_string());
        }
        return Ok(v.to_string());
    }
    match table.find_by_name(v).as_slice() {
        [] => Err(bad("region", format!("no region is called `{v}` (give a name from GB/T 2260 or a code)"))),
        [one] => Ok(regions::jurisdiction_prefix(&one.code).to_string()),
        many => Err(bad(
            "region",
            format!(
                "`{v}` names several regions: {}; give the code",
                many.iter().take(8).map(|r| format!("{} {}", r.code, r.name)).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// A listed record as JSON: the public fields (spec keys) in the public view; every
/// field and the provenance (`_origin`, `_version`, `_hops`, …) for operators.
pub fn hit_json(h: &Hit, view: View, highlight: bool) -> Map<String, Value> {
    let mut m = match view {
        View::Public { .. } => h.stored.record.public_json(),
        View::Operator => record_json(&h.stored, false),
    };
    if highlight {
        let mut hl = serde_json::json!({"title": h.title_html, "abstract": h.snippet_html});
        if !h.matched_html.is_empty() {
            hl["matched"] = Value::String(h.matched_html.clone());
        }
        m.insert("_highlight".into(), hl);
    }
    m
}

/// Writes the export of every record matching `q` and `f` to `out`, streaming:
/// CSV is UTF-8 with a BOM and the spec's Chinese column names (every field but
/// `op`), so it can be dropped into another node's inbox as it is; the public view
/// leaves the private columns empty. JSONL holds one record per line as
/// [`hit_json`] gives it. Returns how many records it wrote.
pub fn export(cat: &Catalogue, q: Option<&str>, f: &Filters, view: View, format: Format, out: &mut dyn Write) -> anyhow::Result<u64> {
    if format == Format::Csv {
        out.write_all(&[0xEF, 0xBB, 0xBF])?;
        let header: Vec<String> = columns().iter().map(|c| c.zh().to_string()).collect();
        huijiao_protocol::table::write_csv_row(&mut *out, &header)?;
    }
    let n = cat.export(q, f, view, |h| {
        match format {
            Format::Csv => {
                let cells = match view {
                    View::Public { .. } => cells(&h.stored.record.public_view()),
                    View::Operator => cells(&h.stored.record),
                };
                huijiao_protocol::table::write_csv_row(&mut *out, &cells)?;
            }
            Format::Jsonl => {
                serde_json::to_writer(&mut *out, &Value::Object(hit_json(&h, view, false)))?;
                out.write_all(b"\n")?;
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    out.flush()?;
    Ok(n)
}

/// One line of a statistics table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub key: String,
    /// The region's name for region groups; empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub count: u64,
}

/// Statistics with region names filled in.
pub fn stats(cat: &Catalogue, req: &Request, view: View, table: &RegionTable) -> anyhow::Result<Vec<Group>> {
    let by = req.by.unwrap_or(GroupBy::Kind);
    let rows = cat.stats(by, req.q.as_deref(), &req.filters, view)?;
    let region = matches!(by, GroupBy::Province | GroupBy::Prefecture | GroupBy::County);
    Ok(rows
        .into_iter()
        .map(|(key, count)| {
            let name = if region { table.get(&key).map(|r| r.name.clone()).unwrap_or_default() } else { String::new() };
            Group { key, name, count }
        })
        .collect())
}

/// The name statistics give a grouping in tables and headers.
pub fn group_label(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Province => "province",
        GroupBy::Prefecture => "prefecture",
        GroupBy::County => "county",
        GroupBy::Region => "region",
        GroupBy::Kind => "kind",
        GroupBy::Year => "year",
        GroupBy::Stage => "stage",
        GroupBy::IndustrySection => "industry",
        GroupBy::Transfer => "transfer",
        GroupBy::Level => "level",
    }
}

/// The regions below `parent` (every unit when None) as JSON rows.
pub fn regions_json(table: &RegionTable, parent: Option<&str>, level: Option<Level>) -> Vec<Value> {
    table
        .all()
        .into_iter()
        .filter(|r| r.level != Level::National)
        .filter(|r| parent.is_none_or(|p| r.parent == p))
        .filter(|r| level.is_none_or(|l| r.level == l))
        .map(|r| serde_json::json!({"code": r.code, "name": r.name, "level": r.level.as_str(), "parent": r.parent}))
        .collect()
}

/// The JSON line of one record (`query --json`, the operator view of the API and of
/// exports): spec keys (or only public ones), then bookkeeping.
pub fn record_json(r: &crate::store::StoredRecord, public: bool) -> Map<String, Value> {
    let mut m = if public {
        r.record.public_json()
    } else {
        match serde_json::to_value(&r.record) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    };
    m.insert("_version".into(), r.version.into());
    m.insert("_origin".into(), r.origin.clone().into());
    m.insert("_withdrawn".into(), r.withdrawn.into());
    m.insert("_updated_at".into(), crate::clock::rfc3339_china(r.updated_at).into());
    m.insert(
        "_hops".into(),
        Value::Array(
            r.hops
                .iter()
                .map(|(node, at)| serde_json::json!({"node": node, "accepted_at": crate::clock::rfc3339_china(*at), "accepted_at_ms": at}))
                .collect(),
        ),
    );
    m
}

/// `湖北省 武汉市 江岸区` for a county code.
pub fn region_path(table: &RegionTable, code: &str) -> String {
    let mut names = Vec::new();
    let mut at = Some(code.to_string());
    while let Some(c) = at {
        match table.get(&c) {
            Some(r) if r.level != Level::National => {
                names.insert(0, r.name.clone());
                at = Some(r.parent.clone());
            }
            _ => break,
        }
    }
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)], e: Endpoint) -> Result<Request, ParamError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(&pairs, e, RegionTable::embedded())
    }

    #[test]
    fn regions_by_code_prefix_node_code_or_name() {
        let t = RegionTable::embedded();
        assert_eq!(resolve_region("42", t).unwrap(), "42");
        assert_eq!(resolve_region("420000", t).unwrap(), "42");
        assert_eq!(resolve_region("湖北省", t).unwrap(), "42");
        assert_eq!(resolve_region("湖北", t).unwrap(), "42");
        assert_eq!(resolve_region("武汉市", t).unwrap(), "4201");
        assert_eq!(resolve_region("江岸区", t).unwrap(), "420102");
        let e = resolve_region("朝阳区", t).unwrap_err();
        assert!(e.message.contains("110105"), "{e}");
        assert_eq!(resolve_region("火星省", t).unwrap_err().param, "region");
        assert_eq!(resolve_region("429999", t).unwrap_err().param, "region");
    }

    #[test]
    fn bad_parameters_are_named_and_big_pages_capped() {
        for (pairs, param) in [
            (vec![("limit", "x")], "limit"),
            (vec![("limit", "0")], "limit"),
            (vec![("trl", "10")], "trl"),
            (vec![("trl", "7..3")], "trl"),
            (vec![("kind", "软件")], "kind"),
            (vec![("stage", "末期")], "stage"),
            (vec![("since", "2025-02-30")], "since"),
            (vec![("has_ip", "maybe")], "has_ip"),
            (vec![("regoin", "42")], "regoin"),
            (vec![("q", "a"), ("q", "b")], "q"),
            (vec![("q", "，。")], "q"),
            (vec![("industry", "Z9")], "industry"),
            (vec![("sort", "random")], "sort"),
        ] {
            assert_eq!(p(&pairs, Endpoint::List).unwrap_err().param, param, "{pairs:?}");
        }
        let r = p(&[("limit", "100000")], Endpoint::List).unwrap();
        assert_eq!((r.limit, r.limit_capped), (MAX_LIMIT, true));
        assert_eq!(p(&[("by", "colour")], Endpoint::Stats).unwrap_err().param, "by");
        assert_eq!(p(&[], Endpoint::Stats).unwrap_err().param, "by");
        assert_eq!(p(&[("cursor", "x")], Endpoint::Stats).unwrap_err().param, "cursor", "stats take no cursor");
    }

    #[test]
    fn filters_by_spec_keys() {
        let r = p(
            &[
                ("q", "水稻"),
                ("region", "湖北省"),
                ("kind", "applied"),
                ("trl", "5..9"),
                ("year", "2025"),
                ("ip", "发明专利"),
                ("fiscal_funded", "是"),
            ],
            Endpoint::List,
        )
        .unwrap();
        assert_eq!(r.filters.region.as_deref(), Some("42"));
        assert_eq!(r.filters.kind.as_deref(), Some("应用技术"));
        assert_eq!((r.filters.trl_min, r.filters.trl_max), (Some(5), Some(9)));
        assert_eq!(r.filters.since, Some(Date { year: 2025, month: 1, day: 1 }));
        assert_eq!(r.filters.until, Some(Date { year: 2025, month: 12, day: 31 }));
        assert_eq!(r.filters.ip_type.as_deref(), Some("发明专利"));
        assert_eq!(r.filters.fiscal_funded, Some(true));
        assert_eq!(r.sort, Sort::Relevance);
        assert_eq!(p(&[], Endpoint::List).unwrap().sort, Sort::Date, "no search: newest first");
        assert_eq!(p(&[("by", "region"), ("region", "42")], Endpoint::Stats).unwrap().by, Some(GroupBy::Prefecture));
        assert_eq!(p(&[("by", "region")], Endpoint::Stats).unwrap().by, Some(GroupBy::Province));
        assert_eq!(p(&[], Endpoint::Export).unwrap().format, Some(Format::Csv));
    }

    #[test]
    fn a_region_named_in_the_search_acts_on_the_region() {
        let r = p(&[("q", "江岸区、水稻")], Endpoint::List).unwrap();
        assert_eq!((r.q.as_deref(), r.filters.region.as_deref()), (Some("水稻"), Some("420102")));
        assert_eq!(r.region_from_q.as_deref(), Some("江岸区"));
        let r = p(&[("q", "湖北省")], Endpoint::List).unwrap();
        assert_eq!((r.q, r.filters.region.as_deref(), r.sort), (None, Some("42"), Sort::Date));
        // Inside the filter only; a shortened or shared name stays a word.
        let r = p(&[("q", "江岸区 水稻"), ("region", "44")], Endpoint::List).unwrap();
        assert_eq!((r.q.as_deref(), r.filters.region.as_deref()), (Some("江岸区 水稻"), Some("44")));
        assert_eq!(p(&[("q", "湖北 水稻")], Endpoint::List).unwrap().filters.region, None);
        assert_eq!(p(&[("q", "朝阳区")], Endpoint::List).unwrap().filters.region, None, "two 朝阳区");
    }
}
