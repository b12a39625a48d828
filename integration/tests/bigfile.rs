//! A big file committed in parts (spec v1.2 §2), with real processes: a county takes a
//! 100,000-row JSON Lines file with rejected rows and rows only the store refuses,
//! spread through it, and sends it to its parent while reading it. Killed with
//! SIGKILL at several points (and stopped with SIGTERM at one), the county resumes
//! after its last committed part: its report, its rejected rows and its store end the
//! same as an uninterrupted run's, and its parent holds every record once, no change
//! twice.

use integration::Federation;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROWS: u32 = 100_000;
const LIMIT: Duration = Duration::from_secs(600);

/// The file: records of county 420102; every 997th line is not a record (rejected by
/// the check), every 1,009th withdraws a record the county never held (refused by the
/// store: unknown_record), and at two places a record withdrawn earlier in the file
/// comes again (refused by the store: withdrawn_record).
fn big_file() -> Vec<u8> {
    let mut g = huijiao_kit::synth::Generator::new(7);
    let today = huijiao::clock::today();
    let mut out = Vec::new();
    let mut withdrawn = Vec::new();
    for i in 0..ROWS {
        let line = if i % 997 == 996 {
            b"{\"reg_no\": \"not a record\"".to_vec()
        } else if i % 1009 == 1008 {
            format!("{{\"reg_no\": \"4201022020Y{:04}\", \"op\": \"withdraw\"}}", 9000 + i % 999).into_bytes()
        } else if i == 20_000 || i == 70_000 {
            let r = g.record("420102", i, today);
            withdrawn.push(r.clone());
            out.extend_from_slice(&r.canonical_json());
            out.push(b'\n');
            format!("{{\"reg_no\": \"{}\", \"op\": \"withdraw\"}}", r.reg_no).into_bytes()
        } else if i == 40_000 || i == 95_000 {
            withdrawn[if i == 40_000 { 0 } else { 1 }].canonical_json()
        } else {
            g.record("420102", i, today).canonical_json()
        };
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    out
}

fn find(dir: &Path, suffix: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, suffix) {
                return Some(f);
            }
        } else if p.to_string_lossy().ends_with(suffix) {
            return Some(p);
        }
    }
    None
}

/// What a county ended with: its report, its rejected rows, its records (body hash
/// and version by reg_no, withdrawn ones included).
struct Outcome {
    report: serde_json::Value,
    rejected: Vec<u8>,
    records: BTreeMap<String, (String, i64, bool)>,
}

fn outcome(f: &Federation, id: &str) -> Outcome {
    let node = f.node(id);
    let report_file = find(&node.dir, "big.jsonl.report.json").expect("the report");
    let report = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    let rejected = std::fs::read(find(&node.dir, "big.jsonl.rejected.csv").expect("the rejected rows")).unwrap();
    Outcome { report, rejected, records: states(f, id) }
}

/// A node's records: body hash, version and whether withdrawn, by reg_no.
fn states(f: &Federation, id: &str) -> BTreeMap<String, (String, i64, bool)> {
    f.node(id)
        .reader()
        .unwrap()
        .record_states()
        .unwrap()
        .into_iter()
        .map(|s| (s.reg_no.clone(), (huijiao_protocol::record::hex(&s.hash), s.version, s.withdrawn)))
        .collect()
}

async fn county_with_parent() -> Federation {
    let mut f = Federation::with_processes().unwrap();
    f.add("420100", None).unwrap();
    f.add("420102", Some("420100")).unwrap();
    f.start("420100").await.unwrap();
    f.start("420102").await.unwrap();
    f
}

async fn wait_done(f: &Federation, id: &str) {
    let inbox = f.node(id).inbox();
    integration::wait_for("the file to leave the inbox", LIMIT, || !inbox.join("big.jsonl").exists()).await.unwrap();
}

/// The county's end state, and that its parent holds every record of it once.
async fn settled(f: &Federation) -> Outcome {
    wait_done(f, "420102").await;
    let county = outcome(f, "420102");
    let want = county.records.len();
    integration::wait_for("the parent to hold every record", LIMIT, || {
        f.node("420100").reader().ok().and_then(|r| r.record_states().ok()).is_some_and(|s| s.len() == want)
    })
    .await
    .unwrap();
    let parent = f.node("420100").holdings().unwrap();
    assert!(parent.duplicated.is_empty(), "changes stored twice at the parent: {:?}", &parent.duplicated[..parent.duplicated.len().min(5)]);
    assert!(states(f, "420100") == county.records, "the parent holds what the county holds");
    county
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_file_stopped_anywhere_resumes_after_its_last_part_and_ends_as_an_uninterrupted_run() {
    let file = big_file();

    // The uninterrupted run: the county's first records reach the parent before the
    // county has finished the file.
    let mut f = county_with_parent().await;
    f.node("420102").drop_file("big.jsonl", &file).unwrap();
    let county_inbox = f.node("420102").inbox();
    integration::wait_for("the first records at the parent", LIMIT, || f.node("420100").record_count() > 0).await.unwrap();
    assert!(county_inbox.join("big.jsonl").exists(), "the parent held records while the county was still reading the file");
    let reference = settled(&f).await;
    f.stop_all().await.unwrap();
    assert_eq!(reference.report["rows"], ROWS + 2, "{}", reference.report);
    let codes: Vec<&str> = reference.report["errors"].as_array().unwrap().iter().filter_map(|e| e["code"].as_str()).collect();
    for code in ["unknown_record", "withdrawn_record"] {
        assert!(codes.contains(&code), "the reference run has {code} refusals: {codes:?}");
    }

    // Stopped at several points: after the first parts, half-way, near the end, and
    // once with SIGTERM (a clean stop) instead of SIGKILL.
    for (at, kill) in [(6_000i64, true), (35_000, false), (50_000, true), (92_000, true)] {
        let mut f = county_with_parent().await;
        f.node("420102").drop_file("big.jsonl", &file).unwrap();
        integration::wait_for("parts committed", LIMIT, || f.node("420102").record_count() >= at).await.unwrap();
        if kill {
            f.crash("420102").await;
        } else {
            f.stop("420102").await.unwrap();
        }
        let held = f.node("420102").record_count();
        assert!(f.node("420102").inbox().join("big.jsonl").exists(), "stopped at {at}: the file stays until its last part");
        assert!(held < reference.records.len() as i64, "stopped at {at} with {held} records: mid-file");
        f.start("420102").await.unwrap();
        let resumed = settled(&f).await;
        let log = std::fs::read_to_string(f.node("420102").files().log()).unwrap();
        assert!(log.contains("resuming a file after its last committed part"), "stopped at {at}: resumed, not read anew");
        f.stop_all().await.unwrap();
        assert_eq!(resumed.report, reference.report, "stopped at {at}: the report of an uninterrupted run");
        assert!(resumed.rejected == reference.rejected, "stopped at {at}: the same rejected rows");
        assert!(resumed.records == reference.records, "stopped at {at}: the same records, each once");
    }
}
