//! The catalogue through the real binary: the HTTP API (held to docs/openapi.json), the
//! CLI's search, statistics and export, the public view's secrecy on every path, an
//! export that re-imports unchanged, and an index that catches up after SIGKILL.

mod common;

use common::http::{get, url};
use common::{wait_for, Node};
use huijiao_kit::synth;
use huijiao_protocol::Record;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "op-token-0123456789abcdef";

fn rec(reg_no: &str, title: &str, abstract_: &str) -> Record {
    let region = &reg_no[..6];
    let year: i32 = reg_no[6..10].parse().unwrap();
    serde_json::from_value(json!({
        "reg_no": reg_no, "title": title, "kind": "应用技术", "region": region, "reg_date": format!("{year}-03-05"),
        "first_unit": "华中农业研究院", "units": ["武汉理工协作组"], "persons": ["李四", "王五"], "keywords": ["农业"],
        "discipline": "2104010", "industry": "A01", "stage": "成熟应用阶段", "level": "国内领先", "trl": 7,
        "task_source": "省部计划", "plan_no": "2024-NY-01", "fiscal_funded": true, "ip": ["发明专利:ZL2024100001.1"],
        "transfer": "许可", "abstract": abstract_, "funding": 120.5, "benefit": 300.0, "contact": "赵联系",
        "phone": "027-88886666", "secret": "公开", "embargo_until": null
    }))
    .unwrap()
}

fn csv_of(records: &[Record]) -> Vec<u8> {
    synth::csv(&records.iter().map(synth::cells).collect::<Vec<_>>(), false)
}

/// A national node with the API on a free port and an operator token.
fn national() -> Node {
    Node::national_with_api(TOKEN).0
}

fn api(node: &Node) -> String {
    let f = node.dir.path().join("data/http-address");
    wait_for("the API address", Duration::from_secs(60), || f.exists());
    std::fs::read_to_string(f).unwrap()
}

