//! `huijiao demo`: a whole federation on loopback, with real daemons.
//!
//! One national node, two provinces, three prefectures and six county-level nodes (one
//! directly under its province), each a separate process of this binary with its own
//! folder, config, certificate (from a fresh CA) and store. The demo generates
//! realistic submissions for every county in every file type, with some bad rows,
//! drops them into the inboxes, shows progress per tier, and once the national node
//! holds every accepted record prints a summary and audits the result.

use crate::audit::audit;
use crate::commands::pad;
use crate::store::Reader;
use crate::synth::{self, Generator, Rng};
use anyhow::{bail, Context};
use huijiao_protocol::fields::Field;
use huijiao_protocol::regions::{node_level, Level, RegionTable};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

struct Node {
    id: String,
    parent: Option<String>,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    listen: Option<String>,
    /// Counties: records generated, bad rows among them, files dropped, drop time.
    generated: u32,
    bad: u32,
    files: usize,
    dropped_at: i64,
}

impl Node {
    fn level(&self) -> Level {
        node_level(&self.id)
    }

    fn reader(&self) -> Option<Reader> {
        Reader::open(&self.dir.join("data").join(crate::store::DB_FILE)).ok()
    }

    fn records(&self) -> i64 {
        self.reader().and_then(|r| r.record_count().ok()).unwrap_or(0)
    }

