//! The web pages in a real browser: headless Chromium driven over WebDriver against a
//! national node and a province below it, both real processes. Screenshots of every
//! page go to `target/tmp/browser/` (test artifacts, not committed).

use huijiao_kit::synth;
use huijiao_protocol::{Record, Secret};
use integration::webdriver::Driver;
use integration::Federation;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "browser-test-token-0123456789";
const LIMIT: Duration = Duration::from_secs(120);

fn rec(reg_no: &str, title: &str) -> Record {
    serde_json::from_value(json!({
        "reg_no": reg_no, "title": title, "kind": "应用技术", "region": &reg_no[..6], "reg_date": format!("{}-06-01", &reg_no[6..10]),
        "first_unit": "农业科学院", "units": [], "persons": ["张三"], "keywords": ["农业"], "discipline": "2104010",
        "industry": "A01", "stage": "成熟应用阶段", "level": null, "trl": 8, "task_source": "计划外", "plan_no": null,
        "fiscal_funded": true, "ip": ["技术秘密:MIMI-4242", "发明专利:ZL2025000001.1"], "transfer": "许可",
        "abstract": "一项关于稻田管理的成果。", "funding": 88.5, "benefit": 1234.5, "contact": "钱秘书",
        "phone": "027-55554444", "secret": "公开", "embargo_until": null
    }))
    .unwrap()
}

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser")
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page is no wider than the window: nothing to scroll sideways.
fn assert_fits(d: &Driver, what: &str) {
    let widths = d.script("return [document.documentElement.scrollWidth, window.innerWidth]", vec![]).unwrap();
    let (page, window) = (widths[0].as_f64().unwrap(), widths[1].as_f64().unwrap());
    assert!(page <= window, "{what} scrolls sideways: {page} px in a {window} px window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_and_admin_pages_in_chromium() {
    let mut f = Federation::with_processes().unwrap();
    f.add("000000", None).unwrap();
    f.add("420000", Some("000000")).unwrap();
    let national = f.node("000000").dir.clone();
    let token = national.join("api-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    f.start_with("000000", |t| t.push_str("\n[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\n")).await.unwrap();
    f.start("420000").await.unwrap();

    // Hubei's records come up from the province; Guangdong's are dropped at national.
    let mut internal = rec("4201022025Y0009", "水稻内部资料汇编");
    internal.secret = Secret::Internal;
    let hubei = vec![rec("4201022025Y0001", "水稻病虫害智能识别"), rec("4201112024Y0002", "水稻节水灌溉技术"), internal];
    let guangdong = vec![rec("4401062025Y0003", "水稻新品种选育"), rec("4401062025Y0004", "芯片封装工艺")];
    let csv = |rs: &[Record]| synth::csv(&rs.iter().map(synth::cells).collect::<Vec<_>>(), false);
    f.node("420000").drop_file("hubei.csv", &csv(&hubei)).unwrap();
    f.node("000000").drop_file("guangdong.csv", &csv(&guangdong)).unwrap();
    let api = || std::fs::read_to_string(national.join("data/http-address")).unwrap_or_default();
    wait_until("the national catalogue to hold 4 public records", || {
        let a = api();
        !a.is_empty() && integration::http_get(&a, "/api/v1/records?limit=1").is_ok_and(|b| b.contains("\"total\":4"))
    })
    .await;
    let base = format!("http://{}", api());

    let shots = artifacts();
    let d = Driver::start(&shots.join("downloads"), 390, 844).expect("a headless Chromium (Debian: chromium, chromium-driver)");

    // A two-character search from the search box.
    d.goto(&format!("{base}/")).unwrap();
    let q = d.find("input[name=q]").unwrap();
    d.type_into(&q, "水稻").unwrap();
    d.click(&d.find(".searchbar button").unwrap()).unwrap();
    d.wait_for("results", LIMIT, |d| Ok(d.url()?.contains("q=") && !d.find_all(".hit")?.is_empty())).unwrap();
    let titles: Vec<String> = d.find_all(".hit .title").unwrap().iter().map(|e| d.text(e).unwrap()).collect();
    let mut sorted = titles.clone();
    sorted.sort();
    assert_eq!(sorted, ["水稻新品种选育", "水稻病虫害智能识别", "水稻节水灌溉技术"], "the public 水稻 records, no internal one");
    assert!(d.source().unwrap().contains("<mark>水稻</mark>"), "hits are highlighted");
    d.screenshot(&shots.join("search.png")).unwrap();
    let search_url = d.url().unwrap();

    // A province from the picker: only its records.
    d.script("var s = document.querySelector('select[name=province]'); s.value = '420000'; s.dispatchEvent(new Event('change'));", vec![])
        .unwrap();
    d.wait_for("the city picker to fill", LIMIT, |d| Ok(d.find_all("select[name=prefecture] option").unwrap().len() > 1)).unwrap();
    d.click(&d.find(".searchbar button").unwrap()).unwrap();
    d.wait_for("the filtered results", LIMIT, |d| Ok(d.url()?.contains("province=420000"))).unwrap();
    let metas: Vec<String> = d.find_all(".hit .meta").unwrap().iter().map(|e| d.text(e).unwrap()).collect();
    assert_eq!(metas.len(), 2, "{metas:?}");
    assert!(metas.iter().all(|m| m.contains("湖北省")), "{metas:?}");
    assert_eq!(d.text(&d.find("#total").unwrap()).unwrap(), "2 条");
    d.screenshot(&shots.join("search-hubei.png")).unwrap();

    // A shared search is a URL.
    d.goto(&search_url).unwrap();
    assert_eq!(d.find_all(".hit").unwrap().len(), 3);

    // A record page: public fields only, nothing private in the DOM.
    let link = d.find_all(".hit .title").unwrap().into_iter().find(|e| d.text(e).unwrap() == "水稻病虫害智能识别").unwrap();
    d.click(&link).unwrap();
    d.wait_for("the record page", LIMIT, |d| Ok(d.url()?.contains("/records/4201022025Y0001"))).unwrap();
    let dom = d.source().unwrap();
    assert!(dom.contains("水稻病虫害智能识别") && dom.contains("发明专利:ZL2025000001.1"));
    for private in [
        "钱秘书",
        "027-55554444",
        "88.5",
        "1234.5",
        "MIMI-4242",
        "技术秘密",
        "联系人",
        "联系电话",
        "密级",
        "研究经费",
        "经济效益",
        "延期公开",
    ] {
        assert!(!dom.contains(private), "the record page holds `{private}`");
    }
    let fields: Vec<String> = d.find_all("dd[data-field]").unwrap().iter().map(|e| d.attr(e, "data-field").unwrap().unwrap()).collect();
    for f in &fields {
        let field = huijiao_protocol::fields::Field::ALL.iter().find(|x| x.key() == f).unwrap();
        assert!(field.public(), "{f} is not a public field");
    }
    d.screenshot(&shots.join("record.png")).unwrap();
    // 返回检索 goes back to the very search.
    d.click(&d.find("a.back").unwrap()).unwrap();
    d.wait_for("the search again", LIMIT, |d| Ok(!d.url()?.contains("/records/") && d.find_all(".hit")?.len() == 3)).unwrap();
    assert_eq!(d.script("return document.querySelector('input[name=q]').value", vec![]).unwrap(), json!("水稻"));
    d.goto(&format!("{base}/records/4201022025Y0009")).unwrap();
    assert!(d.source().unwrap().contains("没有登记号为 4201022025Y0009 的公开成果"), "an internal record is not shown");

    // The CSV download of what is shown.
    d.goto(&search_url).unwrap();
    let _ = std::fs::remove_dir_all(&d.downloads);
    std::fs::create_dir_all(&d.downloads).unwrap();
    d.click(&d.find("a.download").unwrap()).unwrap();
    let mut csv_path = None;
    d.wait_for("the CSV download", LIMIT, |d| {
        csv_path = std::fs::read_dir(&d.downloads)?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "csv"));
        Ok(csv_path.is_some())
    })
    .unwrap();
    let bytes = std::fs::read(csv_path.unwrap()).unwrap();
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 with BOM for Excel");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("登记号,成果名称,成果类型"), "{}", lines[0]);
    assert_eq!(lines.len(), 4, "header and the three records shown: {text}");
    assert!(!text.contains("钱秘书") && !text.contains("MIMI-4242"));

    // A search the catalogue cannot take: said in Chinese, the form still filled in.
    d.goto(&format!("{base}/?q=%E6%B0%B4%E7%A8%BB&year_from=2022&year_to=2021")).unwrap();
    let error = d.text(&d.find("p.error").unwrap()).unwrap();
    assert!(error.contains("登记年份的范围是空的"), "{error}");
    assert_eq!(d.script("return document.querySelector('input[name=q]').value", vec![]).unwrap(), json!("水稻"));
    assert_eq!(d.script("return document.querySelector('input[name=year_to]').value", vec![]).unwrap(), json!("2021"));
    d.screenshot(&shots.join("search-error.png")).unwrap();

    // Statistics with charts.
    d.goto(&format!("{base}/stats")).unwrap();
    let chart = d.text(&d.find("section.chart[data-by=province]").unwrap()).unwrap();
    assert!(chart.contains("湖北省") && chart.contains("广东省"), "{chart}");
    assert_eq!(d.find_all("section.chart").unwrap().len(), 3);
    d.screenshot(&shots.join("stats.png")).unwrap();
    // By county, at phone width: names on one line, nothing wider than the screen.
    d.goto(&format!("{base}/stats?region=4201")).unwrap();
    assert!(d.text(&d.find("section.chart[data-by=county]").unwrap()).unwrap().contains("江岸区"));
    assert_fits(&d, "/stats by county");
    let tallest = d
        .script("return Math.max(...[...document.querySelectorAll('section.chart th')].map(e => e.getBoundingClientRect().height))", vec![])
        .unwrap();
    assert!(tallest.as_f64().unwrap() < 32.0, "a county name wraps: {tallest} px tall");
    d.screenshot(&shots.join("stats-county.png")).unwrap();

    // The operators' page: sign in, see the province, stop it, see it go quiet.
    d.goto(&format!("{base}/admin")).unwrap();
    assert!(d.source().unwrap().contains("运维口令"), "a sign-in form first");
    assert!(!d.source().unwrap().contains(TOKEN), "no secret in the page");
    d.type_into(&d.find("input[name=token]").unwrap(), TOKEN).unwrap();
    d.click(&d.find("form.login button").unwrap()).unwrap();
    // Reloading /admin before the sign-in's answer has arrived would abandon it (and
    // its session cookie): wait for the signed-in page first.
    d.wait_for("signed in", LIMIT, |d| Ok(d.find_all("form.logout")?.len() == 1)).unwrap();
    d.wait_for("the province online", LIMIT, |d| {
        d.goto(&format!("{base}/admin"))?;
        Ok(d.find("tr[data-node='420000']").and_then(|e| d.attr(&e, "data-state")).ok().flatten().as_deref() == Some("ok"))
    })
    .unwrap();
    d.screenshot(&shots.join("admin.png")).unwrap();
    assert_fits(&d, "/admin");
    // The same pages at desktop width.
    let wide = Driver::start(&shots.join("downloads-wide"), 1280, 900).unwrap();
    for target in ["/", "/?q=%E6%B0%B4%E7%A8%BB", "/stats?region=4201", "/records/4201022025Y0001"] {
        wide.goto(&format!("{base}{target}")).unwrap();
        assert_fits(&wide, target);
    }
    wide.goto(&format!("{base}/admin")).unwrap();
    wide.type_into(&wide.find("input[name=token]").unwrap(), TOKEN).unwrap();
    wide.click(&wide.find("form.login button").unwrap()).unwrap();
    wide.wait_for("the admin page", LIMIT, |d| Ok(d.find_all("tr[data-node='420000']")?.len() == 1)).unwrap();
    assert_fits(&wide, "/admin (desktop)");
    wide.screenshot(&shots.join("admin-desktop.png")).unwrap();
    drop(wide);
    f.stop("420000").await.unwrap();
    // The page reloads itself; no navigation here.
    d.wait_for("the province shown quiet", LIMIT, |d| {
        Ok(d.find("tr[data-node='420000']").and_then(|e| d.attr(&e, "data-state")).ok().flatten().as_deref() == Some("quiet"))
    })
    .unwrap();
    assert!(d.text(&d.find("tr[data-node='420000']").unwrap()).unwrap().contains("静默"));
    d.screenshot(&shots.join("admin-quiet.png")).unwrap();
    drop(d);
    f.stop_all().await.unwrap();
}
