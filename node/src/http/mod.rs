//! The read API over the catalogue (`[http]`): public endpoints under `/api/v1/`, the
//! operators' under `/api/v1/operator/` behind a bearer token. `docs/openapi.json`
//! describes both; a test holds the server to it.
//!
//! Every query runs on a blocking thread with a catalogue connection from a small
//! pool, under a cap on concurrent queries and a deadline (an overrunning query is
//! interrupted and answered 503). Each client address has a token bucket (429 when
//! empty). Exports stream through a bounded channel, so a ten-million-row export holds
//! a few chunks in memory and stops when the client goes away.
//!
//! Rooms: `state` (what the handlers share, `ApiError`), `api` (the JSON handlers),
//! `registration` (online registration, spec §6.4), `packages` (科技成果包), `oai`
//! (OAI-PMH), `tls` (HTTPS served by the node itself);
//! the pages are `crate::web`. This module mounts both and serves them.

mod api;
mod oai;
pub(crate) mod packages;
pub(crate) mod registration;
pub(crate) mod state;
pub mod tls;

use api::*;
pub use state::{read_token, Api, ApiError};

use crate::config::Http;
use anyhow::Context;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The file in `data_dir` where the node writes the address its API bound.
pub const HTTP_ADDRESS_FILE: &str = "http-address";

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
        .merge(registration::routes())
        .merge(packages::routes())
        .merge(oai::routes())
        .merge(crate::web::routes())
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") {
                ApiError::NotFound("no such endpoint; see docs/openapi.json".into()).into_response()
            } else {
                crate::web::not_found()
            }
        })
        .with_state(api.clone())
        .layer(axum::middleware::from_fn_with_state(api, forwarded))
        .layer(axum::middleware::map_response(security_headers))
}

/// The client's address behind the trusted proxies: the right-most `X-Forwarded-For`
/// entry that is not one of them (entries further left were written by the client).
fn forwarded_client(headers: &axum::http::HeaderMap, trusted: &[crate::config::Cidr]) -> Option<std::net::IpAddr> {
    let chain: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    chain.iter().rev().find(|ip| !trusted.iter().any(|c| c.contains(**ip))).or(chain.first()).copied()
}

/// Behind a trusted reverse proxy (`[http] trusted_proxies`): every handler sees the
/// client's address (rate limits, logs), and over HTTPS (`X-Forwarded-Proto: https`)
/// every cookie the node sets is `Secure`. From anyone else the headers are ignored.
async fn forwarded(
    axum::extract::State(api): axum::extract::State<Arc<Api>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Served over TLS by the node itself, every cookie is Secure.
    let mut https = api.cfg.http.as_ref().is_some_and(|h| h.tls.is_some());
    let trusted = api.cfg.http.as_ref().map(|h| h.trusted_proxies.as_slice()).unwrap_or_default();
    let peer = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0);
    if let Some(peer) = peer.filter(|p| trusted.iter().any(|c| c.contains(p.ip()))) {
        if let Some(client) = forwarded_client(req.headers(), trusted) {
            req.extensions_mut().insert(axum::extract::ConnectInfo(SocketAddr::new(client, peer.port())));
        }
        https |= req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
    }
    let mut r = next.run(req).await;
    if https {
        let cookies: Vec<HeaderValue> = r
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| HeaderValue::from_str(&format!("{v}; Secure")).ok())
            .collect();
        r.headers_mut().remove(header::SET_COOKIE);
        for c in cookies {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    r
}

/// The policy every answer carries (the one place that sets it): scripts, styles and
/// images only from this node (no inline script; the pages have none), never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every answer, pages, API and errors alike.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    // An answer that set its own (evidence: `sandbox`) keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// Binds the API's address; errors (a taken port) stop the node before it runs.
pub async fn bind(http: &Http) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(http.address).await.with_context(|| format!("cannot listen for HTTP on {}", http.address))
}

/// Serves the API until `shutdown` (over TLS with `tls`: `[http] cert`/`key`); open
/// connections get three seconds to finish.
pub async fn serve(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let server = match tls {
        None => {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
            tokio::spawn(async move { server.await })
        }
        Some(acceptor) => {
            // `tap_io` lends the listener axum's connect-info for its address type.
            let listener = tls::TlsListener::new(listener, acceptor, shutdown.clone())?.tap_io(|_| ());
            let server = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
            tokio::spawn(async move { server.await })
        }
    };
    shutdown.cancelled().await;
    match tokio::time::timeout(Duration::from_secs(3), server).await {
        Ok(r) => r.context("the HTTP server failed")?.context("the HTTP server failed"),
        Err(_) => {
            tracing::warn!("HTTP connections did not finish within 3 s; closing them");
            Ok(())
        }
    }
}
