//! Online registration's rules, each case by case.

use super::*;
use crate::record::tests::sample;
use crate::regions::RegionTable;

const NODE: &str = "420100";

fn today() -> Date {
    Date::new(2026, 12, 7).unwrap()
}

fn validator() -> Validator<'static> {
    Validator { regions: RegionTable::embedded(), today: today(), node: Some(NODE) }
}

/// A new submission as a unit would send it: the §3 fields of a record without the
/// node's own.
fn new_submission() -> Map<String, Value> {
    let Value::Object(mut m) = serde_json::to_value(sample()).unwrap() else { unreachable!() };
    for f in SET_BY_NODE {
        m.remove(f.key());
    }
    m.retain(|_, v| !v.is_null());
    m
}

#[test]
fn a_uscc_needs_its_check_character() {
    for good in ["91350100M000100Y43", "91110000600037341L", "12100000400000777H"] {
        assert!(uscc_ok(good), "{good}");
    }
    for bad in ["91350100M000100Y44", "91350100M000100Y4", "91350100M000100Y431", "9135010OM000100Y43", "91350100m000100y43", ""] {
        assert!(!uscc_ok(bad), "{bad}");
    }
    // The check character 0 (31 − 0 mod 31): a sum divisible by 31.
    let mut zero = None;
    for n in 0..31u32 {
        let base = format!("1210000040000{:04}", n);
        let sum: u32 = base.chars().zip(USCC_WEIGHTS).map(|(c, w)| USCC_CHARS.find(c).unwrap() as u32 * w).sum();
        if sum % 31 == 0 {
            zero = Some(base + "0");
            break;
        }
    }
    assert!(uscc_ok(&zero.expect("some serial gives check 0")));
    assert!(bad_uscc("X").contains("统一社会信用代码") && bad_uscc("X").contains("check character"));
}

#[test]
fn a_password_is_long_and_not_the_code() {
    assert!(password_refusal("91350100M000100Y43", "短密码").is_some());
    assert!(password_refusal("91350100M000100Y43", "x91350100m000100y43x").is_some(), "the code in any case");
    assert_eq!(password_refusal("91350100M000100Y43", "一二三四五六七八九十"), None, "ten characters, not bytes");
}

#[test]
fn states_are_written_as_the_spec_writes_them() {
    for s in State::ALL {
        assert_eq!(State::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), Value::String(s.as_str().into()));
    }
    assert!(State::Draft.editable() && State::Returned.editable());
    assert!(!State::Submitted.editable() && !State::Registered.editable() && !State::UnitReview.editable());
}

#[test]
fn evidence_fits_its_kind() {
    assert!(evidence_fits(Kind::Applied, "专利证书") && evidence_fits(Kind::Applied, "标准"));
    assert!(!evidence_fits(Kind::Applied, "结题证书") && !evidence_fits(Kind::Applied, "其他"));
    assert!(evidence_fits(Kind::Basic, "结题证书") && evidence_fits(Kind::Basic, "评价报告") && !evidence_fits(Kind::Basic, "专利证书"));
    assert!(evidence_fits(Kind::Soft, "评审报告") && !evidence_fits(Kind::Soft, "评价证书"));
    for kind in [Kind::Applied, Kind::Basic, Kind::Soft] {
        assert!(!evidence_fits(kind, "其他"), "其他 shows nothing");
        assert_eq!(missing_evidence(kind).field.as_deref(), Some("attachments"));
    }
}

#[test]
fn attachments_are_judged_by_their_bytes() {
    assert_eq!(AttachmentFormat::sniff(b"%PDF-1.7\n"), Some(AttachmentFormat::Pdf));
    assert_eq!(AttachmentFormat::sniff(b"\x89PNG\r\n\x1a\n...."), Some(AttachmentFormat::Png));
    assert_eq!(AttachmentFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(AttachmentFormat::Jpeg));
    assert_eq!(AttachmentFormat::sniff(b"PK\x03\x04"), Some(AttachmentFormat::Ofd), "a zip, to be confirmed");
    for bad in [&b"<html><script>"[..], b"MZ\x90\x00", b"\x7fELF", b"", b"%PD"] {
        assert_eq!(AttachmentFormat::sniff(bad), None, "{bad:?}");
    }
    assert!(!AttachmentFormat::Ofd.inline() && AttachmentFormat::Pdf.inline());
}

#[test]
fn reg_nos_are_assigned_with_4_to_6_digits() {
    assert_eq!(reg_no_for("420100", 2026, Kind::Applied, 7), "4201002026Y0007");
    assert_eq!(reg_no_for("420100", 2026, Kind::Basic, 12345), "4201002026J12345");
    let p = reg_no_prefix("420100", 2026, Kind::Soft);
    assert_eq!(serial_of(&reg_no_for("420100", 2026, Kind::Soft, 123456), &p), Some(123456));
    assert_eq!(serial_of("4201002026R000A", &p), None);
    assert_eq!(serial_of("4201002026R123", &p), None);
    assert_eq!(serial_of("4201002026Y0001", &p), None, "another kind");
}

