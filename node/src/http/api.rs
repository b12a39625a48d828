//! The JSON API's handlers (`/api/v1/…`): records, one record, statistics, regions and
//! the streamed export, each in a public and an operator flavour.

use super::state::{limit, params, public_view, Api, ApiError, Params, MAX_EXPORTS};
use crate::publish::{self, Endpoint, ParamError, Request};
use crate::store::catalogue::View;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use huijiao_protocol::regions::Level;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) async fn public_records(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    p: Params,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    list(api, params(p)?, public_view()).await
}

pub(super) async fn operator_records(
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

pub(super) async fn public_record(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(reg_no): Path<String>,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    one(api, reg_no, public_view()).await
}

pub(super) async fn operator_record(
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

pub(super) async fn public_stats(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    p: Params,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    stats(api, params(p)?, public_view()).await
}

pub(super) async fn operator_stats(
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

pub(super) async fn regions(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    p: Params,
) -> Result<Response, ApiError> {
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

pub(super) async fn public_export(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    p: Params,
) -> Result<Response, ApiError> {
    limit(&api, addr)?;
    export(api, params(p)?, public_view()).await
}

pub(super) async fn operator_export(
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
    export_request(api, req, view, "huijiao-export").await
}

/// Streams the export `req` asks for, offered as `name.csv` / `name.jsonl`.
pub(super) async fn export_request(api: Arc<Api>, req: Request, view: View, name: &str) -> Result<Response, ApiError> {
    let format = req.format.unwrap_or(publish::Format::Csv);
    let permit = api
        .exports
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy(format!("{MAX_EXPORTS} exports are running; try again when one is done")))?;
    let cat = api.take().await?;
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
    let name = format!("attachment; filename=\"{name}.{}\"", format.extension());
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
