//! Open data over a federation of real processes: a county's records (仙桃市, under its
//! province directly) reach the national node through its province; the national
//! node's store is mirrored into a real PostgreSQL (a private cluster) and equals
//! `huijiao query --json` there row by row, provenance (three hops) included; and a
//! harvester's OAI-PMH ListIdentifiers at the national node lists exactly its public
//! records.

use huijiao_kit::postgres::Cluster;
use huijiao_kit::synth;
use integration::{huijiao_bin, Federation};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_national_store_reaches_postgresql_and_harvesters_as_it_is() {
    let pg = Cluster::start().expect("a PostgreSQL server (Debian: postgresql)");
    let mut f = Federation::with_processes().unwrap();
    f.add("000000", None).unwrap();
    f.add("420000", Some("000000")).unwrap();
    f.add("429004", Some("420000")).unwrap();
    f.start_with("000000", |t| {
        t.push_str("\n[http]\naddress = \"127.0.0.1:0\"\nrate_per_minute = 100000\n\n[oai]\nrepository_identifier = \"kjcg.example.gov.cn\"\nadmin_email = \"oai@example.gov.cn\"\n")
    })
    .await
    .unwrap();
    f.start("420000").await.unwrap();
    f.start("429004").await.unwrap();
    let mut g = synth::Generator::new(5);
    let today = huijiao_protocol::Date::from_unix_ms_china(huijiao::clock::now_ms());
    let recs: Vec<_> = (1..=1500).map(|i| g.record("429004", i, today)).collect();
    f.node("429004").drop_file("a.csv", &synth::csv(&recs.iter().map(synth::cells).collect::<Vec<_>>(), false)).unwrap();
    let county = f.node("429004").dir.clone();
    integration::wait_for("the county's file handled", LIMIT, || {
        std::fs::read_dir(county.join("inbox")).map(|d| d.count() == 0).unwrap_or(false) && f.node("429004").record_count() > 0
    })
    .await
    .unwrap();
    let accepted = f.node("429004").record_count();
    integration::wait_for("the records at the national node", LIMIT, || f.node("000000").record_count() == accepted).await.unwrap();

    // The mirror of the national store equals its listing, provenance included.
    let national = f.node("000000").config_path.clone();
    let out = std::process::Command::new(huijiao_bin().unwrap())
        .args(["mirror", "--config", national.to_str().unwrap(), "--postgres", &pg.url(), "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = std::process::Command::new(huijiao_bin().unwrap())
        .args(["query", "--json", "--config", national.to_str().unwrap()])
        .output()
        .unwrap();
    let want: BTreeMap<String, Map<String, Value>> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let m: Map<String, Value> = serde_json::from_str(l).unwrap();
            (m["reg_no"].as_str().unwrap().to_string(), m)
        })
        .collect();
    let got: BTreeMap<String, Map<String, Value>> = pg
        .psql("SELECT record || jsonb_build_object('_prov', provenance) FROM huijiao.records")
        .unwrap()
        .lines()
        .map(|l| {
            let m: Map<String, Value> = serde_json::from_str(l).unwrap();
            (m["reg_no"].as_str().unwrap().to_string(), m)
        })
        .collect();
    assert_eq!(got.len() as i64, accepted);
    assert!(accepted > 1400, "{accepted} of 1500 accepted");
    for (reg_no, w) in &want {
        let g = &got[reg_no];
        for (k, v) in w.iter().filter(|(k, _)| !k.starts_with('_')) {
            assert_eq!(g.get(k), Some(v), "{reg_no}.{k}");
        }
        let prov = &g["_prov"];
        assert_eq!((&prov["origin"], &prov["version"], &prov["withdrawn"]), (&w["_origin"], &w["_version"], &w["_withdrawn"]));
        assert_eq!(prov["hops"], w["_hops"], "{reg_no}: the hops, county → province → national");
        assert_eq!(prov["hops"].as_array().unwrap().len(), 3);
    }

    // A harvester lists exactly the national node's public records.
    let addr = std::fs::read_to_string(f.node("000000").dir.join("data/http-address")).unwrap();
    let public: BTreeSet<String> =
        want.values().filter(|m| m["secret"] == "公开").map(|m| m["reg_no"].as_str().unwrap().to_string()).collect();
    integration::wait_for("the catalogue", LIMIT, || {
        integration::http_get(&addr, "/api/v1/records?limit=1").is_ok_and(|b| b.contains(&format!("\"total\":{}", public.len())))
    })
    .await
    .unwrap();
    let mut seen = BTreeSet::new();
    let mut query = "/oai?verb=ListIdentifiers&metadataPrefix=oai_dc".to_string();
    loop {
        let body = integration::http_get(&addr, &query).unwrap();
        assert!(body.contains("<ListIdentifiers>"), "{body}");
        for id in body.split("<identifier>oai:kjcg.example.gov.cn:").skip(1) {
            assert!(seen.insert(id.split('<').next().unwrap().to_string()), "an identifier twice");
        }
        match body.split("<resumptionToken").nth(1).and_then(|s| s.split_once('>')).map(|(_, r)| r.split('<').next().unwrap_or("")) {
            Some(t) if !t.is_empty() => query = format!("/oai?verb=ListIdentifiers&resumptionToken={t}"),
            _ => break,
        }
    }
    assert_eq!(seen, public);
    f.stop_all().await.unwrap();
}
