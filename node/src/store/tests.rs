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

/// What a parent checks a child's changes against, now.
fn checks() -> huijiao_protocol::sync::Checks<'static> {
    huijiao_protocol::sync::Checks {
        regions: huijiao_protocol::RegionTable::embedded(),
        today: crate::clock::today(),
        now_ms: crate::clock::now_ms(),
        max_skew_ms: 300_000,
    }
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

#[test]
fn a_store_recovered_from_its_parent_keeps_every_tombstone_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let (county_db, parent_db, fresh_db) = (dir.path().join("county.db"), dir.path().join("parent.db"), dir.path().join("fresh.db"));
    let mut county = Writer::open(Some(&county_db), NODE).unwrap();
    ingest(&mut county, "a", vec![Row::Upsert(record(1, "甲")), Row::Upsert(record(2, "乙")), Row::Upsert(record(3, "丙"))]);
    ingest(&mut county, "b", vec![Row::Upsert(record(2, "乙改"))]);
    ingest(&mut county, "c", vec![Row::Withdraw { reg_no: "4201022024Y0001".into() }, Row::Upsert(record(3, "丙改"))]);
    ingest(&mut county, "d", vec![Row::Withdraw { reg_no: "4201022024Y0003".into() }]);
    // Its parent holds all of it.
    let mut parent = Writer::open(Some(&parent_db), "420100").unwrap();
    let log = Reader::open(&county_db).unwrap().changes_after(0, 100, 1 << 20).unwrap();
    let upto = log.last().unwrap().seq;
    let checked: Vec<_> = log.into_iter().map(|c| huijiao_protocol::sync::checked(NODE, c, &checks()).unwrap()).collect();
    let applied = parent.apply_batch(NODE, "log", 0, upto, &checked, 1).unwrap();
    assert_eq!(applied.applied, 7);
    // The county's disk is lost: a new store takes back what the parent holds.
    let (page, more) = Reader::open(&parent_db).unwrap().records_of_subtree(NODE, "", 100, 1 << 20).unwrap();
    assert!(!more);
    assert_eq!(page.len(), 5, "two withdrawn records each come as their content and their withdrawal");
    let mut fresh = Writer::open(Some(&fresh_db), NODE).unwrap();
    let checked = page.into_iter().map(|c| huijiao_protocol::sync::check_recovered(NODE, c).unwrap()).collect();
    assert_eq!(fresh.restore_records(checked, 2).unwrap(), 3, "three records");
    assert_eq!(versions(&fresh), versions(&county));
    assert_eq!(
        versions(&fresh),
        vec![("4201022024Y0001".into(), 2, true), ("4201022024Y0002".into(), 2, false), ("4201022024Y0003".into(), 3, true)]
    );
    // Its log holds the changes as it first made them: its own hop only, not the
    // parent's (sent up again, they must run up the tree).
    let log = Reader::open(&fresh_db).unwrap().changes_after(0, 100, 1 << 20).unwrap();
    assert!(log.iter().all(|c| c.hops.len() == 1 && c.hops[0].node == NODE), "{:?}", log.iter().map(|c| &c.hops).collect::<Vec<_>>());
    let upto = log.last().unwrap().seq;
    let again: Vec<_> = log.into_iter().map(|c| huijiao_protocol::sync::checked(NODE, c, &checks()).unwrap()).collect();
    let replay = parent.apply_batch(NODE, "after-restore", 0, upto, &again, 3).unwrap();
    assert_eq!((replay.applied, replay.conflicts), (0, 0), "the parent takes them as replays");
    // A row for a withdrawn reg_no is refused as before; a change gets the next version.
    let s = ingest(&mut fresh, "e", vec![Row::Upsert(record(1, "甲又来")), Row::Upsert(record(2, "乙再改"))]);
    assert_eq!(s.report.errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), vec!["withdrawn_record"]);
    assert_eq!(versions(&fresh)[1], ("4201022024Y0002".into(), 3, false));
    // Recovering twice (a recover killed and run again) changes nothing more.
    let (page, _) = Reader::open(&parent_db).unwrap().records_of_subtree(NODE, "", 100, 1 << 20).unwrap();
    let checked = page.into_iter().map(|c| huijiao_protocol::sync::check_recovered(NODE, c).unwrap()).collect();
    assert_eq!(fresh.restore_records(checked, 3).unwrap(), 0);
}