#[test]
fn a_new_submission_is_checked_as_the_node_would_take_it() {
    let v = validator();
    let obj = new_submission();
    let (asked, row) = submission_row(&obj, NODE, today(), "武汉大学", |_| None).unwrap();
    assert_eq!(asked, Asked::New);
    let Row::Upsert(r) = validate_submission(&v, &asked, &row).unwrap() else { panic!("an upsert") };
    assert_eq!((r.region.as_str(), r.reg_date), (NODE, today()));
    assert_eq!(r.title, sample().title);
    // first_unit defaults to the unit's name.
    let mut no_unit = obj.clone();
    no_unit.remove("first_unit");
    let (asked, row) = submission_row(&no_unit, NODE, today(), "武汉大学", |_| None).unwrap();
    let Row::Upsert(r) = validate_submission(&v, &asked, &row).unwrap() else { panic!() };
    assert_eq!(r.first_unit, "武汉大学");
    // A broken field: §5 errors naming the field, never a 登记号.
    let mut broken = obj.clone();
    broken.insert("kind".into(), "应用".into());
    broken.insert("title".into(), "".into());
    let (asked, row) = submission_row(&broken, NODE, today(), "武汉大学", |_| None).unwrap();
    let errors = validate_submission(&v, &asked, &row).unwrap_err();
    let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    assert!(fields.contains(&"kind") && fields.contains(&"title") && !fields.contains(&"reg_no"), "{errors:?}");
    assert!(errors.iter().all(|e| e.reg_no.is_none()));
}

#[test]
fn a_unit_sets_none_of_the_nodes_fields_and_no_unknown_key() {
    let mut obj = new_submission();
    obj.insert("region".into(), "110105".into());
    obj.insert("reg_date".into(), "2020-01-01".into());
    obj.insert("titel".into(), "typo".into());
    let errors = submission_row(&obj, NODE, today(), "u", |_| None).unwrap_err();
    let codes: Vec<_> = errors.iter().map(|e| (e.field.as_deref().unwrap_or(""), e.code.as_str())).collect();
    assert!(codes.contains(&("region", "set_by_node")) && codes.contains(&("reg_date", "set_by_node")), "{codes:?}");
    assert!(codes.contains(&("titel", "unknown_field")), "{codes:?}");
}

#[test]
fn a_change_or_withdrawal_names_one_of_the_units_own_records() {
    let mut held = sample();
    held.region = NODE.into();
    held.reg_no = "4201002025Y0003".into();
    held.reg_date = Date::new(2025, 3, 1).unwrap();
    let mine = |r: &str| (r == "4201002025Y0003").then(|| held.clone());
    let mut change = new_submission();
    change.insert("reg_no".into(), "4201002025y0003".into());
    change.insert("title".into(), "新的名称".into());
    let (asked, row) = submission_row(&change, NODE, today(), "u", mine).unwrap();
    assert_eq!(asked, Asked::Change("4201002025Y0003".into()));
    let Row::Upsert(r) = validate_submission(&validator(), &asked, &row).unwrap() else { panic!() };
    assert_eq!((r.reg_date, r.title.as_str()), (held.reg_date, "新的名称"), "reg_date stays the first approval's");
    let withdraw: Map<String, Value> = serde_json::from_str(r#"{"reg_no": "4201002025Y0003", "op": "withdraw"}"#).unwrap();
    let (asked, row) = submission_row(&withdraw, NODE, today(), "u", mine).unwrap();
    assert_eq!(validate_submission(&validator(), &asked, &row).unwrap(), Row::Withdraw { reg_no: "4201002025Y0003".into() });
    let other: Map<String, Value> = serde_json::from_str(r#"{"reg_no": "4201002025Y0004", "op": "withdraw"}"#).unwrap();
    assert_eq!(submission_row(&other, NODE, today(), "u", mine).unwrap_err()[0].code, "not_your_record");
}

#[test]
fn a_marking_anywhere_in_a_submission_is_found() {
    let mut obj = new_submission();
    assert!(!marked(&obj, &["验收证书.pdf"]));
    obj.insert("abstract".into(), "本项目（机密★5年）研究……".into());
    assert!(marked(&obj, &[]));
    assert!(marked(&new_submission(), &["绝密-报告.pdf"]));
    let mut listed = new_submission();
    listed.insert("keywords".into(), serde_json::json!(["芯片", "秘密级"]));
    assert!(marked(&listed, &[]));
    let mut trade = new_submission();
    trade.insert("abstract".into(), "含技术秘密，商业秘密另行约定".into());
    assert!(!marked(&trade, &[]), "技术秘密 and 商业秘密 are no markings");
}
