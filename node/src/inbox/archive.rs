//! After the commit (or a refusal): the destination, the move into `processed/`, the
//! reports beside it, a file set aside, names of any bytes kept exactly.

use super::*;

/// Finishes a committed file: its rejected rows, the move (or removal), the report,
/// the journal mark. Idempotent, so a restart can run it again at any point.
pub(super) fn finish_committed(ctx: &Ctx, entry: &FileEntry, source_here: bool) -> anyhow::Result<Handled> {
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
pub(super) fn finish_interrupted(ctx: &Ctx, in_inbox: &HashSet<PathBuf>) -> anyhow::Result<()> {
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
pub(super) fn refuse_file(
    ctx: &Ctx,
    dirs: &InboxDir,
    path: &Path,
    name: &str,
    day: &str,
    mut report: Report,
    keep: bool,
) -> anyhow::Result<Handled> {
    if !keep && !report.warnings.iter().any(|w| w.code == "original_not_kept") {
        report.warnings.push(marked_file_warning());
    }
    let dest = unique_dest(&dirs.rejected.join(day), &dest_name(name), &ctx.store)?;
    finish(path, &dest, &report, keep)
}

/// Sets a path aside in `rejected/` with a report, without reading it (not a regular
/// file, unreadable, unsupported, too large, or failing again and again).
pub(super) fn set_aside(ctx: &Ctx, inbox: usize, path: &Path, refusal: Refusal, keep: bool) -> anyhow::Result<Handled> {
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
pub(super) fn unique_dest(dir: &Path, name: &str, store: &Store) -> anyhow::Result<PathBuf> {
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
pub(super) fn hidden(dest: &Path, suffix: &str) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.{suffix}.tmp"))
}

/// Moves the file out of the inbox (or removes it when `keep` is false) and writes
/// its report beside where it goes.
pub(super) fn finish(src: &Path, dest: &Path, report: &Report, keep: bool) -> anyhow::Result<Handled> {
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

pub(super) fn write_reports(dest: &Path, report: &Report) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    Ok(crate::fsx::write_atomic(&sidecar(dest, "report.json"), &json)?)
}

/// Renames (a symlink or folder as itself, never following it), or copies and
/// removes across file systems.
pub(super) fn move_file(src: &Path, dest: &Path) -> anyhow::Result<()> {
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
pub(super) fn path_text(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    match p.to_str() {
        Some(s) => s.to_string(),
        None => format!("\0hex:{}", huijiao_protocol::record::hex(p.as_os_str().as_bytes())),
    }
}

/// The path [`path_text`] wrote.
pub(super) fn text_path(s: &str) -> PathBuf {
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
