//! The operators' pages of 科技成果包 in `/admin`, behind its sign-in: every package
//! with its state, a form that defines one (title, field, description, a saved search
//! with the catalogue's filters, records included and excluded by number), the preview
//! of what the next version would hold, publish and retire. Every form carries the
//! session's form token; the same checks as the operator API (`crate::packages`).

// The gates return the early answer itself (a `Response`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::html::{enc, esc, options, page};
use super::session::{self, Session, FORM_TOKEN};
use crate::http::state::{limit, Api};
use crate::packages::{Preview, Refused, FIELDS};
use crate::store::packages::Package;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::{Map, Value};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// The query keys the form has a field for; any other goes in 其他条件.
const QUERY_FIELDS: [(&str, &str, &str); 8] = [
    ("q", "检索词", "如 水稻 病虫害"),
    ("region", "地区", "代码或名称，如 42、湖北省"),
    ("kind", "成果类型", ""),
    ("stage", "所处阶段", ""),
    ("industry", "应用行业", "GB/T 4754 代码，如 A、C27"),
    ("discipline", "学科分类", "GB/T 13745 代码，如 210"),
    ("transfer", "转化方式", ""),
    ("reg_date", "登记日期", "如 2024-01-01..2025-12-31"),
];

fn gate(api: &Api, addr: SocketAddr, headers: &HeaderMap) -> Result<Session, Response> {
    limit(api, addr).map_err(IntoResponse::into_response)?;
    match super::admin::signed_in(api, headers) {
        Some((_, s)) => Ok(s),
        None => Err(Redirect::to("/admin").into_response()),
    }
}

fn html(body: String, status: StatusCode) -> Response {
    let mut r = (status, Html(page("科技成果包管理", "admin", &body))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn nav() -> &'static str {
    "<p class=\"crumbs\"><a href=\"/admin\">管理</a> · <a href=\"/admin/packages\">科技成果包</a> · <a href=\"/packages\">公开页面</a></p>"
}

fn status_of(r: &Refused) -> StatusCode {
    StatusCode::from_u16(r.answer().0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn notice(r: &Refused) -> String {
    format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&r.zh()))
}

/// What the form posts.
#[derive(serde::Deserialize, Default)]
pub struct PackageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    industry: String,
    #[serde(default)]
    discipline: String,
    #[serde(default)]
    transfer: String,
    #[serde(default)]
    reg_date: String,
    /// Other catalogue parameters, `key=value` separated by `&` or new lines.
    #[serde(default)]
    more: String,
    #[serde(default)]
    include: String,
    #[serde(default)]
    exclude: String,
}

fn numbers(text: &str) -> Value {
    Value::Array(
        text.split(|c: char| c.is_whitespace() || c == ',' || c == '，' || c == '、' || c == ';')
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
            .collect(),
    )
}

