//! 科技成果包: curated, versioned selections of public achievements that an office
//! publishes (docs/catalogue.md, "Packages"). One service for the operator API and
//! `/admin`: a definition is checked here (slug, field, texts, the saved query by the
//! catalogue's own parameter rules), its selection evaluated by the catalogue, and a
//! publication frozen in the store; the public pages and API read versions back.

use crate::publish::{self, Endpoint};
use crate::store::catalogue::{Catalogue, Filters, Selected, MAX_PACKAGE_RECORDS};
use crate::store::packages::{Definition, Package, PackageDenied, Selection};
use crate::store::Store;
use huijiao_protocol::{Date, RegionTable};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// The eight priority fields a package may serve (or none).
pub const FIELDS: [&str; 8] =
    ["新一代信息网络", "智能绿色制造", "现代农业", "现代能源", "资源高效利用和生态环保", "海洋和空间", "智慧城市和数字社会", "人口健康"];

const MAX_TITLE: usize = 100;
const MAX_DESCRIPTION: usize = 4000;

/// Whether `s` can name a package: `[a-z0-9-]{1,64}`.
pub fn slug_ok(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why a package call was refused; each maps to one HTTP status and JSON body.
#[derive(Debug)]
pub enum Refused {
    /// 404: no such package (or version).
    NotFound,
    /// 422: a field of the definition, named, and why.
    Invalid {
        field: String,
        message: String,
    },
    /// 422: included records the public cannot see.
    NotPublic(Vec<String>),
    /// 422: the selection holds more than [`MAX_PACKAGE_RECORDS`], or nothing.
    Size(String),
    /// 409: the package is retired.
    Retired,
    /// 503: the catalogue is busy or not there yet.
    Busy(String),
    Internal(anyhow::Error),
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Refused::Internal(e.into())
    }
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Internal(e)
    }
}

impl Refused {
    /// The HTTP status and the JSON body of the refusal.
    pub fn answer(&self) -> (u16, Value) {
        match self {
            Refused::NotFound => (404, json!({"error": "no such package"})),
            Refused::Invalid { field, message } => {
                (422, json!({"error": format!("{field}: {message}"), "code": "invalid", "field": field}))
            }
            Refused::NotPublic(r) => (
                422,
                json!({"error": format!("included records the public cannot see: {}", r.join(", ")), "code": "not_public", "reg_nos": r}),
            ),
            Refused::Size(m) => (422, json!({"error": m, "code": "size"})),
            Refused::Retired => (409, json!({"error": "the package is retired: it publishes no more versions", "code": "retired"})),
            Refused::Busy(m) => (503, json!({"error": m})),
            Refused::Internal(e) => {
                tracing::error!("package request failed: {e:#}");
                (500, json!({"error": "internal error; the node's log has the details"}))
            }
        }
    }

    /// The same, in Chinese, for the pages.
    pub fn zh(&self) -> String {
        match self {
            Refused::NotFound => "没有这个成果包。".into(),
            Refused::Invalid { field, message } => format!("{}填写有误：{message}", field_label(field)),
            Refused::NotPublic(r) => format!("以下指定收录的成果不是公开成果，不能收入成果包：{}", r.join("、")),
            Refused::Size(m) => format!("成果包的成果数不合适：{m}"),
            Refused::Retired => "这个成果包已停止发布，不能再发布新版本。".into(),
            Refused::Busy(_) => "系统正忙，请几秒后再试。".into(),
            Refused::Internal(_) => "内部错误，详情见节点日志。".into(),
        }
    }
}

