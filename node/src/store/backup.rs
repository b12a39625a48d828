//! `huijiao backup` and `huijiao restore`: consistent copies of the store.
//!
//! A copy of `huijiao.db` made with `cp` misses what is still in the WAL (often
//! everything recent, sometimes the tables themselves). `backup` asks SQLite for a
//! consistent copy instead (`VACUUM INTO`, inside one read transaction), while the
//! daemon keeps running. `restore` puts such a copy back with the daemon stopped;
//! the node then tells its parent that its log went back (the parent resends nothing
//! twice and `huijiao recover` takes back what the copy lacked), and the search
//! catalogue rebuilds itself.

use super::error::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What a backup holds.
#[derive(Debug, Clone)]
pub struct Summary {
    pub path: PathBuf,
    pub bytes: u64,
    pub records: i64,
    pub last_seq: i64,
}

fn summarize(path: &Path) -> Result<Summary> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let records: i64 = conn
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .with_context(|| format!("{} is not a huijiao store", path.display()))?;
    let last_seq: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?;
    Ok(Summary { path: path.to_path_buf(), bytes: crate::fsx::size(path)?, records, last_seq })
}

/// `huijiao backup --to PATH`: a consistent copy of the store, also while the daemon
/// runs. PATH must not exist; a folder gets a file named by node and time.
pub fn backup(data_dir: &Path, node_id: &str, to: &Path) -> Result<Summary> {
    let target = if to.is_dir() {
        let stamp = crate::clock::rfc3339_china(crate::clock::now_ms()).replace([':', '.'], "-");
        to.join(format!("huijiao-{node_id}-{stamp}.db"))
    } else {
        to.to_path_buf()
    };
    if target.exists() {
        bail!("{} exists; a backup never overwrites a file", target.display());
    }
    let db = data_dir.join(super::DB_FILE);
    if !db.exists() {
        bail!("no store at {}", db.display());
    }
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open the store {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let partial = target.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    conn.execute("VACUUM INTO ?1", [partial.display().to_string()]).with_context(|| format!("cannot write {}", partial.display()))?;
    drop(conn);
    // Durable before it takes its name.
    crate::fsx::sync_file(&partial)?;
    crate::fsx::rename(&partial, &target)?;
    if let Some(dir) = target.parent() {
        crate::fsx::sync_dir(dir);
    }
    crate::fsx::set_mode(&target, 0o600)?;
    summarize(&target)
}

/// `huijiao restore --from PATH`: replaces the store with a backup, the daemon
/// stopped. The store it replaces is kept beside it (`huijiao.db.replaced-…`).
/// Gives the store's files (and its WAL and shared-memory files) to the data folder's
/// owner when an operator ran a command as root (`recover`).
pub fn give_back_to_owner(data_dir: &Path) -> Result<()> {
    let db = data_dir.join(super::DB_FILE);
    for suffix in ["", "-wal", "-shm"] {
        crate::fsx::adopt_owner(Path::new(&format!("{}{suffix}", db.display())), data_dir)?;
    }
    Ok(())
}

pub fn restore(data_dir: &Path, node_id: &str, from: &Path) -> Result<(Summary, PathBuf)> {
    let _lock = super::lock_data_dir(data_dir)?;
    let summary = summarize(from)?;
    {
        let conn = rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            bail!("{} is damaged ({check}); not restored", from.display());
        }
        let node: Option<String> =
            rusqlite::OptionalExtension::optional(conn.query_row("SELECT value FROM meta WHERE key = 'node_id'", [], |r| r.get(0)))?;
        if let Some(node) = node.filter(|n| n != node_id) {
            bail!("{} is a backup of node {node}, not of this node {node_id}; not restored", from.display());
        }
    }
    let db = data_dir.join(super::DB_FILE);
    let stamp = crate::clock::now_ms();
    let kept = db.with_file_name(format!("{}.replaced-{stamp}", super::DB_FILE));
    if db.exists() {
        // Checkpoint what the WAL holds into the old file before it is set aside whole.
        if let Ok(old) = rusqlite::Connection::open(&db) {
            let _ = old.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        std::fs::rename(&db, &kept).with_context(|| format!("cannot move {} aside", db.display()))?;
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        let _ = std::fs::remove_file(side);
    }
    let staging = db.with_extension("restoring");
    std::fs::copy(from, &staging).with_context(|| format!("cannot copy {}", from.display()))?;
    crate::fsx::sync_file(&staging)?;
    crate::fsx::rename(&staging, &db)?;
    // Restored as root: the service user must still own its store.
    crate::fsx::adopt_owner(&db, data_dir)?;
    crate::fsx::sync_dir(data_dir);
    Ok((summary, kept))
}
