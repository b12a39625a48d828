//! The daemon: opens the store and runs every subsystem until shutdown.

use crate::config::Config;
use crate::store::Store;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Runs the node until `shutdown` is cancelled or a subsystem fails. Subsystems drain
/// in order: the inbox finishes the file it is handling, then the store writer
/// checkpoints and closes.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let store = Store::open(&cfg.db_path(), &cfg.node_id)?;
    info!(node = %cfg.node_id, store = %cfg.db_path().display(), inboxes = cfg.inboxes.len(), "node starting");
    let mut tasks = JoinSet::new();
    tasks.spawn(crate::inbox::run(cfg.clone(), store.clone(), shutdown.child_token()));
    let mut result = Ok(());
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            done = tasks.join_next() => match done {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    error!("subsystem failed: {e:#}");
                    result = Err(e);
                    shutdown.cancel();
                    break;
                }
                Some(Err(e)) => {
                    error!("subsystem panicked: {e}");
                    result = Err(anyhow::anyhow!("subsystem panicked: {e}"));
                    shutdown.cancel();
                    break;
                }
            },
        }
    }
    while tasks.join_next().await.is_some() {}
    // Close the store last: dropping the final handle joins the writer thread, which
    // checkpoints the WAL.
    tokio::task::spawn_blocking(move || drop(store)).await?;
    info!(node = %cfg.node_id, "node stopped");
    result
}
