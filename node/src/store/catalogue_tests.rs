//! The catalogue against a real store file: search, views, paging, statistics.

use super::catalogue::*;
use super::tests::{ingest, record};
use super::{StoreError, Writer};
use huijiao_protocol::record::Record;
use huijiao_protocol::validate::Row;
use huijiao_protocol::{Date, Secret};

const TODAY: Date = Date { year: 2026, month: 11, day: 26 };

struct Fixture {
    dir: tempfile::TempDir,
    w: Writer,
    files: u32,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::open(Some(&dir.path().join(super::DB_FILE)), "420102").unwrap();
        Fixture { dir, w, files: 0 }
    }

    fn add(&mut self, rows: Vec<Row>) {
        self.files += 1;
        let s = ingest(&mut self.w, &format!("sha{}", self.files), rows);
        assert!(s.report.errors.is_empty(), "{:?}", s.report.errors);
    }

    fn index(&self) -> Catalogue {
        let mut ix = Indexer::open(self.dir.path()).unwrap();
        while ix.catch_up(3).unwrap() > 0 {}
        Catalogue::open(self.dir.path()).unwrap()
    }
}

fn rec(serial: u32, title: &str, abstract_: &str) -> Record {
    let mut r = record(serial, title);
    r.r#abstract = abstract_.into();
    r
}

fn listing(q: &str, view: View) -> Listing {
    Listing { q: Some(q.into()), filters: Filters::default(), sort: Sort::Relevance, limit: 50, cursor: None, view }
}

fn reg_nos(p: &Page) -> Vec<String> {
    p.hits.iter().map(|h| h.stored.record.reg_no.clone()).collect()
}

fn public() -> View {
    View::Public { today: TODAY }
}

#[test]
fn finds_two_three_and_longer_chinese_words_english_and_reg_no() {
    let mut f = Fixture::new();
    let mut lidar = rec(3, "基于LiDAR的5G基站巡检", "点云识别");
    lidar.keywords = vec!["激光雷达".into()];
    f.add(vec![
        Row::Upsert(rec(1, "水稻病虫害智能识别系统", "用于田间")),
        Row::Upsert(rec(2, "芯片封装工艺", "先进封装，提高水稻产量的无关说明")),
        Row::Upsert(lidar),
    ]);
    let c = f.index();
    let find = |q: &str| reg_nos(&c.list(&listing(q, public())).unwrap());
    assert_eq!(find("识别"), vec!["4201022024Y0001", "4201022024Y0003"], "title hit first");
    assert_eq!(find("水稻"), vec!["4201022024Y0001", "4201022024Y0002"], "title before abstract");
    assert_eq!(find("病虫害"), vec!["4201022024Y0001"]);
    assert_eq!(find("水稻病虫害智能"), vec!["4201022024Y0001"]);
    assert_eq!(find("稻病"), vec!["4201022024Y0001"], "any two characters in a row");
    assert!(find("稻虫").is_empty(), "characters apart do not match");
    assert_eq!(find("lidar"), vec!["4201022024Y0003"]);
    assert_eq!(find("5G基站"), vec!["4201022024Y0003"]);
    assert_eq!(find("激光雷达"), vec!["4201022024Y0003"], "keywords are searched");
    assert_eq!(find("4201022024Y0002"), vec!["4201022024Y0002"]);
    assert_eq!(find("张三").len(), 3, "persons are searched");
    assert_eq!(find("武汉研究所").len(), 3, "units are searched");
    assert_eq!(find("水稻 芯片"), vec!["4201022024Y0002"], "every term must match");
    let page = c.list(&listing("水稻", public())).unwrap();
    assert_eq!(page.hits[0].title_html, "<mark>水稻</mark>病虫害智能识别系统");
    assert!(page.hits[1].snippet_html.contains("<mark>水稻</mark>"), "{}", page.hits[1].snippet_html);
    assert_eq!(page.total, 2);
}

