//! Durability and idempotency of the inbox, with the real binary: SIGKILL at many
//! moments of a large ingest, re-drops, unchanged re-submissions, withdrawals and
//! same-named files.

mod common;
use common::*;
use huijiao_kit::synth::{self, Generator, Rng};
use huijiao_protocol::Record;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

const NODE: &str = "420102";

fn records(seed: u64, n: u32) -> Vec<Record> {
    let mut g = Generator::new(seed);
    let today = huijiao::clock::today();
    (0..n).map(|i| g.record(NODE, i, today)).collect()
}

fn status(node: &Node) -> Value {
    let out = node.cli(&["status", "--json", "--config", node.config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Kills the node at seeded random moments while it ingests `name`, restarting it each
/// time, until the file is handled.
/// Returns how many kills landed while the file was still in the inbox.
fn ingest_under_kills(node: &mut Node, name: &str, bytes: &[u8], rng: &mut Rng, kills: usize) -> usize {
    node.drop_file(name, bytes);
    let mut landed = 0;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        if !node.inbox().join(name).exists() {
            break;
        }
        node.kill();
        landed += 1;
        node.start();
    }
    node.wait_handled(name, 1);
    landed
}

#[test]
fn sigkill_during_ingest_loses_nothing_and_doubles_nothing() {
    let n = 12_000;
    let first = records(1, n);
    // The second file changes every third record and repeats the rest unchanged.
    let mut second = first.clone();
    for r in second.iter_mut().step_by(3) {
        r.title.push_str("（修订）");
    }
    let mut node = Node::new(NODE);
    node.start();
    let mut rng = Rng::new(0x5eed);
    let rows: Vec<Vec<String>> = first.iter().map(synth::cells).collect();
    let landed = ingest_under_kills(&mut node, "big.csv", &synth::csv(&rows, false), &mut rng, 4)
        + ingest_under_kills(&mut node, "big2.jsonl", &synth::jsonl(&second), &mut rng, 4);
    eprintln!("{landed} kills landed during ingest");
    assert!(landed >= 2, "the kills must land while files are being ingested");
    node.stop();
    node.start();

    let stored = node.query(&[]);
    assert_eq!(stored.len(), n as usize, "every record stored exactly once");
    let by_reg: HashMap<&str, &Value> = stored.iter().map(|r| (r["reg_no"].as_str().unwrap(), r)).collect();
    for (i, r) in second.iter().enumerate() {
        let got = by_reg[r.reg_no.as_str()];
        let want_version = if i % 3 == 0 { 2 } else { 1 };
        assert_eq!(got["_version"], want_version, "{}", r.reg_no);
        assert_eq!(got["title"], r.title.as_str());
    }
    let s = status(&node);
    assert_eq!(s["changes"].as_u64().unwrap(), u64::from(n + n.div_ceil(3)), "no change was logged twice");
    assert_eq!(s["files"], 2);
    // Each file handled exactly once: one copy, one report, nothing left in the inbox.
    let reports = node.reports();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(std::fs::read_dir(node.inbox()).unwrap().flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count(), 0);
    for (_, r) in &reports {
        assert_eq!(r["accepted"], n);
        assert!(r["warnings"].as_array().unwrap().iter().all(|w| w["code"] != "duplicate_file"), "a restart is not a re-drop: {r}");
    }
}

#[test]
fn redrops_resubmissions_withdrawals_and_same_names() {
    let mut node = Node::new(NODE);
    node.start();
    let recs = records(2, 20);
    let rows: Vec<Vec<String>> = recs.iter().map(synth::cells).collect();
    let bytes = synth::csv(&rows, true);
    node.drop_file("批次.csv", &bytes);
    let first = node.wait_handled("批次.csv", 1);
    assert_eq!(first["accepted"], 20);
    assert_eq!(status(&node)["changes"], 20);

    // The same bytes again: nothing stored, the report says so, the first copy is kept.
    node.drop_file("批次.csv", &bytes);
    let again = node.wait_handled("批次.csv", 2);
    assert!(again["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "duplicate_file"), "{again}");
    assert_eq!(status(&node)["changes"], 20);
    let day = std::fs::read_dir(node.dir.path().join("processed")).unwrap().next().unwrap().unwrap().path();
    assert_eq!(std::fs::read(day.join("批次.csv")).unwrap(), bytes, "the first file is not overwritten");
    assert!(day.join("批次 (2).csv").exists() && day.join("批次 (2).csv.report.json").exists());

    // The same rows in another format (other bytes): valid, but no new versions.
    node.drop_file("同样内容.jsonl", &synth::jsonl(&recs));
    let same = node.wait_handled("同样内容.jsonl", 1);
    assert_eq!(same["accepted"], 20);
    assert_eq!(status(&node)["changes"], 20, "an unchanged row creates no version");

    // A withdrawal leaves a tombstone; withdrawing it again changes nothing; an
    // unknown record is a row error; a withdrawn record cannot come back.
    let w = format!("登记号,操作\n{},撤销\n{},撤销\n4201022020Y999999,撤销\n", recs[0].reg_no, recs[0].reg_no);
    node.drop_file("撤销.csv", w.as_bytes());
    let r = node.wait_handled("撤销.csv", 1);
    assert_eq!((r["accepted"].as_u64(), r["rejected"].as_u64()), (Some(2), Some(1)), "{r}");
    assert_eq!(r["errors"][0]["code"], "unknown_record");
    assert_eq!(r["errors"][0]["row"], 4);
    let got = node.query(&["--reg-no", &recs[0].reg_no]);
    assert_eq!((got[0]["_withdrawn"].as_bool(), got[0]["_version"].as_u64()), (Some(true), Some(2)));
    node.drop_file("复活.jsonl", &synth::jsonl(&recs[..1]));
    let r = node.wait_handled("复活.jsonl", 1);
    assert_eq!(r["errors"][0]["code"], "withdrawn_record");
    assert_eq!(status(&node)["changes"], 21);
    let rejected = std::fs::read_to_string(day.join("复活.jsonl.rejected.csv")).unwrap();
    assert!(rejected.starts_with('\u{feff}') && rejected.contains("错误 (error)") && rejected.contains(&recs[0].reg_no));

    // Public view: withdrawn and 内部 records are hidden.
    let public = node.query(&["--public"]);
    let visible: Vec<&str> = public.iter().map(|r| r["reg_no"].as_str().unwrap()).collect();
    for r in &recs {
        let shown = visible.contains(&r.reg_no.as_str());
        assert_eq!(shown, r.reg_no != recs[0].reg_no && r.secret == huijiao_protocol::Secret::Public, "{}", r.reg_no);
    }
}

#[test]
fn a_county_node_rejects_rows_outside_its_jurisdiction() {
    let mut node = Node::new("530524");
    node.start();
    node.drop_file("rare.csv", &std::fs::read(samples().join("gb18030-rare.csv")).unwrap());
    let r = node.wait_handled("rare.csv", 1);
    let stored = node.query(&[]);
    assert_eq!(stored.len() as u64, r["accepted"].as_u64().unwrap());
    assert!(stored.iter().all(|s| s["region"] == "530524"));
    assert!(r["errors"].as_array().unwrap().iter().all(|e| e["code"] == "outside_jurisdiction"));
}