impl PackageForm {
    /// The definition as the operator API takes it.
    fn body(&self) -> Map<String, Value> {
        let mut query = Map::new();
        let given = [
            ("q", &self.q),
            ("region", &self.region),
            ("kind", &self.kind),
            ("stage", &self.stage),
            ("industry", &self.industry),
            ("discipline", &self.discipline),
            ("transfer", &self.transfer),
            ("reg_date", &self.reg_date),
        ];
        for (k, v) in given {
            if !v.trim().is_empty() {
                query.insert(k.to_string(), Value::String(v.trim().to_string()));
            }
        }
        for pair in self.more.split(['&', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
        }
        let mut m = Map::new();
        m.insert("title".into(), Value::String(self.title.clone()));
        m.insert("field".into(), if self.field.is_empty() { Value::Null } else { Value::String(self.field.clone()) });
        m.insert("description".into(), Value::String(self.description.clone()));
        m.insert("query".into(), if query.is_empty() { Value::Null } else { Value::Object(query) });
        m.insert("include".into(), numbers(&self.include));
        m.insert("exclude".into(), numbers(&self.exclude));
        m
    }

    fn of(p: &Package) -> PackageForm {
        let mut f = PackageForm {
            slug: p.slug.clone(),
            title: p.def.title.clone(),
            field: p.def.field.clone().unwrap_or_default(),
            description: p.def.description.clone(),
            include: p.def.selection.include.join("\n"),
            exclude: p.def.selection.exclude.join("\n"),
            ..Default::default()
        };
        let mut more = Vec::new();
        for (k, v) in crate::packages::query_pairs(p.def.selection.query.as_ref().unwrap_or(&Map::new())) {
            let slot = match k.as_str() {
                "q" => &mut f.q,
                "region" => &mut f.region,
                "kind" => &mut f.kind,
                "stage" => &mut f.stage,
                "industry" => &mut f.industry,
                "discipline" => &mut f.discipline,
                "transfer" => &mut f.transfer,
                "reg_date" => &mut f.reg_date,
                _ => {
                    more.push(format!("{k}={v}"));
                    continue;
                }
            };
            *slot = v;
        }
        f.more = more.join("\n");
        f
    }
}

fn choices(values: &[&str]) -> Vec<(String, String)> {
    values.iter().map(|v| (v.to_string(), v.to_string())).collect()
}

/// The definition form, filled with `f`; `slug` given means editing that package.
fn form(f: &PackageForm, session: &Session, slug: Option<&str>) -> String {
    let action = slug.map_or_else(|| "/admin/packages".to_string(), |s| format!("/admin/packages/{}", enc(s)));
    let mut b = format!(
        "<form method=\"post\" action=\"{}\" class=\"package-form\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{}\">",
        esc(&action),
        esc(&session.form_token)
    );
    if slug.is_none() {
        let _ = write!(
            b,
            "<label>网址名<input name=\"slug\" required maxlength=\"64\" pattern=\"[a-z0-9-]{{1,64}}\" value=\"{}\" placeholder=\"如 rice-pests\" autocapitalize=\"none\"><small>小写字母、数字和 -，发布后在 /packages/网址名</small></label>",
            esc(&f.slug)
        );
    }
    let fields: Vec<(String, String)> = choices(&FIELDS);
    let _ = write!(
        b,
        "<label>名称<input name=\"title\" required maxlength=\"100\" value=\"{}\"></label>\
         <label>重点领域<select name=\"field\">{}</select></label>\
         <label>说明<textarea name=\"description\" rows=\"4\" maxlength=\"4000\">{}</textarea></label>\
         <fieldset><legend>遴选条件（与目录检索相同）</legend><div class=\"grid\">",
        esc(&f.title),
        options("综合（不限领域）", &fields, &f.field),
        esc(&f.description)
    );
    let values = [&f.q, &f.region, &f.kind, &f.stage, &f.industry, &f.discipline, &f.transfer, &f.reg_date];
    for ((key, label, hint), value) in QUERY_FIELDS.iter().zip(values) {
        let input = match *key {
            "kind" => format!("<select name=\"kind\">{}</select>", options("全部", &choices(&["应用技术", "基础理论", "软科学"]), value)),
            "stage" => format!("<select name=\"stage\">{}</select>", options("全部", &choices(&huijiao_protocol::record::STAGES), value)),
            "transfer" => {
                format!("<select name=\"transfer\">{}</select>", options("全部", &choices(&huijiao_protocol::record::TRANSFERS), value))
            }
            _ => format!("<input name=\"{key}\" value=\"{}\" placeholder=\"{}\">", esc(value), esc(hint)),
        };
        let _ = write!(b, "<label>{label}{input}</label>");
    }
    let _ = write!(
        b,
        "</div><label>其他条件<textarea name=\"more\" rows=\"2\" placeholder=\"每行一个，如 trl=7..9、has_ip=true\">{}</textarea></label></fieldset>\
         <label>指定收录（登记号，每行一个）<textarea name=\"include\" rows=\"3\">{}</textarea></label>\
         <label>排除（登记号，每行一个）<textarea name=\"exclude\" rows=\"2\">{}</textarea></label>\
         <button type=\"submit\">保存并预览</button></form>",
        esc(&f.more),
        esc(&f.include),
        esc(&f.exclude)
    );
    b
}

/// `/admin/packages`: every package and the form for a new one.
pub async fn list(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let session = match gate(&api, addr, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    list_page(&api, &session, &PackageForm::default(), None).await
}

async fn list_page(api: &Api, session: &Session, f: &PackageForm, problem: Option<&Refused>) -> Response {
    let all = match api.packages.list().await {
        Ok(l) => l,
        Err(r) => return html(format!("{}{}", nav(), notice(&r)), status_of(&r)),
    };
    let mut b = format!("{}<h1>科技成果包</h1>", nav());
    if all.is_empty() {
        b.push_str("<p class=\"empty\">还没有成果包。用下面的表单建一个：定好遴选条件，预览后发布。</p>");
    } else {
        b.push_str("<div class=\"wide\"><table><thead><tr><th>名称</th><th>领域</th><th>最新版</th><th>状态</th></tr></thead><tbody>");
        for p in &all {
            let latest = p.latest.as_ref().map_or("未发布".to_string(), |v| format!("第 {} 版 · {} 项", v.version, v.count));
            let state = if p.retired_at.is_some() { "已停止发布" } else { "发布中" };
            let _ = write!(
                b,
                "<tr><td><a href=\"/admin/packages/{}\"><bdi>{}</bdi></a></td><td>{}</td><td>{}</td><td>{state}</td></tr>",
                enc(&p.slug),
                esc(&p.def.title),
                esc(p.def.field.as_deref().unwrap_or("综合")),
                esc(&latest)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("<h2>新建成果包</h2>");
    if let Some(r) = problem {
        b.push_str(&notice(r));
    }
    b.push_str(&form(f, session, None));
    html(b, problem.map_or(StatusCode::OK, status_of))
}

fn forbidden() -> Response {
    html(format!("{}<p class=\"error\">这个请求不是从本站的管理页发出的。</p>", nav()), StatusCode::FORBIDDEN)
}

/// Creates a package from the form.
pub async fn create(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PackageForm>,
) -> Response {
    let session = match gate(&api, addr, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session::form_ok(&session, &headers, &f.csrf) {
        return forbidden();
    }
    let slug = f.slug.trim().to_string();
    if api.packages.get(&slug).await.is_ok() {
        let r = Refused::Invalid { field: "slug".into(), message: format!("“{slug}”已被另一个成果包使用") };
        return list_page(&api, &session, &f, Some(&r)).await;
    }
    match api.packages.put(&slug, &f.body(), crate::clock::now_ms()).await {
        Ok(_) => Redirect::to(&format!("/admin/packages/{}", enc(&slug))).into_response(),
        Err(r) => list_page(&api, &session, &f, Some(&r)).await,
    }
}

/// `/admin/packages/{slug}`: the definition, the preview of the next version, publish
/// and retire, and the versions published.
pub async fn show(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let session = match gate(&api, addr, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    package_page(&api, &session, &slug, None, None).await
}

/// One piece: the page an operator works on, top to bottom — where the package stands,
/// what publishing now would do, the buttons, the form, the versions.
async fn package_page(api: &Api, session: &Session, slug: &str, edited: Option<&PackageForm>, problem: Option<Refused>) -> Response {
    let p = match api.packages.get(slug).await {
        Ok(p) => p,
        Err(r) => return html(format!("{}{}", nav(), notice(&r)), status_of(&r)),
    };
    let token = esc(&session.form_token);
    let mut b = format!("{}<h1><bdi>{}</bdi></h1>", nav(), esc(&p.def.title));
    let status = problem.as_ref().map_or(StatusCode::OK, status_of);
    if let Some(r) = &problem {
        b.push_str(&notice(r));
    }
    match &p.latest {
        Some(v) => {
            let _ = write!(
                b,
                "<p>已发布第 {} 版（{}，{} 项）：<a href=\"/packages/{}\">公开页面</a> · <a href=\"/packages/{}.atom\">Atom</a></p>",
                v.version,
                esc(&crate::clock::rfc3339_china(v.published_at)[..16].replace('T', " ")),
                v.count,
                enc(slug),
                enc(slug)
            );
        }
        None => b.push_str("<p>尚未发布。</p>"),
    }
    if p.retired_at.is_some() {
        b.push_str("<p class=\"warn\">已停止发布：不再发布新版本，已发布的各版仍可查阅。</p>");
    } else {
        match api.packages.preview(slug, crate::clock::today()).await {
            Ok(pv) => b.push_str(&preview_html(&pv, slug, &token)),
            Err(r) => b.push_str(&notice(&r)),
        }
    }
    b.push_str("<h2>遴选条件</h2>");
    let current = PackageForm::of(&p);
    b.push_str(&form(edited.unwrap_or(&current), session, Some(slug)));
    if p.retired_at.is_none() {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/admin/packages/{}/retire\" class=\"decide\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\">\
             <button type=\"submit\" class=\"secondary\">停止发布</button><small>不再发布新版本；已发布的各版仍可查阅。</small></form>",
            enc(slug)
        );
    }
    html(b, status)
}

fn preview_html(pv: &Preview, slug: &str, token: &str) -> String {
    let against = if pv.version > 1 {
        format!("；较第 {} 版新增 {} 项，移出 {} 项", pv.version - 1, pv.added.len(), pv.removed.len())
    } else {
        String::new()
    };
    let mut b = format!(
        "<section class=\"preview\"><h2>预览：发布后为第 {} 版</h2><p>收录 <strong id=\"preview-count\">{}</strong> 项公开成果{against}。</p>",
        pv.version, pv.count
    );
    let show = |label: &str, list: &[String]| {
        if list.is_empty() {
            return String::new();
        }
        let shown: Vec<String> = list.iter().take(50).map(|r| format!("<a href=\"/records/{}\">{}</a>", enc(r), esc(r))).collect();
        let more = if list.len() > 50 { format!(" 等 {} 项", list.len()) } else { String::new() };
        format!("<p>{label}：{}{more}</p>", shown.join("、"))
    };
    if pv.version > 1 {
        b.push_str(&show("新增", &pv.added));
        b.push_str(&show("移出", &pv.removed));
    } else {
        b.push_str(&show("收录", &pv.records));
    }
    if !pv.not_public.is_empty() {
        let _ = write!(b, "<p class=\"error\">指定收录的这些成果不是公开成果，发布前请移除：{}</p>", esc(&pv.not_public.join("、")));
    }
    if pv.too_many {
        let _ = write!(b, "<p class=\"error\">符合条件的成果超过 {} 项，请缩小条件。</p>", crate::store::catalogue::MAX_PACKAGE_RECORDS);
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/admin/packages/{}/publish\" class=\"decide\"><input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{token}\"><button type=\"submit\">发布第 {} 版</button></form></section>",
        enc(slug),
        pv.version
    );
    b
}

/// Saves the edited definition.
pub async fn save(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(f): Form<PackageForm>,
) -> Response {
    let session = match gate(&api, addr, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session::form_ok(&session, &headers, &f.csrf) {
        return forbidden();
    }
    if let Err(r) = api.packages.get(&slug).await {
        return html(format!("{}{}", nav(), notice(&r)), status_of(&r));
    }
    match api.packages.put(&slug, &f.body(), crate::clock::now_ms()).await {
        Ok(_) => Redirect::to(&format!("/admin/packages/{}", enc(&slug))).into_response(),
        Err(r) => package_page(&api, &session, &slug, Some(&f), Some(r)).await,
    }
}

#[derive(serde::Deserialize)]
pub struct Token {
    #[serde(default)]
    csrf: String,
}

/// Publishes the next version, or retires the package.
pub async fn action(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((slug, action)): Path<(String, String)>,
    Form(t): Form<Token>,
) -> Response {
    let session = match gate(&api, addr, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session::form_ok(&session, &headers, &t.csrf) {
        return forbidden();
    }
    let who = format!("{} (admin page)", session.subject);
    let done = match action.as_str() {
        "publish" => api.packages.publish(&slug, &who, crate::clock::today(), crate::clock::now_ms()).await.map(|_| ()),
        "retire" => api.packages.retire(&slug, &who, crate::clock::now_ms()).await.map(|_| ()),
        _ => Err(Refused::NotFound),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/admin/packages/{}", enc(&slug))).into_response(),
        Err(r) => package_page(&api, &session, &slug, None, Some(r)).await,
    }
}
