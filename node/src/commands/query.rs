//! `huijiao query`: read the store, also while the daemon runs.

use crate::store::{Filter, Reader, StoredRecord};
use huijiao_protocol::Date;
use serde_json::{Map, Value};
use std::io::Write;

/// The JSON line of one record: spec keys (or only public ones), then bookkeeping.
pub fn record_json(r: &StoredRecord, public: bool) -> Map<String, Value> {
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

/// Prints matching records; returns how many.
pub fn run(reader: &Reader, filter: &Filter, json: bool, count_only: bool, out: &mut dyn Write) -> anyhow::Result<u64> {
    let public = filter.public.is_some();
    if count_only {
        let n = reader.for_each(filter, |_| Ok(()))?;
        writeln!(out, "{n}")?;
        return Ok(n);
    }
    if !json {
        table_row(out, ["reg_no", "ver", "kind", "region", "reg_date", "状态", "title"])?;
    }
    let n = reader.for_each(filter, |r| {
        if json {
            writeln!(out, "{}", Value::Object(record_json(&r, public)))?;
        } else {
            let title: String = r.record.title.chars().take(30).collect();
            let state = if r.withdrawn {
                "撤销"
            } else if r.record.secret == huijiao_protocol::Secret::Internal {
                "内部"
            } else {
                "公开"
            };
            let (version, date) = (r.version.to_string(), r.record.reg_date.to_string());
            table_row(out, [&r.record.reg_no, &version, r.record.kind.zh(), &r.record.region, &date, state, &title])?;
        }
        Ok(())
    })?;
    if !json {
        writeln!(out, "({n} records)")?;
    }
    Ok(n)
}

fn table_row(out: &mut dyn Write, c: [&str; 7]) -> std::io::Result<()> {
    writeln!(out, "{:<18} {:>3} {:<8} {:<6} {:<10} {:<4} {}", c[0], c[1], c[2], c[3], c[4], c[5], c[6])
}

/// Parses a `--since` / `--until` value in any date form the spec accepts.
pub fn parse_date_arg(s: &str) -> anyhow::Result<Date> {
    Date::parse(s).map_err(|_| anyhow::anyhow!("`{s}` is not a date (use YYYY-MM-DD)"))
}
