//! The store: the only module that touches SQLite.
//!
//! One writer thread owns the read-write connection and runs jobs sent to it in order
//! ([`Store::call`]), so SQLite is never used across an `.await` and writes from the
//! inbox and from children are serialized without locks. Readers ([`Reader`]) open
//! their own short-lived connections, also from other processes (`huijiao query`),
//! which WAL allows while the writer works.
//!
//! Durability: WAL with `synchronous = FULL`, so a commit that returned survives power
//! loss; the inbox moves a file and a parent acknowledges a batch only after that.

pub mod accounts;
pub mod backup;
pub mod catalogue;
mod error;
mod ingest;
pub mod mirror;
pub mod packages;
mod query;
pub mod registration;
mod rows;
mod schema;
mod sync;

pub use error::{Result, StoreError};
pub use ingest::{FileEntry, FileMeta, IngestMsg, IngestSummary, PartEnd, Prepared, PreparedRecord, Progress, MAX_ATTEMPTS};
pub use query::{Filter, Reader, StoreStatus, StoredRecord};
pub use sync::{ApplyError, BatchOutcome, ChildStatus, Quarantined, RefusalStatus, StuckChange, UplinkStatus};

use error::{bail, Context};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The database file inside `data_dir`.
pub const DB_FILE: &str = "huijiao.db";

type Job = Box<dyn FnOnce(&mut Writer) + Send>;

/// A handle to the writer thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Store {
    /// Jobs for the writer; bounded, so producers wait instead of piling up work.
    tx: tokio::sync::mpsc::Sender<Job>,
    path: PathBuf,
    /// The highest committed change seq; the uplink waits on it.
    changes: tokio::sync::watch::Receiver<u64>,
    /// The parent found this store rewound and `huijiao recover` has not run since:
    /// the inbox waits (see [`Store::recover_needed`]).
    recover_needed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _thread: std::sync::Arc<WriterThread>,
}

/// Why a job never ran or never answered: the store's writer thread is gone (the
/// node is stopping, or a job panicked and the writer shut down). The job's own
/// result is the inner one; [`Store::run`] gives one result for jobs that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriterGone {
    #[error("the store writer has stopped")]
    Stopped,
    #[error("the store writer stopped during a job")]
    DuringJob,
}

