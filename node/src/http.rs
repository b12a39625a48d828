//! The read API over the catalogue (`[http]`): public endpoints under `/api/v1/`, the
//! operators' under `/api/v1/operator/` behind a bearer token. `docs/openapi.json`
//! describes both; a test holds the server to it.
//!
//! Every query runs on a blocking thread with a catalogue connection from a small
//! pool, under a cap on concurrent queries and a deadline (an overrunning query is
//! interrupted and answered 503). Each client address has a token bucket (429 when
//! empty). Exports stream through a bounded channel, so a ten-million-row export holds
//! a few chunks in memory and stops when the client goes away.

use crate::config::Http;
use crate::publish::{self, Endpoint, ParamError, Request};
use crate::store::catalogue::{Catalogue, ListingError, View};
use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use huijiao_protocol::regions::Level;
use huijiao_protocol::RegionTable;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The file in `data_dir` where the node writes the address its API bound.
pub const HTTP_ADDRESS_FILE: &str = "http-address";

/// Queries run at once; more wait up to [`QUEUE_WAIT`], then get 503.
const MAX_QUERIES: usize = 4;
const MAX_EXPORTS: usize = 2;
const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// `Retry-After` of a 503 (too many queries or exports at once, a query stopped).
const BUSY_RETRY_SECS: u64 = 5;
/// Idle catalogue connections kept.
const POOL: usize = 4;
/// Client addresses remembered by the rate limiter before the idle ones are dropped.
const MAX_CLIENTS: usize = 10_000;

/// What the handlers share.
pub struct Api {
    pub(crate) cfg: Arc<crate::config::Config>,
    data_dir: PathBuf,
    pub(crate) table: Arc<RegionTable>,
    token: TokenFile,
    /// Sign-in sessions of the pages (`/admin`).
    pub(crate) sessions: crate::web::session::Sessions,
    pool: Mutex<Vec<Catalogue>>,
    queries: Semaphore,
    exports: Arc<Semaphore>,
    limiter: Limiter,
    query_timeout: Duration,
}

/// Reads the operators' token: one line of at least 16 characters in a file only its
/// owner can read.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    crate::pki::check_key_permissions(path)?;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the API token file {}", path.display()))?;
    let token = text.trim().to_string();
    if token.chars().count() < 16 || token.chars().any(char::is_whitespace) {
        anyhow::bail!("the API token in {} must be one word of at least 16 characters", path.display());
    }
    Ok(token)
}

impl Api {
    pub fn new(cfg: Arc<crate::config::Config>) -> anyhow::Result<Api> {
        let http: &Http = cfg.http.as_ref().context("no [http] section")?;
        let token = TokenFile::open(http.token_file.clone())?;
        Ok(Api {
            data_dir: cfg.data_dir.clone(),
            table: cfg.regions.clone(),
            token,
            sessions: Default::default(),
            pool: Mutex::new(Vec::new()),
            queries: Semaphore::new(MAX_QUERIES),
            exports: Arc::new(Semaphore::new(MAX_EXPORTS)),
            limiter: Limiter::new(http.rate_per_minute),
            query_timeout: http.query_timeout,
            cfg,
        })
    }

    fn take(&self) -> crate::store::Result<Catalogue> {
        let pooled = self.pool.lock().expect("pool lock").pop();
        match pooled {
            Some(c) => Ok(c),
            None => Catalogue::open(&self.data_dir),
        }
    }

    fn give_back(&self, c: Catalogue) {
        let mut pool = self.pool.lock().expect("pool lock");
        if pool.len() < POOL {
            pool.push(c);
        }
    }

