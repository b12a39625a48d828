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
const CHUNK_ROWS: usize = 2048;

/// A file that fails this many times in a row in this process (or that the node
/// dies on [`MAX_ATTEMPTS`] times) is set aside in `rejected/` with a report saying why.
pub const MAX_FAILURES: u32 = 3;

/// The longest name a moved file gets, in bytes: room is left for ` (NN)` and the
/// report suffixes within the 255 bytes a file name may have.
const MAX_DEST_NAME: usize = 200;

/// What happened to one file.
#[derive(Debug, Clone)]
pub struct Handled {
    /// Where the file's report lies (the file itself is beside it unless not kept).
    pub dest: PathBuf,
    pub report: Report,
}

/// How handling a file ended.
enum Outcome {
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
enum Hint {
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
struct Candidate {
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
struct Ctx {
    cfg: Arc<Config>,
    store: Store,
    limits: Limits,
    cancel: Cancel,
}

/// Runs the inbox until `shutdown`. A file being handled is abandoned within a second
/// or two of `shutdown` (nothing of it committed; it stays in the inbox).
/// Runs the inbox until `shutdown`; `ready` fires once every inbox is watched.
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

fn log_handled(h: &Handled) {
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
fn show(p: &Path) -> String {
    p.to_string_lossy().escape_debug().to_string()
}

/// Whether the disk is full, and whether that was said already.
#[derive(Default)]
struct DiskState {
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

fn is_disk_full_text(s: &str) -> bool {
    s.contains("No space left on device") || s.contains("database or disk is full") || s.contains("Disk quota exceeded")
}

/// Watches every inbox; without it the periodic rescan still works. Rewatches an
/// inbox folder that was deleted and made again.
struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    /// The identity (device, inode) of each inbox folder as watched.
    watched: Vec<Option<(u64, u64)>>,
    /// An inbox folder itself was removed or moved: watch them all again (a folder
    /// made again may even get the same inode).
    lost: Arc<AtomicBool>,
}

fn dir_id(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

impl Watcher {
    fn start(cfg: &Config, tx: tokio::sync::mpsc::Sender<(PathBuf, Hint)>, overflow: Arc<AtomicBool>) -> Watcher {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        use notify::EventKind;
        let inboxes: Vec<PathBuf> = cfg.inboxes.iter().map(|i| i.path.clone()).collect();
        let lost = Arc::new(AtomicBool::new(false));
        let lost_in_handler = lost.clone();
        // Wakes the loop to rescan (a sentinel with no path).
        let wake = {
            let (tx, overflow) = (tx.clone(), overflow.clone());
            move || {
                overflow.store(true, Ordering::Relaxed);
                let _ = tx.try_send((PathBuf::new(), Hint::Other));
            }
        };
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if ev.need_rescan() {
                    wake();
                }
                let hint = match ev.kind {
                    EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => Hint::Written,
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => Hint::Closed,
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Hint::MovedIn,
                    EventKind::Access(_) => return,
                    _ => Hint::Other,
                };
                for p in ev.paths {
                    if inboxes.contains(&p) {
                        // The folder itself was removed or moved: look again now.
                        lost_in_handler.store(true, Ordering::Relaxed);
                        wake();
                        continue;
                    }
                    if tx.try_send((p, hint)).is_err() {
                        overflow.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => wake(),
        };
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("file events unavailable, relying on the periodic rescan: {e}");
                None
            }
        };
        let mut w = Watcher { inner, watched: vec![None; cfg.inboxes.len()], lost };
        w.refresh(cfg);
        w
    }

    /// (Re)creates missing inbox folders and watches any folder not watched as it is now.
    fn refresh(&mut self, cfg: &Config) {
        use notify::{RecursiveMode, Watcher as _};
        if self.lost.swap(false, Ordering::Relaxed) {
            self.watched.iter_mut().for_each(|w| *w = None);
        }
        for (i, inbox) in cfg.inboxes.iter().enumerate() {
            if !inbox.path.is_dir() {
                self.watched[i] = None;
                match std::fs::create_dir_all(&inbox.path) {
                    Ok(()) => warn!(inbox = %show(&inbox.path), "the inbox folder was missing; made it again"),
                    Err(e) => {
                        warn!(inbox = %show(&inbox.path), "the inbox folder is missing and cannot be made: {e}");
                        continue;
                    }
                }
            }
            let id = dir_id(&inbox.path);
            if id == self.watched[i] {
                continue;
            }
            if let Some(w) = self.inner.as_mut() {
                let _ = w.unwatch(&inbox.path);
                match w.watch(&inbox.path, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched[i] = id;
                        info!(inbox = %show(&inbox.path), "watching inbox");
                    }
                    Err(e) => warn!(inbox = %show(&inbox.path), "cannot watch the inbox, relying on the periodic rescan: {e}"),
                }
            }
        }
    }
}

fn note_event(
    cfg: &Config,
    pending: &mut HashMap<PathBuf, Candidate>,
    next_seq: &mut u64,
    overflow: &AtomicBool,
    path: PathBuf,
    hint: Hint,
) {
    if hint == Hint::Other && !pending.contains_key(&path) {
        // A rename out of the folder or a removal: nothing to read.
        if path.parent().is_some_and(|p| cfg.inboxes.iter().any(|i| i.path == p)) && path.symlink_metadata().is_ok() {
            add_candidate(cfg, pending, next_seq, path);
        }
        return;
    }
    if !pending.contains_key(&path) {
        add_candidate(cfg, pending, next_seq, path.clone());
    }
    if let Some(c) = pending.get_mut(&path) {
        match hint {
            Hint::Written => {
                c.open_for_write = true;
                c.closed_at = None;
            }
            Hint::Closed => {
                c.open_for_write = false;
                // Only a file named as a submission: Excel saves into a temporary file
                // without an extension, closes it and renames it a moment later; that
                // one must not be taken (and refused) before the rename.
                if path.file_name().and_then(|n| n.to_str()).and_then(Format::from_name).is_some() {
                    c.closed_at = Some(Instant::now());
                }
            }
            Hint::MovedIn => {
                c.open_for_write = false;
                c.moved_in = true;
            }
            Hint::Other => {}
        }
    } else if hint == Hint::Other {
        overflow.store(true, Ordering::Relaxed);
    }
}

fn add_candidate(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>, next_seq: &mut u64, path: PathBuf) {
    if pending.contains_key(&path) {
        return;
    }
    let Some(inbox) = cfg.inboxes.iter().position(|i| path.parent() == Some(i.path.as_path())) else { return };
    let Some(name) = path.file_name() else { return };
    if is_ignored(name) || path.symlink_metadata().is_err() {
        return;
    }
    let now = Instant::now();
    pending.insert(
        path,
        Candidate {
            inbox,
            seq: *next_seq,
            first_seen: now,
            last: None,
            stable_since: now,
            open_for_write: false,
            moved_in: false,
            closed_at: None,
            failures: 0,
            retry_at: None,
        },
    );
    *next_seq += 1;
}

/// Names the inbox leaves alone (spec §1), whatever bytes they hold.
fn is_ignored(name: &OsStr) -> bool {
    ingest::is_ignored_name(&String::from_utf8_lossy(name.as_bytes()))
}

/// Adds every entry of every inbox, oldest first, so a backlog is handled in the order
/// it arrived.
fn scan(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>, next_seq: &mut u64) {
    let mut found = Vec::new();
    for inbox in &cfg.inboxes {
        let entries = match std::fs::read_dir(&inbox.path) {
            Ok(e) => e,
            Err(e) => {
                warn!(inbox = %show(&inbox.path), "cannot list the inbox: {e}");
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !pending.contains_key(&path) {
                // lstat: a symlink's own time, never its target's.
                let mtime = std::fs::symlink_metadata(&path).ok().and_then(|m| m.modified().ok());
                found.push((mtime, path));
            }
        }
    }
    found.sort();
    for (_, path) in found {
        add_candidate(cfg, pending, next_seq, path);
    }
}

/// How long a file closed after writing must stay closed and unchanged before it is
/// read (a writer that closes and reopens to append does so within it).
const CLOSED_QUIET: Duration = Duration::from_millis(25);

/// Updates each candidate's size and mtime; returns the settled ones in arrival order.
/// A regular file is settled when it was renamed in, closed by its writer
/// [`CLOSED_QUIET`] ago, or its size and mtime have been stable for the settle time —
/// and, in every case, no process holds it open for writing.
fn settle(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>) -> Vec<PathBuf> {
    let now = Instant::now();
    let mut ready = Vec::new();
    let mut to_check = Vec::new();
    pending.retain(|path, c| {
        let Ok(m) = std::fs::symlink_metadata(path) else { return false };
        if c.retry_at.is_some_and(|t| now < t) {
            return true;
        }
        if !m.is_file() {
            // Not read at all: set aside at once (after a moment, for a folder being made).
            if now.duration_since(c.first_seen) >= cfg.settle.min(Duration::from_millis(200)) {
                ready.push((c.seq, path.clone()));
            }
            return true;
        }
        let sig = (m.len(), m.modified().ok());
        if c.last != Some(sig) {
            if c.last.is_some() {
                c.moved_in = false;
            }
            c.last = Some(sig);
            c.stable_since = now;
        }
        let stable = now.duration_since(c.stable_since) >= cfg.settle;
        if now.duration_since(c.first_seen) >= cfg.max_settle {
            warn!(file = %show(path), "file still changing or open after {:?}; reading it anyway", cfg.max_settle);
            ready.push((c.seq, path.clone()));
        } else if c.moved_in || stable || c.closed_at.is_some_and(|t| now.duration_since(t) >= cfg.settle.min(CLOSED_QUIET)) {
            to_check.push((c.seq, path.clone(), c.open_for_write));
        }
        true
    });
    if !to_check.is_empty() {
        let wanted: HashSet<PathBuf> = to_check.iter().map(|(_, p, _)| p.clone()).collect();
        let scan = writers(&wanted);
        for (seq, path, hinted_open) in to_check {
            let open = match &scan {
                Some((open, true)) => open.contains(&path),
                Some((open, false)) => open.contains(&path) || hinted_open,
                None => hinted_open,
            };
            if !open {
                ready.push((seq, path));
            }
        }
    }
    ready.sort();
    ready.into_iter().map(|(_, p)| p).collect()
}

/// The files among `wanted` that some other process has open for writing, from
/// `/proc`, and whether every process could be looked at (as root, or when all are
/// ours); None without `/proc`.
fn writers(wanted: &HashSet<PathBuf>) -> Option<(HashSet<PathBuf>, bool)> {
    let me = std::process::id().to_string();
    let procs = std::fs::read_dir("/proc").ok()?;
    let mut open = HashSet::new();
    let mut complete = true;
    for p in procs.flatten() {
        let pid = p.file_name();
        let Some(pid) = pid.to_str() else { continue };
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let fds = match std::fs::read_dir(p.path().join("fd")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                complete = false;
                continue;
            }
            Err(_) => continue,
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            if !wanted.contains(&target) {
                continue;
            }
            let info = std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name())).unwrap_or_default();
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
            // O_WRONLY = 1, O_RDWR = 2; unknown flags count as writing.
            if flags.is_none_or(|f| f & 3 != 0) {
                open.insert(target);
            }
        }
    }
    Some((open, complete))
}

/// The name shown for a file: its name if UTF-8, else decoded as GBK/GB18030 (names
/// from a Windows zip), else with the undecodable bytes replaced; control characters
/// (a newline could forge a log line) become `_`.
pub fn display_name(name: &OsStr) -> String {
    let bytes = name.as_bytes();
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
            Some(s) => s.into_owned(),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    };
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The name a handled file gets: its display name, shortened (keeping the extension
/// and a hash of the whole name) when it would leave no room for the report suffixes.
fn dest_name(display: &str) -> String {
    let clean: String = display.chars().map(|c| if c == '/' { '_' } else { c }).collect();
    let clean = if clean.is_empty() || clean == "." || clean == ".." { "_".to_string() } else { clean };
    if clean.len() <= MAX_DEST_NAME {
        return clean;
    }
    let (stem, ext) = match clean.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.len() <= 16 => (s, format!(".{e}")),
        _ => (clean.as_str(), String::new()),
    };
    let tag = &huijiao_protocol::record::hex(&huijiao_protocol::record::sha256(display.as_bytes()))[..8];
    let room = MAX_DEST_NAME - ext.len() - tag.len() - 1;
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{tag}{ext}", &stem[..cut])
}

/// Handles one settled file from start to finish. Blocking.
fn handle(ctx: &Ctx, inbox: usize, path: &Path) -> anyhow::Result<Outcome> {
    let name = display_name(path.file_name().unwrap_or_default());
    let source_key = path_text(path);
    // A file the node died on (or failed on) too often is set aside.
    let attempts = {
        let (k, now) = (source_key.clone(), crate::clock::now_ms());
        ctx.store.call_blocking(move |w| w.start_attempt(&k, now))??
    };
    if attempts >= MAX_ATTEMPTS {
        let refusal = Refusal::new(
            "processing_failed",
            &format!("节点在读取该文件时已中断 {attempts} 次，已移出收件箱，请检查文件或联系运维"),
            &format!("the node stopped {attempts} times while reading this file; it was set aside — check the file or ask the operator"),
        );
        let h = set_aside(ctx, inbox, path, refusal, true)?;
        return Ok(Outcome::done(h));
    }
    let outcome = handle_attempt(ctx, inbox, path, &name);
    // Done, or stopped for a reason that is not the file's fault: the attempt ends.
    if matches!(outcome, Ok(Outcome::Done(_) | Outcome::Unsettled | Outcome::Cancelled | Outcome::Gone)) {
        let k = source_key;
        let _ = ctx.store.call_blocking(move |w| w.end_attempt(&k));
    }
    outcome
}

fn handle_attempt(ctx: &Ctx, inbox: usize, path: &Path, name: &str) -> anyhow::Result<Outcome> {
    let cfg = &ctx.cfg;
    let src = match ingest::source::open(path) {
        Ok(s) => s,
        // A hard link is only unlinked: moving it would put a second name of its
        // target (perhaps a file the clerk could not read) into the archive.
        Err(OpenError::NotRegular(kind)) => {
            return Ok(Outcome::done(set_aside(ctx, inbox, path, ingest::not_regular(kind), kind != "hard link")?))
        }
        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Gone),
        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let r = Refusal::new(
                "unreadable_file",
                "节点没有读取该文件的权限（请检查文件权限后重新放入）",
                &format!("the node is not allowed to read the file ({e}); fix its permissions and drop it again"),
            );
            return Ok(Outcome::done(set_aside(ctx, inbox, path, r, true)?));
        }
        Err(OpenError::Io(e)) => return Err(e).with_context(|| format!("cannot open {}", show(path))),
    };
    info!(file = %name.escape_debug(), bytes = src.stamp.size, "reading file");
    // A file the node does not read is still screened whole before it is archived.
    let unread_keep = |format: Option<Format>| !screen(&src.file, format, None, &ctx.limits, &ctx.cancel).is_marked();
    let Some(format) = Format::from_name(name) else {
        let keep = unread_keep(None);
        return Ok(Outcome::done(set_aside(ctx, inbox, path, ingest::unsupported_type(), keep)?));
    };
    if src.stamp.size > ctx.limits.max_file_size {
        let keep = unread_keep(Some(format));
        return Ok(Outcome::done(set_aside(ctx, inbox, path, ingest::too_large(src.stamp.size, ctx.limits.max_file_size), keep)?));
    }
    let Some(sniffed) =
        ingest::source::sniff(&src.file, format.is_text(), &ctx.cancel).with_context(|| format!("cannot read {}", show(path)))?
    else {
        return Ok(Outcome::Cancelled);
    };
    if changed(&src, path) {
        return Ok(Outcome::Unsettled);
    }
    let sha = sniffed.sha256.clone();
    let seen = {
        let sha = sha.clone();
        ctx.store.call_blocking(move |w| w.lookup_file(&sha))??
    };
    let day = crate::clock::today().to_string();
    let dirs = &cfg.inboxes[inbox];
    if let Some(entry) = seen {
        return redrop(ctx, dirs, path, name, &day, entry).map(Outcome::done);
    }
    let refuse = |r: Refusal, keep: bool| -> anyhow::Result<Outcome> {
        let mut report = Report::new(name, &sha);
        report.format = Some(format.as_str().to_string());
        report.refuse(r);
        Ok(Outcome::done(refuse_file(ctx, dirs, path, name, &day, report, keep)?))
    };
    if src.stamp.size == 0 {
        return refuse(ingest::empty_file(), true);
    }
    let encoding = match sniffed.text.clone() {
        Some(Ok(e)) => Some(e),
        Some(Err(r)) => {
            let keep = !screen(&src.file, Some(format), None, &ctx.limits, &ctx.cancel).is_marked();
            return refuse(r, keep);
        }
        None => None,
    };
    let dest = unique_dest(&dirs.processed.join(&day), &dest_name(name), &ctx.store)?;
    let dest_dir = dest.parent().context("destination has no folder")?.to_path_buf();
    std::fs::create_dir_all(&dest_dir).with_context(|| format!("cannot create {}", show(&dest_dir)))?;
    let meta = FileMeta {
        sha256: sha.clone(),
        name: name.to_string(),
        source_path: path_text(path),
        dest: dest.to_string_lossy().into_owned(),
        received_at: crate::clock::now_ms(),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let (atx, arx) = std::sync::mpsc::sync_channel(8);
    let result = ctx.store.submit(move |w| w.ingest_file(meta, rx, atx))?;
    let validator = Validator { regions: &cfg.regions, today: crate::clock::today(), node: Some(&cfg.node_id) };
    let spool_bytes = ctx.limits.min_rejected_bytes.max(src.stamp.size.saturating_mul(4));
    let mut spool =
        Spool::new(&ctx.limits.temp_dir, spool_bytes).with_context(|| format!("cannot make a spool in {}", show(&ctx.limits.temp_dir)))?;
    let reading = ingest::read(&src.file, format, encoding, &ctx.limits, &ctx.cancel).context("cannot start reading")?;
    let mut sink = StoreSink { tx: Some(tx), answers: arx, sent: 0, answered: 0 };
    // Three stages on their own threads: reading, checking (here), writing.
    let checked = ingest::validate(reading, Report::new(name, &sha), &validator, &ctx.limits, CHUNK_ROWS, &mut sink, Some(&mut spool));
    let mut report = checked.report;
    let abandon = |sink: StoreSink| {
        drop(sink);
        let _ = result.recv();
    };
    if checked.cancelled {
        abandon(sink);
        return Ok(Outcome::Cancelled);
    }
    if changed(&src, path) {
        abandon(sink);
        info!(file = %show(path), "the file changed while it was read; nothing was stored, it is read again once it settles");
        return Ok(Outcome::Unsettled);
    }
    if report.refused.is_some() {
        // Refused on the way (a missing column, no rows): abandon the transaction.
        abandon(sink);
        let keep = checked.not_echoed == 0 && !screen(&src.file, Some(format), encoding, &ctx.limits, &ctx.cancel).is_marked();
        return Ok(Outcome::done(refuse_file(ctx, dirs, path, name, &day, report, keep)?));
    }
    // The whole file, not only the rows read (spec v1.2 §3): a marking anywhere keeps
    // the original out of the archive.
    if checked.not_echoed > 0 {
        report.warnings.push(not_kept_warning(checked.not_echoed));
    } else if screen(&src.file, Some(format), encoding, &ctx.limits, &ctx.cancel).is_marked() {
        report.warnings.push(marked_file_warning());
    }
    // The rejected rows, durable before the commit that says they exist.
    if !spool.is_empty() {
        let tmp = hidden(&dest, "rejected.csv");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", show(&tmp)))?);
        spool.write_csv(&checked.columns, &mut out).with_context(|| format!("cannot write {}", show(&tmp)))?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all().with_context(|| format!("cannot write {}", show(&tmp)))?;
    }
    let Some(tx) = sink.tx.take() else { anyhow::bail!("the store writer stopped during the ingest") };
    let _ = tx.send(IngestMsg::Done(Box::new(report)));
    drop(tx);
    let summary = result.recv().context("the store writer stopped during the ingest")??;
    // Committed durably: only now may the file leave the inbox.
    let entry = FileEntry {
        meta: FileMeta {
            sha256: sha.clone(),
            name: name.to_string(),
            source_path: path_text(path),
            dest: dest.to_string_lossy().into_owned(),
            received_at: 0,
        },
        report: summary.report,
        moved: false,
    };
    let handled = finish_committed(ctx, &entry, true)?;
    Ok(Outcome::done(handled))
}