/// Joins the writer and checkpointer threads when the last handle goes.
struct WriterThread {
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some((stop, h)) = self.checkpointer.take() {
            drop(stop);
            let _ = h.join();
        }
        if let Some(h) = self.writer.take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

/// Copies committed pages from the WAL into the database off the writer's path: the
/// writer's commits only append to the WAL and fsync it, and a passive checkpoint
/// never blocks it. When the WAL has grown large and the writer is idle, it is
/// truncated so the disk space comes back.
fn checkpointer(path: PathBuf, stop: std::sync::mpsc::Receiver<()>) {
    let Ok(conn) = Connection::open(&path) else { return };
    let wal = {
        let mut p = path.as_os_str().to_owned();
        p.push("-wal");
        PathBuf::from(p)
    };
    loop {
        match stop.recv_timeout(std::time::Duration::from_millis(500)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if size < 4 * 1024 * 1024 {
            continue;
        }
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        let done: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
        if let Ok((0, log, copied)) = done {
            if log == copied && size > 256 * 1024 * 1024 {
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
        }
    }
}

/// The writer's connection and the node it belongs to.
pub struct Writer {
    pub(crate) conn: Connection,
    pub(crate) node_id: String,
    /// Tells the uplink that new changes were committed.
    changes: tokio::sync::watch::Sender<u64>,
}

/// Sets the pragmas every connection needs.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(())
}

/// Opens (creating if needed) the database and brings its schema up to date. `None`
/// opens a private in-memory database (tests).
pub fn open_writer_connection(path: Option<&Path>, node_id: &str) -> Result<Connection> {
    let shown = path.map_or_else(|| ":memory:".to_string(), |p| p.display().to_string());
    let conn = match path {
        Some(p) => Connection::open(p),
        None => Connection::open_in_memory(),
    }
    .with_context(|| format!("cannot open store {shown}"))?;
    if let Some(p) = path {
        // The store holds 内部 records: its owner's alone, whatever the umask (SQLite
        // gives the WAL and shared-memory files the same mode).
        private_file(p)?;
    }
    configure(&conn)?;
    // WAL lets readers (queries, the uplink) work while the writer commits; FULL makes
    // each commit durable, which is what "left the inbox" and "acknowledged" promise.
    conn.pragma_update(None, "page_size", 16_384)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !(mode.eq_ignore_ascii_case("wal") || (path.is_none() && mode.eq_ignore_ascii_case("memory"))) {
        bail!("store {shown} cannot use WAL (journal_mode is {mode})");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // 64 MiB of page cache: a million-record ingest inserts into a reg_no index of
    // about 40 MB at random places; with less cache it thrashes. Pages are only
    // allocated as they are used, so an idle node stays small.
    conn.pragma_update(None, "cache_size", -65_536)?;
    migrate(&conn).with_context(|| format!("cannot migrate store {shown}"))?;
    let stored: Option<String> = conn.query_row("SELECT value FROM meta WHERE key = 'node_id'", [], |r| r.get(0)).optional()?;
    match stored {
        None => {
            conn.execute("INSERT INTO meta (key, value) VALUES ('node_id', ?1)", [node_id])?;
        }
        Some(s) if s == node_id => {}
        Some(s) => {
            bail!("store {shown} belongs to node {s}, but the configuration says node_id = {node_id}; refusing to mix two nodes' data")
        }
    }
    // The change log's identity: made with the store, so a store restored from an
    // old copy keeps its old id (and is caught by its parent's cursor), and a new
    // store gets a new one.
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?1)", [new_log_id()?])?;
    Ok(conn)
}

/// The lock a running daemon holds on its data folder, so nothing else writes the
/// store behind its back (a second daemon, `recover`, `restore`).
pub struct DataLock(#[allow(dead_code)] std::fs::File);

/// Takes the data folder's lock, or says who holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DataLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("huijiao.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DataLock(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            bail!("{} is in use by a running huijiao daemon (it holds {}); stop it first", dir.display(), path.display())
        }
        Err(e) => Err(std::io::Error::from(e)).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Makes a file readable and writable by its owner only.
pub fn private_file(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(p) {
        if m.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} private", p.display()))?;
        }
    }
    Ok(())
}

/// A new random change-log id: 32 hex digits.
pub fn new_log_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).context("cannot read /dev/urandom")?;
    Ok(huijiao_protocol::record::hex(&b))
}

