//! The office's pages of online registration, in `/admin` and behind its sign-in: the
//! review queue (oldest first, with its age), one submission with its fields and its
//! evidence (each file opens in its own tab, as a file, never as a page), approve or
//! return with a reason, the history of decisions; and the unit accounts (create,
//! reset a password, disable). Every form carries the session's form token.

// The gates return the early answer itself (a `Response`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::html::{esc, page};
use super::session::{self, Session, FORM_TOKEN};
use crate::http::state::{limit, Api};
use crate::registration::{Refused, Registration};
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use huijiao_protocol::fields::Field;
use huijiao_protocol::registration::State as SubState;
use serde_json::Value;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// The signed-in operator's session and the service, or the answer to give instead.
fn gate<'a>(api: &'a Api, addr: SocketAddr, headers: &HeaderMap) -> Result<(Session, &'a Registration), Response> {
    limit(api, addr).map_err(IntoResponse::into_response)?;
    let Some((_, s)) = super::admin::signed_in(api, headers) else { return Err(Redirect::to("/admin").into_response()) };
    let Some(reg) = api.registration.as_deref() else {
        return Err((
            StatusCode::NOT_FOUND,
            Html(page("审核", "admin", "<h1>在线登记未开启</h1><p>本节点的配置没有 <code>[registration]</code> 一节。</p>")),
        )
            .into_response());
    };
    Ok((s, reg))
}

