//! The public pages and the admin sign-in as people and attackers use them, through the
//! real binary over HTTP: Chinese errors that keep the search, parameters the API
//! refuses refused on pages too, words separated by any punctuation, why a record
//! matched, region names in the search, code names on the record page, paging back and
//! forth, record text that cannot reorder the page, formula cells defused in every CSV
//! for people, security headers on every answer, and server-side sessions.
//! (Layout at phone width and the error page in a browser: integration/tests/browser.rs.)

mod common;

use common::http::{get, post_form, url, Response};
use common::{wait_for, Node};
use huijiao_kit::synth;
use huijiao_protocol::Record;
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "op-token-0123456789abcdef";

fn rec(reg_no: &str, title: &str, abstract_: &str) -> Record {
    let region = &reg_no[..6];
    let year: i32 = reg_no[6..10].parse().unwrap();
    serde_json::from_value(json!({
        "reg_no": reg_no, "title": title, "kind": "应用技术", "region": region, "reg_date": format!("{year}-03-05"),
        "first_unit": "华中农业研究院", "units": [], "persons": ["李四"], "keywords": [],
        "discipline": "52010", "industry": "C27", "stage": "成熟应用阶段", "level": null, "trl": 7,
        "task_source": "计划外", "plan_no": null, "fiscal_funded": null, "ip": [],
        "transfer": "许可", "abstract": abstract_, "funding": null, "benefit": null, "contact": null,
        "phone": null, "secret": "公开", "embargo_until": null
    }))
    .unwrap()
}

fn national() -> (Node, String) {
    Node::national_with_api(TOKEN)
}

fn fixture() -> Vec<Record> {
    let mut lithium = rec("4201022024Y0001", "锂电池回收关键技术", "梯次利用与材料再生");
    lithium.embargo_until = huijiao_protocol::Date::new(2025, 1, 1);
    let formula = rec("4201022025Y0002", "=HYPERLINK(\"http://evil.example\",\"点我\")", "公式标题");
    let bidi = rec("4201022025Y0003", "发票\u{202E}gpj.exe", "报告\u{2066}反向\u{2069}文本");
    let mut keyword_only = rec("4201022025Y0004", "农田灌溉控制装置", "节水方案");
    keyword_only.keywords = vec!["水稻".into(), "灌溉".into()];
    let mut out = vec![lithium, formula, bidi, keyword_only];
    // 25 about 茶叶: two pages of 20.
    for i in 0..25 {
        let mut r = rec(&format!("4201022025Y{:04}", 100 + i), &format!("茶叶加工工艺{i}"), "茶园");
        if i % 2 == 0 {
            r.region = "420103".into();
            r.reg_no = format!("4201032025Y{:04}", 100 + i);
        }
        out.push(r);
    }
    out
}

fn loaded() -> (Node, String) {
    let (node, addr) = national();
    let recs = fixture();
    node.drop_file("all.csv", &synth::csv(&recs.iter().map(synth::cells).collect::<Vec<_>>(), false));
    let report = node.wait_handled("all.csv", 1);
    assert_eq!(report["rejected"], 0, "{report}");
    wait_for("every record in the catalogue", Duration::from_secs(60), || {
        get(&addr, "/api/v1/records?limit=1", &[]).json()["total"] == recs.len()
    });
    (node, addr)
}

fn page(addr: &str, target: &str) -> (u16, String) {
    let r = get(addr, target, &[]);
    (r.status, r.text())
}

fn total(addr: &str, q: &str) -> u64 {
    let r = get(addr, &url("/api/v1/records", &[("q", q)]), &[]);
    assert_eq!(r.status, 200, "{q}: {}", r.text());
    r.json()["total"].as_u64().unwrap()
}

