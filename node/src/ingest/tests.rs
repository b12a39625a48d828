use super::*;
use huijiao_kit::xlsx_writer::{workbook, Cell as XCell};
use huijiao_protocol::fields::ERROR_COLUMN;
use huijiao_protocol::{Date, RegionTable};

const HEADER: &str =
    "登记号,成果名称,成果类型,行政区划代码,登记日期,第一完成单位,主要完成人,学科分类,应用行业,成果所处阶段,任务来源,成果简介,密级";
const ROW: &str = "4201022024Y0001,测试成果,应用技术,420102,2024-03-05,武汉研究所,张三,413,C27,初期阶段,计划外,简介,公开";

fn validator() -> Validator<'static> {
    Validator { regions: RegionTable::embedded(), today: Date::new(2026, 11, 26).unwrap(), node: Some("420102") }
}

/// A file's report, valid rows and `NAME.rejected.csv` (without its BOM), as the
/// inbox would make them without a store.
fn run_with(name: &str, bytes: &[u8], limits: &Limits) -> (Report, Vec<(u64, Row)>, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let mut spool = Spool::new(dir.path(), u64::MAX).unwrap();
    let mut sink = Collect::default();
    let c = check_file(&p, &validator(), limits, &mut sink, Some(&mut spool));
    let rejected = (!spool.is_empty()).then(|| {
        let mut out = Vec::new();
        spool.write_csv(&c.columns, &mut out).unwrap();
        assert!(out.starts_with(&[0xEF, 0xBB, 0xBF]));
        String::from_utf8(out[3..].to_vec()).unwrap()
    });
    (c.report, sink.rows, rejected)
}

fn run(name: &str, bytes: &[u8]) -> (Report, Vec<(u64, Row)>, Option<String>) {
    run_with(name, bytes, &Limits::default())
}

fn check(name: &str, bytes: &[u8]) -> Report {
    run(name, bytes).0
}

fn refusal(name: &str, bytes: &[u8]) -> String {
    let r = check(name, bytes);
    assert_eq!((r.rows, r.accepted), (0, 0));
    r.refused.expect("refused").code
}

#[test]
fn one_refusal_per_kind() {
    assert_eq!(refusal("a.txt", b"x"), "unsupported_file_type");
    assert_eq!(refusal("a.xls", b"x"), "unreadable_xls");
    assert_eq!(run_with("a.csv", format!("{HEADER}\n{ROW}\n").as_bytes(), &Limits::new(10)).0.refused.unwrap().code, "file_too_large");
    assert_eq!(refusal("a.csv", b""), "empty_file");
    assert_eq!(refusal("a.csv", format!("{HEADER}\r\n").as_bytes()), "no_data_rows");
    assert_eq!(refusal("a.csv", format!("{HEADER}\n,,,\n\n").as_bytes()), "no_data_rows");
    assert_eq!(refusal("a.json", b"[]"), "no_data_rows");
    assert_eq!(refusal("a.jsonl", b"\n\n"), "no_data_rows");
    assert_eq!(refusal("a.csv", b"\x81\x20\x81\x20,\xff\xfe"), "undecodable");
    assert_eq!(refusal("a.csv", b"PK\x03\x04\0\0\x01\x02"), "binary_file");
    assert_eq!(refusal("a.csv", b"\xff\xfea\0,\0"), "unsupported_encoding");
    assert_eq!(refusal("a.json", b"[{\"reg_no\": \"1"), "malformed_json");
    assert_eq!(refusal("a.json", b"42"), "not_object_or_array");
    assert_eq!(refusal("a.csv", "登记号,成果类型\n4201022024Y0001,应用技术\n".as_bytes()), "missing_column");
    assert_eq!(refusal("a.csv", "成果名称\n甲\n".as_bytes()), "missing_column");
    assert_eq!(refusal("a.xlsx", b"not a zip at all"), "unreadable_xlsx");
    assert_eq!(refusal("a.ods", b"not a zip at all"), "unreadable_ods");
}

#[test]
fn a_withdraw_only_file_needs_only_reg_no() {
    let r = check("w.csv", "登记号,操作\n4201022024Y0001,撤销\n".as_bytes());
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(check("w.csv", "登记号,操作\n4201022024Y0001,登记\n".as_bytes()).refused.unwrap().code, "missing_column");
    let r = check("w.csv", "登记号,操作\n4201022024Y0002,撤销\n4201022024Y0003,登记\n".as_bytes());
    assert_eq!(r.refused.unwrap().code, "missing_column", "an upsert after withdrawals still needs every required column");
}

