//! `huijiao demo`: a whole federation on loopback, with real daemons.
//!
//! One national node, two provinces, three prefectures and six county-level nodes (one
//! directly under its province), each a separate process of this binary with its own
//! folder, config, certificate (from a fresh CA) and store. The demo generates
//! realistic submissions for every county in every file type, with some bad rows,
//! drops them into the inboxes, shows progress per tier, and once the national node
//! holds every accepted record prints a summary and audits the result.

use crate::audit::{audit, Holdings};
use crate::fleet::{self, NodeConfig, NodeDir};
use crate::synth::{self, Generator, Rng};
use anyhow::{bail, Context};
use huijiao_protocol::fields::Field;
use huijiao_protocol::regions::{node_level, Level, RegionTable};
use huijiao_protocol::table::pad;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The federation: (node, parent).
pub const TOPOLOGY: [(&str, Option<&str>); 12] = [
    ("000000", None),
    ("420000", Some("000000")),
    ("440000", Some("000000")),
    ("420100", Some("420000")),
    ("420500", Some("420000")),
    ("440100", Some("440000")),
    ("420102", Some("420100")),
    ("420106", Some("420100")),
    ("420502", Some("420500")),
    ("440103", Some("440100")),
    ("440104", Some("440100")),
    // 仙桃市, a county-level city directly under Hubei province.
    ("429004", Some("420000")),
];

/// What the demo needs of the node it demonstrates, which this crate does not link:
/// certificates, and reading a node's store. The `huijiao` binary provides it.
pub trait Host {
    /// Creates a CA in `dir`.
    fn init_ca(&self, dir: &Path) -> anyhow::Result<()>;
    /// Issues `node_id`'s certificate and key into `tls_dir`, valid for `days`.
    fn issue(&self, ca: &Path, node_id: &str, tls_dir: &Path, days: u32) -> anyhow::Result<()>;
    /// The store at `db`, opened to read; None while it does not exist.
    fn open_store(&self, db: &Path) -> Option<Box<dyn StoreView>>;
    /// How many records the search catalogue beside the store at `db` holds (what the
    /// pages and the API answer from); None while it cannot be read.
    fn catalogue_count(&self, db: &Path) -> Option<u64>;
}

/// What the demo reads of a node's store.
pub trait StoreView {
    fn record_count(&self) -> anyhow::Result<i64>;
    /// Every record's state and the changes logged more than once, for the audit.
    fn holdings(&self) -> anyhow::Result<Holdings>;
    /// (reg_no, accepted at the origin, accepted here) in ms, for every record.
    fn arrival_times(&self) -> anyhow::Result<Vec<(String, i64, i64)>>;
}

/// What `huijiao demo` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Records generated in all (split over the six counties).
    pub records: u32,
    /// Leave the federation running until Ctrl-C.
    pub keep: bool,
    /// Where to build it; default a new folder under the system temp dir.
    pub dir: Option<PathBuf>,
    pub seed: u64,
    /// Give up (and fail) after this long.
    pub timeout: Duration,
}

struct Node<'h> {
    id: String,
    dir: NodeDir,
    host: &'h dyn Host,
    child: Option<Child>,
    listen: Option<String>,
    /// Counties: records generated, bad rows among them, files dropped, drop time.
    generated: u32,
    bad: u32,
    files: usize,
    dropped_at: i64,
}

impl Node<'_> {
    fn level(&self) -> Level {
        node_level(&self.id)
    }

    fn reader(&self) -> Option<Box<dyn StoreView>> {
        self.host.open_store(&self.dir.db())
    }

    fn records(&self) -> i64 {
        self.reader().and_then(|r| r.record_count().ok()).unwrap_or(0)
    }

    /// (files handled, accepted, rejected) from the reports the node wrote.
    fn reports(&self) -> (usize, u64, u64) {
        let mut out = (0, 0, 0);
        for top in ["processed", "rejected"] {
            let Ok(days) = std::fs::read_dir(self.dir.0.join(top)) else { continue };
            for day in days.flatten() {
                for f in std::fs::read_dir(day.path()).into_iter().flatten().flatten() {
                    if f.file_name().to_string_lossy().ends_with(".report.json") {
                        if let Ok(r) = std::fs::read(f.path())
                            .map_err(anyhow::Error::from)
                            .and_then(|b| Ok(serde_json::from_slice::<huijiao_protocol::Report>(&b)?))
                        {
                            out.0 += 1;
                            out.1 += r.accepted;
                            out.2 += r.rejected;
                        }
                    }
                }
            }
        }
        out
    }
}

