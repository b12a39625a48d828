//! The web pages, served by the `[http]` listener beside the API: the public
//! catalogue (`/`, `/records/{reg_no}`, `/stats`) and the operators' view (`/admin`).
//!
//! Server-rendered HTML with one stylesheet and one small script, both embedded in
//! the binary (no CDN, nothing fetched from outside). Every page works without the
//! script; it only fills the city and county pickers as a province is chosen, and
//! reloads the admin page. The public pages read the public view only, through the
//! same code as the public API; they never call an operator endpoint.
//!
//! One room: the public pages (search, record, statistics) over one set of page
//! parameters and one way of rendering a record.

mod admin;
mod certificate;
pub mod html;
mod packages;
mod packages_admin;
mod review;
pub mod session;
mod unit;
mod unit_members;

use crate::http::state::{limit, public_view, Api, ApiError};
use crate::publish::{self, region_path, Endpoint, Group};
use crate::store::catalogue::{GroupBy, Listing};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use html::{enc, esc, options, page, rec_html, rec_text, url};
use huijiao_protocol::fields::Field;
use huijiao_protocol::regions::Level;
use huijiao_protocol::RegionTable;
use serde_json::Value;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");
const ICON: &str = include_str!("assets/icon.svg");

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/", get(search))
        .route("/records/{reg_no}", get(record))
        .route("/stats", get(stats))
        .route("/stats.csv", get(stats_csv))
        .route("/admin", get(admin::show))
        .route("/admin/login", post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/password", post(admin::reviewer_password))
        .route("/admin/reviewers", get(review::reviewers).post(review::add_reviewer))
        .route("/admin/reviewers/{login}/{action}", post(review::reviewer_action))
        .route("/admin/review", get(review::queue))
        .route("/admin/review/{id}", get(review::show))
        .route("/admin/review/{id}/attachments/{n}", get(review::attachment))
        .route("/admin/review/{id}/approve", post(review::approve))
        .route("/admin/review/{id}/return", post(review::return_to_unit))
        .route("/admin/review/{id}/certificate", get(certificate::for_office))
        .route("/verify", get(certificate::verify))
        .route("/unit", get(unit::home))
        .route("/unit/login", post(unit::login))
        .route("/unit/password", get(unit::password_form).post(unit::change_password))
        .route("/unit/logout", post(unit::logout))
        .route("/unit/submissions", get(unit::list).post(unit::create))
        .route("/unit/submissions/new", get(unit::new_form))
        .route("/unit/submissions/{id}", get(unit::show).post(unit::update))
        .route("/unit/submissions/{id}/attachments", post(unit::upload))
        .route("/unit/submissions/{id}/attachments/{n}", get(unit::attachment))
        .route("/unit/submissions/{id}/certificate", get(unit::certificate))
        .route("/unit/submissions/{id}/pass", post(unit_members::pass))
        .route("/unit/submissions/{id}/return", post(unit_members::return_to_member))
        .route("/unit/members", get(unit_members::list).post(unit_members::add))
        .route("/unit/members/{login}/{action}", post(unit_members::action))
        .route("/admin/units", get(review::units).post(review::add_unit))
        .route("/admin/units/{uscc}/{action}", post(review::unit_action))
        .route("/admin/packages", get(packages_admin::list).post(packages_admin::create))
        .route("/admin/packages/{slug}", get(packages_admin::show).post(packages_admin::save))
        .route("/admin/packages/{slug}/{action}", post(packages_admin::action))
        .route("/packages", get(packages::index))
        .route("/packages.atom", get(packages::feed_all))
        .route("/packages/{slug}", get(packages::latest))
        .route("/packages/{slug}/versions/{n}", get(packages::version))
        .route("/assets/style.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
        .route("/assets/app.js", get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }))
        .route("/assets/icon.svg", get(|| async { asset(ICON, "image/svg+xml") }))
        .route("/favicon.ico", get(|| async { asset(ICON, "image/svg+xml") }))
}

fn asset(body: &'static str, ty: &'static str) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(ty)), (header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"))], body)
        .into_response()
}

/// The HTML answer to a path nothing serves.
pub fn not_found() -> Response {
    let body = "<h1>找不到这个页面</h1><p><a href=\"/\">回到检索</a></p>";
    (StatusCode::NOT_FOUND, Html(page("找不到页面", "", body))).into_response()
}

