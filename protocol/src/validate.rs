//! Row validation: every field rule and cross-field rule of spec §3–4.
//!
//! Readers turn a CSV line, a worksheet row or a JSON object into a [`RawRow`]; the
//! [`Validator`] turns it into a [`Row`] or into the list of everything wrong with it,
//! so a clerk can fix a row in one pass. Each error carries a stable snake_case code
//! and a Chinese message with the English in parentheses.
//!
//! One room: one rule per field of spec §3 and then the cross-field rules, in the
//! spec's order; a reader checks a field against the spec in one place.

use crate::date::{Date, DateError};
use crate::fields::Field;
use crate::record::{self, Kind, Record};
use crate::regions::{self, RegionTable};
use crate::report::{zh_en, RowError};
use crate::secrecy;
use std::borrow::Cow;

pub use crate::raw::{format_float, RawRow, RawValue, MAX_CELL_CHARS};

impl RawRow {
    /// Whether the row asks for a withdrawal (so needs only `reg_no`).
    pub fn is_withdraw(&self) -> bool {
        matches!(self.get(Field::Op).and_then(|v| text_of(v).ok()).as_deref().and_then(parse_op), Some(Op::Withdraw))
    }
}

/// What a row asks for: the same `Op` a change carries on the wire.
pub use crate::wire::Op;

fn parse_op(s: &str) -> Option<Op> {
    let s = s.trim();
    if s == "登记" || s.eq_ignore_ascii_case("upsert") {
        Some(Op::Upsert)
    } else if s == "撤销" || s.eq_ignore_ascii_case("withdraw") {
        Some(Op::Withdraw)
    } else {
        None
    }
}

/// A valid row.
// Almost every row is an upsert, so boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Upsert(Record),
    Withdraw { reg_no: String },
}

impl Row {
    pub fn reg_no(&self) -> &str {
        match self {
            Row::Upsert(r) => &r.reg_no,
            Row::Withdraw { reg_no } => reg_no,
        }
    }
}

/// Applies the rules of spec §3–4 to rows.
#[derive(Debug, Clone, Copy)]
pub struct Validator<'a> {
    pub regions: &'a RegionTable,
    /// Today's date in Beijing time; `reg_date` may not be later.
    pub today: Date,
    /// The receiving node, when jurisdiction is to be checked (`check` without `--node`
    /// does not check it).
    pub node: Option<&'a str>,
}

/// The text of a non-list cell, or why it is not text.
fn text_of(v: &RawValue) -> Result<Cow<'_, str>, &'static str> {
    match v {
        RawValue::Empty => Ok(Cow::Borrowed("")),
        // The `'` a spreadsheet-safe CSV puts before `=`, `+`, `-`, `@` (spec v1.2 §3).
        RawValue::Text(s) => Ok(Cow::Borrowed(crate::table::unquote_formula(s.trim()))),
        RawValue::Int(i) => Ok(Cow::Owned(i.to_string())),
        RawValue::Float(f) => Ok(Cow::Owned(format_float(*f))),
        RawValue::Bool(b) => Ok(Cow::Owned(b.to_string())),
        RawValue::Date(d) => Ok(Cow::Owned(d.to_string())),
        RawValue::List(_) => Err("list"),
        RawValue::Invalid(kind) => Err(kind),
        RawValue::TooLong(_) => Err("too long"),
    }
}

/// Builds the errors of one row.
struct Errors {
    row: u64,
    reg_no: Option<String>,
    list: Vec<RowError>,
    /// Fields already refused as a whole (too long, two differing columns): not
    /// reported again as missing.
    refused: [bool; 27],
}

impl Errors {
    fn push(&mut self, field: Field, code: &str, zh: String, en: String) {
        self.list.push(RowError {
            row: self.row,
            reg_no: self.reg_no.clone(),
            field: Some(field.key().to_string()),
            code: code.to_string(),
            message: zh_en(&zh, &en),
        });
    }

    fn missing(&mut self, f: Field, why_zh: &str, why_en: &str) {
        if self.refused[f as usize] {
            return;
        }
        self.push(f, "missing_field", format!("{}必填{why_zh}", f.zh()), format!("{} is required{why_en}", f.key()));
    }
}

