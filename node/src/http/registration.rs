//! The online registration API (spec v1.2 §6.4): units under `/api/v1/unit/` with a
//! bearer token of their own, the office under `/api/v1/operator/` with the operators'
//! token. Every answer a `Refused` becomes is here, in one place.

// The gates return the early answer itself (a `Response`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::state::{limit, Api, ApiError};
use crate::registration::{evidence, submission_json, Account, Refused, Registration};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use huijiao_protocol::registration::{State as SubState, MAX_ATTACHMENT_BYTES, MAX_JSON_BODY};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The routes of online registration.
pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/v1/unit/password", post(unit_password))
        .route("/api/v1/unit/token", post(unit_token))
        .route("/api/v1/unit/submissions", post(unit_create).get(unit_list))
        .route("/api/v1/unit/submissions/{id}", get(unit_get).put(unit_update))
        .route("/api/v1/unit/submissions/{id}/submit", post(unit_submit))
        .route("/api/v1/unit/submissions/{id}/attachments", post(unit_attach))
        .route("/api/v1/unit/submissions/{id}/attachments/{n}", get(unit_attachment))
        .route("/api/v1/unit/submissions/{id}/pass", post(unit_pass))
        .route("/api/v1/unit/submissions/{id}/return", post(unit_return))
        .route("/api/v1/unit/members", post(unit_add_member).get(unit_members))
        .route("/api/v1/unit/members/{login}/disable", post(unit_disable_member))
        .route("/api/v1/unit/members/{login}/enable", post(unit_enable_member))
        .route("/api/v1/unit/members/{login}/reset", post(unit_reset_member))
        .route("/api/v1/operator/units", post(operator_add_unit).get(operator_units))
        .route("/api/v1/operator/units/{uscc}/reset", post(operator_reset_unit))
        .route("/api/v1/operator/units/{uscc}/disable", post(operator_disable_unit))
        .route("/api/v1/operator/units/{uscc}/enable", post(operator_enable_unit))
        .route("/api/v1/operator/submissions", get(operator_submissions))
        .route("/api/v1/operator/submissions/{id}", get(operator_submission))
        .route("/api/v1/operator/submissions/{id}/attachments/{n}", get(operator_attachment))
        .route("/api/v1/operator/submissions/{id}/approve", post(operator_approve))
        .route("/api/v1/operator/submissions/{id}/return", post(operator_return))
}

/// How a refusal is answered: a status and `{"error", "code"?, "errors"?}`.
pub(crate) fn refused(r: Refused) -> Response {
    let (status, body) = match r {
        Refused::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({"error": m})),
        Refused::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            json!({"error": "sign in first: a unit's token (Authorization: Bearer <token>) or its code and password"}),
        ),
        Refused::Forbidden(code, m) => (StatusCode::FORBIDDEN, json!({"error": m, "code": code})),
        Refused::NotFound => (StatusCode::NOT_FOUND, json!({"error": "no such submission"})),
        Refused::Conflict(m) => (StatusCode::CONFLICT, json!({"error": m})),
        Refused::Invalid(errors) => (StatusCode::UNPROCESSABLE_ENTITY, json!({"error": "the submission breaks a rule", "errors": errors})),
        Refused::TooMany(wait) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": format!("too many failed sign-ins for this account; try again in {wait} s")})),
            )
                .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return r;
        }
        Refused::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": m})),
        Refused::Store(e) => return ApiError::from(e).into_response(),
        Refused::Internal(e) => return ApiError::Internal(e).into_response(),
    };
    (status, Json(body)).into_response()
}

/// The service, or 404 where online registration is off.
fn service(api: &Api) -> Result<&Registration, Response> {
    api.registration.as_deref().ok_or_else(|| {
        (StatusCode::NOT_FOUND, Json(json!({"error": "online registration is off at this node (no [registration] section)"})))
            .into_response()
    })
}

/// The account (a unit, or one of its members) a bearer token names.
fn bearer(reg: &Registration, headers: &HeaderMap) -> Result<Account, Response> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    token.and_then(|t| reg.auth.bearer(t.trim())).ok_or_else(|| refused(Refused::Unauthorized))
}

/// The unit handlers' gate: the client's rate, the service, the bearer's account.
fn unit_gate<'a>(api: &'a Api, addr: SocketAddr, headers: &HeaderMap) -> Result<(&'a Registration, Account), Response> {
    rate(api, addr)?;
    let reg = service(api)?;
    Ok((reg, bearer(reg, headers)?))
}

/// The operator handlers' gate: the client's rate, the operators' token, the service.
fn operator_gate<'a>(api: &'a Api, addr: SocketAddr, headers: &HeaderMap) -> Result<&'a Registration, Response> {
    rate(api, addr)?;
    operator(api, headers)?;
    service(api)
}