#[test]
fn an_older_version_made_after_the_one_held_is_a_conflict_never_silent() {
    let dir = tempfile::tempdir().unwrap();
    let (county_db, parent_db) = (dir.path().join("county.db"), dir.path().join("parent.db"));
    let mut parent = Writer::open(Some(&parent_db), "420100").unwrap();
    let send = |parent: &mut Writer, db: &std::path::Path, log: &str, after: u64| {
        let changes = Reader::open(db).unwrap().changes_after(after, 100, 1 << 20).unwrap();
        let upto = changes.last().unwrap().seq;
        let checked: Vec<_> = changes.into_iter().map(|c| huijiao_protocol::sync::checked(NODE, c, &checks()).unwrap()).collect();
        parent.apply_batch(NODE, log, after, upto, &checked, 1).unwrap()
    };
    {
        let mut county = Writer::open(Some(&county_db), NODE).unwrap();
        ingest(&mut county, "a", vec![Row::Upsert(record(1, "甲"))]);
        ingest(&mut county, "b", vec![Row::Withdraw { reg_no: "4201022024Y0001".into() }]);
    }
    assert_eq!(send(&mut parent, &county_db, "old", 0).applied, 2);
    // The whole log again (a new log after a restore): replays, not conflicts.
    let again = send(&mut parent, &county_db, "replay", 0);
    assert_eq!((again.duplicates, again.conflicts), (2, 0));
    // The county forgets (a lost disk, no recover) and takes the reg_no as new: version 1.
    std::fs::remove_file(&county_db).unwrap();
    let mut county = Writer::open(Some(&county_db), NODE).unwrap();
    // Its first hop is later than the withdrawal's: wait for the clock to move on.
    let then = crate::clock::now_ms();
    while crate::clock::now_ms() <= then {
        std::hint::spin_loop();
    }
    ingest(&mut county, "c", vec![Row::Upsert(record(1, "甲又来"))]);
    let out = send(&mut parent, &county_db, "new", 0);
    assert_eq!((out.applied, out.conflicts), (0, 1), "held aside where they meet");
    let q = Reader::open(&parent_db).unwrap().quarantine().unwrap();
    assert!(q[0].reason.contains("older version made after"), "{}", q[0].reason);
}

#[test]
fn a_store_written_before_online_registration_opens_and_keeps_its_data() {
    // A store as the previous release left it: schema 7, records and a child.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut w = Writer::open(Some(&path), "420100").unwrap();
        ingest(&mut w, "a", vec![Row::Upsert(record(1, "甲"))]);
        w.conn.execute("INSERT INTO children (child, cursor) VALUES ('420102', 41)", []).unwrap();
        w.conn
            .execute_batch(
                "DROP TABLE units; DROP TABLE submissions; DROP TABLE attachments; DROP TABLE attachment_bytes;
                 DROP TABLE decisions; DROP TABLE serials; DROP TABLE package_members; DROP TABLE package_versions;
                 DROP TABLE packages; DROP TABLE reviewers; DROP TABLE members; DROP TABLE file_progress; DROP TABLE file_progress_refused; PRAGMA user_version = 7;",
            )
            .unwrap();
    }
    let mut w = Writer::open(Some(&path), "420100").unwrap();
    let v: i64 = w.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::MIGRATIONS.len());
    assert_eq!(versions(&w).len(), 1, "the records are still there");
    assert_eq!(Reader::open(&path).unwrap().children().unwrap()[0].cursor, 41);
    // And it takes units at once.
    assert_eq!(w.add_unit("91350100M000100Y43", "武汉大学", "$argon2id$x", 1).unwrap(), Ok(()));
    assert_eq!(Reader::open(&path).unwrap().units().unwrap().len(), 1);
}

