//! The catalogue's writer: the indexer follows the store's change log with its own
//! cursor, keeps the docs, the bigram FTS table and the facet counts, sweeps lapsed
//! embargoes, rebuilds from the store (`huijiao reindex`), and runs on a thread of its
//! own at the lowest priority.

use super::*;

/// The catalogue's writer: the indexer.
pub struct Indexer {
    conn: Connection,
    data_dir: PathBuf,
}

/// `docs.state`: what the public may see of a record, as of its indexing (an embargo
/// that passes moves it from 3 to 1: [`sweep_embargoes`]).
pub(super) const STATE_WITHDRAWN: i64 = 0;
pub(super) const STATE_PUBLIC: i64 = 1;
pub(super) const STATE_INTERNAL: i64 = 2;
pub(super) const STATE_EMBARGOED: i64 = 3;

/// The filter columns of a record.
pub(super) struct DocCols {
    state: i64,
    ip_public: String,
    ip_all: String,
}

pub(super) fn doc_cols(r: &Record, withdrawn: bool) -> DocCols {
    let types = |public: bool| {
        let mut t: Vec<&str> = r.ip.iter().filter_map(|e| ip_type(e)).filter(|t| !public || *t != IP_TRADE_SECRET).collect();
        t.sort_unstable();
        t.dedup();
        if t.is_empty() {
            String::new()
        } else {
            format!(";{};", t.join(";"))
        }
    };
    let state = if withdrawn {
        STATE_WITHDRAWN
    } else if r.secret != Secret::Public {
        STATE_INTERNAL
    } else if r.embargo_until.is_some_and(|d| d >= crate::clock::today()) {
        STATE_EMBARGOED
    } else {
        STATE_PUBLIC
    };
    DocCols { state, ip_public: types(true), ip_all: types(false) }
}