#[test]
fn pages_speak_chinese_keep_the_search_and_refuse_what_the_api_refuses() {
    let (_node, addr) = national();
    let (status, body) = page(&addr, "/?q=%E6%B0%B4%E7%A8%BB&year_from=2022&year_to=2021");
    assert_eq!(status, 400);
    assert!(body.contains("登记年份的范围是空的：起始年份 2022 晚于截止年份 2021"), "{body}");
    assert!(body.contains("name=\"q\" value=\"水稻\"") && body.contains("value=\"2022\"") && body.contains("value=\"2021\""), "{body}");
    assert!(!body.contains("parameter") && !body.contains("is empty"), "no developer English: {body}");
    for (target, says) in [
        ("/?trl=12", "技术就绪水平应为 1 到 9"),
        ("/?sort=xyz", "排序方式只能是"),
        ("/?kind=%E8%BD%AF%E4%BB%B6", "成果类型的值“软件”无法识别"),
        ("/?year_from=20x5", "登记年份请填四位数字"),
        ("/stats?trl=0", "技术就绪水平应为 1 到 9"),
    ] {
        let (status, body) = page(&addr, target);
        assert_eq!(status, 400, "{target}");
        assert!(body.contains(says), "{target}: {body}");
    }
    // What the API takes, the pages take, and keep in their links.
    let (status, body) = page(&addr, "/?trl=7&sort=date&utm_source=wx");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("另有条件：技术就绪水平 7，排序 date"), "{body}");
    assert!(body.contains("name=\"trl\" value=\"7\""), "kept for the next search: {body}");
    // Without the script, a city of another province is not kept.
    let (_, body) = page(&addr, "/?province=440000&prefecture=420100&county=420102");
    assert!(body.contains("<option value=\"440000\" selected>"), "{body}");
    assert!(!body.contains("<option value=\"420100\" selected>") && !body.contains("<option value=\"420102\" selected>"), "{body}");
}

#[test]
fn every_answer_carries_the_security_headers() {
    let (_node, addr) = national();
    for target in
        ["/", "/?q=x", "/stats", "/records/4201022025Y0001", "/admin", "/api/v1/records", "/api/v1/nothing", "/nothing", "/favicon.ico"]
    {
        let r = get(&addr, target, &[]);
        let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("{target}: no CSP"));
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{target}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{target}: {csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{target}");
        assert!(r.header("referrer-policy").is_some(), "{target}");
    }
    let icon = get(&addr, "/favicon.ico", &[]);
    assert_eq!((icon.status, icon.header("content-type")), (200, Some("image/svg+xml")));
    // No inline script or style attribute anywhere the policy would have to allow.
    for target in ["/", "/stats", "/admin"] {
        let (_, body) = page(&addr, target);
        assert!(!body.contains("<script>") && !body.contains(" style=\"") && !body.contains("onclick"), "{target}: {body}");
    }
}

