//! The web pages, served by the `[http]` listener beside the API: the public
//! catalogue (`/`, `/records/{reg_no}`, `/stats`) and the operators' view (`/admin`).
//!
//! Server-rendered HTML with one stylesheet and one small script, both embedded in
//! the binary (no CDN, nothing fetched from outside). Every page works without the
//! script; it only fills the city and county pickers as a province is chosen, and
//! reloads the admin page. The public pages read the public view only, through the
//! same code as the public API; they never call an operator endpoint.

mod admin;
pub mod html;

use crate::http::{limit, public_view, Api, ApiError};
use crate::publish::{self, Endpoint, Group};
use crate::store::catalogue::{GroupBy, Listing};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use html::{enc, esc, options, page, url};
use huijiao_protocol::fields::Field;
use huijiao_protocol::regions::Level;
use huijiao_protocol::RegionTable;
use serde_json::Value;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/", get(search))
        .route("/records/{reg_no}", get(record))
        .route("/stats", get(stats))
        .route("/stats.csv", get(stats_csv))
        .route("/admin", get(admin::show))
        .route("/admin/login", post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/assets/style.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
        .route("/assets/app.js", get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }))
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

/// An error as a page: a bad parameter shows the form's message, the rest their text.
fn error_page(e: ApiError) -> Response {
    let (status, msg) = match &e {
        ApiError::Param(p) => (StatusCode::BAD_REQUEST, format!("参数有误：{p}")),
        ApiError::TooMany(s) => (StatusCode::TOO_MANY_REQUESTS, format!("请求太频繁，请 {s} 秒后再试")),
        ApiError::Busy(m) => (StatusCode::SERVICE_UNAVAILABLE, format!("系统繁忙：{m}")),
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "内部错误，详情见节点日志".to_string()),
    };
    if let ApiError::Internal(err) = &e {
        tracing::error!("page failed: {err:#}");
    }
    let body = format!("<p class=\"error\">{}</p><p><a href=\"/\">回到检索</a></p>", esc(&msg));
    (status, Html(page("出错了", "", &body))).into_response()
}

/// The page's own parameters: the picker's three levels, a year range, paging.
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
    cursor: String,
}

/// Reads a page's query string into API parameters: the deepest region picked (or
/// `region` as given), the years as a `reg_date` range.
fn page_params(pairs: Vec<(String, String)>) -> Result<PageParams, ApiError> {
    let get = |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let region = ["county", "prefecture", "province", "region"].iter().map(|k| get(k)).find(|v| !v.is_empty()).unwrap_or_default();
    let p = PageParams {
        api: Vec::new(),
        q: get("q"),
        region,
        kind: get("kind"),
        stage: get("stage"),
        industry: get("industry"),
        transfer: get("transfer"),
        year_from: get("year_from"),
        year_to: get("year_to"),
        cursor: get("cursor"),
    };
    let year = |v: &str, name: &str| -> Result<String, ApiError> {
        if v.is_empty() || (v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit())) {
            Ok(v.to_string())
        } else {
            Err(ApiError::Param(publish::ParamError { param: name.into(), message: format!("`{v}` is not a year") }))
        }
    };
    let (from, to) = (year(&p.year_from, "year_from")?, year(&p.year_to, "year_to")?);
    let mut api: Vec<(String, String)> = Vec::new();
    for (k, v) in
        [("q", &p.q), ("region", &p.region), ("kind", &p.kind), ("stage", &p.stage), ("industry", &p.industry), ("transfer", &p.transfer)]
    {
        if !v.is_empty() {
            api.push((k.to_string(), v.clone()));
        }
    }
    if !from.is_empty() || !to.is_empty() {
        let a = if from.is_empty() { String::new() } else { format!("{from}-01-01") };
        let b = if to.is_empty() { String::new() } else { format!("{to}-12-31") };
        api.push(("reg_date".into(), format!("{a}..{b}")));
    }
    Ok(PageParams { api, ..p })
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

