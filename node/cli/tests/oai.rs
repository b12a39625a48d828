//! OAI-PMH through the real binary, harvested by a real client (Python's `sickle`) and
//! every answer validated by a real validator (Python's `xmlschema`) against the
//! OAI-PMH 2.0 schema, oai_dc's and huijiao's, offline (`docs/oai/`): a harvest through
//! resumption tokens returns exactly the public records, once each; a withdrawal and a
//! record made 内部 come back as deletions in an incremental harvest; a harvest goes on
//! from its token across a restart and a reindex; an embargo lapsing makes a record
//! appear; every error code answers where the protocol asks for it.

mod common;

use common::http::{get, request, url};
use common::{wait_for, Node};
use huijiao_kit::synth;
use huijiao_protocol::{Date, Record, Secret};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DOMAIN: &str = "kjcg.example.gov.cn";

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/oai")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oai/harvest.py")
}

fn python(args: &[&str]) -> Value {
    let out = Command::new("python3").arg(script()).args(args).output().expect("python3 (with sickle and xmlschema: .ci/packages)");
    assert!(out.status.success(), "harvest.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The national node with pages, API and `/oai`; started. Its HTTP address.
fn repository(env: &[(&str, &str)]) -> (Node, String) {
    let mut node = Node::new("000000");
    let mut cfg = std::fs::read_to_string(&node.config).unwrap();
    cfg = cfg.replace(
        "[inbox]",
        &format!(
            "[http]\naddress = \"127.0.0.1:0\"\nrate_per_minute = 100000\n\n[oai]\nrepository_identifier = \"{DOMAIN}\"\nadmin_email = \"oai@example.gov.cn\"\n\n[inbox]"
        ),
    );
    std::fs::write(&node.config, cfg).unwrap();
    node.start_with_env(env);
    let addr = address(&node);
    (node, addr)
}

/// Starts `node` again (with `env`): its new HTTP address.
fn restart(node: &mut Node, env: &[(&str, &str)]) -> String {
    let _ = std::fs::remove_file(node.dir.path().join("data/http-address"));
    node.start_with_env(env);
    address(node)
}

fn address(node: &Node) -> String {
    let f = node.dir.path().join("data/http-address");
    wait_for("the HTTP address", Duration::from_secs(60), || f.exists());
    std::fs::read_to_string(f).unwrap()
}

fn public_total(addr: &str) -> u64 {
    get(addr, "/api/v1/records?limit=1", &[]).json()["total"].as_u64().unwrap_or(0)
}

fn today() -> Date {
    Date::from_unix_ms_china(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

/// 2,400 records over Hubei and Guangdong, about 15 % 内部 (the generator's share),
/// one embargoed until today (public from tomorrow). The public ones' reg_nos too.
fn fixture() -> (Vec<Record>, BTreeSet<String>, String) {
    let mut g = synth::Generator::new(7);
    let t = today();
    let mut recs: Vec<Record> = (0..2400u32).map(|i| g.record(if i % 3 == 0 { "440106" } else { "420102" }, i + 1, t)).collect();
    let lapsing = recs.iter_mut().find(|r| r.secret == Secret::Public && r.reg_date < t).unwrap();
    lapsing.embargo_until = Some(t);
    let lapsing = lapsing.reg_no.clone();
    let public = recs.iter().filter(|r| r.secret == Secret::Public && r.embargo_until.is_none()).map(|r| r.reg_no.clone()).collect();
    (recs, public, lapsing)
}

fn ids(harvest: &Value) -> Vec<String> {
    harvest["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().rsplit(':').next().unwrap().to_string()).collect()
}

/// One page of a list by hand: its records' reg_nos and the token that goes on.
fn page(addr: &str, query: &[(&str, &str)]) -> (Vec<String>, Option<String>, String) {
    let r = get(addr, &url("/oai", query), &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    let found: Vec<String> =
        body.split("<identifier>oai:").skip(1).map(|s| s.split('<').next().unwrap().rsplit(':').next().unwrap().to_string()).collect();
    let token = body.split("<resumptionToken").nth(1).and_then(|s| s.split_once('>')).and_then(|(_, rest)| {
        let t = rest.split("</resumptionToken>").next().unwrap_or("");
        (!t.is_empty() && !t.starts_with('<')).then(|| t.to_string())
    });
    (found, token, body)
}

/// One piece: the life of one repository as a harvester meets it, in order.
#[test]
fn a_harvester_gets_exactly_the_public_records_then_the_changes() {
    let (recs, public, lapsing) = fixture();
    let (mut node, addr) = repository(&[]);
    node.drop_file("all.csv", &synth::csv(&recs.iter().map(synth::cells).collect::<Vec<_>>(), false));
    let report = node.wait_handled("all.csv", 1);
    assert_eq!(report["accepted"], 2400, "{report}");
    wait_for("the public records in the catalogue", Duration::from_secs(120), || public_total(&addr) == public.len() as u64);
    let base = format!("http://{addr}/oai");

    // A full harvest through resumption tokens: the public records, once each.
    let full = python(&["harvest", &base, "oai_dc"]);
    let got = ids(&full);
    assert_eq!(got.len(), public.len(), "each record once");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), public, "exactly the public records");
    assert!(full["records"].as_array().unwrap().iter().all(|r| r["deleted"] == false && r["title"].is_string()));
    // A set: Guangdong's only, in the huijiao format.
    let gd = ids(&python(&["harvest", &base, "huijiao", "", "region:44"]));
    assert_eq!(gd.iter().cloned().collect::<BTreeSet<_>>(), public.iter().filter(|r| r.starts_with("44")).cloned().collect());
    let last_stamp = full["records"].as_array().unwrap().iter().map(|r| r["datestamp"].as_str().unwrap().to_string()).max().unwrap();

    // One withdrawn, one made 内部: an incremental harvest from the last datestamp has both as deletions.
    let mut it = public.iter().filter(|r| r.starts_with("42"));
    let (gone, hidden) = (it.next().unwrap().clone(), it.next().unwrap().clone());
    let mut internal = recs.iter().find(|r| r.reg_no == hidden).unwrap().clone();
    internal.secret = Secret::Internal;
    node.drop_file("internal.csv", &synth::csv(&[synth::cells(&internal)], false));
    node.wait_handled("internal.csv", 1);
    node.drop_file("withdraw.csv", format!("\u{feff}登记号,操作\r\n{gone},撤销\r\n").as_bytes());
    node.wait_handled("withdraw.csv", 1);
    wait_for("both out of the public catalogue", Duration::from_secs(60), || public_total(&addr) == public.len() as u64 - 2);
    let since = python(&["harvest", &base, "oai_dc", &last_stamp]);
    let deleted: BTreeSet<String> = since["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["deleted"] == true)
        .map(|r| r["id"].as_str().unwrap().rsplit(':').next().unwrap().to_string())
        .collect();
    assert_eq!(deleted, [gone.clone(), hidden.clone()].into_iter().collect(), "{since}");
    let xml = get(
        &addr,
        &url("/oai", &[("verb", "GetRecord"), ("metadataPrefix", "oai_dc"), ("identifier", &format!("oai:{DOMAIN}:{hidden}"))]),
        &[],
    )
    .text();
    assert!(xml.contains("status=\"deleted\"") && !xml.contains("<metadata>"), "a deletion shows no content: {xml}");

    // A harvest goes on from its token across a restart and a reindex.
    let mut seen = Vec::new();
    let (first, token, _) = page(&addr, &[("verb", "ListIdentifiers"), ("metadataPrefix", "huijiao")]);
    seen.extend(first);
    let mut token = token.expect("more than one page");
    node.stop();
    let out = node.cli(&["reindex", "--config", node.config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let addr = restart(&mut node, &[]);
    wait_for("the catalogue after the reindex", Duration::from_secs(120), || public_total(&addr) == public.len() as u64 - 2);
    loop {
        let (more, next, body) = page(&addr, &[("verb", "ListIdentifiers"), ("resumptionToken", &token)]);
        assert!(!body.contains("<error"), "{body}");
        seen.extend(more);
        match next {
            Some(t) => token = t,
            None => break,
        }
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "nothing twice");
    let mut everything = public.clone();
    everything.extend([gone.clone(), hidden.clone()]);
    assert_eq!(unique, everything, "the public records and the two deletions");

    // The embargo lapses (the node's clock two days on): the record appears.
    assert!(get(
        &addr,
        &url("/oai", &[("verb", "GetRecord"), ("metadataPrefix", "oai_dc"), ("identifier", &format!("oai:{DOMAIN}:{lapsing}"))]),
        &[]
    )
    .text()
    .contains("idDoesNotExist"));
    node.stop();
    let addr = restart(&mut node, &[("HUIJIAO_CLOCK_SKEW_SECS", "172800")]);
    wait_for("the lapsed embargo", Duration::from_secs(60), || public_total(&addr) == public.len() as u64 - 1);
    // From a day ahead of the real clock: only what changed under the skewed one.
    let tomorrow = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 86_400;
    let d = Date::from_days(tomorrow.div_euclid(86_400));
    let later = python(&["harvest", &format!("http://{addr}/oai"), "huijiao", &d.to_string()]);
    let appeared: Vec<&Value> = later["records"].as_array().unwrap().iter().filter(|r| r["deleted"] == false).collect();
    assert_eq!(appeared.len(), 1, "{later}");
    assert!(appeared[0]["id"].as_str().unwrap().ends_with(&lapsing));
}

#[test]
fn every_answer_validates_and_every_error_answers_where_it_should() {
    let (recs, public, _) = fixture();
    let (node, addr) = repository(&[]);
    let private: Vec<String> = recs.iter().filter_map(|r| r.phone.clone()).take(50).collect();
    node.drop_file("all.csv", &synth::csv(&recs[..300].iter().map(synth::cells).collect::<Vec<_>>(), false));
    node.wait_handled("all.csv", 1);
    let n = public.iter().filter(|r| recs[..300].iter().any(|x| &&x.reg_no == r)).count() as u64;
    wait_for("the records in the catalogue", Duration::from_secs(60), || public_total(&addr) == n);
    let one = public.iter().find(|r| recs[..300].iter().any(|x| &&x.reg_no == r)).unwrap();
    let id = format!("oai:{DOMAIN}:{one}");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut ask = |name: &str, query: &[(&str, &str)], code: Option<&str>| {
        let r = get(&addr, &url("/oai", query), &[]);
        assert_eq!((r.status, r.header("content-type")), (200, Some("text/xml; charset=utf-8")), "{name}");
        let body = r.text();
        match code {
            Some(c) => assert!(body.contains(&format!("<error code=\"{c}\">")), "{name}: {body}"),
            None => assert!(!body.contains("<error"), "{name}: {body}"),
        }
        for p in &private {
            assert!(!body.contains(p.as_str()), "{name} shows a private phone number");
        }
        let f = dir.path().join(format!("{name}.xml"));
        std::fs::write(&f, &body).unwrap();
        files.push(f.to_str().unwrap().to_string());
        body
    };
    let identify = ask("identify", &[("verb", "Identify")], None);
    assert!(
        identify.contains(&format!("<baseURL>http://{addr}/oai</baseURL>"))
            && identify.contains("<deletedRecord>persistent</deletedRecord>")
    );
    ask("formats", &[("verb", "ListMetadataFormats")], None);
    ask("formats-of-one", &[("verb", "ListMetadataFormats"), ("identifier", &id)], None);
    let sets = ask("sets", &[("verb", "ListSets")], None);
    assert!(sets.contains("<setSpec>region:42</setSpec>") && sets.contains("<setSpec>kind:applied</setSpec>"));
    ask("records-dc", &[("verb", "ListRecords"), ("metadataPrefix", "oai_dc")], None);
    ask("records-huijiao", &[("verb", "ListRecords"), ("metadataPrefix", "huijiao"), ("set", "kind:applied")], None);
    ask("identifiers", &[("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"), ("from", "2000-01-01"), ("until", "2999-12-31")], None);
    let dc = ask("get-dc", &[("verb", "GetRecord"), ("metadataPrefix", "oai_dc"), ("identifier", &id)], None);
    assert!(dc.contains(&format!("<dc:identifier>http://{addr}/records/{one}</dc:identifier>")), "{dc}");
    ask("get-huijiao", &[("verb", "GetRecord"), ("metadataPrefix", "huijiao"), ("identifier", &id)], None);
    // Errors.
    ask("no-verb", &[], Some("badVerb"));
    ask("bad-verb", &[("verb", "ListEverything")], Some("badVerb"));
    ask("no-prefix", &[("verb", "ListRecords")], Some("badArgument"));
    ask("bad-from", &[("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2025-13-01")], Some("badArgument"));
    ask(
        "mixed-granularity",
        &[("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2025-01-01"), ("until", "2025-12-31T00:00:00Z")],
        Some("badArgument"),
    );
    ask("unknown-argument", &[("verb", "Identify"), ("colour", "red")], Some("badArgument"));
    ask("repeated", &[("verb", "GetRecord"), ("metadataPrefix", "oai_dc"), ("identifier", &id), ("identifier", &id)], Some("badArgument"));
    ask("no-such-set", &[("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("set", "region:99")], Some("badArgument"));
    ask("token-and-more", &[("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("resumptionToken", "00")], Some("badArgument"));
    ask("bad-token", &[("verb", "ListRecords"), ("resumptionToken", "not-a-token")], Some("badResumptionToken"));
    ask("sets-token", &[("verb", "ListSets"), ("resumptionToken", "x")], Some("badResumptionToken"));
    ask("bad-format", &[("verb", "ListRecords"), ("metadataPrefix", "marc21")], Some("cannotDisseminateFormat"));
    ask("bad-format-one", &[("verb", "GetRecord"), ("metadataPrefix", "marc21"), ("identifier", &id)], Some("cannotDisseminateFormat"));
    ask(
        "unknown-id",
        &[("verb", "GetRecord"), ("metadataPrefix", "oai_dc"), ("identifier", &format!("oai:{DOMAIN}:4201022099Y9999"))],
        Some("idDoesNotExist"),
    );
    ask("other-domain", &[("verb", "ListMetadataFormats"), ("identifier", "oai:example.org:1")], Some("idDoesNotExist"));
    ask("nothing-matches", &[("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2999-01-01")], Some("noRecordsMatch"));
    // A POST is answered as a GET; the huijiao schema is served.
    let posted = request(&addr, "POST", "/oai", &[], Some("verb=Identify".into()));
    assert!(posted.text().contains("<Identify>"));
    assert!(get(&addr, "/oai/huijiao.xsd", &[]).text().contains("urn:huijiao:record:1"));
    let schemas = schemas();
    let mut args = vec!["validate", schemas.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let v = python(&args);
    assert_eq!(v["errors"], serde_json::json!({}), "{v}");
    assert_eq!(v["validated"].as_u64(), Some(files.len() as u64));
}
