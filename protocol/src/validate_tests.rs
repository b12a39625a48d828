use super::*;
use crate::record::Secret;
use proptest::prelude::*;

fn today() -> Date {
    Date::new(2026, 11, 26).unwrap()
}

fn validator(node: Option<&'static str>) -> Validator<'static> {
    Validator { regions: RegionTable::embedded(), today: today(), node }
}

fn good() -> Vec<(Field, RawValue)> {
    let t = |s: &str| RawValue::Text(s.to_string());
    vec![
        (Field::RegNo, t("4201022024Y0001")),
        (Field::Title, t("测试成果")),
        (Field::Kind, t("应用技术")),
        (Field::Region, t("420102")),
        (Field::RegDate, t("2024-03-05")),
        (Field::FirstUnit, t("武汉研究所")),
        (Field::Persons, t("张三；李四")),
        (Field::Discipline, t("413")),
        (Field::Industry, t("c27")),
        (Field::Stage, t("初期阶段")),
        (Field::TaskSource, t("国家计划")),
        (Field::PlanNo, t("2024YFC001")),
        (Field::Abstract, t("简介")),
        (Field::Secret, t("公开")),
    ]
}

fn with(mut cells: Vec<(Field, RawValue)>, f: Field, v: RawValue) -> RawRow {
    cells.retain(|(g, _)| *g != f);
    cells.push((f, v));
    RawRow { row: 2, cells }
}

fn text(s: &str) -> RawValue {
    RawValue::Text(s.to_string())
}

/// The (field, code) pairs of a row that must fail.
fn errors(row: &RawRow) -> Vec<(String, String)> {
    validator(None).validate(row).expect_err("row should be rejected").into_iter().map(|e| (e.field.unwrap_or_default(), e.code)).collect()
}

fn one_error(row: &RawRow) -> (String, String) {
    let e = errors(row);
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().unwrap()
}

#[test]
fn a_good_row_becomes_a_record() {
    let Ok(Row::Upsert(r)) = validator(Some("420100")).validate(&RawRow { row: 2, cells: good() }) else { panic!("rejected") };
    assert_eq!(r.persons, vec!["张三", "李四"]);
    assert_eq!(r.industry.as_deref(), Some("C27"));
    assert_eq!(r.reg_date, Date::new(2024, 3, 5).unwrap());
}

#[test]
fn each_field_rule_blames_its_field() {
    let cases: Vec<(Field, RawValue, &str)> = vec![
        (Field::RegNo, text("42010220-4Y0001"), "bad_reg_no"),
        (Field::RegNo, text("4201022024Y001"), "bad_reg_no"),
        (Field::RegNo, text("4201022024Y0000001"), "bad_reg_no"),
        (Field::RegNo, text("4201032024Y0001"), "reg_no_region_mismatch"),
        (Field::RegNo, text("4201022024J0001"), "reg_no_kind_mismatch"),
        (Field::RegNo, text("4201022023Y0001"), "reg_no_year_mismatch"),
        (Field::Title, text(&"字".repeat(101)), "too_long"),
        (Field::Kind, text("应用"), "bad_kind"),
        (Field::Region, text("42010"), "bad_region"),
        (Field::Region, text("420199"), "unknown_region"),
        (Field::Region, text("000000"), "unknown_region"),
        (Field::RegDate, text("2024-02-30"), "impossible_date"),
        (Field::RegDate, text("03/05/2024"), "bad_date"),
        (Field::FirstUnit, text(&"单".repeat(101)), "too_long"),
        (Field::Persons, text(&(0..16).map(|i| format!("人{i}")).collect::<Vec<_>>().join(";")), "too_many_items"),
        (Field::Keywords, text("a;b;c;d;e;f"), "too_many_items"),
        (Field::Discipline, text("21"), "bad_discipline"),
        (Field::Discipline, text("4134"), "bad_discipline"),
        (Field::Industry, text("U12"), "bad_industry"),
        (Field::Industry, text("C1"), "bad_industry"),
        (Field::Stage, text("后期阶段"), "bad_stage"),
        (Field::Level, text("世界领先"), "bad_level"),
        (Field::Trl, text("0"), "bad_trl"),
        (Field::Trl, RawValue::Float(6.5), "bad_trl"),
        (Field::TaskSource, text("自选"), "bad_task_source"),
        (Field::PlanNo, text(&"x".repeat(51)), "too_long"),
        (Field::FiscalFunded, text("有"), "bad_bool"),
        (Field::Ip, text("论文:123"), "bad_ip"),
        (Field::Ip, text("发明专利"), "bad_ip"),
        (Field::Transfer, text("出售"), "bad_transfer"),
        (Field::Abstract, text(&"文".repeat(2001)), "too_long"),
        (Field::Funding, text("-1"), "negative_number"),
        (Field::Funding, text("12万"), "bad_number"),
        (Field::Benefit, text("1,2,3"), "bad_number"),
        (Field::Contact, text(&"名".repeat(51)), "too_long"),
        (Field::Phone, text("123456"), "bad_phone"),
        (Field::Phone, text("010-1234567x"), "bad_phone"),
        (Field::Secret, text("保密"), "bad_secret"),
        (Field::EmbargoUntil, text("2029-03-06"), "embargo_too_long"),
        (Field::Op, text("删除"), "bad_op"),
    ];
    for (f, v, code) in cases {
        let (field, got) = one_error(&with(good(), f, v.clone()));
        let want_field = if code.starts_with("reg_no_") { "reg_no" } else { f.key() };
        assert_eq!((field.as_str(), got.as_str()), (want_field, code), "{f:?} = {v:?}");
    }
}

#[test]
fn required_fields_and_conditional_requirements() {
    for f in [
        Field::RegNo,
        Field::Title,
        Field::Kind,
        Field::Region,
        Field::RegDate,
        Field::FirstUnit,
        Field::Persons,
        Field::Discipline,
        Field::TaskSource,
        Field::Abstract,
        Field::Secret,
    ] {
        let errs = errors(&with(good(), f, RawValue::Empty));
        assert!(errs.contains(&(f.key().to_string(), "missing_field".to_string())), "{f:?}: {errs:?}");
    }
    // industry and stage only for 应用技术; plan_no unless 计划外.
    assert_eq!(one_error(&with(good(), Field::Industry, RawValue::Empty)), ("industry".into(), "missing_field".into()));
    assert_eq!(one_error(&with(good(), Field::Stage, text(" "))), ("stage".into(), "missing_field".into()));
    assert_eq!(one_error(&with(good(), Field::PlanNo, RawValue::Empty)), ("plan_no".into(), "missing_field".into()));
    let mut basic = with(good(), Field::Kind, text("basic"));
    basic.cells.retain(|(f, _)| !matches!(f, Field::Industry | Field::Stage));
    basic = with(basic.cells, Field::RegNo, text("4201022024J0001"));
    basic = with(basic.cells, Field::TaskSource, text("计划外"));
    basic = with(basic.cells, Field::PlanNo, RawValue::Empty);
    assert!(validator(None).validate(&basic).is_ok());
}

#[test]
fn classified_rows_echo_nothing() {
    for level in ["秘密", "机密", "绝密", " 机密★10年 "] {
        let mut cells = with(good(), Field::Secret, text(level)).cells;
        cells.push((Field::Title, text(&"x".repeat(500))));
        let errs = validator(Some("420102")).validate(&RawRow { row: 9, cells }).unwrap_err();
        assert_eq!(errs, vec![classified_error(9)]);
        assert_eq!(errs[0].reg_no, None);
        assert!(!errs[0].message.contains("4201022024Y0001"));
    }
}

#[test]
fn jurisdiction_is_checked_only_with_a_node() {
    let row = RawRow { row: 2, cells: good() };
    assert!(validator(None).validate(&row).is_ok());
    assert!(validator(Some("420000")).validate(&row).is_ok());
    assert!(validator(Some("000000")).validate(&row).is_ok());
    let e = validator(Some("420103")).validate(&row).unwrap_err();
    assert_eq!((e[0].field.as_deref(), e[0].code.as_str()), (Some("region"), "outside_jurisdiction"));
    let withdraw = RawRow { row: 2, cells: vec![(Field::RegNo, text("4201022024Y0001")), (Field::Op, text("撤销"))] };
    assert!(validator(Some("420100")).validate(&withdraw).is_ok());
    let e = validator(Some("110000")).validate(&withdraw).unwrap_err();
    assert_eq!((e[0].field.as_deref(), e[0].code.as_str()), (Some("reg_no"), "outside_jurisdiction"));
}

#[test]
fn withdraw_rows_need_only_reg_no() {
    let row = RawRow { row: 3, cells: vec![(Field::RegNo, text("4201022024y0001")), (Field::Op, text("WITHDRAW"))] };
    assert_eq!(validator(None).validate(&row), Ok(Row::Withdraw { reg_no: "4201022024Y0001".into() }));
    let bad = RawRow { row: 3, cells: vec![(Field::RegNo, text("x")), (Field::Op, text("撤销"))] };
    assert_eq!(errors(&bad), vec![("reg_no".to_string(), "bad_reg_no".to_string())]);
}

#[test]
fn future_dates_and_embargo_limits() {
    let (f, c) = one_error(&with(with(good(), Field::RegDate, text("2026-11-27")).cells, Field::RegNo, text("4201022026Y0001")));
    assert_eq!((f.as_str(), c.as_str()), ("reg_date", "date_in_future"));
    let row = with(good(), Field::EmbargoUntil, text("2029年3月5日"));
    assert!(validator(None).validate(&row).is_ok(), "exactly five years is allowed");
}

#[test]
fn spreadsheet_numbers_in_code_fields() {
    let row = with(good(), Field::Discipline, RawValue::Float(413.0));
    let Ok(Row::Upsert(r)) = validator(None).validate(&row) else { panic!() };
    assert_eq!(r.discipline, "413");
    let row = with(good(), Field::Region, RawValue::Float(420102.0));
    assert!(validator(None).validate(&row).is_ok());
    let (f, c) = one_error(&with(good(), Field::PlanNo, RawValue::Float(1234567890123456.0)));
    assert_eq!((f.as_str(), c.as_str()), ("plan_no", "inexact_number"));
    let (f, c) = one_error(&with(good(), Field::Discipline, RawValue::Float(41.3)));
    assert_eq!((f.as_str(), c.as_str()), ("discipline", "inexact_number"));
}

#[test]
fn json_values_of_the_wrong_kind_are_errors() {
    let (f, c) = one_error(&with(good(), Field::Title, RawValue::List(vec![text("a")])));
    assert_eq!((f.as_str(), c.as_str()), ("title", "bad_type"));
    let (f, c) = one_error(&with(good(), Field::Persons, RawValue::List(vec![RawValue::Invalid("object")])));
    assert_eq!((f.as_str(), c.as_str()), ("persons", "bad_type"));
    let row = with(good(), Field::Persons, RawValue::List(vec![text("甲"), text("乙、丙")]));
    let Ok(Row::Upsert(r)) = validator(None).validate(&row) else { panic!() };
    assert_eq!(r.persons, vec!["甲", "乙", "丙"]);
    let row = with(good(), Field::FiscalFunded, RawValue::Bool(true));
    let Ok(Row::Upsert(r)) = validator(None).validate(&row) else { panic!() };
    assert_eq!(r.fiscal_funded, Some(true));
}

#[test]
fn lengths_count_scalar_values_not_bytes() {
    // 100 four-byte characters is 400 bytes but exactly 100 characters.
    let row = with(good(), Field::Title, text(&"𠀀".repeat(100)));
    assert!(validator(None).validate(&row).is_ok());
}

#[test]
fn every_error_message_is_chinese_then_english() {
    let row = with(with(good(), Field::Trl, text("10")).cells, Field::Kind, text("x"));
    for e in validator(None).validate(&row).unwrap_err() {
        assert!(e.message.ends_with(')') && e.message.contains(" ("), "{}", e.message);
        assert!(!e.message.is_ascii(), "{}", e.message);
    }
}

proptest! {
    #[test]
    fn list_parsing_keeps_every_item(items in prop::collection::vec("[^;；、\\s]{1,8}", 0..10), seps in prop::collection::vec(prop::sample::select(vec![";", "；", "、", " ; ", "；  "]), 10)) {
        let mut s = String::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 { s.push_str(seps[i % seps.len()]); }
            s.push_str(item);
        }
        prop_assert_eq!(record::split_list(&s), items);
    }

    #[test]
    fn decimals_parse_as_text_and_as_numbers(n in -1_000_000_000i64..1_000_000_000, frac in 0u32..100) {
        let text = format!("{n}.{frac:02}");
        let want: f64 = text.parse().unwrap();
        prop_assert_eq!(parse_decimal(&text), Some(want));
        // Thousands separators, as Excel's number formats write them.
        let abs = n.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, ch) in abs.chars().enumerate() {
            if i > 0 && (abs.len() - i) % 3 == 0 { grouped.push(','); }
            grouped.push(ch);
        }
        let sign = if n < 0 { "-" } else { "" };
        prop_assert_eq!(parse_decimal(&format!("{sign}{grouped}.{frac:02}")), Some(want));
        let row = with(good(), Field::Benefit, RawValue::Text(text.clone()));
        let Ok(Row::Upsert(r)) = validator(None).validate(&row) else { panic!("rejected {text}") };
        prop_assert_eq!(r.benefit, Some(want));
        let row = with(good(), Field::Benefit, RawValue::Float(want));
        let Ok(Row::Upsert(r)) = validator(None).validate(&row) else { panic!("rejected {want}") };
        prop_assert_eq!(r.benefit, Some(want));
    }

    #[test]
    fn decimal_parsing_never_panics(s in ".{0,20}") {
        let _ = parse_decimal(&s);
    }

    #[test]
    fn integral_trl_in_any_form(n in 1i64..=9) {
        for v in [RawValue::Int(n), RawValue::Float(n as f64), RawValue::Text(n.to_string())] {
            let row = with(good(), Field::Trl, v);
            let Ok(Row::Upsert(r)) = validator(None).validate(&row) else { panic!() };
            prop_assert_eq!(r.trl, Some(n as u8));
        }
    }

    #[test]
    fn validation_never_panics(values in prop::collection::vec(prop_oneof![
        ".{0,12}".prop_map(RawValue::Text),
        any::<i64>().prop_map(RawValue::Int),
        any::<f64>().prop_map(RawValue::Float),
        any::<bool>().prop_map(RawValue::Bool),
        Just(RawValue::Empty),
    ], 27)) {
        let row = RawRow { row: 1, cells: Field::ALL.iter().copied().zip(values).collect() };
        let _ = validator(Some("420000")).validate(&row);
    }
}

