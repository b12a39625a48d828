//! The daemon: opens the store and runs every subsystem until shutdown.

use crate::config::Config;
use crate::net::Identity;
use crate::store::Store;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The file in `data_dir` where a listening node writes the address it bound (useful
/// with port 0).
pub const LISTEN_ADDRESS_FILE: &str = "listen-address";

/// A started node.
pub struct Running {
    /// The bound QUIC address, when the node listens for children.
    pub listen_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the node and waits for it to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await?
    }
}

/// Runs the node until `shutdown` is cancelled or a subsystem fails.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let running = start(cfg, shutdown).await?;
    running.handle.await?
}

/// Starts the node: checks certificates, opens the store, binds the endpoint, and
/// spawns the inbox, the downlink (children) and the uplink (parent). Errors that
/// would stop the node (a bad key, a taken port) come back here, before it runs.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let cfg = Arc::new(cfg);
    let identity = cfg.tls.as_ref().map(|t| Identity::load(t, &cfg.node_id)).transpose()?;
    // One daemon per data folder; `recover` and `restore` wait for it to stop.
    let lock = crate::store::lock_data_dir(&cfg.data_dir)?;
    let store = match open_store(&cfg, &shutdown).await? {
        Some(s) => s,
        None => return Ok(Running { listen_addr: None, shutdown: shutdown.clone(), handle: tokio::spawn(async { Ok(()) }) }),
    };
    let idle = cfg.idle_timeout();
    let refused = crate::net::HandshakeRefusals::default();
    let endpoint = match (&identity, &cfg.listen, &cfg.parent) {
        (Some(id), Some(listen), _) => Some(
            quinn::Endpoint::server(id.server_config(idle, &refused)?, listen.address)
                .with_context(|| format!("cannot listen on {}", listen.address))?,
        ),
        (Some(_), None, Some(_)) => Some(crate::net::client_endpoint(false)?),
        _ => None,
    };
    let listen_addr = match (&endpoint, &cfg.listen) {
        (Some(e), Some(_)) => Some(e.local_addr()?),
        _ => None,
    };
    if let Some(a) = listen_addr {
        std::fs::write(cfg.data_dir.join(LISTEN_ADDRESS_FILE), a.to_string())?;
    }
    let http = match &cfg.http {
        Some(h) => {
            let api = Arc::new(crate::http::Api::new(cfg.clone())?);
            let listener = crate::http::bind(h).await?;
            let addr = listener.local_addr()?;
            std::fs::write(cfg.data_dir.join(crate::http::HTTP_ADDRESS_FILE), addr.to_string())?;
            info!(address = %addr, token = h.token_file.is_some(), "HTTP API listening");
            Some((api, listener))
        }
        None => None,
    };
    // The catalogue follows the store on a thread of its own, woken by its commits.
    let indexer = if cfg.index {
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = crate::store::catalogue::spawn_indexer(&cfg.data_dir, woken)?;
        let mut commits = store.subscribe();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    changed = commits.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let _ = wake.try_send(());
                    }
                }
            }
            // Dropping `wake` stops the indexer.
        });
        Some(thread)
    } else {
        None
    };
    info!(node = %cfg.node_id, store = %cfg.db_path().display(), inboxes = cfg.inboxes.len(), listen = ?listen_addr, parent = ?cfg.parent.as_ref().map(|p| &p.node_id), "node starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(crate::inbox::run(cfg.clone(), store.clone(), shutdown.child_token()));
    if let (Some(e), Some(id)) = (&endpoint, &identity) {
        if cfg.listen.is_some() {
            tasks.spawn(crate::downlink::run(cfg.clone(), store.clone(), e.clone(), id.clone(), refused.clone(), shutdown.child_token()));
        }
        if cfg.parent.is_some() {
            tasks.spawn(crate::uplink::run(cfg.clone(), store.clone(), e.clone(), id.clone(), shutdown.child_token()));
        }
    }
    if let Some((api, listener)) = http {
        tasks.spawn(crate::http::serve(api, listener, shutdown.child_token()));
    }
    let token = shutdown.clone();
    let handle = tokio::spawn(async move {
        let result = supervise(&mut tasks, &token).await;
        // Drain in order: the subsystems stop (the inbox finishes its file, sessions
        // close with a reason), the endpoint flushes its close frames, the store closes.
        token.cancel();
        while tasks.join_next().await.is_some() {}
        if let Some(e) = endpoint {
            e.close(crate::net::CLOSE_DONE.into(), b"node shutting down");
            if tokio::time::timeout(Duration::from_secs(3), e.wait_idle()).await.is_err() {
                warn!("connections did not close within 3 s");
            }
        }
        if let Some(t) = indexer {
            // The forwarder saw the cancellation and dropped its sender.
            tokio::task::spawn_blocking(move || t.join()).await?.map_err(|_| anyhow::anyhow!("the catalogue indexer panicked"))?;
        }
        tokio::task::spawn_blocking(move || drop(store)).await?;
        drop(lock);
        info!(node = %cfg.node_id, "node stopped");
        result
    });
    Ok(Running { listen_addr, shutdown, handle })
}

/// Bytes free on the file system holding `p`.
pub fn free_bytes(p: &std::path::Path) -> Option<u64> {
    let probe = p.ancestors().find(|a| a.exists())?;
    rustix::fs::statvfs(probe).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Opens the store; on a full disk, says so once and waits for space (a full disk
/// is a state, not a reason to exit). None when shut down while waiting.
async fn open_store(cfg: &Config, shutdown: &CancellationToken) -> anyhow::Result<Option<Store>> {
    let mut said = false;
    loop {
        match Store::open(&cfg.db_path(), &cfg.node_id) {
            Ok(s) => {
                if said {
                    info!(store = %cfg.db_path().display(), "disk space is back; the store is open");
                }
                return Ok(Some(s));
            }
            Err(e) => {
                let free = free_bytes(&cfg.data_dir);
                if free.is_none_or(|f| f >= 1024 * 1024) {
                    return Err(e);
                }
                if !said {
                    error!(
                        store = %cfg.db_path().display(),
                        free_bytes = free.unwrap_or(0),
                        "cannot open the store: no space left on device; waiting for space ({e:#})"
                    );
                    said = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}

async fn supervise(tasks: &mut JoinSet<anyhow::Result<()>>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            done = tasks.join_next() => match done {
                None => return Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    error!("subsystem failed: {e:#}");
                    return Err(e);
                }
                Some(Err(e)) => {
                    error!("subsystem panicked: {e}");
                    return Err(anyhow::anyhow!("subsystem panicked: {e}"));
                }
            },
        }
    }
}