/// Whether the file changed since it was opened (a writer still at work).
fn changed(src: &ingest::Source, path: &Path) -> bool {
    let now = src.file.metadata().map(|m| ingest::Stamp::of(&m)).ok();
    let by_path = std::fs::symlink_metadata(path).map(|m| ingest::Stamp::of(&m)).ok();
    now != Some(src.stamp) || by_path != Some(src.stamp)
}

/// The store as a [`RowSink`]: chunks go to the writer, its answers come back.
struct StoreSink {
    tx: Option<std::sync::mpsc::SyncSender<IngestMsg>>,
    answers: std::sync::mpsc::Receiver<Vec<RowError>>,
    sent: u64,
    answered: u64,
}

impl RowSink for StoreSink {
    fn send(&mut self, rows: Vec<(u64, Row)>) {
        let prepared = rows.into_iter().map(|(n, row)| Prepared::new(n, row)).collect();
        // A closed channel means the writer failed; its error arrives on its result.
        if let Some(tx) = &self.tx {
            if tx.send(IngestMsg::Rows(prepared)).is_ok() {
                self.sent += 1;
            }
        }
    }

    fn answer(&mut self, wait: bool) -> Option<Vec<RowError>> {
        if self.answered == self.sent {
            return None;
        }
        let a = if wait { self.answers.recv().ok() } else { self.answers.try_recv().ok() };
        if a.is_some() {
            self.answered += 1;
        }
        a
    }
}

