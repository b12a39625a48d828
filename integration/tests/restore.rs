//! Nothing lost after a restore, nobody stalls a parent, every failure visible where
//! it happened — each case with real node processes.

use huijiao_kit::synth::{self, Generator};
use huijiao_protocol::wire::{self, Message};
use huijiao_protocol::Record;
use integration::{wait_for, Federation, RawClient};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// The real `huijiao` binary.
fn bin() -> std::path::PathBuf {
    integration::huijiao_bin().unwrap()
}
const LIMIT: Duration = Duration::from_secs(120);

fn records(region: &str, from: u32, n: u32) -> Vec<Record> {
    let mut g = Generator::new(u64::from(from));
    let today = huijiao::clock::today();
    (from..from + n).map(|i| g.record(region, i, today)).collect()
}

fn status(f: &Federation, id: &str) -> serde_json::Value {
    let out = Command::new(bin()).args(["status", "--json", "--config"]).arg(&f.node(id).config_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Every reg_no of `want` is at `node` once, at version 1, and its log holds no
/// change twice.
fn held_once(f: &Federation, node: &str, want: &BTreeSet<String>) {
    let held = f.node(node).records();
    for r in want {
        assert_eq!(held.get(r).map(|s| s.version), Some(1), "{node}: {r}");
    }
    assert!(f.node(node).reader().unwrap().duplicate_changes().unwrap().is_empty(), "{node}: a change logged twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_restored_from_an_old_copy_loses_nothing() {
    let mut f = Federation::with_processes().unwrap();
    for (id, parent) in [("000000", None), ("420000", Some("000000")), ("420100", Some("420000")), ("420102", Some("420100"))] {
        f.add(id, parent).unwrap();
    }
    f.start_all().await.unwrap();
    let (a, b, c, d) = (records("420102", 0, 40), records("420102", 100, 30), records("420102", 200, 20), records("420102", 300, 60));
    let names = |rs: &[Record]| rs.iter().map(|r| r.reg_no.clone()).collect::<BTreeSet<String>>();
    f.node("420102").drop_file("a.jsonl", &synth::jsonl(&a)).unwrap();
    wait_for("period A at the national node", LIMIT, || f.node("000000").record_count() == 40).await.unwrap();
    // The backup an operator took then.
    f.stop("420102").await.unwrap();
    let county = f.node("420102").dir.clone();
    let backup = f.root.path().join("backup-420102");
    copy_dir(&county.join("data"), &backup);
    f.start("420102").await.unwrap();
    f.node("420102").drop_file("b.jsonl", &synth::jsonl(&b)).unwrap();
    wait_for("period B at the national node", LIMIT, || f.node("000000").record_count() == 70).await.unwrap();
    // The disk dies; the county is restored from the old copy.
    f.stop("420102").await.unwrap();
    std::fs::remove_dir_all(county.join("data")).unwrap();
    copy_dir(&backup, &county.join("data"));
    f.start("420102").await.unwrap();
    // The parent finds the store rewound: the inbox waits for `recover`, and every
    // place an operator looks says so.
    wait_for("the county to see it was restored", LIMIT, || !status(&f, "420102")["recover_needed"].is_null()).await.unwrap();
    let s = status(&f, "420102");
    assert!(s["log_rotated"]["parent_cursor"].as_u64().unwrap() >= 70, "{s}");
    let p = status(&f, "420100");
    assert!(p["children"][0]["rewound_at"].is_i64(), "{p}");
    let text = Command::new(bin()).args(["status", "--config"]).arg(&f.node("420102").config_path).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("RECOVER NEEDED"), "{}", String::from_utf8_lossy(&text.stdout));
    f.node("420102").drop_file("c.jsonl", &synth::jsonl(&c)).unwrap();
    let log = f.node("420102").dir.join("node.log");
    wait_for("the inbox to say it waits", LIMIT, || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("the inbox waits")))
        .await
        .unwrap();
    assert!(f.node("420102").inbox().join("c.jsonl").exists(), "the file waits in the inbox");
    // The county takes back what its store lost, then the file goes through.
    f.stop("420102").await.unwrap();
    let out = Command::new(bin()).args(["recover", "--config"]).arg(&f.node("420102").config_path).output().unwrap();
    assert!(out.status.success(), "recover failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("70 record(s)"), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(status(&f, "420102")["recover_needed"].is_null());
    f.start("420102").await.unwrap();
    wait_for("period C at the national node", LIMIT, || f.node("000000").record_count() == 90).await.unwrap();
    let all: BTreeSet<String> = names(&a).into_iter().chain(names(&b)).chain(names(&c)).collect();
    held_once(&f, "000000", &all);
    held_once(&f, "420102", &all);
    // A store restored again from the same old copy, which then grows past the
    // parent's cursor before it reconnects, is still recognised.
    f.stop("420102").await.unwrap();
    std::fs::remove_dir_all(county.join("data")).unwrap();
    copy_dir(&backup, &county.join("data"));
    let mut edited = f.config_text("420102").unwrap();
    edited = edited.replace("[parent]", "[parent_offline]");
    let standalone_cfg = county.join("offline.toml");
    std::fs::write(&standalone_cfg, format!("standalone = true\n{}", edited.split("[parent_offline]").next().unwrap())).unwrap();
    {
        // Ingest period D while cut off from the parent (a county whose link is down).
        let mut cut_off = Command::new(bin()).args(["run", "--config"]).arg(&standalone_cfg).env("HUIJIAO_LOG", "warn").spawn().unwrap();
        f.node("420102").drop_file("d.jsonl", &synth::jsonl(&d)).unwrap();
        let reader_db = county.join("data").join(huijiao::store::DB_FILE);
        wait_for("period D at the county", LIMIT, || {
            huijiao::store::Reader::open(&reader_db).and_then(|r| r.record_count()).unwrap_or(0) == 100
        })
        .await
        .unwrap();
        let _ = Command::new("kill").args(["-TERM", &cut_off.id().to_string()]).status();
        cut_off.wait().unwrap();
    }
    f.start("420102").await.unwrap();
    wait_for("period D at the national node", LIMIT, || f.node("000000").record_count() == 150).await.unwrap();
    let all: BTreeSet<String> = all.into_iter().chain(names(&d)).collect();
    held_once(&f, "000000", &all);
    f.stop_all().await.unwrap();
}

/// Milliseconds from a one-record drop at the county to its arrival at the prefecture.
async fn drop_latency(f: &Federation, serial: u32) -> f64 {
    let rec = records("420102", 1000 + serial, 1).remove(0);
    let t = Instant::now();
    f.node("420102").drop_file(&format!("l{serial}.jsonl"), &synth::jsonl(std::slice::from_ref(&rec))).unwrap();
    wait_for("the record at the prefecture", LIMIT, || f.node("420100").records().contains_key(&rec.reg_no)).await.unwrap();
    t.elapsed().as_secs_f64() * 1000.0
}

async fn median_latency(f: &Federation, from: u32) -> f64 {
    let mut v = Vec::new();
    for i in 0..5 {
        v.push(drop_latency(f, from + i).await);
    }
    v.sort_by(f64::total_cmp);
    v[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalling_and_idle_connections_do_not_slow_a_real_child() {
    let mut f = Federation::with_processes().unwrap();
    f.add("420100", None).unwrap();
    f.add("420102", Some("420100")).unwrap();
    f.start_with("420100", |t| *t = t.replace("[listen]\n", "[listen]\nmax_children = 4\n")).await.unwrap();
    f.start("420102").await.unwrap();
    let before = median_latency(&f, 0).await;
    let addr = f.node("420100").listen.unwrap();
    let spare = f.root.path().join("spare");
    for id in ["440106", "420103", "420104"] {
        huijiao::pki::issue(&f.ca, id, &spare, 30).unwrap();
    }
    let connect = |id: &'static str| {
        let (ca, spare) = (f.ca.clone(), spare.clone());
        async move { RawClient::connect(&ca, &spare.join(format!("{id}.crt")), &spare.join(format!("{id}.key")), id, addr, "420100").await }
    };
    // 40 connections from a county of another province, each announcing a 4 MiB frame.
    let mut held = Vec::new();
    for _ in 0..40 {
        if let Ok(mut c) = connect("440106").await {
            let _ = c.send_raw(&(wire::MAX_FRAME as u32).to_le_bytes()).await;
            held.push(c);
        }
    }
    // 8 idle connections from a child that never opens a stream, and one that stalls
    // in the middle of a frame.
    for _ in 0..8 {
        if let Ok(c) = connect("420103").await {
            held.push(c);
        }
    }
    let mut staller = connect("420104").await.unwrap();
    staller.send(&RawClient::hello("420104", 1, 2)).await.unwrap();
    assert!(matches!(staller.recv().await.unwrap(), Message::Welcome(_)));
    staller.send_raw(&(wire::MAX_FRAME as u32).to_le_bytes()).await.unwrap();
    staller.send_raw(&[0u8; 1000]).await.unwrap();
    held.push(staller);
    let during = median_latency(&f, 100).await;
    assert!(during <= 2.0 * before + 500.0, "latency {before:.0} ms before, {during:.0} ms under attack");
    // The parent lists the foreign peer as refused (never as a child), by name.
    wait_for("the refusals in status", LIMIT, || {
        let s = status(&f, "420100");
        s["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["identity"] == "node 440106" && r["reason"] == "outside_jurisdiction" && r["count"].as_i64().unwrap() >= 40)
    })
    .await
    .unwrap();
    let s = status(&f, "420100");
    assert!(s["children"].as_array().unwrap().iter().all(|c| c["child"] != "440106"), "{s}");
    drop(held);
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_parent_refuses_is_held_aside_and_the_rest_goes_on() {
    let mut f = Federation::with_processes().unwrap();
    f.add("420100", None).unwrap();
    f.add("420102", Some("420100")).unwrap();
    f.start("420100").await.unwrap();
    // A store from before the intake limits: one record too large to send, one of
    // another county (the parent refuses it), around ordinary ones.
    let mut recs = records("420102", 0, 5);
    recs[1].r#abstract = "长".repeat(100_000);
    recs[3] = records("420103", 50, 1).remove(0);
    {
        let db = f.node("420102").dir.join("data").join(huijiao::store::DB_FILE);
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let mut w = huijiao::store::Writer::open(Some(&db), "420102").unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let rows = recs
            .iter()
            .enumerate()
            .map(|(i, r)| huijiao::store::Prepared::new(i as u64 + 2, huijiao_protocol::Row::Upsert(r.clone())))
            .collect();
        tx.send(huijiao::store::IngestMsg::Rows(rows)).unwrap();
        let mut report = huijiao_protocol::Report::new("old", "old");
        report.rows = 5;
        report.accepted = 5;
        tx.send(huijiao::store::IngestMsg::Done(Box::new(report))).unwrap();
        let (atx, _arx) = std::sync::mpsc::sync_channel(16);
        let meta = huijiao::store::FileMeta {
            sha256: "old".into(),
            name: "old".into(),
            source_path: "old".into(),
            dest: "old".into(),
            received_at: 0,
        };
        w.ingest_file(meta, rx, atx).unwrap();
        w.mark_moved("old").unwrap();
    }
    f.start("420102").await.unwrap();
    let ok: Vec<String> = [0, 2, 4].iter().map(|i| recs[*i].reg_no.clone()).collect();
    wait_for("the ordinary records at the parent", LIMIT, || {
        let held = f.node("420100").records();
        ok.iter().all(|r| held.contains_key(r))
    })
    .await
    .unwrap();
    // The county's status names each change held aside and why; the ones behind
    // them went on, and new files still go up.
    wait_for("both changes held aside", LIMIT, || status(&f, "420102")["stuck"].as_array().unwrap().len() == 2).await.unwrap();
    let s = status(&f, "420102");
    let stuck: Vec<(String, String)> = s["stuck"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["reg_no"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(stuck[0].0, recs[1].reg_no);
    assert!(stuck[0].1.contains("over the limit"), "{stuck:?}");
    assert_eq!(stuck[1].0, recs[3].reg_no);
    assert!(stuck[1].1.contains("outside_jurisdiction"), "{stuck:?}");
    let later = records("420102", 500, 1).remove(0);
    f.node("420102").drop_file("later.jsonl", &synth::jsonl(std::slice::from_ref(&later))).unwrap();
    wait_for("a later record at the parent", LIMIT, || f.node("420100").records().contains_key(&later.reg_no)).await.unwrap();
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefecture_cannot_skip_its_province_unless_listed() {
    let mut f = Federation::with_processes().unwrap();
    f.add("000000", None).unwrap();
    f.add("420100", Some("000000")).unwrap();
    f.start_all().await.unwrap();
    wait_for("the refusal at the prefecture", LIMIT, || {
        let s = status(&f, "420100");
        s["uplink"]["state"] == "refused" && s["uplink"]["last_error"].as_str().is_some_and(|e| e.contains("not_immediate_child"))
    })
    .await
    .unwrap();
    let n = status(&f, "000000");
    assert!(
        n["refusals"].as_array().unwrap().iter().any(|r| r["identity"] == "node 420100" && r["reason"] == "not_immediate_child"),
        "{n}"
    );
    assert!(n["children"].as_array().unwrap().is_empty(), "a refused peer is never a child: {n}");
    // Listed at the national node, it is taken.
    f.stop("000000").await.unwrap();
    f.allow.insert("000000".into(), vec!["420100".into()]);
    f.start("000000").await.unwrap();
    let rec = records("420100", 0, 1).remove(0);
    f.node("420100").drop_file("p.jsonl", &synth::jsonl(std::slice::from_ref(&rec))).unwrap();
    wait_for("the record at the national node", LIMIT, || f.node("000000").records().contains_key(&rec.reg_no)).await.unwrap();
    // A stopped child is shown as gone at once, not as connected for minutes.
    f.stop("420100").await.unwrap();
    wait_for("the child shown as not connected", Duration::from_secs(10), || status(&f, "000000")["children"][0]["connected"] == false)
        .await
        .unwrap();
    f.stop_all().await.unwrap();
}

/// The report of file `name` once the node at `dir` has handled it.
fn report_of(dir: &std::path::Path, name: &str) -> Option<serde_json::Value> {
    for top in ["processed", "rejected"] {
        for day in std::fs::read_dir(dir.join(top)).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(day.path().join(format!("{name}.report.json"))) {
                return serde_json::from_str(&text).ok();
            }
        }
    }
    None
}

/// Withdrawal rows, as a clerk writes them.
fn withdrawals(reg_nos: &[&str]) -> Vec<u8> {
    reg_nos.iter().map(|r| format!("{{\"reg_no\": \"{r}\", \"op\": \"withdraw\"}}\n")).collect::<String>().into_bytes()
}

/// A county directly under its province (仙桃市): three nodes make the chain.
const COUNTY: &str = "429004";

/// What `node` holds of the county's records: version, withdrawn, content hash.
fn county_states(f: &Federation, node: &str) -> std::collections::BTreeMap<String, (i64, bool, Vec<u8>)> {
    f.node(node)
        .reader()
        .unwrap()
        .record_states()
        .unwrap()
        .into_iter()
        .filter(|s| s.origin == COUNTY)
        .map(|s| (s.reg_no, (s.version, s.withdrawn, s.hash)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_brings_back_withdrawals_and_no_version_goes_backwards() {
    let mut f = Federation::with_processes().unwrap();
    for (id, parent) in [("000000", None), ("420000", Some("000000")), (COUNTY, Some("420000"))] {
        f.add(id, parent).unwrap();
    }
    f.start_all().await.unwrap();
    let a = records(COUNTY, 0, 20);
    f.node(COUNTY).drop_file("a.jsonl", &synth::jsonl(&a)).unwrap();
    wait_for("the records at the national node", LIMIT, || f.node("000000").record_count() == 20).await.unwrap();
    // The backup.
    f.stop(COUNTY).await.unwrap();
    let county = f.node(COUNTY).dir.clone();
    let backup = f.root.path().join("backup-county");
    copy_dir(&county.join("data"), &backup);
    f.start(COUNTY).await.unwrap();
    // After it: changes, withdrawals, new records and a withdrawal of a new one.
    let mut changed: Vec<Record> = a[..5].to_vec();
    for r in &mut changed {
        r.title = format!("{} 改", r.title);
    }
    let b = records(COUNTY, 100, 5);
    f.node(COUNTY).drop_file("b1.jsonl", &synth::jsonl(&[changed.clone(), b.clone()].concat())).unwrap();
    let gone: Vec<&str> = a[5..10].iter().map(|r| r.reg_no.as_str()).chain([b[0].reg_no.as_str()]).collect();
    f.node(COUNTY).drop_file("b2.jsonl", &withdrawals(&gone)).unwrap();
    let before = loop {
        let s = county_states(&f, COUNTY);
        if s.values().filter(|v| v.1).count() == 6 && county_states(&f, "000000") == s {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(before.len(), 25);
    // The county's disk is replaced by the backup; `recover` (killed once and run
    // again) takes back everything its parent holds, withdrawn or not.
    f.stop(COUNTY).await.unwrap();
    std::fs::remove_dir_all(county.join("data")).unwrap();
    copy_dir(&backup, &county.join("data"));
    let mut killed = Command::new(bin()).args(["recover", "--config"]).arg(&f.node(COUNTY).config_path).spawn().unwrap();
    let _ = killed.kill();
    let _ = killed.wait();
    let out = Command::new(bin()).args(["recover", "--config"]).arg(&f.node(COUNTY).config_path).output().unwrap();
    assert!(out.status.success(), "recover failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(county_states(&f, COUNTY), before, "the county holds again what it held before the restore");
    let again = Command::new(bin()).args(["recover", "--config"]).arg(&f.node(COUNTY).config_path).output().unwrap();
    assert!(again.status.success());
    assert_eq!(county_states(&f, COUNTY), before, "recovering twice changes nothing");
    f.start(COUNTY).await.unwrap();
    // The clerk goes on: a row for a withdrawn reg_no, changes and withdrawals.
    let mut changed_again: Vec<Record> = changed[..2].to_vec();
    for r in &mut changed_again {
        r.title = format!("{} 再改", r.title);
    }
    let mut resurrect = a[5].clone();
    resurrect.title = "撤销后又来".into();
    f.node(COUNTY).drop_file("c1.jsonl", &synth::jsonl(&[changed_again, vec![resurrect]].concat())).unwrap();
    let report = loop {
        if let Some(r) = report_of(&county, "c1.jsonl") {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(1)), "{report}");
    assert_eq!(report["errors"][0]["code"], "withdrawn_record", "{report}");
    f.node(COUNTY).drop_file("c2.jsonl", &withdrawals(&[a[10].reg_no.as_str(), b[1].reg_no.as_str()])).unwrap();
    // County, prefecture and national agree on every version and withdrawal.
    wait_for("the three to agree", LIMIT, || {
        let c = county_states(&f, COUNTY);
        c.values().filter(|v| v.1).count() == 8 && county_states(&f, "420000") == c && county_states(&f, "000000") == c
    })
    .await
    .unwrap();
    let c = county_states(&f, COUNTY);
    assert_eq!(c[&changed[0].reg_no].0, 3, "a change after the restore is version 3, after the 2 it recovered");
    for id in ["420000", "000000"] {
        assert_eq!(f.node(id).reader().unwrap().quarantine().unwrap().len(), 0, "{id}: nothing held aside");
    }
    // The log was started anew once, and the county says recover ran.
    let s = status(&f, COUNTY);
    assert!(s["recover_needed"].is_null() && s["recovered"]["at"].is_i64(), "{s}");
    // Restarts (clean and kill -9) with more files: the log is never found rewound
    // again. (Whether the parent saw the restored log as rewound at all depends on the
    // one change it checks; either way nothing is missing and no recover is asked for.)
    for (i, kill) in [false, true, false].into_iter().enumerate() {
        if kill {
            f.crash(COUNTY).await;
        } else {
            f.stop(COUNTY).await.unwrap();
        }
        f.start(COUNTY).await.unwrap();
        let more = records(COUNTY, 200 + 10 * i as u32, 3);
        f.node(COUNTY).drop_file(&format!("d{i}.jsonl"), &synth::jsonl(&more)).unwrap();
        let want = 25 + 3 * (i + 1);
        wait_for("the new records everywhere", LIMIT, || {
            let c = county_states(&f, COUNTY);
            c.len() == want && county_states(&f, "000000") == c
        })
        .await
        .unwrap();
    }
    let log = std::fs::read_to_string(county.join("node.log")).unwrap();
    assert!(log.matches("starting a new log").count() <= 1 && !log.contains("RECOVER NEEDED"), "{log}");
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_version_is_a_reported_conflict_never_a_silent_one() {
    let mut f = Federation::with_processes().unwrap();
    for (id, parent) in [("000000", None), ("420000", Some("000000")), (COUNTY, Some("420000"))] {
        f.add(id, parent).unwrap();
    }
    f.start_all().await.unwrap();
    let a = records(COUNTY, 0, 3);
    f.node(COUNTY).drop_file("a.jsonl", &synth::jsonl(&a)).unwrap();
    wait_for("the records at the county", LIMIT, || f.node(COUNTY).record_count() == 3).await.unwrap();
    f.node(COUNTY).drop_file("b.jsonl", &withdrawals(&[a[0].reg_no.as_str()])).unwrap();
    wait_for("the withdrawal at the national node", LIMIT, || f.node("000000").records().get(&a[0].reg_no).is_some_and(|r| r.withdrawn))
        .await
        .unwrap();
    // The county's disk is lost and nobody runs `recover`: a new store (a new log, so
    // nothing looks rewound) takes the withdrawn reg_no as a new record, version 1.
    f.stop(COUNTY).await.unwrap();
    let county = f.node(COUNTY).dir.clone();
    std::fs::remove_dir_all(county.join("data")).unwrap();
    f.start(COUNTY).await.unwrap();
    let mut again = a[0].clone();
    again.title = "生猪养殖机理研究 改33".into();
    f.node(COUNTY).drop_file("c.jsonl", &synth::jsonl(&[again])).unwrap();
    // The province, where the two meet, holds it aside and tells the county, whose
    // status names it and what the province holds; national never sees it.
    wait_for("the conflict at the province", LIMIT, || f.node("420000").reader().unwrap().quarantine().unwrap().len() == 1).await.unwrap();
    let q = &f.node("420000").reader().unwrap().quarantine().unwrap()[0];
    assert_eq!(q.reg_no, a[0].reg_no);
    assert!(q.reason.contains("older version made after") && q.reason.contains("holds version 2, withdrawn"), "{}", q.reason);
    for id in ["420000", "000000"] {
        let held = &f.node(id).records()[&a[0].reg_no];
        assert!(held.withdrawn && held.version == 2, "{id} keeps the withdrawal");
    }
    wait_for("the note at the county", LIMIT, || {
        let out = Command::new(bin()).args(["status", "--config"]).arg(&f.node(COUNTY).config_path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("CONFLICT") && text.contains(&a[0].reg_no) && text.contains("holds version 2, withdrawn")
    })
    .await
    .unwrap();
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_never_shows_as_unsent_what_the_parent_holds_even_on_a_full_disk() {
    let mut f = Federation::with_processes().unwrap();
    f.add("420100", None).unwrap();
    f.add("420102", Some("420100")).unwrap();
    // The county's data folder on a small file system of its own.
    let data = f.node("420102").dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"]).arg(&data).status().unwrap();
    assert!(mounted.success(), "this test mounts a small tmpfs (it runs as root in CI)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    f.start_all().await.unwrap();
    f.stop("420100").await.unwrap();
    // The county takes 300 records while its parent is away.
    f.node("420102").drop_file("a.jsonl", &synth::jsonl(&records("420102", 1, 300))).unwrap();
    wait_for("the county's records", LIMIT, || f.node("420102").record_count() == 300).await.unwrap();
    // Its disk fills up; then the parent comes back and takes everything.
    let filler = data.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
    f.start("420100").await.unwrap();
    wait_for("the parent to hold all 300", LIMIT, || f.node("420100").record_count() == 300).await.unwrap();
    // The county's store cannot note the acknowledgement, but status asks the daemon.
    wait_for("status to show nothing unsent", LIMIT, || status(&f, "420102")["backlog"] == 0).await.unwrap();
    std::fs::remove_file(&filler).unwrap();
    f.stop_all().await.unwrap();
}
