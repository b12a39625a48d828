//! The benchmark scenarios of BENCHMARKS.md. Each generates its own data, measures
//! huijiao and, where one exists, a raw baseline of the bare libraries in the same
//! run, and returns result rows. Speed is measured here, never asserted in tests.

use crate::{Federation, RawClient};
use huijiao::store::{FileMeta, IngestMsg, Writer};
use huijiao_kit::synth::{self, Generator};
use huijiao_protocol::report::Report;
use huijiao_protocol::wire::{self, Message};
use huijiao_protocol::Record;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub goal: String,
    pub measured: f64,
    pub unit: String,
    pub baseline: Option<f64>,
    pub ratio: Option<f64>,
    /// Whether the goal is met; None where the row has no goal.
    pub met: Option<bool>,
    pub note: String,
}

impl Row {
    pub(crate) fn new(scenario: &str, metric: &str, goal: &str, measured: f64, unit: &str) -> Row {
        Row {
            scenario: scenario.into(),
            metric: metric.into(),
            goal: goal.into(),
            measured,
            unit: unit.into(),
            baseline: None,
            ratio: None,
            met: None,
            note: String::new(),
        }
    }
    pub(crate) fn baseline(mut self, b: f64) -> Row {
        self.baseline = Some(b);
        self.ratio = Some(self.measured / b);
        self
    }
    pub(crate) fn met(mut self, ok: bool) -> Row {
        self.met = Some(ok);
        self
    }
    pub(crate) fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub disk: String,
    pub kernel: String,
}

impl Machine {
    pub fn probe(dir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim().to_string();
        let mem_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
            .unwrap_or(0.0);
        let out = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let df = out("df", &["-T", "-h", &dir.display().to_string()]);
        let disk = df.lines().nth(1).map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} ({} total)", c.first().unwrap_or(&"?"), c.get(1).unwrap_or(&"?"), c.get(2).unwrap_or(&"?"))
        });
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_gib: mem_kb / 1024.0 / 1024.0,
            disk: disk.unwrap_or_default(),
            kernel: out("uname", &["-r"]),
        }
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub smoke: bool,
}

impl Size {
    pub(crate) fn pick<T>(self, full: T, smoke: T) -> T {
        if self.smoke {
            smoke
        } else {
            full
        }
    }
}

/// A one-line progress bar on stderr (only the final state when it is not a terminal).
pub fn progress(label: &str, done: u64, total: u64) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() && done < total {
        return;
    }
    let width = 30u64;
    let filled = (done.min(total) * width).checked_div(total).unwrap_or(0) as usize;
    eprint!("\r  {label:<22} [{}{}] {done}/{total}   ", "█".repeat(filled), "·".repeat(width as usize - filled));
    if done >= total {
        eprintln!();
    }
    let _ = std::io::stderr().flush();
}

pub(crate) fn records(region: &str, from: u32, n: u32, seed: u64) -> Vec<Record> {
    let mut g = Generator::new(seed);
    let today = huijiao::clock::today();
    (from..from + n).map(|i| g.record(region, i, today)).collect()
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Resident and peak memory of a process, MiB, from /proc.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds a process has used, from /proc.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    ticks / hz
}

/// Fills a store with `recs` as local changes of `node`, the way the inbox does.
pub(crate) fn preload(db: &Path, node: &str, recs: &[Record]) -> anyhow::Result<()> {
    preload_tagged(db, node, recs, "preload")
}

/// [`preload`] under file names starting `tag`, so one store can be filled in parts.
pub(crate) fn preload_tagged(db: &Path, node: &str, recs: &[Record], tag: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(db.parent().unwrap_or(Path::new(".")))?;
    let mut w = Writer::open(Some(db), node)?;
    for (i, chunk) in recs.chunks(100_000).enumerate() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let rows: Vec<huijiao::store::Prepared> = chunk
            .iter()
            .enumerate()
            .map(|(j, r)| huijiao::store::Prepared::new(j as u64 + 2, huijiao_protocol::Row::Upsert(r.clone())))
            .collect();
        let mut report = Report::new("preload", &format!("{tag}-{i}"));
        report.rows = rows.len() as u64;
        report.accepted = rows.len() as u64;
        let h = std::thread::spawn(move || {
            for c in rows.chunks(2048) {
                let _ = tx.send(IngestMsg::Rows(c.to_vec()));
            }
            let _ = tx.send(IngestMsg::Done(Box::new(report)));
        });
        let meta = FileMeta {
            sha256: format!("{tag}-{i}"),
            name: "preload".into(),
            source_path: String::new(),
            dest: format!("{tag}-{i}"),
            received_at: 0,
        };
        // Nothing here can be refused by the store; its answers are not read.
        let (answers, _unread) = std::sync::mpsc::sync_channel(4096);
        w.ingest_file(meta, rx, answers)?;
        w.mark_moved(&format!("{tag}-{i}"))?;
        let _ = h.join();
    }
    Ok(())
}