fn migrate(conn: &Connection) -> Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if version > schema::MIGRATIONS.len() {
        bail!("the store's schema version {version} is newer than this huijiao ({}); upgrade huijiao", schema::MIGRATIONS.len());
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql).with_context(|| format!("migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl Store {
    /// Whether the parent found this store rewound (restored from an older copy) and
    /// `huijiao recover` has not run since: until it has, the inbox leaves files where
    /// they are, so that no row is taken for a record the store forgot.
    pub fn recover_needed(&self) -> bool {
        self.recover_needed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes that the store was found rewound and needs `huijiao recover`.
    pub fn set_recover_needed(&self) {
        self.recover_needed.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens the store at `path` for node `node_id` and starts the writer thread.
    pub fn open(path: &Path, node_id: &str) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut writer = Writer::open(Some(path), node_id)?;
        let recover_needed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(writer.recover_needed()?.is_some()));
        // Checkpoints are the checkpointer thread's job (see `checkpointer`).
        writer.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let changes = writer.changes.subscribe();
        // A small queue: producers wait rather than pile up work in memory.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(16);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    // A panicking job must not take the store down with it; its caller
                    // sees its result channel close and reports the failure.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut writer))).is_err() {
                        tracing::error!("a store job panicked; its transaction was rolled back");
                        let _ = writer.conn.execute_batch("ROLLBACK");
                    }
                    writer.release_cache();
                }
                // Checkpoint on a clean exit so the WAL does not outlive the process.
                let _ = writer.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .context("cannot start the store writer thread")?;
        let (stop, stopped) = mpsc::channel();
        let p = path.to_path_buf();
        let cp = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpointer(p, stopped))
            .context("cannot start the checkpointer")?;
        Ok(Store {
            recover_needed,
            tx,
            path: path.to_path_buf(),
            changes,
            _thread: std::sync::Arc::new(WriterThread { writer: Some(thread), checkpointer: Some((stop, cp)) }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread and waits for its result without blocking the runtime.
    pub async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Writer) -> R + Send + 'static) -> Result<R, WriterGone> {
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = rtx.send(f(w));
        });
        // Waiting for room in the queue is async: a thousand children waiting for the
        // writer cost a thousand tasks, not a thousand threads.
        self.tx.send(job).await.map_err(|_| WriterGone::Stopped)?;
        rrx.await.map_err(|_| WriterGone::DuringJob)
    }

    /// [`Store::call`] for a job that can fail: one result, the writer's absence or
    /// the job's own error.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Writer) -> Result<T> + Send + 'static) -> Result<T> {
        self.call(f).await?
    }

    /// Runs `f` on the writer thread from blocking code.
    pub fn call_blocking<R: Send + 'static>(&self, f: impl FnOnce(&mut Writer) -> R + Send + 'static) -> Result<R, WriterGone> {
        self.submit(f)?.recv().map_err(|_| WriterGone::DuringJob)
    }

    /// Queues `f` on the writer thread and returns at once; the result arrives on the
    /// returned channel. For a job that itself waits on the caller (a file ingest fed
    /// chunk by chunk).
    pub fn submit<R: Send + 'static>(&self, f: impl FnOnce(&mut Writer) -> R + Send + 'static) -> Result<mpsc::Receiver<R>, WriterGone> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |w| {
            let _ = rtx.send(f(w));
        });
        self.tx.blocking_send(job).map_err(|_| WriterGone::Stopped)?;
        Ok(rrx)
    }

    /// Watches the highest committed change seq.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.clone()
    }

    /// A read-only connection to the same database.
    pub fn reader(&self) -> Result<Reader> {
        Reader::open(&self.path)
    }

    /// Runs `f` with a new read-only connection on the blocking pool: how async code
    /// reads the store, so no SQLite call runs on an async worker (a tidy test keeps
    /// it so). `reader` is `Some` to reuse a connection the caller keeps between
    /// reads (the uplink's log reader); the connection is handed back with the result.
    pub async fn read_with<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        reader: Option<Reader>,
        f: impl FnOnce(&Reader) -> Result<T, E> + Send + 'static,
    ) -> Result<(T, Reader), E> {
        let path = self.path.clone();
        let job = tokio::task::spawn_blocking(move || {
            let r = match reader {
                Some(r) => r,
                None => Reader::open(&path)?,
            };
            f(&r).map(|t| (t, r))
        });
        match job.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Refused("the node is stopping".into()).into()),
        }
    }

    /// [`Store::read_with`] on a connection of its own.
    pub async fn read<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.read_with(None, f).await.map(|(t, _)| t)
    }
}

/// Opens a read-only connection (queries, the uplink, other processes).
pub(crate) fn open_reader_connection(path: &Path) -> Result<Connection> {
    if !path.exists() {
        bail!("no store at {} (has the node run yet?)", path.display());
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open store {}", path.display()))?;
    configure(&conn)?;
    Ok(conn)
}

impl Writer {
    /// Empties the page cache of what the last job left unpinned; the writer thread
    /// calls it after each job. A cache that has filled up (64 MiB of pages written
    /// since the start: any node past its first forty thousand records) frees the pages
    /// a statement releases instead of keeping them, so every insert read its B-trees'
    /// root and inner pages back from the file — a quarter of the writer's time in a
    /// big apply. Emptied after each job, the cache never fills, and a job reads its
    /// few hot pages once (BENCHMARKS.md, issue 35).
    pub fn release_cache(&self) {
        let _ = self.conn.release_memory();
    }

    /// A writer used directly, without the thread (tests and tools).
    pub fn open(path: Option<&Path>, node_id: &str) -> Result<Writer> {
        let conn = open_writer_connection(path, node_id)?;
        let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?;
        let (changes, _) = tokio::sync::watch::channel(last as u64);
        Ok(Writer { conn, node_id: node_id.to_string(), changes })
    }

    /// Publishes the highest committed change seq after a commit that added changes.
    pub(crate) fn notify_changes(&self) {
        if let Ok(last) = self.conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get::<_, i64>(0)) {
            self.changes.send_replace(last as u64);
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod catalogue_tests;
