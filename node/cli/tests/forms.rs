//! Office forms (spec v1.1 §1.1): the registers offices really keep, through
//! `huijiao check` and a running node — the shared `forms/` samples, and generated
//! variants of where the header and the trailer can be.

mod common;
use common::*;
use huijiao_kit::xlsx_writer::{workbook_sheets, workbook_xls, Cell};
use serde_json::Value;
use std::process::Command;

fn forms() -> std::path::PathBuf {
    samples().join("forms")
}

fn forms_expected() -> serde_json::Map<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(forms().join("expected.json")).unwrap()).unwrap()
}

/// The form checks on top of [`assert_verdict`]: warning codes, classified rows
/// refused without a reg_no.
fn assert_form(file: &str, report: &Value, verdict: &Value) {
    assert_verdict(file, report, verdict);
    let warned: Vec<&str> = report["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
    for code in verdict["warn_codes"].as_array().unwrap() {
        assert!(warned.contains(&code.as_str().unwrap()), "{file}: warning {code} missing from {warned:?}");
    }
    for (row, case) in verdict["rejected_rows"].as_object().unwrap() {
        if case["case"] == "classified" {
            let errs: Vec<&Value> = report["errors"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["row"].as_u64().map(|r| r.to_string()).as_deref() == Some(row.as_str()))
                .collect();
            assert_eq!(errs.len(), 1, "{file} row {row}: one error only");
            assert_eq!((errs[0]["code"].as_str(), errs[0]["reg_no"].is_null()), (Some("classified"), true), "{file} row {row}");
        }
    }
}

#[test]
fn the_form_samples_give_their_verdicts_through_check_and_a_node() {
    let expected = forms_expected();
    let mut node = Node::new("000000");
    node.start();
    for (file, verdict) in &expected {
        let out = Command::new(bin()).args(["check", "--json", "--node", "000000"]).arg(forms().join(file)).output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_form(file, &report, verdict);
        node.drop_file(file, &std::fs::read(forms().join(file)).unwrap());
    }
    for (file, verdict) in &expected {
        let report = node.wait_handled(file, 1);
        assert_form(file, &report, verdict);
        // The rejected rows keep the form's own header, so fixed rows can be pasted back.
        let rejected = node.reports().into_iter().find(|(_, r)| r["file"] == file.as_str()).unwrap().0;
        let rejected = std::path::PathBuf::from(rejected.to_string_lossy().replace(".report.json", ".rejected.csv"));
        let Ok(text) = std::fs::read_to_string(&rejected) else {
            // Nothing to echo: every rejected row was classified.
            assert!(verdict["rejected_rows"].as_object().unwrap().values().all(|c| c["case"] == "classified"), "{file}");
            continue;
        };
        if file.ends_with(".xlsx") && file.contains("title") {
            assert!(text.starts_with("\u{feff}序号,*登记号,成果名称"), "{file}: {}", &text[..60]);
        }
        for secret in ["机密", "绝密"] {
            assert!(!text.contains(secret), "{file}: a classified row was echoed");
        }
    }
    node.stop();
}

fn t(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

const HEADER: [&str; 13] = [
    "登记号",
    "成果名称",
    "成果类型",
    "行政区划代码",
    "登记日期",
    "第一完成单位",
    "主要完成人",
    "学科分类",
    "应用行业",
    "成果所处阶段",
    "任务来源",
    "成果简介",
    "密级",
];

fn data(serial: u32, title: &str) -> Vec<Cell> {
    let reg = format!("4201022024Y{serial:04}");
    [reg.as_str(), title, "应用技术", "420102", "2024-03-05", "武汉研究所", "张三", "413", "C27", "初期阶段", "计划外", "简介", "公开"]
        .iter()
        .map(|s| t(s))
        .collect()
}

fn header() -> Vec<Cell> {
    HEADER.iter().map(|h| t(h)).collect()
}

fn check_bytes(name: &str, bytes: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new(bin()).args(["check", "--json", "--node", "420102"]).arg(&p).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codes(r: &Value) -> Vec<String> {
    r["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_header_is_found_on_any_of_the_first_ten_rows() {
    for header_row in [1usize, 3, 10] {
        let mut rows: Vec<Vec<Cell>> = (1..header_row).map(|i| vec![t(&format!("标题行 {i}"))]).collect();
        rows.push(header());
        rows.push(data(1, "甲"));
        rows.push(data(2, "乙"));
        let r = check_bytes("a.xlsx", &workbook_sheets(&[("表", &rows)]));
        assert_eq!((r["accepted"].as_u64(), r["rejected"].as_u64()), (Some(2), Some(0)), "header on row {header_row}: {r}");
        assert_eq!(codes(&r).contains(&"title_rows_skipped".to_string()), header_row > 1, "{r}");
        // The same as Excel 97–2003 `.xls`: the same verdict and warnings.
        let x = check_bytes("a.xls", &workbook_xls(&[("表", &rows)]));
        assert_eq!((x["accepted"].as_u64(), x["rejected"].as_u64(), codes(&x)), (Some(2), Some(0), codes(&r)), "{x}");
        // The same as CSV: row numbers stay physical.
        let mut csv = String::new();
        for i in 1..header_row {
            csv.push_str(&format!("标题行 {i},,,\n"));
        }
        csv.push_str(&format!("{}\n", HEADER.join(",")));
        csv.push_str("4201022024Y0001,甲,应用技术,420102,2024-03-05,武汉研究所,张三,41,C27,初期阶段,计划外,简介,公开\n");
        let r = check_bytes("a.csv", csv.as_bytes());
        assert_eq!(r["errors"][0]["row"], (header_row + 1) as u64, "{r}");
    }
    // On row 11 it is too late: the file is refused, saying why.
    let mut rows: Vec<Vec<Cell>> = (1..11).map(|i| vec![t(&format!("标题行 {i}"))]).collect();
    rows.push(header());
    rows.push(data(1, "甲"));
    let r = check_bytes("a.xlsx", &workbook_sheets(&[("表", &rows)]));
    assert_eq!(r["refused"]["code"], "missing_column");
}

#[test]
fn a_title_naming_a_column_is_not_the_header() {
    let rows = vec![vec![t("成果名称汇总"), t("登记号"), t("密级")], vec![t("说明"), t("成果名称")], header(), data(1, "甲")];
    let r = check_bytes("a.xlsx", &workbook_sheets(&[("表", &rows)]));
    assert_eq!((r["accepted"].as_u64(), r["rows"].as_u64()), (Some(1), Some(1)), "{r}");
    assert_eq!(r["warnings"].as_array().unwrap().iter().find(|w| w["code"] == "title_rows_skipped").unwrap()["row"], 3);
}

#[test]
fn a_trailer_word_in_a_row_with_a_reg_no_is_data() {
    let mut rows = vec![header(), data(1, "合计算法研究"), data(2, "乙")];
    rows[1][0] = t("4201022024Y0001");
    let mut trailer_first = data(3, "丙");
    trailer_first[1] = t("合计");
    rows.push(trailer_first);
    rows.push(vec![Cell::Empty, t("合计"), t("共 3 项")]);
    rows.push(vec![Cell::Empty, t("填表人：张三"), Cell::Empty, t("审核人：李四")]);
    rows.push(data(4, "表尾之后"));
    let r = check_bytes("a.xlsx", &workbook_sheets(&[("表", &rows)]));
    // Rows with a 登记号 are data even with 合计 in them; the trailer starts at the
    // first row without one and ends the data.
    assert_eq!((r["rows"].as_u64(), r["accepted"].as_u64()), (Some(3), Some(3)), "{r}");
    let w = r["warnings"].as_array().unwrap().iter().find(|w| w["code"] == "trailer_rows_skipped").unwrap().clone();
    assert_eq!(w["row"], 5, "{w}");
}

#[test]
fn sheets_before_the_data_are_skipped_and_a_workbook_of_instructions_is_refused() {
    let notes: Vec<Vec<Cell>> = vec![vec![t("填表说明")], vec![t("一、登记号必填")]];
    let data_rows = vec![header(), data(1, "甲")];
    let r = check_bytes("a.xlsx", &workbook_sheets(&[("填表说明", &notes), ("登记表", &data_rows), ("附表", &notes)]));
    assert_eq!(r["accepted"], 1, "{r}");
    let skipped: Vec<&str> =
        r["warnings"].as_array().unwrap().iter().filter(|w| w["code"] == "sheet_skipped").map(|w| w["field"].as_str().unwrap()).collect();
    assert_eq!(skipped, vec!["填表说明", "附表"]);
    let r = check_bytes("a.xlsx", &workbook_sheets(&[("填表说明", &notes), ("说明二", &notes)]));
    assert_eq!(r["refused"]["code"], "missing_column", "{r}");
}

#[test]
fn decorated_headers_serial_numbers_and_text_dates_and_numbers() {
    let h: Vec<Cell> = [
        "序号",
        "*登记号",
        "成果\n名称",
        "成果类型＊",
        "行政区划 代码",
        "登记日期",
        "第一完成单位",
        "主要完成人",
        "学科分类",
        "应用行业",
        "成果所处阶段",
        "任务来源",
        "成果简介",
        "密　级",
        "研究经费（万元）",
        "技术就绪水平",
    ]
    .iter()
    .map(|s| t(s))
    .collect();
    let mut rows = vec![h];
    for (i, date) in ["2024.3.5", "20240305", "2024年3月5日"].iter().enumerate() {
        let mut d = vec![t(&(i + 1).to_string())];
        let mut rest = data(i as u32 + 1, "甲");
        rest[4] = t(date);
        d.extend(rest);
        d.push(t("1,036.50"));
        d.push(t("7"));
        rows.push(d);
    }
    let r = check_bytes("a.xlsx", &workbook_sheets(&[("表", &rows)]));
    assert_eq!(r["accepted"], 3, "{r}");
    assert!(codes(&r).is_empty(), "序号 is ignored without a warning: {r}");
}
