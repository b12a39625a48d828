//! Watching the inbox folders: `notify` events say where to look, a full rescan finds
//! what they missed; each file found becomes a candidate in arrival order.

use super::*;

/// Watches every inbox; without it the periodic rescan still works. Rewatches an
/// inbox folder that was deleted and made again.
pub(super) struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    /// The identity (device, inode) of each inbox folder as watched.
    watched: Vec<Option<(u64, u64)>>,
    /// An inbox folder itself was removed or moved: watch them all again (a folder
    /// made again may even get the same inode).
    lost: Arc<AtomicBool>,
}

pub(super) fn dir_id(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

impl Watcher {
    pub(super) fn start(cfg: &Config, tx: tokio::sync::mpsc::Sender<(PathBuf, Hint)>, overflow: Arc<AtomicBool>) -> Watcher {
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
    pub(super) fn refresh(&mut self, cfg: &Config) {
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

pub(super) fn note_event(
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

pub(super) fn add_candidate(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>, next_seq: &mut u64, path: PathBuf) {
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
pub(super) fn is_ignored(name: &OsStr) -> bool {
    ingest::is_ignored_name(&String::from_utf8_lossy(name.as_bytes()))
}

/// Adds every entry of every inbox, oldest first, so a backlog is handled in the order
/// it arrived.
pub(super) fn scan(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>, next_seq: &mut u64) {
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
