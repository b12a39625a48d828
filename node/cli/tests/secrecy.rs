//! A classified marking anywhere in a file keeps the original out of every archive
//! (spec v1.2 §3), with the real binary: on a later sheet, a hidden one, after a 小计,
//! in a trailer, in an unknown column, under a secrecy column the node reads by its
//! meaning, escaped in JSON, in `.xlsx`, `.xls`, `.ods`-like and text files. Each case
//! goes through `check` and a daemon: the verdict, `original_not_kept`, and a search of
//! every file the node wrote (in UTF-8, UTF-16 and GBK) that finds the marked text
//! nowhere. A clean file — 技术秘密 is a kind of IP, not a marking — is archived.

mod common;
use common::*;
use huijiao_kit::hostile::{row, HEADER};
use huijiao_kit::xlsx_writer;
use serde_json::Value;

const NODE: &str = "420102";

fn not_kept(report: &Value) -> bool {
    report["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "original_not_kept")
}

/// Every form `needle` may take in a file the node wrote.
fn forms(needle: &str) -> Vec<Vec<u8>> {
    vec![
        needle.as_bytes().to_vec(),
        needle.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        encoding_rs::GBK.encode(needle).0.into_owned(),
    ]
}

/// Drops `bytes` as `name` into a fresh node and checks it the same way: `accepted`
/// rows, the original not kept, and `needle` nowhere the node wrote.
fn held_back(name: &str, bytes: &[u8], accepted: u64, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let checked = check_json(NODE, &path);
    assert_eq!(checked["accepted"].as_u64(), Some(accepted), "{name} (check): {checked}");
    assert!(not_kept(&checked), "{name} (check) does not say the original is not kept: {checked}");
    let mut node = Node::new(NODE);
    node.start();
    node.drop_file(name, bytes);
    let report = node.wait_handled(name, 1);
    assert_eq!(report["accepted"].as_u64(), Some(accepted), "{name}: {report}");
    assert!(not_kept(&report), "{name}: {report}");
    node.stop();
    let mut stack = vec![node.dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let data = std::fs::read(&p).unwrap_or_default();
            for f in forms(needle) {
                assert!(!data.windows(f.len()).any(|w| w == f), "{name}: `{needle}` is in {}", p.display());
            }
        }
    }
}

#[test]
fn a_marking_on_a_sheet_the_node_does_not_read_keeps_the_original_out() {
    let register = [text_cells(HEADER), text_cells(&row(1, "水稻育种", "公开")), text_cells(&row(2, "茶叶加工", "内部"))];
    let secret = [text_cells(HEADER), text_cells(&row(3, "绝密配方甲", "机密"))];
    let xlsx = xlsx_writer::workbook_sheets(&[("登记表", &register), ("涉密成果（不报送）", &secret)]);
    held_back("later-sheet.xlsx", &xlsx, 2, "绝密配方甲");
    let xls = xlsx_writer::workbook_xls(&[("登记表", &register), ("不报送", &secret)]);
    held_back("later-sheet.xls", &xls, 2, "绝密配方甲");
}

#[test]
fn a_marking_after_a_subtotal_or_in_a_trailer_keeps_the_original_out() {
    let grouped =
        format!("{HEADER}\n{}\n,小计,,,,,,,,,,,\n{}\n,合计,,,,,,,,,,,\n", row(1, "水稻育种", "公开"), row(4, "绝密配方乙", "绝密"));
    held_back("grouped.csv", grouped.as_bytes(), 1, "绝密配方乙");
    let trailer = format!("{HEADER}\n{}\n,注：另有机密成果丙未列入,,,,,,,,,,,\n", row(1, "水稻育种", "公开"));
    held_back("trailer.csv", trailer.as_bytes(), 1, "机密成果丙");
    let rows = [
        text_cells(HEADER),
        text_cells(&row(1, "水稻育种", "公开")),
        text_cells(",合计"),
        text_cells(",填表人：张三（注：绝密清单丁另报）"),
    ];
    held_back("trailer.xlsx", &xlsx_writer::workbook(&rows), 1, "绝密清单丁");
}

#[test]
fn secrecy_columns_are_read_by_their_meaning() {
    for (i, header) in ["密級", "密　级", "ＳＥＣＲＥＴ", "秘密等级", "MIJI"].into_iter().enumerate() {
        let head = HEADER.replace("密级", header);
        let csv = format!("{head}\n{}\n{}\n", row(1, "水稻育种", "公开"), row(2, &format!("机要项目{i}号"), "机密"));
        held_back(&format!("column-{i}.csv"), csv.as_bytes(), 1, &format!("机要项目{i}号"));
        let rows = [text_cells(&head), text_cells(&row(1, "水稻育种", "公开")), text_cells(&row(2, &format!("机要项目{i}号"), "机密"))];
        held_back(&format!("column-{i}.xlsx"), &xlsx_writer::workbook(&rows), 1, &format!("机要项目{i}号"));
    }
}

#[test]
fn a_marking_in_an_unknown_column_or_escaped_in_json_keeps_the_original_out() {
    let csv = format!("{HEADER},备注\n{},本成果实为机密（戊）\n", row(1, "水稻育种", "公开"));
    held_back("comment.csv", csv.as_bytes(), 1, "实为机密（戊）");
    let json = format!(
        "{{\"reg_no\":\"4201022024Y0001\",\"title\":\"水稻育种\",\"kind\":\"应用技术\",\"region\":\"420102\",\"reg_date\":\"2024-03-05\",\"first_unit\":\"武汉研究所\",\"persons\":[\"张三\"],\"discipline\":\"413\",\"industry\":\"C27\",\"stage\":\"初期阶段\",\"task_source\":\"计划外\",\"abstract\":\"简介\",\"secret\":\"公开\",\"note\":\"{}\"}}\n",
        "\\u673a\\u5bc6\\u5df1"
    );
    held_back("escaped.jsonl", json.as_bytes(), 1, "机密己");
}

#[test]
fn a_clean_file_with_a_trade_secret_entry_is_archived() {
    let csv = format!("{HEADER},知识产权\n{},技术秘密:JSMM-1\n", row(1, "水稻育种", "公开"));
    let mut node = Node::new(NODE);
    node.start();
    node.drop_file("clean.csv", csv.as_bytes());
    let report = node.wait_handled("clean.csv", 1);
    assert_eq!(report["accepted"], 1, "{report}");
    assert!(!not_kept(&report), "{report}");
    let kept = node.files_holding(&["水稻育种"]);
    assert!(kept.iter().any(|(p, _)| p.to_string_lossy().contains("processed") && p.ends_with("clean.csv")), "{kept:?}");
    node.stop();
}
