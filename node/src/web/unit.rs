//! The unit's pages of online registration (`/unit/…`, spec §6.4), phone-sized first:
//! sign in with the 统一社会信用代码 and password (the one-time password changed first),
//! the unit's submissions with their states and what changed since the last visit, the
//! 登记表 with every field of spec §3 (lists one a line, a date picker, discipline and
//! industry by name or code), drafts, the rule errors beside their fields, evidence
//! uploaded with its type, a returned submission's reason, a change or withdrawal of a
//! registered record, and its 登记证书. Every call goes through the same service as the
//! API (`crate::registration`); every form carries the session's token.
//!
//! One room: the pages of one user's journey, read top to bottom in the order a
//! research secretary meets them; the form's fields and their errors belong together.

// The gates return the early answer itself (a `Response`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::html::{esc, options, page};
use super::session::{self, Session, FORM_TOKEN};
use crate::http::state::{limit, Api};
use crate::registration::members::{account_named, SignInName};
use crate::registration::{Account, Refused, Registration};
use crate::store::registration::Submission;
use axum::body::Body;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use huijiao_protocol::registration::{State as SubState, EVIDENCE_TYPES, MAX_ATTACHMENT_BYTES};
use huijiao_protocol::report::RowError;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

const COOKIE: &str = "hj_unit";
const SEEN: &str = "hj_unit_seen";
const PATH: &str = "/unit";