/// An error as a page, in Chinese (a refused search has its own page with the form:
/// [`refused_search`]).
fn error_page(e: ApiError) -> Response {
    let (status, msg, retry) = match &e {
        ApiError::Param(p) => (StatusCode::BAD_REQUEST, format!("{}填写有误，请改正后再试。", param_label(&p.param)), None),
        ApiError::TooMany(s) => (StatusCode::TOO_MANY_REQUESTS, format!("请求太频繁，请 {s} 秒后再试。"), Some(*s)),
        ApiError::Busy(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "系统正忙，请几秒后再试；检索范围小一些（选一个地区、一个年份）会更快。".to_string(), Some(5))
        }
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone(), None),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "内部错误，详情见节点日志。".to_string(), None),
    };
    match &e {
        ApiError::Internal(err) => tracing::error!("page failed: {err:#}"),
        ApiError::Busy(m) => tracing::info!("page busy: {m}"),
        _ => {}
    }
    let body = format!("<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">回到检索</a></p>", esc(&msg));
    let mut r = (status, Html(page("出错了", "", &body))).into_response();
    if let Some(s) = retry {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// The page's own parameters: the picker's three levels, a year range, paging.
#[derive(Clone)]
struct PageParams {
    /// The parameters handed on to the catalogue, by their API names.
    api: Vec<(String, String)>,
    q: String,
    region: String,
    kind: String,
    stage: String,
    industry: String,
    transfer: String,
    year_from: String,
    year_to: String,
    /// Other parameters of the API given in the URL (`trl`, `sort`, `level`, …): handed
    /// on, so a bad one is refused as the API refuses it, and kept in every link.
    extra: Vec<(String, String)>,
    cursor: String,
    /// The cursors of the pages before this one (`-` for the first), for 上一页.
    trail: Vec<String>,
    /// What the page cannot take, found before asking the catalogue.
    error: Option<publish::ParamError>,
}

/// Parameters a page reads itself; the API's others pass through as `extra`. Any other
/// parameter (`utm_source`, `fbclid` from a shared link) is ignored.
const PAGE_KEYS: [&str; 13] =
    ["q", "region", "province", "prefecture", "county", "kind", "stage", "industry", "transfer", "year_from", "year_to", "cursor", "trail"];

/// Pages kept in the 上一页 trail; further back, 第一页.
const MAX_TRAIL: usize = 30;

/// Reads a page's query string into API parameters: the deepest region picked that
/// lies inside the one above it (a city left over from another province is dropped), or
/// `region` as given; the years as a `reg_date` range. Never fails: a mistake is kept in
/// `error`, so the page can show it beside the filled-in form.
fn page_params(pairs: Vec<(String, String)>, table: &RegionTable) -> PageParams {
    let get = |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let mut region = get("region");
    let mut above = huijiao_protocol::regions::NATIONAL.to_string();
    for k in ["province", "prefecture", "county"] {
        let v = get(k);
        if v.is_empty() || table.get(&v).is_none_or(|r| r.parent != above) {
            break;
        }
        region = v.clone();
        above = v;
    }
    let mut p = PageParams {
        api: Vec::new(),
        q: get("q"),
        region,
        kind: get("kind"),
        stage: get("stage"),
        industry: get("industry"),
        transfer: get("transfer"),
        year_from: get("year_from"),
        year_to: get("year_to"),
        extra: Vec::new(),
        cursor: get("cursor"),
        trail: get("trail").split(',').filter(|c| !c.is_empty()).map(str::to_string).collect(),
        error: None,
    };
    let list_keys: Vec<&str> = publish::FILTER_PARAMS.iter().copied().chain(["sort", "limit"]).collect();
    for (k, v) in &pairs {
        if !PAGE_KEYS.contains(&k.as_str()) && list_keys.contains(&k.as_str()) && !v.trim().is_empty() {
            p.extra.push((k.clone(), v.trim().to_string()));
        }
    }
    for (v, name) in [(&p.year_from, "year_from"), (&p.year_to, "year_to")] {
        if !(v.is_empty() || v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit())) {
            p.error = Some(publish::ParamError { param: name.into(), message: format!("`{v}` is not a year") });
        }
    }
    let mut api: Vec<(String, String)> = Vec::new();
    for (k, v) in
        [("q", &p.q), ("region", &p.region), ("kind", &p.kind), ("stage", &p.stage), ("industry", &p.industry), ("transfer", &p.transfer)]
    {
        if !v.is_empty() {
            api.push((k.to_string(), v.clone()));
        }
    }
    if p.error.is_none() && (!p.year_from.is_empty() || !p.year_to.is_empty()) {
        let a = if p.year_from.is_empty() { String::new() } else { format!("{}-01-01", p.year_from) };
        let b = if p.year_to.is_empty() { String::new() } else { format!("{}-12-31", p.year_to) };
        api.push(("reg_date".into(), format!("{a}..{b}")));
    }
    api.extend(p.extra.iter().cloned());
    PageParams { api, ..p }
}

/// The name a person sees for a parameter of the pages or the API.
fn param_label(param: &str) -> String {
    match param {
        "q" => "关键词".into(),
        "year_from" | "year_to" | "reg_date" | "year" | "since" | "until" => "登记年份".into(),
        "region" | "province" | "prefecture" | "county" => "地区".into(),
        "trl" | "trl_min" | "trl_max" => "技术就绪水平".into(),
        "sort" => "排序".into(),
        "limit" => "每页条数".into(),
        "cursor" | "trail" => "翻页".into(),
        "ip" | "ip_type" | "has_ip" => "知识产权".into(),
        other => Field::ALL.iter().find(|f| f.key() == other).map_or_else(|| other.to_string(), |f| f.zh().to_string()),
    }
}

/// A refused parameter said in Chinese, about what the person typed.
fn zh_message(e: &publish::ParamError, p: &PageParams) -> String {
    let label = param_label(&e.param);
    let given = |k: &str| p.extra.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    match e.param.as_str() {
        "q" if e.message.contains("longer") => format!("关键词太长：最多 {} 个字。", publish::MAX_QUERY_CHARS),
        "q" if e.message.contains("words") => format!("关键词太多：最多 {} 个词。", publish::MAX_QUERY_TERMS),
        "q" => "关键词里没有可以检索的字、字母或数字。".into(),
        "year_from" | "year_to" => "登记年份请填四位数字，如 2024。".into(),
        "reg_date" if e.message.contains("empty") => {
            format!("登记年份的范围是空的：起始年份 {} 晚于截止年份 {}。", p.year_from, p.year_to)
        }
        "region" if e.message.contains("several") => format!("“{}”是多个地区的名称，请在地区列表中选择。", p.region),
        "region" => format!("找不到地区“{}”，请在地区列表中选择。", p.region),
        "cursor" | "trail" => "这个翻页链接已失效，请重新检索。".into(),
        "trl" | "trl_min" | "trl_max" => {
            format!("技术就绪水平应为 1 到 9 的整数（或如 5..9 的范围），不能是“{}”。", given(&e.param).unwrap_or_default())
        }
        "sort" => format!(
            "排序方式只能是 relevance（相关度）、date（登记日期）或 region（地区），不能是“{}”。",
            given("sort").unwrap_or_default()
        ),
        other => {
            let v = given(other)
                .or_else(|| match other {
                    "kind" => Some(p.kind.clone()),
                    "stage" => Some(p.stage.clone()),
                    "industry" => Some(p.industry.clone()),
                    "transfer" => Some(p.transfer.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            format!("{label}的值“{v}”无法识别，请从列表中选择或改正后再检索。")
        }
    }
}

/// The code of a region parameter when it names one unit (a code or a name).
fn region_code(v: &str, table: &RegionTable) -> Option<String> {
    if v.len() == 6 && table.contains(v) {
        return Some(v.to_string());
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // A prefix: the unit it is the code prefix of.
        let code = match v.len() {
            2 => format!("{v}0000"),
            4 => format!("{v}00"),
            _ => return None,
        };
        return table.contains(&code).then_some(code);
    }
    match table.find_by_name(v).as_slice() {
        [one] => Some(one.code.clone()),
        _ => None,
    }
}

/// The units directly under `parent`, as picker options.
fn children_of(table: &RegionTable, parent: &str) -> Vec<(String, String)> {
    table.all().into_iter().filter(|r| r.parent == parent && r.level != Level::National).map(|r| (r.code.clone(), r.name.clone())).collect()
}

/// The three region pickers, with the chain of the chosen unit selected.
fn region_pickers(table: &RegionTable, region: &str) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut at = region_code(region, table);
    while let Some(code) = at {
        match table.get(&code) {
            Some(r) if r.level != Level::National => {
                chain.insert(0, code.clone());
                at = Some(r.parent.clone());
            }
            _ => break,
        }
    }
    let provinces: Vec<(String, String)> = table
        .codes_of(Level::Province)
        .into_iter()
        .map(|c| (c.to_string(), table.get(c).map(|r| r.name.clone()).unwrap_or_default()))
        .collect();
    let pick = |i: usize| chain.get(i).cloned().unwrap_or_default();
    let prefectures = if chain.is_empty() { Vec::new() } else { children_of(table, &chain[0]) };
    let counties = if chain.len() < 2 { Vec::new() } else { children_of(table, &chain[1]) };
    format!(
        "<label>地区<span class=\"pickers\"><select name=\"province\" data-level=\"province\" aria-label=\"省\">{}</select>\
<select name=\"prefecture\" data-level=\"prefecture\" aria-label=\"市\">{}</select>\
<select name=\"county\" data-level=\"county\" aria-label=\"县\">{}</select></span></label>",
        options("全部省份", &provinces, &pick(0)),
        options("全部地市", &prefectures, &pick(1)),
        options("全部区县", &counties, &pick(2)),
    )
}

fn choices(values: &[&str]) -> Vec<(String, String)> {
    values.iter().map(|v| (v.to_string(), v.to_string())).collect()
}

/// The search and filter form.
fn form(p: &PageParams, table: &RegionTable, action: &str, with_query: bool) -> String {
    let mut f = format!("<form class=\"filters\" method=\"get\" action=\"{action}\">");
    if with_query {
        let _ = write!(
            f,
            "<div class=\"searchbar\"><input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"输入关键词，如 水稻、芯片、5G基站\" aria-label=\"关键词\" maxlength=\"100\" autofocus><button type=\"submit\">检索</button></div>",
            esc(&p.q)
        );
    }
    // Folded on a search page until a filter is in use: on a phone the results come first.
    let active =
        !with_query || [&p.region, &p.kind, &p.stage, &p.industry, &p.transfer, &p.year_from, &p.year_to].iter().any(|v| !v.is_empty());
    let _ = write!(f, "<details class=\"more\"{}><summary>筛选</summary><div class=\"grid\">", if active { " open" } else { "" });
    f.push_str(&region_pickers(table, &p.region));
    let _ = write!(
        f,
        "<label>成果类型<select name=\"kind\">{}</select></label>",
        options("全部", &choices(&["应用技术", "基础理论", "软科学"]), &p.kind)
    );
    let _ = write!(
        f,
        "<label>所处阶段<select name=\"stage\">{}</select></label>",
        options("全部", &choices(&huijiao_protocol::record::STAGES), &p.stage)
    );
    let sections: Vec<(String, String)> = huijiao_protocol::codes::industries()
        .into_iter()
        .filter(|(c, _)| c.len() == 1)
        .map(|(c, n)| (c.to_string(), format!("{c} {n}")))
        .collect();
    let _ = write!(f, "<label>应用行业<select name=\"industry\">{}</select></label>", options("全部", &sections, &p.industry));
    let _ = write!(
        f,
        "<label>转化方式<select name=\"transfer\">{}</select></label>",
        options("全部", &choices(&huijiao_protocol::record::TRANSFERS), &p.transfer)
    );
    let _ = write!(
        f,
        "<label>登记年份<span class=\"years\"><input name=\"year_from\" inputmode=\"numeric\" pattern=\"[0-9]{{4}}\" placeholder=\"起\" value=\"{}\" aria-label=\"起始年份\">–<input name=\"year_to\" inputmode=\"numeric\" pattern=\"[0-9]{{4}}\" placeholder=\"止\" value=\"{}\" aria-label=\"截止年份\"></span></label>",
        esc(&p.year_from),
        esc(&p.year_to)
    );
    f.push_str("</div>");
    // Conditions from the URL the form has no field for (`trl=7`, `sort=date`): kept.
    if !p.extra.is_empty() {
        let shown: Vec<String> = p.extra.iter().map(|(k, v)| format!("{} {}", param_label(k), v)).collect();
        let _ = write!(
            f,
            "<p class=\"note\">另有条件：{}（<a href=\"{}\">去掉</a>）</p>",
            esc(&shown.join("，")),
            esc(&url(action, &PageParams { extra: Vec::new(), ..p.clone() }.pairs()))
        );
        for (k, v) in &p.extra {
            let _ = write!(f, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v));
        }
    }
    if !with_query {
        f.push_str("<button type=\"submit\">统计</button>");
    }
    f.push_str("</details></form>");
    f
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "是" } else { "否" }.to_string(),
        Value::Array(a) => a.iter().map(text_of).collect::<Vec<_>>().join("；"),
        other => other.to_string(),
    }
}

