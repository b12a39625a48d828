//! OAI-PMH 2.0 (docs/open-data.md): the six verbs over the catalogue's public view,
//! for harvesters. Sets by province (`region:42`), by kind (`kind:applied`) and by
//! package (`package:<slug>`, its latest version); datestamps are when a record last
//! changed in the public view (`store::catalogue::oai`); a withdrawn record, or one no
//! longer public, is a deletion (`deletedRecord` persistent). Resumption tokens carry
//! the whole position (the last datestamp and reg_no), so they survive a restart and
//! a reindex. Synchronous: the HTTP side (`http/oai.rs`) runs it on the blocking pool.
//!
//! Rooms: this file (arguments, verbs, sets, tokens, errors), `xml` (escaping,
//! datestamps, the envelope, the two metadata formats).

pub mod xml;

use crate::store::catalogue::{Catalogue, OaiItem, OaiScope, OaiSet, PackageSet};
use huijiao_protocol::regions::Level;
use huijiao_protocol::{Date, Kind, RegionTable};
use std::fmt::Write;

/// Items of a ListRecords page; ListIdentifiers pages hold five times as many.
pub const PAGE: usize = 100;

/// Who answers: the repository as Identify describes it, and where its pages are.
pub struct Repository<'a> {
    /// The endpoint's address (`…/oai`).
    pub base_url: String,
    /// The site the record pages and the huijiao schema are under (no trailing /).
    pub site: String,
    pub domain: &'a str,
    pub name: String,
    pub admin_email: &'a str,
    pub table: &'a RegionTable,
}

/// An OAI-PMH error: its code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OaiError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> OaiError {
    OaiError { code, message: message.into() }
}

fn bad(message: impl Into<String>) -> OaiError {
    err("badArgument", message)
}

const VERBS: [&str; 6] = ["Identify", "ListMetadataFormats", "ListSets", "ListIdentifiers", "ListRecords", "GetRecord"];
const KINDS: [(&str, Kind); 3] = [("applied", Kind::Applied), ("basic", Kind::Basic), ("soft", Kind::Soft)];
const FORMATS: [&str; 2] = ["oai_dc", "huijiao"];

/// Answers one request (its arguments as given, GET or POST) with the XML body.
pub fn answer(repo: &Repository<'_>, cat: &Catalogue, args: &[(String, String)], now_secs: i64, today: Date) -> anyhow::Result<String> {
    let mut out = String::with_capacity(64 * 1024);
    let verbs: Vec<&str> = args.iter().filter(|(k, _)| k == "verb").map(|(_, v)| v.as_str()).collect();
    let verb = match verbs.as_slice() {
        [v] if VERBS.contains(v) => *v,
        [] => return Ok(error_doc(repo, now_secs, None, &[err("badVerb", "the verb argument is missing")])),
        [_] => {
            return Ok(error_doc(
                repo,
                now_secs,
                None,
                &[err("badVerb", format!("not a verb of OAI-PMH 2.0 (one of {})", VERBS.join(", ")))],
            ))
        }
        _ => return Ok(error_doc(repo, now_secs, None, &[err("badVerb", "the verb argument is repeated")])),
    };
    if let Some(e) = check_args(verb, args) {
        return Ok(error_doc(repo, now_secs, None, &[e]));
    }
    let body = match verb {
        "Identify" => identify(repo, cat, now_secs),
        "ListMetadataFormats" => list_formats(repo, cat, arg(args, "identifier"), today),
        "ListSets" => list_sets(repo, cat, arg(args, "resumptionToken")),
        "GetRecord" => {
            get_record(repo, cat, arg(args, "identifier").unwrap_or_default(), arg(args, "metadataPrefix").unwrap_or_default(), today)
        }
        _ => list(repo, cat, verb, args, today),
    };
    match body {
        Ok(Ok(inner)) => {
            xml::open(&mut out, now_secs, &repo.base_url, Some(args));
            out.push_str(&inner);
            xml::close(&mut out);
            Ok(out)
        }
        // Errors other than badVerb and badArgument echo the request's arguments.
        Ok(Err(e)) => Ok(error_doc(repo, now_secs, (e.code != "badArgument").then_some(args), &[e])),
        Err(e) => Err(e),
    }
}

