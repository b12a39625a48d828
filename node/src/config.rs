//! The node configuration file (TOML) and its validation.

use anyhow::{bail, Context};
use huijiao_protocol::RegionTable;
use std::borrow::Cow;
use std::path::Path;

mod open;
pub use open::*;

/// The embedded GB/T 2260 table, or a newer one from `path`.
pub fn load_regions(path: Option<&Path>) -> anyhow::Result<Cow<'static, RegionTable>> {
    match path {
        None => Ok(Cow::Borrowed(RegionTable::embedded())),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read region table {}", p.display()))?;
            Ok(Cow::Owned(RegionTable::parse(&text).with_context(|| format!("invalid region table {}", p.display()))?))
        }
    }
}

/// A node id is `000000` or a code of the region table.
pub fn check_node_id(node: &str, regions: &RegionTable) -> anyhow::Result<()> {
    if !huijiao_protocol::regions::is_six_digits(node) {
        bail!("node id `{node}` is not a 6-digit region code");
    }
    if !regions.contains(node) {
        bail!("node id `{node}` is not in the GB/T 2260 table");
    }
    Ok(())
}

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The configuration file as written. Every section rejects unknown keys, so a typo
/// stops the daemon with the file, line and key instead of being silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// This node's id: its GB/T 2260 region code, `000000` for the national node. Required.
    pub node_id: String,
    /// Directory of the store (`huijiao.db`). Required. Relative paths are relative to
    /// the configuration file.
    pub data_dir: PathBuf,
    /// A newer GB/T 2260 table (TSV with `code name level parent`). Default: built in.
    #[serde(default)]
    pub regions_file: Option<PathBuf>,
    /// The watched folders. Default: none (a node may only relay its children).
    #[serde(default)]
    pub inbox: InboxSection,
    /// Where children connect. Default: none (a county usually has no children).
    #[serde(default)]
    pub listen: Option<ListenSection>,
    /// The parent to push changes to. Required for every node but the national one.
    #[serde(default)]
    pub parent: Option<ParentSection>,
    /// Certificates; required with `[listen]` or `[parent]`.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Sync tuning; the defaults suit every tier.
    #[serde(default)]
    pub sync: SyncSection,
    /// A node other than the national one that has no `[parent]` on purpose (a trial,
    /// a test): its records go nowhere. Default false: a missing `[parent]` is an
    /// error, so no office's records silently stay behind.
    #[serde(default)]
    pub standalone: bool,
    /// The search index over the store (`catalogue.db`). Default: kept following the
    /// store where `[http]` serves it; elsewhere brought up to date when read.
    #[serde(default)]
    pub catalogue: CatalogueSection,
    /// The read API (and web pages) over the catalogue. Default: off.
    #[serde(default)]
    pub http: Option<HttpSection>,
    /// Prometheus metrics and a health check. Default: off.
    #[serde(default)]
    pub metrics: Option<MetricsSection>,
    /// Online registration (spec v1.2 §6): units register their achievements here and
    /// the office reviews them. Default: off. Not at the national node.
    #[serde(default)]
    pub registration: Option<RegistrationSection>,
    /// OAI-PMH 2.0 at `/oai` on the `[http]` listener (docs/open-data.md). Default: off.
    #[serde(default)]
    pub oai: Option<OaiSection>,
    /// The PostgreSQL mirror the daemon runs (docs/open-data.md). Default: off.
    #[serde(default)]
    pub mirror: Option<MirrorSection>,
    /// The log filter (`info`, `warn`, `huijiao::inbox=debug,info`). Default: the
    /// `HUIJIAO_LOG` environment variable, else `info`. Changed by a reload (SIGHUP).
    #[serde(default)]
    pub log: Option<String>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// TCP address of `/metrics` and `/healthz`, e.g. `127.0.0.1:9464`. Required.
    pub address: String,
}

