//! The achievement record: one validated row of spec §3, its canonical bytes and hash,
//! and the public view.

use crate::date::Date;
use crate::fields::Field;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// 成果类型.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "应用技术")]
    Applied,
    #[serde(rename = "基础理论")]
    Basic,
    #[serde(rename = "软科学")]
    Soft,
}

impl Kind {
    pub fn zh(self) -> &'static str {
        match self {
            Kind::Applied => "应用技术",
            Kind::Basic => "基础理论",
            Kind::Soft => "软科学",
        }
    }

    /// The type letter of a 登记号.
    pub fn letter(self) -> char {
        match self {
            Kind::Applied => 'Y',
            Kind::Basic => 'J',
            Kind::Soft => 'R',
        }
    }

    /// Accepts the Chinese names and `applied` / `basic` / `soft` in any case.
    pub fn parse(s: &str) -> Option<Kind> {
        let s = s.trim();
        match s {
            "应用技术" => Some(Kind::Applied),
            "基础理论" => Some(Kind::Basic),
            "软科学" => Some(Kind::Soft),
            _ if s.eq_ignore_ascii_case("applied") => Some(Kind::Applied),
            _ if s.eq_ignore_ascii_case("basic") => Some(Kind::Basic),
            _ if s.eq_ignore_ascii_case("soft") => Some(Kind::Soft),
            _ => None,
        }
    }
}

/// 密级 of a stored record. Classified levels (秘密, 机密, 绝密) never become a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Secret {
    #[serde(rename = "公开")]
    Public,
    #[serde(rename = "内部")]
    Internal,
}

impl Secret {
    pub fn zh(self) -> &'static str {
        match self {
            Secret::Public => "公开",
            Secret::Internal => "内部",
        }
    }
}

pub const STAGES: [&str; 3] = ["初期阶段", "中期阶段", "成熟应用阶段"];
pub const LEVELS: [&str; 5] = ["国际领先", "国际先进", "国内领先", "国内先进", "未评价"];
pub const TASK_SOURCES: [&str; 3] = ["国家计划", "省部计划", "计划外"];
pub const TRANSFERS: [&str; 6] = ["自行实施", "转让", "许可", "作价投资", "合作实施", "其他"];
pub const IP_TYPES: [&str; 7] = ["发明专利", "实用新型", "外观设计", "软件著作权", "植物新品种权", "集成电路布图设计", "技术秘密"];
/// The IP type that is a trade secret and never shown publicly.
pub const IP_TRADE_SECRET: &str = "技术秘密";
/// The task source that needs no 计划编号.
pub const TASK_SOURCE_UNPLANNED: &str = "计划外";

/// One achievement, as stored and exchanged. Serialized as JSON with the spec's English
/// keys in the order of spec §3; that JSON is the record's canonical form (see
/// [`Record::canonical_json`]), so the field order here must never change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub reg_no: String,
    pub title: String,
    pub kind: Kind,
    pub region: String,
    pub reg_date: Date,
    pub first_unit: String,
    pub units: Vec<String>,
    pub persons: Vec<String>,
    pub keywords: Vec<String>,
    pub discipline: String,
    pub industry: Option<String>,
    pub stage: Option<String>,
    pub level: Option<String>,
    pub trl: Option<u8>,
    pub task_source: String,
    pub plan_no: Option<String>,
    pub fiscal_funded: Option<bool>,
    pub ip: Vec<String>,
    pub transfer: Option<String>,
    pub r#abstract: String,
    pub funding: Option<f64>,
    pub benefit: Option<f64>,
    pub contact: Option<String>,
    pub phone: Option<String>,
    pub secret: Secret,
    pub embargo_until: Option<Date>,
}

/// What a store keeps of a record beside its body (the columns its lists and the
/// public view filter on), taken from the record where it was parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordFacts {
    pub kind: Kind,
    pub reg_date: Date,
    pub secret: Secret,
    pub embargo_until: Option<Date>,
}

impl RecordFacts {
    pub fn of(r: &Record) -> RecordFacts {
        RecordFacts { kind: r.kind, reg_date: r.reg_date, secret: r.secret, embargo_until: r.embargo_until }
    }
}

/// A SHA-256 content hash.
pub type Hash = [u8; 32];

/// What a node holds of a record, as one node's copy is compared with another's
/// (the audit of a federation run): who entered it, at which version, with which
/// content hash, and whether it is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    pub reg_no: String,
    pub origin: String,
    pub version: i64,
    pub hash: Vec<u8>,
    pub withdrawn: bool,
}

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The hash a withdrawal carries: withdrawals have no body, so the hash covers the
/// record's identity and the fact that it was withdrawn.
pub fn withdraw_hash(reg_no: &str) -> Hash {
    sha256(format!("withdraw\0{reg_no}").as_bytes())
}