pub(super) fn html(title: &str, body: String, status: StatusCode) -> Response {
    let mut r = (status, Html(page(title, "unit", &body))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn service(api: &Api) -> Result<&Registration, Response> {
    api.registration
        .as_deref()
        .ok_or_else(|| html("在线登记", "<h1>在线登记</h1><p class=\"error\">本节点不办理在线登记。</p>".into(), StatusCode::NOT_FOUND))
}

/// A page session's subject: the unit's code, or `member:<login>` and the unit's code.
fn subject_of(acc: &Account) -> String {
    match &acc.member {
        Some(m) => format!("member:{m}:{}", acc.uscc),
        None => acc.uscc.clone(),
    }
}

fn account_of(subject: &str) -> Account {
    match subject.strip_prefix("member:").and_then(|r| r.rsplit_once(':')) {
        Some((login, uscc)) => Account { uscc: uscc.to_string(), member: Some(login.to_string()) },
        None => Account::unit(subject),
    }
}

/// The signed-in account's session (a unit's or a member's), or the sign-in page.
pub(super) async fn gate(api: &Api, addr: SocketAddr, headers: &HeaderMap) -> Result<(Session, Account), Response> {
    limit(api, addr).map_err(IntoResponse::into_response)?;
    let reg = service(api)?;
    let id = session::cookie(headers, COOKIE).ok_or_else(|| Redirect::to(PATH).into_response())?;
    let acc = api.unit_sessions.subject(id).map(|s| account_of(&s)).ok_or_else(|| Redirect::to(PATH).into_response())?;
    // The session holds while the account's password is the one it signed in with.
    let secret = reg.account_secret(&acc).await.ok().flatten().unwrap_or_default();
    match api.unit_sessions.get(id, &secret, Instant::now()) {
        Some(s) if !secret.is_empty() => Ok((s, acc)),
        _ => Err(Redirect::to(PATH).into_response()),
    }
}

fn sign_in_page(error: Option<&str>, uscc: &str) -> String {
    format!(
        "<h1>单位登录</h1><p>单位账户用统一社会信用代码登录；填报人用单位给的账号登录。</p>{}\
         <form class=\"login\" method=\"post\" action=\"/unit/login\">\
         <label>统一社会信用代码或填报人账号<input name=\"account\" value=\"{}\" required maxlength=\"40\" autocapitalize=\"none\" autocomplete=\"username\"></label>\
         <label>密码<input type=\"password\" name=\"password\" required autocomplete=\"current-password\"></label><button type=\"submit\">登录</button></form>\
         <p><a href=\"/unit/password\">第一次登录：修改一次性密码</a></p>",
        error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default(),
        esc(uscc)
    )
}

fn password_page(error: Option<&str>, uscc: &str) -> String {
    format!(
        "<h1>修改密码</h1><p>第一次登录先把收到的一次性密码改成自己的密码：至少 10 个字符，不含统一社会信用代码或账号。</p>{}\
         <form class=\"login\" method=\"post\" action=\"/unit/password\">\
         <label>统一社会信用代码或填报人账号<input name=\"account\" value=\"{}\" required maxlength=\"40\" autocapitalize=\"none\" autocomplete=\"username\"></label>\
         <label>一次性密码（或现在的密码）<input type=\"password\" name=\"password\" required autocomplete=\"current-password\"></label>\
         <label>新密码<input type=\"password\" name=\"new_password\" required minlength=\"10\" autocomplete=\"new-password\"></label>\
         <label>再输一遍新密码<input type=\"password\" name=\"repeat\" required minlength=\"10\" autocomplete=\"new-password\"></label>\
         <button type=\"submit\">修改并登录</button></form>",
        error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default(),
        esc(uscc)
    )
}

/// `/unit`: the sign-in page, or the unit's submissions when signed in.
pub async fn home(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    match gate(&api, addr, &headers).await {
        Ok(_) => Redirect::to("/unit/submissions").into_response(),
        Err(_) => match service(&api) {
            Ok(_) => html("单位登录", sign_in_page(None, ""), StatusCode::OK),
            Err(r) => r,
        },
    }
}

pub async fn password_form(State(api): State<Arc<Api>>) -> Response {
    match service(&api) {
        Ok(_) => html("修改密码", password_page(None, ""), StatusCode::OK),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
pub struct SignIn {
    /// A unit's code or a member's login.
    #[serde(default, alias = "uscc")]
    account: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    repeat: String,
}

fn signed_in_at(api: &Api, acc: &Account, secret: &str) -> Response {
    let id = api.unit_sessions.open(&subject_of(acc), secret, Instant::now());
    let mut r = Redirect::to("/unit/submissions").into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&session::set_cookie(COOKIE, &id, PATH)).expect("ASCII cookie"));
    r
}

fn refused_message(r: &Refused) -> String {
    match r {
        Refused::Unauthorized => "账号或密码不对。".into(),
        Refused::TooMany(s) => format!("密码错误次数太多，请 {} 分钟后再试。", s.div_ceil(60)),
        other => crate::registration::zh_message(other),
    }
}

pub async fn login(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let reg = match service(&api) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !session::same_origin(&headers) {
        return html("单位登录", sign_in_page(Some("请从本站的登录页登录。"), ""), StatusCode::FORBIDDEN);
    }
    match sign_in(reg, &f.account, &f.password).await {
        Ok((acc, secret)) => signed_in_at(&api, &acc, &secret),
        Err(Refused::Forbidden("password_change_required", _)) => {
            html("修改密码", password_page(Some("这是一次性密码：请先改成自己的密码。"), &f.account), StatusCode::FORBIDDEN)
        }
        Err(e) => html("单位登录", sign_in_page(Some(&refused_message(&e)), &f.account), super::review::status_of(&e)),
    }
}

/// Signs in the account `typed` names: a unit by its code, else a member by its login.
async fn sign_in(reg: &Registration, typed: &str, password: &str) -> Result<(Account, String), Refused> {
    match account_named(typed) {
        SignInName::Unit(uscc) => reg.page_sign_in(&uscc, password).await.map(|(u, secret)| (Account::unit(&u.uscc), secret)),
        SignInName::Member(login) => reg.member_sign_in(&login, password).await,
    }
}

pub async fn change_password(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let reg = match service(&api) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !session::same_origin(&headers) {
        return html("修改密码", password_page(Some("请从本站的页面修改密码。"), ""), StatusCode::FORBIDDEN);
    }
    if f.new_password != f.repeat {
        return html("修改密码", password_page(Some("两次输入的新密码不一样。"), &f.account), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let changed = match account_named(&f.account) {
        SignInName::Unit(uscc) => reg.change_password(&uscc, &f.password, &f.new_password).await,
        SignInName::Member(login) => reg.change_member_password(&login, &f.password, &f.new_password).await,
    };
    if let Err(e) = changed {
        let msg = match &e {
            Refused::Invalid(errors) => errors.first().map(|x| x.message.clone()).unwrap_or_default(),
            other => refused_message(other),
        };
        return html("修改密码", password_page(Some(&msg), &f.account), super::review::status_of(&e));
    }
    match sign_in(reg, &f.account, &f.new_password).await {
        Ok((acc, secret)) => signed_in_at(&api, &acc, &secret),
        Err(e) => html("单位登录", sign_in_page(Some(&refused_message(&e)), &f.account), StatusCode::UNAUTHORIZED),
    }
}

#[derive(serde::Deserialize)]
pub struct Token {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(t): Form<Token>,
) -> Response {
    if let Ok((s, _)) = gate(&api, addr, &headers).await {
        if !session::form_ok(&s, &headers, &t.csrf) {
            return html("退出", "<p class=\"error\">这个请求不是从本站的页面发出的。</p>".into(), StatusCode::FORBIDDEN);
        }
        if let Some(id) = session::cookie(&headers, COOKIE) {
            api.unit_sessions.end(id);
        }
    }
    let mut r = Redirect::to(PATH).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&session::clear_cookie(COOKIE, PATH)).expect("ASCII cookie"));
    r
}

pub(super) fn nav(s: &Session, acc: &Account) -> String {
    let members = if acc.member.is_none() { " · <a href=\"/unit/members\">填报人</a>" } else { "" };
    format!(
        "<p class=\"crumbs\"><a href=\"/unit/submissions\">我的登记</a> · <a href=\"/unit/submissions/new\">新登记</a>{members}\
         <form method=\"post\" action=\"/unit/logout\" class=\"logout\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{}\"><button>退出</button></form></p>",
        esc(&s.form_token)
    )
}

fn day(ms: i64) -> String {
    crate::clock::rfc3339_china(ms)[..16].replace('T', " ")
}

/// `/unit/submissions`: the unit's submissions, newest first; those changed since the
/// last visit (a cookie of this browser) marked.
pub async fn list(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let reg = api.registration.as_deref().expect("gated");
    let mut subs = match reg.submissions(Some(&acc), None).await {
        Ok(v) => v,
        Err(e) => return error(&s, &acc, &e),
    };
    subs.sort_by_key(|x| std::cmp::Reverse(x.updated_at));
    let seen: i64 = session::cookie(&headers, SEEN).and_then(|v| v.parse().ok()).unwrap_or(i64::MAX);
    let mut b = format!("{}<h1>我的登记</h1>", nav(&s, &acc));
    if subs.is_empty() {
        b.push_str("<p class=\"empty\">还没有登记。点“新登记”填写登记表。</p>");
    }
    let waiting = subs.iter().filter(|x| x.state == SubState::UnitReview).count();
    if acc.member.is_none() && waiting > 0 {
        let _ = write!(
            b,
            "<p class=\"notice unit-review\">有 {waiting} 份填报人的登记待单位审核：打开它，通过后报送登记机构，或退回填报人修改。</p>"
        );
    }
    b.push_str("<ul class=\"packages submissions\">");
    for x in &subs {
        let changed = if x.updated_at > seen { " <span class=\"badge new\">有新进展</span>" } else { "" };
        let title = if x.title().is_empty() { "（未填名称）" } else { x.title() };
        let filled = match (&acc.member, &x.member_name) {
            (None, Some(name)) => format!(" · 填报人 {}", esc(name)),
            _ => String::new(),
        };
        let _ = write!(
            b,
            "<li><a class=\"title\" href=\"/unit/submissions/{}\"><bdi>{}</bdi></a>{changed}<div class=\"meta\">{} · {}{filled}{}</div>{}</li>",
            esc(&x.id),
            esc(title),
            x.state.zh(),
            day(x.updated_at),
            x.reg_no.as_deref().map(|r| format!(" · 登记号 {}", esc(r))).unwrap_or_default(),
            x.reason
                .as_deref()
                .filter(|_| x.state == SubState::Returned)
                .map(|r| format!("<p class=\"error\">退回原因：{}</p>", esc(r)))
                .unwrap_or_default()
        );
    }
    b.push_str("</ul>");
    let mut r = html("我的登记", b, StatusCode::OK);
    let cookie = format!("{SEEN}={}; HttpOnly; SameSite=Strict; Path={PATH}; Max-Age=31536000", crate::clock::now_ms());
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII cookie"));
    r
}

pub(super) fn error(s: &Session, acc: &Account, e: &Refused) -> Response {
    html(
        "在线登记",
        format!("{}<p class=\"error\" role=\"alert\">{}</p>", nav(s, acc), esc(&crate::registration::zh_message(e))),
        super::review::status_of(e),
    )
}

/// The fields of the 登记表 in the spec's order: key, label, how it is entered.
enum Input {
    Text(usize),
    Lines(&'static str),
    Area,
    Choice(&'static [&'static str]),
    Number(&'static str),
    Date,
    Codes(&'static str),
}

const FORM: [(&str, &str, Input); 23] = [
    ("title", "成果名称", Input::Text(100)),
    ("kind", "成果类型", Input::Choice(&["应用技术", "基础理论", "软科学"])),
    ("first_unit", "第一完成单位", Input::Text(100)),
    ("units", "其他完成单位", Input::Lines("每行一个单位")),
    ("persons", "主要完成人", Input::Lines("每行一人，最多 15 人")),
    ("keywords", "关键词", Input::Lines("每行一个，最多 5 个")),
    ("discipline", "学科分类", Input::Codes("disciplines")),
    ("industry", "应用行业（应用技术必填）", Input::Codes("industries")),
    ("stage", "成果所处阶段（应用技术必填）", Input::Choice(&["初期阶段", "中期阶段", "成熟应用阶段"])),
    ("level", "成果水平", Input::Choice(&["国际领先", "国际先进", "国内领先", "国内先进", "未评价"])),
    ("trl", "技术就绪水平（1–9）", Input::Number("1")),
    ("task_source", "任务来源", Input::Choice(&["国家计划", "省部计划", "计划外"])),
    ("plan_no", "计划编号（计划外可不填）", Input::Text(50)),
    ("fiscal_funded", "财政资金", Input::Choice(&["是", "否"])),
    ("ip", "知识产权", Input::Lines("每行一项，如 发明专利:ZL202410000001.1")),
    ("transfer", "转化方式", Input::Choice(&["自行实施", "转让", "许可", "作价投资", "合作实施", "其他"])),
    ("abstract", "成果简介", Input::Area),
    ("funding", "研究经费（万元）", Input::Number("0.01")),
    ("benefit", "经济效益（万元）", Input::Number("0.01")),
    ("contact", "联系人", Input::Text(50)),
    ("phone", "联系电话", Input::Text(20)),
    ("secret", "密级（涉密成果不在网上登记）", Input::Choice(&["公开", "内部"])),
    ("embargo_until", "延期公开至（不延期可不填）", Input::Date),
];

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "是" } else { "否" }.into(),
        Some(Value::Array(a)) => a.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)).collect::<Vec<_>>().join("\n"),
        Some(other) => other.to_string(),
    }
}