    /// Runs `f` on a pooled catalogue on a blocking thread, within the caps.
    pub(crate) async fn query<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Catalogue) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let _permit = tokio::time::timeout(QUEUE_WAIT, self.queries.acquire())
            .await
            .map_err(|_| ApiError::Busy("too many queries at once; try again in a moment".into()))?
            .map_err(|_| ApiError::Busy("shutting down".into()))?;
        let cat = self.take()?;
        let interrupt = cat.interrupt_handle();
        let api = self.clone();
        let job = tokio::task::spawn_blocking(move || {
            let r = f(&cat);
            api.give_back(cat);
            r
        });
        match tokio::time::timeout(self.query_timeout, job).await {
            Ok(joined) => joined.map_err(|e| ApiError::Internal(anyhow::anyhow!("query task failed: {e}")))?,
            Err(_) => {
                interrupt.interrupt();
                Err(ApiError::Busy(format!(
                    "the query took longer than {} ms and was stopped; narrow it (a region, a year, a longer search word)",
                    self.query_timeout.as_millis()
                )))
            }
        }
    }

    /// Whether `given` is the operators' token (false when there is none).
    pub(crate) fn token_matches(&self, given: &str) -> bool {
        self.token_value().is_some_and(|t| constant_time_eq(given.trim().as_bytes(), t.as_bytes()))
    }

    /// The operators' token as its file holds it now, when there is one.
    pub(crate) fn token_value(&self) -> Option<String> {
        self.token.current()
    }

    /// Whether operators can sign in at all.
    pub(crate) fn has_token(&self) -> bool {
        self.token_value().is_some()
    }

    fn operator(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = self.token_value() else {
            return Err(ApiError::Forbidden("the operator endpoints are off: this node has no [http] token_file".into()));
        };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if constant_time_eq(g.trim().as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// The operators' token file, read again whenever it changes: a new token takes effect
/// without a restart, and ends every session opened with the old one. A file that has
/// become unreadable or invalid turns the operator endpoints off (logged) until fixed.
struct TokenFile {
    path: Option<PathBuf>,
    /// The file's identity when last read, and what it held.
    cached: Mutex<(Option<FileStamp>, Option<String>)>,
}

impl TokenFile {
    fn open(path: Option<PathBuf>) -> anyhow::Result<TokenFile> {
        let t = TokenFile { path, cached: Mutex::new((None, None)) };
        if let Some(p) = &t.path {
            let token = read_token(p)?;
            *t.cached.lock().expect("token lock") = (stamp(p), Some(token));
        }
        Ok(t)
    }

    fn current(&self) -> Option<String> {
        let path = self.path.as_deref()?;
        let now = stamp(path);
        let mut c = self.cached.lock().expect("token lock");
        if now.is_none() || now != c.0 {
            c.1 = match read_token(path) {
                Ok(t) => Some(t),
                Err(e) => {
                    if c.1.is_some() || c.0.is_some() {
                        tracing::warn!("the operators' token is off until its file is fixed: {e:#}");
                    }
                    None
                }
            };
            c.0 = now;
        }
        c.1.clone()
    }
}

/// What tells a changed file: inode, length, modification time.
type FileStamp = (u64, u64, std::time::SystemTime);

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request failed; each becomes a JSON body `{"error": …}` with its status.
#[derive(Debug)]
pub enum ApiError {
    Param(ParamError),
    NotFound(String),
    Unauthorized,
    Forbidden(String),
    TooMany(u64),
    Busy(String),
    Internal(anyhow::Error),
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.was_interrupted() {
            ApiError::Busy("the query was stopped: it took too long".into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::Param(e)
    }
}

impl From<ListingError> for ApiError {
    fn from(e: ListingError) -> Self {
        match e {
            ListingError::BadCursor => {
                ApiError::Param(ParamError { param: "cursor".into(), message: "not a cursor this listing gave out".into() })
            }
            ListingError::Store(e) => e.into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<crate::store::StoreError>() {
            Ok(store) => store.into(),
            Err(e) => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Param(p) => (StatusCode::BAD_REQUEST, json!({"error": p.to_string(), "parameter": p.param})),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, json!({"error": m})),
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, json!({"error": "an operator token is required: Authorization: Bearer <token>"}))
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, json!({"error": m})),
            ApiError::TooMany(s) => {
                (StatusCode::TOO_MANY_REQUESTS, json!({"error": format!("too many requests from this address; retry in {s} s")}))
            }
            ApiError::Busy(m) => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": m})),
            ApiError::Internal(e) => {
                tracing::error!("API request failed: {e:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error; the node's log has the details"}))
            }
        };
        let mut r = (status, Json(body)).into_response();
        match self {
            ApiError::Unauthorized => {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooMany(s) => {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            ApiError::Busy(_) => {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY_SECS));
            }
            _ => {}
        }
        r
    }
}

