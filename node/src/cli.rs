//! The command line: argument parsing, logging set-up and dispatch to the commands.
//! `main.rs` only calls [`main`]; the integration crate builds the same CLI into its
//! own binary so its multi-process tests can spawn it.

use crate::store::Filter;
use anyhow::Context;
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
    /// Run the node daemon in the foreground until SIGINT or SIGTERM.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a whole federation on loopback (12 real daemons, a fresh CA, generated
    /// submissions), show it converge, and check the result.
    Demo {
        /// Records to generate in all, over six counties.
        #[arg(long, default_value_t = 12_000)]
        records: u32,
        /// Leave the federation running (until Ctrl-C) and print how to look at it.
        #[arg(long)]
        keep: bool,
        /// Build it in this folder (default: a new temporary folder, removed after).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Fail if the federation has not converged after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// The federation PKI: a CA, node certificates, revocations.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// List changes held aside because two origins sent the same reg_no.
    Conflicts {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Take back from the parent the records this store lost (after a disk failure or
    /// a restore from an older copy). Stop the daemon first.
    Recover {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show what the node holds and when it last took something in.
    Status {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Query the store (also while the daemon runs).
    Query {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Region code prefix (42, 4201), or a node code (420000 = all of Hubei).
        #[arg(long, value_name = "PREFIX")]
        region: Option<String>,
        /// 应用技术 / 基础理论 / 软科学 (or applied / basic / soft).
        #[arg(long, value_name = "K")]
        kind: Option<String>,
        /// Registered on or after this date.
        #[arg(long, value_name = "D")]
        since: Option<String>,
        /// Registered on or before this date.
        #[arg(long, value_name = "D")]
        until: Option<String>,
        #[arg(long = "reg-no", value_name = "R")]
        reg_no: Option<String>,
        /// Substring of title, abstract, units, persons or keywords.
        #[arg(long, value_name = "S")]
        text: Option<String>,
        /// Only what the public may see, with only the public fields (spec §3).
        #[arg(long)]
        public: bool,
        /// JSON Lines: one record per line with the spec's English keys.
        #[arg(long)]
        json: bool,
        /// Print only the number of matching records.
        #[arg(long)]
        count: bool,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create the federation CA (ECDSA P-256) in a new folder, with an empty CRL.
    Init {
        #[arg(long, value_name = "CA_DIR")]
        dir: PathBuf,
    },
    /// Issue a certificate and key for a node (`NODE_ID.crt`, `NODE_ID.key`, key 0600).
    Issue {
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        /// The node's region code (000000 for the national node).
        node_id: String,
        /// Where to write the files. Default: the current folder.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Revoke every certificate of a node, or one by serial, and rewrite crl.pem.
    Revoke {
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        #[arg(required_unless_present = "serial", conflicts_with = "serial")]
        node_id: Option<String>,
        #[arg(long, value_name = "HEX")]
        serial: Option<String>,
    },
}

/// Runs the CLI with the process arguments; returns the exit status.
pub fn main() -> ExitCode {
    main_with(std::env::args_os())
}

/// Runs the CLI with these arguments (the first is the program name).
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        // A reader that went away (`huijiao query | head`) is not an error.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huijiao: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("HUIJIAO_LOG").unwrap_or_else(|_| "info".into());
    let filter: tracing_subscriber::filter::Targets = spec.parse().unwrap_or_else(|_| "info".parse().expect("valid default"));
    tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).with(filter).init();
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Check { json, node, regions, files } => {
            let table = crate::config::load_regions(regions.as_deref())?;
            if let Some(node) = &node {
                crate::config::check_node_id(node, &table)?;
            }
            crate::commands::check::run(&files, json, node.as_deref(), &table, &mut std::io::stdout().lock())
        }
        Command::Run { config } => {
            init_logging();
            let cfg = crate::config::Config::load(&config)?;
            // Blocking work (parsing, decoding, the store's callers) is bounded elsewhere;
            // this caps the thread pool behind it.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .max_blocking_threads(64)
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            rt.block_on(async {
                let shutdown = tokio_util::sync::CancellationToken::new();
                let on_signal = shutdown.clone();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    tracing::info!("signal received, shutting down");
                    on_signal.cancel();
                });
                crate::daemon::run(cfg, shutdown).await
            })?;
            Ok(0)
        }
        Command::Demo { records, keep, dir, seed, timeout_secs } => crate::demo::run(crate::demo::Options {
            records: records.max(6),
            keep,
            dir,
            seed,
            timeout: std::time::Duration::from_secs(timeout_secs),
        }),
        Command::Pki(PkiCommand::Init { dir }) => {
            crate::pki::init(&dir)?;
            println!("CA created in {} (ca.crt, ca.key 0600, crl.pem); keep ca.key offline", dir.display());
            Ok(0)
        }
        Command::Pki(PkiCommand::Issue { ca, node_id, out, days }) => {
            let (crt, key) = crate::pki::issue(&ca, &node_id, &out, days)?;
            println!("issued {} and {} for node {node_id}, valid {days} days", crt.display(), key.display());
            Ok(0)
        }
        Command::Pki(PkiCommand::Revoke { ca, node_id, serial }) => {
            let target = match (node_id, serial) {
                (Some(n), _) => crate::pki::RevokeTarget::Node(n),
                (None, Some(s)) => crate::pki::RevokeTarget::Serial(s),
                (None, None) => anyhow::bail!("give a node id or --serial"),
            };
            let revoked = crate::pki::revoke(&ca, target)?;
            println!("revoked {} certificate(s); distribute {}/crl.pem to every parent", revoked.len(), ca.display());
            Ok(0)
        }
        Command::Conflicts { config, json } => {
            let cfg = crate::config::Config::load(&config)?;
            let reader = crate::store::Reader::open(&cfg.db_path())?;
            for q in reader.quarantine()? {
                if json {
                    println!("{}", serde_json::to_string(&q)?);
                } else {
                    println!(
                        "{} version {} from origin {} (via {}), held origin {}: {}",
                        q.reg_no,
                        q.version,
                        q.origin,
                        q.from_child,
                        q.held_origin.as_deref().unwrap_or("-"),
                        q.reason
                    );
                }
            }
            Ok(0)
        }
        Command::Recover { config } => {
            let cfg = crate::config::Config::load(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
            let r = rt.block_on(crate::commands::recover::run(&cfg))?;
            println!(
                "the parent holds {} record(s) from this node's subtree; {} taken back into the store (the others it held already)",
                r.held, r.restored
            );
            Ok(0)
        }
        Command::Status { config, json } => {
            let cfg = crate::config::Config::load(&config)?;
            crate::commands::status::run(&cfg, json, &mut std::io::stdout().lock())?;
            Ok(0)
        }
        Command::Query { config, region, kind, since, until, reg_no, text, public, json, count } => {
            let cfg = crate::config::Config::load(&config)?;
            let kind = kind
                .map(|k| huijiao_protocol::Kind::parse(&k).with_context(|| format!("unknown kind `{k}` (use 应用技术, 基础理论, 软科学)")))
                .transpose()?;
            let parse = |d: Option<String>| d.map(|d| crate::commands::query::parse_date_arg(&d)).transpose();
            let filter =
                Filter { region, kind, since: parse(since)?, until: parse(until)?, reg_no, text, public: public.then(crate::clock::today) };
            let reader = crate::store::Reader::open(&cfg.db_path())?;
            crate::commands::query::run(&reader, &filter, json, count, &mut std::io::stdout().lock())?;
            Ok(0)
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
