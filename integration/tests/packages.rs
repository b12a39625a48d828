//! 科技成果包 in a real browser: an operator defines a package in `/admin` on a phone-
//! sized screen (a search and a field), sees the preview and publishes it; a visitor
//! finds it at `/packages`, opens it, narrows it by region inside the package, at 390 px
//! and at desktop width, with nothing to scroll sideways. Screenshots go to
//! `target/tmp/packages/`.

use huijiao_kit::synth;
use huijiao_protocol::Record;
use integration::webdriver::Driver;
use integration::Federation;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "packages-browser-token-0123456";
const LIMIT: Duration = Duration::from_secs(120);

fn rec(reg_no: &str, title: &str) -> Record {
    serde_json::from_value(json!({
        "reg_no": reg_no, "title": title, "kind": "应用技术", "region": &reg_no[..6], "reg_date": format!("{}-06-01", &reg_no[6..10]),
        "first_unit": "农业科学院", "units": [], "persons": ["张三"], "keywords": ["农业"], "discipline": "2104010",
        "industry": "A01", "stage": "成熟应用阶段", "level": null, "trl": 8, "task_source": "计划外", "plan_no": null,
        "fiscal_funded": true, "ip": [], "transfer": "许可", "abstract": "一项关于稻田管理的成果，适合在南方稻区推广应用。",
        "funding": null, "benefit": null, "contact": "钱秘书", "phone": "027-55554444", "secret": "公开", "embargo_until": null
    }))
    .unwrap()
}

fn assert_fits(d: &Driver, what: &str) {
    let widths = d.script("return [document.documentElement.scrollWidth, window.innerWidth]", vec![]).unwrap();
    let (page, window) = (widths[0].as_f64().unwrap(), widths[1].as_f64().unwrap());
    assert!(page <= window, "{what} scrolls sideways: {page} px in a {window} px window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_publishes_a_package_and_a_visitor_browses_it_on_a_phone() {
    let mut f = Federation::with_processes().unwrap();
    f.add("000000", None).unwrap();
    let national = f.node("000000").dir.clone();
    let token = national.join("api-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    f.start_with("000000", |t| t.push_str("\n[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\n")).await.unwrap();
    let records = [
        rec("4201022025Y0001", "水稻病虫害智能识别"),
        rec("4201112024Y0002", "水稻节水灌溉技术"),
        rec("4401062025Y0003", "水稻新品种选育"),
        rec("4401062025Y0004", "芯片封装工艺"),
    ];
    f.node("000000").drop_file("batch.csv", &synth::csv(&records.iter().map(synth::cells).collect::<Vec<_>>(), false)).unwrap();
    let addr = std::fs::read_to_string(national.join("data/http-address")).unwrap();
    let deadline = Instant::now() + LIMIT;
    while !integration::http_get(&addr, "/api/v1/records?limit=1").is_ok_and(|b| b.contains("\"total\":4")) {
        assert!(Instant::now() < deadline, "the catalogue never held the 4 records");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = format!("http://{addr}");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packages");
    std::fs::create_dir_all(&shots).unwrap();
    let d = Driver::start(&shots.join("downloads"), 390, 844).expect("a headless Chromium (Debian: chromium, chromium-driver)");

    // The operator: sign in, 科技成果包, the form, the preview, publish.
    d.goto(&format!("{base}/admin")).unwrap();
    d.type_into(&d.find("input[name=token]").unwrap(), TOKEN).unwrap();
    d.click(&d.find("form.login button").unwrap()).unwrap();
    d.wait_for("the packages link", LIMIT, |d| Ok(d.find_all("a[href='/admin/packages']")?.len() == 1)).unwrap();
    d.click(&d.find("a[href='/admin/packages']").unwrap()).unwrap();
    d.wait_for("the form", LIMIT, |d| Ok(d.find_all("form.package-form input[name=slug]")?.len() == 1)).unwrap();
    assert_fits(&d, "/admin/packages");
    d.type_into(&d.find("input[name=slug]").unwrap(), "rice").unwrap();
    d.type_into(&d.find("input[name=title]").unwrap(), "水稻技术包").unwrap();
    d.script("document.querySelector('select[name=field]').value = '现代农业'", vec![]).unwrap();
    d.type_into(&d.find("textarea[name=description]").unwrap(), "南方稻区可推广的水稻技术。").unwrap();
    d.type_into(&d.find("form.package-form input[name=q]").unwrap(), "水稻").unwrap();
    d.click(&d.find("form.package-form button").unwrap()).unwrap();
    d.wait_for("the preview", LIMIT, |d| Ok(d.find_all("#preview-count")?.len() == 1)).unwrap();
    assert_eq!(d.text(&d.find("#preview-count").unwrap()).unwrap(), "3");
    d.screenshot(&shots.join("admin-preview.png")).unwrap();
    assert_fits(&d, "/admin/packages/rice");
    d.click(&d.find("form[action$='/publish'] button").unwrap()).unwrap();
    d.wait_for("the publication", LIMIT, |d| Ok(d.source()?.contains("已发布第 1 版"))).unwrap();

    // A visitor: the list, the package, a region inside it.
    d.goto(&format!("{base}/packages")).unwrap();
    assert!(d.source().unwrap().contains("现代农业"));
    assert_fits(&d, "/packages");
    d.screenshot(&shots.join("packages.png")).unwrap();
    d.click(&d.find("a[href='/packages/rice']").unwrap()).unwrap();
    d.wait_for("the package page", LIMIT, |d| Ok(d.find_all(".hit")?.len() == 3)).unwrap();
    assert!(d.source().unwrap().contains("第 1 版"));
    assert_fits(&d, "/packages/rice");
    d.screenshot(&shots.join("package.png")).unwrap();
    d.goto(&format!("{base}/packages/rice?region=44")).unwrap();
    let titles: Vec<String> = d.find_all(".hit .title").unwrap().iter().map(|e| d.text(e).unwrap()).collect();
    assert_eq!(titles, ["水稻新品种选育"], "the catalogue's filters inside the package");
    let feed = d.find("a[href='/packages/rice.atom']").unwrap();
    assert!(d.attr(&feed, "href").unwrap().is_some());

    // The same pages at desktop width.
    let wide = Driver::start(&shots.join("downloads-wide"), 1280, 900).unwrap();
    for page in ["/packages", "/packages/rice", "/packages/rice/versions/1"] {
        wide.goto(&format!("{base}{page}")).unwrap();
        assert_fits(&wide, page);
    }
    wide.screenshot(&shots.join("package-wide.png")).unwrap();
    f.stop_all().await.unwrap();
}
