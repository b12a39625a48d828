//! Intake as a clerk's files really are, with the real binary through `check` and a
//! daemon: a cell over the length cap in a column the format does not know, a hidden
//! old register before the visible one, a two-level header, a file named in GBK from a
//! Windows zip, and `check`'s memory on a million repeated rows and a 100 MB CSV.

mod common;
use common::*;
use huijiao_kit::hostile::{row, HEADER};
use huijiao_kit::xlsx_writer::{self, Cell};
use serde_json::Value;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

const NODE: &str = "420102";

/// `check` and a daemon give `name` the same counts; the daemon's report.
fn both(name: &str, bytes: &[u8], accepted: u64, rejected: u64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let checked = check_json(NODE, &path);
    assert_eq!((checked["accepted"].as_u64(), checked["rejected"].as_u64()), (Some(accepted), Some(rejected)), "{name} (check): {checked}");
    let mut node = Node::new(NODE);
    node.start();
    node.drop_file(name, bytes);
    let report = node.wait_handled(name, 1);
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(accepted), Some(rejected)), "{name}: {report}");
    node.stop();
    report
}

#[test]
fn a_long_cell_in_an_unknown_column_refuses_its_row() {
    let long = "长".repeat(10_001);
    let csv = format!("{HEADER},备注\n{},{long}\n{},短备注\n", row(1, "水稻育种", "公开"), row(2, "茶叶加工", "公开"));
    let report = both("long-note.csv", csv.as_bytes(), 1, 1);
    let e = &report["errors"][0];
    assert_eq!((e["row"].as_u64(), e["code"].as_str()), (Some(2), Some("cell_too_long")), "{report}");
    assert!(!report.to_string().contains(&long[..300]), "the cell is not echoed");
}

#[test]
fn a_hidden_sheet_is_skipped_and_the_visible_register_read() {
    let old = [text_cells(HEADER), text_cells(&row(1, "旧表里的成果", "公开"))];
    let register = [text_cells(HEADER), text_cells(&row(2, "水稻育种", "公开")), text_cells(&row(3, "茶叶加工", "公开"))];
    let xlsx = xlsx_writer::workbook_sheets_states(&[("旧表", &old, "hidden"), ("登记表", &register, "visible")]);
    let report = both("hidden.xlsx", &xlsx, 2, 0);
    let skipped: Vec<&Value> = report["warnings"].as_array().unwrap().iter().filter(|w| w["code"] == "sheet_skipped").collect();
    assert!(skipped.iter().any(|w| w["field"] == "旧表" && w["message"].as_str().unwrap().contains("隐藏")), "{report}");
    let very = xlsx_writer::workbook_sheets_states(&[("底稿", &old, "veryHidden"), ("登记表", &register, "visible")]);
    both("very-hidden.xlsx", &very, 2, 0);
}

#[test]
fn a_two_level_header_is_read_as_one() {
    // 成果完成人 merged over three columns; 登记号 and the others span both rows.
    let upper = "登记号,成果名称,成果类型,行政区划代码,登记日期,成果完成人,,,学科分类,应用行业,成果所处阶段,任务来源,成果简介,密级";
    let lower = ",,,,,第一完成单位,完成单位,主要完成人,,,,,,";
    let data = |n: u32, title: &str| {
        format!("4201022024Y{n:04},{title},应用技术,420102,2024-03-05,武汉研究所,协作单位,张三,413,C27,初期阶段,计划外,简介,公开")
    };
    let csv = format!("{upper}\n{lower}\n{}\n{}\n", data(1, "水稻育种"), data(2, "茶叶加工"));
    let report = both("two-level.csv", csv.as_bytes(), 2, 0);
    assert!(report["warnings"].as_array().unwrap().iter().all(|w| w["code"] != "unknown_column"), "{report}");
    let rows = [text_cells(upper), text_cells(lower), text_cells(&data(1, "水稻育种")), text_cells(&data(2, "茶叶加工"))];
    both("two-level.xlsx", &xlsx_writer::workbook(&rows), 2, 0);
}

