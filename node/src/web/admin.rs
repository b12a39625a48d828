//! `/admin`: the operators' view of this node and the nodes below it.
//!
//! Signing in takes the operators' token (the `[http] token_file`), typed once into
//! a form; the browser then holds a random session id in a cookie (HttpOnly,
//! SameSite=Strict, path /admin) — never the token — and the server the session
//! ([`super::session`]: 30 minutes idle, 12 hours in all, ended by 退出 and by a new
//! token). Without a token file the page says how to set one; being on localhost alone
//! is not enough, since the API may sit behind a proxy on the same machine.

use super::html::{esc, page};
use super::session::{self, Session, FORM_TOKEN};

use crate::commands::status::Snapshot;
use crate::http::state::{limit, Api, ApiError};
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

const COOKIE: &str = "hj_admin";
const PATH: &str = "/admin";

/// The operator's live session, when this request carries one.
pub(super) fn signed_in(api: &Api, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = session::cookie(headers, COOKIE)?;
    // An operator's session holds while the token is the one it signed in with; a
    // named reviewer's while its password is.
    let secret = match api.sessions.subject(id)?.strip_prefix("reviewer:") {
        Some(login) => api.registration.as_deref()?.reviewer_key(login)?,
        None => api.token_value()?,
    };
    api.sessions.get(id, &secret, Instant::now()).map(|s| (id.to_string(), s))
}

/// Whether the session is the operators' (not a named reviewer's).
pub(super) fn is_operator(s: &Session) -> bool {
    s.subject == "operator"
}

#[derive(serde::Deserialize)]
pub struct Login {
    #[serde(default)]
    token: String,
    /// A named reviewer's login and password (instead of the token).
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    repeat: String,
}

fn reviewer_password_form(error: Option<&str>, login: &str) -> String {
    format!(
        "<h1>审核员修改密码</h1><p>第一次登录先把一次性密码改成自己的密码：至少 10 个字符，不含登录名。</p>{}\
         <form class=\"login\" method=\"post\" action=\"/admin/password\">\
         <label>登录名<input name=\"login\" value=\"{}\" required autocomplete=\"username\"></label>\
         <label>一次性密码（或现在的密码）<input type=\"password\" name=\"password\" required autocomplete=\"current-password\"></label>\
         <label>新密码<input type=\"password\" name=\"new_password\" required minlength=\"10\" autocomplete=\"new-password\"></label>\
         <label>再输一遍新密码<input type=\"password\" name=\"repeat\" required minlength=\"10\" autocomplete=\"new-password\"></label>\
         <button type=\"submit\">修改并登录</button></form>",
        error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default(),
        esc(login)
    )
}

fn reviewer_signed_in(api: &Api, login: &str, secret: &str) -> Response {
    let id = api.sessions.open(&format!("reviewer:{login}"), secret, Instant::now());
    let mut r = Redirect::to("/admin/review").into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&session::set_cookie(COOKIE, &id, PATH)).expect("ASCII cookie"));
    r
}

fn refused_text(e: &crate::registration::Refused) -> String {
    match e {
        crate::registration::Refused::Unauthorized => "登录名或密码不对。".into(),
        crate::registration::Refused::TooMany(s) => format!("密码错误次数太多，请 {} 分钟后再试。", s.div_ceil(60)),
        crate::registration::Refused::Invalid(errors) => errors.first().map(|x| x.message.clone()).unwrap_or_default(),
        other => crate::registration::zh_message(other),
    }
}

/// A named reviewer signs in (`/admin/login` with a login): to the review queue, or
/// first to the password change.
async fn reviewer_login(api: &Api, f: &Login) -> Response {
    let Some(reg) = api.registration.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            Html(page("管理", "admin", &login_form(Some("本节点不办理在线登记，没有审核员账号。"), api.has_token()))),
        )
            .into_response();
    };
    match reg.reviewer_sign_in(&f.login, &f.password).await {
        Ok((r, secret)) => reviewer_signed_in(api, &r.login, &secret),
        Err(crate::registration::Refused::Forbidden("password_change_required", _)) => (
            StatusCode::FORBIDDEN,
            Html(page("管理", "admin", &reviewer_password_form(Some("这是一次性密码：请先改成自己的密码。"), &f.login))),
        )
            .into_response(),
        Err(e) => (
            StatusCode::from_u16(e.page_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Html(page("管理", "admin", &login_form(Some(&refused_text(&e)), api.has_token()))),
        )
            .into_response(),
    }
}