#[test]
fn a_store_written_before_member_accounts_opens_and_keeps_its_submissions() {
    // A store as the previous release left it: schema 10, a unit and its submission.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut w = Writer::open(Some(&path), "420100").unwrap();
        ingest(&mut w, "a", vec![Row::Upsert(record(1, "甲"))]);
        assert_eq!(w.add_unit("91350100M000100Y43", "武汉大学", "$argon2id$x", 1).unwrap(), Ok(()));
        w.conn
            .execute_batch(
                "INSERT INTO submissions (id, uscc, state, asked, body, created_at, updated_at)
                 VALUES ('s1', '91350100M000100Y43', 'draft', 'new', '{\"title\":\"旧草稿\"}', 1, 1);
                 DROP TABLE members; DROP TABLE file_progress; DROP TABLE file_progress_refused; PRAGMA user_version = 10;",
            )
            .unwrap();
    }
    let mut w = Writer::open(Some(&path), "420100").unwrap();
    let v: i64 = w.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::MIGRATIONS.len());
    assert_eq!(versions(&w).len(), 1, "the records are still there");
    let r = Reader::open(&path).unwrap();
    let unit = super::registration::Account::unit("91350100M000100Y43");
    let sub = r.submission("s1", Some(&unit)).unwrap().expect("the unit's draft");
    assert_eq!((sub.title(), sub.member.as_deref()), ("旧草稿", None));
    // And it takes members at once.
    assert_eq!(w.add_member("91350100M000100Y43", "zhang", "张三", "$argon2id$x", 2).unwrap(), Ok(()));
    assert_eq!(Reader::open(&path).unwrap().unit_members("91350100M000100Y43").unwrap().len(), 1);
}

#[test]
fn a_store_written_before_packages_opens_keeps_its_data_and_publishes() {
    // A store as the previous release left it: schema 8, a record and a unit.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut w = Writer::open(Some(&path), "000000").unwrap();
        ingest(&mut w, "a", vec![Row::Upsert(record(1, "甲"))]);
        assert_eq!(w.add_unit("91350100M000100Y43", "武汉大学", "$argon2id$x", 1).unwrap(), Ok(()));
        w.conn
            .execute_batch(
                "DROP TABLE package_members; DROP TABLE package_versions; DROP TABLE packages; DROP TABLE reviewers; DROP TABLE members; DROP TABLE file_progress; DROP TABLE file_progress_refused; PRAGMA user_version = 8;",
            )
            .unwrap();
    }
    let mut w = Writer::open(Some(&path), "000000").unwrap();
    let v: i64 = w.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::MIGRATIONS.len());
    assert_eq!(versions(&w).len(), 1, "the records are still there");
    assert_eq!(Reader::open(&path).unwrap().units().unwrap().len(), 1, "and the units");
    // Packages at once: each publication a frozen version, retired ones publish no more.
    use super::packages::{Definition, PackageDenied};
    let def =
        Definition {
            title: "水稻".into(), field: Some("现代农业".into()), description: String::new(), selection: Default::default()
        };
    assert!(w.save_package("rice", &def, 10).unwrap());
    assert!(!w.save_package("rice", &def, 11).unwrap(), "the second save replaces");
    let one = ["4201022025Y0001".to_string(), "4201022025Y0002".to_string()];
    assert_eq!(w.publish_package("rice", &one, 20).unwrap(), Ok(1));
    let renamed = Definition { title: "水稻新版".into(), ..def };
    w.save_package("rice", &renamed, 21).unwrap();
    assert_eq!(w.publish_package("rice", &one[1..], 30).unwrap(), Ok(2));
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.members("rice", 1).unwrap(), one, "version 1 keeps what it froze");
    assert_eq!(r.version("rice", 1).unwrap().unwrap().title, "水稻", "and the title it had");
    assert_eq!(r.package("rice").unwrap().unwrap().latest.unwrap().version, 2);
    assert_eq!(w.retire_package("rice", 40).unwrap(), Ok(()));
    assert_eq!(w.publish_package("rice", &one, 50).unwrap(), Err(PackageDenied::Retired));
    assert_eq!(w.publish_package("none", &one, 50).unwrap(), Err(PackageDenied::NotFound));
    assert_eq!(r.publications(None, 10).unwrap().iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
}

