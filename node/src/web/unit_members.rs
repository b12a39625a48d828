//! The unit account's own pages for its members (填报人, spec §6.1): `/unit/members`
//! lists them and creates one (its login and one-time password shown once, to be
//! handed to the researcher), disables, enables or gives a new one-time password; and
//! the unit's check of a member's submission — passed on to the office, or returned to
//! the member with a reason. A member signed in sees none of this (403).

use super::html::esc;
use super::session::{self, Session, FORM_TOKEN};
use super::unit::{error, gate, html, nav, render};
use crate::http::state::Api;
use crate::registration::{Account, Refused};
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(serde::Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    reason: String,
}

fn not_from_here() -> Response {
    html("在线登记", "<p class=\"error\">这个请求不是从本站的页面发出的。</p>".into(), StatusCode::FORBIDDEN)
}

fn units_only(s: &Session, acc: &Account) -> Response {
    html("填报人", format!("{}<h1>填报人</h1><p class=\"error\">只有单位账户能管理填报人。</p>", nav(s, acc)), StatusCode::FORBIDDEN)
}

/// A form the unit account posts: signed in as the unit (not a member), from this
/// node's own page.
async fn unit_form(api: &Api, addr: SocketAddr, headers: &HeaderMap, csrf: &str) -> Result<(Session, Account), Response> {
    let (s, acc) = gate(api, addr, headers).await?;
    if acc.member.is_some() {
        return Err(units_only(&s, &acc));
    }
    if !session::form_ok(&s, headers, csrf) {
        return Err(not_from_here());
    }
    Ok((s, acc))
}

/// `/unit/members`: the unit's members and the form to add one.
pub async fn list(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let (s, acc) = match gate(&api, addr, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if acc.member.is_some() {
        return units_only(&s, &acc);
    }
    page(&api, &s, &acc, None, StatusCode::OK).await
}

async fn page(api: &Api, s: &Session, acc: &Account, notice: Option<String>, status: StatusCode) -> Response {
    let reg = api.registration.as_deref().expect("gated");
    let members = match reg.members(acc).await {
        Ok(m) => m,
        Err(e) => return error(s, acc, &e),
    };
    let token = esc(&s.form_token);
    let mut b = format!(
        "{}<h1>填报人</h1><p>给本单位的科研人员开设填报人账号：他们各自填写登记表，提交后先到这里由单位审核，通过后才报送登记机构。</p>",
        nav(s, acc)
    );
    if let Some(n) = notice {
        b.push_str(&n);
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/unit/members\" class=\"decide add-member\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">\
         <label>姓名<input name=\"name\" required maxlength=\"50\"></label>\
         <label>账号（可不填，自动生成）<input name=\"login\" maxlength=\"40\" pattern=\"[a-z0-9._-]{{2,40}}\" autocapitalize=\"none\"></label>\
         <button type=\"submit\">开设填报人账号</button></form>"
    );
    if members.is_empty() {
        b.push_str("<p class=\"empty\">还没有填报人。</p>");
    } else {
        b.push_str("<ul class=\"packages members\">");
        for m in &members {
            let state = if m.disabled {
                "已停用"
            } else if m.must_change {
                "一次性密码未修改"
            } else {
                "正常"
            };
            let (action, label) = if m.disabled { ("enable", "启用") } else { ("disable", "停用") };
            let _ = write!(
                b,
                "<li><bdi class=\"title\">{}</bdi><div class=\"meta\">账号 <code>{login}</code> · {state}</div>\
                 <form method=\"post\" action=\"/unit/members/{login}/{action}\" class=\"inline\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><button type=\"submit\" class=\"secondary\">{label}</button></form>\
                 <form method=\"post\" action=\"/unit/members/{login}/reset\" class=\"inline\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><button type=\"submit\" class=\"secondary\">重设密码</button></form></li>",
                esc(&m.name),
                login = esc(&m.login)
            );
        }
        b.push_str("</ul>");
    }
    html("填报人", b, status)
}

fn one_time(name: &str, login: &str, password: &str) -> String {
    format!(
        "<p class=\"notice new-member\">填报人 <bdi>{}</bdi> 的账号 <code class=\"login\">{}</code>，一次性密码 <code class=\"otp\">{}</code>\
         （只显示这一次，请交给本人；第一次登录时必须修改）。登录地址：本站的 /unit。</p>",
        esc(name),
        esc(login),
        esc(password)
    )
}

fn failed(e: &Refused) -> String {
    format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&crate::registration::zh_message(e)))
}

