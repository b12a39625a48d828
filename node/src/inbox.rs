//! The inbox: watching folders, settling files, and handling each file exactly once.
//!
//! Events from `notify` only say where to look; a periodic full rescan finds what the
//! events missed (queue overflow, network shares). A file is read once its size and
//! mtime have been stable for the settle time, files are handled one at a time in
//! arrival order, and a file leaves the inbox only after its rows are committed:
//!
//! 1. read the bytes, hash them; a hash already in the journal is a re-drop (or a
//!    restart after a crash between commit and move) and stores nothing;
//! 2. parse and validate in chunks that stream into one store transaction, which also
//!    journals the file with its destination and final report;
//! 3. after the commit, move the file to `processed/YYYY-MM-DD/` (or `rejected/…` when
//!    refused as a whole), write `NAME.report.json` and `NAME.rejected.csv` beside it,
//!    fsync, and mark the journal entry moved.

use crate::config::{Config, InboxDir};
use crate::ingest::{is_ignored_name, open_file, parse_file, rejected_csv, too_large, validate_rows, Format};
use crate::store::{FileEntry, FileMeta, IngestMsg, Prepared, Store};
use anyhow::Context;
use huijiao_protocol::record::hex;
use huijiao_protocol::report::{zh_en, Report, Warning};
use huijiao_protocol::Validator;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Rows per chunk streamed to the store while later rows are validated.
const CHUNK_ROWS: usize = 2048;

/// What happened to one file.
#[derive(Debug, Clone)]
pub struct Handled {
    /// Where the file now lies.
    pub dest: PathBuf,
    pub report: Report,
}

/// A file seen in an inbox, waiting to settle.
struct Candidate {
    inbox: usize,
    /// Arrival order.
    seq: u64,
    first_seen: Instant,
    last: Option<(u64, Option<SystemTime>)>,
    stable_since: Instant,
    /// After a failure (disk full, store error) the file is retried no earlier than this.
    retry_at: Option<Instant>,
}

/// Runs the inbox until `shutdown`; a file being handled is finished first.
pub async fn run(cfg: Arc<Config>, store: Store, shutdown: CancellationToken) -> anyhow::Result<()> {
    if cfg.inboxes.is_empty() {
        shutdown.cancelled().await;
        return Ok(());
    }
    for inbox in &cfg.inboxes {
        std::fs::create_dir_all(&inbox.path).with_context(|| format!("cannot create inbox {}", inbox.path.display()))?;
    }
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel::<PathBuf>(4096);
    let overflow = Arc::new(AtomicBool::new(false));
    let _watcher = start_watcher(&cfg, ev_tx, overflow.clone());

    {
        let (cfg, store) = (cfg.clone(), store.clone());
        tokio::task::spawn_blocking(move || finish_interrupted_moves(&cfg, &store)).await??;
    }

    let mut pending: HashMap<PathBuf, Candidate> = HashMap::new();
    let mut next_seq = 0u64;
    let tick = (cfg.settle / 4).clamp(Duration::from_millis(25), Duration::from_millis(250));
    let mut next_scan = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_scan || overflow.swap(false, Ordering::Relaxed) {
            scan(&cfg, &mut pending, &mut next_seq);
            next_scan = Instant::now() + cfg.rescan;
        }
        let ready = settle(&cfg, &mut pending);
        for path in ready {
            if shutdown.is_cancelled() {
                break;
            }
            let Some(c) = pending.get(&path) else { continue };
            let inbox = cfg.inboxes[c.inbox].clone();
            let (cfg2, store2, path2) = (cfg.clone(), store.clone(), path.clone());
            let result = tokio::task::spawn_blocking(move || handle_file(&cfg2, &store2, &inbox, &path2)).await;
            match result {
                Ok(Ok(h)) => {
                    pending.remove(&path);
                    let r = &h.report;
                    match &r.refused {
                        Some(refusal) => warn!(file = %r.file, code = %refusal.code, dest = %h.dest.display(), "file refused"),
                        None => {
                            info!(file = %r.file, rows = r.rows, accepted = r.accepted, rejected = r.rejected, dest = %h.dest.display(), "file handled")
                        }
                    }
                }
                Ok(Err(e)) => {
                    error!(file = %path.display(), "cannot handle file, will retry: {e:#}");
                    if let Some(c) = pending.get_mut(&path) {
                        c.retry_at = Some(Instant::now() + cfg.rescan);
                    }
                }
                Err(e) => {
                    error!(file = %path.display(), "handling the file panicked, will retry: {e}");
                    if let Some(c) = pending.get_mut(&path) {
                        c.retry_at = Some(Instant::now() + cfg.rescan);
                    }
                }
            }
        }
        let wake = if pending.values().any(|c| c.retry_at.is_none()) { Instant::now() + tick } else { next_scan };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            ev = ev_rx.recv() => {
                if let Some(p) = ev {
                    add_candidate(&cfg, &mut pending, &mut next_seq, p);
                    while let Ok(p) = ev_rx.try_recv() {
                        add_candidate(&cfg, &mut pending, &mut next_seq, p);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Starts a watcher on every inbox; without one the periodic rescan still works.
fn start_watcher(cfg: &Config, tx: tokio::sync::mpsc::Sender<PathBuf>, overflow: Arc<AtomicBool>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if ev.need_rescan() {
                overflow.store(true, Ordering::Relaxed);
            }
            for p in ev.paths {
                if tx.try_send(p).is_err() {
                    overflow.store(true, Ordering::Relaxed);
                }
            }
        }
        Err(_) => overflow.store(true, Ordering::Relaxed),
    };
    let mut w = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            warn!("file events unavailable, relying on the periodic rescan: {e}");
            return None;
        }
    };
    for inbox in &cfg.inboxes {
        if let Err(e) = w.watch(&inbox.path, RecursiveMode::NonRecursive) {
            warn!(inbox = %inbox.path.display(), "cannot watch the inbox, relying on the periodic rescan: {e}");
        }
    }
    Some(w)
}