/// A token bucket per client address: `rate` per minute, bursts of a tenth of it.
struct Limiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Limiter {
    fn new(per_minute: u32) -> Limiter {
        let per_sec = f64::from(per_minute) / 60.0;
        Limiter { per_sec, burst: (f64::from(per_minute) / 10.0).max(5.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `ip`, or says how many seconds until one is there.
    fn take(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut b = self.buckets.lock().expect("limiter lock");
        if b.len() >= MAX_CLIENTS {
            let (per_sec, burst) = (self.per_sec, self.burst);
            b.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_sec < burst);
        }
        let (tokens, at) = b.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

type Params = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

fn params(p: Params) -> Result<Vec<(String, String)>, ApiError> {
    match p {
        Ok(Query(v)) => Ok(v),
        Err(e) => Err(ApiError::Param(ParamError { param: "query string".into(), message: e.body_text() })),
    }
}

/// The router; `serve` binds it.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/records", get(public_records))
        .route("/api/v1/records/{reg_no}", get(public_record))
        .route("/api/v1/stats", get(public_stats))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/export", get(public_export))
        .route("/api/v1/operator/records", get(operator_records))
        .route("/api/v1/operator/records/{reg_no}", get(operator_record))
        .route("/api/v1/operator/stats", get(operator_stats))
        .route("/api/v1/operator/export", get(operator_export))
        .merge(crate::web::routes())
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") {
                ApiError::NotFound("no such endpoint; see docs/openapi.json".into()).into_response()
            } else {
                crate::web::not_found()
            }
        })
        .with_state(api)
        .layer(axum::middleware::map_response(security_headers))
}

/// The policy every answer carries (the one place that sets it): scripts, styles and
/// images only from this node (no inline script; the pages have none), never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every answer, pages, API and errors alike.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

pub(crate) fn public_view() -> View {
    View::Public { today: crate::clock::today() }
}

pub(crate) fn limit(api: &Api, addr: SocketAddr) -> Result<(), ApiError> {
    api.limiter.take(addr.ip()).map_err(ApiError::TooMany)
}

async fn public_records(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, p: Params) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    list(api, params(p)?, public_view()).await
}

async fn operator_records(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    api.operator(&headers)?;
    list(api, params(p)?, View::Operator).await
}

async fn list(api: Arc<Api>, pairs: Vec<(String, String)>, view: View) -> Result<Response, ApiError> {
    let req = publish::parse(&pairs, Endpoint::List, &api.table)?;
    let Request { q, filters, sort, limit, limit_capped, cursor, .. } = req;
    let listing = crate::store::catalogue::Listing { q: q.clone(), filters, sort, limit, cursor, view };
    let page = api.query(move |c| Ok(c.list(&listing)?)).await?;
    let records: Vec<Value> = page.hits.iter().map(|h| Value::Object(publish::hit_json(h, view, q.is_some()))).collect();
    Ok(Json(json!({
        "records": records,
        "total": page.total,
        "total_capped": page.total_capped,
        "total_estimated": page.total_estimated,
        "next_cursor": page.next_cursor,
        "limit": limit,
        "limit_capped": limit_capped,
    }))
    .into_response())
}

async fn public_record(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(reg_no): Path<String>,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    one(api, reg_no, public_view()).await
}

async fn operator_record(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(reg_no): Path<String>,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    api.operator(&headers)?;
    one(api, reg_no, View::Operator).await
}

async fn one(api: Arc<Api>, reg_no: String, view: View) -> Result<Response, ApiError> {
    if reg_no.chars().count() > 30 {
        return Err(ApiError::Param(ParamError { param: "reg_no".into(), message: "longer than any registration number".into() }));
    }
    let key = reg_no.clone();
    let hit = api.query(move |c| Ok(c.get(&key, view)?)).await?;
    match hit {
        Some(h) => Ok(Json(Value::Object(publish::hit_json(&h, view, false))).into_response()),
        // The same answer whether the record is unknown or not public: no probing.
        None if matches!(view, View::Public { .. }) => Err(ApiError::NotFound(format!("no public record {reg_no}"))),
        None => Err(ApiError::NotFound(format!("no record {reg_no}"))),
    }
}