async fn search(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let p = page_params(pairs, &api.table);
    match search_inner(&api, addr, &p).await {
        Ok(r) => r,
        Err(ApiError::Param(e)) => refused_search(&api, &p, &e),
        Err(e) => error_page(e),
    }
}

/// A search the catalogue cannot take: the form as the person filled it, and what to
/// change, in Chinese.
fn refused_search(api: &Api, p: &PageParams, e: &publish::ParamError) -> Response {
    let mut body = form(p, &api.table, "/", true);
    let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(&zh_message(e, p)));
    let title = if p.q.is_empty() { "检索".to_string() } else { format!("{} 的检索结果", p.q) };
    (StatusCode::BAD_REQUEST, Html(page(&title, "search", &body))).into_response()
}

async fn search_inner(api: &Arc<Api>, addr: SocketAddr, p: &PageParams) -> Result<Response, ApiError> {
    limit(api, addr)?;
    let body = listing_html(api, p, &Scope::Catalogue).await?;
    let title = if p.q.is_empty() { "检索".to_string() } else { format!("{} 的检索结果", p.q) };
    Ok(Html(page(&title, "search", &body)).into_response())
}

/// What a listing page lists: the whole catalogue (`/`), or one version of a package
/// (its page, with the catalogue's filters inside it).
enum Scope {
    Catalogue,
    Package { slug: String, version: i64, path: String },
}

