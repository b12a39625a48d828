//! The packages' JSON API (docs/openapi.json, tag "packages"): the operators define,
//! preview, publish and retire (`/api/v1/operator/packages/…`); anyone lists packages,
//! reads a version's records (paged, one no longer public as its number and state
//! only) and exports a version as the catalogue exports.

// The gates return the early answer itself (a `Response`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::api::export_request;
use super::state::{limit, params, public_view, Api, ApiError, Params};
use crate::packages::{Packages, Refused};
use crate::publish::{self, Endpoint, ParamError};
use crate::store::catalogue::Member;
use crate::store::packages::{Package, Version};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/v1/packages", get(public_list))
        .route("/api/v1/packages/{slug}", get(public_latest))
        .route("/api/v1/packages/{slug}/versions/{n}", get(public_version))
        .route("/api/v1/packages/{slug}/export", get(public_export))
        .route("/api/v1/operator/packages", get(operator_list))
        .route("/api/v1/operator/packages/{slug}", get(operator_get).put(operator_put))
        .route("/api/v1/operator/packages/{slug}/preview", get(operator_preview))
        .route("/api/v1/operator/packages/{slug}/publish", post(operator_publish))
        .route("/api/v1/operator/packages/{slug}/retire", post(operator_retire))
}

/// A refusal as the API answers it.
pub(crate) fn refused(r: Refused) -> Response {
    let (status, body) = r.answer();
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response();
    if status == 503 {
        resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(5));
    }
    resp
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

fn service(api: &Api) -> &Packages {
    &api.packages
}

/// A package as the public sees it: its latest version's description.
pub(crate) fn summary_json(p: &Package, v: &Version) -> Value {
    json!({
        "slug": p.slug,
        "title": v.title,
        "field": v.field,
        "description": v.description,
        "version": v.version,
        "published_at": crate::clock::rfc3339_china(v.published_at),
        "count": v.count,
        "retired": p.retired_at.is_some(),
    })
}

async fn public_list(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let list = tri!(service(&api).list().await.map_err(refused));
    let packages: Vec<Value> = list.iter().filter_map(|p| p.latest.as_ref().map(|v| summary_json(p, v))).collect();
    Json(json!({"packages": packages})).into_response()
}

async fn public_latest(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    p: Params,
) -> Response {
    version_answer(api, addr, slug, None, p).await
}

async fn public_version(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((slug, n)): Path<(String, String)>,
    p: Params,
) -> Response {
    let Ok(n) = n.parse::<i64>() else { return refused(Refused::NotFound) };
    version_answer(api, addr, slug, Some(n), p).await
}

/// The package `slug` and its version `n` (latest when `None`) as the public sees them.
pub(crate) async fn published(api: &Api, slug: &str, n: Option<i64>) -> Result<(Package, Version), Refused> {
    let p = service(api).get(slug).await?;
    let v = match n {
        None => p.latest.clone(),
        Some(n) => {
            let s = slug.to_string();
            service(api).store.read::<_, crate::store::StoreError>(move |r| r.version(&s, n)).await?
        }
    };
    match v {
        Some(v) => Ok((p, v)),
        None => Err(Refused::NotFound),
    }
}

/// `limit` (default 20, at most 100) and `cursor` of a version's records.
fn paging(pairs: &[(String, String)]) -> Result<(usize, bool, i64), ParamError> {
    let (mut lim, mut capped, mut after) = (publish::DEFAULT_LIMIT, false, -1i64);
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ParamError { param: "limit".into(), message: format!("`{v}` is not a positive whole number") })?;
                capped = n > publish::MAX_LIMIT;
                lim = n.min(publish::MAX_LIMIT);
            }
            "cursor" => {
                after = v
                    .strip_prefix('p')
                    .and_then(|n| n.parse::<i64>().ok())
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| ParamError { param: "cursor".into(), message: "not a cursor this listing gave out".into() })?;
            }
            _ => return Err(ParamError { param: k.clone(), message: "unknown parameter (known: limit, cursor)".into() }),
        }
    }
    Ok((lim, capped, after))
}