/// `ingest`: N records as CSV and as JSONL dropped into an inbox until committed,
/// against a minimal rusqlite loop with the same durability settings.
pub async fn ingest(size: Size, root: &Path) -> anyhow::Result<Vec<Row>> {
    let n: u32 = size.pick(1_000_000, 4_000);
    let files: u32 = size.pick(10, 2);
    let per = n / files;
    let stage = root.join("ingest-stage");
    std::fs::create_dir_all(&stage)?;
    let mut bodies: Vec<(String, String)> = Vec::with_capacity(n as usize);
    for f in 0..files {
        progress("generating", u64::from(f), u64::from(files));
        let recs = records("420102", f * per, per, u64::from(f));
        let rows: Vec<Vec<String>> = recs.iter().map(synth::cells).collect();
        std::fs::write(stage.join(format!("batch-{f:02}.csv")), synth::csv(&rows, false))?;
        std::fs::write(stage.join(format!("batch-{f:02}.jsonl")), synth::jsonl(&recs))?;
        bodies.extend(recs.iter().map(|r| (r.reg_no.clone(), String::from_utf8(r.canonical_json()).unwrap_or_default())));
    }
    progress("generating", u64::from(files), u64::from(files));
    let mean_body = bodies.iter().map(|(_, b)| b.len()).sum::<usize>() / bodies.len().max(1);

    let baseline = raw_insert_rate(&root.join("baseline.db"), &bodies, per as usize)?;
    drop(bodies);

    let mut rows = Vec::new();
    for ext in ["csv", "jsonl"] {
        let mut f = Federation::new()?;
        f.add("420102", None)?;
        f.start("420102").await?;
        let inbox = f.node("420102").inbox();
        let t = Instant::now();
        for i in 0..files {
            let name = format!("batch-{i:02}.{ext}");
            std::fs::copy(stage.join(&name), inbox.join(format!(".{name}.part")))?;
        }
        // Copied first, then renamed in at once: the clock runs from the drop.
        let t0 = Instant::now();
        for i in 0..files {
            let name = format!("batch-{i:02}.{ext}");
            std::fs::rename(inbox.join(format!(".{name}.part")), inbox.join(&name))?;
        }
        let _ = t;
        let node = f.node("420102");
        // Polls the inbox folder, not the store, so the measurement costs nothing.
        loop {
            let left = std::fs::read_dir(&inbox)?.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count();
            let done = u64::from(files) - left as u64;
            progress(&format!("ingest {ext}"), done, u64::from(files));
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        let held = node.record_count();
        anyhow::ensure!(held as u32 == n, "ingest {ext}: {held} of {n} records stored");
        let rate = f64::from(n) / secs;
        f.stop_all().await?;
        rows.push(
            Row::new("ingest", &format!("{ext}, {n} records of ~{mean_body} B"), "≥ 50,000/s and ≥ 0.5 × baseline", rate, "records/s")
                .baseline(baseline)
                .met(rate >= 50_000.0 && rate >= 0.5 * baseline)
                .note(format!("{secs:.1} s from drop to the last commit, settle 100 ms")),
        );
    }
    Ok(rows)
}

/// The raw baseline of `ingest` and `bighop`: the same (reg_no, body) pairs inserted
/// into one table, WAL with `synchronous=FULL`, `per_txn` rows per transaction;
/// rows per second.
fn raw_insert_rate(db: &Path, bodies: &[(String, String)], per_txn: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut conn = rusqlite::Connection::open(db)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, reg_no TEXT NOT NULL, body TEXT NOT NULL)")?;
    for chunk in bodies.chunks(per_txn.max(1)) {
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT INTO t (reg_no, body) VALUES (?1, ?2)")?;
            for (r, b) in chunk {
                st.execute([r, b])?;
            }
        }
        tx.commit()?;
    }
    Ok(bodies.len() as f64 / t.elapsed().as_secs_f64())
}