/// Runs the demo; returns the exit status (0 when the federation passed its audit).
pub fn run(opts: Options, host: &dyn Host) -> anyhow::Result<i32> {
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(interrupted.clone());
    let (root, temporary) = match &opts.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("huijiao-demo-{}", std::process::id())), true),
    };
    if root.join("ca").exists() {
        bail!("{} already holds a demo; choose another --dir", root.display());
    }
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    println!("huijiao demo: a federation of {} nodes in {}", TOPOLOGY.len(), root.display());
    let mut nodes: Vec<Node> = Vec::new();
    let result = build_and_run(&opts, host, &root, &mut nodes, &interrupted);
    if opts.keep && result.is_ok() && !interrupted.load(Ordering::Relaxed) {
        print_keep_help(&root, &nodes);
        while !interrupted.load(Ordering::Relaxed)
            && nodes.iter_mut().any(|n| n.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none()))
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!("stopping every node…");
    stop_all(&mut nodes);
    if temporary && !opts.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    let ok = result?;
    Ok(if ok { 0 } else { 1 })
}

fn build_and_run<'h>(
    opts: &Options,
    host: &'h dyn Host,
    root: &Path,
    nodes: &mut Vec<Node<'h>>,
    interrupted: &AtomicBool,
) -> anyhow::Result<bool> {
    let ca = root.join("ca");
    host.init_ca(&ca)?;
    let exe = std::env::current_exe().context("cannot find this program")?;
    for (id, parent) in TOPOLOGY {
        let dir = NodeDir::new(root, id);
        std::fs::create_dir_all(dir.inbox()).with_context(|| format!("cannot create {}", dir.inbox().display()))?;
        host.issue(&ca, id, &dir.tls(), 365)?;
        let mut node = Node { id: id.into(), dir, host, child: None, listen: None, generated: 0, bad: 0, files: 0, dropped_at: 0 };
        let mut config = NodeConfig::new(id, &ca);
        if let Some(p) = parent {
            let addr = nodes.iter().find(|n| n.id == p).and_then(|n| n.listen.clone()).context("parent started first")?;
            config.parent = Some((p.to_string(), addr));
        }
        if node.level() != Level::County {
            config.listen = Some("127.0.0.1:0".into());
        }
        if node.id == huijiao_protocol::regions::NATIONAL || node.id == ONLINE_OFFICE {
            // The API's operator token, readable by its owner only.
            config.http = true;
            fleet::write_private(&node.dir.0.join(fleet::TOKEN_FILE), format!("demo-{}\n", fleet::random_token()?).as_bytes())?;
        }
        config.extra = "[sync]\nreconnect_min_ms = 200\nreconnect_max_ms = 2000\n".into();
        if node.id == ONLINE_OFFICE {
            config.extra.push_str("\n[registration]\noffice = \"武汉市科学技术局\"\n");
        }
        if node.id == huijiao_protocol::regions::NATIONAL {
            // Open data: OAI-PMH for harvesters at /oai.
            config
                .extra
                .push_str("\n[oai]\nrepository_identifier = \"demo.huijiao.example\"\nadmin_email = \"oai@demo.huijiao.example\"\n");
        }
        let text = format!("# Written by huijiao demo.\n{}", config.toml());
        std::fs::write(node.dir.config(), text).with_context(|| format!("cannot write {}", node.dir.config().display()))?;
        let mut child = fleet::spawn(&exe, &node.dir, &[])?;
        if node.level() != Level::County {
            let deadline = Instant::now() + Duration::from_secs(30);
            node.listen = loop {
                if interrupted.load(Ordering::Relaxed) {
                    bail!("interrupted while node {id} started");
                }
                if let Some(a) = fleet::poll_listening(&node.dir, &mut child, deadline)? {
                    break Some(a);
                }
                std::thread::sleep(Duration::from_millis(20));
            };
        }
        node.child = Some(child);
        nodes.push(node);
    }
    println!("started {} nodes (each `huijiao run` in its own process), CA in {}", nodes.len(), ca.display());

    let counties: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].level() == Level::County).collect();
    let per = opts.records / counties.len() as u32;
    let extra = opts.records % counties.len() as u32;
    for (k, &i) in counties.iter().enumerate() {
        let n = per + u32::from((k as u32) < extra);
        let seed = opts.seed ^ nodes[i].id.parse::<u64>().unwrap_or(0);
        let files = county_files(&nodes[i].id, n, seed);
        nodes[i].generated = n;
        nodes[i].bad = files.iter().map(|f| f.2).sum();
        nodes[i].files = files.len();
        nodes[i].dropped_at = now_ms();
        for (name, bytes, _) in files {
            fleet::drop_file(&nodes[i].dir.inbox(), &name, &bytes)?;
        }
    }
    let total_files: usize = counties.iter().map(|&i| nodes[i].files).sum();
    println!(
        "dropped {total_files} files with {} records (some rows deliberately bad) into {} county inboxes",
        opts.records,
        counties.len()
    );
    // Meanwhile units register online at Wuhan's node and its office reviews them.
    let office = nodes.iter().find(|n| n.id == ONLINE_OFFICE).context("the online office")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Some(a) = office.dir.http_address() {
            break a;
        }
        anyhow::ensure!(Instant::now() < deadline, "node {ONLINE_OFFICE} did not open its API");
        std::thread::sleep(Duration::from_millis(20));
    };
    let token = std::fs::read_to_string(office.dir.0.join(fleet::TOKEN_FILE))?;
    let online = crate::online::register(&addr, token.trim())?;
    println!(
        "online at {ONLINE_OFFICE}: {} units submitted {} achievements with evidence; the office approved {} (登记号 {} …) and returned {}",
        online.units,
        online.submitted,
        online.approved.len(),
        online.approved.first().map(String::as_str).unwrap_or("—"),
        online.returned
    );

    let started = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut drawn = false;
    let mut last_line = Instant::now() - Duration::from_secs(10);
    loop {
        if interrupted.load(Ordering::Relaxed) {
            println!("\ninterrupted");
            return Ok(false);
        }
        for n in nodes.iter_mut() {
            if let Some(status) = n.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("node {} exited ({status}); see {}", n.id, n.dir.log().display());
            }
        }
        let (handled, accepted) = counties.iter().map(|&i| nodes[i].reports()).fold((0usize, 0u64), |(h, a), r| (h + r.0, a + r.1));
        let bars = tier_bars(nodes, handled, total_files);
        if tty {
            if drawn {
                print!("\x1b[{}A", bars.len());
            }
            for b in &bars {
                println!("\x1b[2K{b}");
            }
            drawn = true;
        } else if last_line.elapsed() >= Duration::from_secs(2) {
            println!("{}", bars.join(" | "));
            last_line = Instant::now();
        }
        let _ = std::io::stdout().flush();
        let national = nodes.iter().find(|n| n.level() == Level::National).map_or(0, Node::records);
        if handled == total_files && national as u64 == accepted + online.approved.len() as u64 && accepted > 0 {
            if !tty {
                println!("{}", bars.join(" | "));
            }
            break;
        }
        if started.elapsed() > opts.timeout {
            println!(
                "timed out after {:?}: national holds {national} of {} accepted and approved records",
                opts.timeout,
                accepted + online.approved.len() as u64
            );
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let elapsed = started.elapsed();
    // The pages and the API answer from the national catalogue, which follows the
    // store a moment behind: say converged only when it holds every record too.
    if let Some(national) = nodes.iter().find(|n| n.level() == Level::National) {
        let want = national.records().max(0) as u64;
        let waited = Instant::now();
        while national.host.catalogue_count(&national.dir.db()) != Some(want) {
            if waited.elapsed() > Duration::from_secs(120) || interrupted.load(Ordering::Relaxed) {
                println!("the national catalogue does not hold all {want} records yet; the pages may show fewer for a while");
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The national office publishes two 科技成果包 from what arrived.
    if let Some(national) = nodes.iter().find(|n| n.level() == Level::National) {
        if let Some(api) = national.dir.http_address() {
            let token = std::fs::read_to_string(national.dir.0.join(fleet::TOKEN_FILE))?;
            for p in crate::packages::publish(&api, token.trim())? {
                println!("package published at the national node: {} ({} records)  http://{api}/packages/{}", p.title, p.count, p.slug);
            }
        }
    }
    summary(nodes, &counties, online.approved.len() as u64, elapsed)
}

/// The prefecture whose office takes online registrations in the demo (Wuhan).
pub const ONLINE_OFFICE: &str = "420100";

/// Five files for a county, one of each type; about 2 % of rows broken in ways a
/// clerk's file really is. Returns (name, bytes, bad rows).
/// A record every demo holds, public, for the examples of the docs.
pub const EXAMPLE_REG_NO: &str = "4201022025Y000000";

fn county_files(county: &str, n: u32, seed: u64) -> Vec<(String, Vec<u8>, u32)> {
    let today = huijiao_protocol::Date::from_unix_ms_china(now_ms());
    let mut g = Generator::new(seed);
    let mut rng = Rng::new(seed.wrapping_mul(31));
    let cols = synth::columns();
    let col = |f: Field| cols.iter().position(|c| *c == f).expect("column");
    let mut rows: Vec<(Vec<String>, bool)> = (0..n)
        .map(|i| {
            let mut r = g.record(county, i, today);
            let example = county == &EXAMPLE_REG_NO[..6] && i == 0;
            if example {
                // The record docs/openapi.json and the README name: always there, public.
                r.reg_date = huijiao_protocol::Date::new(2025, 6, 18).expect("a date");
                r.kind = huijiao_protocol::Kind::Applied;
                r.reg_no = EXAMPLE_REG_NO.to_string();
                r.title = "水稻病虫害图像识别芯片研发及产业化".into();
                r.secret = huijiao_protocol::Secret::Public;
                r.industry = Some("C39".into());
                r.stage = Some("成熟应用阶段".into());
                r.plan_no = (r.task_source != "计划外").then(|| "2025YFC000001".into());
            }
            let mut cells = synth::cells(&r);
            let bad = rng.chance(0.02) && !example;
            if bad {
                match rng.below(4) {
                    0 => cells[col(Field::Discipline)] = "21".into(),
                    1 => cells[col(Field::RegDate)] = format!("{}-02-30", today.year - 1),
                    2 => cells[col(Field::Secret)] = "机密".into(),
                    _ => cells[col(Field::Trl)] = "0".into(),
                }
            }
            (cells, bad)
        })
        .collect();
    let kinds = ["utf8.csv", "gbk.csv", "xlsx", "json", "jsonl"];
    let names = ["1-utf8.csv", "2-gbk.csv", "3.xlsx", "4.json", "5.jsonl"];
    let chunk = rows.len().div_ceil(kinds.len()).max(1);
    let mut out = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        let part: Vec<(Vec<String>, bool)> = rows.drain(..chunk.min(rows.len())).collect();
        if part.is_empty() {
            continue;
        }
        let bad = part.iter().filter(|(_, b)| *b).count() as u32;
        let cells: Vec<Vec<String>> = part.into_iter().map(|(c, _)| c).collect();
        let bytes = match *kind {
            "utf8.csv" => synth::csv(&cells, false),
            "gbk.csv" => synth::csv(&cells, true),
            "xlsx" => synth::xlsx(&cells),
            "json" => serde_json::to_vec_pretty(&cells.iter().map(|r| row_object(&cols, r)).collect::<Vec<_>>()).expect("json"),
            _ => cells.iter().map(|r| format!("{}\n", serde_json::Value::Object(row_object(&cols, r)))).collect::<String>().into_bytes(),
        };
        out.push((format!("{county}-{}", names[k]), bytes, bad));
    }
    out
}

/// A row as a JSON object with English keys; lists as arrays.
fn row_object(cols: &[Field], row: &[String]) -> serde_json::Map<String, serde_json::Value> {
    cols.iter()
        .zip(row)
        .filter(|(_, v)| !v.is_empty())
        .map(|(f, v)| {
            let value = if f.is_list() {
                serde_json::Value::Array(huijiao_protocol::record::split_list(v).into_iter().map(serde_json::Value::String).collect())
            } else {
                serde_json::Value::String(v.clone())
            };
            (f.key().to_string(), value)
        })
        .collect()
}

/// One progress line per tier.
fn tier_bars(nodes: &[Node], handled: usize, total_files: usize) -> Vec<String> {
    let expected = |n: &Node| -> u64 {
        nodes
            .iter()
            .filter(|c| c.level() == Level::County && huijiao_protocol::regions::covers(&n.id, &c.id))
            .map(|c| u64::from(c.generated - c.bad))
            .sum()
    };
    let bar = |label: &str, done: u64, total: u64, unit: &str| {
        let width = 30;
        let filled = (done.min(total) * width).checked_div(total).unwrap_or(0) as usize;
        format!("{label:<12} [{}{}] {done:>6}/{total:<6} {unit}", "█".repeat(filled), "·".repeat(width as usize - filled))
    };
    let mut out = vec![bar("counties", handled as u64, total_files as u64, "files handled")];
    for (level, label) in [(Level::Prefecture, "prefectures"), (Level::Province, "provinces"), (Level::National, "national")] {
        let (done, total) =
            nodes.iter().filter(|n| n.level() == level).fold((0u64, 0u64), |(d, t), n| (d + n.records() as u64, t + expected(n)));
        out.push(bar(label, done, total, "records"));
    }
    out
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The `p` quantile of sorted milliseconds, in seconds.
fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Prints the summary and audits the run; true when it passed.
fn summary(nodes: &[Node], counties: &[usize], online: u64, elapsed: Duration) -> anyhow::Result<bool> {
    let regions = RegionTable::embedded();
    println!("\nconverged in {:.1} s\n", elapsed.as_secs_f64());
    println!("{:<8} {} {:<11} {:>9} {:>9} {:>9}", "node", pad("name", 14), "tier", "accepted", "rejected", "held");
    let mut sum_accepted = 0u64;
    let mut as_generated = true;
    for n in nodes {
        let name = regions.get(&n.id).map_or("", |r| r.name.as_str());
        let (a, r) = if n.level() == Level::County {
            let (_, a, r) = n.reports();
            sum_accepted += a;
            as_generated &= a == u64::from(n.generated - n.bad) && r == u64::from(n.bad);
            (a.to_string(), r.to_string())
        } else {
            ("".into(), "".into())
        };
        println!("{:<8} {} {:<11} {:>9} {:>9} {:>9}", n.id, pad(name, 14), n.level().as_str(), a, r, n.records());
    }
    if !as_generated {
        println!("\n✗ the counties did not accept exactly the rows generated as valid");
    }
    let national = nodes.iter().find(|n| n.level() == Level::National).context("no national node")?;
    let top = national.reader().context("national store")?;
    let total = top.record_count()? as u64;
    let mut ok = total == sum_accepted + online && as_generated;
    println!(
        "\nnational total: {total} records; the counties' accepted records and the approved online ones: {sum_accepted} + {online} {}",
        if ok { "✓" } else { "✗ MISMATCH" }
    );
    let mut held = Vec::new();
    let office = nodes.iter().position(|n| n.id == ONLINE_OFFICE);
    for &i in counties.iter().chain(office.as_ref()) {
        if let Some(r) = nodes[i].reader() {
            held.push((nodes[i].id.clone(), r.holdings()?));
        }
    }
    let origins: Vec<(&str, &Holdings)> = held.iter().map(|(id, h)| (id.as_str(), h)).collect();
    let a = audit(&origins, &top.holdings()?);
    println!("audit: {} {}", a.summary(), if a.ok() { "✓" } else { "✗" });
    ok &= a.ok() && a.matched as u64 == total;

    let drop_times: BTreeMap<&str, i64> = counties.iter().map(|&i| (nodes[i].id.as_str(), nodes[i].dropped_at)).collect();
    let mut drop_to_national = Vec::new();
    let mut origin_to_national = Vec::new();
    for (reg_no, origin_at, here) in top.arrival_times()? {
        if let Some(dropped) = drop_times.get(&reg_no[..6]) {
            drop_to_national.push(here - dropped);
        }
        origin_to_national.push(here - origin_at);
    }
    drop_to_national.sort_unstable();
    origin_to_national.sort_unstable();
    println!(
        "latency, drop → national:        p50 {:.2} s, p99 {:.2} s (all files dropped at once, so this includes the queue)",
        percentile(&drop_to_national, 0.5),
        percentile(&drop_to_national, 0.99)
    );
    println!(
        "latency, county → national hops: p50 {:.2} s, p99 {:.2} s (from each record's provenance)",
        percentile(&origin_to_national, 0.5),
        percentile(&origin_to_national, 0.99)
    );
    println!("{}", if ok { "\nresult: OK — every accepted record reached the national node exactly once" } else { "\nresult: FAILED" });
    Ok(ok)
}

fn print_keep_help(root: &Path, nodes: &[Node]) {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "huijiao".into());
    let cfg = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.dir.config().display().to_string()).unwrap_or_default();
    let national = NodeDir::new(root, huijiao_protocol::regions::NATIONAL);
    let token = national.0.join(fleet::TOKEN_FILE);
    println!("\nThe federation keeps running in {}.", root.display());
    let api = national.http_address();
    if let Some(api) = &api {
        println!("Open in a browser:");
        println!("  the public catalogue   http://{api}/   (search 水稻, 识别 or 芯片)");
        println!("  the operators' view    http://{api}/admin   (token: the line in {})", token.display());
        println!("  科技成果包              http://{api}/packages   (feed: http://{api}/packages.atom)");
        println!("  OAI-PMH for harvesters http://{api}/oai?verb=Identify");
    }
    let office = NodeDir::new(root, ONLINE_OFFICE);
    if let Some(api) = office.http_address() {
        println!(
            "  Wuhan's review queue   http://{api}/admin/review   (online registration; token: the line in {})",
            office.0.join(fleet::TOKEN_FILE).display()
        );
    }
    println!("In another terminal:");
    println!("  {exe} status --config {}", cfg("000000"));
    println!("  {exe} status --config {}", cfg("420100"));
    println!("  {exe} review list --config {} --state returned", cfg(ONLINE_OFFICE));
    println!("  {exe} query --config {} -q 水稻 --region 湖北省 --limit 5", cfg("000000"));
    println!("  {exe} query --config {} --stats region", cfg("000000"));
    println!("  {exe} query --config {} --export csv --region 42 --out hubei.csv", cfg("000000"));
    if let Some(api) = &api {
        println!("  curl 'http://{api}/api/v1/records?q=%E6%B0%B4%E7%A8%BB&limit=3'        # q=水稻");
        println!("  curl 'http://{api}/api/v1/stats?by=year'");
        println!("  curl -H \"Authorization: Bearer $(cat {})\" 'http://{api}/api/v1/operator/stats?by=kind'", token.display());
    }
    println!("  cp testdata/samples/withdraw.csv {}/node-420102/inbox/", root.display());
    println!("Each node logs to node-*/node.log. Press Ctrl-C to stop every node.");
}

/// SIGTERM to every node, children first, then wait (SIGKILL after 20 s).
fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter_mut().rev() {
        if let Some(c) = &n.child {
            fleet::terminate(c.id());
        }
    }
    for n in nodes.iter_mut() {
        if let Some(mut c) = n.child.take() {
            fleet::wait_or_kill(&mut c, Duration::from_secs(20));
        }
    }
}

/// Sets `flag` on Ctrl-C (SIGINT) or SIGTERM.
fn watch_ctrl_c(flag: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        });
        flag.store(true, Ordering::Relaxed);
    });
}
