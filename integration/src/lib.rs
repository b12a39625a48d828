//! Running real huijiao nodes together: an in-process federation on loopback with a
//! freshly generated CA, a raw protocol client for hostile-peer tests, and helpers to
//! wait on conditions with deadlines.
//!
//! Layout:
//! - [`Federation`]: nodes, each with its own folder, config file, store and QUIC
//!   endpoint, run either in this process (`huijiao::daemon::start`) or as real
//!   processes of the `huijiao` binary ([`huijiao_bin`]) that can be SIGKILLed. Folders,
//!   configs and processes are laid out by `huijiao_kit::fleet`, as the demo's are.
//! - [`faults::Proxy`]: a UDP proxy that drops, delays, duplicates and reorders
//!   datagrams and partitions a link, driven by a seed.
//! - [`workload::Workload`]: seeded submissions (new records, updates, withdrawals).
//! - [`RawClient`]: speaks the wire protocol directly, to send what a well-behaved
//!   node never would.
//! - The audit itself (lost, stale, duplicated) is `huijiao_kit::audit`, shared with the
//!   demo; [`Federation::audit`] runs it on the nodes' stores.

pub mod bench;
pub mod bench_catalogue;
pub mod bench_mirror;
pub mod faults;
pub mod scenarios;
pub mod webdriver;
pub mod workload;

use anyhow::Context;
use huijiao::config::Config;
use huijiao::daemon::Running;
use huijiao::store::{Filter, Reader, StoredRecord};
use huijiao_kit::audit::{Audit, Holdings};
use huijiao_kit::fleet::{self, NodeConfig, NodeDir};
use huijiao_protocol::wire::{self, Message};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The real `huijiao` binary, for tests and tools that run nodes as processes: the
/// one `cargo test --workspace` (or `cargo build`) built beside this program, in
/// `target/<profile>/`. `HUIJIAO_BIN` names another. When it is missing, or older
/// than a source file of the daemon (this package alone was built), it is built first
/// with `cargo build -p huijiao` for the same profile, so a test never runs a stale node.
pub fn huijiao_bin() -> anyhow::Result<PathBuf> {
    static BIN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| find_or_build_bin().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn find_or_build_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("HUIJIAO_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot find this program")?;
    // target/<profile>/deps/test-HASH or target/<profile>/bench
    let mut dir = exe.parent().context("this program has no folder")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("huijiao");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("no workspace")?.to_path_buf();
    let newest_source =
        ["node/src", "node/Cargo.toml", "node/cli/src", "node/cli/Cargo.toml", "protocol/src", "integration/kit/src", "Cargo.lock"]
            .iter()
            .filter_map(|p| newest_mtime(&workspace.join(p)))
            .max();
    let fresh = matches!((built, newest_source), (Some(b), Some(s)) if b >= s) || (built.is_some() && newest_source.is_none());
    if !fresh {
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
        let target = dir.parent().context("no target folder")?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building the huijiao binary ({profile}) for this run: it is missing or older than its sources");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "huijiao", "--bin", "huijiao"]).current_dir(&workspace).env("CARGO_TARGET_DIR", target);
        if profile != "debug" {
            cmd.args(["--profile", if profile == "release" { "release" } else { &profile }]);
        }
        let status = cmd.status().context("cannot run cargo")?;
        anyhow::ensure!(status.success() && bin.exists(), "cargo build -p huijiao failed ({status}); build it by hand or set HUIJIAO_BIN");
    }
    Ok(bin)
}

/// The newest modification time of a file or of any file under a folder.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.flatten().filter_map(|e| newest_mtime(&e.path())).max()
}

/// Waits until `cond` holds, polling; fails after `limit` with `what`.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

/// How a node runs.
enum Runner {
    InProcess(Running),
    Process(std::process::Child),
}

/// One node of a test federation.
pub struct TestNode {
    pub id: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub parent: Option<String>,
    pub listen: Option<SocketAddr>,
    /// Environment for a process node (e.g. a skewed clock).
    pub env: Vec<(String, String)>,
    running: Option<Runner>,
}

impl TestNode {
    /// The node's folder as the kit lays it out.
    pub fn files(&self) -> NodeDir {
        NodeDir(self.dir.clone())
    }