/// A file whose bytes are already in the journal: either a restart after a crash
/// between commit and move (finish it with the stored report), or the same file
/// dropped again (store nothing, say so).
fn redrop(ctx: &Ctx, dirs: &InboxDir, path: &Path, name: &str, day: &str, entry: FileEntry) -> anyhow::Result<Handled> {
    if !entry.moved && entry.meta.source_path == path_text(path) {
        return finish_committed(ctx, &entry, true);
    }
    if !entry.moved {
        // Finished elsewhere by now.
        finish_committed(ctx, &entry, false)?;
    }
    let mut report = entry.report.clone();
    report.file = name.to_string();
    let when = crate::clock::rfc3339_china(entry.meta.received_at);
    let earlier = Path::new(&entry.meta.dest);
    report.warnings.push(Warning {
        row: None,
        field: None,
        code: "duplicate_file".into(),
        message: if entry.report.rejected > 0 {
            zh_en(
                &format!(
                    "相同内容的文件（{}）已于 {when} 处理过，本次未存储任何新内容；结果与当时相同，退回的行见 {}",
                    entry.meta.name,
                    sidecar(earlier, "rejected.csv").display()
                ),
                &format!(
                    "identical file ({}) already processed at {when}; nothing new was stored, the verdict is the same; its rejected rows are in {}",
                    entry.meta.name,
                    sidecar(earlier, "rejected.csv").display()
                ),
            )
        } else {
            zh_en(
                &format!("相同内容的文件（{}）已于 {when} 处理过，本次未存储任何新内容；结果与当时相同", entry.meta.name),
                &format!("identical file ({}) already processed at {when}; nothing new was stored, the verdict is the same", entry.meta.name),
            )
        },
    });
    let keep = !report.warnings.iter().any(|w| w.code == "original_not_kept");
    let dest = unique_dest(&dirs.processed.join(day), &dest_name(name), &ctx.store)?;
    finish(path, &dest, &report, keep)
}

