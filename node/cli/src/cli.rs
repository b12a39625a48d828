//! The command line: argument parsing, logging set-up and dispatch to the commands
//! of the daemon library (`huijiao::commands`) and to the demo (`demo`).

use crate::office;
use anyhow::Context;
use clap::{Parser, Subcommand};
use huijiao::store::Filter;
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
    /// Unit accounts of online registration (the office creates them; spec §6.1).
    #[command(subcommand)]
    Unit(office::UnitCommand),
    /// Review units' submissions: list, approve (assigns the 登记号), return.
    #[command(subcommand)]
    Review(office::ReviewCommand),
    /// The office's named reviewers, each signing in to /admin with a password of its own.
    #[command(subcommand)]
    Reviewer(office::ReviewerCommand),
    /// Check a configuration as the daemon would use it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write a commented starting configuration for a node, and its folders.
    Init {
        /// The node's region code (000000 for the national node).
        #[arg(long = "node-id", value_name = "CODE")]
        node_id: String,
        /// The parent's address and node id (every node but the national one).
        #[arg(long, num_args = 2, value_names = ["ADDRESS", "NODE_ID"])]
        parent: Option<Vec<String>>,
        /// Where to write the configuration.
        #[arg(long, value_name = "FILE", default_value = "/etc/huijiao/huijiao.toml")]
        config: PathBuf,
        #[arg(long = "data-dir", value_name = "DIR", default_value = "/var/lib/huijiao")]
        data_dir: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "/srv/huijiao/inbox")]
        inbox: PathBuf,
        /// Replace an existing configuration file.
        #[arg(long)]
        force: bool,
    },
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
    /// A consistent copy of the store, also while the daemon runs (not `cp`: the WAL).
    Backup {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A new file, or a folder for a file named by node and time.
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
    },
    /// Put a backup back as the store (daemon stopped); then `recover`, then start.
    Restore {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "BACKUP")]
        from: PathBuf,
    },
    /// Show what the node holds and when it last took something in.
    Status {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Query the store (also while the daemon runs): list, search, count, statistics,
    /// export.
    ///
    /// A listing shows everything the store holds (you are its operator) unless
    /// `--public`; statistics and exports, which get shared, are public unless
    /// `--operator`. Searching, the catalogue filters, `--stats` and `--export` read
    /// the catalogue (`catalogue.db`), which this brings up to date first.
    Query(Box<QueryArgs>),
    /// Rebuild the search catalogue from the store (also while the daemon runs).
    Reindex {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Follow this node's change log into PostgreSQL (docs/open-data.md) until SIGTERM
    /// or Ctrl-C; with `--once`, exit when caught up. One mirror per schema.
    Mirror {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// `postgresql://user:password@host:5432/db` (default: `[mirror] postgres_url_file`).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// The PostgreSQL schema (default: `[mirror] schema`, else `huijiao`).
        #[arg(long, value_name = "NAME")]
        schema: Option<String>,
        /// `operator` (every record and field, the change history) or `public`.
        #[arg(long, value_name = "VIEW")]
        view: Option<String>,
        /// Exit when caught up.
        #[arg(long)]
        once: bool,
    },
}

#[derive(clap::Args)]
struct QueryArgs {
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Search title, abstract, keywords, units, persons and reg_no (words: 水稻, 5G基站,
    /// LiDAR; several words must all match).
    #[arg(short = 'q', long = "search", value_name = "WORDS")]
    search: Option<String>,
    /// Region: a code prefix (42, 4201), a code (420000 = all of Hubei) or a name (湖北省, 武汉市).
    #[arg(long, value_name = "R")]
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
    /// Registered in this year.
    #[arg(long, value_name = "YYYY")]
    year: Option<String>,
    /// Registered on a date or in a range, as the API's `reg_date`: 2025-03-01,
    /// 2025-01-01..2025-06-30, 2025-01-01.. or ..2025-06-30.
    #[arg(long = "reg-date", value_name = "D..D")]
    reg_date: Option<String>,
    #[arg(long = "reg-no", value_name = "R")]
    reg_no: Option<String>,
    /// 初期阶段 / 中期阶段 / 成熟应用阶段.
    #[arg(long, value_name = "S")]
    stage: Option<String>,
    /// 国际领先 / 国际先进 / 国内领先 / 国内先进 / 未评价.
    #[arg(long, value_name = "L")]
    level: Option<String>,
    /// GB/T 13745 discipline code or its first digits.
    #[arg(long, value_name = "CODE")]
    discipline: Option<String>,
    /// GB/T 4754 industry code or its start (C, C27).
    #[arg(long, value_name = "CODE")]
    industry: Option<String>,
    /// 自行实施 / 转让 / 许可 / 作价投资 / 合作实施 / 其他.
    #[arg(long, value_name = "T")]
    transfer: Option<String>,
    /// Holds an IP right of this type (发明专利, 软件著作权, …).
    #[arg(long = "ip-type", visible_alias = "ip", value_name = "T")]
    ip_type: Option<String>,
    /// Holds any IP right (true) or none (false).
    #[arg(long = "has-ip", value_name = "BOOL")]
    has_ip: Option<String>,
    /// Technology readiness: 7, or a range 5..9.
    #[arg(long, value_name = "N")]
    trl: Option<String>,
    /// Funded by the state budget (true / false).
    #[arg(long = "fiscal-funded", value_name = "BOOL")]
    fiscal_funded: Option<String>,
    /// Records that entered the federation at this node.
    #[arg(long, value_name = "NODE")]
    origin: Option<String>,
    /// relevance (with a search) / date / region.
    #[arg(long, value_name = "ORDER")]
    sort: Option<String>,
    /// Show at most this many records.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Substring of title, abstract, units, persons or keywords (a plain scan of the
    /// store; `-q` searches the catalogue).
    #[arg(long, value_name = "S", conflicts_with = "search")]
    text: Option<String>,
    /// Only what the public may see, with only the public fields (spec §3).
    #[arg(long, conflicts_with = "operator")]
    public: bool,
    /// Statistics and exports with every record and field (default: public).
    #[arg(long)]
    operator: bool,
    /// JSON: one record per line (spec keys), or one object for `--stats`.
    #[arg(long)]
    json: bool,
    /// Print only the number of matching records.
    #[arg(long)]
    count: bool,
    /// Count the matching records grouped by region (one level below --region),
    /// province, prefecture, county, kind, year, stage, industry, transfer or level.
    #[arg(long, value_name = "BY", conflicts_with_all = ["count", "export"])]
    stats: Option<String>,
    /// Write the matching records as csv (re-importable: UTF-8 with BOM, the spec's
    /// Chinese columns) or jsonl.
    #[arg(long, value_name = "FORMAT", conflicts_with = "count")]
    export: Option<String>,
    /// Where `--export` writes (default: standard output).
    #[arg(long, value_name = "FILE", requires = "export")]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate keys, folders, permissions, the certificate chain and expiry, that the
    /// certificate names this node, the parent's address and the API token. Exit
    /// status 1 when the node would not run as configured.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
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
    /// A new key and certificate for a node, replacing NODE_ID.crt and NODE_ID.key in
    /// --out; the node picks them up on reload (systemctl reload huijiao).
    Renew {
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        node_id: String,
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Every certificate the CA issued: node, serial, expiry, revoked.
    List {
        #[arg(long, value_name = "CA_DIR")]
        ca: PathBuf,
        #[arg(long)]
        json: bool,
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
    let cli = Cli::parse();
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

/// One piece: one arm per command, each a call into the library; the match is the command
/// table.
fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Check { json, node, regions, files } => {
            let table = huijiao::config::load_regions(regions.as_deref())?;
            if let Some(node) = &node {
                huijiao::config::check_node_id(node, &table)?;
            }
            huijiao::commands::check::run(&files, json, node.as_deref(), &table, &mut std::io::stdout().lock())
        }
        Command::Run { config } => {
            huijiao::logging::init()?;
            let cfg = huijiao::config::Config::load(&config)?;
            if let Some(spec) = &cfg.log {
                huijiao::logging::set_filter(spec)?;
            }
            // Blocking work (parsing, decoding, the store's callers) is bounded elsewhere;
            // this caps the thread pool behind it.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .max_blocking_threads(64)
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            rt.block_on(huijiao::daemon::serve(config, cfg))?;
            Ok(0)
        }
        Command::Demo { records, keep, dir, seed, timeout_secs } => crate::demo::run(huijiao_kit::demo::Options {
            records: records.max(6),
            keep,
            dir,
            seed,
            timeout: std::time::Duration::from_secs(timeout_secs),
        }),
        Command::Unit(u) => office::unit(u),
        Command::Review(r) => office::review(r),
        Command::Reviewer(r) => office::reviewers(r),
        Command::Pki(PkiCommand::Init { dir }) => {
            huijiao::pki::init(&dir)?;
            println!("CA created in {} (ca.crt, ca.key 0600, crl.pem); keep ca.key offline", dir.display());
            Ok(0)
        }
        Command::Pki(PkiCommand::Issue { ca, node_id, out, days }) => {
            let (crt, key) = huijiao::pki::issue(&ca, &node_id, &out, days)?;
            println!("issued {} and {} for node {node_id}, valid {days} days", crt.display(), key.display());
            Ok(0)
        }
        Command::Pki(PkiCommand::Renew { ca, node_id, out, days }) => {
            let (crt, key) = huijiao::pki::renew(&ca, &node_id, &out, days)?;
            println!(
                "renewed {} and {} for node {node_id}, valid {days} days; install them and reload the node (systemctl reload huijiao)",
                crt.display(),
                key.display()
            );
            Ok(0)
        }
        Command::Pki(PkiCommand::List { ca, json }) => {
            let all = huijiao::pki::list(&ca)?;
            let ca_expiry = huijiao::pki::expiry_of_file(&ca.join("ca.crt"))?;
            if json {
                println!("{}", serde_json::json!({"ca_not_after": ca_expiry, "certificates": all}));
                return Ok(0);
            }
            println!(
                "CA {} expires {} ({} days)",
                ca.display(),
                huijiao::clock::rfc3339_china(ca_expiry * 1000),
                huijiao::pki::days_left(ca_expiry)
            );
            println!("{:<8} {:<34} {:<30} {:>6}  state", "node", "serial", "expires", "days");
            for c in &all {
                let days = huijiao::pki::days_left(c.not_after);
                let state = if c.revoked {
                    "revoked"
                } else if days < 0 {
                    "EXPIRED"
                } else if days < huijiao::pki::EXPIRY_WARNING_DAYS {
                    "EXPIRES SOON"
                } else {
                    "valid"
                };
                println!("{:<8} {:<34} {:<30} {days:>6}  {state}", c.node, c.serial, huijiao::clock::rfc3339_china(c.not_after * 1000));
            }
            Ok(0)
        }
        Command::Backup { config, to } => {
            let cfg = huijiao::config::Config::load(&config)?;
            let s = huijiao::store::backup::backup(&cfg.data_dir, &cfg.node_id, &to)?;
            println!("backup {}: {} records, change log up to {}, {} bytes", s.path.display(), s.records, s.last_seq, s.bytes);
            Ok(0)
        }
        Command::Restore { config, from } => {
            let cfg = huijiao::config::Config::load(&config)?;
            let (s, kept) = huijiao::store::backup::restore(&cfg.data_dir, &cfg.node_id, &from)?;
            println!(
                "restored {} ({} records, change log up to {}); the store it replaced is kept as {}",
                s.path.display(),
                s.records,
                s.last_seq,
                kept.display()
            );
            println!(
                "next: `huijiao recover --config {}` takes back from the parent what this copy lacks; then start the node",
                config.display()
            );
            Ok(0)
        }
        Command::Config(ConfigCommand::Check { config }) => {
            let findings = huijiao::commands::setup::check(&config);
            Ok(huijiao::commands::setup::print(&findings, &mut std::io::stdout().lock())?)
        }
        Command::Init { node_id, parent, config, data_dir, inbox, force } => {
            let parent = parent.as_ref().map(|p| (p[0].as_str(), p[1].as_str()));
            huijiao::commands::setup::init(&huijiao::commands::setup::InitOptions {
                node_id: &node_id,
                parent,
                config: &config,
                data_dir: &data_dir,
                inbox: &inbox,
                force,
            })?;
            println!("wrote {} and created {} and {}", config.display(), data_dir.display(), inbox.display());
            println!(
                "next: put ca.crt, crl.pem, {node_id}.crt and {node_id}.key beside it, then `huijiao config check --config {}`",
                config.display()
            );
            Ok(0)
        }
        Command::Pki(PkiCommand::Revoke { ca, node_id, serial }) => {
            let target = match (node_id, serial) {
                (Some(n), _) => huijiao::pki::RevokeTarget::Node(n),
                (None, Some(s)) => huijiao::pki::RevokeTarget::Serial(s),
                (None, None) => anyhow::bail!("give a node id or --serial"),
            };
            let revoked = huijiao::pki::revoke(&ca, target)?;
            println!("revoked {} certificate(s); distribute {}/crl.pem to every parent", revoked.len(), ca.display());
            Ok(0)
        }
        Command::Conflicts { config, json } => {
            let cfg = huijiao::config::Config::load(&config)?;
            let reader = huijiao::store::Reader::open(&cfg.db_path())?;
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
            let cfg = huijiao::config::Config::load(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
            let r = rt.block_on(huijiao::commands::recover::run(&cfg))?;
            println!(
                "the parent holds {} record(s) from this node's subtree; {} taken back into the store (the others it held already)",
                r.held, r.restored
            );
            Ok(0)
        }
        Command::Status { config, json } => {
            let cfg = huijiao::config::Config::load(&config)?;
            huijiao::commands::status::run(&cfg, json, &mut std::io::stdout().lock())?;
            Ok(0)
        }
        Command::Query(a) => query(*a),
        Command::Mirror { config, postgres, schema, view, once } => mirror(&config, postgres, schema, view, once),
        Command::Reindex { config } => {
            let cfg = huijiao::config::Config::load(&config)?;
            let n = huijiao::commands::query::reindex(&cfg.data_dir, &mut std::io::stderr())?;
            println!("catalogue rebuilt: {n} records indexed");
            Ok(0)
        }
    }
}

/// `huijiao mirror`: the options from the flags, else from `[mirror]`.
fn mirror(
    config: &std::path::Path,
    postgres: Option<String>,
    schema: Option<String>,
    view: Option<String>,
    once: bool,
) -> anyhow::Result<i32> {
    // It logs as the daemon does (its retries, its catch-up), to stderr.
    huijiao::logging::init()?;
    let cfg = huijiao::config::Config::load(config)?;
    if let Some(spec) = &cfg.log {
        huijiao::logging::set_filter(spec)?;
    }
    let section = cfg.mirror.clone();
    let url = match (postgres, &section) {
        (Some(u), _) => u,
        (None, Some(m)) => m.url()?,
        (None, None) => anyhow::bail!("no PostgreSQL given: --postgres URL, or a [mirror] section with postgres_url_file"),
    };
    let schema = schema.or_else(|| section.as_ref().map(|m| m.schema.clone())).unwrap_or_else(|| "huijiao".into());
    anyhow::ensure!(huijiao::mirror::pg::schema_ok(&schema), "--schema: `{schema}` is not 1 to 63 of a–z, 0–9 and _");
    let view = match view {
        Some(v) => huijiao::mirror::View::parse(&v).with_context(|| format!("--view: `{v}` is not operator or public"))?,
        None => section.as_ref().map_or(huijiao::mirror::View::Operator, |m| m.view),
    };
    let opts = huijiao::mirror::Options { url, schema: schema.clone(), view, once };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            s.cancel();
        });
        huijiao::mirror::run(&cfg, &opts, stop).await
    })?;
    let st = huijiao::mirror::statuses(&cfg.data_dir).into_iter().find(|s| s.schema == schema);
    if let Some(st) = st {
        println!("mirror {schema} ({}): at change {} of {}", view.as_str(), st.cursor, st.last_seq);
    }
    Ok(0)
}