/// The 登记表, filled with `body`, each rule error beside its field.
fn form(s: &Session, action: &str, body: &Map<String, Value>, errors: &[RowError]) -> String {
    let mut b = String::new();
    let unplaced: Vec<&RowError> = errors.iter().filter(|e| !FORM.iter().any(|(k, _, _)| e.field.as_deref() == Some(k))).collect();
    if !errors.is_empty() {
        let _ = write!(b, "<p class=\"error\" role=\"alert\">登记表有 {} 处要改，见各栏下的说明。</p>", errors.len());
    }
    for e in unplaced {
        let _ = write!(b, "<p class=\"error\">{}</p>", esc(&e.message));
    }
    let _ = write!(
        b,
        "<form class=\"package-form unit-form\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{}\">",
        esc(action),
        esc(&s.form_token)
    );
    if let Some(r) = body.get("reg_no").and_then(Value::as_str) {
        let _ = write!(
            b,
            "<input type=\"hidden\" name=\"reg_no\" value=\"{}\"><p>变更已登记的成果 <strong>{}</strong>：审核通过后成为它的新版本。</p>",
            esc(r),
            esc(r)
        );
    }
    for (key, label, input) in &FORM {
        let value = text_of(body.get(*key));
        let err: Vec<String> = errors.iter().filter(|e| e.field.as_deref() == Some(*key)).map(|e| esc(&e.message)).collect();
        let invalid = if err.is_empty() { "" } else { " aria-invalid=\"true\"" };
        let control = match input {
            Input::Text(max) => format!("<input name=\"{key}\" value=\"{}\" maxlength=\"{max}\"{invalid}>", esc(&value)),
            Input::Lines(hint) => format!("<textarea name=\"{key}\" rows=\"3\" placeholder=\"{hint}\"{invalid}>{}</textarea>", esc(&value)),
            Input::Area => format!("<textarea name=\"{key}\" rows=\"6\" maxlength=\"2000\"{invalid}>{}</textarea>", esc(&value)),
            Input::Choice(values) => {
                let items: Vec<(String, String)> = values.iter().map(|v| (v.to_string(), v.to_string())).collect();
                format!("<select name=\"{key}\"{invalid}>{}</select>", options("（未选）", &items, &value))
            }
            Input::Number(step) => format!("<input name=\"{key}\" value=\"{}\" inputmode=\"decimal\" type=\"number\" step=\"{step}\"{invalid}>", esc(&value)),
            Input::Date => format!("<input name=\"{key}\" value=\"{}\" type=\"date\"{invalid}>", esc(&value)),
            Input::Codes(list) => format!(
                "<input name=\"{key}\" value=\"{}\" list=\"{list}\" placeholder=\"输入代码，或输入名称从列表中选\" autocomplete=\"off\"{invalid}>",
                esc(&value)
            ),
        };
        let _ = write!(
            b,
            "<label class=\"field\" id=\"field-{key}\">{label}{control}{}</label>",
            err.iter().map(|m| format!("<small class=\"field-error\">{m}</small>")).collect::<String>()
        );
    }
    b.push_str(&datalists());
    b.push_str(
        "<p class=\"note\">先“保存草稿”，再上传证明材料，然后“提交审核”。</p>\
         <div class=\"buttons\"><button type=\"submit\" name=\"action\" value=\"draft\" class=\"secondary\">保存草稿</button>\
         <button type=\"submit\" name=\"action\" value=\"submit\">提交审核</button></div></form>",
    );
    b
}