fn html(body: String) -> Response {
    let mut r = Html(page("在线登记审核", "admin", &body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn age(ms: i64) -> String {
    let mins = ((crate::clock::now_ms() - ms) / 60_000).max(0);
    match mins {
        0..=59 => format!("{mins} 分钟"),
        60..=1439 => format!("{} 小时", mins / 60),
        _ => format!("{} 天", mins / 1440),
    }
}

fn nav() -> &'static str {
    "<p class=\"crumbs\"><a href=\"/admin\">管理</a> · <a href=\"/admin/review\">审核队列</a> · <a href=\"/admin/units\">单位账户</a> · <a href=\"/admin/reviewers\">审核员</a></p>"
}

/// The queue: submissions waiting for review, oldest first.
pub async fn queue(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let (_, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let waiting = match reg.submissions(None, Some(SubState::Submitted)).await {
        Ok(w) => w,
        Err(r) => return error(r),
    };
    let mut b = String::new();
    let _ = write!(b, "{}<h1>审核队列</h1>", nav());
    if waiting.is_empty() {
        b.push_str("<p class=\"empty\">没有待审核的登记。</p>");
    } else {
        let _ = write!(b, "<p>{} 份待审核，最早的已等待 {}。</p>", waiting.len(), waiting[0].submitted_at.map(age).unwrap_or_default());
        b.push_str("<div class=\"wide\"><table><thead><tr><th>成果名称</th><th>单位</th><th>类型</th><th>已等待</th></tr></thead><tbody>");
        for s in &waiting {
            let kind = match s.asked.as_str() {
                "change" => "变更",
                "withdraw" => "撤销",
                _ => "新登记",
            };
            let _ = write!(
                b,
                "<tr><td><a href=\"/admin/review/{}\"><bdi>{}</bdi></a></td><td><bdi>{}</bdi></td><td>{kind}</td><td>{}</td></tr>",
                esc(&s.id),
                esc(if s.title().is_empty() { "（未填名称）" } else { s.title() }),
                esc(&s.unit_name),
                s.submitted_at.map(age).unwrap_or_default()
            );
        }
        b.push_str("</tbody></table></div>");
    }
    html(b)
}

/// One submission: its fields, evidence, decisions, and what the reviewer may do.
pub async fn show(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match reg.submission(None, &id).await {
        Ok(s) => html(render(&s, &session, None)),
        Err(r) => error(r),
    }
}

fn render(s: &crate::store::registration::Submission, session: &Session, notice: Option<&str>) -> String {
    let mut b = String::new();
    let _ = write!(b, "{}<h1><bdi>{}</bdi></h1>", nav(), esc(if s.title().is_empty() { "（未填名称）" } else { s.title() }));
    if let Some(n) = notice {
        let _ = write!(b, "<p class=\"error\">{}</p>", esc(n));
    }
    let _ = write!(
        b,
        "<table class=\"kv\"><tr><th>状态</th><td>{}（{}）</td></tr><tr><th>单位</th><td><bdi>{}</bdi>（{}）</td></tr>",
        s.state.zh(),
        s.state.as_str(),
        esc(&s.unit_name),
        esc(&s.uscc)
    );
    if let (Some(login), name) = (&s.member, &s.member_name) {
        let _ = write!(b, "<tr><th>填报人</th><td><bdi>{}</bdi>（{}）</td></tr>", esc(name.as_deref().unwrap_or_default()), esc(login));
    }
    if let Some(r) = &s.reg_no {
        let cert = if s.state == SubState::Registered {
            format!(
                " <a class=\"certificate-link\" href=\"/admin/review/{}/certificate\" target=\"_blank\" rel=\"noopener\">登记证书</a>",
                esc(&s.id)
            )
        } else {
            String::new()
        };
        let _ = write!(b, "<tr><th>登记号</th><td><strong class=\"reg-no\">{}</strong>{cert}</td></tr>", esc(r));
    }
    if let Some(r) = &s.reason {
        let _ = write!(b, "<tr><th>退回原因</th><td><bdi>{}</bdi></td></tr>", esc(r));
    }
    b.push_str("</table><h2>登记内容</h2><table class=\"kv\">");
    for f in Field::ALL {
        let Some(v) = s.body.get(f.key()) else { continue };
        let text = match v {
            Value::String(t) => t.clone(),
            Value::Array(items) => {
                items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)).collect::<Vec<_>>().join("；")
            }
            Value::Null => continue,
            other => other.to_string(),
        };
        let _ = write!(b, "<tr><th>{}</th><td><bdi>{}</bdi></td></tr>", f.zh(), esc(&text));
    }
    b.push_str("</table><h2>证明材料</h2>");
    if s.attachments.is_empty() {
        b.push_str("<p class=\"empty\">没有附件。</p>");
    } else {
        b.push_str("<ul class=\"evidence\">");
        for a in &s.attachments {
            let _ = write!(
                b,
                "<li><a href=\"/admin/review/{}/attachments/{}\" target=\"_blank\" rel=\"noopener\">{}：<bdi>{}</bdi></a>（{}，{:.1} KiB）</li>",
                esc(&s.id),
                a.n,
                esc(&a.ty),
                esc(&a.name),
                esc(&a.format),
                a.size as f64 / 1024.0
            );
        }
        b.push_str("</ul>");
    }
    if s.state == SubState::Submitted {
        let token = esc(&session.form_token);
        // A named reviewer's decisions carry its account; with the operators' token the
        // reviewer types a name.
        let who = match session.subject.strip_prefix("reviewer:") {
            Some(login) => format!("<p class=\"note\">审核人：{}（本账号）</p>", esc(login)),
            None => "<label>审核人<input name=\"reviewer\" required maxlength=\"100\"></label>".to_string(),
        };
        let _ = write!(
            b,
            "<h2>审核</h2><form method=\"post\" action=\"/admin/review/{id}/approve\" class=\"decide\">\
             <input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">{who}\
             <button type=\"submit\" name=\"approve\">批准并登记</button></form>\
             <form method=\"post\" action=\"/admin/review/{id}/return\" class=\"decide\">\
             <input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">{who}\
             <label>退回原因<textarea name=\"reason\" required maxlength=\"2000\"></textarea></label>\
             <button type=\"submit\" name=\"return\">退回修改</button></form>",
            id = esc(&s.id)
        );
    }
    if !s.decisions.is_empty() {
        b.push_str(
            "<h2>处理记录</h2><div class=\"wide\"><table><thead><tr><th>时间</th><th>谁</th><th>操作</th><th>说明</th></tr></thead><tbody>",
        );
        for d in &s.decisions {
            let action = match d.action.as_str() {
                "submit" => "提交审核",
                "approve" => "批准",
                "return" => "退回",
                "pass" => "单位审核通过",
                "unit_return" => "单位退回填报人",
                other => other,
            };
            let note = match (&d.reg_no, &d.reason) {
                (Some(r), _) => format!("登记号 {r}，第 {} 版", d.version.unwrap_or(1)),
                (None, Some(r)) => r.clone(),
                _ => String::new(),
            };
            let _ = write!(
                b,
                "<tr><td>{}</td><td><bdi>{}</bdi></td><td>{action}</td><td><bdi>{}</bdi></td></tr>",
                crate::clock::rfc3339_china(d.at),
                esc(&d.who),
                esc(&note)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b
}

/// Evidence, for the signed-in reviewer only.
pub async fn attachment(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, n)): Path<(String, u32)>,
) -> Response {
    let (_, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    crate::http::registration::attachment(reg, &id, n, None).await
}

#[derive(serde::Deserialize)]
pub struct Decide {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reviewer: String,
    #[serde(default)]
    reason: String,
}

async fn decide(api: Arc<Api>, addr: SocketAddr, headers: HeaderMap, id: String, f: Decide, approve: bool) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !session::form_ok(&session, &headers, &f.csrf) {
        return (
            StatusCode::FORBIDDEN,
            Html(page("审核", "admin", "<h1>审核</h1><p class=\"error\">这个请求不是从本站的审核页发出的。</p>")),
        )
            .into_response();
    }
    let who = match session.subject.strip_prefix("reviewer:") {
        Some(login) => reg.reviewer_label(login).await,
        None => f.reviewer.clone(),
    };
    let outcome =
        if approve { reg.approve(&id, &who).await.map(|_| ()) } else { reg.return_to_unit(&id, &who, &f.reason).await.map(|_| ()) };
    match outcome {
        Ok(()) => Redirect::to(&format!("/admin/review/{id}")).into_response(),
        Err(r) => {
            let notice = crate::registration::zh_message(&r);
            match reg.submission(None, &id).await {
                Ok(s) => {
                    let mut resp = html(render(&s, &session, Some(&notice)));
                    *resp.status_mut() = status_of(&r);
                    resp
                }
                Err(r) => error(r),
            }
        }
    }
}

pub async fn approve(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Decide>,
) -> Response {
    decide(api, addr, headers, id, f, true).await
}

pub async fn return_to_unit(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Decide>,
) -> Response {
    decide(api, addr, headers, id, f, false).await
}

pub(super) fn status_of(r: &Refused) -> StatusCode {
    StatusCode::from_u16(r.page_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn error(r: Refused) -> Response {
    if let Refused::Store(e) = &r {
        tracing::error!("review page: {e:#}");
    }
    let body = format!("{}<h1>审核</h1><p class=\"error\">{}</p>", nav(), esc(&crate::registration::zh_message(&r)));
    let mut resp = html(body);
    *resp.status_mut() = status_of(&r);
    resp
}

/// The unit accounts, and the form that creates one.
pub async fn units(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    units_page(reg, &session, None).await
}

async fn units_page(reg: &Registration, session: &Session, notice: Option<String>) -> Response {
    let list = match reg.store.read(|r| r.units()).await {
        Ok(l) => l,
        Err(e) => return error(Refused::Store(e)),
    };
    let token = esc(&session.form_token);
    let mut b = String::new();
    let _ = write!(b, "{}<h1>单位账户</h1>", nav());
    if let Some(n) = notice {
        b.push_str(&n);
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/admin/units\" class=\"decide\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">\
         <label>统一社会信用代码<input name=\"uscc\" required minlength=\"18\" maxlength=\"18\" autocapitalize=\"characters\"></label>\
         <label>单位名称<input name=\"name\" required maxlength=\"200\"></label><button type=\"submit\">创建账户</button></form>"
    );
    if list.is_empty() {
        b.push_str("<p class=\"empty\">还没有单位账户。</p>");
    } else {
        b.push_str(
            "<div class=\"wide\"><table><thead><tr><th>统一社会信用代码</th><th>单位名称</th><th>状态</th><th></th></tr></thead><tbody>",
        );
        for u in &list {
            let state = if u.disabled {
                "已停用"
            } else if u.must_change {
                "一次性密码未修改"
            } else {
                "正常"
            };
            let (action, label) = if u.disabled { ("enable", "启用") } else { ("disable", "停用") };
            let _ = write!(
                b,
                "<tr><td>{uscc}</td><td><bdi>{}</bdi></td><td>{state}</td><td>\
                 <form method=\"post\" action=\"/admin/units/{uscc}/reset\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><button type=\"submit\">重置密码</button></form>\
                 <form method=\"post\" action=\"/admin/units/{uscc}/{action}\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><button type=\"submit\">{label}</button></form></td></tr>",
                esc(&u.name),
                uscc = esc(&u.uscc)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    html(b)
}

#[derive(serde::Deserialize)]
pub struct UnitForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    uscc: String,
    #[serde(default)]
    name: String,
}

/// The one-time password, shown once.
fn password_notice(u: &crate::registration::NewUnit, what: &str) -> String {
    format!(
        "<p class=\"notice\">{what}：<bdi>{}</bdi>（{}）。一次性密码 <code class=\"otp\">{}</code> 只显示这一次，请交给该单位；首次登录须修改。</p>",
        esc(&u.name),
        esc(&u.uscc),
        esc(&u.password)
    )
}

pub async fn add_unit(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<UnitForm>,
) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !session::form_ok(&session, &headers, &f.csrf) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let notice = match reg.add_unit(&f.uscc, &f.name).await {
        Ok(u) => password_notice(&u, "已创建"),
        Err(r) => format!("<p class=\"error\">{}</p>", esc(&crate::registration::zh_message(&r))),
    };
    units_page(reg, &session, Some(notice)).await
}

#[derive(serde::Deserialize)]
pub struct Plain {
    #[serde(default)]
    csrf: String,
}

pub async fn unit_action(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((uscc, action)): Path<(String, String)>,
    Form(f): Form<Plain>,
) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !session::form_ok(&session, &headers, &f.csrf) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let result = match action.as_str() {
        "reset" => reg.reset_unit(&uscc).await.map(|u| password_notice(&u, "已重置")),
        "disable" => reg.set_disabled(&uscc, true).await.map(|()| format!("<p class=\"notice\">已停用 {}。</p>", esc(&uscc))),
        "enable" => reg.set_disabled(&uscc, false).await.map(|()| format!("<p class=\"notice\">已启用 {}。</p>", esc(&uscc))),
        _ => return super::not_found(),
    };
    let notice = result.unwrap_or_else(|r| format!("<p class=\"error\">{}</p>", esc(&crate::registration::zh_message(&r))));
    units_page(reg, &session, Some(notice)).await
}

/// `/admin/reviewers`: the office's named reviewers (operators only).
pub async fn reviewers(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !super::admin::is_operator(&session) {
        return operators_only();
    }
    reviewers_page(reg, &session, None).await
}

fn operators_only() -> Response {
    let mut r = html(format!("{}<h1>审核员</h1><p class=\"error\">只有用运维口令登录的管理员能管理审核员账号。</p>", nav()));
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

async fn reviewers_page(reg: &Registration, session: &Session, notice: Option<String>) -> Response {
    let list = match reg.reviewers().await {
        Ok(l) => l,
        Err(e) => return error(e),
    };
    let token = esc(&session.form_token);
    let mut b = format!("{}<h1>审核员</h1><p>每位审核员用自己的账号登录审核页，处理记录写明是谁。</p>", nav());
    if let Some(n) = notice {
        b.push_str(&n);
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/admin/reviewers\" class=\"decide\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">\
         <label>登录名<input name=\"login\" required maxlength=\"32\" pattern=\"[a-z0-9._-]{{2,32}}\" autocapitalize=\"none\"></label>\
         <label>姓名<input name=\"name\" required maxlength=\"50\"></label><button type=\"submit\">创建审核员</button></form>"
    );
    if list.is_empty() {
        b.push_str("<p class=\"empty\">还没有审核员账号。</p>");
    } else {
        b.push_str("<div class=\"wide\"><table><thead><tr><th>登录名</th><th>姓名</th><th>状态</th><th></th></tr></thead><tbody>");
        for r in &list {
            let state = if r.disabled {
                "已停用"
            } else if r.must_change {
                "一次性密码未修改"
            } else {
                "正常"
            };
            let (action, label) = if r.disabled { ("enable", "启用") } else { ("disable", "停用") };
            let _ = write!(
                b,
                "<tr><td>{login}</td><td><bdi>{}</bdi></td><td>{state}</td><td><form method=\"post\" action=\"/admin/reviewers/{login}/{action}\">\
                 <input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><button type=\"submit\">{label}</button></form></td></tr>",
                esc(&r.name),
                login = esc(&r.login)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    html(b)
}

#[derive(serde::Deserialize)]
pub struct ReviewerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    name: String,
}

pub async fn add_reviewer(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ReviewerForm>,
) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !super::admin::is_operator(&session) {
        return operators_only();
    }
    if !session::form_ok(&session, &headers, &f.csrf) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let notice = match reg.add_reviewer(&f.login, &f.name).await {
        Ok(r) => format!(
            "<p class=\"notice\">已创建审核员 {}（{}）。一次性密码：<code class=\"otp\">{}</code>（只显示这一次；第一次登录时必须修改）</p>",
            esc(&r.name),
            esc(&r.login),
            esc(&r.password)
        ),
        Err(r) => format!("<p class=\"error\">{}</p>", esc(&crate::registration::zh_message(&r))),
    };
    reviewers_page(reg, &session, Some(notice)).await
}

pub async fn reviewer_action(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((login, action)): Path<(String, String)>,
    Form(f): Form<ReviewerForm>,
) -> Response {
    let (session, reg) = match gate(&api, addr, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !super::admin::is_operator(&session) {
        return operators_only();
    }
    if !session::form_ok(&session, &headers, &f.csrf) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let done = match action.as_str() {
        "disable" => reg.set_reviewer_disabled(&login, true).await,
        "enable" => reg.set_reviewer_disabled(&login, false).await,
        _ => Err(Refused::NotFound),
    };
    let notice = match done {
        Ok(()) => format!("<p class=\"notice\">{} 已{}。</p>", esc(&login), if action == "disable" { "停用" } else { "启用" }),
        Err(r) => format!("<p class=\"error\">{}</p>", esc(&crate::registration::zh_message(&r))),
    };
    reviewers_page(reg, &session, Some(notice)).await
}
