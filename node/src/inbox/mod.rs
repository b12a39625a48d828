//! The inbox: watching folders, settling files, and handling each file exactly once.
//!
//! Events from `notify` only say where to look; a periodic full rescan finds what the
//! events missed (queue overflow, network shares, a recreated folder). A file is read
//! once it is complete — renamed into the folder, or its size and mtime stable for the
//! settle time and nobody holding it open for writing — one at a time in arrival
//! order, and it leaves the inbox only after its rows are committed:
//!
//! 1. open it without following links and check the descriptor is a regular file (a
//!    symlink, FIFO, socket or directory is set aside with a report, never read);
//! 2. stream it once for its hash; a hash already in the journal is a re-drop (or a
//!    restart after a crash between commit and move) and stores nothing;
//! 3. parse and validate in chunks that stream into one store transaction; the
//!    rejected rows are written to a hidden file beside the destination, then the
//!    transaction journals the file with its destination and final report;
//! 4. if the file changed while it was read, nothing is committed and it settles again;
//! 5. after the commit, move the file to `processed/YYYY-MM-DD/` (or delete it when it
//!    held rows that must not be archived), write `NAME.report.json` and
//!    `NAME.rejected.csv` beside it, fsync, and mark the journal entry moved.
//!
//! Nothing about one file stops the daemon: a failure is retried for that file alone;
//! a file that fails, or that the node dies on, [`MAX_FAILURES`] times is set aside.
//!
//! Rooms: `watch` (events and rescans), `settle` (is a file complete?), `handle` (one
//! file, exactly once), `parts` (the store as the checking stage's sink: a big file
//! committed in parts, and resumed after them), `archive` (after the commit: move,
//! reports, set aside).

mod archive;
mod handle;
mod parts;
mod settle;
mod watch;

use archive::*;
use handle::*;
use settle::*;
use watch::*;

use crate::config::{Config, InboxDir};
use crate::ingest::screen::{marked_file_warning, not_kept_warning, screen};
use crate::ingest::{self, Cancel, Format, Limits, OpenError, RowSink, Spool};
use crate::store::{FileEntry, FileMeta, IngestMsg, Prepared, Store, MAX_ATTEMPTS};
use anyhow::Context;
use huijiao_protocol::report::{zh_en, Refusal, Report, RowError, Warning};
use huijiao_protocol::validate::Row;
use huijiao_protocol::Validator;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Rows per chunk streamed to the store while later rows are validated.
pub(super) const CHUNK_ROWS: usize = 2048;

/// A file that fails this many times in a row in this process (or that the node
/// dies on [`MAX_ATTEMPTS`] times) is set aside in `rejected/` with a report saying why.
pub const MAX_FAILURES: u32 = 3;

/// The longest name a moved file gets, in bytes: room is left for ` (NN)` and the
/// report suffixes within the 255 bytes a file name may have.
pub(super) const MAX_DEST_NAME: usize = 200;

/// What happened to one file.
#[derive(Debug, Clone)]
pub struct Handled {
    /// Where the file's report lies (the file itself is beside it unless not kept).
    pub dest: PathBuf,
    pub report: Report,
}

/// How handling a file ended.
pub(super) enum Outcome {
    Done(Box<Handled>),
    /// It changed while being read, or is still open for writing: settle again.
    Unsettled,
    /// The node is stopping; the file stays in the inbox.
    Cancelled,
    /// It disappeared before it could be read.
    Gone,
}

impl Outcome {
    fn done(h: Handled) -> Outcome {
        Outcome::Done(Box::new(h))
    }
}

/// How a file event bears on whether the file is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hint {
    /// Created or written to: someone may still be writing.
    Written,
    /// A writer closed it.
    Closed,
    /// Renamed into the folder: complete.
    MovedIn,
    /// Something else happened to the path (or the folder itself).
    Other,
}

/// A file seen in an inbox, waiting to settle.
pub(super) struct Candidate {
    inbox: usize,
    /// Arrival order.
    seq: u64,
    first_seen: Instant,
    last: Option<(u64, Option<SystemTime>)>,
    stable_since: Instant,
    /// File events say a writer had it open (written after the last close).
    open_for_write: bool,
    /// Renamed into the inbox: no settle wait.
    moved_in: bool,
    /// When a writer closed it, with no write since: it is read after [`CLOSED_QUIET`]
    /// instead of the whole settle time.
    closed_at: Option<Instant>,
    /// Failures in this process; after a failure it is retried no earlier than this.
    failures: u32,
    retry_at: Option<Instant>,
}

