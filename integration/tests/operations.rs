//! Operating a federation, with real node processes: a reload (SIGHUP) after a child's
//! certificate is revoked and the node's own renewed, a refused reload, and a backup
//! taken during a large ingest, restored, with nothing lost at national.

use huijiao_kit::synth::{self, Generator};
use huijiao_protocol::Record;
use integration::{wait_for, Federation};
use std::process::Command;
use std::time::Duration;

/// The real `huijiao` binary.
fn bin() -> std::path::PathBuf {
    integration::huijiao_bin().unwrap()
}
const LIMIT: Duration = Duration::from_secs(180);

fn records(region: &str, from: u32, n: u32) -> Vec<Record> {
    let mut g = Generator::new(u64::from(from) + 11);
    let today = huijiao::clock::today();
    (from..from + n).map(|i| g.record(region, i, today)).collect()
}

fn status(f: &Federation, id: &str) -> serde_json::Value {
    let out = Command::new(bin()).args(["status", "--json", "--config"]).arg(&f.node(id).config_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn child<'a>(s: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    s["children"].as_array().unwrap().iter().find(|c| c["child"] == id).unwrap_or(&serde_json::Value::Null)
}

fn log(f: &Federation, id: &str) -> String {
    std::fs::read_to_string(f.node(id).dir.join("node.log")).unwrap_or_default()
}

fn hup(f: &Federation, id: &str) {
    let pid = f.pid(id).expect("running");
    assert!(Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_drops_a_revoked_child_and_keeps_the_others() {
    let mut f = Federation::with_processes().unwrap();
    f.add("000000", None).unwrap();
    f.add("420000", Some("000000")).unwrap();
    f.add("440000", Some("000000")).unwrap();
    f.start_all().await.unwrap();
    wait_for("both provinces connected", LIMIT, || {
        let s = status(&f, "000000");
        child(&s, "420000")["connected"] == true && child(&s, "440000")["connected"] == true
    })
    .await
    .unwrap();
    let kept_since = status(&f, "440000")["uplink"]["connected_at"].clone();
    assert!(kept_since.is_i64(), "{kept_since}");

    // Hubei's certificate is revoked; the national node's own is renewed.
    huijiao::pki::revoke(&f.ca, huijiao::pki::RevokeTarget::Node("420000".into())).unwrap();
    let tls = f.node("000000").dir.join("tls");
    let old_cert = std::fs::read(tls.join("000000.crt")).unwrap();
    huijiao::pki::renew(&f.ca, "000000", &tls, 30).unwrap();
    assert_ne!(std::fs::read(tls.join("000000.crt")).unwrap(), old_cert);
    hup(&f, "000000");
    wait_for("the reload", LIMIT, || log(&f, "000000").contains("configuration reloaded")).await.unwrap();
    wait_for("Hubei refused", LIMIT, || {
        let s = status(&f, "000000");
        child(&s, "420000")["connected"] == false
            && s["refusals"].as_array().unwrap().iter().any(|r| r["identity"].as_str().unwrap_or("").contains("420000"))
    })
    .await
    .unwrap();
    // Both sides say why: the national node that Hubei is refused (not just quiet), Hubei
    // that its certificate was revoked (not an error reading a stream).
    wait_for("the reason on both sides", LIMIT, || {
        let s = status(&f, "000000");
        child(&s, "420000")["refused"] == "certificate revoked"
            && status(&f, "420000")["uplink"]["last_error"].as_str().is_some_and(|e| e.contains("certificate_revoked"))
    })
    .await
    .unwrap();
    let out = Command::new(bin()).args(["status", "--config"]).arg(&f.node("000000").config_path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.lines().any(|l| l.contains("420000") && l.contains("REFUSED: certificate revoked")), "{text}");
    // Guangdong's connection was never dropped: the same session, still streaming.
    let g = status(&f, "440000");
    assert_eq!(g["uplink"]["connected_at"], kept_since, "Guangdong reconnected: {g}");
    assert_eq!(g["uplink"]["state"], "streaming");
    assert_eq!(child(&status(&f, "000000"), "440000")["connected"], true);
    // And records still flow on it.
    f.node("440000").drop_file("g.jsonl", &synth::jsonl(&records("440106", 1, 20))).unwrap();
    wait_for("Guangdong's records at national", LIMIT, || f.node("000000").record_count() == 20).await.unwrap();
    // A new connection meets the renewed certificate.
    f.stop("440000").await.unwrap();
    f.start("440000").await.unwrap();
    wait_for("Guangdong back", LIMIT, || child(&status(&f, "000000"), "440000")["connected"] == true).await.unwrap();

    // A reload with a broken config is refused; the node runs on as it was.
    let path = f.node("000000").config_path.clone();
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{good}\nnot toml at all [[[\n")).unwrap();
    hup(&f, "000000");
    wait_for("the refusal in the log", LIMIT, || log(&f, "000000").contains("reload refused")).await.unwrap();
    std::fs::write(&path, good).unwrap();
    assert_eq!(child(&status(&f, "000000"), "440000")["connected"], true);
    // A key that is not the certificate's (copied from another issue): refused too.
    let key = tls.join("000000.key");
    let good_key = std::fs::read(&key).unwrap();
    let other = f.root.path().join("other-issue");
    huijiao::pki::issue(&f.ca, "000000", &other, 30).unwrap();
    std::fs::write(&key, std::fs::read(other.join("000000.key")).unwrap()).unwrap();
    hup(&f, "000000");
    wait_for("the key refused", LIMIT, || log(&f, "000000").contains("does not belong to the certificate")).await.unwrap();
    std::fs::write(&key, good_key).unwrap();
    assert_eq!(child(&status(&f, "000000"), "440000")["connected"], true, "the node runs on with its old identity");
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_a_large_ingest_restores_with_nothing_lost() {
    let mut f = Federation::with_processes().unwrap();
    for (id, parent) in [("000000", None), ("420000", Some("000000")), ("420100", Some("420000")), ("420102", Some("420100"))] {
        f.add(id, parent).unwrap();
    }
    f.start_all().await.unwrap();
    let big = records("420102", 0, 30_000);
    let rows: Vec<Vec<String>> = big.iter().map(synth::cells).collect();
    f.node("420102").drop_file("big.csv", &synth::csv(&rows, false)).unwrap();
    // The backup while the county is busy with the file.
    let config = f.node("420102").config_path.clone();
    let backup = f.root.path().join("county-backup.db");
    wait_for("the ingest to start", LIMIT, || f.node("420102").record_count() > 0).await.unwrap();
    let out = Command::new(bin()).args(["backup", "--config"]).arg(&config).arg("--to").arg(&backup).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    f.converge("000000", 30_000, LIMIT).await.unwrap();
    let later = records("420102", 50_000, 500);
    f.node("420102").drop_file("later.jsonl", &synth::jsonl(&later)).unwrap();
    f.converge("000000", 30_500, LIMIT).await.unwrap();

    // The county's disk is lost; the backup goes back, the rest comes from the parent.
    f.stop("420102").await.unwrap();
    let out = Command::new(bin()).args(["restore", "--config"]).arg(&config).arg("--from").arg(&backup).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(f.node("420102").record_count() < 30_500, "the backup is older than the store it replaced");
    let out = Command::new(bin()).args(["recover", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.node("420102").record_count(), 30_500, "recover took back what the backup lacked");
    f.start("420102").await.unwrap();
    let more = records("420102", 60_000, 100);
    f.node("420102").drop_file("more.jsonl", &synth::jsonl(&more)).unwrap();
    let audit = f.converge("000000", 30_600, LIMIT).await.unwrap();
    assert!(audit.ok(), "{}", audit.summary());
    assert!(f.node("000000").reader().unwrap().duplicate_changes().unwrap().is_empty(), "nothing twice at national");
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_whole_subtree_and_a_grandchild_gone_quiet() {
    let mut f = Federation::with_processes().unwrap();
    f.extra_toml.push_str("health_secs = 1\n");
    for (id, parent) in [("420000", None), ("420100", Some("420000")), ("420102", Some("420100")), ("420111", Some("420100"))] {
        f.add(id, parent).unwrap();
    }
    f.start_all().await.unwrap();
    f.node("420102").drop_file("a.jsonl", &synth::jsonl(&records("420102", 1, 30))).unwrap();
    let subtree = |f: &Federation| -> Vec<serde_json::Value> { status(f, "420000")["subtree"].as_array().unwrap().clone() };
    let entry = |nodes: &[serde_json::Value], id: &str| nodes.iter().find(|n| n["node"] == id).cloned().unwrap_or_default();
    wait_for("the province to see both counties through the prefecture", LIMIT, || {
        let t = subtree(&f);
        entry(&t, "420102")["connected"] == true && entry(&t, "420111")["connected"] == true && entry(&t, "420102")["records"] == 30
    })
    .await
    .unwrap();
    let t = subtree(&f);
    assert_eq!(entry(&t, "420100")["parent"], "420000");
    assert_eq!(entry(&t, "420102")["parent"], "420100");
    assert_eq!(status(&f, "420000")["daemon"]["node"], "420000", "status asked the running daemon");
    // A grandchild goes away: the province learns it from the prefecture's report.
    f.stop("420102").await.unwrap();
    wait_for("the grandchild shown quiet at the province", LIMIT, || {
        let t = subtree(&f);
        entry(&t, "420102")["connected"] == false && entry(&t, "420111")["connected"] == true
    })
    .await
    .unwrap();
    let out = Command::new(bin()).args(["status", "--config"]).arg(&f.node("420000").config_path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.contains("420102")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("QUIET") && line.contains("江岸区"), "{text}");
    assert!(text.contains("└─ 420100") || text.contains("├─ 420100"), "a tree:\n{text}");
    // The stopped node's own status says its daemon is not running.
    let out = Command::new(bin()).args(["status", "--config"]).arg(&f.node("420102").config_path).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT RUNNING"), "{}", String::from_utf8_lossy(&out.stdout));
    // The prefecture itself goes (kill -9): the county it last reported as connected is
    // not shown connected from that old report, but unknown since the prefecture went.
    f.crash("420100").await;
    wait_for("the county below the dead prefecture shown unknown", LIMIT, || {
        let t = subtree(&f);
        let c = entry(&t, "420111");
        entry(&t, "420100")["connected"] == false && c["connected"] == false && c["state"] == "unknown" && c["since"].is_i64()
    })
    .await
    .unwrap();
    assert_eq!(entry(&subtree(&f), "420100")["state"], "quiet");
    let out = Command::new(bin()).args(["status", "--config"]).arg(&f.node("420000").config_path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.contains("420111")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("UNKNOWN since") && !line.contains("connected"), "{text}");
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_reconnect_at_once_after_their_parent_is_killed() {
    let mut f = Federation::with_processes().unwrap();
    f.add("420100", None).unwrap();
    f.add("420102", Some("420100")).unwrap();
    f.start_all().await.unwrap();
    f.node("420102").drop_file("a.jsonl", &synth::jsonl(&records("420102", 1, 5))).unwrap();
    wait_for("the first records at the parent", LIMIT, || f.node("420100").record_count() == 5).await.unwrap();
    // kill -9 of the parent, and it comes back on the same address.
    f.crash("420100").await;
    f.start("420100").await.unwrap();
    let dropped = std::time::Instant::now();
    f.node("420102").drop_file("b.jsonl", &synth::jsonl(&records("420102", 100, 5))).unwrap();
    wait_for("the next records at the parent", LIMIT, || f.node("420100").record_count() == 10).await.unwrap();
    let took = dropped.elapsed();
    // The restarted parent resets the county's old connection (its stateless-reset key
    // is derived from its own key), instead of leaving it to QUIC's 30 s idle timeout.
    eprintln!("drop → parent after the parent's kill -9: {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}: the old connection waited for the idle timeout");
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_over_its_volume_bound_is_held_back_not_refused() {
    let mut f = Federation::with_processes().unwrap();
    f.add("420100", None).unwrap();
    f.add("420102", Some("420100")).unwrap();
    f.start_with("420100", |t| t.push_str("\n[listen.child_limits.420102]\nmax_changes_per_day = 30\n")).await.unwrap();
    f.start("420102").await.unwrap();
    f.node("420102").drop_file("a.jsonl", &synth::jsonl(&records("420102", 1, 20))).unwrap();
    wait_for("the first 20 at the parent", LIMIT, || f.node("420100").record_count() == 20).await.unwrap();
    // 25 more would pass the daily bound of 30: held back, alarmed on both sides.
    f.node("420102").drop_file("b.jsonl", &synth::jsonl(&records("420102", 100, 25))).unwrap();
    wait_for("the hold noted at the parent and the child", LIMIT, || {
        child(&status(&f, "420100"), "420102")["held_back_reason"].as_str().is_some_and(|r| r.contains("daily bound of 30"))
            && status(&f, "420102")["uplink"]["state"] == "held back"
    })
    .await
    .unwrap();
    assert_eq!(f.node("420100").record_count(), 20, "nothing over the bound was applied");
    assert_eq!(f.node("420102").record_count(), 45, "and nothing is lost: the county holds it");
    let out = Command::new(bin()).args(["status", "--config"]).arg(&f.node("420100").config_path).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("HELD BACK       child 420102"), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(log(&f, "420100").contains("holding the child's changes back"));
    // The operator raises the bound: the rest flows, and the alarm clears.
    f.stop("420100").await.unwrap();
    f.start_with("420100", |t| t.push_str("\n[listen.child_limits.420102]\nmax_changes_per_day = 1000\n")).await.unwrap();
    wait_for("the rest at the parent", LIMIT, || f.node("420100").record_count() == 45).await.unwrap();
    wait_for("the alarm cleared", LIMIT, || child(&status(&f, "420100"), "420102")["held_back_reason"].is_null()).await.unwrap();
    f.stop_all().await.unwrap();
}
