//! The demo's 科技成果包: the national office defines two packages through the operator
//! API — 现代农业 (水稻, applied technology) and 人口健康 (疫苗) — looks at the preview and
//! publishes each; their pages and feeds are then on the national node.

use crate::online::call;
use anyhow::Context;
use serde_json::{json, Value};

/// One published package: its address, version and how many records it froze.
#[derive(Debug, Clone)]
pub struct Published {
    pub slug: String,
    pub title: String,
    pub count: u64,
}

/// The two packages: slug, title, field, description, query.
fn definitions() -> [(&'static str, &'static str, &'static str, &'static str, Value); 2] {
    [
        (
            "rice-pests",
            "水稻病虫害防治与节水栽培",
            "现代农业",
            "面向南方稻区、可推广应用的水稻病虫害防治与节水栽培成果。",
            json!({"q": "水稻", "kind": "应用技术"}),
        ),
        ("vaccines", "疫苗研发与生产", "人口健康", "疫苗研发、评价与生产的先进适用成果。", json!({"q": "疫苗"})),
    ]
}

/// Defines and publishes the demo's packages at the node whose API is at `addr`.
pub fn publish(addr: &str, token: &str) -> anyhow::Result<Vec<Published>> {
    let mut out = Vec::new();
    for (slug, title, field, description, query) in definitions() {
        let path = format!("/api/v1/operator/packages/{slug}");
        let body = json!({"title": title, "field": field, "description": description, "query": query, "include": [], "exclude": []});
        call(addr, "PUT", &path, Some(token), &body, 201)?;
        let preview = call(addr, "GET", &format!("{path}/preview"), Some(token), &Value::Null, 200)?;
        if preview["too_many"] == true || preview["count"] == 0 {
            // A demo far larger or smaller than the default: narrow to one province, or
            // leave the package unpublished.
            let mut narrowed = body.clone();
            narrowed["query"]["region"] = json!("42");
            call(addr, "PUT", &path, Some(token), &narrowed, 200)?;
        }
        let p = call(addr, "POST", &format!("{path}/publish"), Some(token), &Value::Null, 200);
        match p {
            Ok(v) => {
                out.push(Published { slug: slug.to_string(), title: title.to_string(), count: v["count"].as_u64().context("a count")? })
            }
            Err(e) => println!("package {slug} not published: {e:#}"),
        }
    }
    Ok(out)
}