    pub fn inbox(&self) -> PathBuf {
        self.files().inbox()
    }

    pub fn db(&self) -> PathBuf {
        self.files().db()
    }

    /// What the node holds, for an audit.
    pub fn holdings(&self) -> anyhow::Result<Holdings> {
        let r = self.reader()?;
        Ok(Holdings { records: r.record_states()?, duplicated: r.duplicate_changes()? })
    }

    pub fn reader(&self) -> anyhow::Result<Reader> {
        Ok(Reader::open(&self.db())?)
    }

    /// All records, by reg_no (empty before the store exists).
    pub fn records(&self) -> BTreeMap<String, StoredRecord> {
        let Ok(r) = self.reader() else { return BTreeMap::new() };
        r.query(&Filter::default()).unwrap_or_default().into_iter().map(|s| (s.record.reg_no.clone(), s)).collect()
    }

    pub fn record_count(&self) -> i64 {
        self.reader().ok().and_then(|r| r.record_count().ok()).unwrap_or(0)
    }

    /// The process id of a node run as a process.
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Some(Runner::Process(c)) => Some(c.id()),
            _ => None,
        }
    }

    /// Drops a file the way an office tool does: a temporary name, then a rename.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        fleet::drop_file(&self.inbox(), name, bytes)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(Runner::Process(c)) = &mut self.running {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A federation of nodes sharing one fresh CA.
pub struct Federation {
    pub root: tempfile::TempDir,
    pub ca: PathBuf,
    pub nodes: BTreeMap<String, TestNode>,
    /// Extra TOML appended to every config (e.g. a faster settle time).
    pub extra_toml: String,
    /// Child allow-lists (`[listen] children`) by node.
    pub allow: BTreeMap<String, Vec<String>>,
    /// Where a child reaches its parent, when not directly (a fault proxy).
    pub parent_addr: BTreeMap<String, SocketAddr>,
    /// Run nodes as processes of this binary (the real `huijiao`) instead of in-process.
    pub bin: Option<PathBuf>,
}

impl Federation {
    pub fn new() -> anyhow::Result<Federation> {
        let root = tempfile::tempdir()?;
        let ca = root.path().join("ca");
        huijiao::pki::init(&ca)?;
        Ok(Federation {
            root,
            ca,
            nodes: BTreeMap::new(),
            extra_toml: "[sync]\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n".into(),
            allow: BTreeMap::new(),
            parent_addr: BTreeMap::new(),
            bin: None,
        })
    }

    /// A federation whose nodes are real processes of the `huijiao` binary.
    pub fn with_processes() -> anyhow::Result<Federation> {
        let mut f = Federation::new()?;
        f.bin = Some(huijiao_bin()?);
        Ok(f)
    }

    /// Adds a node (not started). Every node listens on a loopback port except
    /// county-level ones, which have no children.
    pub fn add(&mut self, id: &str, parent: Option<&str>) -> anyhow::Result<()> {
        let dir = NodeDir::new(self.root.path(), id);
        std::fs::create_dir_all(dir.inbox())?;
        huijiao::pki::issue(&self.ca, id, &dir.tls(), 30)?;
        self.nodes.insert(
            id.to_string(),
            TestNode {
                id: id.into(),
                config_path: dir.config(),
                dir: dir.0,
                parent: parent.map(str::to_string),
                listen: None,
                env: Vec::new(),
                running: None,
            },
        );
        Ok(())
    }