#[test]
fn rows_are_numbered_as_the_clerk_sees_them() {
    // A quoted line break, an empty line and an Excel blank row all keep numbering right.
    let csv = format!("{HEADER}\n{}\n\n,,,,\n{}\n", ROW.replace("简介", "\"第一行\n第二行\""), ROW.replace("413", "41"));
    let r = check("a.csv", csv.as_bytes());
    assert_eq!((r.rows, r.accepted, r.rejected), (2, 1, 1));
    assert_eq!(r.errors[0].row, 5);
    assert_eq!(r.errors[0].field.as_deref(), Some("discipline"));
}

#[test]
fn broken_csv_rows_are_row_errors() {
    let csv = format!("{HEADER}\n{ROW},多余\n{}\n{}\n", ROW.replace("4201022024Y0001", "4201022024Y0002"), ROW.replace("简介", "\"未闭合"));
    let r = check("a.csv", csv.as_bytes());
    assert_eq!((r.accepted, r.rejected), (1, 2));
    assert_eq!((r.errors[0].row, r.errors[0].code.as_str()), (2, "too_many_cells"));
    assert_eq!((r.errors[1].row, r.errors[1].code.as_str(), r.errors[1].field.clone()), (4, "unterminated_quote", None));
}

#[test]
fn a_stray_comma_before_an_empty_last_column_is_too_many_cells() {
    let header = format!("{HEADER},延期公开至");
    let row = format!("{},", ROW.replace("测试成果", "测试,成果"));
    let r = check("a.csv", format!("{header}\n{row}\n").as_bytes());
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(r.errors[0].code, "too_many_cells");
}

#[test]
fn gbk_and_utf8_give_the_same_rows() {
    let text = format!("{HEADER}\n{ROW}\n");
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let a = check("a.csv", &gbk);
    let b = check("a.csv", text.as_bytes());
    assert_eq!(a.encoding.as_deref(), Some("gbk"));
    assert!(a.is_clean() && b.is_clean());
}

#[test]
fn unknown_columns_warn_and_english_headers_match_any_case() {
    let csv = format!("{},备注\n{ROW},x\n", HEADER.replace("登记号", "REG_NO").replace("成果名称", "Title"));
    let r = check("a.csv", csv.as_bytes());
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.warnings.len(), 1);
    assert_eq!((r.warnings[0].code.as_str(), r.warnings[0].field.as_deref()), ("unknown_column", Some("备注")));
}

fn sheet(extra: Vec<(&str, XCell)>) -> Vec<u8> {
    let mut header: Vec<XCell> = HEADER.split(',').map(|h| XCell::Text(h.into())).collect();
    let mut row: Vec<XCell> = ROW.split(',').map(|v| XCell::Text(v.into())).collect();
    for (col, cell) in extra {
        let i = HEADER.split(',').position(|h| h == col);
        match i {
            Some(i) => row[i] = cell,
            None => {
                header.push(XCell::Text(col.into()));
                row.push(cell);
            }
        }
    }
    workbook(&[header, row])
}

#[test]
fn xlsx_date_cells_and_numeric_codes() {
    let bytes = sheet(vec![
        ("登记日期", XCell::Date(Date::new(2024, 3, 5).unwrap())),
        ("学科分类", XCell::Number(413.0)),
        ("行政区划代码", XCell::Number(420102.0)),
    ]);
    let (report, rows, _) = run("a.xlsx", &bytes);
    assert!(report.is_clean(), "{report:?}");
    let Row::Upsert(r) = &rows[0].1 else { panic!() };
    assert_eq!((r.reg_date.to_string().as_str(), r.discipline.as_str()), ("2024-03-05", "413"));
}

#[test]
fn a_code_too_long_to_be_exact_is_a_row_error_not_rounded() {
    let bytes = sheet(vec![("计划编号", XCell::Number(2024123456789012.0)), ("任务来源", XCell::Text("国家计划".into()))]);
    let r = check("a.xlsx", &bytes);
    assert_eq!((r.accepted, r.rejected), (0, 1));
    assert_eq!((r.errors[0].row, r.errors[0].field.as_deref(), r.errors[0].code.as_str()), (2, Some("plan_no"), "inexact_number"));
}

