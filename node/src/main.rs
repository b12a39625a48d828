//! The `huijiao` binary: argument parsing and dispatch only.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "huijiao", version, about = "汇交 — national S&T achievement collection node (daemon and tools)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate files without storing them and print the report of each (spec §5).
    ///
    /// Exit status: 0 when every row of every file is accepted, 1 when any row is
    /// rejected or any file refused, 2 on usage errors.
    Check {
        /// Print one JSON report per line, one per file, in argument order.
        #[arg(long)]
        json: bool,
        /// Check jurisdiction as this node (a region code, 000000 for national).
        #[arg(long, value_name = "CODE")]
        node: Option<String>,
        /// A GB/T 2260 table (TSV) to use instead of the built-in one.
        #[arg(long, value_name = "TSV")]
        regions: Option<PathBuf>,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("huijiao: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Check { json, node, regions, files } => {
            let table = huijiao::config::load_regions(regions.as_deref())?;
            if let Some(node) = &node {
                huijiao::config::check_node_id(node, &table)?;
            }
            huijiao::commands::check::run(&files, json, node.as_deref(), &table, &mut std::io::stdout().lock())
        }
    }
}