/// Finishes a committed file: its rejected rows, the move (or removal), the report,
/// the journal mark. Idempotent, so a restart can run it again at any point.
fn finish_committed(ctx: &Ctx, entry: &FileEntry, source_here: bool) -> anyhow::Result<Handled> {
    let dest = PathBuf::from(&entry.meta.dest);
    let src = text_path(&entry.meta.source_path);
    let src = src.as_path();
    let keep = !entry.report.warnings.iter().any(|w| w.code == "original_not_kept");
    let tmp = hidden(&dest, "rejected.csv");
    if tmp.exists() {
        std::fs::rename(&tmp, sidecar(&dest, "rejected.csv")).with_context(|| format!("cannot write {}", show(&tmp)))?;
    }
    let handled = if source_here && src.symlink_metadata().is_ok() {
        finish(src, &dest, &entry.report, keep)?
    } else {
        write_reports(&dest, &entry.report)?;
        if let Some(dir) = dest.parent() {
            crate::fsx::sync_dir(dir);
        }
        Handled { dest: dest.clone(), report: entry.report.clone() }
    };
    let sha = entry.meta.sha256.clone();
    ctx.store.call_blocking(move |w| w.mark_moved(&sha))??;
    Ok(handled)
}

/// After a crash between a commit and the end of its finishing, or a finishing that
/// failed (a full disk): completes what is missing. Files still in the inbox are left
/// to the inbox loop, which finds them in the journal.
fn finish_interrupted(ctx: &Ctx, in_inbox: &HashSet<PathBuf>) -> anyhow::Result<()> {
    let pending = ctx.store.call_blocking(|w| w.pending_moves())??;
    for entry in pending {
        let src = text_path(&entry.meta.source_path);
        if in_inbox.contains(&src) || src.symlink_metadata().is_ok() {
            continue;
        }
        finish_committed(ctx, &entry, false)?;
        info!(file = %entry.meta.name.escape_debug(), dest = %entry.meta.dest.escape_debug(), "finished a file interrupted by a restart");
    }
    Ok(())
}