fn arg<'a>(args: &'a [(String, String)], key: &str) -> Option<&'a str> {
    args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The arguments a verb takes: required, optional, exclusive (`resumptionToken`).
fn check_args(verb: &str, args: &[(String, String)]) -> Option<OaiError> {
    let (required, optional, exclusive): (&[&str], &[&str], Option<&str>) = match verb {
        "Identify" => (&[], &[], None),
        "ListMetadataFormats" => (&[], &["identifier"], None),
        "ListSets" => (&[], &[], Some("resumptionToken")),
        "GetRecord" => (&["identifier", "metadataPrefix"], &[], None),
        _ => (&["metadataPrefix"], &["from", "until", "set"], Some("resumptionToken")),
    };
    let mut seen: Vec<&str> = Vec::new();
    for (k, _) in args.iter().filter(|(k, _)| k != "verb") {
        if seen.contains(&k.as_str()) {
            return Some(bad(format!("the argument {k} is repeated")));
        }
        seen.push(k);
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) && Some(k.as_str()) != exclusive {
            return Some(bad(format!("{verb} takes no argument {k}")));
        }
    }
    if let Some(x) = exclusive.filter(|x| seen.contains(x)) {
        if seen.len() > 1 {
            return Some(bad(format!("{x} is an exclusive argument: nothing else may come with it")));
        }
        return None;
    }
    required.iter().find(|r| !seen.contains(r)).map(|r| bad(format!("{verb} needs the argument {r}")))
}

fn error_doc(repo: &Repository<'_>, now_secs: i64, args: Option<&[(String, String)]>, errors: &[OaiError]) -> String {
    let mut out = String::new();
    xml::open(&mut out, now_secs, &repo.base_url, args);
    for e in errors {
        let _ = write!(out, "<error code=\"{}\">{}</error>", e.code, xml::esc(&e.message));
    }
    xml::close(&mut out);
    out
}

type Answer = anyhow::Result<Result<String, OaiError>>;

fn identify(repo: &Repository<'_>, cat: &Catalogue, now_secs: i64) -> Answer {
    let earliest = cat.oai_earliest()?.unwrap_or(now_secs);
    Ok(Ok(format!(
        "<Identify><repositoryName>{}</repositoryName><baseURL>{}</baseURL><protocolVersion>2.0</protocolVersion>\
         <adminEmail>{}</adminEmail><earliestDatestamp>{}</earliestDatestamp><deletedRecord>persistent</deletedRecord>\
         <granularity>YYYY-MM-DDThh:mm:ssZ</granularity></Identify>",
        xml::esc(&repo.name),
        xml::esc(&repo.base_url),
        xml::esc(repo.admin_email),
        xml::datestamp(earliest)
    )))
}

/// `oai:<domain>:<reg_no>` → the reg_no.
fn reg_no_of<'a>(repo: &Repository<'_>, identifier: &'a str) -> Option<&'a str> {
    identifier.strip_prefix("oai:")?.strip_prefix(repo.domain)?.strip_prefix(':').filter(|r| !r.is_empty() && r.len() <= 30)
}

fn list_formats(repo: &Repository<'_>, cat: &Catalogue, identifier: Option<&str>, today: Date) -> Answer {
    if let Some(id) = identifier {
        let known = match reg_no_of(repo, id) {
            Some(r) => cat.oai_get(r, today)?.is_some(),
            None => false,
        };
        if !known {
            return Ok(Err(err("idDoesNotExist", format!("no item {id} in this repository"))));
        }
    }
    Ok(Ok(format!(
        "<ListMetadataFormats><metadataFormat><metadataPrefix>oai_dc</metadataPrefix><schema>{}</schema><metadataNamespace>{}</metadataNamespace></metadataFormat>\
         <metadataFormat><metadataPrefix>huijiao</metadataPrefix><schema>{}</schema><metadataNamespace>{}</metadataNamespace></metadataFormat></ListMetadataFormats>",
        xml::DC_SCHEMA,
        xml::DC_NS,
        xml::esc(&format!("{}/oai/huijiao.xsd", repo.site)),
        xml::HUIJIAO_NS
    )))
}