    /// The config text of a node, with its parent's current address.
    pub fn config_text(&self, id: &str) -> anyhow::Result<String> {
        let n = &self.nodes[id];
        let mut c = NodeConfig::new(id, &self.ca);
        // The top of a test federation below the national node stands alone on purpose.
        c.standalone = n.parent.is_none() && id != huijiao_protocol::regions::NATIONAL;
        c.settle_ms = 100;
        c.rescan_secs = Some(2);
        if huijiao_protocol::regions::node_level(id) != huijiao_protocol::regions::Level::County {
            c.listen = Some(n.listen.map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string()));
            c.children = self.allow.get(id).cloned();
        }
        if let Some(p) = &n.parent {
            let addr = match self.parent_addr.get(id) {
                Some(a) => *a,
                None => self.nodes[p].listen.with_context(|| format!("parent {p} of {id} has not started"))?,
            };
            c.parent = Some((p.clone(), addr.to_string()));
        }
        c.extra = self.extra_toml.clone();
        Ok(c.toml())
    }

    /// Starts a node (its parent must have started once, to have an address).
    pub async fn start(&mut self, id: &str) -> anyhow::Result<()> {
        self.start_with(id, |_| {}).await
    }

    /// Starts a node after `edit` may change its config text.
    pub async fn start_with(&mut self, id: &str, edit: impl FnOnce(&mut String)) -> anyhow::Result<()> {
        let mut text = self.config_text(id)?;
        edit(&mut text);
        let n = self.nodes.get_mut(id).context("no such node")?;
        std::fs::write(&n.config_path, text)?;
        match &self.bin {
            None => {
                // A node restarted on its old address after a crash may find the port
                // still held while the old endpoint drains its connections: retry for
                // a while, as systemd's Restart= would.
                let deadline = Instant::now() + Duration::from_secs(10);
                let running = loop {
                    let cfg = Config::load(&n.config_path)?;
                    match huijiao::daemon::start(cfg, CancellationToken::new()).await {
                        Ok(r) => break r,
                        Err(e) if Instant::now() < deadline && format!("{e:#}").contains("Address already in use") => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                if n.listen.is_none() {
                    n.listen = running.listen_addr;
                }
                n.running = Some(Runner::InProcess(running));
            }
            Some(bin) => {
                let files = n.files();
                let _ = std::fs::remove_file(files.listen_address_file());
                let mut child = fleet::spawn(bin, &files, &n.env)?;
                if huijiao_protocol::regions::node_level(id) != huijiao_protocol::regions::Level::County {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let addr = loop {
                        match fleet::poll_listening(&files, &mut child, deadline) {
                            Ok(Some(a)) => break a,
                            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                            Err(e) => {
                                let _ = child.kill();
                                let _ = child.wait();
                                return Err(e.context(format!("node {id}")));
                            }
                        }
                    };
                    if n.listen.is_none() {
                        n.listen = Some(addr.parse()?);
                    }
                }
                n.running = Some(Runner::Process(child));
            }
        }
        Ok(())
    }

    /// Starts every node, parents first.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        let mut ids: Vec<String> = self.nodes.keys().cloned().collect();
        ids.sort_by_key(|id| huijiao_protocol::regions::node_level(id));
        for id in ids {
            self.start(&id).await?;
        }
        Ok(())
    }

    /// A clean stop (SIGTERM for a process): the node drains and closes its connections.
    pub async fn stop(&mut self, id: &str) -> anyhow::Result<()> {
        match self.nodes.get_mut(id).and_then(|n| n.running.take()) {
            Some(Runner::InProcess(r)) => r.stop().await?,
            Some(Runner::Process(mut c)) => {
                fleet::terminate(c.id());
                let status = tokio::task::spawn_blocking(move || c.wait()).await??;
                anyhow::ensure!(status.success(), "node {id} exited with {status} on SIGTERM");
            }
            None => {}
        }
        Ok(())
    }

    /// An abrupt stop: SIGKILL for a process; for an in-process node its tasks are
    /// aborted where they stand (committed data stays; nothing else is flushed).
    pub async fn crash(&mut self, id: &str) {
        match self.nodes.get_mut(id).and_then(|n| n.running.take()) {
            Some(Runner::InProcess(r)) => {
                r.handle.abort();
                r.shutdown.cancel();
                let _ = r.handle.await;
            }
            Some(Runner::Process(mut c)) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            None => {}
        }
    }

    /// Audits `top` against every county-level node (their own records).
    pub fn audit(&self, top: &str) -> anyhow::Result<Audit> {
        let held: Vec<(String, Holdings)> = self
            .nodes
            .values()
            .filter(|n| huijiao_protocol::regions::node_level(&n.id) == huijiao_protocol::regions::Level::County)
            .map(|n| Ok((n.id.clone(), n.holdings()?)))
            .collect::<anyhow::Result<_>>()?;
        let origins: Vec<(&str, &Holdings)> = held.iter().map(|(id, h)| (id.as_str(), h)).collect();
        Ok(huijiao_kit::audit::audit(&origins, &self.nodes[top].holdings()?))
    }

    /// Waits until the audit of `top` passes with at least `min` records; on timeout
    /// fails with the last audit.
    pub async fn converge(&self, top: &str, min: usize, limit: Duration) -> anyhow::Result<Audit> {
        let deadline = Instant::now() + limit;
        loop {
            let a = self.audit(top);
            if let Ok(a) = &a {
                if a.ok() && a.expected >= min {
                    return Ok(a.clone());
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!("no convergence at {top} within {limit:?}: {}", a.map(|a| a.summary()).unwrap_or_else(|e| format!("{e:#}")));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Whether every inbox is empty (every dropped file handled).
    pub fn inboxes_empty(&self) -> bool {
        self.nodes.values().all(|n| {
            std::fs::read_dir(n.inbox()).map(|d| d.flatten().all(|e| e.file_name().to_string_lossy().starts_with('.'))).unwrap_or(true)
        })
    }

    pub fn node(&self, id: &str) -> &TestNode {
        &self.nodes[id]
    }

    pub fn pid(&self, id: &str) -> Option<u32> {
        self.nodes.get(id).and_then(TestNode::pid)
    }

    pub async fn stop_all(&mut self) -> anyhow::Result<()> {
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            self.stop(&id).await?;
        }
        Ok(())
    }

    /// The ancestors of a node in this federation, nearest first.
    pub fn ancestors(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = self.nodes[id].parent.clone();
        while let Some(p) = cur {
            cur = self.nodes[&p].parent.clone();
            out.push(p);
        }
        out
    }
}

/// A hand-driven protocol client with a real certificate, for hostile-peer tests.
pub struct RawClient {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
}

impl RawClient {
    /// Connects to `addr` as the holder of `cert`/`key`, expecting parent `parent_id`.
    pub async fn connect(
        ca: &Path,
        cert: &Path,
        key: &Path,
        node_id: &str,
        addr: SocketAddr,
        parent_id: &str,
    ) -> anyhow::Result<RawClient> {
        let paths = huijiao::config::TlsPaths { ca: ca.join("ca.crt"), cert: cert.into(), key: key.into(), crl: ca.join("crl.pem") };
        let identity = huijiao::net::Identity::load(&paths, node_id)?;
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        endpoint.set_default_client_config(identity.client_config(Duration::from_secs(10))?);
        let conn = endpoint.connect(addr, &huijiao::pki::node_dns_name(parent_id))?.await?;
        let (send, recv) = conn.open_bi().await?;
        Ok(RawClient { endpoint, conn, send, recv })
    }

    pub async fn send(&mut self, msg: &Message) -> anyhow::Result<()> {
        self.send.write_all(&wire::encode_frame(msg)).await?;
        Ok(())
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.send.write_all(bytes).await?;
        Ok(())
    }

    /// The next message, or an error when the stream ends or breaks.
    pub async fn recv(&mut self) -> anyhow::Result<Message> {
        let body = tokio::time::timeout(Duration::from_secs(20), huijiao::net::read_frame(&mut self.recv))
            .await
            .context("no answer within 20 s")??
            .context("the stream ended")?;
        Ok(wire::decode_message(&body)?)
    }

    pub fn hello(node_id: &str, min: u16, max: u16) -> Message {
        Message::Hello(wire::Hello {
            magic: wire::MAGIC,
            min_version: min,
            max_version: max,
            node_id: node_id.into(),
            features: 0,
            agent: "raw test client".into(),
        })
    }
}

/// A plain HTTP GET on loopback (`Connection: close`); the body as text.
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP header")?;
    Ok(String::from_utf8_lossy(&raw[end + 4..]).into_owned())
}

/// An HTTP request with a JSON body on loopback (`Connection: close`): the status and
/// the body as JSON (null when it is not JSON).
pub fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let text = body.to_string();
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP header")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status: u16 = head.split(' ').nth(1).context("no status")?.parse()?;
    Ok((status, serde_json::from_slice(&raw[end + 4..]).unwrap_or(serde_json::Value::Null)))
}