/// `/admin/password`: a named reviewer's password change, then signed in.
pub async fn reviewer_password(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Login>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    if !session::same_origin(&headers) {
        return forbidden("请从本站的管理页修改密码。");
    }
    let Some(reg) = api.registration.as_deref() else { return forbidden("本节点不办理在线登记。") };
    if f.new_password != f.repeat {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(page("管理", "admin", &reviewer_password_form(Some("两次输入的新密码不一样。"), &f.login))),
        )
            .into_response();
    }
    if let Err(e) = reg.change_reviewer_password(&f.login, &f.password, &f.new_password).await {
        return (
            StatusCode::from_u16(e.page_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Html(page("管理", "admin", &reviewer_password_form(Some(&refused_text(&e)), &f.login))),
        )
            .into_response();
    }
    match reg.reviewer_sign_in(&f.login, &f.new_password).await {
        Ok((r, secret)) => reviewer_signed_in(&api, &r.login, &secret),
        Err(e) => {
            (StatusCode::UNAUTHORIZED, Html(page("管理", "admin", &login_form(Some(&refused_text(&e)), api.has_token())))).into_response()
        }
    }
}

fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(page("管理", "admin", &format!("<h1>管理</h1><p class=\"error\">{}</p><p><a href=\"/admin\">回到管理页</a></p>", esc(why)))),
    )
        .into_response()
}

pub async fn login(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Login>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    if !session::same_origin(&headers) {
        tracing::warn!(client = %addr, "admin sign-in refused: posted from another site");
        return forbidden("请从本站的管理页登录。");
    }
    if !f.login.trim().is_empty() {
        return reviewer_login(&api, &f).await;
    }
    let Some(token) = api.token_value().filter(|_| api.token_matches(&f.token)) else {
        tracing::warn!(client = %addr, "admin sign-in refused: wrong token");
        return (StatusCode::UNAUTHORIZED, Html(page("管理", "admin", &login_form(Some("口令不对。"), api.has_token())))).into_response();
    };
    let id = api.sessions.open("operator", &token, Instant::now());
    let mut r = Redirect::to(PATH).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&session::set_cookie(COOKIE, &id, PATH)).expect("ASCII cookie"));
    r
}

#[derive(serde::Deserialize)]
pub struct Logout {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(State(api): State<Arc<Api>>, headers: HeaderMap, Form(f): Form<Logout>) -> Response {
    if let Some((id, s)) = signed_in(&api, &headers) {
        if !session::form_ok(&s, &headers, &f.csrf) {
            return forbidden("这个退出请求不是从本站的管理页发出的。");
        }
        api.sessions.end(&id);
    }
    let mut r = Redirect::to(PATH).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&session::clear_cookie(COOKIE, PATH)).expect("ASCII cookie"));
    r
}

fn login_form(error: Option<&str>, has_token: bool) -> String {
    let reviewer = "<h2>审核员登录</h2><form class=\"login reviewer-login\" method=\"post\" action=\"/admin/login\">\
         <label>登录名<input name=\"login\" autocomplete=\"username\" required></label>\
         <label>密码<input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">登录</button></form>";
    let error = error.map(|e| format!("<p class=\"error\">{}</p>", esc(e))).unwrap_or_default();
    if !has_token {
        return format!(
            "<h1>管理</h1>{error}<p class=\"error\">本节点没有设置运维口令。请在配置的 <code>[http]</code> 中设置 <code>token_file</code>（一行至少 16 个字符，文件权限 0600）并重新启动。</p>{reviewer}"
        );
    }
    format!(
        "<h1>管理</h1>{error}<form class=\"login\" method=\"post\" action=\"/admin/login\"><label>运维口令<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label><button type=\"submit\">登录</button></form>{reviewer}"
    )
}