/// The search form, the summary, the hits and the pager of a listing page.
async fn listing_html(api: &Arc<Api>, p: &PageParams, scope: &Scope) -> Result<String, ApiError> {
    if let Some(e) = &p.error {
        return Err(ApiError::Param(e.clone()));
    }
    let action = match scope {
        Scope::Catalogue => "/",
        Scope::Package { path, .. } => path.as_str(),
    };
    let mut list_pairs = p.api.clone();
    if !p.cursor.is_empty() {
        list_pairs.push(("cursor".into(), p.cursor.clone()));
    }
    let mut req = publish::parse(&list_pairs, Endpoint::List, &api.table)?;
    if let Scope::Package { slug, version, .. } = scope {
        req.filters.package = Some((slug.clone(), *version));
    }
    let view = public_view();
    let listing =
        Listing { q: req.q.clone(), filters: req.filters.clone(), sort: req.sort, limit: req.limit, cursor: req.cursor.clone(), view };
    let result = api.query(move |c| Ok(c.list(&listing)?)).await?;
    let table = &api.table;
    let mut body = form(p, table, action, true);
    let shown: Vec<(&str, &str)> =
        p.api.iter().filter(|(k, _)| k != "sort" && k != "limit").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let csv = match scope {
        Scope::Catalogue => url("/api/v1/export", &[&[("format", "csv")][..], &shown[..]].concat()),
        Scope::Package { slug, version, .. } => {
            url(&format!("/api/v1/packages/{slug}/export"), &[("format", "csv"), ("version", version.to_string().as_str())])
        }
    };
    let total = if result.total_estimated {
        format!("约 {} 条", result.total)
    } else if result.total_capped {
        format!("{} 条以上", result.total)
    } else {
        format!("{} 条", result.total)
    };
    if let (Some(word), Some(prefix)) = (&req.region_from_q, &req.filters.region) {
        let code = format!("{prefix:0<6}");
        let _ = write!(body, "<p class=\"note\">“{}”作为地区：只列出{}的成果。</p>", esc(word), esc(&region_path(table, &code)));
    }
    let _ = write!(
        body,
        "<p class=\"summary\">共 <strong id=\"total\">{}</strong> 公开成果{} <a class=\"download\" href=\"{}\" download>下载 CSV</a></p><ol class=\"results\">",
        esc(&total),
        if req.q.is_none() { "，按登记日期排列" } else { "，名称命中的在前" },
        esc(&csv)
    );
    // 返回检索 on a record's page comes back to this very page.
    let here = url(action, &with_cursor(p, &p.cursor, &p.trail));
    for h in &result.hits {
        let r = &h.stored.record;
        let mut meta = vec![r.reg_no.clone(), region_path(table, &r.region), r.kind.zh().to_string(), r.reg_date.to_string()];
        meta.extend(r.stage.clone());
        meta.extend(r.transfer.clone());
        let why =
            if h.matched_html.is_empty() { String::new() } else { format!("<p class=\"why\">命中：{}</p>", rec_html(&h.matched_html)) };
        let _ = write!(
            body,
            "<li class=\"hit\"><a class=\"title\" href=\"{}\">{}</a><div class=\"meta\">{}</div><p class=\"snippet\">{}</p>{why}</li>",
            esc(&url(&format!("/records/{}", enc(&r.reg_no)), &[("back", &here)])),
            rec_html(&h.title_html),
            rec_text(&meta.join(" · ")),
            rec_html(&h.snippet_html)
        );
    }
    body.push_str("</ol>");
    if result.hits.is_empty() {
        body.push_str("<p class=\"empty\">没有找到符合条件的公开成果。换个关键词（两个字即可，如“水稻”），或放宽筛选。</p>");
    }
    let mut pager = Vec::new();
    if !p.cursor.is_empty() {
        pager.push(format!("<a href=\"{}\">第一页</a>", esc(&url(action, &with_cursor(p, "", &[])))));
        let mut trail = p.trail.clone();
        let prev = trail.pop().filter(|c| c != "-").unwrap_or_default();
        pager.push(format!("<a rel=\"prev\" href=\"{}\">上一页</a>", esc(&url(action, &with_cursor(p, &prev, &trail)))));
    }
    if let Some(next) = &result.next_cursor {
        let mut trail = p.trail.clone();
        trail.push(if p.cursor.is_empty() { "-".to_string() } else { p.cursor.clone() });
        if trail.len() > MAX_TRAIL {
            trail.remove(0);
        }
        pager.push(format!("<a rel=\"next\" href=\"{}\">下一页</a>", esc(&url(action, &with_cursor(p, next, &trail)))));
    }
    if !pager.is_empty() {
        let _ = write!(body, "<nav class=\"pager\">{}</nav>", pager.join(" "));
    }
    Ok(body)
}