/// Everything a handling needs.
pub(super) struct Ctx {
    cfg: Arc<Config>,
    store: Store,
    limits: Limits,
    cancel: Cancel,
}

/// Runs the inbox until `shutdown`. A file being handled is abandoned within a second
/// or two of `shutdown` (nothing of it committed; it stays in the inbox).
/// Runs the inbox until `shutdown`; `ready` fires once every inbox is watched.
///
/// One piece: the inbox's one event loop (events, rescans, settling, handling, the
/// disk-full state) over state all its arms share.
pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    shutdown: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<()> {
    if cfg.inboxes.is_empty() {
        let _ = ready.send(());
        shutdown.cancelled().await;
        return Ok(());
    }
    for inbox in &cfg.inboxes {
        std::fs::create_dir_all(&inbox.path).with_context(|| format!("cannot create inbox {}", inbox.path.display()))?;
    }
    let cancel = Cancel::new();
    {
        let (cancel, shutdown) = (cancel.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            cancel.cancel();
        });
    }
    let spool_dir = cfg.data_dir.join("tmp");
    let _ = std::fs::create_dir_all(&spool_dir);
    let mut limits = Limits::new(cfg.max_file_size);
    limits.temp_dir = spool_dir;
    let ctx = Arc::new(Ctx { cfg: cfg.clone(), store: store.clone(), limits, cancel });

    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel::<(PathBuf, Hint)>(4096);
    let overflow = Arc::new(AtomicBool::new(false));
    let mut watcher = Watcher::start(&cfg, ev_tx, overflow.clone());
    let _ = ready.send(());

    let mut pending: HashMap<PathBuf, Candidate> = HashMap::new();
    let mut next_seq = 0u64;
    let tick = (cfg.settle / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut next_scan = Instant::now();
    let mut disk = DiskState::default();
    let mut said_held = false;
    loop {
        let now = Instant::now();
        if now >= next_scan || overflow.swap(false, Ordering::Relaxed) {
            watcher.refresh(&cfg);
            scan(&cfg, &mut pending, &mut next_seq);
            // Committed files whose finishing failed (a full disk) are retried here.
            let c = ctx.clone();
            let present: HashSet<PathBuf> = pending.keys().cloned().collect();
            match tokio::task::spawn_blocking(move || finish_interrupted(&c, &present)).await {
                Ok(Ok(())) => disk.ok(),
                Ok(Err(e)) => disk.failed(&e, "finishing committed files"),
                Err(e) => error!("finishing committed files panicked: {e}"),
            }
            next_scan = Instant::now() + if disk.full { cfg.rescan.min(Duration::from_secs(5)) } else { cfg.rescan };
        }
        // A store the parent found rewound takes no file until `huijiao recover` ran:
        // a row for a record it forgot would become a conflict at the parent.
        let ready = if store.recover_needed() {
            if !pending.is_empty() && !said_held {
                error!(
                    files = pending.len(),
                    "the inbox waits: this store was restored from an older copy; run `huijiao recover` (node stopped) first"
                );
                said_held = true;
            }
            Vec::new()
        } else {
            settle(&cfg, &mut pending)
        };
        for path in ready {
            if shutdown.is_cancelled() {
                break;
            }
            let Some(c) = pending.get(&path) else { continue };
            let inbox = c.inbox;
            let (c2, p2) = (ctx.clone(), path.clone());
            let result = tokio::task::spawn_blocking(move || handle(&c2, inbox, &p2)).await;
            let failure = match result {
                Ok(Ok(Outcome::Done(h))) => {
                    pending.remove(&path);
                    disk.ok();
                    log_handled(&h);
                    None
                }
                Ok(Ok(Outcome::Gone)) => {
                    pending.remove(&path);
                    None
                }
                Ok(Ok(Outcome::Unsettled)) => {
                    if let Some(c) = pending.get_mut(&path) {
                        c.stable_since = Instant::now();
                        c.last = None;
                    }
                    None
                }
                Ok(Ok(Outcome::Cancelled)) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(e) => Some(format!("handling the file panicked: {e}")),
            };
            let Some(why) = failure else { continue };
            if is_disk_full_text(&why) {
                disk.failed_text(&why, &path);
            } else {
                error!(file = %show(&path), "cannot handle file, will retry: {why}");
            }
            let Some(c) = pending.get_mut(&path) else { continue };
            c.failures += 1;
            if c.failures >= MAX_FAILURES && !is_disk_full_text(&why) {
                let (c2, p2, inbox) = (ctx.clone(), path.clone(), c.inbox);
                let refusal = Refusal::new(
                    "processing_failed",
                    &format!("节点处理该文件失败 {MAX_FAILURES} 次，已移出收件箱：{why}"),
                    &format!("the node failed {MAX_FAILURES} times on this file and set it aside: {why}"),
                );
                match tokio::task::spawn_blocking(move || set_aside(&c2, inbox, &p2, refusal, true)).await {
                    Ok(Ok(h)) => {
                        pending.remove(&path);
                        log_handled(&h);
                    }
                    Ok(Err(e)) => error!(file = %show(&path), "cannot set the file aside: {e:#}"),
                    Err(e) => error!(file = %show(&path), "setting the file aside panicked: {e}"),
                }
            } else if let Some(c) = pending.get_mut(&path) {
                let backoff = if disk.full { Duration::from_secs(5) } else { cfg.rescan };
                c.retry_at = Some(Instant::now() + backoff);
            }
        }
        let mut wake = if pending.values().any(|c| c.retry_at.is_none()) { Instant::now() + tick } else { next_scan };
        // A closed file is looked at again as soon as its quiet time is over.
        let now = Instant::now();
        let quiet = cfg.settle.min(CLOSED_QUIET);
        if let Some(t) =
            pending.values().filter(|c| c.retry_at.is_none()).filter_map(|c| c.closed_at.map(|t| t + quiet)).filter(|t| *t > now).min()
        {
            wake = wake.min(t);
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            ev = ev_rx.recv() => {
                if let Some((p, hint)) = ev {
                    note_event(&cfg, &mut pending, &mut next_seq, &overflow, p, hint);
                    while let Ok((p, hint)) = ev_rx.try_recv() {
                        note_event(&cfg, &mut pending, &mut next_seq, &overflow, p, hint);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

pub(super) fn log_handled(h: &Handled) {
    let r = &h.report;
    crate::metrics::file_handled(r);
    match &r.refused {
        Some(refusal) => warn!(file = %r.file.escape_debug(), code = %refusal.code, dest = %show(&h.dest), "file refused"),
        None => info!(
            file = %r.file.escape_debug(),
            rows = r.rows,
            accepted = r.accepted,
            rejected = r.rejected,
            dest = %show(&h.dest),
            "file handled"
        ),
    }
}

/// A path as logs show it: one line, whatever bytes the name holds.
pub(super) fn show(p: &Path) -> String {
    p.to_string_lossy().escape_debug().to_string()
}

/// Whether the disk is full, and whether that was said already.
#[derive(Default)]
pub(super) struct DiskState {
    full: bool,
}

impl DiskState {
    fn ok(&mut self) {
        if self.full {
            info!("disk space is back; files are being finished again");
        }
        self.full = false;
    }

    fn failed(&mut self, e: &anyhow::Error, what: &str) {
        let text = format!("{e:#}");
        if is_disk_full_text(&text) {
            if !self.full {
                error!("disk full while {what}: {text}; the node keeps what it has committed and retries every few seconds");
            }
            self.full = true;
        } else {
            error!("{what} failed, will retry: {text}");
        }
    }

    fn failed_text(&mut self, text: &str, path: &Path) {
        if !self.full {
            error!(file = %show(path), "disk full: {text}; the file stays in the inbox and is retried every few seconds");
        }
        self.full = true;
    }
}

pub(super) fn is_disk_full_text(s: &str) -> bool {
    s.contains("No space left on device") || s.contains("database or disk is full") || s.contains("Disk quota exceeded")
}

#[cfg(test)]
mod tests;
