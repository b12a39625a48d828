//! The store suite, run against an in-memory and a file database.

use super::*;
use huijiao_protocol::record::Record;
use huijiao_protocol::report::Report;
use huijiao_protocol::validate::Row;

const NODE: &str = "420102";

pub(super) fn record(serial: u32, title: &str) -> Record {
    let mut r: Record = serde_json::from_value(serde_json::json!({
        "reg_no": format!("4201022024Y{serial:04}"), "title": title, "kind": "应用技术", "region": "420102",
        "reg_date": "2024-03-05", "first_unit": "武汉研究所", "units": [], "persons": ["张三"], "keywords": [],
        "discipline": "413", "industry": "C27", "stage": "初期阶段", "level": null, "trl": null, "task_source": "计划外",
        "plan_no": null, "fiscal_funded": null, "ip": [], "transfer": null, "abstract": "简介", "funding": null,
        "benefit": null, "contact": null, "phone": null, "secret": "公开", "embargo_until": null
    }))
    .unwrap();
    r.reg_no = format!("4201022024Y{serial:04}");
    r
}

pub(super) fn ingest(w: &mut Writer, sha: &str, rows: Vec<Row>) -> IngestSummary {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let n = rows.len() as u64;
    let mut report = Report::new("f.csv", sha);
    report.rows = n;
    report.accepted = n;
    tx.send(IngestMsg::Rows(rows.into_iter().enumerate().map(|(i, r)| Prepared::new(i as u64 + 2, r)).collect())).unwrap();
    tx.send(IngestMsg::Done(Box::new(report))).unwrap();
    let meta =
        FileMeta { sha256: sha.into(), name: "f.csv".into(), source_path: "/in/f.csv".into(), dest: format!("/p/{sha}"), received_at: 1 };
    let (atx, arx) = std::sync::mpsc::sync_channel(16);
    let mut s = w.ingest_file(meta, rx, atx).unwrap();
    // What the inbox does with the store's answers before its final report.
    for e in arx.try_iter().flatten() {
        s.report.accepted -= 1;
        s.report.rejected += 1;
        s.report.errors.push(e);
    }
    s
}

fn versions(w: &Writer) -> Vec<(String, i64, bool)> {
    let mut st = w.conn.prepare("SELECT reg_no, version, withdrawn FROM records ORDER BY reg_no").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0))).unwrap().map(Result::unwrap).collect()
}

fn change_count(w: &Writer) -> i64 {
    w.conn.query_row("SELECT count(*) FROM changes", [], |r| r.get(0)).unwrap()
}

/// Runs `test` against an in-memory store and a file store.
fn both(test: impl Fn(&mut Writer)) {
    test(&mut Writer::open(None, NODE).unwrap());
    let dir = tempfile::tempdir().unwrap();
    test(&mut Writer::open(Some(&dir.path().join("s.db")), NODE).unwrap());
}

#[test]
fn versions_count_only_real_changes() {
    both(|w| {
        let s = ingest(w, "a", vec![Row::Upsert(record(1, "甲")), Row::Upsert(record(2, "乙"))]);
        assert_eq!((s.inserted, s.report.accepted), (2, 2));
        let s = ingest(w, "b", vec![Row::Upsert(record(1, "甲")), Row::Upsert(record(2, "乙改"))]);
        assert_eq!((s.unchanged, s.updated), (1, 1));
        assert_eq!(versions(w), vec![("4201022024Y0001".into(), 1, false), ("4201022024Y0002".into(), 2, false)]);
        assert_eq!(change_count(w), 3, "an unchanged row creates no version");
    });
}

#[test]
fn withdraw_leaves_a_tombstone_and_nothing_resurrects() {
    both(|w| {
        ingest(w, "a", vec![Row::Upsert(record(1, "甲"))]);
        let s =
            ingest(w, "b", vec![Row::Withdraw { reg_no: "4201022024Y0001".into() }, Row::Withdraw { reg_no: "4201022024Y0009".into() }]);
        assert_eq!(s.withdrawn, 1);
        assert_eq!(s.report.rejected_rows(), vec![3]);
        assert_eq!(s.report.errors[0].code, "unknown_record");
        assert_eq!((s.report.accepted, s.report.rejected), (1, 1));
        let s = ingest(w, "c", vec![Row::Upsert(record(1, "甲又来")), Row::Withdraw { reg_no: "4201022024Y0001".into() }]);
        assert_eq!(s.report.errors[0].code, "withdrawn_record");
        assert_eq!(s.unchanged, 1, "withdrawing twice is a no-op");
        assert_eq!(versions(w), vec![("4201022024Y0001".into(), 2, true)]);
        assert_eq!(change_count(w), 2);
    });
}