#[test]
fn searches_links_and_records_as_people_read_them() {
    let (_node, addr) = loaded();
    // Any punctuation separates words as a space does.
    let spaced = total(&addr, "锂电池 回收");
    assert_eq!(spaced, 1);
    for q in ["锂电池，回收", "锂电池、回收", "锂电池,回收", "锂电池;回收", "锂电池-回收", "锂电池／回收"]
    {
        assert_eq!(total(&addr, q), spaced, "{q}");
    }
    // A hit in the keywords only says so.
    let (_, body) = page(&addr, &url("/", &[("q", "水稻")]));
    assert!(body.contains("农田灌溉控制装置"), "{body}");
    assert!(body.contains("命中：<bdi>关键词：<mark>水稻</mark>；灌溉</bdi>"), "{body}");
    // A region's name acts on the region.
    let (_, body) = page(&addr, &url("/", &[("q", "江岸区 茶叶")]));
    assert!(body.contains("“江岸区”作为地区"), "{body}");
    assert!(body.contains("共 <strong id=\"total\">12 条</strong>"), "12 of the 25 are in 江岸区: {body}");
    assert_eq!(total(&addr, "江汉区、茶叶"), 13);
    // The totals are exact.
    assert_eq!(total(&addr, "茶叶"), 25);
    // Paging forth and back.
    let (_, first) = page(&addr, &url("/", &[("q", "茶叶")]));
    assert!(!first.contains("上一页"));
    let next = link(&first, "rel=\"next\"");
    let (_, second) = page(&addr, &next);
    assert_eq!(second.matches("class=\"hit\"").count(), 5, "{second}");
    let prev = link(&second, "rel=\"prev\"");
    let (_, back) = page(&addr, &prev);
    assert_eq!(titles(&back), titles(&first), "上一页 shows the first page again");
    // The record page: codes with their names, 返回检索 to the very search.
    let record_link = first.split("class=\"title\" href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let (status, body) = page(&addr, &record_link);
    assert_eq!(status, 200, "{record_link}");
    assert!(body.contains("52010 计算机科学技术"), "{body}");
    assert!(body.contains("C27 医药制造业"), "{body}");
    let back = link(&body, "class=\"back\"");
    assert!(back.starts_with("/?q=") && back.contains("%E8%8C%B6%E5%8F%B6"), "返回检索 keeps the search: {back}");
    let (_, body) = page(&addr, "/records/4201022025Y0004?back=https://evil.example/");
    assert!(body.contains("class=\"back\" href=\"/\""), "no way off the site: {body}");
    // Record text cannot turn the page around.
    let (_, body) = page(&addr, "/records/4201022025Y0003");
    for c in ['\u{202E}', '\u{2066}', '\u{2069}'] {
        assert!(!body.contains(c), "{c:?} reached the page");
    }
    assert!(body.contains("<h1><bdi>发票gpj.exe</bdi></h1>"), "{body}");
    let (_, body) = page(&addr, &url("/", &[("q", "发票")]));
    assert!(!body.contains('\u{202E}') && body.contains("<bdi><mark>发票</mark>gpj.exe</bdi>"), "{body}");
}

/// The `href` of the first link holding `marker`, unescaped.
fn link(body: &str, marker: &str) -> String {
    let at = body.find(marker).unwrap_or_else(|| panic!("no {marker}: {body}"));
    let tag_start = body[..at].rfind("<a ").unwrap();
    let tag = &body[tag_start..body[at..].find('>').unwrap() + at];
    tag.split("href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&")
}

fn titles(body: &str) -> Vec<&str> {
    body.split("class=\"title\"").skip(1).map(|s| s.split("</a>").next().unwrap()).collect()
}

#[test]
fn every_csv_for_people_defuses_formulas_and_hides_lapsed_embargoes() {
    let (node, addr) = loaded();
    let csv = get(&addr, "/api/v1/export?format=csv", &[]).text();
    let lithium = csv.lines().find(|l| l.starts_with("4201022024Y0001,")).unwrap();
    assert!(!lithium.contains("2025-01-01"), "the lapsed embargo in the public CSV: {lithium}");
    assert!(csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"点我\"\")\""), "{csv}");
    let jsonl = get(&addr, "/api/v1/export?format=jsonl", &[]).text();
    assert!(jsonl.contains("4201022024Y0001") && !jsonl.contains("2025-01-01"), "{jsonl}");
    let one = get(&addr, "/api/v1/records/4201022024Y0001", &[]).text();
    assert!(!one.contains("embargo") && !one.contains("2025-01-01"), "{one}");
    // The CLI's public export is the same file.
    let out = node.dir.path().join("cli.csv");
    let r = node.cli(&["query", "--config", node.config.to_str().unwrap(), "--export", "csv", "--public", "--out", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), csv);
    // The CLI takes the API's names too.
    let cfg = node.config.to_str().unwrap();
    let count = |args: &[&str]| {
        let mut all = vec!["query", "--config", cfg, "--count"];
        all.extend(args);
        let r = node.cli(&all);
        assert!(r.status.success(), "{args:?}: {}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8_lossy(&r.stdout).trim().to_string()
    };
    assert_eq!(count(&["--reg-date", "2024-01-01..2024-12-31"]), "1");
    assert_eq!(count(&["--ip", "发明专利"]), "0");
    // The rejected rows a clerk opens: a formula the clerk typed is shown, not run.
    let mut bad = rec("4201022025Y0900", "=1+1", "x");
    bad.persons = vec![];
    node.drop_file("bad.csv", &synth::csv(&[synth::cells(&bad)], false));
    let report = node.wait_handled("bad.csv", 1);
    assert_eq!(report["rejected"], 1, "{report}");
    let rejected = node
        .reports()
        .into_iter()
        .map(|(p, _)| p.with_file_name("bad.csv.rejected.csv"))
        .find(|p| p.exists())
        .expect("bad.csv.rejected.csv");
    let text = std::fs::read_to_string(rejected).unwrap();
    assert!(text.contains(",'=1+1,"), "{text}");
}

fn cookie_of(r: &Response) -> String {
    let set = r.headers_named("set-cookie");
    let c = set.iter().find(|c| c.starts_with("hj_admin=")).unwrap_or_else(|| panic!("no session cookie: {set:?}"));
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Max-Age="), "{c}");
    c.split(';').next().unwrap().to_string()
}

fn form_token(body: &str) -> String {
    body.split("name=\"csrf\" value=\"").nth(1).unwrap_or_else(|| panic!("no form token: {body}")).split('"').next().unwrap().to_string()
}

#[test]
fn admin_sessions_are_random_server_side_and_end_at_sign_out() {
    let (node, addr) = national();
    let origin = format!("http://{addr}");
    let here = [("Origin", origin.as_str())];
    let login = |headers: &[(&str, &str)], token: &str| post_form(&addr, "/admin/login", headers, &[("token", token)]);
    // Two sign-ins, two sessions.
    let a = cookie_of(&login(&here, TOKEN));
    let b = cookie_of(&login(&here, TOKEN));
    assert_ne!(a, b);
    assert!(!a.contains(TOKEN) && a.len() > 40, "{a}");
    let admin = |cookie: &str| get(&addr, "/admin", &[("Cookie", cookie)]).text();
    let body = admin(&a);
    assert!(body.contains("退出") && body.contains("本节点"), "signed in: {body}");
    // A sign-in from another site, a wrong token, a forged or missing form token: refused.
    assert_eq!(login(&[("Origin", "http://evil.example")], TOKEN).status, 403);
    assert_eq!(login(&[], TOKEN).status, 403, "neither Origin nor Referer");
    assert_eq!(login(&here, "wrong-token-0123456789").status, 401);
    let token_a = form_token(&body);
    let forged = post_form(&addr, "/admin/logout", &[("Origin", &origin), ("Cookie", &a)], &[("csrf", "forged")]);
    assert_eq!(forged.status, 403);
    let cross = post_form(&addr, "/admin/logout", &[("Origin", "http://evil.example"), ("Cookie", &a)], &[("csrf", &token_a)]);
    assert_eq!(cross.status, 403);
    assert!(admin(&a).contains("退出"), "still signed in");
    // Sign-out ends the session on the server: the old cookie, replayed, opens nothing.
    let out = post_form(&addr, "/admin/logout", &[("Origin", &origin), ("Cookie", &a)], &[("csrf", &token_a)]);
    assert_eq!(out.status, 303);
    let replay = admin(&a);
    assert!(replay.contains("运维口令") && !replay.contains("退出"), "{replay}");
    assert!(admin(&b).contains("退出"), "the other session lives on");
    // A new token ends every session opened with the old one, and works at once.
    let token_file = node.dir.path().join("api-token");
    std::fs::write(&token_file, "a-new-token-9876543210fedcba\n").unwrap();
    assert!(admin(&b).contains("运维口令"), "the old token's session ended");
    assert_eq!(login(&here, TOKEN).status, 401);
    let c = cookie_of(&login(&here, "a-new-token-9876543210fedcba"));
    assert!(admin(&c).contains("退出"));
    let bearer = get(&addr, "/api/v1/operator/records", &[("Authorization", "Bearer a-new-token-9876543210fedcba")]);
    assert_eq!(bearer.status, 200);
}