pub async fn page_handler(api: Arc<Api>, addr: SocketAddr, headers: HeaderMap) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    let Some((_, session)) = signed_in(&api, &headers) else {
        let mut r = Html(page("管理", "admin", &login_form(None, api.has_token()))).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(r);
    };
    let cfg = api.cfg.clone();
    let body = tokio::task::spawn_blocking(move || render(&cfg, &session))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("admin page: {e}")))?
        .map_err(ApiError::Internal)?;
    let mut r = Html(page("管理", "admin", &body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

pub async fn show(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    page_handler(api, addr, headers).await.unwrap_or_else(super::error_page)
}

/// A conflict's reason (as the store keeps it, in English) for the Chinese page.
fn conflict_reason(reason: &str) -> String {
    let zh = if reason.starts_with("a withdrawal of a record this node never held") {
        "撤销了本节点从未保存过的成果"
    } else if reason.starts_with("another origin holds this reg_no") {
        "这个登记号已由另一个来源节点登记（只有来源节点能修改它）"
    } else if reason.starts_with("the same version with other content") {
        "同一版本号、内容不同：来源节点的存储是从较旧的备份恢复的，请在那里运行 huijiao recover"
    } else if reason.starts_with("the record was withdrawn") {
        "这项成果已撤销，撤销后不能再登记"
    } else {
        return reason.to_string();
    };
    format!("{zh}（{reason}）")
}

fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "从未".into() };
    let secs = ((crate::clock::now_ms() - ms) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs} 秒前"),
        60..=3599 => format!("{} 分钟前", secs / 60),
        3600..=86_399 => format!("{} 小时 {} 分前", secs / 3600, secs / 60 % 60),
        _ => format!("{} 天前", secs / 86_400),
    }
}

fn at(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".into(), crate::clock::rfc3339_china)
}