/// The industry sections of GB/T 4754 (A–T).
const SECTIONS: [(&str, &str); 20] = [
    ("A", "A 农、林、牧、渔业"),
    ("B", "B 采矿业"),
    ("C", "C 制造业"),
    ("D", "D 电力、热力、燃气及水生产和供应业"),
    ("E", "E 建筑业"),
    ("F", "F 批发和零售业"),
    ("G", "G 交通运输、仓储和邮政业"),
    ("H", "H 住宿和餐饮业"),
    ("I", "I 信息传输、软件和信息技术服务业"),
    ("J", "J 金融业"),
    ("K", "K 房地产业"),
    ("L", "L 租赁和商务服务业"),
    ("M", "M 科学研究和技术服务业"),
    ("N", "N 水利、环境和公共设施管理业"),
    ("O", "O 居民服务、修理和其他服务业"),
    ("P", "P 教育"),
    ("Q", "Q 卫生和社会工作"),
    ("R", "R 文化、体育和娱乐业"),
    ("S", "S 公共管理、社会保障和社会组织"),
    ("T", "T 国际组织"),
];

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
    let sections: Vec<(String, String)> = SECTIONS.iter().map(|(c, n)| (c.to_string(), n.to_string())).collect();
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
    if !with_query {
        f.push_str("<button type=\"submit\">统计</button>");
    }
    f.push_str("</details></form>");
    f
}

/// `湖北省 武汉市 江岸区` for a county code.
fn region_path(table: &RegionTable, code: &str) -> String {
    let mut names = Vec::new();
    let mut at = Some(code.to_string());
    while let Some(c) = at {
        match table.get(&c) {
            Some(r) if r.level != Level::National => {
                names.insert(0, r.name.clone());
                at = Some(r.parent.clone());
            }
            _ => break,
        }
    }
    names.join(" ")
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
    match search_inner(api, addr, pairs).await {
        Ok(r) => r,
        Err(e) => error_page(e),
    }
}

async fn search_inner(api: Arc<Api>, addr: SocketAddr, pairs: Vec<(String, String)>) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    let p = page_params(pairs)?;
    let mut list_pairs = p.api.clone();
    if !p.cursor.is_empty() {
        list_pairs.push(("cursor".into(), p.cursor.clone()));
    }
    let req = publish::parse(&list_pairs, Endpoint::List, &api.table)?;
    let view = public_view();
    let listing =
        Listing { q: req.q.clone(), filters: req.filters.clone(), sort: req.sort, limit: req.limit, cursor: req.cursor.clone(), view };
    let result = api.query(move |c| Ok(c.list(&listing)?)).await?;
    let table = &api.table;
    let mut body = form(&p, table, "/", true);
    let shown: Vec<(&str, &str)> = p.api.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let csv = url("/api/v1/export", &[&[("format", "csv")][..], &shown[..]].concat());
    let total = if result.total_capped { format!("{} 条以上", result.total) } else { format!("{} 条", result.total) };
    let _ = write!(
        body,
        "<p class=\"summary\">共 <strong id=\"total\">{}</strong> 公开成果{} <a class=\"download\" href=\"{}\" download>下载 CSV</a></p><ol class=\"results\">",
        esc(&total),
        if p.q.is_empty() { "，按登记日期排列" } else { "，名称命中的在前" },
        esc(&csv)
    );
    for h in &result.hits {
        let r = &h.stored.record;
        let mut meta = vec![r.reg_no.clone(), region_path(table, &r.region), r.kind.zh().to_string(), r.reg_date.to_string()];
        meta.extend(r.stage.clone());
        meta.extend(r.transfer.clone());
        let _ = write!(
            body,
            "<li class=\"hit\"><a class=\"title\" href=\"/records/{}\">{}</a><div class=\"meta\">{}</div><p class=\"snippet\">{}</p></li>",
            enc(&r.reg_no),
            h.title_html,
            esc(&meta.join(" · ")),
            h.snippet_html
        );
    }
    body.push_str("</ol>");
    if result.hits.is_empty() {
        body.push_str("<p class=\"empty\">没有找到符合条件的公开成果。换个关键词（两个字即可，如“水稻”），或放宽筛选。</p>");
    }
    let mut pager = Vec::new();
    if !p.cursor.is_empty() {
        pager.push(format!("<a href=\"{}\">第一页</a>", esc(&url("/", &page_pairs(&p)))));
    }
    if let Some(next) = &result.next_cursor {
        let mut pairs = page_pairs(&p);
        pairs.push(("cursor", next.as_str()));
        pager.push(format!("<a rel=\"next\" href=\"{}\">下一页</a>", esc(&url("/", &pairs))));
    }
    if !pager.is_empty() {
        let _ = write!(body, "<nav class=\"pager\">{}</nav>", pager.join(" "));
    }
    let title = if p.q.is_empty() { "检索".to_string() } else { format!("{} 的检索结果", p.q) };
    Ok(Html(page(&title, "search", &body)).into_response())
}

