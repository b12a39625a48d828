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
/// with port 0), once all its listeners (QUIC, HTTP, metrics) are bound.
pub const LISTEN_ADDRESS_FILE: &str = "listen-address";

/// The file in `data_dir` where the node writes the address `[metrics]` bound.
pub const METRICS_ADDRESS_FILE: &str = "metrics-address";

/// A started node.
pub struct Running {
    /// The bound QUIC address, when the node listens for children.
    pub listen_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The configuration it runs with (the last one reloaded).
    pub cfg: Arc<Config>,
    /// The store, while the node runs (None when it stopped before opening it).
    pub store: Option<Store>,
    /// Fires once every inbox is watched.
    pub ready: Option<tokio::sync::oneshot::Receiver<()>>,
    /// New identity and configuration for the downlink and uplink (SIGHUP).
    reload: Option<tokio::sync::watch::Sender<crate::net::Reload>>,
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
///
/// One piece: the start-up order (certificates, store, endpoint, then each subsystem) is
/// the point; an error at any step stops the node before it runs.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let cfg = Arc::new(cfg);
    let identity = cfg.tls.as_ref().map(|t| Identity::load(t, &cfg.node_id)).transpose()?;
    if let Some(t) = &cfg.tls {
        check_expiry(&t.cert, &t.ca)?;
    }
    // One daemon per data folder; `recover` and `restore` wait for it to stop.
    let lock = crate::store::lock_data_dir(&cfg.data_dir)?;
    let store = match open_store(&cfg, &shutdown).await? {
        Some(s) => s,
        None => {
            return Ok(Running {
                listen_addr: None,
                shutdown: shutdown.clone(),
                handle: tokio::spawn(async { Ok(()) }),
                cfg,
                store: None,
                ready: None,
                reload: None,
            })
        }
    };
    let idle = cfg.idle_timeout();
    let refused = crate::net::HandshakeRefusals::default();
    let endpoint = match (&identity, &cfg.listen, &cfg.parent) {
        (Some(id), Some(listen), _) => Some(crate::net::server_endpoint(id, id.server_config(idle, &refused)?, listen.address)?),
        (Some(_), None, Some(_)) => Some(crate::net::client_endpoint(false)?),
        _ => None,
    };
    let listen_addr = match (&endpoint, &cfg.listen) {
        (Some(e), Some(_)) => Some(e.local_addr()?),
        _ => None,
    };
    // Online registration: one service for the API, the pages and the admin socket.
    let registration = cfg.registration.as_ref().map(|r| {
        Arc::new(crate::registration::Registration {
            store: store.clone(),
            regions: cfg.regions.clone(),
            node: cfg.node_id.clone(),
            office: r.office.clone(),
            data_dir: cfg.data_dir.clone(),
            reviewer_keys: Default::default(),
            auth: Default::default(),
        })
    });
    let http = match &cfg.http {
        Some(h) => {
            let api = Arc::new(crate::http::Api::new(cfg.clone(), store.clone())?.with_registration(registration.clone()));
            // A missing or broken certificate stops the start, before anything listens.
            let tls = h.tls.as_ref().map(|(cert, key)| crate::http::tls::acceptor(cert, key)).transpose()?;
            let listener = crate::http::bind(h).await?;
            let addr = listener.local_addr()?;
            crate::fsx::write_atomic(&cfg.data_dir.join(crate::http::HTTP_ADDRESS_FILE), addr.to_string().as_bytes())?;
            info!(address = %addr, token = h.token_file.is_some(), https = tls.is_some(), "HTTP API listening");
            Some((api, listener, tls))
        }
        None => None,
    };
    let metrics = match cfg.metrics {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))?;
            let bound = listener.local_addr()?;
            crate::fsx::write_atomic(&cfg.data_dir.join(METRICS_ADDRESS_FILE), bound.to_string().as_bytes())?;
            info!(address = %bound, "metrics listening");
            Some(listener)
        }
        None => None,
    };
    // Written once every listener is bound: whoever waits for this file (a test, a
    // script) may then read `http-address` and `metrics-address` too.
    if let Some(a) = listen_addr {
        crate::fsx::write_atomic(&cfg.data_dir.join(LISTEN_ADDRESS_FILE), a.to_string().as_bytes())?;
    }
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
    tasks.spawn(crate::admin::serve(cfg.data_dir.clone(), cfg.node_id.clone(), registration.clone(), shutdown.child_token()));
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tasks.spawn(crate::inbox::run(cfg.clone(), store.clone(), shutdown.child_token(), ready_tx));
    let mut reload = None;
    if let (Some(e), Some(id)) = (&endpoint, &identity) {
        let (tx, rx) = tokio::sync::watch::channel::<crate::net::Reload>(Arc::new((cfg.clone(), id.clone())));
        if cfg.listen.is_some() {
            tasks.spawn(crate::downlink::run(cfg.clone(), store.clone(), e.clone(), rx.clone(), refused.clone(), shutdown.child_token()));
        }
        if cfg.parent.is_some() {
            tasks.spawn(crate::uplink::run(cfg.clone(), store.clone(), e.clone(), rx, shutdown.child_token()));
        }
        reload = Some(tx);
    }
    if let Some(listener) = metrics {
        tasks.spawn(crate::metrics::serve(cfg.clone(), store.clone(), listener, shutdown.child_token()));
    }
    if let Some((api, listener, tls)) = http {
        tasks.spawn(crate::http::serve(api, listener, tls, shutdown.child_token()));
    }
    if let Some(m) = &cfg.mirror {
        // An unreadable URL file stops the start (a typo should not wait for a page);
        // PostgreSQL being down does not: the mirror retries and `status` says so.
        let opts = crate::mirror::Options { url: m.url()?, schema: m.schema.clone(), view: m.view, once: false };
        let (c, token) = (cfg.clone(), shutdown.child_token());
        info!(schema = %m.schema, view = m.view.as_str(), "PostgreSQL mirror starting");
        tasks.spawn(async move { crate::mirror::run(&c, &opts, token).await });
    }
    let token = shutdown.clone();
    let (kept_store, kept_cfg) = (store.clone(), cfg.clone());
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
    Ok(Running { listen_addr, shutdown, handle, cfg: kept_cfg, store: Some(kept_store), ready: Some(ready), reload })
}