impl Record {
    /// The canonical bytes: compact JSON, keys in spec order, absent values as null.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serializes")
    }

    /// [`Record::canonical_json`] as a string.
    pub fn canonical_string(&self) -> String {
        serde_json::to_string(self).expect("a record always serializes")
    }

    /// Parses canonical (or any equivalent) JSON back into a record.
    pub fn from_json(bytes: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Whether the public may see this record on `today` (spec §3): 公开, not withdrawn,
    /// and no embargo or an embargo that has passed (the day after `embargo_until`).
    pub fn is_public(&self, withdrawn: bool, today: Date) -> bool {
        self.secret == Secret::Public && !withdrawn && self.embargo_until.is_none_or(|d| d < today)
    }

    /// The record as the public may see it — the one public view every public output
    /// (API, pages, CSV and JSONL exports) is built from: the fields spec §3 marks
    /// private emptied (funding, benefit, contact, phone, embargo_until) and 技术秘密 IP
    /// entries removed. `secret` stays: a public record is always 公开, and the export
    /// must re-import (密级 is required).
    pub fn public_view(&self) -> Record {
        let mut p = self.clone();
        p.funding = None;
        p.benefit = None;
        p.contact = None;
        p.phone = None;
        p.embargo_until = None;
        p.ip.retain(|e| ip_type(e) != Some(IP_TRADE_SECRET));
        p
    }

    /// [`Record::public_view`] as JSON: only the keys spec §3 marks public.
    pub fn public_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let serde_json::Value::Object(mut all) = serde_json::to_value(self.public_view()).expect("a record always serializes") else {
            unreachable!("a record serializes to an object")
        };
        all.retain(|k, _| Field::ALL.iter().any(|f| f.key() == k && f.public()));
        all
    }

    /// Text fields a `--text` search looks in; `public` limits it to public fields.
    pub fn search_text_matches(&self, needle: &str, public: bool) -> bool {
        let mut hay: Vec<&str> = vec![&self.reg_no, &self.title, &self.first_unit, &self.r#abstract];
        hay.extend(self.units.iter().map(String::as_str));
        hay.extend(self.persons.iter().map(String::as_str));
        hay.extend(self.keywords.iter().map(String::as_str));
        if !public {
            hay.extend(self.contact.as_deref());
        }
        hay.iter().any(|h| h.contains(needle))
    }
}

/// The type part of an IP entry `类型:号码` (ASCII or full-width colon).
pub fn ip_type(entry: &str) -> Option<&str> {
    entry.split_once([':', '：']).map(|(t, _)| t.trim())
}

/// Splits a list cell on `;`, `；` or `、`, trimming items and dropping empty ones.
pub fn split_list(s: &str) -> Vec<String> {
    s.split([';', '；', '、']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Record {
        Record {
            reg_no: "4201022024Y0001".into(),
            title: "测试成果".into(),
            kind: Kind::Applied,
            region: "420102".into(),
            reg_date: Date::new(2024, 3, 5).unwrap(),
            first_unit: "武汉研究所".into(),
            units: vec![],
            persons: vec!["张三".into()],
            keywords: vec![],
            discipline: "413".into(),
            industry: Some("C27".into()),
            stage: Some("初期阶段".into()),
            level: None,
            trl: Some(3),
            task_source: "计划外".into(),
            plan_no: None,
            fiscal_funded: None,
            ip: vec!["发明专利:ZL1".into(), "技术秘密：X".into()],
            transfer: None,
            r#abstract: "简介".into(),
            funding: Some(12.5),
            benefit: None,
            contact: Some("李四".into()),
            phone: None,
            secret: Secret::Public,
            embargo_until: None,
        }
    }

    #[test]
    fn canonical_json_round_trips_and_uses_spec_keys() {
        let r = sample();
        let bytes = r.canonical_json();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with(
                r#"{"reg_no":"4201022024Y0001","title":"测试成果","kind":"应用技术","region":"420102","reg_date":"2024-03-05""#
            ),
            "{text}"
        );
        assert!(text.contains(r#""abstract":"简介""#) && text.contains(r#""funding":12.5"#));
        assert_eq!(Record::from_json(&bytes).unwrap(), r);
    }

    #[test]
    fn public_view_hides_private_fields_and_trade_secrets() {
        let v = sample().public_json();
        for hidden in ["funding", "benefit", "contact", "phone", "secret", "embargo_until"] {
            assert!(!v.contains_key(hidden), "{hidden} leaked");
        }
        assert_eq!(v["ip"], serde_json::json!(["发明专利:ZL1"]));
        assert_eq!(v["title"], "测试成果");
    }

    #[test]
    fn the_public_view_empties_every_private_field() {
        let mut r = sample();
        r.benefit = Some(3.0);
        r.phone = Some("027-1234567".into());
        r.embargo_until = Date::new(2025, 1, 1);
        let cells = crate::table::cells(&r.public_view());
        for (f, cell) in crate::table::columns().into_iter().zip(&cells) {
            match f {
                Field::Secret => assert_eq!(cell, "公开", "a public record is 公开"),
                f if !f.public() => assert_eq!(cell, "", "{} shown in the public view", f.key()),
                Field::Ip => assert_eq!(cell, "发明专利:ZL1"),
                _ => {}
            }
        }
    }

    #[test]
    fn public_needs_open_secret_no_withdrawal_and_a_past_embargo() {
        let today = Date::new(2026, 1, 10).unwrap();
        let mut r = sample();
        assert!(r.is_public(false, today));
        assert!(!r.is_public(true, today));
        r.embargo_until = Date::new(2026, 1, 10);
        assert!(!r.is_public(false, today), "an embargo ending today has not passed");
        r.embargo_until = Date::new(2026, 1, 9);
        assert!(r.is_public(false, today));
        r.secret = Secret::Internal;
        assert!(!r.is_public(false, today));
    }

    #[test]
    fn lists_split_on_all_three_separators() {
        assert_eq!(split_list(" a; b；c、 ;d "), vec!["a", "b", "c", "d"]);
        assert!(split_list(" ; ").is_empty());
    }
}
