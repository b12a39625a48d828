//! What the HTTP handlers share: the node's configuration and region table, the
//! catalogue connection pool under its caps on concurrent queries and exports, the
//! per-address rate limiter, the operators' token (re-read when its file changes) and
//! the pages' sign-in sessions; and `ApiError`, how a failed request is answered.

use crate::config::Http;
use crate::publish::ParamError;
use crate::store::catalogue::{Catalogue, ListingError, View};
use anyhow::Context;
use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use huijiao_protocol::RegionTable;
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Queries run at once; more wait up to [`QUEUE_WAIT`], then get 503.
pub(super) const MAX_QUERIES: usize = 4;
pub(super) const MAX_EXPORTS: usize = 2;
pub(super) const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// `Retry-After` of a 503 (too many queries or exports at once, a query stopped).
pub(super) const BUSY_RETRY_SECS: u64 = 5;
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
    /// Units' sign-in sessions of their pages (`/unit`).
    pub(crate) unit_sessions: crate::web::session::Sessions,
    pool: Mutex<Vec<Catalogue>>,
    queries: Semaphore,
    pub(super) exports: Arc<Semaphore>,
    limiter: Limiter,
    query_timeout: Duration,
    /// Online registration, where the node's config turns it on.
    pub(crate) registration: Option<Arc<crate::registration::Registration>>,
    /// 科技成果包: every node that serves HTTP can publish them.
    pub(crate) packages: crate::packages::Packages,
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
    pub fn new(cfg: Arc<crate::config::Config>, store: crate::store::Store) -> anyhow::Result<Api> {
        let http: &Http = cfg.http.as_ref().context("no [http] section")?;
        let token = TokenFile::open(http.token_file.clone())?;
        Ok(Api {
            data_dir: cfg.data_dir.clone(),
            table: cfg.regions.clone(),
            token,
            sessions: Default::default(),
            unit_sessions: Default::default(),
            pool: Mutex::new(Vec::new()),
            queries: Semaphore::new(MAX_QUERIES),
            exports: Arc::new(Semaphore::new(MAX_EXPORTS)),
            limiter: Limiter::new(http.rate_per_minute),
            query_timeout: http.query_timeout,
            registration: None,
            packages: crate::packages::Packages { store, data_dir: cfg.data_dir.clone(), regions: cfg.regions.clone() },
            cfg,
        })
    }

    /// Serves online registration through `registration`.
    pub fn with_registration(mut self, registration: Option<Arc<crate::registration::Registration>>) -> Api {
        self.registration = registration;
        self
    }

    /// A pooled catalogue connection, or a new one opened on the blocking pool.
    pub(super) async fn take(&self) -> Result<Catalogue, ApiError> {
        let pooled = self.pool.lock().expect("pool lock").pop();
        match pooled {
            Some(c) => Ok(c),
            None => {
                let dir = self.data_dir.clone();
                let opened = tokio::task::spawn_blocking(move || Catalogue::open(&dir))
                    .await
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("opening the catalogue failed: {e}")))?;
                Ok(opened?)
            }
        }
    }

    pub(super) fn give_back(&self, c: Catalogue) {
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
        let cat = self.take().await?;
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

    /// The address links the node prints point at (certificates, OAI-PMH): `[http]
    /// public_url`, else the address the request came to (a name of letters, digits,
    /// dots, dashes and a port only; anything else is `localhost`).
    pub(crate) fn site(&self, headers: &HeaderMap) -> String {
        if let Some(u) = self.cfg.http.as_ref().and_then(|h| h.public_url.clone()) {
            return u;
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let safe = !host.is_empty() && host.len() <= 255 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        let scheme = if self.cfg.http.as_ref().is_some_and(|h| h.tls.is_some()) { "https" } else { "http" };
        format!("{scheme}://{}", if safe { host } else { "localhost" })
    }

    /// Whether `given` is the operators' token (false when there is none).
    pub(crate) fn token_matches(&self, given: &str) -> bool {
        self.token_value().is_some_and(|t| crate::web::session::constant_time_eq(given.trim().as_bytes(), t.as_bytes()))
    }

    /// The operators' token as its file holds it now, when there is one.
    pub(crate) fn token_value(&self) -> Option<String> {
        self.token.current()
    }

    /// Whether operators can sign in at all.
    pub(crate) fn has_token(&self) -> bool {
        self.token_value().is_some()
    }

    pub(crate) fn operator(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = self.token_value() else {
            return Err(ApiError::Forbidden("the operator endpoints are off: this node has no [http] token_file".into()));
        };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if crate::web::session::constant_time_eq(g.trim().as_bytes(), token.as_bytes()) => Ok(()),
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

pub(crate) type Params = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

pub(crate) fn params(p: Params) -> Result<Vec<(String, String)>, ApiError> {
    match p {
        Ok(Query(v)) => Ok(v),
        Err(e) => Err(ApiError::Param(ParamError { param: "query string".into(), message: e.body_text() })),
    }
}

pub(crate) fn public_view() -> View {
    View::Public { today: crate::clock::today() }
}

pub(crate) fn limit(api: &Api, addr: SocketAddr) -> Result<(), ApiError> {
    api.limiter.take(addr.ip()).map_err(ApiError::TooMany)
}
