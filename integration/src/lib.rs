//! Running real huijiao nodes together: an in-process federation on loopback with a
//! freshly generated CA, a raw protocol client for hostile-peer tests, and helpers to
//! wait on conditions with deadlines.
//!
//! Layout:
//! - [`Federation`]: nodes started with `huijiao::daemon::start`, each with its own
//!   folder, config file, store and QUIC endpoint.
//! - [`RawClient`]: speaks the wire protocol directly, to send what a well-behaved
//!   node never would.

use anyhow::Context;
use huijiao::config::Config;
use huijiao::daemon::Running;
use huijiao::store::{Filter, Reader, StoredRecord};
use huijiao_protocol::wire::{self, Message};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

/// One node of a test federation.
pub struct TestNode {
    pub id: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub parent: Option<String>,
    pub listen: Option<SocketAddr>,
    running: Option<Running>,
}

impl TestNode {
    pub fn inbox(&self) -> PathBuf {
        self.dir.join("inbox")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("data").join(huijiao::store::DB_FILE)
    }

    pub fn reader(&self) -> anyhow::Result<Reader> {
        Reader::open(&self.db())
    }

    /// All records, by reg_no (empty before the store exists).
    pub fn records(&self) -> BTreeMap<String, StoredRecord> {
        let Ok(r) = self.reader() else { return BTreeMap::new() };
        r.query(&Filter::default()).unwrap_or_default().into_iter().map(|s| (s.record.reg_no.clone(), s)).collect()
    }

    pub fn record_count(&self) -> i64 {
        self.reader().and_then(|r| r.record_count()).unwrap_or(0)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Drops a file the way an office tool does: a temporary name, then a rename.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let tmp = self.inbox().join(format!("{name}.part"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.inbox().join(name))?;
        Ok(())
    }
}

/// A federation of in-process nodes sharing one fresh CA.
pub struct Federation {
    pub root: tempfile::TempDir,
    pub ca: PathBuf,
    pub nodes: BTreeMap<String, TestNode>,
    /// Extra TOML appended to every config (e.g. a faster settle time).
    pub extra_toml: String,
    /// Child allow-lists (`[listen] children`) by node.
    pub allow: BTreeMap<String, Vec<String>>,
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
        })
    }

    /// Adds a node (not started). Every node listens on a loopback port except
    /// county-level ones, which have no children.
    pub fn add(&mut self, id: &str, parent: Option<&str>) -> anyhow::Result<()> {
        let dir = self.root.path().join(format!("node-{id}"));
        std::fs::create_dir_all(dir.join("inbox"))?;
        huijiao::pki::issue(&self.ca, id, &dir.join("tls"), 30)?;
        self.nodes.insert(
            id.to_string(),
            TestNode {
                id: id.into(),
                config_path: dir.join("node.toml"),
                dir,
                parent: parent.map(str::to_string),
                listen: None,
                running: None,
            },
        );
        Ok(())
    }

    /// The config text of a node, with its parent's current address.
    pub fn config_text(&self, id: &str) -> anyhow::Result<String> {
        let n = &self.nodes[id];
        let level = huijiao_protocol::regions::node_level(id);
        let mut t = format!(
            "node_id = \"{id}\"\ndata_dir = \"data\"\n\n[inbox]\npaths = [\"inbox\"]\nsettle_ms = 100\nrescan_secs = 2\n\n[tls]\nca = \"{ca}\"\ncert = \"tls/{id}.crt\"\nkey = \"tls/{id}.key\"\ncrl = \"{crl}\"\n\n",
            ca = self.ca.join("ca.crt").display(),
            crl = self.ca.join("crl.pem").display(),
        );
        if level != huijiao_protocol::regions::Level::County {
            let addr = n.listen.map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
            t.push_str(&format!("[listen]\naddress = \"{addr}\"\n"));
            if let Some(list) = self.allow.get(id) {
                t.push_str(&format!("children = {list:?}\n"));
            }
            t.push('\n');
        }
        if let Some(p) = &n.parent {
            let addr = self.nodes[p].listen.with_context(|| format!("parent {p} of {id} has not started"))?;
            t.push_str(&format!("[parent]\naddress = \"{addr}\"\nnode_id = \"{p}\"\n\n"));
        }
        t.push_str(&self.extra_toml);
        Ok(t)
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
        let cfg = Config::load(&n.config_path)?;
        let running = huijiao::daemon::start(cfg, CancellationToken::new()).await?;
        if n.listen.is_none() {
            n.listen = running.listen_addr;
        }
        n.running = Some(running);
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

    /// A clean stop: the node drains and closes its connections.
    pub async fn stop(&mut self, id: &str) -> anyhow::Result<()> {
        if let Some(r) = self.nodes.get_mut(id).and_then(|n| n.running.take()) {
            r.stop().await?;
        }
        Ok(())
    }

    /// An abrupt stop: tasks are aborted where they stand, as in a crash of the
    /// process (committed data stays; nothing else is flushed).
    pub async fn crash(&mut self, id: &str) {
        if let Some(r) = self.nodes.get_mut(id).and_then(|n| n.running.take()) {
            r.handle.abort();
            r.shutdown.cancel();
            let _ = r.handle.await;
        }
    }

    pub fn node(&self, id: &str) -> &TestNode {
        &self.nodes[id]
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
