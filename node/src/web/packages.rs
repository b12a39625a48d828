//! 科技成果包 on the pages: the public list by priority field (`/packages`), a version's
//! page with the catalogue's filters inside it, what changed since the version before,
//! and Atom feeds of publications (`/packages.atom`, `/packages/{slug}.atom`); and the
//! operators' pages in `/admin` to define, preview, publish and retire a package.

// The gates return the early answer itself (a `Response`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::html::{enc, esc, page, rec_text, url};
use super::{page_params, Scope};
use crate::http::state::{limit, Api, ApiError};
use crate::packages::{Refused, FIELDS};
use crate::store::catalogue::Gone;
use crate::store::packages::{Package, Version};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

fn date_of(ms: i64) -> String {
    crate::clock::rfc3339_china(ms)[..10].to_string()
}

fn refused_page(r: Refused) -> Response {
    let (status, _) = r.answer();
    let body =
        format!("<h1>科技成果包</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/packages\">全部成果包</a></p>", esc(&r.zh()));
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Html(page("科技成果包", "packages", &body))).into_response()
}

fn field_text(f: &Option<String>) -> &str {
    f.as_deref().unwrap_or("综合")
}

/// `/packages`: every published package, by priority field, newest first within each.
pub async fn index(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let list = match api.packages.list().await {
        Ok(l) => l,
        Err(r) => return refused_page(r),
    };
    let published: Vec<(&Package, &Version)> = list.iter().filter_map(|p| p.latest.as_ref().map(|v| (p, v))).collect();
    let mut b = String::from(
        "<h1>科技成果包</h1><p class=\"note\">按重点领域遴选、定期更新的先进适用科技成果。<a href=\"/packages.atom\">订阅更新（Atom）</a></p>",
    );
    if published.is_empty() {
        b.push_str("<p class=\"empty\">还没有发布的成果包。</p>");
    }
    let mut groups: Vec<Option<&str>> = FIELDS.iter().map(|f| Some(*f)).collect();
    groups.push(None);
    for g in groups {
        let mut items: Vec<&(&Package, &Version)> = published.iter().filter(|(_, v)| v.field.as_deref() == g).collect();
        if items.is_empty() {
            continue;
        }
        items.sort_by_key(|(_, v)| std::cmp::Reverse(v.published_at));
        let _ = write!(b, "<section class=\"field\"><h2>{}</h2><ul class=\"packages\">", esc(g.unwrap_or("综合")));
        for (p, v) in items {
            let retired = if p.retired_at.is_some() { " <span class=\"badge\">已停止发布</span>" } else { "" };
            let _ = write!(
                b,
                "<li><a class=\"title\" href=\"/packages/{}\">{}</a>{retired}<div class=\"meta\">第 {} 版 · {} · {} 项成果</div><p class=\"snippet\">{}</p></li>",
                enc(&p.slug),
                rec_text(&v.title),
                v.version,
                date_of(v.published_at),
                v.count,
                rec_text(&v.description.chars().take(120).collect::<String>())
            );
        }
        b.push_str("</ul></section>");
    }
    Html(page("科技成果包", "packages", &b)).into_response()
}

/// `/packages/{slug}` (the latest version) or `/packages/{slug}.atom` (its feed).
pub async fn latest(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(s) = slug.strip_suffix(".atom") {
        return feed(&api, addr, Some(s)).await;
    }
    version_page(api, addr, slug, None, pairs).await
}

