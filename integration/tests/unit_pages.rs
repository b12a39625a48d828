//! The unit's pages in a real browser on a phone-sized screen: a research secretary
//! signs in with the one-time password and changes it, fills in the 登记表, meets a
//! rule's error beside its field, saves a draft, uploads the evidence with its type,
//! submits; after the office's approval sees the 登记号 and prints the 登记证书, which
//! `/verify` confirms. The same pages at desktop width; nothing scrolls sideways; a
//! form posted from another site and a session cookie replayed after sign-out are
//! refused. Screenshots go to `target/tmp/unit/`.

use integration::webdriver::Driver;
use integration::{http_json, Federation};
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "unit-pages-operator-token-0123";
const LIMIT: Duration = Duration::from_secs(60);
const USCC: &str = "91350100M000100Y43";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n";

fn assert_fits(d: &Driver, what: &str) {
    let widths = d.script("return [document.documentElement.scrollWidth, window.innerWidth]", vec![]).unwrap();
    let (page, window) = (widths[0].as_f64().unwrap(), widths[1].as_f64().unwrap());
    assert!(page <= window, "{what} scrolls sideways: {page} px in a {window} px window");
}

/// A raw request with a cookie and an origin: the status and the `Location`.
fn raw(addr: &str, method: &str, path: &str, cookie: &str, origin: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: hj_unit={cookie}\r\nOrigin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let location =
        out.lines().find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: "))).unwrap_or("").to_string();
    (status, location)
}

/// A prefecture office taking online registrations, started: the federation and the
/// address of its pages.
async fn office() -> (Federation, String) {
    let mut f = Federation::with_processes().unwrap();
    f.add("420100", None).unwrap();
    let dir = f.node("420100").dir.clone();
    let token_file = dir.join("api-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    f.start_with("420100", |t| {
        t.push_str("\n[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\n\n[registration]\noffice = \"武汉市科学技术局\"\n")
    })
    .await
    .unwrap();
    let addr = std::fs::read_to_string(dir.join("data/http-address")).unwrap();
    (f, addr)
}

fn state_is(d: &Driver, want: &str) -> bool {
    d.find_all("#state").ok().and_then(|v| v.first().map(|e| d.text(e).unwrap_or_default())).as_deref() == Some(want)
}

/// Signs in at `/unit` (a unit's code or a member's login); with a one-time password,
/// through the password change to `new`.
fn sign_in(d: &Driver, base: &str, account: &str, password: &str, new: Option<&str>) {
    d.goto(&format!("{base}/unit")).unwrap();
    d.type_into(&d.find("input[name=account]").unwrap(), account).unwrap();
    d.type_into(&d.find("input[name=password]").unwrap(), password).unwrap();
    d.click(&d.find("form.login button").unwrap()).unwrap();
    if let Some(new) = new {
        d.wait_for("the password change", LIMIT, |d| Ok(d.find_all("input[name=new_password]")?.len() == 1)).unwrap();
        d.type_into(&d.find("input[name=password]").unwrap(), password).unwrap();
        d.type_into(&d.find("input[name=new_password]").unwrap(), new).unwrap();
        d.type_into(&d.find("input[name=repeat]").unwrap(), new).unwrap();
        d.click(&d.find("form.login button").unwrap()).unwrap();
    }
    d.wait_for("the submissions", LIMIT, |d| Ok(d.url()?.ends_with("/unit/submissions"))).unwrap();
}