impl PageParams {
    /// The parameters of this search's URL (first page).
    fn pairs(&self) -> Vec<(&str, &str)> {
        page_pairs(self)
    }
}

/// The page's own parameters again, for links to this search (its other pages, CSV).
fn page_pairs(p: &PageParams) -> Vec<(&str, &str)> {
    let mut v = vec![
        ("q", p.q.as_str()),
        ("region", p.region.as_str()),
        ("kind", p.kind.as_str()),
        ("stage", p.stage.as_str()),
        ("industry", p.industry.as_str()),
        ("transfer", p.transfer.as_str()),
        ("year_from", p.year_from.as_str()),
        ("year_to", p.year_to.as_str()),
    ];
    v.extend(p.extra.iter().map(|(k, val)| (k.as_str(), val.as_str())));
    v
}

/// This search's URL pairs at page `cursor`, with the trail of the pages before it.
fn with_cursor<'a>(p: &'a PageParams, cursor: &'a str, trail: &[String]) -> Vec<(&'a str, String)> {
    let mut v: Vec<(&str, String)> = page_pairs(p).into_iter().map(|(k, val)| (k, val.to_string())).collect();
    v.push(("cursor", cursor.to_string()));
    v.push(("trail", trail.join(",")));
    v
}

async fn record(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(reg_no): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    // 返回检索 goes back to the search the record was opened from: a path of this site.
    let back = pairs
        .iter()
        .find(|(k, _)| k == "back")
        .map(|(_, v)| v.as_str())
        .filter(|v| v.starts_with('/') && !v.starts_with("//") && !v.contains('\\') && v.len() <= 4000)
        .unwrap_or("/")
        .to_string();
    let run = async {
        limit(&api, addr)?;
        if reg_no.chars().count() > 30 {
            return Err(ApiError::NotFound(format!("没有登记号为 {reg_no} 的公开成果")));
        }
        let key = reg_no.clone();
        let view = public_view();
        let hit = api.query(move |c| Ok(c.get(&key, view)?)).await?;
        let Some(h) = hit else {
            return Err(ApiError::NotFound(format!("没有登记号为 {reg_no} 的公开成果")));
        };
        let fields = h.stored.record.public_json();
        let mut body = format!("<article class=\"record\"><h1>{}</h1><dl>", rec_text(&h.stored.record.title));
        for f in Field::ALL.iter().filter(|f| f.public() && **f != Field::Title) {
            let Some(v) = fields.get(f.key()) else { continue };
            let mut text = text_of(v);
            let name = match f {
                Field::Region => Some(region_path(&api.table, &text)),
                Field::Discipline => huijiao_protocol::codes::discipline_name(&text).map(str::to_string),
                Field::Industry => huijiao_protocol::codes::industry_name(&text).map(str::to_string),
                _ => None,
            };
            if let Some(name) = name.filter(|n| !n.is_empty() && !text.is_empty()) {
                text = format!("{text} {name}");
            }
            if text.is_empty() {
                text = "—".into();
            }
            let _ = write!(body, "<dt>{}</dt><dd data-field=\"{}\">{}</dd>", esc(f.zh()), f.key(), rec_text(&text));
        }
        let _ = write!(body, "</dl><p><a class=\"back\" href=\"{}\">返回检索</a></p></article>", esc(&back));
        Ok(Html(page(&h.stored.record.title, "search", &body)).into_response())
    };
    run.await.unwrap_or_else(error_page)
}

