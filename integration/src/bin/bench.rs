//! The benchmark tool:
//!
//! ```sh
//! cargo run --release -p integration --bin bench -- all          # every scenario
//! cargo run --release -p integration --bin bench -- ingest sync  # some
//! cargo run --release -p integration --bin bench -- --smoke all  # tiny, checks it works
//! ```
//!
//! Scenarios: ingest, sync (with catchup), bighop, latency, fanin, idle, hostile, catalogue. Prints a table and
//! writes `bench-results/results.json` and `bench-results/results.md` (the table
//! BENCHMARKS.md holds). Node processes are the real `huijiao` binary beside this one
//! (built first when missing or older than its sources; `integration::huijiao_bin`).

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
    let smoke = args.iter().any(|a| a == "--smoke");
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => std::path::PathBuf::from(args.get(i + 1).ok_or_else(|| anyhow::anyhow!("--out needs a folder"))?),
        None => std::path::PathBuf::from("bench-results"),
    };
    let all = ["ingest", "sync", "bighop", "latency", "fanin", "idle", "hostile", "catalogue", "mirror"];
    let mut wanted: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--") && Some(*a) != out.to_str()).collect();
    if wanted.is_empty() || wanted.contains(&"all") {
        wanted = all.to_vec();
    }
    if let Some(bad) = wanted.iter().find(|w| !all.contains(w) && **w != "catchup") {
        anyhow::bail!("unknown scenario `{bad}` (scenarios: {}, or all)", all.join(", "));
    }
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
                "sync" | "catchup" => bench::sync(size, root.path()).await.map(|(r, _)| r),
                "latency" => bench::latency(size).await,
                "bighop" => bench::bighop(size, root.path()).await,
                "fanin" => bench::fanin(size).await,
                "hostile" => bench::hostile(size, root.path()).await,
                "catalogue" => integration::bench_catalogue::catalogue(size, root.path()).await,
                "mirror" => integration::bench_mirror::mirror(size, root.path()).await,
                _ => bench::idle(size).await,
            }
        })?;
        rows.extend(r);
    }
    let table = markdown(&rows);
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

fn markdown(rows: &[Row]) -> String {
    let mut s =
        String::from("| scenario | metric | goal | measured | baseline | ratio | met | note |\n|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let num = |x: f64| if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.2}") };
        s.push_str(&format!(
            "| {} | {} | {} | {} {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.metric,
            r.goal,
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
