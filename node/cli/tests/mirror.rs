//! The PostgreSQL mirror through the real binary against a real PostgreSQL (Debian's,
//! a private cluster in a temporary folder, `huijiao_kit::postgres`): row-by-row
//! equality with `huijiao query --json --operator`, typed columns, the public view
//! without a private field, one mirror per schema, the daemon's `[mirror]` with its
//! lag in `status`; and kill -9 of the mirror and a PostgreSQL crash during a
//! 200,000-record catch-up, after which everything is equal again and no change is
//! there twice.

mod common;

use common::{wait_for, Node};
use huijiao_kit::postgres::Cluster;
use huijiao_kit::synth;
use huijiao_protocol::{Date, Record};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn today() -> Date {
    Date::from_unix_ms_china(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

/// `n` records of 江岸区 with serials from `first`.
fn records(first: u32, n: u32, seed: u64) -> Vec<Record> {
    let mut g = synth::Generator::new(seed);
    let t = today();
    (0..n).map(|i| g.record("420102", first + i, t)).collect()
}

fn mirror(node: &Node, args: &[&str]) -> std::process::Output {
    node.cli(&[&["mirror", "--config", node.config.to_str().unwrap()], args].concat())
}

fn spawn_mirror(node: &Node, url: &str) -> Child {
    Command::new(common::bin())
        .args(["mirror", "--config", node.config.to_str().unwrap(), "--postgres", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The node's listing (the store itself: every record, every field), by reg_no.
fn listing(node: &Node) -> BTreeMap<String, Map<String, Value>> {
    node.query(&[])
        .into_iter()
        .map(|v| {
            let m = v.as_object().unwrap().clone();
            (m["reg_no"].as_str().unwrap().to_string(), m)
        })
        .collect()
}

/// The mirror's records as the listing shows them: the record, version, origin and
/// withdrawn flag.
fn mirrored(pg: &Cluster, schema: &str) -> BTreeMap<String, Map<String, Value>> {
    pg.psql(&format!(
        "SELECT record || jsonb_build_object('_version', version, '_origin', origin, '_withdrawn', withdrawn) FROM {schema}.records"
    ))
    .unwrap()
    .lines()
    .map(|l| {
        let m: Map<String, Value> = serde_json::from_str(l).unwrap();
        (m["reg_no"].as_str().unwrap().to_string(), m)
    })
    .collect()
}

/// One piece: a mirror as an analyst meets it — caught up, equal, typed, public or
/// not, one per schema, then run by the daemon and followed live.
#[test]
fn the_mirror_equals_the_store_row_by_row_and_follows_it() {
    let pg = Cluster::start().expect("a PostgreSQL server (Debian: postgresql)");
    let mut node = Node::new("420102");
    node.start();
    let recs = records(1, 3000, 11);
    node.drop_file("a.csv", &synth::csv(&recs.iter().map(synth::cells).collect::<Vec<_>>(), false));
    assert_eq!(node.wait_handled("a.csv", 1)["accepted"], 3000);
    let gone: Vec<&str> = recs.iter().step_by(97).map(|r| r.reg_no.as_str()).collect();
    let withdraw: String = gone.iter().map(|r| format!("{r},撤销\r\n")).collect();
    node.drop_file("w.csv", format!("\u{feff}登记号,操作\r\n{withdraw}").as_bytes());
    node.wait_handled("w.csv", 1);

    // Caught up once: every record equal, field by field.
    let out = mirror(&node, &["--postgres", &pg.url(), "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = listing(&node);
    let got = mirrored(&pg, "huijiao");
    assert_eq!(got.len(), want.len());
    for (reg_no, w) in &want {
        let g = &got[reg_no];
        for (k, v) in w.iter().filter(|(k, _)| !matches!(k.as_str(), "_updated_at" | "_hops")) {
            assert_eq!(g.get(k), Some(v), "{reg_no}.{k}");
        }
        assert_eq!(g.len(), w.len() - 2, "{reg_no}: no other key");
    }
    // Typed columns, the history, the cursor.
    assert_eq!(pg.psql("SELECT count(*) FROM huijiao.records WHERE withdrawn").unwrap().trim(), gone.len().to_string());
    assert_eq!(
        pg.psql("SELECT count(*) FROM huijiao.records WHERE reg_date IS NULL OR persons[1] IS DISTINCT FROM record->'persons'->>0")
            .unwrap()
            .trim(),
        "0"
    );
    assert_eq!(
        pg.psql("SELECT pg_typeof(reg_date)::text || ' ' || pg_typeof(persons)::text FROM huijiao.records LIMIT 1").unwrap().trim(),
        "date text[]"
    );
    // Each key of the record has its column (the types as PostgreSQL reports them).
    let columns: Vec<(String, String)> = pg
        .psql(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'huijiao' AND table_name = 'records' \
             AND column_name NOT IN ('reg_no', 'version', 'withdrawn', 'origin', 'record', 'provenance', 'updated_at')",
        )
        .unwrap()
        .lines()
        .map(|l| {
            let (k, t) = l.split_once('|').unwrap();
            (k.to_string(), t.to_string())
        })
        .collect();
    let keys: Vec<String> = columns.iter().map(|(k, _)| format!("'{k}'")).chain(["'reg_no'".to_string()]).collect();
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM huijiao.records, jsonb_object_keys(record) k WHERE k NOT IN ({})", keys.join(", ")))
            .unwrap()
            .trim(),
        "0"
    );
    assert_eq!(columns.len(), 25);
    // Every typed column (sent in COPY's binary form) holds what the record's JSON
    // holds, to the number's scale.
    let mut differs: Vec<String> = columns
        .iter()
        .map(|(k, t)| match t.as_str() {
            "ARRAY" => format!("{k} IS DISTINCT FROM ARRAY(SELECT jsonb_array_elements_text(record->'{k}'))"),
            "numeric" => format!("{k}::text IS DISTINCT FROM (record->>'{k}')::numeric::text"),
            t => format!("{k} IS DISTINCT FROM (record->>'{k}')::{t}"),
        })
        .collect();
    differs.push("updated_at IS DISTINCT FROM (provenance->>'updated_at')::timestamptz".into());
    assert_eq!(pg.psql(&format!("SELECT count(*) FROM huijiao.records WHERE {}", differs.join(" OR "))).unwrap().trim(), "0");
    assert_ne!(pg.psql("SELECT count(*) FROM huijiao.records WHERE funding IS NOT NULL AND trl IS NOT NULL").unwrap().trim(), "0");
    let changes = 3000 + gone.len();
    assert_eq!(
        pg.psql("SELECT count(*), count(DISTINCT seq), max(seq) FROM huijiao.changes").unwrap().trim(),
        format!("{changes}|{changes}|{changes}")
    );
    assert_eq!(pg.psql("SELECT cursor FROM huijiao.mirror").unwrap().trim(), changes.to_string());
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM huijiao.changes c JOIN huijiao.records r USING (reg_no) WHERE c.region <> r.region \
             OR (extract(epoch FROM c.accepted_at) * 1000)::bigint <> (c.hops->-1->>'accepted_at_ms')::bigint"
        )
        .unwrap()
        .trim(),
        "0"
    );
    // Codes compare byte by byte, so `LIKE '42%'` can use the region index.
    assert_eq!(
        pg.psql("SELECT string_agg(attname || '=' || collname, ',' ORDER BY attname) FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation WHERE attrelid = 'huijiao.records'::regclass AND attname IN ('reg_no', 'region', 'industry')").unwrap().trim(),
        "industry=C,reg_no=C,region=C"
    );
    // The large values are kept with lz4, also in a schema made with pglz before.
    let compression = "SELECT string_agg(attname || '=' || attcompression::text, ',' ORDER BY attname) FROM pg_attribute \
                       WHERE attrelid = 'huijiao.records'::regclass AND attname IN ('abstract', 'provenance', 'record')";
    assert_eq!(pg.psql(compression).unwrap().trim(), "abstract=l,provenance=l,record=l");
    pg.psql("ALTER TABLE huijiao.records ALTER COLUMN record SET COMPRESSION pglz").unwrap();
    let out = mirror(&node, &["--postgres", &pg.url(), "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(pg.psql(compression).unwrap().trim(), "abstract=l,provenance=l,record=l");
    // A schema as the mirror made it before codes were "C" and rows kept whole: the
    // binary rows go into it all the same.
    let codes = |t: &str, cols: &[&str]| {
        let alter: Vec<String> = cols.iter().map(|c| format!("ALTER {c} TYPE text COLLATE \"default\"")).collect();
        format!("CREATE TABLE old.{t} (LIKE huijiao.{t} INCLUDING ALL); ALTER TABLE old.{t} {};", alter.join(", "))
    };
    pg.psql(&format!(
        "CREATE SCHEMA old; {} {} CREATE TABLE old.mirror (LIKE huijiao.mirror INCLUDING ALL);",
        codes("records", &["reg_no", "origin", "region", "discipline", "industry"]),
        codes("changes", &["reg_no", "origin", "region"])
    ))
    .unwrap();
    let out = mirror(&node, &["--postgres", &pg.url(), "--once", "--schema", "old"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(pg.psql(&format!("SELECT count(*) FROM old.records WHERE {}", differs.join(" OR "))).unwrap().trim(), "0");
    assert_eq!(
        pg.psql("SELECT (SELECT count(*) FROM old.records), (SELECT count(*) FROM old.changes), (SELECT reloptions IS NULL FROM pg_class WHERE oid = 'old.records'::regclass)").unwrap().trim(),
        format!("{}|{changes}|t", want.len())
    );
    // The public view: only public records, no private column, no history.
    let out = mirror(&node, &["--postgres", &pg.url(), "--once", "--schema", "open", "--view", "public"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = node.query(&["--public"]).len();
    assert_eq!(pg.psql("SELECT count(*) FROM open.records").unwrap().trim(), public.to_string());
    assert_eq!(
        pg.psql("SELECT count(*) FROM open.records WHERE withdrawn OR phone IS NOT NULL OR contact IS NOT NULL OR funding IS NOT NULL OR benefit IS NOT NULL OR secret IS NOT NULL OR record ? 'phone'").unwrap().trim(),
        "0"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM open.changes").unwrap().trim(), "0");
    // A schema holds one view; one mirror per schema at a time.
    let out = mirror(&node, &["--postgres", &pg.url(), "--once", "--schema", "open"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("public view"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut first = spawn_mirror(&node, &pg.url());
    wait_for("the first mirror's lock", Duration::from_secs(30), || {
        pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").unwrap().trim() == "1"
    });
    let out = mirror(&node, &["--postgres", &pg.url(), "--once"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("another mirror"), "{}", String::from_utf8_lossy(&out.stderr));
    first.kill().unwrap();
    first.wait().unwrap();

    // The daemon runs it from [mirror]; new records follow within moments; status says so.
    node.stop();
    let url_file = node.dir.path().join("postgres-url");
    std::fs::write(&url_file, pg.url()).unwrap();
    std::fs::set_permissions(&url_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cfg = std::fs::read_to_string(&node.config).unwrap();
    std::fs::write(&node.config, format!("{cfg}\n[mirror]\npostgres_url_file = \"postgres-url\"\n")).unwrap();
    node.start();
    let more = records(100_001, 500, 12);
    node.drop_file("b.csv", &synth::csv(&more.iter().map(synth::cells).collect::<Vec<_>>(), false));
    node.wait_handled("b.csv", 1);
    let total = listing(&node).len();
    wait_for("the new records in PostgreSQL", Duration::from_secs(60), || {
        pg.psql("SELECT count(*) FROM huijiao.records").unwrap().trim() == total.to_string()
    });
    wait_for("status to show the mirror caught up", Duration::from_secs(30), || {
        let out = node.cli(&["status", "--config", node.config.to_str().unwrap()]);
        String::from_utf8_lossy(&out.stdout).contains(", 0 behind; ok")
    });
}

#[test]
fn a_kill_of_the_mirror_and_a_postgresql_crash_lose_and_repeat_nothing() {
    let pg = Cluster::start().expect("a PostgreSQL server (Debian: postgresql)");
    let mut node = Node::new("420102");
    node.start();
    let recs = records(1, 200_000, 13);
    node.drop_file("big.csv", &synth::csv(&recs.iter().map(synth::cells).collect::<Vec<_>>(), false));
    assert_eq!(node.wait_handled("big.csv", 1)["accepted"], 200_000);
    let cursor =
        || pg.psql("SELECT coalesce((SELECT cursor FROM huijiao.mirror), 0)").unwrap_or_default().trim().parse::<i64>().unwrap_or(0);
    let mut m = spawn_mirror(&node, &pg.url());
    wait_for("the mirror to start", Duration::from_secs(60), || cursor() > 0);
    m.kill().unwrap(); // SIGKILL
    m.wait().unwrap();
    let at_kill = cursor();
    assert!(at_kill < 200_000, "killed mid-way ({at_kill})");
    // A catch-up from nothing goes without its secondary indexes; stopped before it
    // caught up, the next start builds them and goes on with them.
    let indexes = |schema: &str| {
        pg.psql(&format!("SELECT count(*) FROM pg_indexes WHERE schemaname = '{schema}' AND indexname NOT LIKE '%_pkey'"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(indexes("huijiao"), "0");
    let mut m = spawn_mirror(&node, &pg.url());
    wait_for("progress after the kill", Duration::from_secs(60), || cursor() > at_kill);
    let at_crash = cursor();
    pg.crash_restart().unwrap();
    assert!(at_crash < 200_000, "PostgreSQL crashed mid-way ({at_crash})");
    wait_for("the catch-up after PostgreSQL's crash", Duration::from_secs(300), || cursor() == 200_000);
    m.kill().unwrap();
    m.wait().unwrap();
    assert_eq!(
        pg.psql("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM huijiao.changes").unwrap().trim(),
        "200000|200000|1|200000"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM huijiao.records").unwrap().trim(), "200000");
    // Equal to the store: each record's number, version and title.
    let want: BTreeMap<String, (i64, String)> = recs.iter().map(|r| (r.reg_no.clone(), (1, r.title.clone()))).collect::<BTreeMap<_, _>>();
    let got: BTreeMap<String, (i64, String)> = pg
        .psql("SELECT reg_no, version, title FROM huijiao.records")
        .unwrap()
        .lines()
        .map(|l| {
            let mut p = l.splitn(3, '|');
            (p.next().unwrap().to_string(), (p.next().unwrap().parse().unwrap(), p.next().unwrap().to_string()))
        })
        .collect();
    assert!(got == want, "the mirror differs from the store");
    assert_eq!(indexes("huijiao"), "4");
    // Uninterrupted, the indexes are built once it has caught up, before `--once` ends.
    let out = mirror(&node, &["--postgres", &pg.url(), "--once", "--schema", "again"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("indexes are built"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(indexes("again"), "4");
    assert_eq!(
        pg.psql("SELECT count(*) FROM again.records r JOIN huijiao.records h USING (reg_no, version, title)").unwrap().trim(),
        "200000"
    );
    // A record whose text holds U+0000 (a JSON drop may carry `\u0000`), which
    // PostgreSQL's text cannot: mirrored without it, and the mirror goes on.
    let mut odd = records(200_001, 1, 17).remove(0);
    odd.title = "含\u{0}空字符的成果".into();
    odd.keywords = vec!["甲\u{0}乙".into()];
    node.drop_file("odd.jsonl", &synth::jsonl(std::slice::from_ref(&odd)));
    assert_eq!(node.wait_handled("odd.jsonl", 1)["accepted"], 1);
    let out = mirror(&node, &["--postgres", &pg.url(), "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        pg.psql(&format!("SELECT title, record->>'title', keywords[1] FROM huijiao.records WHERE reg_no = '{}'", odd.reg_no))
            .unwrap()
            .trim(),
        "含空字符的成果|含空字符的成果|甲乙"
    );
    assert_eq!(pg.psql("SELECT cursor FROM huijiao.mirror").unwrap().trim(), "200001");
}