/// The provinces of the region table.
fn provinces(table: &RegionTable) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = table
        .codes_of(Level::Province)
        .iter()
        .map(|c| (c[..2].to_string(), table.get(c).map(|r| r.name.clone()).unwrap_or_default()))
        .collect();
    v.sort();
    v
}

fn list_sets(repo: &Repository<'_>, cat: &Catalogue, token: Option<&str>) -> Answer {
    if let Some(t) = token {
        return Ok(Err(err("badResumptionToken", format!("`{t}`: ListSets answers in one response and gives no tokens"))));
    }
    let mut out = String::from("<ListSets>");
    let mut set = |spec: &str, name: &str| {
        let _ = write!(out, "<set><setSpec>{}</setSpec><setName>{}</setName></set>", xml::esc(spec), xml::esc(name));
    };
    set("region", "按省级行政区");
    for (code, name) in provinces(repo.table) {
        set(&format!("region:{code}"), &name);
    }
    set("kind", "按成果类型");
    for (spec, kind) in KINDS {
        set(&format!("kind:{spec}"), kind.zh());
    }
    let packages = cat.package_sets()?;
    if !packages.is_empty() {
        set("package", "科技成果包（各包的最新版）");
        for p in &packages {
            set(&format!("package:{}", p.slug), &p.title);
        }
    }
    out.push_str("</ListSets>");
    Ok(Ok(out))
}

/// A setSpec as the catalogue's set.
fn resolve_set(repo: &Repository<'_>, spec: &str, packages: &[PackageSet]) -> Option<OaiSet> {
    match spec.split_once(':') {
        None if spec == "region" || spec == "kind" => Some(OaiSet::All),
        None if spec == "package" => Some(OaiSet::Packages),
        Some(("region", code)) if provinces(repo.table).iter().any(|(c, _)| c == code) => Some(OaiSet::Region(code.to_string())),
        Some(("kind", k)) => KINDS.iter().find(|(s, _)| *s == k).map(|(_, kind)| OaiSet::Kind(kind.zh().to_string())),
        Some(("package", slug)) => packages.iter().find(|p| p.slug == slug).map(|p| OaiSet::Package(p.slug.clone(), p.version)),
        _ => None,
    }
}

/// Where a list stands: what it lists and after which item.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    verb: String,
    prefix: String,
    set: String,
    from: Option<i64>,
    until: Option<i64>,
    after: Option<(i64, String)>,
    cursor: u64,
    size: Option<u64>,
}

impl Position {
    fn token(&self) -> String {
        let n = |v: Option<i64>| v.map_or(String::new(), |x| x.to_string());
        let raw = [
            "1".to_string(),
            self.verb.clone(),
            self.prefix.clone(),
            self.set.clone(),
            n(self.from),
            n(self.until),
            n(self.after.as_ref().map(|a| a.0)),
            self.after.as_ref().map_or(String::new(), |a| a.1.clone()),
            self.cursor.to_string(),
            self.size.map_or(String::new(), |s| s.to_string()),
        ]
        .join("\u{1f}");
        huijiao_protocol::record::hex(raw.as_bytes())
    }

    fn parse(token: &str) -> Option<Position> {
        if token.len() % 2 != 0 || token.len() > 1000 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
        let raw = String::from_utf8(bytes?).ok()?;
        let p: Vec<&str> = raw.split('\u{1f}').collect();
        let [v, verb, prefix, set, from, until, stamp, reg_no, cursor, size] = p.as_slice() else { return None };
        let opt = |s: &str| if s.is_empty() { Ok(None) } else { s.parse::<i64>().map(Some) };
        (*v == "1").then_some(())?;
        Some(Position {
            verb: verb.to_string(),
            prefix: prefix.to_string(),
            set: set.to_string(),
            from: opt(from).ok()?,
            until: opt(until).ok()?,
            after: match (opt(stamp).ok()?, reg_no) {
                (Some(s), r) if !r.is_empty() => Some((s, r.to_string())),
                (None, &"") => None,
                _ => return None,
            },
            cursor: cursor.parse().ok()?,
            size: if size.is_empty() { None } else { Some(size.parse().ok()?) },
        })
    }
}

