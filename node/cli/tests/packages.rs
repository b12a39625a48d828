//! 科技成果包 through the real binary: a publication freezes its set, later arrivals go
//! to the next version, a record made 内部 or withdrawn after publication shows nothing
//! of itself in any view of any version, an included record that is not public refuses
//! the publication, an export equals its version, the Atom feeds parse as Atom, and the
//! API answers as docs/openapi.json says.

mod common;

use common::http::{get, json, request, url, Response};
use common::{wait_for, Node};
use huijiao_kit::synth;
use huijiao_protocol::Record;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "packages-operator-token-0123";

fn rec(reg_no: &str, title: &str) -> Record {
    serde_json::from_value(json!({
        "reg_no": reg_no, "title": title, "kind": "应用技术", "region": &reg_no[..6], "reg_date": format!("{}-03-05", &reg_no[6..10]),
        "first_unit": "华中农业研究院", "units": [], "persons": ["李四"], "keywords": ["农业"], "discipline": "2104010",
        "industry": "A01", "stage": "成熟应用阶段", "level": null, "trl": null, "task_source": "计划外", "plan_no": null,
        "fiscal_funded": null, "ip": [], "transfer": "许可", "abstract": format!("{title}的简介"), "funding": null, "benefit": null,
        "contact": "赵联系", "phone": "027-88886666", "secret": "公开", "embargo_until": null
    }))
    .unwrap()
}

fn csv_of(records: &[Record]) -> Vec<u8> {
    synth::csv(&records.iter().map(synth::cells).collect::<Vec<_>>(), false)
}

fn op() -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {TOKEN}"))]
}

fn h<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn put(addr: &str, slug: &str, body: Value) -> Response {
    json(addr, "PUT", &format!("/api/v1/operator/packages/{slug}"), &h(&op()), &body)
}

fn publish(addr: &str, slug: &str) -> Response {
    request(addr, "POST", &format!("/api/v1/operator/packages/{slug}/publish"), &h(&op()), Some(String::new()))
}

fn public_total(addr: &str) -> u64 {
    get(addr, "/api/v1/records?limit=1", &[]).json()["total"].as_u64().unwrap()
}

fn titles(v: &Value) -> Vec<String> {
    v["records"].as_array().unwrap().iter().filter_map(|r| r["title"].as_str().map(str::to_string)).collect()
}

fn reg_nos(v: &Value) -> Vec<String> {
    v["records"].as_array().unwrap().iter().map(|r| r["reg_no"].as_str().unwrap().to_string()).collect()
}

