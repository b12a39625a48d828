//! Nodes of a federation on one machine, the one way the demo and the test federation
//! lay them out: a folder per node (`inbox/`, `tls/`, `data/`, `node.toml`,
//! `node.log`), the config written for it, and the `huijiao run` process started,
//! waited for and stopped.
//!
//! This crate does not link the daemon, so the few names of files a running node
//! writes are repeated here; `node/cli/tests/tidy.rs` checks they are the daemon's.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The file under `data/` where a listening node writes its QUIC address
/// (`huijiao::daemon::LISTEN_ADDRESS_FILE`).
pub const LISTEN_ADDRESS_FILE: &str = "listen-address";
/// The file under `data/` where a node with `[http]` writes its HTTP address
/// (`huijiao::http::HTTP_ADDRESS_FILE`).
pub const HTTP_ADDRESS_FILE: &str = "http-address";
/// The store's file under `data/` (`huijiao::store::DB_FILE`).
pub const DB_FILE: &str = "huijiao.db";
/// The operator token file of a node with `[http]`, beside its config.
pub const TOKEN_FILE: &str = "api-token";

/// Where one node's files are.
#[derive(Debug, Clone)]
pub struct NodeDir(pub PathBuf);

impl NodeDir {
    /// `root/node-ID`.
    pub fn new(root: &Path, id: &str) -> NodeDir {
        NodeDir(root.join(format!("node-{id}")))
    }
    pub fn inbox(&self) -> PathBuf {
        self.0.join("inbox")
    }
    pub fn tls(&self) -> PathBuf {
        self.0.join("tls")
    }
    pub fn config(&self) -> PathBuf {
        self.0.join("node.toml")
    }
    pub fn log(&self) -> PathBuf {
        self.0.join("node.log")
    }
    pub fn db(&self) -> PathBuf {
        self.0.join("data").join(DB_FILE)
    }
    pub fn listen_address_file(&self) -> PathBuf {
        self.0.join("data").join(LISTEN_ADDRESS_FILE)
    }
    pub fn http_address_file(&self) -> PathBuf {
        self.0.join("data").join(HTTP_ADDRESS_FILE)
    }
    /// The address the node listens on, once it has written it.
    pub fn listen_address(&self) -> Option<String> {
        std::fs::read_to_string(self.listen_address_file()).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }
    /// Its HTTP address, once it has written it.
    pub fn http_address(&self) -> Option<String> {
        std::fs::read_to_string(self.http_address_file()).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }
}

/// What goes into one node's `node.toml`.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: String,
    /// The CA folder (`ca.crt`, `crl.pem`).
    pub ca: PathBuf,
    /// `[listen] address`: None for a node with no children (a county).
    pub listen: Option<String>,
    /// `[listen] children`, the allow-list, when set.
    pub children: Option<Vec<String>>,
    /// `[parent]`: (node id, address).
    pub parent: Option<(String, String)>,
    /// `[http]` on a loopback port with the token in [`TOKEN_FILE`].
    pub http: bool,
    /// `standalone = true`: the top of a federation below the national node.
    pub standalone: bool,
    pub settle_ms: u64,
    pub rescan_secs: Option<u64>,
    /// More TOML appended as is (e.g. a `[sync]` section).
    pub extra: String,
}

impl NodeConfig {
    /// A node with the defaults both the demo and the tests start from.
    pub fn new(node_id: &str, ca: &Path) -> NodeConfig {
        NodeConfig {
            node_id: node_id.into(),
            ca: ca.into(),
            listen: None,
            children: None,
            parent: None,
            http: false,
            standalone: false,
            settle_ms: 300,
            rescan_secs: None,
            extra: String::new(),
        }
    }

