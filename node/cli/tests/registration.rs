//! Online registration through the real binary's HTTP API and CLI (spec v1.2 §6): a
//! unit account, a submission with evidence, review, the 登记号 the node assigns, the
//! record in the store; and every refusal a unit or an attacker meets.

mod common;

use common::http::{get, json, request_bytes, request_chunked, Response};
use common::{wait_for, Node};
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "registration-operator-token-0001";
const NODE: &str = "420100";
const USCC: &str = "91350100M000100Y43";
const OTHER_USCC: &str = "91110000600037341L";
const PDF: &[u8] = b"%PDF-1.7\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n";

/// A prefecture node taking online registrations, with its API; started.
fn office(env: &[(&str, &str)]) -> (Node, String) {
    let mut node = Node::new(NODE);
    let file = node.dir.path().join("api-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut cfg = std::fs::read_to_string(&node.config).unwrap();
    cfg = cfg.replace(
        "[inbox]",
        "[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\nrate_per_minute = 100000\n\n[registration]\noffice = \"武汉市科学技术局\"\n\n[inbox]",
    );
    std::fs::write(&node.config, cfg).unwrap();
    node.start_with_env(env);
    let f = node.dir.path().join("data/http-address");
    wait_for("the API address", Duration::from_secs(60), || f.exists());
    let addr = std::fs::read_to_string(f).unwrap();
    (node, addr)
}

fn op() -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {TOKEN}"))]
}

fn h<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