#[test]
fn a_file_named_in_gbk_leaves_the_inbox_once_with_one_report() {
    let name: Vec<u8> = encoding_rs::GBK.encode("年报.csv").0.into_owned();
    assert!(std::str::from_utf8(&name).is_err(), "a name that is not UTF-8");
    let mut node = Node::new(NODE);
    node.start();
    let csv = format!("{HEADER}\n{}\n", row(1, "水稻育种", "公开"));
    let inbox = node.inbox();
    let tmp = inbox.join(".gbk.tmp");
    std::fs::write(&tmp, csv).unwrap();
    let target = inbox.join(std::ffi::OsStr::from_bytes(&name));
    std::fs::rename(&tmp, &target).unwrap();
    wait_for("the file to leave the inbox", std::time::Duration::from_secs(60), || !target.exists() && node.reports().len() == 1);
    // A rescan (a second later, and another) finds nothing to read again.
    node.stop();
    node.start();
    node.drop_file("marker.csv", format!("{HEADER}\n{}\n", row(2, "茶叶加工", "公开")).as_bytes());
    node.wait_handled("marker.csv", 1);
    let reports = node.reports();
    assert_eq!(reports.len(), 2, "one report for the GBK-named file, one for the marker: {reports:?}");
    assert!(reports.iter().all(|(_, r)| r["warnings"].as_array().unwrap().iter().all(|w| w["code"] != "duplicate_file")), "{reports:?}");
    assert!(std::fs::read_dir(&inbox).unwrap().flatten().all(|e| e.file_name().as_bytes().starts_with(b".")), "the inbox is empty");
    node.stop();
}

/// `check --json` under GNU time: the report and the peak resident memory, in MiB.
fn check_measured(path: &Path) -> (Value, u64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak-kib %M"])
        .arg(bin())
        .args(["check", "--json", "--node", NODE])
        .arg(path)
        .output()
        .expect("GNU time (.ci/packages installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kib: u64 =
        stderr.lines().find_map(|l| l.strip_prefix("peak-kib ")).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("{stderr}"));
    (serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap(), kib / 1024)
}

#[test]
fn check_reads_a_million_repeated_rows_and_a_big_csv_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // A small .ods whose one data row is repeated a million times.
    let cells: String = row(1, "水稻育种", "公开")
        .split(',')
        .map(|c| format!("<table:table-cell office:value-type=\"string\"><text:p>{c}</text:p></table:table-cell>"))
        .collect();
    let header: String = HEADER
        .split(',')
        .map(|c| format!("<table:table-cell office:value-type=\"string\"><text:p>{c}</text:p></table:table-cell>"))
        .collect();
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\"><office:body><office:spreadsheet><table:table table:name=\"登记表\"><table:table-row>{header}</table:table-row><table:table-row table:number-rows-repeated=\"1000000\">{cells}</table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"
    );
    let ods = xlsx_writer::zip_stored(
        [("mimetype", &b"application/vnd.oasis.opendocument.spreadsheet"[..]), ("content.xml", content.as_bytes())].into_iter(),
    );
    let ods_path = dir.path().join("repeated.ods");
    std::fs::write(&ods_path, &ods).unwrap();
    assert!(ods.len() < 8 * 1024, "a small file: {} bytes", ods.len());
    let (checked, ods_peak) = check_measured(&ods_path);
    assert!(checked["rows"].as_u64().unwrap() >= 1_000_000, "{checked}");
    // A valid CSV of about 100 MB.
    let csv_path = dir.path().join("big.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv_path).unwrap());
        writeln!(f, "{HEADER}").unwrap();
        let filler = "长".repeat(300);
        let mut n = 0u32;
        while f.get_ref().metadata().unwrap().len() < 100 * 1024 * 1024 {
            for _ in 0..1000 {
                n += 1;
                writeln!(f, "4201022024Y{n:06},水稻{n},应用技术,420102,2024-03-05,武汉研究所,张三,413,C27,初期阶段,计划外,{filler},公开")
                    .unwrap();
            }
            f.flush().unwrap();
        }
    }
    let (checked, csv_peak) = check_measured(&csv_path);
    assert_eq!(checked["rejected"].as_u64(), Some(0), "{}", checked["errors"]);
    eprintln!("check's peak memory: {ods_peak} MiB on the repeated rows, {csv_peak} MiB on the 100 MB CSV");
    assert!(ods_peak <= 256 && csv_peak <= 256, "check held {ods_peak} / {csv_peak} MiB");
}