fn sign_out(d: &Driver) {
    d.click(&d.find("form.logout button").unwrap()).unwrap();
    d.wait_for("the sign-in page", LIMIT, |d| Ok(d.find_all("form.login")?.len() == 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_registers_from_a_phone_and_prints_its_certificate() {
    let (mut f, addr) = office().await;
    let base = format!("http://{addr}");
    let (s, unit) = http_json(&addr, "POST", "/api/v1/operator/units", Some(TOKEN), &json!({"uscc": USCC, "name": "武汉大学"})).unwrap();
    assert_eq!(s, 201);
    let otp = unit["password"].as_str().unwrap().to_string();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unit");
    std::fs::create_dir_all(&shots).unwrap();
    let pdf = shots.join("验收证书.pdf");
    std::fs::write(&pdf, PDF).unwrap();
    let d = Driver::start(&shots.join("downloads"), 390, 844).expect("a headless Chromium (Debian: chromium, chromium-driver)");

    // First sign-in: the one-time password leads to the password change, then in.
    d.goto(&format!("{base}/unit")).unwrap();
    assert_fits(&d, "/unit");
    d.type_into(&d.find("input[name=account]").unwrap(), USCC).unwrap();
    d.type_into(&d.find("input[name=password]").unwrap(), &otp).unwrap();
    d.click(&d.find("form.login button").unwrap()).unwrap();
    d.wait_for("the password change", LIMIT, |d| Ok(d.find_all("input[name=new_password]")?.len() == 1)).unwrap();
    d.type_into(&d.find("input[name=password]").unwrap(), &otp).unwrap();
    d.type_into(&d.find("input[name=new_password]").unwrap(), "武汉大学科研处2026").unwrap();
    d.type_into(&d.find("input[name=repeat]").unwrap(), "武汉大学科研处2026").unwrap();
    d.click(&d.find("form.login button").unwrap()).unwrap();
    d.wait_for("the unit's submissions", LIMIT, |d| Ok(d.url()?.ends_with("/unit/submissions"))).unwrap();

    // The 登记表: submitted without its industry, the error stands beside the field.
    d.click(&d.find("a[href='/unit/submissions/new']").unwrap()).unwrap();
    d.wait_for("the form", LIMIT, |d| Ok(d.find_all("form.unit-form")?.len() == 1)).unwrap();
    assert_fits(&d, "the form");
    for (name, value) in [
        ("title", "手机上登记的芯片成果"),
        ("first_unit", "武汉大学"),
        ("persons", "张三\n李四"),
        ("discipline", "413"),
        ("abstract", "在手机上填写并提交的成果简介。"),
    ] {
        d.type_into(&d.find(&format!("form.unit-form [name={name}]")).unwrap(), value).unwrap();
    }
    for (name, value) in [("kind", "应用技术"), ("stage", "成熟应用阶段"), ("task_source", "计划外")] {
        d.script(&format!("document.querySelector('form.unit-form [name={name}]').value = arguments[0]"), vec![json!(value)]).unwrap();
    }
    d.click(&d.find("form.unit-form button[value=submit]").unwrap()).unwrap();
    d.wait_for("the error beside 应用行业", LIMIT, |d| Ok(d.find_all("#field-industry .field-error")?.len() == 1)).unwrap();
    d.screenshot(&shots.join("form-error.png")).unwrap();
    assert_fits(&d, "the form with errors");
    // Fixed by name from the list (the code goes in), saved as a draft.
    d.type_into(&d.find("form.unit-form [name=industry]").unwrap(), "C39").unwrap();
    d.click(&d.find("form.unit-form button[value=draft]").unwrap()).unwrap();
    d.wait_for("the draft", LIMIT, |d| Ok(d.find_all("#state")?.first().map(|e| d.text(e).unwrap_or_default()).as_deref() == Some("草稿")))
        .unwrap();
    let id = d.url().unwrap().rsplit('/').next().unwrap().to_string();
    // The evidence, with its type; then submitted.
    d.script("document.querySelector('form.upload select[name=type]').value = '验收证书'", vec![]).unwrap();
    d.send_keys(&d.find("form.upload input[type=file]").unwrap(), pdf.to_str().unwrap()).unwrap();
    d.click(&d.find("form.upload button").unwrap()).unwrap();
    d.wait_for("the evidence listed", LIMIT, |d| Ok(d.source()?.contains("验收证书.pdf"))).unwrap();
    d.click(&d.find("form.unit-form button[value=submit]").unwrap()).unwrap();
    d.wait_for("submitted", LIMIT, |d| {
        Ok(d.find_all("#state")?.first().map(|e| d.text(e).unwrap_or_default()).as_deref() == Some("待审核"))
    })
    .unwrap_or_else(|e| {
        panic!("{e}: {}", d.source().unwrap_or_default().chars().filter(|c| !c.is_whitespace()).take(3000).collect::<String>())
    });
    d.screenshot(&shots.join("submitted.png")).unwrap();

    // Another site cannot post for the unit; the office approves.
    let cookie = d.cookie("hj_unit").unwrap().expect("a session cookie");
    let (status, _) = raw(&addr, "POST", "/unit/submissions", &cookie, "http://evil.example", "title=x");
    assert_eq!(status, 403, "a form posted from another site");
    let (s, approved) =
        http_json(&addr, "POST", &format!("/api/v1/operator/submissions/{id}/approve"), Some(TOKEN), &json!({"reviewer": "王审核"}))
            .unwrap();
    assert_eq!(s, 200, "{approved}");
    let reg_no = approved["reg_no"].as_str().unwrap().to_string();

    // The unit sees its 登记号, prints the certificate, /verify confirms it.
    d.goto(&format!("{base}/unit/submissions")).unwrap();
    assert!(d.source().unwrap().contains("有新进展") || d.source().unwrap().contains(&reg_no));
    d.goto(&format!("{base}/unit/submissions/{id}")).unwrap();
    assert_eq!(d.text(&d.find("strong.reg-no").unwrap()).unwrap(), reg_no);
    d.click(&d.find("a.certificate-link").unwrap()).unwrap();
    d.wait_for("the certificate", LIMIT, |d| Ok(d.find_all("#certificate-code")?.len() == 1)).unwrap();
    assert_fits(&d, "the certificate");
    d.screenshot(&shots.join("certificate.png")).unwrap();
    let code = d.text(&d.find("#certificate-code").unwrap()).unwrap();
    d.goto(&format!("{base}/verify?reg_no={reg_no}&code={code}")).unwrap();
    assert_eq!(d.find_all(".verify-ok").unwrap().len(), 1);

    // The same pages at desktop width.
    let wide = Driver::start(&shots.join("downloads-wide"), 1280, 900).unwrap();
    wide.goto(&format!("{base}/unit")).unwrap();
    assert_fits(&wide, "/unit at 1280 px");

    // Sign-out ends the session: the old cookie opens nothing.
    d.goto(&format!("{base}/unit/submissions")).unwrap();
    d.click(&d.find("form.logout button").unwrap()).unwrap();
    d.wait_for("the sign-in page", LIMIT, |d| Ok(d.find_all("form.login")?.len() == 1)).unwrap();
    let (status, location) = raw(&addr, "GET", "/unit/submissions", &cookie, &base, "");
    assert_eq!((status, location.as_str()), (303, "/unit"), "a replayed cookie after sign-out");
    f.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_submission_is_passed_on_by_its_unit_and_a_named_reviewer_approves_it() {
    let (mut f, addr) = office().await;
    let base = format!("http://{addr}");
    let (s, unit) = http_json(&addr, "POST", "/api/v1/operator/units", Some(TOKEN), &json!({"uscc": USCC, "name": "武汉大学"})).unwrap();
    assert_eq!(s, 201);
    let otp = unit["password"].as_str().unwrap().to_string();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unit-members");
    std::fs::create_dir_all(&shots).unwrap();
    let pdf = shots.join("评价报告.pdf");
    std::fs::write(&pdf, PDF).unwrap();

    // The office, at a desk: the operator creates a named reviewer.
    let office =
        Driver::start(&shots.join("downloads-office"), 1280, 900).expect("a headless Chromium (Debian: chromium, chromium-driver)");
    office.goto(&format!("{base}/admin")).unwrap();
    office.type_into(&office.find("input[name=token]").unwrap(), TOKEN).unwrap();
    office.click(&office.find("form.login button").unwrap()).unwrap();
    office.wait_for("signed in", LIMIT, |d| Ok(d.find_all("form.logout")?.len() == 1)).unwrap();
    office.goto(&format!("{base}/admin/reviewers")).unwrap();
    office.type_into(&office.find("form[action='/admin/reviewers'] input[name=login]").unwrap(), "wang").unwrap();
    office.type_into(&office.find("form[action='/admin/reviewers'] input[name=name]").unwrap(), "王审核").unwrap();
    office.click(&office.find("form[action='/admin/reviewers'] button").unwrap()).unwrap();
    office.wait_for("the reviewer's one-time password", LIMIT, |d| Ok(d.find_all("code.otp")?.len() == 1)).unwrap();
    let reviewer_otp = office.text(&office.find("code.otp").unwrap()).unwrap();
    office.goto(&format!("{base}/admin")).unwrap();
    office.click(&office.find("form.logout button").unwrap()).unwrap();
    office.wait_for("signed out", LIMIT, |d| Ok(d.find_all("form.reviewer-login")?.len() == 1)).unwrap();

    // The research office, on a phone: first sign-in, then a member account for a researcher.
    let d = Driver::start(&shots.join("downloads"), 390, 844).unwrap();
    sign_in(&d, &base, USCC, &otp, Some("武汉大学科研处2026"));
    d.click(&d.find("a[href='/unit/members']").unwrap()).unwrap();
    d.wait_for("the members page", LIMIT, |d| Ok(d.find_all("form.add-member")?.len() == 1)).unwrap();
    assert_fits(&d, "the members page");
    d.type_into(&d.find("form.add-member input[name=name]").unwrap(), "张三").unwrap();
    d.click(&d.find("form.add-member button").unwrap()).unwrap();
    d.wait_for("the member's one-time password", LIMIT, |d| Ok(d.find_all("p.new-member code.otp")?.len() == 1)).unwrap();
    d.screenshot(&shots.join("member-created.png")).unwrap();
    assert_fits(&d, "the members page with a new member");
    let login = d.text(&d.find("p.new-member code.login").unwrap()).unwrap();
    let member_otp = d.text(&d.find("p.new-member code.otp").unwrap()).unwrap();
    sign_out(&d);

    // The researcher, on the same phone: first sign-in, the form, evidence, submit.
    sign_in(&d, &base, &login, &member_otp, Some("张三自己的密码2026"));
    assert!(d.find_all("a[href='/unit/members']").unwrap().is_empty(), "a member manages no members");
    d.click(&d.find("a[href='/unit/submissions/new']").unwrap()).unwrap();
    d.wait_for("the form", LIMIT, |d| Ok(d.find_all("form.unit-form")?.len() == 1)).unwrap();
    for (name, value) in [
        ("title", "填报人登记的育种成果"),
        ("first_unit", "武汉大学"),
        ("persons", "张三"),
        ("discipline", "210"),
        ("abstract", "由填报人在手机上填写、经单位审核后报送的成果。"),
    ] {
        d.type_into(&d.find(&format!("form.unit-form [name={name}]")).unwrap(), value).unwrap();
    }
    for (name, value) in [("kind", "基础理论"), ("task_source", "计划外")] {
        d.script(&format!("document.querySelector('form.unit-form [name={name}]').value = arguments[0]"), vec![json!(value)]).unwrap();
    }
    d.click(&d.find("form.unit-form button[value=draft]").unwrap()).unwrap();
    d.wait_for("the draft", LIMIT, |d| Ok(state_is(d, "草稿"))).unwrap();
    let id = d.url().unwrap().rsplit('/').next().unwrap().to_string();
    d.script("document.querySelector('form.upload select[name=type]').value = '评价报告'", vec![]).unwrap();
    d.send_keys(&d.find("form.upload input[type=file]").unwrap(), pdf.to_str().unwrap()).unwrap();
    d.click(&d.find("form.upload button").unwrap()).unwrap();
    d.wait_for("the evidence listed", LIMIT, |d| Ok(d.source()?.contains("评价报告.pdf"))).unwrap();
    d.click(&d.find("form.unit-form button[value=submit]").unwrap()).unwrap();
    d.wait_for("waiting for the unit", LIMIT, |d| Ok(state_is(d, "待单位审核"))).unwrap_or_else(|e| {
        panic!("{e}: {}", d.source().unwrap_or_default().chars().filter(|c| !c.is_whitespace()).take(3000).collect::<String>())
    });
    assert!(d.find_all("form[action$='/pass']").unwrap().is_empty(), "a member cannot pass its own");
    assert_fits(&d, "the member's submission");
    sign_out(&d);

    // The research office checks it and passes it on.
    sign_in(&d, &base, USCC, "武汉大学科研处2026", None);
    assert_eq!(d.find_all("p.unit-review").unwrap().len(), 1, "the list says one waits for the unit");
    d.click(&d.find(&format!("a[href='/unit/submissions/{id}']")).unwrap()).unwrap();
    d.wait_for("the member's submission", LIMIT, |d| Ok(d.find_all("form[action$='/pass']")?.len() == 1)).unwrap();
    assert_eq!(d.text(&d.find("bdi.member").unwrap()).unwrap(), "张三");
    d.screenshot(&shots.join("unit-check.png")).unwrap();
    assert_fits(&d, "the unit's check");
    d.click(&d.find("form[action$='/pass'] button").unwrap()).unwrap();
    d.wait_for("passed on to the office", LIMIT, |d| Ok(state_is(d, "待审核"))).unwrap();

    // The named reviewer signs in (first changing its one-time password) and approves.
    office.type_into(&office.find("form.reviewer-login input[name=login]").unwrap(), "wang").unwrap();
    office.type_into(&office.find("form.reviewer-login input[name=password]").unwrap(), &reviewer_otp).unwrap();
    office.click(&office.find("form.reviewer-login button").unwrap()).unwrap();
    office.wait_for("the reviewer's password change", LIMIT, |d| Ok(d.find_all("input[name=new_password]")?.len() == 1)).unwrap();
    office.type_into(&office.find("input[name=password]").unwrap(), &reviewer_otp).unwrap();
    office.type_into(&office.find("input[name=new_password]").unwrap(), "王审核的密码2026").unwrap();
    office.type_into(&office.find("input[name=repeat]").unwrap(), "王审核的密码2026").unwrap();
    office.click(&office.find("form.login button").unwrap()).unwrap();
    office.wait_for("the review queue", LIMIT, |d| Ok(d.url()?.ends_with("/admin/review"))).unwrap();
    office.click(&office.find(&format!("a[href='/admin/review/{id}']")).unwrap()).unwrap();
    office.wait_for("the submission", LIMIT, |d| Ok(d.find_all("form[action$='/approve']")?.len() == 1)).unwrap();
    assert!(office.source().unwrap().contains("单位审核通过"), "the unit's check is in the record");
    office.click(&office.find("form[action$='/approve'] button").unwrap()).unwrap();
    office.wait_for("the 登记号", LIMIT, |d| Ok(d.find_all("strong.reg-no")?.len() == 1)).unwrap();
    let reg_no = office.text(&office.find("strong.reg-no").unwrap()).unwrap();
    assert!(office.source().unwrap().contains("王审核（wang）"), "the decision names the reviewer's account");

    // The researcher sees the 登记号 and prints the certificate.
    sign_out(&d);
    sign_in(&d, &base, &login, "张三自己的密码2026", None);
    d.goto(&format!("{base}/unit/submissions/{id}")).unwrap();
    assert_eq!(d.text(&d.find("strong.reg-no").unwrap()).unwrap(), reg_no);
    d.click(&d.find("a.certificate-link").unwrap()).unwrap();
    d.wait_for("the certificate", LIMIT, |d| Ok(d.find_all("#certificate-code")?.len() == 1)).unwrap();
    assert_fits(&d, "the member's certificate");
    f.stop_all().await.unwrap();
}