/// The groupings the statistics page draws, with their headings.
fn stat_tables(region: &str) -> [(GroupBy, &'static str); 3] {
    let by_region = match region.len() {
        0 => (GroupBy::Province, "按省份"),
        1..=3 => (GroupBy::Prefecture, "按地市"),
        _ => (GroupBy::County, "按区县"),
    };
    [by_region, (GroupBy::Year, "按登记年份"), (GroupBy::Kind, "按成果类型")]
}

async fn stat_groups(api: &Arc<Api>, p: &PageParams) -> Result<Vec<(GroupBy, &'static str, Vec<Group>)>, ApiError> {
    // Statistics have no order and no pages.
    let pairs: Vec<(String, String)> = p.api.iter().filter(|(k, _)| k != "sort" && k != "limit").cloned().collect();
    let req = publish::parse(&pairs, Endpoint::Export, &api.table)?;
    let prefix = req.filters.region.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (by, heading) in stat_tables(&prefix) {
        let r = publish::Request { by: Some(by), ..req.clone() };
        let table = api.table.clone();
        let groups = api.query(move |c| Ok(publish::stats(c, &r, public_view(), &table)?)).await?;
        out.push((by, heading, groups));
    }
    Ok(out)
}

async fn stats(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let p = page_params(pairs, &api.table);
    let run = async {
        limit(&api, addr)?;
        if let Some(e) = &p.error {
            return Err(ApiError::Param(e.clone()));
        }
        let tables = stat_groups(&api, &p).await?;
        let mut body = form(&p, &api.table, "/stats", false);
        let _ = write!(
            body,
            "<p class=\"summary\">公开成果统计 <a class=\"download\" href=\"{}\" download>下载 CSV</a></p>",
            esc(&url("/stats.csv", &page_pairs(&p)))
        );
        for (by, heading, groups) in &tables {
            let max = groups.iter().map(|g| g.count).max().unwrap_or(0).max(1);
            let total: u64 = groups.iter().map(|g| g.count).sum();
            let _ = write!(
                body,
                "<section class=\"chart\" data-by=\"{}\"><h2>{heading}<small>合计 {total}</small></h2><table>",
                publish::group_label(*by)
            );
            for g in groups {
                let label = if g.name.is_empty() {
                    if g.key.is_empty() {
                        "未填".to_string()
                    } else {
                        g.key.clone()
                    }
                } else {
                    g.name.clone()
                };
                let pct = g.count as f64 * 100.0 / max as f64;
                let _ = write!(
                    body,
                    "<tr><th title=\"{}\">{}</th><td class=\"bar\"><svg viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><rect width=\"{:.1}\" height=\"10\" rx=\"1\"/></svg></td><td class=\"n\">{}</td></tr>",
                    esc(&label),
                    esc(&label),
                    pct.max(0.5),
                    g.count
                );
            }
            body.push_str("</table></section>");
        }
        Ok::<_, ApiError>(Html(page("统计", "stats", &body)).into_response())
    };
    match run.await {
        Ok(r) => r,
        Err(ApiError::Param(e)) => {
            let mut body = form(&p, &api.table, "/stats", false);
            let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(&zh_message(&e, &p)));
            (StatusCode::BAD_REQUEST, Html(page("统计", "stats", &body))).into_response()
        }
        Err(e) => error_page(e),
    }
}