/// Discipline and industry names to pick from (the input takes the code).
fn datalists() -> String {
    let mut b = String::from("<datalist id=\"disciplines\">");
    for (code, name) in huijiao_protocol::codes::disciplines() {
        let _ = write!(b, "<option value=\"{code}\">{}</option>", esc(name));
    }
    b.push_str("</datalist><datalist id=\"industries\">");
    for (code, name) in huijiao_protocol::codes::industries() {
        let _ = write!(b, "<option value=\"{code}\">{}</option>", esc(name));
    }
    b.push_str("</datalist>");
    b
}

/// The unit's object (spec §3 keys) from the form's fields.
fn body_of(fields: &HashMap<String, String>) -> Map<String, Value> {
    let mut m = Map::new();
    for (key, _, input) in &FORM {
        let v = fields.get(*key).map(|v| v.trim()).unwrap_or_default();
        if v.is_empty() {
            continue;
        }
        let value = match input {
            Input::Lines(_) => Value::Array(v.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| Value::String(l.into())).collect()),
            Input::Number(_) => {
                v.parse::<i64>().map(Value::from).or_else(|_| v.parse::<f64>().map(Value::from)).unwrap_or_else(|_| Value::String(v.into()))
            }
            _ => Value::String(v.into()),
        };
        m.insert(key.to_string(), value);
    }
    if let Some(r) = fields.get("reg_no").map(|r| r.trim()).filter(|r| !r.is_empty()) {
        m.insert("reg_no".into(), Value::String(r.into()));
    }
    if fields.get("op").map(String::as_str) == Some("withdraw") {
        m.insert("op".into(), Value::String("withdraw".into()));
    }
    m.entry("secret").or_insert_with(|| Value::String("公开".into()));
    m
}