/// `[catalogue]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSection {
    /// Keep the search index following the store as it changes. Default: true where
    /// `[http]` serves the catalogue, false elsewhere — there nothing reads it but
    /// `huijiao query` with a search, which first brings it up to date with the store
    /// (every commit indexed twice over, on a node where nobody searches, costs a big
    /// file a fifth of the machine).
    #[serde(default)]
    pub index: Option<bool>,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// TCP address of the API, e.g. `127.0.0.1:8080`. Required.
    pub address: String,
    /// A file holding the operators' bearer token (one line, at least 16 characters,
    /// mode 0600). Default: none, and the operator endpoints answer 403.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Requests per minute one client address may make. Default 600.
    #[serde(default = "default_rate_per_minute")]
    pub rate_per_minute: u32,
    /// A query running longer than this is stopped (503), ms. Default 5000.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// The address the public reaches this node at (e.g. `https://kjcg.example.gov.cn`),
    /// for links the node prints (certificates, feeds). Default: none.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Reverse proxies in front of the node (addresses or CIDR blocks, `127.0.0.1`,
    /// `10.0.0.0/8`): from them, `X-Forwarded-For` gives the client's address (rate
    /// limits, logs) and `X-Forwarded-Proto` the scheme. Default: none (the headers
    /// are ignored).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Serve HTTPS itself: a PEM certificate chain and its private key (mode 0600),
    /// both or neither. Default: plain HTTP (a reverse proxy in front does TLS).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn default_rate_per_minute() -> u32 {
    600
}
fn default_query_timeout_ms() -> u64 {
    5000
}

/// The API, validated.
#[derive(Debug, Clone)]
pub struct Http {
    pub address: std::net::SocketAddr,
    pub token_file: Option<PathBuf>,
    pub rate_per_minute: u32,
    pub query_timeout: Duration,
    /// `public_url` without a trailing slash.
    pub public_url: Option<String>,
    /// Reverse proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// HTTPS served by the node itself: the certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// An address block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub bits: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `::1`, `127.0.0.1` (a single address: all its bits).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { addr, bits })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let bits = u32::from(self.bits);
        match (self.addr, ip) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => bits == 0 || (u32::from(a) ^ u32::from(b)) >> (32 - bits) == 0,
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => bits == 0 || (u128::from(a) ^ u128::from(b)) >> (128 - bits) == 0,
            _ => false,
        }
    }
}

/// `[listen]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    /// UDP address for QUIC, e.g. `0.0.0.0:7443`. Required.
    pub address: String,
    /// If given, only these child node ids may connect (each must also lie inside this
    /// node's jurisdiction). Default: any child inside the jurisdiction.
    #[serde(default)]
    pub children: Option<Vec<String>>,
    /// Connections held at once; more are refused. Default 4096.
    #[serde(default = "default_max_children")]
    pub max_children: usize,
    /// Changes one child may send in a day (Beijing date); more are held back (not
    /// refused) until the next day. Default 5,000,000: far above a province's whole
    /// stock sent in one day.
    #[serde(default = "default_max_changes_per_day")]
    pub max_changes_per_day: u64,
    /// Changes one child may send in a minute; more wait (or are held back a moment).
    /// Default 3,000,000 (50,000 a second).
    #[serde(default = "default_max_changes_per_minute")]
    pub max_changes_per_minute: u64,
    /// Either bound for one child: `[listen.child_limits.420102]` with
    /// `max_changes_per_day` and/or `max_changes_per_minute`.
    #[serde(default)]
    pub child_limits: std::collections::BTreeMap<String, ChildLimitsSection>,
}

/// `[listen.child_limits.NODE]`: one child's own bounds (unset: the `[listen]` ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildLimitsSection {
    pub max_changes_per_day: Option<u64>,
    pub max_changes_per_minute: Option<u64>,
}

/// `[parent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentSection {
    /// `host:port` of the parent's `[listen]` address. Required.
    pub address: String,
    /// The parent's node id; its certificate must name it. Required.
    pub node_id: String,
}

/// `[tls]`: PEM files made by `huijiao pki`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The federation CA certificate (`ca.crt`).
    pub ca: PathBuf,
    /// This node's certificate (`NODE_ID.crt`).
    pub cert: PathBuf,
    /// This node's private key (`NODE_ID.key`); must not be readable by group or others.
    pub key: PathBuf,
    /// The CA's revocation list (`crl.pem`); re-read when it changes.
    pub crl: PathBuf,
}