/// Checks a batch of the county 420102's changes as its parent does (against the
/// region table and the clock, now).
fn check_as_parent(changes: Vec<huijiao_protocol::wire::Change>) -> anyhow::Result<Vec<huijiao_protocol::sync::CheckedChange>> {
    let checks = huijiao_protocol::sync::Checks {
        regions: huijiao_protocol::RegionTable::embedded(),
        today: huijiao::clock::today(),
        now_ms: huijiao::clock::now_ms(),
        max_skew_ms: 300_000,
    };
    changes
        .into_iter()
        .map(|c| huijiao_protocol::sync::checked("420102", c, &checks))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Checks and applies every change of `backlog` (a county's store) into a fresh parent
/// store at `db`, `batch` at a time, one after the other in one thread: changes per
/// second, and the share of the time the checks took. What one core does per change.
fn apply_serial(backlog: &Path, db: &Path, batch: usize) -> anyhow::Result<(f64, f64)> {
    let r = huijiao::store::Reader::open(backlog)?;
    let mut w = Writer::open(Some(db), "420100")?;
    let (mut after, mut n, mut checking, mut total) = (0u64, 0usize, Duration::ZERO, Duration::ZERO);
    loop {
        let changes = r.changes_after(after, batch, 4 << 20)?;
        let Some(last) = changes.last().map(|c| c.seq) else { break };
        n += changes.len();
        let t = Instant::now();
        let checked = check_as_parent(changes)?;
        let c = t.elapsed();
        let out =
            w.apply_batch("420102", "bench", after, last, &checked, huijiao::clock::now_ms()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        // As the store's writer thread does after each job.
        w.release_cache();
        anyhow::ensure!(!out.stale, "the batch after {after} was stale");
        checking += c;
        total += t.elapsed();
        after = last;
    }
    Ok((n as f64 / total.as_secs_f64(), checking.as_secs_f64() / total.as_secs_f64()))
}

/// Checks and applies every change of `backlog` into a fresh parent store at `db` as
/// the parent's downlink does: batches are checked on another thread up to eight ahead
/// (the downlink's `DECODED_AHEAD`) while the store's writer thread applies them, its
/// checkpointer beside it. The reading of the backlog stands in for the decoding of
/// frames and is inside the time. Changes per second.
async fn apply_pipelined(backlog: &Path, db: &Path, batch: usize) -> anyhow::Result<f64> {
    let store = huijiao::store::Store::open(db, "420100")?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let backlog = backlog.to_path_buf();
    let t = Instant::now();
    let reader = std::thread::spawn(move || -> anyhow::Result<usize> {
        let r = huijiao::store::Reader::open(&backlog)?;
        let (mut after, mut n) = (0u64, 0usize);
        loop {
            let changes = r.changes_after(after, batch, 4 << 20)?;
            let Some(last) = changes.last().map(|c| c.seq) else { break };
            n += changes.len();
            let checked = check_as_parent(changes)?;
            if tx.blocking_send((after, last, checked)).is_err() {
                break;
            }
            after = last;
        }
        Ok(n)
    });
    while let Some((after, upto, checked)) = rx.recv().await {
        // As the downlink does: the batch comes back to be freed off the writer thread.
        let (out, checked) =
            store.call(move |w| (w.apply_batch("420102", "bench", after, upto, &checked, huijiao::clock::now_ms()), checked)).await?;
        drop(checked);
        let out = out.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::ensure!(!out.stale, "the batch after {after} was stale");
    }
    let n = reader.join().map_err(|_| anyhow::anyhow!("the checking thread panicked"))??;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(store);
    Ok(rate)
}

/// Writes out the dirty pages of the phase before, so that a measurement that
/// fsyncs does not wait behind another's writeback (the raw baseline moved by a third
/// between runs without it).
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// The apply at the parent, as the parent runs it, against the raw insert of the same
/// bodies in transactions of the same size (`backlog`: a county's store).
async fn apply_row(backlog: &Path, root: &Path, n: u32) -> anyhow::Result<Row> {
    settle_disk();
    let pipelined = apply_pipelined(backlog, &root.join("apply-parent.db"), 2000).await?;
    settle_disk();
    let (serial, check_share) = apply_serial(backlog, &root.join("apply-serial.db"), 2000)?;
    let bodies = {
        let r = huijiao::store::Reader::open(backlog)?;
        let mut out = Vec::with_capacity(n as usize);
        let mut after = 0;
        loop {
            let changes = r.changes_after(after, 2000, 4 << 20)?;
            let Some(last) = changes.last().map(|c| c.seq) else { break };
            out.extend(changes.into_iter().map(|c| (c.reg_no, String::from_utf8(c.body.unwrap_or_default()).unwrap_or_default())));
            after = last;
        }
        out
    };
    settle_disk();
    let raw_insert = raw_insert_rate(&root.join("apply-raw.db"), &bodies, 2000)?;
    drop(bodies);
    Ok(Row::new(
        "sync",
        &format!("apply at the parent, {n} changes checked and applied in batches of 2000"),
        "≥ 0.5 × raw insert",
        pipelined,
        "changes/s",
    )
    .baseline(raw_insert)
    .met(pipelined >= 0.5 * raw_insert)
    .note(format!(
        "as the parent runs it (checks beside the writer); in one thread, check then write: {serial:.0}/s ({:.2} × raw), the child's checks (jurisdiction, hash, UTF-8, §3) {:.0} % of it; baseline: the raw SQLite insert of the same bodies",
        serial / raw_insert,
        check_share * 100.0
    )))
}

/// Reads every change of a store in the sync's batch shape and encodes the frames a
/// child would send (zstd, as negotiated), for the raw baseline.
fn encoded_frames(db: &Path, batch: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let r = huijiao::store::Reader::open(db)?;
    let mut after = 0;
    let mut frames = Vec::new();
    loop {
        let changes = r.changes_after(after, batch, 1024 * 1024)?;
        let Some(last) = changes.last().map(|c| c.seq) else { break };
        let (encoding, payload) = wire::encode_payload(&changes, true);
        frames.push(wire::encode_frame(&Message::Batch(wire::Batch { after, upto: last, count: changes.len() as u32, encoding, payload })));
        after = last;
    }
    Ok(frames)
}

/// `apply`: the parent's apply alone (also a row of `sync`), for measuring a change
/// to it without the hops around it.
pub async fn apply(size: Size, root: &Path) -> anyhow::Result<Vec<Row>> {
    let (recs_db, n) = backlog(size, root, "apply-backlog.db")?;
    Ok(vec![apply_row(&recs_db, root, n).await?])
}

/// A county store at `root/file` whose log holds the scenarios' backlog (1,000,000
/// changes; smoke: 4,000), and its length.
fn backlog(size: Size, root: &Path, file: &str) -> anyhow::Result<(PathBuf, u32)> {
    let n: u32 = size.pick(1_000_000, 4_000);
    let recs_db = root.join(file);
    progress("building the backlog", 0, 1);
    preload(&recs_db, "420102", &records("420102", 0, n, 99))?;
    progress("building the backlog", 1, 1);
    Ok((recs_db, n))
}

/// `sync`: one hop, a child with a backlog connects until the parent has committed and
/// acknowledged everything; baseline: raw quinn with the same TLS sending the same
/// encoded bytes on one stream, no store. Also `catchup` over three hops.
pub async fn sync(size: Size, root: &Path) -> anyhow::Result<(Vec<Row>, PathBuf)> {
    let (recs_db, n) = backlog(size, root, "backlog.db")?;
    let mut f = Federation::new()?;
    f.extra_toml.push_str("batch_changes = 2000\n");
    f.add("420100", None)?;
    f.add("420102", Some("420100"))?;
    std::fs::create_dir_all(f.node("420102").dir.join("data"))?;
    std::fs::copy(&recs_db, f.node("420102").db())?;
    f.start("420100").await?;
    let t0 = Instant::now();
    f.start("420102").await?;
    let parent = f.node("420100");
    loop {
        let cursor = parent.reader().ok().and_then(|r| r.children().ok()).and_then(|c| c.first().map(|c| c.cursor)).unwrap_or(0);
        progress("sync one hop", cursor as u64, u64::from(n));
        if cursor as u32 >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let rate = f64::from(n) / secs;
    f.stop_all().await?;

    // Raw quinn: the same certificates and transport, the same bytes, no store.
    let frames = encoded_frames(&recs_db, 2000)?;
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let raw = raw_quinn(&f, frames).await?;
    let raw_rate = f64::from(n) / raw;
    let mut rows = vec![Row::new("sync", &format!("one hop, {n}-change backlog"), "≥ 50,000/s; report the ratio", rate, "changes/s")
        .baseline(raw_rate)
        .met(rate >= 50_000.0)
        .note(format!(
            "{secs:.1} s until the parent committed and acked all; raw quinn moved the same {:.0} MiB in {raw:.2} s",
            bytes as f64 / 1048576.0
        ))];

    rows.push(apply_row(&recs_db, root, n).await?);

    rows.push(catchup_row(&recs_db, n).await?);
    Ok((rows, recs_db))
}

/// `catchup` alone: the three-hop catch-up of `sync`, from a backlog of its own.
pub async fn catchup(size: Size, root: &Path) -> anyhow::Result<Vec<Row>> {
    let (recs_db, n) = backlog(size, root, "catchup-backlog.db")?;
    Ok(vec![catchup_row(&recs_db, n).await?])
}

/// Catch-up over three hops, from a copy of the backlog `recs_db` of `n` changes.
async fn catchup_row(recs_db: &Path, n: u32) -> anyhow::Result<Row> {
    let mut c = Federation::new()?;
    c.extra_toml.push_str("batch_changes = 2000\n");
    for (id, p) in [("000000", None), ("420000", Some("000000")), ("420100", Some("420000")), ("420102", Some("420100"))] {
        c.add(id, p)?;
    }
    std::fs::create_dir_all(c.node("420102").dir.join("data"))?;
    std::fs::copy(recs_db, c.node("420102").db())?;
    for id in ["000000", "420000", "420100"] {
        c.start(id).await?;
    }
    let t0 = Instant::now();
    c.start("420102").await?;
    let national = c.node("000000");
    loop {
        let held = national.record_count();
        progress("catch-up, three hops", held as u64, u64::from(n));
        if held as u32 >= n {
            break;
        }
        if t0.elapsed() > Duration::from_secs(900) {
            anyhow::bail!("catch-up did not finish in 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    c.stop_all().await?;
    Ok(Row::new("catchup", &format!("{n} changes county → national (3 hops)"), "≤ 30 s", secs, "s")
        .met(secs <= 30.0)
        .note(format!("{:.0} changes/s end to end; all four nodes share the cores", f64::from(n) / secs)))
}

/// Seconds for raw quinn to carry `frames` from a child to a parent endpoint.
async fn raw_quinn(f: &Federation, frames: Vec<Vec<u8>>) -> anyhow::Result<f64> {
    let tls = |id: &str| huijiao::config::TlsPaths {
        ca: f.ca.join("ca.crt"),
        cert: f.node(id).dir.join(format!("tls/{id}.crt")),
        key: f.node(id).dir.join(format!("tls/{id}.key")),
        crl: f.ca.join("crl.pem"),
    };
    let server_id = huijiao::net::Identity::load(&tls("420100"), "420100")?;
    let client_id = huijiao::net::Identity::load(&tls("420102"), "420102")?;
    let idle = Duration::from_secs(30);
    let server = quinn::Endpoint::server(server_id.server_config(idle, &Default::default())?, "127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let total: usize = frames.iter().map(Vec::len).sum();
    let recv = tokio::spawn(async move {
        let conn = server.accept().await.ok_or_else(|| anyhow::anyhow!("no connection"))?.await?;
        let (_s, mut r) = conn.accept_bi().await?;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        while let Some(n) = r.read(&mut buf).await? {
            got += n;
        }
        anyhow::ensure!(got == total, "raw quinn received {got} of {total} bytes");
        Ok::<_, anyhow::Error>(Instant::now())
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(client_id.client_config(idle)?);
    let t0 = Instant::now();
    let conn = client.connect(addr, &huijiao::pki::node_dns_name("420100"))?.await?;
    let (mut s, _r) = conn.open_bi().await?;
    for fr in &frames {
        s.write_all(fr).await?;
    }
    s.finish()?;
    let t1 = recv.await??;
    conn.close(0u32.into(), b"done");
    Ok((t1 - t0).as_secs_f64())
}

/// `latency`: single-record files dropped at a county every 100 ms, settle 250 ms;
/// time until visible at the national node, with a per-hop breakdown from provenance.
pub async fn latency(size: Size) -> anyhow::Result<Vec<Row>> {
    let secs: u64 = size.pick(60, 3);
    let mut f = Federation::new()?;
    for (id, p) in [("000000", None), ("420000", Some("000000")), ("420100", Some("420000")), ("420102", Some("420100"))] {
        f.add(id, p)?;
    }
    for id in ["000000", "420000", "420100"] {
        f.start(id).await?;
    }
    f.start_with("420102", |t| *t = t.replace("settle_ms = 100", "settle_ms = 250")).await?;
    // Let every link come up before the clock starts.
    crate::wait_for("the chain to connect", Duration::from_secs(30), || {
        ["420102", "420100", "420000"]
            .iter()
            .all(|id| f.node(id).reader().ok().and_then(|r| r.uplink().ok().flatten()).is_some_and(|u| u.state == "streaming"))
    })
    .await?;
    let total = secs * 10;
    let recs = records("420102", 0, total as u32, 5);
    let mut dropped = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for (i, r) in recs.iter().enumerate() {
        tick.tick().await;
        let name = format!("one-{i:04}.jsonl");
        let inbox = f.node("420102").inbox();
        // Every other file is written in place (read once its writer closes it); the
        // others are renamed in from a temporary name.
        let in_place = i % 2 == 1;
        let t = huijiao::clock::now_ms();
        if in_place {
            std::fs::write(inbox.join(&name), synth::jsonl(std::slice::from_ref(r)))?;
        } else {
            std::fs::write(inbox.join(format!(".{name}.part")), synth::jsonl(std::slice::from_ref(r)))?;
            std::fs::rename(inbox.join(format!(".{name}.part")), inbox.join(&name))?;
        }
        dropped.insert(r.reg_no.clone(), (t, in_place));
        progress("dropping one-record files", i as u64 + 1, total);
    }
    crate::wait_for("every record at the national node", Duration::from_secs(60), || f.node("000000").record_count() as u64 == total)
        .await?;
    let national = f.node("000000").records();
    let mut stages: Vec<Vec<f64>> = vec![Vec::new(); 5];
    let mut by_mode: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for (reg_no, r) in &national {
        let (d, in_place) = dropped[reg_no];
        let d = d as f64;
        let h: Vec<f64> = r.hops.iter().map(|(_, t)| *t as f64).collect();
        anyhow::ensure!(h.len() == 4, "{reg_no}: {} hops", h.len());
        stages[0].push(h[3] - d);
        stages[1].push(h[0] - d);
        by_mode[usize::from(in_place)].push(h[0] - d);
        stages[2].push(h[1] - h[0]);
        stages[3].push(h[2] - h[1]);
        stages[4].push(h[3] - h[2]);
    }
    for s in stages.iter_mut().chain(by_mode.iter_mut()) {
        s.sort_by(|a, b| a.total_cmp(b));
    }
    f.stop_all().await?;
    let (p50, p99) = (percentile(&stages[0], 0.5), percentile(&stages[0], 0.99));
    let mut rows = vec![
        Row::new("latency", "drop → national p50", "≤ 60 ms", p50, "ms")
            .met(p50 <= 60.0)
            .note(format!("{total} single-record files, one every 100 ms")),
        Row::new("latency", "drop → national p99", "≤ 150 ms", p99, "ms").met(p99 <= 150.0),
    ];
    for (mode, s) in ["renamed in", "written in place and closed"].iter().zip(&by_mode) {
        rows.push(Row::new("latency", &format!("drop → county commit, {mode}, p50 / p99"), "", percentile(s, 0.5), "ms").note(format!(
            "p99 {:.0} ms; {} files",
            percentile(s, 0.99),
            s.len()
        )));
    }
    for (i, name) in
        ["drop → county commit (either way; settle 250 ms)", "county → prefecture", "prefecture → province", "province → national"]
            .iter()
            .enumerate()
    {
        let s = &stages[i + 1];
        rows.push(
            Row::new("latency", &format!("{name} p50 / p99"), "", percentile(s, 0.5), "ms")
                .note(format!("p99 {:.0} ms", percentile(s, 0.99))),
        );
    }
    Ok(rows)
}

/// `bighop`: what a county office does — drop one big file and wait until it is safe
/// at the parent. A county and its prefecture (in one process), one file of N records
/// renamed into the county's inbox; the clock runs until the prefecture holds every
/// record (committed with `synchronous=FULL`). Baseline: one raw SQLite insert of the
/// same bodies, as in `ingest`.
pub async fn bighop(size: Size, root: &Path) -> anyhow::Result<Vec<Row>> {
    let n: u32 = size.pick(100_000, 2_000);
    let stage = root.join("bighop-stage");
    std::fs::create_dir_all(&stage)?;
    let recs = records("420102", 0, n, 42);
    let rows: Vec<Vec<String>> = recs.iter().map(synth::cells).collect();
    std::fs::write(stage.join("big.csv"), synth::csv(&rows, false))?;
    std::fs::write(stage.join("big.jsonl"), synth::jsonl(&recs))?;
    let bodies: Vec<(String, String)> = recs.iter().map(|r| (r.reg_no.clone(), r.canonical_string())).collect();
    drop(recs);
    let baseline = raw_insert_rate(&root.join("bighop-baseline.db"), &bodies, bodies.len())?;
    drop(bodies);
    let mut out = Vec::new();
    for ext in ["csv", "jsonl"] {
        let mut f = Federation::new()?;
        // Neither node serves [http], so neither keeps a catalogue by default;
        // HUIJIAO_BENCH_INDEX=1 makes both keep one (as every node did before).
        if std::env::var_os("HUIJIAO_BENCH_INDEX").is_some() {
            f.extra_toml.push_str("\n[catalogue]\nindex = true\n");
        }
        f.add("420100", None)?;
        f.add("420102", Some("420100"))?;
        f.start("420100").await?;
        f.start("420102").await?;
        crate::wait_for("the county's uplink", Duration::from_secs(30), || {
            f.node("420102").reader().ok().and_then(|r| r.uplink().ok().flatten()).is_some_and(|u| u.state == "streaming")
        })
        .await?;
        let inbox = f.node("420102").inbox();
        std::fs::copy(stage.join(format!("big.{ext}")), inbox.join(format!(".big.{ext}.part")))?;
        let t0 = Instant::now();
        std::fs::rename(inbox.join(format!(".big.{ext}.part")), inbox.join(format!("big.{ext}")))?;
        let (mut county_done, mut first_at_parent) = (None, None);
        loop {
            if county_done.is_none() && !inbox.join(format!("big.{ext}")).exists() {
                county_done = Some(t0.elapsed().as_secs_f64());
            }
            let held = f.node("420100").record_count();
            if first_at_parent.is_none() && held > 0 {
                first_at_parent = Some(t0.elapsed().as_secs_f64());
            }
            progress(&format!("bighop {ext}"), held as u64, u64::from(n));
            if held as u32 >= n {
                break;
            }
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(600), "bighop {ext}: not at the parent in 10 minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        f.stop_all().await?;
        let rate = f64::from(n) / secs;
        out.push(
            Row::new("bighop", &format!("{ext}, one {n}-record file, drop → durable at the parent"), "≥ 60,000/s", rate, "records/s")
                .baseline(baseline)
                .met(rate >= 60_000.0)
                .note(format!("{secs:.2} s; the county had committed it after {:.2} s", county_done.unwrap_or(secs))),
        );
        let (first, done) = (first_at_parent.unwrap_or(secs), county_done.unwrap_or(secs));
        out.push(
            Row::new("bighop", &format!("{ext}: first records durable at the parent"), "before the county has read the file", first, "s")
                .met(first < done)
                .note(format!("the county finished the file after {done:.2} s")),
        );
    }
    Ok(out)
}

/// `fanin`: many children connected at once to one parent process, each sending a
/// batch; time until all are acknowledged, and the parent's memory.
pub async fn fanin(size: Size) -> anyhow::Result<Vec<Row>> {
    let children: usize = std::env::var("HUIJIAO_FANIN_CHILDREN").ok().and_then(|v| v.parse().ok()).unwrap_or(size.pick(3000, 20));
    let per: u32 = size.pick(100, 10);
    let mut f = Federation::with_processes()?;
    let regions = huijiao_protocol::RegionTable::embedded();
    let mut ids: Vec<&str> = [
        huijiao_protocol::regions::Level::County,
        huijiao_protocol::regions::Level::Prefecture,
        huijiao_protocol::regions::Level::Province,
    ]
    .iter()
    .flat_map(|l| regions.codes_of(*l))
    .collect();
    ids.truncate(children);
    // Thousands of children of every tier at one parent: they are listed, as a
    // parent must list any node below its immediate children.
    f.allow.insert("000000".to_string(), ids.iter().map(|s| s.to_string()).collect());
    f.add("000000", None)?;
    f.start("000000").await?;
    let addr = f.node("000000").listen.ok_or_else(|| anyhow::anyhow!("parent not listening"))?;
    let pid = f.pid("000000").ok_or_else(|| anyhow::anyhow!("parent is not a process"))?;
    let certs = f.root.path().join("fanin-certs");
    for (i, id) in ids.iter().enumerate() {
        huijiao::pki::issue(&f.ca, id, &certs, 30)?;
        if i % 100 == 0 {
            progress("issuing certificates", i as u64, ids.len() as u64);
        }
    }
    progress("issuing certificates", ids.len() as u64, ids.len() as u64);
    // Each child's batch, encoded before the clock starts.
    let mut batches = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let recs = records(id, 0, per, i as u64);
        let changes: Vec<wire::Change> = recs
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let body = r.canonical_json();
                wire::Change {
                    seq: j as u64 + 1,
                    reg_no: r.reg_no.clone(),
                    origin: (*id).to_string(),
                    version: 1,
                    op: wire::Op::Upsert,
                    region: (*id).to_string(),
                    hash: huijiao_protocol::record::sha256(&body),
                    body: Some(body),
                    hops: vec![wire::Hop { node: (*id).to_string(), accepted_at_ms: 0 }],
                }
            })
            .collect();
        let (encoding, payload) = wire::encode_payload(&changes, true);
        batches.push(Message::Batch(wire::Batch { after: 0, upto: u64::from(per), count: per, encoding, payload }));
    }
    let (base_rss, _) = rss_mib(pid);
    let t_connect = Instant::now();
    // Connect everyone (a bounded number of handshakes at a time), and hold.
    let ca = f.ca.clone();
    let mut clients = Vec::with_capacity(ids.len());
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut handles = Vec::new();
    for id in &ids {
        let (ca, certs, id, sem) = (ca.clone(), certs.clone(), (*id).to_string(), sem.clone());
        handles.push(tokio::spawn(async move {
            let _p = sem.acquire().await?;
            let mut c =
                RawClient::connect(&ca, &certs.join(format!("{id}.crt")), &certs.join(format!("{id}.key")), &id, addr, "000000").await?;
            c.send(&RawClient::hello(&id, 1, 1)).await?;
            match c.recv().await? {
                Message::Welcome(_) => Ok::<_, anyhow::Error>(c),
                other => anyhow::bail!("{id}: {other:?}"),
            }
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        clients.push(h.await??);
        if i % 100 == 0 {
            progress("connecting children", i as u64, ids.len() as u64);
        }
    }
    progress("connecting children", ids.len() as u64, ids.len() as u64);
    let connect_secs = t_connect.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (connected_rss, _) = rss_mib(pid);
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for (mut c, b) in clients.into_iter().zip(batches) {
        handles.push(tokio::spawn(async move {
            c.send(&b).await?;
            loop {
                match c.recv().await.map_err(|e| e.context(format!("child {} after {:?}", c.conn.stable_id(), t0.elapsed())))? {
                    Message::Ack(a) if a.cursor >= u64::from(per) => break,
                    Message::Ack(_) => {}
                    other => anyhow::bail!("unexpected {other:?}"),
                }
            }
            Ok::<_, anyhow::Error>(c)
        }));
    }
    let mut done = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        done.push(h.await??);
        if i % 100 == 0 {
            progress("children acknowledged", i as u64, ids.len() as u64);
        }
    }
    progress("children acknowledged", ids.len() as u64, ids.len() as u64);
    let secs = t0.elapsed().as_secs_f64();
    let (_, peak) = rss_mib(pid);
    let held = f.node("000000").record_count();
    anyhow::ensure!(held as usize == ids.len() * per as usize, "fanin: parent holds {held} records");
    drop(done);
    f.stop_all().await?;
    let per_conn_kib = (connected_rss - base_rss) * 1024.0 / ids.len() as f64;
    Ok(vec![
        Row::new("fanin", &format!("{} children × {per} records, all acked", ids.len()), "≤ 60 s", secs, "s")
            .met(secs <= 60.0)
            .note(format!("connecting all of them took {connect_secs:.1} s before the clock started")),
        Row::new("fanin", "parent peak RSS", "≤ 1024 MiB", peak, "MiB").met(peak <= 1024.0),
        Row::new("fanin", "memory per idle connection", "report", per_conn_kib, "KiB")
            .note(format!("RSS {base_rss:.0} MiB before, {connected_rss:.0} MiB with all connected")),
    ])
}

/// `idle`: a county node with an inbox and a live parent link, doing nothing.
pub async fn idle(size: Size) -> anyhow::Result<Vec<Row>> {
    let secs: u64 = size.pick(60, 3);
    let mut f = Federation::with_processes()?;
    f.extra_toml = String::new();
    f.add("420100", None)?;
    f.add("420102", Some("420100"))?;
    f.start("420100").await?;
    f.start("420102").await?;
    let county = f.node("420102");
    crate::wait_for("the county's uplink", Duration::from_secs(30), || {
        county.reader().ok().and_then(|r| r.uplink().ok().flatten()).is_some_and(|u| u.state == "streaming")
    })
    .await?;
    let pid = f.pid("420102").ok_or_else(|| anyhow::anyhow!("no pid"))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    for s in 0..secs {
        progress("idle", s, secs);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    progress("idle", secs, secs);
    let cpu = (cpu_secs(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let (rss, peak) = rss_mib(pid);
    f.stop_all().await?;
    Ok(vec![
        Row::new("idle", &format!("RSS after {secs} s idle"), "≤ 30 MiB", rss, "MiB").met(rss <= 30.0).note(format!("peak {peak:.1} MiB")),
        Row::new("idle", "CPU while idle", "≈ 0 (no busy polling)", cpu, "% of a core").met(cpu < 1.0),
    ])
}

/// One file dropped into a fresh national node (a process): seconds until it left
/// the inbox, the daemon's peak RSS, and the verdict.
async fn drop_one(file: &Path) -> anyhow::Result<(f64, f64, String)> {
    let mut f = Federation::with_processes()?;
    f.add("000000", None)?;
    f.start("000000").await?;
    let node = f.node("000000");
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("x").to_string();
    std::fs::copy(file, node.inbox().join(format!(".{name}.part")))?;
    let t = Instant::now();
    std::fs::rename(node.inbox().join(format!(".{name}.part")), node.inbox().join(&name))?;
    let inbox = node.inbox();
    crate::wait_for(&format!("{name} to be handled"), Duration::from_secs(3600), || {
        std::fs::read_dir(&inbox).map(|d| d.flatten().all(|e| e.file_name().to_string_lossy().starts_with('.'))).unwrap_or(false)
    })
    .await?;
    let secs = t.elapsed().as_secs_f64();
    let pid = f.pid("000000").ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let (_, peak) = rss_mib(pid);
    let mut verdict = String::from("?");
    for top in ["processed", "rejected"] {
        for day in std::fs::read_dir(node.dir.join(top)).into_iter().flatten().flatten() {
            let report = day.path().join(format!("{name}.report.json"));
            if let Ok(bytes) = std::fs::read(&report) {
                let r: serde_json::Value = serde_json::from_slice(&bytes)?;
                verdict = match r["refused"]["code"].as_str() {
                    Some(code) => format!("refused {code}"),
                    None => format!("{} rows, {} rejected", r["rows"], r["rejected"]),
                };
            }
        }
    }
    f.stop_all().await?;
    Ok((secs, peak, verdict))
}

/// `hostile`: each hostile file of the intake issue dropped into a fresh daemon
/// (peak RSS from /proc), against a valid file of about the same size.
pub async fn hostile(size: Size, root: &Path) -> anyhow::Result<Vec<Row>> {
    use huijiao_kit::hostile::Kind;
    let stage = root.join("hostile-stage");
    std::fs::create_dir_all(&stage)?;
    // Valid files to compare with: a CSV as large as the largest hostile CSV, and a
    // spreadsheet of 20,000 records.
    let mib: usize = size.pick(256, 4);
    let csv_records = (mib as u32 * 1024 * 1024) / 1300;
    let valid_csv = stage.join("valid.csv");
    {
        let recs = records("420102", 0, csv_records, 7);
        let rows: Vec<Vec<String>> = recs.iter().map(synth::cells).collect();
        std::fs::write(&valid_csv, synth::csv(&rows, false))?;
    }
    let valid_xlsx = stage.join("valid.xlsx");
    {
        let recs = records("420102", 0, size.pick(20_000, 500), 8);
        let rows: Vec<Vec<String>> = recs.iter().map(synth::cells).collect();
        std::fs::write(&valid_xlsx, synth::xlsx(&rows))?;
    }
    let mut rows = Vec::new();
    let mut base = std::collections::HashMap::new();
    for (key, file) in [("csv", &valid_csv), ("xlsx", &valid_xlsx)] {
        let (secs, peak, verdict) = drop_one(file).await?;
        let mb = std::fs::metadata(file)?.len() as f64 / 1048576.0;
        base.insert(key, (secs, mb));
        rows.push(
            Row::new("hostile", &format!("valid {key}, {mb:.1} MiB (baseline)"), "", peak, "MiB peak RSS")
                .note(format!("{secs:.2} s; {verdict}")),
        );
    }
    for kind in Kind::ALL {
        let scale = match kind {
            Kind::OneCellRows | Kind::AllRejected => size.pick(1023, 4),
            _ => mib,
        };
        let path = kind.write(&stage, scale)?;
        let mb = std::fs::metadata(&path)?.len() as f64 / 1048576.0;
        let (secs, peak, verdict) = drop_one(&path).await?;
        let _ = std::fs::remove_file(&path);
        // Time against a valid file of the same type, scaled to the same size.
        let (bsecs, bmb) = if kind.file_name().ends_with(".xlsx") { base["xlsx"] } else { base["csv"] };
        let valid_secs = (bsecs * mb / bmb).max(0.05);
        rows.push(
            Row::new(
                "hostile",
                &format!("{} ({mb:.1} MiB)", kind.file_name()),
                "≤ 256 MiB, ≤ 2× a valid file's time",
                peak,
                "MiB peak RSS",
            )
            .met(peak <= 256.0 && secs <= 2.0 * valid_secs.max(1.0))
            .note(format!("{secs:.2} s (valid file of this size ≈ {valid_secs:.2} s); {verdict}")),
        );
    }
    Ok(rows)
}