#[test]
fn the_public_view_never_shows_internal_embargoed_or_withdrawn_records() {
    let mut f = Fixture::new();
    let mut internal = rec(2, "水稻内部成果", "x");
    internal.secret = Secret::Internal;
    let mut embargoed = rec(3, "水稻延期成果", "x");
    embargoed.embargo_until = Some(Date { year: 2027, month: 1, day: 1 });
    let mut lifted = rec(4, "水稻到期成果", "x");
    lifted.embargo_until = Some(Date { year: 2026, month: 11, day: 25 });
    let mut secret_ip = rec(5, "水稻秘密工艺", "x");
    secret_ip.ip = vec!["技术秘密:TS-001".into()];
    f.add(vec![
        Row::Upsert(rec(1, "水稻公开成果", "x")),
        Row::Upsert(internal),
        Row::Upsert(embargoed),
        Row::Upsert(lifted),
        Row::Upsert(secret_ip),
        Row::Upsert(rec(6, "水稻撤销成果", "x")),
    ]);
    f.add(vec![Row::Withdraw { reg_no: "4201022024Y0006".into() }]);
    let c = f.index();
    let mut shown = reg_nos(&c.list(&listing("水稻", public())).unwrap());
    shown.sort();
    assert_eq!(shown, vec!["4201022024Y0001", "4201022024Y0004", "4201022024Y0005"]);
    assert_eq!(c.list(&listing("水稻", View::Operator)).unwrap().hits.len(), 6, "operators see everything");
    assert!(c.get("4201022024Y0002", public()).unwrap().is_none());
    assert!(c.get("4201022024Y0003", public()).unwrap().is_none());
    assert!(c.get("4201022024Y0006", public()).unwrap().is_none());
    assert!(c.get("4201022024Y0002", View::Operator).unwrap().is_some());
    // A trade secret is not an IP right the public can find by.
    let mut l = listing("水稻", public());
    l.filters.has_ip = Some(true);
    assert!(c.list(&l).unwrap().hits.is_empty());
    l.filters.has_ip = None;
    l.filters.ip_type = Some("技术秘密".into());
    assert!(c.list(&l).unwrap().hits.is_empty());
    l.view = View::Operator;
    assert_eq!(reg_nos(&c.list(&l).unwrap()), vec!["4201022024Y0005"]);
    // Statistics count public records only.
    let stats = c.stats(GroupBy::Kind, None, &Filters::default(), public()).unwrap();
    assert_eq!(stats, vec![("应用技术".to_string(), 3)]);
    let stats = c.stats(GroupBy::Kind, None, &Filters::default(), View::Operator).unwrap();
    assert_eq!(stats, vec![("应用技术".to_string(), 5)], "operators count every record but the withdrawn one");
    // An export leaves withdrawn records out in every view.
    let mut out = Vec::new();
    c.export(None, &Filters::default(), public(), |h| {
        out.push(h.stored.record.reg_no);
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(out, vec!["4201022024Y0001", "4201022024Y0004", "4201022024Y0005"]);
}

#[test]
fn a_record_made_internal_leaves_the_public_view_even_before_reindexing() {
    let mut f = Fixture::new();
    f.add(vec![Row::Upsert(rec(1, "水稻成果", "x"))]);
    let c = f.index();
    assert_eq!(c.list(&listing("水稻", public())).unwrap().hits.len(), 1);
    let mut r = rec(1, "水稻成果", "x");
    r.secret = Secret::Internal;
    f.add(vec![Row::Upsert(r)]);
    assert!(c.list(&listing("水稻", public())).unwrap().hits.is_empty(), "the store's state decides");
    assert!(c.get("4201022024Y0001", public()).unwrap().is_none());
}

#[test]
fn filters_combine_with_search() {
    let mut f = Fixture::new();
    let mut a = rec(1, "水稻育种", "x");
    a.trl = Some(7);
    a.transfer = Some("许可".into());
    a.ip = vec!["发明专利:ZL1".into()];
    a.fiscal_funded = Some(true);
    let mut b = rec(2, "水稻栽培", "x");
    b.trl = Some(3);
    b.industry = Some("A01".into());
    b.reg_date = Date { year: 2024, month: 8, day: 1 };
    f.add(vec![Row::Upsert(a), Row::Upsert(b)]);
    let c = f.index();
    let with = |mut filters: Filters| {
        filters.region.get_or_insert("42".into());
        let l = Listing { filters, ..listing("水稻", public()) };
        reg_nos(&c.list(&l).unwrap())
    };
    assert_eq!(with(Filters { trl_min: Some(5), ..Filters::default() }), vec!["4201022024Y0001"]);
    assert_eq!(with(Filters { trl_max: Some(5), ..Filters::default() }), vec!["4201022024Y0002"]);
    assert_eq!(with(Filters { transfer: Some("许可".into()), ..Filters::default() }), vec!["4201022024Y0001"]);
    assert_eq!(with(Filters { ip_type: Some("发明专利".into()), ..Filters::default() }), vec!["4201022024Y0001"]);
    assert_eq!(with(Filters { has_ip: Some(false), ..Filters::default() }), vec!["4201022024Y0002"]);
    assert_eq!(with(Filters { industry: Some("A".into()), ..Filters::default() }), vec!["4201022024Y0002"]);
    assert_eq!(with(Filters { fiscal_funded: Some(true), ..Filters::default() }), vec!["4201022024Y0001"]);
    assert_eq!(with(Filters { since: Some(Date { year: 2024, month: 6, day: 1 }), ..Filters::default() }), vec!["4201022024Y0002"]);
    assert_eq!(with(Filters { region: Some("4201".into()), ..Filters::default() }).len(), 2);
    assert!(with(Filters { region: Some("4202".into()), ..Filters::default() }).is_empty());
    assert_eq!(with(Filters { discipline: Some("41".into()), ..Filters::default() }).len(), 2);
}

#[test]
fn paging_is_stable_while_records_arrive() {
    let mut f = Fixture::new();
    f.add((1..=10).map(|i| Row::Upsert(rec(i, &format!("水稻成果{i}"), "x"))).collect());
    let mut ix = Indexer::open(f.dir.path()).unwrap();
    while ix.catch_up(100).unwrap() > 0 {}
    let c = Catalogue::open(f.dir.path()).unwrap();
    for sort in [Sort::Relevance, Sort::Date, Sort::Region] {
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut extra = 100;
        loop {
            let l = Listing { sort, limit: 3, cursor: cursor.clone(), ..listing("水稻", public()) };
            let page = c.list(&l).unwrap();
            seen.extend(reg_nos(&page));
            // Records arrive (and get indexed) between pages.
            extra += 1;
            f.add(vec![Row::Upsert(rec(extra, &format!("水稻新成果{extra}"), "x"))]);
            while ix.catch_up(100).unwrap() > 0 {}
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let original: Vec<String> = (1..=10).map(|i| format!("4201022024Y{i:04}")).collect();
        for r in &original {
            assert_eq!(seen.iter().filter(|s| *s == r).count(), 1, "{sort:?}: {r} shown exactly once in {seen:?}");
        }
        let mut uniq = seen.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), seen.len(), "{sort:?}: no record twice");
    }
    let bad = Listing { cursor: Some("zz".into()), ..listing("水稻", public()) };
    assert!(matches!(c.list(&bad), Err(ListingError::BadCursor)));
}

#[test]
fn statistics_group_by_region_levels_year_and_more() {
    let mut f = Fixture::new();
    let mut a = rec(1, "甲", "x");
    a.reg_date = Date { year: 2025, month: 1, day: 2 };
    a.reg_no = "4201022025Y0001".into();
    let mut b = rec(2, "乙", "x");
    b.transfer = Some("转让".into());
    f.add(vec![Row::Upsert(a), Row::Upsert(b), Row::Upsert(rec(3, "丙", "x"))]);
    let c = f.index();
    let st = |by| c.stats(by, None, &Filters::default(), public()).unwrap();
    assert_eq!(st(GroupBy::Province), vec![("420000".to_string(), 3)]);
    assert_eq!(st(GroupBy::Prefecture), vec![("420100".to_string(), 3)]);
    assert_eq!(st(GroupBy::County), vec![("420102".to_string(), 3)]);
    assert_eq!(st(GroupBy::Year), vec![("2024".to_string(), 2), ("2025".to_string(), 1)]);
    assert_eq!(st(GroupBy::Transfer), vec![(String::new(), 2), ("转让".to_string(), 1)]);
    assert_eq!(st(GroupBy::IndustrySection), vec![("C".to_string(), 3)]);
    let q = c.stats(GroupBy::Year, Some("乙"), &Filters::default(), public()).unwrap();
    assert_eq!(q, vec![("2024".to_string(), 1)]);
}

#[test]
fn the_index_follows_changes_and_rebuilds_to_the_same_answers() {
    let mut f = Fixture::new();
    f.add(vec![Row::Upsert(rec(1, "水稻", "x")), Row::Upsert(rec(2, "芯片", "x"))]);
    let c = f.index();
    f.add(vec![Row::Upsert(rec(1, "小麦", "x")), Row::Withdraw { reg_no: "4201022024Y0002".into() }]);
    let mut ix = Indexer::open(f.dir.path()).unwrap();
    assert_eq!(ix.catch_up(100).unwrap(), 2);
    assert_eq!(ix.catch_up(100).unwrap(), 0);
    assert!(c.list(&listing("水稻", View::Operator)).unwrap().hits.is_empty(), "the old title is gone");
    assert_eq!(reg_nos(&c.list(&listing("小麦", View::Operator)).unwrap()), vec!["4201022024Y0001"]);
    assert!(c.list(&listing("芯片", public())).unwrap().hits.is_empty());
    let before = c.progress().unwrap();
    assert_eq!(ix.rebuild().unwrap(), 2);
    assert_eq!(c.progress().unwrap(), before);
    assert_eq!(reg_nos(&c.list(&listing("小麦", View::Operator)).unwrap()), vec!["4201022024Y0001"]);
    assert!(c.list(&listing("水稻", View::Operator)).unwrap().hits.is_empty());
}

#[test]
fn counted_statistics_equal_a_scan_of_the_records() {
    let mut f = Fixture::new();
    let mut g = huijiao_kit::synth::Generator::new(3);
    let today = Date { year: 2026, month: 1, day: 1 };
    let mut recs = Vec::new();
    for (i, region) in ["420102", "420111", "429004", "440106", "110105"].iter().enumerate() {
        recs.extend((1..=40).map(|s| g.record(region, i as u32 * 100 + s, today)));
    }
    f.add(recs.iter().cloned().map(Row::Upsert).collect());
    // Changes move counts: an update, a withdrawal.
    let mut moved = recs[3].clone();
    moved.secret = Secret::Public;
    moved.transfer = Some("转让".into());
    f.add(vec![Row::Upsert(moved), Row::Withdraw { reg_no: recs[7].reg_no.clone() }]);
    let c = f.index();
    for view in [public(), View::Operator] {
        for by in [
            GroupBy::Province,
            GroupBy::Prefecture,
            GroupBy::County,
            GroupBy::Kind,
            GroupBy::Year,
            GroupBy::Stage,
            GroupBy::IndustrySection,
            GroupBy::Transfer,
            GroupBy::Level,
        ] {
            for (region, year) in [(None, None), (Some("42"), None), (Some("4201"), Some(2024)), (None, Some(2025))] {
                let mut filters = Filters { region: region.map(str::to_string), ..Filters::default() };
                if let Some(y) = year {
                    filters.since = Some(Date { year: y, month: 1, day: 1 });
                    filters.until = Some(Date { year: y, month: 12, day: 31 });
                }
                let counted = c.stats(by, None, &filters, view).unwrap();
                // An empty discipline prefix matches everything but is not a filter the
                // counts answer: the same question goes to a scan of the records.
                let scan = Filters { discipline: Some(String::new()), ..filters.clone() };
                assert_eq!(counted, c.stats(by, None, &scan, view).unwrap(), "{by:?} {region:?} {year:?} {view:?}");
                let total: u64 = counted.iter().map(|(_, n)| n).sum();
                let expect_total = recs
                    .iter()
                    .filter(|r| r.reg_no != recs[7].reg_no)
                    .filter(|r| region.is_none_or(|p| r.region.starts_with(p)))
                    .filter(|r| year.is_none_or(|y| r.reg_date.year == y))
                    .filter(|r| match view {
                        View::Public { .. } => r.secret == Secret::Public || r.reg_no == recs[3].reg_no,
                        View::Operator => true,
                    })
                    .count() as u64;
                assert_eq!(total, expect_total, "{by:?} {region:?} {year:?} {view:?}");
            }
        }
    }
}

#[test]
fn an_embargo_that_passes_makes_the_record_public() {
    let mut f = Fixture::new();
    let mut r = rec(1, "水稻", "x");
    r.embargo_until = Some(crate::clock::today());
    f.add(vec![Row::Upsert(r)]);
    let c = f.index();
    let today = crate::clock::today();
    assert!(c.list(&listing("水稻", View::Public { today })).unwrap().hits.is_empty(), "embargoed through today");
    assert!(c.stats(GroupBy::Kind, None, &Filters::default(), View::Public { today }).unwrap().is_empty());
    // Tomorrow the sweep of the next catch-up opens it.
    let dir = f.dir.path().to_path_buf();
    let conn = rusqlite::Connection::open(dir.join(CATALOGUE_FILE)).unwrap();
    conn.execute("UPDATE docs SET embargo_until = '2000-01-01'", []).unwrap();
    let st = rusqlite::Connection::open(dir.join(super::DB_FILE)).unwrap();
    st.execute("UPDATE records SET embargo_until = '2000-01-01'", []).unwrap();
    let mut ix = Indexer::open(&dir).unwrap();
    ix.catch_up(10).unwrap();
    assert_eq!(c.list(&listing("水稻", View::Public { today })).unwrap().hits.len(), 1);
    assert_eq!(c.stats(GroupBy::Kind, None, &Filters::default(), View::Public { today }).unwrap(), vec![("应用技术".to_string(), 1)]);
}

#[test]
fn a_lapsed_embargo_date_is_in_no_public_output() {
    let mut f = Fixture::new();
    let mut r = rec(1, "水稻", "x");
    r.embargo_until = Date::new(2025, 1, 1);
    f.add(vec![Row::Upsert(r)]);
    let c = f.index();
    let hits = c.list(&listing("水稻", public())).unwrap().hits;
    assert_eq!(hits.len(), 1, "the embargo has lapsed: the record is public");
    let mut outputs = Vec::new();
    for format in [crate::publish::Format::Csv, crate::publish::Format::Jsonl] {
        let mut out = Vec::new();
        crate::publish::export(&c, None, &Filters::default(), public(), format, &mut out).unwrap();
        outputs.push(String::from_utf8(out).unwrap());
    }
    outputs.push(serde_json::Value::Object(crate::publish::hit_json(&hits[0], public(), true)).to_string());
    for out in &outputs {
        assert!(out.contains("水稻"), "{out}");
        assert!(!out.contains("2025-01-01"), "the embargo date shown publicly: {out}");
    }
    // The operators' export keeps it.
    let mut out = Vec::new();
    crate::publish::export(&c, None, &Filters::default(), View::Operator, crate::publish::Format::Csv, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("2025-01-01"));
}

#[test]
fn totals_under_ten_thousand_are_exact_and_do_not_depend_on_load() {
    let mut f = Fixture::new();
    let n = 9_990u32;
    let rows: Vec<Row> = (1..=n)
        .map(|i| {
            let mut r = rec(i, if i % 2 == 0 { "水稻育种" } else { "茶叶加工" }, "田间试验");
            r.keywords = vec!["水稻".into()];
            r.reg_no = format!("4201022024Y{i:05}");
            if i % 3 == 0 {
                r.stage = Some("中期阶段".into());
            }
            Row::Upsert(r)
        })
        .collect();
    f.add(rows);
    let c = f.index();
    let total = |l: &Listing| {
        let p = c.list(l).unwrap();
        (p.total, p.total_capped, p.total_estimated)
    };
    assert_eq!(total(&listing("水稻", public())), (u64::from(n), false, false), "a search");
    assert_eq!(total(&listing("水稻 试验", public())), (u64::from(n), false, false), "two words");
    assert_eq!(total(&listing("育种", public())), (u64::from(n / 2), false, false));
    let stage = Listing {
        q: None,
        filters: Filters { stage: Some("中期阶段".into()), ..Filters::default() },
        sort: Sort::Date,
        limit: 20,
        cursor: None,
        view: public(),
    };
    assert_eq!(total(&stage), (u64::from(n / 3), false, false), "a filter");
    let all = Listing { filters: Filters::default(), ..stage.clone() };
    assert_eq!(total(&all), (u64::from(n), false, false), "the counters");
    // Eight at once give the same answers.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let c = Catalogue::open(f.dir.path()).unwrap();
                for _ in 0..3 {
                    let p = c.list(&listing("水稻", public())).unwrap();
                    assert_eq!((p.total, p.total_capped, p.total_estimated), (u64::from(n), false, false));
                }
            });
        }
    });
}

