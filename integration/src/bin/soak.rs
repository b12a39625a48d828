//! A long kill -9 soak, run by hand:
//!
//! ```sh
//! cargo run --release -p integration --bin soak -- --rounds 200 --seed 7
//! ```
//!
//! The nodes are processes of the real `huijiao` binary beside this one (built first
//! when missing or older than its sources; `integration::huijiao_bin`).
//!
//! Kills a random node of a six-node chain at a random moment in each round while
//! files keep arriving, restarts it, and finally audits the national node: 0 lost,
//! 0 duplicated, every record at its latest version. Exits non-zero otherwise.

use std::time::Duration;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match soak(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn soak(args: &[String]) -> anyhow::Result<()> {
    let arg = |name: &str, default: u64| -> anyhow::Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?.parse()?),
            None => Ok(default),
        }
    };
    let rounds = arg("--rounds", 100)? as usize;
    let seed = arg("--seed", huijiao::clock::now_ms() as u64)?;
    println!("soak: {rounds} rounds of kill -9, seed {seed} (replay with --seed {seed})");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let audit = rt.block_on(integration::scenarios::kill_nine(seed, rounds, Duration::from_secs(600)))?;
    println!("audit: {}", audit.summary());
    anyhow::ensure!(audit.ok(), "the soak failed (seed {seed})");
    println!("soak passed");
    Ok(())
}

// The same allocator as the huijiao binary (see node/cli/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