#[test]
fn records_of_other_origins_cannot_be_changed_here() {
    both(|w| {
        ingest(w, "a", vec![Row::Upsert(record(1, "甲"))]);
        w.conn.execute("UPDATE records SET origin = '420100'", []).unwrap();
        let s = ingest(w, "b", vec![Row::Upsert(record(1, "改")), Row::Withdraw { reg_no: "4201022024Y0001".into() }]);
        assert!(s.report.errors.iter().all(|e| e.code == "not_origin"), "{:?}", s.report.errors);
        assert_eq!(s.report.rejected, 2);
    });
}

#[test]
fn the_journal_remembers_files_and_an_abandoned_file_stores_nothing() {
    both(|w| {
        ingest(w, "a", vec![Row::Upsert(record(1, "甲"))]);
        let e = w.lookup_file("a").unwrap().unwrap();
        assert!(!e.moved && e.meta.dest == "/p/a");
        assert!(w.dest_reserved("/p/a").unwrap());
        assert_eq!(w.pending_moves().unwrap().len(), 1);
        w.mark_moved("a").unwrap();
        assert!(w.pending_moves().unwrap().is_empty());
        assert!(w.lookup_file("zz").unwrap().is_none());

        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        tx.send(IngestMsg::Rows(vec![Prepared::new(2, Row::Upsert(record(5, "半途")))])).unwrap();
        drop(tx);
        let meta = FileMeta { sha256: "x".into(), name: "x.csv".into(), source_path: String::new(), dest: String::new(), received_at: 0 };
        let (atx, _arx) = std::sync::mpsc::sync_channel(16);
        assert!(w.ingest_file(meta, rx, atx).is_err());
        assert_eq!(versions(w).len(), 1, "the abandoned file was rolled back");
        assert!(w.lookup_file("x").unwrap().is_none());
    });
}

#[test]
fn a_store_refuses_another_nodes_config_and_queries_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let mut w = Writer::open(Some(&path), NODE).unwrap();
        ingest(&mut w, "a", vec![Row::Upsert(record(1, "甲")), Row::Upsert(record(2, "乙"))]);
    }
    let err = Writer::open(Some(&path), "420103").err().unwrap();
    assert!(format!("{err:#}").contains("belongs to node 420102"), "{err:#}");
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.query(&Filter { region: Some("420100".into()), ..Filter::default() }).unwrap().len(), 2);
    assert_eq!(r.query(&Filter { region: Some("4202".into()), ..Filter::default() }).unwrap().len(), 0);
    let got = r.get("4201022024y0002").unwrap().unwrap();
    assert_eq!((got.record.title.as_str(), got.version, got.origin.as_str()), ("乙", 1, NODE));
    assert_eq!(got.hops.len(), 1);
    assert_eq!(r.query(&Filter { text: Some("乙".into()), ..Filter::default() }).unwrap().len(), 1);
}

#[test]
fn attempts_survive_until_the_file_is_done() {
    both(|w| {
        assert_eq!(w.start_attempt("/in/f.csv", 1).unwrap(), 0);
        assert_eq!(w.start_attempt("/in/f.csv", 2).unwrap(), 1);
        // A committed ingest of that file clears its attempts in the same transaction.
        ingest(w, "a", vec![Row::Upsert(record(1, "甲"))]);
        assert_eq!(w.start_attempt("/in/f.csv", 3).unwrap(), 0);
        w.end_attempt("/in/f.csv").unwrap();
        assert_eq!(w.start_attempt("/in/f.csv", 4).unwrap(), 0);
    });
}

#[test]
fn the_schema_version_is_recorded() {
    let w = Writer::open(None, NODE).unwrap();
    let v: i64 = w.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::MIGRATIONS.len());
}