fn post(addr: &str, path: &str, headers: &[(&'static str, String)], body: Value) -> Response {
    json(addr, "POST", path, &h(headers), &body)
}

/// Creates a unit, changes its one-time password, signs it in: its token.
fn unit(addr: &str, uscc: &str, name: &str) -> String {
    let r = post(addr, "/api/v1/operator/units", &op(), json!({"uscc": uscc, "name": name}));
    assert_eq!(r.status, 201, "{}", r.text());
    let otp = r.json()["password"].as_str().unwrap().to_string();
    let r = post(addr, "/api/v1/unit/password", &[], json!({"uscc": uscc, "password": otp, "new_password": format!("{name}的新密码2026")}));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = post(addr, "/api/v1/unit/token", &[], json!({"uscc": uscc, "password": format!("{name}的新密码2026")}));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A new achievement as a unit sends it (spec §6.2): no reg_no, region or reg_date.
fn achievement(title: &str) -> Value {
    json!({
        "title": title,
        "kind": "应用技术",
        "persons": ["张三", "李四"],
        "discipline": "413",
        "industry": "C27",
        "stage": "成熟应用阶段",
        "task_source": "计划外",
        "abstract": "在线登记的测试成果，包含完整的简介。",
        "secret": "公开",
        "keywords": ["芯片"],
    })
}

fn with_pdf(mut v: Value) -> Value {
    v["attachments"] = json!([{"type": "验收证书", "name": "验收证书.pdf", "content_base64": b64(PDF)}]);
    v
}

fn today_year() -> String {
    let out = std::process::Command::new("date").args(["-u", "-d", "+8 hours", "+%Y"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_unit_registers_with_evidence_and_the_office_approves() {
    let (node, addr) = office(&[]);
    let token = unit(&addr, USCC, "武汉大学");
    let r = post(&addr, "/api/v1/unit/submissions", &bearer(&token), with_pdf(achievement("低功耗芯片")));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["state"], "submitted");
    // The reviewer's queue holds it with its evidence.
    let q = get(&addr, "/api/v1/operator/submissions?state=submitted", &h(&op()));
    assert_eq!(q.status, 200);
    let list = q.json()["submissions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["attachments"][0]["type"], "验收证书");
    // The evidence is served as a file, never as a page.
    let f = get(&addr, &format!("/api/v1/operator/submissions/{id}/attachments/1"), &h(&op()));
    assert_eq!(f.status, 200);
    assert_eq!(f.body, PDF);
    assert_eq!(f.header("content-type"), Some("application/pdf"));
    assert_eq!(f.header("content-security-policy"), Some("sandbox"));
    assert_eq!(f.header("x-content-type-options"), Some("nosniff"));
    // Approval assigns the 登记号 and the record enters the store.
    let a = post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({"reviewer": "王审核"}));
    assert_eq!(a.status, 200, "{}", a.text());
    let reg_no = a.json()["reg_no"].as_str().unwrap().to_string();
    assert_eq!(reg_no, format!("{NODE}{}Y0001", today_year()));
    assert_eq!(a.json()["version"], 1);
    let again = post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({"reviewer": "王审核"}));
    assert_eq!(again.status, 409, "approved once only");
    let held = node.query(&["--operator", "--reg-no", &reg_no]);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["title"], "低功耗芯片");
    assert_eq!(held[0]["region"], NODE);
    assert_eq!(held[0]["first_unit"], "武汉大学", "first_unit defaults to the unit's name");
    assert_eq!(held[0]["_origin"], NODE);
    // The unit sees it registered, with the decisions.
    let mine = get(&addr, &format!("/api/v1/unit/submissions/{id}"), &h(&bearer(&token)));
    assert_eq!(mine.json()["state"], "registered");
    assert_eq!(mine.json()["reg_no"], reg_no.as_str());
    let actions: Vec<_> = mine.json()["decisions"].as_array().unwrap().iter().map(|d| d["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, ["submit", "approve"]);
    // status and /metrics-like output name the queue (now empty).
    let out = node.cli(&["status", "--config", node.config.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("review queue    0 submission(s) waiting"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn returned_edited_resubmitted_then_changed_and_withdrawn() {
    let (node, addr) = office(&[]);
    let token = unit(&addr, USCC, "武汉大学");
    let auth = bearer(&token);
    let id = post(&addr, "/api/v1/unit/submissions", &auth, with_pdf(achievement("初稿名称"))).json()["id"].as_str().unwrap().to_string();
    let r =
        post(&addr, &format!("/api/v1/operator/submissions/{id}/return"), &op(), json!({"reviewer": "王审核", "reason": "请补充成果简介"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "returned");
    let mine = get(&addr, &format!("/api/v1/unit/submissions/{id}"), &h(&auth)).json();
    assert_eq!((mine["state"].as_str(), mine["reason"].as_str()), (Some("returned"), Some("请补充成果简介")));
    // Edited (it stays returned), then submitted again.
    let mut edited = achievement("修改后的名称");
    edited["abstract"] = json!("补充后的成果简介，写明了技术指标。");
    let r = json(&addr, "PUT", &format!("/api/v1/unit/submissions/{id}"), &h(&auth), &edited);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "returned");
    let r = post(&addr, &format!("/api/v1/unit/submissions/{id}/submit"), &auth, json!({}));
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("submitted")), "{}", r.text());
    let r = json(&addr, "PUT", &format!("/api/v1/unit/submissions/{id}"), &h(&auth), &edited);
    assert_eq!(r.status, 409, "no edits while it is reviewed");
    let reg_no = post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({"reviewer": "王审核"})).json()["reg_no"]
        .as_str()
        .unwrap()
        .to_string();
    let first = node.query(&["--operator", "--reg-no", &reg_no]).remove(0);
    assert_eq!(first["title"], "修改后的名称");
    // A change after registration: the next version, the same reg_date.
    let mut change = with_pdf(achievement("第二版名称"));
    change["reg_no"] = json!(reg_no);
    let r = post(&addr, "/api/v1/unit/submissions", &auth, change);
    assert_eq!(r.status, 201, "{} {}", r.text(), node.log());
    let cid = r.json()["id"].as_str().unwrap().to_string();
    let a = post(&addr, &format!("/api/v1/operator/submissions/{cid}/approve"), &op(), json!({"reviewer": "王审核"}));
    assert_eq!((a.json()["reg_no"].as_str(), a.json()["version"].as_i64()), (Some(reg_no.as_str()), Some(2)), "{}", a.text());
    let second = node.query(&["--operator", "--reg-no", &reg_no]).remove(0);
    assert_eq!((second["title"].as_str(), second["_version"].as_i64()), (Some("第二版名称"), Some(2)));
    assert_eq!(second["reg_date"], first["reg_date"], "reg_date stays the first approval's");
    // A withdrawal: no evidence needed; the record ends withdrawn, the submission too.
    let r = post(&addr, "/api/v1/unit/submissions", &auth, json!({"reg_no": reg_no, "op": "withdraw"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let wid = r.json()["id"].as_str().unwrap().to_string();
    let a = post(&addr, &format!("/api/v1/operator/submissions/{wid}/approve"), &op(), json!({"reviewer": "王审核"}));
    assert_eq!(a.json()["version"], 3, "{}", a.text());
    let gone = node.query(&["--operator", "--reg-no", &reg_no]).remove(0);
    assert_eq!(gone["_withdrawn"], true);
    assert_eq!(get(&addr, &format!("/api/v1/unit/submissions/{wid}"), &h(&auth)).json()["state"], "withdrawn");
    // A withdrawn record is no longer the unit's to change.
    let mut late = with_pdf(achievement("撤销后再改"));
    late["reg_no"] = json!(reg_no);
    let r = post(&addr, "/api/v1/unit/submissions", &auth, late);
    assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("not_your_record")), "{}", r.text());
}

#[test]
fn units_meet_every_refusal_and_nothing_classified_is_kept() {
    let (node, addr) = office(&[("HUIJIAO_TEST_TOKEN_SECS", "2")]);
    // The office: a bad code, a code already there.
    let r = post(&addr, "/api/v1/operator/units", &op(), json!({"uscc": "91350100M000100Y44", "name": "校验码错"}));
    assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("bad_uscc")));
    let r = post(&addr, "/api/v1/operator/units", &[], json!({"uscc": USCC, "name": "无口令"}));
    assert_eq!(r.status, 401, "the operator token is needed");
    let created = post(&addr, "/api/v1/operator/units", &op(), json!({"uscc": USCC, "name": "武汉大学"}));
    assert_eq!(created.status, 201);
    assert_eq!(post(&addr, "/api/v1/operator/units", &op(), json!({"uscc": USCC, "name": "again"})).status, 409);
    // The one-time password opens nothing but the password change.
    let otp = created.json()["password"].as_str().unwrap().to_string();
    let r = post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": otp}));
    assert_eq!((r.status, r.json()["code"].as_str()), (403, Some("password_change_required")));
    let r = post(&addr, "/api/v1/unit/password", &[], json!({"uscc": USCC, "password": otp, "new_password": "short"}));
    assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("weak_password")));
    let r = post(&addr, "/api/v1/unit/password", &[], json!({"uscc": USCC, "password": otp, "new_password": format!("a{USCC}b")}));
    assert_eq!(r.status, 422, "a password holding the code");
    assert_eq!(
        post(&addr, "/api/v1/unit/password", &[], json!({"uscc": USCC, "password": otp, "new_password": "一个足够长的新密码啊"})).status,
        204
    );
    assert_eq!(
        post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": otp})).status,
        401,
        "the one-time password is spent"
    );
    // Five wrong passwords close the account (429), the right one included; the spent
    // one-time password above was the first.
    let other = unit(&addr, OTHER_USCC, "北京公司");
    for _ in 0..3 {
        assert_eq!(post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": "wrong password"})).status, 401);
    }
    let r = post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": "wrong password"}));
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": "一个足够长的新密码啊"})).status, 429);
    // Another unit's submission answers as an unknown one does.
    let mine = post(&addr, "/api/v1/unit/submissions", &bearer(&other), json!({"title": "草稿", "draft": true}));
    assert_eq!(mine.status, 201, "{}", mine.text());
    let id = mine.json()["id"].as_str().unwrap().to_string();
    // The office can always give a unit a new one-time password.
    let reset = post(&addr, &format!("/api/v1/operator/units/{USCC}/reset"), &op(), json!({}));
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_ne!(reset.json()["password"], created.json()["password"]);
    let intruder = {
        let u = post(&addr, "/api/v1/operator/units", &op(), json!({"uscc": "12100000400000777H", "name": "第三方"}));
        let otp = u.json()["password"].as_str().unwrap().to_string();
        post(
            &addr,
            "/api/v1/unit/password",
            &[],
            json!({"uscc": "12100000400000777H", "password": otp, "new_password": "第三方的足够长的密码"}),
        );
        post(&addr, "/api/v1/unit/token", &[], json!({"uscc": "12100000400000777H", "password": "第三方的足够长的密码"})).json()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let theirs = get(&addr, &format!("/api/v1/unit/submissions/{id}"), &h(&bearer(&intruder)));
    let unknown = get(&addr, "/api/v1/unit/submissions/0123456789abcdef0123", &h(&bearer(&intruder)));
    assert_eq!((theirs.status, unknown.status), (404, 404));
    assert_eq!(theirs.body, unknown.body, "another unit's id answers exactly as an unknown one");
    assert_eq!(
        request_bytes(
            &addr,
            "POST",
            &format!("/api/v1/unit/submissions/{id}/attachments?type=其他&name=x.pdf"),
            &h(&bearer(&intruder)),
            Some(("application/pdf", PDF.to_vec()))
        )
        .status,
        404
    );
    // Evidence: none that fits; an executable or HTML named .pdf; an upload over the cap.
    let r = post(&addr, "/api/v1/unit/submissions", &bearer(&other), achievement("没有证明材料"));
    assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("missing_evidence")), "{}", r.text());
    let mut odd = achievement("只有其他材料");
    odd["attachments"] = json!([{"type": "其他", "name": "照片.pdf", "content_base64": b64(PDF)}]);
    assert_eq!(
        post(&addr, "/api/v1/unit/submissions", &bearer(&other), odd).json()["errors"][0]["code"],
        "missing_evidence",
        "其他 shows nothing"
    );
    for fake in [&b"<html><script>alert(1)</script></html>"[..], b"MZ\x90\x00\x03\x00\x00\x00 an executable"] {
        let r = request_bytes(
            &addr,
            "POST",
            &url_attach(&id, "验收证书", "证书.pdf"),
            &h(&bearer(&other)),
            Some(("application/pdf", fake.to_vec())),
        );
        assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("bad_attachment")), "{}", r.text());
    }
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(21 * 1024 * 1024, b' ');
    let r =
        request_bytes(&addr, "POST", &url_attach(&id, "验收证书", "big.pdf"), &h(&bearer(&other)), Some(("application/pdf", big.clone())));
    assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("bad_attachment")), "a length over the cap");
    let r = request_chunked(&addr, "POST", &url_attach(&id, "验收证书", "big.pdf"), &h(&bearer(&other)), ("application/pdf", big));
    assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("bad_attachment")), "stopped while it streams");
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains("20"), "{}", r.text());
    let ok = request_bytes(
        &addr,
        "POST",
        &url_attach(&id, "验收证书", "证书.pdf"),
        &h(&bearer(&other)),
        Some(("application/pdf", PDF.to_vec())),
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(ok.json()["size"], PDF.len());
    // A classified submission: refused, and nothing of it anywhere under the node's folder.
    let marker = "绝密级地下工程参数QX7";
    let mut secret = with_pdf(achievement("涉密成果"));
    secret["abstract"] = json!(format!("本项目（{marker}）……"));
    let r = post(&addr, "/api/v1/unit/submissions", &bearer(&other), secret);
    assert_eq!((r.status, r.json()["errors"][0]["code"].as_str()), (422, Some("classified")), "{}", r.text());
    let mut secret = with_pdf(achievement(marker));
    secret["secret"] = json!("机密");
    secret["draft"] = json!(true);
    assert_eq!(
        post(&addr, "/api/v1/unit/submissions", &bearer(&other), secret).json()["errors"][0]["code"],
        "classified",
        "not even as a draft"
    );
    let mut named = achievement("附件名涉密");
    named["attachments"] = json!([{"type": "验收证书", "name": format!("{marker}.pdf"), "content_base64": b64(PDF)}]);
    assert_eq!(post(&addr, "/api/v1/unit/submissions", &bearer(&other), named).status, 422);
    assert!(node.files_holding(&[marker, "QX7"]).is_empty(), "{:?}", node.files_holding(&[marker, "QX7"]));
    // A token expires (here after 2 s, by the test hook).
    wait_for("the token to expire", Duration::from_secs(10), || get(&addr, "/api/v1/unit/submissions", &h(&bearer(&other))).status == 401);
}