/// Bodies held at once (uploads of evidence, submissions with inline attachments): each
/// is read whole, up to its cap, so this bounds their memory (4 × 20 MiB).
static BODIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// A place among the bodies held at once, waited for a few seconds (else 503).
async fn body_slot() -> Result<tokio::sync::SemaphorePermit<'static>, Response> {
    match tokio::time::timeout(std::time::Duration::from_secs(10), BODIES.acquire()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(refused(Refused::Unavailable("too many uploads at once; try again in a moment".into()))),
    }
}

/// A JSON object body of at most [`MAX_JSON_BODY`] bytes.
async fn object(body: Body) -> Result<Map<String, Value>, Response> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY).await.map_err(|_| {
        (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": format!("a JSON body is at most {} MiB", MAX_JSON_BODY >> 20)})))
            .into_response()
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(refused(Refused::BadRequest("the body is a JSON object".into()))),
        Err(e) => Err(refused(Refused::BadRequest(format!("the body is not JSON: {e}")))),
    }
}

fn text(m: &Map<String, Value>, key: &str) -> String {
    m.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

fn rate(api: &Api, addr: SocketAddr) -> Result<(), Response> {
    limit(api, addr).map_err(IntoResponse::into_response)
}

async fn unit_password(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, body: Body) -> Response {
    tri!(rate(&api, addr));
    let reg = tri!(service(&api));
    let m = tri!(object(body).await);
    let changed = if m.contains_key("login") {
        reg.change_member_password(&text(&m, "login"), &text(&m, "password"), &text(&m, "new_password")).await
    } else {
        reg.change_password(&text(&m, "uscc"), &text(&m, "password"), &text(&m, "new_password")).await
    };
    match changed {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_token(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, body: Body) -> Response {
    tri!(rate(&api, addr));
    let reg = tri!(service(&api));
    let m = tri!(object(body).await);
    let signed_in = if m.contains_key("login") {
        reg.member_token(&text(&m, "login"), &text(&m, "password")).await
    } else {
        reg.token(&text(&m, "uscc"), &text(&m, "password")).await
    };
    match signed_in {
        Ok((token, expires_in)) => Json(json!({"token": token, "expires_in": expires_in})).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_create(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    let _slot = tri!(body_slot().await);
    let m = tri!(object(body).await);
    match reg.save(&acc, None, m).await {
        Ok(s) => (StatusCode::CREATED, Json(json!({"id": s.id, "state": s.state.as_str()}))).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_update(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    let _slot = tri!(body_slot().await);
    let mut m = tri!(object(body).await);
    // A replaced object stays where it is (a draft, or returned); `…/submit` submits.
    m.insert("draft".into(), Value::Bool(true));
    match reg.save(&acc, Some(&id), m).await {
        Ok(s) => Json(submission_json(&s)).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_submit(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    match reg.submit(&acc, &id).await {
        Ok(s) => Json(submission_json(&s)).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_list(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    match reg.submissions(Some(&acc), None).await {
        Ok(list) => Json(json!({"submissions": list.iter().map(submission_json).collect::<Vec<_>>()})).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_get(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    match reg.submission(Some(&acc), &id).await {
        Ok(s) => Json(submission_json(&s)).into_response(),
        Err(r) => refused(r),
    }
}

/// Evidence as raw bytes: read while it arrives and stopped as soon as it passes the
/// cap, so an oversized upload is never held whole; a few at once (see [`BODIES`]).
async fn unit_attach(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    // Not the unit's (or no such) submission: 404 before a byte is read.
    if let Err(r) = reg.submission(Some(&acc), &id).await {
        return refused(r);
    }
    // A declared length over the cap is refused before a byte is read; an undeclared or
    // false one is stopped as soon as the bytes pass the cap.
    let declared = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ATTACHMENT_BYTES) {
        return refused(Refused::Invalid(vec![evidence::too_large()]));
    }
    let _slot = tri!(body_slot().await);
    let mut stream = body.into_data_stream();
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return refused(Refused::BadRequest("the upload broke off".into())) };
        if bytes.len() as u64 + chunk.len() as u64 > MAX_ATTACHMENT_BYTES {
            return refused(Refused::Invalid(vec![evidence::too_large()]));
        }
        bytes.extend_from_slice(&chunk);
    }
    let (ty, name) = (q.get("type").cloned().unwrap_or_default(), q.get("name").cloned().unwrap_or_default());
    match reg.add_attachment(&acc, &id, &ty, &name, bytes).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_attachment(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, n)): Path<(String, u32)>,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    attachment(reg, &id, n, Some(&acc)).await
}

async fn unit_pass(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    match reg.unit_pass(&acc, &id).await {
        Ok(s) => Json(submission_json(&s)).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_return(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    let m = tri!(object(body).await);
    match reg.unit_return(&acc, &id, &text(&m, "reason")).await {
        Ok(s) => Json(submission_json(&s)).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_add_member(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    let m = tri!(object(body).await);
    let login = m.get("login").and_then(Value::as_str);
    match reg.add_member(&acc, &text(&m, "name"), login).await {
        Ok(n) => (StatusCode::CREATED, Json(json!(n))).into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_members(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    match reg.members(&acc).await {
        Ok(list) => Json(json!({"members": list})).into_response(),
        Err(r) => refused(r),
    }
}

async fn member_switch(api: Arc<Api>, addr: SocketAddr, headers: HeaderMap, login: String, disabled: bool) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    match reg.set_member_disabled(&acc, &login, disabled).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn unit_disable_member(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Response {
    member_switch(api, addr, headers, login, true).await
}

async fn unit_enable_member(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Response {
    member_switch(api, addr, headers, login, false).await
}

async fn unit_reset_member(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Response {
    let (reg, acc) = tri!(unit_gate(&api, addr, &headers));
    match reg.reset_member(&acc, &login).await {
        Ok(n) => Json(json!(n)).into_response(),
        Err(r) => refused(r),
    }
}

/// Evidence as a file that is never a page: its own content type (PDF and images
/// inline, OFD downloaded), `Content-Security-Policy: sandbox`, no sniffing.
pub(crate) async fn attachment(reg: &Registration, id: &str, n: u32, acc: Option<&Account>) -> Response {
    let (i, a) = (id.to_string(), acc.cloned());
    let found = match reg.store.read(move |r| r.attachment(&i, n, a.as_ref())).await {
        Ok(f) => f,
        Err(e) => return refused(Refused::Store(e)),
    };
    let Some((a, bytes)) = found else { return refused(Refused::NotFound) };
    let Some(format) = evidence::format_of(&a.format) else { return refused(Refused::NotFound) };
    let ascii: String = a.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    let encoded: String = a
        .name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'.' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let disposition =
        format!("{}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}", if format.inline() { "inline" } else { "attachment" });
    let mut r = Response::new(Body::from(Bytes::from(bytes)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// The operator check, as a response.
fn operator(api: &Api, headers: &HeaderMap) -> Result<(), Response> {
    api.operator(headers).map_err(IntoResponse::into_response)
}

async fn operator_add_unit(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    let m = tri!(object(body).await);
    match reg.add_unit(&text(&m, "uscc"), &text(&m, "name")).await {
        Ok(u) => (StatusCode::CREATED, Json(json!(u))).into_response(),
        Err(r) => refused(r),
    }
}

async fn operator_units(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    match reg.store.read(|r| r.units()).await {
        Ok(units) => Json(json!({"units": units})).into_response(),
        Err(e) => refused(Refused::Store(e)),
    }
}

async fn operator_reset_unit(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uscc): Path<String>,
) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    match reg.reset_unit(&uscc).await {
        Ok(u) => Json(json!(u)).into_response(),
        Err(r) => refused(r),
    }
}

async fn disable(api: Arc<Api>, addr: SocketAddr, headers: HeaderMap, uscc: String, disabled: bool) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    match reg.set_disabled(&uscc, disabled).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn operator_disable_unit(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uscc): Path<String>,
) -> Response {
    disable(api, addr, headers, uscc, true).await
}

async fn operator_enable_unit(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uscc): Path<String>,
) -> Response {
    disable(api, addr, headers, uscc, false).await
}

async fn operator_submissions(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    let state = match q.get("state").map(String::as_str) {
        None | Some("") => None,
        Some(s) => match SubState::parse(s) {
            Some(st) => Some(st),
            None => {
                return ApiError::Param(crate::publish::ParamError {
                    param: "state".into(),
                    message: "one of draft, unit_review, submitted, registered, returned, withdrawn".into(),
                })
                .into_response()
            }
        },
    };
    match reg.submissions(None, state).await {
        Ok(list) => Json(json!({"submissions": list.iter().map(submission_json).collect::<Vec<_>>()})).into_response(),
        Err(r) => refused(r),
    }
}

async fn operator_submission(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    match reg.submission(None, &id).await {
        Ok(s) => Json(submission_json(&s)).into_response(),
        Err(r) => refused(r),
    }
}

async fn operator_attachment(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, n)): Path<(String, u32)>,
) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    attachment(reg, &id, n, None).await
}

async fn operator_approve(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    let m = tri!(object(body).await);
    match reg.approve(&id, &text(&m, "reviewer")).await {
        Ok((reg_no, version)) => Json(json!({"reg_no": reg_no, "version": version})).into_response(),
        Err(r) => refused(r),
    }
}

async fn operator_return(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let reg = tri!(operator_gate(&api, addr, &headers));
    let m = tri!(object(body).await);
    match reg.return_to_unit(&id, &text(&m, "reviewer"), &text(&m, "reason")).await {
        Ok(state) => Json(json!({"state": state.as_str()})).into_response(),
        Err(r) => refused(r),
    }
}