    /// (files handled, accepted, rejected) from the reports the node wrote.
    fn reports(&self) -> (usize, u64, u64) {
        let mut out = (0, 0, 0);
        for top in ["processed", "rejected"] {
            let Ok(days) = std::fs::read_dir(self.dir.join(top)) else { continue };
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
pub fn run(opts: Options) -> anyhow::Result<i32> {
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(interrupted.clone());
    let (root, temporary) = match &opts.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("huijiao-demo-{}", std::process::id())), true),
    };
    if root.join("ca").exists() {
        bail!("{} already holds a demo; choose another --dir", root.display());
    }
    crate::fsx::create_dir_all(&root)?;
    println!("huijiao demo: a federation of {} nodes in {}", TOPOLOGY.len(), root.display());
    let mut nodes: Vec<Node> = Vec::new();
    let result = build_and_run(&opts, &root, &mut nodes, &interrupted);
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

fn build_and_run(opts: &Options, root: &Path, nodes: &mut Vec<Node>, interrupted: &AtomicBool) -> anyhow::Result<bool> {
    let ca = root.join("ca");
    crate::pki::init(&ca)?;
    let exe = std::env::current_exe().context("cannot find this program")?;
    for (id, parent) in TOPOLOGY {
        let dir = root.join(format!("node-{id}"));
        crate::fsx::create_dir_all(&dir.join("inbox"))?;
        crate::pki::issue(&ca, id, &dir.join("tls"), 30)?;
        let mut node = Node {
            id: id.into(),
            parent: parent.map(str::to_string),
            config: dir.join("node.toml"),
            dir,
            child: None,
            listen: None,
            generated: 0,
            bad: 0,
            files: 0,
            dropped_at: 0,
        };
        let parent_addr =
            parent.map(|p| nodes.iter().find(|n| n.id == p).and_then(|n| n.listen.clone()).context("parent started first")).transpose()?;
        if node.id == huijiao_protocol::regions::NATIONAL {
            // The catalogue API's operator token, readable by its owner only.
            let token = format!("demo-{}", crate::pki::hex_serial(&crate::pki::random_bytes(16)?));
            crate::pki::write_private(&node.dir.join("api-token"), format!("{token}\n").as_bytes())?;
        }
        crate::fsx::write(&node.config, config_text(&node, &ca, parent_addr.as_deref()))?;
        let log = crate::fsx::create(&node.dir.join("node.log"))?;
        node.child = Some(
            Command::new(&exe)
                .args(["run", "--config"])
                .arg(&node.config)
                .env("HUIJIAO_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start a node")?,
        );
        if node.level() != Level::County {
            let file = node.dir.join("data").join(crate::daemon::LISTEN_ADDRESS_FILE);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !file.exists() {
                if Instant::now() > deadline || interrupted.load(Ordering::Relaxed) {
                    bail!("node {id} did not start; see {}", node.dir.join("node.log").display());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            node.listen = Some(crate::fsx::read_to_string(&file)?.trim().to_string());
        }
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
        nodes[i].dropped_at = crate::clock::now_ms();
        for (name, bytes, _) in files {
            let tmp = nodes[i].dir.join("inbox").join(format!(".{name}.part"));
            crate::fsx::write(&tmp, bytes)?;
            crate::fsx::rename(&tmp, &nodes[i].dir.join("inbox").join(&name))?;
        }
    }
    let total_files: usize = counties.iter().map(|&i| nodes[i].files).sum();
    println!(
        "dropped {total_files} files with {} records (some rows deliberately bad) into {} county inboxes",
        opts.records,
        counties.len()
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
                bail!("node {} exited ({status}); see {}", n.id, n.dir.join("node.log").display());
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
        if handled == total_files && national as u64 == accepted && accepted > 0 {
            if !tty {
                println!("{}", bars.join(" | "));
            }
            break;
        }
        if started.elapsed() > opts.timeout {
            println!("timed out after {:?}: national holds {national} of {accepted} accepted records", opts.timeout);
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let elapsed = started.elapsed();
    summary(nodes, &counties, elapsed)
}

fn config_text(node: &Node, ca: &Path, parent_addr: Option<&str>) -> String {
    let mut t = format!(
        "# Written by huijiao demo.\nnode_id = \"{id}\"\ndata_dir = \"data\"\n\n[inbox]\npaths = [\"inbox\"]\nsettle_ms = 300\n\n[tls]\nca = \"{ca}\"\ncert = \"tls/{id}.crt\"\nkey = \"tls/{id}.key\"\ncrl = \"{crl}\"\n\n",
        id = node.id,
        ca = ca.join("ca.crt").display(),
        crl = ca.join("crl.pem").display()
    );
    if node.level() != Level::County {
        t.push_str("[listen]\naddress = \"127.0.0.1:0\"\n\n");
    }
    if node.id == huijiao_protocol::regions::NATIONAL {
        t.push_str("[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\n\n");
    }
    if let (Some(p), Some(a)) = (&node.parent, parent_addr) {
        t.push_str(&format!("[parent]\naddress = \"{a}\"\nnode_id = \"{p}\"\n\n"));
    }
    t.push_str("[sync]\nreconnect_min_ms = 200\nreconnect_max_ms = 2000\n");
    t
}

/// Five files for a county, one of each type; about 2 % of rows broken in ways a
/// clerk's file really is. Returns (name, bytes, bad rows).
fn county_files(county: &str, n: u32, seed: u64) -> Vec<(String, Vec<u8>, u32)> {
    let today = crate::clock::today();
    let mut g = Generator::new(seed);
    let mut rng = Rng::new(seed.wrapping_mul(31));
    let cols = synth::columns();
    let col = |f: Field| cols.iter().position(|c| *c == f).expect("column");
    let mut rows: Vec<(Vec<String>, bool)> = (0..n)
        .map(|i| {
            let mut cells = synth::cells(&g.record(county, i, today));
            let bad = rng.chance(0.02);
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

/// Pads to a terminal width, counting CJK characters as two columns.
fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Prints the summary and audits the run; true when it passed.
fn summary(nodes: &[Node], counties: &[usize], elapsed: Duration) -> anyhow::Result<bool> {
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
    let mut ok = total == sum_accepted && as_generated;
    println!(
        "\nnational total: {total} records; sum of the counties' accepted records: {sum_accepted} {}",
        if ok { "✓" } else { "✗ MISMATCH" }
    );
    let readers: Vec<(String, Reader)> = counties.iter().filter_map(|&i| nodes[i].reader().map(|r| (nodes[i].id.clone(), r))).collect();
    let origins: Vec<(&str, &Reader)> = readers.iter().map(|(id, r)| (id.as_str(), r)).collect();
    let a = audit(&origins, &top)?;
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
    let cfg = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.config.display().to_string()).unwrap_or_default();
    let national = root.join("node-000000");
    let token = national.join("api-token");
    println!("\nThe federation keeps running in {}.", root.display());
    let api = std::fs::read_to_string(national.join("data").join(crate::http::HTTP_ADDRESS_FILE)).ok();
    if let Some(api) = &api {
        println!("Open in a browser:");
        println!("  the public catalogue   http://{api}/   (search 水稻, 识别 or 芯片)");
        println!("  the operators' view    http://{api}/admin   (token: the line in {})", token.display());
    }
    println!("In another terminal:");
    println!("  {exe} status --config {}", cfg("000000"));
    println!("  {exe} status --config {}", cfg("420100"));
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

/// SIGTERM to every node, then wait (SIGKILL after 20 s).
fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter_mut().rev() {
        if let Some(c) = &n.child {
            terminate(c.id());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in nodes.iter_mut() {
        if let Some(mut c) = n.child.take() {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

/// Sends SIGTERM, the signal systemd uses to stop a node cleanly (through kill(1):
/// no `unsafe` for a signal).
pub fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
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