async fn version_answer(api: Arc<Api>, addr: SocketAddr, slug: String, n: Option<i64>, p: Params) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let pairs = match params(p) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let (lim, capped, after) = match paging(&pairs) {
        Ok(v) => v,
        Err(e) => return ApiError::Param(e).into_response(),
    };
    let (pkg, v) = tri!(published(&api, &slug, n).await.map_err(refused));
    let view = public_view();
    let (s, version) = (slug.clone(), v.version);
    let page = api.query(move |c| Ok(c.members(&s, version, after, lim, view)?)).await;
    let (members, next) = match page {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let records: Vec<Value> = members
        .iter()
        .map(|m| match m {
            Member::Shown(h) => Value::Object(publish::hit_json(h, view, false)),
            Member::Gone { reg_no, state } => json!({"reg_no": reg_no, "state": state.as_str()}),
        })
        .collect();
    let mut body = summary_json(&pkg, &v);
    body["records"] = Value::Array(records);
    body["next_cursor"] = next.map_or(Value::Null, |p| Value::String(format!("p{p}")));
    body["limit"] = json!(lim);
    body["limit_capped"] = json!(capped);
    Json(body).into_response()
}

async fn public_export(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    p: Params,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let pairs = match params(p) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let mut n = None;
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "version" => match v.parse::<i64>() {
                Ok(x) if x > 0 => n = Some(x),
                _ => return ApiError::Param(ParamError { param: k, message: format!("`{v}` is not a version number") }).into_response(),
            },
            "format" => rest.push((k, v)),
            _ => {
                return ApiError::Param(ParamError { param: k, message: "unknown parameter (known: format, version)".into() })
                    .into_response()
            }
        }
    }
    let (_, v) = tri!(published(&api, &slug, n).await.map_err(refused));
    let mut req = match publish::parse(&rest, Endpoint::Export, &api.table) {
        Ok(r) => r,
        Err(e) => return ApiError::Param(e).into_response(),
    };
    req.filters.package = Some((slug.clone(), v.version));
    let name = format!("{slug}-v{}", v.version);
    match export_request(api, req, public_view(), &name).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The operator token, or the API's refusal.
fn operator(api: &Api, headers: &HeaderMap) -> Result<(), Response> {
    api.operator(headers).map_err(IntoResponse::into_response)
}

fn definition_json(p: &Package) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["latest"] = p.latest.as_ref().map_or(Value::Null, |l| summary_json(p, l));
    for k in ["retired_at", "created_at", "updated_at"] {
        if let Some(ms) = v.get(k).and_then(Value::as_i64) {
            v[k] = json!(crate::clock::rfc3339_china(ms));
        }
    }
    v
}

async fn operator_list(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    tri!(operator(&api, &headers));
    let list = tri!(service(&api).list().await.map_err(refused));
    Json(json!({"packages": list.iter().map(definition_json).collect::<Vec<_>>()})).into_response()
}

async fn operator_get(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    tri!(operator(&api, &headers));
    let p = tri!(service(&api).get(&slug).await.map_err(refused));
    Json(definition_json(&p)).into_response()
}

async fn operator_put(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Body,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    tri!(operator(&api, &headers));
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": "a package definition is at most 1 MiB"}))).into_response(),
    };
    let obj: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return (StatusCode::BAD_REQUEST, Json(json!({"error": "the body is a JSON object"}))).into_response(),
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({"error": format!("the body is not JSON: {e}")}))).into_response(),
    };
    let (created, p) = tri!(service(&api).put(&slug, &obj, crate::clock::now_ms()).await.map_err(refused));
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    (status, Json(definition_json(&p))).into_response()
}

async fn operator_preview(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    tri!(operator(&api, &headers));
    let p = tri!(service(&api).preview(&slug, crate::clock::today()).await.map_err(refused));
    Json(p).into_response()
}

async fn operator_publish(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    tri!(operator(&api, &headers));
    let (version, count) =
        tri!(service(&api).publish(&slug, "operator token", crate::clock::today(), crate::clock::now_ms()).await.map_err(refused));
    Json(json!({"version": version, "count": count})).into_response()
}

async fn operator_retire(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    tri!(operator(&api, &headers));
    let p = tri!(service(&api).retire(&slug, "operator token", crate::clock::now_ms()).await.map_err(refused));
    Json(definition_json(&p)).into_response()
}