#[test]
fn oai_stamps_move_only_when_the_public_view_does_and_survive_a_rebuild() {
    let mut f = Fixture::new();
    let mut internal = rec(2, "内部成果", "内部");
    internal.secret = Secret::Internal;
    f.add(vec![Row::Upsert(rec(1, "公开成果", "简介")), Row::Upsert(internal.clone())]);
    let cat = f.index();
    let scope = OaiScope::default();
    let items = cat.oai_page(&scope, None, 10, TODAY).unwrap();
    assert_eq!(items.len(), 1, "a record never public is never listed, not even as a deletion");
    assert!(items[0].record.is_some());
    let first = items[0].stamp;
    assert_eq!(cat.oai_count(&scope).unwrap(), Some(1));
    // A private field changes: the public view did not; the stamp stays.
    let mut phone = rec(1, "公开成果", "简介");
    phone.phone = Some("027-12345678".into());
    f.add(vec![Row::Upsert(phone)]);
    let cat = f.index();
    assert_eq!(cat.oai_get(&items[0].reg_no, TODAY).unwrap().unwrap().stamp, first);
    // A rebuild keeps it, and the record stays listed.
    let mut ix = Indexer::open(f.dir.path()).unwrap();
    ix.rebuild().unwrap();
    let cat = Catalogue::open(f.dir.path()).unwrap();
    assert_eq!(cat.oai_page(&scope, None, 10, TODAY).unwrap().len(), 1);
    // Made 内部: a deletion, with nothing of the record.
    let mut hidden = rec(1, "公开成果", "简介");
    hidden.secret = Secret::Internal;
    f.add(vec![Row::Upsert(hidden)]);
    let cat = f.index();
    let gone = cat.oai_get(&items[0].reg_no, TODAY).unwrap().unwrap();
    assert!(gone.record.is_none() && gone.stamp >= first);
    assert!(cat.oai_get(&internal.reg_no, TODAY).unwrap().is_none());
    // Sets: by region prefix and kind.
    let region = OaiScope { set: Some(OaiSet::Region("44".into())), ..OaiScope::default() };
    assert!(cat.oai_page(&region, None, 10, TODAY).unwrap().is_empty());
}