/// One piece: the life of one package, version by version, each view checked as a
/// visitor, an operator and a feed reader meet it.
#[test]
fn a_package_freezes_its_versions_and_never_shows_what_stopped_being_public() {
    let (node, addr) = Node::national_with_api(TOKEN);
    let a = rec("4201022025Y0001", "水稻病虫害智能识别系统");
    let b = rec("4201022025Y0002", "水稻节水灌溉装置");
    let c = rec("4401062024Y0003", "基站巡检机器人");
    let mut internal = rec("4201022025Y0004", "水稻内部配方");
    internal.secret = huijiao_protocol::Secret::Internal;
    node.drop_file("batch.csv", &csv_of(&[a.clone(), b.clone(), c.clone(), internal.clone()]));
    let report = node.wait_handled("batch.csv", 1);
    assert_eq!(report["accepted"], 4, "{report}");
    wait_for("3 public records", Duration::from_secs(60), || public_total(&addr) == 3);

    // Defined, checked by name; an included record the public cannot see refuses it.
    let bad = put(&addr, "rice", json!({"title": "水稻", "field": "农业"}));
    assert_eq!((bad.status, bad.json()["field"].as_str()), (422, Some("field")), "{}", bad.text());
    assert_eq!(put(&addr, "Rice!", json!({"title": "水稻"})).status, 422);
    let def = json!({"title": "水稻技术包", "field": "现代农业", "description": "南方稻区可推广的技术。\u{7}",
        "query": {"q": "水稻"}, "include": [internal.reg_no]});
    assert_eq!(put(&addr, "rice", def.clone()).status, 201);
    let refused = publish(&addr, "rice");
    assert_eq!((refused.status, refused.json()["reg_nos"].clone()), (422, json!([internal.reg_no])), "{}", refused.text());
    let mut def = def;
    def["include"] = json!([c.reg_no]);
    assert_eq!(put(&addr, "rice", def).status, 200);
    let preview = get(&addr, "/api/v1/operator/packages/rice/preview", &h(&op())).json();
    assert_eq!((preview["version"].as_i64(), preview["count"].as_i64()), (Some(1), Some(3)), "{preview}");
    assert_eq!(publish(&addr, "rice").json(), json!({"version": 1, "count": 3}));
    assert_eq!(get(&addr, "/api/v1/packages/rice", &[]).status, 200);

    // A record arriving later is not in version 1; it is in version 2.
    let d = rec("4201022025Y0005", "水稻新品种");
    node.drop_file("later.csv", &csv_of(std::slice::from_ref(&d)));
    node.wait_handled("later.csv", 1);
    wait_for("4 public records", Duration::from_secs(60), || public_total(&addr) == 4);
    let v1 = get(&addr, "/api/v1/packages/rice", &[]).json();
    // The query's matches (newest first; a and b share a date), then the included one.
    let mut held = reg_nos(&v1);
    held[..2].sort();
    assert_eq!(held, [a.reg_no.as_str(), &b.reg_no, &c.reg_no], "version 1 is frozen: {v1}");
    assert_eq!((v1["version"].as_i64(), v1["field"].as_str()), (Some(1), Some("现代农业")));

    // After publication: a made 内部, b withdrawn. Nothing of either in any view.
    let mut a_internal = a.clone();
    a_internal.secret = huijiao_protocol::Secret::Internal;
    node.drop_file("change.csv", &csv_of(&[a_internal]));
    node.wait_handled("change.csv", 1);
    node.drop_file("withdraw.csv", format!("\u{feff}登记号,操作\r\n{},撤销\r\n", b.reg_no).as_bytes());
    node.wait_handled("withdraw.csv", 1);
    wait_for("2 public records", Duration::from_secs(60), || public_total(&addr) == 2);
    let v1 = get(&addr, "/api/v1/packages/rice/versions/1", &[]);
    let body = v1.text();
    for hidden in [&a.title, &b.title, "赵联系", "027-88886666"] {
        assert!(!body.contains(hidden), "version 1 shows `{hidden}`: {body}");
    }
    let records = v1.json()["records"].clone();
    let of = |r: &str| records.as_array().unwrap().iter().find(|x| x["reg_no"] == r).unwrap().clone();
    assert_eq!(of(&a.reg_no), json!({"reg_no": a.reg_no, "state": "not_public"}));
    assert_eq!(of(&b.reg_no), json!({"reg_no": b.reg_no, "state": "withdrawn"}));
    assert_eq!(records[2]["title"], c.title.as_str());
    let page = get(&addr, "/packages/rice/versions/1", &[]);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("已撤销") && html.contains("不再公开") && html.contains(&c.title), "{html}");
    assert!(!html.contains(&a.title) && !html.contains(&b.title), "{html}");
    let csv = get(&addr, &url("/api/v1/packages/rice/export", &[("format", "csv"), ("version", "1")]), &[]);
    assert_eq!(csv.status, 200);
    let csv = csv.text();
    assert!(csv.contains(&c.reg_no) && !csv.contains(&a.reg_no) && !csv.contains(&b.reg_no), "{csv}");

    // Version 2: the new record in, the two gone out; the page says what changed.
    assert_eq!(publish(&addr, "rice").json(), json!({"version": 2, "count": 2}));
    let v2 = get(&addr, "/api/v1/packages/rice", &[]).json();
    assert_eq!(reg_nos(&v2), [d.reg_no.as_str(), &c.reg_no]);
    let latest = get(&addr, "/packages/rice", &[]).text();
    assert!(latest.contains("新增 1 项，移出 2 项") && latest.contains("第 2 版"), "{latest}");
    // Paging, and the export of a version equals its records.
    let first = get(&addr, "/api/v1/packages/rice?limit=1", &[]).json();
    let second =
        get(&addr, &url("/api/v1/packages/rice", &[("limit", "1"), ("cursor", first["next_cursor"].as_str().unwrap())]), &[]).json();
    assert_eq!([titles(&first), titles(&second)].concat(), titles(&v2));
    assert!(second["next_cursor"].is_null());
    assert_eq!(get(&addr, "/api/v1/packages/rice?cursor=zz", &[]).status, 400);
    let jsonl = get(&addr, "/api/v1/packages/rice/export?format=jsonl&version=2", &[]).text();
    let mut exported: Vec<String> =
        jsonl.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["reg_no"].as_str().unwrap().to_string()).collect();
    exported.sort();
    let mut shown = reg_nos(&v2);
    shown.sort();
    assert_eq!(exported, shown);
    // The catalogue's filters inside the package.
    let filtered = get(&addr, &url("/packages/rice", &[("region", "44")]), &[]).text();
    assert!(filtered.contains(&c.title) && !filtered.contains(&d.title), "{filtered}");

    // The feeds are Atom: one entry per version, newest first.
    for feed in ["/packages.atom", "/packages/rice.atom"] {
        let r = get(&addr, feed, &[]);
        assert_eq!(r.header("content-type"), Some("application/atom+xml; charset=utf-8"));
        // A control character pasted into the description cannot reach the XML.
        assert!(!r.text().chars().any(|c| c < ' ' && !"\t\n\r".contains(c)), "{feed} carries a control character");
        let entries = atom_entries(&r.text());
        assert_eq!(entries, ["水稻技术包（第 2 版）", "水稻技术包（第 1 版）"], "{feed}");
    }
    assert_eq!(get(&addr, "/packages/nothing.atom", &[]).status, 404);
    let index = get(&addr, "/packages", &[]).text();
    assert!(index.contains("现代农业") && index.contains("水稻技术包"), "{index}");

    // Retired: no more versions, the pages say so, the versions stay.
    let r = request(&addr, "POST", "/api/v1/operator/packages/rice/retire", &h(&op()), Some(String::new()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(publish(&addr, "rice").status, 409);
    assert!(get(&addr, "/packages/rice", &[]).text().contains("已停止发布"));
    assert_eq!(get(&addr, "/api/v1/packages/rice/versions/1", &[]).status, 200);
    assert!(get(&addr, "/api/v1/packages", &[]).json()["packages"][0]["retired"].as_bool().unwrap());
    // Unknown packages and versions, no token.
    assert_eq!(get(&addr, "/api/v1/packages/none", &[]).status, 404);
    assert_eq!(get(&addr, "/api/v1/packages/rice/versions/9", &[]).status, 404);
    assert_eq!(get(&addr, "/packages/none", &[]).status, 404);
    assert_eq!(json(&addr, "PUT", "/api/v1/operator/packages/x", &[], &json!({"title": "x"})).status, 401);
    assert!(node.log().contains("package published"), "every publication is logged");
}

/// The titles of a feed's entries, after checking it is an Atom document: the Atom
/// namespace, a feed id, title and updated, and each entry with id, title, updated and
/// a link.
fn atom_entries(xml: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::NsReader::from_str(xml);
    let atom = quick_xml::name::Namespace(b"http://www.w3.org/2005/Atom");
    let mut path: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut titles = Vec::new();
    let mut text = String::new();
    loop {
        match r.read_resolved_event().unwrap() {
            (ns, Event::Start(e)) => {
                assert!(matches!(ns, quick_xml::name::ResolveResult::Bound(n) if n == atom), "an element outside Atom");
                path.push(String::from_utf8(e.local_name().as_ref().to_vec()).unwrap());
                text.clear();
            }
            (ns, Event::Empty(e)) => {
                assert!(matches!(ns, quick_xml::name::ResolveResult::Bound(n) if n == atom));
                let name = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                seen.push(format!("{}/{name}", path.join("/")));
            }
            (_, Event::Text(t)) => text.push_str(&t.decode().unwrap()),
            (_, Event::GeneralRef(g)) => text.push_str(&format!("&{};", String::from_utf8_lossy(&g))),
            (_, Event::End(_)) => {
                let p = path.join("/");
                if p == "feed/entry/title" {
                    titles.push(text.clone());
                }
                seen.push(p);
                path.pop();
            }
            (_, Event::Eof) => break,
            _ => {}
        }
    }
    for need in ["feed/id", "feed/title", "feed/updated", "feed/link", "feed/author/name"] {
        assert!(seen.iter().any(|s| s == need), "the feed lacks {need}");
    }
    for need in ["feed/entry/id", "feed/entry/updated", "feed/entry/link"] {
        assert_eq!(seen.iter().filter(|s| *s == need).count(), titles.len(), "every entry has {need}");
    }
    titles
}

#[test]
fn the_packages_api_answers_as_docs_openapi_json_says() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap()).unwrap();
    let (node, addr) = Node::national_with_api(TOKEN);
    node.drop_file("batch.csv", &csv_of(&[rec("4201022025Y0001", "水稻病虫害智能识别系统"), rec("4201022025Y0002", "水稻灌溉")]));
    node.wait_handled("batch.csv", 1);
    wait_for("2 public records", Duration::from_secs(60), || public_total(&addr) == 2);
    let check = |method: &str, path: &str, r: &Response| {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["tags"].as_array().unwrap().iter().any(|t| t == "packages"), "{path}");
        let status = r.status.to_string();
        let spec = &op["responses"][&status];
        assert!(spec.is_object(), "{method} {path}: status {status} is not documented: {}", r.text());
        let ct = r.header("content-type").unwrap_or("").split(';').next().unwrap().to_string();
        let schema = &spec["content"][&ct]["schema"];
        assert!(schema.is_object(), "{method} {path}: {ct} is not documented for {status}");
        if ct == "application/json" {
            common::conforms(&doc, schema, &r.json(), path).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        }
    };
    let body = json!({"title": "水稻", "field": "现代农业", "description": "说明", "query": {"q": "水稻"}, "include": [], "exclude": []});
    check("put", "/api/v1/operator/packages/{slug}", &put(&addr, "rice", body.clone()));
    check("put", "/api/v1/operator/packages/{slug}", &put(&addr, "rice", body));
    check("put", "/api/v1/operator/packages/{slug}", &put(&addr, "rice", json!({"title": ""})));
    check("get", "/api/v1/operator/packages", &get(&addr, "/api/v1/operator/packages", &h(&op())));
    check("get", "/api/v1/operator/packages/{slug}", &get(&addr, "/api/v1/operator/packages/rice", &h(&op())));
    check("get", "/api/v1/operator/packages/{slug}/preview", &get(&addr, "/api/v1/operator/packages/rice/preview", &h(&op())));
    check("post", "/api/v1/operator/packages/{slug}/publish", &publish(&addr, "rice"));
    check("get", "/api/v1/packages", &get(&addr, "/api/v1/packages", &[]));
    check("get", "/api/v1/packages/{slug}", &get(&addr, "/api/v1/packages/rice?limit=1", &[]));
    check("get", "/api/v1/packages/{slug}", &get(&addr, "/api/v1/packages/nothing", &[]));
    check("get", "/api/v1/packages/{slug}/versions/{n}", &get(&addr, "/api/v1/packages/rice/versions/1", &[]));
    check("get", "/api/v1/packages/{slug}/versions/{n}", &get(&addr, "/api/v1/packages/rice/versions/2", &[]));
    check("get", "/api/v1/packages/{slug}/export", &get(&addr, "/api/v1/packages/rice/export?format=jsonl", &[]));
    check("get", "/api/v1/packages/{slug}/export", &get(&addr, "/api/v1/packages/rice/export?colour=red", &[]));
    let retire = request(&addr, "POST", "/api/v1/operator/packages/rice/retire", &h(&op()), Some(String::new()));
    check("post", "/api/v1/operator/packages/{slug}/retire", &retire);
    check("post", "/api/v1/operator/packages/{slug}/publish", &publish(&addr, "rice"));
    check("get", "/api/v1/operator/packages", &get(&addr, "/api/v1/operator/packages", &[]));
}
