//! Online registration (spec v1.2 §6), sans IO: the unit's code (USCC) and its check
//! character, passwords, the evidence a submission needs, the states of a submission,
//! the 登记号 a node assigns, and a submission read into a row the validator checks.

use crate::date::Date;
use crate::fields::Field;
use crate::raw::{RawRow, RawValue};
use crate::record::{Kind, Record};
use crate::report::{zh_en, RowError};
use crate::secrecy;
use crate::validate::{Row, Validator};
use serde_json::{Map, Value};

/// The characters of a USCC, in the order of their values (0–30): digits, then the
/// capitals without I, O, S, V and Z.
const USCC_CHARS: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Whether `code` is a 统一社会信用代码 (GB 32100-2015) whose check character is right.
pub fn uscc_ok(code: &str) -> bool {
    let values: Option<Vec<u32>> = code.chars().map(|c| USCC_CHARS.find(c).map(|v| v as u32)).collect();
    let Some(values) = values.filter(|v| v.len() == 18) else { return false };
    let sum: u32 = values[..17].iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    values[17] == check
}

/// The error of a USCC that is not one.
pub fn bad_uscc(code: &str) -> String {
    let shown: String = code.chars().take(40).collect();
    zh_en(
        &format!("统一社会信用代码 {shown} 无效：应为 18 位（数字与除 I O S V Z 外的大写字母），且第 18 位校验码正确"),
        &format!(
            "{shown} is not a unified social credit code: 18 characters of 0-9 and A-Z without I, O, S, V, Z, the last one its check character"
        ),
    )
}

/// The shortest password a unit may set.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why a new password is refused, if it is (spec §6.4: at least 10 characters, and not
/// containing the unit's USCC).
pub fn password_refusal(uscc: &str, new: &str) -> Option<String> {
    if new.chars().count() < MIN_PASSWORD_CHARS {
        return Some(zh_en(
            &format!("新密码至少 {MIN_PASSWORD_CHARS} 个字符"),
            &format!("a new password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if !uscc.is_empty() && new.to_ascii_uppercase().contains(&uscc.to_ascii_uppercase()) {
        return Some(zh_en("新密码不能包含统一社会信用代码", "a new password must not contain the unit's code"));
    }
    None
}

/// Where a submission stands (spec §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    UnitReview,
    Submitted,
    Registered,
    Returned,
    Withdrawn,
}

impl State {
    pub const ALL: [State; 6] = [State::Draft, State::UnitReview, State::Submitted, State::Registered, State::Returned, State::Withdrawn];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::UnitReview => "unit_review",
            State::Submitted => "submitted",
            State::Registered => "registered",
            State::Returned => "returned",
            State::Withdrawn => "withdrawn",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            State::Draft => "草稿",
            State::UnitReview => "待单位审核",
            State::Submitted => "待审核",
            State::Registered => "已登记",
            State::Returned => "退回修改",
            State::Withdrawn => "已撤销",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the unit may still edit it (a draft, or one the office returned).
    pub fn editable(self) -> bool {
        matches!(self, State::Draft | State::Returned)
    }
}

/// The types of evidence (证明材料), as the API and the form write them.
pub const EVIDENCE_TYPES: [&str; 14] = [
    "验收证书",
    "验收报告",
    "评价证书",
    "评价报告",
    "鉴定证书",
    "结题证书",
    "评审报告",
    "专利证书",
    "软件著作权登记证书",
    "集成电路布图设计登记证书",
    "植物新品种权证书",
    "行业准入证书",
    "标准",
    "其他",
];

/// Whether evidence of type `ty` shows an achievement of `kind` (spec §6.2).
pub fn evidence_fits(kind: Kind, ty: &str) -> bool {
    match kind {
        Kind::Applied => matches!(
            ty,
            "验收证书"
                | "验收报告"
                | "评价证书"
                | "评价报告"
                | "鉴定证书"
                | "专利证书"
                | "软件著作权登记证书"
                | "集成电路布图设计登记证书"
                | "植物新品种权证书"
                | "行业准入证书"
                | "标准"
        ),
        Kind::Basic => matches!(ty, "结题证书" | "评价证书" | "评价报告"),
        Kind::Soft => matches!(ty, "结题证书" | "评审报告"),
    }
}

/// At most this many attachments per submission.
pub const MAX_ATTACHMENTS: usize = 10;
/// Each attachment at most this many bytes.
pub const MAX_ATTACHMENT_BYTES: u64 = 20 * 1024 * 1024;
/// A JSON body of the unit API at most this many bytes.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// What an attachment is, judged by its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentFormat {
    Pdf,
    /// OFD (GB/T 33190), a zip package whose root document is `OFD.xml`: the caller
    /// confirms the entry, since it needs the zip's directory.
    Ofd,
    Jpeg,
    Png,
}

impl AttachmentFormat {
    /// What the first bytes of a file say it is; `Ofd` for any zip, to be confirmed.
    pub fn sniff(head: &[u8]) -> Option<AttachmentFormat> {
        if head.starts_with(b"%PDF-") {
            Some(AttachmentFormat::Pdf)
        } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(AttachmentFormat::Png)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(AttachmentFormat::Jpeg)
        } else if head.starts_with(b"PK\x03\x04") {
            Some(AttachmentFormat::Ofd)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            AttachmentFormat::Pdf => "application/pdf",
            AttachmentFormat::Ofd => "application/ofd",
            AttachmentFormat::Jpeg => "image/jpeg",
            AttachmentFormat::Png => "image/png",
        }
    }

    /// Whether a browser may show it inline (PDF and images; OFD is downloaded).
    pub fn inline(self) -> bool {
        !matches!(self, AttachmentFormat::Ofd)
    }
}