impl Validator<'_> {
    /// Checks a record that arrived whole (a child's change, an approved submission):
    /// every rule of spec §3 a file row meets, as the intake applies them — its cells,
    /// as the format writes them, must validate back into this very record. The
    /// errors name the rule (`code`) and the field; a record that validates into
    /// another one (a value not as the format writes it) is `not_canonical`.
    ///
    /// A record that keeps every rule as the format writes it (what a child sends,
    /// nearly always) is passed by [`Validator::passes`] without building it again; any
    /// other is judged through its cells, so the errors are the intake's own.
    pub fn check_record(&self, r: &Record) -> Result<(), Vec<RowError>> {
        if self.passes(r) {
            return Ok(());
        }
        self.check_through_cells(r)
    }

    /// [`Validator::check_record`] the long way: the record's cells, as the format
    /// writes them, validated back into a record that must be this one.
    fn check_through_cells(&self, r: &Record) -> Result<(), Vec<RowError>> {
        let cols = crate::table::columns();
        let cells: Vec<RawValue> = crate::table::cells(r).into_iter().map(RawValue::Text).collect();
        match self.validate_cells(1, cols.iter().copied().zip(cells.iter())) {
            Ok(Row::Upsert(back)) if back == *r => Ok(()),
            Ok(Row::Upsert(back)) => {
                let (a, b) = (serde_json::to_value(r).unwrap_or_default(), serde_json::to_value(&back).unwrap_or_default());
                let field = Field::ALL.into_iter().find(|f| a.get(f.key()) != b.get(f.key())).unwrap_or(Field::RegNo);
                Err(vec![RowError {
                    row: 1,
                    reg_no: Some(r.reg_no.clone()),
                    field: Some(field.key().to_string()),
                    code: "not_canonical".into(),
                    message: format!("{}的值不是规范写法 ({} is not written as the format writes it)", field.zh(), field.key()),
                }])
            }
            Ok(Row::Withdraw { .. }) => unreachable!("the cells of a record hold no op"),
            Err(errors) => Err(errors),
        }
    }

    /// Whether `r` keeps every rule of spec §3 (with this validator's today and node)
    /// and is written as the format writes it, judged on the record itself: `true`
    /// only where its cells would validate back into this very record. It may say
    /// `false` for a record that is fine (it is then judged through its cells): it is
    /// stricter where being exact would cost more than it saves. The tests check it
    /// against the cells' way on generated records (`the_fast_check_passes_only_what_
    /// the_cells_pass`).
    ///
    /// One piece: every field of §3 in the spec's order, then the cross-field rules,
    /// as one conjunction.
    fn passes(&self, r: &Record) -> bool {
        let Some(parts) = parse_reg_no(&r.reg_no) else { return false };
        let regions_ok = regions::is_six_digits(&r.region)
            && r.region != regions::NATIONAL
            && self.regions.contains(&r.region)
            && self.node.is_none_or(|n| regions::covers(n, &r.region));
        let applied = r.kind == Kind::Applied;
        parts.full == r.reg_no
            && text_ok(&r.title, 100)
            && regions_ok
            && r.reg_date <= self.today
            && text_ok(&r.first_unit, 100)
            && list_ok(&r.units, 20, 100)
            && !r.persons.is_empty()
            && list_ok(&r.persons, 15, 30)
            && list_ok(&r.keywords, 5, 30)
            && is_discipline_code(&r.discipline)
            && r.industry.as_deref().map_or(!applied, is_industry_code)
            && r.stage.as_deref().map_or(!applied, |s| record::STAGES.contains(&s))
            && r.level.as_deref().is_none_or(|s| record::LEVELS.contains(&s))
            && r.trl.is_none_or(|t| (1..=9).contains(&t))
            && record::TASK_SOURCES.contains(&r.task_source.as_str())
            && match &r.plan_no {
                Some(p) => text_ok(p, 50),
                None => r.task_source == record::TASK_SOURCE_UNPLANNED,
            }
            && list_ok(&r.ip, 20, 100)
            && r.ip.iter().all(|item| is_ip_item(item))
            && r.transfer.as_deref().is_none_or(|s| record::TRANSFERS.contains(&s))
            && text_ok(&r.r#abstract, 2000)
            && r.funding.is_none_or(|x| x >= 0.0 && number_ok(x))
            && r.benefit.is_none_or(number_ok)
            && r.contact.as_deref().is_none_or(|s| text_ok(s, 50))
            && r.phone.as_deref().is_none_or(|s| text_ok(s, 20) && is_phone(s))
            && r.embargo_until.is_none_or(|e| e <= r.reg_date.add_years(5))
            && parts.region == r.region
            && parts.letter == r.kind.letter()
            && parts.year == r.reg_date.year
    }

    /// Validates one row. A row whose 密级 is classified, unrecognised or
    /// contradictory yields exactly one error that names only the row and the `secret`
    /// field: nothing of its content is echoed (spec §3, Confidentiality).
    pub fn validate(&self, raw: &RawRow) -> Result<Row, Vec<RowError>> {
        self.validate_cells(raw.row, raw.cells.iter().map(|(f, v)| (*f, v)))
    }

    /// [`Validator::validate`] over borrowed cells. A field may be given twice (two
    /// columns or keys that map to it): equal values are one value, different ones
    /// refuse the field (`duplicate_column`); for 密级 see [`secrecy::judge`].
    ///
    /// One piece: every field's rule in the order of spec §3, then the cross-field rules,
    /// over one pass of the row's cells; split, the order a clerk reads the errors in would
    /// be scattered over functions.
    pub fn validate_cells<'v>(&self, row: u64, cells: impl Iterator<Item = (Field, &'v RawValue)>) -> Result<Row, Vec<RowError>> {
        let mut slots: [Option<&RawValue>; 27] = [None; 27];
        let mut duplicated = [false; 27];
        let mut too_long = [false; 27];
        let mut secrets: Vec<&RawValue> = Vec::new();
        for (f, value) in cells {
            if f == Field::Secret {
                secrets.push(value);
            }
            if let RawValue::TooLong(_) = value {
                too_long[f as usize] = true;
                continue;
            }
            if value.is_blank() {
                continue;
            }
            match slots[f as usize] {
                None => slots[f as usize] = Some(value),
                Some(first) => duplicated[f as usize] |= first.display().trim() != value.display().trim(),
            }
        }
        let secret_level = match secrecy::judge(secrets) {
            secrecy::Verdict::Classified => return Err(vec![secrecy::classified_error(row)]),
            secrecy::Verdict::Bad => return Err(vec![secrecy::bad_secret_error(row)]),
            secrecy::Verdict::Conflict => return Err(vec![secrecy::conflict_error(row)]),
            secrecy::Verdict::Missing => None,
            secrecy::Verdict::Level(l) => Some(l),
        };
        let reg_no_text = slots[Field::RegNo as usize].and_then(|v| text_of(v).ok()).map(|s| s.to_ascii_uppercase());
        let mut e = Errors {
            row,
            reg_no: reg_no_text.filter(|s| !s.is_empty() && !duplicated[Field::RegNo as usize]),
            list: Vec::new(),
            refused: [false; 27],
        };
        for f in Field::ALL {
            if too_long[f as usize] {
                e.push(
                    f,
                    "cell_too_long",
                    format!("{}超过 {MAX_CELL_CHARS} 个字符，内容未保留", f.zh()),
                    format!("{} is longer than {MAX_CELL_CHARS} characters and was not kept", f.key()),
                );
                slots[f as usize] = None;
                e.refused[f as usize] = true;
            } else if duplicated[f as usize] {
                e.push(
                    f,
                    "duplicate_column",
                    format!("有两列都是{}，且本行两列的值不同", f.zh()),
                    format!("two columns give {} and their values in this row differ", f.key()),
                );
                slots[f as usize] = None;
                e.refused[f as usize] = true;
            }
        }
        let mut v = Cells { slots, e: &mut e, validator: self };

        let op = match v.text(Field::Op) {
            None => Op::Upsert,
            Some(s) => match parse_op(&s) {
                Some(op) => op,
                None => {
                    let shown: String = s.chars().take(20).collect();
                    v.e.push(
                        Field::Op,
                        "bad_op",
                        format!("操作“{shown}”无法识别，应为 登记 或 撤销"),
                        format!("op `{shown}` is not recognised; use upsert/登记 or withdraw/撤销"),
                    );
                    return Err(e.list);
                }
            },
        };

        let reg_no = v.reg_no();
        if op == Op::Withdraw {
            if let Some(parts) = &reg_no {
                v.region_code(Field::RegNo, &parts.region);
            }
            return match (reg_no, e.list.is_empty()) {
                (Some(parts), true) => Ok(Row::Withdraw { reg_no: parts.full }),
                _ => Err(e.list),
            };
        }

        let title = v.length(Field::Title, 100, true);
        let kind = v.text(Field::Kind).and_then(|s| {
            let k = Kind::parse(&s);
            if k.is_none() {
                v.e.push(
                    Field::Kind,
                    "bad_kind",
                    "成果类型应为 应用技术、基础理论 或 软科学".into(),
                    "kind must be 应用技术, 基础理论 or 软科学".into(),
                );
            }
            k
        });
        if v.get(Field::Kind).is_none() {
            v.e.missing(Field::Kind, "", "");
        }
        let region = v.region();
        let reg_date = v.date(Field::RegDate, true);
        if let Some(d) = reg_date {
            if d > self.today {
                v.e.push(Field::RegDate, "date_in_future", "登记日期晚于今天".into(), "reg_date is later than today".into());
            }
        }
        let first_unit = v.length(Field::FirstUnit, 100, true);
        let units = v.list(Field::Units, 20, 100, false);
        let persons = v.list(Field::Persons, 15, 30, true);
        let keywords = v.list(Field::Keywords, 5, 30, false);
        let discipline = v.code(Field::Discipline, true).map(Cow::into_owned).filter(|s| {
            let ok = is_discipline_code(s);
            if !ok {
                v.e.push(
                    Field::Discipline,
                    "bad_discipline",
                    "学科分类应为 GB/T 13745 代码：3、5 或 7 位数字".into(),
                    "discipline must be a GB/T 13745 code of exactly 3, 5 or 7 digits".into(),
                );
            }
            ok
        });
        let applied = kind == Some(Kind::Applied);
        let industry = v.code(Field::Industry, false).map(|s| s.to_ascii_uppercase()).filter(|s| {
            let ok = is_industry_code(s);
            if !ok {
                v.e.push(
                    Field::Industry,
                    "bad_industry",
                    "应用行业应为 GB/T 4754-2017 代码，如 C、C27、I6510".into(),
                    "industry must be a GB/T 4754-2017 code such as C, C27 or I6510".into(),
                );
            }
            ok
        });
        if applied && v.get(Field::Industry).is_none() {
            v.e.missing(Field::Industry, "（应用技术成果）", " for 应用技术 achievements");
        }
        let stage = v.one_of(Field::Stage, &record::STAGES);
        if applied && v.get(Field::Stage).is_none() {
            v.e.missing(Field::Stage, "（应用技术成果）", " for 应用技术 achievements");
        }
        let level = v.one_of(Field::Level, &record::LEVELS);
        let trl = v.trl();
        let task_source = v.one_of(Field::TaskSource, &record::TASK_SOURCES);
        if v.get(Field::TaskSource).is_none() {
            v.e.missing(Field::TaskSource, "", "");
        }
        let plan_no = v.length(Field::PlanNo, 50, false);
        if v.get(Field::PlanNo).is_none() && task_source.as_deref().is_some_and(|t| t != record::TASK_SOURCE_UNPLANNED) {
            v.e.missing(Field::PlanNo, "（任务来源不是计划外时）", " unless task_source is 计划外");
        }
        let fiscal_funded = v.boolean(Field::FiscalFunded);
        let ip = v.ip();
        let transfer = v.one_of(Field::Transfer, &record::TRANSFERS);
        let r#abstract = v.length(Field::Abstract, 2000, true);
        let funding = v.number(Field::Funding, true);
        let benefit = v.number(Field::Benefit, false);
        let contact = v.length(Field::Contact, 50, false);
        let phone = v.phone();
        let secret = secret_level;
        if secret.is_none() {
            v.e.missing(Field::Secret, "", "");
        }
        let embargo_until = v.date(Field::EmbargoUntil, false);
        if let (Some(emb), Some(reg)) = (embargo_until, reg_date) {
            if emb > reg.add_years(5) {
                v.e.push(
                    Field::EmbargoUntil,
                    "embargo_too_long",
                    "延期公开至不能晚于登记日期后 5 年".into(),
                    "embargo_until is more than 5 years after reg_date".into(),
                );
            }
        }

        // The 登记号 cross-field rules, each checked only when both sides are valid.
        if let Some(parts) = &reg_no {
            if let Some(region) = &region {
                if &parts.region != region {
                    v.e.push(
                        Field::RegNo,
                        "reg_no_region_mismatch",
                        "登记号前 6 位与行政区划代码不一致".into(),
                        "the region part of reg_no differs from region".into(),
                    );
                }
            }
            if let Some(kind) = kind {
                if parts.letter != kind.letter() {
                    v.e.push(
                        Field::RegNo,
                        "reg_no_kind_mismatch",
                        "登记号的类型字母与成果类型不一致（应用技术 Y、基础理论 J、软科学 R）".into(),
                        "the type letter of reg_no does not match kind (Y, J, R)".into(),
                    );
                }
            }
            if let Some(d) = reg_date {
                if parts.year != d.year {
                    v.e.push(
                        Field::RegNo,
                        "reg_no_year_mismatch",
                        "登记号中的年份与登记日期的年份不一致".into(),
                        "the year in reg_no differs from the year of reg_date".into(),
                    );
                }
            }
        }
        if let Some(node) = self.node {
            if let Some(region) = &region {
                if !regions::covers(node, region) {
                    v.e.push(
                        Field::Region,
                        "outside_jurisdiction",
                        format!("行政区划代码 {region} 不在本节点 {node} 的管辖范围内"),
                        format!("region {region} is outside the jurisdiction of node {node}"),
                    );
                }
            }
        }

        if !e.list.is_empty() {
            return Err(e.list);
        }
        match (reg_no, title, kind, region, reg_date, first_unit, persons, discipline, task_source, r#abstract, secret) {
            (
                Some(reg_no),
                Some(title),
                Some(kind),
                Some(region),
                Some(reg_date),
                Some(first_unit),
                Some(persons),
                Some(discipline),
                Some(task_source),
                Some(r#abstract),
                Some(secret),
            ) => Ok(Row::Upsert(Record {
                reg_no: reg_no.full,
                title,
                kind,
                region,
                reg_date,
                first_unit,
                units: units.unwrap_or_default(),
                persons,
                keywords: keywords.unwrap_or_default(),
                discipline,
                industry,
                stage,
                level,
                trl,
                task_source,
                plan_no,
                fiscal_funded,
                ip: ip.unwrap_or_default(),
                transfer,
                r#abstract,
                funding,
                benefit,
                contact,
                phone,
                secret,
                embargo_until,
            })),
            // Every None above has pushed an error, so this is unreachable in practice;
            // it is kept total rather than panicking on a future rule change.
            _ => Err(vec![RowError {
                row,
                reg_no: None,
                field: None,
                code: "invalid_row".into(),
                message: zh_en("该行无效", "the row is invalid"),
            }]),
        }
    }

    /// Checks a region code against the table and the node's jurisdiction.
    fn check_region(&self, e: &mut Errors, field: Field, code: &str) -> bool {
        if !self.regions.contains(code) || code == regions::NATIONAL {
            e.push(
                field,
                "unknown_region",
                format!("行政区划代码 {code} 不在 GB/T 2260 代码表中"),
                format!("region code {code} is not in the GB/T 2260 table"),
            );
            return false;
        }
        if let Some(node) = self.node {
            if field == Field::RegNo && !regions::covers(node, code) {
                e.push(
                    field,
                    "outside_jurisdiction",
                    format!("登记号所属地区 {code} 不在本节点 {node} 的管辖范围内"),
                    format!("reg_no region {code} is outside the jurisdiction of node {node}"),
                );
                return false;
            }
        }
        true
    }
}