/// A record the intake makes from `good()`.
fn good_record() -> Record {
    match validator(None).validate(&RawRow { row: 2, cells: good() }) {
        Ok(Row::Upsert(r)) => r,
        other => panic!("good() is not good: {other:?}"),
    }
}

/// Values a field may take in the generated records below: the format's own, and the
/// ones that differ from it in a way a hostile child could try.
fn texts() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "测试成果",
        "",
        " ",
        " 前后空格 ",
        "'=1+1",
        "'-5",
        "'",
        "=1+1",
        "甲;乙",
        "甲、乙",
        "甲；乙",
        "a\tb",
        "\u{3000}全角空格",
        "4201022024Y0001",
        "4201022024y0001",
        "420102",
        "110101",
        "000000",
        "999999",
        "413",
        "41301",
        "4130",
        "C27",
        "c27",
        "C",
        "Z99",
        "I6510",
        "初期阶段",
        "国际领先",
        "计划外",
        "国家计划",
        "转让",
        "发明专利:ZL2024",
        "发明专利：ZL2024",
        "发明专利:",
        "专利:1",
        "技术秘密: 1",
        "027-8888 8888",
        "+86 27 8888",
        "12345",
        "027-8888x",
        "2024YFC001",
    ])
    .prop_map(str::to_string)
    .boxed()
    .prop_union(prop::string::string_regex("[ a-z甲乙;、'=]{0,6}").unwrap().boxed())
    .or(prop::sample::select(vec![30usize, 31, 50, 51, 100, 101, 2000, 2001]).prop_map(|n| "字".repeat(n)).boxed())
}