fn url_attach(id: &str, ty: &str, name: &str) -> String {
    common::http::url(&format!("/api/v1/unit/submissions/{id}/attachments"), &[("type", ty), ("name", name)])
}

/// Submits `n` achievements as `token`; their ids.
fn submit_many(addr: &str, token: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = post(addr, "/api/v1/unit/submissions", &bearer(token), with_pdf(achievement(&format!("成果{i:03}"))));
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Approves `ids` from `reviewers` threads at once; the 登记号 each got.
fn approve_all(addr: &str, ids: &[String], reviewers: usize) -> Vec<String> {
    let chunks: Vec<Vec<String>> = ids.chunks(ids.len().div_ceil(reviewers)).map(<[String]>::to_vec).collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .enumerate()
        .map(|(k, chunk)| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                chunk
                    .iter()
                    .filter_map(|id| {
                        let r = post(
                            &addr,
                            &format!("/api/v1/operator/submissions/{id}/approve"),
                            &op(),
                            json!({"reviewer": format!("审核员{k}")}),
                        );
                        (r.status == 200).then(|| r.json()["reg_no"].as_str().unwrap().to_string())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
}

#[test]
fn concurrent_approvals_get_distinct_consecutive_serials_and_skip_a_files_reg_no() {
    let (node, addr) = office(&[]);
    let year = today_year();
    // The office's own register already holds serial 3 of this year.
    let held = format!("{NODE}{year}Y0003");
    let header =
        "登记号,成果名称,成果类型,行政区划代码,登记日期,第一完成单位,主要完成人,学科分类,应用行业,成果所处阶段,任务来源,成果简介,密级";
    let row = format!("{held},文件里的成果,应用技术,{NODE},{year}-01-02,武汉大学,张三,413,C27,初期阶段,计划外,简介,公开");
    node.drop_file("register.csv", format!("{header}\n{row}\n").as_bytes());
    let report = node.wait_handled("register.csv", 1);
    assert_eq!(report["accepted"], 1, "{report}");
    let token = unit(&addr, USCC, "武汉大学");
    let ids = submit_many(&addr, &token, 200);
    let mut got = approve_all(&addr, &ids, 8);
    got.sort();
    let mut want: Vec<String> = (1..=201).filter(|n| *n != 3).map(|n| format!("{NODE}{year}Y{n:04}")).collect();
    want.sort();
    assert_eq!(got, want, "200 distinct, consecutive serials around the file's");
    let title = node.query(&["--operator", "--reg-no", &held]).remove(0)["title"].clone();
    assert_eq!(title, "文件里的成果", "the file's record is untouched");
}

#[test]
fn a_kill_during_approvals_leaves_every_approved_submission_exactly_one_record() {
    let (mut node, addr) = office(&[]);
    let token = unit(&addr, USCC, "武汉大学");
    let ids = submit_many(&addr, &token, 60);
    let approving = {
        let (addr, ids) = (addr.clone(), ids.clone());
        std::thread::spawn(move || approve_all(&addr, &ids, 4))
    };
    // Kill the node while the approvals run.
    wait_for("some approvals", Duration::from_secs(60), || {
        get(&addr, "/api/v1/operator/submissions?state=registered", &h(&op())).json()["submissions"]
            .as_array()
            .is_some_and(|a| a.len() >= 10)
    });
    node.kill();
    let _ = approving.join();
    node.start();
    let f = node.dir.path().join("data/http-address");
    let addr = {
        wait_for("the API again", Duration::from_secs(60), || {
            std::fs::read_to_string(&f).is_ok_and(|a| std::net::TcpStream::connect(a.trim()).is_ok())
        });
        std::fs::read_to_string(&f).unwrap()
    };
    let registered =
        get(&addr, "/api/v1/operator/submissions?state=registered", &h(&op())).json()["submissions"].as_array().unwrap().clone();
    let waiting = get(&addr, "/api/v1/operator/submissions?state=submitted", &h(&op())).json()["submissions"].as_array().unwrap().clone();
    assert_eq!(registered.len() + waiting.len(), ids.len(), "every submission is registered or still waiting");
    let records = node.query(&["--operator"]);
    assert_eq!(records.len(), registered.len(), "one record per approval, none without one");
    let mut reg_nos: Vec<&str> = registered.iter().map(|s| s["reg_no"].as_str().unwrap()).collect();
    reg_nos.sort();
    reg_nos.dedup();
    assert_eq!(reg_nos.len(), registered.len(), "no 登记号 twice");
    for s in &registered {
        assert!(records.iter().any(|r| r["reg_no"] == s["reg_no"]), "{} has its record", s["reg_no"]);
    }
    // The rest can still be approved, past every serial used.
    let rest: Vec<String> = waiting.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    let more = approve_all(&addr, &rest, 2);
    assert_eq!(more.len(), rest.len());
    assert!(more.iter().all(|r| !reg_nos.contains(&r.as_str())));
}

#[test]
fn the_office_works_from_the_command_line_with_the_daemon_running_or_stopped() {
    let (mut node, addr) = office(&[]);
    let cfg = node.config.to_str().unwrap().to_string();
    let out = node.cli(&["unit", "add", "--config", &cfg, "--uscc", USCC, "--name", "武汉大学", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["uscc"], USCC);
    let bad = node.cli(&["unit", "add", "--config", &cfg, "--uscc", "123", "--name", "x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad_uscc"), "{}", String::from_utf8_lossy(&bad.stderr));
    let otp = added["password"].as_str().unwrap();
    post(&addr, "/api/v1/unit/password", &[], json!({"uscc": USCC, "password": otp, "new_password": "一个足够长的新密码啊"}));
    let token = post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": "一个足够长的新密码啊"})).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = submit_many(&addr, &token, 2);
    let list = node.cli(&["review", "list", "--config", &cfg]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(&ids[0]) && text.contains("成果000") && text.contains("waiting"), "{text}");
    let r = node.cli(&["review", "return", "--config", &cfg, &ids[1], "--reason", "缺少验收证书", "--reviewer", "王审核"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // With the daemon stopped the same commands work on the store.
    node.stop();
    let a = node.cli(&["review", "approve", "--config", &cfg, &ids[0], "--reviewer", "王审核", "--json"]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let approved: Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(approved["version"], 1);
    let units = node.cli(&["unit", "list", "--config", &cfg]);
    assert!(String::from_utf8_lossy(&units.stdout).contains("武汉大学"));
    let again = node.cli(&["review", "approve", "--config", &cfg, &ids[0]]);
    assert_eq!(again.status.code(), Some(1), "approved once only");
    assert_eq!(node.query(&["--operator"]).len(), 1);
}

/// Holds each answer of online registration's API to docs/openapi.json: its status is
/// documented for its path and method, its content type too, and a JSON body conforms.
fn documented(doc: &Value, method: &str, template: &str, r: &Response) {
    let op = &doc["paths"][template][method];
    assert!(op.is_object(), "{method} {template} is not in docs/openapi.json");
    let status = r.status.to_string();
    let spec = &op["responses"][&status];
    assert!(spec.is_object(), "{method} {template}: status {status} is not documented: {}", String::from_utf8_lossy(&r.body));
    if r.status == 204 {
        return;
    }
    let ct = r.header("content-type").unwrap_or("").split(';').next().unwrap().to_string();
    let schema = &spec["content"][&ct]["schema"];
    if ct == "application/json" {
        assert!(schema.is_object(), "{method} {template}: {ct} is not documented for {status}");
        common::conforms(doc, schema, &r.json(), template).unwrap_or_else(|e| panic!("{method} {template} {status}: {e}"));
    } else {
        assert!(spec["content"].as_object().is_some_and(|c| !c.is_empty()), "{method} {template}: {ct} for {status}");
    }
}

#[test]
fn the_registration_api_answers_as_docs_openapi_json_says() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap()).unwrap();
    let (_node, addr) = office(&[]);
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut check = |method: &str, template: &str, r: &Response| {
        documented(&doc, method, template, r);
        seen.push((method.to_string(), template.to_string()));
    };
    let r = post(&addr, "/api/v1/operator/units", &op(), json!({"uscc": USCC, "name": "武汉大学"}));
    check("post", "/api/v1/operator/units", &r);
    let otp = r.json()["password"].as_str().unwrap().to_string();
    check("post", "/api/v1/operator/units", &post(&addr, "/api/v1/operator/units", &op(), json!({"uscc": "1", "name": "x"})));
    check("post", "/api/v1/operator/units", &post(&addr, "/api/v1/operator/units", &[], json!({"uscc": USCC, "name": "x"})));
    check("get", "/api/v1/operator/units", &get(&addr, "/api/v1/operator/units", &h(&op())));
    check("post", "/api/v1/unit/token", &post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": otp})));
    check(
        "post",
        "/api/v1/unit/password",
        &post(&addr, "/api/v1/unit/password", &[], json!({"uscc": USCC, "password": otp, "new_password": "短"})),
    );
    check(
        "post",
        "/api/v1/unit/password",
        &post(&addr, "/api/v1/unit/password", &[], json!({"uscc": USCC, "password": otp, "new_password": "足够长的新密码一二三"})),
    );
    let t = post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": "足够长的新密码一二三"}));
    check("post", "/api/v1/unit/token", &t);
    check("post", "/api/v1/unit/token", &post(&addr, "/api/v1/unit/token", &[], json!({"uscc": USCC, "password": "wrong"})));
    let auth = bearer(t.json()["token"].as_str().unwrap());
    let created = post(&addr, "/api/v1/unit/submissions", &auth, json!({"title": "草稿", "draft": true}));
    check("post", "/api/v1/unit/submissions", &created);
    let id = created.json()["id"].as_str().unwrap().to_string();
    check("post", "/api/v1/unit/submissions", &post(&addr, "/api/v1/unit/submissions", &auth, achievement("无证明")));
    check("post", "/api/v1/unit/submissions", &post(&addr, "/api/v1/unit/submissions", &[], achievement("无口令")));
    check("get", "/api/v1/unit/submissions", &get(&addr, "/api/v1/unit/submissions", &h(&auth)));
    check("get", "/api/v1/unit/submissions/{id}", &get(&addr, &format!("/api/v1/unit/submissions/{id}"), &h(&auth)));
    check("get", "/api/v1/unit/submissions/{id}", &get(&addr, "/api/v1/unit/submissions/nope", &h(&auth)));
    check(
        "put",
        "/api/v1/unit/submissions/{id}",
        &json(&addr, "PUT", &format!("/api/v1/unit/submissions/{id}"), &h(&auth), &achievement("成果")),
    );
    check("post", "/api/v1/unit/submissions/{id}/submit", &post(&addr, &format!("/api/v1/unit/submissions/{id}/submit"), &auth, json!({})));
    let a = request_bytes(&addr, "POST", &url_attach(&id, "验收证书", "a.pdf"), &h(&auth), Some(("application/pdf", PDF.to_vec())));
    check("post", "/api/v1/unit/submissions/{id}/attachments", &a);
    let a = request_bytes(&addr, "POST", &url_attach(&id, "验收证书", "a.pdf"), &h(&auth), Some(("application/pdf", b"<html>".to_vec())));
    check("post", "/api/v1/unit/submissions/{id}/attachments", &a);
    check(
        "get",
        "/api/v1/unit/submissions/{id}/attachments/{n}",
        &get(&addr, &format!("/api/v1/unit/submissions/{id}/attachments/1"), &h(&auth)),
    );
    check("post", "/api/v1/unit/submissions/{id}/submit", &post(&addr, &format!("/api/v1/unit/submissions/{id}/submit"), &auth, json!({})));
    check("post", "/api/v1/unit/submissions/{id}/submit", &post(&addr, &format!("/api/v1/unit/submissions/{id}/submit"), &auth, json!({})));
    check(
        "put",
        "/api/v1/unit/submissions/{id}",
        &json(&addr, "PUT", &format!("/api/v1/unit/submissions/{id}"), &h(&auth), &achievement("成果")),
    );
    check("get", "/api/v1/operator/submissions", &get(&addr, "/api/v1/operator/submissions?state=submitted", &h(&op())));
    check("get", "/api/v1/operator/submissions", &get(&addr, "/api/v1/operator/submissions?state=nonsense", &h(&op())));
    check("get", "/api/v1/operator/submissions/{id}", &get(&addr, &format!("/api/v1/operator/submissions/{id}"), &h(&op())));
    check(
        "get",
        "/api/v1/operator/submissions/{id}/attachments/{n}",
        &get(&addr, &format!("/api/v1/operator/submissions/{id}/attachments/1"), &h(&op())),
    );
    check(
        "get",
        "/api/v1/operator/submissions/{id}/attachments/{n}",
        &get(&addr, &format!("/api/v1/operator/submissions/{id}/attachments/9"), &h(&op())),
    );
    let second = post(&addr, "/api/v1/unit/submissions", &auth, with_pdf(achievement("第二份")));
    let sid = second.json()["id"].as_str().unwrap().to_string();
    check(
        "post",
        "/api/v1/operator/submissions/{id}/return",
        &post(&addr, &format!("/api/v1/operator/submissions/{sid}/return"), &op(), json!({"reviewer": "王", "reason": "补材料"})),
    );
    check(
        "post",
        "/api/v1/operator/submissions/{id}/return",
        &post(&addr, &format!("/api/v1/operator/submissions/{sid}/return"), &op(), json!({"reviewer": "王", "reason": "补材料"})),
    );
    check(
        "post",
        "/api/v1/operator/submissions/{id}/return",
        &post(&addr, &format!("/api/v1/operator/submissions/{id}/return"), &op(), json!({"reviewer": "王"})),
    );
    check(
        "post",
        "/api/v1/operator/submissions/{id}/approve",
        &post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({"reviewer": "王"})),
    );
    check(
        "post",
        "/api/v1/operator/submissions/{id}/approve",
        &post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({"reviewer": "王"})),
    );
    check(
        "post",
        "/api/v1/operator/submissions/{id}/approve",
        &post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({})),
    );
    // Members: created, listed, signed in, their submission checked by the unit.
    let m = post(&addr, "/api/v1/unit/members", &auth, json!({"name": "张三"}));
    check("post", "/api/v1/unit/members", &m);
    let (login, otp) = (m.json()["login"].as_str().unwrap().to_string(), m.json()["password"].as_str().unwrap().to_string());
    check("post", "/api/v1/unit/members", &post(&addr, "/api/v1/unit/members", &auth, json!({"name": "李四", "login": login})));
    check("get", "/api/v1/unit/members", &get(&addr, "/api/v1/unit/members", &h(&auth)));
    let r = post(&addr, "/api/v1/unit/password", &[], json!({"login": login, "password": otp, "new_password": "张三自己的密码2026"}));
    check("post", "/api/v1/unit/password", &r);
    let t = post(&addr, "/api/v1/unit/token", &[], json!({"login": login, "password": "张三自己的密码2026"}));
    check("post", "/api/v1/unit/token", &t);
    let member = bearer(t.json()["token"].as_str().unwrap());
    check("get", "/api/v1/unit/members", &get(&addr, "/api/v1/unit/members", &h(&member)));
    let mid =
        post(&addr, "/api/v1/unit/submissions", &member, with_pdf(achievement("填报人的成果"))).json()["id"].as_str().unwrap().to_string();
    check("post", "/api/v1/unit/submissions/{id}/pass", &post(&addr, &format!("/api/v1/unit/submissions/{mid}/pass"), &member, json!({})));
    check(
        "post",
        "/api/v1/unit/submissions/{id}/return",
        &post(&addr, &format!("/api/v1/unit/submissions/{mid}/return"), &auth, json!({"reason": ""})),
    );
    check(
        "post",
        "/api/v1/unit/submissions/{id}/return",
        &post(&addr, &format!("/api/v1/unit/submissions/{mid}/return"), &auth, json!({"reason": "补充验收报告"})),
    );
    check("post", "/api/v1/unit/submissions/{id}/pass", &post(&addr, &format!("/api/v1/unit/submissions/{mid}/pass"), &auth, json!({})));
    post(&addr, &format!("/api/v1/unit/submissions/{mid}/submit"), &member, json!({}));
    check("post", "/api/v1/unit/submissions/{id}/pass", &post(&addr, &format!("/api/v1/unit/submissions/{mid}/pass"), &auth, json!({})));
    check("post", "/api/v1/unit/members/{login}/reset", &post(&addr, &format!("/api/v1/unit/members/{login}/reset"), &auth, json!({})));
    check("post", "/api/v1/unit/members/{login}/disable", &post(&addr, &format!("/api/v1/unit/members/{login}/disable"), &auth, json!({})));
    check("post", "/api/v1/unit/members/{login}/enable", &post(&addr, &format!("/api/v1/unit/members/{login}/enable"), &auth, json!({})));
    check("post", "/api/v1/unit/members/{login}/enable", &post(&addr, "/api/v1/unit/members/nobody/enable", &auth, json!({})));
    check("post", "/api/v1/operator/units/{uscc}/reset", &post(&addr, &format!("/api/v1/operator/units/{USCC}/reset"), &op(), json!({})));
    check(
        "post",
        "/api/v1/operator/units/{uscc}/disable",
        &post(&addr, &format!("/api/v1/operator/units/{USCC}/disable"), &op(), json!({})),
    );
    check("post", "/api/v1/operator/units/{uscc}/enable", &post(&addr, &format!("/api/v1/operator/units/{USCC}/enable"), &op(), json!({})));
    check("post", "/api/v1/operator/units/{uscc}/reset", &post(&addr, "/api/v1/operator/units/12100000400000777H/reset", &op(), json!({})));
    // Every operation of the document's registration paths was answered as documented.
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "registration")) {
                assert!(seen.iter().any(|(m, p)| m == method && p == template), "{method} {template} was not tried");
            }
        }
    }
}