/// The whole admin page body (blocking: reads the store).
///
/// One piece: the page reads top to bottom in the order an operator reads it, each section
/// a few lines of markup over one reading of the store.
fn render(cfg: &crate::config::Config, session: &Session) -> anyhow::Result<String> {
    let snap = Snapshot::gather(cfg)?;
    let reader = crate::store::Reader::open(&cfg.db_path())?;
    let table = &cfg.regions;
    let name = |id: &str| table.get(id).map(|r| r.name.clone()).unwrap_or_default();
    let s = &snap.store;
    let mut b = String::new();
    // Refreshes itself every 10 s (app.js reads data-refresh).
    let _ = write!(
        b,
        "<div data-refresh=\"10\"></div><h1>节点 {} {}</h1><form method=\"post\" action=\"/admin/logout\" class=\"logout\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{}\"><button>退出</button></form>",
        esc(&s.node_id),
        esc(&name(&s.node_id)),
        esc(&session.form_token)
    );
    if let Some(q) = &snap.review {
        let oldest = q.oldest_submitted_at.map(|t| format!("，最早的已等待 {}", ago(Some(t)).trim_end_matches('前'))).unwrap_or_default();
        let _ = write!(
            b,
            r#"<p class="review"><a href="/admin/review">在线登记审核：{} 份待审核{oldest}</a> · <a href="/admin/units">单位账户</a></p>"#,
            q.waiting
        );
    }
    if cfg.http.is_some() {
        b.push_str(r#"<p class="review"><a href="/admin/packages">科技成果包：定义、预览、发布</a></p>"#);
    }
    let cert = cfg.tls.as_ref().map(|t| crate::pki::expiry_of_file(&t.cert));
    let cert_text = match cert {
        Some(Ok(secs)) => {
            let days = (secs * 1000 - crate::clock::now_ms()) / 86_400_000;
            let class = if days < 30 { " class=\"warn\"" } else { "" };
            format!("<span{class}>{days} 天后到期（{}）</span>", esc(&at(Some(secs * 1000))))
        }
        Some(Err(e)) => format!("<span class=\"warn\">读不出证书：{}</span>", esc(&format!("{e:#}"))),
        None => "无（未配置 TLS）".into(),
    };
    let backlog = snap.uplink.as_ref().map(|u| (s.last_seq - u.acked).max(0)).unwrap_or(0);
    let oldest = snap.uplink.as_ref().and_then(|u| reader.accepted_at_after(u.acked).ok().flatten());
    let _ = write!(
        b,
        "<section><h2>本节点</h2><div class=\"wide\"><table class=\"kv\">\
<tr><th>成果</th><td id=\"records\">{}（其中撤销 {}）</td></tr>\
<tr><th>最近变更</th><td>{}</td></tr><tr><th>收件箱待处理</th><td>{}</td></tr>\
<tr><th>上级</th><td>{}</td></tr><tr><th>未同步</th><td>{backlog} 条{}</td></tr>\
<tr><th>证书</th><td>{cert_text}</td></tr></table></div></section>",
        s.records,
        s.withdrawn,
        esc(&at(s.last_change_at)),
        snap.waiting,
        match &snap.uplink {
            Some(u) => format!(
                "{} {} — {}{}",
                esc(&u.parent),
                esc(&name(&u.parent)),
                esc(&u.state),
                u.last_error
                    .as_deref()
                    .map(|e| format!("<br><span class=\"warn\">最近错误（{}）：{}</span>", esc(&at(u.last_error_at)), esc(e)))
                    .unwrap_or_default()
            ),
            None => "无（国家节点或独立节点）".into(),
        },
        oldest.map(|t| format!("，最早的一条产生于 {}", esc(&ago(Some(t))))).unwrap_or_default(),
    );
    if snap.recover_needed.is_some() {
        b.push_str("<p class=\"error\" role=\"alert\">本节点的存储是从较旧的备份恢复的：收件箱暂停处理，请先停止节点并运行 <code>huijiao recover</code>，取回上级保存的本节点成果后再启动。</p>");
    }
    b.push_str("<section><h2>下级节点（整棵子树）</h2>");
    if snap.subtree.len() <= 1 {
        b.push_str("<p>还没有下级节点连接过。</p>");
    } else {
        b.push_str("<div class=\"wide\"><table class=\"nodes\"><thead><tr><th>节点</th><th>状态</th><th>成果</th><th>未同步</th><th>证书</th><th>最近错误</th></tr></thead><tbody>");
        let now = crate::clock::now_ms();
        // Parents before children, indented by depth.
        fn depth(nodes: &[huijiao_protocol::wire::NodeHealth], n: &huijiao_protocol::wire::NodeHealth) -> usize {
            let mut d = 0;
            let mut at = n.parent.clone();
            while let Some(p) = nodes.iter().find(|x| x.node == at) {
                d += 1;
                if d > 8 {
                    break;
                }
                at = p.parent.clone();
            }
            d
        }
        let mut order: Vec<&huijiao_protocol::wire::NodeHealth> = Vec::new();
        fn visit<'a>(nodes: &'a [huijiao_protocol::wire::NodeHealth], at: &str, out: &mut Vec<&'a huijiao_protocol::wire::NodeHealth>) {
            for n in nodes.iter().filter(|n| n.parent == at && n.node != at) {
                out.push(n);
                visit(nodes, &n.node, out);
            }
        }
        visit(&snap.subtree, &s.node_id, &mut order);
        for n in order {
            let refused = snap
                .children
                .iter()
                .find(|c| c.child == n.node)
                .and_then(|c| crate::commands::status::refused_since_seen(&snap.refusals, c));
            let index = snap.subtree.iter().position(|x| std::ptr::eq(x, n)).unwrap_or(0);
            let (state, class) = if let Some(since) = crate::health::unknown_since(&snap.subtree, index) {
                (format!("未知（上级已静默 {}）", ago(Some(since))), "quiet")
            } else if n.connected {
                ("在线".to_string(), "ok")
            } else if let Some(r) = refused {
                (format!("被拒绝：{}（{} 次）", r.reason, r.count), "bad")
            } else {
                (format!("静默 {}", ago(n.last_seen_at)), "quiet")
            };
            let backlog = if n.backlog > 0 {
                format!("{} 条，最早 {}", n.backlog, ago(n.backlog_oldest_at))
            } else if n.reported_at > 0 {
                "0".into()
            } else {
                "—".into()
            };
            let cert = n.cert_expires_at.map_or_else(
                || "—".to_string(),
                |t| {
                    let days = (t - now).div_euclid(86_400_000);
                    if days < crate::pki::EXPIRY_WARNING_DAYS {
                        format!("<span class=\"warn\">{days} 天后到期</span>")
                    } else {
                        format!("{days} 天")
                    }
                },
            );
            let pad = "　".repeat(depth(&snap.subtree, n).saturating_sub(1));
            let _ = write!(
                b,
                "<tr data-node=\"{}\" data-state=\"{class}\"><td>{pad}{} {}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{cert}</td><td>{}</td></tr>",
                esc(&n.node),
                esc(&n.node),
                esc(&name(&n.node)),
                esc(&state),
                if n.reported_at > 0 { n.records.to_string() } else { "—".into() },
                esc(&backlog),
                esc(n.uplink_error.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</tbody></table></div>");
    }
    if !snap.refusals.is_empty() {
        b.push_str("<h3>拒绝的连接</h3><div class=\"wide\"><table><tr><th>身份</th><th>原因</th><th>次数</th><th>最近</th></tr>");
        for r in &snap.refusals {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.identity),
                esc(&r.reason),
                r.count,
                esc(&ago(Some(r.last_at)))
            );
        }
        b.push_str("</table></div>");
    }
    b.push_str("</section>");
    let conflicts = reader.quarantine()?;
    if !conflicts.is_empty() {
        b.push_str("<section><h2>冲突（同一登记号来自两个来源）</h2>");
        for q in conflicts.iter().take(50) {
            let held = reader.get(&q.reg_no)?;
            let theirs: Option<serde_json::Value> = q.body.as_deref().and_then(|t| serde_json::from_str(t).ok());
            let mine: Option<serde_json::Value> = held.as_ref().and_then(|h| serde_json::to_value(&h.record).ok());
            let _ = write!(
                b,
                "<div class=\"conflict wide\"><h3>{}</h3><p>{}</p><table><tr><th>字段</th><th>本节点保存（来源 {}）</th><th>搁置的（来源 {}，第 {} 版，经 {}）</th></tr>",
                esc(&q.reg_no),
                esc(&conflict_reason(&q.reason)),
                esc(held.as_ref().map_or("—", |h| h.origin.as_str())),
                esc(&q.origin),
                q.version,
                esc(&q.from_child)
            );
            for f in huijiao_protocol::fields::Field::ALL {
                let a = mine.as_ref().map(|v| super::text_of(&v[f.key()])).unwrap_or_default();
                let c = theirs.as_ref().map(|v| super::text_of(&v[f.key()])).unwrap_or_default();
                if a.is_empty() && c.is_empty() {
                    continue;
                }
                let class = if a != c { " class=\"diff\"" } else { "" };
                let _ = write!(b, "<tr{class}><th>{}</th><td>{}</td><td>{}</td></tr>", esc(f.zh()), esc(&a), esc(&c));
            }
            b.push_str("</table></div>");
        }
        b.push_str("</section>");
    }
    let files = reader.recent_files(30)?;
    b.push_str("<section><h2>最近的文件</h2>");
    if files.is_empty() {
        b.push_str("<p>还没有处理过文件。</p>");
    } else {
        let rows: u64 = files.iter().map(|f| f.3["rows"].as_u64().unwrap_or(0)).sum();
        let rejected: u64 = files.iter().map(|f| f.3["rejected"].as_u64().unwrap_or(0)).sum();
        let rate = if rows == 0 { 0.0 } else { rejected as f64 * 100.0 / rows as f64 };
        let _ = write!(b, "<p>最近 {} 个文件：{rows} 行，退回 {rejected} 行（{rate:.1}%）。</p>", files.len());
        b.push_str("<div class=\"wide\"><table class=\"files\"><tr><th>文件</th><th>收到</th><th>结果</th></tr>");
        for (file, received, _, report) in &files {
            let verdict = match report["refused"]["code"].as_str() {
                Some(code) => format!("整个文件被拒：{code}"),
                None => format!("{} 行，接收 {}，退回 {}", report["rows"], report["accepted"], report["rejected"]),
            };
            let class = if report["refused"].is_object() || report["rejected"].as_u64().unwrap_or(0) > 0 { " class=\"warn\"" } else { "" };
            let _ = write!(b, "<tr><td>{}</td><td>{}</td><td{class}>{}</td></tr>", esc(file), esc(&at(Some(*received))), esc(&verdict));
        }
        b.push_str("</table></div>");
    }
    b.push_str("</section>");
    Ok(b)
}