#[test]
fn a_store_written_before_the_last_migration_opens_and_keeps_its_data() {
    // A store as an older release left it: schema 6, a child with its cursor.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut w = Writer::open(Some(&path), "420100").unwrap();
        ingest(&mut w, "a", vec![Row::Upsert(record(1, "甲"))]);
        w.conn.execute("INSERT INTO children (child, cursor) VALUES ('420102', 41)", []).unwrap();
        w.conn
            .execute_batch(
                "ALTER TABLE children DROP COLUMN clock_corrections; ALTER TABLE children DROP COLUMN clock_corrected_at;
                 ALTER TABLE uplink DROP COLUMN failing_since; ALTER TABLE children DROP COLUMN held_back_at;
                 ALTER TABLE children DROP COLUMN held_back_reason;
                 DROP TABLE units; DROP TABLE submissions; DROP TABLE attachments; DROP TABLE attachment_bytes;
                 DROP TABLE decisions; DROP TABLE serials; DROP TABLE package_members; DROP TABLE package_versions;
                 DROP TABLE packages; DROP TABLE reviewers; DROP TABLE members; DROP TABLE file_progress; DROP TABLE file_progress_refused; PRAGMA user_version = 6;",
            )
            .unwrap();
    }
    let w = Writer::open(Some(&path), "420100").unwrap();
    let v: i64 = w.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::MIGRATIONS.len());
    let children = Reader::open(&path).unwrap().children().unwrap();
    assert_eq!((children[0].child.as_str(), children[0].cursor, children[0].clock_corrections), ("420102", 41, 0));
    assert_eq!(versions(&w).len(), 1, "the records are still there");
}

mod registration {
    use super::*;
    use crate::store::registration::Account;
    use crate::store::registration::{Denied, NewAttachment};
    use huijiao_protocol::registration::{Asked, State};
    use huijiao_protocol::{Date, RegionTable};

    const USCC: &str = "91350100M000100Y43";

    fn today() -> Date {
        Date::new(2026, 12, 7).unwrap()
    }

    /// A submitted achievement of the unit, with a fitting PDF.
    fn submitted(w: &mut Writer, id: &str, title: &str) {
        submitted_by(w, &Account::unit(USCC), id, title);
    }

