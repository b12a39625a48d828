//! `/oai`: the OAI-PMH endpoint on the `[http]` listener (GET or a form POST, as the
//! protocol allows), answered by `crate::oai` on the blocking pool within the API's
//! caps; and `/oai/huijiao.xsd`, the schema of the `huijiao` metadata format.

use super::state::{limit, Api};
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// The schema of the `huijiao` format, as `docs/oai/huijiao.xsd` holds it.
const HUIJIAO_XSD: &str = include_str!("../../../docs/oai/huijiao.xsd");

pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/oai", get(by_get).post(by_post)).route(
        "/oai/huijiao.xsd",
        get(|| async { ([(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"))], HUIJIAO_XSD) }),
    )
}

async fn by_get(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(args): Query<Vec<(String, String)>>,
) -> Response {
    serve(api, addr, headers, args).await
}

/// A POST is `application/x-www-form-urlencoded` (anything else: 415).
async fn by_post(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(args): Form<Vec<(String, String)>>,
) -> Response {
    serve(api, addr, headers, args).await
}

async fn serve(api: Arc<Api>, addr: SocketAddr, headers: HeaderMap, args: Vec<(String, String)>) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let Some(oai) = api.cfg.oai.clone() else {
        return (StatusCode::NOT_FOUND, "OAI-PMH is off at this node: its config has no [oai] section (docs/open-data.md)\n")
            .into_response();
    };
    let site = api.site(&headers);
    let table = api.table.clone();
    let name = oai.repository_name.clone().unwrap_or_else(|| {
        let region = table.get(&api.cfg.node_id).map(|r| r.name.clone()).unwrap_or_default();
        format!("科技成果登记目录 {region}").trim().to_string()
    });
    let answered = api
        .query(move |cat| {
            let repo = crate::oai::Repository {
                base_url: format!("{site}/oai"),
                site,
                domain: &oai.repository_identifier,
                name,
                admin_email: &oai.admin_email,
                table: &table,
            };
            Ok(crate::oai::answer(&repo, cat, &args, crate::clock::now_ms() / 1000, crate::clock::today())?)
        })
        .await;
    match answered {
        Ok(xml) => ([(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"))], xml).into_response(),
        Err(e) => e.into_response(),
    }
}