fn field_label(field: &str) -> String {
    match field {
        "title" => "名称".into(),
        "field" => "领域".into(),
        "description" => "说明".into(),
        "include" => "指定收录".into(),
        "exclude" => "排除".into(),
        f => match f.strip_prefix("query.") {
            Some(p) => format!("检索条件 {p} "),
            None => f.to_string(),
        },
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Refused {
    Refused::Invalid { field: field.into(), message: message.into() }
}

/// The saved query as the catalogue's parameters (`key=value` pairs, by API names).
pub fn query_pairs(q: &Map<String, Value>) -> Vec<(String, String)> {
    q.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Parses a saved query into the catalogue's search words and filters.
pub fn parse_query(q: &Map<String, Value>, table: &RegionTable) -> Result<(Option<String>, Filters), Refused> {
    for (k, v) in q {
        if matches!(k.as_str(), "sort" | "limit" | "cursor" | "format" | "by") {
            return Err(invalid(&format!("query.{k}"), "a package's query holds search words and filters only"));
        }
        if v.is_object() || v.is_array() {
            return Err(invalid(&format!("query.{k}"), "a text, number or true/false"));
        }
    }
    let req = publish::parse(&query_pairs(q), Endpoint::List, table).map_err(|e| invalid(&format!("query.{}", e.param), e.message))?;
    Ok((req.q, req.filters))
}

/// A definition from a JSON object (`PUT …/packages/{slug}`), every field checked.
pub fn definition(body: &Map<String, Value>, table: &RegionTable) -> Result<Definition, Refused> {
    const KEYS: [&str; 6] = ["title", "field", "description", "query", "include", "exclude"];
    if let Some(k) = body.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(k, format!("unknown key (known: {})", KEYS.join(", "))));
    }
    if huijiao_protocol::registration::marked(body, &[]) {
        tracing::warn!("a package definition was refused: it carries a secrecy marking (nothing of it kept)");
        return Err(invalid("description", "carries a secrecy marking; a package is public"));
    }
    let text = |k: &str, max: usize, required: bool| -> Result<String, Refused> {
        match body.get(k) {
            None | Some(Value::Null) if !required => Ok(String::new()),
            Some(Value::String(s)) if !s.trim().is_empty() || !required => {
                let s = s.trim().to_string();
                if s.chars().count() > max {
                    Err(invalid(k, format!("at most {max} characters")))
                } else {
                    Ok(s)
                }
            }
            _ => Err(invalid(k, "required text")),
        }
    };
    let title = text("title", MAX_TITLE, true)?;
    let description = text("description", MAX_DESCRIPTION, false)?;
    let field = match body.get("field") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if FIELDS.contains(&s.as_str()) => Some(s.clone()),
        Some(Value::String(s)) if s.is_empty() => None,
        _ => return Err(invalid("field", format!("one of {} (exactly), or null", FIELDS.join("、")))),
    };
    let query = match body.get("query") {
        None | Some(Value::Null) => None,
        Some(Value::Object(q)) => {
            parse_query(q, table)?;
            // Empty values are as good as absent: the query keeps what selects.
            let kept: Map<String, Value> = q
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Null) && v.as_str() != Some(""))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!kept.is_empty()).then_some(kept)
        }
        _ => return Err(invalid("query", "an object of the catalogue's parameters (q, region, kind, …)")),
    };
    let numbers = |k: &str| -> Result<Vec<String>, Refused> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) if a.len() <= MAX_PACKAGE_RECORDS => {
                let mut out: Vec<String> = Vec::new();
                for v in a {
                    match v.as_str().map(|s| s.trim().to_ascii_uppercase()) {
                        Some(s) if !s.is_empty() && s.len() <= 30 && s.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                            if !out.contains(&s) {
                                out.push(s);
                            }
                        }
                        _ => return Err(invalid(k, format!("`{v}` is not a registration number"))),
                    }
                }
                Ok(out)
            }
            _ => Err(invalid(k, format!("a list of at most {MAX_PACKAGE_RECORDS} registration numbers"))),
        }
    };
    let selection = Selection { query, include: numbers("include")?, exclude: numbers("exclude")? };
    Ok(Definition { title, field, description, selection })
}

/// What version N+1 would hold, against version N.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    pub version: i64,
    pub count: usize,
    pub records: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub not_public: Vec<String>,
    pub too_many: bool,
}

/// The packages of a node: its store and catalogue.
pub struct Packages {
    pub store: Store,
    pub data_dir: PathBuf,
    pub regions: Arc<RegionTable>,
}

