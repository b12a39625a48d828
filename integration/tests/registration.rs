//! Online registration across a federation of real processes: a unit registers at its
//! prefecture's node, the office reviews it in `/admin` in headless Chromium (signs
//! in, opens the submission and its PDF, approves, sees the 登记号), and the record
//! reaches the national node through two hops (prefecture → province → national).
//! Screenshots go to `target/tmp/registration/`.

use integration::webdriver::Driver;
use integration::{http_json, Federation};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "registration-browser-token-0123";
const LIMIT: Duration = Duration::from_secs(120);
const USCC: &str = "91350100M000100Y43";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n";

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn achievement(title: &str) -> Value {
    json!({
        "title": title, "kind": "应用技术", "persons": ["张三"], "discipline": "413", "industry": "C27",
        "stage": "中期阶段", "task_source": "计划外", "abstract": "一项在线登记的成果。", "secret": "公开",
        "attachments": [{"type": "验收证书", "name": "验收证书.pdf", "content_base64": b64(PDF)}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_registers_online_the_office_approves_in_the_browser_and_national_holds_it() {
    let mut f = Federation::with_processes().unwrap();
    f.add("000000", None).unwrap();
    f.add("420000", Some("000000")).unwrap();
    f.add("420100", Some("420000")).unwrap();
    let office = f.node("420100").dir.clone();
    let token_file = office.join("api-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    f.start("000000").await.unwrap();
    f.start("420000").await.unwrap();
    f.start_with("420100", |t| {
        t.push_str("\n[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\n\n[registration]\noffice = \"武汉市科学技术局\"\n")
    })
    .await
    .unwrap();
    let addr = std::fs::read_to_string(office.join("data/http-address")).unwrap();

    // The office creates the unit; the unit sets its password and submits two.
    let (s, unit) = http_json(&addr, "POST", "/api/v1/operator/units", Some(TOKEN), &json!({"uscc": USCC, "name": "武汉大学"})).unwrap();
    assert_eq!(s, 201, "{unit}");
    let otp = unit["password"].as_str().unwrap();
    let (s, _) = http_json(
        &addr,
        "POST",
        "/api/v1/unit/password",
        None,
        &json!({"uscc": USCC, "password": otp, "new_password": "武汉大学的新密码2026"}),
    )
    .unwrap();
    assert_eq!(s, 204);
    let (_, t) = http_json(&addr, "POST", "/api/v1/unit/token", None, &json!({"uscc": USCC, "password": "武汉大学的新密码2026"})).unwrap();
    let bearer = t["token"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for title in ["在线登记的芯片成果", "需要退回的成果"] {
        let (s, v) = http_json(&addr, "POST", "/api/v1/unit/submissions", Some(&bearer), &achievement(title)).unwrap();
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }

    // The reviewer, on a phone-sized screen: sign in, the queue, one submission.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("registration");
    std::fs::create_dir_all(&shots).unwrap();
    let d = Driver::start(&shots.join("downloads"), 390, 844).expect("a headless Chromium (Debian: chromium, chromium-driver)");
    let base = format!("http://{addr}");
    d.goto(&format!("{base}/admin")).unwrap();
    d.type_into(&d.find("input[name=token]").unwrap(), TOKEN).unwrap();
    d.click(&d.find("form.login button").unwrap()).unwrap();
    d.wait_for("the review link", LIMIT, |d| Ok(d.source()?.contains("2 份待审核"))).unwrap();
    d.goto(&format!("{base}/admin/review")).unwrap();
    let link = d.find(&format!("a[href='/admin/review/{}']", ids[0])).unwrap();
    d.click(&link).unwrap();
    d.wait_for("the submission", LIMIT, |d| Ok(d.source()?.contains("在线登记的芯片成果") && d.source()?.contains("验收证书.pdf")))
        .unwrap();
    d.screenshot(&shots.join("submission.png")).unwrap();
    // The evidence opens in a tab of its own, as a PDF under `sandbox`.
    let pdf = d.find("ul.evidence a").unwrap();
    assert_eq!(d.attr(&pdf, "target").unwrap().as_deref(), Some("_blank"));
    let href = d.attr(&pdf, "href").unwrap().unwrap();
    let served = d
        .script(
            "return fetch(arguments[0]).then(r => r.arrayBuffer().then(b => [r.status, r.headers.get('content-type'), r.headers.get('content-security-policy'), b.byteLength]))",
            vec![json!(href)],
        )
        .unwrap();
    assert_eq!(served, json!([200, "application/pdf", "sandbox", PDF.len()]));
    d.goto(&format!("{base}{href}")).unwrap();
    d.goto(&format!("{base}/admin/review/{}", ids[0])).unwrap();
    // Approve: the page shows the 登记号 the node assigned.
    d.type_into(&d.find("form[action$='/approve'] input[name=reviewer]").unwrap(), "王审核").unwrap();
    d.click(&d.find("form[action$='/approve'] button").unwrap()).unwrap();
    d.wait_for("the 登记号", LIMIT, |d| Ok(d.find_all("strong.reg-no")?.len() == 1)).unwrap();
    let reg_no = d.text(&d.find("strong.reg-no").unwrap()).unwrap();
    assert!(reg_no.starts_with("420100") && reg_no.contains('Y'), "{reg_no}");
    d.screenshot(&shots.join("approved.png")).unwrap();
    // The 登记证书: printable, with a check code the public /verify confirms — and an
    // altered code it refuses.
    let cert = d.attr(&d.find("a.certificate-link").unwrap(), "href").unwrap().unwrap();
    d.goto(&format!("{base}{cert}")).unwrap();
    let code = d.text(&d.find("#certificate-code").unwrap()).unwrap();
    assert!(d.source().unwrap().contains("武汉市科学技术局") && d.source().unwrap().contains(&reg_no));
    d.screenshot(&shots.join("certificate.png")).unwrap();
    d.goto(&format!("{base}/verify?reg_no={reg_no}&code={code}")).unwrap();
    assert_eq!(d.find_all(".verify-ok").unwrap().len(), 1, "{}", d.source().unwrap());
    assert!(d.source().unwrap().contains("在线登记的芯片成果"));
    let altered: String = code
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    d.goto(&format!("{base}/verify?reg_no={reg_no}&code={altered}")).unwrap();
    assert_eq!(d.find_all(".verify-no").unwrap().len(), 1);
    assert!(!d.source().unwrap().contains("在线登记的芯片成果"), "a refused certificate shows nothing of the record");
    d.goto(&format!("{base}/admin/review/{}", ids[0])).unwrap();
    // Return the other with a reason.
    d.goto(&format!("{base}/admin/review/{}", ids[1])).unwrap();
    d.type_into(&d.find("form[action$='/return'] input[name=reviewer]").unwrap(), "王审核").unwrap();
    d.type_into(&d.find("form[action$='/return'] textarea[name=reason]").unwrap(), "请补充成果简介").unwrap();
    d.click(&d.find("form[action$='/return'] button").unwrap()).unwrap();
    // The state shown (not the button of the same name) says it was returned.
    d.wait_for("the return", LIMIT, |d| Ok(d.source()?.contains("（returned）"))).unwrap();
    let (_, back) = http_json(&addr, "GET", &format!("/api/v1/unit/submissions/{}", ids[1]), Some(&bearer), &json!(null)).unwrap();
    assert_eq!((back["state"].as_str(), back["reason"].as_str()), (Some("returned"), Some("请补充成果简介")));

    // The record goes up two hops like any other, and national holds it.
    integration::wait_for("the record at the national node", LIMIT, || f.node("000000").records().contains_key(&reg_no)).await.unwrap();
    let at_national = f.node("000000").records()[&reg_no].clone();
    assert_eq!(at_national.record.title, "在线登记的芯片成果");
    assert_eq!(at_national.origin, "420100");
    let hops: Vec<&str> = at_national.hops.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(hops, ["420100", "420000", "000000"]);
    f.stop_all().await.unwrap();
}
