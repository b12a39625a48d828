//! A whole chain in-process on loopback with a fresh CA:
//! national ← province ← prefecture ← two counties, and a county directly under the
//! province (省直辖县). Records arrive exactly once at every ancestor with identical
//! content, version and a full hop list; withdrawals propagate; restarting a middle
//! node mid-stream loses and doubles nothing; conflicts are quarantined.

use huijiao_kit::synth::{self, Generator};
use huijiao_protocol::Record;
use integration::{wait_for, Federation};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn records(county: &str, seed: u64, from: u32, n: u32) -> Vec<Record> {
    let mut g = Generator::new(seed);
    let today = huijiao::clock::today();
    (from..from + n).map(|i| g.record(county, i, today)).collect()
}

async fn chain() -> Federation {
    let mut f = Federation::new().unwrap();
    f.extra_toml.push_str("batch_changes = 50\n");
    for (id, parent) in integration::scenarios::CHAIN {
        f.add(id, parent).unwrap();
    }
    f.start_all().await.unwrap();
    f
}

/// Every record at every county is at every ancestor: same body, version, origin,
/// and hops running county → … → that ancestor.
fn assert_everywhere(f: &Federation, counties: &[&str]) {
    for county in counties {
        let here = f.node(county).records();
        assert!(!here.is_empty(), "{county} holds nothing");
        let ancestors = f.ancestors(county);
        for anc in &ancestors {
            let there = f.node(anc).records();
            for (reg_no, r) in &here {
                let got = there.get(reg_no).unwrap_or_else(|| panic!("{reg_no} from {county} missing at {anc}"));
                assert_eq!(got.record, r.record, "{reg_no} content at {anc}");
                assert_eq!((got.version, got.withdrawn, got.origin.as_str()), (r.version, r.withdrawn, *county), "{reg_no} at {anc}");
                let path: Vec<&str> = got.hops.iter().map(|(n, _)| n.as_str()).collect();
                let mut want = vec![*county];
                want.extend(ancestors.iter().take_while(|a| *a != anc).map(String::as_str));
                want.push(anc);
                assert_eq!(path, want, "{reg_no} hops at {anc}");
                assert!(got.hops.windows(2).all(|w| w[0].1 <= w[1].1 + 5_000), "hop times in order (same clock)");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_withdrawals_and_restarts_across_the_chain() {
    let mut f = chain().await;
    let counties = ["420102", "420103", "429004"];
    let mut total = 0u64;
    for (i, c) in counties.iter().enumerate() {
        let recs = records(c, i as u64, 0, 150);
        let rows: Vec<Vec<String>> = recs.iter().map(synth::cells).collect();
        f.node(c).drop_file("a.csv", &synth::csv(&rows, i == 0)).unwrap();
        f.node(c).drop_file("b.jsonl", &synth::jsonl(&records(c, 10 + i as u64, 1000, 50))).unwrap();
        total += 200;
    }
    let national = f.node("000000");
    wait_for("all records at the national node", LIMIT, || national.record_count() as u64 == total).await.unwrap();
    assert_everywhere(&f, &counties);
    assert_eq!(f.node("420100").record_count(), 400, "the prefecture holds only its counties");
    assert_eq!(f.node("420000").record_count() as u64, total);

    // Withdrawals travel as tombstones.
    let victims: Vec<String> = f.node("420102").records().keys().take(10).cloned().collect();
    let csv = format!("登记号,操作\n{}\n", victims.iter().map(|r| format!("{r},撤销")).collect::<Vec<_>>().join("\n"));
    f.node("420102").drop_file("w.csv", csv.as_bytes()).unwrap();
    wait_for("withdrawals at the national node", LIMIT, || {
        let n = f.node("000000").records();
        victims.iter().all(|v| n.get(v).is_some_and(|r| r.withdrawn && r.version == 2))
    })
    .await
    .unwrap();
    assert_everywhere(&f, &counties);

    // A big backlog, and the prefecture and then the province crash mid-stream.
    let big = records("420103", 99, 5000, 3000);
    let rows: Vec<Vec<String>> = big.iter().map(synth::cells).collect();
    f.node("420103").drop_file("big.csv", &synth::csv(&rows, false)).unwrap();
    total += 3000;
    for middle in ["420100", "420000"] {
        let before = f.node("000000").record_count();
        wait_for("the backlog to start moving", LIMIT, || f.node("000000").record_count() > before).await.unwrap();
        assert!((f.node("000000").record_count() as u64) < total, "the crash must come mid-stream");
        f.crash(middle).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.start(middle).await.unwrap();
    }
    wait_for("the backlog at the national node", LIMIT, || f.node("000000").record_count() as u64 == total).await.unwrap();
    assert_everywhere(&f, &counties);
    // Exactly once: the national log holds one change per record version, no more.
    let versions: u64 = counties.iter().map(|c| f.node(c).records().values().map(|r| r.version as u64).sum::<u64>()).sum();
    let status = f.node("000000").reader().unwrap().status().unwrap();
    assert_eq!(status.changes as u64, versions, "no change applied twice at the national node");
    let prov = f.node("420000").reader().unwrap().status().unwrap();
    assert_eq!(prov.changes as u64, versions);
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_reg_no_from_two_origins_is_quarantined_where_they_meet() {
    let mut f = Federation::new().unwrap();
    f.extra_toml.push_str("health_secs = 1\n");
    // A prefecture straight under the national node: it must be listed there.
    f.allow.insert("000000".into(), vec!["420100".into()]);
    for (id, parent) in [("000000", None), ("420100", Some("000000")), ("420102", Some("420100"))] {
        f.add(id, parent).unwrap();
    }
    f.start_all().await.unwrap();
    // The prefecture registers a record of its county itself first…
    let mut rec = records("420102", 5, 1, 1).remove(0);
    f.node("420100").drop_file("p.jsonl", &synth::jsonl(std::slice::from_ref(&rec))).unwrap();
    wait_for("the prefecture's record at the national node", LIMIT, || f.node("000000").record_count() == 1).await.unwrap();
    // …then the county registers the same reg_no with other content.
    rec.title = "县里登记的版本".into();
    f.node("420102").drop_file("c.jsonl", &synth::jsonl(std::slice::from_ref(&rec))).unwrap();
    wait_for("the conflict at the prefecture", LIMIT, || {
        f.node("420100").reader().map(|r| r.quarantine().unwrap().len() == 1).unwrap_or(false)
    })
    .await
    .unwrap();
    let q = f.node("420100").reader().unwrap().quarantine().unwrap().remove(0);
    assert_eq!((q.reg_no.as_str(), q.origin.as_str(), q.held_origin.as_deref()), (rec.reg_no.as_str(), "420102", Some("420100")));
    // The first stays everywhere; the second is kept (quarantined), not lost.
    for n in ["420100", "000000"] {
        let held = f.node(n).records();
        assert_eq!(held[&rec.reg_no].origin, "420100", "{n}");
        assert_ne!(held[&rec.reg_no].record.title, rec.title, "{n}");
    }
    assert_eq!(f.node("420102").records()[&rec.reg_no].record.title, rec.title);
    assert!(f.node("000000").reader().unwrap().quarantine().unwrap().is_empty(), "reported where the two meet");
    // The prefecture's status: its county is connected, and the conflict is counted.
    let cfg = huijiao::config::Config::load(&f.node("420100").config_path).unwrap();
    let mut out = Vec::new();
    huijiao::commands::status::run(&cfg, true, &mut out).unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status["conflicts"], 1, "{status}");
    let child = &status["children"][0];
    assert_eq!((child["child"].as_str(), child["connected"].as_bool()), (Some("420102"), Some(true)), "{status}");
    assert!(child["quiet_secs"].as_i64().unwrap() < 180);
    assert_eq!(status["uplink"]["state"], "streaming", "{status}");
    // The county whose record was held aside learns where and why.
    wait_for("the conflict note at the county", LIMIT, || {
        f.node("420102").reader().map(|r| r.conflict_notes().unwrap().len() == 1).unwrap_or(false)
    })
    .await
    .unwrap();
    let note = f.node("420102").reader().unwrap().conflict_notes().unwrap().remove(0);
    assert_eq!(
        (note.reg_no.as_str(), note.origin.as_str(), note.kept_origin.as_str(), note.met_at.as_str()),
        (rec.reg_no.as_str(), "420102", "420100", "420100")
    );
    let cfg = huijiao::config::Config::load(&f.node("420102").config_path).unwrap();
    let mut out = Vec::new();
    huijiao::commands::status::run(&cfg, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(&format!("CONFLICT        {}", rec.reg_no)) && text.contains("held aside at node 420100"), "{text}");
    // And the national node counts it in its subtree.
    let cfg = huijiao::config::Config::load(&f.node("000000").config_path).unwrap();
    wait_for("the conflict counted at national", LIMIT, || {
        let mut out = Vec::new();
        huijiao::commands::status::run(&cfg, true, &mut out).unwrap();
        let s: serde_json::Value = serde_json::from_slice(&out).unwrap();
        s["subtree"].as_array().unwrap().iter().any(|n| n["node"] == "420100" && n["conflicts"] == 1)
    })
    .await
    .unwrap();
    f.stop_all().await.unwrap();
}