/// The page's own parameters again, for paging links (the URL of this search).
fn page_pairs(p: &PageParams) -> Vec<(&str, &str)> {
    vec![
        ("q", p.q.as_str()),
        ("region", p.region.as_str()),
        ("kind", p.kind.as_str()),
        ("stage", p.stage.as_str()),
        ("industry", p.industry.as_str()),
        ("transfer", p.transfer.as_str()),
        ("year_from", p.year_from.as_str()),
        ("year_to", p.year_to.as_str()),
    ]
}

async fn record(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, Path(reg_no): Path<String>) -> Response {
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
        let mut body = format!("<article class=\"record\"><h1>{}</h1><dl>", esc(&h.stored.record.title));
        for f in Field::ALL.iter().filter(|f| f.public() && **f != Field::Title) {
            let Some(v) = fields.get(f.key()) else { continue };
            let mut text = text_of(v);
            if *f == Field::Region {
                text = format!("{} {}", text, region_path(&api.table, &text));
            }
            if text.is_empty() {
                text = "—".into();
            }
            let _ = write!(body, "<dt>{}</dt><dd data-field=\"{}\">{}</dd>", esc(f.zh()), f.key(), esc(&text));
        }
        body.push_str("</dl><p><a href=\"/\">返回检索</a></p></article>");
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
    let req = publish::parse(&p.api, Endpoint::Export, &api.table)?;
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
    let run = async {
        limit(&api, addr)?;
        let p = page_params(pairs)?;
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
                    "<tr><th>{}</th><td class=\"bar\"><span style=\"width:{pct:.1}%\"></span></td><td class=\"n\">{}</td></tr>",
                    esc(&label),
                    g.count
                );
            }
            body.push_str("</table></section>");
        }
        Ok::<_, ApiError>(Html(page("统计", "stats", &body)).into_response())
    };
    run.await.unwrap_or_else(error_page)
}

/// The statistics page's tables as one CSV (UTF-8 with BOM, for Excel).
async fn stats_csv(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let run = async {
        limit(&api, addr)?;
        let p = page_params(pairs)?;
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
        let p =
            page_params(pairs(&[("q", "水稻"), ("province", "420000"), ("prefecture", "420100"), ("county", ""), ("year_from", "2024")]))
                .unwrap();
        assert_eq!(p.region, "420100");
        assert!(p.api.contains(&("reg_date".to_string(), "2024-01-01..".to_string())));
        assert!(page_params(pairs(&[("year_to", "20x5")])).is_err());
        let t = RegionTable::embedded();
        let pickers = region_pickers(t, "420102");
        assert!(pickers.contains("<option value=\"420000\" selected>湖北省"), "{pickers}");
        assert!(pickers.contains("<option value=\"420100\" selected>武汉市"));
        assert!(pickers.contains("<option value=\"420102\" selected>江岸区"));
        assert_eq!(region_path(t, "420102"), "湖北省 武汉市 江岸区");
        assert_eq!(region_code("湖北省", t).as_deref(), Some("420000"));
        assert_eq!(region_code("42", t).as_deref(), Some("420000"));
    }
}