pub use crate::secrecy::classified_error;

/// A text value as the format writes it, of 1 to `max` characters: what its cell
/// reads back as (trimmed, no spreadsheet quote before `=`, `+`, `-`, `@`) is itself.
fn text_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.trim().len() == s.len() && crate::table::unquote_formula(s).len() == s.len() && s.chars().count() <= max
}

/// A list as the format writes it: at most `max` items, each as [`text_ok`] and
/// holding no separator (`;` `；` `、`), so that splitting the joined cell gives it back.
fn list_ok(items: &[String], max: usize, item_chars: usize) -> bool {
    items.len() <= max && items.iter().all(|i| text_ok(i, item_chars) && !i.contains([';', '；', '、']))
}

/// A number whose cell reads back as itself: any finite one, since [`format_float`]
/// writes the shortest digits that read back exactly and never an exponent (the
/// generated records of the tests include the extremes).
fn number_ok(x: f64) -> bool {
    x.is_finite()
}

/// A GB/T 13745 code: exactly 3, 5 or 7 digits.
fn is_discipline_code(s: &str) -> bool {
    matches!(s.len(), 3 | 5 | 7) && s.bytes().all(|b| b.is_ascii_digit())
}

/// An ip entry: `TYPE:NUMBER` (either colon), the type from the spec's list.
fn is_ip_item(item: &str) -> bool {
    match item.split_once([':', '：']) {
        Some((t, n)) => record::IP_TYPES.contains(&t.trim()) && !n.trim().is_empty(),
        None => false,
    }
}