    /// An achievement `acc` submitted, with a fitting PDF.
    fn submitted_by(w: &mut Writer, acc: &Account, id: &str, title: &str) {
        let body: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "title": title, "kind": "应用技术", "persons": ["张三"], "discipline": "413", "industry": "C27",
            "stage": "初期阶段", "task_source": "计划外", "abstract": "简介", "secret": "公开", "first_unit": "武汉大学"
        }))
        .unwrap();
        let pdf = NewAttachment {
            ty: "验收证书".into(),
            name: "a.pdf".into(),
            format: "pdf".into(),
            sha256: "00".into(),
            bytes: b"%PDF-1.7".to_vec(),
        };
        let table = RegionTable::embedded();
        let r = w.save_submission(id, acc, true, &Asked::New, &body, vec![pdf], Some((table, today())), 1).unwrap();
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn a_members_submission_waits_for_its_units_check_and_only_its_unit_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let w = &mut Writer::open(Some(&path), NODE).unwrap();
        let r = Reader::open(&path).unwrap();
        {
            w.add_unit(USCC, "武汉大学", "h", 1).unwrap().unwrap();
            w.add_unit("91420100MA4KXXXX5Q", "别的单位", "h", 1).unwrap().unwrap();
            assert_eq!(w.add_member(USCC, "zhang", "张三", "h", 1).unwrap(), Ok(()));
            assert_eq!(w.add_member(USCC, "zhang", "张三", "h", 1).unwrap(), Err(Denied::Exists));
            assert_eq!(w.add_member("91000000000000000X", "li", "李四", "h", 1).unwrap(), Err(Denied::NotFound), "no such unit");
            w.add_member(USCC, "wang", "王五", "h", 1).unwrap().unwrap();
            let zhang = Account { uscc: USCC.into(), member: Some("zhang".into()) };
            let wang = Account { uscc: USCC.into(), member: Some("wang".into()) };
            submitted_by(w, &zhang, "m1", "张三的成果");
            submitted_by(w, &Account::unit(USCC), "u1", "单位的成果");
            let table = RegionTable::embedded();
            // The member's waits for its unit; the office cannot approve it yet.
            assert_eq!(w.approve("m1", "王", table, today(), 2).unwrap(), Err(Denied::WrongState(State::UnitReview)));
            assert_eq!(r.review_queue().unwrap().waiting, 1, "only the unit's own reached the office");
            // Only the member's unit decides.
            assert_eq!(w.unit_decide("m1", "91420100MA4KXXXX5Q", true, None, table, today(), 3).unwrap(), Err(Denied::NotFound));
            assert_eq!(w.unit_decide("u1", USCC, true, None, table, today(), 3).unwrap(), Err(Denied::WrongState(State::Submitted)));
            // Returned with a reason, resubmitted by the member: back to its unit.
            assert_eq!(w.unit_decide("m1", USCC, false, Some("补充证明"), table, today(), 3).unwrap(), Ok(State::Returned));
            assert_eq!(w.submit("m1", &wang, table, today(), 4).unwrap(), Err(Denied::NotFound), "another member's");
            assert_eq!(w.submit("m1", &zhang, table, today(), 4).unwrap(), Ok(State::UnitReview));
            assert_eq!(w.unit_decide("m1", USCC, true, None, table, today(), 5).unwrap(), Ok(State::Submitted));
            assert!(w.approve("m1", "王", table, today(), 6).unwrap().is_ok());
            let sub = r.submission("m1", None).unwrap().unwrap();
            assert_eq!((sub.member.as_deref(), sub.member_name.as_deref()), (Some("zhang"), Some("张三")));
            let actions: Vec<(&str, &str)> = sub.decisions.iter().map(|d| (d.action.as_str(), d.who.as_str())).collect();
            let unit = format!("unit:{USCC}");
            assert_eq!(
                actions,
                [
                    ("submit", "member:zhang"),
                    ("unit_return", unit.as_str()),
                    ("submit", "member:zhang"),
                    ("pass", unit.as_str()),
                    ("approve", "王")
                ]
            );
            // What each account sees.
            let ids = |acc: &Account| -> Vec<String> {
                let mut v: Vec<String> = r.submissions(Some(acc), None, 100).unwrap().into_iter().map(|s| s.id).collect();
                v.sort();
                v
            };
            assert_eq!(ids(&Account::unit(USCC)), ["m1", "u1"]);
            assert_eq!(ids(&zhang), ["m1"]);
            assert!(ids(&wang).is_empty());
            assert!(r.submission("m1", Some(&wang)).unwrap().is_none());
            // A member may change only a record registered from its own submission.
            let reg_no = sub.reg_no.unwrap();
            assert!(r.units_record(&zhang, &reg_no).unwrap().is_some());
            assert!(r.units_record(&wang, &reg_no).unwrap().is_none());
            assert!(r.units_record(&Account::unit(USCC), &reg_no).unwrap().is_some());
        }
    }

    #[test]
    fn approvals_take_the_next_serial_past_what_the_node_holds() {
        both(|w| {
            w.add_unit(USCC, "武汉大学", "h", 1).unwrap().unwrap();
            // The node (420102) already holds 2026 serial 2 from a file.
            let mut held = record(2, "文件");
            held.reg_no = "4201022026Y0002".into();
            held.reg_date = Date::new(2026, 1, 2).unwrap();
            ingest(w, "f", vec![Row::Upsert(held)]);
            let table = RegionTable::embedded();
            let mut got = Vec::new();
            for i in 0..3 {
                let id = format!("s{i}");
                submitted(w, &id, &format!("成果{i}"));
                got.push(w.approve(&id, "王", table, today(), 2).unwrap().unwrap().0);
            }
            assert_eq!(got, ["4201022026Y0001", "4201022026Y0003", "4201022026Y0004"]);
            assert_eq!(w.approve("s0", "王", table, today(), 3).unwrap(), Err(Denied::WrongState(State::Registered)));
            assert_eq!(w.approve("nope", "王", table, today(), 3).unwrap(), Err(Denied::NotFound));
        });
    }

    #[test]
    fn after_a_restore_approvals_wait_for_recover() {
        both(|w| {
            w.add_unit(USCC, "武汉大学", "h", 1).unwrap().unwrap();
            submitted(w, "s", "成果");
            w.rotate_log(10, 5, 1).unwrap();
            let table = RegionTable::embedded();
            assert_eq!(w.approve("s", "王", table, today(), 2).unwrap(), Err(Denied::RecoverNeeded));
            w.mark_recovered(3).unwrap();
            assert!(w.approve("s", "王", table, today(), 4).unwrap().is_ok());
        });
    }

    #[test]
    fn a_submission_without_fitting_evidence_is_not_kept() {
        both(|w| {
            let body: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
                "title": "无证明", "kind": "基础理论", "persons": ["张三"], "discipline": "413", "task_source": "计划外",
                "abstract": "简介", "secret": "公开", "first_unit": "武汉大学"
            }))
            .unwrap();
            let pdf = NewAttachment {
                ty: "专利证书".into(),
                name: "a.pdf".into(),
                format: "pdf".into(),
                sha256: "00".into(),
                bytes: b"%PDF-".to_vec(),
            };
            let r = w
                .save_submission(
                    "s",
                    &Account::unit(USCC),
                    true,
                    &Asked::New,
                    &body,
                    vec![pdf],
                    Some((RegionTable::embedded(), today())),
                    1,
                )
                .unwrap();
            assert!(matches!(r, Err(Denied::Invalid(e)) if e[0].code == "missing_evidence"));
            let kept: i64 = w.conn.query_row("SELECT count(*) FROM submissions", [], |r| r.get(0)).unwrap();
            assert_eq!(kept, 0, "nothing kept");
        });
    }
}