/// The position of a new list, from its arguments.
fn start(verb: &str, args: &[(String, String)]) -> Result<Position, OaiError> {
    let prefix = arg(args, "metadataPrefix").unwrap_or_default().to_string();
    let from = arg(args, "from")
        .map(|f| xml::parse_datestamp(f, false).ok_or_else(|| bad(format!("from: `{f}` is not YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ"))))
        .transpose()?;
    let until = arg(args, "until")
        .map(|u| xml::parse_datestamp(u, true).ok_or_else(|| bad(format!("until: `{u}` is not YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ"))))
        .transpose()?;
    if let (Some((_, a)), Some((_, b))) = (from, until) {
        if a != b {
            return Err(bad("from and until must have the same granularity"));
        }
    }
    if let (Some((f, _)), Some((u, _))) = (from, until) {
        if f > u {
            return Err(bad("from is later than until"));
        }
    }
    Ok(Position {
        verb: verb.to_string(),
        prefix,
        set: arg(args, "set").unwrap_or_default().to_string(),
        from: from.map(|f| f.0),
        until: until.map(|u| u.0),
        after: None,
        cursor: 0,
        size: None,
    })
}

/// One piece: a list request in order — where it stands (new or from its token), its
/// format and set, one page of items past the position, and the token that goes on.
fn list(repo: &Repository<'_>, cat: &Catalogue, verb: &str, args: &[(String, String)], today: Date) -> Answer {
    let resumed = arg(args, "resumptionToken");
    let pos = match resumed {
        Some(t) => match Position::parse(t).filter(|p| p.verb == verb) {
            Some(p) => p,
            None => return Ok(Err(err("badResumptionToken", format!("`{t}` is not a resumption token of {verb} from this repository")))),
        },
        None => match start(verb, args) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        },
    };
    if !FORMATS.contains(&pos.prefix.as_str()) {
        return Ok(Err(err("cannotDisseminateFormat", format!("`{}`: the formats are oai_dc and huijiao", pos.prefix))));
    }
    let packages = cat.package_sets()?;
    let set = if pos.set.is_empty() {
        None
    } else {
        match resolve_set(repo, &pos.set, &packages) {
            Some(s) => Some(s),
            None if resumed.is_some() => return Ok(Err(err("badResumptionToken", format!("the set `{}` of this token is gone", pos.set)))),
            None => return Ok(Err(bad(format!("set: no set `{}` (ListSets lists them)", pos.set)))),
        }
    };
    let scope = OaiScope { from: pos.from, until: pos.until, set };
    let limit = if verb == "ListIdentifiers" { PAGE * 5 } else { PAGE };
    let mut items = cat.oai_page(&scope, pos.after.as_ref().map(|(s, r)| (*s, r.as_str())), limit + 1, today)?;
    if items.is_empty() {
        return Ok(Err(err("noRecordsMatch", "no record matches these arguments")));
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let size = match (pos.size, resumed) {
        (Some(s), _) => Some(s),
        (None, None) => cat.oai_count(&scope)?,
        (None, Some(_)) => None,
    };
    let reg_nos: Vec<&str> = items.iter().map(|i| i.reg_no.as_str()).collect();
    let in_packages = cat.package_sets_of(&packages, &reg_nos)?;
    let mut out = format!("<{verb}>");
    for item in &items {
        let sets = in_packages.get(&item.reg_no).map(Vec::as_slice).unwrap_or_default();
        if verb == "ListIdentifiers" {
            header(&mut out, repo, item, sets);
        } else {
            record(&mut out, repo, item, sets, &pos.prefix);
        }
    }
    let next_cursor = pos.cursor + items.len() as u64;
    let size_attr = size.filter(|s| *s > 0).map_or(String::new(), |s| format!(" completeListSize=\"{s}\""));
    if more {
        let last = items.last().expect("a page");
        let next = Position { after: Some((last.stamp, last.reg_no.clone())), cursor: next_cursor, size, ..pos.clone() };
        let _ = write!(out, "<resumptionToken cursor=\"{}\"{size_attr}>{}</resumptionToken>", pos.cursor, next.token());
    } else if resumed.is_some() {
        // The last page of a list that was resumed: an empty token says it is complete.
        let _ = write!(out, "<resumptionToken cursor=\"{}\"{size_attr}/>", pos.cursor);
    }
    let _ = write!(out, "</{verb}>");
    Ok(Ok(out))
}

