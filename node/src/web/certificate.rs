//! The 成果登记证书 as a printable page (A4, print CSS) for the office's reviewer, and
//! the public `/verify?reg_no=…&code=…` that confirms one — or refuses a forged or
//! altered one without saying why.

use super::html::{enc, esc, page, rec_text};
use crate::http::state::{limit, Api};
use crate::registration::certificate::Certificate;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// The certificate's body.
pub fn render(c: &Certificate, site: &str) -> String {
    let link = format!("{site}/verify?reg_no={}&code={}", enc(&c.reg_no), enc(&c.code));
    let mut b = String::from("<article class=\"certificate\"><h1>科技成果登记证书</h1><table class=\"kv\">");
    for (label, value) in [
        ("登记号", c.reg_no.clone()),
        ("成果名称", c.title.clone()),
        ("第一完成单位", c.first_unit.clone()),
        ("主要完成人", c.persons.join("、")),
        ("成果类型", c.kind.clone()),
        ("登记日期", c.reg_date.clone()),
        ("登记机构", c.office.clone()),
    ] {
        let _ = write!(b, "<tr><th>{label}</th><td>{}</td></tr>", rec_text(&value));
    }
    let _ = write!(
        b,
        "</table><p class=\"code\">校验码 <strong id=\"certificate-code\">{}</strong>（第 {} 版）</p><p class=\"verify-link\">核验：<a href=\"{}\">{}</a></p>\
         <p class=\"no-print note\">用浏览器的“打印”打印本页（A4）。</p></article>",
        esc(&c.code),
        c.version,
        esc(&link),
        esc(&link)
    );
    b
}

/// `/admin/review/{id}/certificate`: the certificate of a registered submission, for
/// the signed-in office.
pub async fn for_office(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    if super::admin::signed_in(&api, &headers).is_none() {
        return Redirect::to("/admin").into_response();
    }
    let Some(reg) = api.registration.as_deref() else { return super::not_found() };
    match reg.certificate(None, &id).await {
        Ok(c) => {
            let mut r = Html(page("科技成果登记证书", "admin", &render(&c, &api.site(&headers)))).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            let status = super::review::status_of(&e);
            let body = format!("<h1>科技成果登记证书</h1><p class=\"error\">{}</p>", esc(&crate::registration::zh_message(&e)));
            (status, Html(page("科技成果登记证书", "admin", &body))).into_response()
        }
    }
}

/// `/verify`: a form, or what a certificate's number and code confirm.
pub async fn verify(
    State(api): State<Arc<Api>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = limit(&api, addr) {
        return e.into_response();
    }
    let Some(reg) = api.registration.as_deref() else {
        let body = "<h1>核验登记证书</h1><p class=\"error\">本节点不办理在线登记，没有它签发的证书。</p>";
        return (StatusCode::NOT_FOUND, Html(page("核验登记证书", "", body))).into_response();
    };
    let (reg_no, code) = (q.get("reg_no").cloned().unwrap_or_default(), q.get("code").cloned().unwrap_or_default());
    let form = format!(
        "<form class=\"login\" method=\"get\" action=\"/verify\"><label>登记号<input name=\"reg_no\" value=\"{}\" required maxlength=\"30\"></label>\
         <label>校验码<input name=\"code\" value=\"{}\" required maxlength=\"64\" autocapitalize=\"characters\"></label><button type=\"submit\">核验</button></form>",
        esc(&reg_no),
        esc(&code)
    );
    if reg_no.trim().is_empty() || code.trim().is_empty() {
        return Html(page("核验登记证书", "", &format!("<h1>核验登记证书</h1><p>输入证书上的登记号和校验码。</p>{form}"))).into_response();
    }
    match reg.verify(&reg_no, &code).await {
        Ok(Some((c, withdrawn))) => {
            let mut b = String::from(
                "<h1>核验登记证书</h1><p class=\"notice verify-ok\" role=\"status\">证书有效：以下内容与本节点的登记一致。</p>",
            );
            if withdrawn {
                b.push_str("<p class=\"warn\">这项成果此后已撤销登记。</p>");
            }
            let mut t = String::from("<table class=\"kv\">");
            for (label, value) in [
                ("登记号", c.reg_no.clone()),
                ("成果名称", c.title.clone()),
                ("第一完成单位", c.first_unit.clone()),
                ("主要完成人", c.persons.join("、")),
                ("成果类型", c.kind.clone()),
                ("登记日期", c.reg_date.clone()),
                ("登记机构", c.office.clone()),
            ] {
                let _ = write!(t, "<tr><th>{label}</th><td>{}</td></tr>", rec_text(&value));
            }
            t.push_str("</table>");
            b.push_str(&t);
            Html(page("核验登记证书", "", &b)).into_response()
        }
        Ok(None) => {
            let b = format!(
                "<h1>核验登记证书</h1><p class=\"error verify-no\" role=\"alert\">无法确认这份证书。请核对登记号和校验码。</p>{form}"
            );
            (StatusCode::NOT_FOUND, Html(page("核验登记证书", "", &b))).into_response()
        }
        Err(e) => {
            tracing::error!("verify failed: {e:?}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(page("核验登记证书", "", "<h1>核验登记证书</h1><p class=\"error\">内部错误，请稍后再试。</p>")),
            )
                .into_response()
        }
    }
}