#[test]
fn json_rows_and_jsonl_lines() {
    let obj = r#"{"reg_no":"4201022024Y0001","title":"测试","kind":"applied","region":420102,"reg_date":"2024/3/5","first_unit":"所","persons":["甲","乙"],"discipline":"413","industry":"C27","stage":"初期阶段","task_source":"计划外","abstract":"简介","secret":"公开","trl":5,"extra":1}"#;
    let r = check("a.json", obj.as_bytes());
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.warnings[0].field.as_deref(), Some("extra"));
    let arr = format!("[{obj}, 7, {}]", obj.replace("\"trl\":5", "\"trl\":10"));
    let r = check("a.json", arr.as_bytes());
    assert_eq!(r.rejected_rows(), vec![2, 3]);
    assert_eq!(r.errors[0].code, "not_an_object");
    let lines = format!("{obj}\n\n{{broken\n{}\n", obj.replace("4201022024Y0001", "4201022024Y0002"));
    let r = check("a.ndjson", lines.as_bytes());
    assert_eq!((r.rows, r.accepted), (3, 2));
    assert_eq!((r.errors[0].row, r.errors[0].code.as_str()), (3, "malformed_json_line"));
    let r = check("a.ndjson", format!("{obj}\n{{\"x\":\"公开\" oops\n").as_bytes());
    assert_eq!((r.errors[0].row, r.errors[0].code.as_str()), (2, "malformed_json_line"));
    assert!(r.errors[0].message.contains("第 11 列"), "{}", r.errors[0].message);
    // A number out of range is a row error, not a broken file.
    let r = check("a.json", format!("[{}]", obj.replace("\"trl\":5", "\"funding\":1e999")).as_bytes());
    assert_eq!((r.rejected, r.errors[0].field.as_deref(), r.errors[0].code.as_str()), (1, Some("funding"), "bad_number"));
}

#[test]
fn rejected_csv_keeps_rows_as_given_and_leaves_out_classified_ones() {
    let bad = ROW.replace("413", "41");
    let secret = ROW.replace("公开", "机密").replace("测试成果", "不可外泄的名称");
    let csv = format!("{HEADER},备注\n{ROW},a\n{bad},b\n{secret},c\n");
    let (report, _, rejected) = run("a.csv", csv.as_bytes());
    assert_eq!(report.rejected_rows(), vec![3, 4]);
    let text = rejected.unwrap();
    assert!(!text.contains("不可外泄") && !text.contains("机密"), "classified content echoed: {text}");
    let rows = text::parse_csv(&text);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].fields.last().unwrap(), ERROR_COLUMN);
    assert_eq!(rows[1].fields[..rows[1].fields.len() - 1].join(","), format!("{bad},b"));
    assert!(rows[1].fields.last().unwrap().contains("discipline"));
    // The clerk fixes the row and drops the file back in: the error column is ignored.
    let fixed = format!("{}\n{ROW},b,旧错误", text.lines().next().unwrap());
    let r = check("fixed.csv", fixed.as_bytes());
    assert!(r.is_clean() && r.warnings.iter().all(|w| w.field.as_deref() == Some("备注")), "{r:?}");
}

#[test]
fn ignored_names_follow_the_spec() {
    for n in [".hidden.csv", "~$book.xlsx", "a.csv.tmp", "a.part", "a.crdownload", "a.csv.swp", "A.TMP"] {
        assert!(is_ignored_name(n), "{n}");
    }
    for n in ["a.csv", "a.tmp.csv", "批次.xlsx"] {
        assert!(!is_ignored_name(n), "{n}");
    }
}

/// A register with everything an `.xls` reader meets: a title row, long texts (the
/// string table runs over several `CONTINUE` records, strings cut mid-way), dates
/// with a built-in and a custom format, whole numbers (`RK`) and fractions
/// (`NUMBER`), formatted empty cells and a formatted empty row, a trailer.
fn register(n: usize) -> Vec<Vec<XCell>> {
    let t = |s: &str| XCell::Text(s.to_string());
    let mut rows = vec![vec![t("2025年度XX县科技成果登记汇总表")]];
    rows.push(HEADER.split(',').chain(["研究经费（万元）"]).map(t).collect());
    for i in 0..n {
        let mut r: Vec<XCell> = ROW.split(',').map(t).collect();
        r[0] = t(&format!("4201022024Y{:04}", i + 1));
        r[1] = t(&format!("第{i}号成果：基于深度学习的水稻病虫害智能识别与绿色防控关键技术研究及其推广应用"));
        r[4] = XCell::Date(Date::new(2024, 3, 1 + (i % 28) as u8).unwrap());
        r[7] = XCell::Number(413.0);
        r.push(XCell::Number(1036.5 + i as f64));
        rows.push(r);
        if i == 3 {
            rows.push(vec![XCell::Empty; 14]);
        }
    }
    rows.push(vec![XCell::Empty, t("合计"), t(&format!("共 {n} 项"))]);
    rows
}