/// `POST /unit/members`: a new member; its login and one-time password shown once.
pub async fn add(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<MemberForm>,
) -> Response {
    let (s, acc) = match unit_form(&api, addr, &headers, &f.csrf).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let reg = api.registration.as_deref().expect("gated");
    let login = Some(f.login.as_str()).filter(|l| !l.trim().is_empty());
    match reg.add_member(&acc, &f.name, login).await {
        Ok(m) => page(&api, &s, &acc, Some(one_time(&m.name, &m.login, &m.password)), StatusCode::CREATED).await,
        Err(e) => page(&api, &s, &acc, Some(failed(&e)), super::review::status_of(&e)).await,
    }
}

/// `POST /unit/members/{login}/{disable|enable|reset}`.
pub async fn action(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((login, action)): Path<(String, String)>,
    Form(f): Form<MemberForm>,
) -> Response {
    let (s, acc) = match unit_form(&api, addr, &headers, &f.csrf).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let reg = api.registration.as_deref().expect("gated");
    let done = match action.as_str() {
        "disable" | "enable" => reg
            .set_member_disabled(&acc, &login, action == "disable")
            .await
            .map(|()| format!("<p class=\"notice\">{} 已{}。</p>", esc(&login), if action == "disable" { "停用" } else { "启用" })),
        "reset" => reg.reset_member(&acc, &login).await.map(|m| one_time(&m.name, &m.login, &m.password)),
        _ => Err(Refused::NotFound),
    };
    match done {
        Ok(notice) => page(&api, &s, &acc, Some(notice), StatusCode::OK).await,
        Err(e) => page(&api, &s, &acc, Some(failed(&e)), super::review::status_of(&e)).await,
    }
}

/// `POST /unit/submissions/{id}/pass`: the unit passes a member's submission on.
pub async fn pass(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<MemberForm>,
) -> Response {
    check(&api, addr, &headers, &id, "pass", &f).await
}

/// `POST /unit/submissions/{id}/return`: the unit returns it to its member.
pub async fn return_to_member(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<MemberForm>,
) -> Response {
    check(&api, addr, &headers, &id, "return", &f).await
}

/// The unit's check of a member's submission.
async fn check(api: &Api, addr: SocketAddr, headers: &HeaderMap, id: &str, decision: &str, f: &MemberForm) -> Response {
    let (s, acc) = match gate(api, addr, headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !session::form_ok(&s, headers, &f.csrf) {
        return not_from_here();
    }
    let reg = api.registration.as_deref().expect("gated");
    let done = match decision {
        "pass" => reg.unit_pass(&acc, id).await,
        "return" => reg.unit_return(&acc, id, &f.reason).await,
        _ => Err(Refused::NotFound),
    };
    match done {
        Ok(_) => Redirect::to(&format!("/unit/submissions/{id}")).into_response(),
        Err(e) => {
            let msg = match &e {
                Refused::Invalid(errors) => {
                    errors.iter().map(|x| format!("{}：{}", x.field.as_deref().unwrap_or("—"), x.message)).collect::<Vec<_>>().join("；")
                }
                Refused::Forbidden(..) => "只有单位账户能审核填报人的登记。".into(),
                other => crate::registration::zh_message(other),
            };
            match reg.submission(Some(&acc), id).await {
                Ok(sub) => html("登记", render(&s, &acc, &sub, Some(&msg)), super::review::status_of(&e)),
                Err(e) => error(&s, &acc, &e),
            }
        }
    }
}