async fn public_stats(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, p: Params) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    stats(api, params(p)?, public_view()).await
}

async fn operator_stats(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    api.operator(&headers)?;
    stats(api, params(p)?, View::Operator).await
}

async fn stats(api: Arc<Api>, pairs: Vec<(String, String)>, view: View) -> Result<Response, ApiError> {
    let req = publish::parse(&pairs, Endpoint::Stats, &api.table)?;
    let by = req.by.expect("parse requires by");
    let table = api.table.clone();
    let groups = api.query(move |c| Ok(publish::stats(c, &req, view, &table)?)).await?;
    let total: u64 = groups.iter().map(|g| g.count).sum();
    Ok(Json(json!({"by": publish::group_label(by), "total": total, "groups": groups})).into_response())
}

async fn regions(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, p: Params) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    let mut parent = None;
    let mut level = None;
    for (k, v) in params(p)? {
        match k.as_str() {
            "parent" => {
                if !api.table.contains(&v) {
                    return Err(ParamError { param: k, message: format!("`{v}` is not in the GB/T 2260 table") }.into());
                }
                parent = Some(v);
            }
            "level" => {
                level = Some(match v.as_str() {
                    "province" => Level::Province,
                    "prefecture" => Level::Prefecture,
                    "county" => Level::County,
                    _ => return Err(ParamError { param: k, message: format!("`{v}` is not province, prefecture or county") }.into()),
                })
            }
            _ => return Err(ParamError { param: k, message: "unknown parameter (known: parent, level)".into() }.into()),
        }
    }
    Ok(Json(json!({"regions": publish::regions_json(&api.table, parent.as_deref(), level)})).into_response())
}

async fn public_export(State(api): State<Arc<Api>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, p: Params) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    export(api, params(p)?, public_view()).await
}

async fn operator_export(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    api.operator(&headers)?;
    export(api, params(p)?, View::Operator).await
}

/// Streams an export: a blocking thread writes 64 KiB chunks into a channel of a few.
async fn export(api: Arc<Api>, pairs: Vec<(String, String)>, view: View) -> Result<Response, ApiError> {
    let req = publish::parse(&pairs, Endpoint::Export, &api.table)?;
    let format = req.format.unwrap_or(publish::Format::Csv);
    let permit = api
        .exports
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy(format!("{MAX_EXPORTS} exports are running; try again when one is done")))?;
    let cat = api.take()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut w = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        if let Err(e) = publish::export(&cat, req.q.as_deref(), &req.filters, view, format, &mut w) {
            if e.downcast_ref::<std::io::Error>().is_none_or(|io| io.kind() != std::io::ErrorKind::BrokenPipe) {
                tracing::error!("export failed: {e:#}");
                let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let name = format!("attachment; filename=\"huijiao-export.{}\"", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(format.content_type())),
            (header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).expect("ASCII")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

const CHUNK: usize = 64 * 1024;

/// An `io::Write` that sends full chunks down a channel; a closed channel (the client
/// went away) is a broken pipe, which ends the export.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Binds the API's address; errors (a taken port) stop the node before it runs.
pub async fn bind(http: &Http) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(http.address).await.with_context(|| format!("cannot listen for HTTP on {}", http.address))
}

/// Serves the API until `shutdown`; open connections get three seconds to finish.
pub async fn serve(api: Arc<Api>, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
    let server = tokio::spawn(async move { server.await });
    shutdown.cancelled().await;
    match tokio::time::timeout(Duration::from_secs(3), server).await {
        Ok(r) => r.context("the HTTP server failed")?.context("the HTTP server failed"),
        Err(_) => {
            tracing::warn!("HTTP connections did not finish within 3 s; closing them");
            Ok(())
        }
    }
}