fn query(a: QueryArgs) -> anyhow::Result<i32> {
    use huijiao::commands::query as q;
    let cfg = huijiao::config::Config::load(&a.config)?;
    let catalogue_only = [
        &a.search,
        &a.year,
        &a.reg_date,
        &a.stage,
        &a.level,
        &a.discipline,
        &a.industry,
        &a.transfer,
        &a.ip_type,
        &a.has_ip,
        &a.trl,
        &a.fiscal_funded,
        &a.origin,
        &a.sort,
        &a.stats,
        &a.export,
    ]
    .iter()
    .any(|o| o.is_some())
        || a.limit.is_some()
        || a.operator;
    // A region given by name needs the catalogue's resolution too.
    let named_region = a.region.as_deref().is_some_and(|r| !r.bytes().all(|b| b.is_ascii_digit()));
    if !catalogue_only && !named_region {
        let kind = a
            .kind
            .map(|k| huijiao_protocol::Kind::parse(&k).with_context(|| format!("unknown kind `{k}` (use 应用技术, 基础理论, 软科学)")))
            .transpose()?;
        let parse = |d: Option<String>| d.map(|d| q::parse_date_arg(&d)).transpose();
        let filter = Filter {
            region: a.region,
            kind,
            since: parse(a.since)?,
            until: parse(a.until)?,
            reg_no: a.reg_no,
            text: a.text,
            public: a.public.then(huijiao::clock::today),
        };
        let reader = huijiao::store::Reader::open(&cfg.db_path())?;
        q::run(&reader, &filter, a.json, a.count, &mut std::io::stdout().lock())?;
        return Ok(0);
    }
    if a.text.is_some() {
        anyhow::bail!("--text is a plain scan of the store and does not combine with the catalogue options; search with -q instead");
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            pairs.push((k.to_string(), v));
        }
    };
    put("q", a.search);
    put("region", a.region);
    put("kind", a.kind);
    put("since", a.since);
    put("until", a.until);
    put("year", a.year);
    put("reg_date", a.reg_date);
    put("reg_no", a.reg_no);
    put("stage", a.stage);
    put("level", a.level);
    put("discipline", a.discipline);
    put("industry", a.industry);
    put("transfer", a.transfer);
    put("ip_type", a.ip_type);
    put("has_ip", a.has_ip);
    put("trl", a.trl);
    put("fiscal_funded", a.fiscal_funded);
    put("origin", a.origin);
    let action = match (a.stats, a.export) {
        (Some(by), _) => {
            pairs.push(("by".into(), by));
            q::Action::Stats
        }
        (None, Some(format)) => {
            pairs.push(("format".into(), format));
            q::Action::Export(a.out)
        }
        (None, None) => {
            put("sort", a.sort);
            q::Action::List { limit: a.limit, count: a.count }
        }
    };
    let shared = !matches!(action, q::Action::List { .. });
    let view = if a.operator || (!shared && !a.public) {
        huijiao::store::catalogue::View::Operator
    } else {
        huijiao::store::catalogue::View::Public { today: huijiao::clock::today() }
    };
    q::run_catalogue(&cfg, &pairs, action, view, a.json, &mut std::io::stdout().lock())
}