/// The statistics page's tables as one CSV (UTF-8 with BOM, for Excel).
async fn stats_csv(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let run = async {
        limit(&api, addr)?;
        let p = page_params(pairs, &api.table);
        if let Some(e) = p.error.clone() {
            return Err(ApiError::Param(e));
        }
        let tables = stat_groups(&api, &p).await?;
        let mut out = vec![0xEF, 0xBB, 0xBF];
        let row = |out: &mut Vec<u8>, cells: &[String]| huijiao_protocol::table::write_csv_row(out, cells).expect("writing to memory");
        row(&mut out, &["分组".into(), "代码".into(), "名称".into(), "数量".into()]);
        for (_, heading, groups) in &tables {
            for g in groups {
                row(&mut out, &[heading.to_string(), g.key.clone(), g.name.clone(), g.count.to_string()]);
            }
        }
        Ok::<_, ApiError>(
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
                    (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"huijiao-stats.csv\"")),
                ],
                out,
            )
                .into_response(),
        )
    };
    run.await.unwrap_or_else(error_page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parameters_take_the_deepest_region_and_years() {
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let t = RegionTable::embedded();
        let p = page_params(
            pairs(&[("q", "水稻"), ("province", "420000"), ("prefecture", "420100"), ("county", ""), ("year_from", "2024")]),
            t,
        );
        assert_eq!(p.region, "420100");
        assert!(p.error.is_none());
        assert!(p.api.contains(&("reg_date".to_string(), "2024-01-01..".to_string())));
        assert_eq!(page_params(pairs(&[("year_to", "20x5")]), t).error.unwrap().param, "year_to");
        // Without the script, a city of another province stays picked: it is dropped.
        let p = page_params(pairs(&[("province", "440000"), ("prefecture", "420100"), ("county", "420102")]), t);
        assert_eq!(p.region, "440000");
        // A 省直辖县 is picked as the province's second level.
        assert_eq!(page_params(pairs(&[("province", "420000"), ("prefecture", "429004")]), t).region, "429004");
        // The API's other parameters pass through (and are refused as the API refuses them).
        let p = page_params(pairs(&[("trl", "12"), ("sort", "xyz"), ("utm_source", "wx")]), t);
        assert_eq!(p.extra, vec![("trl".to_string(), "12".to_string()), ("sort".to_string(), "xyz".to_string())]);
        let pickers = region_pickers(t, "420102");
        assert!(pickers.contains("<option value=\"420000\" selected>湖北省"), "{pickers}");
        assert!(pickers.contains("<option value=\"420100\" selected>武汉市"));
        assert!(pickers.contains("<option value=\"420102\" selected>江岸区"));
        assert_eq!(region_path(t, "420102"), "湖北省 武汉市 江岸区");
        assert_eq!(region_code("湖北省", t).as_deref(), Some("420000"));
        assert_eq!(region_code("42", t).as_deref(), Some("420000"));
    }
}