fn records(addr: &str, params: &[(&str, &str)]) -> Value {
    let r = get(addr, &url("/api/v1/records", params), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn reg_nos(page: &Value) -> Vec<String> {
    page["records"].as_array().unwrap().iter().map(|r| r["reg_no"].as_str().unwrap().to_string()).collect()
}

/// Waits until the public listing holds `n` records.
fn wait_listed(addr: &str, n: u64) {
    wait_for(&format!("{n} public records in the catalogue"), Duration::from_secs(120), || {
        records(addr, &[("limit", "1")])["total"].as_u64() == Some(n)
    });
}

fn operator(addr: &str, target: &str) -> common::http::Response {
    get(addr, target, &[("Authorization", &format!("Bearer {TOKEN}"))])
}

/// The fixture: what the public may see and what it must not.
fn fixture() -> (Vec<Record>, Vec<&'static str>) {
    let title_hit = rec("4201022025Y0001", "水稻病虫害智能识别系统", "田间图像分析");
    let abstract_hit = rec("4201022025Y0002", "农田灌溉控制装置", "可提高水稻产量的节水方案");
    let mut lidar = rec("4401062024Y0003", "基于LiDAR的5G基站巡检机器人", "激光点云识别");
    lidar.region = "440106".into();
    let mut internal = rec("4201022025Y0004", "水稻内部绝密配方", "内部资料");
    internal.secret = huijiao_protocol::Secret::Internal;
    let mut embargoed = rec("4201022025Y0005", "水稻延期公开品种", "尚未公开");
    embargoed.embargo_until = Some(huijiao_protocol::Date { year: 2030, month: 1, day: 1 });
    let mut secret_ip = rec("4201022025Y0006", "水稻加工工艺", "含技术秘密");
    secret_ip.ip = vec!["技术秘密:JSMM-778899".into(), "发明专利:ZL2025100002.2".into()];
    let withdrawn = rec("4201022025Y0007", "水稻撤回成果", "将被撤销");
    let hidden = vec![
        "4201022025Y0004",
        "水稻内部绝密配方",
        "4201022025Y0005",
        "水稻延期公开品种",
        "JSMM-778899",
        "4201022025Y0007",
        "水稻撤回成果",
        "赵联系",
        "027-88886666",
    ];
    (vec![title_hit, abstract_hit, lidar, internal, embargoed, secret_ip, withdrawn], hidden)
}

fn assert_no_leak(what: &str, bytes: &[u8], hidden: &[&str]) {
    let text = String::from_utf8_lossy(bytes);
    for h in hidden {
        assert!(!text.contains(h), "{what} leaks `{h}`:\n{text}");
    }
}

#[test]
fn search_filters_views_and_nothing_secret_leaks() {
    let (recs, hidden) = fixture();
    let node = national();
    let addr = api(&node);
    node.drop_file("batch.csv", &csv_of(&recs));
    node.wait_handled("batch.csv", 1);
    node.drop_file("withdraw.csv", "\u{feff}登记号,操作\r\n4201022025Y0007,撤销\r\n".as_bytes());
    node.wait_handled("withdraw.csv", 1);
    wait_listed(&addr, 4);

    // Search: 2-, 3- and 5-character Chinese, mixed, English, reg_no; title hits first.
    assert_eq!(reg_nos(&records(&addr, &[("q", "水稻")])), ["4201022025Y0006", "4201022025Y0001", "4201022025Y0002"]);
    assert_eq!(reg_nos(&records(&addr, &[("q", "病虫害")])), ["4201022025Y0001"]);
    assert_eq!(reg_nos(&records(&addr, &[("q", "水稻病虫害")])), ["4201022025Y0001"]);
    assert_eq!(reg_nos(&records(&addr, &[("q", "识别")])), ["4201022025Y0001", "4401062024Y0003"]);
    assert_eq!(reg_nos(&records(&addr, &[("q", "LiDAR")])), ["4401062024Y0003"]);
    assert_eq!(reg_nos(&records(&addr, &[("q", "5G基站")])), ["4401062024Y0003"]);
    assert_eq!(reg_nos(&records(&addr, &[("q", "4201022025Y0002")])), ["4201022025Y0002"]);
    let page = records(&addr, &[("q", "病虫害")]);
    assert_eq!(page["records"][0]["_highlight"]["title"], "水稻<mark>病虫害</mark>智能识别系统");

    // Filters, by spec keys; a region by name.
    assert_eq!(records(&addr, &[("region", "湖北省")])["total"], 3);
    assert_eq!(reg_nos(&records(&addr, &[("region", "广州市")])), ["4401062024Y0003"]);
    assert_eq!(records(&addr, &[("q", "水稻"), ("year", "2025"), ("trl", "5..9"), ("transfer", "许可")])["total"], 3);
    assert_eq!(records(&addr, &[("year", "2024")])["total"], 1);

    // Hidden records are not there, one by one or in lists; the same 404 as unknown.
    for reg_no in ["4201022025Y0004", "4201022025Y0005", "4201022025Y0007", "4201022099Y9999"] {
        let r = get(&addr, &format!("/api/v1/records/{reg_no}"), &[]);
        assert_eq!(r.status, 404, "{reg_no}");
        assert!(r.text().contains("no public record"));
    }
    let secret_ip = get(&addr, "/api/v1/records/4201022025Y0006", &[]).json();
    assert_eq!(secret_ip["ip"], json!(["发明专利:ZL2025100002.2"]), "技术秘密 entries removed");
    assert!(secret_ip.get("contact").is_none() && secret_ip.get("funding").is_none() && secret_ip.get("secret").is_none());
    assert_eq!(records(&addr, &[("ip", "技术秘密")])["total"], 0);

    // Every public path, searched and exported wide: nothing hidden shows.
    let mut public = Vec::new();
    for target in [
        url("/api/v1/records", &[("q", "水稻"), ("limit", "100")]),
        url("/api/v1/records", &[("limit", "100")]),
        url("/api/v1/records", &[("q", "赵联系")]),
        url("/api/v1/records", &[("q", "JSMM")]),
        url("/api/v1/stats", &[("by", "kind")]),
        url("/api/v1/stats", &[("by", "county")]),
        url("/api/v1/export", &[("format", "csv")]),
        url("/api/v1/export", &[("format", "jsonl")]),
        url("/api/v1/export", &[("format", "csv"), ("q", "水稻")]),
    ] {
        let r = get(&addr, &target, &[]);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_no_leak(&target, &r.body, &hidden);
        public.push((target, r));
    }
    assert_eq!(public[2].1.json()["total"], 0, "contacts are not searchable publicly");
    assert_eq!(public[3].1.json()["total"], 0, "trade secrets are not searchable publicly");
    assert_eq!(public[4].1.json()["groups"], json!([{"key": "应用技术", "count": 4}]), "public statistics count public records");
    assert!(public[6].1.body.starts_with(&[0xEF, 0xBB, 0xBF]));
    assert_eq!(public[6].1.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(public[7].1.text().lines().count(), 4);
    let cli = |args: &[&str]| {
        let out = node.cli(&[&["query", "--config", node.config.to_str().unwrap()], args].concat());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    for args in [
        vec!["-q", "水稻", "--public", "--json"],
        vec!["--stats", "kind"],
        vec!["--stats", "region", "--region", "湖北省", "--json"],
        vec!["--export", "csv"],
        vec!["--export", "jsonl", "-q", "水稻"],
    ] {
        let out = cli(&args);
        assert_no_leak(&format!("query {args:?}"), &out, &hidden);
    }
    let stats: Value = serde_json::from_slice(&cli(&["--stats", "region", "--region", "湖北省", "--json"])).unwrap();
    assert_eq!(stats, json!({"by": "prefecture", "total": 3, "groups": [{"key": "420100", "name": "武汉市", "count": 3}]}));

    // Operators see everything, with the token only.
    let all = operator(&addr, &url("/api/v1/operator/records", &[("q", "水稻"), ("limit", "100")]));
    assert_eq!(all.status, 200);
    let mut seen = reg_nos(&all.json());
    seen.sort();
    assert_eq!(seen, ["4201022025Y0001", "4201022025Y0002", "4201022025Y0004", "4201022025Y0005", "4201022025Y0006", "4201022025Y0007"]);
    let internal = operator(&addr, "/api/v1/operator/records/4201022025Y0004").json();
    assert_eq!((internal["secret"].as_str(), internal["_origin"].as_str()), (Some("内部"), Some("000000")));
    assert_eq!(operator(&addr, &url("/api/v1/operator/stats", &[("by", "kind")])).json()["total"], 6, "all but the withdrawn");
    for target in ["/api/v1/operator/records", "/api/v1/operator/export?format=csv"] {
        let r = get(&addr, target, &[]);
        assert_eq!(r.status, 401, "{target}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = get(&addr, target, &[("Authorization", "Bearer wrong-token-0123456789")]);
        assert_eq!(r.status, 401, "{target}");
    }
    let listed = String::from_utf8(cli(&["-q", "水稻", "--json"])).unwrap();
    assert_eq!(listed.lines().count(), 6, "the CLI's listing is the operator's");

    // Bad parameters: 400 naming the parameter; big pages are capped.
    for (params, name) in [
        (vec![("limit", "lots")], "limit"),
        (vec![("trl", "12")], "trl"),
        (vec![("region", "火星省")], "region"),
        (vec![("kind", "软件")], "kind"),
        (vec![("since", "2025-13-01")], "since"),
        (vec![("cursor", "not-a-cursor")], "cursor"),
        (vec![("colour", "red")], "colour"),
    ] {
        let r = get(&addr, &url("/api/v1/records", &params), &[]);
        assert_eq!(r.status, 400, "{params:?}");
        assert_eq!(r.json()["parameter"], name, "{params:?}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains(name));
    }
    assert_eq!(get(&addr, &url("/api/v1/stats", &[("by", "colour")]), &[]).json()["parameter"], "by");
    let capped = records(&addr, &[("limit", "5000")]);
    assert_eq!((capped["limit"].as_u64(), capped["limit_capped"].as_bool()), (Some(100), Some(true)));
    let out = node.cli(&["query", "--config", node.config.to_str().unwrap(), "--trl", "12"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--trl"));
}

#[test]
fn an_export_dropped_into_a_fresh_node_exports_the_same() {
    let (mut recs, _) = fixture();
    // Every field filled somewhere, lists and numbers of several shapes.
    recs[1].units = vec!["甲单位".into(), "乙单位".into(), "丙单位".into()];
    recs[1].fiscal_funded = Some(false);
    recs[1].trl = None;
    recs[1].benefit = Some(-12.75);
    recs[2].keywords = vec![];
    recs[2].embargo_until = Some(huijiao_protocol::Date { year: 2025, month: 1, day: 1 });
    // Cells a spreadsheet would run as formulas (spec v1.2 §3), and ones it would not.
    recs[1].title = "=HYPERLINK(\"http://evil.example\",\"点我\")".into();
    recs[2].first_unit = "@研究所".into();
    recs[2].persons = vec!["-王五".into(), "李四".into()];
    recs[2].phone = Some("+86 27 8888 6666".into());
    let first = national();
    let a = api(&first);
    first.drop_file("all.csv", &csv_of(&recs));
    first.wait_handled("all.csv", 1);
    wait_listed(&a, 5);
    for (view, target) in [("public", "/api/v1/export?format=csv"), ("operator", "/api/v1/operator/export?format=csv")] {
        // A fresh node each time (an export lists records in the order they reached
        // the node, so a node that took other files first lists them otherwise).
        let second = national();
        let b = api(&second);
        let exported = operator(&a, target);
        assert_eq!(exported.status, 200);
        let text = String::from_utf8_lossy(&exported.body).to_string();
        assert!(text.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"点我\"\")\""), "{view}: {text}");
        assert!(text.contains(",'@研究所,") && text.contains(",'-王五;李四,"), "{view}: {text}");
        if view == "operator" {
            assert!(text.contains(",+86 27 8888 6666,"), "a telephone number is left as it is: {text}");
        }
        let name = format!("{view}-export.csv");
        second.drop_file(&name, &exported.body);
        let report = second.wait_handled(&name, 1);
        assert_eq!(report["rejected"], 0, "{view}: {report}");
        let total = if view == "public" { 5 } else { 7 };
        wait_for(&format!("{total} records in the second catalogue"), Duration::from_secs(60), || {
            operator(&b, "/api/v1/operator/records?limit=1").json()["total"] == total
        });
        let title = operator(&b, "/api/v1/operator/records/4201022025Y0002").json()["title"].clone();
        assert_eq!(title, recs[1].title.as_str(), "{view}: the formula title re-imports unchanged");
        let again = operator(&b, target);
        assert_eq!(
            String::from_utf8(again.body).unwrap(),
            String::from_utf8(exported.body).unwrap(),
            "{view}: the re-imported export exports the same"
        );
    }
    // The CLI writes the same file the API streams.
    let out = first.dir.path().join("cli-export.csv");
    let status = first.cli(&["query", "--config", first.config.to_str().unwrap(), "--export", "csv", "--out", out.to_str().unwrap()]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), get(&a, "/api/v1/export?format=csv", &[]).body);
}

#[test]
fn the_index_catches_up_after_sigkill_and_reindex_rebuilds_it() {
    let mut node = national();
    let addr = api(&node);
    let mut g = synth::Generator::new(7);
    let today = huijiao_protocol::Date { year: 2026, month: 1, day: 1 };
    let mut all: Vec<Record> = (1..=15_000).map(|i| g.record("420102", i, today)).collect();
    for r in &mut all {
        r.secret = huijiao_protocol::Secret::Public;
        r.embargo_until = None;
    }
    node.drop_file("big.csv", &csv_of(&all));
    // Killed as soon as the indexer has committed something, most likely mid-way.
    let mut before = 0;
    wait_for("the indexer to start", Duration::from_secs(120), || {
        before = records(&addr, &[("limit", "1")])["total"].as_u64().unwrap();
        before > 0
    });
    node.kill();
    eprintln!("indexed when killed: {before} of 15000");
    std::fs::remove_file(node.dir.path().join("data/http-address")).unwrap();
    node.start();
    let addr2 = api(&node);
    // A search's total stops at 10,000; the statistics count them all, and so does a
    // listing the counters serve (no search, no filter but region and years).
    wait_for("the catalogue to hold every record", Duration::from_secs(180), || {
        get(&addr2, &url("/api/v1/stats", &[("by", "kind")]), &[]).json()["total"].as_u64() == Some(15_000)
    });
    let page = records(&addr2, &[("limit", "1")]);
    assert_eq!((page["total"].as_u64(), page["total_capped"].as_bool()), (Some(15_000), Some(false)), "{page}");
    let page = records(&addr2, &[("limit", "1"), ("q", "成果")]);
    assert_eq!((page["total"].as_u64(), page["total_capped"].as_bool()), (Some(10_000), Some(true)), "{page}");
    let some = &all[12_345];
    let found = records(&addr2, &[("reg_no", &some.reg_no)]);
    assert_eq!(reg_nos(&found), vec![some.reg_no.as_str()]);
    node.stop();
    // A rebuild from the store gives the same answers.
    let out = node.cli(&["reindex", "--config", node.config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("15000 records"), "{}", String::from_utf8_lossy(&out.stdout));
    let count = node.cli(&["query", "--config", node.config.to_str().unwrap(), "--public", "--count", "-q", &some.reg_no]);
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "1");
}

#[test]
fn the_server_answers_as_docs_openapi_json_says() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap()).unwrap();
    let (recs, _) = fixture();
    let node = national();
    let addr = api(&node);
    node.drop_file("batch.csv", &csv_of(&recs));
    node.wait_handled("batch.csv", 1);
    wait_listed(&addr, 5);
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        // The catalogue's reads; online registration's and the packages' calls are held
        // to the document by tests/registration.rs and tests/packages.rs.
        let op = &item["get"];
        if op.is_null() || op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "registration" || t == "packages")) {
            continue;
        }
        let params = op["parameters"].as_array().unwrap();
        let target_path = path.replace("{reg_no}", "4201022025Y0001");
        let auth: Vec<(&str, String)> =
            if op.get("security").is_some() { vec![("Authorization", format!("Bearer {TOKEN}"))] } else { vec![] };
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let required: Vec<(&str, &str)> = params
            .iter()
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .map(|p| (p["name"].as_str().unwrap(), p["example"].as_str().unwrap()))
            .collect();
        let check = |r: &common::http::Response, what: &str| {
            let status = r.status.to_string();
            let spec = &op["responses"][&status];
            assert!(spec.is_object(), "{path} {what}: status {status} is not documented: {}", r.text());
            let ct = r.header("content-type").unwrap_or("").split(';').next().unwrap().to_string();
            let schema = &spec["content"][&ct]["schema"];
            assert!(schema.is_object(), "{path} {what}: content type {ct} is not documented for {status}");
            if ct == "application/json" {
                common::conforms(&doc, schema, &r.json(), path).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        };
        // The documented example of each parameter is accepted alone (with the required ones).
        let r = get(&addr, &url(&target_path, &required), &headers);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        check(&r, "plain");
        for p in params.iter().filter(|p| p["in"] == "query" && p["required"] != true) {
            let name = p["name"].as_str().unwrap();
            let example = p["example"].as_str().unwrap();
            let mut q = required.clone();
            q.push((name, example));
            let r = get(&addr, &url(&target_path, &q), &headers);
            assert_eq!(r.status, 200, "{path} with {name}={example}: {}", r.text());
            check(&r, name);
        }
        // What the document does not name is refused, as documented.
        if path.contains("{reg_no}") {
            let r = get(&addr, &path.replace("{reg_no}", "4201022099Y9999"), &headers);
            assert_eq!(r.status, 404);
            check(&r, "unknown reg_no");
        } else {
            let mut q = required.clone();
            q.push(("undocumented", "1"));
            let r = get(&addr, &url(path, &q), &headers);
            assert_eq!(r.status, 400, "{path}: an undocumented parameter");
            check(&r, "undocumented parameter");
        }
        if !auth.is_empty() {
            let r = get(&addr, &url(&target_path, &required), &[]);
            assert_eq!(r.status, 401);
            check(&r, "no token");
        }
    }
    // Nothing is served that the document does not describe.
    assert_eq!(get(&addr, "/api/v1/records/x/y", &[]).status, 404);
    assert_eq!(get(&addr, "/api/v2/records", &[]).status, 404);
}
