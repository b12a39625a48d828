//! The demo's units registering online (spec v1.2 §6) at a prefecture's node, through
//! its HTTP API as a unit's program and the office would: the office creates two unit
//! accounts, each unit changes its one-time password and submits achievements with a
//! PDF as evidence, the office approves some and returns one with a reason.

use anyhow::Context;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

/// What the office decided, for the summary.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub units: usize,
    pub submitted: usize,
    /// The 登记号 the node assigned, one per approval.
    pub approved: Vec<String>,
    pub returned: usize,
}

/// Two universities with codes whose check character is right.
const UNITS: [(&str, &str); 2] = [("91350100M000100Y43", "武汉理工示范大学"), ("12100000400000777H", "湖北省示范研究院")];
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n";

/// Registers online at the node whose API is at `addr`, with the office's `token`.
pub fn register(addr: &str, token: &str) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let mut submissions = Vec::new();
    for (k, (uscc, name)) in UNITS.iter().enumerate() {
        let unit = call(addr, "POST", "/api/v1/operator/units", Some(token), &json!({"uscc": uscc, "name": name}), 201)?;
        let otp = unit["password"].as_str().context("a one-time password")?;
        let password = format!("{name}的示范密码2026");
        call(addr, "POST", "/api/v1/unit/password", None, &json!({"uscc": uscc, "password": otp, "new_password": password}), 204)?;
        let t = call(addr, "POST", "/api/v1/unit/token", None, &json!({"uscc": uscc, "password": password}), 200)?;
        let bearer = t["token"].as_str().context("a token")?.to_string();
        out.units += 1;
        for (i, title) in
            [["示范芯片低功耗设计", "示范水稻节水栽培", "示范5G基站节能"], ["示范锂电池回收工艺", "示范图像识别算法", "示范桥梁监测"]][k]
                .iter()
                .enumerate()
        {
            let body = json!({
                "title": title, "kind": "应用技术", "persons": ["张三", "李四"], "discipline": "413", "industry": "C39",
                "stage": "成熟应用阶段", "task_source": "计划外", "keywords": ["示范"], "transfer": "许可",
                "abstract": format!("{name}在线登记的示范成果：{title}。"), "secret": "公开",
                "attachments": [{"type": if i % 2 == 0 { "验收证书" } else { "专利证书" }, "name": "证明材料.pdf", "content_base64": base64(PDF)}],
            });
            let s = call(addr, "POST", "/api/v1/unit/submissions", Some(&bearer), &body, 201)?;
            submissions.push(s["id"].as_str().context("an id")?.to_string());
            out.submitted += 1;
        }
    }
    for (i, id) in submissions.iter().enumerate() {
        if i == 1 {
            call(
                addr,
                "POST",
                &format!("/api/v1/operator/submissions/{id}/return"),
                Some(token),
                &json!({"reviewer": "示范审核员", "reason": "请补充应用情况"}),
                200,
            )?;
            out.returned += 1;
        } else if i != 4 {
            let a = call(
                addr,
                "POST",
                &format!("/api/v1/operator/submissions/{id}/approve"),
                Some(token),
                &json!({"reviewer": "示范审核员"}),
                200,
            )?;
            out.approved.push(a["reg_no"].as_str().context("a 登记号")?.to_string());
        }
    }
    Ok(out)
}

/// One JSON request on loopback; the body when the status is `want`.
pub(crate) fn call(addr: &str, method: &str, path: &str, bearer: Option<&str>, body: &Value, want: u16) -> anyhow::Result<Value> {
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("cannot reach {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let text = body.to_string();
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP answer")?;
    let status: u16 = String::from_utf8_lossy(&raw[..end]).split(' ').nth(1).context("no status")?.parse()?;
    let body = &raw[end + 4..];
    anyhow::ensure!(status == want, "{method} {path}: {status} {}", String::from_utf8_lossy(body));
    Ok(serde_json::from_slice(body).unwrap_or(Value::Null))
}

fn base64(bytes: &[u8]) -> String {
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
