//! Settling: a candidate is ready when it was renamed in, or its size and mtime held
//! still for the settle time and nobody holds it open for writing.

use super::*;

/// How long a file closed after writing must stay closed and unchanged before it is
/// read (a writer that closes and reopens to append does so within it).
pub(super) const CLOSED_QUIET: Duration = Duration::from_millis(25);

/// Updates each candidate's size and mtime; returns the settled ones in arrival order.
/// A regular file is settled when it was renamed in, closed by its writer
/// [`CLOSED_QUIET`] ago, or its size and mtime have been stable for the settle time —
/// and, in every case, no process holds it open for writing.
pub(super) fn settle(cfg: &Config, pending: &mut HashMap<PathBuf, Candidate>) -> Vec<PathBuf> {
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
pub(super) fn writers(wanted: &HashSet<PathBuf>) -> Option<(HashSet<PathBuf>, bool)> {
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