#[test]
fn a_formula_without_a_saved_result_is_named_and_a_clean_duplicate_names_no_rejected_file() {
    let mut cells = text_cells(&row(1, "水稻育种", "公开"));
    cells[0] = Cell::Formula("CONCAT(\"420102\",\"2024Y0001\")".into());
    let rows = [text_cells(HEADER), cells, text_cells(&row(2, "茶叶加工", "公开"))];
    let report = both("formula.xlsx", &xlsx_writer::workbook(&rows), 1, 1);
    let e = &report["errors"][0];
    assert_eq!((e["field"].as_str(), e["code"].as_str()), (Some("reg_no"), Some("bad_type")), "{report}");
    assert!(e["message"].as_str().unwrap().contains("公式"), "{report}");
    // The same clean file twice: the second says so, and names no rejected file.
    let mut node = Node::new(NODE);
    node.start();
    let csv = format!("{HEADER}\n{}\n", row(1, "水稻育种", "公开"));
    node.drop_file("a.csv", csv.as_bytes());
    node.wait_handled("a.csv", 1);
    node.drop_file("again.csv", csv.as_bytes());
    let again = node.wait_handled("again.csv", 1);
    let w =
        again["warnings"].as_array().unwrap().iter().find(|w| w["code"] == "duplicate_file").cloned().unwrap_or_else(|| panic!("{again}"));
    assert!(!w["message"].as_str().unwrap().contains("rejected.csv"), "{w}");
    node.stop();
}

/// An `.ods` of `tables` (name, hidden, rows of comma-separated cells).
fn ods(tables: &[(&str, bool, Vec<String>)]) -> Vec<u8> {
    let cell = |c: &str| format!("<table:table-cell office:value-type=\"string\"><text:p>{c}</text:p></table:table-cell>");
    let body: String = tables
        .iter()
        .map(|(name, hidden, rows)| {
            let style = if *hidden { " table:style-name=\"ta2\"" } else { " table:style-name=\"ta1\"" };
            let rows: String =
                rows.iter().map(|r| format!("<table:table-row>{}</table:table-row>", r.split(',').map(cell).collect::<String>())).collect();
            format!("<table:table table:name=\"{name}\"{style}>{rows}</table:table>")
        })
        .collect();
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" xmlns:style=\"urn:oasis:names:tc:opendocument:xmlns:style:1.0\" xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\"><office:automatic-styles><style:style style:name=\"ta1\" style:family=\"table\"><style:table-properties table:display=\"true\"/></style:style><style:style style:name=\"ta2\" style:family=\"table\"><style:table-properties table:display=\"false\"/></style:style></office:automatic-styles><office:body><office:spreadsheet>{body}</office:spreadsheet></office:body></office:document-content>"
    );
    xlsx_writer::zip_stored(
        [("mimetype", &b"application/vnd.oasis.opendocument.spreadsheet"[..]), ("content.xml", content.as_bytes())].into_iter(),
    )
}

#[test]
fn a_hidden_table_of_an_ods_is_skipped_too() {
    let old = vec![HEADER.to_string(), row(1, "旧表里的成果", "公开")];
    let register = vec![HEADER.to_string(), row(2, "水稻育种", "公开"), row(3, "茶叶加工", "公开")];
    let report = both("hidden.ods", &ods(&[("旧表", true, old), ("登记表", false, register)]), 2, 0);
    assert!(report["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "sheet_skipped" && w["field"] == "旧表"), "{report}");
}