/// An expired node or CA certificate stops the node at start; one expiring within
/// [`crate::pki::EXPIRY_WARNING_DAYS`] is warned about.
fn check_expiry(cert: &std::path::Path, ca: &std::path::Path) -> anyhow::Result<()> {
    for (what, path) in [("node certificate", cert), ("CA certificate", ca)] {
        let days = crate::pki::days_left(crate::pki::expiry_of_file(path)?);
        if days < 0 {
            anyhow::bail!("the {what} {} expired {} day(s) ago; renew it (huijiao pki renew) and start again", path.display(), -days);
        }
        if days < crate::pki::EXPIRY_WARNING_DAYS {
            warn!(certificate = %path.display(), days_left = days, "the {what} expires soon; renew it (huijiao pki renew) and reload");
        }
    }
    Ok(())
}

impl Running {
    /// SIGHUP: reads the configuration again and applies what can change while
    /// connections stay up — certificate, key, CA, CRL, the children allow-list, the
    /// log filter. A configuration that does not load, or changes what needs a restart,
    /// is refused and the running one kept.
    pub fn reload(&mut self, path: &std::path::Path) -> anyhow::Result<()> {
        let new = Config::load(path)?;
        if new.node_id != self.cfg.node_id || new.data_dir != self.cfg.data_dir {
            anyhow::bail!("node_id and data_dir change only with a restart; nothing reloaded");
        }
        let identity = new.tls.as_ref().map(|t| Identity::load(t, &new.node_id)).transpose()?;
        if let Some(t) = &new.tls {
            check_expiry(&t.cert, &t.ca)?;
        }
        if let Some(spec) = &new.log {
            crate::logging::set_filter(spec)?;
        }
        let new = Arc::new(new);
        if let (Some(tx), Some(id)) = (&self.reload, identity) {
            let _ = tx.send(Arc::new((new.clone(), id)));
        }
        self.cfg = new;
        Ok(())
    }
}