/// Moves a file refused as a whole to `rejected/` (or removes it when it may hold
/// classified rows) and writes its report.
fn refuse_file(ctx: &Ctx, dirs: &InboxDir, path: &Path, name: &str, day: &str, mut report: Report, keep: bool) -> anyhow::Result<Handled> {
    if !keep && !report.warnings.iter().any(|w| w.code == "original_not_kept") {
        report.warnings.push(marked_file_warning());
    }
    let dest = unique_dest(&dirs.rejected.join(day), &dest_name(name), &ctx.store)?;
    finish(path, &dest, &report, keep)
}

/// Sets a path aside in `rejected/` with a report, without reading it (not a regular
/// file, unreadable, unsupported, too large, or failing again and again).
fn set_aside(ctx: &Ctx, inbox: usize, path: &Path, refusal: Refusal, keep: bool) -> anyhow::Result<Handled> {
    let name = display_name(path.file_name().unwrap_or_default());
    let mut report = Report::new(&name, "");
    report.format = Format::from_name(&name).map(|f| f.as_str().to_string());
    report.refuse(refusal);
    if !keep {
        report.warnings.push(marked_file_warning());
    }
    let day = crate::clock::today().to_string();
    let dest = unique_dest(&ctx.cfg.inboxes[inbox].rejected.join(day), &dest_name(&name), &ctx.store)?;
    let h = finish(path, &dest, &report, keep)?;
    let k = path_text(path);
    let _ = ctx.store.call_blocking(move |w| w.end_attempt(&k));
    Ok(h)
}