/// `/packages/{slug}/versions/{n}`.
pub async fn version(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((slug, n)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let Ok(n) = n.parse::<i64>() else { return refused_page(Refused::NotFound) };
    version_page(api, addr, slug, Some(n), pairs).await
}

/// One piece: a version's page reads top to bottom as a visitor reads it — what the
/// package is, which version, what changed, how to take it away, then its records
/// (the catalogue's listing inside the version) and those no longer shown.
async fn version_page(api: Arc<Api>, addr: SocketAddr, slug: String, n: Option<i64>, pairs: Vec<(String, String)>) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let (pkg, v) = match crate::http::packages::published(&api, &slug, n).await {
        Ok(x) => x,
        Err(r) => return refused_page(r),
    };
    let (s, before) = (slug.clone(), v.version - 1);
    let diff = api
        .packages
        .store
        .read::<_, crate::store::StoreError>(move |r| {
            let now = r.members(&s, before + 1)?;
            let prev = if before > 0 { Some(r.members(&s, before)?) } else { None };
            Ok((now, prev, r.versions(&s)?))
        })
        .await;
    let (members, prev, versions) = match diff {
        Ok(d) => d,
        Err(e) => return refused_page(Refused::Internal(e.into())),
    };
    let path = match n {
        Some(n) => format!("/packages/{slug}/versions/{n}"),
        None => format!("/packages/{slug}"),
    };
    let mut b = String::new();
    let _ = write!(b, "<p class=\"crumbs\"><a href=\"/packages\">科技成果包</a> · {}</p>", esc(field_text(&v.field)));
    let _ = write!(b, "<h1>{}</h1>", rec_text(&v.title));
    if pkg.retired_at.is_some() {
        b.push_str("<p class=\"warn\" role=\"status\">本成果包已停止发布：不再更新，已发布的各版仍可查阅。</p>");
    }
    let latest = pkg.latest.as_ref().map_or(v.version, |l| l.version);
    let _ = write!(b, "<p class=\"meta\">第 {} 版 · {} 发布 · {} 项成果", v.version, date_of(v.published_at), v.count);
    if v.version != latest {
        let _ = write!(b, " · <a href=\"/packages/{}\">最新为第 {latest} 版</a>", enc(&slug));
    }
    b.push_str("</p>");
    for para in v.description.split('\n').filter(|l| !l.trim().is_empty()) {
        let _ = write!(b, "<p class=\"description\">{}</p>", rec_text(para));
    }
    if let Some(prev) = prev {
        let added: Vec<&String> = members.iter().filter(|r| !prev.contains(r)).collect();
        let removed: Vec<&String> = prev.iter().filter(|r| !members.contains(r)).collect();
        let _ = write!(
            b,
            "<details class=\"changes\"><summary>与第 {} 版相比：新增 {} 项，移出 {} 项</summary>",
            v.version - 1,
            added.len(),
            removed.len()
        );
        for (label, list) in [("新增", &added), ("移出", &removed)] {
            if !list.is_empty() {
                let links: Vec<String> = list.iter().map(|r| format!("<a href=\"/records/{}\">{}</a>", enc(r), esc(r))).collect();
                let _ = write!(b, "<p>{label}：{}</p>", links.join("、"));
            }
        }
        b.push_str("</details>");
    }
    let _ = write!(
        b,
        "<p class=\"downloads\">下载本版：<a href=\"{}\" download>CSV</a> · <a href=\"{}\" download>JSONL</a> · <a href=\"/packages/{}.atom\">订阅更新（Atom）</a></p>",
        esc(&url(&format!("/api/v1/packages/{slug}/export"), &[("format", "csv"), ("version", &v.version.to_string())])),
        esc(&url(&format!("/api/v1/packages/{slug}/export"), &[("format", "jsonl"), ("version", &v.version.to_string())])),
        enc(&slug)
    );
    if versions.len() > 1 {
        let links: Vec<String> = versions
            .iter()
            .rev()
            .map(|x| {
                format!(
                    "<a href=\"/packages/{}/versions/{}\">第 {} 版（{}）</a>",
                    enc(&slug),
                    x.version,
                    x.version,
                    date_of(x.published_at)
                )
            })
            .collect();
        let _ = write!(b, "<details class=\"versions\"><summary>全部版本</summary><p>{}</p></details>", links.join(" · "));
    }
    let p = page_params(pairs, &api.table);
    match super::listing_html(&api, &p, &Scope::Package { slug: slug.clone(), version: v.version, path }).await {
        Ok(list) => b.push_str(&list),
        Err(ApiError::Param(e)) => {
            let _ = write!(b, "<p class=\"error\" role=\"alert\">{}</p>", esc(&super::zh_message(&e, &p)));
        }
        Err(e) => return super::error_page(e),
    }
    let today = crate::clock::today();
    let (s, version) = (slug.clone(), v.version);
    let gone = api.query(move |c| Ok(c.gone(&s, version, today)?)).await;
    match gone {
        Ok(g) if !g.is_empty() => {
            let _ = write!(b, "<h2>已撤销或不再公开（{} 项）</h2><ul class=\"gone\">", g.len());
            for (reg_no, state) in g {
                let label = match state {
                    Gone::Withdrawn => "已撤销",
                    Gone::NotPublic => "不再公开",
                };
                let _ = write!(b, "<li>{} · {label}</li>", esc(&reg_no));
            }
            b.push_str("</ul>");
        }
        Ok(_) => {}
        Err(e) => return super::error_page(e),
    }
    Html(page(&v.title, "packages", &b)).into_response()
}