fn add_candidate(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>, next_seq: &mut u64, path: PathBuf) {
    tracing::trace!(path = %path.display(), "candidate");
    if pending.contains_key(&path) {
        return;
    }
    let Some(inbox) = cfg.inboxes.iter().position(|i| path.parent() == Some(i.path.as_path())) else { return };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return };
    if is_ignored_name(name) || !path.is_file() {
        return;
    }
    let now = Instant::now();
    pending.insert(path, Candidate { inbox, seq: *next_seq, first_seen: now, last: None, stable_since: now, retry_at: None });
    *next_seq += 1;
}

/// Adds every file of every inbox, oldest first, so a backlog is handled in the order
/// it arrived.
fn scan(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>, next_seq: &mut u64) {
    let mut found = Vec::new();
    for inbox in &cfg.inboxes {
        let entries = match std::fs::read_dir(&inbox.path) {
            Ok(e) => e,
            Err(e) => {
                warn!(inbox = %inbox.path.display(), "cannot list the inbox: {e}");
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !pending.contains_key(&path) {
                let mtime = entry.metadata().ok().and_then(|m| m.modified().ok());
                found.push((mtime, path));
            }
        }
    }
    found.sort();
    for (_, path) in found {
        add_candidate(cfg, pending, next_seq, path);
    }
}

/// Updates each candidate's size and mtime; returns the settled ones in arrival order.
fn settle(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>) -> Vec<PathBuf> {
    let now = Instant::now();
    let mut ready = Vec::new();
    pending.retain(|path, c| {
        let Ok(m) = std::fs::metadata(path) else { return false };
        if !m.is_file() {
            return false;
        }
        if c.retry_at.is_some_and(|t| now < t) {
            return true;
        }
        let sig = (m.len(), m.modified().ok());
        if c.last != Some(sig) {
            c.last = Some(sig);
            c.stable_since = now;
        }
        if now.duration_since(c.stable_since) >= cfg.settle {
            ready.push((c.seq, path.clone()));
        } else if now.duration_since(c.first_seen) >= cfg.max_settle {
            warn!(file = %path.display(), "file still changing after {:?}; reading it anyway", cfg.max_settle);
            ready.push((c.seq, path.clone()));
        }
        true
    });
    ready.sort();
    ready.into_iter().map(|(_, p)| p).collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Handles one settled file from start to finish. Blocking.
pub fn handle_file(cfg: &Config, store: &Store, inbox: &InboxDir, path: &Path) -> anyhow::Result<Handled> {
    let name = file_name(path);
    let day = crate::clock::today().to_string();
    let size = std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?.len();
    if size > cfg.max_file_size && Format::from_name(&name).is_some() {
        let mut report = Report::new(&name, &hash_file(path)?);
        report.format = Format::from_name(&name).map(|f| f.as_str().to_string());
        report.refuse(too_large(size, cfg.max_file_size));
        let dest = unique_dest(&inbox.rejected.join(&day), &name, store)?;
        return finish(path, &dest, &report, None);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Hashes the bytes, and for CSV and JSONL starts parsing them on a reader thread.
    let opened = open_file(&name, bytes, cfg.max_file_size);
    let sha = opened.report.sha256.clone();
    let seen = {
        let sha = sha.clone();
        store.call_blocking(move |w| w.lookup_file(&sha))??
    };
    if let Some(entry) = seen {
        drop(opened);
        return redrop(store, inbox, path, &name, &day, entry, cfg.max_file_size);
    }
    if opened.report.refused.is_some() {
        let dest = unique_dest(&inbox.rejected.join(&day), &name, store)?;
        return finish(path, &dest, &opened.report, None);
    }
    let dest = unique_dest(&inbox.processed.join(&day), &name, store)?;
    let meta = FileMeta {
        sha256: sha.clone(),
        name: name.clone(),
        source_path: path.display().to_string(),
        dest: dest.display().to_string(),
        received_at: crate::clock::now_ms(),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let result = store.submit(move |w| w.ingest_file(meta, rx))?;
    let validator = Validator { regions: &cfg.regions, today: crate::clock::today(), node: Some(&cfg.node_id) };
    // Three stages on their own threads: reading, checking (here), writing.
    let parsed = validate_rows(opened, &validator, CHUNK_ROWS, |chunk| {
        let prepared = chunk.into_iter().map(|(n, row)| Prepared::new(n, row)).collect();
        // A closed channel means the writer failed; its error arrives on `result`.
        let _ = tx.send(IngestMsg::Rows(prepared));
    });
    if parsed.report.refused.is_some() {
        // Refused on the way (a missing column, no rows): abandon the transaction.
        drop(tx);
        let _ = result.recv();
        let dest = unique_dest(&inbox.rejected.join(&day), &name, store)?;
        return finish(path, &dest, &parsed.report, None);
    }
    let _ = tx.send(IngestMsg::Done(parsed.report.clone()));
    drop(tx);
    let summary = result.recv().context("the store writer stopped during the ingest")??;
    // Rows only the store could reject were not kept: read the file again for them.
    let kept_all = summary.report.rejected_rows().iter().all(|r| parsed.rows.binary_search_by_key(r, |s| s.row).is_ok());
    let rejected = if kept_all {
        rejected_csv(&parsed, &summary.report)
    } else {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        rejected_csv(&parse_file(&name, &bytes, cfg.max_file_size), &summary.report)
    };
    // Committed durably: only now may the file leave the inbox.
    let handled = finish(path, &dest, &summary.report, rejected)?;
    store.call_blocking(move |w| w.mark_moved(&sha))??;
    Ok(handled)
}

/// A file whose bytes are already in the journal: either a restart after a crash
/// between commit and move (finish the move with the stored report), or the same file
/// dropped again (store nothing, say so).
fn redrop(store: &Store, inbox: &InboxDir, path: &Path, name: &str, day: &str, entry: FileEntry, max: u64) -> anyhow::Result<Handled> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = parse_file(name, &bytes, max);
    let sha = entry.meta.sha256.clone();
    let dest = PathBuf::from(&entry.meta.dest);
    if !entry.moved && !dest.exists() {
        let csv = rejected_csv(&parsed, &entry.report);
        let handled = finish(path, &dest, &entry.report, csv)?;
        store.call_blocking(move |w| w.mark_moved(&sha))??;
        return Ok(handled);
    }
    if !entry.moved {
        store.call_blocking(move |w| w.mark_moved(&sha))??;
    }
    let mut report = entry.report.clone();
    report.file = name.to_string();
    let when = crate::clock::rfc3339_china(entry.meta.received_at);
    report.warnings.push(Warning {
        row: None,
        field: None,
        code: "duplicate_file".into(),
        message: zh_en(
            &format!("相同内容的文件（{}）已于 {when} 处理过，本次未存储任何新内容；结果与当时相同", entry.meta.name),
            &format!("identical file ({}) already processed at {when}; nothing new was stored, the verdict is the same", entry.meta.name),
        ),
    });
    let dest = unique_dest(&inbox.processed.join(day), name, store)?;
    finish(path, &dest, &report, rejected_csv(&parsed, &report))
}

/// After a crash between a commit and the end of its move: complete what is missing.
fn finish_interrupted_moves(cfg: &Config, store: &Store) -> anyhow::Result<()> {
    let pending = store.call_blocking(|w| w.pending_moves())??;
    for entry in pending {
        let src = Path::new(&entry.meta.source_path);
        let dest = PathBuf::from(&entry.meta.dest);
        if src.exists() {
            continue; // the inbox loop finishes it when it sees the file
        }
        if dest.exists() {
            let bytes = std::fs::read(&dest).unwrap_or_default();
            let parsed = parse_file(&entry.meta.name, &bytes, cfg.max_file_size);
            write_reports(&dest, &entry.report, rejected_csv(&parsed, &entry.report))?;
            info!(file = %entry.meta.name, dest = %dest.display(), "finished a move interrupted by a restart");
        } else {
            warn!(file = %entry.meta.name, "a committed file is gone from both the inbox and {}", dest.display());
        }
        let sha = entry.meta.sha256.clone();
        store.call_blocking(move |w| w.mark_moved(&sha))??;
    }
    Ok(())
}

/// Streams a file through SHA-256 without holding it (for files over the size limit).
fn hash_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
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
        if candidate.exists() || report.exists() {
            continue;
        }
        let shown = candidate.display().to_string();
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

/// Moves the file out of the inbox and writes its report (and rejected rows) beside it.
fn finish(src: &Path, dest: &Path, report: &Report, rejected: Option<Vec<u8>>) -> anyhow::Result<Handled> {
    let dir = dest.parent().context("destination has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    move_file(src, dest)?;
    write_reports(dest, report, rejected)?;
    sync_dir(dir);
    if let Some(inbox) = src.parent() {
        sync_dir(inbox);
    }
    Ok(Handled { dest: dest.to_path_buf(), report: report.clone() })
}

fn write_reports(dest: &Path, report: &Report, rejected: Option<Vec<u8>>) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    write_atomic(&sidecar(dest, "report.json"), &json)?;
    if let Some(csv) = rejected {
        write_atomic(&sidecar(dest, "rejected.csv"), &csv)?;
    }
    Ok(())
}

/// Renames, or copies and removes across file systems.
fn move_file(src: &Path, dest: &Path) -> anyhow::Result<()> {
    match std::fs::rename(src, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: the processed folder is on another file system.
            std::fs::copy(src, dest).with_context(|| format!("cannot copy {} to {}", src.display(), dest.display()))?;
            std::fs::File::open(dest)?.sync_all()?;
            std::fs::remove_file(src).with_context(|| format!("cannot remove {}", src.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot move {} to {}", src.display(), dest.display())),
    }
}

/// Writes through a hidden temporary file and a rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("no folder")?;
    let tmp = dir.join(format!(".{}.tmp", file_name(path)));
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}