/// A name in `dir` that no earlier file (nor its report, nor an unfinished move) holds:
/// `批次.csv`, then `批次 (2).csv`, `批次 (3).csv`, …
fn unique_dest(dir: &Path, name: &str, store: &Store) -> anyhow::Result<PathBuf> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    for n in 1u32.. {
        let candidate = if n == 1 { dir.join(name) } else { dir.join(format!("{stem} ({n}){ext}")) };
        let report = sidecar(&candidate, "report.json");
        if candidate.symlink_metadata().is_ok() || report.exists() {
            continue;
        }
        let shown = candidate.to_string_lossy().into_owned();
        if store.call_blocking(move |w| w.dest_reserved(&shown))?? {
            continue;
        }
        return Ok(candidate);
    }
    unreachable!("u32 names exhausted")
}

/// `NAME.report.json` or `NAME.rejected.csv` beside `dest`.
pub fn sidecar(dest: &Path, suffix: &str) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// The hidden file a sidecar is written to before it is complete.
fn hidden(dest: &Path, suffix: &str) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.{suffix}.tmp"))
}

/// Moves the file out of the inbox (or removes it when `keep` is false) and writes
/// its report beside where it goes.
fn finish(src: &Path, dest: &Path, report: &Report, keep: bool) -> anyhow::Result<Handled> {
    let dir = dest.parent().context("destination has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", show(dir)))?;
    // The report first: should the disk fill up, the file stays in the inbox with
    // its verdict already on record.
    write_reports(dest, report)?;
    if keep {
        move_file(src, dest)?;
    } else {
        match std::fs::remove_file(src) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                std::fs::remove_dir_all(src).with_context(|| format!("cannot remove {}", show(src)))?
            }
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", show(src))),
        }
    }
    crate::fsx::sync_dir(dir);
    if let Some(inbox) = src.parent() {
        crate::fsx::sync_dir(inbox);
    }
    Ok(Handled { dest: dest.to_path_buf(), report: report.clone() })
}