#[test]
fn a_named_reviewer_signs_in_with_its_own_password_and_its_decisions_say_so() {
    let (node, addr) = office(&[]);
    let cfg = node.config.to_str().unwrap().to_string();
    let out = node.cli(&["reviewer", "add", "--config", &cfg, "--login", "wang", "--name", "王审核", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let otp = serde_json::from_slice::<Value>(&out.stdout).unwrap()["password"].as_str().unwrap().to_string();
    let token = unit(&addr, USCC, "武汉大学");
    let id = post(&addr, "/api/v1/unit/submissions", &bearer(&token), with_pdf(achievement("审核员批准的成果"))).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let origin = format!("http://{addr}");
    let o: &[(&str, &str)] = &[("Origin", origin.as_str())];
    // The one-time password opens only the password change; then the reviewer is in.
    let r = common::http::post_form(&addr, "/admin/login", o, &[("login", "wang"), ("password", &otp)]);
    assert_eq!(r.status, 403);
    assert!(r.text().contains("new_password"));
    let r = common::http::post_form(
        &addr,
        "/admin/password",
        o,
        &[("login", "wang"), ("password", &otp), ("new_password", "王审核的密码2026"), ("repeat", "王审核的密码2026")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let with_cookie: Vec<(&str, &str)> = vec![("Origin", origin.as_str()), ("Cookie", cookie.as_str())];
    let page = get(&addr, &format!("/admin/review/{id}"), &with_cookie).text();
    assert!(page.contains("审核人：wang（本账号）"), "{page}");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    // Reviewers review; only operators manage reviewers.
    assert_eq!(get(&addr, "/admin/reviewers", &with_cookie).status, 403);
    let r = common::http::post_form(&addr, &format!("/admin/review/{id}/approve"), &with_cookie, &[("csrf", &csrf), ("reviewer", "冒名")]);
    assert_eq!(r.status, 303, "{}", r.text());
    let sub = get(&addr, &format!("/api/v1/operator/submissions/{id}"), &h(&op())).json();
    let decision = sub["decisions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((decision["action"].as_str(), decision["who"].as_str()), (Some("approve"), Some("王审核（wang）")), "{sub}");
    // Disabled: the session ends at once.
    let out = node.cli(&["reviewer", "disable", "--config", &cfg, "--login", "wang"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = get(&addr, "/admin/review", &with_cookie);
    assert_eq!((r.status, r.header("location")), (303, Some("/admin")));
    let list = node.cli(&["reviewer", "list", "--config", &cfg]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("wang  王审核  disabled"));
}

/// Creates a member of the unit `token` signs in, changes its one-time password, signs
/// it in: its login and token.
fn member(addr: &str, token: &str, name: &str) -> (String, String) {
    let r = post(addr, "/api/v1/unit/members", &bearer(token), json!({"name": name}));
    assert_eq!(r.status, 201, "{}", r.text());
    let (login, otp) = (r.json()["login"].as_str().unwrap().to_string(), r.json()["password"].as_str().unwrap().to_string());
    let early = post(addr, "/api/v1/unit/token", &[], json!({"login": login, "password": otp}));
    assert_eq!((early.status, early.json()["code"].as_str()), (403, Some("password_change_required")));
    let mine = format!("{name}的填报密码2026");
    let r = post(addr, "/api/v1/unit/password", &[], json!({"login": login, "password": otp, "new_password": mine}));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = post(addr, "/api/v1/unit/token", &[], json!({"login": login.to_uppercase(), "password": mine}));
    assert_eq!(r.status, 200, "logins ignore case: {}", r.text());
    (login, r.json()["token"].as_str().unwrap().to_string())
}

#[test]
fn a_members_submission_waits_for_its_unit_which_passes_it_on_and_only_its_own_are_seen() {
    let (node, addr) = office(&[]);
    let unit_token = unit(&addr, USCC, "武汉大学");
    let other = unit(&addr, OTHER_USCC, "北京大学");
    let (zhang, zt) = member(&addr, &unit_token, "张三");
    let (_, lt) = member(&addr, &unit_token, "李四");
    assert_eq!(zhang, format!("{}-1", USCC.to_lowercase()), "a made-up login: the unit's code and a number");
    // A member's password may not contain its login or its unit's code.
    let weak = post(
        &addr,
        "/api/v1/unit/password",
        &[],
        json!({"login": zhang, "password": "张三的填报密码2026", "new_password": format!("x{zhang}")}),
    );
    assert_eq!((weak.status, weak.json()["errors"][0]["code"].as_str()), (422, Some("weak_password")));

    // The member submits: it waits for the unit, not in the office's queue.
    let r = post(&addr, "/api/v1/unit/submissions", &bearer(&zt), with_pdf(achievement("张三的芯片")));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "unit_review");
    let id = r.json()["id"].as_str().unwrap().to_string();
    let queue = get(&addr, "/api/v1/operator/submissions?state=submitted", &h(&op())).json();
    assert!(queue["submissions"].as_array().unwrap().is_empty(), "{queue}");
    let a = post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({"reviewer": "王"}));
    assert_eq!(a.status, 409, "the office cannot approve before the unit's check");

    // Who sees it: the member and its unit; not another member, not another unit.
    let seen = |t: &str| get(&addr, &format!("/api/v1/unit/submissions/{id}"), &h(&bearer(t))).status;
    assert_eq!((seen(&zt), seen(&unit_token), seen(&lt), seen(&other)), (200, 200, 404, 404));
    let listed = |t: &str| get(&addr, "/api/v1/unit/submissions", &h(&bearer(t))).json()["submissions"].as_array().unwrap().len();
    assert_eq!((listed(&zt), listed(&unit_token), listed(&lt)), (1, 1, 0));
    let sub = get(&addr, &format!("/api/v1/unit/submissions/{id}"), &h(&bearer(&unit_token))).json();
    assert_eq!((sub["member"]["login"].as_str(), sub["member"]["name"].as_str()), (Some(zhang.as_str()), Some("张三")));

    // Only the unit account checks: a member may neither pass nor manage members.
    let p = post(&addr, &format!("/api/v1/unit/submissions/{id}/pass"), &bearer(&zt), json!({}));
    assert_eq!((p.status, p.json()["code"].as_str()), (403, Some("unit_account_required")));
    assert_eq!(post(&addr, "/api/v1/unit/members", &bearer(&zt), json!({"name": "王五"})).status, 403);
    assert_eq!(post(&addr, &format!("/api/v1/unit/submissions/{id}/pass"), &bearer(&other), json!({})).status, 404);

    // Returned with a reason; the member fixes and submits again; the unit passes it.
    let r = post(&addr, &format!("/api/v1/unit/submissions/{id}/return"), &bearer(&unit_token), json!({"reason": "请补充评价报告"}));
    assert_eq!((r.status, r.json()["state"].as_str(), r.json()["reason"].as_str()), (200, Some("returned"), Some("请补充评价报告")));
    let r = post(&addr, &format!("/api/v1/unit/submissions/{id}/submit"), &bearer(&zt), json!({}));
    assert_eq!(r.json()["state"], "unit_review");
    let r = post(&addr, &format!("/api/v1/unit/submissions/{id}/pass"), &bearer(&unit_token), json!({}));
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("submitted")), "{}", r.text());
    let a = post(&addr, &format!("/api/v1/operator/submissions/{id}/approve"), &op(), json!({"reviewer": "王审核"}));
    assert_eq!(a.status, 200, "{}", a.text());
    let reg_no = a.json()["reg_no"].as_str().unwrap().to_string();
    let sub = get(&addr, &format!("/api/v1/unit/submissions/{id}"), &h(&bearer(&zt))).json();
    assert_eq!((sub["state"].as_str(), sub["reg_no"].as_str()), (Some("registered"), Some(reg_no.as_str())));
    let actions: Vec<&str> = sub["decisions"].as_array().unwrap().iter().map(|d| d["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["submit", "unit_return", "submit", "pass", "approve"]);
    assert_eq!(sub["decisions"][0]["who"], format!("member:{zhang}"));
    assert_eq!(sub["decisions"][3]["who"], format!("unit:{USCC}"));
    assert_eq!(node.query(&["--operator", "--reg-no", &reg_no])[0]["title"], "张三的芯片");

    // Another member cannot change it; its own member's change goes through the unit again.
    let mut change = with_pdf(achievement("张三的芯片（第二版）"));
    change["reg_no"] = json!(reg_no);
    let r = post(&addr, "/api/v1/unit/submissions", &bearer(&lt), change.clone());
    assert_eq!(r.status, 422, "another member's record: {}", r.text());
    let r = post(&addr, "/api/v1/unit/submissions", &bearer(&zt), change);
    assert_eq!((r.status, r.json()["state"].as_str()), (201, Some("unit_review")), "{}", r.text());

    // Disabled: the member's token ends and it cannot sign in; disabling the unit stops its members too.
    assert_eq!(post(&addr, &format!("/api/v1/unit/members/{zhang}/disable"), &bearer(&unit_token), json!({})).status, 204);
    assert_eq!(get(&addr, "/api/v1/unit/submissions", &h(&bearer(&zt))).status, 401);
    let t = post(&addr, "/api/v1/unit/token", &[], json!({"login": zhang, "password": "张三的填报密码2026"}));
    assert_eq!((t.status, t.json()["code"].as_str()), (403, Some("member_disabled")));
    assert_eq!(post(&addr, &format!("/api/v1/operator/units/{USCC}/disable"), &op(), json!({})).status, 204);
    assert_eq!(get(&addr, "/api/v1/unit/submissions", &h(&bearer(&lt))).status, 401, "the unit's members' tokens end with it");
    let t =
        post(&addr, "/api/v1/unit/token", &[], json!({"login": format!("{}-2", USCC.to_lowercase()), "password": "李四的填报密码2026"}));
    assert_eq!((t.status, t.json()["code"].as_str()), (403, Some("unit_disabled")));
}