    /// The config text; paths are relative to the node's folder except the CA's.
    pub fn toml(&self) -> String {
        let id = &self.node_id;
        let mut t = format!("node_id = \"{id}\"\ndata_dir = \"data\"\n");
        if self.standalone {
            t.push_str("standalone = true\n");
        }
        t.push_str(&format!("\n[inbox]\npaths = [\"inbox\"]\nsettle_ms = {}\n", self.settle_ms));
        if let Some(s) = self.rescan_secs {
            t.push_str(&format!("rescan_secs = {s}\n"));
        }
        t.push_str(&format!(
            "\n[tls]\nca = \"{ca}\"\ncert = \"tls/{id}.crt\"\nkey = \"tls/{id}.key\"\ncrl = \"{crl}\"\n\n",
            ca = self.ca.join("ca.crt").display(),
            crl = self.ca.join("crl.pem").display()
        ));
        if let Some(addr) = &self.listen {
            t.push_str(&format!("[listen]\naddress = \"{addr}\"\n"));
            if let Some(list) = &self.children {
                t.push_str(&format!("children = {list:?}\n"));
            }
            t.push('\n');
        }
        if self.http {
            t.push_str(&format!("[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"{TOKEN_FILE}\"\n\n"));
        }
        if let Some((p, a)) = &self.parent {
            t.push_str(&format!("[parent]\naddress = \"{a}\"\nnode_id = \"{p}\"\n\n"));
        }
        t.push_str(&self.extra);
        t
    }
}

/// Starts `bin run --config node.toml` for the node in `dir`, its log appended to
/// `node.log`, with `env` added (e.g. a skewed clock).
pub fn spawn(bin: &Path, dir: &NodeDir, env: &[(String, String)]) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log())
        .with_context(|| format!("cannot open {}", dir.log().display()))?;
    Command::new(bin)
        .args(["run", "--config"])
        .arg(dir.config())
        .env("HUIJIAO_LOG", "info")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

/// Whether the node in `dir` has written its listen address yet, failing when its
/// process exited or `deadline` passed (the error quotes the end of its log).
pub fn poll_listening(dir: &NodeDir, child: &mut Child, deadline: Instant) -> anyhow::Result<Option<String>> {
    if let Some(a) = dir.listen_address() {
        return Ok(Some(a));
    }
    let why = match child.try_wait() {
        Ok(Some(status)) => format!("exited ({status})"),
        _ if Instant::now() > deadline => "did not start listening in time".to_string(),
        _ => return Ok(None),
    };
    let log = std::fs::read_to_string(dir.log()).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    anyhow::bail!("node in {} {why}; the end of {}:\n{}", dir.0.display(), dir.log().display(), tail.join("\n"))
}

/// Sends SIGTERM, the signal systemd uses to stop a node cleanly (through kill(1):
/// no `unsafe` for a signal).
pub fn terminate(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

/// SIGTERM, then waits for the exit; SIGKILL after `grace`. The exit status when the
/// node stopped by itself.
pub fn stop(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    terminate(child.id());
    wait_or_kill(child, grace)
}

/// Waits for a node told to stop; SIGKILL after `grace`. The exit status when it
/// stopped by itself.
pub fn wait_or_kill(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Err(_) => return None,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Writes `bytes` readable by its owner only, as the daemon requires of a token.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// A fresh random operator token (from the kernel's random source).
pub fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).context("cannot read /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Drops a file the way an office tool does: written under a hidden temporary name,
/// then renamed into the inbox.
pub fn drop_file(inbox: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = inbox.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    let to = inbox.join(name);
    std::fs::rename(&tmp, &to).with_context(|| format!("cannot rename {} to {}", tmp.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_county_has_no_listener_and_a_prefecture_names_its_parent() {
        let mut c = NodeConfig::new("420102", Path::new("/ca"));
        c.parent = Some(("420100".into(), "127.0.0.1:4000".into()));
        let t = c.toml();
        assert!(!t.contains("[listen]") && t.contains("[parent]\naddress = \"127.0.0.1:4000\"\nnode_id = \"420100\""), "{t}");
        let mut p = NodeConfig::new("420100", Path::new("/ca"));
        p.listen = Some("127.0.0.1:0".into());
        p.children = Some(vec!["420102".into()]);
        p.http = true;
        let t = p.toml();
        assert!(t.contains("children = [\"420102\"]") && t.contains("token_file = \"api-token\""), "{t}");
    }
}