#[test]
fn xls_reads_as_the_same_rows_as_xlsx() {
    for n in [1usize, 300] {
        let rows = register(n);
        let xlsx = huijiao_kit::xlsx_writer::workbook_sheets(&[("登记表", &rows)]);
        let xls = huijiao_kit::xlsx_writer::workbook_xls(&[("登记表", &rows)]);
        // One data row fits the mini stream; 300 do not.
        assert_eq!(xls.len() < 8192, n == 1, "{}", xls.len());
        let (a, a_rows, _) = run("a.xlsx", &xlsx);
        let (b, b_rows, _) = run("a.xls", &xls);
        assert!(a.is_clean() || a.errors.is_empty(), "{a:?}");
        assert_eq!((b.rows, b.accepted, b.rejected), (n as u64, n as u64, 0), "{b:?}");
        assert_eq!(format!("{:?}", a_rows), format!("{:?}", b_rows));
        let codes = |r: &Report| r.warnings.iter().map(|w| (w.code.clone(), w.row)).collect::<Vec<_>>();
        assert_eq!(codes(&a), codes(&b));
        let Row::Upsert(last) = &b_rows[n - 1].1 else { panic!() };
        assert!(last.title.ends_with("推广应用"), "{}", last.title);
        assert_eq!(last.reg_date, Date::new(2024, 3, 1 + ((n - 1) % 28) as u8).unwrap());
        // Physical rows: the title, the header, then data (the blank row counted).
        assert_eq!(b_rows[0].0, 3);
    }
}

#[test]
fn xls_sheets_before_the_data_are_skipped() {
    let notes = vec![vec![XCell::Text("填表说明".into())], vec![XCell::Text("一、登记号必填".into())]];
    let rows = register(2);
    let xls = huijiao_kit::xlsx_writer::workbook_xls(&[("填表说明", &notes), ("登记表", &rows), ("附表", &notes)]);
    let r = check("a.xls", &xls);
    assert_eq!(r.accepted, 2, "{r:?}");
    let skipped: Vec<_> = r.warnings.iter().filter(|w| w.code == "sheet_skipped").map(|w| w.field.clone().unwrap()).collect();
    assert_eq!(skipped, ["填表说明", "附表"]);
    let only_notes = huijiao_kit::xlsx_writer::workbook_xls(&[("填表说明", &notes)]);
    assert_eq!(refusal("a.xls", &only_notes), "missing_column");
}