/// `huijiao run`: the node under a supervisor. Tells systemd when it is ready, pings
/// its watchdog while the store's writer answers, reloads on SIGHUP, drains on
/// SIGTERM or SIGINT.
pub async fn serve(config_path: std::path::PathBuf, cfg: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let notifier = Arc::new(crate::service::Notifier::from_env());
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut running = start(cfg, shutdown.clone()).await?;
    if let Some(ready) = running.ready.take() {
        let _ = ready.await;
    }
    let store = running.store.clone();
    if let Some(store) = &store {
        notifier.send(&format!("READY=1\nSTATUS={}", status_line(&running.cfg).await));
        info!(node = %running.cfg.node_id, "node ready");
        if let Some(every) = crate::service::watchdog_interval() {
            tokio::spawn(watchdog(store.clone(), running.cfg.clone(), notifier.clone(), every, shutdown.clone()));
        }
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                notifier.send("RELOADING=1");
                match running.reload(&config_path) {
                    Ok(()) => info!(config = %config_path.display(), "configuration reloaded: certificates, CA, CRL, allow-list, log filter"),
                    Err(e) => error!(config = %config_path.display(), "reload refused, the running configuration is kept: {e:#}"),
                }
                notifier.send(&format!("READY=1\nSTATUS={}", status_line(&running.cfg).await));
            }
            _ = shutdown.cancelled() => break,
        }
    }
    info!("shutting down");
    notifier.send("STOPPING=1\nSTATUS=draining");
    shutdown.cancel();
    running.handle.await?
}

/// One line for `systemctl status`: what the node holds and how its links are.
async fn status_line(cfg: &Arc<Config>) -> String {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let r = crate::store::Reader::open(&cfg.db_path())?;
        let s = r.status()?;
        let children = r.children()?;
        let live = children.iter().filter(|c| c.session_open).count();
        let mut line = format!("{} records", s.records);
        if !children.is_empty() {
            line.push_str(&format!(", {live} of {} children connected", children.len()));
        }
        if let Some(u) = r.uplink()? {
            line.push_str(&format!(", uplink {} ({} changes unsent)", u.state, (s.last_seq - u.acked).max(0)));
        }
        Ok(line)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_else(|| "running".into())
}

/// Pings systemd's watchdog every `every` while a job on the store's writer comes back
/// within that time: a wedged writer (or runtime) stops the pings and systemd restarts
/// the node. `HUIJIAO_TEST_WEDGE_FILE` (tests only) wedges the writer while that file
/// exists.
async fn watchdog(store: Store, cfg: Arc<Config>, notifier: Arc<crate::service::Notifier>, every: Duration, stop: CancellationToken) {
    let wedge = std::env::var_os("HUIJIAO_TEST_WEDGE_FILE").map(std::path::PathBuf::from);
    let mut tick = tokio::time::interval(every);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let wedge = wedge.clone();
        let probe = store.call(move |w| {
            if let Some(f) = wedge {
                while f.exists() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            w.node_id().len()
        });
        match tokio::time::timeout(every, probe).await {
            Ok(Ok(_)) => {
                n += 1;
                // The status line every tenth ping (it reads the store).
                if n % 10 == 1 {
                    notifier.send(&format!("WATCHDOG=1\nSTATUS={}", status_line(&cfg).await));
                } else {
                    notifier.send("WATCHDOG=1");
                }
            }
            _ => warn!("the store's writer did not answer within {every:?}; not pinging the watchdog"),
        }
    }
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
                let free = crate::fsx::free_bytes(&cfg.data_dir);
                if free.is_none_or(|f| f >= 1024 * 1024) {
                    return Err(e.into());
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