/// A telephone number: 7 to 20 characters of digits, `+`, `-` or spaces.
fn is_phone(s: &str) -> bool {
    (7..=20).contains(&s.chars().count()) && s.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' '))
}

fn is_industry_code(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && (b'A'..=b'T').contains(&b[0]) && matches!(b.len(), 1 | 3 | 4 | 5) && b[1..].iter().all(u8::is_ascii_digit)
}

/// The parts of a well-formed 登记号.
struct RegNoParts {
    full: String,
    region: String,
    year: i32,
    letter: char,
}

/// Parses `RRRRRRYYYYTNNNN` (4 to 6 serial digits), letters in either case.
fn parse_reg_no(s: &str) -> Option<RegNoParts> {
    let b = s.as_bytes();
    if !(15..=17).contains(&b.len()) || !b[..10].iter().all(u8::is_ascii_digit) || !b[11..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let letter = (b[10] as char).to_ascii_uppercase();
    if !matches!(letter, 'Y' | 'J' | 'R') {
        return None;
    }
    Some(RegNoParts { full: s.to_ascii_uppercase(), region: s[..6].to_string(), year: s[6..10].parse().ok()?, letter })
}

/// The row being validated with its error list.
struct Cells<'a> {
    /// The non-blank value of each field, indexed by `Field as usize`.
    slots: [Option<&'a RawValue>; 27],
    e: &'a mut Errors,
    validator: &'a Validator<'a>,
}

impl<'a> Cells<'a> {
    fn get(&self, f: Field) -> Option<&'a RawValue> {
        self.slots[f as usize]
    }

    /// The trimmed text of a non-list field, or None when absent or not text.
    fn text(&mut self, f: Field) -> Option<Cow<'a, str>> {
        let v = self.get(f)?;
        match text_of(v) {
            Ok(s) if s.is_empty() => None,
            Ok(s) => Some(s),
            Err(kind) => {
                self.bad_type(f, kind);
                None
            }
        }
    }

    fn bad_type(&mut self, f: Field, kind: &str) {
        self.e.push(
            f,
            "bad_type",
            format!("{}的值类型不正确（{kind}）", f.zh()),
            format!("{} has a value of the wrong type ({kind})", f.key()),
        );
    }

    /// A code field: a spreadsheet number must be an exact integer of at most 15 digits.
    fn code(&mut self, f: Field, required: bool) -> Option<Cow<'a, str>> {
        let v = match self.get(f) {
            Some(v) => v,
            None => {
                if required {
                    self.e.missing(f, "", "");
                }
                return None;
            }
        };
        match v {
            RawValue::Float(x) if x.fract() != 0.0 || x.abs() >= 1e15 || !x.is_finite() => {
                self.e.push(
                    f,
                    "inexact_number",
                    format!("{}以数字形式提供且无法精确表示（超过 15 位或带小数），请将该列设为文本格式后重新导出", f.zh()),
                    format!(
                        "{} arrived as a number that cannot be exact (more than 15 digits or a fraction); format the column as text",
                        f.key()
                    ),
                );
                None
            }
            RawValue::Int(i) if i.unsigned_abs() >= 1_000_000_000_000_000 => {
                self.e.push(
                    f,
                    "inexact_number",
                    format!("{}数字超过 15 位，请以文本提供", f.zh()),
                    format!("{} is a number of more than 15 digits; give it as text", f.key()),
                );
                None
            }
            _ => self.text(f),
        }
    }

    /// A text field of 1 to `max` characters (Unicode scalar values).
    fn length(&mut self, f: Field, max: usize, required: bool) -> Option<String> {
        let s = if f.is_code() { self.code(f, false) } else { self.text(f) };
        match s {
            None => {
                if required && self.get(f).is_none() {
                    self.e.missing(f, "", "");
                }
                None
            }
            Some(s) => {
                let n = s.chars().count();
                if n > max {
                    self.e.push(
                        f,
                        "too_long",
                        format!("{}超过 {max} 个字符（实际 {n} 个）", f.zh()),
                        format!("{} is longer than {max} characters ({n})", f.key()),
                    );
                    None
                } else {
                    Some(s.into_owned())
                }
            }
        }
    }

    fn one_of(&mut self, f: Field, allowed: &[&str]) -> Option<String> {
        let s = self.text(f)?;
        if allowed.contains(&s.as_ref()) {
            Some(s.into_owned())
        } else {
            let list = allowed.join("、");
            let list_en = allowed.join(", ");
            self.e.push(
                f,
                &format!("bad_{}", f.key()),
                format!("{}应为 {list} 之一", f.zh()),
                format!("{} must be one of {list_en}", f.key()),
            );
            None
        }
    }

    fn reg_no(&mut self) -> Option<RegNoParts> {
        let s = self.code(Field::RegNo, true)?;
        match parse_reg_no(&s) {
            Some(p) => Some(p),
            None => {
                self.e.push(
                    Field::RegNo,
                    "bad_reg_no",
                    "登记号格式应为 6 位行政区划代码 + 4 位年份 + 类型字母（Y/J/R）+ 4 至 6 位序号".into(),
                    "reg_no must be a 6-digit region code, a 4-digit year, Y/J/R and a 4 to 6 digit serial".into(),
                );
                None
            }
        }
    }

    fn region_code(&mut self, field: Field, code: &str) -> bool {
        self.validator.check_region(self.e, field, code)
    }

    fn region(&mut self) -> Option<String> {
        let s = self.code(Field::Region, true)?;
        if !regions::is_six_digits(&s) {
            self.e.push(Field::Region, "bad_region", "行政区划代码应为 6 位数字".into(), "region must be a 6-digit code".into());
            return None;
        }
        self.region_code(Field::Region, &s).then(|| s.into_owned())
    }

    fn date(&mut self, f: Field, required: bool) -> Option<Date> {
        let v = match self.get(f) {
            Some(v) => v,
            None => {
                if required {
                    self.e.missing(f, "", "");
                }
                return None;
            }
        };
        let parsed = match v {
            RawValue::Date(d) => Ok(*d),
            // A number of eight digits is a date typed as YYYYMMDD (no Excel serial is
            // that large); anything else is a serial.
            RawValue::Float(x) if x.fract() == 0.0 && (10_000_000.0..100_000_000.0).contains(x) => Date::parse(&format!("{}", *x as i64)),
            RawValue::Int(x) if (10_000_000..100_000_000).contains(x) => Date::parse(&x.to_string()),
            RawValue::Float(x) => Date::from_excel_serial(*x).ok_or(DateError::Format),
            RawValue::Int(x) => Date::from_excel_serial(*x as f64).ok_or(DateError::Format),
            other => match text_of(other) {
                Ok(s) => Date::parse(&s),
                Err(kind) => {
                    self.bad_type(f, kind);
                    return None;
                }
            },
        };
        match parsed {
            Ok(d) => Some(d),
            Err(DateError::Impossible) => {
                self.e.push(f, "impossible_date", format!("{}不是真实存在的日期", f.zh()), format!("{} is not a real date", f.key()));
                None
            }
            Err(DateError::Format) => {
                self.e.push(
                    f,
                    "bad_date",
                    format!("{}无法识别，应为 YYYY-MM-DD、YYYY/M/D、YYYY.M.D、YYYYMMDD 或 YYYY年M月D日", f.zh()),
                    format!("{} is not a date in a recognised form (YYYY-MM-DD, YYYY/M/D, YYYY.M.D, YYYYMMDD, YYYY年M月D日)", f.key()),
                );
                None
            }
        }
    }

    /// A list field: split text on `;` `；` `、`, or a JSON array of values; at most
    /// `max` items of at most `item_chars` characters each.
    fn list(&mut self, f: Field, max: usize, item_chars: usize, required: bool) -> Option<Vec<String>> {
        let items = match self.get(f) {
            None => Vec::new(),
            Some(RawValue::List(values)) => {
                let mut out = Vec::new();
                for value in values {
                    match text_of(value) {
                        Ok(s) => out.extend(record::split_list(&s)),
                        Err(kind) => {
                            self.bad_type(f, kind);
                            return None;
                        }
                    }
                }
                out
            }
            Some(v) => match text_of(v) {
                Ok(s) => record::split_list(&s),
                Err(kind) => {
                    self.bad_type(f, kind);
                    return None;
                }
            },
        };
        if items.is_empty() && required {
            self.e.missing(f, "（至少一项）", " (at least one item)");
            return None;
        }
        if items.len() > max {
            self.e.push(
                f,
                "too_many_items",
                format!("{}最多 {max} 项（实际 {} 项）", f.zh(), items.len()),
                format!("{} holds more than {max} items ({})", f.key(), items.len()),
            );
            return None;
        }
        if let Some((i, n)) = items.iter().map(|s| s.chars().count()).enumerate().find(|(_, n)| *n > item_chars) {
            self.e.push(
                f,
                "too_long",
                format!("{}第 {} 项超过 {item_chars} 个字符（实际 {n} 个）", f.zh(), i + 1),
                format!("item {} of {} is longer than {item_chars} characters ({n})", i + 1, f.key()),
            );
            return None;
        }
        Some(items)
    }

    fn trl(&mut self) -> Option<u8> {
        let f = Field::Trl;
        let v = self.get(f)?;
        let n = match v {
            RawValue::Int(i) => Some(*i),
            RawValue::Float(x) if x.fract() == 0.0 && x.abs() < 1e9 => Some(*x as i64),
            RawValue::Float(_) => None,
            other => text_of(other).ok().and_then(|s| s.parse::<i64>().ok()),
        };
        match n {
            Some(n @ 1..=9) => Some(n as u8),
            _ => {
                self.e.push(f, "bad_trl", "技术就绪水平应为 1 到 9 的整数".into(), "trl must be an integer from 1 to 9".into());
                None
            }
        }
    }

    fn boolean(&mut self, f: Field) -> Option<bool> {
        let v = self.get(f)?;
        let b = match v {
            RawValue::Bool(b) => Some(*b),
            RawValue::Int(1) => Some(true),
            RawValue::Int(0) => Some(false),
            RawValue::Float(x) if *x == 1.0 => Some(true),
            RawValue::Float(x) if *x == 0.0 => Some(false),
            other => match text_of(other).ok().as_deref() {
                Some("是" | "1") => Some(true),
                Some("否" | "0") => Some(false),
                Some(s) if s.eq_ignore_ascii_case("true") => Some(true),
                Some(s) if s.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            },
        };
        if b.is_none() {
            self.e.push(f, "bad_bool", format!("{}应为 是 或 否", f.zh()), format!("{} must be 是/否, true/false or 1/0", f.key()));
        }
        b
    }

    fn ip(&mut self) -> Option<Vec<String>> {
        let items = self.list(Field::Ip, 20, 100, false)?;
        for item in &items {
            if !is_ip_item(item) {
                self.e.push(
                    Field::Ip,
                    "bad_ip",
                    format!("知识产权应为“类型:号码”，类型为 {} 之一", record::IP_TYPES.join("、")),
                    "each ip entry must be TYPE:NUMBER with a type from the spec's list".into(),
                );
                return None;
            }
        }
        Some(items)
    }

    /// A decimal number, given as a number or as text (thousands separators allowed).
    fn number(&mut self, f: Field, non_negative: bool) -> Option<f64> {
        let v = self.get(f)?;
        let n = match v {
            RawValue::Int(i) => Some(*i as f64),
            RawValue::Float(x) => Some(*x),
            other => text_of(other).ok().and_then(|s| parse_decimal(&s)),
        };
        match n {
            Some(x) if x.is_finite() => {
                if non_negative && x < 0.0 {
                    self.e.push(f, "negative_number", format!("{}不能为负数", f.zh()), format!("{} must not be negative", f.key()));
                    None
                } else {
                    Some(x)
                }
            }
            _ => {
                self.e.push(f, "bad_number", format!("{}应为数字", f.zh()), format!("{} must be a number", f.key()));
                None
            }
        }
    }

    fn phone(&mut self) -> Option<String> {
        let s = self.code(Field::Phone, false)?;
        if is_phone(&s) {
            Some(s.into_owned())
        } else {
            self.e.push(
                Field::Phone,
                "bad_phone",
                "联系电话应为 7 到 20 个字符，只含数字、+、- 或空格".into(),
                "phone must be 7 to 20 characters of digits, +, - or spaces".into(),
            );
            None
        }
    }
}

/// Parses `-1234.5`, `1,234.5` or `+3`; thousands separators must group by three.
pub fn parse_decimal(s: &str) -> Option<f64> {
    let s = s.trim();
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if int.is_empty() && frac.is_none_or(str::is_empty) {
        return None;
    }
    if let Some(f) = frac {
        if !f.bytes().all(|b| b.is_ascii_digit()) || (f.is_empty() && int.is_empty()) {
            return None;
        }
    }
    let int_ok = if int.contains(',') {
        let groups: Vec<&str> = int.split(',').collect();
        !groups[0].is_empty()
            && groups[0].len() <= 3
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && groups[1..].iter().all(|g| g.len() == 3)
    } else {
        int.bytes().all(|b| b.is_ascii_digit())
    };
    if !int_ok {
        return None;
    }
    s.replace(',', "").parse::<f64>().ok()
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