#[test]
fn a_file_in_parts_keeps_its_progress_and_refusals_until_its_last_part() {
    both(|w| {
        let meta = FileMeta {
            sha256: "abc".into(),
            name: "big.csv".into(),
            source_path: "/in/big.csv".into(),
            dest: "/p/big.csv".into(),
            received_at: 7,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let (atx, arx) = std::sync::mpsc::sync_channel(8);
        // Part 1: two records and a withdrawal of one never held (refused by the store).
        tx.send(IngestMsg::Rows(vec![
            Prepared::new(2, Row::Upsert(record(1, "甲"))),
            Prepared::new(3, Row::Withdraw { reg_no: record(9, "无").reg_no }),
            Prepared::new(4, Row::Upsert(record(2, "乙"))),
        ]))
        .unwrap();
        tx.send(IngestMsg::Commit { through_row: 4 }).unwrap();
        assert!(matches!(w.ingest_part(&meta, &rx, &atx).unwrap(), PartEnd::Committed));
        assert_eq!(arx.try_recv().unwrap().iter().map(|e| (e.row, e.code.as_str())).collect::<Vec<_>>(), [(3, "unknown_record")]);
        assert_eq!(versions(w).len(), 2, "the part is committed");
        let p = w.file_progress("abc").unwrap().expect("progress");
        assert_eq!((p.rows_done, p.parts, p.dest.as_str(), p.received_at), (4, 1, "/p/big.csv", 7));
        assert_eq!(p.refused.len(), 1);
        assert!(w.dest_reserved("/p/big.csv").unwrap(), "a file in progress holds its place");
        assert!(w.lookup_file("abc").unwrap().is_none(), "not journalled as done");
        // Part 2 is abandoned (a crash): nothing of it stays, part 1 does.
        let (tx2, rx2) = std::sync::mpsc::sync_channel(8);
        tx2.send(IngestMsg::Rows(vec![Prepared::new(5, Row::Upsert(record(3, "丙")))])).unwrap();
        drop(tx2);
        assert!(w.ingest_part(&meta, &rx2, &atx).is_err());
        assert_eq!(versions(w).len(), 2);
        // The resume's last part: the journal entry, the counts of every part, no progress left.
        let (tx3, rx3) = std::sync::mpsc::sync_channel(8);
        tx3.send(IngestMsg::Rows(vec![Prepared::new(5, Row::Upsert(record(3, "丙")))])).unwrap();
        tx3.send(IngestMsg::Done(Box::new(Report::new("big.csv", "abc")))).unwrap();
        let PartEnd::Done(s) = w.ingest_part(&meta, &rx3, &atx).unwrap() else { panic!("the last part") };
        assert_eq!((s.inserted, s.updated, s.withdrawn), (3, 0, 0));
        assert!(w.file_progress("abc").unwrap().is_none());
        assert!(w.lookup_file("abc").unwrap().is_some());
        let left: i64 = w.conn.query_row("SELECT count(*) FROM file_progress_refused", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0);
    });
}

#[test]
fn a_store_written_before_files_in_parts_opens_and_resumes_nothing() {
    // A store as the previous release left it: schema 11, a file journalled.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut w = Writer::open(Some(&path), "420100").unwrap();
        ingest(&mut w, "old", vec![Row::Upsert(record(1, "甲"))]);
        w.conn.execute_batch("DROP TABLE file_progress; DROP TABLE file_progress_refused; PRAGMA user_version = 11;").unwrap();
    }
    let w = Writer::open(Some(&path), "420100").unwrap();
    let v: i64 = w.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v as usize, schema::MIGRATIONS.len());
    assert!(w.lookup_file("old").unwrap().is_some(), "the journal is still there");
    assert!(w.file_progress("old").unwrap().is_none());
    assert_eq!(versions(&w).len(), 1);
}

