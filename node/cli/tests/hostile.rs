//! Hostile files at intake, with the real binary: secrets in every disguise, things
//! that are not files, names of any bytes, files built to exhaust memory or time, a
//! slow writer, a full disk, SIGTERM and SIGKILL in the middle. Every case ends in a
//! clear report, nothing secret is written anywhere, and the daemon keeps going.

mod common;
use common::*;
use huijiao_kit::hostile::{self, Kind, HEADER};
use serde_json::Value;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const NODE: &str = "420102";

/// A row whose content is a canary: if any of it shows up in a file the node wrote,
/// the row was stored or echoed.
fn canary_row(n: u32, secret: &str) -> (String, String) {
    let canary = format!("QZXJ{n:03}");
    (hostile::row(9000 + n, &format!("{canary}绝不外泄"), secret), canary)
}

fn reg_no(n: u32) -> String {
    format!("4201022024Y{:04}", 9000 + n)
}

fn check_json(path: &Path) -> (Value, String) {
    let out = Command::new(bin()).args(["check", "--json", "--node", NODE]).arg(path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    (serde_json::from_str(text.trim()).unwrap(), text)
}

/// The rows refused for their 密级, with nothing but row, field and code.
fn secret_rows(report: &Value) -> Vec<u64> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"] == "secret" && matches!(e["code"].as_str(), Some("classified" | "bad_secret" | "duplicate_column")))
        .map(|e| {
            assert!(e["reg_no"].is_null(), "a secret refusal names no reg_no: {e}");
            e["row"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn secrets_are_never_stored_echoed_or_logged() {
    let mut canaries = Vec::new();
    let mut add = |n: u32, secret: &str| {
        let (row, c) = canary_row(n, secret);
        canaries.push(c);
        canaries.push(reg_no(n));
        row
    };
    // CSV: an extra `secret` column, every disguise of a marking, unrecognised levels,
    // a contradiction, and broken rows that hold a marking.
    let mut csv = format!("{HEADER},secret\n");
    let cases = [
        ("公开", "机密"),
        ("祕密", ""),
        ("機密", ""),
        ("絕密", ""),
        ("秘 密", ""),
        ("机\u{3000}密", ""),
        ("机\u{200B}密", ""),
        ("涉密", ""),
        ("secret", ""),
        ("confidential", ""),
        ("内部", "公开"),
    ];
    for (i, (level, second)) in cases.iter().enumerate() {
        csv.push_str(&format!("{},{second}\n", add(i as u32, level)));
    }
    csv.push_str(&format!("{},\n", hostile::row(1, "正常成果", "公开")));
    // A stray comma (too many cells) and an unterminated quote, each with a marking.
    csv.push_str(&format!("{},,\n", add(20, "机密").replace("武汉研究所", "武汉,研究所")));
    csv.push_str(&format!("{}\n", add(21, "机密").replace("简介", "\"简介")));
    let classified_csv: Vec<u64> = vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15];

    // JSON: duplicate keys in either order, other spellings, a list.
    let obj = |n: u32, tail: &str| {
        let canary = format!("QZXJ{n:03}");
        format!(
            r#"{{"reg_no":"{}","title":"{canary}绝不外泄","kind":"应用技术","region":"420102","reg_date":"2024-03-05","first_unit":"所","persons":["甲"],"discipline":"413","industry":"C27","stage":"初期阶段","task_source":"计划外","abstract":"简介",{tail}}}"#,
            reg_no(n)
        )
    };
    let objs = [
        obj(30, r#""secret":"机密","secret":"公开""#),
        obj(31, r#""secret":"公开","secret":"机密""#),
        obj(32, r#""密级":"公开","secret":"机密""#),
        obj(33, r#""密级":"公开","Secret":"绝密""#),
        obj(34, r#""secret":["机密"]"#),
        obj(35, r#""secret":"公开""#),
    ];
    for n in 30..35 {
        canaries.push(format!("QZXJ{n:03}"));
        canaries.push(reg_no(n));
    }
    let json = format!("[{}]", objs.join(","));
    let jsonl = format!("{}\n{{\"secret\":\"机密\",\"title\":\"QZXJ036绝不外泄\" oops\n", objs.join("\n"));
    canaries.push("QZXJ036".into());

    let mut node = Node::new(NODE);
    node.start();
    let files: [(&str, Vec<u8>); 3] = [("密.csv", csv.into_bytes()), ("密.json", json.into_bytes()), ("密.jsonl", jsonl.into_bytes())];
    for (name, bytes) in &files {
        node.drop_file(name, bytes);
    }
    let staged = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        let report = node.wait_handled(name, 1);
        let want: Vec<u64> = match *name {
            "密.csv" => classified_csv.clone(),
            "密.json" => vec![1, 2, 3, 4, 5],
            _ => vec![1, 2, 3, 4, 5, 7],
        };
        assert_eq!(secret_rows(&report), want, "{name}: {report}");
        assert_eq!(report["accepted"], 1, "{name}: the one clean row is stored");
        assert!(report["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "original_not_kept"), "{name}");
        // `check` gives the same verdict and prints nothing secret either.
        let p = staged.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let (checked, text) = check_json(&p);
        assert_eq!(secret_rows(&checked), want, "{name} through check");
        for c in &canaries {
            assert!(!text.contains(c.as_str()), "check printed {c}");
        }
    }
    node.stop();
    let needles: Vec<&str> = canaries.iter().map(String::as_str).collect();
    let hits = node.files_holding(&needles);
    assert!(hits.is_empty(), "classified content was written: {hits:?}");
    for c in &canaries {
        assert!(!node.log().contains(c.as_str()), "the log holds {c}");
    }
    // The clean rows were stored; nothing else.
    assert_eq!(node.query(&[]).len(), 2);
}

#[test]
fn only_regular_files_are_read() {
    let outside = tempfile::tempdir().unwrap();
    let key = outside.path().join("node.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nKEYCANARY\n").unwrap();
    let mut node = Node::new(NODE);
    let inbox = node.inbox();
    let keep = node.dir.path().join("keep.csv");
    std::fs::write(&keep, format!("{HEADER}\nKEYCANARY,x\n")).unwrap();
    std::os::unix::fs::symlink(&key, inbox.join("key.csv")).unwrap();
    std::os::unix::fs::symlink("/proc/self/status", inbox.join("status.csv")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/x", inbox.join("dangling.csv")).unwrap();
    std::os::unix::fs::symlink(inbox.join("loop.csv"), inbox.join("loop.csv")).unwrap();
    std::fs::create_dir(inbox.join("folder.csv")).unwrap();
    std::fs::hard_link(&keep, inbox.join("hard.csv")).unwrap();
    assert!(Command::new("mkfifo").arg(inbox.join("fifo.csv")).status().unwrap().success());
    // `check` refuses a FIFO at once instead of waiting for a writer.
    let (r, _) = check_json(&inbox.join("fifo.csv"));
    assert_eq!(r["refused"]["code"], "not_a_regular_file");
    let (r, _) = check_json(&inbox.join("key.csv"));
    assert_eq!(r["refused"]["code"], "not_a_regular_file");
    node.start();
    let names = ["key.csv", "status.csv", "dangling.csv", "loop.csv", "folder.csv", "hard.csv", "fifo.csv"];
    for n in names {
        let r = node.wait_report(n);
        assert_eq!(r["refused"]["code"], "not_a_regular_file", "{n}: {r}");
    }
    // The daemon goes on: a good file after them is stored.
    node.drop_file("good.csv", format!("{HEADER}\n{}\n", hostile::row(1, "好", "公开")).as_bytes());
    assert_eq!(node.wait_handled("good.csv", 1)["accepted"], 1);
    assert!(std::fs::read_dir(&inbox).unwrap().next().is_none(), "everything left the inbox");
    node.stop();
    // Nothing was read through a link: no file the node wrote holds the target's text.
    let hits: Vec<_> = node.files_holding(&["KEYCANARY", "VmHWM"]).into_iter().filter(|(p, _)| p != &keep).collect();
    assert!(hits.is_empty(), "{hits:?}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "-----BEGIN PRIVATE KEY-----\nKEYCANARY\n");
}

#[test]
fn names_of_any_bytes_and_length_are_handled_and_survive_a_restart() {
    let mut node = Node::new(NODE);
    node.start();
    let body = |n: u32| format!("{HEADER}\n{}\n", hostile::row(n, "名", "公开")).into_bytes();
    let (gbk, _, _) = encoding_rs::GBK.encode("成果登记.csv");
    let gbk_name = std::ffi::OsStr::from_bytes(&gbk).to_os_string();
    let long = format!("{}.csv", "汉".repeat(80));
    assert_eq!(long.len(), 244);
    std::fs::write(node.inbox().join(&gbk_name), body(1)).unwrap();
    std::fs::write(node.inbox().join(&long), body(2)).unwrap();
    std::fs::write(node.inbox().join("伪造\nERROR 假日志.csv"), body(3)).unwrap();
    let r = node.wait_report("成果登记.csv");
    assert_eq!(r["accepted"], 1);
    let r = node.wait_report(&long);
    assert_eq!(r["accepted"], 1);
    let r = node.wait_report("伪造_ERROR 假日志.csv");
    assert_eq!(r["accepted"], 1);
    // A restart finds nothing it cannot finish, and the node goes on working.
    node.stop();
    node.start();
    node.drop_file("after.csv", &body(4));
    assert_eq!(node.wait_handled("after.csv", 1)["accepted"], 1);
    node.stop();
    assert!(!node.log().lines().any(|l| l.starts_with("ERROR 假日志")), "a name forged a log line:\n{}", node.log());
    assert_eq!(node.query(&[]).len(), 4);
}

#[test]
fn hostile_files_cost_bounded_memory_and_get_clear_verdicts() {
    let staged = tempfile::tempdir().unwrap();
    let mut node = Node::new("000000");
    node.start();
    for kind in Kind::ALL {
        // The bombs need their full size to trip their caps; the plain big files
        // are kept small here (the benchmark runs them at 256 MiB).
        let scale = match kind {
            Kind::SharedStringsBomb | Kind::Whitespace | Kind::EmptyRows | Kind::BigHeaderCellXlsx => 80,
            Kind::OneCellRows | Kind::AllRejected => 8,
            _ => 16,
        };
        let path = kind.write(staged.path(), scale).unwrap();
        let (checked, _) = check_json(&path);
        node.drop_file(kind.file_name(), &std::fs::read(&path).unwrap());
        let report = node.wait_handled(kind.file_name(), 1);
        match kind.refusal() {
            Some(code) => assert_eq!(report["refused"]["code"], code, "{kind:?}: {report}"),
            None => {
                assert!(report["refused"].is_null(), "{kind:?}: {report}");
                assert_eq!(report["rejected"], (scale * 1024) as u64, "{kind:?}");
                assert_eq!(report["errors"].as_array().unwrap().len(), 1000, "{kind:?}: errors are capped");
                assert!(report["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "errors_truncated"));
            }
        }
        assert_eq!(checked["refused"], report["refused"], "{kind:?}: check and the daemon agree");
        let rss = node.peak_rss_mib();
        assert!(rss <= 256, "{kind:?}: the daemon peaked at {rss} MiB");
    }
    // Every rejected row is in the rejected file, once, in order.
    let day = std::fs::read_dir(node.dir.path().join("processed")).unwrap().next().unwrap().unwrap().path();
    let rejected = std::fs::read_to_string(day.join("all-rejected.csv.rejected.csv")).unwrap();
    let rows = huijiao::ingest::text::parse_csv(&rejected[3..]);
    assert_eq!(rows.len(), 8 * 1024 + 1);
    assert!(rows[1].fields[1].starts_with("退回0") && rows.last().unwrap().fields[1].starts_with("退回8191"));
    node.stop();
}

#[test]
fn a_slow_writer_is_read_whole() {
    let mut node = Node::new(NODE);
    node.start();
    let path = node.inbox().join("slow.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "{HEADER}").unwrap();
    for i in 0..500 {
        writeln!(f, "{}", hostile::row(i, "慢", "公开")).unwrap();
    }
    f.flush().unwrap();
    // Longer than the settle time (100 ms here), with the file still open.
    std::thread::sleep(Duration::from_millis(800));
    assert!(node.reports().is_empty(), "a file still open for writing was read");
    for i in 500..1000 {
        writeln!(f, "{}", hostile::row(i, "慢", "公开")).unwrap();
    }
    drop(f);
    let r = node.wait_handled("slow.csv", 1);
    assert_eq!((r["rows"].as_u64(), r["accepted"].as_u64()), (Some(1000), Some(1000)), "{r}");
    node.stop();
}

#[test]
fn a_file_closed_after_writing_is_read_without_the_settle_wait() {
    // A settle time of ten minutes: only the close (or a rename) lets a file in earlier.
    let mut node = Node::with_inbox(NODE, "paths = [\"inbox\"]\nsettle_ms = 600000\nrescan_secs = 1\n");
    node.start();
    // Files already there at start settle in full (nobody saw them close).
    wait_for("the inbox to be watched", Duration::from_secs(60), || node.log().contains("node ready"));
    // Written and closed in place (what Excel's "save as" into a share ends with).
    let mut csv = format!("{HEADER}\n");
    for i in 0..10 {
        csv.push_str(&format!("{}\n", hostile::row(i, "快", "公开")));
    }
    std::fs::write(node.inbox().join("closed.csv"), &csv).unwrap();
    wait_for("the closed file to be read long before the settle time", Duration::from_secs(60), || {
        node.reports().iter().any(|(_, r)| r["file"] == "closed.csv")
    });
    // Renamed in from a temporary name: read at once too.
    let mut renamed = format!("{HEADER}\n");
    for i in 20..30 {
        renamed.push_str(&format!("{}\n", hostile::row(i, "快", "公开")));
    }
    std::fs::write(node.inbox().join(".renamed.csv.part"), &renamed).unwrap();
    std::fs::rename(node.inbox().join(".renamed.csv.part"), node.inbox().join("renamed.csv")).unwrap();
    wait_for("the renamed file", Duration::from_secs(60), || node.reports().iter().any(|(_, r)| r["file"] == "renamed.csv"));
    // Closed but not named as a submission (Excel's temporary file before its rename):
    // it waits for the settle time like anything else.
    std::fs::write(node.inbox().join("8A3F2C10"), &csv).unwrap();
    // Still open for writing: not read, whatever the events said before.
    let mut f = std::fs::File::create(node.inbox().join("open.csv")).unwrap();
    writeln!(f, "{HEADER}").unwrap();
    f.flush().unwrap();
    let mut marker = format!("{HEADER}\n");
    for i in 10..20 {
        marker.push_str(&format!("{}\n", hostile::row(i, "快", "公开")));
    }
    std::fs::write(node.inbox().join("marker.csv"), &marker).unwrap();
    wait_for("a later closed file", Duration::from_secs(60), || node.reports().iter().any(|(_, r)| r["file"] == "marker.csv"));
    assert!(node.reports().iter().all(|(_, r)| r["file"] != "open.csv"), "a file still open for writing was read");
    assert!(node.inbox().join("8A3F2C10").exists(), "a closed file without a submission's name was taken at once");
    drop(f);
    node.stop();
}

#[test]
fn sigterm_leaves_a_big_file_in_the_inbox_untouched() {
    let mut node = Node::new(NODE);
    node.start();
    let mut csv = format!("{HEADER}\n");
    for i in 0..60_000u32 {
        csv.push_str(&format!(
            "4201022024Y{i:06},{}\n",
            "成果,应用技术,420102,2024-03-05,武汉研究所,张三,413,C27,初期阶段,计划外,简介,公开"
        ));
    }
    node.drop_file("big.csv", csv.as_bytes());
    wait_for("the node to start reading big.csv", Duration::from_secs(60), || node.log().contains("reading file"));
    let took = node.terminate();
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    assert!(node.inbox().join("big.csv").exists(), "the file stays in the inbox");
    node.start();
    let r = node.wait_handled("big.csv", 1);
    assert_eq!(r["accepted"], 60_000);
    node.stop();
}

#[test]
fn kill_9_in_the_middle_of_a_hostile_file_changes_nothing() {
    let staged = tempfile::tempdir().unwrap();
    for kind in [Kind::AllRejected, Kind::OneCellRows] {
        let path = kind.write(staged.path(), 24).unwrap();
        let name = kind.file_name();
        let bytes = std::fs::read(&path).unwrap();
        let mut node = Node::new(NODE);
        node.start();
        node.drop_file(name, &bytes);
        let mut kills = 0;
        for _ in 0..3 {
            wait_for("reading to start", Duration::from_secs(60), || {
                node.log().matches("reading file").count() > kills || !node.inbox().join(name).exists()
            });
            if !node.inbox().join(name).exists() {
                break;
            }
            node.kill();
            kills += 1;
            node.start();
        }
        let r = node.wait_handled(name, 1);
        assert_eq!((r["rows"].as_u64(), r["rejected"].as_u64()), (Some(24 * 1024), Some(24 * 1024)), "{name}");
        assert_eq!(node.reports().len(), 1, "{name}: one report, whatever the kills");
        let day = std::fs::read_dir(node.dir.path().join("processed")).unwrap().next().unwrap().unwrap().path();
        let rejected = std::fs::read_to_string(day.join(format!("{name}.rejected.csv"))).unwrap();
        assert_eq!(huijiao::ingest::text::parse_csv(&rejected[3..]).len(), 24 * 1024 + 1, "{name}");
        let left: Vec<String> = std::fs::read_dir(&day).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert!(left.iter().all(|n| !n.ends_with(".tmp")), "{name}: a temporary file is left: {left:?}");
        node.stop();
        eprintln!("{name}: {kills} kills landed");
    }
}

#[test]
fn a_full_disk_is_a_state_the_node_recovers_from() {
    let mut node = Node::with_inbox(NODE, "paths = [\"drop/inbox\"]\nsettle_ms = 100\nrescan_secs = 1\n");
    let drop = node.dir.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&drop).status().unwrap();
    assert!(mounted.success(), "this test mounts a small tmpfs (it runs as root in CI)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(drop.clone());
    let inbox = drop.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("full.csv"), format!("{HEADER}\n{}\n", hostile::row(1, "满", "公开"))).unwrap();
    // Fill the file system to the last byte.
    let filler = drop.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0u8; 512]);
        let _ = f.sync_all();
    }
    node.start();
    let status = |node: &Node| -> Value {
        let out = node.cli(&["status", "--json", "--config", node.config.to_str().unwrap()]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    wait_for("the node to see the disk full", Duration::from_secs(60), || node.log().contains("disk full"));
    assert_eq!(status(&node)["disk_full"], true);
    assert_eq!(node.log().matches("disk full").count(), 1, "said once:\n{}", node.log());
    // A restart while full does not stop the node.
    node.stop();
    node.start();
    wait_for("the node to start again", Duration::from_secs(60), || node.log().matches("node starting").count() >= 2);
    // Space comes back: the file is finished without anyone's help.
    std::fs::remove_file(&filler).unwrap();
    let report = drop.join("processed").join(huijiao::clock::today().to_string()).join("full.csv.report.json");
    wait_for("the file to be finished", Duration::from_secs(60), || report.exists());
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["accepted"], 1);
    assert!(!inbox.join("full.csv").exists());
    assert_eq!(status(&node)["files_unfinished"], 0);
    assert_eq!(node.query(&[]).len(), 1, "stored once");
    node.stop();
}

#[test]
fn an_inbox_folder_made_again_is_watched_again() {
    // A rescan only once an hour: the file must be seen by its event.
    let mut node = Node::with_inbox(NODE, "paths = [\"inbox\"]\nsettle_ms = 100\nrescan_secs = 3600\n");
    node.start();
    wait_for("the node to start", Duration::from_secs(60), || node.log().contains("node starting"));
    wait_for("the inbox to be watched", Duration::from_secs(30), || node.log().matches("watching inbox").count() == 1);
    std::fs::remove_dir_all(node.inbox()).unwrap();
    wait_for("the inbox to be made and watched again", Duration::from_secs(30), || node.log().matches("watching inbox").count() == 2);
    node.drop_file("again.csv", format!("{HEADER}\n{}\n", hostile::row(1, "又", "公开")).as_bytes());
    let r = node.wait_handled("again.csv", 1);
    assert_eq!(r["accepted"], 1);
    node.stop();
}

#[test]
fn messages_say_exactly_what_is_wrong() {
    let mut node = Node::new(NODE);
    node.start();
    // An unknown 操作 is a row error naming it, not a refused file.
    node.drop_file("撤回.csv", "登记号,操作\n4201022024Y0001,撤销\n4201022024Y0002,撤回\n".as_bytes());
    let r = node.wait_handled("撤回.csv", 1);
    assert!(r["refused"].is_null(), "{r}");
    let e = r["errors"].as_array().unwrap().iter().find(|e| e["row"] == 3).unwrap();
    assert_eq!((e["field"].as_str(), e["code"].as_str()), (Some("op"), Some("bad_op")));
    assert!(e["message"].as_str().unwrap().contains("撤回"));
    // One stray byte in a UTF-8 file: refused with its line.
    let mut bytes = format!("{HEADER}\n").repeat(1).into_bytes();
    for i in 0..40 {
        bytes.extend_from_slice(format!("{}\n", hostile::row(i, "字节", "公开")).as_bytes());
    }
    bytes.extend_from_slice(b"\xff\n");
    node.drop_file("stray.csv", &bytes);
    let r = node.wait_handled("stray.csv", 1);
    assert_eq!(r["refused"]["code"], "undecodable");
    assert!(r["refused"]["message"].as_str().unwrap().contains("第 42 行"), "{r}");
    node.stop();
}