fn write_reports(dest: &Path, report: &Report) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    Ok(crate::fsx::write_atomic(&sidecar(dest, "report.json"), &json)?)
}

/// Renames (a symlink or folder as itself, never following it), or copies and
/// removes across file systems.
fn move_file(src: &Path, dest: &Path) -> anyhow::Result<()> {
    match std::fs::rename(src, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let m = src.symlink_metadata().with_context(|| format!("cannot stat {}", show(src)))?;
            if !m.is_file() {
                // A link or folder cannot be copied without following it: leave a
                // report only and remove it from the inbox.
                return std::fs::remove_file(src)
                    .or_else(|_| std::fs::remove_dir_all(src))
                    .with_context(|| format!("cannot remove {}", show(src)));
            }
            let mut from =
                ingest::source::open(src).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("cannot open {}", show(src)))?.file;
            let mut to = std::fs::File::create(dest).with_context(|| format!("cannot write {}", show(dest)))?;
            std::io::copy(&mut from, &mut to).with_context(|| format!("cannot copy {} to {}", show(src), show(dest)))?;
            to.sync_all().with_context(|| format!("cannot write {}", show(dest)))?;
            std::fs::remove_file(src).with_context(|| format!("cannot remove {}", show(src)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot move {} to {}", show(src), show(dest))),
    }
}

/// A path as the file journal keeps it: as text when it is UTF-8, else its bytes in
/// hex after a NUL (which no Unix path holds), so a name in GBK from a Windows zip is
/// found and moved again exactly, never read twice.
fn path_text(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    match p.to_str() {
        Some(s) => s.to_string(),
        None => format!("\0hex:{}", huijiao_protocol::record::hex(p.as_os_str().as_bytes())),
    }
}

/// The path [`path_text`] wrote.
fn text_path(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    match s.strip_prefix("\0hex:") {
        Some(h) => {
            let bytes: Option<Vec<u8>> =
                (0..h.len()).step_by(2).map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
            bytes.map(|b| PathBuf::from(std::ffi::OsString::from_vec(b))).unwrap_or_else(|| PathBuf::from(s))
        }
        None => PathBuf::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn names_of_any_bytes_display_on_one_line() {
        let (gbk, _, _) = encoding_rs::GBK.encode("成果登记表.csv");
        assert_eq!(display_name(&OsString::from_vec(gbk.into_owned())), "成果登记表.csv");
        assert_eq!(display_name(OsStr::new("a\nb.csv")), "a_b.csv");
        assert_eq!(display_name(&OsString::from_vec(b"\xff\xfe.csv".to_vec())), "\u{fffd}\u{fffd}.csv");
    }

    #[test]
    fn long_names_are_shortened_keeping_the_extension() {
        let long = format!("{}.xlsx", "成果".repeat(60));
        let d = dest_name(&long);
        assert!(d.len() <= MAX_DEST_NAME && d.ends_with(".xlsx") && d.contains('~'), "{d}");
        assert_ne!(dest_name(&format!("{}x.xlsx", "成果".repeat(60))), d, "different names stay different");
        assert!(sidecar(Path::new(&format!("{d} (99)")), "rejected.csv").file_name().unwrap().len() + 5 <= 255);
        assert_eq!(dest_name("批次.csv"), "批次.csv");
    }
}