fn numbers() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![0.0, -0.0, 1.0, -1.0, 0.1 + 0.2, 12.5, 1e-7, 1e15, 1e16, 1e21, 1e300, f64::NAN, f64::INFINITY])
            .prop_map(Some),
        any::<f64>().prop_map(Some),
    ]
}

fn dates() -> impl Strategy<Value = Date> {
    prop::sample::select(vec![(2024, 3, 5), (2023, 3, 5), (2026, 11, 26), (2026, 11, 27), (2029, 3, 5), (2029, 3, 6), (2031, 1, 1)])
        .prop_map(|(y, m, d)| Date::new(y, m, d).unwrap())
}

fn strings(n: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(texts(), 0..n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The fast check passes a record only where its cells pass: it is sound.
    #[test]
    fn the_fast_check_passes_only_what_the_cells_pass(
        pick in prop::collection::vec(prop::bool::weighted(0.12), 26),
        t in prop::collection::vec(texts(), 16),
        l in prop::collection::vec(strings(22), 5),
        n in prop::collection::vec(numbers(), 2),
        d in prop::collection::vec(dates(), 2),
        kind in prop::sample::select(vec![Kind::Applied, Kind::Basic, Kind::Soft]),
        trl in prop::option::of(0u8..12),
        flags in prop::collection::vec(any::<bool>(), 4),
        node in prop::sample::select(vec![None, Some("420100"), Some("110000")]),
    ) {
        let mut r = good_record();
        // Each field keeps its good value or takes a generated one.
        let text = |i: usize| t[i].clone();
        let opt = |i: usize, on: bool| on.then(|| t[i].clone());
        if pick[0] { r.reg_no = text(0); }
        if pick[1] { r.title = text(1); }
        if pick[2] { r.kind = kind; }
        if pick[3] { r.region = text(2); }
        if pick[4] { r.reg_date = d[0]; }
        if pick[5] { r.first_unit = text(3); }
        if pick[6] { r.units = l[0].clone(); }
        if pick[7] { r.persons = l[1].clone(); }
        if pick[8] { r.keywords = l[2].clone(); }
        if pick[9] { r.discipline = text(4); }
        if pick[10] { r.industry = opt(5, flags[0]); }
        if pick[11] { r.stage = opt(6, flags[1]); }
        if pick[12] { r.level = opt(7, flags[2]); }
        if pick[13] { r.trl = trl; }
        if pick[14] { r.task_source = text(8); }
        if pick[15] { r.plan_no = opt(9, flags[3]); }
        if pick[16] { r.fiscal_funded = Some(flags[0]); }
        if pick[17] { r.ip = l[3].clone(); }
        if pick[18] { r.transfer = opt(10, flags[1]); }
        if pick[19] { r.r#abstract = text(11); }
        if pick[20] { r.funding = n[0]; }
        if pick[21] { r.benefit = n[1]; }
        if pick[22] { r.contact = opt(12, flags[2]); }
        if pick[23] { r.phone = opt(13, flags[3]); }
        if pick[24] { r.secret = if flags[0] { Secret::Internal } else { Secret::Public }; }
        if pick[25] { r.embargo_until = Some(d[1]); }
        let v = validator(node);
        if v.passes(&r) {
            prop_assert!(v.check_through_cells(&r).is_ok(), "the fast check passed what the cells refuse: {:?}", v.check_through_cells(&r));
        }
    }
}

#[test]
fn records_as_the_intake_writes_them_take_the_fast_way() {
    let v = validator(Some("420100"));
    let mut r = good_record();
    assert!(v.passes(&r));
    // Every field filled, as a full register row would.
    r.units = vec!["武汉大学".into(), "华中科技大学".into()];
    r.keywords = vec!["材料".into()];
    r.level = Some("国内领先".into());
    r.trl = Some(6);
    r.fiscal_funded = Some(true);
    r.ip = vec!["发明专利:ZL202410000001.1".into(), "技术秘密：工艺".into()];
    r.transfer = Some("许可".into());
    r.funding = Some(120.5);
    r.benefit = Some(-3.0);
    r.contact = Some("王五".into());
    r.phone = Some("027-8888 8888".into());
    r.secret = Secret::Internal;
    r.embargo_until = Some(Date::new(2027, 1, 1).unwrap());
    assert!(v.passes(&r));
    assert_eq!(v.check_record(&r), Ok(()));
    // Outside the node, a cell not as the format writes it: the long way, and its errors.
    assert!(!validator(Some("110000")).passes(&r));
    assert_eq!(validator(Some("110000")).check_record(&r).unwrap_err()[0].code, "outside_jurisdiction");
    r.title = " 前后空格".into();
    assert!(!v.passes(&r));
    assert_eq!(v.check_record(&r).unwrap_err()[0].code, "not_canonical");
}