/// `[sync]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Most changes per batch. Default 2000.
    #[serde(default = "default_batch_changes")]
    pub batch_changes: usize,
    /// Most body bytes per batch, KiB. Default 1024.
    #[serde(default = "default_batch_kib")]
    pub batch_kib: usize,
    /// Batches in flight before an acknowledgement. Default 4.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Offer zstd compression of batches. Default true.
    #[serde(default = "default_true")]
    pub compress: bool,
    /// Reconnect backoff bounds, ms (doubling, with jitter). Defaults 500 and 30000.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// QUIC idle timeout, s; keep-alives go every third of it. Default 30.
    #[serde(default = "default_idle_secs")]
    pub idle_timeout_secs: u64,
    /// How often a node reports its subtree's health to its parent, s. Default 15.
    #[serde(default = "default_health_secs")]
    pub health_secs: u64,
    /// How far into the future a hop time in a child's change may be before this node
    /// replaces it by its own receipt time (and flags the child's clock), s. Default 300.
    #[serde(default = "default_max_clock_skew_secs")]
    pub max_clock_skew_secs: u64,
}

impl Default for SyncSection {
    fn default() -> Self {
        toml::from_str("").expect("all sync keys have defaults")
    }
}

fn default_max_children() -> usize {
    4096
}
fn default_max_changes_per_day() -> u64 {
    5_000_000
}
fn default_max_changes_per_minute() -> u64 {
    3_000_000
}
fn default_batch_changes() -> usize {
    2000
}
fn default_batch_kib() -> usize {
    1024
}
fn default_window() -> usize {
    4
}
fn default_true() -> bool {
    true
}
fn default_reconnect_min_ms() -> u64 {
    500
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}
fn default_idle_secs() -> u64 {
    30
}
fn default_health_secs() -> u64 {
    15
}
fn default_max_clock_skew_secs() -> u64 {
    300
}

/// Where children connect, validated.
#[derive(Debug, Clone)]
pub struct Listen {
    pub address: std::net::SocketAddr,
    pub children: Option<Vec<String>>,
    pub max_children: usize,
    /// The volume bound of every child, and those set for one child.
    pub limits: huijiao_protocol::sync::VolumeLimits,
    pub child_limits: std::collections::HashMap<String, huijiao_protocol::sync::VolumeLimits>,
}

impl Listen {
    /// The volume bound of `child`.
    pub fn limits_for(&self, child: &str) -> huijiao_protocol::sync::VolumeLimits {
        self.child_limits.get(child).copied().unwrap_or(self.limits)
    }
}

/// The parent, validated.
#[derive(Debug, Clone)]
pub struct Parent {
    pub address: String,
    pub node_id: String,
}

/// Certificate paths, made absolute: the `[tls]` section after validation.
pub type TlsPaths = TlsSection;

/// `[inbox]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSection {
    /// Folders to watch. Default: `[]`.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// How long size and mtime must stay unchanged before a file is read, ms. Default 1000.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Full rescan interval, seconds (file events get lost under load and on network
    /// shares). Default 15.
    #[serde(default = "default_rescan_secs")]
    pub rescan_secs: u64,
    /// Files larger than this are refused as a whole, MiB. Default 256.
    #[serde(default = "default_max_file_mib")]
    pub max_file_mib: u64,
    /// Where handled files go; default: `processed` and `rejected` beside each inbox
    /// folder (siblings of it).
    #[serde(default)]
    pub processed_dir: Option<PathBuf>,
    #[serde(default)]
    pub rejected_dir: Option<PathBuf>,
    /// A file still changing after this many seconds is read anyway, with a warning,
    /// so a writer that never stops cannot block the inbox. Default 600.
    #[serde(default = "default_max_settle_secs")]
    pub max_settle_secs: u64,
}

impl Default for InboxSection {
    fn default() -> Self {
        InboxSection {
            paths: Vec::new(),
            settle_ms: default_settle_ms(),
            rescan_secs: default_rescan_secs(),
            max_file_mib: default_max_file_mib(),
            processed_dir: None,
            rejected_dir: None,
            max_settle_secs: default_max_settle_secs(),
        }
    }
}

fn default_settle_ms() -> u64 {
    1000
}
fn default_rescan_secs() -> u64 {
    15
}
fn default_max_file_mib() -> u64 {
    256
}
fn default_max_settle_secs() -> u64 {
    600
}

/// One watched folder with the folders its files go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxDir {
    pub path: PathBuf,
    pub processed: PathBuf,
    pub rejected: PathBuf,
}

