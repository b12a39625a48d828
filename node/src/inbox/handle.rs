//! Handling one file exactly once: the shared file pipeline (`ingest::prepare`,
//! `read`, `validate`), the store fed in chunks and parts (`parts`), the whole-file
//! screen (beside the reading for a text file), the rejected rows made durable before
//! the last commit.

use super::*;

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
pub(super) fn dest_name(display: &str) -> String {
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
pub(super) fn handle(ctx: &Ctx, inbox: usize, path: &Path) -> anyhow::Result<Outcome> {
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

/// One piece: the exactly-once sequence of one file (prepare, journal, read, check, screen,
/// spool, commit, move), each step in the order durability needs.
pub(super) fn handle_attempt(ctx: &Ctx, inbox: usize, path: &Path, name: &str) -> anyhow::Result<Outcome> {
    let cfg = &ctx.cfg;
    // The one file pipeline `check` runs too: open, type, size, hash and encoding.
    let prepared = match ingest::prepare(path, &ctx.limits, &ctx.cancel) {
        Ok(p) => p,
        // A hard link is only unlinked: moving it would put a second name of its
        // target (perhaps a file the clerk could not read) into the archive.
        Err(ingest::Unprepared::Open(OpenError::NotRegular(kind))) => {
            return Ok(Outcome::done(set_aside(ctx, inbox, path, ingest::not_regular(kind), kind != "hard link")?))
        }
        Err(ingest::Unprepared::Open(OpenError::Io(e))) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Gone),
        Err(ingest::Unprepared::Open(OpenError::Io(e))) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let r = Refusal::new(
                "unreadable_file",
                "节点没有读取该文件的权限（请检查文件权限后重新放入）",
                &format!("the node is not allowed to read the file ({e}); fix its permissions and drop it again"),
            );
            return Ok(Outcome::done(set_aside(ctx, inbox, path, r, true)?));
        }
        Err(ingest::Unprepared::Open(OpenError::Io(e))) => return Err(e).with_context(|| format!("cannot open {}", show(path))),
        // A file the node does not read is still screened whole before it is archived.
        Err(ingest::Unprepared::Refused { src, format, refusal }) => {
            let keep = !screen(&src.file, format, None, &ctx.limits, &ctx.cancel).is_marked();
            return Ok(Outcome::done(set_aside(ctx, inbox, path, refusal, keep)?));
        }
        Err(ingest::Unprepared::Read(e)) => return Err(e).with_context(|| format!("cannot read {}", show(path))),
        Err(ingest::Unprepared::Cancelled) => return Ok(Outcome::Cancelled),
    };
    let ingest::Prepared { src, format, sha256: sha, content } = prepared;
    info!(file = %name.escape_debug(), bytes = src.stamp.size, "reading file");
    if changed(&src, path) {
        return Ok(Outcome::Unsettled);
    }
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
    let encoding = match content {
        Ok(e) => e,
        Err(r) => {
            let keep = !screen(&src.file, Some(format), None, &ctx.limits, &ctx.cancel).is_marked();
            return refuse(r, keep);
        }
    };
    // A file committed in parts before a crash or a stop resumes after its last part,
    // bound for the place chosen then; a file whose bytes changed meanwhile is new.
    let progress = {
        let (sha, source) = (sha.clone(), path_text(path));
        ctx.store.call_blocking(move |w| -> crate::store::Result<_> {
            w.drop_progress_of(&source, &sha)?;
            w.file_progress(&sha)
        })??
    };
    let (dest, received_at) = match &progress {
        Some(p) => {
            info!(file = %name.escape_debug(), parts = p.parts, after_row = p.rows_done, "resuming a file after its last committed part");
            (PathBuf::from(&p.dest), p.received_at)
        }
        None => (unique_dest(&dirs.processed.join(&day), &dest_name(name), &ctx.store)?, crate::clock::now_ms()),
    };
    let dest_dir = dest.parent().context("destination has no folder")?.to_path_buf();
    std::fs::create_dir_all(&dest_dir).with_context(|| format!("cannot create {}", show(&dest_dir)))?;
    let meta = FileMeta {
        sha256: sha.clone(),
        name: name.to_string(),
        source_path: path_text(path),
        dest: dest.to_string_lossy().into_owned(),
        received_at,
    };
    let changed_since = {
        let (file, stamp, path) = (src.file.try_clone().context("the open file")?, src.stamp, path.to_path_buf());
        Box::new(move || moved_from(&file, stamp, &path))
    };
    let mut sink = parts::StoreSink::new(ctx.store.clone(), meta, format, progress, changed_since);
    let validator = Validator { regions: &cfg.regions, today: crate::clock::today(), node: Some(&cfg.node_id) };
    let spool_bytes = ctx.limits.min_rejected_bytes.max(src.stamp.size.saturating_mul(4));
    let mut spool =
        Spool::new(&ctx.limits.temp_dir, spool_bytes).with_context(|| format!("cannot make a spool in {}", show(&ctx.limits.temp_dir)))?;
    let reading = ingest::read(&src.file, format, encoding, &ctx.limits, &ctx.cancel).context("cannot start reading")?;
    // The whole-file screen of a text file runs beside the reading, not after it.
    let mut screening = screen_beside(&src, format, encoding, ctx);
    let file = &src.file;
    let mut marked = move || match screening.take() {
        // A screen that could not finish keeps the original out of the archive.
        Some(h) => h.join().map_or(true, |s| s.is_marked()),
        None => screen(file, Some(format), encoding, &ctx.limits, &ctx.cancel).is_marked(),
    };
    // Three stages on their own threads: reading, checking (here), writing.
    let checked = ingest::validate(reading, Report::new(name, &sha), &validator, &ctx.limits, CHUNK_ROWS, &mut sink, Some(&mut spool));
    let mut report = checked.report;
    if checked.cancelled {
        // Parts already committed stay: the next start resumes after them.
        sink.abandon();
        return Ok(Outcome::Cancelled);
    }
    if changed(&src, path) {
        let parts = sink.parts_stored();
        sink.abandon();
        if parts {
            warn!(file = %show(path), "the file changed while it was read; the parts committed before stay, the rest is read again once it settles");
        } else {
            info!(file = %show(path), "the file changed while it was read; nothing was stored, it is read again once it settles");
        }
        return Ok(Outcome::Unsettled);
    }
    if report.refused.is_some() && sink.parts_stored() {
        // Only reading can fail after the first part (the header decided the rest):
        // a failure to retry, which resumes after the last part.
        let why = report.refused.as_ref().map(|r| r.message.clone()).unwrap_or_default();
        sink.abandon();
        anyhow::bail!("reading {} failed after parts of it were committed (they stay; a retry resumes after them): {why}", show(path));
    }
    if report.refused.is_some() {
        // Refused on the way (a missing column, no rows): abandon the transaction.
        sink.abandon();
        let keep = checked.not_echoed == 0 && !marked();
        return Ok(Outcome::done(refuse_file(ctx, dirs, path, name, &day, report, keep)?));
    }
    // The whole file, not only the rows read (spec v1.2 §3): a marking anywhere keeps
    // the original out of the archive.
    if checked.not_echoed > 0 {
        report.warnings.push(not_kept_warning(checked.not_echoed));
    } else if marked() {
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
    let summary = sink.finish(report)?;
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
pub(super) fn changed(src: &ingest::Source, path: &Path) -> bool {
    moved_from(&src.file, src.stamp, path)
}

/// Whether `file` (open) or what `path` names now is no longer as `stamp` found it.
fn moved_from(file: &std::fs::File, stamp: ingest::Stamp, path: &Path) -> bool {
    let now = file.metadata().map(|m| ingest::Stamp::of(&m)).ok();
    let by_path = std::fs::symlink_metadata(path).map(|m| ingest::Stamp::of(&m)).ok();
    now != Some(stamp) || by_path != Some(stamp)
}

/// A file whose bytes are already in the journal: either a restart after a crash
/// between commit and move (finish it with the stored report), or the same file
/// dropped again (store nothing, say so).
pub(super) fn redrop(ctx: &Ctx, dirs: &InboxDir, path: &Path, name: &str, day: &str, entry: FileEntry) -> anyhow::Result<Handled> {
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

/// The whole-file screen of a CSV or JSON file on a thread of its own, reading an
/// independent opening of the same file (so neither moves the other's offset); `None`
/// where that cannot be had (then the screen runs after the reading, as for a
/// workbook, whose screen reads its archive).
fn screen_beside(
    src: &ingest::Source,
    format: Format,
    encoding: Option<ingest::TextEncoding>,
    ctx: &Ctx,
) -> Option<std::thread::JoinHandle<ingest::screen::Screened>> {
    use std::os::fd::AsRawFd;
    if !matches!(format, Format::Csv | Format::Json | Format::Jsonl) {
        return None;
    }
    let file = std::fs::File::open(format!("/proc/self/fd/{}", src.file.as_raw_fd())).ok()?;
    // The same file, not whatever the name leads to now.
    let (a, b) = (file.metadata().ok()?, src.file.metadata().ok()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return None;
    }
    let (limits, cancel) = (ctx.limits.clone(), ctx.cancel.clone());
    std::thread::Builder::new().name("file-screen".into()).spawn(move || screen(&file, Some(format), encoding, &limits, &cancel)).ok()
}
