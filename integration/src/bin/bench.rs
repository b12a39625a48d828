//! The benchmark tool:
//!
//! ```sh
//! cargo run --release -p integration --bin bench -- all          # every scenario but catalogue
//! cargo run --release -p integration --bin bench -- ingest sync  # some
//! cargo run --release -p integration --bin bench -- catalogue    # ten million records: by name only
//! cargo run --release -p integration --bin bench -- --smoke all  # tiny, checks it works
//! ```
//!
//! Scenarios: ingest, sync (with catchup and apply), bighop, latency, fanin, idle,
//! hostile, mirror, and, by name only, catalogue (not in `all`: it builds a
//! ten-million-record catalogue, an hour on a fresh machine; run it when the catalogue
//! changes), apply (the parent's apply alone) and catchup (the three-hop catch-up alone),
//! each also a row of sync. Prints a table with each row's
//! previous measurement (the last row of the same scenario and metric in BENCHMARKS.md)
//! beside the new one, and writes `bench-results/results.json` and
//! `bench-results/results.md` (the table BENCHMARKS.md holds). Node processes are the
//! real `huijiao` binary beside this one (built first when missing or older than its
//! sources; `integration::huijiao_bin`).

use integration::bench::{self, Machine, Row, Size};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        // The module's own text is the usage.
        println!("usage: bench [--smoke] [--out DIR] [all | SCENARIO ...]\n");
        println!("scenarios: ingest, sync (with catchup and apply), bighop, latency, fanin, idle, hostile, mirror;");
        println!("by name only: catalogue (ten million records), apply (the parent's apply alone), catchup (the three hops alone)");
        return Ok(());
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => std::path::PathBuf::from(args.get(i + 1).ok_or_else(|| anyhow::anyhow!("--out needs a folder"))?),
        None => std::path::PathBuf::from("bench-results"),
    };
    // `all` leaves out the ten-million-record catalogue (run it by name).
    let all = ["ingest", "sync", "bighop", "latency", "fanin", "idle", "hostile", "mirror"];
    let named = ["catalogue", "catchup", "apply"];
    let mut wanted: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--") && Some(*a) != out.to_str()).collect();
    if wanted.is_empty() || wanted.contains(&"all") {
        let extra: Vec<&str> = wanted.iter().copied().filter(|w| named.contains(w)).collect();
        wanted = all.to_vec();
        wanted.extend(extra);
    }
    if let Some(bad) = wanted.iter().find(|w| !all.contains(w) && !named.contains(w)) {
        anyhow::bail!("unknown scenario `{bad}` (scenarios: {}, catalogue, or all)", all.join(", "));
    }
    let before = previous(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md"));
    let size = Size { smoke };
    let root = tempfile::tempdir_in(std::env::var("HUIJIAO_BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()))?;
    let machine = Machine::probe(root.path());
    eprintln!(
        "machine: {} cores, {}, {:.0} GiB RAM, disk {}, kernel {}",
        machine.cores, machine.cpu, machine.memory_gib, machine.disk, machine.kernel
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows: Vec<Row> = Vec::new();
    for w in &wanted {
        eprintln!("== {w}{}", if smoke { " (smoke)" } else { "" });
        let r = rt.block_on(async {
            match *w {
                "ingest" => bench::ingest(size, root.path()).await,
                "sync" => bench::sync(size, root.path()).await.map(|(r, _)| r),
                "catchup" => bench::catchup(size, root.path()).await,
                "apply" => bench::apply(size, root.path()).await,
                "latency" => bench::latency(size).await,
                "bighop" => bench::bighop(size, root.path()).await,
                "fanin" => bench::fanin(size).await,
                "hostile" => bench::hostile(size, root.path()).await,
                "catalogue" => integration::bench_catalogue::catalogue(size, root.path()).await,
                "mirror" => integration::bench_mirror::mirror(size, root.path()).await,
                _ => bench::idle(size).await,
            }
        })?;
        // Each scenario's rows as soon as it ends, beside their last recorded value.
        for row in &r {
            eprintln!(
                "  {} | {}: {} {} (before: {})",
                row.scenario,
                row.metric,
                num(row.measured),
                row.unit,
                before.get(&(row.scenario.clone(), row.metric.clone())).map_or("none recorded", String::as_str)
            );
        }
        rows.extend(r);
    }
    let table = markdown(&rows, &before);
    println!("{table}");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&serde_json::json!({"machine": machine, "smoke": smoke, "results": rows}))?,
    )?;
    std::fs::write(
        out.join("results.md"),
        format!(
            "Machine: {} cores, {}, {:.0} GiB RAM, disk {}, Linux {}\n\n{table}",
            machine.cores, machine.cpu, machine.memory_gib, machine.disk, machine.kernel
        ),
    )?;
    eprintln!("wrote {}/results.json and results.md", out.display());
    Ok(())
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The last measurement BENCHMARKS.md records for each (scenario, metric): from every
/// table with a `measured` column, later rows winning.
fn previous(path: &std::path::Path) -> std::collections::HashMap<(String, String), String> {
    let mut out = std::collections::HashMap::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut columns: Option<(usize, usize, usize)> = None;
    for line in text.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if !line.trim_start().starts_with('|') {
            columns = None;
            continue;
        }
        if cells.first() == Some(&"scenario") {
            let at = |name: &str| cells.iter().position(|c| *c == name);
            columns = match (at("metric"), at("measured")) {
                (Some(m), Some(v)) => Some((0, m, v)),
                _ => None,
            };
            continue;
        }
        if let Some((s, m, v)) = columns {
            if let (Some(sc), Some(me), Some(val)) = (cells.get(s), cells.get(m), cells.get(v)) {
                if !val.is_empty() && !val.starts_with("---") {
                    out.insert((sc.to_string(), me.to_string()), val.to_string());
                }
            }
        }
    }
    out
}

fn markdown(rows: &[Row], before: &std::collections::HashMap<(String, String), String>) -> String {
    let mut s = String::from(
        "| scenario | metric | goal | before | measured | baseline | ratio | met | note |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.metric,
            r.goal,
            before.get(&(r.scenario.clone(), r.metric.clone())).map_or("", String::as_str),
            num(r.measured),
            r.unit,
            r.baseline.map(num).unwrap_or_default(),
            r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            },
            r.note
        ));
    }
    s
}

// The same allocator as the huijiao binary (see node/cli/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