/// The validated runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: String,
    pub data_dir: PathBuf,
    pub regions: std::sync::Arc<RegionTable>,
    pub inboxes: Vec<InboxDir>,
    pub settle: Duration,
    pub rescan: Duration,
    pub max_settle: Duration,
    pub max_file_size: u64,
    pub listen: Option<Listen>,
    pub parent: Option<Parent>,
    pub tls: Option<TlsPaths>,
    pub sync: SyncSection,
    /// Keep the search index following the store.
    pub index: bool,
    pub http: Option<Http>,
    /// Online registration: the office's name, when on.
    pub registration: Option<Registration>,
    /// OAI-PMH at `/oai`, when on.
    pub oai: Option<Oai>,
    /// The PostgreSQL mirror the daemon runs, when on.
    pub mirror: Option<Mirror>,
    /// Where `/metrics` and `/healthz` listen.
    pub metrics: Option<std::net::SocketAddr>,
    pub log: Option<String>,
    /// The file this came from, for messages.
    pub source: PathBuf,
}

impl Config {
    /// Reads and validates a configuration file. Errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Absolute paths, so file events (which carry the watched path) compare equal.
        let abs_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let base = abs_path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_file(file, &base, path).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Validates a parsed file; relative paths are taken from `base`.
    ///
    /// One piece: each section checked in the order of the file, so an operator's mistakes
    /// are reported in the order they wrote them.
    pub fn from_file(file: ConfigFile, base: &Path, source: &Path) -> anyhow::Result<Config> {
        let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let regions = load_regions(file.regions_file.as_deref().map(abs).as_deref()).context("key `regions_file`")?.into_owned();
        check_node_id(&file.node_id, &regions).context("key `node_id`")?;
        let inbox = &file.inbox;
        if inbox.settle_ms == 0 {
            bail!("key `inbox.settle_ms` must be at least 1");
        }
        let inboxes = inbox
            .paths
            .iter()
            .map(|p| {
                let path = abs(p);
                let beside = |name: &str| path.parent().map_or_else(|| PathBuf::from(name), |d| d.join(name));
                InboxDir {
                    processed: inbox.processed_dir.as_deref().map_or_else(|| beside("processed"), abs),
                    rejected: inbox.rejected_dir.as_deref().map_or_else(|| beside("rejected"), abs),
                    path,
                }
            })
            .collect();
        let node_id = file.node_id.clone();
        let listen = file
            .listen
            .as_ref()
            .map(|l| -> anyhow::Result<Listen> {
                let address = l
                    .address
                    .parse()
                    .with_context(|| format!("key `listen.address`: `{}` is not an address like 0.0.0.0:7443", l.address))?;
                if let Some(children) = &l.children {
                    for c in children {
                        if !huijiao_protocol::regions::is_below(&node_id, c) {
                            bail!("key `listen.children`: node {c} is not inside the jurisdiction of node {node_id}");
                        }
                    }
                }
                if l.max_changes_per_day == 0 || l.max_changes_per_minute == 0 {
                    bail!("keys `listen.max_changes_per_day` and `listen.max_changes_per_minute` must be at least 1");
                }
                let limits = huijiao_protocol::sync::VolumeLimits { per_day: l.max_changes_per_day, per_minute: l.max_changes_per_minute };
                let mut child_limits = std::collections::HashMap::new();
                for (c, cl) in &l.child_limits {
                    if !huijiao_protocol::regions::is_below(&node_id, c) {
                        bail!("key `listen.child_limits.{c}`: node {c} is not inside the jurisdiction of node {node_id}");
                    }
                    let one = huijiao_protocol::sync::VolumeLimits {
                        per_day: cl.max_changes_per_day.unwrap_or(limits.per_day),
                        per_minute: cl.max_changes_per_minute.unwrap_or(limits.per_minute),
                    };
                    if one.per_day == 0 || one.per_minute == 0 {
                        bail!("key `listen.child_limits.{c}`: a bound must be at least 1");
                    }
                    child_limits.insert(c.clone(), one);
                }
                Ok(Listen { address, children: l.children.clone(), max_children: l.max_children.max(1), limits, child_limits })
            })
            .transpose()?;
        let parent = match (&file.parent, node_id == huijiao_protocol::regions::NATIONAL) {
            (Some(_), true) => bail!("section `[parent]`: the national node has no parent"),
            (None, false) if file.standalone => None,
            (None, false) => bail!(
                "section `[parent]` is missing: every node but the national one (000000) sends its records to a parent; \
                 add [parent] with the address and node_id of node {} (or `standalone = true` for a node whose records go nowhere)",
                regions.get(&node_id).map(|r| r.parent.clone()).unwrap_or_default()
            ),
            (None, true) => None,
            (Some(p), false) => {
                check_node_id(&p.node_id, &regions).context("key `parent.node_id`")?;
                if !huijiao_protocol::regions::is_below(&p.node_id, &node_id) {
                    bail!("key `parent.node_id`: node {node_id} is not inside the jurisdiction of {}", p.node_id);
                }
                Some(Parent { address: p.address.clone(), node_id: p.node_id.clone() })
            }
        };
        let tls = file.tls.as_ref().map(|t| TlsPaths { ca: abs(&t.ca), cert: abs(&t.cert), key: abs(&t.key), crl: abs(&t.crl) });
        if (listen.is_some() || parent.is_some()) && tls.is_none() {
            bail!("section `[tls]` is required with `[listen]` or `[parent]`: the federation speaks mutual TLS only");
        }
        let http = file
            .http
            .as_ref()
            .map(|h| -> anyhow::Result<Http> {
                let address = h
                    .address
                    .parse()
                    .with_context(|| format!("key `http.address`: `{}` is not an address like 127.0.0.1:8080", h.address))?;
                if file.catalogue.index == Some(false) {
                    bail!("section `[http]` serves the catalogue: it needs `[catalogue] index = true` (the default with `[http]`)");
                }
                if h.rate_per_minute == 0 {
                    bail!("key `http.rate_per_minute` must be at least 1");
                }
                let public_url = match h.public_url.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(u) if (u.starts_with("https://") || u.starts_with("http://")) && !u.contains(char::is_whitespace) => {
                        Some(u.trim_end_matches('/').to_string())
                    }
                    Some(u) => bail!("key `http.public_url`: `{u}` is not an address like https://kjcg.example.gov.cn"),
                };
                let trusted_proxies = h
                    .trusted_proxies
                    .iter()
                    .map(|p| {
                        Cidr::parse(p)
                            .with_context(|| format!("key `http.trusted_proxies`: `{p}` is not an address or a block like 10.0.0.0/8"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let tls = match (&h.cert, &h.key) {
                    (Some(c), Some(k)) => Some((abs(c), abs(k))),
                    (None, None) => None,
                    _ => bail!("keys `http.cert` and `http.key` go together: the certificate chain and its private key (PEM)"),
                };
                Ok(Http {
                    address,
                    token_file: h.token_file.as_deref().map(abs),
                    rate_per_minute: h.rate_per_minute,
                    query_timeout: Duration::from_millis(h.query_timeout_ms.max(100)),
                    public_url,
                    trusted_proxies,
                    tls,
                })
            })
            .transpose()?;
        let registration = open::registration(&file, http.is_some())?;
        let oai = open::oai(&file, http.is_some())?;
        let mirror = open::mirror(&file, &abs)?;
        if file.sync.batch_changes == 0 || file.sync.batch_kib == 0 || file.sync.window == 0 {
            bail!("section `[sync]`: batch_changes, batch_kib and window must be at least 1");
        }
        Ok(Config {
            listen,
            parent,
            tls,
            sync: file.sync.clone(),
            index: file.catalogue.index.unwrap_or(file.http.is_some()),
            http,
            registration,
            oai,
            mirror,
            metrics: file
                .metrics
                .as_ref()
                .map(|m| {
                    m.address
                        .parse()
                        .with_context(|| format!("key `metrics.address`: `{}` is not an address like 127.0.0.1:9464", m.address))
                })
                .transpose()?,
            log: match &file.log {
                Some(spec) => {
                    crate::logging::parse_filter(spec).context("key `log`")?;
                    Some(spec.clone())
                }
                None => None,
            },
            node_id: file.node_id,
            data_dir: abs(&file.data_dir),
            regions: std::sync::Arc::new(regions),
            inboxes,
            settle: Duration::from_millis(inbox.settle_ms),
            rescan: Duration::from_secs(inbox.rescan_secs.max(1)),
            max_settle: Duration::from_secs(inbox.max_settle_secs.max(1)),
            max_file_size: inbox.max_file_mib.saturating_mul(1024 * 1024),
            source: source.to_path_buf(),
        })
    }

    /// Validates an example file without touching the paths it names (they belong to
    /// the machine it is meant for).
    pub fn check_example(file: ConfigFile) -> anyhow::Result<Config> {
        Config::from_file(file, Path::new("/"), Path::new("example.toml"))
    }

    /// The QUIC idle timeout (at least 3 s, so keep-alives at a third of it make sense).
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.sync.idle_timeout_secs.max(3))
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(crate::store::DB_FILE)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