/// `/unit/submissions/new`: an empty 登记表, or (`?reg_no=…`) a change of a registered
/// record, filled with it.
pub async fn new_form(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut body = Map::new();
    if let Some(reg_no) = q.get("reg_no") {
        let reg = api.registration.as_deref().expect("gated");
        let mine = reg.submissions(Some(&acc), Some(SubState::Registered)).await.unwrap_or_default();
        let Some(sub) = mine.into_iter().find(|x| x.reg_no.as_deref() == Some(reg_no.as_str())) else {
            return error(&s, &acc, &Refused::NotFound);
        };
        body = sub.body;
        body.insert("reg_no".into(), Value::String(reg_no.clone()));
    }
    let b = format!(
        "{}<h1>{}</h1>{}",
        nav(&s, &acc),
        if body.contains_key("reg_no") { "变更登记" } else { "新登记" },
        form(&s, "/unit/submissions", &body, &[])
    );
    html("登记表", b, StatusCode::OK)
}

/// A form's fields, with its token checked.
fn fields_of(s: &Session, headers: &HeaderMap, fields: &HashMap<String, String>) -> Result<(), Response> {
    if session::form_ok(s, headers, fields.get(FORM_TOKEN).map(String::as_str).unwrap_or_default()) {
        Ok(())
    } else {
        Err(html("在线登记", "<p class=\"error\">这个请求不是从本站的页面发出的。</p>".into(), StatusCode::FORBIDDEN))
    }
}