/// The error of an attachment that is not a PDF, OFD, JPEG or PNG, or too large, or
/// of a type not in the list.
pub fn bad_attachment(why: &str, why_en: &str) -> RowError {
    RowError {
        row: 1,
        reg_no: None,
        field: Some("attachments".into()),
        code: "bad_attachment".into(),
        message: zh_en(&format!("证明材料不可接受：{why}"), &format!("attachment refused: {why_en}")),
    }
}

/// The error of a submission without evidence that fits its kind.
pub fn missing_evidence(kind: Kind) -> RowError {
    let fits: Vec<&str> = EVIDENCE_TYPES.iter().copied().filter(|t| evidence_fits(kind, t)).collect();
    RowError {
        row: 1,
        reg_no: None,
        field: Some("attachments".into()),
        code: "missing_evidence".into(),
        message: zh_en(
            &format!("{}成果需至少一份证明材料：{}", kind.zh(), fits.join("、")),
            &format!("a {} achievement needs at least one attachment of these types: {}", kind.zh(), fits.join(", ")),
        ),
    }
}

/// The 登记号 of serial `serial` for (node `code`, `year`, `kind`): 4 digits, or 5 or 6
/// past 9999 (spec §6.3).
pub fn reg_no_for(code: &str, year: i32, kind: Kind, serial: u64) -> String {
    format!("{code}{year:04}{}{serial:04}", kind.letter())
}

/// The first part of every 登记号 a node assigns for (`code`, `year`, `kind`).
pub fn reg_no_prefix(code: &str, year: i32, kind: Kind) -> String {
    format!("{code}{year:04}{}", kind.letter())
}

/// The serial of `reg_no` if it has `prefix`.
pub fn serial_of(reg_no: &str, prefix: &str) -> Option<u64> {
    let rest = reg_no.strip_prefix(prefix)?;
    (4..=6).contains(&rest.len()).then_some(())?;
    rest.bytes().all(|b| b.is_ascii_digit()).then(|| rest.parse().ok())?
}

