use super::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

#[test]
fn names_of_any_bytes_display_on_one_line() {
    let (gbk, _, _) = encoding_rs::GBK.encode("成果登记表.csv");
    assert_eq!(display_name(&OsString::from_vec(gbk.into_owned())), "成果登记表.csv");
    assert_eq!(display_name(OsStr::new("a\nb.csv")), "a_b.csv");
    assert_eq!(display_name(&OsString::from_vec(b"\xff\xfe.csv".to_vec())), "\u{fffd}\u{fffd}.csv");
}

#[test]
fn long_names_are_shortened_keeping_the_extension() {
    let long = format!("{}.xlsx", "成果".repeat(60));
    let d = dest_name(&long);
    assert!(d.len() <= MAX_DEST_NAME && d.ends_with(".xlsx") && d.contains('~'), "{d}");
    assert_ne!(dest_name(&format!("{}x.xlsx", "成果".repeat(60))), d, "different names stay different");
    assert!(sidecar(Path::new(&format!("{d} (99)")), "rejected.csv").file_name().unwrap().len() + 5 <= 255);
    assert_eq!(dest_name("批次.csv"), "批次.csv");
}