impl Packages {
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Reader) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, Refused> {
        Ok(self.store.read::<T, crate::store::StoreError>(f).await?)
    }

    /// Runs `f` on a catalogue connection of its own, on the blocking pool.
    async fn catalogue<T: Send + 'static>(&self, f: impl FnOnce(&Catalogue) -> anyhow::Result<T> + Send + 'static) -> Result<T, Refused> {
        let dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let c = Catalogue::open(&dir).map_err(|e| Refused::Busy(format!("the catalogue is not ready: {e}")))?;
            f(&c).map_err(Refused::Internal)
        })
        .await
        .map_err(|e| Refused::Internal(anyhow::anyhow!("package task failed: {e}")))?
    }

    pub async fn get(&self, slug: &str) -> Result<Package, Refused> {
        let s = slug.to_string();
        self.read(move |r| r.package(&s)).await?.ok_or(Refused::NotFound)
    }

    pub async fn list(&self) -> Result<Vec<Package>, Refused> {
        self.read(|r| r.packages()).await
    }

    /// Creates or replaces a package's definition; `true` when new.
    pub async fn put(&self, slug: &str, body: &Map<String, Value>, now: i64) -> Result<(bool, Package), Refused> {
        if !slug_ok(slug) {
            return Err(invalid("slug", "1 to 64 of a–z, 0–9 and -"));
        }
        let def = definition(body, &self.regions)?;
        let s = slug.to_string();
        let created = self.store.run(move |w| w.save_package(&s, &def, now)).await?;
        tracing::info!(package = slug, created, "package definition saved");
        Ok((created, self.get(slug).await?))
    }

    /// What publishing `slug` now would freeze, against its latest version.
    pub async fn preview(&self, slug: &str, today: Date) -> Result<Preview, Refused> {
        let p = self.get(slug).await?;
        let sel = p.def.selection.clone();
        let (q, filters) = match &sel.query {
            Some(q) => {
                let (q, f) = parse_query(q, &self.regions)?;
                (Some(q), f)
            }
            None => (None, Filters::default()),
        };
        let selected: Selected = self
            .catalogue(move |c| {
                let query = q.as_ref().map(|q| (q.as_deref(), &filters));
                Ok(c.select(query, &sel.include, &sel.exclude, today)?)
            })
            .await?;
        let (version, before) = match &p.latest {
            Some(v) => {
                let (s, n) = (slug.to_string(), v.version);
                (n + 1, self.read(move |r| r.members(&s, n)).await?)
            }
            None => (1, Vec::new()),
        };
        let added = selected.reg_nos.iter().filter(|r| !before.contains(r)).cloned().collect();
        let removed = before.iter().filter(|r| !selected.reg_nos.contains(r)).cloned().collect();
        Ok(Preview {
            version,
            count: selected.reg_nos.len(),
            records: selected.reg_nos,
            added,
            removed,
            not_public: selected.not_public,
            too_many: selected.too_many,
        })
    }

    /// Publishes the next version of `slug`: `(version, count)`.
    pub async fn publish(&self, slug: &str, who: &str, today: Date, now: i64) -> Result<(i64, usize), Refused> {
        let p = self.get(slug).await?;
        if p.retired_at.is_some() {
            return Err(Refused::Retired);
        }
        let preview = self.preview(slug, today).await?;
        if !preview.not_public.is_empty() {
            return Err(Refused::NotPublic(preview.not_public));
        }
        if preview.too_many {
            return Err(Refused::Size(format!("the selection holds more than {MAX_PACKAGE_RECORDS} records; narrow the query")));
        }
        if preview.records.is_empty() {
            return Err(Refused::Size("the selection holds no public record".into()));
        }
        let (s, members) = (slug.to_string(), preview.records);
        let count = members.len();
        let version = match self.store.run(move |w| w.publish_package(&s, &members, now)).await? {
            Ok(v) => v,
            Err(PackageDenied::NotFound) => return Err(Refused::NotFound),
            Err(PackageDenied::Retired) => return Err(Refused::Retired),
        };
        tracing::info!(package = slug, version, count, by = who, "package published");
        Ok((version, count))
    }

    /// Retires `slug`: its pages say 已停止发布, its versions stay.
    pub async fn retire(&self, slug: &str, who: &str, now: i64) -> Result<Package, Refused> {
        let s = slug.to_string();
        match self.store.run(move |w| w.retire_package(&s, now)).await? {
            Ok(()) => {
                tracing::info!(package = slug, by = who, "package retired");
                self.get(slug).await
            }
            Err(_) => Err(Refused::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static RegionTable {
        RegionTable::embedded()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn slugs_fields_and_queries_are_checked_by_name() {
        assert!(slug_ok("rice-2026") && !slug_ok("Rice") && !slug_ok("") && !slug_ok(&"a".repeat(65)) && !slug_ok("a_b"));
        let t = table();
        let ok =
            definition(&obj(json!({"title": "水稻", "field": "现代农业", "query": {"q": "水稻", "region": "42", "trl": ""}})), t).unwrap();
        assert_eq!(ok.selection.query.unwrap().len(), 2, "empty values are dropped");
        let field = |v: Value| match definition(&obj(v), t) {
            Err(Refused::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(json!({"title": "x", "field": "农业"})), "field");
        assert_eq!(field(json!({"title": " "})), "title");
        assert_eq!(field(json!({"title": "x", "query": {"trl": "12"}})), "query.trl");
        assert_eq!(field(json!({"title": "x", "query": {"sort": "date"}})), "query.sort");
        assert_eq!(field(json!({"title": "x", "include": ["<b>"]})), "include");
        assert_eq!(field(json!({"title": "x", "colour": "red"})), "colour");
        assert_eq!(field(json!({"title": "绝密 水稻"})), "description", "a marking keeps the definition out");
    }
}