impl Indexer {
    /// Opens (creating) the catalogue of the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Indexer> {
        let path = catalogue_path(data_dir);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the catalogue {}", path.display()))?;
        crate::store::private_file(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        // The catalogue is derived: losing its last commits on power loss only means
        // indexing them again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -16_384)?;
        let version: Option<String> =
            conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).optional().unwrap_or(None);
        if version.as_deref().is_some_and(|v| v != SCHEMA_VERSION) {
            drop(conn);
            std::fs::remove_file(&path).with_context(|| format!("cannot remove the old catalogue {}", path.display()))?;
            return Indexer::open(data_dir);
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?1)", [SCHEMA_VERSION])?;
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('cursor', '0')", [])?;
        oai::backfill(&conn)?;
        attach_store(&conn, data_dir)?;
        Ok(Indexer { conn, data_dir: data_dir.to_path_buf() })
    }

    /// The last store change indexed.
    pub fn cursor(&self) -> Result<u64> {
        let c: String = self.conn.query_row("SELECT value FROM meta WHERE key = 'cursor'", [], |r| r.get(0))?;
        Ok(c.parse().unwrap_or(0))
    }

    /// Does up to `max` records' worth of indexing, each batch in one transaction that
    /// also moves the cursor, and returns how many it did (0: caught up).
    ///
    /// Normally that is the store changes after the cursor. A catalogue that is new or
    /// whose store is not the one it indexed (restored, replaced: its change log is
    /// another or behind the cursor) is rebuilt instead, from the store's records in
    /// batches, so the work survives a crash and never needs one huge transaction.
    pub fn catch_up(&mut self, max: usize) -> Result<usize> {
        // Immediate: two indexers (the daemon's, a `query` or `reindex`) take turns
        // instead of indexing the same changes at once.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let get = |key: &str| -> rusqlite::Result<Option<String>> {
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()
        };
        let cursor: u64 = get("cursor")?.and_then(|c| c.parse().ok()).unwrap_or(0);
        let rebuilding = get("rebuild_upto")?.and_then(|c| c.parse::<i64>().ok());
        let indexed_log = get("log_id")?.unwrap_or_default();
        let last: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM st.changes", [], |r| r.get(0))?;
        let log: String = tx.query_row("SELECT coalesce((SELECT value FROM st.meta WHERE key = 'log_id'), '')", [], |r| r.get(0))?;
        if let Some(upto) = rebuilding {
            let n = rebuild_step(&tx, upto, max)?;
            tx.commit()?;
            return Ok(n.max(1));
        }
        let foreign = cursor > 0 && ((last as u64) < cursor || log != indexed_log);
        if (cursor == 0 && last > 0) || foreign {
            if foreign {
                tracing::info!("the store's change log is not the one indexed (restored or replaced); rebuilding the catalogue");
            }
            start_rebuild(&tx, last)?;
            tx.commit()?;
            return Ok(1);
        }
        let mut n = sweep_embargoes(&tx)?;
        let mut upto = cursor;
        {
            let mut st = tx.prepare_cached("SELECT seq, reg_no, origin, op, body FROM st.changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
            let mut rows = st.query(params![cursor as i64, max as i64])?;
            while let Some(r) = rows.next()? {
                let (seq, reg_no, origin, op, body): (i64, String, String, i64, Option<String>) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                upto = seq as u64;
                n += 1;
                match (op, body) {
                    (0, Some(body)) => {
                        let rec = Record::from_json(body.as_bytes()).with_context(|| format!("corrupt body of change {seq}"))?;
                        index_record(&tx, &rec, &origin, false)?;
                    }
                    _ => {
                        withdraw_doc(&tx, &reg_no)?;
                    }
                }
            }
        }
        if upto > cursor {
            set_meta(&tx, "cursor", &upto.to_string())?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Empties the catalogue and indexes every record of the store again, all the way.
    /// Returns how many records it indexed.
    pub fn rebuild(&mut self) -> Result<u64> {
        {
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let last: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM st.changes", [], |r| r.get(0))?;
            start_rebuild(&tx, last)?;
            tx.commit()?;
        }
        while self.rebuilding()? {
            self.catch_up(5000)?;
        }
        Ok(self.conn.query_row("SELECT count(*) FROM docs", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Whether a rebuild is under way.
    pub fn rebuilding(&self) -> Result<bool> {
        Ok(self.conn.query_row("SELECT count(*) FROM meta WHERE key = 'rebuild_upto'", [], |r| r.get::<_, i64>(0))? > 0)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

pub(super) fn set_meta(tx: &rusqlite::Transaction<'_>, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [key, value])?;
    Ok(())
}

/// Empties the catalogue and marks a rebuild of the store's records up to change
/// `upto`; the changes after it are indexed as usual once the rebuild is done.
pub(super) fn start_rebuild(tx: &rusqlite::Transaction<'_>, upto: i64) -> Result<()> {
    tx.execute_batch("DELETE FROM docs; DELETE FROM facets; INSERT INTO fts (fts) VALUES ('delete-all');")?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('log_id', coalesce((SELECT value FROM st.meta WHERE key = 'log_id'), ''))",
        [],
    )?;
    set_meta(tx, "cursor", "0")?;
    set_meta(tx, "rebuild_upto", &upto.to_string())?;
    set_meta(tx, "rebuild_pos", "0")?;
    Ok(())
}

/// Indexes up to `max` more records of a rebuild, in the store's row order (its
/// rowid: an index walk, whatever the size); finishing, moves the cursor to where
/// the rebuild began. A record changed since then has a change after the cursor,
/// which indexes it, so it is skipped here.
pub(super) fn rebuild_step(tx: &rusqlite::Transaction<'_>, upto: i64, max: usize) -> Result<usize> {
    let pos: i64 = tx.query_row("SELECT value FROM meta WHERE key = 'rebuild_pos'", [], |r| r.get::<_, String>(0))?.parse().unwrap_or(0);
    let mut n = 0;
    let mut at = pos;
    {
        let mut st = tx.prepare_cached(
            "SELECT r.rowid, r.seq, r.reg_no, r.origin, r.withdrawn, b.body FROM st.records r JOIN st.changes b ON b.seq = r.body_seq
             WHERE r.rowid > ?1 ORDER BY r.rowid LIMIT ?2",
        )?;
        let mut rows = st.query(params![pos, max as i64])?;
        while let Some(r) = rows.next()? {
            let (rowid, seq, reg_no, origin, withdrawn, body): (i64, i64, String, String, i64, Option<String>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
            at = rowid;
            n += 1;
            let Some(body) = body.filter(|_| seq <= upto) else { continue };
            let rec = Record::from_json(body.as_bytes()).with_context(|| format!("corrupt body of {reg_no}"))?;
            index_record(tx, &rec, &origin, withdrawn != 0)?;
        }
    }
    if n < max {
        set_meta(tx, "cursor", &upto.to_string())?;
        tx.execute("DELETE FROM meta WHERE key IN ('rebuild_upto', 'rebuild_pos')", [])?;
        oai::rebuilt(tx)?;
    } else {
        set_meta(tx, "rebuild_pos", &at.to_string())?;
    }
    Ok(n)
}

/// The statistics dimensions, with the key of each for a docs row
/// (`region, year, kind, stage, industry, transfer, level`).
pub(super) const FACET_DIMS: [&str; 9] = ["province", "prefecture", "county", "kind", "year", "stage", "industry", "transfer", "level"];

/// The prefecture-level unit a county belongs to: `XXYY00`, or the county itself for
/// one governed by its province directly (`XX90YY`).
pub(super) fn prefecture_of(region: &str) -> String {
    if region.get(2..3) == Some("9") {
        region.to_string()
    } else {
        format!("{}00", region.get(..4).unwrap_or(region))
    }
}

/// Adds `delta` to the facet counts of the docs row of `reg_no`, as it stands.
pub(super) fn count_doc(tx: &rusqlite::Transaction<'_>, reg_no: &str, delta: i64) -> Result<()> {
    type Cols = (String, i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>);
    let row: Option<Cols> = tx
        .prepare_cached("SELECT region, year, state, kind, stage, industry, transfer, level FROM docs WHERE reg_no = ?1")?
        .query_row([reg_no], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)))
        .optional()?;
    let Some((region, year, state, kind, stage, industry, transfer, level)) = row else { return Ok(()) };
    let keys = [
        format!("{}0000", region.get(..2).unwrap_or("")),
        prefecture_of(&region),
        region.clone(),
        kind,
        year.to_string(),
        stage.unwrap_or_default(),
        industry.and_then(|i| i.get(..1).map(str::to_string)).unwrap_or_default(),
        transfer.unwrap_or_default(),
        level.unwrap_or_default(),
    ];
    let mut up = tx.prepare_cached(
        "INSERT INTO facets (dim, key, region, year, state, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (dim, region, year, state, key) DO UPDATE SET n = n + excluded.n",
    )?;
    for (dim, key) in FACET_DIMS.iter().zip(keys.iter()) {
        up.execute(params![dim, key, region, year, state, delta])?;
    }
    Ok(())
}

/// Marks a record withdrawn.
pub(super) fn withdraw_doc(tx: &rusqlite::Transaction<'_>, reg_no: &str) -> Result<()> {
    count_doc(tx, reg_no, -1)?;
    tx.prepare_cached("UPDATE docs SET withdrawn = 1, state = ?2 WHERE reg_no = ?1")?.execute(params![reg_no, STATE_WITHDRAWN])?;
    count_doc(tx, reg_no, 1)?;
    oai::note(tx, reg_no, "", "", None)?;
    Ok(())
}

/// Makes public the records whose embargo has passed (run with every catch-up).
pub(super) fn sweep_embargoes(tx: &rusqlite::Transaction<'_>) -> Result<usize> {
    let today = crate::clock::today().to_string();
    let due: Vec<String> = tx
        .prepare_cached("SELECT reg_no FROM docs WHERE state = ?1 AND embargo_until < ?2")?
        .query_map(params![STATE_EMBARGOED, today], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for reg_no in &due {
        count_doc(tx, reg_no, -1)?;
        tx.prepare_cached("UPDATE docs SET state = ?2 WHERE reg_no = ?1")?.execute(params![reg_no, STATE_PUBLIC])?;
        count_doc(tx, reg_no, 1)?;
        // Public from today: harvesters see it appear now.
        let body: Option<String> = tx
            .prepare_cached("SELECT b.body FROM st.records r JOIN st.changes b ON b.seq = r.body_seq WHERE r.reg_no = ?1")?
            .query_row([reg_no], |r| r.get(0))
            .optional()?
            .flatten();
        if let Some(body) = body {
            let rec = Record::from_json(body.as_bytes()).with_context(|| format!("corrupt body of {reg_no}"))?;
            oai::note(tx, reg_no, &rec.region, rec.kind.zh(), Some(&oai::public_digest(&rec)))?;
        }
    }
    Ok(due.len())
}

/// Puts a record's latest version into the catalogue (docs row and search tokens).
pub(super) fn index_record(tx: &rusqlite::Transaction<'_>, r: &Record, origin: &str, withdrawn: bool) -> Result<()> {
    let c = doc_cols(r, withdrawn);
    let old: Option<i64> = tx.prepare_cached("SELECT id FROM docs WHERE reg_no = ?1")?.query_row([&r.reg_no], |x| x.get(0)).optional()?;
    if old.is_some() {
        count_doc(tx, &r.reg_no, -1)?;
    }
    let args = params![
        r.reg_no,
        origin,
        withdrawn,
        c.state,
        r.embargo_until.map(|d| d.to_string()),
        r.region,
        r.kind.zh(),
        r.stage,
        r.level,
        r.discipline,
        r.industry,
        r.transfer,
        c.ip_public,
        c.ip_all,
        r.trl,
        r.reg_date.to_string(),
        r.reg_date.year,
        r.fiscal_funded,
    ];
    let id = match old {
        Some(id) => {
            tx.prepare_cached("DELETE FROM fts WHERE rowid = ?1")?.execute([id])?;
            tx.prepare_cached(
                "UPDATE docs SET origin = ?2, withdrawn = ?3, state = ?4, embargo_until = ?5, region = ?6, kind = ?7, stage = ?8,
                   level = ?9, discipline = ?10, industry = ?11, transfer = ?12, ip_public = ?13, ip_all = ?14, trl = ?15,
                   reg_date = ?16, year = ?17, fiscal_funded = ?18 WHERE reg_no = ?1",
            )?
            .execute(args)?;
            id
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO docs (reg_no, origin, withdrawn, state, embargo_until, region, kind, stage, level, discipline, industry,
                   transfer, ip_public, ip_all, trl, reg_date, year, fiscal_funded)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?
            .execute(args)?;
            tx.last_insert_rowid()
        }
    };
    let mut people = vec![r.first_unit.as_str()];
    people.extend(r.units.iter().map(String::as_str));
    people.extend(r.persons.iter().map(String::as_str));
    let keywords = format!("{} {}", r.keywords.join(" "), r.reg_no);
    count_doc(tx, &r.reg_no, 1)?;
    let digest = (c.state == STATE_PUBLIC).then(|| oai::public_digest(r));
    oai::note(tx, &r.reg_no, &r.region, r.kind.zh(), digest.as_deref())?;
    tx.prepare_cached("INSERT INTO fts (rowid, title, keywords, people, abstract) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![
        id,
        search::index_text(&r.title),
        search::index_text(&keywords),
        search::index_text(&people.join(" ")),
        search::index_text(&r.r#abstract),
    ])?;
    Ok(())
}

impl Catalogue {
    /// How far the catalogue has indexed the store.
    pub fn progress(&self) -> Result<Progress> {
        let get = |key: &str| -> Result<Option<i64>> {
            let v: Option<String> = self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
            Ok(v.and_then(|v| v.parse().ok()))
        };
        let last: i64 = self.conn.query_row("SELECT coalesce(max(seq), 0) FROM st.changes", [], |r| r.get(0))?;
        let rebuilding = match (get("rebuild_pos")?, get("rebuild_upto")?) {
            (Some(pos), Some(upto)) => Some((pos as u64, upto as u64)),
            _ => None,
        };
        Ok(Progress { cursor: get("cursor")?.unwrap_or(0) as u64, last_change: last as u64, rebuilding })
    }
}

/// How far the catalogue has indexed the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The last store change indexed.
    pub cursor: u64,
    /// The store's last change.
    pub last_change: u64,
    /// A rebuild under way: (records done up to change, rebuilding up to change).
    pub rebuilding: Option<(u64, u64)>,
}

impl Progress {
    /// Whether every store change is in the catalogue.
    pub fn caught_up(&self) -> bool {
        self.rebuilding.is_none() && self.cursor >= self.last_change
    }
}

/// Search may lag; durability may not. The indexer runs at the lowest CPU priority, so
/// on a busy node (a big file, children's batches) the cores go first to storing and
/// forwarding, and the catalogue catches up in the gaps and after. On an idle machine
/// the priority changes nothing.
pub(super) fn lower_priority() {
    // On Linux a thread's nice value is its own: this thread's id names only it.
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!("cannot lower the catalogue indexer's priority: {e}");
    }
}

/// Runs the indexer on a thread of its own: it catches up in batches, then waits to
/// be woken by `wake` (a message per store commit) or for a second. While the store
/// keeps committing it indexes at most a quarter of the time (see
/// [`lower_priority`]). It stops when `wake`'s sender is dropped.
pub fn spawn_indexer(data_dir: &Path, wake: std::sync::mpsc::Receiver<()>) -> Result<std::thread::JoinHandle<()>> {
    use std::sync::mpsc::RecvTimeoutError;
    let mut ix = Indexer::open(data_dir)?;
    std::thread::Builder::new()
        .name("catalogue-indexer".into())
        .spawn(move || {
            lower_priority();
            let mut failing = false;
            loop {
                let started = std::time::Instant::now();
                let pause = match ix.catch_up(2000) {
                    Ok(0) => {
                        failing = false;
                        std::time::Duration::from_secs(1)
                    }
                    Ok(_) => {
                        failing = false;
                        // The store committed again while this batch was indexed: ingest
                        // or a child's batches are running. Index at most a quarter of the
                        // time then, leaving the cores to them (search lags longer: on 2
                        // cores, half the time cost a big file a third of its speed to
                        // the parent, `bench bighop`); when the store is quiet, catch up
                        // at full speed.
                        if wake.try_recv().is_ok() {
                            while wake.try_recv().is_ok() {}
                            std::thread::sleep(started.elapsed() * 3);
                        }
                        std::time::Duration::ZERO
                    }
                    Err(e) => {
                        if !failing {
                            tracing::error!("the catalogue indexer failed; retrying every 5 s (search results lag until it works): {e:#}");
                            failing = true;
                        }
                        std::time::Duration::from_secs(5)
                    }
                };
                match wake.recv_timeout(pause) {
                    Err(RecvTimeoutError::Disconnected) => break,
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                }
                // Many commits wake it once.
                while wake.try_recv().is_ok() {}
            }
        })
        .context("cannot start the catalogue indexer thread")
}