/// `/packages.atom`: every publication, newest first.
pub async fn feed_all(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>) -> Response {
    feed(&api, addr, None).await
}

/// Text for the feed's XML: escaped, and the control characters XML 1.0 cannot carry
/// dropped (a description pasted with one would otherwise break the feed for every
/// reader).
fn xml(s: &str) -> String {
    crate::oai::xml::esc(s)
}

/// The Atom feed of publications, of every package or of one.
async fn feed(api: &Api, addr: SocketAddr, slug: Option<&str>) -> Response {
    if let Err(e) = limit(api, addr) {
        return e.into_response();
    }
    let package = match slug {
        Some(s) => match api.packages.get(s).await {
            Ok(p) if p.latest.is_some() => Some(p),
            Ok(_) => return refused_page(Refused::NotFound),
            Err(r) => return refused_page(r),
        },
        None => None,
    };
    let s = slug.map(str::to_string);
    let entries = match api.packages.store.read::<_, crate::store::StoreError>(move |r| r.publications(s.as_deref(), 50)).await {
        Ok(e) => e,
        Err(e) => return refused_page(Refused::Internal(e.into())),
    };
    let base = api.cfg.http.as_ref().and_then(|h| h.public_url.clone()).unwrap_or_default();
    let node = &api.cfg.node_id;
    let (self_path, alt_path, title) = match &package {
        Some(p) => (
            format!("/packages/{}.atom", p.slug),
            format!("/packages/{}", p.slug),
            format!("{} · 科技成果包", p.latest.as_ref().map_or(p.def.title.as_str(), |v| v.title.as_str())),
        ),
        None => ("/packages.atom".to_string(), "/packages".to_string(), "科技成果包".to_string()),
    };
    // Ids are absolute: the public address when configured, else a URN of this node.
    let id_of = |path: &str| {
        if base.is_empty() {
            format!("urn:huijiao:{node}:{}", path.trim_start_matches('/').replace('/', ":"))
        } else {
            format!("{base}{path}")
        }
    };
    let updated = entries.first().map_or(0, |e| e.published_at);
    let author = api.cfg.registration.as_ref().map_or_else(|| format!("科技成果登记目录 {node}"), |r| r.office.clone());
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">");
    let _ = write!(
        x,
        "<title>{}</title><id>{}</id><updated>{}</updated><link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/><link rel=\"alternate\" type=\"text/html\" href=\"{}\"/><author><name>{}</name></author>",
        xml(&title),
        xml(&id_of(&self_path)),
        crate::clock::rfc3339_china(updated),
        xml(&format!("{base}{self_path}")),
        xml(&format!("{base}{alt_path}")),
        xml(&author)
    );
    for e in &entries {
        let path = format!("/packages/{}/versions/{}", e.slug, e.version);
        // `published` and `updated` are the same instant: a version never changes.
        let _ = write!(
            x,
            "<entry><title>{title}（第 {n} 版）</title><id>{id}</id><published>{at}</published><updated>{at}</updated>\
             <link rel=\"alternate\" type=\"text/html\" href=\"{href}\"/>{category}<summary>{summary}</summary></entry>",
            title = xml(&e.title),
            n = e.version,
            id = xml(&id_of(&path)),
            at = crate::clock::rfc3339_china(e.published_at),
            href = xml(&format!("{base}{path}")),
            category = e.field.as_deref().map(|f| format!("<category term=\"{}\"/>", xml(f))).unwrap_or_default(),
            summary = xml(&format!("{} 项成果。{}", e.count, e.description.chars().take(300).collect::<String>())),
        );
    }
    x.push_str("</feed>\n");
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/atom+xml; charset=utf-8"))], x).into_response()
}