fn get_record(repo: &Repository<'_>, cat: &Catalogue, identifier: &str, prefix: &str, today: Date) -> Answer {
    let item = match reg_no_of(repo, identifier) {
        Some(r) => cat.oai_get(r, today)?,
        None => None,
    };
    let Some(item) = item else { return Ok(Err(err("idDoesNotExist", format!("no item {identifier} in this repository")))) };
    if !FORMATS.contains(&prefix) {
        return Ok(Err(err("cannotDisseminateFormat", format!("`{prefix}`: the formats are oai_dc and huijiao"))));
    }
    let packages = cat.package_sets()?;
    let in_packages = cat.package_sets_of(&packages, &[item.reg_no.as_str()])?;
    let mut out = String::from("<GetRecord>");
    record(&mut out, repo, &item, in_packages.get(&item.reg_no).map(Vec::as_slice).unwrap_or_default(), prefix);
    out.push_str("</GetRecord>");
    Ok(Ok(out))
}

fn header(out: &mut String, repo: &Repository<'_>, item: &OaiItem, packages: &[String]) {
    let status = if item.record.is_none() { " status=\"deleted\"" } else { "" };
    let _ = write!(
        out,
        "<header{status}><identifier>{}</identifier><datestamp>{}</datestamp>",
        xml::esc(&format!("oai:{}:{}", repo.domain, item.reg_no)),
        xml::datestamp(item.stamp)
    );
    if let Some(p) = item.region.get(..2) {
        let _ = write!(out, "<setSpec>region:{p}</setSpec>");
    }
    if let Some((spec, _)) = KINDS.iter().find(|(_, k)| k.zh() == item.kind) {
        let _ = write!(out, "<setSpec>kind:{spec}</setSpec>");
    }
    for slug in packages {
        let _ = write!(out, "<setSpec>package:{}</setSpec>", xml::esc(slug));
    }
    out.push_str("</header>");
}

fn record(out: &mut String, repo: &Repository<'_>, item: &OaiItem, packages: &[String], prefix: &str) {
    out.push_str("<record>");
    header(out, repo, item, packages);
    if let Some(r) = &item.record {
        out.push_str("<metadata>");
        if prefix == "huijiao" {
            xml::huijiao(out, r, &format!("{}/oai/huijiao.xsd", repo.site));
        } else {
            xml::oai_dc(out, r, repo.table, &format!("{}/records/{}", repo.site, r.reg_no));
        }
        out.push_str("</metadata>");
    }
    out.push_str("</record>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn arguments_are_checked_per_verb() {
        let code = |v: &[(&str, &str)]| check_args(v[0].1, &args(v)).map(|e| e.code);
        assert_eq!(code(&[("verb", "Identify")]), None);
        assert_eq!(code(&[("verb", "Identify"), ("set", "x")]), Some("badArgument"));
        assert_eq!(code(&[("verb", "ListRecords")]), Some("badArgument"), "metadataPrefix is required");
        assert_eq!(code(&[("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2025-01-01")]), None);
        assert_eq!(code(&[("verb", "ListRecords"), ("resumptionToken", "x")]), None);
        assert_eq!(code(&[("verb", "ListRecords"), ("resumptionToken", "x"), ("metadataPrefix", "oai_dc")]), Some("badArgument"));
        assert_eq!(code(&[("verb", "GetRecord"), ("identifier", "a"), ("identifier", "b"), ("metadataPrefix", "x")]), Some("badArgument"));
    }

    #[test]
    fn tokens_round_trip_and_refuse_what_they_did_not_give() {
        let p = Position {
            verb: "ListRecords".into(),
            prefix: "oai_dc".into(),
            set: "region:42".into(),
            from: Some(10),
            until: None,
            after: Some((1_765_000_000, "4201022025Y0001".into())),
            cursor: 200,
            size: Some(2500),
        };
        assert_eq!(Position::parse(&p.token()), Some(p.clone()));
        assert_eq!(Position::parse("zz"), None);
        assert_eq!(Position::parse(&huijiao_protocol::record::hex(b"2\x1fListRecords")), None);
        let start = Position { after: None, cursor: 0, size: None, ..p };
        assert_eq!(Position::parse(&start.token()), Some(start));
    }
}