/// Replaces the first occurrence of `from` in `bytes`.
fn patch(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn hostile_xls_is_refused_naming_why() {
    let good = huijiao_kit::xlsx_writer::workbook_xls(&[("登记表", &register(300))]);
    let why = |bytes: &[u8]| {
        let r = check("a.xls", bytes);
        let refused = r.refused.expect("refused");
        assert_eq!(refused.code, "unreadable_xls");
        refused.message
    };
    // Cut short, not a compound file, an older BIFF, encrypted.
    let cut = why(&good[..good.len() / 2]);
    assert!(cut.contains("larger than the file") || cut.contains("outside the file"), "{cut}");
    assert!(why(&[b"PK\x03\x04".as_slice(), &[0u8; 600]].concat()).contains("signature"));
    assert!(why(b"PK\x03\x04 short").contains("too short"));
    assert!(why(&patch(&good, &[0x09, 0x08, 16, 0, 0x00, 0x06], &[0x09, 0x08, 16, 0, 0x00, 0x05])).contains("5.0/95"));
    assert!(why(&patch(&good, &[0xE0, 0x00, 20, 0], &[0x2F, 0x00, 20, 0])).contains("encrypted"));
    // A BIFF8 workbook stream named `Book` (as some tools write it) is read.
    let dir_at = (u32::from_le_bytes(good[0x30..0x34].try_into().unwrap()) as usize + 1) * 512 + 128;
    let mut book = good.clone();
    let name: Vec<u8> = "Book".encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
    book[dir_at..dir_at + 64].fill(0);
    book[dir_at..dir_at + name.len()].copy_from_slice(&name);
    book[dir_at + 0x40..dir_at + 0x42].copy_from_slice(&(name.len() as u16).to_le_bytes());
    assert_eq!(check("a.xls", &book).accepted, 300);
    // Sheet offsets a writer got wrong: the worksheets are taken in stream order.
    let boundsheet = good.windows(4).position(|w| w == [0x85, 0x00, 8 + 2 * 3, 0]).expect("a BOUNDSHEET record of 登记表");
    let mut shifted = good.clone();
    shifted[boundsheet + 4..boundsheet + 8].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(check("a.xls", &shifted).accepted, 300);
    // A chain of sectors that loops: the workbook's first sector points to itself.
    let dir = u32::from_le_bytes(good[0x30..0x34].try_into().unwrap()) as usize;
    let book = (dir + 1) * 512 + 128;
    let first_data = u32::from_le_bytes(good[book + 0x74..book + 0x78].try_into().unwrap());
    let fat_entry = 512 + 4 * first_data as usize;
    let mut looped = good.clone();
    looped[fat_entry..fat_entry + 4].copy_from_slice(&first_data.to_le_bytes());
    assert!(why(&looped).contains("loops"), "{}", why(&looped));
    // A sector table that claims more sectors than the file holds.
    let mut huge = good.clone();
    huge[0x2C..0x30].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(why(&huge).contains("larger than the file"));
}

#[test]
fn no_byte_flipped_in_an_xls_panics_or_hangs() {
    // A workbook in regular sectors, and one small enough for the mini stream.
    let big = huijiao_kit::xlsx_writer::workbook_xls(&[("登记表", &register(40))]);
    let small = huijiao_kit::xlsx_writer::workbook_xls(&[("登记表", &register(1))]);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..4000 {
        let good = if round % 4 == 3 { &small } else { &big };
        let mut bytes = good.clone();
        for _ in 0..4 {
            // xorshift: reproducible positions and values.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % bytes.len() as u64) as usize;
            bytes[at] = (state >> 32) as u8;
        }
        // Anything but a panic (which the reader thread turns into `unreadable_file`)
        // is fine: a verdict or a refusal.
        let r = check("a.xls", &bytes);
        assert_ne!(r.refused.map(|x| x.code).as_deref(), Some("unreadable_file"));
    }
    // Cut anywhere.
    for cut in (0..small.len()).step_by(61).chain((0..big.len()).step_by(997)) {
        let bytes = if cut < small.len() && cut % 2 == 0 { &small[..cut] } else { &big[..cut.min(big.len())] };
        assert_ne!(check("a.xls", bytes).refused.map(|x| x.code).as_deref(), Some("unreadable_file"), "cut at {cut}");
    }
}

/// The generators of the test kit write files this reader takes back unchanged.
#[test]
fn generated_records_are_valid_in_every_format_and_about_a_kibibyte() {
    let today = Date::new(2026, 11, 26).unwrap();
    let mut g = huijiao_kit::synth::Generator::new(7);
    let recs: Vec<huijiao_protocol::Record> = (0..50).map(|i| g.record("420102", i, today)).collect();
    let avg = recs.iter().map(|r| r.canonical_json().len()).sum::<usize>() / recs.len();
    assert!((800..1400).contains(&avg), "average record {avg} bytes");
    let rows: Vec<Vec<String>> = recs.iter().map(huijiao_kit::synth::cells).collect();
    let v = Validator { regions: RegionTable::embedded(), today, node: Some("420102") };
    for (name, bytes) in [
        ("a.csv", huijiao_kit::synth::csv(&rows, false)),
        ("b.csv", huijiao_kit::synth::csv(&rows, true)),
        ("c.jsonl", huijiao_kit::synth::jsonl(&recs)),
        ("d.json", huijiao_kit::synth::json_array(&recs)),
        ("e.xlsx", huijiao_kit::synth::xlsx(&rows)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let mut sink = Collect::default();
        let c = check_file(&path, &v, &Limits::default(), &mut sink, None);
        assert!(c.report.is_clean(), "{name}: {:?}", c.report.errors.first());
        let back: Vec<&huijiao_protocol::Record> = sink
            .rows
            .iter()
            .map(|(_, r)| match r {
                Row::Upsert(r) => r,
                _ => panic!(),
            })
            .collect();
        for (a, b) in recs.iter().zip(back) {
            assert_eq!(a, b, "{name}");
        }
    }
}