/// Saves (a new one, or edits) and, with `action=submit`, submits.
async fn save(api: &Api, s: &Session, acc: &Account, id: Option<&str>, fields: &HashMap<String, String>) -> Response {
    let reg = api.registration.as_deref().expect("gated");
    let mut body = body_of(fields);
    let submit = fields.get("action").map(String::as_str) == Some("submit");
    // A new submission is saved as a draft first, so that a refusal keeps nothing but
    // the form; then submitted.
    body.insert("draft".into(), Value::Bool(id.is_none() || !submit));
    let saved = reg.save(acc, id, body.clone()).await;
    // An existing one saved without `draft` was submitted by the save itself.
    let saved = match (saved, submit && id.is_none()) {
        (Ok(sub), true) => reg.submit(acc, &sub.id).await.map_err(|e| (Some(sub.id.clone()), e)),
        (Ok(sub), false) => Ok(sub),
        (Err(e), _) => Err((id.map(str::to_string), e)),
    };
    match saved {
        Ok(sub) => Redirect::to(&format!("/unit/submissions/{}", sub.id)).into_response(),
        Err((saved_id, Refused::Invalid(errors))) => {
            body.remove("draft");
            let action = saved_id.as_deref().map_or_else(|| "/unit/submissions".to_string(), |i| format!("/unit/submissions/{i}"));
            let mut b = format!("{}<h1>登记表</h1>", nav(s, acc));
            if let Some(i) = &saved_id {
                if id.is_none() {
                    let _ = write!(
                        b,
                        "<p class=\"notice\">已保存为草稿（<a href=\"/unit/submissions/{}\">查看</a>）；改正下面的问题后再提交。</p>",
                        esc(i)
                    );
                }
            }
            b.push_str(&form(s, &action, &body, &errors));
            html("登记表", b, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err((_, e)) => error(s, acc, &e),
    }
}

pub async fn create(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if let Err(r) = fields_of(&s, &headers, &fields) {
        return r;
    }
    save(&api, &s, &acc, None, &fields).await
}

pub async fn update(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if let Err(r) = fields_of(&s, &headers, &fields) {
        return r;
    }
    if fields.get("op").map(String::as_str) == Some("withdraw") {
        // A withdrawal request for a registered record: a new submission, submitted.
        let reg = api.registration.as_deref().expect("gated");
        let sub = match reg.submission(Some(&acc), &id).await {
            Ok(x) => x,
            Err(e) => return error(&s, &acc, &e),
        };
        let Some(reg_no) = sub.reg_no.filter(|_| sub.state == SubState::Registered) else { return error(&s, &acc, &Refused::NotFound) };
        let mut body = Map::new();
        body.insert("reg_no".into(), Value::String(reg_no));
        body.insert("op".into(), Value::String("withdraw".into()));
        return match reg.save(&acc, None, body).await {
            Ok(w) => Redirect::to(&format!("/unit/submissions/{}", w.id)).into_response(),
            Err(e) => error(&s, &acc, &e),
        };
    }
    save(&api, &s, &acc, Some(&id), &fields).await
}

/// `/unit/submissions/{id}`: its state, reason, evidence and decisions; the form while
/// it can be edited; the certificate, a change and a withdrawal once registered.
pub async fn show(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let reg = api.registration.as_deref().expect("gated");
    match reg.submission(Some(&acc), &id).await {
        Ok(sub) => html("登记", render(&s, &acc, &sub, None), StatusCode::OK),
        Err(e) => error(&s, &acc, &e),
    }
}

pub(super) fn render(s: &Session, acc: &Account, sub: &Submission, notice: Option<&str>) -> String {
    let title = if sub.title().is_empty() { "（未填名称）" } else { sub.title() };
    let mut b = format!("{}<h1><bdi>{}</bdi></h1>", nav(s, acc), esc(title));
    if let Some(n) = notice {
        let _ = write!(b, "<p class=\"error\" role=\"alert\">{}</p>", esc(n));
    }
    let _ = write!(b, "<p class=\"state\">状态：<strong id=\"state\">{}</strong>", sub.state.zh());
    if let Some(r) = &sub.reg_no {
        let _ = write!(b, " · 登记号 <strong class=\"reg-no\">{}</strong>", esc(r));
    }
    if let (None, Some(name)) = (&acc.member, &sub.member_name) {
        let _ = write!(b, " · 填报人 <bdi class=\"member\">{}</bdi>", esc(name));
    }
    b.push_str("</p>");
    if let (SubState::Returned, Some(r)) = (sub.state, &sub.reason) {
        let _ = write!(b, "<p class=\"error\">退回原因：<bdi>{}</bdi></p>", esc(r));
    }
    let token = esc(&s.form_token);
    if acc.member.is_none() && sub.state == SubState::UnitReview {
        // The unit's check of its member's submission (spec §6.1).
        let _ = write!(
            b,
            "<div class=\"unit-check\"><p>这份登记由填报人提交，等待本单位审核：核对内容和证明材料后，通过即报送登记机构；有问题就写明原因退回填报人。</p>\
             <form method=\"post\" action=\"/unit/submissions/{id}/pass\" class=\"decide pass\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">\
             <button type=\"submit\">通过，报送登记机构</button></form>\
             <form method=\"post\" action=\"/unit/submissions/{id}/return\" class=\"decide return\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">\
             <label>退回原因<textarea name=\"reason\" rows=\"3\" required maxlength=\"2000\"></textarea></label>\
             <button type=\"submit\" class=\"secondary\">退回填报人</button></form></div>",
            id = esc(&sub.id)
        );
    }
    if acc.member.is_some() && sub.state.editable() {
        b.push_str("<p class=\"note\">提交后先由本单位审核，通过后才报送登记机构。</p>");
    }
    if sub.state == SubState::Registered && sub.asked != "withdraw" {
        let _ = write!(
            b,
            "<p><a class=\"certificate-link\" href=\"/unit/submissions/{id}/certificate\">登记证书</a> · <a href=\"/unit/submissions/new?reg_no={}\">申请变更</a></p>\
             <form method=\"post\" action=\"/unit/submissions/{id}\" class=\"decide\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><input type=\"hidden\" name=\"op\" value=\"withdraw\">\
             <button type=\"submit\" class=\"secondary\">申请撤销登记</button><small>撤销也要经登记机构审核。</small></form>",
            esc(sub.reg_no.as_deref().unwrap_or_default()),
            id = esc(&sub.id)
        );
    }
    b.push_str("<h2>证明材料</h2>");
    if sub.attachments.is_empty() {
        b.push_str("<p class=\"note\">还没有上传。新登记和变更要有验收证书、评价证明、鉴定证书、知识产权证书、行业准入证书或标准之一；撤销不需要。</p>");
    } else {
        b.push_str("<ul class=\"evidence\">");
        for a in &sub.attachments {
            let _ = write!(
                b,
                "<li><a href=\"/unit/submissions/{}/attachments/{}\" target=\"_blank\" rel=\"noopener\">{}</a> · {} · {} KB</li>",
                esc(&sub.id),
                a.n,
                esc(&a.name),
                esc(&a.ty),
                a.size.div_ceil(1024)
            );
        }
        b.push_str("</ul>");
    }
    if sub.state.editable() {
        let types: Vec<(String, String)> = EVIDENCE_TYPES.iter().map(|t| (t.to_string(), t.to_string())).collect();
        let _ = write!(
            b,
            "<form class=\"decide upload\" method=\"post\" enctype=\"multipart/form-data\" action=\"/unit/submissions/{}/attachments\">\
             <input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><label>材料类型<select name=\"type\" required>{}</select></label>\
             <label>文件（PDF、OFD、JPEG 或 PNG，不超过 {} MB）<input type=\"file\" name=\"file\" required accept=\".pdf,.ofd,.jpg,.jpeg,.png\"></label>\
             <button type=\"submit\">上传</button></form>",
            esc(&sub.id),
            options("（请选择）", &types, ""),
            MAX_ATTACHMENT_BYTES >> 20
        );
        b.push_str("<h2>登记表</h2>");
        b.push_str(&form(s, &format!("/unit/submissions/{}", sub.id), &sub.body, &[]));
    } else {
        b.push_str("<h2>登记内容</h2><table class=\"kv\">");
        for (key, label, _) in &FORM {
            let v = text_of(sub.body.get(*key));
            if !v.is_empty() {
                let _ = write!(b, "<tr><th>{label}</th><td><bdi>{}</bdi></td></tr>", esc(&v).replace('\n', "；"));
            }
        }
        b.push_str("</table>");
    }
    if !sub.decisions.is_empty() {
        b.push_str("<h2>审核记录</h2><ul>");
        for d in &sub.decisions {
            let what = match d.action.as_str() {
                "approve" => "登记机构审核通过",
                "return" => "登记机构退回",
                "pass" => "单位审核通过，报送登记机构",
                "unit_return" => "单位退回",
                _ => "提交",
            };
            let _ =
                write!(b, "<li>{} · {what}{}</li>", day(d.at), d.reason.as_deref().map(|r| format!("：{}", esc(r))).unwrap_or_default());
        }
        b.push_str("</ul>");
    }
    b
}

/// A part of a form upload: its file name (for a file) and its bytes.
type Part = (Option<String>, Vec<u8>);

/// A `multipart/form-data` body's fields by name.
fn multipart(content_type: &str, body: &[u8]) -> Option<HashMap<String, Part>> {
    let boundary = content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?.trim_matches('"');
    let delim = format!("--{boundary}").into_bytes();
    let mut out = HashMap::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    rest = &rest[find(rest, &delim)? + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(out);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        rest = &rest[head_end + 4..];
        let end = find(rest, &[b"\r\n".as_slice(), &delim].concat())?;
        let content = rest[..end].to_vec();
        rest = &rest[end + 2 + delim.len()..];
        let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let param =
            |k: &str| disposition.split(';').find_map(|p| p.trim().strip_prefix(&format!("{k}=")).map(|v| v.trim_matches('"').to_string()));
        out.insert(param("name")?, (param("filename"), content));
    }
}

pub async fn upload(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let reg = api.registration.as_deref().expect("gated");
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ATTACHMENT_BYTES as usize + 64 * 1024).await else {
        return match reg.submission(Some(&acc), &id).await {
            Ok(sub) => html(
                "登记",
                render(&s, &acc, &sub, Some(&format!("文件太大：每个不超过 {} MB。", MAX_ATTACHMENT_BYTES >> 20))),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            Err(e) => error(&s, &acc, &e),
        };
    };
    let Some(parts) = multipart(&ct, &bytes) else { return error(&s, &acc, &Refused::BadRequest("not a form upload".into())) };
    let text = |k: &str| parts.get(k).map(|(_, v)| String::from_utf8_lossy(v).to_string()).unwrap_or_default();
    if !session::form_ok(&s, &headers, &text(FORM_TOKEN)) {
        return html("在线登记", "<p class=\"error\">这个请求不是从本站的页面发出的。</p>".into(), StatusCode::FORBIDDEN);
    }
    let Some((Some(name), file)) = parts.get("file").cloned() else { return error(&s, &acc, &Refused::BadRequest("no file".into())) };
    match reg.add_attachment(&acc, &id, &text("type"), &name, file).await {
        Ok(_) => Redirect::to(&format!("/unit/submissions/{id}")).into_response(),
        Err(e) => {
            let msg = match &e {
                Refused::Invalid(errors) => errors.first().map(|x| x.message.clone()).unwrap_or_default(),
                other => crate::registration::zh_message(other),
            };
            match reg.submission(Some(&acc), &id).await {
                Ok(sub) => html("登记", render(&s, &acc, &sub, Some(&msg)), super::review::status_of(&e)),
                Err(e) => error(&s, &acc, &e),
            }
        }
    }
}

pub async fn attachment(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, n)): Path<(String, u32)>,
) -> Response {
    let (_, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    crate::http::registration::attachment(api.registration.as_deref().expect("gated"), &id, n, Some(&acc)).await
}

pub async fn certificate(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    match api.registration.as_deref().expect("gated").certificate(Some(&acc), &id).await {
        Ok(c) => html("科技成果登记证书", super::certificate::render(&c, &api.site(&headers)), StatusCode::OK),
        Err(e) => error(&s, &acc, &e),
    }
}