/// The fields a node fills in for a new submission; a unit may not set them.
pub const SET_BY_NODE: [Field; 4] = [Field::RegNo, Field::Region, Field::RegDate, Field::Op];

/// What a submission asks for, read from its JSON object.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// A new achievement: the node assigns its 登记号.
    New,
    /// A new version of the unit's registered record.
    Change(String),
    /// The withdrawal of the unit's registered record.
    Withdraw(String),
}

/// A submission's object as the row the validator checks, with what it asks for.
/// For a new one the node's own fields are filled (`region` = the node, `reg_date` =
/// `today`, a placeholder 登记号 whose errors are not the unit's); for a change they
/// come from `registered`, the record as it stands. Keys are spec §3's; an unknown key
/// is an error (a program learns of its typo), as is a field the node sets.
pub fn submission_row(
    obj: &Map<String, Value>,
    node: &str,
    today: Date,
    unit_name: &str,
    registered: impl Fn(&str) -> Option<Record>,
) -> Result<(Asked, RawRow), Vec<RowError>> {
    let mut errors = Vec::new();
    let mut cells = Vec::new();
    let reg_no = obj.get("reg_no").and_then(Value::as_str).map(|s| s.trim().to_ascii_uppercase()).filter(|s| !s.is_empty());
    let withdraw = match obj.get("op").and_then(Value::as_str).map(str::trim) {
        None | Some("") | Some("upsert") | Some("登记") => false,
        Some("withdraw") | Some("撤销") => true,
        Some(_) => {
            errors.push(error(Field::Op, "bad_op", "操作应为 upsert（登记）或 withdraw（撤销）", "op must be upsert or withdraw"));
            false
        }
    };
    for (key, value) in obj {
        if matches!(key.as_str(), "attachments" | "draft" | "reg_no" | "op") {
            continue;
        }
        let Some(field) = Field::ALL.into_iter().find(|f| f.key() == key) else {
            errors.push(RowError {
                row: 1,
                reg_no: None,
                field: Some(key.chars().take(64).collect()),
                code: "unknown_field".into(),
                message: zh_en("没有这个字段（键为规范第 3 节的英文键名）", "no such field (keys are those of spec §3)"),
            });
            continue;
        };
        if SET_BY_NODE.contains(&field) {
            errors.push(error(
                field,
                "set_by_node",
                &format!("{}由登记机构填写", field.zh()),
                &format!("{} is set by the registering node", field.key()),
            ));
            continue;
        }
        cells.push((field, raw_value(value)));
    }
    let asked = match (reg_no, withdraw) {
        (None, false) => Asked::New,
        (None, true) => {
            errors.push(error(Field::RegNo, "missing_field", "撤销须写明登记号", "a withdrawal names the reg_no"));
            Asked::New
        }
        (Some(r), w) => {
            if registered(&r).is_none() {
                errors.push(RowError {
                    row: 1,
                    reg_no: Some(r.clone()),
                    field: Some("reg_no".into()),
                    code: "not_your_record".into(),
                    message: zh_en("该登记号不是本单位在本节点登记的成果", "this reg_no is not one of this unit's records at this node"),
                });
            }
            if w {
                Asked::Withdraw(r)
            } else {
                Asked::Change(r)
            }
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    match &asked {
        Asked::Withdraw(r) => {
            cells = vec![(Field::RegNo, RawValue::Text(r.clone())), (Field::Op, RawValue::Text("withdraw".into()))];
        }
        Asked::Change(r) => {
            let held = registered(r).expect("checked above");
            cells.push((Field::RegNo, RawValue::Text(r.clone())));
            cells.push((Field::Region, RawValue::Text(held.region.clone())));
            cells.push((Field::RegDate, RawValue::Text(held.reg_date.to_string())));
        }
        Asked::New => {
            let kind = cells
                .iter()
                .find(|(f, _)| *f == Field::Kind)
                .and_then(|(_, v)| match v {
                    RawValue::Text(s) => Kind::parse(s),
                    _ => None,
                })
                .unwrap_or(Kind::Applied);
            cells.push((Field::RegNo, RawValue::Text(reg_no_for(node, today.year, kind, 0))));
            cells.push((Field::Region, RawValue::Text(node.to_string())));
            cells.push((Field::RegDate, RawValue::Text(today.to_string())));
        }
    }
    if !matches!(asked, Asked::Withdraw(_)) && !cells.iter().any(|(f, v)| *f == Field::FirstUnit && !v.is_blank()) {
        cells.push((Field::FirstUnit, RawValue::Text(unit_name.to_string())));
    }
    Ok((asked, RawRow { row: 1, cells }))
}

/// Checks a submission's row by every rule of spec §3 as the node would take it. For a
/// new one the placeholder 登记号 carries the kind's letter, so it is wrong only when the
/// kind is (and the kind's own error says so): its errors are dropped, and no error
/// names a 登记号.
pub fn validate_submission(v: &Validator<'_>, asked: &Asked, row: &RawRow) -> Result<Row, Vec<RowError>> {
    match (v.validate(row), asked) {
        (Ok(r), _) => Ok(r),
        (Err(errors), Asked::New) => {
            let errors: Vec<RowError> =
                errors.into_iter().filter(|e| e.field.as_deref() != Some(Field::RegNo.key())).map(without_reg_no).collect();
            if errors.is_empty() {
                Err(vec![error(
                    Field::Kind,
                    "bad_kind",
                    "成果类型应为 应用技术、基础理论 或 软科学",
                    "kind must be 应用技术, 基础理论 or 软科学",
                )])
            } else {
                Err(errors)
            }
        }
        (Err(errors), _) => Err(errors),
    }
}

/// A new submission has no 登记号 yet: its errors name none.
fn without_reg_no(mut e: RowError) -> RowError {
    e.reg_no = None;
    e
}

/// Whether any text a unit typed (or named an attachment) carries a secrecy marking:
/// the whole-file screen of spec §3 over a submission.
pub fn marked(obj: &Map<String, Value>, attachment_names: &[&str]) -> bool {
    fn any_marked(v: &Value) -> bool {
        match v {
            Value::String(s) => secrecy::file_text_is_marked(s),
            Value::Array(items) => items.iter().any(any_marked),
            Value::Object(m) => m.iter().any(|(k, v)| secrecy::file_text_is_marked(k) || any_marked(v)),
            _ => false,
        }
    }
    obj.iter().any(|(k, v)| k != "attachments" && (secrecy::file_text_is_marked(k) || any_marked(v)))
        || attachment_names.iter().any(|n| secrecy::file_text_is_marked(n))
}

/// A JSON value as a reader would hand it to validation.
fn raw_value(v: &Value) -> RawValue {
    match v {
        Value::Null => RawValue::Empty,
        Value::Bool(b) => RawValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RawValue::Int(i),
            None => n.as_f64().map_or(RawValue::Invalid("number"), RawValue::Float),
        },
        Value::String(s) if s.chars().count() > crate::raw::MAX_CELL_CHARS => RawValue::TooLong(s.chars().count()),
        Value::String(s) => RawValue::Text(s.clone()),
        Value::Array(items) => RawValue::List(
            items
                .iter()
                .map(|i| match i {
                    Value::Array(_) => RawValue::Invalid("nested list"),
                    other => raw_value(other),
                })
                .collect(),
        ),
        Value::Object(_) => RawValue::Invalid("object"),
    }
}

fn error(field: Field, code: &str, zh: &str, en: &str) -> RowError {
    RowError { row: 1, reg_no: None, field: Some(field.key().into()), code: code.into(), message: zh_en(zh, en) }
}

#[cfg(test)]
#[path = "registration_tests.rs"]
mod tests;