/// Bytes this thread has read from files (Linux).
fn thread_read_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).unwrap().trim().parse().unwrap()
}

#[test]
fn the_writer_thread_empties_its_page_cache_after_each_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db"), NODE).unwrap();
    let long = "简介".repeat(600);
    let rows: Vec<Row> = (1..=200)
        .map(|i| {
            let mut r = record(i, "甲");
            r.r#abstract = long.clone();
            Row::Upsert(r)
        })
        .collect();
    store.call_blocking(move |w| ingest(w, "a", rows)).unwrap();
    // Reads every page of the change log twice in one job: what the first pass read
    // from the file, and what the second (from the cache) read.
    let count_twice = |w: &mut Writer| {
        let count = |w: &Writer| w.conn.query_row("SELECT count(*), sum(length(body)) FROM changes", [], |r| r.get::<_, i64>(0)).unwrap();
        let before = thread_read_bytes();
        assert_eq!(count(w), 200);
        let first = thread_read_bytes() - before;
        let before = thread_read_bytes();
        count(w);
        (first, thread_read_bytes() - before)
    };
    // The ingest's pages were released when its job ended: read back now, and cached
    // within the job.
    let (first, second) = store.call_blocking(count_twice).unwrap();
    assert!(first > 10 * 16384, "the log's pages were still cached after the job ({first} bytes read)");
    assert!(second < 16384, "the job's own pages were not cached within it ({second} bytes read)");
    // And again after the next job ended.
    let (again, _) = store.call_blocking(count_twice).unwrap();
    assert!(again >= first, "{again} < {first}");
}
